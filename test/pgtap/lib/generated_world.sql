-- The generated world of the property tests (included with \ir by
-- test/pgtap/reports_property.sql and visibility_property.sql, inside their
-- transaction, after CREATE EXTENSION).
-- 40 businesses (8 service providers), 1-3 programs each, 400 users with
-- employees at both scopes and in two businesses, BUSINESS and PROGRAM
-- relationships (active, expiring, expired by time without maintenance,
-- expired, ended, re-established after an end), assignments (subsets,
-- superseded by R6), client groups with G5 overrides and a deleted group,
-- deactivated users.  Facts are inserted set-based by the owner with
-- session_replication_role = replica (as bench/generate.sql does); one real
-- statement through the triggers then invalidates every cached decision.
-- Leaves temp tables biz (id, bn9, n), prog (business_id, first_id,
-- last_id, ids), usr (id, n) and rel_plan (provider_id, client_id, j).

-- BN9 with its Luhn check digit
CREATE FUNCTION pg_temp.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;

-- The generated world ----------------------------------------------------------
SET LOCAL session_replication_role = replica;
-- businesses 1..8 are service providers; business b has 1 + b % 3 programs
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT pg_temp.bn9(1000 + b), 'Business ' || b,
       CASE WHEN b <= 8 THEN '{CUSTOMS_BROKER}'::text[] ELSE '{IMPORTER}' END
FROM generate_series(1, 40) b ORDER BY b;
CREATE TEMP TABLE biz AS SELECT b.id, b.bn9, row_number() OVER (ORDER BY b.id) AS n FROM carm.business b;
INSERT INTO carm.program (business_id, bn15)
SELECT z.id, z.bn9 || 'RM000' || k FROM biz z CROSS JOIN LATERAL generate_series(1, 1 + z.n % 3) k
ORDER BY z.id, k;
CREATE TEMP TABLE prog AS
SELECT p.business_id, min(p.id) AS first_id, max(p.id) AS last_id, array_agg(p.id ORDER BY p.id) AS ids
FROM carm.program p GROUP BY p.business_id;
-- 400 users; every 23rd is deactivated (§2); 361..400 have no business (E13)
INSERT INTO carm.app_user (external_id, full_name, active)
SELECT 'user' || u, 'User ' || u, u % 23 <> 0 FROM generate_series(1, 400) u ORDER BY u;
CREATE TEMP TABLE usr AS SELECT u.id, row_number() OVER (ORDER BY u.id) AS n FROM carm.app_user u;
-- employees: user n is the BAM of business n (1..40); users 41..360 join
-- business 1 + n*7 % 40 with a role and a scope by n % 6; users 300..360
-- also join a second business, as VIEWER of all programs
INSERT INTO carm.employee (business_id, user_id, role, programs)
SELECT z.id, u.id, 'BAM', NULL FROM usr u JOIN biz z ON z.n = u.n
UNION ALL
SELECT z.id, u.id,
       CASE WHEN u.n % 29 = 0 THEN 'BAM' ELSE (ARRAY['PAM','EDITOR','VIEWER','EDITOR','PAM','VIEWER'])[1 + u.n % 6] END,
       CASE WHEN u.n % 29 = 0 THEN NULL
            WHEN u.n % 6 IN (0, 3) THEN ARRAY[p.first_id]
            WHEN u.n % 6 = 2 THEN ARRAY[p.last_id] END
FROM usr u JOIN biz z ON z.n = 1 + (u.n * 7) % 40 JOIN prog p ON p.business_id = z.id
WHERE u.n BETWEEN 41 AND 360
UNION ALL
SELECT z.id, u.id, 'VIEWER', NULL
FROM usr u JOIN biz z ON z.n = 1 + (u.n * 11) % 40
WHERE u.n BETWEEN 300 AND 360 AND (u.n * 11) % 40 <> (u.n * 7) % 40;
-- relationships: provider p, client c when (p + c) % 4 = 0
CREATE TEMP TABLE rel_plan AS
SELECT pz.id AS provider_id, cz.id AS client_id, row_number() OVER (ORDER BY pz.n, cz.n) AS j
FROM biz pz JOIN biz cz ON cz.n > 8 AND (pz.n + cz.n) % 4 = 0
WHERE pz.n <= 8;
-- R10: an older ended relationship under some of them
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs, comment,
                               decided_at, closed_at)
SELECT r.provider_id, r.client_id, 'ended', 'BUSINESS', NULL, 'earlier', now() - interval '90 days',
       now() - interval '60 days'
FROM rel_plan r WHERE r.j % 7 = 4;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs, see_client, see_other,
                               expires_at, comment, decided_at, closed_at)
SELECT r.provider_id, r.client_id,
       CASE r.j % 7 WHEN 0 THEN 'ended' WHEN 1 THEN 'expired' ELSE 'active' END,
       CASE WHEN r.j % 3 = 0 THEN 'PROGRAM' ELSE 'BUSINESS' END,
       CASE WHEN r.j % 3 = 0 THEN ARRAY[p.first_id] END,
       CASE WHEN r.j % 7 IN (0, 1) THEN false ELSE r.j % 2 = 0 END,
       CASE WHEN r.j % 7 IN (0, 1) THEN false ELSE r.j % 5 = 0 END,
       CASE r.j % 7 WHEN 1 THEN now() - interval '2 days'
                    WHEN 2 THEN now() - interval '1 hour'       -- R9, maintenance has not run
                    WHEN 3 THEN now() + interval '10 days' END,
       'generated', now() - interval '30 days',
       CASE r.j % 7 WHEN 0 THEN now() - interval '1 day' WHEN 1 THEN now() - interval '2 days' END
FROM rel_plan r JOIN prog p ON p.business_id = r.client_id;
-- R7: assignments on active relationships (expired by time included), some
-- on a subset, some superseded (the employee is a provider BAM, R6)
INSERT INTO carm.client_assignment (relationship_id, user_id, role, programs)
SELECT r.id, e.user_id, (ARRAY['PPAM','PEDITOR','PVIEWER'])[1 + (e.user_id + r.id) % 3],
       CASE WHEN e.user_id % 2 = 1 THEN ARRAY[coalesce(r.programs[1], p.first_id)] END
FROM carm.relationship r
JOIN carm.employee e ON e.business_id = r.provider_id
JOIN prog p ON p.business_id = r.client_id
WHERE r.status = 'active' AND (e.user_id + r.id) % 3 = 0;
-- G4: one group per provider holding its active clients of even id; some
-- employees in it (some with an individual assignment too: G5); a deleted
-- group with an employee and no client
INSERT INTO carm.client_group (provider_id, name)
SELECT z.id, 'Group ' || z.n FROM biz z WHERE z.n <= 8;
INSERT INTO carm.client_group (provider_id, name, deleted_at)
SELECT z.id, 'Gone ' || z.n, now() - interval '5 days' FROM biz z WHERE z.n <= 2;
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, r.provider_id, r.client_id
FROM carm.relationship r JOIN carm.client_group g ON g.provider_id = r.provider_id AND g.deleted_at IS NULL
WHERE r.status = 'active' AND r.client_id % 2 = 0;
INSERT INTO carm.group_employee (group_id, user_id, role)
SELECT g.id, e.user_id, (ARRAY['PPAM','PEDITOR','PVIEWER'])[1 + e.user_id % 3]
FROM carm.client_group g JOIN carm.employee e ON e.business_id = g.provider_id
WHERE e.user_id % 4 = 1 OR (g.deleted_at IS NOT NULL AND e.role <> 'BAM');
SET LOCAL session_replication_role = origin;
-- one real statement through the triggers: every cached decision is stale
UPDATE carm.client_group SET name = name WHERE id = (SELECT min(id) FROM carm.client_group);
