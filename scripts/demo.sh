#!/usr/bin/env bash
# Start the portal with demo data on http://127.0.0.1:8080 (or ZRZ_ADDR).
#
# Installs the PostgreSQL server binaries if they are missing, builds the release binary,
# and runs `zerenzhi demo`: without DATABASE_URL it keeps its own PostgreSQL cluster in
# ZRZ_DATA_DIR (default ./zerenzhi-data), started now and stopped when you press Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/ensure-postgres.sh
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi
cargo build --release --locked
exec ./target/release/zerenzhi demo "$@"
