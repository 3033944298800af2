-- The hot-path results of bench/hot.sh as SPEC §11 ratios, per world.
\pset footer off
WITH r AS (SELECT world, name, value FROM hot_result),
pairs(measure, num, den, target, higher_is_better) AS (VALUES
  ('OLTP simple: carm RLS / no RLS', 'OLTP simple: carm RLS', 'OLTP simple: no RLS', '>= 0.8', true),
  ('OLTP prepared: carm RLS / no RLS', 'OLTP prepared: carm RLS', 'OLTP prepared: no RLS', '>= 0.8', true),
  ('OLTP simple: carm RLS / peer', 'OLTP simple: carm RLS', 'OLTP simple: peer', '>= 1', true),
  ('OLTP simple: RLS floor / no RLS (PostgreSQL''s own cost)', 'OLTP simple: RLS floor (trivial policy, no set_actor)', 'OLTP simple: no RLS', '(floor)', true),
  ('OLTP prepared: RLS floor / no RLS (PostgreSQL''s own cost)', 'OLTP prepared: RLS floor (trivial policy, no set_actor)', 'OLTP prepared: no RLS', '(floor)', true),
  ('sum(amount) interleaved: floor / no RLS', 'sum(amount) interleaved: floor (trivial qual on the two columns)', 'sum(amount) interleaved: no RLS', '(floor)', false),
  ('OLTP prepared: carm RLS / peer', 'OLTP prepared: carm RLS', 'OLTP prepared: peer', '>= 1', true),
  ('OLTP prepared: 10 changes/s elsewhere / none', 'OLTP prepared: carm RLS, 10 changes/s elsewhere', 'OLTP prepared: carm RLS', '>= 0.9', true),
  ('OLTP simple: 10 changes/s elsewhere / none', 'OLTP simple: carm RLS, 10 changes/s elsewhere', 'OLTP simple: carm RLS', '>= 0.9', true),
  ('count(*) interleaved: carm RLS / floor', 'count(*) interleaved: carm RLS', 'count(*) interleaved: floor (trivial qual on the two columns)', '<= 1.15', false),
  ('count(*) clustered: carm RLS / floor', 'count(*) clustered: carm RLS', 'count(*) clustered: floor (trivial qual on the two columns)', '<= 1.15', false),
  ('sum(amount) interleaved: carm RLS / no RLS', 'sum(amount) interleaved: carm RLS', 'sum(amount) interleaved: no RLS', '<= 1.2', false),
  ('sum(amount) clustered: carm RLS / no RLS', 'sum(amount) clustered: carm RLS', 'sum(amount) clustered: no RLS', '<= 1.2', false),
  ('count(*) interleaved: chosen plan / sequential scan', 'count(*) interleaved: carm RLS', 'count(*) interleaved: carm RLS, sequential scan forced', '<= 1.05', false),
  ('count(*) interleaved: carm RLS / peer', 'count(*) interleaved: carm RLS', 'count(*) interleaved: peer', '<= 1', false),
  ('sum(amount) interleaved: carm RLS / peer', 'sum(amount) interleaved: carm RLS', 'sum(amount) interleaved: peer', '<= 1', false),
  ('count(*) clustered: carm RLS / peer', 'count(*) clustered: carm RLS', 'count(*) clustered: peer', '<= 1', false))
SELECT p.measure, r1.world AS clients, round((r1.value / nullif(r2.value, 0))::numeric, 2) AS ratio,
       p.target,
       CASE WHEN r1.value IS NULL OR r2.value IS NULL THEN '?'
            WHEN p.target = '(floor)' THEN ''
            WHEN (p.higher_is_better AND r1.value / r2.value >= split_part(p.target, ' ', 2)::numeric)
              OR (NOT p.higher_is_better AND r1.value / r2.value <= split_part(p.target, ' ', 2)::numeric)
            THEN 'met' ELSE 'MISSED' END AS status,
       round(r1.value::numeric, 1) || ' / ' || round(r2.value::numeric, 1) AS "values"
FROM pairs p JOIN r r1 ON r1.name = p.num JOIN r r2 ON r2.name = p.den AND r2.world = r1.world
ORDER BY r1.world, p.measure;
SELECT world AS clients, name, round(value::numeric, 2) AS value, unit FROM hot_result
WHERE name LIKE 'cold%' OR name LIKE 'set_actor%' ORDER BY world, name;
SELECT a.world AS clients,
       round((2e6 / b.value - 2e6 / a.value)::numeric, 2) AS "set_actor µs per transaction (pgbench, 2 clients)",
       round(((c.value - d.value) * 1000 / 100000)::numeric, 3) AS "set_actor µs per call (target <= 3)"
FROM hot_result a JOIN hot_result b ON a.world = b.world
JOIN hot_result c ON c.world = a.world AND c.name = 'set_actor: 100,000 calls'
JOIN hot_result d ON d.world = a.world AND d.name = 'set_actor: 100,000 calls of carm.actor()'
WHERE a.name = 'set_actor: BEGIN; SELECT 1; SELECT 1; COMMIT' AND b.name = 'set_actor: BEGIN; set_actor; SELECT 1; COMMIT';
