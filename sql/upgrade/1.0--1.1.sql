-- carm_deleg 1.0 -> 1.1: the preamble of the upgrade script.  The Makefile
-- appends every replayable install file (sql/src/, all but the header and
-- the tables), which re-creates each function, trigger and grant exactly as
-- a fresh 1.1 install does.  This preamble does what replaying cannot:
-- schema and table changes, and moving or dropping what 1.0 had.
\echo Use "ALTER EXTENSION carm_deleg UPDATE TO '1.1'" to load this file. \quit

-- Internal functions leave the API schema.  ALTER ... SET SCHEMA keeps each
-- function's identity, so the policies of protected tables and the CHECK
-- constraints that call them follow the move.
CREATE SCHEMA carm_internal;
COMMENT ON SCHEMA carm IS
  'carm_deleg: delegation of authority for CARM customs accounts (API and state tables)';
COMMENT ON SCHEMA carm_internal IS
  'carm_deleg internals: helpers of the API, the resolver and the row checks; not an API';
GRANT USAGE ON SCHEMA carm_internal TO PUBLIC;

DO $move$
DECLARE
  f record;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure AS sig, p.proname,
           pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
    FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                               AND d.deptype = 'e'
    JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'carm_deleg'
    WHERE p.pronamespace = 'carm'::regnamespace AND p.proname LIKE '\_%'
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET SCHEMA carm_internal', f.sig);
    EXECUTE format('ALTER FUNCTION carm_internal.%I(%s) RENAME TO %I', f.proname, f.args,
                   CASE f.proname WHEN '_user' THEN 'user_row'
                                  WHEN '_group' THEN 'group_row'
                                  ELSE substr(f.proname, 2) END);
  END LOOP;
END
$move$;

-- 1.0 made every change stale for everyone, with one statement trigger per
-- table; 1.1 names the users and businesses a row affects
-- (11_invalidation.sql).  Changes to carm.business no longer affect grants.
DO $inval$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['business','program','app_user','login_binding','employee',
                           'relationship','client_assignment','client_group',
                           'group_client','group_employee']
  LOOP
    EXECUTE format('DROP TRIGGER %I ON carm.%I', t || '_invalidate_cache', t);
  END LOOP;
END
$inval$;


-- §2: carm_admin is judged on the role the code runs as.  The 1.0 helper
-- judged the outer role; nothing may call it any more.
DROP FUNCTION carm_internal.caller_is_admin();
-- The listings and reports take whether they answer for carm_admin as an
-- argument, set by their admin variant (sql/src: reports, groups).
DROP FUNCTION carm_internal.require_admin_or_bam(bigint);
DROP FUNCTION carm_internal.group_listing_provider(text);
DROP FUNCTION carm_internal.group_listing(bigint);

-- §2: a login binding names its role as regrole (pg_dump writes the name)
-- and keeps the name it had, which the lookup compares with the session
-- user's; bindings of roles that no longer exist go.
ALTER TABLE carm.login_binding ALTER COLUMN login_role TYPE regrole USING login_role::regrole;
ALTER TABLE carm.login_binding ADD COLUMN login_name name;
DELETE FROM carm.login_binding b
WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_authid a WHERE a.oid = b.login_role);
UPDATE carm.login_binding b SET login_name = a.rolname
FROM pg_catalog.pg_authid a WHERE a.oid = b.login_role;
ALTER TABLE carm.login_binding ALTER COLUMN login_name SET NOT NULL;
COMMENT ON TABLE carm.login_binding IS 'Default actor of sessions whose session_user is login_role (and still has login_name)';

-- §9 (rev. 1.1): audit events are published by id only; the publishing
-- function takes the id alone (only carm's own functions call it).
DROP FUNCTION carm_internal.publish(bigint, timestamptz, bigint, text, bigint, bigint, bigint,
                                    bigint, bigint, jsonb);

-- §9 (rev. 1.1): carm.audit_events() filters by time range and event types
-- and shows BN9s and external ids: new arguments and result columns.
DROP FUNCTION carm.audit_events(text);

-- §8 (rev. 1.1): the reports derive from the resolver and return what each
-- path grants (explain_access: permissions and history; who_has_access: one
-- row shape with a kind).  Their return types change; nothing depends on them.
DROP FUNCTION carm.explain_access(bigint, text);
DROP FUNCTION carm.who_has_access(text);

-- §11 (rev. 1.1): set_actor's forms become overloads without argument
-- defaults (the parser and planner expand defaults on every call).  A
-- function cannot lose its defaults in place.
DROP FUNCTION carm.set_actor(bigint, boolean, text);
DROP FUNCTION carm.set_actor(text, boolean, text);
