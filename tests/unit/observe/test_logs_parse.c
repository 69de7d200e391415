/* SPDX-License-Identifier: MIT */
/* test_logs_parse.c: obs_log_parse over a table of lines (JSON under the common key names,
 * plain text with a leading level word, a traceparent or trace_id=, access lines), trace id
 * normalisation, level names, and obs_log_fts_query: what users type becomes quoted FTS5
 * strings, and what cannot be searched is refused with the reason. */
#include "test_util.h"

#include "observe/observe.h"

#include <stdio.h>
#include <string.h>

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"

struct parse_case {
    const char *line;
    enum obs_log_stream stream;
    enum obs_log_level level;
    const char *message; /* NULL: the whole line */
    const char *trace_id, *span_id;
    const char *why;
};

static const struct parse_case cases[] = {
    /* JSON */
    {"{\"level\":\"error\",\"msg\":\"db down\",\"trace_id\":\"" TID "\",\"span_id\":\"" SID "\"}",
     OBS_STREAM_STDOUT, OBS_LEVEL_ERROR, "db down", TID, SID, "the usual keys"},
    {"{\"lvl\":\"WARN\",\"message\":\"slow\",\"traceId\":\"" TID "\",\"spanId\":\"" SID "\"}",
     OBS_STREAM_STDOUT, OBS_LEVEL_WARN, "slow", TID, SID, "camelCase ids, lvl, message"},
    {"{\"severity\":\"INFO\",\"log\":\"hello\",\"traceid\":\"" TID "\"}", OBS_STREAM_STDERR,
     OBS_LEVEL_INFO, "hello", TID, "", "severity, log as the message, traceid"},
    {"{\"log.level\":\"debug\",\"message\":\"m\",\"trace.id\":\"" TID "\",\"span.id\":\"" SID "\"}",
     OBS_STREAM_STDOUT, OBS_LEVEL_DEBUG, "m", TID, SID, "ECS dotted keys"},
    {"{\"log\":{\"level\":\"warning\"},\"message\":\"m\",\"trace\":{\"id\":\"" TID "\"},"
     "\"span\":{\"id\":\"" SID "\"}}",
     OBS_STREAM_STDOUT, OBS_LEVEL_WARN, "m", TID, SID, "ECS nested objects"},
    {"{\"level\":50,\"msg\":\"pino\"}", OBS_STREAM_STDOUT, OBS_LEVEL_ERROR, "pino", "", "",
     "pino's numeric level"},
    {"{\"msg\":\"tp\",\"traceparent\":\"00-" TID "-" SID "-01\"}", OBS_STREAM_STDOUT,
     OBS_LEVEL_NONE, "tp", TID, SID, "ids from a traceparent field"},
    {"{\"msg\":\"short\",\"trace_id\":\"A3CE929D0E0E4736\"}", OBS_STREAM_STDOUT, OBS_LEVEL_NONE,
     "short", "0000000000000000a3ce929d0e0e4736", "", "a 64-bit id widened, lowercased"},
    {"{\"msg\":\"bad\",\"trace_id\":\"xyz\",\"span_id\":\"00000000000000000\"}", OBS_STREAM_STDOUT,
     OBS_LEVEL_NONE, "bad", "", "", "ids of the wrong shape are not ids"},
    {"{\"msg\":\"zero\",\"trace_id\":\"00000000000000000000000000000000\"}", OBS_STREAM_STDOUT,
     OBS_LEVEL_NONE, "zero", "", "", "an all-zero id is not an id"},
    {"{\"level\":\"info\"}", OBS_STREAM_STDOUT, OBS_LEVEL_INFO, NULL, "", "",
     "no message key: the line is the message"},
    {"{\"msg\": \"a\", \"msg\": \"b\"}", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "",
     "duplicate keys: not JSON to us, plain text"},
    {"{not json}", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "", "braces but not JSON"},
    {"[1,2]", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "", "a JSON array is plain text"},
    /* plain text */
    {"ERROR could not connect", OBS_STREAM_STDERR, OBS_LEVEL_ERROR, NULL, "", "",
     "a leading level word"},
    {"[warn] disk 91% full", OBS_STREAM_STDOUT, OBS_LEVEL_WARN, NULL, "", "", "in brackets"},
    {"2024-05-01T10:00:00Z INFO started", OBS_STREAM_STDOUT, OBS_LEVEL_INFO, NULL, "", "",
     "after a timestamp"},
    {"Information is power", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "",
     "a longer word is not a level"},
    {"time=1 level=debug msg=x", OBS_STREAM_STDOUT, OBS_LEVEL_DEBUG, NULL, "", "", "logfmt"},
    {"errors: 0", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "", "errors is not error"},
    {"GET /x traceparent=00-" TID "-" SID "-01 done", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, TID,
     SID, "a traceparent inside the text"},
    {"handled trace_id=" TID " span_id=" SID, OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, TID, SID,
     "trace_id= and span_id="},
    {"x traceId: \"" TID "\"", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, TID, "",
     "traceId: with quotes"},
    {"x trace_id=" TID "ff", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "",
     "34 hex digits are not a trace id"},
    {"xtrace_id=" TID, OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "",
     "the key must start a word"},
    {"", OBS_STREAM_STDOUT, OBS_LEVEL_NONE, NULL, "", "", "empty"},
    /* access lines */
    {"{\"ts\":1700000000123,\"request_id\":\"r\",\"method\":\"GET\",\"target\":\"/a?b\","
     "\"route\":\"api\",\"cluster\":\"front\",\"endpoint\":\"127.0.0.1:1\",\"status\":503,"
     "\"upstream_status\":0,\"bytes\":0,\"duration_ms\":1.5,\"attempts\":1,\"client\":\"c\","
     "\"trace_id\":\"" TID "\"}",
     OBS_STREAM_ACCESS, OBS_LEVEL_ERROR, "GET /a?b 503 1.500ms route=api cluster=front", TID, "",
     "an access line: message, level from the status"},
    {"{\"status\":404,\"trace_id\":\"" TID "\"}", OBS_STREAM_ACCESS, OBS_LEVEL_WARN,
     "  404 0.000ms route= cluster=", TID, "", "an access line with fields missing"},
};

static void test_parse__table(void **state)
{
    static struct obs_log_fields f;
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        const struct parse_case *c = &cases[i];
        struct slice line = slice_from_cstr(c->line);
        const char *want = c->message ? c->message : c->line;
        obs_log_parse(line, c->stream, &f);
        if (f.level != c->level || f.message.len != strlen(want) ||
            memcmp(f.message.ptr, want, f.message.len) || strcmp(f.trace_id, c->trace_id) ||
            strcmp(f.span_id, c->span_id))
            fail_msg("case %zu (%s): level %d message '%.*s' trace '%s' span '%s'", i, c->why,
                     f.level, (int)f.message.len, f.message.ptr, f.trace_id, f.span_id);
    }
}

static void test_parse__access_ts(void **state)
{
    static struct obs_log_fields f;
    (void)state;

    obs_log_parse(SLICE("{\"ts\":1700000000123,\"status\":200}"), OBS_STREAM_ACCESS, &f);
    assert_int_equal(f.ts_ms, 1700000000123ull);
    assert_int_equal(f.level, OBS_LEVEL_INFO);
    /* the same line from a service is not an access line: no ts taken */
    obs_log_parse(SLICE("{\"ts\":1700000000123,\"status\":200}"), OBS_STREAM_STDOUT, &f);
    assert_int_equal(f.ts_ms, 0);
}

static void test_parse__long_line_is_cut(void **state)
{
    static struct obs_log_fields f;
    static char big[OBS_LOG_LINE_MAX * 2];
    (void)state;

    memset(big, 'a', sizeof(big));
    obs_log_parse((struct slice){big, sizeof(big)}, OBS_STREAM_STDOUT, &f);
    assert_int_equal(f.message.len, OBS_LOG_LINE_MAX);
}

static void test_level__names(void **state)
{
    (void)state;
    assert_int_equal(obs_log_level_parse(SLICE("Warning")), OBS_LEVEL_WARN);
    assert_int_equal(obs_log_level_parse(SLICE("30")), OBS_LEVEL_INFO);
    assert_int_equal(obs_log_level_parse(SLICE("35")), OBS_LEVEL_NONE);
    assert_int_equal(obs_log_level_parse(SLICE("verbose")), OBS_LEVEL_NONE);
    assert_string_equal(obs_log_level_name(OBS_LEVEL_FATAL), "fatal");
    assert_null(obs_log_level_name(OBS_LEVEL_NONE));
    assert_string_equal(obs_log_stream_name(OBS_STREAM_ACCESS), "access");
}

static void test_trace_id__norm(void **state)
{
    char out[33];
    (void)state;

    assert_true(obs_log_trace_id_norm(SLICE("4BF92F3577B34DA6A3CE929D0E0E4736"), out));
    assert_string_equal(out, TID);
    assert_true(obs_log_trace_id_norm(SLICE("a3ce929d0e0e4736"), out));
    assert_string_equal(out, "0000000000000000a3ce929d0e0e4736");
    assert_false(obs_log_trace_id_norm(SLICE("a3ce929d0e0e473"), out));
    assert_string_equal(out, "");
    assert_false(obs_log_trace_id_norm(SLICE("g3ce929d0e0e4736"), out));
}

/* ---- full-text queries ---- */
struct q_case {
    const char *q;
    int rc;
    const char *fts; /* when rc == 0 */
};

static const struct q_case q_cases[] = {
    {"timeout", 0, "\"timeout\""},
    {"db timeout", 0, "\"db\" \"timeout\""},
    {"\"connection refused\" db", 0, "\"connection refused\" \"db\""},
    {"time*", 0, "\"time\"*"},
    {"a OR b", 0, "\"a\" \"OR\" \"b\""},
    {"NEAR(a b) col:x ^start", 0, "\"NEAR(a\" \"b)\" \"col:x\" \"^start\""},
    {"  spaced  ", 0, "\"spaced\""},
    {"\u00e9t\u00e9", 0, "\"\u00e9t\u00e9\""},
    {"", SH_EINVAL, NULL},
    {"   ", SH_EINVAL, NULL},
    {"\"open", SH_EPARSE, NULL},
    {"a\"b", SH_EPARSE, NULL},
    {"***", SH_EPARSE, NULL},
    {"--", SH_EPARSE, NULL},
    {"tab\there", SH_EPARSE, NULL},
    {"a b c d e f g h i j k l m n o p q", SH_ETOOBIG, NULL},
};

static void test_fts_query__table(void **state)
{
    struct buf b = BUF_INIT(4096);
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(q_cases); i++) {
        struct sh_diag d = {{0}, {0}};
        int rc = obs_log_fts_query(slice_from_cstr(q_cases[i].q), &b, &d);
        if (rc != q_cases[i].rc) fail_msg("case %zu '%s': rc %d (%s)", i, q_cases[i].q, rc, d.what);
        if (rc == 0 && strcmp(b.data, q_cases[i].fts))
            fail_msg("case %zu '%s': got %s", i, q_cases[i].q, b.data);
        if (rc != 0 && (strcmp(d.where, "q") || !d.what[0]))
            fail_msg("case %zu '%s': diag '%s' '%s'", i, q_cases[i].q, d.where, d.what);
    }
    buf_release(&b);
}

static void test_fts_query__too_long(void **state)
{
    static char q[OBS_LOG_QUERY_MAX + 2];
    struct buf b = BUF_INIT(4096);
    struct sh_diag d = {{0}, {0}};
    (void)state;

    memset(q, 'a', sizeof(q) - 1);
    assert_int_equal(obs_log_fts_query(slice_from_cstr(q), &b, &d), SH_ETOOBIG);
    assert_string_equal(d.where, "q");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_parse__table),
        SH_TEST(test_parse__access_ts),
        SH_TEST(test_parse__long_line_is_cut),
        SH_TEST(test_level__names),
        SH_TEST(test_trace_id__norm),
        SH_TEST(test_fts_query__table),
        SH_TEST(test_fts_query__too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
