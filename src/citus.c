/*
 * citus.c — running on Citus: a coordinator plus workers (docs/dba.md "Citus").
 *
 * carm_deleg does not link against Citus.  It needs to know three things,
 * all read through Citus's public face (its settings and its catalog):
 *
 *   carm_citus_loaded()    the Citus library is loaded in this backend;
 *   carm_citus_active()    ... and this database has the citus extension;
 *   carm_citus_is_worker() ... and this node is not the coordinator (its
 *                          pg_dist_local_group is not group 0).
 *
 * What changes when Citus is active, and why:
 *
 * - The actor reaches the workers.  Policies on a distributed table run in
 *   the workers' backends, which Citus opens for the transaction; the only
 *   per-transaction state Citus carries there is a real SET LOCAL, which it
 *   records and replays at the start of every worker transaction (setting
 *   citus.propagate_set_commands = 'local').  So set_actor() runs
 *   "SET LOCAL carm_deleg.actor = '…'" through ProcessUtility with that
 *   setting on for the one statement (actor.c), and session actors, which
 *   Citus would not carry, are refused.  After a subtransaction in which it
 *   was sent ends, it is sent again (see propagated_level below).
 * - Every node accepts that SET LOCAL only through carm_process_utility()
 *   below: inside a transaction block, from a member of carm_gateway, for a
 *   user that exists and is active and a business it is an employee of,
 *   which the first decision checks (actor.c, carm_actor_accept_set_local).
 *   Everything else still meets the check hook's refusal.
 * - carm's own reads run inside queries on shards (the row check of a
 *   policy on app.payment_102040 reads the grants): carm_as_owner() allows
 *   Citus's nested execution for them (owner.c).  They read reference
 *   tables, whose placement every node holds.
 * - Triggers that change other state (E9's serialising update) or decide
 *   (E5-E7) run once, on the coordinator's placement: on a worker's
 *   placement they return at once (hierarchy.c).  Invalidation triggers run
 *   on every placement: each node's backends must drop what changed.  The
 *   maintenance worker skips workers (worker.c).
 */
#include "carm_deleg.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/guc.h"

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Is the Citus library loaded here (a real setting, not a placeholder)?
 * Citus loads only from shared_preload_libraries, before any backend
 * starts, so the answer never changes in a backend: it is asked once.
 */
bool
carm_citus_loaded(void)
{
	static int	loaded = -1;

	if (unlikely(loaded < 0))
		loaded = GetConfigOption("citus.propagate_set_commands", true, false) != NULL &&
			(GetConfigOptionFlags("citus.propagate_set_commands", true) & GUC_CUSTOM_PLACEHOLDER) == 0;
	return loaded == 1;
}

/* Is Citus loaded and installed in this database? */
bool
carm_citus_active(void)
{
	return carm_citus_loaded() && IsTransactionState() &&
		OidIsValid(get_extension_oid("citus", true));
}

static void
read_local_group(void *arg)
{
	bool		isnull;

	if (SPI_execute("SELECT groupid FROM pg_catalog.pg_dist_local_group", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_local_group");
	*(int32 *) arg = SPI_processed == 1 ?
		DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) : 0;
}

/*
 * Is this node a Citus worker?  A node's group is 0 until the coordinator
 * adds it, and never changes after that: a non-zero answer is kept.
 */
bool
carm_citus_is_worker(void)
{
	static int32 group = 0;

	if (group != 0)
		return true;
	if (!carm_citus_active())
		return false;
	carm_as_owner(read_local_group, &group);
	return group != 0;
}

/*
 * Citus keeps the SET LOCALs it replays per subtransaction, and when a
 * subtransaction commits it goes back to its parent's list: an actor set
 * inside a savepoint that is then released (psql's ON_ERROR_ROLLBACK and
 * drivers' autosave wrap every statement in one) would reach no connection
 * opened afterwards, while PostgreSQL keeps the setting.  Worse, a RESET
 * inside one would be forgotten and the parent's actor replayed.  So when
 * a subtransaction in which we propagated ends, the current value is sent
 * again at the next statement (carm_citus_statement_begin()).
 */
static int	propagated_level = 0;	/* nest level of our last propagation */
static bool resend = false;

/*
 * The actor the workers were last sent in this transaction ("" when none or
 * cleared).  Clearing the setting is open to everyone and takes many forms
 * that carm does not run — RESET, SET … TO DEFAULT, RESET ALL,
 * set_config(…, '', true), a function's SET clause, a DO block — and none of
 * them reaches the workers by itself: their connections, and Citus's record
 * of the SET LOCALs to replay on new ones, would keep acting for the
 * previous actor while this node has none.  So whenever the setting has
 * changed (actor.c's assign hook), the next statement compares it with what
 * was sent and sends it again when they differ.
 */
static char sent_actor[64] = "";
static bool propagating = false;

/*
 * Run one utility statement (SET LOCAL / RESET of carm_deleg.actor) so that
 * Citus sees it: through ProcessUtility, with citus.propagate_set_commands
 * = 'local' for this statement only.  A LOCAL value set at an inner GUC
 * nest level outlives it (AtEOXact_GUC merges it into the transaction).
 */
void
carm_citus_propagate(const char *sql)
{
	int			nest = NewGUCNestLevel();

	propagating = true;
	PG_TRY();
	{
		(void) set_config_option("citus.propagate_set_commands", "local", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not run \"%s\"", sql);
		SPI_finish();
		AtEOXact_GUC(true, nest);
	}
	PG_FINALLY();
	{
		propagating = false;
	}
	PG_END_TRY();
	propagated_level = GetCurrentTransactionNestLevel();
	resend = false;
	strlcpy(sent_actor, carm_actor_setting ? carm_actor_setting : "", sizeof(sent_actor));
	carm_actor_changed = false;
}

static void
carm_citus_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	if ((event == SUBXACT_EVENT_COMMIT_SUB || event == SUBXACT_EVENT_ABORT_SUB) &&
		propagated_level > 0 && GetCurrentTransactionNestLevel() <= propagated_level)
	{
		resend = true;
		propagated_level = GetCurrentTransactionNestLevel() - 1;
	}
}

static void
carm_citus_xact_callback(XactEvent event, void *arg)
{
	propagated_level = 0;
	resend = false;
	sent_actor[0] = '\0';
}

/*
 * At each statement (cache.c's ExecutorStart hook, and before each utility
 * statement): send the actor again when a released savepoint made Citus
 * forget it, or when the setting differs from what was last sent.
 */
void
carm_citus_statement_begin(void)
{
	const char *value;

	if (likely(!resend && !carm_actor_changed) || propagating)
		return;
	if (IsParallelWorker() || !carm_citus_active())
	{
		resend = carm_actor_changed = false;
		return;
	}
	value = carm_actor_setting ? carm_actor_setting : "";
	if (resend || strcmp(value, sent_actor) != 0)
		carm_actor_resend();
	resend = carm_actor_changed = false;
}

/*
 * SET LOCAL carm_deleg.actor = '…' as a statement: under Citus, what a
 * coordinator's set_actor() sends a worker.  Validated (actor.c) before it
 * reaches the check hook, which accepts it only during this call.
 */
static void
carm_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	volatile bool accepted = false;

	/* a utility statement may run queries on workers too (COPY, EXPLAIN ANALYZE) */
	if (!IsA(parsetree, TransactionStmt))
		carm_citus_statement_begin();
	if (IsA(parsetree, VariableSetStmt))
	{
		VariableSetStmt *stmt = (VariableSetStmt *) parsetree;

		if (stmt->kind == VAR_SET_VALUE && stmt->is_local && stmt->name != NULL &&
			pg_strcasecmp(stmt->name, "carm_deleg.actor") == 0 && carm_citus_active())
			accepted = carm_actor_accept_set_local(ExtractSetVariableArgs(stmt));
	}
	PG_TRY();
	{
		(prev_process_utility ? prev_process_utility : standard_ProcessUtility)
			(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (accepted)
			carm_actor_end_set_local();
	}
	PG_END_TRY();
	if (!accepted)
		return;

	/*
	 * Sent on by Citus too, when this node opens connections of its own (a
	 * query entered on a worker).  Not by letting Citus record this
	 * statement: it would record the whole query string, which may hold
	 * other statements.
	 */
	carm_actor_resend();
}

void
carm_citus_init(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = carm_process_utility;
	RegisterSubXactCallback(carm_citus_subxact_callback, NULL);
	RegisterXactCallback(carm_citus_xact_callback, NULL);
}

PG_FUNCTION_INFO_V1(carm_citus_active_sql);
PG_FUNCTION_INFO_V1(carm_citus_is_worker_sql);

/* carm_internal.citus_active() */
Datum
carm_citus_active_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(carm_citus_active());
}

/* carm_internal.citus_is_worker() */
Datum
carm_citus_is_worker_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(carm_citus_is_worker());
}
