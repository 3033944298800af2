-- carm_deleg 1.1 -> 1.2: the preamble of the upgrade script.  The Makefile
-- appends every replayable install file (sql/src/, all but the header and
-- the tables), which re-creates each function, trigger and grant exactly as
-- a fresh 1.2 install does.  This preamble does what replaying cannot:
-- schema and table changes, and moving or dropping what 1.1 had.
\echo Use "ALTER EXTENSION carm_deleg UPDATE TO '1.2'" to load this file. \quit

-- carm.stats gains the shared store's counters (columns in the middle):
-- the replayed definitions re-create the view and its function.
DROP VIEW carm.stats;
DROP FUNCTION carm_internal.stats();

-- §10 (rev. 1.2): carm_internal.array_arg() checks every array argument;
-- the bulk loads' own shape check is gone.
DROP FUNCTION IF EXISTS carm_internal.bulk_size(text[], integer[], integer[]);

-- carm.protect() gains an overload with allow_hidden_rows; its internal
-- worker takes the flag, and the 4-argument worker goes (replaying sql/src
-- creates the 5-argument one; a fresh install has only that).
DROP FUNCTION carm_internal.protect_table(regclass, name, name, text);

-- Grants loaded before the update were computed by 1.1's resolver: make
-- every backend's store, and the sets shared across backends, stale at
-- commit.  An UPDATE of no row still fires login_binding's statement
-- trigger, which sends "everything" (src/inval.c) and logs it for the
-- shared sets when the update commits.
UPDATE carm.login_binding SET user_id = user_id WHERE false;

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
