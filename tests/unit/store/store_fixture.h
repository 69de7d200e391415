/* SPDX-License-Identifier: MIT */
/* store_fixture.h: a fresh data dir per store test (removed at teardown, after the leak check),
 * for tests/unit/store/test_*.c. */
#ifndef SHOAL_TEST_STORE_FIXTURE_H
#define SHOAL_TEST_STORE_FIXTURE_H

#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/store.h"

#define S(lit) SLICE(lit)

static char dir[256];

static inline void rm_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[1024];

    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static inline int dir_setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/shoal-store-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return test_setup(state);
}

static inline int dir_teardown(void **state)
{
    int rc = test_teardown(state);

    rm_dir(dir);
    return rc;
}

#define STORE_TEST(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

#endif
