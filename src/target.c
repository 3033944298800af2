/*
 * target.c — business and program numbers (BN9, BN15) to internal ids, for
 * the point checks.
 *
 * A number's id never changes while the extension exists, so the answers are
 * kept per backend; the cache is emptied whenever the grant cache sees a
 * relevant invalidation (which also covers DROP/CREATE EXTENSION).  Lookups
 * run as the extension owner; only numbers found are remembered, so a number
 * added later is never answered "unknown" from the cache.
 */
#include "carm_deleg.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

typedef struct CarmTargetEntry
{
	char		bn[16];
	CarmTarget	target;
} CarmTargetEntry;

#define TARGETS_MAX 8192

static MemoryContext target_cxt = NULL;
static HTAB *targets = NULL;
static uint64 targets_inval_seen = 0;

typedef struct TargetLookup
{
	const char *bn;
	bool		is_program;
	CarmTarget *target;
	bool		found;
} TargetLookup;

/* Read a number's ids (as the extension owner, through kept plans: a report
 * checks thousands of targets in a row). */
static void
read_target(void *arg)
{
	TargetLookup *l = arg;
	static SPIPlanPtr plans[2] = {NULL, NULL};
	Oid			argtype = TEXTOID;
	Datum		value = CStringGetTextDatum(l->bn);
	bool		isnull;
	SPIPlanPtr	plan = carm_owner_plan(&plans[l->is_program], l->is_program ?
									   "SELECT id, business_id FROM carm.program WHERE bn15 = $1" :
									   "SELECT id, id FROM carm.business WHERE bn9 = $1",
									   1, &argtype, false);

	if (SPI_execute_plan(plan, &value, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "target lookup failed");
	if (SPI_processed == 1)
	{
		l->found = true;
		l->target->is_program = l->is_program;
		l->target->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
		l->target->business_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 2, &isnull));
	}
}

/*
 * Resolve a BN9 or BN15 to its ids, with a per-backend cache: a number's id
 * never changes while the extension exists, but any invalidation (which also
 * covers DROP/CREATE EXTENSION) empties the cache.
 */
void
carm_lookup_target(const char *bn, CarmTarget *target)
{
	size_t		len = strlen(bn);
	bool		is_program = (len == 15);
	CarmTargetEntry *entry;
	char		key[16] = {0};
	TargetLookup lookup;
	bool		found;

	if (len == 15 ? !carm_bn15_is_valid(bn) : (len != 9 || !carm_bn9_is_valid(bn)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid business or program number \"%.32s\"", bn),
				 errhint("A target is a BN9 (nine digits with a check digit) or a BN15 such as 123456782RM0001.")));

	if (target_cxt == NULL)
		target_cxt = AllocSetContextCreate(CacheMemoryContext, "carm_deleg targets",
										   ALLOCSET_SMALL_SIZES);
	/*
	 * Start again after any "everything" invalidation, and when the map
	 * reaches TARGETS_MAX numbers: a pooled backend's memory must not grow
	 * with the accounts it has been asked about (SPEC §11, rev. 1.2).
	 */
	if (targets == NULL || targets_inval_seen != carm_cache_reset_count() ||
		hash_get_num_entries(targets) >= TARGETS_MAX)
	{
		HASHCTL		ctl;

		MemoryContextReset(target_cxt);
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(CarmTargetEntry);
		ctl.hcxt = target_cxt;
		targets = hash_create("carm_deleg targets", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		targets_inval_seen = carm_cache_reset_count();
	}
	memcpy(key, bn, len);
	entry = hash_search(targets, key, HASH_FIND, NULL);
	if (entry)
	{
		*target = entry->target;
		return;
	}

	lookup.bn = bn;
	lookup.is_program = is_program;
	lookup.target = target;
	lookup.found = false;
	carm_as_owner(read_target, &lookup);
	found = lookup.found;

	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("%s %.32s does not exist", is_program ? "program account" : "business", bn)));
	/* only cache what was read in a state no invalidation has overtaken */
	if (targets_inval_seen == carm_cache_reset_count())
	{
		entry = hash_search(targets, key, HASH_ENTER, NULL);
		entry->target = *target;
	}
}
