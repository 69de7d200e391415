/* SPDX-License-Identifier: MIT */
/* test_kv.c: the config KV's reads and writes: set/get/delete, flags and indexes, recursive
 * reads and key listings, CAS, history and rollback, key rules and limits, indexes that never
 * go backwards, persistence, and OOM torture. Waits and subscriptions: test_wait.c. */
#include "config_fixture.h"

static void assert_slice(struct slice s, const char *want)
{
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void test_kv__set_get_delete(void **state)
{
    struct cfgkv_result res = {0};
    struct cfgkv_write_result wr;
    uint64_t i1, i2;
    (void)state;

    assert_int_equal(cfgkv_get(kv, S("services/web/timeout"), &res), SH_ENOENT);
    assert_int_equal(res.count, 0);
    assert_true(res.index > 0); /* Consul sends X-Consul-Index on a 404 too */
    assert_non_null(strstr(cfgkv_errmsg(kv), "not found"));

    i1 = put("services/web/timeout", "2s");
    assert_int_equal(cfgkv_set(kv, S("services/web/timeout"), S("{\"ms\":2500}"),
                               &(struct cfgkv_write_opts){.flags = 42}, &wr),
                     0);
    i2 = wr.index;
    assert_true(i2 > i1);

    assert_int_equal(cfgkv_get(kv, S("services/web/timeout"), &res), 0);
    assert_int_equal(res.count, 1);
    assert_slice(res.entries[0].key, "services/web/timeout");
    assert_slice(res.entries[0].value, "{\"ms\":2500}");
    assert_int_equal(res.entries[0].flags, 42);
    assert_int_equal(res.entries[0].create_index, i1);
    assert_int_equal(res.entries[0].modify_index, i2);
    assert_int_equal(res.entries[0].version, 2);
    assert_int_equal(res.entries[0].lock_index, 0);
    assert_int_equal(res.index, i2);
    cfgkv_result_release(&res);

    /* An empty value is a value. */
    put("empty", "");
    assert_int_equal(cfgkv_get(kv, S("empty"), &res), 0);
    assert_int_equal(res.entries[0].value.len, 0);
    cfgkv_result_release(&res);

    assert_int_equal(cfgkv_delete(kv, S("services/web/timeout"), NULL, &wr), 0);
    assert_int_equal(wr.deleted_count, 1);
    assert_true(wr.index > i2);
    assert_int_equal(cfgkv_get(kv, S("services/web/timeout"), &res), SH_ENOENT);
    assert_int_equal(res.index, wr.index); /* the delete's index */
    cfgkv_result_release(&res);

    /* Deleting what is not there succeeds and writes nothing. */
    uint64_t before = (uint64_t)store_revision(st);
    assert_int_equal(cfgkv_delete(kv, S("services/web/timeout"), NULL, &wr), 0);
    assert_int_equal(wr.deleted_count, 0);
    assert_int_equal((uint64_t)store_revision(st), before);
    cfgkv_result_release(&res); /* idempotent */
}

static void test_kv__recursive_reads_and_key_listing(void **state)
{
    struct cfgkv_result res = {0};
    struct cfgkv_write_result wr;
    uint64_t top;
    (void)state;

    put("app/config", "c");
    put("app/sub/a", "1");
    put("app/sub/b", "2");
    put("app/sub-x", "3");
    top = put("app/zz/deep/er", "4");
    put("application", "other");
    put("b", "outside");

    assert_int_equal(cfgkv_list(kv, S("app/"), &res), 0);
    assert_int_equal(res.count, 5);
    assert_slice(res.entries[0].key, "app/config");
    assert_slice(res.entries[0].value, "c");
    assert_slice(res.entries[1].key, "app/sub-x"); /* '-' sorts before '/' */
    assert_slice(res.entries[2].key, "app/sub/a");
    assert_slice(res.entries[4].key, "app/zz/deep/er");
    assert_int_equal(res.index, top);
    cfgkv_result_release(&res);

    /* A prefix is bytes, as Consul's: "app" also reaches "application". */
    assert_int_equal(cfgkv_list(kv, S("app"), &res), 0);
    assert_int_equal(res.count, 6);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_list(kv, S(""), &res), 0);
    assert_int_equal(res.count, 7);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_list(kv, S("nothing/"), &res), 0);
    assert_int_equal(res.count, 0);
    assert_true(res.index > 0);
    cfgkv_result_release(&res);

    /* ?keys&separator=/ */
    assert_int_equal(cfgkv_keys(kv, S("app/"), S("/"), &res), 0);
    assert_int_equal(res.count, 4);
    assert_slice(res.entries[0].key, "app/config");
    assert_false(res.entries[0].is_folder);
    assert_int_equal(res.entries[0].value.len, 0);
    assert_slice(res.entries[1].key, "app/sub-x");
    assert_slice(res.entries[2].key, "app/sub/");
    assert_true(res.entries[2].is_folder);
    assert_int_equal(res.entries[2].modify_index, 0);
    assert_slice(res.entries[3].key, "app/zz/");
    cfgkv_result_release(&res);

    /* ?keys without a separator: every key, no values. */
    assert_int_equal(cfgkv_keys(kv, S("app/sub"), SLICE_NULL, &res), 0);
    assert_int_equal(res.count, 3);
    assert_slice(res.entries[0].key, "app/sub-x");
    assert_int_equal(res.entries[0].value.len, 0);
    cfgkv_result_release(&res);

    /* Top level with a separator. */
    assert_int_equal(cfgkv_keys(kv, S(""), S("/"), &res), 0);
    assert_int_equal(res.count, 3);
    assert_slice(res.entries[0].key, "app/");
    assert_slice(res.entries[1].key, "application");
    assert_slice(res.entries[2].key, "b");
    cfgkv_result_release(&res);

    /* Recursive delete takes the whole subtree and nothing else. */
    assert_int_equal(
        cfgkv_delete(kv, S("app/sub/"), &(struct cfgkv_write_opts){.is_recurse = true}, &wr), 0);
    assert_int_equal(wr.deleted_count, 2);
    assert_int_equal(cfgkv_list(kv, S("app/"), &res), 0);
    assert_int_equal(res.count, 3);
    assert_int_equal(res.index, wr.index); /* raised by the delete */
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_delete(kv, S("app/"),
                                  &(struct cfgkv_write_opts){.is_recurse = true, .has_cas = true},
                                  &wr),
                     SH_EINVAL);
}

static void test_kv__cas(void **state)
{
    struct cfgkv_result res = {0};
    struct cfgkv_write_result wr;
    uint64_t created, rev;
    (void)state;

    /* cas=0: create only if absent. */
    assert_int_equal(
        cfgkv_set(kv, S("lock"), S("mine"), &(struct cfgkv_write_opts){.has_cas = true}, &wr), 0);
    created = wr.index;
    rev = (uint64_t)store_revision(st);
    assert_int_equal(
        cfgkv_set(kv, S("lock"), S("theirs"), &(struct cfgkv_write_opts){.has_cas = true}, &wr),
        CFGKV_CONFLICT);
    assert_int_equal(wr.index, rev);
    assert_non_null(strstr(cfgkv_errmsg(kv), "cas 0"));

    /* cas=N: only when modify_index is N; a miss changes nothing. */
    assert_int_equal(
        cfgkv_set(kv, S("lock"), S("stale"),
                  &(struct cfgkv_write_opts){.has_cas = true, .cas = created + 7, .flags = 9},
                  NULL),
        CFGKV_CONFLICT);
    assert_int_equal(cfgkv_set(kv, S("lock"), S("x"),
                               &(struct cfgkv_write_opts){.has_cas = true, .cas = UINT64_MAX},
                               NULL),
                     CFGKV_CONFLICT);
    assert_int_equal((uint64_t)store_revision(st), rev);
    assert_int_equal(cfgkv_get(kv, S("lock"), &res), 0);
    assert_slice(res.entries[0].value, "mine");
    assert_int_equal(res.entries[0].flags, 0);
    assert_int_equal(res.entries[0].modify_index, created);
    cfgkv_result_release(&res);

    assert_int_equal(cfgkv_set(kv, S("lock"), S("next"),
                               &(struct cfgkv_write_opts){.has_cas = true, .cas = created}, &wr),
                     0);
    assert_true(wr.index > created);

    /* Delete with cas: 0 never deletes (Consul), a stale index misses, the right one deletes. */
    assert_int_equal(cfgkv_delete(kv, S("lock"), &(struct cfgkv_write_opts){.has_cas = true}, NULL),
                     CFGKV_CONFLICT);
    assert_int_equal(cfgkv_delete(kv, S("lock"),
                                  &(struct cfgkv_write_opts){.has_cas = true, .cas = created},
                                  NULL),
                     CFGKV_CONFLICT);
    assert_int_equal(cfgkv_get(kv, S("lock"), &res), 0);
    assert_slice(res.entries[0].value, "next");
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_delete(kv, S("lock"),
                                  &(struct cfgkv_write_opts){.has_cas = true, .cas = wr.index},
                                  &wr),
                     0);
    assert_int_equal(wr.deleted_count, 1);
    assert_int_equal(cfgkv_get(kv, S("lock"), &res), SH_ENOENT);
    /* A cas on a missing key is a conflict, not a create. */
    assert_int_equal(cfgkv_delete(kv, S("lock"),
                                  &(struct cfgkv_write_opts){.has_cas = true, .cas = created},
                                  NULL),
                     CFGKV_CONFLICT);
}

static void test_kv__history_limit_and_rollback(void **state)
{
    struct cfgkv_result res = {0};
    struct cfgkv_write_result wr;
    uint64_t idx[8];
    char v[16];
    (void)state;

    fx_close();
    assert_int_equal(fx_open(&(struct cfgkv_config){.history = 4}), 0);

    assert_int_equal(cfgkv_history(kv, S("routes/api"), &res), 0);
    assert_int_equal(res.count, 0);
    cfgkv_result_release(&res);

    for (int i = 0; i < 6; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(cfgkv_set(kv, S("routes/api"), slice_from_cstr(v),
                                   &(struct cfgkv_write_opts){.flags = (uint64_t)i}, &wr),
                         0);
        idx[i] = wr.index;
    }
    assert_int_equal(cfgkv_history(kv, S("routes/api"), &res), 0);
    assert_int_equal(res.count, 4); /* the configured limit, newest first */
    assert_slice(res.entries[0].value, "v5");
    assert_int_equal(res.entries[0].modify_index, idx[5]);
    assert_int_equal(res.entries[0].version, 6);
    assert_slice(res.entries[3].value, "v2");
    assert_int_equal(res.entries[3].flags, 2);
    assert_int_equal(res.index, idx[5]);
    cfgkv_result_release(&res);

    /* Rollback writes the old value and flags as a new version. */
    assert_int_equal(cfgkv_rollback(kv, S("routes/api"), idx[3], NULL, &wr), 0);
    assert_true(wr.index > idx[5]);
    assert_int_equal(cfgkv_get(kv, S("routes/api"), &res), 0);
    assert_slice(res.entries[0].value, "v3");
    assert_int_equal(res.entries[0].flags, 3);
    assert_int_equal(res.entries[0].version, 7);
    assert_int_equal(res.entries[0].modify_index, wr.index);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_history(kv, S("routes/api"), &res), 0);
    assert_slice(res.entries[0].value, "v3");
    assert_slice(res.entries[1].value, "v5");
    cfgkv_result_release(&res);

    /* Out of the kept window, or no such index: SH_ENOENT, nothing written. */
    uint64_t rev = (uint64_t)store_revision(st);
    assert_int_equal(cfgkv_rollback(kv, S("routes/api"), idx[0], NULL, NULL), SH_ENOENT);
    assert_non_null(strstr(cfgkv_errmsg(kv), "last 4 versions"));
    assert_int_equal(cfgkv_rollback(kv, S("routes/api"), 999999, NULL, NULL), SH_ENOENT);
    /* With a stale cas: conflict. */
    assert_int_equal(cfgkv_rollback(kv, S("routes/api"), idx[4],
                                    &(struct cfgkv_write_opts){.has_cas = true, .cas = idx[5]},
                                    NULL),
                     CFGKV_CONFLICT);
    assert_int_equal((uint64_t)store_revision(st), rev);

    /* Deletes are versions too; a delete is not a rollback target, the value before it is. */
    assert_int_equal(cfgkv_delete(kv, S("routes/api"), NULL, &wr), 0);
    assert_int_equal(cfgkv_history(kv, S("routes/api"), &res), 0);
    assert_true(res.entries[0].is_deleted);
    assert_int_equal(res.entries[0].modify_index, wr.index);
    assert_int_equal(res.entries[0].version, 0);
    assert_int_equal(res.index, wr.index);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_rollback(kv, S("routes/api"), wr.index, NULL, NULL), SH_ENOENT);
    assert_int_equal(cfgkv_rollback(kv, S("routes/api"), idx[5], NULL, &wr), 0);
    assert_int_equal(cfgkv_get(kv, S("routes/api"), &res), 0);
    assert_slice(res.entries[0].value, "v5");
    assert_int_equal(res.entries[0].version, 1); /* created again */
    cfgkv_result_release(&res);
}

struct bad_key {
    const char *key;
    int rc;
    const char *says;
};

static void test_kv__invalid_keys_and_values(void **state)
{
    static const struct bad_key bad[] = {
        {"", SH_EINVAL, "empty"},
        {"/a", SH_EINVAL, "starts with '/'"},
        {"a/", SH_EINVAL, "ends with '/'"},
        {"a//b", SH_EINVAL, "empty segment at byte 2"},
        {"a/../b", SH_EINVAL, "segment '..' at byte 2"},
        {"./a", SH_EINVAL, "segment '.' at byte 0"},
        {"a/..", SH_EINVAL, "'..'"},
        {"a b", SH_EINVAL, "byte 1 is 0x20"},
        {"a\tb", SH_EINVAL, "'a\\x09b': byte 1 is 0x09"},
        {"caf\xc3\xa9", SH_EINVAL, "byte 3 is 0xc3"},
    };
    struct cfgkv_result res = {0};
    struct sh_diag d;
    char big[CFGKV_MAX_KEY_BYTES + 2];
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(bad); i++) {
        struct slice k = slice_from_cstr(bad[i].key);
        assert_int_equal(cfgkv_set(kv, k, S("v"), NULL, NULL), bad[i].rc);
        if (!strstr(cfgkv_errmsg(kv), bad[i].says))
            fail_msg("key '%s': message '%s' lacks '%s'", bad[i].key, cfgkv_errmsg(kv),
                     bad[i].says);
        assert_int_equal(cfgkv_get(kv, k, &res), bad[i].rc);
        assert_int_equal(cfgkv_key_check(k, &d), bad[i].rc);
        assert_string_equal(d.where, "key");
    }
    /* Accepted: dots inside segments, other punctuation. */
    assert_int_equal(cfgkv_key_check(S("a/.hidden/..x/b.c-d_e:f@g~"), NULL), 0);

    /* Prefixes: "" and a trailing '/' are fine, a partial last segment too. */
    assert_int_equal(cfgkv_prefix_check(S(""), NULL), 0);
    assert_int_equal(cfgkv_prefix_check(S("a/b/"), NULL), 0);
    assert_int_equal(cfgkv_prefix_check(S("a/."), NULL), 0);
    assert_int_equal(cfgkv_prefix_check(S("a//"), &d), SH_EINVAL);
    assert_string_equal(d.where, "prefix");
    assert_int_equal(cfgkv_prefix_check(S("../a"), NULL), SH_EINVAL);
    assert_int_equal(cfgkv_list(kv, S("/x"), &res), SH_EINVAL);
    assert_int_equal(
        cfgkv_delete(kv, S("a//"), &(struct cfgkv_write_opts){.is_recurse = true}, NULL),
        SH_EINVAL);

    /* Key length: 512 bytes accepted, 513 not. */
    memset(big, 'k', sizeof(big));
    assert_int_equal(cfgkv_set(kv, (struct slice){big, CFGKV_MAX_KEY_BYTES}, S("v"), NULL, NULL),
                     0);
    assert_int_equal(
        cfgkv_set(kv, (struct slice){big, CFGKV_MAX_KEY_BYTES + 1}, S("v"), NULL, NULL),
        SH_ETOOBIG);
    assert_non_null(strstr(cfgkv_errmsg(kv), "513 bytes; the limit is 512"));

    /* Values: 512 KiB accepted, one byte more not, and nothing is written. */
    size_t n = CFGKV_DEFAULT_MAX_VALUE_BYTES;
    char *v = sh_malloc(n + 1);
    assert_non_null(v);
    memset(v, 'v', n + 1);
    assert_int_equal(cfgkv_set(kv, S("big"), (struct slice){v, n}, NULL, NULL), 0);
    assert_int_equal(cfgkv_set(kv, S("big"), (struct slice){v, n + 1}, NULL, NULL), SH_ETOOBIG);
    assert_non_null(
        strstr(cfgkv_errmsg(kv), "value of 'big' is 524289 bytes; the limit is 524288"));
    assert_int_equal(cfgkv_get(kv, S("big"), &res), 0);
    assert_int_equal(res.entries[0].value.len, n);
    assert_int_equal(res.entries[0].version, 1);
    cfgkv_result_release(&res);
    sh_free(v);

    /* A smaller configured limit, and one past what the store can hold. */
    fx_close();
    assert_int_equal(fx_open(&(struct cfgkv_config){.max_value_bytes = 4}), 0);
    assert_int_equal(cfgkv_set(kv, S("small"), S("1234"), NULL, NULL), 0);
    assert_int_equal(cfgkv_set(kv, S("small"), S("12345"), NULL, NULL), SH_ETOOBIG);
    struct cfgkv *other = NULL;
    assert_int_equal(cfgkv_new(&(struct cfgkv_config){.max_value_bytes = CFGKV_MAX_VALUE_LIMIT + 1},
                               &loop, st, &other),
                     SH_EINVAL);
    assert_null(other);
}

/* The index of a key or prefix never goes backwards, deletes included (Consul clients reset
 * when it does). */
static void test_kv__index_never_decreases(void **state)
{
    struct cfgkv_result res = {0};
    uint64_t last = 0;
    (void)state;

#define CHECK_PREFIX(p)                                                                            \
    do {                                                                                           \
        assert_int_equal(cfgkv_list(kv, S(p), &res), 0);                                           \
        assert_true(res.index >= last);                                                            \
        last = res.index;                                                                          \
        cfgkv_result_release(&res);                                                                \
    } while (0)

    CHECK_PREFIX("svc/");
    put("svc/a", "1");
    CHECK_PREFIX("svc/");
    uint64_t b = put("svc/b", "2");
    CHECK_PREFIX("svc/");
    assert_int_equal(last, b);
    put("other", "x");
    CHECK_PREFIX("svc/");
    assert_int_equal(last, b); /* an unrelated write does not move it */
    assert_int_equal(cfgkv_delete(kv, S("svc/b"), NULL, NULL), 0); /* the highest one goes */
    CHECK_PREFIX("svc/");
    assert_true(last > b);
    assert_int_equal(
        cfgkv_delete(kv, S("svc/"), &(struct cfgkv_write_opts){.is_recurse = true}, NULL), 0);
    CHECK_PREFIX("svc/");
#undef CHECK_PREFIX
}

static void test_kv__reopen_keeps_everything(void **state)
{
    struct cfgkv_result res = {0};
    uint64_t i1, i2;
    (void)state;

    i1 = put("persist/a", "one");
    assert_int_equal(
        cfgkv_set(kv, S("persist/a"), S("two"), &(struct cfgkv_write_opts){.flags = 5}, NULL), 0);
    i2 = put("persist/b", "b");
    fx_close();
    assert_int_equal(fx_open(&(struct cfgkv_config){0}), 0);

    assert_int_equal(cfgkv_get(kv, S("persist/a"), &res), 0);
    assert_slice(res.entries[0].value, "two");
    assert_int_equal(res.entries[0].flags, 5);
    assert_int_equal(res.entries[0].create_index, i1);
    assert_int_equal(res.entries[0].version, 2);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_history(kv, S("persist/a"), &res), 0);
    assert_int_equal(res.count, 2);
    assert_slice(res.entries[1].value, "one");
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_list(kv, S("persist/"), &res), 0);
    assert_int_equal(res.count, 2);
    assert_int_equal(res.index, i2);
    cfgkv_result_release(&res);
    assert_true(put("persist/c", "c") > i2); /* indexes go on from where they were */
}

/* Open, set (plain, cas, flags), get, list, keys, history, rollback, delete with the Nth
 * allocation failing. */
static int torture_once(void)
{
    struct cfgkv_result res = {0};
    struct cfgkv_write_result wr = {0};
    int rc;

    rc = fx_open(&(struct cfgkv_config){0});
    if (rc == 0) rc = cfgkv_set(kv, S("t/a"), S("one"), NULL, &wr);
    if (rc == 0)
        rc = cfgkv_set(kv, S("t/a"), S("two"),
                       &(struct cfgkv_write_opts){.has_cas = true, .cas = wr.index, .flags = 1},
                       NULL);
    if (rc == 0) rc = cfgkv_set(kv, S("t/b/c"), S("three"), NULL, NULL);
    if (rc == 0) {
        rc = cfgkv_get(kv, S("t/a"), &res);
        if (rc == 0 && (res.count != 1 || !slice_eq(res.entries[0].value, S("two")))) rc = SH_EIO;
        cfgkv_result_release(&res);
    }
    if (rc == 0) {
        rc = cfgkv_list(kv, S("t/"), &res);
        cfgkv_result_release(&res);
    }
    if (rc == 0) {
        rc = cfgkv_keys(kv, S("t/"), S("/"), &res);
        cfgkv_result_release(&res);
    }
    if (rc == 0) {
        rc = cfgkv_history(kv, S("t/a"), &res);
        cfgkv_result_release(&res);
    }
    if (rc == 0) rc = cfgkv_rollback(kv, S("t/a"), wr.index, NULL, NULL);
    if (rc == 0)
        rc = cfgkv_delete(kv, S("t/"), &(struct cfgkv_write_opts){.is_recurse = true}, NULL);
    fx_close();
    return rc;
}

static void test_kv__oom_torture(void **state)
{
    long n, total;
    (void)state;

    fx_close();
    assert_int_equal(torture_once(), 0);
    sh_alloc_fail_after(1000000); /* counts without failing */
    assert_int_equal(torture_once(), 0);
    total = sh_alloc_count();
    assert_true(total > 10);
    for (n = 1; n <= total; n++) {
        long live = sh_alloc_live();
        sh_alloc_fail_after(n);
        int rc = torture_once();
        sh_alloc_fail_after(0);
        if (rc != SH_ENOMEM)
            fail_msg("allocation %ld of %ld failing gave %s", n, total, sh_errname(rc));
        assert_int_equal(sh_alloc_live(), live);
    }
    assert_int_equal(fx_open(&(struct cfgkv_config){0}), 0); /* for the teardown */
}

/* A value marked secret keeps its mark through reads, history, a rollback and a reopen; an
 * unmarked write over it clears it. */
static void test_kv__secret_mark(void **state)
{
    struct cfgkv_result res = {0};
    struct cfgkv_write_result wr;
    uint64_t secret_index;
    (void)state;

    assert_int_equal(cfgkv_set(kv, S("db/password"), S("hunter2"),
                               &(struct cfgkv_write_opts){.is_secret = true}, &wr),
                     0);
    secret_index = wr.index;
    assert_int_equal(cfgkv_get(kv, S("db/password"), &res), 0);
    assert_true(res.entries[0].is_secret);
    assert_slice(res.entries[0].value, "hunter2");
    cfgkv_result_release(&res);
    put("db/password", "plain");
    assert_int_equal(cfgkv_get(kv, S("db/password"), &res), 0);
    assert_false(res.entries[0].is_secret);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_history(kv, S("db/password"), &res), 0);
    assert_int_equal(res.count, 2);
    assert_false(res.entries[0].is_secret);
    assert_true(res.entries[1].is_secret);
    cfgkv_result_release(&res);
    assert_int_equal(cfgkv_rollback(kv, S("db/password"), secret_index, NULL, &wr), 0);
    assert_int_equal(cfgkv_get(kv, S("db/password"), &res), 0);
    assert_true(res.entries[0].is_secret);
    assert_slice(res.entries[0].value, "hunter2");
    cfgkv_result_release(&res);
}

int main(void)
{
    sh_log_setup(SH_WARN, SH_LOG_AUTO, 2);
    const struct CMUnitTest tests[] = {
        CFG_TEST(test_kv__set_get_delete),
        CFG_TEST(test_kv__recursive_reads_and_key_listing),
        CFG_TEST(test_kv__cas),
        CFG_TEST(test_kv__history_limit_and_rollback),
        CFG_TEST(test_kv__secret_mark),
        CFG_TEST(test_kv__invalid_keys_and_values),
        CFG_TEST(test_kv__index_never_decreases),
        CFG_TEST(test_kv__reopen_keeps_everything),
        CFG_TEST(test_kv__oom_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
