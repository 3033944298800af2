-- §12 bulk reference data: how long carm_admin's set-based loads take
-- (carm.add_businesses, carm.add_program_accounts, carm.register_users),
-- run by a carm_admin member that is not a superuser, against the one-row
-- functions and against the same program load without the invalidation
-- triggers.  Run by bench/bulk.sh on a throw-away cluster:
--   psql -v n=100000 -f bench/bulk.sql
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP SCHEMA IF EXISTS bulk CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_loader') THEN
    CREATE ROLE bench_loader NOLOGIN IN ROLE carm_admin;
  END IF;
END $$;
CREATE SCHEMA bulk;
GRANT USAGE ON SCHEMA bulk TO bench_loader;
CREATE TABLE bulk.result (step int, measure text, rows bigint, ms numeric);
GRANT INSERT ON bulk.result TO bench_loader;

-- BN9 with its Luhn check digit
CREATE FUNCTION bulk.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;
-- The input, prepared outside the measurement: the operator's file.
CREATE TABLE bulk.input AS
SELECT i, bulk.bn9(i) AS bn9, 'Business ' || i AS legal_name,
       CASE WHEN i % 100 = 0 THEN 'CUSTOMS_BROKER' ELSE 'IMPORTER' END AS kinds
FROM generate_series(1, :n) i;
GRANT SELECT ON bulk.input TO bench_loader;
ANALYZE bulk.input;

SET ROLE bench_loader;
SELECT array_agg(bn9 ORDER BY i) AS bn9s, array_agg(legal_name ORDER BY i) AS names,
       array_agg(kinds ORDER BY i) AS kinds
FROM bulk.input \gset arr_
-- each step in its own transaction, as an operator runs them
SELECT clock_timestamp() AS t0 \gset
SELECT carm.add_businesses(:'arr_bn9s', :'arr_names', :'arr_kinds') AS done \gset
INSERT INTO bulk.result VALUES (1, 'add_businesses', :done,
  round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000));

-- 1.5 program accounts per business: RM0001 for all, RM0002 for every other one
SELECT array_agg(bn15 ORDER BY bn15) AS bn15s FROM (
  SELECT bn9 || 'RM0001' AS bn15 FROM bulk.input
  UNION ALL SELECT bn9 || 'RM0002' FROM bulk.input WHERE i % 2 = 0) x \gset arr_
SELECT clock_timestamp() AS t0 \gset
SELECT carm.add_program_accounts(:'arr_bn15s') AS done \gset
INSERT INTO bulk.result VALUES (2, 'add_program_accounts', :done,
  round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000));

-- 3 users per business
SELECT array_agg('user' || u ORDER BY u) AS ext, array_agg('User ' || u ORDER BY u) AS names
FROM generate_series(1, 3 * :n) u \gset arr_
SELECT clock_timestamp() AS t0 \gset
SELECT carm.register_users(:'arr_ext', :'arr_names') AS done \gset
INSERT INTO bulk.result VALUES (3, 'register_users', :done,
  round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000));

-- a refused batch: the last element is a duplicate; everything is checked, nothing applied
SELECT clock_timestamp() AS t0 \gset
\set ON_ERROR_STOP 0
\set VERBOSITY terse
SELECT array_agg(bulk.bn9(i) || 'RM0009' ORDER BY i) AS bn15s
FROM generate_series(1, :n) i \gset bad_
SELECT carm.add_program_accounts(array_append(:'bad_bn15s'::text[], (:'bad_bn15s'::text[])[1]));
\set ON_ERROR_STOP 1
INSERT INTO bulk.result VALUES (4, 'add_program_accounts, refused at the last element', 0,
  round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000));

-- the one-row functions, for comparison: 10,000 businesses one call each
SELECT clock_timestamp() AS t0 \gset
SELECT count(carm.add_business(bulk.bn9(i), 'One ' || i, '{IMPORTER}'))
FROM generate_series(:n + 1, :n + 10000) i \gset
INSERT INTO bulk.result VALUES (5, 'add_business, 10,000 one-row calls', 10000,
  round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000));
RESET ROLE;

-- the cost of the invalidation triggers on carm.program (one key per row):
-- the same kind of load with them disabled, rolled back
SELECT array_agg(bulk.bn9(i) || 'RM0003' ORDER BY i) AS bn15s
FROM generate_series(1, :n) i \gset more_
BEGIN;
SELECT clock_timestamp() AS t0 \gset
SELECT carm.add_program_accounts(:'more_bn15s') AS done \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000) AS ms \gset
ROLLBACK;
INSERT INTO bulk.result VALUES (6, 'add_program_accounts (100% new keys), triggers on', :done, :ms);
BEGIN;
ALTER TABLE carm.program DISABLE TRIGGER program_invalidate;
SELECT clock_timestamp() AS t0 \gset
SELECT carm.add_program_accounts(:'more_bn15s') AS done \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) * 1000) AS ms \gset
ROLLBACK;
INSERT INTO bulk.result VALUES (7, 'add_program_accounts (100% new keys), invalidation trigger off', :done, :ms);

\echo
SELECT step, measure, rows, ms, CASE WHEN rows > 0 THEN round(ms * 1000 / rows, 1) END AS us_per_row
FROM bulk.result ORDER BY step;
SELECT event, details->>'count' AS count, pg_size_pretty(pg_column_size(details)::bigint) AS details_size
FROM carm.audit_events() ORDER BY id LIMIT 3;
