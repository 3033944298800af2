-- §12 monitoring: cumulative counters per database, in the spirit of
-- pg_stat_statements (src/stats.c).  They need the library in
-- shared_preload_libraries; without it reading the view raises 55000.

CREATE OR REPLACE FUNCTION carm_internal.stats(
    OUT database text,
    OUT point_checks bigint,
    OUT row_checks bigint,
    OUT store_hits bigint,
    OUT full_loads bigint,
    OUT business_loads bigint,
    OUT load_ms double precision,
    OUT invalidations bigint,
    OUT decision_tables bigint,
    OUT maintenance_runs bigint,
    OUT shared_hits bigint,
    OUT shared_misses bigint,
    OUT shared_published bigint,
    OUT shared_evictions bigint,
    OUT maintenance_last_run timestamptz,
    OUT maintenance_last_ms double precision,
    OUT maintenance_last_result text,
    OUT stats_reset timestamptz)
  RETURNS SETOF record
  LANGUAGE c VOLATILE PARALLEL RESTRICTED
  AS 'MODULE_PATHNAME', 'carm_stats_sql';
COMMENT ON FUNCTION carm_internal.stats() IS
  'Internal: the counters behind the view carm.stats';

CREATE OR REPLACE VIEW carm.stats AS SELECT * FROM carm_internal.stats();
COMMENT ON VIEW carm.stats IS
  'Monitoring, per database since the last carm.stats_reset(): point checks (has_access, user_has_access), row checks of protected tables, point checks answered from the per-backend store without a query, complete and one-business loads of a user''s grants and the time they took, invalidations applied, decision tables derived, loads shared across backends, and the maintenance worker''s runs with the last one''s start, duration and result.  Needs carm_deleg in shared_preload_libraries.';
COMMENT ON COLUMN carm.stats.point_checks IS 'calls of has_access and user_has_access';
COMMENT ON COLUMN carm.stats.row_checks IS 'row checks of protected tables (rows read under the policies)';
COMMENT ON COLUMN carm.stats.store_hits IS 'point checks answered from a backend''s store of grants without a query';
COMMENT ON COLUMN carm.stats.full_loads IS 'loads of every grant of a user (scans; busy actors)';
COMMENT ON COLUMN carm.stats.business_loads IS 'loads of a user''s grants on one or a few businesses (point checks, point reads, invalidations applied)';
COMMENT ON COLUMN carm.stats.load_ms IS 'time spent in those loads';
COMMENT ON COLUMN carm.stats.invalidations IS 'changed businesses whose grants a store reloaded after another transaction committed a change';
COMMENT ON COLUMN carm.stats.decision_tables IS 'per-function decision tables derived for the row check';
COMMENT ON COLUMN carm.stats.maintenance_runs IS 'runs of carm.run_maintenance() by the background worker';
COMMENT ON COLUMN carm.stats.shared_hits IS 'loads answered by grants another backend loaded and shared (carm_deleg.shared_store_size)';
COMMENT ON COLUMN carm.stats.shared_misses IS 'loads that found no valid shared grants (never loaded, changed since, or evicted) and ran the resolver';
COMMENT ON COLUMN carm.stats.shared_published IS 'loads shared with the other backends';
COMMENT ON COLUMN carm.stats.shared_evictions IS 'shared grants evicted to make room (least recently used first)';
COMMENT ON COLUMN carm.stats.maintenance_last_result IS '"ok" and what it did, or "error: " and the message';

CREATE OR REPLACE FUNCTION carm.stats_reset() RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_stats_reset_sql';
COMMENT ON FUNCTION carm.stats_reset() IS
  'Sets every counter of carm.stats back to zero (carm_admin)';

REVOKE ALL ON carm.stats FROM PUBLIC;
GRANT SELECT ON carm.stats TO carm_admin, pg_read_all_stats;
REVOKE ALL ON FUNCTION carm_internal.stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.stats() TO carm_admin, pg_read_all_stats;
REVOKE ALL ON FUNCTION carm.stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.stats_reset() TO carm_admin;

-- §11 (rev. 1.2): the grants shared by every backend (src/shared_store.c).
CREATE OR REPLACE FUNCTION carm.shared_store(
    OUT sets bigint,
    OUT bytes bigint,
    OUT size bigint,
    OUT log_position bigint)
  RETURNS record
  LANGUAGE c VOLATILE PARALLEL RESTRICTED
  AS 'MODULE_PATHNAME', 'carm_shared_store_sql';
COMMENT ON FUNCTION carm.shared_store() IS
  'The grants shared by every backend: sets held (one user''s grants on one business, on the business of one program, every grant, or a reach estimate), bytes in use, the area''s size (carm_deleg.shared_store_size) and the change log''s position.  Needs carm_deleg in shared_preload_libraries (55000 otherwise).';
REVOKE ALL ON FUNCTION carm.shared_store() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.shared_store() TO carm_admin, pg_read_all_stats;

CREATE OR REPLACE FUNCTION carm.shared_store_clear() RETURNS bigint
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_shared_store_clear_sql';
COMMENT ON FUNCTION carm.shared_store_clear() IS
  'Evicts every shared set of this database and returns how many (carm_admin).  Never needed for correctness: sets are checked against the change log before use.';
REVOKE ALL ON FUNCTION carm.shared_store_clear() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.shared_store_clear() TO carm_admin;
