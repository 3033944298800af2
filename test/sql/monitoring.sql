-- §12 monitoring: carm.stats needs the library in shared_preload_libraries
-- (test/cluster/worker.sh reads it on a cluster that has it); here it is
-- not preloaded, and reading the view says so.  Who may read and reset it.
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
DROP ROLE IF EXISTS regress_mon_nobody;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
CREATE ROLE regress_mon_nobody;

SELECT * FROM carm.stats;
SELECT carm.stats_reset();
SELECT has_table_privilege('carm_admin', 'carm.stats', 'SELECT') AS admin_reads,
       has_table_privilege('pg_read_all_stats', 'carm.stats', 'SELECT') AS monitoring_reads,
       has_table_privilege('regress_mon_nobody', 'carm.stats', 'SELECT') AS others_read,
       has_function_privilege('regress_mon_nobody', 'carm.stats_reset()', 'EXECUTE') AS others_reset;
SET ROLE regress_mon_nobody;
SELECT * FROM carm.stats;
SELECT carm.stats_reset();
RESET ROLE;

DROP EXTENSION carm_deleg;
DROP ROLE regress_mon_nobody;
