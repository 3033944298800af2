#!/usr/bin/env python3
"""A portal's requests against carm_deleg, with psycopg 3.

Each web request is one transaction that starts by naming the signed-in user:
    BEGIN; SELECT carm.set_actor(%s::text); ...; COMMIT;
The actor is transaction-local, so the connection can go back to a pool, or
sit behind pgbouncer in transaction-pooling mode, without leaking it to the
next request.

Usage: CARM_DSN='host=... port=... dbname=... user=portal' python3 portal.py
(the database prepared by examples/setup.sql).  Prints one line per step;
the test suite compares them with examples/expected_output.txt.
"""
import os
import sys
from contextlib import contextmanager

import psycopg

# SQLSTATE -> HTTP status, for a JSON API in front of the database
# (the table in the documentation explains each line).
HTTP_STATUS = {
    "28000": 401,  # invalid_authorization_specification: unknown or inactive acting user
    "42501": 403,  # insufficient_privilege: the rules refuse (E*, R*, V5, G*)
    "P0002": 404,  # no_data_found: an unknown business, program, request, group
    "22023": 422,  # invalid_parameter_value: malformed BN9/BN15, bad role, bad date
    "22004": 422,  # null_value_not_allowed: a required argument is NULL
    "23505": 409,  # unique_violation: it exists already (a second request, ...)
    "55000": 409,  # object_not_in_prerequisite_state: not pending, not active, ...
    "40001": 503,  # serialization_failure: retry the request
    "40P01": 503,  # deadlock_detected: retry the request
    "57014": 504,  # query_canceled (statement_timeout)
}


class ApiError(Exception):
    def __init__(self, status, sqlstate, message):
        super().__init__(message)
        self.status, self.sqlstate = status, sqlstate


def connect():
    # prepare_threshold=None: psycopg 3 prepares a query server-side after it
    # has run 5 times on a connection (named statements _pg3_0, _pg3_1, ...).
    # Behind pgbouncer in transaction mode the next transaction may run on a
    # server connection that has, or lacks, that statement: 42P05 "prepared
    # statement already exists" or 26000 "does not exist".  (pgbouncer 1.21+
    # with max_prepared_statements > 0 tracks them instead.)
    # autocommit=True: psycopg 3 is NOT autocommit by default, and its first
    # statement opens a transaction that stays open ("idle in transaction",
    # holding the pooler's server connection) until commit.  Every request
    # below opens its own transaction explicitly with conn.transaction().
    return psycopg.connect(os.environ["CARM_DSN"], autocommit=True, prepare_threshold=None)


@contextmanager
def request(conn, identity):
    """One request of a signed-in user: BEGIN; set_actor(identity); ...; COMMIT."""
    with conn.transaction():
        try:
            # ::text — the sign-in identity (external id), not the user id:
            # set_actor has a bigint and a text overload.
            conn.execute("SELECT carm.set_actor(%s::text)", [identity])
        except psycopg.Error as e:
            # An unknown or inactive sign-in identity is an authentication
            # problem (401), whatever its SQLSTATE (P0002 before 1.2).
            raise ApiError(401, e.sqlstate, str(e)) from e
        yield conn


def api_call(fn):
    """Run fn(); turn a database error into the HTTP status an API would answer."""
    try:
        return fn()
    except ApiError:
        raise
    except psycopg.Error as e:
        raise ApiError(HTTP_STATUS.get(e.sqlstate, 500), e.sqlstate, str(e)) from e


def programs(conn, who):
    with request(conn, who):
        rows = conn.execute("SELECT bn15 FROM carm.accessible_programs('rulings.view') ORDER BY bn15").fetchall()
    print(f"{who}: programs {' '.join(r[0] for r in rows)}")


def rulings(conn, who):
    with request(conn, who):
        ids = [r[0] for r in conn.execute("SELECT id FROM app.rulings ORDER BY id")]
    print(f"{who}: rulings {ids}")


def insert_ruling(conn, who, bn15, title):
    try:
        def go():
            with request(conn, who):
                # program_id from the BN15; the submitter is filled in by carm (V5)
                return conn.execute(
                    "INSERT INTO app.rulings (program_id, title) VALUES (carm.program_id(%s), %s) RETURNING id",
                    [bn15, title]).fetchone()[0]
        new_id = api_call(go)
        print(f"{who}: inserted ruling {new_id} on {bn15}")
    except ApiError as e:
        print(f"{who}: insert on {bn15} -> HTTP {e.status} ({e.sqlstate})")


def main():
    conn = connect()

    # A request that forgot set_actor sees nothing (no error, no rows).
    with conn.transaction():
        ids = [r[0] for r in conn.execute("SELECT id FROM app.rulings ORDER BY id")]
    print(f"no actor: rulings {ids}")

    programs(conn, "alice")
    rulings(conn, "alice")
    programs(conn, "dave")
    rulings(conn, "dave")

    # The broker asks the importer for a relationship (R1).
    with request(conn, "dave"):
        conn.execute("SELECT carm.request_relationship(%s, %s, %s)",
                     ["200000008", "100000009", "Customs clearance"])
    print("dave: requested relationship with 100000009")

    # The importer's BAM sees the request and grants it on one program (R5).
    with request(conn, "alice"):
        pending = conn.execute(
            "SELECT id, provider, comment FROM carm.relationships(%s) WHERE status = 'pending'",
            ["100000009"]).fetchall()
        rel_id, provider, comment = pending[0]
        print(f"alice: pending {provider} {comment}")
        # %s::bigint: the id is a Python int, which psycopg 3 sends as the
        # smallest integer type that holds it (int2 here); the cast says
        # which function is meant, whatever the value.
        conn.execute("SELECT carm.approve_relationship(%s::bigint, 'PROGRAM', %s::text[], "
                     "see_client_submissions => true)", [rel_id, ["100000009RM0001"]])
    print("alice: approved PROGRAM 100000009RM0001 see_client_submissions")

    # The broker sees the change at once.
    programs(conn, "dave")
    rulings(conn, "dave")

    # The broker's BAM gives an employee read access to the client (R7).
    with request(conn, "dave"):
        erin = conn.execute("SELECT carm.user_id(%s)", ["erin"]).fetchone()[0]
        conn.execute("SELECT carm.assign_client_access(%s, %s, %s::bigint, %s)",
                     ["200000008", "100000009", erin, "PVIEWER"])
    print("dave: assigned erin PVIEWER on 100000009")
    rulings(conn, "erin")

    # Writes (V5): the broker's BAM writes on the delegated program; a viewer
    # may not write, nor may anyone on an undelegated program.
    insert_ruling(conn, "dave", "100000009RM0001", "Valuation of maple syrup, broker's view")
    insert_ruling(conn, "erin", "100000009RM0001", "Erin's ruling")
    insert_ruling(conn, "dave", "100000009RM0002", "Not delegated")
    rulings(conn, "alice")

    # An unknown sign-in identity.
    try:
        with request(conn, "mallory"):
            pass
    except ApiError as e:
        print(f"mallory: sign-in -> HTTP {e.status}")

    # The importer ends the relationship (R9): the broker's employees lose
    # access at once; its BAMs keep reading what the broker submitted (V4).
    with request(conn, "alice"):
        conn.execute("SELECT carm.end_relationship(%s::bigint)", [rel_id])
    print("alice: ended relationship with 200000008")
    programs(conn, "dave")
    rulings(conn, "dave")
    rulings(conn, "erin")
    rulings(conn, "alice")
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
