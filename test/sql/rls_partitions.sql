-- §8 protect() on a partitioned table: the policies also hold on every
-- partition queried by name, the submitter trigger reaches every partition,
-- protect() is idempotent and unprotect() gives each relation back the
-- row-level-security flags it had before.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP SCHEMA IF EXISTS app CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_app') THEN
    CREATE ROLE regress_app NOLOGIN; END IF;
END $$;
GRANT carm_gateway TO regress_app;

SELECT carm.add_business('100000009', 'Importer', '{IMPORTER}'),
       carm.add_business('200000008', 'Other importer', '{IMPORTER}'),
       carm.add_program_account('100000009RM0001'), carm.add_program_account('200000008RM0001'),
       carm.register_user('bam', 'BAM of the importer');
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM');

CREATE SCHEMA app;
CREATE TABLE app.payments (id int, program_id bigint NOT NULL, submitter_id bigint, amount numeric)
  PARTITION BY LIST (program_id);
CREATE TABLE app.payments_p1 PARTITION OF app.payments FOR VALUES IN (1);
CREATE TABLE app.payments_p2 PARTITION OF app.payments FOR VALUES IN (2);
CREATE INDEX ON app.payments (program_id, submitter_id);
-- p2 had row-level security enabled (not forced) before protect()
ALTER TABLE app.payments_p2 ENABLE ROW LEVEL SECURITY;
INSERT INTO app.payments VALUES (1, 1, 1, 10), (2, 2, 2, 20);
GRANT USAGE ON SCHEMA app TO regress_app;
GRANT SELECT, INSERT ON app.payments, app.payments_p1, app.payments_p2 TO regress_app;

SELECT carm.protect('app.payments', 'program_id', 'submitter_id', 'payments');
SELECT carm.protect('app.payments', 'program_id', 'submitter_id', 'payments');   -- idempotent
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'carm_check_write') AS triggers
FROM pg_class c WHERE c.relname LIKE 'payments%' AND c.relkind IN ('r', 'p') ORDER BY c.relname;
SELECT tbl FROM carm.protected_tables();

SET ROLE regress_app;
BEGIN;
SELECT carm.set_actor('bam');
SELECT id FROM app.payments ORDER BY id;            -- its program only
SELECT id FROM app.payments_p2;                     -- the partition by name: nothing
SELECT id FROM app.payments_p1;
INSERT INTO app.payments (id, program_id, amount) VALUES (3, 1, 30) RETURNING submitter_id;
INSERT INTO app.payments_p1 (id, program_id, amount) VALUES (4, 1, 40) RETURNING submitter_id;
INSERT INTO app.payments_p2 (id, program_id, amount) VALUES (5, 2, 50);
ROLLBACK;
SELECT count(*) AS without_actor FROM app.payments_p1;
RESET ROLE;

SELECT carm.unprotect('app.payments');
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'carm_check_write') AS triggers
FROM pg_class c WHERE c.relname LIKE 'payments%' AND c.relkind IN ('r', 'p') ORDER BY c.relname;

-- §8: a table that INHERITS from a protected table is protected like a
-- partition: one existing when protect() runs, and one created later, each
-- with the policies and its own write trigger; reading a child directly
-- shows only what the actor may see.
CREATE TABLE app.claims (id int, program_id bigint, submitter_id bigint);
CREATE TABLE app.claims_old () INHERITS (app.claims);
INSERT INTO app.claims_old VALUES (1, 1, 1), (2, 2, 2);
SELECT carm.protect('app.claims', 'program_id', 'submitter_id', 'payments');
CREATE TABLE app.claims_new () INHERITS (app.claims);
INSERT INTO app.claims_new VALUES (3, 1, 1), (4, 2, 2);
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'carm_check_write') AS triggers
FROM pg_class c WHERE c.relname LIKE 'claims%' ORDER BY c.relname;
GRANT SELECT ON app.claims, app.claims_old, app.claims_new TO regress_app;
SET ROLE regress_app;
BEGIN;
SELECT carm.set_actor('bam');
SELECT id FROM app.claims ORDER BY id;              -- its program only
SELECT id FROM app.claims_old ORDER BY id;          -- a child by name: the same rule
SELECT id FROM app.claims_new ORDER BY id;
COMMIT;
RESET ROLE;
SELECT carm.unprotect('app.claims');
SELECT c.relname, c.relrowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'carm_check_write') AS triggers
FROM pg_class c WHERE c.relname LIKE 'claims%' ORDER BY c.relname;

DROP SCHEMA app CASCADE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_app;
