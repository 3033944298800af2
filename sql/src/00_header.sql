-- carm_deleg install script, assembled by the Makefile from sql/src/NN_*.sql.
-- Each source file holds one concern; this one creates the extension's roles.
\echo Use "CREATE EXTENSION carm_deleg" to load this file. \quit

-- The two NOLOGIN roles of §2.  Roles are cluster-wide and outlive the
-- extension, so they are created only when missing and never dropped by it.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'carm_gateway') THEN
    CREATE ROLE carm_gateway NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'carm_admin') THEN
    CREATE ROLE carm_admin NOLOGIN;
  END IF;
END
$roles$;

-- The schemas hold superuser-owned SECURITY DEFINER functions: they must be
-- ours.  The extension is installed in pg_catalog (carm_deleg.control) and
-- creates both schemas here, as its members, so that DROP EXTENSION leaves
-- neither behind (§12).  An existing schema is refused (another role could
-- have put objects in it that would replace what we install), except an
-- empty schema carm of the installing role: what DROP EXTENSION left of a
-- 1.0 or 1.1 install, which CREATE EXTENSION had created in schema carm.
-- Schema carm holds the API and the state tables; carm_internal the
-- functions the API is built from, so that \df carm.* reads like the
-- reference.
DO $schema$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm') THEN
    IF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm')
       IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                  WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass
                    AND d.refobjid = 'carm'::regnamespace) THEN
      RAISE EXCEPTION 'schema carm exists and does not belong to carm_deleg'
        USING ERRCODE = '42501',
              HINT = 'Drop the schema carm before CREATE EXTENSION.';
    END IF;
    DROP SCHEMA carm;
  END IF;
  CREATE SCHEMA carm;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm_internal') THEN
    CREATE SCHEMA carm_internal;
  ELSIF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm_internal')
     IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
     OR NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                    JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'carm_deleg'
                    WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
                      AND d.objid = 'carm_internal'::regnamespace AND d.deptype = 'e') THEN
    RAISE EXCEPTION 'schema carm_internal exists and does not belong to carm_deleg'
      USING ERRCODE = '42501',
            HINT = 'Drop the schema carm_internal before CREATE EXTENSION.';
  END IF;
END
$schema$;
COMMENT ON SCHEMA carm IS
  'carm_deleg: delegation of authority for CARM customs accounts (API and state tables)';
COMMENT ON SCHEMA carm_internal IS
  'carm_deleg internals: helpers of the API, the resolver and the row checks; not an API';

-- Functions resolve through the schemas; tables stay closed (see 90_privileges.sql).
GRANT USAGE ON SCHEMA carm TO PUBLIC;
GRANT USAGE ON SCHEMA carm_internal TO PUBLIC;
