#!/usr/bin/env bash
# Benchmark of `zerenzhi import orgs` (issue 4: 100,000 organisations in under 60 s).
#
# Generates a 100,000-organisation CSV (five levels: 3 roots, 60 second-level committees,
# 1,200 third-level committees, 30,000 fourth-level committees and branches, the rest
# branches at level five; codes like JT-03-12-017-05, names like 第17党支部; rows shuffled,
# so most parents come after some of their children; ~1 % of branches closed in 2025) and
# the same tree as XLSX (written by `zerenzhi export`). Then, RUNS times each, on fresh
# databases with the three built-in templates installed from 2026-01-01 (so every imported
# organisation's duties are created in the same transaction, and counted in the time):
#
#   dry run (CSV), import (CSV), re-import of the same CSV (changes nothing),
#   dry run (XLSX), import (XLSX) into another fresh database,
#
# and once, for comparison, the CSV import into a database without templates (no duties).
# Prints each time, the medians, the duties created and the machine's load.
#
# Usage: benches/import.sh            (N=100000 RUNS=3 by default)
#        N=20000 RUNS=1 benches/import.sh
# Needs: PostgreSQL at $PG (default postgres://postgres@127.0.0.1:5432), python3, curl;
# builds target/release/zerenzhi if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
RUNS=${RUNS:-3}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
BIN=${BIN:-target/release/zerenzhi}
NOW=${NOW:-2026-03-26T10:00:00+08:00}
PORT=${PORT:-18473}

[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d /tmp/zrz-import-bench.XXXXXX)
SERVER=""
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
    # The databases this run made (named with its process id).
    for db in $(psql "$PG/postgres" -Atc "select datname from pg_database where datname like 'zrz_bench_import_%_$$'"); do
        psql "$PG/postgres" -qc "drop database if exists $db" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

export ZRZ_NOW="$NOW" ZRZ_LOG=error ZRZ_DATA_DIR="$WORK/data" ZRZ_TICK_SECONDS=0 PGOPTIONS="-c client_min_messages=warning"

echo "== generating $N organisations"
python3 - "$N" "$WORK/orgs.csv" <<'PY'
import random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(20260326)
rows = []
def day(lo, hi):
    y = rnd.randint(lo, hi); m = rnd.randint(1, 12); d = rnd.randint(1, 28)
    return f"{y}-{m:02d}-{d:02d}"
roots = [("JT", "基准集团党委", "集团党委"), ("GS", "基准分公司党委", "党委"), ("JW", "基准县教育工委", "党委")]
leaf_kind = {"JT": "党支部", "GS": "党支部", "JW": "学校党支部"}
for code, name, kind in roots:
    rows.append([code, name, kind, "", "2000-01-01", ""])
level2 = max(3, n * 6 // 10000)          # 60 at 100,000
level3 = max(6, n * 12 // 1000)          # 1,200
level4 = max(12, n * 3 // 10)            # 30,000
level4_mid = level4 // 5                 # 6,000 committees at level 4
level5 = n - len(roots) - level2 - level3 - level4
l2 = []
for i in range(level2):
    root = roots[i % 3][0]
    code = f"{root}-{i // 3 + 1:02d}"
    rows.append([code, f"第{i // 3 + 1}分公司党委", "党委", root, day(2001, 2010), ""]); l2.append(code)
l3 = []
for i in range(level3):
    parent = l2[i % len(l2)]
    code = f"{parent}-{i // len(l2) + 1:02d}"
    rows.append([code, f"第{i // len(l2) + 1}党总支", "党委", parent, day(2005, 2015), ""]); l3.append(code)
l4 = []
for i in range(level4):
    parent = l3[i % len(l3)]
    code = f"{parent}-{i // len(l3) + 1:03d}"
    if i < level4_mid:
        rows.append([code, f"第{i // len(l3) + 1}党委", "党委", parent, day(2008, 2018), ""]); l4.append(code)
    else:
        kind = leaf_kind[code[:2]]
        until = day(2025, 2025) if rnd.random() < 0.01 else ""
        rows.append([code, f"第{i // len(l3) + 1}{kind}", kind, parent, day(2010, 2024), until])
for i in range(level5):
    parent = l4[i % len(l4)]
    code = f"{parent}-{i // len(l4) + 1:02d}"
    kind = leaf_kind[code[:2]]
    until = day(2025, 2025) if rnd.random() < 0.01 else ""
    rows.append([code, f"第{i // len(l4) + 1}{kind}", kind, parent, day(2010, 2024 if until else 2025), until])
rnd.shuffle(rows)
with open(out, "w", encoding="utf-8-sig", newline="") as f:
    f.write("组织代码,组织名称,组织类型,上级组织代码,成立日期,撤销日期\r\n")
    for r in rows:
        f.write(",".join(r) + "\r\n")
print(f"{len(rows)} rows, {level4_mid} level-4 committees, {level5} level-5 branches")
PY
ls -l "$WORK/orgs.csv"

fresh_db() {
    local db="zrz_bench_import_$1_$$"
    psql "$PG/postgres" -qc "drop database if exists $db" >/dev/null
    psql "$PG/postgres" -qc "create database $db" >/dev/null
    echo "$PG/$db"
}

# A fresh database with the three templates installed (through the API, as an admin would).
fresh_db_with_templates() {
    local url; url=$(fresh_db "$1")
    echo 'bench-import-passphrase-2026' | DATABASE_URL="$url" "$BIN" user create bench --admin >/dev/null
    local token; token=$(DATABASE_URL="$url" "$BIN" token create bench | awk '{print $NF}')
    DATABASE_URL="$url" ZRZ_ADDR="127.0.0.1:$PORT" "$BIN" serve >/dev/null 2>&1 &
    SERVER=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    for t in ideology-company ideology-branch-company ideology-school; do
        curl -fs -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d '{"effective_from": "2026-01-01", "root": null}' "http://127.0.0.1:$PORT/api/v1/templates/$t/install"
    done
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
    echo "$url"
}

# Seconds a command takes; its output goes to $WORK/last.out (exit 0 required).
timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >"$WORK/last.out" 2>&1 || { cat "$WORK/last.out"; echo "FAILED: $*"; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "== writing the same tree as XLSX (zerenzhi export)"
url=$(fresh_db xlsx)
DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.csv" >/dev/null 2>&1
t_export=$(timed env DATABASE_URL="$url" "$BIN" export orgs "$WORK/orgs.xlsx")
ls -l "$WORK/orgs.xlsx"
echo "export to XLSX: ${t_export}s"

echo "== load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
declare -a DRY IMP RE XDRY XIMP
for i in $(seq 1 "$RUNS"); do
    url=$(fresh_db_with_templates "r$i")
    DRY+=("$(timed env DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.csv" --dry-run)")
    IMP+=("$(timed env DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.csv")")
    duties=$(grep -o '[0-9]* duties created' "$WORK/last.out" || true)
    RE+=("$(timed env DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.csv")")
    grep -q '0 new, 0 changed' "$WORK/last.out" || { cat "$WORK/last.out"; echo "re-import changed something"; exit 1; }
    url=$(fresh_db_with_templates "x$i")
    XDRY+=("$(timed env DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.xlsx" --dry-run)")
    XIMP+=("$(timed env DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.xlsx")")
    echo "run $i: csv dry ${DRY[-1]}s, import ${IMP[-1]}s ($duties), re-import ${RE[-1]}s; xlsx dry ${XDRY[-1]}s, import ${XIMP[-1]}s"
done
url=$(fresh_db plain)
t_plain=$(timed env DATABASE_URL="$url" "$BIN" import orgs "$WORK/orgs.csv")
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "medians of $RUNS runs, $N organisations (each time includes process start and migrations check):"
echo "  CSV  dry run      $(median "${DRY[@]}") s"
echo "  CSV  import       $(median "${IMP[@]}") s   (with duties: three templates installed)"
echo "  CSV  re-import    $(median "${RE[@]}") s   (0 changes)"
echo "  XLSX dry run      $(median "${XDRY[@]}") s"
echo "  XLSX import       $(median "${XIMP[@]}") s"
echo "  CSV  import without templates (no duties), once: ${t_plain} s"
echo "  XLSX export, once: ${t_export} s"
