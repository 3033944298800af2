-- §12 bulk reference data: carm_admin loads businesses, program accounts and
-- users by the hundred thousand.  Each function takes parallel arrays (one
-- element per row), checks every element with the rules of its one-row
-- counterpart (add_business, add_program_account, register_user) in one
-- set-based pass, and then inserts everything with one INSERT ... SELECT and
-- writes ONE audit event for the batch.  The first offending element stops
-- the batch with the SQLSTATE its one-row counterpart raises and its
-- position; nothing is applied (docs/dba.md "Bulk load reference data";
-- docs/design.md, decision "Bulk load").
--
-- The shape of a batch (§10, rev. 1.2) is checked first, array by array, by
-- carm_internal.array_arg: not NULL (22004), one-dimensional (22023), no NULL
-- element where the one-row function needs a value (22004, naming its
-- position), as long as the first array (22023).  array_arg also returns
-- each array with subscripts from 1, so an array with other bounds
-- ('[0:2]={…}', a slice a client library built) is read whole and in order:
-- positions in errors count from 1 whatever the caller's bounds.
--
-- Upsert mode (rev. 1.2, periodic reference-data refreshes): each load has
-- an overload with a last argument on_conflict, 'error' (what the shorter
-- signature does: a key already stored stops the batch, 23505), 'skip' (a
-- stored key is left as it is) or 'update' (a stored key takes the batch's
-- values: a business's legal name and kinds, a program's name, a user's full
-- name and email; never an id, a BN9, a BN15 or an external id, so a
-- program's business never changes; a NULL program name or email keeps the
-- stored one).  A stored row whose values already equal the batch's is
-- left untouched and counted as skipped.  The overload returns the counts
-- (inserted, updated, skipped) and its one audit event reports them.
--
-- What an update makes stale (11_invalidation.sql): a user's row sends the
-- user's key, a program's row its business's key, as any UPDATE of those
-- tables does; a business's row sends none, because no cached decision
-- reads a business's name or kinds (carm_internal.grants() does not read
-- them): kinds decide only whether the business may request a relationship
-- (R1) or keep client groups (G1), which those functions read from the
-- table when they run, as after carm.set_business_kinds().  Relationships
-- and groups made while it was a service provider stay, and so do their
-- grants.

-- Raises the error of the first offending element of a batch.  p_problem
-- says what is wrong, p_pos its 1-based position in the arrays, p_value the
-- element (never more than 32 characters are echoed, §10).
CREATE OR REPLACE FUNCTION carm_internal.bulk_refuse(p_what text, p_problem text, p_pos bigint, p_value text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_shown text := coalesce('"' || left(p_value, 32) || '"', 'NULL');
  v_detail text := format('Element %s of the batch; nothing was loaded.', p_pos);
BEGIN
  CASE p_problem
    WHEN 'bn9' THEN
      RAISE EXCEPTION 'invalid business number % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail,
              HINT = 'A BN9 is nine digits, the last a Luhn check digit.';
    WHEN 'bn15' THEN
      RAISE EXCEPTION 'invalid program account number % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail,
              HINT = 'A BN15 is a BN9, RM and four digits, e.g. 123456782RM0001.';
    WHEN 'no_business' THEN
      RAISE EXCEPTION 'business % does not exist (program account at position %)', v_shown, p_pos
        USING ERRCODE = 'P0002', DETAIL = v_detail,
              HINT = 'Load the business first (carm.add_businesses), or in an earlier batch.';
    WHEN 'blank' THEN
      RAISE EXCEPTION '% must not be blank (position %)', p_what, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail;
    WHEN 'long' THEN
      RAISE EXCEPTION '% is too long at position % (%)', p_what, p_pos, v_shown
        USING ERRCODE = '22023', DETAIL = v_detail;
    WHEN 'kinds' THEN
      RAISE EXCEPTION 'invalid business kinds % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail,
              HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT, several separated by commas.';
    WHEN 'email' THEN
      RAISE EXCEPTION 'invalid email address % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail;
    WHEN 'twice' THEN
      RAISE EXCEPTION '% % appears twice in the batch (position %)', p_what, v_shown, p_pos
        USING ERRCODE = '23505', DETAIL = v_detail;
    WHEN 'exists' THEN
      RAISE EXCEPTION '% % already exists (position %)', p_what, v_shown, p_pos
        USING ERRCODE = '23505', DETAIL = v_detail,
              HINT = 'To refresh stored reference data, pass on_conflict => ''update'' or ''skip''.';
    ELSE
      RAISE EXCEPTION 'unexpected bulk problem %', p_problem USING ERRCODE = 'XX000';
  END CASE;
END
$$;
COMMENT ON FUNCTION carm_internal.bulk_refuse(text, text, bigint, text) IS
  'Internal (§12): raises the error of the first offending element of a bulk load, with its position and the SQLSTATE of the one-row function';

-- The on_conflict argument of a bulk load: 'error', 'update' or 'skip'.
CREATE OR REPLACE FUNCTION carm_internal.bulk_mode(p_mode text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.not_null(p_mode, 'on_conflict');
  IF p_mode NOT IN ('error', 'update', 'skip') THEN
    RAISE EXCEPTION 'unknown on_conflict mode "%"', left(p_mode, 32)
      USING ERRCODE = '22023', DETAIL = 'Nothing was loaded.',
            HINT = 'Modes are ''error'' (a stored key stops the batch), ''update'' (stored rows take the batch''s values) and ''skip'' (stored rows are left as they are).';
  END IF;
  RETURN p_mode;
END
$$;
COMMENT ON FUNCTION carm_internal.bulk_mode(text) IS
  'Internal (§12): the on_conflict mode of a bulk load, checked (22004 NULL, 22023 unknown)';

-- Businesses --------------------------------------------------------------
--
-- Each function validates in one statement (the first offending element, if
-- any) and inserts in a second one: no temporary table, whose name a caller
-- could have taken in its own pg_temp.

CREATE OR REPLACE FUNCTION carm.add_businesses(bn9s text[], legal_names text[], kinds text[],
                                               on_conflict text,
                                               OUT inserted bigint, OUT updated bigint, OUT skipped bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_mode text;
  v_n integer;
  v_kinds text[];
  v_bad record;
BEGIN
  PERFORM carm_internal.require_admin();
  v_mode := carm_internal.bulk_mode(on_conflict);
  PERFORM carm_internal.not_null(bn9s, 'bn9s');
  bn9s := carm_internal.array_arg(bn9s, 'bn9s');
  v_n := cardinality(bn9s);
  PERFORM carm_internal.not_null(legal_names, 'legal_names');
  legal_names := carm_internal.array_arg(legal_names, 'legal_names', false, v_n, 'bn9s');
  PERFORM carm_internal.not_null(kinds, 'kinds');
  kinds := carm_internal.array_arg(kinds, 'kinds', false,
                                   CASE WHEN cardinality(kinds) = 1 AND array_ndims(kinds) = 1 THEN NULL ELSE v_n END,
                                   'bn9s');
  inserted := 0; updated := 0; skipped := 0;
  IF v_n = 0 THEN
    RETURN;
  END IF;
  -- kinds: one entry per business, or one entry for the whole batch
  v_kinds := CASE cardinality(kinds) WHEN 1 THEN array_fill(kinds[1], ARRAY[v_n]) ELSE kinds END;
  SELECT x.pos, x.problem, CASE x.problem WHEN 'kinds' THEN x.kind WHEN 'long' THEN x.legal_name
                                          ELSE x.bn9 END AS shown
  INTO v_bad
  FROM (SELECT u.pos, u.bn9, u.legal_name, u.kind,
               CASE WHEN NOT carm_internal.bn9_is_valid(u.bn9) THEN 'bn9'
                    WHEN carm_internal.trim_blank(u.legal_name) = '' THEN 'blank'
                    WHEN length(u.legal_name) > 512 THEN 'long'
                    WHEN carm_internal.trim_blank(u.kind) = '' OR EXISTS (
                           SELECT FROM unnest(string_to_array(u.kind, ',')) k
                           WHERE carm_internal.trim_blank(k) NOT IN ('IMPORTER','CUSTOMS_BROKER','TRADE_CONSULTANT')) THEN 'kinds'
                    WHEN u.pos > min(u.pos) OVER (PARTITION BY u.bn9) THEN 'twice'
                    WHEN v_mode = 'error' AND EXISTS (SELECT FROM carm.business b WHERE b.bn9 = u.bn9) THEN 'exists'
               END AS problem
        FROM unnest(bn9s, legal_names, v_kinds) WITH ORDINALITY AS u(bn9, legal_name, kind, pos)) x
  WHERE x.problem IS NOT NULL
  ORDER BY x.pos LIMIT 1;
  IF FOUND THEN
    PERFORM carm_internal.bulk_refuse(CASE WHEN v_bad.problem IN ('blank', 'long') THEN 'legal_name'
                                           ELSE 'business' END,
                                      v_bad.problem, v_bad.pos, v_bad.shown);
  END IF;
  IF v_mode = 'error' THEN
    INSERT INTO carm.business (bn9, legal_name, kinds)
    SELECT u.bn9, carm_internal.trim_blank(u.legal_name),
           ARRAY(SELECT DISTINCT carm_internal.trim_blank(k) FROM unnest(string_to_array(u.kind, ',')) k ORDER BY 1)
    FROM unnest(bn9s, legal_names, v_kinds) WITH ORDINALITY AS u(bn9, legal_name, kind, pos)
    ORDER BY u.pos;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    PERFORM carm_internal.audit('businesses_added', NULL, NULL, NULL, NULL, NULL,
                                jsonb_build_object('count', inserted, 'bn9s', to_jsonb(bn9s)));
    RETURN;
  END IF;
  -- 'update' and 'skip': a stored BN9 takes the batch's legal name and kinds
  -- when they differ (update), else is left as it is; xmax = 0 tells an
  -- inserted row from an updated one
  WITH ins AS (
    INSERT INTO carm.business AS b (bn9, legal_name, kinds)
    SELECT u.bn9, carm_internal.trim_blank(u.legal_name),
           ARRAY(SELECT DISTINCT carm_internal.trim_blank(k) FROM unnest(string_to_array(u.kind, ',')) k ORDER BY 1)
    FROM unnest(bn9s, legal_names, v_kinds) WITH ORDINALITY AS u(bn9, legal_name, kind, pos)
    ORDER BY u.pos
    ON CONFLICT (bn9) DO UPDATE SET legal_name = excluded.legal_name, kinds = excluded.kinds
      WHERE v_mode = 'update'
        AND (b.legal_name, b.kinds) IS DISTINCT FROM (excluded.legal_name, excluded.kinds)
    RETURNING b.xmax = 0 AS ins)
  SELECT count(*) FILTER (WHERE ins.ins), count(*) FILTER (WHERE NOT ins.ins)
  INTO inserted, updated
  FROM ins;
  skipped := v_n - inserted - updated;
  PERFORM carm_internal.audit('businesses_added', NULL, NULL, NULL, NULL, NULL,
                              jsonb_build_object('on_conflict', v_mode, 'inserted', inserted,
                                                 'updated', updated, 'skipped', skipped,
                                                 'bn9s', to_jsonb(bn9s)));
END
$$;
COMMENT ON FUNCTION carm.add_businesses(text[], text[], text[], text) IS
  'Bulk load or refresh of business accounts (carm_admin, §12): as add_businesses(bn9s, legal_names, kinds), and a stored BN9 is an error (on_conflict ''error''), keeps its row (''skip'') or takes the batch''s legal name and kinds (''update''); all or nothing, one audit event; returns the inserted, updated and skipped counts';

-- The signature of 1.1, kept: the mode 'error'.  SECURITY DEFINER as it was,
-- so that EXECUTE granted on it alone keeps working.
CREATE OR REPLACE FUNCTION carm.add_businesses(bn9s text[], legal_names text[], kinds text[])
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (carm.add_businesses(bn9s, legal_names, kinds, 'error')).inserted $$;
COMMENT ON FUNCTION carm.add_businesses(text[], text[], text[]) IS
  'Bulk load of business accounts (carm_admin, §12): per element a BN9 with its check digit, a legal name and its kinds (''IMPORTER'' or ''CUSTOMS_BROKER,TRADE_CONSULTANT''; a single kinds entry applies to every business); validated like add_business, all or nothing, one audit event; returns the count';

-- Program accounts ---------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.add_program_accounts(bn15s text[], names text[], on_conflict text,
                                                     OUT inserted bigint, OUT updated bigint, OUT skipped bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_mode text;
  v_n integer;
  v_bad record;
  v_ins bigint;
  v_upd bigint;
BEGIN
  PERFORM carm_internal.require_admin();
  v_mode := carm_internal.bulk_mode(on_conflict);
  PERFORM carm_internal.not_null(bn15s, 'bn15s');
  bn15s := carm_internal.array_arg(bn15s, 'bn15s');
  v_n := cardinality(bn15s);
  -- names: NULL for none at all, a NULL element for none on that row
  names := carm_internal.array_arg(names, 'names', true, v_n, 'bn15s');
  inserted := 0; updated := 0; skipped := 0;
  IF v_n = 0 THEN
    RETURN;
  END IF;
  SELECT x.pos, x.problem, CASE x.problem WHEN 'long' THEN x.name WHEN 'no_business' THEN left(x.bn15, 9)
                                          ELSE x.bn15 END AS shown
  INTO v_bad
  FROM (SELECT u.pos, u.bn15, u.name,
               CASE WHEN NOT carm_internal.bn15_is_valid(u.bn15) THEN 'bn15'
                    WHEN length(u.name) > 512 THEN 'long'
                    WHEN NOT EXISTS (SELECT FROM carm.business b WHERE b.bn9 = left(u.bn15, 9)) THEN 'no_business'
                    WHEN u.pos > min(u.pos) OVER (PARTITION BY u.bn15) THEN 'twice'
                    WHEN v_mode = 'error' AND EXISTS (SELECT FROM carm.program p WHERE p.bn15 = u.bn15) THEN 'exists'
               END AS problem
        FROM unnest(bn15s, names) WITH ORDINALITY AS u(bn15, name, pos)) x
  WHERE x.problem IS NOT NULL
  ORDER BY x.pos LIMIT 1;
  IF FOUND THEN
    PERFORM carm_internal.bulk_refuse(CASE v_bad.problem WHEN 'long' THEN 'name' ELSE 'program account' END,
                                      v_bad.problem, v_bad.pos, v_bad.shown);
  END IF;
  -- in slices, as each row queues an invalidation key (see register_users)
  FOR v_from IN 1 .. v_n BY 10000 LOOP
    IF v_mode = 'error' THEN
      INSERT INTO carm.program (business_id, bn15, name)
      SELECT b.id, u.bn15, u.name
      FROM unnest(bn15s[v_from : v_from + 9999], names[v_from : v_from + 9999])
           WITH ORDINALITY AS u(bn15, name, pos)
      JOIN carm.business b ON b.bn9 = left(u.bn15, 9)
      ORDER BY u.pos;
      GET DIAGNOSTICS v_ins = ROW_COUNT;
      v_upd := 0;
    ELSE
      -- a stored BN15 keeps its business (the BN15 names it) and takes the
      -- batch's name when one is given and differs (update)
      WITH ins AS (
        INSERT INTO carm.program AS p (business_id, bn15, name)
        SELECT b.id, u.bn15, u.name
        FROM unnest(bn15s[v_from : v_from + 9999], names[v_from : v_from + 9999])
             WITH ORDINALITY AS u(bn15, name, pos)
        JOIN carm.business b ON b.bn9 = left(u.bn15, 9)
        ORDER BY u.pos
        ON CONFLICT (bn15) DO UPDATE SET name = excluded.name
          WHERE v_mode = 'update' AND excluded.name IS NOT NULL
            AND p.name IS DISTINCT FROM excluded.name
        RETURNING p.xmax = 0 AS ins)
      SELECT count(*) FILTER (WHERE ins.ins), count(*) FILTER (WHERE NOT ins.ins)
      INTO v_ins, v_upd
      FROM ins;
    END IF;
    inserted := inserted + v_ins;
    updated := updated + v_upd;
  END LOOP;
  skipped := v_n - inserted - updated;
  PERFORM carm_internal.audit('program_accounts_added', NULL, NULL, NULL, NULL, NULL,
                              CASE v_mode WHEN 'error' THEN jsonb_build_object('count', inserted, 'bn15s', to_jsonb(bn15s))
                              ELSE jsonb_build_object('on_conflict', v_mode, 'inserted', inserted, 'updated', updated,
                                                      'skipped', skipped, 'bn15s', to_jsonb(bn15s)) END);
END
$$;
COMMENT ON FUNCTION carm.add_program_accounts(text[], text[], text) IS
  'Bulk load or refresh of program accounts (carm_admin, §12): as add_program_accounts(bn15s, names), and a stored BN15 is an error (on_conflict ''error''), keeps its row (''skip'') or takes the batch''s name when one is given (''update''; its business never changes); all or nothing, one audit event; returns the inserted, updated and skipped counts';

CREATE OR REPLACE FUNCTION carm.add_program_accounts(bn15s text[], names text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (carm.add_program_accounts(bn15s, names, 'error')).inserted $$;
COMMENT ON FUNCTION carm.add_program_accounts(text[], text[]) IS
  'Bulk load of program accounts (carm_admin, §12): per element a BN15 whose BN9 is an existing business, and an optional name; validated like add_program_account, all or nothing, one audit event; every all-programs grant covers them at once (E12); returns the count';

-- Users ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.register_users(external_ids text[], full_names text[], emails text[],
                                               on_conflict text,
                                               OUT inserted bigint, OUT updated bigint, OUT skipped bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_mode text;
  v_n integer;
  v_bad record;
  v_ins bigint;
  v_upd bigint;
BEGIN
  PERFORM carm_internal.require_admin();
  v_mode := carm_internal.bulk_mode(on_conflict);
  PERFORM carm_internal.not_null(external_ids, 'external_ids');
  external_ids := carm_internal.array_arg(external_ids, 'external_ids');
  v_n := cardinality(external_ids);
  PERFORM carm_internal.not_null(full_names, 'full_names');
  full_names := carm_internal.array_arg(full_names, 'full_names', false, v_n, 'external_ids');
  -- emails: NULL for none at all, a NULL element for none on that row
  emails := carm_internal.array_arg(emails, 'emails', true, v_n, 'external_ids');
  inserted := 0; updated := 0; skipped := 0;
  IF v_n = 0 THEN
    RETURN;
  END IF;
  SELECT x.pos, x.problem, x.what,
         CASE x.what WHEN 'full_name' THEN x.full_name WHEN 'email' THEN x.email ELSE x.external_id END AS shown
  INTO v_bad
  FROM (SELECT y.*,
               CASE WHEN y.problem IN ('twice', 'exists') THEN 'user with external id'
                    WHEN y.problem = 'email' THEN 'email'
                    WHEN y.ext_bad THEN 'external_id' ELSE 'full_name' END AS what
        FROM (SELECT u.pos, u.external_id, u.full_name, u.email,
                     u.ext = '' OR length(u.external_id) > 256 AS ext_bad,
                     CASE WHEN u.ext = '' THEN 'blank'
                          WHEN length(u.external_id) > 256 THEN 'long'
                          WHEN carm_internal.trim_blank(u.full_name) = '' THEN 'blank'
                          WHEN length(u.full_name) > 256 THEN 'long'
                          WHEN u.email IS NOT NULL AND (length(u.email) > 320 OR u.email !~ '^[^@\s]+@[^@\s]+$')
                          THEN 'email'
                          WHEN u.pos > min(u.pos) OVER (PARTITION BY u.ext) THEN 'twice'
                          WHEN v_mode = 'error' AND EXISTS (SELECT FROM carm.app_user a WHERE a.external_id = u.ext)
                          THEN 'exists'
                     END AS problem
              FROM (SELECT t.*, carm_internal.trim_blank(t.external_id) AS ext
                    FROM unnest(external_ids, full_names, emails) WITH ORDINALITY AS t(external_id, full_name, email, pos)) u) y
        WHERE y.problem IS NOT NULL) x
  ORDER BY x.pos LIMIT 1;
  IF FOUND THEN
    PERFORM carm_internal.bulk_refuse(v_bad.what, v_bad.problem, v_bad.pos, v_bad.shown);
  END IF;
  -- in slices: each row queues one invalidation key (11_invalidation.sql),
  -- and PostgreSQL looks for a duplicate among the keys its command queued
  -- so far, so one INSERT of 300,000 users would take quadratic time
  FOR v_from IN 1 .. v_n BY 10000 LOOP
    IF v_mode = 'error' THEN
      INSERT INTO carm.app_user (external_id, full_name, email)
      SELECT carm_internal.trim_blank(u.external_id), carm_internal.trim_blank(u.full_name), u.email
      FROM unnest(external_ids[v_from : v_from + 9999], full_names[v_from : v_from + 9999],
                  emails[v_from : v_from + 9999]) WITH ORDINALITY AS u(external_id, full_name, email, pos)
      ORDER BY u.pos;
      GET DIAGNOSTICS v_ins = ROW_COUNT;
      v_upd := 0;
    ELSE
      -- a stored external id keeps its id and state (active, bindings) and
      -- takes the batch's full name, and its email when one is given (update)
      WITH ins AS (
        INSERT INTO carm.app_user AS a (external_id, full_name, email)
        SELECT carm_internal.trim_blank(u.external_id), carm_internal.trim_blank(u.full_name), u.email
        FROM unnest(external_ids[v_from : v_from + 9999], full_names[v_from : v_from + 9999],
                    emails[v_from : v_from + 9999]) WITH ORDINALITY AS u(external_id, full_name, email, pos)
        ORDER BY u.pos
        ON CONFLICT (external_id) DO UPDATE
          SET full_name = excluded.full_name, email = coalesce(excluded.email, a.email)
          WHERE v_mode = 'update'
            AND (a.full_name, a.email) IS DISTINCT FROM (excluded.full_name, coalesce(excluded.email, a.email))
        RETURNING a.xmax = 0 AS ins)
      SELECT count(*) FILTER (WHERE ins.ins), count(*) FILTER (WHERE NOT ins.ins)
      INTO v_ins, v_upd
      FROM ins;
    END IF;
    inserted := inserted + v_ins;
    updated := updated + v_upd;
  END LOOP;
  skipped := v_n - inserted - updated;
  PERFORM carm_internal.audit('users_registered', NULL, NULL, NULL, NULL, NULL,
                              (CASE v_mode WHEN 'error' THEN jsonb_build_object('count', inserted)
                               ELSE jsonb_build_object('on_conflict', v_mode, 'inserted', inserted,
                                                       'updated', updated, 'skipped', skipped) END)
                              || jsonb_build_object('external_ids',
                                                    (SELECT jsonb_agg(carm_internal.trim_blank(x.e) ORDER BY x.pos)
                                                     FROM unnest(external_ids) WITH ORDINALITY AS x(e, pos))));
END
$$;
COMMENT ON FUNCTION carm.register_users(text[], text[], text[], text) IS
  'Bulk registration or refresh of user profiles (carm_admin, §12): as register_users(external_ids, full_names, emails), and a stored external id is an error (on_conflict ''error''), keeps its profile (''skip'') or takes the batch''s full name, and email when one is given (''update''; its id, state and bindings never change); all or nothing, one audit event; returns the inserted, updated and skipped counts';

CREATE OR REPLACE FUNCTION carm.register_users(external_ids text[], full_names text[], emails text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (carm.register_users(external_ids, full_names, emails, 'error')).inserted $$;
COMMENT ON FUNCTION carm.register_users(text[], text[], text[]) IS
  'Bulk registration of user profiles (carm_admin, §12): per element a unique external id (the sign-in identity), a full name and an optional email; validated like register_user, all or nothing, one audit event; returns the count';

REVOKE ALL ON FUNCTION carm.add_businesses(text[], text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_program_accounts(text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.register_users(text[], text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_businesses(text[], text[], text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_program_accounts(text[], text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.register_users(text[], text[], text[], text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.add_businesses(text[], text[], text[]),
  carm.add_program_accounts(text[], text[]),
  carm.register_users(text[], text[], text[]),
  carm.add_businesses(text[], text[], text[], text),
  carm.add_program_accounts(text[], text[], text),
  carm.register_users(text[], text[], text[], text) TO carm_admin;
