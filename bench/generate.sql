-- Bench dataset generator (SPEC §11), scaled by psql variable :scale
-- (1.0 = 100,000 businesses, 1,000 SPs, 150,000 programs, 300,000 users,
-- 50,000 relationships, 2,000 groups, 10,000,000 protected rows).
--
-- Bulk path: reference data and delegation state are trusted, generated
-- facts, so they are inserted set-based into the extension's tables by the
-- extension owner with session_replication_role = replica (row triggers off,
-- as pg_restore does); the statement-level cache invalidation runs once at
-- the end.  Ids are dense: business i, program k, user u.
\set ON_ERROR_STOP 1
\timing off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP SCHEMA IF EXISTS app CASCADE;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE EXTENSION carm_deleg;
CREATE SCHEMA bench;

CREATE TABLE bench.size AS
SELECT greatest(1000, (100000 * :scale)::int) AS businesses,
       greatest(10, (1000 * :scale)::int) AS providers,
       greatest(50, (50000 * :scale)::int) AS relationships,
       greatest(20, (2000 * :scale)::int) AS groups,
       greatest(100000, (10000000 * :scale)::bigint) AS row_count;

-- BN9 with its Luhn check digit
CREATE FUNCTION bench.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;

SET session_replication_role = replica;
BEGIN;
-- businesses 1..S are service providers, the rest importers
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT bench.bn9(i), 'Business ' || i,
       CASE WHEN i <= s.providers THEN '{CUSTOMS_BROKER}'::text[] ELSE '{IMPORTER}' END
FROM bench.size s, generate_series(1, s.businesses) i;
-- 1.5 programs per business: every business has RM0001, every other one RM0002
INSERT INTO carm.program (business_id, bn15)
SELECT b, bench.bn9(b) || 'RM0001' FROM bench.size s, generate_series(1, s.businesses) b;
INSERT INTO carm.program (business_id, bn15)
SELECT b, bench.bn9(b) || 'RM0002' FROM bench.size s, generate_series(1, s.businesses, 2) b;
-- 3 users per business: user b is the BAM of business b; the two others are
-- employees (providers' are EDITORs, importers' a VIEWER and a PAM on RM0001)
INSERT INTO carm.app_user (external_id, full_name)
SELECT 'user' || u, 'User ' || u FROM bench.size s, generate_series(1, 3 * s.businesses) u;
INSERT INTO carm.employee (business_id, user_id, role, programs)
SELECT b, b, 'BAM', NULL::bigint[] FROM bench.size s, generate_series(1, s.businesses) b
UNION ALL
SELECT b, s.businesses + b, CASE WHEN b <= s.providers THEN 'EDITOR' ELSE 'VIEWER' END, NULL
FROM bench.size s, generate_series(1, s.businesses) b
UNION ALL
SELECT b, 2 * s.businesses + b, CASE WHEN b <= s.providers THEN 'EDITOR' ELSE 'PAM' END,
       CASE WHEN b <= s.providers THEN NULL ELSE ARRAY[b::bigint] END
FROM bench.size s, generate_series(1, s.businesses) b;
-- relationships: provider 1 + j % S, each client at most once (7919 is prime)
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs,
                               see_client, see_other, comment, expires_at)
SELECT 1 + j % s.providers,
       s.providers + 1 + (j::bigint * 7919) % (s.businesses - s.providers),
       'active',
       CASE WHEN j % 10 < 7 THEN 'BUSINESS' ELSE 'PROGRAM' END,
       CASE WHEN j % 10 < 7 THEN NULL
            ELSE ARRAY[s.providers + 1 + (j::bigint * 7919) % (s.businesses - s.providers)] END,
       j % 2 = 0, j % 4 = 0, 'generated',
       CASE WHEN j % 5 = 0 THEN now() + interval '1 year' END
FROM bench.size s, generate_series(0, s.relationships - 1) j;
-- 2 groups per provider, each with up to 20 of its clients and its 2 employees
INSERT INTO carm.client_group (provider_id, name)
SELECT 1 + g % s.providers, 'group ' || g FROM bench.size s, generate_series(0, s.groups - 1) g;
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, r.provider_id, r.client_id
FROM (SELECT r.*, row_number() OVER (PARTITION BY provider_id ORDER BY id) AS n
      FROM carm.relationship r) r
JOIN carm.client_group g ON g.provider_id = r.provider_id
 AND g.id = (SELECT min(id) FROM carm.client_group WHERE provider_id = r.provider_id) + (r.n - 1) / 20
WHERE r.n <= 40;
INSERT INTO carm.group_employee (group_id, user_id, role)
SELECT g.id, s.businesses + g.provider_id, 'PEDITOR'
FROM bench.size s, carm.client_group g
WHERE g.id = (SELECT min(id) FROM carm.client_group WHERE provider_id = g.provider_id);
-- individual assignments: each provider's second employee on its first 5 clients
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, 2 * s.businesses + r.provider_id, 'PVIEWER'
FROM bench.size s, (SELECT r.*, row_number() OVER (PARTITION BY provider_id ORDER BY id) AS n
                    FROM carm.relationship r) r
WHERE r.n <= 5;
COMMIT;
RESET session_replication_role;
-- one real statement through a trigger: every backend's cache is invalidated
UPDATE carm.business SET legal_name = legal_name WHERE id = 1;

-- The selective actor: provider 1's editor (user businesses + 1),
-- reaching through client group "selective" 0.1 % of the businesses, whose
-- programs hold ~0.1 % of the rows; everything in them is visible to it
-- (see_client and see_other on, table function payments).
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM carm.group_employee ge USING carm.client_group g
 WHERE g.id = ge.group_id AND g.provider_id = 1;
DELETE FROM carm.group_client WHERE provider_id = 1;
DELETE FROM carm.client_group WHERE provider_id = 1;
DELETE FROM carm.client_assignment a USING carm.relationship r
 WHERE r.id = a.relationship_id AND r.provider_id = 1;
DELETE FROM carm.relationship WHERE provider_id = 1;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, see_client, see_other, comment)
SELECT 1, c, 'active', 'BUSINESS', true, true, 'selective'
FROM bench.size s, generate_series(s.providers + 1, s.providers + greatest(1, s.businesses / 1000)) c;
INSERT INTO carm.client_group (provider_id, name) VALUES (1, 'selective');
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, 1, r.client_id FROM carm.relationship r, carm.client_group g
WHERE r.provider_id = 1 AND g.provider_id = 1;
INSERT INTO carm.group_employee (group_id, user_id, role)
SELECT g.id, s.businesses + 1, 'PVIEWER' FROM bench.size s, carm.client_group g WHERE g.provider_id = 1;
COMMIT;
UPDATE carm.business SET legal_name = legal_name WHERE id = 1;

-- The protected tables.  payments: :rows rows spread over every program, 75 %
-- submitted by the client, 25 % by a provider.  statements: a tenth as many
-- rows, all of one importer (its BAM sees the whole table).
CREATE SCHEMA app;
CREATE TABLE app.payments (id bigint, program_id bigint NOT NULL, submitter_id bigint NOT NULL,
                           amount numeric NOT NULL);
INSERT INTO app.payments
SELECT i, p.id, CASE WHEN i % 4 = 0 THEN 1 + (i / 4) % s.providers ELSE p.business_id END, (i % 1000) + 0.5
FROM bench.size s
CROSS JOIN LATERAL generate_series(1, s.row_count) i
JOIN LATERAL (SELECT 1 + (hashint8(i) & 2147483647) % (SELECT count(*) FROM carm.program) AS pid) h ON true
JOIN carm.program p ON p.id = h.pid;
-- program first (the index condition), submitter second (index-only scans)
CREATE INDEX payments_program ON app.payments (program_id, submitter_id);
CREATE TABLE app.statements AS
SELECT i AS id, p.id AS program_id, p.business_id AS submitter_id, (i % 1000) + 0.5 AS amount
FROM bench.size s
CROSS JOIN LATERAL generate_series(1, s.row_count / 10) i
JOIN carm.program p ON p.business_id = s.businesses AND p.bn15 LIKE '%RM0001';
CREATE INDEX statements_program ON app.statements (program_id, submitter_id);
-- identical copies protected by plain SQL EXISTS policies
CREATE TABLE app.payments_sql AS SELECT * FROM app.payments;
CREATE INDEX ON app.payments_sql (program_id, submitter_id);
CREATE TABLE app.statements_sql AS SELECT * FROM app.statements;
CREATE INDEX ON app.statements_sql (program_id, submitter_id);
VACUUM ANALYZE app.payments, app.statements, app.payments_sql, app.statements_sql;
ANALYZE carm.business, carm.program, carm.employee, carm.relationship, carm.client_group,
        carm.group_client, carm.group_employee, carm.client_assignment, carm.app_user;
SELECT carm.protect('app.payments', 'program_id', 'submitter_id', 'payments');
SELECT carm.protect('app.statements', 'program_id', 'submitter_id', 'statements');
