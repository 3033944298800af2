-- §7 client groups: G1-G9 as small assertions, refusals by SQLSTATE.
-- Runs in one transaction that is rolled back.
\set ON_ERROR_STOP 1
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\pset pager off
BEGIN;
SET LOCAL client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
SELECT plan(88);

-- Setup: providers, clients, users, employees, relationships -------------
SELECT carm.add_business('100000009', 'Broker One', '{CUSTOMS_BROKER}') AS broker \gset
SELECT carm.add_business('100000017', 'Consult Two', '{TRADE_CONSULTANT}') AS consult \gset
SELECT carm.add_business('200000008', 'Client A', '{IMPORTER}') AS ca \gset
SELECT carm.add_business('200000016', 'Client B', '{IMPORTER}') AS cb \gset
SELECT carm.add_business('200000024', 'Client C', '{IMPORTER}') AS cc \gset
SELECT carm.add_business('200000032', 'Client D', '{IMPORTER}') AS cd \gset
SELECT carm.add_business('200000040', 'Client E', '{IMPORTER}') AS ce \gset
SELECT carm.add_business('300000007', 'Plain Importer', '{IMPORTER}') AS imp \gset
SELECT count(carm.add_program_account(x)) AS programs
FROM unnest(ARRAY['200000008RM0001','200000008RM0002','200000016RM0001','200000016RM0002',
                  '200000024RM0001','200000032RM0001','200000040RM0001']) x \gset
SELECT carm.register_user('bam', 'Bea Broker') AS bam \gset
SELECT carm.register_user('bam2', 'Bo Broker') AS bam2 \gset
SELECT carm.register_user('pam', 'Pat Program') AS pam \gset
SELECT carm.register_user('ed', 'Ed Editor') AS ed \gset
SELECT carm.register_user('vi', 'Vi Viewer') AS vi \gset
SELECT carm.register_user('gone', 'Gus Gone') AS gone \gset
SELECT carm.register_user('stranger', 'Sam Stranger') AS stranger \gset
SELECT carm.register_user('cbam', 'Cy Consult') AS cbam \gset
SELECT carm.register_user('ibam', 'Ida Importer') AS ibam \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES
  (:broker, :bam, 'BAM'), (:broker, :bam2, 'BAM'), (:broker, :pam, 'PAM'),
  (:broker, :ed, 'EDITOR'), (:broker, :vi, 'VIEWER'), (:broker, :gone, 'EDITOR'),
  (:consult, :cbam, 'BAM'), (:imp, :ibam, 'BAM');
UPDATE carm.app_user SET active = false WHERE id = :gone;
-- A BUSINESS, B PROGRAM (RM0001), C expired by time, D BUSINESS, no E.
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs, expires_at, comment)
VALUES (:broker, :ca, 'active', 'BUSINESS', NULL, NULL, 'customs'),
       (:broker, :cb, 'active', 'PROGRAM', ARRAY[carm.program_id('200000016RM0001')], NULL, 'customs'),
       (:broker, :cc, 'active', 'BUSINESS', NULL, now() - interval '1 hour', 'customs'),
       (:broker, :cd, 'active', 'BUSINESS', NULL, NULL, 'customs'),
       (:consult, :ca, 'active', 'BUSINESS', NULL, NULL, 'advice');
SELECT id AS rel_a FROM carm.relationship WHERE provider_id = :broker AND client_id = :ca \gset
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_tap_gw') THEN
    CREATE ROLE regress_tap_gw NOLOGIN;   -- dropped by the final ROLLBACK
  END IF;
END
$$;
GRANT carm_gateway TO regress_tap_gw;

-- G1 -----------------------------------------------------------------------
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'Alpha')$$, '42501', 'no acting user',
                 '§2: no acting user');
SELECT carm.set_actor(:stranger);
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'Alpha')$$, '42501', NULL,
                 'G1: a user who is not an employee cannot create a group');
SELECT carm.set_actor(:pam);
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'Alpha')$$, '42501', NULL,
                 'G1: a provider PAM cannot create a group');
SELECT carm.set_actor(:ed);
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'Alpha')$$, '42501', NULL,
                 'G1: a provider EDITOR cannot create a group');
SELECT carm.set_actor(:cbam);
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'Alpha')$$, '42501', NULL,
                 'G1: the BAM of another provider cannot create a group');
SELECT carm.set_actor(:ibam);
SELECT throws_ok($$SELECT carm.create_client_group('300000007', 'Alpha')$$, '42501',
                 'business 300000007 is not a service provider',
                 'G1: a business that is not a service provider has no groups (42501), even for its BAM');
-- the superuser running this file is carm_admin, who reads every listing
SELECT throws_ok($$SET LOCAL ROLE regress_tap_gw; SELECT carm.group_requests('100000009')$$, '42501', NULL,
                 'G1: only the provider''s BAMs read its request-processing table');
SELECT throws_ok($$SET LOCAL ROLE regress_tap_gw; SELECT carm.client_groups('300000007')$$, '42501',
                 'business 300000007 is not a service provider',
                 'G1: a business that is not a service provider has no groups to list');
SELECT throws_ok($$SELECT carm.create_client_group('12345', 'Alpha')$$, '22023', NULL,
                 '§10: a malformed provider BN9 is 22023');
SELECT throws_ok($$SELECT carm.create_client_group('400000006', 'Alpha')$$, 'P0002', NULL,
                 '§10: an unknown provider is P0002');

-- G2 -----------------------------------------------------------------------
SELECT carm.set_actor(:bam);
SELECT lives_ok($$SELECT carm.create_client_group('100000009', ' Alpha ')$$, 'G1: a provider BAM creates a group');
SELECT id AS alpha FROM carm.client_group WHERE name = 'Alpha' \gset
SELECT is((SELECT name FROM carm.client_group WHERE id = :alpha), 'Alpha', 'G2: the name is stored trimmed');
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'ALPHA')$$, '23505', NULL,
                 'G2: names are unique ignoring case');
SELECT throws_ok($$SELECT carm.create_client_group('100000009', '  alpha  ')$$, '23505', NULL,
                 'G2: names are unique ignoring surrounding spaces');
SELECT throws_ok($$SELECT carm.create_client_group('100000009', '  ')$$, '22023', NULL,
                 'G2: a blank name is refused');
SELECT throws_ok($$SELECT carm.create_client_group('100000009', NULL)$$, '22004', NULL,
                 'G2, §10 (rev. 1.2): a NULL name is refused, 22004');
SELECT lives_ok($$SELECT carm.create_client_group('100000009', 'Omega')$$, 'G2: another name is fine');
SELECT id AS omega FROM carm.client_group WHERE name = 'Omega' \gset
SELECT lives_ok(format('SELECT carm.delete_client_group(%s)', :omega), 'G8: delete a group');
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'omega ')$$, '23505', NULL,
                 'G2: the name of a deleted group stays taken');
SELECT carm.set_actor(:cbam);
SELECT lives_ok($$SELECT carm.create_client_group('100000017', 'alpha')$$,
                'G2: names are unique within one provider only');

-- G3 -----------------------------------------------------------------------
SELECT carm.set_actor(:bam);
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L, %L, %L, %L])', :alpha,
                        '200000040', '200000008', '200000024', '200000040'),
                 '22023', 'clients not available for client group "Alpha": 200000024, 200000040',
                 'G3: clients without an active (or with a time-expired) relationship are all named');
SELECT is((SELECT count(*) FROM carm.group_client WHERE group_id = :alpha), 0::bigint,
          'G3: nothing is applied when one client is not available');
SELECT throws_ok($$SELECT carm.create_client_group('100000009', 'Beta', ARRAY['200000008', '200000040'])$$,
                 '22023', 'clients not available for client group "Beta": 200000040',
                 'G3: create_client_group checks its clients');
SELECT is((SELECT count(*) FROM carm.client_group WHERE name = 'Beta'), 0::bigint,
          'G3: a group created with an unavailable client is not created');
SELECT lives_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L, %L])', :alpha, '200000008', '200000016'),
                'G3: available clients are added');
SELECT lives_ok($$SELECT carm.create_client_group('100000009', 'Beta', ARRAY['200000032'])$$,
                'G3: a group created with clients');
SELECT id AS beta FROM carm.client_group WHERE name = 'Beta' \gset
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L, %L])', :beta, '200000016', '200000008'),
                 '22023', 'clients not available for client group "Beta": 200000008, 200000016',
                 'G3: clients already in another group of the provider are all named');
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L])', :beta, '12345'), '22023', NULL,
                 '§10: a malformed BN9 in the list is 22023');
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, %L)', :beta, '{}'), '22023', NULL,
                 '§10: an empty client list is 22023');
SELECT lives_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L])', :beta, '200000032'),
                'G3: a client already in this very group is left as it is');
SELECT carm.set_actor(:cbam);
SELECT lives_ok($$SELECT carm.create_client_group('100000017', 'Gamma', ARRAY['200000008'])$$,
                'G3: a client may be in groups of different providers');
SELECT carm.set_actor(:bam);
SELECT is((SELECT array_agg(client ORDER BY client) FROM carm.available_clients('100000009')),
          NULL::text[], 'G3: no client of Broker One is available any more');

-- G4 -----------------------------------------------------------------------
SELECT throws_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s, %s]::bigint[], %L)', :alpha, :ed, :bam2, 'PEDITOR'),
                 '22023', format('users cannot be employees of client group "Alpha": %s', :bam2),
                 'G4: a provider BAM cannot be a group employee');
SELECT throws_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s, %s]::bigint[], %L)', :alpha, :stranger, :cbam, 'PEDITOR'),
                 '22023', format('users cannot be employees of client group "Alpha": %s, %s', :stranger, :cbam),
                 'G4: users who are not provider employees are all named');
SELECT throws_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :alpha, :gone, 'PEDITOR'),
                 '22023', NULL, 'G4: a deactivated employee is not an active employee');
SELECT throws_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :alpha, :ed, 'PBAM'),
                 '22023', NULL, 'G4: PBAM is not a group role');
SELECT throws_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :alpha, :ed, 'EDITOR'),
                 '22023', NULL, 'G4: an employee role is not a group role');
SELECT is((SELECT count(*) FROM carm.group_employee), 0::bigint, 'G4: refused assignments apply nothing');
SELECT lives_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s, %s]::bigint[], %L)', :alpha, :ed, :pam, 'PEDITOR'),
                'G4: provider EDITOR and PAM become group employees');
SELECT lives_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :beta, :vi, 'PVIEWER'),
                'G4: provider VIEWER becomes a group employee');
SELECT ok(carm.user_has_access(:ed, '200000008RM0001', 'rulings.edit')
          AND carm.user_has_access(:ed, '200000008RM0002', 'payments.edit')
          AND NOT carm.user_has_access(:ed, '200000008RM0001', 'rulings.manage'),
          'G4: the group role applies on every program of a BUSINESS relationship, at its level');
SELECT ok(carm.user_has_access(:ed, '200000016RM0001', 'rulings.edit')
          AND NOT carm.user_has_access(:ed, '200000016RM0002', 'rulings.view'),
          'G4: only the programs a PROGRAM relationship delegates');
SELECT ok(NOT carm.user_has_access(:ed, '200000008RM0001', 'banking.view')
          AND NOT carm.user_has_access(:ed, '200000008', 'business_profile.view'),
          'G4/R11: a group role has no banking and no client business profile');
SELECT ok(NOT carm.user_has_access(:ed, '200000032RM0001', 'rulings.view')
          AND carm.user_has_access(:vi, '200000032RM0001', 'rulings.view')
          AND NOT carm.user_has_access(:vi, '200000032RM0001', 'rulings.edit'),
          'G4: employees act only for the clients of their own group');
SELECT lives_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :alpha, :ed, 'PPAM'),
                'G4: assigning again changes the default role');
SELECT ok(carm.user_has_access(:ed, '200000008RM0001', 'rulings.manage'), 'G4: the new default role applies');

-- G5 -----------------------------------------------------------------------
INSERT INTO carm.client_assignment (relationship_id, user_id, role) VALUES (:rel_a, :ed, 'PVIEWER');
SELECT ok(NOT carm.user_has_access(:ed, '200000008RM0001', 'rulings.edit')
          AND carm.user_has_access(:ed, '200000008RM0001', 'rulings.view')
          AND carm.user_has_access(:ed, '200000016RM0001', 'rulings.manage'),
          'G5: an individual assignment overrides the group role for that client only, even when lower');

-- unassigning ends the group role only; an individual assignment is not the group's
INSERT INTO carm.client_assignment (relationship_id, user_id, role)
SELECT r.id, :vi, 'PEDITOR' FROM carm.relationship r WHERE r.provider_id = :broker AND r.client_id = :cb;
SELECT lives_ok(format('SELECT carm.unassign_group_employees(%s, ARRAY[%s]::bigint[])', :beta, :vi),
                'unassign an employee from a group');
SELECT ok(NOT carm.user_has_access(:vi, '200000032RM0001', 'rulings.view')
          AND carm.user_has_access(:vi, '200000016RM0001', 'rulings.edit'),
          'G4: the unassigned employee loses the group role but keeps individual assignments');
SELECT lives_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :beta, :vi, 'PVIEWER'),
                'G4: assign the employee again');

-- G6 / G7 --------------------------------------------------------------------
SELECT lives_ok(format('SELECT carm.remove_group_clients(%s, ARRAY[%L])', :beta, '200000032'),
                'G7: remove a client from a group');
SELECT ok(NOT carm.user_has_access(:vi, '200000032RM0001', 'rulings.view'),
          'G7: the group employees lose access to the removed client');
SELECT lives_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L])', :alpha, '200000032'),
                'G6: add the now available client to another group');
SELECT ok(carm.user_has_access(:ed, '200000032RM0001', 'rulings.manage'),
          'G6: the group employees act for the added client at once');
SELECT throws_ok(format('SELECT carm.remove_group_clients(%s, ARRAY[%L, %L])', :alpha, '200000008', '200000024'),
                 '22023', 'clients not in client group "Alpha": 200000024',
                 'G7: clients not in the group are named; nothing is removed');
SELECT lives_ok(format('SELECT carm.remove_group_clients(%s, ARRAY[%L])', :alpha, '200000008'),
                'G7: remove a client whose group employee has an individual assignment');
SELECT ok(NOT carm.user_has_access(:ed, '200000008RM0001', 'rulings.view')
          AND NOT EXISTS (SELECT FROM carm.client_assignment WHERE user_id = :ed),
          'G7: the group employees lose group-derived and individual access to the client');
SELECT ok(carm.user_has_access(:bam, '200000008RM0001', 'rulings.manage')
          AND carm.user_has_access(:bam2, '200000008RM0002', 'payments.manage'),
          'G7: provider BAMs keep their access to the removed client');
SELECT lives_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L])', :alpha, '200000008'),
                'G7: the client may be added again');
SELECT ok(carm.user_has_access(:ed, '200000008RM0001', 'rulings.manage')
          AND NOT EXISTS (SELECT FROM carm.client_assignment WHERE user_id = :ed),
          'G7: cannot be undone: re-adding gives the group role, not the revoked individual assignment');

-- unknown and deleted groups -----------------------------------------------
SELECT throws_ok($$SELECT carm.add_group_clients(987654, ARRAY['200000008'])$$, 'P0002', NULL,
                 'P0002: adding clients to an unknown group');
SELECT throws_ok($$SELECT carm.assign_group_employees(987654, ARRAY[1]::bigint[], 'PVIEWER')$$, 'P0002', NULL,
                 'P0002: assigning employees to an unknown group');
SELECT throws_ok($$SELECT carm.delete_client_group(987654, deferred => true)$$, 'P0002', NULL,
                 'P0002: deleting an unknown group, also deferred');
SELECT carm.set_actor(:pam);
SELECT throws_ok(format('SELECT carm.delete_client_group(%s)', :alpha), '42501', NULL,
                 'G1: a provider PAM cannot delete a group');
SELECT carm.set_actor(:bam);

-- G8 -----------------------------------------------------------------------
SELECT lives_ok(format('SELECT carm.delete_client_group(%s)', :alpha), 'G8: delete a group with clients and employees');
SELECT ok(NOT carm.user_has_access(:ed, '200000008RM0001', 'rulings.view')
          AND NOT carm.user_has_access(:ed, '200000016RM0001', 'rulings.view')
          AND NOT carm.user_has_access(:ed, '200000032RM0001', 'rulings.view')
          AND carm.user_has_access(:bam, '200000016RM0001', 'rulings.manage'),
          'G8: the group employees lose access to every client, provider BAMs keep theirs');
SELECT is((SELECT array_agg(client ORDER BY client) FROM carm.available_clients('100000009')),
          ARRAY['200000008', '200000016', '200000032'], 'G8: the clients are available again');
SELECT ok((SELECT deleted_at IS NOT NULL FROM carm.client_group WHERE id = :alpha)
          AND NOT EXISTS (SELECT FROM carm.group_client WHERE group_id = :alpha)
          AND NOT EXISTS (SELECT FROM carm.group_employee WHERE group_id = :alpha),
          'G8: the group is marked deleted, without clients or employees');
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L])', :alpha, '200000008'), '55000', NULL,
                 '55000: adding clients to a deleted group');
SELECT throws_ok(format('SELECT carm.remove_group_clients(%s, ARRAY[%L])', :alpha, '200000008'), '55000', NULL,
                 '55000: removing clients from a deleted group');
SELECT throws_ok(format('SELECT carm.assign_group_employees(%s, ARRAY[%s]::bigint[], %L)', :alpha, :ed, 'PVIEWER'), '55000', NULL,
                 '55000: assigning employees to a deleted group');
SELECT throws_ok(format('SELECT carm.unassign_group_employees(%s, ARRAY[%s]::bigint[])', :alpha, :ed), '55000', NULL,
                 '55000: unassigning employees from a deleted group');
SELECT throws_ok(format('SELECT carm.delete_client_group(%s, deferred => true)', :alpha), '55000', NULL,
                 '55000: deleting a deleted group, also deferred');

-- G9 -----------------------------------------------------------------------
SELECT results_eq(
  $$SELECT operation, status, item_count FROM carm.group_requests('100000009') ORDER BY request_id$$,
  $$VALUES ('CREATE_GROUP', 'COMPLETED', 0), ('CREATE_GROUP', 'COMPLETED', 0), ('DELETE_GROUP', 'COMPLETED', 0),
           ('ADD_CLIENTS', 'COMPLETED', 2), ('CREATE_GROUP', 'COMPLETED', 1), ('ADD_CLIENTS', 'COMPLETED', 1),
           ('ASSIGN_EMPLOYEES', 'COMPLETED', 2), ('ASSIGN_EMPLOYEES', 'COMPLETED', 1), ('ASSIGN_EMPLOYEES', 'COMPLETED', 1),
           ('UNASSIGN_EMPLOYEES', 'COMPLETED', 1), ('ASSIGN_EMPLOYEES', 'COMPLETED', 1),
           ('REMOVE_CLIENTS', 'COMPLETED', 1), ('ADD_CLIENTS', 'COMPLETED', 1), ('REMOVE_CLIENTS', 'COMPLETED', 1),
           ('ADD_CLIENTS', 'COMPLETED', 1), ('DELETE_GROUP', 'COMPLETED', 3)$$,
  'G9: every operation, creation included, is recorded COMPLETED with its item count; refused ones leave no row');
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L], deferred => true)', :beta, 'x'), '22023', NULL,
                 'G9: a deferred request checks the form of its arguments');
SELECT carm.set_actor(:pam);
SELECT throws_ok(format('SELECT carm.add_group_clients(%s, ARRAY[%L], deferred => true)', :beta, '200000008'), '42501', NULL,
                 'G9: a deferred request checks the permission (G1)');
SELECT carm.set_actor(:bam);
SELECT carm.add_group_clients(:beta, ARRAY['200000008', '200000040'], deferred => true) AS req_bad \gset
SELECT carm.add_group_clients(:beta, ARRAY['200000008', '200000016'], deferred => true) AS req_ok \gset
SELECT carm.assign_group_employees(:beta, ARRAY[:ed]::bigint[], 'PEDITOR', deferred => true) AS req_assign \gset
SELECT ok((SELECT bool_and(status = 'PENDING') FROM carm.group_request WHERE id IN (:req_bad, :req_ok, :req_assign))
          AND NOT EXISTS (SELECT FROM carm.group_client WHERE group_id = :beta),
          'G9: deferred requests are PENDING and nothing is applied yet');
SELECT results_eq($$SELECT action, count FROM carm_internal.process_group_requests(now()) ORDER BY action$$,
                  $$VALUES ('group_requests_completed', 2::bigint), ('group_requests_failed', 1::bigint),
                          ('group_requests_retried', 0::bigint)$$,
                  'G9: maintenance applies the pending requests');
SELECT is((SELECT status || ': ' || error FROM carm.group_request WHERE id = :req_bad),
          E'FAILED: clients not available for client group "Beta": 200000040\nNo active relationship with provider: 200000040.',
          'G9: a deferred request that fails is FAILED with the reason');
SELECT is((SELECT array_agg(client ORDER BY client) FROM carm.group_clients(:beta)),
          ARRAY['200000008', '200000016'],
          'G9: the failed request applied nothing (200000008 came from the request that succeeded)');
SELECT ok((SELECT bool_and(status = 'COMPLETED' AND finished_at >= started_at)
           FROM carm.group_request WHERE id IN (:req_ok, :req_assign))
          AND carm.user_has_access(:ed, '200000016RM0001', 'rulings.edit'),
          'G9: deferred requests that succeed are COMPLETED and in force');
SELECT results_eq($$SELECT action, count FROM carm_internal.process_group_requests(now()) ORDER BY action$$,
                  $$VALUES ('group_requests_completed', 0::bigint), ('group_requests_failed', 0::bigint),
                          ('group_requests_retried', 0::bigint)$$,
                  'G9: a request is processed once');
SELECT carm.delete_client_group(:beta, deferred => true) AS req_delete \gset
SELECT ok((SELECT deleted_at IS NULL FROM carm.client_group WHERE id = :beta),
          'G9: a deferred deletion leaves the group until maintenance');
SELECT results_eq($$SELECT action, count FROM carm_internal.process_group_requests(now()) ORDER BY action$$,
                  $$VALUES ('group_requests_completed', 1::bigint), ('group_requests_failed', 0::bigint),
                          ('group_requests_retried', 0::bigint)$$,
                  'G9: maintenance applies the deferred deletion');
SELECT ok((SELECT deleted_at IS NOT NULL FROM carm.client_group WHERE id = :beta)
          AND NOT carm.user_has_access(:ed, '200000016RM0001', 'rulings.view')
          AND (SELECT item_count FROM carm.group_request WHERE id = :req_delete) = 2,
          'G8/G9: the deferred deletion is applied and counted its 2 clients');
SELECT ok(EXISTS (SELECT FROM carm.my_notifications() WHERE event = 'group_request_failed')
          AND EXISTS (SELECT FROM carm.audit_events('100000009')
                      WHERE event = 'group_client_added' AND other_business = '200000016'),
          '§9: the initiator is notified of the failure; each added client is audited');

-- Privileges -----------------------------------------------------------------
SELECT ok(has_function_privilege('carm_gateway', 'carm.add_group_clients(bigint, text[], boolean)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'carm.add_group_clients(bigint, text[], boolean)', 'EXECUTE')
          AND NOT has_function_privilege('carm_gateway', 'carm_internal.process_group_requests(timestamptz)', 'EXECUTE'),
          'the group API is for carm_gateway; deferred processing is internal');
-- §2: the listings are SECURITY INVOKER (carm_admin is judged on the role the
-- calling code runs as); their admin and actor variants are SECURITY DEFINER
SELECT is((SELECT count(*) FROM pg_proc
           WHERE (pronamespace = 'carm'::regnamespace
                  AND proname IN ('create_client_group', 'add_group_clients', 'remove_group_clients',
                                  'assign_group_employees', 'unassign_group_employees', 'delete_client_group')
                  OR pronamespace = 'carm_internal'::regnamespace
                  AND proname IN ('client_groups_admin', 'available_clients_admin', 'group_requests_admin',
                                  'client_groups_actor', 'available_clients_actor', 'group_requests_actor'))
             AND prosecdef AND 'search_path=pg_catalog, pg_temp' = ANY (proconfig)),
          12::bigint, 'every group API function (listings: their admin and actor variants) is SECURITY DEFINER with a pinned search_path');

SELECT * FROM finish();
ROLLBACK;
