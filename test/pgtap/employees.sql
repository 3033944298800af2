-- pgTAP: employee delegation (§4, E1-E13), identity and privileges (§2),
-- the employee rows of the §3.2 matrix, audit (§9) and bad input (§10).
-- Everything happens in one transaction that is rolled back.
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
\set ON_ERROR_STOP 1
SET client_min_messages = error;   -- E10 warnings are shown by the employees transcript

BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;

SELECT plan(159);

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_tap_nobody') THEN
    CREATE ROLE regress_tap_nobody NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_tap_app') THEN
    CREATE ROLE regress_tap_app NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_tap_admin') THEN
    CREATE ROLE regress_tap_admin NOLOGIN;
  END IF;
END
$$;
GRANT carm_gateway TO regress_tap_app;
GRANT carm_admin TO regress_tap_admin;

-- Helpers -----------------------------------------------------------------------
CREATE FUNCTION pg_temp.uid(ext text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT id FROM carm.app_user WHERE external_id = ext
$$;
-- run stmt acting as ext, deactivated after set_actor() (a user deactivated
-- while a transaction acts for it); set_actor() itself refuses a
-- deactivated user (§10 rev. 1.2).  Everything is undone when stmt fails.
CREATE FUNCTION pg_temp.acting_deactivated(ext text, stmt text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.reactivate_user(pg_temp.uid(ext));
  PERFORM carm.set_actor(ext);
  PERFORM carm.deactivate_user(pg_temp.uid(ext));
  EXECUTE stmt;
END
$$;
-- act as a user until the end of the transaction (or the next act())
CREATE FUNCTION pg_temp.act(ext text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(ext);
  RETURN diag('acting as ' || ext);
END
$$;
CREATE FUNCTION pg_temp.can(ext text, target text, perm text) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT carm.user_has_access(pg_temp.uid(ext), target, perm)
$$;
CREATE FUNCTION pg_temp.emp(ext text, bn9 text DEFAULT '123456782')
RETURNS TABLE (role text, programs text[]) LANGUAGE sql STABLE AS $$
  SELECT e.role, carm_internal.bn15s(e.programs) FROM carm.employee e
  WHERE e.user_id = pg_temp.uid(ext) AND e.business_id = carm.business_id(bn9)
$$;
CREATE FUNCTION pg_temp.request_of(ext text, bn9 text DEFAULT '123456782') RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT max(r.id) FROM carm.access_request r
  WHERE r.user_id = pg_temp.uid(ext) AND r.business_id = carm.business_id(bn9)
$$;
-- the (table, operation) pairs a role is NOT refused on, among all of carm's tables
CREATE FUNCTION pg_temp.not_refused(p_role name) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
  t record;
  op text;
  bad text[] := '{}';
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', p_role);
  FOR t IN
    SELECT c.oid::regclass AS rel,
           (SELECT quote_ident(a.attname) FROM pg_attribute a
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attidentity = '' AND a.attgenerated = ''
            ORDER BY a.attnum LIMIT 1) AS col
    FROM pg_class c WHERE c.relnamespace = 'carm'::regnamespace AND c.relkind IN ('r', 'p', 'v')
      -- §12: the discovery views (the nine functions, the roles, the matrix)
      -- are open to every role and show no delegation state; the monitoring
      -- view has its own test (test/sql/monitoring.sql)
      AND c.relname NOT IN ('functions', 'roles', 'role_permissions', 'stats')
    ORDER BY c.relname
  LOOP
    FOREACH op IN ARRAY ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] LOOP
      BEGIN
        EXECUTE CASE op
          WHEN 'SELECT' THEN format('SELECT 1 FROM %s LIMIT 1', t.rel)
          WHEN 'INSERT' THEN format('INSERT INTO %s DEFAULT VALUES', t.rel)
          WHEN 'UPDATE' THEN format('UPDATE %s SET %s = %2$s', t.rel, t.col)
          ELSE format('DELETE FROM %s', t.rel) END;
        bad := bad || (t.rel::text || ' ' || op);
      EXCEPTION
        WHEN insufficient_privilege THEN NULL;
        WHEN OTHERS THEN bad := bad || (t.rel::text || ' ' || op || ' ' || SQLSTATE);
      END;
    END LOOP;
  END LOOP;
  RESET ROLE;
  RETURN bad;
END
$$;

-- Reference data -------------------------------------------------------------------
SELECT carm.add_business('123456782', 'Acme Imports', '{IMPORTER}') IS NOT NULL AS acme \g /dev/null
SELECT carm.add_business('111111118', 'Northern Brokers', '{CUSTOMS_BROKER}') IS NOT NULL \g /dev/null
SELECT count(carm.add_program_account(p))
FROM unnest(ARRAY['123456782RM0001','123456782RM0002','123456782RM0003','111111118RM0001']) p \g /dev/null
SELECT count(carm.register_user(u, initcap(u)))
FROM unnest(ARRAY['alice','bob','carol','dave','erin','frank','grace','mallory','zed']) u \g /dev/null
SELECT carm.deactivate_user(pg_temp.uid('zed')) \g /dev/null

-- §2: privileges ----------------------------------------------------------------------
SELECT is(pg_temp.not_refused('regress_tap_nobody'), '{}',
          '§2: a role with no grants cannot SELECT/INSERT/UPDATE/DELETE any table of schema carm');
SELECT is(pg_temp.not_refused('regress_tap_app'), '{}',
          '§2: nor can a carm_gateway member');
SELECT is(pg_temp.not_refused('regress_tap_admin'), '{}',
          '§2: nor can a carm_admin member');
SET LOCAL ROLE regress_tap_nobody;
SELECT throws_ok($$SELECT carm.set_actor(1)$$, '42501', NULL,
                 '§2: a role with no grants cannot call set_actor(user_id)');
SELECT throws_ok($$SELECT carm.set_actor('alice')$$, '42501', NULL,
                 '§2: a role with no grants cannot call set_actor(external_id)');
SELECT throws_ok($$SET carm_deleg.actor = '1'$$, '42501', NULL,
                 '§2: nor assign the actor setting');
SELECT throws_ok($$SELECT carm.approve_employee_access(1, 'PAM')$$, '42501', NULL,
                 '§2: a role with no grants cannot call the §4 API');
RESET ROLE;
SELECT is(
  (SELECT array_agg(p.oid::regprocedure::text ORDER BY 1) FROM pg_proc p
   WHERE p.pronamespace = 'carm'::regnamespace AND p.prosecdef
     AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']),
  NULL, '§2: every SECURITY DEFINER function pins search_path');
SELECT is(
  (SELECT array_agg(f ORDER BY f) FROM unnest(ARRAY[
     'carm.register_business(text,text)', 'carm.request_employee_access(text,text)',
     'carm.withdraw_employee_access_request(bigint)', 'carm.approve_employee_access(bigint,text,text[])',
     'carm.reject_employee_access(bigint,text)', 'carm.set_employee_access(text,bigint,text,text[])',
     'carm.remove_employee(text,bigint)', 'carm.employees(text)', 'carm.employee_access_requests(text)',
     'carm.my_access_requests()', 'carm.my_businesses()']) f
   WHERE has_function_privilege('regress_tap_nobody', f, 'EXECUTE')
      OR NOT has_function_privilege('regress_tap_app', f, 'EXECUTE')),
  NULL, '§2: the §4 API is executable by carm_gateway and by nobody else');

-- §2: no actor --------------------------------------------------------------------------
SELECT throws_ok($$SELECT carm.register_business('123456782', '123456782RM0001')$$, '42501', 'no acting user',
                 '§2: register_business without an actor');
SELECT throws_ok($$SELECT carm.request_employee_access('123456782', 'x')$$, '42501', 'no acting user',
                 '§2: request_employee_access without an actor');
SELECT throws_ok($$SELECT carm.withdraw_employee_access_request(1)$$, '42501', 'no acting user',
                 '§2: withdraw_employee_access_request without an actor');
SELECT throws_ok($$SELECT carm.approve_employee_access(1, 'PAM')$$, '42501', 'no acting user',
                 '§2: approve_employee_access without an actor');
SELECT throws_ok($$SELECT carm.reject_employee_access(1, 'x')$$, '42501', 'no acting user',
                 '§2: reject_employee_access without an actor');
SELECT throws_ok($$SELECT carm.set_employee_access('123456782', 1, 'PAM')$$, '42501', 'no acting user',
                 '§2: set_employee_access without an actor');
SELECT throws_ok($$SELECT carm.remove_employee('123456782', 1)$$, '42501', 'no acting user',
                 '§2: remove_employee without an actor');
SELECT throws_ok($$SELECT * FROM carm.employees('123456782')$$, '42501', 'no acting user',
                 '§2: employees without an actor');
SELECT throws_ok($$SELECT * FROM carm.employee_access_requests('123456782')$$, '42501', 'no acting user',
                 '§2: employee_access_requests without an actor');
SELECT throws_ok($$SELECT * FROM carm.my_access_requests()$$, '42501', 'no acting user',
                 '§2: my_access_requests without an actor');
SELECT throws_ok($$SELECT * FROM carm.my_businesses()$$, '42501', 'no acting user',
                 '§2: my_businesses without an actor');

-- E13 before anything ---------------------------------------------------------------------
SELECT ok(NOT pg_temp.can('mallory', '123456782RM0001', 'statements.view'),
          'E13: an unassociated user sees no program');
SELECT ok(NOT pg_temp.can('mallory', '123456782', 'business_profile.view'),
          'E13: nor the business');

-- E1 --------------------------------------------------------------------------------------
SELECT pg_temp.act('alice');
SELECT throws_ok($$SELECT carm.register_business('123456782', '111111118RM0001')$$, '22023', NULL,
                 'E1: a BN15 of another business is refused');
SELECT throws_ok($$SELECT carm.register_business('123456782', '123456782RM0009')$$, '22023', NULL,
                 'E1: an unknown BN15 is refused');
SELECT throws_ok($$SELECT carm.register_business('222222226', '222222226RM0001')$$, '22023', NULL,
                 'E1: an unknown BN9 is refused with 22023');
SELECT throws_ok($$SELECT carm.register_business('123456789', '123456782RM0001')$$, '22023', NULL,
                 'E1: a BN9 with a wrong check digit is refused');
SELECT throws_ok($$SELECT carm.register_business(repeat('1', 1000000), '123456782RM0001')$$, '22023', NULL,
                 'E1: a huge BN9 is refused');
SELECT throws_ok($$SELECT carm.register_business('123456782', NULL)$$, '22004', NULL,
                 'E1, §10 (rev. 1.2): a NULL BN15 is refused, 22004');
SELECT lives_ok($$SELECT carm.register_business('123456782', '123456782RM0002')$$,
                'E1: the first user to register a business');
SELECT results_eq($$SELECT role, programs FROM carm.my_businesses()$$,
                  $$VALUES ('BAM', NULL::text[])$$,
                  'E1: becomes its BAM on all programs');
SELECT ok(carm.has_access('123456782', 'business_profile.manage'), 'E1: and manages the business at once');
SELECT pg_temp.act('bob');
SELECT throws_ok($$SELECT carm.register_business('123456782', '123456782RM0001')$$, '55000',
                 'business 123456782 already has a business account manager',
                 'E1: a business that has a BAM refuses another registration (55000)');
SELECT throws_ok($$SELECT pg_temp.act('zed')$$, '28000', NULL,
                 '§2, §10 (rev. 1.2): set_actor refuses a deactivated user at once, 28000');
SELECT throws_ok($$SELECT pg_temp.acting_deactivated('zed', 'SELECT carm.register_business(''111111118'', ''111111118RM0001'')')$$,
                 '28000', NULL, '§2, §10 (rev. 1.2): a deactivated user cannot act, 28000');

-- E2 --------------------------------------------------------------------------------------
SELECT pg_temp.act('bob');
SELECT isnt(carm.request_employee_access('123456782', 'Accounts payable'), NULL,
            'E2: a user asks for access with a comment');
SELECT throws_ok($$SELECT carm.request_employee_access('123456782', 'again')$$, '23505', NULL,
                 'E2: one pending request per user and business');
SELECT throws_ok($$SELECT carm.request_employee_access('123456782', ' ')$$, '22023', NULL,
                 'E2: a blank comment is refused');
SELECT throws_ok($$SELECT carm.request_employee_access('123456782', NULL)$$, '22004', NULL,
                 'E2, §10 (rev. 1.2): a NULL comment is refused, 22004');
SELECT throws_ok($$SELECT carm.request_employee_access('123456782', repeat('x', 1000000))$$, '22023', NULL,
                 'E2: a huge comment is refused');
SELECT throws_ok($$SELECT carm.request_employee_access('222222226', 'x')$$, 'P0002', NULL,
                 'E2: an unknown business is P0002');
SELECT throws_ok($$SELECT carm.request_employee_access('2222', 'x')$$, '22023', NULL,
                 'E2: a malformed BN9 is 22023');
SELECT pg_temp.act('carol');
SELECT isnt(carm.request_employee_access('123456782', 'Customs desk'), NULL, 'E2: carol asks');
SELECT throws_ok(format('SELECT carm.withdraw_employee_access_request(%s)', pg_temp.request_of('bob')),
                 'P0002', NULL, 'E2, §10: only the requester withdraws a request; to another outsider it does not exist');
SELECT throws_ok($$SELECT carm.withdraw_employee_access_request(999)$$, 'P0002', NULL,
                 'E2: withdrawing an unknown request is P0002');
SELECT throws_ok($$SELECT carm.withdraw_employee_access_request(NULL)$$, '22004', NULL,
                 'E2: withdrawing a NULL request is 22004');
SELECT lives_ok(format('SELECT carm.withdraw_employee_access_request(%s)', pg_temp.request_of('carol')),
                'E2: the requester withdraws its request');
SELECT throws_ok(format('SELECT carm.withdraw_employee_access_request(%s)', pg_temp.request_of('carol')),
                 '55000', NULL, 'E2: a request that is not pending cannot be withdrawn');
SELECT isnt(carm.request_employee_access('123456782', 'Customs desk, again'), NULL,
            'E2: after withdrawing, the user may ask again');
SELECT pg_temp.act('dave');
SELECT isnt(carm.request_employee_access('123456782', 'Payments'), NULL, 'E2: dave asks');
SELECT pg_temp.act('erin');
SELECT isnt(carm.request_employee_access('123456782', 'Intern'), NULL, 'E2: erin asks');
SELECT pg_temp.act('alice');
SELECT throws_ok($$SELECT carm.request_employee_access('123456782', 'x')$$, '55000', NULL,
                 'E2: an active employee cannot request again');
SELECT results_eq($$SELECT external_id, comment FROM carm.employee_access_requests('123456782')
                    WHERE status = 'pending' ORDER BY request_id$$,
                  $$VALUES ('bob', 'Accounts payable'), ('carol', 'Customs desk, again'),
                           ('dave', 'Payments'), ('erin', 'Intern')$$,
                  'E2: the comments are shown to the approver');
SELECT ok(NOT pg_temp.can('bob', '123456782RM0001', 'statements.view'),
          'E13: a pending request gives no access');

-- E3, E5: approval by the BAM -------------------------------------------------------------
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('bob'), 'OWNER'),
                 '22023', NULL, 'E5: an unknown role is refused');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('bob'), repeat('x', 100000)),
                 '22023', NULL, 'E5: a huge role is refused');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, NULL)', pg_temp.request_of('bob')),
                 '22004', NULL, 'E5: a NULL role is refused');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('bob'), 'BAM', '{123456782RM0001}'),
                 '22023', NULL, 'E5: a BAM requires programs NULL');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('bob'), 'PAM', '{111111118RM0001}'),
                 '22023', NULL, 'E5: programs of another business are refused');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('bob'), 'PAM', '{}'),
                 '22023', NULL, 'E5: an empty program list is refused');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('bob'), 'PAM', '{NULL}'),
                 '22004', NULL, 'E5, §10 (rev. 1.2): a NULL program is refused with 22004');
SELECT throws_ok($$SELECT carm.approve_employee_access(999, 'PAM')$$, 'P0002', NULL,
                 'E3: approving an unknown request is P0002');
SELECT is((SELECT status FROM carm.access_request WHERE id = pg_temp.request_of('bob')), 'pending',
          '§10: failed approvals left the request pending');
SELECT lives_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('bob'), 'PAM',
                       '{123456782RM0001,123456782RM0002}'),
                'E3: the BAM approves with a role and a scope');
SELECT results_eq($$SELECT * FROM pg_temp.emp('bob')$$,
                  $$VALUES ('PAM', '{123456782RM0001,123456782RM0002}'::text[])$$,
                  'E5: one role and the listed programs');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('bob'), 'PAM'),
                 '55000', NULL, 'E3: approving a request that is not pending is 55000');
SELECT is((SELECT count(*)::int FROM carm.notification
           WHERE user_id = pg_temp.uid('bob') AND event = 'employee_access_approved'), 1,
          '§9: the requester is notified of the approval');
SELECT ok(EXISTS (SELECT FROM carm.audit_event WHERE event = 'employee_access_approved'
                  AND target_user_id = pg_temp.uid('bob') AND actor_id = pg_temp.uid('alice')),
          '§9: the approval is audited with its actor');

-- E3: approval by a PAM ---------------------------------------------------------------------
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('carol'), 'EDITOR'),
                 '42501', NULL, 'E3: a PAM never grants all-programs scope');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('carol'), 'EDITOR',
                        '{123456782RM0001,123456782RM0003}'),
                 '42501', NULL, 'E3: a PAM grants only its own programs');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('carol'), 'BAM'),
                 '42501', NULL, 'E3: a PAM cannot grant BAM');
SELECT lives_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('carol'), 'EDITOR',
                       '{123456782RM0001}'),
                'E3: a PAM approves within its own programs');
SELECT lives_ok(format('SELECT carm.approve_employee_access(%s, %L, %L)', pg_temp.request_of('dave'), 'VIEWER',
                       '{123456782RM0002}'),
                'E3: a PAM grants VIEWER');
SELECT is((SELECT count(*)::int FROM carm.employees('123456782')), 4, 'E3: a PAM lists employees');

-- §3.2: the employee rows of the matrix --------------------------------------------------------
SELECT ok(pg_temp.can('bob', '123456782RM0001', 'employee_access.manage'), '§3.2: PAM manages employee access on its programs');
SELECT ok(NOT pg_temp.can('bob', '123456782', 'business_profile.edit'), '§3.2: PAM only views the business profile');
SELECT ok(NOT pg_temp.can('bob', '123456782RM0003', 'program_profile.view'), 'E5: PAM has nothing outside its programs');
SELECT ok(pg_temp.can('carol', '123456782RM0001', 'rulings.edit'), '§3.2: EDITOR edits rulings');
SELECT ok(NOT pg_temp.can('carol', '123456782RM0001', 'rulings.manage'), '§3.2: EDITOR does not manage rulings');
SELECT ok(pg_temp.can('carol', '123456782RM0001', 'banking.view') AND NOT pg_temp.can('carol', '123456782RM0001', 'banking.edit'),
          '§3.2: EDITOR views banking only');
SELECT ok(NOT pg_temp.can('carol', '123456782RM0001', 'employee_access.view'), '§3.2: EDITOR has no employee access');
SELECT ok(pg_temp.can('dave', '123456782RM0002', 'payments.view') AND NOT pg_temp.can('dave', '123456782RM0002', 'payments.edit'),
          '§3.2: VIEWER views payments only');
SELECT ok(NOT pg_temp.can('dave', '123456782RM0002', 'banking.view'), '§3.2: VIEWER has no banking');
SELECT ok(pg_temp.can('dave', '123456782', 'business_profile.view'), '§3.2: any employee views the business profile');

-- E3 listing, E4 rejection -------------------------------------------------------------------
SELECT pg_temp.act('carol');
SELECT throws_ok($$SELECT * FROM carm.employees('123456782')$$, '42501', NULL,
                 'E3: an EDITOR cannot list employees');
SELECT throws_ok($$SELECT * FROM carm.employee_access_requests('123456782')$$, '42501', NULL,
                 'E3: an EDITOR cannot list access requests');
SELECT throws_ok(format('SELECT carm.reject_employee_access(%s, %L)', pg_temp.request_of('erin'), 'no'),
                 '42501', NULL, 'E3: an EDITOR cannot reject');
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.reject_employee_access(%s, %L)', pg_temp.request_of('erin'), '  '),
                 '22023', NULL, 'E4: rejection needs a non-blank reason');
SELECT throws_ok(format('SELECT carm.reject_employee_access(%s, NULL)', pg_temp.request_of('erin')),
                 '22004', NULL, 'E4, §10 (rev. 1.2): a NULL reason is refused, 22004');
SELECT throws_ok(format('SELECT carm.reject_employee_access(%s, %L)', pg_temp.request_of('erin'), repeat('x', 5000)),
                 '22023', NULL, 'E4: a huge reason is refused');
SELECT lives_ok(format('SELECT carm.reject_employee_access(%s, %L)', pg_temp.request_of('erin'), 'Internships are over'),
                'E3/E4: a PAM rejects with a reason');
SELECT throws_ok(format('SELECT carm.reject_employee_access(%s, %L)', pg_temp.request_of('erin'), 'again'),
                 '55000', NULL, 'E4: a request that is not pending cannot be rejected');
SELECT pg_temp.act('erin');
SELECT results_eq($$SELECT status, reason FROM carm.my_access_requests()$$,
                  $$VALUES ('rejected', 'Internships are over')$$,
                  'E4: the requester sees the status and the reason');
SELECT ok((SELECT message LIKE '%Internships are over%' FROM carm.my_notifications()
           WHERE event = 'employee_access_rejected'),
          'E4/§9: the requester is notified with the reason');
SELECT ok(NOT pg_temp.can('erin', '123456782', 'business_profile.view'), 'E13: a rejected requester has no access');

-- E6 -------------------------------------------------------------------------------------------
SELECT pg_temp.act('alice');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('alice'), 'PAM', '{123456782RM0001}'),
                 '42501', NULL, 'E6: a BAM cannot change its own access');
SELECT throws_ok(format('SELECT carm.remove_employee(%L, %s)', '123456782', pg_temp.uid('alice')),
                 '42501', NULL, 'E6: a BAM cannot remove itself');
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('bob'), 'PAM',
                        '{123456782RM0001,123456782RM0002,123456782RM0003}'),
                 '42501', NULL, 'E6: a PAM cannot widen its own access');
-- the trigger holds E6 for any write made while an actor is set
SELECT throws_ok($$UPDATE carm.employee SET programs = programs || carm.program_id('123456782RM0003')
                   WHERE user_id = pg_temp.uid('bob')$$,
                 '42501', NULL, 'E6: enforced on carm.employee itself, not only in the API');
-- self-approval: erin, still with a pending request, made BAM by the owner
SELECT pg_temp.act('erin');
SELECT isnt(carm.request_employee_access('123456782', 'Back as a manager'), NULL, 'E2: erin asks again');
SELECT carm.reset_actor() \g /dev/null
INSERT INTO carm.employee (business_id, user_id, role) VALUES (carm.business_id('123456782'), pg_temp.uid('erin'), 'BAM');
SELECT pg_temp.act('erin');
SELECT throws_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('erin'), 'BAM'),
                 '42501', NULL, 'E6: nobody approves their own access request');
SELECT throws_ok(format('SELECT carm.reject_employee_access(%s, %L)', pg_temp.request_of('erin'), 'no'),
                 '42501', NULL, 'E6: nor rejects it');
SELECT carm.reset_actor() \g /dev/null
DELETE FROM carm.employee WHERE user_id = pg_temp.uid('erin');

-- E7 -------------------------------------------------------------------------------------------
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('alice'), 'VIEWER', '{123456782RM0001}'),
                 '42501', NULL, 'E7: PAM cannot change a BAM');
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('carol'), 'VIEWER', '{123456782RM0002}'),
                'E7: a PAM changes a non-BAM employee within its programs');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('carol'), 'EDITOR', '{123456782RM0003}'),
                 '42501', NULL, 'E7: a PAM cannot move an employee outside its programs');
SELECT pg_temp.act('alice');
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L)', '123456782', pg_temp.uid('carol'), 'EDITOR'),
                'E7: a BAM gives all programs');
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('carol'), 'VIEWER', '{123456782RM0001}'),
                 '42501', NULL, 'E7: a PAM cannot change an all-programs employee');
SELECT pg_temp.act('alice');
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('dave'), 'VIEWER',
                       '{123456782RM0002,123456782RM0003}'),
                'E7: a BAM changes anyone');
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('dave'), 'VIEWER', '{123456782RM0002}'),
                 '42501', NULL, 'E7: a PAM cannot change an employee whose scope leaves its programs');
SELECT results_eq($$SELECT external_id, can_change FROM carm.employees('123456782') ORDER BY external_id$$,
                  $$VALUES ('alice', false), ('bob', false), ('carol', false), ('dave', false)$$,
                  'E7: the PAM''s listing says whom it may change');
SELECT pg_temp.act('carol');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('dave'), 'VIEWER', '{123456782RM0002}'),
                 '42501', NULL, 'E7: an EDITOR manages nobody');
SELECT pg_temp.act('dave');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('carol'), 'VIEWER', '{123456782RM0002}'),
                 '42501', NULL, 'E7: a VIEWER manages nobody');
SELECT pg_temp.act('mallory');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('carol'), 'VIEWER', '{123456782RM0002}'),
                 '42501', NULL, 'E7: a non-employee manages nobody');
SELECT pg_temp.act('alice');
SELECT throws_ok(format('SELECT carm.set_employee_access(%L, %s, %L)', '123456782', pg_temp.uid('mallory'), 'VIEWER'),
                 'P0002', NULL, 'E7: changing a user who is not an employee is P0002');
SELECT throws_ok($$SELECT carm.set_employee_access('123456782', 999, 'VIEWER')$$,
                 'P0002', NULL, 'E7: changing an unknown user is P0002');
SELECT throws_ok($$SELECT carm.set_employee_access('123456782', NULL, 'VIEWER')$$,
                 '22004', NULL, 'E7: a NULL user is 22004');

-- E11 --------------------------------------------------------------------------------------------
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L)', '123456782', pg_temp.uid('bob'), 'BAM'),
                'E7/E11: a BAM promotes a PAM to BAM');
SELECT ok(pg_temp.can('bob', '123456782', 'business_profile.manage'), 'E11: promotion gives the business at once');
SELECT ok(pg_temp.can('bob', '123456782RM0003', 'banking.manage'), 'E11: and every program');
SELECT results_eq($$SELECT * FROM pg_temp.emp('bob')$$, $$VALUES ('BAM', NULL::text[])$$,
                  'E11: a BAM''s scope is all programs');
SELECT pg_temp.act('bob');
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('alice'), 'VIEWER', '{123456782RM0001}'),
                'E7: a BAM demotes another BAM');
SELECT ok(NOT pg_temp.can('alice', '123456782', 'business_profile.edit'), 'E11: demotion takes the business away');
SELECT ok(pg_temp.can('alice', '123456782RM0001', 'rulings.view') AND NOT pg_temp.can('alice', '123456782RM0001', 'rulings.edit'),
          'E11: demotion leaves exactly the new role');
SELECT ok(NOT pg_temp.can('alice', '123456782RM0002', 'statements.view'), 'E11: and exactly the new scope');
SELECT is((SELECT count(*)::int FROM carm.employee WHERE business_id = carm.business_id('123456782') AND role = 'BAM'), 1,
          'E10: the demotion left exactly one BAM (its warning is in the employees transcript)');

-- E9 ---------------------------------------------------------------------------------------------
SELECT carm.reset_actor() \g /dev/null
SELECT throws_ok($$DELETE FROM carm.employee WHERE user_id = pg_temp.uid('bob')$$, '23514', NULL,
                 'E9: removing the last BAM fails');
SELECT throws_ok($$UPDATE carm.employee SET role = 'VIEWER', programs = ARRAY[carm.program_id('123456782RM0001')]
                   WHERE user_id = pg_temp.uid('bob')$$, '23514', NULL,
                 'E9: demoting the last BAM fails');
SELECT throws_ok($$UPDATE carm.employee SET role = 'PAM' WHERE business_id = carm.business_id('123456782')$$, '23514', NULL,
                 'E9: also in a statement that changes every employee');
SELECT results_eq($$SELECT * FROM pg_temp.emp('bob')$$, $$VALUES ('BAM', NULL::text[])$$,
                  'E9: the last BAM is still there');
SELECT throws_ok($$INSERT INTO carm.employee (business_id, user_id, role) VALUES (carm.business_id('123456782'), pg_temp.uid('mallory'), 'OWNER')$$,
                 '22023', NULL, 'E5: the trigger refuses an unknown role on direct writes');
SELECT throws_ok($$INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES (carm.business_id('123456782'), pg_temp.uid('mallory'), 'VIEWER', ARRAY[carm.program_id('111111118RM0001')])$$,
                 '22023', NULL, 'E5: the trigger refuses programs of another business');
SELECT throws_ok($$INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES (carm.business_id('123456782'), pg_temp.uid('mallory'), 'BAM', '{1}')$$,
                 '22023', NULL, 'E5: the trigger refuses a BAM with a list');
-- pg_restore loads carm.employee before carm.program: without an actor, a
-- program id not loaded yet passes; with an actor it is refused
SELECT lives_ok($$INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES (carm.business_id('123456782'), pg_temp.uid('mallory'), 'VIEWER', '{999999}')$$,
                'E5: without an actor (a restore), a program id not loaded yet passes');
DELETE FROM carm.employee WHERE user_id = pg_temp.uid('mallory');
SELECT pg_temp.act('bob');
SELECT throws_ok($$INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES (carm.business_id('123456782'), pg_temp.uid('mallory'), 'VIEWER', '{999999}')$$,
                 '22023', NULL, 'E5: with an actor, an unknown program id is refused');
SELECT carm.reset_actor() \g /dev/null

-- E12 --------------------------------------------------------------------------------------------
SELECT lives_ok($$SELECT carm.add_program_account('123456782RM0004')$$, 'E12: a program account is added later');
SELECT ok(pg_temp.can('bob', '123456782RM0004', 'payments.manage'), 'E12: a BAM covers it at once');
SELECT ok(pg_temp.can('carol', '123456782RM0004', 'rulings.edit'), 'E12: so does an all-programs employee');
SELECT ok(NOT pg_temp.can('dave', '123456782RM0004', 'rulings.view'), 'E12: a listed scope does not');

-- E8 ---------------------------------------------------------------------------------------------
SELECT pg_temp.act('bob');
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L, %L)', '123456782', pg_temp.uid('dave'), 'PAM', '{123456782RM0002}'),
                'E7: dave becomes PAM');
SELECT pg_temp.act('dave');
SELECT throws_ok(format('SELECT carm.remove_employee(%L, %s)', '123456782', pg_temp.uid('alice')),
                 '42501', NULL, 'E8: only a BAM removes employees');
SELECT pg_temp.act('bob');
SELECT throws_ok(format('SELECT carm.remove_employee(%L, %s)', '123456782', pg_temp.uid('mallory')),
                 'P0002', NULL, 'E8: removing a non-employee is P0002');
SELECT throws_ok($$SELECT carm.remove_employee('123456782', NULL)$$, '22004', NULL,
                 'E8: removing a NULL user is 22004');
SELECT lives_ok(format('SELECT carm.remove_employee(%L, %s)', '123456782', pg_temp.uid('carol')),
                'E8: a BAM removes an employee');
SELECT ok(NOT pg_temp.can('carol', '123456782', 'business_profile.view'), 'E8/E13: the removed employee has no access');
-- the service-provider side: frank's proxy and group assignments go with him
SELECT pg_temp.act('grace');
SELECT lives_ok($$SELECT carm.register_business('111111118', '111111118RM0001')$$, 'E1: grace registers the broker');
SELECT pg_temp.act('frank');
SELECT isnt(carm.request_employee_access('111111118', 'Broker'), NULL, 'E2: frank asks the broker');
SELECT pg_temp.act('grace');
SELECT lives_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('frank', '111111118'), 'EDITOR'),
                'E3: grace approves frank');
SELECT carm.reset_actor() \g /dev/null
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment)
VALUES (carm.business_id('111111118'), carm.business_id('123456782'), 'active', 'BUSINESS', 'brokerage');
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, pg_temp.uid('frank'), 'PEDITOR' FROM carm.relationship r;
INSERT INTO carm.client_group (provider_id, name) VALUES (carm.business_id('111111118'), 'Importers');
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, g.provider_id, carm.business_id('123456782') FROM carm.client_group g;
INSERT INTO carm.group_employee (group_id, user_id, role)
SELECT g.id, pg_temp.uid('frank'), 'PVIEWER' FROM carm.client_group g;
SELECT ok(pg_temp.can('frank', '123456782RM0001', 'rulings.edit'), 'E8 (setup): frank holds a proxy role on the client');
SELECT pg_temp.act('grace');
SELECT lives_ok(format('SELECT carm.remove_employee(%L, %s)', '111111118', pg_temp.uid('frank')),
                'E8: the broker''s BAM removes frank');
SELECT is((SELECT count(*)::int FROM carm.client_assignment WHERE user_id = pg_temp.uid('frank')), 0,
          'E8: removal deletes the proxy assignments made for the user');
SELECT is((SELECT count(*)::int FROM carm.group_employee WHERE user_id = pg_temp.uid('frank')), 0,
          'E8: removal deletes the client-group assignments made for the user');
SELECT pg_temp.act('frank');
SELECT isnt(carm.request_employee_access('111111118', 'Back'), NULL, 'E2: frank asks again');
SELECT pg_temp.act('grace');
SELECT lives_ok(format('SELECT carm.approve_employee_access(%s, %L)', pg_temp.request_of('frank', '111111118'), 'EDITOR'),
                'E3: grace approves frank again');
SELECT ok(NOT pg_temp.can('frank', '123456782RM0001', 'rulings.view'), 'E8: approving the user again restores nothing');
-- E11: promotion to BAM drops individual assignments (a BAM holds R6's roles)
SELECT carm.reset_actor() \g /dev/null
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, pg_temp.uid('frank'), 'PVIEWER' FROM carm.relationship r;
SELECT pg_temp.act('grace');
SELECT lives_ok(format('SELECT carm.set_employee_access(%L, %s, %L)', '111111118', pg_temp.uid('frank'), 'BAM'),
                'E11: grace promotes frank to BAM');
SELECT is((SELECT count(*)::int FROM carm.client_assignment WHERE user_id = pg_temp.uid('frank')), 0,
          'E11: a promoted BAM keeps no individual assignment');

-- §9 (as the application role: the superuser running this file is carm_admin) ----------------
SET LOCAL ROLE regress_tap_app;
SELECT pg_temp.act('bob');
SELECT ok((SELECT count(*) FROM carm.audit_events('123456782') WHERE event = 'employee_removed') = 1,
          '§9: a BAM reads its business''s audit events, removals included');
SELECT pg_temp.act('dave');
SELECT throws_ok($$SELECT * FROM carm.audit_events('123456782')$$, '42501', NULL,
                 '§9: a PAM cannot read the audit events');
SELECT throws_ok($$SELECT * FROM carm.audit_events()$$, '42501', NULL,
                 '§9: nor the whole trail');
RESET ROLE;
SELECT throws_ok($$UPDATE carm.audit_event SET event = 'x'$$, '42501', NULL, '§9: the audit trail is append-only');

SELECT * FROM finish();
ROLLBACK;
