/*
 * inval.c — which decisions a committed change can affect, and telling
 * every backend (SPEC §8: exact at commit, on standbys too).
 *
 * A change to delegation state affects either one user's grants everywhere
 * (its employee roles, its assignments, its group memberships, its profile)
 * or every user's grants on one business (a relationship with that client,
 * the client's programs, its membership in a group).  Row triggers on the
 * state tables (sql/src/11_invalidation.sql) name the key of each changed
 * row: "user:<column>" or "business:<column>".
 *
 * Keys travel as relcache invalidation messages, which PostgreSQL queues
 * with the transaction, sends when it commits (never on rollback), delivers
 * to every backend before that backend's next statement reads with a newer
 * snapshot (see carm_statement_begin), and WAL-logs with the commit record
 * for hot standbys.  A message names a relation oid; ours carry a key in an
 * oid range no relation of a normal database reaches:
 *
 *     0x80000000 | business id   (a business's grants, for every user)
 *     0xC0000000 | user id       (one user's grants, everywhere)
 *
 * An id beyond 2^30 is sent as "everything" instead, so a key names exactly
 * one id; a relation that really has an oid in these ranges only causes a
 * needless reload, never a missed one.  The
 * message is built from a copy of the anchor relation's pg_class row with
 * its oid replaced, which is all CacheInvalidateRelcacheByTuple() reads; a
 * relcache invalidation of an oid that has no relcache entry only runs the
 * registered callbacks.  The anchor itself (carm.protected_table's oid) and
 * PostgreSQL's own "everything" reset mean: every grant of every user.
 */
#include "carm_deleg.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(carm_invalidate_cache);
PG_FUNCTION_INFO_V1(carm_invalidate_keys);

/*
 * A transaction that changes more than this many keys (a bulk load, a group
 * operation on thousands of clients) sends one "everything" message
 * instead: PostgreSQL looks for a duplicate among a command's messages each
 * time one is added, so thousands of keys would cost quadratic time, and
 * readers would reload as much anyway.
 */
#define MAX_KEYS_PER_XACT 1000

static int	keys_sent = 0;
static bool all_sent = false;

/*
 * The keys this transaction queued, for the shared sets' change log
 * (shared_store.c): the committing backend logs them itself once its
 * commit is visible (XACT_EVENT_COMMIT, before COMMIT returns), because a
 * backend that starts after the commit never receives the messages, and
 * no other backend may be there to process them.  A subtransaction's keys
 * stay listed after it aborts: logging a key too many only costs a reload.
 */
static uint32 xact_keys[MAX_KEYS_PER_XACT];
static int	xact_nkeys = 0;
static bool xact_all = false;	/* everything: too many keys, TRUNCATE, ... */

#define KEY_BUSINESS	UINT64CONST(0x80000000)
#define KEY_USER		UINT64CONST(0xC0000000)
#define KEY_ID_MASK		UINT64CONST(0x3FFFFFFF)

/* The relation whose invalidation means "everything": carm.protected_table. */
Oid
carm_anchor_relid(void)
{
	Oid			nsp = carm_schema_oid(true);

	return OidIsValid(nsp) ? get_relname_relid("protected_table", nsp) : InvalidOid;
}

/* Queue one invalidation message for relation oid 'key' with this transaction. */
static void
send_key(Oid anchor, uint32 key)
{
	HeapTuple	tup;

	if (all_sent)
		return;					/* everything is stale at commit already */
	if (++keys_sent > MAX_KEYS_PER_XACT)
	{
		CacheInvalidateRelcacheByRelid(anchor);
		all_sent = true;
		xact_all = true;
		return;
	}
	if (xact_nkeys < MAX_KEYS_PER_XACT)
		xact_keys[xact_nkeys++] = key;
	else
		xact_all = true;
	tup = SearchSysCacheCopy1(RELOID, ObjectIdGetDatum(anchor));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", anchor);
	((Form_pg_class) GETSTRUCT(tup))->oid = (Oid) key;
	CacheInvalidateRelcacheByTuple(tup);
	heap_freetuple(tup);
}

static void
carm_invalidate_business(int64 business_id)
{
	Oid			anchor = carm_anchor_relid();

	if (!OidIsValid(anchor) || business_id <= 0)
		return;
	if ((uint64) business_id > KEY_ID_MASK)
	{
		CacheInvalidateRelcacheByRelid(anchor);
		xact_all = true;
	}
	else
		send_key(anchor, (uint32) (KEY_BUSINESS | (uint64) business_id));
}

static void
carm_invalidate_user(int64 user_id)
{
	Oid			anchor = carm_anchor_relid();

	if (!OidIsValid(anchor) || user_id <= 0)
		return;
	if ((uint64) user_id > KEY_ID_MASK)
	{
		CacheInvalidateRelcacheByRelid(anchor);
		xact_all = true;
	}
	else
		send_key(anchor, (uint32) (KEY_USER | (uint64) user_id));
}

static void
carm_invalidate_all(void)
{
	Oid			anchor = carm_anchor_relid();

	if (OidIsValid(anchor) && !all_sent)
	{
		CacheInvalidateRelcacheByRelid(anchor);
		all_sent = true;
	}
	xact_all = true;
}

/*
 * Whether this transaction changed delegation state (queued any key):
 * its loads then see its own uncommitted changes, which must neither be
 * published to other backends nor be replaced by what they published.
 */
bool
carm_xact_changed_state(void)
{
	return xact_nkeys > 0 || xact_all;
}

/* Log the committed transaction's keys in the shared change log. */
static void
log_committed_keys(void)
{
	if (xact_all)
		carm_shared_note(CARM_INVAL_ALL, 0);
	else
		for (int i = 0; i < xact_nkeys; i++)
		{
			uint32		key = xact_keys[i];
			int64		id = (int64) (key & KEY_ID_MASK);

			carm_shared_note((key & UINT64CONST(0xC0000000)) == KEY_USER ? CARM_INVAL_USER
							 : CARM_INVAL_BUSINESS, id);
		}
}

/*
 * The count starts again with each transaction, and after a subtransaction
 * aborts: its messages are discarded with it, so "everything was sent" may
 * no longer hold.
 */
static void
inval_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_PREPARE && carm_xact_changed_state() &&
		carm_shared_available() && !carm_citus_active())
		/*
		 * COMMIT PREPARED, in whatever session runs it, sends the messages
		 * without processing them: nobody would log the keys, and backends
		 * started after it would keep using grants the transaction revoked.
		 */
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot prepare a transaction that changed delegation state while grants are shared across backends"),
				 errhint("Commit it without two-phase commit, or set carm_deleg.shared_store_size = 0.")));
	if (event == XACT_EVENT_PRE_PREPARE || event == XACT_EVENT_PRE_COMMIT ||
		event == XACT_EVENT_PARALLEL_PRE_COMMIT)
		return;
	if (event == XACT_EVENT_COMMIT)
		log_committed_keys();
	keys_sent = 0;
	all_sent = false;
	xact_nkeys = 0;
	xact_all = false;
}

static void
inval_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		keys_sent = 0;
		all_sent = false;
	}
}

void
carm_inval_init(void)
{
	RegisterXactCallback(inval_xact_callback, NULL);
	RegisterSubXactCallback(inval_subxact_callback, NULL);
}

/* Decode a relcache invalidation: what it says about grants. */
CarmInvalKind
carm_decode_inval(Oid relid, Oid anchor, int64 *id)
{
	uint64		r = (uint64) relid;

	*id = 0;
	if (relid == InvalidOid || relid == anchor)
		return CARM_INVAL_ALL;
	if ((r & UINT64CONST(0xC0000000)) == KEY_USER)
	{
		*id = (int64) (r & KEY_ID_MASK);
		return CARM_INVAL_USER;
	}
	if ((r & UINT64CONST(0xC0000000)) == KEY_BUSINESS)
	{
		*id = (int64) (r & KEY_ID_MASK);
		return CARM_INVAL_BUSINESS;
	}
	return CARM_INVAL_NONE;
}

/*
 * carm_internal.invalidate_cache() — statement-level trigger: every grant
 * of every user (TRUNCATE, and tables whose rows are rarely changed).
 */
Datum
carm_invalidate_cache(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "carm_internal.invalidate_cache() must be called as a trigger");
	carm_invalidate_all();
	return PointerGetDatum(NULL);
}

/* Send the keys a trigger's arguments name, read from one row. */
static void
send_row_keys(TriggerData *td, HeapTuple row)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);

	for (int i = 0; i < td->tg_trigger->tgnargs; i++)
	{
		const char *arg = td->tg_trigger->tgargs[i];
		const char *colon = strchr(arg, ':');
		int			attno;
		bool		isnull;
		Datum		d;

		if (colon == NULL || (attno = SPI_fnumber(desc, colon + 1)) <= 0)
			elog(ERROR, "invalid key \"%s\" for carm_internal.invalidate_keys()", arg);
		d = heap_getattr(row, attno, desc, &isnull);
		if (isnull)
			continue;
		if (strncmp(arg, "user:", 5) == 0)
			carm_invalidate_user(DatumGetInt64(d));
		else if (strncmp(arg, "business:", 9) == 0)
			carm_invalidate_business(DatumGetInt64(d));
		else
			elog(ERROR, "invalid key \"%s\" for carm_internal.invalidate_keys()", arg);
	}
}

/*
 * carm_internal.invalidate_keys('user:col' | 'business:col', ...) — AFTER
 * row trigger: the grants the old and the new row can affect become stale
 * in every backend when this transaction commits.
 */
Datum
carm_invalidate_keys(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "carm_internal.invalidate_keys() must be an AFTER row trigger");
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		send_row_keys(td, td->tg_trigtuple);
		send_row_keys(td, td->tg_newtuple);
	}
	else
		send_row_keys(td, td->tg_trigtuple);
	return PointerGetDatum(NULL);
}
