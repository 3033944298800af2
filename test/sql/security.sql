-- Security regressions found in review: the owner switch of the C side must
-- not follow the caller's search_path; the row checks are NULL-safe in every
-- argument and never give the planner an index condition it cannot run;
-- protect()/unprotect() act only for the table's owner.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP SCHEMA IF EXISTS regress_sec_evil CASCADE;
DROP SCHEMA IF EXISTS regress_sec_app CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sec_gw') THEN
    CREATE ROLE regress_sec_gw NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sec_plain') THEN
    CREATE ROLE regress_sec_plain NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sec_admin') THEN
    CREATE ROLE regress_sec_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sec_owner') THEN
    CREATE ROLE regress_sec_owner NOLOGIN;
  END IF;
END
$$;
GRANT carm_gateway TO regress_sec_gw;
GRANT carm_admin TO regress_sec_admin;

SELECT carm.add_business('123456782', 'Acme Imports', ARRAY['IMPORTER']) AS acme;
SELECT carm.add_program_account('123456782RM0001') AS p1;
SELECT carm.register_user('alice', 'Alice') AS alice;
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM');
-- a login binding, so that the binding lookup reads a row
SELECT carm.bind_login_role(1, 'regress_sec_owner');

-- 1. An unprivileged role that owns a schema puts an "=" operator of its own
-- ahead of pg_catalog.  The C side's internal queries run as the extension
-- owner; had they followed this search_path, the operator would run as the
-- owner (a superuser) and raise here.
CREATE SCHEMA regress_sec_evil AUTHORIZATION regress_sec_plain;
GRANT USAGE ON SCHEMA regress_sec_evil TO PUBLIC;
SET ROLE regress_sec_plain;
CREATE FUNCTION regress_sec_evil.eq_oid(oid, oid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
    RAISE EXCEPTION 'operator hijacked: running as superuser %', current_user;
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE FUNCTION regress_sec_evil.eq_int8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
    RAISE EXCEPTION 'operator hijacked: running as superuser %', current_user;
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE FUNCTION regress_sec_evil.eq_text(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
    RAISE EXCEPTION 'operator hijacked: running as superuser %', current_user;
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR regress_sec_evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = regress_sec_evil.eq_oid);
CREATE OPERATOR regress_sec_evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = regress_sec_evil.eq_int8);
CREATE OPERATOR regress_sec_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_sec_evil.eq_text);
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA regress_sec_evil TO PUBLIC;
-- carm.actor() is open to every role: the login-binding lookup
SET search_path = regress_sec_evil, pg_catalog;
SELECT carm.actor() AS no_actor;
RESET search_path;
RESET ROLE;
-- the gateway: set_actor()'s user lookup, then the grant cache load
SET ROLE regress_sec_gw;
SET search_path = regress_sec_evil, pg_catalog;
BEGIN;
SELECT carm.set_actor(1);
SELECT carm.has_access('123456782RM0001', 'rulings.manage') AS bam_manages;
SELECT carm.has_access('123456782', 'business_profile.manage') AS bam_profile;
COMMIT;
RESET search_path;
RESET ROLE;
SELECT rolname, rolsuper FROM pg_roles
WHERE rolname IN ('regress_sec_plain', 'regress_sec_gw') ORDER BY rolname;

-- 2. NULL in any argument of the row checks (open to every role) means
-- "not visible", never a crash.
SET ROLE regress_sec_plain;
SELECT carm_internal.row_visible(1, 1, NULL) AS visible, carm_internal.row_writable(1, 1, NULL) AS writable,
       carm_internal.visible_programs(NULL) AS programs;
SELECT carm_internal.row_visible(x, x, f) AS visible FROM (VALUES (1::bigint, NULL::text)) v(x, f);
RESET ROLE;

-- 3. The planner support gives an index condition only for a constant
-- function argument: with a column there, the array side would reference
-- the indexed table, which the executor cannot evaluate.
CREATE SCHEMA regress_sec_app AUTHORIZATION regress_sec_owner;
SET ROLE regress_sec_owner;
CREATE TABLE regress_sec_app.t (p bigint, s bigint, f text);
INSERT INTO regress_sec_app.t SELECT i, i, 'rulings' FROM generate_series(1, 200) i;
CREATE INDEX ON regress_sec_app.t (p);
ANALYZE regress_sec_app.t;
SET enable_seqscan = off;
-- PostgreSQL 18 marks a plan node chosen despite enable_* = off with a line
-- "Disabled: true" (15-17 do not); the plan is the same, the line is left out.
CREATE FUNCTION pg_temp.plan(q text) RETURNS TABLE ("QUERY PLAN" text)
LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q;
  RETURN;
END $$;
SELECT * FROM pg_temp.plan('SELECT * FROM regress_sec_app.t WHERE carm_internal.row_visible(p, s, f)')
WHERE "QUERY PLAN" !~ '^\s*Disabled: ';
DROP FUNCTION pg_temp.plan(text);
SELECT count(*) FROM regress_sec_app.t WHERE carm_internal.row_visible(p, s, f);
EXPLAIN (COSTS OFF) SELECT * FROM regress_sec_app.t WHERE carm_internal.row_visible(p, s, 'rulings');
RESET enable_seqscan;
RESET ROLE;

-- 4. protect()/unprotect() run as the extension owner: a carm_admin who does
-- not own the table may not change its row-level security (42501).
SELECT 'regress_sec_app.t'::regclass::oid AS t_oid \gset
SET ROLE regress_sec_admin;
SELECT carm.protect(:t_oid::regclass, 'p', 's', 'rulings');
SELECT carm.unprotect(:t_oid::regclass);
RESET ROLE;
GRANT regress_sec_owner TO regress_sec_admin;
SET ROLE regress_sec_admin;
SET client_min_messages = error;   -- its rows name no carm program: hidden, and accepted
SELECT carm.protect(:t_oid::regclass, 'p', 's', 'rulings', allow_hidden_rows => true) AS owner_protects;
RESET client_min_messages;
SELECT carm.unprotect(:t_oid::regclass) AS owner_unprotects;
RESET ROLE;
REVOKE regress_sec_owner FROM regress_sec_admin;

-- 5. set_actor()'s overloads (§2): the C side checks carm_gateway whatever
-- the ACL says, refuses inside a security-restricted operation, and the
-- forms resolve as documented (untyped values are text: on_behalf_of, or the
-- sign-in identity; an application passes user ids as bigint).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sec_exec') THEN
    CREATE ROLE regress_sec_exec NOLOGIN;
  END IF;
END $$;
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           WHERE p.pronamespace = 'carm'::regnamespace AND p.proname = 'set_actor' LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO regress_sec_exec', f);
  END LOOP;
END $$;
SET ROLE regress_sec_exec;
BEGIN; SELECT carm.set_actor(1); ROLLBACK;
BEGIN; SELECT carm.set_actor(1, true); ROLLBACK;
BEGIN; SELECT carm.set_actor(1, '123456782'); ROLLBACK;
BEGIN; SELECT carm.set_actor(1, true, '123456782'); ROLLBACK;
BEGIN; SELECT carm.set_actor('alice'); ROLLBACK;
BEGIN; SELECT carm.set_actor('alice', true); ROLLBACK;
BEGIN; SELECT carm.set_actor('alice', '123456782'); ROLLBACK;
BEGIN; SELECT carm.set_actor('alice', true, '123456782'); ROLLBACK;
RESET ROLE;
CREATE TABLE regress_sec_app.restricted (x int);
INSERT INTO regress_sec_app.restricted VALUES (1);
CREATE FUNCTION regress_sec_app.act(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
  CASE $1
    WHEN 1 THEN PERFORM carm.set_actor(1::bigint);
    WHEN 2 THEN PERFORM carm.set_actor(1::bigint, false);
    WHEN 3 THEN PERFORM carm.set_actor(1::bigint, '123456782');
    WHEN 4 THEN PERFORM carm.set_actor(1::bigint, false, '123456782');
    WHEN 5 THEN PERFORM carm.set_actor('alice');
    WHEN 6 THEN PERFORM carm.set_actor('alice', false);
    WHEN 7 THEN PERFORM carm.set_actor('alice', '123456782');
    ELSE PERFORM carm.set_actor('alice', false, '123456782');
  END CASE;
  RETURN $1;
END $$;
DO $$
BEGIN
  FOR i IN 1..8 LOOP
    BEGIN
      EXECUTE format('CREATE INDEX ON regress_sec_app.restricted (regress_sec_app.act(x + %s))', i - 1);
      RAISE NOTICE 'form %: set_actor ran inside CREATE INDEX', i;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'form %: refused (%)', i, SQLSTATE;
    END;
  END LOOP;
END $$;
SELECT carm.register_user('1', 'Numeric Sign-in') AS numeric_user;
SET ROLE regress_sec_gw;
-- an untyped second value is on_behalf_of, not is_local
BEGIN; SELECT carm.set_actor('alice', 'false'); ROLLBACK;
BEGIN; SELECT carm.set_actor(1, 'f'); ROLLBACK;
-- NULL is_local means true; every named form reaches its overload
BEGIN;
SELECT carm.set_actor(user_id => 1, is_local => NULL);
SELECT carm.set_actor(external_id => 'alice', on_behalf_of => '123456782');
SELECT carm.set_actor(on_behalf_of => NULL, is_local => NULL, user_id => 1);
SELECT carm.actor() AS actor_1;
ROLLBACK;
SELECT carm.actor() AS none_after_rollback;
BEGIN; SELECT carm.set_actor(1, on_behalf_of => '123456782'); SELECT carm.set_actor(1, '100000009'); ROLLBACK;
BEGIN; SELECT carm.set_actor(NULL); ROLLBACK;
BEGIN; SELECT carm.set_actor(user_id => NULL); ROLLBACK;
-- 25P01 outside a transaction block, every form
SELECT carm.set_actor(1);
SELECT carm.set_actor(1, NULL);
SELECT carm.set_actor('alice', true, NULL);
SELECT carm.set_actor(external_id => 'alice', on_behalf_of => '123456782');
-- parameters: an unknown-typed one is text (the sign-in identity '1'), a typed one the user id
PREPARE regress_untyped AS SELECT carm.set_actor($1);
PREPARE regress_typed AS SELECT carm.set_actor($1::bigint);
SELECT name, parameter_types FROM pg_prepared_statements WHERE name LIKE 'regress_%' ORDER BY name;
BEGIN; EXECUTE regress_untyped('1'); SELECT carm.actor() AS numeric_user; ROLLBACK;
BEGIN; EXECUTE regress_typed('1'); SELECT carm.actor() AS alice; ROLLBACK;
DEALLOCATE regress_untyped;
DEALLOCATE regress_typed;
RESET ROLE;

-- clean up
SET client_min_messages = warning;
DROP SCHEMA regress_sec_app CASCADE;
DROP SCHEMA regress_sec_evil CASCADE;
RESET client_min_messages;
-- the roles too, so that the test runs again on the same cluster
DROP OWNED BY regress_sec_exec;
DROP ROLE regress_sec_gw, regress_sec_plain, regress_sec_admin, regress_sec_owner, regress_sec_exec;
