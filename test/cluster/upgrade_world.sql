-- The world test/cluster/upgrade.sh builds in a 1.0 database before
-- `ALTER EXTENSION carm_deleg UPDATE` (SPEC §12 "Upgrades").  Written only
-- with the 1.0 API (README of release 1.0), as the application and the DBA
-- would: reference data by carm_admin, everything else by actors through
-- carm_gateway, one transaction per request.  Run by psql as the superuser
-- after CREATE EXTENSION carm_deleg VERSION '1.0'.
\set ON_ERROR_STOP 1
\set QUIET 1

-- Roles: the table owner (a carm_admin member, not a superuser), an
-- administrator, the application's connection role, and an end user's login
-- role bound to a portal user.
CREATE ROLE regress_up_owner LOGIN IN ROLE carm_admin;
CREATE ROLE regress_up_admin LOGIN IN ROLE carm_admin;
CREATE ROLE regress_up_reader LOGIN IN ROLE carm_gateway;
CREATE ROLE regress_up_login LOGIN;

-- §2 reference data ---------------------------------------------------------
SELECT carm.add_business('100000009', 'Maple Imports', '{IMPORTER}'),
       carm.add_business('200000008', 'Northern Customs Brokers', '{CUSTOMS_BROKER}'),
       carm.add_business('300000007', 'Laurentian Trade Consultants', '{TRADE_CONSULTANT}'),
       carm.add_business('400000006', 'Prairie Goods', '{IMPORTER}'),
       carm.add_business('500000005', 'Coastal Wholesale', '{IMPORTER}'),
       carm.add_business('600000004', 'Harbour Brokers', '{CUSTOMS_BROKER,IMPORTER}');
SELECT carm.add_program_account('100000009RM0001', 'Maple imports'),
       carm.add_program_account('100000009RM0002', 'Maple exports'),
       carm.add_program_account('100000009RM0003'),
       carm.add_program_account('200000008RM0001'),
       carm.add_program_account('300000007RM0001'),
       carm.add_program_account('400000006RM0001'),
       carm.add_program_account('400000006RM0002'),
       carm.add_program_account('500000005RM0001'),
       carm.add_program_account('600000004RM0001');
SELECT carm.set_business_kinds('500000005', '{IMPORTER}');

SELECT carm.register_user('alice', 'Alice Tremblay', 'alice@maple.example') AS alice \gset
SELECT carm.register_user('amy', 'Amy Roy') AS amy \gset
SELECT carm.register_user('aaron', 'Aaron Gagnon') AS aaron \gset
SELECT carm.register_user('avery', 'Avery Cote') AS avery \gset
SELECT carm.register_user('ava', 'Ava Pelletier') AS ava \gset
SELECT carm.register_user('dave', 'Dave Martin', 'dave@northern.example') AS dave \gset
SELECT carm.register_user('dan', 'Dan Bouchard') AS dan \gset
SELECT carm.register_user('dora', 'Dora Lavoie') AS dora \gset
SELECT carm.register_user('dean', 'Dean Fortin') AS dean \gset
SELECT carm.register_user('carl', 'Carl Morin') AS carl \gset
SELECT carm.register_user('cody', 'Cody Girard') AS cody \gset
SELECT carm.register_user('dina', 'Dina Leblanc') AS dina \gset
SELECT carm.register_user('erin', 'Erin Caron') AS erin \gset
SELECT carm.register_user('fred', 'Fred Ouellet') AS fred \gset
SELECT carm.register_user('lena', 'Lena Bergeron') AS lena \gset
SELECT carm.register_user('nobody', 'Nobody Associated') AS nobody \gset

-- §4 employees: the first to register a business is its BAM (E1) -------------
BEGIN; SELECT carm.set_actor('alice'); SELECT carm.register_business('100000009', '100000009RM0002'); COMMIT;
BEGIN; SELECT carm.set_actor('dave');  SELECT carm.register_business('200000008', '200000008RM0001'); COMMIT;
BEGIN; SELECT carm.set_actor('carl');  SELECT carm.register_business('300000007', '300000007RM0001'); COMMIT;
BEGIN; SELECT carm.set_actor('dina');  SELECT carm.register_business('400000006', '400000006RM0001'); COMMIT;
BEGIN; SELECT carm.set_actor('erin');  SELECT carm.register_business('500000005', '500000005RM0001'); COMMIT;
BEGIN; SELECT carm.set_actor('fred');  SELECT carm.register_business('600000004', '600000004RM0001'); COMMIT;

-- Access requests (E2), approved with roles and program scopes (E3, E5),
-- one rejected with a reason (E4).
BEGIN; SELECT carm.set_actor('amy');
SELECT carm.request_employee_access('100000009', 'Program manager, imports and exports') AS r_amy \gset
COMMIT;
BEGIN; SELECT carm.set_actor('aaron');
SELECT carm.request_employee_access('100000009', 'Clerk, imports') AS r_aaron \gset
COMMIT;
BEGIN; SELECT carm.set_actor('avery');
SELECT carm.request_employee_access('100000009', 'Auditor') AS r_avery \gset
COMMIT;
BEGIN; SELECT carm.set_actor('ava');
SELECT carm.request_employee_access('100000009', 'Accountant') AS r_ava \gset
COMMIT;
BEGIN; SELECT carm.set_actor('lena');
SELECT carm.request_employee_access('100000009', 'Exports clerk') AS r_lena \gset
COMMIT;
BEGIN; SELECT carm.set_actor('nobody');
SELECT carm.request_employee_access('100000009', 'Let me in') AS r_nobody \gset
COMMIT;
BEGIN; SELECT carm.set_actor('alice');
SELECT carm.approve_employee_access(:r_amy, 'PAM', '{100000009RM0001,100000009RM0002}');
SELECT carm.approve_employee_access(:r_avery, 'VIEWER');
SELECT carm.approve_employee_access(:r_ava, 'EDITOR');
SELECT carm.reject_employee_access(:r_nobody, 'not one of our employees');
COMMIT;
-- a PAM approves within its own programs (E3)
BEGIN; SELECT carm.set_actor('amy');
SELECT carm.approve_employee_access(:r_aaron, 'EDITOR', '{100000009RM0001}');
SELECT carm.approve_employee_access(:r_lena, 'VIEWER', '{100000009RM0002}');
COMMIT;

BEGIN; SELECT carm.set_actor('dan');
SELECT carm.request_employee_access('200000008', 'Broker, declarations') AS r_dan \gset
COMMIT;
BEGIN; SELECT carm.set_actor('dora');
SELECT carm.request_employee_access('200000008', 'Broker assistant') AS r_dora \gset
COMMIT;
BEGIN; SELECT carm.set_actor('dean');
SELECT carm.request_employee_access('200000008', 'Office manager') AS r_dean \gset
COMMIT;
BEGIN; SELECT carm.set_actor('cody');
SELECT carm.request_employee_access('300000007', 'Consultant') AS r_cody \gset
COMMIT;
BEGIN; SELECT carm.set_actor('dave');
SELECT carm.approve_employee_access(:r_dan, 'EDITOR');
SELECT carm.approve_employee_access(:r_dora, 'VIEWER');
SELECT carm.approve_employee_access(:r_dean, 'PAM');
COMMIT;
BEGIN; SELECT carm.set_actor('carl');
SELECT carm.approve_employee_access(:r_cody, 'EDITOR');
COMMIT;

-- §5 relationships ------------------------------------------------------------
BEGIN; SELECT carm.set_actor('dave');
SELECT carm.request_relationship('200000008', '100000009', 'Customs clearance for Maple') AS rel_maple \gset
SELECT carm.request_relationship('200000008', '400000006', 'Customs clearance for Prairie') AS rel_prairie \gset
SELECT carm.request_relationship('200000008', '500000005', 'Customs clearance for Coastal') AS rel_coastal \gset
COMMIT;
BEGIN; SELECT carm.set_actor('carl');
SELECT carm.request_relationship('300000007', '100000009', 'Tariff classification advice') AS rel_consult \gset
COMMIT;
BEGIN; SELECT carm.set_actor('fred');   -- stays pending: confers nothing
SELECT carm.request_relationship('600000004', '100000009', 'Harbour services') AS rel_pending \gset
COMMIT;
-- a BUSINESS relationship (R6: dave is PBAM on Maple) and a PROGRAM one with
-- both visibility attributes and an expiry far enough away (R5)
BEGIN; SELECT carm.set_actor('alice');
SELECT carm.approve_relationship(:rel_maple, 'BUSINESS', see_client_submissions => true);
SELECT carm.approve_relationship(:rel_consult, 'PROGRAM',
                                 programs => '{100000009RM0001,100000009RM0002}',
                                 see_client_submissions => true, see_other_submissions => true,
                                 expires_at => now() + interval '1 year');
COMMIT;
BEGIN; SELECT carm.set_actor('dina');
SELECT carm.approve_relationship(:rel_prairie, 'PROGRAM', programs => '{400000006RM0001}',
                                 see_other_submissions => true);
COMMIT;
BEGIN; SELECT carm.set_actor('erin');
SELECT carm.approve_relationship(:rel_coastal, 'BUSINESS', see_client_submissions => true);
COMMIT;

-- Individual assignments (R7)
BEGIN; SELECT carm.set_actor('dave');
SELECT carm.assign_client_access('200000008', '100000009', :dan, 'PEDITOR', '{100000009RM0001}');
SELECT carm.assign_client_access('200000008', '100000009', :dean, 'PPAM');
SELECT carm.assign_client_access('200000008', '500000005', :dora, 'PEDITOR');
COMMIT;
BEGIN; SELECT carm.set_actor('carl');
SELECT carm.assign_client_access('300000007', '100000009', :cody, 'PVIEWER', '{100000009RM0002}');
COMMIT;

-- §7 a client group with clients and employees: dan's individual assignment
-- on Maple overrides the group role there (G5)
BEGIN; SELECT carm.set_actor('dave');
SELECT carm.create_client_group('200000008', 'Eastern importers', '{100000009}') AS grp \gset
SELECT carm.add_group_clients(:grp, '{400000006}');
SELECT carm.assign_group_employees(:grp, ARRAY[:dora, :dan]::bigint[], 'PVIEWER');
SELECT carm.create_client_group('200000008', 'Spare group') AS grp2 \gset
SELECT carm.delete_client_group(:grp2);
COMMIT;

-- An ended relationship: dora's assignment goes, dave holds EXPIRED (R9, V4)
BEGIN; SELECT carm.set_actor('erin');
SELECT carm.end_relationship(:rel_coastal);
COMMIT;

-- A deactivated user and a login binding (§2)
SELECT carm.deactivate_user(:ava);
SELECT carm.bind_login_role(:lena, 'regress_up_login');

-- §8 protected application tables, owned by a carm_admin member ---------------
CREATE SCHEMA app AUTHORIZATION regress_up_owner;
SET ROLE regress_up_owner;
CREATE TABLE app.payments (id integer PRIMARY KEY, program_id bigint NOT NULL,
                           submitter_id bigint, amount numeric NOT NULL);
CREATE INDEX ON app.payments (program_id, submitter_id);
CREATE TABLE app.rulings (id integer PRIMARY KEY, program_id bigint,
                          submitter_id bigint, title text NOT NULL);
CREATE INDEX ON app.rulings (program_id, submitter_id);
GRANT USAGE ON SCHEMA app TO regress_up_reader, regress_up_login;
GRANT SELECT, INSERT ON app.payments, app.rulings TO regress_up_reader, regress_up_login;
RESET ROLE;
-- every program × every submitting business, plus rows nobody may see
INSERT INTO app.payments
SELECT row_number() OVER (ORDER BY p.bn15, b.bn9), p.id, b.id, 100 + b.id
FROM carm.program p CROSS JOIN carm.business b;
INSERT INTO app.payments VALUES (1001, carm.program_id('100000009RM0001'), NULL, 1);
INSERT INTO app.rulings
SELECT row_number() OVER (ORDER BY p.bn15, b.bn9), p.id, b.id, 'ruling ' || p.bn15 || ' by ' || b.bn9
FROM carm.program p CROSS JOIN carm.business b
WHERE b.bn9 IN ('100000009', '200000008', '300000007', '600000004');
INSERT INTO app.rulings VALUES (1001, NULL, carm.business_id('100000009'), 'no program');
SET ROLE regress_up_owner;
SELECT carm.protect('app.payments', 'program_id', 'submitter_id', 'payments');
SELECT carm.protect('app.rulings', 'program_id', 'submitter_id', 'rulings');
RESET ROLE;

-- A write through the policies: the submitter is filled with the actor's
-- acting business (V5)
SET ROLE regress_up_reader;
BEGIN; SELECT carm.set_actor('dan');
INSERT INTO app.payments (id, program_id, amount) VALUES (2001, carm.program_id('100000009RM0001'), 42);
COMMIT;
RESET ROLE;
