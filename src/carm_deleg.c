/*
 * carm_deleg.c — module entry point: settings, cache callbacks and, when the
 * library is preloaded, the shared memory of the statistics and of the
 * shared grant sets, and the maintenance background worker.
 */
#include "carm_deleg.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

CARM_MODULE_MAGIC;

int			carm_maintenance_interval = 60;
char	   *carm_maintenance_database = NULL;

void		_PG_init(void);

void
_PG_init(void)
{
	/* settings, alphabetically */
	carm_define_actor_guc();
	DefineCustomBoolVariable("carm_deleg.allow_session_actor",
							 "Allows carm.set_actor(..., is_local => false), an acting user for the whole session.",
							 "Off by default: a session actor outlives the client behind a transaction-pooling pooler (pgbouncer), so set_actor(..., is_local => false) raises 42501.",
							 &carm_allow_session_actor,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("carm_deleg.database",
							   "Database in which the maintenance worker runs carm.run_maintenance().",
							   NULL,
							   &carm_maintenance_database,
							   "postgres",
							   PGC_SIGHUP,	/* read when the worker starts */
							   0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("carm_deleg.maintenance_interval",
							"Seconds between two runs of carm.run_maintenance() by the worker (0 disables it).",
							NULL,
							&carm_maintenance_interval,
							60, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("carm_deleg.require_actor",
							 "Raises 42501 when a protected table is read with no acting user.",
							 "For development: without it such a read returns no rows, silently.",
							 &carm_require_actor_reads,
							 false,
							 PGC_USERSET,	/* turns an empty answer into an error, nothing more */
							 0,
							 NULL, NULL, NULL);
	/* a server-start setting exists only when the library is preloaded */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("carm_deleg.shared_store_size",
								"Shared memory for users' grants shared by every backend (0 disables sharing).",
								"The least recently used grants are evicted when it is full.",
								&carm_shared_store_mb,
								64, 0, 16384,
								PGC_POSTMASTER,
								GUC_UNIT_MB,
								NULL, NULL, NULL);
	MarkGUCPrefixReserved("carm_deleg");

	carm_inval_init();
	carm_cache_init();
	carm_actor_init();
	carm_caller_init();
	carm_citus_init();
	carm_errors_init();

	if (process_shared_preload_libraries_in_progress)
	{
		carm_stats_init();
		carm_shared_init();
	}
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
		carm_worker_register();
}
