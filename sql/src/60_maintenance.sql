-- R12 maintenance: applies what time has decided.  Correctness never waits
-- for it (R9: the check compares expires_at with the transaction time); it
-- brings stored state in line, sends the notices, and runs deferred group
-- requests (G9).  Run by the background worker when the library is preloaded
-- (src/worker.c), else by pg_cron or an operator.
--
-- Concurrent runs never apply anything twice: each step locks the rows it
-- handles FOR UPDATE SKIP LOCKED and re-checks their state, so a second run
-- skips what the first holds, and finds it done once the first commits.

-- R9: the expiry cascade for every relationship due at p_as_of, in one
-- set-based statement.  Returns how many expired.  Never waiting, for any row
-- the cascade writes: the relationships, then their clients' groups (the
-- lock order), then their individual assignments (R7), are locked SKIP
-- LOCKED, and a relationship any of whose rows another transaction holds is
-- left for the next run (its expiry is already in force: checks compare
-- expires_at with the time, R9).  The assignments matter: a promotion to BAM
-- (E11) or a removal (E8) deletes an employee's assignments holding only its
-- employee row, and maintenance waiting for one of them while holding the
-- relationship was a lock cycle the API call lost (40P01).  The cascade's
-- other writes need no lock of their own: group_client rows change only
-- under their group's lock or the relationship's; audit and notification
-- rows are new, and their foreign keys take KEY SHARE, which no API call
-- conflicts with (E9's business row update is a NO KEY UPDATE).
CREATE OR REPLACE FUNCTION carm_internal.expire_relationships(p_as_of timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ids bigint[];
  v_groups bigint[];
  v_assignments bigint[];
BEGIN
  v_ids := ARRAY(SELECT r.id FROM carm.relationship r
                 WHERE r.status = 'active' AND r.expires_at <= p_as_of
                 ORDER BY r.id
                 FOR UPDATE SKIP LOCKED);
  v_groups := ARRAY(SELECT g.id FROM carm.client_group g
                    WHERE g.id IN (SELECT gc.group_id
                                   FROM carm.relationship r
                                   JOIN carm.group_client gc ON gc.provider_id = r.provider_id
                                                            AND gc.client_id = r.client_id
                                   WHERE r.id = ANY (v_ids))
                    ORDER BY g.id
                    FOR NO KEY UPDATE SKIP LOCKED);
  v_assignments := ARRAY(SELECT a.relationship_id FROM carm.client_assignment a
                          WHERE a.relationship_id = ANY (v_ids)
                          ORDER BY a.relationship_id, a.user_id
                          FOR UPDATE SKIP LOCKED);
  v_ids := ARRAY(WITH locked AS (SELECT l AS id, count(*) AS n FROM unnest(v_assignments) l GROUP BY l),
                      present AS (SELECT a.relationship_id AS id, count(*) AS n FROM carm.client_assignment a
                                  WHERE a.relationship_id = ANY (v_ids) GROUP BY a.relationship_id)
                 SELECT x FROM unnest(v_ids) x
                 LEFT JOIN locked k ON k.id = x
                 LEFT JOIN present p ON p.id = x
                 WHERE coalesce(k.n, 0) = coalesce(p.n, 0)      -- every assignment is ours
                   AND NOT EXISTS (SELECT FROM carm.relationship r
                                   JOIN carm.group_client gc ON gc.provider_id = r.provider_id
                                                            AND gc.client_id = r.client_id
                                   WHERE r.id = x AND gc.group_id <> ALL (v_groups))
                 ORDER BY x);
  RETURN carm_internal.close_relationships(v_ids, 'expired', p_as_of);
END
$$;
COMMENT ON FUNCTION carm_internal.expire_relationships(timestamptz) IS
  'Internal (R9, R12): applies the expiry cascade to every relationship due at as_of that no other transaction holds; returns how many';

-- §9: BAMs of both businesses are told when a relationship will expire within
-- 30 days, once per expiry date (a new date set by update_relationship gets
-- its own notice).  Returns how many relationships were announced.
CREATE OR REPLACE FUNCTION carm_internal.notify_expiring(p_as_of timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_count bigint;
BEGIN
  WITH due AS (
    SELECT r.id
    FROM carm.relationship r
    WHERE r.status = 'active' AND r.expires_at > p_as_of
      AND r.expires_at <= p_as_of + interval '30 days'
      AND r.expiry_notice_for IS DISTINCT FROM r.expires_at
    ORDER BY r.id
    FOR UPDATE SKIP LOCKED
  ),
  marked AS (
    UPDATE carm.relationship r SET expiry_notice_for = r.expires_at
    FROM due WHERE r.id = due.id
    RETURNING r.id, r.provider_id, r.client_id, r.expires_at
  ),
  events AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                  relationship_id, details)
    SELECT carm.actor(), carm_internal.caller_role(), 'relationship_expiring', m.provider_id, m.client_id, m.id,
           jsonb_build_object('as_of', p_as_of, 'expires_at', m.expires_at)
    FROM marked m ORDER BY m.id
    RETURNING id, at, event, business_id, other_business_id, relationship_id, details
  ),
  recipients AS (
    SELECT ev.id AS audit_id, ev.relationship_id, e.user_id
    FROM events ev JOIN carm.employee e ON e.business_id = ev.business_id AND e.role = 'BAM'
    UNION
    SELECT ev.id, ev.relationship_id, e.user_id
    FROM events ev JOIN carm.employee e ON e.business_id = ev.other_business_id AND e.role = 'BAM'
  ),
  notes AS (
    INSERT INTO carm.notification (user_id, event, message, audit_id)
    SELECT x.user_id, 'relationship_expiring',
           format('The business relationship between %s (%s) and %s (%s) expires on %s UTC',
                  pb.legal_name, pb.bn9, cb.legal_name, cb.bn9,
                  to_char(m.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')),
           x.audit_id
    FROM recipients x
    JOIN marked m ON m.id = x.relationship_id
    JOIN carm.business pb ON pb.id = m.provider_id
    JOIN carm.business cb ON cb.id = m.client_id
    ORDER BY x.audit_id, x.user_id
    RETURNING 1
  )
  SELECT count(*) INTO v_count FROM (
    SELECT carm_internal.publish(ev.id) FROM events ev ORDER BY ev.id
  ) published;
  RETURN v_count;
END
$$;
COMMENT ON FUNCTION carm_internal.notify_expiring(timestamptz) IS
  'Internal (§9, R12): notifies the BAMs of both businesses of relationships expiring within 30 days, once per expiry date';

-- Maintenance loses its lock cycles, never the user (rev. 1.2).  It never
-- waits for a row another transaction holds: every row it writes is locked
-- first SKIP LOCKED (the expiry cascade, the notices, the claim of the
-- deferred requests) or NOWAIT (each deferred request, in its own
-- subtransaction), so it cannot be a waiter in a lock cycle, whatever the
-- API calls' deadlock_timeout.  (A lock_timeout alone was no such promise:
-- an API call that had waited longer than maintenance ran its deadlock check
-- first, and was the one cancelled with 40P01.)  lock_timeout still bounds
-- what no row lock covers (a table lock held by DDL).  Each step runs in its
-- own subtransaction: a transient error (55P03, 40P01, 40001) in one step
-- rolls back only that step, and what the others did is committed with the
-- run.  What it could not do now — an expiry cascade, a notice, a deferred
-- request — is left for the next run.
CREATE OR REPLACE FUNCTION carm.run_maintenance(as_of timestamptz DEFAULT now())
RETURNS TABLE (action text, count bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '500ms'
AS $$
DECLARE
  v_state text;
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.not_null(as_of, 'as_of');
  -- §10 (rev. 1.1): expiry is irreversible (R10), so nothing may expire
  -- before its time: a future as_of is refused.
  IF as_of > clock_timestamp() THEN
    RAISE EXCEPTION 'as_of must not be in the future'
      USING ERRCODE = '22023',
            DETAIL = 'Expiry cannot be undone (R10): nothing may expire before its time.',
            HINT = 'Call carm.run_maintenance() without as_of, or with a time in the past.';
  END IF;
  action := 'relationships_expired';
  BEGIN
    count := carm_internal.expire_relationships(as_of);
  EXCEPTION WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
    count := 0;                     -- transient: the next run applies them (R9 holds by time)
  END;
  RETURN NEXT;
  action := 'expiry_notices';
  BEGIN
    count := carm_internal.notify_expiring(as_of);
  EXCEPTION WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
    count := 0;
  END;
  RETURN NEXT;
  -- G9: deferred group requests (client groups, sql/src: groups).  Each
  -- request has its own subtransaction; this one covers the claim: a lock
  -- timeout there leaves every request PENDING and keeps the expiry work.
  BEGIN
    RETURN QUERY SELECT * FROM carm_internal.process_group_requests(as_of);
  EXCEPTION WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
    RETURN QUERY VALUES ('group_requests_completed'::text, 0::bigint), ('group_requests_failed', 0),
                        ('group_requests_retried', 0);
  END;
END
$$;
COMMENT ON FUNCTION carm.run_maintenance(timestamptz) IS
  'R12: applies due expiry cascades (R9), sends 30-day expiry notices, runs deferred group requests (G9); returns what it did (carm_admin)';

REVOKE ALL ON FUNCTION carm.run_maintenance(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.run_maintenance(timestamptz) TO carm_admin;
