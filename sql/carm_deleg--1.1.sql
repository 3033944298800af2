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

-- The schemas hold superuser-owned SECURITY DEFINER functions: they must be
-- ours.  CREATE EXTENSION adopts an existing schema carm, so refuse one that
-- another role created beforehand (it could replace what we install).
-- Schema carm holds the API and the state tables; carm_internal the
-- functions the API is built from, so that \df carm.* reads like the
-- reference.
DO $schema$
BEGIN
  IF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm')
     IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
    RAISE EXCEPTION 'schema carm is owned by another role'
      USING ERRCODE = '42501',
            HINT = 'Drop the schema, or let the role installing carm_deleg own it, before CREATE EXTENSION.';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm_internal') THEN
    CREATE SCHEMA carm_internal;
  ELSIF (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'carm_internal')
     IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
     OR NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                    JOIN pg_catalog.pg_extension x ON x.oid = d.refobjid AND x.extname = 'carm_deleg'
                    WHERE d.classid = 'pg_catalog.pg_namespace'::regclass
                      AND d.objid = 'carm_internal'::regnamespace AND d.deptype = 'e') THEN
    RAISE EXCEPTION 'schema carm_internal exists and does not belong to carm_deleg'
      USING ERRCODE = '42501',
            HINT = 'Drop the schema carm_internal before CREATE EXTENSION.';
  END IF;
END
$schema$;
COMMENT ON SCHEMA carm IS
  'carm_deleg: delegation of authority for CARM customs accounts (API and state tables)';
COMMENT ON SCHEMA carm_internal IS
  'carm_deleg internals: helpers of the API, the resolver and the row checks; not an API';

-- Functions resolve through the schemas; tables stay closed (see 90_privileges.sql).
GRANT USAGE ON SCHEMA carm TO PUBLIC;
GRANT USAGE ON SCHEMA carm_internal TO PUBLIC;
-- C functions used by the data model itself (CHECK constraints, triggers).

CREATE OR REPLACE FUNCTION carm_internal.bn9_is_valid(text) RETURNS boolean
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_bn9_valid_sql';
COMMENT ON FUNCTION carm_internal.bn9_is_valid(text) IS
  'True when the text is a BN9: nine digits, the last a Luhn check digit';

CREATE OR REPLACE FUNCTION carm_internal.bn15_is_valid(text) RETURNS boolean
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF
  AS 'MODULE_PATHNAME', 'carm_bn15_valid_sql';
COMMENT ON FUNCTION carm_internal.bn15_is_valid(text) IS
  'True when the text is a BN15: a valid BN9, RM, and four digits';

-- Cache invalidation (src/inval.c; the triggers are in 11_invalidation.sql).
-- Statement level: every grant of every user becomes stale at commit.
CREATE OR REPLACE FUNCTION carm_internal.invalidate_cache() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_invalidate_cache';
COMMENT ON FUNCTION carm_internal.invalidate_cache() IS
  'Trigger: at commit, every backend reloads every user''s grants';
-- Row level: the grants of the users and businesses the row names.
CREATE OR REPLACE FUNCTION carm_internal.invalidate_keys() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_invalidate_keys';
COMMENT ON FUNCTION carm_internal.invalidate_keys() IS
  'Trigger (arguments ''user:column'' or ''business:column''): at commit, every backend reloads the grants of the named users, and every user''s grants on the named businesses';

-- The names of the nine functions and of the roles, checked by the C matrix
-- (src/matrix.c), the one list the API, the checks and the views share.
CREATE OR REPLACE FUNCTION carm_internal.function_name(text) RETURNS text
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_function_name_sql';
COMMENT ON FUNCTION carm_internal.function_name(text) IS
  'Internal (§3.1): one of the nine functions; 22023 naming them otherwise';
CREATE OR REPLACE FUNCTION carm_internal.role_name(role text, kind text) RETURNS text
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_role_name_sql';
COMMENT ON FUNCTION carm_internal.role_name(text, text) IS
  'Internal: a role of one kind (employee: BAM, PAM, EDITOR, VIEWER; client or group: PPAM, PEDITOR, PVIEWER), or 22023 with the API''s message';
-- The data model (README "Design / data model").  Tables are private to the
-- extension owner; every application role goes through the API functions.
--
-- Delegation state is stored as facts (who is employee with which role and
-- scope, which relationship is active with which type and programs, which
-- assignment or group exists).  Derived roles — PBAM/PPAM of provider BAMs,
-- group-derived proxy roles, EXPIRED — are never materialised: the resolver
-- (carm_internal.grants) derives them, so promotions, demotions and time-based expiry
-- need no fan-out of updates.

-- §2 reference data ----------------------------------------------------------

CREATE TABLE carm.business (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bn9         text NOT NULL UNIQUE CHECK (carm_internal.bn9_is_valid(bn9)),
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
  bn15        text NOT NULL UNIQUE CHECK (carm_internal.bn15_is_valid(bn15)),
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

-- regrole, so that pg_dump writes the role by name; the name is kept too, and
-- a binding counts only while the session user has both this oid and this
-- name (src/actor.c): a dropped role whose oid is reused binds nobody (§2).
CREATE TABLE carm.login_binding (
  login_role  regrole PRIMARY KEY,             -- the login role
  user_id     bigint NOT NULL REFERENCES carm.app_user,
  login_name  name NOT NULL                    -- its name when bound
);
COMMENT ON TABLE carm.login_binding IS 'Default actor of sessions whose session_user is login_role (and still has login_name)';

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
-- Which cached decisions a change makes stale (src/inval.c, README "The check
-- and its store").  Every table the resolver carm_internal.grants() reads has
-- its triggers here, next to the list of what its rows mean; the test
-- test/sql/invalidation.sql proves that none is missing.
--
-- A row names either a user (that user's grants change, wherever they are)
-- or a business (every user's grants on that business change).  Keys are
-- sent at commit and replayed on standbys; a TRUNCATE, and the rare changes
-- whose reach a row does not tell, make everything stale.

DO $invalidation$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      -- table             keys of one row
      ('program',           ARRAY['business:business_id']),   -- E12: a program added later
      ('app_user',          ARRAY['user:id']),                -- §2: deactivated users
      ('employee',          ARRAY['user:user_id']),           -- E1-E11, and R6 for a provider's BAMs
      ('relationship',      ARRAY['business:client_id']),     -- R5-R10 for every provider employee
      ('client_assignment', ARRAY['user:user_id']),           -- R7
      ('group_client',      ARRAY['business:client_id']),     -- G3, G6, G7
      ('group_employee',    ARRAY['user:user_id'])            -- G4, G5
    ) AS x(tbl, keys)
  LOOP
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON carm.%I '
                   'FOR EACH ROW EXECUTE FUNCTION carm_internal.invalidate_keys(%s)',
                   t.tbl || '_invalidate', t.tbl,
                   (SELECT string_agg(quote_literal(k), ', ') FROM unnest(t.keys) k));
    EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER TRUNCATE ON carm.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.invalidate_cache()',
                   t.tbl || '_invalidate_all', t.tbl);
  END LOOP;
END
$invalidation$;

-- G8: deleting a group ends its employees' access to all its clients; a
-- login binding changes who a session acts as.  Both are rare: everything.
CREATE OR REPLACE TRIGGER client_group_invalidate_all
  AFTER UPDATE OR DELETE OR TRUNCATE ON carm.client_group
  FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.invalidate_cache();
CREATE OR REPLACE TRIGGER login_binding_invalidate_all
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON carm.login_binding
  FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.invalidate_cache();
-- §2 identity: who is acting.  Implemented in C (src/actor.c): the actor is a
-- guarded setting that only these functions can assign.

-- set_actor(user [, is_local [, on_behalf_of]]) and set_actor(user,
-- on_behalf_of): overloads, not defaults, so that the common call
-- set_actor(user) expands nothing when it is parsed and planned (§11).
-- is_local NULL means true.
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, is_local boolean) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id_for';
CREATE OR REPLACE FUNCTION carm.set_actor(user_id bigint, is_local boolean, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_id';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, is_local boolean) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external_for';
CREATE OR REPLACE FUNCTION carm.set_actor(external_id text, is_local boolean, on_behalf_of text) RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_set_actor_external';
DO $comments$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = 'carm'::regnamespace AND p.proname = 'set_actor'
  LOOP
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', f,
      CASE WHEN pg_catalog.pg_get_function_identity_arguments(f) LIKE 'user_id%'
           THEN 'Act as this user until the end of the transaction (is_local, the default) or of the session, for the business on_behalf_of (BN9) if given; carm_gateway only'
           ELSE 'Act as the user with this sign-in identity until the end of the transaction (is_local, the default) or of the session, for the business on_behalf_of (BN9) if given; carm_gateway only' END);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO carm_gateway', f);
  END LOOP;
END
$comments$;

CREATE OR REPLACE FUNCTION carm.reset_actor() RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_reset_actor';
COMMENT ON FUNCTION carm.reset_actor() IS 'No acting user, for the transaction and the session';

CREATE OR REPLACE FUNCTION carm.actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_actor_sql';
COMMENT ON FUNCTION carm.actor() IS 'The acting user, or NULL';

CREATE OR REPLACE FUNCTION carm_internal.on_behalf_of() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_acting_business_sql';
COMMENT ON FUNCTION carm_internal.on_behalf_of() IS
  'Internal: the business fixed by set_actor(on_behalf_of => bn9), or NULL';

-- The actor for API functions (SPEC §2), one implementation in C for the
-- C checks and every SQL function: 42501 "no acting user" when none, and
-- require_active_actor() also 42501 when the actor is deactivated.
CREATE OR REPLACE FUNCTION carm_internal.require_actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_require_actor_sql';
COMMENT ON FUNCTION carm_internal.require_actor() IS
  'Internal: the acting user; 42501 "no acting user" when there is none';
CREATE OR REPLACE FUNCTION carm_internal.forbid_restricted() RETURNS void
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_forbid_restricted_sql';
COMMENT ON FUNCTION carm_internal.forbid_restricted() IS
  'Internal: 42501 inside a security-restricted operation (ANALYZE, VACUUM, REINDEX, index expressions), where nobody acts or administers delegation';
CREATE OR REPLACE FUNCTION carm_internal.require_active_actor() RETURNS bigint
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_require_active_actor_sql';
COMMENT ON FUNCTION carm_internal.require_active_actor() IS
  'Internal: the acting user, who must be active; 42501 otherwise';

REVOKE ALL ON FUNCTION carm.reset_actor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.reset_actor() TO carm_gateway;

-- carm_admin is judged on the role the code runs as, never the session or
-- outer role, and nobody is carm_admin inside a security-restricted operation
-- (§2).  A SECURITY DEFINER function cannot see its caller, so every report
-- that answers everything to carm_admin is split in three: a SECURITY
-- INVOKER function in schema carm (the API) asks current_role_is_admin() and
-- calls either the admin variant, SECURITY DEFINER with EXECUTE granted to
-- carm_admin only (PostgreSQL checks membership for the role the calling
-- code runs as; require_admin() refuses inside a security-restricted
-- operation), or the actor variant, which has no admin powers.
CREATE OR REPLACE FUNCTION carm_internal.current_role_is_admin() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_current_role_is_admin';
COMMENT ON FUNCTION carm_internal.current_role_is_admin() IS
  'Internal: is current_user a member of carm_admin, outside any security-restricted operation (for SECURITY INVOKER callers)';

CREATE OR REPLACE FUNCTION carm_internal.caller_role() RETURNS name
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_caller_role';
COMMENT ON FUNCTION carm_internal.caller_role() IS
  'Internal: the outer database role, recorded in audit events; informational, never a decision';

-- Raises 42501 inside a security-restricted operation.  Called first by the
-- SECURITY DEFINER functions that answer or do everything for carm_admin,
-- whose EXECUTE privilege is granted to carm_admin only: PostgreSQL has
-- checked membership for the role the calling code runs as.
CREATE OR REPLACE FUNCTION carm_internal.require_admin() RETURNS void
  LANGUAGE c STABLE
  AS 'MODULE_PATHNAME', 'carm_require_admin';
COMMENT ON FUNCTION carm_internal.require_admin() IS
  'Internal: 42501 inside a security-restricted operation; callers are granted to carm_admin only';

-- The one definition of that split, so that every such report is exposed
-- the same way (and reviewed in one place): for a report whose body is
-- carm_internal.<name>(<params>, p_admin boolean), it creates the API
-- carm.<name>(<api_params>) and the variants carm_internal.<name>_admin
-- (EXECUTE for carm_admin only) and carm_internal.<name>_actor.  Run by the
-- install and the upgrade scripts, once per report; the grants of the API
-- and of the actor variant are the caller's (they differ per report).
CREATE OR REPLACE FUNCTION carm_internal.define_admin_split(name text, params text, api_params text,
                                                          args text, returns text,
                                                          admin_comment text, actor_comment text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $gen$
DECLARE
  v_admin regprocedure;
  v_actor regprocedure;
BEGIN
  EXECUTE format('CREATE OR REPLACE FUNCTION carm.%I(%s) RETURNS %s '
                 'LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS %L',
                 name, api_params, returns,
                 format(E'\nBEGIN\n  IF carm_internal.current_role_is_admin() THEN\n'
                        || E'    RETURN QUERY SELECT * FROM carm_internal.%I(%s);\n  ELSE\n'
                        || E'    RETURN QUERY SELECT * FROM carm_internal.%I(%s);\n  END IF;\nEND\n',
                        name || '_admin', args, name || '_actor', args));
  EXECUTE format('CREATE OR REPLACE FUNCTION carm_internal.%I(%s) RETURNS %s '
                 'LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                 name || '_admin', params, returns,
                 format(E'\nBEGIN\n  PERFORM carm_internal.require_admin();\n'
                        || E'  RETURN QUERY SELECT * FROM carm_internal.%I(%s, true);\nEND\n', name, args));
  EXECUTE format('CREATE OR REPLACE FUNCTION carm_internal.%I(%s) RETURNS %s '
                 'LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                 name || '_actor', params, returns,
                 format(E'\nBEGIN\n  RETURN QUERY SELECT * FROM carm_internal.%I(%s, false);\nEND\n', name, args));
  SELECT p.oid::regprocedure INTO STRICT v_admin FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = 'carm_internal'::regnamespace AND p.proname = name || '_admin';
  SELECT p.oid::regprocedure INTO STRICT v_actor FROM pg_catalog.pg_proc p
  WHERE p.pronamespace = 'carm_internal'::regnamespace AND p.proname = name || '_actor';
  EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_admin, admin_comment);
  EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_actor, actor_comment);
  -- the admin answers: for carm_admin only, whatever else is granted later
  EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_admin);
  EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO carm_admin', v_admin);
END
$gen$;
COMMENT ON FUNCTION carm_internal.define_admin_split(text, text, text, text, text, text, text) IS
  'Internal (§2), install time: creates a report''s SECURITY INVOKER API and its admin (carm_admin only) and actor variants';
-- §9 audit and notifications.  Every API change calls carm_internal.audit(); events a
-- person must see also get a row in carm.notification through carm_internal.notify().

-- Publishes one audit event on channel carm_events: delivered at commit,
-- dropped on rollback, like the event itself.  The one place that shapes the
-- payload, for carm_internal.audit() and for the set-based cascades alike.
-- §9 (rev. 1.1): every role may LISTEN on any channel, so the payload is the
-- event id only, as JSON ({"id": 42}); who may read the event itself is
-- decided by carm.audit_events().
CREATE OR REPLACE FUNCTION carm_internal.publish(p_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT pg_notify('carm_events', jsonb_build_object('id', p_id)::text);
$$;
COMMENT ON FUNCTION carm_internal.publish(bigint) IS
  'Internal (§9): publishes an audit event id on channel carm_events at commit; the payload carries the id only';

-- Appends one audit event and publishes it.  The actor is carm.actor(),
-- unless the event is made for someone else (a deferred group request is
-- attributed to its initiator when maintenance applies it).
CREATE OR REPLACE FUNCTION carm_internal.audit(p_event text,
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
  VALUES (coalesce(p_actor, carm.actor()), carm_internal.caller_role(), p_event, p_business,
          p_other_business, p_target_user, p_relationship, p_group, coalesce(p_details, '{}'))
  RETURNING * INTO e;
  PERFORM carm_internal.publish(e.id);
  RETURN e.id;
END
$$;

-- A notification for one person (§9: what they must see).
CREATE OR REPLACE FUNCTION carm_internal.notify(p_user bigint, p_event text, p_message text, p_audit bigint DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO carm.notification (user_id, event, message, audit_id)
  VALUES (p_user, p_event, p_message, p_audit);
END
$$;

-- The audit trail is append-only (§9).
CREATE OR REPLACE FUNCTION carm_internal.audit_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only'
    USING ERRCODE = '42501', DETAIL = format('%s on carm.audit_event refused', TG_OP);
END
$$;
CREATE OR REPLACE TRIGGER audit_event_append_only
  BEFORE UPDATE OR DELETE ON carm.audit_event
  FOR EACH ROW EXECUTE FUNCTION carm_internal.audit_append_only();
CREATE OR REPLACE TRIGGER audit_event_no_truncate
  BEFORE TRUNCATE ON carm.audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION carm_internal.audit_append_only();

-- The audit trail as people read it (§9): filtered by business, time range
-- [since, until) and event types; businesses as BN9s and users by their
-- sign-in identity (external_id) next to their ids.  One implementation; the
-- API carm.audit_events() dispatches to the admin or the actor variant.
CREATE OR REPLACE FUNCTION carm_internal.audit_events(bn9 text, since timestamptz, until timestamptz,
                                                      events text[], p_admin boolean)
RETURNS TABLE (id bigint, at timestamptz, event text, business text, other_business text,
               actor text, actor_id bigint, target_user text, target_user_id bigint,
               relationship_id bigint, group_id bigint, db_role name, details jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_business bigint;
  v_actor bigint;
BEGIN
  IF bn9 IS NULL THEN
    IF NOT p_admin THEN                          -- the whole trail: carm_admin only
      RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501',
        HINT = 'A business account manager reads its business''s events with carm.audit_events(bn9).';
    END IF;
  ELSE
    IF NOT carm_internal.bn9_is_valid(bn9) THEN
      RAISE EXCEPTION 'invalid business number "%"', left(bn9, 32) USING ERRCODE = '22023';
    END IF;
    SELECT b.id INTO v_business FROM carm.business b WHERE b.bn9 = audit_events.bn9;
    IF v_business IS NULL THEN
      RAISE EXCEPTION 'business % does not exist', left(bn9, 32) USING ERRCODE = 'P0002';
    END IF;
    -- Two statements, not one AND: the planner evaluates the STABLE
    -- carm_internal.require_actor() while estimating the subquery, so an admin
    -- without an actor would get "no acting user".
    IF NOT p_admin THEN
      v_actor := carm_internal.require_active_actor();
      IF NOT EXISTS (SELECT FROM carm.employee e
                     WHERE e.business_id = v_business AND e.user_id = v_actor AND e.role = 'BAM') THEN
        RAISE EXCEPTION 'permission denied: only a business account manager of % reads its audit events', left(bn9, 32)
          USING ERRCODE = '42501';
      END IF;
    END IF;
  END IF;
  IF since > until THEN
    RAISE EXCEPTION 'since is later than until' USING ERRCODE = '22023',
      HINT = 'The range is since <= at < until; either bound may be NULL.';
  END IF;
  RETURN QUERY
    SELECT a.id, a.at, a.event, b1.bn9, b2.bn9, ua.external_id, a.actor_id,
           ut.external_id, a.target_user_id, a.relationship_id, a.group_id, a.db_role, a.details
    FROM carm.audit_event a
    LEFT JOIN carm.business b1 ON b1.id = a.business_id
    LEFT JOIN carm.business b2 ON b2.id = a.other_business_id
    LEFT JOIN carm.app_user ua ON ua.id = a.actor_id
    LEFT JOIN carm.app_user ut ON ut.id = a.target_user_id
    WHERE (v_business IS NULL OR a.business_id = v_business OR a.other_business_id = v_business)
      AND (since IS NULL OR a.at >= since)
      AND (until IS NULL OR a.at < until)
      AND (events IS NULL OR a.event = ANY (events))
    ORDER BY a.id;
END
$$;
COMMENT ON FUNCTION carm_internal.audit_events(text, timestamptz, timestamptz, text[], boolean) IS
  'Internal (§9): the audit events of a business (or all, for carm_admin), in a time range and of some event types, with BN9s and external ids';

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'audit_events',
  params => 'bn9 text, since timestamptz, until timestamptz, events text[]',
  api_params => 'bn9 text DEFAULT NULL, since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL, events text[] DEFAULT NULL',
  args => 'bn9, since, until, events',
  returns => 'TABLE (id bigint, at timestamptz, event text, business text, other_business text, actor text, actor_id bigint, target_user text, target_user_id bigint, relationship_id bigint, group_id bigint, db_role name, details jsonb)',
  admin_comment => 'Internal: carm.audit_events() for carm_admin (every event); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.audit_events() for the acting user (a BAM reads its business''s events), without admin powers');
COMMENT ON FUNCTION carm.audit_events(text, timestamptz, timestamptz, text[]) IS
  'The append-only audit trail (§9): events of a business for its business account managers, every event (bn9 NULL) for carm_admin; optionally in [since, until) and of the listed event types; businesses as BN9s, people as external ids';

-- §2: the actor is required, and active, before anything is read (also
-- when there is nothing to list).
CREATE OR REPLACE FUNCTION carm.my_notifications()
RETURNS TABLE (id bigint, created_at timestamptz, event text, message text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
BEGIN
  RETURN QUERY
    SELECT n.id, n.created_at, n.event, n.message
    FROM carm.notification n
    WHERE n.user_id = v_actor
    ORDER BY n.id;
END
$$;
COMMENT ON FUNCTION carm.my_notifications() IS 'The acting user''s notifications (§9)';

-- §2: the whole trail for carm_admin only; the actor variant for every
-- caller of carm.audit_events (PUBLIC, see 90_privileges).
REVOKE ALL ON FUNCTION carm_internal.audit_events_admin(text, timestamptz, timestamptz, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.audit_events_admin(text, timestamptz, timestamptz, text[]) TO carm_admin;
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
CREATE OR REPLACE FUNCTION carm_internal.grants(p_user bigint)
RETURNS TABLE (business_id bigint, program_id bigint, role text, source text,
               provider_bam boolean, via_business_id bigint,
               see_client boolean, see_other boolean, all_programs boolean,
               expires_at timestamptz, relationship_id bigint, group_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
-- emp is materialized: a user's few employee rows, read once for the five
-- branches that use them.  Inlined, each use planned its own join of
-- employee and app_user, and starting the executor for the plan of a point
-- check (one business) cost 21 % more instructions (callgrind).  The other
-- CTEs stay inlined: materializing them would compute a broker's whole reach
-- for a point check.
WITH emp AS MATERIALIZED (
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
COMMENT ON FUNCTION carm_internal.grants(bigint) IS
  'Internal: every path by which a user holds a role (the resolver behind the C check)';
-- §2 reference data and identities: loaded by carm_admin (users also by
-- carm_gateway).  SECURITY DEFINER: the tables are closed to callers.

-- Validation helpers shared by every API file -------------------------------

-- Raises 22004 when a required argument is NULL.
CREATE OR REPLACE FUNCTION carm_internal.not_null(p_value anyelement, p_name text) RETURNS void
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
CREATE OR REPLACE FUNCTION carm_internal.not_blank(p_value text, p_name text, p_max integer DEFAULT 4000) RETURNS text
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
CREATE OR REPLACE FUNCTION carm_internal.business(p_bn9 text) RETURNS carm.business
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business;
BEGIN
  IF p_bn9 IS NULL OR NOT carm_internal.bn9_is_valid(p_bn9) THEN
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
CREATE OR REPLACE FUNCTION carm_internal.programs_of(p_business bigint, p_bn15s text[]) RETURNS bigint[]
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
  SELECT x INTO v_bad FROM unnest(p_bn15s) x WHERE x IS NULL OR NOT carm_internal.bn15_is_valid(x) LIMIT 1;
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
CREATE OR REPLACE FUNCTION carm_internal.bn15s(p_ids bigint[]) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_ids IS NULL THEN NULL
              ELSE coalesce((SELECT array_agg(p.bn15 ORDER BY p.bn15) FROM carm.program p
                             WHERE p.id = ANY (p_ids)), '{}') END;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.check_kinds(p_kinds text[]) RETURNS text[]
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
    RAISE EXCEPTION 'unknown business kind "%"', left(v_bad, 32) USING ERRCODE = '22023',
      HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT k FROM unnest(p_kinds) k ORDER BY k);
END
$$;

-- Users ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.register_user(external_id text, full_name text, email text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_ext text := carm_internal.not_blank(external_id, 'external_id', 256);
  v_name text := carm_internal.not_blank(full_name, 'full_name', 256);
BEGIN
  PERFORM carm_internal.forbid_restricted();   -- §2: nobody registers users in a security-restricted operation
  IF email IS NOT NULL AND (length(email) > 320 OR email !~ '^[^@\s]+@[^@\s]+$') THEN
    RAISE EXCEPTION 'invalid email address "%"', left(email, 32) USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT FROM carm.app_user u WHERE u.external_id = v_ext) THEN
    RAISE EXCEPTION 'a user with external id "%" already exists', left(v_ext, 32) USING ERRCODE = '23505';
  END IF;
  INSERT INTO carm.app_user (external_id, full_name, email)
  VALUES (v_ext, v_name, email) RETURNING id INTO v_id;
  PERFORM carm_internal.audit('user_registered', NULL, NULL, v_id, NULL, NULL,
                      jsonb_build_object('external_id', v_ext));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.register_user(text, text, text) IS
  'Create a user profile; external_id is the unique sign-in identity (carm_gateway, carm_admin)';

CREATE OR REPLACE FUNCTION carm_internal.user_row(p_user bigint) RETURNS carm.app_user
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user;
BEGIN
  PERFORM carm_internal.not_null(p_user, 'user_id');
  SELECT * INTO u FROM carm.app_user WHERE id = p_user;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % does not exist', p_user USING ERRCODE = 'P0002';
  END IF;
  RETURN u;
END
$$;

CREATE OR REPLACE FUNCTION carm.deactivate_user(user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm_internal.user_row(user_id);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF u.active THEN
    UPDATE carm.app_user SET active = false WHERE id = u.id;
    PERFORM carm_internal.audit('user_deactivated', NULL, NULL, u.id);
  END IF;
END
$$;
COMMENT ON FUNCTION carm.deactivate_user(bigint) IS
  'A deactivated user has no access until reactivated (carm_admin)';

CREATE OR REPLACE FUNCTION carm.reactivate_user(user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm_internal.user_row(user_id);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF NOT u.active THEN
    UPDATE carm.app_user SET active = true WHERE id = u.id;
    PERFORM carm_internal.audit('user_reactivated', NULL, NULL, u.id);
  END IF;
END
$$;
COMMENT ON FUNCTION carm.reactivate_user(bigint) IS 'Give a deactivated user its access back (carm_admin)';

-- Forgets the bindings of roles that no longer exist (their oid may be
-- reused by an unrelated role), each an audit event.
CREATE OR REPLACE FUNCTION carm_internal.forget_dropped_login_roles() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.login_binding;
BEGIN
  FOR r IN DELETE FROM carm.login_binding b
           WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_authid a WHERE a.oid = b.login_role)
           RETURNING * LOOP
    PERFORM carm_internal.audit('login_unbound', NULL, NULL, r.user_id, NULL, NULL,
                        jsonb_build_object('login', r.login_name, 'reason', 'role dropped'));
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION carm.bind_login_role(user_id bigint, login regrole) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  u carm.app_user := carm_internal.user_row(user_id);
  v_role pg_catalog.pg_roles;
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  PERFORM carm_internal.not_null(login, 'login');
  -- a numeric regrole is not checked by the cast
  SELECT * INTO v_role FROM pg_catalog.pg_roles r WHERE r.oid = login;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role with oid % does not exist', login::oid USING ERRCODE = '42704';
  END IF;
  -- §2: a binding must not make a privileged role act as a portal user
  IF v_role.rolname IN (session_user, carm_internal.caller_role()) THEN
    RAISE EXCEPTION 'cannot bind your own role' USING ERRCODE = '42501',
      HINT = 'Bind the application''s login role, not the role that administers carm_deleg.';
  END IF;
  IF v_role.rolsuper THEN
    RAISE EXCEPTION 'cannot bind a superuser' USING ERRCODE = '42501',
      DETAIL = 'A superuser bypasses row-level security whoever it acts as.';
  END IF;
  IF pg_has_role(login, 'carm_admin', 'MEMBER') OR pg_has_role(login, 'carm_gateway', 'MEMBER') THEN
    RAISE EXCEPTION 'cannot bind a member of carm_admin or carm_gateway' USING ERRCODE = '42501',
      DETAIL = 'A bound login acts as one portal user; it must hold no carm_deleg role of its own.';
  END IF;
  PERFORM carm_internal.forget_dropped_login_roles();
  INSERT INTO carm.login_binding (login_role, user_id, login_name) VALUES (login, u.id, v_role.rolname)
  ON CONFLICT (login_role) DO UPDATE SET user_id = excluded.user_id, login_name = excluded.login_name;
  PERFORM carm_internal.audit('login_bound', NULL, NULL, u.id, NULL, NULL,
                      jsonb_build_object('login', v_role.rolname));
  IF carm_internal.citus_active() THEN
    RAISE WARNING 'login bindings are not honoured under Citus'
      USING DETAIL = 'Citus could not carry the bound actor to its workers: a bound session acts as nobody.',
            HINT = 'Call carm.set_actor() inside BEGIN ... COMMIT instead.';
  END IF;
END
$$;
COMMENT ON FUNCTION carm.bind_login_role(bigint, regrole) IS
  'Sessions whose session_user is this role act as this user by default (carm_admin); refuses your own role, superusers and carm_admin/carm_gateway members';

CREATE OR REPLACE FUNCTION carm.unbind_login_role(login regrole) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.login_binding;
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  PERFORM carm_internal.not_null(login, 'login');
  DELETE FROM carm.login_binding b WHERE b.login_role = login RETURNING * INTO r;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role % is not bound', left(login::text, 32) USING ERRCODE = 'P0002';
  END IF;
  PERFORM carm_internal.audit('login_unbound', NULL, NULL, r.user_id, NULL, NULL,
                      jsonb_build_object('login', r.login_name));
  PERFORM carm_internal.forget_dropped_login_roles();
END
$$;
COMMENT ON FUNCTION carm.unbind_login_role(regrole) IS
  'Sessions of this role no longer act as a user by default (carm_admin); also forgets bindings of dropped roles';

-- Businesses and program accounts ------------------------------------------

CREATE OR REPLACE FUNCTION carm.add_business(bn9 text, legal_name text, kinds text[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  v_name text := carm_internal.not_blank(legal_name, 'legal_name', 512);
  v_kinds text[] := carm_internal.check_kinds(kinds);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF bn9 IS NULL OR NOT carm_internal.bn9_is_valid(bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a Luhn check digit.';
  END IF;
  IF EXISTS (SELECT FROM carm.business b WHERE b.bn9 = add_business.bn9) THEN
    RAISE EXCEPTION 'business % already exists', bn9 USING ERRCODE = '23505';
  END IF;
  INSERT INTO carm.business (bn9, legal_name, kinds) VALUES (bn9, v_name, v_kinds)
  RETURNING id INTO v_id;
  PERFORM carm_internal.audit('business_added', v_id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('bn9', bn9, 'kinds', v_kinds));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.add_business(text, text, text[]) IS
  'Load a business account (BN9 with check digit) and its kinds (carm_admin)';

CREATE OR REPLACE FUNCTION carm.add_program_account(bn15 text, name text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
  b carm.business;
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  IF bn15 IS NULL OR NOT carm_internal.bn15_is_valid(bn15) THEN
    RAISE EXCEPTION 'invalid program account number "%"', left(bn15, 32)
      USING ERRCODE = '22023', HINT = 'A BN15 is a BN9, RM and four digits, e.g. 123456782RM0001.';
  END IF;
  b := carm_internal.business(left(bn15, 9));
  IF EXISTS (SELECT FROM carm.program p WHERE p.bn15 = add_program_account.bn15) THEN
    RAISE EXCEPTION 'program account % already exists', bn15 USING ERRCODE = '23505';
  END IF;
  IF name IS NOT NULL AND length(name) > 512 THEN
    RAISE EXCEPTION 'name is too long' USING ERRCODE = '22023';
  END IF;
  INSERT INTO carm.program (business_id, bn15, name) VALUES (b.id, bn15, name)
  RETURNING id INTO v_id;
  PERFORM carm_internal.audit('program_added', b.id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('bn15', bn15));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.add_program_account(text, text) IS
  'Load a program account (BN15) of an existing business (carm_admin); E12: all-programs grants cover it at once';

CREATE OR REPLACE FUNCTION carm.set_business_kinds(bn9 text, kinds text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  b carm.business := carm_internal.business(bn9);
  v_kinds text[] := carm_internal.check_kinds(kinds);
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: as the running role, never in a security-restricted operation
  UPDATE carm.business SET kinds = v_kinds WHERE id = b.id;
  PERFORM carm_internal.audit('business_kinds_set', b.id, NULL, NULL, NULL, NULL,
                      jsonb_build_object('before', b.kinds, 'after', v_kinds));
END
$$;
COMMENT ON FUNCTION carm.set_business_kinds(text, text[]) IS
  'Replace the kinds of a business (carm_admin)';

CREATE OR REPLACE FUNCTION carm.business_id(bn9 text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (carm_internal.business(bn9)).id $$;
COMMENT ON FUNCTION carm.business_id(text) IS
  'Internal id of a business, for application tables (22023 malformed, P0002 unknown)';

CREATE OR REPLACE FUNCTION carm.program_id(bn15 text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF bn15 IS NULL OR NOT carm_internal.bn15_is_valid(bn15) THEN
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
REVOKE ALL ON FUNCTION carm.unbind_login_role(regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_business(text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_program_account(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.set_business_kinds(text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.deactivate_user(bigint), carm.reactivate_user(bigint),
  carm.bind_login_role(bigint, regrole), carm.unbind_login_role(regrole),
  carm.add_business(text, text, text[]),
  carm.add_program_account(text, text), carm.set_business_kinds(text, text[]) TO carm_admin;
-- §12 bulk reference data: carm_admin loads businesses, program accounts and
-- users by the hundred thousand.  Each function takes parallel arrays (one
-- element per row), checks every element with the rules of its one-row
-- counterpart (add_business, add_program_account, register_user) in one
-- set-based pass, and then inserts everything with one INSERT ... SELECT and
-- writes ONE audit event for the batch.  The first offending element stops
-- the batch with the SQLSTATE its one-row counterpart raises and its
-- position; nothing is applied (README "Operations", decision "Bulk load").

-- Raises the error of the first offending element of a batch.  p_problem
-- says what is wrong, p_pos its 1-based position in the arrays, p_value the
-- element (never more than 32 characters are echoed, §10).
CREATE OR REPLACE FUNCTION carm_internal.bulk_refuse(p_what text, p_problem text, p_pos bigint, p_value text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_shown text := coalesce('"' || left(p_value, 32) || '"', 'NULL');
  v_detail text := format('Element %s of the batch; nothing was loaded.', p_pos);
BEGIN
  CASE p_problem
    WHEN 'bn9' THEN
      RAISE EXCEPTION 'invalid business number % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail,
              HINT = 'A BN9 is nine digits, the last a Luhn check digit.';
    WHEN 'bn15' THEN
      RAISE EXCEPTION 'invalid program account number % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail,
              HINT = 'A BN15 is a BN9, RM and four digits, e.g. 123456782RM0001.';
    WHEN 'no_business' THEN
      RAISE EXCEPTION 'business % does not exist (program account at position %)', v_shown, p_pos
        USING ERRCODE = 'P0002', DETAIL = v_detail,
              HINT = 'Load the business first (carm.add_businesses), or in an earlier batch.';
    WHEN 'blank' THEN
      RAISE EXCEPTION '% must not be blank (position %)', p_what, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail;
    WHEN 'long' THEN
      RAISE EXCEPTION '% is too long at position % (%)', p_what, p_pos, v_shown
        USING ERRCODE = '22023', DETAIL = v_detail;
    WHEN 'kinds' THEN
      RAISE EXCEPTION 'invalid business kinds % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail,
              HINT = 'Kinds are IMPORTER, CUSTOMS_BROKER and TRADE_CONSULTANT, several separated by commas.';
    WHEN 'email' THEN
      RAISE EXCEPTION 'invalid email address % at position %', v_shown, p_pos
        USING ERRCODE = '22023', DETAIL = v_detail;
    WHEN 'twice' THEN
      RAISE EXCEPTION '% % appears twice in the batch (position %)', p_what, v_shown, p_pos
        USING ERRCODE = '23505', DETAIL = v_detail;
    WHEN 'exists' THEN
      RAISE EXCEPTION '% % already exists (position %)', p_what, v_shown, p_pos
        USING ERRCODE = '23505', DETAIL = v_detail;
    ELSE
      RAISE EXCEPTION 'unexpected bulk problem %', p_problem USING ERRCODE = 'XX000';
  END CASE;
END
$$;
COMMENT ON FUNCTION carm_internal.bulk_refuse(text, text, bigint, text) IS
  'Internal (§12): raises the error of the first offending element of a bulk load, with its position and the SQLSTATE of the one-row function';

-- Checks the shape of a batch: arrays not NULL (22004), one-dimensional and
-- as long as the first (22023).  Returns the batch size.
CREATE OR REPLACE FUNCTION carm_internal.bulk_size(p_names text[], p_sizes integer[], p_dims integer[])
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  FOR i IN 1 .. cardinality(p_names) LOOP
    IF p_sizes[i] IS NULL THEN
      RAISE EXCEPTION '% must not be null', p_names[i] USING ERRCODE = '22004';
    END IF;
    IF p_dims[i] > 1 THEN
      RAISE EXCEPTION '% must be a one-dimensional array', p_names[i] USING ERRCODE = '22023';
    END IF;
    IF p_sizes[i] <> p_sizes[1] THEN
      RAISE EXCEPTION '% has % elements, % has %', p_names[1], p_sizes[1], p_names[i], p_sizes[i]
        USING ERRCODE = '22023', HINT = 'Pass one element per row in every array.';
    END IF;
  END LOOP;
  RETURN p_sizes[1];
END
$$;
COMMENT ON FUNCTION carm_internal.bulk_size(text[], integer[], integer[]) IS
  'Internal (§12): the size of a bulk batch; its arrays must be non-NULL, one-dimensional and of equal length';

-- Businesses --------------------------------------------------------------
--
-- Each function validates in one statement (the first offending element, if
-- any) and inserts in a second one: no temporary table, whose name a caller
-- could have taken in its own pg_temp.

CREATE OR REPLACE FUNCTION carm.add_businesses(bn9s text[], legal_names text[], kinds text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
  v_kinds text[];
  v_bad record;
  v_count bigint;
BEGIN
  PERFORM carm_internal.require_admin();
  v_n := carm_internal.bulk_size(ARRAY['bn9s', 'legal_names', 'kinds'],
                                 ARRAY[cardinality(bn9s), cardinality(legal_names),
                                       CASE cardinality(kinds) WHEN 1 THEN cardinality(bn9s)
                                                               ELSE cardinality(kinds) END],
                                 ARRAY[array_ndims(bn9s), array_ndims(legal_names), array_ndims(kinds)]);
  IF v_n = 0 THEN
    RETURN 0;
  END IF;
  -- kinds: one entry per business, or one entry for the whole batch
  v_kinds := CASE cardinality(kinds) WHEN 1 THEN array_fill(kinds[1], ARRAY[v_n]) ELSE kinds END;
  SELECT x.pos, x.problem, CASE x.problem WHEN 'kinds' THEN x.kind WHEN 'long' THEN x.legal_name
                                          ELSE x.bn9 END AS shown
  INTO v_bad
  FROM (SELECT u.pos, u.bn9, u.legal_name, u.kind,
               CASE WHEN u.bn9 IS NULL OR NOT carm_internal.bn9_is_valid(u.bn9) THEN 'bn9'
                    WHEN u.legal_name IS NULL OR btrim(u.legal_name) = '' THEN 'blank'
                    WHEN length(u.legal_name) > 512 THEN 'long'
                    WHEN u.kind IS NULL OR btrim(u.kind) = '' OR EXISTS (
                           SELECT FROM unnest(string_to_array(u.kind, ',')) k
                           WHERE btrim(k) NOT IN ('IMPORTER','CUSTOMS_BROKER','TRADE_CONSULTANT')) THEN 'kinds'
                    WHEN u.pos > min(u.pos) OVER (PARTITION BY u.bn9) THEN 'twice'
                    WHEN EXISTS (SELECT FROM carm.business b WHERE b.bn9 = u.bn9) THEN 'exists'
               END AS problem
        FROM unnest(bn9s, legal_names, v_kinds) WITH ORDINALITY AS u(bn9, legal_name, kind, pos)) x
  WHERE x.problem IS NOT NULL
  ORDER BY x.pos LIMIT 1;
  IF FOUND THEN
    PERFORM carm_internal.bulk_refuse(CASE WHEN v_bad.problem IN ('blank', 'long') THEN 'legal_name'
                                           ELSE 'business' END,
                                      v_bad.problem, v_bad.pos, v_bad.shown);
  END IF;
  INSERT INTO carm.business (bn9, legal_name, kinds)
  SELECT u.bn9, btrim(u.legal_name),
         ARRAY(SELECT DISTINCT btrim(k) FROM unnest(string_to_array(u.kind, ',')) k ORDER BY 1)
  FROM unnest(bn9s, legal_names, v_kinds) WITH ORDINALITY AS u(bn9, legal_name, kind, pos)
  ORDER BY u.pos;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  PERFORM carm_internal.audit('businesses_added', NULL, NULL, NULL, NULL, NULL,
                              jsonb_build_object('count', v_count, 'bn9s', to_jsonb(bn9s)));
  RETURN v_count;
END
$$;
COMMENT ON FUNCTION carm.add_businesses(text[], text[], text[]) IS
  'Bulk load of business accounts (carm_admin, §12): per element a BN9 with its check digit, a legal name and its kinds (''IMPORTER'' or ''CUSTOMS_BROKER,TRADE_CONSULTANT''; a single kinds entry applies to every business); validated like add_business, all or nothing, one audit event; returns the count';

-- Program accounts ---------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.add_program_accounts(bn15s text[], names text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
  v_bad record;
  v_count bigint;
  v_rows bigint;
BEGIN
  PERFORM carm_internal.require_admin();
  v_n := carm_internal.bulk_size(ARRAY['bn15s', 'names'],
                                 ARRAY[cardinality(bn15s), coalesce(cardinality(names), cardinality(bn15s))],
                                 ARRAY[array_ndims(bn15s), array_ndims(names)]);
  IF v_n = 0 THEN
    RETURN 0;
  END IF;
  SELECT x.pos, x.problem, CASE x.problem WHEN 'long' THEN x.name WHEN 'no_business' THEN left(x.bn15, 9)
                                          ELSE x.bn15 END AS shown
  INTO v_bad
  FROM (SELECT u.pos, u.bn15, u.name,
               CASE WHEN u.bn15 IS NULL OR NOT carm_internal.bn15_is_valid(u.bn15) THEN 'bn15'
                    WHEN length(u.name) > 512 THEN 'long'
                    WHEN NOT EXISTS (SELECT FROM carm.business b WHERE b.bn9 = left(u.bn15, 9)) THEN 'no_business'
                    WHEN u.pos > min(u.pos) OVER (PARTITION BY u.bn15) THEN 'twice'
                    WHEN EXISTS (SELECT FROM carm.program p WHERE p.bn15 = u.bn15) THEN 'exists'
               END AS problem
        FROM unnest(bn15s, names) WITH ORDINALITY AS u(bn15, name, pos)) x
  WHERE x.problem IS NOT NULL
  ORDER BY x.pos LIMIT 1;
  IF FOUND THEN
    PERFORM carm_internal.bulk_refuse(CASE v_bad.problem WHEN 'long' THEN 'name' ELSE 'program account' END,
                                      v_bad.problem, v_bad.pos, v_bad.shown);
  END IF;
  -- in slices, as each row queues an invalidation key (see register_users)
  v_count := 0;
  FOR v_from IN 1 .. v_n BY 10000 LOOP
    INSERT INTO carm.program (business_id, bn15, name)
    SELECT b.id, u.bn15, u.name
    FROM unnest(bn15s[v_from : v_from + 9999], names[v_from : v_from + 9999])
         WITH ORDINALITY AS u(bn15, name, pos)
    JOIN carm.business b ON b.bn9 = left(u.bn15, 9)
    ORDER BY u.pos;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_count := v_count + v_rows;
  END LOOP;
  PERFORM carm_internal.audit('program_accounts_added', NULL, NULL, NULL, NULL, NULL,
                              jsonb_build_object('count', v_count, 'bn15s', to_jsonb(bn15s)));
  RETURN v_count;
END
$$;
COMMENT ON FUNCTION carm.add_program_accounts(text[], text[]) IS
  'Bulk load of program accounts (carm_admin, §12): per element a BN15 whose BN9 is an existing business, and an optional name; validated like add_program_account, all or nothing, one audit event; every all-programs grant covers them at once (E12); returns the count';

-- Users ----------------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.register_users(external_ids text[], full_names text[], emails text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
  v_bad record;
  v_count bigint;
  v_rows bigint;
BEGIN
  PERFORM carm_internal.require_admin();
  v_n := carm_internal.bulk_size(ARRAY['external_ids', 'full_names', 'emails'],
                                 ARRAY[cardinality(external_ids), cardinality(full_names),
                                       coalesce(cardinality(emails), cardinality(external_ids))],
                                 ARRAY[array_ndims(external_ids), array_ndims(full_names), array_ndims(emails)]);
  IF v_n = 0 THEN
    RETURN 0;
  END IF;
  SELECT x.pos, x.problem, x.what,
         CASE x.what WHEN 'full_name' THEN x.full_name WHEN 'email' THEN x.email ELSE x.external_id END AS shown
  INTO v_bad
  FROM (SELECT y.*,
               CASE WHEN y.problem IN ('twice', 'exists') THEN 'user with external id'
                    WHEN y.problem = 'email' THEN 'email'
                    WHEN y.ext_bad THEN 'external_id' ELSE 'full_name' END AS what
        FROM (SELECT u.pos, u.external_id, u.full_name, u.email,
                     u.external_id IS NULL OR btrim(u.external_id) = '' OR length(u.external_id) > 256 AS ext_bad,
                     CASE WHEN u.external_id IS NULL OR btrim(u.external_id) = '' THEN 'blank'
                          WHEN length(u.external_id) > 256 THEN 'long'
                          WHEN u.full_name IS NULL OR btrim(u.full_name) = '' THEN 'blank'
                          WHEN length(u.full_name) > 256 THEN 'long'
                          WHEN u.email IS NOT NULL AND (length(u.email) > 320 OR u.email !~ '^[^@\s]+@[^@\s]+$')
                          THEN 'email'
                          WHEN u.pos > min(u.pos) OVER (PARTITION BY btrim(u.external_id)) THEN 'twice'
                          WHEN EXISTS (SELECT FROM carm.app_user a WHERE a.external_id = btrim(u.external_id))
                          THEN 'exists'
                     END AS problem
              FROM unnest(external_ids, full_names, emails) WITH ORDINALITY AS u(external_id, full_name, email, pos)) y
        WHERE y.problem IS NOT NULL) x
  ORDER BY x.pos LIMIT 1;
  IF FOUND THEN
    PERFORM carm_internal.bulk_refuse(v_bad.what, v_bad.problem, v_bad.pos, v_bad.shown);
  END IF;
  -- in slices: each row queues one invalidation key (11_invalidation.sql),
  -- and PostgreSQL looks for a duplicate among the keys its command queued
  -- so far, so one INSERT of 300,000 users would take quadratic time
  v_count := 0;
  FOR v_from IN 1 .. v_n BY 10000 LOOP
    INSERT INTO carm.app_user (external_id, full_name, email)
    SELECT btrim(u.external_id), btrim(u.full_name), u.email
    FROM unnest(external_ids[v_from : v_from + 9999], full_names[v_from : v_from + 9999],
                emails[v_from : v_from + 9999]) AS u(external_id, full_name, email);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_count := v_count + v_rows;
  END LOOP;
  PERFORM carm_internal.audit('users_registered', NULL, NULL, NULL, NULL, NULL,
                              jsonb_build_object('count', v_count, 'external_ids',
                                                 (SELECT jsonb_agg(btrim(x)) FROM unnest(external_ids) x)));
  RETURN v_count;
END
$$;
COMMENT ON FUNCTION carm.register_users(text[], text[], text[]) IS
  'Bulk registration of user profiles (carm_admin, §12): per element a unique external id (the sign-in identity), a full name and an optional email; validated like register_user, all or nothing, one audit event; returns the count';

REVOKE ALL ON FUNCTION carm.add_businesses(text[], text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.add_program_accounts(text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.register_users(text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.add_businesses(text[], text[], text[]),
  carm.add_program_accounts(text[], text[]),
  carm.register_users(text[], text[], text[]) TO carm_admin;
-- Ids back to names: application tables hold program and business ids
-- (carm.program_id, carm.business_id); these lookups turn them back into
-- BN15s, BN9s and names for the acting user, and sign-in identities into
-- user ids for the gateway.
--
-- What an actor may name (README "Decisions", "Lookups"): a business it holds
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
-- §4 the employee rules that hold for every write to carm.employee, API or
-- not (src/hierarchy.c).  E5 and E9 always; E6 and E7 when an actor is set.

CREATE OR REPLACE FUNCTION carm_internal.employee_guard() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_employee_guard';
COMMENT ON FUNCTION carm_internal.employee_guard() IS
  'E5 valid role and scope; E6 not one''s own access (but E1); E7 BAM > PAM > EDITOR/VIEWER (row trigger)';

CREATE OR REPLACE FUNCTION carm_internal.employee_bams() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_employee_bams';
COMMENT ON FUNCTION carm_internal.employee_bams() IS
  'E9 a business keeps at least one BAM, serialised on the business row; E10 warns when one is left (row trigger)';

-- E7 for SQL (the can_change column of carm.employees): the trigger's rule.
CREATE OR REPLACE FUNCTION carm_internal.may_change(manager_role text, manager_programs bigint[],
                                                   employee_role text, employee_programs bigint[])
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_may_change';
COMMENT ON FUNCTION carm_internal.may_change(text, bigint[], text, bigint[]) IS
  'Internal (E7): may a manager with this role and scope (NULL = all programs) change an employee with this role and scope? BAM anyone; PAM non-BAMs within its programs';

CREATE OR REPLACE TRIGGER employee_guard
  BEFORE INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm_internal.employee_guard();
CREATE OR REPLACE TRIGGER employee_bams
  AFTER INSERT OR UPDATE OR DELETE ON carm.employee
  FOR EACH ROW EXECUTE FUNCTION carm_internal.employee_bams();
-- §4 employee delegation: registering a business, access requests and their
-- decisions, role changes, removal, listings.  Every function acts as the
-- actor (§2).  The row triggers of 25_hierarchy.sql stay the authority for
-- E5, E6, E7 and E9; the checks repeated here give the caller the error in a
-- useful order (who may act, then what was asked, then the state) and the
-- E1, E2, E4 and E8 rules that are not about a single employee row.

-- Helpers ---------------------------------------------------------------------

-- An employee role name, normalised (E5): 22004 when NULL, 22023 when unknown.
CREATE OR REPLACE FUNCTION carm_internal.employee_role(p_role text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT carm_internal.role_name(p_role, 'employee');
$$;

-- The actor's own employee row when it manages the business's employees
-- (E3: a BAM, or a PAM); 42501 otherwise.
CREATE OR REPLACE FUNCTION carm_internal.manager_of(p_business carm.business, p_actor bigint) RETURNS carm.employee
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
CREATE OR REPLACE FUNCTION carm_internal.scope_text(p_programs bigint[]) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce('programs ' || array_to_string(carm_internal.bn15s(p_programs), ', '), 'all programs');
$$;

-- An access request, locked for a decision by the actor; P0002 when unknown.
-- §10 (rev. 1.1): an actor with no association to the request — neither
-- its requester nor an employee of its business — gets the very answer an
-- unknown id gets, so ids cannot be probed and the business behind a
-- request is never named to outsiders.  The lock is taken after that test,
-- so an outsider cannot make the business's managers wait.
CREATE OR REPLACE FUNCTION carm_internal.access_request(p_request bigint) RETURNS carm.access_request
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.access_request;
  v_actor bigint := carm.actor();
BEGIN
  PERFORM carm_internal.not_null(p_request, 'request_id');
  SELECT * INTO r FROM carm.access_request x WHERE x.id = p_request;
  IF NOT FOUND
     OR (r.user_id IS DISTINCT FROM v_actor
         AND NOT EXISTS (SELECT FROM carm.employee e
                         WHERE e.business_id = r.business_id AND e.user_id = v_actor)) THEN
    RAISE EXCEPTION 'access request % does not exist', p_request USING ERRCODE = 'P0002';
  END IF;
  SELECT * INTO r FROM carm.access_request x WHERE x.id = p_request FOR UPDATE;
  RETURN r;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.require_pending(r carm.access_request) RETURNS void
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

CREATE OR REPLACE FUNCTION carm.register_business(bn9 text, bn15 text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  v_bn9 text := register_business.bn9;
  v_bn15 text := register_business.bn15;
  b carm.business;
  v_before text;
BEGIN
  -- E1: an unknown BN9 is a wrong argument here (22023), not a missing row:
  -- the user typed it to prove who they work for.
  IF v_bn9 IS NULL OR NOT carm_internal.bn9_is_valid(v_bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(v_bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  SELECT * INTO b FROM carm.business x WHERE x.bn9 = v_bn9;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'business % is not known to the CBSA', v_bn9
      USING ERRCODE = '22023', HINT = 'Check the business number.';
  END IF;
  IF v_bn15 IS NULL OR NOT carm_internal.bn15_is_valid(v_bn15) THEN
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

  PERFORM carm_internal.audit('business_registered', b.id, NULL, v_actor, NULL, NULL,
                      jsonb_build_object('bn15', v_bn15, 'role', 'BAM', 'before', v_before));
END
$$;
COMMENT ON FUNCTION carm.register_business(text, text) IS
  'E1: link the actor to a business that has no BAM, proving it with one of its BN15; the actor becomes its BAM';

-- E2: access requests ------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.request_employee_access(bn9 text, comment text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  b carm.business := carm_internal.business(request_employee_access.bn9);
  v_comment text := carm_internal.not_blank(request_employee_access.comment, 'comment', 4000);
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
  PERFORM carm_internal.audit('employee_access_requested', b.id, NULL, v_actor, NULL, NULL,
                      jsonb_build_object('request_id', v_id, 'comment', v_comment));
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION carm.request_employee_access(text, text) IS
  'E2: ask a business for access; one pending request per user and business; returns the request id';

CREATE OR REPLACE FUNCTION carm.withdraw_employee_access_request(request_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  r carm.access_request := carm_internal.access_request(withdraw_employee_access_request.request_id);
BEGIN
  IF r.user_id <> v_actor THEN
    RAISE EXCEPTION 'permission denied to withdraw access request %', r.id
      USING ERRCODE = '42501', DETAIL = 'Only the requester withdraws a request.';
  END IF;
  PERFORM carm_internal.require_pending(r);
  UPDATE carm.access_request x SET status = 'withdrawn', decided_by = v_actor, decided_at = now()
  WHERE x.id = r.id;
  PERFORM carm_internal.audit('employee_access_withdrawn', r.business_id, NULL, v_actor, NULL, NULL,
                      jsonb_build_object('request_id', r.id));
END
$$;
COMMENT ON FUNCTION carm.withdraw_employee_access_request(bigint) IS
  'The requester withdraws its pending access request';

-- E3, E4: decisions --------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.approve_employee_access(request_id bigint, role text, programs text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  r carm.access_request := carm_internal.access_request(approve_employee_access.request_id);
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
  PERFORM carm_internal.manager_of(b, v_actor);                                   -- E3
  v_role := carm_internal.employee_role(approve_employee_access.role);
  v_programs := carm_internal.programs_of(b.id, approve_employee_access.programs); -- E5
  PERFORM carm_internal.require_pending(r);
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

  v_audit := carm_internal.audit('employee_access_approved', b.id, NULL, r.user_id, NULL, NULL,
                         jsonb_build_object('request_id', r.id, 'role', v_role,
                                            'programs', carm_internal.bn15s(v_programs)));
  PERFORM carm_internal.notify(r.user_id, 'employee_access_approved',
                       format('Your access request to %s (%s) was approved: %s on %s.',
                              b.legal_name, b.bn9, v_role, carm_internal.scope_text(v_programs)),
                       v_audit);
END
$$;
COMMENT ON FUNCTION carm.approve_employee_access(bigint, text, text[]) IS
  'E3: a BAM, or a PAM within its programs, approves a pending request with a role and a scope (NULL = all programs)';

CREATE OR REPLACE FUNCTION carm.reject_employee_access(request_id bigint, reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  r carm.access_request := carm_internal.access_request(reject_employee_access.request_id);
  b carm.business;
  v_reason text;
  v_audit bigint;
BEGIN
  SELECT * INTO b FROM carm.business x WHERE x.id = r.business_id;
  IF r.user_id = v_actor THEN                                             -- E6
    RAISE EXCEPTION 'permission denied to decide your own access request'
      USING ERRCODE = '42501', HINT = 'Withdraw it with carm.withdraw_employee_access_request().';
  END IF;
  PERFORM carm_internal.manager_of(b, v_actor);                                   -- E3
  v_reason := carm_internal.not_blank(reject_employee_access.reason, 'reason', 4000);   -- E4
  PERFORM carm_internal.require_pending(r);

  UPDATE carm.access_request x
  SET status = 'rejected', reason = v_reason, decided_by = v_actor, decided_at = now()
  WHERE x.id = r.id;
  v_audit := carm_internal.audit('employee_access_rejected', b.id, NULL, r.user_id, NULL, NULL,
                         jsonb_build_object('request_id', r.id, 'reason', v_reason));
  PERFORM carm_internal.notify(r.user_id, 'employee_access_rejected',
                       format('Your access request to %s (%s) was rejected: %s',
                              b.legal_name, b.bn9, v_reason),
                       v_audit);
END
$$;
COMMENT ON FUNCTION carm.reject_employee_access(bigint, text) IS
  'E4: a BAM or PAM rejects a pending request with a non-blank reason, which the requester sees';

-- E7, E8, E11: changing and removing employees ----------------------------------

CREATE OR REPLACE FUNCTION carm.set_employee_access(bn9 text, user_id bigint, role text, programs text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  b carm.business := carm_internal.business(set_employee_access.bn9);
  u carm.app_user;
  v_role text;
  v_programs bigint[];
  old carm.employee;
  v_audit bigint;
BEGIN
  PERFORM carm_internal.not_null(set_employee_access.user_id, 'user_id');
  IF set_employee_access.user_id = v_actor THEN                           -- E6
    RAISE EXCEPTION 'permission denied to change your own access'
      USING ERRCODE = '42501', DETAIL = 'Nobody may change, remove or approve their own access.',
            HINT = 'Ask another business account manager.';
  END IF;
  PERFORM carm_internal.manager_of(b, v_actor);                                   -- E3
  v_role := carm_internal.employee_role(set_employee_access.role);
  v_programs := carm_internal.programs_of(b.id, set_employee_access.programs);   -- E5
  -- §10: a user who is not an employee gets the same answer whether the id
  -- exists or not
  SELECT e.* INTO old FROM carm.employee e
  WHERE e.business_id = b.id AND e.user_id = set_employee_access.user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not an employee of business %', set_employee_access.user_id, b.bn9
      USING ERRCODE = 'P0002', HINT = 'Employees join through carm.request_employee_access().';
  END IF;
  u := carm_internal.user_row(set_employee_access.user_id);

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

  v_audit := carm_internal.audit('employee_access_changed', b.id, NULL, u.id, NULL, NULL,
                         jsonb_build_object(
                           'before', jsonb_build_object('role', old.role, 'programs', carm_internal.bn15s(old.programs)),
                           'after', jsonb_build_object('role', v_role, 'programs', carm_internal.bn15s(v_programs))));
  PERFORM carm_internal.notify(u.id, 'employee_access_changed',
                       format('Your access to %s (%s) is now %s on %s.',
                              b.legal_name, b.bn9, v_role, carm_internal.scope_text(v_programs)),
                       v_audit);
END
$$;
COMMENT ON FUNCTION carm.set_employee_access(text, bigint, text, text[]) IS
  'E7/E11: change an employee''s role and scope (NULL = all programs); BAM changes anyone, PAM non-BAMs within its programs';

CREATE OR REPLACE FUNCTION carm.remove_employee(bn9 text, user_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  b carm.business := carm_internal.business(remove_employee.bn9);
  u carm.app_user;
  m carm.employee;
  old carm.employee;
  v_assignments bigint;
  v_groups bigint;
  v_audit bigint;
BEGIN
  PERFORM carm_internal.not_null(remove_employee.user_id, 'user_id');
  IF remove_employee.user_id = v_actor THEN                               -- E6
    RAISE EXCEPTION 'permission denied to remove yourself'
      USING ERRCODE = '42501', DETAIL = 'Nobody may change, remove or approve their own access.',
            HINT = 'Ask another business account manager.';
  END IF;
  m := carm_internal.manager_of(b, v_actor);
  IF m.role <> 'BAM' THEN                                                 -- E8
    RAISE EXCEPTION 'permission denied to remove employees of business %', b.bn9
      USING ERRCODE = '42501', DETAIL = 'Only a business account manager removes employees.';
  END IF;
  -- §10: the same answer for an unknown id and for a user who is no employee
  SELECT e.* INTO old FROM carm.employee e
  WHERE e.business_id = b.id AND e.user_id = remove_employee.user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'user % is not an employee of business %', remove_employee.user_id, b.bn9
      USING ERRCODE = 'P0002';
  END IF;
  u := carm_internal.user_row(remove_employee.user_id);

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

  v_audit := carm_internal.audit('employee_removed', b.id, NULL, u.id, NULL, NULL,
                         jsonb_build_object('role', old.role, 'programs', carm_internal.bn15s(old.programs),
                                            'client_assignments', v_assignments,
                                            'group_assignments', v_groups));
  PERFORM carm_internal.notify(u.id, 'employee_removed',
                       format('Your access to %s (%s) was removed.', b.legal_name, b.bn9), v_audit);
END
$$;
COMMENT ON FUNCTION carm.remove_employee(text, bigint) IS
  'E8: a BAM removes an employee with every access held through the business (proxy and group assignments)';

-- Listings -------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION carm.employees(bn9 text)
RETURNS TABLE (user_id bigint, external_id text, full_name text, email text, active boolean,
               role text, programs text[], granted_by bigint, granted_at timestamptz,
               can_change boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  b carm.business := carm_internal.business(employees.bn9);
  m carm.employee := carm_internal.manager_of(b, v_actor);                        -- E3
BEGIN
  -- A BAM sees everyone; a PAM the employees who hold some of its programs
  -- (all-programs employees included).  can_change applies E6 and E7.
  RETURN QUERY
    SELECT e.user_id, u.external_id, u.full_name, u.email, u.active, e.role,
           carm_internal.bn15s(e.programs), e.granted_by, e.granted_at,
           e.user_id <> v_actor                                                  -- E6
             AND carm_internal.may_change(m.role, m.programs, e.role, e.programs)  -- E7
    FROM carm.employee e
    JOIN carm.app_user u ON u.id = e.user_id
    WHERE e.business_id = b.id
      AND (m.role = 'BAM' OR m.programs IS NULL OR e.programs IS NULL OR e.programs && m.programs)
    ORDER BY array_position(ARRAY['BAM','PAM','EDITOR','VIEWER'], e.role), u.full_name, e.user_id;
END
$$;
COMMENT ON FUNCTION carm.employees(text) IS
  'E3: the employees of a business, for its BAMs (all) and PAMs (those holding some of its programs)';

CREATE OR REPLACE FUNCTION carm.employee_access_requests(bn9 text)
RETURNS TABLE (request_id bigint, user_id bigint, external_id text, full_name text, email text,
               comment text, status text, created_at timestamptz, role text, programs text[],
               reason text, decided_by bigint, decided_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  b carm.business := carm_internal.business(employee_access_requests.bn9);
BEGIN
  PERFORM carm_internal.manager_of(b, v_actor);                                   -- E3
  RETURN QUERY
    SELECT r.id, r.user_id, u.external_id, u.full_name, u.email, r.comment, r.status, r.created_at,
           r.role, carm_internal.bn15s(r.programs), r.reason, r.decided_by, r.decided_at
    FROM carm.access_request r
    JOIN carm.app_user u ON u.id = r.user_id
    WHERE r.business_id = b.id
    ORDER BY r.status <> 'pending', r.id;
END
$$;
COMMENT ON FUNCTION carm.employee_access_requests(text) IS
  'E2/E3: the access requests of a business with the requesters'' comments, pending first (its BAMs and PAMs)';

CREATE OR REPLACE FUNCTION carm.my_access_requests()
RETURNS TABLE (request_id bigint, bn9 text, legal_name text, comment text, status text,
               reason text, role text, programs text[], created_at timestamptz, decided_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();      -- §2, also for an empty list
BEGIN
  RETURN QUERY
    SELECT r.id, b.bn9, b.legal_name, r.comment, r.status, r.reason, r.role, carm_internal.bn15s(r.programs),
           r.created_at, r.decided_at
    FROM carm.access_request r
    JOIN carm.business b ON b.id = r.business_id
    WHERE r.user_id = v_actor
    ORDER BY r.id;
END
$$;
COMMENT ON FUNCTION carm.my_access_requests() IS
  'E4: the actor''s access requests, with their status and any rejection reason';

CREATE OR REPLACE FUNCTION carm.my_businesses()
RETURNS TABLE (bn9 text, legal_name text, kinds text[], role text, programs text[], granted_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();      -- §2, also for an empty list
BEGIN
  RETURN QUERY
    SELECT b.bn9, b.legal_name, b.kinds, e.role, carm_internal.bn15s(e.programs), e.granted_at
    FROM carm.employee e
    JOIN carm.business b ON b.id = e.business_id
    WHERE e.user_id = v_actor
    ORDER BY b.bn9;
END
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
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v carm.employee;
BEGIN
  SELECT e.* INTO v
  FROM carm.employee e
  JOIN carm.app_user u ON u.id = e.user_id AND u.active
  WHERE e.business_id = p_business AND e.user_id = p_user;
  RETURN v;
END
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
-- Lock order (sql/src/50_groups.sql header, README "Concurrency"): the callers hold
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
                   AND r.status = 'active' AND r.expires_at <= p_as_of
                 FOR UPDATE),
           'expired', p_as_of);
END
$$;
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
        assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at;

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
-- Lock order (README "Concurrency"), the same in every function, so that
-- group operations, relationship changes and maintenance never deadlock:
--   1. relationship rows, by id        (relationship calls; ADD_CLIENTS)
--   2. client_group rows, by id        (group operations; the R9 cascade)
--   3. employee rows                   (G4, R7, E8)
--   4. the rows hanging off them: group_client, group_employee,
--      client_assignment, group_request
-- So an ADD_CLIENTS locks the relationships it relies on before the group
-- (carm_internal.group_lock_relationships), and the expiry cascade
-- (carm_internal.close_relationships) locks the groups of the clients it
-- removes before touching their rows.  Maintenance never waits for rows 1
-- and 2 (SKIP LOCKED / NOWAIT): a busy group or relationship delays only its
-- own request, which stays PENDING for the next run.

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
  IF NOT EXISTS (SELECT FROM carm.employee e
                 JOIN carm.app_user u ON u.id = e.user_id AND u.active
                 WHERE e.business_id = p_provider.id AND e.user_id = p_user AND e.role = 'BAM') THEN
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
-- malformed ones), duplicates dropped, sorted.  NULL is 22004; an empty list
-- is refused unless p_allow_empty (create_client_group's default).
CREATE OR REPLACE FUNCTION carm_internal.bn9_list(p_bn9s text[], p_allow_empty boolean DEFAULT false) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_bad text[];
BEGIN
  PERFORM carm_internal.not_null(p_bn9s, 'clients');
  IF cardinality(p_bn9s) = 0 AND NOT p_allow_empty THEN
    RAISE EXCEPTION 'clients must not be empty' USING ERRCODE = '22023';
  END IF;
  SELECT array_agg(coalesce(quote_literal(left(x, 32)), 'NULL') ORDER BY o) INTO v_bad
  FROM unnest(p_bn9s) WITH ORDINALITY AS t(x, o)
  WHERE x IS NULL OR NOT carm_internal.bn9_is_valid(x);
  IF v_bad IS NOT NULL THEN
    RAISE EXCEPTION 'invalid business numbers in clients: %', carm_internal.name_list(v_bad, 20)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  RETURN ARRAY(SELECT DISTINCT x FROM unnest(p_bn9s) x ORDER BY x);
END
$$;
COMMENT ON FUNCTION carm_internal.bn9_list(text[], boolean) IS
  'Internal: the checked, distinct, sorted BN9 list of a group operation';

-- The user_ids argument: no NULL element, not empty (22023), distinct, sorted.
CREATE OR REPLACE FUNCTION carm_internal.user_list(p_users bigint[]) RETURNS bigint[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.not_null(p_users, 'user_ids');
  IF cardinality(p_users) = 0 THEN
    RAISE EXCEPTION 'user_ids must not be empty' USING ERRCODE = '22023';
  END IF;
  IF array_position(p_users, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'user_ids must not contain NULL' USING ERRCODE = '22023';
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
-- §7 client groups, part 2: each operation applied for an initiator, shared
-- by immediate calls and deferred processing (G3-G8).

-- Operations, applied for an initiator ---------------------------------------
-- Each writes one summary event (published with pg_notify) plus one audit row
-- per client or employee concerned, written set-based and not published, so
-- that a client's BAM finds its own history in carm.audit_events(client) and a
-- 10,000-client operation sends one message, not 10,000.

-- G3 + G6: adds clients to g.  All-or-nothing: every unavailable client is
-- named in one error (22023), nothing is applied.  A client already in g is
-- left as it is (it is in no *other* group, so G3 holds).
CREATE OR REPLACE FUNCTION carm_internal.group_add_clients(g carm.client_group, p_bn9s text[], p_actor bigint,
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
  -- (group_request took them before the group row; create_client_group's
  -- group is new, so nobody can wait for it)
  PERFORM FROM carm.relationship r
  JOIN carm.business b ON b.id = r.client_id
  WHERE r.provider_id = g.provider_id AND r.status = 'active' AND b.bn9 = ANY (p_bn9s)
  ORDER BY r.id
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
      v_detail := v_detail || format('Unknown business: %s.', carm_internal.name_list(v_unknown));
    END IF;
    IF v_unrelated IS NOT NULL THEN
      v_detail := v_detail || format('No active relationship with provider: %s.', carm_internal.name_list(v_unrelated));
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
    RAISE EXCEPTION 'clients not available for client group "%": %', g.name, carm_internal.name_list(v_offenders)
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
    SELECT p_actor, carm_internal.caller_role(), 'group_client_added', g.provider_id, ins.client_id, g.id,
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

  v_audit := carm_internal.group_audit(p_actor, 'group_clients_added', g,
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
COMMENT ON FUNCTION carm_internal.group_add_clients(carm.client_group, text[], bigint, bigint, timestamptz) IS
  'Internal: G3/G6, adds available clients to a group (all or nothing), returns how many were added';

-- G7 for a set of client ids of g (all of them when p_clients is NULL): the
-- group's employees lose their individual assignments (R7) on those clients'
-- relationships — literal revocation, so removing a client cannot be undone —
-- and the group_client rows go, which ends the group-derived access.  Provider
-- BAMs keep theirs: it is derived from the relationship (R6), not from here.
-- Returns the number of clients removed.
CREATE OR REPLACE FUNCTION carm_internal.group_drop_clients(g carm.client_group, p_clients bigint[], p_actor bigint,
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
  SELECT p_actor, carm_internal.caller_role(), 'group_client_removed', g.provider_id, gone.client_id, g.id,
         jsonb_build_object('group', g.name, 'request_id', p_request, 'reason', p_reason,
                            'revoked_assignments', coalesce(pc.revoked, '[]'))
  FROM gone LEFT JOIN per_client pc ON pc.client_id = gone.client_id
  ORDER BY gone.client_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION carm_internal.group_drop_clients(carm.client_group, bigint[], bigint, bigint, text) IS
  'Internal: G7, removes clients from a group and revokes the group employees'' access to them';

-- G7: removes clients from g.  Every listed client must be in g (22023, naming
-- the others; nothing applied).
CREATE OR REPLACE FUNCTION carm_internal.group_remove_clients(g carm.client_group, p_bn9s text[], p_actor bigint,
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
    RAISE EXCEPTION 'clients not in client group "%": %', g.name, carm_internal.name_list(v_bad)
      USING ERRCODE = '22023', HINT = 'See carm.group_clients() for the clients of the group.';
  END IF;
  v_ids := ARRAY(SELECT b.id FROM carm.business b WHERE b.bn9 = ANY (p_bn9s));
  v_n := carm_internal.group_drop_clients(g, v_ids, p_actor, p_request, 'removed');
  v_audit := carm_internal.group_audit(p_actor, 'group_clients_removed', g,
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
COMMENT ON FUNCTION carm_internal.group_remove_clients(carm.client_group, text[], bigint, bigint) IS
  'Internal: G7, removes clients that are all in the group, returns how many';

-- G4: assigns provider employees to g with a default role; an employee
-- already in g gets the new role.  Every user who is not an active employee
-- of the provider, or is one of its BAMs, is named in one error (22023).
CREATE OR REPLACE FUNCTION carm_internal.group_assign(g carm.client_group, p_users bigint[], p_role text,
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
      v_detail := v_detail || format('Not active employees of the provider: %s.', carm_internal.name_list(v_strangers));
    END IF;
    IF v_bams IS NOT NULL THEN
      v_detail := v_detail || format('Business account managers of the provider, who already act for every client: %s.',
                                     carm_internal.name_list(v_bams));
    END IF;
    RAISE EXCEPTION 'users cannot be employees of client group "%": %', g.name,
                    carm_internal.name_list(ARRAY(SELECT x FROM unnest(coalesce(v_strangers, '{}') || coalesce(v_bams, '{}')) x
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
      SET role = excluded.role, assigned_at = excluded.assigned_at
      WHERE ge.role <> excluded.role
    RETURNING ge.user_id
  ), aud AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                  group_id, details)
    SELECT p_actor, carm_internal.caller_role(), 'group_employee_assigned', g.provider_id, up.user_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request,
                              'before', old.role, 'after', p_role)
    FROM up LEFT JOIN old ON old.user_id = up.user_id
    ORDER BY up.user_id
    RETURNING target_user_id
  )
  SELECT coalesce(array_agg(aud.target_user_id), '{}') INTO v_changed FROM aud;
  v_n := cardinality(v_changed);

  v_audit := carm_internal.group_audit(p_actor, 'group_employees_assigned', g,
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
COMMENT ON FUNCTION carm_internal.group_assign(carm.client_group, bigint[], text, bigint, bigint) IS
  'Internal: G4, assigns provider employees (not BAMs) to a group with a default role';

-- Unassigns employees from g: their group-derived access ends; individual
-- assignments (R7) are not the group's and stay.  Every listed user must be
-- an employee of g (22023, naming the others).
CREATE OR REPLACE FUNCTION carm_internal.group_unassign(g carm.client_group, p_users bigint[], p_actor bigint,
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
    RAISE EXCEPTION 'users are not employees of client group "%": %', g.name, carm_internal.name_list(v_bad)
      USING ERRCODE = '22023', HINT = 'See carm.group_employees() for the employees of the group.';
  END IF;

  WITH gone AS (
    DELETE FROM carm.group_employee ge
    WHERE ge.group_id = g.id AND ge.user_id = ANY (p_users)
    RETURNING ge.user_id, ge.role
  )
  INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                group_id, details)
  SELECT p_actor, carm_internal.caller_role(), 'group_employee_unassigned', g.provider_id, gone.user_id, g.id,
         jsonb_build_object('group', g.name, 'request_id', p_request, 'before', gone.role)
  FROM gone ORDER BY gone.user_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;

  v_audit := carm_internal.group_audit(p_actor, 'group_employees_unassigned', g,
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
COMMENT ON FUNCTION carm_internal.group_unassign(carm.client_group, bigint[], bigint, bigint) IS
  'Internal: removes employees from a group (their individual assignments stay)';

-- G8: G7 for every client, then the employees leave the group (guide §6.4:
-- "supprime l'association de ses employés et de ses clients au groupe") and
-- the group is marked deleted.  The row stays, so its name stays taken (G2)
-- and the request table keeps pointing at it.  Returns the number of clients.
CREATE OR REPLACE FUNCTION carm_internal.group_delete(g carm.client_group, p_actor bigint, p_request bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clients integer;
  v_employees bigint[];
  v_audit bigint;
BEGIN
  v_clients := carm_internal.group_drop_clients(g, NULL, p_actor, p_request, 'group deleted');

  WITH gone AS (
    DELETE FROM carm.group_employee ge WHERE ge.group_id = g.id
    RETURNING ge.user_id, ge.role
  ), aud AS (
    INSERT INTO carm.audit_event (actor_id, db_role, event, business_id, target_user_id,
                                  group_id, details)
    SELECT p_actor, carm_internal.caller_role(), 'group_employee_unassigned', g.provider_id, gone.user_id, g.id,
           jsonb_build_object('group', g.name, 'request_id', p_request, 'before', gone.role,
                              'reason', 'group deleted')
    FROM gone ORDER BY gone.user_id
  )
  SELECT coalesce(array_agg(gone.user_id ORDER BY gone.user_id), '{}') INTO v_employees FROM gone;

  UPDATE carm.client_group cg SET deleted_at = now() WHERE cg.id = g.id;

  v_audit := carm_internal.group_audit(p_actor, 'client_group_deleted', g,
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
COMMENT ON FUNCTION carm_internal.group_delete(carm.client_group, bigint, bigint) IS
  'Internal: G8, deletes a group (G7 for all clients, employees unassigned, name kept)';

-- One operation on g from its stored form (the payload of group_request).
CREATE OR REPLACE FUNCTION carm_internal.group_apply(g carm.client_group, p_operation text, p_payload jsonb,
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
      RETURN carm_internal.group_add_clients(g, v_clients, p_actor, p_request, p_now);
    WHEN 'REMOVE_CLIENTS' THEN
      RETURN carm_internal.group_remove_clients(g, v_clients, p_actor, p_request);
    WHEN 'ASSIGN_EMPLOYEES' THEN
      RETURN carm_internal.group_assign(g, v_users, carm_internal.group_role(p_payload->>'role'), p_actor, p_request);
    WHEN 'UNASSIGN_EMPLOYEES' THEN
      RETURN carm_internal.group_unassign(g, v_users, p_actor, p_request);
    WHEN 'DELETE_GROUP' THEN
      RETURN carm_internal.group_delete(g, p_actor, p_request);
    ELSE
      RAISE EXCEPTION 'unexpected group operation "%"', p_operation USING ERRCODE = 'XX000';
  END CASE;
END
$$;
COMMENT ON FUNCTION carm_internal.group_apply(carm.client_group, text, jsonb, bigint, bigint, timestamptz) IS
  'Internal: applies one group operation for its initiator';

-- Lock order, step 1: the active relationships of the provider with the
-- clients an ADD_CLIENTS relies on (G3), FOR SHARE, by id — before the group
-- row is locked.  p_nowait (maintenance) raises 55P03 instead of waiting.
CREATE OR REPLACE FUNCTION carm_internal.group_lock_relationships(p_provider bigint, p_operation text,
                                                                 p_payload jsonb, p_nowait boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_operation <> 'ADD_CLIENTS' THEN
    RETURN;
  END IF;
  IF p_nowait THEN
    PERFORM FROM carm.relationship r
    WHERE r.provider_id = p_provider AND r.status = 'active'
      AND r.client_id IN (SELECT b.id FROM carm.business b
                          WHERE b.bn9 IN (SELECT jsonb_array_elements_text(p_payload->'clients')))
    ORDER BY r.id
    FOR SHARE OF r NOWAIT;
  ELSE
    PERFORM FROM carm.relationship r
    WHERE r.provider_id = p_provider AND r.status = 'active'
      AND r.client_id IN (SELECT b.id FROM carm.business b
                          WHERE b.bn9 IN (SELECT jsonb_array_elements_text(p_payload->'clients')))
    ORDER BY r.id
    FOR SHARE OF r;
  END IF;
END
$$;
COMMENT ON FUNCTION carm_internal.group_lock_relationships(bigint, text, jsonb, boolean) IS
  'Internal: lock order step 1 for a group operation, the relationships an ADD_CLIENTS relies on';

-- The common path of the five operations on an existing group (G9): the
-- arguments' form has been checked by the caller; here the group and the
-- actor's permission are checked, then the operation is either queued
-- (deferred: PENDING, applied by carm_internal.process_group_requests) or applied
-- and recorded COMPLETED in the caller's transaction.  Returns the request id.
CREATE OR REPLACE FUNCTION carm_internal.group_request(p_group bigint, p_operation text, p_payload jsonb,
                                    p_items integer, p_deferred boolean)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clock timestamptz;
  v_actor bigint := carm_internal.require_active_actor();
  g carm.client_group;
  v_request bigint;
BEGIN
  PERFORM carm_internal.not_null(p_deferred, 'deferred');
  -- A deferred request on a deleted group could only fail: refused now (55000).
  g := carm_internal.group_row(p_group, v_actor, false);
  IF NOT p_deferred THEN
    -- lock order: the relationships the operation relies on, then the group
    PERFORM carm_internal.group_lock_relationships(g.provider_id, p_operation, p_payload, false);
    g := carm_internal.group_row(p_group, v_actor, true);
  END IF;
  INSERT INTO carm.group_request (provider_id, group_id, group_name, operation, initiator,
                                  status, item_count, payload, started_at)
  VALUES (g.provider_id, g.id, g.name, p_operation, v_actor,
          CASE WHEN p_deferred THEN 'PENDING' ELSE 'PROCESSING' END, p_items, p_payload,
          CASE WHEN p_deferred THEN NULL ELSE clock_timestamp() END)
  RETURNING id INTO v_request;

  IF p_deferred THEN
    PERFORM carm_internal.group_audit(v_actor, 'group_request_queued', g,
              jsonb_build_object('request_id', v_request, 'operation', p_operation,
                                 'items', p_items));
    RETURN v_request;
  END IF;

  PERFORM carm_internal.group_apply(g, p_operation, p_payload, v_actor, v_request, now());
  v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
  UPDATE carm.group_request q SET status = 'COMPLETED', finished_at = v_clock
  WHERE q.id = v_request;
  RETURN v_request;
END
$$;
COMMENT ON FUNCTION carm_internal.group_request(bigint, text, jsonb, integer, boolean) IS
  'Internal: G9, queues (deferred) or applies and records one operation on a group';
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
  PERFORM carm_internal.group_add_clients(g, v_clients, v_actor, v_request, now());   -- G3
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
-- §7 client groups, part 4: deferred processing of the request-processing
-- table (G9, R12), one request per subtransaction.

-- Deferred processing (G9, R12) -----------------------------------------------

-- Applies the PENDING requests created up to as_of, oldest first, each
-- atomically in its own subtransaction and as its initiator would: the
-- initiator must still be a BAM of the provider, the group still live and the
-- clients still available at apply time.  A request that fails is marked
-- FAILED with the reason and leaves nothing behind; its initiator is notified.
--
-- A busy group delays only itself: the relationships and the group a request
-- needs are locked NOWAIT (in the lock order of the header), and a transient
-- error — 55P03 (a lock not available now, or carm.run_maintenance's
-- lock_timeout), 40P01 (deadlock), 40001 (serialization) — rolls the request's
-- subtransaction back and leaves it PENDING for the next run: it is not the
-- request's failure.
--
-- Requests are claimed with FOR UPDATE SKIP LOCKED: a concurrent run skips
-- what this one holds, and once this one commits, the rows it finished no
-- longer match status = 'PENDING' when re-checked, so every request is
-- processed exactly once.  Called by carm.run_maintenance().
CREATE OR REPLACE FUNCTION carm_internal.process_group_requests(as_of timestamptz DEFAULT now())
RETURNS TABLE (action text, count bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_clock timestamptz;
  v_ids bigint[];
  v_id bigint;
  q carm.group_request;
  g carm.client_group;
  v_done bigint := 0;
  v_failed bigint := 0;
  v_retried bigint := 0;
  v_msg text;
  v_detail text;
  v_state text;
  v_audit bigint;
BEGIN
  PERFORM carm_internal.not_null(as_of, 'as_of');
  v_ids := ARRAY(SELECT r.id FROM carm.group_request r
                 WHERE r.status = 'PENDING' AND r.created_at <= as_of
                 ORDER BY r.id
                 FOR UPDATE SKIP LOCKED);
  v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
  UPDATE carm.group_request r SET status = 'PROCESSING', started_at = v_clock
  WHERE r.id = ANY (v_ids);

  FOREACH v_id IN ARRAY v_ids LOOP
    SELECT * INTO q FROM carm.group_request r WHERE r.id = v_id;
    BEGIN
      -- G1 at apply time, with the reason (the initiator may have left)
      PERFORM carm_internal.require_group_manager(b, q.initiator)
      FROM carm.business b WHERE b.id = q.provider_id;
      -- lock order, never waiting: relationships, then the group
      PERFORM carm_internal.group_lock_relationships(q.provider_id, q.operation, q.payload, true);
      PERFORM FROM carm.client_group cg WHERE cg.id = q.group_id FOR NO KEY UPDATE NOWAIT;
      g := carm_internal.group_row(q.group_id, q.initiator, true);
      PERFORM carm_internal.group_apply(g, q.operation, q.payload, q.initiator, q.id, as_of);
      v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
      UPDATE carm.group_request r SET status = 'COMPLETED', finished_at = v_clock
      WHERE r.id = q.id;
      PERFORM carm_internal.notify(q.initiator, 'group_request_completed',
                format('Your request %s (%s on client group "%s", %s item(s)) was completed.',
                       q.id, q.operation, q.group_name, q.item_count));
      v_done := v_done + 1;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL,
                              v_state = RETURNED_SQLSTATE;
      IF v_state IN ('55P03', '40P01', '40001') THEN
        -- transient: nothing was applied; the next run tries again
        UPDATE carm.group_request r SET status = 'PENDING', started_at = NULL
        WHERE r.id = q.id;
        v_retried := v_retried + 1;
        CONTINUE;
      END IF;
      v_clock := clock_timestamp();   -- Citus: no volatile function in an UPDATE
      UPDATE carm.group_request r
      SET status = 'FAILED', finished_at = v_clock,
          error = v_msg || CASE WHEN v_detail <> '' THEN E'\n' || v_detail ELSE '' END
      WHERE r.id = q.id;
      v_audit := carm_internal.audit('group_request_failed', q.provider_id, NULL, NULL, NULL, q.group_id,
                             jsonb_build_object('request_id', q.id, 'operation', q.operation,
                                                'sqlstate', v_state, 'error', v_msg),
                             q.initiator);
      PERFORM carm_internal.notify(q.initiator, 'group_request_failed',
                format('Your request %s (%s on client group "%s") failed and changed nothing: %s',
                       q.id, q.operation, q.group_name, v_msg),
                v_audit);
      v_failed := v_failed + 1;
    END;
  END LOOP;

  RETURN QUERY VALUES ('group_requests_completed'::text, v_done), ('group_requests_failed', v_failed),
                      ('group_requests_retried', v_retried);
END
$$;
COMMENT ON FUNCTION carm_internal.process_group_requests(timestamptz) IS
  'Internal (R12/G9): applies pending deferred group requests, each atomically; a busy group or a transient error leaves its request PENDING; returns how many completed, failed and were left for the next run';
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
    WHERE r.provider_id = b.id AND r.status = 'active'
      AND (r.expires_at IS NULL OR r.expires_at > now())
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
-- set-based statement.  Returns how many expired.  In the lock order
-- (relationships, then client groups), never waiting: a relationship another
-- transaction holds, or whose client is in a group another transaction
-- holds, is left for the next run (its expiry is already in force: checks
-- compare expires_at with the time, R9).
CREATE OR REPLACE FUNCTION carm_internal.expire_relationships(p_as_of timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ids bigint[];
  v_groups bigint[];
BEGIN
  v_ids := ARRAY(SELECT r.id FROM carm.relationship r
                 WHERE r.status = 'active' AND r.expires_at <= p_as_of
                 ORDER BY r.id
                 FOR UPDATE SKIP LOCKED);
  v_groups := ARRAY(SELECT g.id FROM carm.client_group g
                    WHERE g.id IN (SELECT gc.group_id
                                   FROM carm.relationship r
                                   JOIN carm.group_client gc ON gc.provider_id = r.provider_id
                                                            AND gc.client_id = r.client_id
                                   WHERE r.id = ANY (v_ids))
                    ORDER BY g.id
                    FOR NO KEY UPDATE SKIP LOCKED);
  v_ids := ARRAY(SELECT x FROM unnest(v_ids) x
                 WHERE NOT EXISTS (SELECT FROM carm.relationship r
                                   JOIN carm.group_client gc ON gc.provider_id = r.provider_id
                                                            AND gc.client_id = r.client_id
                                   WHERE r.id = x AND gc.group_id <> ALL (v_groups))
                 ORDER BY x);
  RETURN carm_internal.close_relationships(v_ids, 'expired', p_as_of);
END
$$;
COMMENT ON FUNCTION carm_internal.expire_relationships(timestamptz) IS
  'Internal (R9, R12): applies the expiry cascade to every relationship due at as_of that no other transaction holds; returns how many';

-- §9: BAMs of both businesses are told when a relationship will expire within
-- 30 days, once per expiry date (a new date set by update_relationship gets
-- its own notice).  Returns how many relationships were announced.
CREATE OR REPLACE FUNCTION carm_internal.notify_expiring(p_as_of timestamptz) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_count bigint;
BEGIN
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
    SELECT carm.actor(), carm_internal.caller_role(), 'relationship_expiring', m.provider_id, m.client_id, m.id,
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
  SELECT count(*) INTO v_count FROM (
    SELECT carm_internal.publish(ev.id) FROM events ev ORDER BY ev.id
  ) published;
  RETURN v_count;
END
$$;
COMMENT ON FUNCTION carm_internal.notify_expiring(timestamptz) IS
  'Internal (§9, R12): notifies the BAMs of both businesses of relationships expiring within 30 days, once per expiry date';

-- Maintenance never stalls behind one busy session: it skips the rows other
-- transactions lock (SKIP LOCKED, NOWAIT), and waits at most lock_timeout
-- for any other lock (below deadlock_timeout's default of 1 s, so that in a
-- lock cycle maintenance gives up first).  What it could not do now — an
-- expiry cascade, a deferred request — is left for the next run.
CREATE OR REPLACE FUNCTION carm.run_maintenance(as_of timestamptz DEFAULT now())
RETURNS TABLE (action text, count bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '500ms'
AS $$
DECLARE
  v_state text;
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.not_null(as_of, 'as_of');
  -- §10 (rev. 1.1): expiry is irreversible (R10), so nothing may expire
  -- before its time: a future as_of is refused.
  IF as_of > clock_timestamp() THEN
    RAISE EXCEPTION 'as_of must not be in the future'
      USING ERRCODE = '22023',
            DETAIL = 'Expiry cannot be undone (R10): nothing may expire before its time.',
            HINT = 'Call carm.run_maintenance() without as_of, or with a time in the past.';
  END IF;
  action := 'relationships_expired';
  BEGIN
    count := carm_internal.expire_relationships(as_of);
  EXCEPTION WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
    count := 0;                     -- transient: the next run applies them (R9 holds by time)
  END;
  RETURN NEXT;
  action := 'expiry_notices';
  BEGIN
    count := carm_internal.notify_expiring(as_of);
  EXCEPTION WHEN lock_not_available OR deadlock_detected OR serialization_failure THEN
    count := 0;
  END;
  RETURN NEXT;
  -- G9: deferred group requests (client groups, sql/src: groups)
  RETURN QUERY SELECT * FROM carm_internal.process_group_requests(as_of);
END
$$;
COMMENT ON FUNCTION carm.run_maintenance(timestamptz) IS
  'R12: applies due expiry cascades (R9), sends 30-day expiry notices, runs deferred group requests (G9); returns what it did (carm_admin)';

REVOKE ALL ON FUNCTION carm.run_maintenance(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.run_maintenance(timestamptz) TO carm_admin;
-- §8 the decisions, implemented in C (src/check.c, src/planner.c).

CREATE OR REPLACE FUNCTION carm.has_access(target text, permission text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_has_access';
COMMENT ON FUNCTION carm.has_access(text, text) IS
  'Does the acting user hold permission (function.level) on a BN15 or BN9?';

CREATE OR REPLACE FUNCTION carm.user_has_access(user_id bigint, target text, permission text) RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_user_has_access';
COMMENT ON FUNCTION carm.user_has_access(bigint, text, text) IS
  'Does a user hold permission (function.level) on a BN15 or BN9? (carm_admin)';
REVOKE ALL ON FUNCTION carm.user_has_access(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.user_has_access(bigint, text, text) TO carm_admin;

-- Row-level security (V1-V5).  Policies call these with the function name as
-- a constant; see carm.protect().

CREATE OR REPLACE FUNCTION carm_internal.visible_programs(function text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_visible_programs_sql';
COMMENT ON FUNCTION carm_internal.visible_programs(text) IS
  'Internal: program ids where the actor may see some row of this function (the index condition)';

CREATE OR REPLACE FUNCTION carm_internal.row_visible_support(internal) RETURNS internal
  LANGUAGE c STRICT
  AS 'MODULE_PATHNAME', 'carm_row_visible_support';

CREATE OR REPLACE FUNCTION carm_internal.row_visible(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE COST 1
  SUPPORT carm_internal.row_visible_support
  AS 'MODULE_PATHNAME', 'carm_row_visible';
COMMENT ON FUNCTION carm_internal.row_visible(bigint, bigint, text) IS
  'Row check V1-V4: may the actor see a row of this program submitted by this business?';

CREATE OR REPLACE FUNCTION carm_internal.row_writable(program_id bigint, submitter_id bigint, function text)
  RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE COST 1
  AS 'MODULE_PATHNAME', 'carm_row_writable';
COMMENT ON FUNCTION carm_internal.row_writable(bigint, bigint, text) IS
  'Row check V5: may the actor write a row of this program submitted by this business?';

CREATE OR REPLACE FUNCTION carm_internal.check_write() RETURNS trigger
  LANGUAGE c AS 'MODULE_PATHNAME', 'carm_check_write';
COMMENT ON FUNCTION carm_internal.check_write() IS
  'V5 (BEFORE INSERT OR UPDATE trigger of protected tables): a NULL submitter becomes the actor''s acting business; a refused write raises 42501 with the condition that failed';
-- §8 reports: which programs the actor may use, who has access to a business,
-- and why a user has (or once had) access to an account.

CREATE OR REPLACE FUNCTION carm_internal.accessible_program_ids(permission text) RETURNS bigint[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_accessible_program_ids';

CREATE OR REPLACE FUNCTION carm.accessible_programs(permission text)
RETURNS TABLE (bn15 text, business text, name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  -- the C function validates the permission and requires an actor, always
  RETURN QUERY
  WITH ids AS MATERIALIZED (SELECT carm_internal.accessible_program_ids(permission) AS ids)
  SELECT p.bn15, b.bn9, p.name
  FROM ids, carm.program p JOIN carm.business b ON b.id = p.business_id
  WHERE CASE WHEN split_part(permission, '.', 1) = 'business_profile'
             -- a business-scope function (§3): the answer of the program's business
             THEN b.id IN (SELECT g.business_id FROM carm_internal.grants(carm.actor()) g)
                  AND carm.has_access(b.bn9, permission)
             ELSE p.id = ANY (ids.ids) END
  ORDER BY p.bn15;
END
$$;
COMMENT ON FUNCTION carm.accessible_programs(text) IS
  'Program accounts (BN15) on which the acting user holds a permission such as rulings.edit';

-- Is the caller carm_admin (p_admin: the admin variant of a report, §2) or
-- a BAM of this business?  42501 otherwise.
CREATE OR REPLACE FUNCTION carm_internal.require_admin_or_bam(p_business bigint, p_admin boolean) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_admin THEN
    RETURN true;
  END IF;
  IF NOT EXISTS (SELECT FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id AND u.active
                 WHERE e.business_id = p_business AND e.user_id = carm_internal.require_actor()
                   AND e.role = 'BAM') THEN
    RAISE EXCEPTION 'permission denied: only carm_admin or a business account manager of this business'
      USING ERRCODE = '42501';
  END IF;
  RETURN false;
END
$$;

-- The business and, for a BN15, the program a target names (22023 / P0002).
CREATE OR REPLACE FUNCTION carm_internal.target(p_target text, OUT business_id bigint, OUT program_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_target IS NULL OR length(p_target) NOT IN (9, 15) THEN
    RAISE EXCEPTION 'invalid business or program number "%"', left(p_target, 32)
      USING ERRCODE = '22023', HINT = 'A target is a BN9 or a BN15 such as 123456782RM0001.';
  END IF;
  IF length(p_target) = 9 THEN
    business_id := (carm_internal.business(p_target)).id;
  ELSE
    program_id := carm.program_id(p_target);
    SELECT p.business_id INTO business_id FROM carm.program p WHERE p.id = program_id;
  END IF;
END
$$;

-- The check's rules for the reports (src/report.c).  The reports read the
-- rows of carm_internal.grants(), the resolver behind the C check, and ask
-- these functions what each row confers: no role, matrix entry or expiry
-- rule is restated in SQL (SPEC §8: the reports and the check never disagree).
CREATE OR REPLACE FUNCTION carm_internal.role_level(role text, function text) RETURNS integer
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_role_level_sql';
COMMENT ON FUNCTION carm_internal.role_level(text, text) IS
  'Internal: the §3.2 matrix, the level (0 none, 1 view, 2 edit, 3 manage) a role holds on a function';

CREATE OR REPLACE FUNCTION carm_internal.effective_role(role text, source text, provider_bam boolean,
                                                        expires_at timestamptz) RETURNS text
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_effective_role_sql';
COMMENT ON FUNCTION carm_internal.effective_role(text, text, boolean, timestamptz) IS
  'Internal (R9): the role a row of carm_internal.grants() confers now: its own, EXPIRED for a provider BAM past expiry, NULL for others';

CREATE OR REPLACE FUNCTION carm_internal.point_permissions(role text, source text, provider_bam boolean,
                                                           expires_at timestamptz, all_programs boolean,
                                                           business_row boolean, program_target boolean)
RETURNS text[]
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_point_permissions_sql';
COMMENT ON FUNCTION carm_internal.point_permissions(text, text, boolean, timestamptz, boolean, boolean, boolean) IS
  'Internal (§8): the permissions a row of carm_internal.grants() confers on a BN9 or BN15 at the point-check level, as has_access decides';

-- Every path by which a user reaches a business (and, for a BN15 target,
-- that program), from the resolver: the rows of carm_internal.grants() on the
-- business grouped by path (source, role, acting business, relationship,
-- group).  live: the path confers a role now (R9); in_force: live and it
-- reaches the target (a BN9: any row; a BN15: a business-level row, which
-- business_profile is judged on, or a row of the program);
-- permissions: what it grants on the target at the point-check level (§8).
-- V3/V4 paths (SPMGR, EXPIRED) are live and grant no permission: rows only.
CREATE OR REPLACE FUNCTION carm_internal.access_paths(p_user bigint, p_business bigint, p_program bigint)
RETURNS TABLE (source text, role text, granted_role text, live boolean, in_force boolean,
               provider_bam boolean, via_business_id bigint, relationship_id bigint, group_id bigint,
               all_programs boolean, program_ids bigint[], reaches_target boolean,
               permissions text[], expires_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  WITH g AS (
    SELECT g.*,
           carm_internal.effective_role(g.role, g.source, g.provider_bam, g.expires_at) AS eff,
           CASE WHEN g.program_id IS NULL OR g.program_id = p_program
                THEN carm_internal.point_permissions(g.role, g.source, g.provider_bam, g.expires_at,
                                                     g.all_programs, g.program_id IS NULL,
                                                     p_program IS NOT NULL)
                ELSE '{}'::text[] END AS perms
    FROM carm_internal.grants(p_user) g
    WHERE g.business_id = p_business
  ),
  p AS (
    SELECT g.source, g.role, g.provider_bam, g.via_business_id, g.relationship_id, g.group_id, g.expires_at,
           min(g.eff) AS eff,
           p_program IS NULL OR bool_or(g.program_id IS NULL)
             OR coalesce(bool_or(g.program_id = p_program), false) AS reaches,
           bool_or(g.program_id IS NULL AND g.all_programs) AS all_programs,
           coalesce(array_agg(g.program_id ORDER BY g.program_id) FILTER (WHERE g.program_id IS NOT NULL),
                    '{}') AS program_ids,
           string_agg(array_to_string(g.perms, ','), ',') AS perms
    FROM g
    GROUP BY g.source, g.role, g.provider_bam, g.via_business_id, g.relationship_id, g.group_id, g.expires_at
  )
  SELECT p.source, coalesce(p.eff, p.role), p.role, p.eff IS NOT NULL, p.eff IS NOT NULL AND p.reaches,
         p.provider_bam, p.via_business_id, p.relationship_id, p.group_id, p.all_programs, p.program_ids,
         p.reaches,
         ARRAY(SELECT DISTINCT x FROM unnest(string_to_array(p.perms, ',')) x WHERE x <> '' ORDER BY x),
         p.expires_at
  FROM p
$$;
COMMENT ON FUNCTION carm_internal.access_paths(bigint, bigint, bigint) IS
  'Internal (§8): the resolver''s paths of a user to a business or program, with what each grants there';

-- How the reports name a path and its scope.
CREATE OR REPLACE FUNCTION carm_internal.path_label(p_source text, p_role text, p_provider_bam boolean,
                                                    p_relationship bigint, p_group bigint) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_source = 'employee' THEN 'employee'
              WHEN p_group IS NOT NULL
                THEN format('group "%s" on relationship #%s',
                            (SELECT g.name FROM carm.client_group g WHERE g.id = p_group), p_relationship)
              WHEN p_provider_bam OR p_role = 'SPMGR'
                THEN format('relationship #%s (%s)', p_relationship,
                            (SELECT r.access_type FROM carm.relationship r WHERE r.id = p_relationship))
              ELSE format('assignment on relationship #%s', p_relationship) END;
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.path_scope(p_user bigint, p_source text, p_role text,
                                                    p_provider_bam boolean, p_relationship bigint,
                                                    p_group bigint, p_all_programs boolean,
                                                    p_programs bigint[]) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN CASE WHEN p_all_programs THEN 'all programs'
              WHEN p_group IS NOT NULL THEN 'all delegated programs'
              WHEN p_source <> 'employee' AND NOT p_provider_bam AND p_role <> 'SPMGR'
                   AND EXISTS (SELECT FROM carm.client_assignment ca
                               WHERE ca.relationship_id = p_relationship AND ca.user_id = p_user
                                 AND ca.programs IS NULL)
                THEN 'all delegated programs'
              WHEN p_source <> 'employee'
                   AND (SELECT r.access_type FROM carm.relationship r WHERE r.id = p_relationship) = 'BUSINESS'
                   AND (p_provider_bam OR p_role = 'SPMGR')
                THEN 'all programs'
              WHEN cardinality(p_programs) = 0 THEN 'no program account'
              ELSE array_to_string(carm_internal.bn15s(p_programs), ', ') END;
END
$$;

-- A list of BN15s recorded in an audit event's details, as text (NULL when
-- the event recorded none: all programs).
CREATE OR REPLACE FUNCTION carm_internal.audit_scope(p_programs jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN jsonb_typeof(p_programs) = 'array'
              THEN array_to_string(ARRAY(SELECT jsonb_array_elements_text(p_programs)), ', ') END;
$$;

-- May the caller explain this user's access to this business?  carm_admin;
-- or a BAM of the business, for the users who reach it or once did: its
-- employees, the employees of its service providers (a relationship active,
-- expired or ended), and whoever the audit trail names about the business.
-- 42501 otherwise, before the user is looked up (§10).
CREATE OR REPLACE FUNCTION carm_internal.require_explainer(p_user bigint, p_business bigint, p_admin boolean)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF carm_internal.require_admin_or_bam(p_business, p_admin) THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT FROM carm.employee e WHERE e.business_id = p_business AND e.user_id = p_user)
     OR EXISTS (SELECT FROM carm.relationship r
                JOIN carm.employee e ON e.business_id = r.provider_id AND e.user_id = p_user
                WHERE r.client_id = p_business AND r.status IN ('active', 'expired', 'ended'))
     OR EXISTS (SELECT FROM carm.audit_event a
                WHERE a.target_user_id = p_user
                  AND (a.business_id = p_business OR a.other_business_id = p_business)) THEN
    RETURN;
  END IF;
  RAISE EXCEPTION 'permission denied: user % has no path to this business', p_user
    USING ERRCODE = '42501',
          HINT = 'A business account manager explains the access of its employees and of its service providers'' employees.';
END
$$;

-- explain_access's rows for a user on a business (and program): (1) every
-- path of the resolver, in force or not and why; (2) delegation facts that
-- confer nothing (deactivated user, superseded or overridden assignments);
-- (3) from the audit trail, paths since removed, revoked or ended, with when
-- and by whom.  No authorisation here: the callers check it.
CREATE OR REPLACE FUNCTION carm_internal.explain_paths(p_user bigint, p_business bigint, p_program bigint)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text,
               permissions text[], since timestamptz, granted_by bigint,
               ended_at timestamptz, ended_by bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
-- PL/pgSQL, not SQL: the session keeps the plan of this statement
RETURN QUERY
WITH a AS MATERIALIZED (
  SELECT * FROM carm_internal.access_paths(p_user, p_business, p_program)
),
-- (1) the resolver's paths
resolved AS (
  SELECT carm_internal.path_label(a.source, a.granted_role, a.provider_bam, a.relationship_id, a.group_id) AS path,
         a.role, vb.bn9 AS via,
         carm_internal.path_scope(p_user, a.source, a.granted_role, a.provider_bam, a.relationship_id, a.group_id,
                                  a.all_programs, a.program_ids) AS scope,
         a.in_force,
         CASE WHEN NOT a.live THEN format('relationship expired at %s (R9)', a.expires_at)
              WHEN NOT a.reaches_target AND a.group_id IS NULL AND NOT a.provider_bam
                   AND a.granted_role <> 'SPMGR'
                THEN 'program not in the assignment (R7)'
              WHEN NOT a.reaches_target THEN 'program not delegated by the relationship (R5)'
              WHEN a.role = 'EXPIRED'
                THEN format('relationship %s at %s: read-only, own submissions (V4)',
                            CASE WHEN r.status = 'ended' THEN 'ended' ELSE 'expired' END,
                            coalesce(r.closed_at, r.expires_at))
              WHEN a.source = 'employee' THEN 'employee of the business (V1)'
              WHEN a.role = 'SPMGR'
                THEN 'program account manager of the service provider: reads its submissions (V3)'
              WHEN a.provider_bam THEN 'business account manager of the service provider (R6)'
              WHEN a.group_id IS NOT NULL THEN 'employee of the client group (G4)'
              ELSE 'assigned by the service provider (R7)' END
         || CASE WHEN NOT a.live OR NOT a.reaches_target THEN ''
                 WHEN a.source = 'employee' AND p_program IS NOT NULL AND NOT p_program = ANY (a.program_ids)
                   THEN '; program not in the employee''s scope (E5): business profile only'
                 WHEN p_program IS NULL AND cardinality(a.permissions) = 0 AND a.role NOT IN ('EXPIRED', 'SPMGR')
                   THEN '; on its program accounts only, nothing on the business account itself (§3)'
                 ELSE '' END AS reason,
         a.permissions,
         CASE WHEN a.source = 'employee' THEN e.granted_at
              WHEN a.group_id IS NOT NULL THEN ge.assigned_at
              WHEN a.provider_bam OR a.granted_role = 'SPMGR' THEN r.decided_at
              ELSE ca.assigned_at END AS since,
         CASE WHEN a.source = 'employee' THEN e.granted_by
              WHEN a.group_id IS NOT NULL THEN NULL
              WHEN a.provider_bam OR a.granted_role = 'SPMGR' THEN r.decided_by
              ELSE ca.assigned_by END AS granted_by,
         CASE WHEN a.role = 'EXPIRED' THEN coalesce(r.closed_at, r.expires_at)
              WHEN NOT a.live THEN a.expires_at END AS ended_at,
         CASE WHEN a.role = 'EXPIRED' OR NOT a.live
              THEN (SELECT ev.actor_id FROM carm.audit_event ev
                    WHERE ev.relationship_id = a.relationship_id
                      AND ev.event IN ('relationship_ended', 'relationship_expired')
                    ORDER BY ev.id DESC LIMIT 1) END AS ended_by
  FROM a
  JOIN carm.business vb ON vb.id = a.via_business_id
  LEFT JOIN carm.relationship r ON r.id = a.relationship_id
  LEFT JOIN carm.employee e ON a.source = 'employee' AND e.business_id = p_business AND e.user_id = p_user
  LEFT JOIN carm.client_assignment ca ON ca.relationship_id = a.relationship_id AND ca.user_id = p_user
                                     AND a.group_id IS NULL
  LEFT JOIN carm.group_employee ge ON ge.group_id = a.group_id AND ge.user_id = p_user
),
-- (2) facts recorded for the user that the resolver derives nothing from
facts AS (
  SELECT 'employee' AS kind, e.role, e.business_id AS via_id, NULL::bigint AS rel, NULL::bigint AS grp,
         CASE WHEN e.programs IS NULL THEN 'all programs'
              ELSE array_to_string(carm_internal.bn15s(e.programs), ', ') END AS scope,
         e.granted_at AS since, e.granted_by AS by_user
  FROM carm.employee e WHERE e.user_id = p_user AND e.business_id = p_business
  UNION ALL
  SELECT 'assignment', x.role, r.provider_id, r.id, NULL,
         CASE WHEN x.programs IS NULL THEN 'all delegated programs'
              ELSE array_to_string(carm_internal.bn15s(x.programs), ', ') END,
         x.assigned_at, x.assigned_by
  FROM carm.client_assignment x JOIN carm.relationship r ON r.id = x.relationship_id
  WHERE x.user_id = p_user AND r.client_id = p_business
  UNION ALL
  SELECT 'group', ge.role, g.provider_id, r.id, g.id, 'all delegated programs', ge.assigned_at, NULL
  FROM carm.group_employee ge
  JOIN carm.client_group g ON g.id = ge.group_id AND g.deleted_at IS NULL
  JOIN carm.group_client gc ON gc.group_id = g.id AND gc.client_id = p_business
  JOIN carm.relationship r ON r.provider_id = g.provider_id AND r.client_id = p_business AND r.status = 'active'
  WHERE ge.user_id = p_user
),
dormant AS (
  SELECT CASE f.kind WHEN 'employee' THEN 'employee'
                     WHEN 'group' THEN format('group "%s" on relationship #%s',
                                              (SELECT g.name FROM carm.client_group g WHERE g.id = f.grp), f.rel)
                     ELSE format('assignment on relationship #%s', f.rel) END AS path,
         f.role, vb.bn9 AS via, f.scope, false AS in_force,
         CASE WHEN NOT u.active THEN 'user is deactivated (§2)'
              WHEN f.kind <> 'employee'
                   AND EXISTS (SELECT FROM carm.employee pe
                               WHERE pe.business_id = f.via_id AND pe.user_id = p_user AND pe.role = 'BAM')
                THEN 'superseded: the user is a business account manager of the service provider (R6)'
              WHEN f.kind = 'group'
                   AND EXISTS (SELECT FROM carm.client_assignment x
                               WHERE x.relationship_id = f.rel AND x.user_id = p_user)
                THEN 'overridden by an individual assignment (G5)'
              WHEN f.kind <> 'employee'
                   AND NOT EXISTS (SELECT FROM carm.employee pe
                                   WHERE pe.business_id = f.via_id AND pe.user_id = p_user)
                THEN 'the user is no employee of the service provider'
              ELSE 'confers no role on this business' END AS reason,
         '{}'::text[] AS permissions, f.since, f.by_user AS granted_by,
         NULL::timestamptz AS ended_at, NULL::bigint AS ended_by
  FROM facts f
  JOIN carm.business vb ON vb.id = f.via_id
  JOIN carm.app_user u ON u.id = p_user
  WHERE NOT EXISTS (SELECT FROM a
                    WHERE CASE f.kind
                            WHEN 'employee' THEN a.source = 'employee'
                            WHEN 'group' THEN a.group_id = f.grp AND a.relationship_id = f.rel
                            ELSE a.relationship_id = f.rel AND a.group_id IS NULL AND NOT a.provider_bam
                                 AND a.granted_role = f.role END)
),
-- (3) history: the audit trail of paths removed, revoked or ended (§9)
ev AS (
  SELECT ev.*
  FROM carm.audit_event ev
  WHERE (ev.business_id = p_business OR ev.other_business_id = p_business)
     OR (ev.target_user_id = p_user
         AND ev.event IN ('group_employee_unassigned', 'employee_removed', 'employee_access_changed'))
),
-- service providers with a relationship to the business, and since when
providers AS (
  SELECT r.provider_id, min(r.decided_at) AS since
  FROM carm.relationship r
  WHERE r.client_id = p_business AND r.status IN ('active', 'expired', 'ended')
  GROUP BY r.provider_id
),
history AS (
  -- E8, E7: removed from the business, or its role changed
  SELECT 'employee' AS path,
         CASE ev.event WHEN 'employee_removed' THEN ev.details->>'role'
                       ELSE ev.details->'before'->>'role' END AS role,
         b.bn9 AS via,
         coalesce(carm_internal.audit_scope(CASE ev.event WHEN 'employee_removed' THEN ev.details->'programs'
                                                          ELSE ev.details->'before'->'programs' END),
                  'all programs') AS scope,
         CASE ev.event WHEN 'employee_removed' THEN 'removed from the business (E8)'
              ELSE format('role changed to %s on %s (E7)', ev.details->'after'->>'role',
                          coalesce(carm_internal.audit_scope(ev.details->'after'->'programs'), 'all programs'))
         END AS reason,
         ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.business_id = p_business AND ev.target_user_id = p_user
    AND ev.event IN ('employee_removed', 'employee_access_changed')
  UNION ALL
  -- R7: an individual assignment revoked
  SELECT format('assignment on relationship #%s', ev.relationship_id), ev.details->'before'->>'role', b.bn9,
         coalesce(carm_internal.audit_scope(ev.details->'before'->'programs'), 'all delegated programs'),
         'revoked by the service provider (R7)', ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.other_business_id = p_business AND ev.target_user_id = p_user AND ev.event = 'client_access_revoked'
  UNION ALL
  -- R9: assignments deleted when the relationship ended or expired
  SELECT format('assignment on relationship #%s', ev.relationship_id), x->>'role', b.bn9, 'all delegated programs',
         format('relationship %s (R9)', substr(ev.event, 14)), ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(ev.details->'assignments_removed') = 'array'
                                               THEN ev.details->'assignments_removed' ELSE '[]' END) x
  WHERE ev.other_business_id = p_business AND ev.event IN ('relationship_ended', 'relationship_expired')
    AND (x->>'user_id')::bigint = p_user
  UNION ALL
  -- G7: assignments revoked when the client left a group
  SELECT format('assignment (client removed from group "%s")', ev.details->>'group'), x->>'role', b.bn9,
         'all delegated programs', 'revoked when the client left the client group (G7)', ev.at, ev.actor_id
  FROM ev JOIN carm.business b ON b.id = ev.business_id
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(ev.details->'revoked_assignments') = 'array'
                                               THEN ev.details->'revoked_assignments' ELSE '[]' END) x
  WHERE ev.other_business_id = p_business AND ev.event = 'group_client_removed'
    AND (x->>'user_id')::bigint = p_user
  UNION ALL
  -- G7, R9: the client left a group the user is or was an employee of
  SELECT format('group "%s"', g.name), m.role, b.bn9, 'all delegated programs',
         CASE ev.event WHEN 'group_client_removed' THEN 'client removed from the client group (G7)'
                       ELSE format('relationship %s: the client left the client group (R9)', substr(ev.event, 14)) END,
         ev.at, ev.actor_id
  FROM ev
  JOIN carm.client_group g ON g.id = ev.group_id
  JOIN carm.business b ON b.id = ev.business_id
  CROSS JOIN LATERAL (
    SELECT coalesce((SELECT ge.role FROM carm.group_employee ge
                     WHERE ge.group_id = g.id AND ge.user_id = p_user AND ge.assigned_at <= ev.at),
                    (SELECT ea.details->>'after' FROM carm.audit_event ea
                     WHERE ea.event = 'group_employee_assigned' AND ea.group_id = g.id
                       AND ea.target_user_id = p_user AND ea.id < ev.id
                     ORDER BY ea.id DESC LIMIT 1)) AS role) m
  WHERE ev.other_business_id = p_business
    AND ev.event IN ('group_client_removed', 'relationship_ended', 'relationship_expired')
    AND m.role IS NOT NULL
  UNION ALL
  -- G4, G8: the user left a group that held the client
  SELECT format('group "%s"', g.name), ev.details->>'before', b.bn9, 'all delegated programs',
         CASE WHEN ev.details->>'reason' = 'group deleted' THEN 'client group deleted (G8)'
              ELSE 'unassigned from the client group (G4)' END,
         ev.at, ev.actor_id
  FROM ev
  JOIN carm.client_group g ON g.id = ev.group_id
  JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.event = 'group_employee_unassigned' AND ev.target_user_id = p_user
    AND (EXISTS (SELECT FROM carm.group_client gc
                 WHERE gc.group_id = g.id AND gc.client_id = p_business AND gc.added_at <= ev.at)
         OR EXISTS (SELECT FROM carm.audit_event ea
                    WHERE ea.event = 'group_client_added' AND ea.group_id = g.id
                      AND ea.other_business_id = p_business AND ea.id < ev.id))
  UNION ALL
  -- E8, R6, V3: removed from a service provider of the business, or no longer its BAM or PAM
  SELECT format('employee of service provider %s', b.bn9),
         CASE ev.event WHEN 'employee_removed' THEN ev.details->>'role'
                       ELSE ev.details->'before'->>'role' END,
         b.bn9, 'every client program it reached',
         CASE ev.event WHEN 'employee_removed'
                THEN 'removed from the service provider (E8): every path through it ended'
              ELSE format('role at the service provider changed from %s to %s (R6, V3)',
                          ev.details->'before'->>'role', ev.details->'after'->>'role') END,
         ev.at, ev.actor_id
  FROM ev
  JOIN providers pv ON pv.provider_id = ev.business_id AND pv.since <= ev.at
  JOIN carm.business b ON b.id = ev.business_id
  WHERE ev.target_user_id = p_user
    AND (ev.event = 'employee_removed'
         OR (ev.event = 'employee_access_changed'
             AND ev.details->'before'->>'role' IN ('BAM', 'PAM')
             AND ev.details->'before'->>'role' IS DISTINCT FROM ev.details->'after'->>'role'))
)
SELECT * FROM (
  SELECT r.path, r.role, r.via, r.scope, r.in_force, r.reason, r.permissions, r.since, r.granted_by,
         r.ended_at, r.ended_by
  FROM resolved r
  UNION ALL
  SELECT d.path, d.role, d.via, d.scope, d.in_force, d.reason, d.permissions, d.since, d.granted_by,
         d.ended_at, d.ended_by
  FROM dormant d
  UNION ALL
  SELECT h.path, h.role, h.via, h.scope, false, h.reason, '{}'::text[], NULL::timestamptz, NULL::bigint,
         h.at, h.actor_id
  FROM history h
) x
ORDER BY x.in_force DESC, x.ended_at IS NOT NULL, x.path, x.role, x.ended_at;
END
$$;
COMMENT ON FUNCTION carm_internal.explain_paths(bigint, bigint, bigint) IS
  'Internal (§8): explain_access''s rows: the resolver''s paths, facts that confer nothing, and the audit history';

CREATE OR REPLACE FUNCTION carm_internal.explain_access(user_id bigint, target text, p_admin boolean)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text,
               permissions text[], since timestamptz, granted_by bigint,
               ended_at timestamptz, ended_by bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  u carm.app_user;
BEGIN
  t := carm_internal.target(target);
  -- Authorise before looking the user up: a refused caller must not learn
  -- whether a user id exists (P0002) where it is simply not allowed (42501).
  PERFORM carm_internal.require_explainer(explain_access.user_id, t.business_id, p_admin);
  u := carm_internal.user_row(explain_access.user_id);
  RETURN QUERY SELECT * FROM carm_internal.explain_paths(u.id, t.business_id, t.program_id);
END
$$;

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'explain_access',
  params => 'user_id bigint, target text',
  api_params => 'user_id bigint, target text',
  args => 'user_id, target',
  returns => 'TABLE (path text, role text, via text, scope text, in_force boolean, reason text, permissions text[], since timestamptz, granted_by bigint, ended_at timestamptz, ended_by bigint)',
  admin_comment => 'Internal: carm.explain_access() for carm_admin (any user); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.explain_access() for the acting user, without admin powers');
COMMENT ON FUNCTION carm.explain_access(bigint, text) IS
  'Every path that grants or once granted a user access to a BN9/BN15: in force or not and why, the permissions it grants there (as user_has_access decides), and from the audit trail when and by whom paths ended (carm_admin, or a BAM of the target business for its employees and its providers'' employees)';

-- §8 self-service: the actor's own paths, as explain_access shows them.
CREATE OR REPLACE FUNCTION carm.my_access(target text)
RETURNS TABLE (path text, role text, via text, scope text, in_force boolean, reason text,
               permissions text[], since timestamptz, granted_by bigint,
               ended_at timestamptz, ended_by bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_actor bigint := carm_internal.require_active_actor();
  t record;
BEGIN
  t := carm_internal.target(target);
  RETURN QUERY SELECT * FROM carm_internal.explain_paths(v_actor, t.business_id, t.program_id);
END
$$;
COMMENT ON FUNCTION carm.my_access(text) IS
  'The acting user''s own paths to a BN9/BN15, as explain_access shows them: why can or can''t I (an active actor)';

-- who_has_access: one row shape.  kind says what a row is:
--   employee      the business's own employee (V1), with what it grants here
--   proxy         a service provider's person through an active relationship
--                 (R6, R7, G4), with what it grants here
--   row-only      V3/V4: a provider's PAM (SPMGR) or a BAM after expiry or end
--                 (EXPIRED), who reaches only rows the provider submitted
--   program       (on a BN9) a path to some program accounts of the business
--                 that grants nothing on the business account itself
--   relationship  an active relationship itself (user_id NULL)
-- The users of employee and proxy rows are exactly those for whom
-- user_has_access answers true for some permission on the target, and their
-- permissions are exactly those (test/pgtap/reports_property.sql).
CREATE OR REPLACE FUNCTION carm_internal.who_has_access(target text, p_admin boolean)
RETURNS TABLE (user_id bigint, full_name text, role text, via text, scope text, path text,
               expires_at timestamptz, kind text, permissions text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t record;
  v_admin boolean;
BEGIN
  t := carm_internal.target(target);
  v_admin := carm_internal.require_admin_or_bam(t.business_id, p_admin);
  RETURN QUERY
  WITH cand AS (   -- who may have a path: the resolver decides
    SELECT e.user_id AS uid FROM carm.employee e WHERE e.business_id = t.business_id
    UNION
    SELECT e.user_id FROM carm.relationship r JOIN carm.employee e ON e.business_id = r.provider_id
    WHERE v_admin AND r.client_id = t.business_id AND r.status IN ('active', 'expired', 'ended')
  ),
  x AS (
    SELECT c.uid, a.*
    FROM cand c CROSS JOIN LATERAL carm_internal.access_paths(c.uid, t.business_id, t.program_id) a
    WHERE a.in_force
      AND (v_admin OR a.source = 'employee')   -- a client BAM: its own employees
  )
  SELECT * FROM (
    SELECT x.uid, u.full_name, x.role, vb.bn9,
           carm_internal.path_scope(x.uid, x.source, x.granted_role, x.provider_bam, x.relationship_id,
                                    x.group_id, x.all_programs, x.program_ids),
           carm_internal.path_label(x.source, x.granted_role, x.provider_bam, x.relationship_id, x.group_id),
           x.expires_at,
           CASE WHEN x.source = 'employee' THEN 'employee'
                WHEN x.role IN ('EXPIRED', 'SPMGR') THEN 'row-only'
                WHEN cardinality(x.permissions) = 0 THEN 'program'
                ELSE 'proxy' END,
           x.permissions
    FROM x JOIN carm.app_user u ON u.id = x.uid JOIN carm.business vb ON vb.id = x.via_business_id
    UNION ALL
    -- the active relationships themselves (not expired by time, R9)
    SELECT NULL::bigint, NULL::text, r.access_type, pb.bn9,
           CASE WHEN r.access_type = 'BUSINESS' THEN 'all programs'
                ELSE array_to_string(carm_internal.bn15s(r.programs), ', ') END,
           'relationship #' || r.id
             || CASE WHEN r.see_client THEN ', sees client submissions' ELSE '' END
             || CASE WHEN r.see_other THEN ', sees other submissions' ELSE '' END,
           r.expires_at, 'relationship'::text, NULL::text[]
    FROM carm.relationship r JOIN carm.business pb ON pb.id = r.provider_id
    WHERE r.client_id = t.business_id AND r.status = 'active'
      AND (r.expires_at IS NULL OR r.expires_at > now())
      AND (t.program_id IS NULL OR r.access_type = 'BUSINESS' OR t.program_id = ANY (r.programs))
  ) w (w_uid, w_name, w_role, w_via, w_scope, w_path, w_exp, w_kind, w_perms)
  ORDER BY w.w_uid NULLS LAST, w.w_via, w.w_path, w.w_role;
END
$$;

-- The report's API and its admin and actor variants (carm_internal.define_admin_split, §2).
SELECT carm_internal.define_admin_split(
  'who_has_access',
  params => 'target text',
  api_params => 'target text',
  args => 'target',
  returns => 'TABLE (user_id bigint, full_name text, role text, via text, scope text, path text, expires_at timestamptz, kind text, permissions text[])',
  admin_comment => 'Internal: carm.who_has_access() for carm_admin (everyone); EXECUTE for carm_admin only',
  actor_comment => 'Internal: carm.who_has_access() for the acting user, without admin powers');
COMMENT ON FUNCTION carm.who_has_access(text) IS
  'Who holds access to a BN9/BN15, one row shape with a kind (employee, proxy, row-only, program, relationship) and the permissions each path grants there: for a client BAM its employees and active relationships; for carm_admin everyone';

-- §2: the admin variants of the reports are for carm_admin only; the actor
-- variants are for every caller of the API functions (PUBLIC, see 90_privileges).
REVOKE ALL ON FUNCTION carm_internal.explain_access_admin(bigint, text),
  carm_internal.who_has_access_admin(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.explain_access_admin(bigint, text),
  carm_internal.who_has_access_admin(text) TO carm_admin;

COMMENT ON FUNCTION carm_internal.path_label(text, text, boolean, bigint, bigint) IS
  'Internal (§8): how the reports name a path (employee role, relationship, assignment or group)';
COMMENT ON FUNCTION carm_internal.path_scope(bigint, text, text, boolean, bigint, bigint, boolean, bigint[]) IS
  'Internal (§8): the scope of a path as the reports show it (all programs, or the BN15s it covers)';
COMMENT ON FUNCTION carm_internal.audit_scope(jsonb) IS
  'Internal (§8): the BN15s recorded in an audit event''s details, as text (NULL: all programs)';
COMMENT ON FUNCTION carm_internal.require_explainer(bigint, bigint, boolean) IS
  'Internal (§8, §10): carm_admin, or a BAM of the business for the users who reach it or once did; 42501 otherwise';
-- §8 carm.protect(): row-level security on an application's own tables.
--
-- The policies call the C checks with the table's function as a constant and
-- contain no subquery (so the same policy also works on Citus distributed
-- tables); the planner support of carm_internal.row_visible turns the check into an
-- index condition on the program column (src/planner.c).

-- 42501 unless the role the code runs as owns the table, as ALTER TABLE,
-- CREATE POLICY and CREATE TRIGGER would require of it (§2).  The SECURITY
-- INVOKER API functions carm.protect() and carm.unprotect() call it, where
-- current_user is the role their caller's code runs as; the SECURITY DEFINER
-- functions that do the work call it again, where current_user is the
-- extension's owner and the outer role must own the table too: a carm_admin
-- member who calls them directly, skipping the API, acts for no one else.
CREATE OR REPLACE FUNCTION carm_internal.require_table_owner(p_tbl regclass, p_owner oid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_owner IS NULL OR NOT pg_has_role(current_user, p_owner, 'USAGE')
     OR NOT pg_has_role(carm_internal.caller_role(), p_owner, 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of table %', p_tbl USING ERRCODE = '42501',
      HINT = 'carm.protect() and carm.unprotect() act for the table''s owner.';
  END IF;
END
$$;

-- The API: SECURITY INVOKER, so that carm_admin and the table's owner are
-- judged on the role the calling code runs as (§2); the work is done by
-- carm_internal.protect_table(), granted to carm_admin only.
-- Records one relation under its protected root, with the row-level-security
-- flags it had before its first protection (unprotect() restores them).
CREATE OR REPLACE FUNCTION carm_internal.record_protection(p_rel regclass, p_root regclass,
                                                          p_program name, p_submitter name, p_fn text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO carm.protected_table (relid, root, program_column, submitter_column, function,
                                    had_rls, had_force_rls)
  SELECT p_rel, p_root, p_program, p_submitter, p_fn, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_catalog.pg_class c WHERE c.oid = p_rel
  ON CONFLICT (relid) DO UPDATE
    SET root = excluded.root, program_column = excluded.program_column,
        submitter_column = excluded.submitter_column, function = excluded.function,
        protected_at = now();
$$;
COMMENT ON FUNCTION carm_internal.record_protection(regclass, regclass, name, name, text) IS
  'Internal (§8): records a relation under its protected root with its earlier row-level-security flags';

-- The per-relation part of protection, shared by carm.protect() and by the
-- event trigger that protects partitions created or attached later (§8):
-- records the relation under its root with the row-level-security flags it
-- had before its first protection (for unprotect()), enables and forces
-- row-level security and installs the four policies, replacing any it had.
-- Idempotent.  The caller has checked ownership.
CREATE OR REPLACE FUNCTION carm_internal.protect_relation(p_rel regclass, p_root regclass,
                                                         p_program name, p_submitter name, p_fn text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_visible text := format('carm_internal.row_visible(%I, %I, %L)', p_program, p_submitter, p_fn);
  v_writable text := format('carm_internal.row_writable(%I, %I, %L)', p_program, p_submitter, p_fn);
  v_policy name;
BEGIN
  -- recorded first: the ALTER TABLEs below fire the partition event trigger,
  -- which then finds the relation protected already
  PERFORM carm_internal.record_protection(p_rel, p_root, p_program, p_submitter, p_fn);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_rel);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_rel);
  -- (the ALTER TABLE of a partitioned table may have protected its
  -- partitions already, through the event trigger)
  FOR v_policy IN SELECT pol.polname FROM pg_catalog.pg_policy pol
                  WHERE pol.polrelid = p_rel
                    AND pol.polname IN ('carm_select', 'carm_insert', 'carm_update', 'carm_delete') LOOP
    EXECUTE format('DROP POLICY %I ON %s', v_policy, p_rel);
  END LOOP;
  EXECUTE format('CREATE POLICY carm_select ON %s FOR SELECT USING (%s)', p_rel, v_visible);
  EXECUTE format('CREATE POLICY carm_insert ON %s FOR INSERT WITH CHECK (%s)', p_rel, v_writable);
  EXECUTE format('CREATE POLICY carm_update ON %s FOR UPDATE USING (%s) WITH CHECK (%s)',
                 p_rel, v_writable, v_writable);
  EXECUTE format('CREATE POLICY carm_delete ON %s FOR DELETE USING (%s)', p_rel, v_writable);
END
$$;
COMMENT ON FUNCTION carm_internal.protect_relation(regclass, regclass, name, name, text) IS
  'Internal (§8): records one relation under its protected root, forces row-level security on it and installs the policies';

-- The relation and every relation that inherits from it, partitions and
-- INHERITS children alike, parents first (pg_inherits holds both).
CREATE OR REPLACE FUNCTION carm_internal.inheritance_tree(p_rel regclass) RETURNS regclass[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE tree(relid, level) AS (
    SELECT p_rel::oid, 0
    UNION
    SELECT i.inhrelid, t.level + 1 FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid
  )
  SELECT array_agg(relid::regclass ORDER BY level, relid::regclass::text) FROM tree;
$$;
COMMENT ON FUNCTION carm_internal.inheritance_tree(regclass) IS
  'Internal (§8): a table and every table that inherits from it, partitions and INHERITS children, parents first';
-- carm.protect() runs as its caller and checks the owner of each relation
REVOKE ALL ON FUNCTION carm_internal.inheritance_tree(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.inheritance_tree(regclass) TO carm_admin;

CREATE OR REPLACE FUNCTION carm.protect(tbl regclass, program_column name, submitter_column name,
                             function text)
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rel regclass;
BEGIN
  IF NOT carm_internal.current_role_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
  END IF;
  FOREACH v_rel IN ARRAY carm_internal.inheritance_tree(tbl) LOOP
    PERFORM carm_internal.require_table_owner(v_rel, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = v_rel));
  END LOOP;
  PERFORM carm_internal.protect_table(tbl, program_column, submitter_column, function);
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.protect_table(tbl regclass, program_column name, submitter_column name,
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
  v_rels regclass[];
  v_rel regclass;
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.not_null(tbl, 'tbl');
  PERFORM carm_internal.not_null(program_column, 'program_column');
  PERFORM carm_internal.not_null(submitter_column, 'submitter_column');
  v_fn := carm_internal.function_name(carm_internal.not_blank(function, 'function', 64));

  SELECT n.nspname, c.relkind, c.relowner INTO v_nsp, v_kind, v_owner
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl;
  IF v_nsp IN ('pg_catalog', 'information_schema', 'pg_toast') OR tbl::oid < 16384 THEN
    RAISE EXCEPTION 'cannot protect system catalog %', tbl USING ERRCODE = '42501';
  END IF;
  -- This function runs as the extension owner: without this check any
  -- carm_admin could add policies and triggers to, and with unprotect()
  -- switch off row-level security of, any table of the database.
  PERFORM carm_internal.require_table_owner(tbl, v_owner);
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
      RAISE EXCEPTION 'column "%" of % does not exist', left(v_col.colname, 32), tbl USING ERRCODE = '42703';
    END IF;
    IF v_col.atttypid <> 'bigint'::regtype THEN
      RAISE EXCEPTION 'column "%" of % must be bigint, not %', left(v_col.colname, 32), tbl,
        format_type(v_col.atttypid, NULL) USING ERRCODE = '42804',
        HINT = 'The program column holds carm.program_id(bn15), the submitter column carm.business_id(bn9).';
    END IF;
  END LOOP;

  -- A partitioned table's policies do not apply to queries that name a
  -- partition: every partition gets them too (partitions created or attached
  -- later get them from the event trigger carm_protect_partitions, §8).  The row trigger is created on
  -- the table only: PostgreSQL clones it to every partition, present and
  -- future.
  -- A table that INHERITS from it is covered the same way (reading the
  -- child directly must not skip the policies), except that its trigger is
  -- not cloned: each such child gets its own.
  v_rels := carm_internal.inheritance_tree(tbl);

  -- idempotent: drop what an earlier call installed, then install
  PERFORM carm_internal.drop_protection(tbl);
  -- every relation is checked and recorded before any is altered: the
  -- partition event trigger, which the ALTER TABLEs fire, then has nothing
  -- left to do
  FOREACH v_rel IN ARRAY v_rels LOOP
    PERFORM carm_internal.require_table_owner(v_rel, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = v_rel));
    PERFORM carm_internal.record_protection(v_rel, tbl, program_column, submitter_column, v_fn);
  END LOOP;
  FOREACH v_rel IN ARRAY v_rels LOOP
    PERFORM carm_internal.protect_relation(v_rel, tbl, program_column, submitter_column, v_fn);
  END LOOP;
  -- V5: fills the submitter and refuses a write with its reason (§8); it
  -- reads the columns from each relation's own carm_insert policy, so
  -- renames keep it working
  FOREACH v_rel IN ARRAY v_rels LOOP
    IF v_rel = tbl OR NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = v_rel) THEN
      EXECUTE format('CREATE TRIGGER carm_check_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                     'EXECUTE FUNCTION carm_internal.check_write()', v_rel);
    END IF;
  END LOOP;

  IF NOT EXISTS (
    SELECT FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
    JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attnum = i.indkey[0]
    WHERE i.indrelid = tbl AND a.attname = program_column) THEN
    RAISE NOTICE '% has no btree index on %: every query will scan the whole table', tbl, program_column
      USING HINT = format('CREATE INDEX ON %s (%I)', tbl, program_column);
  END IF;
  PERFORM carm_internal.audit('table_protected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text, 'program_column', program_column,
                                         'submitter_column', submitter_column, 'function', v_fn));
END
$$;
COMMENT ON FUNCTION carm_internal.protect_table(regclass, name, name, text) IS
  'Internal: the work of carm.protect(); EXECUTE for carm_admin only';
COMMENT ON FUNCTION carm.protect(regclass, name, name, text) IS
  'Enable and force row-level security on an application table with policies implementing V1-V5 (carm_admin)';

-- Removes the policies and the trigger protect() installed on a table and on
-- the partitions recorded with it; leaves the records and the RLS flags.
CREATE OR REPLACE FUNCTION carm_internal.drop_protection(tbl regclass) RETURNS void
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
  -- carm_fill_submitter: the 1.0 trigger
  FOR r IN SELECT tg.tgname, tg.tgrelid::regclass AS rel FROM pg_catalog.pg_trigger tg
           WHERE (tg.tgrelid = tbl
                  OR tg.tgrelid IN (SELECT t.relid FROM carm.protected_table t WHERE t.root = tbl))
             AND tg.tgname IN ('carm_check_write', 'carm_fill_submitter')
             AND tg.tgparentid = 0 LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION carm.unprotect(tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT carm_internal.current_role_is_admin() THEN
    RAISE EXCEPTION 'permission denied: carm_admin only' USING ERRCODE = '42501';
  END IF;
  IF tbl IS NULL THEN
    RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
  END IF;
  PERFORM carm_internal.require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  PERFORM carm_internal.unprotect_table(tbl);
END
$$;

CREATE OR REPLACE FUNCTION carm_internal.unprotect_table(tbl regclass) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r carm.protected_table;
BEGIN
  PERFORM carm_internal.require_admin();
  PERFORM carm_internal.not_null(tbl, 'tbl');
  PERFORM carm_internal.require_table_owner(tbl, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl));
  IF NOT EXISTS (SELECT FROM carm.protected_table t WHERE t.relid = tbl AND t.root = tbl) THEN
    RAISE EXCEPTION '% is not protected by carm_deleg', tbl USING ERRCODE = '55000';
  END IF;
  PERFORM carm_internal.drop_protection(tbl);
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
  PERFORM carm_internal.audit('table_unprotected', NULL, NULL, NULL, NULL, NULL,
                      jsonb_build_object('table', tbl::text));
END
$$;
COMMENT ON FUNCTION carm_internal.unprotect_table(regclass) IS
  'Internal: the work of carm.unprotect(); EXECUTE for carm_admin only';
COMMENT ON FUNCTION carm.unprotect(regclass) IS
  'Undo carm.protect(): drop its policies and trigger, give the table (and its partitions) back the row-level-security flags they had (carm_admin)';

CREATE OR REPLACE FUNCTION carm.protected_tables()
RETURNS TABLE (tbl regclass, program_column name, submitter_column name, function text,
               protected_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM carm_internal.require_admin();   -- §2: never in a security-restricted operation
  RETURN QUERY
    SELECT t.relid, t.program_column, t.submitter_column, t.function, t.protected_at
    FROM carm.protected_table t WHERE t.relid = t.root ORDER BY t.relid::text;
END
$$;
COMMENT ON FUNCTION carm.protected_tables() IS 'Tables protected with carm.protect() (carm_admin)';

REVOKE ALL ON FUNCTION carm.protect(regclass, name, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION carm.protected_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protected_tables() TO carm_admin;
REVOKE ALL ON FUNCTION carm.unprotect(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.protect(regclass, name, name, text),
  carm.unprotect(regclass) TO carm_admin;
REVOKE ALL ON FUNCTION carm_internal.protect_table(regclass, name, name, text),
  carm_internal.unprotect_table(regclass), carm_internal.require_table_owner(regclass, oid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.protect_table(regclass, name, name, text),
  carm_internal.unprotect_table(regclass), carm_internal.require_table_owner(regclass, oid),
  carm_internal.caller_role() TO carm_admin;

-- 1.0 protected tables had a BEFORE INSERT trigger carm_fill_submitter
-- that named the columns; 1.1 replaces it with carm_check_write (§8: renames,
-- write refusals with a reason).  A no-op on a fresh install.
DO $check_write$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT t.relid FROM carm.protected_table t
           JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = t.relid AND tg.tgname = 'carm_fill_submitter'
                                         AND tg.tgparentid = 0
           WHERE t.relid = t.root LOOP
    EXECUTE format('DROP TRIGGER carm_fill_submitter ON %s', r.relid);
    EXECUTE format('CREATE TRIGGER carm_check_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION carm_internal.check_write()', r.relid);
  END LOOP;
END
$check_write$;
DROP FUNCTION IF EXISTS carm_internal.fill_submitter();
-- Event triggers: DDL on application tables that must not open or orphan a
-- protection (§8, §12).
--
--   carm_protect_partitions  ddl_command_end  a partition created or attached
--                            under a protected table, or a table inheriting
--                            from one, gets the policies in the same command
--                            (§8)
--   carm_forget_dropped      sql_drop         a dropped protected table leaves
--                            no registration behind
--   carm_drop_guard          ddl_command_start DROP EXTENSION carm_deleg (and
--                            DROP SCHEMA carm / carm_internal) is refused while
--                            tables are protected (§12; src/ddl_guard.c)
--
-- The functions run as the extension owner (SECURITY DEFINER, search_path
-- pinned): the DDL may be issued by a table owner who is no superuser, and
-- the policies must be installed whoever issued it.  They act only on
-- relations whose ancestor (or themselves) carm.protect() recorded.
-- CREATE EVENT TRIGGER has no OR REPLACE: each is created when missing, so
-- this file replays in the upgrade script.

-- One relation that became a partition or a child of a protected table:
-- protected under that table's root, with the root's columns and function;
-- an INHERITS child also gets its own write trigger (PostgreSQL clones
-- triggers to partitions only).  Nothing to do when it already is.
CREATE OR REPLACE FUNCTION carm_internal.protect_descendant(p_rel regclass, p_kind "char",
                                                           p_root carm.protected_table,
                                                           p_event text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT FROM carm.protected_table x WHERE x.relid = p_rel AND x.root = p_root.root) THEN
    RETURN;
  END IF;
  IF p_kind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION '% cannot become part of protected table %', p_rel, p_root.root
      USING ERRCODE = '42809',
            DETAIL = 'Only tables can carry the row-level-security policies of carm_deleg.';
  END IF;
  IF EXISTS (SELECT FROM carm.protected_table x WHERE x.relid = p_rel) THEN
    PERFORM carm_internal.drop_protection(p_rel);      -- its earlier, own protection
  END IF;
  PERFORM carm_internal.protect_relation(p_rel, p_root.root, p_root.program_column,
                                         p_root.submitter_column, p_root.function);
  IF NOT (SELECT c.relispartition FROM pg_catalog.pg_class c WHERE c.oid = p_rel)
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger tg
                     WHERE tg.tgrelid = p_rel AND tg.tgname = 'carm_check_write') THEN
    EXECUTE format('CREATE TRIGGER carm_check_write BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION carm_internal.check_write()', p_rel);
  END IF;
  PERFORM carm_internal.audit(p_event, NULL, NULL, NULL, NULL, NULL,
                              jsonb_build_object('table', p_rel::text, 'root', p_root.root::text,
                                                 'function', p_root.function));
END
$$;
COMMENT ON FUNCTION carm_internal.protect_descendant(regclass, "char", carm.protected_table, text) IS
  'Internal (§8): protects a new partition or INHERITS child under its protected ancestor''s root';

-- §8: protects at once every partition created (CREATE TABLE ... PARTITION
-- OF) or attached (ALTER TABLE ... ATTACH PARTITION) under a protected table,
-- at any depth, and every table created with INHERITS or altered to INHERIT
-- a protected table, with the protected root's policies — in the same
-- command, so no transaction ever sees such a table without them.  A
-- relation that was protected on its own before is re-protected under the
-- new root.  A foreign table cannot carry policies: attaching one under a
-- protected table is refused.
CREATE OR REPLACE FUNCTION carm_internal.protect_new_partitions() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
  p carm.protected_table;
BEGIN
  -- partitions, parents first
  FOR r IN
    SELECT DISTINCT t.relid, c.relkind,
           (SELECT count(*) FROM pg_catalog.pg_partition_ancestors(t.relid)) AS depth
    FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
    CROSS JOIN LATERAL pg_catalog.pg_partition_tree(cmd.objid) t
    JOIN pg_catalog.pg_class c ON c.oid = t.relid
    WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND cmd.object_type = 'table'
      AND c.relispartition
    ORDER BY depth, t.relid
  LOOP
    -- the nearest protected ancestor, if any
    SELECT pt.* INTO p
    FROM pg_catalog.pg_partition_ancestors(r.relid) WITH ORDINALITY AS a(relid, n)
    JOIN carm.protected_table pt ON pt.relid = a.relid
    WHERE a.relid <> r.relid
    ORDER BY a.n
    LIMIT 1;
    CONTINUE WHEN NOT FOUND;
    PERFORM carm_internal.protect_descendant(r.relid, r.relkind, p, 'partition_protected');
  END LOOP;

  -- INHERITS children
  FOR r IN
    SELECT DISTINCT cmd.objid AS relid, c.relkind
    FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
    JOIN pg_catalog.pg_class c ON c.oid = cmd.objid
    WHERE cmd.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND cmd.object_type = 'table' AND NOT c.relispartition
      AND EXISTS (SELECT FROM pg_catalog.pg_inherits i WHERE i.inhrelid = cmd.objid)
  LOOP
    WITH RECURSIVE anc(relid, n) AS (
      SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = r.relid
      UNION
      SELECT i.inhparent, a.n + 1 FROM anc a JOIN pg_catalog.pg_inherits i ON i.inhrelid = a.relid
    )
    SELECT pt.* INTO p FROM anc JOIN carm.protected_table pt ON pt.relid = anc.relid
    ORDER BY anc.n LIMIT 1;
    CONTINUE WHEN NOT FOUND;
    PERFORM carm_internal.protect_descendant(r.relid, r.relkind, p, 'child_table_protected');
  END LOOP;
END
$$;
COMMENT ON FUNCTION carm_internal.protect_new_partitions() IS
  'Internal (§8): event trigger protecting partitions created or attached under a protected table, and tables inheriting from one';

-- A dropped relation's registration goes with it, so that protected_tables()
-- lists only live tables and protect() of a new table of the same name
-- starts clean.  A partition detached earlier from a root that is dropped now
-- keeps its policies (closed) and becomes its own root, so that unprotect()
-- still works on it.
CREATE OR REPLACE FUNCTION carm_internal.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    DELETE FROM carm.protected_table t
    USING pg_catalog.pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
      AND t.relid::oid = d.objid
    RETURNING t.relid::oid AS relid, t.root::oid AS root, d.object_identity
  LOOP
    IF r.relid = r.root THEN
      PERFORM carm_internal.audit('protected_table_dropped', NULL, NULL, NULL, NULL, NULL,
                                  jsonb_build_object('table', r.object_identity));
    END IF;
  END LOOP;
  UPDATE carm.protected_table t SET root = t.relid
  WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.root::oid);
END
$$;
COMMENT ON FUNCTION carm_internal.forget_dropped_tables() IS
  'Internal (§8): event trigger removing the registration of dropped protected tables';

-- §12: DROP EXTENSION carm_deleg (with or without CASCADE) and DROP SCHEMA
-- carm / carm_internal CASCADE are refused while tables are protected: a
-- cascade would leave them with row-level security forced and no policy, and
-- delete the audit trail.  Written in C: it reads the statement itself.
CREATE OR REPLACE FUNCTION carm_internal.ddl_guard() RETURNS event_trigger
LANGUAGE c SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'carm_ddl_guard';
COMMENT ON FUNCTION carm_internal.ddl_guard() IS
  'Internal (§12): event trigger refusing to drop the extension or its schemas while tables are protected';

DO $evt$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'carm_protect_partitions') THEN
    CREATE EVENT TRIGGER carm_protect_partitions ON ddl_command_end
      WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
      EXECUTE FUNCTION carm_internal.protect_new_partitions();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'carm_forget_dropped') THEN
    CREATE EVENT TRIGGER carm_forget_dropped ON sql_drop
      EXECUTE FUNCTION carm_internal.forget_dropped_tables();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger WHERE evtname = 'carm_drop_guard') THEN
    CREATE EVENT TRIGGER carm_drop_guard ON ddl_command_start
      WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
      EXECUTE FUNCTION carm_internal.ddl_guard();
  END IF;
END
$evt$;
COMMENT ON EVENT TRIGGER carm_protect_partitions IS
  'carm_deleg (§8): partitions created or attached under a protected table are protected at once';
COMMENT ON EVENT TRIGGER carm_forget_dropped IS
  'carm_deleg: a dropped protected table leaves no registration behind';
COMMENT ON EVENT TRIGGER carm_drop_guard IS
  'carm_deleg (§12): refuses DROP EXTENSION carm_deleg while tables are protected';
-- Citus (README "Citus"): the delegation state on every node.
--
-- Policies on a distributed table run on the workers, which must read the
-- same grants as the coordinator: every state table the decisions or the
-- API read becomes a Citus reference table, a copy on every node written by
-- two-phase commit.  Two tables stay local to each node, because their rows
-- hold node-local oids: carm.login_binding (bindings are not honoured under
-- Citus: src/actor.c) and carm.protected_table (each node records what it
-- protected; Citus creates the shards' policies and triggers from the
-- coordinator's).

CREATE OR REPLACE FUNCTION carm_internal.citus_active() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_citus_active_sql';
COMMENT ON FUNCTION carm_internal.citus_active() IS
  'Internal: is Citus loaded and installed in this database?';

CREATE OR REPLACE FUNCTION carm_internal.citus_is_worker() RETURNS boolean
  LANGUAGE c STABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_citus_is_worker_sql';
COMMENT ON FUNCTION carm_internal.citus_is_worker() IS
  'Internal: is this node a Citus worker (not the coordinator)?';

-- The state tables Citus replicates, in foreign-key order.
CREATE OR REPLACE FUNCTION carm_internal.replicated_tables() RETURNS regclass[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['carm.business', 'carm.app_user', 'carm.program', 'carm.employee',
               'carm.access_request', 'carm.relationship', 'carm.client_assignment',
               'carm.client_group', 'carm.group_client', 'carm.group_employee',
               'carm.group_request', 'carm.audit_event', 'carm.notification']::regclass[]
$$;
COMMENT ON FUNCTION carm_internal.replicated_tables() IS
  'Internal: the state tables that carm.distribute_state() makes Citus reference tables, in foreign-key order';

-- Is the state distributed (every replicated table a reference table)?
CREATE OR REPLACE FUNCTION carm_internal.state_is_distributed() RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_count int;
BEGIN
  IF NOT carm_internal.citus_active() THEN
    RETURN false;
  END IF;
  EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE logicalrelid = ANY ($1)'
    INTO v_count USING carm_internal.replicated_tables();
  RETURN v_count > 0;
END
$$;
COMMENT ON FUNCTION carm_internal.state_is_distributed() IS
  'Internal: has carm.distribute_state() made the state tables reference tables?';

-- Settings some functions need under Citus, as SET clauses, so that they
-- hold for the function only.  Run below by the install and update scripts
-- on every node (Citus runs those on the workers too, and CREATE OR REPLACE
-- FUNCTION drops the clauses), and by distribute_state() on every node, for
-- databases where carm_deleg came before Citus.
--
-- * The resolver must not be inlined: Citus plans a query on a reference
--   table before PostgreSQL would inline a SQL function into it, and
--   refuses a parameterized query into which one was inlined afterwards.
--   Only under Citus: on one node, inlining is what keeps a cold point
--   check near 50 µs.
-- * protect() and unprotect() change a distributed table's shards in
--   parallel, then write the audit trail, a reference table: Citus wants
--   one connection per node for both (sequential mode), and the write
--   trigger on the shards (unsafe triggers: it reads only the row and the
--   actor's grants).
-- * The checks are PARALLEL RESTRICTED: a parallel worker of a shard query
--   cannot run the Citus query that loads the actor's grants, so the
--   policy is evaluated in the leader, above the Gather.
CREATE OR REPLACE FUNCTION carm_internal.adapt_to_citus() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f regprocedure;
BEGIN
  IF NOT carm_internal.citus_active() THEN
    RETURN;
  END IF;
  ALTER FUNCTION carm_internal.grants(bigint) SET search_path = pg_catalog, pg_temp;
  FOREACH f IN ARRAY ARRAY['carm_internal.protect_table(regclass, name, name, text)',
                           'carm_internal.unprotect_table(regclass)']::regprocedure[] LOOP
    EXECUTE format('ALTER FUNCTION %s SET citus.multi_shard_modify_mode = sequential', f);
    EXECUTE format('ALTER FUNCTION %s SET citus.enable_unsafe_triggers = on', f);
  END LOOP;
  FOREACH f IN ARRAY ARRAY['carm_internal.row_visible(bigint, bigint, text)',
                           'carm_internal.row_writable(bigint, bigint, text)',
                           'carm_internal.visible_programs(text)',
                           'carm.has_access(text, text)',
                           'carm.user_has_access(bigint, text, text)']::regprocedure[] LOOP
    EXECUTE format('ALTER FUNCTION %s PARALLEL RESTRICTED', f);
  END LOOP;
END
$$;
COMMENT ON FUNCTION carm_internal.adapt_to_citus() IS
  'Internal: under Citus, the settings some functions need (the resolver not inlined; protect() in sequential mode; the checks parallel restricted)';
SELECT carm_internal.adapt_to_citus();

CREATE OR REPLACE FUNCTION carm.distribute_state() RETURNS SETOF regclass
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  t regclass;
  v_done regclass[] := '{}';
BEGIN
  PERFORM carm_internal.require_admin();
  IF NOT carm_internal.citus_active() THEN
    RAISE EXCEPTION 'Citus is not installed in this database'
      USING ERRCODE = '55000',
            HINT = 'Add citus before carm_deleg to shared_preload_libraries and CREATE EXTENSION citus.';
  END IF;
  IF carm_internal.citus_is_worker() THEN
    RAISE EXCEPTION 'carm.distribute_state() runs on the Citus coordinator'
      USING ERRCODE = '55000';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node n WHERE n.groupid = 0) THEN
    RAISE EXCEPTION 'the Citus coordinator is not in its own metadata'
      USING ERRCODE = '55000',
            DETAIL = 'The state triggers that must run once run on the coordinator''s placement of each reference table.',
            HINT = 'SELECT citus_set_coordinator_host(''<host>'', <port>);';
  END IF;
  -- the state tables keep their triggers (invalidation on every node, the
  -- hierarchy rules once, on the coordinator: src/citus.c), and the two
  -- node-local tables keep their foreign keys to replicated ones
  PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
  PERFORM set_config('citus.enable_local_reference_table_foreign_keys', 'off', true);
  FOREACH t IN ARRAY carm_internal.replicated_tables() LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid = t) THEN
      PERFORM create_reference_table(t);
      v_done := v_done || t;
      RETURN NEXT t;
    END IF;
  END LOOP;
  -- the rows copied into the placements stay on disk under the local
  -- tables, invisible; free them, except under carm.app_user, which the
  -- local carm.login_binding references (Citus would refuse), and under the
  -- append-only audit trail
  FOREACH t IN ARRAY v_done LOOP
    IF t NOT IN ('carm.app_user'::regclass, 'carm.audit_event'::regclass) THEN
      PERFORM truncate_local_data_after_distributing_table(t);
    END IF;
  END LOOP;
  PERFORM carm_internal.adapt_to_citus();
  PERFORM run_command_on_workers('SELECT carm_internal.adapt_to_citus()');
  IF cardinality(v_done) > 0 THEN
    PERFORM carm_internal.audit('state_distributed', NULL, NULL, NULL, NULL, NULL,
                                jsonb_build_object('tables', v_done::text[]));
  END IF;
END
$$;
COMMENT ON FUNCTION carm.distribute_state() IS
  'carm_admin, under Citus: makes the delegation state Citus reference tables (idempotent); returns the tables it converted';
REVOKE ALL ON FUNCTION carm.distribute_state() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.distribute_state() TO carm_admin;
-- §12 monitoring: cumulative counters per database, in the spirit of
-- pg_stat_statements (src/stats.c).  They need the library in
-- shared_preload_libraries; without it reading the view raises 55000.

CREATE OR REPLACE FUNCTION carm_internal.stats(
    OUT database text,
    OUT point_checks bigint,
    OUT row_checks bigint,
    OUT store_hits bigint,
    OUT full_loads bigint,
    OUT business_loads bigint,
    OUT load_ms double precision,
    OUT invalidations bigint,
    OUT decision_tables bigint,
    OUT maintenance_runs bigint,
    OUT maintenance_last_run timestamptz,
    OUT maintenance_last_ms double precision,
    OUT maintenance_last_result text,
    OUT stats_reset timestamptz)
  RETURNS SETOF record
  LANGUAGE c VOLATILE PARALLEL RESTRICTED
  AS 'MODULE_PATHNAME', 'carm_stats_sql';
COMMENT ON FUNCTION carm_internal.stats() IS
  'Internal: the counters behind the view carm.stats';

CREATE OR REPLACE VIEW carm.stats AS SELECT * FROM carm_internal.stats();
COMMENT ON VIEW carm.stats IS
  'Monitoring, per database since the last carm.stats_reset(): point checks (has_access, user_has_access), row checks of protected tables, point checks answered from the per-backend store without a query, complete and one-business loads of a user''s grants and the time they took, invalidations applied, decision tables derived, and the maintenance worker''s runs with the last one''s start, duration and result.  Needs carm_deleg in shared_preload_libraries.';
COMMENT ON COLUMN carm.stats.point_checks IS 'calls of has_access and user_has_access';
COMMENT ON COLUMN carm.stats.row_checks IS 'row checks of protected tables (rows read under the policies)';
COMMENT ON COLUMN carm.stats.store_hits IS 'point checks answered from a backend''s store of grants without a query';
COMMENT ON COLUMN carm.stats.full_loads IS 'loads of every grant of a user (scans; busy actors)';
COMMENT ON COLUMN carm.stats.business_loads IS 'loads of a user''s grants on one or a few businesses (point checks, point reads, invalidations applied)';
COMMENT ON COLUMN carm.stats.load_ms IS 'time spent in those loads';
COMMENT ON COLUMN carm.stats.invalidations IS 'changed businesses whose grants a store reloaded after another transaction committed a change';
COMMENT ON COLUMN carm.stats.decision_tables IS 'per-function decision tables derived for the row check';
COMMENT ON COLUMN carm.stats.maintenance_runs IS 'runs of carm.run_maintenance() by the background worker';
COMMENT ON COLUMN carm.stats.maintenance_last_result IS '"ok" and what it did, or "error: " and the message';

CREATE OR REPLACE FUNCTION carm.stats_reset() RETURNS void
  LANGUAGE c VOLATILE PARALLEL UNSAFE
  AS 'MODULE_PATHNAME', 'carm_stats_reset_sql';
COMMENT ON FUNCTION carm.stats_reset() IS
  'Sets every counter of carm.stats back to zero (carm_admin)';

REVOKE ALL ON carm.stats FROM PUBLIC;
GRANT SELECT ON carm.stats TO carm_admin, pg_read_all_stats;
REVOKE ALL ON FUNCTION carm_internal.stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.stats() TO carm_admin, pg_read_all_stats;
REVOKE ALL ON FUNCTION carm.stats_reset() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm.stats_reset() TO carm_admin;
-- Closing statements: table privileges, dumps.

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
    WHERE p.pronamespace = 'carm_internal'::regnamespace
      AND p.proname NOT IN ('row_visible', 'row_writable', 'visible_programs',
                            'bn9_is_valid', 'bn15_is_valid',
                            -- §2: reports open to every role, without admin powers
                            'current_role_is_admin', 'audit_events_actor',
                            'who_has_access_actor', 'explain_access_actor',
                            -- trigger functions, which cannot be called
                            -- directly: the event triggers run as whoever
                            -- issues the DDL, and PostgreSQL checks EXECUTE on
                            -- the write trigger's function when it clones it
                            -- to a partition created by the table's owner
                            'protect_new_partitions', 'forget_dropped_tables', 'ddl_guard',
                            'check_write')
  LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
  -- explicitly, so that a 1.0 database, where 1.0 revoked it, ends the same
  FOR f IN
    SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
    WHERE p.pronamespace = 'carm_internal'::regnamespace
      AND p.proname IN ('protect_new_partitions', 'forget_dropped_tables', 'ddl_guard', 'check_write')
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
  END LOOP;
END
$internal$;

-- pg_dump keeps the delegation state with the extension: every state table
-- and every sequence (the identity sequences of the tables), so that a
-- restored database goes on numbering where the dumped one stopped; without
-- the sequences a restore starts them at 1 again and the next insert fails
-- with 23505.
DO $dump$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT c.relname FROM pg_catalog.pg_class c
           WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind IN ('r', 'S')
           ORDER BY c.relkind, c.relname
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(format('carm.%I', t), '');
  END LOOP;
END
$dump$;
-- §12 discoverability: the nine functions, the roles and the role x function
-- matrix as views, produced by C from src/matrix.c (the table the check
-- itself reads: one authority, never retyped here); and a COMMENT, in words,
-- on every table and view of schema carm and every internal function.

CREATE OR REPLACE FUNCTION carm_internal.matrix_functions()
RETURNS TABLE (function_no integer, function text, scope text, covers text)
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_matrix_functions';
COMMENT ON FUNCTION carm_internal.matrix_functions() IS
  'Internal (§3.1): the nine functions of the guide, from src/matrix.c';

CREATE OR REPLACE FUNCTION carm_internal.matrix_roles()
RETURNS TABLE (role_no integer, role text, kind text, description text)
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_matrix_roles';
COMMENT ON FUNCTION carm_internal.matrix_roles() IS
  'Internal (§3.2): the roles the check knows, from src/matrix.c';

CREATE OR REPLACE FUNCTION carm_internal.matrix_levels()
RETURNS TABLE (role text, function text, max_level text)
  LANGUAGE c IMMUTABLE PARALLEL SAFE
  AS 'MODULE_PATHNAME', 'carm_matrix_levels';
COMMENT ON FUNCTION carm_internal.matrix_levels() IS
  'Internal (§3.2): the role x function matrix the check uses (maximum level, none/view/edit/manage), from src/matrix.c';

CREATE OR REPLACE VIEW carm.functions AS
  SELECT f.function_no, f.function, f.scope, f.covers,
         ARRAY[f.function || '.view', f.function || '.edit', f.function || '.manage'] AS permissions
  FROM carm_internal.matrix_functions() f;
COMMENT ON VIEW carm.functions IS
  'The nine functions of the guide (§3.1) that permissions name (function.level, levels view < edit < manage), with their scope and what they cover';

CREATE OR REPLACE VIEW carm.roles AS
  SELECT r.role_no, r.role, r.kind, r.description
  FROM carm_internal.matrix_roles() r;
COMMENT ON VIEW carm.roles IS
  'The roles decisions are made from (§3.2): employee roles BAM > PAM > EDITOR/VIEWER, proxy roles of service-provider employees, EXPIRED after a relationship ends, and SPMGR, a provider PAM''s read of what its business submitted (V3)';

CREATE OR REPLACE VIEW carm.role_permissions AS
  SELECT r.role_no, l.role, f.function_no, l.function, l.max_level,
         ARRAY(SELECT l.function || '.' || v.level
               FROM unnest(ARRAY['view', 'edit', 'manage']) WITH ORDINALITY AS v(level, n)
               WHERE v.n <= array_position(ARRAY['none', 'view', 'edit', 'manage'], l.max_level) - 1
               ORDER BY v.n) AS permissions
  FROM carm_internal.matrix_levels() l
  JOIN carm_internal.matrix_roles() r ON r.role = l.role
  JOIN carm_internal.matrix_functions() f ON f.function = l.function
  ORDER BY r.role_no, f.function_no;
COMMENT ON VIEW carm.role_permissions IS
  'The role x function matrix of §3.2 as the check applies it: the highest level each role has on each function and the permissions that gives; program-scope rules (a PAM only on its programs, E7; proxies never on the client''s employees, relationships or banking, R11; EXPIRED only on rows its provider submitted, V4) apply on top';

-- The views call these functions, and PostgreSQL checks EXECUTE for whoever
-- reads a view: they return constant data, so everyone may.
REVOKE ALL ON FUNCTION carm_internal.matrix_functions(), carm_internal.matrix_roles(),
  carm_internal.matrix_levels() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION carm_internal.matrix_functions(), carm_internal.matrix_roles(),
  carm_internal.matrix_levels() TO PUBLIC;
GRANT SELECT ON carm.functions, carm.roles, carm.role_permissions TO PUBLIC;

-- The state tables, in words.  Only the extension's owner reads or writes
-- them; everyone else goes through the API (§2).
COMMENT ON TABLE carm.business IS
  'Business accounts (BN9: nine digits, the last a Luhn check digit) with their kinds (importer, customs broker, trade consultant), loaded by carm_admin';
COMMENT ON TABLE carm.program IS
  'Program accounts (BN15 = the BN9, RM and four digits) of a business; an all-programs grant covers one added later at once (E12)';
COMMENT ON TABLE carm.app_user IS
  'Portal user profiles; external_id is the unique sign-in identity; a deactivated user has no access (§2)';
COMMENT ON TABLE carm.login_binding IS
  'Login roles whose sessions act as a portal user by default; a binding counts only while the role keeps its oid and its name (§2)';
COMMENT ON TABLE carm.employee IS
  'Approved employees: one role per user and business (BAM, PAM, EDITOR or VIEWER) on all programs (programs NULL, later ones too) or a listed subset; a business keeps at least one BAM (E9)';
COMMENT ON TABLE carm.access_request IS
  'Employee access requests with the requester''s comment; at most one pending per user and business (E2); a rejection carries the reason the requester sees (E4)';
COMMENT ON TABLE carm.relationship IS
  'Business relationships: a service provider acts for a client, for the whole business (BUSINESS) or listed programs (PROGRAM), with visibility of submissions and an optional expiry; at most one pending, rejected or active per pair (R2)';
COMMENT ON TABLE carm.client_assignment IS
  'Individual proxy roles (PPAM, PEDITOR, PVIEWER) of provider employees on one client, tied to the relationship so that a new relationship starts from nothing (R7, R10)';
COMMENT ON TABLE carm.client_group IS
  'Client groups of a service provider; a deleted group keeps its row so that its name stays taken (G1, G2, G8)';
COMMENT ON TABLE carm.group_client IS
  'The clients of a client group; a client is in at most one live group of a provider and needs an active relationship (G3)';
COMMENT ON TABLE carm.group_employee IS
  'Provider employees assigned to a client group with a default proxy role on its clients; an individual assignment overrides it (G4, G5)';
COMMENT ON TABLE carm.group_request IS
  'The request-processing table: one row per client-group operation, applied at once or deferred to maintenance, with its status and any failure reason (G9)';
COMMENT ON TABLE carm.audit_event IS
  'The append-only audit trail of every change to delegation state: time, actor, database role, event, businesses, user, relationship or group, details (§9); read it with carm.audit_events()';
COMMENT ON TABLE carm.notification IS
  'Notifications a person must see (request decisions, relationship requests and decisions, expiry notices), read with carm.my_notifications() (§9)';
COMMENT ON TABLE carm.protected_table IS
  'Application tables under row-level security installed by carm.protect(), with their partitions and the row-level-security flags to restore on unprotect (§8)';

-- Internal functions without a comment of their own get a short one.  By
-- name, so that a change of arguments elsewhere keeps the install working;
-- test/sql/discovery.sql requires every function of both schemas to have one.
DO $comments$
DECLARE
  c record;
  f regprocedure;
BEGIN
  FOR c IN SELECT * FROM (VALUES
      ('audit', 'appends one audit event (§9) and publishes its id; returns the id'),
      ('notify', 'a notification for one person (§9)'),
      ('audit_append_only', 'trigger: refuses UPDATE, DELETE and TRUNCATE of the audit trail (§9)'),
      ('not_null', '22004 when a required argument is NULL'),
      ('not_blank', '22023 when a required text is NULL, blank or too long; returns it trimmed'),
      ('business', 'the business of a BN9: 22023 when malformed, P0002 when unknown'),
      ('programs_of', 'program ids of a list of BN15 of one business (22023 otherwise); NULL means all programs'),
      ('bn15s', 'BN15s of program ids, for listings; NULL stays NULL (all programs)'),
      ('check_kinds', 'validates and normalises business kinds (22023)'),
      ('user_row', 'a user by id; 22004 when NULL, P0002 when unknown'),
      ('forget_dropped_login_roles', 'deletes login bindings of dropped roles, each an audit event'),
      ('employee_role', 'an employee role name, normalised (E5): 22004 when NULL, 22023 when unknown'),
      ('manager_of', 'the actor''s employee row when it manages the business''s employees (a BAM, or a PAM, E3); 42501 otherwise'),
      ('scope_text', 'a scope for people: all programs or the BN15 list'),
      ('access_request', 'an access request locked for the actor''s decision; an unrelated actor gets the unknown-id answer (P0002, §10)'),
      ('require_pending', '55000 unless the access request is still pending'),
      ('rel_member', 'the employee row of an active user in a business, or NULL'),
      ('rel_staff', 'active employees of a business holding one of these roles (notification recipients)'),
      ('rel_notify', 'one notification per distinct user, except the one who acted (§9)'),
      ('rel_get', 'a relationship for the actor; an unrelated actor gets the unknown-id answer (P0002, §10)'),
      ('rel_delegated', 'the programs a relationship delegates now: all of the client''s for BUSINESS, the listed ones for PROGRAM'),
      ('rel_terms', 'validates the terms a client gives a relationship (R5, R8); returns the delegated programs'),
      ('close_relationships', 'R9 cascade: expires or ends relationships, removing assignments and group memberships, with audit and notifications'),
      ('settle_pair', 'R9: applies the expiry cascade of a pair''s relationship when it is due'),
      ('rel_active', 'the active relationship of a provider and a client, settled first; 55000 when there is none'),
      ('rel_assigner', 'R7: the delegated programs on which the actor may assign provider employees'),
      ('rel_assignment_context', 'the common checks of assigning and revoking client access (R7)'),
      ('relationships', 'carm.relationships() for carm_admin or the acting user'),
      ('client_access', 'carm.client_access() for carm_admin or the acting user'),
      ('client_groups', 'carm.client_groups() for carm_admin or the acting user'),
      ('available_clients', 'carm.available_clients() for carm_admin or the acting user'),
      ('group_requests', 'carm.group_requests() for carm_admin or the acting user'),
      ('group_clients', 'carm.group_clients() for carm_admin or the acting user'),
      ('group_employees', 'carm.group_employees() for carm_admin or the acting user'),
      ('row_visible_support', 'planner support of the row check: index condition and selectivity'),
      ('accessible_program_ids', 'ids of the programs on which the actor holds a permission'),
      ('require_admin_or_bam', '42501 unless carm_admin or a BAM of the business'),
      ('target', 'the business and program a BN9 or BN15 names (22023, P0002)'),
      ('explain_access', 'carm.explain_access() for carm_admin or the acting user'),
      ('who_has_access', 'carm.who_has_access() for carm_admin or the acting user'),
      ('require_table_owner', '42501 unless the role owns the table and each of its partitions'),
      ('drop_protection', 'removes the policies and trigger protect() installed')
    ) AS x(name, comment)
  LOOP
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = 'carm_internal'::regnamespace AND p.proname = c.name
               AND pg_catalog.obj_description(p.oid, 'pg_proc') IS NULL
    LOOP
      EXECUTE format('COMMENT ON FUNCTION %s IS %L', f, 'Internal: ' || c.comment);
    END LOOP;
  END LOOP;
END
$comments$;
