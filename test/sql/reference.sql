-- §2 reference data loaded by carm_admin: businesses, program accounts, kinds,
-- users, deactivation, id lookups — and every refusal with its SQLSTATE (§10).
\set VERBOSITY terse
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
RESET client_min_messages;
CREATE EXTENSION carm_deleg;

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ref_admin') THEN
    CREATE ROLE regress_ref_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_ref_app') THEN
    CREATE ROLE regress_ref_app NOLOGIN;
  END IF;
END
$$;
GRANT carm_admin TO regress_ref_admin;
GRANT carm_gateway TO regress_ref_app;

-- Shows the outcome of a statement: ok, or its SQLSTATE and message.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ' ' || SQLERRM;
END
$$;

SET ROLE regress_ref_admin;

-- Businesses --------------------------------------------------------------------
SELECT carm.add_business('123456782', 'Acme Imports Inc.', '{IMPORTER}') AS acme;
SELECT carm.add_business('111111118', 'Northern Brokers', '{CUSTOMS_BROKER,IMPORTER,CUSTOMS_BROKER}') AS northern;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'too short',            $$SELECT carm.add_business('12345', 'X', '{IMPORTER}')$$),
  (2, 'ten digits',           $$SELECT carm.add_business('1234567820', 'X', '{IMPORTER}')$$),
  (3, 'letters',              $$SELECT carm.add_business('12345678a', 'X', '{IMPORTER}')$$),
  (4, 'wrong check digit',    $$SELECT carm.add_business('123456789', 'X', '{IMPORTER}')$$),
  (5, 'spaces',               $$SELECT carm.add_business(' 22222222', 'X', '{IMPORTER}')$$),
  (6, 'null number',          $$SELECT carm.add_business(NULL, 'X', '{IMPORTER}')$$),
  (7, 'huge number',          $$SELECT carm.add_business(repeat('1', 1000000), 'X', '{IMPORTER}')$$),
  (8, 'blank name',           $$SELECT carm.add_business('222222226', '  ', '{IMPORTER}')$$),
  (9, 'null name',            $$SELECT carm.add_business('222222226', NULL, '{IMPORTER}')$$),
  (10, 'huge name',           $$SELECT carm.add_business('222222226', repeat('x', 100000), '{IMPORTER}')$$),
  (11, 'null kinds',          $$SELECT carm.add_business('222222226', 'X', NULL)$$),
  (12, 'no kinds',            $$SELECT carm.add_business('222222226', 'X', '{}')$$),
  (13, 'unknown kind',        $$SELECT carm.add_business('222222226', 'X', '{IMPORTER,BANK}')$$),
  (14, 'null kind',           $$SELECT carm.add_business('222222226', 'X', '{NULL}')$$),
  (15, 'duplicate',           $$SELECT carm.add_business('123456782', 'Acme again', '{IMPORTER}')$$)
) AS t(n, what, stmt) ORDER BY n;

SELECT carm.set_business_kinds('123456782', '{TRADE_CONSULTANT,IMPORTER}');
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'unknown business',     $$SELECT carm.set_business_kinds('222222226', '{IMPORTER}')$$),
  (2, 'malformed business',   $$SELECT carm.set_business_kinds('2222', '{IMPORTER}')$$),
  (3, 'bad kinds',            $$SELECT carm.set_business_kinds('123456782', '{importer}')$$),
  (4, 'null kinds',           $$SELECT carm.set_business_kinds('123456782', NULL)$$)
) AS t(n, what, stmt) ORDER BY n;

-- Program accounts --------------------------------------------------------------
SELECT carm.add_program_account('123456782RM0001', 'Main imports') AS rm1,
       carm.add_program_account('123456782RM0002') AS rm2,
       carm.add_program_account('111111118RM0001') AS northern_rm1;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'three digits',         $$SELECT carm.add_program_account('123456782RM001')$$),
  (2, 'not RM',               $$SELECT carm.add_program_account('123456782RT0001')$$),
  (3, 'lower case rm',        $$SELECT carm.add_program_account('123456782rm0003')$$),
  (4, 'wrong check digit',    $$SELECT carm.add_program_account('123456789RM0001')$$),
  (5, 'null',                 $$SELECT carm.add_program_account(NULL)$$),
  (6, 'unknown business',     $$SELECT carm.add_program_account('222222226RM0001')$$),
  (7, 'duplicate',            $$SELECT carm.add_program_account('123456782RM0001')$$),
  (8, 'huge name',            $$SELECT carm.add_program_account('123456782RM0003', repeat('x', 1000))$$)
) AS t(n, what, stmt) ORDER BY n;

-- even carm_admin reads the tables only through the API; the owner may
SELECT pg_temp.try($$SELECT * FROM carm.business$$) AS admin_reads_table;
RESET ROLE;
SELECT b.bn9, b.legal_name, b.kinds, array_agg(p.bn15 ORDER BY p.bn15) AS programs
FROM carm.business b LEFT JOIN carm.program p ON p.business_id = b.id
GROUP BY b.bn9, b.legal_name, b.kinds ORDER BY b.bn9;
SET ROLE regress_ref_admin;

-- Users ----------------------------------------------------------------------------
SELECT carm.register_user('  alice@example  ', 'Alice Tremblay', 'alice@example.com') AS alice;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'duplicate (trimmed)',  $$SELECT carm.register_user('alice@example', 'Alice again')$$),
  (2, 'blank external id',    $$SELECT carm.register_user('   ', 'X')$$),
  (3, 'null external id',     $$SELECT carm.register_user(NULL, 'X')$$),
  (4, 'huge external id',     $$SELECT carm.register_user(repeat('x', 257), 'X')$$),
  (5, 'blank name',           $$SELECT carm.register_user('zed@example', '')$$),
  (6, 'null name',            $$SELECT carm.register_user('zed@example', NULL)$$),
  (7, 'bad email',            $$SELECT carm.register_user('zed@example', 'Zed', 'not an email')$$),
  (8, 'huge email',           $$SELECT carm.register_user('zed@example', 'Zed', repeat('x', 400) || '@example.com')$$)
) AS t(n, what, stmt) ORDER BY n;
RESET ROLE;
SELECT id, external_id, full_name, email, active FROM carm.app_user ORDER BY id;

-- Deactivation: a deactivated user has no access until reactivated.
INSERT INTO carm.employee (business_id, user_id, role) VALUES (carm.business_id('123456782'), 1, 'BAM');
SET ROLE regress_ref_admin;
SELECT carm.user_has_access(1, '123456782RM0001', 'payments.manage') AS before;
SELECT carm.deactivate_user(1);
SELECT carm.user_has_access(1, '123456782RM0001', 'payments.manage') AS deactivated;
SELECT carm.user_has_access(1, '123456782', 'business_profile.view') AS deactivated_business;
SELECT carm.deactivate_user(1);     -- idempotent, recorded once
SELECT carm.reactivate_user(1);
SELECT carm.user_has_access(1, '123456782RM0001', 'payments.manage') AS reactivated;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'deactivate unknown',   $$SELECT carm.deactivate_user(999)$$),
  (2, 'deactivate null',      $$SELECT carm.deactivate_user(NULL)$$),
  (3, 'reactivate unknown',   $$SELECT carm.reactivate_user(999)$$),
  (4, 'reactivate null',      $$SELECT carm.reactivate_user(NULL)$$)
) AS t(n, what, stmt) ORDER BY n;

-- Id lookups for application tables (callable by anyone) ----------------------
RESET ROLE;
SELECT carm.business_id('123456782') = (SELECT id FROM carm.business WHERE bn9 = '123456782') AS business_id_ok,
       carm.program_id('123456782RM0002') = (SELECT id FROM carm.program WHERE bn15 = '123456782RM0002') AS program_id_ok;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'business malformed',   $$SELECT carm.business_id('12345678')$$),
  (2, 'business check digit', $$SELECT carm.business_id('123456789')$$),
  (3, 'business unknown',     $$SELECT carm.business_id('222222226')$$),
  (4, 'business null',        $$SELECT carm.business_id(NULL)$$),
  (5, 'business huge',        $$SELECT carm.business_id(repeat('9', 100000))$$),
  (6, 'program malformed',    $$SELECT carm.program_id('123456782RM1')$$),
  (7, 'program unknown',      $$SELECT carm.program_id('123456782RM0099')$$),
  (8, 'program null',         $$SELECT carm.program_id(NULL)$$)
) AS t(n, what, stmt) ORDER BY n;

-- Who may call what (42501) -----------------------------------------------------
SET ROLE regress_ref_app;
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'add_business',         $$SELECT carm.add_business('222222226', 'X', '{IMPORTER}')$$),
  (2, 'add_program_account',  $$SELECT carm.add_program_account('123456782RM0009')$$),
  (3, 'set_business_kinds',   $$SELECT carm.set_business_kinds('123456782', '{IMPORTER}')$$),
  (4, 'deactivate_user',      $$SELECT carm.deactivate_user(1)$$),
  (5, 'reactivate_user',      $$SELECT carm.reactivate_user(1)$$),
  (6, 'user_has_access',      $$SELECT carm.user_has_access(1, '123456782', 'business_profile.view')$$),
  (7, 'audit_events (all)',   $$SELECT * FROM carm.audit_events()$$),
  (8, 'read a table',         $$SELECT * FROM carm.business$$),
  (9, 'write a table',        $$INSERT INTO carm.business (bn9, legal_name, kinds) VALUES ('222222226', 'X', '{IMPORTER}')$$),
  (10, 'register_user',       $$SELECT carm.register_user('gateway@example', 'Registered by the gateway')$$),
  (11, 'business_id',         $$SELECT carm.business_id('123456782')$$)
) AS t(n, what, stmt) ORDER BY n;
RESET ROLE;

-- Failed calls left nothing behind; everything that happened is audited (§9, §10).
SELECT (SELECT count(*) FROM carm.business) AS businesses, (SELECT count(*) FROM carm.program) AS programs,
       (SELECT count(*) FROM carm.app_user) AS users;
SELECT event, db_role, b.bn9, target_user_id, details
FROM carm.audit_event a LEFT JOIN carm.business b ON b.id = a.business_id ORDER BY a.id;

-- The audit trail is append-only, even for the owner (§9).
SELECT n, what, pg_temp.try(stmt) FROM (VALUES
  (1, 'update',               $$UPDATE carm.audit_event SET event = 'x'$$),
  (2, 'delete',               $$DELETE FROM carm.audit_event$$),
  (3, 'truncate',             $$TRUNCATE carm.audit_event CASCADE$$)
) AS t(n, what, stmt) ORDER BY n;

DROP EXTENSION carm_deleg CASCADE;
DROP ROLE regress_ref_admin, regress_ref_app;
