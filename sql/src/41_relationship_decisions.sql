-- §5 business relationships, part 2: requests and decisions (R1-R5),
-- edits (R8) and ending (R9), on the helpers of 40_relationships.sql.

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
  IF NOT carm_internal.is_manager(v_member) THEN
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
  PERFORM carm_internal.settle_pair(v_provider.id, v_client.id, statement_timestamp());

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
  IF NOT carm_internal.is_manager(v_member) THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the service provider cancels its request'
      USING ERRCODE = '42501';
  END IF;
  v_rel := carm_internal.rel_settled(v_rel);
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
  PERFORM carm_internal.not_null(reason, 'reason');           -- §10 rev. 1.2: 22004 before any refusal
  -- R4, R11: the client's BAM or a client PAM decides; proxies never see
  -- the client's relationship requests
  IF NOT carm_internal.is_manager(v_member) THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the client rejects a relationship request'
      USING ERRCODE = '42501';
  END IF;
  v_reason := carm_internal.not_blank(reason, 'reason');        -- R4
  v_rel := carm_internal.rel_settled(v_rel);
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
  PERFORM carm_internal.not_null(access_type, 'access_type'); -- §10 rev. 1.2: 22004 before any refusal
  -- R5, R11: the client's BAM, or a client PAM
  IF NOT carm_internal.is_manager(v_member) THEN
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

  v_rel := carm_internal.rel_settled(v_rel);
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
  v_rel := carm_internal.rel_settled(v_rel);
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
  v_rel := carm_internal.rel_settled(v_rel);
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
