/* SPDX-License-Identifier: MIT */
/* test_metrics.c: the metrics registry: counters, gauges and histograms per label set, shard
 * summing (also from several threads while scrapes run), bucket edges, registration rules,
 * retirement, the exact Prometheus text of a small registry, and OOM torture of setup. */
#include "test_util.h"

#include "telemetry/telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static struct metrics *new_registry(uint32_t shards)
{
    struct metrics *m = NULL;

    assert_int_equal(metrics_new(&(struct metrics_config){.shards = shards}, &m), 0);
    assert_non_null(m);
    return m;
}

static struct metric_family *add_family(struct metrics *m, const char *name, enum metric_type type,
                                        const char *const *labels, size_t label_count)
{
    struct metric_family *f = NULL;

    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){
                                            .name = name,
                                            .help = "Help.",
                                            .type = type,
                                            .label_names = labels,
                                            .label_count = label_count,
                                        },
                                        &f),
                     0);
    assert_non_null(f);
    return f;
}

/* Renders m into a NUL-terminated string the caller frees with buf_release. */
static struct buf render(struct metrics *m)
{
    struct buf b = BUF_INIT(0);

    assert_int_equal(metrics_render(m, &b), 0);
    assert_non_null(b.data);
    return b;
}

/* ---- counters and gauges ---- */

static void test_metrics__counter_sums_shards(void **state)
{
    struct metrics *m = new_registry(4);
    const char *const labels[] = {"route"};
    struct metric_family *f = add_family(m, "x_total", METRIC_COUNTER, labels, 1);
    struct metric_counter *a, *a2, *b;

    (void)state;
    assert_int_equal(metric_counter_get(f, &SLICE("a"), 1, &a), 0);
    assert_int_equal(metric_counter_get(f, &SLICE("b"), 1, &b), 0);
    assert_int_equal(metric_counter_get(f, &SLICE("a"), 1, &a2), 0);
    assert_ptr_equal(a, a2); /* same tuple, same handle */
    assert_ptr_not_equal(a, b);
    for (uint32_t s = 0; s < 4; s++)
        metric_counter_add(a, s, 10 + s);
    metric_counter_inc(a, 3);
    metric_counter_inc(b, 0);
    metric_counter_add(a, 4, 1000); /* out of range: ignored */
    assert_int_equal(metric_counter_read(a), 10 + 11 + 12 + 13 + 1);
    assert_int_equal(metric_counter_read(b), 1);
    assert_int_equal(metrics_shards(m), 4);
    metrics_free(m);
}

static void test_metrics__gauge_adds_and_sets(void **state)
{
    struct metrics *m = new_registry(2);
    struct metric_family *f = add_family(m, "conns", METRIC_GAUGE, NULL, 0);
    struct metric_gauge *g;

    (void)state;
    assert_int_equal(metric_gauge_get(f, NULL, 0, &g), 0);
    metric_gauge_add(g, 0, 5);
    metric_gauge_add(g, 1, -7);
    assert_true(metric_gauge_read(g) == -2.0);
    metric_gauge_add(g, 1, 7);
    metric_gauge_add(g, 0, -5);
    assert_true(metric_gauge_read(g) == 0.0);
    metric_gauge_set(g, 2.5);
    assert_true(metric_gauge_read(g) == 2.5);
    metrics_free(m);
}

/* ---- histograms ---- */

static void test_metrics__histogram_bucket_edges(void **state)
{
    static const double bounds[] = {0.25, 0.5, 1};
    struct metrics *m = new_registry(2);
    struct metric_family *f = NULL;
    struct metric_histogram *h;
    uint64_t cum[4];
    double sum;
    uint64_t count;

    (void)state;
    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){
                                            .name = "lat_seconds",
                                            .help = "h",
                                            .type = METRIC_HISTOGRAM,
                                            .buckets = bounds,
                                            .bucket_count = 3,
                                        },
                                        &f),
                     0);
    assert_int_equal(metric_histogram_get(f, NULL, 0, &h), 0);
    metric_histogram_observe(h, 0, -1);   /* below everything: first bucket */
    metric_histogram_observe(h, 0, 0.25); /* on a bound: that bucket (le is <=) */
    metric_histogram_observe(h, 1, 0.2500001);
    metric_histogram_observe(h, 1, 1);         /* last finite bound */
    metric_histogram_observe(h, 0, 1.0000001); /* above: +Inf */
    metric_histogram_observe(h, 1, INFINITY);
    metric_histogram_observe(h, 1, NAN); /* ignored */
    metric_histogram_read(h, cum, 4, &sum, &count);
    assert_int_equal(cum[0], 2);
    assert_int_equal(cum[1], 3);
    assert_int_equal(cum[2], 4);
    assert_int_equal(cum[3], 6);
    assert_int_equal(count, 6);
    assert_true(isinf(sum));
    metrics_free(m);
}

static void test_metrics__histogram_default_buckets_render(void **state)
{
    struct metrics *m = new_registry(1);
    struct metric_family *f = add_family(m, "d_seconds", METRIC_HISTOGRAM, NULL, 0);
    struct metric_histogram *h;
    struct buf b;
    const char *expect_le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                               "0.25",   "0.5",   "1",      "2.5",   "5",    "10",    "+Inf"};
    char line[128];

    (void)state;
    assert_int_equal(metric_histogram_get(f, NULL, 0, &h), 0);
    for (size_t i = 0; i < 10000; i++)
        metric_histogram_observe(h, 0, (double)i / 1000.0); /* 0 .. 9.999 s */
    b = render(m);
    for (size_t i = 0; i < SH_ARRAY_LEN(expect_le); i++) {
        snprintf(line, sizeof(line), "d_seconds_bucket{le=\"%s\"} ", expect_le[i]);
        assert_non_null(strstr(b.data, line));
    }
    assert_non_null(strstr(b.data, "d_seconds_bucket{le=\"0.001\"} 2\n")); /* 0 and 0.001 */
    assert_non_null(strstr(b.data, "d_seconds_bucket{le=\"10\"} 10000\n"));
    assert_non_null(strstr(b.data, "d_seconds_count 10000\n"));
    buf_release(&b);
    metrics_free(m);
}

/* ---- exposition ---- */

static void test_metrics__render_small_registry_exactly(void **state)
{
    static const double bounds[] = {0.25, 0.5, 1};
    const char *const req_labels[] = {"route", "code"};
    const char *const lat_labels[] = {"route"};
    struct metrics *m = new_registry(2);
    struct metric_family *req = NULL, *conns = NULL, *lat = NULL;
    struct metric_counter *ok, *odd;
    struct metric_gauge *g;
    struct metric_histogram *h;
    struct slice v_ok[] = {SLICE("api"), SLICE("2xx")};
    struct slice v_odd[] = {SLICE("a\"b\\c\nd"), SLICE("5xx")};
    struct buf b;
    const char *expect =
        "# HELP shoal_requests_total Requests handled.\n"
        "# TYPE shoal_requests_total counter\n"
        "shoal_requests_total{route=\"api\",code=\"2xx\"} 5\n"
        "shoal_requests_total{route=\"a\\\"b\\\\c\\nd\",code=\"5xx\"} 1\n"
        "# HELP shoal_active_connections Open connections.\\nSecond \\\\ \"line\"\n"
        "# TYPE shoal_active_connections gauge\n"
        "shoal_active_connections 2\n"
        "# HELP shoal_request_duration_seconds Request latency.\n"
        "# TYPE shoal_request_duration_seconds histogram\n"
        "shoal_request_duration_seconds_bucket{route=\"api\",le=\"0.25\"} 1\n"
        "shoal_request_duration_seconds_bucket{route=\"api\",le=\"0.5\"} 2\n"
        "shoal_request_duration_seconds_bucket{route=\"api\",le=\"1\"} 2\n"
        "shoal_request_duration_seconds_bucket{route=\"api\",le=\"+Inf\"} 3\n"
        "shoal_request_duration_seconds_sum{route=\"api\"} 3.625\n"
        "shoal_request_duration_seconds_count{route=\"api\"} 3\n";

    (void)state;
    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){
                                            .name = "shoal_requests_total",
                                            .help = "Requests handled.",
                                            .type = METRIC_COUNTER,
                                            .label_names = req_labels,
                                            .label_count = 2,
                                        },
                                        &req),
                     0);
    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){
                                            .name = "shoal_active_connections",
                                            .help = "Open connections.\nSecond \\ \"line\"",
                                            .type = METRIC_GAUGE,
                                        },
                                        &conns),
                     0);
    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){
                                            .name = "shoal_request_duration_seconds",
                                            .help = "Request latency.",
                                            .type = METRIC_HISTOGRAM,
                                            .label_names = lat_labels,
                                            .label_count = 1,
                                            .buckets = bounds,
                                            .bucket_count = 3,
                                        },
                                        &lat),
                     0);
    assert_int_equal(metric_counter_get(req, v_ok, 2, &ok), 0);
    assert_int_equal(metric_counter_get(req, v_odd, 2, &odd), 0);
    assert_int_equal(metric_gauge_get(conns, NULL, 0, &g), 0);
    assert_int_equal(metric_histogram_get(lat, &SLICE("api"), 1, &h), 0);
    metric_counter_add(ok, 0, 3);
    metric_counter_add(ok, 1, 2);
    metric_counter_inc(odd, 1);
    metric_gauge_add(g, 0, 3);
    metric_gauge_add(g, 1, -1);
    metric_histogram_observe(h, 0, 0.125);
    metric_histogram_observe(h, 1, 0.5);
    metric_histogram_observe(h, 0, 3);
    b = render(m);
    assert_string_equal(b.data, expect);
    buf_release(&b);
    metrics_free(m);
}

static void test_metrics__render_skips_families_without_live_series(void **state)
{
    struct metrics *m = new_registry(1);
    const char *const labels[] = {"route"};
    struct metric_family *f = add_family(m, "x_total", METRIC_COUNTER, labels, 1);
    struct metric_counter *c, *c2;
    struct buf b;

    (void)state;
    b = BUF_INIT(0);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_int_equal(b.len, 0);
    buf_release(&b);

    assert_int_equal(metric_counter_get(f, &SLICE("gone"), 1, &c), 0);
    metric_counter_add(c, 0, 7);
    metric_counter_retire(c);
    metric_counter_retire(c);    /* idempotent */
    metric_counter_add(c, 0, 1); /* a stale handle still works; nobody sees it */
    b = BUF_INIT(0);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_int_equal(b.len, 0);
    buf_release(&b);

    /* the same tuple again revives the series with its counts */
    assert_int_equal(metric_counter_get(f, &SLICE("gone"), 1, &c2), 0);
    assert_ptr_equal(c, c2);
    b = render(m);
    assert_string_equal(b.data, "# HELP x_total Help.\n# TYPE x_total counter\n"
                                "x_total{route=\"gone\"} 8\n");
    buf_release(&b);
    metric_counter_retire(NULL);
    metrics_free(m);
}

static void test_metrics__render_past_max_is_too_big(void **state)
{
    struct metrics *m = new_registry(1);
    struct metric_family *f = add_family(m, "x_total", METRIC_COUNTER, NULL, 0);
    struct metric_counter *c;
    struct buf b = BUF_INIT(16);

    (void)state;
    assert_int_equal(metric_counter_get(f, NULL, 0, &c), 0);
    assert_int_equal(metrics_render(m, &b), SH_ETOOBIG);
    assert_true(b.len <= 16);
    buf_release(&b);
    metrics_free(m);
}

static void test_metrics__label_values_escape_and_allow_utf8(void **state)
{
    struct metrics *m = new_registry(1);
    const char *const labels[] = {"v"};
    struct metric_family *f = add_family(m, "esc", METRIC_GAUGE, labels, 1);
    struct metric_gauge *g;
    struct buf b;

    (void)state;
    assert_int_equal(metric_gauge_get(f, &SLICE("\\\\\"\n\xc3\xa9\xf0\x9f\x90\x9f{}=,"), 1, &g), 0);
    assert_int_equal(metric_gauge_get(f, &SLICE(""), 1, &g), 0);
    b = render(m);
    assert_non_null(strstr(b.data, "esc{v=\"\\\\\\\\\\\"\\n\xc3\xa9\xf0\x9f\x90\x9f{}=,\"} 0\n"));
    assert_non_null(strstr(b.data, "esc{v=\"\"} 0\n"));
    buf_release(&b);
    metrics_free(m);
}

/* ---- rules ---- */

static int try_family(struct metrics *m, const char *name, enum metric_type type,
                      const char *const *labels, size_t n, const double *buckets, size_t nb)
{
    struct metric_family *f = (struct metric_family *)(uintptr_t)1;
    int rc = metrics_family_add(m,
                                &(struct metric_family_config){
                                    .name = name,
                                    .help = "h",
                                    .type = type,
                                    .label_names = labels,
                                    .label_count = n,
                                    .buckets = buckets,
                                    .bucket_count = nb,
                                },
                                &f);
    if (rc < 0) assert_null(f);
    return rc;
}

static void test_metrics__family_rules(void **state)
{
    struct metrics *m = new_registry(1);
    const char *const le[] = {"le"};
    const char *const dup[] = {"a", "a"};
    const char *const reserved[] = {"__name"};
    const char *const digit[] = {"1a"};
    const char *const ok[] = {"route", "code"};
    const double decreasing[] = {1, 0.5};
    const double equal[] = {1, 1};
    const double inf[] = {1, INFINITY};
    const double one[] = {1};

    (void)state;
    assert_int_equal(try_family(m, "requests", METRIC_COUNTER, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "open_total", METRIC_GAUGE, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "lat_total", METRIC_HISTOGRAM, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "a:b", METRIC_GAUGE, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "1abc", METRIC_GAUGE, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "", METRIC_GAUGE, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "a-b", METRIC_GAUGE, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "g", (enum metric_type)7, NULL, 0, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, le, 1, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "g", METRIC_GAUGE, dup, 2, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "g", METRIC_GAUGE, reserved, 1, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "g", METRIC_GAUGE, digit, 1, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "g", METRIC_GAUGE, NULL, 1, NULL, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, NULL, 0, decreasing, 2), SH_EINVAL);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, NULL, 0, equal, 2), SH_EINVAL);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, NULL, 0, inf, 2), SH_EINVAL);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, NULL, 0, one, 0), SH_EINVAL);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, NULL, 0, one, METRICS_MAX_BUCKETS + 1),
                     SH_EINVAL);
    /* le is fine outside histograms; bucket settings are ignored outside histograms */
    assert_int_equal(try_family(m, "g", METRIC_GAUGE, le, 1, decreasing, 2), 0);
    assert_int_equal(try_family(m, "g", METRIC_GAUGE, NULL, 0, NULL, 0), SH_EEXIST);
    assert_int_equal(try_family(m, "h", METRIC_HISTOGRAM, ok, 2, one, 1), 0);
    metrics_free(m);
}

static void test_metrics__series_rules(void **state)
{
    struct metrics *m = new_registry(1);
    const char *const labels[] = {"a", "b"};
    struct metric_family *f = add_family(m, "x_total", METRIC_COUNTER, labels, 2);
    struct metric_counter *c;
    struct metric_gauge *g;
    static char big[METRICS_MAX_LABEL_VALUE_BYTES + 1];
    struct slice two[] = {SLICE("x"), SLICE("y")};
    struct slice bad_utf8[][2] = {
        {SLICE("\xff"), SLICE("")},               /* never valid */
        {SLICE("\xc0\xaf"), SLICE("")},           /* overlong */
        {SLICE("\xed\xa0\x80"), SLICE("")},       /* surrogate */
        {SLICE("\xc3"), SLICE("")},               /* truncated */
        {SLICE("ok"), SLICE("\xf4\x90\x80\x80")}, /* above U+10FFFF */
    };
    struct slice too_long[] = {{big, sizeof(big)}, SLICE("")};

    (void)state;
    memset(big, 'x', sizeof(big));
    assert_int_equal(metric_counter_get(f, two, 1, &c), SH_EINVAL);
    assert_null(c);
    assert_int_equal(metric_gauge_get(f, two, 2, &g), SH_EINVAL);
    assert_null(g);
    for (size_t i = 0; i < SH_ARRAY_LEN(bad_utf8); i++)
        assert_int_equal(metric_counter_get(f, bad_utf8[i], 2, &c), SH_EINVAL);
    assert_int_equal(metric_counter_get(f, too_long, 2, &c), SH_ETOOBIG);
    too_long[0].len--;
    assert_int_equal(metric_counter_get(f, too_long, 2, &c), 0);
    /* ("a","bc") and ("ab","c") are different tuples */
    {
        struct metric_counter *c1, *c2;
        struct slice t1[] = {SLICE("a"), SLICE("bc")};
        struct slice t2[] = {SLICE("ab"), SLICE("c")};
        assert_int_equal(metric_counter_get(f, t1, 2, &c1), 0);
        assert_int_equal(metric_counter_get(f, t2, 2, &c2), 0);
        assert_ptr_not_equal(c1, c2);
    }
    metrics_free(m);
}

static void test_metrics__max_series_is_a_limit(void **state)
{
    struct metrics *m = NULL;
    const char *const labels[] = {"n"};
    struct metric_family *f;
    struct metric_counter *c;
    char v[16];

    (void)state;
    assert_int_equal(metrics_new(&(struct metrics_config){.shards = 1, .max_series = 3}, &m), 0);
    f = add_family(m, "x_total", METRIC_COUNTER, labels, 1);
    for (int i = 0; i < 3; i++) {
        snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(metric_counter_get(f, &(struct slice){v, strlen(v)}, 1, &c), 0);
    }
    assert_int_equal(metric_counter_get(f, &SLICE("3"), 1, &c), SH_ELIMIT);
    assert_int_equal(metric_counter_get(f, &SLICE("1"), 1, &c), 0); /* existing: fine */
    metrics_free(m);
    assert_int_equal(metrics_new(&(struct metrics_config){.shards = METRICS_MAX_SHARDS + 1}, &m),
                     SH_EINVAL);
    assert_null(m);
    assert_int_equal(metrics_new(NULL, &m), 0); /* all defaults */
    assert_int_equal(metrics_shards(m), METRICS_DEFAULT_SHARDS);
    metrics_free(m);
    metrics_free(NULL);
}

/* Many series of every type spill over several shard blocks; each keeps its own counts. */
static void test_metrics__many_series_stay_independent(void **state)
{
    enum { N = 3000 };
    struct metrics *m = new_registry(3);
    const char *const labels[] = {"n"};
    struct metric_family *fc = add_family(m, "c_total", METRIC_COUNTER, labels, 1);
    struct metric_family *fh = add_family(m, "h_seconds", METRIC_HISTOGRAM, labels, 1);
    static struct metric_counter *c[N];
    static struct metric_histogram *h[N];
    char v[16];

    (void)state;
    for (int i = 0; i < N; i++) {
        struct slice s;
        snprintf(v, sizeof(v), "%d", i);
        s = (struct slice){v, strlen(v)};
        assert_int_equal(metric_counter_get(fc, &s, 1, &c[i]), 0);
        assert_int_equal(metric_histogram_get(fh, &s, 1, &h[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        metric_counter_add(c[i], (uint32_t)i % 3, (uint64_t)i);
        metric_histogram_observe(h[i], (uint32_t)i % 3, (double)i);
    }
    for (int i = 0; i < N; i++) {
        uint64_t count;
        double sum;
        assert_int_equal(metric_counter_read(c[i]), i);
        metric_histogram_read(h[i], NULL, 0, &sum, &count);
        assert_int_equal(count, 1);
        assert_true(sum == (double)i);
    }
    metrics_free(m);
}

/* ---- threads ---- */

enum { WORKERS = 4, ADDS = 200000 };

struct worker_arg {
    struct metric_counter *c;
    struct metric_histogram *h;
    struct metric_gauge *g;
    uint32_t shard;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;

    for (int i = 0; i < ADDS; i++) {
        metric_counter_inc(a->c, a->shard);
        metric_histogram_observe(a->h, a->shard, 0.001 * (i % 100));
        metric_gauge_add(a->g, a->shard, (i & 1) ? -1 : 1);
    }
    return NULL;
}

static void test_metrics__shards_sum_under_concurrent_scrapes(void **state)
{
    struct metrics *m = new_registry(WORKERS);
    const char *const labels[] = {"route"};
    struct metric_family *fc = add_family(m, "req_total", METRIC_COUNTER, labels, 1);
    struct metric_family *fh = add_family(m, "lat_seconds", METRIC_HISTOGRAM, labels, 1);
    struct metric_family *fg = add_family(m, "active", METRIC_GAUGE, labels, 1);
    struct worker_arg args[WORKERS];
    pthread_t th[WORKERS];
    uint64_t last = 0, count;
    int scrapes = 0;

    (void)state;
    for (int i = 0; i < WORKERS; i++) {
        args[i].shard = (uint32_t)i;
        assert_int_equal(metric_counter_get(fc, &SLICE("r"), 1, &args[i].c), 0);
        assert_int_equal(metric_histogram_get(fh, &SLICE("r"), 1, &args[i].h), 0);
        assert_int_equal(metric_gauge_get(fg, &SLICE("r"), 1, &args[i].g), 0);
    }
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &args[i]), 0);
    /* Scrape, and create and retire series, while the workers record. */
    while (metric_counter_read(args[0].c) < (uint64_t)WORKERS * ADDS && scrapes < 100000) {
        struct buf b = BUF_INIT(0);
        uint64_t now = metric_counter_read(args[0].c);
        struct metric_counter *extra;
        char v[16];

        assert_true(now >= last); /* a counter never goes back */
        last = now;
        snprintf(v, sizeof(v), "x%d", scrapes % 50);
        assert_int_equal(metric_counter_get(fc, &(struct slice){v, strlen(v)}, 1, &extra), 0);
        if (scrapes % 3 == 0) metric_counter_retire(extra);
        assert_int_equal(metrics_render(m, &b), 0);
        assert_non_null(strstr(b.data, "req_total{route=\"r\"}"));
        buf_release(&b);
        scrapes++;
    }
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(metric_counter_read(args[0].c), (uint64_t)WORKERS * ADDS);
    metric_histogram_read(args[0].h, NULL, 0, NULL, &count);
    assert_int_equal(count, (uint64_t)WORKERS * ADDS);
    assert_true(metric_gauge_read(args[0].g) == 0.0);
    metrics_free(m);
}

/* ---- OOM ---- */

/* The setup a proxy does, start to finish; returns 0 or the first error. */
static int setup_and_render(void)
{
    const char *const labels[] = {"route", "cluster"};
    struct metrics *m = NULL;
    struct metric_family *fc, *fg, *fh;
    struct metric_counter *c;
    struct metric_gauge *g;
    struct metric_histogram *h;
    struct buf b = BUF_INIT(0);
    char v[16];
    int rc;

    rc = metrics_new(&(struct metrics_config){.shards = 3}, &m);
    if (rc < 0) return rc;
    rc = metrics_family_add(m,
                            &(struct metric_family_config){.name = "r_total",
                                                           .help = "requests",
                                                           .type = METRIC_COUNTER,
                                                           .label_names = labels,
                                                           .label_count = 2},
                            &fc);
    if (rc < 0) goto out;
    rc = metrics_family_add(
        m, &(struct metric_family_config){.name = "g", .help = "gauge", .type = METRIC_GAUGE}, &fg);
    if (rc < 0) goto out;
    rc = metrics_family_add(m,
                            &(struct metric_family_config){.name = "h_seconds",
                                                           .help = "latency",
                                                           .type = METRIC_HISTOGRAM,
                                                           .label_names = labels,
                                                           .label_count = 2},
                            &fh);
    if (rc < 0) goto out;
    for (int i = 0; i < 20 && rc == 0; i++) {
        struct slice vals[2] = {SLICE("route"), {v, 0}};
        vals[1].len = (size_t)snprintf(v, sizeof(v), "c%d", i);
        rc = metric_counter_get(fc, vals, 2, &c);
        if (rc == 0) {
            metric_counter_inc(c, 2);
            rc = metric_histogram_get(fh, vals, 2, &h);
        }
        if (rc == 0) metric_histogram_observe(h, 1, 0.01);
    }
    if (rc < 0) goto out;
    rc = metric_gauge_get(fg, NULL, 0, &g);
    if (rc < 0) goto out;
    metric_gauge_set(g, 1);
    rc = metrics_render(m, &b);
out:
    buf_release(&b);
    metrics_free(m);
    return rc;
}

static void test_metrics__oom_torture_of_setup(void **state)
{
    long live = sh_alloc_live();
    long n;

    (void)state;
    for (n = 1;; n++) {
        long used;
        int rc;

        sh_alloc_fail_after(n);
        rc = setup_and_render();
        used = sh_alloc_count();
        sh_alloc_fail_after(0);
        assert_int_equal(sh_alloc_live(), live);
        if (rc == 0) {
            assert_true(used < n);
            break;
        }
        assert_int_equal(rc, SH_ENOMEM);
    }
    assert_true(n > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_metrics__counter_sums_shards),
        SH_TEST(test_metrics__gauge_adds_and_sets),
        SH_TEST(test_metrics__histogram_bucket_edges),
        SH_TEST(test_metrics__histogram_default_buckets_render),
        SH_TEST(test_metrics__render_small_registry_exactly),
        SH_TEST(test_metrics__render_skips_families_without_live_series),
        SH_TEST(test_metrics__render_past_max_is_too_big),
        SH_TEST(test_metrics__label_values_escape_and_allow_utf8),
        SH_TEST(test_metrics__family_rules),
        SH_TEST(test_metrics__series_rules),
        SH_TEST(test_metrics__max_series_is_a_limit),
        SH_TEST(test_metrics__many_series_stay_independent),
        SH_TEST(test_metrics__shards_sum_under_concurrent_scrapes),
        SH_TEST(test_metrics__oom_torture_of_setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
