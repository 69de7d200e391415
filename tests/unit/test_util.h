/* SPDX-License-Identifier: MIT */
/* test_util.h: shared helpers for the cmocka unit tests. Every test runs under
 * SH_TEST(...) so its teardown fails the test when a block allocated through sh_* is left. */
#ifndef SHOAL_TEST_UTIL_H
#define SHOAL_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"

static long test_live_at_start;

static inline int test_setup(void **state)
{
    (void)state;
    sh_alloc_fail_after(0);
    test_live_at_start = sh_alloc_live();
    return 0;
}

static inline int test_teardown(void **state)
{
    (void)state;
    sh_alloc_fail_after(0);
    if (sh_alloc_live() != test_live_at_start) {
        print_error("leak: %ld block(s) allocated through sh_* still live\n",
                    sh_alloc_live() - test_live_at_start);
        return -1;
    }
    return 0;
}

#define SH_TEST(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

/* The deadline of a test's wait on a condition, in ms: generous, because CI is a busy 2-core
 * machine running ASan. A wait ends as soon as its condition holds; only a failing test waits
 * this long. Tests never assume how long something takes: they wait for it. */
#define TEST_WAIT_MS 20000

#endif
