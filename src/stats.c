/*
 * stats.c — counters for monitoring (SPEC §12), in the spirit of
 * pg_stat_statements: per database, cumulative since the last reset, shown
 * by the view carm.stats and reset by carm.stats_reset().
 *
 * The hot path only bumps backend-local counters (a row check increments a
 * local variable); they are added into shared memory when a transaction
 * ends (cache.c's transaction callback calls carm_stats_flush).  Shared
 * memory exists only when the library is in shared_preload_libraries
 * (PostgreSQL 15's shmem_request_hook idiom); without it the view raises
 * 55000 with a hint, as pg_stat_statements does, and nothing else changes.
 *
 * The maintenance worker records its last run, duration and result.
 */
#include "carm_deleg.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"

PG_FUNCTION_INFO_V1(carm_stats_sql);
PG_FUNCTION_INFO_V1(carm_stats_reset_sql);

#define MAX_DATABASES 64
#define RESULT_LEN 128

typedef struct StatsSlot
{
	Oid			dbid;			/* InvalidOid: free */
	pg_atomic_uint64 counters[CARM_NUM_STATS];
	/* the maintenance worker's last run, under the mutex */
	TimestampTz maintenance_at;
	double		maintenance_ms;
	char		maintenance_result[RESULT_LEN];
} StatsSlot;

typedef struct StatsShared
{
	slock_t		mutex;			/* protects dbid and the maintenance fields */
	TimestampTz reset_at;
	StatsSlot	slots[MAX_DATABASES];
} StatsShared;

uint64		carm_stats_local[CARM_NUM_STATS];

static StatsShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;

static void
stats_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(StatsShared)));
}

static void
stats_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup)
		prev_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("carm_deleg stats", sizeof(StatsShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		shared->reset_at = GetCurrentTimestamp();
		for (int i = 0; i < MAX_DATABASES; i++)
		{
			shared->slots[i].dbid = InvalidOid;
			for (int c = 0; c < CARM_NUM_STATS; c++)
				pg_atomic_init_u64(&shared->slots[i].counters[c], 0);
			shared->slots[i].maintenance_at = 0;
			shared->slots[i].maintenance_ms = 0;
			shared->slots[i].maintenance_result[0] = '\0';
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init, while shared_preload_libraries is processed. */
void
carm_stats_init(void)
{
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/* The slot of this database, taken if new; NULL when all are in use. */
static StatsSlot *
my_slot(void)
{
	StatsSlot  *slot = NULL;

	if (shared == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < MAX_DATABASES; i++)
	{
		if (shared->slots[i].dbid == MyDatabaseId)
		{
			slot = &shared->slots[i];
			break;
		}
		if (slot == NULL && shared->slots[i].dbid == InvalidOid)
			slot = &shared->slots[i];
	}
	if (slot != NULL && slot->dbid == InvalidOid)
		slot->dbid = MyDatabaseId;
	SpinLockRelease(&shared->mutex);
	return slot;
}

/* Add this backend's counts into shared memory (at the end of a transaction). */
void
carm_stats_flush(void)
{
	StatsSlot  *slot;
	bool		any = false;

	for (int c = 0; c < CARM_NUM_STATS; c++)
		any |= carm_stats_local[c] != 0;
	if (!any)
		return;
	slot = my_slot();
	if (slot != NULL)
		for (int c = 0; c < CARM_NUM_STATS; c++)
			if (carm_stats_local[c] != 0)
				pg_atomic_fetch_add_u64(&slot->counters[c], carm_stats_local[c]);
	memset(carm_stats_local, 0, sizeof(carm_stats_local));
}

/* The maintenance worker's last run (worker.c). */
void
carm_stats_maintenance(TimestampTz started, double ms, const char *result)
{
	StatsSlot  *slot = my_slot();

	if (slot == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	slot->maintenance_at = started;
	slot->maintenance_ms = ms;
	strlcpy(slot->maintenance_result, result, RESULT_LEN);
	SpinLockRelease(&shared->mutex);
	pg_atomic_fetch_add_u64(&slot->counters[CARM_STAT_MAINTENANCE_RUNS], 1);
}

static void
require_shared(void)
{
	if (shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("carm_deleg statistics need the library in shared_preload_libraries"),
				 errhint("Add carm_deleg to shared_preload_libraries and restart the server.")));
}

/*
 * The columns carm_internal.stats() can return, in the order the counters
 * are computed (database, the CARM_STAT_* counters, the maintenance fields,
 * the reset time).  The tuple is built to the result type the calling SQL
 * function declares, column by column by name: a library serves the SQL of
 * the previous release until ALTER EXTENSION UPDATE (1.1 declares no
 * shared_* columns), as it serves the current one.
 */
static const struct
{
	const char *name;
	Oid			type;
}			stats_columns[] =
{
	{"database", TEXTOID},
	{"point_checks", INT8OID},
	{"row_checks", INT8OID},
	{"store_hits", INT8OID},
	{"full_loads", INT8OID},
	{"business_loads", INT8OID},
	{"load_ms", FLOAT8OID},
	{"invalidations", INT8OID},
	{"decision_tables", INT8OID},
	{"maintenance_runs", INT8OID},
	{"shared_hits", INT8OID},
	{"shared_misses", INT8OID},
	{"shared_published", INT8OID},
	{"shared_evictions", INT8OID},
	{"maintenance_last_run", TIMESTAMPTZOID},
	{"maintenance_last_ms", FLOAT8OID},
	{"maintenance_last_result", TEXTOID},
	{"stats_reset", TIMESTAMPTZOID},
};
#define STATS_NUM_COLUMNS ((int) lengthof(stats_columns))
StaticAssertDecl(lengthof(stats_columns) == CARM_NUM_STATS + 5,
				 "one column per counter, plus the database and four more");

/*
 * carm_internal.stats() — one row per database that counted something
 * (behind the view carm.stats).  This backend's own counts since its last
 * transaction end are added in first.
 */
Datum
carm_stats_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz reset_at;
	TupleDesc	desc;
	int			natts;
	int		   *source;
	Datum	   *values;
	bool	   *nulls;

	require_shared();
	carm_stats_flush();
	InitMaterializedSRF(fcinfo, 0);
	desc = rsinfo->setDesc;
	natts = desc->natts;
	source = palloc(sizeof(int) * natts);
	for (int a = 0; a < natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		source[a] = -1;
		for (int c = 0; c < STATS_NUM_COLUMNS; c++)
			if (strcmp(NameStr(att->attname), stats_columns[c].name) == 0)
			{
				if (att->atttypid != stats_columns[c].type)
					elog(ERROR, "column \"%s\" of carm_internal.stats() has type %u, expected %u",
						 NameStr(att->attname), att->atttypid, stats_columns[c].type);
				source[a] = c;
				break;
			}
		if (source[a] < 0)
			elog(ERROR, "carm_internal.stats() declares an unknown column \"%s\"",
				 NameStr(att->attname));
	}
	values = palloc(sizeof(Datum) * natts);
	nulls = palloc(sizeof(bool) * natts);
	SpinLockAcquire(&shared->mutex);
	reset_at = shared->reset_at;
	SpinLockRelease(&shared->mutex);
	for (int i = 0; i < MAX_DATABASES; i++)
	{
		StatsSlot  *slot = &shared->slots[i];
		Datum		all[STATS_NUM_COLUMNS];
		bool		allnulls[STATS_NUM_COLUMNS] = {0};
		Oid			dbid;
		char	   *dbname;
		char		result[RESULT_LEN];
		TimestampTz at;
		double		ms;
		int			n = 0;

		SpinLockAcquire(&shared->mutex);
		dbid = slot->dbid;
		at = slot->maintenance_at;
		ms = slot->maintenance_ms;
		strlcpy(result, slot->maintenance_result, RESULT_LEN);
		SpinLockRelease(&shared->mutex);
		if (!OidIsValid(dbid))
			continue;
		dbname = get_database_name(dbid);
		if (dbname == NULL)
			continue;			/* dropped since */
		all[n++] = CStringGetTextDatum(dbname);
		for (int c = 0; c < CARM_NUM_STATS; c++)
		{
			uint64		v = pg_atomic_read_u64(&slot->counters[c]);

			all[n++] = (c == CARM_STAT_LOAD_US) ? Float8GetDatum((double) v / 1000.0)
				: Int64GetDatum((int64) v);
		}
		all[n] = TimestampTzGetDatum(at);
		allnulls[n++] = (at == 0);
		all[n] = Float8GetDatum(ms);
		allnulls[n++] = (at == 0);
		all[n] = CStringGetTextDatum(result);
		allnulls[n++] = (at == 0);
		all[n++] = TimestampTzGetDatum(reset_at);
		Assert(n == STATS_NUM_COLUMNS);
		for (int a = 0; a < natts; a++)
		{
			values[a] = all[source[a]];
			nulls[a] = allnulls[source[a]];
		}
		tuplestore_putvalues(rsinfo->setResult, desc, values, nulls);
	}
	return (Datum) 0;
}

/* carm.stats_reset() — every counter of every database back to zero (carm_admin). */
Datum
carm_stats_reset_sql(PG_FUNCTION_ARGS)
{
	carm_forbid_restricted();
	require_shared();
	memset(carm_stats_local, 0, sizeof(carm_stats_local));
	SpinLockAcquire(&shared->mutex);
	shared->reset_at = GetCurrentTimestamp();
	for (int i = 0; i < MAX_DATABASES; i++)
	{
		shared->slots[i].maintenance_at = 0;
		shared->slots[i].maintenance_ms = 0;
		shared->slots[i].maintenance_result[0] = '\0';
	}
	SpinLockRelease(&shared->mutex);
	for (int i = 0; i < MAX_DATABASES; i++)
		for (int c = 0; c < CARM_NUM_STATS; c++)
			pg_atomic_write_u64(&shared->slots[i].counters[c], 0);
	PG_RETURN_VOID();
}
