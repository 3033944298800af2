-- Scan baselines without row-level security (run as the superuser, which
-- bypasses it), for bench/hot.sh.  psql variable :world = number of clients.
\set ON_ERROR_STOP 1
INSERT INTO hot_result VALUES
 (:world, 'count(*) interleaved: no RLS', bench.time('SELECT count(*) FROM app.payment', 7), 'ms'),
 (:world, 'count(*) interleaved: floor (trivial qual on the two columns)',
  bench.time('SELECT count(*) FROM app.payment WHERE program_id > 0 AND submitted_by > 0', 7), 'ms'),
 (:world, 'sum(amount) interleaved: no RLS', bench.time('SELECT sum(amount) FROM app.payment', 7), 'ms'),
 (:world, 'sum(amount) interleaved: floor (trivial qual on the two columns)',
  bench.time('SELECT sum(amount) FROM app.payment WHERE program_id > 0 AND submitted_by > 0', 7), 'ms'),
 (:world, 'count(*) clustered: no RLS', bench.time('SELECT count(*) FROM app.payment_c', 7), 'ms'),
 (:world, 'count(*) clustered: floor (trivial qual on the two columns)',
  bench.time('SELECT count(*) FROM app.payment_c WHERE program_id > 0 AND submitted_by > 0', 7), 'ms'),
 (:world, 'sum(amount) clustered: no RLS', bench.time('SELECT sum(amount) FROM app.payment_c', 7), 'ms');
