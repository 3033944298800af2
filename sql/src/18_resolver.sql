-- The resolver (SPEC §3, §5, §7): every path by which a user holds a role on a
-- business or program account.  One row per (path, program); rows with a NULL
-- program_id are business-level (the role held at all-programs scope, or any
-- employee association for business_profile.view).
--
-- Derived roles are computed here, never stored:
--   R6  a provider BAM is PBAM (BUSINESS) or PPAM (PROGRAM) on the delegated programs;
--   R7  individual assignments, on delegated programs (NULL follows the relationship);
--   G4  group default roles, G5 overridden by an individual assignment;
--   V3  provider PAMs read what the provider submitted (role SPMGR);
--   V4  provider BAMs keep EXPIRED after the relationship expired or ended.
-- Time-based expiry (R9) is NOT decided here: rows carry expires_at and the C
-- check compares it with the time of the statement, so a cached result stays exact.
--
-- A single SQL statement, not SECURITY DEFINER and without SET clauses, so the
-- planner inlines it and the C cache keeps one prepared plan for it.
CREATE OR REPLACE FUNCTION carm_internal.grants(p_user bigint)
RETURNS TABLE (business_id bigint, program_id bigint, role text, source text,
               provider_bam boolean, via_business_id bigint,
               see_client boolean, see_other boolean, all_programs boolean,
               expires_at timestamptz, relationship_id bigint, group_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
-- emp is materialized: a user's few employee rows, read once for the five
-- branches that use them.  Inlined, each use planned its own join of
-- employee and app_user, and starting the executor for the plan of a point
-- check (one business) cost 21 % more instructions (callgrind).  The other
-- CTEs stay inlined: materializing them would compute a broker's whole reach
-- for a point check.
WITH emp AS MATERIALIZED (
  SELECT e.business_id, e.role, e.programs
  FROM carm.employee e
  JOIN carm.app_user u ON u.id = e.user_id AND u.active          -- deactivated: nothing (§2)
  WHERE e.user_id = p_user
),
-- relationships of the providers I am a BAM or PAM of
managed AS NOT MATERIALIZED (
  SELECT r.*, e.role AS my_role
  FROM emp e
  JOIN carm.relationship r ON r.provider_id = e.business_id
  WHERE e.role IN ('BAM','PAM') AND r.status IN ('active','expired','ended')
),
-- proxy roles of a non-BAM provider employee: individual assignments (R7) and
-- group defaults (G4) not overridden by an individual assignment (G5)
assigned AS NOT MATERIALIZED (
  SELECT a.relationship_id, a.role, a.programs, NULL::bigint AS group_id
  FROM carm.client_assignment a
  WHERE a.user_id = p_user
  UNION ALL
  SELECT r.id, ge.role, NULL::bigint[], g.id
  FROM carm.group_employee ge
  JOIN carm.client_group g ON g.id = ge.group_id AND g.deleted_at IS NULL
  JOIN carm.group_client gc ON gc.group_id = g.id
  JOIN carm.relationship r ON r.provider_id = gc.provider_id AND r.client_id = gc.client_id
                          AND r.status = 'active'
  WHERE ge.user_id = p_user
    AND NOT EXISTS (SELECT 1 FROM carm.client_assignment a
                    WHERE a.relationship_id = r.id AND a.user_id = p_user)
)
-- V1: employee roles, business level
SELECT e.business_id, NULL::bigint, e.role, 'employee', false, e.business_id,
       true, true, e.programs IS NULL, NULL::timestamptz, NULL::bigint, NULL::bigint
FROM emp e
UNION ALL
-- V1: employee roles on the programs in scope (E5, E12)
SELECT e.business_id, p.id, e.role, 'employee', false, e.business_id,
       true, true, e.programs IS NULL, NULL, NULL, NULL
FROM emp e
JOIN carm.program p ON p.business_id = e.business_id
WHERE e.programs IS NULL OR p.id = ANY (e.programs)
UNION ALL
-- R6: PBAM at business level for BUSINESS relationships
SELECT m.client_id, NULL, 'PBAM', 'proxy', true, m.provider_id,
       m.see_client, m.see_other, true, m.expires_at, m.id, NULL
FROM managed m
WHERE m.my_role = 'BAM' AND m.status = 'active' AND m.access_type = 'BUSINESS'
UNION ALL
-- R6 / V3 / V4 per delegated program
SELECT m.client_id, p.id,
       CASE WHEN m.status <> 'active' THEN 'EXPIRED'
            WHEN m.my_role = 'PAM' THEN 'SPMGR'
            WHEN m.access_type = 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END,
       CASE WHEN m.status = 'active' THEN 'proxy' ELSE 'closed' END,
       m.my_role = 'BAM', m.provider_id,
       m.see_client, m.see_other, false, m.expires_at, m.id, NULL
FROM managed m
JOIN carm.program p ON p.business_id = m.client_id
                   AND (m.access_type = 'BUSINESS' OR p.id = ANY (m.programs))
WHERE m.status = 'active' OR m.my_role = 'BAM'
UNION ALL
-- R7 / G4 / G5: assigned proxy roles of provider employees who are not BAMs
SELECT r.client_id, p.id, x.role, 'proxy', false, r.provider_id,
       r.see_client, r.see_other, false, r.expires_at, r.id, x.group_id
FROM assigned x
JOIN carm.relationship r ON r.id = x.relationship_id AND r.status = 'active'
JOIN emp e ON e.business_id = r.provider_id AND e.role <> 'BAM'
JOIN carm.program p ON p.business_id = r.client_id
                   AND (r.access_type = 'BUSINESS' OR p.id = ANY (r.programs))
WHERE x.programs IS NULL OR p.id = ANY (x.programs)
$$;
COMMENT ON FUNCTION carm_internal.grants(bigint) IS
  'Internal: every path by which a user holds a role (the resolver behind the C check)';
