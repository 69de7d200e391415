/* SPDX-License-Identifier: MIT */
/* test_list.c: the intrusive list (order, removal during iteration, double removal, an item in
 * two lists) and array growth (doubling, overflow, a failed realloc keeps the array). */
#include "test_util.h"

struct item {
    int value;
    struct sh_list link;  /* the first list */
    struct sh_list other; /* a second list the same item can be in */
};

/* Checks <head>, forwards and backwards, against values[0..n). */
static void assert_values(const struct sh_list *head, const int *values, size_t n)
{
    const struct sh_list *node;
    size_t k = 0;

    SH_LIST_FOREACH(node, head)
    {
        const struct item *it = SH_CONTAINER_OF(node, const struct item, link);
        assert_true(k < n);
        assert_int_equal(it->value, values[k]);
        assert_ptr_equal(node->next->prev, node);
        assert_ptr_equal(node->prev->next, node);
        k++;
    }
    assert_int_equal(k, n);
    for (node = head->prev; node != head; node = node->prev) {
        const struct item *it = SH_CONTAINER_OF(node, const struct item, link);
        assert_true(k > 0);
        assert_int_equal(it->value, values[--k]);
    }
    assert_int_equal(k, 0);
}

static void test_list__init_is_empty(void **state)
{
    struct sh_list head;

    (void)state;
    sh_list_init(&head);
    assert_true(sh_list_empty(&head));
    assert_null(sh_list_first(&head));
    assert_null(sh_list_last(&head));
    assert_values(&head, NULL, 0);
}

static void test_list__insert_head_and_tail_keep_order(void **state)
{
    struct item it[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
    struct sh_list head;

    (void)state;
    sh_list_init(&head);
    sh_list_insert_head(&head, &it[1].link);
    sh_list_insert_head(&head, &it[0].link); /* 0 1 */
    sh_list_insert_tail(&head, &it[3].link); /* 0 1 3 */
    sh_list_insert_before(&it[3].link, &it[2].link);
    assert_values(&head, (const int[]){0, 1, 2, 3}, 4);
    assert_false(sh_list_empty(&head));
    assert_ptr_equal(sh_list_first(&head), &it[0].link);
    assert_ptr_equal(sh_list_last(&head), &it[3].link);
    assert_ptr_equal(SH_CONTAINER_OF(sh_list_last(&head), struct item, link), &it[3]);
}

static void test_list__remove_twice_is_harmless(void **state)
{
    struct item it[3] = {{.value = 0}, {.value = 1}, {.value = 2}};
    struct sh_list head;

    (void)state;
    sh_list_init(&head);
    for (int k = 0; k < 3; k++)
        sh_list_insert_tail(&head, &it[k].link);
    sh_list_remove(&it[1].link);
    assert_true(sh_list_empty(&it[1].link)); /* in no list: self-linked */
    assert_values(&head, (const int[]){0, 2}, 2);
    sh_list_remove(&it[1].link); /* a second remove must not touch the list */
    assert_values(&head, (const int[]){0, 2}, 2);
    sh_list_remove(&it[0].link);
    sh_list_remove(&it[2].link);
    assert_true(sh_list_empty(&head));
    assert_null(sh_list_first(&head));
}

static void test_list__safe_iteration_may_remove_the_current_node(void **state)
{
    struct item it[6];
    struct sh_list head, *node, *next;

    (void)state;
    sh_list_init(&head);
    for (int k = 0; k < 6; k++) {
        it[k].value = k;
        sh_list_insert_tail(&head, &it[k].link);
    }
    SH_LIST_FOREACH_SAFE(node, next, &head)
    {
        struct item *cur = SH_CONTAINER_OF(node, struct item, link);
        if (cur->value % 2 == 0) sh_list_remove(node);
    }
    assert_values(&head, (const int[]){1, 3, 5}, 3);
    SH_LIST_FOREACH_SAFE(node, next, &head)
    sh_list_remove(node);
    assert_true(sh_list_empty(&head));
}

static void test_list__item_in_two_lists(void **state)
{
    struct item it[3] = {{.value = 0}, {.value = 1}, {.value = 2}};
    struct sh_list a, b, *node;
    int seen = 0;

    (void)state;
    sh_list_init(&a);
    sh_list_init(&b);
    for (int k = 0; k < 3; k++) {
        sh_list_insert_tail(&a, &it[k].link);
        sh_list_insert_head(&b, &it[k].other); /* b runs backwards */
    }
    sh_list_remove(&it[1].link); /* leaves b alone */
    assert_values(&a, (const int[]){0, 2}, 2);
    SH_LIST_FOREACH(node, &b)
    {
        const struct item *cur = SH_CONTAINER_OF(node, struct item, other);
        assert_int_equal(cur->value, 2 - seen);
        seen++;
    }
    assert_int_equal(seen, 3);
}

static void test_array__grow_cap_doubles_from_eight(void **state)
{
    size_t cap = 12345;

    (void)state;
    assert_int_equal(sh_array_grow_cap(0, 1, 4, &cap), 0);
    assert_int_equal(cap, 8);
    assert_int_equal(sh_array_grow_cap(8, 9, 4, &cap), 0);
    assert_int_equal(cap, 16);
    assert_int_equal(sh_array_grow_cap(8, 100, 4, &cap), 0);
    assert_int_equal(cap, 128);
    assert_int_equal(sh_array_grow_cap(0, 20, 4, &cap), 0);
    assert_int_equal(cap, 32);
    assert_int_equal(sh_array_grow_cap(16, 16, 4, &cap), 0); /* fits already */
    assert_int_equal(cap, 16);
    assert_int_equal(sh_array_grow_cap(3, 4, 4, &cap), 0); /* any cap doubles */
    assert_int_equal(cap, 6);
}

static void test_array__grow_cap_stops_at_size_max(void **state)
{
    size_t max = SIZE_MAX / 16, cap = 7;

    (void)state;
    /* need past what a size_t can count in bytes: refused, cap untouched */
    assert_int_equal(sh_array_grow_cap(0, max + 1, 16, &cap), SH_ETOOBIG);
    assert_int_equal(cap, 7);
    assert_int_equal(sh_array_grow_cap(max, max + 1, 16, &cap), SH_ETOOBIG);
    /* doubling would pass the limit: the largest count that fits instead */
    assert_int_equal(sh_array_grow_cap(max / 2 + 1, max / 2 + 2, 16, &cap), 0);
    assert_int_equal(cap, max);
    assert_true(cap * 16 / 16 == cap);
    /* items so large that even the first 8 do not fit */
    assert_int_equal(sh_array_grow_cap(0, 2, SIZE_MAX / 4, &cap), 0);
    assert_int_equal(cap, 4); /* SIZE_MAX / (SIZE_MAX / 4) */
}

static void test_array__reserve_keeps_items(void **state)
{
    uint32_t *a = NULL;
    size_t cap = 0, count = 0;

    (void)state;
    for (uint32_t v = 0; v < 1000; v++) {
        assert_int_equal(sh_array_reserve(&a, &cap, count + 1, sizeof(*a)), 0);
        assert_true(cap >= count + 1);
        a[count++] = v * 7;
    }
    assert_int_equal(cap, 1024);
    for (uint32_t v = 0; v < 1000; v++)
        assert_int_equal(a[v], v * 7);
    assert_int_equal(sh_array_reserve(&a, &cap, 10, sizeof(*a)), 0); /* shrinks nothing */
    assert_int_equal(cap, 1024);
    sh_free(a);
}

static void test_array__reserve_failure_leaves_array(void **state)
{
    uint64_t *a = NULL;
    size_t cap = 0;

    (void)state;
    assert_int_equal(sh_array_reserve(&a, &cap, 8, sizeof(*a)), 0);
    for (uint64_t v = 0; v < 8; v++)
        a[v] = v;
    sh_alloc_fail_after(1);
    assert_int_equal(sh_array_reserve(&a, &cap, 9, sizeof(*a)), SH_ENOMEM);
    sh_alloc_fail_after(0);
    assert_int_equal(cap, 8);
    assert_non_null(a);
    for (uint64_t v = 0; v < 8; v++)
        assert_int_equal(a[v], v);
    assert_int_equal(sh_array_reserve(&a, &cap, SIZE_MAX / 8 + 1, sizeof(*a)), SH_ETOOBIG);
    assert_int_equal(cap, 8);
    sh_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_list__init_is_empty),
        SH_TEST(test_list__insert_head_and_tail_keep_order),
        SH_TEST(test_list__remove_twice_is_harmless),
        SH_TEST(test_list__safe_iteration_may_remove_the_current_node),
        SH_TEST(test_list__item_in_two_lists),
        SH_TEST(test_array__grow_cap_doubles_from_eight),
        SH_TEST(test_array__grow_cap_stops_at_size_max),
        SH_TEST(test_array__reserve_keeps_items),
        SH_TEST(test_array__reserve_failure_leaves_array),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
