#!/usr/bin/env bash
# §8 on hot standby: a revocation committed on the primary hides rows from a
# session on a streaming standby as soon as the standby has replayed it — the
# relcache invalidation travels with the commit record, so the standby
# session's warm grant cache cannot serve a stale decision.
# Run by scripts/test.sh (needs PGBIN and WORK from it).
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"
dir="$WORK/standby"; mkdir -p "$dir/primary" "$dir/replica"; chmod 755 "$dir" "$dir/primary" "$dir/replica"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir" "$dir/primary" "$dir/replica"
pport=$(free_port); rport=$(free_port)
while [ "$rport" = "$pport" ]; do rport=$(free_port); done
start_cluster "$dir/primary/data" "$pport" "wal_level = replica" "max_wal_senders = 4"
trap 'stop_cluster "$dir/replica/data"; stop_cluster "$dir/primary/data"' EXIT
P() { psql -X -q -At -h "$dir/primary" -p "$pport" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
R() { psql -X -q -At -h "$dir/replica" -p "$rport" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

P <<'SQL'
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_app NOLOGIN IN ROLE carm_gateway;
SELECT carm.add_business('100000009', 'Importer', '{IMPORTER}'),
       carm.add_business('200000008', 'Broker', '{CUSTOMS_BROKER}'),
       carm.add_program_account('100000009RM0001'),
       carm.register_user('broker_bam', 'Broker BAM'),
       carm.register_user('broker_emp', 'Broker employee');
INSERT INTO carm.employee (business_id, user_id, role) VALUES (2, 1, 'BAM'), (2, 2, 'EDITOR');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, comment)
VALUES (2, 1, 'active', 'BUSINESS', true, 'standby test');
INSERT INTO carm.client_assignment (relationship_id, user_id, role) VALUES (1, 2, 'PVIEWER');
CREATE TABLE public.rulings (id int PRIMARY KEY, program_id bigint, submitter_id bigint);
INSERT INTO public.rulings SELECT i, 1, 1 + i % 2 FROM generate_series(1, 10) i;
SELECT carm.protect('public.rulings', 'program_id', 'submitter_id', 'rulings');
GRANT SELECT ON public.rulings TO regress_app;
SQL

as_pg "$PGBIN/pg_basebackup" -h "$dir/primary" -p "$pport" -U postgres -D "$dir/replica/data" -R -X stream >/dev/null
as_pg sed -i -e "s/^port = .*/port = $rport/" \
  -e "s|^unix_socket_directories = .*|unix_socket_directories = '$dir/replica'|" "$dir/replica/data/postgresql.conf"
echo "hot_standby = on" | as_pg tee -a "$dir/replica/data/postgresql.conf" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$dir/replica/data" -l "$dir/replica/data/server.log" -w -t 60 start >/dev/null ||
  { echo "the standby did not start; its log:"; tail -n 20 "$dir/replica/data/server.log"; exit 1; }
[ "$(R -c 'SELECT pg_is_in_recovery()')" = t ] || { echo "replica is not in recovery"; exit 1; }

# One long-lived session on the standby, fed through a fifo.
mkfifo "$dir/in"; chmod 666 "$dir/in"
R < "$dir/in" > "$dir/out" 2>&1 &
exec 3> "$dir/in"
ask() { echo "$1" >&3; }
wait_for_lines() { for _ in $(seq 100); do [ "$(wc -l < "$dir/out")" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }

# session actors (off by default, SPEC §10 rev. 1.2): this one session switches actors
ask "SET carm_deleg.allow_session_actor = on; SET ROLE regress_app; SELECT carm.set_actor('broker_emp', false);"
ask "SELECT 'before:' || count(*) FROM public.rulings;"
wait_for_lines 2 || { echo "standby session did not answer"; cat "$dir/out"; exit 1; }

# Revoke on the primary and wait until the standby has replayed it.
P -c "DELETE FROM carm.client_assignment WHERE user_id = 2"
lsn=$(P -c "SELECT pg_current_wal_lsn()")     # after the commit record
for _ in $(seq 100); do
  [ "$(R -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break; sleep 0.1
done
ask "SELECT 'after:' || count(*) FROM public.rulings;"
ask "SELECT 'bam:' || count(*) FROM (SELECT carm.set_actor('broker_bam', false)) s, public.rulings;"
wait_for_lines 4 || { echo "standby session did not answer"; cat "$dir/out"; exit 1; }
exec 3>&-
wait

grep -q '^before:10$' "$dir/out" || { echo "expected 10 rows before the revocation:"; cat "$dir/out"; exit 1; }
grep -q '^after:0$' "$dir/out" || { echo "expected 0 rows after the revocation was replayed:"; cat "$dir/out"; exit 1; }
grep -q '^bam:10$' "$dir/out" || { echo "expected the broker BAM to keep 10 rows:"; cat "$dir/out"; exit 1; }
echo "standby: before 10, after replay 0, broker BAM 10"
