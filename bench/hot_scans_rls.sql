-- Scans by the broker's BAM, who may see every row: carm RLS (the plan the
-- planner picks, and the sequential scan with the row check forced) and the
-- hand-written peer.  Run as bench_app (a carm_gateway member) by bench/hot.sh.
\set ON_ERROR_STOP 1
BEGIN;
SELECT carm.set_actor(1);
SELECT set_config('bench.user', '1', true);
INSERT INTO hot_result VALUES
 (:world, 'count(*) interleaved: carm RLS', bench.time('SELECT count(*) FROM app.payment', 7), 'ms'),
 (:world, 'sum(amount) interleaved: carm RLS', bench.time('SELECT sum(amount) FROM app.payment', 7), 'ms'),
 (:world, 'count(*) interleaved: peer', bench.time('SELECT count(*) FROM app.payment_peer', 7), 'ms'),
 (:world, 'sum(amount) interleaved: peer', bench.time('SELECT sum(amount) FROM app.payment_peer', 7), 'ms'),
 (:world, 'count(*) clustered: carm RLS', bench.time('SELECT count(*) FROM app.payment_c', 7), 'ms'),
 (:world, 'sum(amount) clustered: carm RLS', bench.time('SELECT sum(amount) FROM app.payment_c', 7), 'ms'),
 (:world, 'count(*) clustered: peer', bench.time('SELECT count(*) FROM app.payment_peer_c', 7), 'ms'),
 (:world, 'sum(amount) clustered: peer', bench.time('SELECT sum(amount) FROM app.payment_peer_c', 7), 'ms');
-- set_actor itself: 100,000 calls in one statement, against as many calls
-- of carm.actor() (a C function that only reads the setting)
INSERT INTO hot_result VALUES
 (:world, 'set_actor: 100,000 calls', bench.time('SELECT count(carm.set_actor(1)) FROM generate_series(1, 100000)', 5), 'ms'),
 (:world, 'set_actor: 100,000 calls of carm.actor()', bench.time('SELECT count(carm.actor()) FROM generate_series(1, 100000)', 5), 'ms');
-- what the planner chose, and the sequential scan with the check
EXPLAIN (COSTS OFF) SELECT count(*) FROM app.payment;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
INSERT INTO hot_result VALUES
 (:world, 'count(*) interleaved: carm RLS, sequential scan forced', bench.time('SELECT count(*) FROM app.payment', 7), 'ms'),
 (:world, 'count(*) clustered: carm RLS, sequential scan forced', bench.time('SELECT count(*) FROM app.payment_c', 7), 'ms');
COMMIT;
