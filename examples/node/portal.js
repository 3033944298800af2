'use strict';
// A portal's requests against carm_deleg, with node-postgres (the npm package pg).
//
// Each web request is one transaction on ONE pooled client that starts by
// naming the signed-in user:
//   BEGIN; SELECT carm.set_actor($1::text); ...; COMMIT;
// The actor is transaction-local, so the client can go back to the pool, or
// sit behind pgbouncer in transaction-pooling mode, without leaking it to the
// next request.
//
// Usage: CARM_DSN=postgresql://portal@host:port/dbname node portal.js
// (the database prepared by examples/setup.sql).  Prints one line per step;
// the test suite compares them with examples/expected_output.txt.
const { Pool } = require('pg');

// SQLSTATE -> HTTP status, for a JSON API in front of the database
// (the table in the documentation explains each line).
const HTTP_STATUS = {
  '28000': 401, // invalid_authorization_specification: unknown or inactive acting user
  '42501': 403, // insufficient_privilege: the rules refuse (E*, R*, V5, G*)
  'P0002': 404, // no_data_found: an unknown business, program, request, group
  '22023': 422, // invalid_parameter_value: malformed BN9/BN15, bad role, bad date
  '22004': 422, // null_value_not_allowed: a required argument is NULL
  '23505': 409, // unique_violation: it exists already (a second request, ...)
  '55000': 409, // object_not_in_prerequisite_state: not pending, not active, ...
  '40001': 503, // serialization_failure: retry the request
  '40P01': 503, // deadlock_detected: retry the request
  '57014': 504, // query_canceled (statement_timeout)
};

class ApiError extends Error {
  constructor(status, sqlstate, message) {
    super(message);
    this.status = status;
    this.sqlstate = sqlstate;
  }
}

// node-postgres is autocommit: every pool.query() is its own transaction,
// possibly on a different connection.  BEGIN, set_actor and the request's
// statements must run on the same client: pool.connect(), then release().
const pool = new Pool({ connectionString: process.env.CARM_DSN, max: 2 });

// One request of a signed-in user: BEGIN; set_actor(identity); fn(client); COMMIT.
async function request(identity, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    try {
      // $1::text — the sign-in identity (external id).  node-postgres sends
      // every parameter untyped: set_actor has a bigint and a text overload,
      // and PostgreSQL picks text for an untyped value, even for '42'.
      await client.query('SELECT carm.set_actor($1::text)', [identity]);
    } catch (e) {
      // An unknown or inactive sign-in identity is an authentication problem
      // (401), whatever its SQLSTATE (P0002 before 1.2).
      throw new ApiError(401, e.code, e.message);
    }
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    if (e instanceof ApiError) throw e;
    if (e.code) throw new ApiError(HTTP_STATUS[e.code] || 500, e.code, e.message);
    throw e;
  } finally {
    client.release();
  }
}

async function programs(who) {
  const rows = await request(who, async (c) =>
    (await c.query("SELECT bn15 FROM carm.accessible_programs('rulings.view') ORDER BY bn15")).rows);
  console.log(`${who}: programs ${rows.map((r) => r.bn15).join(' ')}`);
}

// bigint columns come back as strings (a JavaScript number cannot hold every
// int8); carm's ids stay strings here and go back as $n::bigint parameters.
function list(ids) {
  return `[${ids.join(', ')}]`;
}

async function rulings(who) {
  const rows = await request(who, async (c) => (await c.query('SELECT id FROM app.rulings ORDER BY id')).rows);
  console.log(`${who}: rulings ${list(rows.map((r) => r.id))}`);
}

async function insertRuling(who, bn15, title) {
  try {
    const id = await request(who, async (c) =>
      // program_id from the BN15; the submitter is filled in by carm (V5)
      (await c.query('INSERT INTO app.rulings (program_id, title) VALUES (carm.program_id($1), $2) RETURNING id',
        [bn15, title])).rows[0].id);
    console.log(`${who}: inserted ruling ${id} on ${bn15}`);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    console.log(`${who}: insert on ${bn15} -> HTTP ${e.status} (${e.sqlstate})`);
  }
}

async function main() {
  // A request that forgot set_actor sees nothing (no error, no rows).
  const none = await pool.query('SELECT id FROM app.rulings ORDER BY id');
  console.log(`no actor: rulings ${list(none.rows.map((r) => r.id))}`);

  await programs('alice');
  await rulings('alice');
  await programs('dave');
  await rulings('dave');

  // The broker asks the importer for a relationship (R1).
  await request('dave', (c) =>
    c.query('SELECT carm.request_relationship($1, $2, $3)', ['200000008', '100000009', 'Customs clearance']));
  console.log('dave: requested relationship with 100000009');

  // The importer's BAM sees the request and grants it on one program (R5).
  const relId = await request('alice', async (c) => {
    const pending = (await c.query(
      "SELECT id, provider, comment FROM carm.relationships($1) WHERE status = 'pending'", ['100000009'])).rows;
    console.log(`alice: pending ${pending[0].provider} ${pending[0].comment}`);
    // $1::bigint: the id arrives as the string '1' and is sent untyped.
    // The cast makes the call independent of how it is passed (string, number
    // or BigInt) and of the overloads a later release may add.
    await c.query("SELECT carm.approve_relationship($1::bigint, 'PROGRAM', $2::text[], " +
      'see_client_submissions => true)', [pending[0].id, ['100000009RM0001']]);
    return pending[0].id;
  });
  console.log('alice: approved PROGRAM 100000009RM0001 see_client_submissions');

  // The broker sees the change at once.
  await programs('dave');
  await rulings('dave');

  // The broker's BAM gives an employee read access to the client (R7).
  await request('dave', async (c) => {
    const erin = (await c.query('SELECT carm.user_id($1) AS id', ['erin'])).rows[0].id;
    await c.query('SELECT carm.assign_client_access($1, $2, $3::bigint, $4)',
      ['200000008', '100000009', erin, 'PVIEWER']);
  });
  console.log('dave: assigned erin PVIEWER on 100000009');
  await rulings('erin');

  // Writes (V5): the broker's BAM writes on the delegated program; a viewer
  // may not write, nor may anyone on an undelegated program.
  await insertRuling('dave', '100000009RM0001', "Valuation of maple syrup, broker's view");
  await insertRuling('erin', '100000009RM0001', "Erin's ruling");
  await insertRuling('dave', '100000009RM0002', 'Not delegated');
  await rulings('alice');

  // An unknown sign-in identity.
  try {
    await request('mallory', async () => {});
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    console.log(`mallory: sign-in -> HTTP ${e.status}`);
  }

  // The importer ends the relationship (R9): the broker's employees lose
  // access at once; its BAMs keep reading what the broker submitted (V4).
  await request('alice', (c) => c.query('SELECT carm.end_relationship($1::bigint)', [relId]));
  console.log('alice: ended relationship with 200000008');
  await programs('dave');
  await rulings('dave');
  await rulings('erin');
  await rulings('alice');
}

main()
  .then(() => pool.end())
  .catch(async (e) => {
    console.error(e);
    await pool.end();
    process.exit(1);
  });
