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
#include <stddef.h>
#include <string.h>

enum { SPAN_DEFAULT_CAPACITY = 8192, SPAN_MAX_CAPACITY = 1u << 20 };

/* A queued span is one block: this header, the span's fields before its tag array, the tags
 * and annotations in use, then the strings they point to. Only what is used is copied (the
 * arrays of struct trace_span are mostly room), which keeps the block small; the drain
 * rebuilds a struct trace_span on its own stack for the callback. */
struct span_block {
    uint32_t tag_count, annotation_count;
    bool is_error, debug, shared;
};
#define SPAN_FIXED offsetof(struct trace_span, tags)
#define BLOCK_FIXED                                                                                \
    (((sizeof(struct span_block) + 7) & ~(size_t)7) + ((SPAN_FIXED + 7) & ~(size_t)7))

struct trace_ring {
    alignas(64) _Atomic uint64_t head; /* next slot the producer writes */
    _Atomic uint64_t dropped;          /* written by the producer only */
    alignas(64) _Atomic uint64_t tail; /* next slot the consumer reads */
    alignas(64) struct span_block **slots;
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

static struct trace_span *block_span(struct span_block *b)
{
    return (struct trace_span *)(void *)((char *)b + ((sizeof(*b) + 7) & ~(size_t)7));
}

static struct trace_tag *block_tags(struct span_block *b)
{
    return (struct trace_tag *)(void *)((char *)b + BLOCK_FIXED);
}

static struct trace_annotation *block_annotations(struct span_block *b)
{
    return (struct trace_annotation *)(void *)(block_tags(b) + b->tag_count);
}

int trace_queue_push(struct trace_queue *q, uint32_t shard, const struct trace_span *s)
{
    struct trace_ring *r;
    struct span_block *b;
    struct trace_span *c;
    struct trace_tag *tags;
    struct trace_annotation *anns;
    size_t strings = 0, arrays;
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
    arrays = s->tag_count * sizeof(s->tags[0]) + s->annotation_count * sizeof(s->annotations[0]);
    b = sh_malloc(BLOCK_FIXED + arrays + strings);
    if (!b) return SH_ENOMEM;
    *b = (struct span_block){.tag_count = (uint32_t)s->tag_count,
                             .annotation_count = (uint32_t)s->annotation_count,
                             .is_error = s->is_error,
                             .debug = s->debug,
                             .shared = s->shared};
    c = block_span(b); /* its fields before the tag array only */
    memcpy(c, s, SPAN_FIXED);
    tags = block_tags(b);
    anns = block_annotations(b);
    memcpy(tags, s->tags, s->tag_count * sizeof(s->tags[0]));
    memcpy(anns, s->annotations, s->annotation_count * sizeof(s->annotations[0]));
    at = (char *)b + BLOCK_FIXED + arrays;
    move_into(&at, &c->name);
    move_into(&at, &c->local.service);
    move_into(&at, &c->local.ip);
    move_into(&at, &c->remote.service);
    move_into(&at, &c->remote.ip);
    for (size_t i = 0; i < s->tag_count; i++) {
        move_into(&at, &tags[i].key);
        move_into(&at, &tags[i].value);
    }
    for (size_t i = 0; i < s->annotation_count; i++)
        move_into(&at, &anns[i].value);
    r->slots[head & (q->capacity - 1)] = b;
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
            struct span_block **slot = &r->slots[tail & (q->capacity - 1)], *b = *slot;
            struct trace_span sp;
            memcpy(&sp, block_span(b), SPAN_FIXED);
            memcpy(sp.tags, block_tags(b), b->tag_count * sizeof(sp.tags[0]));
            sp.tag_count = b->tag_count;
            memcpy(sp.annotations, block_annotations(b),
                   b->annotation_count * sizeof(sp.annotations[0]));
            sp.annotation_count = b->annotation_count;
            sp.is_error = b->is_error;
            sp.debug = b->debug;
            sp.shared = b->shared;
            fn(data, &sp);
            sh_free(b);
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
