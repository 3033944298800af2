-- §8 reports: which programs the actor may use, who has access to a business,
-- and why a user has (or once had) access to an account.

-- The programs on which the actor holds a permission, as has_access() on
-- their BN15 answers (src/point.c): the programs themselves for a function
-- judged on a program's rows, whole businesses for one judged on
-- business-level rows (business_profile); the other array is empty.
CREATE OR REPLACE FUNCTION carm_internal.accessible_program_ids(permission text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_accessible_program_ids';
CREATE OR REPLACE FUNCTION carm_internal.accessible_business_ids(permission text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_accessible_business_ids';

CREATE OR REPLACE FUNCTION carm.accessible_programs(permission text)
RETURNS TABLE (bn15 text, business text, name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  -- the C functions validate the permission and require an actor, always
  RETURN QUERY
  WITH ids AS MATERIALIZED (SELECT carm_internal.accessible_program_ids(permission) AS programs,
                                   carm_internal.accessible_business_ids(permission) AS businesses)
  SELECT p.bn15, b.bn9, p.name
  FROM ids, carm.program p JOIN carm.business b ON b.id = p.business_id
  WHERE p.id = ANY (ids.programs) OR p.business_id = ANY (ids.businesses)
  ORDER BY p.bn15;
END
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
  IF NOT carm_internal.bam_of(p_business, carm_internal.require_actor()) THEN
    RAISE EXCEPTION 'permission denied: only carm_admin or a business account manager of this business'
      USING ERRCODE = '42501';
  END IF;
  RETURN false;
END
$$;

-- The check's rules for the reports (src/point.c).  The reports read the
-- rows of carm_internal.grants(), the resolver behind the C check, and ask
-- these functions what each row confers: no role, matrix entry or expiry
-- rule is restated in SQL (SPEC §8: the reports and the check never disagree).
CREATE OR REPLACE FUNCTION carm_internal.role_level(role text, function text) RETURNS integer
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_role_level_sql';
COMMENT ON FUNCTION carm_internal.role_level(text, text) IS
  'Internal: the §3.2 matrix, the level (0 none, 1 view, 2 edit, 3 manage) a role holds on a function';

CREATE OR REPLACE FUNCTION carm_internal.effective_role(role text, source text, provider_bam boolean,
                                                        expires_at timestamptz) RETURNS text
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_effective_role_sql';
COMMENT ON FUNCTION carm_internal.effective_role(text, text, boolean, timestamptz) IS
  'Internal (R9): the role a row of carm_internal.grants() confers now: its own, EXPIRED for a provider BAM past expiry, NULL for others';

CREATE OR REPLACE FUNCTION carm_internal.point_permissions(role text, source text, provider_bam boolean,
                                                           expires_at timestamptz, all_programs boolean,
                                                           business_row boolean, program_target boolean)
RETURNS text[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_point_permissions_sql';
COMMENT ON FUNCTION carm_internal.point_permissions(text, text, boolean, timestamptz, boolean, boolean, boolean) IS
  'Internal (§8): the permissions a row of carm_internal.grants() confers on a BN9 or BN15 at the point-check level, as has_access decides';

-- Every path by which a user reaches a business (and, for a BN15 target,
-- that program), from the resolver: the rows of carm_internal.grants() on the
-- business grouped by path (source, role, acting business, relationship,
-- group).  live: the path confers a role now (R9); in_force: live and it
-- reaches the target (a BN9: any row; a BN15: a business-level row, which
-- business_profile is judged on, or a row of the program);
-- permissions: what it grants on the target at the point-check level (§8).
-- V3/V4 paths (SPMGR, EXPIRED) are live and grant no permission: rows only.
CREATE OR REPLACE FUNCTION carm_internal.access_paths(p_user bigint, p_business bigint, p_program bigint)
RETURNS TABLE (source text, role text, granted_role text, live boolean, in_force boolean,
               provider_bam boolean, via_business_id bigint, relationship_id bigint, group_id bigint,
               all_programs boolean, program_ids bigint[], reaches_target boolean,
               permissions text[], expires_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  WITH g AS (
    SELECT g.*,
           carm_internal.effective_role(g.role, g.source, g.provider_bam, g.expires_at) AS eff,
           CASE WHEN g.program_id IS NULL OR g.program_id = p_program
                THEN carm_internal.point_permissions(g.role, g.source, g.provider_bam, g.expires_at,
                                                     g.all_programs, g.program_id IS NULL,
                                                     p_program IS NOT NULL)
                ELSE '{}'::text[] END AS perms
    FROM carm_internal.grants(p_user) g
    WHERE g.business_id = p_business
  ),
  p AS (
    SELECT g.source, g.role, g.provider_bam, g.via_business_id, g.relationship_id, g.group_id, g.expires_at,
           min(g.eff) AS eff,
           p_program IS NULL OR bool_or(g.program_id IS NULL)
             OR coalesce(bool_or(g.program_id = p_program), false) AS reaches,
           bool_or(g.program_id IS NULL AND g.all_programs) AS all_programs,
           coalesce(array_agg(g.program_id ORDER BY g.program_id) FILTER (WHERE g.program_id IS NOT NULL),
                    '{}') AS program_ids,
           string_agg(array_to_string(g.perms, ','), ',') AS perms
    FROM g
    GROUP BY g.source, g.role, g.provider_bam, g.via_business_id, g.relationship_id, g.group_id, g.expires_at
  )
  SELECT p.source, coalesce(p.eff, p.role), p.role, p.eff IS NOT NULL, p.eff IS NOT NULL AND p.reaches,
         p.provider_bam, p.via_business_id, p.relationship_id, p.group_id, p.all_programs, p.program_ids,
         p.reaches,
         ARRAY(SELECT DISTINCT x FROM unnest(string_to_array(p.perms, ',')) x WHERE x <> '' ORDER BY x),
         p.expires_at
  FROM p
$$;
COMMENT ON FUNCTION carm_internal.access_paths(bigint, bigint, bigint) IS
  'Internal (§8): the resolver''s paths of a user to a business or program, with what each grants there';

-- How the reports name a path and its scope.
CREATE OR REPLACE FUNCTION carm_internal.path_label(p_source text, p_role text, p_provider_bam boolean,
                                                    p_relationship bigint, p_group bigint) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_source = 'employee' THEN 'employee'
              WHEN p_group IS NOT NULL
                THEN format('group "%s" on relationship #%s',
                            (SELECT g.name FROM carm.client_group g WHERE g.id = p_group), p_relationship)
              WHEN p_provider_bam OR p_role = 'SPMGR'
                THEN format('relationship #%s (%s)', p_relationship,
                            (SELECT r.access_type FROM carm.relationship r WHERE r.id = p_relationship))
              ELSE format('assignment on relationship #%s', p_relationship) END;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.path_scope(p_user bigint, p_source text, p_role text,
                                                    p_provider_bam boolean, p_relationship bigint,
                                                    p_group bigint, p_all_programs boolean,
                                                    p_programs bigint[]) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_all_programs THEN 'all programs'
              WHEN p_group IS NOT NULL THEN 'all delegated programs'
              WHEN p_source <> 'employee' AND NOT p_provider_bam AND p_role <> 'SPMGR'
                   AND EXISTS (SELECT FROM carm.client_assignment ca
                               WHERE ca.relationship_id = p_relationship AND ca.user_id = p_user
                                 AND ca.programs IS NULL)
                THEN 'all delegated programs'
              WHEN p_source <> 'employee'
                   AND (SELECT r.access_type FROM carm.relationship r WHERE r.id = p_relationship) = 'BUSINESS'
                   AND (p_provider_bam OR p_role = 'SPMGR')
                THEN 'all programs'
              WHEN cardinality(p_programs) = 0 THEN 'no program account'
              ELSE array_to_string(carm_internal.bn15s(p_programs), ', ') END;
END
$$;

-- A list of BN15s recorded in an audit event's details, as text (NULL when
-- the event recorded none: all programs).
CREATE OR REPLACE FUNCTION carm_internal.audit_scope(p_programs jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN jsonb_typeof(p_programs) = 'array'
              THEN array_to_string(ARRAY(SELECT jsonb_array_elements_text(p_programs)), ', ') END;
$$;

-- May the caller explain this user's access to this business?  carm_admin;
-- or a BAM of the business, for the users who reach it or once did: its
-- employees, the employees of its service providers (a relationship active,
-- expired or ended), and whoever the audit trail names about the business.
-- 42501 otherwise, before the user is looked up (§10).
CREATE OR REPLACE FUNCTION carm_internal.require_explainer(p_user bigint, p_business bigint, p_admin boolean)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.require_admin_or_bam(p_business, p_admin) THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT FROM carm.employee e WHERE e.business_id = p_business AND e.user_id = p_user)
     OR EXISTS (SELECT FROM carm.relationship r
                JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = p_user
                WHERE r.client_id = p_business AND r.status IN ('active', 'expired', 'ended'))
     OR EXISTS (SELECT FROM carm.audit_event a
                WHERE a.target_user_id = p_user
                  AND (a.business_id = p_business OR a.other_business_id = p_business)) THEN
    RETURN;
  END IF;
  RAISE EXCEPTION 'permission denied: user % has no path to this business', p_user
    USING ERRCODE = '42501',
          HINT = 'A business account manager explains the access of its employees and of its service providers'' employees.';
END
$$;

-- explain_access's rows for a user on a business (and program): (1) every
-- path of the resolver, in force or not and why; (2) delegation facts that
-- confer nothing (deactivated user, superseded or overridden assignments);
-- (3) from the audit trail, paths since removed, revoked or ended, with when
-- and by whom.  No authorisation here: the callers check it.
CREATE OR REPLACE FUNCTION carm_internal.explain_paths(p_user bigint, p_business bigint, p_program bigint)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text,
               permissions text[], since timestamptz, granted_by bigint,
               ended_at timestamptz, ended_by bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
-- PL/pgSQL, not SQL: the session keeps the plan of this statement
RETURN QUERY
WITH a AS MATERIALIZED (
  SELECT * FROM carm_internal.access_paths(p_user, p_business, p_program)
),
-- (1) the resolver's paths
resolved AS (
  SELECT carm_internal.path_label(a.source, a.granted_role, a.provider_bam, a.relationship_id, a.group_id) AS path,
         a.role, vb.bn9 AS via,
         carm_internal.path_scope(p_user, a.source, a.granted_role, a.provider_bam, a.relationship_id, a.group_id,
                                  a.all_programs, a.program_ids) AS scope,
         a.in_force,
         CASE WHEN NOT a.live THEN format('relationship expired at %s (R9)', a.expires_at)
              WHEN NOT a.reaches_target AND a.group_id IS NULL AND NOT a.provider_bam
                   AND a.granted_role <> 'SPMGR'
                THEN 'program not in the assignment (R7)'
              WHEN NOT a.reaches_target THEN 'program not delegated by the relationship (R5)'
              WHEN a.role = 'EXPIRED'
                THEN format('relationship %s at %s: read-only, own submissions (V4)',
                            CASE WHEN r.status = 'ended' THEN 'ended' ELSE 'expired' END,
                            coalesce(r.closed_at, r.expires_at))
              WHEN a.source = 'employee' THEN 'employee of the business (V1)'
              WHEN a.role = 'SPMGR'
                THEN 'program account manager of the service provider: reads its submissions (V3)'
              WHEN a.provider_bam THEN 'business account manager of the service provider (R6)'
              WHEN a.group_id IS NOT NULL THEN 'employee of the client group (G4)'
              ELSE 'assigned by the service provider (R7)' END
         || CASE WHEN NOT a.live OR NOT a.reaches_target THEN ''
                 WHEN a.source = 'employee' AND p_program IS NOT NULL AND NOT p_program = ANY (a.program_ids)
                   THEN '; program not in the employee''s scope (E5): business profile only'
                 WHEN p_program IS NULL AND cardinality(a.permissions) = 0 AND a.role NOT IN ('EXPIRED', 'SPMGR')
                   THEN '; on its program accounts only, nothing on the business account itself (§3)'
                 ELSE '' END AS reason,
         a.permissions,
         CASE WHEN a.source = 'employee' THEN e.granted_at
              WHEN a.group_id IS NOT NULL THEN ge.assigned_at
              WHEN a.provider_bam OR a.granted_role = 'SPMGR' THEN r.decided_at
              ELSE ca.assigned_at END AS since,
         CASE WHEN a.source = 'employee' THEN e.granted_by
              WHEN a.group_id IS NOT NULL THEN NULL
              WHEN a.provider_bam OR a.granted_role = 'SPMGR' THEN r.decided_by
              ELSE ca.assigned_by END AS granted_by,
         CASE WHEN a.role = 'EXPIRED' THEN coalesce(r.closed_at, r.expires_at)
              WHEN NOT a.live THEN a.expires_at END AS ended_at,
         CASE WHEN a.role = 'EXPIRED' OR NOT a.live
              THEN (SELECT ev.actor_id FROM carm.audit_event ev
                    WHERE ev.relationship_id = a.relationship_id
                      AND ev.event IN ('relationship_ended', 'relationship_expired')
                    ORDER BY ev.id DESC LIMIT 1) END AS ended_by
  FROM a
  JOIN carm.business vb ON vb.id = a.via_business_id
  LEFT JOIN carm.relationship r ON r.id = a.relationship_id
  LEFT JOIN carm.employee e ON a.source = 'employee' AND e.business_id = p_business AND e.user_id = p_user
  LEFT JOIN carm.client_assignment ca ON ca.relationship_id = a.relationship_id AND ca.user_id = p_user
                                     AND a.group_id IS NULL
  LEFT JOIN carm.group_employee ge ON ge.group_id = a.group_id AND ge.user_id = p_user
),
-- (2) facts recorded for the user that the resolver derives nothing from
facts AS (
  SELECT 'employee' AS kind, e.role, e.business_id AS via_id, NULL::bigint AS rel, NULL::bigint AS grp,
         CASE WHEN e.programs IS NULL THEN 'all programs'
              ELSE array_to_string(carm_internal.bn15s(e.programs), ', ') END AS scope,
         e.granted_at AS since, e.granted_by AS by_user
  FROM carm.employee e WHERE e.user_id = p_user AND e.business_id = p_business
  UNION ALL
  SELECT 'assignment', x.role, r.provider_id, r.id, NULL,
         CASE WHEN x.programs IS NULL THEN 'all delegated programs'
              ELSE array_to_string(carm_internal.bn15s(x.programs), ', ') END,
         x.assigned_at, x.assigned_by
  FROM carm.client_assignment x JOIN carm.relationship r ON r.id = x.relationship_id
  WHERE x.user_id = p_user AND r.client_id = p_business
  UNION ALL
  SELECT 'group', ge.role, g.provider_id, r.id, g.id, 'all delegated programs', ge.assigned_at, NULL
  FROM carm.group_employee ge
  JOIN carm.client_group g ON g.id = ge.group_id AND g.deleted_at IS NULL
  JOIN carm.group_client gc ON gc.group_id = g.id AND gc.client_id = p_business
  JOIN carm.relationship r ON r.provider_id = g.provider_id AND r.client_id = p_business AND r.status = 'active'
  WHERE ge.user_id = p_user
),
dormant AS (
  SELECT CASE f.kind WHEN 'employee' THEN 'employee'
                     WHEN 'group' THEN format('group "%s" on relationship #%s',
                                              (SELECT g.name FROM carm.client_group g WHERE g.id = f.grp), f.rel)
                     ELSE format('assignment on relationship #%s', f.rel) END AS path,
         f.role, vb.bn9 AS via, f.scope, false AS in_force,
         CASE WHEN NOT u.active THEN 'user is deactivated (§2)'
              WHEN f.kind <> 'employee'
                   AND EXISTS (SELECT FROM carm.employee pe
                               WHERE pe.business_id = f.via_id AND pe.user_id = p_user AND pe.role = 'BAM')
                THEN 'superseded: the user is a business account manager of the service provider (R6)'
              WHEN f.kind = 'group'
                   AND EXISTS (SELECT FROM carm.client_assignment x
                               WHERE x.relationship_id = f.rel AND x.user_id = p_user)
                THEN 'overridden by an individual assignment (G5)'
              WHEN f.kind <> 'employee'
                   AND NOT EXISTS (SELECT FROM carm.employee pe
                                   WHERE pe.business_id = f.via_id AND pe.user_id = p_user)
                THEN 'the user is no employee of the service provider'
              ELSE 'confers no role on this business' END AS reason,
         '{}'::text[] AS permissions, f.since, f.by_user AS granted_by,
         NULL::timestamptz AS ended_at, NULL::bigint AS ended_by
  FROM facts f
  JOIN carm.business vb ON vb.id = f.via_id
  JOIN carm.app_user u ON u.id = p_user
  WHERE NOT EXISTS (SELECT FROM a
                    WHERE CASE f.kind
                            WHEN 'employee' THEN a.source = 'employee'
                            WHEN 'group' THEN a.group_id = f.grp AND a.relationship_id = f.rel
                            ELSE a.relationship_id = f.rel AND a.group_id IS NULL AND NOT a.provider_bam
                                 AND a.granted_role = f.role END)
),
-- (3) history: the audit trail of paths removed, revoked or ended (§9)
ev AS (
  SELECT ev.*
  FROM carm.audit_event ev
  WHERE (ev.business_id = p_business OR ev.other_business_id = p_business)
     OR (ev.target_user_id = p_user
         AND ev.event IN ('group_employee_unassigned', 'employee_removed', 'employee_access_changed'))
),
-- service providers with a relationship to the business, and since when
providers AS (
  SELECT r.provider_id, min(r.decided_at) AS since
  FROM carm.relationship r
  WHERE r.client_id = p_business AND r.status IN ('active', 'expired', 'ended')
  GROUP BY r.provider_id
),
history AS (
  -- E8, E7: removed from the business, or its role changed
  SELECT 'employee' AS path,
         CASE ev.event WHEN 'employee_removed' THEN ev.details->>'role'
                       ELSE ev.details->'before'->>'role' END AS role,
         b.bn9 AS via,
         coalesce(carm_internal.audit_scope(CASE ev.event WHEN 'employee_removed' THEN ev.details->'programs'
                                                          ELSE ev.details->'before'->'programs' END),
                  'all programs') AS scope,
         CASE ev.event WHEN 'employee_removed' THEN 'removed from the business (E8)'
              ELSE format('role changed to %s on %s (E7)', ev.details->'after'->>'role',
                          coalesce(carm_internal.audit_scope(ev.details->'after'->'programs'), 'all programs'))
         END AS reason,
         ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.business_id = p_business AND ev.target_user_id = p_user
    AND ev.event IN ('employee_removed', 'employee_access_changed')
  UNION ALL
  -- R7: an individual assignment revoked
  SELECT format('assignment on relationship #%s', ev.relationship_id), ev.details->'before'->>'role', b.bn9,
         coalesce(carm_internal.audit_scope(ev.details->'before'->'programs'), 'all delegated programs'),
         'revoked by the service provider (R7)', ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.other_business_id = p_business AND ev.target_user_id = p_user AND ev.event = 'client_access_revoked'
  UNION ALL
  -- R9: assignments deleted when the relationship ended or expired
  SELECT format('assignment on relationship #%s', ev.relationship_id), x->>'role', b.bn9, 'all delegated programs',
         format('relationship %s (R9)', substr(ev.event, 14)), ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(ev.details->'assignments_removed') = 'array'
                                               THEN ev.details->'assignments_removed' ELSE '[]' END) x
  WHERE ev.other_business_id = p_business AND ev.event IN ('relationship_ended', 'relationship_expired')
    AND (x->>'user_id')::bigint = p_user
  UNION ALL
  -- G7: assignments revoked when the client left a group
  SELECT format('assignment (client removed from group "%s")', ev.details->>'group'), x->>'role', b.bn9,
         'all delegated programs', 'revoked when the client left the client group (G7)', ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(ev.details->'revoked_assignments') = 'array'
                                               THEN ev.details->'revoked_assignments' ELSE '[]' END) x
  WHERE ev.other_business_id = p_business AND ev.event = 'group_client_removed'
    AND (x->>'user_id')::bigint = p_user
  UNION ALL
  -- G7, R9: the client left a group the user is or was an employee of
  SELECT format('group "%s"', g.name), m.role, b.bn9, 'all delegated programs',
         CASE ev.event WHEN 'group_client_removed' THEN 'client removed from the client group (G7)'
                       ELSE format('relationship %s: the client left the client group (R9)', substr(ev.event, 14)) END,
         ev.at, ev.actor_id
  FROM ev
  JOIN carm.client_group g ON g.id = ev.group_id
  JOIN carm.business b ON b.id = ev.business_id
  CROSS JOIN LATERAL (
    SELECT coalesce((SELECT ge.role FROM carm.group_employee ge
                     WHERE ge.group_id = g.id AND ge.user_id = p_user AND ge.assigned_at <= ev.at),
                    (SELECT ea.details->>'after' FROM carm.audit_event ea
                     WHERE ea.event = 'group_employee_assigned' AND ea.group_id = g.id
                       AND ea.target_user_id = p_user AND ea.id < ev.id
                     ORDER BY ea.id DESC LIMIT 1)) AS role) m
  WHERE ev.other_business_id = p_business
    AND ev.event IN ('group_client_removed', 'relationship_ended', 'relationship_expired')
    AND m.role IS NOT NULL
  UNION ALL
  -- G4, G8: the user left a group that held the client
  SELECT format('group "%s"', g.name), ev.details->>'before', b.bn9, 'all delegated programs',
         CASE WHEN ev.details->>'reason' = 'group deleted' THEN 'client group deleted (G8)'
              ELSE 'unassigned from the client group (G4)' END,
         ev.at, ev.actor_id
  FROM ev
  JOIN carm.client_group g ON g.id = ev.group_id
  JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.event = 'group_employee_unassigned' AND ev.target_user_id = p_user
    AND (EXISTS (SELECT FROM carm.group_client gc
                 WHERE gc.group_id = g.id AND gc.client_id = p_business AND gc.added_at <= ev.at)
         OR EXISTS (SELECT FROM carm.audit_event ea
                    WHERE ea.event = 'group_client_added' AND ea.group_id = g.id
                      AND ea.other_business_id = p_business AND ea.id < ev.id))
  UNION ALL
  -- E8, R6, V3: removed from a service provider of the business, or no longer its BAM or PAM
  SELECT format('employee of service provider %s', b.bn9),
         CASE ev.event WHEN 'employee_removed' THEN ev.details->>'role'
                       ELSE ev.details->'before'->>'role' END,
         b.bn9, 'every client program it reached',
         CASE ev.event WHEN 'employee_removed'
                THEN 'removed from the service provider (E8): every path through it ended'
              ELSE format('role at the service provider changed from %s to %s (R6, V3)',
                          ev.details->'before'->>'role', ev.details->'after'->>'role') END,
         ev.at, ev.actor_id
  FROM ev
  JOIN providers pv ON pv.provider_id = ev.business_id AND pv.since <= ev.at
  JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.target_user_id = p_user
    AND (ev.event = 'employee_removed'
         OR (ev.event = 'employee_access_changed'
             AND ev.details->'before'->>'role' IN ('BAM', 'PAM')
             AND ev.details->'before'->>'role' IS DISTINCT FROM ev.details->'after'->>'role'))
)
SELECT * FROM (
  SELECT r.path, r.role, r.via, r.scope, r.in_force, r.reason, r.permissions, r.since, r.granted_by,
         r.ended_at, r.ended_by
  FROM resolved r
  UNION ALL
  SELECT d.path, d.role, d.via, d.scope, d.in_force, d.reason, d.permissions, d.since, d.granted_by,
         d.ended_at, d.ended_by
  FROM dormant d
  UNION ALL
  SELECT h.path, h.role, h.via, h.scope, false, h.reason, '{}'::text[], NULL::timestamptz, NULL::bigint,
         h.at, h.actor_id
  FROM history h
) x
ORDER BY x.in_force DESC, x.ended_at IS NOT NULL, x.path, x.role, x.ended_at;
END
$$;
COMMENT ON FUNCTION carm_internal.explain_paths(bigint, bigint, bigint) IS
  'Internal (§8): explain_access''s rows: the resolver''s paths, facts that confer nothing, and the audit history';

CREATE OR REPLACE FUNCTION carm_internal.explain_access(user_id bigint, target text, p_admin boolean)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text,
               permissions text[], since timestamptz, granted_by bigint,
               ended_at timestamptz, ended_by bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  u carm.app_user;
BEGIN
  t := carm_internal.target(target);
  -- Authorise before looking the user up: a refused caller must not learn
  -- whether a user id exists (P0002) where it is simply not allowed (42501).
  PERFORM carm_internal.require_explainer(explain_access.user_id, t.business_id, p_admin);
  u := carm_internal.user_row(explain_access.user_id);
  RETURN QUERY SELECT * FROM carm_internal.explain_paths(u.id, t.business_id, t.program_id);
END
$$;

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'explain_access',
  params => 'user_id bigint, target text',
  api_params => 'user_id bigint, target text',
  args => 'user_id, target',
  returns => 'TABLE (path text, role text, via text, scope text, in_force boolean, reason text, permissions text[], since timestamptz, granted_by bigint, ended_at timestamptz, ended_by bigint)',
  admin_comment => 'Internal: carm.explain_access() for carm_admin (any user); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.explain_access() for the acting user, without admin powers');
COMMENT ON FUNCTION carm.explain_access(bigint, text) IS
  'Every path that grants or once granted a user access to a BN9/BN15: in force or not and why, the permissions it grants there (as user_has_access decides), and from the audit trail when and by whom paths ended (carm_admin, or a BAM of the target business for its employees and its providers'' employees)';

-- §8 self-service: the actor's own paths, as explain_access shows them.
CREATE OR REPLACE FUNCTION carm.my_access(target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text,
               permissions text[], since timestamptz, granted_by bigint,
               ended_at timestamptz, ended_by bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  t record;
BEGIN
  t := carm_internal.target(target);
  RETURN QUERY SELECT * FROM carm_internal.explain_paths(v_actor, t.business_id, t.program_id);
END
$$;
COMMENT ON FUNCTION carm.my_access(text) IS
  'The acting user''s own paths to a BN9/BN15, as explain_access shows them: why can or can''t I (an active actor)';

-- who_has_access: one row shape.  kind says what a row is:
--   employee      the business's own employee (V1), with what it grants here
--   proxy         a service provider's person through an active relationship
--                 (R6, R7, G4), with what it grants here
--   row-only      V3/V4: a provider's PAM (SPMGR) or a BAM after expiry or end
--                 (EXPIRED), who reaches only rows the provider submitted
--   program       (on a BN9) a path to some program accounts of the business
--                 that grants nothing on the business account itself
--   relationship  an active relationship itself (user_id NULL)
-- The users of employee and proxy rows are exactly those for whom
-- user_has_access answers true for some permission on the target, and their
-- permissions are exactly those (test/pgtap/reports_property.sql).
CREATE OR REPLACE FUNCTION carm_internal.who_has_access(target text, p_admin boolean)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz, kind text, permissions text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  v_admin boolean;
BEGIN
  t := carm_internal.target(target);
  v_admin := carm_internal.require_admin_or_bam(t.business_id, p_admin);
  RETURN QUERY
  WITH cand AS (   -- who may have a path: the resolver decides
    SELECT e.user_id AS uid FROM carm.employee e WHERE e.business_id = t.business_id
    UNION
    SELECT e.user_id FROM carm.relationship r JOIN carm.employee e ON e.business_id = r.provider_id
    WHERE v_admin AND r.client_id = t.business_id AND r.status IN ('active', 'expired', 'ended')
  ),
  x AS (
    SELECT c.uid, a.*
    FROM cand c CROSS JOIN LATERAL carm_internal.access_paths(c.uid, t.business_id, t.program_id) a
    WHERE a.in_force
      AND (v_admin OR a.source = 'employee')   -- a client BAM: its own employees
  )
  SELECT * FROM (
    SELECT x.uid, u.full_name, x.role, vb.bn9,
           carm_internal.path_scope(x.uid, x.source, x.granted_role, x.provider_bam, x.relationship_id,
                                    x.group_id, x.all_programs, x.program_ids),
           carm_internal.path_label(x.source, x.granted_role, x.provider_bam, x.relationship_id, x.group_id),
           x.expires_at,
           CASE WHEN x.source = 'employee' THEN 'employee'
                WHEN x.role IN ('EXPIRED', 'SPMGR') THEN 'row-only'
                WHEN cardinality(x.permissions) = 0 THEN 'program'
                ELSE 'proxy' END,
           x.permissions
    FROM x JOIN carm.app_user u ON u.id = x.uid JOIN carm.business vb ON vb.id = x.via_business_id
    UNION ALL
    -- the active relationships themselves (not expired by time, R9)
    SELECT NULL::bigint, NULL::text, r.access_type, pb.bn9,
           CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
           'relationship #' || r.id
             || CASE WHEN r.see_client THEN ', sees client submissions' ELSE '' END
             || CASE WHEN r.see_other THEN ', sees other submissions' ELSE '' END,
           r.expires_at, 'relationship'::text, NULL::text[]
    FROM carm.relationship r JOIN carm.business pb ON pb.id = r.provider_id
    WHERE r.client_id = t.business_id
      AND carm_internal.relationship_in_force(r.status, r.expires_at, statement_timestamp())
      AND (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs))
  ) w (w_uid, w_name, w_role, w_via, w_scope, w_path, w_exp, w_kind, w_perms)
  ORDER BY w.w_uid NULLS LAST, w.w_via, w.w_path, w.w_role;
END
$$;

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'who_has_access',
  params => 'target text',
  api_params => 'target text',
  args => 'target',
  returns => 'TABLE (user_id bigint, full_name text, role text, via text, scope text, path text, expires_at timestamptz, kind text, permissions text[])',
  admin_comment => 'Internal: carm.who_has_access() for carm_admin (everyone); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.who_has_access() for the acting user, without admin powers');
COMMENT ON FUNCTION carm.who_has_access(text) IS
  'Who holds access to a BN9/BN15, one row shape with a kind (employee, proxy, row-only, program, relationship) and the permissions each path grants there: for a client BAM its employees and active relationships; for carm_admin everyone';

-- §2: the admin variants of the reports are for carm_admin only; the actor
-- variants are for every caller of the API functions (PUBLIC, see 90_privileges).
REVOKE ALL ON FUNCTION carm_internal.explain_access_admin(bigint, text),
  carm_internal.who_has_access_admin(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.explain_access_admin(bigint, text),
  carm_internal.who_has_access_admin(text) TO carm_admin;

COMMENT ON FUNCTION carm_internal.path_label(text, text, boolean, bigint, bigint) IS
  'Internal (§8): how the reports name a path (employee role, relationship, assignment or group)';
COMMENT ON FUNCTION carm_internal.path_scope(bigint, text, text, boolean, bigint, bigint, boolean, bigint[]) IS
  'Internal (§8): the scope of a path as the reports show it (all programs, or the BN15s it covers)';
COMMENT ON FUNCTION carm_internal.audit_scope(jsonb) IS
  'Internal (§8): the BN15s recorded in an audit event''s details, as text (NULL: all programs)';
COMMENT ON FUNCTION carm_internal.require_explainer(bigint, bigint, boolean) IS
  'Internal (§8, §10): carm_admin, or a BAM of the business for the users who reach it or once did; 42501 otherwise';
