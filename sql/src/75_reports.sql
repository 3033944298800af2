-- §8 reports: which programs the actor may use, who has access to a business,
-- and why a user has (or once had) access to an account.

CREATE OR REPLACE FUNCTION carm_internal.accessible_program_ids(permission text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_accessible_program_ids';

CREATE OR REPLACE FUNCTION carm.accessible_programs(permission text)
RETURNS TABLE (bn15 text, business text, name text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  -- the C function validates the permission and requires an actor, always
  WITH ids AS MATERIALIZED (SELECT carm_internal.accessible_program_ids(permission) AS ids)
  SELECT p.bn15, b.bn9, p.name
  FROM ids, carm.program p JOIN carm.business b ON b.id = p.business_id
  WHERE CASE WHEN split_part(permission, '.', 1) = 'business_profile'
             -- a business-scope function (§3): the answer of the program's business
             THEN b.id IN (SELECT g.business_id FROM carm_internal.grants(carm.actor()) g)
                  AND carm.has_access(b.bn9, permission)
             ELSE p.id = ANY (ids.ids) END
  ORDER BY p.bn15;
$$;
COMMENT ON FUNCTION carm.accessible_programs(text) IS
  'Program accounts (BN15) on which the acting user holds a permission such as rulings.edit';

-- Is the caller carm_admin (p_admin: the admin variant of a report, §2) or
-- a BAM of this business?  42501 otherwise.
CREATE OR REPLACE FUNCTION carm_internal.require_admin_or_bam(p_business bigint, p_admin boolean) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_admin THEN
    RETURN true;
  END IF;
  IF NOT EXISTS (SELECT FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
                 WHERE e.business_id = p_business AND e.user_id = carm_internal.require_actor()
                   AND e.role = 'BAM') THEN
    RAISE EXCEPTION 'permission denied: only carm_admin or a business account manager of this business'
      USING ERRCODE = '42501';
  END IF;
  RETURN false;
END
$$;

-- The business and, for a BN15, the program a target names (22023 / P0002).
CREATE OR REPLACE FUNCTION carm_internal.target(p_target text, OUT business_id bigint, OUT program_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_target IS NULL OR length(p_target) NOT IN (9, 15) THEN
    RAISE EXCEPTION 'invalid business or program number "%"', left(p_target, 32)
      USING ERRCODE = '22023', HINT = 'A target is a BN9 or a BN15 such as 123456782RM0001.';
  END IF;
  IF length(p_target) = 9 THEN
    business_id := (carm_internal.business(p_target)).id;
  ELSE
    program_id := carm.program_id(p_target);
    SELECT p.business_id INTO business_id FROM carm.program p WHERE p.id = program_id;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.explain_access(user_id bigint, target text, p_admin boolean)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  u carm.app_user;
  v_now timestamptz := now();
BEGIN
  t := carm_internal.target(target);
  -- Authorise before looking the user up: a refused caller must not learn
  -- whether a user id exists (P0002) where it is simply not allowed (42501).
  IF NOT carm_internal.require_admin_or_bam(t.business_id, p_admin)
     AND NOT EXISTS (SELECT FROM carm.employee e
                     WHERE e.business_id = t.business_id AND e.user_id = explain_access.user_id) THEN
    RAISE EXCEPTION 'permission denied: user % is not an employee of this business', explain_access.user_id
      USING ERRCODE = '42501', HINT = 'A business account manager explains its own employees'' access.';
  END IF;
  u := carm_internal.user_row(explain_access.user_id);

  RETURN QUERY
  WITH rel AS (            -- relationships of the providers the user works for, with this client
    SELECT r.*, pb.bn9 AS provider_bn9, e.role AS my_role,
           (r.status = 'active' AND (r.expires_at IS NULL OR r.expires_at > v_now)) AS live,
           (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs)) AS covers
    FROM carm.employee e
    JOIN carm.relationship r ON r.provider_id = e.business_id AND r.client_id = t.business_id
    JOIN carm.business pb ON pb.id = r.provider_id
    WHERE e.user_id = u.id AND r.status IN ('active','expired','ended')
  )
  -- V1: the user's own employee role
  SELECT 'employee'::text, e.role, b.bn9,
         CASE WHEN e.programs IS NULL THEN 'all programs'
              ELSE array_to_string(carm_internal.bn15s(e.programs), ', ') END,
         u.active AND (t.program_id IS NULL OR e.programs IS NULL OR t.program_id = ANY (e.programs)),
         CASE WHEN NOT u.active THEN 'user is deactivated'
              WHEN t.program_id IS NOT NULL AND e.programs IS NOT NULL AND NOT t.program_id = ANY (e.programs)
                THEN 'program not in the employee''s scope (E5)'
              ELSE 'employee of the business (V1)' END
  FROM carm.employee e JOIN carm.business b ON b.id = e.business_id
  WHERE e.user_id = u.id AND e.business_id = t.business_id
  UNION ALL
  -- R6 / V4: provider BAMs
  SELECT 'relationship #' || r.id || ' (' || coalesce(r.access_type, '?') || ')',
         CASE WHEN r.live THEN (CASE r.access_type WHEN 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END)
              ELSE 'EXPIRED' END,
         r.provider_bn9,
         CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
              ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
         u.active AND r.covers,
         CASE WHEN NOT u.active THEN 'user is deactivated'
              WHEN NOT r.covers THEN 'program not delegated by the relationship'
              WHEN r.live THEN 'business account manager of the service provider (R6)'
                   || CASE WHEN r.expires_at IS NOT NULL THEN ', until ' || r.expires_at ELSE '' END
              WHEN r.status = 'ended' THEN 'relationship ended at ' || r.closed_at
                   || ': read-only, own submissions (V4)'
              ELSE 'relationship expired at ' || coalesce(r.expires_at, r.closed_at)
                   || ': read-only, own submissions (V4)' END
  FROM rel r WHERE r.my_role = 'BAM'
  UNION ALL
  -- V3: provider PAMs read the provider's submissions
  SELECT 'relationship #' || r.id || ' (' || r.access_type || ')', 'SPMGR', r.provider_bn9,
         CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
              ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
         u.active AND r.live AND r.covers,
         CASE WHEN r.live THEN 'program account manager of the service provider: reads its submissions (V3)'
              ELSE 'relationship no longer active' END
  FROM rel r WHERE r.my_role = 'PAM'
  UNION ALL
  -- R7: individual assignments
  SELECT 'assignment on relationship #' || r.id, a.role, r.provider_bn9,
         CASE WHEN a.programs IS NULL THEN 'all delegated programs'
              ELSE array_to_string(carm_internal.bn15s(a.programs), ', ') END,
         u.active AND r.live AND r.covers AND r.my_role <> 'BAM'
           AND (t.program_id IS NULL OR a.programs IS NULL OR t.program_id = ANY (a.programs)),
         CASE WHEN NOT r.live THEN 'relationship is ' || CASE WHEN r.status = 'active' THEN 'expired' ELSE r.status END
              WHEN r.my_role = 'BAM' THEN 'superseded: the user is a provider BAM (R6)'
              WHEN NOT r.covers OR (t.program_id IS NOT NULL AND a.programs IS NOT NULL
                                    AND NOT t.program_id = ANY (a.programs))
                THEN 'program not in the assignment'
              ELSE 'assigned by the service provider (R7)' END
  FROM rel r JOIN carm.client_assignment a ON a.relationship_id = r.id AND a.user_id = u.id
  UNION ALL
  -- G4 / G5: client groups
  SELECT 'group "' || g.name || '" on relationship #' || r.id, ge.role, r.provider_bn9,
         'all delegated programs',
         u.active AND r.live AND r.covers AND r.my_role <> 'BAM'
           AND NOT EXISTS (SELECT FROM carm.client_assignment a WHERE a.relationship_id = r.id AND a.user_id = u.id),
         CASE WHEN NOT r.live THEN 'relationship is not active'
              WHEN r.my_role = 'BAM' THEN 'superseded: the user is a provider BAM (R6)'
              WHEN EXISTS (SELECT FROM carm.client_assignment a WHERE a.relationship_id = r.id AND a.user_id = u.id)
                THEN 'overridden by an individual assignment (G5)'
              WHEN NOT r.covers THEN 'program not delegated by the relationship'
              ELSE 'employee of the client group (G4)' END
  FROM rel r
  JOIN carm.group_client gc ON gc.provider_id = r.provider_id AND gc.client_id = r.client_id
  JOIN carm.client_group g ON g.id = gc.group_id AND g.deleted_at IS NULL
  JOIN carm.group_employee ge ON ge.group_id = g.id AND ge.user_id = u.id
  ORDER BY 1, 2;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.explain_access(user_id bigint, target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.explain_access_admin(user_id, target);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.explain_access_actor(user_id, target);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.explain_access_admin(user_id bigint, target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.explain_access(user_id, target, true);
END
$$;
COMMENT ON FUNCTION carm_internal.explain_access_admin(bigint, text) IS
  'Internal: carm.explain_access() for carm_admin (any user); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.explain_access_actor(user_id bigint, target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.explain_access(user_id, target, false);
END
$$;
COMMENT ON FUNCTION carm_internal.explain_access_actor(bigint, text) IS
  'Internal: carm.explain_access() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.explain_access(bigint, text) IS
  'Every path that grants or once granted a user access to a BN9/BN15, whether it is in force and why (carm_admin, or a BAM of the target business for its employees)';

CREATE OR REPLACE FUNCTION carm_internal.who_has_access(target text, p_admin boolean)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  v_admin boolean;
  v_now timestamptz := now();
BEGIN
  t := carm_internal.target(target);
  v_admin := carm_internal.require_admin_or_bam(t.business_id, p_admin);
  RETURN QUERY
  WITH rel AS (
    SELECT r.*, pb.bn9 AS provider_bn9
    FROM carm.relationship r JOIN carm.business pb ON pb.id = r.provider_id
    WHERE r.client_id = t.business_id AND r.status = 'active'
      AND (r.expires_at IS NULL OR r.expires_at > v_now)
      AND (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs))
  ),
  -- carm_admin: relationships ended or expired (by time, whether or not the
  -- cascade has run, R9), whose provider BAMs still hold EXPIRED (V4)
  closed AS (
    SELECT r.*, pb.bn9 AS provider_bn9
    FROM carm.relationship r JOIN carm.business pb ON pb.id = r.provider_id
    WHERE v_admin AND r.client_id = t.business_id
      AND (r.status IN ('expired', 'ended') OR (r.status = 'active' AND r.expires_at <= v_now))
      AND (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs))
  ),
  paths AS (
    -- the business's own employees
    SELECT e.user_id AS uid, e.role AS r_role, b.bn9 AS r_via,
           CASE WHEN e.programs IS NULL THEN 'all programs'
                ELSE array_to_string(carm_internal.bn15s(e.programs), ', ') END AS r_scope,
           'employee'::text AS r_path, NULL::timestamptz AS r_exp
    FROM carm.employee e JOIN carm.business b ON b.id = e.business_id
    WHERE e.business_id = t.business_id
      AND (t.program_id IS NULL OR e.programs IS NULL OR t.program_id = ANY (e.programs))
    UNION ALL
    -- active relationships (a client BAM sees these rows, without the provider's people)
    SELECT NULL, r.access_type, r.provider_bn9,
           CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
           'relationship #' || r.id
             || CASE WHEN r.see_client THEN ', sees client submissions' ELSE '' END
             || CASE WHEN r.see_other THEN ', sees other submissions' ELSE '' END,
           r.expires_at
    FROM rel r
    UNION ALL
    -- carm_admin: the provider's people too (the delegation of authority report)
    SELECT e.user_id, CASE r.access_type WHEN 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END,
           r.provider_bn9, CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                                ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
           'provider BAM, relationship #' || r.id, r.expires_at
    FROM rel r JOIN carm.employee e ON e.business_id = r.provider_id AND e.role = 'BAM'
    WHERE v_admin
    UNION ALL
    SELECT a.user_id, a.role, r.provider_bn9,
           CASE WHEN a.programs IS NULL THEN 'all delegated programs'
                ELSE array_to_string(carm_internal.bn15s(a.programs), ', ') END,
           'assignment, relationship #' || r.id, r.expires_at
    FROM rel r JOIN carm.client_assignment a ON a.relationship_id = r.id
    JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = a.user_id AND e.role <> 'BAM'
    WHERE v_admin
      -- R7: an assignment to a listed subset covers only those programs
      AND (t.program_id IS NULL OR a.programs IS NULL OR t.program_id = ANY (a.programs))
    UNION ALL
    SELECT ge.user_id, ge.role, r.provider_bn9, 'all delegated programs',
           'group "' || g.name || '", relationship #' || r.id, r.expires_at
    FROM rel r
    JOIN carm.group_client gc ON gc.provider_id = r.provider_id AND gc.client_id = r.client_id
    JOIN carm.client_group g ON g.id = gc.group_id AND g.deleted_at IS NULL
    JOIN carm.group_employee ge ON ge.group_id = g.id
    JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = ge.user_id AND e.role <> 'BAM'
    WHERE v_admin
      AND NOT EXISTS (SELECT FROM carm.client_assignment a
                      WHERE a.relationship_id = r.id AND a.user_id = ge.user_id)
    UNION ALL
    -- V4: the provider's BAMs hold EXPIRED (read-only, own submissions); they
    -- have access, so "everyone" lists them, as the check decides
    SELECT e.user_id, 'EXPIRED', r.provider_bn9,
           CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
           'provider BAM, relationship #' || r.id
             || CASE WHEN r.status = 'ended' THEN ' (ended)' ELSE ' (expired)' END,
           r.expires_at
    FROM closed r JOIN carm.employee e ON e.business_id = r.provider_id AND e.role = 'BAM'
  )
  SELECT p.uid, u.full_name, p.r_role, p.r_via, p.r_scope, p.r_path, p.r_exp
  FROM paths p LEFT JOIN carm.app_user u ON u.id = p.uid
  WHERE p.uid IS NULL OR u.active
  ORDER BY p.uid NULLS LAST, p.r_via, p.r_path;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.who_has_access(target text)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.who_has_access_admin(target);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.who_has_access_actor(target);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.who_has_access_admin(target text)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.who_has_access(target, true);
END
$$;
COMMENT ON FUNCTION carm_internal.who_has_access_admin(text) IS
  'Internal: carm.who_has_access() for carm_admin (everyone); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.who_has_access_actor(target text)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.who_has_access(target, false);
END
$$;
COMMENT ON FUNCTION carm_internal.who_has_access_actor(text) IS
  'Internal: carm.who_has_access() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.who_has_access(text) IS
  'Who holds access to a BN9/BN15: for a client BAM its employees and active relationships; for carm_admin everyone';

-- §2: the admin variants of the reports are for carm_admin only; the actor
-- variants are for every caller of the API functions (PUBLIC, see 90_privileges).
REVOKE ALL ON FUNCTION carm_internal.explain_access_admin(bigint, text),
  carm_internal.who_has_access_admin(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.explain_access_admin(bigint, text),
  carm_internal.who_has_access_admin(text) TO carm_admin;
