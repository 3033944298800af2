-- Event triggers: DDL on application tables that must not open or orphan a
-- protection (§8, §12).
--
--   carm_protect_partitions  ddl_command_end  a partition created or attached
--                            under a protected table, or a table inheriting
--                            from one, gets the policies in the same command
--                            (§8)
--   carm_forget_dropped      sql_drop         a dropped protected table leaves
--                            no registration behind
--   carm_drop_guard          ddl_command_start DROP EXTENSION carm_deleg (and
--                            DROP SCHEMA carm / carm_internal) is refused while
--                            tables are protected (§12; src/ddl_guard.c)
--
-- The functions run as the extension owner (SECURITY DEFINER, search_path
-- pinned): the DDL may be issued by a table owner who is no superuser, and
-- the policies must be installed whoever issued it.  They act only on
-- relations whose ancestor (or themselves) carm.protect() recorded.
-- CREATE EVENT TRIGGER has no OR REPLACE: each is created when missing, so
-- this file replays in the upgrade script.

-- One relation that became a partition or a child of a protected table:
-- protected under that table's root, with the root's columns and function;
-- an INHERITS child also gets its own write trigger (PostgreSQL clones
-- triggers to partitions only).  Nothing to do when it already is.
CREATE OR REPLACE FUNCTION carm_internal.protect_descendant(p_rel regclass, p_kind "char",
                                                           p_root carm.protected_table,
                                                           p_event text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT FROM carm.protected_table x WHERE x.relid = p_rel AND x.root = p_root.root) THEN
    RETURN;
  END IF;
  IF p_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% cannot become part of protected table %', p_rel, p_root.root
      USING ERRCODE = '42809',
            DETAIL = 'Only tables can carry the row-level-security policies of carm_deleg.';
  END IF;
  IF EXISTS (SELECT FROM carm.protected_table x WHERE x.relid = p_rel) THEN
    PERFORM carm_internal.drop_protection(p_rel);      -- its earlier, own protection
  END IF;
  PERFORM carm_internal.protect_relation(p_rel, p_root.root, p_root.program_column,
                                         p_root.submitter_column, p_root.function);
  IF NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = p_rel)
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger tg
                     WHERE tg.tgrelid = p_rel AND tg.tgname = 'carm_check_write') THEN
    EXECUTE format('CREATE TRIGGER carm_check_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION carm_internal.check_write()', p_rel);
  END IF;
  PERFORM carm_internal.audit(p_event, NULL, NULL, NULL, NULL, NULL,
                              jsonb_build_object('table', p_rel::text, 'root', p_root.root::text,
                                                 'function', p_root.function));
END
$$;
COMMENT ON FUNCTION carm_internal.protect_descendant(regclass, "char", carm.protected_table, text) IS
  'Internal (§8): protects a new partition or INHERITS child under its protected ancestor''s root';

-- §8: protects at once every partition created (CREATE TABLE ... PARTITION
-- OF) or attached (ALTER TABLE ... ATTACH PARTITION) under a protected table,
-- at any depth, and every table created with INHERITS or altered to INHERIT
-- a protected table, with the protected root's policies — in the same
-- command, so no transaction ever sees such a table without them.  A
-- relation that was protected on its own before is re-protected under the
-- new root.  A foreign table cannot carry policies: attaching one under a
-- protected table is refused.
CREATE OR REPLACE FUNCTION carm_internal.protect_new_partitions() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
  p carm.protected_table;
BEGIN
  -- partitions, parents first
  FOR r IN
    SELECT DISTINCT t.relid, c.relkind,
           (SELECT count(*) FROM pg_catalog.pg_partition_ancestors(t.relid)) AS depth
    FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(cmd.objid) t
    JOIN pg_catalog.pg_class c ON c.oid = t.relid
    WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND cmd.object_type = 'table'
      AND c.relispartition
    ORDER BY depth, t.relid
  LOOP
    -- the nearest protected ancestor, if any
    SELECT pt.* INTO p
    FROM pg_catalog.pg_partition_ancestors(r.relid) WITH ORDINALITY AS a(relid, n)
    JOIN carm.protected_table pt ON pt.relid = a.relid
    WHERE a.relid <> r.relid
    ORDER BY a.n
    LIMIT 1;
    CONTINUE WHEN NOT FOUND;
    PERFORM carm_internal.protect_descendant(r.relid, r.relkind, p, 'partition_protected');
  END LOOP;

  -- INHERITS children
  FOR r IN
    SELECT DISTINCT cmd.objid AS relid, c.relkind
    FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
    JOIN pg_catalog.pg_class c ON c.oid = cmd.objid
    WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND cmd.object_type = 'table' AND NOT c.relispartition
      AND EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = cmd.objid)
  LOOP
    WITH RECURSIVE anc(relid, n) AS (
      SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = r.relid
      UNION
      SELECT i.inhparent, a.n + 1 FROM anc a JOIN pg_catalog.pg_inherits i ON i.inhrelid = a.relid
    )
    SELECT pt.* INTO p FROM anc JOIN carm.protected_table pt ON pt.relid = anc.relid
    ORDER BY anc.n LIMIT 1;
    CONTINUE WHEN NOT FOUND;
    PERFORM carm_internal.protect_descendant(r.relid, r.relkind, p, 'child_table_protected');
  END LOOP;
END
$$;
COMMENT ON FUNCTION carm_internal.protect_new_partitions() IS
  'Internal (§8): event trigger protecting partitions created or attached under a protected table, and tables inheriting from one';

-- A dropped relation's registration goes with it, so that protected_tables()
-- lists only live tables and protect() of a new table of the same name
-- starts clean.  A partition detached earlier from a root that is dropped now
-- keeps its policies (closed) and becomes its own root, so that unprotect()
-- still works on it.
CREATE OR REPLACE FUNCTION carm_internal.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    DELETE FROM carm.protected_table t
    USING pg_catalog.pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
      AND t.relid::oid = d.objid
    RETURNING t.relid::oid AS relid, t.root::oid AS root, d.object_identity
  LOOP
    IF r.relid = r.root THEN
      PERFORM carm_internal.audit('protected_table_dropped', NULL, NULL, NULL, NULL, NULL,
                                  jsonb_build_object('table', r.object_identity));
    END IF;
  END LOOP;
  UPDATE carm.protected_table t SET root = t.relid
  WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.root::oid);
END
$$;
COMMENT ON FUNCTION carm_internal.forget_dropped_tables() IS
  'Internal (§8): event trigger removing the registration of dropped protected tables';

-- §12: DROP EXTENSION carm_deleg (with or without CASCADE) and DROP SCHEMA
-- carm / carm_internal CASCADE are refused while tables are protected: a
-- cascade would leave them with row-level security forced and no policy, and
-- delete the audit trail.  Written in C: it reads the statement itself.
CREATE OR REPLACE FUNCTION carm_internal.ddl_guard() RETURNS event_trigger
LANGUAGE c SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'carm_ddl_guard';
COMMENT ON FUNCTION carm_internal.ddl_guard() IS
  'Internal (§12): event trigger refusing to drop the extension or its schemas while tables are protected';

DO $evt$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'carm_protect_partitions') THEN
    CREATE EVENT TRIGGER carm_protect_partitions ON ddl_command_end
      WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
      EXECUTE FUNCTION carm_internal.protect_new_partitions();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'carm_forget_dropped') THEN
    CREATE EVENT TRIGGER carm_forget_dropped ON sql_drop
      EXECUTE FUNCTION carm_internal.forget_dropped_tables();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'carm_drop_guard') THEN
    CREATE EVENT TRIGGER carm_drop_guard ON ddl_command_start
      WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
      EXECUTE FUNCTION carm_internal.ddl_guard();
  END IF;
END
$evt$;
COMMENT ON EVENT TRIGGER carm_protect_partitions IS
  'carm_deleg (§8): partitions created or attached under a protected table are protected at once';
COMMENT ON EVENT TRIGGER carm_forget_dropped IS
  'carm_deleg: a dropped protected table leaves no registration behind';
COMMENT ON EVENT TRIGGER carm_drop_guard IS
  'carm_deleg (§12): refuses DROP EXTENSION carm_deleg while tables are protected';
