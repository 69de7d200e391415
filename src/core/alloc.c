/* SPDX-License-Identifier: MIT */
/* alloc.c: the one allocator. Counts live blocks and can fail the Nth allocation, for tests.
 * The counters are relaxed atomics: exact under any thread mix, and cheap.
 * Requests over PTRDIFF_MAX bytes fail with NULL up front: no object may be that large, and
 * sanitizer allocators abort on them instead of returning NULL, which would make a build with
 * -fsanitize behave differently from one without (test_arena__huge_request_returns_null). */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

static _Atomic long live_blocks;
static _Atomic long alloc_count;
static _Atomic long fail_after; /* 0 = never fail */
/* Read-only once threads run (sh_alloc_accounting's contract): the servers turn counting off,
 * because two shared counters bumped on every allocation would bounce one cache line between
 * every worker's core. */
static bool accounting = true;

void sh_alloc_accounting(bool on)
{
    accounting = on;
}

static bool should_fail(void)
{
    if (!accounting) return false;
    long n = atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed) + 1;
    long f = atomic_load_explicit(&fail_after, memory_order_relaxed);

    return f > 0 && n >= f;
}

void *sh_malloc(size_t n)
{
    void *p;

    if (should_fail() || n > PTRDIFF_MAX) return NULL;
    p = malloc(n ? n : 1);
    if (p && accounting) atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

void *sh_calloc(size_t count, size_t size)
{
    void *p;

    if (should_fail() || (size && count > PTRDIFF_MAX / size)) return NULL;
    p = calloc(count ? count : 1, size ? size : 1);
    if (p && accounting) atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

void *sh_realloc(void *p, size_t n)
{
    void *q;

    if (!p) return sh_malloc(n);
    if (should_fail() || n > PTRDIFF_MAX) return NULL;
    q = realloc(p, n ? n : 1);
    return q;
}

void sh_free(void *p)
{
    if (!p) return;
    if (accounting) atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
    free(p);
}

char *sh_strndup(const char *s, size_t n)
{
    char *p = n < SIZE_MAX ? sh_malloc(n + 1) : NULL; /* n + 1 would wrap to a 1-byte block */

    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sh_strdup(const char *s)
{
    return sh_strndup(s, strlen(s));
}

long sh_alloc_live(void)
{
    return atomic_load(&live_blocks);
}

void sh_alloc_fail_after(long n)
{
    atomic_store(&alloc_count, 0);
    atomic_store(&fail_after, n);
}

long sh_alloc_count(void)
{
    return atomic_load(&alloc_count);
}
