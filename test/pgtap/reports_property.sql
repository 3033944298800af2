-- pgTAP property test (SPEC §8, rev. 1.1): the reports derive from the one
-- resolver the check uses, so on a generated world they never disagree with
-- it.  For every (user, target) pair of ~400 users and every BN9 and BN15,
-- and every one of the 27 permissions:
--   - the permissions of the paths explain_access shows in force are exactly
--     those user_has_access answers true (and paths not in force grant none);
--   - who_has_access lists, as employee and proxy rows, exactly the users for
--     whom some permission is true, with exactly those permissions, and as
--     row-only rows exactly the V3/V4 paths (SPMGR, EXPIRED) in force there;
--   - client_access lists exactly the provider's people in force on the client;
--   - my_access shows the actor what explain_access shows about it.
-- The world: 40 businesses (8 service providers), 1-3 programs each,
-- employees at both scopes and in two businesses, BUSINESS and PROGRAM
-- relationships (active, expiring, expired by time without maintenance,
-- expired, ended, re-established after an end), assignments (subsets,
-- superseded by R6), client groups with G5 overrides and a deleted group,
-- deactivated users.  Facts are inserted set-based by the owner with
-- session_replication_role = replica (as bench/generate.sql does); one real
-- statement through the triggers then invalidates every cached decision.  A
-- few API calls add history (§8: removed, revoked, ended paths).
-- One transaction, rolled back at the end.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = error;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;

SELECT plan(16);

\ir lib/generated_world.sql

-- History through the API (§8): a revoked assignment, a provider employee
-- removed (E8), a relationship ended by its client (R9), a client removed
-- from a group (G7), a role changed (E7)
CREATE TEMP TABLE story (what text PRIMARY KEY, user_id bigint, business_id bigint, actor bigint);
DO $story$
DECLARE
  a record;
BEGIN
  -- R7: a provider BAM revokes an individual assignment
  SELECT x.user_id, r.client_id, r.provider_id, pb.bn9 AS pbn9, cb.bn9 AS cbn9,
         (SELECT e.user_id FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
          WHERE e.business_id = r.provider_id AND e.role = 'BAM' ORDER BY 1 LIMIT 1) AS bam
    INTO a
  FROM carm.client_assignment x JOIN carm.relationship r ON r.id = x.relationship_id
  JOIN carm.business pb ON pb.id = r.provider_id JOIN carm.business cb ON cb.id = r.client_id
  JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = x.user_id AND e.role <> 'BAM'
  JOIN carm.app_user u ON u.id = x.user_id AND u.active
  WHERE r.expires_at IS NULL
  ORDER BY x.user_id, r.id LIMIT 1;
  PERFORM carm.set_actor(a.bam);
  PERFORM carm.revoke_client_access(a.pbn9, a.cbn9, a.user_id);
  INSERT INTO story VALUES ('revoked', a.user_id, a.client_id, a.bam);

  -- E8: a provider BAM removes an employee who held proxy roles
  SELECT x.user_id, r.client_id, pb.bn9 AS pbn9,
         (SELECT e.user_id FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
          WHERE e.business_id = r.provider_id AND e.role = 'BAM' ORDER BY 1 LIMIT 1) AS bam
    INTO a
  FROM carm.client_assignment x JOIN carm.relationship r ON r.id = x.relationship_id
  JOIN carm.business pb ON pb.id = r.provider_id
  JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = x.user_id AND e.role <> 'BAM'
  WHERE x.user_id <> (SELECT s.user_id FROM story s WHERE s.what = 'revoked')
  ORDER BY x.user_id DESC LIMIT 1;
  PERFORM carm.set_actor(a.bam);
  PERFORM carm.remove_employee(a.pbn9, a.user_id);
  INSERT INTO story VALUES ('removed', a.user_id, a.client_id, a.bam);

  -- R9: a client BAM ends an active relationship with assignments
  SELECT r.id, r.client_id, x.user_id,
         (SELECT e.user_id FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
          WHERE e.business_id = r.client_id AND e.role = 'BAM' ORDER BY 1 LIMIT 1) AS bam
    INTO a
  FROM carm.relationship r JOIN carm.client_assignment x ON x.relationship_id = r.id
  JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = x.user_id AND e.role <> 'BAM'
  WHERE r.status = 'active' AND r.expires_at IS NULL
  ORDER BY r.id LIMIT 1;
  PERFORM carm.set_actor(a.bam);
  PERFORM carm.end_relationship(a.id);
  INSERT INTO story VALUES ('ended', a.user_id, a.client_id, a.bam);

  -- G7: a provider BAM removes a client from its group
  SELECT gc.group_id, gc.client_id, cb.bn9 AS cbn9, ge.user_id,
         (SELECT e.user_id FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
          WHERE e.business_id = gc.provider_id AND e.role = 'BAM' ORDER BY 1 LIMIT 1) AS bam
    INTO a
  FROM carm.group_client gc JOIN carm.group_employee ge ON ge.group_id = gc.group_id
  JOIN carm.business cb ON cb.id = gc.client_id
  JOIN carm.relationship r ON r.provider_id = gc.provider_id AND r.client_id = gc.client_id
                          AND r.status = 'active' AND r.expires_at IS NULL
  ORDER BY gc.group_id, gc.client_id, ge.user_id LIMIT 1;
  PERFORM carm.set_actor(a.bam);
  PERFORM carm.remove_group_clients(a.group_id, ARRAY[a.cbn9]);
  INSERT INTO story VALUES ('left group', a.user_id, a.client_id, a.bam);

  -- E7: a client BAM changes an EDITOR to VIEWER
  SELECT e.user_id, e.business_id, b.bn9,
         (SELECT m.user_id FROM carm.employee m JOIN carm.app_user u ON u.id = m.user_id AND u.active
          WHERE m.business_id = e.business_id AND m.role = 'BAM' AND m.user_id <> e.user_id
          ORDER BY 1 LIMIT 1) AS bam
    INTO a
  FROM carm.employee e JOIN carm.business b ON b.id = e.business_id
  JOIN carm.app_user u ON u.id = e.user_id AND u.active
  WHERE e.role = 'EDITOR' AND e.programs IS NULL AND b.kinds = '{IMPORTER}'
  ORDER BY e.user_id LIMIT 1;
  PERFORM carm.set_actor(a.bam);
  PERFORM carm.set_employee_access(a.bn9, a.user_id, 'VIEWER', NULL);
  INSERT INTO story VALUES ('changed', a.user_id, a.business_id, a.bam);
  PERFORM carm.reset_actor();
END
$story$;

SELECT cmp_ok((SELECT count(*) FROM carm.app_user), '>=', 400::bigint,
              '§8 property world: at least 400 users');
SELECT ok((SELECT count(DISTINCT status) FROM carm.relationship) = 3
          AND EXISTS (SELECT FROM carm.relationship WHERE status = 'active' AND expires_at < now())
          AND EXISTS (SELECT FROM carm.relationship WHERE access_type = 'PROGRAM')
          AND EXISTS (SELECT FROM carm.employee WHERE programs IS NOT NULL)
          AND EXISTS (SELECT FROM carm.group_employee ge JOIN carm.client_assignment x ON x.user_id = ge.user_id)
          AND EXISTS (SELECT FROM carm.app_user WHERE NOT active),
          '§8 property world: both scopes, both relationship types, active/expired/ended, expired by time, G5 overrides, deactivated users');

-- Targets and the (user, target) pairs --------------------------------------------
CREATE TEMP TABLE perm AS
SELECT f || '.' || l AS perm
FROM unnest(ARRAY['business_profile','program_profile','employee_access','relationships','rulings','payments',
                  'statements','notifications','banking']) f
CROSS JOIN unnest(ARRAY['view','edit','manage']) l;
CREATE TEMP TABLE target AS
SELECT b.id AS business_id, b.bn9 AS target FROM carm.business b
UNION ALL
SELECT p.business_id, p.bn15 FROM carm.program p;
-- every user who could reach a business: its employees, the employees of
-- its providers, and whoever its audit trail names; everyone else must be
-- answered false everywhere
CREATE TEMP TABLE reach AS
SELECT DISTINCT x.user_id, x.business_id FROM (
  SELECT e.user_id, e.business_id FROM carm.employee e
  UNION ALL
  SELECT e.user_id, r.client_id FROM carm.relationship r JOIN carm.employee e ON e.business_id = r.provider_id
  UNION ALL
  SELECT s.user_id, s.business_id FROM story s) x;
CREATE TEMP TABLE pair AS
SELECT r.user_id, t.target FROM reach r JOIN target t ON t.business_id = r.business_id;

-- The check: every permission, user by user (the store is per user)
CREATE TEMP TABLE truth AS
SELECT p.user_id, p.target,
       coalesce(array_agg(x.perm ORDER BY x.perm) FILTER (WHERE carm.user_has_access(p.user_id, p.target, x.perm)),
                '{}') AS perms
FROM (SELECT * FROM pair ORDER BY user_id, target) p CROSS JOIN perm x
GROUP BY p.user_id, p.target;

SELECT cmp_ok((SELECT count(*) FROM pair), '>', 1000::bigint, '§8 property: more than 1,000 (user, target) pairs');
SELECT ok((SELECT count(*) FROM truth WHERE cardinality(perms) > 0) > 500
          -- 23: no role holds statements or notifications above view (§3.2)
          AND (SELECT count(DISTINCT p) FROM truth, unnest(perms) p) = 23,
          '§8 property: the world exercises every permission some role holds');

-- outside the pairs, nothing at all (a sample of 40 users x every target)
SELECT is((SELECT count(*) FROM ((SELECT u.id FROM carm.app_user u ORDER BY u.id DESC LIMIT 20)
                                 UNION ALL (SELECT u.id FROM carm.app_user u ORDER BY u.id LIMIT 20)) u
           CROSS JOIN target t CROSS JOIN perm x
           WHERE NOT EXISTS (SELECT FROM pair p WHERE p.user_id = u.id AND p.target = t.target)
             AND carm.user_has_access(u.id, t.target, x.perm)),
          0::bigint, '§8 property: no permission where a user has no path');

-- explain_access, as carm_admin ------------------------------------------------------
CREATE TEMP TABLE explained AS
SELECT p.user_id, p.target, x.*
FROM (SELECT * FROM pair ORDER BY user_id, target) p
CROSS JOIN LATERAL carm.explain_access(p.user_id, p.target) x;

SELECT is((SELECT count(*) FROM truth t
           WHERE t.perms IS DISTINCT FROM
                 (SELECT coalesce(array_agg(DISTINCT q ORDER BY q), '{}')
                  FROM explained e, unnest(e.permissions) q
                  WHERE e.user_id = t.user_id AND e.target = t.target AND e.in_force)),
          0::bigint,
          '§8 property: on every pair, the in-force paths of explain_access grant exactly what user_has_access answers, permission by permission');
SELECT is((SELECT count(*) FROM explained WHERE NOT in_force AND cardinality(permissions) > 0), 0::bigint,
          '§8 property: a path not in force grants nothing');
SELECT is((SELECT count(*) FROM explained
           WHERE in_force AND role IN ('EXPIRED', 'SPMGR') AND cardinality(permissions) > 0), 0::bigint,
          '§8 property: V3/V4 paths (SPMGR, EXPIRED) grant nothing at the point-check level (rev. 1.1)');
SELECT ok((SELECT count(*) FROM explained WHERE in_force AND role = 'EXPIRED') > 0
          AND (SELECT count(*) FROM explained WHERE in_force AND role = 'SPMGR') > 0
          AND (SELECT count(*) FROM explained WHERE NOT in_force AND reason LIKE 'overridden%') > 0
          AND (SELECT count(*) FROM explained WHERE NOT in_force AND reason LIKE 'user is deactivated%') > 0
          AND (SELECT count(*) FROM explained WHERE NOT in_force AND reason LIKE 'relationship expired at%') > 0,
          '§8 property: explain_access shows EXPIRED (V4), SPMGR (V3), G5 overrides, deactivated users, R9 by time');

-- history (§8): every API change of the story is shown, not in force, with when and by whom
SELECT is((SELECT array_agg(s.what ORDER BY s.what) FROM story s
           WHERE EXISTS (SELECT FROM explained e JOIN carm.business b ON e.target = b.bn9
                         WHERE e.user_id = s.user_id AND b.id = s.business_id AND NOT e.in_force
                           AND e.ended_at IS NOT NULL AND e.ended_by = s.actor
                           AND e.reason ~ CASE s.what WHEN 'revoked' THEN 'revoked by the service provider'
                                                      WHEN 'removed' THEN 'removed from the service provider'
                                                      WHEN 'ended' THEN 'relationship ended'
                                                      WHEN 'left group' THEN 'client removed from the client group'
                                                      WHEN 'changed' THEN 'role changed to VIEWER' END)),
          ARRAY['changed', 'ended', 'left group', 'removed', 'revoked'],
          '§8 property: explain_access shows removed, revoked and ended paths from the audit trail, when and by whom');

-- who_has_access, as carm_admin --------------------------------------------------------
CREATE TEMP TABLE who AS
SELECT t.target, w.* FROM target t CROSS JOIN LATERAL carm.who_has_access(t.target) w;

SELECT is((SELECT count(*) FROM (
             (SELECT w.target, w.user_id, q FROM who w, unnest(w.permissions) q
              WHERE w.kind IN ('employee', 'proxy')
              EXCEPT
              SELECT t.target, t.user_id, q FROM truth t, unnest(t.perms) q)
             UNION ALL
             (SELECT t.target, t.user_id, q FROM truth t, unnest(t.perms) q
              EXCEPT
              SELECT w.target, w.user_id, q FROM who w, unnest(w.permissions) q
              WHERE w.kind IN ('employee', 'proxy'))) d),
          0::bigint,
          '§8 property: who_has_access lists as employee/proxy exactly the users with some permission, with exactly those permissions');
SELECT is((SELECT count(*) FROM who w WHERE w.kind IN ('employee', 'proxy') AND cardinality(w.permissions) = 0),
          0::bigint, '§8 property: every employee/proxy row of who_has_access grants something');
SELECT is((SELECT count(*) FROM (
             (SELECT w.target, w.user_id, w.role FROM who w WHERE w.kind = 'row-only'
              EXCEPT
              SELECT e.target, e.user_id, e.role FROM explained e WHERE e.in_force AND e.role IN ('EXPIRED', 'SPMGR'))
             UNION ALL
             (SELECT e.target, e.user_id, e.role FROM explained e WHERE e.in_force AND e.role IN ('EXPIRED', 'SPMGR')
              EXCEPT
              SELECT w.target, w.user_id, w.role FROM who w WHERE w.kind = 'row-only')) d),
          0::bigint,
          '§8 property: who_has_access marks as row-only exactly the V3/V4 paths in force (SPMGR, EXPIRED)');
SELECT is((SELECT count(*) FROM who w WHERE w.kind = 'relationship' AND w.user_id IS NOT NULL), 0::bigint,
          '§8 who_has_access: relationship rows name no user');

-- client_access: the provider's people in force on the client ----------------------------
SELECT is((SELECT count(*) FROM (
             (SELECT pb.bn9, cb.bn9, c.user_id, c.role
              FROM (SELECT DISTINCT provider_id, client_id FROM carm.relationship) r
              JOIN carm.business pb ON pb.id = r.provider_id JOIN carm.business cb ON cb.id = r.client_id
              CROSS JOIN LATERAL carm.client_access(pb.bn9, cb.bn9) c
              EXCEPT
              SELECT w.via, w.target, w.user_id, w.role FROM who w
              WHERE w.kind IN ('proxy', 'row-only', 'program') AND length(w.target) = 9)
             UNION ALL
             (SELECT w.via, w.target, w.user_id, w.role FROM who w
              WHERE w.kind IN ('proxy', 'row-only', 'program') AND length(w.target) = 9
              EXCEPT
              SELECT pb.bn9, cb.bn9, c.user_id, c.role
              FROM (SELECT DISTINCT provider_id, client_id FROM carm.relationship) r
              JOIN carm.business pb ON pb.id = r.provider_id JOIN carm.business cb ON cb.id = r.client_id
              CROSS JOIN LATERAL carm.client_access(pb.bn9, cb.bn9) c)) d),
          0::bigint,
          '§8 property: client_access lists exactly the provider paths the resolver holds in force on the client (R6, R7, G4, V3, V4)');

-- my_access: the actor's own paths, as explain_access shows them ------------------------------
CREATE FUNCTION pg_temp.my_mismatches() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v bigint := 0;
  p record;
BEGIN
  FOR p IN SELECT DISTINCT e.user_id, e.target FROM explained e JOIN carm.app_user u ON u.id = e.user_id AND u.active
           WHERE e.user_id % 7 = 0 ORDER BY 1, 2 LOOP
    PERFORM carm.set_actor(p.user_id);
    v := v + (SELECT count(*) FROM (
                (SELECT * FROM carm.my_access(p.target)
                 EXCEPT ALL
                 SELECT e.path, e.role, e.via, e.scope, e.in_force, e.reason, e.permissions, e.since, e.granted_by,
                        e.ended_at, e.ended_by
                 FROM explained e WHERE e.user_id = p.user_id AND e.target = p.target)
                UNION ALL
                (SELECT e.path, e.role, e.via, e.scope, e.in_force, e.reason, e.permissions, e.since, e.granted_by,
                        e.ended_at, e.ended_by
                 FROM explained e WHERE e.user_id = p.user_id AND e.target = p.target
                 EXCEPT ALL
                 SELECT * FROM carm.my_access(p.target))) d);
  END LOOP;
  PERFORM carm.reset_actor();
  RETURN v;
END
$$;
SELECT is(pg_temp.my_mismatches(), 0::bigint, '§8 my_access: the actor''s own paths, exactly as explain_access shows them');

SELECT * FROM finish();
ROLLBACK;
