-- The results of bench/pool.sh (issue 16), from pool_result and
-- pool_statements.
\pset footer off
\echo '-- the pool: pgbouncer (transaction mode, 20 server connections), pgbench -c 200 -j 2'
WITH r AS (SELECT section, name, value, unit, min(seq) OVER (PARTITION BY name) AS o FROM pool_result),
p AS (
  SELECT name, unit, min(o) AS o,
         max(value) FILTER (WHERE section = 'no RLS, simple') AS raw_s,
         max(value) FILTER (WHERE section = 'carm RLS, simple') AS rls_s,
         max(value) FILTER (WHERE section = 'no RLS, extended') AS raw_e,
         max(value) FILTER (WHERE section = 'carm RLS, extended') AS rls_e,
         max(value) FILTER (WHERE section = 'carm RLS, simple, 10 changes/s') AS rls_c,
         max(value) FILTER (WHERE section = 'carm RLS, simple, not shared') AS rls_n,
         max(value) FILTER (WHERE section = 'carm RLS, simple, not shared, 10 changes/s') AS rls_nc
  FROM r WHERE section IN ('no RLS, simple', 'carm RLS, simple', 'no RLS, extended',
                           'carm RLS, extended', 'carm RLS, simple, 10 changes/s',
                           'carm RLS, simple, not shared', 'carm RLS, simple, not shared, 10 changes/s')
  GROUP BY name, unit)
SELECT name AS measure, unit,
       round(raw_s::numeric, 2) AS "no RLS simple", round(rls_s::numeric, 2) AS "RLS simple",
       round((rls_s / nullif(raw_s, 0))::numeric, 2) AS "ratio",
       round(raw_e::numeric, 2) AS "no RLS extended", round(rls_e::numeric, 2) AS "RLS extended",
       round((rls_e / nullif(raw_e, 0))::numeric, 2) AS "ratio ",
       round(rls_c::numeric, 2) AS "RLS simple, 10 changes/s",
       round((rls_c / nullif(raw_s, 0))::numeric, 2) AS "/ no RLS simple",
       round(rls_n::numeric, 2) AS "RLS simple, not shared",
       round((rls_n / nullif(raw_s, 0))::numeric, 2) AS "/ no RLS simple ",
       round(rls_nc::numeric, 2) AS "not shared, 10 changes/s",
       round((rls_nc / nullif(raw_s, 0))::numeric, 2) AS "/ no RLS simple  "
FROM p ORDER BY o;

\echo '-- server CPU per pool transaction: the pool backends'' CPU time over the transactions they served'
SELECT section AS run,
       round((max(value) FILTER (WHERE name = 'backend CPU, sum') * 1000
              / nullif(max(value) FILTER (WHERE name = 'transactions'), 0))::numeric, 3) AS "backend CPU ms per transaction",
       round((max(value) FILTER (WHERE name = 'pgbouncer CPU') * 1000
              / nullif(max(value) FILTER (WHERE name = 'transactions'), 0))::numeric, 3) AS "pgbouncer CPU ms per transaction"
FROM pool_result WHERE section LIKE '%RLS%' GROUP BY section ORDER BY min(seq);

\echo '-- carm loads per pool transaction (carm.stats; load time is wall-clock, inflated by CPU contention)'
SELECT section AS run,
       round((sum(value) FILTER (WHERE name IN ('carm loads of one business', 'carm complete loads'))
              / nullif(max(value) FILTER (WHERE name = 'transactions'), 0))::numeric, 3) AS "loads per transaction",
       round((max(value) FILTER (WHERE name = 'carm load time')
              / nullif(sum(value) FILTER (WHERE name IN ('carm loads of one business', 'carm complete loads')), 0))::numeric, 3) AS "wall ms per load (20 backends on the cores)"
FROM pool_result WHERE section LIKE 'carm RLS%' GROUP BY section ORDER BY section;

\echo '-- targets of issue 16 (pool): tps >= 0.8 x no RLS, p99 <= 2 x no RLS'
WITH v AS (SELECT section, name, value FROM pool_result)
SELECT c.section AS run, t.name AS measure,
       round((c.value / b.value)::numeric, 2) AS ratio, t.target,
       CASE WHEN (t.name = 'tps' AND c.value / b.value >= 0.8)
              OR (t.name = 'p99 latency' AND c.value / b.value <= 2) THEN 'met' ELSE 'MISSED' END AS status
FROM (VALUES ('tps', '>= 0.8'), ('p99 latency', '<= 2')) t(name, target)
JOIN v c ON c.name = t.name AND c.section LIKE 'carm RLS%'
JOIN v b ON b.name = t.name
 AND b.section = CASE WHEN c.section LIKE '%extended%' THEN 'no RLS, extended' ELSE 'no RLS, simple' END
ORDER BY c.section, t.name DESC;

\echo '-- cold: a new session (direct), medians of 5; carm loads and load time of one first transaction'
SELECT section, name AS measure, round(value::numeric, 3) AS value, unit
FROM pool_result WHERE section LIKE 'cold:%' ORDER BY seq;

\echo '-- warm backend, pgbench -c 1 direct: pairs of transactions by one actor or by two (a switch each time)'
SELECT name AS measure, round(value::numeric, 3) AS value, unit FROM pool_result WHERE section = 'switch' ORDER BY seq;
WITH s AS (SELECT split_part(name, ':', 1) AS f, value FROM pool_result
           WHERE section = 'switch' AND unit = 'ms')
SELECT round(((SELECT value FROM s WHERE f = 'switch')
              - ((SELECT value FROM s WHERE f = 'same_b') + (SELECT value FROM s WHERE f = 'same_c')) / 2)::numeric / 2, 3)
         AS "ms per actor switch, broker B BAM <-> client BAM",
       round(((SELECT value FROM s WHERE f = 'switch_a')
              - ((SELECT value FROM s WHERE f = 'same_a') + (SELECT value FROM s WHERE f = 'same_c')) / 2)::numeric / 2, 3)
         AS "ms per actor switch, broker A BAM <-> client BAM";

\echo '-- warm backend (direct): the first point read of an actor right after another actor''s transaction, medians of 5'
SELECT split_part(name, ': ', 1) AS actor,
       round(max(value) FILTER (WHERE name LIKE '%: planning')::numeric, 3) AS "planning ms",
       round(max(value) FILTER (WHERE name LIKE '%: execution')::numeric, 3) AS "execution ms"
FROM pool_result WHERE section = 'switch split' GROUP BY 1 ORDER BY min(seq);

\echo '-- one backend (direct) after serving N distinct actors, one point read each'
SELECT split_part(name, ' actors: ', 1)::int AS actors,
       round(max(value) FILTER (WHERE name LIKE '%VmRSS')::numeric, 1) AS "VmRSS MiB",
       round(max(value) FILTER (WHERE name LIKE '%Pss')::numeric, 1) AS "Pss MiB",
       round(max(value) FILTER (WHERE name LIKE '%anonymous memory (heap)')::numeric, 1) AS "anonymous (heap) MiB",
       round(max(value) FILTER (WHERE name LIKE '%contexts, all')::numeric, 2) AS "memory contexts MiB",
       round(max(value) FILTER (WHERE name LIKE '%CacheMemoryContext')::numeric, 2) AS "CacheMemoryContext MiB",
       round(max(value) FILTER (WHERE name LIKE '%carm_deleg contexts')::numeric, 3) AS "carm contexts MiB"
FROM pool_result WHERE section = 'distinct actors' AND name LIKE '% actors: %'
GROUP BY 1 ORDER BY 1;
SELECT name AS measure, round(value::numeric, 3) AS value, unit
FROM pool_result WHERE section = 'distinct actors' AND name NOT LIKE '% actors: %';

\echo '-- cold: every statement of a new session''s first BEGIN; set_actor; point read; COMMIT, nested ones included (pg_stat_statements, track = all)'
SELECT actor, calls, round(plan_ms::numeric, 3) AS plan_ms, round(exec_ms::numeric, 3) AS exec_ms,
       left(query, 110) AS query
FROM pool_statements ORDER BY actor DESC, plan_ms + exec_ms DESC;
