-- §10 (rev. 1.2): a NULL where the API needs a value (a business number, an
-- id, a role, a permission, a table...) is 22004, in every function of the
-- carm schema.  The calls are generated from the catalog: every function,
-- NULL in each input position in turn, every other argument a valid value,
-- run by a role that is both carm_admin and carm_gateway with an acting user
-- set, so that the NULL is the only thing wrong with the call.  The
-- positions where NULL has a meaning of its own are listed below with the
-- reason; a new function or argument is checked without editing this file.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
DROP TABLE IF EXISTS public.regress_null_t;
RESET client_min_messages;
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_null_api') THEN
    CREATE ROLE regress_null_api NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_null_login') THEN
    CREATE ROLE regress_null_login LOGIN;
  END IF;
END
$$;
SET client_min_messages = warning;   -- "already a member" when run twice
GRANT carm_admin, carm_gateway TO regress_null_api;
RESET client_min_messages;

-- The world: Broker One (its BAM pbam acts) has an active relationship with
-- Client A, a client group, an employee ed; Client A has a pending access
-- request.  An application table to protect and map.
SELECT carm.add_business('100000009', 'Broker One', '{CUSTOMS_BROKER}') AS broker \gset
SELECT carm.add_business('200000008', 'Client A', '{IMPORTER}') AS ca \gset
SELECT carm.add_program_account('200000008RM0001') AS pa \gset
SELECT carm.register_user('pbam', 'Pbam') AS pbam \gset
SELECT carm.register_user('ed', 'Ed') AS ed \gset
SELECT carm.register_user('asker', 'Asker') AS asker \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES (:broker, :pbam, 'BAM'), (:broker, :ed, 'EDITOR');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment)
VALUES (:broker, :ca, 'active', 'BUSINESS', 'customs') RETURNING id AS rel \gset
INSERT INTO carm.access_request (business_id, user_id, comment) VALUES (:broker, :asker, 'payables')
RETURNING id AS req \gset
CREATE TABLE public.regress_null_t (program_id bigint, submitter_id bigint, bn15 text, ident text);
ALTER TABLE public.regress_null_t OWNER TO regress_null_api;   -- protect() wants the owner
BEGIN;
SET LOCAL ROLE regress_null_api;
SELECT carm.set_actor('pbam');
SELECT carm.create_client_group('100000009', 'West', '{200000008}') AS grp \gset
COMMIT;

-- A valid value for an argument, by its name and type (and function, where it matters).
CREATE TABLE pg_temp.sample (name text, type regtype, value text, fn text DEFAULT '', PRIMARY KEY (name, type, fn));
INSERT INTO pg_temp.sample VALUES ('role', 'text', 'PEDITOR', 'assign_client_access'),
  ('role', 'text', 'PVIEWER', 'assign_group_employees');
INSERT INTO pg_temp.sample VALUES
  ('bn9', 'text', '100000009'), ('provider_bn9', 'text', '100000009'), ('client_bn9', 'text', '200000008'),
  ('target', 'text', '200000008RM0001'), ('bn15', 'text', '200000008RM0002'),
  ('permission', 'text', 'rulings.view'), ('role', 'text', 'VIEWER'), ('access_type', 'text', 'BUSINESS'),
  ('function', 'text', 'rulings'), ('external_id', 'text', 'pbam'),
  ('kinds', 'text[]', '{IMPORTER}'), ('clients', 'text[]', '{200000008}'),
  ('programs', 'text[]', '{200000008RM0001}'), ('bn9s', 'text[]', '{300000007}'),
  ('bn15s', 'text[]', '{200000008RM0003}'), ('events', 'text[]', '{relationship_approved}'),
  ('user_id', 'bigint', :'ed'), ('request_id', 'bigint', :'req'), ('relationship_id', 'bigint', :'rel'),
  ('group_id', 'bigint', :'grp'), ('user_ids', 'bigint[]', '{' || :'ed' || '}'),
  ('ids', 'bigint[]', '{' || :'broker' || '}'),
  ('tbl', 'regclass', 'public.regress_null_t'), ('program_column', 'name', 'program_id'),
  ('submitter_column', 'name', 'submitter_id'), ('bn15_column', 'name', 'bn15'),
  ('identity_column', 'name', 'ident'), ('login', 'regrole', 'regress_null_login'),
  ('on_conflict', 'text', 'skip');
-- Any other argument: text 'x', text[] '{x}', boolean false, a time now.
CREATE FUNCTION pg_temp.sample(p_fn text, p_name text, p_type regtype) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT value FROM pg_temp.sample WHERE name = p_name AND type = p_type
                   ORDER BY fn = p_fn DESC LIMIT 1),
                  CASE p_type WHEN 'text'::regtype THEN 'x' WHEN 'text[]'::regtype THEN '{x}'
                              WHEN 'boolean'::regtype THEN 'false'
                              WHEN 'timestamptz'::regtype THEN (now() + interval '1 day')::text END)
$$;

-- The positions where NULL is a value, not a missing one.
CREATE TABLE pg_temp.null_means (fn text, arg text, reason text, PRIMARY KEY (fn, arg));
INSERT INTO pg_temp.null_means VALUES
  ('add_program_account', 'name', 'no name'),
  ('add_program_accounts', 'names', 'no names'),
  ('approve_employee_access', 'programs', 'every program of the business (E6)'),
  ('approve_relationship', 'programs', 'every program of the client (R5)'),
  ('approve_relationship', 'expires_at', 'no expiry (R9)'),
  ('approve_relationship', 'see_client_submissions', 'the default, false (V2)'),
  ('approve_relationship', 'see_other_submissions', 'the default, false (V2)'),
  ('update_relationship', 'programs', 'every program of the client (R5)'),
  ('update_relationship', 'expires_at', 'no expiry (R9)'),
  ('update_relationship', 'see_client_submissions', 'unchanged'),
  ('update_relationship', 'see_other_submissions', 'unchanged'),
  ('update_relationship', 'access_type', 'unchanged'),
  ('assign_client_access', 'programs', 'every program of the relationship (R7)'),
  ('set_employee_access', 'programs', 'every program of the business (E6)'),
  ('audit_events', 'bn9', 'every business the actor may see (§9)'),
  ('audit_events', 'since', 'no lower bound (§9)'),
  ('audit_events', 'until', 'no upper bound (§9)'),
  ('audit_events', 'events', 'every event type (§9)'),
  ('map_ids', 'identity_column', 'no submitter to map'),
  ('map_ids', 'submitter_column', 'no submitter to map'),
  ('register_user', 'email', 'no email (§2)'),
  ('register_users', 'emails', 'no emails (§2)'),
  ('set_actor', 'is_local', 'the default, true (§2)'),
  ('set_actor', 'on_behalf_of', 'no business fixed (§2)');
-- (protect()'s submitter_column may be NULL only for a business function whose
-- rules need no submitter; rulings need one, so it is checked like the rest.)

-- Every call: the function, the argument made NULL, the statement.
CREATE TABLE pg_temp.calls AS
SELECT p.oid::regprocedure::text AS fn, p.proname::text AS name, a.n, p.proargnames[a.n] AS arg,
       format('SELECT %s(%s)', p.oid::regproc::text,
              (SELECT string_agg(CASE WHEN b.n = a.n THEN 'NULL'
                                      ELSE quote_literal(pg_temp.sample(p.proname, p.proargnames[b.n], b.t)) END
                                 || '::' || format_type(b.t, NULL), ', ' ORDER BY b.n)
               FROM unnest(p.proargtypes::regtype[]) WITH ORDINALITY AS b(t, n))) AS stmt
FROM pg_proc p
CROSS JOIN LATERAL generate_series(1, p.pronargs) AS a(n)
WHERE p.pronamespace = 'carm'::regnamespace;

-- The outcome of a call, as pbam acting, rolled back: ok, or SQLSTATE and message.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    PERFORM carm.set_actor('pbam');
    EXECUTE stmt;
    RAISE EXCEPTION USING ERRCODE = 'ZZ000', MESSAGE = 'ok';
  EXCEPTION WHEN OTHERS THEN
    RETURN CASE WHEN SQLSTATE = 'ZZ000' THEN 'ok' ELSE SQLSTATE || ' ' || SQLERRM END;
  END;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO PUBLIC;
GRANT SELECT ON pg_temp.calls TO PUBLIC;

BEGIN;
SET LOCAL ROLE regress_null_api;
CREATE TEMP TABLE outcome ON COMMIT DROP AS
SELECT c.*, pg_temp.try(c.stmt) AS outcome FROM pg_temp.calls c;
RESET ROLE;
-- every call checked (a count, so that a vanished catalog fails here)
SELECT count(*) > 100 AS many_calls, count(DISTINCT fn) > 50 AS many_functions FROM outcome;
-- a NULL where a value is needed: 22004 (no row is the expected answer)
SELECT fn, arg, outcome FROM outcome o
WHERE outcome NOT LIKE '22004 %'
  AND NOT EXISTS (SELECT FROM pg_temp.null_means m WHERE m.fn = o.name AND m.arg = o.arg)
ORDER BY fn, n;
-- every listed exception is a real argument of the API
SELECT m.fn, m.arg FROM pg_temp.null_means m
WHERE NOT EXISTS (SELECT FROM outcome o WHERE o.name = m.fn AND o.arg = m.arg)
ORDER BY 1, 2;
-- where NULL has a meaning, it is not refused as a NULL
SELECT fn, arg, outcome FROM outcome o
WHERE outcome LIKE '22004 %'
  AND EXISTS (SELECT FROM pg_temp.null_means m WHERE m.fn = o.name AND m.arg = o.arg)
ORDER BY fn, n;
COMMIT;

DROP TABLE public.regress_null_t;
