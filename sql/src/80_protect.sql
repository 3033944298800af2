-- §8 carm.protect(): row-level security on an application's own tables.
--
-- The policies call the C checks with the table's function as a constant and
-- contain no subquery (so the same policy also works on Citus distributed
-- tables); the planner support of carm_internal.row_visible turns the check into an
-- index condition on the program column (src/planner.c).

-- 42501 unless the role the code runs as owns the table, as ALTER TABLE,
-- CREATE POLICY and CREATE TRIGGER would require of it (§2).  The SECURITY
-- INVOKER API functions carm.protect() and carm.unprotect() call it, where
-- current_user is the role their caller's code runs as; the SECURITY DEFINER
-- functions that do the work call it again, where current_user is the
-- extension's owner and the outer role must own the table too: a carm_admin
-- member who calls them directly, skipping the API, acts for no one else.
CREATE OR REPLACE FUNCTION carm_internal.require_table_owner(p_tbl regclass, p_owner oid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_owner IS NULL OR NOT pg_has_role(current_user, p_owner, 'USAGE')
     OR NOT pg_has_role(carm_internal.caller_role(), p_owner, 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501',
      HINT = 'carm.protect(), carm.unprotect() and carm.map_ids() act for the table''s owner.';
  END IF;
END
$$;

-- The API: SECURITY INVOKER, so that carm_admin and the table's owner are
-- judged on the role the calling code runs as (§2); the work is done by
-- carm_internal.protect_table(), granted to carm_admin only.
-- Records one relation under its protected root, with the row-level-security
-- flags it had before its first protection (unprotect() restores them).
CREATE OR REPLACE FUNCTION carm_internal.record_protection(p_rel regclass, p_root regclass,
                                                          p_program name, p_submitter name, p_fn text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO carm.protected_table (relid, root, program_column, submitter_column, function,
                                    had_rls, had_force_rls)
  SELECT p_rel, p_root, p_program, p_submitter, p_fn, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_catalog.pg_class c WHERE c.oid = p_rel
  ON CONFLICT (relid) DO UPDATE
    SET root = excluded.root, program_column = excluded.program_column,
        submitter_column = excluded.submitter_column, function = excluded.function,
        protected_at = now();
$$;
COMMENT ON FUNCTION carm_internal.record_protection(regclass, regclass, name, name, text) IS
  'Internal (§8): records a relation under its protected root with its earlier row-level-security flags';

-- The per-relation part of protection, shared by carm.protect() and by the
-- event trigger that protects partitions created or attached later (§8):
-- records the relation under its root with the row-level-security flags it
-- had before its first protection (for unprotect()), enables and forces
-- row-level security and installs the four policies, replacing any it had.
-- Idempotent.  The caller has checked ownership.
CREATE OR REPLACE FUNCTION carm_internal.protect_relation(p_rel regclass, p_root regclass,
                                                         p_program name, p_submitter name, p_fn text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_visible text := format('carm_internal.row_visible(%I, %I, %L)', p_program, p_submitter, p_fn);
  v_writable text := format('carm_internal.row_writable(%I, %I, %L)', p_program, p_submitter, p_fn);
  v_policy name;
BEGIN
  -- recorded first: the ALTER TABLEs below fire the partition event trigger,
  -- which then finds the relation protected already
  PERFORM carm_internal.record_protection(p_rel, p_root, p_program, p_submitter, p_fn);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_rel);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_rel);
  -- (the ALTER TABLE of a partitioned table may have protected its
  -- partitions already, through the event trigger)
  FOR v_policy IN SELECT pol.polname FROM pg_catalog.pg_policy pol
                  WHERE pol.polrelid = p_rel
                    AND pol.polname IN ('carm_select', 'carm_insert', 'carm_update', 'carm_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', v_policy, p_rel);
  END LOOP;
  EXECUTE format('CREATE POLICY carm_select ON %s FOR SELECT USING (%s)', p_rel, v_visible);
  EXECUTE format('CREATE POLICY carm_insert ON %s FOR INSERT WITH CHECK (%s)', p_rel, v_writable);
  EXECUTE format('CREATE POLICY carm_update ON %s FOR UPDATE USING (%s) WITH CHECK (%s)',
                 p_rel, v_writable, v_writable);
  EXECUTE format('CREATE POLICY carm_delete ON %s FOR DELETE USING (%s)', p_rel, v_writable);
END
$$;
COMMENT ON FUNCTION carm_internal.protect_relation(regclass, regclass, name, name, text) IS
  'Internal (§8): records one relation under its protected root, forces row-level security on it and installs the policies';

-- The relation and every relation that inherits from it, partitions and
-- INHERITS children alike, parents first (pg_inherits holds both).
CREATE OR REPLACE FUNCTION carm_internal.inheritance_tree(p_rel regclass) RETURNS regclass[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE tree(relid, level) AS (
    SELECT p_rel::oid, 0
    UNION
    SELECT i.inhrelid, t.level + 1 FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid
  )
  SELECT array_agg(relid::regclass ORDER BY level, relid::regclass::text) FROM tree;
$$;
COMMENT ON FUNCTION carm_internal.inheritance_tree(regclass) IS
  'Internal (§8): a table and every table that inherits from it, partitions and INHERITS children, parents first';
-- carm.protect() runs as its caller and checks the owner of each relation
REVOKE ALL ON FUNCTION carm_internal.inheritance_tree(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.inheritance_tree(regclass) TO carm_admin;

-- The rows of a table that no actor would see once it is protected (§8:
-- row_visible() is NULL-safe, so a NULL program or submitter hides a row
-- from everyone, and a program id carm does not know has no grant): one
-- scan of the table and its children.  SECURITY DEFINER to read carm's
-- programs; the caller must own the table (as for protect()), and the scan
-- runs no code of the table's (superusers bypass its policies; the columns
-- are checked bigint by the callers).
CREATE OR REPLACE FUNCTION carm_internal.hidden_rows(p_tbl regclass, p_program name, p_submitter name,
                                                     OUT hidden bigint, OUT null_program bigint,
                                                     OUT unknown_program bigint, OUT null_submitter bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.require_table_owner(p_tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = p_tbl));
  EXECUTE format('SELECT count(*) FILTER (WHERE t.p IS NULL OR t.s IS NULL OR pr.id IS NULL),
                         count(*) FILTER (WHERE t.p IS NULL),
                         count(*) FILTER (WHERE t.p IS NOT NULL AND pr.id IS NULL),
                         count(*) FILTER (WHERE t.s IS NULL)
                  FROM (SELECT %I AS p, %I AS s FROM %s) t
                  LEFT JOIN carm.program pr ON pr.id = t.p', p_program, p_submitter, p_tbl)
    INTO hidden, null_program, unknown_program, null_submitter;
END
$$;
COMMENT ON FUNCTION carm_internal.hidden_rows(regclass, name, name) IS
  'Internal (§8): how many rows of a table no actor would see once protected (NULL or unknown program, NULL submitter)';
REVOKE ALL ON FUNCTION carm_internal.hidden_rows(regclass, name, name) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.hidden_rows(regclass, name, name) TO carm_admin;

-- Two overloads rather than an argument default, so that the 1.0 and 1.1
-- signature carm.protect(regclass, name, name, text) keeps working where a
-- script names it (GRANT, ALTER FUNCTION, COMMENT), not only in calls.
CREATE OR REPLACE FUNCTION carm.protect(tbl regclass, program_column name, submitter_column name,
                             function text)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT carm_internal.current_role_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
  PERFORM carm.protect(tbl, program_column, submitter_column, function, false);
END
$$;

CREATE OR REPLACE FUNCTION carm.protect(tbl regclass, program_column name, submitter_column name,
                             function text, allow_hidden_rows boolean)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass;
BEGIN
  IF NOT carm_internal.current_role_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
  END IF;
  FOREACH v_rel IN ARRAY carm_internal.inheritance_tree(tbl) LOOP
    PERFORM carm_internal.require_table_owner(v_rel, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = v_rel));
  END LOOP;
  PERFORM carm_internal.protect_table(tbl, program_column, submitter_column, function, allow_hidden_rows);
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.protect_table(tbl regclass, program_column name, submitter_column name,
                             function text, allow_hidden_rows boolean)
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
  v_rels regclass[];
  v_rel regclass;
  v_hidden record;
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.not_null(tbl, 'tbl');
  PERFORM carm_internal.not_null(program_column, 'program_column');
  PERFORM carm_internal.not_null(submitter_column, 'submitter_column');
  PERFORM carm_internal.not_null(allow_hidden_rows, 'allow_hidden_rows');
  v_fn := carm_internal.function_name(carm_internal.not_blank(function, 'function', 64));

  SELECT n.nspname, c.relkind, c.relowner INTO v_nsp, v_kind, v_owner
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl;
  IF v_nsp IN ('pg_catalog', 'information_schema', 'pg_toast') OR tbl::oid < 16384 THEN
    RAISE EXCEPTION 'cannot protect system catalog %', tbl USING ERRCODE = '42501';
  END IF;
  -- This function runs as the extension owner: without this check any
  -- carm_admin could add policies and triggers to, and with unprotect()
  -- switch off row-level security of, any table of the database.
  PERFORM carm_internal.require_table_owner(tbl, v_owner);
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
      RAISE EXCEPTION 'column "%" of % does not exist', left(v_col.colname, 32), tbl USING ERRCODE = '42703';
    END IF;
    IF v_col.atttypid <> 'bigint'::regtype THEN
      RAISE EXCEPTION 'column "%" of % must be bigint, not %', left(v_col.colname, 32), tbl,
        format_type(v_col.atttypid, NULL) USING ERRCODE = '42804',
        HINT = 'The program column holds carm.program_id(bn15), the submitter column carm.business_id(bn9).';
    END IF;
  END LOOP;

  -- Existing rows that no actor will see once the policies are in place
  -- (row_visible() is NULL-safe, §8: a NULL program or submitter, or a
  -- program carm does not know, is visible to no one): refused before
  -- anything is changed, unless the caller accepts them (55000: the
  -- table's data is not ready yet; the same call succeeds once the
  -- columns are filled, e.g. with carm.map_ids()).
  v_hidden := carm_internal.hidden_rows(tbl, program_column, submitter_column);
  IF v_hidden.hidden > 0 AND NOT allow_hidden_rows THEN
    RAISE EXCEPTION '% existing rows of % would be visible to no one', v_hidden.hidden, tbl
      USING ERRCODE = '55000',
      DETAIL = format('%s rows have a NULL %I, %s a %I that is not a carm program account, %s a NULL %I.',
                      v_hidden.null_program, program_column, v_hidden.unknown_program, program_column,
                      v_hidden.null_submitter, submitter_column),
      HINT = 'Fill the columns first (carm.map_ids() maps BN15s and sign-in identities to carm''s ids), '
             'or pass allow_hidden_rows => true to protect the table anyway: only superusers and '
             'BYPASSRLS roles will see those rows.';
  ELSIF v_hidden.hidden > 0 THEN
    RAISE WARNING '% existing rows of % are visible to no one', v_hidden.hidden, tbl
      USING DETAIL = format('%s rows have a NULL %I, %s a %I that is not a carm program account, %s a NULL %I.',
                            v_hidden.null_program, program_column, v_hidden.unknown_program, program_column,
                            v_hidden.null_submitter, submitter_column);
  END IF;

  -- A partitioned table's policies do not apply to queries that name a
  -- partition: every partition gets them too (partitions created or attached
  -- later get them from the event trigger carm_protect_partitions, §8).  The row trigger is created on
  -- the table only: PostgreSQL clones it to every partition, present and
  -- future.
  -- A table that INHERITS from it is covered the same way (reading the
  -- child directly must not skip the policies), except that its trigger is
  -- not cloned: each such child gets its own.
  v_rels := carm_internal.inheritance_tree(tbl);

  -- idempotent: drop what an earlier call installed, then install
  PERFORM carm_internal.drop_protection(tbl);
  -- every relation is checked and recorded before any is altered: the
  -- partition event trigger, which the ALTER TABLEs fire, then has nothing
  -- left to do
  FOREACH v_rel IN ARRAY v_rels LOOP
    PERFORM carm_internal.require_table_owner(v_rel, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = v_rel));
    PERFORM carm_internal.record_protection(v_rel, tbl, program_column, submitter_column, v_fn);
  END LOOP;
  FOREACH v_rel IN ARRAY v_rels LOOP
    PERFORM carm_internal.protect_relation(v_rel, tbl, program_column, submitter_column, v_fn);
  END LOOP;
  -- V5: fills the submitter and refuses a write with its reason (§8); it
  -- reads the columns from each relation's own carm_insert policy, so
  -- renames keep it working
  FOREACH v_rel IN ARRAY v_rels LOOP
    IF v_rel = tbl OR NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = v_rel) THEN
      EXECUTE format('CREATE TRIGGER carm_check_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                     'EXECUTE FUNCTION carm_internal.check_write()', v_rel);
    END IF;
  END LOOP;

  IF NOT EXISTS (
    SELECT FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tbl AND a.attname = program_column) THEN
    RAISE NOTICE '% has no btree index on %: every query will scan the whole table', tbl, program_column
      USING HINT = format('CREATE INDEX ON %s (%I)', tbl, program_column);
  END IF;
  PERFORM carm_internal.audit('table_protected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text, 'program_column', program_column,
                                         'submitter_column', submitter_column, 'function', v_fn)
                      -- rows protected hidden, on the record (only when there are some)
                      || CASE WHEN v_hidden.hidden > 0
                              THEN jsonb_build_object('hidden_rows', v_hidden.hidden)
                              ELSE '{}' END);
END
$$;
COMMENT ON FUNCTION carm_internal.protect_table(regclass, name, name, text, boolean) IS
  'Internal: the work of carm.protect(); EXECUTE for carm_admin only';
COMMENT ON FUNCTION carm.protect(regclass, name, name, text) IS
  'carm.protect(tbl, program_column, submitter_column, function, allow_hidden_rows => false) (carm_admin)';
COMMENT ON FUNCTION carm.protect(regclass, name, name, text, boolean) IS
  'Enable and force row-level security on an application table with policies implementing V1-V5; refuses (55000) a table with rows no one would see unless allow_hidden_rows (carm_admin)';

-- Removes the policies and the trigger protect() installed on a table and on
-- the partitions recorded with it; leaves the records and the RLS flags.
CREATE OR REPLACE FUNCTION carm_internal.drop_protection(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT pol.polname, pol.polrelid::regclass AS rel
           FROM pg_catalog.pg_policy pol
           WHERE (pol.polrelid = tbl
                  OR pol.polrelid IN (SELECT t.relid FROM carm.protected_table t WHERE t.root = tbl))
             AND pol.polname IN ('carm_select','carm_insert','carm_update','carm_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', r.polname, r.rel);
  END LOOP;
  -- carm_fill_submitter: the 1.0 trigger
  FOR r IN SELECT tg.tgname, tg.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger tg
           WHERE (tg.tgrelid = tbl
                  OR tg.tgrelid IN (SELECT t.relid FROM carm.protected_table t WHERE t.root = tbl))
             AND tg.tgname IN ('carm_check_write', 'carm_fill_submitter')
             AND tg.tgparentid = 0 LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION carm.unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT carm_internal.current_role_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
  END IF;
  PERFORM carm_internal.require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  PERFORM carm_internal.unprotect_table(tbl);
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.unprotect_table(tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.protected_table;
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.not_null(tbl, 'tbl');
  PERFORM carm_internal.require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  IF NOT EXISTS (SELECT FROM carm.protected_table t WHERE t.relid = tbl AND t.root = tbl) THEN
    RAISE EXCEPTION '% is not protected by carm_deleg', tbl USING ERRCODE = '55000';
  END IF;
  PERFORM carm_internal.drop_protection(tbl);
  -- give every relation back the row-level-security flags it had before
  FOR r IN SELECT * FROM carm.protected_table t WHERE t.root = tbl LOOP
    IF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = r.relid) THEN
      IF NOT r.had_force_rls THEN
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', r.relid);
      END IF;
      IF NOT r.had_rls THEN
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', r.relid);
      END IF;
    END IF;
  END LOOP;
  DELETE FROM carm.protected_table t WHERE t.root = tbl;
  PERFORM carm_internal.audit('table_unprotected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text));
END
$$;
COMMENT ON FUNCTION carm_internal.unprotect_table(regclass) IS
  'Internal: the work of carm.unprotect(); EXECUTE for carm_admin only';
COMMENT ON FUNCTION carm.unprotect(regclass) IS
  'Undo carm.protect(): drop its policies and trigger, give the table (and its partitions) back the row-level-security flags they had (carm_admin)';

CREATE OR REPLACE FUNCTION carm.protected_tables()
RETURNS TABLE (tbl regclass, program_column name, submitter_column name, function text,
               protected_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: never in a security-restricted operation
  RETURN QUERY
    SELECT t.relid, t.program_column, t.submitter_column, t.function, t.protected_at
    FROM carm.protected_table t WHERE t.relid = t.root ORDER BY t.relid::text;
END
$$;
COMMENT ON FUNCTION carm.protected_tables() IS 'Tables protected with carm.protect() (carm_admin)';

REVOKE ALL ON FUNCTION carm.protect(regclass, name, name, text),
  carm.protect(regclass, name, name, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.protected_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protected_tables() TO carm_admin;
REVOKE ALL ON FUNCTION carm.unprotect(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protect(regclass, name, name, text),
  carm.protect(regclass, name, name, text, boolean), carm.unprotect(regclass) TO carm_admin;
REVOKE ALL ON FUNCTION carm_internal.protect_table(regclass, name, name, text, boolean),
  carm_internal.unprotect_table(regclass), carm_internal.require_table_owner(regclass, oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.protect_table(regclass, name, name, text, boolean),
  carm_internal.unprotect_table(regclass), carm_internal.require_table_owner(regclass, oid),
  carm_internal.caller_role() TO carm_admin;

-- 1.0 protected tables had a BEFORE INSERT trigger carm_fill_submitter
-- that named the columns; 1.1 replaces it with carm_check_write (§8: renames,
-- write refusals with a reason).  A no-op on a fresh install.
DO $check_write$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT t.relid FROM carm.protected_table t
           JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = t.relid AND tg.tgname = 'carm_fill_submitter'
                                         AND tg.tgparentid = 0
           WHERE t.relid = t.root LOOP
    EXECUTE format('DROP TRIGGER carm_fill_submitter ON %s', r.relid);
    EXECUTE format('CREATE TRIGGER carm_check_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION carm_internal.check_write()', r.relid);
  END LOOP;
END
$check_write$;
DROP FUNCTION IF EXISTS carm_internal.fill_submitter();
