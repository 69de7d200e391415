/* SPDX-License-Identifier: MIT */
/* test_route.c: route matching (paths, globs, hosts, methods, headers) on parsed heads. */
#include "test_util.h"

#include "proxy/proxy.h"
#include "supervisor/supervisor.h"

#include <string.h>

/* Parses one request head into p (kept by the caller). */
static void parse(struct http_parser *p, const char *raw)
{
    size_t used;

    assert_int_equal(http_parser_init(p, HTTP_REQUEST, NULL), 0);
    assert_int_equal(http_parser_feed(p, raw, strlen(raw), &used), HTTP_HEAD);
}

static struct proxy_config *load(const char *yaml)
{
    struct sh_doc *doc;
    struct proxy_config *cfg;
    struct sh_diag d;

    assert_int_equal(manifest_read_buf("t.yaml", yaml, strlen(yaml), &doc, &d), 0);
    if (proxy_config_from_doc(doc, NULL, &cfg, &d) != 0) fail_msg("%s: %s", d.where, d.what);
    sh_doc_free(doc);
    return cfg;
}

static const char *route_for(const struct proxy_config *cfg, const char *raw)
{
    struct http_parser p;
    const struct proxy_route *r;

    parse(&p, raw);
    r = proxy_route_match(cfg, &p.head);
    http_parser_release(&p);
    return r ? r->name : "(none)";
}

static void test_route__glob_semantics(void **state)
{
    (void)state;
    assert_true(proxy_glob_match("/a/*/c", SLICE("/a/b/c")));
    assert_false(proxy_glob_match("/a/*/c", SLICE("/a/b/x/c")));
    assert_true(proxy_glob_match("/a/**/c", SLICE("/a/b/x/c")));
    assert_true(proxy_glob_match("/a/**", SLICE("/a/")));
    assert_true(proxy_glob_match("/img/*.png", SLICE("/img/cat.png")));
    assert_false(proxy_glob_match("/img/*.png", SLICE("/img/cat.jpg")));
    assert_true(proxy_glob_match("/v?/x", SLICE("/v1/x")));
    assert_false(proxy_glob_match("/v?/x", SLICE("/v/x")));
    assert_false(proxy_glob_match("/v?", SLICE("/v/")));
    assert_true(proxy_glob_match("*", SLICE("")));
    assert_false(proxy_glob_match("/a", SLICE("/ab")));
}

static void test_route__first_match_wins_in_order(void **state)
{
    struct proxy_config *cfg =
        load("clusters: [{name: c, endpoints: [127.0.0.1:1]}]\n"
             "routes:\n"
             "  - {name: exact, match: {path: /a}, cluster: c}\n"
             "  - {name: post, match: {prefix: /a, methods: [POST]}, cluster: c}\n"
             "  - {name: host, match: {prefix: /, host: '*.example.com'}, cluster: c}\n"
             "  - {name: hdr, match: {prefix: /h, headers: {X-A: '1', X-B: ~}}, cluster: c}\n"
             "  - {name: glob, match: {glob: /g/*/z}, cluster: c}\n"
             "  - {name: any, cluster: c}\n");

    (void)state;
    assert_string_equal(route_for(cfg, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), "exact");
    assert_string_equal(route_for(cfg, "GET /a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"), "exact");
    assert_string_equal(route_for(cfg, "POST /ab HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
                        "post");
    assert_string_equal(route_for(cfg, "GET /ab HTTP/1.1\r\nHost: API.Example.com:8080\r\n\r\n"),
                        "host");
    assert_string_equal(route_for(cfg, "GET /ab HTTP/1.1\r\nHost: example.com\r\n\r\n"), "any");
    assert_string_equal(route_for(cfg, "GET /h HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: q\r\n\r\n"),
                        "hdr");
    assert_string_equal(route_for(cfg, "GET /h HTTP/1.1\r\nHost: x\r\nX-A: 2\r\nX-B: q\r\n\r\n"),
                        "any");
    assert_string_equal(route_for(cfg, "GET /h HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n"), "any");
    assert_string_equal(route_for(cfg, "GET /g/y/z HTTP/1.1\r\nHost: x\r\n\r\n"), "glob");
    /* absolute-form: the path inside the URI is matched, the authority is the host */
    assert_string_equal(route_for(cfg, "GET http://b.example.com/a HTTP/1.1\r\nHost: x\r\n\r\n"),
                        "exact");
    assert_string_equal(route_for(cfg, "GET http://b.example.com/zz HTTP/1.1\r\nHost: x\r\n\r\n"),
                        "host");
    proxy_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_route__glob_semantics),
        SH_TEST(test_route__first_match_wins_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
