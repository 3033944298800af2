-- §2 identity: who is acting.  set_actor (both forms, transaction-local or
-- for the session), reset_actor, actor(), login bindings, and the guarded
-- setting that nothing but set_actor() can assign.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_id_app') THEN
    CREATE ROLE regress_id_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_id_admin') THEN
    CREATE ROLE regress_id_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_id_nobody') THEN
    CREATE ROLE regress_id_nobody NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_id_login') THEN
    CREATE ROLE regress_id_login LOGIN;
  END IF;
END
$$;
GRANT carm_gateway TO regress_id_app;
GRANT carm_admin TO regress_id_admin;

-- Shows the outcome of a statement: ok, or its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

-- BN9 and BN15 check digits (§1)
SELECT carm_internal.bn9_is_valid('123456782') AS good, carm_internal.bn9_is_valid('123456789') AS bad_check,
       carm_internal.bn15_is_valid('123456782RM0001') AS good15, carm_internal.bn15_is_valid('123456782RT0001') AS bad15;

-- Users are registered by carm_gateway or carm_admin members.
SET ROLE regress_id_app;
SELECT carm.register_user('alice@example', 'Alice Tremblay', 'alice@example.com') AS alice;
SET ROLE regress_id_admin;
SELECT carm.register_user('bob@example', 'Bob Gagnon') AS bob;
SET ROLE regress_id_nobody;
SELECT pg_temp.try($$SELECT carm.register_user('eve@example', 'Eve')$$) AS nobody_registers;
RESET ROLE;

-- No actor yet.
SELECT carm.actor();

-- The setting cannot be assigned by anything but carm.set_actor().
SELECT pg_temp.try($$SET carm_deleg.actor = '1'$$) AS plain_set;
SELECT pg_temp.try($$SET LOCAL carm_deleg.actor = '1'$$) AS set_local;
SELECT pg_temp.try($$SELECT set_config('carm_deleg.actor', '1', false)$$) AS set_config;
SELECT pg_temp.try($$ALTER ROLE regress_id_app SET carm_deleg.actor = '1'$$) AS alter_role;
SELECT carm.actor();

-- Only carm_gateway members call set_actor and reset_actor (42501).
SET ROLE regress_id_nobody;
SELECT pg_temp.try($$SELECT carm.set_actor(1)$$) AS nobody_by_id;
SELECT pg_temp.try($$SELECT carm.set_actor('alice@example')$$) AS nobody_by_external_id;
SELECT pg_temp.try($$SELECT carm.reset_actor()$$) AS nobody_resets;
SET ROLE regress_id_admin;
SELECT pg_temp.try($$SELECT carm.set_actor(1)$$) AS admin_is_not_gateway;

SET ROLE regress_id_app;
-- is_local (the default): the actor lasts until the end of the transaction.
BEGIN;
SELECT carm.set_actor(1);
SELECT carm.actor() AS inside_transaction;
COMMIT;
SELECT carm.actor() AS after_commit;
-- §2: outside a transaction block the statement is the transaction, so a
-- transaction-local actor would last for no statement: 25P01, never a
-- silent success
\set VERBOSITY default
SELECT carm.set_actor('alice@example');
\set VERBOSITY terse
SELECT carm.actor() AS next_statement;
-- a multi-statement query string is one implicit transaction block: the
-- actor lasts until its end
SELECT carm.set_actor('alice@example') \; SELECT carm.actor() AS same_string;
SELECT carm.actor() AS after_string;
-- a function (or DO block) that sets the actor and then reads is allowed
CREATE FUNCTION pg_temp.as_alice() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor('alice@example');
  RETURN carm.actor();
END $$;
SELECT pg_temp.as_alice() AS in_function;
SELECT carm.actor() AS after_function;

-- is_local => false is refused by default (SPEC §10 rev. 1.2: behind a
-- transaction-pooling pooler a session actor would reach the next client):
-- 42501, and the hint shows the transaction block, never a session actor.
\set VERBOSITY default
SELECT carm.set_actor('bob@example', false);
\set VERBOSITY terse
SELECT carm.actor() AS still_none;
-- the DBA allows session actors with carm_deleg.allow_session_actor (superuser)
RESET ROLE;
SET carm_deleg.allow_session_actor = on;
SET ROLE regress_id_app;
-- is_local => false: until the session ends or reset_actor().
SELECT carm.set_actor('bob@example', false);
SELECT carm.actor() AS session_actor;
BEGIN;
SELECT carm.set_actor(1);
SELECT carm.actor() AS local_override;
COMMIT;
SELECT carm.actor() AS session_actor_again;
-- a session-level set_actor() in a transaction that rolls back is undone
BEGIN;
SELECT carm.set_actor(1, false);
ROLLBACK;
SELECT carm.actor() AS after_rollback;
SELECT carm.reset_actor();
SELECT carm.actor() AS after_reset;
-- RESET and an empty value only take power away, so any role may use them
SELECT carm.set_actor(1, false);
RESET carm_deleg.actor;
SELECT carm.actor() AS after_plain_reset;
SELECT carm.set_actor(1, false);
SET carm_deleg.actor = '';
SELECT carm.actor() AS after_empty_set;

-- Bad arguments: NULL 22004, unknown acting user 28000 (§10 rev. 1.2: not P0002,
-- an acting-user problem is not an unknown object), bad on_behalf_of.
SELECT pg_temp.try($$SELECT carm.set_actor(NULL::bigint)$$) AS null_id;
SELECT pg_temp.try($$SELECT carm.set_actor(NULL::text)$$) AS null_external_id;
SELECT pg_temp.try($$SELECT carm.set_actor(999)$$) AS unknown_id;
SELECT pg_temp.try($$SELECT carm.set_actor('nobody@example')$$) AS unknown_external_id;
SELECT pg_temp.try($$SELECT carm.set_actor(repeat('x', 100000))$$) AS huge_external_id;
SELECT pg_temp.try($$SELECT carm.set_actor(1, true, '12345')$$) AS malformed_business;
SELECT pg_temp.try($$SELECT carm.set_actor(1, true, '111111118')$$) AS unknown_business;
RESET ROLE;
SELECT carm.add_business('123456782', 'Acme Imports', '{IMPORTER}');
SELECT carm.add_program_account('123456782RM0001');
SET ROLE regress_id_app;
SELECT pg_temp.try($$SELECT carm.set_actor(1, true, '123456782')$$) AS not_an_employee;
RESET ROLE;
INSERT INTO carm.employee (business_id, user_id, role) VALUES (carm.business_id('123456782'), 1, 'BAM');
SET ROLE regress_id_app;
BEGIN;
SELECT carm.set_actor(1, true, '123456782');
SELECT carm.actor() AS actor_on_behalf;
COMMIT;
SELECT carm.actor() AS after_commit;
RESET ROLE;

-- Every actor-facing function raises 42501 "no acting user" without an actor.
SET ROLE regress_id_app;
SELECT pg_temp.try($$SELECT carm.has_access('123456782RM0001', 'statements.view')$$) AS has_access;
SELECT pg_temp.try($$SELECT * FROM carm.my_businesses()$$) AS my_businesses;
SELECT pg_temp.try($$SELECT carm.request_employee_access('123456782', 'hello')$$) AS request;
RESET ROLE;

-- bind_login_role (carm_admin): a session whose session_user is that role acts
-- as that user by default; set_actor() still overrides it.
SET ROLE regress_id_app;
SELECT pg_temp.try($$SELECT carm.bind_login_role(2, 'regress_id_login')$$) AS gateway_binds;
SET ROLE regress_id_admin;
SELECT carm.bind_login_role(2, 'regress_id_login');
SELECT pg_temp.try($$SELECT carm.bind_login_role(999, 'regress_id_login')$$) AS unknown_user;
SELECT pg_temp.try($$SELECT carm.bind_login_role(NULL, 'regress_id_login')$$) AS null_user;
SELECT pg_temp.try($$SELECT carm.bind_login_role(2, NULL)$$) AS null_login;
SELECT pg_temp.try($$SELECT carm.bind_login_role(2, 'regress_id_no_such_role')$$) AS unknown_role;
SELECT pg_temp.try($$SELECT carm.bind_login_role(2, 4000000000::oid::regrole)$$) AS unknown_role_oid;
RESET ROLE;
SET SESSION AUTHORIZATION regress_id_login;
SELECT session_user, carm.actor() AS bound_actor;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_id_app;
SELECT carm.actor() AS other_login;
BEGIN;
SELECT carm.set_actor(1);
SELECT carm.actor() AS explicit_actor;
COMMIT;
RESET SESSION AUTHORIZATION;
-- rebinding replaces the user
SET ROLE regress_id_admin;
SELECT carm.bind_login_role(1, 'regress_id_login');
RESET ROLE;
SET SESSION AUTHORIZATION regress_id_login;
SELECT carm.actor() AS rebound_actor;
RESET SESSION AUTHORIZATION;
-- a bound user deactivated is an acting-user problem at sign-in: 28000, as
-- for set_actor(), not 42501 nor P0002 (§10 rev. 1.2)
BEGIN;
SELECT carm.deactivate_user(1);
SET LOCAL SESSION AUTHORIZATION regress_id_login;
SELECT pg_temp.try($$SELECT * FROM carm.my_notifications()$$) AS bound_deactivated;
ROLLBACK;

-- DISCARD ALL, as connection poolers send it, clears a session actor.
SET ROLE regress_id_app;
SELECT carm.set_actor(2, false);
DISCARD ALL;
SELECT current_user, carm.actor() AS after_discard;

-- What was recorded (§9).
SELECT event, actor_id, db_role, target_user_id, details FROM carm.audit_events() ORDER BY id;

DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_id_app, regress_id_admin, regress_id_nobody, regress_id_login;
