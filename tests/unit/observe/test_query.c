/* SPDX-License-Identifier: MIT */
/* test_query.c: the decisions behind Zipkin's query API, without storage: the annotationQuery
 * parser, the trace test (window, service, remote service, span name, terms, durations, as
 * Zipkin's QueryRequest.test) and the dependency links (one call per client/server pair,
 * uninstrumented callees, messaging, errors). */
#include "test_util.h"

#include "observe/observe.h"

#include <stdio.h>
#include <string.h>

static bool eq(struct slice s, const char *c)
{
    return s.ptr ? slice_eq(s, slice_from_cstr(c)) : c == NULL;
}

/* ---- annotationQuery ---- */
static void test_query__annotation_terms(void **state)
{
    struct obs_query q = {0};
    struct sh_diag d = {{0}, {0}};
    (void)state;

    assert_int_equal(
        obs_query_parse_annotations(SLICE("error and http.path=/foo AND retry"), &q, &d), 0);
    assert_int_equal(q.term_count, 3);
    assert_true(eq(q.terms[0].key, "error") && !q.terms[0].value.ptr);
    assert_true(eq(q.terms[1].key, "http.path") && eq(q.terms[1].value, "/foo"));
    assert_true(eq(q.terms[2].key, "retry") && !q.terms[2].value.ptr);
    /* the value keeps what follows the first '=' */
    assert_int_equal(obs_query_parse_annotations(SLICE("q=a=b"), &q, &d), 0);
    assert_true(eq(q.terms[0].key, "q") && eq(q.terms[0].value, "a=b"));
    /* "key=" asks for an empty value, not for the bare key */
    assert_int_equal(obs_query_parse_annotations(SLICE("k="), &q, &d), 0);
    assert_true(q.terms[0].value.ptr && q.terms[0].value.len == 0);
    /* "android" holds "and" but is one term */
    assert_int_equal(obs_query_parse_annotations(SLICE("android"), &q, &d), 0);
    assert_int_equal(q.term_count, 1);
    assert_int_equal(obs_query_parse_annotations(SLICE("   "), &q, &d), 0);
    assert_int_equal(q.term_count, 0);
    assert_int_equal(obs_query_parse_annotations(SLICE("a and  and b"), &q, &d), SH_EPARSE);
    assert_string_equal(d.where, "annotationQuery");
    assert_int_equal(obs_query_parse_annotations(SLICE("=x"), &q, &d), SH_EPARSE);
    struct buf many = BUF_INIT(0);
    for (int i = 0; i <= OBS_QUERY_MAX_TERMS; i++)
        buf_appendf(&many, "%st%d", i ? " and " : "", i);
    assert_int_equal(obs_query_parse_annotations(buf_slice(&many), &q, &d), SH_ETOOBIG);
    buf_release(&many);
}

/* ---- the trace test ---- */
static void span(struct trace_span *s, uint8_t id, uint8_t parent, const char *svc,
                 const char *name, uint64_t ts, uint64_t dur)
{
    memset(s, 0, sizeof(*s));
    s->trace_id[15] = 1;
    s->span_id[7] = id;
    s->parent_id[7] = parent;
    s->local.service = slice_from_cstr(svc);
    s->name = slice_from_cstr(name);
    s->timestamp_us = ts;
    s->duration_us = dur;
}

static void test_query__trace_test(void **state)
{
    struct trace_span t[3];
    struct sh_diag d = {{0}, {0}};
    (void)state;

    span(&t[0], 1, 0, "gateway", "get /", 10000000, 9000);
    span(&t[1], 2, 1, "api", "get /x", 10001000, 7000);
    t[1].remote.service = SLICE("db");
    t[1].tags[0] = (struct trace_tag){SLICE("http.path"), SLICE("/x")};
    t[1].tag_count = 1;
    span(&t[2], 3, 2, "db", "query", 10002000, 100);
    t[2].annotations[0] = (struct trace_annotation){10002050, SLICE("slow disk")};
    t[2].annotation_count = 1;
    t[2].is_error = true;

    struct obs_query base = {.end_ms = 11000, .lookback_ms = 2000}; /* root at 10,000 ms */
    struct obs_query q = base;
    assert_true(obs_query_test(&q, t, 3));
    q.end_ms = 9999; /* the root starts after the window */
    assert_false(obs_query_test(&q, t, 3));
    q = base;
    q.lookback_ms = 500; /* starts before it */
    assert_false(obs_query_test(&q, t, 3));
    q = base;
    q.service = "api";
    q.remote_service = "db";
    q.span_name = "get /x";
    assert_true(obs_query_test(&q, t, 3));
    q.span_name = "get /"; /* a name of another service's span */
    assert_false(obs_query_test(&q, t, 3));
    q = base;
    q.service = "api";
    q.min_duration_us = 8000; /* only the gateway's span lasts that long */
    assert_false(obs_query_test(&q, t, 3));
    q.service = NULL;
    assert_true(obs_query_test(&q, t, 3));
    q.max_duration_us = 8500;
    assert_false(obs_query_test(&q, t, 3));
    q.min_duration_us = 50;
    q.max_duration_us = 150; /* the db span */
    assert_true(obs_query_test(&q, t, 3));
    q = base;
    assert_int_equal(
        obs_query_parse_annotations(SLICE("slow disk and http.path=/x and error"), &q, &d), 0);
    assert_true(obs_query_test(&q, t, 3)); /* terms met by different spans */
    q.service = "db";
    assert_false(obs_query_test(&q, t, 3)); /* http.path is api's */
    assert_int_equal(obs_query_parse_annotations(SLICE("http.path=/y"), &q, &d), 0);
    q.service = NULL;
    assert_false(obs_query_test(&q, t, 3));
    /* without a root, the earliest start counts */
    q = base;
    assert_true(obs_query_test(&q, &t[1], 2));
    assert_false(obs_query_test(&q, t, 0));
}

/* ---- dependency links ---- */
static const struct obs_link *link_of(const struct obs_links *l, const char *p, const char *c)
{
    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->links[i].parent, p) && !strcmp(l->links[i].child, c)) return &l->links[i];
    return NULL;
}

static void test_query__links_one_call_per_rpc(void **state)
{
    struct trace_span t[6];
    struct obs_links l = {0};
    struct buf out = BUF_INIT(0);
    (void)state;

    /* gateway SERVER -> gateway CLIENT -> greeter SERVER -> greeter CLIENT -> names SERVER */
    span(&t[0], 1, 0, "gateway", "in", 1, 10);
    t[0].kind = TRACE_KIND_SERVER;
    span(&t[1], 2, 1, "gateway", "out", 2, 8);
    t[1].kind = TRACE_KIND_CLIENT;
    t[1].remote.service = SLICE("greeter");
    span(&t[2], 3, 2, "greeter", "in", 3, 6);
    t[2].kind = TRACE_KIND_SERVER;
    span(&t[3], 4, 3, "greeter", "out", 4, 4);
    t[3].kind = TRACE_KIND_CLIENT;
    span(&t[4], 5, 4, "names", "in", 5, 2);
    t[4].kind = TRACE_KIND_SERVER;
    t[4].tags[0] = (struct trace_tag){SLICE("error"), SLICE("500")};
    t[4].tag_count = 1;
    /* an uninstrumented callee: a CLIENT span with no SERVER child */
    span(&t[5], 6, 3, "greeter", "cache", 4, 1);
    t[5].kind = TRACE_KIND_CLIENT;
    t[5].remote.service = SLICE("redis");
    t[5].is_error = true;
    assert_int_equal(obs_links_add_trace(&l, t, 6), 0);
    assert_int_equal(obs_links_add_trace(&l, t, 6), 0); /* a second trace alike */
    assert_int_equal(l.count, 3);
    assert_int_equal(link_of(&l, "gateway", "greeter")->call_count, 2);
    assert_int_equal(link_of(&l, "gateway", "greeter")->error_count, 0);
    assert_int_equal(link_of(&l, "greeter", "names")->call_count, 2);
    assert_int_equal(link_of(&l, "greeter", "names")->error_count, 2);
    assert_int_equal(link_of(&l, "greeter", "redis")->error_count, 2);
    assert_null(link_of(&l, "gateway", "gateway"));
    assert_int_equal(obs_links_render(&l, &out), 0);
    assert_non_null(
        strstr(out.data, "{\"parent\":\"gateway\",\"child\":\"greeter\",\"callCount\":2}"));
    assert_non_null(strstr(out.data, "\"errorCount\":2"));
    obs_links_release(&l);
    buf_release(&out);
}

static void test_query__links_shared_ids_remote_and_messaging(void **state)
{
    struct trace_span t[5];
    struct obs_links l = {0};
    (void)state;

    /* Zipkin's shared span: client and server halves with one id */
    span(&t[0], 1, 0, "web", "call", 1, 10);
    t[0].kind = TRACE_KIND_CLIENT;
    span(&t[1], 1, 0, "api", "call", 2, 8);
    t[1].kind = TRACE_KIND_SERVER;
    t[1].shared = true;
    /* a SERVER root called by an uninstrumented client named in remoteEndpoint */
    span(&t[2], 7, 0, "api", "webhook", 1, 1);
    t[2].kind = TRACE_KIND_SERVER;
    t[2].remote.service = SLICE("github");
    /* messaging */
    span(&t[3], 8, 1, "api", "send", 3, 1);
    t[3].kind = TRACE_KIND_PRODUCER;
    t[3].remote.service = SLICE("kafka");
    span(&t[4], 9, 8, "worker", "recv", 4, 1);
    t[4].kind = TRACE_KIND_CONSUMER;
    t[4].remote.service = SLICE("kafka");
    assert_int_equal(obs_links_add_trace(&l, t, 5), 0);
    assert_int_equal(l.count, 4);
    assert_int_equal(link_of(&l, "web", "api")->call_count, 1);
    assert_non_null(link_of(&l, "github", "api"));
    assert_non_null(link_of(&l, "api", "kafka"));
    assert_non_null(link_of(&l, "kafka", "worker"));
    obs_links_release(&l);
    /* a lone SERVER root without a remote: no link */
    assert_int_equal(obs_links_add_trace(&l, &t[0], 0), 0);
    span(&t[0], 1, 0, "solo", "x", 1, 1);
    t[0].kind = TRACE_KIND_SERVER;
    assert_int_equal(obs_links_add_trace(&l, t, 1), 0);
    assert_int_equal(l.count, 0);
    /* ids that form a cycle end the ancestor walk */
    span(&t[0], 1, 2, "a", "x", 1, 1);
    span(&t[1], 2, 1, "b", "y", 1, 1);
    t[1].kind = TRACE_KIND_SERVER;
    assert_int_equal(obs_links_add_trace(&l, t, 2), 0);
    assert_non_null(link_of(&l, "a", "b"));
    obs_links_release(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_query__annotation_terms),
        SH_TEST(test_query__trace_test),
        SH_TEST(test_query__links_one_call_per_rpc),
        SH_TEST(test_query__links_shared_ids_remote_and_messaging),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
