/* SPDX-License-Identifier: MIT */
/* test_span.c: the span queue (span.c): copies, order, a full ring's drops, limits, and one
 * producer thread against one consumer thread (every span's content is checked on the
 * consumer side; run under ASan too). */
#include "test_util.h"

#include "telemetry/telemetry.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct got {
    size_t n;
    char name[64], tag[64], ann[64], local[32];
    size_t tags, anns;
    uint64_t ts;
};

static void collect(void *data, const struct trace_span *s)
{
    struct got *g = data;

    g->n++;
    snprintf(g->name, sizeof(g->name), "%.*s", (int)s->name.len, s->name.ptr);
    snprintf(g->local, sizeof(g->local), "%.*s", (int)s->local.service.len, s->local.service.ptr);
    g->tags = s->tag_count;
    g->anns = s->annotation_count;
    if (s->tag_count)
        snprintf(g->tag, sizeof(g->tag), "%.*s=%.*s", (int)s->tags[0].key.len, s->tags[0].key.ptr,
                 (int)s->tags[0].value.len, s->tags[0].value.ptr);
    if (s->annotation_count)
        snprintf(g->ann, sizeof(g->ann), "%.*s", (int)s->annotations[0].value.len,
                 s->annotations[0].value.ptr);
    g->ts = s->timestamp_us;
}

static void test_span__push_copies_everything(void **state)
{
    struct trace_queue *q;
    struct trace_span s = {.kind = TRACE_KIND_SERVER, .timestamp_us = 42, .duration_us = 7};
    char name[] = "get /hello", svc[] = "gateway", key[] = "http.path", val[] = "/hello",
         ann[] = "retry";
    struct got g = {0};
    (void)state;

    assert_int_equal(trace_queue_new(&(struct trace_queue_config){.shards = 2}, &q), 0);
    s.name = slice_from_cstr(name);
    s.local.service = slice_from_cstr(svc);
    s.tags[0] = (struct trace_tag){slice_from_cstr(key), slice_from_cstr(val)};
    s.tag_count = 1;
    s.annotations[0] = (struct trace_annotation){.timestamp_us = 43, .value = slice_from_cstr(ann)};
    s.annotation_count = 1;
    s.trace_id[0] = 0xab;
    assert_int_equal(trace_queue_push(q, 1, &s), 0);
    /* the builder's memory may go at once */
    memset(name, 'x', sizeof(name) - 1);
    memset(svc, 'x', sizeof(svc) - 1);
    memset(key, 'x', sizeof(key) - 1);
    memset(val, 'x', sizeof(val) - 1);
    memset(ann, 'x', sizeof(ann) - 1);
    assert_int_equal(trace_queue_drain(q, 0, collect, &g), 1);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.name, "get /hello");
    assert_string_equal(g.local, "gateway");
    assert_string_equal(g.tag, "http.path=/hello");
    assert_string_equal(g.ann, "retry");
    assert_int_equal(g.ts, 42);
    assert_int_equal(trace_queue_drain(q, 0, collect, &g), 0);
    assert_int_equal(trace_queue_dropped(q), 0);
    trace_queue_free(q);
}

static void test_span__full_ring_drops_and_counts(void **state)
{
    struct trace_queue *q;
    struct trace_span s = {.name = SLICE("x")};
    struct got g = {0};
    (void)state;

    /* 3 is rounded up to 4 */
    assert_int_equal(trace_queue_new(&(struct trace_queue_config){.shards = 2, .capacity = 3}, &q),
                     0);
    for (uint64_t i = 0; i < 4; i++) {
        s.timestamp_us = i;
        assert_int_equal(trace_queue_push(q, 0, &s), 0);
    }
    assert_int_equal(trace_queue_push(q, 0, &s), SH_ELIMIT);
    assert_int_equal(trace_queue_push(q, 0, &s), SH_ELIMIT);
    assert_int_equal(trace_queue_dropped(q), 2);
    /* the other shard has its own ring */
    assert_int_equal(trace_queue_push(q, 1, &s), 0);
    /* drain two (oldest first), then there is room for two more */
    assert_int_equal(trace_queue_drain(q, 2, collect, &g), 2);
    assert_int_equal(g.ts, 1);
    assert_int_equal(trace_queue_push(q, 0, &s), 0);
    assert_int_equal(trace_queue_push(q, 0, &s), 0);
    assert_int_equal(trace_queue_push(q, 0, &s), SH_ELIMIT);
    assert_int_equal(trace_queue_dropped(q), 3);
    /* free with spans still queued: nothing leaks (the teardown counts) */
    trace_queue_free(q);
    trace_queue_free(NULL);
}

static void test_span__limits(void **state)
{
    struct trace_queue *q;
    struct trace_span s = {0};
    static char big[TRACE_SPAN_MAX_BYTES];
    (void)state;

    assert_int_equal(trace_queue_new(&(struct trace_queue_config){.shards = 0}, &q), SH_EINVAL);
    assert_null(q);
    assert_int_equal(
        trace_queue_new(&(struct trace_queue_config){.shards = METRICS_MAX_SHARDS + 1}, &q),
        SH_EINVAL);
    assert_int_equal(trace_queue_new(&(struct trace_queue_config){.shards = 1}, &q), 0);
    memset(big, 'a', sizeof(big));
    s.name = (struct slice){big, sizeof(big)}; /* exactly the limit: accepted */
    assert_int_equal(trace_queue_push(q, 0, &s), 0);
    s.local.service = SLICE("x"); /* one byte more: refused, not counted as a drop */
    assert_int_equal(trace_queue_push(q, 0, &s), SH_ETOOBIG);
    s.name = SLICE("");
    s.tag_count = TRACE_SPAN_MAX_TAGS + 1;
    assert_int_equal(trace_queue_push(q, 0, &s), SH_EINVAL);
    s.tag_count = 0;
    assert_int_equal(trace_queue_push(q, 1, &s), SH_EINVAL); /* no such shard */
    assert_int_equal(trace_queue_dropped(q), 0);
    trace_queue_free(q);
}

static void test_span__oom(void **state)
{
    struct trace_queue *q;
    struct trace_span s = {.name = SLICE("n")};
    (void)state;

    for (long n = 1; n < 10; n++) {
        sh_alloc_fail_after(n);
        int rc = trace_queue_new(&(struct trace_queue_config){.shards = 3, .capacity = 8}, &q);
        sh_alloc_fail_after(0);
        if (rc == 0) {
            sh_alloc_fail_after(1);
            assert_int_equal(trace_queue_push(q, 0, &s), SH_ENOMEM);
            sh_alloc_fail_after(0);
            trace_queue_free(q);
            break;
        }
        assert_int_equal(rc, SH_ENOMEM);
        assert_null(q);
    }
}

/* One producer, one consumer, a small ring: every span arrives once, in order, intact, or is
 * counted as dropped. */
enum { PC_SPANS = 200000 };

struct pc {
    struct trace_queue *q;
    uint64_t pushed;
    _Atomic bool done;
};

static void *producer(void *arg)
{
    struct pc *pc = arg;
    char v[32];

    for (uint64_t i = 1; i <= PC_SPANS; i++) {
        struct trace_span s = {.timestamp_us = i, .name = SLICE("span")};
        int len = snprintf(v, sizeof(v), "v%llu", (unsigned long long)i);
        s.tags[0] = (struct trace_tag){SLICE("seq"), {v, (size_t)len}};
        s.tag_count = 1;
        if (trace_queue_push(pc->q, 1, &s) == 0) pc->pushed++;
    }
    atomic_store(&pc->done, true);
    return NULL;
}

struct check {
    uint64_t n, last;
    bool bad;
};

static void verify(void *data, const struct trace_span *s)
{
    struct check *c = data;
    char want[32];
    int len = snprintf(want, sizeof(want), "v%llu", (unsigned long long)s->timestamp_us);

    c->n++;
    if (s->timestamp_us <= c->last || s->tag_count != 1 || s->tags[0].value.len != (size_t)len ||
        memcmp(s->tags[0].value.ptr, want, (size_t)len) != 0 || !slice_eq(s->name, SLICE("span")))
        c->bad = true;
    c->last = s->timestamp_us;
}

static void test_span__two_threads(void **state)
{
    struct pc pc = {0};
    struct check c = {0};
    pthread_t t;
    (void)state;

    assert_int_equal(
        trace_queue_new(&(struct trace_queue_config){.shards = 2, .capacity = 64}, &pc.q), 0);
    assert_int_equal(pthread_create(&t, NULL, producer, &pc), 0);
    while (!atomic_load(&pc.done))
        trace_queue_drain(pc.q, 16, verify, &c);
    pthread_join(t, NULL);
    trace_queue_drain(pc.q, 0, verify, &c);
    assert_false(c.bad);
    assert_int_equal(c.n, pc.pushed);
    assert_int_equal(pc.pushed + trace_queue_dropped(pc.q), PC_SPANS);
    assert_true(c.n > 0);
    trace_queue_free(pc.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_span__push_copies_everything),
        SH_TEST(test_span__full_ring_drops_and_counts),
        SH_TEST(test_span__limits),
        SH_TEST(test_span__oom),
        SH_TEST(test_span__two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
