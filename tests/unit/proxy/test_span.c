/* SPDX-License-Identifier: MIT */
/* test_span.c: spans per hop (proxy/span.c) as plain functions: the sampling decisions and
 * the span built from the record of one request. No sockets. */
#include "test_util.h"

#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "telemetry/telemetry.h"

#include <stdio.h>
#include <string.h>

static const uint8_t trace_id[TRACE_ID_BYTES] = {1, 2,  3,  4,  5,  6,  7,  8,
                                                 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t span_id[TRACE_SPAN_ID_BYTES] = {0xa, 0xb, 0xc, 0xd, 0xe, 0xf, 1, 2};
static const uint8_t parent_id[TRACE_SPAN_ID_BYTES] = {9, 9, 9, 9, 9, 9, 9, 9};

/* The value of tag <key>, or NULL (in a static buffer). */
static const char *tag(const struct trace_span *s, const char *key)
{
    static char out[256];

    for (size_t i = 0; i < s->tag_count; i++) {
        if (slice_eq(s->tags[i].key, slice_from_cstr(key))) {
            snprintf(out, sizeof(out), "%.*s", (int)s->tags[i].value.len, s->tags[i].value.ptr);
            return out;
        }
    }
    return NULL;
}

static struct proxy_span_input mesh_hop(void)
{
    return (struct proxy_span_input){
        .trace_id = trace_id,
        .span_id = span_id,
        .parent_id = parent_id,
        .start_us = 1700000000000000ull,
        .duration_us = 2500,
        .local_service = SLICE("greeter"),
        .remote_service = SLICE("names"),
        .method = SLICE("GET"),
        .target = SLICE("/names/random?token=secret"),
        .route = SLICE("names"),
        .cluster = SLICE("names"),
        .endpoint = SLICE("127.0.0.1:41234"),
        .caller_instance = SLICE("greeter-1"),
        .status = 200,
        .attempts = 1,
        .has_upstream = true,
        .queue_us = 30,
        .upstream_us = 2000,
    };
}

static void test_span__mesh_hop_is_a_client_span_of_the_caller(void **state)
{
    struct proxy_span_input in = mesh_hop();
    struct trace_span s;
    char scratch[PROXY_SPAN_SCRATCH];
    (void)state;

    assert_int_equal(proxy__span_build(&in, scratch, sizeof(scratch), &s), 0);
    assert_int_equal(s.kind, TRACE_KIND_CLIENT);
    assert_memory_equal(s.trace_id, trace_id, TRACE_ID_BYTES);
    /* our id is the one sent downstream (the callee's spans nest under it), the caller's is
     * the parent */
    assert_memory_equal(s.span_id, span_id, TRACE_SPAN_ID_BYTES);
    assert_memory_equal(s.parent_id, parent_id, TRACE_SPAN_ID_BYTES);
    assert_true(slice_eq(s.name, SLICE("get names")));
    assert_true(slice_eq(s.local.service, SLICE("greeter")));
    assert_true(slice_eq(s.remote.service, SLICE("names")));
    assert_true(slice_eq(s.remote.ip, SLICE("127.0.0.1")));
    assert_int_equal(s.remote.port, 41234);
    assert_int_equal(s.timestamp_us, 1700000000000000ull);
    assert_int_equal(s.duration_us, 2500);
    assert_false(s.is_error);
    assert_string_equal(tag(&s, "http.method"), "GET");
    assert_string_equal(tag(&s, "http.path"), "/names/random"); /* the query stays out */
    assert_string_equal(tag(&s, "http.status_code"), "200");
    assert_string_equal(tag(&s, "shoal.route"), "names");
    assert_string_equal(tag(&s, "shoal.cluster"), "names");
    assert_string_equal(tag(&s, "shoal.endpoint"), "127.0.0.1:41234");
    assert_string_equal(tag(&s, "shoal.caller.instance"), "greeter-1");
    assert_string_equal(tag(&s, "shoal.attempts"), "1");
    assert_string_equal(tag(&s, "shoal.retries"), "0");
    assert_string_equal(tag(&s, "shoal.queue_us"), "30");
    assert_string_equal(tag(&s, "shoal.upstream_us"), "2000");
    assert_null(tag(&s, "error"));
    assert_int_equal(s.annotation_count, 0);
}

static void test_span__retries_and_decisions_are_annotations(void **state)
{
    struct proxy_span_input in = mesh_hop();
    const struct proxy_span_event ev[] = {
        {.at_us = 10, .kind = PROXY_EV_EJECTED, .detail = "127.0.0.1:9001"},
        {.at_us = 11, .kind = PROXY_EV_RETRY, .detail = "connection refused"},
        {.at_us = 12, .kind = PROXY_EV_BUDGET},
        {.at_us = 13, .kind = PROXY_EV_BREAKER_OPEN},
        {.at_us = 14, .kind = PROXY_EV_STALE},
    };
    struct trace_span s;
    char scratch[PROXY_SPAN_SCRATCH];
    char text[128];
    (void)state;

    in.events = ev;
    in.nevents = SH_ARRAY_LEN(ev);
    in.attempts = 3;
    in.status = 503;
    in.has_upstream = false;
    in.parent_id = NULL; /* a trace this hop started: a root span */
    assert_int_equal(proxy__span_build(&in, scratch, sizeof(scratch), &s), 0);
    assert_true(s.is_error);
    assert_string_equal(tag(&s, "error"), "503");
    assert_string_equal(tag(&s, "shoal.retries"), "2");
    assert_null(tag(&s, "shoal.upstream_us"));
    static const uint8_t zero[TRACE_SPAN_ID_BYTES] = {0};
    assert_memory_equal(s.parent_id, zero, TRACE_SPAN_ID_BYTES);
    assert_int_equal(s.annotation_count, 5);
    static const char *const want[] = {"outlier ejected: 127.0.0.1:9001",
                                       "retry: connection refused", "retry budget exhausted",
                                       "breaker open: failed fast", "stale fallback served"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "%.*s", (int)s.annotations[i].value.len,
                 s.annotations[i].value.ptr);
        assert_string_equal(text, want[i]);
        assert_int_equal(s.annotations[i].timestamp_us, 10 + i);
    }
    /* a transport failure is an error whatever the status the client got */
    in.status = 200;
    in.transport_failed = true;
    in.nevents = 0;
    assert_int_equal(proxy__span_build(&in, scratch, sizeof(scratch), &s), 0);
    assert_true(s.is_error);
    assert_string_equal(tag(&s, "error"), "no answer from the upstream");
}

static void test_span__gateway_hop_and_no_route(void **state)
{
    struct proxy_span_input in = mesh_hop();
    struct trace_span s;
    char scratch[PROXY_SPAN_SCRATCH];
    (void)state;

    in.local_service = SLICE("gateway");
    in.caller_instance = SLICE("");
    in.route = in.cluster = in.endpoint = in.remote_service = SLICE("");
    in.attempts = 0;
    in.has_upstream = false;
    in.status = 404;
    in.endpoint = SLICE("[::1]:8081");
    assert_int_equal(proxy__span_build(&in, scratch, sizeof(scratch), &s), 0);
    assert_true(slice_eq(s.name, SLICE("get no route")));
    assert_null(tag(&s, "shoal.caller.instance"));
    assert_null(tag(&s, "shoal.queue_us"));
    assert_false(s.is_error);
    assert_true(slice_eq(s.remote.ip, SLICE("::1")));
    assert_int_equal(s.remote.port, 8081);
    /* a scratch too small is an error, never an overflow */
    assert_int_equal(proxy__span_build(&in, scratch, 8, &s), SH_ETOOBIG);
}

/* The span built goes through the queue intact (the strings are copied at push). */
static void check_drained(void *data, const struct trace_span *s)
{
    int *seen = data;

    (*seen)++;
    assert_true(slice_eq(s->name, SLICE("get names")));
    assert_string_equal(tag(s, "http.status_code"), "200");
    assert_string_equal(tag(s, "shoal.caller.instance"), "greeter-1");
}

static void test_span__built_span_survives_the_queue(void **state)
{
    struct proxy_span_input in = mesh_hop();
    struct trace_queue *q;
    struct trace_span s;
    char scratch[PROXY_SPAN_SCRATCH];
    int seen = 0;
    (void)state;

    assert_int_equal(proxy__span_build(&in, scratch, sizeof(scratch), &s), 0);
    assert_int_equal(trace_queue_new(&(struct trace_queue_config){.shards = 1}, &q), 0);
    assert_int_equal(trace_queue_push(q, 0, &s), 0);
    memset(scratch, 0, sizeof(scratch)); /* the builder's scratch goes */
    assert_int_equal(trace_queue_drain(q, 0, check_drained, &seen), 1);
    assert_int_equal(seen, 1);
    trace_queue_free(q);
}

static void test_span__sampling(void **state)
{
    struct proxy_keep_input k = {.slow_ms = 1000};
    (void)state;

    assert_true(proxy_span_head_sampled(1.0, UINT64_MAX));
    assert_true(proxy_span_head_sampled(1.0, 0));
    assert_false(proxy_span_head_sampled(0.0, 0));
    assert_true(proxy_span_head_sampled(0.5, 0));
    assert_true(proxy_span_head_sampled(0.5, (1ull << 63) - 4096));
    assert_false(proxy_span_head_sampled(0.5, 1ull << 63));
    assert_false(proxy_span_head_sampled(0.5, UINT64_MAX));
    /* about a tenth of uniform values pass at 10% */
    {
        uint64_t x = 88172645463325252ull, n = 0;
        for (int i = 0; i < 100000; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            n += proxy_span_head_sampled(0.1, x);
        }
        assert_true(n > 9000 && n < 11000);
    }
    /* kept: sampled; or an error; or slow; else not */
    k.is_sampled = true;
    assert_true(proxy_span_keep(&k));
    k.is_sampled = false;
    k.duration_us = 999999;
    assert_false(proxy_span_keep(&k));
    k.duration_us = 1000000;
    assert_true(proxy_span_keep(&k));
    k.duration_us = 5;
    k.is_error = true;
    assert_true(proxy_span_keep(&k));
    k.is_error = false;
    k.slow_ms = 0; /* slow: off */
    k.duration_us = UINT64_MAX / 2;
    assert_false(proxy_span_keep(&k));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_span__mesh_hop_is_a_client_span_of_the_caller),
        SH_TEST(test_span__retries_and_decisions_are_annotations),
        SH_TEST(test_span__gateway_hop_and_no_route),
        SH_TEST(test_span__built_span_survives_the_queue),
        SH_TEST(test_span__sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
