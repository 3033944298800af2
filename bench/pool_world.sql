-- The pool benchmark's world (issue 16, SPEC §11): a portal's signed-in
-- users, ranked by how often they act (user id = rank, 1 the busiest), so
-- bench/pool.sh can pick a skewed actor and a row it may see with pgbench
-- arithmetic alone.  psql variables: :rows (protected rows, a multiple of
-- :clients_b), :clients_a, :clients_b, :emps (employees per broker, even).
--
--   business 1                 broker B, reaching :clients_b clients
--   business 2                 broker A, reaching :clients_a clients
--   businesses 3..:clients_b+2 importers; client c (c >= 3) is a client of B,
--                              and of A too when c < :clients_a + 3; one
--                              program each, program id = business id
--   BUSINESS relationships with both visibility attributes on
--
--   user 1                     BAM of B
--   user 2                     BAM of A
--   users 3..2*:emps+2         provider employees (EDITOR): the first :emps
--                              of B, the next :emps of A; the even-numbered
--                              ones hold individual assignments (PVIEWER) on
--                              a block of 20 clients, the odd-numbered ones
--                              are the default role (PEDITOR) of a client
--                              group of their own (disjoint blocks)
--   the next 2,000 users       client employees (VIEWER), client employee j
--                              on client 3 + (10 j) % :clients_b
--   the following users        client BAMs, in a spread order: user u is the
--                              BAM of client 3 + ((u - first) * 7919) % :clients_b
--
-- bench.actor holds, per user, one program it may see (lo .. hi: a range
-- of such programs); bench/pool.sh's pgbench scripts compute the same
-- ranges, and this script checks them against the row check.
--
-- app.payment       :rows rows, row i on program 3 + (i-1) % :clients_b
--                   (interleaved: consecutive rows belong to different
--                   programs); every 10th row submitted by broker B, the
--                   others by the client; protected by carm
-- app.payment_raw   the same rows, unprotected (the no-RLS baseline)
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS app CASCADE;
DROP SCHEMA IF EXISTS bench CASCADE;
DROP EXTENSION IF EXISTS carm_deleg;
CREATE EXTENSION carm_deleg;
CREATE SCHEMA bench;

CREATE TABLE bench.size AS
SELECT :clients_a::int AS ca, :clients_b::int AS cb, :emps::int AS emps,
       2000 AS client_emps, :rows::bigint AS nrows;
-- first user id of each class
CREATE VIEW bench.bounds AS
SELECT ca, cb, emps, client_emps, nrows,
       3 AS first_pe, 3 + 2 * emps AS first_ce, 3 + 2 * emps + client_emps AS first_cbam,
       3 + 2 * emps + client_emps + cb AS users_end, cb / (emps / 2) AS gsize_b,
       ca / (emps / 2) AS gsize_a
FROM bench.size;

-- BN9 with its Luhn check digit
CREATE FUNCTION bench.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;

-- Reference data and delegation state: generated facts, inserted set-based
-- with row triggers off (as pg_restore does); one statement through the
-- triggers then invalidates every cache.
SET session_replication_role = replica;
BEGIN;
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT bench.bn9(i), 'Business ' || i,
       CASE WHEN i <= 2 THEN '{CUSTOMS_BROKER}'::text[] ELSE '{IMPORTER}' END
FROM bench.size s, generate_series(1, s.cb + 2) i;
INSERT INTO carm.program (business_id, bn15)
SELECT b, bench.bn9(b) || 'RM0001' FROM bench.size s, generate_series(1, s.cb + 2) b;
INSERT INTO carm.app_user (external_id, full_name)
SELECT 'user' || u, 'User ' || u FROM bench.bounds s, generate_series(1, s.users_end - 1) u;
-- broker BAMs, provider employees, client employees, client BAMs
INSERT INTO carm.employee (business_id, user_id, role, programs)
SELECT 1, 1, 'BAM', NULL::bigint[]
UNION ALL SELECT 2, 2, 'BAM', NULL
UNION ALL SELECT CASE WHEN u - s.first_pe < s.emps THEN 1 ELSE 2 END, u, 'EDITOR', NULL
          FROM bench.bounds s, generate_series(s.first_pe, s.first_ce - 1) u
UNION ALL SELECT 3 + (10 * (u - s.first_ce)) % s.cb, u, 'VIEWER', NULL
          FROM bench.bounds s, generate_series(s.first_ce, s.first_cbam - 1) u
UNION ALL SELECT 3 + ((u - s.first_cbam)::bigint * 7919) % s.cb, u, 'BAM', NULL
          FROM bench.bounds s, generate_series(s.first_cbam, s.users_end - 1) u;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, see_other, comment)
SELECT 1, c, 'active', 'BUSINESS', true, true, 'pool' FROM bench.size s, generate_series(3, s.cb + 2) c
UNION ALL
SELECT 2, c, 'active', 'BUSINESS', true, true, 'pool' FROM bench.size s, generate_series(3, s.ca + 2) c;
-- provider employee k (0-based within its broker): even k, individual
-- PVIEWER on clients 3 + 10 k .. 3 + 10 k + 19; odd k, PEDITOR of the group
-- of clients 3 + (k/2) gsize .. + gsize - 1
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, e.u, 'PVIEWER'
FROM (SELECT u, CASE WHEN u - s.first_pe < s.emps THEN 1 ELSE 2 END AS broker,
             (u - s.first_pe) % s.emps AS k
      FROM bench.bounds s, generate_series(s.first_pe, s.first_ce - 1) u) e
JOIN carm.relationship r ON r.provider_id = e.broker
 AND r.client_id BETWEEN 3 + 10 * e.k AND 3 + 10 * e.k + 19
WHERE e.k % 2 = 0;
INSERT INTO carm.client_group (provider_id, name)
SELECT b, 'group ' || g FROM bench.size s, generate_series(1, 2) b, generate_series(0, s.emps / 2 - 1) g
ORDER BY b, g;
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, g.provider_id, c
FROM bench.bounds s, carm.client_group g,
     LATERAL (SELECT CASE WHEN g.provider_id = 1 THEN s.gsize_b ELSE s.gsize_a END AS gs,
                     split_part(g.name, ' ', 2)::int AS gn) x,
     LATERAL generate_series(3 + x.gn * x.gs, 3 + x.gn * x.gs + x.gs - 1) c;
INSERT INTO carm.group_employee (group_id, user_id, role)
SELECT g.id, s.first_pe + (g.provider_id - 1) * s.emps + 2 * split_part(g.name, ' ', 2)::int + 1, 'PEDITOR'
FROM bench.bounds s, carm.client_group g;
COMMIT;
RESET session_replication_role;
UPDATE carm.business SET legal_name = legal_name WHERE id = 1;
-- ids are dense and in insertion order (the pgbench arithmetic relies on it)
DO $$ BEGIN
  IF (SELECT count(*) FROM carm.program WHERE id <> business_id) > 0
     OR (SELECT count(*) FROM carm.app_user WHERE external_id <> 'user' || id) > 0 THEN
    RAISE EXCEPTION 'ids are not dense';
  END IF;
END $$;

-- per user: a range of programs it may see, by the same formulas as the
-- pgbench scripts (bench/pool.sh)
CREATE TABLE bench.actor AS
SELECT u AS uid,
       CASE WHEN u = 1 THEN 3
            WHEN u = 2 THEN 3
            WHEN u < s.first_ce AND (u - s.first_pe) % s.emps % 2 = 0 THEN 3 + 10 * ((u - s.first_pe) % s.emps)
            WHEN u < s.first_ce THEN 3 + ((u - s.first_pe) % s.emps / 2)
                                       * CASE WHEN u - s.first_pe < s.emps THEN s.gsize_b ELSE s.gsize_a END
            WHEN u < s.first_cbam THEN 3 + (10 * (u - s.first_ce)) % s.cb
            ELSE 3 + ((u - s.first_cbam)::bigint * 7919) % s.cb END AS lo,
       CASE WHEN u = 1 THEN s.cb + 2
            WHEN u = 2 THEN s.ca + 2
            WHEN u < s.first_ce AND (u - s.first_pe) % s.emps % 2 = 0 THEN 3 + 10 * ((u - s.first_pe) % s.emps) + 19
            WHEN u < s.first_ce THEN 3 + ((u - s.first_pe) % s.emps / 2 + 1)
                                       * CASE WHEN u - s.first_pe < s.emps THEN s.gsize_b ELSE s.gsize_a END - 1
            WHEN u < s.first_cbam THEN 3 + (10 * (u - s.first_ce)) % s.cb
            ELSE 3 + ((u - s.first_cbam)::bigint * 7919) % s.cb END AS hi
FROM bench.bounds s, generate_series(1, s.users_end - 1) u;
ALTER TABLE bench.actor ADD PRIMARY KEY (uid);

CREATE SCHEMA app;
CREATE TABLE app.payment (id bigint PRIMARY KEY, program_id bigint NOT NULL,
                          submitted_by bigint NOT NULL, amount numeric NOT NULL);
INSERT INTO app.payment
SELECT i, 3 + (i - 1) % s.cb, CASE WHEN i % 10 = 0 THEN 1 ELSE 3 + (i - 1) % s.cb END, (i % 1000) + 0.5
FROM bench.size s, generate_series(1, s.nrows) i;
CREATE INDEX payment_program ON app.payment (program_id, id);
CREATE TABLE app.payment_raw (LIKE app.payment INCLUDING ALL);
INSERT INTO app.payment_raw SELECT * FROM app.payment ORDER BY id;
VACUUM ANALYZE app.payment, app.payment_raw, bench.actor;
ANALYZE carm.business, carm.program, carm.employee, carm.relationship, carm.app_user,
        carm.client_assignment, carm.client_group, carm.group_client, carm.group_employee;
SELECT carm.protect('app.payment', 'program_id', 'submitted_by', 'payments');

GRANT USAGE ON SCHEMA app, bench TO bench_app, bench_raw;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO bench_app, bench_raw;
GRANT SELECT ON ALL TABLES IN SCHEMA bench TO bench_app, bench_raw;
