#!/usr/bin/env bash
# Runs every test of carm_deleg on throw-away clusters:
#   1. pg_regress transcripts (test/sql -> expected/) and isolation specs (test/specs)
#   2. pgTAP files (test/pgtap) through pg_prove
#   3. cluster tests (test/cluster/*.sh): the preloaded background worker, hot standby, pgbouncer,
#      dump and restore, the upgrade from 1.0, Citus (skipped, exit 77, where Citus is not installed),
#      and the checks that need no cluster: release metadata (meta), rule ids (rule_ids), doc links
#   4. "checkout clean": the run left nothing in the checkout that git does not ignore
# Installs missing Debian packages first.  Prints "N passed, N failed" last.
# Usage: scripts/test.sh [--keep] [--port N] [--dir D] [--only RE] [--pg-config PATH]
#   --keep    leave the work directory (build, clusters' data, results) for inspection
#   --port N  TCP port of the main cluster (default: a free one; env CARM_PORT);
#             the cluster tests then take N+1, N+2, ... (skipping ports in
#             use); without it, they pick free ports of their own
#   --dir D   work directory (created; default: a new /tmp/carm_test.*; env CARM_WORK)
#   --only RE run only the tests whose name matches the extended regex RE
#             (pg_regress and isolation names, "pgtap NAME", "cluster NAME");
#             for iterating on a change: CI runs everything
#   --pg-config PATH  the PostgreSQL installation to test on, by its pg_config
#             (env PG_CONFIG); default Debian's PostgreSQL 15.  Any major from
#             15 to 18: scripts/postgres.sh builds one into a prefix.  The
#             installation is copied, never modified.
set -uo pipefail
cd "$(dirname "$0")/.."
# PG_CONFIG from the environment names the installation to test; lib.sh
# then reuses the name for the private copy.
[ -n "${PG_CONFIG:-}" ] && CARM_PG_CONFIG=$PG_CONFIG
unset PG_CONFIG

KEEP=""; PORT=${CARM_PORT:-}; WORK=${CARM_WORK:-}; ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=--keep ;;
    --port) PORT=$2; shift ;;
    --dir) WORK=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --pg-config) CARM_PG_CONFIG=$2; shift ;;
    *) echo "usage: scripts/test.sh [--keep] [--port N] [--dir D] [--only RE] [--pg-config PATH]" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$PORT" ]; then
  [[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65000 ] ||
    { echo "--port: give a TCP port from 1024 to 65000, not \"$PORT\"" >&2; exit 2; }
fi
if [ -n "${CARM_PG_CONFIG:-}" ]; then
  [ -x "$CARM_PG_CONFIG" ] || { echo "$CARM_PG_CONFIG: no such pg_config" >&2; exit 2; }
  CARM_PG_CONFIG=$(cd "$(dirname "$CARM_PG_CONFIG")" && pwd)/$(basename "$CARM_PG_CONFIG")
  export CARM_PG_CONFIG
fi
. scripts/lib.sh

scripts/deps.sh || { echo "could not install dependencies" >&2; exit 2; }

if [ -n "$WORK" ]; then
  # a directory of its own: everything in it is removed at the end
  if [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then
    echo "$WORK is not empty; give a new or empty directory" >&2; exit 2
  fi
  mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
else
  WORK=$(mktemp -d /tmp/carm_test.XXXXXX)
fi
chmod 755 "$WORK"
cleanup() {
  stop_cluster "$WORK/main/data"
  for d in "$WORK"/*/data "$WORK"/*/*/data; do [ -d "$d" ] && stop_cluster "$d"; done
  [ "$KEEP" = "--keep" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# A run may leave in the checkout only what git ignores (build products, test
# results): the files git would list as untracked are compared at the end.
untracked() { git -C "$TOP" ls-files --others --exclude-standard 2>/dev/null | LC_ALL=C sort; }
if git -C "$TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  untracked > "$WORK/untracked.before"
fi

echo "== building into a private copy of $("$CARM_PG_CONFIG" --version) ($CARM_PG_CONFIG)"
make_tree "$WORK/pg" || { echo "build failed" >&2; exit 2; }
# psql, pg_prove's psql and the cluster tests' tools: the tested major's
PATH=$PGBIN:$PATH
export PGBIN WORK PATH

if [ -n "$PORT" ]; then
  # the cluster tests derive their ports from the one chosen (scripts/lib.sh free_port)
  export CARM_PORT_BASE=$((PORT + 1)) CARM_PORT_FILE="$WORK/next_port"
else
  unset CARM_PORT_BASE CARM_PORT_FILE
  PORT=$(free_port)
fi
start_cluster "$WORK/main/data" "$PORT" || { echo "cluster did not start" >&2; exit 2; }
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres

passed=0; failed=0
skipped=0
count() { # count NAME STATUS [WHY]: 0 passed, 77 skipped (WHY says why), else failed
  if [ "$2" -eq 0 ]; then passed=$((passed+1)); echo "ok   $1"
  elif [ "$2" -eq 77 ]; then skipped=$((skipped+1)); echo "skip $1: ${3:-}"
  else failed=$((failed+1)); echo "FAIL $1"; fi
}

# pg_regress and pg_isolation_regress run separately, so that a failure in
# one suite does not hide the other; each prints one line per test.
PGXS_DIR=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test
run_suite() { # run_suite NAME DRIVER OUTPUTDIR DIFFS TESTS...
  local name=$1 driver=$2 outdir=$3 diffs=$4; shift 4
  [ $# -gt 0 ] || return 0
  echo "== $name"
  mkdir -p "$outdir"
  out=$("$driver" --inputdir=test --outputdir="$outdir" --bindir="$PGBIN" \
        --host="$PGHOST" --port="$PGPORT" --user=postgres "$@" 2>&1); status=$?
  echo "$out" | grep -E '^(test|     |permutation|ok|not ok)' || true
  # one line a test: "test NAME ... ok|FAILED" (15), "ok|not ok N - NAME" (16+)
  n_ok=$(echo "$out" | grep -cE '\.\.\. ok|^ok +[0-9]+ ' || true)
  n_bad=$(echo "$out" | grep -cE '\.\.\. FAILED|^not ok +[0-9]+ ' || true)
  passed=$((passed + n_ok))
  if [ $status -ne 0 ]; then
    failed=$((failed + (n_bad > 0 ? n_bad : 1)))
    echo "$out" | tail -5
    [ -f "$diffs" ] && head -300 "$diffs"
  fi
}
selected() { [ -z "$ONLY" ] || [[ $1 =~ $ONLY ]]; }
pick() { local n; for n in "$@"; do selected "$n" && echo "$n"; done; }
# shellcheck disable=SC2046
regress=$(pick $(ls test/sql/*.sql 2>/dev/null | xargs -rn1 basename | sed 's/\.sql$//' | sort))
# shellcheck disable=SC2046
specs=$(pick $(ls test/specs/*.spec 2>/dev/null | xargs -rn1 basename | sed 's/\.spec$//' | sort))
# shellcheck disable=SC2086
run_suite "pg_regress" "$PGXS_DIR/regress/pg_regress" test test/regression.diffs $regress
# shellcheck disable=SC2086
run_suite "isolation" "$PGXS_DIR/isolation/pg_isolation_regress" test/output_iso \
  test/output_iso/regression.diffs $specs

echo "== pgTAP"
psql -q -X -d postgres -c "CREATE DATABASE carm_tap" >/dev/null
for f in test/pgtap/*.sql; do
  [ -e "$f" ] || continue
  selected "pgtap $(basename "$f" .sql)" || continue
  out=$(pg_prove -h "$PGHOST" -p "$PGPORT" -U postgres -d carm_tap "$f" 2>&1); st=$?
  [ $st -eq 0 ] || echo "$out"
  count "pgtap $(basename "$f" .sql)" $st
done

echo "== cluster tests"
for t in test/cluster/*.sh; do
  [ -e "$t" ] || continue
  selected "cluster $(basename "$t" .sh)" || continue
  out=$(bash "$t" 2>&1); st=$?
  [ $st -eq 0 ] || [ $st -eq 77 ] || echo "$out"
  count "cluster $(basename "$t" .sh)" $st "$(echo "$out" | tail -1)"
done

if [ -f "$WORK/untracked.before" ] && selected "checkout clean"; then
  new_files=$(untracked | LC_ALL=C comm -13 "$WORK/untracked.before" -)
  if [ -n "$new_files" ]; then
    echo "files left in the checkout that git does not ignore (ignore them in .gitignore, or write them under the work directory):"
    echo "$new_files" | sed 's/^/  /'
  fi
  count "checkout clean" "$([ -z "$new_files" ] && echo 0 || echo 1)"
fi

echo
echo "PostgreSQL $(pg_major "$PG_CONFIG"): $passed passed, $failed failed$([ "$skipped" -eq 0 ] || echo ", $skipped skipped")" >&2
echo "$passed passed, $failed failed$([ "$skipped" -eq 0 ] || echo ", $skipped skipped")"
[ "$failed" -eq 0 ]
