/* SPDX-License-Identifier: MIT */
/* test_trace.c: W3C traceparent parsing (a table of valid and invalid values) and formatting,
 * round trips, child and root contexts, tracestate pass-through with the spec's limits, and
 * the uniqueness and shape of generated trace ids, span ids and request ids. */
#include "test_util.h"

#include "telemetry/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"

/* ---- traceparent ---- */

struct tp_case {
    const char *value;
    int rc;
    uint8_t version, flags; /* when valid */
    const char *why;
};

static const struct tp_case tp_cases[] = {
    {"00-" TID "-" SID "-01", 0, 0, 1, "the spec's example, sampled"},
    {"00-" TID "-" SID "-00", 0, 0, 0, "not sampled"},
    {"00-" TID "-" SID "-ff", 0, 0, 0xff, "unknown flags are parsed (and dropped by child)"},
    {" \t00-" TID "-" SID "-01\t ", 0, 0, 1, "OWS around the value"},
    {"01-" TID "-" SID "-01", 0, 1, 1, "future version, same size"},
    {"cc-" TID "-" SID "-01-what-the-future-holds", 0, 0xcc, 1, "future version, more fields"},
    {"fe-" TID "-" SID "-01-", 0, 0xfe, 1, "future version, empty extra field"},
    {"", SH_EPARSE, 0, 0, "empty"},
    {"00-" TID "-" SID "-0", SH_EPARSE, 0, 0, "one character short"},
    {"00-" TID "-" SID "-01-", SH_EPARSE, 0, 0, "version 00 must end after the flags"},
    {"00-" TID "-" SID "-01x", SH_EPARSE, 0, 0, "version 00 with a trailing byte"},
    {"01-" TID "-" SID "-01x", SH_EPARSE, 0, 0, "future version: extra must start with '-'"},
    {"ff-" TID "-" SID "-01", SH_EPARSE, 0, 0, "version ff is forbidden"},
    {"0g-" TID "-" SID "-01", SH_EPARSE, 0, 0, "version not hex"},
    {"0A-" TID "-" SID "-01", SH_EPARSE, 0, 0, "version uppercase"},
    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01", SH_EPARSE, 0, 0, "trace id uppercase"},
    {"00-" TID "-00F067AA0BA902B7-01", SH_EPARSE, 0, 0, "parent id uppercase"},
    {"00-" TID "-" SID "-0A", SH_EPARSE, 0, 0, "flags uppercase"},
    {"00-00000000000000000000000000000000-" SID "-01", SH_EPARSE, 0, 0, "zero trace id"},
    {"00-" TID "-0000000000000000-01", SH_EPARSE, 0, 0, "zero parent id"},
    {"00-4bf92f3577b34da6a3ce929d0e0e473-" SID "0-01", SH_EPARSE, 0, 0, "31-char trace id"},
    {"00-" TID "0-" SID "-1", SH_EPARSE, 0, 0, "33-char trace id"},
    {"00-" TID "-00f067aa0ba902b-701", SH_EPARSE, 0, 0, "15-char parent id"},
    {"00_" TID "-" SID "-01", SH_EPARSE, 0, 0, "wrong separator after version"},
    {"00-" TID "_" SID "-01", SH_EPARSE, 0, 0, "wrong separator after trace id"},
    {"00-" TID "-" SID "_01", SH_EPARSE, 0, 0, "wrong separator after parent id"},
    {"00-4bf92f3577b34da6a3ce929d0e0e473g-" SID "-01", SH_EPARSE, 0, 0, "non-hex trace id"},
    {"00-" TID "-00f067aa0ba902bz-01", SH_EPARSE, 0, 0, "non-hex parent id"},
    {"00-" TID "-" SID "-0z", SH_EPARSE, 0, 0, "non-hex flags"},
    {"0-0" TID "-" SID "-01", SH_EPARSE, 0, 0, "one-digit version"},
    {"00 -" TID "-" SID "-01", SH_EPARSE, 0, 0, "space inside"},
    {"00-" TID "-" SID "-01,00-" TID "-" SID "-01", SH_EPARSE, 0, 0, "two values joined"},
};

static void test_trace__traceparent_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(tp_cases); i++) {
        const struct tp_case *c = &tp_cases[i];
        struct trace_context tc;
        int rc = trace_context_parse(slice_from_cstr(c->value), &tc);

        if (rc != c->rc) {
            print_error("case %zu (%s): '%s' gave %s, want %s\n", i, c->why, c->value,
                        sh_errname(rc), sh_errname(c->rc));
            fail();
        }
        if (rc == 0) {
            assert_int_equal(tc.version, c->version);
            assert_int_equal(tc.flags, c->flags);
            assert_int_equal(tc.trace_id[0], 0x4b);
            assert_int_equal(tc.trace_id[15], 0x36);
            assert_int_equal(tc.span_id[0], 0x00);
            assert_int_equal(tc.span_id[7], 0xb7);
        } else {
            static const struct trace_context zero;
            assert_memory_equal(&tc, &zero, sizeof(tc));
        }
    }
}

static void test_trace__traceparent_round_trip(void **state)
{
    const char *in = "00-" TID "-" SID "-01";
    struct trace_context tc;
    char out[TRACE_PARENT_LEN + 1];

    (void)state;
    assert_int_equal(trace_context_parse(slice_from_cstr(in), &tc), 0);
    assert_int_equal(trace_context_format(&tc, out, sizeof(out)), TRACE_PARENT_LEN);
    assert_string_equal(out, in);
    /* a future version is downgraded to 00 when sent on; unknown fields are dropped */
    assert_int_equal(trace_context_parse(SLICE("7f-" TID "-" SID "-01-abc"), &tc), 0);
    assert_int_equal(trace_context_format(&tc, out, sizeof(out)), TRACE_PARENT_LEN);
    assert_string_equal(out, in);
    /* too small a buffer: nothing written */
    memset(out, 'x', sizeof(out));
    assert_int_equal(trace_context_format(&tc, out, TRACE_PARENT_LEN), 0);
    assert_int_equal(out[0], 'x');
}

static void test_trace__generated_contexts_round_trip(void **state)
{
    struct trace_rng rng;
    char text[TRACE_PARENT_LEN + 1];

    (void)state;
    trace_rng_init(&rng);
    for (int i = 0; i < 1000; i++) {
        struct trace_context root, child, back;
        trace_context_new_root(&rng, (uint8_t)(i & 1), &root);
        assert_int_equal(trace_context_format(&root, text, sizeof(text)), TRACE_PARENT_LEN);
        assert_int_equal(trace_context_parse(slice_from_cstr(text), &back), 0);
        assert_memory_equal(&back, &root, sizeof(root));

        root.flags = 0xff; /* as if received: child keeps only the sampled bit */
        root.version = 3;
        trace_context_child(&root, &rng, &child);
        assert_memory_equal(child.trace_id, root.trace_id, TRACE_ID_BYTES);
        assert_memory_not_equal(child.span_id, root.span_id, TRACE_SPAN_ID_BYTES);
        assert_int_equal(child.flags, TRACE_F_SAMPLED);
        assert_int_equal(child.version, 0);
        trace_context_child(&child, &rng, &child); /* in place */
        assert_memory_equal(child.trace_id, root.trace_id, TRACE_ID_BYTES);
    }
}

/* ---- ids ---- */

enum { DRAWS = 100000 };

static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int cmp8(const void *a, const void *b)
{
    return memcmp(a, b, 8);
}

static int cmp37(const void *a, const void *b)
{
    return memcmp(a, b, 37);
}

static void test_trace__ids_unique_over_100k_draws(void **state)
{
    struct trace_rng rng;
    uint8_t(*tids)[16] = sh_malloc(sizeof(*tids) * DRAWS);
    uint8_t(*sids)[8] = sh_malloc(sizeof(*sids) * DRAWS);
    char(*rids)[37] = sh_malloc(sizeof(*rids) * DRAWS);

    (void)state;
    assert_non_null(tids);
    assert_non_null(sids);
    assert_non_null(rids);
    trace_rng_init(&rng);
    for (size_t i = 0; i < DRAWS; i++) {
        trace_id_generate(&rng, tids[i]);
        trace_span_id_generate(&rng, sids[i]);
        assert_int_equal(trace_request_id(&rng, rids[i], sizeof(rids[i])), TRACE_REQUEST_ID_LEN);
    }
    qsort(tids, DRAWS, sizeof(tids[0]), cmp16);
    qsort(sids, DRAWS, sizeof(sids[0]), cmp8);
    qsort(rids, DRAWS, sizeof(rids[0]), cmp37);
    for (size_t i = 1; i < DRAWS; i++) {
        assert_true(memcmp(tids[i - 1], tids[i], 16) != 0);
        assert_true(memcmp(sids[i - 1], sids[i], 8) != 0);
        assert_true(memcmp(rids[i - 1], rids[i], 37) != 0);
    }
    sh_free(tids);
    sh_free(sids);
    sh_free(rids);
}

static void test_trace__request_id_is_uuid_v4(void **state)
{
    struct trace_rng rng;
    char id[TRACE_REQUEST_ID_LEN + 1];

    (void)state;
    trace_rng_init(&rng);
    for (int n = 0; n < 1000; n++) {
        assert_int_equal(trace_request_id(&rng, id, sizeof(id)), 36);
        assert_int_equal(strlen(id), 36);
        for (int i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                assert_int_equal(id[i], '-');
            else
                assert_non_null(strchr("0123456789abcdef", id[i]));
        }
        assert_int_equal(id[14], '4');
        assert_non_null(strchr("89ab", id[19]));
    }
    assert_int_equal(trace_request_id(&rng, id, TRACE_REQUEST_ID_LEN), 0);
}

static void test_trace__rng_seeding(void **state)
{
    struct trace_rng a, b;
    uint64_t x;

    (void)state;
    trace_rng_seed(&a, 42);
    trace_rng_seed(&b, 42);
    x = trace_rng_next(&a);
    assert_true(x == trace_rng_next(&b));
    trace_rng_seed(&b, 0); /* a zero seed still gives a working generator */
    assert_true(trace_rng_next(&b) != 0 || trace_rng_next(&b) != 0);
    trace_rng_init(&a);
    trace_rng_init(&b);
    assert_memory_not_equal(a.s, b.s, sizeof(a.s));
}

/* ---- tracestate ---- */

static int build(const char *in, const char *own_key, const char *own_value, char *out,
                 size_t out_len)
{
    size_t used = 12345;
    int rc = trace_state_build(slice_from_cstr(in), slice_from_cstr(own_key),
                               slice_from_cstr(own_value), out, out_len, &used);

    if (rc == 0)
        assert_int_equal(used, strlen(out));
    else
        assert_int_equal(used, 0);
    return rc;
}

static void test_trace__tracestate_passes_through_and_prepends(void **state)
{
    char out[TRACE_STATE_MAX_BYTES + 1];

    (void)state;
    assert_int_equal(build("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", NULL, NULL, out, sizeof(out)),
                     0);
    assert_string_equal(out, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_int_equal(build("rojo=1,congo=2", "shoal", "abc", out, sizeof(out)), 0);
    assert_string_equal(out, "shoal=abc,rojo=1,congo=2");
    /* our own entry is replaced and moved to the left */
    assert_int_equal(build("rojo=1,shoal=old,congo=2", "shoal", "new", out, sizeof(out)), 0);
    assert_string_equal(out, "shoal=new,rojo=1,congo=2");
    /* OWS and empty members go; leading spaces of a value stay, trailing ones are OWS */
    assert_int_equal(build(" a=1 , ,\t,b= 2 \t,", NULL, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "a=1,b= 2");
    /* keys with the allowed punctuation, multi-tenant keys */
    assert_int_equal(build("t1@sys=v,a_b-c*d/e=x", NULL, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "t1@sys=v,a_b-c*d/e=x");
    /* empty input and whitespace-only input: nothing to send */
    assert_int_equal(build("", NULL, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(build(" , ", NULL, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(build("", "shoal", "x", out, sizeof(out)), 0);
    assert_string_equal(out, "shoal=x");
}

static void test_trace__tracestate_rejects_invalid(void **state)
{
    char out[TRACE_STATE_MAX_BYTES + 1];
    char key[300], value[300], in[700];
    const char *bad[] = {
        "a=1,a=2", /* duplicate key */
        "A=1",     /* uppercase key */
        "_a=1",    /* key must start with a letter or digit */
        "a=",      /* empty value */
        "=1",      /* empty key */
        "a",       /* no '=' */
        "a=b=c",   /* '=' in value */
        "a=x\ty",  /* tab in value */
        "a=\x7f",  /* DEL */
        "a b=1",   /* space in key */
        "a=1;b:2", /* last: valid, ';' is an ordinary value byte */
    };

    (void)state;
    for (size_t i = 0; i + 1 < SH_ARRAY_LEN(bad); i++) {
        if (build(bad[i], NULL, NULL, out, sizeof(out)) != SH_EPARSE) {
            print_error("'%s' was accepted\n", bad[i]);
            fail();
        }
    }
    assert_int_equal(build(bad[SH_ARRAY_LEN(bad) - 1], NULL, NULL, out, sizeof(out)), 0);
    /* key up to 256, value up to 256 */
    memset(key, 'k', 256);
    key[256] = '\0';
    memset(value, 'v', 256);
    value[256] = '\0';
    snprintf(in, sizeof(in), "%s=1", key);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), 0);
    snprintf(in, sizeof(in), "k%s=1", key);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), SH_EPARSE);
    snprintf(in, sizeof(in), "a=%s", value);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), 0);
    snprintf(in, sizeof(in), "a=v%s", value);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), SH_EPARSE);
    /* our own member must be valid */
    assert_int_equal(build("a=1", "Shoal", "x", out, sizeof(out)), SH_EINVAL);
    assert_int_equal(build("a=1", "shoal", "x,y", out, sizeof(out)), SH_EINVAL);
    assert_int_equal(build("a=1", "shoal", "", out, sizeof(out)), SH_EINVAL);
    /* out too small */
    assert_int_equal(build("abc=1", NULL, NULL, out, 5), SH_ETOOBIG);
    assert_int_equal(build("abc=1", NULL, NULL, out, 6), 0);
}

static void test_trace__tracestate_member_limit(void **state)
{
    char in[1024], out[TRACE_STATE_MAX_BYTES + 1];
    size_t len = 0;

    (void)state;
    for (int i = 0; i < 32; i++)
        len += (size_t)snprintf(in + len, sizeof(in) - len, "%sk%d=%d", i ? "," : "", i, i);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), 0);
    assert_string_equal(out, in); /* 32 members pass */
    /* ours on top of 32: the right-most received one goes */
    assert_int_equal(build(in, "shoal", "x", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "shoal=x,k0=0,"));
    assert_non_null(strstr(out, ",k30=30"));
    assert_null(strstr(out, "k31"));
    /* 33 members: the header is invalid */
    snprintf(in + len, sizeof(in) - len, ",k32=32");
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), SH_EPARSE);
}

static void test_trace__tracestate_truncates_long_members_first(void **state)
{
    char in[2048], out[TRACE_STATE_MAX_BYTES + 1], v200[201], v100[101];
    size_t len;

    (void)state;
    memset(v200, 'x', 200);
    v200[200] = '\0';
    memset(v100, 'y', 100);
    v100[100] = '\0';
    /* 5 * ~104 + 202 > 512: the long member goes first, wherever it is */
    len = (size_t)snprintf(in, sizeof(in), "a=%s,b=%s,long=%s,c=%s,d=%s,e=%s", v100, v100, v200,
                           v100, v100, v100);
    assert_true(len > 512);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), 0);
    assert_null(strstr(out, "long="));
    assert_int_equal(strlen(out), 4 * 102 + 3); /* 5 left made 514 > 512: e went too */
    assert_null(strstr(out, "e=y"));
}

static void test_trace__tracestate_truncates_from_the_right(void **state)
{
    char in[2048], out[TRACE_STATE_MAX_BYTES + 1], v100[101];

    (void)state;
    memset(v100, 'y', 100);
    v100[100] = '\0';
    snprintf(in, sizeof(in), "a=%s,b=%s,c=%s,d=%s,e=%s", v100, v100, v100, v100, v100);
    assert_int_equal(build(in, NULL, NULL, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), 5 * 102 + 4 - 103); /* e went */
    assert_non_null(strstr(out, "d=y"));
    assert_null(strstr(out, "e=y"));
    assert_int_equal(build(in, "shoal", "1", out, sizeof(out)), 0);
    assert_true(strncmp(out, "shoal=1,a=", 10) == 0);
    assert_null(strstr(out, "e=y"));
    assert_true(strlen(out) <= TRACE_STATE_MAX_BYTES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_trace__traceparent_table),
        SH_TEST(test_trace__traceparent_round_trip),
        SH_TEST(test_trace__generated_contexts_round_trip),
        SH_TEST(test_trace__ids_unique_over_100k_draws),
        SH_TEST(test_trace__request_id_is_uuid_v4),
        SH_TEST(test_trace__rng_seeding),
        SH_TEST(test_trace__tracestate_passes_through_and_prepends),
        SH_TEST(test_trace__tracestate_rejects_invalid),
        SH_TEST(test_trace__tracestate_member_limit),
        SH_TEST(test_trace__tracestate_truncates_long_members_first),
        SH_TEST(test_trace__tracestate_truncates_from_the_right),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
