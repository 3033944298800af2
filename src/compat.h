/*
 * compat.h — the PostgreSQL majors carm_deleg builds on, 15 to 18, and the
 * places where their C API differs for it.  One code base: a version check
 * goes here, and only where an API carm_deleg uses changed.
 *
 * Checked against 16, 17 and 18 (scripts/postgres.sh builds them; the whole
 * suite runs on each, scripts/test.sh --pg-config): these are unchanged from
 * 15 to 18 and need no check —
 *   - ExecutorStart_hook (cache.c): void in every major; 18's development
 *     cycle made it return bool and reverted that before 18.0 (but
 *     ExecutorRun_hook did lose its execute_once argument in 18: below);
 *   - ProcessUtility_hook (citus.c), relcache and syscache callbacks
 *     (cache.c, actor.c), transaction callbacks;
 *   - planner support requests SupportRequestIndexCondition and
 *     SupportRequestSelectivity (planner.c);
 *   - GetUserIdAndSecContext / SECURITY_LOCAL_USERID_CHANGE (owner.c);
 *   - shmem_request_hook and shmem_startup_hook (stats.c): the request hook
 *     is new in 15, hence the floor below;
 *   - background workers (worker.c), MarkGUCPrefixReserved (15+).
 * What differs between majors is PostgreSQL's SQL, not its C API: MERGE ...
 * RETURNING (17+, test/sql/rls_merge.sql) and the renamed
 * force_parallel_mode (debug_parallel_query from 16,
 * test/specs/parallel_snapshot.spec).
 */
#ifndef CARM_COMPAT_H
#define CARM_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 150000
#error "carm_deleg needs PostgreSQL 15 or later (shmem_request_hook, MarkGUCPrefixReserved)"
#endif

/*
 * PostgreSQL 18 lets a library name itself and its version (shown by
 * pg_get_loaded_modules()); earlier majors have only the ABI check.
 */
#if PG_VERSION_NUM >= 180000
#define CARM_MODULE_MAGIC PG_MODULE_MAGIC_EXT(.name = "carm_deleg", .version = CARM_VERSION)
#else
#define CARM_MODULE_MAGIC PG_MODULE_MAGIC
#endif

/*
 * The varlena accessors (VARDATA_ANY, VARSIZE_ANY_EXHDR) moved from
 * postgres.h to varatt.h in 16.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * ExecutorRun_hook lost its execute_once argument in 18 (cache.c):
 * CARM_EXECUTOR_RUN_ARGS declares the hook's parameters, and
 * CARM_EXECUTOR_RUN_PASS passes them on.
 */
#if PG_VERSION_NUM >= 180000
#define CARM_EXECUTOR_RUN_ARGS QueryDesc *queryDesc, ScanDirection direction, uint64 count
#define CARM_EXECUTOR_RUN_PASS queryDesc, direction, count
#else
#define CARM_EXECUTOR_RUN_ARGS QueryDesc *queryDesc, ScanDirection direction, uint64 count, \
	bool execute_once
#define CARM_EXECUTOR_RUN_PASS queryDesc, direction, count, execute_once
#endif

#endif							/* CARM_COMPAT_H */
