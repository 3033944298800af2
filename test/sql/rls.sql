-- §6 visibility of submissions and §8 row-level security through carm.protect():
-- V1-V5 on a protected rulings table and a payments table, each actor in turn.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DROP SCHEMA IF EXISTS app CASCADE;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_app') THEN
    CREATE ROLE regress_app NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_outsider') THEN
    CREATE ROLE regress_outsider NOLOGIN; END IF;
END $$;
GRANT carm_gateway TO regress_app;

-- Reference data and delegation state, written directly by the extension
-- owner (no actor set: only the invariants apply).
SELECT carm.add_business('100000009', 'Importer I', '{IMPORTER}') AS i,
       carm.add_business('200000008', 'Broker B1 (BUSINESS, sees client)', '{CUSTOMS_BROKER}') AS b1,
       carm.add_business('300000007', 'Broker B2 (PROGRAM P1, sees others)', '{CUSTOMS_BROKER}') AS b2,
       carm.add_business('400000006', 'Broker B3 (no relationship)', '{CUSTOMS_BROKER}') AS b3,
       carm.add_business('500000005', 'Broker B4 (ended)', '{TRADE_CONSULTANT}') AS b4;
SELECT carm.add_program_account('100000009RM0001', 'P1') AS p1,
       carm.add_program_account('100000009RM0002', 'P2') AS p2;
SELECT carm.register_user(x, x) FROM unnest(ARRAY['i_bam','i_viewer_p1','i_editor','b1_bam','b1_emp',
       'b1_pam','b2_bam','b3_bam','b4_bam','b4_emp']) x;
INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES
  (1, 1, 'BAM', NULL), (1, 2, 'VIEWER', '{1}'), (1, 3, 'EDITOR', NULL),
  (2, 4, 'BAM', NULL), (2, 5, 'EDITOR', NULL), (2, 6, 'PAM', NULL),
  (3, 7, 'BAM', NULL), (4, 8, 'BAM', NULL), (5, 9, 'BAM', NULL), (5, 10, 'EDITOR', NULL);
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs,
                               see_client, see_other, comment) VALUES
  (2, 1, 'active', 'BUSINESS', NULL, true,  false, 'B1 for I'),
  (3, 1, 'active', 'PROGRAM',  '{1}', false, true,  'B2 for I'),
  (5, 1, 'ended',  'BUSINESS', NULL, true,  true,  'B4 for I, ended');
INSERT INTO carm.client_assignment (relationship_id, user_id, role) VALUES (1, 5, 'PEDITOR');

-- The application's tables: program id and submitting business id.
CREATE SCHEMA app;
CREATE TABLE app.rulings (id int PRIMARY KEY, program_id bigint NOT NULL,
                          submitter_id bigint, title text);
CREATE TABLE app.payments (id int PRIMARY KEY, program_id bigint NOT NULL,
                           submitter_id bigint, amount numeric);
CREATE INDEX ON app.payments (program_id);
INSERT INTO app.rulings VALUES
  (1, 1, 1, 'P1 by I'), (2, 1, 2, 'P1 by B1'), (3, 1, 3, 'P1 by B2'), (4, 1, 5, 'P1 by B4'),
  (5, 2, 1, 'P2 by I'), (6, 2, 2, 'P2 by B1'), (7, 2, 5, 'P2 by B4');
INSERT INTO app.payments SELECT id, program_id, submitter_id, id * 100 FROM app.rulings;
GRANT USAGE ON SCHEMA app TO regress_app, regress_outsider;
GRANT SELECT, INSERT, UPDATE, DELETE ON app.rulings, app.payments TO regress_app;
GRANT SELECT ON app.rulings TO regress_outsider;

-- protect(): refusals first
SELECT carm.protect('pg_catalog.pg_class', 'relpages', 'relpages', 'rulings');
SELECT carm.protect('carm.employee', 'business_id', 'user_id', 'rulings');
SELECT carm.protect('app.rulings', 'nope', 'submitter_id', 'rulings');
SELECT carm.protect('app.rulings', 'id', 'submitter_id', 'rulings');
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'nonsense');
SELECT carm.protect('app.rulings', NULL, 'submitter_id', 'rulings');
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');   -- notice: no index
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');   -- idempotent
SELECT carm.protect('app.payments', 'program_id', 'submitter_id', 'payments');
SELECT tbl, program_column, submitter_column, function FROM carm.protected_tables();
SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies
WHERE schemaname = 'app' ORDER BY tablename, policyname;
SET ROLE regress_app;
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');   -- not carm_admin
RESET ROLE;

-- What each actor sees.  V1: the importer's BAM and editor see everything,
-- the viewer only P1.  V2: B1 (BUSINESS, sees client) sees its own and the
-- client's rows; B2 (PROGRAM P1, sees others) sees its own and other SPs' rows
-- on P1 -- except rulings (V2(c)).  V3: B1's PAM sees only what B1 submitted.
-- V4: B4's BAM (EXPIRED) sees only what B4 submitted; B4's editor nothing.
-- B3 sees nothing; and nobody sees anything without an actor.
SET ROLE regress_app;
CREATE FUNCTION pg_temp.sees(who text) RETURNS TABLE (actor text, rulings text, payments text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(who);
  RETURN QUERY SELECT who,
    (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.rulings),
    (SELECT string_agg(id::text, ',' ORDER BY id) FROM app.payments);
END $$;
SELECT s.* FROM unnest(ARRAY['i_bam','i_viewer_p1','i_editor','b1_bam','b1_emp','b1_pam',
                             'b2_bam','b3_bam','b4_bam','b4_emp']) w, pg_temp.sees(w) s;
SELECT count(*) AS rows_without_actor FROM app.rulings;
-- §10 rev. 1.2: with carm_deleg.require_actor (for development) the same
-- read raises 42501 with a hint, whether the scan checks rows (rulings) or
-- first asks for the actor's programs (the index condition on payments);
-- with an actor nothing changes.  Off by default.
SHOW carm_deleg.require_actor;
SET carm_deleg.require_actor = on;
\set VERBOSITY default
SELECT count(*) AS rows_without_actor FROM app.rulings;
SET enable_seqscan = off;
-- planning asks for the programs too, to estimate the index condition: an
-- EXPLAIN without an actor says so as well
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.payments;
SELECT count(*) AS rows_without_actor FROM app.payments;
RESET enable_seqscan;
\set VERBOSITY terse
SELECT s.* FROM pg_temp.sees('i_viewer_p1') s;
RESET carm_deleg.require_actor;
DROP FUNCTION pg_temp.sees(text);
RESET ROLE;

-- V5: writes.  A NULL submitter is filled with the acting business; a forged
-- one is refused; EXPIRED and viewers cannot write; an UPDATE may not move a
-- row to a program the actor cannot write, nor touch another business's row.
SET ROLE regress_app;
BEGIN;
SELECT carm.set_actor('i_editor');
INSERT INTO app.rulings (id, program_id, title) VALUES (10, 1, 'by I editor') RETURNING submitter_id;
INSERT INTO app.rulings (id, program_id, submitter_id, title) VALUES (11, 1, 2, 'forged as B1');
ROLLBACK;
BEGIN;
SELECT carm.set_actor('b1_emp');
INSERT INTO app.rulings (id, program_id, title) VALUES (12, 2, 'by B1 employee') RETURNING submitter_id;
UPDATE app.rulings SET title = title || ' (edited)' WHERE program_id = 2 RETURNING id, title;
DELETE FROM app.rulings WHERE id = 5 RETURNING id;    -- the client's row: visible, not writable
ROLLBACK;
BEGIN;
SELECT carm.set_actor('b1_emp');
INSERT INTO app.rulings (id, program_id, submitter_id, title) VALUES (15, 2, 0, 'no such business');
ROLLBACK;
BEGIN;
SELECT carm.set_actor('b2_bam');
UPDATE app.rulings SET program_id = 2 WHERE id = 3;   -- P2 is not delegated to B2
ROLLBACK;
BEGIN;
SELECT carm.set_actor('i_viewer_p1');
INSERT INTO app.rulings (id, program_id, title) VALUES (13, 1, 'viewer');
ROLLBACK;
BEGIN;
SELECT carm.set_actor('b4_bam');
INSERT INTO app.rulings (id, program_id, title) VALUES (14, 1, 'expired');
ROLLBACK;
BEGIN;
SELECT carm.set_actor('b4_bam');
UPDATE app.rulings SET title = 'x' RETURNING id;     -- sees 4 and 7, may write neither
ROLLBACK;
RESET ROLE;

-- Decisions change at commit: revoking B1's assignment hides B1's rows from
-- its employee in the next transaction; a cached plan decides for the actor
-- of each execution.
SET ROLE regress_app;
PREPARE visible AS SELECT string_agg(id::text, ',' ORDER BY id) FROM app.rulings;
BEGIN; SELECT carm.set_actor('b1_emp'); EXECUTE visible; COMMIT;
RESET ROLE;
DELETE FROM carm.client_assignment WHERE user_id = 5;
SET ROLE regress_app;
BEGIN; SELECT carm.set_actor('b1_emp'); EXECUTE visible; COMMIT;
BEGIN; SELECT carm.set_actor('i_viewer_p1'); EXECUTE visible; COMMIT;
BEGIN; SELECT carm.set_actor('b2_bam'); EXECUTE visible; COMMIT;
DEALLOCATE visible;
RESET ROLE;

-- Security: a non-owner cannot switch the policies off or bypass them, and a
-- failing qual of the user's own never runs on rows it may not see.
SET ROLE regress_outsider;
ALTER TABLE app.rulings DISABLE ROW LEVEL SECURITY;
DROP POLICY carm_select ON app.rulings;
SET row_security = off;
SELECT count(*) FROM app.rulings;
RESET row_security;
RESET ROLE;
SET ROLE regress_app;
BEGIN;
SELECT carm.set_actor('b2_bam');
SELECT id FROM app.payments WHERE 1 / (amount - 100) > 0 ORDER BY id;  -- row 1 (amount 100) is hidden from B2
ROLLBACK;
RESET ROLE;

-- unprotect() undoes it all
SELECT carm.unprotect('app.payments');
SELECT carm.unprotect('app.payments');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'app.payments'::regclass;
SELECT count(*) AS policies_left FROM pg_policies WHERE tablename = 'payments';

DROP SCHEMA app CASCADE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_app;
DROP ROLE regress_outsider;
