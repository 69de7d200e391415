/* SPDX-License-Identifier: MIT */
/* metrics_dump.c: builds a registry shaped like the proxy's (requests by route, cluster and
 * status class, upstream latency, sizes, active connections, retries, breaker state), with
 * label values chosen to stress escaping (quotes, backslashes, newlines, UTF-8, empty), records
 * some traffic on several shards, retires one series, and prints the Prometheus text exposition
 * on stdout. tests/integ/test_promtool.sh feeds it to `promtool check metrics`.
 * Exit status: 0, or 1 with a message on stderr. */
#include "telemetry/telemetry.h"

#include <stdio.h>
#include <string.h>

enum { SHARDS = 4 };

static int fail(const char *what, int rc)
{
    fprintf(stderr, "metrics_dump: %s: %s\n", what, sh_strerror(rc));
    return 1;
}

static const char *const routes[] = {
    "/api/v1/users/{id}", "shop \"checkout\"", "C:\\legacy\\path", "multi\nline", "café-☕", "",
};
static const char *const clusters[] = {"users", "payments-v2", "legacy"};
static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};

static struct slice S(const char *s) {
    return slice_from_cstr(s);
}

int main(void)
{
    static const double size_buckets[] = {256, 1024, 4096, 16384, 65536, 262144, 1048576};
    const char *const req_labels[] = {"route", "cluster", "code_class"};
    const char *const lat_labels[] = {"route", "cluster"};
    const char *const conn_labels[] = {"listener"};
    const char *const retry_labels[] = {"cluster", "reason"};
    const char *const breaker_labels[] = {"cluster", "endpoint"};
    const char *const info_labels[] = {"version"};
    struct metrics *m = NULL;
    struct metric_family *req, *lat, *size, *conns, *retries, *breaker, *info;
    struct buf out = BUF_INIT(0);
    int rc;

    rc = metrics_new(&(struct metrics_config){.shards = SHARDS}, &m);
    if (rc < 0) return fail("metrics_new", rc);
#define FAMILY(var, ...)                                                                           \
    do {                                                                                           \
        rc = metrics_family_add(m, &(struct metric_family_config){__VA_ARGS__}, &(var));           \
        if (rc < 0) {                                                                              \
            metrics_free(m);                                                                       \
            return fail("metrics_family_add", rc);                                                 \
        }                                                                                          \
    } while (0)
    FAMILY(req, .name = "shoal_gateway_requests_total",
           .help = "Requests answered by the gateway, by route, cluster and status class.",
           .type = METRIC_COUNTER, .label_names = req_labels, .label_count = 3);
    FAMILY(lat, .name = "shoal_upstream_request_duration_seconds",
           .help = "Time from the first request byte sent upstream to the last response byte.",
           .type = METRIC_HISTOGRAM, .label_names = lat_labels, .label_count = 2);
    FAMILY(size, .name = "shoal_response_size_bytes",
           .help = "Response body sizes.\nBuckets are powers of four.", .type = METRIC_HISTOGRAM,
           .label_names = lat_labels, .label_count = 2, .buckets = size_buckets,
           .bucket_count = SH_ARRAY_LEN(size_buckets));
    FAMILY(conns, .name = "shoal_active_connections",
           .help = "Open downstream connections per listener.", .type = METRIC_GAUGE,
           .label_names = conn_labels, .label_count = 1);
    FAMILY(retries, .name = "shoal_upstream_retries_total",
           .help = "Retries sent upstream, by reason (a \\ and a \"quote\" in help).",
           .type = METRIC_COUNTER, .label_names = retry_labels, .label_count = 2);
    FAMILY(breaker, .name = "shoal_circuit_breaker_state",
           .help = "Breaker state per endpoint: 0 closed, 1 open, 2 half-open.",
           .type = METRIC_GAUGE, .label_names = breaker_labels, .label_count = 2);
    FAMILY(info, .name = "shoal_build_info", .help = "Build information; always 1.",
           .type = METRIC_GAUGE, .label_names = info_labels, .label_count = 1);
#undef FAMILY

    for (size_t r = 0; r < SH_ARRAY_LEN(routes); r++) {
        const char *cl = clusters[r % SH_ARRAY_LEN(clusters)];
        struct slice lv[2] = {S(routes[r]), S(cl)};
        struct metric_histogram *h, *hs;

        rc = metric_histogram_get(lat, lv, 2, &h);
        if (rc == 0) rc = metric_histogram_get(size, lv, 2, &hs);
        if (rc < 0) goto out;
        for (size_t c = 0; c < SH_ARRAY_LEN(classes); c++) {
            struct slice rv[3] = {S(routes[r]), S(cl), S(classes[c])};
            struct metric_counter *cnt;

            rc = metric_counter_get(req, rv, 3, &cnt);
            if (rc < 0) goto out;
            for (uint32_t s = 0; s < SHARDS; s++)
                metric_counter_add(cnt, s, (uint64_t)(r * 100 + c * 10 + s));
        }
        for (uint32_t i = 0; i < 200; i++) {
            metric_histogram_observe(h, i % SHARDS, 0.0001 * (double)(i * i) * (double)(r + 1));
            metric_histogram_observe(hs, i % SHARDS, (double)(i * 977 % 2000000));
        }
    }
    {
        const char *listeners[] = {"gateway 127.0.0.1:8080", "mesh 127.0.0.1:15001"};
        for (size_t i = 0; i < SH_ARRAY_LEN(listeners); i++) {
            struct metric_gauge *g;
            rc = metric_gauge_get(conns, &(struct slice){S(listeners[i]).ptr, strlen(listeners[i])},
                                  1, &g);
            if (rc < 0) goto out;
            metric_gauge_add(g, 0, 12);
            metric_gauge_add(g, 1, 3);
            metric_gauge_add(g, 2, -1 * (int64_t)i);
        }
    }
    {
        const char *reasons[] = {"5xx", "connect-failure", "reset"};
        for (size_t c = 0; c < SH_ARRAY_LEN(clusters); c++) {
            for (size_t k = 0; k < SH_ARRAY_LEN(reasons); k++) {
                struct slice v[2] = {S(clusters[c]), S(reasons[k])};
                struct metric_counter *cnt;
                rc = metric_counter_get(retries, v, 2, &cnt);
                if (rc < 0) goto out;
                metric_counter_add(cnt, (uint32_t)k % SHARDS, c * 7 + k);
            }
        }
    }
    {
        const char *eps[] = {"10.0.0.1:8080", "10.0.0.2:8080", "[::1]:9000"};
        for (size_t e = 0; e < SH_ARRAY_LEN(eps); e++) {
            struct slice v[2] = {S(clusters[e]), S(eps[e])};
            struct metric_gauge *g;
            rc = metric_gauge_get(breaker, v, 2, &g);
            if (rc < 0) goto out;
            metric_gauge_set(g, (double)e);
        }
        /* a removed endpoint: retired, so it must not be printed */
        struct slice gone[2] = {S("users"), S("10.9.9.9:1")};
        struct metric_gauge *g;
        rc = metric_gauge_get(breaker, gone, 2, &g);
        if (rc < 0) goto out;
        metric_gauge_set(g, 1);
        metric_gauge_retire(g);
    }
    {
        struct metric_gauge *g;
        rc = metric_gauge_get(info, &(struct slice){SHOAL_VERSION, strlen(SHOAL_VERSION)}, 1, &g);
        if (rc < 0) goto out;
        metric_gauge_set(g, 1);
    }
    rc = metrics_render(m, &out);
    if (rc < 0) goto out;
    fwrite(out.data, 1, out.len, stdout);
out:
    buf_release(&out);
    metrics_free(m);
    if (rc < 0) return fail("building the registry", rc);
    return fflush(stdout) == 0 ? 0 : 1;
}
