/* SPDX-License-Identifier: MIT */
/* metrics.c: the gateway's metric families and, for each config generation, the series
 * handles its workers record into. Series are created on the control thread when a config is
 * published; each worker records into its own shard (its index), so recording takes no lock.
 * On a reload every series of the previous generation is retired and the new generation's
 * are fetched, which revives the ones that still exist: what disappeared leaves /metrics. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

static const char *const class_names[GW_CLASSES] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};

struct family_def {
    size_t offset; /* into struct gw_families */
    struct metric_family_config cfg;
};

static const char *const l_class[] = {"class"};
static const char *const l_route_caller_class[] = {"route", "caller", "class"};
static const char *const l_route_caller[] = {"route", "caller"};
static const char *const l_route[] = {"route"};
static const char *const l_cluster_class[] = {"cluster", "class"};
static const char *const l_cluster[] = {"cluster"};
static const char *const l_endpoint_class[] = {"cluster", "endpoint", "class"};
static const char *const l_endpoint[] = {"cluster", "endpoint"};
static const char *const l_worker[] = {"worker"};
static const char *const l_edge[] = {"caller", "cluster"};

#define FAM(field, n, h, t, labels)                                                                \
    {                                                                                              \
        offsetof(struct gw_families, field),                                                       \
        {                                                                                          \
            .name = (n), .help = (h), .type = (t), .label_names = (labels),                        \
            .label_count = SH_ARRAY_LEN(labels)                                                    \
        }                                                                                          \
    }

static const struct family_def families[] = {
    {offsetof(struct gw_families, requests),
     {.name = "shoal_gateway_requests_total",
      .help = "Requests received by the gateway.",
      .type = METRIC_COUNTER}},
    FAM(responses, "shoal_gateway_responses_total",
        "Responses sent by the gateway, by status class.", METRIC_COUNTER, l_class),
    {offsetof(struct gw_families, retries),
     {.name = "shoal_gateway_retries_total",
      .help = "Upstream attempts that were retries.",
      .type = METRIC_COUNTER}},
    {offsetof(struct gw_families, fast_fails),
     {.name = "shoal_gateway_fast_fails_total",
      .help = "Requests refused at once because a circuit breaker was open.",
      .type = METRIC_COUNTER}},
    {offsetof(struct gw_families, upstream_errors),
     {.name = "shoal_gateway_upstream_errors_total",
      .help = "Requests that failed on the upstream side (502, 503, 504 made by the gateway).",
      .type = METRIC_COUNTER}},
    FAM(connections, "shoal_gateway_connections", "Open client connections, per worker.",
        METRIC_GAUGE, l_worker),
    FAM(route_requests, "shoal_route_requests_total",
        "Requests per route, caller (the calling service, \"unknown\", or \"gateway\") and "
        "status class.",
        METRIC_COUNTER, l_route_caller_class),
    FAM(route_duration, "shoal_route_request_duration_seconds",
        "Time from the request head to the end of the response, per route and caller.",
        METRIC_HISTOGRAM, l_route_caller),
    FAM(route_ratelimited, "shoal_route_ratelimited_total",
        "Requests refused with 429 by the route's rate limit.", METRIC_COUNTER, l_route),
    FAM(route_fallbacks, "shoal_route_fallbacks_total",
        "Requests answered with the route's stale copy.", METRIC_COUNTER, l_route),
    FAM(cluster_requests, "shoal_cluster_requests_total",
        "Upstream attempts per cluster and outcome (status class, or error).", METRIC_COUNTER,
        l_cluster_class),
    FAM(cluster_duration, "shoal_cluster_upstream_duration_seconds",
        "Time of one upstream attempt, per cluster.", METRIC_HISTOGRAM, l_cluster),
    FAM(cluster_retries, "shoal_cluster_retries_total", "Retries per cluster.", METRIC_COUNTER,
        l_cluster),
    FAM(breaker_open, "shoal_cluster_breaker_open",
        "Workers whose circuit breaker for the cluster is open or half-open.", METRIC_GAUGE,
        l_cluster),
    FAM(breaker_opens, "shoal_cluster_breaker_opens_total", "Times a breaker opened.",
        METRIC_COUNTER, l_cluster),
    FAM(cluster_in_flight, "shoal_cluster_requests_in_flight",
        "Upstream attempts under way, per cluster.", METRIC_GAUGE, l_cluster),
    FAM(ejections, "shoal_cluster_ejections_total", "Outlier ejections of endpoints.",
        METRIC_COUNTER, l_cluster),
    FAM(endpoint_requests, "shoal_endpoint_requests_total",
        "Upstream attempts per endpoint and outcome.", METRIC_COUNTER, l_endpoint_class),
    {offsetof(struct gw_families, spans_recorded),
     {.name = "shoal_spans_recorded_total",
      .help = "Spans this proxy put on the span queue (sampled, or kept as errors or slow).",
      .type = METRIC_COUNTER}},
    {offsetof(struct gw_families, spans_dropped),
     {.name = "shoal_spans_dropped_total",
      .help = "Spans kept by sampling but lost: the span queue was full (or out of memory).",
      .type = METRIC_COUNTER}},
    FAM(endpoint_healthy, "shoal_endpoint_healthy",
        "1 when active health checks pass (or none are configured), else 0.", METRIC_GAUGE,
        l_endpoint),
    /* The metrics history's series (proxy_gateway_traffic): internal, not in /metrics. */
    FAM(route_sketch, "shoal_route_request_duration_sketch",
        "Request durations per route, for quantiles.", METRIC_SKETCH, l_route),
    {offsetof(struct gw_families, edge_requests),
     {.name = "shoal_edge_requests_total",
      .help = "Requests per caller and cluster.",
      .type = METRIC_COUNTER,
      .label_names = l_edge,
      .label_count = 2,
      .is_internal = true}},
    {offsetof(struct gw_families, edge_errors),
     {.name = "shoal_edge_errors_total",
      .help = "Requests per caller and cluster answered 5xx or without a response.",
      .type = METRIC_COUNTER,
      .label_names = l_edge,
      .label_count = 2,
      .is_internal = true}},
    FAM(edge_sketch, "shoal_edge_request_duration_sketch",
        "Request durations per caller and cluster, for quantiles.", METRIC_SKETCH, l_edge),
};

/* The caller label of slot <slot>: "" for the unknown caller, else the cluster's service. */
static const char *edge_caller_name(const struct proxy_config *cfg, uint32_t slot)
{
    return slot == GW_EDGE_CALLER_UNKNOWN || slot > cfg->nclusters ? ""
                                                                   : cfg->clusters[slot - 1].name;
}

int proxy__metrics_init(struct proxy_gateway *gw)
{
    int rc = metrics_new(&(struct metrics_config){.shards = gw->nworkers + 1}, &gw->metrics);

    for (size_t i = 0; rc == 0 && i < SH_ARRAY_LEN(families); i++) {
        struct metric_family **slot =
            (struct metric_family **)(void *)((char *)&gw->fam + families[i].offset);
        rc = metrics_family_add(gw->metrics, &families[i].cfg, slot);
    }
    return rc;
}

int proxy__metrics_worker_init(struct proxy_gateway *gw, struct gw_worker *w)
{
    char idx[16];
    struct slice v;

    snprintf(idx, sizeof(idx), "%u", w->index);
    v = slice_from_cstr(idx);
    return metric_gauge_get(gw->fam.connections, &v, 1, &w->connections);
}

static void retire_all(struct gw_mh *mh)
{
    for (uint32_t r = 0; r < mh->nroutes; r++) {
        for (uint32_t c = 0; c < mh->ncallers; c++) {
            uint32_t rc = r * mh->ncallers + c;
            for (uint32_t k = 0; k < GW_CLASSES; k++)
                metric_counter_retire(atomic_load(&mh->route_requests[rc * GW_CLASSES + k]));
            metric_histogram_retire(atomic_load(&mh->route_duration[rc]));
        }
        metric_counter_retire(mh->route_ratelimited[r]);
        metric_counter_retire(mh->route_fallbacks[r]);
        metric_sketch_retire(mh->route_sketch[r]);
    }
    for (uint32_t i = 0; mh->edge_requests && i < mh->ncallers * mh->nclusters; i++) {
        metric_counter_retire(atomic_load(&mh->edge_requests[i]));
        metric_counter_retire(atomic_load(&mh->edge_errors[i]));
        metric_sketch_retire(atomic_load(&mh->edge_sketch[i]));
    }
    for (uint32_t c = 0; c < mh->nclusters; c++) {
        for (int k = 0; k < GW_CLASSES; k++)
            metric_counter_retire(mh->cluster_requests[c * GW_CLASSES + (uint32_t)k]);
        metric_histogram_retire(mh->cluster_duration[c]);
        metric_counter_retire(mh->cluster_retries[c]);
        metric_gauge_retire(mh->breaker_open[c]);
        metric_gauge_retire(mh->cluster_in_flight[c]);
        metric_counter_retire(mh->breaker_opens[c]);
        metric_counter_retire(mh->ejections[c]);
        for (uint32_t e = 0; mh->endpoint_requests && e < mh->nendpoints[c]; e++) {
            for (int k = 0; k < GW_CLASSES; k++)
                metric_counter_retire(mh->endpoint_requests[c][e * GW_CLASSES + (uint32_t)k]);
            metric_gauge_retire(mh->endpoint_healthy[c][e]);
        }
    }
}

void proxy__metrics_release(struct gw_mh *mh)
{
    sh_free(mh->route_requests);
    sh_free(mh->route_duration);
    sh_free(mh->route_ratelimited);
    sh_free(mh->route_fallbacks);
    sh_free(mh->cluster_requests);
    sh_free(mh->cluster_duration);
    sh_free(mh->cluster_retries);
    sh_free(mh->breaker_open);
    sh_free(mh->cluster_in_flight);
    sh_free(mh->breaker_opens);
    sh_free(mh->ejections);
    for (uint32_t c = 0; mh->endpoint_requests && c < mh->nclusters; c++) {
        sh_free(mh->endpoint_requests[c]);
        sh_free(mh->endpoint_healthy[c]);
    }
    sh_free(mh->endpoint_requests);
    sh_free(mh->endpoint_healthy);
    sh_free(mh->nendpoints);
    sh_free(mh->route_sketch);
    sh_free(mh->edge_requests);
    sh_free(mh->edge_errors);
    sh_free(mh->edge_sketch);
    memset(mh, 0, sizeof(*mh));
}

#define ALLOC(ptr, n)                                                                              \
    do {                                                                                           \
        (ptr) = sh_calloc((n) + 1, sizeof(*(ptr)));                                                \
        if (!(ptr)) return SH_ENOMEM;                                                              \
    } while (0)

int proxy__metrics_build(struct proxy_gateway *gw, const struct gw_mh *prev, struct gw_mh *mh,
                         const struct proxy_config *cfg)
{
    const struct gw_families *f = &gw->fam;

    if (prev) retire_all((struct gw_mh *)prev);
    mh->nroutes = cfg->nroutes;
    mh->nclusters = cfg->nclusters;
    SH_TRY(metric_counter_get(f->requests, NULL, 0, &mh->requests));
    SH_TRY(metric_counter_get(f->retries, NULL, 0, &mh->retries));
    SH_TRY(metric_counter_get(f->fast_fails, NULL, 0, &mh->fast_fails));
    SH_TRY(metric_counter_get(f->upstream_errors, NULL, 0, &mh->upstream_errors));
    SH_TRY(metric_counter_get(f->spans_recorded, NULL, 0, &mh->spans_recorded));
    SH_TRY(metric_counter_get(f->spans_dropped, NULL, 0, &mh->spans_dropped));
    for (int k = 0; k < GW_CLASSES; k++) {
        struct slice v = slice_from_cstr(class_names[k]);
        SH_TRY(metric_counter_get(f->responses, &v, 1, &mh->responses[k]));
    }
    mh->cfg = cfg;
    mh->ncallers = cfg->identity == PROXY_IDENTITY_OFF ? 1 : 1 + cfg->nclusters;
    ALLOC(mh->route_requests, cfg->nroutes * mh->ncallers * GW_CLASSES);
    ALLOC(mh->route_duration, cfg->nroutes * mh->ncallers);
    ALLOC(mh->route_ratelimited, cfg->nroutes);
    ALLOC(mh->route_fallbacks, cfg->nroutes);
    ALLOC(mh->route_sketch, cfg->nroutes);
    for (uint32_t r = 0; r < cfg->nroutes; r++) {
        struct slice v[1] = {slice_from_cstr(cfg->routes[r].name)};
        for (uint32_t k = 0; k < GW_CLASSES; k++) { /* caller 0's series exist from the start */
            if (!proxy__route_counter(gw, mh, r, 0, k)) return SH_ENOMEM;
        }
        if (!proxy__route_histogram(gw, mh, r, 0)) return SH_ENOMEM;
        SH_TRY(metric_counter_get(f->route_ratelimited, v, 1, &mh->route_ratelimited[r]));
        SH_TRY(metric_counter_get(f->route_fallbacks, v, 1, &mh->route_fallbacks[r]));
        SH_TRY(metric_sketch_get(f->route_sketch, v, 1, &mh->route_sketch[r]));
    }
    ALLOC(mh->edge_requests, mh->ncallers * cfg->nclusters);
    ALLOC(mh->edge_errors, mh->ncallers * cfg->nclusters);
    ALLOC(mh->edge_sketch, mh->ncallers * cfg->nclusters);
    for (uint32_t c = 0; c < cfg->nclusters; c++) { /* slot 0's exist from the start */
        struct proxy_edge_series e;
        if (!proxy__edge_series(gw, mh, GW_EDGE_CALLER_UNKNOWN, c, &e)) return SH_ENOMEM;
    }
    ALLOC(mh->cluster_requests, cfg->nclusters * GW_CLASSES);
    ALLOC(mh->cluster_duration, cfg->nclusters);
    ALLOC(mh->cluster_retries, cfg->nclusters);
    ALLOC(mh->breaker_open, cfg->nclusters);
    ALLOC(mh->cluster_in_flight, cfg->nclusters);
    ALLOC(mh->breaker_opens, cfg->nclusters);
    ALLOC(mh->ejections, cfg->nclusters);
    ALLOC(mh->endpoint_requests, cfg->nclusters);
    ALLOC(mh->endpoint_healthy, cfg->nclusters);
    ALLOC(mh->nendpoints, cfg->nclusters);
    for (uint32_t c = 0; c < cfg->nclusters; c++) {
        const struct proxy_cluster *cl = &cfg->clusters[c];
        struct slice v[3] = {slice_from_cstr(cl->name)};
        for (int k = 0; k < GW_CLASSES; k++) {
            v[1] = slice_from_cstr(class_names[k]);
            SH_TRY(metric_counter_get(f->cluster_requests, v, 2,
                                      &mh->cluster_requests[c * GW_CLASSES + (uint32_t)k]));
        }
        SH_TRY(metric_histogram_get(f->cluster_duration, v, 1, &mh->cluster_duration[c]));
        SH_TRY(metric_counter_get(f->cluster_retries, v, 1, &mh->cluster_retries[c]));
        SH_TRY(metric_gauge_get(f->breaker_open, v, 1, &mh->breaker_open[c]));
        SH_TRY(metric_gauge_get(f->cluster_in_flight, v, 1, &mh->cluster_in_flight[c]));
        SH_TRY(metric_counter_get(f->breaker_opens, v, 1, &mh->breaker_opens[c]));
        SH_TRY(metric_counter_get(f->ejections, v, 1, &mh->ejections[c]));
        ALLOC(mh->endpoint_requests[c], cl->nendpoints * GW_CLASSES);
        ALLOC(mh->endpoint_healthy[c], cl->nendpoints);
        mh->nendpoints[c] = cl->nendpoints;
        for (uint32_t e = 0; e < cl->nendpoints; e++) {
            v[1] = slice_from_cstr(cl->endpoints[e].name);
            for (int k = 0; k < GW_CLASSES; k++) {
                v[2] = slice_from_cstr(class_names[k]);
                SH_TRY(metric_counter_get(f->endpoint_requests, v, 3,
                                          &mh->endpoint_requests[c][e * GW_CLASSES + (uint32_t)k]));
            }
            SH_TRY(metric_gauge_get(f->endpoint_healthy, v, 2, &mh->endpoint_healthy[c][e]));
        }
    }
    return 0;
}

int proxy_gateway_cluster_load(const struct proxy_gateway *gw, const char *cluster,
                               struct proxy_cluster_load *out)
{
    const struct gw_snapshot *gs = gw->current;
    int c = gs ? proxy_cluster_index(gs->cfg, cluster) : -1;

    memset(out, 0, sizeof(*out));
    if (c < 0) return SH_ENOENT;
    for (uint32_t k = 0; k < GW_CLASSES; k++)
        out->attempts += metric_counter_read(gs->mh.cluster_requests[(uint32_t)c * GW_CLASSES + k]);
    out->in_flight = metric_gauge_read(gs->mh.cluster_in_flight[c]);
    metric_histogram_read(gs->mh.cluster_duration[c], out->le, SH_ARRAY_LEN(out->le), NULL, NULL);
    return 0;
}

void proxy_gateway_traffic(const struct proxy_gateway *gw, proxy_traffic_fn *fn, void *data)
{
    const struct gw_snapshot *gs = gw->current;
    const struct gw_mh *mh;

    if (!gs) return;
    mh = &gs->mh;
    for (uint32_t r = 0; r < mh->nroutes; r++) {
        struct proxy_traffic t = {.route = gs->cfg->routes[r].name, .sketch = mh->route_sketch[r]};
        for (uint32_t c = 0; c < mh->ncallers; c++) {
            for (uint32_t k = 0; k < GW_CLASSES; k++) {
                struct metric_counter *ctr = atomic_load_explicit(
                    &mh->route_requests[(r * mh->ncallers + c) * GW_CLASSES + k],
                    memory_order_acquire);
                uint64_t n = ctr ? metric_counter_read(ctr) : 0;
                t.requests += n;
                if (k == 0 || k == 5) t.errors += n;
            }
        }
        fn(data, &t);
    }
    for (uint32_t s = 0; s < mh->ncallers; s++) {
        for (uint32_t c = 0; c < mh->nclusters; c++) {
            uint32_t i = s * mh->nclusters + c;
            struct metric_counter *req =
                atomic_load_explicit(&mh->edge_requests[i], memory_order_acquire);
            struct metric_counter *err =
                atomic_load_explicit(&mh->edge_errors[i], memory_order_acquire);
            struct metric_sketch *sk =
                atomic_load_explicit(&mh->edge_sketch[i], memory_order_acquire);
            if (!req || !err || !sk) continue; /* that caller never called that cluster */
            struct proxy_traffic t = {.caller = edge_caller_name(gs->cfg, s),
                                      .cluster = gs->cfg->clusters[c].name,
                                      .requests = metric_counter_read(req),
                                      .errors = metric_counter_read(err),
                                      .sketch = sk};
            fn(data, &t);
        }
    }
}

/* Endpoint <name> of <cluster> in the config in force: true with *c and *e set. */
static bool find_endpoint(const struct gw_snapshot *gs, const char *cluster, const char *name,
                          uint32_t *c, uint32_t *e)
{
    int ci = gs ? proxy_cluster_index(gs->cfg, cluster) : -1;

    for (uint32_t i = 0; ci >= 0 && i < gs->cfg->clusters[ci].nendpoints; i++) {
        if (!strcmp(gs->cfg->clusters[ci].endpoints[i].name, name)) {
            *c = (uint32_t)ci;
            *e = i;
            return true;
        }
    }
    return false;
}

uint64_t proxy_gateway_endpoint_attempts(const struct proxy_gateway *gw, const char *cluster,
                                         const char *endpoint)
{
    const struct gw_snapshot *gs = gw->current;
    uint32_t c, e;
    uint64_t n = 0;

    if (!find_endpoint(gs, cluster, endpoint, &c, &e)) return 0;
    for (uint32_t k = 0; k < GW_CLASSES; k++)
        n += metric_counter_read(gs->mh.endpoint_requests[c][e * GW_CLASSES + k]);
    return n;
}

bool proxy_gateway_has_endpoint(const struct proxy_gateway *gw, const char *cluster,
                                const char *endpoint)
{
    uint32_t c, e;

    return find_endpoint(gw->current, cluster, endpoint, &c, &e);
}

static struct slice caller_name(const struct gw_mh *mh, uint32_t caller)
{
    if (caller == 0)
        return mh->cfg->identity == PROXY_IDENTITY_OFF ? SLICE("gateway") : SLICE("unknown");
    return slice_from_cstr(mh->cfg->clusters[caller - 1].name);
}

struct metric_counter *proxy__route_counter(struct proxy_gateway *gw, const struct gw_mh *mh,
                                            uint32_t route, uint32_t caller, uint32_t cls)
{
    struct metric_counter *_Atomic *slot =
        &mh->route_requests[(route * mh->ncallers + caller) * GW_CLASSES + cls];
    struct metric_counter *c = atomic_load_explicit(slot, memory_order_acquire);
    struct slice v[3];

    if (c) return c;
    v[0] = slice_from_cstr(mh->cfg->routes[route].name);
    v[1] = caller_name(mh, caller);
    v[2] = slice_from_cstr(class_names[cls]);
    if (metric_counter_get(gw->fam.route_requests, v, 3, &c) < 0) return NULL;
    atomic_store_explicit(slot, c, memory_order_release);
    return c;
}

bool proxy__edge_series(struct proxy_gateway *gw, const struct gw_mh *mh, uint32_t slot,
                        uint32_t cluster, struct proxy_edge_series *out)
{
    uint32_t i = slot * mh->nclusters + cluster;
    struct slice v[2];

    out->requests = atomic_load_explicit(&mh->edge_requests[i], memory_order_acquire);
    out->errors = atomic_load_explicit(&mh->edge_errors[i], memory_order_acquire);
    out->sketch = atomic_load_explicit(&mh->edge_sketch[i], memory_order_acquire);
    if (out->requests && out->errors && out->sketch) return true;
    /* first use: find-or-create, so two workers racing store the same handles */
    v[0] = slice_from_cstr(edge_caller_name(mh->cfg, slot));
    v[1] = slice_from_cstr(mh->cfg->clusters[cluster].name);
    if (metric_counter_get(gw->fam.edge_requests, v, 2, &out->requests) < 0 ||
        metric_counter_get(gw->fam.edge_errors, v, 2, &out->errors) < 0 ||
        metric_sketch_get(gw->fam.edge_sketch, v, 2, &out->sketch) < 0)
        return false;
    atomic_store_explicit(&mh->edge_sketch[i], out->sketch, memory_order_release);
    atomic_store_explicit(&mh->edge_errors[i], out->errors, memory_order_release);
    atomic_store_explicit(&mh->edge_requests[i], out->requests, memory_order_release);
    return true;
}

struct metric_histogram *proxy__route_histogram(struct proxy_gateway *gw, const struct gw_mh *mh,
                                                uint32_t route, uint32_t caller)
{
    struct metric_histogram *_Atomic *slot = &mh->route_duration[route * mh->ncallers + caller];
    struct metric_histogram *h = atomic_load_explicit(slot, memory_order_acquire);
    struct slice v[2];

    if (h) return h;
    v[0] = slice_from_cstr(mh->cfg->routes[route].name);
    v[1] = caller_name(mh, caller);
    if (metric_histogram_get(gw->fam.route_duration, v, 2, &h) < 0) return NULL;
    atomic_store_explicit(slot, h, memory_order_release);
    return h;
}

uint32_t proxy__caller_index(const struct gw_mh *mh, const char *service)
{
    int i;

    if (mh->ncallers == 1 || !service) return 0;
    i = proxy_cluster_index(mh->cfg, service);
    return i < 0 ? 0 : (uint32_t)i + 1;
}

int proxy__status_class(int status)
{
    return status >= 100 && status < 600 ? status / 100 : 0;
}
