/* SPDX-License-Identifier: MIT */
/* test_addr.c: the address parser (addr.c) every listener and client goes through: what
 * listeners and clients accept, the wildcards ("[::]" stays "::", not "::1"), and errors
 * that name the text. Pure parsing: no socket is opened. */
#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

struct ok_case {
    const char *in;
    const char *want; /* sh_addr_format of the result */
};

struct err_case {
    const char *in;
    const char *what; /* a substring sh_diag.what must contain */
};

static void check_ok(const struct ok_case *c, size_t n, bool is_listen)
{
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        struct sh_diag d = {{0}, {0}};
        char text[64];
        int rc = is_listen ? sh_listen_parse(c[i].in, &ss, &d) : sh_addr_parse(c[i].in, &ss, &d);
        if (rc != 0) fail_msg("'%s': rc %s (%s)", c[i].in, sh_errname(rc), d.what);
        if (strcmp(sh_addr_format(&ss, text, sizeof(text)), c[i].want) != 0)
            fail_msg("'%s': got %s, want %s", c[i].in, text, c[i].want);
    }
}

static void check_err(const struct err_case *c, size_t n, bool is_listen)
{
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        struct sh_diag d = {{0}, {0}};
        int rc = is_listen ? sh_listen_parse(c[i].in, &ss, &d) : sh_addr_parse(c[i].in, &ss, &d);
        if (rc != SH_EPARSE)
            fail_msg("'%s': rc %s, want SH_EPARSE", c[i].in ? c[i].in : "(null)", sh_errname(rc));
        if (!strstr(d.what, c[i].what))
            fail_msg("'%s': message '%s' lacks '%s'", c[i].in ? c[i].in : "(null)", d.what,
                     c[i].what);
        if (c[i].in && *c[i].in && !strstr(d.what, c[i].in))
            fail_msg("'%s': message '%s' does not name the text", c[i].in, d.what);
        assert_int_equal(ss.ss_family, 0);
    }
}

static void test_addr__listen_forms(void **state)
{
    static const struct ok_case cases[] = {
        {"127.0.0.1:8080", "127.0.0.1:8080"},
        {"10.1.2.3:1", "10.1.2.3:1"},
        {"[::1]:8080", "[::1]:8080"},
        {"[::]:8080", "[::]:8080"}, /* the IPv6 wildcard, not ::1 */
        {"[fe80::1]:65535", "[fe80::1]:65535"},
        {":8080", "0.0.0.0:8080"},
        {"*:8080", "0.0.0.0:8080"},
        {"0.0.0.0:8080", "0.0.0.0:8080"},
        {"localhost:8080", "127.0.0.1:8080"},
        {"8080", "127.0.0.1:8080"},
        {"127.0.0.1:0", "127.0.0.1:0"}, /* any free port */
        {"[::]:0", "[::]:0"},
    };

    (void)state;
    check_ok(cases, SH_ARRAY_LEN(cases), true);
}

static void test_addr__ipv6_wildcard_is_in6addr_any(void **state)
{
    struct sockaddr_storage ss;
    struct sh_diag d = {{0}, {0}};

    (void)state;
    assert_int_equal(sh_listen_parse("[::]:7700", &ss, &d), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, &in6addr_any,
                        sizeof(in6addr_any));
    assert_int_equal(sh_addr_port(&ss), 7700);
    assert_true(sh_addr_is_wildcard(&ss));
    sh_addr_loopback_for(&ss);
    assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, &in6addr_loopback,
                        sizeof(in6addr_loopback));
    assert_false(sh_addr_is_wildcard(&ss));

    assert_int_equal(sh_listen_parse("*:7700", &ss, &d), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_true(sh_addr_is_wildcard(&ss));
    sh_addr_loopback_for(&ss);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    sh_addr_set_port(&ss, 9);
    assert_int_equal(sh_addr_port(&ss), 9);

    assert_int_equal(sh_listen_parse("127.0.0.2:1", &ss, &d), 0);
    assert_false(sh_addr_is_wildcard(&ss));
}

static void test_addr__listen_errors_name_the_text(void **state)
{
    static const struct err_case cases[] = {
        {NULL, "empty"},
        {"", "empty"},
        {"127.0.0.1:", "port is missing"},
        {"[::1]:", "port is missing"},
        {"127.0.0.1:65536", "from 1 to 65535"},
        {"127.0.0.1:99999999999999999999999", "from 1 to 65535"},
        {"127.0.0.1:-1", "from 1 to 65535"},
        {"127.0.0.1:80x", "from 1 to 65535"},
        {"127.0.0.1: 80", "from 1 to 65535"},
        {"http", "port is missing"},
        {"127.0.0.1", "port is missing"},
        {"example.com:80", "numeric IPv4"},
        {"256.0.0.1:80", "numeric IPv4"},
        {"::1:80", "in brackets"},
        {"[::1]80", "expected [IPv6]:PORT"},
        {"[::1", "expected [IPv6]:PORT"},
        {"[]:80", "empty"},
        {"[127.0.0.1]:80", "not a numeric IPv6"},
        {"[zz::1]:80", "not a numeric IPv6"},
        {"**:80", "numeric IPv4"},
    };

    (void)state;
    check_err(cases, SH_ARRAY_LEN(cases), true);
}

static void test_addr__connect_forms_and_errors(void **state)
{
    static const struct ok_case ok[] = {
        {"127.0.0.1:8080", "127.0.0.1:8080"}, {"[::1]:8080", "[::1]:8080"},
        {":8080", "127.0.0.1:8080"}, /* to connect, ":PORT" is this machine */
        {"8080", "127.0.0.1:8080"},           {"localhost:80", "127.0.0.1:80"},
    };
    static const struct err_case bad[] = {
        {"127.0.0.1:0", "port 0"},         {"*:80", "'*'"},
        {"0.0.0.0:80", "wildcard"},        {"[::]:80", "wildcard"},
        {"127.0.0.1:", "port is missing"}, {"127.0.0.1:70000", "from 1 to 65535"},
    };

    (void)state;
    check_ok(ok, SH_ARRAY_LEN(ok), false);
    check_err(bad, SH_ARRAY_LEN(bad), false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_addr__listen_forms),
        SH_TEST(test_addr__ipv6_wildcard_is_in6addr_any),
        SH_TEST(test_addr__listen_errors_name_the_text),
        SH_TEST(test_addr__connect_forms_and_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
