/* SPDX-License-Identifier: MIT */
/* test_config.c: the gateway's YAML: defaults, derived values and the errors users see. */
#include "test_util.h"

#include "proxy/proxy.h"
#include "supervisor/supervisor.h"

#include <string.h>

static int load(const char *yaml, struct proxy_config **cfg, struct sh_diag *d)
{
    struct sh_doc *doc;
    int rc = manifest_read_buf("gw.yaml", yaml, strlen(yaml), &doc, d);

    if (rc < 0) return rc;
    rc = proxy_config_from_doc(doc, NULL, cfg, d);
    sh_doc_free(doc);
    return rc;
}

static void test_config__defaults_and_overrides(void **state)
{
    struct proxy_config *cfg;
    struct sh_diag d;

    (void)state;
    assert_int_equal(load("clusters:\n"
                          "  - name: a\n"
                          "    endpoints: [localhost:80, {address: '[::1]:81', weight: 3}]\n"
                          "    retry: {on: [5xx, 429], budget: 10%}\n"
                          "routes:\n"
                          "  - {match: {prefix: /}, cluster: a, timeouts: {per_try: 250ms}}\n",
                          &cfg, &d),
                     0);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_true(cfg->access_log);
    const struct proxy_cluster *c = &cfg->clusters[0];
    assert_string_equal(c->endpoints[0].name, "127.0.0.1:80");
    assert_string_equal(c->endpoints[1].name, "[::1]:81");
    assert_int_equal(c->endpoints[1].weight, 3);
    assert_int_equal(c->timeouts.per_try_ms, 15000);
    assert_int_equal(c->retry.on, PROXY_RETRY_5XX | PROXY_RETRY_STATUS);
    assert_int_equal(c->retry.statuses[0], 429);
    assert_true(c->retry.budget_ratio > 0.099 && c->retry.budget_ratio < 0.101);
    assert_true(cfg->routes[0].has_timeouts);
    assert_int_equal(cfg->routes[0].timeouts.per_try_ms, 250);
    assert_int_equal(cfg->routes[0].timeouts.request_ms, 30000); /* inherited */
    assert_string_equal(cfg->routes[0].name, "route-0");
    assert_non_null(strstr(cfg->source_json, "\"name\":\"a\""));
    /* identity and tracing: off and 100% (slow: 1 s) unless set */
    assert_int_equal(cfg->identity, PROXY_IDENTITY_OFF);
    assert_true(cfg->tracing.sample == 1.0);
    assert_int_equal(cfg->tracing.slow_ms, 1000);
    proxy_config_free(cfg);
    assert_int_equal(
        load("identity: required\ntracing: {sample: 10%, slow: 250ms}\nroutes: []\n", &cfg, &d), 0);
    assert_int_equal(cfg->identity, PROXY_IDENTITY_REQUIRED);
    assert_true(cfg->tracing.sample > 0.099 && cfg->tracing.sample < 0.101);
    assert_int_equal(cfg->tracing.slow_ms, 250);
    assert_non_null(strstr(cfg->source_json, "\"identity\":\"required\""));
    proxy_config_free(cfg);
}

struct bad {
    const char *yaml, *where, *what;
};

static void test_config__errors_name_the_place_and_problem(void **state)
{
    static const struct bad cases[] = {
        {"routes: []\nlisten: nowhere\n", "gw.yaml:2:9", "listen:"},
        {"routes:\n  - {match: {prefix: /}, cluster: nope}\n", "gw.yaml:2:35",
         "no cluster named 'nope'"},
        {"routes:\n  - {match: {prefix: /}}\n", "gw.yaml:2:5", "exactly one of"},
        {"clusters:\n  - name: a\n    endpoints: [1.2.3.4:99999]\nroutes: []\n", "gw.yaml:3:17",
         "port"},
        {"clusters:\n  - name: a\n    endpoints: [127.0.0.1:1]\n    lb: fastest\nroutes: []\n",
         "gw.yaml:4:9", "unknown balancer 'fastest'"},
        {"clusters:\n  - {name: a, endpoints: []}\n  - {name: a, endpoints: []}\nroutes: []\n",
         "gw.yaml:3:5", "named 'a'"},
        {"clusters:\n  - {name: a, endpoints: [], retry: {budget: 150%}}\nroutes: []\n",
         "gw.yaml:2:46", "outside"},
        {"routes:\n  - {respond: {status: 200}, rewrite_prefix: /x}\n", "gw.yaml:2:46",
         "needs a match.prefix"},
        {"routes:\n  - {redirect: {location: \"a\\nb\"}}\n", "gw.yaml:2:27", "line breaks"},
        {"clusters: []\n", "gw.yaml:1:1", "missing required key 'routes'"},
        {"routes: []\ntimeout: 1s\n", "gw.yaml:2:1", "unknown key 'timeout'"},
        {"routes: []\nidentity: strict\n", "gw.yaml:2:11",
         "identity: 'strict' is not one of off, optional, required"},
        {"routes: []\ntracing: {sample: 2}\n", "gw.yaml:2:19", "tracing.sample"},
        {"routes: []\ntracing: {rate: 1}\n", "gw.yaml:2:11", "unknown key 'rate'"},
        /* nested paths name every level (they once overlapped in one buffer) */
        {"routes:\n  - {match: {prefix: x}, respond: {status: 200}}\n", "gw.yaml:2:13",
         "routes[0].match: a path must start with '/'"},
        {"clusters:\n  - {name: a, endpoints: [{address: 127.0.0.1:1, weight: 5000}]}\n"
         "routes: []\n",
         "gw.yaml:2:58", "clusters[a].endpoints[0].weight:"},
        /* mTLS between meshes */
        {"clusters:\n  - {name: a, endpoints: [127.0.0.1:1], mtls: {identity: x, ca: c.pem}}\n"
         "routes: []\n",
         "gw.yaml:2:58", "clusters[a].mtls.identity: 'x' is not spiffe://TD/service/NAME"},
        {"clusters:\n  - {name: a, endpoints: [127.0.0.1:1], mtls: {identity: "
         "'spiffe://t/service/a'}}\nroutes: []\n",
         "gw.yaml:2:47", "clusters[a].mtls: missing required key 'ca'"},
        {"routes: []\ninbound: {listen: 127.0.0.1:1, trust_domain: t, certs: []}\n", "gw.yaml:2:10",
         "missing required key 'client_ca'"},
        {"routes: []\ninbound: {listen: 127.0.0.1:1, trust_domain: t, client_ca: c, certs: []}\n",
         "gw.yaml:2:70", "inbound.certs: give 1 to"},
        {"routes: []\nidentities: [{service: a, cert: c, key: k}, {service: a, cert: c, key: k}]\n",
         "gw.yaml:2:72", "identities[1]: 'a' is given twice"},
    };
    struct proxy_config *cfg;
    struct sh_diag d;

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        memset(&d, 0, sizeof(d));
        int rc = load(cases[i].yaml, &cfg, &d);
        if ((rc != SH_EPARSE && rc != SH_ETOOBIG) || strcmp(d.where, cases[i].where) != 0 ||
            !strstr(d.what, cases[i].what))
            fail_msg("case %zu: rc %d, got '%s: %s', want '%s: ...%s...'", i, rc, d.where, d.what,
                     cases[i].where, cases[i].what);
        assert_null(cfg);
    }
}

static void test_config__oom_is_clean(void **state)
{
    static const char yaml[] =
        "clusters:\n  - {name: a, endpoints: [127.0.0.1:1, 127.0.0.1:2], lb: maglev}\n"
        "routes:\n  - {match: {prefix: /}, split: [{cluster: a, weight: 1}],"
        " rate_limit: {rate: 10}, fallback: true}\n";
    struct sh_doc *doc;
    struct proxy_config *cfg;
    struct sh_diag d;
    long n = 0;

    (void)state;
    assert_int_equal(manifest_read_buf("gw.yaml", yaml, strlen(yaml), &doc, &d), 0);
    sh_alloc_fail_after(0);
    assert_int_equal(proxy_config_from_doc(doc, NULL, &cfg, &d), 0);
    proxy_config_free(cfg);
    for (;;) {
        n++;
        sh_alloc_fail_after(n);
        int rc = proxy_config_from_doc(doc, NULL, &cfg, &d);
        sh_alloc_fail_after(0);
        if (rc == 0) {
            proxy_config_free(cfg);
            break;
        }
        assert_int_equal(rc, SH_ENOMEM);
        assert_null(cfg);
    }
    assert_true(n > 3);
    sh_doc_free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_config__defaults_and_overrides),
        SH_TEST(test_config__errors_name_the_place_and_problem),
        SH_TEST(test_config__oom_is_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
