-- pgTAP: the access functions of SPEC §8 and their refusals (§10):
-- carm.has_access / carm.user_has_access (point checks), carm.protect /
-- carm.unprotect (who may call them), carm.accessible_programs,
-- carm.explain_access and carm.who_has_access.
-- One transaction, rolled back at the end (roles created here go with it).
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = error;   -- E10 warnings and protect()'s index notice

BEGIN;
SET LOCAL DateStyle = ISO;   -- explain_access reasons quote times; pg_temp.explain masks them
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;

SELECT plan(144);

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_access_nobody') THEN
    CREATE ROLE regress_access_nobody NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_access_app') THEN
    CREATE ROLE regress_access_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_access_admin') THEN
    CREATE ROLE regress_access_admin NOLOGIN;
  END IF;
END
$$;   -- (roles created here are dropped by the final ROLLBACK)
GRANT carm_gateway TO regress_access_app;
GRANT carm_admin TO regress_access_admin;

-- Helpers ------------------------------------------------------------------------
-- (SECURITY DEFINER: also usable after SET ROLE to the application roles)
CREATE FUNCTION pg_temp.uid(ext text) RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT id FROM carm.app_user WHERE external_id = ext
$$;
CREATE FUNCTION pg_temp.act(ext text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(ext);
END
$$;
-- run stmt acting as ext, deactivated after set_actor() (a user deactivated
-- while a transaction acts for it); set_actor() itself refuses a
-- deactivated user (§10 rev. 1.2).  Everything is undone when stmt fails.
CREATE FUNCTION pg_temp.acting_deactivated(ext text, stmt text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  PERFORM carm.reactivate_user(pg_temp.uid(ext));
  PERFORM carm.set_actor(ext);
  PERFORM carm.deactivate_user(pg_temp.uid(ext));
  EXECUTE stmt;
END
$$;
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
CREATE FUNCTION pg_temp.relate(provider_bam text, provider text, client_bam text, client text,
                               access_type text, programs text[] DEFAULT NULL,
                               see_client boolean DEFAULT false,
                               expires_at timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM carm.set_actor(provider_bam);
  v_id := carm.request_relationship(provider, client, 'We clear their goods');
  PERFORM carm.set_actor(client_bam);
  PERFORM carm.approve_relationship(v_id, access_type, programs, see_client, false, expires_at);
  RETURN v_id;
END
$$;
-- explain_access with timestamps in reasons replaced by <time>
CREATE FUNCTION pg_temp.explain(ext text, target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text)
LANGUAGE sql AS $$
  SELECT x.path, x.role, x.via, x.scope, x.in_force,
         regexp_replace(x.reason, '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d)?', '<time>', 'g')
  FROM carm.explain_access(pg_temp.uid(ext), target) x
$$;
-- the (permission, BN15) pairs on which accessible_programs() and has_access()
-- disagree for a user, over every program account and function
CREATE FUNCTION pg_temp.disagreements(ext text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  v text[];
BEGIN
  PERFORM carm.set_actor(ext);
  SELECT coalesce(array_agg(perm || ' ' || p.bn15 ORDER BY 1), '{}') INTO v
  FROM unnest(ARRAY['business_profile','program_profile','employee_access','relationships','rulings','payments',
                    'statements','notifications','banking']) f
  CROSS JOIN unnest(ARRAY['view','edit','manage']) l
  CROSS JOIN LATERAL (SELECT f || '.' || l AS perm) x
  CROSS JOIN carm.program p
  WHERE carm.has_access(p.bn15, perm)
        IS DISTINCT FROM (p.bn15 IN (SELECT a.bn15 FROM carm.accessible_programs(perm) a));
  PERFORM carm.reset_actor();
  RETURN v;
END
$$;

-- Scenario ---------------------------------------------------------------------------
-- Maple Imports (client): clara BAM, carl PAM on RM0001, vera VIEWER, dora
--   EDITOR on RM0002 (deactivated below).  Oak Foods (client): oliver BAM.
-- Acme Brokers: paula BAM, pam PAM, pete/gus/gina/nia editors.
--   Acme - Maple BUSINESS (sees client submissions): pete PPAM on RM0001,
--   gus PVIEWER (overrides his group role), group "Importers" with gus and
--   gina as PEDITOR; nia nothing.   Acme - Oak BUSINESS.
-- Beta Consulting: bob BAM.  Beta - Maple PROGRAM on RM0002.
-- Cedar Brokers: ivan BAM.   Cedar - Maple PROGRAM on RM0001, ended.
-- Fir Brokers: olaf BAM, oscar assigned PVIEWER.  Fir - Maple BUSINESS,
--   expired by time (maintenance has not run).
-- olga: no business.
SELECT count(*) FROM (VALUES
  (carm.add_business('300000007', 'Maple Imports',   '{IMPORTER}')),
  (carm.add_business('700000003', 'Oak Foods',       '{IMPORTER}')),
  (carm.add_business('100000009', 'Acme Brokers',    '{CUSTOMS_BROKER}')),
  (carm.add_business('200000008', 'Beta Consulting', '{TRADE_CONSULTANT}')),
  (carm.add_business('400000006', 'Cedar Brokers',   '{CUSTOMS_BROKER}')),
  (carm.add_business('600000004', 'Fir Brokers',     '{CUSTOMS_BROKER}'))) x \g /dev/null
SELECT count(carm.add_program_account(p, 'Program ' || p))
FROM unnest(ARRAY['300000007RM0001', '300000007RM0002', '700000003RM0001', '100000009RM0001',
                  '200000008RM0001', '400000006RM0001', '600000004RM0001']) p \g /dev/null
SELECT count(carm.register_user(u, initcap(u)))
FROM unnest(ARRAY['clara', 'carl', 'vera', 'dora', 'oliver', 'paula', 'pam', 'pete', 'gus',
                  'gina', 'nia', 'bob', 'ivan', 'olaf', 'oscar', 'olga']) u \g /dev/null

SELECT pg_temp.act('clara') \g /dev/null
SELECT carm.register_business('300000007', '300000007RM0001') \g /dev/null
SELECT pg_temp.join_business('carl', '300000007', 'clara', 'PAM', '{300000007RM0001}') \g /dev/null
SELECT pg_temp.join_business('vera', '300000007', 'clara', 'VIEWER') \g /dev/null
SELECT pg_temp.join_business('dora', '300000007', 'clara', 'EDITOR', '{300000007RM0002}') \g /dev/null
SELECT pg_temp.act('oliver') \g /dev/null
SELECT carm.register_business('700000003', '700000003RM0001') \g /dev/null
SELECT pg_temp.act('paula') \g /dev/null
SELECT carm.register_business('100000009', '100000009RM0001') \g /dev/null
SELECT pg_temp.join_business('pam', '100000009', 'paula', 'PAM') \g /dev/null
SELECT pg_temp.join_business(u, '100000009', 'paula', 'EDITOR')
FROM unnest(ARRAY['pete', 'gus', 'gina', 'nia']) u \g /dev/null
SELECT pg_temp.act('bob') \g /dev/null
SELECT carm.register_business('200000008', '200000008RM0001') \g /dev/null
SELECT pg_temp.act('ivan') \g /dev/null
SELECT carm.register_business('400000006', '400000006RM0001') \g /dev/null
SELECT pg_temp.act('olaf') \g /dev/null
SELECT carm.register_business('600000004', '600000004RM0001') \g /dev/null
SELECT pg_temp.join_business('oscar', '600000004', 'olaf', 'EDITOR') \g /dev/null

SELECT pg_temp.relate('paula', '100000009', 'clara', '300000007', 'BUSINESS', see_client => true) AS rel_acme \gset
SELECT pg_temp.relate('paula', '100000009', 'oliver', '700000003', 'BUSINESS') AS rel_oak \gset
SELECT pg_temp.relate('bob', '200000008', 'clara', '300000007', 'PROGRAM', '{300000007RM0002}') AS rel_beta \gset
SELECT pg_temp.relate('ivan', '400000006', 'clara', '300000007', 'PROGRAM', '{300000007RM0001}') AS rel_cedar \gset
SELECT pg_temp.relate('olaf', '600000004', 'clara', '300000007', 'BUSINESS',
                      expires_at => now() + interval '1 day') AS rel_fir \gset
SELECT pg_temp.act('clara') \g /dev/null
SELECT carm.end_relationship(:rel_cedar) \g /dev/null
SELECT pg_temp.act('paula') \g /dev/null
SELECT carm.assign_client_access('100000009', '300000007', pg_temp.uid('pete'), 'PPAM', '{300000007RM0001}') \g /dev/null
SELECT carm.create_client_group('100000009', 'Importers', '{300000007}') AS importers \gset
SELECT carm.assign_group_employees(:importers, ARRAY[pg_temp.uid('gus'), pg_temp.uid('gina')], 'PEDITOR') \g /dev/null
-- G5: gus's individual PVIEWER overrides his group PEDITOR
SELECT carm.assign_client_access('100000009', '300000007', pg_temp.uid('gus'), 'PVIEWER') \g /dev/null
SELECT pg_temp.act('olaf') \g /dev/null
SELECT carm.assign_client_access('600000004', '300000007', pg_temp.uid('oscar'), 'PVIEWER') \g /dev/null
SELECT carm.reset_actor() \g /dev/null
UPDATE carm.relationship SET expires_at = now() - interval '1 hour' WHERE id = :rel_fir;   -- R9, no maintenance
SELECT carm.deactivate_user(pg_temp.uid('dora')) \g /dev/null

CREATE TABLE public.access_docs (id bigint PRIMARY KEY, program_id bigint, submitter_id bigint);
CREATE INDEX ON public.access_docs (program_id);
ALTER TABLE public.access_docs OWNER TO regress_access_admin;   -- protect() acts for the owner
CREATE TABLE public.access_not_mine (id bigint PRIMARY KEY, program_id bigint, submitter_id bigint);

-- §8 has_access: refusals (§2, §10) ---------------------------------------------------
SELECT throws_ok($$SELECT carm.has_access('300000007RM0001', 'rulings.view')$$, '42501', 'no acting user',
                 '§2: has_access without an actor is 42501');
SELECT throws_ok($$SET LOCAL ROLE regress_access_app; SELECT carm.has_access('300000007', 'business_profile.view')$$,
                 '42501', 'no acting user', '§2: also for a carm_gateway member that set no actor');
SELECT pg_temp.act('clara') \g /dev/null
SELECT throws_ok($$SELECT carm.has_access(NULL, 'rulings.view')$$, '22004', NULL, '§10: a NULL target is 22004');
SELECT throws_ok($$SELECT carm.has_access('300000007RM0001', NULL)$$, '22004', NULL, '§10: a NULL permission is 22004');
SELECT throws_ok($$SELECT carm.has_access(NULL, NULL)$$, '22004', NULL, '§10: NULL and NULL is 22004');
SELECT throws_ok(format('SELECT carm.has_access(%L, %L)', t, 'rulings.view'), '22023', NULL,
                 format('§10: the malformed target %s is 22023', d))
FROM (VALUES ('300000008', 'BN9 with a wrong check digit'),
             ('30000000', 'eight digits'),
             ('3000000070', 'ten digits'),
             ('30000000x', 'a letter in a BN9'),
             ('300000007RM001', 'BN15 of 14 characters'),
             ('300000007RT0001', 'BN15 of another program identifier than RM'),
             ('300000007rm0001', 'BN15 in lower case'),
             ('300000008RM0001', 'BN15 whose BN9 has a wrong check digit'),
             ('300000007RM00O1', 'BN15 with a letter O in the number'),
             (' 300000007', 'BN9 with a leading space'),
             ('', 'empty string')) AS x(t, d);
SELECT throws_ok(format('SELECT carm.has_access(repeat(%L, 100000), %L)', '9', 'rulings.view'), '22023', NULL,
                 '§10: a huge target is 22023');
SELECT throws_ok($$SELECT carm.has_access('500000005', 'business_profile.view')$$, 'P0002',
                 'business 500000005 does not exist', '§10: an unknown well-formed BN9 is P0002');
SELECT throws_ok($$SELECT carm.has_access('300000007RM0009', 'rulings.view')$$, 'P0002',
                 'program account 300000007RM0009 does not exist', '§10: an unknown BN15 of a known business is P0002');
SELECT throws_ok($$SELECT carm.has_access('500000005RM0001', 'rulings.view')$$, 'P0002', NULL,
                 '§10: an unknown BN15 of an unknown business is P0002');
SELECT throws_ok(format('SELECT carm.has_access(%L, %L)', '300000007RM0001', p), '22023', NULL,
                 format('§10: the permission %s is 22023 (%s)', quote_literal(p), d))
FROM (VALUES ('rulings', 'no level'),
             ('rulings.', 'empty level'),
             ('.view', 'empty function'),
             ('rulings.delete', 'unknown level'),
             ('rulings.view.edit', 'two levels'),
             ('ruling.view', 'unknown function'),
             ('banking.admin', 'unknown level'),
             ('RULINGS.VIEW', 'names are lower case'),
             ('rulings.view ', 'trailing space'),
             ('', 'empty')) AS x(p, d);
SELECT throws_ok(format('SELECT carm.has_access(%L, repeat(%L, 100000) || %L)', '300000007RM0001', 'x', '.view'),
                 '22023', NULL, '§10: a huge permission is 22023');
SELECT is(carm.has_access('300000007RM0002', 'banking.manage'), true, '§8: has_access decides for the actor (BAM)');
SELECT pg_temp.act('vera') \g /dev/null
SELECT is(carm.has_access('300000007RM0002', 'banking.view'), false, '§8: has_access decides for the actor (VIEWER)');
SELECT pg_temp.act('olga') \g /dev/null
SELECT is(carm.has_access('300000007', 'business_profile.view'), false, 'E13: an unassociated actor has nothing');
SELECT carm.reset_actor() \g /dev/null

-- user_has_access, protect, unprotect: carm_admin only ---------------------------------
SELECT throws_ok(format('SET LOCAL ROLE regress_access_nobody; SELECT carm.user_has_access(%s, %L, %L)',
                        pg_temp.uid('clara'), '300000007', 'business_profile.view'),
                 '42501', NULL, '§8: user_has_access is refused to a role with no grants');
SELECT throws_ok(format('SET LOCAL ROLE regress_access_app; SELECT carm.user_has_access(%s, %L, %L)',
                        pg_temp.uid('clara'), '300000007', 'business_profile.view'),
                 '42501', NULL, '§8: user_has_access is refused to carm_gateway');
SET LOCAL ROLE regress_access_admin;
SELECT is(carm.user_has_access(pg_temp.uid('clara'), '300000007', 'business_profile.manage'), true,
          '§8: user_has_access is allowed to carm_admin');
RESET ROLE;
SELECT throws_ok($$SELECT carm.user_has_access(NULL, '300000007', 'rulings.view')$$, '22004', NULL,
                 '§10: user_has_access with a NULL user is 22004');
SELECT throws_ok(format('SELECT carm.user_has_access(%s, NULL, %L)', pg_temp.uid('clara'), 'rulings.view'),
                 '22004', NULL, '§10: user_has_access with a NULL target is 22004');
SELECT throws_ok(format('SELECT carm.user_has_access(%s, %L, %L)', pg_temp.uid('clara'), '300000007', 'rulings.own'),
                 '22023', NULL, '§10: user_has_access with an unknown level is 22023');
SELECT is(carm.user_has_access(424242, '300000007', 'business_profile.view'), false,
          '§10: an unknown user id has no access');

SELECT throws_ok($$SET LOCAL ROLE regress_access_nobody;
                   SELECT carm.protect('public.access_docs', 'program_id', 'submitter_id', 'rulings')$$,
                 '42501', NULL, '§8: protect is refused to a role with no grants');
SELECT throws_ok($$SET LOCAL ROLE regress_access_app;
                   SELECT carm.protect('public.access_docs', 'program_id', 'submitter_id', 'rulings')$$,
                 '42501', NULL, '§8: protect is refused to carm_gateway');
GRANT EXECUTE ON FUNCTION carm.protect(regclass, name, name, text), carm.unprotect(regclass)
  TO regress_access_app;
SELECT throws_ok($$SET LOCAL ROLE regress_access_app;
                   SELECT carm.protect('public.access_docs', 'program_id', 'submitter_id', 'rulings')$$,
                 '42501', 'permission denied: carm_admin only',
                 '§8: protect checks carm_admin itself, even when EXECUTE was granted by mistake');
SELECT is((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.access_docs'::regclass), false,
          '§10: a refused protect changed nothing');
SET LOCAL ROLE regress_access_admin;
SELECT throws_ok($$SELECT carm.protect('public.access_not_mine', 'program_id', 'submitter_id', 'rulings')$$,
                 '42501', 'must be owner of table public.access_not_mine',
                 '§8: carm_admin cannot protect (or later unprotect) a table it does not own');
SELECT lives_ok($$SELECT carm.protect('public.access_docs', 'program_id', 'submitter_id', 'rulings')$$,
                '§8: carm_admin protects a table it owns');
RESET ROLE;
SELECT throws_ok($$SET LOCAL ROLE regress_access_nobody; SELECT carm.unprotect('public.access_docs')$$,
                 '42501', NULL, '§8: unprotect is refused to a role with no grants');
SELECT throws_ok($$SET LOCAL ROLE regress_access_app; SELECT carm.unprotect('public.access_docs')$$,
                 '42501', 'permission denied: carm_admin only',
                 '§8: unprotect checks carm_admin itself, even when EXECUTE was granted by mistake');
REVOKE EXECUTE ON FUNCTION carm.protect(regclass, name, name, text), carm.unprotect(regclass)
  FROM regress_access_app;
SELECT throws_ok($$SET LOCAL ROLE regress_access_app; SELECT carm.unprotect('public.access_docs')$$,
                 '42501', NULL, '§8: unprotect is refused to carm_gateway');
SELECT is((SELECT count(*)::int FROM pg_policy WHERE polrelid = 'public.access_docs'::regclass), 4,
          '§10: a refused unprotect changed nothing');
SET LOCAL ROLE regress_access_admin;
SELECT lives_ok($$SELECT carm.unprotect('public.access_docs')$$, '§8: carm_admin unprotects the table');
RESET ROLE;

-- §8 accessible_programs ----------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM carm.accessible_programs('rulings.view')$$, '42501', 'no acting user',
                 '§2: accessible_programs without an actor is 42501');
SET LOCAL ROLE regress_access_app;
SELECT pg_temp.act('clara') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('banking.manage')$$,
                  $$VALUES ('300000007RM0001'), ('300000007RM0002')$$,
                  '§8 accessible_programs: a client BAM manages banking on its programs');
SELECT results_eq($$SELECT * FROM carm.accessible_programs('rulings.view')$$,
                  $$VALUES ('300000007RM0001', '300000007', 'Program 300000007RM0001'),
                           ('300000007RM0002', '300000007', 'Program 300000007RM0002')$$,
                  '§8 accessible_programs: BN15, BN9 and name, ordered by BN15');
SELECT throws_ok($$SELECT * FROM carm.accessible_programs(NULL)$$, '22004', NULL,
                 '§10: accessible_programs(NULL) is 22004');
SELECT throws_ok($$SELECT * FROM carm.accessible_programs('rulings.any')$$, '22023', NULL,
                 '§10: accessible_programs with an unknown level is 22023');
SELECT throws_ok($$SELECT * FROM carm.accessible_programs('profile.view')$$, '22023', NULL,
                 '§10: accessible_programs with an unknown function is 22023');
SELECT pg_temp.act('carl') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('employee_access.manage')$$,
                  $$VALUES ('300000007RM0001')$$,
                  '§8 accessible_programs: a listed PAM manages employee access on its program only (E5)');
SELECT pg_temp.act('vera') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('payments.view')$$,
                  $$VALUES ('300000007RM0001'), ('300000007RM0002')$$,
                  '§8 accessible_programs: a VIEWER views payments everywhere');
SELECT is_empty($$SELECT bn15 FROM carm.accessible_programs('payments.edit')$$,
                '§8 accessible_programs: a VIEWER edits no payments');
SELECT pg_temp.act('paula') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.manage')$$,
                  $$VALUES ('100000009RM0001'), ('300000007RM0001'), ('300000007RM0002'), ('700000003RM0001')$$,
                  '§8 accessible_programs: a provider BAM manages rulings at home and for both BUSINESS clients (R6)');
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('banking.view')$$,
                  $$VALUES ('100000009RM0001')$$,
                  '§8 accessible_programs: but banking only at home (R11)');
SELECT pg_temp.act('pete') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.manage')$$,
                  $$VALUES ('300000007RM0001')$$,
                  '§8 accessible_programs: a PPAM assigned on RM0001 (R7)');
SELECT pg_temp.act('gus') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.edit')$$,
                  $$VALUES ('100000009RM0001')$$,
                  '§8 accessible_programs: G5, the individual PVIEWER overrides the group''s PEDITOR, even lower');
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.view')$$,
                  $$VALUES ('100000009RM0001'), ('300000007RM0001'), ('300000007RM0002')$$,
                  '§8 accessible_programs: ... and views through it');
SELECT pg_temp.act('gina') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.edit')$$,
                  $$VALUES ('100000009RM0001'), ('300000007RM0001'), ('300000007RM0002')$$,
                  '§8 accessible_programs: a group PEDITOR edits every delegated program (G4)');
SELECT pg_temp.act('bob') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('payments.manage')$$,
                  $$VALUES ('200000008RM0001'), ('300000007RM0002')$$,
                  '§8 accessible_programs: the BAM of a PROGRAM provider, on the delegated program (R6)');
SELECT pg_temp.act('ivan') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.edit')$$,
                  $$VALUES ('400000006RM0001')$$,
                  '§8 accessible_programs: EXPIRED edits nothing of the client (V4)');
SELECT pg_temp.act('oscar') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('rulings.view')$$,
                  $$VALUES ('600000004RM0001')$$,
                  '§8 accessible_programs: nothing of a client whose relationship expired by time (R9)');
SELECT pg_temp.act('nia') \g /dev/null
SELECT results_eq($$SELECT bn15 FROM carm.accessible_programs('statements.view')$$,
                  $$VALUES ('100000009RM0001')$$,
                  '§8 accessible_programs: an unassigned provider employee, only its own business');
SELECT throws_ok($$SELECT pg_temp.act('dora')$$, '28000',
                 NULL, '§2, §10 (rev. 1.2) set_actor: a deactivated user is refused at once, 28000 (E13)');
SELECT throws_ok($$SELECT pg_temp.acting_deactivated('dora', 'SELECT carm.accessible_programs(''statements.view'')')$$, '28000',
                 NULL, '§2, §10 (rev. 1.2) accessible_programs: a deactivated actor is refused, 28000 (E13)');
SELECT throws_ok($$SELECT pg_temp.acting_deactivated('dora', 'SELECT carm.has_access(''100000009RM0001'', ''statements.view'')')$$, '28000',
                 NULL, '§2, §10 (rev. 1.2) has_access: a deactivated actor is refused, 28000');
SELECT pg_temp.act('olga') \g /dev/null
SELECT is_empty($$SELECT bn15 FROM carm.accessible_programs('statements.view')$$,
                '§8 accessible_programs: an unassociated user, nothing (E13)');
RESET ROLE;
SELECT is(pg_temp.disagreements(u), '{}'::text[],
          format('§8: accessible_programs agrees with has_access on every program, for %s', u))
FROM unnest(ARRAY['clara', 'carl', 'vera', 'paula', 'pam', 'pete', 'gus', 'gina', 'bob', 'ivan',
                  'olaf', 'oscar', 'nia']) u;

-- §8 explain_access (as carm_admin) -------------------------------------------------
SELECT results_eq($$SELECT * FROM pg_temp.explain('clara', '300000007')$$,
                  $$VALUES ('employee', 'BAM', '300000007', 'all programs', true, 'employee of the business (V1)')$$,
                  '§8 explain_access: a client BAM, by its employee role');
SELECT results_eq($$SELECT * FROM pg_temp.explain('carl', '300000007RM0001')$$,
                  $$VALUES ('employee', 'PAM', '300000007', '300000007RM0001', true, 'employee of the business (V1)')$$,
                  '§8 explain_access: a listed PAM, on its program');
SELECT results_eq($$SELECT * FROM pg_temp.explain('carl', '300000007RM0002')$$,
                  $$VALUES ('employee', 'PAM', '300000007', '300000007RM0001', true,
                            'employee of the business (V1); program not in the employee''s scope (E5): business profile only')$$,
                  '§8 explain_access: a listed PAM, on another program: the business profile only, as the check decides (E5, §3.2)');
SELECT is((SELECT permissions FROM carm.explain_access(pg_temp.uid('carl'), '300000007RM0002')),
          '{business_profile.view}'::text[],
          '§8 explain_access: ... and the permissions it grants there are those of user_has_access');
SELECT results_eq($$SELECT * FROM pg_temp.explain('dora', '300000007')$$,
                  $$VALUES ('employee', 'EDITOR', '300000007', '300000007RM0002', false, 'user is deactivated (§2)')$$,
                  '§8 explain_access: a deactivated employee: not in force (E13)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('paula', '300000007RM0002')$$,
                  format($$VALUES ('relationship #%s (BUSINESS)', 'PBAM', '100000009', 'all programs', true,
                                   'business account manager of the service provider (R6)')$$, :rel_acme),
                  '§8 explain_access: a provider BAM is PBAM through a BUSINESS relationship (R6)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('bob', '300000007RM0001')$$,
                  format($$VALUES ('relationship #%s (PROGRAM)', 'PPAM', '200000008', '300000007RM0002', false,
                                   'program not delegated by the relationship (R5)')$$, :rel_beta),
                  '§8 explain_access: PPAM of a PROGRAM relationship, on a program it does not delegate');
SELECT results_eq($$SELECT * FROM pg_temp.explain('bob', '300000007RM0002')$$,
                  format($$VALUES ('relationship #%s (PROGRAM)', 'PPAM', '200000008', '300000007RM0002', true,
                                   'business account manager of the service provider (R6)')$$, :rel_beta),
                  '§8 explain_access: ... and on the one it delegates');
SELECT results_eq($$SELECT * FROM pg_temp.explain('ivan', '300000007RM0001')$$,
                  format($$VALUES ('relationship #%s (PROGRAM)', 'EXPIRED', '400000006', '300000007RM0001', true,
                                   'relationship ended at <time>: read-only, own submissions (V4)')$$, :rel_cedar),
                  '§8 explain_access: the BAM of a provider whose relationship ended holds EXPIRED (R9, V4)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('olaf', '300000007RM0001')$$,
                  format($$VALUES ('relationship #%s (BUSINESS)', 'EXPIRED', '600000004', 'all programs', true,
                                   'relationship expired at <time>: read-only, own submissions (V4)')$$, :rel_fir),
                  '§8 explain_access: expired by time, without maintenance: EXPIRED (R9)');
SELECT is((SELECT reason FROM carm.explain_access(pg_temp.uid('olaf'), '300000007RM0001')),
          (SELECT 'relationship expired at ' || expires_at || ': read-only, own submissions (V4)'
           FROM carm.relationship WHERE id = :rel_fir),
          '§8 explain_access: the time given is the relationship''s expires_at');
SELECT results_eq($$SELECT * FROM pg_temp.explain('oscar', '300000007RM0001')$$,
                  format($$VALUES ('assignment on relationship #%s', 'PVIEWER', '600000004', 'all delegated programs',
                                   false, 'relationship expired at <time> (R9)')$$, :rel_fir),
                  '§8 explain_access: an assignment on a relationship expired by time is not in force (R9)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('pete', '300000007RM0001')$$,
                  format($$VALUES ('assignment on relationship #%s', 'PPAM', '100000009', '300000007RM0001', true,
                                   'assigned by the service provider (R7)')$$, :rel_acme),
                  '§8 explain_access: an individual assignment (R7)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('pete', '300000007RM0002')$$,
                  format($$VALUES ('assignment on relationship #%s', 'PPAM', '100000009', '300000007RM0001', false,
                                   'program not in the assignment (R7)')$$, :rel_acme),
                  '§8 explain_access: ... not in force outside its programs');
SELECT results_eq($$SELECT * FROM pg_temp.explain('gus', '300000007RM0001')$$,
                  format($$VALUES ('assignment on relationship #%s', 'PVIEWER', '100000009', 'all delegated programs',
                                   true, 'assigned by the service provider (R7)'),
                                  ('group "Importers" on relationship #%1$s', 'PEDITOR', '100000009',
                                   'all delegated programs', false, 'overridden by an individual assignment (G5)')$$,
                         :rel_acme),
                  '§8 explain_access: a group role overridden by an individual assignment (G4, G5)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('gina', '300000007RM0002')$$,
                  format($$VALUES ('group "Importers" on relationship #%s', 'PEDITOR', '100000009',
                                   'all delegated programs', true, 'employee of the client group (G4)')$$, :rel_acme),
                  '§8 explain_access: a group role (G4)');
SELECT results_eq($$SELECT * FROM pg_temp.explain('pam', '300000007RM0001')$$,
                  format($$VALUES ('relationship #%s (BUSINESS)', 'SPMGR', '100000009', 'all programs', true,
                                   'program account manager of the service provider: reads its submissions (V3)')$$,
                         :rel_acme),
                  '§8 explain_access: a provider PAM reads what its business submitted (V3)');
SELECT is_empty($$SELECT * FROM pg_temp.explain('nia', '300000007')$$,
                '§8 explain_access: no path for an unassigned provider employee');
SELECT is_empty($$SELECT * FROM pg_temp.explain('olga', '300000007RM0001')$$,
                '§8 explain_access: no path for an unassociated user');
SELECT throws_ok($$SELECT * FROM carm.explain_access(424242, '300000007')$$, 'P0002', NULL,
                 '§10: explain_access for an unknown user is P0002');
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('clara'), '30000000X'),
                 '22023', NULL, '§10: explain_access with a malformed target is 22023');
-- one lookup, one message (src/target.c): a report names a malformed target
-- as has_access does, whatever its length
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('clara'), '30000000X'),
                 '22023', 'invalid business or program number "30000000X"',
                 '§10: explain_access and has_access name a malformed nine-character target alike');
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('clara'), '300000007RX0001'),
                 '22023', 'invalid business or program number "300000007RX0001"',
                 '§10: explain_access and has_access name a malformed BN15 alike');
SELECT throws_ok($$SELECT carm.program_id('300000007RX0001')$$,
                 '22023', 'invalid program account number "300000007RX0001"',
                 '§10: program_id names a malformed BN15 (the same lookup, a BN15 expected)');
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('clara'), '300000007RM0009'),
                 'P0002', NULL, '§10: explain_access with an unknown target is P0002');

-- who may explain: carm_admin, or a BAM of the target's business for its own employees
SELECT throws_ok(format('SET LOCAL ROLE regress_access_app; SELECT * FROM carm.explain_access(%s, %L)',
                        pg_temp.uid('vera'), '300000007'),
                 '42501', 'no acting user', '§8 explain_access: refused without an actor');
SET LOCAL ROLE regress_access_app;
SELECT pg_temp.act('carl') \g /dev/null
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('vera'), '300000007'),
                 '42501', NULL, '§8 explain_access: refused to a client PAM');
SELECT throws_ok($$SELECT * FROM carm.explain_access(424242, '300000007')$$,
                 '42501', NULL, '§8 explain_access: refused before the user is looked up (no P0002 for an unknown id)');
SELECT pg_temp.act('vera') \g /dev/null
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('vera'), '300000007RM0001'),
                 '42501', NULL, '§8 explain_access: refused to a VIEWER, even about itself');
SELECT pg_temp.act('paula') \g /dev/null
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('pete'), '300000007'),
                 '42501', NULL, '§8 explain_access: refused to a PBAM on the client (R11)');
SELECT results_eq(format('SELECT path, role, in_force FROM carm.explain_access(%s, %L)', pg_temp.uid('pete'), '100000009'),
                  $$VALUES ('employee', 'EDITOR', true)$$,
                  '§8 explain_access: a provider BAM explains its own employee on its own business');
SELECT pg_temp.act('clara') \g /dev/null
SELECT results_eq(format('SELECT path, role, via, scope, in_force FROM carm.explain_access(%s, %L)',
                         pg_temp.uid('carl'), '300000007RM0002'),
                  $$VALUES ('employee', 'PAM', '300000007', '300000007RM0001', true)$$,
                  '§8 explain_access: allowed to a client BAM for its own employee');
SELECT results_eq(format('SELECT path, role, in_force FROM carm.explain_access(%s, %L)', pg_temp.uid('paula'), '300000007'),
                  format($$VALUES ('relationship #%s (BUSINESS)', 'PBAM', true)$$, :rel_acme),
                  '§8 explain_access: a client BAM explains the access of a provider''s BAM to its business (rev. 1.1)');
SELECT results_eq(format('SELECT path, role, in_force FROM carm.explain_access(%s, %L)', pg_temp.uid('pete'), '300000007RM0001'),
                  format($$VALUES ('assignment on relationship #%s', 'PPAM', true)$$, :rel_acme),
                  '§8 explain_access: ... and of a provider''s employee (rev. 1.1)');
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('olga'), '300000007'),
                 '42501', NULL, '§8 explain_access: refused to a client BAM for a user with no path to its business');
SELECT throws_ok($$SELECT * FROM carm.explain_access(424242, '300000007')$$,
                 '42501', NULL, '§8 explain_access: refused to a client BAM for an unknown user id (not its employee)');
SELECT throws_ok(format('SELECT * FROM carm.explain_access(%s, %L)', pg_temp.uid('oliver'), '700000003'),
                 '42501', NULL, '§8 explain_access: refused to a BAM of another business');
RESET ROLE;
SELECT carm.reset_actor() \g /dev/null

-- §8 who_has_access ----------------------------------------------------------------
SELECT throws_ok($$SET LOCAL ROLE regress_access_app; SELECT * FROM carm.who_has_access('300000007')$$,
                 '42501', 'no acting user', '§8 who_has_access: refused without an actor');
SET LOCAL ROLE regress_access_app;
SELECT pg_temp.act('carl') \g /dev/null
SELECT throws_ok($$SELECT * FROM carm.who_has_access('300000007RM0001')$$, '42501', NULL,
                 '§8 who_has_access: refused to a client PAM');
SELECT pg_temp.act('paula') \g /dev/null
SELECT throws_ok($$SELECT * FROM carm.who_has_access('300000007')$$, '42501', NULL,
                 '§8 who_has_access: refused to a PBAM (R11)');
SELECT pg_temp.act('clara') \g /dev/null
SELECT throws_ok($$SELECT * FROM carm.who_has_access('30000000X')$$, '22023', NULL,
                 '§10: who_has_access with a malformed target is 22023');
SELECT throws_ok($$SELECT * FROM carm.who_has_access('500000005')$$, 'P0002', NULL,
                 '§10: who_has_access with an unknown target is P0002');
SELECT results_eq($$SELECT full_name, role, via, scope, path FROM carm.who_has_access('300000007')$$,
                  format($$VALUES ('Clara', 'BAM', '300000007', 'all programs', 'employee'),
                                  ('Carl', 'PAM', '300000007', '300000007RM0001', 'employee'),
                                  ('Vera', 'VIEWER', '300000007', 'all programs', 'employee'),
                                  (NULL, 'BUSINESS', '100000009', 'all programs',
                                   'relationship #%s, sees client submissions'),
                                  (NULL, 'PROGRAM', '200000008', '300000007RM0002', 'relationship #%s')$$,
                         :rel_acme, :rel_beta),
                  '§8 who_has_access, client BAM: its active employees and active relationships, no provider people');
SELECT results_eq($$SELECT full_name, role, via, scope, path FROM carm.who_has_access('300000007RM0001')$$,
                  format($$VALUES ('Clara', 'BAM', '300000007', 'all programs', 'employee'),
                                  ('Carl', 'PAM', '300000007', '300000007RM0001', 'employee'),
                                  ('Vera', 'VIEWER', '300000007', 'all programs', 'employee'),
                                  (NULL, 'BUSINESS', '100000009', 'all programs',
                                   'relationship #%s, sees client submissions')$$, :rel_acme),
                  '§8 who_has_access, client BAM, on a program: only what covers it');
SELECT pg_temp.act('oliver') \g /dev/null
SELECT throws_ok($$SELECT * FROM carm.who_has_access('300000007')$$, '42501', NULL,
                 '§8 who_has_access: refused to the BAM of another business');
RESET ROLE;
SELECT carm.reset_actor() \g /dev/null

SET LOCAL ROLE regress_access_admin;
SELECT bag_eq($$SELECT full_name, role, via, scope, path, kind FROM carm.who_has_access('300000007')$$,
              format($$VALUES ('Clara', 'BAM', '300000007', 'all programs', 'employee', 'employee'),
                              ('Carl', 'PAM', '300000007', '300000007RM0001', 'employee', 'employee'),
                              ('Vera', 'VIEWER', '300000007', 'all programs', 'employee', 'employee'),
                              (NULL, 'BUSINESS', '100000009', 'all programs',
                               'relationship #%1$s, sees client submissions', 'relationship'),
                              (NULL, 'PROGRAM', '200000008', '300000007RM0002', 'relationship #%2$s', 'relationship'),
                              ('Paula', 'PBAM', '100000009', 'all programs', 'relationship #%1$s (BUSINESS)', 'proxy'),
                              ('Bob', 'PPAM', '200000008', '300000007RM0002', 'relationship #%2$s (PROGRAM)', 'program'),
                              ('Pete', 'PPAM', '100000009', '300000007RM0001', 'assignment on relationship #%1$s', 'program'),
                              ('Gus', 'PVIEWER', '100000009', 'all delegated programs', 'assignment on relationship #%1$s', 'program'),
                              ('Gina', 'PEDITOR', '100000009', 'all delegated programs',
                               'group "Importers" on relationship #%1$s', 'program'),
                              ('Pam', 'SPMGR', '100000009', 'all programs', 'relationship #%1$s (BUSINESS)', 'row-only'),
                              ('Ivan', 'EXPIRED', '400000006', '300000007RM0001', 'relationship #%3$s (PROGRAM)', 'row-only'),
                              ('Olaf', 'EXPIRED', '600000004', 'all programs', 'relationship #%4$s (BUSINESS)', 'row-only')$$,
                     :rel_acme, :rel_beta, :rel_cedar, :rel_fir),
              '§8 who_has_access, carm_admin: everyone, provider people included, one row shape with a kind: no group row overridden by an assignment (G5); V3/V4 paths marked row-only; paths to programs only marked program');
SELECT bag_eq($$SELECT full_name, role, via, scope, path, kind FROM carm.who_has_access('300000007RM0002')$$,
              format($$VALUES ('Clara', 'BAM', '300000007', 'all programs', 'employee', 'employee'),
                              ('Carl', 'PAM', '300000007', '300000007RM0001', 'employee', 'employee'),
                              ('Vera', 'VIEWER', '300000007', 'all programs', 'employee', 'employee'),
                              (NULL, 'BUSINESS', '100000009', 'all programs',
                               'relationship #%1$s, sees client submissions', 'relationship'),
                              (NULL, 'PROGRAM', '200000008', '300000007RM0002', 'relationship #%2$s', 'relationship'),
                              ('Paula', 'PBAM', '100000009', 'all programs', 'relationship #%1$s (BUSINESS)', 'proxy'),
                              ('Bob', 'PPAM', '200000008', '300000007RM0002', 'relationship #%2$s (PROGRAM)', 'proxy'),
                              ('Gus', 'PVIEWER', '100000009', 'all delegated programs', 'assignment on relationship #%1$s', 'proxy'),
                              ('Gina', 'PEDITOR', '100000009', 'all delegated programs',
                               'group "Importers" on relationship #%1$s', 'proxy'),
                              ('Pam', 'SPMGR', '100000009', 'all programs', 'relationship #%1$s (BUSINESS)', 'row-only'),
                              ('Olaf', 'EXPIRED', '600000004', 'all programs', 'relationship #%4$s (BUSINESS)', 'row-only')$$,
                     :rel_acme, :rel_beta, :rel_cedar, :rel_fir),
              '§8 who_has_access, carm_admin, on a program: only the paths that reach it (an assignment on RM0001 does not; Carl, a PAM of RM0001, holds the business profile there)');
SELECT is((SELECT permissions FROM carm.who_has_access('300000007RM0002') WHERE full_name = 'Carl'),
          '{business_profile.view}'::text[],
          '§8 who_has_access: what a path grants on the target, as user_has_access decides (E5, §3.2)');
RESET ROLE;
SELECT is((SELECT array_agg(DISTINCT w.user_id ORDER BY w.user_id) FROM carm.who_has_access('300000007RM0001') w
           WHERE w.kind IN ('employee', 'proxy')),
          (SELECT array_agg(u.id ORDER BY u.id) FROM carm.app_user u
           WHERE carm.user_has_access(u.id, '300000007RM0001', 'program_profile.view')),
          '§8 who_has_access, carm_admin: the employee and proxy rows on a program are the people the check lets in (V3 and V4 paths are row-only: §8 rev. 1.1)');
SELECT is((SELECT array_agg(w.full_name ORDER BY w.full_name) FROM carm.who_has_access('300000007RM0001') w
           WHERE w.kind = 'row-only'),
          ARRAY['Ivan', 'Olaf', 'Pam'],
          '§8 who_has_access: the provider PAM (V3) and the BAMs holding EXPIRED (V4) are listed, marked row-only');

-- §8 my_access: the actor's own paths, as explain_access shows them
SELECT throws_ok($$SET LOCAL ROLE regress_access_app; SELECT * FROM carm.my_access('300000007')$$,
                 '42501', 'no acting user', '§8 my_access: refused without an actor');
SET LOCAL ROLE regress_access_app;
SELECT pg_temp.act('pete') \g /dev/null
SELECT results_eq($$SELECT path, role, in_force, permissions FROM carm.my_access('300000007RM0001')$$,
                  format($$VALUES ('assignment on relationship #%s', 'PPAM', true,
                                   '{notifications.view,payments.edit,payments.manage,payments.view,program_profile.view,rulings.edit,rulings.manage,rulings.view,statements.view}'::text[])$$,
                         :rel_acme),
                  '§8 my_access: a provider employee sees why it can act on a client program (R7)');
SELECT results_eq($$SELECT path, in_force, reason FROM carm.my_access('300000007RM0002')$$,
                  format($$VALUES ('assignment on relationship #%s', false, 'program not in the assignment (R7)')$$, :rel_acme),
                  '§8 my_access: ... and why not on another');
SELECT pg_temp.act('olga') \g /dev/null
SELECT is_empty($$SELECT * FROM carm.my_access('300000007')$$, '§8 my_access: no path for an unassociated user (E13)');
SELECT throws_ok($$SELECT * FROM carm.my_access('30000000X')$$, '22023', NULL, '§10: my_access with a malformed target is 22023');
RESET ROLE;
SET LOCAL ROLE regress_access_app;
SELECT pg_temp.act('vera') \g /dev/null
RESET ROLE;
SELECT carm.deactivate_user(pg_temp.uid('vera')) \g /dev/null
SET LOCAL ROLE regress_access_app;
SELECT throws_ok($$SELECT * FROM carm.my_access('300000007')$$, '28000', NULL,
                 '§2, §10 (rev. 1.2) my_access: refused to a deactivated actor, 28000');
RESET ROLE;
SELECT carm.reset_actor() \g /dev/null

SELECT * FROM finish();
ROLLBACK;
