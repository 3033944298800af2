-- §2 identity: who is acting.  Implemented in C (src/actor.c): the actor is a
-- guarded setting that only these functions can assign.

CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, is_local boolean DEFAULT true,
                               on_behalf_of text DEFAULT NULL) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
COMMENT ON FUNCTION carm.set_actor(bigint, boolean, text) IS
  'Act as this user until the end of the transaction (is_local) or of the session; carm_gateway only';

CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, is_local boolean DEFAULT true,
                               on_behalf_of text DEFAULT NULL) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
COMMENT ON FUNCTION carm.set_actor(text, boolean, text) IS
  'Act as the user with this sign-in identity; carm_gateway only';

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

-- The actor for API functions: raises 42501 "no acting user" when none (§2).
CREATE OR REPLACE FUNCTION carm_internal.require_actor() RETURNS bigint
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v bigint := carm.actor();
BEGIN
  IF v IS NULL THEN
    RAISE EXCEPTION 'no acting user'
      USING ERRCODE = '42501',
            HINT = 'A member of carm_gateway must call carm.set_actor() first.';
  END IF;
  RETURN v;
END
$$;

REVOKE ALL ON FUNCTION carm.set_actor(bigint, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.set_actor(text, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.reset_actor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.set_actor(bigint, boolean, text) TO carm_gateway;
GRANT EXECUTE ON FUNCTION carm.set_actor(text, boolean, text) TO carm_gateway;
GRANT EXECUTE ON FUNCTION carm.reset_actor() TO carm_gateway;

CREATE OR REPLACE FUNCTION carm_internal.caller_is_admin() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_caller_is_admin';
COMMENT ON FUNCTION carm_internal.caller_is_admin() IS
  'Internal: is the calling role (not a SECURITY DEFINER owner) a member of carm_admin';

CREATE OR REPLACE FUNCTION carm_internal.caller_role() RETURNS name
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_caller_role';
COMMENT ON FUNCTION carm_internal.caller_role() IS 'Internal: the calling database role';

-- Raises 42501 unless the caller is a member of carm_admin.
CREATE OR REPLACE FUNCTION carm_internal.require_admin() RETURNS void
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT carm_internal.caller_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
END
$$;
