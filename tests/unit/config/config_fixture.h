/* SPDX-License-Identifier: MIT */
/* config_fixture.h: a fresh data dir, loop, store and cfgkv per config test; teardown frees
 * them, lets the loop release the timer, checks for leaks, then removes the dir. */
#ifndef SHOAL_TEST_CONFIG_FIXTURE_H
#define SHOAL_TEST_CONFIG_FIXTURE_H

#include "store/store_fixture.h"

#include "config/config.h"

static uv_loop_t loop;
static struct store *st;
static struct cfgkv *kv;

/* Opens the store in dir and a cfgkv over it with <cfg>. 0 or the first error. */
static inline int fx_open(const struct cfgkv_config *cfg)
{
    int rc = store_open(&(struct store_config){.data_dir = dir}, &st, NULL);

    if (rc == 0) rc = cfgkv_new(cfg, &loop, st, &kv);
    return rc;
}

static inline void fx_close(void)
{
    cfgkv_free(kv);
    kv = NULL;
    uv_run(&loop, UV_RUN_NOWAIT); /* the timer's close callback */
    store_close(st);
    st = NULL;
}

static inline int fx_setup(void **state)
{
    int rc = dir_setup(state);

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(fx_open(&(struct cfgkv_config){0}), 0);
    return rc;
}

static inline int fx_teardown(void **state)
{
    fx_close();
    assert_int_equal(uv_loop_close(&loop), 0);
    return dir_teardown(state);
}

#define CFG_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

/* Sets key to a string value without options; asserts success; returns the write's index. */
static inline uint64_t put(const char *key, const char *value)
{
    struct cfgkv_write_result wr;

    assert_int_equal(cfgkv_set(kv, slice_from_cstr(key), slice_from_cstr(value), NULL, &wr), 0);
    return wr.index;
}

#endif
