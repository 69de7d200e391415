/* SPDX-License-Identifier: MIT */
/* test_time.c: duration and size parsing (values, errors and their messages), duration
 * formatting round trips, and the clocks. */
#include "test_util.h"

#include <string.h>

struct ok_case {
    const char *in;
    uint64_t want;
};

struct err_case {
    const char *in;
    int rc;
    const char *what; /* a substring sh_diag.what must contain */
};

static void test_time__duration_parses_units(void **state)
{
    static const struct ok_case cases[] = {
        {"250ms", 250},
        {"2s", 2000},
        {"1m", 60000},
        {"1h", 3600000},
        {"1m30s", 90000},
        {"1500us", 2},
        {"1000us", 1},
        {"1us", 1},
        {"0s", 0},
        {"0us", 0},
        {"0ms", 0},
        {"1h1m1s1ms", 3661001},
        {"90s", 90000},
        {"007s", 7000},
        {"1s500ms", 1500},
        {"1999us", 2},
        {"2000us", 2},
        {"5124095576h", 18446744073600000ull},
        {"18446744073709551615us", 18446744073709552ull}, /* rounds up, no wrap */
    };
    uint64_t ms;

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sh_diag d = {{0}, {0}};
        ms = 12345;
        int rc = sh_parse_duration_ms(slice_from_cstr(cases[i].in), &ms, &d);
        if (rc != 0 || ms != cases[i].want)
            fail_msg("duration '%s': rc %s, got %llu, want %llu (%s)", cases[i].in, sh_errname(rc),
                     (unsigned long long)ms, (unsigned long long)cases[i].want, d.what);
    }
    /* A NULL diag is allowed. */
    assert_int_equal(sh_parse_duration_ms(SLICE("3s"), &ms, NULL), 0);
    assert_int_equal(ms, 3000);
}

static void test_time__duration_errors_explain_themselves(void **state)
{
    static const struct err_case cases[] = {
        {"", SH_EPARSE, "empty"},
        {"5", SH_EPARSE, "missing unit"},
        {"ms", SH_EPARSE, "expected a number"},
        {"5x", SH_EPARSE, "unknown unit 'x'"},
        {"5sec", SH_EPARSE, "unknown unit 'sec'"},
        {"-1s", SH_EPARSE, "sign"},
        {"+1s", SH_EPARSE, "sign"},
        {"1.5s", SH_EPARSE, "fractions"},
        {" 5s", SH_EPARSE, "spaces"},
        {"5s ", SH_EPARSE, "spaces"},
        {"5 s", SH_EPARSE, "spaces"},
        {"1m30", SH_EPARSE, "missing unit"},
        {"99999999999999999999s", SH_ETOOBIG, "too large"},
        {"18446744073709551615s", SH_ETOOBIG, "too large"},
        {"5124095577h", SH_ETOOBIG, "too large"},
        {"18446744073709s1000ms", SH_ETOOBIG, "too large"}, /* each term fits, the sum wraps */
    };
    uint64_t ms;

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sh_diag d;
        memset(&d, 'z', sizeof(d)); /* the parser must terminate what it writes */
        ms = 12345;
        int rc = sh_parse_duration_ms(slice_from_cstr(cases[i].in), &ms, &d);
        if (rc != cases[i].rc)
            fail_msg("duration '%s': got %s, want %s", cases[i].in, sh_errname(rc),
                     sh_errname(cases[i].rc));
        assert_int_equal(ms, 0);
        assert_non_null(memchr(d.what, '\0', sizeof(d.what)));
        assert_non_null(memchr(d.where, '\0', sizeof(d.where)));
        if (!strstr(d.what, cases[i].what))
            fail_msg("duration '%s': message '%s' lacks '%s'", cases[i].in, d.what, cases[i].what);
        /* The message quotes the input so the user sees what was rejected. */
        if (cases[i].in[0] && !strstr(d.what, cases[i].in))
            fail_msg("duration '%s': message '%s' does not quote the input", cases[i].in, d.what);
    }
}

static void test_time__size_parses_units(void **state)
{
    static const struct ok_case cases[] = {
        {"512", 512},
        {"512B", 512},
        {"0", 0},
        {"64KiB", 65536},
        {"10MiB", 10485760},
        {"1GiB", 1073741824},
        {"1TiB", 1099511627776ull},
        {"1KB", 1000},
        {"3MB", 3000000},
        {"2GB", 2000000000},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551615B", UINT64_MAX},
        {"16777215TiB", 16777215ull * 1099511627776ull},
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sh_diag d = {{0}, {0}};
        v = 12345;
        int rc = sh_parse_size(slice_from_cstr(cases[i].in), &v, &d);
        if (rc != 0 || v != cases[i].want)
            fail_msg("size '%s': rc %s, got %llu, want %llu (%s)", cases[i].in, sh_errname(rc),
                     (unsigned long long)v, (unsigned long long)cases[i].want, d.what);
    }
}

static void test_time__size_errors_explain_themselves(void **state)
{
    static const struct err_case cases[] = {
        {"", SH_EPARSE, "empty"},
        {"64Ki", SH_EPARSE, "unknown unit 'Ki'"},
        {"64kib", SH_EPARSE, "unknown unit 'kib'"},
        {"KiB", SH_EPARSE, "expected a number"},
        {"1.5MiB", SH_EPARSE, "fractions"},
        {"5 KiB", SH_EPARSE, "spaces"},
        {" 5KiB", SH_EPARSE, "spaces"},
        {"-5KiB", SH_EPARSE, "sign"},
        {"1KiB1", SH_EPARSE, "junk"},
        {"1KiB2KiB", SH_EPARSE, "junk"},
        {"99999999999999999999", SH_ETOOBIG, "too large"},
        {"18446744073709551616", SH_ETOOBIG, "too large"},
        {"16777216TiB", SH_ETOOBIG, "too large"},
        {"17179869184GiB", SH_ETOOBIG, "too large"},
    };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sh_diag d;
        memset(&d, 'z', sizeof(d));
        v = 12345;
        int rc = sh_parse_size(slice_from_cstr(cases[i].in), &v, &d);
        if (rc != cases[i].rc)
            fail_msg("size '%s': got %s, want %s", cases[i].in, sh_errname(rc),
                     sh_errname(cases[i].rc));
        assert_int_equal(v, 0);
        assert_non_null(memchr(d.what, '\0', sizeof(d.what)));
        if (!strstr(d.what, cases[i].what))
            fail_msg("size '%s': message '%s' lacks '%s'", cases[i].in, d.what, cases[i].what);
    }
}

static void test_time__parsers_read_only_len_bytes(void **state)
{
    uint64_t v;

    (void)state;
    /* "2s" of "2sXYZ": the parser must stop at len, not at a NUL. */
    assert_int_equal(sh_parse_duration_ms((struct slice){"2sXYZ", 2}, &v, NULL), 0);
    assert_int_equal(v, 2000);
    assert_int_equal(sh_parse_size((struct slice){"64KiB!!", 5}, &v, NULL), 0);
    assert_int_equal(v, 65536);
}

static void test_time__format_duration_renders_components(void **state)
{
    static const struct {
        uint64_t ms;
        const char *want;
    } cases[] = {
        {0, "0ms"},        {1, "1ms"},
        {999, "999ms"},    {1000, "1s"},
        {1500, "1s500ms"}, {60000, "1m"},
        {90000, "1m30s"},  {3600000, "1h"},
        {3601000, "1h1s"}, {3661001, "1h1m1s1ms"},
        {86400000, "24h"},
    };
    char out[32];

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        memset(out, 'z', sizeof(out));
        assert_ptr_equal(sh_format_duration(cases[i].ms, out, sizeof(out)), out);
        assert_string_equal(out, cases[i].want);
    }
    /* The largest value fits in the promised 32 bytes. */
    sh_format_duration(UINT64_MAX, out, sizeof(out));
    assert_string_equal(out, "5124095576030h25m51s615ms");
}

static void test_time__format_duration_round_trips(void **state)
{
    char out[32];
    uint64_t x = 88172645463325252ull, ms, back;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        /* xorshift64 spread over several magnitudes */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ms = x >> (i % 40 + 20); /* up to 2^44 ms, well inside what the parser accepts */
        sh_format_duration(ms, out, sizeof(out));
        assert_int_equal(sh_parse_duration_ms(slice_from_cstr(out), &back, NULL), 0);
        if (back != ms)
            fail_msg("%llu -> '%s' -> %llu", (unsigned long long)ms, out, (unsigned long long)back);
    }
}

static void test_time__format_duration_truncates_safely(void **state)
{
    char out[8];

    (void)state;
    memset(out, 'z', sizeof(out));
    sh_format_duration(3661001, out, 4);
    assert_int_equal(strnlen(out, 4), 3); /* cut, and NUL-terminated within out_len */
    assert_int_equal(out[4], 'z');
    sh_format_duration(3661001, out, 1);
    assert_string_equal(out, "");
}

static void test_time__monotonic_clocks_do_not_go_backwards(void **state)
{
    uint64_t us = sh_now_us(), ms = sh_now_ms(), start_ms = ms;

    (void)state;
    for (int i = 0; i < 200000; i++) {
        uint64_t u = sh_now_us(), m = sh_now_ms();
        assert_true(u >= us);
        assert_true(m >= ms);
        us = u;
        ms = m;
    }
    /* The ms clock is the us clock scaled. */
    assert_true(sh_now_ms() >= start_ms);
    assert_true(sh_now_us() / 1000 >= sh_now_ms() - 1);
    /* The wall clock is after 2020-01-01. */
    assert_true(sh_wall_ms() > 1577836800000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_time__duration_parses_units),
        SH_TEST(test_time__duration_errors_explain_themselves),
        SH_TEST(test_time__size_parses_units),
        SH_TEST(test_time__size_errors_explain_themselves),
        SH_TEST(test_time__parsers_read_only_len_bytes),
        SH_TEST(test_time__format_duration_renders_components),
        SH_TEST(test_time__format_duration_round_trips),
        SH_TEST(test_time__format_duration_truncates_safely),
        SH_TEST(test_time__monotonic_clocks_do_not_go_backwards),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
