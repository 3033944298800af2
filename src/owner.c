/*
 * owner.c — run internal reads of the extension's tables as its owner.
 *
 * carm_as_owner() is the only way the C code reads or locks the extension's
 * tables (the grant store, set_actor, login bindings, target lookups, the
 * employee triggers, the DROP guard); carm_owner_plan() keeps their plans.
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
 * Under Citus the same nest level allows nested distributed execution: the
 * reads are of reference tables, whose placement is local on every node.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "access/xact.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "access/genam.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

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

typedef struct CarmOwnerSave
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_nestlevel;	/* search_path pinned while switched */
} CarmOwnerSave;

static void
become_owner(CarmOwnerSave *save)
{
	Oid			owner = carm_schema_owner();

	GetUserIdAndSecContext(&save->saved_userid, &save->saved_sec_context);
	save->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/* under Citus, these reads may run inside a query on a shard (citus.c) */
	if (carm_citus_loaded())
		(void) set_config_option("citus.allow_nested_distributed_execution", "on",
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	SetUserIdAndSecContext(owner,
						   save->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

static void
restore_user(CarmOwnerSave *save)
{
	SetUserIdAndSecContext(save->saved_userid, save->saved_sec_context);
	AtEOXact_GUC(false, save->guc_nestlevel);
}

/*
 * carm_as_owner(fn, arg) — the one way the C code reads or locks the
 * extension's tables: fn runs as the owner of schema carm, with
 * SECURITY_LOCAL_USERID_CHANGE (nothing it does can escape), search_path
 * pinned to pg_catalog, pg_temp, and SPI connected; the user, the setting
 * and SPI are restored when fn returns and when it raises.  Which snapshot
 * fn's queries read is fn's choice, from carm_read_snapshot() (cached
 * state: the latest) or the statement's (triggers: their own transaction's
 * writes); see carm_owner_plan() for plans.
 */
void
carm_as_owner(void (*fn) (void *arg), void *arg)
{
	CarmOwnerSave save;

	become_owner(&save);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		fn(arg);
		SPI_finish();
	}
	PG_FINALLY();
	{
		restore_user(&save);
	}
	PG_END_TRY();
}

/*
 * A kept plan for sql, prepared on first use into *slot: internal queries
 * run on every request and must not be parsed and planned each time.  With
 * generic, the plan never replans for its parameters (every parameter is an
 * equality on an indexed key).  Call inside carm_as_owner().
 */
SPIPlanPtr
carm_owner_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes, bool generic)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes,
											  generic ? CURSOR_OPT_GENERIC_PLAN : 0);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
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

/*
 * The SQL versions this library serves: its own, and the previous release's
 * so that, with the library preloaded, every check keeps deciding between
 * the restart on a new release and ALTER EXTENSION carm_deleg UPDATE (as
 * pgvector does).  1.1's install script calls only C functions this library
 * still has, with the same arguments and results (carm_internal.stats()
 * builds its tuple to the columns its caller declares, stats.c), and its
 * tables are those of 1.2; test/cluster/upgrade_window.sh records the
 * decisions of a 1.1 installation under this library and compares them with
 * those after the update.  1.0 is not served: its functions had other names
 * and its tables another shape.
 */
static const char *const served_versions[] = {CARM_VERSION, "1.1"};

/*
 * The installed extension must be one this library serves: otherwise the old
 * SQL objects cannot serve the new library's queries, and an error naming
 * the fix beats one about a missing function.  Checked once per
 * installation (anchor: the oid of carm.protected_table) when a store of
 * grants is reset, which every decision path goes through.
 */
void
carm_check_version(Oid anchor)
{
	static Oid	checked_anchor = InvalidOid;
	Oid			ext;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	char	   *version = NULL;

	if (!OidIsValid(anchor) || anchor == checked_anchor)
		return;					/* checked for this installation already */
	ext = get_extension_oid("carm_deleg", true);
	if (!OidIsValid(ext))
		return;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (version != NULL)
	{
		bool		served = false;

		for (int i = 0; i < (int) lengthof(served_versions); i++)
			served |= (strcmp(version, served_versions[i]) == 0);
		if (!served)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("carm_deleg %s is installed but the library is version %s", version, CARM_VERSION),
					 errdetail("This library serves installed versions %s and %s.",
							   served_versions[1], served_versions[0]),
					 errhint("Run ALTER EXTENSION carm_deleg UPDATE in this database.")));
	}
	checked_anchor = anchor;
}
