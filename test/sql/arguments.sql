-- §10 (rev. 1.2) arguments and refusals, across the API:
--   1. R11 / §10: a provider's people who reach a client through a
--      relationship (PBAM, assigned proxies) get 42501 with the reason when
--      they try the client's access requests or relationship requests; only
--      an actor with no link gets P0002;
--   2. every array parameter refuses a multidimensional array (22023) and a
--      NULL element (22004, naming its position), by one helper;
--   3. arrays whose subscripts do not start at 1 ('[0:2]={…}', a client
--      library's slice) are read whole and in order, bulk loads included,
--      and their audit events list exactly what was loaded (§12);
--   4. blank means any Unicode white space (tab, newline, no-break space…)
--      for names, comments and reasons (G2, R1, R4, E2, E4), and role names
--      are trimmed and case-folded alike for employees and proxies (E5, R7, G4).
-- The test/pgtap/bulk_property.sql property test compares bulk loads with
-- random bounds against the one-row functions.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
RESET client_min_messages;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_args_admin') THEN
    CREATE ROLE regress_args_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_args_gw') THEN
    CREATE ROLE regress_args_gw NOLOGIN;
  END IF;
END
$$;
SET client_min_messages = warning;   -- "already a member" when run twice
GRANT carm_admin TO regress_args_admin;
GRANT carm_gateway TO regress_args_gw;
RESET client_min_messages;

-- The outcome of a statement: ok, or its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
-- The same, acting as a user for this statement only (set_actor is local).
CREATE FUNCTION pg_temp.try_as(actor text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM carm.set_actor(actor);
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text), pg_temp.try_as(text, text) TO PUBLIC;

-- The world: Broker One has an active BUSINESS relationship with Client A
-- (its BAM pbam is PBAM there; its editor ed is assigned PEDITOR); Consult
-- Two has a pending request to Client A; an asker has a pending access
-- request to Client A, and so has stranger; nobody has no link to anything.
SELECT carm.add_business('100000009', 'Broker One', '{CUSTOMS_BROKER}') AS broker \gset
SELECT carm.add_business('100000017', 'Consult Two', '{TRADE_CONSULTANT}') AS consult \gset
SELECT carm.add_business('200000008', 'Client A', '{IMPORTER}') AS ca \gset
SELECT count(carm.add_program_account(x))
FROM unnest(ARRAY['200000008RM0001', '200000008RM0002', '200000008RM0003']) x;
SELECT carm.register_user(u, initcap(u)) FROM unnest(ARRAY['pbam', 'ed', 'c2bam', 'cbam', 'asker', 'stranger', 'nobody']) u \g /dev/null
SELECT id AS pbam FROM carm.app_user WHERE external_id = 'pbam' \gset
SELECT id AS ed FROM carm.app_user WHERE external_id = 'ed' \gset
SELECT id AS c2bam FROM carm.app_user WHERE external_id = 'c2bam' \gset
SELECT id AS cbam FROM carm.app_user WHERE external_id = 'cbam' \gset
SELECT id AS asker FROM carm.app_user WHERE external_id = 'asker' \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES
  (:broker, :pbam, 'BAM'), (:broker, :ed, 'EDITOR'), (:consult, :c2bam, 'BAM'), (:ca, :cbam, 'BAM');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment)
VALUES (:broker, :ca, 'active', 'BUSINESS', 'customs') RETURNING id AS rel_a \gset
INSERT INTO carm.relationship (provider_id, client_id, comment, requested_by)
VALUES (:consult, :ca, 'advice', :c2bam) RETURNING id AS rel_pending \gset
INSERT INTO carm.client_assignment (relationship_id, user_id, role) VALUES (:rel_a, :ed, 'PEDITOR');
INSERT INTO carm.access_request (business_id, user_id, comment) VALUES (:ca, :asker, 'payables')
RETURNING id AS req \gset
INSERT INTO carm.access_request (business_id, user_id, comment)
VALUES (:ca, (SELECT id FROM carm.app_user WHERE external_id = 'stranger'), 'receivables')
RETURNING id AS req2 \gset
-- The first value of a query run as a user (set_actor is local to it).
CREATE FUNCTION pg_temp.value_as(actor text, query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  v text;
BEGIN
  PERFORM carm.set_actor(actor);
  EXECUTE query INTO v;
  RETURN v;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.value_as(text, text) TO PUBLIC;
SET ROLE regress_args_gw;
SELECT pg_temp.value_as('pbam', $$SELECT carm.create_client_group('100000009', 'West')$$) AS west \gset
RESET ROLE;

-- 1. R11 / §10: 42501 for the provider's people, P0002 only with no link -----
SET ROLE regress_args_gw;
SELECT n, who, pg_temp.try_as(who, format(stmt, :req2, :rel_pending)) AS outcome FROM (VALUES
  (71, 'pbam',   $$SELECT carm.approve_employee_access(%1$s, 'VIEWER')$$),     -- PBAM on the client
  (72, 'pbam',   $$SELECT carm.reject_employee_access(%1$s, 'no')$$),
  (73, 'ed',     $$SELECT carm.approve_employee_access(%1$s, 'VIEWER')$$),     -- assigned PEDITOR
  (74, 'pbam',   $$SELECT carm.approve_relationship(%2$s, 'BUSINESS')$$),     -- the client's request with another provider
  (75, 'pbam',   $$SELECT carm.reject_relationship(%2$s, 'no')$$),
  (76, 'c2bam',  $$SELECT carm.approve_relationship(%2$s, 'BUSINESS')$$),     -- its own business's request
  (77, 'c2bam',  $$SELECT carm.reject_relationship(%2$s, 'no')$$),
  (78, 'c2bam',  $$SELECT carm.approve_employee_access(%1$s, 'VIEWER')$$),     -- no link to the client yet
  (79, 'nobody', $$SELECT carm.approve_relationship(%2$s, 'BUSINESS')$$),     -- no link at all
  (80, 'nobody', $$SELECT carm.approve_relationship(999999, 'BUSINESS')$$),   -- the same answer
  (81, 'nobody', $$SELECT carm.approve_employee_access(%1$s, 'VIEWER')$$),
  (82, 'nobody', $$SELECT carm.approve_employee_access(999999, 'VIEWER')$$)
) AS t(n, who, stmt) ORDER BY n;
RESET ROLE;
SELECT status FROM carm.access_request WHERE id = :req2;
SELECT status FROM carm.relationship WHERE id = :rel_pending;

-- 2. Multidimensional arrays and NULL elements, every array parameter ------
-- The API's functions with an array parameter; each is exercised below (a
-- new one shows here and needs its line).
SELECT p.oid::regprocedure AS api_function_with_array_parameter
FROM pg_proc p
WHERE p.pronamespace = 'carm'::regnamespace
  AND EXISTS (SELECT FROM unnest(p.proargtypes) t JOIN pg_type ty ON ty.oid = t WHERE ty.typcategory = 'A')
ORDER BY p.oid::regprocedure::text;
SET ROLE regress_args_gw;
SELECT n, pg_temp.try_as(who, format(stmt, :req, :rel_a, :rel_pending, :west, :ed)) AS outcome FROM (VALUES
  (1, 'pbam',  $$SELECT carm.assign_group_employees(%4$s, '{{1,2},{3,4}}', 'PEDITOR')$$),
  (2, 'pbam',  $$SELECT carm.unassign_group_employees(%4$s, '{{1,2},{3,4}}')$$),
  (3, 'pbam',  $$SELECT carm.create_client_group('100000009', 'North', '{{200000008}}')$$),
  (4, 'pbam',  $$SELECT carm.add_group_clients(%4$s, '{{200000008}}')$$),
  (5, 'pbam',  $$SELECT carm.remove_group_clients(%4$s, '{{200000008}}')$$),
  (6, 'cbam',  $$SELECT carm.approve_employee_access(%1$s, 'PAM', '{{200000008RM0001}}')$$),
  (7, 'cbam',  $$SELECT carm.set_employee_access('200000008', %5$s, 'VIEWER', '{{200000008RM0001}}')$$),
  (8, 'cbam',  $$SELECT carm.approve_relationship(%3$s, 'PROGRAM', '{{200000008RM0001}}')$$),
  (9, 'cbam',  $$SELECT carm.update_relationship(%2$s, 'PROGRAM', '{{200000008RM0001}}', false, false, NULL)$$),
  (10, 'pbam', $$SELECT carm.assign_client_access('100000009', '200000008', %5$s, 'PVIEWER', '{{200000008RM0001}}')$$),
  (11, 'pbam', $$SELECT carm.businesses('{{1,2}}')$$),
  (12, 'pbam', $$SELECT carm.programs('{{1,2}}')$$),
  (13, 'cbam', $$SELECT carm.audit_events('200000008', events => '{{a}}')$$),
  (21, 'pbam', $$SELECT carm.assign_group_employees(%4$s, ARRAY[%5$s, NULL], 'PEDITOR')$$),
  (22, 'pbam', $$SELECT carm.add_group_clients(%4$s, '{200000008,NULL}')$$),
  (23, 'cbam', $$SELECT carm.approve_employee_access(%1$s, 'PAM', '[0:1]={200000008RM0001,NULL}')$$),
  (24, 'cbam', $$SELECT carm.approve_relationship(%3$s, 'PROGRAM', '{NULL}')$$),
  (25, 'pbam', $$SELECT carm.programs('{1,NULL}')$$),
  (26, 'cbam', $$SELECT carm.audit_events('200000008', events => '{NULL}')$$)
) AS t(n, who, stmt) ORDER BY n;
RESET ROLE;
SET ROLE regress_args_admin;
SELECT n, pg_temp.try(stmt) AS outcome FROM (VALUES
  (31, $$SELECT carm.add_business('300000007', 'X', '{{IMPORTER}}')$$),
  (32, $$SELECT carm.set_business_kinds('200000008', '{{IMPORTER}}')$$),
  (33, $$SELECT carm.add_businesses('{400000006}', '{{A}}', '{IMPORTER}')$$),
  (34, $$SELECT carm.add_businesses('{400000006}', '{A}', '{{IMPORTER}}')$$),
  (35, $$SELECT carm.add_program_accounts('{200000008RM0009}', '{{n}}')$$),
  (36, $$SELECT carm.register_users('{u1}', '{U1}', '{{u1@example.com}}')$$),
  (37, $$SELECT carm.set_business_kinds('200000008', '{IMPORTER,NULL}')$$),
  -- the upsert overloads check their arrays the same way (rev. 1.2)
  (38, $$SELECT carm.add_businesses('{400000006}', '{{A}}', '{IMPORTER}', 'update')$$),
  (39, $$SELECT carm.add_program_accounts('[5:6]={200000008RM0009,NULL}', NULL, 'skip')$$),
  (40, $$SELECT carm.register_users('[0:2]={u1,u2,u3}', '{U1,U2}', NULL, 'update')$$),
  -- 22004 naming the position, never the internal table (23502 app_user before)
  (41, $$SELECT carm.register_users('{u1,u2}', '{U1,NULL}')$$),
  (42, $$SELECT carm.register_users('[0:1]={u1,u2}', '[0:1]={NULL,U2}')$$),
  (43, $$SELECT carm.add_program_accounts('[5:6]={200000008RM0009,NULL}')$$),
  (44, $$SELECT carm.add_businesses('{400000006}', '{A}', '{NULL}')$$),
  -- misaligned: 22023, whatever the bounds
  (51, $$SELECT carm.register_users('[0:2]={u1,u2,u3}', '{U1,U2}')$$),
  (52, $$SELECT carm.add_program_accounts('[0:1]={200000008RM0009,200000008RM0010}', '[0:2]={a,b,c}')$$),
  (53, $$SELECT carm.add_businesses('[0:1]={400000006,500000005}', '{A,B}', '{IMPORTER,IMPORTER,IMPORTER}')$$)
) AS t(n, stmt) ORDER BY n;
RESET ROLE;
-- the position counts from 1; the detail gives the caller's subscript
\set VERBOSITY default
SET ROLE regress_args_admin;
SELECT carm.register_users('[0:1]={u1,u2}', '[0:1]={U1,NULL}');
RESET ROLE;
\set VERBOSITY terse
-- nothing was applied
SELECT (SELECT count(*) FROM carm.business) AS businesses, (SELECT count(*) FROM carm.program) AS programs,
       (SELECT count(*) FROM carm.app_user) AS users, (SELECT count(*) FROM carm.group_employee) AS group_employees,
       (SELECT count(*) FROM carm.access_request WHERE status = 'pending') AS pending_requests,
       (SELECT count(*) FROM carm.relationship WHERE status = 'pending') AS pending_relationships;

-- 3. Subscripts that do not start at 1 --------------------------------------
SET ROLE regress_args_admin;
SELECT carm.add_program_accounts('[0:2]={200000008RM0004,200000008RM0005,200000008RM0006}',
                                 '[7:9]={four,five,six}') AS loaded;
SELECT carm.register_users('[0:2]={u0,u1,u2}', '[-1:1]={Zero,One,Two}',
                           '[3:5]={zero@example.com,NULL,two@example.com}') AS registered;
SELECT carm.add_businesses('[0:1]={400000006,500000005}', '[2:3]={Four,Five}', '[9:9]={IMPORTER}') AS added;
RESET ROLE;
SELECT p.bn15, p.name FROM carm.program p WHERE p.bn15 > '200000008RM0003' ORDER BY p.bn15;
SELECT external_id, full_name, email FROM carm.app_user WHERE external_id LIKE 'u_' ORDER BY external_id;
SELECT bn9, legal_name, kinds FROM carm.business WHERE bn9 IN ('400000006', '500000005') ORDER BY bn9;
-- §9: the audit event lists exactly what was loaded
SELECT event, details FROM carm.audit_event
WHERE event IN ('program_accounts_added', 'users_registered', 'businesses_added') ORDER BY id;
-- lists of the one-row API, the group API and the lookups too
SET ROLE regress_args_gw;
SELECT pg_temp.try_as('cbam', format($$SELECT carm.approve_employee_access(%s, 'PAM', '[0:1]={200000008RM0001,200000008RM0002}')$$,
                                     :req)) AS approved;
SELECT pg_temp.try_as('pbam', format($$SELECT carm.assign_group_employees(%s, '[0:0]={%s}', 'PVIEWER')$$, :west, :ed)) AS assigned;
SELECT pg_temp.try_as('pbam', format($$SELECT carm.add_group_clients(%s, '[0:0]={200000008}')$$, :west)) AS added;
RESET ROLE;
SELECT u.external_id, e.role, carm_internal.bn15s(e.programs) AS programs
FROM carm.employee e JOIN carm.app_user u ON u.id = e.user_id WHERE e.business_id = :ca ORDER BY 1;
SELECT u.external_id, ge.role FROM carm.group_employee ge JOIN carm.app_user u ON u.id = ge.user_id;
SELECT b.bn9 FROM carm.group_client gc JOIN carm.business b ON b.id = gc.client_id;

-- 4. Blank is any Unicode white space; role names trimmed and case-folded ---
SET ROLE regress_args_gw;
SELECT n, pg_temp.try_as(who, format(stmt, :req, :rel_pending)) AS outcome FROM (VALUES
  (61, 'stranger', $$SELECT carm.request_employee_access('200000008', E'\t\n\r')$$),                -- E2
  (62, 'stranger', $$SELECT carm.request_employee_access('200000008', U&'\00A0\2003\3000')$$),      -- E2
  (63, 'cbam',     $$SELECT carm.reject_employee_access(%1$s, U&' \00A0\202F ')$$),                -- E4
  (64, 'c2bam',    $$SELECT carm.request_relationship('100000017', '200000008', U&'\2028\FEFF')$$), -- R1
  (65, 'cbam',     $$SELECT carm.reject_relationship(%2$s, E'\n\t')$$),                          -- R4
  (66, 'pbam',     $$SELECT carm.create_client_group('100000009', U&'\00A0\00A0')$$),            -- G2
  (67, 'pbam',     $$SELECT carm.create_client_group('100000009', U&'\00A0west\3000')$$),        -- G2: taken
  (68, 'pbam',     $$SELECT carm.create_client_group('100000009', E'\tSouth\n')$$)
) AS t(n, who, stmt) ORDER BY n;
RESET ROLE;
SELECT name, name_key FROM carm.client_group ORDER BY id;
SET ROLE regress_args_admin;
SELECT pg_temp.try($$SELECT carm.register_user(U&'\00A0v1\2003', E'\tVee One\n')$$) AS one_row,
       pg_temp.try($$SELECT carm.register_users(ARRAY[U&'\00A0v2\2003'], ARRAY[E'\tVee Two\n'])$$) AS bulk,
       pg_temp.try($$SELECT carm.register_users(ARRAY['v3'], ARRAY[U&'\00A0'])$$) AS bulk_blank;
RESET ROLE;
SELECT external_id, full_name FROM carm.app_user WHERE external_id LIKE 'v_' ORDER BY 1;
-- E5, R7, G4: one rule for every role name
SET ROLE regress_args_gw;
SELECT pg_temp.try_as('cbam', format($$SELECT carm.set_employee_access('200000008', %s, E'\tviewer' || U&'\00A0')$$,
                                     :asker)) AS employee_role,
       pg_temp.try_as('pbam', format($$SELECT carm.assign_client_access('100000009', '200000008', %s, ' pviewer ')$$, :ed)) AS client_role,
       pg_temp.try_as('pbam', format($$SELECT carm.assign_group_employees(%s, ARRAY[%s], E'PEditor\n')$$, :west, :ed)) AS group_role,
       pg_temp.try_as('pbam', format($$SELECT carm.assign_client_access('100000009', '200000008', %s, ' pbam ')$$, :ed)) AS never_pbam;
RESET ROLE;
SELECT role FROM carm.employee WHERE user_id = :asker;
SELECT role FROM carm.client_assignment WHERE user_id = :ed;
SELECT role FROM carm.group_employee WHERE user_id = :ed;

