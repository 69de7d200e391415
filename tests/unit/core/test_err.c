/* SPDX-License-Identifier: MIT */
/* test_err.c: the error table (distinct codes, messages and names), the strerror fallback,
 * and parse diagnostics. */
#include "test_util.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

struct row {
    int code;
    const char *name, *msg;
};

static const struct row table[] = {
#define XX(name, value, msg) {SH_##name, "SH_" #name, msg},
    SH_ERRNO_MAP(XX)
#undef XX
};

static void test_err__codes_are_negative_and_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(table); i++) {
        assert_true(table[i].code < 0);
        for (size_t k = i + 1; k < SH_ARRAY_LEN(table); k++)
            assert_int_not_equal(table[i].code, table[k].code);
    }
}

static void test_err__every_code_has_its_own_message_and_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(table); i++) {
        const char *msg = sh_strerror(table[i].code), *name = sh_errname(table[i].code);
        assert_non_null(msg);
        assert_non_null(name);
        assert_string_equal(msg, table[i].msg);
        assert_string_equal(name, table[i].name);
        assert_true(strlen(msg) > 0);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(msg, sh_strerror(table[k].code)) == 0)
                fail_msg("%s and %s share the message '%s'", name, table[k].name, msg);
            assert_string_not_equal(name, sh_errname(table[k].code));
        }
    }
}

static void test_err__unknown_codes_fall_back_to_strerror(void **state)
{
    char want[256];

    (void)state;
    /* EACCES is not in the table: the system's text comes back. */
    snprintf(want, sizeof(want), "%s", strerror(EACCES));
    assert_string_equal(sh_strerror(-EACCES), want);
    assert_string_equal(sh_errname(-EACCES), "SH_E?");
    snprintf(want, sizeof(want), "%s", strerror(9999));
    assert_string_equal(sh_strerror(-9999), want);
    assert_string_equal(sh_errname(-9999), "SH_E?");
    /* Extremes must not overflow when negated (UBSan would abort). */
    assert_non_null(sh_strerror(INT_MIN));
    assert_true(strlen(sh_strerror(INT_MIN)) > 0);
    assert_string_equal(sh_errname(INT_MIN), "SH_E?");
    assert_non_null(sh_strerror(INT_MAX));
}

static void test_err__zero_is_success(void **state)
{
    (void)state;
    assert_string_equal(sh_strerror(0), "success");
    assert_string_equal(sh_errname(0), "OK");
}

static void test_err__diag_set_formats_where_and_what(void **state)
{
    struct sh_diag d;

    (void)state;
    memset(&d, 'z', sizeof(d));
    sh_diag_set(&d, "shoal.yaml:3:7", "unknown key '%s'", "listn");
    assert_string_equal(d.where, "shoal.yaml:3:7");
    assert_string_equal(d.what, "unknown key 'listn'");
    sh_diag_set(&d, NULL, "no where");
    assert_string_equal(d.where, "");
    assert_string_equal(d.what, "no where");
    sh_diag_set(NULL, "x", "ignored %d", 1); /* NULL diag is a no-op */
}

static void test_err__diag_set_truncates_with_nul(void **state)
{
    struct sh_diag d;
    char longw[300], longm[400];

    (void)state;
    memset(longw, 'w', sizeof(longw) - 1);
    longw[sizeof(longw) - 1] = '\0';
    memset(longm, 'm', sizeof(longm) - 1);
    longm[sizeof(longm) - 1] = '\0';
    memset(&d, 'z', sizeof(d));
    sh_diag_set(&d, longw, "%s", longm);
    assert_int_equal(strnlen(d.where, sizeof(d.where)), sizeof(d.where) - 1);
    assert_int_equal(strnlen(d.what, sizeof(d.what)), sizeof(d.what) - 1);
    assert_int_equal(d.where[0], 'w');
    assert_int_equal(d.what[sizeof(d.what) - 2], 'm');
    /* Exactly at the edge: 159 bytes fit, 160 are cut by one. */
    longm[159] = '\0';
    sh_diag_set(&d, "", "%s", longm);
    assert_int_equal(strlen(d.what), 159);
    longm[159] = 'm';
    longm[160] = '\0';
    sh_diag_set(&d, "", "%s", longm);
    assert_int_equal(strlen(d.what), 159);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_err__codes_are_negative_and_distinct),
        SH_TEST(test_err__every_code_has_its_own_message_and_name),
        SH_TEST(test_err__unknown_codes_fall_back_to_strerror),
        SH_TEST(test_err__zero_is_success),
        SH_TEST(test_err__diag_set_formats_where_and_what),
        SH_TEST(test_err__diag_set_truncates_with_nul),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
