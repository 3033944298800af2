-- §5 business relationships, part 4: listings of relationships and of the
-- provider's access to a client (never for proxies, R11), and privileges.

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
    IF NOT carm_internal.is_manager(v_member) THEN
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
    CROSS JOIN LATERAL (SELECT r.status = 'active'
                               AND NOT carm_internal.relationship_in_force(r.status, r.expires_at,
                                                                           statement_timestamp()) AS due) x
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

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'relationships',
  params => 'bn9 text',
  api_params => 'bn9 text',
  args => 'bn9',
  returns => 'TABLE (id bigint, side text, provider text, provider_name text, client text, client_name text, status text, access_type text, programs text[], see_client_submissions boolean, see_other_submissions boolean, expires_at timestamptz, comment text, reason text, requested_by bigint, decided_by bigint, created_at timestamptz, decided_at timestamptz, closed_at timestamptz)',
  admin_comment => 'Internal: carm.relationships() for carm_admin (any business); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.relationships() for the acting user, without admin powers');
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
    IF NOT carm_internal.is_manager(v_member) THEN
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

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'client_access',
  params => 'provider_bn9 text, client_bn9 text',
  api_params => 'provider_bn9 text, client_bn9 text',
  args => 'provider_bn9, client_bn9',
  returns => 'TABLE (user_id bigint, full_name text, provider_role text, role text, programs text[], all_delegated boolean, source text, group_name text)',
  admin_comment => 'Internal: carm.client_access() for carm_admin (any provider and client); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.client_access() for the acting user, without admin powers');
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
