/* SPDX-License-Identifier: MIT */
/* store_int.h: what store.c (the backend-neutral front: validation, watches, event delivery)
 * shares with the backends (sqlite.c; etcd.c later). A backend is a struct store_ops; the front
 * checks every argument before calling it, so backends trust their input.
 * Threads: the store's owner thread only, like store.h. */
#ifndef SHOAL_STORE_INT_H
#define SHOAL_STORE_INT_H

#include "store/store.h"

/* A key selection as the half-open interval [lo, hi); has_hi false means no upper bound.
 * An exact key k is [k, k "\0"). lo and hi point into the span's bytes or into the buffer
 * given to store__range_from_span. */
struct store__range {
    struct slice lo;
    struct slice hi;
    bool has_hi;
};
enum { STORE__RANGE_BUF = STORE_MAX_KEY_BYTES + 1 };

/* Events a write produced, in op order, with their bytes in the arena. Built inside the
 * transaction, so running out of memory aborts the write instead of losing events. */
struct store__events {
    struct store_event *ev;
    size_t count, cap;
    struct arena arena;
    struct store__events *next; /* the delivery queue */
};

struct store_ops {
    const char *name;
    int (*open)(struct store *st, const struct store_config *cfg, uint64_t now_ms,
                struct sh_diag *d);
    void (*close)(struct store *st);
    int (*range)(struct store *st, const struct store__range *r, size_t limit,
                 struct store_result *res);
    int (*history)(struct store *st, struct slice key, size_t limit, struct store_result *res);
    /* Appends the committed events to evs. */
    int (*txn)(struct store *st, const struct store_txn *txn, struct store_txn_result *out,
               struct store__events *evs);
    /* Appends the events with revision in [from, to) whose key is in r; SH_ECOMPACTED when
     * from <= the compact revision. */
    int (*events)(struct store *st, const struct store__range *r, int64_t from, int64_t to,
                  struct store__events *evs);
    int (*lease_grant)(struct store *st, uint64_t ttl_ms, uint64_t now_ms, int64_t *out_id);
    int (*lease_keepalive)(struct store *st, int64_t id, uint64_t now_ms);
    int (*lease_ttl)(struct store *st, int64_t id, uint64_t now_ms, uint64_t *out_ms);
    int (*lease_revoke)(struct store *st, int64_t id, struct store__events *evs);
    /* The id of one lease due at now_ms into *out_id, or 0 there when none is due. */
    int (*lease_due)(struct store *st, uint64_t now_ms, int64_t *out_id);
    /* Group commit: commits the open batch; whether one is open. */
    int (*sync)(struct store *st);
    bool (*is_unsynced)(const struct store *st);
    int64_t (*revision)(const struct store *st);
    int64_t (*compact_revision)(const struct store *st);
};

extern const struct store_ops store__sqlite_ops;

struct store {
    const struct store_ops *ops;
    void *be; /* the backend's state */
    store_clock_fn *clock;
    void *clock_data;
    struct store_watch *watches;   /* singly linked, newest last */
    struct store__events *pending; /* committed, not yet delivered; oldest first */
    unsigned busy;                 /* callbacks running: cancels are deferred while > 0 */
    bool has_canceled;             /* a deferred cancel waits for busy == 0 */
    char errmsg[256];
};

/* Fills r from span (validated by the caller); buf holds STORE__RANGE_BUF bytes and must live
 * as long as r. */
void store__range_from_span(struct store__range *r, struct store_span span, char *buf);
bool store__range_has(const struct store__range *r, struct slice key);
/* memcmp order, shorter first on a tie: SQLite's BLOB order. */
int store__key_cmp(struct slice a, struct slice b);

void store__events_init(struct store__events *evs);
void store__events_release(struct store__events *evs);
/* Appends a copy of kv as an event. 0 or SH_ENOMEM (evs unchanged). */
int store__events_add(struct store__events *evs, enum store_event_type type,
                      const struct store_kv *kv);
/* Appends a copy of kv to res. 0 or SH_ENOMEM. */
int store__result_add(struct store_result *res, const struct store_kv *kv);

void store__set_errmsg(struct store *st, const char *fmt, ...) SH_PRINTF(2, 3);

#endif
