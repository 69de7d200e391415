/* SPDX-License-Identifier: MIT */
/* test_identity.c: the mesh's caller decision (identity.c) as a plain function: a table of
 * credentials, a Proxy-Authorization value, a verdict. No sockets. */
#include "test_util.h"

#include "proxy/proxy.h"

#include <string.h>

static const struct proxy_caller callers[] = {
    {.user = "greeter.1",
     .secret = "0123456789abcdef0123456789abcdef",
     .service = "greeter",
     .instance = "greeter-1"},
    {.user = "names.2",
     .secret = "ffffffffffffffffffffffffffffffff",
     .service = "names",
     .instance = "names-2"},
    {.user = "api.10", .secret = "s3cret", .service = "api", .instance = "api-10"},
};

static void decide(const struct proxy_callers *t, enum proxy_identity_mode mode, uint32_t nfields,
                   const char *value, struct proxy_identity_decision *out)
{
    struct proxy_identity_input in = {
        .mode = mode, .callers = t, .nfields = nfields, .value = slice_from_cstr(value)};

    proxy_identity_decide(&in, out);
}

static struct proxy_callers *table(void)
{
    struct proxy_callers *t;

    assert_int_equal(proxy_callers_new(callers, SH_ARRAY_LEN(callers), &t), 0);
    assert_int_equal(proxy_callers_count(t), 3);
    return t;
}

/* base64("greeter.1:0123456789abcdef0123456789abcdef"), as curl sends it */
#define GREETER_OK "Basic Z3JlZXRlci4xOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"

static void test_identity__valid_credential_names_the_caller(void **state)
{
    struct proxy_callers *t = table();
    struct proxy_identity_decision d;
    (void)state;

    decide(t, PROXY_IDENTITY_REQUIRED, 1, GREETER_OK, &d);
    assert_int_equal(d.verdict, PROXY_CALLER_KNOWN);
    assert_true(d.serve);
    assert_string_equal(d.who->service, "greeter");
    assert_string_equal(d.who->instance, "greeter-1");
    assert_null(d.problem);
    /* the scheme is case-insensitive, spaces around the value are not part of it */
    decide(t, PROXY_IDENTITY_OPTIONAL, 1,
           "  basic   Z3JlZXRlci4xOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm ", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_KNOWN);
    /* base64("api.10:s3cret") needs padding; without it, too */
    decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic YXBpLjEwOnMzY3JldA==", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_KNOWN);
    assert_string_equal(d.who->instance, "api-10");
    decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic YXBpLjEwOnMzY3JldA", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_KNOWN);
    proxy_callers_free(t);
}

static void test_identity__optional_serves_unknown_required_refuses(void **state)
{
    struct proxy_callers *t = table();
    struct proxy_identity_decision d;
    (void)state;

    decide(t, PROXY_IDENTITY_OPTIONAL, 0, "", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_NONE);
    assert_true(d.serve);
    assert_null(d.who);
    assert_non_null(d.problem);
    decide(t, PROXY_IDENTITY_REQUIRED, 0, "", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_NONE);
    assert_false(d.serve);
    /* off: nothing is looked at, even a valid credential */
    decide(t, PROXY_IDENTITY_OFF, 1, GREETER_OK, &d);
    assert_int_equal(d.verdict, PROXY_CALLER_NONE);
    assert_true(d.serve);
    assert_null(d.who);
    proxy_callers_free(t);
}

static void test_identity__wrong_secret_and_unknown_user(void **state)
{
    struct proxy_callers *t = table();
    struct proxy_identity_decision d;
    (void)state;

    /* greeter.1:0123456789abcdef0123456789abcdee (last digit differs) */
    decide(t, PROXY_IDENTITY_REQUIRED, 1,
           "Basic Z3JlZXRlci4xOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVl", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_BAD_SECRET);
    assert_false(d.serve);
    assert_null(d.who);
    /* a prefix of the secret is not the secret: api.10:s3cre */
    decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic YXBpLjEwOnMzY3Jl", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_BAD_SECRET);
    /* nor is the secret with more after it: api.10:s3cretX */
    decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic YXBpLjEwOnMzY3JldFg=", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_BAD_SECRET);
    /* greeter.2:0123456789abcdef0123456789abcdef: no such instance (it exited) */
    decide(t, PROXY_IDENTITY_OPTIONAL, 1,
           "Basic Z3JlZXRlci4yOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm", &d);
    assert_int_equal(d.verdict, PROXY_CALLER_UNKNOWN_USER);
    assert_true(d.serve);
    /* a user that sorts between two others, and one that is a prefix of another */
    decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic aDp4", &d); /* h:x */
    assert_int_equal(d.verdict, PROXY_CALLER_UNKNOWN_USER);
    decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic YXBpLjE6czNjcmV0", &d); /* api.1:s3cret */
    assert_int_equal(d.verdict, PROXY_CALLER_UNKNOWN_USER);
    /* no table published yet: everyone is unknown */
    decide(NULL, PROXY_IDENTITY_REQUIRED, 1, GREETER_OK, &d);
    assert_int_equal(d.verdict, PROXY_CALLER_UNKNOWN_USER);
    proxy_callers_free(t);
}

static void test_identity__malformed_values(void **state)
{
    static const char *const bad[] = {
        "Bearer Z3JlZXRlci4xOmFiYw==", /* not Basic */
        "Basic",                       /* no credential */
        "Basic ",                      /* empty credential */
        "Basic Z3JlZXRlci4x",          /* "greeter.1": no ':' */
        "Basic Z3JlZXRlci4xOmFiYw=*",  /* a character outside base64 */
        "Basic Z3JlZXRlci4xOmFiY===",  /* three '=' */
        "Basic Z",                     /* one lone character */
        "Basic Z3JlZXRlci4xOmFiYw==Z", /* data after the padding */
        "Basic%20Z3JlZXRlci4xOmFiYw==",
    };
    struct proxy_callers *t = table();
    struct proxy_identity_decision d;
    char big[PROXY_CALLER_MAX_AUTH_BYTES + 64];
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(bad); i++) {
        decide(t, PROXY_IDENTITY_REQUIRED, 1, bad[i], &d);
        if (d.verdict != PROXY_CALLER_MALFORMED) fail_msg("'%s': verdict %d", bad[i], d.verdict);
        assert_false(d.serve);
        assert_non_null(d.problem);
    }
    /* sent twice: refused even when the first is right (which one would a proxy believe?) */
    decide(t, PROXY_IDENTITY_REQUIRED, 2, GREETER_OK, &d);
    assert_int_equal(d.verdict, PROXY_CALLER_MALFORMED);
    /* over the limit: refused before decoding */
    memcpy(big, "Basic ", 6);
    memset(big + 6, 'A', sizeof(big) - 7);
    big[sizeof(big) - 1] = '\0';
    decide(t, PROXY_IDENTITY_OPTIONAL, 1, big, &d);
    assert_int_equal(d.verdict, PROXY_CALLER_MALFORMED);
    assert_true(d.serve);
    /* a credential that decodes past the buffer (user of 300 bytes) is malformed, not a crash */
    {
        char raw[320], enc[6 + 440];
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t o = 6;
        memset(raw, 'u', 300);
        raw[300] = ':';
        raw[301] = 'x';
        memcpy(enc, "Basic ", 6);
        for (size_t i = 0; i < 302; i += 3) {
            uint32_t v = (uint32_t)(unsigned char)raw[i] << 16 |
                         (uint32_t)(unsigned char)raw[i + 1] << 8 | (unsigned char)raw[i + 2];
            enc[o++] = b64[v >> 18 & 63];
            enc[o++] = b64[v >> 12 & 63];
            enc[o++] = b64[v >> 6 & 63];
            enc[o++] = b64[v & 63];
        }
        enc[o] = '\0';
        decide(t, PROXY_IDENTITY_REQUIRED, 1, enc, &d);
        assert_int_equal(d.verdict, PROXY_CALLER_MALFORMED);
    }
    proxy_callers_free(t);
}

static void test_identity__table_rejects_bad_entries(void **state)
{
    struct proxy_caller twice[] = {callers[0], callers[0]};
    struct proxy_caller empty = callers[1];
    struct proxy_callers *t = (struct proxy_callers *)1;
    (void)state;

    assert_int_equal(proxy_callers_new(twice, 2, &t), SH_EINVAL);
    assert_null(t);
    empty.secret = "";
    assert_int_equal(proxy_callers_new(&empty, 1, &t), SH_EINVAL);
    assert_int_equal(proxy_callers_new(NULL, 0, &t), 0);
    assert_int_equal(proxy_callers_count(t), 0);
    proxy_callers_free(t);
    proxy_callers_free(NULL);
    /* the table copies: the caller's strings may go */
    {
        char user[] = "x.1", secret[] = "abc";
        struct proxy_caller c = {.user = user, .secret = secret, .service = "x", .instance = "x-1"};
        struct proxy_identity_decision d;
        assert_int_equal(proxy_callers_new(&c, 1, &t), 0);
        memset(user, 0, sizeof(user));
        memset(secret, 0, sizeof(secret));
        decide(t, PROXY_IDENTITY_REQUIRED, 1, "Basic eC4xOmFiYw==", &d); /* x.1:abc */
        assert_int_equal(d.verdict, PROXY_CALLER_KNOWN);
        proxy_callers_free(t);
    }
}

/* Out of memory at every allocation of a table: SH_ENOMEM, nothing leaked. */
static void test_identity__table_oom(void **state)
{
    struct proxy_callers *t;
    (void)state;

    for (long n = 1; n < 10; n++) {
        sh_alloc_fail_after(n);
        int rc = proxy_callers_new(callers, SH_ARRAY_LEN(callers), &t);
        sh_alloc_fail_after(0);
        if (rc == 0) {
            proxy_callers_free(t);
            break;
        }
        assert_int_equal(rc, SH_ENOMEM);
        assert_null(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_identity__valid_credential_names_the_caller),
        SH_TEST(test_identity__optional_serves_unknown_required_refuses),
        SH_TEST(test_identity__wrong_secret_and_unknown_user),
        SH_TEST(test_identity__malformed_values),
        SH_TEST(test_identity__table_rejects_bad_entries),
        SH_TEST(test_identity__table_oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
