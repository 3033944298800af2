-- §5 business relationships (R1-R11): requests, decisions, edits, ending,
-- the expiry cascade (R9) and the provider-side assignment of employees to
-- clients (R7).
--
-- Roles derived from a relationship (PBAM/PPAM of provider BAMs, assigned
-- proxy roles, EXPIRED) are never stored: carm_internal.grants() derives them from
-- the relationship row, and the C check compares expires_at with the
-- time of the statement (statement_timestamp(), R9 per statement).  So these functions only change facts, and an expiry is
-- exact without any sweep; the cascade below just brings the stored status
-- in line and removes what the relationship carried (R9, R10).
--
-- Every function that touches a (provider, client) pair first settles it
-- (carm_internal.settle_pair), so that an API call never acts on a relationship
-- that has already expired by time: a new request after expiry sees the old
-- one as expired, an approval or an edit of an expired one is refused.

-- Internal helpers ------------------------------------------------------------

-- Is a relationship in force at p_at (R9)?  Active and not expired by time,
-- whether or not the expiry cascade has run: the one statement of the rule
-- in SQL (the C check applies it to the resolver's rows, cache.c).  Callers
-- pass statement_timestamp() (R9 per statement) or the time a run acts as of.
-- Inlined by the planner (one SQL expression, no SET clause), so its
-- operators are schema-qualified instead of pinning search_path.
CREATE OR REPLACE FUNCTION carm_internal.relationship_in_force(p_status text, p_expires_at timestamptz,
                                                              p_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT p_status OPERATOR(pg_catalog.=) 'active'
         AND coalesce(p_expires_at OPERATOR(pg_catalog.>) p_at, true)
$$;

-- Active employees of a business holding one of these roles (notification
-- recipients).
CREATE OR REPLACE FUNCTION carm_internal.rel_staff(p_business bigint, p_roles text[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT coalesce(array_agg(e.user_id ORDER BY e.user_id), '{}')
          FROM carm.employee e
          JOIN carm.app_user u ON u.id = e.user_id AND u.active
          WHERE e.business_id = p_business AND e.role = ANY (p_roles));
END
$$;

-- One notification per distinct user, except the one who acted (§9).
CREATE OR REPLACE FUNCTION carm_internal.rel_notify(p_users bigint[], p_event text, p_message text,
                                 p_audit bigint, p_except bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  SELECT s.u, p_event, p_message, p_audit
  FROM (SELECT DISTINCT x AS u FROM unnest(p_users) x
        WHERE x IS NOT NULL AND x IS DISTINCT FROM p_except) s
  ORDER BY s.u;
END
$$;

-- Whether a user is linked to one of these businesses (§10): an employee of
-- it, or holding any role on it through the resolver (a provider's BAM as
-- PBAM/PPAM or EXPIRED, an assigned or group proxy role, a provider PAM's V3
-- read).  A linked actor that may not act on one of the business's objects
-- gets 42501 with the reason (R11 for proxies); an actor with no link gets
-- the answer an unknown id gets (P0002).
CREATE OR REPLACE FUNCTION carm_internal.linked_to(p_user bigint, p_businesses bigint[]) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT FROM carm.employee e
                 WHERE e.business_id = ANY (p_businesses) AND e.user_id = p_user)
      OR EXISTS (SELECT FROM carm_internal.grants(p_user) g
                 WHERE g.business_id = ANY (p_businesses));
$$;
COMMENT ON FUNCTION carm_internal.linked_to(bigint, bigint[]) IS
  'Internal (§10): the user is an employee of one of these businesses or holds a role on one (proxy, EXPIRED, V3): a refusal is 42501, not P0002';

-- A relationship by id for the actor (P0002 when unknown).  §10 (rev. 1.1):
-- an actor with no link to its provider or its client (linked_to) gets the
-- answer an unknown id gets, so ids cannot be probed and the businesses
-- behind a relationship are never named to outsiders.  A linked actor (an
-- employee of either side, or a proxy of either, R11) gets the relationship,
-- and the caller's own rule refuses it with 42501.
CREATE OR REPLACE FUNCTION carm_internal.rel_get(p_id bigint) RETURNS carm.relationship
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v carm.relationship;
  v_actor bigint := carm.actor();
BEGIN
  PERFORM carm_internal.not_null(p_id, 'relationship_id');
  SELECT * INTO v FROM carm.relationship r WHERE r.id = p_id;
  IF NOT FOUND OR NOT carm_internal.linked_to(v_actor, ARRAY[v.provider_id, v.client_id]) THEN
    RAISE EXCEPTION 'business relationship % does not exist', p_id USING ERRCODE = 'P0002';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION carm_internal.rel_get(bigint) IS
  'Internal: a relationship for the actor; an actor linked to neither side gets the unknown-id answer (P0002, §10), a linked one the caller''s 42501';

-- The programs a relationship delegates now: every program of the client
-- for BUSINESS (also ones added later, E12), the listed ones for PROGRAM.
CREATE OR REPLACE FUNCTION carm_internal.rel_delegated(p_rel carm.relationship) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_rel.access_type = 'PROGRAM' THEN p_rel.programs
              ELSE coalesce((SELECT array_agg(p.id ORDER BY p.id) FROM carm.program p
                             WHERE p.business_id = p_rel.client_id), '{}') END;
END
$$;

-- Validates the terms a client gives a relationship (R5, R8) and returns the
-- delegated program ids: BUSINESS takes no program list; PROGRAM a non-empty
-- list of the client's own programs; the expiry is NULL or in the future.
CREATE OR REPLACE FUNCTION carm_internal.rel_terms(p_client bigint, p_type text, p_programs text[],
                                p_see_client boolean, p_see_other boolean,
                                p_expires timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_type IS NULL OR p_type NOT IN ('BUSINESS', 'PROGRAM') THEN
    RAISE EXCEPTION 'invalid access type "%"', left(p_type, 32)
      USING ERRCODE = '22023', HINT = 'The access type is BUSINESS or PROGRAM.';
  END IF;
  IF p_type = 'BUSINESS' AND p_programs IS NOT NULL THEN
    RAISE EXCEPTION 'a BUSINESS relationship takes no program list'
      USING ERRCODE = '22023',
            DETAIL = 'It delegates every program account, also ones added later (R5).',
            HINT = 'Pass programs => NULL, or choose access type PROGRAM.';
  END IF;
  IF p_type = 'PROGRAM' AND p_programs IS NULL THEN
    RAISE EXCEPTION 'a PROGRAM relationship needs a list of program accounts'
      USING ERRCODE = '22023', HINT = 'List the client''s BN15s to delegate (R5).';
  END IF;
  PERFORM carm_internal.not_null(p_see_client, 'see_client_submissions');
  PERFORM carm_internal.not_null(p_see_other, 'see_other_submissions');
  IF p_expires IS NOT NULL AND p_expires <= clock_timestamp() THEN
    RAISE EXCEPTION 'the expiry date must be in the future'
      USING ERRCODE = '22023',
            HINT = 'Pass expires_at => NULL for no expiry; end a relationship with carm.end_relationship().';
  END IF;
  -- 22023 for an empty list or a program of another business
  RETURN carm_internal.programs_of(p_client, p_programs);
END
$$;

-- The R9 cascade for relationships the caller has locked: status expired
-- (by time) or ended (end_relationship); the visibility attributes go off;
-- the relationship's assignments and the client's membership in the
-- provider's groups are deleted; one audit event per relationship; the BAMs
-- of both businesses are notified (except p_except, who acted).
-- Set-based, so maintenance expires thousands of relationships in one
-- statement.  Returns how many relationships it closed.
--
-- Lock order (sql/src/50_groups.sql header, docs/design.md "Concurrency"): the callers hold
-- the relationship rows FOR UPDATE; the client groups the cascade removes
-- clients from are locked next, by id, before any group_client or
-- client_assignment row is touched — as a group operation on those groups
-- locks the group first, so the two never wait for each other's rows.
-- (No client can join one of the provider's groups meanwhile: that needs the
-- relationship FOR SHARE.)
CREATE OR REPLACE FUNCTION carm_internal.close_relationships(p_ids bigint[], p_status text, p_as_of timestamptz,
                                          p_except bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_closed bigint;
BEGIN
  PERFORM FROM carm.client_group g
  WHERE g.id IN (SELECT gc.group_id
                 FROM carm.relationship r
                 JOIN carm.group_client gc ON gc.provider_id = r.provider_id AND gc.client_id = r.client_id
                 WHERE r.id = ANY (p_ids) AND r.status = 'active')
  ORDER BY g.id
  FOR NO KEY UPDATE OF g;

  WITH closed AS (
    UPDATE carm.relationship r
       SET status = p_status,
           closed_at = CASE WHEN p_status = 'expired' THEN r.expires_at ELSE p_as_of END,
           see_client = false,
           see_other = false
      FROM carm.relationship old
     WHERE old.id = r.id AND r.id = ANY (p_ids) AND r.status = 'active'
       AND p_status IN ('expired', 'ended')
    RETURNING r.id, r.provider_id, r.client_id, r.access_type, r.programs, r.expires_at,
              old.see_client, old.see_other
  ),
  assignments AS (                 -- R9, R10: assignments die with the relationship
    DELETE FROM carm.client_assignment a USING closed c
     WHERE a.relationship_id = c.id
    RETURNING a.relationship_id, a.user_id, a.role
  ),
  memberships AS (                 -- R9: the client leaves the provider's group
    DELETE FROM carm.group_client g USING closed c
     WHERE g.provider_id = c.provider_id AND g.client_id = c.client_id
    RETURNING c.id AS relationship_id, g.group_id
  ),
  lost AS (
    SELECT a.relationship_id,
           jsonb_agg(jsonb_build_object('user_id', a.user_id, 'role', a.role)
                     ORDER BY a.user_id) AS assignments
    FROM assignments a GROUP BY a.relationship_id
  ),
  events AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                  relationship_id, group_id, details)
    SELECT carm.actor(), carm_internal.caller_role(), 'relationship_' || p_status,
           c.provider_id, c.client_id, c.id, m.group_id,
           jsonb_build_object('as_of', p_as_of, 'expires_at', c.expires_at,
                              'access_type', c.access_type, 'programs', pr.bn15s,
                              'before', jsonb_build_object('status', 'active',
                                          'see_client_submissions', c.see_client,
                                          'see_other_submissions', c.see_other),
                              'assignments_removed', coalesce(l.assignments, '[]'),
                              'group_left', m.group_id)
    FROM closed c
    LEFT JOIN LATERAL (SELECT array_agg(p.bn15 ORDER BY p.bn15) AS bn15s
                       FROM carm.program p WHERE p.id = ANY (c.programs)) pr ON true
    LEFT JOIN lost l ON l.relationship_id = c.id
    LEFT JOIN memberships m ON m.relationship_id = c.id
    ORDER BY c.id
    RETURNING id, at, event, business_id, other_business_id, relationship_id, group_id, details
  ),
  -- one message per relationship, then one notification per BAM of either
  -- business (a user who is BAM of both gets one)
  messages AS (
    SELECT ev.id AS audit_id, ev.event, ev.business_id, ev.other_business_id,
           format('The business relationship between %s (%s) and %s (%s) %s',
                  pb.legal_name, pb.bn9, cb.legal_name, cb.bn9,
                  CASE p_status WHEN 'expired' THEN 'has expired' ELSE 'was ended by the client' END)
             AS message
    FROM events ev
    JOIN carm.business pb ON pb.id = ev.business_id
    JOIN carm.business cb ON cb.id = ev.other_business_id
  ),
  recipients AS (
    SELECT m.audit_id, m.event, m.message, e.user_id
    FROM messages m JOIN carm.employee e ON e.business_id = m.business_id AND e.role = 'BAM'
    UNION ALL
    SELECT m.audit_id, m.event, m.message, e.user_id
    FROM messages m JOIN carm.employee e ON e.business_id = m.other_business_id AND e.role = 'BAM'
    WHERE NOT EXISTS (SELECT FROM carm.employee pe
                      WHERE pe.business_id = m.business_id AND pe.user_id = e.user_id AND pe.role = 'BAM')
  ),
  notes AS (
    INSERT INTO carm.notification (user_id, event, message, audit_id)
    SELECT x.user_id, x.event, x.message, x.audit_id
    FROM recipients x
    WHERE x.user_id IS DISTINCT FROM p_except
    ORDER BY x.audit_id, x.user_id
    RETURNING 1
  )
  -- §9: every event is published at commit, like carm_internal.audit() does
  SELECT count(*) INTO v_closed FROM (
    SELECT carm_internal.publish(ev.id) FROM events ev ORDER BY ev.id
  ) published;
  RETURN v_closed;
END
$$;

-- R9: applies the expiry cascade to the pair's relationship if it is due at
-- p_as_of.  Waits for a concurrent maintenance run holding the row, then
-- finds it already settled.  Called by every API function touching the pair
-- before it acts.
CREATE OR REPLACE FUNCTION carm_internal.settle_pair(p_provider bigint, p_client bigint, p_as_of timestamptz)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN carm_internal.close_relationships(
           ARRAY(SELECT r.id FROM carm.relationship r
                 WHERE r.provider_id = p_provider AND r.client_id = p_client
                   AND r.status = 'active'
                   AND NOT carm_internal.relationship_in_force(r.status, r.expires_at, p_as_of)
                 FOR UPDATE),
           'expired', p_as_of);
END
$$;

-- A relationship as a decision acts on it: its pair settled first (an
-- expiry by time is applied before anything is decided, R9), then the row
-- read again and locked FOR UPDATE for the rest of the transaction.
CREATE OR REPLACE FUNCTION carm_internal.rel_settled(p_rel carm.relationship) RETURNS carm.relationship
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v carm.relationship;
BEGIN
  PERFORM carm_internal.settle_pair(p_rel.provider_id, p_rel.client_id, statement_timestamp());
  SELECT * INTO v FROM carm.relationship r WHERE r.id = p_rel.id FOR UPDATE;
  RETURN v;
END
$$;
