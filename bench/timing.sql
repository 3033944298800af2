-- bench.time(q, reps, warm): the median milliseconds of reps executions of
-- the query q, after one warm-up run unless warm is false.  Included (\ir)
-- by every benchmark world and bench/measure.sql.
CREATE OR REPLACE FUNCTION bench.time(q text, reps int, warm boolean DEFAULT true)
RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  samples double precision[] := '{}';
BEGIN
  IF warm THEN
    EXECUTE q;
  END IF;
  FOR i IN 1..reps LOOP
    t0 := clock_timestamp();
    EXECUTE q;
    samples := samples || extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  RETURN (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM unnest(samples) s);
END $$;
