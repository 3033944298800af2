/*
 * carm_deleg.c — module entry point: settings, cache callbacks and, when the
 * library is preloaded, the statistics' shared memory and the maintenance
 * background worker.
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
							 "Off for deployments behind transaction-pooling poolers: the session actor then raises 42501.",
							 &carm_allow_session_actor,
							 true,
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
	MarkGUCPrefixReserved("carm_deleg");

	carm_inval_init();
	carm_cache_init();
	carm_actor_init();
	carm_citus_init();

	if (process_shared_preload_libraries_in_progress)
		carm_stats_init();
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
		carm_worker_register();
}
