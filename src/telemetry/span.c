/* SPDX-License-Identifier: MIT */
/* span.c: the span queue (telemetry.h, "Spans"): one single-producer, single-consumer ring of
 * span pointers per shard. A producer (the worker owning the shard) copies a span into one
 * allocation and publishes it by moving its ring's head with a release store; the consumer
 * reads the head with an acquire load, hands each span to its callback, frees it and moves the
 * tail with a release store, which the producer reads with an acquire load before reusing a
 * slot. No lock, no read-modify-write on the request path; a full ring drops the span and
 * counts it. Each ring's producer and consumer fields sit on cache lines of their own.
 * Threads: push on the shard's producer; drain on one consumer; new/free on the owner. */
#include "telemetry/telemetry.h"

#include <stdalign.h>
#include <string.h>

enum { SPAN_DEFAULT_CAPACITY = 8192, SPAN_MAX_CAPACITY = 1u << 20 };

struct trace_ring {
    alignas(64) _Atomic uint64_t head; /* next slot the producer writes */
    _Atomic uint64_t dropped;          /* written by the producer only */
    alignas(64) _Atomic uint64_t tail; /* next slot the consumer reads */
    alignas(64) struct trace_span **slots;
};

struct trace_queue {
    struct trace_ring *rings; /* shards of them, 64-byte aligned */
    void *rings_mem;          /* what sh_malloc gave (rings is aligned inside it) */
    uint32_t shards;
    uint64_t capacity; /* a power of two */
};

int trace_queue_new(const struct trace_queue_config *cfg, struct trace_queue **out)
{
    struct trace_queue *q;
    uint64_t cap = cfg->capacity ? cfg->capacity : SPAN_DEFAULT_CAPACITY;
    uintptr_t p;

    *out = NULL;
    if (cfg->shards == 0 || cfg->shards > METRICS_MAX_SHARDS || cap > SPAN_MAX_CAPACITY)
        return SH_EINVAL;
    q = sh_calloc(1, sizeof(*q));
    if (!q) return SH_ENOMEM;
    q->capacity = 1;
    while (q->capacity < cap)
        q->capacity <<= 1;
    q->shards = cfg->shards;
    q->rings_mem = sh_calloc(1, (size_t)cfg->shards * sizeof(struct trace_ring) + 64);
    if (!q->rings_mem) goto fail;
    p = ((uintptr_t)q->rings_mem + 63) & ~(uintptr_t)63;
    q->rings = (struct trace_ring *)p;
    for (uint32_t i = 0; i < q->shards; i++) {
        struct trace_ring *r = &q->rings[i];
        atomic_init(&r->head, 0);
        atomic_init(&r->tail, 0);
        atomic_init(&r->dropped, 0);
        r->slots = sh_calloc((size_t)q->capacity, sizeof(*r->slots));
        if (!r->slots) goto fail;
    }
    *out = q;
    return 0;
fail:
    trace_queue_free(q);
    return SH_ENOMEM;
}

void trace_queue_free(struct trace_queue *q)
{
    if (!q) return;
    for (uint32_t i = 0; q->rings && i < q->shards; i++) {
        struct trace_ring *r = &q->rings[i];
        uint64_t head = atomic_load(&r->head);
        if (!r->slots) continue;
        for (uint64_t t = atomic_load(&r->tail); t < head; t++)
            sh_free(r->slots[t & (q->capacity - 1)]);
        sh_free(r->slots);
    }
    sh_free(q->rings_mem);
    sh_free(q);
}

/* Adds s's length to *total; false past the limit. */
static bool add_len(size_t *total, struct slice s)
{
    *total += s.len;
    return *total <= TRACE_SPAN_MAX_BYTES;
}

/* Copies s into the block at *at and points s there. */
static void move_into(char **at, struct slice *s)
{
    if (s->len) memcpy(*at, s->ptr, s->len);
    s->ptr = *at;
    *at += s->len;
}

int trace_queue_push(struct trace_queue *q, uint32_t shard, const struct trace_span *s)
{
    struct trace_ring *r;
    struct trace_span *c;
    size_t strings = 0;
    uint64_t head, tail;
    char *at;
    bool ok;

    if (shard >= q->shards || s->tag_count > TRACE_SPAN_MAX_TAGS ||
        s->annotation_count > TRACE_SPAN_MAX_ANNOTATIONS)
        return SH_EINVAL;
    r = &q->rings[shard];
    head = atomic_load_explicit(&r->head, memory_order_relaxed);
    tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= q->capacity) {
        atomic_store_explicit(&r->dropped,
                              atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        return SH_ELIMIT;
    }
    ok = add_len(&strings, s->name) && add_len(&strings, s->local.service) &&
         add_len(&strings, s->local.ip) && add_len(&strings, s->remote.service) &&
         add_len(&strings, s->remote.ip);
    for (size_t i = 0; ok && i < s->tag_count; i++)
        ok = add_len(&strings, s->tags[i].key) && add_len(&strings, s->tags[i].value);
    for (size_t i = 0; ok && i < s->annotation_count; i++)
        ok = add_len(&strings, s->annotations[i].value);
    if (!ok) return SH_ETOOBIG;
    c = sh_malloc(sizeof(*c) + strings);
    if (!c) return SH_ENOMEM;
    *c = *s;
    at = (char *)(c + 1);
    move_into(&at, &c->name);
    move_into(&at, &c->local.service);
    move_into(&at, &c->local.ip);
    move_into(&at, &c->remote.service);
    move_into(&at, &c->remote.ip);
    for (size_t i = 0; i < c->tag_count; i++) {
        move_into(&at, &c->tags[i].key);
        move_into(&at, &c->tags[i].value);
    }
    for (size_t i = 0; i < c->annotation_count; i++)
        move_into(&at, &c->annotations[i].value);
    r->slots[head & (q->capacity - 1)] = c;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return 0;
}

size_t trace_queue_drain(struct trace_queue *q, size_t max, trace_span_fn *fn, void *data)
{
    size_t n = 0;

    for (uint32_t i = 0; i < q->shards && (max == 0 || n < max); i++) {
        struct trace_ring *r = &q->rings[i];
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        for (; tail < head && (max == 0 || n < max); tail++, n++) {
            struct trace_span **slot = &r->slots[tail & (q->capacity - 1)];
            fn(data, *slot);
            sh_free(*slot);
            *slot = NULL;
            atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
        }
    }
    return n;
}

uint64_t trace_queue_dropped(const struct trace_queue *q)
{
    uint64_t n = 0;

    for (uint32_t i = 0; i < q->shards; i++)
        n += atomic_load_explicit(&q->rings[i].dropped, memory_order_relaxed);
    return n;
}
