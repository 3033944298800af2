#!/usr/bin/env bash
# §12 bulk reference data: times carm_admin's set-based loads of businesses,
# program accounts and users on a throw-away cluster (bench/bulk.sql).
# Usage: bench/bulk.sh [--businesses N]    (default 100000, the §11 size)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
n=100000
while [ $# -gt 0 ]; do
  case $1 in
    --businesses) n=$2; shift ;;
    *) echo "usage: bench/bulk.sh [--businesses N]" >&2; exit 2 ;;
  esac
  shift
done
scripts/deps.sh
WORK=$(mktemp -d /tmp/carm_bulk.XXXXXX); chmod 755 "$WORK"
trap 'stop_cluster "$WORK/main/data"; rm -rf "$WORK"' EXIT
make_tree "$WORK/pg"
PORT=$(free_port)
start_cluster "$WORK/main/data" "$PORT" "shared_buffers = '512MB'" "max_wal_size = '4GB'"
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres
psql -X -q -d postgres -v n="$n" -f bench/bulk.sql
