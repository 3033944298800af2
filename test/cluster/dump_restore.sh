#!/usr/bin/env bash
# §12 backups: pg_dump / pg_restore of a database with delegation state and
# protected tables (owned by a carm_admin member that is no superuser, one of
# them partitioned, a partition added after protect()) brings back identical
# decisions — user_has_access over a grid of users, targets and permissions,
# and per-actor row counts read through a non-superuser carm_gateway login —
# and a restored database can write: the identity sequences of carm's tables
# are dumped with them (pg_extension_config_dump), so state-changing calls do
# not fail with 23505, and new partitions are protected there too.
# Run by scripts/test.sh (PGBIN and WORK exported); exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${PGBIN:?PGBIN is not set}" "${WORK:?WORK is not set}"

DIR="$WORK/dump"
rm -rf "$DIR"      # a throw-away cluster of our own
DATA="$DIR/data"
PORT=$(free_port) || exit 2
fail() { echo "dump/restore test: $*" >&2; tail -n 30 "$DATA/server.log" >&2 2>/dev/null; exit 1; }

start_cluster "$DATA" "$PORT" || fail "cluster did not start"
trap 'stop_cluster "$DATA"' EXIT
mkdir -p "$DIR/out" && chmod 777 "$DIR/out"

# sql DB [psql args...] — as the superuser; gw DB ... — as the gateway login
sql() { local db=$1; shift; "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d "$db" "$@"; }
gw()  { local db=$1; shift; PGOPTIONS="-c client_min_messages=error" "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U regress_dump_gw -d "$db" "$@"; }
# as DB USER STATEMENT — one transaction acting as USER, through the gateway
as()  { gw "$1" -c "BEGIN" -c "SELECT carm.set_actor('$2')" -c "$3" -c "COMMIT" >/dev/null; }

sql postgres -c "CREATE DATABASE carm_src" >/dev/null || fail "createdb"
sql carm_src >/dev/null <<'SQL' || fail "setup"
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_dump_owner NOLOGIN IN ROLE carm_admin;       -- no superuser
CREATE ROLE regress_dump_gw LOGIN IN ROLE carm_gateway;          -- no superuser
SELECT carm.add_business('100000009', 'Importer I', '{IMPORTER}'),
       carm.add_business('200000008', 'Broker B', '{CUSTOMS_BROKER}'),
       carm.add_business('300000007', 'Importer J', '{IMPORTER}');
SELECT count(carm.add_program_account(p))
FROM unnest(ARRAY['100000009RM0001', '100000009RM0002', '200000008RM0001', '300000007RM0001']) p;
SELECT count(carm.register_user(u, initcap(u))) FROM unnest(ARRAY['ivy', 'ian', 'bob', 'bea', 'jay', 'nick']) u;
CREATE SCHEMA app AUTHORIZATION regress_dump_owner;
GRANT USAGE ON SCHEMA app TO regress_dump_gw;
SQL

# Delegation state, through the API.
as carm_src ivy "SELECT carm.register_business('100000009', '100000009RM0001')" || fail "ivy registers"
as carm_src bob "SELECT carm.register_business('200000008', '200000008RM0001')" || fail "bob registers"
as carm_src jay "SELECT carm.register_business('300000007', '300000007RM0001')" || fail "jay registers"
as carm_src ian "SELECT carm.request_employee_access('100000009', 'I work in customs')" || fail "ian requests"
as carm_src ivy "SELECT carm.approve_employee_access(1, 'EDITOR', '{100000009RM0001}')" || fail "ivy approves"
as carm_src bea "SELECT carm.request_employee_access('200000008', 'broker staff')" || fail "bea requests"
as carm_src bob "SELECT carm.approve_employee_access(2, 'VIEWER')" || fail "bob approves"
as carm_src bob "SELECT carm.request_relationship('200000008', '100000009', 'customs clearance')" || fail "relationship 1"
as carm_src ivy "SELECT carm.approve_relationship(1, 'BUSINESS', see_client_submissions => true)" || fail "approve 1"
as carm_src bob "SELECT carm.request_relationship('200000008', '300000007', 'customs clearance')" || fail "relationship 2"
as carm_src jay "SELECT carm.reject_relationship(2, 'not now')" || fail "reject 2"
as carm_src bob "SELECT carm.assign_client_access('200000008', '100000009', 4, 'PVIEWER', '{100000009RM0002}')" || fail "assign"
as carm_src bob "SELECT carm.create_client_group('200000008', 'Main', '{100000009}')" || fail "group"
as carm_src bob "SELECT carm.assign_group_employees(1, '{4}', 'PEDITOR', deferred => true)" || fail "deferred request"

# Protected tables, owned by a carm_admin member that is no superuser.
sql carm_src >/dev/null <<'SQL' || fail "protected tables"
SET ROLE regress_dump_owner;
CREATE TABLE app.rulings (id int PRIMARY KEY, program_id bigint NOT NULL, submitter_id bigint, title text);
CREATE INDEX ON app.rulings (program_id, submitter_id);
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');
CREATE TABLE app.pay (id int, program_id bigint NOT NULL, submitter_id bigint, amount numeric)
  PARTITION BY LIST (program_id);
CREATE TABLE app.pay_1 PARTITION OF app.pay FOR VALUES IN (1, 2);
CREATE INDEX ON app.pay (program_id, submitter_id);
SELECT carm.protect('app.pay', 'program_id', 'submitter_id', 'payments');
CREATE TABLE app.pay_2 PARTITION OF app.pay FOR VALUES IN (3, 4);     -- protected at once (§8)
GRANT SELECT ON app.rulings, app.pay, app.pay_1, app.pay_2 TO regress_dump_gw;
RESET ROLE;
-- rows of every program, submitted by each business (the superuser bypasses RLS)
INSERT INTO app.rulings SELECT i, 1 + i % 4, 1 + (i / 4) % 3, 'ruling ' || i FROM generate_series(0, 59) i;
INSERT INTO app.pay SELECT i, 1 + i % 4, 1 + (i / 4) % 3, i FROM generate_series(0, 59) i;
SQL

# The decisions: user_has_access over users x targets x the 27 permissions,
# and what each actor reads through the gateway login.
decisions() { # decisions DB OUTFILE
  sql "$1" -c "
    SELECT u.external_id, t, f || '.' || l, carm.user_has_access(u.id, t, f || '.' || l)
    FROM carm.app_user u,
         unnest(ARRAY['100000009', '200000008', '300000007', '100000009RM0001', '100000009RM0002',
                      '200000008RM0001', '300000007RM0001']) t,
         unnest(ARRAY['business_profile', 'program_profile', 'employee_access', 'relationships', 'rulings',
                      'payments', 'statements', 'notifications', 'banking']) f,
         unnest(ARRAY['view', 'edit', 'manage']) l
    WHERE u.external_id IN ('ivy', 'ian', 'bob', 'bea', 'jay', 'nick')
    ORDER BY 1, 2, 3" > "$2" || return 1
  for u in ivy ian bob bea jay nick; do
    gw "$1" -c "BEGIN" -c "SELECT carm.set_actor('$u')" \
       -c "SELECT '$u', (SELECT count(*) FROM app.rulings), (SELECT count(*) FROM app.pay),
                        (SELECT count(*) FROM app.pay_2)" -c "COMMIT" | grep "^$u|" >> "$2" || return 1
  done
  sql "$1" -c "SELECT tbl, function FROM carm.protected_tables()" >> "$2"
}
decisions carm_src "$DIR/out/before" || fail "decisions before the dump"
[ "$(grep -c '|t$' "$DIR/out/before")" -gt 50 ] || fail "the grid grants almost nothing: $(grep -c '|t$' "$DIR/out/before")"
grep -q '^bea|[1-9]' "$DIR/out/before" || fail "bea reads nothing before the dump"
grep -q '^nick|0|0|0$' "$DIR/out/before" || fail "nick reads rows before the dump"

# Dump, restore into a new database.
as_pg "$PGBIN/pg_dump" -h "$DIR" -p "$PORT" -U postgres -Fc -d carm_src -f "$DIR/out/carm.dump" \
  || fail "pg_dump failed"
sql postgres -c "CREATE DATABASE carm_dst" >/dev/null || fail "createdb carm_dst"
as_pg "$PGBIN/pg_restore" -h "$DIR" -p "$PORT" -U postgres -d carm_dst --exit-on-error "$DIR/out/carm.dump" \
  || fail "pg_restore failed"

decisions carm_dst "$DIR/out/after" || fail "decisions after the restore"
diff "$DIR/out/before" "$DIR/out/after" >&2 || fail "decisions differ after the restore"

# The restored database writes: every identity sequence goes on where it was.
as carm_dst nick "SELECT carm.request_employee_access('300000007', 'new here')" || fail "request after restore (23505?)"
as carm_dst bob "SELECT carm.cancel_relationship_request(2)" || fail "cancel after restore"
as carm_dst bob "SELECT carm.request_relationship('200000008', '300000007', 'second try')" || fail "relationship after restore"
sql carm_dst -c "SELECT carm.register_user('newbie', 'Newbie')" >/dev/null || fail "register_user after restore"
sql carm_dst -c "SELECT carm.add_business('400000006', 'Importer K', '{IMPORTER}')" >/dev/null || fail "add_business after restore"
as carm_dst bob "SELECT carm.create_client_group('200000008', 'Second')" || fail "group after restore"
[ "$(sql carm_dst -c "SELECT status FROM carm.relationship WHERE id = 3")" = pending ] || fail "relationship 3 missing"
[ "$(sql carm_dst -c "SELECT count(*) FROM carm.run_maintenance() WHERE action = 'group_requests_completed' AND count = 1")" = 1 ] \
  || fail "the pending deferred request was not applied after the restore"
[ "$(sql carm_dst -c "SELECT status FROM carm.group_request WHERE operation = 'ASSIGN_EMPLOYEES'")" = COMPLETED ] \
  || fail "the deferred group request is not completed after the restore"
# a partition added after the restore is protected as well
sql carm_dst >/dev/null <<'SQL' || fail "partition after restore"
SET ROLE regress_dump_owner;
CREATE TABLE app.pay_3 PARTITION OF app.pay FOR VALUES IN (5);
SQL
[ "$(sql carm_dst -c "SELECT count(*) FROM pg_policy WHERE polrelid = 'app.pay_3'::regclass")" = 4 ] \
  || fail "a partition created after the restore has no policies"
# ids are new, not reused
[ "$(sql carm_dst -c "SELECT max(id) FROM carm.app_user")" = 7 ] || fail "user ids restarted"
[ "$(sql carm_dst -c "SELECT count(*) = count(DISTINCT id) FROM carm.audit_event")" = t ] || fail "audit ids reused"

sql postgres -c "DROP DATABASE carm_src" -c "DROP DATABASE carm_dst" >/dev/null
grep -q 'ERROR' "$DATA/server.log" && fail "errors in the server log"
echo "dump/restore test passed"
exit 0
