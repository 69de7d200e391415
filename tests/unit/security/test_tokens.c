/* SPDX-License-Identifier: MIT */
/* test_tokens.c: the token decision (sec_authorize) as a table, the token table (create,
 * verify, revoke, the root token, tokens kept across a reopen of the store, ephemeral ones not),
 * and the audit log (lines, filters, rotation, no secrets). */
#include "store/store_fixture.h"

#include "security/security.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define ROOT "0123456789abcdef-root-token"

static struct sec_token tok(enum sec_scope scope, const char *prefix, uint64_t expires)
{
    struct sec_token t = {.id = "0011223344556677", .scope = scope, .expires_ms = expires};

    snprintf(t.prefix, sizeof(t.prefix), "%s", prefix);
    return t;
}

static void test_authorize__table(void **state)
{
    struct sec_token r = tok(SEC_SCOPE_READ, "", 0), w = tok(SEC_SCOPE_WRITE, "", 0),
                     a = tok(SEC_SCOPE_ADMIN, "", 0), exp = tok(SEC_SCOPE_ADMIN, "", 1000),
                     pr = tok(SEC_SCOPE_READ, "config/greeter/", 0),
                     inst = tok(SEC_SCOPE_READ, "config/greeter/", 0),
                     inst_exp = tok(SEC_SCOPE_READ, "config/greeter/", 1000);
    inst.may_ingest = inst_exp.may_ingest = true;
    struct {
        const struct sec_token *t;
        struct sec_request rq;
        bool allow;
        int status;
        const char *why;
    } cases[] = {
        {NULL, {.need = SEC_NEED_NONE}, true, 0, NULL},
        {NULL, {.need = SEC_NEED_READ}, false, 401, "a token is required"},
        {&r, {.need = SEC_NEED_READ}, true, 0, NULL},
        {&r, {.need = SEC_NEED_WRITE}, false, 403, "scope 'read'; this route needs 'write'"},
        {&w, {.need = SEC_NEED_WRITE}, true, 0, NULL},
        {&w, {.need = SEC_NEED_ADMIN}, false, 403, "needs 'admin'"},
        {&a, {.need = SEC_NEED_ADMIN}, true, 0, NULL},
        {&exp, {.need = SEC_NEED_READ}, false, 401, "has expired"},
        /* a prefix token: its keys only, nothing else */
        {&pr,
         {.need = SEC_NEED_READ, .is_keyed = true, .key = SLICE("config/greeter/style")},
         true,
         0,
         NULL},
        {&pr,
         {.need = SEC_NEED_READ, .is_keyed = true, .key = SLICE("config/names/db")},
         false,
         403,
         "only use config keys under 'config/greeter/'"},
        {&pr,
         {.need = SEC_NEED_READ, .is_keyed = true, .key = SLICE("config/greeter")},
         false,
         403,
         NULL},
        {&pr,
         {.need = SEC_NEED_READ, .is_keyed = true, .is_prefix = true, .key = SLICE("config/")},
         false,
         403,
         NULL},
        {&pr,
         {.need = SEC_NEED_READ,
          .is_keyed = true,
          .is_prefix = true,
          .key = SLICE("config/greeter/")},
         true,
         0,
         NULL},
        {&pr, {.need = SEC_NEED_READ}, false, 403, "only use config keys"},
        {&pr,
         {.need = SEC_NEED_WRITE, .is_keyed = true, .key = SLICE("config/greeter/x")},
         false,
         403,
         "scope 'read'"},
        /* span ingest: an instance's token may, a prefix or read token without it may not */
        {&inst, {.need = SEC_NEED_WRITE, .is_ingest = true}, true, 0, NULL},
        {&pr, {.need = SEC_NEED_WRITE, .is_ingest = true}, false, 403, "scope 'read'"},
        {&r, {.need = SEC_NEED_WRITE, .is_ingest = true}, false, 403, "scope 'read'"},
        {&w, {.need = SEC_NEED_WRITE, .is_ingest = true}, true, 0, NULL},
        {&inst_exp, {.need = SEC_NEED_WRITE, .is_ingest = true}, false, 401, "has expired"},
        /* ... and nothing else beyond its keys */
        {&inst, {.need = SEC_NEED_WRITE}, false, 403, "scope 'read'"},
        {&inst, {.need = SEC_NEED_READ}, false, 403, "only use config keys"},
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sec_decision dec;
        sec_authorize(cases[i].t, &cases[i].rq, 5000, &dec);
        if (dec.allow != cases[i].allow) fail_msg("case %zu: allow=%d (%s)", i, dec.allow, dec.why);
        if (!dec.allow) assert_int_equal(dec.status, cases[i].status);
        if (cases[i].why && !strstr(dec.why, cases[i].why))
            fail_msg("case %zu: '%s' lacks '%s'", i, dec.why, cases[i].why);
    }
}

static void test_authorize__secrets(void **state)
{
    struct sec_token r = tok(SEC_SCOPE_READ, "", 0), w = tok(SEC_SCOPE_WRITE, "", 0),
                     a = tok(SEC_SCOPE_ADMIN, "", 0), pr = tok(SEC_SCOPE_READ, "config/db/", 0);
    (void)state;

    assert_false(sec_may_read_secrets(NULL));
    assert_false(sec_may_read_secrets(&r));
    assert_true(sec_may_read_secrets(&w));
    assert_true(sec_may_read_secrets(&a));
    assert_true(sec_may_read_secrets(&pr));
}

static void test_tokens__create_verify_revoke(void **state)
{
    struct store *st;
    struct sec_tokens *ts;
    struct sec_token t, e;
    struct sh_diag d = {{0}, {0}};
    char text[SEC_TOKEN_TEXT_LEN + 1], etext[SEC_TOKEN_TEXT_LEN + 1];
    const struct sec_token *got;
    size_t n;
    (void)state;

    assert_int_equal(store_open(&(struct store_config){.data_dir = dir}, &st, &d), 0);
    assert_int_equal(sec_tokens_open(st, "short", &ts, &d), SH_EINVAL);
    assert_int_equal(sec_tokens_open(st, ROOT, &ts, &d), 0);
    got = sec_tokens_verify(ts, SLICE(ROOT));
    assert_non_null(got);
    assert_string_equal(got->id, "root");
    assert_int_equal(got->scope, SEC_SCOPE_ADMIN);
    assert_null(sec_tokens_verify(ts, SLICE(ROOT "x")));
    assert_null(sec_tokens_verify(ts, SLICE("")));

    assert_int_equal(sec_token_create(ts,
                                      &(struct sec_token_spec){.scope = SEC_SCOPE_READ,
                                                               .prefix = "config/web/",
                                                               .name = "web",
                                                               .ttl_ms = 60000},
                                      1000, &t, text, sizeof(text), &d),
                     0);
    assert_int_equal(strlen(text), SEC_TOKEN_TEXT_LEN);
    assert_int_equal(strncmp(text, "shoal_", 6), 0);
    assert_int_equal(t.expires_ms, 61000);
    got = sec_tokens_verify(ts, slice_from_cstr(text));
    assert_non_null(got);
    assert_string_equal(got->id, t.id);
    assert_string_equal(got->prefix, "config/web/");
    /* one character off: refused, not taken for the root token either */
    text[SEC_TOKEN_TEXT_LEN - 1] ^= 1;
    assert_null(sec_tokens_verify(ts, slice_from_cstr(text)));
    text[SEC_TOKEN_TEXT_LEN - 1] ^= 1;

    assert_int_equal(
        sec_token_create(ts,
                         &(struct sec_token_spec){.scope = SEC_SCOPE_READ, .is_ephemeral = true},
                         1000, &e, etext, sizeof(etext), &d),
        0);
    assert_non_null(sec_tokens_verify(ts, slice_from_cstr(etext)));
    sec_tokens_list(ts, &n);
    assert_int_equal(n, 3);

    /* bad input: nothing made */
    assert_int_equal(
        sec_token_create(ts, &(struct sec_token_spec){.scope = 7}, 0, &e, etext, sizeof(etext), &d),
        SH_EINVAL);
    assert_string_equal(d.where, "scope");
    assert_int_equal(
        sec_token_create(ts,
                         &(struct sec_token_spec){.scope = SEC_SCOPE_READ, .prefix = "has space"},
                         0, &e, etext, sizeof(etext), &d),
        SH_EINVAL);
    assert_string_equal(d.where, "prefix");
    sec_tokens_list(ts, &n);
    assert_int_equal(n, 3);

    /* across a reopen: the stored token stays, the ephemeral one does not */
    assert_int_equal(store_sync(st), 0);
    sec_tokens_free(ts);
    assert_int_equal(sec_tokens_open(st, ROOT, &ts, &d), 0);
    sec_tokens_list(ts, &n);
    assert_int_equal(n, 2);
    assert_non_null(sec_tokens_verify(ts, slice_from_cstr(text)));
    assert_null(sec_tokens_verify(ts, slice_from_cstr(etext)));

    assert_int_equal(sec_token_revoke(ts, "root"), SH_EPERM);
    assert_int_equal(sec_token_revoke(ts, "nope"), SH_ENOENT);
    assert_int_equal(sec_token_revoke(ts, t.id), 0);
    assert_null(sec_tokens_verify(ts, slice_from_cstr(text)));
    sec_tokens_free(ts);
    assert_int_equal(sec_tokens_open(st, ROOT, &ts, &d), 0);
    assert_null(sec_tokens_verify(ts, slice_from_cstr(text)));
    sec_tokens_free(ts);
    store_close(st);
}

static void test_audit__lines_filters_rotation(void **state)
{
    struct sec_audit *a;
    struct sh_diag d = {{0}, {0}};
    struct buf out = BUF_INIT(1 << 20);
    struct stat sb;
    char path[512];
    (void)state;

    assert_int_equal(sec_audit_open(dir, 600, &a, &d), 0);
    for (int i = 0; i < 6; i++) {
        struct sec_audit_entry e = {.time_ms = 1000 + (uint64_t)i,
                                    .token_id = i % 2 ? "aaaa" : "",
                                    .token_name = "n",
                                    .method = SLICE("PUT"),
                                    .path = SLICE("/v1/kv/config/x"),
                                    .status = 200,
                                    .peer = "127.0.0.1:1"};
        assert_int_equal(sec_audit_write(a, &e), 0);
    }
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(sb.st_size <= 600);
    snprintf(path, sizeof(path), "%s/audit.log.1", dir);
    assert_int_equal(stat(path, &sb), 0); /* rotated */

    assert_int_equal(sec_audit_query(a, 0, NULL, 0, &out), 0);
    assert_non_null(strstr(buf_slice(&out).ptr, "\"time_ms\":1005"));
    buf_reset(&out);
    assert_int_equal(sec_audit_query(a, 1004, "aaaa", 0, &out), 0);
    assert_non_null(strstr(out.data, "\"time_ms\":1005"));
    assert_null(strstr(out.data, "\"time_ms\":1003"));
    assert_null(strstr(out.data, "\"time_ms\":1004")); /* not aaaa's */
    buf_reset(&out);
    assert_int_equal(sec_audit_query(a, 0, NULL, 1, &out), 0);
    assert_null(strstr(out.data, "\"time_ms\":1004"));
    assert_non_null(strstr(out.data, "\"time_ms\":1005"));
    buf_release(&out);
    sec_audit_close(a);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_authorize__table),
        SH_TEST(test_authorize__secrets),
        STORE_TEST(test_tokens__create_verify_revoke),
        STORE_TEST(test_audit__lines_filters_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
