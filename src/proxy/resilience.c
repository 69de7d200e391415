/* SPDX-License-Identifier: MIT */
/* resilience.c: the decisions of the cluster breaker, outlier ejection, endpoint eligibility
 * (panic threshold, previous hosts), the retry budget and rate-limit buckets, as plain
 * functions over plain structs. forward.c gathers
 * the inputs on the request path and carries out what these return; tests/unit/proxy/
 * test_resilience.c drives them without sockets.
 *
 * Why the breaker counts requests and not attempts: with several endpoints, one dead endpoint
 * fails attempts that retries then serve elsewhere. Counting attempts opened the whole cluster
 * after one kill -9 while two healthy endpoints remained (issue 10: 13.7% of requests
 * succeeded). Outlier detection is what handles one endpoint; the breaker protects callers
 * only when the cluster as a whole fails its requests. */
#include "proxy/proxy.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Breaker: sliding window of PROXY_BREAKER_BUCKETS buckets, plus a consecutive count
 * ------------------------------------------------------------------------------------------ */
static uint64_t bucket_ms(const struct proxy_breaker *cfg)
{
    uint64_t b = cfg->window_ms / PROXY_BREAKER_BUCKETS;

    return b ? b : 1;
}

/* Moves the window to now: buckets that fell out of it are emptied. */
static void advance(struct proxy_breaker_state *s, const struct proxy_breaker *cfg, uint64_t now)
{
    uint64_t w = bucket_ms(cfg), steps;

    if (s->bucket_start_ms == 0 || now < s->bucket_start_ms) {
        s->bucket_start_ms = now;
        return;
    }
    steps = (now - s->bucket_start_ms) / w;
    if (steps == 0) return;
    if (steps >= PROXY_BREAKER_BUCKETS) {
        memset(s->requests, 0, sizeof(s->requests));
        memset(s->errors, 0, sizeof(s->errors));
    } else {
        for (uint64_t k = 0; k < steps; k++) {
            s->bucket = (s->bucket + 1) % PROXY_BREAKER_BUCKETS;
            s->requests[s->bucket] = s->errors[s->bucket] = 0;
        }
    }
    s->bucket_start_ms += steps * w;
}

static void window_sum(const struct proxy_breaker_state *s, uint32_t *requests, uint32_t *errors)
{
    uint32_t r = 0, e = 0;

    for (uint32_t i = 0; i < PROXY_BREAKER_BUCKETS; i++) {
        r += s->requests[i];
        e += s->errors[i];
    }
    *requests = r;
    *errors = e;
}

static void window_clear(struct proxy_breaker_state *s)
{
    memset(s->requests, 0, sizeof(s->requests));
    memset(s->errors, 0, sizeof(s->errors));
    s->consecutive_failures = 0;
}

void proxy_breaker_window(const struct proxy_breaker_state *s, const struct proxy_breaker *cfg,
                          uint64_t now_ms, uint32_t *requests, uint32_t *errors)
{
    struct proxy_breaker_state t = *s;

    advance(&t, cfg, now_ms);
    window_sum(&t, requests, errors);
}

enum proxy_breaker_verdict proxy_breaker_admit(struct proxy_breaker_state *s,
                                               const struct proxy_breaker *cfg, uint64_t now_ms)
{
    if (s->phase == PROXY_BREAKER_OPEN && now_ms >= s->open_until_ms) {
        s->phase = PROXY_BREAKER_HALF_OPEN;
        s->probe_in_flight = false;
    }
    switch (s->phase) {
    case PROXY_BREAKER_CLOSED:
        return PROXY_BREAKER_PASS;
    case PROXY_BREAKER_OPEN:
        return PROXY_BREAKER_REJECT;
    case PROXY_BREAKER_HALF_OPEN:
        break;
    }
    (void)cfg;
    if (s->probe_in_flight) return PROXY_BREAKER_REJECT;
    s->probe_in_flight = true;
    return PROXY_BREAKER_PROBE;
}

static bool should_open(const struct proxy_breaker_state *s, const struct proxy_breaker *cfg)
{
    uint32_t requests, errors;

    if (cfg->consecutive_failures && s->consecutive_failures >= cfg->consecutive_failures)
        return true;
    if (cfg->error_ratio <= 0) return false;
    window_sum(s, &requests, &errors);
    return requests >= SH_MAX(cfg->min_requests, 1u) &&
           (double)errors >= cfg->error_ratio * (double)requests;
}

enum proxy_breaker_change proxy_breaker_record(struct proxy_breaker_state *s,
                                               const struct proxy_breaker *cfg, bool failed,
                                               bool was_probe, uint64_t now_ms)
{
    if (was_probe && s->phase == PROXY_BREAKER_HALF_OPEN) {
        s->probe_in_flight = false;
        window_clear(s);
        if (failed) {
            s->phase = PROXY_BREAKER_OPEN;
            s->open_until_ms = now_ms + cfg->open_ms;
            return PROXY_BREAKER_REOPENED;
        }
        s->phase = PROXY_BREAKER_CLOSED;
        s->bucket_start_ms = now_ms;
        return PROXY_BREAKER_RECLOSED;
    }
    if (s->phase != PROXY_BREAKER_CLOSED)
        return PROXY_BREAKER_SAME; /* a request admitted before the breaker opened */
    advance(s, cfg, now_ms);
    s->requests[s->bucket]++;
    s->errors[s->bucket] += failed;
    s->consecutive_failures = failed ? s->consecutive_failures + 1 : 0;
    if (!failed || !should_open(s, cfg)) return PROXY_BREAKER_SAME;
    s->phase = PROXY_BREAKER_OPEN;
    s->open_until_ms = now_ms + cfg->open_ms;
    window_clear(s);
    return PROXY_BREAKER_OPENED;
}

void proxy_breaker_probe_abandoned(struct proxy_breaker_state *s)
{
    s->probe_in_flight = false;
}

/* ------------------------------------------------------------------------------------------
 * Outlier ejection
 * ------------------------------------------------------------------------------------------ */
/* Ejections are forgotten one per base_ejection_ms spent not ejected, so an endpoint that was
 * ejected once long ago starts again from the base time (Envoy decrements its multiplier). */
static void decay(struct proxy_outlier_state *e, const struct proxy_outlier *cfg, uint64_t now)
{
    uint64_t since, k;

    if (!e->ejections || !cfg->base_ejection_ms || now < e->ejected_until_ms) return;
    since = now - SH_MAX(e->ejected_until_ms, e->last_change_ms);
    k = since / cfg->base_ejection_ms;
    if (k == 0) return;
    e->ejections = k >= e->ejections ? 0 : e->ejections - (uint32_t)k;
    e->last_change_ms = now;
}

bool proxy_outlier_ejected(struct proxy_outlier_state *e, uint32_t revival, uint64_t now_ms)
{
    if (e->ejected_until_ms <= now_ms) return false;
    if (e->revival_seen != revival) {
        /* passed a health check, or registered again, since it was ejected */
        e->ejected_until_ms = 0;
        e->consecutive_errors = 0;
        e->last_change_ms = now_ms;
        return false;
    }
    return true;
}

uint64_t proxy_outlier_record(struct proxy_outlier_state *eps, uint32_t n, uint32_t ep,
                              const struct proxy_outlier *cfg, bool failed, uint32_t revival,
                              uint64_t now_ms)
{
    struct proxy_outlier_state *e = &eps[ep];
    uint32_t ejected = 0;
    uint64_t span;

    if (!failed) {
        e->consecutive_errors = 0;
        return 0;
    }
    if (!cfg->consecutive_errors || ++e->consecutive_errors < cfg->consecutive_errors) return 0;
    if (e->ejected_until_ms > now_ms)
        return 0; /* already out (a request that started before the ejection) */
    for (uint32_t i = 0; i < n; i++)
        ejected += eps[i].ejected_until_ms > now_ms;
    if ((uint64_t)(ejected + 1) * 100 > (uint64_t)cfg->max_ejection_percent * n)
        return 0; /* never eject more than the allowed share */
    decay(e, cfg, now_ms);
    span = SH_MIN((uint64_t)cfg->base_ejection_ms * (e->ejections + 1),
                  (uint64_t)cfg->max_ejection_ms);
    if (span == 0) return 0;
    e->ejected_until_ms = now_ms + span;
    e->ejections++;
    e->last_change_ms = now_ms;
    e->consecutive_errors = 0;
    e->revival_seen = revival;
    return span;
}

/* ------------------------------------------------------------------------------------------
 * Eligibility
 * ------------------------------------------------------------------------------------------ */
bool proxy_pick_exclusions(bool *excluded, const bool *tried, uint32_t n, uint32_t panic_percent)
{
    uint32_t usable = 0, untried = 0;
    bool panic;

    for (uint32_t i = 0; i < n; i++)
        usable += !excluded[i];
    panic = usable == 0 || (uint64_t)usable * 100 < (uint64_t)panic_percent * n;
    if (panic) memset(excluded, 0, n * sizeof(*excluded));
    if (!tried) return panic;
    for (uint32_t i = 0; i < n; i++)
        untried += !excluded[i] && !tried[i];
    if (untried) {
        for (uint32_t i = 0; i < n; i++)
            excluded[i] = excluded[i] || tried[i];
    }
    /* else every usable endpoint was tried: the balancer's own avoid of the last one decides */
    return panic;
}

/* ------------------------------------------------------------------------------------------
 * Retry budget and rate-limit buckets
 * ------------------------------------------------------------------------------------------ */
static void budget_refill(struct proxy_budget *b, const struct proxy_retry *rp, uint64_t now)
{
    double cap = (double)rp->budget_min_per_s * 10.0 + 100.0 * rp->budget_ratio;

    if (b->at_ms == 0) {
        b->at_ms = now;
        b->tokens = rp->budget_min_per_s;
    }
    if (now > b->at_ms) b->tokens += (double)(now - b->at_ms) / 1000.0 * rp->budget_min_per_s;
    b->at_ms = SH_MAX(b->at_ms, now);
    if (b->tokens > cap) b->tokens = cap;
}

void proxy_budget_earn(struct proxy_budget *b, const struct proxy_retry *rp, uint64_t now_ms)
{
    budget_refill(b, rp, now_ms);
    b->tokens += rp->budget_ratio;
}

bool proxy_budget_spend(struct proxy_budget *b, const struct proxy_retry *rp, uint64_t now_ms)
{
    budget_refill(b, rp, now_ms);
    if (b->tokens < 1.0) return false;
    b->tokens -= 1.0;
    return true;
}

bool proxy_budget_available(const struct proxy_budget *b, const struct proxy_retry *rp,
                            uint64_t now_ms)
{
    struct proxy_budget t = *b;

    budget_refill(&t, rp, now_ms);
    return t.tokens >= 1.0;
}

void proxy_budget_refund(struct proxy_budget *b)
{
    b->tokens += 1.0;
}

uint32_t proxy_bucket_take(struct proxy_bucket *b, uint32_t key_hash, double rate_per_s,
                           double burst, uint64_t now_ms)
{
    uint32_t wait_s;

    if (b->key_hash != key_hash || b->at_ms == 0) {
        b->key_hash = key_hash;
        b->tokens = burst;
        b->at_ms = now_ms;
    }
    if (now_ms > b->at_ms)
        b->tokens = SH_MIN(burst, b->tokens + (double)(now_ms - b->at_ms) / 1000.0 * rate_per_s);
    b->at_ms = SH_MAX(b->at_ms, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    wait_s = (uint32_t)ceil((1.0 - b->tokens) / (rate_per_s > 0 ? rate_per_s : 1.0));
    return wait_s ? wait_s : 1;
}
