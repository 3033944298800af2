#!/usr/bin/env bash
# The portal's shape as a benchmark (issue 16, SPEC §11): thousands of
# signed-in users multiplexed by a transaction-pooling pgbouncer onto a small
# pool of server connections, next to the same workload without RLS, in one
# run on a throw-away cluster:
#   - the world (bench/pool_world.sql): 10,000 signed-in users — brokers
#     reaching 2,000 and 20,000 clients (BUSINESS relationships, visibility
#     attributes on), their employees with proxy roles (individual
#     assignments and client groups), client employees and client BAMs —
#     and a protected table of interleaved rows with an unprotected copy;
#   - pgbouncer (transaction mode, 20 server connections) on loopback, and
#     pgbench with 200 client connections: each transaction picks a
#     Zipf-skewed actor (the brokers' BAMs and employees often, a long tail
#     of client users), then BEGIN; set_actor; a point read of a row it may
#     see or a listing of 20 rows of one of its programs; COMMIT.  The no-RLS
#     workload is the same on the unprotected copy with SELECT 1 in
#     set_actor's place.  Simple protocol, and extended with unnamed
#     statements (pgbouncer 1.18 cannot pool named prepared statements in
#     transaction mode, so -M prepared is not run through it);
#   - tps, p50 and p99 latency, the pool backends' memory and CPU, carm.stats
#     loads per transaction; the RLS run again with 10 changes a second to
#     broker B's own employees and relationships;
#   - cold cost per backend (direct connections): the first point read of a
#     new session for each broker's BAM, split into set_actor, planning and
#     execution, and the nested queries behind them (pg_stat_statements);
#     the cost of an actor switch in a warm backend; a backend's memory after
#     serving 10, 100, 1,000 and 10,000 distinct actors.
# Usage: bench/pool.sh [--rows N | --full] [--seconds S] [--warm-up S] [--skew Z] [--list PCT]
#   --rows N     protected rows (default 200,000; --full: 1,000,000)
#   --seconds S  seconds per pgbench run (default 20)
#   --warm-up S  seconds of the RLS workload before the runs, unmeasured (default 10)
#   --skew Z     Zipf exponent of the actor choice (default 1.1)
#   --list PCT   percentage of transactions that list 20 rows (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
rows=200000
secs=20
warm=10
skew=1.1
listpct=20
args="$*"
while [ $# -gt 0 ]; do
  case $1 in
    --rows) rows=$2; shift ;;
    --full) rows=1000000 ;;
    --seconds) secs=$2; shift ;;
    --warm-up) warm=$2; shift ;;
    --skew) skew=$2; shift ;;
    --list) listpct=$2; shift ;;
    *) echo "usage: bench/pool.sh [--rows N | --full] [--seconds S] [--warm-up S] [--skew Z] [--list PCT]" >&2; exit 2 ;;
  esac
  shift
done
CA=2000 CB=20000 EMPS=100 NACTORS=10000 POOL=20 CLIENTS=200
rows=$(( (rows + CB - 1) / CB * CB ))   # whole rows per program
perprog=$(( rows / CB ))
FPE=3; FCE=$(( 3 + 2 * EMPS )); FCBAM=$(( FCE + 2000 ))
GSB=$(( CB / (EMPS / 2) )); GSA=$(( CA / (EMPS / 2) ))

scripts/deps.sh
WORK=$(mktemp -d /tmp/carm_pool.XXXXXX); chmod 755 "$WORK"
BOUNCER_PID=""
stop_bouncer() {
  if [ -n "$BOUNCER_PID" ]; then
    kill "$BOUNCER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$BOUNCER_PID" 2>/dev/null || break; sleep 0.1; done
    BOUNCER_PID=""
  fi
}
cleanup() {
  local j
  for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
  stop_bouncer
  stop_cluster "$WORK/main/data"
  [ -n "${KEEP_BENCH:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
make_tree "$WORK/pg"
PORT=$(free_port)
SERVER_CONF=("shared_buffers = '512MB'" "work_mem = '16MB'" "maintenance_work_mem = '256MB'"
  "max_wal_size = '4GB'" "synchronous_commit = off" "max_parallel_workers_per_gather = 0"
  "jit = off" "max_connections = 60")
start_cluster "$WORK/main/data" "$PORT" "${SERVER_CONF[@]}" "shared_preload_libraries = 'carm_deleg'"
export PGHOST="$WORK/main" PGPORT="$PORT" PGUSER=postgres
PGBENCH=$PGBIN/pgbench
Q() { psql -X -q -At -d postgres -v ON_ERROR_STOP=1 "$@"; }
Q <<'SQL'
CREATE EXTENSION carm_deleg;  -- creates carm_gateway
CREATE ROLE bench_app LOGIN IN ROLE carm_gateway;   -- the portal, with RLS
CREATE ROLE bench_raw LOGIN;                        -- the portal, no RLS
CREATE ROLE bench_chg LOGIN IN ROLE carm_gateway;   -- the changes
GRANT pg_read_all_stats TO bench_app;               -- its own memory contexts
CREATE TABLE pool_result (section text, name text, value double precision, unit text, seq serial);
SQL
record() { # record SECTION NAME VALUE UNIT
  Q -c "INSERT INTO pool_result (section, name, value, unit) VALUES ('$1', '$2', ${3:-NULL}, '$4')"
}

echo "== world: 10,000 signed-in users, brokers reaching $CA and $CB clients, $rows rows"
t0=$(date +%s)
Q -v rows="$rows" -v clients_a="$CA" -v clients_b="$CB" -v emps="$EMPS" -f bench/pool_world.sql >/dev/null
echo "   generated in $(( $(date +%s) - t0 )) s"
# the pgbench arithmetic and bench.actor agree with the row check: for a
# sample of every class of user, each program of its range is visible in full
psql -X -q -At -d postgres -U bench_app -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE
  a record;
  n1 bigint;
  n2 bigint;
BEGIN
  FOR a IN SELECT * FROM bench.actor
           WHERE uid <= $NACTORS AND (uid <= 8 OR uid IN ($FCE - 2, $FCE - 1, $FCE, $FCBAM - 1, $FCBAM)
                                      OR uid % 613 = 0) LOOP
    PERFORM carm.set_actor(a.uid);
    SELECT count(*) INTO n1 FROM app.payment WHERE program_id BETWEEN a.lo AND a.hi;
    SELECT count(*) INTO n2 FROM app.payment_raw WHERE program_id BETWEEN a.lo AND a.hi;
    IF n1 <> n2 OR n1 = 0 THEN
      RAISE EXCEPTION 'user %: % of % rows of programs %..% visible', a.uid, n1, n2, a.lo, a.hi;
    END IF;
  END LOOP;
END \$\$;
SQL
echo "   checked: sampled actors see every row of their programs"

# ---- pgbench scripts -------------------------------------------------------
S=$WORK/scripts; mkdir -p "$S"; chmod 755 "$S"
DEFS=(-D nactors=$NACTORS -D skew=$skew -D cb=$CB -D ca=$CA -D emps=$EMPS -D fpe=$FPE -D fce=$FCE
      -D fcbam=$FCBAM -D gsb=$GSB -D gsa=$GSA -D perprog=$perprog -D listpct=$listpct)
# the actor (user id = rank of activity), a program it may see, a row of it
pick='\set u random_zipfian(1, :nactors, :skew)
\set k (:u - :fpe) % :emps
\set gs case when :u - :fpe < :emps then :gsb else :gsa end
\set lo case when :u <= 2 then 3 when :u < :fce and :k % 2 = 0 then 3 + 10 * :k when :u < :fce then 3 + (:k / 2) * :gs when :u < :fcbam then 3 + (10 * (:u - :fce)) % :cb else 3 + ((:u - :fcbam) * 7919) % :cb end
\set hi case when :u = 1 then :cb + 2 when :u = 2 then :ca + 2 when :u < :fce and :k % 2 = 0 then :lo + 19 when :u < :fce then :lo + :gs - 1 else :lo end
\set p random(:lo, :hi)
\set id (:p - 2) + :cb * random(0, :perprog - 1)
\set op random(1, 100)'
workload() { # workload FILE TABLE FIRST-STATEMENT
  cat > "$1" <<EOF
$pick
BEGIN;
$3
\\if :op <= :listpct
SELECT * FROM $2 WHERE program_id = :p ORDER BY id DESC LIMIT 20;
\\else
SELECT * FROM $2 WHERE id = :id;
\\endif
COMMIT;
EOF
}
workload "$S/rls.sql" app.payment 'SELECT carm.set_actor(:u::bigint);'
workload "$S/raw.sql" app.payment_raw 'SELECT 1;'
chmod -R a+r "$S"

# ---- pgbouncer ---------------------------------------------------------------
BPORT=$(free_port); while [ "$BPORT" = "$PORT" ]; do BPORT=$(free_port); done
B=$WORK/bouncer; mkdir -p "$B"
cat > "$B/pgbouncer.ini" <<EOF
[databases]
postgres = host=$PGHOST port=$PORT dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BPORT
unix_socket_dir =
auth_type = trust
auth_file = $B/users.txt
pool_mode = transaction
default_pool_size = $POOL
max_db_connections = $POOL
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = $(( CLIENTS + 50 ))
server_lifetime = 86400
server_idle_timeout = 0
logfile = $B/pgbouncer.log
pidfile = $B/pgbouncer.pid
admin_users = postgres
EOF
printf '"bench_app" ""\n"bench_raw" ""\n"postgres" ""\n' > "$B/users.txt"
chown -R postgres: "$B"
start_bouncer() { # a fresh pgbouncer: every run starts with new server connections
  rm -f "$B/pgbouncer.pid"
  as_pg pgbouncer -d "$B/pgbouncer.ini" >>"$B/stdout" 2>&1
  for _ in $(seq 1 50); do
    if [ -s "$B/pgbouncer.pid" ] &&
       psql -X -q -At -h 127.0.0.1 -p "$BPORT" -U bench_raw -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
      BOUNCER_PID=$(cat "$B/pgbouncer.pid"); return 0
    fi
    sleep 0.1
  done
  echo "pgbouncer did not start" >&2; cat "$B/stdout" "$B/pgbouncer.log" >&2; return 1
}

# cpu seconds (user + system) of a process, from /proc
cpu_of() { awk '{printf "%.2f\n", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# pool_run NAME SCRIPT ROLE PROTOCOL — one pgbench run through pgbouncer
pool_run() {
  local name=$1 script=$2 role=$3 proto=$4 out log tps p50 p99 n pids
  Q -c "SELECT carm.stats_reset()" >/dev/null
  start_bouncer
  log=$WORK/log_$name; mkdir -p "$log"; chown postgres: "$log"
  out=$(cd "$log" && as_pg "$PGBENCH" -h 127.0.0.1 -p "$BPORT" -U "$role" -n -c $CLIENTS -j 2 -T "$secs" \
          -M "$proto" "${DEFS[@]}" -l --log-prefix=tx -f "$script" postgres 2>&1) || { echo "$out" >&2; return 1; }
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
  n=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  record "$name" "transactions" "$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")" count
  read -r p50 p99 < <(cat "$log"/tx.* | awk '{print $3}' | sort -n |
    awk '{v[NR] = $1} END {printf "%.3f %.3f\n", v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000}')
  record "$name" "tps" "$tps" tps
  record "$name" "p50 latency" "$p50" ms
  record "$name" "p99 latency" "$p99" ms
  record "$name" "failed transactions" "${n:-0}" count
  # the pool's backends (all of them served this run only), then pgbouncer
  pids=$(Q -c "SELECT pid FROM pg_stat_activity WHERE usename = '$role' AND backend_type = 'client backend'")
  local rss=0 pss=0 priv=0 cpu=0 nb=0 p
  for p in $pids; do
    nb=$((nb + 1))
    rss=$((rss + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
    pss=$((pss + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
    priv=$((priv + $(awk '/^Anonymous:/ {print $2}' "/proc/$p/smaps_rollup")))
    cpu=$(awk -v a="$cpu" -v b="$(cpu_of "$p")" 'BEGIN {print a + b}')
  done
  record "$name" "pool backends" "$nb" count
  record "$name" "backend RSS, sum" "$(awk -v k=$rss 'BEGIN {print k / 1024}')" MiB
  record "$name" "backend Pss, sum" "$(awk -v k=$pss 'BEGIN {print k / 1024}')" MiB
  record "$name" "backend anonymous memory (heap), mean" "$(awk -v k=$priv -v n=$nb 'BEGIN {print n ? k / 1024 / n : 0}')" MiB
  record "$name" "backend CPU, sum" "$cpu" s
  record "$name" "pgbouncer CPU" "$(cpu_of "$BOUNCER_PID")" s
  stop_bouncer
  Q -c "INSERT INTO pool_result (section, name, value, unit)
        SELECT '$name', n, v, u FROM carm.stats s, LATERAL (VALUES
          ('carm loads of one business', s.business_loads::float8, 'count'),
          ('carm complete loads', s.full_loads::float8, 'count'),
          ('carm load time', s.load_ms::float8, 'ms'),
          ('carm invalidations applied', s.invalidations::float8, 'count'),
          ('carm decision tables derived', s.decision_tables::float8, 'count'),
          ('carm shared hits', s.shared_hits::float8, 'count'),
          ('carm shared misses', s.shared_misses::float8, 'count')) x(n, v, u)"
  echo "   $name: $tps tps, p50 $p50 ms, p99 $p99 ms"
}

# ---- the changes: 10 a second to broker B's own employees and relationships
BN_B=$(Q -c "SELECT bn9 FROM carm.business WHERE id = 1")
changes() { # a psql script: N changes at 10 a second — B's BAM promotes and
  # demotes an employee of B, assigns and revokes a client of B to another;
  # a client's BAM changes its relationship with B (R8: the client edits a
  # BUSINESS relationship).  Ids and BN9s are looked up here: the changing
  # role reads no table.
  local n=$1
  echo "SELECT clock_timestamp() AS t0 \\gset"
  Q -c "WITH s AS (SELECT i, 3 + (i / 6 * 97) % $CB AS c FROM generate_series(0, $n - 1) i),
             x AS (SELECT s.i, s.c, CASE WHEN s.c + 5000 > $CB + 2 THEN s.c ELSE s.c + 5000 END AS c2 FROM s)
        SELECT format('BEGIN; SELECT carm.set_actor(%s); ', CASE WHEN x.i % 6 >= 4 THEN e.user_id ELSE 1 END) ||
               CASE x.i % 6
                 WHEN 0 THEN format('SELECT carm.set_employee_access(%L, $FPE, ''PAM'')', b.bn9)   -- promotion of B's first employee
                 WHEN 1 THEN format('SELECT carm.set_employee_access(%L, $FPE, ''EDITOR'')', b.bn9) -- and back
                 WHEN 2 THEN format('SELECT carm.assign_client_access(%L, %L, $((FPE + 1)), ''PVIEWER'')', b.bn9, c2.bn9)
                 WHEN 3 THEN format('SELECT carm.revoke_client_access(%L, %L, $((FPE + 1)))', b.bn9, c2.bn9)
                 WHEN 4 THEN format('SELECT carm.update_relationship(%s, ''BUSINESS'', NULL, true, false, NULL)', r.id)
                 ELSE format('SELECT carm.update_relationship(%s, ''BUSINESS'', NULL, true, true, NULL)', r.id) END ||
               '; COMMIT;' || chr(10) ||
               format('SELECT pg_sleep(extract(epoch FROM :''t0''::timestamptz + interval ''100 ms'' * %s - clock_timestamp()));', x.i + 1)
        FROM x JOIN carm.business b ON b.id = 1 JOIN carm.business c2 ON c2.id = x.c2
        JOIN carm.relationship r ON r.provider_id = 1 AND r.client_id = x.c AND r.status = 'active'
        JOIN carm.employee e ON e.business_id = x.c AND e.role = 'BAM'
        ORDER BY x.i"
  echo "SELECT 'changes done', extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);"
}
nchanges=$(( secs * 10 ))
changes "$nchanges" > "$S/changes.sql"

# A portal's steady state: most signed-in users have been seen since the
# server started.  The RLS workload runs once, unmeasured, before the runs
# (and again after each restart below): what it measures is the first
# transactions after a restart, not the pool's shape.
warm_up() {
  start_bouncer
  as_pg "$PGBENCH" -h 127.0.0.1 -p "$BPORT" -U bench_app -n -c $CLIENTS -j 2 -T "$warm" \
    -M simple "${DEFS[@]}" -f "$S/rls.sql" postgres >/dev/null 2>&1 || true
  stop_bouncer
}
echo "== pool: pgbouncer transaction mode, $POOL server connections, pgbench -c $CLIENTS -j 2, $secs s a run (after a $warm s warm-up)"
warm_up
pool_run "no RLS, simple" "$S/raw.sql" bench_raw simple
pool_run "carm RLS, simple" "$S/rls.sql" bench_app simple
pool_run "no RLS, extended" "$S/raw.sql" bench_raw extended
pool_run "carm RLS, extended" "$S/rls.sql" bench_app extended
psql -X -q -At -d postgres -U bench_chg -v ON_ERROR_STOP=1 -f "$S/changes.sql" > "$WORK/changes.out" 2>&1 &
chg=$!
pool_run "carm RLS, simple, 10 changes/s" "$S/rls.sql" bench_app simple
wait "$chg" || { echo "the changes failed:" >&2; cat "$WORK/changes.out" >&2; exit 1; }
record "carm RLS, simple, 10 changes/s" "changes made" "$nchanges" count
record "carm RLS, simple, 10 changes/s" "changes: seconds taken" "$(sed -n 's/^changes done|//p' "$WORK/changes.out")" s

# The same RLS runs with each backend on its own (no grants shared across
# backends: carm_deleg.shared_store_size = 0), then sharing again.
restart_with() { # restart_with CONF-LINE
  as_pg "$PGBIN/pg_ctl" -D "$WORK/main/data" -w -m fast stop >/dev/null
  echo "$1" | as_pg tee -a "$WORK/main/data/postgresql.conf" >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$WORK/main/data" -l "$WORK/main/data/server.log" -w -t 60 start >/dev/null
}
echo "== the same pool, grants not shared across backends (carm_deleg.shared_store_size = 0)"
restart_with "carm_deleg.shared_store_size = 0"
warm_up
pool_run "carm RLS, simple, not shared" "$S/rls.sql" bench_app simple
psql -X -q -At -d postgres -U bench_chg -v ON_ERROR_STOP=1 -f "$S/changes.sql" > "$WORK/changes.out" 2>&1 &
chg=$!
pool_run "carm RLS, simple, not shared, 10 changes/s" "$S/rls.sql" bench_app simple
wait "$chg" || { echo "the changes failed:" >&2; cat "$WORK/changes.out" >&2; exit 1; }
restart_with "carm_deleg.shared_store_size = 64MB"

# ---- cold cost per backend (direct connections) ------------------------------
echo "== cold: the first point read of a new session (direct), median of 5"
ms_of() { sed -n "s/^$1: \([0-9.]*\) ms.*/\1/p" | head -1; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
cold_split() { # cold_split UID ID ID2 — one new session; prints name=value lines
  psql -X -q -d postgres -U bench_app -v ON_ERROR_STOP=1 <<EOF | awk '
    /^Time:/ { t[++nt] = $2 }
    /Planning Time:/ { pl[++np] = $3 }
    /Execution Time:/ { ex[++ne] = $3 }
    END {
      print "first statement of the session (SELECT 1)=" t[1]
      print "plain point read, cold (no RLS table, EXPLAIN ANALYZE)=" t[2]
      print "set_actor, cold=" t[4]
      print "RLS point read, cold: total=" t[5]
      print "RLS point read, cold: planning=" pl[2]
      print "RLS point read, cold: execution=" ex[2]
      print "RLS point read, another business: planning=" pl[3]
      print "RLS point read, another business: execution=" ex[3]
      print "RLS point read, warm: total=" t[7]
    }'
\\timing on
SELECT 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM app.payment_raw WHERE id = $2;
BEGIN;
SELECT carm.set_actor($1);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM app.payment WHERE id = $2;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM app.payment WHERE id = $3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM app.payment WHERE id = $2;
COMMIT;
EOF
}
cold_whole() { # cold_whole UID ID — BEGIN; set_actor; point read; COMMIT in a new session, ms
  psql -X -q -d postgres -U bench_app <<EOF | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {print s}'
\\timing on
BEGIN;
SELECT carm.set_actor($1);
SELECT * FROM app.payment WHERE id = $2;
COMMIT;
EOF
}
for who in "1:broker B BAM ($CB clients)" "2:broker A BAM ($CA clients)" "$FCBAM:a client BAM"; do
  uid=${who%%:*}; label=${who#*:}
  lo=$(Q -c "SELECT lo FROM bench.actor WHERE uid = $uid"); hi=$(Q -c "SELECT hi FROM bench.actor WHERE uid = $uid")
  id1=$(( lo - 2 + CB * (perprog / 2) )); id2=$(( hi - 2 ))
  [ "$id1" = "$id2" ] && id2=$(( hi - 2 + CB ))
  # the very first load in the cluster, then new sessions for an actor
  # another backend has loaded (grants shared across backends)
  Q -c "SELECT carm.shared_store_clear()" >/dev/null
  record "cold: $label" "first BEGIN; set_actor; point read; COMMIT of the cluster" "$(cold_whole "$uid" "$id1")" ms
  whole=(); for k in 1 2 3 4 5; do whole+=("$(cold_whole "$uid" "$id1")"); done
  record "cold: $label" "first BEGIN; set_actor; point read; COMMIT of a session, another backend loaded the actor" "$(printf '%s\n' "${whole[@]}" | median)" ms
  for k in 1 2 3 4 5; do cold_split "$uid" "$id1" "$id2"; done > "$WORK/split_$uid"
  while IFS= read -r key; do
    record "cold: $label" "$key" "$(grep -F "$key=" "$WORK/split_$uid" | sed 's/.*=//' | median)" ms
  done < <(sed 's/=.*//' "$WORK/split_$uid" | awk '!seen[$0]++')
  Q -c "SELECT carm.stats_reset()" >/dev/null
  cold_whole "$uid" "$id1" >/dev/null
  Q -c "INSERT INTO pool_result (section, name, value, unit)
        SELECT 'cold: $label', n, v, u FROM carm.stats s, LATERAL (VALUES
          ('carm loads in the first transaction (one business)', s.business_loads::float8, 'count'),
          ('carm complete loads in the first transaction', s.full_loads::float8, 'count'),
          ('carm load time in the first transaction', s.load_ms::float8, 'ms')) x(n, v, u)"
done

# the actor switch in a warm backend: pairs of transactions by two actors
# (always a switch) against pairs by one actor (never one), pgbench, direct
echo "== warm backend: the cost of switching actors (pgbench -c 1, direct)"
pair() { # pair FILE UID1 ID1 UID2 ID2
  printf 'BEGIN;\nSELECT carm.set_actor(%s);\nSELECT * FROM app.payment WHERE id = %s;\nCOMMIT;\nBEGIN;\nSELECT carm.set_actor(%s);\nSELECT * FROM app.payment WHERE id = %s;\nCOMMIT;\n' \
    "$2" "$3" "$4" "$5" > "$1"
}
CB_LO=$(Q -c "SELECT lo FROM bench.actor WHERE uid = $FCBAM")
pair "$S/same_b.sql" 1 1001 1 2001
pair "$S/same_c.sql" "$FCBAM" $(( CB_LO - 2 )) "$FCBAM" $(( CB_LO - 2 + CB ))
pair "$S/switch.sql" 1 1001 "$FCBAM" $(( CB_LO - 2 ))
pair "$S/same_a.sql" 2 1001 2 1002
pair "$S/switch_a.sql" 2 1001 "$FCBAM" $(( CB_LO - 2 ))
chmod a+r "$S"/*.sql
lat() { # mean ms per pgbench transaction (two of ours)
  as_pg "$PGBENCH" -h "$PGHOST" -p "$PGPORT" -U bench_app -n -c 1 -j 1 -T 5 -M simple -f "$1" postgres 2>&1 |
    sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
for f in same_b same_a same_c switch switch_a; do
  Q -c "SELECT carm.stats_reset()" >/dev/null
  v=$(lat "$S/$f.sql")
  record "switch" "$f: ms per pair of transactions" "$v" ms
  Q -c "INSERT INTO pool_result (section, name, value, unit)
        SELECT 'switch', '$f: carm loads (one business, complete)', s.business_loads + s.full_loads, 'count' FROM carm.stats s"
done

# where an actor switch goes in a warm backend: each measured actor's point
# read right after another actor's transaction (EXPLAIN ANALYZE), 5 times
echo "== warm backend: planning and execution of the first point read after a switch"
{
  echo "BEGIN; SELECT carm.set_actor($FCBAM::bigint); SELECT * FROM app.payment WHERE id = $(( CB_LO - 2 )); COMMIT;"
  for k in 1 2 3 4 5; do
    for t in 1 2 $FPE $((FPE + 1)) $FCE $((FCBAM + 1)); do
      tlo=$(Q -c "SELECT lo FROM bench.actor WHERE uid = $((FCBAM + 2 * k))")
      echo "BEGIN; SELECT carm.set_actor($((FCBAM + 2 * k))::bigint); SELECT * FROM app.payment WHERE id = $(( tlo - 2 )); COMMIT;"
      tlo=$(Q -c "SELECT lo FROM bench.actor WHERE uid = $t")
      echo "\\echo T $t"
      echo "BEGIN; SELECT carm.set_actor($t::bigint); EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM app.payment WHERE id = $(( tlo - 2 + CB )); COMMIT;"
    done
  done
} > "$S/switch_split.sql"
psql -X -q -At -d postgres -U bench_app -v ON_ERROR_STOP=1 -f "$S/switch_split.sql" |
  awk '/^T / {t = $2} /^Planning Time:/ {pl = $3} /^Execution Time:/ {print t, pl, $3}' > "$WORK/switch_split.out"
for t in 1 2 $FPE $((FPE + 1)) $FCE $((FCBAM + 1)); do
  case $t in
    1) label="broker B BAM" ;; 2) label="broker A BAM" ;; $FPE) label="B employee, PVIEWER on 20 clients" ;;
    $((FPE + 1))) label="B employee, PEDITOR of a $GSB-client group" ;; $FCE) label="client employee" ;; *) label="client BAM" ;;
  esac
  record "switch split" "$label: planning" "$(awk -v t=$t '$1 == t {print $2}' "$WORK/switch_split.out" | median)" ms
  record "switch split" "$label: execution" "$(awk -v t=$t '$1 == t {print $3}' "$WORK/switch_split.out" | median)" ms
done

# a backend's memory after serving N distinct actors (each once, in rank
# order: BAMs, provider employees, client employees, client BAMs)
echo "== one backend serving 10,000 distinct actors"
{
  echo "SELECT pg_backend_pid() AS pid \\gset"
  echo "\\setenv BACKEND :pid"
  Q -F ' ' -c "SELECT uid, lo FROM bench.actor WHERE uid <= $NACTORS ORDER BY uid" | while read -r uid lo; do
    printf 'BEGIN;\nSELECT carm.set_actor(%s);\nSELECT * FROM app.payment WHERE id = %s;\nCOMMIT;\n' "$uid" $(( lo - 2 ))
    case $uid in
      1|10|100|1000|$NACTORS)
        echo "\\! echo mem $uid \$(awk '/^VmRSS:/ {print \$2}' /proc/\$BACKEND/status) \$(awk '/^Pss:/ {print \$2}' /proc/\$BACKEND/smaps_rollup) \$(awk '/^Anonymous:/ {print \$2}' /proc/\$BACKEND/smaps_rollup)"
        echo "SELECT 'ctx', $uid, (SELECT sum(total_bytes) FROM pg_backend_memory_contexts), (SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'CacheMemoryContext'), (SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts WHERE name LIKE 'carm%');" ;;
    esac
  done
} > "$S/actors.sql"
t0=$(date +%s.%N)
psql -X -q -At -d postgres -U bench_app -v ON_ERROR_STOP=1 -f "$S/actors.sql" 2>&1 | grep -E '^(mem|ctx)' > "$WORK/actors.out"
record "distinct actors" "mean ms per transaction, each by a new actor (one backend)" \
  "$(awk -v a="$t0" -v b="$(date +%s.%N)" -v n=$NACTORS 'BEGIN {print (b - a) * 1000 / n}')" ms
while read -r tag n a b c; do
  if [ "$tag" = mem ]; then
    record "distinct actors" "$n actors: VmRSS" "$(awk -v k="$a" 'BEGIN {print k / 1024}')" MiB
    record "distinct actors" "$n actors: Pss" "$(awk -v k="$b" 'BEGIN {print k / 1024}')" MiB
    record "distinct actors" "$n actors: anonymous memory (heap)" "$(awk -v k="$c" 'BEGIN {print k / 1024}')" MiB
  fi
done < "$WORK/actors.out"
tr '|' ' ' < "$WORK/actors.out" | while read -r tag n a b c; do
  if [ "$tag" = ctx ]; then
    record "distinct actors" "$n actors: memory contexts, all" "$(awk -v k="$a" 'BEGIN {print k / 1048576}')" MiB
    record "distinct actors" "$n actors: CacheMemoryContext" "$(awk -v k="$b" 'BEGIN {print k / 1048576}')" MiB
    record "distinct actors" "$n actors: carm_deleg contexts" "$(awk -v k="$c" 'BEGIN {print k / 1048576}')" MiB
  fi
done

# what the cold first transaction runs: every nested statement, planned and
# executed, for each broker's BAM in a new session (pg_stat_statements,
# track = all; a restart with it preloaded, after every timed run)
echo "== cold: nested statements of a first transaction (pg_stat_statements)"
as_pg "$PGBIN/pg_ctl" -D "$WORK/main/data" -w -m fast stop >/dev/null
{
  echo "shared_preload_libraries = 'carm_deleg, pg_stat_statements'"
  echo "pg_stat_statements.track = all"
  echo "pg_stat_statements.track_planning = on"
} | as_pg tee -a "$WORK/main/data/postgresql.conf" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/main/data" -l "$WORK/main/data/server.log" -w -t 60 start >/dev/null
Q -c "CREATE EXTENSION pg_stat_statements" 
Q -c "CREATE TABLE pool_statements (actor text, calls bigint, plan_ms float8, exec_ms float8, query text)"
for who in "1:broker B BAM ($CB clients)" "2:broker A BAM ($CA clients)" "$FCBAM:a client BAM"; do
  uid=${who%%:*}; label=${who#*:}
  lo=$(Q -c "SELECT lo FROM bench.actor WHERE uid = $uid")
  cold_whole "$uid" $(( lo - 2 )) >/dev/null         # warms the server's shared state, not this backend
  Q -c "SELECT pg_stat_statements_reset()" >/dev/null
  cold_whole "$uid" $(( lo - 2 + CB )) >/dev/null
  Q -c "INSERT INTO pool_statements
        SELECT '$label', calls, total_plan_time, total_exec_time, regexp_replace(query, '\s+', ' ', 'g')
        FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'"
done

# ---- report -----------------------------------------------------------------
echo
echo "== results (bench/pool.sh${args:+ $args}: $rows rows, $secs s per run, Zipf $skew, $listpct % listings)"
psql -X -q -d postgres -f bench/pool_report.sql
echo "reproduce: bench/pool.sh${args:+ $args}"
exit 0
