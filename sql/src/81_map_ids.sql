-- §8 protecting a table that already has rows: carm.map_ids() fills its
-- program and submitter columns from the identifiers the application kept
-- (a BN15, the sign-in identity of whoever submitted the row), in bulk,
-- with one UPDATE, so that carm.protect() then finds no hidden rows.
--
-- Split in two on purpose:
-- * carm_internal.map_keys() is the lookup: SECURITY DEFINER (it reads carm's
--   programs, users, employees and relationships, closed to everyone),
--   carm_admin only, and it touches no application table;
-- * carm.map_ids() is SECURITY INVOKER: the UPDATE, and any trigger, rule or
--   index expression of the application's table, run as the role that calls
--   it (the table's owner), never as the extension's owner.

-- For each (BN15, sign-in identity) pair: the program's id and the business
-- that submitted, by the rule of V5 for who acts as whom:
--   1. the user is an employee of the program's own business: that business
--      (a client's employee acts for the client);
--   2. else, of the user's businesses, the ones that have or had an active
--      relationship with the program's business (active, expired or ended:
--      the row may predate its end; a pending or rejected request does not
--      count): if exactly one, that one (a provider's employee acts for the
--      provider);
--   3. else, if the user is an employee of exactly one business, that one;
--   4. else NULL: unknown user, a user of no business, or several candidate
--      businesses (ambiguous = true).  Never a guess: the row stays hidden
--      and protect() says so until someone decides.
-- Pairs whose BN15 is NULL, malformed or unknown get a NULL program (and
-- submitter); a NULL identity gets a NULL submitter.
CREATE OR REPLACE FUNCTION carm_internal.map_keys(p_bn15s text[], p_external_ids text[])
RETURNS TABLE (bn15 text, external_id text, program_id bigint, submitter_id bigint, ambiguous boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.bn15, k.external_id, p.id, s.business_id, coalesce(s.ambiguous, false)
  FROM unnest(p_bn15s, p_external_ids) AS k(bn15, external_id)
  LEFT JOIN carm.program p ON p.bn15 = k.bn15
  LEFT JOIN LATERAL (
    SELECT CASE WHEN bool_or(e.business_id = p.business_id) THEN p.business_id
                WHEN count(*) FILTER (WHERE r.related) = 1
                  THEN min(e.business_id) FILTER (WHERE r.related)
                WHEN count(*) FILTER (WHERE r.related) = 0 AND count(*) = 1 THEN min(e.business_id)
           END AS business_id,
           NOT coalesce(bool_or(e.business_id = p.business_id), false)
             AND (count(*) FILTER (WHERE r.related) > 1
                  OR count(*) FILTER (WHERE r.related) = 0 AND count(*) > 1) AS ambiguous
    FROM carm.app_user u
    JOIN carm.employee e ON e.user_id = u.id
    CROSS JOIN LATERAL (
      SELECT EXISTS (SELECT FROM carm.relationship rel
                     WHERE rel.provider_id = e.business_id AND rel.client_id = p.business_id
                       AND rel.status IN ('active', 'expired', 'ended'))
    ) AS r(related)
    WHERE u.external_id = k.external_id AND p.id IS NOT NULL
  ) s ON true;
$$;
COMMENT ON FUNCTION carm_internal.map_keys(text[], text[]) IS
  'Internal (§8): program ids of BN15s and the submitting business of sign-in identities, for carm.map_ids() (carm_admin)';
REVOKE ALL ON FUNCTION carm_internal.map_keys(text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.map_keys(text[], text[]) TO carm_admin;

CREATE OR REPLACE FUNCTION carm.map_ids(tbl regclass, bn15_column name, program_column name,
                                        identity_column name DEFAULT NULL,
                                        submitter_column name DEFAULT NULL,
                                        OUT updated bigint, OUT ambiguous bigint,
                                        OUT hidden bigint, OUT null_program bigint,
                                        OUT unknown_program bigint, OUT null_submitter bigint)
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_col record;
  v_ident text;
  v_sub_set text := '';
  v_sub_need text := 'false';
  v_h record;
BEGIN
  IF NOT carm_internal.current_role_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
  IF tbl IS NULL OR bn15_column IS NULL OR program_column IS NULL THEN
    RAISE EXCEPTION '% must not be null',
      CASE WHEN tbl IS NULL THEN 'tbl' WHEN bn15_column IS NULL THEN 'bn15_column' ELSE 'program_column' END
      USING ERRCODE = '22004';
  END IF;
  IF (identity_column IS NULL) <> (submitter_column IS NULL) THEN
    RAISE EXCEPTION 'identity_column and submitter_column go together' USING ERRCODE = '22023',
      HINT = 'Give both to fill the submitter from the sign-in identity, or neither to fill the program only.';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = tbl AND c.relkind IN ('r', 'p')) THEN
    RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809';
  END IF;
  PERFORM carm_internal.require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  -- under its policies the owner sees no rows without an actor: the UPDATE
  -- would silently do nothing
  IF EXISTS (SELECT FROM pg_catalog.pg_policy pol
             WHERE pol.polrelid = tbl AND pol.polname = 'carm_select') THEN
    RAISE EXCEPTION '% is protected already', tbl USING ERRCODE = '55000',
      HINT = 'Map the ids before carm.protect(), or carm.unprotect() the table first.';
  END IF;

  FOR v_col IN
    SELECT x.colname, x.want, a.atttypid
    FROM (VALUES (bn15_column, 'text'), (program_column, 'bigint'),
                 (identity_column, 'text'), (submitter_column, 'bigint')) AS x(colname, want)
    LEFT JOIN pg_catalog.pg_attribute a
      ON a.attrelid = tbl AND a.attname = x.colname AND a.attnum > 0 AND NOT a.attisdropped
    WHERE x.colname IS NOT NULL
  LOOP
    IF v_col.atttypid IS NULL THEN
      RAISE EXCEPTION 'column "%" of % does not exist', left(v_col.colname, 32), tbl USING ERRCODE = '42703';
    END IF;
    IF v_col.want = 'bigint' AND v_col.atttypid <> 'bigint'::regtype
       OR v_col.want = 'text' AND v_col.atttypid NOT IN ('text'::regtype, 'character varying'::regtype,
                                                         'bpchar'::regtype) THEN
      RAISE EXCEPTION 'column "%" of % must be %, not %', left(v_col.colname, 32), tbl, v_col.want,
        format_type(v_col.atttypid, NULL) USING ERRCODE = '42804';
    END IF;
  END LOOP;
  IF program_column IN (bn15_column, identity_column, submitter_column)
     OR submitter_column IN (bn15_column, identity_column) THEN
    RAISE EXCEPTION 'the columns must differ' USING ERRCODE = '22023';
  END IF;

  -- one UPDATE: the distinct keys of the rows with something to fill,
  -- mapped at once, joined back; values already there are kept (a re-run
  -- after fixing ambiguous rows by hand does not undo the fix)
  v_ident := CASE WHEN identity_column IS NULL THEN 'NULL::text' ELSE format('t.%I::text', identity_column) END;
  IF submitter_column IS NOT NULL THEN
    v_sub_set := format(', %1$I = coalesce(t.%1$I, m.submitter_id)', submitter_column);
    v_sub_need := format('t.%I IS NULL AND m.submitter_id IS NOT NULL', submitter_column);
  END IF;
  EXECUTE format(
    'WITH keys AS (
       SELECT DISTINCT t.%1$I::text AS bn15, %2$s AS ident FROM %3$s t
       WHERE t.%1$I IS NOT NULL AND (t.%4$I IS NULL %5$s)),
     m AS (
       SELECT k.bn15, coalesce(k.external_id, '''') AS ident, k.program_id, k.submitter_id, k.ambiguous
       FROM carm_internal.map_keys((SELECT array_agg(bn15) FROM keys),
                                   (SELECT array_agg(ident) FROM keys)) k),
     upd AS (
       UPDATE %3$s t SET %4$I = coalesce(t.%4$I, m.program_id) %6$s
       FROM m
       WHERE t.%1$I::text = m.bn15 AND coalesce(%2$s, '''') = m.ident
         AND (t.%4$I IS NULL AND m.program_id IS NOT NULL OR %7$s)
       RETURNING 1)
     SELECT (SELECT count(*) FROM upd),
            (SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM %3$s t JOIN m
                     ON t.%1$I::text = m.bn15 AND coalesce(%2$s, '''') = m.ident AND m.ambiguous) a)',
    bn15_column, v_ident, tbl, program_column,
    CASE WHEN submitter_column IS NULL THEN '' ELSE format('OR t.%I IS NULL', submitter_column) END,
    v_sub_set, v_sub_need)
  INTO updated, ambiguous;

  -- what protect() would then say (the submitter is counted only when given)
  IF submitter_column IS NOT NULL THEN
    v_h := carm_internal.hidden_rows(tbl, program_column, submitter_column);
    hidden := v_h.hidden; null_submitter := v_h.null_submitter;
  ELSE
    v_h := carm_internal.hidden_rows(tbl, program_column, program_column);
    hidden := v_h.null_program + v_h.unknown_program; null_submitter := NULL;
  END IF;
  null_program := v_h.null_program;
  unknown_program := v_h.unknown_program;
END
$$;
COMMENT ON FUNCTION carm.map_ids(regclass, name, name, name, name) IS
  'Fill a table''s program column from its BN15 column and its submitter column from its sign-in identity column, in bulk, before carm.protect(); reports what would stay hidden (carm_admin, table owner)';
REVOKE ALL ON FUNCTION carm.map_ids(regclass, name, name, name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.map_ids(regclass, name, name, name, name) TO carm_admin;
