/*
 * worker.c — the maintenance background worker (R12).
 *
 * Registered only when the library is in shared_preload_libraries (and never
 * during binary upgrade).  Two processes, in the logical replication
 * launcher's idiom:
 *
 *  - the launcher ("carm_deleg launcher"), a static worker connected to no
 *    database, looks carm_deleg.database up in pg_database at start and at
 *    every reload.  When it exists, the launcher starts the maintenance
 *    worker there; when it does not, it logs one WARNING and waits for a
 *    reload (a worker that simply connected would FATAL every restart
 *    interval, forever).  When a reload names another database, it stops the
 *    worker and starts one there.  A worker that dies is started again after
 *    CARM_RESTART_SECONDS.
 *  - the maintenance worker ("carm_deleg maintenance"), a dynamic worker
 *    connected to that database, calls carm.run_maintenance() every
 *    carm_deleg.maintenance_interval seconds, in worker_spi's latch loop: one
 *    transaction per run, SIGHUP rereads the settings, SIGTERM ends it
 *    (between runs, with exit status 0).
 *
 * Correctness never depends on it: expiry is decided by time in the check
 * (R9); the worker only applies the cascades and deferred group requests.
 * A run that fails is logged and retried at the next interval; a database
 * without the extension is skipped.  Concurrent runs (an operator, pg_cron)
 * are safe: carm.run_maintenance() locks what it handles SKIP LOCKED.  It
 * never waits for a row an API call holds (SKIP LOCKED, NOWAIT), so the run
 * can hold its locks for the whole transaction without ever being part of a
 * lock cycle: what it cannot lock now is left for the next run, and each of
 * its steps has its own subtransaction, so a transient error in one keeps
 * the others' work (sql/src/60_maintenance.sql).
 */
#include "carm_deleg.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void carm_worker_main(Datum main_arg);
PGDLLEXPORT void carm_launcher_main(Datum main_arg);

/* Seconds between two starts of the maintenance worker, and of the launcher. */
#define CARM_RESTART_SECONDS 10

void
carm_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = CARM_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "carm_deleg");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "carm_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "carm_deleg launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "carm_deleg launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * The oid of a database by name, InvalidOid when there is none.  A heap scan
 * of pg_database, as the logical replication launcher reads pg_subscription:
 * a process connected to no database cannot open the name index
 * (get_database_oid() does).
 */
static Oid
database_oid(const char *name)
{
	Oid			oid = InvalidOid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_database_datname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(name));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		oid = ((Form_pg_database) GETSTRUCT(tup))->oid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return oid;
}

/* Start the maintenance worker in a database; NULL when no slot is free. */
static BackgroundWorkerHandle *
start_maintenance_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "carm_deleg");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "carm_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "carm_deleg maintenance");
	snprintf(worker.bgw_type, BGW_MAXLEN, "carm_deleg maintenance");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the carm_deleg maintenance worker"),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	(void) WaitForBackgroundWorkerStartup(handle, &pid);
	return handle;
}

void
carm_launcher_main(Datum main_arg)
{
	BackgroundWorkerHandle *handle = NULL;
	Oid			running_in = InvalidOid;
	TimestampTz last_start = 0;
	char	   *reported_missing = NULL;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);	/* shared catalogs only */

	for (;;)
	{
		Oid			dboid;
		pid_t		pid;
		bool		alive;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (reported_missing && strcmp(reported_missing, carm_maintenance_database) != 0)
			{
				pfree(reported_missing);
				reported_missing = NULL;
			}
		}
		dboid = database_oid(carm_maintenance_database);
		alive = handle != NULL && GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED;

		if (alive && dboid != running_in)
		{
			ereport(LOG,
					(errmsg("carm_deleg maintenance worker stopping: carm_deleg.database is now \"%s\"",
							carm_maintenance_database)));
			TerminateBackgroundWorker(handle);
			(void) WaitForBackgroundWorkerShutdown(handle);
			alive = false;
			last_start = 0;
		}
		if (!alive && !OidIsValid(dboid))
		{
			/* once per name: a wrong setting must not fill the log */
			if (reported_missing == NULL)
			{
				ereport(WARNING,
						(errcode(ERRCODE_UNDEFINED_DATABASE),
						 errmsg("carm_deleg maintenance worker not started: database \"%s\" does not exist",
								carm_maintenance_database),
						 errhint("Set carm_deleg.database to the database where carm_deleg is installed and reload.")));
				reported_missing = MemoryContextStrdup(TopMemoryContext, carm_maintenance_database);
			}
		}
		else if (!alive &&
				 TimestampDifferenceExceeds(last_start, GetCurrentTimestamp(),
											CARM_RESTART_SECONDS * 1000))
		{
			if (reported_missing)
			{
				pfree(reported_missing);
				reported_missing = NULL;
			}
			last_start = GetCurrentTimestamp();
			handle = start_maintenance_worker(dboid);
			running_in = dboid;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* One maintenance run in its own transaction; errors are logged, not fatal. */
static void
run_once(MemoryContext run_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(run_cxt);
	TimestampTz started = GetCurrentTimestamp();
	char		result[128] = "ok";

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "SELECT carm.run_maintenance()");
	PG_TRY();
	{
		/* asked of the catalog, not by a query under the database's search_path */
		bool		installed = OidIsValid(get_extension_oid("carm_deleg", true));

		bool		citus_worker = installed && carm_citus_is_worker();

		SPI_connect();
		if (citus_worker)
			strlcpy(result, "skipped: a Citus worker (the coordinator runs maintenance)", sizeof(result));
		else if (installed &&
				 SPI_execute("SELECT action, count FROM carm.run_maintenance()", false, 0) == SPI_OK_SELECT)
		{
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				char	   *action = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
				char	   *count = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

				elog(DEBUG1, "carm_deleg maintenance: %s %s", action, count);
				/* "ok", then what it did: "ok: relationships_expired 3, ..." */
				if (count != NULL && strcmp(count, "0") != 0)
				{
					size_t		len = strlen(result);

					snprintf(result + len, sizeof(result) - len, "%s %s %s",
							 strchr(result, ':') ? "," : ":", action, count);
				}
			}
		}
		else if (!installed)
			strlcpy(result, "skipped: carm_deleg is not installed", sizeof(result));
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(run_cxt);
		edata = CopyErrorData();
		snprintf(result, sizeof(result), "error: %s", edata->message);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	carm_stats_maintenance(started,
						   (double) (GetCurrentTimestamp() - started) / 1000.0, result);
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);
	MemoryContextReset(run_cxt);
}

void
carm_worker_main(Datum main_arg)
{
	MemoryContext run_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/* the launcher stops it on a change of database: a clean exit, not a FATAL */
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);
	StartTransactionCommand();
	ereport(LOG,
			(errmsg("carm_deleg maintenance worker started in database \"%s\"",
					get_database_name(MyDatabaseId))));
	CommitTransactionCommand();

	run_cxt = AllocSetContextCreate(TopMemoryContext, "carm_deleg maintenance run",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		long		timeout_ms = (carm_maintenance_interval > 0 ?
								  carm_maintenance_interval : 3600) * 1000L;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			proc_exit(0);

		if (ConfigReloadPending)
		{
			/* a change of carm_deleg.database is the launcher's business */
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (carm_maintenance_interval > 0)
			run_once(run_cxt);
	}
}
