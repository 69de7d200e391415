/* SPDX-License-Identifier: MIT */
/* test_wait.c: blocking waits (at once, on change, at the deadline, canceled, on shutdown) and
 * subscriptions (events in order, replay from an index, cancels inside callbacks). */
#include "config_fixture.h"

struct waited {
    int calls;
    int status;
    uint64_t at_ms;
};

static void on_wait(void *data, int status)
{
    struct waited *w = data;

    w->calls++;
    w->status = status;
    w->at_ms = sh_now_ms();
}

static uint64_t index_of_key(const char *key)
{
    struct cfgkv_result res = {0};
    int rc = cfgkv_get(kv, slice_from_cstr(key), &res);
    uint64_t idx = res.index;

    assert_true(rc == 0 || rc == SH_ENOENT);
    cfgkv_result_release(&res);
    return idx;
}

static void test_wait__answers_at_once_when_moved(void **state)
{
    struct cfgkv_wait *w = (struct cfgkv_wait *)&w; /* must be reset to NULL */
    struct waited got = {0};
    uint64_t i1;
    (void)state;

    i1 = put("k", "1");
    /* index 0: never blocks. */
    assert_int_equal(cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("k")}, on_wait, &got, &w),
                     CFGKV_CHANGED);
    assert_null(w);
    /* An index the key has moved past. */
    put("k", "2");
    assert_int_equal(
        cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("k"), .index = i1}, on_wait, &got, &w),
        CFGKV_CHANGED);
    assert_null(w);
    /* A prefix that moved, by a delete. */
    assert_int_equal(cfgkv_delete(kv, S("k"), NULL, NULL), 0);
    assert_int_equal(
        cfgkv_wait(kv,
                   &(struct cfgkv_wait_config){.key = S("k"), .is_prefix = true, .index = i1 + 1},
                   on_wait, &got, &w),
        CFGKV_CHANGED);
    assert_int_equal(got.calls, 0);
    /* Bad keys are refused before anything else. */
    assert_int_equal(cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("a//b"), .index = 1},
                                on_wait, &got, &w),
                     SH_EINVAL);
    assert_null(w);
}

static void set_from_timer(uv_timer_t *t)
{
    (void)t;
    put("routes/api", "v2");
}

static void test_wait__wakes_on_change(void **state)
{
    struct cfgkv_wait *w = NULL, *wp = NULL, *other = NULL;
    struct waited got = {0}, gotp = {0}, goto_ = {0};
    uv_timer_t t;
    uint64_t idx, start;
    (void)state;

    put("routes/api", "v1");
    idx = index_of_key("routes/api");
    assert_int_equal(cfgkv_wait(kv,
                                &(struct cfgkv_wait_config){
                                    .key = S("routes/api"), .index = idx, .timeout_ms = 5000},
                                on_wait, &got, &w),
                     0);
    assert_non_null(w);
    assert_int_equal(
        cfgkv_wait(kv,
                   &(struct cfgkv_wait_config){
                       .key = S("routes/"), .is_prefix = true, .index = idx, .timeout_ms = 5000},
                   on_wait, &gotp, &wp),
        0);
    assert_int_equal(cfgkv_wait(kv,
                                &(struct cfgkv_wait_config){.key = S("elsewhere"),
                                                            .index = index_of_key("elsewhere"),
                                                            .timeout_ms = 5000},
                                on_wait, &goto_, &other),
                     0);
    /* Writes elsewhere wake nobody; a longer key under the same bytes neither. */
    put("routes/apiary", "no");
    assert_int_equal(got.calls, 0);
    assert_int_equal(gotp.calls, 1); /* ...but it is under the prefix */
    assert_int_equal(gotp.status, CFGKV_CHANGED);

    /* The change comes from the loop, 30 ms later. */
    uv_timer_init(&loop, &t);
    uv_update_time(&loop); /* the loop's clock stood still during the writes above */
    uv_timer_start(&t, set_from_timer, 30, 0);
    start = sh_now_ms();
    uv_run(&loop, UV_RUN_ONCE); /* the timer fires: the write wakes the wait inside it */
    while (got.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.status, CFGKV_CHANGED);
    assert_true(got.at_ms - start >= 30 && got.at_ms - start < 2000);
    assert_int_equal(goto_.calls, 0);

    /* The woken wait is gone: more writes call nothing. */
    put("routes/api", "v3");
    assert_int_equal(got.calls, 1);
    cfgkv_wait_cancel(other);
    assert_int_equal(goto_.calls, 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void test_wait__deadline(void **state)
{
    struct cfgkv_wait *w1 = NULL, *w2 = NULL;
    struct waited g1 = {0}, g2 = {0};
    uint64_t start;
    (void)state;

    uint64_t idx = index_of_key("never");
    start = sh_now_ms();
    assert_int_equal(
        cfgkv_wait(kv,
                   &(struct cfgkv_wait_config){.key = S("never"), .index = idx, .timeout_ms = 120},
                   on_wait, &g1, &w1),
        0);
    assert_int_equal(
        cfgkv_wait(kv,
                   &(struct cfgkv_wait_config){
                       .key = S("never/"), .is_prefix = true, .index = idx, .timeout_ms = 40},
                   on_wait, &g2, &w2),
        0);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns when both are done: the timer stops */
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g1.status, CFGKV_TIMEOUT);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.status, CFGKV_TIMEOUT);
    assert_true(g2.at_ms - start >= 40 && g2.at_ms < g1.at_ms);
    assert_true(g1.at_ms - start >= 120); /* not before; CFGKV_TIMEOUT says it was the deadline */
}

static void test_wait__cancel(void **state)
{
    struct cfgkv_wait *w = NULL;
    struct waited got = {0};
    (void)state;

    uint64_t idx = put("k", "1");
    assert_int_equal(
        cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("k"), .index = idx, .timeout_ms = 20},
                   on_wait, &got, &w),
        0);
    cfgkv_wait_cancel(w);
    cfgkv_wait_cancel(NULL);
    put("k", "2");
    uv_run(&loop, UV_RUN_DEFAULT); /* nothing keeps the loop alive: the timer stopped */
    assert_int_equal(got.calls, 0);
}

/* A wait callback that cancels another pending wait, and one that starts a new wait. */
struct chain {
    struct cfgkv_wait *victim;
    struct cfgkv_wait *started;
    struct waited later;
    int calls;
};

static void on_wait_chain(void *data, int status)
{
    struct chain *c = data;
    (void)status;

    c->calls++;
    cfgkv_wait_cancel(c->victim);
    c->victim = NULL;
    assert_int_equal(cfgkv_wait(kv,
                                &(struct cfgkv_wait_config){
                                    .key = S("k"), .index = index_of_key("k"), .timeout_ms = 10},
                                on_wait, &c->later, &c->started),
                     0);
}

static void test_wait__callbacks_may_cancel_and_wait(void **state)
{
    struct cfgkv_wait *w = NULL;
    struct chain c = {0};
    struct waited victim = {0};
    (void)state;

    uint64_t idx = put("k", "1");
    assert_int_equal(
        cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("k"), .index = idx, .timeout_ms = 10},
                   on_wait_chain, &c, &w),
        0);
    assert_int_equal(
        cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("k"), .index = idx, .timeout_ms = 60},
                   on_wait, &victim, &c.victim),
        0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.calls, 1);
    assert_int_equal(victim.calls, 0); /* canceled by the first callback */
    assert_int_equal(c.later.calls, 1);
    assert_int_equal(c.later.status, CFGKV_TIMEOUT);
}

static void test_wait__free_ends_pending_waits(void **state)
{
    struct cfgkv_wait *w = NULL;
    struct waited got = {0};
    (void)state;

    uint64_t idx = put("k", "1");
    assert_int_equal(
        cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("k"), .index = idx}, on_wait, &got, &w),
        0);
    fx_close();
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.status, SH_ESHUTDOWN);
    assert_int_equal(fx_open(&(struct cfgkv_config){0}), 0);
}

/* ------------------------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------------------------ */
struct seen {
    int count;
    enum cfgkv_event_type type[16];
    char key[16][32];
    char value[16][32];
    uint64_t index[16];
    bool is_end[16];
    int err;
    int cancel_after; /* cancel the subscription inside the callback at this count */
    struct cfgkv_sub *sub;
};

static void on_event(void *data, struct cfgkv_sub *sub, const struct cfgkv_event *ev)
{
    struct seen *s = data;
    int i = s->count++;

    assert_true(i < 16);
    s->type[i] = ev->type;
    snprintf(s->key[i], sizeof(s->key[i]), "%.*s", (int)ev->entry.key.len, ev->entry.key.ptr);
    snprintf(s->value[i], sizeof(s->value[i]), "%.*s", (int)ev->entry.value.len,
             ev->entry.value.ptr);
    s->index[i] = ev->entry.modify_index;
    s->is_end[i] = ev->is_index_end;
    if (ev->type == CFGKV_EVENT_ERROR) s->err = ev->err;
    if (s->cancel_after && s->count == s->cancel_after) {
        cfgkv_sub_cancel(sub);
        s->sub = NULL;
    }
}

static void test_sub__events_in_order(void **state)
{
    struct seen s = {0};
    uint64_t i1, i2, i3;
    struct cfgkv_write_result wr;
    (void)state;

    put("before", "x");
    assert_int_equal(
        cfgkv_subscribe(kv, &(struct cfgkv_sub_config){.key = S("app/"), .is_prefix = true},
                        on_event, &s, &s.sub),
        0);
    assert_non_null(s.sub);
    i1 = put("app/a", "1");
    put("outside", "y");
    i2 = put("app/b", "2");
    i3 = put("app/a", "3");
    assert_int_equal(
        cfgkv_delete(kv, S("app/"), &(struct cfgkv_write_opts){.is_recurse = true}, &wr), 0);
    assert_int_equal(s.count, 5);
    assert_int_equal(s.type[0], CFGKV_EVENT_SET);
    assert_string_equal(s.key[0], "app/a");
    assert_string_equal(s.value[0], "1");
    assert_int_equal(s.index[0], i1);
    assert_string_equal(s.key[1], "app/b");
    assert_int_equal(s.index[1], i2);
    assert_string_equal(s.value[2], "3");
    assert_int_equal(s.index[2], i3);
    /* One recursive delete: two events of one index, the last marked. */
    assert_int_equal(s.type[3], CFGKV_EVENT_DELETE);
    assert_int_equal(s.type[4], CFGKV_EVENT_DELETE);
    assert_string_equal(s.key[3], "app/a");
    assert_string_equal(s.key[4], "app/b");
    assert_int_equal(s.index[3], wr.index);
    assert_int_equal(s.index[4], wr.index);
    assert_false(s.is_end[3]);
    assert_true(s.is_end[4]);
    cfgkv_sub_cancel(s.sub);
    put("app/c", "after");
    assert_int_equal(s.count, 5);
}

static void test_sub__replay_from_an_index(void **state)
{
    struct seen s = {0}, t = {0};
    uint64_t i1, i2;
    (void)state;

    i1 = put("cfg/x", "1");
    i2 = put("cfg/x", "2");
    put("cfg/x", "3");
    /* Resume after i1: the kept changes from i2 on, then live ones. */
    assert_int_equal(
        cfgkv_subscribe(kv, &(struct cfgkv_sub_config){.key = S("cfg/x"), .from_index = i2},
                        on_event, &s, &s.sub),
        0);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.value[0], "2");
    assert_string_equal(s.value[1], "3");
    put("cfg/x", "4");
    assert_int_equal(s.count, 3);
    assert_string_equal(s.value[2], "4");

    /* A callback that cancels during the replay: 0 and no handle. */
    t.cancel_after = 1;
    struct cfgkv_sub *h = (struct cfgkv_sub *)&h;
    assert_int_equal(
        cfgkv_subscribe(kv, &(struct cfgkv_sub_config){.key = S("cfg/x"), .from_index = i1},
                        on_event, &t, &h),
        0);
    assert_null(h);
    assert_int_equal(t.count, 1);
    put("cfg/x", "5");
    assert_int_equal(t.count, 1);
    assert_int_equal(s.count, 4);

    /* Cancel inside a live callback. */
    s.cancel_after = 5;
    put("cfg/x", "6");
    put("cfg/x", "7");
    assert_int_equal(s.count, 5);
    assert_null(s.sub);
}

static void test_sub__free_sends_shutdown(void **state)
{
    struct seen s = {0};
    (void)state;

    assert_int_equal(
        cfgkv_subscribe(kv, &(struct cfgkv_sub_config){.key = S("")}, on_event, &s, &s.sub),
        SH_EINVAL); /* an empty key is no key; a prefix may be empty */
    assert_int_equal(cfgkv_subscribe(kv,
                                     &(struct cfgkv_sub_config){.key = S(""), .is_prefix = true},
                                     on_event, &s, &s.sub),
                     0);
    s.cancel_after = 1; /* canceling from the shutdown event is harmless */
    fx_close();
    assert_int_equal(s.count, 1);
    assert_int_equal(s.type[0], CFGKV_EVENT_ERROR);
    assert_int_equal(s.err, SH_ESHUTDOWN);
    assert_int_equal(fx_open(&(struct cfgkv_config){0}), 0);
}

/* Open, subscribe, wait, write (waking both), read, with the Nth allocation failing. */
static int torture_once(void)
{
    struct seen s = {0};
    struct waited got = {0};
    struct cfgkv_wait *w = NULL;
    struct cfgkv_result res = {0};
    int rc;

    rc = fx_open(&(struct cfgkv_config){0});
    if (rc == 0) rc = cfgkv_set(kv, S("t/a"), S("one"), NULL, NULL);
    if (rc == 0)
        rc = cfgkv_subscribe(kv, &(struct cfgkv_sub_config){.key = S("t/"), .is_prefix = true},
                             on_event, &s, &s.sub);
    if (rc == 0) {
        rc = cfgkv_get(kv, S("t/a"), &res);
        if (rc == 0)
            rc = cfgkv_wait(kv, &(struct cfgkv_wait_config){.key = S("t/a"), .index = res.index},
                            on_wait, &got, &w);
        cfgkv_result_release(&res);
    }
    if (rc == 0) rc = cfgkv_set(kv, S("t/a"), S("two"), NULL, NULL);
    if (rc == 0 && got.calls == 1 && got.status < 0) rc = got.status;
    if (rc == 0 && s.err) rc = s.err;
    if (rc == 0 && (got.calls != 1 || s.count != 1)) rc = SH_EIO;
    if (got.calls == 0) cfgkv_wait_cancel(w);
    cfgkv_sub_cancel(s.sub);
    fx_close();
    return rc;
}

static void test_wait__oom_torture(void **state)
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

int main(void)
{
    sh_log_setup(SH_WARN, SH_LOG_AUTO, 2);
    const struct CMUnitTest tests[] = {
        CFG_TEST(test_wait__answers_at_once_when_moved),
        CFG_TEST(test_wait__wakes_on_change),
        CFG_TEST(test_wait__deadline),
        CFG_TEST(test_wait__cancel),
        CFG_TEST(test_wait__callbacks_may_cancel_and_wait),
        CFG_TEST(test_wait__free_ends_pending_waits),
        CFG_TEST(test_sub__events_in_order),
        CFG_TEST(test_sub__replay_from_an_index),
        CFG_TEST(test_sub__free_sends_shutdown),
        CFG_TEST(test_wait__oom_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
