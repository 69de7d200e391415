/* SPDX-License-Identifier: MIT */
/* test_resilience.c: the breaker, outlier ejection and eligibility decisions (resilience.c),
 * driven as plain functions: no sockets, time passed in. */
#include "test_util.h"

#include "proxy/proxy.h"

#include <string.h>

static struct proxy_breaker breaker_cfg(void)
{
    struct proxy_cluster cl;

    proxy_cluster_defaults(&cl);
    return cl.breaker;
}

static struct proxy_outlier outlier_cfg(void)
{
    struct proxy_cluster cl;

    proxy_cluster_defaults(&cl);
    return cl.outlier;
}

/* One request through the breaker at now; returns the change its outcome made. */
static enum proxy_breaker_change request(struct proxy_breaker_state *s,
                                         const struct proxy_breaker *cfg, bool failed, uint64_t now)
{
    enum proxy_breaker_verdict v = proxy_breaker_admit(s, cfg, now);

    assert_int_not_equal(v, PROXY_BREAKER_REJECT);
    return proxy_breaker_record(s, cfg, failed, v == PROXY_BREAKER_PROBE, now);
}

/* The default breaker does not open on a run of failures below the minimum volume: a few
 * failed requests (one endpoint of several dying, its requests not yet retried elsewhere) are
 * outlier detection's business. */
static void test_resilience__breaker_needs_volume_and_ratio(void **state)
{
    struct proxy_breaker cfg = breaker_cfg();
    struct proxy_breaker_state s = {0};
    uint64_t now = 1000;
    (void)state;

    for (int i = 0; i < 19; i++)
        assert_int_equal(request(&s, &cfg, true, now++), PROXY_BREAKER_SAME);
    assert_int_equal(s.phase, PROXY_BREAKER_CLOSED);
    /* the 20th request makes the volume; 20 of 20 failed: open */
    assert_int_equal(request(&s, &cfg, true, now++), PROXY_BREAKER_OPENED);
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now), PROXY_BREAKER_REJECT);
}

static void test_resilience__breaker_stays_closed_under_the_ratio(void **state)
{
    struct proxy_breaker cfg = breaker_cfg();
    struct proxy_breaker_state s = {0};
    uint64_t now = 1000;
    (void)state;

    /* 40% errors over 1,000 requests spread through several windows: never opens */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(request(&s, &cfg, i % 5 < 2, now += 37), PROXY_BREAKER_SAME);
    assert_int_equal(s.phase, PROXY_BREAKER_CLOSED);
}

static void test_resilience__breaker_window_slides(void **state)
{
    struct proxy_breaker cfg = breaker_cfg();
    struct proxy_breaker_state s = {0};
    uint32_t r, e;
    (void)state;

    for (int i = 0; i < 15; i++)
        request(&s, &cfg, true, 1000);
    proxy_breaker_window(&s, &cfg, 1000, &r, &e);
    assert_int_equal(r, 15);
    assert_int_equal(e, 15);
    /* a full window later the old failures are gone: 10 more do not reach the volume */
    for (int i = 0; i < 10; i++)
        assert_int_equal(request(&s, &cfg, true, 1000 + cfg.window_ms + 1), PROXY_BREAKER_SAME);
    proxy_breaker_window(&s, &cfg, 1000 + cfg.window_ms + 1, &r, &e);
    assert_int_equal(r, 10);
    assert_int_equal(s.phase, PROXY_BREAKER_CLOSED);
}

static void test_resilience__breaker_half_open_probe(void **state)
{
    struct proxy_breaker cfg = breaker_cfg();
    struct proxy_breaker_state s = {0};
    uint64_t now = 1000;
    (void)state;

    for (int i = 0; i < 20; i++)
        request(&s, &cfg, true, now);
    assert_int_equal(s.phase, PROXY_BREAKER_OPEN);
    now += cfg.open_ms;
    /* one probe at a time */
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now), PROXY_BREAKER_PROBE);
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now), PROXY_BREAKER_REJECT);
    /* a request admitted before the opening reports late: changes nothing */
    assert_int_equal(proxy_breaker_record(&s, &cfg, false, false, now), PROXY_BREAKER_SAME);
    assert_int_equal(proxy_breaker_record(&s, &cfg, true, true, now), PROXY_BREAKER_REOPENED);
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now + 1), PROXY_BREAKER_REJECT);
    now += cfg.open_ms + 1;
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now), PROXY_BREAKER_PROBE);
    /* the client left before the probe reached the cluster: another may probe */
    proxy_breaker_probe_abandoned(&s);
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now), PROXY_BREAKER_PROBE);
    assert_int_equal(proxy_breaker_record(&s, &cfg, false, true, now), PROXY_BREAKER_RECLOSED);
    assert_int_equal(proxy_breaker_admit(&s, &cfg, now), PROXY_BREAKER_PASS);
    /* closed afresh: the old window does not count */
    assert_int_equal(request(&s, &cfg, true, now), PROXY_BREAKER_SAME);
}

static void test_resilience__breaker_consecutive_when_asked(void **state)
{
    struct proxy_breaker cfg = breaker_cfg();
    struct proxy_breaker_state s = {0};
    (void)state;

    assert_int_equal(cfg.consecutive_failures, 0); /* off by default */
    cfg.consecutive_failures = 3;
    request(&s, &cfg, true, 1);
    request(&s, &cfg, true, 2);
    request(&s, &cfg, false, 3); /* a success resets the run */
    request(&s, &cfg, true, 4);
    assert_int_equal(request(&s, &cfg, true, 5), PROXY_BREAKER_SAME);
    assert_int_equal(request(&s, &cfg, true, 6), PROXY_BREAKER_OPENED);
}

static void test_resilience__outlier_ejects_after_consecutive_errors(void **state)
{
    struct proxy_outlier cfg = outlier_cfg();
    struct proxy_outlier_state eps[3];
    uint64_t now = 1000;
    (void)state;

    memset(eps, 0, sizeof(eps));
    for (uint32_t i = 1; i < cfg.consecutive_errors; i++)
        assert_int_equal(proxy_outlier_record(eps, 3, 0, &cfg, true, 0, now), 0);
    assert_int_equal(proxy_outlier_record(eps, 3, 0, &cfg, true, 0, now), cfg.base_ejection_ms);
    assert_true(proxy_outlier_ejected(&eps[0], 0, now + 1));
    assert_false(proxy_outlier_ejected(&eps[0], 0, now + cfg.base_ejection_ms));
    /* a success in between resets the count */
    now += cfg.base_ejection_ms;
    for (uint32_t i = 1; i < cfg.consecutive_errors; i++)
        proxy_outlier_record(eps, 3, 1, &cfg, true, 0, now);
    proxy_outlier_record(eps, 3, 1, &cfg, false, 0, now);
    for (uint32_t i = 1; i < cfg.consecutive_errors; i++)
        assert_int_equal(proxy_outlier_record(eps, 3, 1, &cfg, true, 0, now), 0);
    assert_int_equal(proxy_outlier_record(eps, 3, 1, &cfg, true, 0, now), cfg.base_ejection_ms);
}

/* The fault of issue 10: a killed endpoint restarted at once stayed ejected for 30 s. A passing
 * active health check (the revival count moves) returns it at once. */
static void test_resilience__revival_returns_an_ejected_endpoint(void **state)
{
    struct proxy_outlier cfg = outlier_cfg();
    struct proxy_outlier_state eps[2];
    uint64_t now = 1000;
    (void)state;

    memset(eps, 0, sizeof(eps));
    for (uint32_t i = 0; i < cfg.consecutive_errors; i++)
        proxy_outlier_record(eps, 2, 0, &cfg, true, 7, now);
    assert_true(proxy_outlier_ejected(&eps[0], 7, now + 100));
    assert_false(proxy_outlier_ejected(&eps[0], 8, now + 200)); /* checked and passed */
    assert_false(proxy_outlier_ejected(&eps[0], 8, now + 300)); /* and stays back */
}

static void test_resilience__outlier_respects_max_share_and_decays(void **state)
{
    struct proxy_outlier cfg = outlier_cfg();
    struct proxy_outlier_state eps[2];
    uint64_t now = 1000, span;
    (void)state;

    memset(eps, 0, sizeof(eps));
    for (uint32_t i = 0; i < cfg.consecutive_errors; i++)
        proxy_outlier_record(eps, 2, 0, &cfg, true, 0, now);
    assert_true(proxy_outlier_ejected(&eps[0], 0, now));
    /* the second of two may not go: 50% at most */
    for (uint32_t i = 0; i < cfg.consecutive_errors; i++)
        assert_int_equal(proxy_outlier_record(eps, 2, 1, &cfg, true, 0, now), 0);
    assert_false(proxy_outlier_ejected(&eps[1], 0, now));
    /* ejected again right after: twice as long */
    now += cfg.base_ejection_ms;
    for (uint32_t i = 0; i < cfg.consecutive_errors; i++)
        span = proxy_outlier_record(eps, 2, 0, &cfg, true, 0, now);
    assert_int_equal(span, 2 * (uint64_t)cfg.base_ejection_ms);
    /* after a long healthy time the multiplier is forgotten */
    now += 10 * (uint64_t)cfg.base_ejection_ms;
    for (uint32_t i = 0; i < cfg.consecutive_errors; i++)
        span = proxy_outlier_record(eps, 2, 0, &cfg, true, 0, now);
    assert_int_equal(span, cfg.base_ejection_ms);
}

static void test_resilience__panic_threshold(void **state)
{
    bool ex[4];
    (void)state;

    /* 2 of 4 usable = 50%: not below the threshold, exclusions stand */
    memcpy(ex, (bool[]){true, true, false, false}, sizeof(ex));
    assert_false(proxy_pick_exclusions(ex, NULL, 4, 50));
    assert_true(ex[0] && ex[1] && !ex[2] && !ex[3]);
    /* 1 of 4 = 25% < 50%: panic, route to all */
    memcpy(ex, (bool[]){true, true, true, false}, sizeof(ex));
    assert_true(proxy_pick_exclusions(ex, NULL, 4, 50));
    assert_true(!ex[0] && !ex[1] && !ex[2] && !ex[3]);
    /* threshold 0: only when none is left */
    memcpy(ex, (bool[]){true, true, true, false}, sizeof(ex));
    assert_false(proxy_pick_exclusions(ex, NULL, 4, 0));
    memcpy(ex, (bool[]){true, true, true, true}, sizeof(ex));
    assert_true(proxy_pick_exclusions(ex, NULL, 4, 0));
}

static void test_resilience__retries_skip_tried_endpoints(void **state)
{
    bool ex[3], tried[3];
    (void)state;

    /* tried 0 and 1: only 2 is left */
    memcpy(ex, (bool[]){false, false, false}, sizeof(ex));
    memcpy(tried, (bool[]){true, true, false}, sizeof(tried));
    proxy_pick_exclusions(ex, tried, 3, 50);
    assert_true(ex[0] && ex[1] && !ex[2]);
    /* every usable one tried: the tried ones stay usable (the balancer avoids the last) */
    memcpy(ex, (bool[]){false, false, true}, sizeof(ex));
    memcpy(tried, (bool[]){true, true, false}, sizeof(tried));
    proxy_pick_exclusions(ex, tried, 3, 0);
    assert_true(!ex[0] && !ex[1] && ex[2]);
}

static void test_resilience__budget_starts_with_a_second_and_caps_retries(void **state)
{
    struct proxy_cluster cl;
    struct proxy_budget b = {0};
    int retries = 0;
    (void)state;

    proxy_cluster_defaults(&cl); /* 20%, 10 a second */
    /* a new cluster: its first failures are retried (a second's worth) */
    for (int i = 0; i < 10; i++)
        assert_true(proxy_budget_spend(&b, &cl.retry, 1000));
    assert_false(proxy_budget_spend(&b, &cl.retry, 1000));
    /* then 1,000 requests in the same millisecond, each wanting a retry: about 20% get one */
    for (int i = 0; i < 1000; i++) {
        proxy_budget_earn(&b, &cl.retry, 1000);
        retries += proxy_budget_spend(&b, &cl.retry, 1000);
    }
    assert_in_range(retries, 195, 205);
    /* a second later, min_per_second more */
    for (int i = 0; i < 10; i++)
        assert_true(proxy_budget_spend(&b, &cl.retry, 2000));
    assert_false(proxy_budget_spend(&b, &cl.retry, 2000));
    proxy_budget_refund(&b);
    assert_true(proxy_budget_spend(&b, &cl.retry, 2000));
}

static void test_resilience__bucket_limits_and_says_when(void **state)
{
    struct proxy_bucket b = {0};
    (void)state;

    /* 2 a second, burst 3 */
    for (int i = 0; i < 3; i++)
        assert_int_equal(proxy_bucket_take(&b, 42, 2.0, 3.0, 1000), 0);
    assert_int_equal(proxy_bucket_take(&b, 42, 2.0, 3.0, 1000), 1);
    assert_int_equal(proxy_bucket_take(&b, 42, 2.0, 3.0, 1500), 0);  /* one token in 500 ms */
    assert_int_equal(proxy_bucket_take(&b, 42, 0.1, 3.0, 1500), 10); /* 0.1/s: wait 10 s */
    /* another key taking the slot starts full */
    assert_int_equal(proxy_bucket_take(&b, 7, 2.0, 3.0, 1500), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_resilience__breaker_needs_volume_and_ratio),
        SH_TEST(test_resilience__breaker_stays_closed_under_the_ratio),
        SH_TEST(test_resilience__breaker_window_slides),
        SH_TEST(test_resilience__breaker_half_open_probe),
        SH_TEST(test_resilience__breaker_consecutive_when_asked),
        SH_TEST(test_resilience__outlier_ejects_after_consecutive_errors),
        SH_TEST(test_resilience__revival_returns_an_ejected_endpoint),
        SH_TEST(test_resilience__outlier_respects_max_share_and_decays),
        SH_TEST(test_resilience__panic_threshold),
        SH_TEST(test_resilience__retries_skip_tried_endpoints),
        SH_TEST(test_resilience__budget_starts_with_a_second_and_caps_retries),
        SH_TEST(test_resilience__bucket_limits_and_says_when),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
