-- carm_deleg demo: a customs importer, its employees, two customs brokers, a
-- trade consultant, client groups and a protected table, acted out through the
-- API.  Run by scripts/demo.sh on a throw-away cluster; every statement is
-- echoed, refusals are expected and shown right after their statement.
--
-- The portal back end is the LOGIN role demo_portal, a member of
-- carm_gateway and nothing else (no superuser, no BYPASSRLS: row-level
-- security applies to it).  Here SET ROLE demo_portal stands in for its
-- connection.  It says who acts at the start of each transaction —
-- BEGIN; SELECT carm.set_actor('alice'); ...; COMMIT; — the form that is
-- safe behind transaction-pooling poolers: the actor ends with the
-- transaction.  ON_ERROR_ROLLBACK lets a transaction go on after a refusal.
\set ON_ERROR_STOP 0
\set ON_ERROR_ROLLBACK on
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS app CASCADE;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'demo_portal') THEN
    CREATE ROLE demo_portal LOGIN IN ROLE carm_gateway;
  END IF;
END $$;
\set ECHO queries

\qecho
\qecho '=== 1. The CBSA loads reference data (carm_admin) ==='
SELECT carm.add_business('100000009', 'Maple Imports Ltd.', '{IMPORTER}')            AS maple,
       carm.add_business('200000008', 'Northern Customs Brokers', '{CUSTOMS_BROKER}') AS northern,
       carm.add_business('300000007', 'Harbour Brokerage', '{CUSTOMS_BROKER}')        AS harbour,
       carm.add_business('400000006', 'Trade Advisors Inc.', '{TRADE_CONSULTANT}')    AS advisors,
       carm.add_business('500000005', 'Pacific Importers', '{IMPORTER}')              AS pacific;
SELECT carm.add_program_account('100000009RM0001', 'Maple imports'),
       carm.add_program_account('100000009RM0002', 'Maple warehouse'),
       carm.add_program_account('200000008RM0001'), carm.add_program_account('300000007RM0001'),
       carm.add_program_account('400000006RM0001'), carm.add_program_account('500000005RM0001');
SELECT carm.add_business('123456789', 'Typo Corp', '{IMPORTER}');   -- wrong check digit: 22023
SELECT carm.register_user(x, initcap(x)) FROM unnest(ARRAY['alice','bob','carol','dave','erin',
       'heidi','frank','grace','paul']) x;

\qecho
\qecho '=== 2. Employee delegation (E1-E13) ==='
SET ROLE demo_portal;    -- the portal back end: a member of carm_gateway
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT carm.register_business('100000009', '100000009RM0001');      -- E1: first user becomes BAM
COMMIT;
BEGIN; SELECT carm.set_actor('bob') \gset
SELECT carm.register_business('100000009', '100000009RM0001');      -- E1: there is a BAM already
SELECT carm.request_employee_access('100000009', 'Customs clerk, imports desk') AS bob_request \gset
COMMIT;
BEGIN; SELECT carm.set_actor('carol') \gset
SELECT carm.request_employee_access('100000009', 'Summer intern') AS carol_request \gset
COMMIT;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT request_id, full_name, comment, status FROM carm.employee_access_requests('100000009');
SELECT carm.approve_employee_access(:bob_request, 'EDITOR', '{100000009RM0001}');
SELECT carm.reject_employee_access(:carol_request, '   ');            -- E4: a reason is required
SELECT carm.reject_employee_access(:carol_request, 'Interns get access through their supervisor');
COMMIT;
BEGIN; SELECT carm.set_actor('carol') \gset
SELECT bn9, status, reason FROM carm.my_access_requests();           -- E4: carol sees why
COMMIT;
BEGIN; SELECT carm.set_actor('bob') \gset
SELECT carm.approve_employee_access(:carol_request, 'VIEWER');       -- not pending any more
COMMIT;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT carm.set_employee_access('100000009', carm.actor(), 'PAM', '{100000009RM0001}');  -- E6
SELECT carm.set_employee_access('100000009', 2, 'BAM');              -- E11: promote bob to BAM
SELECT carm.set_employee_access('100000009', 2, 'VIEWER', '{100000009RM0001}');  -- E10 warning
SELECT user_id, full_name, role, programs FROM carm.employees('100000009') ORDER BY user_id;
COMMIT;
RESET ROLE;
SELECT carm.reset_actor();
\qecho 'E9: even a direct write by the DBA cannot leave Maple without a BAM'
UPDATE carm.employee SET role = 'PAM', programs = '{1}' WHERE user_id = 1;

\qecho
\qecho '=== 3. Service providers register; Northern asks Maple for a relationship (R1-R7) ==='
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor('dave') \gset
SELECT carm.register_business('200000008', '200000008RM0001');
COMMIT;
BEGIN; SELECT carm.set_actor('frank') \gset
SELECT carm.register_business('300000007', '300000007RM0001');
COMMIT;
BEGIN; SELECT carm.set_actor('grace') \gset
SELECT carm.register_business('400000006', '400000006RM0001');
COMMIT;
BEGIN; SELECT carm.set_actor('paul') \gset
SELECT carm.register_business('500000005', '500000005RM0001');
COMMIT;
BEGIN; SELECT carm.set_actor('erin') \gset
SELECT carm.request_employee_access('200000008', 'Senior broker') AS erin_request \gset
COMMIT;
BEGIN; SELECT carm.set_actor('heidi') \gset
SELECT carm.request_employee_access('200000008', 'Broker, west coast') AS heidi_request \gset
COMMIT;
BEGIN; SELECT carm.set_actor('dave') \gset
SELECT carm.approve_employee_access(:erin_request, 'EDITOR'), carm.approve_employee_access(:heidi_request, 'EDITOR');
SELECT carm.request_relationship('100000009', '200000008', 'We clear your shipments');  -- R1: the importer is no SP
SELECT carm.request_relationship('200000008', '100000009', 'Customs clearance for all Maple imports') AS northern_maple \gset
COMMIT;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT carm.approve_relationship(:northern_maple, 'BUSINESS', see_client_submissions => true);
COMMIT;
BEGIN; SELECT carm.set_actor('dave') \gset
SELECT carm.assign_client_access('200000008', '100000009', 5, 'PBAM');      -- R7: never PBAM
SELECT carm.assign_client_access('200000008', '100000009', 5, 'PEDITOR');   -- erin
COMMIT;
BEGIN; SELECT carm.set_actor('frank') \gset
SELECT carm.request_relationship('300000007', '100000009', 'Rush clearance, port of Halifax') AS harbour_maple \gset
COMMIT;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT carm.approve_relationship(:harbour_maple, 'PROGRAM', '{100000009RM0001}',
                                 expires_at => clock_timestamp() + interval '3 seconds');
SELECT id, provider_name, status, access_type, programs, see_client_submissions AS sees_client, expires_at IS NOT NULL AS expires
FROM carm.relationships('100000009') ORDER BY id;
COMMIT;
RESET ROLE;
SELECT * FROM carm.explain_access(5, '100000009RM0002');   -- why erin may act for Maple

\qecho
\qecho '=== 4. Client groups (G1-G9) ==='
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor('dave') \gset
SELECT carm.request_relationship('200000008', '500000005', 'Pacific imports') AS northern_pacific \gset
COMMIT;
BEGIN; SELECT carm.set_actor('paul') \gset
SELECT carm.approve_relationship(:northern_pacific, 'BUSINESS', see_client_submissions => true);
COMMIT;
BEGIN; SELECT carm.set_actor('dave') \gset
SELECT client, legal_name FROM carm.available_clients('200000008') ORDER BY client;
SELECT carm.create_client_group('200000008', 'Importers', '{100000009,500000005}') AS grp \gset
SELECT carm.create_client_group('200000008', ' IMPORTERS ', '{}');        -- G2: name taken
SELECT carm.assign_group_employees(:grp, '{5,6}', 'PVIEWER');               -- erin and heidi
SELECT carm.add_group_clients(:grp, '{400000006}');                       -- G3: no relationship
SELECT name, clients, employees FROM carm.client_groups('200000008');
COMMIT;
RESET ROLE;
\qecho 'G5: erin''s individual PEDITOR on Maple overrides the group''s PVIEWER'
SELECT * FROM carm.explain_access(5, '100000009RM0001');
SELECT carm.user_has_access(5, '100000009RM0001', 'rulings.edit') AS erin_edits_maple,
       carm.user_has_access(6, '100000009RM0001', 'rulings.edit') AS heidi_edits_maple,
       carm.user_has_access(6, '500000005RM0001', 'rulings.view') AS heidi_views_pacific;

\qecho
\qecho '=== 5. A protected table (§6, §8) ==='
CREATE SCHEMA app;
CREATE TABLE app.rulings (id serial PRIMARY KEY, program_id bigint NOT NULL,
                          submitter_id bigint, title text NOT NULL);
CREATE INDEX ON app.rulings (program_id, submitter_id);
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');
GRANT USAGE ON SCHEMA app TO demo_portal;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.rulings TO demo_portal;
GRANT USAGE ON SEQUENCE app.rulings_id_seq TO demo_portal;
SET ROLE demo_portal;
\qecho 'Each actor writes through RLS; the submitter is filled in (V5)'
BEGIN; SELECT carm.set_actor('alice') \gset
INSERT INTO app.rulings (program_id, title) VALUES
  (carm.program_id('100000009RM0001'), 'Tariff classification of maple syrup'),
  (carm.program_id('100000009RM0002'), 'Origin of warehouse stock');
COMMIT;
BEGIN; SELECT carm.set_actor('erin') \gset
INSERT INTO app.rulings (program_id, title) VALUES
  (carm.program_id('100000009RM0001'), 'Valuation ruling filed by Northern');
INSERT INTO app.rulings (program_id, submitter_id, title)
VALUES (carm.program_id('100000009RM0001'), carm.business_id('100000009'), 'forged submitter');
COMMIT;
BEGIN; SELECT carm.set_actor('frank') \gset
INSERT INTO app.rulings (program_id, title) VALUES
  (carm.program_id('100000009RM0001'), 'Marking ruling filed by Harbour');
COMMIT;
BEGIN; SELECT carm.set_actor('heidi') \gset
INSERT INTO app.rulings (program_id, title) VALUES (carm.program_id('100000009RM0001'), 'viewer');
COMMIT;
BEGIN; SELECT carm.set_actor('paul') \gset
INSERT INTO app.rulings (program_id, title) VALUES (carm.program_id('500000005RM0001'), 'Pacific ruling');

COMMIT;
\qecho 'What each actor sees: the same query, filtered by the C check'
CREATE FUNCTION pg_temp.sees(who text) RETURNS TABLE (actor text, sees text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(who);          -- until the end of the statement's transaction
  RETURN QUERY SELECT who, coalesce(string_agg(r.title, ' | ' ORDER BY r.id), '(nothing)')
               FROM app.rulings r;
END $$;
SELECT s.* FROM unnest(ARRAY['alice','bob','dave','erin','heidi','frank','grace','paul']) w,
       pg_temp.sees(w) s;
RESET ROLE;
SELECT * FROM carm.explain_access(6, '100000009RM0002');     -- heidi: group, all programs

\qecho
\qecho '=== 6. Harbour''s relationship expires: no sweep needed (R9, V4) ==='
SELECT pg_sleep(3.5);
SET ROLE demo_portal;
SELECT s.* FROM unnest(ARRAY['frank']) w, pg_temp.sees(w) s;   -- EXPIRED: its own ruling, read-only
BEGIN; SELECT carm.set_actor('frank') \gset
UPDATE app.rulings SET title = title || ' (amended)' RETURNING id;
COMMIT;
RESET ROLE;
SELECT * FROM carm.explain_access(7, '100000009RM0001');

\qecho
\qecho '=== 7. Maple downgrades Northern to PROGRAM, then ends it (R8, R9) ==='
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT carm.update_relationship(:northern_maple, 'PROGRAM', '{100000009RM0001}', true, false, NULL);
SELECT s.* FROM unnest(ARRAY['dave','erin','heidi']) w, pg_temp.sees(w) s;
COMMIT;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT carm.end_relationship(:northern_maple);
SELECT s.* FROM unnest(ARRAY['dave','erin','heidi']) w, pg_temp.sees(w) s;
COMMIT;
RESET ROLE;
SELECT * FROM carm.explain_access(4, '100000009RM0001');      -- dave: EXPIRED

\qecho
\qecho '=== 8. Maintenance, audit, notifications (R12, §9) ==='
SELECT * FROM carm.run_maintenance();
SELECT user_id, full_name, role, via, scope, path FROM carm.who_has_access('100000009');
SET ROLE demo_portal;
BEGIN; SELECT carm.set_actor('alice') \gset
SELECT event, business, other_business, target_user_id FROM carm.audit_events('100000009') ORDER BY id;
COMMIT;
BEGIN; SELECT carm.set_actor('dave') \gset
SELECT event, message FROM carm.my_notifications() ORDER BY id;
COMMIT;
RESET ROLE;
\set ECHO none
