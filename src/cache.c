/*
 * cache.c — per-backend cache of one user's grants, exact at commit.
 *
 * Design (the pg_cron / acl.c idiom):
 *  - every table that holds delegation state has a statement-level trigger,
 *    carm_internal.invalidate_cache(), that calls CacheInvalidateRelcacheByRelid() on
 *    the anchor relation carm.business;
 *  - relcache invalidations are transactional: other backends receive them
 *    when the change commits, our own backend at the next command, and hot
 *    standbys when they replay the commit record;
 *  - the registered relcache callback only marks the cache stale; the next
 *    check rebuilds it lazily from carm_internal.grants() through one kept SPI plan.
 * Time-based expiry (R9) is not cached: grants keep expires_at and every
 * check compares it with the transaction's time.
 *
 * Rebuilds read with the latest snapshot (carm_read_snapshot()), as the
 * catalog caches do: a rebuild with the transaction's or statement's older
 * snapshot, after the invalidation of a newer commit was processed, would
 * keep a revoked grant past the end of the transaction.
 *
 * One user's grants are cached at a time (the actor's, in practice); a check
 * for another user (carm.user_has_access) simply rebuilds.
 */
#include "carm_deleg.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "access/htup_details.h"
#include "catalog/pg_class.h"

PG_FUNCTION_INFO_V1(carm_invalidate_cache);

static MemoryContext cache_cxt = NULL;
static HTAB *program_grants = NULL;
static HTAB *business_grants = NULL;
static int64 cached_user = 0;
static bool cache_valid = false;
static uint64 inval_count = 0;	/* bumped by every relevant invalidation */
static Oid	anchor_relid = InvalidOid;
static bool cache_complete = false;	/* all grants loaded, not only some businesses' */
static HTAB *loaded_businesses = NULL;	/* businesses loaded while not complete */
static uint64 cache_generation = 0;	/* bumped by every rebuild */

/* the last program looked up, valid for one build of the cache */
static int64 memo_program = 0;
static const CarmGrantList *memo_list = NULL;

/* Relcache callback: mark stale only; never do catalog access here. */
static void
carm_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == anchor_relid || anchor_relid == InvalidOid)
	{
		cache_valid = false;
		inval_count++;
		carm_actor_invalidate_binding();
	}
}

void
carm_cache_init(void)
{
	CacheRegisterRelcacheCallback(carm_relcache_callback, (Datum) 0);
}

static Oid
lookup_anchor(void)
{
	Oid			nsp = carm_schema_oid(true);

	return OidIsValid(nsp) ? get_relname_relid("business", nsp) : InvalidOid;
}

/*
 * carm_internal.invalidate_cache() — AFTER … FOR EACH STATEMENT trigger on every
 * state table: every backend's cache is stale once this transaction commits.
 */
Datum
carm_invalidate_cache(PG_FUNCTION_ARGS)
{
	Oid			anchor = lookup_anchor();

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "carm_internal.invalidate_cache() must be called as a trigger");
	if (OidIsValid(anchor))
		CacheInvalidateRelcacheByRelid(anchor);
	return PointerGetDatum(NULL);
}

static CarmGrantSource
source_from_name(const char *s)
{
	if (strcmp(s, "employee") == 0)
		return CARM_SRC_EMPLOYEE;
	if (strcmp(s, "closed") == 0)
		return CARM_SRC_CLOSED;
	return CARM_SRC_PROXY;
}

/* Append one grant to the list stored under key in htab. */
static void
add_grant(HTAB *htab, int64 key, const CarmGrant *g)
{
	bool		found;
	CarmGrantList *list = hash_search(htab, &key, HASH_ENTER, &found);

	if (!found)
	{
		list->ngrants = 0;
		list->grants = MemoryContextAlloc(cache_cxt, sizeof(CarmGrant) * 2);
	}
	else if ((list->ngrants & (list->ngrants - 1)) == 0 && list->ngrants >= 2)
		list->grants = repalloc(list->grants, sizeof(CarmGrant) * list->ngrants * 2);
	list->grants[list->ngrants++] = *g;
}

static HTAB *
new_table(const char *name)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(CarmGrantList);
	ctl.hcxt = cache_cxt;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * Start an empty cache for user_id.  It is valid from now on, until the
 * relcache callback says otherwise (also while a load below is reading:
 * an invalidation that arrives then leaves the cache stale).
 */
static void
reset_cache(int64 user_id)
{
	HASHCTL		ctl;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "carm_deleg grants",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(cache_cxt);
	program_grants = new_table("carm_deleg program grants");
	business_grants = new_table("carm_deleg business grants");
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(int64);
	ctl.hcxt = cache_cxt;
	loaded_businesses = hash_create("carm_deleg loaded businesses", 16, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	memo_list = NULL;
	cache_complete = false;
	cache_generation++;

	anchor_relid = lookup_anchor();
	if (!OidIsValid(anchor_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension carm_deleg is not installed in this database")));
	cached_user = user_id;
	cache_valid = true;
}

/* One kept plan per query shape: all of a user's grants, or one business's. */
static SPIPlanPtr
grants_plan(bool one_business)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Oid			argtypes[2] = {INT8OID, INT8OID};

	if (plans[one_business] == NULL)
	{
		/*
		 * A generic plan: every parameter is an equality on an indexed key,
		 * and replanning the inlined resolver would cost more than running it.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(one_business ?
									   "SELECT business_id, program_id, role, source, provider_bam, "
									   "via_business_id, see_client, see_other, all_programs, expires_at "
									   "FROM carm_internal.grants($1) WHERE business_id = $2" :
									   "SELECT business_id, program_id, role, source, provider_bam, "
									   "via_business_id, see_client, see_other, all_programs, expires_at "
									   "FROM carm_internal.grants($1)",
									   one_business ? 2 : 1, argtypes,
									   CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		plans[one_business] = plan;
	}
	return plans[one_business];
}

/*
 * Load the user's grants from carm_internal.grants(): all of them (business_id 0),
 * or only those on one business, which is what a point check needs and costs
 * the same whatever the user's reach (a provider employee may hold grants on
 * thousands of clients).
 */
static void
load_grants(int64 user_id, int64 business_id)
{
	CarmOwnerSave save;

	carm_become_owner(&save);
	PG_TRY();
	{
		Datum		args[2] = {Int64GetDatum(user_id), Int64GetDatum(business_id)};

		SPI_connect();
		/* the latest snapshot, not the caller's: see carm_read_snapshot() */
		if (SPI_execute_snapshot(grants_plan(business_id != 0), args, NULL,
								 carm_read_snapshot(), InvalidSnapshot,
								 true, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "carm_internal.grants() failed");

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			bool		program_null;
			CarmGrant	g;
			int64		program_id;
			Datum		d;
			char	   *role;

			g.business_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			program_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &program_null));
			role = SPI_getvalue(tup, desc, 3);
			g.role = carm_role_from_name(role);
			g.source = source_from_name(SPI_getvalue(tup, desc, 4));
			g.provider_bam = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
			g.via_business_id = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
			g.see_client = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
			g.see_other = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
			g.all_programs = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
			d = SPI_getbinval(tup, desc, 10, &isnull);
			g.expires_at = isnull ? DT_NOEND : DatumGetTimestampTz(d);
			if (g.role == CARM_ROLE_NONE)
				elog(ERROR, "unexpected role \"%s\" from carm_internal.grants()", role);

			if (program_null)
				add_grant(business_grants, g.business_id, &g);
			else
				add_grant(program_grants, program_id, &g);
		}
		SPI_finish();
	}
	PG_CATCH();
	{
		carm_restore_user(&save);
		cache_valid = false;	/* half loaded: start again next time */
		PG_RE_THROW();
	}
	PG_END_TRY();
	carm_restore_user(&save);

	memo_list = NULL;
	cache_generation++;
	if (business_id == 0)
		cache_complete = true;
	else
		(void) hash_search(loaded_businesses, &business_id, HASH_ENTER, NULL);
}

/* All of the user's grants (row checks, the index condition). */
static void
ensure_cache(int64 user_id)
{
	if (!cache_valid || cached_user != user_id || program_grants == NULL)
		reset_cache(user_id);
	if (!cache_complete)
	{
		/* a partial cache may hold some businesses already: start clean */
		if (hash_get_num_entries(loaded_businesses) > 0)
			reset_cache(user_id);
		load_grants(user_id, 0);
	}
}

/* At least the user's grants on one business (point checks). */
static void
ensure_business(int64 user_id, int64 business_id)
{
	if (!cache_valid || cached_user != user_id || program_grants == NULL)
		reset_cache(user_id);
	if (!cache_complete && hash_search(loaded_businesses, &business_id, HASH_FIND, NULL) == NULL)
		load_grants(user_id, business_id);
}

static const CarmGrantList empty_list = {0, 0, NULL};
static const CarmGrantList *lookup_program(int64 program_id);

/*
 * Every grant the user holds on one program (never NULL).  Scans meet the
 * rows of one program in runs, so the last answer is remembered.
 */
const CarmGrantList *
carm_program_grants(int64 user_id, int64 program_id)
{
	ensure_cache(user_id);
	return lookup_program(program_id);
}

/* Every grant the user holds on one program of a known business (point checks). */
const CarmGrantList *
carm_target_program_grants(int64 user_id, int64 program_id, int64 business_id)
{
	ensure_business(user_id, business_id);
	return lookup_program(program_id);
}

static const CarmGrantList *
lookup_program(int64 program_id)
{
	const CarmGrantList *list;

	if (memo_list != NULL && memo_program == program_id)
		return memo_list;
	list = hash_search(program_grants, &program_id, HASH_FIND, NULL);
	memo_program = program_id;
	memo_list = list ? list : &empty_list;
	return memo_list;
}

/* Every business-level grant the user holds on one business (never NULL). */
const CarmGrantList *
carm_business_grants(int64 user_id, int64 business_id)
{
	const CarmGrantList *list;

	ensure_business(user_id, business_id);
	list = hash_search(business_grants, &business_id, HASH_FIND, NULL);
	return list ? list : &empty_list;
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
 * Programs on which some grant gives at least this level on fn.  With
 * CARM_LEVEL_VIEW, and ignoring who submitted a row, it is the superset of
 * programs with a visible row that the planner turns into an index condition.
 * Palloc'd in the caller's context.
 */
int64 *
carm_visible_programs(int64 user_id, CarmFunction fn, CarmLevel level, int *count)
{
	HASH_SEQ_STATUS seq;
	CarmGrantList *list;
	int64	   *result;
	int			n = 0;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	ensure_cache(user_id);
	result = palloc(sizeof(int64) * (hash_get_num_entries(program_grants) + 1));
	hash_seq_init(&seq, program_grants);
	while ((list = hash_seq_search(&seq)) != NULL)
	{
		for (int i = 0; i < list->ngrants; i++)
		{
			if (carm_role_level(carm_grant_effective_role(&list->grants[i], now), fn) >= level)
			{
				result[n++] = list->key;
				break;
			}
		}
	}
	*count = n;
	return result;
}

/* Number of program accounts, from pg_class.reltuples (planner estimate). */
int64
carm_total_programs(void)
{
	Oid			nsp = carm_schema_oid(true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("program", nsp) : InvalidOid;
	HeapTuple	tup;
	int64		n = 1;

	if (!OidIsValid(relid))
		return n;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (HeapTupleIsValid(tup))
	{
		n = Max(1, (int64) ((Form_pg_class) GETSTRUCT(tup))->reltuples);
		ReleaseSysCache(tup);
	}
	return n;
}

/*
 * The cache build a row-check memo may rely on: 0 while the cache is stale
 * (the next check rebuilds it), else a number that changes at every rebuild.
 */
uint64
carm_cache_generation(int64 user_id)
{
	return (cache_valid && cache_complete && cached_user == user_id) ? cache_generation : 0;
}

/* Number of relevant invalidations so far (target.c empties its cache on a change). */
uint64
carm_cache_inval_count(void)
{
	return inval_count;
}
