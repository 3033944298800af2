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

-- The schema holds superuser-owned SECURITY DEFINER functions: it must be
-- ours.  CREATE EXTENSION adopts an existing schema carm, so refuse one that
-- another role created beforehand (it could replace what we install).
DO $schema$
BEGIN
  IF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm')
     IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION 'schema carm is owned by another role'
      USING ERRCODE = '42501',
            HINT = 'Drop the schema, or let the role installing carm_deleg own it, before CREATE EXTENSION.';
  END IF;
END
$schema$;

-- Functions resolve through the schema; tables stay closed (see 90_privileges.sql).
GRANT USAGE ON SCHEMA carm TO PUBLIC;
