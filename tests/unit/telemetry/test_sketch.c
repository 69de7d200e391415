/* SPDX-License-Identifier: MIT */
/* test_sketch.c: the latency sketch (METRIC_SKETCH): relative error of every bucket, p50/p95/p99
 * against the exact quantiles of several distributions, merging shards and series, differences
 * of two reads, memory per series, and that sketches stay out of the Prometheus text. */
#include "test_util.h"

#include "telemetry/telemetry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SAMPLES = 200000 };

static struct metrics *new_registry(uint32_t shards)
{
    struct metrics *m = NULL;

    assert_int_equal(metrics_new(&(struct metrics_config){.shards = shards}, &m), 0);
    return m;
}

static struct metric_sketch *new_sketch(struct metrics *m, const char *value)
{
    static const char *const labels[] = {"route"};
    struct metric_family *f = NULL;
    struct metric_sketch *k = NULL;
    struct slice v = slice_from_cstr(value);

    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){.name = "lat_sketch",
                                                                       .help = "Latency.",
                                                                       .type = METRIC_SKETCH,
                                                                       .label_names = labels,
                                                                       .label_count = 1},
                                        &f),
                     0);
    assert_int_equal(metric_sketch_get(f, &v, 1, &k), 0);
    return k;
}

/* xorshift64*: deterministic, so a failure replays. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static double uniform01(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1du) >> 11) / 9007199254740992.0;
}

static double normal01(void)
{
    double u = uniform01(), v = uniform01();

    if (u < 1e-300) u = 1e-300;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

enum dist { D_CONSTANT, D_UNIFORM, D_EXPONENTIAL, D_LOGNORMAL, D_BIMODAL, D_PARETO, D_COUNT };
static const char *const dist_names[D_COUNT] = {"constant 60ms",         "uniform 1-100ms",
                                                "exponential mean 60ms", "lognormal 60ms s=1",
                                                "bimodal 5ms/300ms",     "pareto 1ms a=1.5"};

static double draw(enum dist d)
{
    switch (d) {
    case D_CONSTANT:
        return 0.060;
    case D_UNIFORM:
        return 0.001 + 0.099 * uniform01();
    case D_EXPONENTIAL:
        return -0.060 * log(1 - uniform01());
    case D_LOGNORMAL:
        return 0.060 * exp(normal01());
    case D_BIMODAL:
        return uniform01() < 0.9 ? 0.005 * (1 + 0.1 * normal01()) : 0.300;
    case D_PARETO:
        return 0.001 / pow(1 - uniform01(), 1 / 1.5);
    default:
        return 0;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void test_sketch__every_bucket_within_alpha(void **state)
{
    (void)state;
    /* Walk values over 1us..10min in 0.1% steps: the representative of each value's bucket is
     * within alpha of the value. */
    for (double v = 1.0001e-6; v < 600; v *= 1.001) {
        double r = metric_sketch_value(metric_sketch_index(v));
        assert_true(fabs(r - v) / v <= METRIC_SKETCH_ALPHA + 1e-9);
    }
    assert_int_equal(metric_sketch_index(0), 0);
    assert_int_equal(metric_sketch_index(NAN), 0);
    assert_int_equal(metric_sketch_index(1e9), METRIC_SKETCH_BUCKETS - 1);
}

/* p50/p95/p99 of SAMPLES values of each distribution, recorded over three shards, within 5%
 * of the exact quantiles (the design bound is 2%; the worst seen is printed). */
static void test_sketch__quantiles_within_5_percent(void **state)
{
    static const double qs[] = {0.5, 0.95, 0.99, 0.999};
    double *vals = sh_malloc(SAMPLES * sizeof(*vals)), worst = 0;
    uint64_t counts[METRIC_SKETCH_BUCKETS];

    (void)state;
    assert_non_null(vals);
    for (int d = 0; d < D_COUNT; d++) {
        struct metrics *m = new_registry(3);
        struct metric_sketch *k = new_sketch(m, "r");
        uint64_t n = 0;

        for (size_t i = 0; i < SAMPLES; i++) {
            vals[i] = draw((enum dist)d);
            metric_sketch_observe(k, (uint32_t)(i % 3), vals[i]);
        }
        qsort(vals, SAMPLES, sizeof(*vals), cmp_double);
        metric_sketch_read(k, counts);
        for (size_t i = 0; i < SH_ARRAY_LEN(qs); i++) {
            double exact = vals[(size_t)(qs[i] * (SAMPLES - 1))];
            double est = metric_sketch_quantile(counts, qs[i], &n);
            double err = fabs(est - exact) / exact;
            if (err > worst) worst = err;
            if (err > 0.05)
                fail_msg("%s q=%g: exact %g, sketch %g (%.2f%%)", dist_names[d], qs[i], exact, est,
                         err * 100);
        }
        assert_int_equal(n, SAMPLES);
        metrics_free(m);
    }
    print_message("sketch: worst relative error of p50/p95/p99/p99.9 over %d distributions: "
                  "%.2f%%\n",
                  D_COUNT, worst * 100);
    assert_true(worst <= METRIC_SKETCH_ALPHA + 1e-9);
    sh_free(vals);
}

/* The sketch of what happened between two reads is their difference; sketches of two series
 * merge by adding counts (a service's callers). */
static void test_sketch__difference_and_merge(void **state)
{
    struct metrics *m = new_registry(2);
    struct metric_sketch *k = new_sketch(m, "r");
    uint64_t before[METRIC_SKETCH_BUCKETS], after[METRIC_SKETCH_BUCKETS], n = 0;

    (void)state;
    for (int i = 0; i < 1000; i++)
        metric_sketch_observe(k, 0, 0.010);
    metric_sketch_read(k, before);
    for (int i = 0; i < 1000; i++)
        metric_sketch_observe(k, 1, 0.060);
    metric_sketch_read(k, after);
    for (size_t b = 0; b < METRIC_SKETCH_BUCKETS; b++)
        after[b] -= before[b];
    assert_true(fabs(metric_sketch_quantile(after, 0.01, &n) - 0.060) / 0.060 <= 0.02);
    assert_int_equal(n, 1000);
    for (size_t b = 0; b < METRIC_SKETCH_BUCKETS; b++)
        after[b] += before[b];
    /* merged: half at 10 ms, half at 60 ms */
    assert_true(fabs(metric_sketch_quantile(after, 0.25, &n) - 0.010) / 0.010 <= 0.02);
    assert_true(fabs(metric_sketch_quantile(after, 0.75, NULL) - 0.060) / 0.060 <= 0.02);
    assert_int_equal(n, 2000);
    memset(after, 0, sizeof(after));
    assert_true(isnan(metric_sketch_quantile(after, 0.5, &n)));
    assert_int_equal(n, 0);
    metric_sketch_observe(k, 7, 0.1); /* out-of-range shard: ignored, no corruption */
    metrics_free(m);
}

/* Memory per series is fixed: METRIC_SKETCH_BUCKETS cells per shard, 4 KiB a shard. */
static void test_sketch__memory_per_series(void **state)
{
    struct metrics *m = new_registry(3);
    struct metric_sketch *k = new_sketch(m, "r");
    uint64_t counts[METRIC_SKETCH_BUCKETS];
    long live = sh_alloc_live();

    (void)state;
    assert_int_equal(metric_sketch_series_bytes(m), 3 * 4096);
    for (int i = 0; i < 100000; i++)
        metric_sketch_observe(k, (uint32_t)(i % 3), (double)i * 1e-5);
    assert_int_equal(sh_alloc_live(), live); /* recording allocates nothing */
    metric_sketch_read(k, counts);
    print_message("sketch: %d buckets, %zu bytes per series with 3 shards (%zu per shard)\n",
                  METRIC_SKETCH_BUCKETS, metric_sketch_series_bytes(m),
                  metric_sketch_series_bytes(m) / 3);
    metrics_free(m);
}

/* Sketches and internal families never reach the exposition. */
static void test_sketch__not_rendered(void **state)
{
    struct metrics *m = new_registry(1);
    struct metric_sketch *k = new_sketch(m, "r");
    struct metric_family *f = NULL;
    struct metric_counter *c = NULL;
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(metrics_family_add(m,
                                        &(struct metric_family_config){.name = "hidden_total",
                                                                       .help = "H.",
                                                                       .type = METRIC_COUNTER,
                                                                       .is_internal = true},
                                        &f),
                     0);
    assert_int_equal(metric_counter_get(f, NULL, 0, &c), 0);
    metric_counter_inc(c, 0);
    metric_sketch_observe(k, 0, 0.5);
    assert_int_equal(metrics_render(m, &b), 0);
    assert_true(b.len == 0);
    assert_int_equal(metric_counter_read(c), 1);
    buf_release(&b);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_sketch__every_bucket_within_alpha),
        SH_TEST(test_sketch__quantiles_within_5_percent),
        SH_TEST(test_sketch__difference_and_merge),
        SH_TEST(test_sketch__memory_per_series),
        SH_TEST(test_sketch__not_rendered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
