/*
 * worker.c — the maintenance background worker (R12).
 *
 * Registered only when the library is in shared_preload_libraries (and never
 * during binary upgrade).  It connects to carm_deleg.database and calls
 * carm.run_maintenance() every carm_deleg.maintenance_interval seconds, in
 * worker_spi's latch loop: one transaction per run, SIGHUP rereads the
 * settings, SIGTERM ends it, and the postmaster restarts it after a crash.
 * Correctness never depends on it: expiry is decided by time in the check
 * (R9); the worker only applies the cascades and deferred group requests.
 * A run that fails is logged and retried at the next interval; a database
 * without the extension is skipped.  Concurrent runs (an operator, pg_cron)
 * are safe: carm.run_maintenance() locks what it handles SKIP LOCKED.
 *
 * A background worker cannot switch databases, so when a reload changes
 * carm_deleg.database the worker exits with status 1 and the postmaster
 * starts it again, after bgw_restart_time, connected to the new one.
 */
#include "carm_deleg.h"

#include "access/xact.h"
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
#include "utils/snapmgr.h"

PGDLLEXPORT void carm_worker_main(Datum main_arg);

void
carm_worker_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "carm_deleg");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "carm_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "carm_deleg maintenance");
	snprintf(worker.bgw_type, BGW_MAXLEN, "carm_deleg maintenance");
	RegisterBackgroundWorker(&worker);
}

/* The database this worker is connected to (carm_deleg.database at start). */
static char *connected_database = NULL;

/* One maintenance run in its own transaction; errors are logged, not fatal. */
static void
run_once(MemoryContext run_cxt)
{
	MemoryContext old = MemoryContextSwitchTo(run_cxt);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "SELECT carm.run_maintenance()");
	PG_TRY();
	{
		/* asked of the catalog, not by a query under the database's search_path */
		bool		installed = OidIsValid(get_extension_oid("carm_deleg", true));

		SPI_connect();
		if (installed &&
			SPI_execute("SELECT action, count FROM carm.run_maintenance()", false, 0) == SPI_OK_SELECT)
		{
			for (uint64 i = 0; i < SPI_processed; i++)
				elog(DEBUG1, "carm_deleg maintenance: %s %s",
					 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
					 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(run_cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
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
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(carm_maintenance_database, NULL, 0);
	connected_database = MemoryContextStrdup(TopMemoryContext, carm_maintenance_database);
	ereport(LOG,
			(errmsg("carm_deleg maintenance worker started in database \"%s\"",
					connected_database)));

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

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (strcmp(carm_maintenance_database, connected_database) != 0)
			{
				ereport(LOG,
						(errmsg("carm_deleg maintenance worker restarting: carm_deleg.database changed from \"%s\" to \"%s\"",
								connected_database, carm_maintenance_database)));
				proc_exit(1);	/* 1: the postmaster restarts us */
			}
		}
		if (carm_maintenance_interval > 0)
			run_once(run_cxt);
	}
}
