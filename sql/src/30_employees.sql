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

-- Does this employee row (carm_internal.rel_member's answer, NULL for none)
-- manage its business: a BAM or a PAM?  The one statement of "manager of a
-- business" (E3, R1, R3, R4, R7, the relationship listings).
CREATE OR REPLACE FUNCTION carm_internal.is_manager(p_member carm.employee) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(p_member.role IN ('BAM', 'PAM'), false);
$$;

-- The actor's own employee row when it manages the business's employees
-- (E3: a BAM, or a PAM); 42501 otherwise.
CREATE OR REPLACE FUNCTION carm_internal.manager_of(p_business carm.business, p_actor bigint) RETURNS carm.employee
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  m carm.employee := carm_internal.rel_member(p_business.id, p_actor);
BEGIN
  IF NOT carm_internal.is_manager(m) THEN
    RAISE EXCEPTION 'permission denied to manage the employees of business %', p_business.bn9
      USING ERRCODE = '42501',
            DETAIL = CASE WHEN m.role IS NULL THEN format('User %s is not an employee of this business.', p_actor)
                          ELSE format('User %s is %s of this business.', p_actor, m.role) END,
            HINT = 'Only its business account managers and program account managers manage employees.';
  END IF;
  RETURN m;
END
$$;

-- Is the user an active business account manager (BAM) of the business?
-- Deactivated users hold nothing (§2), so they manage nothing either (as
-- carm_internal.rel_member).  The check of the BAM-only actions: reading a
-- business's audit events, managing its client groups, its reports.
CREATE OR REPLACE FUNCTION carm_internal.bam_of(p_business bigint, p_user bigint) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce((carm_internal.rel_member(p_business, p_user)).role = 'BAM', false);
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
-- its requester nor linked to its business (carm_internal.linked_to) — gets
-- the very answer an unknown id gets, so ids cannot be probed and the
-- business behind a request is never named to outsiders.  R11: a service
-- provider's people (PBAM, PPAM, assigned proxies, EXPIRED) know the client
-- and never decide its access requests: 42501 with that reason.  The lock
-- is taken after these tests, so an outsider cannot make the business's
-- managers wait.
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
         AND NOT carm_internal.linked_to(v_actor, ARRAY[r.business_id])) THEN
    RAISE EXCEPTION 'access request % does not exist', p_request USING ERRCODE = 'P0002';
  END IF;
  IF r.user_id IS DISTINCT FROM v_actor
     AND NOT EXISTS (SELECT FROM carm.employee e
                     WHERE e.business_id = r.business_id AND e.user_id = v_actor) THEN
    RAISE EXCEPTION 'permission denied for access request %', p_request
      USING ERRCODE = '42501',
            DETAIL = 'You reach its business through a business relationship only.',
            HINT = 'A service provider''s people never see or decide a client''s employee access requests (R11).';
  END IF;
  SELECT * INTO r FROM carm.access_request x WHERE x.id = p_request FOR UPDATE;
  RETURN r;
END
$$;
COMMENT ON FUNCTION carm_internal.access_request(bigint) IS
  'Internal: an access request locked for the actor''s decision; an actor with no link to its business gets the unknown-id answer (P0002, §10), a service provider''s people 42501 (R11)';

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
  IF v_bn9 IS NULL THEN                                     -- §10 rev. 1.2
    RAISE EXCEPTION 'business number must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT carm_internal.bn9_is_valid(v_bn9) THEN
    RAISE EXCEPTION 'invalid business number "%"', left(v_bn9, 32)
      USING ERRCODE = '22023', HINT = 'A BN9 is nine digits, the last a check digit.';
  END IF;
  SELECT * INTO b FROM carm.business x WHERE x.bn9 = v_bn9;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'business % is not known to the CBSA', v_bn9
      USING ERRCODE = '22023', HINT = 'Check the business number.';
  END IF;
  IF v_bn15 IS NULL THEN                                     -- §10 rev. 1.2
    RAISE EXCEPTION 'program account number must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT carm_internal.bn15_is_valid(v_bn15) THEN
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
