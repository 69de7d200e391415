/* SPDX-License-Identifier: MIT */
/* test_intentions.c: the intention decision as a table (precedence: exact caller, exact
 * destination, methods/paths, deny at a tie; the default), rule checks naming the field, and
 * the table: manifest rules replaced at each start with stable ids, API rules kept, changes
 * handed to the callback. */
#include "store/store_fixture.h"

#include "security/security.h"

#include <string.h>

static struct sec_intention rule(const char *from, const char *to, const char *action,
                                 const char *method, const char *path)
{
    struct sec_intention r;
    const char *m[] = {method}, *p[] = {path};
    struct sh_diag d = {{0}, {0}};

    assert_int_equal(
        sec_intention_make(from, to, action, m, method ? 1 : 0, p, path ? 1 : 0, &r, &d), 0);
    snprintf(r.id, sizeof(r.id), "%016zx", strlen(from) * 131 + strlen(to));
    return r;
}

static void test_decide__precedence(void **state)
{
    struct sec_intention rules[] = {
        rule("greeter", "names", "allow", NULL, NULL),
        rule("*", "names", "deny", NULL, NULL),
        rule("greeter", "names", "deny", "DELETE", NULL),
        rule("greeter", "names", "deny", NULL, "/admin"),
        rule("gateway", "*", "allow", NULL, NULL),
        rule("*", "*", "allow", "GET", "/health"),
    };
    struct sec_intentions *set;
    struct {
        const char *from, *to, *method, *path;
        bool allow;
        const char *why;
    } cases[] = {
        {"greeter", "names", "GET", "/list", true, "allow greeter -> names"},
        {"other", "names", "GET", "/list", false, "deny * -> names"},
        {"greeter", "names", "DELETE", "/x", false, "deny greeter -> names"},
        {"greeter", "names", "GET", "/admin/users", false, "deny greeter -> names"},
        {"gateway", "greeter", "POST", "/", true, "allow gateway -> *"},
        {"other", "greeter", "GET", "/", false, "default: deny"},
        {"unknown", "greeter", "GET", "/health", true, "allow * -> *"},
        {"unknown", "names", "GET", "/health", false, "deny * -> names"},
    };
    (void)state;

    assert_int_equal(sec_intentions_build(false, rules, SH_ARRAY_LEN(rules), &set), 0);
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sec_intention_decision dec;
        sec_intentions_decide(set, slice_from_cstr(cases[i].from), slice_from_cstr(cases[i].to),
                              slice_from_cstr(cases[i].method), slice_from_cstr(cases[i].path),
                              &dec);
        if (dec.allow != cases[i].allow || !strstr(dec.why, cases[i].why))
            fail_msg("case %zu: allow=%d why='%s', want %d '%s'", i, dec.allow, dec.why,
                     cases[i].allow, cases[i].why);
    }
    sh_free(set);
    /* no set: everything allowed; an empty allow-by-default set likewise */
    struct sec_intention_decision dec;
    sec_intentions_decide(NULL, SLICE("a"), SLICE("b"), SLICE("GET"), SLICE("/"), &dec);
    assert_true(dec.allow);
    assert_int_equal(sec_intentions_build(true, NULL, 0, &set), 0);
    sec_intentions_decide(set, SLICE("a"), SLICE("b"), SLICE("GET"), SLICE("/"), &dec);
    assert_true(dec.allow);
    assert_string_equal(dec.why, "default: allow");
    sh_free(set);
}

static void test_make__refusals_name_the_field(void **state)
{
    struct sec_intention r;
    struct sh_diag d = {{0}, {0}};
    const char *bad_m[] = {"FETCH"}, *bad_p[] = {"admin"};
    (void)state;

    assert_int_equal(sec_intention_make("Greeter", "names", "allow", NULL, 0, NULL, 0, &r, &d),
                     SH_EINVAL);
    assert_string_equal(d.where, "from");
    assert_int_equal(sec_intention_make("a", "Names!", "allow", NULL, 0, NULL, 0, &r, &d),
                     SH_EINVAL);
    assert_string_equal(d.where, "to");
    assert_int_equal(sec_intention_make("a", "b", "permit", NULL, 0, NULL, 0, &r, &d), SH_EINVAL);
    assert_string_equal(d.where, "action");
    assert_int_equal(sec_intention_make("a", "b", "deny", bad_m, 1, NULL, 0, &r, &d), SH_EINVAL);
    assert_string_equal(d.where, "methods");
    assert_int_equal(sec_intention_make("a", "b", "deny", NULL, 0, bad_p, 1, &r, &d), SH_EINVAL);
    assert_string_equal(d.where, "paths");
}

static int changes;
static bool last_default;
static void on_change(void *data, const struct sec_intentions *set)
{
    (void)data;
    changes++;
    last_default = set->default_allow;
}

static void test_table__manifest_and_api_rules(void **state)
{
    struct store *st;
    struct sec_itable *t;
    struct sh_diag d = {{0}, {0}};
    struct sec_intention m[] = {rule("greeter", "names", "allow", NULL, NULL)}, got, api;
    char manifest_id[SEC_TOKEN_ID_LEN + 1];
    (void)state;

    assert_int_equal(store_open(&(struct store_config){.data_dir = dir}, &st, &d), 0);
    changes = 0;
    assert_int_equal(sec_itable_open(st, false, m, 1, on_change, NULL, &t, &d), 0);
    assert_int_equal(changes, 1);
    assert_false(last_default);
    snprintf(manifest_id, sizeof(manifest_id), "%s", sec_itable_current(t)->items[0].id);
    assert_int_equal(sec_itable_add(t, &m[0], 5, &got), SH_EEXIST); /* the same rule */
    api = rule("*", "names", "deny", "POST", NULL);
    assert_int_equal(sec_itable_add(t, &api, 5, &got), 0);
    assert_int_equal(changes, 2);
    assert_int_equal(sec_itable_current(t)->count, 2);
    assert_int_equal(sec_itable_remove(t, manifest_id), SH_EPERM);
    assert_int_equal(sec_itable_remove(t, "0000000000000000"), SH_ENOENT);
    assert_int_equal(store_sync(st), 0);
    sec_itable_free(t);

    /* the next start: a manifest without the rule; the API's rule stays, with its id */
    assert_int_equal(sec_itable_open(st, true, NULL, 0, on_change, NULL, &t, &d), 0);
    assert_int_equal(sec_itable_current(t)->count, 1);
    assert_string_equal(sec_itable_current(t)->items[0].id, got.id);
    assert_true(last_default);
    assert_int_equal(sec_itable_remove(t, got.id), 0);
    assert_int_equal(sec_itable_current(t)->count, 0);
    sec_itable_free(t);
    /* and the manifest rule comes back with the same id */
    assert_int_equal(sec_itable_open(st, false, m, 1, NULL, NULL, &t, &d), 0);
    assert_string_equal(sec_itable_current(t)->items[0].id, manifest_id);
    sec_itable_free(t);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_decide__precedence),
        SH_TEST(test_make__refusals_name_the_field),
        STORE_TEST(test_table__manifest_and_api_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
