-- Closing statements: table privileges, dumps.

-- Application roles reach state only through the API (§2).
REVOKE ALL ON ALL TABLES IN SCHEMA carm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA carm FROM PUBLIC;

-- Internal functions are not part of the API.
DO $internal$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'carm_internal'::regnamespace
      AND p.proname NOT IN ('row_visible', 'row_writable', 'visible_programs',
                            'bn9_is_valid', 'bn15_is_valid',
                            -- §2: reports open to every role, without admin powers
                            'current_role_is_admin', 'audit_events_actor',
                            'who_has_access_actor', 'explain_access_actor',
                            -- trigger functions, which cannot be called
                            -- directly: the event triggers run as whoever
                            -- issues the DDL, and PostgreSQL checks EXECUTE on
                            -- the write trigger's function when it clones it
                            -- to a partition created by the table's owner
                            'protect_new_partitions', 'forget_dropped_tables', 'ddl_guard',
                            'check_write')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
  -- explicitly, so that a 1.0 database, where 1.0 revoked it, ends the same
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'carm_internal'::regnamespace
      AND p.proname IN ('protect_new_partitions', 'forget_dropped_tables', 'ddl_guard', 'check_write')
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
  END LOOP;
END
$internal$;

-- pg_dump keeps the delegation state with the extension: every state table
-- and every sequence (the identity sequences of the tables), so that a
-- restored database goes on numbering where the dumped one stopped; without
-- the sequences a restore starts them at 1 again and the next insert fails
-- with 23505.
DO $dump$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_catalog.pg_class c
           WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind IN ('r', 'S')
           ORDER BY c.relkind, c.relname
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(format('carm.%I', t), '');
  END LOOP;
END
$dump$;
