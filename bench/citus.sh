#!/usr/bin/env bash
# The SPEC §11 read measurements on Citus, next to one node (docs/performance.md,
# "Citus benchmark"): the same world (bench/citus_world.sql: a broker whose BAM
# reaches N clients, payments interleaved by program) on ONE node and on a
# Citus cluster of a coordinator and two workers (state tables as reference
# tables, app.payment distributed by program_id in 4 shards), measured side
# by side in one run:
#   - pgbench point reads, 2 clients, simple and prepared protocol:
#     BEGIN; set_actor; SELECT … WHERE program_id = :p AND id = :id; COMMIT
#     (a router query on Citus) against the same transaction on the copy
#     without row-level security, as the superuser, SELECT 1 in set_actor's
#     place;
#   - count(*) and sum(amount) of every row the broker sees (every shard on
#     Citus): carm RLS against no RLS, median of 7;
#   - the first BEGIN; set_actor; point read; COMMIT of a new session,
#     median of 5;
#   - carm.has_access warm, microseconds per call.
# Every node and pgbench share this machine: Citus's ratios show what the
# distribution costs, not what it scales to.
# Usage: bench/citus.sh [--clients N] [--rows N] [--seconds S] [--out FILE]
#   defaults 2000 clients, 200000 rows, 10 s per pgbench run; the raw numbers
#   go to FILE (CSV; default /tmp/carm_citus_bench.<date>.csv).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
clients=2000
rows=200000
secs=10
out=/tmp/carm_citus_bench.$(date +%Y%m%d-%H%M%S).csv
usage() { echo "usage: bench/citus.sh [--clients N] [--rows N] [--seconds S] [--out FILE]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || usage
  case $1 in
    --clients) clients=$2 ;;
    --rows) rows=$2 ;;
    --seconds) secs=$2 ;;
    --out) out=$2 ;;
    *) usage ;;
  esac
  shift 2
done
for v in "$clients" "$rows" "$secs"; do [[ $v =~ ^[1-9][0-9]*$ ]] || usage; done
if [ ! -f "$("$PG_BINDIR_SYSTEM/pg_config" --pkglibdir)/citus.so" ]; then
  echo "Citus is not installed: scripts/citus.sh /path/to/citus-src" >&2
  exit 2
fi
scripts/deps.sh

WORK=$(mktemp -d /tmp/carm_citus_bench.XXXXXX); chmod 755 "$WORK"
nodes=(single coord w1 w2)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for n in "${nodes[@]}"; do stop_cluster "$WORK/$n/data"; done
  [ -n "${KEEP_BENCH:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
echo "== building the extension into a private tree"
make_tree "$WORK/pg"
PGBENCH=$PGBIN/pgbench

pick_ports "$WORK" "${nodes[@]}"
common=("shared_buffers = '256MB'" "work_mem = '64MB'" "synchronous_commit = off"
        "max_parallel_workers_per_gather = 0" "jit = off" "max_connections = 100"
        "carm_deleg.maintenance_interval = 0")
echo "== starting one node and a Citus cluster (coordinator + 2 workers)"
start_cluster "$WORK/single/data" "${port[single]}" "shared_preload_libraries = 'carm_deleg'" "${common[@]}"
for n in coord w1 w2; do
  start_cluster "$WORK/$n/data" "${port[$n]}" "shared_preload_libraries = 'citus,carm_deleg'" \
    "max_prepared_transactions = 100" "citus.shard_count = 4" "${common[@]}"
done

q() { local n=$1; shift; psql -X -q -At -h "$WORK/$n" -p "${port[$n]}" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

citus_join "$WORK" coord w1 w2 || fail "the Citus cluster did not form"
q coord >/dev/null <<SQL
CREATE EXTENSION carm_deleg;           -- Citus creates it on the workers too
SELECT carm.distribute_state();        -- before any state: reference tables are created empty
SQL
q single -c "CREATE EXTENSION carm_deleg"
for n in single coord; do q $n -c "CREATE ROLE bench_app LOGIN; GRANT carm_gateway TO bench_app"; done
for n in w1 w2; do
  [ "$(q $n -c "SELECT pg_has_role('bench_app', 'carm_gateway', 'MEMBER')")" = t ] ||
    fail "$n: bench_app did not reach the worker as a carm_gateway member"
done

# the world, the same on both
systems=(single coord)
declare -A label=([single]="one node" [coord]="Citus") citus=([single]=0 [coord]=1)
declare -A b0 p0 u0 bn15
for n in "${systems[@]}"; do
  t0=$(date +%s)
  line=$(q $n -v clients="$clients" -v rows="$rows" -v citus="${citus[$n]}" -f bench/citus_world.sql 2>"$WORK/world.$n.err" | tail -1) ||
    fail "${label[$n]}: the world was not built: $(tail -5 "$WORK/world.$n.err")"
  IFS='|' read -r b0[$n] p0[$n] u0[$n] contiguous bn15[$n] <<< "$line"
  [ "$contiguous" = t ] || fail "${label[$n]}: ids are not contiguous ($line)"
  echo "   ${label[$n]}: $clients clients, $rows payments in $(( $(date +%s) - t0 )) s"
done
[ "$(q coord -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'app.payment'::regclass")" = 4 ] ||
  fail "app.payment is not distributed"
plan=$(q coord -c "EXPLAIN (COSTS OFF) SELECT * FROM app.payment_raw WHERE program_id = $(( ${p0[coord]} + 1 )) AND id = 1")
[[ $plan == *"Task Count: 1"* ]] || fail "the point read is not a router query on Citus: $plan"
for n in "${systems[@]}"; do  # the broker's BAM sees every row, the reads are not empty
  seen=$(q $n -U bench_app -c "BEGIN" -c "SELECT carm.set_actor(${u0[$n]})" -c "SELECT count(*) FROM app.payment" -c "COMMIT" | tail -1)
  [ "$seen" = "$rows" ] || fail "${label[$n]}: the broker's BAM sees $seen of $rows rows"
  [ "$(q $n -U bench_app -c "BEGIN" -c "SELECT carm.set_actor(${u0[$n]})" \
       -c "SELECT carm.has_access('${bn15[$n]}', 'payments.view')" -c "COMMIT" | tail -1)" = t ] ||
    fail "${label[$n]}: the broker's BAM has no access to ${bn15[$n]}"
done

echo "system,name,value,unit" > "$out"
{ echo "run,clients,$clients,"; echo "run,rows,$rows,"; echo "run,pgbench seconds,$secs,"; } >> "$out"
record() { # record SYSTEM NAME VALUE UNIT
  [ -n "$3" ] || fail "${label[$1]}: no value for $2"
  echo "${label[$1]},$2,$3,$4" >> "$out"
}

echo "== count(*) and sum(amount) of every row the broker sees (median of 7)"
for n in "${systems[@]}"; do
  while IFS='|' read -r name v unit; do record $n "$name" "$v" "$unit"; done < <(q $n <<'SQL'
SELECT 'count(*): no RLS', bench.time('SELECT count(*) FROM app.payment_raw', 7), 'ms';
SELECT 'sum(amount): no RLS', bench.time('SELECT sum(amount) FROM app.payment_raw', 7), 'ms';
SQL
)
  while IFS='|' read -r name v unit; do record $n "$name" "$v" "$unit"; done < <(q $n -U bench_app -v u0="${u0[$n]}" -v bn15="${bn15[$n]}" <<'SQL'
BEGIN;
SELECT carm.set_actor(:u0) \g /dev/null
SELECT 'count(*): carm RLS', bench.time('SELECT count(*) FROM app.payment', 7), 'ms';
SELECT 'sum(amount): carm RLS', bench.time('SELECT sum(amount) FROM app.payment', 7), 'ms';
-- 100,000 warm calls in one statement, minus the same loop without the call
SELECT 'has_access warm',
       (bench.time(format('SELECT count(*) FROM generate_series(1, 100000) g WHERE carm.has_access(CASE WHEN g > 0 THEN %L END, ''payments.view'')', :'bn15'), 5)
        - bench.time(format('SELECT count(*) FROM generate_series(1, 100000) g WHERE (CASE WHEN g > 0 THEN %L END) IS NOT NULL', :'bn15'), 5))
       * 1000 / 100000, 'µs per call';
COMMIT;
SQL
)
done

echo "== the first BEGIN; set_actor; point read; COMMIT of a new session (median of 5)"
for n in "${systems[@]}"; do
  cold=()
  for k in 1 2 3 4 5; do
    i=$(( (k * 7919) % rows + 1 ))
    ms=$(q $n -U bench_app <<EOF | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s+=$1} END {print s}'
\timing on
BEGIN;
SELECT carm.set_actor(${u0[$n]}) \g /dev/null
SELECT * FROM app.payment WHERE program_id = $(( ${p0[$n]} + 1 + (i - 1) % clients )) AND id = $i \g /dev/null
COMMIT;
EOF
)
    cold+=("$ms")
  done
  record $n "cold: first transaction of a session" "$(printf '%s\n' "${cold[@]}" | sort -n | sed -n 3p)" ms
done

echo "== pgbench point reads, 2 clients, $secs s each"
S=$WORK/scripts; mkdir -p "$S"
cat > "$S/raw.sql" <<'EOF'
\set i random(1, :rows)
\set p :p0 + 1 + (:i - 1) % :clients
BEGIN;
SELECT 1;
SELECT * FROM app.payment_raw WHERE program_id = :p AND id = :i;
COMMIT;
EOF
for n in "${systems[@]}"; do  # the actor as a literal, as applications send it
  cat > "$S/rls.$n.sql" <<EOF
\\set i random(1, :rows)
\\set p :p0 + 1 + (:i - 1) % :clients
BEGIN;
SELECT carm.set_actor(${u0[$n]});
SELECT * FROM app.payment WHERE program_id = :p AND id = :i;
COMMIT;
EOF
done
chmod -R a+rX "$S"
tps() { # tps NODE SCRIPT ROLE PROTOCOL — transactions per second
  local n=$1 log="$WORK/pgbench.$1.$(basename "$2" .sql).$4.log"
  as_pg "$PGBENCH" -h "$WORK/$n" -p "${port[$n]}" -U "$3" -n -c 2 -j 2 -T "$secs" -M "$4" \
    -D rows="$rows" -D clients="$clients" -D p0="${p0[$n]}" -f "$2" postgres > "$log" 2>&1 || true
  if grep -q -i 'error' "$log" || ! grep -q '^tps = ' "$log"; then
    echo "FAIL: ${label[$n]}: pgbench $(basename "$2") $4:" >&2; cat "$log" >&2; exit 1
  fi
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log"
}
# the grant stores the pgbench sessions load (carm.stats, every node of a system)
for n in "${nodes[@]}"; do q $n -c "SELECT carm.stats_reset()" >/dev/null; done
for proto in simple prepared; do
  for n in "${systems[@]}"; do
    record $n "OLTP $proto: no RLS" "$(tps $n "$S/raw.sql" postgres $proto)" tps
    record $n "OLTP $proto: carm RLS" "$(tps $n "$S/rls.$n.sql" bench_app $proto)" tps
  done
done
store_stats() { # store_stats SYSTEM NODE... — loads and their mean cost over the pgbench runs
  local sys=$1 n loads=0 ms=0 l m; shift
  for n in "$@"; do
    IFS='|' read -r l m <<< "$(q $n -c "SELECT full_loads + business_loads, load_ms FROM carm.stats")"
    loads=$(( loads + l )); ms=$(awk -v a="$ms" -v b="$m" 'BEGIN {print a + b}')
  done
  record $sys "pgbench: grant store loads (all nodes)" "$loads" loads
  record $sys "pgbench: ms per grant store load" "$(awk -v a="$ms" -v b="$loads" 'BEGIN {print (b > 0 ? a / b : 0)}')" ms
}
store_stats single single
store_stats coord coord w1 w2

echo
echo "== results: $clients clients, $rows payments; Citus = coordinator + 2 workers, 4 shards, all on this machine"
{ echo "CREATE TEMP TABLE r (ord serial, system text, name text, value double precision, unit text);"
  echo "\\copy r (system, name, value, unit) FROM '$out' WITH (FORMAT csv, HEADER true)"
  cat <<'SQL'
\pset footer off
\pset null '?'
WITH v AS (SELECT system, name, value FROM r WHERE system <> 'run'),
pairs(ord, measure, num, den) AS (VALUES
  (1, 'OLTP simple: carm RLS / no RLS', 'OLTP simple: carm RLS', 'OLTP simple: no RLS'),
  (2, 'OLTP prepared: carm RLS / no RLS', 'OLTP prepared: carm RLS', 'OLTP prepared: no RLS'),
  (3, 'count(*): carm RLS / no RLS', 'count(*): carm RLS', 'count(*): no RLS'),
  (4, 'sum(amount): carm RLS / no RLS', 'sum(amount): carm RLS', 'sum(amount): no RLS')),
ratio AS (
  SELECT p.ord, p.measure, a.system, a.value / nullif(b.value, 0) AS value
  FROM pairs p JOIN v a ON a.name = p.num JOIN v b ON b.name = p.den AND b.system = a.system),
lines AS (
  SELECT ord, measure, 'ratio' AS unit,
         max(value) FILTER (WHERE system = 'one node') AS one, max(value) FILTER (WHERE system = 'Citus') AS citus
  FROM ratio GROUP BY ord, measure
  UNION ALL
  SELECT 10 + min(r.ord), r.name, min(r.unit),
         max(r.value) FILTER (WHERE r.system = 'one node'), max(r.value) FILTER (WHERE r.system = 'Citus')
  FROM r WHERE r.system <> 'run' GROUP BY r.name)
SELECT measure, unit, round(one::numeric, 2) AS "one node", round(citus::numeric, 2) AS "Citus",
       round((citus / nullif(one, 0))::numeric, 2) AS "Citus / one node"
FROM lines ORDER BY ord;
SQL
} | q single -P tuples_only=off -P format=aligned -P border=1 | sed '/^$/d'
echo
echo "raw numbers: $out"
