#!/usr/bin/env bash
# Make sure the browser tests have their browser: Debian's `chromium` and `chromium-driver`
# (at /usr/bin/chromium and /usr/bin/chromedriver, as tests/browser.rs expects), and
# `fonts-noto-cjk` so that Chinese pages render (and screenshot) with real glyphs.
# Installs what is missing with apt-get (through sudo when not root). Prints one line
# saying what it found or installed.
set -euo pipefail

packages=()
[[ -x /usr/bin/chromium ]] || packages+=(chromium)
[[ -x /usr/bin/chromedriver ]] || packages+=(chromium-driver)
if ! dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q "install ok installed"; then
    packages+=(fonts-noto-cjk)
fi

describe() {
    printf '%s; %s\n' "$(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?')" \
        "$(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2 || echo 'chromedriver ?')"
}

if [[ ${#packages[@]} -eq 0 ]]; then
    echo "Browser for the tests found: $(describe)"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "The browser tests need ${packages[*]}; install as root:" \
        "apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "The browser tests need ${packages[*]} and this is not a Debian/Ubuntu system (no apt-get):" \
        "install Chromium and its chromedriver at /usr/bin/chromium and /usr/bin/chromedriver" >&2
    exit 1
fi

# Only refresh the package lists when apt does not know a package yet.
for p in "${packages[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
        "${as_root[@]}" apt-get update -qq >/dev/null
        break
    fi
done
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    echo "installed ${packages[*]}, but /usr/bin/chromium or /usr/bin/chromedriver is still missing" >&2
    exit 1
fi
echo "Browser for the tests installed (${packages[*]}): $(describe)"
