-- carm_deleg install script, assembled by the Makefile from sql/src/NN_*.sql.
-- Each source file holds one concern; this one creates the extension's roles.
\echo Use "CREATE EXTENSION carm_deleg" to load this file. \quit

-- The two NOLOGIN roles of §2.  Roles are cluster-wide and outlive the
-- extension, so they are created only when missing and never dropped by it.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'carm_gateway') THEN
    CREATE ROLE carm_gateway NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'carm_admin') THEN
    CREATE ROLE carm_admin NOLOGIN;
  END IF;
END
$roles$;

-- The schema holds superuser-owned SECURITY DEFINER functions: it must be
-- ours.  CREATE EXTENSION adopts an existing schema carm, so refuse one that
-- another role created beforehand (it could replace what we install).
DO $schema$
BEGIN
  IF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm')
     IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION 'schema carm is owned by another role'
      USING ERRCODE = '42501',
            HINT = 'Drop the schema, or let the role installing carm_deleg own it, before CREATE EXTENSION.';
  END IF;
END
$schema$;

-- Functions resolve through the schema; tables stay closed (see 90_privileges.sql).
GRANT USAGE ON SCHEMA carm TO PUBLIC;
-- C functions used by the data model itself (CHECK constraints, triggers).

CREATE FUNCTION carm._bn9_is_valid(text) RETURNS boolean
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_bn9_valid_sql';
COMMENT ON FUNCTION carm._bn9_is_valid(text) IS
  'True when the text is a BN9: nine digits, the last a Luhn check digit';

CREATE FUNCTION carm._bn15_is_valid(text) RETURNS boolean
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_bn15_valid_sql';
COMMENT ON FUNCTION carm._bn15_is_valid(text) IS
  'True when the text is a BN15: a valid BN9, RM, and four digits';

-- Statement-level trigger on every delegation-state table: makes every
-- backend's grant cache stale when the change commits (README "Cache").
CREATE FUNCTION carm._invalidate_cache() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_invalidate_cache';
-- The data model (README "Design / data model").  Tables are private to the
-- extension owner; every application role goes through the API functions.
--
-- Delegation state is stored as facts (who is employee with which role and
-- scope, which relationship is active with which type and programs, which
-- assignment or group exists).  Derived roles — PBAM/PPAM of provider BAMs,
-- group-derived proxy roles, EXPIRED — are never materialised: the resolver
-- (carm._grants) derives them, so promotions, demotions and time-based expiry
-- need no fan-out of updates.

-- §2 reference data ----------------------------------------------------------

CREATE TABLE carm.business (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bn9         text NOT NULL UNIQUE CHECK (carm._bn9_is_valid(bn9)),
  legal_name  text NOT NULL CHECK (btrim(legal_name) <> ''),
  kinds       text[] NOT NULL
              CHECK (kinds <@ ARRAY['IMPORTER','CUSTOMS_BROKER','TRADE_CONSULTANT']
                     AND cardinality(kinds) > 0),
  -- bumped by the E9 trigger: serialises concurrent BAM removals of one business
  bam_version bigint NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE carm.business IS 'Business accounts (BN9), loaded by carm_admin';

CREATE TABLE carm.program (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  business_id bigint NOT NULL REFERENCES carm.business,
  bn15        text NOT NULL UNIQUE CHECK (carm._bn15_is_valid(bn15)),
  name        text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON carm.program (business_id);
COMMENT ON TABLE carm.program IS 'Program accounts (BN15 = BN9 RM nnnn) of a business';

CREATE TABLE carm.app_user (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  external_id text NOT NULL UNIQUE CHECK (btrim(external_id) <> ''),
  full_name   text NOT NULL CHECK (btrim(full_name) <> ''),
  email       text,
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE carm.app_user IS 'Portal user profiles (the sign-in identity is external_id)';

CREATE TABLE carm.login_binding (
  login_role  oid PRIMARY KEY,                 -- pg_authid.oid of the login role
  user_id     bigint NOT NULL REFERENCES carm.app_user
);
COMMENT ON TABLE carm.login_binding IS 'Default actor of sessions whose session_user is login_role';

-- §4 employee delegation -----------------------------------------------------

CREATE TABLE carm.employee (
  business_id bigint NOT NULL REFERENCES carm.business,
  user_id     bigint NOT NULL REFERENCES carm.app_user,
  role        text NOT NULL CHECK (role IN ('BAM','PAM','EDITOR','VIEWER')),
  programs    bigint[],                        -- NULL = all programs, also later ones (E5, E12)
  granted_by  bigint REFERENCES carm.app_user,
  granted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (business_id, user_id)           -- one role per employee per business (E5)
);
CREATE INDEX ON carm.employee (user_id);
CREATE INDEX employee_bams ON carm.employee (business_id) WHERE role = 'BAM';
COMMENT ON TABLE carm.employee IS 'Approved employee associations: role and program scope (E1-E13)';

CREATE TABLE carm.access_request (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  business_id bigint NOT NULL REFERENCES carm.business,
  user_id     bigint NOT NULL REFERENCES carm.app_user,
  comment     text NOT NULL,
  status      text NOT NULL DEFAULT 'pending'
              CHECK (status IN ('pending','approved','rejected','withdrawn')),
  reason      text,                            -- rejection reason, shown to the requester (E4)
  role        text,                            -- role granted on approval
  programs    bigint[],
  decided_by  bigint REFERENCES carm.app_user,
  created_at  timestamptz NOT NULL DEFAULT now(),
  decided_at  timestamptz
);
CREATE UNIQUE INDEX access_request_one_pending
  ON carm.access_request (business_id, user_id) WHERE status = 'pending';   -- E2
CREATE INDEX ON carm.access_request (user_id);

-- §5 business relationships --------------------------------------------------

CREATE TABLE carm.relationship (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  provider_id   bigint NOT NULL REFERENCES carm.business,
  client_id     bigint NOT NULL REFERENCES carm.business,
  status        text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending','rejected','cancelled','active','expired','ended')),
  access_type   text CHECK (access_type IN ('BUSINESS','PROGRAM')),
  programs      bigint[],                      -- PROGRAM: delegated programs; BUSINESS: NULL
  see_client    boolean NOT NULL DEFAULT false,    -- V2(b)
  see_other     boolean NOT NULL DEFAULT false,    -- V2(c)
  expires_at    timestamptz,                   -- NULL = no expiry; R9 compares it with now()
  comment       text NOT NULL,
  reason        text,
  requested_by  bigint REFERENCES carm.app_user,
  decided_by    bigint REFERENCES carm.app_user,
  created_at    timestamptz NOT NULL DEFAULT now(),
  decided_at    timestamptz,
  closed_at     timestamptz,                   -- when it became expired/ended/cancelled
  expiry_notice_for timestamptz,               -- the expires_at the 30-day notice was sent for (R12)
  CHECK (provider_id <> client_id),
  CHECK (status <> 'active' OR access_type IS NOT NULL),
  CHECK (access_type IS DISTINCT FROM 'BUSINESS' OR programs IS NULL),
  CHECK (access_type IS DISTINCT FROM 'PROGRAM' OR cardinality(programs) > 0)
);
CREATE UNIQUE INDEX relationship_one_open
  ON carm.relationship (provider_id, client_id)
  WHERE status IN ('pending','rejected','active');                          -- R2
CREATE INDEX ON carm.relationship (client_id);
CREATE INDEX ON carm.relationship (provider_id);
CREATE INDEX relationship_due ON carm.relationship (expires_at) WHERE status = 'active';

-- Individual assignment of a provider employee to one client (R7).  Tied to
-- the relationship row, so a re-established relationship starts empty (R10).
CREATE TABLE carm.client_assignment (
  relationship_id bigint NOT NULL REFERENCES carm.relationship ON DELETE CASCADE,
  user_id         bigint NOT NULL REFERENCES carm.app_user,
  role            text NOT NULL CHECK (role IN ('PPAM','PEDITOR','PVIEWER')),
  programs        bigint[],                    -- NULL = every delegated program, following changes
  assigned_by     bigint REFERENCES carm.app_user,
  assigned_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (relationship_id, user_id)
);
CREATE INDEX ON carm.client_assignment (user_id);

-- §7 client groups -----------------------------------------------------------

CREATE TABLE carm.client_group (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  provider_id bigint NOT NULL REFERENCES carm.business,
  name        text NOT NULL CHECK (btrim(name) <> ''),
  name_key    text GENERATED ALWAYS AS (lower(btrim(name))) STORED,
  created_by  bigint REFERENCES carm.app_user,
  created_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz,
  UNIQUE (provider_id, name_key)               -- G2: deleted groups keep their name
);

CREATE TABLE carm.group_client (
  group_id    bigint NOT NULL REFERENCES carm.client_group,
  provider_id bigint NOT NULL REFERENCES carm.business,
  client_id   bigint NOT NULL REFERENCES carm.business,
  added_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, client_id),
  UNIQUE (provider_id, client_id)              -- G3: one live group per client and provider
);
CREATE INDEX ON carm.group_client (client_id);

CREATE TABLE carm.group_employee (
  group_id    bigint NOT NULL REFERENCES carm.client_group,
  user_id     bigint NOT NULL REFERENCES carm.app_user,
  role        text NOT NULL CHECK (role IN ('PPAM','PEDITOR','PVIEWER')),   -- G4
  assigned_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, user_id)
);
CREATE INDEX ON carm.group_employee (user_id);

-- The request-processing table (G9).
CREATE TABLE carm.group_request (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  provider_id  bigint NOT NULL REFERENCES carm.business,
  group_id     bigint REFERENCES carm.client_group,
  group_name   text NOT NULL,
  operation    text NOT NULL CHECK (operation IN ('CREATE_GROUP','ADD_CLIENTS','REMOVE_CLIENTS',
                                                  'ASSIGN_EMPLOYEES','UNASSIGN_EMPLOYEES','DELETE_GROUP')),
  initiator    bigint REFERENCES carm.app_user,
  status       text NOT NULL CHECK (status IN ('PENDING','PROCESSING','COMPLETED','FAILED')),
  item_count   integer NOT NULL DEFAULT 0,
  payload      jsonb,                          -- the deferred operation's arguments
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz,
  error        text
);
CREATE INDEX ON carm.group_request (provider_id);
CREATE INDEX group_request_pending ON carm.group_request (id) WHERE status = 'PENDING';

-- §9 audit and notifications -------------------------------------------------

CREATE TABLE carm.audit_event (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at              timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_id        bigint,
  db_role         name NOT NULL DEFAULT session_user,
  event           text NOT NULL,
  business_id     bigint,
  other_business_id bigint,
  target_user_id  bigint,
  relationship_id bigint,
  group_id        bigint,
  details         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ON carm.audit_event (business_id);
CREATE INDEX ON carm.audit_event (other_business_id);

CREATE TABLE carm.notification (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id    bigint NOT NULL REFERENCES carm.app_user,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  event      text NOT NULL,
  message    text NOT NULL,
  audit_id   bigint REFERENCES carm.audit_event
);
CREATE INDEX ON carm.notification (user_id);

-- Protected application tables (§8), recorded by carm.protect(): the table
-- and, for a partitioned table, each of its partitions (root = the table
-- protect() was called on), with the row-level-security flags they had
-- before, which carm.unprotect() restores.
CREATE TABLE carm.protected_table (
  relid           regclass PRIMARY KEY,
  root            regclass NOT NULL,
  program_column  name NOT NULL,
  submitter_column name NOT NULL,
  function        text NOT NULL,
  had_rls         boolean NOT NULL,
  had_force_rls   boolean NOT NULL,
  protected_at    timestamptz NOT NULL DEFAULT now()
);
-- §2 identity: who is acting.  Implemented in C (src/actor.c): the actor is a
-- guarded setting that only these functions can assign.

CREATE FUNCTION carm.set_actor(user_id bigint, is_local boolean DEFAULT true,
                               on_behalf_of text DEFAULT NULL) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
COMMENT ON FUNCTION carm.set_actor(bigint, boolean, text) IS
  'Act as this user until the end of the transaction (is_local) or of the session; carm_gateway only';

CREATE FUNCTION carm.set_actor(external_id text, is_local boolean DEFAULT true,
                               on_behalf_of text DEFAULT NULL) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
COMMENT ON FUNCTION carm.set_actor(text, boolean, text) IS
  'Act as the user with this sign-in identity; carm_gateway only';

CREATE FUNCTION carm.reset_actor() RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_reset_actor';
COMMENT ON FUNCTION carm.reset_actor() IS 'No acting user, for the transaction and the session';

CREATE FUNCTION carm.actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_actor_sql';
COMMENT ON FUNCTION carm.actor() IS 'The acting user, or NULL';

CREATE FUNCTION carm._on_behalf_of() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_acting_business_sql';
COMMENT ON FUNCTION carm._on_behalf_of() IS
  'Internal: the business fixed by set_actor(on_behalf_of => bn9), or NULL';

-- The actor for API functions: raises 42501 "no acting user" when none (§2).
CREATE FUNCTION carm._require_actor() RETURNS bigint
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v bigint := carm.actor();
BEGIN
  IF v IS NULL THEN
    RAISE EXCEPTION 'no acting user'
      USING ERRCODE = '42501',
            HINT = 'A member of carm_gateway must call carm.set_actor() first.';
  END IF;
  RETURN v;
END
$$;

REVOKE ALL ON FUNCTION carm.set_actor(bigint, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.set_actor(text, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.reset_actor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.set_actor(bigint, boolean, text) TO carm_gateway;
GRANT EXECUTE ON FUNCTION carm.set_actor(text, boolean, text) TO carm_gateway;
GRANT EXECUTE ON FUNCTION carm.reset_actor() TO carm_gateway;

CREATE FUNCTION carm._caller_is_admin() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_caller_is_admin';
COMMENT ON FUNCTION carm._caller_is_admin() IS
  'Internal: is the calling role (not a SECURITY DEFINER owner) a member of carm_admin';

CREATE FUNCTION carm._caller_role() RETURNS name
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_caller_role';
COMMENT ON FUNCTION carm._caller_role() IS 'Internal: the calling database role';

-- Raises 42501 unless the caller is a member of carm_admin.
CREATE FUNCTION carm._require_admin() RETURNS void
  LANGUAGE plpgsql STABLE
  SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT carm._caller_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
END
$$;
-- §9 audit and notifications.  Every API change calls carm._audit(); events a
-- person must see also get a row in carm.notification through carm._notify().

-- Publishes one audit event on channel carm_events: delivered at commit,
-- dropped on rollback, like the event itself.  The one place that shapes the
-- payload, for carm._audit() and for the set-based cascades alike.
CREATE FUNCTION carm._publish(p_id bigint, p_at timestamptz, p_actor bigint, p_event text,
                              p_business bigint, p_other_business bigint, p_target_user bigint,
                              p_relationship bigint, p_group bigint, p_details jsonb)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_notify('carm_events', json_build_object(
           'id', p_id, 'at', p_at, 'event', p_event, 'actor', p_actor,
           'business', p_business, 'other_business', p_other_business,
           'user', p_target_user, 'relationship', p_relationship,
           'group', p_group, 'details', p_details)::text);
$$;

-- Appends one audit event and publishes it.  The actor is carm.actor(),
-- unless the event is made for someone else (a deferred group request is
-- attributed to its initiator when maintenance applies it).
CREATE FUNCTION carm._audit(p_event text,
                            p_business bigint,
                            p_other_business bigint DEFAULT NULL,
                            p_target_user bigint DEFAULT NULL,
                            p_relationship bigint DEFAULT NULL,
                            p_group bigint DEFAULT NULL,
                            p_details jsonb DEFAULT '{}',
                            p_actor bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  e carm.audit_event;
BEGIN
  INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                target_user_id, relationship_id, group_id, details)
  VALUES (coalesce(p_actor, carm.actor()), carm._caller_role(), p_event, p_business,
          p_other_business, p_target_user, p_relationship, p_group, coalesce(p_details, '{}'))
  RETURNING * INTO e;
  PERFORM carm._publish(e.id, e.at, e.actor_id, e.event, e.business_id, e.other_business_id,
                        e.target_user_id, e.relationship_id, e.group_id, e.details);
  RETURN e.id;
END
$$;

-- A notification for one person (§9: what they must see).
CREATE FUNCTION carm._notify(p_user bigint, p_event text, p_message text, p_audit bigint DEFAULT NULL)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  VALUES (p_user, p_event, p_message, p_audit);
$$;

-- The audit trail is append-only (§9).
CREATE FUNCTION carm._audit_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only'
    USING ERRCODE = '42501', DETAIL = format('%s on carm.audit_event refused', TG_OP);
END
$$;
CREATE TRIGGER audit_event_append_only
  BEFORE UPDATE OR DELETE ON carm.audit_event
  FOR EACH ROW EXECUTE FUNCTION carm._audit_append_only();
CREATE TRIGGER audit_event_no_truncate
  BEFORE TRUNCATE ON carm.audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION carm._audit_append_only();

CREATE FUNCTION carm.audit_events(bn9 text DEFAULT NULL)
RETURNS TABLE (id bigint, at timestamptz, actor_id bigint, db_role name, event text,
               business text, other_business text, target_user_id bigint,
               relationship_id bigint, group_id bigint, details jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_business bigint;
  v_actor bigint;
BEGIN
  IF bn9 IS NULL THEN
    PERFORM carm._require_admin();       -- the whole trail: carm_admin only
  ELSE
    IF NOT carm._bn9_is_valid(bn9) THEN
      RAISE EXCEPTION 'invalid business number "%"', left(bn9, 32) USING ERRCODE = '22023';
    END IF;
    SELECT b.id INTO v_business FROM carm.business b WHERE b.bn9 = audit_events.bn9;
    IF v_business IS NULL THEN
      RAISE EXCEPTION 'business % does not exist', bn9 USING ERRCODE = 'P0002';
    END IF;
    -- Two statements, not one AND: the planner evaluates the STABLE
    -- carm._require_actor() while estimating the subquery, so an admin
    -- without an actor would get "no acting user".
    IF NOT carm._caller_is_admin() THEN
      v_actor := carm._require_actor();
      IF NOT EXISTS (SELECT FROM carm.employee e
                     WHERE e.business_id = v_business AND e.user_id = v_actor AND e.role = 'BAM') THEN
        RAISE EXCEPTION 'permission denied: only a business account manager of % reads its audit events', bn9
          USING ERRCODE = '42501';
      END IF;
    END IF;
  END IF;
  RETURN QUERY
    SELECT a.id, a.at, a.actor_id, a.db_role, a.event, b1.bn9, b2.bn9, a.target_user_id,
           a.relationship_id, a.group_id, a.details
    FROM carm.audit_event a
    LEFT JOIN carm.business b1 ON b1.id = a.business_id
    LEFT JOIN carm.business b2 ON b2.id = a.other_business_id
    WHERE v_business IS NULL OR a.business_id = v_business OR a.other_business_id = v_business
    ORDER BY a.id;
END
$$;
COMMENT ON FUNCTION carm.audit_events(text) IS
  'Audit events of a business (its BAMs, carm_admin); all events when bn9 is NULL (carm_admin)';

CREATE FUNCTION carm.my_notifications()
RETURNS TABLE (id bigint, created_at timestamptz, event text, message text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT n.id, n.created_at, n.event, n.message
  FROM carm.notification n
  WHERE n.user_id = carm._require_actor()
  ORDER BY n.id;
$$;
COMMENT ON FUNCTION carm.my_notifications() IS 'The acting user''s notifications (§9)';
-- The resolver (SPEC §3, §5, §7): every path by which a user holds a role on a
-- business or program account.  One row per (path, program); rows with a NULL
-- program_id are business-level (the role held at all-programs scope, or any
-- employee association for business_profile.view).
--
-- Derived roles are computed here, never stored:
--   R6  a provider BAM is PBAM (BUSINESS) or PPAM (PROGRAM) on the delegated programs;
--   R7  individual assignments, on delegated programs (NULL follows the relationship);
--   G4  group default roles, G5 overridden by an individual assignment;
--   V3  provider PAMs read what the provider submitted (role SPMGR);
--   V4  provider BAMs keep EXPIRED after the relationship expired or ended.
-- Time-based expiry (R9) is NOT decided here: rows carry expires_at and the C
-- check compares it with the transaction time, so a cached result stays exact.
--
-- A single SQL statement, not SECURITY DEFINER and without SET clauses, so the
-- planner inlines it and the C cache keeps one prepared plan for it.
CREATE FUNCTION carm._grants(p_user bigint)
RETURNS TABLE (business_id bigint, program_id bigint, role text, source text,
               provider_bam boolean, via_business_id bigint,
               see_client boolean, see_other boolean, all_programs boolean,
               expires_at timestamptz, relationship_id bigint, group_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
WITH emp AS NOT MATERIALIZED (
  SELECT e.business_id, e.role, e.programs
  FROM carm.employee e
  JOIN carm.app_user u ON u.id = e.user_id AND u.active          -- deactivated: nothing (§2)
  WHERE e.user_id = p_user
),
-- relationships of the providers I am a BAM or PAM of
managed AS NOT MATERIALIZED (
  SELECT r.*, e.role AS my_role
  FROM emp e
  JOIN carm.relationship r ON r.provider_id = e.business_id
  WHERE e.role IN ('BAM','PAM') AND r.status IN ('active','expired','ended')
),
-- proxy roles of a non-BAM provider employee: individual assignments (R7) and
-- group defaults (G4) not overridden by an individual assignment (G5)
assigned AS NOT MATERIALIZED (
  SELECT a.relationship_id, a.role, a.programs, NULL::bigint AS group_id
  FROM carm.client_assignment a
  WHERE a.user_id = p_user
  UNION ALL
  SELECT r.id, ge.role, NULL::bigint[], g.id
  FROM carm.group_employee ge
  JOIN carm.client_group g ON g.id = ge.group_id AND g.deleted_at IS NULL
  JOIN carm.group_client gc ON gc.group_id = g.id
  JOIN carm.relationship r ON r.provider_id = gc.provider_id AND r.client_id = gc.client_id
                          AND r.status = 'active'
  WHERE ge.user_id = p_user
    AND NOT EXISTS (SELECT 1 FROM carm.client_assignment a
                    WHERE a.relationship_id = r.id AND a.user_id = p_user)
)
-- V1: employee roles, business level
SELECT e.business_id, NULL::bigint, e.role, 'employee', false, e.business_id,
       true, true, e.programs IS NULL, NULL::timestamptz, NULL::bigint, NULL::bigint
FROM emp e
UNION ALL
-- V1: employee roles on the programs in scope (E5, E12)
SELECT e.business_id, p.id, e.role, 'employee', false, e.business_id,
       true, true, e.programs IS NULL, NULL, NULL, NULL
FROM emp e
JOIN carm.program p ON p.business_id = e.business_id
WHERE e.programs IS NULL OR p.id = ANY (e.programs)
UNION ALL
-- R6: PBAM at business level for BUSINESS relationships
SELECT m.client_id, NULL, 'PBAM', 'proxy', true, m.provider_id,
       m.see_client, m.see_other, true, m.expires_at, m.id, NULL
FROM managed m
WHERE m.my_role = 'BAM' AND m.status = 'active' AND m.access_type = 'BUSINESS'
UNION ALL
-- R6 / V3 / V4 per delegated program
SELECT m.client_id, p.id,
       CASE WHEN m.status <> 'active' THEN 'EXPIRED'
            WHEN m.my_role = 'PAM' THEN 'SPMGR'
            WHEN m.access_type = 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END,
       CASE WHEN m.status = 'active' THEN 'proxy' ELSE 'closed' END,
       m.my_role = 'BAM', m.provider_id,
       m.see_client, m.see_other, false, m.expires_at, m.id, NULL
FROM managed m
JOIN carm.program p ON p.business_id = m.client_id
                   AND (m.access_type = 'BUSINESS' OR p.id = ANY (m.programs))
WHERE m.status = 'active' OR m.my_role = 'BAM'
UNION ALL
-- R7 / G4 / G5: assigned proxy roles of provider employees who are not BAMs
SELECT r.client_id, p.id, x.role, 'proxy', false, r.provider_id,
       r.see_client, r.see_other, false, r.expires_at, r.id, x.group_id
FROM assigned x
JOIN carm.relationship r ON r.id = x.relationship_id AND r.status = 'active'
JOIN emp e ON e.business_id = r.provider_id AND e.role <> 'BAM'
JOIN carm.program p ON p.business_id = r.client_id
                   AND (r.access_type = 'BUSINESS' OR p.id = ANY (r.programs))
WHERE x.programs IS NULL OR p.id = ANY (x.programs)
$$;
COMMENT ON FUNCTION carm._grants(bigint) IS
  'Internal: every path by which a user holds a role (the resolver behind the C check)';
-- §2 reference data and identities: loaded by carm_admin (users also by
-- carm_gateway).  SECURITY DEFINER: the tables are closed to callers.

-- Validation helpers shared by every API file -------------------------------

-- Raises 22004 when a required argument is NULL.
CREATE FUNCTION carm._not_null(p_value anyelement, p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_value IS NULL THEN
    RAISE EXCEPTION '% must not be null', p_name USING ERRCODE = '22004';
  END IF;
END
$$;

-- Raises 22023 when a required text is NULL, blank, or too long.
CREATE FUNCTION carm._not_blank(p_value text, p_name text, p_max integer DEFAULT 4000) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_value IS NULL OR btrim(p_value) = '' THEN
    RAISE EXCEPTION '% must not be blank', p_name USING ERRCODE = '22023';
  END IF;
  IF length(p_value) > p_max THEN
    RAISE EXCEPTION '% is too long (% characters, at most %)', p_name, length(p_value), p_max
      USING ERRCODE = '22023';
  END IF;
  RETURN btrim(p_value);
END
$$;

-- The id of a business from its BN9: 22023 when malformed, P0002 when unknown.
CREATE FUNCTION carm._business(p_bn9 text) RETURNS carm.business
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business;
BEGIN
  IF p_bn9 IS NULL OR NOT carm._bn9_is_valid(p_bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(p_bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  SELECT * INTO b FROM carm.business WHERE bn9 = p_bn9;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'business % does not exist', p_bn9 USING ERRCODE = 'P0002';
  END IF;
  RETURN b;
END
$$;

-- Program ids from a list of BN15 of one business (22023 otherwise).
-- NULL stays NULL (= all programs); an empty list is refused.
CREATE FUNCTION carm._programs_of(p_business bigint, p_bn15s text[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ids bigint[];
  v_bad text;
BEGIN
  IF p_bn15s IS NULL THEN
    RETURN NULL;
  END IF;
  IF cardinality(p_bn15s) = 0 THEN
    RAISE EXCEPTION 'program list must not be empty'
      USING ERRCODE = '22023', HINT = 'Pass NULL for all programs.';
  END IF;
  SELECT x INTO v_bad FROM unnest(p_bn15s) x WHERE x IS NULL OR NOT carm._bn15_is_valid(x) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(v_bad, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 looks like 123456782RM0001.';
  END IF;
  SELECT x INTO v_bad FROM unnest(p_bn15s) x
  WHERE NOT EXISTS (SELECT FROM carm.program p WHERE p.bn15 = x AND p.business_id = p_business)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'program account % does not belong to this business', v_bad
      USING ERRCODE = '22023';
  END IF;
  SELECT array_agg(DISTINCT p.id ORDER BY p.id) INTO v_ids
  FROM carm.program p WHERE p.bn15 = ANY (p_bn15s);
  RETURN v_ids;
END
$$;

-- BN15 list of program ids (for listings); NULL stays NULL.
CREATE FUNCTION carm._bn15s(p_ids bigint[]) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_ids IS NULL THEN NULL
              ELSE coalesce((SELECT array_agg(p.bn15 ORDER BY p.bn15) FROM carm.program p
                             WHERE p.id = ANY (p_ids)), '{}') END;
$$;

CREATE FUNCTION carm._check_kinds(p_kinds text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text;
BEGIN
  IF p_kinds IS NULL OR cardinality(p_kinds) = 0 THEN
    RAISE EXCEPTION 'a business needs at least one kind' USING ERRCODE = '22023',
      HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT.';
  END IF;
  SELECT k INTO v_bad FROM unnest(p_kinds) k
  WHERE k IS NULL OR k NOT IN ('IMPORTER','CUSTOMS_BROKER','TRADE_CONSULTANT') LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'unknown business kind "%"', v_bad USING ERRCODE = '22023',
      HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT k FROM unnest(p_kinds) k ORDER BY k);
END
$$;

-- Users ----------------------------------------------------------------------

CREATE FUNCTION carm.register_user(external_id text, full_name text, email text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_ext text := carm._not_blank(external_id, 'external_id', 256);
  v_name text := carm._not_blank(full_name, 'full_name', 256);
BEGIN
  IF email IS NOT NULL AND (length(email) > 320 OR email !~ '^[^@\s]+@[^@\s]+$') THEN
    RAISE EXCEPTION 'invalid email address "%"', left(email, 64) USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT FROM carm.app_user u WHERE u.external_id = v_ext) THEN
    RAISE EXCEPTION 'a user with external id "%" already exists', v_ext USING ERRCODE = '23505';
  END IF;
  INSERT INTO carm.app_user (external_id, full_name, email)
  VALUES (v_ext, v_name, email) RETURNING id INTO v_id;
  PERFORM carm._audit('user_registered', NULL, NULL, v_id, NULL, NULL,
                      jsonb_build_object('external_id', v_ext));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.register_user(text, text, text) IS
  'Create a user profile; external_id is the unique sign-in identity (carm_gateway, carm_admin)';

CREATE FUNCTION carm._user(p_user bigint) RETURNS carm.app_user
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user;
BEGIN
  PERFORM carm._not_null(p_user, 'user_id');
  SELECT * INTO u FROM carm.app_user WHERE id = p_user;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % does not exist', p_user USING ERRCODE = 'P0002';
  END IF;
  RETURN u;
END
$$;

CREATE FUNCTION carm.deactivate_user(user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm._user(user_id);
BEGIN
  IF u.active THEN
    UPDATE carm.app_user SET active = false WHERE id = u.id;
    PERFORM carm._audit('user_deactivated', NULL, NULL, u.id);
  END IF;
END
$$;
COMMENT ON FUNCTION carm.deactivate_user(bigint) IS
  'A deactivated user has no access until reactivated (carm_admin)';

CREATE FUNCTION carm.reactivate_user(user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm._user(user_id);
BEGIN
  IF NOT u.active THEN
    UPDATE carm.app_user SET active = true WHERE id = u.id;
    PERFORM carm._audit('user_reactivated', NULL, NULL, u.id);
  END IF;
END
$$;
COMMENT ON FUNCTION carm.reactivate_user(bigint) IS 'Give a deactivated user its access back (carm_admin)';

CREATE FUNCTION carm.bind_login_role(user_id bigint, login regrole) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm._user(user_id);
BEGIN
  PERFORM carm._not_null(login, 'login');
  -- a numeric regrole is not checked by the cast
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r WHERE r.oid = login) THEN
    RAISE EXCEPTION 'role with oid % does not exist', login::oid USING ERRCODE = '42704';
  END IF;
  INSERT INTO carm.login_binding (login_role, user_id) VALUES (login, u.id)
  ON CONFLICT (login_role) DO UPDATE SET user_id = excluded.user_id;
  PERFORM carm._audit('login_bound', NULL, NULL, u.id, NULL, NULL,
                      jsonb_build_object('login', login::text));
END
$$;
COMMENT ON FUNCTION carm.bind_login_role(bigint, regrole) IS
  'Sessions whose session_user is this role act as this user by default (carm_admin)';

-- Businesses and program accounts ------------------------------------------

CREATE FUNCTION carm.add_business(bn9 text, legal_name text, kinds text[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_name text := carm._not_blank(legal_name, 'legal_name', 512);
  v_kinds text[] := carm._check_kinds(kinds);
BEGIN
  IF bn9 IS NULL OR NOT carm._bn9_is_valid(bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a Luhn check digit.';
  END IF;
  IF EXISTS (SELECT FROM carm.business b WHERE b.bn9 = add_business.bn9) THEN
    RAISE EXCEPTION 'business % already exists', bn9 USING ERRCODE = '23505';
  END IF;
  INSERT INTO carm.business (bn9, legal_name, kinds) VALUES (bn9, v_name, v_kinds)
  RETURNING id INTO v_id;
  PERFORM carm._audit('business_added', v_id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('bn9', bn9, 'kinds', v_kinds));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.add_business(text, text, text[]) IS
  'Load a business account (BN9 with check digit) and its kinds (carm_admin)';

CREATE FUNCTION carm.add_program_account(bn15 text, name text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  b carm.business;
BEGIN
  IF bn15 IS NULL OR NOT carm._bn15_is_valid(bn15) THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(bn15, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 is a BN9, RM and four digits, e.g. 123456782RM0001.';
  END IF;
  b := carm._business(left(bn15, 9));
  IF EXISTS (SELECT FROM carm.program p WHERE p.bn15 = add_program_account.bn15) THEN
    RAISE EXCEPTION 'program account % already exists', bn15 USING ERRCODE = '23505';
  END IF;
  IF name IS NOT NULL AND length(name) > 512 THEN
    RAISE EXCEPTION 'name is too long' USING ERRCODE = '22023';
  END IF;
  INSERT INTO carm.program (business_id, bn15, name) VALUES (b.id, bn15, name)
  RETURNING id INTO v_id;
  PERFORM carm._audit('program_added', b.id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('bn15', bn15));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.add_program_account(text, text) IS
  'Load a program account (BN15) of an existing business (carm_admin); E12: all-programs grants cover it at once';

CREATE FUNCTION carm.set_business_kinds(bn9 text, kinds text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm._business(bn9);
  v_kinds text[] := carm._check_kinds(kinds);
BEGIN
  UPDATE carm.business SET kinds = v_kinds WHERE id = b.id;
  PERFORM carm._audit('business_kinds_set', b.id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('before', b.kinds, 'after', v_kinds));
END
$$;
COMMENT ON FUNCTION carm.set_business_kinds(text, text[]) IS
  'Replace the kinds of a business (carm_admin)';

CREATE FUNCTION carm.business_id(bn9 text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (carm._business(bn9)).id $$;
COMMENT ON FUNCTION carm.business_id(text) IS
  'Internal id of a business, for application tables (22023 malformed, P0002 unknown)';

CREATE FUNCTION carm.program_id(bn15 text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF bn15 IS NULL OR NOT carm._bn15_is_valid(bn15) THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(bn15, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 looks like 123456782RM0001.';
  END IF;
  SELECT p.id INTO v_id FROM carm.program p WHERE p.bn15 = program_id.bn15;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'program account % does not exist', bn15 USING ERRCODE = 'P0002';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.program_id(text) IS
  'Internal id of a program account, for application tables (22023 malformed, P0002 unknown)';

REVOKE ALL ON FUNCTION carm.register_user(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.register_user(text, text, text) TO carm_gateway, carm_admin;
REVOKE ALL ON FUNCTION carm.deactivate_user(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.reactivate_user(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.bind_login_role(bigint, regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_business(text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_program_account(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.set_business_kinds(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.deactivate_user(bigint), carm.reactivate_user(bigint),
  carm.bind_login_role(bigint, regrole), carm.add_business(text, text, text[]),
  carm.add_program_account(text, text), carm.set_business_kinds(text, text[]) TO carm_admin;
-- §4 the employee rules that hold for every write to carm.employee, API or
-- not (src/hierarchy.c).  E5 and E9 always; E6 and E7 when an actor is set.

CREATE FUNCTION carm._employee_guard() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_employee_guard';
COMMENT ON FUNCTION carm._employee_guard() IS
  'E5 valid role and scope; E6 not one''s own access (but E1); E7 BAM > PAM > EDITOR/VIEWER (row trigger)';

CREATE FUNCTION carm._employee_bams() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_employee_bams';
COMMENT ON FUNCTION carm._employee_bams() IS
  'E9 a business keeps at least one BAM, serialised on the business row; E10 warns when one is left (row trigger)';

CREATE TRIGGER employee_guard
  BEFORE INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm._employee_guard();
CREATE TRIGGER employee_bams
  AFTER INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm._employee_bams();
-- §4 employee delegation: registering a business, access requests and their
-- decisions, role changes, removal, listings.  Every function acts as the
-- actor (§2).  The row triggers of 25_hierarchy.sql stay the authority for
-- E5, E6, E7 and E9; the checks repeated here give the caller the error in a
-- useful order (who may act, then what was asked, then the state) and the
-- E1, E2, E4 and E8 rules that are not about a single employee row.

-- Helpers ---------------------------------------------------------------------

-- The actor, who must be an active user: a deactivated user has no access (§2).
CREATE FUNCTION carm._require_active_actor() RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
BEGIN
  IF NOT EXISTS (SELECT FROM carm.app_user u WHERE u.id = v_actor AND u.active) THEN
    RAISE EXCEPTION 'acting user % is deactivated', v_actor
      USING ERRCODE = '42501', HINT = 'A carm_admin reactivates users with carm.reactivate_user().';
  END IF;
  RETURN v_actor;
END
$$;

-- An employee role name, normalised (E5): 22004 when NULL, 22023 when unknown.
CREATE FUNCTION carm._employee_role(p_role text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role text;
BEGIN
  PERFORM carm._not_null(p_role, 'role');
  v_role := upper(btrim(left(p_role, 64)));
  IF v_role NOT IN ('BAM', 'PAM', 'EDITOR', 'VIEWER') THEN
    RAISE EXCEPTION 'unknown employee role "%"', left(p_role, 32)
      USING ERRCODE = '22023', HINT = 'Employee roles are BAM, PAM, EDITOR and VIEWER.';
  END IF;
  RETURN v_role;
END
$$;

-- The actor's own employee row when it manages the business's employees
-- (E3: a BAM, or a PAM); 42501 otherwise.
CREATE FUNCTION carm._manager_of(p_business carm.business, p_actor bigint) RETURNS carm.employee
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m carm.employee;
BEGIN
  SELECT e.* INTO m FROM carm.employee e
  WHERE e.business_id = p_business.id AND e.user_id = p_actor;
  IF NOT FOUND OR m.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied to manage the employees of business %', p_business.bn9
      USING ERRCODE = '42501',
            DETAIL = CASE WHEN m.role IS NULL THEN format('User %s is not an employee of this business.', p_actor)
                          ELSE format('User %s is %s of this business.', p_actor, m.role) END,
            HINT = 'Only its business account managers and program account managers manage employees.';
  END IF;
  RETURN m;
END
$$;

-- A scope for people: 'all programs' or the BN15 list.
CREATE FUNCTION carm._scope_text(p_programs bigint[]) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce('programs ' || array_to_string(carm._bn15s(p_programs), ', '), 'all programs');
$$;

-- An access request, locked for a decision; P0002 when unknown.
CREATE FUNCTION carm._access_request(p_request bigint) RETURNS carm.access_request
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.access_request;
BEGIN
  PERFORM carm._not_null(p_request, 'request_id');
  SELECT * INTO r FROM carm.access_request x WHERE x.id = p_request FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'access request % does not exist', p_request USING ERRCODE = 'P0002';
  END IF;
  RETURN r;
END
$$;

CREATE FUNCTION carm._require_pending(r carm.access_request) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF r.status <> 'pending' THEN
    RAISE EXCEPTION 'access request % is %, not pending', r.id, r.status USING ERRCODE = '55000';
  END IF;
END
$$;

-- E1: registering a business ---------------------------------------------------

CREATE FUNCTION carm.register_business(bn9 text, bn15 text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  v_bn9 text := register_business.bn9;
  v_bn15 text := register_business.bn15;
  b carm.business;
  v_before text;
BEGIN
  -- E1: an unknown BN9 is a wrong argument here (22023), not a missing row:
  -- the user typed it to prove who they work for.
  IF v_bn9 IS NULL OR NOT carm._bn9_is_valid(v_bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(v_bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  SELECT * INTO b FROM carm.business x WHERE x.bn9 = v_bn9;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'business % is not known to the CBSA', v_bn9
      USING ERRCODE = '22023', HINT = 'Check the business number.';
  END IF;
  IF v_bn15 IS NULL OR NOT carm._bn15_is_valid(v_bn15) THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(v_bn15, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 looks like 123456782RM0001.';
  END IF;
  IF NOT EXISTS (SELECT FROM carm.program p WHERE p.bn15 = v_bn15 AND p.business_id = b.id) THEN
    RAISE EXCEPTION 'program account % is not a program account of business %', v_bn15, v_bn9
      USING ERRCODE = '22023',
            HINT = 'Prove the link with one of the business''s RM program account numbers.';
  END IF;
  IF EXISTS (SELECT FROM carm.employee e WHERE e.business_id = b.id AND e.role = 'BAM') THEN
    RAISE EXCEPTION 'business % already has a business account manager', v_bn9
      USING ERRCODE = '55000',
            HINT = 'Request access from its business account manager with carm.request_employee_access().';
  END IF;

  -- The trigger re-checks "no BAM yet" under the business's lock (E1 races).
  SELECT e.role INTO v_before FROM carm.employee e
  WHERE e.business_id = b.id AND e.user_id = v_actor;
  IF FOUND THEN
    UPDATE carm.employee e SET role = 'BAM', programs = NULL, granted_by = v_actor, granted_at = now()
    WHERE e.business_id = b.id AND e.user_id = v_actor;
  ELSE
    INSERT INTO carm.employee (business_id, user_id, role, programs, granted_by)
    VALUES (b.id, v_actor, 'BAM', NULL, v_actor);
  END IF;
  -- a request still pending is moot now (E2 allows one; nobody need decide it)
  UPDATE carm.access_request r SET status = 'withdrawn', decided_by = v_actor, decided_at = now()
  WHERE r.business_id = b.id AND r.user_id = v_actor AND r.status = 'pending';

  PERFORM carm._audit('business_registered', b.id, NULL, v_actor, NULL, NULL,
                      jsonb_build_object('bn15', v_bn15, 'role', 'BAM', 'before', v_before));
END
$$;
COMMENT ON FUNCTION carm.register_business(text, text) IS
  'E1: link the actor to a business that has no BAM, proving it with one of its BN15; the actor becomes its BAM';

-- E2: access requests ------------------------------------------------------------

CREATE FUNCTION carm.request_employee_access(bn9 text, comment text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  b carm.business := carm._business(request_employee_access.bn9);
  v_comment text := carm._not_blank(request_employee_access.comment, 'comment', 4000);
  v_id bigint;
BEGIN
  IF EXISTS (SELECT FROM carm.employee e WHERE e.business_id = b.id AND e.user_id = v_actor) THEN
    RAISE EXCEPTION 'you are already an employee of business %', b.bn9
      USING ERRCODE = '55000', HINT = 'Ask one of its managers to change your access.';
  END IF;
  IF EXISTS (SELECT FROM carm.access_request r
             WHERE r.business_id = b.id AND r.user_id = v_actor AND r.status = 'pending') THEN
    RAISE EXCEPTION 'you already have a pending access request for business %', b.bn9
      USING ERRCODE = '23505',
            HINT = 'Wait for a decision, or withdraw it with carm.withdraw_employee_access_request().';
  END IF;
  -- a concurrent duplicate still fails: unique index access_request_one_pending (23505)
  INSERT INTO carm.access_request (business_id, user_id, comment)
  VALUES (b.id, v_actor, v_comment) RETURNING id INTO v_id;
  PERFORM carm._audit('employee_access_requested', b.id, NULL, v_actor, NULL, NULL,
                      jsonb_build_object('request_id', v_id, 'comment', v_comment));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.request_employee_access(text, text) IS
  'E2: ask a business for access; one pending request per user and business; returns the request id';

CREATE FUNCTION carm.withdraw_employee_access_request(request_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  r carm.access_request := carm._access_request(withdraw_employee_access_request.request_id);
BEGIN
  IF r.user_id <> v_actor THEN
    RAISE EXCEPTION 'permission denied to withdraw access request %', r.id
      USING ERRCODE = '42501', DETAIL = 'Only the requester withdraws a request.';
  END IF;
  PERFORM carm._require_pending(r);
  UPDATE carm.access_request x SET status = 'withdrawn', decided_by = v_actor, decided_at = now()
  WHERE x.id = r.id;
  PERFORM carm._audit('employee_access_withdrawn', r.business_id, NULL, v_actor, NULL, NULL,
                      jsonb_build_object('request_id', r.id));
END
$$;
COMMENT ON FUNCTION carm.withdraw_employee_access_request(bigint) IS
  'The requester withdraws its pending access request';

-- E3, E4: decisions --------------------------------------------------------------

CREATE FUNCTION carm.approve_employee_access(request_id bigint, role text, programs text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  r carm.access_request := carm._access_request(approve_employee_access.request_id);
  b carm.business;
  v_role text;
  v_programs bigint[];
  v_audit bigint;
BEGIN
  SELECT * INTO b FROM carm.business x WHERE x.id = r.business_id;
  IF r.user_id = v_actor THEN                                             -- E6
    RAISE EXCEPTION 'permission denied to approve your own access request'
      USING ERRCODE = '42501', DETAIL = 'Nobody may change, remove or approve their own access.';
  END IF;
  PERFORM carm._manager_of(b, v_actor);                                   -- E3
  v_role := carm._employee_role(approve_employee_access.role);
  v_programs := carm._programs_of(b.id, approve_employee_access.programs); -- E5
  PERFORM carm._require_pending(r);
  IF EXISTS (SELECT FROM carm.employee e WHERE e.business_id = b.id AND e.user_id = r.user_id) THEN
    RAISE EXCEPTION 'user % is already an employee of business %', r.user_id, b.bn9
      USING ERRCODE = '55000', HINT = 'Reject the request, or change the employee''s access instead.';
  END IF;

  -- the row trigger enforces E5, E7 and E3's limits on what a PAM grants
  INSERT INTO carm.employee (business_id, user_id, role, programs, granted_by)
  VALUES (b.id, r.user_id, v_role, v_programs, v_actor);
  UPDATE carm.access_request x
  SET status = 'approved', role = v_role, programs = v_programs, decided_by = v_actor, decided_at = now()
  WHERE x.id = r.id;

  v_audit := carm._audit('employee_access_approved', b.id, NULL, r.user_id, NULL, NULL,
                         jsonb_build_object('request_id', r.id, 'role', v_role,
                                            'programs', carm._bn15s(v_programs)));
  PERFORM carm._notify(r.user_id, 'employee_access_approved',
                       format('Your access request to %s (%s) was approved: %s on %s.',
                              b.legal_name, b.bn9, v_role, carm._scope_text(v_programs)),
                       v_audit);
END
$$;
COMMENT ON FUNCTION carm.approve_employee_access(bigint, text, text[]) IS
  'E3: a BAM, or a PAM within its programs, approves a pending request with a role and a scope (NULL = all programs)';

CREATE FUNCTION carm.reject_employee_access(request_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  r carm.access_request := carm._access_request(reject_employee_access.request_id);
  b carm.business;
  v_reason text;
  v_audit bigint;
BEGIN
  SELECT * INTO b FROM carm.business x WHERE x.id = r.business_id;
  IF r.user_id = v_actor THEN                                             -- E6
    RAISE EXCEPTION 'permission denied to decide your own access request'
      USING ERRCODE = '42501', HINT = 'Withdraw it with carm.withdraw_employee_access_request().';
  END IF;
  PERFORM carm._manager_of(b, v_actor);                                   -- E3
  v_reason := carm._not_blank(reject_employee_access.reason, 'reason', 4000);   -- E4
  PERFORM carm._require_pending(r);

  UPDATE carm.access_request x
  SET status = 'rejected', reason = v_reason, decided_by = v_actor, decided_at = now()
  WHERE x.id = r.id;
  v_audit := carm._audit('employee_access_rejected', b.id, NULL, r.user_id, NULL, NULL,
                         jsonb_build_object('request_id', r.id, 'reason', v_reason));
  PERFORM carm._notify(r.user_id, 'employee_access_rejected',
                       format('Your access request to %s (%s) was rejected: %s',
                              b.legal_name, b.bn9, v_reason),
                       v_audit);
END
$$;
COMMENT ON FUNCTION carm.reject_employee_access(bigint, text) IS
  'E4: a BAM or PAM rejects a pending request with a non-blank reason, which the requester sees';

-- E7, E8, E11: changing and removing employees ----------------------------------

CREATE FUNCTION carm.set_employee_access(bn9 text, user_id bigint, role text, programs text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  b carm.business := carm._business(set_employee_access.bn9);
  u carm.app_user := carm._user(set_employee_access.user_id);
  v_role text;
  v_programs bigint[];
  old carm.employee;
  v_audit bigint;
BEGIN
  IF u.id = v_actor THEN                                                  -- E6
    RAISE EXCEPTION 'permission denied to change your own access'
      USING ERRCODE = '42501', DETAIL = 'Nobody may change, remove or approve their own access.',
            HINT = 'Ask another business account manager.';
  END IF;
  PERFORM carm._manager_of(b, v_actor);                                   -- E3
  v_role := carm._employee_role(set_employee_access.role);
  v_programs := carm._programs_of(b.id, set_employee_access.programs);   -- E5
  SELECT e.* INTO old FROM carm.employee e
  WHERE e.business_id = b.id AND e.user_id = u.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not an employee of business %', u.id, b.bn9
      USING ERRCODE = 'P0002', HINT = 'Employees join through carm.request_employee_access().';
  END IF;

  -- the row triggers enforce E5, E7 (E3) and E9, and warn for E10
  UPDATE carm.employee e
  SET role = v_role, programs = v_programs, granted_by = v_actor, granted_at = now()
  WHERE e.business_id = b.id AND e.user_id = u.id;

  -- E11: a BAM holds the business's proxy roles through R6, never through
  -- individual or group assignments (R7, G4): drop them, so that a later
  -- demotion leaves exactly the new role's scope.
  IF v_role = 'BAM' AND old.role <> 'BAM' THEN
    DELETE FROM carm.client_assignment a USING carm.relationship r
    WHERE a.relationship_id = r.id AND r.provider_id = b.id AND a.user_id = u.id;
    DELETE FROM carm.group_employee ge USING carm.client_group g
    WHERE ge.group_id = g.id AND g.provider_id = b.id AND ge.user_id = u.id;
  END IF;

  v_audit := carm._audit('employee_access_changed', b.id, NULL, u.id, NULL, NULL,
                         jsonb_build_object(
                           'before', jsonb_build_object('role', old.role, 'programs', carm._bn15s(old.programs)),
                           'after', jsonb_build_object('role', v_role, 'programs', carm._bn15s(v_programs))));
  PERFORM carm._notify(u.id, 'employee_access_changed',
                       format('Your access to %s (%s) is now %s on %s.',
                              b.legal_name, b.bn9, v_role, carm._scope_text(v_programs)),
                       v_audit);
END
$$;
COMMENT ON FUNCTION carm.set_employee_access(text, bigint, text, text[]) IS
  'E7/E11: change an employee''s role and scope (NULL = all programs); BAM changes anyone, PAM non-BAMs within its programs';

CREATE FUNCTION carm.remove_employee(bn9 text, user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  b carm.business := carm._business(remove_employee.bn9);
  u carm.app_user := carm._user(remove_employee.user_id);
  m carm.employee;
  old carm.employee;
  v_assignments bigint;
  v_groups bigint;
  v_audit bigint;
BEGIN
  IF u.id = v_actor THEN                                                  -- E6
    RAISE EXCEPTION 'permission denied to remove yourself'
      USING ERRCODE = '42501', DETAIL = 'Nobody may change, remove or approve their own access.',
            HINT = 'Ask another business account manager.';
  END IF;
  m := carm._manager_of(b, v_actor);
  IF m.role <> 'BAM' THEN                                                 -- E8
    RAISE EXCEPTION 'permission denied to remove employees of business %', b.bn9
      USING ERRCODE = '42501', DETAIL = 'Only a business account manager removes employees.';
  END IF;
  SELECT e.* INTO old FROM carm.employee e
  WHERE e.business_id = b.id AND e.user_id = u.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not an employee of business %', u.id, b.bn9 USING ERRCODE = 'P0002';
  END IF;

  -- E8: everything held through this business goes, so that approving the
  -- user again later restores nothing: proxy assignments (R7) and client
  -- group assignments (G4) made for the user by this business as provider.
  DELETE FROM carm.client_assignment a USING carm.relationship r
  WHERE a.relationship_id = r.id AND r.provider_id = b.id AND a.user_id = u.id;
  GET DIAGNOSTICS v_assignments = ROW_COUNT;
  DELETE FROM carm.group_employee ge USING carm.client_group g
  WHERE ge.group_id = g.id AND g.provider_id = b.id AND ge.user_id = u.id;
  GET DIAGNOSTICS v_groups = ROW_COUNT;
  DELETE FROM carm.employee e WHERE e.business_id = b.id AND e.user_id = u.id;

  v_audit := carm._audit('employee_removed', b.id, NULL, u.id, NULL, NULL,
                         jsonb_build_object('role', old.role, 'programs', carm._bn15s(old.programs),
                                            'client_assignments', v_assignments,
                                            'group_assignments', v_groups));
  PERFORM carm._notify(u.id, 'employee_removed',
                       format('Your access to %s (%s) was removed.', b.legal_name, b.bn9), v_audit);
END
$$;
COMMENT ON FUNCTION carm.remove_employee(text, bigint) IS
  'E8: a BAM removes an employee with every access held through the business (proxy and group assignments)';

-- Listings -------------------------------------------------------------------------

CREATE FUNCTION carm.employees(bn9 text)
RETURNS TABLE (user_id bigint, external_id text, full_name text, email text, active boolean,
               role text, programs text[], granted_by bigint, granted_at timestamptz,
               can_change boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  b carm.business := carm._business(employees.bn9);
  m carm.employee := carm._manager_of(b, v_actor);                        -- E3
BEGIN
  -- A BAM sees everyone; a PAM the employees who hold some of its programs
  -- (all-programs employees included).  can_change applies E6 and E7.
  RETURN QUERY
    SELECT e.user_id, u.external_id, u.full_name, u.email, u.active, e.role,
           carm._bn15s(e.programs), e.granted_by, e.granted_at,
           e.user_id <> v_actor
             AND (m.role = 'BAM'
                  OR (e.role <> 'BAM' AND (m.programs IS NULL
                                           OR (e.programs IS NOT NULL AND e.programs <@ m.programs))))
    FROM carm.employee e
    JOIN carm.app_user u ON u.id = e.user_id
    WHERE e.business_id = b.id
      AND (m.role = 'BAM' OR m.programs IS NULL OR e.programs IS NULL OR e.programs && m.programs)
    ORDER BY array_position(ARRAY['BAM','PAM','EDITOR','VIEWER'], e.role), u.full_name, e.user_id;
END
$$;
COMMENT ON FUNCTION carm.employees(text) IS
  'E3: the employees of a business, for its BAMs (all) and PAMs (those holding some of its programs)';

CREATE FUNCTION carm.employee_access_requests(bn9 text)
RETURNS TABLE (request_id bigint, user_id bigint, external_id text, full_name text, email text,
               comment text, status text, created_at timestamptz, role text, programs text[],
               reason text, decided_by bigint, decided_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_active_actor();
  b carm.business := carm._business(employee_access_requests.bn9);
BEGIN
  PERFORM carm._manager_of(b, v_actor);                                   -- E3
  RETURN QUERY
    SELECT r.id, r.user_id, u.external_id, u.full_name, u.email, r.comment, r.status, r.created_at,
           r.role, carm._bn15s(r.programs), r.reason, r.decided_by, r.decided_at
    FROM carm.access_request r
    JOIN carm.app_user u ON u.id = r.user_id
    WHERE r.business_id = b.id
    ORDER BY r.status <> 'pending', r.id;
END
$$;
COMMENT ON FUNCTION carm.employee_access_requests(text) IS
  'E2/E3: the access requests of a business with the requesters'' comments, pending first (its BAMs and PAMs)';

CREATE FUNCTION carm.my_access_requests()
RETURNS TABLE (request_id bigint, bn9 text, legal_name text, comment text, status text,
               reason text, role text, programs text[], created_at timestamptz, decided_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.id, b.bn9, b.legal_name, r.comment, r.status, r.reason, r.role, carm._bn15s(r.programs),
         r.created_at, r.decided_at
  FROM carm.access_request r
  JOIN carm.business b ON b.id = r.business_id
  WHERE r.user_id = carm._require_actor()
  ORDER BY r.id;
$$;
COMMENT ON FUNCTION carm.my_access_requests() IS
  'E4: the actor''s access requests, with their status and any rejection reason';

CREATE FUNCTION carm.my_businesses()
RETURNS TABLE (bn9 text, legal_name text, kinds text[], role text, programs text[], granted_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT b.bn9, b.legal_name, b.kinds, e.role, carm._bn15s(e.programs), e.granted_at
  FROM carm.employee e
  JOIN carm.business b ON b.id = e.business_id
  WHERE e.user_id = carm._require_actor()
  ORDER BY b.bn9;
$$;
COMMENT ON FUNCTION carm.my_businesses() IS
  'The businesses the actor is an employee of, with its role and scope (NULL programs = all)';

-- Privileges: application connections (carm_gateway) call these after set_actor().
REVOKE ALL ON FUNCTION carm.register_business(text, text),
  carm.request_employee_access(text, text),
  carm.withdraw_employee_access_request(bigint),
  carm.approve_employee_access(bigint, text, text[]),
  carm.reject_employee_access(bigint, text),
  carm.set_employee_access(text, bigint, text, text[]),
  carm.remove_employee(text, bigint),
  carm.employees(text),
  carm.employee_access_requests(text),
  carm.my_access_requests(),
  carm.my_businesses() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.register_business(text, text),
  carm.request_employee_access(text, text),
  carm.withdraw_employee_access_request(bigint),
  carm.approve_employee_access(bigint, text, text[]),
  carm.reject_employee_access(bigint, text),
  carm.set_employee_access(text, bigint, text, text[]),
  carm.remove_employee(text, bigint),
  carm.employees(text),
  carm.employee_access_requests(text),
  carm.my_access_requests(),
  carm.my_businesses() TO carm_gateway;
-- §5 business relationships (R1-R11): requests, decisions, edits, ending,
-- the expiry cascade (R9) and the provider-side assignment of employees to
-- clients (R7).
--
-- Roles derived from a relationship (PBAM/PPAM of provider BAMs, assigned
-- proxy roles, EXPIRED) are never stored: carm._grants() derives them from
-- the relationship row, and the C check compares expires_at with the
-- transaction time.  So these functions only change facts, and an expiry is
-- exact without any sweep; the cascade below just brings the stored status
-- in line and removes what the relationship carried (R9, R10).
--
-- Every function that touches a (provider, client) pair first settles it
-- (carm._settle_pair), so that an API call never acts on a relationship
-- that has already expired by time: a new request after expiry sees the old
-- one as expired, an approval or an edit of an expired one is refused.

-- Internal helpers ------------------------------------------------------------

-- The employee row of an active user in a business, or NULL.  Deactivated
-- users hold nothing (§2), so they manage nothing either.
CREATE FUNCTION carm._rel_member(p_business bigint, p_user bigint) RETURNS carm.employee
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
CREATE FUNCTION carm._rel_staff(p_business bigint, p_roles text[]) RETURNS bigint[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(e.user_id ORDER BY e.user_id), '{}')
  FROM carm.employee e
  JOIN carm.app_user u ON u.id = e.user_id AND u.active
  WHERE e.business_id = p_business AND e.role = ANY (p_roles);
$$;

-- One notification per distinct user, except the one who acted (§9).
CREATE FUNCTION carm._rel_notify(p_users bigint[], p_event text, p_message text,
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

-- A relationship by id (P0002 when unknown).
CREATE FUNCTION carm._rel_get(p_id bigint) RETURNS carm.relationship
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v carm.relationship;
BEGIN
  PERFORM carm._not_null(p_id, 'relationship_id');
  SELECT * INTO v FROM carm.relationship r WHERE r.id = p_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'business relationship % does not exist', p_id USING ERRCODE = 'P0002';
  END IF;
  RETURN v;
END
$$;

-- The programs a relationship delegates now: every program of the client
-- for BUSINESS (also ones added later, E12), the listed ones for PROGRAM.
CREATE FUNCTION carm._rel_delegated(p_rel carm.relationship) RETURNS bigint[]
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
CREATE FUNCTION carm._rel_terms(p_client bigint, p_type text, p_programs text[],
                                p_see_client boolean, p_see_other boolean,
                                p_expires timestamptz)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_type IS NULL OR p_type NOT IN ('BUSINESS', 'PROGRAM') THEN
    RAISE EXCEPTION 'invalid access type "%"', left(p_type, 64)
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
  PERFORM carm._not_null(p_see_client, 'see_client_submissions');
  PERFORM carm._not_null(p_see_other, 'see_other_submissions');
  IF p_expires IS NOT NULL AND p_expires <= clock_timestamp() THEN
    RAISE EXCEPTION 'the expiry date must be in the future'
      USING ERRCODE = '22023',
            HINT = 'Pass expires_at => NULL for no expiry; end a relationship with carm.end_relationship().';
  END IF;
  -- 22023 for an empty list or a program of another business
  RETURN carm._programs_of(p_client, p_programs);
END
$$;

-- The R9 cascade for relationships the caller has locked: status expired
-- (by time) or ended (end_relationship); the visibility attributes go off;
-- the relationship's assignments and the client's membership in the
-- provider's groups are deleted; one audit event per relationship; the BAMs
-- of both businesses are notified (except p_except, who acted).
-- Set-based, so maintenance expires thousands of relationships in one
-- statement.  Returns how many relationships it closed.
CREATE FUNCTION carm._close_relationships(p_ids bigint[], p_status text, p_as_of timestamptz,
                                          p_except bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
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
    SELECT carm.actor(), carm._caller_role(), 'relationship_' || p_status,
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
  -- §9: every event is published at commit, like carm._audit() does
  SELECT count(*) FROM (
    SELECT carm._publish(ev.id, ev.at, carm.actor(), ev.event, ev.business_id,
                         ev.other_business_id, NULL, ev.relationship_id, ev.group_id, ev.details)
    FROM events ev ORDER BY ev.id
  ) published;
$$;

-- R9: applies the expiry cascade to the pair's relationship if it is due at
-- p_as_of.  Waits for a concurrent maintenance run holding the row, then
-- finds it already settled.  Called by every API function touching the pair
-- before it acts.
CREATE FUNCTION carm._settle_pair(p_provider bigint, p_client bigint, p_as_of timestamptz)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm._close_relationships(
           ARRAY(SELECT r.id FROM carm.relationship r
                 WHERE r.provider_id = p_provider AND r.client_id = p_client
                   AND r.status = 'active' AND r.expires_at <= p_as_of
                 FOR UPDATE),
           'expired', p_as_of);
$$;

-- Requests and decisions --------------------------------------------------------

CREATE FUNCTION carm.request_relationship(provider_bn9 text, client_bn9 text, comment text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_provider carm.business := carm._business(provider_bn9);
  v_client carm.business := carm._business(client_bn9);
  v_member carm.employee := carm._rel_member(v_provider.id, v_actor);
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
  v_comment := carm._not_blank(comment, 'comment');

  -- R9: an expired relationship no longer blocks a new request
  PERFORM carm._settle_pair(v_provider.id, v_client.id, now());

  -- R2: at most one pending, rejected or active relationship per pair
  SELECT * INTO v_open FROM carm.relationship r
  WHERE r.provider_id = v_provider.id AND r.client_id = v_client.id
    AND r.status IN ('pending', 'rejected', 'active');
  IF FOUND THEN
    RAISE EXCEPTION '% already has a % business relationship with %',
                    v_provider.bn9, v_open.status, v_client.bn9
      USING ERRCODE = '23505',
            DETAIL = format('Relationship %s.', v_open.id),
            HINT = CASE v_open.status
                     WHEN 'rejected' THEN 'Cancel the rejected request with carm.cancel_relationship_request() before requesting again (R2).'
                     WHEN 'pending' THEN 'Wait for the client''s decision, or cancel the request.'
                     ELSE NULL END;
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

  v_audit := carm._audit('relationship_requested', v_provider.id, v_client.id, NULL, v_id, NULL,
                         jsonb_build_object('comment', v_comment));
  -- §9: the client's approvers receive the request, with its justification
  PERFORM carm._rel_notify(carm._rel_staff(v_client.id, ARRAY['BAM', 'PAM']),
            'relationship_requested',
            format('%s (%s) requests a business relationship with %s: %s',
                   v_provider.legal_name, v_provider.bn9, v_client.bn9, v_comment),
            v_audit, v_actor);
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.request_relationship(text, text, text) IS
  'R1, R2: a BAM or PAM of a service provider asks a client for a business relationship, with a justifying comment; returns its id';

CREATE FUNCTION carm.cancel_relationship_request(relationship_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_rel carm.relationship := carm._rel_get(relationship_id);
  v_member carm.employee := carm._rel_member(v_rel.provider_id, v_actor);
  v_audit bigint;
BEGIN
  -- R3: the provider's BAM or PAM cancels
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the service provider cancels its request'
      USING ERRCODE = '42501';
  END IF;
  PERFORM carm._settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status NOT IN ('pending', 'rejected') THEN
    RAISE EXCEPTION 'business relationship % is %, not a pending or rejected request', v_rel.id, v_rel.status
      USING ERRCODE = '55000', HINT = 'Only pending or rejected requests can be cancelled (R3).';
  END IF;
  UPDATE carm.relationship r SET status = 'cancelled', closed_at = now() WHERE r.id = v_rel.id;

  v_audit := carm._audit('relationship_cancelled', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
                         jsonb_build_object('before', jsonb_build_object('status', v_rel.status)));
  IF v_rel.status = 'pending' THEN
    -- the client's approvers no longer have it to decide
    PERFORM carm._rel_notify(carm._rel_staff(v_rel.client_id, ARRAY['BAM', 'PAM']),
              'relationship_cancelled',
              format('%s (%s) cancelled its business relationship request',
                     b.legal_name, b.bn9), v_audit, v_actor)
    FROM carm.business b WHERE b.id = v_rel.provider_id;
  END IF;
END
$$;
COMMENT ON FUNCTION carm.cancel_relationship_request(bigint) IS
  'R3: the service provider''s BAM or PAM cancels a pending or rejected request (a rejected one must be cancelled before a new request, R2)';

CREATE FUNCTION carm.reject_relationship(relationship_id bigint, reason text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_rel carm.relationship := carm._rel_get(relationship_id);
  v_member carm.employee := carm._rel_member(v_rel.client_id, v_actor);
  v_reason text;
  v_audit bigint;
BEGIN
  -- R4, R11: the client's BAM or a client PAM decides; proxies never see
  -- the client's relationship requests
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the client rejects a relationship request'
      USING ERRCODE = '42501';
  END IF;
  v_reason := carm._not_blank(reason, 'reason');        -- R4
  PERFORM carm._settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status <> 'pending' THEN
    RAISE EXCEPTION 'business relationship % is %, not pending', v_rel.id, v_rel.status
      USING ERRCODE = '55000';
  END IF;
  UPDATE carm.relationship r
     SET status = 'rejected', reason = v_reason, decided_by = v_actor, decided_at = now()
   WHERE r.id = v_rel.id;

  v_audit := carm._audit('relationship_rejected', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
                         jsonb_build_object('reason', v_reason));
  -- §9: the requester and the provider's BAMs see the rejection and its reason
  PERFORM carm._rel_notify(v_rel.requested_by || carm._rel_staff(v_rel.provider_id, ARRAY['BAM']),
            'relationship_rejected',
            format('%s (%s) rejected the business relationship request: %s', b.legal_name, b.bn9, v_reason),
            v_audit, v_actor)
  FROM carm.business b WHERE b.id = v_rel.client_id;
END
$$;
COMMENT ON FUNCTION carm.reject_relationship(bigint, text) IS
  'R4: the client''s BAM or a client PAM rejects a pending request with a non-blank reason';

CREATE FUNCTION carm.approve_relationship(relationship_id bigint, access_type text,
                                          programs text[] DEFAULT NULL,
                                          see_client_submissions boolean DEFAULT false,
                                          see_other_submissions boolean DEFAULT false,
                                          expires_at timestamptz DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_rel carm.relationship := carm._rel_get(relationship_id);
  v_member carm.employee := carm._rel_member(v_rel.client_id, v_actor);
  v_programs bigint[];
  v_audit bigint;
BEGIN
  -- R5, R11: the client's BAM, or a client PAM
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of the client approves a relationship request'
      USING ERRCODE = '42501';
  END IF;
  v_programs := carm._rel_terms(v_rel.client_id, approve_relationship.access_type,
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
                              array_to_string(carm._bn15s(ARRAY(SELECT unnest(v_programs)
                                                                EXCEPT SELECT unnest(v_member.programs))), ', '));
    END IF;
  END IF;

  PERFORM carm._settle_pair(v_rel.provider_id, v_rel.client_id, now());
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

  v_audit := carm._audit('relationship_approved', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
               jsonb_build_object('access_type', approve_relationship.access_type,
                                  'programs', carm._bn15s(v_programs),
                                  'see_client_submissions', see_client_submissions,
                                  'see_other_submissions', see_other_submissions,
                                  'expires_at', approve_relationship.expires_at));
  PERFORM carm._rel_notify(v_rel.requested_by || carm._rel_staff(v_rel.provider_id, ARRAY['BAM']),
            'relationship_approved',
            format('%s (%s) approved the business relationship (%s)', b.legal_name, b.bn9,
                   approve_relationship.access_type),
            v_audit, v_actor)
  FROM carm.business b WHERE b.id = v_rel.client_id;
END
$$;
COMMENT ON FUNCTION carm.approve_relationship(bigint, text, text[], boolean, boolean, timestamptz) IS
  'R5: the client''s BAM (any type) or a client PAM (PROGRAM, its own programs) approves a pending request: BUSINESS with programs NULL, PROGRAM with a list of the client''s BN15s; expires_at NULL or future';

CREATE FUNCTION carm.update_relationship(relationship_id bigint, access_type text, programs text[],
                                         see_client_submissions boolean, see_other_submissions boolean,
                                         expires_at timestamptz)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_rel carm.relationship := carm._rel_get(relationship_id);
  v_member carm.employee := carm._rel_member(v_rel.client_id, v_actor);
  v_programs bigint[];
  v_narrowed jsonb;
  v_audit bigint;
BEGIN
  -- R8 (§5.2): editing is for the client's BAM only; R11: never a proxy
  IF v_member.role IS DISTINCT FROM 'BAM' THEN
    RAISE EXCEPTION 'permission denied: only a business account manager of the client edits a business relationship'
      USING ERRCODE = '42501';
  END IF;
  v_programs := carm._rel_terms(v_rel.client_id, update_relationship.access_type,
                                update_relationship.programs,
                                see_client_submissions, see_other_submissions,
                                update_relationship.expires_at);
  PERFORM carm._settle_pair(v_rel.provider_id, v_rel.client_id, now());
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
                                        'before', carm._bn15s(c.old_programs),
                                        'after', CASE WHEN cardinality(c.new_programs) > 0
                                                      THEN to_jsonb(carm._bn15s(c.new_programs)) END)
                     ORDER BY c.user_id)
      INTO v_narrowed
    FROM changed c;
  END IF;

  v_audit := carm._audit('relationship_updated', v_rel.provider_id, v_rel.client_id, NULL, v_rel.id, NULL,
               jsonb_build_object(
                 'before', jsonb_build_object('access_type', v_rel.access_type,
                                              'programs', carm._bn15s(v_rel.programs),
                                              'see_client_submissions', v_rel.see_client,
                                              'see_other_submissions', v_rel.see_other,
                                              'expires_at', v_rel.expires_at),
                 'after', jsonb_build_object('access_type', update_relationship.access_type,
                                             'programs', carm._bn15s(v_programs),
                                             'see_client_submissions', see_client_submissions,
                                             'see_other_submissions', see_other_submissions,
                                             'expires_at', update_relationship.expires_at),
                 'assignments_narrowed', coalesce(v_narrowed, '[]')));
  PERFORM carm._rel_notify(carm._rel_staff(v_rel.provider_id, ARRAY['BAM']),
            'relationship_updated',
            format('%s (%s) changed the business relationship (%s)', b.legal_name, b.bn9,
                   update_relationship.access_type),
            v_audit, v_actor)
  FROM carm.business b WHERE b.id = v_rel.client_id;
END
$$;
COMMENT ON FUNCTION carm.update_relationship(bigint, text, text[], boolean, boolean, timestamptz) IS
  'R8: the client''s BAM replaces the type, programs, visibility and expiry of an active relationship';

CREATE FUNCTION carm.end_relationship(relationship_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_rel carm.relationship := carm._rel_get(relationship_id);
  v_member carm.employee := carm._rel_member(v_rel.client_id, v_actor);
BEGIN
  -- §5.2: ending is an edit of the relationship (its expiry, now): the
  -- client's BAM only; R11: never a proxy
  IF v_member.role IS DISTINCT FROM 'BAM' THEN
    RAISE EXCEPTION 'permission denied: only a business account manager of the client ends a business relationship'
      USING ERRCODE = '42501';
  END IF;
  PERFORM carm._settle_pair(v_rel.provider_id, v_rel.client_id, now());
  SELECT * INTO v_rel FROM carm.relationship r WHERE r.id = v_rel.id FOR UPDATE;
  IF v_rel.status <> 'active' THEN
    RAISE EXCEPTION 'business relationship % is %, not active', v_rel.id, v_rel.status
      USING ERRCODE = '55000';
  END IF;
  -- R9: the same cascade as an expiry, with status ended
  PERFORM carm._close_relationships(ARRAY[v_rel.id], 'ended', now(), v_actor);
END
$$;
COMMENT ON FUNCTION carm.end_relationship(bigint) IS
  'R9: the client''s BAM ends an active relationship now: provider employees lose access, the provider''s BAMs keep EXPIRED';

-- Provider side: assigning employees to a client (R7) -------------------------

-- The pair's active relationship, settled first (R9); 55000 when there is none.
CREATE FUNCTION carm._rel_active(p_provider carm.business, p_client carm.business)
RETURNS carm.relationship
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v carm.relationship;
BEGIN
  PERFORM carm._settle_pair(p_provider.id, p_client.id, now());
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
CREATE FUNCTION carm._rel_assigner(p_rel carm.relationship, p_delegated bigint[], p_member carm.employee,
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
CREATE FUNCTION carm._rel_assignment_context(p_provider_bn9 text, p_client_bn9 text, p_user bigint,
                                             OUT rel carm.relationship, OUT delegated bigint[],
                                             OUT actor_programs bigint[], OUT actor_follows boolean,
                                             OUT actor_is_bam boolean,
                                             OUT existing carm.client_assignment)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_provider carm.business := carm._business(p_provider_bn9);
  v_client carm.business := carm._business(p_client_bn9);
  v_member carm.employee := carm._rel_member(v_provider.id, v_actor);
  v_target carm.app_user;
  v_target_member carm.employee;
BEGIN
  -- R7 (§6.2): a BAM or PAM of the provider, who is PBAM or PPAM on the client
  IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
    RAISE EXCEPTION 'permission denied: only a business or program account manager of % assigns its employees to clients',
                    v_provider.bn9
      USING ERRCODE = '42501';
  END IF;
  rel := carm._rel_active(v_provider, v_client);
  delegated := carm._rel_delegated(rel);
  SELECT a.programs, a.follows INTO actor_programs, actor_follows
  FROM carm._rel_assigner(rel, delegated, v_member) a;
  IF actor_programs IS NULL OR cardinality(actor_programs) = 0 THEN
    RAISE EXCEPTION 'permission denied: you are not PBAM or PPAM on %', v_client.bn9
      USING ERRCODE = '42501',
            HINT = 'A provider program account manager must itself be assigned PPAM on the client first (R7).';
  END IF;
  actor_is_bam := v_member.role = 'BAM';

  -- R7: the target is an active employee of the provider, not the actor,
  -- not a provider BAM (who holds PBAM/PPAM already, R6)
  v_target := carm._user(p_user);
  IF v_target.id = v_actor THEN
    RAISE EXCEPTION 'you cannot change your own access to a client'
      USING ERRCODE = '22023';
  END IF;
  -- E8, E11: hold the target's employee row until commit, so that a
  -- concurrent removal or promotion to BAM either waits for this assignment
  -- (and then deletes it) or has committed first (and we see it below)
  PERFORM FROM carm.employee e
  WHERE e.business_id = v_provider.id AND e.user_id = v_target.id FOR SHARE;
  v_target_member := carm._rel_member(v_provider.id, v_target.id);
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

CREATE FUNCTION carm.assign_client_access(provider_bn9 text, client_bn9 text, user_id bigint,
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
  SELECT * INTO ctx FROM carm._rel_assignment_context(provider_bn9, client_bn9, assign_client_access.user_id);

  -- R7: PPAM, PEDITOR or PVIEWER, never PBAM
  IF assign_client_access.role IS NULL OR assign_client_access.role NOT IN ('PPAM', 'PEDITOR', 'PVIEWER') THEN
    RAISE EXCEPTION 'invalid client role "%"', left(assign_client_access.role, 64)
      USING ERRCODE = '22023',
            HINT = CASE WHEN assign_client_access.role = 'PBAM'
                        THEN 'PBAM is never assigned: a provider''s BAMs hold it through a BUSINESS relationship (R6, R7).'
                        ELSE 'Client roles are PPAM, PEDITOR and PVIEWER.' END;
  END IF;

  -- R7: NULL = every delegated program, following the relationship; or a
  -- listed subset of the delegated programs
  v_programs := carm._programs_of((ctx.rel).client_id, assign_client_access.programs);
  IF v_programs IS NOT NULL THEN
    v_outside := ARRAY(SELECT unnest(v_programs) EXCEPT SELECT unnest(ctx.delegated));
    IF cardinality(v_outside) > 0 THEN
      RAISE EXCEPTION 'program account % is not delegated by the relationship', (carm._bn15s(v_outside))[1]
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

  v_audit := carm._audit('client_access_assigned', (ctx.rel).provider_id, (ctx.rel).client_id,
               assign_client_access.user_id, (ctx.rel).id, NULL,
               jsonb_build_object(
                 'before', CASE WHEN (ctx.existing).user_id IS NOT NULL THEN
                             jsonb_build_object('role', (ctx.existing).role,
                                                'programs', carm._bn15s((ctx.existing).programs)) END,
                 'after', jsonb_build_object('role', assign_client_access.role,
                                             'programs', carm._bn15s(v_programs))));
  PERFORM carm._rel_notify(ARRAY[assign_client_access.user_id], 'client_access_assigned',
            format('You are %s for %s (%s) on %s', assign_client_access.role, b.legal_name, b.bn9,
                   coalesce(array_to_string(carm._bn15s(v_programs), ', '), 'every delegated program')),
            v_audit)
  FROM carm.business b WHERE b.id = (ctx.rel).client_id;
END
$$;
COMMENT ON FUNCTION carm.assign_client_access(text, text, bigint, text, text[]) IS
  'R7: a PBAM, or a provider PAM that is PPAM, gives a provider employee PPAM, PEDITOR or PVIEWER on a client, on every delegated program (NULL) or a listed subset';

CREATE FUNCTION carm.revoke_client_access(provider_bn9 text, client_bn9 text, user_id bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  ctx record;
  v_audit bigint;
BEGIN
  SELECT * INTO ctx FROM carm._rel_assignment_context(provider_bn9, client_bn9, revoke_client_access.user_id);
  IF (ctx.existing).user_id IS NULL THEN
    RAISE EXCEPTION 'user % has no individual access to %', revoke_client_access.user_id, client_bn9
      USING ERRCODE = 'P0002';
  END IF;
  DELETE FROM carm.client_assignment a
  WHERE a.relationship_id = (ctx.rel).id AND a.user_id = revoke_client_access.user_id;

  v_audit := carm._audit('client_access_revoked', (ctx.rel).provider_id, (ctx.rel).client_id,
               revoke_client_access.user_id, (ctx.rel).id, NULL,
               jsonb_build_object('before', jsonb_build_object('role', (ctx.existing).role,
                                  'programs', carm._bn15s((ctx.existing).programs))));
  PERFORM carm._rel_notify(ARRAY[revoke_client_access.user_id], 'client_access_revoked',
            format('Your access to %s (%s) was revoked', b.legal_name, b.bn9), v_audit)
  FROM carm.business b WHERE b.id = (ctx.rel).client_id;
END
$$;
COMMENT ON FUNCTION carm.revoke_client_access(text, text, bigint) IS
  'R7: removes a provider employee''s individual access to a client (a group default, G4, may still apply)';

-- Listings ----------------------------------------------------------------------

CREATE FUNCTION carm.relationships(bn9 text)
RETURNS TABLE (id bigint, side text, provider text, provider_name text, client text, client_name text,
               status text, access_type text, programs text[],
               see_client_submissions boolean, see_other_submissions boolean,
               expires_at timestamptz, comment text, reason text,
               requested_by bigint, decided_by bigint,
               created_at timestamptz, decided_at timestamptz, closed_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_business carm.business := carm._business(relationships.bn9);
  v_admin boolean := carm._caller_is_admin();
  v_actor bigint := carm.actor();
  v_member carm.employee;
BEGIN
  IF NOT v_admin OR v_actor IS NOT NULL THEN
    v_actor := carm._require_actor();
    v_member := carm._rel_member(v_business.id, v_actor);
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
           r.access_type, carm._bn15s(r.programs),
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
COMMENT ON FUNCTION carm.relationships(text) IS
  'Business relationships of a business, as client and as provider: for its BAMs and PAMs (a client PAM sees those touching its programs), never for proxies (R11)';

CREATE FUNCTION carm.client_access(provider_bn9 text, client_bn9 text)
RETURNS TABLE (user_id bigint, full_name text, provider_role text, role text, programs text[],
               all_delegated boolean, source text, group_name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_provider carm.business := carm._business(provider_bn9);
  v_client carm.business := carm._business(client_bn9);
  v_admin boolean := carm._caller_is_admin();
  v_actor bigint := carm.actor();
  v_member carm.employee;
  v_rel carm.relationship;
  v_delegated bigint[];
BEGIN
  IF NOT v_admin OR v_actor IS NOT NULL THEN
    v_actor := carm._require_actor();
    v_member := carm._rel_member(v_provider.id, v_actor);
    -- a provider-side view (R7): the provider's BAMs and PAMs
    IF v_member.role IS NULL OR v_member.role NOT IN ('BAM', 'PAM') THEN
      RAISE EXCEPTION 'permission denied: only a business or program account manager of % sees its employees'' access to clients',
                      v_provider.bn9
        USING ERRCODE = '42501';
    END IF;
  END IF;

  -- the pair's active relationship, unless expired by time (R9)
  SELECT * INTO v_rel FROM carm.relationship r
  WHERE r.provider_id = v_provider.id AND r.client_id = v_client.id AND r.status = 'active'
    AND (r.expires_at IS NULL OR r.expires_at > now());
  IF NOT FOUND THEN
    -- V4: after expiry or end only the provider's BAMs keep EXPIRED
    RETURN QUERY
      SELECT e.user_id, u.full_name, e.role, 'EXPIRED'::text, NULL::text[], false, 'relationship'::text, NULL::text
      FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
      WHERE e.business_id = v_provider.id AND e.role = 'BAM'
        AND EXISTS (SELECT FROM carm.relationship r
                    WHERE r.provider_id = v_provider.id AND r.client_id = v_client.id
                      AND (r.status IN ('expired', 'ended')
                           OR (r.status = 'active' AND r.expires_at <= now())))
      ORDER BY e.user_id;
    RETURN;
  END IF;
  v_delegated := carm._rel_delegated(v_rel);

  RETURN QUERY
    WITH staff AS (
      SELECT e.user_id, u.full_name, e.role
      FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
      WHERE e.business_id = v_provider.id
    ),
    paths AS (
      -- R6: every provider BAM is PBAM (BUSINESS) or PPAM (PROGRAM)
      SELECT s.user_id, CASE v_rel.access_type WHEN 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END AS role,
             NULL::bigint[] AS programs, 'relationship' AS source, NULL::text AS group_name
      FROM staff s WHERE s.role = 'BAM'
      UNION ALL
      -- R7: individual assignments
      SELECT a.user_id, a.role, a.programs, 'assignment', NULL
      FROM carm.client_assignment a JOIN staff s ON s.user_id = a.user_id AND s.role <> 'BAM'
      WHERE a.relationship_id = v_rel.id
      UNION ALL
      -- G4, G5: group defaults, unless an individual assignment overrides them
      SELECT ge.user_id, ge.role, NULL, 'group', g.name
      FROM carm.group_client gc
      JOIN carm.client_group g ON g.id = gc.group_id AND g.deleted_at IS NULL
      JOIN carm.group_employee ge ON ge.group_id = g.id
      JOIN staff s ON s.user_id = ge.user_id AND s.role <> 'BAM'
      WHERE gc.provider_id = v_provider.id AND gc.client_id = v_client.id
        AND NOT EXISTS (SELECT FROM carm.client_assignment a
                        WHERE a.relationship_id = v_rel.id AND a.user_id = ge.user_id)
    )
    SELECT p.user_id, s.full_name, s.role, p.role,
           carm._bn15s(ARRAY(SELECT x FROM unnest(v_delegated) x
                             WHERE p.programs IS NULL OR x = ANY (p.programs) ORDER BY x)),
           p.programs IS NULL, p.source, p.group_name
    FROM paths p JOIN staff s ON s.user_id = p.user_id
    ORDER BY p.user_id, p.source;
END
$$;
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
-- §7 client groups (G1-G9) and the request-processing table (guide §6.5).
--
-- A group is a provider's named set of clients; its employees hold a default
-- proxy role on every client of the group.  Group access is derived by the
-- resolver (carm._grants, G4/G5), so adding or removing clients writes one
-- group_client row per client and never fans out per employee or program.
-- Every operation is set-based (unnest, one availability query that finds all
-- offenders), so 10,000 clients with 500 employees stay well under a second.
--
-- Layout: validation helpers; the _group_* functions that apply one
-- operation for a given initiator (shared by immediate calls and by deferred
-- processing); the public API; deferred processing (G9); listings.
--
-- Concurrency: every operation on a group first takes FOR NO KEY UPDATE on
-- its client_group row, so operations on one group (immediate or deferred)
-- run one after the other, while the foreign keys of new group_request rows
-- (FOR KEY SHARE) never wait.  Availability (G3) and employee checks (G4)
-- lock the relationship and employee rows they rely on FOR SHARE, so an
-- expiry cascade or an employee removal running concurrently waits for us and
-- then sees, and deletes, what we inserted.

-- Validation helpers ---------------------------------------------------------

-- G1: only a BAM of a service provider manages its groups.  A business that
-- is not a service provider is refused with 42501 as well: the rule is one of
-- permission ("only a BAM of a service provider"), and a caller handling
-- 42501 needs no second case.
CREATE FUNCTION carm._require_group_manager(p_provider carm.business, p_user bigint)
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
COMMENT ON FUNCTION carm._require_group_manager(carm.business, bigint) IS
  'Internal: G1, raises 42501 unless the user is a BAM of this service provider';

-- A group by id for an operation by p_user: P0002 when unknown, 42501 unless
-- p_user is a BAM of its provider (G1), 55000 when deleted (G8).  p_lock takes
-- the row lock that serialises operations on one group; it is taken after the
-- permission check, so an outsider cannot make the group's managers wait.
CREATE FUNCTION carm._group(p_group bigint, p_user bigint, p_lock boolean)
RETURNS carm.client_group
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group;
  b carm.business;
BEGIN
  PERFORM carm._not_null(p_group, 'group_id');
  SELECT * INTO g FROM carm.client_group cg WHERE cg.id = p_group;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'client group % does not exist', p_group USING ERRCODE = 'P0002';
  END IF;
  SELECT * INTO b FROM carm.business WHERE id = g.provider_id;
  PERFORM carm._require_group_manager(b, p_user);
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
COMMENT ON FUNCTION carm._group(bigint, bigint, boolean) IS
  'Internal: a live client group the user manages (P0002 unknown, 42501 G1, 55000 deleted), optionally locked';

-- "a, b, c" — or the first p_max items and how many more, so that an error
-- about huge input stays readable.
CREATE FUNCTION carm._name_list(p_items text[], p_max integer DEFAULT NULL) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN p_max IS NULL OR cardinality(p_items) <= p_max
              THEN array_to_string(p_items, ', ')
              ELSE array_to_string(p_items[1:p_max], ', ')
                   || format(' and %s more', cardinality(p_items) - p_max) END;
$$;
COMMENT ON FUNCTION carm._name_list(text[], integer) IS
  'Internal: a list for an error message, cut after p_max items';

-- The clients argument: every element a well-formed BN9 (22023, naming the
-- malformed ones), duplicates dropped, sorted.  NULL is 22004; an empty list
-- is refused unless p_allow_empty (create_client_group's default).
CREATE FUNCTION carm._bn9_list(p_bn9s text[], p_allow_empty boolean DEFAULT false) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text[];
BEGIN
  PERFORM carm._not_null(p_bn9s, 'clients');
  IF cardinality(p_bn9s) = 0 AND NOT p_allow_empty THEN
    RAISE EXCEPTION 'clients must not be empty' USING ERRCODE = '22023';
  END IF;
  SELECT array_agg(coalesce(quote_literal(left(x, 32)), 'NULL') ORDER BY o) INTO v_bad
  FROM unnest(p_bn9s) WITH ORDINALITY AS t(x, o)
  WHERE x IS NULL OR NOT carm._bn9_is_valid(x);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'invalid business numbers in clients: %', carm._name_list(v_bad, 20)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT x FROM unnest(p_bn9s) x ORDER BY x);
END
$$;
COMMENT ON FUNCTION carm._bn9_list(text[], boolean) IS
  'Internal: the checked, distinct, sorted BN9 list of a group operation';

-- The user_ids argument: no NULL element, not empty (22023), distinct, sorted.
CREATE FUNCTION carm._user_list(p_users bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm._not_null(p_users, 'user_ids');
  IF cardinality(p_users) = 0 THEN
    RAISE EXCEPTION 'user_ids must not be empty' USING ERRCODE = '22023';
  END IF;
  IF array_position(p_users, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'user_ids must not contain NULL' USING ERRCODE = '22023';
  END IF;
  RETURN ARRAY(SELECT DISTINCT u FROM unnest(p_users) u ORDER BY u);
END
$$;
COMMENT ON FUNCTION carm._user_list(bigint[]) IS
  'Internal: the checked, distinct, sorted user id list of a group operation';

-- G4: a group's default role.
CREATE FUNCTION carm._group_role(p_role text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_role IS NULL OR p_role NOT IN ('PPAM','PEDITOR','PVIEWER') THEN
    RAISE EXCEPTION 'invalid group role "%"', left(coalesce(p_role, 'NULL'), 32)
      USING ERRCODE = '22023',
            HINT = 'A group''s default role is PPAM, PEDITOR or PVIEWER; provider BAMs already hold PBAM or PPAM (G4).';
  END IF;
  RETURN p_role;
END
$$;
COMMENT ON FUNCTION carm._group_role(text) IS
  'Internal: G4, checks a group''s default role (22023)';

-- One audit event of a group operation, attributed to its initiator, also
-- when maintenance applies a deferred request.
CREATE FUNCTION carm._group_audit(p_actor bigint, p_event text, g carm.client_group,
                                  p_details jsonb)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm._audit(p_event, g.provider_id, NULL, NULL, NULL, g.id, p_details, p_actor);
$$;
COMMENT ON FUNCTION carm._group_audit(bigint, text, carm.client_group, jsonb) IS
  'Internal: the summary audit event of a group operation (one pg_notify per operation)';

-- Operations, applied for an initiator ---------------------------------------
-- Each writes one summary event (published with pg_notify) plus one audit row
-- per client or employee concerned, written set-based and not published, so
-- that a client's BAM finds its own history in carm.audit_events(client) and a
-- 10,000-client operation sends one message, not 10,000.

-- G3 + G6: adds clients to g.  All-or-nothing: every unavailable client is
-- named in one error (22023), nothing is applied.  A client already in g is
-- left as it is (it is in no *other* group, so G3 holds).
CREATE FUNCTION carm._group_add_clients(g carm.client_group, p_bn9s text[], p_actor bigint,
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
  PERFORM FROM carm.relationship r
  JOIN carm.business b ON b.id = r.client_id
  WHERE r.provider_id = g.provider_id AND r.status = 'active' AND b.bn9 = ANY (p_bn9s)
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
      v_detail := v_detail || format('Unknown business: %s.', carm._name_list(v_unknown));
    END IF;
    IF v_unrelated IS NOT NULL THEN
      v_detail := v_detail || format('No active relationship with provider: %s.', carm._name_list(v_unrelated));
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
    RAISE EXCEPTION 'clients not available for client group "%": %', g.name, carm._name_list(v_offenders)
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
    SELECT p_actor, carm._caller_role(), 'group_client_added', g.provider_id, ins.client_id, g.id,
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

  v_audit := carm._group_audit(p_actor, 'group_clients_added', g,
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
COMMENT ON FUNCTION carm._group_add_clients(carm.client_group, text[], bigint, bigint, timestamptz) IS
  'Internal: G3/G6, adds available clients to a group (all or nothing), returns how many were added';

-- G7 for a set of client ids of g (all of them when p_clients is NULL): the
-- group's employees lose their individual assignments (R7) on those clients'
-- relationships — literal revocation, so removing a client cannot be undone —
-- and the group_client rows go, which ends the group-derived access.  Provider
-- BAMs keep theirs: it is derived from the relationship (R6), not from here.
-- Returns the number of clients removed.
CREATE FUNCTION carm._group_drop_clients(g carm.client_group, p_clients bigint[], p_actor bigint,
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
  SELECT p_actor, carm._caller_role(), 'group_client_removed', g.provider_id, gone.client_id, g.id,
         jsonb_build_object('group', g.name, 'request_id', p_request, 'reason', p_reason,
                            'revoked_assignments', coalesce(pc.revoked, '[]'))
  FROM gone LEFT JOIN per_client pc ON pc.client_id = gone.client_id
  ORDER BY gone.client_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION carm._group_drop_clients(carm.client_group, bigint[], bigint, bigint, text) IS
  'Internal: G7, removes clients from a group and revokes the group employees'' access to them';

-- G7: removes clients from g.  Every listed client must be in g (22023, naming
-- the others; nothing applied).
CREATE FUNCTION carm._group_remove_clients(g carm.client_group, p_bn9s text[], p_actor bigint,
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
    RAISE EXCEPTION 'clients not in client group "%": %', g.name, carm._name_list(v_bad)
      USING ERRCODE = '22023', HINT = 'See carm.group_clients() for the clients of the group.';
  END IF;
  v_ids := ARRAY(SELECT b.id FROM carm.business b WHERE b.bn9 = ANY (p_bn9s));
  v_n := carm._group_drop_clients(g, v_ids, p_actor, p_request, 'removed');
  v_audit := carm._group_audit(p_actor, 'group_clients_removed', g,
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
COMMENT ON FUNCTION carm._group_remove_clients(carm.client_group, text[], bigint, bigint) IS
  'Internal: G7, removes clients that are all in the group, returns how many';

-- G4: assigns provider employees to g with a default role; an employee
-- already in g gets the new role.  Every user who is not an active employee
-- of the provider, or is one of its BAMs, is named in one error (22023).
CREATE FUNCTION carm._group_assign(g carm.client_group, p_users bigint[], p_role text,
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
      v_detail := v_detail || format('Not active employees of the provider: %s.', carm._name_list(v_strangers));
    END IF;
    IF v_bams IS NOT NULL THEN
      v_detail := v_detail || format('Business account managers of the provider, who already act for every client: %s.',
                                     carm._name_list(v_bams));
    END IF;
    RAISE EXCEPTION 'users cannot be employees of client group "%": %', g.name,
                    carm._name_list(ARRAY(SELECT x FROM unnest(coalesce(v_strangers, '{}') || coalesce(v_bams, '{}')) x
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
    SELECT p_actor, carm._caller_role(), 'group_employee_assigned', g.provider_id, up.user_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request,
                              'before', old.role, 'after', p_role)
    FROM up LEFT JOIN old ON old.user_id = up.user_id
    ORDER BY up.user_id
    RETURNING target_user_id
  )
  SELECT coalesce(array_agg(aud.target_user_id), '{}') INTO v_changed FROM aud;
  v_n := cardinality(v_changed);

  v_audit := carm._group_audit(p_actor, 'group_employees_assigned', g,
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
COMMENT ON FUNCTION carm._group_assign(carm.client_group, bigint[], text, bigint, bigint) IS
  'Internal: G4, assigns provider employees (not BAMs) to a group with a default role';

-- Unassigns employees from g: their group-derived access ends; individual
-- assignments (R7) are not the group's and stay.  Every listed user must be
-- an employee of g (22023, naming the others).
CREATE FUNCTION carm._group_unassign(g carm.client_group, p_users bigint[], p_actor bigint,
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
    RAISE EXCEPTION 'users are not employees of client group "%": %', g.name, carm._name_list(v_bad)
      USING ERRCODE = '22023', HINT = 'See carm.group_employees() for the employees of the group.';
  END IF;

  WITH gone AS (
    DELETE FROM carm.group_employee ge
    WHERE ge.group_id = g.id AND ge.user_id = ANY (p_users)
    RETURNING ge.user_id, ge.role
  )
  INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                group_id, details)
  SELECT p_actor, carm._caller_role(), 'group_employee_unassigned', g.provider_id, gone.user_id, g.id,
         jsonb_build_object('group', g.name, 'request_id', p_request, 'before', gone.role)
  FROM gone ORDER BY gone.user_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;

  v_audit := carm._group_audit(p_actor, 'group_employees_unassigned', g,
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
COMMENT ON FUNCTION carm._group_unassign(carm.client_group, bigint[], bigint, bigint) IS
  'Internal: removes employees from a group (their individual assignments stay)';

-- G8: G7 for every client, then the employees leave the group (guide §6.4:
-- "supprime l'association de ses employés et de ses clients au groupe") and
-- the group is marked deleted.  The row stays, so its name stays taken (G2)
-- and the request table keeps pointing at it.  Returns the number of clients.
CREATE FUNCTION carm._group_delete(g carm.client_group, p_actor bigint, p_request bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clients integer;
  v_employees bigint[];
  v_audit bigint;
BEGIN
  v_clients := carm._group_drop_clients(g, NULL, p_actor, p_request, 'group deleted');

  WITH gone AS (
    DELETE FROM carm.group_employee ge WHERE ge.group_id = g.id
    RETURNING ge.user_id, ge.role
  ), aud AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                  group_id, details)
    SELECT p_actor, carm._caller_role(), 'group_employee_unassigned', g.provider_id, gone.user_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request, 'before', gone.role,
                              'reason', 'group deleted')
    FROM gone ORDER BY gone.user_id
  )
  SELECT coalesce(array_agg(gone.user_id ORDER BY gone.user_id), '{}') INTO v_employees FROM gone;

  UPDATE carm.client_group cg SET deleted_at = now() WHERE cg.id = g.id;

  v_audit := carm._group_audit(p_actor, 'client_group_deleted', g,
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
COMMENT ON FUNCTION carm._group_delete(carm.client_group, bigint, bigint) IS
  'Internal: G8, deletes a group (G7 for all clients, employees unassigned, name kept)';

-- One operation on g from its stored form (the payload of group_request).
CREATE FUNCTION carm._group_apply(g carm.client_group, p_operation text, p_payload jsonb,
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
      RETURN carm._group_add_clients(g, v_clients, p_actor, p_request, p_now);
    WHEN 'REMOVE_CLIENTS' THEN
      RETURN carm._group_remove_clients(g, v_clients, p_actor, p_request);
    WHEN 'ASSIGN_EMPLOYEES' THEN
      RETURN carm._group_assign(g, v_users, carm._group_role(p_payload->>'role'), p_actor, p_request);
    WHEN 'UNASSIGN_EMPLOYEES' THEN
      RETURN carm._group_unassign(g, v_users, p_actor, p_request);
    WHEN 'DELETE_GROUP' THEN
      RETURN carm._group_delete(g, p_actor, p_request);
    ELSE
      RAISE EXCEPTION 'unexpected group operation "%"', p_operation USING ERRCODE = 'XX000';
  END CASE;
END
$$;
COMMENT ON FUNCTION carm._group_apply(carm.client_group, text, jsonb, bigint, bigint, timestamptz) IS
  'Internal: applies one group operation for its initiator';

-- The common path of the five operations on an existing group (G9): the
-- arguments' form has been checked by the caller; here the group and the
-- actor's permission are checked, then the operation is either queued
-- (deferred: PENDING, applied by carm._process_group_requests) or applied
-- and recorded COMPLETED in the caller's transaction.  Returns the request id.
CREATE FUNCTION carm._group_request(p_group bigint, p_operation text, p_payload jsonb,
                                    p_items integer, p_deferred boolean)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  g carm.client_group;
  v_request bigint;
BEGIN
  PERFORM carm._not_null(p_deferred, 'deferred');
  -- A deferred request on a deleted group could only fail: refused now (55000).
  g := carm._group(p_group, v_actor, NOT p_deferred);
  INSERT INTO carm.group_request (provider_id, group_id, group_name, operation, initiator,
                                  status, item_count, payload, started_at)
  VALUES (g.provider_id, g.id, g.name, p_operation, v_actor,
          CASE WHEN p_deferred THEN 'PENDING' ELSE 'PROCESSING' END, p_items, p_payload,
          CASE WHEN p_deferred THEN NULL ELSE clock_timestamp() END)
  RETURNING id INTO v_request;

  IF p_deferred THEN
    PERFORM carm._group_audit(v_actor, 'group_request_queued', g,
              jsonb_build_object('request_id', v_request, 'operation', p_operation,
                                 'items', p_items));
    RETURN v_request;
  END IF;

  PERFORM carm._group_apply(g, p_operation, p_payload, v_actor, v_request, now());
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = clock_timestamp()
  WHERE q.id = v_request;
  RETURN v_request;
END
$$;
COMMENT ON FUNCTION carm._group_request(bigint, text, jsonb, integer, boolean) IS
  'Internal: G9, queues (deferred) or applies and records one operation on a group';

-- Public API -----------------------------------------------------------------

CREATE FUNCTION carm.create_client_group(provider_bn9 text, name text, clients text[] DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();
  v_name text := carm._not_blank(name, 'group name', 200);
  v_clients text[] := carm._bn9_list(clients, true);
  b carm.business := carm._business(provider_bn9);
  g carm.client_group;
  v_taken carm.client_group;
  v_request bigint;
BEGIN
  PERFORM carm._require_group_manager(b, v_actor);                       -- G1

  -- G2: unique within the provider, ignoring case and surrounding spaces,
  -- deleted groups included (the UNIQUE (provider_id, name_key) constraint
  -- decides under concurrency; this gives the readable error).
  SELECT * INTO v_taken FROM carm.client_group cg
  WHERE cg.provider_id = b.id AND cg.name_key = lower(v_name);
  IF FOUND THEN
    RAISE EXCEPTION 'client group name "%" is already used by provider %', v_name, b.bn9
      USING ERRCODE = '23505',
            DETAIL = format('Group %s is named "%s"%s.', v_taken.id, v_taken.name,
                            CASE WHEN v_taken.deleted_at IS NOT NULL THEN ' (deleted)' ELSE '' END),
            HINT = 'Names are compared ignoring case and surrounding spaces, and stay taken after the group is deleted (G2).';
  END IF;
  BEGIN
    INSERT INTO carm.client_group (provider_id, name, created_by)
    VALUES (b.id, v_name, v_actor)
    RETURNING * INTO g;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'client group name "%" is already used by provider %', v_name, b.bn9
      USING ERRCODE = '23505', DETAIL = 'Another transaction created it concurrently.';
  END;

  INSERT INTO carm.group_request (provider_id, group_id, group_name, operation, initiator,
                                  status, item_count, payload, started_at)
  VALUES (b.id, g.id, g.name, 'CREATE_GROUP', v_actor, 'PROCESSING', cardinality(v_clients),
          jsonb_build_object('clients', to_jsonb(v_clients)), clock_timestamp())
  RETURNING id INTO v_request;
  PERFORM carm._group_audit(v_actor, 'client_group_created', g,
            jsonb_build_object('request_id', v_request, 'name', g.name,
                               'clients', cardinality(v_clients)));
  PERFORM carm._group_add_clients(g, v_clients, v_actor, v_request, now());   -- G3
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = clock_timestamp()
  WHERE q.id = v_request;
  RETURN g.id;
END
$$;
COMMENT ON FUNCTION carm.create_client_group(text, text, text[]) IS
  'G1-G3: a provider BAM creates a client group, optionally with available clients; returns the group id';

CREATE FUNCTION carm.add_group_clients(group_id bigint, clients text[], deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();    -- before anything else (§2)
  v_clients text[] := carm._bn9_list(clients);
BEGIN
  RETURN carm._group_request(group_id, 'ADD_CLIENTS', jsonb_build_object('clients', to_jsonb(v_clients)),
                             cardinality(v_clients), deferred);
END
$$;
COMMENT ON FUNCTION carm.add_group_clients(bigint, text[], boolean) IS
  'G3/G6/G9: adds available clients to a group (all or nothing), now or deferred; returns the request id';

CREATE FUNCTION carm.remove_group_clients(group_id bigint, clients text[], deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();    -- before anything else (§2)
  v_clients text[] := carm._bn9_list(clients);
BEGIN
  RETURN carm._group_request(group_id, 'REMOVE_CLIENTS', jsonb_build_object('clients', to_jsonb(v_clients)),
                             cardinality(v_clients), deferred);
END
$$;
COMMENT ON FUNCTION carm.remove_group_clients(bigint, text[], boolean) IS
  'G7/G9: removes clients from a group, revoking the group employees'' access to them (cannot be undone); returns the request id';

CREATE FUNCTION carm.assign_group_employees(group_id bigint, user_ids bigint[], role text,
                                            deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();    -- before anything else (§2)
  v_users bigint[] := carm._user_list(user_ids);
  v_role text := carm._group_role(role);
BEGIN
  RETURN carm._group_request(group_id, 'ASSIGN_EMPLOYEES',
                             jsonb_build_object('user_ids', to_jsonb(v_users), 'role', v_role),
                             cardinality(v_users), deferred);
END
$$;
COMMENT ON FUNCTION carm.assign_group_employees(bigint, bigint[], text, boolean) IS
  'G4/G9: assigns provider employees (not BAMs) to a group with a default role PPAM, PEDITOR or PVIEWER; returns the request id';

CREATE FUNCTION carm.unassign_group_employees(group_id bigint, user_ids bigint[],
                                              deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();    -- before anything else (§2)
  v_users bigint[] := carm._user_list(user_ids);
BEGIN
  RETURN carm._group_request(group_id, 'UNASSIGN_EMPLOYEES', jsonb_build_object('user_ids', to_jsonb(v_users)),
                             cardinality(v_users), deferred);
END
$$;
COMMENT ON FUNCTION carm.unassign_group_employees(bigint, bigint[], boolean) IS
  'G9: removes employees from a group (their individual client assignments stay); returns the request id';

CREATE FUNCTION carm.delete_client_group(group_id bigint, deferred boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm._require_actor();    -- before anything else (§2)
  v_items integer;
BEGIN
  SELECT count(*) INTO v_items FROM carm.group_client gc WHERE gc.group_id = delete_client_group.group_id;
  RETURN carm._group_request(group_id, 'DELETE_GROUP', '{}', v_items, deferred);
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
-- Requests are claimed with FOR UPDATE SKIP LOCKED: a concurrent run skips
-- what this one holds, and once this one commits, the rows it finished no
-- longer match status = 'PENDING' when re-checked, so every request is
-- processed exactly once.  Called by carm.run_maintenance().
CREATE FUNCTION carm._process_group_requests(as_of timestamptz DEFAULT now())
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
  v_msg text;
  v_detail text;
  v_state text;
  v_audit bigint;
BEGIN
  PERFORM carm._not_null(as_of, 'as_of');
  v_ids := ARRAY(SELECT r.id FROM carm.group_request r
                 WHERE r.status = 'PENDING' AND r.created_at <= as_of
                 ORDER BY r.id
                 FOR UPDATE SKIP LOCKED);
  UPDATE carm.group_request r SET status = 'PROCESSING', started_at = clock_timestamp()
  WHERE r.id = ANY (v_ids);

  FOREACH v_id IN ARRAY v_ids LOOP
    SELECT * INTO q FROM carm.group_request r WHERE r.id = v_id;
    BEGIN
      g := carm._group(q.group_id, q.initiator, true);
      PERFORM carm._group_apply(g, q.operation, q.payload, q.initiator, q.id, as_of);
      UPDATE carm.group_request r SET status = 'COMPLETED', finished_at = clock_timestamp()
      WHERE r.id = q.id;
      PERFORM carm._notify(q.initiator, 'group_request_completed',
                format('Your request %s (%s on client group "%s", %s item(s)) was completed.',
                       q.id, q.operation, q.group_name, q.item_count));
      v_done := v_done + 1;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                              v_state = RETURNED_SQLSTATE;
      UPDATE carm.group_request r
      SET status = 'FAILED', finished_at = clock_timestamp(),
          error = v_msg || CASE WHEN v_detail <> '' THEN E'\n' || v_detail ELSE '' END
      WHERE r.id = q.id;
      v_audit := carm._audit('group_request_failed', q.provider_id, NULL, NULL, NULL, q.group_id,
                             jsonb_build_object('request_id', q.id, 'operation', q.operation,
                                                'sqlstate', v_state, 'error', v_msg),
                             q.initiator);
      PERFORM carm._notify(q.initiator, 'group_request_failed',
                format('Your request %s (%s on client group "%s") failed and changed nothing: %s',
                       q.id, q.operation, q.group_name, v_msg),
                v_audit);
      v_failed := v_failed + 1;
    END;
  END LOOP;

  RETURN QUERY VALUES ('group_requests_completed'::text, v_done), ('group_requests_failed', v_failed);
END
$$;
COMMENT ON FUNCTION carm._process_group_requests(timestamptz) IS
  'Internal (R12/G9): applies pending deferred group requests, each atomically; returns how many completed and failed';

-- Listings -------------------------------------------------------------------

-- The provider for a listing: its BAMs (G1) or carm_admin.
CREATE FUNCTION carm._group_listing_provider(p_bn9 text) RETURNS carm.business
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm._business(p_bn9);
BEGIN
  IF NOT carm._caller_is_admin() THEN
    PERFORM carm._require_group_manager(b, carm._require_actor());
  END IF;
  RETURN b;
END
$$;
COMMENT ON FUNCTION carm._group_listing_provider(text) IS
  'Internal: the provider of a group listing, for its BAMs (G1) or carm_admin';

CREATE FUNCTION carm.client_groups(provider_bn9 text)
RETURNS TABLE (group_id bigint, name text, clients bigint, employees bigint,
               created_by bigint, created_at timestamptz, deleted_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm._group_listing_provider(provider_bn9);
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
COMMENT ON FUNCTION carm.client_groups(text) IS
  'Client groups of a provider, deleted ones included (their names stay taken, G2); its BAMs or carm_admin';

CREATE FUNCTION carm.available_clients(provider_bn9 text)
RETURNS TABLE (client text, legal_name text, relationship_id bigint, access_type text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm._group_listing_provider(provider_bn9);
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
COMMENT ON FUNCTION carm.available_clients(text) IS
  'G3: clients of a provider that can join one of its groups (active relationship, in no group); its BAMs or carm_admin';

CREATE FUNCTION carm.group_requests(provider_bn9 text)
RETURNS TABLE (request_id bigint, operation text, group_id bigint, group_name text,
               initiator bigint, initiator_name text, status text, item_count integer,
               created_at timestamptz, started_at timestamptz, finished_at timestamptz,
               error text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm._group_listing_provider(provider_bn9);
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
COMMENT ON FUNCTION carm.group_requests(text) IS
  'G9: the request-processing table of a provider (system id, operation, group, initiator, status, items, times, error); its BAMs or carm_admin';

-- The group for a listing by id: its provider's BAMs or carm_admin; a
-- deleted group lists empty (G8 removed its members).
CREATE FUNCTION carm._group_listing(p_group bigint) RETURNS carm.client_group
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group;
  b carm.business;
BEGIN
  PERFORM carm._not_null(p_group, 'group_id');
  SELECT * INTO g FROM carm.client_group cg WHERE cg.id = p_group;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'client group % does not exist', p_group USING ERRCODE = 'P0002';
  END IF;
  IF NOT carm._caller_is_admin() THEN
    SELECT * INTO b FROM carm.business WHERE id = g.provider_id;
    PERFORM carm._require_group_manager(b, carm._require_actor());
  END IF;
  RETURN g;
END
$$;
COMMENT ON FUNCTION carm._group_listing(bigint) IS
  'Internal: the group of a member listing, for its provider''s BAMs (G1) or carm_admin';

CREATE FUNCTION carm.group_clients(group_id bigint)
RETURNS TABLE (client text, legal_name text, added_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group := carm._group_listing(group_id);
BEGIN
  RETURN QUERY
    SELECT c.bn9, c.legal_name, gc.added_at
    FROM carm.group_client gc JOIN carm.business c ON c.id = gc.client_id
    WHERE gc.group_id = g.id
    ORDER BY c.bn9;
END
$$;
COMMENT ON FUNCTION carm.group_clients(bigint) IS
  'The clients of a client group; its provider''s BAMs or carm_admin';

CREATE FUNCTION carm.group_employees(group_id bigint)
RETURNS TABLE (user_id bigint, full_name text, role text, assigned_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  g carm.client_group := carm._group_listing(group_id);
BEGIN
  RETURN QUERY
    SELECT u.id, u.full_name, ge.role, ge.assigned_at
    FROM carm.group_employee ge JOIN carm.app_user u ON u.id = ge.user_id
    WHERE ge.group_id = g.id
    ORDER BY u.id;
END
$$;
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
-- R12 maintenance: applies what time has decided.  Correctness never waits
-- for it (R9: the check compares expires_at with the transaction time); it
-- brings stored state in line, sends the notices, and runs deferred group
-- requests (G9).  Run by the background worker when the library is preloaded
-- (src/worker.c), else by pg_cron or an operator.
--
-- Concurrent runs never apply anything twice: each step locks the rows it
-- handles FOR UPDATE SKIP LOCKED and re-checks their state, so a second run
-- skips what the first holds, and finds it done once the first commits.

-- R9: the expiry cascade for every relationship due at p_as_of, in one
-- set-based statement.  Returns how many expired.
CREATE FUNCTION carm._expire_relationships(p_as_of timestamptz) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm._close_relationships(
           ARRAY(SELECT r.id FROM carm.relationship r
                 WHERE r.status = 'active' AND r.expires_at <= p_as_of
                 ORDER BY r.id
                 FOR UPDATE SKIP LOCKED),
           'expired', p_as_of);
$$;
COMMENT ON FUNCTION carm._expire_relationships(timestamptz) IS
  'Internal (R9, R12): applies the expiry cascade to every relationship due at as_of; returns how many';

-- §9: BAMs of both businesses are told when a relationship will expire within
-- 30 days, once per expiry date (a new date set by update_relationship gets
-- its own notice).  Returns how many relationships were announced.
CREATE FUNCTION carm._notify_expiring(p_as_of timestamptz) RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  WITH due AS (
    SELECT r.id
    FROM carm.relationship r
    WHERE r.status = 'active' AND r.expires_at > p_as_of
      AND r.expires_at <= p_as_of + interval '30 days'
      AND r.expiry_notice_for IS DISTINCT FROM r.expires_at
    ORDER BY r.id
    FOR UPDATE SKIP LOCKED
  ),
  marked AS (
    UPDATE carm.relationship r SET expiry_notice_for = r.expires_at
    FROM due WHERE r.id = due.id
    RETURNING r.id, r.provider_id, r.client_id, r.expires_at
  ),
  events AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, other_business_id,
                                  relationship_id, details)
    SELECT carm.actor(), carm._caller_role(), 'relationship_expiring', m.provider_id, m.client_id, m.id,
           jsonb_build_object('as_of', p_as_of, 'expires_at', m.expires_at)
    FROM marked m ORDER BY m.id
    RETURNING id, at, event, business_id, other_business_id, relationship_id, details
  ),
  recipients AS (
    SELECT ev.id AS audit_id, ev.relationship_id, e.user_id
    FROM events ev JOIN carm.employee e ON e.business_id = ev.business_id AND e.role = 'BAM'
    UNION
    SELECT ev.id, ev.relationship_id, e.user_id
    FROM events ev JOIN carm.employee e ON e.business_id = ev.other_business_id AND e.role = 'BAM'
  ),
  notes AS (
    INSERT INTO carm.notification (user_id, event, message, audit_id)
    SELECT x.user_id, 'relationship_expiring',
           format('The business relationship between %s (%s) and %s (%s) expires on %s UTC',
                  pb.legal_name, pb.bn9, cb.legal_name, cb.bn9,
                  to_char(m.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')),
           x.audit_id
    FROM recipients x
    JOIN marked m ON m.id = x.relationship_id
    JOIN carm.business pb ON pb.id = m.provider_id
    JOIN carm.business cb ON cb.id = m.client_id
    ORDER BY x.audit_id, x.user_id
    RETURNING 1
  )
  SELECT count(*) FROM (
    SELECT carm._publish(ev.id, ev.at, carm.actor(), ev.event, ev.business_id,
                         ev.other_business_id, NULL, ev.relationship_id, NULL, ev.details)
    FROM events ev ORDER BY ev.id
  ) published;
$$;
COMMENT ON FUNCTION carm._notify_expiring(timestamptz) IS
  'Internal (§9, R12): notifies the BAMs of both businesses of relationships expiring within 30 days, once per expiry date';

CREATE FUNCTION carm.run_maintenance(as_of timestamptz DEFAULT now())
RETURNS TABLE (action text, count bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm._require_admin();
  PERFORM carm._not_null(as_of, 'as_of');
  action := 'relationships_expired';
  count := carm._expire_relationships(as_of);
  RETURN NEXT;
  action := 'expiry_notices';
  count := carm._notify_expiring(as_of);
  RETURN NEXT;
  -- G9: deferred group requests (client groups, sql/src: groups)
  RETURN QUERY SELECT * FROM carm._process_group_requests(as_of);
END
$$;
COMMENT ON FUNCTION carm.run_maintenance(timestamptz) IS
  'R12: applies due expiry cascades (R9), sends 30-day expiry notices, runs deferred group requests (G9); returns what it did (carm_admin)';

REVOKE ALL ON FUNCTION carm.run_maintenance(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.run_maintenance(timestamptz) TO carm_admin;
-- §8 the decisions, implemented in C (src/check.c, src/planner.c).

CREATE FUNCTION carm.has_access(target text, permission text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_has_access';
COMMENT ON FUNCTION carm.has_access(text, text) IS
  'Does the acting user hold permission (function.level) on a BN15 or BN9?';

CREATE FUNCTION carm.user_has_access(user_id bigint, target text, permission text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_user_has_access';
COMMENT ON FUNCTION carm.user_has_access(bigint, text, text) IS
  'Does a user hold permission (function.level) on a BN15 or BN9? (carm_admin)';
REVOKE ALL ON FUNCTION carm.user_has_access(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.user_has_access(bigint, text, text) TO carm_admin;

-- Row-level security (V1-V5).  Policies call these with the function name as
-- a constant; see carm.protect().

CREATE FUNCTION carm._visible_programs(function text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_visible_programs_sql';
COMMENT ON FUNCTION carm._visible_programs(text) IS
  'Internal: program ids where the actor may see some row of this function (the index condition)';

CREATE FUNCTION carm._row_visible_support(internal) RETURNS internal
  LANGUAGE c STRICT
  AS 'MODULE_PATHNAME', 'carm_row_visible_support';

CREATE FUNCTION carm._row_visible(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE COST 1
  SUPPORT carm._row_visible_support
  AS 'MODULE_PATHNAME', 'carm_row_visible';
COMMENT ON FUNCTION carm._row_visible(bigint, bigint, text) IS
  'Row check V1-V4: may the actor see a row of this program submitted by this business?';

CREATE FUNCTION carm._row_writable(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE COST 1
  AS 'MODULE_PATHNAME', 'carm_row_writable';
COMMENT ON FUNCTION carm._row_writable(bigint, bigint, text) IS
  'Row check V5: may the actor write a row of this program submitted by this business?';

CREATE FUNCTION carm._fill_submitter() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_fill_submitter';
COMMENT ON FUNCTION carm._fill_submitter() IS
  'V5: a NULL submitter becomes the actor''s acting business (BEFORE INSERT trigger of protected tables)';
-- §8 reports: which programs the actor may use, who has access to a business,
-- and why a user has (or once had) access to an account.

CREATE FUNCTION carm._accessible_program_ids(permission text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_accessible_program_ids';

CREATE FUNCTION carm.accessible_programs(permission text)
RETURNS TABLE (bn15 text, business text, name text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  -- the C function validates the permission and requires an actor, always
  WITH ids AS MATERIALIZED (SELECT carm._accessible_program_ids(permission) AS ids)
  SELECT p.bn15, b.bn9, p.name
  FROM ids, carm.program p JOIN carm.business b ON b.id = p.business_id
  WHERE CASE WHEN split_part(permission, '.', 1) = 'business_profile'
             -- a business-scope function (§3): the answer of the program's business
             THEN b.id IN (SELECT g.business_id FROM carm._grants(carm.actor()) g)
                  AND carm.has_access(b.bn9, permission)
             ELSE p.id = ANY (ids.ids) END
  ORDER BY p.bn15;
$$;
COMMENT ON FUNCTION carm.accessible_programs(text) IS
  'Program accounts (BN15) on which the acting user holds a permission such as rulings.edit';

-- Is the caller carm_admin or a BAM of this business?  42501 otherwise.
CREATE FUNCTION carm._require_admin_or_bam(p_business bigint) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm._caller_is_admin() THEN
    RETURN true;
  END IF;
  IF NOT EXISTS (SELECT FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
                 WHERE e.business_id = p_business AND e.user_id = carm._require_actor()
                   AND e.role = 'BAM') THEN
    RAISE EXCEPTION 'permission denied: only carm_admin or a business account manager of this business'
      USING ERRCODE = '42501';
  END IF;
  RETURN false;
END
$$;

-- The business and, for a BN15, the program a target names (22023 / P0002).
CREATE FUNCTION carm._target(p_target text, OUT business_id bigint, OUT program_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_target IS NULL OR length(p_target) NOT IN (9, 15) THEN
    RAISE EXCEPTION 'invalid business or program number "%"', left(p_target, 32)
      USING ERRCODE = '22023', HINT = 'A target is a BN9 or a BN15 such as 123456782RM0001.';
  END IF;
  IF length(p_target) = 9 THEN
    business_id := (carm._business(p_target)).id;
  ELSE
    program_id := carm.program_id(p_target);
    SELECT p.business_id INTO business_id FROM carm.program p WHERE p.id = program_id;
  END IF;
END
$$;

CREATE FUNCTION carm.explain_access(user_id bigint, target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  u carm.app_user;
  v_now timestamptz := now();
BEGIN
  t := carm._target(target);
  -- Authorise before looking the user up: a refused caller must not learn
  -- whether a user id exists (P0002) where it is simply not allowed (42501).
  IF NOT carm._require_admin_or_bam(t.business_id)
     AND NOT EXISTS (SELECT FROM carm.employee e
                     WHERE e.business_id = t.business_id AND e.user_id = explain_access.user_id) THEN
    RAISE EXCEPTION 'permission denied: user % is not an employee of this business', explain_access.user_id
      USING ERRCODE = '42501', HINT = 'A business account manager explains its own employees'' access.';
  END IF;
  u := carm._user(explain_access.user_id);

  RETURN QUERY
  WITH rel AS (            -- relationships of the providers the user works for, with this client
    SELECT r.*, pb.bn9 AS provider_bn9, e.role AS my_role,
           (r.status = 'active' AND (r.expires_at IS NULL OR r.expires_at > v_now)) AS live,
           (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs)) AS covers
    FROM carm.employee e
    JOIN carm.relationship r ON r.provider_id = e.business_id AND r.client_id = t.business_id
    JOIN carm.business pb ON pb.id = r.provider_id
    WHERE e.user_id = u.id AND r.status IN ('active','expired','ended')
  )
  -- V1: the user's own employee role
  SELECT 'employee'::text, e.role, b.bn9,
         CASE WHEN e.programs IS NULL THEN 'all programs'
              ELSE array_to_string(carm._bn15s(e.programs), ', ') END,
         u.active AND (t.program_id IS NULL OR e.programs IS NULL OR t.program_id = ANY (e.programs)),
         CASE WHEN NOT u.active THEN 'user is deactivated'
              WHEN t.program_id IS NOT NULL AND e.programs IS NOT NULL AND NOT t.program_id = ANY (e.programs)
                THEN 'program not in the employee''s scope (E5)'
              ELSE 'employee of the business (V1)' END
  FROM carm.employee e JOIN carm.business b ON b.id = e.business_id
  WHERE e.user_id = u.id AND e.business_id = t.business_id
  UNION ALL
  -- R6 / V4: provider BAMs
  SELECT 'relationship #' || r.id || ' (' || coalesce(r.access_type, '?') || ')',
         CASE WHEN r.live THEN (CASE r.access_type WHEN 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END)
              ELSE 'EXPIRED' END,
         r.provider_bn9,
         CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
              ELSE array_to_string(carm._bn15s(r.programs), ', ') END,
         u.active AND r.covers,
         CASE WHEN NOT u.active THEN 'user is deactivated'
              WHEN NOT r.covers THEN 'program not delegated by the relationship'
              WHEN r.live THEN 'business account manager of the service provider (R6)'
                   || CASE WHEN r.expires_at IS NOT NULL THEN ', until ' || r.expires_at ELSE '' END
              WHEN r.status = 'ended' THEN 'relationship ended at ' || r.closed_at
                   || ': read-only, own submissions (V4)'
              ELSE 'relationship expired at ' || coalesce(r.expires_at, r.closed_at)
                   || ': read-only, own submissions (V4)' END
  FROM rel r WHERE r.my_role = 'BAM'
  UNION ALL
  -- V3: provider PAMs read the provider's submissions
  SELECT 'relationship #' || r.id || ' (' || r.access_type || ')', 'SPMGR', r.provider_bn9,
         CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
              ELSE array_to_string(carm._bn15s(r.programs), ', ') END,
         u.active AND r.live AND r.covers,
         CASE WHEN r.live THEN 'program account manager of the service provider: reads its submissions (V3)'
              ELSE 'relationship no longer active' END
  FROM rel r WHERE r.my_role = 'PAM'
  UNION ALL
  -- R7: individual assignments
  SELECT 'assignment on relationship #' || r.id, a.role, r.provider_bn9,
         CASE WHEN a.programs IS NULL THEN 'all delegated programs'
              ELSE array_to_string(carm._bn15s(a.programs), ', ') END,
         u.active AND r.live AND r.covers AND r.my_role <> 'BAM'
           AND (t.program_id IS NULL OR a.programs IS NULL OR t.program_id = ANY (a.programs)),
         CASE WHEN NOT r.live THEN 'relationship is ' || CASE WHEN r.status = 'active' THEN 'expired' ELSE r.status END
              WHEN r.my_role = 'BAM' THEN 'superseded: the user is a provider BAM (R6)'
              WHEN NOT r.covers OR (t.program_id IS NOT NULL AND a.programs IS NOT NULL
                                    AND NOT t.program_id = ANY (a.programs))
                THEN 'program not in the assignment'
              ELSE 'assigned by the service provider (R7)' END
  FROM rel r JOIN carm.client_assignment a ON a.relationship_id = r.id AND a.user_id = u.id
  UNION ALL
  -- G4 / G5: client groups
  SELECT 'group "' || g.name || '" on relationship #' || r.id, ge.role, r.provider_bn9,
         'all delegated programs',
         u.active AND r.live AND r.covers AND r.my_role <> 'BAM'
           AND NOT EXISTS (SELECT FROM carm.client_assignment a WHERE a.relationship_id = r.id AND a.user_id = u.id),
         CASE WHEN NOT r.live THEN 'relationship is not active'
              WHEN r.my_role = 'BAM' THEN 'superseded: the user is a provider BAM (R6)'
              WHEN EXISTS (SELECT FROM carm.client_assignment a WHERE a.relationship_id = r.id AND a.user_id = u.id)
                THEN 'overridden by an individual assignment (G5)'
              WHEN NOT r.covers THEN 'program not delegated by the relationship'
              ELSE 'employee of the client group (G4)' END
  FROM rel r
  JOIN carm.group_client gc ON gc.provider_id = r.provider_id AND gc.client_id = r.client_id
  JOIN carm.client_group g ON g.id = gc.group_id AND g.deleted_at IS NULL
  JOIN carm.group_employee ge ON ge.group_id = g.id AND ge.user_id = u.id
  ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION carm.explain_access(bigint, text) IS
  'Every path that grants or once granted a user access to a BN9/BN15, whether it is in force and why (carm_admin, or a BAM of the target business for its employees)';

CREATE FUNCTION carm.who_has_access(target text)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  v_admin boolean;
  v_now timestamptz := now();
BEGIN
  t := carm._target(target);
  v_admin := carm._require_admin_or_bam(t.business_id);
  RETURN QUERY
  WITH rel AS (
    SELECT r.*, pb.bn9 AS provider_bn9
    FROM carm.relationship r JOIN carm.business pb ON pb.id = r.provider_id
    WHERE r.client_id = t.business_id AND r.status = 'active'
      AND (r.expires_at IS NULL OR r.expires_at > v_now)
      AND (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs))
  ),
  -- carm_admin: relationships ended or expired (by time, whether or not the
  -- cascade has run, R9), whose provider BAMs still hold EXPIRED (V4)
  closed AS (
    SELECT r.*, pb.bn9 AS provider_bn9
    FROM carm.relationship r JOIN carm.business pb ON pb.id = r.provider_id
    WHERE v_admin AND r.client_id = t.business_id
      AND (r.status IN ('expired', 'ended') OR (r.status = 'active' AND r.expires_at <= v_now))
      AND (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs))
  ),
  paths AS (
    -- the business's own employees
    SELECT e.user_id AS uid, e.role AS r_role, b.bn9 AS r_via,
           CASE WHEN e.programs IS NULL THEN 'all programs'
                ELSE array_to_string(carm._bn15s(e.programs), ', ') END AS r_scope,
           'employee'::text AS r_path, NULL::timestamptz AS r_exp
    FROM carm.employee e JOIN carm.business b ON b.id = e.business_id
    WHERE e.business_id = t.business_id
      AND (t.program_id IS NULL OR e.programs IS NULL OR t.program_id = ANY (e.programs))
    UNION ALL
    -- active relationships (a client BAM sees these rows, without the provider's people)
    SELECT NULL, r.access_type, r.provider_bn9,
           CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                ELSE array_to_string(carm._bn15s(r.programs), ', ') END,
           'relationship #' || r.id
             || CASE WHEN r.see_client THEN ', sees client submissions' ELSE '' END
             || CASE WHEN r.see_other THEN ', sees other submissions' ELSE '' END,
           r.expires_at
    FROM rel r
    UNION ALL
    -- carm_admin: the provider's people too (the delegation of authority report)
    SELECT e.user_id, CASE r.access_type WHEN 'BUSINESS' THEN 'PBAM' ELSE 'PPAM' END,
           r.provider_bn9, CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                                ELSE array_to_string(carm._bn15s(r.programs), ', ') END,
           'provider BAM, relationship #' || r.id, r.expires_at
    FROM rel r JOIN carm.employee e ON e.business_id = r.provider_id AND e.role = 'BAM'
    WHERE v_admin
    UNION ALL
    SELECT a.user_id, a.role, r.provider_bn9,
           CASE WHEN a.programs IS NULL THEN 'all delegated programs'
                ELSE array_to_string(carm._bn15s(a.programs), ', ') END,
           'assignment, relationship #' || r.id, r.expires_at
    FROM rel r JOIN carm.client_assignment a ON a.relationship_id = r.id
    JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = a.user_id AND e.role <> 'BAM'
    WHERE v_admin
      -- R7: an assignment to a listed subset covers only those programs
      AND (t.program_id IS NULL OR a.programs IS NULL OR t.program_id = ANY (a.programs))
    UNION ALL
    SELECT ge.user_id, ge.role, r.provider_bn9, 'all delegated programs',
           'group "' || g.name || '", relationship #' || r.id, r.expires_at
    FROM rel r
    JOIN carm.group_client gc ON gc.provider_id = r.provider_id AND gc.client_id = r.client_id
    JOIN carm.client_group g ON g.id = gc.group_id AND g.deleted_at IS NULL
    JOIN carm.group_employee ge ON ge.group_id = g.id
    JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = ge.user_id AND e.role <> 'BAM'
    WHERE v_admin
      AND NOT EXISTS (SELECT FROM carm.client_assignment a
                      WHERE a.relationship_id = r.id AND a.user_id = ge.user_id)
    UNION ALL
    -- V4: the provider's BAMs hold EXPIRED (read-only, own submissions); they
    -- have access, so "everyone" lists them, as the check decides
    SELECT e.user_id, 'EXPIRED', r.provider_bn9,
           CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                ELSE array_to_string(carm._bn15s(r.programs), ', ') END,
           'provider BAM, relationship #' || r.id
             || CASE WHEN r.status = 'ended' THEN ' (ended)' ELSE ' (expired)' END,
           r.expires_at
    FROM closed r JOIN carm.employee e ON e.business_id = r.provider_id AND e.role = 'BAM'
  )
  SELECT p.uid, u.full_name, p.r_role, p.r_via, p.r_scope, p.r_path, p.r_exp
  FROM paths p LEFT JOIN carm.app_user u ON u.id = p.uid
  WHERE p.uid IS NULL OR u.active
  ORDER BY p.uid NULLS LAST, p.r_via, p.r_path;
END
$$;
COMMENT ON FUNCTION carm.who_has_access(text) IS
  'Who holds access to a BN9/BN15: for a client BAM its employees and active relationships; for carm_admin everyone';
-- §8 carm.protect(): row-level security on an application's own tables.
--
-- The policies call the C checks with the table's function as a constant and
-- contain no subquery (so the same policy also works on Citus distributed
-- tables); the planner support of carm._row_visible turns the check into an
-- index condition on the program column (src/planner.c).

-- 42501 unless the calling role (not the definer) owns the table, as ALTER
-- TABLE, CREATE POLICY and CREATE TRIGGER would require of it.
CREATE FUNCTION carm._require_table_owner(p_tbl regclass, p_owner oid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_owner IS NULL OR NOT pg_has_role(carm._caller_role(), p_owner, 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501',
      HINT = 'carm.protect() and carm.unprotect() act for the table''s owner.';
  END IF;
END
$$;

CREATE FUNCTION carm.protect(tbl regclass, program_column name, submitter_column name,
                             function text)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_nsp name;
  v_kind "char";
  v_owner oid;
  v_col record;
  v_fn text;
  v_visible text;
  v_writable text;
  v_rels regclass[];
  v_rel regclass;
BEGIN
  PERFORM carm._require_admin();
  PERFORM carm._not_null(tbl, 'tbl');
  PERFORM carm._not_null(program_column, 'program_column');
  PERFORM carm._not_null(submitter_column, 'submitter_column');
  v_fn := carm._not_blank(function, 'function', 64);
  IF v_fn NOT IN ('business_profile','program_profile','employee_access','relationships',
                  'rulings','payments','statements','notifications','banking') THEN
    RAISE EXCEPTION 'unknown function "%"', v_fn USING ERRCODE = '22023',
      HINT = 'Functions are business_profile, program_profile, employee_access, relationships, rulings, payments, statements, notifications and banking.';
  END IF;

  SELECT n.nspname, c.relkind, c.relowner INTO v_nsp, v_kind, v_owner
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl;
  IF v_nsp IN ('pg_catalog', 'information_schema', 'pg_toast') OR tbl::oid < 16384 THEN
    RAISE EXCEPTION 'cannot protect system catalog %', tbl USING ERRCODE = '42501';
  END IF;
  -- This function runs as the extension owner: without this check any
  -- carm_admin could add policies and triggers to, and with unprotect()
  -- switch off row-level security of, any table of the database.
  PERFORM carm._require_table_owner(tbl, v_owner);
  IF v_nsp = 'carm' THEN
    RAISE EXCEPTION 'cannot protect % in schema carm', tbl USING ERRCODE = '42501',
      HINT = 'Protect the application''s own tables; the extension''s tables are closed already.';
  END IF;
  IF v_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '42809';
  END IF;
  IF program_column = submitter_column THEN
    RAISE EXCEPTION 'program and submitter columns must differ' USING ERRCODE = '22023';
  END IF;

  FOR v_col IN
    SELECT x.colname, a.atttypid
    FROM unnest(ARRAY[program_column, submitter_column]) AS x(colname)
    LEFT JOIN pg_catalog.pg_attribute a
      ON a.attrelid = tbl AND a.attname = x.colname AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF v_col.atttypid IS NULL THEN
      RAISE EXCEPTION 'column "%" of % does not exist', v_col.colname, tbl USING ERRCODE = '42703';
    END IF;
    IF v_col.atttypid <> 'bigint'::regtype THEN
      RAISE EXCEPTION 'column "%" of % must be bigint, not %', v_col.colname, tbl,
        format_type(v_col.atttypid, NULL) USING ERRCODE = '42804',
        HINT = 'The program column holds carm.program_id(bn15), the submitter column carm.business_id(bn9).';
    END IF;
  END LOOP;

  v_visible := format('carm._row_visible(%I, %I, %L)', program_column, submitter_column, v_fn);
  v_writable := format('carm._row_writable(%I, %I, %L)', program_column, submitter_column, v_fn);

  -- A partitioned table's policies do not apply to queries that name a
  -- partition: every partition gets them too (partitions attached later are
  -- covered by calling protect() again).  The BEFORE INSERT trigger is
  -- created on the table only: PostgreSQL clones it to every partition,
  -- present and future.
  v_rels := CASE WHEN v_kind = 'p'
                 THEN ARRAY(SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t ORDER BY t.level, t.relid::text)
                 ELSE ARRAY[tbl] END;

  -- idempotent: drop what an earlier call installed, then install
  PERFORM carm._drop_protection(tbl);
  FOREACH v_rel IN ARRAY v_rels LOOP
    PERFORM carm._require_table_owner(v_rel, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = v_rel));
    -- the flags the relation had before its first protect(), for unprotect()
    INSERT INTO carm.protected_table (relid, root, program_column, submitter_column, function,
                                      had_rls, had_force_rls)
    SELECT v_rel, tbl, program_column, submitter_column, v_fn, c.relrowsecurity, c.relforcerowsecurity
    FROM pg_catalog.pg_class c WHERE c.oid = v_rel
    ON CONFLICT (relid) DO UPDATE
      SET root = excluded.root, program_column = excluded.program_column,
          submitter_column = excluded.submitter_column, function = excluded.function,
          protected_at = now();
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_rel);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', v_rel);
    EXECUTE format('CREATE POLICY carm_select ON %s FOR SELECT USING (%s)', v_rel, v_visible);
    EXECUTE format('CREATE POLICY carm_insert ON %s FOR INSERT WITH CHECK (%s)', v_rel, v_writable);
    EXECUTE format('CREATE POLICY carm_update ON %s FOR UPDATE USING (%s) WITH CHECK (%s)',
                   v_rel, v_writable, v_writable);
    EXECUTE format('CREATE POLICY carm_delete ON %s FOR DELETE USING (%s)', v_rel, v_writable);
  END LOOP;
  EXECUTE format('CREATE TRIGGER carm_fill_submitter BEFORE INSERT ON %s FOR EACH ROW '
                 'EXECUTE FUNCTION carm._fill_submitter(%L, %L, %L)',
                 tbl, program_column, submitter_column, v_fn);

  IF NOT EXISTS (
    SELECT FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tbl AND a.attname = program_column) THEN
    RAISE NOTICE '% has no btree index on %: every query will scan the whole table', tbl, program_column
      USING HINT = format('CREATE INDEX ON %s (%I)', tbl, program_column);
  END IF;
  PERFORM carm._audit('table_protected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text, 'program_column', program_column,
                                         'submitter_column', submitter_column, 'function', v_fn));
END
$$;
COMMENT ON FUNCTION carm.protect(regclass, name, name, text) IS
  'Enable and force row-level security on an application table with policies implementing V1-V5 (carm_admin)';

-- Removes the policies and the trigger protect() installed on a table and on
-- the partitions recorded with it; leaves the records and the RLS flags.
CREATE FUNCTION carm._drop_protection(tbl regclass) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT pol.polname, pol.polrelid::regclass AS rel
           FROM pg_catalog.pg_policy pol
           WHERE (pol.polrelid = tbl
                  OR pol.polrelid IN (SELECT t.relid FROM carm.protected_table t WHERE t.root = tbl))
             AND pol.polname IN ('carm_select','carm_insert','carm_update','carm_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', r.polname, r.rel);
  END LOOP;
  IF EXISTS (SELECT FROM pg_catalog.pg_trigger tg
             WHERE tg.tgrelid = tbl AND tg.tgname = 'carm_fill_submitter' AND tg.tgparentid = 0) THEN
    EXECUTE format('DROP TRIGGER carm_fill_submitter ON %s', tbl);
  END IF;
END
$$;

CREATE FUNCTION carm.unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.protected_table;
BEGIN
  PERFORM carm._require_admin();
  PERFORM carm._not_null(tbl, 'tbl');
  PERFORM carm._require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  IF NOT EXISTS (SELECT FROM carm.protected_table t WHERE t.relid = tbl AND t.root = tbl) THEN
    RAISE EXCEPTION '% is not protected by carm_deleg', tbl USING ERRCODE = '55000';
  END IF;
  PERFORM carm._drop_protection(tbl);
  -- give every relation back the row-level-security flags it had before
  FOR r IN SELECT * FROM carm.protected_table t WHERE t.root = tbl LOOP
    IF EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = r.relid) THEN
      IF NOT r.had_force_rls THEN
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', r.relid);
      END IF;
      IF NOT r.had_rls THEN
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', r.relid);
      END IF;
    END IF;
  END LOOP;
  DELETE FROM carm.protected_table t WHERE t.root = tbl;
  PERFORM carm._audit('table_unprotected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text));
END
$$;
COMMENT ON FUNCTION carm.unprotect(regclass) IS
  'Undo carm.protect(): drop its policies and trigger, give the table (and its partitions) back the row-level-security flags they had (carm_admin)';

CREATE FUNCTION carm.protected_tables()
RETURNS TABLE (tbl regclass, program_column name, submitter_column name, function text,
               protected_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT relid, program_column, submitter_column, function, protected_at
  FROM carm.protected_table WHERE relid = root ORDER BY relid::text;
$$;
COMMENT ON FUNCTION carm.protected_tables() IS 'Tables protected with carm.protect() (carm_admin)';

REVOKE ALL ON FUNCTION carm.protect(regclass, name, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.protected_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protected_tables() TO carm_admin;
REVOKE ALL ON FUNCTION carm.unprotect(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protect(regclass, name, name, text),
  carm.unprotect(regclass) TO carm_admin;
-- Closing statements: cache invalidation triggers, table privileges, dumps.

-- Every table whose rows change a decision invalidates the grant cache of
-- every backend at commit (src/cache.c).
DO $inval$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['business','program','app_user','login_binding','employee',
                           'relationship','client_assignment','client_group',
                           'group_client','group_employee']
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carm.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION carm._invalidate_cache()',
                   t || '_invalidate_cache', t);
  END LOOP;
END
$inval$;

-- Application roles reach state only through the API (§2).
REVOKE ALL ON ALL TABLES IN SCHEMA carm FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA carm FROM PUBLIC;

-- Internal functions are not part of the API.
DO $internal$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'carm'::regnamespace AND p.proname LIKE '\_%'
      AND p.proname NOT IN ('_row_visible', '_row_writable', '_visible_programs',
                            '_bn9_is_valid', '_bn15_is_valid')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$internal$;

-- pg_dump keeps the delegation state with the extension.
DO $dump$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_catalog.pg_class c
           WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind = 'r'
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(format('carm.%I', t), '');
  END LOOP;
END
$dump$;
