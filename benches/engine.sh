#!/usr/bin/env bash
# The duty engine at scale (DESIGN.md section 6): `bench-data --orgs $ORGS` on a fresh
# database, the first full `tick` of the current year, idle ticks, then the rollup and
# duties API over the whole tree, with EXPLAIN (ANALYZE, BUFFERS) of the SQL behind them.
# See benches/README.md. Targets on a 2-core machine: first tick < 20 s, idle tick < 1 s,
# root rollup < 100 ms, one organisation's duties < 5 ms.
#
# Environment: ORGS (100000), PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres),
# BENCH_DB (zrz_bench_engine, dropped and created), BENCH_ADDR (127.0.0.1:18765),
# REQUESTS (20 per endpoint), IDLE_TICKS (5), KEEP_DB (1 keeps the database afterwards),
# BENCH_OUT (directory for the logs; default a new one under /tmp), QUIET_PCT (25) and
# QUIET_MAX (120): before each timed step wait, at most QUIET_MAX s, until the machine's
# CPU is at most QUIET_PCT % busy (it is shared); the busy % seen is printed.
set -euo pipefail

ORGS=${ORGS:-100000}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${BENCH_DB:-zrz_bench_engine}
ADDR=${BENCH_ADDR:-127.0.0.1:18765}
REQUESTS=${REQUESTS:-20}
IDLE_TICKS=${IDLE_TICKS:-5}
FIRST_TICKS=${FIRST_TICKS:-3}
KEEP_DB=${KEEP_DB:-0}
QUIET_PCT=${QUIET_PCT:-25}
QUIET_MAX=${QUIET_MAX:-120}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/zrz-bench-engine.XXXXXX)}
mkdir -p "$OUT"

cd "$(dirname "$0")/.."
BIN=$PWD/target/release/zerenzhi
export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
# sqlx logs every statement over 1 s as a warning; the first tick has many.
export ZRZ_LOG=${ZRZ_LOG:-warn,sqlx=error}
# The scheduler must not run inside `serve`: the ticks below are what is measured.
export ZRZ_TICK_SECONDS=0
unset ZRZ_NOW

SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ "$KEEP_DB" != 1 ]]; then
        psql -X -q -d postgres -c "drop database if exists $DB" 2>/dev/null || true
    fi
}
trap cleanup EXIT

say() { printf '%s\n' "$*" | tee -a "$OUT/summary.txt"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
sql() { psql -X -q -At -d "$DB" -c "$1"; }
now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
cpu_total() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
cpu_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# Wait until the machine is quiet (busy <= QUIET_PCT % over 1 s, or QUIET_MAX s passed);
# print the busy % last seen.
wait_quiet() {
    local waited=0 t0 b0 pct
    while :; do
        t0=$(cpu_total); b0=$(cpu_busy); sleep 1
        pct=$(( ($(cpu_busy) - b0) * 100 / ($(cpu_total) - t0 + 1) ))
        waited=$((waited + 1))
        if (( pct <= QUIET_PCT || waited >= QUIET_MAX )); then echo "$pct"; return; fi
    done
}
# CPU seconds used by this database's backends while a command runs (sampled every
# 0.2 s, so a backend's last fraction of a second may be missed).
PG_CPU_FILE=
pg_cpu_start() {
    PG_CPU_FILE=$(mktemp "$OUT/pgcpu.XXXXXX")
    (
        while :; do
            for pid in $(pgrep -f "^postgres: ([^ ]+: )?$PGUSER $DB " || true); do
                awk -v p="$pid" '{ print p, $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true
            done >> "$PG_CPU_FILE"
            sleep 0.2
        done
    ) &
    PG_CPU_WATCHER=$!
}
pg_cpu_stop() {
    kill "$PG_CPU_WATCHER" 2>/dev/null || true
    wait "$PG_CPU_WATCHER" 2>/dev/null || true
    awk -v hz="$(getconf CLK_TCK)" '{ if (!($1 in first)) first[$1] = $2; last[$1] = $2 }
        END { for (p in last) s += last[p] - first[p]; printf "%.1f", s / hz }' "$PG_CPU_FILE"
}
# Median and maximum of numbers, one per line on standard input.
median_max() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "median %.4f max %.4f (n=%d)", m, v[NR], NR }'; }

say "== zerenzhi engine benchmark: $ORGS organisations, database $DB on $PGHOST:$PGPORT; logs in $OUT"
say "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'), load $(load) at start ($(date -u +%FT%TZ))"
say "postgres: $(psql -X -At -d postgres -c 'show server_version')," \
    "$(psql -X -At -d postgres -c "select string_agg(name || '=' || current_setting(name), ' ' order by name) from pg_settings where name in ('shared_buffers', 'work_mem', 'max_wal_size', 'jit', 'synchronous_commit', 'autovacuum', 'max_parallel_workers_per_gather')")"

cargo build --release 2>&1 | tail -n 1

psql -X -q -d postgres -c "drop database if exists $DB" -c "create database $DB"

# --- bench-data -------------------------------------------------------------------------
busy=$(wait_quiet)
pg_cpu_start
t0=$(now_ns)
"$BIN" bench-data --orgs "$ORGS" | tee "$OUT/bench-data.txt"
t1=$(now_ns)
pg_cpu=$(pg_cpu_stop)
say "bench-data: $(secs "$t0" "$t1") s wall, PostgreSQL backends ${pg_cpu} CPU-s (CPU busy $busy % before; load $(load) after)"
sed -n 's/^bench-data: /  /p' "$OUT/bench-data.txt" >> "$OUT/summary.txt"

# --- the first tick: materializes the whole year ----------------------------------------
# FIRST_TICKS runs, each on a fresh copy of the filled database (a template copy, which
# also checkpoints: a tick does not pay for writing out what bench-data left dirty).
# The last run's database is the one measured below.
psql -X -q -d postgres -c "checkpoint" -c "drop database if exists ${DB}_filled" \
    -c "alter database $DB rename to ${DB}_filled"
: > "$OUT/first.txt"
for i in $(seq 1 "$FIRST_TICKS"); do
    psql -X -q -d postgres -c "drop database if exists $DB" -c "create database $DB template ${DB}_filled"
    busy=$(wait_quiet)
    say "first tick, run $i of $FIRST_TICKS (CPU busy $busy % before, load $(load)):"
    pg_cpu_start
    /usr/bin/time -v "$BIN" tick > "$OUT/tick-1.txt" 2> "$OUT/tick-1.time"
    pg_cpu=$(pg_cpu_stop)
    say "  $(cat "$OUT/tick-1.txt")"
    say "  wall $(awk -F': ' '/Elapsed \(wall clock\)/ { print $2 }' "$OUT/tick-1.time"), PostgreSQL backends ${pg_cpu} CPU-s," \
        "client max RSS $(awk -F': ' '/Maximum resident/ { print $2 }' "$OUT/tick-1.time") KiB (load after $(load))"
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (j = 1; j <= n; j++) s = s * 60 + t[j]; print s }' \
        "$OUT/tick-1.time" >> "$OUT/first.txt"
done
psql -X -q -d postgres -c "drop database ${DB}_filled"
say "first tick: $(median_max < "$OUT/first.txt") s wall"

# --- idle ticks: nothing changed --------------------------------------------------------
: > "$OUT/idle.txt"
: > "$OUT/tick-idle.txt"
busy=$(wait_quiet)
for _ in $(seq "$IDLE_TICKS"); do
    a=$(now_ns)
    "$BIN" tick >> "$OUT/tick-idle.txt"
    b=$(now_ns)
    secs "$a" "$b" >> "$OUT/idle.txt"
    echo >> "$OUT/idle.txt"
done
say "idle tick (whole process: connect, migrations check, one pass): $(grep . "$OUT/idle.txt" | median_max) s (CPU busy $busy % before, load $(load))"
say "  $(tail -n 1 "$OUT/tick-idle.txt")"

# --- the server ---------------------------------------------------------------------------
"$BIN" serve --addr "$ADDR" > "$OUT/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://$ADDR/healthz" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
    sleep 0.1
done
echo 'bench-admin-password-2026' | "$BIN" user create bench-admin --admin --name 基准管理员 > /dev/null
TOKEN=$("$BIN" token create bench-admin --label bench | awk '{ print $NF }')

YEAR=$(TZ=Asia/Shanghai date +%Y)
QUARTER="$YEAR-Q$(( ($(TZ=Asia/Shanghai date +%-m) - 1) / 3 + 1 ))"
mapfile -t ROOTS < <(sql "select code from org where parent_id is null order by id")
ROOT_A_ID=$(sql "select id from org where parent_id is null order by id limit 1")
MID=$(sql "select o.code from org o where o.kind = 'committee' and cardinality(o.path) = 3 and o.path[1] = $ROOT_A_ID
           order by (select count(*) from org c where c.parent_id = o.id) desc, o.id limit 1")
BRANCH=$(sql "select code from org where kind = 'branch' and path[1] = $ROOT_A_ID and active_until is null
              and active_from < date '$YEAR-01-01' and cardinality(path) = 4 order by id limit 1")
say "endpoints: roots ${ROOTS[*]}, mid-level committee $MID ($(sql "select count(*) from org where parent_id = (select id from org where code = '$MID')") children), branch $BRANCH; periods $YEAR and $QUARTER"

# GET a URL $REQUESTS times (after one warm-up request) and print median and max seconds.
time_get() {
    local url=$1 name=$2 code first
    first=$(curl -sS -o "$OUT/$name.json" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $TOKEN" "$url")
    code=${first%% *}
    if [[ "$code" != 200 ]]; then
        say "  $name: HTTP $code"; cat "$OUT/$name.json"; echo; return
    fi
    for _ in $(seq "$REQUESTS"); do
        curl -sS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "$url"
    done > "$OUT/$name.times"
    say "  $(printf '%-40s' "$name") $(median_max < "$OUT/$name.times") s; first ${first#* } s"
}

busy=$(wait_quiet)
say "API timings (curl time_total; CPU busy $busy % before, load $(load)):"
for root in "${ROOTS[@]}"; do
    time_get "http://$ADDR/api/v1/orgs/$root/rollup?period=$YEAR" "rollup-$root-$YEAR"
    time_get "http://$ADDR/api/v1/orgs/$root/rollup?period=$QUARTER" "rollup-$root-$QUARTER"
done
time_get "http://$ADDR/api/v1/orgs/$MID/rollup?period=$YEAR" "rollup-$MID-$YEAR"
time_get "http://$ADDR/api/v1/orgs/$MID/rollup?period=$QUARTER" "rollup-$MID-$QUARTER"
time_get "http://$ADDR/api/v1/orgs/$BRANCH/duties?period=$QUARTER" "duties-$BRANCH-$QUARTER"
time_get "http://$ADDR/api/v1/orgs/$BRANCH/duties?period=$YEAR" "duties-$BRANCH-$YEAR"
say "  root rollup $YEAR counts: $(head -c 400 "$OUT/rollup-${ROOTS[0]}-$YEAR.json" | grep -o '"counts":{[^}]*}' | head -n 1)"
say "server RSS: $(awk '/^VmRSS/ { print $2 " " $3 }' "/proc/$SERVER_PID/status") (peak $(awk '/^VmHWM/ { print $2 " " $3 }' "/proc/$SERVER_PID/status"))"

# --- sizes ---------------------------------------------------------------------------------
say "database: $(sql "select pg_size_pretty(pg_database_size(current_database()))");" \
    "$(sql "select string_agg(format('%s %s rows %s', c, n, pg_size_pretty(pg_total_relation_size(c::regclass))), '; ')
            from (values ('org', (select count(*) from org)), ('duty', (select count(*) from duty)),
                         ('duty_total', (select count(*) from duty_total)), ('rule_period', (select count(*) from rule_period)),
                         ('record', (select count(*) from record)), ('record_version', (select count(*) from record_version))) v(c, n)")"

# --- EXPLAIN of the SQL behind the rollup, the duties list and the idle tick -----------------
ROOT_ID=$ROOT_A_ID
MID_ID=$(sql "select id from org where code = '$MID'")
# The ids the rollup passes to subtree_counts: the organisation's children and itself.
ROOT_IDS=$(sql "select array_append(array_agg(id order by code), $ROOT_ID) from org where parent_id = $ROOT_ID")
MID_IDS=$(sql "select array_append(array_agg(id order by code), $MID_ID) from org where parent_id = $MID_ID")
BRANCH_ID=$(sql "select id from org where code = '$BRANCH'")
explain() {
    local title=$1 query=$2
    {
        echo "---- $title"
        psql -X -q -d "$DB" -c "explain (analyze, buffers) $query"
    } >> "$OUT/explain.txt"
}
: > "$OUT/explain.txt"
# orgs::children (src/db/orgs.rs)
explain "children of the root (orgs::children)" \
    "select o.id, o.code, o.name, o.kind, p.code as parent, o.parent_id, o.path, o.active_from, o.active_until
     from org o left join org p on p.id = o.parent_id where o.parent_id = $ROOT_ID order by o.code"
explain "children of the mid-level committee (orgs::children)" \
    "select o.id, o.code, o.name, o.kind, p.code as parent, o.parent_id, o.path, o.active_from, o.active_until
     from org o left join org p on p.id = o.parent_id where o.parent_id = $MID_ID order by o.code"
# duties::subtree_counts (src/db/duties.rs) for the root and its children
for key in "$YEAR" "$QUARTER"; do
    explain "subtree_counts of the root and its children, $key" \
        "select t.org_id, t.class, t.n, rp.due_at, rp.due_soon_at
         from subtree_total t join rule_period rp on rp.rule_id = t.rule_id and rp.period_key = t.period_key
         where t.org_id = any('$ROOT_IDS'::bigint[])
           and t.period_key = '$key' and t.n <> 0"
    explain "subtree_counts of the mid-level committee and its children, $key" \
        "select t.org_id, t.class, t.n, rp.due_at, rp.due_soon_at
         from subtree_total t join rule_period rp on rp.rule_id = t.rule_id and rp.period_key = t.period_key
         where t.org_id = any('$MID_IDS'::bigint[])
           and t.period_key = '$key' and t.n <> 0"
done
# duties::for_org_period
explain "one branch's duties, $QUARTER (duties::for_org_period)" \
    "select d.id, d.rule_id, r.code as rule, d.person_id, p.name as person_name, d.period_key, d.due_at,
            rp.due_soon_at, d.required, d.accepted, d.pending, d.class, v.title, v.clause, r.record_kind, v.needs_review
     from duty d join rule r on r.id = d.rule_id
     join rule_period rp on rp.rule_id = d.rule_id and rp.period_key = d.period_key
     join rule_version v on v.id = rp.version_id left join person p on p.id = d.person_id
     where d.org_id = $BRANCH_ID and d.period_key = '$QUARTER'
     order by r.system_id, r.position, p.name, d.person_id"
# The idle tick: the materializer's marker, then the sweep's rule_period scan (src/scheduler/mod.rs)
explain "idle tick: materializer_state" "select materialized_through from materializer_state"
explain "idle tick: rule periods to sweep" \
    "select rule_id, period_key, due_soon_at, due_at,
            due_soon_swept_at is not null as due_soon_swept, overdue_swept_at is not null as overdue_swept
     from rule_period
     where materialized_at is not null
       and ((due_soon_swept_at is null and due_soon_at <= now()) or (overdue_swept_at is null and due_at <= now()))
     order by due_soon_at, rule_id"
say "EXPLAIN (ANALYZE, BUFFERS): $OUT/explain.txt (execution times below)"
awk '/^---- / { t = substr($0, 6) } /Execution Time/ { printf "  %-75s %s\n", t, $3 " ms" }' "$OUT/explain.txt" | tee -a "$OUT/summary.txt"

say "load at end: $(load)"
[[ "$KEEP_DB" == 1 ]] && say "kept database $DB (DATABASE_URL=$DATABASE_URL)"
exit 0
