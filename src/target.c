/*
 * target.c — business and program numbers (BN9, BN15) to internal ids: the
 * one lookup, with its messages, for the point checks and for SQL
 * (carm_internal.number_id, behind carm.business_id, carm.program_id and
 * carm_internal.business; carm_internal.target, behind the reports).
 *
 * A number's id never changes while the extension exists, so the answers are
 * kept per backend; the cache is emptied whenever the grant cache sees a
 * relevant invalidation (which also covers DROP/CREATE EXTENSION).  Lookups
 * run as the extension owner; only numbers found are remembered, so a number
 * added later is never answered "unknown" from the cache.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
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
 * 22004 when bn is NULL (SPEC §10 rev. 1.2), 22023 unless it is a
 * well-formed number of the kind asked for.
 */
static void
check_number(const char *bn, CarmNumberKind kind)
{
	size_t		len = bn ? strlen(bn) : 0;
	bool		bn9 = bn != NULL && len == 9 && carm_bn9_is_valid(bn);
	bool		bn15 = bn != NULL && len == 15 && carm_bn15_is_valid(bn);
	const char *shown = bn ? bn : "<NULL>";

	if (bn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null",
						kind == CARM_NUMBER_BUSINESS ? "business number" :
						kind == CARM_NUMBER_PROGRAM ? "program account number" :
						"target")));

	if (kind == CARM_NUMBER_BUSINESS && !bn9)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid business number \"%.32s\"", shown),
				 errhint("A BN9 is nine digits, the last a check digit.")));
	if (kind == CARM_NUMBER_PROGRAM && !bn15)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid program account number \"%.32s\"", shown),
				 errhint("A BN15 is a BN9, RM and four digits, e.g. 123456782RM0001.")));
	if (!bn9 && !bn15)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid business or program number \"%.32s\"", shown),
				 errhint("A target is a BN9 (nine digits with a check digit) or a BN15 such as 123456782RM0001.")));
}

/*
 * Resolve a BN9 or BN15 (NULL: 22004) to its ids, with a per-backend cache:
 * a number's id never changes while the extension exists, but any
 * invalidation (which also covers DROP/CREATE EXTENSION) empties the cache.
 * kind: which numbers are accepted (22023 for another); P0002 when unknown.
 */
void
carm_lookup_target(const char *bn, CarmNumberKind kind, CarmTarget *target)
{
	size_t		len;
	bool		is_program;
	CarmTargetEntry *entry;
	char		key[16] = {0};
	TargetLookup lookup;
	bool		found;

	check_number(bn, kind);
	len = strlen(bn);
	is_program = (len == 15);

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

static CarmNumberKind
kind_arg(FunctionCallInfo fcinfo, int argno)
{
	const char *k = PG_ARGISNULL(argno) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(argno));

	if (strcmp(k, "business") == 0)
		return CARM_NUMBER_BUSINESS;
	if (strcmp(k, "program") == 0)
		return CARM_NUMBER_PROGRAM;
	elog(ERROR, "unknown number kind \"%s\"", k);
	pg_unreachable();
}

PG_FUNCTION_INFO_V1(carm_number_id);
PG_FUNCTION_INFO_V1(carm_target_sql);

/*
 * carm_internal.number_id(number text, kind text) RETURNS bigint: the id of
 * the business ('business', a BN9) or program account ('program', a BN15);
 * 22004 NULL, 22023 malformed, P0002 unknown.
 */
Datum
carm_number_id(PG_FUNCTION_ARGS)
{
	CarmTarget	t;

	carm_lookup_target(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
					   kind_arg(fcinfo, 1), &t);
	PG_RETURN_INT64(t.id);
}

/*
 * carm_internal.target(target text, OUT business_id bigint, OUT program_id
 * bigint): the business and program (NULL for a BN9) a target names, as the
 * point checks resolve it; 22004 NULL, 22023 malformed, P0002 unknown.
 */
Datum
carm_target_sql(PG_FUNCTION_ARGS)
{
	CarmTarget	t;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	carm_lookup_target(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
					   CARM_NUMBER_ANY, &t);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "carm_internal.target must return a record");
	desc = BlessTupleDesc(desc);
	values[0] = Int64GetDatum(t.business_id);
	values[1] = Int64GetDatum(t.id);
	nulls[1] = !t.is_program;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
