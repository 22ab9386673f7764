#!/usr/bin/env bash
# Run every test: formatting, lints, unit and end-to-end tests against a real PostgreSQL,
# and the browser tests in a real headless Chromium.
#
# PostgreSQL: ZRZ_TEST_DATABASE_URL if set (a server where tests may create databases),
# otherwise a private cluster under target/test-pg, started here and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-postgres.sh
./scripts/ensure-browser.sh
# The browser tests fail, rather than skip, when the browser is missing.
export ZRZ_REQUIRE_BROWSER=1

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --all-targets

started_cluster=""
cleanup() {
    if [[ -n "$started_cluster" ]]; then
        env -u DATABASE_URL ./target/debug/zerenzhi --data-dir target/test-pg cluster stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

if [[ -z "${ZRZ_TEST_DATABASE_URL:-}" ]]; then
    mkdir -p target/test-pg
    chmod 0755 target target/test-pg
    ZRZ_TEST_DATABASE_URL="$(env -u DATABASE_URL ./target/debug/zerenzhi --data-dir "$PWD/target/test-pg" cluster start)"
    export ZRZ_TEST_DATABASE_URL
    started_cluster=1
    # Databases and templates left by earlier runs.
    psql "$ZRZ_TEST_DATABASE_URL" -Atc "select datname from pg_database where datname like 'zrz\_t\_%' or datname like 'zrz\_tpl\_%'" |
        while read -r db; do psql "$ZRZ_TEST_DATABASE_URL" -qc "drop database if exists \"$db\"" || true; done
fi
echo "tests use PostgreSQL at ${ZRZ_TEST_DATABASE_URL}"

cargo test --locked --all-targets --no-fail-fast -- --test-threads "${ZRZ_TEST_THREADS:-4}"
