-- carm_deleg 1.1 -> 1.2: the preamble of the upgrade script.  The Makefile
-- appends every replayable install file (sql/src/, all but the header and
-- the tables), which re-creates each function, trigger and grant exactly as
-- a fresh 1.2 install does.  This preamble does what replaying cannot:
-- schema and table changes, and moving or dropping what 1.1 had.
\echo Use "ALTER EXTENSION carm_deleg UPDATE TO '1.2'" to load this file. \quit

-- §12: DROP EXTENSION leaves no schema behind.  1.0 and 1.1 were installed in
-- schema carm, which CREATE EXTENSION created and which therefore was no
-- member (PostgreSQL cannot make an extension's own schema its member):
-- DROP EXTENSION left it, empty.  1.2 is installed in pg_catalog and creates
-- carm as a member (sql/src/00_header.sql); an updated install is brought to
-- the same state: the extension moves to pg_catalog, and carm becomes a
-- member.  Nothing moves: carm's objects stay where they are; only the
-- extension's own row and its dependency on carm change.  pg_catalog is
-- pinned, so, as in a fresh install, the extension records no dependency on
-- it.
DO $schema$
DECLARE
  v_ext oid := (SELECT x.oid FROM pg_catalog.pg_extension x WHERE x.extname = 'carm_deleg');
BEGIN
  IF (SELECT x.extnamespace FROM pg_catalog.pg_extension x WHERE x.oid = v_ext)
     = 'carm'::regnamespace THEN
    UPDATE pg_catalog.pg_extension SET extnamespace = 'pg_catalog'::regnamespace WHERE oid = v_ext;
    DELETE FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_extension'::regclass AND d.objid = v_ext
      AND d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = 'carm'::regnamespace;
    ALTER EXTENSION carm_deleg ADD SCHEMA carm;
  END IF;
END
$schema$;
