/* SPDX-License-Identifier: MIT */
/* snapshot.c: lock-free publication of immutable objects with safe reclamation.
 *
 * A reader's window: it stores the global epoch in its slot, loads the current pointer, bumps
 * that snapshot's count, then marks its slot idle. The publisher swaps the pointer, then bumps
 * the epoch and stamps the old snapshot with the new epoch. A retired snapshot is freed when its
 * count is zero and no slot holds an epoch older than its stamp: any reader still in a window
 * that began before the swap shows an older epoch, and any window that begins after the swap
 * cannot load the old pointer. All atomics on this path are seq_cst: the argument needs the
 * single total order (store slot, load pointer) versus (swap pointer, bump epoch, scan slots). */
#include "core/core.h"

#include <assert.h>

enum { SNAP_MAX_READERS = 256 };
#define SLOT_IDLE UINT64_MAX

/* Each slot sits on its own cache line so readers do not false-share. sh_malloc only promises
 * max_align_t (16), so readers are carved out of a larger block (see reader_mem). */
enum { CACHE_LINE = 64 };
struct snap_reader {
    _Alignas(CACHE_LINE) _Atomic uint64_t epoch; /* SLOT_IDLE outside a window */
    struct snap_domain *dom;
};

struct snap_domain {
    _Atomic(struct snap *) current;
    _Atomic uint64_t epoch;
    _Atomic uint64_t version;
    snap_free_fn *free_fn;
    void *free_data;
    struct snap *retired; /* publisher thread only */
    _Atomic size_t nreaders;
    struct snap_reader *readers[SNAP_MAX_READERS];
    void *reader_mem[SNAP_MAX_READERS]; /* what sh_malloc returned for readers[i] */
};

int snap_domain_new(snap_free_fn *free_fn, void *data, struct snap_domain **out)
{
    struct snap_domain *dom = sh_calloc(1, sizeof(*dom));

    *out = NULL;
    if (!dom) return SH_ENOMEM;
    atomic_init(&dom->current, NULL);
    atomic_init(&dom->epoch, 1);
    atomic_init(&dom->version, 0);
    atomic_init(&dom->nreaders, 0);
    dom->free_fn = free_fn;
    dom->free_data = data;
    *out = dom;
    return 0;
}

static void snap_destroy(struct snap_domain *dom, struct snap *s)
{
    if (s->obj && dom->free_fn) dom->free_fn(s->obj, dom->free_data);
    sh_free(s);
}

void snap_domain_free(struct snap_domain *dom)
{
    struct snap *s, *next;

    if (!dom) return;
    s = atomic_load(&dom->current);
    if (s) snap_destroy(dom, s);
    for (s = dom->retired; s; s = next) {
        next = s->next_retired;
        snap_destroy(dom, s);
    }
    for (size_t i = 0; i < atomic_load(&dom->nreaders); i++)
        sh_free(dom->reader_mem[i]);
    sh_free(dom);
}

int snap_reader_register(struct snap_domain *dom, struct snap_reader **out)
{
    size_t n = atomic_load(&dom->nreaders);
    struct snap_reader *r;
    void *mem;

    *out = NULL;
    if (n >= SNAP_MAX_READERS) return SH_ELIMIT;
    /* The struct demands 64-byte alignment; a plain sh_calloc gives 16 and using it is
     * undefined (test_snapshot__readers_are_cache_line_aligned). */
    mem = sh_calloc(1, sizeof(*r) + CACHE_LINE - 1);
    if (!mem) return SH_ENOMEM;
    r = (struct snap_reader *)(((uintptr_t)mem + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1));
    atomic_init(&r->epoch, SLOT_IDLE);
    r->dom = dom;
    dom->readers[n] = r;
    dom->reader_mem[n] = mem;
    atomic_store(&dom->nreaders, n + 1); /* publishes the slot after it is initialised */
    *out = r;
    return 0;
}

static uint64_t oldest_reader_epoch(struct snap_domain *dom)
{
    uint64_t oldest = SLOT_IDLE;
    size_t n = atomic_load(&dom->nreaders);

    for (size_t i = 0; i < n; i++) {
        uint64_t e = atomic_load(&dom->readers[i]->epoch);
        if (e < oldest) oldest = e;
    }
    return oldest;
}

size_t snap_domain_collect(struct snap_domain *dom)
{
    uint64_t oldest = oldest_reader_epoch(dom);
    struct snap **link = &dom->retired, *s;
    size_t remaining = 0;

    while ((s = *link) != NULL) {
        /* Once no window predates the stamp, the count can only fall, so zero is final. */
        if (oldest >= s->retire_epoch && atomic_load(&s->refs) == 0) {
            *link = s->next_retired;
            snap_destroy(dom, s);
        } else {
            link = &s->next_retired;
            remaining++;
        }
    }
    return remaining;
}

int snap_publish(struct snap_domain *dom, void *obj)
{
    struct snap *s = NULL, *old;

    if (obj) {
        s = sh_calloc(1, sizeof(*s));
        if (!s) return SH_ENOMEM;
        s->obj = obj;
        atomic_init(&s->refs, 1); /* the domain's own reference while current */
        s->version = atomic_load(&dom->version) + 1;
    }
    old = atomic_exchange(&dom->current, s);
    atomic_fetch_add(&dom->version, 1);
    uint64_t stamp = atomic_fetch_add(&dom->epoch, 1) + 1;
    if (old) {
        old->retire_epoch = stamp;
        old->next_retired = dom->retired;
        dom->retired = old;
        atomic_fetch_sub(&old->refs, 1);
    }
    snap_domain_collect(dom);
    return 0;
}

uint64_t snap_version(const struct snap_domain *dom)
{
    return atomic_load_explicit(&((struct snap_domain *)dom)->version, memory_order_relaxed);
}

struct snap *snap_acquire(struct snap_reader *r)
{
    struct snap_domain *dom = r->dom;
    struct snap *s;

    atomic_store(&r->epoch, atomic_load(&dom->epoch));
    s = atomic_load(&dom->current);
    if (s) atomic_fetch_add(&s->refs, 1);
    atomic_store(&r->epoch, SLOT_IDLE);
    return s;
}

void snap_release(struct snap *s)
{
    if (!s) return;
    long left = atomic_fetch_sub(&s->refs, 1) - 1;
    assert(left >= 0);
    (void)left;
}
