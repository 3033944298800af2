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
                            'bn9_is_valid', 'bn15_is_valid')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$internal$;

-- pg_dump keeps the delegation state with the extension.
DO $dump$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_catalog.pg_class c
           WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind = 'r'
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(format('carm.%I', t), '');
  END LOOP;
END
$dump$;
