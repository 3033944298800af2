/*
 * visibility.c — the row check's decision table (V1-V4), one per function.
 *
 * A scan calls the row check once per row, and rows arrive interleaved
 * across programs (SPEC §11), so per-row work must not depend on what the
 * previous row was.  From the user's complete grant store (cache.c) we
 * derive, for one function, one small entry per program the user may see
 * some row of:
 *
 *     ALL          every row (V1: the client's own employees)
 *     via          rows submitted by this business are visible (V2(a), V3,
 *                  V4: the provider the user acts for)
 *     CLIENT_OK    rows the client submitted (V2(b))
 *     OTHER_OK     rows a third business submitted (V2(c), never rulings)
 *     MULTI        several acting businesses: decide from the grants
 *
 * Rows arrive in no order, so the table's size decides the cost of a row
 * (a cache miss costs more than the decision).  Program ids are dense, so
 * the usual table is an array indexed by program id holding 8 bytes a
 * program (the owner's id as 32 bits, the flags, the index of the acting
 * business in a short list): 20,000 programs take 160 kB.  When the ids
 * the user reaches are sparse, an open-addressing hash keyed by program id
 * is used instead.  A table is valid
 * for one generation of the store and until the earliest expiry among the
 * grants it was derived from (R9 by time, judged at the time of the
 * statement: it is derived again for the first statement after that).
 */
#include "carm_deleg.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define VIS_ALL			CARM_VIS_ALL
#define VIS_CLIENT_OK	CARM_VIS_CLIENT_OK
#define VIS_OTHER_OK	CARM_VIS_OTHER_OK
#define VIS_MULTI		CARM_VIS_MULTI
#define VIS_PRESENT		CARM_VIS_PRESENT
#define VIS_BIG_CLIENT	CARM_VIS_BIG_CLIENT
#define MAX_VIAS		CARM_VIS_MAX_VIAS

typedef CarmVisCell VisCell;

/* One program in the hash form. */
struct CarmVisEntry
{
	int64		program_id;		/* 0: empty slot */
	int64		client_id;		/* the business that owns the program */
	int64		via_id;			/* rows it submitted are visible; 0 none */
	uint32		flags;
};
typedef struct CarmVisEntry VisEntry;

static MemoryContext vis_cxt = NULL;
static CarmVisTable *tables[CARM_NUM_FUNCTIONS];

static inline uint32
slot_of(int64 program_id, uint32 mask)
{
	return (uint32) (((uint64) program_id * UINT64CONST(0x9E3779B97F4A7C15)) >> 32) & mask;
}

static inline const VisEntry *
vis_lookup(const CarmVisTable *t, int64 program_id)
{
	uint32		i = slot_of(program_id, t->mask);

	for (;;)
	{
		const VisEntry *e = &t->slots[i];

		if (e->program_id == program_id)
			return e;
		if (e->program_id == 0)
			return NULL;
		i = (i + 1) & t->mask;
	}
}

typedef struct DeriveState
{
	CarmVisTable *t;
	TimestampTz now;
	int			capacity;
	VisEntry   *buf;			/* entries before hashing */
	int			n;
} DeriveState;

/* One program's entry from its grants, at time now. */
static void
derive_program(const CarmGrantList *list, void *arg)
{
	DeriveState *ds = arg;
	VisEntry	e = {list->key, list->business_id, 0, 0};

	/* each grant's part is carm_grant_row_flags(), row_visible()'s rule (check.c) */
	for (int i = 0; i < list->ngrants; i++)
	{
		const CarmGrant *g = &list->grants[i];
		uint8		flags = carm_grant_row_flags(g, ds->t->fn, ds->now);

		if (g->source == CARM_SRC_PROXY && g->expires_at > ds->now &&
			g->expires_at < ds->t->valid_until)
			ds->t->valid_until = g->expires_at;
		e.flags |= flags & (VIS_ALL | VIS_CLIENT_OK | VIS_OTHER_OK);
		if (!(flags & CARM_VIS_VIA))
			continue;
		if (e.via_id != 0 && e.via_id != g->via_business_id)
			e.flags |= VIS_MULTI;
		e.via_id = g->via_business_id;
	}
	if (e.flags == 0 && e.via_id == 0)
		return;
	if (ds->n == ds->capacity)
	{
		ds->capacity *= 2;
		ds->buf = repalloc(ds->buf, sizeof(VisEntry) * ds->capacity);
	}
	ds->buf[ds->n++] = e;
}

/*
 * The dense form, when the program ids are compact enough (at most four
 * cells per entry, or 64k cells) and the acting businesses few: false if not.
 */
static bool
build_dense(CarmVisTable *t, const VisEntry *buf, int n)
{
	int64		lo = PG_INT64_MAX,
				hi = 0;

	for (int i = 0; i < n; i++)
	{
		lo = Min(lo, buf[i].program_id);
		hi = Max(hi, buf[i].program_id);
	}
	if (n == 0)
		lo = hi = 1;
	if ((uint64) (hi - lo) + 1 > (uint64) n * 4 + 65536)
		return false;
	t->base = lo;
	t->range = (uint64) (hi - lo) + 1;
	t->cells = palloc0(sizeof(VisCell) * t->range);
	for (int i = 0; i < n; i++)
	{
		VisCell    *c = &t->cells[buf[i].program_id - lo];
		int			v;

		for (v = 0; v < t->nvias && t->vias[v] != buf[i].via_id; v++)
			;
		if (v == t->nvias)
		{
			if (t->nvias == MAX_VIAS)
			{
				pfree(t->cells);
				t->cells = NULL;
				t->nvias = 0;
				return false;
			}
			t->vias[t->nvias++] = buf[i].via_id;
		}
		c->via = (uint8) v;
		c->flags = (uint8) (buf[i].flags | VIS_PRESENT);
		if (buf[i].client_id > PG_INT32_MAX)
			c->flags |= VIS_BIG_CLIENT;
		else
			c->client_id = (int32) buf[i].client_id;
	}
	return true;
}

/* Derive the table of fn for the user's complete store, at time now. */
static CarmVisTable *
derive(int64 user_id, CarmFunction fn, TimestampTz now)
{
	CarmVisTable *t = tables[fn];
	DeriveState ds;
	uint32		capacity = 16;
	MemoryContext old;

	if (vis_cxt == NULL)
		vis_cxt = AllocSetContextCreate(CacheMemoryContext, "carm_deleg visibility",
										ALLOCSET_DEFAULT_SIZES);
	if (t == NULL)
		t = tables[fn] = MemoryContextAllocZero(vis_cxt, sizeof(CarmVisTable));
	else
	{
		if (t->slots)
			pfree(t->slots);
		if (t->cells)
			pfree(t->cells);
	}
	t->slots = NULL;
	t->cells = NULL;
	t->nvias = 0;
	t->generation = 0;			/* not valid until complete below */
	t->fn = fn;
	t->user_id = user_id;
	t->derived_at = now;
	t->valid_until = DT_NOEND;

	carm_count(CARM_STAT_TABLES_DERIVED, 1);
	old = MemoryContextSwitchTo(vis_cxt);
	ds.t = t;
	ds.now = now;
	ds.capacity = 64;
	ds.n = 0;
	ds.buf = palloc(sizeof(VisEntry) * ds.capacity);
	carm_foreach_program(user_id, derive_program, &ds, &t->generation);

	t->count = ds.n;
	if (!build_dense(t, ds.buf, ds.n))
	{
		while (capacity < (uint32) ds.n * 2 + 2)
			capacity <<= 1;
		t->slots = palloc0(sizeof(VisEntry) * capacity);
		t->mask = capacity - 1;
		for (int i = 0; i < ds.n; i++)
		{
			uint32		s = slot_of(ds.buf[i].program_id, t->mask);

			while (t->slots[s].program_id != 0)
				s = (s + 1) & t->mask;
			t->slots[s] = ds.buf[i];
		}
	}
	pfree(ds.buf);
	MemoryContextSwitchTo(old);
	return t;
}

/*
 * The decision table of fn for the user, valid now.  The caller may keep
 * the pointer while carm_vis_table_valid() says so.
 */
const CarmVisTable *
carm_vis_table(int64 user_id, CarmFunction fn)
{
	TimestampTz now = carm_decision_time();
	CarmVisTable *t = tables[fn];

	if (t != NULL && carm_vis_table_valid(t, user_id))
		return t;
	t = derive(user_id, fn, now);
	return t;
}

/* Is a table still what carm_vis_table() would return? (called per row) */
bool
carm_vis_table_valid(const CarmVisTable *t, int64 user_id)
{
	TimestampTz now = carm_decision_time();

	return t->user_id == user_id && t->generation != 0 &&
		t->generation == carm_cache_generation(user_id) &&
		now >= t->derived_at && now < t->valid_until;
}

/*
 * Has the time of a new statement reached the expiry (or gone back before
 * the derivation) of a table derived earlier?  Such tables are marked
 * invalid, and the caller bumps carm_decision_epoch so that row checks
 * holding them validate again (R9 per statement).
 */
bool
carm_vis_expiry_crossed(TimestampTz now)
{
	bool		crossed = false;

	for (int fn = 0; fn < CARM_NUM_FUNCTIONS; fn++)
	{
		CarmVisTable *t = tables[fn];

		if (t != NULL && t->generation != 0 &&
			(now >= t->valid_until || now < t->derived_at))
		{
			t->generation = 0;
			crossed = true;
		}
	}
	return crossed;
}

/* carm_vis_decide() (carm_deleg.h) for the hash form. */
int
carm_vis_decide_hashed(const CarmVisTable *t, int64 program_id, int64 submitter)
{
	const VisEntry *e = vis_lookup(t, program_id);

	if (e == NULL)
		return 0;
	if (e->flags & VIS_ALL)
		return 1;
	if (submitter == e->via_id)
		return 1;
	if (e->flags & VIS_MULTI)
		return -1;
	if (submitter == e->client_id)
		return (e->flags & VIS_CLIENT_OK) != 0;
	return (e->flags & VIS_OTHER_OK) != 0;
}

/* Program ids where the user may see some row (the index condition). */
int64 *
carm_vis_table_programs(const CarmVisTable *t, int *count)
{
	int64	   *result = palloc(sizeof(int64) * (t->count + 1));
	int			n = 0;

	if (t->cells != NULL)
	{
		for (uint64 i = 0; i < t->range; i++)
			if (t->cells[i].flags & VIS_PRESENT)
				result[n++] = t->base + (int64) i;
	}
	else
		for (uint32 i = 0; i <= t->mask; i++)
			if (t->slots[i].program_id != 0)
				result[n++] = t->slots[i].program_id;
	*count = n;
	return result;
}
