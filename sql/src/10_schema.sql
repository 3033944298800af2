-- The data model (docs/design.md, "Data model").  Tables are private to the
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
  expires_at    timestamptz,                   -- NULL = no expiry; R9 compares it with statement_timestamp()
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
