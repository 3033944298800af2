-- §8 planner support: the row check becomes an index condition on the
-- program column for a user who sees few programs, evaluated at execution
-- time for the executing actor; a user who sees most rows gets a sequential
-- scan.  Parallel workers decide like the leader.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DROP SCHEMA IF EXISTS app CASCADE;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_app') THEN
    CREATE ROLE regress_app NOLOGIN; END IF;
END $$;
GRANT carm_gateway TO regress_app;

-- one importer with 200 programs, one broker delegated a single program
SELECT carm.add_business('100000009', 'Importer', '{IMPORTER}'),
       carm.add_business('200000008', 'Broker', '{CUSTOMS_BROKER}');
SELECT count(carm.add_program_account('100000009RM' || lpad(i::text, 4, '0'))) AS programs
FROM generate_series(1, 200) i;
SELECT carm.register_user('importer_bam', 'Importer BAM'), carm.register_user('broker_bam', 'Broker BAM');
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM'), (2, 2, 'BAM');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs, comment)
VALUES (2, 1, 'active', 'PROGRAM', '{7}', 'one program');

CREATE SCHEMA app;
CREATE TABLE app.statements (id bigint PRIMARY KEY, program_id bigint NOT NULL,
                             submitter_id bigint NOT NULL, body text);
INSERT INTO app.statements
SELECT i, 1 + i % 200, CASE WHEN i % 3 = 0 THEN 2 ELSE 1 END, repeat('x', 40)
FROM generate_series(1, 40000) i;
CREATE INDEX statements_program ON app.statements (program_id);
ANALYZE app.statements;
SELECT carm.protect('app.statements', 'program_id', 'submitter_id', 'statements');
GRANT USAGE ON SCHEMA app TO regress_app;
GRANT SELECT ON app.statements TO regress_app;

SET ROLE regress_app;
SET max_parallel_workers_per_gather = 0;
BEGIN;
SELECT carm.set_actor('broker_bam');
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.statements;
SELECT count(*) FROM app.statements;      -- 200 rows of program 7, of which the broker submitted 67
COMMIT;
BEGIN;
SELECT carm.set_actor('importer_bam');
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.statements;
SELECT count(*) FROM app.statements;
COMMIT;

-- §11 (rev. 1.2): a query that already names one program, or one row by a
-- unique key, is offered no index condition: it would add nothing a plan
-- can use, and costing it costs planning time in proportion to the actor's
-- reach (every point read of a simple-protocol client plans again).
BEGIN;
SELECT carm.set_actor('broker_bam');
EXPLAIN (COSTS OFF) SELECT * FROM app.statements WHERE id = 21;
SELECT id, program_id FROM app.statements WHERE id = 21;     -- program 22: not delegated
SELECT id, program_id FROM app.statements WHERE id = 6;      -- program 7, submitted by the broker
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.statements WHERE program_id = 7;
SELECT count(*) FROM app.statements WHERE program_id = 7;
SELECT count(*) FROM app.statements WHERE program_id = 8;
-- a range on the key narrows nothing to one row: the index condition stays
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.statements WHERE id > 100;
COMMIT;

-- A plan made for one actor is executed for another: the index condition's
-- array is computed at execution time.
PREPARE n AS SELECT count(*) FROM app.statements;
SET plan_cache_mode = force_generic_plan;
BEGIN; SELECT carm.set_actor('broker_bam'); EXECUTE n; COMMIT;
BEGIN; SELECT carm.set_actor('importer_bam'); EXECUTE n; COMMIT;
BEGIN; SELECT carm.set_actor('broker_bam'); EXECUTE n; COMMIT;
RESET plan_cache_mode;
DEALLOCATE n;

-- Parallel workers get the actor from the leader and decide the same.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
BEGIN;
SELECT carm.set_actor('importer_bam');
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.statements WHERE body LIKE 'x%';
SELECT count(*) FROM app.statements WHERE body LIKE 'x%';
SELECT carm.set_actor('broker_bam');
SELECT count(*) FROM app.statements WHERE body LIKE 'x%';
COMMIT;
RESET ROLE;

DROP SCHEMA app CASCADE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_app;
