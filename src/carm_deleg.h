/*
 * carm_deleg.h — declarations shared by the extension's C files.
 *
 * Layout of the C side (one job per file):
 *   carm_deleg.c  _PG_init: GUCs, cache callbacks, background worker registration
 *   actor.c       who is acting: the guarded carm_deleg.actor setting, set_actor()
 *   admin.c       who is carm_admin: the role the code runs as, never in a restricted operation
 *   caller.c      the role the caller's code runs as, behind SECURITY DEFINER (§2)
 *   owner.c       running internal SPI queries as the extension owner
 *   bn.c          BN9 / BN15 validation
 *   text.c        what counts as blank: trimming names, comments and role names
 *   matrix.c      the §3.2 role x function matrix and permission parsing
 *   inval.c       which decisions a change affects: invalidation keys and triggers
 *   cache.c       per-backend store of the actor's grants, exact per statement
 *   shared_store.c  grant sets shared by every backend, and the change log that keeps them exact
 *   visibility.c  the row check's per-function decision table (V1-V4)
 *   target.c      BN9 / BN15 to ids, for the point checks
 *   point.c       the §8 point-check rule: has_access(), user_has_access(),
 *                 accessible_programs() and what the reports ask of it
 *   check.c       the row-level-security checks (V1-V5)
 *   planner.c     planner support: index condition and selectivity for the row check
 *   hierarchy.c   triggers enforcing E5-E10 on carm.employee
 *   citus.c       running on Citus: actor propagation, worker detection
 *   ddl_guard.c   event trigger refusing DROP EXTENSION while tables are protected (§12)
 *   stats.c       monitoring counters in shared memory (carm.stats)
 *   worker.c      the maintenance background worker (R12)
 *   compat.h      the PostgreSQL majors (15-18) and their API differences
 */
#ifndef CARM_DELEG_H
#define CARM_DELEG_H

#include "postgres.h"
#include "compat.h"
#include "datatype/timestamp.h"
#include "utils/palloc.h"
#include "utils/snapshot.h"

/* ---- matrix.c: roles, functions, levels (SPEC §3) ---- */

typedef enum CarmRole
{
	CARM_ROLE_NONE = -1,
	CARM_ROLE_BAM = 0,
	CARM_ROLE_PAM,
	CARM_ROLE_EDITOR,
	CARM_ROLE_VIEWER,
	CARM_ROLE_PBAM,
	CARM_ROLE_PPAM,
	CARM_ROLE_PEDITOR,
	CARM_ROLE_PVIEWER,
	CARM_ROLE_EXPIRED,
	CARM_ROLE_SPMGR,			/* V3: provider BAM/PAM reading what the SP submitted */
	CARM_NUM_ROLES
} CarmRole;

typedef enum CarmFunction
{
	CARM_FN_BUSINESS_PROFILE = 0,
	CARM_FN_PROGRAM_PROFILE,
	CARM_FN_EMPLOYEE_ACCESS,
	CARM_FN_RELATIONSHIPS,
	CARM_FN_RULINGS,
	CARM_FN_PAYMENTS,
	CARM_FN_STATEMENTS,
	CARM_FN_NOTIFICATIONS,
	CARM_FN_BANKING,
	CARM_NUM_FUNCTIONS
} CarmFunction;

typedef enum CarmLevel
{
	CARM_LEVEL_NONE = 0,
	CARM_LEVEL_VIEW = 1,
	CARM_LEVEL_EDIT = 2,
	CARM_LEVEL_MANAGE = 3
} CarmLevel;

extern CarmRole carm_role_from_name(const char *name);
extern const char *carm_role_name(CarmRole role);
extern CarmFunction carm_function_from_name(const char *name);	/* ereports 22023 */
extern const char *carm_function_name(CarmFunction fn);
extern void carm_parse_permission(const char *perm, CarmFunction *fn, CarmLevel *level);
extern CarmLevel carm_role_level(CarmRole role, CarmFunction fn);

/* ---- errors.c: what an error shows a client (SPEC §10) ---- */
extern void carm_errors_init(void);

/* ---- check.c ---- */
extern bool carm_require_actor_reads;	/* GUC carm_deleg.require_actor */

/* ---- bn.c ---- */
extern bool carm_bn9_is_valid(const char *s);
extern bool carm_bn15_is_valid(const char *s);

/* ---- text.c ---- */
extern void carm_trim_blank(const char *s, int len, int *start, int *trimmed_len);

/* ---- owner.c ---- */
extern void carm_as_owner(void (*fn) (void *arg), void *arg);
extern void carm_check_version(Oid anchor);
extern struct _SPI_plan *carm_owner_plan(struct _SPI_plan **slot, const char *sql, int nargs,
										 Oid *argtypes, bool generic);
extern Oid	carm_schema_oid(bool missing_ok);
extern Snapshot carm_read_snapshot(void);

/* ---- actor.c ---- */
extern char *carm_actor_setting;	/* GUC carm_deleg.actor: "" or "uid" or "uid/bid" */
extern bool carm_allow_session_actor;	/* GUC carm_deleg.allow_session_actor */
extern void carm_define_actor_guc(void);
extern void carm_actor_init(void);	/* syscache callback for login bindings */
extern int64 carm_current_actor(int64 *on_behalf_of);	/* 0 when none */
extern void carm_forbid_restricted(void);	/* 42501 inside a security-restricted operation */
extern int64 carm_require_actor(void);	/* ereports 42501 'no acting user' */
extern int64 carm_require_active_actor(void);	/* and 28000 when deactivated */
extern void carm_require_admin_role(void);	/* 42501 inside a security-restricted operation */
extern void carm_actor_invalidate_binding(void);
extern void carm_actor_forget_users(void);

/* ---- caller.c ---- */
extern void carm_caller_init(void);	/* fmgr_hook: the users SECURITY DEFINER calls run as */
extern Oid	carm_caller_running_role(void); /* InvalidOid when unknown */

/* ---- cache.c ---- */

typedef enum CarmGrantSource
{
	CARM_SRC_EMPLOYEE = 0,		/* the client's own employee (V1) */
	CARM_SRC_PROXY,				/* a proxy role through an active relationship (V2) */
	CARM_SRC_CLOSED				/* EXPIRED: relationship expired or ended (V4) */
} CarmGrantSource;

/* One path by which the actor holds a role on one program (or business). */
typedef struct CarmGrant
{
	CarmRole	role;
	CarmGrantSource source;
	bool		provider_bam;	/* proxy role held as a BAM of the provider (R6) */
	bool		see_client;		/* V2(b) */
	bool		see_other;		/* V2(c) */
	bool		all_programs;	/* business-level grant: role held at all-programs scope */
	int64		business_id;	/* the business that owns the program (the client) */
	int64		via_business_id;	/* the acting business: client, or the provider */
	TimestampTz expires_at;		/* DT_NOEND when none (R9) */
} CarmGrant;

typedef struct CarmGrantList
{
	int64		key;			/* program id or business id */
	int64		business_id;	/* the business the program belongs to */
	int			ngrants;
	CarmGrant  *grants;
} CarmGrantList;

extern void carm_cache_init(void);
extern bool carm_shared_usable(void);
extern void carm_statement_begin(void);
extern void carm_cache_complete(int64 user_id);
extern const CarmGrantList *carm_program_grants(int64 user_id, int64 program_id);
extern const CarmGrantList *carm_business_grants(int64 user_id, int64 business_id);
extern const CarmGrantList *carm_target_program_grants(int64 user_id, int64 program_id,
														int64 business_id);
extern void carm_foreach_program(int64 user_id, void (*fn) (const CarmGrantList *, void *),
								 void *arg, uint64 *generation);
extern void carm_foreach_business(int64 user_id, void (*fn) (const CarmGrantList *, void *),
								  void *arg);
extern int64 carm_total_programs(void);
extern double carm_reach_estimate(int64 user_id);
extern uint64 carm_cache_generation(int64 user_id);
extern uint64 carm_cache_reset_count(void);
/* The time decisions judge expiry at: the statement's (R9, SPEC §10 rev. 1.2). */
extern TimestampTz carm_decision_time(void);

/* ---- inval.c ---- */
typedef enum CarmInvalKind
{
	CARM_INVAL_NONE,
	CARM_INVAL_ALL,
	CARM_INVAL_USER,
	CARM_INVAL_BUSINESS
} CarmInvalKind;
extern Oid	carm_anchor_relid(void);
extern void carm_inval_init(void);
extern CarmInvalKind carm_decode_inval(Oid relid, Oid anchor, int64 *id);
extern bool carm_xact_changed_state(void);	/* this transaction queued a key */

/* ---- visibility.c ---- */

/* Flags of a program's decision (see visibility.c). */
#define CARM_VIS_ALL		0x01	/* every row (V1) */
#define CARM_VIS_CLIENT_OK	0x02	/* rows the client submitted (V2(b)) */
#define CARM_VIS_OTHER_OK	0x04	/* rows a third business submitted (V2(c)) */
#define CARM_VIS_MULTI		0x08	/* several acting businesses: ask the grants */
#define CARM_VIS_PRESENT	0x10	/* a cell in use */
#define CARM_VIS_BIG_CLIENT 0x20	/* the owner's id does not fit in 32 bits */
#define CARM_VIS_VIA		0x40	/* of one grant: rows its acting business submitted
									 * (V2(a), V3, V4); never stored in a cell */
#define CARM_VIS_MAX_VIAS	255

/* One program in the dense form: 8 bytes, so 20,000 programs take 160 kB. */
typedef struct CarmVisCell
{
	int32		client_id;		/* the business that owns the program */
	uint8		flags;
	uint8		via;			/* index into vias: its submissions are visible */
	uint16		unused;
} CarmVisCell;

typedef struct CarmVisEntry CarmVisEntry;	/* the hash form (visibility.c) */

typedef struct CarmVisTable
{
	CarmFunction fn;
	int64		user_id;
	uint64		generation;		/* the store's generation it was derived from */
	TimestampTz derived_at;		/* the clock it was derived for */
	TimestampTz valid_until;	/* earliest expiry after derived_at */
	uint32		mask;			/* hash capacity - 1 */
	int			count;
	CarmVisEntry *slots;		/* the hash form, or NULL */
	CarmVisCell *cells;			/* the dense form, or NULL */
	int64		base;			/* program id of cells[0] */
	uint64		range;
	int			nvias;
	int64		vias[CARM_VIS_MAX_VIAS + 1];
} CarmVisTable;

/*
 * Bumped whenever a decision table a caller holds may have become invalid:
 * the store changed or has invalidations to apply, a transaction ended, or
 * the time of the statement crossed the earliest expiry a table depends on
 * (carm_vis_expiry_crossed(), checked when an executor starts or runs).  A row check compares it with the value it saw
 * when it validated its table, instead of validating per row.
 */
extern uint64 carm_decision_epoch;
extern int64 carm_actor_uid;	/* the actor set with set_actor(), 0 if none */

extern const CarmVisTable *carm_vis_table(int64 user_id, CarmFunction fn);
extern bool carm_vis_table_valid(const CarmVisTable *t, int64 user_id);
extern bool carm_vis_expiry_crossed(TimestampTz now);
extern int	carm_vis_decide_hashed(const CarmVisTable *t, int64 program_id, int64 submitter);
extern int64 *carm_vis_table_programs(const CarmVisTable *t, int *count);

/*
 * V1-V4 from a decision table: may the user see a row of this program
 * submitted by this business?  1 yes, 0 no, -1 decide from the grants.
 * Inline: the row check calls it for every row of a scan.
 */
static inline int
carm_vis_decide(const CarmVisTable *t, int64 program_id, int64 submitter)
{
	uint64		i;
	CarmVisCell c;

	if (t->cells == NULL)
		return carm_vis_decide_hashed(t, program_id, submitter);
	i = (uint64) (program_id - t->base);
	if (i >= t->range)
		return 0;
	c = t->cells[i];
	if (c.flags & CARM_VIS_ALL)
		return 1;
	if (!(c.flags & CARM_VIS_PRESENT))
		return 0;
	if (submitter == t->vias[c.via])
		return 1;
	if (c.flags & (CARM_VIS_MULTI | CARM_VIS_BIG_CLIENT))
		return -1;
	if (submitter == c.client_id)
		return (c.flags & CARM_VIS_CLIENT_OK) != 0;
	return (c.flags & CARM_VIS_OTHER_OK) != 0;
}

/* A grant's role as it stands at time 'now' (R9: expiry without a sweep). */
extern CarmRole carm_grant_effective_role(const CarmGrant *g, TimestampTz now);

/* ---- stats.c: counters for carm.stats (SPEC §12) ---- */
typedef enum CarmStat
{
	CARM_STAT_POINT_CHECKS = 0,	/* has_access, user_has_access */
	CARM_STAT_ROW_CHECKS,		/* row_visible calls */
	CARM_STAT_STORE_HITS,		/* point checks answered without a load */
	CARM_STAT_FULL_LOADS,		/* every grant of a user loaded */
	CARM_STAT_BUSINESS_LOADS,	/* one or a few businesses' grants loaded */
	CARM_STAT_LOAD_US,			/* time spent loading, microseconds */
	CARM_STAT_INVALIDATIONS,	/* invalidation keys applied to a store */
	CARM_STAT_TABLES_DERIVED,	/* decision tables derived (visibility.c) */
	CARM_STAT_MAINTENANCE_RUNS, /* runs of the maintenance worker */
	CARM_STAT_SHARED_HITS,		/* loads answered by a set another backend published */
	CARM_STAT_SHARED_MISSES,	/* loads that found no valid shared set */
	CARM_STAT_SHARED_PUBLISHED, /* sets published for the other backends */
	CARM_STAT_SHARED_EVICTIONS, /* sets evicted to make room */
	CARM_NUM_STATS
} CarmStat;
extern uint64 carm_stats_local[CARM_NUM_STATS];
#define carm_count(stat, n) (carm_stats_local[(stat)] += (n))
extern void carm_stats_init(void);
extern void carm_stats_flush(void);
extern void carm_stats_maintenance(TimestampTz started, double ms, const char *result);

/* ---- shared_store.c: grant sets shared across backends ---- */
typedef enum CarmSharedKind
{
	CARM_SHARED_BUSINESS = 1,	/* a user's grants on one business */
	CARM_SHARED_PROGRAM,		/* a user's grants on the business of one program */
	CARM_SHARED_ALL,			/* every grant of a user */
	CARM_SHARED_REACH,			/* the planner's estimate of a user's reach */
	CARM_SHARED_USER			/* a user exists, and whether it is active (set_actor) */
} CarmSharedKind;
extern int	carm_shared_store_mb;	/* GUC carm_deleg.shared_store_size */
extern void carm_shared_init(void);
extern bool carm_shared_available(void);
extern uint64 carm_shared_position(void);
extern void carm_shared_set_anchor(Oid anchor);
extern void carm_shared_note(CarmInvalKind kind, int64 id);
extern bool carm_shared_get(CarmSharedKind kind, int64 user_id, int64 id, uint64 upto,
							void **data, Size *len, int64 *business_id, double *value,
							int64 *patches, int *npatches, int max_patches);
extern void carm_shared_put(CarmSharedKind kind, int64 user_id, int64 id, uint64 stamp,
							const void *data, Size len, int64 business_id, double value);

/* ---- check.c ---- */
extern uint8 carm_grant_row_flags(const CarmGrant *g, CarmFunction fn, TimestampTz now);
extern struct ArrayType *carm_id_array(const int64 *ids, int n);

/* ---- worker.c ---- */
extern int	carm_maintenance_interval;	/* seconds */
extern char *carm_maintenance_database;
extern void carm_worker_register(void);



/* ---- target.c: business numbers to ids ---- */
typedef struct CarmTarget
{
	bool		is_program;
	int64		id;				/* program id or business id */
	int64		business_id;	/* owning business */
} CarmTarget;
typedef enum CarmNumberKind
{
	CARM_NUMBER_ANY,			/* a BN9 or a BN15 (a target) */
	CARM_NUMBER_BUSINESS,		/* a BN9 only */
	CARM_NUMBER_PROGRAM			/* a BN15 only */
} CarmNumberKind;
extern void carm_lookup_target(const char *bn, CarmNumberKind kind, CarmTarget *target);	/* ereports 22023 / P0002 */

/* ---- citus.c ---- */
extern bool carm_citus_loaded(void);
extern bool carm_citus_active(void);
extern bool carm_citus_is_worker(void);
extern void carm_citus_propagate(const char *sql);
extern void carm_citus_init(void);
extern void carm_citus_statement_begin(void);
extern void carm_actor_resend(void);
extern bool carm_actor_accept_set_local(const char *value);
extern void carm_actor_end_set_local(void);
extern bool carm_actor_unchecked;
/* actor.c's state that the SET LOCAL path (citus.c) reads and sets */
extern bool carm_actor_assigning;	/* the check hook accepts the assignment under way */
extern int64 carm_actor_bid;	/* the business fixed by on_behalf_of, or 0 */
extern bool carm_parse_actor(const char *s, int64 *uid, int64 *bid);
extern void carm_require_gateway(void);	/* 42501 unless the role is in carm_gateway */
extern void carm_actor_mark_checked(int64 uid, int64 bid);
extern bool carm_actor_changed;
extern void carm_actor_check_set_local(void);

#endif							/* CARM_DELEG_H */
