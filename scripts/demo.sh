#!/usr/bin/env bash
# The main job: a demo of carm_deleg on a throw-away local cluster — sample
# importers, brokers, employees, relationships, client groups and a protected
# table, showing what each actor sees and why (demo/demo.sql).
# Installs missing Debian packages, builds into a private PostgreSQL tree,
# starts its own cluster, runs the demo, and removes everything.
# Usage: scripts/demo.sh [--keep]   (--keep leaves the cluster running and prints how to connect)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/deps.sh
WORK=$(mktemp -d /tmp/carm_demo.XXXXXX); chmod 755 "$WORK"
KEEP=${1:-}
cleanup() { [ "$KEEP" = "--keep" ] || { stop_cluster "$WORK/main/data"; rm -rf "$WORK"; }; }
trap cleanup EXIT
make_tree "$WORK/pg"
PORT=$(free_port)
start_cluster "$WORK/main/data" "$PORT"
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres
psql -X -q -d postgres -f demo/demo.sql
if [ "$KEEP" = "--keep" ]; then
  echo
  echo "The demo cluster is still running: psql -h $PGHOST -p $PGPORT -U postgres postgres"
  echo "Stop it with: runuser -u postgres -- $PGBIN/pg_ctl -D $WORK/main/data stop"
fi
