#!/usr/bin/env bash
# The client examples (examples/python with psycopg 3, examples/node with
# node-postgres) against a real cluster through pgbouncer in transaction-pooling
# mode (§2: the transaction-local actor).  Each example runs a portal flow on a
# database of its own prepared by examples/setup.sql — sign-in, the actor's
# programs, a protected table, a client BAM approving and ending a relationship
# (R5, R9), a provider assignment (R7), refused writes (V5), the broker seeing
# each change — and its output must equal examples/expected_output.txt.
# Session actors are switched off in those databases
# (carm_deleg.allow_session_actor = off), so an example that used one fails.
# The Node example installs its locked dependencies (npm ci) into the work
# directory; where the npm registry cannot be reached it is skipped (exit 77)
# after the Python example has passed.
# Run by scripts/test.sh (PGBIN and WORK exported); exits non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
TOP=$(pwd)
. scripts/lib.sh
: "${PGBIN:?PGBIN is not set}" "${WORK:?WORK is not set}"

BOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[ -x "$BOUNCER" ] || { echo "examples test: pgbouncer is not installed (scripts/deps.sh)" >&2; exit 2; }

DIR="$WORK/examples"
DATA="$DIR/data"
mkdir -p "$DIR"; chmod 755 "$DIR"
[ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
CPORT=$(free_port) || exit 2
BPORT=$(free_port) || exit 2
while [ "$BPORT" = "$CPORT" ]; do BPORT=$(free_port) || exit 2; done
export PGCONNECT_TIMEOUT=5

cleanup() {
  local pid
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
  echo "examples test: $*" >&2
  echo "--- pgbouncer log:" >&2; tail -n 20 "$DIR/pgbouncer.log" >&2 2>/dev/null
  echo "--- server log:" >&2; tail -n 20 "$DATA/server.log" >&2 2>/dev/null
  exit 1
}

start_cluster "$DATA" "$CPORT" || fail "cluster did not start"
sql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$CPORT" -U postgres "$@"; }

# One database per example, each prepared by examples/setup.sql (the role
# portal is created by the first only).
sql -d postgres -c "CREATE DATABASE portal_python" -c "CREATE DATABASE portal_node" ||
  fail "could not create the databases"
sql -d portal_python -f examples/setup.sql > "$DIR/setup_python.log" 2>&1 ||
  { cat "$DIR/setup_python.log" >&2; fail "examples/setup.sql failed"; }
sed '/^CREATE ROLE portal /d' examples/setup.sql | sql -d portal_node > "$DIR/setup_node.log" 2>&1 ||
  { cat "$DIR/setup_node.log" >&2; fail "examples/setup.sql failed (second database)"; }

# pgbouncer, as the postgres OS user: transaction pooling, two server
# connections per database, so that consecutive transactions of one client
# may land on different server backends.
as_pg tee "$DIR/userlist.txt" >/dev/null <<EOF
"portal" ""
EOF
as_pg tee "$DIR/pgbouncer.ini" >/dev/null <<EOF
[databases]
portal_python = host=$DIR port=$CPORT dbname=portal_python
portal_node = host=$DIR port=$CPORT dbname=portal_node
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir = $DIR
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 20
server_reset_query = DISCARD ALL
server_reset_query_always = 0
query_wait_timeout = 15
server_connect_timeout = 5
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
as_pg "$BOUNCER" -d -q "$DIR/pgbouncer.ini" || fail "pgbouncer did not start"
ready=""
for _ in $(seq 50); do
  [ -s "$DIR/pgbouncer.pid" ] &&
    "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$BPORT" -U portal -d portal_python -c "SELECT 1" >/dev/null 2>&1 &&
    { ready=1; break; }
  sleep 0.2
done
[ -n "$ready" ] || fail "pgbouncer does not accept connections on 127.0.0.1:$BPORT"

# check NAME OUTPUT: the example's output must be the expected transcript,
# and it must have left no transaction open on the server.
check() {
  diff -u examples/expected_output.txt "$2" > "$DIR/$1.diff" ||
    { cat "$2" >&2; cat "$DIR/$1.diff" >&2; fail "the $1 example's output differs from examples/expected_output.txt"; }
  local open
  open=$(sql -d postgres -c "SELECT count(*) FROM pg_stat_activity
                             WHERE usename = 'portal' AND state LIKE 'idle in transaction%'")
  [ "$open" = 0 ] || fail "the $1 example left $open transactions open"
}

# 1. Python, psycopg 3 (Debian's python3-psycopg).
# Debian's python3-psycopg is a module of Debian's python3, which a
# python3 earlier in PATH (pyenv, a virtualenv) does not see.
PYTHON=${CARM_PYTHON:-/usr/bin/python3}
"$PYTHON" -c 'import psycopg' 2>/dev/null || fail "$PYTHON cannot import psycopg: python3-psycopg is not installed (scripts/deps.sh)"
CARM_DSN="host=127.0.0.1 port=$BPORT dbname=portal_python user=portal" \
  timeout 120 "$PYTHON" examples/python/portal.py > "$DIR/python.out" 2> "$DIR/python.err" ||
  { cat "$DIR/python.out" "$DIR/python.err" >&2; fail "the Python example failed"; }
check python "$DIR/python.out"
echo "python example: $(grep -c '' "$DIR/python.out") steps as expected"

# 2. Node, node-postgres, installed from the lock file into the work directory
# (nothing is written into the checkout).
{ command -v node && command -v npm; } >/dev/null || fail "node and npm are not installed (scripts/deps.sh)"
mkdir -p "$DIR/node"
cp examples/node/package.json examples/node/package-lock.json examples/node/portal.js "$DIR/node/"
if ! (cd "$DIR/node" && timeout 300 npm ci --no-audit --no-fund --cache "$DIR/npm-cache" > "$DIR/npm.log" 2>&1); then
  if ! (cd "$DIR/node" && timeout 30 npm ping --cache "$DIR/npm-cache" >> "$DIR/npm.log" 2>&1); then
    echo "python example passed; node example skipped: the npm registry cannot be reached (npm ci failed)"
    exit 77
  fi
  cat "$DIR/npm.log" >&2
  fail "npm ci failed although the registry answers"
fi
(cd "$DIR/node" && CARM_DSN="postgresql://portal@127.0.0.1:$BPORT/portal_node" \
  timeout 120 node portal.js > "$DIR/node.out" 2> "$DIR/node.err") ||
  { cat "$DIR/node.out" "$DIR/node.err" >&2; fail "the Node example failed"; }
check node "$DIR/node.out"
echo "node example: $(grep -c '' "$DIR/node.out") steps as expected (pg $(cd "$DIR/node" && node -p "require('pg/package.json').version"))"
cd "$TOP" || exit 1
echo "examples: python (psycopg $("$PYTHON" -c 'import psycopg; print(psycopg.__version__)')) and node through pgbouncer in transaction mode, output as expected"
exit 0
