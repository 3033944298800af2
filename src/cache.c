/*
 * cache.c — per-backend store of one user's grants, exact per statement.
 *
 * What is stored.  The rows carm_internal.grants(user) returns, grouped by
 * the business they are on (the unit of loading) and indexed by program.
 * One user is cached at a time: the actor, in practice.  The store is
 * either complete (every business of the user loaded) or partial (only the
 * businesses point checks and point reads asked for, one indexed query
 * each, so a first query costs the same whatever the user's reach).  A
 * statement that meets many unloaded programs (a scan) loads everything.
 *
 * How it stays exact.  inval.c turns every committed change into keys: one
 * user (reload that user's store), one business (reload every store's
 * grants on that business), or everything.  The relcache callback only
 * records keys; the next use applies them, a complete store reloading just
 * the businesses named (a change elsewhere costs a reader one small query,
 * not a rebuild).  carm_statement_begin(), called when any statement starts
 * executing, accepts pending invalidations, so in READ COMMITTED a change
 * committed before a statement started is honoured by that statement.
 *
 * Which snapshot loads read.  Normally the latest one, taken after the
 * invalidations were accepted: it contains every change whose message was
 * processed, so what is loaded stays valid until the next message.  Under
 * REPEATABLE READ / SERIALIZABLE, loads read the transaction's snapshot
 * (decisions follow it, SPEC §8), and in parallel mode the active one (no
 * other can be taken); such loads may predate changes whose messages were
 * already consumed, so what they loaded is reloaded when the transaction
 * (RR) or the statement (parallel, READ COMMITTED) ends.
 *
 * Expiry (R9) is not cached: grants carry expires_at and decisions compare
 * it with the time of the statement (carm_decision_time(), SPEC §10 rev.
 * 1.2), not of the transaction: a transaction open across an expiry loses
 * reads and writes at its next statement, in every isolation level, whether
 * or not maintenance has run (or can run: a relationship row another session
 * holds locked is skipped by maintenance, never by the checks).  Decision
 * tables derived for an earlier statement are dropped when the statement's
 * time reaches the earliest expiry they depend on (statement_clock()).
 */
#include "carm_deleg.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type_d.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "portability/instr_time.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

/* Beyond this many pending business keys, reload the whole store. */
#define MAX_PENDING 256
/*
 * A statement that lazily loads more businesses than this loads them all (a
 * scan), and so does a store that has loaded this many one by one (a busy
 * actor's point reads: one complete load costs less than thousands of small
 * ones, and keyed invalidation keeps it).
 */
#define LAZY_LOADS_PER_STATEMENT 16
#define LAZY_LOADS_PER_STORE 64

typedef struct BusinessEntry
{
	int64		business_id;	/* hash key */
	int			nbiz;
	CarmGrant  *biz;			/* business-level grants (program NULL) */
	int			nprog;
	int64	   *programs;		/* programs of this business with an entry */
} BusinessEntry;

typedef struct CacheState
{
	MemoryContext cxt;
	int64		user;			/* 0: nothing cached */
	bool		complete;		/* every business of the user loaded */
	bool		partial_pays;	/* a one-business load costs less than a complete one */
	HTAB	   *businesses;		/* BusinessEntry */
	HTAB	   *programs;		/* CarmGrantList */
	uint64		generation;		/* bumped by every change of the content */
	double		reach_estimate; /* programs the user reaches, -1 unknown */
	int			lazy_loads;		/* one-business loads since the store was reset */
	bool		sized;			/* the user's reach was weighed (load_small_user_whole) */
} CacheState;

static CacheState cache = {NULL, 0, false, true, NULL, NULL, 1, -1, 0, false};

/* Recorded by the invalidation callback, applied by the next use. */
static bool reset_pending = true;
static int	npending = 0;
static int64 pending[MAX_PENDING];
uint64		carm_decision_epoch = 1;	/* see carm_deleg.h */
static uint64 reset_count = 0;	/* bumped by every "everything" message */

/* Loads that read an older snapshot, to redo (see the header comment). */
static bool redo_full_at_statement = false;
static bool redo_full_at_xact = false;
static List *redo_at_statement = NIL;	/* business ids, in TopMemoryContext */
static List *redo_at_xact = NIL;

static uint64 statement_seq = 0;
static int	loading = 0;		/* our own loads' statements are not the user's */
static uint64 lazy_statement = 0;
static int	lazy_loads = 0;

static Oid	anchor_relid = InvalidOid;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;

static const CarmGrantList empty_list = {0, 0, 0, NULL};

/* ---- invalidation ---- */

static void
add_pending(int64 business_id)
{
	for (int i = 0; i < npending; i++)
		if (pending[i] == business_id)
			return;
	if (npending == MAX_PENDING)
		reset_pending = true;
	else
		pending[npending++] = business_id;
}

/* Relcache callback: record what changed; never read catalogs here. */
static void
carm_relcache_callback(Datum arg, Oid relid)
{
	int64		id;
	CarmInvalKind kind = carm_decode_inval(relid, anchor_relid, &id);

	/* the shared sets' change log (shared_store.c): every key, from every backend */
	carm_shared_note(kind, id);
	switch (kind)
	{
		case CARM_INVAL_ALL:
			reset_pending = true;
			reset_count++;
			carm_decision_epoch++;
			carm_actor_invalidate_binding();
			carm_actor_forget_users();
			break;
		case CARM_INVAL_USER:
			carm_actor_forget_users();
			if (cache.user != 0 && cache.user == id)
			{
				reset_pending = true;
				carm_decision_epoch++;
			}
			break;
		case CARM_INVAL_BUSINESS:
			if (cache.user != 0)
			{
				add_pending(id);
				carm_decision_epoch++;
			}
			break;
		case CARM_INVAL_NONE:
			break;
	}
}

/*
 * Called when any statement starts executing: accept the invalidations
 * other transactions committed, so that this statement's decisions honour
 * every change committed before it started (READ COMMITTED: SPEC §8).
 */
void
carm_statement_begin(void)
{
	if (loading > 0)
		return;
	statement_seq++;
	if (redo_full_at_statement || redo_at_statement != NIL)
	{
		ListCell   *lc;

		if (redo_full_at_statement)
			reset_pending = true;
		foreach(lc, redo_at_statement)
			add_pending(*(int64 *) lfirst(lc));
		list_free_deep(redo_at_statement);
		redo_at_statement = NIL;
		redo_full_at_statement = false;
		carm_decision_epoch++;
	}
	if (!IsTransactionState())
		return;

	/*
	 * With shared sets, this backend must log (by processing them) the keys
	 * of every change committed before the statement started, before any
	 * set is used: the anchor must be known to recognise "everything".
	 */
	if (carm_shared_available() && !OidIsValid(anchor_relid))
	{
		anchor_relid = carm_anchor_relid();
		carm_shared_set_anchor(anchor_relid);
	}
	if (cache.user != 0 || (OidIsValid(anchor_relid) && carm_shared_available()))
		AcceptInvalidationMessages();
}

/*
 * The time decisions judge expiry at (R9): the start of the statement
 * (statement_timestamp()), the same in parallel workers as in their leader.
 * Constant for a statement, so every row of a scan is decided at one time.
 */
TimestampTz
carm_decision_time(void)
{
	return GetCurrentStatementStartTimestamp();
}

/*
 * A new statement time: if it reaches the earliest expiry a decision table
 * was derived under, bump the epoch so that row checks holding a table
 * (a cursor fetched later, a portal run again, a PL/pgSQL expression)
 * validate it again.  Called when an executor starts and each time one
 * runs (FETCH and the extended protocol's Execute run a portal again
 * without starting it; the statement time is theirs).
 */
static void
statement_clock(void)
{
	static TimestampTz clock_seen = 0;
	TimestampTz now = carm_decision_time();

	if (likely(now == clock_seen))
		return;
	clock_seen = now;
	if (carm_vis_expiry_crossed(now))
		carm_decision_epoch++;
}

static void
carm_executor_run(CARM_EXECUTOR_RUN_ARGS)
{
	statement_clock();
	if (prev_executor_run)
		prev_executor_run(CARM_EXECUTOR_RUN_PASS);
	else
		standard_ExecutorRun(CARM_EXECUTOR_RUN_PASS);
}

static void
carm_executor_start(QueryDesc *queryDesc, int eflags)
{
	carm_statement_begin();
	statement_clock();
	carm_citus_statement_begin();
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* At the end of a transaction, redo what was read with its snapshot. */
static void
carm_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	carm_decision_epoch++;		/* the next transaction has another clock (R9) */
	carm_stats_flush();
	if (redo_full_at_xact || redo_full_at_statement)
		reset_pending = true;
	foreach(lc, redo_at_xact)
		add_pending(*(int64 *) lfirst(lc));
	foreach(lc, redo_at_statement)
		add_pending(*(int64 *) lfirst(lc));
	list_free_deep(redo_at_xact);
	list_free_deep(redo_at_statement);
	redo_at_xact = redo_at_statement = NIL;
	redo_full_at_xact = redo_full_at_statement = false;
	carm_decision_epoch++;
}

void
carm_cache_init(void)
{
	CacheRegisterRelcacheCallback(carm_relcache_callback, (Datum) 0);
	RegisterXactCallback(carm_xact_callback, NULL);
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = carm_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = carm_executor_run;
}

/* ---- the store ---- */

static HTAB *
new_table(const char *name, Size entrysize)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = entrysize;
	ctl.hcxt = cache.cxt;
	return hash_create(name, 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* An empty, partial store for user_id. */
static void
reset_store(int64 user_id)
{
	Oid			anchor = carm_anchor_relid();

	if (!OidIsValid(anchor))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension carm_deleg is not installed in this database")));
	carm_check_version(anchor);	/* before anything changes: it may raise */
	if (cache.cxt == NULL)
		cache.cxt = AllocSetContextCreate(CacheMemoryContext, "carm_deleg grants",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(cache.cxt);
	/* small to start: most stores hold a business or two (point checks) */
	cache.businesses = new_table("carm_deleg businesses", sizeof(BusinessEntry));
	cache.programs = new_table("carm_deleg programs", sizeof(CarmGrantList));
	cache.user = user_id;
	cache.complete = false;

	/*
	 * Under Citus the resolver is not inlined (sql/src/87_citus.sql): a
	 * one-business load computes every grant of the user and keeps a few,
	 * so the store loads everything at its first miss instead.
	 */
	cache.partial_pays = !carm_citus_active();
	cache.reach_estimate = -1;
	cache.lazy_loads = 0;
	cache.sized = false;
	cache.generation++;
	carm_decision_epoch++;
	anchor_relid = anchor;
	carm_shared_set_anchor(anchor);
}

/* Forget what is stored about one business (its grants and programs). */
static void
drop_business(int64 business_id)
{
	BusinessEntry *b = hash_search(cache.businesses, &business_id, HASH_FIND, NULL);

	if (b == NULL)
		return;
	for (int i = 0; i < b->nprog; i++)
		(void) hash_search(cache.programs, &b->programs[i], HASH_REMOVE, NULL);
	(void) hash_search(cache.businesses, &business_id, HASH_REMOVE, NULL);
	cache.generation++;
	carm_decision_epoch++;
}

static BusinessEntry *
business_entry(int64 business_id)
{
	bool		found;
	BusinessEntry *b = hash_search(cache.businesses, &business_id, HASH_ENTER, &found);

	if (!found)
	{
		b->nbiz = 0;
		b->biz = NULL;
		b->nprog = 0;
		b->programs = NULL;
	}
	return b;
}

static void
append_grant(CarmGrant **arr, int *n, const CarmGrant *g)
{
	if (*n == 0)
		*arr = MemoryContextAlloc(cache.cxt, sizeof(CarmGrant) * 2);
	else if (*n >= 2 && (*n & (*n - 1)) == 0)
		*arr = repalloc(*arr, sizeof(CarmGrant) * *n * 2);
	(*arr)[(*n)++] = *g;
}

/* The grant list of one program, created empty under its business. */
static CarmGrantList *
program_entry(int64 program_id, int64 business_id)
{
	bool		found;
	CarmGrantList *list = hash_search(cache.programs, &program_id, HASH_ENTER, &found);

	if (!found)
	{
		BusinessEntry *b = business_entry(business_id);

		list->ngrants = 0;
		list->grants = NULL;
		list->business_id = business_id;
		if (b->nprog == 0)
			b->programs = MemoryContextAlloc(cache.cxt, sizeof(int64) * 2);
		else if (b->nprog >= 2 && (b->nprog & (b->nprog - 1)) == 0)
			b->programs = repalloc(b->programs, sizeof(int64) * b->nprog * 2);
		b->programs[b->nprog++] = program_id;
	}
	return list;
}

static void
add_row(const CarmGrant *g, int64 program_id, bool program_null)
{
	if (program_null)
	{
		BusinessEntry *b = business_entry(g->business_id);

		append_grant(&b->biz, &b->nbiz, g);
	}
	else
	{
		CarmGrantList *list = program_entry(program_id, g->business_id);

		append_grant(&list->grants, &list->ngrants, g);
	}
}

static CarmRole
role_of(Datum d)
{
	char	   *s = TextDatumGetCString(d);
	CarmRole	r = carm_role_from_name(s);

	if (r == CARM_ROLE_NONE)
		elog(ERROR, "unexpected role \"%s\" from carm_internal.grants()", s);
	pfree(s);
	return r;
}

static CarmGrantSource
source_of(Datum d)
{
	text	   *t = DatumGetTextPP(d);
	const char *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);

	if (len == 8 && memcmp(s, "employee", 8) == 0)
		return CARM_SRC_EMPLOYEE;
	if (len == 6 && memcmp(s, "closed", 6) == 0)
		return CARM_SRC_CLOSED;
	return CARM_SRC_PROXY;
}

/* The kept plans, one per query shape. */
typedef enum LoadShape
{
	LOAD_ALL,					/* every grant of $1 */
	LOAD_BUSINESSES,			/* grants of $1 on the businesses $2 (int8[]) */
	LOAD_BUSINESS,				/* grants of $1 on the business $2 (a point check) */
	LOAD_PROGRAM_BUSINESS,		/* grants of $1 on the business of program $2 */
	NUM_SHAPES
} LoadShape;

#define GRANT_COLUMNS "g.business_id, g.program_id, g.role, g.source, g.provider_bam, " \
	"g.via_business_id, g.see_client, g.see_other, g.all_programs, g.expires_at"

static SPIPlanPtr
load_plan(LoadShape shape)
{
	static SPIPlanPtr plans[NUM_SHAPES];
	static const char *const queries[NUM_SHAPES] = {
		"SELECT " GRANT_COLUMNS ", NULL::bigint FROM carm_internal.grants($1) g",
		"SELECT " GRANT_COLUMNS ", NULL::bigint FROM carm_internal.grants($1) g "
		"WHERE g.business_id = ANY ($2)",
		"SELECT " GRANT_COLUMNS ", NULL::bigint FROM carm_internal.grants($1) g "
		"WHERE g.business_id = $2",
		/* the business is returned even when the user holds nothing there */
		"SELECT " GRANT_COLUMNS ", NULL::bigint FROM carm_internal.grants($1) g "
		"WHERE g.business_id = (SELECT p.business_id FROM carm.program p WHERE p.id = $2) "
		"UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
		"p.business_id FROM carm.program p WHERE p.id = $2",
	};
	Oid			argtypes[2] = {INT8OID, shape == LOAD_BUSINESSES ? INT8ARRAYOID : INT8OID};

	/*
	 * Generic plans: every parameter is an equality on an indexed key, and
	 * replanning the inlined resolver would cost more than running it.
	 */
	return carm_owner_plan(&plans[shape], queries[shape], shape == LOAD_ALL ? 1 : 2,
						   argtypes, true);
}

/*
 * The snapshot a load reads (see the header comment), and whether what it
 * reads must be loaded again at the end of the statement or transaction.
 */
typedef enum LoadScope
{
	SCOPE_LATEST,
	SCOPE_STATEMENT,
	SCOPE_TRANSACTION
} LoadScope;

static Snapshot
load_snapshot(LoadScope *scope)
{
	if (IsInParallelMode())
	{
		*scope = IsolationUsesXactSnapshot() ? SCOPE_TRANSACTION : SCOPE_STATEMENT;
		return ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	}
	if (IsolationUsesXactSnapshot())
	{
		*scope = SCOPE_TRANSACTION;
		return GetTransactionSnapshot();
	}
	*scope = SCOPE_LATEST;
	return GetLatestSnapshot();
}

static void
remember_redo(LoadScope scope, int64 business_id)
{
	MemoryContext old;
	int64	   *p;

	if (scope == SCOPE_LATEST)
		return;
	if (business_id == 0)
	{
		if (scope == SCOPE_STATEMENT)
			redo_full_at_statement = true;
		else
			redo_full_at_xact = true;
		return;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	p = palloc(sizeof(int64));
	*p = business_id;
	if (scope == SCOPE_STATEMENT)
		redo_at_statement = lappend(redo_at_statement, p);
	else
		redo_at_xact = lappend(redo_at_xact, p);
	MemoryContextSwitchTo(old);
}

typedef struct LoadedRow
{
	CarmGrant	g;
	int64		program_id;
	bool		program_null;
} LoadedRow;

typedef struct LoadRun
{
	LoadShape	shape;
	Datum		arg2;
	MemoryContext cxt;			/* where rows go */
	LoadScope	scope;			/* out */
	int64		business_of_program;	/* out */
	LoadedRow  *rows;			/* out */
	uint64		nrows;			/* out */
} LoadRun;

/* Read the rows of one load (as the extension owner, see carm_as_owner). */
static void
read_grants(void *arg)
{
	LoadRun    *lr = arg;
	Datum		args[2] = {Int64GetDatum(cache.user), lr->arg2};
	Snapshot	snap = load_snapshot(&lr->scope);

	if (SPI_execute_snapshot(load_plan(lr->shape), args, NULL, snap, InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "carm_internal.grants() failed");
	lr->rows = MemoryContextAlloc(lr->cxt, sizeof(LoadedRow) * (SPI_processed + 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		LoadedRow  *r = &lr->rows[lr->nrows];
		Datum		d;

		d = SPI_getbinval(tup, desc, 11, &isnull);
		if (!isnull)
			lr->business_of_program = DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 1, &isnull);
		if (isnull)
			continue;			/* the program's business, no grant there */
		r->g.business_id = DatumGetInt64(d);
		r->program_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &r->program_null));
		r->g.role = role_of(SPI_getbinval(tup, desc, 3, &isnull));
		r->g.source = source_of(SPI_getbinval(tup, desc, 4, &isnull));
		r->g.provider_bam = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		r->g.via_business_id = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		r->g.see_client = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		r->g.see_other = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		r->g.all_programs = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
		d = SPI_getbinval(tup, desc, 10, &isnull);
		r->g.expires_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
		lr->nrows++;
	}
}

/*
 * Whether this load may use and publish shared sets (shared_store.c): the
 * library is preloaded, and the load reads the latest snapshot (not
 * REPEATABLE READ, not parallel mode), on one node (under Citus a load is
 * always complete and computed whole), in a transaction that has written
 * nothing (its loads would see its own uncommitted changes — already
 * within the statement that writes them, before its invalidation triggers
 * run at the statement's end: any write, which assigns the transaction an
 * id, ends sharing for the transaction), on a primary (a standby's backends started after a replayed
 * commit never receive its keys, and no session there commits to log them).
 */
static bool
shared_usable(void)
{
	return cache.partial_pays && carm_shared_available() &&
		!IsInParallelMode() && !IsolationUsesXactSnapshot() &&
		!carm_xact_changed_state() &&
		!TransactionIdIsValid(GetTopTransactionIdIfAny()) && !RecoveryInProgress();
}

/* shared_usable() for actor.c (set_actor's first sight of a user). */
bool
carm_shared_usable(void)
{
	return shared_usable();
}

/* What a shape loads, as a shared set's kind and id (0: never shared). */
static int
shared_kind(LoadShape shape, Datum arg2, int64 *id)
{
	*id = 0;
	switch (shape)
	{
		case LOAD_ALL:
			return CARM_SHARED_ALL;
		case LOAD_BUSINESS:
			*id = DatumGetInt64(arg2);
			return CARM_SHARED_BUSINESS;
		case LOAD_PROGRAM_BUSINESS:
			*id = DatumGetInt64(arg2);
			return CARM_SHARED_PROGRAM;
		default:
			return 0;			/* several businesses at once */
	}
}

/* Store the rows of one load (what was stored before for them was dropped). */
static void
store_rows(LoadShape shape, Datum arg2, int64 business_of_program, const LoadedRow *rows,
		   uint64 nrows)
{
	if (shape == LOAD_PROGRAM_BUSINESS && business_of_program != 0)
	{
		drop_business(business_of_program);
		(void) program_entry(DatumGetInt64(arg2), business_of_program);
	}
	for (uint64 i = 0; i < nrows; i++)
		add_row(&rows[i].g, rows[i].program_id, rows[i].program_null);
	cache.generation++;
	carm_decision_epoch++;
}

/* The rows of the store as one array, to publish a complete store that was patched. */
static LoadedRow *
store_as_rows(uint64 *nrows)
{
	HASH_SEQ_STATUS seq;
	BusinessEntry *b;
	uint64		n = 0,
				cap = 64;
	LoadedRow  *rows = palloc(sizeof(LoadedRow) * cap);

	hash_seq_init(&seq, cache.businesses);
	while ((b = hash_seq_search(&seq)) != NULL)
	{
		for (int p = -1; p < b->nprog; p++)
		{
			const CarmGrant *grants = b->biz;
			int			ngrants = b->nbiz;

			if (p >= 0)
			{
				CarmGrantList *list = hash_search(cache.programs, &b->programs[p], HASH_FIND, NULL);

				grants = list ? list->grants : NULL;
				ngrants = list ? list->ngrants : 0;
			}
			for (int i = 0; i < ngrants; i++)
			{
				if (n == cap)
				{
					cap *= 2;
					rows = repalloc_huge(rows, sizeof(LoadedRow) * cap);
				}
				rows[n].g = grants[i];
				rows[n].program_null = (p < 0);
				rows[n].program_id = p < 0 ? 0 : b->programs[p];
				n++;
			}
		}
	}
	*nrows = n;
	return rows;
}

/*
 * Take one load from a set another backend published, if a valid one
 * exists.  A complete set comes with the businesses changed since it was
 * published ('patches'), which the caller reloads.
 */
static bool
load_from_shared(LoadShape shape, Datum arg2, int64 *business_of_program,
				 int64 *patches, int *npatches)
{
	int64		id;
	int			kind = shared_kind(shape, arg2, &id);
	void	   *data;
	Size		len;
	int64		business = 0;

	if (kind == 0 ||
		!carm_shared_get((CarmSharedKind) kind, cache.user, id, carm_shared_position(),
						 &data, &len, &business, NULL, patches, npatches, MAX_PENDING))
		return false;
	*business_of_program = business;
	store_rows(shape, arg2, business, (LoadedRow *) data, len / sizeof(LoadedRow));
	if (data)
		pfree(data);
	return true;
}

/*
 * Run one load and store its rows.  Returns the business of program $2 for
 * LOAD_PROGRAM_BUSINESS (0 when the program does not exist); what was
 * stored about that business before is replaced.  A load another backend
 * already made is taken from shared memory; a load of the latest snapshot
 * is published there.
 */
static int64
run_load(LoadShape shape, Datum arg2, const int64 *ids, int nids)
{
	LoadRun		lr = {shape, arg2, CurrentMemoryContext, SCOPE_LATEST, 0, NULL, 0};
	LoadScope	scope;
	int64		business_of_program = 0;
	LoadedRow  *rows;
	uint64		nrows;
	instr_time	started,
				elapsed;
	bool		shared = shared_usable();
	uint64		stamp;

	if (shared && shape != LOAD_ALL &&
		load_from_shared(shape, arg2, &business_of_program, NULL, NULL))
		return business_of_program;

	INSTR_TIME_SET_CURRENT(started);
	stamp = carm_shared_position(); /* before the load's snapshot is taken */
	loading++;
	PG_TRY();
	{
		carm_as_owner(read_grants, &lr);
	}
	PG_CATCH();
	{
		loading--;
		reset_pending = true;	/* half loaded: start again next time */
		carm_decision_epoch++;
		PG_RE_THROW();
	}
	PG_END_TRY();
	loading--;
	scope = lr.scope;
	business_of_program = lr.business_of_program;
	rows = lr.rows;
	nrows = lr.nrows;
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, started);
	carm_count(CARM_STAT_LOAD_US, INSTR_TIME_GET_MICROSEC(elapsed));
	carm_count(shape == LOAD_ALL ? CARM_STAT_FULL_LOADS : CARM_STAT_BUSINESS_LOADS, 1);

	store_rows(shape, arg2, business_of_program, rows, nrows);
	if (shared && scope == SCOPE_LATEST &&
		!(shape == LOAD_PROGRAM_BUSINESS && business_of_program == 0))
	{
		int64		id;
		int			kind = shared_kind(shape, arg2, &id);

		if (kind != 0)
			carm_shared_put((CarmSharedKind) kind, cache.user, id, stamp, rows,
							sizeof(LoadedRow) * nrows,
							shape == LOAD_BUSINESS ? id : business_of_program, 0);
	}
	if (rows)
		pfree(rows);

	if (shape == LOAD_ALL)
		remember_redo(scope, 0);
	else if (shape == LOAD_PROGRAM_BUSINESS && business_of_program != 0)
		remember_redo(scope, business_of_program);
	else
		for (int i = 0; i < nids; i++)
			remember_redo(scope, ids[i]);
	return business_of_program;
}

static void load_businesses(const int64 *ids, int n);

/*
 * Every grant of the user.  From a set another backend published when one
 * is valid: the businesses changed since it was published are reloaded and
 * the patched set is published again, so a change is reloaded once for
 * the cluster.
 */
static void
load_all(void)
{
	reset_store(cache.user);
	if (shared_usable())
	{
		int64		patches[MAX_PENDING];
		int			npatches = 0;
		int64		unused;
		uint64		position = carm_shared_position();

		if (load_from_shared(LOAD_ALL, (Datum) 0, &unused, patches, &npatches))
		{
			cache.complete = true;
			if (npatches > 0)
			{
				uint64		nrows;
				LoadedRow  *rows;

				carm_count(CARM_STAT_INVALIDATIONS, npatches);
				load_businesses(patches, npatches);
				rows = store_as_rows(&nrows);
				/* every key below 'position' is in: the patches read a later snapshot */
				carm_shared_put(CARM_SHARED_ALL, cache.user, 0, position, rows,
								sizeof(LoadedRow) * nrows, 0, 0);
				pfree(rows);
			}
			return;
		}
	}
	(void) run_load(LOAD_ALL, (Datum) 0, NULL, 0);
	cache.complete = true;
}

/* Load the user's grants on these businesses, replacing what is stored. */
static void
load_businesses(const int64 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	ArrayType  *a;

	for (int i = 0; i < n; i++)
	{
		drop_business(ids[i]);
		(void) business_entry(ids[i]);	/* loaded, possibly with nothing */
		elems[i] = Int64GetDatum(ids[i]);
	}
	if (n == 1)					/* a point check: the cheapest plan */
	{
		(void) run_load(LOAD_BUSINESS, Int64GetDatum(ids[0]), ids, n);
		return;
	}
	a = construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	(void) run_load(LOAD_BUSINESSES, PointerGetDatum(a), ids, n);
}

/*
 * Make the store hold exactly the committed state for user_id, as far as
 * it holds anything: apply recorded invalidations first.
 */
static void
ensure_user(int64 user_id)
{
	if (reset_pending || cache.user != user_id || cache.businesses == NULL)
	{
		reset_pending = false;
		npending = 0;
		reset_store(user_id);
		return;
	}
	if (npending > 0)
	{
		int64		ids[MAX_PENDING];
		int			n = npending;

		memcpy(ids, pending, sizeof(int64) * n);
		npending = 0;
		carm_count(CARM_STAT_INVALIDATIONS, n);
		if (cache.complete)
			load_businesses(ids, n);
		else
			for (int i = 0; i < n; i++)
				drop_business(ids[i]);
	}
}

/* Every grant of the user (scans, the index condition, accessible_programs). */
static void
ensure_complete(int64 user_id)
{
	ensure_user(user_id);
	if (!cache.complete)
		load_all();
}

/* Every grant of the user, for a scan that decides many rows (check.c). */
void
carm_cache_complete(int64 user_id)
{
	ensure_complete(user_id);
}

/* At least the user's grants on one business (point checks). */
static void
ensure_business(int64 user_id, int64 business_id)
{
	ensure_user(user_id);
	if (!cache.complete && hash_search(cache.businesses, &business_id, HASH_FIND, NULL) == NULL)
	{
		if (cache.partial_pays)
			load_businesses(&business_id, 1);
		else
			load_all();
	}
	else
		carm_count(CARM_STAT_STORE_HITS, 1);
}

/* ---- reading the store ---- */

/*
 * Every grant the user holds on one program (never NULL).  A partial store
 * loads the program's business; a statement that needs many loads (a scan)
 * loads everything instead.
 */
static bool load_small_user_whole(void);

const CarmGrantList *
carm_program_grants(int64 user_id, int64 program_id)
{
	const CarmGrantList *list;

	ensure_user(user_id);
	list = hash_search(cache.programs, &program_id, HASH_FIND, NULL);
	if (list != NULL || cache.complete)
		return list ? list : &empty_list;

	if (!cache.sized && shared_usable() && load_small_user_whole())
	{
		list = hash_search(cache.programs, &program_id, HASH_FIND, NULL);
		return list ? list : &empty_list;
	}
	if (lazy_statement != statement_seq)
	{
		lazy_statement = statement_seq;
		lazy_loads = 0;
	}
	if (!cache.partial_pays ||
		++lazy_loads > LAZY_LOADS_PER_STATEMENT || ++cache.lazy_loads > LAZY_LOADS_PER_STORE)
		load_all();
	else
		(void) run_load(LOAD_PROGRAM_BUSINESS, Int64GetDatum(program_id), NULL, 0);
	list = hash_search(cache.programs, &program_id, HASH_FIND, NULL);
	return list ? list : &empty_list;
}

/*
 * With shared sets, a user who reaches few programs — a provider employee,
 * a client's staff — is loaded whole at the first program a store misses:
 * one set then serves every later read of every backend, whichever program
 * it reads, where loading program by program would miss once per (user,
 * program) in the cluster.  A broad user (a broker's BAM) stays program by
 * program: a point read must not copy 20,000 clients' grants.
 */
#define SMALL_REACH 500

static bool
load_small_user_whole(void)
{
	cache.sized = true;
	if (carm_reach_estimate(cache.user) > SMALL_REACH)
		return false;
	load_all();
	return true;
}

/* Every grant the user holds on one program of a known business (point checks). */
const CarmGrantList *
carm_target_program_grants(int64 user_id, int64 program_id, int64 business_id)
{
	const CarmGrantList *list;

	ensure_business(user_id, business_id);
	list = hash_search(cache.programs, &program_id, HASH_FIND, NULL);
	return list ? list : &empty_list;
}

/* Every business-level grant the user holds on one business (never NULL). */
const CarmGrantList *
carm_business_grants(int64 user_id, int64 business_id)
{
	static CarmGrantList result;
	BusinessEntry *b;

	ensure_business(user_id, business_id);
	b = hash_search(cache.businesses, &business_id, HASH_FIND, NULL);
	result.key = business_id;
	result.business_id = business_id;
	result.ngrants = b ? b->nbiz : 0;
	result.grants = b ? b->biz : NULL;
	return &result;
}

/*
 * Walk every program grant list of the user's complete store; the caller
 * gets the store's generation, which changes whenever its content does.
 */
void
carm_foreach_program(int64 user_id, void (*fn) (const CarmGrantList *, void *), void *arg,
					 uint64 *generation)
{
	HASH_SEQ_STATUS seq;
	CarmGrantList *list;

	ensure_complete(user_id);
	hash_seq_init(&seq, cache.programs);
	while ((list = hash_seq_search(&seq)) != NULL)
		fn(list, arg);
	if (generation)
		*generation = cache.generation;
}

/*
 * Walk the business-level grants of every business of the user's complete
 * store (the list's key is the business id).
 */
void
carm_foreach_business(int64 user_id, void (*fn) (const CarmGrantList *, void *), void *arg)
{
	HASH_SEQ_STATUS seq;
	BusinessEntry *b;
	CarmGrantList list;

	ensure_complete(user_id);
	hash_seq_init(&seq, cache.businesses);
	while ((b = hash_seq_search(&seq)) != NULL)
	{
		list.key = b->business_id;
		list.business_id = b->business_id;
		list.ngrants = b->nbiz;
		list.grants = b->biz;
		fn(&list, arg);
	}
}

/*
 * The store's generation for user_id if it is complete and holds no
 * unapplied invalidation, else 0: what derived tables (visibility.c) and
 * plans may rely on.  Cheap: called for every row.
 */
uint64
carm_cache_generation(int64 user_id)
{
	if (reset_pending || npending > 0 || cache.user != user_id || !cache.complete)
		return 0;
	return cache.generation;
}

/* Bumped by every "everything" invalidation (target.c empties its cache). */
uint64
carm_cache_reset_count(void)
{
	return reset_count;
}

/*
 * The role a grant confers at time 'now'.  R9/V4: once a proxy grant's
 * relationship has expired, a provider BAM holds EXPIRED and everyone else
 * nothing — whether or not maintenance has run.
 */
CarmRole
carm_grant_effective_role(const CarmGrant *g, TimestampTz now)
{
	if (g->source != CARM_SRC_PROXY || now < g->expires_at)
		return g->role;
	return g->provider_bam ? CARM_ROLE_EXPIRED : CARM_ROLE_NONE;
}

/*
 * Number of program accounts, from pg_class.reltuples (planner estimates);
 * 0 while the table has never been vacuumed or analyzed.
 */
int64
carm_total_programs(void)
{
	Oid			nsp = carm_schema_oid(true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("program", nsp) : InvalidOid;
	HeapTuple	tup;
	int64		n = 0;

	if (!OidIsValid(relid))
		return n;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tup))
	{
		n = Max(0, (int64) ((Form_pg_class) GETSTRUCT(tup))->reltuples);
		ReleaseSysCache(tup);
	}
	return n;
}

/*
 * How many program accounts the user reaches, for the planner: exact from
 * a complete store, otherwise estimated once per store from counts of the
 * facts the grants come from (employee scopes, relationships the user
 * manages, assignments, group clients) — cheap, and the same for every
 * function, so planning never loads a broad user's every grant.
 */
/* Count a user's reach (as the extension owner, see carm_reach_estimate). */
static void
read_reach(void *arg)
{
	double	   *reach = arg;
	static SPIPlanPtr slot = NULL;
	Oid			argtype = INT8OID;
	Datum		value = Int64GetDatum(cache.user);
	bool		isnull;
	SPIPlanPtr	plan = carm_owner_plan(&slot,
									   "WITH ratio AS (SELECT greatest(1.0, "
									   "    (SELECT c.reltuples FROM pg_catalog.pg_class c "
									   "     WHERE c.oid = 'carm.program'::pg_catalog.regclass) "
									   "  / greatest(1.0, (SELECT c.reltuples FROM pg_catalog.pg_class c "
									   "     WHERE c.oid = 'carm.business'::pg_catalog.regclass)))::float8 AS r) "
									   "SELECT (SELECT count(*) FROM carm.employee e "
									   "        JOIN carm.program p ON p.business_id = e.business_id "
									   "         AND (e.programs IS NULL OR p.id = ANY (e.programs)) "
									   "        WHERE e.user_id = $1)::float8 "
									   "     + (SELECT coalesce(sum(CASE WHEN r.access_type = 'PROGRAM' "
									   "                 THEN cardinality(r.programs) ELSE ratio.r END), 0) "
									   "        FROM carm.employee e JOIN carm.relationship r "
									   "          ON r.provider_id = e.business_id AND r.status = 'active' "
									   "        WHERE e.user_id = $1 AND e.role IN ('BAM','PAM')) "
									   "     + (SELECT coalesce(sum(coalesce(cardinality(a.programs), ratio.r)), 0) "
									   "        FROM carm.client_assignment a WHERE a.user_id = $1) "
									   "     + (SELECT count(*) FROM carm.group_employee ge "
									   "        JOIN carm.group_client gc ON gc.group_id = ge.group_id "
									   "        WHERE ge.user_id = $1) * ratio.r "
									   "FROM ratio",
									   1, &argtype, true);

	if (SPI_execute_plan(plan, &value, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reach estimate failed");
	*reach = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

double
carm_reach_estimate(int64 user_id)
{
	double		reach = 0;

	ensure_user(user_id);
	if (!cache.partial_pays)
		ensure_complete(user_id);
	if (cache.complete)
		return (double) hash_get_num_entries(cache.programs);
	if (cache.reach_estimate >= 0)
		return cache.reach_estimate;
	if (shared_usable())
	{
		uint64		stamp = carm_shared_position();

		if (!carm_shared_get(CARM_SHARED_REACH, user_id, 0, stamp, NULL, NULL, NULL, &reach,
							 NULL, NULL, 0))
		{
			carm_as_owner(read_reach, &reach);
			carm_shared_put(CARM_SHARED_REACH, user_id, 0, stamp, NULL, 0, 0, reach);
		}
	}
	else
		carm_as_owner(read_reach, &reach);
	cache.reach_estimate = reach;
	return reach;
}
