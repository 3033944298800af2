-- §2 (rev. 1.2): actor-facing functions act for the application's
-- connection, so they answer only code that runs as a member of
-- carm_gateway, judged on the role the calling code runs as (current_user
-- before the API's own SECURITY DEFINER switch); for a login binding's
-- actor, the bound role itself.  A SECURITY DEFINER function owned by a
-- role with no carm rights, called in a transaction that has an actor, is
-- refused (42501) by every actor-facing function; the row checks of
-- protected tables keep working for every role (row-level security applies
-- to every role).  carm_admin callers keep their admin answers.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP ROLE IF EXISTS regress_ac_gw, regress_ac_plain, regress_ac_admin, regress_ac_login;
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_ac_gw NOLOGIN IN ROLE carm_gateway;     -- the application
CREATE ROLE regress_ac_plain NOLOGIN;                       -- no carm rights at all
CREATE ROLE regress_ac_admin NOLOGIN IN ROLE carm_admin;    -- a back-office operator
CREATE ROLE regress_ac_login LOGIN;                         -- bound to clara below
RESET client_min_messages;

-- Maple Imports (importer): clara is its BAM; two rows in its program.
SELECT carm.add_business('300000007', 'Maple Imports', '{IMPORTER}') AS maple,
       carm.add_program_account('300000007RM0001') AS program,
       carm.register_user('clara', 'Clara') AS clara;
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM');
CREATE TABLE public.ac_rows (id int, program_id bigint, submitter_id bigint);
INSERT INTO public.ac_rows VALUES (1, 1, 1), (2, 1, 1);
SELECT carm.protect('public.ac_rows', 'program_id', 'submitter_id', 'rulings');
GRANT SELECT ON public.ac_rows TO regress_ac_gw, regress_ac_plain, regress_ac_admin, regress_ac_login;

-- What code gets from each actor-facing function (and from a protected table).
CREATE FUNCTION public.ac_calls() RETURNS SETOF text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q text;
  v text;
BEGIN
  FOREACH q IN ARRAY ARRAY[
    'SELECT count(*) FROM carm.who_has_access(''300000007'')',
    'SELECT count(*) FROM carm.explain_access(1, ''300000007'')',
    'SELECT count(*) FROM carm.my_access(''300000007'')',
    'SELECT count(*) FROM carm.relationships(''300000007'')',
    'SELECT count(*) FROM carm.audit_events(''300000007'')',
    'SELECT count(*) FROM carm.my_businesses()',
    'SELECT count(*) FROM carm.my_notifications()',
    'SELECT carm.has_access(''300000007RM0001'', ''rulings.view'')',
    'SELECT count(*) FROM carm.accessible_programs(''rulings.view'')',
    'SELECT count(*) FROM public.ac_rows']
  LOOP
    BEGIN
      EXECUTE q INTO v;
      RETURN NEXT format('%-60s %s', q, v);
    EXCEPTION WHEN OTHERS THEN
      RETURN NEXT format('%-60s %s %s', q, SQLSTATE, SQLERRM);
    END;
  END LOOP;
END $$;
-- the same calls made from SECURITY DEFINER functions of three owners
CREATE FUNCTION public.ac_calls_as_plain() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS 'SELECT public.ac_calls()';
ALTER FUNCTION public.ac_calls_as_plain() OWNER TO regress_ac_plain;
CREATE FUNCTION public.ac_calls_as_gw() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS 'SELECT public.ac_calls()';
ALTER FUNCTION public.ac_calls_as_gw() OWNER TO regress_ac_gw;
CREATE FUNCTION public.ac_calls_as_admin() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS 'SELECT public.ac_calls()';
ALTER FUNCTION public.ac_calls_as_admin() OWNER TO regress_ac_admin;
-- one call, made from a definer owned by the plain role
CREATE FUNCTION public.ac_my_access_as_plain() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS 'SELECT count(*) FROM carm.my_access(''300000007'')';
ALTER FUNCTION public.ac_my_access_as_plain() OWNER TO regress_ac_plain;
-- an application's own request handler: sets the actor, then calls the API
CREATE FUNCTION public.ac_app_request() RETURNS TABLE (my_access bigint, has_access boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM carm.set_actor('clara');
  my_access := (SELECT count(*) FROM carm.my_access('300000007'));
  has_access := carm.has_access('300000007RM0001', 'rulings.view');
  RETURN NEXT;
END $$;
ALTER FUNCTION public.ac_app_request() OWNER TO regress_ac_gw;

-- The application, acting for clara: everything answers.
SET ROLE regress_ac_gw;
BEGIN;
SELECT carm.set_actor('clara');
SELECT * FROM public.ac_calls() AS gateway_caller;
-- a function owned by a role with no carm rights: every actor-facing
-- function refuses (42501); the protected table still shows clara's rows
SELECT * FROM public.ac_calls_as_plain() AS plain_definer;
-- owned by another gateway member: it runs as the application would
SELECT * FROM public.ac_calls_as_gw() AS gateway_definer;
-- owned by a carm_admin member (not carm_gateway): the admin answers of the
-- mixed reports, no actor-facing answers
SELECT * FROM public.ac_calls_as_admin() AS admin_definer;
COMMIT;
-- SET ROLE to a role without carm rights, actor still set: refused too
BEGIN;
SELECT carm.set_actor('clara');
SET LOCAL ROLE regress_ac_plain;
SELECT * FROM public.ac_calls() AS plain_current_role;
COMMIT;
RESET ROLE;

-- carm_admin with no actor: the admin variants still answer everything.
SET ROLE regress_ac_admin;
SELECT count(*) AS admin_who_has_access FROM carm.who_has_access('300000007');
SELECT carm.user_has_access(1, '300000007RM0001', 'rulings.view') AS admin_user_has_access;
SELECT count(*) AS admin_rows_without_actor FROM public.ac_rows;
RESET ROLE;

-- A login binding: the bound role answers for its own actor; a function
-- owned by a role with no carm rights, called in the bound session, does not.
SELECT carm.bind_login_role(1, 'regress_ac_login');
SET SESSION AUTHORIZATION regress_ac_login;
SELECT carm.actor() AS bound_actor;
SELECT * FROM public.ac_calls() AS bound_role;
SELECT * FROM public.ac_calls_as_plain() AS bound_plain_definer;
RESET SESSION AUTHORIZATION;

-- A new session (the library not loaded) whose first carm call is made by a
-- definer: the library is loaded inside it.  Loaded by one of the
-- extension's own functions (their owner, a superuser, is running), the
-- caller cannot be told until the transaction ends: refused, and the DETAIL
-- says why; from the next transaction on, the record is complete.
\c
SET SESSION AUTHORIZATION regress_ac_login;
\set VERBOSITY default
SELECT public.ac_my_access_as_plain() AS first_call_in_definer;
SELECT public.ac_my_access_as_plain() AS next_transaction;
\set VERBOSITY terse
SELECT count(*) AS bound_my_access FROM carm.my_access('300000007');
RESET SESSION AUTHORIZATION;
-- Loaded by the application's own request handler (a carm_gateway member's
-- definer, which sets the actor): the role that loaded it is the caller.
\c
SELECT * FROM public.ac_app_request() AS app_definer_first_call;
-- the same handler owned by a role with no carm rights cannot even set the actor
ALTER FUNCTION public.ac_app_request() OWNER TO regress_ac_plain;
\c
SELECT * FROM public.ac_app_request() AS plain_handler_first_call;

SELECT carm.unprotect('public.ac_rows');
DROP TABLE public.ac_rows;
DROP FUNCTION public.ac_calls(), public.ac_calls_as_plain(), public.ac_calls_as_gw(), public.ac_calls_as_admin(),
  public.ac_my_access_as_plain(), public.ac_app_request();
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_ac_gw, regress_ac_plain, regress_ac_admin, regress_ac_login;
