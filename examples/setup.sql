-- The database the portal examples run against (examples/python, examples/node).
-- Run it as a superuser in a new database, e.g.
--   createdb portal && psql -d portal -f examples/setup.sql
-- The test suite runs it (test/cluster/examples.sh), then each example through
-- pgbouncer in transaction-pooling mode, and compares their output with
-- examples/expected_output.txt.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS carm_deleg;

-- The application's login role: a member of carm_gateway and of nothing else
-- (no SUPERUSER, no BYPASSRLS: row-level security applies to it).
CREATE ROLE portal LOGIN IN ROLE carm_gateway;
-- Session-wide actors are unsafe behind transaction pooling: only the
-- transaction-local set_actor() is allowed here.
DO $$ BEGIN
  EXECUTE format('ALTER DATABASE %I SET carm_deleg.allow_session_actor = off', current_database());
END $$;

-- Reference data, loaded by the DBA (one audit event per batch).
SELECT carm.add_businesses('{100000009,200000008}',
                           '{"Maple Imports Ltd.","Northern Customs Brokers"}',
                           '{IMPORTER,CUSTOMS_BROKER}');
SELECT carm.add_program_accounts('{100000009RM0001,100000009RM0002,200000008RM0001}',
                                 '{"Maple imports","Maple warehouse","Northern imports"}');
SELECT carm.register_users('{alice,dave,erin}', '{Alice,Dave,Erin}');

-- alice and dave register their businesses and become their BAMs (E1); erin
-- asks to join Northern and dave approves her as an editor (E2, E3).
BEGIN;
SELECT carm.set_actor('alice');
SELECT carm.register_business('100000009', '100000009RM0001');
COMMIT;
BEGIN;
SELECT carm.set_actor('dave');
SELECT carm.register_business('200000008', '200000008RM0001');
COMMIT;
BEGIN;
SELECT carm.set_actor('erin');
SELECT carm.request_employee_access('200000008', 'Customs clearance team') AS request_id \gset
COMMIT;
BEGIN;
SELECT carm.set_actor('dave');
SELECT carm.approve_employee_access(:request_id, 'EDITOR');
COMMIT;

-- A protected application table with rows already in it: the ids are
-- carm's (carm.program_id(bn15), carm.business_id(bn9)).
CREATE SCHEMA app;
CREATE TABLE app.rulings (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                          program_id bigint NOT NULL, submitter_id bigint, title text NOT NULL);
CREATE INDEX ON app.rulings (program_id, submitter_id);
INSERT INTO app.rulings (program_id, submitter_id, title)
SELECT carm.program_id(bn15), carm.business_id('100000009'), title
FROM (VALUES ('100000009RM0001', 'Tariff classification of maple syrup'),
             ('100000009RM0001', 'Valuation of maple syrup'),
             ('100000009RM0002', 'Origin of warehouse stock')) v(bn15, title);
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');
GRANT USAGE ON SCHEMA app TO portal;
GRANT SELECT, INSERT, UPDATE ON app.rulings TO portal;
