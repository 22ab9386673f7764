#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed, so that
# the portal can run its private cluster when no DATABASE_URL is given.
#
# Looks where the portal looks (`pg_config --bindir` if initdb is there, then
# /usr/lib/postgresql/*/bin, highest version first); if nothing is found, installs Debian's
# `postgresql` package. Prints one line saying what it found or installed.
set -euo pipefail

# Print the directory holding the server binaries, or nothing.
find_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            printf '%s\n' "$dir"
            return
        fi
    fi
    # Highest version first (sort -V handles 9.6 < 10 < 15).
    local candidates=(/usr/lib/postgresql/*/bin)
    [[ -e "${candidates[0]}" ]] || return 0
    while IFS= read -r dir; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            printf '%s\n' "$dir"
            return
        fi
    done < <(printf '%s\n' "${candidates[@]}" | sort -rV)
}

bindir="$(find_bindir)"
if [[ -n "$bindir" ]]; then
    echo "PostgreSQL server found: $("$bindir/postgres" --version) in $bindir"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "PostgreSQL server binaries not found; install them as root:" \
        "apt-get update && apt-get install -y --no-install-recommends postgresql" \
        "(or set DATABASE_URL to use an existing server)" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL server binaries not found and this is not a Debian/Ubuntu system" \
        "(no apt-get): install the PostgreSQL server with your package manager," \
        "or set DATABASE_URL to use an existing server" >&2
    exit 1
fi

# Only refresh the package lists when apt does not know the package yet.
if ! apt-cache show postgresql >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update -qq >/dev/null
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null

bindir="$(find_bindir)"
if [[ -z "$bindir" ]]; then
    echo "installed the postgresql package, but still no initdb/pg_ctl/postgres found" \
        "under /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
echo "PostgreSQL server installed: $("$bindir/postgres" --version) in $bindir"
