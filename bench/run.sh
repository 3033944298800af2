#!/usr/bin/env bash
# carm_deleg benchmark: generates the §11 dataset on a throw-away cluster and
# measures, side by side in one run, the point check and RLS scans against
# their baselines and against the same rules as plain SQL EXISTS policies.
# Usage: bench/run.sh [--scale S | --full] [--cap SECONDS]
#   --scale S  dataset size relative to §11 (default 0.1); --full is 1.0
#   --cap N    seconds allowed to each SQL EXISTS count (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scale=0.1
cap=300
while [ $# -gt 0 ]; do
  case $1 in
    --full) scale=1.0 ;;
    --scale) scale=$2; shift ;;
    --cap) cap=$2; shift ;;
    *) echo "usage: bench/run.sh [--scale S | --full] [--cap SECONDS]" >&2; exit 2 ;;
  esac
  shift
done
scripts/deps.sh
WORK=$(mktemp -d /tmp/carm_bench.XXXXXX); chmod 755 "$WORK"
trap 'stop_cluster "$WORK/main/data"; [ -n "${KEEP_BENCH:-}" ] || rm -rf "$WORK"' EXIT
make_tree "$WORK/pg"
PORT=$(free_port)
start_cluster "$WORK/main/data" "$PORT" "shared_buffers = '2GB'" "work_mem = '64MB'" \
  "maintenance_work_mem = '1GB'" "max_wal_size = '8GB'" "synchronous_commit = off" \
  "max_parallel_workers_per_gather = 0" "jit = off"
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres
echo "generating the dataset at scale $scale ..."
t0=$(date +%s)
psql -X -q -d postgres -v scale="$scale" -f bench/generate.sql >/dev/null
psql -X -q -d postgres -f bench/sql_policies.sql >/dev/null
psql -X -q -d postgres <<'SQL'
CREATE ROLE bench_app LOGIN IN ROLE carm_gateway;
GRANT USAGE ON SCHEMA app, bench TO bench_app;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO bench_app;
-- only for the SQL EXISTS comparison tables
GRANT SELECT ON ALL TABLES IN SCHEMA carm TO bench_app;
GRANT EXECUTE ON FUNCTION carm_internal.grants(bigint) TO bench_app;
SQL
echo "generated in $(( $(date +%s) - t0 )) s; measuring ..."
psql -X -q -d postgres -v cap_ms=$((cap * 1000)) -f bench/measure.sql
[ -f bench/ops.sql ] && psql -X -q -d postgres -f bench/ops.sql
exit 0
