-- §8 carm.protect(): row-level security on an application's own tables.
--
-- The policies call the C checks with the table's function as a constant and
-- contain no subquery (so the same policy also works on Citus distributed
-- tables); the planner support of carm._row_visible turns the check into an
-- index condition on the program column (src/planner.c).

-- 42501 unless the calling role (not the definer) owns the table, as ALTER
-- TABLE, CREATE POLICY and CREATE TRIGGER would require of it.
CREATE FUNCTION carm._require_table_owner(p_tbl regclass, p_owner oid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_owner IS NULL OR NOT pg_has_role(carm._caller_role(), p_owner, 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501',
      HINT = 'carm.protect() and carm.unprotect() act for the table''s owner.';
  END IF;
END
$$;

CREATE FUNCTION carm.protect(tbl regclass, program_column name, submitter_column name,
                             function text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_nsp name;
  v_kind "char";
  v_owner oid;
  v_col record;
  v_fn text;
  v_visible text;
  v_writable text;
BEGIN
  PERFORM carm._require_admin();
  PERFORM carm._not_null(tbl, 'tbl');
  PERFORM carm._not_null(program_column, 'program_column');
  PERFORM carm._not_null(submitter_column, 'submitter_column');
  v_fn := carm._not_blank(function, 'function', 64);
  IF v_fn NOT IN ('business_profile','program_profile','employee_access','relationships',
                  'rulings','payments','statements','notifications','banking') THEN
    RAISE EXCEPTION 'unknown function "%"', v_fn USING ERRCODE = '22023',
      HINT = 'Functions are business_profile, program_profile, employee_access, relationships, rulings, payments, statements, notifications and banking.';
  END IF;

  SELECT n.nspname, c.relkind, c.relowner INTO v_nsp, v_kind, v_owner
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl;
  IF v_nsp IN ('pg_catalog', 'information_schema', 'pg_toast') OR tbl::oid < 16384 THEN
    RAISE EXCEPTION 'cannot protect system catalog %', tbl USING ERRCODE = '42501';
  END IF;
  -- This function runs as the extension owner: without this check any
  -- carm_admin could add policies and triggers to, and with unprotect()
  -- switch off row-level security of, any table of the database.
  PERFORM carm._require_table_owner(tbl, v_owner);
  IF v_nsp = 'carm' THEN
    RAISE EXCEPTION 'cannot protect % in schema carm', tbl USING ERRCODE = '42501',
      HINT = 'Protect the application''s own tables; the extension''s tables are closed already.';
  END IF;
  IF v_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809';
  END IF;
  IF program_column = submitter_column THEN
    RAISE EXCEPTION 'program and submitter columns must differ' USING ERRCODE = '22023';
  END IF;

  FOR v_col IN
    SELECT x.colname, a.atttypid
    FROM unnest(ARRAY[program_column, submitter_column]) AS x(colname)
    LEFT JOIN pg_catalog.pg_attribute a
      ON a.attrelid = tbl AND a.attname = x.colname AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF v_col.atttypid IS NULL THEN
      RAISE EXCEPTION 'column "%" of % does not exist', v_col.colname, tbl USING ERRCODE = '42703';
    END IF;
    IF v_col.atttypid <> 'bigint'::regtype THEN
      RAISE EXCEPTION 'column "%" of % must be bigint, not %', v_col.colname, tbl,
        format_type(v_col.atttypid, NULL) USING ERRCODE = '42804',
        HINT = 'The program column holds carm.program_id(bn15), the submitter column carm.business_id(bn9).';
    END IF;
  END LOOP;

  v_visible := format('carm._row_visible(%I, %I, %L)', program_column, submitter_column, v_fn);
  v_writable := format('carm._row_writable(%I, %I, %L)', program_column, submitter_column, v_fn);

  -- idempotent: drop what an earlier call installed, then install
  PERFORM carm._drop_protection(tbl);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('CREATE POLICY carm_select ON %s FOR SELECT USING (%s)', tbl, v_visible);
  EXECUTE format('CREATE POLICY carm_insert ON %s FOR INSERT WITH CHECK (%s)', tbl, v_writable);
  EXECUTE format('CREATE POLICY carm_update ON %s FOR UPDATE USING (%s) WITH CHECK (%s)',
                 tbl, v_writable, v_writable);
  EXECUTE format('CREATE POLICY carm_delete ON %s FOR DELETE USING (%s)', tbl, v_writable);
  EXECUTE format('CREATE TRIGGER carm_fill_submitter BEFORE INSERT ON %s FOR EACH ROW '
                 'EXECUTE FUNCTION carm._fill_submitter(%L, %L, %L)',
                 tbl, program_column, submitter_column, v_fn);

  INSERT INTO carm.protected_table (relid, program_column, submitter_column, function)
  VALUES (tbl, program_column, submitter_column, v_fn);

  IF NOT EXISTS (
    SELECT FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tbl AND a.attname = program_column) THEN
    RAISE NOTICE '% has no btree index on %: every query will scan the whole table', tbl, program_column
      USING HINT = format('CREATE INDEX ON %s (%I)', tbl, program_column);
  END IF;
  PERFORM carm._audit('table_protected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text, 'program_column', program_column,
                                         'submitter_column', submitter_column, 'function', v_fn));
END
$$;
COMMENT ON FUNCTION carm.protect(regclass, name, name, text) IS
  'Enable and force row-level security on an application table with policies implementing V1-V5 (carm_admin)';

-- Removes what protect() installed (policies, trigger, record); leaves RLS flags.
CREATE FUNCTION carm._drop_protection(tbl regclass) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  p name;
BEGIN
  FOR p IN SELECT pol.polname FROM pg_catalog.pg_policy pol
           WHERE pol.polrelid = tbl
             AND pol.polname IN ('carm_select','carm_insert','carm_update','carm_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', p, tbl);
  END LOOP;
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger tg
             WHERE tg.tgrelid = tbl AND tg.tgname = 'carm_fill_submitter') THEN
    EXECUTE format('DROP TRIGGER carm_fill_submitter ON %s', tbl);
  END IF;
  DELETE FROM carm.protected_table WHERE relid = tbl;
  RETURN FOUND;
END
$$;

CREATE FUNCTION carm.unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm._require_admin();
  PERFORM carm._not_null(tbl, 'tbl');
  PERFORM carm._require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  IF NOT EXISTS (SELECT FROM carm.protected_table t WHERE t.relid = tbl) THEN
    RAISE EXCEPTION '% is not protected by carm_deleg', tbl USING ERRCODE = '55000';
  END IF;
  PERFORM carm._drop_protection(tbl);
  EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tbl);
  PERFORM carm._audit('table_unprotected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text));
END
$$;
COMMENT ON FUNCTION carm.unprotect(regclass) IS
  'Undo carm.protect(): drop its policies and trigger, disable row-level security (carm_admin)';

CREATE FUNCTION carm.protected_tables()
RETURNS TABLE (tbl regclass, program_column name, submitter_column name, function text,
               protected_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT relid, program_column, submitter_column, function, protected_at
  FROM carm.protected_table ORDER BY relid::text;
$$;
COMMENT ON FUNCTION carm.protected_tables() IS 'Tables protected with carm.protect() (carm_admin)';

REVOKE ALL ON FUNCTION carm.protect(regclass, name, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.protected_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protected_tables() TO carm_admin;
REVOKE ALL ON FUNCTION carm.unprotect(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protect(regclass, name, name, text),
  carm.unprotect(regclass) TO carm_admin;
