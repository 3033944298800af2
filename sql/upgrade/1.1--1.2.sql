-- carm_deleg 1.1 -> 1.2: the preamble of the upgrade script.  The Makefile
-- appends every replayable install file (sql/src/, all but the header and
-- the tables), which re-creates each function, trigger and grant exactly as
-- a fresh 1.2 install does.  This preamble does what replaying cannot:
-- schema and table changes, and moving or dropping what 1.1 had.
\echo Use "ALTER EXTENSION carm_deleg UPDATE TO '1.2'" to load this file. \quit

-- carm.protect() takes allow_hidden_rows (DEFAULT false): the 4-argument
-- function is replaced by the 5-argument one, which existing calls resolve
-- to, and so is its internal worker.
DROP FUNCTION carm.protect(regclass, name, name, text);
DROP FUNCTION carm_internal.protect_table(regclass, name, name, text);
