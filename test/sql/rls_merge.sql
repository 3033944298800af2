-- §8 row-level security on MERGE: the policies carm.protect() creates govern
-- MERGE as they govern INSERT, UPDATE and DELETE (V1-V5).
--
-- PostgreSQL differs between majors here, carm_deleg does not:
--  * MERGE ... RETURNING and WHEN NOT MATCHED BY SOURCE exist from PostgreSQL
--    17 on.  On 15 and 16 those two statements are syntax errors: their
--    expected output is expected/rls_merge_1.out; expected/rls_merge.out is
--    17 and later.  Every other statement gives the same output on 15-18.
--  * On every major, a MERGE that matches a row the actor sees but may not
--    write raises (PostgreSQL checks the UPDATE/DELETE policy's USING on
--    matched rows and errors), where a plain UPDATE skips that row.
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

SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');

SET ROLE regress_app;
-- V1/V5: the importer's editor merges: a matched row is updated, an
-- unmatched one inserted with the acting business as submitter.
BEGIN;
SELECT carm.set_actor('i_editor');
MERGE INTO app.rulings r
USING (VALUES (1, 1, 'P1 by I (merged)'), (20, 2, 'new by I')) AS s(id, program_id, title)
ON r.id = s.id
WHEN MATCHED THEN UPDATE SET title = s.title
WHEN NOT MATCHED THEN INSERT (id, program_id, title) VALUES (s.id, s.program_id, s.title);
SELECT id, program_id, submitter_id, title FROM app.rulings WHERE id IN (1, 20) ORDER BY id;
ROLLBACK;
-- V5: a forged submitter is refused in MERGE's INSERT as in INSERT.
BEGIN;
SELECT carm.set_actor('b1_emp');
MERGE INTO app.rulings r
USING (VALUES (21, 2, 1)) AS s(id, program_id, submitter_id) ON r.id = s.id
WHEN NOT MATCHED THEN INSERT (id, program_id, submitter_id, title) VALUES (s.id, s.program_id, s.submitter_id, 'forged as I');
ROLLBACK;
-- V2/V5: B1's employee sees the client's row 5 but may not write it: MERGE
-- raises on the matched row (a plain UPDATE would skip it).
BEGIN;
SELECT carm.set_actor('b1_emp');
MERGE INTO app.rulings r USING (VALUES (5)) AS s(id) ON r.id = s.id
WHEN MATCHED THEN UPDATE SET title = 'taken over';
ROLLBACK;
BEGIN;
SELECT carm.set_actor('b1_emp');
MERGE INTO app.rulings r USING (VALUES (5)) AS s(id) ON r.id = s.id
WHEN MATCHED THEN DELETE;
ROLLBACK;
-- Rows the actor does not see are not matched: B3 (no relationship) merging
-- on row 1 takes the NOT MATCHED branch, whose INSERT the policy refuses
-- (B3 may not write P1).
BEGIN;
SELECT carm.set_actor('b3_bam');
MERGE INTO app.rulings r USING (VALUES (1, 1)) AS s(id, program_id) ON r.id = s.id
WHEN MATCHED THEN UPDATE SET title = 'seen?'
WHEN NOT MATCHED THEN INSERT (id, program_id, title) VALUES (s.id, s.program_id, 'not seen');
ROLLBACK;
-- V4: the expired BAM may write nothing.
BEGIN;
SELECT carm.set_actor('b4_bam');
MERGE INTO app.rulings r USING (VALUES (4)) AS s(id) ON r.id = s.id
WHEN MATCHED THEN UPDATE SET title = 'expired edit';
ROLLBACK;
-- PostgreSQL 17+: MERGE ... RETURNING returns only what the actor wrote
-- (syntax error on 15 and 16, see the header).
BEGIN;
SELECT carm.set_actor('b1_emp');
MERGE INTO app.rulings r
USING (VALUES (2, 1, 'P1 by B1 (merged)'), (22, 2, 'new by B1')) AS s(id, program_id, title)
ON r.id = s.id
WHEN MATCHED THEN UPDATE SET title = s.title
WHEN NOT MATCHED THEN INSERT (id, program_id, title) VALUES (s.id, s.program_id, s.title)
RETURNING merge_action(), r.id, r.submitter_id, r.title;
ROLLBACK;
-- PostgreSQL 17+: WHEN NOT MATCHED BY SOURCE reaches only the target rows
-- the actor sees; deleting one it may not write raises (syntax error on 15
-- and 16, see the header).
BEGIN;
SELECT carm.set_actor('b1_emp');
MERGE INTO app.rulings r USING (VALUES (2)) AS s(id) ON r.id = s.id
WHEN NOT MATCHED BY SOURCE AND r.submitter_id = 2 THEN DELETE;
SELECT string_agg(id::text, ',' ORDER BY id) AS b1_emp_sees FROM app.rulings;
MERGE INTO app.rulings r USING (VALUES (2)) AS s(id) ON r.id = s.id
WHEN NOT MATCHED BY SOURCE THEN DELETE;
ROLLBACK;
RESET ROLE;

DROP SCHEMA app CASCADE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_app;
DROP ROLE regress_outsider;
