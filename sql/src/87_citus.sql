-- Citus (docs/dba.md "Citus"): the delegation state on every node.
--
-- Policies on a distributed table run on the workers, which must read the
-- same grants as the coordinator: every state table the decisions or the
-- API read becomes a Citus reference table, a copy on every node written by
-- two-phase commit.  Two tables stay local to each node, because their rows
-- hold node-local oids: carm.login_binding (bindings are not honoured under
-- Citus: src/actor.c) and carm.protected_table (each node records what it
-- protected; Citus creates the shards' policies and triggers from the
-- coordinator's).

CREATE OR REPLACE FUNCTION carm_internal.citus_active() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_citus_active_sql';
COMMENT ON FUNCTION carm_internal.citus_active() IS
  'Internal: is Citus loaded and installed in this database?';

CREATE OR REPLACE FUNCTION carm_internal.citus_is_worker() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_citus_is_worker_sql';
COMMENT ON FUNCTION carm_internal.citus_is_worker() IS
  'Internal: is this node a Citus worker (not the coordinator)?';

-- The state tables Citus replicates, in foreign-key order.
CREATE OR REPLACE FUNCTION carm_internal.replicated_tables() RETURNS regclass[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['carm.business', 'carm.app_user', 'carm.program', 'carm.employee',
               'carm.access_request', 'carm.relationship', 'carm.client_assignment',
               'carm.client_group', 'carm.group_client', 'carm.group_employee',
               'carm.group_request', 'carm.audit_event', 'carm.notification']::regclass[]
$$;
COMMENT ON FUNCTION carm_internal.replicated_tables() IS
  'Internal: the state tables that carm.distribute_state() makes Citus reference tables, in foreign-key order';

-- Is the state distributed (every replicated table a reference table)?
CREATE OR REPLACE FUNCTION carm_internal.state_is_distributed() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_count int;
BEGIN
  IF NOT carm_internal.citus_active() THEN
    RETURN false;
  END IF;
  EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = ANY ($1)'
    INTO v_count USING carm_internal.replicated_tables();
  RETURN v_count > 0;
END
$$;
COMMENT ON FUNCTION carm_internal.state_is_distributed() IS
  'Internal: has carm.distribute_state() made the state tables reference tables?';

-- Settings some functions need under Citus, as SET clauses, so that they
-- hold for the function only.  Run below by the install and update scripts
-- on every node (Citus runs those on the workers too, and CREATE OR REPLACE
-- FUNCTION drops the clauses), and by distribute_state() on every node, for
-- databases where carm_deleg came before Citus.
--
-- * The resolver must not be inlined: Citus plans a query on a reference
--   table before PostgreSQL would inline a SQL function into it, and
--   refuses a parameterized query into which one was inlined afterwards.
--   Only under Citus: on one node, inlining is what keeps a cold point
--   check near 50 µs.
-- * protect() and unprotect() change a distributed table's shards in
--   parallel, then write the audit trail, a reference table: Citus wants
--   one connection per node for both (sequential mode), and the write
--   trigger on the shards (unsafe triggers: it reads only the row and the
--   actor's grants).
-- * The checks are PARALLEL RESTRICTED: a parallel worker of a shard query
--   cannot run the Citus query that loads the actor's grants, so the
--   policy is evaluated in the leader, above the Gather.
CREATE OR REPLACE FUNCTION carm_internal.adapt_to_citus() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f regprocedure;
BEGIN
  IF NOT carm_internal.citus_active() THEN
    RETURN;
  END IF;
  ALTER FUNCTION carm_internal.grants(bigint) SET search_path = pg_catalog, pg_temp;
  FOREACH f IN ARRAY ARRAY['carm_internal.protect_table(regclass, name, name, text, boolean)',
                           'carm_internal.unprotect_table(regclass)']::regprocedure[] LOOP
    EXECUTE format('ALTER FUNCTION %s SET citus.multi_shard_modify_mode = sequential', f);
    EXECUTE format('ALTER FUNCTION %s SET citus.enable_unsafe_triggers = on', f);
  END LOOP;
  FOREACH f IN ARRAY ARRAY['carm_internal.row_visible(bigint, bigint, text)',
                           'carm_internal.row_writable(bigint, bigint, text)',
                           'carm_internal.visible_programs(text)',
                           'carm.has_access(text, text)',
                           'carm.user_has_access(bigint, text, text)']::regprocedure[] LOOP
    EXECUTE format('ALTER FUNCTION %s PARALLEL RESTRICTED', f);
  END LOOP;
END
$$;
COMMENT ON FUNCTION carm_internal.adapt_to_citus() IS
  'Internal: under Citus, the settings some functions need (the resolver not inlined; protect() in sequential mode; the checks parallel restricted)';
SELECT carm_internal.adapt_to_citus();

CREATE OR REPLACE FUNCTION carm.distribute_state() RETURNS SETOF regclass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t regclass;
  v_done regclass[] := '{}';
BEGIN
  PERFORM carm_internal.require_admin();
  IF NOT carm_internal.citus_active() THEN
    RAISE EXCEPTION 'Citus is not installed in this database'
      USING ERRCODE = '55000',
            HINT = 'Add citus before carm_deleg to shared_preload_libraries and CREATE EXTENSION citus.';
  END IF;
  IF carm_internal.citus_is_worker() THEN
    RAISE EXCEPTION 'carm.distribute_state() runs on the Citus coordinator'
      USING ERRCODE = '55000';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node n WHERE n.groupid = 0) THEN
    RAISE EXCEPTION 'the Citus coordinator is not in its own metadata'
      USING ERRCODE = '55000',
            DETAIL = 'The state triggers that must run once run on the coordinator''s placement of each reference table.',
            HINT = 'SELECT citus_set_coordinator_host(''<host>'', <port>);';
  END IF;
  -- the state tables keep their triggers (invalidation on every node, the
  -- hierarchy rules once, on the coordinator: src/citus.c), and the two
  -- node-local tables keep their foreign keys to replicated ones
  PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
  PERFORM set_config('citus.enable_local_reference_table_foreign_keys', 'off', true);
  FOREACH t IN ARRAY carm_internal.replicated_tables() LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t) THEN
      PERFORM create_reference_table(t);
      v_done := v_done || t;
      RETURN NEXT t;
    END IF;
  END LOOP;
  -- the rows copied into the placements stay on disk under the local
  -- tables, invisible; free them, except under carm.app_user, which the
  -- local carm.login_binding references (Citus would refuse), and under the
  -- append-only audit trail
  FOREACH t IN ARRAY v_done LOOP
    IF t NOT IN ('carm.app_user'::regclass, 'carm.audit_event'::regclass) THEN
      PERFORM truncate_local_data_after_distributing_table(t);
    END IF;
  END LOOP;
  PERFORM carm_internal.adapt_to_citus();
  PERFORM run_command_on_workers('SELECT carm_internal.adapt_to_citus()');
  IF cardinality(v_done) > 0 THEN
    PERFORM carm_internal.audit('state_distributed', NULL, NULL, NULL, NULL, NULL,
                                jsonb_build_object('tables', v_done::text[]));
  END IF;
END
$$;
COMMENT ON FUNCTION carm.distribute_state() IS
  'carm_admin, under Citus: makes the delegation state Citus reference tables (idempotent); returns the tables it converted';
REVOKE ALL ON FUNCTION carm.distribute_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.distribute_state() TO carm_admin;
