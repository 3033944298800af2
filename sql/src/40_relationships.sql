-- §5 business relationships (R1-R11): requests, decisions, edits, ending,
-- the expiry cascade (R9) and the provider-side assignment of employees to
-- clients (R7).
--
-- Roles derived from a relationship (PBAM/PPAM of provider BAMs, assigned
-- proxy roles, EXPIRED) are never stored: carm_internal.grants() derives them from
-- the relationship row, and the C check compares expires_at with the
-- transaction time.  So these functions only change facts, and an expiry is
-- exact without any sweep; the cascade below just brings the stored status
-- in line and removes what the relationship carried (R9, R10).
--
-- Every function that touches a (provider, client) pair first settles it
-- (carm_internal.settle_pair), so that an API call never acts on a relationship
-- that has already expired by time: a new request after expiry sees the old
-- one as expired, an approval or an edit of an expired one is refused.

-- Internal helpers ------------------------------------------------------------

-- The employee row of an active user in a business, or NULL.  Deactivated
-- users hold nothing (§2), so they manage nothing either.
CREATE OR REPLACE FUNCTION carm_internal.rel_member(p_business bigint, p_user bigint) RETURNS carm.employee
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT e.*
  FROM carm.employee e
  JOIN carm.app_user u ON u.id = e.user_id AND u.active
  WHERE e.business_id = p_business AND e.user_id = p_user;
$$;

-- Active employees of a business holding one of these roles (notification
-- recipients).
CREATE OR REPLACE FUNCTION carm_internal.rel_staff(p_business bigint, p_roles text[]) RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(e.user_id ORDER BY e.user_id), '{}')
  FROM carm.employee e
  JOIN carm.app_user u ON u.id = e.user_id AND u.active
  WHERE e.business_id = p_business AND e.role = ANY (p_roles);
$$;

-- One notification per distinct user, except the one who acted (§9).
CREATE OR REPLACE FUNCTION carm_internal.rel_notify(p_users bigint[], p_event text, p_message text,
                                 p_audit bigint, p_except bigint DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  SELECT u, p_event, p_message, p_audit
  FROM (SELECT DISTINCT u FROM unnest(p_users) u
        WHERE u IS NOT NULL AND u IS DISTINCT FROM p_except) s
  ORDER BY u;
$$;

-- A relationship by id for the actor (P0002 when unknown).  §10 (rev. 1.1):
-- an actor who is an employee of neither its provider nor its client gets
-- the answer an unknown id gets, so ids cannot be probed and the businesses
-- behind a relationship are never named to outsiders.
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
  IF NOT FOUND
     OR NOT EXISTS (SELECT FROM carm.employee e
                    WHERE e.business_id IN (v.provider_id, v.client_id) AND e.user_id = v_actor) THEN
    RAISE EXCEPTION 'business relationship % does not exist', p_id USING ERRCODE = 'P0002';
  END IF;
  RETURN v;
END
$$;

-- The programs a relationship delegates now: every program of the client
-- for BUSINESS (also ones added later, E12), the listed ones for PROGRAM.
CREATE OR REPLACE FUNCTION carm_internal.rel_delegated(p_rel carm.relationship) RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_rel.access_type = 'PROGRAM' THEN p_rel.programs
              ELSE coalesce((SELECT array_agg(p.id ORDER BY p.id) FROM carm.program p
                             WHERE p.business_id = p_rel.client_id), '{}') END;
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
-- Lock order (sql/src/50_groups.sql, README "Concurrency"): the callers hold
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
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm_internal.close_relationships(
           ARRAY(SELECT r.id FROM carm.relationship r
                 WHERE r.provider_id = p_provider AND r.client_id = p_client
                   AND r.status = 'active' AND r.expires_at <= p_as_of
                 FOR UPDATE),
           'expired', p_as_of);
$$;

-- Requests and decisions --------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.request_relationship(provider_bn9 text, client_bn9 text, comment text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_provider carm.business := carm_internal.business(provider_bn9);
  v_client carm.business := carm_internal.business(client_bn9);
  v_member carm.employee := carm_internal.rel_member(v_provider.id, v_actor);
  v_comment text;
  v_open carm.relationship;
  v_id bigint;
  v_audit bigint;
BEGIN
  -- R1: a BAM or PAM of the provider requests
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of % requests business relationships for it',
                    v_provider.bn9
      USING ERRCODE = '42501';
  END IF;
  -- R1: only a service provider requests (§4.4)
  IF NOT v_provider.kinds && ARRAY['CUSTOMS_BROKER', 'TRADE_CONSULTANT'] THEN
    RAISE EXCEPTION 'business % is not a service provider', v_provider.bn9
      USING ERRCODE = '22023',
            HINT = 'Only customs brokers and trade consultants request business relationships (R1).';
  END IF;
  IF v_provider.id = v_client.id THEN
    RAISE EXCEPTION 'a business cannot request a relationship with itself' USING ERRCODE = '22023';
  END IF;
  v_comment := carm_internal.not_blank(comment, 'comment');

  -- R9: an expired relationship no longer blocks a new request
  PERFORM carm_internal.settle_pair(v_provider.id, v_client.id, now());

  -- R2: at most one pending, rejected or active relationship per pair
  SELECT * INTO v_open FROM carm.relationship r
  WHERE r.provider_id = v_provider.id AND r.client_id = v_client.id
    AND r.status IN ('pending', 'rejected', 'active');
  IF FOUND THEN
    RAISE EXCEPTION '% already has % % business relationship with %',
                    v_provider.bn9, CASE v_open.status WHEN 'active' THEN 'an' ELSE 'a' END,
                    v_open.status, v_client.bn9
      USING ERRCODE = '23505',
            DETAIL = format('Relationship %s.', v_open.id),
            HINT = CASE v_open.status
                     WHEN 'rejected' THEN 'Cancel the rejected request with carm.cancel_relationship_request() before requesting again (R2).'
                     WHEN 'pending' THEN 'Wait for the client''s decision, or cancel the request.'
                     ELSE 'The relationship is active; the client''s business account manager may change or end it.' END;
  END IF;
  BEGIN
    INSERT INTO carm.relationship (provider_id, client_id, comment, requested_by)
    VALUES (v_provider.id, v_client.id, v_comment, v_actor)
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    -- a concurrent request for the same pair committed first (R2)
    RAISE EXCEPTION '% already has an open business relationship with %', v_provider.bn9, v_client.bn9
      USING ERRCODE = '23505';
  END;

  v_audit := carm_internal.audit('relationship_requested', v_provider.id, v_client.id, NULL, v_id, NULL,
                         jsonb_build_object('comment', v_comment));
  -- §9: the client's approvers receive the request, with its justification
  PERFORM carm_internal.rel_notify(carm_internal.rel_staff(v_client.id, ARRAY['BAM', 'PAM']),
            'relationship_requested',
            format('%s (%s) requests a business relationship with %s: %s',
                   v_provider.legal_name, v_provider.bn9, v_client.bn9, v_comment),
            v_audit, v_actor);
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.request_relationship(text, text, text) IS
  'R1, R2: a BAM or PAM of a service provider asks a client for a business relationship, with a justifying comment; returns its id';

CREATE OR REPLACE FUNCTION carm.cancel_relationship_request(relationship_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_rel carm.relationship := carm_internal.rel_get(relationship_id);
  v_member carm.employee := carm_internal.rel_member(v_rel.provider_id, v_actor);
  v_audit bigint;
BEGIN
  -- R3: the provider's BAM or PAM cancels
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the service provider cancels its request'
      USING ERRCODE = '42501';
  END IF;
  PERFORM carm_internal.settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status NOT IN ('pending', 'rejected') THEN
    RAISE EXCEPTION 'business relationship % is %, not a pending or rejected request', v_rel.id, v_rel.status
      USING ERRCODE = '55000', HINT = 'Only pending or rejected requests can be cancelled (R3).';
  END IF;
  UPDATE carm.relationship r SET status = 'cancelled', closed_at = now() WHERE r.id = v_rel.id;

  v_audit := carm_internal.audit('relationship_cancelled', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
                         jsonb_build_object('before', jsonb_build_object('status', v_rel.status)));
  IF v_rel.status = 'pending' THEN
    -- the client's approvers no longer have it to decide
    PERFORM carm_internal.rel_notify(carm_internal.rel_staff(v_rel.client_id, ARRAY['BAM', 'PAM']),
              'relationship_cancelled',
              format('%s (%s) cancelled its business relationship request',
                     b.legal_name, b.bn9), v_audit, v_actor)
    FROM carm.business b WHERE b.id = v_rel.provider_id;
  END IF;
END
$$;
COMMENT ON FUNCTION carm.cancel_relationship_request(bigint) IS
  'R3: the service provider''s BAM or PAM cancels a pending or rejected request (a rejected one must be cancelled before a new request, R2)';

CREATE OR REPLACE FUNCTION carm.reject_relationship(relationship_id bigint, reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_rel carm.relationship := carm_internal.rel_get(relationship_id);
  v_member carm.employee := carm_internal.rel_member(v_rel.client_id, v_actor);
  v_reason text;
  v_audit bigint;
BEGIN
  -- R4, R11: the client's BAM or a client PAM decides; proxies never see
  -- the client's relationship requests
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the client rejects a relationship request'
      USING ERRCODE = '42501';
  END IF;
  v_reason := carm_internal.not_blank(reason, 'reason');        -- R4
  PERFORM carm_internal.settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status <> 'pending' THEN
    RAISE EXCEPTION 'business relationship % is %, not pending', v_rel.id, v_rel.status
      USING ERRCODE = '55000';
  END IF;
  UPDATE carm.relationship r
     SET status = 'rejected', reason = v_reason, decided_by = v_actor, decided_at = now()
   WHERE r.id = v_rel.id;

  v_audit := carm_internal.audit('relationship_rejected', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
                         jsonb_build_object('reason', v_reason));
  -- §9: the requester and the provider's BAMs see the rejection and its reason
  PERFORM carm_internal.rel_notify(v_rel.requested_by || carm_internal.rel_staff(v_rel.provider_id, ARRAY['BAM']),
            'relationship_rejected',
            format('%s (%s) rejected the business relationship request: %s', b.legal_name, b.bn9, v_reason),
            v_audit, v_actor)
  FROM carm.business b WHERE b.id = v_rel.client_id;
END
$$;
COMMENT ON FUNCTION carm.reject_relationship(bigint, text) IS
  'R4: the client''s BAM or a client PAM rejects a pending request with a non-blank reason';

CREATE OR REPLACE FUNCTION carm.approve_relationship(relationship_id bigint, access_type text,
                                          programs text[] DEFAULT NULL,
                                          see_client_submissions boolean DEFAULT false,
                                          see_other_submissions boolean DEFAULT false,
                                          expires_at timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_rel carm.relationship := carm_internal.rel_get(relationship_id);
  v_member carm.employee := carm_internal.rel_member(v_rel.client_id, v_actor);
  v_programs bigint[];
  v_audit bigint;
BEGIN
  -- R5, R11: the client's BAM, or a client PAM
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the client approves a relationship request'
      USING ERRCODE = '42501';
  END IF;
  v_programs := carm_internal.rel_terms(v_rel.client_id, approve_relationship.access_type,
                                approve_relationship.programs,
                                see_client_submissions, see_other_submissions,
                                approve_relationship.expires_at);
  -- R5: a client PAM approves PROGRAM relationships on its own programs only
  IF v_member.role = 'PAM' THEN
    IF approve_relationship.access_type <> 'PROGRAM' THEN
      RAISE EXCEPTION 'permission denied: a program account manager approves only PROGRAM relationships'
        USING ERRCODE = '42501', HINT = 'A business account manager of the client approves BUSINESS relationships (R5).';
    END IF;
    IF v_member.programs IS NOT NULL AND NOT v_programs <@ v_member.programs THEN
      RAISE EXCEPTION 'permission denied: a program account manager delegates only its own program accounts'
        USING ERRCODE = '42501',
              DETAIL = format('Not in its scope: %s.',
                              array_to_string(carm_internal.bn15s(ARRAY(SELECT unnest(v_programs)
                                                                EXCEPT SELECT unnest(v_member.programs))), ', '));
    END IF;
  END IF;

  PERFORM carm_internal.settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status <> 'pending' THEN
    RAISE EXCEPTION 'business relationship % is %, not pending', v_rel.id, v_rel.status
      USING ERRCODE = '55000';
  END IF;
  -- R6 follows from the row: the provider's BAMs are PBAM or PPAM from commit
  UPDATE carm.relationship r
     SET status = 'active', access_type = approve_relationship.access_type, programs = v_programs,
         see_client = see_client_submissions, see_other = see_other_submissions,
         expires_at = approve_relationship.expires_at,
         decided_by = v_actor, decided_at = now()
   WHERE r.id = v_rel.id;

  v_audit := carm_internal.audit('relationship_approved', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
               jsonb_build_object('access_type', approve_relationship.access_type,
                                  'programs', carm_internal.bn15s(v_programs),
                                  'see_client_submissions', see_client_submissions,
                                  'see_other_submissions', see_other_submissions,
                                  'expires_at', approve_relationship.expires_at));
  PERFORM carm_internal.rel_notify(v_rel.requested_by || carm_internal.rel_staff(v_rel.provider_id, ARRAY['BAM']),
            'relationship_approved',
            format('%s (%s) approved the business relationship (%s)', b.legal_name, b.bn9,
                   approve_relationship.access_type),
            v_audit, v_actor)
  FROM carm.business b WHERE b.id = v_rel.client_id;
END
$$;
COMMENT ON FUNCTION carm.approve_relationship(bigint, text, text[], boolean, boolean, timestamptz) IS
  'R5: the client''s BAM (any type) or a client PAM (PROGRAM, its own programs) approves a pending request: BUSINESS with programs NULL, PROGRAM with a list of the client''s BN15s; expires_at NULL or future';

CREATE OR REPLACE FUNCTION carm.update_relationship(relationship_id bigint, access_type text, programs text[],
                                         see_client_submissions boolean, see_other_submissions boolean,
                                         expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_rel carm.relationship := carm_internal.rel_get(relationship_id);
  v_member carm.employee := carm_internal.rel_member(v_rel.client_id, v_actor);
  v_programs bigint[];
  v_narrowed jsonb;
  v_audit bigint;
BEGIN
  -- R8 (§5.2): editing is for the client's BAM only; R11: never a proxy
  IF v_member.role IS DISTINCT FROM 'BAM' THEN
    RAISE EXCEPTION 'permission denied: only a business account manager of the client edits a business relationship'
      USING ERRCODE = '42501';
  END IF;
  v_programs := carm_internal.rel_terms(v_rel.client_id, update_relationship.access_type,
                                update_relationship.programs,
                                see_client_submissions, see_other_submissions,
                                update_relationship.expires_at);
  PERFORM carm_internal.settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status <> 'active' THEN
    RAISE EXCEPTION 'business relationship % is %, not active', v_rel.id, v_rel.status
      USING ERRCODE = '55000';
  END IF;

  -- R8: type, programs, visibility and expiry are replaced; PBAM/PPAM of the
  -- provider's BAMs and all-programs assignments and group roles follow the
  -- row (the resolver derives them)
  UPDATE carm.relationship r
     SET access_type = update_relationship.access_type, programs = v_programs,
         see_client = see_client_submissions, see_other = see_other_submissions,
         expires_at = update_relationship.expires_at
   WHERE r.id = v_rel.id;

  -- R8: a program no longer delegated is lost at once, also by assignments
  -- listing it; it does not come back if the client delegates it again.  An
  -- assignment left with no program grants nothing and goes.
  IF update_relationship.access_type = 'PROGRAM' THEN
    WITH changed AS (
      SELECT a.user_id, a.programs AS old_programs,
             ARRAY(SELECT x FROM unnest(a.programs) x WHERE x = ANY (v_programs) ORDER BY x) AS new_programs
      FROM carm.client_assignment a
      WHERE a.relationship_id = v_rel.id AND a.programs IS NOT NULL
        AND NOT a.programs <@ v_programs
    ),
    trimmed AS (
      UPDATE carm.client_assignment a SET programs = c.new_programs
      FROM changed c
      WHERE a.relationship_id = v_rel.id AND a.user_id = c.user_id AND cardinality(c.new_programs) > 0
      RETURNING a.user_id
    ),
    dropped AS (
      DELETE FROM carm.client_assignment a USING changed c
      WHERE a.relationship_id = v_rel.id AND a.user_id = c.user_id AND cardinality(c.new_programs) = 0
      RETURNING a.user_id
    )
    SELECT jsonb_agg(jsonb_build_object('user_id', c.user_id,
                                        'before', carm_internal.bn15s(c.old_programs),
                                        'after', CASE WHEN cardinality(c.new_programs) > 0
                                                      THEN to_jsonb(carm_internal.bn15s(c.new_programs)) END)
                     ORDER BY c.user_id)
      INTO v_narrowed
    FROM changed c;
  END IF;

  v_audit := carm_internal.audit('relationship_updated', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
               jsonb_build_object(
                 'before', jsonb_build_object('access_type', v_rel.access_type,
                                              'programs', carm_internal.bn15s(v_rel.programs),
                                              'see_client_submissions', v_rel.see_client,
                                              'see_other_submissions', v_rel.see_other,
                                              'expires_at', v_rel.expires_at),
                 'after', jsonb_build_object('access_type', update_relationship.access_type,
                                             'programs', carm_internal.bn15s(v_programs),
                                             'see_client_submissions', see_client_submissions,
                                             'see_other_submissions', see_other_submissions,
                                             'expires_at', update_relationship.expires_at),
                 'assignments_narrowed', coalesce(v_narrowed, '[]')));
  PERFORM carm_internal.rel_notify(carm_internal.rel_staff(v_rel.provider_id, ARRAY['BAM']),
            'relationship_updated',
            format('%s (%s) changed the business relationship (%s)', b.legal_name, b.bn9,
                   update_relationship.access_type),
            v_audit, v_actor)
  FROM carm.business b WHERE b.id = v_rel.client_id;
END
$$;
COMMENT ON FUNCTION carm.update_relationship(bigint, text, text[], boolean, boolean, timestamptz) IS
  'R8: the client''s BAM replaces the type, programs, visibility and expiry of an active relationship';

CREATE OR REPLACE FUNCTION carm.end_relationship(relationship_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_rel carm.relationship := carm_internal.rel_get(relationship_id);
  v_member carm.employee := carm_internal.rel_member(v_rel.client_id, v_actor);
BEGIN
  -- §5.2: ending is an edit of the relationship (its expiry, now): the
  -- client's BAM only; R11: never a proxy
  IF v_member.role IS DISTINCT FROM 'BAM' THEN
    RAISE EXCEPTION 'permission denied: only a business account manager of the client ends a business relationship'
      USING ERRCODE = '42501';
  END IF;
  PERFORM carm_internal.settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status <> 'active' THEN
    RAISE EXCEPTION 'business relationship % is %, not active', v_rel.id, v_rel.status
      USING ERRCODE = '55000';
  END IF;
  -- R9: the same cascade as an expiry, with status ended
  PERFORM carm_internal.close_relationships(ARRAY[v_rel.id], 'ended', now(), v_actor);
END
$$;
COMMENT ON FUNCTION carm.end_relationship(bigint) IS
  'R9: the client''s BAM ends an active relationship now: provider employees lose access, the provider''s BAMs keep EXPIRED';

-- Provider side: assigning employees to a client (R7) -------------------------

-- The pair's active relationship, settled first (R9); 55000 when there is none.
CREATE OR REPLACE FUNCTION carm_internal.rel_active(p_provider carm.business, p_client carm.business)
RETURNS carm.relationship
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v carm.relationship;
BEGIN
  PERFORM carm_internal.settle_pair(p_provider.id, p_client.id, now());
  SELECT * INTO v FROM carm.relationship r
  WHERE r.provider_id = p_provider.id AND r.client_id = p_client.id AND r.status = 'active'
  FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION '% has no active business relationship with %', p_provider.bn9, p_client.bn9
      USING ERRCODE = '55000';
  END IF;
  RETURN v;
END
$$;

-- R7: the delegated programs on which this provider BAM or PAM may
-- assign employees, and whether that scope follows later changes of the
-- relationship.  A provider BAM is PBAM/PPAM on every delegated program (R6).
-- A provider PAM only where it is itself PPAM (§6.2): by its individual
-- assignment, else by the default role of a group holding the client (G5).
-- programs is NULL when the actor may assign nothing.
CREATE OR REPLACE FUNCTION carm_internal.rel_assigner(p_rel carm.relationship, p_delegated bigint[], p_member carm.employee,
                                   OUT programs bigint[], OUT follows boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_own carm.client_assignment;
BEGIN
  IF p_member.role = 'BAM' THEN
    programs := p_delegated;
    follows := true;
    RETURN;
  END IF;
  IF p_member.role IS DISTINCT FROM 'PAM' THEN
    RETURN;
  END IF;
  SELECT * INTO v_own FROM carm.client_assignment a
  WHERE a.relationship_id = p_rel.id AND a.user_id = p_member.user_id;
  IF FOUND THEN
    IF v_own.role = 'PPAM' THEN
      programs := ARRAY(SELECT x FROM unnest(p_delegated) x
                        WHERE v_own.programs IS NULL OR x = ANY (v_own.programs) ORDER BY x);
      follows := v_own.programs IS NULL;
    END IF;
    RETURN;
  END IF;
  IF EXISTS (SELECT FROM carm.group_employee ge
             JOIN carm.client_group g ON g.id = ge.group_id AND g.deleted_at IS NULL
             JOIN carm.group_client gc ON gc.group_id = g.id
             WHERE ge.user_id = p_member.user_id AND ge.role = 'PPAM'
               AND gc.provider_id = p_rel.provider_id AND gc.client_id = p_rel.client_id) THEN
    programs := p_delegated;
    follows := true;
  END IF;
END
$$;

-- Common checks of assign/revoke: returns the relationship and the programs
-- it delegates, the actor's assigning scope and the target's current
-- assignment.
CREATE OR REPLACE FUNCTION carm_internal.rel_assignment_context(p_provider_bn9 text, p_client_bn9 text, p_user bigint,
                                             OUT rel carm.relationship, OUT delegated bigint[],
                                             OUT actor_programs bigint[], OUT actor_follows boolean,
                                             OUT actor_is_bam boolean,
                                             OUT existing carm.client_assignment)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_provider carm.business := carm_internal.business(p_provider_bn9);
  v_client carm.business := carm_internal.business(p_client_bn9);
  v_member carm.employee := carm_internal.rel_member(v_provider.id, v_actor);
  v_target carm.app_user;
  v_target_member carm.employee;
BEGIN
  -- R7 (§6.2): a BAM or PAM of the provider, who is PBAM or PPAM on the client
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of % assigns its employees to clients',
                    v_provider.bn9
      USING ERRCODE = '42501';
  END IF;
  rel := carm_internal.rel_active(v_provider, v_client);
  delegated := carm_internal.rel_delegated(rel);
  SELECT a.programs, a.follows INTO actor_programs, actor_follows
  FROM carm_internal.rel_assigner(rel, delegated, v_member) a;
  IF actor_programs IS NULL OR cardinality(actor_programs) = 0 THEN
    RAISE EXCEPTION 'permission denied: you are not PBAM or PPAM on %', v_client.bn9
      USING ERRCODE = '42501',
            HINT = 'A provider program account manager must itself be assigned PPAM on the client first (R7).';
  END IF;
  actor_is_bam := v_member.role = 'BAM';

  -- R7: the target is an active employee of the provider, not the actor,
  -- not a provider BAM (who holds PBAM/PPAM already, R6)
  PERFORM carm_internal.not_null(p_user, 'user_id');
  IF p_user = v_actor THEN
    RAISE EXCEPTION 'you cannot change your own access to a client'
      USING ERRCODE = '22023';
  END IF;
  -- E8, E11: hold the target's employee row until commit, so that a
  -- concurrent removal or promotion to BAM either waits for this assignment
  -- (and then deletes it) or has committed first (and we see it below).
  -- §10: a user who is no employee of the provider gets the answer an
  -- unknown id gets.
  PERFORM FROM carm.employee e
  WHERE e.business_id = v_provider.id AND e.user_id = p_user FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not an employee of %', p_user, v_provider.bn9
      USING ERRCODE = 'P0002';
  END IF;
  v_target := carm_internal.user_row(p_user);
  v_target_member := carm_internal.rel_member(v_provider.id, v_target.id);
  IF v_target_member.role IS NULL THEN
    RAISE EXCEPTION 'user % is not an active employee of %', v_target.id, v_provider.bn9
      USING ERRCODE = '22023';
  END IF;
  IF v_target_member.role = 'BAM' THEN
    RAISE EXCEPTION 'user % is a business account manager of %', v_target.id, v_provider.bn9
      USING ERRCODE = '22023',
            DETAIL = 'The provider''s BAMs hold PBAM or PPAM on every client through the relationship (R6).';
  END IF;
  SELECT * INTO existing FROM carm.client_assignment a
  WHERE a.relationship_id = rel.id AND a.user_id = v_target.id
  FOR UPDATE;

  -- E7 on the client side: a provider PAM changes only assignments whose
  -- whole scope lies within its own PPAM scope
  IF NOT actor_is_bam AND existing.user_id IS NOT NULL
     AND NOT (CASE WHEN existing.programs IS NULL THEN actor_follows
                   ELSE ARRAY(SELECT x FROM unnest(existing.programs) x
                              WHERE x = ANY (delegated)) <@ actor_programs END) THEN
    RAISE EXCEPTION 'permission denied: user %''s access to % reaches beyond your own programs', v_target.id, v_client.bn9
      USING ERRCODE = '42501';
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm.assign_client_access(provider_bn9 text, client_bn9 text, user_id bigint,
                                          role text, programs text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ctx record;
  v_programs bigint[];
  v_outside bigint[];
  v_audit bigint;
BEGIN
  SELECT * INTO ctx FROM carm_internal.rel_assignment_context(provider_bn9, client_bn9, assign_client_access.user_id);

  -- R7: PPAM, PEDITOR or PVIEWER, never PBAM
  PERFORM carm_internal.role_name(assign_client_access.role, 'client');

  -- R7: NULL = every delegated program, following the relationship; or a
  -- listed subset of the delegated programs
  v_programs := carm_internal.programs_of((ctx.rel).client_id, assign_client_access.programs);
  IF v_programs IS NOT NULL THEN
    v_outside := ARRAY(SELECT unnest(v_programs) EXCEPT SELECT unnest(ctx.delegated));
    IF cardinality(v_outside) > 0 THEN
      RAISE EXCEPTION 'program account % is not delegated by the relationship', (carm_internal.bn15s(v_outside))[1]
        USING ERRCODE = '22023';
    END IF;
  END IF;
  -- R7: a provider PAM delegates only where it is itself PPAM
  IF NOT ctx.actor_is_bam THEN
    IF v_programs IS NULL AND NOT ctx.actor_follows THEN
      RAISE EXCEPTION 'permission denied: you are PPAM on only some of the delegated programs'
        USING ERRCODE = '42501', HINT = 'List the programs to assign.';
    END IF;
    IF v_programs IS NOT NULL AND NOT v_programs <@ ctx.actor_programs THEN
      RAISE EXCEPTION 'permission denied: you are not PPAM on every listed program'
        USING ERRCODE = '42501';
    END IF;
  END IF;

  INSERT INTO carm.client_assignment AS a (relationship_id, user_id, role, programs, assigned_by)
  VALUES ((ctx.rel).id, assign_client_access.user_id, assign_client_access.role, v_programs, carm.actor())
  ON CONFLICT ON CONSTRAINT client_assignment_pkey DO UPDATE
    SET role = excluded.role, programs = excluded.programs,
        assigned_by = excluded.assigned_by, assigned_at = now();

  v_audit := carm_internal.audit('client_access_assigned', (ctx.rel).provider_id, (ctx.rel).client_id,
               assign_client_access.user_id, (ctx.rel).id, NULL,
               jsonb_build_object(
                 'before', CASE WHEN (ctx.existing).user_id IS NOT NULL THEN
                             jsonb_build_object('role', (ctx.existing).role,
                                                'programs', carm_internal.bn15s((ctx.existing).programs)) END,
                 'after', jsonb_build_object('role', assign_client_access.role,
                                             'programs', carm_internal.bn15s(v_programs))));
  PERFORM carm_internal.rel_notify(ARRAY[assign_client_access.user_id], 'client_access_assigned',
            format('You are %s for %s (%s) on %s', assign_client_access.role, b.legal_name, b.bn9,
                   coalesce(array_to_string(carm_internal.bn15s(v_programs), ', '), 'every delegated program')),
            v_audit)
  FROM carm.business b WHERE b.id = (ctx.rel).client_id;
END
$$;
COMMENT ON FUNCTION carm.assign_client_access(text, text, bigint, text, text[]) IS
  'R7: a PBAM, or a provider PAM that is PPAM, gives a provider employee PPAM, PEDITOR or PVIEWER on a client, on every delegated program (NULL) or a listed subset';

CREATE OR REPLACE FUNCTION carm.revoke_client_access(provider_bn9 text, client_bn9 text, user_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ctx record;
  v_audit bigint;
BEGIN
  SELECT * INTO ctx FROM carm_internal.rel_assignment_context(provider_bn9, client_bn9, revoke_client_access.user_id);
  IF (ctx.existing).user_id IS NULL THEN
    RAISE EXCEPTION 'user % has no individual access to %', revoke_client_access.user_id, client_bn9
      USING ERRCODE = 'P0002';
  END IF;
  DELETE FROM carm.client_assignment a
  WHERE a.relationship_id = (ctx.rel).id AND a.user_id = revoke_client_access.user_id;

  v_audit := carm_internal.audit('client_access_revoked', (ctx.rel).provider_id, (ctx.rel).client_id,
               revoke_client_access.user_id, (ctx.rel).id, NULL,
               jsonb_build_object('before', jsonb_build_object('role', (ctx.existing).role,
                                  'programs', carm_internal.bn15s((ctx.existing).programs))));
  PERFORM carm_internal.rel_notify(ARRAY[revoke_client_access.user_id], 'client_access_revoked',
            format('Your access to %s (%s) was revoked', b.legal_name, b.bn9), v_audit)
  FROM carm.business b WHERE b.id = (ctx.rel).client_id;
END
$$;
COMMENT ON FUNCTION carm.revoke_client_access(text, text, bigint) IS
  'R7: removes a provider employee''s individual access to a client (a group default, G4, may still apply)';

-- Listings ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm_internal.relationships(bn9 text, p_admin boolean)
RETURNS TABLE (id bigint, side text, provider text, provider_name text, client text, client_name text,
               status text, access_type text, programs text[],
               see_client_submissions boolean, see_other_submissions boolean,
               expires_at timestamptz, comment text, reason text,
               requested_by bigint, decided_by bigint,
               created_at timestamptz, decided_at timestamptz, closed_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_business carm.business := carm_internal.business(relationships.bn9);
  v_admin boolean := p_admin;
  v_actor bigint := carm.actor();
  v_member carm.employee;
BEGIN
  IF NOT v_admin OR v_actor IS NOT NULL THEN
    v_actor := carm_internal.require_active_actor();
    v_member := carm_internal.rel_member(v_business.id, v_actor);
    -- §3.2 relationships: BAM and PAM only; R11: a proxy is no employee of
    -- the client and never sees its relationships or requests
    IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
      RAISE EXCEPTION 'permission denied: only a business or program account manager of % sees its business relationships',
                      v_business.bn9
        USING ERRCODE = '42501';
    END IF;
  END IF;
  RETURN QUERY
    SELECT r.id, CASE WHEN r.client_id = v_business.id THEN 'client' ELSE 'provider' END,
           pb.bn9, pb.legal_name, cb.bn9, cb.legal_name,
           -- R9: expired by time, whether or not the cascade has run
           CASE WHEN x.due THEN 'expired' ELSE r.status END,
           r.access_type, carm_internal.bn15s(r.programs),
           r.see_client AND NOT x.due, r.see_other AND NOT x.due,
           r.expires_at, r.comment, r.reason, r.requested_by, r.decided_by,
           r.created_at, r.decided_at,
           CASE WHEN x.due THEN r.expires_at ELSE r.closed_at END
    FROM carm.relationship r
    JOIN carm.business pb ON pb.id = r.provider_id
    JOIN carm.business cb ON cb.id = r.client_id
    CROSS JOIN LATERAL (SELECT r.status = 'active' AND coalesce(r.expires_at <= now(), false) AS due) x
    WHERE r.provider_id = v_business.id
       OR (r.client_id = v_business.id
           -- §3.2 note 3: a client PAM sees the requests, and the relationships
           -- touching its program accounts
           AND (v_member.role IS DISTINCT FROM 'PAM' OR v_member.programs IS NULL
                OR r.status IN ('pending', 'rejected', 'cancelled')
                OR r.access_type = 'BUSINESS' OR r.programs && v_member.programs))
    ORDER BY r.id;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.relationships(bn9 text)
RETURNS TABLE (id bigint, side text, provider text, provider_name text, client text, client_name text,
               status text, access_type text, programs text[],
               see_client_submissions boolean, see_other_submissions boolean,
               expires_at timestamptz, comment text, reason text,
               requested_by bigint, decided_by bigint,
               created_at timestamptz, decided_at timestamptz, closed_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.relationships_admin(bn9);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.relationships_actor(bn9);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.relationships_admin(bn9 text)
RETURNS TABLE (id bigint, side text, provider text, provider_name text, client text, client_name text,
               status text, access_type text, programs text[],
               see_client_submissions boolean, see_other_submissions boolean,
               expires_at timestamptz, comment text, reason text,
               requested_by bigint, decided_by bigint,
               created_at timestamptz, decided_at timestamptz, closed_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.relationships(bn9, true);
END
$$;
COMMENT ON FUNCTION carm_internal.relationships_admin(text) IS
  'Internal: carm.relationships() for carm_admin (any business); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.relationships_actor(bn9 text)
RETURNS TABLE (id bigint, side text, provider text, provider_name text, client text, client_name text,
               status text, access_type text, programs text[],
               see_client_submissions boolean, see_other_submissions boolean,
               expires_at timestamptz, comment text, reason text,
               requested_by bigint, decided_by bigint,
               created_at timestamptz, decided_at timestamptz, closed_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.relationships(bn9, false);
END
$$;
COMMENT ON FUNCTION carm_internal.relationships_actor(text) IS
  'Internal: carm.relationships() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.relationships(text) IS
  'Business relationships of a business, as client and as provider: for its BAMs and PAMs (a client PAM sees those touching its programs), never for proxies (R11)';

CREATE OR REPLACE FUNCTION carm_internal.client_access(provider_bn9 text, client_bn9 text, p_admin boolean)
RETURNS TABLE (user_id bigint, full_name text, provider_role text, role text, programs text[],
               all_delegated boolean, source text, group_name text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_provider carm.business := carm_internal.business(provider_bn9);
  v_client carm.business := carm_internal.business(client_bn9);
  v_admin boolean := p_admin;
  v_actor bigint := carm.actor();
  v_member carm.employee;
BEGIN
  IF NOT v_admin OR v_actor IS NOT NULL THEN
    v_actor := carm_internal.require_active_actor();
    v_member := carm_internal.rel_member(v_provider.id, v_actor);
    -- a provider-side view (R7): the provider's BAMs and PAMs
    IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
      RAISE EXCEPTION 'permission denied: only a business or program account manager of % sees its employees'' access to clients',
                      v_provider.bn9
        USING ERRCODE = '42501';
    END IF;
  END IF;

  -- Every path of the provider's people to the client, from the resolver
  -- (carm_internal.grants, through carm_internal.access_paths): R6 provider
  -- BAMs (PBAM, PPAM), V3 provider PAMs (SPMGR), R7 assignments, G4/G5 group
  -- roles, V4 EXPIRED after an expiry or end (R9 decided on time, as the
  -- check decides, whether or not maintenance has run).
  RETURN QUERY
    WITH staff AS (
      SELECT e.user_id AS uid, u.full_name AS name, e.role AS staff_role
      FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
      WHERE e.business_id = v_provider.id
    ),
    x AS (
      SELECT s.uid, s.name, s.staff_role, a.*
      FROM staff s CROSS JOIN LATERAL carm_internal.access_paths(s.uid, v_client.id, NULL) a
      WHERE a.live AND a.source <> 'employee' AND a.via_business_id = v_provider.id
    )
    SELECT x.uid, x.name, x.staff_role, x.role, carm_internal.bn15s(x.program_ids),
           -- an assignment names its programs or follows the relationship (NULL, R7)
           CASE WHEN x.group_id IS NULL AND NOT x.provider_bam AND x.granted_role <> 'SPMGR'
                THEN (SELECT ca.programs IS NULL FROM carm.client_assignment ca
                      WHERE ca.relationship_id = r.id AND ca.user_id = x.uid)
                ELSE x.program_ids @> carm_internal.rel_delegated(r) END,
           CASE WHEN x.group_id IS NOT NULL THEN 'group'
                WHEN x.provider_bam OR x.granted_role = 'SPMGR' THEN 'relationship'
                ELSE 'assignment' END,
           g.name
    FROM x
    JOIN carm.relationship r ON r.id = x.relationship_id
    LEFT JOIN carm.client_group g ON g.id = x.group_id
    ORDER BY x.uid, 7, x.role, r.id;
END
$$;

-- The API: SECURITY INVOKER, so that current_role_is_admin() sees the role
-- the calling code runs as (§2); the admin variant is granted to carm_admin only.
CREATE OR REPLACE FUNCTION carm.client_access(provider_bn9 text, client_bn9 text)
RETURNS TABLE (user_id bigint, full_name text, provider_role text, role text, programs text[],
               all_delegated boolean, source text, group_name text)
LANGUAGE plpgsql STABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.current_role_is_admin() THEN
    RETURN QUERY SELECT * FROM carm_internal.client_access_admin(provider_bn9, client_bn9);
  ELSE
    RETURN QUERY SELECT * FROM carm_internal.client_access_actor(provider_bn9, client_bn9);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.client_access_admin(provider_bn9 text, client_bn9 text)
RETURNS TABLE (user_id bigint, full_name text, provider_role text, role text, programs text[],
               all_delegated boolean, source text, group_name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();
  RETURN QUERY SELECT * FROM carm_internal.client_access(provider_bn9, client_bn9, true);
END
$$;
COMMENT ON FUNCTION carm_internal.client_access_admin(text, text) IS
  'Internal: carm.client_access() for carm_admin (any provider and client); EXECUTE for carm_admin only';

CREATE OR REPLACE FUNCTION carm_internal.client_access_actor(provider_bn9 text, client_bn9 text)
RETURNS TABLE (user_id bigint, full_name text, provider_role text, role text, programs text[],
               all_delegated boolean, source text, group_name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY SELECT * FROM carm_internal.client_access(provider_bn9, client_bn9, false);
END
$$;
COMMENT ON FUNCTION carm_internal.client_access_actor(text, text) IS
  'Internal: carm.client_access() for the acting user, without admin powers';
COMMENT ON FUNCTION carm.client_access(text, text) IS
  'Who at a service provider holds which proxy role on a client, and how (R6 relationship, R7 assignment, G4 group); provider BAMs and PAMs';

-- Privileges: the API is for the gateway; listings also for carm_admin.
REVOKE ALL ON FUNCTION carm.request_relationship(text, text, text),
  carm.cancel_relationship_request(bigint),
  carm.reject_relationship(bigint, text),
  carm.approve_relationship(bigint, text, text[], boolean, boolean, timestamptz),
  carm.update_relationship(bigint, text, text[], boolean, boolean, timestamptz),
  carm.end_relationship(bigint),
  carm.assign_client_access(text, text, bigint, text, text[]),
  carm.revoke_client_access(text, text, bigint),
  carm.relationships(text),
  carm.client_access(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.request_relationship(text, text, text),
  carm.cancel_relationship_request(bigint),
  carm.reject_relationship(bigint, text),
  carm.approve_relationship(bigint, text, text[], boolean, boolean, timestamptz),
  carm.update_relationship(bigint, text, text[], boolean, boolean, timestamptz),
  carm.end_relationship(bigint),
  carm.assign_client_access(text, text, bigint, text, text[]),
  carm.revoke_client_access(text, text, bigint),
  carm.relationships(text),
  carm.client_access(text, text) TO carm_gateway;
GRANT EXECUTE ON FUNCTION carm.relationships(text), carm.client_access(text, text) TO carm_admin;
-- §2: the listings' admin variants for carm_admin only, their actor variants
-- for whoever may call the listing.
REVOKE ALL ON FUNCTION carm_internal.relationships_admin(text), carm_internal.client_access_admin(text, text),
  carm_internal.relationships_actor(text), carm_internal.client_access_actor(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.relationships_admin(text), carm_internal.client_access_admin(text, text)
  TO carm_admin;
GRANT EXECUTE ON FUNCTION carm_internal.relationships_actor(text), carm_internal.client_access_actor(text, text)
  TO carm_gateway, carm_admin;
