/* SPDX-License-Identifier: MIT */
/* test_alloc.c: live-block counting, failure injection and the size limits of sh_malloc & co. */
#include "test_util.h"

#include <string.h>

static void test_alloc__counts_live_blocks(void **state)
{
    long live = sh_alloc_live();
    char *a, *b, *c;

    (void)state;
    a = sh_malloc(10);
    b = sh_calloc(3, 4);
    c = sh_strdup("abc");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(sh_alloc_live(), live + 3);
    a = sh_realloc(a, 1000); /* moves or not, still one block */
    assert_non_null(a);
    assert_int_equal(sh_alloc_live(), live + 3);
    sh_free(a);
    sh_free(b);
    sh_free(c);
    sh_free(NULL);
    assert_int_equal(sh_alloc_live(), live);
}

static void test_alloc__zero_sizes_return_unique_blocks(void **state)
{
    void *a = sh_malloc(0), *b = sh_calloc(0, 8), *c = sh_realloc(NULL, 0);

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_ptr_not_equal(a, b);
    sh_free(a);
    sh_free(b);
    sh_free(c);
}

static void test_alloc__fail_after_fails_nth_and_later(void **state)
{
    void *p[4];

    (void)state;
    sh_alloc_fail_after(3);
    p[0] = sh_malloc(1);
    p[1] = sh_calloc(1, 1);
    p[2] = sh_malloc(1);
    p[3] = sh_strdup("x");
    assert_non_null(p[0]);
    assert_non_null(p[1]);
    assert_null(p[2]);
    assert_null(p[3]);
    assert_int_equal(sh_alloc_count(), 4);
    sh_alloc_fail_after(0);
    assert_int_equal(sh_alloc_count(), 0);
    p[2] = sh_malloc(1);
    assert_non_null(p[2]);
    assert_int_equal(sh_alloc_count(), 1);
    sh_free(p[0]);
    sh_free(p[1]);
    sh_free(p[2]);
}

static void test_alloc__failed_realloc_keeps_block(void **state)
{
    char *p = sh_strdup("keep me"), *q;

    (void)state;
    sh_alloc_fail_after(1);
    q = sh_realloc(p, 4096);
    sh_alloc_fail_after(0);
    assert_null(q);
    assert_string_equal(p, "keep me");
    sh_free(p);
}

static void test_alloc__impossible_sizes_return_null(void **state)
{
    long live = sh_alloc_live();
    char *p = sh_malloc(8);

    (void)state;
    assert_null(sh_malloc(SIZE_MAX));
    assert_null(sh_malloc((size_t)PTRDIFF_MAX + 1));
    assert_null(sh_calloc(SIZE_MAX / 2, 4));
    assert_null(sh_calloc((size_t)1 << 62, (size_t)1 << 2));
    assert_null(sh_realloc(p, SIZE_MAX - 1));
    assert_null(sh_strndup("x", SIZE_MAX));
    sh_free(p);
    assert_int_equal(sh_alloc_live(), live);
}

static void test_alloc__strndup_stops_at_n(void **state)
{
    char *p = sh_strndup("hello", 3);

    (void)state;
    assert_string_equal(p, "hel");
    sh_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_alloc__counts_live_blocks),
        SH_TEST(test_alloc__zero_sizes_return_unique_blocks),
        SH_TEST(test_alloc__fail_after_fails_nth_and_later),
        SH_TEST(test_alloc__failed_realloc_keeps_block),
        SH_TEST(test_alloc__impossible_sizes_return_null),
        SH_TEST(test_alloc__strndup_stops_at_n),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
