-- §7 client groups, part 2: each operation applied for an initiator, shared
-- by immediate calls and deferred processing (G3-G8).

-- Operations, applied for an initiator ---------------------------------------
-- Each writes one summary event (published with pg_notify) plus one audit row
-- per client or employee concerned, written set-based and not published, so
-- that a client's BAM finds its own history in carm.audit_events(client) and a
-- 10,000-client operation sends one message, not 10,000.

-- G3 + G6: adds clients to g.  All-or-nothing: every unavailable client is
-- named in one error (22023), nothing is applied.  A client already in g is
-- left as it is (it is in no *other* group, so G3 holds).
CREATE OR REPLACE FUNCTION carm_internal.group_add_clients(g carm.client_group, p_bn9s text[], p_actor bigint,
                                        p_request bigint, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_unknown text[];
  v_unrelated text[];
  v_taken text[];
  v_taken_detail text;
  v_offenders text[];
  v_detail text[] := '{}';
  v_added integer;
  v_audit bigint;
BEGIN
  IF cardinality(p_bn9s) = 0 THEN
    RETURN 0;
  END IF;

  -- Hold the relationships we rely on: a concurrent end or expiry cascade
  -- (R9) waits for our commit and then deletes the rows we add.
  -- (group_request took them before the group row; create_client_group's
  -- group is new, so nobody can wait for it)
  PERFORM FROM carm.relationship r
  JOIN carm.business b ON b.id = r.client_id
  WHERE r.provider_id = g.provider_id AND r.status = 'active' AND b.bn9 = ANY (p_bn9s)
  ORDER BY r.id
  FOR SHARE OF r;

  -- G3, one pass over the requested clients finding every offender.
  WITH req AS (
    SELECT x AS bn9 FROM unnest(p_bn9s) x
  ), st AS (
    SELECT req.bn9, b.id AS client_id,
           EXISTS (SELECT FROM carm.relationship r
                   WHERE r.provider_id = g.provider_id AND r.client_id = b.id
                     AND carm_internal.relationship_in_force(r.status, r.expires_at, p_now)) AS related,
           gc.group_id AS in_group
    FROM req
    LEFT JOIN carm.business b ON b.bn9 = req.bn9
    LEFT JOIN carm.group_client gc ON gc.provider_id = g.provider_id AND gc.client_id = b.id
  )
  SELECT array_agg(st.bn9 ORDER BY st.bn9) FILTER (WHERE st.client_id IS NULL),
         array_agg(st.bn9 ORDER BY st.bn9) FILTER (WHERE st.client_id IS NOT NULL AND NOT st.related),
         array_agg(st.bn9 ORDER BY st.bn9) FILTER (WHERE st.related AND st.in_group <> g.id)
  INTO v_unknown, v_unrelated, v_taken
  FROM st;

  IF v_unknown IS NOT NULL OR v_unrelated IS NOT NULL OR v_taken IS NOT NULL THEN
    v_offenders := ARRAY(SELECT x FROM unnest(coalesce(v_unknown, '{}') || coalesce(v_unrelated, '{}')
                                               || coalesce(v_taken, '{}')) x ORDER BY x);
    IF v_unknown IS NOT NULL THEN
      v_detail := v_detail || format('Unknown business: %s.', carm_internal.name_list(v_unknown));
    END IF;
    IF v_unrelated IS NOT NULL THEN
      v_detail := v_detail || format('No active relationship with provider: %s.', carm_internal.name_list(v_unrelated));
    END IF;
    IF v_taken IS NOT NULL THEN
      SELECT string_agg(format('%s in "%s"', t.clients, t.name), '; ' ORDER BY t.name)
      INTO v_taken_detail
      FROM (SELECT og.name, string_agg(b.bn9, ', ' ORDER BY b.bn9) AS clients
            FROM carm.business b
            JOIN carm.group_client gc ON gc.provider_id = g.provider_id AND gc.client_id = b.id
            JOIN carm.client_group og ON og.id = gc.group_id
            WHERE b.bn9 = ANY (v_taken)
            GROUP BY og.name) t;
      v_detail := v_detail || format('Already in another group of the provider: %s.', v_taken_detail);
    END IF;
    RAISE EXCEPTION 'clients not available for client group "%": %', g.name, carm_internal.name_list(v_offenders)
      USING ERRCODE = '22023',
            DETAIL = array_to_string(v_detail, E'\n'),
            HINT = 'A client is available when it has an active relationship with the provider and is in no other of its groups (G3); see carm.available_clients().';
  END IF;

  BEGIN
    WITH ins AS (
      INSERT INTO carm.group_client (group_id, provider_id, client_id)
      SELECT g.id, g.provider_id, b.id
      FROM carm.business b
      WHERE b.bn9 = ANY (p_bn9s)
      ON CONFLICT (group_id, client_id) DO NOTHING
      RETURNING client_id
    )
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                  group_id, details)
    SELECT p_actor, carm_internal.caller_role(), 'group_client_added', g.provider_id, ins.client_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request)
    FROM ins ORDER BY ins.client_id;
    GET DIAGNOSTICS v_added = ROW_COUNT;
  EXCEPTION WHEN unique_violation THEN
    -- another transaction put one of these clients in another group since
    -- our check (UNIQUE (provider_id, client_id), G3)
    RAISE EXCEPTION 'clients not available for client group "%": a client was added to another group concurrently',
                    g.name
      USING ERRCODE = '22023', HINT = 'Retry: the error will name the clients (G3).';
  END;

  v_audit := carm_internal.group_audit(p_actor, 'group_clients_added', g,
               jsonb_build_object('request_id', p_request, 'requested', cardinality(p_bn9s),
                                  'added', v_added));
  -- G6: the group's employees act for the new clients from commit on.
  IF v_added > 0 THEN
    INSERT INTO carm.notification (user_id, event, message, audit_id)
    SELECT ge.user_id, 'group_clients_added',
           format('%s client(s) were added to client group "%s": you act for them as %s.',
                  v_added, g.name, ge.role),
           v_audit
    FROM carm.group_employee ge WHERE ge.group_id = g.id;
  END IF;
  RETURN v_added;
END
$$;
COMMENT ON FUNCTION carm_internal.group_add_clients(carm.client_group, text[], bigint, bigint, timestamptz) IS
  'Internal: G3/G6, adds available clients to a group (all or nothing), returns how many were added';

-- G7 for a set of client ids of g (all of them when p_clients is NULL): the
-- group's employees lose their individual assignments (R7) on those clients'
-- relationships — literal revocation, so removing a client cannot be undone —
-- and the group_client rows go, which ends the group-derived access.  Provider
-- BAMs keep theirs: it is derived from the relationship (R6), not from here.
-- Returns the number of clients removed.
CREATE OR REPLACE FUNCTION carm_internal.group_drop_clients(g carm.client_group, p_clients bigint[], p_actor bigint,
                                         p_request bigint, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  WITH revoked AS (
    DELETE FROM carm.client_assignment a
    USING carm.relationship r, carm.group_employee ge
    WHERE r.id = a.relationship_id
      AND r.provider_id = g.provider_id AND r.status = 'active'
      AND (p_clients IS NULL OR r.client_id = ANY (p_clients))
      AND EXISTS (SELECT FROM carm.group_client gc
                  WHERE gc.group_id = g.id AND gc.client_id = r.client_id)
      AND ge.group_id = g.id AND ge.user_id = a.user_id
      AND NOT EXISTS (SELECT FROM carm.employee e
                      WHERE e.business_id = g.provider_id AND e.user_id = a.user_id AND e.role = 'BAM')
    RETURNING r.client_id, a.user_id, a.role
  ), per_client AS (
    SELECT rv.client_id,
           jsonb_agg(jsonb_build_object('user_id', rv.user_id, 'role', rv.role) ORDER BY rv.user_id) AS revoked
    FROM revoked rv GROUP BY rv.client_id
  ), gone AS (
    DELETE FROM carm.group_client gc
    WHERE gc.group_id = g.id AND (p_clients IS NULL OR gc.client_id = ANY (p_clients))
    RETURNING gc.client_id
  )
  INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                group_id, details)
  SELECT p_actor, carm_internal.caller_role(), 'group_client_removed', g.provider_id, gone.client_id, g.id,
         jsonb_build_object('group', g.name, 'request_id', p_request, 'reason', p_reason,
                            'revoked_assignments', coalesce(pc.revoked, '[]'))
  FROM gone LEFT JOIN per_client pc ON pc.client_id = gone.client_id
  ORDER BY gone.client_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION carm_internal.group_drop_clients(carm.client_group, bigint[], bigint, bigint, text) IS
  'Internal: G7, removes clients from a group and revokes the group employees'' access to them';

-- G7: removes clients from g.  Every listed client must be in g (22023, naming
-- the others; nothing applied).
CREATE OR REPLACE FUNCTION carm_internal.group_remove_clients(g carm.client_group, p_bn9s text[], p_actor bigint,
                                           p_request bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text[];
  v_ids bigint[];
  v_n integer;
  v_audit bigint;
BEGIN
  SELECT array_agg(x ORDER BY x) INTO v_bad
  FROM unnest(p_bn9s) x
  WHERE NOT EXISTS (SELECT FROM carm.group_client gc JOIN carm.business b ON b.id = gc.client_id
                    WHERE gc.group_id = g.id AND b.bn9 = x);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'clients not in client group "%": %', g.name, carm_internal.name_list(v_bad)
      USING ERRCODE = '22023', HINT = 'See carm.group_clients() for the clients of the group.';
  END IF;
  v_ids := ARRAY(SELECT b.id FROM carm.business b WHERE b.bn9 = ANY (p_bn9s));
  v_n := carm_internal.group_drop_clients(g, v_ids, p_actor, p_request, 'removed');
  v_audit := carm_internal.group_audit(p_actor, 'group_clients_removed', g,
               jsonb_build_object('request_id', p_request, 'removed', v_n));
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  SELECT ge.user_id, 'group_clients_removed',
         format('%s client(s) were removed from client group "%s": you no longer have access to them.',
                v_n, g.name),
         v_audit
  FROM carm.group_employee ge WHERE ge.group_id = g.id;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION carm_internal.group_remove_clients(carm.client_group, text[], bigint, bigint) IS
  'Internal: G7, removes clients that are all in the group, returns how many';

-- G4: assigns provider employees to g with a default role; an employee
-- already in g gets the new role.  Every user who is not an active employee
-- of the provider, or is one of its BAMs, is named in one error (22023).
CREATE OR REPLACE FUNCTION carm_internal.group_assign(g carm.client_group, p_users bigint[], p_role text,
                                   p_actor bigint, p_request bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_strangers text[];
  v_bams text[];
  v_detail text[] := '{}';
  v_changed bigint[];
  v_n integer;
  v_audit bigint;
  v_provider text;
BEGIN
  -- Hold the employee rows: a concurrent removal (E8) waits for our commit
  -- and then deletes the group assignments we add.
  PERFORM FROM carm.employee e
  WHERE e.business_id = g.provider_id AND e.user_id = ANY (p_users)
  FOR SHARE;

  SELECT array_agg(u::text ORDER BY u) FILTER (WHERE e.user_id IS NULL),
         array_agg(u::text ORDER BY u) FILTER (WHERE e.role = 'BAM')
  INTO v_strangers, v_bams
  FROM unnest(p_users) u
  LEFT JOIN (carm.employee e JOIN carm.app_user au ON au.id = e.user_id AND au.active)
         ON e.business_id = g.provider_id AND e.user_id = u;
  IF v_strangers IS NOT NULL OR v_bams IS NOT NULL THEN
    IF v_strangers IS NOT NULL THEN
      v_detail := v_detail || format('Not active employees of the provider: %s.', carm_internal.name_list(v_strangers));
    END IF;
    IF v_bams IS NOT NULL THEN
      v_detail := v_detail || format('Business account managers of the provider, who already act for every client: %s.',
                                     carm_internal.name_list(v_bams));
    END IF;
    RAISE EXCEPTION 'users cannot be employees of client group "%": %', g.name,
                    carm_internal.name_list(ARRAY(SELECT x FROM unnest(coalesce(v_strangers, '{}') || coalesce(v_bams, '{}')) x
                                          ORDER BY x::bigint))
      USING ERRCODE = '22023', DETAIL = array_to_string(v_detail, E'\n'),
            HINT = 'Group employees are active employees of the provider who are not its BAMs (G4).';
  END IF;

  WITH old AS (
    SELECT ge.user_id, ge.role FROM carm.group_employee ge
    WHERE ge.group_id = g.id AND ge.user_id = ANY (p_users)
  ), up AS (
    INSERT INTO carm.group_employee AS ge (group_id, user_id, role)
    SELECT g.id, u, p_role FROM unnest(p_users) u
    ON CONFLICT (group_id, user_id) DO UPDATE
      SET role = excluded.role, assigned_at = excluded.assigned_at
      WHERE ge.role <> excluded.role
    RETURNING ge.user_id
  ), aud AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                  group_id, details)
    SELECT p_actor, carm_internal.caller_role(), 'group_employee_assigned', g.provider_id, up.user_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request,
                              'before', old.role, 'after', p_role)
    FROM up LEFT JOIN old ON old.user_id = up.user_id
    ORDER BY up.user_id
    RETURNING target_user_id
  )
  SELECT coalesce(array_agg(aud.target_user_id), '{}') INTO v_changed FROM aud;
  v_n := cardinality(v_changed);

  v_audit := carm_internal.group_audit(p_actor, 'group_employees_assigned', g,
               jsonb_build_object('request_id', p_request, 'role', p_role,
                                  'requested', cardinality(p_users), 'changed', v_n));
  SELECT b.legal_name INTO v_provider FROM carm.business b WHERE b.id = g.provider_id;
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  SELECT u, 'group_employee_assigned',
         format('%s assigned you to client group "%s" as %s, for its %s client(s).',
                v_provider, g.name, p_role,
                (SELECT count(*) FROM carm.group_client gc WHERE gc.group_id = g.id)),
         v_audit
  FROM unnest(v_changed) u;      -- a role assigned again unchanged is no news
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION carm_internal.group_assign(carm.client_group, bigint[], text, bigint, bigint) IS
  'Internal: G4, assigns provider employees (not BAMs) to a group with a default role';

-- Unassigns employees from g: their group-derived access ends; individual
-- assignments (R7) are not the group's and stay.  Every listed user must be
-- an employee of g (22023, naming the others).
CREATE OR REPLACE FUNCTION carm_internal.group_unassign(g carm.client_group, p_users bigint[], p_actor bigint,
                                     p_request bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text[];
  v_n integer;
  v_audit bigint;
BEGIN
  SELECT array_agg(u::text ORDER BY u) INTO v_bad
  FROM unnest(p_users) u
  WHERE NOT EXISTS (SELECT FROM carm.group_employee ge WHERE ge.group_id = g.id AND ge.user_id = u);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'users are not employees of client group "%": %', g.name, carm_internal.name_list(v_bad)
      USING ERRCODE = '22023', HINT = 'See carm.group_employees() for the employees of the group.';
  END IF;

  WITH gone AS (
    DELETE FROM carm.group_employee ge
    WHERE ge.group_id = g.id AND ge.user_id = ANY (p_users)
    RETURNING ge.user_id, ge.role
  )
  INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                group_id, details)
  SELECT p_actor, carm_internal.caller_role(), 'group_employee_unassigned', g.provider_id, gone.user_id, g.id,
         jsonb_build_object('group', g.name, 'request_id', p_request, 'before', gone.role)
  FROM gone ORDER BY gone.user_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;

  v_audit := carm_internal.group_audit(p_actor, 'group_employees_unassigned', g,
               jsonb_build_object('request_id', p_request, 'unassigned', v_n));
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  SELECT u, 'group_employee_unassigned',
         format('You were removed from client group "%s": you no longer act for its clients through the group.',
                g.name),
         v_audit
  FROM unnest(p_users) u;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION carm_internal.group_unassign(carm.client_group, bigint[], bigint, bigint) IS
  'Internal: removes employees from a group (their individual assignments stay)';

-- G8: G7 for every client, then the employees leave the group (guide §6.4:
-- "supprime l'association de ses employés et de ses clients au groupe") and
-- the group is marked deleted.  The row stays, so its name stays taken (G2)
-- and the request table keeps pointing at it.  Returns the number of clients.
CREATE OR REPLACE FUNCTION carm_internal.group_delete(g carm.client_group, p_actor bigint, p_request bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clients integer;
  v_employees bigint[];
  v_audit bigint;
BEGIN
  v_clients := carm_internal.group_drop_clients(g, NULL, p_actor, p_request, 'group deleted');

  WITH gone AS (
    DELETE FROM carm.group_employee ge WHERE ge.group_id = g.id
    RETURNING ge.user_id, ge.role
  ), aud AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                  group_id, details)
    SELECT p_actor, carm_internal.caller_role(), 'group_employee_unassigned', g.provider_id, gone.user_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request, 'before', gone.role,
                              'reason', 'group deleted')
    FROM gone ORDER BY gone.user_id
  )
  SELECT coalesce(array_agg(gone.user_id ORDER BY gone.user_id), '{}') INTO v_employees FROM gone;

  UPDATE carm.client_group cg SET deleted_at = now() WHERE cg.id = g.id;

  v_audit := carm_internal.group_audit(p_actor, 'client_group_deleted', g,
               jsonb_build_object('request_id', p_request, 'name', g.name,
                                  'clients', v_clients, 'employees', cardinality(v_employees)));
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  SELECT u, 'client_group_deleted',
         format('Client group "%s" was deleted: you no longer have access to its %s client(s) through it.',
                g.name, v_clients),
         v_audit
  FROM unnest(v_employees) u;
  RETURN v_clients;
END
$$;
COMMENT ON FUNCTION carm_internal.group_delete(carm.client_group, bigint, bigint) IS
  'Internal: G8, deletes a group (G7 for all clients, employees unassigned, name kept)';

-- One operation on g from its stored form (the payload of group_request).
CREATE OR REPLACE FUNCTION carm_internal.group_apply(g carm.client_group, p_operation text, p_payload jsonb,
                                  p_actor bigint, p_request bigint, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clients text[] := ARRAY(SELECT jsonb_array_elements_text(coalesce(p_payload->'clients', '[]')));
  v_users bigint[] := ARRAY(SELECT x::bigint FROM jsonb_array_elements_text(coalesce(p_payload->'user_ids', '[]')) x);
BEGIN
  CASE p_operation
    WHEN 'ADD_CLIENTS' THEN
      RETURN carm_internal.group_add_clients(g, v_clients, p_actor, p_request, p_now);
    WHEN 'REMOVE_CLIENTS' THEN
      RETURN carm_internal.group_remove_clients(g, v_clients, p_actor, p_request);
    WHEN 'ASSIGN_EMPLOYEES' THEN
      RETURN carm_internal.group_assign(g, v_users, carm_internal.group_role(p_payload->>'role'), p_actor, p_request);
    WHEN 'UNASSIGN_EMPLOYEES' THEN
      RETURN carm_internal.group_unassign(g, v_users, p_actor, p_request);
    WHEN 'DELETE_GROUP' THEN
      RETURN carm_internal.group_delete(g, p_actor, p_request);
    ELSE
      RAISE EXCEPTION 'unexpected group operation "%"', p_operation USING ERRCODE = 'XX000';
  END CASE;
END
$$;
COMMENT ON FUNCTION carm_internal.group_apply(carm.client_group, text, jsonb, bigint, bigint, timestamptz) IS
  'Internal: applies one group operation for its initiator';

-- Lock order, step 1: the active relationships of the provider with the
-- clients an ADD_CLIENTS relies on (G3), FOR SHARE, by id — before the group
-- row is locked.  p_nowait (maintenance) raises 55P03 instead of waiting, and
-- takes them FOR NO KEY UPDATE: every other transaction adding one of these
-- clients to a group holds its relationship FOR SHARE, so maintenance, once
-- it has the relationships, never waits for another's uncommitted
-- group_client row (UNIQUE (provider_id, client_id), G3).
CREATE OR REPLACE FUNCTION carm_internal.group_lock_relationships(p_provider bigint, p_operation text,
                                                                 p_payload jsonb, p_nowait boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_operation <> 'ADD_CLIENTS' THEN
    RETURN;
  END IF;
  IF p_nowait THEN
    PERFORM FROM carm.relationship r
    WHERE r.provider_id = p_provider AND r.status = 'active'
      AND r.client_id IN (SELECT b.id FROM carm.business b
                          WHERE b.bn9 IN (SELECT jsonb_array_elements_text(p_payload->'clients')))
    ORDER BY r.id
    FOR NO KEY UPDATE OF r NOWAIT;
  ELSE
    PERFORM FROM carm.relationship r
    WHERE r.provider_id = p_provider AND r.status = 'active'
      AND r.client_id IN (SELECT b.id FROM carm.business b
                          WHERE b.bn9 IN (SELECT jsonb_array_elements_text(p_payload->'clients')))
    ORDER BY r.id
    FOR SHARE OF r;
  END IF;
END
$$;
COMMENT ON FUNCTION carm_internal.group_lock_relationships(bigint, text, jsonb, boolean) IS
  'Internal: lock order step 1 for a group operation, the relationships an ADD_CLIENTS relies on';

-- Maintenance's step 3 for a deferred request, after its relationships and
-- its group (R12): every other row the operation writes that an API call
-- may hold without the group's lock, NOWAIT (55P03: the request stays
-- PENDING for the next run).  Those are the rows a promotion to BAM (E11) or
-- a removal (E8) writes holding only the employee's row: the employees an
-- ASSIGN_EMPLOYEES checks (G4, FOR SHARE, as group_assign does), the group
-- assignments an UNASSIGN_EMPLOYEES or a DELETE_GROUP deletes, and the
-- individual assignments (R7) a REMOVE_CLIENTS or a DELETE_GROUP revokes
-- (G7).  The group's own rows (group_client, group_employee inserts) change
-- only under the group's lock, which the caller holds.
CREATE OR REPLACE FUNCTION carm_internal.group_lock_rows_nowait(p_group bigint, p_provider bigint,
                                                               p_operation text, p_payload jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_users bigint[] := ARRAY(SELECT x::bigint
                            FROM jsonb_array_elements_text(coalesce(p_payload->'user_ids', '[]')) x);
  v_clients bigint[] := ARRAY(SELECT b.id FROM carm.business b
                              WHERE b.bn9 IN (SELECT jsonb_array_elements_text(coalesce(p_payload->'clients', '[]'))));
BEGIN
  IF p_operation = 'ASSIGN_EMPLOYEES' THEN
    PERFORM FROM carm.employee e
    WHERE e.business_id = p_provider AND e.user_id = ANY (v_users)
    ORDER BY e.user_id
    FOR SHARE NOWAIT;
  END IF;
  IF p_operation IN ('UNASSIGN_EMPLOYEES', 'DELETE_GROUP') THEN
    PERFORM FROM carm.group_employee ge
    WHERE ge.group_id = p_group AND (p_operation = 'DELETE_GROUP' OR ge.user_id = ANY (v_users))
    ORDER BY ge.user_id
    FOR UPDATE NOWAIT;
  END IF;
  IF p_operation IN ('REMOVE_CLIENTS', 'DELETE_GROUP') THEN
    PERFORM FROM carm.client_assignment a
    JOIN carm.relationship r ON r.id = a.relationship_id
    WHERE r.provider_id = p_provider AND r.status = 'active'
      AND r.client_id IN (SELECT gc.client_id FROM carm.group_client gc WHERE gc.group_id = p_group)
      AND (p_operation = 'DELETE_GROUP' OR r.client_id = ANY (v_clients))
      AND a.user_id IN (SELECT ge.user_id FROM carm.group_employee ge WHERE ge.group_id = p_group)
    ORDER BY a.relationship_id, a.user_id
    FOR UPDATE OF a NOWAIT;
  END IF;
END
$$;
COMMENT ON FUNCTION carm_internal.group_lock_rows_nowait(bigint, bigint, text, jsonb) IS
  'Internal (R12): locks NOWAIT the employee and assignment rows a deferred group request writes that API calls may hold';

-- The common path of the five operations on an existing group (G9): the
-- arguments' form has been checked by the caller; here the group and the
-- actor's permission are checked, then the operation is either queued
-- (deferred: PENDING, applied by carm_internal.process_group_requests) or applied
-- and recorded COMPLETED in the caller's transaction.  Returns the request id.
CREATE OR REPLACE FUNCTION carm_internal.group_request(p_group bigint, p_operation text, p_payload jsonb,
                                    p_items integer, p_deferred boolean)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clock timestamptz;
  v_actor bigint := carm_internal.require_active_actor();
  g carm.client_group;
  v_request bigint;
BEGIN
  PERFORM carm_internal.not_null(p_deferred, 'deferred');
  -- A deferred request on a deleted group could only fail: refused now (55000).
  g := carm_internal.group_row(p_group, v_actor, false);
  IF NOT p_deferred THEN
    -- lock order: the relationships the operation relies on, then the group
    PERFORM carm_internal.group_lock_relationships(g.provider_id, p_operation, p_payload, false);
    g := carm_internal.group_row(p_group, v_actor, true);
  END IF;
  INSERT INTO carm.group_request (provider_id, group_id, group_name, operation, initiator,
                                  status, item_count, payload, started_at)
  VALUES (g.provider_id, g.id, g.name, p_operation, v_actor,
          CASE WHEN p_deferred THEN 'PENDING' ELSE 'PROCESSING' END, p_items, p_payload,
          CASE WHEN p_deferred THEN NULL ELSE clock_timestamp() END)
  RETURNING id INTO v_request;

  IF p_deferred THEN
    PERFORM carm_internal.group_audit(v_actor, 'group_request_queued', g,
              jsonb_build_object('request_id', v_request, 'operation', p_operation,
                                 'items', p_items));
    RETURN v_request;
  END IF;

  PERFORM carm_internal.group_apply(g, p_operation, p_payload, v_actor, v_request, statement_timestamp());
  v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = v_clock
  WHERE q.id = v_request;
  RETURN v_request;
END
$$;
COMMENT ON FUNCTION carm_internal.group_request(bigint, text, jsonb, integer, boolean) IS
  'Internal: G9, queues (deferred) or applies and records one operation on a group';
