/* SPDX-License-Identifier: MIT */
/* gateway.c: the gateway's threads. N workers each run a libuv loop with their own
 * SO_REUSEPORT listener, HTTP client pool and runtime state; the control thread (the caller's
 * loop) publishes configs through a snapshot domain, runs active health checks and serves the
 * admin listener (/metrics, /ready, /config).
 *
 * Workers never lock: they read the config through snap_acquire when its version changes,
 * and active health results through relaxed atomic bytes in the snapshot. The control thread
 * learns that a worker stopped through a uv_async. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------
 * Snapshots: a config plus its health table
 * ------------------------------------------------------------------------------------------ */
static void gw_snapshot_free(void *obj, void *data)
{
    struct gw_snapshot *gs = obj;

    (void)data;
    proxy__metrics_release(&gs->mh);
    for (uint32_t i = 0; i < gs->health.nclusters; i++) {
        if (gs->health.healthy) sh_free((void *)gs->health.healthy[i]);
        if (gs->health.revival) sh_free((void *)gs->health.revival[i]);
    }
    sh_free(gs->health.healthy);
    sh_free(gs->health.revival);
    proxy_config_free(gs->cfg);
    sh_free(gs);
}

/* Health and revival counts carried over from the previous generation by cluster, endpoint
 * name and generation (the same registration); new endpoints start healthy (traffic flows
 * until a check says otherwise). */
static struct gw_snapshot *gw_snapshot_new(struct proxy_config *cfg, const struct gw_snapshot *prev)
{
    struct gw_snapshot *gs = sh_calloc(1, sizeof(*gs));

    if (!gs) return NULL;
    gs->cfg = cfg;
    gs->health.nclusters = cfg->nclusters;
    gs->health.healthy = sh_calloc(cfg->nclusters + 1, sizeof(*gs->health.healthy));
    gs->health.revival = sh_calloc(cfg->nclusters + 1, sizeof(*gs->health.revival));
    if (!gs->health.healthy || !gs->health.revival) goto fail;
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        const struct proxy_cluster *cl = &cfg->clusters[i];
        int pi = prev ? proxy_cluster_index(prev->cfg, cl->name) : -1;
        gs->health.healthy[i] = sh_calloc(cl->nendpoints + 1, sizeof(_Atomic uint8_t));
        gs->health.revival[i] = sh_calloc(cl->nendpoints + 1, sizeof(_Atomic uint32_t));
        if (!gs->health.healthy[i] || !gs->health.revival[i]) goto fail;
        for (uint32_t e = 0; e < cl->nendpoints; e++) {
            uint8_t v = 1;
            uint32_t rv = 0;
            int k =
                pi >= 0 ? proxy__endpoint_index(&prev->cfg->clusters[pi], &cl->endpoints[e]) : -1;
            if (k >= 0) {
                v = atomic_load(&prev->health.healthy[pi][k]);
                rv = atomic_load(&prev->health.revival[pi][k]);
            }
            atomic_init(&gs->health.healthy[i][e], v);
            atomic_init(&gs->health.revival[i][e], rv);
        }
    }
    return gs;
fail:
    gs->cfg = NULL;
    gw_snapshot_free(gs, NULL);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------------------------ */
static void worker_server_down(void *data)
{
    struct gw_worker *w = data;

    http_server_free(w->inbound);
    w->inbound = NULL;
    uv_close((uv_handle_t *)&w->stats_timer, NULL);
    http_server_free(w->srv);
    w->srv = NULL;
    http_client_free(w->client);
    w->client = NULL;
    proxy__log_flush(w);
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->log_flush, NULL);
}

/* The inbound listener is down: then the main one. */
static void worker_inbound_down(void *data)
{
    struct gw_worker *w = data;

    http_server_shutdown(w->srv, atomic_load(&w->gw->stop_deadline_ms), worker_server_down, w);
}

static void worker_wake(uv_async_t *a)
{
    struct gw_worker *w = a->data;

    if (w->stopping && w->srv) {
        uint32_t deadline = atomic_load(&w->gw->stop_deadline_ms);
        if (w->shutting) return;
        w->shutting = true;
        if (w->inbound)
            http_server_shutdown(w->inbound, deadline, worker_inbound_down, w);
        else
            http_server_shutdown(w->srv, deadline, worker_server_down, w);
        return;
    }
    proxy__worker_state(w); /* a new config: move to it now, release the old one */
}

/* Once a second, this worker's open connections into its gauge series. */
static void worker_stats_tick(uv_timer_t *t)
{
    struct gw_worker *w = t->data;
    struct http_server_stats st;

    if (!w->srv) return;
    http_server_stats(w->srv, &st);
    metric_gauge_set(w->connections, (double)st.active_conns);
}

/* Once per loop turn, while there is work: flush the access log, release ended requests. */
void proxy__worker_prepare(uv_prepare_t *p)
{
    struct gw_worker *w = p->data;

    if (w->access_log.len) proxy__log_flush(w);
    proxy__fwd_reap(w);
    if (!w->access_log.len && !w->dead) uv_prepare_stop(p);
}

static void worker_main(void *arg)
{
    struct gw_worker *w = arg;

    uv_run(&w->loop, UV_RUN_DEFAULT);
    proxy__fwd_pool_free(w);
    proxy__state_unref(w->state);
    w->state = NULL;
    snap_release(w->callers);
    w->callers = NULL;
    snap_release(w->intentions);
    w->intentions = NULL;
    snap_release(w->keys_snap);
    w->keys_snap = NULL;
    buf_release(&w->access_log);
    uv_loop_close(&w->loop);
    atomic_store(&w->exited, true);
    uv_async_send(&w->gw->worker_done);
}

static int worker_init(struct proxy_gateway *gw, struct gw_worker *w, uint32_t index,
                       const struct proxy_config *cfg, struct sh_diag *d)
{
    struct sockaddr_storage ss;
    int rc;

    w->gw = gw;
    w->index = index;
    w->rng =
        sh_now_us() * 2654435761u + index * 0x9e3779b97f4a7c15ull + (uint64_t)(unsigned)getpid();
    rc = uv_loop_init(&w->loop);
    if (rc < 0) return rc;
    w->loop_ready = true;
    rc = snap_reader_register(gw->dom, &w->reader);
    if (rc < 0) return rc;
    rc = snap_reader_register(gw->callers_dom, &w->callers_reader);
    if (rc == 0) rc = snap_reader_register(gw->keys_dom, &w->keys_reader);
    if (rc == 0) rc = snap_reader_register(gw->intentions_dom, &w->intentions_reader);
    if (rc < 0) return rc;
    rc = sh_listen_parse(cfg->listen, &ss, d);
    if (rc < 0) return rc;
    if (gw->port) /* the first worker's port, when the config asked for any free one */
        sh_addr_set_port(&ss, gw->port);
    struct http_server_config scfg = {
        .addr = &ss,
        .reuseport = true,
        .limits = cfg->limits,
        .on_request = proxy__on_request,
        .data = w,
        .tls = gw->tls,
        .handshake_timeout_ms = cfg->tls.handshake_timeout_ms,
        .response_fields = gw->hsts_line[0] ? gw->hsts_line : NULL,
    };
    rc = http_server_new(&w->loop, &scfg, &w->srv, d);
    if (rc < 0) return rc;
    gw->port = http_server_port(w->srv); /* workers after the first join the same port */
    if (gw->inbound_tls) {
        rc = sh_listen_parse(cfg->inbound.listen, &ss, d);
        if (rc < 0) return rc;
        if (gw->inbound_port) sh_addr_set_port(&ss, gw->inbound_port);
        struct http_server_config icfg = {
            .addr = &ss,
            .reuseport = true,
            .limits = cfg->limits,
            .on_request = proxy__on_inbound_request,
            .data = w,
            .tls = gw->inbound_tls,
        };
        rc = http_server_new(&w->loop, &icfg, &w->inbound, d);
        if (rc < 0) return rc;
        gw->inbound_port = http_server_port(w->inbound);
    }
    struct http_client_config ccfg = {
        /* each request passes its cluster's own settings */
        .idle_timeout_ms = 60000,
        .connect_timeout_ms = 2000,
        .max_idle_per_host = 128,
    };
    rc = http_client_new(&w->loop, &ccfg, &w->client);
    if (rc < 0) return rc;
    uv_async_init(&w->loop, &w->wake, worker_wake);
    w->wake.data = w;
    uv_prepare_init(&w->loop, &w->log_flush);
    w->log_flush.data = w;
    uv_prepare_start(&w->log_flush, proxy__worker_prepare);
    uv_unref((uv_handle_t *)&w->log_flush);
    uv_timer_init(&w->loop, &w->stats_timer);
    w->stats_timer.data = w;
    uv_timer_start(&w->stats_timer, worker_stats_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&w->stats_timer);
    w->handles_ready = true;
    trace_rng_init(&w->trng);
    rc = proxy__metrics_worker_init(gw, w);
    if (rc < 0) return rc;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Admin listener
 * ------------------------------------------------------------------------------------------ */
static void admin_request(struct http_exchange *ex, void *data)
{
    struct proxy_gateway *gw = data;
    const struct http_head *h = http_exchange_head(ex);
    struct slice t = http_head_target(h), path;

    slice_split(t, '?', &path);
    if (h->method != HTTP_M_GET && h->method != HTTP_M_HEAD) {
        http_exchange_respond(ex, 405, SLICE("application/json"),
                              SLICE("{\"error\":\"Method Not Allowed\"}\n"));
        return;
    }
    if (slice_eq(path, SLICE("/ready"))) {
        if (gw->stopping)
            http_exchange_respond(ex, 503, SLICE("text/plain"), SLICE("stopping\n"));
        else
            http_exchange_respond(ex, 200, SLICE("text/plain"), SLICE("ready\n"));
        return;
    }
    if (slice_eq(path, SLICE("/config"))) {
        const char *json = gw->current->cfg->source_json ? gw->current->cfg->source_json : "{}";
        http_exchange_respond(ex, 200, SLICE("application/json"), slice_from_cstr(json));
        return;
    }
    if (slice_eq(path, SLICE("/metrics"))) {
        struct buf b = BUF_INIT(64 << 20);
        if (metrics_render(gw->metrics, &b) < 0)
            http_exchange_respond(ex, 500, SLICE("text/plain"), SLICE("metrics too large\n"));
        else
            http_exchange_respond(ex, 200, SLICE(METRICS_CONTENT_TYPE), buf_slice(&b));
        buf_release(&b);
        return;
    }
    http_exchange_respond(ex, 404, SLICE("application/json"),
                          SLICE("{\"error\":\"Not Found\",\"paths\":[\"/metrics\",\"/ready\","
                                "\"/config\"]}\n"));
}

/* ------------------------------------------------------------------------------------------
 * Active health checks (control thread)
 * ------------------------------------------------------------------------------------------ */
struct hc_probe {
    struct proxy_gateway *gw;
    uint64_t generation;
    uint32_t cluster, ep;
    uint16_t status;
};

static void hc_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct hc_probe *p = data;

    (void)cr;
    p->status = h->status;
}

static void hc_done(struct http_creq *cr, int rc, void *data)
{
    struct hc_probe *p = data;
    struct proxy_gateway *gw = p->gw;

    (void)cr;
    if (p->generation == gw->generation && !gw->stopping) {
        const struct proxy_cluster *cl = &gw->current->cfg->clusters[p->cluster];
        const struct proxy_health *hc = &cl->health;
        struct gw_hc_state *s = &gw->hc[p->cluster][p->ep];
        bool ok = rc == 0 && (hc->expect_status ? p->status == hc->expect_status
                                                : p->status >= 200 && p->status < 300);
        _Atomic uint8_t *flag = &gw->current->health.healthy[p->cluster][p->ep];
        if (ok) {
            s->fails = 0;
            /* a passing check returns the endpoint from outlier ejection (Envoy's
             * successful_active_health_check_uneject_host) */
            atomic_fetch_add(&gw->current->health.revival[p->cluster][p->ep], 1);
            if (++s->oks >= hc->healthy_threshold && !atomic_load(flag)) {
                atomic_store(flag, 1);
                metric_gauge_set(gw->current->mh.endpoint_healthy[p->cluster][p->ep], 1.0);
                SH_LOG(SH_INFO, "proxy", "endpoint healthy", LF_STR("cluster", cl->name),
                       LF_STR("endpoint", cl->endpoints[p->ep].name));
            }
        } else {
            s->oks = 0;
            if (++s->fails >= hc->unhealthy_threshold && atomic_load(flag)) {
                atomic_store(flag, 0);
                metric_gauge_set(gw->current->mh.endpoint_healthy[p->cluster][p->ep], 0.0);
                SH_LOG(SH_WARN, "proxy", "endpoint unhealthy", LF_STR("cluster", cl->name),
                       LF_STR("endpoint", cl->endpoints[p->ep].name), LF_UINT("status", p->status),
                       LF_ERR("err", rc));
            }
        }
        s->in_flight = false;
    }
    sh_free(p);
}

static const struct http_creq_handlers hc_handlers = {.on_head = hc_head, .on_done = hc_done};

static void hc_table_free(struct gw_hc_state **hc, uint32_t n)
{
    for (uint32_t i = 0; hc && i < n; i++)
        sh_free(hc[i]);
    sh_free(hc);
}

static void hc_free_state(struct proxy_gateway *gw)
{
    hc_table_free(gw->hc, gw->hc_nclusters);
    gw->hc = NULL;
    gw->hc_nclusters = 0;
}

/* The check state (passes and failures in a row, the next probe) for cfg, carried over from the
 * config in force (gw->current) by cluster, endpoint name and generation, so a config that
 * changes often (a registry-fed cluster) does not keep the thresholds from ever being reached.
 * A probe in flight belongs to the old generation (its answer is dropped): none is in flight
 * for the new one. Before cfg is published; *out is swapped in after. */
static int hc_table_new(const struct proxy_gateway *gw, const struct proxy_config *cfg,
                        struct gw_hc_state ***out)
{
    const struct proxy_config *old = gw->current ? gw->current->cfg : NULL;
    struct gw_hc_state **hc = sh_calloc(cfg->nclusters + 1, sizeof(*hc));

    *out = NULL;
    if (!hc) return SH_ENOMEM;
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        const struct proxy_cluster *cl = &cfg->clusters[i];
        int oc = old && gw->hc ? proxy_cluster_index(old, cl->name) : -1;
        hc[i] = sh_calloc(cl->nendpoints + 1, sizeof(**hc));
        if (!hc[i]) {
            hc_table_free(hc, cfg->nclusters);
            return SH_ENOMEM;
        }
        for (uint32_t e = 0; oc >= 0 && (uint32_t)oc < gw->hc_nclusters && e < cl->nendpoints;
             e++) {
            int oe = proxy__endpoint_index(&old->clusters[oc], &cl->endpoints[e]);
            if (oe < 0) continue;
            hc[i][e] = gw->hc[oc][oe];
            hc[i][e].in_flight = false;
        }
    }
    *out = hc;
    return 0;
}

static void hc_tick(uv_timer_t *t)
{
    struct proxy_gateway *gw = t->data;
    const struct proxy_config *cfg = gw->current->cfg;
    uint64_t now = uv_now(gw->loop);

    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        const struct proxy_cluster *cl = &cfg->clusters[i];
        if (!cl->health.path) continue;
        for (uint32_t e = 0; e < cl->nendpoints; e++) {
            struct gw_hc_state *s = &gw->hc[i][e];
            struct http_creq *cr;
            if (s->in_flight || now < s->next_ms) continue;
            struct hc_probe *p = sh_calloc(1, sizeof(*p));
            if (!p) continue;
            p->gw = gw;
            p->generation = gw->generation;
            p->cluster = i;
            p->ep = e;
            struct http_request_desc d = {
                .addr = (const struct sockaddr *)&cl->endpoints[e].addr,
                .method = SLICE("GET"),
                .target = slice_from_cstr(cl->health.path),
                .host = slice_from_cstr(cl->endpoints[e].name),
                .response_timeout_ms = cl->health.timeout_ms,
                .total_timeout_ms = cl->health.timeout_ms,
            };
            struct http_out_field ua = {SLICE("User-Agent"), SLICE("shoal-health-check")};
            d.fields = &ua;
            d.nfields = 1;
            if (http_client_request(gw->health_client, &d, &hc_handlers, p, &cr) < 0) {
                sh_free(p);
                continue;
            }
            s->in_flight = true;
            s->next_ms = now + cl->health.interval_ms;
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------ */
static void collect_tick(uv_timer_t *t)
{
    struct proxy_gateway *gw = t->data;

    if (gw->inbound_tls) { /* the mesh's leaves renewed */
        struct sh_diag d = {0};
        if (tls_server_check_files(gw->inbound_tls, &d) < 0)
            SH_LOG(SH_ERROR, "proxy", "cannot load the inbound listener's new certificates",
                   LF_STR("where", d.where), LF_STR("error", d.what));
    }
    if (gw->tls) { /* certificate files replaced: new handshakes get the new ones */
        struct sh_diag d = {0};
        int rc = tls_server_check_files(gw->tls, &d);
        if (rc > 0)
            SH_LOG(SH_INFO, "proxy", "TLS certificates reloaded (files changed)");
        else if (rc < 0)
            SH_LOG(SH_WARN, "proxy",
                   "TLS certificate files changed but do not load; keeping the old",
                   LF_STR("where", d.where), LF_STR("what", d.what));
    }

    snap_domain_collect(gw->dom);
    snap_domain_collect(gw->keys_dom);
    snap_domain_collect(gw->callers_dom);
    snap_domain_collect(gw->intentions_dom);
}

static void callers_free(void *obj, void *data)
{
    (void)data;
    proxy_callers_free(obj);
}

static void intentions_free(void *obj, void *data)
{
    (void)data;
    sh_free(obj);
}

int proxy_gateway_set_intentions(struct proxy_gateway *gw, struct sec_intentions *set)
{
    int rc = snap_publish(gw->intentions_dom, set);

    if (rc < 0) sh_free(set);
    return rc;
}

int proxy_gateway_set_callers(struct proxy_gateway *gw, struct proxy_callers *t)
{
    int rc = snap_publish(gw->callers_dom, t);

    if (rc < 0) proxy_callers_free(t);
    return rc;
}

static void gw_handle_closed(uv_handle_t *h)
{
    struct proxy_gateway *gw = h->data;

    if (--gw->open_handles == 0 && gw->free_requested) sh_free(gw);
}

static void gw_check_stopped(struct proxy_gateway *gw)
{
    void (*done)(void *) = gw->stop_done;

    if (gw->workers_running > 0 || !gw->admin_down || !done) return;
    gw->stop_done = NULL;
    for (uint32_t i = 0; i < gw->nworkers; i++) {
        struct gw_worker *w = &gw->workers[i];
        if (w->thread_started && !w->joined) {
            uv_thread_join(&w->thread);
            w->joined = true; /* thread_started stays: free must not touch its handles */
        }
    }
    done(gw->stop_data);
}

static void worker_done_cb(uv_async_t *a)
{
    struct proxy_gateway *gw = a->data;
    uint32_t running = 0;

    for (uint32_t i = 0; i < gw->nworkers; i++)
        running += gw->workers[i].thread_started && !atomic_load(&gw->workers[i].exited);
    gw->workers_running = running;
    gw_check_stopped(gw);
}

static void admin_down(void *data)
{
    struct proxy_gateway *gw = data;

    http_server_free(gw->admin);
    gw->admin = NULL;
    gw->admin_down = true;
    gw_check_stopped(gw);
}

static int publish(struct proxy_gateway *gw, struct proxy_config *cfg)
{
    struct gw_snapshot *gs = gw_snapshot_new(cfg, gw->current);
    struct gw_hc_state **hc = NULL;
    int rc;

    if (!gs) return SH_ENOMEM;
    rc = hc_table_new(gw, cfg, &hc);
    if (rc == 0) rc = proxy__metrics_build(gw, gw->current ? &gw->current->mh : NULL, &gs->mh, cfg);
    if (rc == 0) {
        for (uint32_t c = 0; c < cfg->nclusters; c++)
            for (uint32_t e = 0; e < cfg->clusters[c].nendpoints; e++)
                metric_gauge_set(gs->mh.endpoint_healthy[c][e],
                                 atomic_load(&gs->health.healthy[c][e]) ? 1.0 : 0.0);
        rc = snap_publish(gw->dom, gs);
    }
    if (rc < 0) {
        gs->cfg = NULL;
        gw_snapshot_free(gs, NULL);
        hc_table_free(hc, cfg->nclusters);
        return rc;
    }
    gw->current = gs;
    gw->generation++;
    proxy__jwks_sync(gw, cfg);
    hc_free_state(gw);
    gw->hc = hc;
    gw->hc_nclusters = cfg->nclusters;
    for (uint32_t i = 0; i < gw->nworkers; i++) {
        if (gw->workers[i].handles_ready) uv_async_send(&gw->workers[i].wake);
    }
    return rc;
}

static struct tls_server_config tls_config_of(const struct proxy_tls *t)
{
    return (struct tls_server_config){
        .certs = t->certs,
        .ncerts = t->ncerts,
        .min_version = t->min_version,
        .sni_strict = t->sni_strict,
    };
}

/* tls.redirect_http: every request gets 308 to https://HOST[:PORT]/TARGET. */
static void redirect_request(struct http_exchange *ex, void *data)
{
    struct proxy_gateway *gw = data;
    const struct http_head *h = http_exchange_head(ex);
    struct slice host = http_head_host(h), target = http_head_target(h);
    struct buf loc = BUF_INIT(8192);
    const char *colon;

    /* the Host's name without its port (an IPv6 literal keeps its brackets) */
    if (host.len && host.ptr[0] == '[') {
        colon = memchr(host.ptr, ']', host.len);
        if (colon) host.len = (size_t)(colon - host.ptr) + 1;
    } else if ((colon = memchr(host.ptr, ':', host.len)) != NULL) {
        host.len = (size_t)(colon - host.ptr);
    }
    if (host.len == 0 || target.len == 0 || target.ptr[0] != '/') {
        http_exchange_respond(
            ex, 400, SLICE("text/plain"),
            SLICE("a redirect to https:// needs a Host and an origin-form target\n"));
        return;
    }
    buf_appends(&loc, SLICE("https://"));
    buf_append(&loc, host.ptr, host.len);
    if (gw->port != 443) buf_appendf(&loc, ":%u", gw->port);
    buf_append(&loc, target.ptr, target.len);
    if (loc.err) {
        buf_release(&loc);
        http_exchange_respond(ex, 414, SLICE("text/plain"), SLICE("target too long\n"));
        return;
    }
    struct http_out_field f[2] = {{SLICE("Location"), {loc.data, loc.len}},
                                  {SLICE("Content-Type"), SLICE("text/plain")}};
    struct http_response_head rh = {.status = 308, .fields = f, .nfields = 2, .content_length = 0};
    if (http_exchange_start(ex, &rh) == 0) (void)http_exchange_finish(ex);
    buf_release(&loc);
}

int proxy_gateway_start(uv_loop_t *loop, struct proxy_config *cfg, struct proxy_gateway **out,
                        struct sh_diag *d)
{
    struct proxy_gateway *gw = sh_calloc(1, sizeof(*gw));
    uint32_t n = cfg->workers;
    int rc;

    *out = NULL;
    if (!gw) {
        proxy_config_free(cfg);
        return SH_ENOMEM;
    }
    gw->loop = loop;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (uint32_t)cores : 1;
    }
    gw->nworkers = n;
    snprintf(gw->listen, sizeof(gw->listen), "%s", cfg->listen);
    rc = snap_domain_new(gw_snapshot_free, NULL, &gw->dom);
    if (rc == 0) rc = snap_domain_new(callers_free, NULL, &gw->callers_dom);
    if (rc == 0) rc = snap_domain_new(intentions_free, NULL, &gw->intentions_dom);
    if (rc == 0) rc = proxy__jwks_init(gw);
    if (rc < 0) {
        snap_domain_free(gw->intentions_dom);
        snap_domain_free(gw->callers_dom);
        snap_domain_free(gw->dom);
        proxy_config_free(cfg);
        sh_free(gw);
        return rc;
    }
    gw->workers = sh_calloc(n, sizeof(*gw->workers));
    if (!gw->workers || proxy__metrics_init(gw) < 0) {
        proxy_config_free(cfg);
        rc = SH_ENOMEM;
        goto fail;
    }
    if (cfg->tls.is_set) {
        struct tls_server_config tc = tls_config_of(&cfg->tls);
        rc = tls_server_new(&tc, &gw->tls, d);
        if (rc < 0) {
            proxy_config_free(cfg);
            goto fail;
        }
        if (cfg->tls.hsts_max_age_s)
            snprintf(gw->hsts_line, sizeof(gw->hsts_line), "Strict-Transport-Security: %s\r\n",
                     cfg->tls.hsts_field);
    }
    if (cfg->inbound.is_set) {
        struct tls_server_config ic = {.certs = cfg->inbound.certs,
                                       .ncerts = cfg->inbound.ncerts,
                                       .min_version = TLS_V1_3,
                                       .client_ca = cfg->inbound.client_ca};
        rc = tls_server_new(&ic, &gw->inbound_tls, d);
        if (rc < 0) {
            proxy_config_free(cfg);
            goto fail;
        }
    }
    rc = publish(gw, cfg); /* takes cfg, also on failure */
    if (rc < 0) goto fail;
    uv_async_init(loop, &gw->worker_done, worker_done_cb);
    gw->worker_done.data = gw;
    uv_timer_init(loop, &gw->health_timer);
    gw->health_timer.data = gw;
    uv_timer_init(loop, &gw->collect_timer);
    gw->collect_timer.data = gw;
    proxy__jwks_handles_init(gw);
    gw->open_handles = 5;
    for (uint32_t i = 0; i < n; i++) {
        rc = worker_init(gw, &gw->workers[i], i, gw->current->cfg, d);
        if (rc < 0) goto fail;
    }
    if (gw->current->cfg->admin) {
        struct sockaddr_storage ss;
        rc = sh_listen_parse(gw->current->cfg->admin, &ss, d);
        if (rc < 0) goto fail;
        struct http_server_config acfg = {
            .addr = &ss,
            .on_request = admin_request,
            .data = gw,
        };
        rc = http_server_new(loop, &acfg, &gw->admin, d);
        if (rc < 0) goto fail;
        gw->admin_port = http_server_port(gw->admin);
    } else {
        gw->admin_down = true;
    }
    if (gw->current->cfg->tls.redirect_http) {
        struct sockaddr_storage ss;
        rc = sh_listen_parse(gw->current->cfg->tls.redirect_http, &ss, d);
        if (rc < 0) goto fail;
        struct http_server_config rcfg = {
            .addr = &ss,
            .on_request = redirect_request,
            .data = gw,
            .max_requests_per_conn = 1,
        };
        rc = http_server_new(loop, &rcfg, &gw->redirect, d);
        if (rc < 0) goto fail;
    }
    rc = http_client_new(loop, NULL, &gw->health_client);
    if (rc < 0) goto fail;
    for (uint32_t i = 0; i < n; i++) {
        rc = uv_thread_create(&gw->workers[i].thread, worker_main, &gw->workers[i]);
        if (rc < 0) {
            sh_diag_set(d, "gateway", "cannot start worker thread: %s", uv_strerror(rc));
            goto fail;
        }
        gw->workers[i].thread_started = true;
        gw->workers_running++;
    }
    uv_timer_start(&gw->health_timer, hc_tick, 100, 100);
    uv_timer_start(&gw->collect_timer, collect_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&gw->collect_timer);
    proxy__jwks_start(gw);
    *out = gw;
    return 0;
fail:
    for (uint32_t i = 0; gw->workers && i < n; i++) {
        struct gw_worker *w = &gw->workers[i];
        if (!w->thread_started) continue;
        w->stopping = true; /* stop_deadline_ms is 0: close at once */
        uv_async_send(&w->wake);
        uv_thread_join(&w->thread);
        w->thread_started = false;
    }
    proxy_gateway_free(gw); /* handles on loop are released by its close callbacks */
    return rc;
}

int proxy_gateway_reload(struct proxy_gateway *gw, struct proxy_config *cfg, struct sh_diag *d)
{
    if (strcmp(cfg->listen, gw->listen) != 0) {
        sh_diag_set(d, "listen", "changing the listen address needs a restart (running on %s)",
                    gw->listen);
        proxy_config_free(cfg);
        return SH_ENOTSUP;
    }
    if (cfg->workers != gw->current->cfg->workers) {
        sh_diag_set(d, "workers", "changing the worker count needs a restart");
        proxy_config_free(cfg);
        return SH_ENOTSUP;
    }
    if ((cfg->admin == NULL) != (gw->current->cfg->admin == NULL) ||
        (cfg->admin && strcmp(cfg->admin, gw->current->cfg->admin) != 0)) {
        sh_diag_set(d, "admin", "changing the admin address needs a restart");
        proxy_config_free(cfg);
        return SH_ENOTSUP;
    }
    {
        const struct proxy_tls *a = &gw->current->cfg->tls, *b = &cfg->tls;
        if (a->is_set != b->is_set || strcmp(a->hsts_field, b->hsts_field) != 0 ||
            a->handshake_timeout_ms != b->handshake_timeout_ms ||
            (a->redirect_http == NULL) != (b->redirect_http == NULL) ||
            (a->redirect_http && strcmp(a->redirect_http, b->redirect_http) != 0)) {
            sh_diag_set(d, "tls",
                        "turning TLS on or off, HSTS, redirect_http and handshake_timeout need a "
                        "restart (certificates and min_version reload)");
            proxy_config_free(cfg);
            return SH_ENOTSUP;
        }
        if (b->is_set) { /* re-read the files (SIGHUP): new handshakes use them */
            struct tls_server_config tc = tls_config_of(b);
            int rc = tls_server_reload(gw->tls, &tc, d);
            if (rc < 0) {
                proxy_config_free(cfg);
                return rc;
            }
        }
    }
    return publish(gw, cfg);
}

const struct proxy_config *proxy_gateway_config(const struct proxy_gateway *gw)
{
    return gw->current->cfg;
}

void proxy_gateway_set_spans(struct proxy_gateway *gw, struct trace_queue *q, uint32_t first_shard)
{
    gw->span_shard = first_shard; /* before the pointer: workers read it after theirs */
    atomic_store_explicit(&gw->spans, q, memory_order_release);
}

uint32_t proxy_gateway_workers(const struct proxy_gateway *gw)
{
    return gw->nworkers;
}

uint16_t proxy_gateway_inbound_port(const struct proxy_gateway *gw)
{
    return gw->inbound_port;
}

uint16_t proxy_gateway_port(const struct proxy_gateway *gw)
{
    return gw->port;
}

uint16_t proxy_gateway_admin_port(const struct proxy_gateway *gw)
{
    return gw->admin_port;
}

void proxy_gateway_stop(struct proxy_gateway *gw, uint32_t deadline_ms, void (*done)(void *),
                        void *data)
{
    if (gw->stopping) return;
    gw->stopping = true;
    gw->stop_done = done;
    gw->stop_data = data;
    atomic_store(&gw->stop_deadline_ms, deadline_ms);
    uv_timer_stop(&gw->health_timer);
    uv_timer_stop(&gw->jwks_timer);
    proxy__jwks_stop(gw);
    for (uint32_t i = 0; i < gw->nworkers; i++) {
        struct gw_worker *w = &gw->workers[i];
        w->stopping = true;
        if (w->thread_started) uv_async_send(&w->wake);
    }
    if (gw->redirect) { /* answers are one-shot: nothing to drain */
        http_server_free(gw->redirect);
        gw->redirect = NULL;
    }
    if (gw->admin) http_server_shutdown(gw->admin, deadline_ms, admin_down, gw);
    gw->admin_down = gw->admin == NULL;
    gw_check_stopped(gw);
}

static void worker_release_unstarted(struct gw_worker *w)
{
    /* a worker whose thread never ran: close its handles on its own loop here */
    if (!w->loop_ready) return;
    if (w->srv) http_server_free(w->srv);
    if (w->inbound) http_server_free(w->inbound);
    if (w->client) http_client_free(w->client);
    if (w->handles_ready) {
        uv_close((uv_handle_t *)&w->wake, NULL);
        uv_close((uv_handle_t *)&w->log_flush, NULL);
        uv_close((uv_handle_t *)&w->stats_timer, NULL);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    proxy__fwd_pool_free(w);
    proxy__state_unref(w->state);
    snap_release(w->callers);
    snap_release(w->intentions);
    buf_release(&w->access_log);
    uv_loop_close(&w->loop);
}

/* ------------------------------------------------------------------------------------------
 * Access lines to the control thread (see proxy.h)
 * ------------------------------------------------------------------------------------------ */
void proxy_gateway_access_capture(struct proxy_gateway *gw)
{
    atomic_store(&gw->access_capture, true);
}

/* Takes a worker's list (newest first) and returns it oldest first. */
static struct gw_log_chunk *access_take(struct gw_worker *w)
{
    struct gw_log_chunk *c = atomic_exchange_explicit(&w->access_out, NULL, memory_order_acquire),
                        *prev = NULL;

    while (c) {
        struct gw_log_chunk *next = c->next;
        c->next = prev;
        prev = c;
        c = next;
    }
    return prev;
}

size_t proxy_gateway_access_drain(struct proxy_gateway *gw, proxy_access_line_fn *fn, void *data)
{
    size_t lines = 0;

    for (uint32_t i = 0; gw->workers && i < gw->nworkers; i++) {
        struct gw_log_chunk *c = access_take(&gw->workers[i]);
        while (c) {
            struct gw_log_chunk *next = c->next;
            struct slice rest = {c->data, c->len}, line;
            while (rest.len) {
                rest = slice_split(rest, '\n', &line);
                if (line.len && fn) {
                    fn(data, line);
                    lines++;
                }
            }
            atomic_fetch_sub_explicit(&gw->access_pending, c->len, memory_order_relaxed);
            sh_free(c);
            c = next;
        }
    }
    return lines;
}

uint64_t proxy_gateway_access_dropped(const struct proxy_gateway *gw)
{
    return atomic_load_explicit(&gw->access_dropped, memory_order_relaxed);
}

void proxy_gateway_free(struct proxy_gateway *gw)
{
    if (!gw) return;
    (void)proxy_gateway_access_drain(gw, NULL, NULL); /* what was not drained goes */
    for (uint32_t i = 0; gw->workers && i < gw->nworkers; i++) {
        if (!gw->workers[i].thread_started) worker_release_unstarted(&gw->workers[i]);
    }
    if (gw->admin) http_server_free(gw->admin);
    if (gw->redirect) http_server_free(gw->redirect);
    tls_server_free(gw->tls); /* connections still open hold their own references */
    gw->tls = NULL;
    tls_server_free(gw->inbound_tls);
    gw->inbound_tls = NULL;
    proxy__jwks_free(gw); /* cancels its fetches first: no callback after this */
    http_client_free(gw->health_client);
    hc_free_state(gw);
    snap_domain_free(gw->dom);
    snap_domain_free(gw->callers_dom);
    snap_domain_free(gw->intentions_dom);
    metrics_free(gw->metrics);
    sh_free(gw->workers);
    gw->free_requested = true;
    if (gw->open_handles == 0) {
        sh_free(gw);
        return;
    }
    uv_close((uv_handle_t *)&gw->worker_done, gw_handle_closed);
    uv_close((uv_handle_t *)&gw->health_timer, gw_handle_closed);
    uv_close((uv_handle_t *)&gw->collect_timer, gw_handle_closed);
    uv_close((uv_handle_t *)&gw->jwks_timer, gw_handle_closed);
    uv_close((uv_handle_t *)&gw->jwks_wake, gw_handle_closed);
}
