-- §10 (rev. 1.2): the CONTEXT of an error of the public API names no
-- internal function (schema carm_internal), whichever helper raised it;
-- the SQLSTATE and message stay.  Clients see what psql prints with
-- VERBOSITY verbose and SHOW_CONTEXT always, so each call of
-- test/calls/error_context.psql runs in a new backend of a psql of its own
-- (the library loaded by that call, as in production without preloading),
-- and its report is read here: every error line, then how many context
-- lines there were and how many name carm_internal (0).
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS carm_deleg CASCADE;
CREATE EXTENSION carm_deleg;
RESET client_min_messages;
SELECT carm.add_business('100000009', 'Broker One', '{CUSTOMS_BROKER}') AS broker \gset
SELECT carm.add_business('200000008', 'Client A', '{IMPORTER}') AS ca \gset
SELECT carm.register_user('pbam', 'Pbam') AS pbam \gset
SELECT carm.register_user('ed', 'Ed') AS ed \gset
SELECT carm.register_user('asker', 'Asker') AS asker \gset
INSERT INTO carm.employee (business_id, user_id, role) VALUES (:broker, :pbam, 'BAM'), (:broker, :ed, 'EDITOR');
INSERT INTO carm.relationship (provider_id, client_id, status, access_type, comment)
VALUES (:broker, :ca, 'active', 'BUSINESS', 'customs');
INSERT INTO carm.access_request (business_id, user_id, comment) VALUES (:broker, :asker, 'payables');

\setenv PGDATABASE :DBNAME
\setenv PGOPTIONS '-c client_min_messages=error'
\! psql -X -q -v VERBOSITY=verbose -v SHOW_CONTEXT=always -f test/calls/error_context.psql 2>&1 | sed 's/^psql:[^ ]*: //' | awk '/^ERROR:/ { print; next } /^CONTEXT:/ { c++ } /carm_internal/ { n++ } END { printf "context reports: %d, naming carm_internal: %d\n", c, n }'
