-- §8 protecting a table that already has rows: carm.map_ids() fills the
-- program and submitter columns from a BN15 column and a sign-in identity
-- column (V5's rule for the acting business), in bulk; carm.protect()
-- counts the rows no actor would see (row_visible() is NULL-safe: NULL or
-- unknown program, NULL submitter) and refuses them (55000) unless
-- allow_hidden_rows => true.  A small table shows each rule, a 100,000-row
-- table the bulk path.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DROP SCHEMA IF EXISTS legacy CASCADE;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_pe_app') THEN
    CREATE ROLE regress_pe_app NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_pe_dba') THEN
    CREATE ROLE regress_pe_dba NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_pe_other') THEN
    CREATE ROLE regress_pe_other NOLOGIN; END IF;
END $$;
GRANT carm_gateway TO regress_pe_app;
GRANT carm_admin TO regress_pe_dba, regress_pe_other;

SELECT carm.add_business('100000009', 'Maple Imports', '{IMPORTER}') AS maple,
       carm.add_business('200000008', 'Northern Brokers', '{CUSTOMS_BROKER}') AS northern,
       carm.add_business('300000007', 'Southern Brokers', '{CUSTOMS_BROKER}') AS southern,
       carm.add_business('400000006', 'Other Imports', '{IMPORTER}') AS other;
SELECT carm.add_program_accounts('{100000009RM0001,100000009RM0002,400000006RM0001}');
SELECT carm.register_users('{alice,dave,sam,kim,olga}', '{Alice,Dave,Sam,Kim,Olga}');
-- alice: Maple; dave: Northern; sam: Northern and Southern, both related to
-- Maple; kim: Northern and Other, only Northern related to Maple; olga: Other
INSERT INTO carm.employee (business_id, user_id, role) VALUES
  (1, 1, 'BAM'), (2, 2, 'BAM'), (2, 3, 'EDITOR'), (3, 3, 'BAM'), (2, 4, 'VIEWER'),
  (4, 4, 'BAM'), (4, 5, 'BAM');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, comment) VALUES
  (2, 1, 'active', 'BUSINESS', true, 'Northern for Maple'),
  (3, 1, 'ended', 'BUSINESS', true, 'Southern for Maple, ended'),
  (4, 1, 'rejected', NULL, false, 'Other asked Maple, rejected');

-- 1. Each rule, on a few rows (the table's owner is a carm_admin member).
CREATE SCHEMA legacy AUTHORIZATION regress_pe_dba;
GRANT USAGE ON SCHEMA legacy TO regress_pe_app, regress_pe_other;
SET ROLE regress_pe_dba;
CREATE TABLE legacy.small (id int PRIMARY KEY, bn15 text, submitted_by text,
                           program_id bigint, submitter_id bigint);
INSERT INTO legacy.small (id, bn15, submitted_by) VALUES
  (1, '100000009RM0001', 'alice'),   -- employee of the program's business: Maple
  (2, '100000009RM0002', 'dave'),    -- one business: Northern
  (3, '100000009RM0001', 'kim'),     -- Northern and Other: only Northern is related to Maple
  (4, '100000009RM0001', 'sam'),     -- Northern and Southern, both related: ambiguous, NULL
  (5, '400000006RM0001', 'kim'),     -- employee of Other, the program's business: Other
  (6, '400000006RM0001', 'olga'),    -- Other
  (7, '100000009RM0001', 'nobody'),  -- unknown identity: NULL
  (8, '100000009RM0001', NULL),      -- no identity: NULL
  (9, '100000009RM0009', 'alice'),   -- unknown program: NULL, NULL
  (10, 'not a bn15', 'alice'),       -- malformed: NULL, NULL
  (11, NULL, 'alice');               -- no BN15: NULL, NULL
INSERT INTO legacy.small (id, bn15, submitted_by, program_id)
VALUES (12, '100000009RM0001', 'alice', 999999);   -- an id carm does not know, kept
-- before: every row would be hidden
SELECT carm.protect('legacy.small', 'program_id', 'submitter_id', 'rulings');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id', 'submitted_by', 'submitter_id');
RESET ROLE;
SELECT s.id, s.bn15, s.submitted_by, p.bn15 AS program, b.bn9 AS submitter
FROM legacy.small s LEFT JOIN carm.program p ON p.id = s.program_id
LEFT JOIN carm.business b ON b.id = s.submitter_id
ORDER BY s.id;
SET ROLE regress_pe_dba;
-- a re-run changes nothing; a value set by hand is kept
UPDATE legacy.small SET submitter_id = carm.business_id('300000007') WHERE id = 4;
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id', 'submitted_by', 'submitter_id');
SELECT submitter_id = carm.business_id('300000007') AS kept FROM legacy.small WHERE id = 4;
-- the program only
UPDATE legacy.small SET program_id = NULL, submitter_id = NULL WHERE id IN (1, 2);
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id');
SELECT id, program_id IS NOT NULL AS has_program, submitter_id IS NOT NULL AS has_submitter
FROM legacy.small WHERE id IN (1, 2) ORDER BY id;

-- refusals: each changes nothing
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id', 'submitted_by');   -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'nope');                        -- 42703
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'submitted_by');                -- 42804
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids('legacy.small', 'id', 'program_id');                    -- 42804
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id', 'submitted_by', 'program_id');  -- 22023
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids('legacy.small', NULL, 'program_id');                    -- 22004
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm.map_ids(NULL, 'bn15', 'program_id');                            -- 22004
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_pe_other;                                                         -- not the owner
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id', 'submitted_by', 'submitter_id');
\echo :LAST_ERROR_SQLSTATE
SELECT carm.protect('legacy.small', 'program_id', 'submitter_id', 'rulings', true);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_pe_app;                                                           -- not carm_admin
SELECT * FROM carm.map_ids('legacy.small', 'bn15', 'program_id', 'submitted_by', 'submitter_id');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM carm_internal.map_keys('{100000009RM0001}', '{alice}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_pe_dba;
SELECT carm.protect('legacy.small', 'program_id', 'submitter_id', 'rulings', NULL);   -- 22004
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS unprotected FROM pg_policy WHERE polrelid = 'legacy.small'::regclass;

-- 2. 100,000 rows, mapped with one UPDATE; each ruled case by the thousand.
CREATE TABLE legacy.big (id int PRIMARY KEY, bn15 text, submitted_by text,
                         program_id bigint, submitter_id bigint, amount numeric);
INSERT INTO legacy.big (id, bn15, submitted_by, amount)
SELECT i,
       CASE i % 10 WHEN 0 THEN '100000009RM0001' WHEN 1 THEN '100000009RM0001'
                   WHEN 2 THEN '100000009RM0001' WHEN 3 THEN '100000009RM0001'
                   WHEN 4 THEN '100000009RM0002' WHEN 5 THEN '100000009RM0002'
                   WHEN 6 THEN '400000006RM0001' WHEN 7 THEN '400000006RM0001'
                   WHEN 8 THEN '100000009RM0009' ELSE NULL END,
       CASE i % 7 WHEN 0 THEN 'alice' WHEN 1 THEN 'alice' WHEN 2 THEN 'dave' WHEN 3 THEN 'kim'
                  WHEN 4 THEN 'sam' WHEN 5 THEN 'olga' ELSE NULL END,
       i
FROM generate_series(1, 100000) i;
CREATE INDEX ON legacy.big (program_id, submitter_id);
-- refused, with the counts, and nothing changed
SELECT carm.protect('legacy.big', 'program_id', 'submitter_id', 'payments');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS unprotected FROM pg_policy WHERE polrelid = 'legacy.big'::regclass;
SELECT * FROM carm.map_ids('legacy.big', 'bn15', 'program_id', 'submitted_by', 'submitter_id');
-- the program column agrees with carm.program_id() on every row
SELECT count(*) AS program_mismatches
FROM legacy.big b LEFT JOIN (SELECT bn15, carm.program_id(bn15) AS id
                             FROM (VALUES ('100000009RM0001'), ('100000009RM0002'), ('400000006RM0001')) v(bn15)) p
  ON p.bn15 = b.bn15
WHERE b.program_id IS DISTINCT FROM p.id;
RESET ROLE;
SELECT b.bn15, b.submitted_by, bz.bn9 AS submitter, count(*)
FROM legacy.big b LEFT JOIN carm.business bz ON bz.id = b.submitter_id
WHERE b.bn15 IN ('100000009RM0001', '100000009RM0002', '400000006RM0001')
GROUP BY 1, 2, 3 ORDER BY 1, 2 NULLS LAST;
SET ROLE regress_pe_dba;
-- still refused: the ambiguous, the unknown and the anonymous rows
SELECT carm.protect('legacy.big', 'program_id', 'submitter_id', 'payments');
\echo :LAST_ERROR_SQLSTATE
-- accepted when told: a warning, and the count on the audit trail
SELECT carm.protect('legacy.big', 'program_id', 'submitter_id', 'payments', allow_hidden_rows => true);
RESET ROLE;
SELECT details->>'hidden_rows' AS hidden_rows FROM carm.audit_events(events => '{table_protected}')
WHERE details->>'table' = 'legacy.big';
-- protected: map_ids() would see no rows and refuses
SET ROLE regress_pe_dba;
SELECT * FROM carm.map_ids('legacy.big', 'bn15', 'program_id', 'submitted_by', 'submitter_id');
\echo :LAST_ERROR_SQLSTATE
-- the four-argument overload of 1.1 is protect(..., allow_hidden_rows => false):
-- called again on the protected table, it refuses the same way
SELECT carm.protect('legacy.big', 'program_id', 'submitter_id', 'payments');
\echo :LAST_ERROR_SQLSTATE
GRANT USAGE ON SCHEMA legacy TO regress_pe_app;
GRANT SELECT ON legacy.big TO regress_pe_app;
RESET ROLE;

-- what each actor sees is what the columns say (V1, V2)
SELECT count(*) FILTER (WHERE program_id IN (1, 2) AND submitter_id IS NOT NULL) AS maple_rows,
       count(*) FILTER (WHERE program_id IN (1, 2) AND submitter_id IN (1, 2)) AS northern_rows
FROM legacy.big;
SET ROLE regress_pe_app;
BEGIN;
SELECT carm.set_actor('alice');
SELECT count(*) AS alice_sees FROM legacy.big;
COMMIT;
BEGIN;
SELECT carm.set_actor('dave');
SELECT count(*) AS dave_sees FROM legacy.big;
COMMIT;
RESET ROLE;

DROP SCHEMA legacy CASCADE;

