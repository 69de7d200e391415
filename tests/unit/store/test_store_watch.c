/* SPDX-License-Identifier: MIT */
/* test_store_watch.c: leases (expiry through store_tick on a fake clock, keepalive, revoke,
 * deadlines across a reopen) and watches (replay from a revision, live events, filters,
 * compaction, cancel and writes inside callbacks). */
#include "store/store_fixture.h"

#include <string.h>

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void *data)
{
    (void)data;
    return fake_now;
}

static struct store *open_at(uint32_t window, uint64_t grace_ms)
{
    struct store *st = NULL;
    struct sh_diag d = {{0}, {0}};
    int rc = store_open(&(struct store_config){.data_dir = dir,
                                               .watch_window = window,
                                               .lease_grace_ms = grace_ms,
                                               .clock = fake_clock},
                        &st, &d);
    if (rc != 0) print_error("store_open: %s: %s\n", d.where, d.what);
    assert_int_equal(rc, 0);
    return st;
}

static bool has_key(struct store *st, const char *key)
{
    struct store_result res;
    int rc = store_get(st, slice_from_cstr(key), &res);

    store_result_release(&res);
    assert_true(rc == 0 || rc == SH_ENOENT);
    return rc == 0;
}

/* ---- leases ---- */

static void test_lease__expires_at_its_deadline_in_one_revision(void **state)
{
    struct store *st = open_at(0, 0);
    uint64_t left;
    int64_t id;
    (void)state;

    fake_now = 1000000;
    assert_int_equal(store_lease_grant(st, 5000, &id), 0);
    assert_true(id > 0);
    assert_int_equal(store_put(st, S("/inst/a"), S("1"), id, NULL), 0);
    assert_int_equal(store_put(st, S("/inst/b"), S("2"), id, NULL), 0);
    assert_int_equal(store_put(st, S("/other"), S("3"), 0, NULL), 0);
    assert_int_equal(store_lease_ttl(st, id, &left), 0);
    assert_int_equal(left, 5000);

    fake_now += 4999;
    assert_int_equal(store_tick(st), 0);
    assert_true(has_key(st, "/inst/a"));
    fake_now += 1;
    assert_int_equal(store_tick(st), 1);
    assert_false(has_key(st, "/inst/a"));
    assert_false(has_key(st, "/inst/b"));
    assert_true(has_key(st, "/other"));
    assert_int_equal(store_revision(st), 4); /* both keys in one revision */
    assert_int_equal(store_lease_keepalive(st, id), SH_ENOENT);
    assert_int_equal(store_tick(st), 0);
    store_close(st);
}

static void test_lease__keepalive_moves_the_deadline(void **state)
{
    struct store *st = open_at(0, 0);
    int64_t id;
    (void)state;

    fake_now = 2000000;
    assert_int_equal(store_lease_grant(st, 1000, &id), 0);
    assert_int_equal(store_put(st, S("k"), S("v"), id, NULL), 0);
    fake_now += 900;
    assert_int_equal(store_lease_keepalive(st, id), 0);
    fake_now += 900;
    assert_int_equal(store_tick(st), 0);
    assert_true(has_key(st, "k"));
    fake_now += 100;
    assert_int_equal(store_tick(st), 1);
    assert_false(has_key(st, "k"));
    /* Keepalive after the deadline but before a tick is refused: the lease is dead. */
    assert_int_equal(store_lease_grant(st, 1000, &id), 0);
    fake_now += 1000;
    assert_int_equal(store_lease_keepalive(st, id), SH_ENOENT);
    store_close(st);
}

static void test_lease__revoke_deletes_keys_and_unknown_leases_fail(void **state)
{
    struct store *st = open_at(0, 0);
    struct store_result res;
    int64_t id, rev;
    (void)state;

    assert_int_equal(store_lease_grant(st, 60000, &id), 0);
    assert_int_equal(store_put(st, S("k"), S("v"), id, &rev), 0);
    assert_int_equal(store_get(st, S("k"), &res), 0);
    assert_int_equal(res.kvs[0].lease, id);
    store_result_release(&res);
    assert_int_equal(store_put(st, S("k2"), S("v"), id + 1, NULL), SH_ENOENT);
    assert_int_equal(store_lease_revoke(st, id), 0);
    assert_int_equal(store_revision(st), rev + 1);
    assert_false(has_key(st, "k"));
    assert_int_equal(store_lease_revoke(st, id), SH_ENOENT);
    assert_int_equal(store_lease_grant(st, 0, &id), SH_EINVAL);
    /* A lease with no keys revokes without a revision. */
    assert_int_equal(store_lease_grant(st, 60000, &id), 0);
    assert_int_equal(store_lease_revoke(st, id), 0);
    assert_int_equal(store_revision(st), rev + 1);
    /* A put without a lease detaches the key. */
    assert_int_equal(store_lease_grant(st, 60000, &id), 0);
    assert_int_equal(store_put(st, S("k"), S("v"), id, NULL), 0);
    assert_int_equal(store_put(st, S("k"), S("v2"), 0, NULL), 0);
    assert_int_equal(store_lease_revoke(st, id), 0);
    assert_true(has_key(st, "k"));
    store_close(st);
}

static void test_lease__deadline_survives_reopen(void **state)
{
    struct store *st = open_at(0, 0);
    uint64_t left;
    int64_t id, id2;
    (void)state;

    fake_now = 3000000;
    assert_int_equal(store_lease_grant(st, 10000, &id), 0);
    assert_int_equal(store_put(st, S("k"), S("v"), id, NULL), 0);
    store_close(st);

    fake_now += 4000; /* the process was down 4 s */
    st = open_at(0, 0);
    assert_int_equal(store_lease_ttl(st, id, &left), 0);
    assert_int_equal(left, 6000);
    assert_int_equal(store_tick(st), 0);
    assert_true(has_key(st, "k"));
    /* New ids never reuse old ones. */
    assert_int_equal(store_lease_grant(st, 10000, &id2), 0);
    assert_true(id2 > id);
    store_close(st);

    fake_now += 60000; /* down longer than the TTL: expires at the first tick */
    st = open_at(0, 0);
    assert_true(has_key(st, "k"));
    assert_int_equal(store_tick(st), 2);
    assert_false(has_key(st, "k"));
    store_close(st);
}

static void test_lease__grace_after_a_long_outage(void **state)
{
    struct store *st = open_at(0, 0);
    uint64_t left;
    int64_t id;
    (void)state;

    fake_now = 4000000;
    assert_int_equal(store_lease_grant(st, 1000, &id), 0);
    assert_int_equal(store_put(st, S("k"), S("v"), id, NULL), 0);
    store_close(st);
    fake_now += 60000;
    st = open_at(0, 5000);
    assert_int_equal(store_lease_ttl(st, id, &left), 0);
    assert_int_equal(left, 5000);
    assert_int_equal(store_tick(st), 0);
    assert_int_equal(store_lease_keepalive(st, id), 0); /* the holder is back in time */
    store_close(st);
}

/* ---- watches ---- */

struct seen {
    int count;
    int64_t revs[64];
    enum store_event_type types[64];
    char keys[64][16];
    bool ends[64];
    int err;
    int cancel_at; /* cancel the watch on this event (1-based); 0 = never */
    int write_at;  /* put "/w/nested" on this event */
    struct store *st;
    struct store_watch *w;
};

static void on_event(void *data, struct store_watch *w, const struct store_event *ev)
{
    struct seen *s = data;

    if (ev->type == STORE_EVENT_ERROR) {
        s->err = ev->err;
        return;
    }
    assert_true(s->count < 64);
    s->revs[s->count] = ev->kv.mod_revision;
    s->types[s->count] = ev->type;
    snprintf(s->keys[s->count], sizeof(s->keys[0]), "%.*s", (int)ev->kv.key.len, ev->kv.key.ptr);
    s->ends[s->count] = ev->is_revision_end;
    s->count++;
    if (s->count == s->write_at)
        assert_int_equal(store_put(s->st, S("/w/nested"), S("n"), 0, NULL), 0);
    if (s->count == s->cancel_at) store_watch_cancel(w);
}

static void test_watch__replays_from_a_revision_then_goes_live(void **state)
{
    struct store *st = open_at(0, 0);
    struct seen s = {.st = st};
    struct store_watch *w;
    (void)state;

    assert_int_equal(store_put(st, S("/w/a"), S("1"), 0, NULL), 0);          /* 1 */
    assert_int_equal(store_put(st, S("/x"), S("1"), 0, NULL), 0);            /* 2: not watched */
    assert_int_equal(store_put(st, S("/w/a"), S("2"), 0, NULL), 0);          /* 3 */
    assert_int_equal(store_delete(st, STORE_KEY(S("/w/a")), NULL, NULL), 0); /* 4 */

    assert_int_equal(store_watch(st,
                                 &(struct store_watch_config){.span = STORE_PREFIX(S("/w/")),
                                                              .from_revision = 2},
                                 on_event, &s, &w),
                     0);
    assert_non_null(w);
    assert_int_equal(s.count, 2); /* replayed before store_watch returned */
    assert_int_equal(s.revs[0], 3);
    assert_int_equal(s.types[0], STORE_EVENT_PUT);
    assert_int_equal(s.revs[1], 4);
    assert_int_equal(s.types[1], STORE_EVENT_DELETE);

    struct store_op ops[] = {
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("/w/b")), .value = S("1")},
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("/y")), .value = S("1")},
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("/w/c")), .value = S("1")},
        {.type = STORE_OP_PUT, .span = STORE_KEY(S("/z")), .value = S("1")},
    };
    struct store_txn_result tr;
    assert_int_equal(store_txn(st, &(struct store_txn){.success = ops, .success_count = 4}, &tr),
                     0);
    assert_int_equal(s.count, 4);
    assert_string_equal(s.keys[2], "/w/b");
    assert_false(s.ends[2]);
    assert_string_equal(s.keys[3], "/w/c");
    assert_true(s.ends[3]); /* the last event of revision 5 that this watch sees */
    assert_int_equal(s.revs[3], 5);

    store_watch_cancel(w);
    assert_int_equal(store_put(st, S("/w/d"), S("1"), 0, NULL), 0);
    assert_int_equal(s.count, 4);
    store_close(st);
}

static void test_watch__from_zero_sees_only_new_changes_on_one_key(void **state)
{
    struct store *st = open_at(0, 0);
    struct seen s = {.st = st};
    struct store_watch *w;
    int64_t lease;
    (void)state;

    assert_int_equal(store_put(st, S("k"), S("1"), 0, NULL), 0);
    assert_int_equal(
        store_watch(st, &(struct store_watch_config){.span = STORE_KEY(S("k"))}, on_event, &s, &w),
        0);
    assert_int_equal(s.count, 0);
    assert_int_equal(store_put(st, S("k2"), S("1"), 0, NULL), 0); /* a longer key: not k */
    assert_int_equal(store_lease_grant(st, 100, &lease), 0);
    assert_int_equal(store_put(st, S("k"), S("2"), lease, NULL), 0);
    fake_now += 100;
    assert_int_equal(store_tick(st), 1);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.types[0], STORE_EVENT_PUT);
    assert_int_equal(s.types[1], STORE_EVENT_DELETE); /* the lease expired */
    assert_int_equal(s.revs[1], 4);
    store_watch_cancel(w);
    store_close(st);
}

static void test_watch__compacted_revision_is_refused(void **state)
{
    struct store *st = open_at(3, 0);
    struct seen s = {.st = st};
    struct store_watch *w = (void *)1;
    (void)state;

    for (int i = 0; i < 10; i++)
        assert_int_equal(store_put(st, S("k"), S("v"), 0, NULL), 0);
    assert_int_equal(store_compact_revision(st), 7);
    assert_int_equal(
        store_watch(st,
                    &(struct store_watch_config){.span = STORE_PREFIX(S("")), .from_revision = 7},
                    on_event, &s, &w),
        SH_ECOMPACTED);
    assert_null(w);
    assert_int_equal(s.count, 0);
    assert_non_null(strstr(store_errmsg(st), "compacted"));
    assert_int_equal(
        store_watch(st,
                    &(struct store_watch_config){.span = STORE_PREFIX(S("")), .from_revision = 8},
                    on_event, &s, &w),
        0);
    assert_int_equal(s.count, 3);
    store_watch_cancel(w);
    store_close(st);
}

static void test_watch__cancel_inside_callback_is_safe(void **state)
{
    struct store *st = open_at(0, 0);
    struct seen a = {.st = st, .cancel_at = 1}, b = {.st = st};
    struct store_watch *wa, *wb;
    (void)state;

    for (int i = 0; i < 3; i++)
        assert_int_equal(store_put(st, S("k"), S("v"), 0, NULL), 0);
    /* Canceled during its replay: no handle comes back, nothing more is delivered. */
    assert_int_equal(
        store_watch(st, &(struct store_watch_config){.span = STORE_KEY(S("k")), .from_revision = 1},
                    on_event, &a, &wa),
        0);
    assert_null(wa);
    assert_int_equal(a.count, 1);

    /* Canceled live, with another watch still running. */
    a = (struct seen){.st = st, .cancel_at = 1};
    assert_int_equal(
        store_watch(st, &(struct store_watch_config){.span = STORE_KEY(S("k"))}, on_event, &a, &wa),
        0);
    assert_int_equal(
        store_watch(st, &(struct store_watch_config){.span = STORE_KEY(S("k"))}, on_event, &b, &wb),
        0);
    assert_int_equal(store_put(st, S("k"), S("v"), 0, NULL), 0);
    assert_int_equal(store_put(st, S("k"), S("v"), 0, NULL), 0);
    assert_int_equal(a.count, 1);
    assert_int_equal(b.count, 2);
    /* wb is left for store_close to free. */
    store_close(st);
}

static void test_watch__writes_inside_callbacks_keep_order(void **state)
{
    struct store *st = open_at(0, 0);
    struct seen a = {.st = st, .write_at = 1}, b = {.st = st};
    struct store_watch *wa, *wb;
    (void)state;

    assert_int_equal(store_watch(st, &(struct store_watch_config){.span = STORE_PREFIX(S("/w/"))},
                                 on_event, &a, &wa),
                     0);
    assert_int_equal(store_watch(st, &(struct store_watch_config){.span = STORE_PREFIX(S("/w/"))},
                                 on_event, &b, &wb),
                     0);
    assert_int_equal(store_put(st, S("/w/first"), S("1"), 0, NULL), 0);
    /* a wrote /w/nested while revision 1 was being delivered: b still sees 1 before 2. */
    assert_int_equal(a.count, 2);
    assert_int_equal(b.count, 2);
    assert_int_equal(b.revs[0], 1);
    assert_int_equal(b.revs[1], 2);
    assert_string_equal(b.keys[1], "/w/nested");
    assert_int_equal(a.revs[1], 2);

    /* A replaying watch whose callback writes sees its own write exactly once. */
    struct seen c = {.st = st, .write_at = 1};
    struct store_watch *wc;
    assert_int_equal(store_watch(st,
                                 &(struct store_watch_config){.span = STORE_PREFIX(S("/w/")),
                                                              .from_revision = 1},
                                 on_event, &c, &wc),
                     0);
    assert_int_equal(c.count, 3);
    assert_int_equal(c.revs[0], 1);
    assert_int_equal(c.revs[1], 2);
    assert_int_equal(c.revs[2], 3);
    assert_int_equal(b.count, 3); /* the others got it live */
    store_watch_cancel(wa);
    store_watch_cancel(wb);
    store_watch_cancel(wc);
    store_close(st);
}

static void test_watch__long_replay_spans_pages(void **state)
{
    struct store *st = open_at(0, 0);
    struct seen s = {.st = st};
    struct store_watch *w;
    char key[16];
    (void)state;

    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "k%d", i % 7);
        assert_int_equal(store_put(st, slice_from_cstr(key), S("v"), 0, NULL), 0);
    }
    assert_int_equal(
        store_watch(st,
                    &(struct store_watch_config){.span = STORE_KEY(S("k3")), .from_revision = 1},
                    on_event, &s, &w),
        0);
    assert_int_equal(s.count, 29); /* i = 3, 10, ..., 199 */
    for (int i = 0; i < s.count; i++) {
        assert_int_equal(s.revs[i], 4 + 7 * i);
        assert_true(s.ends[i]);
    }
    store_watch_cancel(w);
    store_close(st);
}

int main(void)
{
    sh_log_setup(SH_WARN, SH_LOG_AUTO, 2);
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_lease__expires_at_its_deadline_in_one_revision),
        STORE_TEST(test_lease__keepalive_moves_the_deadline),
        STORE_TEST(test_lease__revoke_deletes_keys_and_unknown_leases_fail),
        STORE_TEST(test_lease__deadline_survives_reopen),
        STORE_TEST(test_lease__grace_after_a_long_outage),
        STORE_TEST(test_watch__replays_from_a_revision_then_goes_live),
        STORE_TEST(test_watch__from_zero_sees_only_new_changes_on_one_key),
        STORE_TEST(test_watch__compacted_revision_is_refused),
        STORE_TEST(test_watch__cancel_inside_callback_is_safe),
        STORE_TEST(test_watch__writes_inside_callbacks_keep_order),
        STORE_TEST(test_watch__long_replay_spans_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
