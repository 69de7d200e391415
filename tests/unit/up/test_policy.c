/* SPDX-License-Identifier: MIT */
/* test_policy.c: the stack's decisions (src/up/policy.c) without processes: which instance
 * leaves first, reconcile counts, rolling-restart steps, the autoscaler's asks and timing. */
#include "test_util.h"

#include "up/up.h"

#include <string.h>

static void test_policy__victim_order(void **state)
{
    struct up_member m[] = {
        {.ordinal = 1, .is_started = true, .is_ready = true},
        {.ordinal = 2, .is_started = true, .is_ready = false},
        {.ordinal = 3, .is_started = true, .is_ready = true},
        {.ordinal = 4, .is_started = false},
        {.ordinal = 5, .is_started = false, .is_retiring = true},
    };
    (void)state;

    assert_int_equal(up_policy_victim(m, 5), 3); /* not started first */
    m[3].is_retiring = true;
    assert_int_equal(up_policy_victim(m, 5), 1); /* then not ready */
    m[1].is_retiring = true;
    assert_int_equal(up_policy_victim(m, 5), 2); /* then the newest */
    assert_int_equal(up_policy_victim(m, 0), SIZE_MAX);
    for (size_t i = 0; i < 5; i++)
        m[i].is_retiring = true;
    assert_int_equal(up_policy_victim(m, 5), SIZE_MAX);
}

static void test_policy__reconcile(void **state)
{
    (void)state;
    assert_int_equal(up_policy_reconcile(2, 4, false), 2);
    assert_int_equal(up_policy_reconcile(4, 1, false), -3);
    assert_int_equal(up_policy_reconcile(3, 3, false), 0);
    assert_int_equal(up_policy_reconcile(1, 4, true), 0); /* a restart owns the count */
}

static void test_policy__rolling_restart_steps(void **state)
{
    struct up_roll_view v = {.total = 2, .limit_ms = 60000};
    (void)state;

    assert_int_equal(up_policy_roll(&v), UP_ROLL_NEXT);
    v.has_new = true;
    v.waited_ms = 100;
    assert_int_equal(up_policy_roll(&v), UP_ROLL_WAIT);
    v.is_new_ready = true;
    assert_int_equal(up_policy_roll(&v), UP_ROLL_PROMOTE);
    v.is_new_ready = false;
    v.is_crash_loop = true;
    assert_int_equal(up_policy_roll(&v), UP_ROLL_ABORT); /* crash-looping: stop at once */
    v.is_crash_loop = false;
    v.waited_ms = 60000;
    assert_int_equal(up_policy_roll(&v), UP_ROLL_ABORT); /* never ready in time */
    v.waited_ms = 10;
    v.is_new_gone = true;
    v.is_new_ready = true;
    assert_int_equal(up_policy_roll(&v), UP_ROLL_ABORT); /* removed meanwhile */
    v = (struct up_roll_view){.done = 2, .total = 2};
    assert_int_equal(up_policy_roll(&v), UP_ROLL_FINISHED);
}

static void test_policy__roll_step_limit(void **state)
{
    struct manifest_service s;
    (void)state;

    memset(&s, 0, sizeof(s));
    assert_int_equal(up_policy_roll_step_limit(&s), UP_ROLL_STEP_MS);
    s.health.start_period_ms = 5000;
    s.health.interval_ms = 10000;
    s.health.healthy_threshold = 2;
    assert_int_equal(up_policy_roll_step_limit(&s), 5000 + 3 * 10000 * 3);
    s.port = 8080; /* one fixed port: the old one drains and stops first */
    s.stop_grace_ms = 2000;
    assert_int_equal(up_policy_roll_step_limit(&s), 5000 + 3 * 10000 * 3 + UP_DRAIN_MAX_MS + 2000);
}

static void test_policy__desired_by_target(void **state)
{
    struct manifest_autoscale as = {
        .is_set = true, .min = 1, .max = 8, .target_kind = MANIFEST_TARGET_IN_FLIGHT, .target = 50};
    struct up_load_view load = {.in_flight = 240};
    (void)state;

    assert_int_equal(up_policy_desired(&as, 2, &load), 5); /* ceil(240 / 50) */
    load.in_flight = 105;
    assert_int_equal(up_policy_desired(&as, 2, &load), 2); /* within 10%: hold */
    load.in_flight = 5000;
    assert_int_equal(up_policy_desired(&as, 2, &load), 8); /* max */
    load.in_flight = 0;
    assert_int_equal(up_policy_desired(&as, 2, &load), 1); /* min, never 0 */
    as.target_kind = MANIFEST_TARGET_P99_MS;
    as.target = 100;
    load = (struct up_load_view){.rps = 10, .p99_ms = 250};
    assert_int_equal(up_policy_desired(&as, 4, &load), 6); /* up by half */
    load.p99_ms = 20;
    assert_int_equal(up_policy_desired(&as, 4, &load), 3); /* well under: down by one */
    load.p99_ms = 80;
    assert_int_equal(up_policy_desired(&as, 4, &load), 4);
}

static void test_policy__autoscale_timing(void **state)
{
    struct manifest_autoscale as = {
        .is_set = true, .min = 1, .max = 8, .up_cooldown_ms = 30000, .down_cooldown_ms = 300000};
    struct up_scale_state st = {0};
    const char *why;
    uint64_t t = 1000;
    (void)state;

    /* up: only once the ask has held UP_SCALE_SUSTAIN_MS */
    assert_int_equal(up_policy_autoscale(&as, &st, 2, 4, t, &why), 2);
    assert_null(why);
    assert_int_equal(up_policy_autoscale(&as, &st, 2, 4, t + UP_SCALE_SUSTAIN_MS - 1, &why), 2);
    assert_int_equal(up_policy_autoscale(&as, &st, 2, 4, t + UP_SCALE_SUSTAIN_MS, &why), 4);
    assert_string_equal(why, "scaling up");
    /* and not again within up_cooldown */
    t += UP_SCALE_SUSTAIN_MS;
    up_policy_autoscale(&as, &st, 4, 6, t + 1000, &why);
    assert_int_equal(up_policy_autoscale(&as, &st, 4, 6, t + 20000, &why), 4);
    assert_int_equal(up_policy_autoscale(&as, &st, 4, 6, t + 30000, &why), 6);
    /* down: after down_cooldown, to the most asked for meanwhile */
    t += 30000;
    assert_int_equal(up_policy_autoscale(&as, &st, 6, 2, t, &why), 6);
    assert_int_equal(up_policy_autoscale(&as, &st, 6, 3, t + 100000, &why), 6);
    assert_int_equal(up_policy_autoscale(&as, &st, 6, 2, t + 300000, &why), 3);
    assert_string_equal(why, "scaling down");
    /* an ask that matches the count resets both clocks */
    assert_int_equal(up_policy_autoscale(&as, &st, 3, 5, t + 400000, &why), 3);
    assert_int_equal(up_policy_autoscale(&as, &st, 3, 3, t + 401000, &why), 3);
    assert_int_equal(up_policy_autoscale(&as, &st, 3, 5, t + 402000, &why), 3);
    assert_null(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_policy__victim_order),          SH_TEST(test_policy__reconcile),
        SH_TEST(test_policy__rolling_restart_steps), SH_TEST(test_policy__roll_step_limit),
        SH_TEST(test_policy__desired_by_target),     SH_TEST(test_policy__autoscale_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
