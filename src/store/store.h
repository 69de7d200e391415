/* SPDX-License-Identifier: MIT */
/* store.h: the control plane's durable state. A key-value store with the etcd v3 model, so an
 * etcd backend can replace the embedded SQLite one without changing callers.
 * Prefixes: store_, STORE_.   (Guard SHOAL_STORE_H; includes core/core.h.)
 *
 * Model (etcd v3):
 *  - One global revision counter. Every transaction that changes something advances it by
 *    exactly one; all changes of that transaction share the new revision. A transaction, a
 *    delete or a revoke that changes nothing leaves it alone.
 *  - Each live key has create_revision (revision of the put that created it), mod_revision
 *    (revision of its last put) and version (1 on creation, +1 on every put). A delete removes
 *    the key; a later put creates it again with version 1. A key that does not exist reads as
 *    version 0, create_revision 0, mod_revision 0 in compares.
 *  - Keys and values are bytes (keys 1..STORE_MAX_KEY_BYTES, values 0..STORE_MAX_VALUE_BYTES);
 *    keys order by memcmp, a shorter key first on a tie.
 *  - Every change is an event kept in the store's log. The log keeps, for every key, at least
 *    its last <history> events (puts and deletes), and every event of the last <watch_window>
 *    revisions. Older events are compacted; compact_revision is the highest revision whose
 *    events may be incomplete, so a watch or history from revision r is exact when
 *    r > compact_revision.
 *  - Leases have a TTL; a put may attach a key to a lease. When a lease is revoked, or expires
 *    at a store_tick(), its keys are deleted in one revision.
 *
 * Durability: a call that writes returns only after its transaction is committed to disk (SQLite
 * WAL, synchronous=FULL): an acknowledged write survives kill -9 of the process and, on a disk
 * that honours fsync, a power cut (tests/integ/test_store_crash.sh).
 * Group commit (store_config.is_group_commit): a write instead returns once it is applied inside
 * the store's open batch (one SQLite transaction; each write its own savepoint, so a failed one
 * undoes only itself), and store_sync() commits the batch with one fsync. Reads and watches see
 * the batch's writes at once. The owner must then keep everything that depends on a write from
 * leaving the process (answers, above all) until store_sync() returns: the control plane syncs
 * once per loop iteration and its HTTP server holds its output until then (http_barrier).
 *
 * Threads: a store belongs to one thread, the control thread (design.md); every function below,
 * and every callback, runs on it. There are no threads inside: lease expiry happens when the
 * owner calls store_tick() (from a loop timer), and watch callbacks run inside the write call
 * that caused them, after it has committed (with group commit: after it was applied to the
 * open batch; the owner holds back what it sends out until store_sync). Nothing here blocks on
 * another process except the disk (and SQLite's busy timeout, which only a foreign process holding
 * the file can trigger: the data dir is locked against a second shoal).
 */
#ifndef SHOAL_STORE_H
#define SHOAL_STORE_H

#include "core/core.h"

/* ------------------------------------------------------------------------------------------
 * Limits and statuses
 * ------------------------------------------------------------------------------------------ */
enum {
    STORE_MAX_KEY_BYTES = 4096, /* longer keys fail with SH_ETOOBIG, empty ones SH_EINVAL */
    STORE_MAX_VALUE_BYTES = 1024 * 1024, /* longer values fail with SH_ETOOBIG */
    STORE_MAX_TXN_OPS = 128,             /* compares, or ops of one branch (etcd's default) */
    STORE_DEFAULT_HISTORY = 10,          /* events kept per key */
    STORE_DEFAULT_WATCH_WINDOW = 10000,  /* revisions whose events are all kept */
};

/* A named positive status: store_cas() found the key not at the expected mod_revision. */
enum { STORE_CONFLICT = 1 };

/* ------------------------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------------------------ */
struct store; /* opaque service object */

enum store_backend {
    STORE_BACKEND_SQLITE = 0, /* <data_dir>/store.db, embedded */
    STORE_BACKEND_ETCD = 1,   /* reserved: store_open answers SH_ENOTSUP for now */
};

/* The wall clock in ms since the Unix epoch; tests pass a fake one. */
typedef uint64_t store_clock_fn(void *data);

struct store_config {
    const char *data_dir; /* created (0700) when missing; required */
    enum store_backend backend;
    uint32_t history;         /* events kept per key; 0 = STORE_DEFAULT_HISTORY */
    uint32_t watch_window;    /* 0 = STORE_DEFAULT_WATCH_WINDOW */
    uint32_t busy_timeout_ms; /* 0 = 5000 */
    /* Lease deadlines are stored as wall-clock times, so a lease keeps its deadline across a
     * restart; one that passed while the process was down expires at the first store_tick().
     * lease_grace_ms > 0 pushes every deadline to at least open time + grace, so holders get a
     * chance to keep alive after a long outage (etcd refreshes all leases on a new leader). */
    uint64_t lease_grace_ms;
    bool is_integrity_check; /* PRAGMA quick_check at open: SH_ECORRUPT when it fails */
    bool is_group_commit;    /* writes wait for store_sync() (see Durability above) */
    store_clock_fn *clock;   /* NULL = sh_wall_ms */
    void *clock_data;
};

/* Opens (creating and migrating as needed) the store described by <cfg>.
 * Returns 0 and sets *out (caller closes with store_close), or a negative SH_E* code, sets *out
 * to NULL and fills <d> (may be NULL): where = the path concerned, what = what failed.
 * SH_EBUSY: another process has the data dir open. SH_ENOTSUP: backend not built, or the
 * database was written by a newer shoal (its schema version is above ours). */
SH_MUST_CHECK int store_open(const struct store_config *cfg, struct store **out, struct sh_diag *d);
/* Commits an open batch (store_sync), cancels and frees every watch, closes the database
 * (checkpointing the WAL). NULL is a no-op. Not from inside a watch callback. */
void store_close(struct store *st);

/* Group commit: true while writes applied since the last store_sync() are not yet durable. */
bool store_is_unsynced(const struct store *st);
/* Commits the open batch (one fsync). 0 when there was none. On failure every write of the
 * batch is lost although each call returned 0, and the revision and whatever the owner built
 * from those writes are no longer true: the owner must stop (etcd and PostgreSQL do the same on
 * a failed WAL fsync). SH_EIO, SH_ENOSPC... with store_errmsg() saying why. */
SH_MUST_CHECK int store_sync(struct store *st);

/* The last error's message on this handle ("" when none), like sqlite3_errmsg. Borrowed until
 * the next call on st. */
const char *store_errmsg(const struct store *st);
/* The current revision (0 for an empty, never-written store). */
int64_t store_revision(const struct store *st);
/* The highest revision whose events may have been compacted (0 = nothing compacted). */
int64_t store_compact_revision(const struct store *st);

/* ------------------------------------------------------------------------------------------
 * Key selections
 * ------------------------------------------------------------------------------------------ */
enum store_span_kind {
    STORE_SPAN_KEY = 0,    /* exactly <key> */
    STORE_SPAN_PREFIX = 1, /* every key starting with <key>; an empty prefix is every key */
    STORE_SPAN_RANGE = 2,  /* [key, end); an empty <end> means no upper bound */
};
struct store_span {
    enum store_span_kind kind;
    struct slice key;
    struct slice end;
};
#define STORE_KEY(k) ((struct store_span){.kind = STORE_SPAN_KEY, .key = (k)})
#define STORE_PREFIX(p) ((struct store_span){.kind = STORE_SPAN_PREFIX, .key = (p)})
#define STORE_RANGE(a, b) ((struct store_span){.kind = STORE_SPAN_RANGE, .key = (a), .end = (b)})

/* ------------------------------------------------------------------------------------------
 * Reads. Results are owned by a struct store_result the caller releases.
 * ------------------------------------------------------------------------------------------ */
struct store_kv {
    struct slice key;
    struct slice value;      /* empty for a delete in history */
    int64_t create_revision; /* 0 for a delete in history */
    int64_t mod_revision;    /* the revision of the put (or of the delete, in history) */
    int64_t version;         /* 0 marks a delete in history */
    int64_t lease;           /* 0 = none */
};

/* A read's answer. kvs[i].key/value point into the result and live until
 * store_result_release. A zeroed struct is a valid empty result. */
struct store_result {
    struct store_kv *kvs;
    size_t count;
    bool has_more;      /* store_range: more keys matched than <limit> */
    int64_t revision;   /* the store's revision when read */
    struct arena arena; /* private: the bytes */
    size_t cap;         /* private */
};
void store_result_release(struct store_result *res); /* idempotent */

/* Reads one key. 0 with res->count == 1, SH_ENOENT (res empty, res->revision set), or SH_E*.
 * <res> is overwritten (release it first when reusing). */
SH_MUST_CHECK int store_get(struct store *st, struct slice key, struct store_result *res);
/* Reads the keys in <span> in key order, at most <limit> of them (0 = no limit).
 * 0 (res->count may be 0) or SH_E*. */
SH_MUST_CHECK int store_range(struct store *st, struct store_span span, size_t limit,
                              struct store_result *res);
/* The last <limit> events of <key> (0 = all kept), newest first: puts as the key's state after
 * the put, deletes with version 0. At least the last <history> events are kept (store_config).
 * 0 (count may be 0) or SH_E*. */
SH_MUST_CHECK int store_history(struct store *st, struct slice key, size_t limit,
                                struct store_result *res);

/* ------------------------------------------------------------------------------------------
 * Writes: transactions of compares, then the success or the failure branch, all atomic.
 * ------------------------------------------------------------------------------------------ */
enum store_cmp_target {
    STORE_CMP_VERSION = 0, /* num against version (0 = absent) */
    STORE_CMP_CREATE = 1,  /* num against create_revision */
    STORE_CMP_MOD = 2,     /* num against mod_revision */
    STORE_CMP_VALUE = 3,   /* value against the value (memcmp order); false when absent */
    STORE_CMP_LEASE = 4,   /* num against lease id (0 = none or absent) */
};
enum store_cmp_op { STORE_EQ = 0, STORE_NE, STORE_LT, STORE_GT };

struct store_cmp {
    struct slice key;
    enum store_cmp_target target;
    enum store_cmp_op op;
    int64_t num;        /* VERSION, CREATE, MOD, LEASE */
    struct slice value; /* VALUE */
};

enum store_op_type { STORE_OP_PUT = 0, STORE_OP_DELETE = 1 };
struct store_op {
    enum store_op_type type;
    struct store_span span; /* PUT: STORE_SPAN_KEY only; DELETE: any */
    struct slice value;     /* PUT */
    int64_t lease;          /* PUT: attach to this live lease (SH_ENOENT if none); 0 = none */
};

struct store_txn {
    const struct store_cmp *cmps;
    size_t cmp_count;
    const struct store_op *success; /* run when every compare holds (or there are none) */
    size_t success_count;
    const struct store_op *failure; /* run otherwise */
    size_t failure_count;
};

struct store_txn_result {
    bool is_succeeded;    /* every compare held */
    int64_t revision;     /* the store's revision after the txn (new when it changed something) */
    size_t deleted_count; /* keys removed by the branch that ran */
};

/* Runs <txn> atomically. Ops of the branch may not touch a key twice (two puts of one key, or a
 * put inside a delete's span): SH_EINVAL, as etcd. Every op is checked before anything is
 * written; on any error nothing is changed and *out is zeroed. Watches see the events after the
 * commit, before this returns. 0 or SH_E* (SH_ETOOBIG: a key, value or count over its limit). */
SH_MUST_CHECK int store_txn(struct store *st, const struct store_txn *txn,
                            struct store_txn_result *out);

/* store_txn shorthands. <out_revision> (OUT, may be NULL) gets the revision after the call. */
SH_MUST_CHECK int store_put(struct store *st, struct slice key, struct slice value, int64_t lease,
                            int64_t *out_revision);
/* Deletes the keys in <span>; *out_deleted (may be NULL) gets how many. */
SH_MUST_CHECK int store_delete(struct store *st, struct store_span span, size_t *out_deleted,
                               int64_t *out_revision);
/* Puts <value> (lease kept as none) only if <key>'s mod_revision is <expected_mod_revision>
 * (0 = the key must not exist). 0, STORE_CONFLICT (nothing changed), or SH_E*. */
SH_MUST_CHECK int store_cas(struct store *st, struct slice key, int64_t expected_mod_revision,
                            struct slice value, int64_t *out_revision);

/* ------------------------------------------------------------------------------------------
 * Leases
 * ------------------------------------------------------------------------------------------ */
/* Grants a lease of <ttl_ms> (> 0) from now; *out_id gets its id (> 0). 0 or SH_E*. */
SH_MUST_CHECK int store_lease_grant(struct store *st, uint64_t ttl_ms, int64_t *out_id);
/* Moves the lease's deadline to now + its TTL. 0, SH_ENOENT (unknown or expired), or SH_E*. */
SH_MUST_CHECK int store_lease_keepalive(struct store *st, int64_t id);
/* Ms left before the lease expires (0 when due). 0, SH_ENOENT, or SH_E*. */
SH_MUST_CHECK int store_lease_ttl(struct store *st, int64_t id, uint64_t *out_remaining_ms);
/* Deletes the lease's keys in one revision and the lease. 0, SH_ENOENT, or SH_E*. */
SH_MUST_CHECK int store_lease_revoke(struct store *st, int64_t id);
/* Revokes every lease whose deadline is at or before the clock's now. Call it from a timer on
 * the owning thread (every 100..500 ms is plenty). Returns how many leases expired, or SH_E*. */
SH_MUST_CHECK int store_tick(struct store *st);

/* ------------------------------------------------------------------------------------------
 * Watches
 * ------------------------------------------------------------------------------------------ */
struct store_watch; /* opaque; owned by the caller until store_watch_cancel */

enum store_event_type {
    STORE_EVENT_PUT = 1,
    STORE_EVENT_DELETE = 2, /* kv: key, mod_revision = the delete's revision; the rest 0 */
    STORE_EVENT_ERROR = 3,  /* err says why; the watch delivers nothing more (cancel it) */
};
struct store_event {
    enum store_event_type type;
    struct store_kv kv;   /* borrowed for the callback's duration */
    bool is_revision_end; /* the last event of its revision for this watch */
    int err;              /* ERROR: SH_ECOMPACTED (fell behind), SH_EIO, ... */
};

/* Called once per event, in revision order (and, within a revision, in the transaction's op
 * order). May call anything on the store, store_watch_cancel(w) included (nothing more is then
 * delivered to w); writes made inside are delivered after the current event batch. */
typedef void store_watch_fn(void *data, struct store_watch *w, const struct store_event *ev);

struct store_watch_config {
    struct store_span span;
    /* 0: only changes after now. r > 0: first every event with revision >= r (from the log),
     * then live events. SH_ECOMPACTED when r <= store_compact_revision(). */
    int64_t from_revision;
};

/* Starts a watch. The replay of past events, if any, is delivered before this returns (the
 * callback may cancel the watch during it: then 0 is returned with *out NULL). Returns 0 and
 * sets *out, or SH_E* (SH_ECOMPACTED, SH_EINVAL, SH_ENOMEM) with *out NULL and no callback. */
SH_MUST_CHECK int store_watch(struct store *st, const struct store_watch_config *cfg,
                              store_watch_fn *cb, void *data, struct store_watch **out);
/* Stops and frees the watch; safe inside its own (or any) callback. NULL is a no-op. */
void store_watch_cancel(struct store_watch *w);

#endif
