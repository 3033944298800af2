/*
 * owner.c — run internal catalog reads as the extension's owner.
 *
 * The extension's tables are closed to application roles (§2), yet the
 * row-level-security check and set_actor() run as the caller and must read
 * them.  Like the RI triggers, we switch the current user to the owner of
 * schema carm for the duration of an internal SPI query, with
 * SECURITY_LOCAL_USERID_CHANGE so that nothing the query does can escape.
 *
 * The caller's search_path must not follow us: the internal queries (and the
 * inlined body of carm_internal.grants()) contain unqualified operators such as "=",
 * and a caller could put a schema of its own, holding an operator with the
 * same signature, ahead of pg_catalog.  Run as the owner, that operator's
 * function would execute with the owner's (superuser's) privileges.  So the
 * switch also pins search_path to pg_catalog, pg_temp for its duration, in a
 * GUC nest level of its own (GUC_ACTION_SAVE, which parallel workers allow).
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "access/xact.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/* The oid of schema carm (InvalidOid when missing and missing_ok). */
Oid
carm_schema_oid(bool missing_ok)
{
	return get_namespace_oid("carm", missing_ok);
}

static Oid
carm_schema_owner(void)
{
	Oid			nsp = carm_schema_oid(false);
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for schema %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	return owner;
}

void
carm_become_owner(CarmOwnerSave *save)
{
	Oid			owner = carm_schema_owner();

	GetUserIdAndSecContext(&save->saved_userid, &save->saved_sec_context);
	save->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SetUserIdAndSecContext(owner,
						   save->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

void
carm_restore_user(CarmOwnerSave *save)
{
	SetUserIdAndSecContext(save->saved_userid, save->saved_sec_context);
	AtEOXact_GUC(false, save->guc_nestlevel);
}

/*
 * The snapshot internal reads of delegation state use: the latest one, like
 * the catalog caches.  The relcache invalidation that makes a cache stale is
 * processed when this backend next takes a lock, which may be long after the
 * transaction's (REPEATABLE READ) or the statement's snapshot was taken; a
 * rebuild read with that older snapshot would put the revoked grant back
 * and keep it, in later statements and transactions, until some other change
 * came along.  A snapshot taken now includes every change whose invalidation
 * has been processed.  Parallel workers cannot take snapshots: they read with
 * the leader's, and their caches live only as long as the query.
 */
Snapshot
carm_read_snapshot(void)
{
	if (IsInParallelMode())
		return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	return GetLatestSnapshot();
}
