-- Security hardening of 1.1 (SPEC §2, §8, §10): carm_admin is judged on the
-- role the code runs as; set_actor() refuses what would not last and warns
-- a role that bypasses row-level security; login bindings refuse privileged
-- roles and follow the role, not its oid; protected tables survive renames
-- and say why a write is refused; messages never echo a huge argument; the
-- planner's estimate does not reveal row counts.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP SCHEMA IF EXISTS regress_sa CASCADE;
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['regress_sa_admin', 'regress_sa_low', 'regress_sa_gw', 'regress_sa_owner',
                           'regress_sa_login', 'regress_sa_login2', 'regress_sa_super', 'regress_sa_app']
  LOOP
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('DROP OWNED BY %I', r);
      EXECUTE format('DROP ROLE %I', r);
    END IF;
  END LOOP;
END
$$;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_sa_admin NOLOGIN;       -- a carm_admin member
CREATE ROLE regress_sa_low NOLOGIN;         -- no carm rights at all
CREATE ROLE regress_sa_gw NOLOGIN;          -- the application (carm_gateway)
CREATE ROLE regress_sa_owner NOLOGIN;       -- owns application tables; carm_admin, not superuser
CREATE ROLE regress_sa_app NOLOGIN;         -- reads and writes the application tables
CREATE ROLE regress_sa_login LOGIN;
CREATE ROLE regress_sa_super SUPERUSER NOLOGIN;
GRANT carm_admin TO regress_sa_admin, regress_sa_owner;
GRANT carm_gateway TO regress_sa_gw, regress_sa_app;

SELECT carm.add_business('123456782', 'Acme Imports', ARRAY['IMPORTER']) AS acme;
SELECT carm.add_program_account('123456782RM0001') AS p1, carm.add_program_account('123456782RM0002') AS p2;
SELECT carm.register_user('alice', 'Alice') AS alice, carm.register_user('vera', 'Vera') AS vera;
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM');
INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES (1, 2, 'VIEWER', '{1}');

CREATE SCHEMA regress_sa AUTHORIZATION regress_sa_owner;
GRANT USAGE ON SCHEMA regress_sa TO PUBLIC;
-- runs a statement as the calling role; 'ok' or SQLSTATE: message (detail)
CREATE FUNCTION regress_sa.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  d text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN d <> '' THEN ' (' || d || ')' ELSE '' END;
END $$;

-- 1. §2 carm_admin is judged on the role the code runs as --------------------

-- The admin itself reads the whole trail and the whole report.
SET ROLE regress_sa_admin;
SELECT count(*) > 0 AS admin_reads_all_events FROM carm.audit_events();
SELECT count(*) AS admin_report_rows FROM carm.who_has_access('123456782');
RESET ROLE;

-- A SECURITY DEFINER function owned by a role with no carm rights, called by
-- a carm_admin member, runs as its owner: no admin answers (1.0 judged the
-- outer role and answered everything).
CREATE FUNCTION regress_sa.spy(what text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
  IF what = 'audit' THEN
    RETURN 'saw ' || (SELECT count(*) FROM carm.audit_events()) || ' events';
  ELSIF what = 'report' THEN
    RETURN 'saw ' || (SELECT count(*) FROM carm.who_has_access('123456782')) || ' report rows';
  ELSIF what = 'explain' THEN
    RETURN 'saw ' || (SELECT count(*) FROM carm.explain_access(2, '123456782')) || ' paths';
  ELSIF what = 'relationships' THEN
    RETURN 'saw ' || (SELECT count(*) FROM carm.relationships('123456782')) || ' relationships';
  ELSIF what = 'groups' THEN
    RETURN 'saw ' || (SELECT count(*) FROM carm.client_groups('123456782')) || ' groups';
  ELSIF what = 'variant' THEN
    RETURN 'saw ' || (SELECT count(*) FROM carm_internal.audit_events_admin(NULL, NULL, NULL, NULL)) || ' events';
  END IF;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  RETURN 'refused: ' || SQLSTATE || ' ' || SQLERRM;
END $$;
ALTER FUNCTION regress_sa.spy(text) OWNER TO regress_sa_low;
GRANT EXECUTE ON FUNCTION regress_sa.spy(text) TO PUBLIC;
SET ROLE regress_sa_admin;
SELECT w, regress_sa.spy(w) FROM unnest(ARRAY['audit', 'report', 'explain', 'variant']) w;
RESET ROLE;
-- listings granted to carm_gateway and carm_admin: a gateway-owned function
-- called by an admin gets only the actor's answers (here: no actor)
GRANT carm_gateway TO regress_sa_low;
SET ROLE regress_sa_admin;
SELECT w, regress_sa.spy(w) FROM unnest(ARRAY['relationships', 'groups']) w;
RESET ROLE;
REVOKE carm_gateway FROM regress_sa_low;

-- An expression index whose function reads the reports: ANALYZE runs it as
-- the table's owner (a carm_admin member) inside a security-restricted
-- operation, where nobody is carm_admin.  The function reports what it saw.
CREATE FUNCTION regress_sa.peek(i integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog AS $$
DECLARE
  v text;
BEGIN
  IF i = 1 THEN
    BEGIN
      v := 'audit_events: ' || (SELECT count(*) FROM carm.audit_events()) || ' rows';
    EXCEPTION WHEN OTHERS THEN v := 'audit_events: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      v := 'who_has_access: ' || (SELECT count(*) FROM carm.who_has_access('123456782')) || ' rows';
    EXCEPTION WHEN OTHERS THEN v := 'who_has_access: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      v := 'user_has_access: ' || carm.user_has_access(1, '123456782RM0001', 'rulings.view');
    EXCEPTION WHEN OTHERS THEN v := 'user_has_access: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      v := 'audit_events_admin: ' || (SELECT count(*) FROM carm_internal.audit_events_admin(NULL, NULL, NULL, NULL)) || ' rows';
    EXCEPTION WHEN OTHERS THEN v := 'audit_events_admin: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    -- nor may it change anything an administrator or the gateway can
    BEGIN
      PERFORM carm.bind_login_role(1, 'regress_sa_low');
      v := 'bind_login_role: done';
    EXCEPTION WHEN OTHERS THEN v := 'bind_login_role: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      PERFORM carm.deactivate_user(1);
      v := 'deactivate_user: done';
    EXCEPTION WHEN OTHERS THEN v := 'deactivate_user: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      PERFORM carm.add_business('100000009', 'Planted', ARRAY['IMPORTER']);
      v := 'add_business: done';
    EXCEPTION WHEN OTHERS THEN v := 'add_business: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      PERFORM carm.register_user('planted', 'Planted');
      v := 'register_user: done';
    EXCEPTION WHEN OTHERS THEN v := 'register_user: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
    BEGIN
      v := 'protected_tables: ' || (SELECT count(*) FROM carm.protected_tables()) || ' rows';
    EXCEPTION WHEN OTHERS THEN v := 'protected_tables: ' || SQLSTATE;
    END;
    RAISE NOTICE '%', v;
  END IF;
  RETURN i;
END $$;
ALTER FUNCTION regress_sa.peek(integer) OWNER TO regress_sa_owner;
SET ROLE regress_sa_owner;
CREATE TABLE regress_sa.bait (i integer);
INSERT INTO regress_sa.bait VALUES (1);
RESET ROLE;
SET client_min_messages = warning;   -- CREATE INDEX runs the function too
CREATE INDEX bait_peek ON regress_sa.bait (regress_sa.peek(i));
RESET client_min_messages;
ANALYZE regress_sa.bait;

-- 6. §2 set_actor() and the lifetime of the actor --------------------------

SET ROLE regress_sa_gw;
\set VERBOSITY sqlstate
SELECT carm.set_actor('alice');                        -- 25P01: would last for no statement
SELECT carm.set_actor(1);
\set VERBOSITY terse
BEGIN;
SELECT carm.set_actor('alice');
SELECT carm.actor() AS in_transaction;
COMMIT;
DO $$ BEGIN PERFORM carm.set_actor('alice'); RAISE NOTICE 'actor in DO: %', carm.actor(); END $$;
RESET ROLE;
-- carm_deleg.allow_session_actor, off by default (SPEC §10 rev. 1.2), forbids
-- session actors (42501)
SHOW carm_deleg.allow_session_actor;
SET ROLE regress_sa_gw;
SELECT regress_sa.try($$SELECT carm.set_actor('alice', false)$$) AS session_actor;
BEGIN;
SELECT carm.set_actor('alice', true);                  -- transaction-local: still allowed
ROLLBACK;
SELECT regress_sa.try($$SET carm_deleg.allow_session_actor = on$$) AS superuser_only;
RESET ROLE;
-- a role that bypasses row-level security gets a WARNING: nothing it reads is filtered
BEGIN;
SELECT carm.set_actor('alice');
ROLLBACK;

-- 7, 14. §2 login bindings --------------------------------------------------

SELECT w, regress_sa.try(format('SELECT carm.bind_login_role(1, %L)', w)) AS refused
FROM unnest(ARRAY[session_user::text,    -- your own role (and a superuser)
                  'regress_sa_super',    -- a superuser
                  'regress_sa_admin',    -- a carm_admin member
                  'regress_sa_gw']) w;   -- a carm_gateway member
SET ROLE regress_sa_admin;
SELECT regress_sa.try($$SELECT carm.bind_login_role(1, 'regress_sa_admin')$$) AS own_role;
RESET ROLE;
SELECT carm.bind_login_role(1, 'regress_sa_login');
SELECT login_role, login_name, user_id FROM carm.login_binding;
SET SESSION AUTHORIZATION regress_sa_login;
SELECT carm.actor() AS bound_actor;
RESET SESSION AUTHORIZATION;
-- checked again at use (SPEC §2, rev. 1.2): a bound role made a member of
-- carm_gateway or carm_admin, or a superuser, since it was bound gets no
-- default actor, and a WARNING names the binding
GRANT carm_gateway TO regress_sa_login;
SET SESSION AUTHORIZATION regress_sa_login;
SELECT carm.actor() AS bound_gateway_member;
RESET SESSION AUTHORIZATION;
REVOKE carm_gateway FROM regress_sa_login;
GRANT carm_admin TO regress_sa_login;
SET SESSION AUTHORIZATION regress_sa_login;
SELECT carm.actor() AS bound_admin_member;
RESET SESSION AUTHORIZATION;
REVOKE carm_admin FROM regress_sa_login;
ALTER ROLE regress_sa_login SUPERUSER;
SET SESSION AUTHORIZATION regress_sa_login;
SELECT carm.actor() AS bound_superuser;
RESET SESSION AUTHORIZATION;
ALTER ROLE regress_sa_login NOSUPERUSER;
SET SESSION AUTHORIZATION regress_sa_login;
SELECT carm.actor() AS bound_again;
RESET SESSION AUTHORIZATION;
-- renamed: the binding was made for another name; it binds nobody
ALTER ROLE regress_sa_login RENAME TO regress_sa_login2;
SET SESSION AUTHORIZATION regress_sa_login2;
SELECT carm.actor() AS after_rename;
RESET SESSION AUTHORIZATION;
ALTER ROLE regress_sa_login2 RENAME TO regress_sa_login;
-- dropped: the next bind forgets the binding (audited), whatever role reuses the oid
DROP ROLE regress_sa_login;
SELECT carm.bind_login_role(2, 'regress_sa_low');
SELECT login_name, user_id FROM carm.login_binding;
SELECT carm.unbind_login_role('regress_sa_low');
SELECT regress_sa.try($$SELECT carm.unbind_login_role('regress_sa_low')$$) AS not_bound;
SELECT event, target_user_id, details FROM carm.audit_events()
WHERE event IN ('login_bound', 'login_unbound') ORDER BY id;

-- 8, 11, 2. §8 protected tables: renames, write refusals, partitions --------

SET ROLE regress_sa_owner;
CREATE TABLE regress_sa.rulings (id integer, program_id bigint, submitter_id bigint, title text)
  PARTITION BY RANGE (id);
CREATE TABLE regress_sa.rulings_1 PARTITION OF regress_sa.rulings FOR VALUES FROM (0) TO (100);
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA regress_sa TO regress_sa_app;
SELECT carm.protect('regress_sa.rulings', 'program_id', 'submitter_id', 'rulings');
-- the owner (carm_admin, not superuser) adds partitions: the cloned trigger
-- needs EXECUTE on its function (1.0: "permission denied for function")
CREATE TABLE regress_sa.rulings_2 PARTITION OF regress_sa.rulings FOR VALUES FROM (100) TO (200);
CREATE TABLE regress_sa.rulings_3 (LIKE regress_sa.rulings);
ALTER TABLE regress_sa.rulings ATTACH PARTITION regress_sa.rulings_3 FOR VALUES FROM (200) TO (300);
SELECT c.relname, count(t.tgname) AS check_write_triggers
FROM pg_class c LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = 'carm_check_write'
WHERE c.relnamespace = 'regress_sa'::regnamespace AND c.relname LIKE 'rulings%' AND c.relkind IN ('r', 'p')
GROUP BY c.relname ORDER BY 1;
-- renames keep protection working (1.0: every INSERT failed with XX000)
ALTER TABLE regress_sa.rulings RENAME COLUMN submitter_id TO submitted_by;
ALTER TABLE regress_sa.rulings RENAME COLUMN program_id TO program;
ALTER TABLE regress_sa.rulings RENAME TO decisions;
RESET ROLE;
GRANT SELECT, INSERT, UPDATE, DELETE ON regress_sa.rulings_2 TO regress_sa_app;
SET ROLE regress_sa_app;
BEGIN;
SELECT carm.set_actor('alice');
INSERT INTO regress_sa.decisions (id, program, title) VALUES (1, 1, 'filled') RETURNING id, program, submitted_by;
INSERT INTO regress_sa.decisions (id, program, title) VALUES (101, 2, 'partition 2') RETURNING id, submitted_by;
UPDATE regress_sa.decisions SET title = 'edited' WHERE id = 1 RETURNING id, title;
COMMIT;
-- V5 refusals say which condition failed (42501 with a DETAIL), naming
-- business and program account numbers, never internal ids (§10 rev. 1.2)
RESET ROLE;
SELECT carm.add_business('200000008', 'Another Importer', ARRAY['IMPORTER']) AS another \gset
SET ROLE regress_sa_app;
SELECT regress_sa.try($$INSERT INTO regress_sa.decisions (id, program, title) VALUES (2, 1, 'no actor')$$) AS no_actor;
BEGIN;
SELECT carm.set_actor('vera');
SELECT regress_sa.try($$INSERT INTO regress_sa.decisions (id, program, title) VALUES (3, 1, 'viewer')$$) AS viewer;
SELECT regress_sa.try($$INSERT INTO regress_sa.decisions (id, program, title) VALUES (3, 2, 'not her program')$$) AS other_program;
ROLLBACK;
BEGIN;
SELECT carm.set_actor('alice');
SELECT regress_sa.try($$INSERT INTO regress_sa.decisions (id, program, submitted_by, title) VALUES (4, 1, 999, 'forged')$$) AS forged;
SELECT regress_sa.try($$UPDATE regress_sa.decisions SET submitted_by = 999 WHERE id = 1$$) AS forged_update;
SELECT regress_sa.try(format($$INSERT INTO regress_sa.decisions (id, program, submitted_by, title) VALUES (4, 1, %s, 'as another')$$, :another)) AS another_business;
SELECT regress_sa.try($$UPDATE regress_sa.decisions SET submitted_by = NULL WHERE id = 1$$) AS no_submitter;
SELECT regress_sa.try($$INSERT INTO regress_sa.decisions (id, program, title) VALUES (6, 424242, 'no such program')$$) AS unknown_program;
SELECT regress_sa.try($$UPDATE regress_sa.decisions SET title = 'fine' WHERE id = 1$$) AS allowed_update;
ROLLBACK;
SELECT id, program, submitted_by, title FROM regress_sa.decisions ORDER BY id;   -- no actor: nothing
RESET ROLE;
-- a superuser is not filtered, so not refused either
INSERT INTO regress_sa.decisions (id, program, submitted_by, title) VALUES (5, 1, 1, 'by the DBA');
SELECT count(*) AS rows_for_the_dba FROM regress_sa.decisions;

-- 10. §10 a huge argument is never echoed beyond 32 characters --------------

SET ROLE regress_sa_gw;
DO $$
DECLARE
  huge text := repeat('9', 20000000);
  probe text;
BEGIN
  PERFORM carm.set_actor('alice');
  FOREACH probe IN ARRAY ARRAY['target', 'permission', 'level', 'function', 'set_actor'] LOOP
    BEGIN
      CASE probe
        WHEN 'target' THEN PERFORM carm.has_access(huge, 'rulings.view');
        WHEN 'permission' THEN PERFORM carm.has_access('123456782', huge || '.view');
        WHEN 'level' THEN PERFORM carm.has_access('123456782', 'rulings.' || huge);
        WHEN 'function' THEN PERFORM carm.accessible_programs(left(huge, 31) || '.view');
        WHEN 'set_actor' THEN PERFORM carm.set_actor('alice', true, huge);
      END CASE;
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE '%: % (% characters)', probe, SQLSTATE, length(SQLERRM);
    END;
  END LOOP;
END
$$;
RESET ROLE;

-- 12. The planner's estimate does not reveal row counts --------------------

-- P1 holds 900 rows, P2 100; Vera sees P1 only.  The estimate is her share
-- of the programs (1 of 2: 500 rows), not P1's 900 rows from the statistics.
SET ROLE regress_sa_owner;
CREATE TABLE regress_sa.payments (id integer, program_id bigint, submitter_id bigint);
CREATE INDEX ON regress_sa.payments (program_id);
INSERT INTO regress_sa.payments SELECT g, CASE WHEN g <= 900 THEN 1 ELSE 2 END, 1 FROM generate_series(1, 1000) g;
ANALYZE regress_sa.payments;
SELECT carm.protect('regress_sa.payments', 'program_id', 'submitter_id', 'payments');
GRANT SELECT ON regress_sa.payments TO regress_sa_app;
RESET ROLE;
CREATE FUNCTION regress_sa.estimate(q text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
  plan json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO plan;
  RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric;
END $$;
GRANT EXECUTE ON FUNCTION regress_sa.estimate(text) TO regress_sa_app;
SET ROLE regress_sa_app;
BEGIN;
SELECT carm.set_actor('vera');
SELECT regress_sa.estimate('SELECT * FROM regress_sa.payments') AS estimated_rows,
       (SELECT count(*) FROM regress_sa.payments) AS visible_rows;
COMMIT;
RESET ROLE;

-- cleanup, so that the file runs twice
SET client_min_messages = warning;
DROP SCHEMA regress_sa CASCADE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_sa_admin, regress_sa_low, regress_sa_gw, regress_sa_owner, regress_sa_app, regress_sa_super;
