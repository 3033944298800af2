-- Bench measurements, side by side in one run.  Run by bench/run.sh as the
-- superuser; each measured query runs through bench.time() as the intended
-- role (bench_app, subject to RLS; or the superuser, which bypasses it).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

\ir timing.sql

CREATE TABLE IF NOT EXISTS bench.result (name text PRIMARY KEY, ms double precision, note text);
TRUNCATE bench.result;

SELECT businesses AS n_businesses, row_count AS n_rows FROM bench.size \gset
SELECT bn15 AS big_bn15 FROM carm.program WHERE business_id = :n_businesses AND bn15 LIKE '%RM0001' \gset
-- what the hand-written query knows: every program the selective actor sees
SELECT array_agg(DISTINCT g.program_id ORDER BY g.program_id)::text AS selective_programs
FROM carm_internal.grants(:n_businesses + 1) g WHERE g.program_id IS NOT NULL \gset
SELECT (SELECT count(*) FROM app.payments WHERE program_id = ANY (:'selective_programs'::bigint[])) AS selective_rows \gset

-- baselines as the superuser (no RLS)
INSERT INTO bench.result VALUES
 ('full: no RLS', bench.time('SELECT count(*) FROM app.statements', 5), 'seq scan, no policy'),
 ('full: no RLS, trivial qual on the two columns',
  bench.time('SELECT count(*) FROM app.statements WHERE program_id IS NOT NULL AND submitter_id IS NOT NULL', 5),
  'the floor of any per-row check'),
 ('selective: hand-written indexed query',
  bench.time(format('SELECT count(*) FROM app.payments WHERE program_id = ANY (%L::bigint[])',
                    :'selective_programs'), 20), 'knows the visible programs');

GRANT USAGE ON SCHEMA bench TO bench_app;
-- one session, two actors in turn: session actors, off by default (SPEC §10 rev. 1.2)
SET carm_deleg.allow_session_actor = on;
GRANT INSERT, SELECT ON bench.result TO bench_app;
SET ROLE bench_app;
-- the client BAM (user n_businesses) sees every row of app.statements
SELECT carm.set_actor(:n_businesses, false);
INSERT INTO bench.result VALUES
 ('full: carm RLS', bench.time('SELECT count(*) FROM app.statements', 5), 'C check per row');
-- The SQL EXISTS policies run one correlated subquery per row: at the full
-- size a count takes hours, so each gets :cap_s seconds (bench/run.sh --cap);
-- a count cut short is reported as "> cap".
SET statement_timeout = :cap_ms;
\set ON_ERROR_STOP 0
INSERT INTO bench.result VALUES
 ('full: SQL EXISTS policy', bench.time('SELECT count(*) FROM app.statements_sql', 1, false), 'same rules in SQL');
\set ON_ERROR_STOP 1
RESET statement_timeout;
-- the selective SP employee (user n_businesses + 1)
SELECT carm.set_actor(:n_businesses + 1, false);
INSERT INTO bench.result VALUES
 ('selective: carm RLS', bench.time('SELECT count(*) FROM app.payments', 20), 'index condition from the support function');
SET statement_timeout = :cap_ms;
\set ON_ERROR_STOP 0
INSERT INTO bench.result VALUES
 ('selective: SQL EXISTS policy', bench.time('SELECT count(*) FROM app.payments_sql', 1, false), 'same rules in SQL');
\set ON_ERROR_STOP 1
RESET statement_timeout;
SELECT count(*) AS selective_rows_seen FROM app.payments \gset
-- has_access: 1,000,000 warm calls, minus the same loop without the call
INSERT INTO bench.result VALUES
 ('has_access warm (per call)',
  (bench.time(format('SELECT count(*) FROM generate_series(1, 1000000) g WHERE carm.has_access(CASE WHEN g > 0 THEN %L END, ''payments.view'')', :'big_bn15'), 5)
   - bench.time(format('SELECT count(*) FROM generate_series(1, 1000000) g WHERE (CASE WHEN g > 0 THEN %L END) IS NOT NULL', :'big_bn15'), 5)) / 1000000,
  'actor cache warm');
RESET ROLE;
-- cold: every call rebuilds the cache (another user each time)
INSERT INTO bench.result VALUES
 ('has_access cold (per call)',
  bench.time(format('SELECT count(*) FROM generate_series(%s, %s) u WHERE carm.user_has_access(u, %L, ''payments.view'')',
                    :n_businesses + 2, :n_businesses + 2001, :'big_bn15'), 3) / 2000,
  'cache rebuilt for each call');

\echo
\echo carm_deleg benchmark
SELECT :n_businesses AS businesses, (SELECT count(*) FROM carm.program) AS programs,
       (SELECT count(*) FROM carm.app_user) AS users, (SELECT count(*) FROM carm.relationship) AS relationships,
       (SELECT count(*) FROM carm.client_group) AS groups, :n_rows AS payment_rows,
       :n_rows / 10 AS statement_rows, :selective_rows AS selective_rows, :selective_rows_seen AS selective_rows_seen;
SELECT name, round(ms::numeric, 4) AS ms, note FROM bench.result ORDER BY name;
-- a SQL EXISTS count cut short by the cap counts as the cap, a lower bound
WITH r AS (SELECT name, ms FROM bench.result
           UNION ALL
           SELECT n, :cap_ms FROM unnest(ARRAY['full: SQL EXISTS policy', 'selective: SQL EXISTS policy']) n
           WHERE n NOT IN (SELECT name FROM bench.result))
SELECT 'full visibility: carm RLS / no RLS' AS ratio,
       round(((SELECT ms FROM r WHERE name = 'full: carm RLS') / (SELECT ms FROM r WHERE name = 'full: no RLS'))::numeric, 2) AS value, '<= 1.3' AS target
UNION ALL
SELECT 'selective: carm RLS / hand-written indexed query',
       round(((SELECT ms FROM r WHERE name = 'selective: carm RLS') / (SELECT ms FROM r WHERE name = 'selective: hand-written indexed query'))::numeric, 2), '<= 2'
UNION ALL
SELECT 'full: SQL EXISTS policy / carm RLS'
         || CASE WHEN NOT EXISTS (SELECT FROM bench.result WHERE name = 'full: SQL EXISTS policy')
                 THEN ' (cut at the cap: at least)' ELSE '' END,
       round(((SELECT ms FROM r WHERE name = 'full: SQL EXISTS policy') / (SELECT ms FROM r WHERE name = 'full: carm RLS'))::numeric, 1), '>= 10'
UNION ALL
SELECT 'selective: SQL EXISTS policy / carm RLS'
         || CASE WHEN NOT EXISTS (SELECT FROM bench.result WHERE name = 'selective: SQL EXISTS policy')
                 THEN ' (cut at the cap: at least)' ELSE '' END,
       round(((SELECT ms FROM r WHERE name = 'selective: SQL EXISTS policy') / (SELECT ms FROM r WHERE name = 'selective: carm RLS'))::numeric, 1), '>= 10'
UNION ALL
SELECT 'full visibility: trivial qual / no RLS (floor)',
       round(((SELECT ms FROM r WHERE name = 'full: no RLS, trivial qual on the two columns') / (SELECT ms FROM r WHERE name = 'full: no RLS'))::numeric, 2), ''
UNION ALL
SELECT 'has_access warm, microseconds', round(((SELECT ms FROM r WHERE name = 'has_access warm (per call)') * 1000)::numeric, 3), '<= 2'
UNION ALL
SELECT 'has_access cold, microseconds', round(((SELECT ms FROM r WHERE name = 'has_access cold (per call)') * 1000)::numeric, 1), '<= 50';
