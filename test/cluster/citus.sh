#!/usr/bin/env bash
# Citus (docs/dba.md "Citus"): a coordinator and two workers on loopback make the
# decisions of one node.
#   1. The demo world, acted out through the API (employees, relationships,
#      groups, expiry, maintenance) on Citus with the state distributed, and
#      on one node: the same transcript, the same audit trail, E9 run once.
#   2. Actor by actor, every user of the demo: counts, sums, router queries
#      and writes (V1-V5) on two distributed protected tables, one
#      distributed by program and protected after distribution, one
#      distributed by client business and protected before, equal those on
#      a local table holding the same rows.
#   3. A revocation committed on the coordinator hides rows on the workers
#      from the next statement of a running READ COMMITTED transaction.
#   4. Workers re-check the actor they are sent; session actors and
#      bindings are not honoured; no node-local oid is replicated.
#   5. Attacks: clearing the actor (RESET, SET ... TO DEFAULT, RESET ALL,
#      set_config, a DO block, a function's SET clause, inside a released
#      savepoint) clears it on the workers; an actor that ROLLBACK TO
#      SAVEPOINT restores is checked again.
# Skips (exit 77) when Citus is not installed: scripts/citus.sh installs it.
# Run by scripts/test.sh (needs PGBIN and WORK from it).
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"
if [ ! -f "$("$PGBIN/pg_config" --pkglibdir)/citus.so" ]; then
  echo "skipped: Citus is not installed (scripts/citus.sh /path/to/citus-src installs it)"
  exit 77
fi

dir="$WORK/citus"; mkdir -p "$dir"; chmod 755 "$dir"
[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
nodes=(coord w1 w2 single)
pick_ports "$dir" "${nodes[@]}"
trap 'for n in "${nodes[@]}"; do stop_cluster "$dir/$n/data"; done' EXIT
for n in coord w1 w2; do
  # maintenance runs once, on the coordinator: w1's worker checks every second, and skips
  interval=0; [ $n = w1 ] && interval=1
  start_cluster "$dir/$n/data" "${port[$n]}" "shared_preload_libraries = 'citus,carm_deleg'" \
    "max_prepared_transactions = 100" "citus.shard_count = 4" "carm_deleg.maintenance_interval = $interval"
done
start_cluster "$dir/single/data" "${port[single]}" "shared_preload_libraries = 'carm_deleg'" \
  "carm_deleg.maintenance_interval = 0"

q() { local n=$1; shift; psql -X -q -At -h "$dir/$n" -p "${port[$n]}" -U postgres -d postgres "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

citus_join "$dir" coord w1 w2 || fail "the Citus cluster did not form"
q coord -v ON_ERROR_STOP=1 -c "CREATE EXTENSION carm_deleg"   # Citus creates it on the workers too
q single -v ON_ERROR_STOP=1 -c "CREATE EXTENSION carm_deleg"
# state that exists before distribution is copied to every node
for n in coord single; do
  q $n -v ON_ERROR_STOP=1 -c "SELECT carm.add_business('600000004', 'Early Importer', '{IMPORTER}'),
    carm.add_program_account('600000004RM0001'), carm.register_user('early', 'Early User')" >/dev/null
done

echo "-- distribute_state(): refusals, then the state tables"
out=$(q single -c "SELECT carm.distribute_state()" 2>&1) && fail "distribute_state without Citus: $out"
[[ $out == *"Citus is not installed"* ]] || fail "distribute_state without Citus: $out"
out=$(q w1 -c "SELECT carm.distribute_state()" 2>&1) && fail "distribute_state on a worker: $out"
[[ $out == *"runs on the Citus coordinator"* ]] || fail "distribute_state on a worker: $out"
converted=$(q coord -v ON_ERROR_STOP=1 -c "SELECT count(*) FROM carm.distribute_state()")
[ "$converted" = 13 ] || fail "distribute_state converted $converted tables, not 13"
[ "$(q coord -c "SELECT count(*) FROM carm.distribute_state()")" = 0 ] || fail "distribute_state is not idempotent"
for n in w1 w2; do
  early=$(q $n -c "SELECT (SELECT count(*) FROM carm.business) || '/' || (SELECT count(*) FROM carm.program) || '/' ||
                          (SELECT count(*) FROM carm.app_user) || '/' || (SELECT count(*) FROM carm.audit_event)")
  [ "$early" = "$(q coord -c "SELECT '1/1/1/' || count(*) FROM carm.audit_event")" ] || fail "$n: state before distribution: $early"
done
local_tables=$(q coord -c "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c
  WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind = 'r'
    AND NOT EXISTS (SELECT FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)")
[ "$local_tables" = "login_binding,protected_table" ] ||
  fail "tables holding node-local oids must stay local; local tables: $local_tables"
for n in w1 w2; do
  [ "$(q $n -c "SELECT proconfig IS NOT NULL FROM pg_proc WHERE oid = 'carm_internal.grants(bigint)'::regprocedure")" = t ] ||
    fail "$n: the resolver would be inlined"
done

echo "-- 1. the demo world, on Citus and on one node"
# the demo without its first lines (drop and create the extension)
awk '/^SET client_min_messages = warning;/{skip=1} !skip{print} /^CREATE EXTENSION carm_deleg;/{skip=0}' \
  "$TOP/demo/demo.sql" > "$dir/demo.sql"
grep -q 'CREATE EXTENSION' "$dir/demo.sql" && fail "could not cut the demo's preamble"
normalise() {
  sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]+(\+00(:00)?)?/<time>/g' \
         -e 's/(pay_[a-z_]+)_[0-9]{6,}/\1/g' |
  grep -v -e 'has dependency on unsupported object' -e 'will be created only locally'
}
for n in coord single; do q $n -f "$dir/demo.sql" 2>&1 | normalise > "$dir/demo.$n.out"; done
[ "$(wc -l < "$dir/demo.single.out")" -gt 200 ] || fail "the demo did not run: $(head -5 "$dir/demo.single.out")"
diff "$dir/demo.single.out" "$dir/demo.coord.out" || fail "the demo's transcript differs on Citus"

# more API on both: a deferred group request applied by maintenance (G9),
# a relationship ended (R10), an employee removed by its BAM
api_sql=$(cat <<'SQL'
\set ON_ERROR_STOP 0
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor('dave');
SELECT carm.remove_group_clients(g.group_id, '{400000006}', deferred => true) IS NOT NULL AS queued
FROM carm.client_groups('200000008') g WHERE g.name = 'Importers';
COMMIT;
RESET ROLE;
SELECT * FROM carm.run_maintenance();
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor('dave');
SELECT name, clients, employees FROM carm.client_groups('200000008') ORDER BY name;
COMMIT;
BEGIN; SELECT carm.set_actor('alice');
SELECT carm.end_relationship(r.id) FROM carm.relationships('100000009') r
WHERE r.provider_name = 'Trade Advisors Inc.' AND r.status = 'active';
SELECT id, status FROM carm.relationships('100000009') ORDER BY id;
COMMIT;
RESET ROLE;
SELECT event, count(*) FROM carm.audit_event WHERE event <> 'state_distributed' GROUP BY event ORDER BY event;
SELECT id, bam_version FROM carm.business ORDER BY id;
SELECT user_id, count(*) FROM carm.notification GROUP BY user_id ORDER BY user_id;
SQL
)
for n in coord single; do echo "$api_sql" | q $n 2>&1 | normalise > "$dir/api.$n.out"; done
grep -q '^relationship_ended|' "$dir/api.single.out" || fail "the API script did not run: $(cat "$dir/api.single.out")"
diff "$dir/api.single.out" "$dir/api.coord.out" || fail "API calls, audit trail or E9 differ on Citus"

echo "-- 2. actor by actor: distributed protected tables against a local one"
q coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
-- the same rows, interleaved over every program and submitter
CREATE TABLE app.pay_local (id bigint NOT NULL, program_id bigint NOT NULL, business_id bigint NOT NULL,
                            submitted_by bigint, amount numeric NOT NULL, PRIMARY KEY (program_id, id));
INSERT INTO app.pay_local
SELECT i, p.id, p.business_id, (SELECT array_agg(id ORDER BY id) FROM carm.business)[1 + i % 5], i
FROM generate_series(1, 600) i
JOIN (SELECT id, business_id, row_number() OVER (ORDER BY id) - 1 AS k FROM carm.program) p
  ON p.k = i % (SELECT count(*) FROM carm.program);
CREATE TABLE app.pay_by_program (LIKE app.pay_local INCLUDING ALL);
INSERT INTO app.pay_by_program SELECT * FROM app.pay_local;
-- rows of one client business together: the business leads the key
CREATE TABLE app.pay_by_business (id bigint NOT NULL, program_id bigint NOT NULL, business_id bigint NOT NULL,
                                  submitted_by bigint, amount numeric NOT NULL,
                                  PRIMARY KEY (business_id, program_id, id));
INSERT INTO app.pay_by_business SELECT * FROM app.pay_local;
SELECT carm.protect('app.pay_local', 'program_id', 'submitted_by', 'payments');
-- protected after distribution
SELECT create_distributed_table('app.pay_by_program', 'program_id');
SELECT truncate_local_data_after_distributing_table('app.pay_by_program');
SELECT carm.protect('app.pay_by_program', 'program_id', 'submitted_by', 'payments');
-- protected before distribution (its write trigger needs Citus's consent)
SELECT carm.protect('app.pay_by_business', 'program_id', 'submitted_by', 'payments');
SET citus.enable_unsafe_triggers = on;
SELECT create_distributed_table('app.pay_by_business', 'business_id');
SELECT truncate_local_data_after_distributing_table('app.pay_by_business');
GRANT SELECT, INSERT, UPDATE, DELETE ON app.pay_local, app.pay_by_program, app.pay_by_business TO demo_portal;
SQL
for t in pay_by_program pay_by_business; do
  [ "$(q coord -c "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'app.$t'::regclass")" = 4 ] ||
    fail "app.$t is not distributed"
done
users=$(q coord -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM carm.app_user")
programs=$(q coord -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM carm.program")
businesses=$(q coord -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM carm.business")
declare -A first_row
for p in $programs; do first_row[$p]=$(q coord -c "SELECT min(id) FROM app.pay_local WHERE program_id = $p"); done
actor_script() { # actor_script TABLE: every user's reads and writes on it
  local t=$1 u p b
  echo '\set ON_ERROR_ROLLBACK on'
  echo '\set SHOW_CONTEXT never'
  echo 'SET ROLE demo_portal;'
  for u in $users; do
    echo "BEGIN; SELECT 'actor $u' FROM carm.set_actor($u::bigint);"
    echo "SELECT 'all', count(*), sum(amount) FROM app.$t;"
    echo "SELECT 'by program', string_agg(program_id || ':' || n, ' ' ORDER BY program_id) FROM (SELECT program_id, count(*) n FROM app.$t GROUP BY 1) x;"
    echo "SELECT 'by submitter', string_agg(coalesce(submitted_by, 0) || ':' || n, ' ' ORDER BY submitted_by) FROM (SELECT submitted_by, count(*) n FROM app.$t GROUP BY 1) x;"
    for p in $programs; do
      b=$(q coord -c "SELECT business_id FROM carm.program WHERE id = $p")
      echo "SELECT 'router $p', count(*), sum(amount) FROM app.$t WHERE program_id = $p AND business_id = $b;"
      echo "INSERT INTO app.$t (id, program_id, business_id, amount) VALUES (100000 + $u * 100 + $p, $p, $b, 1) RETURNING 'insert $p', submitted_by;"
      echo "UPDATE app.$t SET amount = amount + 1 WHERE program_id = $p AND business_id = $b AND id = ${first_row[$p]} RETURNING 'update $p', submitted_by;"
    done
    echo "SELECT 'after writes', count(*), sum(amount) FROM app.$t;"
    echo "ROLLBACK;"
  done
}
for t in pay_local pay_by_program pay_by_business; do
  actor_script $t | q coord 2>&1 | normalise | sed -e "s/$t/T/g" > "$dir/actors.$t.out"
done
[ "$(grep -c '^actor ' "$dir/actors.pay_local.out")" -ge 9 ] || fail "actor script did not run: $(head "$dir/actors.pay_local.out")"
grep -q '^insert ' "$dir/actors.pay_local.out" || fail "no actor could write: the comparison would prove little"
grep -q 'violates row-level security' "$dir/actors.pay_local.out" || fail "no write was refused: the comparison would prove little"
diff "$dir/actors.pay_local.out" "$dir/actors.pay_by_program.out" || fail "decisions differ on the table distributed by program"
diff "$dir/actors.pay_local.out" "$dir/actors.pay_by_business.out" || fail "decisions differ on the table distributed by business"
echo "   $(grep -c '^actor ' "$dir/actors.pay_local.out") actors, $(wc -l < "$dir/actors.pay_local.out") lines, identical"

echo "-- 3. a revocation is seen on the workers from the next statement"
erin=$(q coord -c "SELECT id FROM carm.app_user WHERE external_id = 'erin'")
mkfifo "$dir/in"; chmod 666 "$dir/in"
q coord < "$dir/in" > "$dir/rc.out" 2>&1 &
exec 3> "$dir/in"
wait_for_lines() { for _ in $(seq 100); do [ "$(wc -l < "$dir/rc.out")" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
echo "SET ROLE demo_portal; BEGIN; SELECT carm.set_actor($erin::bigint);" >&3
echo "SELECT 'before', (SELECT count(*) FROM app.pay_by_program), (SELECT count(*) FROM app.pay_by_business), (SELECT count(*) FROM app.pay_local);" >&3
wait_for_lines 2 || fail "reader did not answer: $(cat "$dir/rc.out")"
q coord -v ON_ERROR_STOP=1 -c "DELETE FROM carm.employee WHERE user_id = $erin" >/dev/null   # she leaves Northern
echo "SELECT 'after', (SELECT count(*) FROM app.pay_by_program), (SELECT count(*) FROM app.pay_by_business), (SELECT count(*) FROM app.pay_local); COMMIT;" >&3
exec 3>&-
wait
before=$(grep '^before' "$dir/rc.out" || true); after=$(grep '^after' "$dir/rc.out" || true)
IFS='|' read -r _ b1 b2 b3 <<< "$before"; IFS='|' read -r _ a1 a2 a3 <<< "$after"
[ -n "$b1" ] && [ "$b1" = "$b2" ] && [ "$b1" = "$b3" ] && [ "$b1" -gt 0 ] || fail "before the revocation: $before"
[ -n "$a1" ] && [ "$a1" = "$a2" ] && [ "$a1" = "$a3" ] && [ "$a1" -lt "$b1" ] || fail "after the revocation: $before / $after"
echo "   erin saw $b1 rows, then $a1 on every table"

echo "-- 4. what workers accept, and what Citus cannot carry"
alice=$(q coord -c "SELECT id FROM carm.app_user WHERE external_id = 'alice'")
dave=$(q coord -c "SELECT id FROM carm.app_user WHERE external_id = 'dave'")
maple=$(q coord -c "SELECT id FROM carm.business WHERE bn9 = '100000009'")
northern=$(q coord -c "SELECT id FROM carm.business WHERE bn9 = '200000008'")
expect_error() { # expect_error NODE SQLSTATE WHAT SQL
  local out
  out=$(q "$1" -v VERBOSITY=verbose -c "$4" 2>&1) && fail "$3: no error ($out)"
  [[ $out == *"ERROR:  $2:"* ]] || fail "$3: expected $2, got: $out"
}
q coord -v ON_ERROR_STOP=1 -c "CREATE ROLE outsider NOLOGIN; GRANT USAGE ON SCHEMA app TO outsider;
  GRANT SELECT ON app.pay_by_program TO outsider" >/dev/null
expect_error w1 42501 "SET LOCAL by a non-member of carm_gateway" \
  "SET ROLE outsider; BEGIN; SET LOCAL carm_deleg.actor = '$alice'; SELECT count(*) FROM app.pay_by_program;"
expect_error w1 42501 "a session SET" "SET ROLE demo_portal; SET carm_deleg.actor = '$alice';"
expect_error w1 28000 "an unknown user" \
  "SET ROLE demo_portal; BEGIN; SET LOCAL carm_deleg.actor = '987654'; SELECT count(*) FROM app.pay_by_program;"
expect_error w1 42501 "a business the user does not work for" \
  "SET ROLE demo_portal; BEGIN; SET LOCAL carm_deleg.actor = '$alice/$northern'; SELECT count(*) FROM app.pay_by_program;"
out=$(q w1 -v VERBOSITY=verbose -c "SET ROLE demo_portal" -c "SET LOCAL carm_deleg.actor = '$alice'" 2>&1) &&
  fail "SET LOCAL outside a transaction block: no error ($out)"
[[ $out == *"ERROR:  25P01:"* ]] || fail "SET LOCAL outside a transaction block: $out"
# a query entered on a worker decides like one entered on the coordinator
on_w1=$(q w1 -c "SET ROLE demo_portal; BEGIN; SET LOCAL carm_deleg.actor = '$alice/$maple'; SELECT count(*) FROM app.pay_by_program; COMMIT;")
on_coord=$(q coord -c "SET ROLE demo_portal; BEGIN; SELECT carm.set_actor($alice::bigint, on_behalf_of => '100000009') IS NULL; SELECT count(*) FROM app.pay_by_program; COMMIT;" | tail -1)
[ "$on_w1" = "$on_coord" ] && [ "$on_coord" -gt 0 ] || fail "worker-entered query: $on_w1, coordinator: $on_coord"
q coord -v ON_ERROR_STOP=1 -c "SELECT carm.deactivate_user($dave::bigint)" >/dev/null
expect_error w2 28000 "a deactivated user" \
  "SET ROLE demo_portal; BEGIN; SET LOCAL carm_deleg.actor = '$dave'; SELECT count(*) FROM app.pay_by_program;"
# a refused actor stays refused after ROLLBACK TO SAVEPOINT keeps the setting
errors=$(q w2 -v VERBOSITY=verbose 2>&1 <<SQL | grep -c 'ERROR:  28000:' || true
SET ROLE demo_portal;
BEGIN; SET LOCAL carm_deleg.actor = '$dave';
SAVEPOINT s; SELECT count(*) FROM app.pay_by_program; ROLLBACK TO SAVEPOINT s;
SELECT count(*) FROM app.pay_by_program;
ROLLBACK;
SQL
)
[ "$errors" = 2 ] || fail "a refused actor was used after ROLLBACK TO SAVEPOINT ($errors refusals)"
expect_error coord 0A000 "a session actor under Citus" "SET carm_deleg.allow_session_actor = on; SET ROLE demo_portal; SELECT carm.set_actor($alice::bigint, false);"
# a login binding is not honoured: Citus could not carry it to the workers
bind=$(q coord -v ON_ERROR_STOP=1 -c "CREATE ROLE bound_login LOGIN; GRANT USAGE ON SCHEMA app TO bound_login;
  GRANT SELECT ON app.pay_local TO bound_login; SELECT carm.bind_login_role($alice::bigint, 'bound_login')" 2>&1)
[[ $bind == *"WARNING:  login bindings are not honoured under Citus"* ]] || fail "bind_login_role under Citus: $bind"
[ "$(q coord -c "SELECT count(*) FROM carm.login_binding")" = 1 ] || fail "the binding was not recorded"
[ "$(q w1 -c "SELECT count(*) FROM carm.login_binding")" = 0 ] || fail "a binding reached a worker"
bound=$(psql -X -q -At -h "$dir/coord" -p "${port[coord]}" -U bound_login -d postgres \
  -c "SELECT coalesce(carm.actor()::text, 'none'), (SELECT count(*) FROM app.pay_local)")
[ "$bound" = "none|0" ] || fail "a bound session acted under Citus: $bound"
echo "   refusals as expected; a worker-entered query saw $on_w1 rows, as the coordinator"
last=$(q w1 -c "SELECT maintenance_last_result FROM carm.stats")
[[ $last == "skipped: a Citus worker"* ]] || fail "maintenance on a worker: $last"

echo "-- 5. attacks"
# 5a (§2, §8: reset_actor() and clearing): every way of clearing the actor
# in a transaction clears it on the workers too, whether their connections
# are open (they had received the actor) or not yet (Citus would replay it).
# On one node nothing is visible after any of them.
q coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE FUNCTION public.attack_cleared_count() RETURNS bigint LANGUAGE sql
SET carm_deleg.actor = '' AS $$ SELECT count(*) FROM app.pay_by_program $$;
SQL
clears=("RESET carm_deleg.actor;" "SET LOCAL carm_deleg.actor TO DEFAULT;" "SET carm_deleg.actor TO DEFAULT;"
        "RESET ALL;" "SELECT set_config('carm_deleg.actor', '', true) IS NULL;"
        'DO $$ BEGIN RESET carm_deleg.actor; END $$;'
        "SAVEPOINT a; RESET carm_deleg.actor; RELEASE a;" "SAVEPOINT a; SELECT carm.reset_actor() IS NULL; RELEASE a;")
for clear in "${clears[@]}"; do
  for open in "SELECT (SELECT count(*) FROM app.pay_by_program) + (SELECT count(*) FROM app.pay_by_business) > 0;" ""; do
    out=$(q coord 2>&1 <<SQL
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor($alice::bigint) IS NULL;
$open
$clear
SELECT 'after', (SELECT count(*) FROM app.pay_by_program), (SELECT count(*) FROM app.pay_by_business), (SELECT count(*) FROM app.pay_local);
COMMIT;
SQL
)
    [[ $(grep '^after' <<< "$out") == "after|0|0|0" ]] ||
      fail "5a: '$clear' left the actor on the workers${open:+ (connections open)}: $out"
  done
done
# a function's SET clause clears the actor for its body only
out=$(q coord 2>&1 <<SQL
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor($alice::bigint) IS NULL;
SELECT 'before', count(*) FROM app.pay_by_program;
SELECT 'inside', public.attack_cleared_count();
SELECT 'after', count(*) FROM app.pay_by_program;
COMMIT;
SQL
)
b=$(grep '^before' <<< "$out" | cut -d'|' -f2)
[ -n "$b" ] && [ "$b" -gt 0 ] || fail "5a: function SET clause: $out"
[[ $out == *"inside|0"* ]] || fail "5a: a function SET clause clearing the actor left it on the workers: $out"
[[ $out == *"after|$b"* ]] || fail "5a: the actor did not come back after the function: $out"
# 5b (§2): an actor received by SET LOCAL is checked at the first decision;
# ROLLBACK TO SAVEPOINT restoring one that was never checked (dave is
# deactivated) does not inherit the check of the actor set inside the savepoint
for n in w2 coord; do
  errors=$(q $n -v VERBOSITY=verbose 2>&1 <<SQL | grep -c 'ERROR:  28000:' || true
SET ROLE demo_portal;
BEGIN; SET LOCAL carm_deleg.actor = '$dave';
SAVEPOINT s; SET LOCAL carm_deleg.actor = '$alice'; SELECT count(*) FROM app.pay_by_program; ROLLBACK TO SAVEPOINT s;
SELECT carm.actor();
ROLLBACK;
SQL
)
  [ "$errors" = 1 ] || fail "5b: $n: a deactivated actor restored by ROLLBACK TO SAVEPOINT went unchecked"
done
echo "   clearing reaches the workers; a restored actor is checked again"

# 5c (§8): a parallel plan of a query on a shard, on a worker, decides as a
# plain one.  A parallel worker cannot load grants through Citus ("cannot
# use 2PC in transactions involving multiple servers"): under Citus the
# checks are parallel restricted, so the shard query's leader evaluates the
# policy.  Shards big enough for the planner to choose a parallel scan.
q coord -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE app.pay_big (id bigint NOT NULL, program_id bigint NOT NULL, business_id bigint NOT NULL,
                          submitted_by bigint, amount numeric NOT NULL, PRIMARY KEY (business_id, program_id, id));
SELECT create_distributed_table('app.pay_big', 'business_id');
SELECT carm.protect('app.pay_big', 'program_id', 'submitted_by', 'payments');
INSERT INTO app.pay_big SELECT i, p.id, p.business_id, p.business_id, i
FROM generate_series(1, 300000) i
JOIN (SELECT id, business_id, row_number() OVER (ORDER BY id) - 1 AS k FROM carm.program) p
  ON p.k = i % (SELECT count(*) FROM carm.program);
ANALYZE app.pay_big;
GRANT SELECT ON app.pay_big TO demo_portal;
SQL
shard_count() { # shard_count NODE SHARD SETTINGS
  q "$1" 2>&1 <<SQL | tail -1
SET ROLE demo_portal;
BEGIN; SET LOCAL carm_deleg.actor = '$alice';
$3
SELECT count(*) FROM app.$2;
COMMIT;
SQL
}
checked=0
for n in w1 w2; do
  for shard in $(q $n -c "SET citus.override_table_visibility = off;
      SELECT c.relname FROM pg_class c WHERE c.relname ~ '^pay_big_[0-9]+$' AND c.relkind = 'r' ORDER BY 1"); do
    plain=$(shard_count $n "$shard" "SET LOCAL max_parallel_workers_per_gather = 0;")
    parallel=$(shard_count $n "$shard" "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
      SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;")
    [[ $plain =~ ^[0-9]+$ ]] && [ "$parallel" = "$plain" ] ||
      fail "5c: $n, shard $shard: a parallel plan saw '$parallel', a plain one '$plain'"
    [ "$plain" -gt 0 ] && checked=$((checked + 1))
  done
done
[ "$checked" -gt 0 ] || fail "5c: alice sees no row of any shard: the check proves nothing"
echo "   parallel plans on the workers' shards decide as plain ones ($checked shards with rows)"

echo "-- 6. unprotect()"
# unprotect() gives a distributed table back its own flags, on every shard
q coord -v ON_ERROR_STOP=1 -c "SELECT carm.unprotect('app.pay_by_program')" >/dev/null
open_rows=$(q coord -c "SET ROLE demo_portal; SELECT count(*) FROM app.pay_by_program")
[ "$open_rows" = 600 ] || fail "after unprotect(), a reader without an actor sees $open_rows rows, not 600"
[ "$(q w1 -c "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relname LIKE 'pay_by_program%'")" = 0 ] ||
  fail "policies left on the shards after unprotect()"
echo "ok"
