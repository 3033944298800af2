-- pgTAP property test (V1-V4, SPEC §8): the row check's decision table
-- (src/visibility.c) answers exactly what the rule decided from the grants
-- (row_visible() in src/check.c) answers — the twin of reports_property.
-- On the generated world of test/pgtap/lib/generated_world.sql, for every
-- active user as the actor, every one of the nine functions and every
-- program, with as submitter the program's client, every provider that has
-- or had a relationship with the client, and one unrelated business:
--   carm_internal.row_visible() (the decision table, the store complete)
--   = carm_internal.row_visible_by_grants() (the grants, no table).
-- Both are made of one per-grant rule, carm_grant_row_flags(); this test
-- fails as soon as the table and the grants disagree on one row.
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

SELECT plan(4);

\ir lib/generated_world.sql

-- (program, submitter, kind): the client's own rows, each provider's, one
-- third business's
CREATE TEMP TABLE cand AS
SELECT p.id AS program_id, p.business_id AS submitter_id, 'client' AS kind
FROM carm.program p
UNION
SELECT p.id, r.provider_id, 'provider'
FROM carm.program p JOIN carm.relationship r ON r.client_id = p.business_id
UNION
SELECT p.id, (SELECT min(z.id) FROM biz z
              WHERE z.id <> p.business_id
                AND z.id NOT IN (SELECT r.provider_id FROM carm.relationship r WHERE r.client_id = p.business_id)),
       'other'
FROM carm.program p;
CREATE TEMP TABLE fns AS
SELECT unnest(ARRAY['business_profile','program_profile','employee_access','relationships','rulings',
                    'payments','statements','notifications','banking']) AS fn;

-- every (actor, function, program, submitter, table's answer, grants' answer)
CREATE TEMP TABLE answers (actor bigint, fn text, program_id bigint, submitter_id bigint, kind text,
                           by_table boolean, by_grants boolean);
DO $$
DECLARE
  u record;
  f record;
BEGIN
  FOR u IN SELECT a.id FROM carm.app_user a WHERE a.active ORDER BY a.id LOOP
    PERFORM carm.set_actor(u.id);
    FOR f IN SELECT fn FROM fns LOOP
      -- derives the function's decision table from the complete store
      PERFORM carm_internal.visible_programs(f.fn);
      INSERT INTO answers
      SELECT u.id, f.fn, c.program_id, c.submitter_id, c.kind,
             carm_internal.row_visible(c.program_id, c.submitter_id, f.fn),
             carm_internal.row_visible_by_grants(c.program_id, c.submitter_id, f.fn)
      FROM cand c;
    END LOOP;
  END LOOP;
  PERFORM carm.reset_actor();
END
$$;

SELECT cmp_ok((SELECT count(DISTINCT actor)::int FROM answers), '>=', 300,
              'V1-V4 property world: at least 300 active actors');
SELECT ok((SELECT count(*) FILTER (WHERE by_grants AND kind = 'client') > 0
                  AND count(*) FILTER (WHERE by_grants AND kind = 'provider') > 0
                  AND count(*) FILTER (WHERE by_grants AND kind = 'other') > 0
                  AND count(*) FILTER (WHERE NOT by_grants) > 0
           FROM answers),
          'V1-V4 property world: rows of the client, of providers and of third businesses are visible to someone, and some rows to nobody');
SELECT ok((SELECT count(*) FILTER (WHERE by_grants AND kind = 'client' AND fn = 'rulings') > 0
                  AND count(*) FILTER (WHERE by_grants AND kind = 'other' AND fn = 'rulings') = 0
           FROM answers a
           WHERE NOT EXISTS (SELECT 1 FROM carm.employee e JOIN carm.program p ON p.business_id = e.business_id
                             WHERE e.user_id = a.actor AND p.id = a.program_id)),
          'V2(c): a provider never sees a third business''s rulings; V2(b) client rows are visible to providers');
SELECT is((SELECT coalesce(array_agg(actor || ' ' || fn || ' ' || program_id || ' ' || submitter_id
                                     || ' table=' || by_table || ' grants=' || by_grants
                                     ORDER BY actor, fn, program_id, submitter_id), '{}')
           FROM (SELECT * FROM answers WHERE by_table IS DISTINCT FROM by_grants LIMIT 20) d),
          '{}'::text[],
          'V1-V4 property: the decision table and the grants agree for every actor, function, program and submitter');

SELECT * FROM finish();
ROLLBACK;
