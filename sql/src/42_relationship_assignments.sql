-- §5 business relationships, part 3: the provider side, assigning the
-- provider's employees to a client (R7).

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
  PERFORM carm_internal.settle_pair(p_provider.id, p_client.id, statement_timestamp());
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
  IF NOT carm_internal.is_manager(v_member) THEN
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
  v_role text;
BEGIN
  SELECT * INTO ctx FROM carm_internal.rel_assignment_context(provider_bn9, client_bn9, assign_client_access.user_id);

  -- R7: PPAM, PEDITOR or PVIEWER, never PBAM; trimmed and upper-cased like
  -- an employee role (docs/design.md, Decisions)
  v_role := carm_internal.role_name(assign_client_access.role, 'client');

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
  VALUES ((ctx.rel).id, assign_client_access.user_id, v_role, v_programs, carm.actor())
  ON CONFLICT ON CONSTRAINT client_assignment_pkey DO UPDATE
    SET role = excluded.role, programs = excluded.programs,
        assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at;

  v_audit := carm_internal.audit('client_access_assigned', (ctx.rel).provider_id, (ctx.rel).client_id,
               assign_client_access.user_id, (ctx.rel).id, NULL,
               jsonb_build_object(
                 'before', CASE WHEN (ctx.existing).user_id IS NOT NULL THEN
                             jsonb_build_object('role', (ctx.existing).role,
                                                'programs', carm_internal.bn15s((ctx.existing).programs)) END,
                 'after', jsonb_build_object('role', v_role,
                                             'programs', carm_internal.bn15s(v_programs))));
  PERFORM carm_internal.rel_notify(ARRAY[assign_client_access.user_id], 'client_access_assigned',
            format('You are %s for %s (%s) on %s', v_role, b.legal_name, b.bn9,
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
