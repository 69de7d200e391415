/* SPDX-License-Identifier: MIT */
/* test_store.c: the store on its SQLite backend: reads and writes, revisions and versions as
 * etcd gives them, compare-and-swap and transactions, history, limits, reopening, schema
 * migration, the data dir lock, and OOM torture. Leases and watches: test_store_watch.c. */
#include "store/store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

static struct store *open_store(uint32_t history, uint32_t window)
{
    struct store *st = NULL;
    struct sh_diag d = {{0}, {0}};
    int rc = store_open(
        &(struct store_config){.data_dir = dir, .history = history, .watch_window = window}, &st,
        &d);
    if (rc != 0) print_error("store_open: %s: %s: %s\n", sh_errname(rc), d.where, d.what);
    assert_int_equal(rc, 0);
    return st;
}

static void assert_kv(struct store *st, const char *key, const char *value, int64_t create,
                      int64_t mod, int64_t version)
{
    struct store_result res;

    assert_int_equal(store_get(st, slice_from_cstr(key), &res), 0);
    assert_int_equal(res.count, 1);
    assert_int_equal(res.kvs[0].value.len, strlen(value));
    assert_memory_equal(res.kvs[0].value.ptr, value, strlen(value));
    assert_int_equal(res.kvs[0].create_revision, create);
    assert_int_equal(res.kvs[0].mod_revision, mod);
    assert_int_equal(res.kvs[0].version, version);
    store_result_release(&res);
}

static void assert_absent(struct store *st, const char *key)
{
    struct store_result res;

    assert_int_equal(store_get(st, slice_from_cstr(key), &res), SH_ENOENT);
    assert_int_equal(res.count, 0);
    store_result_release(&res);
}

static void test_store__put_get_range_delete(void **state)
{
    struct store *st = open_store(0, 0);
    struct store_result res;
    size_t deleted;
    int64_t rev;
    (void)state;

    assert_int_equal(store_revision(st), 0);
    assert_int_equal(store_put(st, S("/svc/a"), S("1"), 0, &rev), 0);
    assert_int_equal(rev, 1);
    assert_int_equal(store_put(st, S("/svc/b"), S("2"), 0, NULL), 0);
    assert_int_equal(store_put(st, S("/svc/c"), S(""), 0, NULL), 0); /* empty values are fine */
    assert_int_equal(store_put(st, S("/svd"), S("x"), 0, NULL), 0);
    assert_kv(st, "/svc/b", "2", 2, 2, 1);
    assert_kv(st, "/svc/c", "", 3, 3, 1);

    assert_int_equal(store_range(st, STORE_PREFIX(S("/svc/")), 0, &res), 0);
    assert_int_equal(res.count, 3);
    assert_false(res.has_more);
    assert_int_equal(res.revision, 4);
    assert_memory_equal(res.kvs[0].key.ptr, "/svc/a", 6);
    assert_memory_equal(res.kvs[2].key.ptr, "/svc/c", 6);
    store_result_release(&res);

    assert_int_equal(store_range(st, STORE_PREFIX(S("/svc/")), 2, &res), 0);
    assert_int_equal(res.count, 2);
    assert_true(res.has_more);
    store_result_release(&res);

    assert_int_equal(store_range(st, STORE_RANGE(S("/svc/b"), S("/svd")), 0, &res), 0);
    assert_int_equal(res.count, 2); /* b, c: the end is excluded */
    store_result_release(&res);
    assert_int_equal(store_range(st, STORE_RANGE(S("/svc/b"), SLICE_NULL), 0, &res), 0);
    assert_int_equal(res.count, 3); /* no upper bound */
    store_result_release(&res);
    assert_int_equal(store_range(st, STORE_PREFIX(SLICE_NULL), 0, &res), 0);
    assert_int_equal(res.count, 4); /* everything */
    store_result_release(&res);

    assert_int_equal(store_delete(st, STORE_PREFIX(S("/svc/")), &deleted, &rev), 0);
    assert_int_equal(deleted, 3);
    assert_int_equal(rev, 5); /* one revision for the whole range */
    assert_absent(st, "/svc/a");
    assert_kv(st, "/svd", "x", 4, 4, 1);
    store_close(st);
}

static void test_store__prefix_of_0xff_bytes_reaches_the_end(void **state)
{
    struct store *st = open_store(0, 0);
    struct store_result res;
    (void)state;

    assert_int_equal(store_put(st, (struct slice){"a\xff", 2}, S("1"), 0, NULL), 0);
    assert_int_equal(store_put(st, (struct slice){"a\xff\xff", 3}, S("2"), 0, NULL), 0);
    assert_int_equal(store_put(st, (struct slice){"b", 1}, S("3"), 0, NULL), 0);
    assert_int_equal(store_put(st, (struct slice){"\xff\xff", 2}, S("4"), 0, NULL), 0);
    assert_int_equal(store_range(st, STORE_PREFIX(((struct slice){"a\xff", 2})), 0, &res), 0);
    assert_int_equal(res.count, 2);
    store_result_release(&res);
    assert_int_equal(store_range(st, STORE_PREFIX(((struct slice){"\xff", 1})), 0, &res), 0);
    assert_int_equal(res.count, 1);
    store_result_release(&res);
    store_close(st);
}

static void test_store__revisions_and_versions_follow_etcd(void **state)
{
    struct store *st = open_store(0, 0);
    size_t deleted;
    int64_t rev;
    (void)state;

    assert_int_equal(store_put(st, S("a"), S("1"), 0, &rev), 0);
    assert_int_equal(rev, 1);
    assert_kv(st, "a", "1", 1, 1, 1);
    assert_int_equal(store_put(st, S("a"), S("2"), 0, &rev), 0);
    assert_int_equal(rev, 2);
    assert_kv(st, "a", "2", 1, 2, 2);
    assert_int_equal(store_put(st, S("b"), S("1"), 0, NULL), 0);
    assert_int_equal(store_delete(st, STORE_KEY(S("a")), &deleted, &rev), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(rev, 4);
    /* A delete that removes nothing is not a revision. */
    assert_int_equal(store_delete(st, STORE_KEY(S("a")), &deleted, &rev), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(rev, 4);
    assert_int_equal(store_revision(st), 4);
    /* Recreated: a new life, version 1. */
    assert_int_equal(store_put(st, S("a"), S("3"), 0, &rev), 0);
    assert_int_equal(rev, 5);
    assert_kv(st, "a", "3", 5, 5, 1);
    /* Putting the same value again is still a revision (etcd does not dedupe). */
    assert_int_equal(store_put(st, S("a"), S("3"), 0, &rev), 0);
    assert_kv(st, "a", "3", 5, 6, 2);

    /* All changes of one txn share one revision. */
    struct store_op ops[] = {
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("x")), .value = S("1")},
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("y")), .value = S("2")},
        {.type = STORE_OP_DELETE, .span = STORE_KEY(S("b"))},
    };
    struct store_txn_result tr;
    assert_int_equal(store_txn(st, &(struct store_txn){.success = ops, .success_count = 3}, &tr),
                     0);
    assert_true(tr.is_succeeded);
    assert_int_equal(tr.revision, 7);
    assert_int_equal(tr.deleted_count, 1);
    assert_kv(st, "x", "1", 7, 7, 1);
    assert_kv(st, "y", "2", 7, 7, 1);
    assert_absent(st, "b");
    store_close(st);
}

static void test_store__cas_conflict_changes_nothing(void **state)
{
    struct store *st = open_store(0, 0);
    int64_t rev;
    (void)state;

    /* 0 = create only if absent. */
    assert_int_equal(store_cas(st, S("cfg"), 0, S("v1"), &rev), 0);
    assert_int_equal(rev, 1);
    assert_int_equal(store_cas(st, S("cfg"), 0, S("other"), &rev), STORE_CONFLICT);
    assert_int_equal(rev, 1);
    assert_int_equal(store_cas(st, S("cfg"), 1, S("v2"), &rev), 0);
    assert_int_equal(rev, 2);
    assert_int_equal(store_cas(st, S("cfg"), 1, S("v3"), &rev), STORE_CONFLICT);
    assert_int_equal(rev, 2);
    assert_int_equal(store_revision(st), 2);
    assert_kv(st, "cfg", "v2", 1, 2, 2);
    assert_non_null(strstr(store_errmsg(st), "mod_revision"));
    store_close(st);
}

static void test_store__txn_compares_pick_a_branch(void **state)
{
    struct store *st = open_store(0, 0);
    struct store_txn_result tr;
    (void)state;

    assert_int_equal(store_put(st, S("k"), S("b"), 0, NULL), 0);
    struct store_cmp cmps[] = {
        {.key = S("k"), .target = STORE_CMP_VALUE, .op = STORE_EQ, .value = S("b")},
        {.key = S("k"), .target = STORE_CMP_VERSION, .op = STORE_GT, .num = 0},
        {.key = S("k"), .target = STORE_CMP_CREATE, .op = STORE_EQ, .num = 1},
        {.key = S("k"), .target = STORE_CMP_LEASE, .op = STORE_EQ, .num = 0},
        {.key = S("absent"), .target = STORE_CMP_VERSION, .op = STORE_EQ, .num = 0},
        {.key = S("k"), .target = STORE_CMP_VALUE, .op = STORE_LT, .value = S("c")},
        {.key = S("k"), .target = STORE_CMP_MOD, .op = STORE_NE, .num = 7},
    };
    struct store_op yes = {.type = STORE_OP_PUT, .span = STORE_KEY(S("branch")), .value = S("yes")};
    struct store_op no = {.type = STORE_OP_PUT, .span = STORE_KEY(S("branch")), .value = S("no")};
    struct store_txn txn = {.cmps = cmps,
                            .cmp_count = SH_ARRAY_LEN(cmps),
                            .success = &yes,
                            .success_count = 1,
                            .failure = &no,
                            .failure_count = 1};
    assert_int_equal(store_txn(st, &txn, &tr), 0);
    assert_true(tr.is_succeeded);
    assert_kv(st, "branch", "yes", 2, 2, 1);

    /* A value compare on an absent key is false, whatever the operator. */
    struct store_cmp absent = {
        .key = S("nope"), .target = STORE_CMP_VALUE, .op = STORE_NE, .value = S("x")};
    txn.cmps = &absent;
    txn.cmp_count = 1;
    assert_int_equal(store_txn(st, &txn, &tr), 0);
    assert_false(tr.is_succeeded);
    assert_int_equal(tr.revision, 3);
    assert_kv(st, "branch", "no", 2, 3, 2);

    /* A failed compare with no failure ops changes nothing, revision included. */
    txn.failure_count = 0;
    assert_int_equal(store_txn(st, &txn, &tr), 0);
    assert_false(tr.is_succeeded);
    assert_int_equal(tr.revision, 3);
    store_close(st);
}

static void test_store__txn_is_all_or_nothing(void **state)
{
    struct store *st = open_store(0, 0);
    struct store_txn_result tr;
    (void)state;

    assert_int_equal(store_put(st, S("keep"), S("1"), 0, NULL), 0);
    /* The third op fails (no lease 42) after two were applied inside the transaction. */
    struct store_op ops[] = {
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("n1")), .value = S("1")},
        {.type = STORE_OP_DELETE, .span = STORE_KEY(S("keep"))},
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("n2")), .value = S("2"), .lease = 42},
    };
    assert_int_equal(store_txn(st, &(struct store_txn){.success = ops, .success_count = 3}, &tr),
                     SH_ENOENT);
    assert_int_equal(tr.revision, 0);
    assert_int_equal(store_revision(st), 1);
    assert_absent(st, "n1");
    assert_kv(st, "keep", "1", 1, 1, 1);

    /* A key changed twice in one txn is refused before anything happens, as etcd does. */
    struct store_op twice[] = {
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("d/x")), .value = S("1")},
        {.type = STORE_OP_DELETE, .span = STORE_PREFIX(S("d/"))},
    };
    assert_int_equal(store_txn(st, &(struct store_txn){.success = twice, .success_count = 2}, &tr),
                     SH_EINVAL);
    twice[1] = twice[0];
    assert_int_equal(store_txn(st, &(struct store_txn){.success = twice, .success_count = 2}, &tr),
                     SH_EINVAL);
    /* The store still works after the failed transactions. */
    assert_int_equal(store_put(st, S("after"), S("1"), 0, NULL), 0);
    assert_int_equal(store_revision(st), 2);
    store_close(st);
}

static void test_store__limits(void **state)
{
    struct store *st = open_store(0, 0);
    char *big = calloc(1, STORE_MAX_VALUE_BYTES + 1);
    struct store_result res;
    (void)state;

    assert_non_null(big);
    memset(big, 'k', STORE_MAX_VALUE_BYTES + 1);
    struct slice key_max = {big, STORE_MAX_KEY_BYTES};
    struct slice key_over = {big, STORE_MAX_KEY_BYTES + 1};
    struct slice val_max = {big, STORE_MAX_VALUE_BYTES};
    struct slice val_over = {big, STORE_MAX_VALUE_BYTES + 1};

    assert_int_equal(store_put(st, key_over, S("v"), 0, NULL), SH_ETOOBIG);
    assert_int_equal(store_put(st, S("k"), val_over, 0, NULL), SH_ETOOBIG);
    assert_non_null(strstr(store_errmsg(st), "value of"));
    assert_int_equal(store_put(st, SLICE_NULL, S("v"), 0, NULL), SH_EINVAL);
    assert_int_equal(store_get(st, key_over, &res), SH_ETOOBIG);
    store_result_release(&res);
    assert_int_equal(store_revision(st), 0);

    assert_int_equal(store_put(st, key_max, val_max, 0, NULL), 0);
    assert_int_equal(store_get(st, key_max, &res), 0);
    assert_int_equal(res.kvs[0].value.len, STORE_MAX_VALUE_BYTES);
    assert_int_equal(res.kvs[0].key.len, STORE_MAX_KEY_BYTES);
    store_result_release(&res);

    struct store_op many[STORE_MAX_TXN_OPS + 1];
    for (size_t i = 0; i < SH_ARRAY_LEN(many); i++)
        many[i] = (struct store_op){.type = STORE_OP_DELETE, .span = STORE_KEY(S("x"))};
    struct store_txn_result tr;
    assert_int_equal(
        store_txn(st, &(struct store_txn){.success = many, .success_count = SH_ARRAY_LEN(many)},
                  &tr),
        SH_ETOOBIG);
    free(big);
    store_close(st);
}

static void test_store__history_keeps_the_last_versions(void **state)
{
    struct store *st = open_store(3, 1); /* 3 events per key; compact everything older */
    struct store_result res;
    char v[16];
    (void)state;

    for (int i = 1; i <= 10; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        assert_int_equal(store_put(st, S("cfg"), slice_from_cstr(v), 0, NULL), 0);
        assert_int_equal(store_put(st, S("other"), slice_from_cstr(v), 0, NULL), 0);
    }
    assert_int_equal(store_history(st, S("cfg"), 0, &res), 0);
    assert_int_equal(res.count, 3);
    assert_memory_equal(res.kvs[0].value.ptr, "v10", 3); /* newest first */
    assert_int_equal(res.kvs[0].version, 10);
    assert_int_equal(res.kvs[0].mod_revision, 19);
    assert_memory_equal(res.kvs[2].value.ptr, "v8", 2);
    assert_int_equal(res.kvs[2].version, 8);
    assert_int_equal(res.kvs[2].create_revision, 1);
    store_result_release(&res);

    assert_int_equal(store_delete(st, STORE_KEY(S("cfg")), NULL, NULL), 0);
    assert_int_equal(store_history(st, S("cfg"), 2, &res), 0);
    assert_int_equal(res.count, 2);
    assert_int_equal(res.kvs[0].version, 0); /* the delete */
    assert_int_equal(res.kvs[0].mod_revision, 21);
    assert_int_equal(res.kvs[0].value.len, 0);
    assert_int_equal(res.kvs[1].version, 10);
    store_result_release(&res);

    assert_int_equal(store_history(st, S("never"), 0, &res), 0);
    assert_int_equal(res.count, 0);
    store_result_release(&res);
    assert_int_equal(store_compact_revision(st), 20);
    store_close(st);
}

static void test_store__reopen_keeps_everything(void **state)
{
    struct store *st = open_store(0, 0);
    struct store_result res;
    (void)state;

    assert_int_equal(store_put(st, S("a"), S("1"), 0, NULL), 0);
    assert_int_equal(store_put(st, S("a"), S("2"), 0, NULL), 0);
    assert_int_equal(store_put(st, S("b"), (struct slice){"\0bin\0", 5}, 0, NULL), 0);
    assert_int_equal(store_delete(st, STORE_KEY(S("gone")), NULL, NULL), 0);
    store_close(st);

    st = open_store(0, 0);
    assert_int_equal(store_revision(st), 3);
    assert_kv(st, "a", "2", 1, 2, 2);
    assert_int_equal(store_get(st, S("b"), &res), 0);
    assert_int_equal(res.kvs[0].value.len, 5);
    assert_memory_equal(res.kvs[0].value.ptr, "\0bin\0", 5);
    store_result_release(&res);
    assert_int_equal(store_history(st, S("a"), 0, &res), 0);
    assert_int_equal(res.count, 2);
    store_result_release(&res);
    assert_int_equal(store_put(st, S("c"), S("1"), 0, NULL), 0);
    assert_int_equal(store_revision(st), 4);
    store_close(st);
}

static struct store *open_group(void)
{
    struct store *st = NULL;
    struct sh_diag d = {{0}, {0}};

    assert_int_equal(
        store_open(&(struct store_config){.data_dir = dir, .is_group_commit = true}, &st, &d), 0);
    return st;
}

/* Group commit: writes are visible at once but durable only after store_sync. A child writes
 * and dies without closing (as kill -9 would leave it); the parent reopens the store. */
static void test_store__group_commit_is_durable_at_sync(void **state)
{
    pid_t pid;
    int status;
    (void)state;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *st = open_group();
        int ok = !store_is_unsynced(st);
        ok &= store_put(st, S("a"), S("1"), 0, NULL) == 0;
        ok &= store_put(st, S("b"), S("2"), 0, NULL) == 0;
        ok &= store_is_unsynced(st) && store_revision(st) == 2;
        struct store_result res;
        ok &= store_get(st, S("b"), &res) == 0 && res.count == 1; /* visible before the sync */
        store_result_release(&res);
        ok &= store_sync(st) == 0 && !store_is_unsynced(st);
        ok &= store_sync(st) == 0; /* nothing open: nothing to do */
        ok &= store_put(st, S("c"), S("3"), 0, NULL) == 0 && store_is_unsynced(st);
        _exit(ok ? 0 : 1); /* c was never synced */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    struct store *st = open_store(0, 0);
    assert_kv(st, "a", "1", 1, 1, 1);
    assert_kv(st, "b", "2", 2, 2, 1);
    assert_absent(st, "c");
    assert_int_equal(store_revision(st), 2);
    store_close(st);
}

/* In a batch, a write that fails halfway undoes only itself (its savepoint); reads inside the
 * batch see the batch's writes; store_close commits what is open. */
static void test_store__group_commit_failed_write_undoes_only_itself(void **state)
{
    struct store *st = open_group();
    struct store_txn_result tr;
    int64_t lease = 0;
    uint64_t ttl = 0;
    (void)state;

    /* The batch's first write fails: nothing is lost, the batch goes on. */
    struct store_op bad = {
        .type = STORE_OP_PUT, .span = STORE_KEY(S("x")), .value = S("1"), .lease = 42};
    assert_int_equal(store_txn(st, &(struct store_txn){.success = &bad, .success_count = 1}, &tr),
                     SH_ENOENT);
    assert_int_equal(store_put(st, S("keep"), S("1"), 0, NULL), 0);
    /* A lease and its keepalive inside the batch. */
    assert_int_equal(store_lease_grant(st, 60000, &lease), 0);
    assert_int_equal(store_lease_keepalive(st, lease), 0);
    assert_int_equal(store_lease_keepalive(st, lease + 1), SH_ENOENT);
    struct store_op ops[] = {
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("n1")), .value = S("1")},
        {.type = STORE_OP_DELETE, .span = STORE_KEY(S("keep"))},
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("n2")), .value = S("2"), .lease = 42},
    };
    assert_int_equal(store_txn(st, &(struct store_txn){.success = ops, .success_count = 3}, &tr),
                     SH_ENOENT);
    assert_absent(st, "n1");
    assert_kv(st, "keep", "1", 1, 1, 1);
    assert_int_equal(store_put(st, S("after"), S("2"), 0, NULL), 0);
    assert_kv(st, "after", "2", 2, 2, 1);
    assert_int_equal(store_revision(st), 2);
    assert_true(store_is_unsynced(st));
    store_close(st);

    st = open_store(0, 0);
    assert_kv(st, "keep", "1", 1, 1, 1);
    assert_kv(st, "after", "2", 2, 2, 1);
    assert_absent(st, "n1");
    assert_absent(st, "x");
    assert_int_equal(store_revision(st), 2);
    assert_int_equal(store_lease_ttl(st, lease, &ttl), 0);
    assert_true(ttl > 0);
    store_close(st);
}

static void test_store__data_dir_is_created_and_locked(void **state)
{
    char sub[300];
    struct store *st, *other = NULL;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    snprintf(sub, sizeof(sub), "%s/deep", dir);
    assert_int_equal(store_open(&(struct store_config){.data_dir = sub}, &st, &d), 0);
    assert_int_equal(store_open(&(struct store_config){.data_dir = sub}, &other, &d), SH_EBUSY);
    assert_null(other);
    assert_non_null(strstr(d.what, "in use"));
    store_close(st);
    /* Released on close. */
    assert_int_equal(store_open(&(struct store_config){.data_dir = sub}, &st, &d), 0);
    store_close(st);
    rm_dir(sub);

    assert_int_equal(store_open(&(struct store_config){.data_dir = NULL}, &st, &d), SH_EINVAL);
    assert_int_equal(
        store_open(&(struct store_config){.data_dir = dir, .backend = STORE_BACKEND_ETCD}, &st, &d),
        SH_ENOTSUP);
    assert_null(st);
    store_close(NULL);
}

static void sql(sqlite3 *db, const char *text)
{
    char *err = NULL;

    if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK) fail_msg("sql: %s: %s", text, err);
}

static void test_store__migrates_a_v1_database(void **state)
{
    char path[300];
    sqlite3 *db;
    struct store *st;
    struct store_result res;
    int64_t lease;
    (void)state;

    /* A database as schema version 1 wrote it: no leases anywhere. */
    snprintf(path, sizeof(path), "%s/store.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sql(db, "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT INTO meta VALUES ('revision', 2), ('compact_revision', 0);"
            "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL,"
            " create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL);"
            "CREATE TABLE log (id INTEGER PRIMARY KEY, rev INTEGER NOT NULL, key BLOB NOT NULL,"
            " value BLOB, create_rev INTEGER NOT NULL, version INTEGER NOT NULL);"
            "CREATE INDEX log_rev ON log (rev);"
            "CREATE INDEX log_key ON log (key, rev);"
            "INSERT INTO kv VALUES (CAST('old' AS BLOB), CAST('v2' AS BLOB), 1, 2, 2);"
            "INSERT INTO log (rev, key, value, create_rev, version) VALUES"
            " (1, CAST('old' AS BLOB), CAST('v1' AS BLOB), 1, 1),"
            " (2, CAST('old' AS BLOB), CAST('v2' AS BLOB), 1, 2);"
            "PRAGMA user_version = 1;");
    sqlite3_close(db);

    st = open_store(0, 0);
    assert_int_equal(store_revision(st), 2);
    assert_kv(st, "old", "v2", 1, 2, 2);
    assert_int_equal(store_get(st, S("old"), &res), 0);
    assert_int_equal(res.kvs[0].lease, 0);
    store_result_release(&res);
    assert_int_equal(store_history(st, S("old"), 0, &res), 0);
    assert_int_equal(res.count, 2);
    store_result_release(&res);
    /* What version 2 added works. */
    assert_int_equal(store_lease_grant(st, 60000, &lease), 0);
    assert_int_equal(lease, 1);
    assert_int_equal(store_put(st, S("new"), S("x"), lease, NULL), 0);
    store_close(st);

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    /* A database from a newer shoal is refused, untouched. */
    sql(db, "PRAGMA user_version = 99");
    sqlite3_close(db);
    struct sh_diag d = {{0}, {0}};
    assert_int_equal(store_open(&(struct store_config){.data_dir = dir}, &st, &d), SH_ENOTSUP);
    assert_non_null(strstr(d.what, "newer"));
}

static void test_store__not_a_database_is_corrupt(void **state)
{
    char path[300];
    struct store *st;
    struct sh_diag d = {{0}, {0}};
    FILE *f;
    (void)state;

    snprintf(path, sizeof(path), "%s/store.db", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database at all ", f);
    fclose(f);
    assert_int_equal(store_open(&(struct store_config){.data_dir = dir}, &st, &d), SH_ECORRUPT);
    assert_null(st);
    assert_non_null(strstr(d.where, "store.db"));
}

static void torture_on_event(void *data, struct store_watch *w, const struct store_event *ev)
{
    int *err = data;
    (void)w;

    if (ev->type == STORE_EVENT_ERROR) *err = ev->err;
}

/* Open, write, read, watch and close with the Nth allocation failing, for every N. */
static int torture_once(void)
{
    struct store *st = NULL;
    struct store_result res = {0};
    struct store_txn_result tr;
    int rc;

    rc = store_open(&(struct store_config){.data_dir = dir}, &st, NULL);
    if (rc < 0) return rc;
    rc = store_put(st, S("/a/1"), S("one"), 0, NULL);
    if (rc == 0) rc = store_put(st, S("/a/2"), S("two"), 0, NULL);
    if (rc == 0) {
        struct store_op op = {.type = STORE_OP_DELETE, .span = STORE_PREFIX(S("/a/"))};
        rc = store_txn(st, &(struct store_txn){.success = &op, .success_count = 1}, &tr);
    }
    if (rc == 0) rc = store_put(st, S("/a/1"), S("again"), 0, NULL);
    if (rc == 0) {
        rc = store_get(st, S("/a/1"), &res);
        store_result_release(&res);
    }
    if (rc == 0) {
        rc = store_range(st, STORE_PREFIX(S("/")), 0, &res);
        store_result_release(&res);
    }
    if (rc == 0) {
        rc = store_history(st, S("/a/1"), 0, &res);
        store_result_release(&res);
    }
    if (rc == 0) {
        /* Replays from the log, then sees one live put; a failed replay is an ERROR event. */
        struct store_watch *w = NULL;
        int err = 0;
        rc = store_watch(
            st, &(struct store_watch_config){.span = STORE_PREFIX(S("/a/")), .from_revision = 1},
            torture_on_event, &err, &w);
        if (rc == 0) rc = store_put(st, S("/a/3"), S("three"), 0, NULL);
        if (rc == 0 && err) rc = err;
        store_watch_cancel(w);
    }
    store_close(st);
    return rc;
}

static void test_store__oom_torture(void **state)
{
    long n, total;
    (void)state;

    sh_alloc_fail_after(0);
    assert_int_equal(torture_once(), 0);
    sh_alloc_fail_after(1000000); /* counts without failing */
    assert_int_equal(torture_once(), 0);
    total = sh_alloc_count();
    assert_true(total > 5);
    for (n = 1; n <= total; n++) {
        long live = sh_alloc_live();
        sh_alloc_fail_after(n);
        int rc = torture_once();
        sh_alloc_fail_after(0);
        if (rc != SH_ENOMEM)
            fail_msg("allocation %ld of %ld failing gave %s", n, total, sh_errname(rc));
        assert_int_equal(sh_alloc_live(), live);
    }
}

int main(void)
{
    sh_log_setup(SH_WARN, SH_LOG_AUTO, 2); /* no "schema migrated" lines in the output */
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_store__put_get_range_delete),
        STORE_TEST(test_store__prefix_of_0xff_bytes_reaches_the_end),
        STORE_TEST(test_store__revisions_and_versions_follow_etcd),
        STORE_TEST(test_store__cas_conflict_changes_nothing),
        STORE_TEST(test_store__txn_compares_pick_a_branch),
        STORE_TEST(test_store__txn_is_all_or_nothing),
        STORE_TEST(test_store__limits),
        STORE_TEST(test_store__history_keeps_the_last_versions),
        STORE_TEST(test_store__reopen_keeps_everything),
        STORE_TEST(test_store__group_commit_is_durable_at_sync),
        STORE_TEST(test_store__group_commit_failed_write_undoes_only_itself),
        STORE_TEST(test_store__data_dir_is_created_and_locked),
        STORE_TEST(test_store__migrates_a_v1_database),
        STORE_TEST(test_store__not_a_database_is_corrupt),
        STORE_TEST(test_store__oom_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
