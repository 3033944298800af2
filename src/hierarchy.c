/*
 * hierarchy.c — row triggers on carm.employee enforcing the employee rules
 * (SPEC §4) for every write, whether it comes from the API or not.
 *
 *   carm_internal.employee_guard()  BEFORE INSERT OR UPDATE OR DELETE
 *       E5  a valid role; a BAM holds all programs; a listed scope is
 *           non-empty, without NULLs, and only of this business (22023);
 *       E6  nobody changes, removes or approves their own access (42501),
 *           except E1's self-registration as the first BAM of a business;
 *       E7  (E3, E8) the hierarchy BAM > PAM > EDITOR/VIEWER (42501).
 *   carm_internal.employee_bams()   AFTER INSERT OR UPDATE OR DELETE
 *       E9  a business that has a BAM keeps one (23514);
 *       E10 a change that leaves exactly one BAM warns.
 *
 * E6 and E7 apply only when an actor is set (carm.actor()): the extension
 * owner writing directly, maintenance or pg_restore is trusted and only the
 * invariants E5 and E9 apply (E5's "programs of this business" then only
 * refuses programs of another business: see check_programs_of_business).
 *
 * Locking (E9, and E1's "first user"): before counting the BAMs of a
 * business, the trigger UPDATEs that business's bam_version.  Two
 * transactions removing BAMs of one business therefore queue on the business
 * row.  Under READ COMMITTED the second one, once the first has committed,
 * counts again with a fresh snapshot (SPI takes a new snapshot per
 * statement) and sees the other removal; under REPEATABLE READ and
 * SERIALIZABLE its UPDATE fails with a serialization error instead.  Either
 * way two BAMs cannot demote each other and leave none.
 *
 * Internal queries run as the extension owner (owner.c) through kept SPI
 * plans; a plan survives DROP/CREATE EXTENSION because the plan cache
 * re-resolves the schema-qualified names when the tables change.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(carm_employee_guard);
PG_FUNCTION_INFO_V1(carm_employee_bams);

/* One carm.employee row, as the triggers need it. */
typedef struct EmployeeRow
{
	bool		valid;			/* business_id and user_id are both set */
	int64		business_id;
	int64		user_id;
	char	   *role_name;		/* NULL when the column is NULL */
	CarmRole	role;			/* CARM_ROLE_NONE when unknown */
	bool		all_programs;	/* programs IS NULL (E5, E12) */
	ArrayType  *programs_array;
	int			nprograms;
	int64	   *programs;
	bool		program_nulls;	/* the list holds a NULL */
	int			program_ndim;
} EmployeeRow;

/* ---- reading rows ---- */

static int
column(Relation rel, const char *name)
{
	int			att = SPI_fnumber(RelationGetDescr(rel), name);

	if (att <= 0)
		elog(ERROR, "carm.employee has no column \"%s\"", name);
	return att;
}

static void
read_row(Relation rel, HeapTuple tuple, EmployeeRow *row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		bnull,
				unull,
				isnull;
	Datum		d;

	memset(row, 0, sizeof(*row));
	row->business_id = DatumGetInt64(heap_getattr(tuple, column(rel, "business_id"), desc, &bnull));
	row->user_id = DatumGetInt64(heap_getattr(tuple, column(rel, "user_id"), desc, &unull));
	row->valid = !bnull && !unull;

	d = heap_getattr(tuple, column(rel, "role"), desc, &isnull);
	row->role = CARM_ROLE_NONE;
	if (!isnull)
	{
		row->role_name = TextDatumGetCString(d);
		row->role = carm_role_from_name(row->role_name);
		if (row->role > CARM_ROLE_VIEWER)
			row->role = CARM_ROLE_NONE; /* proxy roles are not employee roles */
	}

	d = heap_getattr(tuple, column(rel, "programs"), desc, &isnull);
	row->all_programs = isnull;
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;

		row->programs_array = DatumGetArrayTypeP(d);
		row->program_ndim = ARR_NDIM(row->programs_array);
		deconstruct_array(row->programs_array, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, &nulls, &row->nprograms);
		row->programs = palloc(sizeof(int64) * (row->nprograms + 1));
		for (int i = 0; i < row->nprograms; i++)
		{
			row->program_nulls |= nulls[i];
			row->programs[i] = nulls[i] ? 0 : DatumGetInt64(elems[i]);
		}
	}
}

/* Is every program of 'inner' within the scope 'outer'? (NULL scope = all) */
static bool
scope_within(bool inner_all, const int64 *inner, int ninner,
			 bool outer_all, const int64 *outer, int nouter)
{
	if (outer_all)
		return true;
	if (inner_all)
		return false;
	for (int i = 0; i < ninner; i++)
	{
		bool		found = false;

		for (int j = 0; j < nouter && !found; j++)
			found = (inner[i] == outer[j]);
		if (!found)
			return false;
	}
	return true;
}

/* ---- internal queries (SPI connected, running as the owner) ---- */

enum
{
	Q_BN9,
	Q_FOREIGN_PROGRAM,
	Q_OTHER_BUSINESS_PROGRAM,
	Q_MANAGER,
	Q_LOCK_BUSINESS,
	Q_COUNT_BAMS,
	NUM_QUERIES
};

static const char *const query_text[NUM_QUERIES] = {
	[Q_BN9] = "SELECT bn9 FROM carm.business WHERE id = $1",
	[Q_FOREIGN_PROGRAM] =
	"SELECT x FROM pg_catalog.unnest($2) x "
	"WHERE NOT EXISTS (SELECT 1 FROM carm.program p WHERE p.id = x AND p.business_id = $1) "
	"LIMIT 1",
	[Q_OTHER_BUSINESS_PROGRAM] =
	"SELECT p.id FROM carm.program p WHERE p.id = ANY ($2) AND p.business_id <> $1 LIMIT 1",
	[Q_MANAGER] =
	"SELECT e.role, e.programs FROM carm.employee e "
	"JOIN carm.app_user u ON u.id = e.user_id AND u.active "
	"WHERE e.business_id = $1 AND e.user_id = $2",
	[Q_LOCK_BUSINESS] =
	"UPDATE carm.business SET bam_version = bam_version + 1 WHERE id = $1",
	[Q_COUNT_BAMS] =
	"SELECT count(*) FROM carm.employee WHERE business_id = $1 AND role = 'BAM'",
};

static const int query_nargs[NUM_QUERIES] = {1, 2, 2, 2, 1, 1};
static const Oid query_types[NUM_QUERIES][2] = {
	{INT8OID}, {INT8OID, INT8ARRAYOID}, {INT8OID, INT8ARRAYOID}, {INT8OID, INT8OID},
	{INT8OID}, {INT8OID},
};

static SPIPlanPtr plans[NUM_QUERIES];

/*
 * Run one of the queries above.  read_only is false for the E9 lock and the
 * counts, so that each takes a fresh snapshot (see the header) that also
 * sees the rows of the statement being checked.
 */
static void
run(int q, Datum *args, bool read_only, int expected)
{
	int			rc;

	if (plans[q] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(query_text[q], query_nargs[q], (Oid *) query_types[q]);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		plans[q] = plan;
	}
	rc = SPI_execute_plan(plans[q], args, NULL, read_only, 0);
	if (rc != expected)
		elog(ERROR, "internal query failed: %s", SPI_result_code_string(rc));
}

static int64
first_int8(bool *found)
{
	bool		isnull;
	Datum		d;

	*found = SPI_processed > 0;
	if (!*found)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

/* The BN9 of a business, for messages (palloc'd in the caller's context). */
static char *
business_bn9(int64 business_id)
{
	Datum		arg = Int64GetDatum(business_id);

	run(Q_BN9, &arg, true, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return psprintf("%lld", (long long) business_id);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * Take the business's BAM lock (bump bam_version) and count its BAMs with a
 * snapshot taken after the lock was granted.
 */
static int64
lock_and_count_bams(int64 business_id)
{
	Datum		arg = Int64GetDatum(business_id);
	bool		found;

	run(Q_LOCK_BUSINESS, &arg, false, SPI_OK_UPDATE);
	run(Q_COUNT_BAMS, &arg, false, SPI_OK_SELECT);
	return first_int8(&found);
}

/*
 * Count without the lock (E10 after a promotion).  Not read-only: in an
 * AFTER trigger only a new command id sees the statement's own rows.
 */
static int64
count_bams(int64 business_id)
{
	Datum		arg = Int64GetDatum(business_id);
	bool		found;

	run(Q_COUNT_BAMS, &arg, false, SPI_OK_SELECT);
	return first_int8(&found);
}

/* ---- E5: the row itself ---- */

/* The checks that need no query. */
static void
check_row_shape(const EmployeeRow *row)
{
	if (row->role_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("employee role must not be null")));
	if (row->role == CARM_ROLE_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown employee role \"%.32s\"", row->role_name),
				 errhint("Employee roles are BAM, PAM, EDITOR and VIEWER.")));
	if (row->all_programs)
		return;
	if (row->role == CARM_ROLE_BAM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a business account manager holds every program account"),
				 errdetail("The programs of a BAM must be NULL (all programs, including ones added later)."),
				 errhint("Give a listed scope with role PAM, EDITOR or VIEWER.")));
	if (row->nprograms == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("program list must not be empty"),
				 errhint("Use NULL for all programs.")));
	if (row->program_ndim > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("program list must be one-dimensional")));
	if (row->program_nulls)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("program list must not contain nulls")));
}

/*
 * Every listed program belongs to the employee's business.  For a write
 * without an actor (the owner, and pg_restore, which loads carm.employee
 * before carm.program: no foreign key orders them) only a program of another
 * business is refused; ids not loaded yet pass.
 */
static void
check_programs_of_business(const EmployeeRow *row, bool strict)
{
	Datum		args[2];
	bool		found;
	int64		bad;

	if (row->all_programs)
		return;
	args[0] = Int64GetDatum(row->business_id);
	args[1] = PointerGetDatum(row->programs_array);
	run(strict ? Q_FOREIGN_PROGRAM : Q_OTHER_BUSINESS_PROGRAM, args, true, SPI_OK_SELECT);
	bad = first_int8(&found);
	if (found)
	{
		char	   *bn9 = business_bn9(row->business_id);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("program %lld is not a program account of business %s", (long long) bad, bn9),
				 errhint("An employee's programs are program accounts of its own business.")));
	}
}

/* ---- E6, E7: who may write the row ---- */

static void
refuse_self(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to change your own access"),
			 errdetail("Nobody may change, remove or approve their own access."),
			 errhint("Ask another business account manager.")));
}

/*
 * E6: the actor writes its own row.  Only E1's self-registration passes: the
 * actor becomes BAM on all programs of a business that has no BAM — decided
 * under the business's BAM lock, so that two first registrations racing for
 * one business cannot both win.
 */
static void
check_self(const EmployeeRow *new_row, bool is_insert)
{
	if (new_row == NULL || new_row->role != CARM_ROLE_BAM || !new_row->all_programs)
		refuse_self();
	if (lock_and_count_bams(new_row->business_id) == 0)
		return;
	if (is_insert)
	{
		char	   *bn9 = business_bn9(new_row->business_id);

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("business %s already has a business account manager", bn9),
				 errhint("Request access from its business account manager with carm.request_employee_access().")));
	}
	refuse_self();
}

/*
 * E7, the one implementation: may a manager with this role and scope change
 * an employee with this role and scope?  A BAM changes anyone, other BAMs
 * included; a PAM changes non-BAM employees whose whole scope lies within
 * its own programs; EDITOR and VIEWER change nobody.  The trigger below
 * raises with the reason; carm_internal.may_change() answers SQL (the
 * can_change column of carm.employees).
 */
typedef enum E7Verdict
{
	E7_ALLOWED,
	E7_NOT_A_MANAGER,
	E7_TARGET_IS_BAM,
	E7_OUTSIDE_SCOPE
} E7Verdict;

static E7Verdict
e7_may_change(const EmployeeRow *mgr, const EmployeeRow *target)
{
	if (mgr->role == CARM_ROLE_BAM)
		return E7_ALLOWED;
	if (mgr->role != CARM_ROLE_PAM)
		return E7_NOT_A_MANAGER;
	if (target->role == CARM_ROLE_BAM)
		return E7_TARGET_IS_BAM;
	if (!scope_within(target->all_programs, target->programs, target->nprograms,
					  mgr->all_programs, mgr->programs, mgr->nprograms))
		return E7_OUTSIDE_SCOPE;
	return E7_ALLOWED;
}

/* E7 (E3, E8): may the actor, another user, write this row? */
static void
check_manager(int64 actor, const EmployeeRow *old_row, const EmployeeRow *new_row)
{
	const EmployeeRow *any = new_row ? new_row : old_row;
	Datum		args[2];
	EmployeeRow mgr;
	bool		isnull;
	char	   *bn9;

	args[0] = Int64GetDatum(any->business_id);
	args[1] = Int64GetDatum(actor);
	run(Q_MANAGER, args, true, SPI_OK_SELECT);

	memset(&mgr, 0, sizeof(mgr));
	mgr.role = CARM_ROLE_NONE;
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		d;

		mgr.role_name = SPI_getvalue(tup, desc, 1);
		mgr.role = carm_role_from_name(mgr.role_name);
		d = SPI_getbinval(tup, desc, 2, &isnull);
		mgr.all_programs = isnull;
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;

			deconstruct_array(DatumGetArrayTypeP(d), INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
							  TYPALIGN_DOUBLE, &elems, &nulls, &mgr.nprograms);
			mgr.programs = palloc(sizeof(int64) * (mgr.nprograms + 1));
			for (int i = 0; i < mgr.nprograms; i++)
				mgr.programs[i] = nulls[i] ? 0 : DatumGetInt64(elems[i]);
		}
	}

	if (mgr.role == CARM_ROLE_BAM)
		return;					/* E7: a BAM changes anyone, other BAMs included */

	bn9 = business_bn9(any->business_id);
	if (new_row == NULL)
		ereport(ERROR,			/* E8: only a BAM removes */
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to remove employees of business %s", bn9),
				 errdetail("Only a business account manager removes employees.")));
	if (mgr.role != CARM_ROLE_PAM)
		ereport(ERROR,			/* E7: EDITOR and VIEWER manage nobody */
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to manage the employees of business %s", bn9),
				 mgr.role_name ?
				 errdetail("User %lld is %s of this business.", (long long) actor, mgr.role_name) :
				 errdetail("User %lld is not an active employee of this business.", (long long) actor),
				 errhint("Only its business account managers and program account managers manage employees.")));

	/* E7: a PAM, over non-BAM employees entirely within its own programs */
	if (old_row != NULL)
	{
		E7Verdict	v = e7_may_change(&mgr, old_row);

		if (v == E7_TARGET_IS_BAM)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("a program account manager cannot change a business account manager"),
					 errhint("Only a business account manager changes another business account manager.")));
		if (v == E7_OUTSIDE_SCOPE)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to change an employee outside your program accounts"),
					 errdetail("A program account manager changes only employees whose whole scope lies within its own program accounts.")));
	}
	/* E3: a PAM grants PAM, EDITOR or VIEWER on a listed subset of its programs */
	if (new_row->role != CARM_ROLE_PAM && new_row->role != CARM_ROLE_EDITOR &&
		new_row->role != CARM_ROLE_VIEWER)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a program account manager may grant only PAM, EDITOR or VIEWER")));
	if (new_row->all_programs ||
		!scope_within(false, new_row->programs, new_row->nprograms,
					  mgr.all_programs, mgr.programs, mgr.nprograms))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a program account manager may grant only a listed subset of its own program accounts"),
				 new_row->all_programs ?
				 errdetail("All-programs scope is granted only by a business account manager.") : 0));
}

typedef struct GuardCheck
{
	int64		actor;
	EmployeeRow *old_row;
	EmployeeRow *new_row;
} GuardCheck;

/* E5, E6, E7 for one row change (as the extension owner, see carm_as_owner). */
static void
guard_employee_row(void *arg)
{
	GuardCheck *g = arg;

	if (g->new_row)
		check_programs_of_business(g->new_row, g->actor != 0);	/* E5 */
	if (g->actor != 0)
	{
		int64		target = g->new_row ? g->new_row->user_id : g->old_row->user_id;

		if (target == g->actor)
			check_self(g->new_row, g->old_row == NULL);	/* E6, E1 */
		else
			check_manager(g->actor, g->old_row, g->new_row);	/* E7, E3, E8 */
	}
}

typedef struct BamCount
{
	int64		business_id;
	bool		lock;			/* a BAM leaves: serialise on the business row */
	MemoryContext caller_cxt;
	int64		bams;			/* out */
	char	   *bn9;			/* out, when bams <= 1 */
} BamCount;

/* E9: count the business's BAMs after the change (as the extension owner). */
static void
count_business_bams(void *arg)
{
	BamCount   *c = arg;

	c->bams = c->lock ? lock_and_count_bams(c->business_id) : count_bams(c->business_id);
	if (c->bams <= 1)
		c->bn9 = MemoryContextStrdup(c->caller_cxt, business_bn9(c->business_id));
	if (c->lock && c->bams == 0)
		ereport(ERROR,			/* E9 */
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("business %s must keep at least one business account manager", c->bn9),
				 errdetail("This change would leave it without one."),
				 errhint("Grant the BAM role to another employee first.")));
}

/*
 * carm_internal.employee_guard() — BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW on
 * carm.employee: E5 always; E6 and E7 when an actor is set.
 */
Datum
carm_employee_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	EmployeeRow old_buf,
				new_buf;
	EmployeeRow *old_row = NULL;
	EmployeeRow *new_row = NULL;
	HeapTuple	result;
	int64		actor;
	GuardCheck	guard;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "carm_internal.employee_guard() must be a BEFORE row trigger");

	/* under Citus, decided once, on the coordinator's placement (citus.c) */
	if (carm_citus_is_worker())
		return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		read_row(td->tg_relation, td->tg_trigtuple, &new_buf);
		new_row = &new_buf;
		result = td->tg_trigtuple;
	}
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		read_row(td->tg_relation, td->tg_trigtuple, &old_buf);
		read_row(td->tg_relation, td->tg_newtuple, &new_buf);
		old_row = &old_buf;
		new_row = &new_buf;
		result = td->tg_newtuple;
	}
	else
	{
		read_row(td->tg_relation, td->tg_trigtuple, &old_buf);
		old_row = &old_buf;
		result = td->tg_trigtuple;
	}

	/* NULL keys: leave it to the NOT NULL constraints */
	if ((new_row && !new_row->valid) || (old_row && !old_row->valid))
		return PointerGetDatum(result);
	if (old_row && new_row &&
		(old_row->business_id != new_row->business_id || old_row->user_id != new_row->user_id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the business and user of an employee cannot change"),
				 errhint("Remove the employee and approve a new access request instead.")));
	if (new_row)
		check_row_shape(new_row);

	actor = carm_current_actor(NULL);
	if (actor == 0 && (new_row == NULL || new_row->all_programs))
		return PointerGetDatum(result); /* nothing to look up */

	guard.actor = actor;
	guard.old_row = old_row;
	guard.new_row = new_row;
	carm_as_owner(guard_employee_row, &guard);

	return PointerGetDatum(result);
}

/*
 * carm_internal.employee_bams() — AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW on
 * carm.employee: E9 when a BAM is demoted or removed, E10 when a change of
 * BAMs leaves exactly one (only for actors: bulk loads by the owner stay quiet).
 */
Datum
carm_employee_bams(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	EmployeeRow old_buf,
				new_buf;
	bool		old_bam = false;
	bool		new_bam = false;
	int64		business_id;
	int64		actor;
	int64		bams = 0;
	char	   *bn9 = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;
	BamCount	count;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "carm_internal.employee_bams() must be an AFTER row trigger");

	/* under Citus, E9's serialising update runs once, on the coordinator */
	if (carm_citus_is_worker())
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
	{
		read_row(td->tg_relation, td->tg_trigtuple, &new_buf);
		new_bam = new_buf.role == CARM_ROLE_BAM;
		business_id = new_buf.business_id;
	}
	else
	{
		read_row(td->tg_relation, td->tg_trigtuple, &old_buf);
		old_bam = old_buf.role == CARM_ROLE_BAM;
		business_id = old_buf.business_id;
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			read_row(td->tg_relation, td->tg_newtuple, &new_buf);
			new_bam = new_buf.role == CARM_ROLE_BAM;
		}
	}

	actor = carm_current_actor(NULL);
	if (old_bam == new_bam || (!old_bam && actor == 0))
		return PointerGetDatum(NULL);	/* no BAM left or arrived; or a quiet load */

	count.business_id = business_id;
	count.lock = old_bam;
	count.caller_cxt = caller_cxt;
	count.bn9 = NULL;
	carm_as_owner(count_business_bams, &count);
	bams = count.bams;
	bn9 = count.bn9;

	if (actor != 0 && bams == 1)
		ereport(WARNING,		/* E10 */
				(errmsg("business %s has only one business account manager", bn9),
				 errhint("Grant the BAM role to a second employee, so that the business keeps its management if this account becomes unusable.")));
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(carm_may_change);

/* Read a role and a scope (NULL = all programs) from SQL arguments. */
static void
sql_employee(FunctionCallInfo fcinfo, int argno, EmployeeRow *row)
{
	memset(row, 0, sizeof(*row));
	row->role = PG_ARGISNULL(argno) ? CARM_ROLE_NONE
		: carm_role_from_name(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
	row->all_programs = PG_ARGISNULL(argno + 1);
	if (!row->all_programs)
	{
		Datum	   *elems;
		bool	   *nulls;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(argno + 1), INT8OID, sizeof(int64),
						  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &row->nprograms);
		row->programs = palloc(sizeof(int64) * (row->nprograms + 1));
		for (int i = 0; i < row->nprograms; i++)
			row->programs[i] = nulls[i] ? 0 : DatumGetInt64(elems[i]);
	}
}

/*
 * carm_internal.may_change(manager_role, manager_programs, employee_role,
 * employee_programs): E7 as the trigger decides it (e7_may_change).
 */
Datum
carm_may_change(PG_FUNCTION_ARGS)
{
	EmployeeRow mgr,
				target;

	sql_employee(fcinfo, 0, &mgr);
	sql_employee(fcinfo, 2, &target);
	PG_RETURN_BOOL(e7_may_change(&mgr, &target) == E7_ALLOWED);
}
