-- pgTAP: the full role x function matrix of SPEC §3.2, cell by cell, asked
-- with carm.user_has_access() for one actor of each of the nine roles (two
-- for some roles, reached by different paths), on a program account (BN15)
-- and, for the business-scope functions, on the business account (BN9).
-- Then program scope (E5, E12), users without access (E13) and expiry by
-- time without maintenance (R9).
--
-- The expected levels are the SPEC's table, copied below as data; they are
-- not read from the extension.  Every cell is asserted at all three levels:
-- "yes" up to the cell's maximum, "no" above it.
--
-- Everything is set up through the API as the acting users, except a move
-- of an expiry date into the past (made as the owner with no actor set).
-- One transaction, rolled back at the end.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = error;   -- E10 warnings are the employees transcript's business

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;

SELECT plan(512);

-- The SPEC §3.2 table, as written there ('-' = none) ---------------------------
CREATE TEMP TABLE spec_matrix (fn_ord int, fn text, role text, max_level text);
INSERT INTO spec_matrix
SELECT f.ord, f.fn, r.role, r.lvl
FROM (VALUES
  (1, 'business_profile', ARRAY['manage','view',  'view','view','view',  '-',     '-',   '-',   '-'   ]),
  (2, 'program_profile',  ARRAY['manage','manage','view','view','view',  'view',  'view','view','-'   ]),
  (3, 'employee_access',  ARRAY['manage','manage','-',   '-',   '-',     '-',     '-',   '-',   '-'   ]),
  (4, 'relationships',    ARRAY['manage','manage','-',   '-',   '-',     '-',     '-',   '-',   '-'   ]),
  (5, 'rulings',          ARRAY['manage','manage','edit','view','manage','manage','edit','view','view']),
  (6, 'payments',         ARRAY['manage','manage','edit','view','manage','manage','edit','view','view']),
  (7, 'statements',       ARRAY['view',  'view',  'view','view','view',  'view',  'view','view','view']),
  (8, 'notifications',    ARRAY['view',  'view',  'view','view','view',  'view',  'view','view','view']),
  (9, 'banking',          ARRAY['manage','manage','view','-',   '-',     '-',     '-',   '-',   '-'   ])
) AS f(ord, fn, cells)
CROSS JOIN LATERAL unnest(ARRAY['BAM','PAM','EDITOR','VIEWER','PBAM','PPAM','PEDITOR','PVIEWER','EXPIRED'],
                          f.cells) AS r(role, lvl);

CREATE TEMP TABLE levels (rank int, lvl text);
INSERT INTO levels VALUES (1, 'view'), (2, 'edit'), (3, 'manage');

CREATE FUNCTION pg_temp.rank(lvl text) RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE lvl WHEN 'view' THEN 1 WHEN 'edit' THEN 2 WHEN 'manage' THEN 3 ELSE 0 END
$$;

-- Helpers ------------------------------------------------------------------------
CREATE FUNCTION pg_temp.uid(ext text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT id FROM carm.app_user WHERE external_id = ext
$$;
CREATE FUNCTION pg_temp.act(ext text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(ext);
END
$$;
CREATE FUNCTION pg_temp.can(ext text, target text, perm text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT carm.user_has_access(pg_temp.uid(ext), target, perm)
$$;
-- every function.level a user holds on a target, in the SPEC's order
CREATE FUNCTION pg_temp.held(ext text, target text) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(p ORDER BY fn_ord, rank), '{}')
  FROM (SELECT DISTINCT m.fn_ord, l.rank, m.fn || '.' || l.lvl AS p
        FROM spec_matrix m CROSS JOIN levels l) x
  WHERE pg_temp.can(ext, target, p)
$$;
-- every function.level the SPEC gives a role on a program account in its scope
CREATE FUNCTION pg_temp.cells(p_role text) RETURNS text[] LANGUAGE sql STABLE AS $$
  SELECT coalesce(array_agg(m.fn || '.' || l.lvl ORDER BY m.fn_ord, l.rank), '{}')
  FROM spec_matrix m JOIN levels l ON l.rank <= pg_temp.rank(m.max_level)
  WHERE m.role = p_role
$$;
-- the user joins a business through the API: request, then approval
CREATE FUNCTION pg_temp.join_business(ext text, bn9 text, approver text, role text,
                                      programs text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_request bigint;
BEGIN
  PERFORM carm.set_actor(ext);
  v_request := carm.request_employee_access(bn9, 'I work here');
  PERFORM carm.set_actor(approver);
  PERFORM carm.approve_employee_access(v_request, role, programs);
END
$$;
-- a provider BAM asks for a relationship and the client's BAM approves it
CREATE FUNCTION pg_temp.relate(provider_bam text, provider text, client_bam text, client text,
                               access_type text, programs text[] DEFAULT NULL,
                               expires_at timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM carm.set_actor(provider_bam);
  v_id := carm.request_relationship(provider, client, 'We clear their goods');
  PERFORM carm.set_actor(client_bam);
  PERFORM carm.approve_relationship(v_id, access_type, programs, expires_at => expires_at);
  RETURN v_id;
END
$$;

-- Reference data (carm_admin: the superuser running this file) ---------------------
SELECT count(*) FROM (VALUES
  (carm.add_business('300000007', 'Maple Imports',   '{IMPORTER}')),
  (carm.add_business('100000009', 'Acme Brokers',    '{CUSTOMS_BROKER}')),
  (carm.add_business('200000008', 'Beta Consulting', '{TRADE_CONSULTANT}')),
  (carm.add_business('400000006', 'Cedar Brokers',   '{CUSTOMS_BROKER}')),
  (carm.add_business('600000004', 'Fir Brokers',     '{CUSTOMS_BROKER}'))) x \g /dev/null
SELECT count(carm.add_program_account(p))
FROM unnest(ARRAY['300000007RM0001', '300000007RM0002', '100000009RM0001', '200000008RM0001',
                  '400000006RM0001', '600000004RM0001']) p \g /dev/null
SELECT count(carm.register_user(u, initcap(u)))
FROM unnest(ARRAY['clara', 'carl', 'pat', 'cindy', 'vera', 'rita',          -- Maple
                  'paula', 'pete', 'ed', 'vic', 'gus', 'nia',              -- Acme
                  'bob', 'ivan', 'olaf', 'oscar', 'olga']) u \g /dev/null

-- The client: Maple Imports, programs RM0001 and RM0002 -------------------------------
SELECT pg_temp.act('clara') \g /dev/null
-- E1: the first to register becomes BAM
SELECT carm.register_business('300000007', '300000007RM0001') \g /dev/null
SELECT pg_temp.join_business('carl',  '300000007', 'clara', 'PAM',    '{300000007RM0001}') \g /dev/null
SELECT pg_temp.join_business('pat',   '300000007', 'clara', 'PAM') \g /dev/null
SELECT pg_temp.join_business('cindy', '300000007', 'clara', 'EDITOR', '{300000007RM0001}') \g /dev/null
SELECT pg_temp.join_business('vera',  '300000007', 'clara', 'VIEWER') \g /dev/null
SELECT pg_temp.act('rita') \g /dev/null
SELECT carm.request_employee_access('300000007', 'Summer job') AS rita_request \gset
SELECT pg_temp.act('clara') \g /dev/null
SELECT carm.reject_employee_access(:rita_request, 'We do not know you') \g /dev/null

-- The service providers and their employees ---------------------------------------------
SELECT pg_temp.act('paula') \g /dev/null
SELECT carm.register_business('100000009', '100000009RM0001') \g /dev/null
SELECT pg_temp.join_business(u, '100000009', 'paula', 'EDITOR')
FROM unnest(ARRAY['pete', 'ed', 'vic', 'gus', 'nia']) u \g /dev/null
SELECT pg_temp.act('bob') \g /dev/null
SELECT carm.register_business('200000008', '200000008RM0001') \g /dev/null
SELECT pg_temp.act('ivan') \g /dev/null
SELECT carm.register_business('400000006', '400000006RM0001') \g /dev/null
SELECT pg_temp.act('olaf') \g /dev/null
SELECT carm.register_business('600000004', '600000004RM0001') \g /dev/null
SELECT pg_temp.join_business('oscar', '600000004', 'olaf', 'EDITOR') \g /dev/null

-- Relationships:
--   Acme  BUSINESS                       paula PBAM (R6); pete, ed, vic assigned (R7); gus by group (G4)
--   Beta  PROGRAM on RM0001, RM0002      bob PPAM (R6)
--   Cedar PROGRAM on RM0001, ended       ivan EXPIRED (R9, V4)
--   Fir   BUSINESS, expiry date passed   olaf EXPIRED by time; oscar (assigned) nothing (R9)
SELECT pg_temp.relate('paula', '100000009', 'clara', '300000007', 'BUSINESS') AS rel_acme \gset
SELECT pg_temp.relate('bob', '200000008', 'clara', '300000007', 'PROGRAM',
                      '{300000007RM0001,300000007RM0002}') AS rel_beta \gset
SELECT pg_temp.relate('ivan', '400000006', 'clara', '300000007', 'PROGRAM', '{300000007RM0001}') AS rel_cedar \gset
SELECT pg_temp.relate('olaf', '600000004', 'clara', '300000007', 'BUSINESS',
                      expires_at => now() + interval '1 day') AS rel_fir \gset
SELECT pg_temp.act('clara') \g /dev/null
SELECT carm.end_relationship(:rel_cedar) \g /dev/null

SELECT pg_temp.act('paula') \g /dev/null
SELECT carm.assign_client_access('100000009', '300000007', pg_temp.uid('pete'), 'PPAM') \g /dev/null
SELECT carm.assign_client_access('100000009', '300000007', pg_temp.uid('ed'), 'PEDITOR') \g /dev/null
SELECT carm.assign_client_access('100000009', '300000007', pg_temp.uid('vic'), 'PVIEWER',
                                 '{300000007RM0001}') \g /dev/null
SELECT carm.create_client_group('100000009', 'Importers', '{300000007}') AS importers \gset
SELECT carm.assign_group_employees(:importers, ARRAY[pg_temp.uid('gus')], 'PEDITOR') \g /dev/null
SELECT pg_temp.act('olaf') \g /dev/null
SELECT carm.assign_client_access('600000004', '300000007', pg_temp.uid('oscar'), 'PVIEWER') \g /dev/null
SELECT carm.reset_actor() \g /dev/null

-- R9: expiry by time, decided by the check at the time of the statement (SPEC §10
-- rev. 1.2), whatever the transaction's start; no maintenance runs ---------------------------
UPDATE carm.relationship SET expires_at = statement_timestamp() + interval '1 hour' WHERE id = :rel_fir;
SELECT is(pg_temp.held('olaf', '300000007RM0001'), pg_temp.cells('PBAM'),
          'R9: before expires_at the provider''s BAM is PBAM (R6)');
SELECT is(pg_temp.held('oscar', '300000007RM0001'), pg_temp.cells('PVIEWER'),
          'R9: before expires_at an assigned provider employee holds its role (R7)');
UPDATE carm.relationship SET expires_at = now() WHERE id = :rel_fir;
SELECT is(pg_temp.held('olaf', '300000007RM0001'), '{}'::text[],
          'R9, §8 (rev. 1.1): from a statement at or after expires_at the provider''s BAM holds EXPIRED, which grants nothing at the point-check level (its own submissions through the row checks only, V4)');
SELECT is(pg_temp.held('olaf', '300000007'), '{}'::text[],
          'R9: EXPIRED holds nothing on the client''s business account');
SELECT is(pg_temp.held('oscar', '300000007RM0001'), '{}'::text[],
          'R9: from expires_at an assigned provider employee holds nothing');
SELECT is((SELECT status FROM carm.relationship WHERE id = :rel_fir), 'active',
          'R9: all this without maintenance: the stored status is still active');

-- §3.2 cell by cell ---------------------------------------------------------------------------
-- One or two actors per role; all_scope: the role is held at all-programs scope
-- (the business-scope functions on the BN9 need it, §3 "Business-scope functions").
CREATE TEMP TABLE actors (ord int, ext text, role text, all_scope boolean, how text);
INSERT INTO actors VALUES
  ( 1, 'clara', 'BAM',     true,  'client BAM (E1)'),
  ( 2, 'carl',  'PAM',     false, 'client PAM on RM0001 only'),
  ( 3, 'pat',   'PAM',     true,  'client PAM on all programs'),
  ( 4, 'cindy', 'EDITOR',  false, 'client editor on RM0001 only'),
  ( 5, 'vera',  'VIEWER',  true,  'client viewer on all programs'),
  ( 6, 'paula', 'PBAM',    true,  'BAM of a BUSINESS provider (R6)'),
  ( 7, 'pete',  'PPAM',    false, 'assigned PPAM (R7)'),
  ( 8, 'bob',   'PPAM',    false, 'BAM of a PROGRAM provider (R6)'),
  ( 9, 'ed',    'PEDITOR', false, 'assigned PEDITOR (R7)'),
  (10, 'gus',   'PEDITOR', false, 'PEDITOR by client group (G4)'),
  (11, 'vic',   'PVIEWER', false, 'assigned PVIEWER on RM0001 (R7)'),
  (12, 'ivan',  'EXPIRED', false, 'BAM of a provider whose relationship ended'),
  (13, 'olaf',  'EXPIRED', false, 'BAM of a provider whose relationship expired by time');

-- on the program account RM0001, which every actor's scope includes: 13 x 9 x 3.
-- EXPIRED's read-only cells (footnote 4) hold through the row checks only: a
-- point check answers false there (§8, rev. 1.1; rls tests cover V4's rows).
SELECT is(pg_temp.can(a.ext, '300000007RM0001', m.fn || '.' || l.lvl),
          a.role <> 'EXPIRED' AND l.rank <= pg_temp.rank(m.max_level),
          format('§3.2 %s: %s.%s %s%s — %s, %s, on 300000007RM0001',
                 a.role, m.fn, l.lvl,
                 CASE WHEN a.role <> 'EXPIRED' AND l.rank <= pg_temp.rank(m.max_level) THEN 'yes' ELSE 'no' END,
                 CASE WHEN a.role IN ('PBAM','PPAM','PEDITOR','PVIEWER')
                           AND l.rank > pg_temp.rank(m.max_level)
                           AND m.fn IN ('business_profile','program_profile','employee_access',
                                        'relationships','banking') THEN ' (R11)'
                      WHEN a.role = 'EXPIRED' AND l.rank <= pg_temp.rank(m.max_level)
                        THEN ' at the point-check level (R9, V4; §8 rev. 1.1: rows only)'
                      WHEN a.role = 'EXPIRED' THEN ' (R9, V4)'
                      ELSE '' END,
                 a.ext, a.how))
FROM actors a JOIN spec_matrix m ON m.role = a.role CROSS JOIN levels l
ORDER BY a.ord, m.fn_ord, l.rank;

-- on the business account, the business-scope functions: 13 x 3 x 3.  Business
-- profile as in the table (any employee views it); business-level employee
-- access and relationships only for a role held at all-programs scope.
SELECT is(pg_temp.can(a.ext, '300000007', m.fn || '.' || l.lvl), x.expected,
          format('§3.2 %s: %s.%s %s%s — %s, %s, on the BN9 300000007',
                 a.role, m.fn, l.lvl, CASE WHEN x.expected THEN 'yes' ELSE 'no' END,
                 CASE WHEN NOT x.expected AND a.role IN ('PBAM','PPAM','PEDITOR','PVIEWER') THEN ' (R11)'
                      WHEN NOT x.expected AND NOT a.all_scope AND m.fn <> 'business_profile'
                           AND m.max_level <> '-' THEN ' (business scope needs all programs)'
                      WHEN a.role = 'EXPIRED' THEN ' (R9, V4)'
                      ELSE '' END,
                 a.ext, a.how))
FROM actors a JOIN spec_matrix m ON m.role = a.role CROSS JOIN levels l
CROSS JOIN LATERAL (SELECT l.rank <= CASE WHEN m.fn = 'business_profile' OR a.all_scope
                                          THEN pg_temp.rank(m.max_level) ELSE 0 END) AS x(expected)
WHERE m.fn IN ('business_profile', 'employee_access', 'relationships')
ORDER BY a.ord, m.fn_ord, l.rank;

-- the same sets, read as wholes (a guard against a mistake in the two queries above)
SELECT is(pg_temp.held('clara', '300000007'),
          '{business_profile.view,business_profile.edit,business_profile.manage,program_profile.view,program_profile.edit,program_profile.manage,employee_access.view,employee_access.edit,employee_access.manage,relationships.view,relationships.edit,relationships.manage,rulings.view,rulings.edit,rulings.manage,payments.view,payments.edit,payments.manage,statements.view,notifications.view,banking.view,banking.edit,banking.manage}'::text[],
          '§3.2 BAM: everything on the BN9, statements and notifications at view');
SELECT is(pg_temp.held('paula', '300000007RM0001'),
          '{business_profile.view,program_profile.view,rulings.view,rulings.edit,rulings.manage,payments.view,payments.edit,payments.manage,statements.view,notifications.view}'::text[],
          '§3.2 PBAM: the whole column on a program (R11: no banking, employees or relationships)');
SELECT is(pg_temp.held('carl', '300000007'), '{business_profile.view}'::text[],
          '§3 PAM on a listed program: only business_profile.view on the BN9');
SELECT is(pg_temp.held('cindy', '300000007'), '{business_profile.view}'::text[],
          '§3 EDITOR on a listed program: only business_profile.view on the BN9');

-- E5: a listed scope covers only its programs ----------------------------------------------
-- (business_profile is the business's, not the program's: any employee views
-- it, whatever the target names, §3 "Business-scope functions")
SELECT is(pg_temp.held('carl', '300000007RM0002'), '{business_profile.view}'::text[],
          'E5: a PAM listed on RM0001 has nothing on RM0002 but the business profile');
SELECT is(pg_temp.held('cindy', '300000007RM0002'), '{business_profile.view}'::text[],
          'E5: an EDITOR listed on RM0001 has nothing on RM0002 but the business profile');
SELECT is(pg_temp.held('pat', '300000007RM0002'), pg_temp.cells('PAM'),
          'E5: an all-programs PAM has its role on RM0002');
SELECT is(pg_temp.held('vic', '300000007RM0002'), '{}'::text[],
          'R7: a PVIEWER assigned on RM0001 has nothing on RM0002');
SELECT is(pg_temp.held('pete', '300000007RM0002'), pg_temp.cells('PPAM'),
          'R7: a PPAM assigned on every delegated program has RM0002');
SELECT is(pg_temp.held('bob', '300000007RM0002'), pg_temp.cells('PPAM'),
          'R6: the BAM of a PROGRAM provider is PPAM on each delegated program');
SELECT is(pg_temp.held('ivan', '300000007RM0002'), '{}'::text[],
          'V4: EXPIRED only on the programs the ended relationship delegated');

-- E12: a program account added later ------------------------------------------------------------
SELECT carm.add_program_account('300000007RM0003') \g /dev/null
SELECT is(pg_temp.held('clara', '300000007RM0003'), pg_temp.cells('BAM'),
          'E12: a BAM covers a program added later');
SELECT is(pg_temp.held('pat', '300000007RM0003'), pg_temp.cells('PAM'),
          'E12: an all-programs PAM covers a program added later');
SELECT is(pg_temp.held('vera', '300000007RM0003'), pg_temp.cells('VIEWER'),
          'E12: an all-programs VIEWER covers a program added later');
SELECT is(pg_temp.held('paula', '300000007RM0003'), pg_temp.cells('PBAM'),
          'E12, R6: a PBAM (BUSINESS relationship) covers a program added later');
SELECT is(pg_temp.held('pete', '300000007RM0003'), pg_temp.cells('PPAM'),
          'E12, R7: an assignment on every delegated program of a BUSINESS relationship covers it');
SELECT is(pg_temp.held('gus', '300000007RM0003'), pg_temp.cells('PEDITOR'),
          'E12, G4: a group role on a BUSINESS relationship covers it');
SELECT is(pg_temp.held('carl', '300000007RM0003'), '{business_profile.view}'::text[],
          'E12: a listed PAM does not gain a program added later');
SELECT is(pg_temp.held('cindy', '300000007RM0003'), '{business_profile.view}'::text[],
          'E12: a listed EDITOR does not gain a program added later');
SELECT is(pg_temp.held('vic', '300000007RM0003'), '{}'::text[],
          'E12: a listed assignment does not gain a program added later');
SELECT is(pg_temp.held('bob', '300000007RM0003'), '{}'::text[],
          'E12: a PROGRAM relationship does not gain a program added later');

-- E13: no approved association, no access ------------------------------------------------------
SELECT is(pg_temp.held('olga', '300000007'), '{}'::text[],
          'E13: an unassociated user has nothing on the business');
SELECT is(pg_temp.held('olga', '300000007RM0001'), '{}'::text[],
          'E13: an unassociated user has nothing on a program');
SELECT is(pg_temp.held('rita', '300000007'), '{}'::text[],
          'E13: a user whose request was rejected has nothing on the business');
SELECT is(pg_temp.held('rita', '300000007RM0001'), '{}'::text[],
          'E13: nor on a program');
SELECT is(pg_temp.held('nia', '300000007RM0001'), '{}'::text[],
          'E13: a provider employee with no assignment has nothing on the client');
SELECT carm.deactivate_user(pg_temp.uid(u)) FROM unnest(ARRAY['vera', 'paula', 'pete', 'gus']) u \g /dev/null
SELECT is(pg_temp.held('vera', '300000007'), '{}'::text[],
          'E13: a deactivated client employee has nothing on the business');
SELECT is(pg_temp.held('vera', '300000007RM0001'), '{}'::text[],
          'E13: nor on a program');
SELECT is(pg_temp.held('paula', '300000007RM0001'), '{}'::text[],
          'E13: a deactivated provider BAM loses PBAM');
SELECT is(pg_temp.held('pete', '300000007RM0001'), '{}'::text[],
          'E13: a deactivated assigned provider employee has nothing');
SELECT is(pg_temp.held('gus', '300000007RM0001'), '{}'::text[],
          'E13: a deactivated group employee has nothing');
SELECT is(pg_temp.held('paula', '100000009RM0001'), '{}'::text[],
          'E13: a deactivated BAM has nothing on its own business either');
SELECT carm.reactivate_user(pg_temp.uid('vera')) \g /dev/null
SELECT is(pg_temp.held('vera', '300000007RM0001'), pg_temp.cells('VIEWER'),
          'E13: reactivated, the viewer has its role again');

-- R9 again: maintenance applies the cascade and changes no decision -----------------------------
SELECT is((SELECT count FROM carm.run_maintenance() WHERE action = 'relationships_expired'), 1::bigint,
          'R12: maintenance expires the relationship whose date passed');
SELECT is((SELECT status FROM carm.relationship WHERE id = :rel_fir), 'expired',
          'R9: the stored status is expired now');
SELECT is(pg_temp.held('olaf', '300000007RM0001'), '{}'::text[],
          'R9, §8 (rev. 1.1): the provider''s BAM still holds EXPIRED: nothing at the point-check level');
SELECT is(pg_temp.held('olaf', '300000007'), '{}'::text[],
          'R9: and still nothing on the business account');
SELECT is(pg_temp.held('oscar', '300000007RM0001'), '{}'::text[],
          'R9: the assigned employee still holds nothing');

SELECT * FROM finish();
ROLLBACK;
