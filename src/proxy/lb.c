/* SPDX-License-Identifier: MIT */
/* lb.c: the load balancers. The immutable parts (hash rings, Maglev tables) are built once per
 * config in proxy_lb_build; the moving parts (round-robin position, smooth WRR weights, the
 * random generator) are per worker in struct proxy_lb_state, so picking takes no lock. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t proxy_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

int proxy_lb_state_init(struct proxy_lb_state *st, const struct proxy_cluster *cl, uint64_t seed)
{
    memset(st, 0, sizeof(*st));
    st->rng = seed | 1;
    st->rr_next = (uint32_t)(seed % (cl->nendpoints ? cl->nendpoints : 1));
    if (cl->lb == PROXY_LB_WEIGHTED && cl->nendpoints) {
        st->wrr_current = sh_calloc(cl->nendpoints, sizeof(*st->wrr_current));
        if (!st->wrr_current) return SH_ENOMEM;
    }
    return 0;
}

void proxy_lb_state_release(struct proxy_lb_state *st)
{
    sh_free(st->wrr_current);
    st->wrr_current = NULL;
}

static bool usable(const struct proxy_pick_ctx *ctx, uint32_t i, bool panic)
{
    if (!panic && ctx->excluded && ctx->excluded[i]) return false;
    return true;
}

static uint32_t pick_rr(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                        const struct proxy_pick_ctx *ctx, bool panic)
{
    uint32_t n = cl->nendpoints, fallback = UINT32_MAX;

    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (st->rr_next + k) % n;
        if (!usable(ctx, i, panic)) continue;
        if (i == ctx->avoid && n > 1) {
            if (fallback == UINT32_MAX) fallback = i;
            continue;
        }
        st->rr_next = (i + 1) % n;
        return i;
    }
    return fallback;
}

/* nginx's smooth weighted round robin: every pick adds each weight to its current value,
 * takes the largest, and subtracts the total from the winner. */
static uint32_t pick_wrr(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                         const struct proxy_pick_ctx *ctx, bool panic)
{
    int64_t total = 0;
    uint32_t best = UINT32_MAX;

    for (uint32_t i = 0; i < cl->nendpoints; i++) {
        if (!usable(ctx, i, panic) || (i == ctx->avoid && cl->nendpoints > 1)) continue;
        st->wrr_current[i] += cl->endpoints[i].weight;
        total += cl->endpoints[i].weight;
        if (best == UINT32_MAX || st->wrr_current[i] > st->wrr_current[best]) best = i;
    }
    if (best == UINT32_MAX) return ctx->avoid < cl->nendpoints ? ctx->avoid : UINT32_MAX;
    st->wrr_current[best] -= total;
    return best;
}

static uint32_t pick_random(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                            const struct proxy_pick_ctx *ctx, bool panic)
{
    uint32_t n = cl->nendpoints;
    uint32_t start = (uint32_t)(proxy_rand(&st->rng) % n);

    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (start + k) % n;
        if (usable(ctx, i, panic) && (i != ctx->avoid || n == 1)) return i;
    }
    return ctx->avoid < n ? ctx->avoid : UINT32_MAX;
}

/* Power of two choices: two random usable endpoints, the one with fewer requests in flight
 * (weights scale the comparison). */
static uint32_t pick_least(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                           const struct proxy_pick_ctx *ctx, bool panic)
{
    uint32_t a = pick_random(cl, st, ctx, panic), b = pick_random(cl, st, ctx, panic);

    if (a == UINT32_MAX || b == UINT32_MAX || !ctx->active) return a;
    /* active[a]/w[a] < active[b]/w[b] without division */
    uint64_t la = (uint64_t)ctx->active[a] * cl->endpoints[b].weight;
    uint64_t lb = (uint64_t)ctx->active[b] * cl->endpoints[a].weight;
    return la <= lb ? a : b;
}

static uint32_t pick_ring(const struct proxy_cluster *cl, const struct proxy_pick_ctx *ctx,
                          bool panic)
{
    uint32_t h = proxy_hash(ctx->hash_key), lo = 0, hi = cl->nring;

    if (cl->nring == 0) return UINT32_MAX;
    while (lo < hi) { /* first point >= h */
        uint32_t mid = lo + (hi - lo) / 2;
        if (cl->ring[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint32_t k = 0; k < cl->nring; k++) {
        uint32_t ep = cl->ring_eps[(lo + k) % cl->nring];
        if (usable(ctx, ep, panic) && (ep != ctx->avoid || cl->nendpoints == 1)) return ep;
    }
    return UINT32_MAX;
}

static uint32_t pick_maglev(const struct proxy_cluster *cl, const struct proxy_pick_ctx *ctx,
                            bool panic)
{
    uint32_t h = proxy_hash(ctx->hash_key);

    if (cl->nmaglev == 0) return UINT32_MAX;
    for (uint32_t k = 0; k < cl->nmaglev; k++) {
        /* an excluded endpoint's keys move to the next slots' owners */
        uint32_t ep = cl->maglev[(h + k) % cl->nmaglev];
        if (usable(ctx, ep, panic) && (ep != ctx->avoid || cl->nendpoints == 1)) return ep;
    }
    return UINT32_MAX;
}

static uint32_t pick(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                     const struct proxy_pick_ctx *ctx, bool panic)
{
    switch (cl->lb) {
    case PROXY_LB_ROUND_ROBIN:
        return pick_rr(cl, st, ctx, panic);
    case PROXY_LB_WEIGHTED:
        return pick_wrr(cl, st, ctx, panic);
    case PROXY_LB_LEAST_REQUEST:
        return pick_least(cl, st, ctx, panic);
    case PROXY_LB_RING_HASH:
        return pick_ring(cl, ctx, panic);
    case PROXY_LB_MAGLEV:
        return pick_maglev(cl, ctx, panic);
    case PROXY_LB_RANDOM:
        return pick_random(cl, st, ctx, panic);
    }
    return UINT32_MAX;
}

uint32_t proxy_lb_pick(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                       const struct proxy_pick_ctx *ctx)
{
    uint32_t i;

    if (cl->nendpoints == 0) return UINT32_MAX;
    i = pick(cl, st, ctx, false);
    if (i == UINT32_MAX) i = pick(cl, st, ctx, true); /* everything excluded: panic, use them all */
    return i;
}

/* ------------------------------------------------------------------------------------------
 * Building the immutable tables
 * ------------------------------------------------------------------------------------------ */
enum { RING_POINTS_PER_WEIGHT = 100 };

struct ring_point {
    uint32_t hash, ep;
};

static int cmp_point(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;

    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->ep < y->ep ? -1 : x->ep > y->ep; /* ties broken the same way every time */
}

/* Ketama-style ring: RING_POINTS_PER_WEIGHT points per unit of weight, hashed from the
 * endpoint's name, so the ring is the same in every worker and after every reload. */
static int build_ring(struct proxy_cluster *cl, struct arena *a)
{
    uint32_t n = 0, k = 0;
    struct ring_point *pts;
    char name[96];

    for (uint32_t i = 0; i < cl->nendpoints; i++)
        n += cl->endpoints[i].weight * RING_POINTS_PER_WEIGHT;
    pts = sh_malloc((size_t)n * sizeof(*pts));
    cl->ring = arena_alloc(a, (size_t)n * sizeof(uint32_t));
    cl->ring_eps = arena_alloc(a, (size_t)n * sizeof(uint32_t));
    if (!pts || !cl->ring || !cl->ring_eps) {
        sh_free(pts);
        return SH_ENOMEM;
    }
    for (uint32_t i = 0; i < cl->nendpoints; i++) {
        for (uint32_t j = 0; j < cl->endpoints[i].weight * RING_POINTS_PER_WEIGHT; j++) {
            int len = snprintf(name, sizeof(name), "%s-%u", cl->endpoints[i].name, j);
            pts[k].hash = proxy_hash((struct slice){name, (size_t)len});
            pts[k].ep = i;
            k++;
        }
    }
    qsort(pts, n, sizeof(*pts), cmp_point);
    for (uint32_t i = 0; i < n; i++) {
        cl->ring[i] = pts[i].hash;
        cl->ring_eps[i] = pts[i].ep;
    }
    cl->nring = n;
    sh_free(pts);
    return 0;
}

/* Maglev (Eisenbud et al., NSDI 2016): each endpoint walks its own permutation of the table
 * and claims the next free slot in turn; weights give more turns. */
static int build_maglev(struct proxy_cluster *cl, struct arena *a)
{
    uint32_t m = cl->nendpoints <= 40 ? 4099 : 65537; /* primes, ~100 slots per endpoint */
    uint32_t *table = arena_alloc(a, m * sizeof(*table));
    uint32_t *next = sh_calloc(cl->nendpoints, sizeof(*next));
    uint32_t filled = 0;
    char name[96];

    if (!table || !next) {
        sh_free(next);
        return SH_ENOMEM;
    }
    for (uint32_t i = 0; i < m; i++)
        table[i] = UINT32_MAX;
    while (filled < m) {
        for (uint32_t i = 0; i < cl->nendpoints && filled < m; i++) {
            int len = snprintf(name, sizeof(name), "%s#offset", cl->endpoints[i].name);
            uint32_t offset = proxy_hash((struct slice){name, (size_t)len}) % m;
            len = snprintf(name, sizeof(name), "%s#skip", cl->endpoints[i].name);
            uint32_t skip = proxy_hash((struct slice){name, (size_t)len}) % (m - 1) + 1;
            for (uint32_t turn = 0; turn < cl->endpoints[i].weight && filled < m; turn++) {
                uint32_t c;
                do {
                    c = (uint32_t)(((uint64_t)offset + (uint64_t)next[i] * skip) % m);
                    next[i]++;
                } while (table[c] != UINT32_MAX);
                table[c] = i;
                filled++;
            }
        }
    }
    sh_free(next);
    cl->maglev = table;
    cl->nmaglev = m;
    return 0;
}

int proxy__lb_build(struct proxy_cluster *cl, struct arena *a)
{
    if (cl->nendpoints == 0) return 0;
    if (cl->lb == PROXY_LB_RING_HASH) return build_ring(cl, a);
    if (cl->lb == PROXY_LB_MAGLEV) return build_maglev(cl, a);
    return 0;
}
