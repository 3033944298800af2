#!/usr/bin/env bash
# §2 and §10 (rev. 1.2) under a transaction-pooling connection pooler: through
# a real pgbouncer in pool_mode = transaction with ONE server connection per
# pool, two clients take turns on the same server backend.
#   Pool "carm" (the defaults), clients A and B:
#   - set_actor(user) (is_local => true, the default) ends with A's transaction:
#     B, on the same backend right after, has no actor and sees no rows.
#   - set_actor(user, false), a session actor, is refused (42501): the setting
#     carm_deleg.allow_session_actor is off by default.  A's driver-style call
#     outside a transaction block gets 25P01, whose hint shows the transaction
#     block and never suggests a session actor.  B never inherits an actor.
#   Pool "carm_on", whose role has carm_deleg.allow_session_actor = on, clients
#   C and D: what the setting permits, and why it is off by default.
#   - set_actor(user, false) is session-wide, and the session is the server
#     connection, not the client: it leaks to D.  pgbouncer runs no reset query
#     between clients in transaction mode (server_reset_query_always = 0, the
#     default, pinned below), so the leak is deterministic and asserted.
#   - DISCARD ALL, or carm.reset_actor(), issued through the pooler clears it
#     for every later client of that backend.
# Run by scripts/test.sh (PGBIN and WORK exported); exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${PGBIN:?PGBIN is not set}" "${WORK:?WORK is not set}"

BOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$BOUNCER" ] || { echo "pgbouncer test: pgbouncer is not installed (scripts/deps.sh)" >&2; exit 2; }

DIR="$WORK/pgbouncer"
DATA="$DIR/data"
mkdir -p "$DIR"; chmod 755 "$DIR"
[ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
CPORT=$(free_port) || exit 2
BPORT=$(free_port) || exit 2
while [ "$BPORT" = "$CPORT" ]; do BPORT=$(free_port) || exit 2; done
export PGCONNECT_TIMEOUT=5

CLIENT_PIDS=()
trap '' PIPE   # a client that died makes writes fail, not kill the script
cleanup() {
  exec 3>&- 4>&- 5>&- 6>&-
  local p pid
  for p in "${CLIENT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  # Stop exactly the pgbouncer started here, by the pid in its own pidfile.
  if [ -s "$DIR/pgbouncer.pid" ]; then
    pid=$(cat "$DIR/pgbouncer.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
  fi
  stop_cluster "$DATA"
}
trap cleanup EXIT

fail() {
  echo "pgbouncer test: $*" >&2
  for f in "$DIR"/[abcd].out; do
    [ -f "$f" ] && { echo "--- client $(basename "$f" .out):" >&2; cat "$f" >&2; }
  done
  echo "--- pgbouncer log:" >&2; tail -n 30 "$DIR/pgbouncer.log" >&2 2>/dev/null
  echo "--- server log:" >&2; tail -n 30 "$DATA/server.log" >&2 2>/dev/null
  exit 1
}

start_cluster "$DATA" "$CPORT" || fail "cluster did not start"
sql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$CPORT" -U postgres -d postgres "$@"; }

# 1. Setup, directly on the cluster.
sql >/dev/null <<'SQL' || fail "setup failed"
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_pool LOGIN IN ROLE carm_gateway;
CREATE ROLE regress_pool_on LOGIN IN ROLE carm_gateway;
ALTER ROLE regress_pool_on SET carm_deleg.allow_session_actor = on;
SELECT carm.add_business('100000009', 'Alice Imports', '{IMPORTER}'),
       carm.add_business('300000007', 'Bob Imports', '{IMPORTER}'),
       carm.add_program_account('100000009RM0001'),
       carm.add_program_account('300000007RM0001'),
       carm.register_user('alice', 'Alice'),
       carm.register_user('bob', 'Bob');
INSERT INTO carm.employee (business_id, user_id, role)
SELECT carm.business_id(bn9), u.id, 'BAM'
FROM (VALUES ('100000009', 'alice'), ('300000007', 'bob')) v(bn9, ext)
JOIN carm.app_user u ON u.external_id = v.ext;
CREATE TABLE public.t (id int PRIMARY KEY, program_id bigint NOT NULL, submitter_id bigint);
CREATE INDEX ON public.t (program_id, submitter_id);
-- 3 rows in alice's program, 5 in bob's; each importer submitted its own.
INSERT INTO public.t
SELECT i, carm.program_id(CASE WHEN i <= 3 THEN '100000009RM0001' ELSE '300000007RM0001' END),
          carm.business_id(CASE WHEN i <= 3 THEN '100000009' ELSE '300000007' END)
FROM generate_series(1, 8) i;
SELECT carm.protect('public.t', 'program_id', 'submitter_id', 'rulings');
GRANT SELECT ON public.t TO regress_pool, regress_pool_on;
SQL
ALICE=$(sql -c "SELECT id FROM carm.app_user WHERE external_id = 'alice'") || fail "no alice"

# 2. pgbouncer, as the postgres OS user: transaction pooling, one server connection.
as_pg tee "$DIR/userlist.txt" >/dev/null <<EOF
"regress_pool" ""
"regress_pool_on" ""
"postgres" ""
EOF
as_pg tee "$DIR/pgbouncer.ini" >/dev/null <<EOF
[databases]
carm = host=$DIR port=$CPORT dbname=postgres
carm_on = host=$DIR port=$CPORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir = $DIR
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 1
max_client_conn = 10
; the documented defaults, pinned: no reset query between clients in transaction mode
server_reset_query = DISCARD ALL
server_reset_query_always = 0
query_wait_timeout = 15
server_connect_timeout = 5
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
as_pg "$BOUNCER" -d -q "$DIR/pgbouncer.ini" || fail "pgbouncer did not start"

B() { "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$BPORT" -U regress_pool -d carm "$@"; }
ready=""
for _ in $(seq 50); do
  [ -s "$DIR/pgbouncer.pid" ] && B -c "SELECT 1" >/dev/null 2>&1 && { ready=1; break; }
  sleep 0.2
done
[ -n "$ready" ] || fail "pgbouncer does not accept connections on 127.0.0.1:$BPORT"

# Four long-lived clients, each a psql fed through a fifo: A (fd 3) and B
# (fd 4) on pool carm, C (fd 5) and D (fd 6) on pool carm_on.
for c in a b c d; do mkfifo "$DIR/$c.in"; : > "$DIR/$c.out"; done
client() { # client NAME USER DB
  timeout 120 "$PGBIN/psql" -X -q -At -v VERBOSITY=default -h 127.0.0.1 -p "$BPORT" -U "$2" -d "$3" \
    < "$DIR/$1.in" > "$DIR/$1.out" 2>&1 & CLIENT_PIDS+=($!)
}
client a regress_pool carm; exec 3> "$DIR/a.in"
client b regress_pool carm; exec 4> "$DIR/b.in"
client c regress_pool_on carm_on; exec 5> "$DIR/c.in"
client d regress_pool_on carm_on; exec 6> "$DIR/d.in"
A() { echo "$1" >&3; }
Bc() { echo "$1" >&4; }
C() { echo "$1" >&5; }
D() { echo "$1" >&6; }
# got CLIENT TAG — wait (up to 15 s) for the line "TAG:value" from a client, print value.
got() {
  local line
  for _ in $(seq 150); do
    line=$(grep -m1 "^$2:" "$DIR/$1.out") && { echo "${line#"$2":}"; return 0; }
    sleep 0.1
  done
  fail "client $1 did not answer $2"
}
# state TAG — what a client sees: actor (or none), visible rows of t, server backend pid
state() { echo "SELECT '$1:' || coalesce(carm.actor()::text, 'none') || ',' || count(*) || ',' || pg_backend_pid() FROM public.t;"; }
expect() { # expect CLIENT TAG WANT
  local v; v=$(got "$1" "$2") || exit 1
  [ "$v" = "$3" ] || fail "client $1 at $2: expected [$3], got [$v]"
}

A "SELECT 'a0:' || pg_backend_pid();"
PID=$(got a a0) || exit 1
Bc "SELECT 'b0:' || pg_backend_pid();"
expect b b0 "$PID"
[ "$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_pool'")" = 1 ] \
  || fail "expected exactly one server connection for regress_pool"

# Transaction-local actor: alice sees her 3 rows inside A's transaction ...
A "BEGIN; SELECT carm.set_actor('alice'); $(state a1) COMMIT;"
expect a a1 "$ALICE,3,$PID"
# ... and B, next on the same server backend, has no actor and sees nothing.
Bc "$(state b1)"
expect b b1 "none,0,$PID"

# The defaults: a session actor is refused (42501) ...
A "SELECT carm.set_actor('alice', false);"
A "$(state a2)"
expect a a2 "none,0,$PID"
# ... and B, next on the backend, inherits nothing.
Bc "$(state b2)"
expect b b2 "none,0,$PID"
# A driver's autocommit call (outside a transaction block) gets 25P01, and the
# hint shows the transaction block, never a session actor.
A "SELECT carm.set_actor('alice');"
A "$(state a3)"
expect a a3 "none,0,$PID"
Bc "$(state b3)"
expect b b3 "none,0,$PID"
grep -q 'ERROR:  session-level acting users are not allowed' "$DIR/a.out" \
  || fail "client a: the session actor was not refused"
grep -q "HINT:  Run BEGIN; SELECT carm.set_actor(...); ...; COMMIT; (or the driver's transaction block)." "$DIR/a.out" \
  || fail "client a: no transaction-block hint"
grep -q 'ERROR:  carm.set_actor() outside a transaction block would last for no statement' "$DIR/a.out" \
  || fail "client a: no 25P01 for the autocommit call"
grep -qi 'is_local => false\|for the session' "$DIR/a.out" && fail "client a: an error suggests a session actor"
[ "$(grep -c 'ERROR' "$DIR/a.out")" = 2 ] || fail "client a: expected exactly the two refusals"

# Pool carm_on (allow_session_actor = on for its role): the leak the setting permits.
C "SELECT 'c0:' || pg_backend_pid();"
PID_ON=$(got c c0) || exit 1
D "SELECT 'd0:' || pg_backend_pid();"
expect d d0 "$PID_ON"
C "SHOW carm_deleg.allow_session_actor;"
C "SELECT carm.set_actor('alice', false);"
C "$(state c1)"
expect c c1 "$ALICE,3,$PID_ON"
D "$(state d1)"
expect d d1 "$ALICE,3,$PID_ON"
# DISCARD ALL through the pooler clears it, for D and for C after it.
D "DISCARD ALL;"
D "$(state d2)"
expect d d2 "none,0,$PID_ON"
C "$(state c2)"
expect c c2 "none,0,$PID_ON"

# carm.reset_actor() clears it too.
C "SELECT carm.set_actor('alice', false); SELECT 'c3s:done';"
expect c c3s done
D "$(state d3)"
expect d d3 "$ALICE,3,$PID_ON"
D "SELECT carm.reset_actor(); SELECT 'd3r:done';"
expect d d3r done
C "$(state c4)"
expect c c4 "none,0,$PID_ON"
D "$(state d4)"
expect d d4 "none,0,$PID_ON"

exec 3>&- 4>&- 5>&- 6>&-
wait "${CLIENT_PIDS[@]}" 2>/dev/null
grep -qE 'ERROR|FATAL' "$DIR/b.out" "$DIR/c.out" "$DIR/d.out" && fail "errors in a client session"
echo "pgbouncer: pool carm, one server backend ($PID) for clients A and B: local actor did not leak (B: none, 0 rows); session actor refused by default (42501), 25P01 hint shows BEGIN ... COMMIT, B never inherited an actor.  Pool carm_on (allow_session_actor = on), backend $PID_ON: session actor leaked to D (alice, 3 rows) until DISCARD ALL / reset_actor() (none, 0 rows)"
exit 0
