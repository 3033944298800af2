#!/usr/bin/env bash
# §12 Upgrades, the window between the restart and ALTER EXTENSION UPDATE:
# with carm_deleg in shared_preload_libraries, installing a new release and
# restarting loads the new library into every database at once, while each
# database keeps the previous release's SQL objects until a DBA runs
# ALTER EXTENSION carm_deleg UPDATE in it.  The library serves the previous
# release's SQL (src/owner.c, served_versions), so no check fails meanwhile.
#  1. builds this tree into a private copy of the PostgreSQL installation
#     and starts a cluster with the library preloaded;
#  2. creates extension carm_deleg at the previous release (1.1, its frozen
#     script) under this library, and fills it (test/cluster/upgrade_world.sql,
#     the world test/cluster/upgrade.sh builds);
#  3. records every decision (the observer of upgrade.sh), and reads
#     carm.stats (1.1 declares fewer columns than this library counts);
#  4. runs ALTER EXTENSION carm_deleg UPDATE and requires identical decisions;
#  5. a 1.0 installation is refused with a message naming the fix (55000),
#     and the update from 1.0 makes it decide again.
# Run by scripts/test.sh (WORK exported); exits non-zero on failure and prints
# the first difference.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${WORK:?WORK is not set}"

PREV_VERSION=1.1
NEW_VERSION=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" carm_deleg.control)
HERE=test/cluster

DIR="$WORK/upgrade_window"
DATA="$DIR/data"
mkdir -p "$DIR"; chmod 755 "$DIR"
fail() {
  echo "upgrade window test: $*" >&2
  if [ -f "$DATA/server.log" ] && grep -qE '(ERROR|FATAL|PANIC):' "$DATA/server.log"; then
    echo "last errors in the server log:" >&2
    grep -E '(ERROR|FATAL|PANIC):' "$DATA/server.log" | tail -n 5 >&2
  fi
  exit 1
}

# same A B WHAT — succeed when the two files are identical, else print the
# first differing hunk.
same() {
  cmp -s "$1" "$2" && return 0
  echo "upgrade window test: $3 differ ($(diff "$1" "$2" | grep -c '^[<>]') lines); first difference" \
       "(- $(basename "$1"), + $(basename "$2")):" >&2
  diff -U3 "$1" "$2" | awk '/^@@/ { n++ } n == 1' | cut -c1-240 | head -n 40 >&2
  return 1
}

# 1. This tree, preloaded -------------------------------------------------------
make_tree "$DIR/pg" > "$DIR/build.log" 2>&1 ||
  { cat "$DIR/build.log" >&2; fail "this tree does not build or install"; }
PORT=$(free_port) || exit 2
start_cluster "$DATA" "$PORT" "shared_preload_libraries = 'carm_deleg'" || fail "cluster did not start"
trap 'stop_cluster "$DATA"' EXIT

# psql_as ROLE [DB] — psql as a role, unaligned, stop on error.
psql_as() {
  local role=$1; shift
  "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U "$role" "$@"
}
sql() { psql_as postgres -d postgres "$@"; }
version() { psql_as postgres -d "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'carm_deleg'"; }

# 2. The previous release's SQL under this library ------------------------------
sql -c "CREATE EXTENSION carm_deleg VERSION '$PREV_VERSION'" ||
  fail "CREATE EXTENSION carm_deleg VERSION '$PREV_VERSION' failed"
[ "$(version postgres)" = "$PREV_VERSION" ] || fail "the installed version is not $PREV_VERSION"
sql -f "$HERE/upgrade_world.sql" > "$DIR/world.log" 2>&1 ||
  { tail -n 20 "$DIR/world.log" >&2; fail "filling a $PREV_VERSION database under the $NEW_VERSION library failed"; }

# 3. Decisions (test/cluster/lib/decisions.bash, as in upgrade.sh) ------------
. "$HERE/lib/decisions.bash"   # PERMS, USERS, ACTORS, TARGETS, the observer, record DB OUT

record postgres "$DIR/decisions-$PREV_VERSION.txt" ||
  fail "recording the decisions of $PREV_VERSION under the $NEW_VERSION library failed"
n=$(grep -c '' "$DIR/decisions-$PREV_VERSION.txt")
grep -q '|true$' "$DIR/decisions-$PREV_VERSION.txt" && grep -q '|false$' "$DIR/decisions-$PREV_VERSION.txt" &&
  [ "$n" -gt 5000 ] || fail "the $PREV_VERSION decisions look wrong ($n lines)"
if grep -q 'ERROR 55000' "$DIR/decisions-$PREV_VERSION.txt"; then
  fail "checks fail in the window ($(grep -c 'ERROR 55000' "$DIR/decisions-$PREV_VERSION.txt") decisions answered 55000)"
fi
# The monitoring view of the previous release reads this library's counters.
psql_as regress_up_admin -d postgres -c "SELECT database, point_checks > 0, row_checks > 0 FROM carm.stats
                                         WHERE database = current_database()" > "$DIR/stats-$PREV_VERSION.txt" 2>&1 ||
  { cat "$DIR/stats-$PREV_VERSION.txt" >&2; fail "carm.stats of $PREV_VERSION fails under the $NEW_VERSION library"; }
[ "$(cat "$DIR/stats-$PREV_VERSION.txt")" = "postgres|t|t" ] ||
  fail "carm.stats of $PREV_VERSION reads: $(cat "$DIR/stats-$PREV_VERSION.txt")"

# 4. The update: the same decisions ---------------------------------------------
sql -c "ALTER EXTENSION carm_deleg UPDATE" > "$DIR/update.log" 2>&1 ||
  { cat "$DIR/update.log" >&2; fail "ALTER EXTENSION carm_deleg UPDATE failed"; }
[ "$(version postgres)" = "$NEW_VERSION" ] || fail "after the update the version is not $NEW_VERSION"
record postgres "$DIR/decisions-$NEW_VERSION.txt" || fail "recording the decisions after the update failed"
same "$DIR/decisions-$PREV_VERSION.txt" "$DIR/decisions-$NEW_VERSION.txt" \
     "decisions in the window ($PREV_VERSION SQL) and after the update" ||
  fail "the $NEW_VERSION library does not decide for $PREV_VERSION as after the update"
psql_as regress_up_admin -d postgres -c "SELECT shared_hits >= 0 FROM carm.stats WHERE database = current_database()" \
  > "$DIR/stats-$NEW_VERSION.txt" 2>&1 && [ "$(cat "$DIR/stats-$NEW_VERSION.txt")" = t ] ||
  { cat "$DIR/stats-$NEW_VERSION.txt" >&2; fail "carm.stats of $NEW_VERSION fails after the update"; }

# 5. 1.0 is not served: a clear refusal, until the update -----------------------
sql -c "CREATE DATABASE carm_old" || fail "could not create a database"
psql_as postgres -d carm_old -c "CREATE EXTENSION carm_deleg VERSION '1.0'" ||
  fail "CREATE EXTENSION carm_deleg VERSION '1.0' failed under the $NEW_VERSION library"
psql_as postgres -d carm_old -c "SELECT carm.add_business('100000009', 'Maple Imports', '{IMPORTER}'), carm.register_user('old', 'Old User')" >/dev/null ||
  fail "could not add a business to the 1.0 database"
out=$(psql_as postgres -d carm_old -v VERBOSITY=verbose \
        -c "SELECT carm.user_has_access(1, '100000009', 'payments.view')" 2>&1) &&
  fail "a check on a 1.0 installation under the $NEW_VERSION library did not fail: $out"
case "$out" in
  *"55000"*"carm_deleg 1.0 is installed but the library is version $NEW_VERSION"*"ALTER EXTENSION carm_deleg UPDATE"*) ;;
  *) fail "a check on a 1.0 installation fails without naming the fix: $out" ;;
esac
psql_as postgres -d carm_old -c "ALTER EXTENSION carm_deleg UPDATE" > "$DIR/update-1.0.log" 2>&1 ||
  { cat "$DIR/update-1.0.log" >&2; fail "ALTER EXTENSION carm_deleg UPDATE from 1.0 failed"; }
[ "$(psql_as postgres -d carm_old -c "SELECT carm.user_has_access(1, '100000009', 'payments.view')")" = f ] ||
  fail "a check after the update from 1.0 does not answer"

echo "upgrade window test passed: $PREV_VERSION SQL under the $NEW_VERSION library, $n decisions as after the update;" \
     "1.0 refused until updated"
exit 0
