-- §7 client groups (G1-G9) and the request-processing table (guide §6.5).
--
-- A group is a provider's named set of clients; its employees hold a default
-- proxy role on every client of the group.  Group access is derived by the
-- resolver (carm_internal.grants, G4/G5), so adding or removing clients writes one
-- group_client row per client and never fans out per employee or program.
-- Every operation is set-based (unnest, one availability query that finds all
-- offenders), so 10,000 clients with 500 employees stay well under a second.
--
-- Layout: validation helpers; the _group_* functions that apply one
-- operation for a given initiator (shared by immediate calls and by deferred
-- processing); the public API; deferred processing (G9); listings.
--
-- Concurrency: every operation on a group takes FOR NO KEY UPDATE on its
-- client_group row, so operations on one group (immediate or deferred) run
-- one after the other, while the foreign keys of new group_request rows
-- (FOR KEY SHARE) never wait.  Availability (G3) and employee checks (G4)
-- lock the relationship and employee rows they rely on FOR SHARE, so an
-- expiry cascade or an employee removal running concurrently waits for us and
-- then sees, and deletes, what we inserted.
--
-- Lock order (README "Concurrency"), the same in every function, so that
-- group operations, relationship changes and maintenance never deadlock:
--   1. relationship rows, by id        (relationship calls; ADD_CLIENTS)
--   2. client_group rows, by id        (group operations; the R9 cascade)
--   3. employee rows                   (G4, R7, E8)
--   4. the rows hanging off them: group_client, group_employee,
--      client_assignment, group_request
-- So an ADD_CLIENTS locks the relationships it relies on before the group
-- (carm_internal.group_lock_relationships), and the expiry cascade
-- (carm_internal.close_relationships) locks the groups of the clients it
-- removes before touching their rows.  Maintenance never waits for rows 1
-- and 2 (SKIP LOCKED / NOWAIT): a busy group or relationship delays only its
-- own request, which stays PENDING for the next run.

-- Validation helpers ---------------------------------------------------------

-- G1: only a BAM of a service provider manages its groups.  A business that
-- is not a service provider is refused with 42501 as well: the rule is one of
-- permission ("only a BAM of a service provider"), and a caller handling
-- 42501 needs no second case.
CREATE OR REPLACE FUNCTION carm_internal.require_group_manager(p_provider carm.business, p_user bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT (p_provider.kinds && ARRAY['CUSTOMS_BROKER','TRADE_CONSULTANT']) THEN
    RAISE EXCEPTION 'business % is not a service provider', p_provider.bn9
      USING ERRCODE = '42501',
            DETAIL = 'Client groups belong to customs brokers and trade consultants (G1).';
  END IF;
  IF NOT EXISTS (SELECT FROM carm.employee e
                 JOIN carm.app_user u ON u.id = e.user_id AND u.active
                 WHERE e.business_id = p_provider.id AND e.user_id = p_user AND e.role = 'BAM') THEN
    RAISE EXCEPTION 'permission denied: only a business account manager of % manages its client groups',
                    p_provider.bn9
      USING ERRCODE = '42501';
  END IF;
END
$$;
COMMENT ON FUNCTION carm_internal.require_group_manager(carm.business, bigint) IS
  'Internal: G1, raises 42501 unless the user is a BAM of this service provider';

-- §10: is the user associated with the group, i.e. an employee (any role)
-- of its provider?  Others are told the group does not exist.
CREATE OR REPLACE FUNCTION carm_internal.group_associated(g carm.client_group, p_user bigint)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM carm.employee e WHERE e.business_id = g.provider_id AND e.user_id = p_user);
$$;
COMMENT ON FUNCTION carm_internal.group_associated(carm.client_group, bigint) IS
  'Internal (§10): whether the user is an employee of the group''s provider';

-- A group by id for an operation by p_user: P0002 when unknown, 42501 unless
-- p_user is a BAM of its provider (G1), 55000 when deleted (G8).  p_lock takes
-- the row lock that serialises operations on one group; it is taken after the
-- permission check, so an outsider cannot make the group's managers wait.
-- §10 (rev. 1.1): a user who is no employee of the group's provider gets the
-- answer an unknown id gets (P0002), never the provider's number.
CREATE OR REPLACE FUNCTION carm_internal.group_row(p_group bigint, p_user bigint, p_lock boolean)
RETURNS carm.client_group
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group;
  b carm.business;
BEGIN
  PERFORM carm_internal.not_null(p_group, 'group_id');
  SELECT * INTO g FROM carm.client_group cg WHERE cg.id = p_group;
  IF NOT FOUND OR NOT carm_internal.group_associated(g, p_user) THEN
    RAISE EXCEPTION 'client group % does not exist', p_group USING ERRCODE = 'P0002';
  END IF;
  SELECT * INTO b FROM carm.business WHERE id = g.provider_id;
  PERFORM carm_internal.require_group_manager(b, p_user);
  IF p_lock THEN
    SELECT * INTO g FROM carm.client_group cg WHERE cg.id = p_group FOR NO KEY UPDATE;
  END IF;
  IF g.deleted_at IS NOT NULL THEN
    RAISE EXCEPTION 'client group "%" was deleted', g.name
      USING ERRCODE = '55000',
            HINT = 'A deleted group cannot be changed; create a group with another name (G8).';
  END IF;
  RETURN g;
END
$$;
COMMENT ON FUNCTION carm_internal.group_row(bigint, bigint, boolean) IS
  'Internal: a live client group the user manages (P0002 unknown, 42501 G1, 55000 deleted), optionally locked';

-- "a, b, c" — or the first p_max items and how many more, so that an error
-- about huge input stays readable.
CREATE OR REPLACE FUNCTION carm_internal.name_list(p_items text[], p_max integer DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_max IS NULL OR cardinality(p_items) <= p_max
              THEN array_to_string(p_items, ', ')
              ELSE array_to_string(p_items[1:p_max], ', ')
                   || format(' and %s more', cardinality(p_items) - p_max) END;
$$;
COMMENT ON FUNCTION carm_internal.name_list(text[], integer) IS
  'Internal: a list for an error message, cut after p_max items';

-- The clients argument: every element a well-formed BN9 (22023, naming the
-- malformed ones), duplicates dropped, sorted.  NULL is 22004; an empty list
-- is refused unless p_allow_empty (create_client_group's default).
CREATE OR REPLACE FUNCTION carm_internal.bn9_list(p_bn9s text[], p_allow_empty boolean DEFAULT false) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text[];
BEGIN
  PERFORM carm_internal.not_null(p_bn9s, 'clients');
  IF cardinality(p_bn9s) = 0 AND NOT p_allow_empty THEN
    RAISE EXCEPTION 'clients must not be empty' USING ERRCODE = '22023';
  END IF;
  SELECT array_agg(coalesce(quote_literal(left(x, 32)), 'NULL') ORDER BY o) INTO v_bad
  FROM unnest(p_bn9s) WITH ORDINALITY AS t(x, o)
  WHERE x IS NULL OR NOT carm_internal.bn9_is_valid(x);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'invalid business numbers in clients: %', carm_internal.name_list(v_bad, 20)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT x FROM unnest(p_bn9s) x ORDER BY x);
END
$$;
COMMENT ON FUNCTION carm_internal.bn9_list(text[], boolean) IS
  'Internal: the checked, distinct, sorted BN9 list of a group operation';

-- The user_ids argument: no NULL element, not empty (22023), distinct, sorted.
CREATE OR REPLACE FUNCTION carm_internal.user_list(p_users bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.not_null(p_users, 'user_ids');
  IF cardinality(p_users) = 0 THEN
    RAISE EXCEPTION 'user_ids must not be empty' USING ERRCODE = '22023';
  END IF;
  IF array_position(p_users, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'user_ids must not contain NULL' USING ERRCODE = '22023';
  END IF;
  RETURN ARRAY(SELECT DISTINCT u FROM unnest(p_users) u ORDER BY u);
END
$$;
COMMENT ON FUNCTION carm_internal.user_list(bigint[]) IS
  'Internal: the checked, distinct, sorted user id list of a group operation';

-- G4: a group's default role.
CREATE OR REPLACE FUNCTION carm_internal.group_role(p_role text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm_internal.role_name(p_role, 'group');
$$;
COMMENT ON FUNCTION carm_internal.group_role(text) IS
  'Internal: G4, checks a group''s default role (22023)';

-- One audit event of a group operation, attributed to its initiator, also
-- when maintenance applies a deferred request.
CREATE OR REPLACE FUNCTION carm_internal.group_audit(p_actor bigint, p_event text, g carm.client_group,
                                  p_details jsonb)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm_internal.audit(p_event, g.provider_id, NULL, NULL, NULL, g.id, p_details, p_actor);
$$;
COMMENT ON FUNCTION carm_internal.group_audit(bigint, text, carm.client_group, jsonb) IS
  'Internal: the summary audit event of a group operation (one pg_notify per operation)';

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
                     AND r.status = 'active'
                     AND (r.expires_at IS NULL OR r.expires_at > p_now)) AS related,
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
      SET role = excluded.role, assigned_at = now()
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
-- row is locked.  p_nowait (maintenance) raises 55P03 instead of waiting.
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
    FOR SHARE OF r NOWAIT;
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

  PERFORM carm_internal.group_apply(g, p_operation, p_payload, v_actor, v_request, now());
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = clock_timestamp()
  WHERE q.id = v_request;
  RETURN v_request;
END
$$;
COMMENT ON FUNCTION carm_internal.group_request(bigint, text, jsonb, integer, boolean) IS
  'Internal: G9, queues (deferred) or applies and records one operation on a group';

-- Public API -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.create_client_group(provider_bn9 text, name text, clients text[] DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_name text := carm_internal.not_blank(name, 'group name', 200);
  v_clients text[] := carm_internal.bn9_list(clients, true);
  b carm.business := carm_internal.business(provider_bn9);
  g carm.client_group;
  v_taken carm.client_group;
  v_request bigint;
BEGIN
  PERFORM carm_internal.require_group_manager(b, v_actor);                       -- G1

  -- G2: unique within the provider, ignoring case and surrounding spaces,
  -- deleted groups included (the UNIQUE (provider_id, name_key) constraint
  -- decides under concurrency; this gives the readable error).
  SELECT * INTO v_taken FROM carm.client_group cg
  WHERE cg.provider_id = b.id AND cg.name_key = lower(v_name);
  IF FOUND THEN
    RAISE EXCEPTION 'client group name "%" is already used by provider %', left(v_name, 32), b.bn9
      USING ERRCODE = '23505',
            DETAIL = format('Group %s is named "%s"%s.', v_taken.id, left(v_taken.name, 32),
                            CASE WHEN v_taken.deleted_at IS NOT NULL THEN ' (deleted)' ELSE '' END),
            HINT = 'Names are compared ignoring case and surrounding spaces, and stay taken after the group is deleted (G2).';
  END IF;
  BEGIN
    INSERT INTO carm.client_group (provider_id, name, created_by)
    VALUES (b.id, v_name, v_actor)
    RETURNING * INTO g;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'client group name "%" is already used by provider %', left(v_name, 32), b.bn9
      USING ERRCODE = '23505', DETAIL = 'Another transaction created it concurrently.';
  END;

  INSERT INTO carm.group_request (provider_id, group_id, group_name, operation, initiator,
                                  status, item_count, payload, started_at)
  VALUES (b.id, g.id, g.name, 'CREATE_GROUP', v_actor, 'PROCESSING', cardinality(v_clients),
          jsonb_build_object('clients', to_jsonb(v_clients)), clock_timestamp())
  RETURNING id INTO v_request;
  PERFORM carm_internal.group_audit(v_actor, 'client_group_created', g,
            jsonb_build_object('request_id', v_request, 'name', g.name,
                               'clients', cardinality(v_clients)));
  PERFORM carm_internal.group_add_clients(g, v_clients, v_actor, v_request, now());   -- G3
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = clock_timestamp()
  WHERE q.id = v_request;
  RETURN g.id;
END
$$;
COMMENT ON FUNCTION carm.create_client_group(text, text, text[]) IS
  'G1-G3: a provider BAM creates a client group, optionally with available clients; returns the group id';

CREATE OR REPLACE FUNCTION carm.add_group_clients(group_id bigint, clients text[], deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();    -- before anything else (§2)
  v_clients text[] := carm_internal.bn9_list(clients);
BEGIN
  RETURN carm_internal.group_request(group_id, 'ADD_CLIENTS', jsonb_build_object('clients', to_jsonb(v_clients)),
                             cardinality(v_clients), deferred);
END
$$;
COMMENT ON FUNCTION carm.add_group_clients(bigint, text[], boolean) IS
  'G3/G6/G9: adds available clients to a group (all or nothing), now or deferred; returns the request id';

CREATE OR REPLACE FUNCTION carm.remove_group_clients(group_id bigint, clients text[], deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();    -- before anything else (§2)
  v_clients text[] := carm_internal.bn9_list(clients);
BEGIN
  RETURN carm_internal.group_request(group_id, 'REMOVE_CLIENTS', jsonb_build_object('clients', to_jsonb(v_clients)),
                             cardinality(v_clients), deferred);
END
$$;
COMMENT ON FUNCTION carm.remove_group_clients(bigint, text[], boolean) IS
  'G7/G9: removes clients from a group, revoking the group employees'' access to them (cannot be undone); returns the request id';

CREATE OR REPLACE FUNCTION carm.assign_group_employees(group_id bigint, user_ids bigint[], role text,
                                            deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();    -- before anything else (§2)
  v_users bigint[] := carm_internal.user_list(user_ids);
  v_role text := carm_internal.group_role(role);
BEGIN
  RETURN carm_internal.group_request(group_id, 'ASSIGN_EMPLOYEES',
                             jsonb_build_object('user_ids', to_jsonb(v_users), 'role', v_role),
                             cardinality(v_users), deferred);
END
$$;
COMMENT ON FUNCTION carm.assign_group_employees(bigint, bigint[], text, boolean) IS
  'G4/G9: assigns provider employees (not BAMs) to a group with a default role PPAM, PEDITOR or PVIEWER; returns the request id';

CREATE OR REPLACE FUNCTION carm.unassign_group_employees(group_id bigint, user_ids bigint[],
                                              deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();    -- before anything else (§2)
  v_users bigint[] := carm_internal.user_list(user_ids);
BEGIN
  RETURN carm_internal.group_request(group_id, 'UNASSIGN_EMPLOYEES', jsonb_build_object('user_ids', to_jsonb(v_users)),
                             cardinality(v_users), deferred);
END
$$;
COMMENT ON FUNCTION carm.unassign_group_employees(bigint, bigint[], boolean) IS
  'G9: removes employees from a group (their individual client assignments stay); returns the request id';

CREATE OR REPLACE FUNCTION carm.delete_client_group(group_id bigint, deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();    -- before anything else (§2)
  v_items integer;
BEGIN
  SELECT count(*) INTO v_items FROM carm.group_client gc WHERE gc.group_id = delete_client_group.group_id;
  RETURN carm_internal.group_request(group_id, 'DELETE_GROUP', '{}', v_items, deferred);
END
$$;
COMMENT ON FUNCTION carm.delete_client_group(bigint, boolean) IS
  'G8/G9: deletes a group: its clients become available, its employees lose their access to them, its name stays taken; returns the request id';

-- Deferred processing (G9, R12) -----------------------------------------------

-- Applies the PENDING requests created up to as_of, oldest first, each
-- atomically in its own subtransaction and as its initiator would: the
-- initiator must still be a BAM of the provider, the group still live and the
-- clients still available at apply time.  A request that fails is marked
-- FAILED with the reason and leaves nothing behind; its initiator is notified.
--
-- A busy group delays only itself: the relationships and the group a request
-- needs are locked NOWAIT (in the lock order of the header), and a transient
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
  UPDATE carm.group_request r SET status = 'PROCESSING', started_at = clock_timestamp()
  WHERE r.id = ANY (v_ids);

  FOREACH v_id IN ARRAY v_ids LOOP
    SELECT * INTO q FROM carm.group_request r WHERE r.id = v_id;
    BEGIN
      -- G1 at apply time, with the reason (the initiator may have left)
      PERFORM carm_internal.require_group_manager(b, q.initiator)
      FROM carm.business b WHERE b.id = q.provider_id;
      -- lock order, never waiting: relationships, then the group
      PERFORM carm_internal.group_lock_relationships(q.provider_id, q.operation, q.payload, true);
      PERFORM FROM carm.client_group cg WHERE cg.id = q.group_id FOR NO KEY UPDATE NOWAIT;
      g := carm_internal.group_row(q.group_id, q.initiator, true);
      PERFORM carm_internal.group_apply(g, q.operation, q.payload, q.initiator, q.id, as_of);
      UPDATE carm.group_request r SET status = 'COMPLETED', finished_at = clock_timestamp()
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
      UPDATE carm.group_request r
      SET status = 'FAILED', finished_at = clock_timestamp(),
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

-- Listings -------------------------------------------------------------------

-- The provider for a listing: its BAMs (G1) or carm_admin (p_admin: the
-- listing's admin variant, §2).
CREATE OR REPLACE FUNCTION carm_internal.group_listing_provider(p_bn9 text, p_admin boolean) RETURNS carm.business
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm_internal.business(p_bn9);
BEGIN
  IF NOT p_admin THEN
    PERFORM carm_internal.require_group_manager(b, carm_internal.require_active_actor());
  END IF;
  RETURN b;
END
$$;
COMMENT ON FUNCTION carm_internal.group_listing_provider(text, boolean) IS
  'Internal: the provider of a group listing, for its BAMs (G1) or carm_admin';

CREATE OR REPLACE FUNCTION carm_internal.client_groups(provider_bn9 text, p_admin boolean)
RETURNS TABLE (group_id bigint, name text, clients bigint, employees bigint,
               created_by bigint, created_at timestamptz, deleted_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm_internal.group_listing_provider(provider_bn9, p_admin);
BEGIN
  RETURN QUERY
    SELECT g.id, g.name,
           (SELECT count(*) FROM carm.group_client gc WHERE gc.group_id = g.id),
           (SELECT count(*) FROM carm.group_employee ge WHERE ge.group_id = g.id),
           g.created_by, g.created_at, g.deleted_at
    FROM carm.client_group g
    WHERE g.provider_id = b.id
    ORDER BY g.name_key, g.id;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.client_groups(provider_bn9 text)
RETURNS TABLE (group_id bigint, name text, clients bigint, employees bigint,
               created_by bigint, created_at timestamptz, deleted_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.client_groups_admin(provider_bn9);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.client_groups_actor(provider_bn9);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.client_groups_admin(provider_bn9 text)
RETURNS TABLE (group_id bigint, name text, clients bigint, employees bigint,
               created_by bigint, created_at timestamptz, deleted_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.client_groups(provider_bn9, true);
END
$$;
COMMENT ON FUNCTION carm_internal.client_groups_admin(text) IS
  'Internal: carm.client_groups() for carm_admin (any provider); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.client_groups_actor(provider_bn9 text)
RETURNS TABLE (group_id bigint, name text, clients bigint, employees bigint,
               created_by bigint, created_at timestamptz, deleted_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.client_groups(provider_bn9, false);
END
$$;
COMMENT ON FUNCTION carm_internal.client_groups_actor(text) IS
  'Internal: carm.client_groups() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.client_groups(text) IS
  'Client groups of a provider, deleted ones included (their names stay taken, G2); its BAMs or carm_admin';

CREATE OR REPLACE FUNCTION carm_internal.available_clients(provider_bn9 text, p_admin boolean)
RETURNS TABLE (client text, legal_name text, relationship_id bigint, access_type text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm_internal.group_listing_provider(provider_bn9, p_admin);
BEGIN
  RETURN QUERY
    SELECT c.bn9, c.legal_name, r.id, r.access_type, r.expires_at
    FROM carm.relationship r
    JOIN carm.business c ON c.id = r.client_id
    WHERE r.provider_id = b.id AND r.status = 'active'
      AND (r.expires_at IS NULL OR r.expires_at > now())
      AND NOT EXISTS (SELECT FROM carm.group_client gc
                      WHERE gc.provider_id = b.id AND gc.client_id = r.client_id)
    ORDER BY c.bn9;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.available_clients(provider_bn9 text)
RETURNS TABLE (client text, legal_name text, relationship_id bigint, access_type text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.available_clients_admin(provider_bn9);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.available_clients_actor(provider_bn9);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.available_clients_admin(provider_bn9 text)
RETURNS TABLE (client text, legal_name text, relationship_id bigint, access_type text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.available_clients(provider_bn9, true);
END
$$;
COMMENT ON FUNCTION carm_internal.available_clients_admin(text) IS
  'Internal: carm.available_clients() for carm_admin (any provider); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.available_clients_actor(provider_bn9 text)
RETURNS TABLE (client text, legal_name text, relationship_id bigint, access_type text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.available_clients(provider_bn9, false);
END
$$;
COMMENT ON FUNCTION carm_internal.available_clients_actor(text) IS
  'Internal: carm.available_clients() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.available_clients(text) IS
  'G3: clients of a provider that can join one of its groups (active relationship, in no group); its BAMs or carm_admin';

CREATE OR REPLACE FUNCTION carm_internal.group_requests(provider_bn9 text, p_admin boolean)
RETURNS TABLE (request_id bigint, operation text, group_id bigint, group_name text,
               initiator bigint, initiator_name text, status text, item_count integer,
               created_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm_internal.group_listing_provider(provider_bn9, p_admin);
BEGIN
  RETURN QUERY
    SELECT q.id, q.operation, q.group_id, q.group_name, q.initiator, u.full_name, q.status,
           q.item_count, q.created_at, q.started_at, q.finished_at, q.error
    FROM carm.group_request q
    LEFT JOIN carm.app_user u ON u.id = q.initiator
    WHERE q.provider_id = b.id
    ORDER BY q.id;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.group_requests(provider_bn9 text)
RETURNS TABLE (request_id bigint, operation text, group_id bigint, group_name text,
               initiator bigint, initiator_name text, status text, item_count integer,
               created_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.group_requests_admin(provider_bn9);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.group_requests_actor(provider_bn9);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.group_requests_admin(provider_bn9 text)
RETURNS TABLE (request_id bigint, operation text, group_id bigint, group_name text,
               initiator bigint, initiator_name text, status text, item_count integer,
               created_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.group_requests(provider_bn9, true);
END
$$;
COMMENT ON FUNCTION carm_internal.group_requests_admin(text) IS
  'Internal: carm.group_requests() for carm_admin (any provider); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.group_requests_actor(provider_bn9 text)
RETURNS TABLE (request_id bigint, operation text, group_id bigint, group_name text,
               initiator bigint, initiator_name text, status text, item_count integer,
               created_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.group_requests(provider_bn9, false);
END
$$;
COMMENT ON FUNCTION carm_internal.group_requests_actor(text) IS
  'Internal: carm.group_requests() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.group_requests(text) IS
  'G9: the request-processing table of a provider (system id, operation, group, initiator, status, items, times, error); its BAMs or carm_admin';

-- The group for a listing by id: its provider's BAMs or carm_admin; a
-- deleted group lists empty (G8 removed its members).
CREATE OR REPLACE FUNCTION carm_internal.group_listing(p_group bigint, p_admin boolean) RETURNS carm.client_group
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group;
  b carm.business;
  v_actor bigint;
BEGIN
  PERFORM carm_internal.not_null(p_group, 'group_id');
  SELECT * INTO g FROM carm.client_group cg WHERE cg.id = p_group;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'client group % does not exist', p_group USING ERRCODE = 'P0002';
  END IF;
  IF NOT p_admin THEN
    v_actor := carm_internal.require_active_actor();
    IF NOT carm_internal.group_associated(g, v_actor) THEN                  -- §10
      RAISE EXCEPTION 'client group % does not exist', p_group USING ERRCODE = 'P0002';
    END IF;
    SELECT * INTO b FROM carm.business WHERE id = g.provider_id;
    PERFORM carm_internal.require_group_manager(b, v_actor);
  END IF;
  RETURN g;
END
$$;
COMMENT ON FUNCTION carm_internal.group_listing(bigint, boolean) IS
  'Internal: the group of a member listing, for its provider''s BAMs (G1) or carm_admin';

CREATE OR REPLACE FUNCTION carm_internal.group_clients(group_id bigint, p_admin boolean)
RETURNS TABLE (client text, legal_name text, added_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group := carm_internal.group_listing(group_id, p_admin);
BEGIN
  RETURN QUERY
    SELECT c.bn9, c.legal_name, gc.added_at
    FROM carm.group_client gc JOIN carm.business c ON c.id = gc.client_id
    WHERE gc.group_id = g.id
    ORDER BY c.bn9;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.group_clients(group_id bigint)
RETURNS TABLE (client text, legal_name text, added_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.group_clients_admin(group_id);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.group_clients_actor(group_id);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.group_clients_admin(group_id bigint)
RETURNS TABLE (client text, legal_name text, added_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.group_clients(group_id, true);
END
$$;
COMMENT ON FUNCTION carm_internal.group_clients_admin(bigint) IS
  'Internal: carm.group_clients() for carm_admin (any group); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.group_clients_actor(group_id bigint)
RETURNS TABLE (client text, legal_name text, added_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.group_clients(group_id, false);
END
$$;
COMMENT ON FUNCTION carm_internal.group_clients_actor(bigint) IS
  'Internal: carm.group_clients() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.group_clients(bigint) IS
  'The clients of a client group; its provider''s BAMs or carm_admin';

CREATE OR REPLACE FUNCTION carm_internal.group_employees(group_id bigint, p_admin boolean)
RETURNS TABLE (user_id bigint, full_name text, role text, assigned_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group := carm_internal.group_listing(group_id, p_admin);
BEGIN
  RETURN QUERY
    SELECT u.id, u.full_name, ge.role, ge.assigned_at
    FROM carm.group_employee ge JOIN carm.app_user u ON u.id = ge.user_id
    WHERE ge.group_id = g.id
    ORDER BY u.id;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.group_employees(group_id bigint)
RETURNS TABLE (user_id bigint, full_name text, role text, assigned_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.group_employees_admin(group_id);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.group_employees_actor(group_id);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.group_employees_admin(group_id bigint)
RETURNS TABLE (user_id bigint, full_name text, role text, assigned_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.group_employees(group_id, true);
END
$$;
COMMENT ON FUNCTION carm_internal.group_employees_admin(bigint) IS
  'Internal: carm.group_employees() for carm_admin (any group); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.group_employees_actor(group_id bigint)
RETURNS TABLE (user_id bigint, full_name text, role text, assigned_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.group_employees(group_id, false);
END
$$;
COMMENT ON FUNCTION carm_internal.group_employees_actor(bigint) IS
  'Internal: carm.group_employees() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.group_employees(bigint) IS
  'The employees of a client group with their default roles (G4); its provider''s BAMs or carm_admin';

-- Privileges -----------------------------------------------------------------

REVOKE ALL ON FUNCTION carm.create_client_group(text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_group_clients(bigint, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.remove_group_clients(bigint, text[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.assign_group_employees(bigint, bigint[], text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.unassign_group_employees(bigint, bigint[], boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.delete_client_group(bigint, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.client_groups(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.available_clients(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.group_requests(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.group_clients(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.group_employees(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  carm.create_client_group(text, text, text[]),
  carm.add_group_clients(bigint, text[], boolean),
  carm.remove_group_clients(bigint, text[], boolean),
  carm.assign_group_employees(bigint, bigint[], text, boolean),
  carm.unassign_group_employees(bigint, bigint[], boolean),
  carm.delete_client_group(bigint, boolean),
  carm.client_groups(text),
  carm.available_clients(text),
  carm.group_requests(text),
  carm.group_clients(bigint),
  carm.group_employees(bigint)
TO carm_gateway;
GRANT EXECUTE ON FUNCTION
  carm.client_groups(text),
  carm.available_clients(text),
  carm.group_requests(text),
  carm.group_clients(bigint),
  carm.group_employees(bigint)
TO carm_admin;

-- §2: the listings' admin variants for carm_admin only, their actor variants
-- for whoever may call the listing.
REVOKE ALL ON FUNCTION
  carm_internal.client_groups_admin(text),
  carm_internal.available_clients_admin(text),
  carm_internal.group_requests_admin(text),
  carm_internal.group_clients_admin(bigint),
  carm_internal.group_employees_admin(bigint),
  carm_internal.client_groups_actor(text),
  carm_internal.available_clients_actor(text),
  carm_internal.group_requests_actor(text),
  carm_internal.group_clients_actor(bigint),
  carm_internal.group_employees_actor(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  carm_internal.client_groups_admin(text),
  carm_internal.available_clients_admin(text),
  carm_internal.group_requests_admin(text),
  carm_internal.group_clients_admin(bigint),
  carm_internal.group_employees_admin(bigint)
TO carm_admin;
GRANT EXECUTE ON FUNCTION
  carm_internal.client_groups_actor(text),
  carm_internal.available_clients_actor(text),
  carm_internal.group_requests_actor(text),
  carm_internal.group_clients_actor(bigint),
  carm_internal.group_employees_actor(bigint)
TO carm_gateway, carm_admin;
