/* SPDX-License-Identifier: MIT */
/* test_lb.c: the balancers' distributions, stickiness and exclusions. */
#include "test_util.h"

#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>

struct fixture {
    struct proxy_config *cfg;
    struct proxy_cluster *cl;
};

static void make(struct fixture *fx, enum proxy_lb lb, uint32_t n, const uint32_t *weights)
{
    assert_int_equal(proxy_config_new(&fx->cfg), 0);
    fx->cl = arena_alloc(&fx->cfg->arena, sizeof(*fx->cl));
    proxy_cluster_defaults(fx->cl);
    fx->cl->name = "c";
    fx->cl->lb = lb;
    fx->cl->nendpoints = n;
    fx->cl->endpoints = arena_alloc(&fx->cfg->arena, n * sizeof(struct proxy_endpoint));
    memset(fx->cl->endpoints, 0, n * sizeof(struct proxy_endpoint));
    for (uint32_t i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", 9000 + i);
        fx->cl->endpoints[i].name = arena_strndup(&fx->cfg->arena, addr, strlen(addr));
        fx->cl->endpoints[i].weight = weights ? weights[i] : 1;
        assert_int_equal(http_parse_addr(addr, &fx->cl->endpoints[i].addr, NULL), 0);
    }
    fx->cfg->clusters = fx->cl;
    fx->cfg->nclusters = 1;
    assert_int_equal(proxy_config_finish(fx->cfg, NULL), 0);
}

static void test_lb__round_robin_is_exact(void **state)
{
    struct fixture fx;
    struct proxy_lb_state st;
    uint32_t count[3] = {0};
    struct proxy_pick_ctx ctx = {.avoid = UINT32_MAX};

    (void)state;
    make(&fx, PROXY_LB_ROUND_ROBIN, 3, NULL);
    assert_int_equal(proxy_lb_state_init(&st, fx.cl, 7), 0);
    for (int i = 0; i < 300; i++)
        count[proxy_lb_pick(fx.cl, &st, &ctx)]++;
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 100);
    assert_int_equal(count[2], 100);
    proxy_lb_state_release(&st);
    proxy_config_free(fx.cfg);
}

static void test_lb__smooth_weighted_interleaves(void **state)
{
    struct fixture fx;
    struct proxy_lb_state st;
    const uint32_t w[3] = {5, 1, 1};
    char seq[8] = {0};
    struct proxy_pick_ctx ctx = {.avoid = UINT32_MAX};

    (void)state;
    make(&fx, PROXY_LB_WEIGHTED, 3, w);
    assert_int_equal(proxy_lb_state_init(&st, fx.cl, 1), 0);
    for (int i = 0; i < 7; i++)
        seq[i] = (char)('a' + proxy_lb_pick(fx.cl, &st, &ctx));
    /* nginx's documented sequence for weights 5,1,1 */
    assert_string_equal(seq, "aabacaa");
    proxy_lb_state_release(&st);
    proxy_config_free(fx.cfg);
}

static void test_lb__excluded_endpoints_are_skipped_until_all_are(void **state)
{
    struct fixture fx;
    struct proxy_lb_state st;
    bool excluded[3] = {false, true, false};
    struct proxy_pick_ctx ctx = {.excluded = excluded, .avoid = UINT32_MAX};

    (void)state;
    make(&fx, PROXY_LB_ROUND_ROBIN, 3, NULL);
    assert_int_equal(proxy_lb_state_init(&st, fx.cl, 0), 0);
    for (int i = 0; i < 30; i++)
        assert_int_not_equal(proxy_lb_pick(fx.cl, &st, &ctx), 1);
    excluded[0] = excluded[2] = true; /* all excluded: panic mode uses them all */
    assert_int_not_equal(proxy_lb_pick(fx.cl, &st, &ctx), UINT32_MAX);
    proxy_lb_state_release(&st);
    proxy_config_free(fx.cfg);
}

static void test_lb__least_request_prefers_idle(void **state)
{
    struct fixture fx;
    struct proxy_lb_state st;
    uint32_t active[2] = {50, 0}, count[2] = {0};
    struct proxy_pick_ctx ctx = {.active = active, .avoid = UINT32_MAX};

    (void)state;
    make(&fx, PROXY_LB_LEAST_REQUEST, 2, NULL);
    assert_int_equal(proxy_lb_state_init(&st, fx.cl, 3), 0);
    for (int i = 0; i < 1000; i++)
        count[proxy_lb_pick(fx.cl, &st, &ctx)]++;
    /* endpoint 0 wins only when both choices land on it: about a quarter */
    assert_true(count[1] > 650);
    proxy_lb_state_release(&st);
    proxy_config_free(fx.cfg);
}

static uint32_t pick_key(struct fixture *fx, struct proxy_lb_state *st, const char *key,
                         const bool *excluded)
{
    struct proxy_pick_ctx ctx = {
        .excluded = excluded, .hash_key = slice_from_cstr(key), .avoid = UINT32_MAX};
    return proxy_lb_pick(fx->cl, st, &ctx);
}

static void hash_behaviour(enum proxy_lb lb)
{
    struct fixture fx;
    struct proxy_lb_state st;
    uint32_t count[4] = {0}, before[2000];
    bool excluded[4] = {false, false, false, true};
    char key[32];
    int moved = 0;

    make(&fx, lb, 4, NULL);
    assert_int_equal(proxy_lb_state_init(&st, fx.cl, 0), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        before[i] = pick_key(&fx, &st, key, NULL);
        assert_int_equal(pick_key(&fx, &st, key, NULL), before[i]); /* sticky */
        count[before[i]]++;
    }
    for (int e = 0; e < 4; e++)
        assert_true(count[e] > 300 && count[e] < 700); /* spread */
    /* endpoint 3 goes away: only its keys move */
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "user-%d", i);
        uint32_t now = pick_key(&fx, &st, key, excluded);
        assert_int_not_equal(now, 3);
        if (before[i] != 3 && now != before[i]) moved++;
    }
    assert_int_equal(moved, 0);
    proxy_lb_state_release(&st);
    proxy_config_free(fx.cfg);
}

static void test_lb__ring_hash_is_sticky_and_moves_only_lost_keys(void **state)
{
    (void)state;
    hash_behaviour(PROXY_LB_RING_HASH);
}

static void test_lb__maglev_is_sticky_and_moves_only_lost_keys(void **state)
{
    (void)state;
    hash_behaviour(PROXY_LB_MAGLEV);
}

static void test_lb__retry_avoids_the_previous_endpoint(void **state)
{
    struct fixture fx;
    struct proxy_lb_state st;

    (void)state;
    make(&fx, PROXY_LB_RANDOM, 3, NULL);
    assert_int_equal(proxy_lb_state_init(&st, fx.cl, 5), 0);
    for (int i = 0; i < 100; i++) {
        struct proxy_pick_ctx ctx = {.avoid = (uint32_t)(i % 3)};
        assert_int_not_equal(proxy_lb_pick(fx.cl, &st, &ctx), (uint32_t)(i % 3));
    }
    proxy_lb_state_release(&st);
    proxy_config_free(fx.cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_lb__round_robin_is_exact),
        SH_TEST(test_lb__smooth_weighted_interleaves),
        SH_TEST(test_lb__excluded_endpoints_are_skipped_until_all_are),
        SH_TEST(test_lb__least_request_prefers_idle),
        SH_TEST(test_lb__ring_hash_is_sticky_and_moves_only_lost_keys),
        SH_TEST(test_lb__maglev_is_sticky_and_moves_only_lost_keys),
        SH_TEST(test_lb__retry_avoids_the_previous_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
