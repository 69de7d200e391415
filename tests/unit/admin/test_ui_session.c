/* SPDX-License-Identifier: MIT */
/* test_ui_session.c: the dashboard's session table as plain functions: a session is found by
 * its id until it expires (or with its token), ids and CSRF values are distinct and checked
 * whole, a full table drops expired entries first and then the oldest, logout removes one, and
 * the Cookie header is read by name. */
#include "test_util.h"

#include "admin/admin_int.h"

#include <string.h>

static void fill(uint8_t *rnd, uint8_t seed)
{
    for (size_t i = 0; i < ADMIN_SESSION_RANDOM_BYTES; i++)
        rnd[i] = (uint8_t)(seed * 31u + i * 7u + 1u);
}

static void test_add_find_expire(void **state)
{
    static struct admin_sessions t;
    uint8_t rnd[ADMIN_SESSION_RANDOM_BYTES];
    const struct admin_session *s;

    (void)state;
    memset(&t, 0, sizeof(t));
    fill(rnd, 1);
    s = admin__session_add(&t, "root", 0, rnd, 1000);
    assert_int_equal(strlen(s->sid), 2 * ADMIN_SESSION_ID_BYTES);
    assert_string_not_equal(s->sid, s->csrf);
    assert_string_equal(s->token_id, "root");
    assert_ptr_equal(admin__session_find(&t, slice_from_cstr(s->sid), 2000), s);
    assert_null(admin__session_find(&t, slice_from_cstr(s->sid), 1000 + ADMIN_SESSION_TTL_MS));
    /* a prefix or an extension of the id, or the CSRF value, is not the id */
    assert_null(admin__session_find(&t, (struct slice){s->sid, 47}, 2000));
    assert_null(admin__session_find(&t, slice_from_cstr(s->csrf), 2000));
    assert_true(admin__session_csrf_ok(s, slice_from_cstr(s->csrf)));
    assert_false(admin__session_csrf_ok(s, slice_from_cstr(s->sid)));
    assert_false(admin__session_csrf_ok(s, SLICE("")));
    assert_false(admin__session_csrf_ok(NULL, slice_from_cstr(s->csrf)));
    /* a token that expires sooner ends the session sooner */
    fill(rnd, 2);
    s = admin__session_add(&t, "abcdef0123456789", 5000, rnd, 1000);
    assert_int_equal(s->expires_ms, 5000);
    assert_null(admin__session_find(&t, slice_from_cstr(s->sid), 5000));
}

static void test_bounded_and_remove(void **state)
{
    static struct admin_sessions t;
    uint8_t rnd[ADMIN_SESSION_RANDOM_BYTES];
    char first[2 * ADMIN_SESSION_ID_BYTES + 1], second[2 * ADMIN_SESSION_ID_BYTES + 1];
    const struct admin_session *s;

    (void)state;
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < ADMIN_SESSIONS_MAX; i++) {
        fill(rnd, (uint8_t)i);
        s = admin__session_add(&t, "root", 0, rnd, 1000 + i);
        if (i == 0) memcpy(first, s->sid, sizeof(first));
        if (i == 1) memcpy(second, s->sid, sizeof(second));
    }
    /* full: the oldest (the first) goes, the second stays */
    fill(rnd, 200);
    s = admin__session_add(&t, "root", 0, rnd, 5000);
    assert_null(admin__session_find(&t, slice_from_cstr(first), 6000));
    assert_non_null(admin__session_find(&t, slice_from_cstr(second), 6000));
    assert_non_null(admin__session_find(&t, slice_from_cstr(s->sid), 6000));
    /* logout */
    assert_true(admin__session_remove(&t, slice_from_cstr(second)));
    assert_false(admin__session_remove(&t, slice_from_cstr(second)));
    assert_null(admin__session_find(&t, slice_from_cstr(second), 6000));
}

static void test_cookie_get(void **state)
{
    struct slice v;

    (void)state;
    assert_true(
        admin__cookie_get(SLICE("a=1; shoal_session=abc; b=2"), SLICE("shoal_session"), &v));
    assert_true(slice_eq(v, SLICE("abc")));
    assert_true(admin__cookie_get(SLICE("shoal_session=x"), SLICE("shoal_session"), &v));
    assert_true(slice_eq(v, SLICE("x")));
    assert_false(
        admin__cookie_get(SLICE("xshoal_session=1; shoal_sessions=2"), SLICE("shoal_session"), &v));
    assert_null(v.ptr);
    assert_false(admin__cookie_get(SLICE(""), SLICE("shoal_session"), &v));
    assert_false(admin__cookie_get(SLICE(";;; =;"), SLICE("shoal_session"), &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_expire),
        cmocka_unit_test(test_bounded_and_remove),
        cmocka_unit_test(test_cookie_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
