/*
 * check.c — the row-level-security decisions behind carm.protect() (V1-V5);
 * the point checks (§8) are in point.c.
 *
 * Both read the per-backend grant store (cache.c), which follows the
 * statement's snapshot (SPEC §8), and compare expiry with the time of the
 * statement (carm_decision_time(), statement_timestamp(): SPEC §10 rev. 1.2,
 * R9 per statement), so a transaction open across an expiry loses reads and
 * writes at its next statement, whether or not maintenance has run.
 *
 * The row functions never raise for a row: a NULL program or submitter, or an
 * absent actor, simply means "not visible".  They are STABLE and PARALLEL
 * SAFE; the actor reaches parallel workers through the carm_deleg.actor
 * setting, and the decision is taken at execution time, so a cached plan
 * reused for another actor decides for that actor.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "access/relation.h"
#include "catalog/partition.h"
#include "nodes/primnodes.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(carm_row_visible);
PG_FUNCTION_INFO_V1(carm_row_visible_by_grants);
PG_FUNCTION_INFO_V1(carm_row_writable);
PG_FUNCTION_INFO_V1(carm_visible_programs_sql);
PG_FUNCTION_INFO_V1(carm_fill_submitter);
PG_FUNCTION_INFO_V1(carm_check_write);

/* ---- row-level security ---- */

/*
 * Per-call-site state of a row check, kept in fn_extra.  The function
 * argument is a constant in every policy, so it is parsed once; the
 * decision table of that function for the actor is kept while it stays
 * valid (carm_vis_table_valid: same actor, same store generation, no
 * expiry crossed), so a row costs a table probe.  A non-constant function
 * argument is parsed for every row.
 */
#define ROWS_BEFORE_COMPLETE 256

typedef struct RowCheckState
{
	CarmFunction fn;
	bool		fn_constant;
	const CarmVisTable *table;	/* for 'actor', or NULL */
	int64		actor;
	uint64		epoch;			/* carm_decision_epoch when table was validated */
	uint32		slow_rows;		/* rows decided from the grants in this scan */
} RowCheckState;

static RowCheckState *
row_state(FunctionCallInfo fcinfo, int argno)
{
	RowCheckState *st = (RowCheckState *) fcinfo->flinfo->fn_extra;

	if (st == NULL)
	{
		st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(RowCheckState));
		st->fn_constant = get_fn_expr_arg_stable(fcinfo->flinfo, argno);
		if (st->fn_constant)
			st->fn = carm_function_from_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
		fcinfo->flinfo->fn_extra = st;
	}
	if (!st->fn_constant)
	{
		st->fn = carm_function_from_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
		st->table = NULL;
	}
	return st;
}

/*
 * V1-V4 for one grant: what it lets the actor see of its program's rows, at
 * time now.  CARM_VIS_ALL: every row (V1, the client's employees);
 * otherwise CARM_VIS_VIA: rows its acting business submitted (V2(a), V3,
 * V4), plus CARM_VIS_CLIENT_OK (V2(b)) and CARM_VIS_OTHER_OK (V2(c), never
 * for rulings) unless it is a V3/V4 path; 0: nothing.  The one rule of row
 * visibility: row_visible() and the decision table (visibility.c) are both
 * made of it.
 */
uint8
carm_grant_row_flags(const CarmGrant *g, CarmFunction fn, TimestampTz now)
{
	CarmRole	role = carm_grant_effective_role(g, now);
	uint8		flags;

	if (carm_role_level(role, fn) < CARM_LEVEL_VIEW)
		return 0;
	if (g->source == CARM_SRC_EMPLOYEE)
		return CARM_VIS_ALL;
	flags = CARM_VIS_VIA;
	if (role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR)
		return flags;			/* V3, V4: nothing else */
	if (g->see_client)
		flags |= CARM_VIS_CLIENT_OK;
	if (g->see_other && fn != CARM_FN_RULINGS)
		flags |= CARM_VIS_OTHER_OK;
	return flags;
}

/*
 * V1-V4 from the grants themselves: may the actor see a row of this program
 * submitted by this business?  The decision table (visibility.c) answers
 * the same question faster; this is the reference, used where no complete
 * store is at hand (a point read in a new session) and for the rare program
 * reached through several acting businesses.
 * test/pgtap/visibility_property.sql compares the two on a generated world.
 */
static bool
row_visible(int64 actor, int64 program_id, int64 submitter, CarmFunction fn)
{
	const CarmGrantList *list = carm_program_grants(actor, program_id);
	TimestampTz now;

	if (list->ngrants == 0)
		return false;
	now = carm_decision_time();
	for (int i = 0; i < list->ngrants; i++)
	{
		const CarmGrant *g = &list->grants[i];
		uint8		flags = carm_grant_row_flags(g, fn, now);

		if (flags & CARM_VIS_ALL)
			return true;
		if (!(flags & CARM_VIS_VIA))
			continue;
		if (submitter == g->via_business_id)
			return true;
		if (flags & (submitter == g->business_id ? CARM_VIS_CLIENT_OK : CARM_VIS_OTHER_OK))
			return true;
	}
	return false;
}

/*
 * V5: may the actor write (insert, or update/delete) a row of this program
 * submitted by this business?  Needs edit through a grant whose acting
 * business is the submitter (with fill, the trigger asks which business the
 * actor would write as, whatever the row says).  Returns that grant's acting
 * business, or 0.
 */
static int64
row_writer(int64 actor, int64 on_behalf_of, int64 program_id, int64 submitter, bool fill,
		   CarmFunction fn)
{
	const CarmGrantList *list = carm_program_grants(actor, program_id);
	TimestampTz now = carm_decision_time();

	/* employee grants first: a client employee acts for the client */
	for (int pass = 0; pass < 2; pass++)
	{
		for (int i = 0; i < list->ngrants; i++)
		{
			const CarmGrant *g = &list->grants[i];
			CarmRole	role = carm_grant_effective_role(g, now);

			if ((g->source == CARM_SRC_EMPLOYEE) != (pass == 0))
				continue;
			if (role == CARM_ROLE_EXPIRED || role == CARM_ROLE_SPMGR ||
				carm_role_level(role, fn) < CARM_LEVEL_EDIT)
				continue;
			if (on_behalf_of != 0 && g->via_business_id != on_behalf_of)
				continue;
			if (fill || submitter == g->via_business_id)
				return g->via_business_id;
		}
	}
	return 0;
}

/*
 * A read of a protected table with no acting user shows no rows.  With
 * carm_deleg.require_actor on (for development) it raises 42501 instead,
 * at the first row checked or when the scan computes its programs, which
 * ends the statement: one error per statement, and nothing costs more per
 * row than reading the setting.  Only where the policies apply (never to
 * superusers or BYPASSRLS roles, which read the table unfiltered).
 */
bool		carm_require_actor_reads = false;

static void
read_without_actor(void)
{
	if (carm_require_actor_reads)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no acting user"),
				 errdetail("A protected table was read with no acting user; carm_deleg.require_actor is on."),
				 errhint("A member of carm_gateway must call carm.set_actor() first, in the same transaction.")));
}

/* carm_internal.row_visible(program bigint, submitter bigint, function text) */
Datum
carm_row_visible(PG_FUNCTION_ARGS)
{
	RowCheckState *st = (RowCheckState *) fcinfo->flinfo->fn_extra;
	int64		actor,
				program_id,
				submitter;
	int			d;

	/* NULL-safe (§8), the function argument too: row_state() reads it */
	carm_count(CARM_STAT_ROW_CHECKS, 1);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	program_id = PG_GETARG_INT64(0);
	submitter = PG_GETARG_INT64(1);

	/* the scan's path: the same actor and table as for the previous row */
	if (likely(st != NULL && st->table != NULL && st->epoch == carm_decision_epoch &&
			   st->actor == carm_actor_uid && st->actor != 0 && st->fn_constant))
	{
		d = carm_vis_decide(st->table, program_id, submitter);
		if (d >= 0)
			PG_RETURN_BOOL(d);
		PG_RETURN_BOOL(row_visible(st->actor, program_id, submitter, st->fn));
	}

	st = row_state(fcinfo, 2);
	actor = carm_current_actor(NULL);
	if (actor == 0)
	{
		read_without_actor();
		PG_RETURN_BOOL(false);
	}
	st->table = NULL;
	/*
	 * A complete store is worth deriving a table from; a partial one (a point
	 * read in a new session) is asked directly, and a statement that keeps
	 * meeting unloaded programs completes it (cache.c).
	 */
	/*
	 * A scan that has decided this many rows from a partial store (one
	 * program's rows, say) is worth completing it: the table then decides
	 * each row with an array lookup.
	 */
	if (carm_cache_generation(actor) == 0 && ++st->slow_rows > ROWS_BEFORE_COMPLETE)
		carm_cache_complete(actor);
	if (carm_cache_generation(actor) != 0)
	{
		st->table = carm_vis_table(actor, st->fn);
		st->actor = actor;
		st->epoch = carm_decision_epoch;
		d = carm_vis_decide(st->table, program_id, submitter);
		if (d >= 0)
			PG_RETURN_BOOL(d);
	}
	PG_RETURN_BOOL(row_visible(actor, program_id, submitter, st->fn));
}

/*
 * carm_internal.row_visible_by_grants(program bigint, submitter bigint,
 * function text): row_visible() for the actor, never through a decision
 * table — the reference the tables are compared with
 * (test/pgtap/visibility_property.sql).  NULL-safe like row_visible.
 */
Datum
carm_row_visible_by_grants(PG_FUNCTION_ARGS)
{
	int64		actor;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	actor = carm_current_actor(NULL);
	if (actor == 0)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(row_visible(actor, PG_GETARG_INT64(0), PG_GETARG_INT64(1),
							   carm_function_from_name(text_to_cstring(PG_GETARG_TEXT_PP(2)))));
}

/* carm_internal.row_writable(program bigint, submitter bigint, function text) */
Datum
carm_row_writable(PG_FUNCTION_ARGS)
{
	RowCheckState *st;
	int64		actor,
				on_behalf_of;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_BOOL(false);
	st = row_state(fcinfo, 2);
	actor = carm_current_actor(&on_behalf_of);
	if (actor == 0)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(row_writer(actor, on_behalf_of, PG_GETARG_INT64(0), PG_GETARG_INT64(1),
							  false, st->fn) != 0);
}

/* A bigint[] of ids (visible_programs, and point.c's accessible ids). */
ArrayType *
carm_id_array(const int64 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(ids[i]);
	return construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * carm_internal.visible_programs(function text) — the programs where the
 * actor may see some row: the runtime side of the index condition
 * (planner.c), evaluated once per scan for the executing actor.
 */
Datum
carm_visible_programs_sql(PG_FUNCTION_ARGS)
{
	int64		actor;
	int			n = 0;
	int64	   *ids = NULL;
	CarmFunction fn;

	if (PG_ARGISNULL(0))
		PG_RETURN_ARRAYTYPE_P(carm_id_array(NULL, 0));	/* NULL function: no program */
	fn = row_state(fcinfo, 0)->fn;
	actor = carm_current_actor(NULL);
	if (actor != 0)
		ids = carm_vis_table_programs(carm_vis_table(actor, fn), &n);
	else
		read_without_actor();
	PG_RETURN_ARRAYTYPE_P(carm_id_array(ids, n));
}

/*
 * The program and submitter columns and the function of a protected
 * relation, read from its own carm_insert policy in the relcache, whose
 * WITH CHECK is carm_internal.row_writable(program Var, submitter Var,
 * 'function').  Policies follow column and table renames, and each
 * partition's policy carries that partition's attribute numbers, so this
 * needs neither names nor a catalog query.  False when the relation has no
 * such policy (row-level security disabled, or the table unprotected).
 */
static bool
protected_columns(Relation rel, AttrNumber *prog_att, AttrNumber *sub_att, CarmFunction *fn)
{
	ListCell   *lc;

	if (rel->rd_rsdesc == NULL)
		return false;
	foreach(lc, rel->rd_rsdesc->policies)
	{
		RowSecurityPolicy *pol = (RowSecurityPolicy *) lfirst(lc);
		FuncExpr   *call = (FuncExpr *) pol->with_check_qual;
		Node	   *prog,
				   *sub,
				   *func;

		if (pol->polcmd != ACL_INSERT_CHR || strcmp(pol->policy_name, "carm_insert") != 0 ||
			call == NULL || !IsA(call, FuncExpr) || list_length(call->args) != 3)
			continue;
		prog = linitial(call->args);
		sub = lsecond(call->args);
		func = lthird(call->args);
		if (!IsA(prog, Var) || !IsA(sub, Var) || !IsA(func, Const) || ((Const *) func)->constisnull)
			continue;
		*prog_att = ((Var *) prog)->varattno;
		*sub_att = ((Var *) sub)->varattno;
		*fn = carm_function_from_name(TextDatumGetCString(((Const *) func)->constvalue));
		return true;
	}
	return false;
}

/*
 * protected_columns() of a partition that has no policies of its own yet
 * (created or attached after protect()): the nearest protected ancestor's,
 * mapped to this partition's attribute numbers by name (a rename of the
 * parent's column renames the partitions' too).
 */
static bool
protected_columns_inherited(Relation rel, AttrNumber *prog_att, AttrNumber *sub_att,
							CarmFunction *fn)
{
	Oid			parentid;
	Relation	parent;
	bool		found;
	char	   *prog_name = NULL;
	char	   *sub_name = NULL;

	if (protected_columns(rel, prog_att, sub_att, fn))
		return true;
	if (!rel->rd_rel->relispartition)
		return false;
	parentid = get_partition_parent(RelationGetRelid(rel), false);
	parent = relation_open(parentid, AccessShareLock);
	found = protected_columns_inherited(parent, prog_att, sub_att, fn);
	if (found)
	{
		prog_name = get_attname(parentid, *prog_att, true);
		sub_name = get_attname(parentid, *sub_att, true);
	}
	relation_close(parent, AccessShareLock);
	if (!found || prog_name == NULL || sub_name == NULL)
		return false;
	*prog_att = get_attnum(RelationGetRelid(rel), prog_name);
	*sub_att = get_attnum(RelationGetRelid(rel), sub_name);
	return *prog_att != InvalidAttrNumber && *sub_att != InvalidAttrNumber;
}

/* V5 refused: 42501 with the failed condition (SPEC §8), before the policy's generic message. */
static void
refuse_write(Relation rel, const char *detail_fmt, ...) pg_attribute_printf(2, 3);

static void
refuse_write(Relation rel, const char *detail_fmt,...)
{
	char		detail[256];
	va_list		args;

	va_start(args, detail_fmt);
	vsnprintf(detail, sizeof(detail), detail_fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("new row violates row-level security policy for table \"%s\"",
					RelationGetRelationName(rel)),
			 errdetail_internal("%s", detail)));
}

/*
 * The numbers a refusal names (SPEC §10 rev. 1.2): a program account's BN15
 * and businesses' BN9, looked up from their ids as the extension owner, on
 * the error path only.  Empty for an id that names nothing (a row's columns
 * may hold any bigint).
 */
typedef struct NumbersLookup
{
	int64		program_id;
	int64		business_ids[2];
	char		bn15[16];
	char		bn9[2][10];
} NumbersLookup;

static void
read_numbers(void *arg)
{
	NumbersLookup *l = arg;
	static SPIPlanPtr slot = NULL;
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3] = {Int64GetDatum(l->program_id), Int64GetDatum(l->business_ids[0]),
	Int64GetDatum(l->business_ids[1])};
	SPIPlanPtr	plan = carm_owner_plan(&slot,
									   "SELECT (SELECT p.bn15 FROM carm.program p WHERE p.id = $1), "
									   "(SELECT b.bn9 FROM carm.business b WHERE b.id = $2), "
									   "(SELECT b.bn9 FROM carm.business b WHERE b.id = $3)",
									   3, types, false);
	char	   *out[3] = {l->bn15, l->bn9[0], l->bn9[1]};
	int			sizes[3] = {sizeof(l->bn15), sizeof(l->bn9[0]), sizeof(l->bn9[1])};

	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "number lookup failed");
	for (int i = 0; i < 3; i++)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1);

		strlcpy(out[i], v ? v : "", sizes[i]);
	}
}

/* The BN15 of program_id and the BN9s of two businesses (0: none), into l. */
static void
lookup_numbers(NumbersLookup *l, int64 program_id, int64 business_a, int64 business_b)
{
	l->program_id = program_id;
	l->business_ids[0] = business_a;
	l->business_ids[1] = business_b;
	carm_as_owner(read_numbers, l);
}

/*
 * The row trigger of protected tables.  On INSERT a NULL submitter becomes
 * the actor's acting business for the row's program (V5).  With check set
 * (carm_internal.check_write, BEFORE INSERT OR UPDATE), a new row the
 * policy would refuse is refused here first with the condition that failed:
 * no acting user; no edit on the business function for that program; the submitter
 * is not the business the actor writes as.  Only where row-level security
 * applies to the current user for this relation: superusers, BYPASSRLS roles
 * and the owner of a table without FORCE are not filtered, so not refused.
 */
static Datum
protected_row_trigger(FunctionCallInfo fcinfo, bool check)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	tuple;
	AttrNumber	prog_att,
				sub_att;
	CarmFunction fn;
	bool		is_insert;
	bool		prog_null,
				sub_null;
	Datum		prog,
				sub;
	int64		actor,
				on_behalf_of,
				writer = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || (check && TRIGGER_FIRED_BY_UPDATE(td->tg_event))))
		elog(ERROR, "%s must be a BEFORE row trigger of a protected table",
			 check ? "carm_internal.check_write()" : "carm_internal.fill_submitter()");

	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	is_insert = TRIGGER_FIRED_BY_INSERT(td->tg_event);
	tuple = is_insert ? td->tg_trigtuple : td->tg_newtuple;
	if (!protected_columns_inherited(rel, &prog_att, &sub_att, &fn) ||
		prog_att <= 0 || prog_att > desc->natts || sub_att <= 0 || sub_att > desc->natts)
		return PointerGetDatum(tuple);

	actor = carm_current_actor(&on_behalf_of);
	prog = heap_getattr(tuple, prog_att, desc, &prog_null);
	sub = heap_getattr(tuple, sub_att, desc, &sub_null);

	if (actor != 0 && !prog_null)
		writer = row_writer(actor, on_behalf_of, DatumGetInt64(prog), 0, true, fn);
	if (is_insert && sub_null && writer != 0)
	{
		Datum		value = Int64GetDatum(writer);
		bool		replace_null = false;
		int			col = sub_att;

		tuple = heap_modify_tuple_by_cols(tuple, desc, 1, &col, &value, &replace_null);
		sub = value;
		sub_null = false;
	}

	if (!check || check_enable_rls(RelationGetRelid(rel), InvalidOid, true) != RLS_ENABLED)
		return PointerGetDatum(tuple);
	if (actor == 0)
		refuse_write(rel, "No acting user: carm.set_actor() was not called.");
	if (prog_null)
		refuse_write(rel, "The row names no program account.");
	/* the refusals below name numbers, never internal ids (SPEC §10 rev. 1.2) */
	if (writer == 0)
	{
		NumbersLookup n;

		lookup_numbers(&n, DatumGetInt64(prog), on_behalf_of, 0);
		if (n.bn15[0] == '\0')
			refuse_write(rel, "The row's program column names no program account.");
		if (on_behalf_of != 0)
			refuse_write(rel, "The acting user, acting for business %s, holds no edit on business function %s for program account %s.",
						 n.bn9[0], carm_function_name(fn), n.bn15);
		refuse_write(rel, "The acting user holds no edit on business function %s for program account %s.",
					 carm_function_name(fn), n.bn15);
	}
	if (sub_null)
	{
		NumbersLookup n;

		lookup_numbers(&n, DatumGetInt64(prog), writer, 0);
		refuse_write(rel, "The row names no submitter; the acting user writes program account %s as business %s.",
					 n.bn15, n.bn9[0]);
	}
	if (row_writer(actor, on_behalf_of, DatumGetInt64(prog), DatumGetInt64(sub), false, fn) == 0)
	{
		NumbersLookup n;

		lookup_numbers(&n, DatumGetInt64(prog), DatumGetInt64(sub), writer);
		if (n.bn9[0][0] == '\0')
			refuse_write(rel, "The row's submitter column names no business; the acting user writes program account %s as business %s.",
						 n.bn15, n.bn9[1]);
		refuse_write(rel, "The submitter, business %s, is not the acting business of the acting user for program account %s (business %s).",
					 n.bn9[0], n.bn15, n.bn9[1]);
	}
	return PointerGetDatum(tuple);
}

/*
 * carm_internal.check_write() — the BEFORE INSERT OR UPDATE row trigger
 * carm.protect() installs (carm_check_write): fills the submitter and
 * refuses a V5 write with its reason.
 */
Datum
carm_check_write(PG_FUNCTION_ARGS)
{
	return protected_row_trigger(fcinfo, true);
}

/*
 * The 1.0 trigger function (BEFORE INSERT, carm_fill_submitter); 1.1
 * replaces those triggers with carm_check_write.  Kept, rename-proof, for a
 * 1.0 database running this library until ALTER EXTENSION UPDATE.
 */
Datum
carm_fill_submitter(PG_FUNCTION_ARGS)
{
	return protected_row_trigger(fcinfo, false);
}
