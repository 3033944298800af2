-- DDL on protected tables (SPEC rev. 1.1):
--   §8   a partition created (CREATE TABLE ... PARTITION OF) or attached
--        (ATTACH PARTITION) under a protected table, at any depth, by a
--        superuser or by the table's owner (a carm_admin member, no
--        superuser), has the policies in the same command: a role granted
--        SELECT on the partition reads only the rows it may see
--   §8   dropping a protected table removes its registration
--   §12  DROP EXTENSION (with or without CASCADE) and DROP SCHEMA carm /
--        carm_internal CASCADE are refused while tables are protected
\set VERBOSITY terse
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS app CASCADE;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ev_owner') THEN
    CREATE ROLE regress_ev_owner NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ev_reader') THEN
    CREATE ROLE regress_ev_reader NOLOGIN;
  END IF;
END
$$;
GRANT carm_admin TO regress_ev_owner;
GRANT carm_gateway TO regress_ev_reader;

-- Acme owns programs 1-3, Cedar programs 4-5; bam is Acme's BAM.
SELECT carm.add_business('123456782', 'Acme Imports', '{IMPORTER}') AS acme,
       carm.add_business('100000009', 'Cedar Imports', '{IMPORTER}') AS cedar \gset
SELECT count(carm.add_program_account(p)) AS programs
FROM unnest(ARRAY['123456782RM0001', '123456782RM0002', '123456782RM0003',
                  '100000009RM0001', '100000009RM0002']) p;
SELECT carm.register_user('bam', 'Acme BAM') AS bam \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES (:acme, :bam, 'BAM');

CREATE SCHEMA app;
GRANT USAGE, CREATE ON SCHEMA app TO regress_ev_owner;
GRANT USAGE ON SCHEMA app TO regress_ev_reader;

-- what protects each relation of the tree
CREATE FUNCTION pg_temp.tree() RETURNS TABLE (rel text, rls boolean, forced boolean, policies bigint,
                                              recorded_under text)
LANGUAGE sql AS $$
  SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
         (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname LIKE 'carm\_%'),
         (SELECT t.root::text FROM carm.protected_table t WHERE t.relid = c.oid)
  FROM pg_class c
  WHERE c.relnamespace = 'app'::regnamespace AND c.relkind IN ('r', 'p', 'f')
  ORDER BY c.relname
$$;

-- The owner (not a superuser) creates and protects a partitioned table.
SET ROLE regress_ev_owner;
CREATE TABLE app.pay (id int, program_id bigint NOT NULL, submitter_id bigint)
  PARTITION BY LIST (program_id);
CREATE TABLE app.pay_p1 PARTITION OF app.pay FOR VALUES IN (1);
CREATE INDEX ON app.pay (program_id, submitter_id);
SELECT carm.protect('app.pay', 'program_id', 'submitter_id', 'payments');
-- §8: the owner adds a partition, a nested partitioned one, and attaches a
-- table that already holds rows (readable by anyone granted SELECT until now)
CREATE TABLE app.pay_p2 PARTITION OF app.pay FOR VALUES IN (2);
CREATE TABLE app.pay_p3 PARTITION OF app.pay FOR VALUES IN (3, 4) PARTITION BY LIST (program_id);
CREATE TABLE app.pay_p3a PARTITION OF app.pay_p3 FOR VALUES IN (3);
CREATE TABLE app.pay_p4 (id int, program_id bigint NOT NULL, submitter_id bigint);
INSERT INTO app.pay_p4 VALUES (40, 4, :cedar), (41, 4, :acme);
ALTER TABLE app.pay_p3 ATTACH PARTITION app.pay_p4 FOR VALUES IN (4);
RESET ROLE;
-- ... and so does a superuser; in its transaction the partition is protected
-- as soon as CREATE TABLE returns
BEGIN;
CREATE TABLE app.pay_p5 PARTITION OF app.pay FOR VALUES IN (5);
SELECT * FROM pg_temp.tree() WHERE rel = 'pay_p5';
COMMIT;
SELECT * FROM pg_temp.tree();
SELECT event, details->>'table' AS tbl FROM carm.audit_event
WHERE event IN ('table_protected', 'partition_protected') ORDER BY id;

INSERT INTO app.pay VALUES (10, 1, :acme), (20, 2, :acme), (30, 3, :acme), (50, 5, :cedar);
GRANT SELECT ON app.pay, app.pay_p1, app.pay_p2, app.pay_p3, app.pay_p3a, app.pay_p4, app.pay_p5
  TO regress_ev_reader;
-- §8: read through the partitions by name, as Acme's BAM: only Acme's programs
SET ROLE regress_ev_reader;
BEGIN;
SELECT carm.set_actor('bam');
SELECT 'p2' AS part, id FROM app.pay_p2
UNION ALL SELECT 'p3a', id FROM app.pay_p3a
UNION ALL SELECT 'p3', id FROM app.pay_p3
UNION ALL SELECT 'p4', id FROM app.pay_p4
UNION ALL SELECT 'p5', id FROM app.pay_p5
ORDER BY 1, 2;
SELECT id FROM app.pay ORDER BY id;
COMMIT;
-- with no actor, nothing
SELECT count(*) AS no_actor FROM app.pay_p4;
RESET ROLE;

-- §12: the extension cannot be dropped from under protected tables.
\set VERBOSITY default
DROP EXTENSION carm_deleg;
DROP EXTENSION carm_deleg CASCADE;
DROP SCHEMA carm CASCADE;
DROP SCHEMA carm_internal CASCADE;
\set VERBOSITY terse
SELECT count(*) AS still_protected FROM pg_temp.tree() WHERE policies = 4;

-- Dropping protected tables removes their registration: a partition, then
-- a whole table.
DROP TABLE app.pay_p5;
SELECT count(*) AS p5_records FROM carm.protected_table WHERE relid::text LIKE '%pay_p5%';
CREATE TABLE app.solo (id int, program_id bigint, submitter_id bigint);
CREATE INDEX ON app.solo (program_id);
SELECT carm.protect('app.solo', 'program_id', 'submitter_id', 'rulings');
DROP TABLE app.solo;
SELECT tbl FROM carm.protected_tables();
-- a new table of that name is protected and unprotected as usual
CREATE TABLE app.solo (id int, program_id bigint, submitter_id bigint);
CREATE INDEX ON app.solo (program_id);
SELECT carm.protect('app.solo', 'program_id', 'submitter_id', 'rulings');
SELECT carm.unprotect('app.solo');
SELECT carm.unprotect('app.pay');
SELECT * FROM pg_temp.tree();
SELECT count(*) AS records FROM carm.protected_table;

-- Nothing protected any more: the extension can go (and come back).
DROP EXTENSION carm_deleg;
CREATE EXTENSION carm_deleg;

DROP SCHEMA app CASCADE;
DROP EXTENSION carm_deleg;
-- §12 (rev. 1.2): DROP EXTENSION leaves no schema behind, carm included
SELECT nspname AS left_behind FROM pg_namespace WHERE nspname IN ('carm', 'carm_internal');
-- An existing schema carm is refused (42501), unless it is an empty one of
-- the installing role, as dropping a 1.0 or 1.1 install left it.
CREATE SCHEMA carm;
CREATE TABLE carm.planted (id int);
\set VERBOSITY sqlstate
CREATE EXTENSION carm_deleg;
\set VERBOSITY terse
DROP TABLE carm.planted;
CREATE EXTENSION carm_deleg;
SELECT n.nspname, d.deptype FROM pg_namespace n
JOIN pg_depend d ON d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                AND d.refclassid = 'pg_extension'::regclass
WHERE n.nspname IN ('carm', 'carm_internal') ORDER BY 1;
DROP EXTENSION carm_deleg;
SELECT nspname AS left_behind FROM pg_namespace WHERE nspname IN ('carm', 'carm_internal');
DROP ROLE regress_ev_owner;
DROP ROLE regress_ev_reader;
