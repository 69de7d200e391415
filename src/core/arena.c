/* SPDX-License-Identifier: MIT */
/* arena.c: bump allocation in a chain of blocks; the newest block is at the head.
 * Invariants: every pointer handed out is 16-byte aligned (data[] is, sh_malloc returns
 * max_align_t alignment, and each grant is rounded up to 16); held_bytes <= max_bytes. */
#include "core/core.h"

#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t size, used; /* bytes of data[] */
    _Alignas(16) char data[];
};

void arena_init(struct arena *a, size_t block_bytes, size_t max_bytes)
{
    a->head = NULL;
    a->block_bytes = block_bytes ? block_bytes : 4096;
    a->max_bytes = max_bytes;
    a->used_bytes = 0;
    a->held_bytes = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    struct arena_block *b = a->head;
    size_t need = (n + 15) & ~(size_t)15, size, hdr = sizeof(*b);

    if (need < n) return NULL;
    if (b && b->size - b->used >= need) {
        void *p = b->data + b->used;
        b->used += need;
        a->used_bytes += need;
        return p;
    }
    size = need > a->block_bytes ? need : a->block_bytes;
    if (size > SIZE_MAX - hdr) return NULL;
    if (a->max_bytes) {
        /* Written without sums that could wrap: held_bytes <= max_bytes always holds. */
        size_t left = a->max_bytes - a->held_bytes;
        if (left < hdr || left - hdr < need) return NULL;
        if (left - hdr < size)
            size = (left - hdr) & ~(size_t)15; /* a smaller last block; still >= need */
    }
    b = sh_malloc(hdr + size);
    if (!b) return NULL;
    b->size = size;
    b->used = need;
    /* A big one-off allocation goes behind the current block so the latter keeps serving. */
    if (a->head && need > a->block_bytes) {
        b->next = a->head->next;
        a->head->next = b;
    } else {
        b->next = a->head;
        a->head = b;
    }
    a->used_bytes += hdr + need;
    a->held_bytes += hdr + size;
    return b->data;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = n < SIZE_MAX ? arena_alloc(a, n + 1) : NULL;

    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void arena_reset(struct arena *a)
{
    struct arena_block *b, *keep = NULL, *next;

    for (b = a->head; b; b = next) {
        next = b->next;
        if (!keep && b->size == a->block_bytes) {
            keep = b;
            continue;
        }
        sh_free(b);
    }
    a->head = keep;
    a->used_bytes = 0;
    a->held_bytes = 0;
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
        a->used_bytes = sizeof(*keep);
        a->held_bytes = sizeof(*keep) + keep->size;
    }
}

void arena_release(struct arena *a)
{
    struct arena_block *b, *next;

    for (b = a->head; b; b = next) {
        next = b->next;
        sh_free(b);
    }
    a->head = NULL;
    a->used_bytes = 0;
    a->held_bytes = 0;
}
