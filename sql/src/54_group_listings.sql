-- §7 client groups, part 5: listings (G9's request-processing table among
-- them), and privileges.

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

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'client_groups',
  params => 'provider_bn9 text',
  api_params => 'provider_bn9 text',
  args => 'provider_bn9',
  returns => 'TABLE (group_id bigint, name text, clients bigint, employees bigint, created_by bigint, created_at timestamptz, deleted_at timestamptz)',
  admin_comment => 'Internal: carm.client_groups() for carm_admin (any provider); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.client_groups() for the acting user, without admin powers');
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
    WHERE r.provider_id = b.id
      AND carm_internal.relationship_in_force(r.status, r.expires_at, statement_timestamp())
      AND NOT EXISTS (SELECT FROM carm.group_client gc
                      WHERE gc.provider_id = b.id AND gc.client_id = r.client_id)
    ORDER BY c.bn9;
END
$$;

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'available_clients',
  params => 'provider_bn9 text',
  api_params => 'provider_bn9 text',
  args => 'provider_bn9',
  returns => 'TABLE (client text, legal_name text, relationship_id bigint, access_type text, expires_at timestamptz)',
  admin_comment => 'Internal: carm.available_clients() for carm_admin (any provider); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.available_clients() for the acting user, without admin powers');
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

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'group_requests',
  params => 'provider_bn9 text',
  api_params => 'provider_bn9 text',
  args => 'provider_bn9',
  returns => 'TABLE (request_id bigint, operation text, group_id bigint, group_name text, initiator bigint, initiator_name text, status text, item_count integer, created_at timestamptz, started_at timestamptz, finished_at timestamptz, error text)',
  admin_comment => 'Internal: carm.group_requests() for carm_admin (any provider); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.group_requests() for the acting user, without admin powers');
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

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'group_clients',
  params => 'group_id bigint',
  api_params => 'group_id bigint',
  args => 'group_id',
  returns => 'TABLE (client text, legal_name text, added_at timestamptz)',
  admin_comment => 'Internal: carm.group_clients() for carm_admin (any group); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.group_clients() for the acting user, without admin powers');
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

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'group_employees',
  params => 'group_id bigint',
  api_params => 'group_id bigint',
  args => 'group_id',
  returns => 'TABLE (user_id bigint, full_name text, role text, assigned_at timestamptz)',
  admin_comment => 'Internal: carm.group_employees() for carm_admin (any group); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.group_employees() for the acting user, without admin powers');
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
