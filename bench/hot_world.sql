-- The hot-path world (SPEC §11, revision 1.1): one customs broker whose BAM
-- reaches :clients importers through BUSINESS relationships with both
-- visibility attributes on, and :rows payments of those importers.
--
--   business 1               the broker; user 1 is its BAM (the actor measured)
--   businesses 2..clients+1  its clients, one program account each; user k their BAM
--   business clients+2       an unrelated importer, user clients+2 its BAM and
--                            user clients+3 an employee whose role the
--                            "changes elsewhere" load toggles
--
-- app.payment      rows in insertion order: row i belongs to client
--                  1 + (i-1) % clients, so consecutive rows belong to different
--                  programs (the interleaved shape); every 10th row was
--                  submitted by the broker, the others by the client
-- app.payment_c    the same rows clustered by program
-- app.payment_peer, app.payment_peer_c
--                  the same rows under the best hand-written peer (SPEC §11):
--                  program_id = ANY (ARRAY(SELECT … FROM a flattened grant table))
--
-- Reference data and delegation state are generated facts, inserted
-- set-based by the extension owner with row triggers off (as pg_restore
-- does); one statement through the triggers then invalidates every cache.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS app CASCADE;
DROP SCHEMA IF EXISTS bench CASCADE;
DROP EXTENSION IF EXISTS carm_deleg;
CREATE EXTENSION carm_deleg;
CREATE SCHEMA bench;

-- BN9 with its Luhn check digit
CREATE FUNCTION bench.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;

SET session_replication_role = replica;
BEGIN;
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT bench.bn9(i), 'Business ' || i,
       CASE WHEN i = 1 THEN '{CUSTOMS_BROKER}'::text[] ELSE '{IMPORTER}' END
FROM generate_series(1, :clients + 2) i;
INSERT INTO carm.program (business_id, bn15)
SELECT b, bench.bn9(b) || 'RM0001' FROM generate_series(1, :clients + 2) b;
INSERT INTO carm.app_user (external_id, full_name)
SELECT 'user' || u, 'User ' || u FROM generate_series(1, :clients + 3) u;
INSERT INTO carm.employee (business_id, user_id, role, programs)
SELECT b, b, 'BAM', NULL::bigint[] FROM generate_series(1, :clients + 2) b
UNION ALL SELECT :clients + 2, :clients + 3, 'VIEWER', NULL;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, see_other, comment)
SELECT 1, c, 'active', 'BUSINESS', true, true, 'bench' FROM generate_series(2, :clients + 1) c;
COMMIT;
RESET session_replication_role;
UPDATE carm.business SET legal_name = legal_name WHERE id = 1;

CREATE SCHEMA app;
CREATE TABLE app.payment (id bigserial PRIMARY KEY, program_id bigint NOT NULL,
                          submitted_by bigint NOT NULL, amount numeric NOT NULL);
INSERT INTO app.payment (program_id, submitted_by, amount)
SELECT 1 + c, CASE WHEN i % 10 = 0 THEN 1 ELSE 1 + c END, (i % 1000) + 0.5
FROM generate_series(1, :rows) i, LATERAL (SELECT 1 + (i - 1) % :clients AS c) x
ORDER BY i;
CREATE INDEX payment_program ON app.payment (program_id);
CREATE TABLE app.payment_c (LIKE app.payment INCLUDING ALL);
INSERT INTO app.payment_c SELECT * FROM app.payment ORDER BY program_id, id;
CREATE TABLE app.payment_peer (LIKE app.payment INCLUDING ALL);
INSERT INTO app.payment_peer SELECT * FROM app.payment ORDER BY id;
CREATE TABLE app.payment_peer_c (LIKE app.payment INCLUDING ALL);
INSERT INTO app.payment_peer_c SELECT * FROM app.payment_c;

-- the floor of row-level security itself: the same rows under a policy
-- that is a trivial qual on the two columns (what PostgreSQL's RLS costs in
-- planning and execution, whatever the check)
CREATE TABLE app.payment_floor (LIKE app.payment INCLUDING ALL);
INSERT INTO app.payment_floor SELECT * FROM app.payment ORDER BY id;
ALTER TABLE app.payment_floor ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.payment_floor FORCE ROW LEVEL SECURITY;
CREATE POLICY floor ON app.payment_floor FOR SELECT USING (program_id > 0 AND submitted_by > 0);

-- the peer's flattened grants: what the broker's BAM may read
CREATE TABLE bench.flat_grants (user_id bigint, program_id bigint, PRIMARY KEY (user_id, program_id));
INSERT INTO bench.flat_grants SELECT 1, p.id FROM carm.program p WHERE p.business_id BETWEEN 1 AND :clients + 1;
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['payment_peer', 'payment_peer_c'] LOOP
    EXECUTE format('ALTER TABLE app.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE app.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY peer ON app.%I FOR SELECT USING (program_id = ANY (ARRAY(
                       SELECT g.program_id FROM bench.flat_grants g
                       WHERE g.user_id = current_setting('bench.user')::bigint)))$p$, t);
  END LOOP;
END $$;

VACUUM ANALYZE app.payment, app.payment_c, app.payment_peer, app.payment_peer_c, app.payment_floor, bench.flat_grants;
ANALYZE carm.business, carm.program, carm.employee, carm.relationship, carm.app_user;
SELECT carm.protect('app.payment', 'program_id', 'submitted_by', 'payments');
SELECT carm.protect('app.payment_c', 'program_id', 'submitted_by', 'payments');

-- bench/hot.sh created the role bench_app (a carm_gateway member) and the
-- table public.hot_result, which outlive each world
GRANT USAGE ON SCHEMA app, bench TO bench_app;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO bench_app;
GRANT SELECT ON bench.flat_grants TO bench_app;

\ir timing.sql
GRANT EXECUTE ON FUNCTION bench.time(text, int, boolean) TO bench_app;
