-- Ids back to names: application tables hold program and business ids
-- (carm.program_id, carm.business_id); these lookups turn them back into
-- BN15s, BN9s and names for the acting user, and sign-in identities into
-- user ids for the gateway.
--
-- What an actor may name (docs/design.md "Decisions", "Lookups"): a business it holds
-- any grant on (employee in any role, proxy, EXPIRED, a provider PAM's V3
-- read — the resolver carm_internal.grants, one authority); a service
-- provider that has had an active relationship with a business it is an
-- employee of (its rows may be on the client's programs, V1); and, for a BAM
-- or PAM, the other side of any relationship of its business (what
-- carm.relationships() shows it).  A program: one it holds a grant on, or
-- one of a business it is an employee of.  Anything else — an unknown id
-- included — is simply absent from the answer: the same answer for a hidden
-- business as for one that does not exist (§10).

CREATE OR REPLACE FUNCTION carm_internal.nameable_businesses(p_actor bigint, p_ids bigint[])
RETURNS TABLE (business_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH emp AS (
    SELECT e.business_id, e.role FROM carm.employee e WHERE e.user_id = p_actor
  )
  SELECT g.business_id FROM carm_internal.grants(p_actor) g WHERE g.business_id = ANY (p_ids)
  UNION
  SELECT r.provider_id FROM emp JOIN carm.relationship r ON r.client_id = emp.business_id
  WHERE r.provider_id = ANY (p_ids)
    AND (r.status IN ('active', 'expired', 'ended') OR emp.role IN ('BAM', 'PAM'))
  UNION
  SELECT r.client_id FROM emp JOIN carm.relationship r ON r.provider_id = emp.business_id
  WHERE r.client_id = ANY (p_ids) AND emp.role IN ('BAM', 'PAM');
END
$$;
COMMENT ON FUNCTION carm_internal.nameable_businesses(bigint, bigint[]) IS
  'Internal: which of these business ids the user may name (a grant on it, a provider of its employer, a relationship counterparty of a business it manages)';

CREATE OR REPLACE FUNCTION carm.businesses(ids bigint[])
RETURNS TABLE (id bigint, bn9 text, legal_name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
BEGIN
  PERFORM carm_internal.not_null(ids, 'ids');
  ids := carm_internal.array_arg(ids, 'ids');                 -- §10: 22023 / 22004
  RETURN QUERY
    SELECT b.id, b.bn9, b.legal_name
    FROM carm.business b
    WHERE b.id IN (SELECT n.business_id FROM carm_internal.nameable_businesses(v_actor, ids) n)
    ORDER BY b.id;
END
$$;
COMMENT ON FUNCTION carm.businesses(bigint[]) IS
  'BN9 and legal name of the businesses with these ids that the acting user is related to (a grant on it, a service provider of its business, a relationship counterparty of a business it manages); other and unknown ids are left out alike (§10)';

CREATE OR REPLACE FUNCTION carm.programs(ids bigint[])
RETURNS TABLE (id bigint, bn15 text, name text, business text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
BEGIN
  PERFORM carm_internal.not_null(ids, 'ids');
  ids := carm_internal.array_arg(ids, 'ids');                 -- §10: 22023 / 22004
  RETURN QUERY
    SELECT p.id, p.bn15, p.name, b.bn9
    FROM carm.program p
    JOIN carm.business b ON b.id = p.business_id
    WHERE p.id = ANY (ids)
      AND (p.id IN (SELECT g.program_id FROM carm_internal.grants(v_actor) g
                    WHERE g.program_id = ANY (ids))
           OR p.business_id IN (SELECT e.business_id FROM carm.employee e WHERE e.user_id = v_actor))
    ORDER BY p.id;
END
$$;
COMMENT ON FUNCTION carm.programs(bigint[]) IS
  'BN15, name and BN9 of the program accounts with these ids that the acting user holds a grant on or whose business employs it; other and unknown ids are left out alike (§10)';

CREATE OR REPLACE FUNCTION carm.user_id(external_id text)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ext text := carm_internal.not_blank(external_id, 'external_id', 256);
  v_id bigint;
BEGIN
  SELECT u.id INTO v_id FROM carm.app_user u WHERE u.external_id = v_ext;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'user with external id "%" does not exist', left(v_ext, 32) USING ERRCODE = 'P0002';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.user_id(text) IS
  'The user id of a sign-in identity (external_id), for the gateway and carm_admin; P0002 when unknown';

REVOKE ALL ON FUNCTION carm.user_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.user_id(text) TO carm_gateway, carm_admin;
