-- §7 client groups (G1-G9) and the request-processing table.
-- State is set up directly as the superuser (no actor); the group API is
-- called as a carm_gateway member acting for provider users.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
-- This transcript changes actors between statements with session actors
-- (set_actor(..., false)), which are off by default (SPEC §10 rev. 1.2).
SET carm_deleg.allow_session_actor = on;
RESET client_min_messages;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_groups_gw') THEN
    CREATE ROLE regress_groups_gw NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_groups_nobody') THEN
    CREATE ROLE regress_groups_nobody NOLOGIN;
  END IF;
END
$$;
GRANT carm_gateway TO regress_groups_gw;

-- Reference data: two service providers, five clients, one plain importer.
SELECT carm.add_business('100000009', 'Broker One', '{CUSTOMS_BROKER}') AS broker \gset
SELECT carm.add_business('100000017', 'Consult Two', '{TRADE_CONSULTANT}') AS consult \gset
SELECT carm.add_business('200000008', 'Client A', '{IMPORTER}') AS ca \gset
SELECT carm.add_business('200000016', 'Client B', '{IMPORTER}') AS cb \gset
SELECT carm.add_business('200000024', 'Client C', '{IMPORTER}') AS cc \gset
SELECT carm.add_business('200000032', 'Client D', '{IMPORTER}') AS cd \gset
SELECT carm.add_business('200000040', 'Client E', '{IMPORTER}') AS ce \gset
SELECT carm.add_business('300000007', 'Plain Importer', '{IMPORTER}') AS imp \gset
SELECT count(carm.add_program_account(x))
FROM unnest(ARRAY['200000008RM0001','200000008RM0002','200000016RM0001','200000016RM0002',
                  '200000024RM0001','200000032RM0001','200000040RM0001']) x;

SELECT carm.register_user('bam', 'Bea Broker') AS bam \gset
SELECT carm.register_user('bam2', 'Bo Broker') AS bam2 \gset
SELECT carm.register_user('pam', 'Pat Program') AS pam \gset
SELECT carm.register_user('ed', 'Ed Editor') AS ed \gset
SELECT carm.register_user('vi', 'Vi Viewer') AS vi \gset
SELECT carm.register_user('stranger', 'Sam Stranger') AS stranger \gset
SELECT carm.register_user('cbam', 'Cy Consult') AS cbam \gset
SELECT carm.register_user('ibam', 'Ida Importer') AS ibam \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES
  (:broker, :bam, 'BAM'), (:broker, :bam2, 'BAM'), (:broker, :pam, 'PAM'),
  (:broker, :ed, 'EDITOR'), (:broker, :vi, 'VIEWER'),
  (:consult, :cbam, 'BAM'), (:imp, :ibam, 'BAM');

-- Relationships of Broker One: A BUSINESS, B PROGRAM (RM0001 only),
-- C BUSINESS but expired by time (still 'active', R9), D BUSINESS; none with E.
-- Consult Two also has A.
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, programs, expires_at, comment)
VALUES (:broker, :ca, 'active', 'BUSINESS', NULL, NULL, 'customs'),
       (:broker, :cb, 'active', 'PROGRAM', ARRAY[carm.program_id('200000016RM0001')], NULL, 'customs'),
       (:broker, :cc, 'active', 'BUSINESS', NULL, now() - interval '1 day', 'customs'),
       (:broker, :cd, 'active', 'BUSINESS', NULL, now() + interval '1 year', 'customs'),
       (:consult, :ca, 'active', 'BUSINESS', NULL, NULL, 'advice');
SELECT id AS rel_a FROM carm.relationship WHERE provider_id = :broker AND client_id = :ca \gset

SET ROLE regress_groups_gw;

-- §2: no acting user
SELECT carm.create_client_group('100000009', 'East');

-- G1: only a BAM of a service provider manages its groups
SELECT carm.set_actor(:stranger, false);
SELECT carm.create_client_group('100000009', 'East');
SELECT carm.set_actor(:pam, false);
SELECT carm.create_client_group('100000009', 'East');
SELECT carm.set_actor(:ibam, false);
SELECT carm.create_client_group('300000007', 'East');
SELECT * FROM carm.available_clients('300000007');
SELECT carm.set_actor(:cbam, false);
SELECT carm.client_groups('100000009');

-- G2: names are non-blank and unique ignoring case and surrounding spaces
SELECT carm.set_actor(:bam, false);
SELECT carm.create_client_group('100000009', '  East  ') AS east \gset
SELECT carm.create_client_group('100000009', 'EAST');
SELECT carm.create_client_group('100000009', ' east ');
SELECT carm.create_client_group('100000009', '   ');
SELECT carm.create_client_group('100000009', NULL);
SELECT carm.create_client_group('100000009', repeat('x', 201));

-- G3: a client needs an active, unexpired relationship and no other group;
-- the whole operation fails naming every offender, nothing is applied
SELECT client, legal_name, access_type, expires_at IS NOT NULL AS expires
FROM carm.available_clients('100000009') ORDER BY client;
SELECT carm.create_client_group('100000009', 'West',
         ARRAY['200000008', '200000024', '200000040', '400000006', '200000008']);
SELECT carm.create_client_group('100000009', 'West', ARRAY['200000008', 'not-a-bn9', '12']);
-- §10 (rev. 1.2): a NULL element is 22004, before any other check of the list
SELECT carm.create_client_group('100000009', 'West', ARRAY['200000008', 'not-a-bn9', NULL]);
SELECT carm.create_client_group('100000009', 'West', ARRAY['200000008', '200000016']) AS west \gset
SELECT carm.create_client_group('100000009', 'North', ARRAY['200000008', '200000032']);
SELECT carm.add_group_clients(:east, ARRAY['200000032', '200000016', '200000024']);
SELECT client, legal_name FROM carm.group_clients(:east) ORDER BY client;
SELECT client, legal_name, access_type, expires_at IS NOT NULL AS expires
FROM carm.available_clients('100000009') ORDER BY client;
-- a client may be in groups of different providers
SELECT carm.set_actor(:cbam, false);
SELECT carm.create_client_group('100000017', 'West', ARRAY['200000008']) > 0 AS other_provider_ok;
SELECT carm.set_actor(:bam, false);

-- G4: group employees are active provider employees, not BAMs, with a proxy role
SELECT carm.assign_group_employees(:west, ARRAY[:bam2, :stranger, :cbam, :ed]::bigint[], 'PEDITOR');
SELECT carm.assign_group_employees(:west, ARRAY[:ed]::bigint[], 'PBAM');
SELECT carm.assign_group_employees(:west, ARRAY[:ed, NULL]::bigint[], 'PEDITOR');
SELECT carm.assign_group_employees(:west, ARRAY[:ed, :pam, :ed]::bigint[], 'PEDITOR') > 0 AS assigned;
SELECT carm.assign_group_employees(:west, ARRAY[:vi]::bigint[], 'PVIEWER') > 0 AS assigned;
SELECT user_id = :pam AS pam, user_id = :ed AS ed, user_id = :vi AS vi, full_name, role
FROM carm.group_employees(:west) ORDER BY user_id;
RESET ROLE;
-- G4: the default role on every client, on all programs the relationship delegates
SELECT t.target, t.perm, carm.user_has_access(:ed, t.target, t.perm) AS ed,
       carm.user_has_access(:vi, t.target, t.perm) AS vi
FROM (VALUES ('200000008RM0001', 'rulings.edit'), ('200000008RM0002', 'rulings.edit'),
             ('200000008RM0001', 'rulings.manage'), ('200000008RM0001', 'rulings.view'),
             ('200000016RM0001', 'payments.edit'), ('200000016RM0002', 'payments.view'),
             ('200000008RM0001', 'banking.view'), ('200000008', 'business_profile.view'),
             ('200000032RM0001', 'rulings.view')) t(target, perm)
ORDER BY t.target, t.perm;
-- G5: an individual assignment overrides the group default for that client, even when lower
INSERT INTO carm.client_assignment (relationship_id, user_id, role) VALUES (:rel_a, :ed, 'PVIEWER');
SELECT carm.user_has_access(:ed, '200000008RM0001', 'rulings.edit') AS a_edit,
       carm.user_has_access(:ed, '200000008RM0001', 'rulings.view') AS a_view,
       carm.user_has_access(:ed, '200000016RM0001', 'rulings.edit') AS b_edit;
SET ROLE regress_groups_gw;

-- G6: adding a client gives the group's employees access (at commit)
SELECT carm.add_group_clients(:west, ARRAY['200000032']) > 0 AS added;
RESET ROLE;
SELECT carm.user_has_access(:ed, '200000032RM0001', 'rulings.edit') AS d_edit;
SET ROLE regress_groups_gw;

-- G7: removing a client revokes the group employees' access to it, the
-- individual assignment included, but not the provider BAMs'
SELECT carm.remove_group_clients(:west, ARRAY['200000008', '200000024', '200000040']);
SELECT carm.remove_group_clients(:west, ARRAY['200000008']) > 0 AS removed;
RESET ROLE;
SELECT count(*) AS ed_assignments_left FROM carm.client_assignment WHERE user_id = :ed;
SELECT carm.user_has_access(:ed, '200000008RM0001', 'rulings.view') AS ed_a,
       carm.user_has_access(:bam, '200000008RM0001', 'rulings.manage') AS bam_a,
       carm.user_has_access(:ed, '200000016RM0001', 'rulings.view') AS ed_b;
SET ROLE regress_groups_gw;
SELECT client, legal_name FROM carm.group_clients(:west) ORDER BY client;

-- unknown ids, NULLs and empty lists
SELECT carm.add_group_clients(999999, ARRAY['200000008']);
SELECT carm.add_group_clients(NULL, ARRAY['200000008']);
SELECT carm.add_group_clients(:west, NULL);
SELECT carm.add_group_clients(:west, '{}');
SELECT carm.unassign_group_employees(:west, ARRAY[:bam2]::bigint[]);

-- unassigning ends the group access of that employee only
SELECT carm.unassign_group_employees(:west, ARRAY[:vi]::bigint[]) > 0 AS unassigned;
RESET ROLE;
SELECT carm.user_has_access(:vi, '200000016RM0001', 'rulings.view') AS vi_b,
       carm.user_has_access(:ed, '200000016RM0001', 'rulings.view') AS ed_b;
SET ROLE regress_groups_gw;

-- G8: deleting a group does G7 for all its clients, makes them available
-- again and keeps the name taken; a deleted group cannot be changed
SELECT carm.delete_client_group(:west) > 0 AS deleted;
SELECT client, legal_name, access_type, expires_at IS NOT NULL AS expires
FROM carm.available_clients('100000009') ORDER BY client;
SELECT name, clients, employees, created_by = :bam AS by_bam, deleted_at IS NOT NULL AS deleted
FROM carm.client_groups('100000009') ORDER BY name;
SELECT carm.create_client_group('100000009', ' west');
SELECT carm.add_group_clients(:west, ARRAY['200000016']);
SELECT carm.assign_group_employees(:west, ARRAY[:ed]::bigint[], 'PVIEWER');
SELECT carm.delete_client_group(:west);
SELECT carm.delete_client_group(:west, deferred => true);
RESET ROLE;
SELECT carm.user_has_access(:ed, '200000016RM0001', 'rulings.view') AS ed_b,
       carm.user_has_access(:ed, '200000032RM0001', 'rulings.view') AS ed_d;
SET ROLE regress_groups_gw;

-- G9: deferred requests: only the form and the permission are checked when
-- queued; maintenance applies each atomically or marks it FAILED
SELECT carm.add_group_clients(:east, ARRAY['2000000xx'], deferred => true);
SELECT carm.set_actor(:pam, false);
SELECT carm.add_group_clients(:east, ARRAY['200000008'], deferred => true);
SELECT carm.set_actor(:bam, false);
SELECT carm.add_group_clients(:east, ARRAY['200000008', '200000032'], deferred => true) AS req_ok \gset
SELECT carm.assign_group_employees(:east, ARRAY[:ed]::bigint[], 'PPAM', deferred => true) AS req_assign \gset
SELECT carm.add_group_clients(:east, ARRAY['200000016', '200000040'], deferred => true) AS req_bad \gset
SELECT client, legal_name FROM carm.group_clients(:east) ORDER BY client;
RESET ROLE;
SELECT * FROM carm_internal.process_group_requests(now());
SELECT * FROM carm_internal.process_group_requests(now());
SELECT carm.user_has_access(:ed, '200000008RM0001', 'rulings.manage') AS ed_a_ppam,
       carm.user_has_access(:ed, '200000016RM0001', 'rulings.view') AS ed_b;
SET ROLE regress_groups_gw;
SELECT client, legal_name FROM carm.group_clients(:east) ORDER BY client;

-- a deferred request fails when its initiator is no longer a BAM at apply time
SELECT carm.unassign_group_employees(:east, ARRAY[:ed]::bigint[], deferred => true) AS req_demoted \gset
RESET ROLE;
SELECT carm.reset_actor();   -- the owner's direct write, not the BAM's own (E6)
UPDATE carm.employee SET role = 'PAM' WHERE business_id = :broker AND user_id = :bam;
SELECT * FROM carm_internal.process_group_requests(now());
UPDATE carm.employee SET role = 'BAM' WHERE business_id = :broker AND user_id = :bam;
SELECT count(*) AS still_assigned FROM carm.group_employee WHERE user_id = :ed;
SET ROLE regress_groups_gw;
SELECT carm.set_actor(:bam, false);

-- the request-processing table
SELECT request_id - :req_ok AS rel_id, operation, group_name, initiator_name, status, item_count,
       started_at IS NOT NULL AS started, finished_at >= started_at AS finished, error
FROM carm.group_requests('100000009')
ORDER BY request_id;

-- audit events and notifications
SELECT event, business, other_business, target_user_id = :ed AS for_ed,
       details->>'request_id' IS NOT NULL AS has_request
FROM carm.audit_events('100000009')
WHERE event LIKE '%group%'
ORDER BY id;
SELECT carm.set_actor(:ed, false);
SELECT event, message FROM carm.my_notifications() ORDER BY id;
SELECT carm.set_actor(:bam, false);
SELECT event, message FROM carm.my_notifications() ORDER BY id;
SELECT carm.reset_actor();
RESET ROLE;

-- Application roles reach groups only through carm_gateway
SET ROLE regress_groups_nobody;
SELECT carm.client_groups('100000009');
RESET ROLE;

DROP EXTENSION carm_deleg CASCADE;
REVOKE carm_gateway FROM regress_groups_gw;
DROP ROLE regress_groups_gw;
DROP ROLE regress_groups_nobody;
