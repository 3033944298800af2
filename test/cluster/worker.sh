#!/usr/bin/env bash
# R12: with carm_deleg in shared_preload_libraries, the maintenance worker
# applies an expiry cascade on its own, shows in pg_stat_activity, and
# follows a change of carm_deleg.database on reload; under a churn of
# promotions and demotions no API call loses a lock cycle to it (40P01); a
# database that does not exist is reported once (a WARNING, no FATAL every
# restart interval) and
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
  "carm_deleg.maintenance_interval = 1" \
  "deadlock_timeout = '200ms'" || fail "cluster did not start"
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

# R12 (rev. 1.2): maintenance loses its lock cycles, never the user.  A
# bounded churn (15 s): four sessions promote the broker's employees to BAM
# and demote them again (E11 deletes their individual and group
# assignments), assign them to the clients whose relationships expire next
# and queue deferred group requests for them, while the worker (every
# second) expires those relationships one after the other, removes the
# clients from the broker's group and applies the requests.  With
# deadlock_timeout at 200ms (above), an API call that waits for maintenance
# runs its deadlock check before maintenance's lock_timeout: 1.1 lost such
# cycles to the API call.  No API call may fail with 40P01.
sql -d postgres >/dev/null <<'SQL' || fail "churn setup failed"
SELECT carm.register_user('churn' || i, 'Churn ' || i) FROM generate_series(1, 8) i;
INSERT INTO carm.employee (business_id, user_id, role)
SELECT 1, u.id, 'EDITOR' FROM carm.app_user u WHERE u.external_id LIKE 'churn%';
SELECT carm.add_business(n::text, 'Churn client ' || n, '{IMPORTER}')
FROM (SELECT n FROM generate_series(400000000, 400002000) n
      WHERE carm_internal.bn9_is_valid(n::text) ORDER BY n LIMIT 40) x;
SELECT carm.add_program_account(b.bn9 || 'RM0001') FROM carm.business b WHERE b.legal_name LIKE 'Churn client %';
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment, expires_at)
SELECT 1, b.id, 'active', 'BUSINESS', 'churn',
       clock_timestamp() + interval '3 seconds' + row_number() OVER (ORDER BY b.id) * interval '300 ms'
FROM carm.business b WHERE b.legal_name LIKE 'Churn client %';
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, u.id, 'PVIEWER' FROM carm.relationship r, carm.app_user u
WHERE r.comment = 'churn' AND u.external_id LIKE 'churn%';
BEGIN;
SELECT carm.set_actor('paula');
SELECT carm.create_client_group('100000009', 'Churn');
COMMIT;
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, 1, r.client_id FROM carm.client_group g, carm.relationship r
WHERE g.name = 'Churn' AND r.comment = 'churn' AND r.id % 2 = 0;
SQL
churn_group=$(sql -d postgres -c "SELECT id FROM carm.client_group WHERE name = 'Churn'")
churn_users=($(sql -d postgres -c "SELECT id FROM carm.app_user WHERE external_id LIKE 'churn%' ORDER BY id"))
[ -n "$churn_group" ] && [ ${#churn_users[@]} = 8 ] || fail "churn setup: no group or users"
churn_session() { # churn_session N: the two employees of session N (0-3), for 15 s
  local n=$1 end=$((SECONDS + 15)) it=0 e
  while [ $SECONDS -lt $end ]; do
    it=$((it + 1))
    for e in "${churn_users[$((2 * n))]}" "${churn_users[$((2 * n + 1))]}"; do
      echo "BEGIN; SELECT carm.set_actor('paula');
            SELECT carm.set_employee_access('100000009', $e, 'BAM'); COMMIT;
            BEGIN; SELECT carm.set_actor('paula');
            SELECT carm.set_employee_access('100000009', $e, 'EDITOR'); COMMIT;
            BEGIN; SELECT carm.set_actor('paula');
            SELECT carm.assign_client_access('100000009',
                     (SELECT b.bn9 FROM carm.relationship r JOIN carm.business b ON b.id = r.client_id
                      WHERE r.comment = 'churn' AND r.status = 'active' AND r.expires_at > now()
                      ORDER BY r.expires_at OFFSET $((it % 3)) LIMIT 1),
                     $e, 'PVIEWER'); COMMIT;
            BEGIN; SELECT carm.set_actor('paula');
            SELECT carm.assign_group_employees($churn_group, ARRAY[$e]::bigint[], 'PVIEWER', deferred => true); COMMIT;"
    done | PGOPTIONS="-c client_min_messages=error -c log_min_messages=fatal -c log_min_error_statement=panic" \
           "$PGBIN/psql" -X -q -At -v VERBOSITY=verbose -h "$DIR" -p "$PORT" -U postgres -d postgres \
           >>"$DIR/churn_$n.log" 2>&1
  done
}
for n in 0 1 2 3; do churn_session $n & done
wait
deadlocks=$(cat "$DIR"/churn_*.log | grep -c '40P01')
[ "$deadlocks" = 0 ] || { grep -h '40P01' "$DIR"/churn_*.log | head -5 >&2; fail "$deadlocks API calls failed with 40P01 under the churn"; }
promotions=$(sql -d postgres -c "SELECT count(*) FROM carm.audit_event
                                 WHERE event = 'employee_access_changed' AND details->'after'->>'role' = 'BAM'")
[ "$promotions" -ge 8 ] || fail "the churn made only $promotions promotions"
wait_for "SELECT count(*) FROM carm.relationship WHERE comment = 'churn' AND status = 'active'" 0 60 \
  || fail "the churn's relationships did not all expire"
[ "$(sql -d postgres -c "SELECT count(*) > 0 FROM carm.audit_event
                         WHERE event = 'relationship_expired' AND actor_id IS NULL AND relationship_id > 1")" = t ] \
  || fail "maintenance expired none of the churn's relationships"
wait_for "SELECT count(*) FROM carm.group_request WHERE status IN ('PENDING', 'PROCESSING')" 0 60 \
  || fail "the churn's deferred requests were not all applied"
echo "churn: $promotions promotions, $(cat "$DIR"/churn_*.log | grep -c '^ERROR') refused calls, no 40P01"

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
