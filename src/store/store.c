/* SPDX-License-Identifier: MIT */
/* store.c: the backend-neutral front of the store: argument checks and limits, shorthands over
 * store_txn, and watches (replay from the backend's log, then live delivery of each committed
 * write's events; with group commit, of each write applied to the open batch).
 *
 * Delivery invariants: every committed write queues its events on st->pending before its call
 * returns; one drain loop (never re-entered) hands each queued revision to every watch whose
 * next_rev it reaches, oldest revision first, so a write made inside a callback is delivered
 * after the batch being delivered. A watch replaying from the log is skipped by the drain: its
 * replay loop reads every committed revision up to the current one, live ones included.
 * A cancel inside a callback only marks the watch; it is unlinked and freed once no callback
 * runs (st->busy == 0).
 * Threads: the store's owner thread only. */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

enum { REPLAY_PAGE_REVISIONS = 64 };

struct store_watch {
    struct store *st;
    struct store_watch *next;
    store_watch_fn *cb;
    void *data;
    int64_t next_rev; /* the first revision not delivered yet */
    bool is_replaying;
    bool is_canceled;
    bool is_failed; /* an ERROR event was delivered */
    struct store__range range;
};

/* ---- helpers shared with the backends ---- */

int store__key_cmp(struct slice a, struct slice b)
{
    size_t n = SH_MIN(a.len, b.len);
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;

    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

void store__range_from_span(struct store__range *r, struct store_span span, char *buf)
{
    r->lo = span.key;
    r->has_hi = true;
    switch (span.kind) {
    case STORE_SPAN_KEY:
        memcpy(buf, span.key.ptr, span.key.len);
        buf[span.key.len] = '\0';
        r->hi = (struct slice){.ptr = buf, .len = span.key.len + 1};
        break;
    case STORE_SPAN_PREFIX: {
        /* The first key after every key with this prefix: drop trailing 0xff, bump the last. */
        size_t n = span.key.len;
        if (n) memcpy(buf, span.key.ptr, n);
        while (n && (unsigned char)buf[n - 1] == 0xff)
            n--;
        if (!n) {
            r->has_hi = false;
            r->hi = SLICE_NULL;
        } else {
            buf[n - 1] = (char)((unsigned char)buf[n - 1] + 1);
            r->hi = (struct slice){.ptr = buf, .len = n};
        }
        break;
    }
    case STORE_SPAN_RANGE:
    default:
        r->hi = span.end;
        r->has_hi = span.end.len > 0;
        break;
    }
}

bool store__range_has(const struct store__range *r, struct slice key)
{
    return store__key_cmp(key, r->lo) >= 0 && (!r->has_hi || store__key_cmp(key, r->hi) < 0);
}

void store__events_init(struct store__events *evs)
{
    memset(evs, 0, sizeof(*evs));
    arena_init(&evs->arena, 16384, 0);
}

void store__events_release(struct store__events *evs)
{
    sh_free(evs->ev);
    evs->ev = NULL;
    evs->count = evs->cap = 0;
    arena_release(&evs->arena);
}

static int copy_kv(struct arena *a, const struct store_kv *in, struct store_kv *out)
{
    char *k = arena_alloc(a, in->key.len + in->value.len + 1);

    if (!k) return SH_ENOMEM;
    *out = *in;
    if (in->key.len) memcpy(k, in->key.ptr, in->key.len);
    if (in->value.len) memcpy(k + in->key.len, in->value.ptr, in->value.len);
    k[in->key.len + in->value.len] = '\0';
    out->key = (struct slice){.ptr = k, .len = in->key.len};
    out->value = (struct slice){.ptr = k + in->key.len, .len = in->value.len};
    return 0;
}

int store__events_add(struct store__events *evs, enum store_event_type type,
                      const struct store_kv *kv)
{
    SH_TRY(sh_array_reserve(&evs->ev, &evs->cap, evs->count + 1, sizeof(*evs->ev)));
    struct store_event *e = &evs->ev[evs->count];
    memset(e, 0, sizeof(*e));
    e->type = type;
    if (copy_kv(&evs->arena, kv, &e->kv) < 0) return SH_ENOMEM;
    evs->count++;
    return 0;
}

int store__result_add(struct store_result *res, const struct store_kv *kv)
{
    SH_TRY(sh_array_reserve(&res->kvs, &res->cap, res->count + 1, sizeof(*res->kvs)));
    if (copy_kv(&res->arena, kv, &res->kvs[res->count]) < 0) return SH_ENOMEM;
    res->count++;
    return 0;
}

void store_result_release(struct store_result *res)
{
    if (!res) return;
    sh_free(res->kvs);
    arena_release(&res->arena);
    memset(res, 0, sizeof(*res));
}

static void result_init(struct store_result *res)
{
    memset(res, 0, sizeof(*res));
    arena_init(&res->arena, 16384, 0);
}

void store__set_errmsg(struct store *st, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->errmsg, sizeof(st->errmsg), fmt, ap);
    va_end(ap);
}

/* ---- argument checks ---- */

static int check_key(struct store *st, struct slice key)
{
    if (!key.ptr || !key.len) {
        store__set_errmsg(st, "empty key");
        return SH_EINVAL;
    }
    if (key.len > STORE_MAX_KEY_BYTES) {
        store__set_errmsg(st, "key of %zu bytes (limit %d)", key.len, STORE_MAX_KEY_BYTES);
        return SH_ETOOBIG;
    }
    return 0;
}

static int check_span(struct store *st, struct store_span span)
{
    switch (span.kind) {
    case STORE_SPAN_KEY:
        return check_key(st, span.key);
    case STORE_SPAN_PREFIX:
        if (span.key.len && !span.key.ptr) return SH_EINVAL;
        break;
    case STORE_SPAN_RANGE:
        if ((span.key.len && !span.key.ptr) || (span.end.len && !span.end.ptr)) return SH_EINVAL;
        if (span.end.len > STORE_MAX_KEY_BYTES + 1) {
            store__set_errmsg(st, "range end of %zu bytes", span.end.len);
            return SH_ETOOBIG;
        }
        break;
    default:
        store__set_errmsg(st, "unknown span kind %d", (int)span.kind);
        return SH_EINVAL;
    }
    if (span.key.len > STORE_MAX_KEY_BYTES) {
        store__set_errmsg(st, "key of %zu bytes (limit %d)", span.key.len, STORE_MAX_KEY_BYTES);
        return SH_ETOOBIG;
    }
    return 0;
}

static bool spans_overlap(struct store_span a, struct store_span b)
{
    struct store__range ra, rb;
    char abuf[STORE__RANGE_BUF], bbuf[STORE__RANGE_BUF];

    store__range_from_span(&ra, a, abuf);
    store__range_from_span(&rb, b, bbuf);
    /* [a.lo, a.hi) and [b.lo, b.hi) meet when each starts before the other ends. */
    return (!ra.has_hi || store__key_cmp(rb.lo, ra.hi) < 0) &&
           (!rb.has_hi || store__key_cmp(ra.lo, rb.hi) < 0);
}

static int check_ops(struct store *st, const struct store_op *ops, size_t count)
{
    int rc;

    if (count > STORE_MAX_TXN_OPS) {
        store__set_errmsg(st, "%zu ops in one branch (limit %d)", count, STORE_MAX_TXN_OPS);
        return SH_ETOOBIG;
    }
    if (count && !ops) return SH_EINVAL;
    for (size_t i = 0; i < count; i++) {
        const struct store_op *op = &ops[i];
        if (op->type == STORE_OP_PUT) {
            if (op->span.kind != STORE_SPAN_KEY) {
                store__set_errmsg(st, "op %zu: a put takes a single key", i);
                return SH_EINVAL;
            }
            rc = check_key(st, op->span.key);
            if (rc < 0) return rc;
            if (op->value.len > STORE_MAX_VALUE_BYTES) {
                store__set_errmsg(st, "value of %zu bytes (limit %d)", op->value.len,
                                  STORE_MAX_VALUE_BYTES);
                return SH_ETOOBIG;
            }
            if ((op->value.len && !op->value.ptr) || op->lease < 0) return SH_EINVAL;
        } else if (op->type == STORE_OP_DELETE) {
            rc = check_span(st, op->span);
            if (rc < 0) return rc;
        } else {
            store__set_errmsg(st, "op %zu: unknown type %d", i, (int)op->type);
            return SH_EINVAL;
        }
        /* etcd: a txn may not change one key twice. A delete overlapping a delete is fine. */
        for (size_t j = 0; j < i; j++) {
            if (op->type == STORE_OP_DELETE && ops[j].type == STORE_OP_DELETE) continue;
            if (spans_overlap(op->span, ops[j].span)) {
                store__set_errmsg(st, "ops %zu and %zu change the same key", j, i);
                return SH_EINVAL;
            }
        }
    }
    return 0;
}

static int check_txn(struct store *st, const struct store_txn *txn)
{
    int rc;

    if (txn->cmp_count > STORE_MAX_TXN_OPS) {
        store__set_errmsg(st, "%zu compares (limit %d)", txn->cmp_count, STORE_MAX_TXN_OPS);
        return SH_ETOOBIG;
    }
    if (txn->cmp_count && !txn->cmps) return SH_EINVAL;
    for (size_t i = 0; i < txn->cmp_count; i++) {
        const struct store_cmp *c = &txn->cmps[i];
        rc = check_key(st, c->key);
        if (rc < 0) return rc;
        if ((unsigned)c->target > STORE_CMP_LEASE || (unsigned)c->op > STORE_GT) {
            store__set_errmsg(st, "compare %zu: unknown target or operator", i);
            return SH_EINVAL;
        }
        if (c->target == STORE_CMP_VALUE && c->value.len > STORE_MAX_VALUE_BYTES) return SH_ETOOBIG;
    }
    rc = check_ops(st, txn->success, txn->success_count);
    if (rc < 0) return rc;
    return check_ops(st, txn->failure, txn->failure_count);
}

/* ---- open / close ---- */

static uint64_t wall_clock(void *data)
{
    (void)data;
    return sh_wall_ms();
}

static uint64_t now_ms(struct store *st)
{
    return st->clock(st->clock_data);
}

int store_open(const struct store_config *cfg, struct store **out, struct sh_diag *d)
{
    struct store *st;
    int rc;

    *out = NULL;
    if (!cfg || !cfg->data_dir || !cfg->data_dir[0]) {
        sh_diag_set(d, "store", "data_dir is required");
        return SH_EINVAL;
    }
    if (cfg->backend != STORE_BACKEND_SQLITE) {
        sh_diag_set(d, cfg->data_dir, "store backend %d is not built in", (int)cfg->backend);
        return SH_ENOTSUP;
    }
    st = sh_calloc(1, sizeof(*st));
    if (!st) {
        sh_diag_set(d, cfg->data_dir, "out of memory");
        return SH_ENOMEM;
    }
    st->ops = &store__sqlite_ops;
    st->clock = cfg->clock ? cfg->clock : wall_clock;
    st->clock_data = cfg->clock_data;
    rc = st->ops->open(st, cfg, now_ms(st), d);
    if (rc < 0) goto fail;
    *out = st;
    return 0;
fail:
    store_close(st);
    return rc;
}

static void pending_drop(struct store *st)
{
    while (st->pending) {
        struct store__events *evs = st->pending;
        st->pending = evs->next;
        store__events_release(evs);
        sh_free(evs);
    }
}

void store_close(struct store *st)
{
    if (!st) return;
    if (st->be && st->ops->is_unsynced(st) && st->ops->sync(st) < 0)
        SH_LOG(SH_ERROR, "store", "the last writes were not committed at close",
               LF_STR("detail", st->errmsg));
    while (st->watches) {
        struct store_watch *w = st->watches;
        st->watches = w->next;
        sh_free(w);
    }
    pending_drop(st);
    if (st->be) st->ops->close(st);
    sh_free(st);
}

const char *store_errmsg(const struct store *st)
{
    return st ? st->errmsg : "";
}

bool store_is_unsynced(const struct store *st)
{
    return st->ops->is_unsynced(st);
}

int store_sync(struct store *st)
{
    return st->ops->sync(st);
}

int64_t store_revision(const struct store *st)
{
    return st->ops->revision(st);
}

int64_t store_compact_revision(const struct store *st)
{
    return st->ops->compact_revision(st);
}

/* ---- reads ---- */

int store_get(struct store *st, struct slice key, struct store_result *res)
{
    struct store__range r;
    char buf[STORE__RANGE_BUF];
    int rc;

    result_init(res);
    rc = check_key(st, key);
    if (rc < 0) return rc;
    store__range_from_span(&r, STORE_KEY(key), buf);
    rc = st->ops->range(st, &r, 1, res);
    if (rc < 0) {
        store_result_release(res);
        return rc;
    }
    if (res->count == 0) {
        store__set_errmsg(st, "key not found");
        return SH_ENOENT;
    }
    return 0;
}

int store_range(struct store *st, struct store_span span, size_t limit, struct store_result *res)
{
    struct store__range r;
    char buf[STORE__RANGE_BUF];
    int rc;

    result_init(res);
    rc = check_span(st, span);
    if (rc < 0) return rc;
    store__range_from_span(&r, span, buf);
    rc = st->ops->range(st, &r, limit, res);
    if (rc < 0) store_result_release(res);
    return rc;
}

int store_history(struct store *st, struct slice key, size_t limit, struct store_result *res)
{
    int rc;

    result_init(res);
    rc = check_key(st, key);
    if (rc < 0) return rc;
    rc = st->ops->history(st, key, limit, res);
    if (rc < 0) store_result_release(res);
    return rc;
}

/* ---- watch delivery ---- */

static void sweep_canceled(struct store *st)
{
    struct store_watch **pp = &st->watches;

    if (st->busy || !st->has_canceled) return;
    while (*pp) {
        struct store_watch *w = *pp;
        if (w->is_canceled) {
            *pp = w->next;
            sh_free(w);
        } else {
            pp = &w->next;
        }
    }
    st->has_canceled = false;
}

static bool watch_live(const struct store_watch *w)
{
    return !w->is_canceled && !w->is_failed;
}

/* Delivers the events of evs that w matches and has not seen; evs holds whole revisions. */
static void deliver(struct store_watch *w, const struct store__events *evs)
{
    for (size_t i = 0; i < evs->count && watch_live(w); i++) {
        const struct store_event *e = &evs->ev[i];
        struct store_event copy;
        size_t j;

        if (e->kv.mod_revision < w->next_rev || !store__range_has(&w->range, e->kv.key)) continue;
        for (j = i + 1; j < evs->count; j++) {
            if (evs->ev[j].kv.mod_revision != e->kv.mod_revision ||
                store__range_has(&w->range, evs->ev[j].kv.key))
                break;
        }
        copy = *e;
        copy.is_revision_end = j == evs->count || evs->ev[j].kv.mod_revision != e->kv.mod_revision;
        if (copy.is_revision_end) w->next_rev = e->kv.mod_revision + 1;
        w->cb(w->data, w, &copy);
    }
}

static void fail_watch(struct store_watch *w, int err)
{
    struct store_event ev = {.type = STORE_EVENT_ERROR, .err = err, .is_revision_end = true};

    w->is_failed = true;
    w->cb(w->data, w, &ev);
}

/* Drains st->pending unless a drain is already running further up the stack. */
static void drain(struct store *st)
{
    if (st->busy) return;
    st->busy++;
    while (st->pending) {
        struct store__events *evs = st->pending;
        for (struct store_watch *w = st->watches; w; w = w->next) {
            if (watch_live(w) && !w->is_replaying) deliver(w, evs);
        }
        st->pending = evs->next;
        store__events_release(evs);
        sh_free(evs);
    }
    st->busy--;
    sweep_canceled(st);
}

/* Takes evs (heap-allocated) onto the delivery queue, or frees it when it holds nothing. */
static void enqueue(struct store *st, struct store__events *evs)
{
    struct store__events **pp = &st->pending;

    if (!evs->count) {
        store__events_release(evs);
        sh_free(evs);
        return;
    }
    while (*pp)
        pp = &(*pp)->next;
    evs->next = NULL;
    *pp = evs;
}

static struct store__events *events_new(void)
{
    struct store__events *evs = sh_malloc(sizeof(*evs));

    if (evs) store__events_init(evs);
    return evs;
}

/* ---- writes ---- */

int store_txn(struct store *st, const struct store_txn *txn, struct store_txn_result *out)
{
    struct store__events *evs;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = check_txn(st, txn);
    if (rc < 0) return rc;
    evs = events_new();
    if (!evs) return SH_ENOMEM;
    rc = st->ops->txn(st, txn, out, evs);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
        store__events_release(evs);
        sh_free(evs);
        return rc;
    }
    enqueue(st, evs);
    drain(st);
    return 0;
}

int store_put(struct store *st, struct slice key, struct slice value, int64_t lease,
              int64_t *out_revision)
{
    struct store_op op = {
        .type = STORE_OP_PUT, .span = STORE_KEY(key), .value = value, .lease = lease};
    struct store_txn txn = {.success = &op, .success_count = 1};
    struct store_txn_result res;
    int rc = store_txn(st, &txn, &res);

    if (out_revision) *out_revision = res.revision;
    return rc;
}

int store_delete(struct store *st, struct store_span span, size_t *out_deleted,
                 int64_t *out_revision)
{
    struct store_op op = {.type = STORE_OP_DELETE, .span = span};
    struct store_txn txn = {.success = &op, .success_count = 1};
    struct store_txn_result res;
    int rc = store_txn(st, &txn, &res);

    if (out_deleted) *out_deleted = res.deleted_count;
    if (out_revision) *out_revision = res.revision;
    return rc;
}

int store_cas(struct store *st, struct slice key, int64_t expected_mod_revision, struct slice value,
              int64_t *out_revision)
{
    struct store_cmp cmp = {
        .key = key, .target = STORE_CMP_MOD, .op = STORE_EQ, .num = expected_mod_revision};
    struct store_op op = {.type = STORE_OP_PUT, .span = STORE_KEY(key), .value = value};
    struct store_txn txn = {.cmps = &cmp, .cmp_count = 1, .success = &op, .success_count = 1};
    struct store_txn_result res;
    int rc = store_txn(st, &txn, &res);

    if (out_revision) *out_revision = res.revision;
    if (rc < 0) return rc;
    if (!res.is_succeeded) {
        store__set_errmsg(st, "mod_revision is not %lld", (long long)expected_mod_revision);
        return STORE_CONFLICT;
    }
    return 0;
}

/* ---- leases ---- */

int store_lease_grant(struct store *st, uint64_t ttl_ms, int64_t *out_id)
{
    *out_id = 0;
    if (ttl_ms == 0 || ttl_ms > (uint64_t)INT64_MAX / 4) {
        store__set_errmsg(st, "lease ttl_ms must be in 1..%lld", (long long)(INT64_MAX / 4));
        return SH_EINVAL;
    }
    return st->ops->lease_grant(st, ttl_ms, now_ms(st), out_id);
}

int store_lease_keepalive(struct store *st, int64_t id)
{
    if (id <= 0) return SH_ENOENT;
    return st->ops->lease_keepalive(st, id, now_ms(st));
}

int store_lease_ttl(struct store *st, int64_t id, uint64_t *out_remaining_ms)
{
    *out_remaining_ms = 0;
    if (id <= 0) return SH_ENOENT;
    return st->ops->lease_ttl(st, id, now_ms(st), out_remaining_ms);
}

int store_lease_revoke(struct store *st, int64_t id)
{
    struct store__events *evs;
    int rc;

    if (id <= 0) return SH_ENOENT;
    evs = events_new();
    if (!evs) return SH_ENOMEM;
    rc = st->ops->lease_revoke(st, id, evs);
    if (rc < 0) {
        store__events_release(evs);
        sh_free(evs);
        return rc;
    }
    enqueue(st, evs);
    drain(st);
    return 0;
}

int store_tick(struct store *st)
{
    uint64_t now = now_ms(st);
    int expired = 0;

    for (;;) {
        int64_t id = 0;
        int rc = st->ops->lease_due(st, now, &id);
        if (rc < 0) return rc;
        if (!id) break;
        rc = store_lease_revoke(st, id);
        if (rc < 0 && rc != SH_ENOENT) /* a callback may have revoked it meanwhile */
            return rc;
        if (expired < INT32_MAX) expired++;
    }
    return expired;
}

/* ---- watches ---- */

/* Replays w from w->next_rev up to the current revision, a page of revisions at a time. */
static void replay(struct store *st, struct store_watch *w)
{
    w->is_replaying = true;
    st->busy++;
    while (watch_live(w) && w->next_rev <= st->ops->revision(st)) {
        struct store__events evs;
        /* Never past the current revision: a write made by a callback of this page must be
         * read by the next page. */
        int64_t to = SH_MIN(w->next_rev + REPLAY_PAGE_REVISIONS, st->ops->revision(st) + 1);
        int rc;

        store__events_init(&evs);
        rc = st->ops->events(st, &w->range, w->next_rev, to, &evs);
        if (rc < 0) {
            store__events_release(&evs);
            fail_watch(w, rc);
            break;
        }
        deliver(w, &evs);
        store__events_release(&evs);
        if (watch_live(w) && w->next_rev < to)
            w->next_rev = to; /* revisions of the page with nothing for w */
    }
    w->is_replaying = false;
    st->busy--;
}

int store_watch(struct store *st, const struct store_watch_config *cfg, store_watch_fn *cb,
                void *data, struct store_watch **out)
{
    struct store_watch *w, **pp;
    struct store__range r;
    char buf[STORE__RANGE_BUF];
    int64_t rev = st->ops->revision(st);
    size_t hi_len;
    char *bytes;
    int rc;

    *out = NULL;
    if (!cfg || !cb || cfg->from_revision < 0) return SH_EINVAL;
    rc = check_span(st, cfg->span);
    if (rc < 0) return rc;
    if (cfg->from_revision > 0 && cfg->from_revision <= st->ops->compact_revision(st)) {
        store__set_errmsg(st, "revision %lld is compacted (compact revision %lld)",
                          (long long)cfg->from_revision, (long long)st->ops->compact_revision(st));
        return SH_ECOMPACTED;
    }
    /* The watch keeps its own copy of the bounds, right behind it. */
    store__range_from_span(&r, cfg->span, buf);
    hi_len = r.has_hi ? r.hi.len : 0;
    w = sh_calloc(1, sizeof(*w) + r.lo.len + hi_len + 1);
    if (!w) return SH_ENOMEM;
    w->st = st;
    w->cb = cb;
    w->data = data;
    bytes = (char *)(w + 1);
    if (r.lo.len) memcpy(bytes, r.lo.ptr, r.lo.len);
    if (hi_len) memcpy(bytes + r.lo.len, r.hi.ptr, hi_len);
    w->range.lo = (struct slice){.ptr = bytes, .len = r.lo.len};
    w->range.hi = (struct slice){.ptr = bytes + r.lo.len, .len = hi_len};
    w->range.has_hi = r.has_hi;
    w->next_rev = cfg->from_revision > 0 ? cfg->from_revision : rev + 1;
    for (pp = &st->watches; *pp; pp = &(*pp)->next) {
    }
    *pp = w;
    *out = w;
    if (w->next_rev <= rev) {
        replay(st, w);
        if (w->is_canceled) *out = NULL;
        sweep_canceled(st);
        drain(st); /* writes made by replay callbacks, for the other watches */
    }
    return 0;
}

void store_watch_cancel(struct store_watch *w)
{
    if (!w || w->is_canceled) return;
    w->is_canceled = true;
    w->st->has_canceled = true;
    sweep_canceled(w->st);
}
