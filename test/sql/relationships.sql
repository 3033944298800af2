-- §5 business relationships: requests and decisions (R1-R5), derived proxy
-- roles (R6), assignments (R7), edits (R8), expiry and ending (R9, R10),
-- proxy exclusions (R11), maintenance (R12), audit and notifications (§9).
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;   -- the same transcript whatever ran before
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;
-- This transcript changes actors between statements with session actors
-- (set_actor(..., false)), which are off by default (SPEC §10 rev. 1.2).
SET carm_deleg.allow_session_actor = on;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_gateway') THEN
    CREATE ROLE regress_gateway NOLOGIN IN ROLE carm_gateway;
  END IF;
END
$$;

-- Helpers: act as a user (by sign-in id) for the session; ask what users may
-- do (carm.user_has_access, as carm_admin).
CREATE FUNCTION pg_temp.act(who text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(who, false);
  RETURN who;
END $$;
CREATE FUNCTION pg_temp.access(who text[], checks text[])
RETURNS TABLE (who text, target text, permission text, allowed boolean)
LANGUAGE sql SECURITY DEFINER AS $$
  SELECT w, split_part(c, ' ', 1), split_part(c, ' ', 2),
         carm.user_has_access(u.id, split_part(c, ' ', 1), split_part(c, ' ', 2))
  FROM unnest(who) WITH ORDINALITY AS w(w, i)
  JOIN carm.app_user u ON u.external_id = w
  CROSS JOIN unnest(checks) WITH ORDINALITY AS c(c, j)
  ORDER BY i, j;
$$;

-- Reference data: two service providers, two importers.
SELECT carm.add_business('100000009', 'Acme Brokers', '{CUSTOMS_BROKER}') AS acme,
       carm.add_business('200000008', 'Beta Consulting', '{TRADE_CONSULTANT}') AS beta,
       carm.add_business('300000007', 'Maple Imports', '{IMPORTER}') AS maple,
       carm.add_business('400000006', 'Cedar Goods', '{IMPORTER}') AS cedar \gset
SELECT carm.add_program_account('300000007RM0001') AS maple1,
       carm.add_program_account('300000007RM0002') AS maple2,
       carm.add_program_account('300000007RM0003') AS maple3,
       carm.add_program_account('400000006RM0001') AS cedar1,
       carm.add_program_account('100000009RM0001') AS acme1 \gset
SELECT carm.register_user('paula', 'Paula (Acme BAM)') AS paula,
       carm.register_user('peter', 'Peter (Acme editor)') AS peter,
       carm.register_user('pam', 'Pam (Acme PAM)') AS pam,
       carm.register_user('ed', 'Ed (Acme editor)') AS ed,
       carm.register_user('vic', 'Vic (Acme viewer)') AS vic,
       carm.register_user('clara', 'Clara (Maple BAM)') AS clara,
       carm.register_user('carl', 'Carl (Maple PAM)') AS carl,
       carm.register_user('cindy', 'Cindy (Maple editor)') AS cindy,
       carm.register_user('olga', 'Olga (no business)') AS olga,
       carm.register_user('bob', 'Bob (Beta BAM)') AS bob,
       carm.register_user('bea', 'Bea (Beta editor)') AS bea,
       carm.register_user('ivan', 'Ivan (Cedar BAM)') AS ivan \gset
-- Employees are set up directly (the employee API is tested elsewhere).
INSERT INTO carm.employee (business_id, user_id, role, programs) VALUES
  (:acme, :paula, 'BAM', NULL), (:acme, :peter, 'EDITOR', NULL),
  (:acme, :pam, 'PAM', ARRAY[:acme1]::bigint[]),
  (:acme, :ed, 'EDITOR', NULL), (:acme, :vic, 'VIEWER', NULL),
  (:maple, :clara, 'BAM', NULL), (:maple, :carl, 'PAM', ARRAY[:maple1]::bigint[]),
  (:maple, :cindy, 'EDITOR', NULL),
  (:beta, :bob, 'BAM', NULL), (:beta, :bea, 'EDITOR', NULL),
  (:cedar, :ivan, 'BAM', NULL);

SET ROLE regress_gateway;

-- R1: only a BAM or PAM of a service provider requests, never for itself,
-- always with a justifying comment.
SELECT carm.request_relationship('100000009', '300000007', 'customs clearance');  -- no actor
SELECT pg_temp.act('olga');
SELECT carm.request_relationship('100000009', '300000007', 'customs clearance');  -- not an employee
SELECT pg_temp.act('ed');
SELECT carm.request_relationship('100000009', '300000007', 'customs clearance');  -- an editor
SELECT pg_temp.act('ivan');
SELECT carm.request_relationship('400000006', '300000007', 'we broker too');      -- an importer
SELECT pg_temp.act('paula');
SELECT carm.request_relationship('100000009', '100000009', 'myself');
SELECT carm.request_relationship('100000009', '300000007', '   ');
SELECT carm.request_relationship('100000009', '300000008', 'bad check digit');
SELECT carm.request_relationship('100000009', '500000005', 'unknown business');
SELECT carm.request_relationship('100000009', '300000007',
                                 'Acme clears Maple''s goods at Halifax') AS r_acme_maple \gset
-- R2: one open relationship per pair
SELECT pg_temp.act('pam');
SELECT carm.request_relationship('100000009', '300000007', 'a second request');

-- The client's approvers see the request and its comment.
SELECT pg_temp.act('clara');
SELECT id, side, provider, provider_name, client, status, comment
FROM carm.relationships('300000007');
SELECT event, message FROM carm.my_notifications();
SELECT pg_temp.act('carl');
SELECT id, side, status, comment FROM carm.relationships('300000007');
-- R11: the provider is no employee of the client: no client-side listing;
-- neither for a client editor.
SELECT pg_temp.act('paula');
SELECT id FROM carm.relationships('300000007');
SELECT id, side, client, status FROM carm.relationships('100000009');
SELECT pg_temp.act('cindy');
SELECT id FROM carm.relationships('300000007');

-- R4: the client rejects, with a reason; never the provider.
SELECT pg_temp.act('paula');
SELECT carm.reject_relationship(:r_acme_maple, 'no thanks');
SELECT pg_temp.act('clara');
SELECT carm.reject_relationship(:r_acme_maple, '');
SELECT carm.reject_relationship(:r_acme_maple, 'We have not signed a contract yet');
SELECT carm.reject_relationship(:r_acme_maple, 'twice');
SELECT pg_temp.act('paula');
SELECT event, message FROM carm.my_notifications();
SELECT id, status, reason FROM carm.relationships('100000009');
-- R2: a rejected request blocks the pair until the provider cancels it (R3).
SELECT carm.request_relationship('100000009', '300000007', 'again');
SELECT pg_temp.act('clara');
SELECT carm.cancel_relationship_request(:r_acme_maple);                     -- not the provider
SELECT pg_temp.act('paula');
SELECT carm.cancel_relationship_request(:r_acme_maple);
SELECT carm.cancel_relationship_request(:r_acme_maple);                     -- already cancelled
SELECT pg_temp.act('pam');
SELECT carm.request_relationship('100000009', '300000007',
                                 'Contract signed on Monday; we clear at Halifax') AS r_acme_maple \gset

-- R5: a client PAM approves PROGRAM relationships on its own programs only.
SELECT pg_temp.act('carl');
SELECT carm.approve_relationship(:r_acme_maple, 'BUSINESS');
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001,300000007RM0002}');
-- R5: terms are checked: BUSINESS takes no list, PROGRAM needs the client's
-- programs, the expiry is in the future.
SELECT pg_temp.act('clara');
SELECT carm.approve_relationship(:r_acme_maple, 'BUSINESS', '{300000007RM0001}');
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM');
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM', '{}');
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM', '{400000006RM0001}');
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001}',
                                 expires_at => now() - interval '1 day');
SELECT carm.approve_relationship(:r_acme_maple, 'EVERYTHING');
SELECT pg_temp.act('carl');
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001}',
                                 see_client_submissions => true);
SELECT carm.approve_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001}');  -- twice
SELECT pg_temp.act('pam');
SELECT event, message FROM carm.my_notifications() WHERE event LIKE 'relationship%';

-- R6: every provider BAM is PPAM on the delegated program; R11: no business
-- profile, banking, client employees or client relationships for proxies.
SELECT * FROM pg_temp.access('{paula,pam,ed}',
  '{"300000007RM0001 rulings.manage","300000007RM0002 rulings.view","300000007RM0001 banking.view",
    "300000007 business_profile.view","300000007 employee_access.view","300000007 relationships.view"}');

-- R8: only the client's BAM edits; never the client PAM, never the provider.
SELECT pg_temp.act('carl');
SELECT carm.update_relationship(:r_acme_maple, 'BUSINESS', NULL, true, false, NULL);
SELECT pg_temp.act('paula');
SELECT carm.update_relationship(:r_acme_maple, 'BUSINESS', NULL, true, false, NULL);
SELECT carm.end_relationship(:r_acme_maple);
-- R8: PROGRAM -> BUSINESS promotes the provider's BAMs to PBAM, on every
-- program, future ones included (E12).
SELECT pg_temp.act('clara');
SELECT carm.update_relationship(:r_acme_maple, 'BUSINESS', NULL, true, false, NULL);
RESET ROLE;
SELECT carm.add_program_account('300000007RM0004') AS maple4 \gset
SET ROLE regress_gateway;
SELECT * FROM pg_temp.access('{paula}',
  '{"300000007RM0003 rulings.manage","300000007RM0004 payments.manage","300000007 business_profile.view",
    "300000007 business_profile.edit","300000007RM0001 program_profile.edit","300000007RM0001 banking.view"}');
-- R6: a provider employee promoted to BAM gains PBAM at once; demoted, loses it.
RESET ROLE;
SELECT carm.reset_actor();          -- the owner writes directly, as nobody (E6, E7 not applied)
UPDATE carm.employee SET role = 'BAM' WHERE user_id = :peter;
SELECT * FROM pg_temp.access('{peter}', '{"300000007RM0002 rulings.manage","300000007 business_profile.view"}');
UPDATE carm.employee SET role = 'EDITOR' WHERE user_id = :peter;
SELECT * FROM pg_temp.access('{peter}', '{"300000007RM0002 rulings.view"}');
SET ROLE regress_gateway;

-- R7: the PBAM assigns provider employees as PPAM, PEDITOR or PVIEWER.
SELECT pg_temp.act('paula');
SELECT carm.assign_client_access('100000009', '300000007', :ed, 'PEDITOR');
SELECT carm.assign_client_access('100000009', '300000007', :vic, 'PVIEWER', '{300000007RM0002}');
SELECT carm.assign_client_access('100000009', '300000007', :pam, 'PPAM',
                                 '{300000007RM0001,300000007RM0002}');
-- R7 refusals: never PBAM; not oneself; not a provider BAM; only employees
-- of the provider; only delegated programs of the client.
SELECT carm.assign_client_access('100000009', '300000007', :ed, 'PBAM');
SELECT carm.assign_client_access('100000009', '300000007', :ed, 'BOSS');
SELECT carm.assign_client_access('100000009', '300000007', :paula, 'PPAM');
RESET ROLE;
SELECT carm.reset_actor();
UPDATE carm.employee SET role = 'BAM' WHERE user_id = :peter;
SET ROLE regress_gateway;
SELECT pg_temp.act('paula');
SELECT carm.assign_client_access('100000009', '300000007', :peter, 'PPAM');
RESET ROLE;
SELECT carm.reset_actor();
UPDATE carm.employee SET role = 'EDITOR' WHERE user_id = :peter;
SET ROLE regress_gateway;
SELECT pg_temp.act('paula');
SELECT carm.assign_client_access('100000009', '300000007', :olga, 'PVIEWER');
SELECT carm.assign_client_access('100000009', '300000007', :bea, 'PVIEWER');
SELECT carm.assign_client_access('100000009', '300000007', :ed, 'PVIEWER', '{400000006RM0001}');
SELECT carm.assign_client_access('100000009', '400000006', :ed, 'PVIEWER');  -- no relationship
SELECT carm.assign_client_access('100000009', '300000007', 424242, 'PVIEWER');
-- R7: a provider PAM delegates only where it is itself PPAM (§6.2), and
-- changes only assignments within its own scope; an editor delegates nothing.
SELECT pg_temp.act('pam');
SELECT carm.assign_client_access('100000009', '300000007', :vic, 'PVIEWER', '{300000007RM0001}');
SELECT carm.assign_client_access('100000009', '300000007', :peter, 'PEDITOR', '{300000007RM0003}');
SELECT carm.assign_client_access('100000009', '300000007', :peter, 'PEDITOR');
SELECT carm.assign_client_access('100000009', '300000007', :ed, 'PVIEWER', '{300000007RM0001}');
SELECT carm.assign_client_access('100000009', '300000007', :peter, 'PBAM');
SELECT pg_temp.act('ed');
SELECT carm.assign_client_access('100000009', '300000007', :peter, 'PVIEWER');
SELECT * FROM carm.client_access('100000009', '300000007');
-- The provider's BAMs and PAMs see who holds what on the client, and how.
SELECT pg_temp.act('paula');
SELECT user_id, full_name, provider_role, role, programs, all_delegated, source
FROM carm.client_access('100000009', '300000007');
SELECT * FROM pg_temp.access('{ed,vic,pam}',
  '{"300000007RM0003 rulings.edit","300000007RM0001 rulings.view","300000007RM0002 rulings.view",
    "300000007RM0001 banking.view","300000007 business_profile.view"}');
SELECT pg_temp.act('ed');
SELECT event, message FROM carm.my_notifications();

-- R8: BUSINESS -> PROGRAM demotes PBAM to PPAM and narrows everyone to the
-- delegated programs; a removed program is lost at once, and does not come
-- back to listed assignments when delegated again.
SELECT pg_temp.act('clara');
SELECT carm.update_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001}', false, false, NULL);
SELECT pg_temp.act('paula');
SELECT user_id, role, programs, all_delegated, source FROM carm.client_access('100000009', '300000007');
SELECT pg_temp.act('clara');
SELECT carm.update_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001,300000007RM0002}', true, true,
                                '2100-01-01 00:00+00');
SELECT pg_temp.act('paula');
SELECT user_id, role, programs, all_delegated, source FROM carm.client_access('100000009', '300000007');
SELECT id, status, access_type, programs, see_client_submissions, see_other_submissions, expires_at
FROM carm.relationships('100000009');
SELECT * FROM pg_temp.access('{paula,ed,pam}',
  '{"300000007RM0002 rulings.manage","300000007RM0002 rulings.edit","300000007RM0003 rulings.view",
    "300000007 business_profile.view"}');

-- R7: revoking an individual assignment.
SELECT carm.revoke_client_access('100000009', '300000007', :vic);
SELECT carm.revoke_client_access('100000009', '300000007', :vic);
SELECT * FROM pg_temp.access('{vic}', '{"300000007RM0001 rulings.view"}');

-- R9: ending is the client BAM's; the provider's BAMs keep EXPIRED (V4:
-- rows only, so no point check answers true), everyone else at the provider
-- loses everything, assignments go.
SELECT pg_temp.act('carl');
SELECT carm.end_relationship(:r_acme_maple);
SELECT pg_temp.act('clara');
SELECT carm.end_relationship(:r_acme_maple);
SELECT carm.end_relationship(:r_acme_maple);
SELECT carm.update_relationship(:r_acme_maple, 'PROGRAM', '{300000007RM0001}', false, false, NULL);
SELECT * FROM pg_temp.access('{paula,ed,pam}',
  '{"300000007RM0001 rulings.view","300000007RM0001 rulings.edit","300000007RM0001 statements.view",
    "300000007RM0001 program_profile.view"}');
SELECT pg_temp.act('paula');
SELECT * FROM carm.client_access('100000009', '300000007');
SELECT id, status, see_client_submissions, see_other_submissions, closed_at IS NOT NULL AS closed
FROM carm.relationships('100000009');
SELECT event, message FROM carm.my_notifications() WHERE event = 'relationship_ended';
RESET ROLE;
SELECT count(*) AS assignments_left FROM carm.client_assignment WHERE relationship_id = :r_acme_maple;
SET ROLE regress_gateway;

-- R9 by time, without maintenance: Beta's relationship with Cedar expires a
-- second after approval; checks compare the time themselves.
SELECT pg_temp.act('bob');
SELECT carm.request_relationship('200000008', '400000006', 'Trade advice for Cedar') AS r_beta_cedar \gset
SELECT carm.request_relationship('100000009', '400000006', 'x') AS r_bad;   -- bob is no Acme employee
SELECT pg_temp.act('paula');
SELECT carm.request_relationship('100000009', '400000006', 'Acme clears Cedar''s goods') AS r_acme_cedar \gset
SELECT pg_temp.act('ivan');
SELECT carm.approve_relationship(:r_beta_cedar, 'BUSINESS', NULL, true, true,
                                 expires_at => clock_timestamp() + interval '1 second');
SELECT carm.approve_relationship(:r_acme_cedar, 'BUSINESS', NULL,
                                 expires_at => clock_timestamp() + interval '1 second');
SELECT pg_temp.act('bob');
SELECT carm.assign_client_access('200000008', '400000006', :bea, 'PEDITOR');
-- A client group of Acme holding Cedar (the group API is tested elsewhere).
RESET ROLE;
INSERT INTO carm.client_group (provider_id, name) VALUES (:acme, 'Atlantic') RETURNING id AS atlantic \gset
INSERT INTO carm.group_client (group_id, provider_id, client_id) VALUES (:atlantic, :acme, :cedar);
INSERT INTO carm.group_employee (group_id, user_id, role) VALUES (:atlantic, :ed, 'PVIEWER');
SELECT * FROM pg_temp.access('{bob,bea,paula,ed}',
  '{"400000006RM0001 rulings.edit","400000006RM0001 rulings.view"}');
SELECT pg_sleep(1.2);
-- a new transaction: every provider employee has lost access; the provider
-- BAMs hold EXPIRED (read-only, its own submissions through the row checks
-- only: nothing at the point-check level, §8 rev. 1.1).
SELECT * FROM pg_temp.access('{bob,bea,paula,ed}',
  '{"400000006RM0001 rulings.edit","400000006RM0001 rulings.view","400000006RM0001 payments.view"}');
SET ROLE regress_gateway;
SELECT pg_temp.act('bob');
SELECT carm.has_access('400000006RM0001', 'rulings.view') AS bob_view,
       carm.has_access('400000006RM0001', 'rulings.edit') AS bob_edit;
SELECT pg_temp.act('bea');
SELECT carm.has_access('400000006RM0001', 'rulings.view') AS bea_view;
-- Listings already say expired; the stored cascade has not run yet.
SELECT pg_temp.act('ivan');
SELECT id, provider, status, see_client_submissions, see_other_submissions
FROM carm.relationships('400000006');
RESET ROLE;
SELECT id, status FROM carm.relationship WHERE client_id = :cedar ORDER BY id;
SET ROLE regress_gateway;
-- R9: the API sees the relationship as expired (no more assignments), and
-- the next call touching the pair applies the cascade before it acts (here
-- a new request); R10: a relationship re-established after expiry starts
-- from nothing (client_access, from the resolver, still shows the BAM's
-- EXPIRED on the expired relationship: V4, its own earlier submissions).
SELECT pg_temp.act('bob');
SELECT carm.assign_client_access('200000008', '400000006', :bea, 'PVIEWER');
SELECT carm.request_relationship('200000008', '400000006', 'Renewal of our contract') AS r_beta_cedar2 \gset
SELECT pg_temp.act('ivan');
SELECT carm.approve_relationship(:r_beta_cedar2, 'PROGRAM', '{400000006RM0001}');
SELECT id, status, access_type, programs, see_client_submissions, see_other_submissions
FROM carm.relationships('400000006') ORDER BY id;
SELECT pg_temp.act('bob');
SELECT user_id, role, programs, source FROM carm.client_access('200000008', '400000006');
SELECT * FROM pg_temp.access('{bob,bea}', '{"400000006RM0001 rulings.manage","400000006 business_profile.view"}');

-- R12: maintenance applies due cascades (here Acme-Cedar: its assignment-free
-- relationship and Cedar's membership of the Atlantic group), and notices of
-- relationships expiring within 30 days, once.
SELECT carm.run_maintenance();                                  -- carm_admin only
RESET ROLE;
SELECT count(*) AS atlantic_clients FROM carm.group_client WHERE group_id = :atlantic;
SET ROLE regress_gateway;
SELECT pg_temp.act('clara');
SELECT carm.update_relationship(:r_beta_cedar2, 'PROGRAM', '{400000006RM0001}', false, false, NULL);
SELECT pg_temp.act('ivan');
SELECT carm.update_relationship(:r_beta_cedar2, 'PROGRAM', '{400000006RM0001}', false, false,
                                now() + interval '10 days');
RESET ROLE;
SELECT * FROM carm.run_maintenance() WHERE action IN ('relationships_expired', 'expiry_notices');
SELECT * FROM carm.run_maintenance() WHERE action IN ('relationships_expired', 'expiry_notices');
SELECT count(*) AS atlantic_clients FROM carm.group_client WHERE group_id = :atlantic;
SELECT id, status FROM carm.relationship WHERE client_id = :cedar ORDER BY id;
SELECT u.external_id, n.event,
       regexp_replace(n.message, '\d{4}-\d\d-\d\d \d\d:\d\d', 'YYYY-MM-DD HH:MI') AS message
FROM carm.notification n JOIN carm.app_user u ON u.id = n.user_id
WHERE n.event IN ('relationship_expired', 'relationship_expiring')
ORDER BY n.id;

-- §9: every transition is in the audit trail, for both businesses' BAMs.
SET ROLE regress_gateway;
SELECT pg_temp.act('clara');
SELECT event, business, other_business, target_user_id, relationship_id,
       details - '{as_of,expires_at}'::text[] AS details
FROM carm.audit_events('300000007')
WHERE event LIKE 'relationship%' OR event LIKE 'client_access%'
ORDER BY id;
SELECT pg_temp.act('paula');
SELECT event FROM carm.audit_events('400000006');                 -- not Cedar's BAM
SELECT event, relationship_id, group_id, details -> 'group_left' AS group_left
FROM carm.audit_events('100000009') WHERE event = 'relationship_expired';

RESET ROLE;
DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_gateway;
