-- One code base for PostgreSQL 15 to 18 (src/compat.h): what carm_deleg
-- promises is the same on every major, and this file's output too.  What only
-- some majors have is checked where it exists, inside DO blocks that print
-- nothing on success, so that no alternative expected output is needed.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
SELECT current_setting('server_version_num')::int BETWEEN 150000 AND 189999 AS supported_major;
SELECT carm.actor() IS NULL AS no_actor;   -- the library is loaded

-- PostgreSQL 18: the library names itself and its version, the version of
-- the extension it decides for (pg_get_loaded_modules()).
DO $$
DECLARE
  v text;
BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE $q$SELECT version FROM pg_get_loaded_modules()
               WHERE module_name = 'carm_deleg'$q$ INTO v;
    IF v IS DISTINCT FROM (SELECT extversion FROM pg_extension WHERE extname = 'carm_deleg') THEN
      RAISE EXCEPTION 'pg_get_loaded_modules() reports carm_deleg version %', coalesce(v, '<none>');
    END IF;
  END IF;
END $$;

-- The settings are the same on every major, with the same defaults.
SELECT name, setting, unit, context, vartype FROM pg_settings
WHERE name LIKE 'carm\_deleg.%' ORDER BY name;

DROP EXTENSION carm_deleg CASCADE;
