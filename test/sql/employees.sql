-- §4 employee delegation, E1-E13, told as a story: Acme Imports (an importer
-- with three program accounts) registers, takes on employees, changes their
-- roles and removes them; Northern Brokers (a customs broker) shows what
-- removal revokes on the service-provider side (E8).
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
-- This transcript changes actors between statements with session actors
-- (set_actor(..., false)), which are off by default (SPEC §10 rev. 1.2).
SET carm_deleg.allow_session_actor = on;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_emp_app') THEN
    CREATE ROLE regress_emp_app NOLOGIN;
  END IF;
END
$$;
GRANT carm_gateway TO regress_emp_app;

-- Test scaffolding, owned by the superuser running the test:
-- try() shows ok or the SQLSTATE and message of a statement;
-- uid() is a user's id; levels() is the highest level a user holds on a target
-- for each of the nine functions of §3.1, in order (business_profile,
-- program_profile, employee_access, relationships, rulings, payments,
-- statements, notifications, banking): M manage, E edit, V view, - none.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
CREATE FUNCTION pg_temp.uid(ext text) RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT id FROM carm.app_user WHERE external_id = ext
$$;
CREATE FUNCTION pg_temp.levels(ext text, target text) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER AS $$
  SELECT string_agg(CASE WHEN carm.user_has_access(pg_temp.uid(ext), target, f || '.manage') THEN 'M'
                         WHEN carm.user_has_access(pg_temp.uid(ext), target, f || '.edit') THEN 'E'
                         WHEN carm.user_has_access(pg_temp.uid(ext), target, f || '.view') THEN 'V'
                         ELSE '-' END, '' ORDER BY n)
  FROM unnest(ARRAY['business_profile','program_profile','employee_access','relationships','rulings',
                    'payments','statements','notifications','banking']) WITH ORDINALITY AS x(f, n)
$$;
CREATE FUNCTION pg_temp.access(VARIADIC users text[])
RETURNS TABLE (who text, acme text, rm0001 text, rm0002 text, rm0003 text)
LANGUAGE sql STABLE AS $$
  SELECT u, pg_temp.levels(u, '123456782'), pg_temp.levels(u, '123456782RM0001'),
         pg_temp.levels(u, '123456782RM0002'), pg_temp.levels(u, '123456782RM0003')
  FROM unnest(users) WITH ORDINALITY AS x(u, n) ORDER BY n
$$;

-- Reference data (carm_admin's job; the superuser here).
SELECT carm.add_business('123456782', 'Acme Imports', '{IMPORTER}') IS NOT NULL AS acme,
       carm.add_business('111111118', 'Northern Brokers', '{CUSTOMS_BROKER}') IS NOT NULL AS northern;
SELECT count(carm.add_program_account(p)) AS programs
FROM unnest(ARRAY['123456782RM0001','123456782RM0002','123456782RM0003','111111118RM0001']) p;
SELECT count(carm.register_user(u, initcap(u))) AS users
FROM unnest(ARRAY['alice','bob','carol','dave','erin','frank','grace','mallory']) u;

-- From here on, the application's connection role acts for the users.
SET ROLE regress_emp_app;

-- E13: a user with no approved association has no access to anything.
SELECT carm.set_actor('mallory', false);
SELECT * FROM pg_temp.access('mallory');
SELECT carm.has_access('123456782RM0001', 'statements.view') AS mallory_sees_statements;
SELECT * FROM carm.my_businesses();

-- E1: the first user to register a business becomes its BAM, proving the link
-- with one of its program accounts.  Unknown or wrong numbers: 22023.
SELECT carm.set_actor('alice', false);
SELECT pg_temp.try($$SELECT carm.register_business('123456782', '111111118RM0001')$$) AS other_business_program;
SELECT pg_temp.try($$SELECT carm.register_business('123456782', '123456782RM0009')$$) AS unknown_program;
SELECT pg_temp.try($$SELECT carm.register_business('222222226', '222222226RM0001')$$) AS unknown_business;
SELECT pg_temp.try($$SELECT carm.register_business('123456789', '123456782RM0001')$$) AS bad_check_digit;
SELECT pg_temp.try($$SELECT carm.register_business('123456782', NULL)$$) AS null_program;
-- E10: the business now has exactly one BAM, hence the warning.
SELECT carm.register_business('123456782', '123456782RM0001');
SELECT bn9, legal_name, role, programs FROM carm.my_businesses();
-- Once it has a BAM, others ask that BAM for access (55000).
SELECT carm.set_actor('bob', false);
SELECT pg_temp.try($$SELECT carm.register_business('123456782', '123456782RM0002')$$) AS second_registration;

-- E2: employees ask for access with a comment; one pending request each.
SELECT carm.request_employee_access('123456782', 'Accounts payable, I handle RM0001 and RM0002') AS bob_request;
SELECT pg_temp.try($$SELECT carm.request_employee_access('123456782', 'me again')$$) AS duplicate_request;
SELECT carm.set_actor('carol', false);
SELECT pg_temp.try($$SELECT carm.request_employee_access('123456782', '   ')$$) AS blank_comment;
SELECT pg_temp.try($$SELECT carm.request_employee_access('123456782', NULL)$$) AS null_comment;
SELECT pg_temp.try($$SELECT carm.request_employee_access('123456782', repeat('x', 5000))$$) AS huge_comment;
SELECT pg_temp.try($$SELECT carm.request_employee_access('222222226', 'hello')$$) AS unknown_business;
SELECT carm.request_employee_access('123456782', 'Customs desk, Montréal') AS carol_request;
SELECT carm.set_actor('dave', false);
SELECT carm.request_employee_access('123456782', 'Payments clerk') AS dave_request;
SELECT carm.set_actor('erin', false);
SELECT carm.request_employee_access('123456782', 'Summer intern') AS erin_request;
-- a requester can withdraw, and ask again
SELECT carm.withdraw_employee_access_request(4);
SELECT pg_temp.try($$SELECT carm.withdraw_employee_access_request(4)$$) AS withdraw_twice;
SELECT carm.request_employee_access('123456782', 'Summer intern, second try') AS erin_again;
-- a pending request gives nothing (E13)
SELECT * FROM pg_temp.access('erin');
-- an employee cannot ask again (55000)
SELECT carm.set_actor('alice', false);
SELECT pg_temp.try($$SELECT carm.request_employee_access('123456782', 'I am the BAM')$$) AS employee_requests;

-- E3: the BAM lists the requests, with the requesters' comments.
SELECT request_id, external_id, comment, status FROM carm.employee_access_requests('123456782');
-- a requester cannot list them
SELECT carm.set_actor('carol', false);
SELECT pg_temp.try($$SELECT * FROM carm.employee_access_requests('123456782')$$) AS requester_lists;

-- E5: approval gives one role and a scope: NULL = all programs, or a list of
-- the business's own program accounts.
SELECT carm.set_actor('alice', false);
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'BAM with a list',        $$SELECT carm.approve_employee_access(1, 'BAM', '{123456782RM0001}')$$),
  (2, 'unknown role',           $$SELECT carm.approve_employee_access(1, 'OWNER')$$),
  (3, 'proxy role',             $$SELECT carm.approve_employee_access(1, 'PBAM')$$),
  (4, 'null role',              $$SELECT carm.approve_employee_access(1, NULL)$$),
  (5, 'another business''s',    $$SELECT carm.approve_employee_access(1, 'PAM', '{111111118RM0001}')$$),
  (6, 'empty list',             $$SELECT carm.approve_employee_access(1, 'PAM', '{}')$$),
  (7, 'null in list',           $$SELECT carm.approve_employee_access(1, 'PAM', '{123456782RM0001,NULL}')$$),
  (8, 'malformed program',      $$SELECT carm.approve_employee_access(1, 'PAM', '{RM0001}')$$),
  (9, 'unknown request',        $$SELECT carm.approve_employee_access(99, 'PAM')$$),
  (10, 'null request',          $$SELECT carm.approve_employee_access(NULL, 'PAM')$$)
) AS t(n, what, stmt) ORDER BY n;
SELECT carm.approve_employee_access(1, 'pam', '{123456782RM0002,123456782RM0001,123456782RM0001}');
SELECT pg_temp.try($$SELECT carm.approve_employee_access(1, 'PAM')$$) AS approve_twice;

-- E3: a PAM approves too, but only PAM, EDITOR or VIEWER, and only on a listed
-- subset of its own program accounts.
SELECT carm.set_actor('bob', false);
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'all programs',           $$SELECT carm.approve_employee_access(2, 'EDITOR')$$),
  (2, 'a program not his',      $$SELECT carm.approve_employee_access(2, 'EDITOR', '{123456782RM0001,123456782RM0003}')$$),
  (3, 'BAM',                    $$SELECT carm.approve_employee_access(2, 'BAM')$$)
) AS t(n, what, stmt) ORDER BY n;
SELECT carm.approve_employee_access(2, 'EDITOR', '{123456782RM0001}');
SELECT carm.approve_employee_access(3, 'VIEWER', '{123456782RM0002}');

-- E4: rejection needs a reason, which the requester sees.
SELECT pg_temp.try($$SELECT carm.reject_employee_access(5, '')$$) AS blank_reason;
SELECT pg_temp.try($$SELECT carm.reject_employee_access(5, NULL)$$) AS null_reason;
SELECT carm.reject_employee_access(5, 'Internships end in August; ask again next summer');
SELECT pg_temp.try($$SELECT carm.reject_employee_access(5, 'twice')$$) AS reject_twice;
SELECT carm.set_actor('erin', false);
SELECT request_id, bn9, status, reason FROM carm.my_access_requests();
SELECT event, message FROM carm.my_notifications();
SELECT * FROM pg_temp.access('erin');

-- What each role gives (§3.2, E5): the BAM everything; bob, PAM on RM0001 and
-- RM0002; carol, EDITOR on RM0001; dave, VIEWER on RM0002.  Business-level
-- functions need an all-programs role; any employee views the business profile.
SELECT * FROM pg_temp.access('alice', 'bob', 'carol', 'dave');
SELECT carm.set_actor('carol', false);
SELECT bn9, role, programs FROM carm.my_businesses();
SELECT event, message FROM carm.my_notifications();

-- E6: nobody changes, removes or approves their own access.
SELECT carm.set_actor('alice', false);
SELECT pg_temp.try($$SELECT carm.set_employee_access('123456782', pg_temp.uid('alice'), 'PAM', '{123456782RM0001}')$$) AS bam_demotes_herself;
SELECT pg_temp.try($$SELECT carm.remove_employee('123456782', pg_temp.uid('alice'))$$) AS bam_removes_herself;
SELECT carm.set_actor('bob', false);
SELECT pg_temp.try($$SELECT carm.set_employee_access('123456782', pg_temp.uid('bob'), 'PAM', '{123456782RM0001,123456782RM0002,123456782RM0003}')$$) AS pam_widens_himself;

-- E7: BAM > PAM > EDITOR/VIEWER.  EDITOR and VIEWER manage nobody; a PAM
-- changes only non-BAM employees whose whole scope lies within its programs.
SELECT carm.set_actor('carol', false);
SELECT pg_temp.try($$SELECT carm.set_employee_access('123456782', pg_temp.uid('dave'), 'VIEWER', '{123456782RM0001}')$$) AS editor_changes_viewer;
SELECT pg_temp.try($$SELECT * FROM carm.employees('123456782')$$) AS editor_lists;
SELECT carm.set_actor('bob', false);
SELECT pg_temp.try($$SELECT carm.set_employee_access('123456782', pg_temp.uid('alice'), 'VIEWER', '{123456782RM0001}')$$) AS pam_changes_bam;
SELECT carm.set_employee_access('123456782', pg_temp.uid('dave'), 'EDITOR', '{123456782RM0001,123456782RM0002}');
-- alice gives dave RM0003 as well: now outside bob's programs
SELECT carm.set_actor('alice', false);
SELECT carm.set_employee_access('123456782', pg_temp.uid('dave'), 'EDITOR', '{123456782RM0002,123456782RM0003}');
SELECT carm.set_actor('bob', false);
SELECT pg_temp.try($$SELECT carm.set_employee_access('123456782', pg_temp.uid('dave'), 'VIEWER', '{123456782RM0002}')$$) AS pam_changes_outside;
-- the PAM's list shows whom it may change
SELECT external_id, role, programs, can_change FROM carm.employees('123456782');
SELECT carm.set_actor('alice', false);
SELECT external_id, role, programs, can_change FROM carm.employees('123456782');

-- E8: only a BAM removes an employee.
SELECT carm.set_actor('bob', false);
SELECT pg_temp.try($$SELECT carm.remove_employee('123456782', pg_temp.uid('carol'))$$) AS pam_removes;
SELECT carm.set_actor('alice', false);
SELECT pg_temp.try($$SELECT carm.remove_employee('123456782', pg_temp.uid('mallory'))$$) AS not_an_employee;
SELECT pg_temp.try($$SELECT carm.remove_employee('123456782', 999)$$) AS unknown_user;
SELECT pg_temp.try($$SELECT carm.remove_employee('123456782', NULL)$$) AS null_user;
SELECT carm.remove_employee('123456782', pg_temp.uid('carol'));
SELECT * FROM pg_temp.access('carol');

-- E11: promotion to BAM gives the business and every program at once ...
SELECT carm.set_employee_access('123456782', pg_temp.uid('bob'), 'BAM');
SELECT * FROM pg_temp.access('bob');
-- ... and a BAM may change another BAM (E7).  Demotion leaves exactly the new
-- role's scope; E10 warns that one BAM is left.
SELECT carm.set_actor('bob', false);
SELECT carm.set_employee_access('123456782', pg_temp.uid('alice'), 'VIEWER', '{123456782RM0001}');
SELECT * FROM pg_temp.access('alice');

-- E9: the last BAM cannot go.  Through the API E6 already prevents it; a
-- direct write by the extension owner meets the same invariant (23514).
RESET ROLE;
-- (with an actor set, even the owner's writes are judged as that actor's: E6)
SELECT pg_temp.try($$DELETE FROM carm.employee WHERE user_id = pg_temp.uid('bob')$$) AS bob_acting;
SELECT carm.reset_actor();
SELECT pg_temp.try($$DELETE FROM carm.employee WHERE user_id = pg_temp.uid('bob')$$) AS owner_removes_last_bam;
SELECT pg_temp.try($$UPDATE carm.employee SET role = 'PAM', programs = ARRAY[carm.program_id('123456782RM0001')] WHERE user_id = pg_temp.uid('bob')$$) AS owner_demotes_last_bam;
-- direct writes still meet E5
SELECT pg_temp.try($$UPDATE carm.employee SET programs = '{}' WHERE user_id = pg_temp.uid('dave')$$) AS owner_empty_scope;
SELECT pg_temp.try($$UPDATE carm.employee SET programs = ARRAY[carm.program_id('111111118RM0001')] WHERE user_id = pg_temp.uid('dave')$$) AS owner_foreign_program;
SELECT pg_temp.try($$UPDATE carm.employee SET role = 'BOSS' WHERE user_id = pg_temp.uid('dave')$$) AS owner_unknown_role;
SELECT pg_temp.try($$UPDATE carm.employee SET user_id = pg_temp.uid('mallory') WHERE user_id = pg_temp.uid('dave')$$) AS owner_moves_row;

-- E12: a program account added later is covered at once by every
-- all-programs grant, and by no listed scope (the V left for alice and dave
-- is business_profile.view, which every employee has).
SELECT carm.add_program_account('123456782RM0004') IS NOT NULL AS rm0004_added;
SELECT who, pg_temp.levels(who, '123456782RM0004') AS rm0004
FROM unnest(ARRAY['bob', 'alice', 'dave']) WITH ORDINALITY AS x(who, n) ORDER BY n;
SET ROLE regress_emp_app;

-- E8 on the service-provider side.  Northern Brokers has a relationship with
-- Acme; frank, one of its employees, holds a proxy role on Acme through an
-- individual assignment and a client group (written here by the owner: the
-- relationship API is another chapter).
SELECT carm.set_actor('grace', false);
SELECT carm.register_business('111111118', '111111118RM0001');
SELECT carm.set_actor('frank', false);
SELECT carm.request_employee_access('111111118', 'Broker, Acme account') AS frank_request;
SELECT carm.set_actor('grace', false);
SELECT carm.approve_employee_access(6, 'EDITOR');
RESET ROLE;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment)
VALUES (carm.business_id('111111118'), carm.business_id('123456782'), 'active', 'BUSINESS', 'Customs brokerage');
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, pg_temp.uid('frank'), 'PEDITOR' FROM carm.relationship r;
INSERT INTO carm.client_group (provider_id, name) VALUES (carm.business_id('111111118'), 'Importers');
INSERT INTO carm.group_client (group_id, provider_id, client_id)
SELECT g.id, g.provider_id, carm.business_id('123456782') FROM carm.client_group g;
INSERT INTO carm.group_employee (group_id, user_id, role)
SELECT g.id, pg_temp.uid('frank'), 'PVIEWER' FROM carm.client_group g;
SET ROLE regress_emp_app;
SELECT * FROM pg_temp.access('frank');
SELECT carm.remove_employee('111111118', pg_temp.uid('frank'));
RESET ROLE;
SELECT (SELECT count(*) FROM carm.client_assignment) AS assignments,
       (SELECT count(*) FROM carm.group_employee) AS group_members;
SET ROLE regress_emp_app;
-- approving frank again later restores nothing on the client
SELECT carm.set_actor('frank', false);
SELECT carm.request_employee_access('111111118', 'Back from leave') AS frank_again;
SELECT carm.set_actor('grace', false);
SELECT carm.approve_employee_access(7, 'EDITOR');
SELECT * FROM pg_temp.access('frank');

-- Listings: the requester's view (E4) and the business's (E2).
SELECT carm.set_actor('bob', false);
SELECT request_id, external_id, status, role, programs, reason FROM carm.employee_access_requests('123456782');
SELECT carm.set_actor('dave', false);
SELECT bn9, role, programs FROM carm.my_businesses();
SELECT event, message FROM carm.my_notifications();

-- §9: every change is in the audit trail, readable by the business's BAMs.
SELECT carm.set_actor('bob', false);
SELECT event, actor_id, target_user_id, details FROM carm.audit_events('123456782')
WHERE event NOT IN ('business_added', 'program_added') ORDER BY id;
SELECT carm.set_actor('dave', false);
SELECT pg_temp.try($$SELECT * FROM carm.audit_events('123456782')$$) AS non_bam_reads_audit;

-- Without an actor every function refuses (42501).
SELECT carm.reset_actor();
SELECT n, pg_temp.try(stmt) FROM (VALUES
  (1, $$SELECT carm.register_business('123456782', '123456782RM0001')$$),
  (2, $$SELECT carm.request_employee_access('123456782', 'x')$$),
  (3, $$SELECT carm.withdraw_employee_access_request(1)$$),
  (4, $$SELECT carm.approve_employee_access(1, 'PAM')$$),
  (5, $$SELECT carm.reject_employee_access(1, 'x')$$),
  (6, $$SELECT carm.set_employee_access('123456782', 1, 'PAM')$$),
  (7, $$SELECT carm.remove_employee('123456782', 1)$$),
  (8, $$SELECT * FROM carm.employees('123456782')$$),
  (9, $$SELECT * FROM carm.employee_access_requests('123456782')$$),
  (10, $$SELECT * FROM carm.my_access_requests()$$),
  (11, $$SELECT * FROM carm.my_businesses()$$)
) AS t(n, stmt) ORDER BY n;

RESET ROLE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_emp_app;
