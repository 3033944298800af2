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
      ('require_pending', '55000 unless the access request is still pending'),
      ('relationship_in_force', 'R9: is a relationship active and not expired by time at a given time'),
      ('is_manager', 'does an employee row manage its business: a BAM or a PAM (E3)'),
      ('bam_of', 'is the user an active business account manager of the business'),
      ('rel_member', 'the employee row of an active user in a business, or NULL'),
      ('rel_staff', 'active employees of a business holding one of these roles (notification recipients)'),
      ('rel_notify', 'one notification per distinct user, except the one who acted (§9)'),
      ('rel_delegated', 'the programs a relationship delegates now: all of the client''s for BUSINESS, the listed ones for PROGRAM'),
      ('rel_terms', 'validates the terms a client gives a relationship (R5, R8); returns the delegated programs'),
      ('close_relationships', 'R9 cascade: expires or ends relationships, removing assignments and group memberships, with audit and notifications'),
      ('settle_pair', 'R9: applies the expiry cascade of a pair''s relationship when it is due'),
      ('rel_settled', 'a relationship with its pair settled (R9), read again and locked for a decision'),
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
      ('accessible_business_ids', 'ids of the businesses on every program of which the actor holds a permission judged at business scope'),
      ('require_admin_or_bam', '42501 unless carm_admin or a BAM of the business'),
      ('target', 'the business and program a BN9 or BN15 names (22023, P0002)'),
      ('number_id', 'the id of a business (BN9) or program account (BN15), as the point checks resolve it (22023, P0002)'),
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
