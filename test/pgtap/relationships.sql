-- §5 business relationships, rule by rule (R1-R12), with the SQLSTATE of
-- every refusal.  Runs in one transaction, rolled back at the end; expiry by
-- time is simulated by moving expires_at into the past (the pg_regress
-- transcript shows it with a real clock).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
RESET client_min_messages;

SELECT plan(138);

-- Act as a user (sign-in id) for the rest of the transaction; prints a TAP comment.
CREATE FUNCTION pg_temp.act(who text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(who);
  RETURN diag('acting as ' || who);
END $$;
CREATE FUNCTION pg_temp.can(who text, target text, perm text) RETURNS boolean LANGUAGE sql AS $$
  SELECT carm.user_has_access((SELECT u.id FROM carm.app_user u WHERE u.external_id = who), target, perm);
$$;

SELECT carm.add_business('100000009', 'Acme Brokers', '{CUSTOMS_BROKER}') AS acme,
       carm.add_business('200000008', 'Beta Consulting', '{TRADE_CONSULTANT}') AS beta,
       carm.add_business('300000007', 'Maple Imports', '{IMPORTER}') AS maple,
       carm.add_business('400000006', 'Cedar Goods', '{IMPORTER}') AS cedar \gset
SELECT carm.add_program_account('300000007RM0001') AS maple1,
       carm.add_program_account('300000007RM0002') AS maple2,
       carm.add_program_account('300000007RM0003') AS maple3,
       carm.add_program_account('400000006RM0001') AS cedar1,
       carm.add_program_account('100000009RM0001') AS acme1 \gset
SELECT carm.register_user('paula', 'Paula') AS paula, carm.register_user('peter', 'Peter') AS peter,
       carm.register_user('pam', 'Pam') AS pam, carm.register_user('ed', 'Ed') AS ed,
       carm.register_user('vic', 'Vic') AS vic, carm.register_user('clara', 'Clara') AS clara,
       carm.register_user('carl', 'Carl') AS carl, carm.register_user('cindy', 'Cindy') AS cindy,
       carm.register_user('olga', 'Olga') AS olga, carm.register_user('bob', 'Bob') AS bob,
       carm.register_user('ivan', 'Ivan') AS ivan \gset
INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES
  (:acme, :paula, 'BAM', NULL), (:acme, :peter, 'EDITOR', NULL),
  (:acme, :pam, 'PAM', ARRAY[:acme1]::bigint[]),
  (:acme, :ed, 'EDITOR', NULL), (:acme, :vic, 'VIEWER', NULL),
  (:maple, :clara, 'BAM', NULL), (:maple, :carl, 'PAM', ARRAY[:maple1]::bigint[]),
  (:maple, :cindy, 'EDITOR', NULL), (:beta, :bob, 'BAM', NULL), (:cedar, :ivan, 'BAM', NULL);

-- R1 -------------------------------------------------------------------------
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', 'c')$$,
                 '42501', 'no acting user', 'R1: an API call without an actor is refused');
SELECT pg_temp.act('olga');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', 'c')$$,
                 '42501', NULL, 'R1: a user who is no employee of the provider cannot request');
SELECT pg_temp.act('ed');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', 'c')$$,
                 '42501', NULL, 'R1: a provider editor cannot request');
SELECT pg_temp.act('ivan');
SELECT throws_ok($$SELECT carm.request_relationship('400000006', '300000007', 'c')$$,
                 '22023', 'business 400000006 is not a service provider',
                 'R1: a business that is not a service provider cannot request');
SELECT pg_temp.act('paula');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '100000009', 'c')$$,
                 '22023', NULL, 'R1: a provider cannot request a relationship with itself');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', ' ')$$,
                 '22023', 'comment must not be blank', 'R1: a blank comment is refused');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', NULL)$$,
                 '22004', NULL, 'R1, §10 (rev. 1.2): a NULL comment is refused, 22004');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', repeat('x', 5000))$$,
                 '22023', NULL, 'R1: a huge comment is refused');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '30000000x', 'c')$$,
                 '22023', NULL, 'R1: a malformed client BN9 is refused');
SELECT throws_ok($$SELECT carm.request_relationship(NULL, '300000007', 'c')$$,
                 '22004', NULL, 'R1, §10 (rev. 1.2): a NULL provider BN9 is refused, 22004');
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '500000005', 'c')$$,
                 'P0002', NULL, 'R1: an unknown client is not found');
SELECT isnt(carm.request_relationship('100000009', '300000007', 'We clear Maple''s goods'), NULL,
            'R1: a provider BAM requests a relationship with a comment') ;
SELECT id AS r1 FROM carm.relationship WHERE provider_id = :acme AND client_id = :maple \gset
SELECT pg_temp.act('pam');
SELECT isnt(carm.request_relationship('100000009', '400000006', 'We clear Cedar''s goods'), NULL,
            'R1: a provider PAM requests a relationship too');
SELECT id AS r_cedar FROM carm.relationship WHERE provider_id = :acme AND client_id = :cedar \gset

-- R2 -------------------------------------------------------------------------
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', 'again')$$,
                 '23505', NULL, 'R2: a second open request for the same pair is a duplicate');

-- R4 -------------------------------------------------------------------------
SELECT pg_temp.act('paula');
SELECT throws_ok(format('SELECT carm.reject_relationship(%s, %L)', :r1, 'no'),
                 '42501', NULL, 'R4, R11: the provider cannot decide the client''s request');
SELECT pg_temp.act('cindy');
SELECT throws_ok(format('SELECT carm.reject_relationship(%s, %L)', :r1, 'no'),
                 '42501', NULL, 'R4: a client editor cannot reject');
SELECT pg_temp.act('clara');
SELECT throws_ok(format('SELECT carm.reject_relationship(%s, %L)', :r1, '  '),
                 '22023', 'reason must not be blank', 'R4: a rejection needs a non-blank reason');
SELECT throws_ok('SELECT carm.reject_relationship(424242, ''no'')',
                 'P0002', NULL, 'R4: an unknown relationship is not found');
SELECT throws_ok('SELECT carm.reject_relationship(NULL, ''no'')',
                 '22004', NULL, 'R4: a NULL relationship id is refused');
SELECT lives_ok(format('SELECT carm.reject_relationship(%s, %L)', :r1, 'No contract yet'),
                'R4: the client BAM rejects with a reason');
SELECT throws_ok(format('SELECT carm.reject_relationship(%s, %L)', :r1, 'again'),
                 '55000', NULL, 'R4: a request that is not pending cannot be rejected');
SELECT pg_temp.act('paula');
SELECT is((SELECT message FROM carm.my_notifications() WHERE event = 'relationship_rejected'),
          'Maple Imports (300000007) rejected the business relationship request: No contract yet',
          'R4, §9: the provider is told of the rejection and its reason');
SELECT is((SELECT reason FROM carm.relationships('100000009') WHERE id = :r1), 'No contract yet',
          'R4: the provider sees the reason in its listing');

-- R2, R3 ---------------------------------------------------------------------
SELECT throws_ok($$SELECT carm.request_relationship('100000009', '300000007', 'again')$$,
                 '23505', NULL, 'R2: a rejected request blocks a new one until cancelled');
SELECT pg_temp.act('clara');
SELECT throws_ok(format('SELECT carm.cancel_relationship_request(%s)', :r1),
                 '42501', NULL, 'R3: the client cannot cancel the provider''s request');
SELECT pg_temp.act('ed');
SELECT throws_ok(format('SELECT carm.cancel_relationship_request(%s)', :r1),
                 '42501', NULL, 'R3: a provider editor cannot cancel');
SELECT pg_temp.act('pam');
SELECT lives_ok(format('SELECT carm.cancel_relationship_request(%s)', :r1),
                'R3: a provider PAM cancels a rejected request');
SELECT throws_ok(format('SELECT carm.cancel_relationship_request(%s)', :r1),
                 '55000', NULL, 'R3: a cancelled request cannot be cancelled again');
SELECT pg_temp.act('paula');
SELECT carm.request_relationship('100000009', '300000007', 'Contract signed') AS r2 \gset
SELECT is(:r2 > :r1, true, 'R2: after cancelling, the provider requests again');

-- R5 -------------------------------------------------------------------------
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L)', :r2, 'BUSINESS'),
                 '42501', NULL, 'R5, R11: the provider cannot approve its own request');
SELECT pg_temp.act('cindy');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L)', :r2, 'BUSINESS'),
                 '42501', NULL, 'R5: a client editor cannot approve');
SELECT pg_temp.act('carl');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L)', :r2, 'BUSINESS'),
                 '42501', NULL, 'R5: a client PAM cannot approve a BUSINESS relationship');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r2, 'PROGRAM',
                        '{300000007RM0001,300000007RM0002}'),
                 '42501', NULL, 'R5: a client PAM approves only its own programs');
SELECT pg_temp.act('clara');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r2, 'BUSINESS', '{300000007RM0001}'),
                 '22023', 'a BUSINESS relationship takes no program list',
                 'R5: BUSINESS with a program list is refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L)', :r2, 'PROGRAM'),
                 '22023', NULL, 'R5: PROGRAM without a program list is refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r2, 'PROGRAM', '{}'),
                 '22023', NULL, 'R5: PROGRAM with an empty list is refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r2, 'PROGRAM', '{400000006RM0001}'),
                 '22023', NULL, 'R5: programs of another business are refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r2, 'PROGRAM', '{300000007RM0009}'),
                 '22023', NULL, 'R5: an unknown program account is refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, expires_at => now() - interval %L)',
                        :r2, 'BUSINESS', '1 hour'),
                 '22023', 'the expiry date must be in the future', 'R5: a past expiry is refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L)', :r2, 'business'),
                 '22023', NULL, 'R5: an unknown access type is refused');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L, see_client_submissions => NULL)', :r2, 'BUSINESS'),
                 '22004', NULL, 'R5: a NULL visibility attribute is refused');
SELECT lives_ok(format('SELECT carm.approve_relationship(%s, %L, see_client_submissions => true)', :r2, 'BUSINESS'),
                'R5: the client BAM approves a BUSINESS relationship');
SELECT throws_ok(format('SELECT carm.approve_relationship(%s, %L)', :r2, 'BUSINESS'),
                 '55000', NULL, 'R5: approving twice is refused');
SELECT pg_temp.act('ivan');
SELECT lives_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r_cedar, 'PROGRAM', '{400000006RM0001}'),
                'R5: a client BAM approves a PROGRAM relationship');
SELECT pg_temp.act('paula');
SELECT throws_ok(format('SELECT carm.cancel_relationship_request(%s)', :r2),
                 '55000', NULL, 'R3: an active relationship is no request to cancel');
SELECT results_eq($$SELECT status, access_type, programs, see_client_submissions, see_other_submissions
                   FROM carm.relationships('100000009') WHERE client = '300000007' AND status = 'active'$$,
                  $$VALUES ('active', 'BUSINESS', NULL::text[], true, false)$$,
                  'R5: the approved terms are recorded');

-- R6 -------------------------------------------------------------------------
SELECT is(pg_temp.can('paula', '300000007', 'business_profile.view'), true,
          'R6: with BUSINESS, a provider BAM is PBAM: it sees the client''s business profile');
SELECT is(pg_temp.can('paula', '300000007RM0003', 'rulings.manage'), true,
          'R6: PBAM manages rulings on every program of the client');
SELECT is(pg_temp.can('paula', '400000006RM0001', 'payments.manage'), true,
          'R6: with PROGRAM, a provider BAM is PPAM on the delegated program');
SELECT is(pg_temp.can('paula', '400000006', 'business_profile.view'), false,
          'R6, R11: PPAM has no access to the client''s business profile');
SELECT is(pg_temp.can('peter', '300000007RM0001', 'rulings.view'), false,
          'R6: a provider editor holds nothing on the client by itself');
UPDATE carm.employee SET role = 'BAM' WHERE user_id = :peter;
SELECT is(pg_temp.can('peter', '300000007RM0001', 'rulings.manage'), true,
          'R6: a provider employee promoted to BAM is PBAM at once');
UPDATE carm.employee SET role = 'EDITOR' WHERE user_id = :peter;
SELECT is(pg_temp.can('peter', '300000007RM0001', 'rulings.view'), false,
          'R6: demoted from BAM, it loses PBAM');
SELECT carm.add_program_account('300000007RM0004') AS maple4 \gset
SELECT is(pg_temp.can('paula', '300000007RM0004', 'rulings.manage'), true,
          'R6, E12: a program added later is covered by a BUSINESS relationship');

-- R11 ------------------------------------------------------------------------
SELECT is(pg_temp.can('paula', '300000007RM0001', 'banking.view'), false, 'R11: no proxy sees banking');
SELECT is(pg_temp.can('paula', '300000007', 'business_profile.edit'), false,
          'R11: no proxy changes the business account information');
SELECT is(pg_temp.can('paula', '300000007RM0001', 'program_profile.edit'), false,
          'R11: no proxy changes the program account information');
SELECT is(pg_temp.can('paula', '300000007', 'employee_access.view'), false,
          'R11: no proxy sees the client''s employees');
SELECT is(pg_temp.can('paula', '300000007', 'relationships.view'), false,
          'R11: no proxy sees the client''s relationships');
SELECT throws_ok($$SELECT * FROM carm.relationships('300000007')$$,
                 '42501', NULL, 'R11: a proxy calling the client-side relationship listing is refused');
SELECT throws_ok(format('SELECT carm.update_relationship(%s, %L, NULL, true, true, NULL)', :r2, 'BUSINESS'),
                 '42501', NULL, 'R11: a proxy cannot edit the client''s relationship');
SELECT throws_ok(format('SELECT carm.end_relationship(%s)', :r2),
                 '42501', NULL, 'R11: a proxy cannot end the client''s relationship');
SELECT pg_temp.act('cindy');
SELECT throws_ok($$SELECT * FROM carm.relationships('300000007')$$,
                 '42501', NULL, 'R11, §3.2: a client editor sees no relationships');
SELECT pg_temp.act('carl');
SELECT is((SELECT count(*) FROM carm.relationships('300000007') WHERE status = 'active'), 1::bigint,
          'R5, §3.2: a client PAM sees the BUSINESS relationship touching its programs');

-- R7 -------------------------------------------------------------------------
SELECT pg_temp.act('paula');
SELECT lives_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :ed, 'PEDITOR'),
                'R7: the PBAM assigns an employee as PEDITOR on every delegated program');
SELECT lives_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L, %L)', '100000009', '300000007', :pam,
                       'PPAM', '{300000007RM0001,300000007RM0002}'),
                'R7: the PBAM assigns a provider PAM as PPAM on two programs');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :vic, 'PBAM'),
                 '22023', NULL, 'R7: PBAM is never assigned');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :vic, NULL),
                 '22004', NULL, 'R7, §10 (rev. 1.2): a NULL role is refused, 22004');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :paula, 'PPAM'),
                 '22023', NULL, 'R7: the actor cannot assign itself');
UPDATE carm.employee SET role = 'BAM' WHERE user_id = :peter;
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :peter, 'PPAM'),
                 '22023', NULL, 'R7: a provider BAM cannot be assigned');
UPDATE carm.employee SET role = 'EDITOR' WHERE user_id = :peter;
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :olga, 'PVIEWER'),
                 'P0002', NULL, 'R7, §10: a non-employee cannot be assigned (answered like an unknown user)');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :bob, 'PVIEWER'),
                 'P0002', NULL, 'R7, §10: an employee of another provider cannot be assigned (answered like an unknown user)');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', 424242, 'PVIEWER'),
                 'P0002', NULL, 'R7: an unknown user is not found');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L, %L)', '100000009', '300000007', :vic,
                        'PVIEWER', '{400000006RM0001}'),
                 '22023', NULL, 'R7: programs of another business are refused');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '200000008', '300000007', :vic, 'PVIEWER'),
                 '42501', NULL, 'R7: only the provider''s own managers assign its employees');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '200000008', :vic, 'PVIEWER'),
                 '55000', NULL, 'R7: there must be an active relationship with the client');
SELECT pg_temp.act('ed');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :vic, 'PVIEWER'),
                 '42501', NULL, 'R7: a provider editor (even PEDITOR on the client) assigns nobody');
SELECT throws_ok($$SELECT * FROM carm.client_access('100000009', '300000007')$$,
                 '42501', NULL, 'R7: a provider editor does not list client access');
SELECT pg_temp.act('pam');
SELECT lives_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L, %L)', '100000009', '300000007', :vic,
                       'PVIEWER', '{300000007RM0001}'),
                'R7: a provider PAM that is PPAM assigns within its programs');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L, %L)', '100000009', '300000007', :vic,
                        'PBAM', '{300000007RM0001}'),
                 '22023', NULL, 'R7: a PPAM trying to assign PBAM is refused');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L, %L)', '100000009', '300000007', :vic,
                        'PVIEWER', '{300000007RM0003}'),
                 '42501', NULL, 'R7: a provider PAM delegates only where it is itself PPAM');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :vic, 'PVIEWER'),
                 '42501', NULL, 'R7: a PPAM on some programs cannot assign every delegated program');
SELECT throws_ok(format('SELECT carm.revoke_client_access(%L, %L, %s)', '100000009', '300000007', :ed),
                 '42501', NULL, 'R7: a provider PAM cannot touch an assignment beyond its own scope');
SELECT pg_temp.act('paula');
SELECT results_eq($$SELECT user_id, role, programs, all_delegated, source
                   FROM carm.client_access('100000009', '300000007')$$,
                  format($$VALUES (%s::bigint, 'PBAM', '{300000007RM0001,300000007RM0002,300000007RM0003,300000007RM0004}'::text[], true, 'relationship'),
                                  (%s, 'PPAM', '{300000007RM0001,300000007RM0002}', false, 'assignment'),
                                  (%2$s, 'SPMGR', '{300000007RM0001,300000007RM0002,300000007RM0003,300000007RM0004}', true, 'relationship'),
                                  (%3$s, 'PEDITOR', '{300000007RM0001,300000007RM0002,300000007RM0003,300000007RM0004}', true, 'assignment'),
                                  (%4$s, 'PVIEWER', '{300000007RM0001}', false, 'assignment')$$,
                         :paula, :pam, :ed, :vic),
                  'R6, R7, V3: client_access lists every provider path to the client, from the resolver (the provider PAM reads its own submissions: SPMGR)');
SELECT is(pg_temp.can('ed', '300000007RM0003', 'rulings.edit'), true, 'R7: PEDITOR edits rulings on every delegated program');
SELECT is(pg_temp.can('ed', '300000007RM0003', 'rulings.manage'), false, 'R7: PEDITOR does not manage');
SELECT is(pg_temp.can('vic', '300000007RM0002', 'rulings.view'), false, 'R7: a listed subset limits PVIEWER');
SELECT is(pg_temp.can('vic', '300000007RM0001', 'rulings.view'), true, 'R7: PVIEWER views its listed program');
SELECT is((SELECT count(*) FROM carm.notification n WHERE n.user_id = :vic AND n.event = 'client_access_assigned'),
          1::bigint, 'R7, §9: the assigned employee is notified');

-- R8 -------------------------------------------------------------------------
SELECT pg_temp.act('carl');
SELECT throws_ok(format('SELECT carm.update_relationship(%s, %L, %L, false, false, NULL)', :r2, 'PROGRAM', '{300000007RM0001}'),
                 '42501', NULL, 'R8: a client PAM cannot edit a relationship');
SELECT pg_temp.act('clara');
SELECT throws_ok(format('SELECT carm.update_relationship(%s, %L, %L, false, false, now() - interval %L)',
                        :r2, 'PROGRAM', '{300000007RM0001}', '1 day'),
                 '22023', NULL, 'R8: an edit to a past expiry is refused');
SELECT throws_ok(format('SELECT carm.update_relationship(%s, %L, %L, false, false, NULL)', :r2, 'BUSINESS', '{300000007RM0001}'),
                 '22023', NULL, 'R8: the edited terms follow R5');
SELECT lives_ok(format('SELECT carm.update_relationship(%s, %L, %L, false, true, NULL)', :r2, 'PROGRAM', '{300000007RM0001}'),
                'R8: the client BAM turns BUSINESS into PROGRAM');
SELECT is(pg_temp.can('paula', '300000007', 'business_profile.view'), false, 'R8: the provider BAM is demoted from PBAM');
SELECT is(pg_temp.can('paula', '300000007RM0001', 'rulings.manage'), true, 'R8: ... to PPAM on the delegated program');
SELECT is(pg_temp.can('paula', '300000007RM0002', 'rulings.view'), false, 'R8: ... and nothing on the others');
SELECT is(pg_temp.can('ed', '300000007RM0002', 'rulings.view'), false, 'R8: every provider employee is narrowed');
SELECT is(pg_temp.can('ed', '300000007RM0001', 'rulings.edit'), true, 'R8: ... to the delegated programs');
SELECT is((SELECT a.programs FROM carm.client_assignment a WHERE a.relationship_id = :r2 AND a.user_id = :pam),
          ARRAY[:maple1]::bigint[], 'R8: a listed assignment loses the program no longer delegated');
SELECT lives_ok(format('SELECT carm.update_relationship(%s, %L, NULL, true, false, NULL)', :r2, 'BUSINESS'),
                'R8: the client BAM turns PROGRAM into BUSINESS');
SELECT is(pg_temp.can('paula', '300000007', 'business_profile.view'), true, 'R8: the provider BAM is promoted to PBAM');
SELECT is(pg_temp.can('ed', '300000007RM0004', 'rulings.edit'), true, 'R8: an all-programs assignment extends to every program');
SELECT is(pg_temp.can('pam', '300000007RM0002', 'rulings.manage'), false, 'R8: a removed program does not come back to a listed assignment');
SELECT results_eq(format($$SELECT event FROM carm.audit_event WHERE relationship_id = %s AND event LIKE 'relationship%%' ORDER BY id$$, :r2),
                  $$VALUES ('relationship_requested'), ('relationship_approved'), ('relationship_updated'), ('relationship_updated')$$,
                  '§9: every transition of the relationship is audited');

-- R9, R10 ----------------------------------------------------------------------
-- Time passes: the relationship's expiry is now behind us (no maintenance).
UPDATE carm.relationship SET expires_at = now() - interval '1 second' WHERE id = :r2;
SELECT is(pg_temp.can('ed', '300000007RM0001', 'rulings.view'), false, 'R9: after expiry a provider employee has no access');
SELECT is(pg_temp.can('paula', '300000007', 'business_profile.view'), false, 'R9: nor the provider BAM''s PBAM');
SELECT is(pg_temp.can('paula', '300000007RM0001', 'rulings.view'), false, 'R9, V4, §8 (rev. 1.1): the provider BAM holds EXPIRED, which grants nothing at the point-check level (rows through the row checks only)');
SELECT is(pg_temp.can('paula', '300000007RM0001', 'rulings.edit'), false, 'R9, V4: EXPIRED is read-only');
SELECT is(pg_temp.can('pam', '300000007RM0001', 'rulings.view'), false, 'R9, V4: a provider PAM keeps nothing');
SELECT pg_temp.act('paula');
SELECT results_eq($$SELECT status, see_client_submissions, see_other_submissions FROM carm.relationships('100000009') WHERE id = $$ || :r2,
                  $$VALUES ('expired', false, false)$$,
                  'R9: listings show it expired, visibility off, before any cascade');
SELECT is((SELECT status FROM carm.relationship WHERE id = :r2), 'active', 'R9: no cascade has run yet');
SELECT pg_temp.act('clara');
SELECT throws_ok(format('SELECT carm.update_relationship(%s, %L, NULL, true, false, NULL)', :r2, 'BUSINESS'),
                 '55000', NULL, 'R9: an expired relationship cannot be edited');
SELECT pg_temp.act('paula');
SELECT throws_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '300000007', :vic, 'PVIEWER'),
                 '55000', NULL, 'R9: nobody is assigned to an expired relationship');
SELECT carm.request_relationship('100000009', '300000007', 'Renewal') AS r3 \gset
SELECT is((SELECT status FROM carm.relationship WHERE id = :r2), 'expired',
          'R9: a new request for the pair applies the cascade first');
SELECT is((SELECT count(*) FROM carm.client_assignment WHERE relationship_id = :r2), 0::bigint,
          'R9: the relationship''s assignments are deleted');
SELECT results_eq(format($$SELECT u.external_id FROM carm.notification n JOIN carm.app_user u ON u.id = n.user_id
                           JOIN carm.audit_event a ON a.id = n.audit_id
                           WHERE a.relationship_id = %s AND n.event = 'relationship_expired' ORDER BY u.external_id$$, :r2),
                  $$VALUES ('clara'), ('paula')$$,
                  'R9, §9: the BAMs of both businesses are told of the expiry');
SELECT pg_temp.act('clara');
SELECT lives_ok(format('SELECT carm.approve_relationship(%s, %L, %L)', :r3, 'PROGRAM', '{300000007RM0002}'),
                'R10: the relationship is re-established');
SELECT pg_temp.act('paula');
SELECT results_eq($$SELECT user_id, role, source FROM carm.client_access('100000009', '300000007')$$,
                  format($$VALUES (%s::bigint, 'EXPIRED', 'relationship'), (%1$s, 'PPAM', 'relationship'),
                                  (%s, 'SPMGR', 'relationship')$$, :paula, :pam),
                  'R10: it starts from nothing: only the roles derived from the relationship (R6, V3), and EXPIRED from the expired one (V4)');
SELECT is(pg_temp.can('ed', '300000007RM0002', 'rulings.view'), false, 'R10: no earlier assignment comes back');

-- end_relationship (R9) ----------------------------------------------------------
SELECT pg_temp.act('carl');
SELECT throws_ok(format('SELECT carm.end_relationship(%s)', :r3), '42501', NULL,
                 'R9: a client PAM cannot end a relationship');
SELECT pg_temp.act('clara');
SELECT lives_ok(format('SELECT carm.end_relationship(%s)', :r3), 'R9: the client BAM ends the relationship');
SELECT throws_ok(format('SELECT carm.end_relationship(%s)', :r3), '55000', NULL,
                 'R9: an ended relationship cannot be ended again');
SELECT is((SELECT status FROM carm.relationship WHERE id = :r3), 'ended', 'R9: its status is ended');
SELECT is(pg_temp.can('paula', '300000007RM0002', 'rulings.view'), false, 'R9, V4, §8 (rev. 1.1): the provider BAM holds EXPIRED after the end: no point-check access');
SELECT is(pg_temp.can('paula', '300000007RM0002', 'payments.edit'), false, 'R9, V4: ... read-only');

-- R12 ------------------------------------------------------------------------
-- Acme-Cedar: due, and Cedar is in an Acme client group.
INSERT INTO carm.client_group (provider_id, name) VALUES (:acme, 'Atlantic') RETURNING id AS atlantic \gset
INSERT INTO carm.group_client (group_id, provider_id, client_id) VALUES (:atlantic, :acme, :cedar);
INSERT INTO carm.group_employee (group_id, user_id, role) VALUES (:atlantic, :vic, 'PVIEWER');
SELECT is(pg_temp.can('vic', '400000006RM0001', 'rulings.view'), true, 'G4: the group gives access before expiry');
INSERT INTO carm.group_employee (group_id, user_id, role) VALUES (:atlantic, :pam, 'PPAM');
SELECT pg_temp.act('pam');
SELECT lives_ok(format('SELECT carm.assign_client_access(%L, %L, %s, %L)', '100000009', '400000006', :vic, 'PEDITOR'),
                'R7, G4: a provider PAM that is PPAM through a client group assigns on every delegated program');
SELECT is(pg_temp.can('vic', '400000006RM0001', 'rulings.edit'), true, 'R7, G5: the individual assignment overrides the group role');
UPDATE carm.relationship SET expires_at = now() - interval '1 second' WHERE id = :r_cedar;
-- Beta-Maple: expires in 10 days.
SELECT pg_temp.act('bob');
SELECT carm.request_relationship('200000008', '300000007', 'Trade advice') AS r_beta \gset
SELECT pg_temp.act('clara');
SELECT carm.approve_relationship(:r_beta, 'BUSINESS', expires_at => now() + interval '10 days');
SELECT results_eq($$SELECT * FROM carm.run_maintenance() WHERE action IN ('relationships_expired', 'expiry_notices')$$,
                  $$VALUES ('relationships_expired', 1::bigint), ('expiry_notices', 1::bigint)$$,
                  'R12: maintenance expires the due relationship and announces the one expiring within 30 days');
SELECT is((SELECT count(*) FROM carm.group_client WHERE group_id = :atlantic), 0::bigint,
          'R9, R12: the client leaves the provider''s group');
SELECT is(pg_temp.can('vic', '400000006RM0001', 'rulings.view'), false, 'R9: the group''s and the assignment''s access is gone');
SELECT is((SELECT count(*) FROM carm.client_assignment WHERE relationship_id = :r_cedar), 0::bigint,
          'R9, R12: maintenance deletes the expired relationship''s assignments');
SELECT results_eq($$SELECT * FROM carm.run_maintenance() WHERE action IN ('relationships_expired', 'expiry_notices')$$,
                  $$VALUES ('relationships_expired', 0::bigint), ('expiry_notices', 0::bigint)$$,
                  'R12: a second run does nothing again: the notice goes once');
SELECT results_eq(format($$SELECT u.external_id FROM carm.notification n JOIN carm.app_user u ON u.id = n.user_id
                           WHERE n.event = 'relationship_expiring' ORDER BY u.external_id$$),
                  $$VALUES ('bob'), ('clara')$$,
                  'R12, §9: the BAMs of both businesses get the 30-day notice');
SELECT carm.update_relationship(:r_beta, 'BUSINESS', NULL, false, false, now() + interval '20 days');
SELECT results_eq($$SELECT * FROM carm.run_maintenance() WHERE action = 'expiry_notices'$$,
                  $$VALUES ('expiry_notices', 1::bigint)$$,
                  'R12: a new expiry date gets its own notice');
SELECT throws_ok($$SELECT * FROM carm.run_maintenance(NULL)$$, '22004', NULL, 'R12: as_of must not be NULL');
-- Set-based expiry: many relationships in one statement.
INSERT INTO carm.business (bn9, legal_name, kinds)
SELECT b, 'Client ' || b, '{IMPORTER}'
FROM (SELECT lpad(n::text, 8, '0') AS s FROM generate_series(60000000, 60000099) n) x,
     LATERAL (SELECT s || (SELECT (10 - sum(CASE WHEN i % 2 = 1 THEN (d * 2) % 10 + (d * 2) / 10 ELSE d END) % 10) % 10
                           FROM (SELECT i, substr(reverse(s), i, 1)::int AS d FROM generate_series(1, 8) i) y) AS b) z;
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, expires_at, comment)
SELECT :beta, b.id, 'active', 'BUSINESS', now() - interval '1 minute', 'bulk'
FROM carm.business b WHERE b.legal_name LIKE 'Client %';
SELECT is(carm_internal.expire_relationships(now()), 100::bigint, 'R9, R12: one set-based call expires every due relationship');
SELECT is((SELECT count(*) FROM carm.audit_event WHERE event = 'relationship_expired'
           AND details ->> 'as_of' IS NOT NULL AND business_id = :beta), 100::bigint,
          'R9, §9: one audit event per expired relationship');

SELECT * FROM finish();
ROLLBACK;
