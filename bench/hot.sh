#!/usr/bin/env bash
# The hot-path benchmark (SPEC §11, revision 1.1): a broker whose BAM reaches
# 2,000 and then 20,000 clients, 1,000,000 payments interleaved by program and
# the same rows clustered, measured side by side in one run:
#   - OLTP point reads with pgbench, 2 clients, simple and prepared protocol:
#     BEGIN; set_actor; SELECT … WHERE id = :id; COMMIT against the same
#     transaction without RLS (the superuser, a SELECT 1 in set_actor's place)
#     and against the hand-written peer;
#   - set_actor alone (prepared), as the difference of two pgbench runs;
#   - the first query of a new session (cold);
#   - readers while 10 delegation changes a second are made elsewhere;
#   - count(*) and sum(amount) of every row: no RLS, the floor, carm RLS, peer.
# Usage: bench/hot.sh [--clients "2000 20000"] [--rows N] [--seconds S] [--pg-config PATH]
#   --pg-config PATH  the PostgreSQL installation to measure (env PG_CONFIG),
#                     as for scripts/test.sh; default Debian's PostgreSQL 15
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${PG_CONFIG:-}" ] && CARM_PG_CONFIG=$PG_CONFIG
unset PG_CONFIG
worlds="2000 20000"
rows=1000000
secs=10
while [ $# -gt 0 ]; do
  case $1 in
    --clients) worlds=$2; shift ;;
    --rows) rows=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --pg-config) CARM_PG_CONFIG=$2; shift ;;
    *) echo "usage: bench/hot.sh [--clients \"2000 20000\"] [--rows N] [--seconds S] [--pg-config PATH]" >&2; exit 2 ;;
  esac
  shift
done
[ -z "${CARM_PG_CONFIG:-}" ] || export CARM_PG_CONFIG
. scripts/lib.sh
echo "bench/hot.sh on $("$CARM_PG_CONFIG" --version)"
scripts/deps.sh
WORK=$(mktemp -d /tmp/carm_hot.XXXXXX); chmod 755 "$WORK"
trap 'kill $(jobs -p) 2>/dev/null || true; stop_cluster "$WORK/main/data"; [ -n "${KEEP_BENCH:-}" ] || rm -rf "$WORK"' EXIT
make_tree "$WORK/pg"
PATH=$PGBIN:$PATH   # psql of the measured major
PORT=$(free_port)
start_cluster "$WORK/main/data" "$PORT" "shared_buffers = '1GB'" "work_mem = '64MB'" \
  "maintenance_work_mem = '512MB'" "max_wal_size = '4GB'" "synchronous_commit = off" \
  "max_parallel_workers_per_gather = 0" "jit = off" "max_connections = 50" \
  "shared_preload_libraries = 'carm_deleg'" "carm_deleg.maintenance_interval = 0"
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres
PGBENCH=$PGBIN/pgbench
psql -X -q -d postgres <<'SQL'
CREATE EXTENSION carm_deleg;  -- creates carm_gateway
CREATE ROLE bench_app LOGIN IN ROLE carm_gateway;
CREATE TABLE hot_result (world int, name text, value double precision, unit text);
GRANT INSERT ON hot_result TO bench_app;
SQL

# pgbench SCRIPT ROLE PROTOCOL — transactions per second
tps() {
  as_pg "$PGBENCH" -h "$PGHOST" -p "$PGPORT" -U "$2" -n -c 2 -j 2 -T "$secs" -M "$3" \
    -D rows="$rows" -f "$1" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
record() { # record WORLD NAME VALUE UNIT
  psql -X -q -d postgres -c "INSERT INTO hot_result VALUES ($1, '$2', ${3:-NULL}, '$4')"
}

S=$WORK/scripts; mkdir -p "$S"
cat > "$S/raw.sql" <<'EOF'
\set id random(1, :rows)
BEGIN;
SELECT 1;
SELECT * FROM app.payment WHERE id = :id;
COMMIT;
EOF
cat > "$S/rls.sql" <<'EOF'
\set id random(1, :rows)
BEGIN;
SELECT carm.set_actor(1);
SELECT * FROM app.payment WHERE id = :id;
COMMIT;
EOF
cat > "$S/floor.sql" <<'EOF'
\set id random(1, :rows)
BEGIN;
SELECT 1;
SELECT * FROM app.payment_floor WHERE id = :id;
COMMIT;
EOF
cat > "$S/peer.sql" <<'EOF'
\set id random(1, :rows)
BEGIN;
SELECT set_config('bench.user', '1', true);
SELECT * FROM app.payment_peer WHERE id = :id;
COMMIT;
EOF
cat > "$S/noactor.sql" <<'EOF'
BEGIN;
SELECT 1;
SELECT 1;
COMMIT;
EOF
cat > "$S/actor.sql" <<'EOF'
BEGIN;
SELECT carm.set_actor(1);
SELECT 1;
COMMIT;
EOF
chmod -R a+r "$S"

for n in $worlds; do
  echo "== world: a broker with $n clients, $rows payments"
  t0=$(date +%s)
  psql -X -q -d postgres -v clients="$n" -v rows="$rows" -f bench/hot_world.sql >/dev/null
  echo "   generated in $(( $(date +%s) - t0 )) s"
  psql -X -q -d postgres -v world="$n" -f bench/hot_scans_base.sql >/dev/null
  psql -X -q -d postgres -U bench_app -v world="$n" -f bench/hot_scans_rls.sql | sed 's/^/   /'

  # the first query of a new session, five times (median)
  cold=()
  for k in 1 2 3 4 5; do
    ms=$(psql -X -q -d postgres -U bench_app <<EOF | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s+=$1} END {print s}'
\timing on
BEGIN;
SELECT carm.set_actor(1);
SELECT * FROM app.payment WHERE id = $(( (k * 7919) % rows + 1 ));
COMMIT;
EOF
)
    cold+=("$ms")
  done
  record "$n" "cold: first BEGIN; set_actor; point read; COMMIT of a session" \
    "$(printf '%s\n' "${cold[@]}" | sort -n | sed -n 3p)" ms

  for proto in simple prepared; do
    record "$n" "OLTP $proto: no RLS" "$(tps "$S/raw.sql" postgres $proto)" tps
    record "$n" "OLTP $proto: carm RLS" "$(tps "$S/rls.sql" bench_app $proto)" tps
    record "$n" "OLTP $proto: peer" "$(tps "$S/peer.sql" bench_app $proto)" tps
    record "$n" "OLTP $proto: RLS floor (trivial policy, no set_actor)" "$(tps "$S/floor.sql" bench_app $proto)" tps
  done
  record "$n" "set_actor: BEGIN; SELECT 1; SELECT 1; COMMIT" "$(tps "$S/noactor.sql" bench_app prepared)" tps
  record "$n" "set_actor: BEGIN; set_actor; SELECT 1; COMMIT" "$(tps "$S/actor.sql" bench_app prepared)" tps

  # readers while another business's delegation changes 10 times a second
  changes=$(( secs * 10 + 20 ))
  {
    for i in $(seq 1 "$changes"); do
      echo "UPDATE carm.employee SET role = CASE role WHEN 'VIEWER' THEN 'EDITOR' ELSE 'VIEWER' END"
      echo "  WHERE business_id = $(( n + 2 )) AND user_id = $(( n + 3 ));"
      echo "SELECT pg_sleep(0.1);"
    done
  } > "$S/changes.sql"
  psql -X -q -d postgres -f "$S/changes.sql" >/dev/null &
  chg=$!
  record "$n" "OLTP prepared: carm RLS, 10 changes/s elsewhere" "$(tps "$S/rls.sql" bench_app prepared)" tps
  record "$n" "OLTP simple: carm RLS, 10 changes/s elsewhere" "$(tps "$S/rls.sql" bench_app simple)" tps
  kill "$chg" 2>/dev/null || true; wait "$chg" 2>/dev/null || true
done

echo
echo "== results: ratios of two measurements of the same world in this run (chosen plan vs forced sequential scan: 1.05 allows for timing noise)"
psql -X -q -d postgres -f bench/hot_report.sql
