-- §7 client groups (G1-G9) and the request-processing table (guide §6.5).
--
-- A group is a provider's named set of clients; its employees hold a default
-- proxy role on every client of the group.  Group access is derived by the
-- resolver (carm_internal.grants, G4/G5), so adding or removing clients writes one
-- group_client row per client and never fans out per employee or program.
-- Every operation is set-based (unnest, one availability query that finds all
-- offenders), so 10,000 clients with 500 employees stay well under a second.
--
-- Layout (one file each, 50-54): validation helpers; the functions that apply one
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
-- Lock order (docs/design.md "Concurrency"), the same in every function, so that
-- group operations, relationship changes and maintenance never deadlock:
--   1. relationship rows, by id        (relationship calls; ADD_CLIENTS)
--   2. client_group rows, by id        (group operations; the R9 cascade)
--   3. employee rows                   (G4, R7, E8)
--   4. the rows hanging off them: group_client, group_employee,
--      client_assignment, group_request
-- So an ADD_CLIENTS locks the relationships it relies on before the group
-- (carm_internal.group_lock_relationships), and the expiry cascade
-- (carm_internal.close_relationships) locks the groups of the clients it
-- removes before touching their rows.  Maintenance never waits for any row
-- (SKIP LOCKED / NOWAIT, rows 3 and 4 included: a promotion to BAM or a
-- removal writes rows 4 holding only row 3, sql/src/60_maintenance.sql): a
-- busy group, relationship, employee or assignment delays only its own
-- request or cascade, which is left for the next run.

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
  IF NOT carm_internal.bam_of(p_provider.id, p_user) THEN
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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN EXISTS (SELECT FROM carm.employee e WHERE e.business_id = g.provider_id AND e.user_id = p_user);
END
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
-- malformed ones), duplicates dropped, sorted.  NULL, or a NULL element, is
-- 22004; a multidimensional array 22023 (array_arg); an empty list
-- is refused unless p_allow_empty (create_client_group's default).
CREATE OR REPLACE FUNCTION carm_internal.bn9_list(p_bn9s text[], p_allow_empty boolean DEFAULT false) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text[];
BEGIN
  PERFORM carm_internal.not_null(p_bn9s, 'clients');
  p_bn9s := carm_internal.array_arg(p_bn9s, 'clients');       -- §10: 22023 / 22004
  IF cardinality(p_bn9s) = 0 AND NOT p_allow_empty THEN
    RAISE EXCEPTION 'clients must not be empty' USING ERRCODE = '22023';
  END IF;
  SELECT array_agg(coalesce(quote_literal(left(x, 32)), 'NULL') ORDER BY o) INTO v_bad
  FROM unnest(p_bn9s) WITH ORDINALITY AS t(x, o)
  WHERE NOT carm_internal.bn9_is_valid(x);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'invalid business numbers in clients: %', carm_internal.name_list(v_bad, 20)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT x FROM unnest(p_bn9s) x ORDER BY x);
END
$$;
COMMENT ON FUNCTION carm_internal.bn9_list(text[], boolean) IS
  'Internal: the checked, distinct, sorted BN9 list of a group operation';

-- The user_ids argument: one dimension (22023), no NULL element (22004), not
-- empty (22023), distinct, sorted.
CREATE OR REPLACE FUNCTION carm_internal.user_list(p_users bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.not_null(p_users, 'user_ids');
  p_users := carm_internal.array_arg(p_users, 'user_ids');    -- §10: 22023 / 22004
  IF cardinality(p_users) = 0 THEN
    RAISE EXCEPTION 'user_ids must not be empty' USING ERRCODE = '22023';
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
