#!/usr/bin/env bash
# §12 Upgrades: what a DBA does to go from release 1.0 to this tree.
#  1. builds release 1.0 (its commit from test/cluster/releases.txt) into a
#     private copy of the PostgreSQL installation, and checks that the frozen
#     scripts of 1.0 and 1.1 in sql/ are the ones each release built;
#  2. creates extension carm_deleg 1.0 and fills it through the 1.0 API
#     (test/cluster/upgrade_world.sql);
#  3. records decisions: user_has_access for every user, BN9 and BN15 and the
#     27 function.level permissions (as carm_admin), and for every actor the
#     rows of two protected tables, has_access and accessible_programs (as a
#     carm_gateway login, and as a bound login role);
#  4. stops the cluster, installs this tree over 1.0, starts it again, walks
#     the released updates one by one — ALTER EXTENSION carm_deleg UPDATE TO
#     '1.1', whose catalog must equal a fresh install of 1.1 (the frozen
#     script, test/cluster/catalog_fingerprint.sql), then UPDATE to this
#     tree's version — and requires the same decisions and a working API;
#  5. compares the catalog of the updated extension with a fresh install in a
#     new database: identical.
# Run by scripts/test.sh (WORK exported); exits non-zero on failure and prints
# the first difference.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${WORK:?WORK is not set}"

HERE=test/cluster
# release VERSION — the commit a version was released from (releases.txt)
release() { awk -v v="$1" '$1 == v { print $2 }' "$HERE/releases.txt"; }
RELEASE_1_0=$(release 1.0)
RELEASE_1_1=$(release 1.1)
NEW_VERSION=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" carm_deleg.control)

DIR="$WORK/upgrade"
DATA="$DIR/data"
mkdir -p "$DIR"; chmod 755 "$DIR"
fail() {
  echo "upgrade test: $*" >&2
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
  echo "upgrade test: $3 differ ($(diff "$1" "$2" | grep -c '^[<>]') lines); first difference" \
       "(- $(basename "$1"), + $(basename "$2")):" >&2
  diff -U3 "$1" "$2" | awk '/^@@/ { n++ } n == 1' | cut -c1-240 | head -n 40 >&2
  return 1
}

# 1. Release 1.0, built from its own sources ---------------------------------
[ -n "$RELEASE_1_0" ] && [ -n "$RELEASE_1_1" ] || fail "releases.txt names no commit for 1.0 or 1.1"
git -C "$TOP" cat-file -e "$RELEASE_1_0^{commit}" 2>/dev/null ||
  fail "release 1.0 (commit $RELEASE_1_0) is not in this repository: a shallow clone" \
       "or an export cannot run the upgrade test; fetch the full history (git fetch --unshallow)"
copy_tree "$DIR/pg" || fail "could not copy the PostgreSQL installation"
mkdir -p "$DIR/src-1.0"
git -C "$TOP" archive "$RELEASE_1_0" | tar -x -C "$DIR/src-1.0" ||
  fail "could not extract release 1.0"
install_into "$DIR/src-1.0" > "$DIR/build-1.0.log" 2>&1 ||
  { cat "$DIR/build-1.0.log" >&2; fail "release 1.0 does not build"; }
# The shipped 1.0 install script is the one release 1.0 builds and installs.
same "$("$PG_CONFIG" --sharedir)/extension/carm_deleg--1.0.sql" sql/carm_deleg--1.0.sql \
     "release 1.0's install script and sql/carm_deleg--1.0.sql" ||
  fail "sql/carm_deleg--1.0.sql is not the script release 1.0 installs"
# The frozen 1.1 scripts are what release 1.1 assembled from its sources.
mkdir -p "$DIR/src-1.1"
git -C "$TOP" archive "$RELEASE_1_1" | tar -x -C "$DIR/src-1.1" || fail "could not extract release 1.1"
make -s -C "$DIR/src-1.1" sql/carm_deleg--1.1.sql sql/carm_deleg--1.0--1.1.sql PG_CONFIG="$PG_CONFIG" \
  > "$DIR/build-1.1.log" 2>&1 || { cat "$DIR/build-1.1.log" >&2; fail "release 1.1's scripts do not build"; }
for f in carm_deleg--1.1.sql carm_deleg--1.0--1.1.sql; do
  same "$DIR/src-1.1/sql/$f" "sql/$f" "release 1.1's $f and the frozen sql/$f" ||
    fail "sql/$f is not the script release 1.1 built"
done

PORT=$(free_port) || exit 2
start_cluster "$DATA" "$PORT" || fail "cluster did not start"
trap 'stop_cluster "$DATA"' EXIT

# psql_as ROLE [DB] — psql as a role, unaligned, stop on error.
psql_as() {
  local role=$1; shift
  "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U "$role" "$@"
}
sql() { psql_as postgres -d postgres "$@"; }

# 2. The 1.0 world ------------------------------------------------------------
sql -c "CREATE EXTENSION carm_deleg VERSION '1.0'" || fail "CREATE EXTENSION carm_deleg VERSION '1.0' failed"
[ "$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'carm_deleg'")" = 1.0 ] ||
  fail "the installed version is not 1.0"
sql -f "$HERE/upgrade_world.sql" > "$DIR/world.log" 2>&1 ||
  { tail -n 20 "$DIR/world.log" >&2; fail "filling the 1.0 database through the 1.0 API failed"; }

# 3. Decisions ----------------------------------------------------------------
. "$HERE/lib/decisions.bash"   # PERMS, USERS, ACTORS, TARGETS, the observer, record DB OUT

record postgres "$DIR/decisions-1.0.txt" || fail "recording the 1.0 decisions failed"
n=$(grep -c '' "$DIR/decisions-1.0.txt")
grep -q '|true$' "$DIR/decisions-1.0.txt" && grep -q '|false$' "$DIR/decisions-1.0.txt" && [ "$n" -gt 5000 ] ||
  fail "the 1.0 decisions look wrong ($n lines)"

# 4. The update ---------------------------------------------------------------
stop_cluster "$DATA"
install_into "$TOP" > "$DIR/build-new.log" 2>&1 ||
  { cat "$DIR/build-new.log" >&2; fail "this tree does not build or install"; }
SHAREDIR=$("$PG_CONFIG" --sharedir)
for f in carm_deleg--1.0.sql carm_deleg--1.1.sql carm_deleg--1.0--1.1.sql; do
  # released scripts ship as they were released
  same "$TOP/sql/$f" "$SHAREDIR/extension/$f" "the installed and the released $f" ||
    fail "the released script $f was not installed as released"
done
as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >/dev/null ||
  fail "the cluster did not start with this tree's library"
# The released update first: 1.0 -> 1.1 must give a fresh 1.1's catalog.
sql -c "ALTER EXTENSION carm_deleg UPDATE TO '1.1'" > "$DIR/update-1.1.log" 2>&1 ||
  { cat "$DIR/update-1.1.log" >&2; fail "ALTER EXTENSION carm_deleg UPDATE TO '1.1' failed"; }
[ "$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'carm_deleg'")" = 1.1 ] ||
  fail "after UPDATE TO '1.1' the version is not 1.1"
sql -c "CREATE DATABASE carm_fresh_1_1" || fail "could not create a database"
psql_as postgres -d carm_fresh_1_1 -c "CREATE EXTENSION carm_deleg VERSION '1.1'" ||
  fail "CREATE EXTENSION carm_deleg VERSION '1.1' failed"
psql_as postgres -d postgres -f "$HERE/catalog_fingerprint.sql" > "$DIR/catalog-updated-1.1.txt" ||
  fail "the catalog fingerprint query failed"
psql_as postgres -d carm_fresh_1_1 -f "$HERE/catalog_fingerprint.sql" > "$DIR/catalog-fresh-1.1.txt" ||
  fail "the catalog fingerprint query failed"
same "$DIR/catalog-updated-1.1.txt" "$DIR/catalog-fresh-1.1.txt" "catalogs of 1.0 updated to 1.1 and of a fresh 1.1" ||
  fail "the frozen 1.0 -> 1.1 update does not produce a fresh 1.1's catalog"
sql -c "DROP DATABASE carm_fresh_1_1" || fail "could not drop a database"
# Then this tree's update.
sql -c "ALTER EXTENSION carm_deleg UPDATE" > "$DIR/update.log" 2>&1 ||
  { cat "$DIR/update.log" >&2; fail "ALTER EXTENSION carm_deleg UPDATE failed"; }
got=$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'carm_deleg'")
[ "$got" = "$NEW_VERSION" ] || fail "after the update the version is $got, not $NEW_VERSION"

record postgres "$DIR/decisions-$NEW_VERSION.txt" || fail "recording the decisions after the update failed"
# What 1.1 must answer: the 1.0 answers, with the deliberate changes listed in
# upgrade_decision_changes.txt applied.
awk -F'\t' -v changes="$HERE/upgrade_decision_changes.txt" '
  BEGIN {
    while ((getline line < changes) > 0) {
      if (line ~ /^[ \t]*(#|$)/) continue
      n = split(line, f, "\t")
      if (n != 3) { print "bad rule in " changes ": " line > "/dev/stderr"; bad = 1; continue }
      rules++; re[rules] = f[1]; old[rules] = f[2]; new[rules] = f[3]
    }
  }
  {
    i = match($0, /\|[^|]*$/); key = substr($0, 1, i - 1); ans = substr($0, i + 1)
    for (r = 1; r <= rules; r++)
      if (key ~ re[r] && ans == old[r]) { ans = new[r]; used[r] = 1; break }
    print key "|" ans
  }
  END {
    for (r = 1; r <= rules; r++)
      if (!used[r]) { print "stale rule in " changes ": " re[r] > "/dev/stderr"; bad = 1 }
    exit bad
  }' "$DIR/decisions-1.0.txt" > "$DIR/decisions-expected.txt" ||
  fail "upgrade_decision_changes.txt does not describe the 1.0 decisions"
same "$DIR/decisions-expected.txt" "$DIR/decisions-$NEW_VERSION.txt" "decisions before and after the update" ||
  fail "the update changed decisions (list deliberate changes in $HERE/upgrade_decision_changes.txt)"

# The API works on the updated state: a new user asks for access and is
# approved; an actor writes through the policies (V5); maintenance runs.
psql_as regress_up_reader -d postgres > "$DIR/after.log" 2>&1 <<'SQL' || { cat "$DIR/after.log" >&2; fail "the API failed after the update"; }
SELECT carm.register_user('zoe', 'Zoe After Update') AS zoe \gset
BEGIN; SELECT carm.set_actor('zoe');
SELECT carm.request_employee_access('400000006', 'Joined after the upgrade') AS req \gset
COMMIT;
BEGIN; SELECT carm.set_actor('dina');
SELECT carm.approve_employee_access(:req, 'EDITOR', '{400000006RM0002}');
COMMIT;
BEGIN; SELECT carm.set_actor('zoe');
INSERT INTO app.payments (id, program_id, amount) VALUES (3001, carm.program_id('400000006RM0002'), 7);
COMMIT;
SQL
zoe=$(sql -c "SELECT id FROM carm.app_user WHERE external_id = 'zoe'")
[ "$(psql_as regress_up_admin -d postgres -c "SELECT carm.user_has_access($zoe, '400000006RM0002', 'payments.edit')")" = t ] ||
  fail "the user approved after the update has no payments.edit on its program"
[ "$(sql -c "SELECT submitter_id = carm.business_id('400000006') FROM app.payments WHERE id = 3001")" = t ] ||
  fail "the row written after the update does not carry the actor's business as submitter (V5)"
psql_as regress_up_admin -d postgres -c "SELECT count(*) FROM carm.run_maintenance()" >/dev/null 2>"$DIR/maintenance.err" ||
  { cat "$DIR/maintenance.err" >&2; fail "run_maintenance failed after the update"; }

# 5. The catalog: updated = fresh ------------------------------------------------
sql -c "CREATE DATABASE carm_fresh" || fail "could not create a database"
psql_as postgres -d carm_fresh -c "CREATE EXTENSION carm_deleg" || fail "CREATE EXTENSION in a fresh database failed"
[ "$(psql_as postgres -d carm_fresh -c "SELECT extversion FROM pg_extension WHERE extname = 'carm_deleg'")" = "$NEW_VERSION" ] ||
  fail "a fresh install is not version $NEW_VERSION"
psql_as postgres -d postgres -f "$HERE/catalog_fingerprint.sql" > "$DIR/catalog-updated.txt" ||
  fail "the catalog fingerprint query failed"
psql_as postgres -d carm_fresh -f "$HERE/catalog_fingerprint.sql" > "$DIR/catalog-fresh.txt" ||
  fail "the catalog fingerprint query failed"
grep -q '^function|carm\.has_access(' "$DIR/catalog-fresh.txt" || fail "the catalog fingerprint is empty"
same "$DIR/catalog-updated.txt" "$DIR/catalog-fresh.txt" "catalogs of the updated and the fresh extension" ||
  fail "the upgrade script does not produce a fresh install's catalog"

echo "upgrade test passed: 1.0 -> 1.1 -> $NEW_VERSION, $(grep -c '' "$DIR/decisions-1.0.txt") decisions," \
     "$(grep -c '' "$DIR/catalog-fresh.txt") catalog lines identical"
exit 0
