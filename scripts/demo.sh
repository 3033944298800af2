#!/usr/bin/env bash
# The main job: a demo of carm_deleg on a throw-away local cluster — sample
# importers, brokers, employees, relationships, client groups and a protected
# table, showing what each actor sees and why (demo/demo.sql).
# Installs missing Debian packages, builds into a private PostgreSQL tree,
# starts its own cluster, runs the demo, and removes everything.
# Usage: scripts/demo.sh [--keep] [--port N] [--dir D]
#   --keep    leave the cluster running and print how to connect
#   --port N  TCP port of the cluster (default: a free one; env CARM_PORT)
#   --dir D   work directory (created; default: a new /tmp/carm_demo.*; env CARM_WORK)
# Errors go to the same stream as the output, so each refusal appears right
# after its statement even when the output is redirected to a file.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
KEEP=""; PORT=${CARM_PORT:-}; WORK=${CARM_WORK:-}
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=--keep ;;
    --port) PORT=$2; shift ;;
    --dir) WORK=$2; shift ;;
    *) echo "usage: scripts/demo.sh [--keep] [--port N] [--dir D]" >&2; exit 2 ;;
  esac
  shift
done
scripts/deps.sh
if [ -n "$WORK" ]; then
  # a directory of its own: everything in it is removed at the end
  if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then
    echo "$WORK is not empty; give a new or empty directory" >&2; exit 2
  fi
  mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
else
  WORK=$(mktemp -d /tmp/carm_demo.XXXXXX)
fi
chmod 755 "$WORK"
cleanup() { [ "$KEEP" = "--keep" ] || { stop_cluster "$WORK/main/data"; rm -rf "$WORK"; }; }
trap cleanup EXIT
make_tree "$WORK/pg"
[ -n "$PORT" ] || PORT=$(free_port)
start_cluster "$WORK/main/data" "$PORT"
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres
psql -X -q -d postgres -f demo/demo.sql 2>&1
if [ "$KEEP" = "--keep" ]; then
  echo
  echo "The demo cluster is still running: psql -h $PGHOST -p $PGPORT -U postgres postgres"
  echo "Stop it with: runuser -u postgres -- $PGBIN/pg_ctl -D $WORK/main/data stop"
fi
