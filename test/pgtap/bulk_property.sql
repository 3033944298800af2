-- pgTAP property test (§12 bulk loads, §10 rev. 1.2 array arguments): a
-- bulk load is the one-row functions applied in order.  For rounds of
-- random batches — random lengths (0 to 14), every array with its own random
-- first subscript (-5 to 5, as '[lb:ub]={…}' or a client library's slice
-- gives), names and emails sometimes NULL, names and identities padded with
-- random white space (tab, newline, no-break space, ideographic space), kinds
-- per business or one for the whole batch — carm.add_businesses,
-- carm.add_program_accounts and carm.register_users leave exactly the state
-- that add_business, add_program_account and register_user called element
-- by element leave, return the number of rows, and their audit events list
-- exactly the identifiers the one-row events list, in the same order.
-- A batch with one bad element at a random position is refused with the
-- position counted from 1, whatever the bounds, and loads nothing.
-- Each side of a round runs in a block that is rolled back (the state and
-- audit it produced are kept in PL/pgSQL variables), so both start from the
-- same state.  One transaction, rolled back at the end.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
SET client_min_messages = error;

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;

SELECT plan(6);
SELECT setseed(0.2026);

-- BN9 with its Luhn check digit
CREATE FUNCTION pg_temp.bn9(i bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  WITH d AS (SELECT lpad(i::text, 8, '0') AS s)
  SELECT s || ((10 - (SELECT sum(CASE WHEN k % 2 = 1 THEN v ELSE (CASE WHEN v * 2 > 9 THEN v * 2 - 9 ELSE v * 2 END) END)
                      FROM (SELECT k, substr(s, k, 1)::int AS v FROM generate_series(1, 8) k) x) % 10) % 10)::text
  FROM d $$;

-- An array with a random first subscript (-5 .. 5).
CREATE FUNCTION pg_temp.rebound(a text[]) RETURNS text[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  lb integer := floor(random() * 11)::integer - 5;
BEGIN
  IF cardinality(a) = 0 THEN
    RETURN a;
  END IF;
  RETURN format('[%s:%s]=%s', lb, lb + cardinality(a) - 1, a::text)::text[];
END
$$;

-- Random white space around a text (or none).
CREATE FUNCTION pg_temp.pad(t text) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT (ARRAY['', ' ', E'\t', E'\n', U&'\00A0', U&'\3000 '])[1 + floor(random() * 6)::int] || t
      || (ARRAY['', ' ', E'\t', U&'\00A0', U&'\2003'])[1 + floor(random() * 5)::int]
$$;

-- What the loads changed: the rows in insertion order, without ids.
CREATE FUNCTION pg_temp.state() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'businesses', (SELECT coalesce(jsonb_agg(jsonb_build_array(b.bn9, b.legal_name, b.kinds) ORDER BY b.id), '[]')
                   FROM carm.business b),
    'programs', (SELECT coalesce(jsonb_agg(jsonb_build_array(p.bn15, p.name, b.bn9) ORDER BY p.id), '[]')
                 FROM carm.program p JOIN carm.business b ON b.id = p.business_id),
    'users', (SELECT coalesce(jsonb_agg(jsonb_build_array(u.external_id, u.full_name, u.email, u.active) ORDER BY u.id), '[]')
              FROM carm.app_user u))
$$;

-- What the audit trail says was loaded since event p_after: the identifiers
-- of each kind in order, from the one-row events or the bulk events' lists;
-- and whether every bulk event's count is the length of its list.
CREATE FUNCTION pg_temp.audited(p_after bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
  WITH ev AS (
    SELECT a.id, a.event, a.details FROM carm.audit_event a WHERE a.id > p_after
  ), ids AS (
    SELECT ev.id, 0 AS k, 'businesses' AS kind, ev.details->>'bn9' AS ident FROM ev WHERE ev.event = 'business_added'
    UNION ALL
    SELECT ev.id, 0, 'programs', ev.details->>'bn15' FROM ev WHERE ev.event = 'program_added'
    UNION ALL
    SELECT ev.id, 0, 'users', ev.details->>'external_id' FROM ev WHERE ev.event = 'user_registered'
    UNION ALL
    SELECT ev.id, x.k, 'businesses', x.v FROM ev, jsonb_array_elements_text(ev.details->'bn9s') WITH ORDINALITY x(v, k)
    WHERE ev.event = 'businesses_added'
    UNION ALL
    SELECT ev.id, x.k, 'programs', x.v FROM ev, jsonb_array_elements_text(ev.details->'bn15s') WITH ORDINALITY x(v, k)
    WHERE ev.event = 'program_accounts_added'
    UNION ALL
    SELECT ev.id, x.k, 'users', x.v FROM ev, jsonb_array_elements_text(ev.details->'external_ids') WITH ORDINALITY x(v, k)
    WHERE ev.event = 'users_registered'
  )
  SELECT jsonb_build_object(
    'businesses', (SELECT coalesce(jsonb_agg(ident ORDER BY id, k), '[]') FROM ids WHERE kind = 'businesses'),
    'programs', (SELECT coalesce(jsonb_agg(ident ORDER BY id, k), '[]') FROM ids WHERE kind = 'programs'),
    'users', (SELECT coalesce(jsonb_agg(ident ORDER BY id, k), '[]') FROM ids WHERE kind = 'users'),
    'counts_agree', (SELECT coalesce(bool_and((ev.details->>'count')::int
                                              = jsonb_array_length(coalesce(ev.details->'bn9s', ev.details->'bn15s',
                                                                            ev.details->'external_ids'))), true)
                     FROM ev WHERE ev.event IN ('businesses_added', 'program_accounts_added', 'users_registered')))
$$;

CREATE TEMP TABLE outcome (round int, bulk_state jsonb, row_state jsonb, bulk_audit jsonb, row_audit jsonb,
                           bulk_counts int[], expected_counts int[], refusal text, expected_refusal text,
                           refused_state_same boolean, error text);

-- One round: a random batch loaded both ways, each in a rolled-back block.
CREATE FUNCTION pg_temp.round(r int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  nb int := floor(random() * 15)::int;         -- businesses
  np int;                                       -- program accounts
  nu int := floor(random() * 15)::int;         -- users
  bn9s text[]; names text[]; kinds text[];
  bn15s text[]; pnames text[];
  ext text[]; fulls text[]; emails text[];
  broadcast boolean := random() < 0.3;       -- one kinds entry for the batch
  omit_names boolean := random() < 0.2;      -- names => NULL: no program has one
  all_kinds text[] := ARRAY['IMPORTER', 'CUSTOMS_BROKER', 'TRADE_CONSULTANT', 'CUSTOMS_BROKER,TRADE_CONSULTANT',
                            'IMPORTER,CUSTOMS_BROKER'];
  v_before jsonb := pg_temp.state();
  v_last bigint := (SELECT coalesce(max(id), 0) FROM carm.audit_event);
  v_bulk_state jsonb; v_row_state jsonb; v_bulk_audit jsonb; v_row_audit jsonb;
  v_counts int[]; v_refusal text; v_bad int; v_same boolean; v_error text;
BEGIN
  bn9s := ARRAY(SELECT pg_temp.bn9(r * 100 + i) FROM generate_series(1, nb) i);
  names := ARRAY(SELECT pg_temp.pad('Business ' || r || '-' || i) FROM generate_series(1, nb) i);
  kinds := CASE WHEN broadcast THEN ARRAY[all_kinds[1 + floor(random() * 5)::int]]
                ELSE ARRAY(SELECT all_kinds[1 + floor(random() * 5)::int] FROM generate_series(1, nb)) END;
  -- programs of this round's businesses, 0 to 2 each, in a random order
  SELECT coalesce(array_agg(b || 'RM' || lpad(k::text, 4, '0') ORDER BY random()), '{}')
  INTO bn15s FROM unnest(bn9s) b, generate_series(1, floor(random() * 3)::int) k;
  np := cardinality(bn15s);
  pnames := ARRAY(SELECT CASE WHEN random() < 0.3 THEN NULL ELSE 'Program ' || i END FROM generate_series(1, np) i);
  ext := ARRAY(SELECT pg_temp.pad('r' || r || 'u' || i) FROM generate_series(1, nu) i);
  fulls := ARRAY(SELECT pg_temp.pad('User ' || r || '.' || i) FROM generate_series(1, nu) i);
  emails := ARRAY(SELECT CASE WHEN random() < 0.4 THEN NULL ELSE 'r' || r || 'u' || i || '@example.com' END
                  FROM generate_series(1, nu) i);

  -- in bulk, every array with bounds of its own
  BEGIN
    v_counts := ARRAY[carm.add_businesses(pg_temp.rebound(bn9s), pg_temp.rebound(names), pg_temp.rebound(kinds))::int,
                      carm.add_program_accounts(pg_temp.rebound(bn15s),
                                                CASE WHEN omit_names THEN NULL ELSE pg_temp.rebound(pnames) END)::int,
                      0];
    v_counts[3] := carm.register_users(pg_temp.rebound(ext), pg_temp.rebound(fulls), pg_temp.rebound(emails));
    v_bulk_state := pg_temp.state();
    v_bulk_audit := pg_temp.audited(v_last);
    RAISE EXCEPTION 'rolled back' USING ERRCODE = 'P0001';
  EXCEPTION WHEN OTHERS THEN
    IF SQLERRM <> 'rolled back' THEN
      v_error := 'bulk: ' || SQLSTATE || ' ' || SQLERRM;
    END IF;
  END;

  -- one at a time, in order
  BEGIN
    FOR i IN 1 .. nb LOOP
      PERFORM carm.add_business(bn9s[i], names[i],
                                string_to_array(CASE WHEN broadcast THEN kinds[1] ELSE kinds[i] END, ','));
    END LOOP;
    FOR i IN 1 .. np LOOP
      PERFORM carm.add_program_account(bn15s[i], CASE WHEN omit_names THEN NULL ELSE pnames[i] END);
    END LOOP;
    FOR i IN 1 .. nu LOOP
      PERFORM carm.register_user(ext[i], fulls[i], emails[i]);
    END LOOP;
    v_row_state := pg_temp.state();
    v_row_audit := pg_temp.audited(v_last);
    RAISE EXCEPTION 'rolled back' USING ERRCODE = 'P0001';
  EXCEPTION WHEN OTHERS THEN
    IF SQLERRM <> 'rolled back' THEN
      v_error := coalesce(v_error || '; ', '') || 'one row: ' || SQLSTATE || ' ' || SQLERRM;
    END IF;
  END;

  -- one bad element (a malformed BN9) at a random position: refused with
  -- that position counted from 1, nothing loaded
  IF nb > 0 THEN
    v_bad := 1 + floor(random() * nb)::int;
    bn9s[v_bad] := 'bad' || r;
    BEGIN
      PERFORM carm.add_businesses(pg_temp.rebound(bn9s), pg_temp.rebound(names), pg_temp.rebound(kinds));
      v_refusal := 'loaded';
    EXCEPTION WHEN OTHERS THEN
      v_refusal := SQLSTATE || ' ' || SQLERRM;
    END;
    v_same := pg_temp.state() = v_before;
  END IF;

  INSERT INTO outcome VALUES (r, v_bulk_state, v_row_state, v_bulk_audit, v_row_audit - 'counts_agree'
                                                         || jsonb_build_object('counts_agree', true),
                              v_counts, ARRAY[nb, np, nu], v_refusal,
                              CASE WHEN nb > 0 THEN format('22023 invalid business number "bad%s" at position %s', r, v_bad) END,
                              CASE WHEN nb > 0 THEN v_same END, v_error);
END
$$;

-- a base to load onto: one business, program and user already there
SELECT carm.add_business(pg_temp.bn9(1), 'Existing', '{IMPORTER}') IS NOT NULL \g /dev/null
SELECT carm.add_program_account(pg_temp.bn9(1) || 'RM0001') IS NOT NULL \g /dev/null
SELECT carm.register_user('existing', 'Existing User') IS NOT NULL \g /dev/null
SELECT pg_temp.round(r) FROM generate_series(1, 40) r \g /dev/null

SELECT is((SELECT format('round %s: %s', round, error) FROM outcome WHERE error IS NOT NULL ORDER BY round LIMIT 1),
          NULL, '§12, §10: every round loaded both ways, with no error (the first error)');
SELECT is((SELECT count(*) FROM outcome WHERE bulk_state IS DISTINCT FROM row_state), 0::bigint,
          '§12, §10: a bulk load with any bounds leaves the state the one-row functions leave');
SELECT is((SELECT min(round) FROM outcome WHERE bulk_state IS DISTINCT FROM row_state), NULL,
          '§12: no round differs (the first that does)');
SELECT is((SELECT count(*) FROM outcome WHERE bulk_counts IS DISTINCT FROM expected_counts), 0::bigint,
          '§12: each bulk load returns the number of rows in its batch');
SELECT is((SELECT count(*) FROM outcome WHERE bulk_audit IS DISTINCT FROM row_audit), 0::bigint,
          '§9, §12: bulk audit events list exactly what was loaded, as the one-row events do, counts included');
SELECT is((SELECT count(*) FROM outcome
           WHERE expected_refusal IS NOT NULL
             AND (refusal IS DISTINCT FROM expected_refusal OR NOT refused_state_same)), 0::bigint,
          '§12, §10: a bad element is refused at its position counted from 1, whatever the bounds, and nothing is loaded');

SELECT * FROM finish();
ROLLBACK;
