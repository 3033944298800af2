-- §7 client groups, part 4: deferred processing of the request-processing
-- table (G9, R12), one request per subtransaction.

-- Deferred processing (G9, R12) -----------------------------------------------

-- Applies the PENDING requests created up to as_of, oldest first, each
-- atomically in its own subtransaction and as its initiator would: the
-- initiator must still be a BAM of the provider, the group still live and the
-- clients still available at apply time.  A request that fails is marked
-- FAILED with the reason and leaves nothing behind; its initiator is notified.
--
-- A busy group delays only itself: the relationships, the group and the
-- other rows a request writes are locked NOWAIT (in the lock order of the
-- header; carm_internal.group_lock_rows_nowait), and a transient
-- error — 55P03 (a lock not available now, or carm.run_maintenance's
-- lock_timeout), 40P01 (deadlock), 40001 (serialization) — rolls the request's
-- subtransaction back and leaves it PENDING for the next run: it is not the
-- request's failure.
--
-- Requests are claimed with FOR UPDATE SKIP LOCKED: a concurrent run skips
-- what this one holds, and once this one commits, the rows it finished no
-- longer match status = 'PENDING' when re-checked, so every request is
-- processed exactly once.  Called by carm.run_maintenance().
CREATE OR REPLACE FUNCTION carm_internal.process_group_requests(as_of timestamptz DEFAULT now())
RETURNS TABLE (action text, count bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clock timestamptz;
  v_ids bigint[];
  v_id bigint;
  q carm.group_request;
  g carm.client_group;
  v_done bigint := 0;
  v_failed bigint := 0;
  v_retried bigint := 0;
  v_msg text;
  v_detail text;
  v_state text;
  v_audit bigint;
BEGIN
  PERFORM carm_internal.not_null(as_of, 'as_of');
  v_ids := ARRAY(SELECT r.id FROM carm.group_request r
                 WHERE r.status = 'PENDING' AND r.created_at <= as_of
                 ORDER BY r.id
                 FOR UPDATE SKIP LOCKED);
  v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
  UPDATE carm.group_request r SET status = 'PROCESSING', started_at = v_clock
  WHERE r.id = ANY (v_ids);

  FOREACH v_id IN ARRAY v_ids LOOP
    SELECT * INTO q FROM carm.group_request r WHERE r.id = v_id;
    BEGIN
      -- G1 at apply time, with the reason (the initiator may have left)
      PERFORM carm_internal.require_group_manager(b, q.initiator)
      FROM carm.business b WHERE b.id = q.provider_id;
      -- lock order, never waiting: relationships, then the group, then the
      -- employee and assignment rows API calls may hold (R12: maintenance
      -- never waits for an API call, so it is never in a lock cycle)
      PERFORM carm_internal.group_lock_relationships(q.provider_id, q.operation, q.payload, true);
      PERFORM FROM carm.client_group cg WHERE cg.id = q.group_id FOR NO KEY UPDATE NOWAIT;
      PERFORM carm_internal.group_lock_rows_nowait(q.group_id, q.provider_id, q.operation, q.payload);
      g := carm_internal.group_row(q.group_id, q.initiator, true);
      PERFORM carm_internal.group_apply(g, q.operation, q.payload, q.initiator, q.id, as_of);
      v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
      UPDATE carm.group_request r SET status = 'COMPLETED', finished_at = v_clock
      WHERE r.id = q.id;
      PERFORM carm_internal.notify(q.initiator, 'group_request_completed',
                format('Your request %s (%s on client group "%s", %s item(s)) was completed.',
                       q.id, q.operation, q.group_name, q.item_count));
      v_done := v_done + 1;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                              v_state = RETURNED_SQLSTATE;
      IF v_state IN ('55P03', '40P01', '40001') THEN
        -- transient: nothing was applied; the next run tries again
        UPDATE carm.group_request r SET status = 'PENDING', started_at = NULL
        WHERE r.id = q.id;
        v_retried := v_retried + 1;
        CONTINUE;
      END IF;
      v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
      UPDATE carm.group_request r
      SET status = 'FAILED', finished_at = v_clock,
          error = v_msg || CASE WHEN v_detail <> '' THEN E'\n' || v_detail ELSE '' END
      WHERE r.id = q.id;
      v_audit := carm_internal.audit('group_request_failed', q.provider_id, NULL, NULL, NULL, q.group_id,
                             jsonb_build_object('request_id', q.id, 'operation', q.operation,
                                                'sqlstate', v_state, 'error', v_msg),
                             q.initiator);
      PERFORM carm_internal.notify(q.initiator, 'group_request_failed',
                format('Your request %s (%s on client group "%s") failed and changed nothing: %s',
                       q.id, q.operation, q.group_name, v_msg),
                v_audit);
      v_failed := v_failed + 1;
    END;
  END LOOP;

  RETURN QUERY VALUES ('group_requests_completed'::text, v_done), ('group_requests_failed', v_failed),
                      ('group_requests_retried', v_retried);
END
$$;
COMMENT ON FUNCTION carm_internal.process_group_requests(timestamptz) IS
  'Internal (R12/G9): applies pending deferred group requests, each atomically; a busy group or a transient error leaves its request PENDING; returns how many completed, failed and were left for the next run';
