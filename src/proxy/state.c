/* SPDX-License-Identifier: MIT */
/* state.c: a worker's runtime state for one config generation (balancer positions, breaker
 * and outlier state, rate-limit buckets, stale copies), built when the worker first serves
 * under a new snapshot and carried over by cluster and endpoint name; and the worker's access
 * log buffer. Thread: the worker's own. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <string.h>
#include <unistd.h>

static void cluster_rt_release(struct gw_cluster_rt *c)
{
    proxy_lb_state_release(&c->lb);
    sh_free(c->eps);
    sh_free(c->active);
    sh_free(c->excluded);
    sh_free(c->tried);
}

static void route_rt_release(struct gw_route_rt *r)
{
    sh_free(r->buckets);
    proxy__cache_release(&r->cache);
    proxy__jwt_cache_release(&r->jwt_cache);
}

void proxy__state_unref(struct gw_state *st)
{
    if (!st || --st->refs > 0) return;
    for (uint32_t i = 0; st->clusters && i < st->cfg->nclusters; i++)
        cluster_rt_release(&st->clusters[i]);
    for (uint32_t i = 0; st->routes && i < st->cfg->nroutes; i++)
        route_rt_release(&st->routes[i]);
    sh_free(st->clusters);
    sh_free(st->routes);
    snap_release(st->snap);
    sh_free(st);
}

static const struct gw_cluster_rt *old_cluster(const struct gw_state *old, const char *name)
{
    for (uint32_t i = 0; old && i < old->cfg->nclusters; i++) {
        if (strcmp(old->cfg->clusters[i].name, name) == 0) return &old->clusters[i];
    }
    return NULL;
}

static struct gw_state *state_build(struct gw_worker *w, struct snap *snap, struct gw_state *old)
{
    const struct gw_snapshot *gs = snap->obj;
    const struct proxy_config *cfg = gs->cfg;
    struct gw_state *st = sh_calloc(1, sizeof(*st));

    if (!st) return NULL;
    st->snap = snap;
    st->gs = gs;
    st->cfg = cfg;
    st->refs = 1;
    st->clusters = sh_calloc(cfg->nclusters + 1, sizeof(*st->clusters));
    st->routes = sh_calloc(cfg->nroutes + 1, sizeof(*st->routes));
    if (!st->clusters || !st->routes) goto fail;
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        const struct proxy_cluster *cl = &cfg->clusters[i];
        struct gw_cluster_rt *c = &st->clusters[i];
        const struct gw_cluster_rt *prev = old_cluster(old, cl->name);
        uint32_t n = cl->nendpoints + 1;

        c->cfg = cl;
        c->healthy = gs->health.healthy[i];
        c->revival = gs->health.revival[i];
        c->eps = sh_calloc(n, sizeof(*c->eps));
        c->active = sh_calloc(n, sizeof(*c->active));
        c->excluded = sh_calloc(n, sizeof(*c->excluded));
        c->tried = sh_calloc(n, sizeof(*c->tried));
        if (!c->eps || !c->active || !c->excluded || !c->tried ||
            proxy_lb_state_init(&c->lb, cl, proxy_rand(&w->rng)) < 0)
            goto fail;
        if (prev) {
            /* keep what this worker learnt about the cluster and its endpoints */
            c->breaker = prev->breaker;
            /* a probe in flight reports to the old generation's state: let this one probe */
            c->breaker.probe_in_flight = false;
            c->budget = prev->budget;
            /* an endpoint carries over only as the same registration: a re-registered
             * instance (a restart) starts afresh, never ejected for its predecessor */
            for (uint32_t e = 0; e < cl->nendpoints; e++) {
                int pe = proxy__endpoint_index(prev->cfg, &cl->endpoints[e]);
                if (pe >= 0) c->eps[e] = prev->eps[pe];
            }
        }
    }
    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        if (cfg->routes[i].ratelimit.rate_per_s > 0) {
            st->routes[i].nbuckets = 4096;
            st->routes[i].buckets = sh_calloc(4096, sizeof(struct proxy_bucket));
            if (!st->routes[i].buckets) goto fail;
        }
    }
    /* what routes kept passes on when the route stayed as it was: the stale copies (a
     * registry-fed cluster's config changes each time an instance comes or goes, which is
     * when they are needed) and the rate-limit buckets (no fresh burst for every client);
     * swapped, so the old generation keeps a valid empty table for its requests in flight */
    for (uint32_t i = 0; old && i < cfg->nroutes; i++) {
        for (uint32_t j = 0; j < old->cfg->nroutes; j++) {
            struct gw_route_rt tmp;
            if (!proxy__route_state_carries(&cfg->routes[i], &old->cfg->routes[j])) continue;
            tmp = st->routes[i];
            st->routes[i] = old->routes[j];
            old->routes[j] = tmp;
            /* verified tokens do not carry: the route's jwt settings may have changed */
            proxy__jwt_cache_release(&st->routes[i].jwt_cache);
            break;
        }
    }
    return st;
fail:
    st->snap = NULL; /* the caller still owns the reference on failure */
    proxy__state_unref(st);
    return NULL;
}

struct gw_state *proxy__worker_state(struct gw_worker *w)
{
    uint64_t v = snap_version(w->gw->dom);

    if (v != w->version || !w->state) {
        struct snap *snap = snap_acquire(w->reader);
        struct gw_state *st = snap ? state_build(w, snap, w->state) : NULL;
        if (st) {
            proxy__state_unref(w->state);
            w->state = st;
            w->version = snap->version;
        } else {
            snap_release(snap); /* out of memory: keep serving the generation we have */
        }
    }
    return w->state;
}

/* The buffered lines as one chunk onto the worker's list for the control thread: a
 * compare-and-swap push (the consumer takes the whole list at once, so no ABA). */
static void log_hand_over(struct gw_worker *w)
{
    struct proxy_gateway *gw = w->gw;
    size_t n = w->access_log.len;
    struct gw_log_chunk *c = NULL;

    if (atomic_load_explicit(&gw->access_pending, memory_order_relaxed) + n <=
        PROXY_ACCESS_PENDING_MAX)
        c = sh_malloc(sizeof(*c) + n);
    if (!c) { /* the control thread is behind, or no memory: drop, and count the lines */
        uint64_t lines = 0;
        for (size_t i = 0; i < n; i++)
            lines += w->access_log.data[i] == '\n';
        atomic_fetch_add_explicit(&gw->access_dropped, lines, memory_order_relaxed);
        buf_reset(&w->access_log);
        return;
    }
    memcpy(c->data, w->access_log.data, n);
    c->len = n;
    atomic_fetch_add_explicit(&gw->access_pending, n, memory_order_relaxed);
    c->next = atomic_load_explicit(&w->access_out, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&w->access_out, &c->next, c, memory_order_release,
                                                  memory_order_relaxed))
        ;
    buf_reset(&w->access_log);
}

/* Writes the buffered access log lines to stdout (one write per loop turn, usually), or hands
 * them to the control thread when it captures them. */
void proxy__log_flush(struct gw_worker *w)
{
    size_t off = 0;

    if (w->access_log.len && atomic_load_explicit(&w->gw->access_capture, memory_order_relaxed)) {
        log_hand_over(w);
        return;
    }
    while (off < w->access_log.len) {
        ssize_t n = write(1, w->access_log.data + off, w->access_log.len - off);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            break; /* stdout is gone: drop the lines rather than block the worker */
        }
        off += (size_t)n;
    }
    buf_reset(&w->access_log);
}
