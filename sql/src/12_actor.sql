-- §2 identity: who is acting.  Implemented in C (src/actor.c): the actor is a
-- guarded setting that only these functions can assign.

-- set_actor(user [, is_local [, on_behalf_of]]) and set_actor(user,
-- on_behalf_of): overloads, not defaults, so that the common call
-- set_actor(user) expands nothing when it is parsed and planned (§11).
-- is_local NULL means true.
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, is_local boolean) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id_for';
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, is_local boolean, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, is_local boolean) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external_for';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, is_local boolean, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
DO $comments$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = 'carm'::regnamespace AND p.proname = 'set_actor'
  LOOP
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', f,
      CASE WHEN pg_catalog.pg_get_function_identity_arguments(f) LIKE 'user_id%'
           THEN 'Act as this user until the end of the transaction (is_local, the default) or, where carm_deleg.allow_session_actor is on, of the session, for the business on_behalf_of (BN9) if given; carm_gateway only'
           ELSE 'Act as the user with this sign-in identity until the end of the transaction (is_local, the default) or, where carm_deleg.allow_session_actor is on, of the session, for the business on_behalf_of (BN9) if given; carm_gateway only' END);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO carm_gateway', f);
  END LOOP;
END
$comments$;

CREATE OR REPLACE FUNCTION carm.reset_actor() RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_reset_actor';
COMMENT ON FUNCTION carm.reset_actor() IS 'No acting user, for the transaction and the session';

CREATE OR REPLACE FUNCTION carm.actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_actor_sql';
COMMENT ON FUNCTION carm.actor() IS 'The acting user, or NULL';

CREATE OR REPLACE FUNCTION carm_internal.on_behalf_of() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_acting_business_sql';
COMMENT ON FUNCTION carm_internal.on_behalf_of() IS
  'Internal: the business fixed by set_actor(on_behalf_of => bn9), or NULL';

-- The actor for API functions (SPEC §2), one implementation in C for the
-- C checks and every SQL function: 42501 "no acting user" when none, and
-- require_active_actor() also 28000 when the actor is deactivated (§10 rev.
-- 1.2); 42501 too when the role the calling code runs as is not a member of
-- carm_gateway (rev. 1.2, src/caller.c).  PARALLEL RESTRICTED: the record
-- of that role is the leader's, so a query of the API that asks for the
-- actor does so in the leader.
CREATE OR REPLACE FUNCTION carm_internal.require_actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL RESTRICTED
  AS 'MODULE_PATHNAME', 'carm_require_actor_sql';
COMMENT ON FUNCTION carm_internal.require_actor() IS
  'Internal: the acting user; 42501 "no acting user" when there is none';
CREATE OR REPLACE FUNCTION carm_internal.forbid_restricted() RETURNS void
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_forbid_restricted_sql';
COMMENT ON FUNCTION carm_internal.forbid_restricted() IS
  'Internal: 42501 inside a security-restricted operation (ANALYZE, VACUUM, REINDEX, index expressions), where nobody acts or administers delegation';
CREATE OR REPLACE FUNCTION carm_internal.require_active_actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL RESTRICTED
  AS 'MODULE_PATHNAME', 'carm_require_active_actor_sql';
COMMENT ON FUNCTION carm_internal.require_active_actor() IS
  'Internal: the acting user, who must be active; 42501 when there is none, 28000 when deactivated';

REVOKE ALL ON FUNCTION carm.reset_actor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.reset_actor() TO carm_gateway;

-- carm_admin is judged on the role the code runs as, never the session or
-- outer role, and nobody is carm_admin inside a security-restricted operation
-- (§2).  A SECURITY DEFINER function cannot see its caller, so every report
-- that answers everything to carm_admin is split in three: a SECURITY
-- INVOKER function in schema carm (the API) asks current_role_is_admin() and
-- calls either the admin variant, SECURITY DEFINER with EXECUTE granted to
-- carm_admin only (PostgreSQL checks membership for the role the calling
-- code runs as; require_admin() refuses inside a security-restricted
-- operation), or the actor variant, which has no admin powers.
CREATE OR REPLACE FUNCTION carm_internal.current_role_is_admin() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_current_role_is_admin';
COMMENT ON FUNCTION carm_internal.current_role_is_admin() IS
  'Internal: is current_user a member of carm_admin, outside any security-restricted operation (for SECURITY INVOKER callers)';

CREATE OR REPLACE FUNCTION carm_internal.caller_role() RETURNS name
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_caller_role';
COMMENT ON FUNCTION carm_internal.caller_role() IS
  'Internal: the outer database role, recorded in audit events; informational, never a decision';

-- Raises 42501 inside a security-restricted operation.  Called first by the
-- SECURITY DEFINER functions that answer or do everything for carm_admin,
-- whose EXECUTE privilege is granted to carm_admin only: PostgreSQL has
-- checked membership for the role the calling code runs as.
CREATE OR REPLACE FUNCTION carm_internal.require_admin() RETURNS void
  LANGUAGE c STABLE
  AS 'MODULE_PATHNAME', 'carm_require_admin';
COMMENT ON FUNCTION carm_internal.require_admin() IS
  'Internal: 42501 inside a security-restricted operation; callers are granted to carm_admin only';

-- The one definition of that split, so that every such report is exposed
-- the same way (and reviewed in one place): for a report whose body is
-- carm_internal.<name>(<params>, p_admin boolean), it creates the API
-- carm.<name>(<api_params>) and the variants carm_internal.<name>_admin
-- (EXECUTE for carm_admin only) and carm_internal.<name>_actor.  Run by the
-- install and the upgrade scripts, once per report; the grants of the API
-- and of the actor variant are the caller's (they differ per report).
CREATE OR REPLACE FUNCTION carm_internal.define_admin_split(name text, params text, api_params text,
                                                          args text, returns text,
                                                          admin_comment text, actor_comment text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $gen$
DECLARE
  v_admin regprocedure;
  v_actor regprocedure;
BEGIN
  EXECUTE format('CREATE OR REPLACE FUNCTION carm.%I(%s) RETURNS %s '
                 'LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS %L',
                 name, api_params, returns,
                 format(E'\nBEGIN\n  IF carm_internal.current_role_is_admin() THEN\n'
                        || E'    RETURN QUERY SELECT * FROM carm_internal.%I(%s);\n  ELSE\n'
                        || E'    RETURN QUERY SELECT * FROM carm_internal.%I(%s);\n  END IF;\nEND\n',
                        name || '_admin', args, name || '_actor', args));
  EXECUTE format('CREATE OR REPLACE FUNCTION carm_internal.%I(%s) RETURNS %s '
                 'LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                 name || '_admin', params, returns,
                 format(E'\nBEGIN\n  PERFORM carm_internal.require_admin();\n'
                        || E'  RETURN QUERY SELECT * FROM carm_internal.%I(%s, true);\nEND\n', name, args));
  EXECUTE format('CREATE OR REPLACE FUNCTION carm_internal.%I(%s) RETURNS %s '
                 'LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                 name || '_actor', params, returns,
                 format(E'\nBEGIN\n  RETURN QUERY SELECT * FROM carm_internal.%I(%s, false);\nEND\n', name, args));
  SELECT p.oid::regprocedure INTO STRICT v_admin FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = 'carm_internal'::regnamespace AND p.proname = name || '_admin';
  SELECT p.oid::regprocedure INTO STRICT v_actor FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = 'carm_internal'::regnamespace AND p.proname = name || '_actor';
  EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_admin, admin_comment);
  EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_actor, actor_comment);
  -- the admin answers: for carm_admin only, whatever else is granted later
  EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_admin);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO carm_admin', v_admin);
END
$gen$;
COMMENT ON FUNCTION carm_internal.define_admin_split(text, text, text, text, text, text, text) IS
  'Internal (§2), install time: creates a report''s SECURITY INVOKER API and its admin (carm_admin only) and actor variants';
