-- §7 client groups, part 3: the public API (G1-G9), immediate or deferred.

-- Public API -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.create_client_group(provider_bn9 text, name text, clients text[] DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clock timestamptz;
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
  PERFORM carm_internal.group_add_clients(g, v_clients, v_actor, v_request, statement_timestamp());   -- G3
  v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = v_clock
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
