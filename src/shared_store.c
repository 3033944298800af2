/*
 * shared_store.c — users' grants shared by every backend (SPEC §11, rev.
 * 1.2: once any backend has loaded an actor's grants, no other loads them
 * again; a change is reloaded once for the cluster).
 *
 * What is shared.  The rows a load of cache.c reads from the resolver
 * (carm_internal.grants), as opaque "sets" under four kinds of key, per
 * database and user: the grants on one business (a point check), on the
 * business of one program (a point read), every grant (a scan), the
 * planner's estimate of the user's reach, and whether the user exists and
 * is active (set_actor's first sight of a user in a backend).  cache.c asks here before it
 * runs a load and publishes what it loaded.  A backend still keeps one
 * user's store at a time, so its memory does not grow with the actors it
 * serves; the shared part lives in a fixed area of the main shared memory
 * (an in-place DSA that never grows), sized by carm_deleg.shared_store_size,
 * and the least recently used sets are evicted to make room.
 *
 * How it stays exact: the change log.  Every backend's relcache callback
 * appends the invalidation keys it processes (inval.c: one user, one
 * business, or everything) to a ring in shared memory.  PostgreSQL sends a
 * transaction's invalidations only once its commit is visible to new
 * snapshots, and a standby processes them only after replaying the commit,
 * so a key reaches the log after the change it names is visible.  Hence:
 *   - a set is stamped with the log position read *before* the snapshot
 *     its load read: every change logged below the stamp is in it;
 *   - a backend accepts invalidations when a statement starts and reads the
 *     log position then (cache.c); a set is used only after the log from
 *     its stamp to that position was scanned: a key naming everything, the
 *     user, or the business a set holds rejects the set (a complete set
 *     takes business keys as patches: cache.c reloads just those);
 *   - a stamp the ring has overwritten is rejected.
 * Every change committed before a statement started was processed by this
 * backend before the statement's position was read, so no set used by the
 * statement predates it.  Each backend logs every key it processes: the
 * log holds duplicates, which costs ring space and never exactness.
 * Loads that read an older snapshot than the latest (REPEATABLE READ,
 * parallel mode) neither use nor publish shared sets (cache.c), and neither
 * does a Citus node (its resolver is not inlined: it loads users whole).
 *
 * Locking.  The log has one LWLock (appends exclusive, scans shared); the
 * head is also an atomic, so "nothing new" costs one read.  Sets live in a
 * dshash table (its partition locks); a reader copies a set out while it
 * holds the entry's lock, so eviction never frees memory in use.
 */
#include "carm_deleg.h"

#include "fmgr.h"
#include "funcapi.h"
#include "lib/dshash.h"
#include "utils/builtins.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/dsa.h"
#include "utils/memutils.h"

#define LOG_SLOTS 16384			/* keys remembered; a power of two */
#define EVICT_AT 0.80			/* fraction of the area in use that starts an eviction */

int			carm_shared_store_mb = 64;	/* GUC carm_deleg.shared_store_size */

typedef struct LogSlot
{
	uint64		seq;			/* position of this key; slot reused every LOG_SLOTS */
	Oid			dbid;
	int32		kind;			/* CarmInvalKind */
	int64		id;
} LogSlot;

typedef struct SharedControl
{
	int			tranche;
	LWLock		log_lock;
	pg_atomic_uint64 head;		/* next log position */
	pg_atomic_uint64 clock;		/* use counter, for least-recently-used eviction */
	pg_atomic_uint64 bytes;		/* bytes held by sets and their entries */
	Size		area_size;
	dshash_table_handle hash_handle;
	LogSlot		log[LOG_SLOTS];
	/* the in-place DSA area follows, MAXALIGNed */
} SharedControl;

typedef struct SetKey
{
	Oid			dbid;
	Oid			anchor;			/* the extension's anchor relation: a new CREATE EXTENSION starts afresh */
	int32		kind;			/* CarmSharedKind */
	int32		pad;
	int64		user_id;
	int64		id;				/* business or program id; 0 for ALL and REACH */
} SetKey;

typedef struct SetEntry
{
	SetKey		key;
	uint64		stamp;			/* every change logged below this is in the set */
	uint64		last_used;		/* control->clock at the last use */
	int64		business_id;	/* the business the set holds (BUSINESS, PROGRAM) */
	double		value;			/* REACH */
	dsa_pointer data;
	Size		len;
} SetEntry;

#define ENTRY_OVERHEAD (MAXALIGN(sizeof(SetEntry)) + 64)

static SharedControl *control = NULL;
static Oid	current_anchor = InvalidOid;	/* see carm_shared_set_anchor */
static dsa_area *area = NULL;
static dshash_table *sets = NULL;
static dshash_parameters set_params = {
	sizeof(SetKey), sizeof(SetEntry), dshash_memcmp, dshash_memhash,
#if PG_VERSION_NUM >= 170000
	dshash_memcpy,
#endif
	0
};

static shmem_request_hook_type prev_shmem_request = NULL;
static shmem_startup_hook_type prev_shmem_startup = NULL;

static Size
area_size(void)
{
	return Max((Size) carm_shared_store_mb * 1024 * 1024, dsa_minimum_size() * 4);
}

static Size
control_size(void)
{
	return MAXALIGN(sizeof(SharedControl)) + area_size();
}

static void
shared_shmem_request(void)
{
	if (prev_shmem_request)
		prev_shmem_request();
	RequestAddinShmemSpace(control_size());
}

/* In the postmaster: the log, the area and the table, created once. */
static void
shared_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup)
		prev_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	control = ShmemInitStruct("carm_deleg shared store", control_size(), &found);
	if (!found)
	{
		dsa_area   *a;
		dshash_table *h;

		control->tranche = LWLockNewTrancheId();
		LWLockInitialize(&control->log_lock, control->tranche);
		pg_atomic_init_u64(&control->head, 0);
		pg_atomic_init_u64(&control->clock, 0);
		pg_atomic_init_u64(&control->bytes, 0);
		control->area_size = area_size();
		memset(control->log, 0, sizeof(control->log));
		for (int i = 0; i < LOG_SLOTS; i++)
			control->log[i].seq = UINT64_MAX;	/* never written */
		a = dsa_create_in_place((char *) control + MAXALIGN(sizeof(SharedControl)),
								control->area_size, control->tranche, NULL);
		dsa_pin(a);
		/* the area never grows beyond its place in the main shared memory */
		dsa_set_size_limit(a, control->area_size);
		set_params.tranche_id = control->tranche;
		h = dshash_create(a, &set_params, NULL);
		control->hash_handle = dshash_get_hash_table_handle(h);
		dshash_detach(h);
		dsa_detach(a);
	}
	LWLockRelease(AddinShmemInitLock);
	LWLockRegisterTranche(control->tranche, "carm_deleg");
}

/* From _PG_init, while shared_preload_libraries is processed. */
void
carm_shared_init(void)
{
	if (carm_shared_store_mb <= 0)
		return;
	prev_shmem_request = shmem_request_hook;
	shmem_request_hook = shared_shmem_request;
	prev_shmem_startup = shmem_startup_hook;
	shmem_startup_hook = shared_shmem_startup;
}

/* Attach this backend to the area and the table, once. */
static bool
attach(void)
{
	MemoryContext old;

	if (sets != NULL)
		return true;
	if (control == NULL)
		return false;
	LWLockRegisterTranche(control->tranche, "carm_deleg");
	old = MemoryContextSwitchTo(TopMemoryContext);
	area = dsa_attach_in_place((char *) control + MAXALIGN(sizeof(SharedControl)), NULL);
	dsa_pin_mapping(area);
	set_params.tranche_id = control->tranche;
	sets = dshash_attach(area, &set_params, control->hash_handle, NULL);
	MemoryContextSwitchTo(old);
	return true;
}

/* Whether shared sets exist at all (preloaded, a size set). */
bool
carm_shared_available(void)
{
	return control != NULL && MyDatabaseId != InvalidOid;
}

static bool
usable(void)
{
	return carm_shared_available() && OidIsValid(current_anchor) && attach();
}

/* The log position now: read it before taking the snapshot a load reads. */
uint64
carm_shared_position(void)
{
	if (control == NULL)
		return 0;
	return pg_atomic_read_u64(&control->head);
}

/*
 * Log one invalidation key this backend processed (called by cache.c's
 * relcache callback: no catalog access, no error).
 */
void
carm_shared_note(CarmInvalKind kind, int64 id)
{
	uint64		seq;
	LogSlot    *slot;

	if (control == NULL || kind == CARM_INVAL_NONE || !OidIsValid(MyDatabaseId))
		return;
	LWLockAcquire(&control->log_lock, LW_EXCLUSIVE);
	seq = pg_atomic_read_u64(&control->head);
	slot = &control->log[seq % LOG_SLOTS];
	slot->dbid = MyDatabaseId;
	slot->kind = (int32) kind;
	slot->id = id;
	slot->seq = seq;
	pg_atomic_write_u64(&control->head, seq + 1);
	LWLockRelease(&control->log_lock);
}

/*
 * Scan the log in [from, upto) for this database: false when the set is
 * stale (everything, or the user, or the set's business changed, or the
 * ring overwrote 'from').  Business keys of other businesses go to
 * 'patches' when it is given (a complete set), up to max_patches.
 */
static bool
log_allows(uint64 from, uint64 upto, CarmSharedKind kind, int64 user_id, int64 business_id,
		   int64 *patches, int *npatches, int max_patches)
{
	bool		ok = true;

	if (from >= upto)
		return true;
	if (upto - from > LOG_SLOTS)
		return false;
	LWLockAcquire(&control->log_lock, LW_SHARED);
	for (uint64 s = from; s < upto && ok; s++)
	{
		LogSlot    *slot = &control->log[s % LOG_SLOTS];

		if (slot->seq != s)
		{
			ok = false;			/* overwritten: too old to tell */
			break;
		}
		if (slot->dbid != MyDatabaseId)
			continue;
		switch ((CarmInvalKind) slot->kind)
		{
			case CARM_INVAL_ALL:
				ok = false;
				break;
			case CARM_INVAL_USER:
				if (slot->id == user_id)
					ok = false;
				break;
			case CARM_INVAL_BUSINESS:
				if (kind == CARM_SHARED_REACH || kind == CARM_SHARED_USER)
					break;		/* an estimate; a profile: no business changes them */
				if (kind == CARM_SHARED_ALL)
				{
					bool		seen = false;

					for (int i = 0; i < *npatches && !seen; i++)
						seen = patches[i] == slot->id;
					if (!seen)
					{
						if (*npatches == max_patches)
							ok = false;
						else
							patches[(*npatches)++] = slot->id;
					}
				}
				else if (slot->id == business_id)
					ok = false;
				break;
			case CARM_INVAL_NONE:
				break;
		}
	}
	LWLockRelease(&control->log_lock);
	return ok;
}

/*
 * The anchor relation of the extension in this database (cache.c sets it
 * when it resets its store).  Ids restart after DROP and CREATE EXTENSION,
 * so sets are keyed by the extension's incarnation as well.
 */
void
carm_shared_set_anchor(Oid anchor)
{
	current_anchor = anchor;
}

static void
set_key(SetKey *key, CarmSharedKind kind, int64 user_id, int64 id)
{
	memset(key, 0, sizeof(SetKey));	/* hashed as bytes: no stray padding */
	key->dbid = MyDatabaseId;
	key->anchor = current_anchor;
	key->kind = (int32) kind;
	key->user_id = user_id;
	key->id = id;
}

/* Free what an entry holds and stop counting it (the entry itself stays). */
static void
free_entry_data(SetEntry *e)
{
	if (DsaPointerIsValid(e->data))
		dsa_free(area, e->data);
	pg_atomic_fetch_sub_u64(&control->bytes, e->len + ENTRY_OVERHEAD);
}

/* Free a set's data and its entry (the entry is locked exclusively). */
static void
drop_entry(SetEntry *e)
{
	free_entry_data(e);
	dshash_delete_entry(sets, e);
}

/*
 * Look up a set valid up to log position 'upto'.  On success the set's data
 * is copied into CurrentMemoryContext (*data, *len), with the business it
 * holds and, for a complete set, the businesses changed since it was
 * stamped (patches, to reload).  A stale set is removed.
 */
bool
carm_shared_get(CarmSharedKind kind, int64 user_id, int64 id, uint64 upto,
				void **data, Size *len, int64 *business_id, double *value,
				int64 *patches, int *npatches, int max_patches)
{
	SetKey		key;
	SetEntry   *e;
	bool		ok;

	if (!usable())
		return false;
	set_key(&key, kind, user_id, id);
	e = dshash_find(sets, &key, true);
	if (e == NULL)
	{
		carm_count(CARM_STAT_SHARED_MISSES, 1);
		return false;
	}
	if (npatches)
		*npatches = 0;
	ok = log_allows(e->stamp, upto, kind, user_id, e->business_id, patches, npatches, max_patches);
	if (!ok)
	{
		drop_entry(e);
		carm_count(CARM_STAT_SHARED_MISSES, 1);
		return false;
	}
	if (kind != CARM_SHARED_ALL && upto > e->stamp)
		e->stamp = upto;		/* nothing since: later readers scan less */
	e->last_used = pg_atomic_fetch_add_u64(&control->clock, 1);
	if (business_id)
		*business_id = e->business_id;
	if (value)
		*value = e->value;
	if (data)
	{
		*len = e->len;
		*data = NULL;
		if (e->len > 0)
		{
			*data = palloc(e->len);
			memcpy(*data, dsa_get_address(area, e->data), e->len);
		}
	}
	dshash_release_lock(sets, e);
	carm_count(CARM_STAT_SHARED_HITS, 1);
	return true;
}

/*
 * Remove the sets last used before 'used_before' (of every database, or of
 * this one only), counting them as evictions; returns how many.
 */
static int64
remove_sets(uint64 used_before, bool this_database)
{
	dshash_seq_status seq;
	SetEntry   *e;
	int64		n = 0;

	dshash_seq_init(&seq, sets, true);
	while ((e = dshash_seq_next(&seq)) != NULL)
	{
		if (e->last_used >= used_before || (this_database && e->key.dbid != MyDatabaseId))
			continue;
		free_entry_data(e);
		dshash_delete_current(&seq);
		n++;
	}
	dshash_seq_term(&seq);
	carm_count(CARM_STAT_SHARED_EVICTIONS, n);
	return n;
}

/*
 * Make room: remove the least recently used half of the sets (by their
 * last use), so evictions are rare and each costs one pass over the table.
 */
static void
evict(void)
{
	dshash_seq_status seq;
	SetEntry   *e;
	uint64		now = pg_atomic_read_u64(&control->clock);
	uint64		oldest = now;
	uint64		threshold;

	dshash_seq_init(&seq, sets, false);
	while ((e = dshash_seq_next(&seq)) != NULL)
		oldest = Min(oldest, e->last_used);
	dshash_seq_term(&seq);
	threshold = oldest + (now - oldest) / 2 + 1;
	remove_sets(threshold, false);
}

/*
 * Publish a set loaded with a snapshot taken after log position 'stamp'
 * was read.  A newer set already there is kept.  Nothing is published
 * when the set cannot fit.
 */
void
carm_shared_put(CarmSharedKind kind, int64 user_id, int64 id, uint64 stamp,
				const void *data, Size len, int64 business_id, double value)
{
	SetKey		key;
	SetEntry   *e;
	bool		found;
	dsa_pointer dp = InvalidDsaPointer;
	Size		limit;

	if (!usable())
		return;
	limit = (Size) (control->area_size * EVICT_AT);
	if (len + ENTRY_OVERHEAD > limit / 4)
		return;					/* one set never takes a quarter of the area */
	if (pg_atomic_read_u64(&control->bytes) + len + ENTRY_OVERHEAD > limit)
		evict();
	if (pg_atomic_read_u64(&control->bytes) + len + ENTRY_OVERHEAD > limit)
		return;
	if (len > 0)
	{
		dp = dsa_allocate_extended(area, len, DSA_ALLOC_NO_OOM);
		if (!DsaPointerIsValid(dp))
			return;
		memcpy(dsa_get_address(area, dp), data, len);
	}
	set_key(&key, kind, user_id, id);
	e = dshash_find_or_insert(sets, &key, &found);
	if (found && e->stamp >= stamp)
	{
		dshash_release_lock(sets, e);
		if (DsaPointerIsValid(dp))
			dsa_free(area, dp);
		return;
	}
	if (found)
		free_entry_data(e);
	e->stamp = stamp;
	e->last_used = pg_atomic_fetch_add_u64(&control->clock, 1);
	e->business_id = business_id;
	e->value = value;
	e->data = dp;
	e->len = len;
	pg_atomic_fetch_add_u64(&control->bytes, len + ENTRY_OVERHEAD);
	dshash_release_lock(sets, e);
	carm_count(CARM_STAT_SHARED_PUBLISHED, 1);
}

/* Remove every set of this database (carm.shared_store_clear()). */
static int64
shared_clear(void)
{
	if (!carm_shared_available() || !attach())
		return 0;
	return remove_sets(PG_UINT64_MAX, true);
}

/* Sets and bytes in use, and the area's size (carm.shared_store()). */
static void
shared_usage(int64 *nsets, int64 *bytes, int64 *size, int64 *log_position)
{
	dshash_seq_status seq;
	SetEntry   *e;

	*nsets = *bytes = *size = *log_position = 0;
	if (!carm_shared_available() || !attach())
		return;
	dshash_seq_init(&seq, sets, false);
	while ((e = dshash_seq_next(&seq)) != NULL)
		(*nsets)++;
	dshash_seq_term(&seq);
	*bytes = (int64) pg_atomic_read_u64(&control->bytes);
	*size = (int64) control->area_size;
	*log_position = (int64) pg_atomic_read_u64(&control->head);
}

static void
require_preloaded(void)
{
	if (!carm_shared_available())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("carm_deleg shares grants across backends only when preloaded"),
				 errhint("Add carm_deleg to shared_preload_libraries, set carm_deleg.shared_store_size above 0, and restart the server.")));
}

PG_FUNCTION_INFO_V1(carm_shared_store_sql);
PG_FUNCTION_INFO_V1(carm_shared_store_clear_sql);

/* carm.shared_store() — what the shared area holds. */
Datum
carm_shared_store_sql(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {0};
	int64		v[4];

	require_preloaded();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	shared_usage(&v[0], &v[1], &v[2], &v[3]);
	for (int i = 0; i < 4; i++)
		values[i] = Int64GetDatum(v[i]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* carm.shared_store_clear() — evict every set of this database (carm_admin). */
Datum
carm_shared_store_clear_sql(PG_FUNCTION_ARGS)
{
	carm_forbid_restricted();
	require_preloaded();
	PG_RETURN_INT64(shared_clear());
}
