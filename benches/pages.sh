#!/usr/bin/env bash
# Signed-in page load (issue 3, point 9): wrk on loopback against a branch secretary's
# workbench and the root organisation's subtree view, on a `bench-data` database, side by
# side in the same run with the bare-stack reference server of ../shared/bench/limit
# (its `/page/{id}`: three indexed queries and a page). See benches/README.md.
#
# Targets on a 2-core machine: workbench >= 50 % of the reference's /page throughput with
# p99 < 20 ms at 32 connections; root subtree view p99 < 100 ms; server RSS < 100 MB.
#
# Environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), BENCH_DB
# (zrz_bench_engine: a database `benches/engine.sh` left with KEEP_DB=1; filled with
# `bench-data --orgs $ORGS` if it has no organisations), ORGS (100000), BENCH_ADDR
# (127.0.0.1:18766), CONNS (32; the subtree view also runs at 8), THREADS (2), DURATION (15s), RUNS (3),
# OVERVIEW_CACHE (the server's ZRZ_OVERVIEW_CACHE_SECONDS, default 10; 0 has the subtree
# view read its counts on every request), REFERENCE (1:
# also run the reference; 0 skips it), LIMIT_DIR (../shared/bench/limit), LIMIT_DB
# (bench), QUIET_PCT (25), QUIET_MAX (120), BENCH_OUT (log directory).
set -euo pipefail

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${BENCH_DB:-zrz_bench_engine}
ORGS=${ORGS:-100000}
ADDR=${BENCH_ADDR:-127.0.0.1:18766}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
RUNS=${RUNS:-3}
REFERENCE=${REFERENCE:-1}
QUIET_PCT=${QUIET_PCT:-25}
QUIET_MAX=${QUIET_MAX:-120}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/zrz-bench-pages.XXXXXX)}
mkdir -p "$OUT"

cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
LIMIT_DIR=${LIMIT_DIR:-$ROOT_DIR/../shared/bench/limit}
LIMIT_DB=${LIMIT_DB:-bench}
BIN=$ROOT_DIR/target/release/zerenzhi
export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
export ZRZ_LOG=${ZRZ_LOG:-warn,sqlx=error}
export ZRZ_TICK_SECONDS=0
export ZRZ_OVERVIEW_CACHE_SECONDS=${OVERVIEW_CACHE:-10}
unset ZRZ_NOW

SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

say() { printf '%s\n' "$*" | tee -a "$OUT/summary.txt"; }
sql() { psql -X -q -At -d "$DB" -c "$1"; }
cpu_total() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
wait_quiet() {
    local waited=0 t0 b0 pct
    while :; do
        t0=$(cpu_total) b0=$(cpu_busy)
        sleep 1
        pct=$(awk -v t="$(($(cpu_total) - t0))" -v b="$(($(cpu_busy) - b0))" 'BEGIN { printf "%d", t ? 100 * b / t : 0 }')
        waited=$((waited + 1))
        if ((pct <= QUIET_PCT || waited >= QUIET_MAX)); then
            echo "$pct"
            return
        fi
    done
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
say "pages benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, logs in $OUT"

cargo build --release --locked -q

if [[ "$(psql -X -At -d postgres -c "select count(*) from pg_database where datname = '$DB'")" != 1 ]]; then
    psql -X -q -d postgres -c "create database $DB"
fi
if [[ "$(sql "select count(*) from org" 2>/dev/null || echo 0)" == 0 ]]; then
    say "filling $DB: bench-data --orgs $ORGS, then the first tick"
    "$BIN" bench-data --orgs "$ORGS" >>"$OUT/bench-data.log" 2>&1
    "$BIN" tick >>"$OUT/bench-data.log" 2>&1
fi
orgs=$(sql "select count(*) from org")
# The largest tree's root, and a branch (a leaf) under it with its own secretary account.
root=$(sql "select o.code from org o where o.parent_id is null
            order by (select count(*) from org d where d.path[1] = o.id) desc limit 1")
branch_login=$(sql "select u.login from org o
                    join role_assignment r on r.org_id = o.id and r.role = 'secretary' and r.ends_on is null
                    join app_user u on u.person_id = r.person_id
                    where o.path[1] = (select id from org where code = '$root')
                      and not exists (select 1 from org c where c.parent_id = o.id)
                    order by o.id limit 1")
say "database $DB: $orgs organisations; root $root; branch secretary $branch_login; ZRZ_OVERVIEW_CACHE_SECONDS=$ZRZ_OVERVIEW_CACHE_SECONDS"

"$BIN" serve --addr "$ADDR" --pool-size 8 >>"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://$ADDR/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done

# Sign in through the form (pre-login CSRF cookie and field), as a browser does.
sign_in() {
    local login=$1 password=$2 jar="$OUT/$1.jar" csrf
    csrf=$(curl -fs -c "$jar" "http://$ADDR/login" | grep -o 'name="csrf" value="[^"]*"' | head -1 | cut -d'"' -f4)
    curl -fs -o /dev/null -b "$jar" -c "$jar" -H "Origin: http://$ADDR" \
        --data-urlencode "csrf=$csrf" --data-urlencode "login=$login" --data-urlencode "password=$password" \
        --data-urlencode "next=/" "http://$ADDR/login"
    awk '$6 ~ /zrz_session$/ { print $6 "=" $7 }' "$jar"
}
password=$(grep -o 'PASSWORD: &str = "[^"]*"' src/bench_data.rs | cut -d'"' -f2)
root_login=$(sql "select u.login from org o
                  join role_assignment r on r.org_id = o.id and r.role = 'secretary' and r.ends_on is null
                  join app_user u on u.person_id = r.person_id where o.code = '$root' limit 1")
branch_cookie=$(sign_in "$branch_login" "$password")
root_cookie=$(sign_in "$root_login" "$password")
[[ -n "$branch_cookie" && -n "$root_cookie" ]] || { echo "sign-in failed (see $OUT/server.log)" >&2; exit 1; }
for p in "/:$branch_cookie" "/subtree/$root:$root_cookie"; do
    code=$(curl -s -o "$OUT/page$(echo "${p%%:*}" | tr / _).html" -w '%{http_code}' -H "Cookie: ${p#*:}" "http://$ADDR${p%%:*}")
    [[ "$code" == 200 ]] || { echo "GET ${p%%:*} answered $code" >&2; exit 1; }
done

rss() { awk -v k="$1:" '$1 == k { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

# wrk runs; prints "req/s p50 p99 errors" medians over RUNS.
run_wrk() {
    local name=$1 path=$2 cookie=$3 conns=${4:-$CONNS} i busy line
    wrk -t"$THREADS" -c"$conns" -d5s -H "Cookie: $cookie" "http://$ADDR$path" >/dev/null 2>&1 # warm-up
    : >"$OUT/$name.runs"
    for i in $(seq 1 "$RUNS"); do
        busy=$(wait_quiet)
        line=$(wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -H "Cookie: $cookie" \
            -s "$LIMIT_DIR/wrk.lua" "http://$ADDR$path" | tee -a "$OUT/$name.wrk" | grep '^RESULT')
        echo "$line $(rss VmRSS)" >>"$OUT/$name.runs"
        say "# $name run $i (machine ${busy}% busy before): $line, RSS $(rss VmRSS) MB" >&2
    done
    printf '%s req/s, p50 %s ms, p99 %s ms, errors %s\n' \
        "$(awk '{ print $2 }' "$OUT/$name.runs" | median)" "$(awk '{ print $3 }' "$OUT/$name.runs" | median)" \
        "$(awk '{ print $4 }' "$OUT/$name.runs" | median)" "$(awk '{ s += $6 } END { print s }' "$OUT/$name.runs")"
}

say "wrk -t$THREADS -c$CONNS -d$DURATION, $RUNS runs each, medians (RESULT: req/s p50 p99 requests errors):"
wb=$(run_wrk workbench / "$branch_cookie")
say "workbench ($branch_login, /):        $wb"
st=$(run_wrk subtree "/subtree/$root" "$root_cookie")
say "subtree view (/subtree/$root):   $st"
st8=$(run_wrk subtree-c8 "/subtree/$root" "$root_cookie" 8)
say "subtree view, 8 connections:          $st8"
say "server RSS: $(rss VmRSS) MB now, peak $(rss VmHWM) MB"
cleanup
SERVER_PID=

if [[ "$REFERENCE" == 1 ]]; then
    say "reference ($LIMIT_DIR, /page/{id}, same wrk settings):"
    DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$LIMIT_DB" PORT=18767 CONNS="$CONNS" THREADS="$THREADS" \
        DURATION="$DURATION" RUNS="$RUNS" ENDPOINTS=page PGBENCH=0 QUIET_PCT="$QUIET_PCT" QUIET_MAX="$QUIET_MAX" \
        "$LIMIT_DIR/run.sh" 2>&1 | tee "$OUT/reference.txt" | grep -v '^#' | tee -a "$OUT/summary.txt"
fi
say "done: $OUT/summary.txt"
