-- §10: NULLs, empty arrays, malformed and huge arguments, unknown ids, for
-- every function of the API (and the internal ones open to every role), as
-- an actor and as nobody: each call either
-- works or fails with a proper SQLSTATE; none is an internal error (class
-- XX) and none crashes the backend.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
-- This transcript changes actors between statements with session actors
-- (set_actor(..., false)), which are off by default (SPEC §10 rev. 1.2).
SET carm_deleg.allow_session_actor = on;
SELECT carm.add_business('123456782', 'Importer', '{IMPORTER}'),
       carm.add_business('200000008', 'Broker', '{CUSTOMS_BROKER}'),
       carm.add_program_account('123456782RM0001'),
       carm.register_user('alice', 'Alice'), carm.register_user('bob', 'Bob');
INSERT INTO carm.employee (business_id, user_id, role) VALUES (1, 1, 'BAM'), (2, 2, 'BAM');

-- sample values per argument type, NULL first
CREATE TEMP TABLE samples (typ regtype, val text);
INSERT INTO samples VALUES
  ('text', NULL), ('text', ''), ('text', '   '), ('text', '123456782'), ('text', '123456782RM0001'),
  ('text', '12345678X'), ('text', 'rulings.view'), ('text', 'BAM'), ('text', 'rulings'),
  ('text', repeat('9', 100000)), ('text', E'\\x01''; DROP TABLE x; --'),
  ('bigint', NULL), ('bigint', '-1'), ('bigint', '0'), ('bigint', '1'), ('bigint', '9223372036854775807'),
  ('boolean', NULL), ('boolean', 'true'),
  ('text[]', NULL), ('text[]', '{}'), ('text[]', '{NULL}'), ('text[]', '{123456782RM0001}'),
  ('text[]', '{123456782,200000008,123456782}'),
  ('bigint[]', NULL), ('bigint[]', '{}'), ('bigint[]', '{NULL}'), ('bigint[]', '{1,2,-1}'),
  ('timestamptz', NULL), ('timestamptz', 'infinity'), ('timestamptz', '-infinity'),
  ('regclass', NULL), ('regclass', 'pg_class'), ('regclass', 'carm.business'),
  ('name', NULL), ('name', 'x'), ('regrole', NULL), ('regrole', 'carm_admin');

-- Calls f once per sample of each argument, the other arguments NULL (and
-- once with every argument at its second sample); returns the SQLSTATEs of
-- the calls that raised.
CREATE FUNCTION pg_temp.fuzz(f regprocedure) RETURNS TABLE (call text, state text)
LANGUAGE plpgsql AS $$
DECLARE
  types regtype[];
  n int;
  args text[];
  s record;
  q text;
BEGIN
  SELECT ARRAY(SELECT unnest(p.proargtypes::oid[]::regtype[])) INTO types FROM pg_proc p WHERE p.oid = f;
  n := coalesce(array_length(types, 1), 0);
  FOR i IN 0 .. greatest(n, 1) - 1 LOOP
    FOR s IN SELECT val FROM samples WHERE typ = types[i + 1] OR (n = 0 AND typ = 'text'::regtype AND val IS NULL) LOOP
      args := ARRAY(SELECT CASE WHEN j = i THEN coalesce(quote_literal(s.val), 'NULL') ELSE 'NULL' END
                             || '::' || types[j + 1]::text
                    FROM generate_series(0, n - 1) j);
      q := format('SELECT %s(%s)', f::oid::regproc, array_to_string(args, ', '));
      BEGIN
        EXECUTE q;
      EXCEPTION WHEN OTHERS THEN
        call := left(q, 120); state := SQLSTATE;
        RETURN NEXT;
      END;
    END LOOP;
  END LOOP;
END $$;

CREATE FUNCTION pg_temp.fuzz_all() RETURNS TABLE (func regprocedure, call text, state text)
LANGUAGE plpgsql AS $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           WHERE p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype, 'internal'::regtype)
             AND NOT ('internal'::regtype = ANY (p.proargtypes::oid[]::regtype[]))
             -- the API, and the internal functions open to every role (the
             -- row checks, the reports' actor variants)
             AND (p.pronamespace = 'carm'::regnamespace
                  OR (p.pronamespace = 'carm_internal'::regnamespace
                      AND has_function_privilege('public', p.oid, 'EXECUTE')))
           ORDER BY 1 LOOP
    RETURN QUERY SELECT f, x.call, x.state FROM pg_temp.fuzz(f) x;
  END LOOP;
END $$;

-- as the actor alice (a BAM), then with no actor
SELECT carm.set_actor('alice', false);
CREATE TEMP TABLE outcome_actor AS SELECT * FROM pg_temp.fuzz_all();
SELECT carm.reset_actor();
CREATE TEMP TABLE outcome_nobody AS SELECT * FROM pg_temp.fuzz_all();

SELECT count(DISTINCT func) >= 50 AS functions_refusing_bad_input,
       count(*) > 1000 AS many_refusals
FROM (SELECT * FROM outcome_actor UNION ALL SELECT * FROM outcome_nobody) o;
-- no internal error, whoever calls
SELECT func, call, state FROM outcome_actor WHERE state LIKE 'XX%'
UNION ALL
SELECT func, call, state FROM outcome_nobody WHERE state LIKE 'XX%';
-- the refusals, by class: data exceptions (22), acting user (28), privileges (42), state (55), not found (P0)
SELECT left(state, 2) AS class, count(*) > 0 AS seen
FROM (SELECT * FROM outcome_actor UNION ALL SELECT * FROM outcome_nobody) o
GROUP BY 1 ORDER BY 1;
-- the backend is alive
SELECT 1 AS alive;
DROP EXTENSION carm_deleg CASCADE;
