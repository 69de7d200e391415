/* SPDX-License-Identifier: MIT */
/* test_arena.c: bump allocation, growth, big allocations, the max_bytes cap, reset and release,
 * and OOM torture. */
#include "test_util.h"

#include <string.h>

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

/* Live blocks the arena holds, counted through sh_alloc_live. */
static long arena_blocks(long live_before)
{
    return sh_alloc_live() - live_before;
}

static void test_arena__init_costs_no_allocation(void **state)
{
    struct arena a;
    long live = sh_alloc_live();

    (void)state;
    sh_alloc_fail_after(0);
    arena_init(&a, 1024, 0);
    assert_int_equal(sh_alloc_count(), 0);
    assert_int_equal(arena_blocks(live), 0);
    assert_int_equal(a.used_bytes, 0);
    assert_int_equal(a.held_bytes, 0);
    assert_int_equal(a.block_bytes, 1024);
    arena_release(&a);

    arena_init(&a, 0, 0);
    assert_int_equal(a.block_bytes, 4096); /* 0 picks the default */
    arena_release(&a);
}

static void test_arena__allocations_are_16_aligned(void **state)
{
    struct arena a;
    size_t sizes[] = {1, 3, 7, 15, 16, 17, 31, 33, 100, 0, 5, 1000, 4095, 4097, 9};

    (void)state;
    arena_init(&a, 256, 0);
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < SH_ARRAY_LEN(sizes); i++) {
            char *p = arena_alloc(&a, sizes[i]);
            assert_non_null(p);
            assert_true(aligned16(p));
            memset(p, 0xab, sizes[i]); /* ASan: every byte granted is really there */
        }
    }
    arena_release(&a);
}

static void test_arena__allocations_do_not_overlap(void **state)
{
    struct arena a;
    unsigned char *p[200];
    size_t n[200];

    (void)state;
    arena_init(&a, 512, 0);
    for (size_t i = 0; i < SH_ARRAY_LEN(p); i++) {
        n[i] = (i * 37) % 300 + 1;
        p[i] = arena_alloc(&a, n[i]);
        assert_non_null(p[i]);
        memset(p[i], (int)(i & 0xff), n[i]);
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(p); i++) {
        for (size_t k = 0; k < n[i]; k++)
            assert_int_equal(p[i][k], (unsigned char)(i & 0xff));
    }
    arena_release(&a);
}

static void test_arena__grows_by_new_blocks(void **state)
{
    struct arena a;
    long live = sh_alloc_live();

    (void)state;
    arena_init(&a, 256, 0);
    assert_non_null(arena_alloc(&a, 100));
    assert_int_equal(arena_blocks(live), 1);
    assert_non_null(arena_alloc(&a, 100)); /* 112 + 112 <= 256: same block */
    assert_int_equal(arena_blocks(live), 1);
    assert_non_null(arena_alloc(&a, 100)); /* does not fit: a second block */
    assert_int_equal(arena_blocks(live), 2);
    assert_true(a.used_bytes >= 300);
    assert_true(a.held_bytes >= 2 * 256);
    arena_release(&a);
    assert_int_equal(arena_blocks(live), 0);
}

static void test_arena__big_allocation_keeps_current_block_serving(void **state)
{
    struct arena a;
    long live = sh_alloc_live();
    char *small1, *big, *small2;

    (void)state;
    arena_init(&a, 256, 0);
    small1 = arena_alloc(&a, 16);
    assert_non_null(small1);
    big = arena_alloc(&a, 10000); /* larger than a block: its own block */
    assert_non_null(big);
    assert_true(aligned16(big));
    memset(big, 1, 10000);
    assert_int_equal(arena_blocks(live), 2);
    small2 = arena_alloc(&a, 16); /* still from the first block */
    assert_non_null(small2);
    assert_int_equal(arena_blocks(live), 2);
    assert_ptr_equal(small2, small1 + 16);
    arena_release(&a);
}

static void test_arena__huge_request_returns_null(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a, 256, 0);
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_alloc(&a, SIZE_MAX - 8));
    assert_null(arena_alloc(&a, SIZE_MAX - 100));
    assert_null(arena_strndup(&a, "x", SIZE_MAX));
    assert_non_null(arena_alloc(&a, 8)); /* still usable */
    arena_release(&a);
}

static void test_arena__max_bytes_caps_held_memory(void **state)
{
    struct arena a;
    size_t granted = 0;
    int count = 0;

    (void)state;
    arena_init(&a, 1024, 4096);
    /* 520 bytes leave a 496-byte tail in each block: the cap must count whole blocks. */
    for (;;) {
        void *p = arena_alloc(&a, 520);
        if (!p) break;
        granted += 520;
        count++;
        assert_true(count < 100);
        assert_true(a.held_bytes <= 4096);
    }
    assert_true(count >= 3);
    assert_true(a.held_bytes <= 4096);
    assert_true(granted <= 4096);
    /* A big request past the cap fails, and a small one may still fit in a tail. */
    assert_null(arena_alloc(&a, 5000));
    assert_true(a.held_bytes <= 4096);
    arena_release(&a);
}

static void test_arena__max_below_block_size_still_serves(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a, 4096, 1024);
    assert_non_null(arena_alloc(&a, 100));
    assert_true(a.held_bytes <= 1024);
    assert_null(arena_alloc(&a, 2000));
    assert_true(a.held_bytes <= 1024);
    arena_release(&a);
}

static void test_arena__strndup_copies_and_terminates(void **state)
{
    struct arena a;
    char *s;

    (void)state;
    arena_init(&a, 64, 0);
    s = arena_strndup(&a, "hello world", 5);
    assert_non_null(s);
    assert_string_equal(s, "hello");
    s = arena_strndup(&a, "", 0);
    assert_non_null(s);
    assert_string_equal(s, "");
    arena_release(&a);
}

static void test_arena__reset_keeps_one_block(void **state)
{
    struct arena a;
    long live = sh_alloc_live();
    void *first;

    (void)state;
    arena_init(&a, 256, 0);
    first = arena_alloc(&a, 64);
    assert_non_null(first);
    for (int i = 0; i < 10; i++)
        assert_non_null(arena_alloc(&a, 200));
    assert_non_null(arena_alloc(&a, 5000));
    assert_true(arena_blocks(live) > 2);

    arena_reset(&a);
    assert_int_equal(arena_blocks(live), 1);
    assert_true(a.used_bytes < 256);
    assert_true(a.held_bytes <= 256 + 64);

    /* The kept block serves the next request without allocating. */
    sh_alloc_fail_after(0);
    assert_non_null(arena_alloc(&a, 200));
    assert_int_equal(sh_alloc_count(), 0);
    assert_int_equal(arena_blocks(live), 1);

    arena_reset(&a);
    arena_reset(&a);
    assert_int_equal(arena_blocks(live), 1);
    arena_release(&a);
    assert_int_equal(arena_blocks(live), 0);
}

static void test_arena__reset_of_empty_arena_is_noop(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a, 256, 0);
    arena_reset(&a);
    assert_null(a.head);
    assert_int_equal(a.used_bytes, 0);
    assert_int_equal(a.held_bytes, 0);
    arena_release(&a);
}

static void test_arena__release_is_idempotent(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a, 128, 0);
    assert_non_null(arena_alloc(&a, 1000));
    assert_non_null(arena_alloc(&a, 10));
    arena_release(&a);
    assert_null(a.head);
    assert_int_equal(a.used_bytes, 0);
    assert_int_equal(a.held_bytes, 0);
    arena_release(&a);
    /* Usable again after release. */
    assert_non_null(arena_alloc(&a, 10));
    arena_release(&a);
}

/* ---- OOM torture ---- */

/* A request's worth of allocations; SH_ENOMEM when the arena cannot serve one. */
static int request_work(struct arena *a)
{
    static const size_t sizes[] = {24, 100, 300, 8, 2000, 64, 700, 5000, 1, 250};

    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < SH_ARRAY_LEN(sizes); i++) {
            char *p = arena_alloc(a, sizes[i]);
            if (!p) return SH_ENOMEM;
            memset(p, 0x5a, sizes[i]);
        }
        if (!arena_strndup(a, "header-value", 12)) return SH_ENOMEM;
        arena_reset(a);
    }
    return 0;
}

static void test_arena__oom_torture_fails_cleanly(void **state)
{
    struct arena a;
    long total, live = sh_alloc_live();

    (void)state;
    arena_init(&a, 512, 0);
    sh_alloc_fail_after(0);
    assert_int_equal(request_work(&a), 0);
    total = sh_alloc_count();
    arena_release(&a);
    assert_true(total > 3);

    for (long n = 1; n <= total; n++) {
        arena_init(&a, 512, 0);
        sh_alloc_fail_after(n);
        assert_int_equal(request_work(&a), SH_ENOMEM);
        sh_alloc_fail_after(0);
        arena_release(&a);
        assert_int_equal(sh_alloc_live(), live);
    }
    arena_init(&a, 512, 0);
    sh_alloc_fail_after(total + 1);
    assert_int_equal(request_work(&a), 0);
    sh_alloc_fail_after(0);
    arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_arena__init_costs_no_allocation),
        SH_TEST(test_arena__allocations_are_16_aligned),
        SH_TEST(test_arena__allocations_do_not_overlap),
        SH_TEST(test_arena__grows_by_new_blocks),
        SH_TEST(test_arena__big_allocation_keeps_current_block_serving),
        SH_TEST(test_arena__huge_request_returns_null),
        SH_TEST(test_arena__max_bytes_caps_held_memory),
        SH_TEST(test_arena__max_below_block_size_still_serves),
        SH_TEST(test_arena__strndup_copies_and_terminates),
        SH_TEST(test_arena__reset_keeps_one_block),
        SH_TEST(test_arena__reset_of_empty_arena_is_noop),
        SH_TEST(test_arena__release_is_idempotent),
        SH_TEST(test_arena__oom_torture_fails_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
