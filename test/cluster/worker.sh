#!/usr/bin/env bash
# R12: with carm_deleg in shared_preload_libraries, the maintenance worker
# applies an expiry cascade on its own, shows in pg_stat_activity, and
# follows a change of carm_deleg.database on reload; a database that does
# not exist is reported once (a WARNING, no FATAL every restart interval) and
# the worker starts as soon as a reload names an existing one.
# Run by scripts/test.sh (PGBIN and WORK exported); exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${PGBIN:?PGBIN is not set}" "${WORK:?WORK is not set}"

DIR="$WORK/worker"
DATA="$DIR/data"
PORT=$(free_port) || exit 2
fail() { echo "worker test: $*" >&2; tail -n 30 "$DATA/server.log" >&2 2>/dev/null; exit 1; }

start_cluster "$DATA" "$PORT" \
  "shared_preload_libraries = 'carm_deleg'" \
  "carm_deleg.database = 'postgres'" \
  "carm_deleg.maintenance_interval = 1" || fail "cluster did not start"
trap 'stop_cluster "$DATA"' EXIT

sql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }

# Poll a query until it prints the expected value (up to $3 seconds).
wait_for() {
  local query=$1 want=$2 seconds=$3 db=${4:-postgres} got=""
  for _ in $(seq 1 $((seconds * 4))); do
    got=$(sql -d "$db" -c "$query" 2>/dev/null) && [ "$got" = "$want" ] && return 0
    sleep 0.25
  done
  echo "waited ${seconds}s for [$query] = [$want], last saw [$got]" >&2
  return 1
}

wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'carm_deleg maintenance' AND datname = 'postgres'" \
         1 20 || fail "the maintenance worker is not running in database postgres"

sql -d postgres >/dev/null <<'SQL' || fail "setup failed"
CREATE EXTENSION carm_deleg;
SELECT carm.add_business('100000009', 'Acme Brokers', '{CUSTOMS_BROKER}'),
       carm.add_business('300000007', 'Maple Imports', '{IMPORTER}'),
       carm.add_program_account('300000007RM0001'),
       carm.register_user('paula', 'Paula'), carm.register_user('clara', 'Clara');
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM'), (2, 2, 'BAM');
BEGIN;
SELECT carm.set_actor('paula');
SELECT carm.request_relationship('100000009', '300000007', 'customs clearance');
SELECT carm.set_actor('clara');
SELECT carm.approve_relationship(1, 'BUSINESS', expires_at => clock_timestamp() + interval '1 second');
COMMIT;
SQL

# Nobody touches the pair: only the worker can turn it into 'expired'.
wait_for "SELECT status FROM carm.relationship WHERE id = 1" expired 20 \
  || fail "the relationship did not expire on its own"
[ "$(sql -d postgres -c "SELECT count(*) FROM carm.audit_event WHERE event = 'relationship_expired' AND actor_id IS NULL")" = 1 ] \
  || fail "expected one relationship_expired audit event written by maintenance"
[ "$(sql -d postgres -c "SELECT count(*) FROM carm.notification WHERE event = 'relationship_expired'")" = 2 ] \
  || fail "expected both BAMs to be notified of the expiry"

# §12 monitoring: the worker's runs, and the checks this session makes, are
# counted per database; carm.stats_reset() starts again from zero.
wait_for "SELECT maintenance_runs > 0 AND maintenance_last_result LIKE 'ok%' AND maintenance_last_ms >= 0
          FROM carm.stats WHERE database = 'postgres'" t 10 \
  || fail "carm.stats does not show the worker's runs"
sql -d postgres >/dev/null <<'SQL' || fail "checks for the statistics failed"
CREATE TABLE stats_rows (program_id bigint, submitter_id bigint);
INSERT INTO stats_rows SELECT 1, 2 FROM generate_series(1, 10);
SELECT carm.protect('stats_rows', 'program_id', 'submitter_id', 'rulings');
CREATE ROLE stats_app LOGIN IN ROLE carm_gateway;
GRANT SELECT ON stats_rows TO stats_app;
SQL
before=$(sql -d postgres -c "SELECT point_checks || ' ' || row_checks FROM carm.stats WHERE database = 'postgres'")
"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U stats_app -d postgres >/dev/null <<'SQL' || fail "reads for the statistics failed"
BEGIN;
SELECT carm.set_actor('clara');
SELECT count(*) FROM stats_rows;
SELECT carm.has_access('300000007RM0001', 'rulings.view');
COMMIT;
SQL
after=$(sql -d postgres -c "SELECT point_checks || ' ' || row_checks FROM carm.stats WHERE database = 'postgres'")
set -- $before; b_point=$1 b_rows=$2
set -- $after
[ "$1" -ge $((b_point + 1)) ] && [ "$2" -ge $((b_rows + 10)) ] \
  || fail "carm.stats did not count the checks (before: $before, after: $after)"
sql -d postgres -c "SELECT carm.stats_reset()" >/dev/null || fail "carm.stats_reset() failed"
[ "$(sql -d postgres -c "SELECT point_checks FROM carm.stats WHERE database = 'postgres'")" = 0 ] \
  || fail "carm.stats_reset() did not reset the counters"

# A reload that moves the worker to another database restarts it there.
sql -d postgres -c "CREATE DATABASE carm_worker_other" || fail "could not create a database"
sql -d postgres -c "ALTER SYSTEM SET carm_deleg.database = 'carm_worker_other'" -c "SELECT pg_reload_conf()" >/dev/null \
  || fail "reload failed"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'carm_deleg maintenance' AND datname = 'carm_worker_other'" \
         1 30 || fail "the worker did not move to the new database"

# A database that does not exist: one WARNING, no FATAL, no worker; the
# launcher waits for a reload that names an existing database.
sql -d postgres -c "ALTER SYSTEM SET carm_deleg.database = 'carm_no_such_db'" -c "SELECT pg_reload_conf()" >/dev/null \
  || fail "reload failed"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'carm_deleg maintenance'" 0 30 \
  || fail "the worker did not stop"
sleep 12   # longer than the restart interval: 1.0 logged a FATAL every 10 s
n=$(grep -c 'database "carm_no_such_db" does not exist' "$DATA/server.log")
[ "$n" = 1 ] || fail "expected the missing database to be reported once, saw $n lines"
grep -q 'FATAL' "$DATA/server.log" && fail "FATAL in the server log"
sql -d postgres -c "ALTER SYSTEM SET carm_deleg.database = 'postgres'" -c "SELECT pg_reload_conf()" >/dev/null \
  || fail "reload failed"
wait_for "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'carm_deleg maintenance' AND datname = 'postgres'" \
         1 30 || fail "the worker did not start after the setting was fixed"

grep -q 'ERROR' "$DATA/server.log" && fail "errors in the server log"
echo "worker test passed"
exit 0
