-- §2 reference data and identities: loaded by carm_admin (users also by
-- carm_gateway).  SECURITY DEFINER: the tables are closed to callers.

-- Validation helpers shared by every API file -------------------------------

-- Raises 22004 when a required argument is NULL.
CREATE OR REPLACE FUNCTION carm_internal.not_null(p_value anyelement, p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_value IS NULL THEN
    RAISE EXCEPTION '% must not be null', p_name USING ERRCODE = '22004';
  END IF;
END
$$;

-- Raises 22004 when a required text is NULL, 22023 when blank or too long; returns it
-- trimmed.  Blank and trimmed as carm_internal.trim_blank() says: any Unicode
-- white space (tab, newline, no-break space…), §10, G2, R1, R4, E4.
CREATE OR REPLACE FUNCTION carm_internal.not_blank(p_value text, p_name text, p_max integer DEFAULT 4000) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_trimmed text := carm_internal.trim_blank(p_value);
BEGIN
  IF p_value IS NULL THEN                                     -- §10 rev. 1.2
    RAISE EXCEPTION '% must not be null', p_name USING ERRCODE = '22004';
  END IF;
  IF v_trimmed IS NULL OR v_trimmed = '' THEN
    RAISE EXCEPTION '% must not be blank', p_name USING ERRCODE = '22023';
  END IF;
  IF length(p_value) > p_max THEN
    RAISE EXCEPTION '% is too long (% characters, at most %)', p_name, length(p_value), p_max
      USING ERRCODE = '22023';
  END IF;
  RETURN v_trimmed;
END
$$;

-- Checks an array argument of the API (§10, rev. 1.2) and returns it with
-- subscripts from 1, so that the code after it may index, slice and unnest
-- it without minding the bounds the caller's array had ('[0:2]={…}', a
-- slice a client library built): read by its own bounds, nothing dropped
-- or shifted.  Refuses, naming the parameter:
--   - more than one dimension: 22023;
--   - a NULL element, unless p_nulls (an optional per-row value such as a
--     bulk load's emails): 22004, naming its position (from 1) and subscript;
--   - a length other than p_size (the arrays of one bulk load are aligned,
--     one element per row): 22023, naming p_size_of, the array it must match.
-- A NULL array is returned as NULL: whether it is allowed is the caller's
-- rule (NULL programs mean all programs).
CREATE OR REPLACE FUNCTION carm_internal.array_arg(p_value anyarray, p_name text, p_nulls boolean DEFAULT false,
                                                   p_size integer DEFAULT NULL, p_size_of text DEFAULT NULL)
RETURNS anyarray
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_lower integer := array_lower(p_value, 1);
  v_at integer;
BEGIN
  IF p_value IS NULL THEN
    RETURN NULL;
  END IF;
  IF array_ndims(p_value) > 1 THEN
    RAISE EXCEPTION '% must be a one-dimensional array', p_name
      USING ERRCODE = '22023',
            DETAIL = format('It has %s dimensions.', array_ndims(p_value)),
            HINT = 'Pass a list, such as ''{a,b,c}''.';
  END IF;
  IF NOT p_nulls THEN
    v_at := array_position(p_value, NULL);
    IF v_at IS NOT NULL THEN
      RAISE EXCEPTION '% must not contain a null element (position %)', p_name, v_at - v_lower + 1
        USING ERRCODE = '22004',
              DETAIL = CASE WHEN v_lower = 1 THEN 'Nothing was changed.'
                            ELSE format('Positions count from 1: this is subscript %s of an array whose first subscript is %s. Nothing was changed.',
                                        v_at, v_lower) END;
    END IF;
  END IF;
  IF p_size IS NOT NULL AND cardinality(p_value) <> p_size THEN
    RAISE EXCEPTION '% has % elements, % has %', p_size_of, p_size, p_name, cardinality(p_value)
      USING ERRCODE = '22023', HINT = 'Pass one element per row in every array.';
  END IF;
  IF v_lower IS NULL OR v_lower = 1 THEN
    RETURN p_value;
  END IF;
  RETURN p_value[v_lower : array_upper(p_value, 1)];
END
$$;
COMMENT ON FUNCTION carm_internal.array_arg(anyarray, text, boolean, integer, text) IS
  'Internal (§10): an array argument checked (one dimension 22023, no NULL element 22004, optionally a given length 22023) and returned with subscripts from 1';

-- BN9 / BN15 to ids: one lookup, with its messages, in C (src/target.c), the
-- one the point checks use.  number_id: the id of a business ('business', a
-- BN9) or program account ('program', a BN15); target: the business and
-- program (NULL for a BN9) a BN9 or BN15 names.  22004 when NULL (§10 rev.
-- 1.2), 22023 when malformed, P0002 when unknown.
CREATE OR REPLACE FUNCTION carm_internal.number_id(p_number text, p_kind text) RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_number_id';
CREATE OR REPLACE FUNCTION carm_internal.target(p_target text, OUT business_id bigint, OUT program_id bigint)
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_target_sql';

-- A business from its BN9: 22023 when malformed, P0002 when unknown.
CREATE OR REPLACE FUNCTION carm_internal.business(p_bn9 text) RETURNS carm.business
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business;
BEGIN
  SELECT * INTO b FROM carm.business WHERE id = carm_internal.number_id(p_bn9, 'business');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'business % does not exist', p_bn9 USING ERRCODE = 'P0002';
  END IF;
  RETURN b;
END
$$;

-- Program ids from a list of BN15 of one business (22023 otherwise).
-- NULL stays NULL (= all programs); an empty list is refused.
CREATE OR REPLACE FUNCTION carm_internal.programs_of(p_business bigint, p_bn15s text[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ids bigint[];
  v_bad text;
BEGIN
  p_bn15s := carm_internal.array_arg(p_bn15s, 'programs');    -- §10: 22023 / 22004
  IF p_bn15s IS NULL THEN
    RETURN NULL;
  END IF;
  IF cardinality(p_bn15s) = 0 THEN
    RAISE EXCEPTION 'program list must not be empty'
      USING ERRCODE = '22023', HINT = 'Pass NULL for all programs.';
  END IF;
  SELECT x INTO v_bad FROM unnest(p_bn15s) x WHERE NOT carm_internal.bn15_is_valid(x) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(v_bad, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 looks like 123456782RM0001.';
  END IF;
  SELECT x INTO v_bad FROM unnest(p_bn15s) x
  WHERE NOT EXISTS (SELECT FROM carm.program p WHERE p.bn15 = x AND p.business_id = p_business)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'program account % does not belong to this business', v_bad
      USING ERRCODE = '22023';
  END IF;
  SELECT array_agg(DISTINCT p.id ORDER BY p.id) INTO v_ids
  FROM carm.program p WHERE p.bn15 = ANY (p_bn15s);
  RETURN v_ids;
END
$$;

-- BN15 list of program ids (for listings); NULL stays NULL.
CREATE OR REPLACE FUNCTION carm_internal.bn15s(p_ids bigint[]) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_ids IS NULL THEN NULL
              ELSE coalesce((SELECT array_agg(p.bn15 ORDER BY p.bn15) FROM carm.program p
                             WHERE p.id = ANY (p_ids)), '{}') END;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.check_kinds(p_kinds text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text;
BEGIN
  p_kinds := carm_internal.array_arg(p_kinds, 'kinds');       -- §10: 22023 / 22004
  IF p_kinds IS NULL THEN                                     -- §10 rev. 1.2
    RAISE EXCEPTION 'kinds must not be null' USING ERRCODE = '22004';
  END IF;
  IF cardinality(p_kinds) = 0 THEN
    RAISE EXCEPTION 'a business needs at least one kind' USING ERRCODE = '22023',
      HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT.';
  END IF;
  SELECT k INTO v_bad FROM unnest(p_kinds) k
  WHERE k NOT IN ('IMPORTER','CUSTOMS_BROKER','TRADE_CONSULTANT') LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'unknown business kind "%"', left(v_bad, 32) USING ERRCODE = '22023',
      HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT k FROM unnest(p_kinds) k ORDER BY k);
END
$$;

-- Users ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.register_user(external_id text, full_name text, email text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_ext text := carm_internal.not_blank(external_id, 'external_id', 256);
  v_name text := carm_internal.not_blank(full_name, 'full_name', 256);
BEGIN
  PERFORM carm_internal.forbid_restricted();   -- §2: nobody registers users in a security-restricted operation
  IF email IS NOT NULL AND (length(email) > 320 OR email !~ '^[^@\s]+@[^@\s]+$') THEN
    RAISE EXCEPTION 'invalid email address "%"', left(email, 32) USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT FROM carm.app_user u WHERE u.external_id = v_ext) THEN
    RAISE EXCEPTION 'a user with external id "%" already exists', left(v_ext, 32) USING ERRCODE = '23505';
  END IF;
  INSERT INTO carm.app_user (external_id, full_name, email)
  VALUES (v_ext, v_name, email) RETURNING id INTO v_id;
  PERFORM carm_internal.audit('user_registered', NULL, NULL, v_id, NULL, NULL,
                      jsonb_build_object('external_id', v_ext));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.register_user(text, text, text) IS
  'Create a user profile; external_id is the unique sign-in identity (carm_gateway, carm_admin)';

CREATE OR REPLACE FUNCTION carm_internal.user_row(p_user bigint) RETURNS carm.app_user
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user;
BEGIN
  PERFORM carm_internal.not_null(p_user, 'user_id');
  SELECT * INTO u FROM carm.app_user WHERE id = p_user;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % does not exist', p_user USING ERRCODE = 'P0002';
  END IF;
  RETURN u;
END
$$;

CREATE OR REPLACE FUNCTION carm.deactivate_user(user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm_internal.user_row(user_id);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF u.active THEN
    UPDATE carm.app_user SET active = false WHERE id = u.id;
    PERFORM carm_internal.audit('user_deactivated', NULL, NULL, u.id);
  END IF;
END
$$;
COMMENT ON FUNCTION carm.deactivate_user(bigint) IS
  'A deactivated user has no access until reactivated (carm_admin)';

CREATE OR REPLACE FUNCTION carm.reactivate_user(user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm_internal.user_row(user_id);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF NOT u.active THEN
    UPDATE carm.app_user SET active = true WHERE id = u.id;
    PERFORM carm_internal.audit('user_reactivated', NULL, NULL, u.id);
  END IF;
END
$$;
COMMENT ON FUNCTION carm.reactivate_user(bigint) IS 'Give a deactivated user its access back (carm_admin)';

-- Forgets the bindings of roles that no longer exist (their oid may be
-- reused by an unrelated role), each an audit event.
CREATE OR REPLACE FUNCTION carm_internal.forget_dropped_login_roles() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.login_binding;
BEGIN
  FOR r IN DELETE FROM carm.login_binding b
           WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_authid a WHERE a.oid = b.login_role)
           RETURNING * LOOP
    PERFORM carm_internal.audit('login_unbound', NULL, NULL, r.user_id, NULL, NULL,
                        jsonb_build_object('login', r.login_name, 'reason', 'role dropped'));
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION carm.bind_login_role(user_id bigint, login regrole) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm_internal.user_row(user_id);
  v_role pg_catalog.pg_roles;
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  PERFORM carm_internal.not_null(login, 'login');
  -- a numeric regrole is not checked by the cast
  SELECT * INTO v_role FROM pg_catalog.pg_roles r WHERE r.oid = login;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role with oid % does not exist', login::oid USING ERRCODE = '42704';
  END IF;
  -- §2: a binding must not make a privileged role act as a portal user
  IF v_role.rolname IN (session_user, carm_internal.caller_role()) THEN
    RAISE EXCEPTION 'cannot bind your own role' USING ERRCODE = '42501',
      HINT = 'Bind the application''s login role, not the role that administers carm_deleg.';
  END IF;
  IF v_role.rolsuper THEN
    RAISE EXCEPTION 'cannot bind a superuser' USING ERRCODE = '42501',
      DETAIL = 'A superuser bypasses row-level security whoever it acts as.';
  END IF;
  IF pg_has_role(login, 'carm_admin', 'MEMBER') OR pg_has_role(login, 'carm_gateway', 'MEMBER') THEN
    RAISE EXCEPTION 'cannot bind a member of carm_admin or carm_gateway' USING ERRCODE = '42501',
      DETAIL = 'A bound login acts as one portal user; it must hold no carm_deleg role of its own.';
  END IF;
  PERFORM carm_internal.forget_dropped_login_roles();
  INSERT INTO carm.login_binding (login_role, user_id, login_name) VALUES (login, u.id, v_role.rolname)
  ON CONFLICT (login_role) DO UPDATE SET user_id = excluded.user_id, login_name = excluded.login_name;
  PERFORM carm_internal.audit('login_bound', NULL, NULL, u.id, NULL, NULL,
                      jsonb_build_object('login', v_role.rolname));
  IF carm_internal.citus_active() THEN
    RAISE WARNING 'login bindings are not honoured under Citus'
      USING DETAIL = 'Citus could not carry the bound actor to its workers: a bound session acts as nobody.',
            HINT = 'Call carm.set_actor() inside BEGIN ... COMMIT instead.';
  END IF;
END
$$;
COMMENT ON FUNCTION carm.bind_login_role(bigint, regrole) IS
  'Sessions whose session_user is this role act as this user by default (carm_admin); refuses your own role, superusers and carm_admin/carm_gateway members';

CREATE OR REPLACE FUNCTION carm.unbind_login_role(login regrole) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.login_binding;
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  PERFORM carm_internal.not_null(login, 'login');
  DELETE FROM carm.login_binding b WHERE b.login_role = login RETURNING * INTO r;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role % is not bound', left(login::text, 32) USING ERRCODE = 'P0002';
  END IF;
  PERFORM carm_internal.audit('login_unbound', NULL, NULL, r.user_id, NULL, NULL,
                      jsonb_build_object('login', r.login_name));
  PERFORM carm_internal.forget_dropped_login_roles();
END
$$;
COMMENT ON FUNCTION carm.unbind_login_role(regrole) IS
  'Sessions of this role no longer act as a user by default (carm_admin); also forgets bindings of dropped roles';

-- Businesses and program accounts ------------------------------------------

CREATE OR REPLACE FUNCTION carm.add_business(bn9 text, legal_name text, kinds text[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_name text := carm_internal.not_blank(legal_name, 'legal_name', 512);
  v_kinds text[] := carm_internal.check_kinds(kinds);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF bn9 IS NULL THEN                                     -- §10 rev. 1.2
    RAISE EXCEPTION 'business number must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT carm_internal.bn9_is_valid(bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a Luhn check digit.';
  END IF;
  IF EXISTS (SELECT FROM carm.business b WHERE b.bn9 = add_business.bn9) THEN
    RAISE EXCEPTION 'business % already exists', bn9 USING ERRCODE = '23505';
  END IF;
  INSERT INTO carm.business (bn9, legal_name, kinds) VALUES (bn9, v_name, v_kinds)
  RETURNING id INTO v_id;
  PERFORM carm_internal.audit('business_added', v_id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('bn9', bn9, 'kinds', v_kinds));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.add_business(text, text, text[]) IS
  'Load a business account (BN9 with check digit) and its kinds (carm_admin)';

CREATE OR REPLACE FUNCTION carm.add_program_account(bn15 text, name text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  b carm.business;
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF bn15 IS NULL THEN                                     -- §10 rev. 1.2
    RAISE EXCEPTION 'program account number must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT carm_internal.bn15_is_valid(bn15) THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(bn15, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 is a BN9, RM and four digits, e.g. 123456782RM0001.';
  END IF;
  b := carm_internal.business(left(bn15, 9));
  IF EXISTS (SELECT FROM carm.program p WHERE p.bn15 = add_program_account.bn15) THEN
    RAISE EXCEPTION 'program account % already exists', bn15 USING ERRCODE = '23505';
  END IF;
  IF name IS NOT NULL AND length(name) > 512 THEN
    RAISE EXCEPTION 'name is too long' USING ERRCODE = '22023';
  END IF;
  INSERT INTO carm.program (business_id, bn15, name) VALUES (b.id, bn15, name)
  RETURNING id INTO v_id;
  PERFORM carm_internal.audit('program_added', b.id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('bn15', bn15));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.add_program_account(text, text) IS
  'Load a program account (BN15) of an existing business (carm_admin); E12: all-programs grants cover it at once';

CREATE OR REPLACE FUNCTION carm.set_business_kinds(bn9 text, kinds text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm_internal.business(bn9);
  v_kinds text[] := carm_internal.check_kinds(kinds);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  UPDATE carm.business SET kinds = v_kinds WHERE id = b.id;
  PERFORM carm_internal.audit('business_kinds_set', b.id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('before', b.kinds, 'after', v_kinds));
END
$$;
COMMENT ON FUNCTION carm.set_business_kinds(text, text[]) IS
  'Replace the kinds of a business (carm_admin)';

CREATE OR REPLACE FUNCTION carm.business_id(bn9 text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT carm_internal.number_id(bn9, 'business') $$;
COMMENT ON FUNCTION carm.business_id(text) IS
  'Internal id of a business, for application tables (22023 malformed, P0002 unknown)';

CREATE OR REPLACE FUNCTION carm.program_id(bn15 text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT carm_internal.number_id(bn15, 'program') $$;
COMMENT ON FUNCTION carm.program_id(text) IS
  'Internal id of a program account, for application tables (22023 malformed, P0002 unknown)';

REVOKE ALL ON FUNCTION carm.register_user(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.register_user(text, text, text) TO carm_gateway, carm_admin;
REVOKE ALL ON FUNCTION carm.deactivate_user(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.reactivate_user(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.bind_login_role(bigint, regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.unbind_login_role(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_business(text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_program_account(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.set_business_kinds(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.deactivate_user(bigint), carm.reactivate_user(bigint),
  carm.bind_login_role(bigint, regrole), carm.unbind_login_role(regrole),
  carm.add_business(text, text, text[]),
  carm.add_program_account(text, text), carm.set_business_kinds(text, text[]) TO carm_admin;
