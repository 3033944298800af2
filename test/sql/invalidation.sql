-- §8 exact at commit: every table the resolver carm_internal.grants() reads
-- has triggers that make the decisions its rows feed stale in every backend
-- when a change commits (sql/src/11_invalidation.sql, src/inval.c).  The
-- list of tables comes from the resolver's own text, so a table added to it
-- without a trigger shows up here.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;

WITH read AS (
  SELECT DISTINCT m[1] AS tbl
  FROM regexp_matches(pg_get_functiondef('carm_internal.grants(bigint)'::regprocedure),
                      'carm\.([a-z_]+)', 'g') AS m
), events AS (
  SELECT c.relname AS tbl, p.proname AS fn,
         CASE WHEN t.tgtype & 1 = 1 THEN 'row' ELSE 'statement' END AS level,
         array_remove(ARRAY[CASE WHEN t.tgtype & 4 = 4 THEN 'insert' END,
                            CASE WHEN t.tgtype & 16 = 16 THEN 'update' END,
                            CASE WHEN t.tgtype & 8 = 8 THEN 'delete' END,
                            CASE WHEN t.tgtype & 32 = 32 THEN 'truncate' END], NULL) AS ev,
         pg_catalog.encode(t.tgargs, 'escape') AS args
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
  WHERE c.relnamespace = 'carm'::regnamespace AND t.tgtype & 2 = 0   -- AFTER
    AND p.proname IN ('invalidate_keys', 'invalidate_cache')
)
SELECT r.tbl AS resolver_reads,
       coalesce(string_agg(e.level || ' ' || array_to_string(e.ev, '/') ||
                           CASE WHEN e.args <> '' THEN ' -> ' || replace(rtrim(e.args, '\000'), '\000', ', ') ELSE ' -> everything' END,
                           '; ' ORDER BY e.level, e.fn), 'NONE') AS invalidated_by
FROM read r LEFT JOIN events e ON e.tbl = r.tbl
GROUP BY r.tbl ORDER BY r.tbl;

-- every insert, update, delete and truncate of those tables is covered,
-- except inserting a client group: a new group has no clients nor employees
-- yet, and adding them is covered by group_client and group_employee
SELECT r.tbl, ev.e AS not_invalidated
FROM (SELECT DISTINCT m[1] AS tbl
      FROM regexp_matches(pg_get_functiondef('carm_internal.grants(bigint)'::regprocedure),
                          'carm\.([a-z_]+)', 'g') AS m) r
CROSS JOIN (VALUES (4, 'insert'), (16, 'update'), (8, 'delete'), (32, 'truncate')) ev(bit, e)
WHERE NOT EXISTS (
  SELECT FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
  WHERE t.tgrelid = ('carm.' || r.tbl)::regclass AND t.tgtype & ev.bit = ev.bit
    AND t.tgtype & 2 = 0 AND p.proname IN ('invalidate_keys', 'invalidate_cache'))
ORDER BY 1, 2;

DROP EXTENSION carm_deleg;
