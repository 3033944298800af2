-- The world of bench/citus.sh, built the same way on one node and on a Citus
-- coordinator (psql variable :citus = 1 there, after carm.distribute_state()
-- made the state tables reference tables).  Like bench/hot_world.sql: one
-- customs broker whose BAM reaches :clients importers through BUSINESS
-- relationships with both visibility attributes on, and :rows payments of
-- those importers, interleaved by program.
--
--   business b0                  the broker; user u0 is its BAM (the actor)
--   businesses b0+1..b0+clients  its clients, one program account each; the
--                                client's BAM is user u0+c, its program p0+c
--
-- The state goes in through plain INSERTs by the superuser, with every carm
-- trigger firing (no session_replication_role = replica: on Citus the rows
-- are written on every node's placement of the reference tables, where the
-- coordinator's setting does not reach).  Ids are generated; the driver reads
-- b0, p0 and u0 back and checks they are contiguous.
--
-- app.payment      PRIMARY KEY (program_id, id): Citus wants the distribution
--                  column in every unique constraint, so the key leads with
--                  program_id on both sides; the point read names both
--                  columns (it must, to be a router query on Citus), so the
--                  same key index serves it on both.  Row i has id i and
--                  belongs to client 1 + (i-1) % clients; every 10th row was
--                  submitted by the broker.  On Citus: distributed by
--                  program_id (4 shards), protected after distribution.
-- app.payment_raw  the same rows, same key, no row-level security (the
--                  baselines); on Citus co-located with app.payment.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA bench;

-- BN9 with its Luhn check digit
CREATE FUNCTION bench.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;

\ir timing.sql

-- delegation state, through the triggers
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT bench.bn9(i), 'Business ' || i,
       CASE WHEN i = 1 THEN '{CUSTOMS_BROKER}'::text[] ELSE '{IMPORTER}' END
FROM generate_series(1, :clients + 1) i ORDER BY i;
SELECT min(id) AS b0 FROM carm.business \gset
INSERT INTO carm.program (business_id, bn15)
SELECT :b0 + i - 1, bench.bn9(i) || 'RM0001' FROM generate_series(1, :clients + 1) i ORDER BY i;
INSERT INTO carm.app_user (external_id, full_name)
SELECT 'user' || i, 'User ' || i FROM generate_series(1, :clients + 1) i ORDER BY i;
SELECT min(id) AS u0 FROM carm.app_user \gset
INSERT INTO carm.employee (business_id, user_id, role, programs)
SELECT :b0 + i - 1, :u0 + i - 1, 'BAM', NULL::bigint[] FROM generate_series(1, :clients + 1) i ORDER BY i;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, see_other, comment)
SELECT :b0, :b0 + c, 'active', 'BUSINESS', true, true, 'bench' FROM generate_series(1, :clients) c ORDER BY c;

-- the payments
CREATE SCHEMA app;
CREATE TABLE app.payment (program_id bigint NOT NULL, id bigint NOT NULL, submitted_by bigint NOT NULL,
                          amount numeric NOT NULL, PRIMARY KEY (program_id, id));
CREATE TABLE app.payment_raw (LIKE app.payment INCLUDING ALL);
\if :citus
SELECT create_distributed_table('app.payment', 'program_id');
SELECT create_distributed_table('app.payment_raw', 'program_id', colocate_with => 'app.payment');
\endif
SELECT min(id) AS p0 FROM carm.program \gset
INSERT INTO app.payment (program_id, id, submitted_by, amount)
SELECT :p0 + c, i, CASE WHEN i % 10 = 0 THEN :u0 ELSE :u0 + c END, (i % 1000) + 0.5
FROM generate_series(1, :rows) i, LATERAL (SELECT 1 + (i - 1) % :clients AS c) x
ORDER BY i;
INSERT INTO app.payment_raw SELECT * FROM app.payment;
VACUUM ANALYZE app.payment, app.payment_raw;
ANALYZE carm.business, carm.program, carm.employee, carm.relationship, carm.app_user;
SELECT carm.protect('app.payment', 'program_id', 'submitted_by', 'payments');

-- bench/citus.sh created bench_app, a carm_gateway member
GRANT USAGE ON SCHEMA app, bench TO bench_app;
GRANT SELECT ON app.payment TO bench_app;
GRANT EXECUTE ON FUNCTION bench.time(text, int, boolean) TO bench_app;

-- what the driver needs, and the checks that the arithmetic holds
SELECT :b0 AS b0, :p0 AS p0, :u0 AS u0,
       (SELECT count(*) FROM carm.business) = :clients + 1
         AND (SELECT max(id) FROM carm.business) = :b0 + :clients
         AND (SELECT max(id) FROM carm.program) = :p0 + :clients
         AND (SELECT max(id) FROM carm.app_user) = :u0 + :clients
         AND (SELECT bool_and(p.business_id - :b0 = p.id - :p0) FROM carm.program p) AS contiguous,
       (SELECT bn15 FROM carm.program WHERE id = :p0 + 1) AS bn15;
