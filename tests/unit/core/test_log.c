/* SPDX-License-Identifier: MIT */
/* test_log.c: records rendered to a temp file: JSON lines (checked by a small validator),
 * text lines, escaping and cutting of values, level filtering before argument evaluation,
 * and level names. Every test restores the default setup (info, text, stderr). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- capture ---- */

static FILE *cap_file;
static char cap_text[65536];

static void cap_start(enum sh_log_level min, enum sh_log_format fmt)
{
    cap_file = tmpfile();
    assert_non_null(cap_file);
    sh_log_setup(min, fmt, fileno(cap_file));
}

/* Restores the default setup and returns what was written, NUL-terminated. */
static const char *cap_end(void)
{
    size_t n;

    sh_log_setup(SH_INFO, SH_LOG_TEXT, 2);
    assert_int_equal(fseek(cap_file, 0, SEEK_SET), 0);
    n = fread(cap_text, 1, sizeof(cap_text) - 1, cap_file);
    cap_text[n] = '\0';
    assert_int_equal(memchr(cap_text, '\0', n) == NULL, 1); /* no NUL bytes in a log */
    fclose(cap_file);
    cap_file = NULL;
    return cap_text;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- a small JSON validator (RFC 8259 grammar; enough to prove a line is one object) ---- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

static const char *json_value(const char *p, int depth);

static const char *json_string(const char *p)
{
    if (*p++ != '"') return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"') return p;
        if (c < 0x20) /* raw controls (and the end of the text) are not allowed */
            return NULL;
        if (c == '\\') {
            c = (unsigned char)*p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++, p++) {
                    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                          (*p >= 'A' && *p <= 'F')))
                        return NULL;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return NULL;
            }
        }
    }
}

static const char *json_number(const char *p)
{
    const char *start;

    if (*p == '-') p++;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (*p >= '0' && *p <= '9')
            p++;
    } else {
        return NULL;
    }
    if (*p == '.') {
        start = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start) return NULL;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        start = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == start) return NULL;
    }
    return p;
}

static const char *json_container(const char *p, int depth, char close, bool is_object)
{
    p = skip_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (is_object) {
            p = json_string(skip_ws(p));
            if (!p) return NULL;
            p = skip_ws(p);
            if (*p++ != ':') return NULL;
        }
        p = json_value(p, depth + 1);
        if (!p) return NULL;
        p = skip_ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *json_value(const char *p, int depth)
{
    if (depth > 32) return NULL;
    p = skip_ws(p);
    switch (*p) {
    case '{':
        return json_container(p, depth, '}', true);
    case '[':
        return json_container(p, depth, ']', false);
    case '"':
        return json_string(p);
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return json_number(p);
    }
}

/* True when [line, line+len) is exactly one JSON object. */
static bool is_json_object(const char *line, size_t len)
{
    char tmp[16384];
    const char *end;

    if (len >= sizeof(tmp)) return false;
    memcpy(tmp, line, len);
    tmp[len] = '\0';
    if (skip_ws(tmp)[0] != '{') return false;
    end = json_value(tmp, 0);
    return end && *skip_ws(end) == '\0';
}

/* Every line of s is one JSON object; returns the number of lines. */
static size_t check_json_lines(const char *s)
{
    size_t n = 0;

    while (*s) {
        const char *nl = strchr(s, '\n');
        assert_non_null(nl); /* every record ends with a newline */
        if (!is_json_object(s, (size_t)(nl - s)))
            fail_msg("not one JSON object: %.*s", (int)(nl - s), s);
        n++;
        s = nl + 1;
    }
    return n;
}

static void test_log__json_validator_rejects_broken_lines(void **state)
{
    (void)state;
    assert_true(is_json_object("{\"a\":1,\"b\":[true,null,\"x\\u00e9\"],\"c\":{}}",
                               strlen("{\"a\":1,\"b\":[true,null,\"x\\u00e9\"],\"c\":{}}")));
    assert_false(is_json_object("{\"a\":1", strlen("{\"a\":1")));
    assert_false(is_json_object("{\"a\":\"x\ny\"}", strlen("{\"a\":\"x\ny\"}")));
    assert_false(is_json_object("{\"a\":nan}", strlen("{\"a\":nan}")));
    assert_false(is_json_object("{\"a\":\"\\x\"}", strlen("{\"a\":\"\\x\"}")));
    assert_false(is_json_object("{} {}", strlen("{} {}")));
}

/* ---- JSON records ---- */

static void test_log__json_record_is_one_object_with_typed_fields(void **state)
{
    const char *out;

    (void)state;
    cap_start(SH_DEBUG, SH_LOG_JSON);
    SH_LOG(SH_WARN, "proxy", "upstream connect failed", LF_STR("cluster", "api"),
           LF_INT("attempt", -3), LF_UINT("bytes", 18446744073709551615ull), LF_DBL("ratio", 0.5),
           LF_ERR("err", SH_ECONNREFUSED), LF_SLICE("path", SLICE("/v1/x")));
    SH_LOG(SH_DEBUG, "core", "second");
    SH_LOG(SH_ERROR, "core", "third", LF_STR("empty", ""), LF_STR("null", NULL));
    out = cap_end();

    assert_int_equal(check_json_lines(out), 3);
    assert_non_null(strstr(out, "{\"ts\":\""));
    assert_non_null(strstr(out, "\"level\":\"warn\""));
    assert_non_null(strstr(out, "\"comp\":\"proxy\""));
    assert_non_null(strstr(out, "\"msg\":\"upstream connect failed\""));
    assert_non_null(strstr(out, "\"cluster\":\"api\""));
    assert_non_null(strstr(out, "\"attempt\":-3"));
    assert_non_null(strstr(out, "\"bytes\":18446744073709551615"));
    assert_non_null(strstr(out, "\"ratio\":0.5"));
    assert_non_null(strstr(out, "\"err\":\"connection refused\""));
    assert_non_null(strstr(out, "\"path\":\"/v1/x\""));
    assert_non_null(strstr(out, "\"level\":\"debug\",\"comp\":\"core\",\"msg\":\"second\"}"));
    assert_non_null(strstr(out, "\"level\":\"error\""));
    assert_non_null(strstr(out, "\"empty\":\"\",\"null\":\"\"}"));
}

static void test_log__json_timestamp_is_utc_iso8601_ms(void **state)
{
    const char *out, *ts;

    (void)state;
    cap_start(SH_INFO, SH_LOG_JSON);
    SH_LOG(SH_INFO, "core", "tick");
    out = cap_end();
    ts = strstr(out, "\"ts\":\"");
    assert_non_null(ts);
    ts += 6;
    /* 2024-05-01T12:34:56.789Z */
    assert_int_equal(strlen(ts) > 24, 1);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    assert_int_equal(ts[24], '"');
}

static void test_log__json_escapes_quotes_newlines_and_controls(void **state)
{
    static const char nasty[] = "say \"hi\"\nnext\\line\r\t\x01\x1f\x7f end";
    const char *out;

    (void)state;
    cap_start(SH_INFO, SH_LOG_JSON);
    SH_LOG(SH_INFO, "core", "msg with \"quotes\"\nand a newline",
           LF_SLICE("v", ((struct slice){nasty, sizeof(nasty) - 1})), LF_STR("k\"ey", "x"));
    out = cap_end();
    assert_int_equal(count_lines(out), 1);
    assert_int_equal(check_json_lines(out), 1);
    assert_non_null(strstr(out, "\"msg\":\"msg with \\\"quotes\\\"\\nand a newline\""));
    assert_non_null(
        strstr(out, "\"v\":\"say \\\"hi\\\"\\nnext\\\\line\\r\\t\\u0001\\u001f\\u007f end\""));
    assert_non_null(strstr(out, "\"k\\\"ey\":\"x\""));
    assert_null(strchr(out, '\x01'));
    assert_null(strchr(out, '\x7f'));
}

static void test_log__json_nan_and_infinity_stay_valid(void **state)
{
    const char *out;

    (void)state;
    cap_start(SH_INFO, SH_LOG_JSON);
    SH_LOG(SH_INFO, "core", "odd numbers", LF_DBL("nan", NAN), LF_DBL("inf", INFINITY),
           LF_DBL("ninf", -INFINITY), LF_DBL("big", 1e300));
    out = cap_end();
    assert_int_equal(check_json_lines(out), 1);
    assert_non_null(strstr(out, "\"big\":1e+300"));
}

static void test_log__long_values_are_cut_at_512_bytes(void **state)
{
    char big[2000], want[600];
    const char *out, *v;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cap_start(SH_INFO, SH_LOG_JSON);
    SH_LOG(SH_INFO, "core", "big", LF_STR("v", big), LF_INT("after", 7));
    out = cap_end();
    assert_int_equal(check_json_lines(out), 1);
    v = strstr(out, "\"v\":\"");
    assert_non_null(v);
    v += 5;
    assert_int_equal(strspn(v, "x"), 512);
    assert_int_equal(v[512], '"');
    assert_non_null(strstr(out, "\"after\":7"));

    /* The cut does not split a UTF-8 sequence: 511 bytes + a 2-byte character -> 511. */
    memset(big, 'y', 511);
    memcpy(big + 511, "\xc3\xa9zzz", 6);
    cap_start(SH_INFO, SH_LOG_TEXT);
    SH_LOG(SH_INFO, "core", "utf8", LF_STR("v", big));
    out = cap_end();
    memset(want, 'y', 511);
    memcpy(want + 511, "\n", 2);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "\xc3"));
}

static void test_log__json_overlong_record_stays_valid(void **state)
{
    char quotes[600];
    const char *out;
    struct log_field f = LF_SLICE("q", ((struct slice){quotes, 512}));

    (void)state;
    memset(quotes, '"', sizeof(quotes)); /* each escapes to 2 bytes: 1 KiB per field */
    cap_start(SH_INFO, SH_LOG_JSON);
    SH_LOG(SH_INFO, "core", "many fields", f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f,
           f);
    out = cap_end();
    assert_int_equal(count_lines(out), 1);
    assert_true(strlen(out) <= 8193);
    assert_int_equal(check_json_lines(out), 1);
    assert_non_null(strstr(out, ",\"truncated\":true}\n"));

    cap_start(SH_INFO, SH_LOG_TEXT);
    SH_LOG(SH_INFO, "core", "many fields", f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f,
           f);
    out = cap_end();
    assert_int_equal(count_lines(out), 1);
    assert_true(strlen(out) <= 8193);
    assert_non_null(strstr(out, " truncated=true\n"));
}

static void test_log__auto_format_on_a_file_is_json(void **state)
{
    const char *out;

    (void)state;
    cap_start(SH_INFO, SH_LOG_AUTO);
    SH_LOG(SH_INFO, "core", "auto");
    out = cap_end();
    assert_int_equal(check_json_lines(out), 1);
}

/* ---- text records ---- */

static void test_log__text_record_is_level_comp_msg_fields(void **state)
{
    const char *out;

    (void)state;
    cap_start(SH_INFO, SH_LOG_TEXT);
    SH_LOG(SH_WARN, "proxy", "upstream connect failed", LF_STR("cluster", "api"), LF_INT("n", 42),
           LF_ERR("err", SH_ENOMEM), LF_STR("spaced", "a b"), LF_STR("nl", "x\ny"),
           LF_STR("empty", ""));
    SH_LOG(SH_INFO, "core", "plain");
    out = cap_end();
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, " warn  proxy: upstream connect failed cluster=api n=42 "
                                "err=\"out of memory\" spaced=\"a b\" nl=\"x\\ny\" empty=\"\"\n"));
    assert_non_null(strstr(out, " info  core: plain\n"));
    /* HH:MM:SS.mmm at the start of each line */
    assert_int_equal(out[2], ':');
    assert_int_equal(out[8], '.');
}

/* ---- levels ---- */

static int calls;

static int counted(int v)
{
    calls++;
    return v;
}

static void test_log__below_min_level_skips_argument_evaluation(void **state)
{
    const char *out;

    (void)state;
    calls = 0;
    cap_start(SH_WARN, SH_LOG_JSON);
    SH_LOG(SH_DEBUG, "core", "hidden", LF_INT("n", counted(1)));
    SH_LOG(SH_INFO, "core", "hidden", LF_INT("n", counted(2)), LF_INT("m", counted(3)));
    assert_int_equal(calls, 0);
    SH_LOG(SH_WARN, "core", "shown", LF_INT("n", counted(4)));
    SH_LOG(SH_ERROR, "core", "shown", LF_INT("n", counted(5)));
    assert_int_equal(calls, 2);
    out = cap_end();
    assert_int_equal(check_json_lines(out), 2);
    assert_null(strstr(out, "hidden"));

    calls = 0;
    cap_start(SH_OFF, SH_LOG_JSON);
    SH_LOG(SH_ERROR, "core", "off", LF_INT("n", counted(1)));
    assert_int_equal(calls, 0);
    out = cap_end();
    assert_string_equal(out, "");
}

static void test_log__write_below_min_level_writes_nothing(void **state)
{
    const char *out;

    (void)state;
    cap_start(SH_ERROR, SH_LOG_TEXT);
    sh_log_write(SH_INFO, "core", "direct", NULL, 0);
    sh_log_write(SH_OFF, "core", "not a record level", NULL, 0);
    out = cap_end();
    assert_string_equal(out, "");
}

static void test_log__records_are_written_without_allocating(void **state)
{
    const char *out;

    (void)state;
    cap_start(SH_INFO, SH_LOG_JSON);
    sh_alloc_fail_after(1); /* every allocation fails */
    SH_LOG(SH_ERROR, "core", "out of memory, still logging", LF_ERR("err", SH_ENOMEM),
           LF_STR("where", "test"));
    assert_int_equal(sh_alloc_count(), 0);
    sh_alloc_fail_after(0);
    out = cap_end();
    assert_int_equal(check_json_lines(out), 1);
    assert_non_null(strstr(out, "\"where\":\"test\""));
}

static void test_log__level_parse_names(void **state)
{
    (void)state;
    assert_int_equal(sh_log_level_parse(SLICE("debug")), SH_DEBUG);
    assert_int_equal(sh_log_level_parse(SLICE("info")), SH_INFO);
    assert_int_equal(sh_log_level_parse(SLICE("warn")), SH_WARN);
    assert_int_equal(sh_log_level_parse(SLICE("warning")), SH_WARN);
    assert_int_equal(sh_log_level_parse(SLICE("error")), SH_ERROR);
    assert_int_equal(sh_log_level_parse(SLICE("off")), SH_OFF);
    assert_int_equal(sh_log_level_parse(SLICE("WARN")), SH_WARN);
    assert_int_equal(sh_log_level_parse(SLICE("Info")), SH_INFO);
    assert_int_equal(sh_log_level_parse(SLICE("")), -1);
    assert_int_equal(sh_log_level_parse(SLICE_NULL), -1);
    assert_int_equal(sh_log_level_parse(SLICE("verbose")), -1);
    assert_int_equal(sh_log_level_parse(SLICE("info ")), -1);
    assert_int_equal(sh_log_level_parse(SLICE("inf")), -1);
    assert_int_equal(sh_log_level_parse((struct slice){"debugger", 5}), SH_DEBUG);
}

/* Restores the log setup even when a test failed half-way, then checks for leaks. */
static int log_teardown(void **state)
{
    sh_log_setup(SH_INFO, SH_LOG_TEXT, 2);
    if (cap_file) {
        fclose(cap_file);
        cap_file = NULL;
    }
    return test_teardown(state);
}

#define LOG_TEST(fn) cmocka_unit_test_setup_teardown(fn, test_setup, log_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LOG_TEST(test_log__json_validator_rejects_broken_lines),
        LOG_TEST(test_log__json_record_is_one_object_with_typed_fields),
        LOG_TEST(test_log__json_timestamp_is_utc_iso8601_ms),
        LOG_TEST(test_log__json_escapes_quotes_newlines_and_controls),
        LOG_TEST(test_log__json_nan_and_infinity_stay_valid),
        LOG_TEST(test_log__long_values_are_cut_at_512_bytes),
        LOG_TEST(test_log__json_overlong_record_stays_valid),
        LOG_TEST(test_log__auto_format_on_a_file_is_json),
        LOG_TEST(test_log__text_record_is_level_comp_msg_fields),
        LOG_TEST(test_log__below_min_level_skips_argument_evaluation),
        LOG_TEST(test_log__write_below_min_level_writes_nothing),
        LOG_TEST(test_log__records_are_written_without_allocating),
        LOG_TEST(test_log__level_parse_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
