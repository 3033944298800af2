#!/usr/bin/env bash
# §8 and §11 (rev. 1.2) with grants shared across backends: the library in
# shared_preload_libraries, so every backend takes the grants another one
# loaded from shared memory (src/shared_store.c).
#  1. the shared path's own isolation specs (test/shared/specs): revocations
#     of each kind, READ COMMITTED and REPEATABLE READ, eviction during use;
#  2. every isolation spec and pgTAP file of the suite again, on this server:
#     decisions are the same with sharing as without;
#  3. a second backend's first query takes the grants the first one shared;
#     a backend started after a change its writer committed and left sees it;
#     a transaction's own uncommitted changes are never shared (also within
#     the writing statement, before its triggers run); two-phase
#     commit of a delegation change is refused;
#  4. a backend killed while it loads leaves nothing behind that others use;
#  5. a hot standby: it shares nothing (its backends load their own), and a
#     revocation replayed there is honoured by a backend that read before
#     and by one that starts after.
# Run by scripts/test.sh (WORK and PGBIN exported); exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${WORK:?WORK is not set}"

DIR="$WORK/shared"
pick_ports "$DIR" primary replica
PRELOAD=("shared_preload_libraries = 'carm_deleg'" "carm_deleg.maintenance_interval = 0"
         "carm_deleg.shared_store_size = 16MB")
start_cluster "$DIR/primary/data" "${port[primary]}" "${PRELOAD[@]}" \
  "wal_level = replica" "max_wal_senders = 4" || { echo "cluster did not start"; exit 1; }
trap 'stop_cluster "$DIR/replica/data"; stop_cluster "$DIR/primary/data"' EXIT
fail() { echo "shared store test: $*" >&2; exit 1; }
P() { psql -X -q -At -h "$DIR/primary" -p "${port[primary]}" -U postgres -v ON_ERROR_STOP=1 "$@"; }
R() { psql -X -q -At -h "$DIR/replica" -p "${port[replica]}" -U postgres -v ON_ERROR_STOP=1 "$@"; }
PGXS_DIR=$("$PGBIN/pg_config" --pkglibdir)/pgxs/src/test

# 1, 2. Isolation specs and pgTAP on the preloaded server ------------------
isolation() { # isolation INPUTDIR OUTDIR SPECS...
  local in=$1 out=$2; shift 2
  mkdir -p "$out"
  "$PGXS_DIR/isolation/pg_isolation_regress" --inputdir="$in" --outputdir="$out" \
    --bindir="$PGBIN" --host="$DIR/primary" --port="${port[primary]}" --user=postgres "$@" \
    > "$out/run.log" 2>&1 && return 0
  grep -E 'FAILED|failed' "$out/run.log" >&2
  [ -f "$out/regression.diffs" ] && head -120 "$out/regression.diffs" >&2
  return 1
}
specs() { ls "$1"/specs/*.spec | xargs -n1 basename | sed 's/\.spec$//'; }
# shellcheck disable=SC2046
isolation test/shared "$DIR/iso-shared" $(specs test/shared) ||
  fail "the shared path's isolation specs failed"
# shellcheck disable=SC2046
isolation test "$DIR/iso-suite" $(specs test) ||
  fail "the suite's isolation specs decide differently with shared grants"
P -d postgres -c "CREATE DATABASE carm_tap" || fail "could not create a database"
for f in test/pgtap/*.sql; do
  pg_prove -h "$DIR/primary" -p "${port[primary]}" -U postgres -d carm_tap "$f" > "$DIR/tap.log" 2>&1 ||
    { cat "$DIR/tap.log" >&2; fail "pgTAP $(basename "$f") failed with shared grants"; }
done

# A world for the rest: a broker whose BAM reaches 300 clients.
P -d postgres <<'SQL' || fail "could not build the world"
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_shared_login LOGIN IN ROLE carm_gateway;
SELECT carm.add_business('200000008', 'Broker', '{CUSTOMS_BROKER}');
-- BN9 with its Luhn check digit
CREATE FUNCTION pg_temp.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;
SELECT count(carm.add_business(pg_temp.bn9(10000000 + i), 'Client ' || i, '{IMPORTER}'))
FROM generate_series(1, 300) i;
SELECT carm.add_program_account(b.bn9 || 'RM0001') FROM carm.business b WHERE b.bn9 <> '200000008';
SELECT carm.register_user('bam', 'Broker BAM');
INSERT INTO carm.employee (business_id, user_id, role)
SELECT carm.business_id('200000008'), u.id, 'BAM' FROM carm.app_user u WHERE u.external_id = 'bam';
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, comment)
SELECT carm.business_id('200000008'), b.id, 'active', 'BUSINESS', true, 'shared store test'
FROM carm.business b WHERE b.bn9 <> '200000008';
CREATE TABLE public.rulings (id int PRIMARY KEY, program_id bigint, submitter_id bigint);
INSERT INTO public.rulings SELECT i, p.id, p.business_id
FROM generate_series(1, 3000) i JOIN carm.program p ON p.id = 1 + i % 300;
SELECT carm.protect('public.rulings', 'program_id', 'submitter_id', 'rulings');
GRANT SELECT ON public.rulings TO regress_shared_login;
SQL
A() { psql -X -q -At -h "$DIR/primary" -p "${port[primary]}" -U regress_shared_login -d postgres -v ON_ERROR_STOP=1 "$@"; }
stat() { P -d postgres -c "SELECT $1 FROM carm.stats WHERE database = 'postgres'"; }
COUNT="BEGIN; SELECT carm.set_actor('bam'); SELECT count(*) FROM public.rulings; COMMIT;"

# 3. One backend loads, another takes what it shared -------------------------
[ "$(A -c "$COUNT" | tail -1)" = 3000 ] || fail "the broker BAM does not see its 3000 rows"
P -d postgres -c "SELECT carm.stats_reset()" >/dev/null
[ "$(A -c "$COUNT" | tail -1)" = 3000 ] || fail "a second backend sees other rows"
[ "$(stat 'shared_hits > 0 AND full_loads = 0')" = t ] ||
  fail "a second backend loaded the grants again ($(stat 'shared_hits || \" hits, \" || full_loads || \" loads\"'))"

# 3b. A change committed by a session that then leaves, with no other backend
# connected: a backend started afterwards never receives its invalidation,
# so the committing backend logs its keys itself, at commit.  (Without it,
# every new backend went on using the shared grants the change revoked.)
P -d postgres -c "UPDATE carm.relationship SET status = 'ended', closed_at = now()
                  WHERE client_id = (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 1)" ||
  fail "revocation failed"
[ "$(A -c "$COUNT" | tail -1)" = 2990 ] || fail "a backend started after a revocation uses the revoked shared grants"
P -d postgres -c "UPDATE carm.relationship SET status = 'active', closed_at = NULL
                  WHERE client_id = (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 1)" ||
  fail "restoring failed"
[ "$(A -c "$COUNT" | tail -1)" = 3000 ] || fail "a backend started after a grant does not see it"

# 3c. A transaction that changed delegation state sees its own uncommitted
# changes: what it loads is neither published nor replaced by shared grants.
mkfifo "$DIR/dirty_in"; chmod 666 "$DIR/dirty_in"
P -d postgres < "$DIR/dirty_in" > "$DIR/dirty_out" 2>&1 &
exec 5> "$DIR/dirty_in"
echo "BEGIN; UPDATE carm.relationship SET status = 'ended', closed_at = now()
      WHERE client_id IN (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 10);
      SET LOCAL ROLE regress_shared_login; SELECT carm.set_actor('bam');
      SELECT 'inside:' || count(*) FROM public.rulings;" >&5
for _ in $(seq 100); do grep -q inside: "$DIR/dirty_out" && break; sleep 0.1; done
grep -q '^inside:2900$' "$DIR/dirty_out" || { cat "$DIR/dirty_out"; fail "a transaction does not see its own revocation"; }
[ "$(A -c "$COUNT" | tail -1)" = 3000 ] || fail "another backend sees a revocation that is not committed"
echo "ROLLBACK;" >&5
exec 5>&-
wait
[ "$(A -c "$COUNT" | tail -1)" = 3000 ] || fail "the rolled-back revocation is seen"

# 3c'. Within the statement that writes it, before its triggers run, a
# change is already visible to a function the statement calls: a write of
# any kind ends sharing for the transaction.  Here the statement fails after
# the read, so nothing is ever committed, nor logged.
P -d postgres <<'SQL' || fail "could not create the peeking function"
CREATE FUNCTION public.peek() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $f$
BEGIN
  SET LOCAL ROLE regress_shared_login;
  PERFORM carm.set_actor('bam');
  RETURN (SELECT count(*) FROM public.rulings);
END $f$;
SQL
# (the shared set of bam predates the revocation: the reader patches it)
P -d postgres -c "UPDATE carm.relationship SET status = 'ended', closed_at = now()
                  WHERE client_id = (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 1)" ||
  fail "revocation failed"
P -d postgres -c "UPDATE carm.relationship SET status = 'active', closed_at = NULL
                  WHERE client_id = (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 1)
                  RETURNING public.peek(), 1 / (random() * 0)::int" >/dev/null 2>&1 && fail "the failing statement succeeded"
[ "$(A -c "$COUNT" | tail -1)" = 2990 ] || fail "a grant read within a failed statement was shared"
P -d postgres -c "UPDATE carm.relationship SET status = 'active', closed_at = NULL
                  WHERE client_id = (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 1)" ||
  fail "restoring failed"
[ "$(A -c "$COUNT" | tail -1)" = 3000 ] || fail "the restored grant is not seen"

# 3d. Two-phase commit of a change to delegation state is refused while grants
# are shared: COMMIT PREPARED would send its invalidations without logging them.
out=$(P -d postgres -c "BEGIN" -c "UPDATE carm.relationship SET see_other = NOT see_other
                  WHERE client_id = (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 1)" \
       -c "PREPARE TRANSACTION 'carm_shared_2pc'" 2>&1) && fail "PREPARE TRANSACTION of a delegation change was accepted"
echo "$out" | grep -q "cannot prepare a transaction that changed delegation state" ||
  { echo "$out"; fail "PREPARE TRANSACTION was refused for another reason"; }
[ "$(P -d postgres -c "SELECT count(*) FROM pg_prepared_xacts")" = 0 ] || fail "a transaction was prepared"

# 4. A backend killed while it loads -----------------------------------------
# The loader waits for a lock on carm.relationship in the middle of its
# load; it is killed there; a revocation follows; a new backend must not
# use anything of the dead load.
P -d postgres -c "SELECT carm.shared_store_clear()" >/dev/null
mkfifo "$DIR/lock_in"; chmod 666 "$DIR/lock_in"
P -d postgres < "$DIR/lock_in" > "$DIR/lock_out" 2>&1 &
exec 3> "$DIR/lock_in"
echo "BEGIN; LOCK TABLE carm.relationship IN ACCESS EXCLUSIVE MODE; SELECT 'locked';" >&3
for _ in $(seq 100); do grep -q locked "$DIR/lock_out" && break; sleep 0.1; done
A -c "$COUNT" > "$DIR/killed.out" 2>&1 &
loader=$!
for _ in $(seq 100); do
  pid=$(P -d postgres -c "SELECT pid FROM pg_stat_activity WHERE usename = 'regress_shared_login'
                          AND wait_event_type = 'Lock'")
  [ -n "$pid" ] && break; sleep 0.1
done
[ -n "$pid" ] || fail "the loader did not wait for the lock"
P -d postgres -c "SELECT pg_terminate_backend($pid)" >/dev/null
wait "$loader" 2>/dev/null
echo "UPDATE carm.relationship SET status = 'ended', closed_at = now()
      WHERE client_id IN (SELECT id FROM carm.business WHERE bn9 <> '200000008' ORDER BY id LIMIT 100);
      COMMIT;" >&3
exec 3>&-
wait
[ "$(A -c "$COUNT" | tail -1)" = 2000 ] || fail "after a killed load and a revocation the BAM does not see 2000 rows"
[ "$(A -c "$COUNT" | tail -1)" = 2000 ] || fail "the shared grants after a killed load are wrong"

# 5. A hot standby with sharing ----------------------------------------------
as_pg "$PGBIN/pg_basebackup" -h "$DIR/primary" -p "${port[primary]}" -U postgres -D "$DIR/replica/data" -R -X stream >/dev/null ||
  fail "base backup failed"
as_pg sed -i -e "s/^port = .*/port = ${port[replica]}/" \
  -e "s|^unix_socket_directories = .*|unix_socket_directories = '$DIR/replica'|" "$DIR/replica/data/postgresql.conf"
echo "hot_standby = on" | as_pg tee -a "$DIR/replica/data/postgresql.conf" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DIR/replica/data" -l "$DIR/replica/data/server.log" -w -t 60 start >/dev/null ||
  fail "the standby did not start"
RA() { psql -X -q -At -h "$DIR/replica" -p "${port[replica]}" -U regress_shared_login -d postgres -v ON_ERROR_STOP=1 "$@"; }
mkfifo "$DIR/standby_in"; chmod 666 "$DIR/standby_in"
RA < "$DIR/standby_in" > "$DIR/standby_out" 2>&1 &
exec 4> "$DIR/standby_in"
echo "BEGIN; SELECT carm.set_actor('bam'); SELECT 'before:' || count(*) FROM public.rulings; COMMIT;" >&4
for _ in $(seq 100); do grep -q before: "$DIR/standby_out" && break; sleep 0.1; done
[ "$(RA -c "$COUNT" | tail -1)" = 2000 ] || fail "a second standby backend does not see 2000 rows"
# a standby shares nothing: its backends started after a replayed commit
# never receive the commit's keys, and nobody commits there to log them
[ "$(R -d postgres -c "SELECT shared_hits = 0 AND shared_published = 0 FROM carm.stats WHERE database = 'postgres'")" = t ] ||
  fail "the standby's backends share grants"
P -d postgres -c "UPDATE carm.relationship SET status = 'ended', closed_at = now()
                  WHERE client_id IN (SELECT client_id FROM carm.relationship WHERE status = 'active'
                                      ORDER BY client_id LIMIT 50)" || fail "revocation failed"
lsn=$(P -d postgres -c "SELECT pg_current_wal_lsn()")
for _ in $(seq 100); do
  [ "$(R -d postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break; sleep 0.1
done
echo "BEGIN; SELECT carm.set_actor('bam'); SELECT 'after:' || count(*) FROM public.rulings; COMMIT;" >&4
exec 4>&-
wait
grep -q '^before:2000$' "$DIR/standby_out" || { cat "$DIR/standby_out"; fail "the standby session's first read is wrong"; }
grep -q '^after:1500$' "$DIR/standby_out" || { cat "$DIR/standby_out"; fail "the standby session did not honour the replayed revocation"; }
[ "$(RA -c "$COUNT" | tail -1)" = 1500 ] || fail "a new standby backend did not honour the replayed revocation"

grep -qE 'PANIC|TRAP' "$DIR/primary/data/server.log" "$DIR/replica/data/server.log" && fail "PANIC in a server log"
echo "shared store test passed"
exit 0
