/* SPDX-License-Identifier: MIT */
/* test_history.c: the metrics history's rings and downsampling (1 s points from cumulative
 * counts, minute points from the minute's merged sketch, gaps, counters that start over), the
 * service map's last-minute window, limits, and the SLO arithmetic (budget left, burn rates). */
#include "test_util.h"

#include "observe/observe.h"
#include "telemetry/telemetry.h"

#include <math.h>
#include <string.h>

static const int64_t T0 = 1700000040; /* a minute boundary */

struct feed {
    uint64_t requests, errors;
    uint64_t sketch[METRIC_SKETCH_BUCKETS];
};

static void add(struct feed *f, uint64_t n, uint64_t errors, double seconds)
{
    f->requests += n;
    f->errors += errors;
    f->sketch[metric_sketch_index(seconds)] += n;
}

static void record(struct obs_history *h, int64_t t, const struct feed *f, double slow_s)
{
    struct obs_sample s = {.kind = OBS_SERIES_EDGE,
                           .name = "gateway->api",
                           .requests = f->requests,
                           .errors = f->errors,
                           .sketch = f->sketch,
                           .slow_s = slow_s};

    assert_int_equal(obs_history_record(h, t, &s, 1), 0);
}

static bool near(double a, double b, double rel)
{
    return fabs(a - b) <= rel * fabs(b);
}

/* Each second's point is that second's requests: rate, errors, quantiles. */
static void test_history__second_points_from_cumulative_counts(void **state)
{
    struct obs_history *h = NULL;
    struct feed f = {0};
    struct obs_point *pts = NULL;
    size_t n = 0;
    uint32_t step = 0;

    (void)state;
    assert_int_equal(obs_history_new(NULL, &h), 0);
    record(h, T0, &f, 0); /* the first sample gives no point */
    for (int i = 1; i <= 10; i++) {
        add(&f, 100, i == 5 ? 10 : 0, i <= 5 ? 0.010 : 0.060);
        record(h, T0 + i, &f, 0);
    }
    assert_int_equal(
        obs_history_points(h, OBS_SERIES_EDGE, "gateway->api", T0 + 10, 300, &pts, &n, &step), 0);
    assert_int_equal(n, 300);
    assert_int_equal(step, 1);
    assert_int_equal(pts[299].t, T0 + 10);
    assert_true(near(pts[299].rps, 100, 1e-9));
    assert_true(near(pts[299].p99_ms, 60, 0.02));
    assert_true(near(pts[294].p50_ms, 10, 0.02)); /* T0 + 5 */
    assert_true(near(pts[294].error_ratio, 0.1, 1e-6));
    assert_true(pts[293].error_ratio == 0);
    assert_true(isnan(pts[289].rps)); /* T0: the first sample, no point */
    assert_true(isnan(pts[0].p99_ms) && pts[0].requests == 0);
    sh_free(pts);
    assert_int_equal(obs_history_points(h, OBS_SERIES_EDGE, "nope", T0 + 10, 300, &pts, &n, &step),
                     SH_ENOENT);
    assert_int_equal(
        obs_history_points(h, OBS_SERIES_EDGE, "gateway->api", T0 + 10, 0, &pts, &n, &step),
        SH_EINVAL);
    assert_int_equal(
        obs_history_points(h, OBS_SERIES_EDGE, "gateway->api", T0 + 10, 86401, &pts, &n, &step),
        SH_EINVAL);
    obs_history_free(h);
}

/* A minute's point holds the minute's quantiles (merged), not an average of its seconds':
 * 59 seconds at 10 ms and one second of 100 requests at 500 ms give a minute p99 of 500 ms
 * only if those 100 are more than 1% of the minute. */
static void test_history__minute_points_merge_the_minute(void **state)
{
    struct obs_history *h = NULL;
    struct feed f = {0};
    struct obs_point *pts = NULL;
    size_t n = 0;
    uint32_t step = 0;

    (void)state;
    assert_int_equal(obs_history_new(NULL, &h), 0);
    record(h, T0 - 1, &f, 0);
    for (int i = 0; i < 120; i++) {
        if (i == 30)
            add(&f, 100, 5, 0.5);
        else
            add(&f, 50, 0, 0.010);
        record(h, T0 + i, &f, 0);
    }
    record(h, T0 + 121, &f, 0); /* the second minute ends with a one-second gap */
    assert_int_equal(
        obs_history_points(h, OBS_SERIES_EDGE, "gateway->api", T0 + 125, 7200, &pts, &n, &step), 0);
    assert_int_equal(step, 60);
    assert_int_equal(n, 120);
    /* pts[n-1] is the minute T0+60..T0+119, pts[n-2] the minute T0..T0+59 */
    assert_int_equal(pts[n - 1].t, T0 + 120);
    assert_int_equal(pts[n - 2].t, T0 + 60);
    assert_true(near(pts[n - 2].requests, 59 * 50 + 100, 1e-9));
    assert_true(near(pts[n - 2].rps, (59 * 50 + 100) / 60.0, 1e-9));
    assert_true(near(pts[n - 2].p99_ms, 500, 0.02));
    assert_true(near(pts[n - 2].p50_ms, 10, 0.02));
    assert_true(near(pts[n - 2].error_ratio, 5.0 / (59 * 50 + 100), 1e-6));
    assert_true(near(pts[n - 1].p99_ms, 10, 0.02));
    assert_true(near(pts[n - 1].requests, 60 * 50, 1e-9));
    assert_true(pts[n - 3].requests == 0); /* the minute of the first sample: nothing after it */
    assert_true(isnan(pts[n - 4].rps));
    sh_free(pts);
    obs_history_free(h);
}

/* The second ring keeps one hour: older seconds are gone, gaps read as no data. */
static void test_history__rings_wrap_and_gaps_are_no_data(void **state)
{
    struct obs_history *h = NULL;
    struct feed f = {0};
    struct obs_point *pts = NULL, tot;
    size_t n = 0;
    uint32_t step = 0;

    (void)state;
    assert_int_equal(obs_history_new(NULL, &h), 0);
    record(h, T0, &f, 0);
    for (int i = 1; i <= 4000; i++) {
        add(&f, 1, 0, 0.001);
        /* a few missed samples, and a stall of 100 s */
        if (i % 1000 != 500 && (i < 3700 || i >= 3800)) record(h, T0 + i, &f, 0);
    }
    assert_int_equal(
        obs_history_points(h, OBS_SERIES_EDGE, "gateway->api", T0 + 4000, 3600, &pts, &n, &step),
        0);
    assert_int_equal(n, 3600);
    assert_int_equal(pts[0].t, T0 + 401);
    assert_true(near(pts[0].rps, 1, 1e-9));
    /* T0 + 3500 was not sampled: the next sample's two seconds share what it saw */
    assert_true(near(pts[3500 - 401].rps, 1, 1e-9));
    assert_true(near(pts[3501 - 401].rps, 1, 1e-9));
    /* after a stall of over a minute, the seconds it covered are gaps and the sample after it
     * carries everything */
    assert_true(isnan(pts[3750 - 401].rps) && pts[3750 - 401].requests == 0);
    assert_true(near(pts[3800 - 401].requests, 101, 1e-9));
    sh_free(pts);
    assert_int_equal(obs_history_totals(h, OBS_SERIES_EDGE, "gateway->api", T0 + 4000, 3600, &tot),
                     0);
    assert_true(near(tot.requests, 3600, 1e-9));
    assert_true(near(tot.rps, 1, 1e-9));
    obs_history_free(h);
}

/* The last minute from the ten-second marks; counts that go down start the series over. */
static void test_history__recent_window_and_restart(void **state)
{
    struct obs_history *h = NULL;
    struct feed f = {0};
    struct obs_point p;

    (void)state;
    assert_int_equal(obs_history_new(NULL, &h), 0);
    assert_int_equal(obs_history_recent(h, OBS_SERIES_EDGE, "gateway->api", &p), SH_ENOENT);
    record(h, T0, &f, 0);
    assert_int_equal(obs_history_recent(h, OBS_SERIES_EDGE, "gateway->api", &p), 0);
    assert_true(p.rps == 0 && p.requests == 0);
    for (int i = 1; i <= 200; i++) {
        add(&f, i <= 100 ? 10 : 20, i > 100 ? 2 : 0, i <= 100 ? 0.2 : 0.060);
        record(h, T0 + i, &f, 0);
    }
    assert_int_equal(obs_history_recent(h, OBS_SERIES_EDGE, "gateway->api", &p), 0);
    assert_true(near(p.rps, 20, 1e-9)); /* only the last ~60 s: the 20/s part */
    assert_true(near(p.error_ratio, 0.1, 1e-6));
    assert_true(near(p.p99_ms, 60, 0.02));
    assert_true(p.requests >= 60 * 20 && p.requests < 70 * 20);
    /* a restarted proxy: counts start over from 0 */
    memset(&f, 0, sizeof(f));
    add(&f, 5, 0, 0.060);
    record(h, T0 + 201, &f, 0);
    {
        struct obs_point *pts = NULL;
        size_t n = 0;
        uint32_t step = 0;
        assert_int_equal(
            obs_history_points(h, OBS_SERIES_EDGE, "gateway->api", T0 + 201, 5, &pts, &n, &step),
            0);
        assert_true(near(pts[n - 1].requests, 5, 1e-9));
        sh_free(pts);
    }
    obs_history_free(h);
}

static void count_series(void *data, enum obs_series_kind kind, const char *name)
{
    (void)kind;
    (void)name;
    (*(int *)data)++;
}

static void test_history__limits(void **state)
{
    struct obs_history *h = NULL;
    char longname[OBS_HISTORY_NAME_MAX + 2];
    struct obs_sample s[3] = {{.kind = OBS_SERIES_SERVICE, .name = "a"},
                              {.kind = OBS_SERIES_SERVICE, .name = "b"},
                              {.kind = OBS_SERIES_SERVICE, .name = ""}};
    int seen = 0;

    (void)state;
    assert_int_equal(obs_history_new(&(struct obs_history_config){.max_series = 1}, &h), 0);
    assert_int_equal(obs_history_record(h, T0, s, 2), SH_ELIMIT);
    assert_int_equal(obs_history_record(h, T0 + 1, &s[2], 1), SH_EINVAL);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    s[2].name = longname;
    assert_int_equal(obs_history_record(h, T0 + 1, &s[2], 1), SH_EINVAL);
    obs_history_each(h, count_series, &seen);
    assert_int_equal(seen, 1); /* "a" only */
    obs_history_free(h);
}

/* ---- SLOs ---- */

static void test_slo__budget_and_burn(void **state)
{
    struct obs_slo slo = {.availability = 99.9, .window_s = 30 * 86400};
    struct obs_point win = {.requests = 1000000, .error_ratio = 0.0005};
    struct obs_point h1 = {.requests = 3600, .error_ratio = 0.0144};
    struct obs_point h6 = {.requests = 21600, .error_ratio = 0.001};
    struct obs_slo_status st;

    (void)state;
    obs_slo_eval(&slo, &win, &h1, &h6, &st);
    assert_true(near(st.budget_left, 0.5, 1e-9)); /* half of the 0.1% spent */
    assert_true(near(st.burn_1h, 14.4, 1e-9));    /* the classic fast-burn page threshold */
    assert_true(near(st.burn_6h, 1, 1e-9));
    assert_true(near(st.availability, 99.95, 1e-9));
    assert_true(isnan(st.latency_good));

    /* latency objective: 99% under 300 ms; 2% slow spends twice the budget */
    slo = (struct obs_slo){.latency_ms = 300, .latency_percent = 99, .window_s = 86400};
    win = (struct obs_point){.requests = 1000, .slow_ratio = 0.02};
    obs_slo_eval(&slo, &win, &win, &win, &st);
    assert_true(near(st.budget_left, -1, 1e-9));
    assert_true(near(st.burn_1h, 2, 1e-9));
    assert_true(near(st.latency_good, 98, 1e-9));

    /* both: the worse objective wins */
    slo.availability = 99;
    win.error_ratio = 0.005;
    obs_slo_eval(&slo, &win, &win, &win, &st);
    assert_true(near(st.budget_left, -1, 1e-9));
    assert_true(near(st.burn_6h, 2, 1e-9));

    /* no traffic: whole budget, no burn */
    win = (struct obs_point){0};
    obs_slo_eval(&slo, &win, &win, &win, &st);
    assert_true(st.budget_left == 1 && st.burn_1h == 0 && st.burn_6h == 0);
    assert_true(isnan(st.availability));
}

/* The slow share of a point counts the requests over the series' threshold. */
static void test_slo__slow_ratio_from_the_sketch(void **state)
{
    struct obs_history *h = NULL;
    struct feed f = {0};
    struct obs_point tot;

    (void)state;
    assert_int_equal(obs_history_new(NULL, &h), 0);
    record(h, T0, &f, 0.3);
    for (int i = 1; i <= 100; i++) {
        add(&f, 99, 0, 0.050);
        add(&f, 1, 0, 0.900);
        record(h, T0 + i, &f, 0.3);
    }
    assert_int_equal(obs_history_totals(h, OBS_SERIES_EDGE, "gateway->api", T0 + 100, 3600, &tot),
                     0);
    assert_true(near(tot.requests, 10000, 1e-9));
    assert_true(near(tot.slow_ratio, 0.01, 1e-6));
    obs_history_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_history__second_points_from_cumulative_counts),
        SH_TEST(test_history__minute_points_merge_the_minute),
        SH_TEST(test_history__rings_wrap_and_gaps_are_no_data),
        SH_TEST(test_history__recent_window_and_restart),
        SH_TEST(test_history__limits),
        SH_TEST(test_slo__budget_and_burn),
        SH_TEST(test_slo__slow_ratio_from_the_sketch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
