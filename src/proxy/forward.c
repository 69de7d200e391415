/* SPDX-License-Identifier: MIT */
/* forward.c: one request through the gateway, on a worker thread.
 *
 * route -> (rate limit) -> cluster -> (breaker, concurrency limit) -> endpoint (balancer,
 * minus ejected and unhealthy ones) -> upstream request, with the body streamed both ways
 * under backpressure. Failures before the answer has started downstream may be retried on
 * another endpoint after a jittered backoff, within the retry budget and the request deadline;
 * what cannot be retried becomes 502/503/504, or the route's stale copy when it keeps one.
 * What to decide (breaker, ejection, eligibility, budget, rate limit) is resilience.c's; this
 * file gathers the inputs on the request path and carries the decisions out.
 *
 * Lifetime: a struct fwd lives from the request head until the exchange is over (answered or
 * aborted) and its backoff timer is closed; it holds a reference to the worker state (config
 * generation) it started under, so a reload never changes a request in flight. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "security/security.h"
#include "tls/tls.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    RETRY_BODY_MAX = 64 * 1024, /* request body kept for replays */
    MAX_FIELDS_OUT = 128,
};

enum fwd_outcome { FWD_OUTCOME_NONE = 0, FWD_OUTCOME_OK, FWD_OUTCOME_FAILED };

struct fwd {
    struct gw_worker *w;
    bool inbound; /* came in on the mTLS listener: the caller is the certificate's */
    struct gw_state *st;
    const struct proxy_route *route;
    struct gw_cluster_rt *crt;
    const struct proxy_timeouts *to;
    const struct proxy_retry *rp;
    struct http_exchange *ex;
    struct http_creq *cr;
    uv_timer_t *timer;     /* backoff before a retry; made when first needed */
    struct fwd *next_dead; /* in the worker's lists of ended and reusable requests */
    uint32_t ep, prev_ep;
    struct http_out_field *fields;
    size_t nfields;
    struct http_out_field *jwt_fields; /* claims to headers, in the exchange arena */
    uint32_t njwt_fields;
    const char *auth; /* a JWT route's verdict for the access log: "ok", "cached", a reason */
    char *denied_by;  /* the intention that refused the request (in the arena), or NULL */
    struct slice target, hash_key;
    struct buf body;     /* request body kept for retries */
    struct buf captured; /* response body kept for the stale copy */
    int64_t req_cl;
    uint64_t start_us, attempt_us, deadline_ms;
    uint64_t bytes_out;
    uint32_t attempts;
    uint64_t tried; /* endpoints attempted (bit i % 64), for the previous-hosts predicate */
    enum fwd_outcome outcome;
    int status;
    uint16_t upstream_status;
    bool body_complete, body_kept, resp_started, retry_pending, probe, capture, ended;
    bool attempted; /* the first attempt started (request buffering is over) */
    bool admitted;  /* the breaker let it through: its outcome is reported (breaker_outcome) */
    char reqid[48];
    char traceparent[TRACE_PARENT_LEN + 1];
    char trace_id[33];
    char method[16]; /* for the access log, which outlives the exchange */
    char log_target[160];
    char clientip[64];
    uint32_t caller; /* the caller label's index in this generation's series (gw_mh) */
    char caller_service[PROXY_CALLER_MAX_NAME_BYTES + 1];  /* "gateway", "unknown", "greeter" */
    char caller_instance[PROXY_CALLER_MAX_NAME_BYTES + 1]; /* "greeter-1", or "" */
    /* its span (tracing on: spans is the gateway's queue) */
    struct trace_queue *spans;
    struct trace_context tc; /* ours: the trace, and the span id sent downstream */
    uint8_t parent_span[TRACE_SPAN_ID_BYTES];
    bool has_parent, sampled, transport_failed;
    uint64_t start_wall_us, first_attempt_us, head_us;
    struct proxy_span_event ev[PROXY_SPAN_MAX_EVENTS];
    uint32_t nev;
};

struct fwd;
static void fwd_start_attempt(struct fwd *f);
static void fwd_end(struct fwd *f);

static uint64_t wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Something the span of f tells (an annotation): detail is a constant or a name in f's config. */
static void span_event(struct fwd *f, enum proxy_span_event_kind kind, const char *detail)
{
    if (!f->spans || f->nev >= PROXY_SPAN_MAX_EVENTS) return;
    f->ev[f->nev++] = (struct proxy_span_event){.at_us = wall_us(), .kind = kind, .detail = detail};
}

/* The series of this request's config generation, and its cluster's index. */
#define MH(f) (&(f)->st->gs->mh)
#define CI(f) ((uint32_t)((f)->crt - (f)->st->clusters))

/* ------------------------------------------------------------------------------------------
 * Access log: one JSON line per request, buffered per worker and written once per loop turn.
 * ------------------------------------------------------------------------------------------ */
static void access_log(struct fwd *f)
{
    struct buf *b = &f->w->access_log;
    size_t before = b->len;

    buf_appendf(b, "{\"ts\":%llu,\"request_id\":\"%s\",\"method\":\"",
                (unsigned long long)sh_wall_ms(), f->reqid);
    buf_append_json_str(b, slice_from_cstr(f->method));
    buf_appends(b, SLICE("\",\"target\":\""));
    buf_append_json_str(b, slice_from_cstr(f->log_target));
    buf_appends(b, SLICE("\",\"route\":\""));
    buf_append_json_str(b, slice_from_cstr(f->route ? f->route->name : ""));
    buf_appends(b, SLICE("\",\"cluster\":\""));
    buf_append_json_str(b, slice_from_cstr(f->crt ? f->crt->cfg->name : ""));
    buf_appends(b, SLICE("\",\"endpoint\":\""));
    if (f->crt && f->ep < f->crt->cfg->nendpoints)
        buf_append_json_str(b, slice_from_cstr(f->crt->cfg->endpoints[f->ep].name));
    buf_appends(b, SLICE("\",\"caller\":\""));
    buf_append_json_str(b, slice_from_cstr(f->caller_service));
    buf_appends(b, SLICE("\",\"caller_instance\":\""));
    buf_append_json_str(b, slice_from_cstr(f->caller_instance));
    buf_appendf(b,
                "\",\"status\":%d,\"upstream_status\":%u,\"bytes\":%llu,"
                "\"duration_ms\":%.3f,\"attempts\":%u,\"client\":\"%s\","
                "\"trace_id\":\"%s\"",
                f->status, f->upstream_status, (unsigned long long)f->bytes_out,
                (double)(sh_now_us() - f->start_us) / 1000.0, f->attempts, f->clientip,
                f->trace_id);
    if (f->auth) buf_appendf(b, ",\"auth\":\"%s\"", f->auth);
    if (f->denied_by) {
        buf_appends(b, SLICE(",\"denied_by\":\""));
        buf_append_json_str(b, slice_from_cstr(f->denied_by));
        buf_appendc(b, '"');
    }
    buf_appends(b, SLICE("}\n"));
    if (b->err) {
        b->len = before;
        b->err = 0;
    }
    if (b->len > 64 * 1024) proxy__log_flush(f->w);
}

/* ------------------------------------------------------------------------------------------
 * Outcomes: the breaker, outlier ejection and the retry budget learn from every attempt.
 * ------------------------------------------------------------------------------------------ */
static uint64_t now_ms(const struct fwd *f)
{
    return uv_now(&f->w->loop);
}

/* The worker's current runtime of f's cluster. A request keeps the config generation it started
 * under, but what it teaches (the breaker, ejections, the retry budget) goes to the current
 * one, which carried that state over by name when it was built and would otherwise miss what
 * requests in flight at a reload learn (and two breakers would move one gauge). NULL when the
 * current config has no such cluster any more. */
static struct gw_cluster_rt *live_cluster(struct fwd *f)
{
    const struct gw_state *cur = f->w->state;
    int i;

    if (!cur || cur == f->st) return f->crt;
    i = proxy_cluster_index(cur->cfg, f->crt->cfg->name);
    return i < 0 ? NULL : &cur->clusters[i];
}

/* A request admitted by the breaker ended with an outcome (or none, when the client left): the
 * breaker learns from requests, after their retries; outlier detection learns from attempts. */
static void breaker_outcome(struct fwd *f)
{
    struct gw_cluster_rt *c = live_cluster(f);
    const struct gw_mh *mh = MH(f);
    bool probe = f->probe && c == f->crt; /* a probe of an older generation is a request */

    if (!f->admitted) return;
    f->admitted = false;
    if (!c) return;
    if (f->outcome == FWD_OUTCOME_NONE) {
        if (probe) proxy_breaker_probe_abandoned(&c->breaker);
        return;
    }
    switch (proxy_breaker_record(&c->breaker, &c->cfg->breaker, f->outcome == FWD_OUTCOME_FAILED,
                                 probe, now_ms(f))) {
    case PROXY_BREAKER_OPENED:
        metric_gauge_add(mh->breaker_open[CI(f)], f->w->index, 1);
        metric_counter_inc(mh->breaker_opens[CI(f)], f->w->index);
        SH_LOG(SH_WARN, "proxy", "circuit breaker opened", LF_STR("cluster", c->cfg->name),
               LF_UINT("for_ms", c->cfg->breaker.open_ms));
        break;
    case PROXY_BREAKER_REOPENED:
        metric_counter_inc(mh->breaker_opens[CI(f)], f->w->index);
        break;
    case PROXY_BREAKER_RECLOSED:
        metric_gauge_add(mh->breaker_open[CI(f)], f->w->index, -1);
        SH_LOG(SH_INFO, "proxy", "circuit breaker closed", LF_STR("cluster", c->cfg->name));
        break;
    case PROXY_BREAKER_SAME:
        break;
    }
}

static void outlier_record(struct fwd *f, uint32_t ep, bool failed, uint64_t now)
{
    struct gw_cluster_rt *c = live_cluster(f);
    const char *ep_name = f->crt->cfg->endpoints[ep].name; /* in f's own generation */
    uint32_t revival;
    uint64_t span;

    if (c && c != f->crt) { /* the same endpoint (name and generation) in the current config */
        int e = proxy__endpoint_index(c->cfg, &f->crt->cfg->endpoints[ep]);
        c = e < 0 ? NULL : c;
        ep = e < 0 ? ep : (uint32_t)e;
    }
    if (!c) return;
    revival = atomic_load_explicit(&c->revival[ep], memory_order_relaxed);
    span = proxy_outlier_record(c->eps, c->cfg->nendpoints, ep, &c->cfg->outlier, failed, revival,
                                now);
    if (!span) return;
    metric_counter_inc(MH(f)->ejections[CI(f)], f->w->index);
    span_event(f, PROXY_EV_EJECTED, ep_name);
    SH_LOG(SH_WARN, "proxy", "endpoint ejected", LF_STR("cluster", c->cfg->name),
           LF_STR("endpoint", c->cfg->endpoints[ep].name), LF_UINT("for_ms", span));
}

/* ------------------------------------------------------------------------------------------
 * Answers made by the gateway itself
 * ------------------------------------------------------------------------------------------ */
static void respond(struct fwd *f, int status, const char *content_type, const char *extra_name,
                    const char *extra_value, struct slice body)
{
    struct http_out_field fl[3];
    size_t n = 0;

    f->status = status;
    if (!f->ex) return;
    if (content_type)
        fl[n++] = (struct http_out_field){SLICE("Content-Type"), slice_from_cstr(content_type)};
    fl[n++] = (struct http_out_field){SLICE("X-Request-Id"), slice_from_cstr(f->reqid)};
    if (extra_name)
        fl[n++] =
            (struct http_out_field){slice_from_cstr(extra_name), slice_from_cstr(extra_value)};
    struct http_response_head rh = {
        .status = status, .fields = fl, .nfields = n, .content_length = (int64_t)body.len};
    f->bytes_out = body.len;
    if (http_exchange_start(f->ex, &rh) < 0 || http_exchange_write(f->ex, body.ptr, body.len) < 0 ||
        http_exchange_finish(f->ex) < 0) {
        if (f->ex) http_exchange_abort(f->ex);
    }
    f->ex = NULL;
}

static void respond_error(struct fwd *f, int status, const char *what, const char *hname,
                          const char *hvalue)
{
    char body[256];
    int len = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"detail\":\"%s\"}\n",
                       http_reason(status), what);

    respond(f, status, "application/json", hname, hvalue, (struct slice){body, (size_t)len});
}

/* The stale copy of a GET, when the route keeps them. */
static struct gw_route_rt *route_rt(struct fwd *f)
{
    return &f->st->routes[f->route - f->st->cfg->routes];
}

/* The worker's current runtime of f's route when the route carried over to it unchanged
 * (state.c moved its stale copies there), else f's own: a request in flight at a reload
 * stores and finds its stale copies where the next requests will. */
static struct gw_route_rt *live_route_rt(struct fwd *f)
{
    struct gw_state *cur = f->w->state;

    if (!cur || cur == f->st) return route_rt(f);
    for (uint32_t i = 0; i < cur->cfg->nroutes; i++) {
        if (proxy__route_state_carries(&cur->cfg->routes[i], f->route)) return &cur->routes[i];
    }
    return route_rt(f);
}

static bool serve_stale(struct fwd *f)
{
    const struct proxy_fallback *fb = &f->route->fallback;
    const struct gw_cache_entry *e;
    char age[24];

    if (!fb->enabled || !f->ex) return false;
    e = proxy__cache_find(&live_route_rt(f)->cache, fb, http_exchange_head(f->ex), now_ms(f));
    if (!e) return false;
    snprintf(age, sizeof(age), "%llu", (unsigned long long)((now_ms(f) - e->stored_ms) / 1000));
    struct http_out_field fl[4] = {
        {SLICE("Content-Type"), slice_from_cstr(proxy__cache_entry_ctype(e))},
        {SLICE("X-Request-Id"), slice_from_cstr(f->reqid)},
        {SLICE("X-Shoal-Fallback"), SLICE("stale")},
        {SLICE("Age"), slice_from_cstr(age)},
    };
    struct http_response_head rh = {
        .status = e->status, .fields = fl, .nfields = 4, .content_length = (int64_t)e->body_len};
    f->status = e->status;
    f->bytes_out = e->body_len;
    span_event(f, PROXY_EV_STALE, NULL);
    metric_counter_inc(MH(f)->route_fallbacks[f->route - f->st->cfg->routes], f->w->index);
    if (http_exchange_start(f->ex, &rh) < 0 ||
        http_exchange_write(f->ex, proxy__cache_entry_body(e), e->body_len) < 0 ||
        http_exchange_finish(f->ex) < 0)
        http_exchange_abort(f->ex);
    f->ex = NULL;
    return true;
}

/* The request cannot be served by the cluster: a stale copy, or an error. */
static void fail_request(struct fwd *f, int status, const char *what, const char *hname,
                         const char *hvalue)
{
    f->outcome = FWD_OUTCOME_FAILED;
    if (f->ex && !f->resp_started && serve_stale(f)) {
        fwd_end(f);
        return;
    }
    if (f->ex && f->resp_started) {
        /* the answer is half sent: the only honest end is to cut it */
        http_exchange_abort(f->ex);
        f->ex = NULL;
        f->status = f->status ? f->status : 502;
    } else {
        respond_error(f, status, what, hname, hvalue);
    }
    metric_counter_inc(MH(f)->upstream_errors, f->w->index);
    fwd_end(f);
}

/* ------------------------------------------------------------------------------------------
 * Retries
 * ------------------------------------------------------------------------------------------ */
static bool idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS || m == HTTP_M_PUT ||
           m == HTTP_M_DELETE || m == HTTP_M_TRACE;
}

/* The retry budget of f's cluster, in the worker's current config (live_cluster). */
static struct proxy_budget *budget_of(struct fwd *f)
{
    struct gw_cluster_rt *c = live_cluster(f);

    return c ? &c->budget : &f->crt->budget;
}

/* Whether f may be tried again for <reason>, the budget left aside. */
static bool retry_wanted(struct fwd *f, uint32_t reason)
{
    const struct proxy_retry *rp = f->rp;

    if (!f->ex || f->resp_started || f->attempts > rp->max_retries || !(rp->on & reason))
        return false;
    if (!idempotent(http_exchange_head(f->ex)->method) && !rp->non_idempotent) return false;
    if (!f->body_kept) return false;
    return now_ms(f) < f->deadline_ms;
}

/* Whether f may be tried again for <reason>, budget included (without taking from it). A retry
 * wanted that the budget refuses is told in the span. */
static bool retry_possible(struct fwd *f, uint32_t reason)
{
    if (!retry_wanted(f, reason)) return false;
    if (proxy_budget_available(budget_of(f), f->rp, now_ms(f))) return true;
    span_event(f, PROXY_EV_BUDGET, NULL);
    return false;
}

/* retry_possible, and a retry taken from the budget. */
static bool retry_allowed(struct fwd *f, uint32_t reason)
{
    if (!retry_possible(f, reason)) return false;
    if (proxy_budget_spend(budget_of(f), f->rp, now_ms(f))) return true;
    span_event(f, PROXY_EV_BUDGET, NULL);
    return false;
}

static const char *retry_why(uint32_t reason)
{
    return reason & PROXY_RETRY_CONNECT   ? "connection refused"
           : reason & PROXY_RETRY_TIMEOUT ? "timed out"
           : reason & PROXY_RETRY_RESET   ? "connection failed"
                                          : "retryable status";
}

static void retry_cb(uv_timer_t *t)
{
    struct fwd *f = t->data;

    if (!f->ex) {
        fwd_end(f);
        return;
    }
    fwd_start_attempt(f);
}

/* Tries again after a jittered backoff, or fails the request with status. */
static void retry_or_fail(struct fwd *f, uint32_t reason, int status, const char *what)
{
    if (retry_allowed(f, reason)) {
        uint64_t cap = (uint64_t)f->rp->backoff_base_ms << SH_MIN(f->attempts - 1, 16u);
        uint64_t delay;
        if (cap > f->rp->backoff_max_ms) cap = f->rp->backoff_max_ms;
        delay = cap ? proxy_rand(&f->w->rng) % (cap + 1) : 0; /* full jitter */
        if (now_ms(f) + delay < f->deadline_ms) {
            span_event(f, PROXY_EV_RETRY, retry_why(reason));
            metric_counter_inc(MH(f)->retries, f->w->index);
            metric_counter_inc(MH(f)->cluster_retries[CI(f)], f->w->index);
            f->prev_ep = f->ep;
            if (!f->timer) { /* made on the first retry only: most requests never wait */
                f->timer = sh_malloc(sizeof(*f->timer));
                if (!f->timer) {
                    fail_request(f, status, what, NULL, NULL);
                    return;
                }
                uv_timer_init(&f->w->loop, f->timer);
                f->timer->data = f;
            }
            uv_timer_start(f->timer, retry_cb, delay, 0);
            return;
        }
    }
    fail_request(f, status, what, NULL, NULL);
}

/* ------------------------------------------------------------------------------------------
 * Upstream side
 * ------------------------------------------------------------------------------------------ */
static bool status_retryable(const struct proxy_retry *rp, uint16_t st)
{
    if ((rp->on & PROXY_RETRY_5XX) && st >= 500) return true;
    if (rp->on & PROXY_RETRY_STATUS) {
        for (uint32_t i = 0; i < rp->nstatuses; i++) {
            if (rp->statuses[i] == st) return true;
        }
    }
    return false;
}

static bool keep_response_field(const struct http_head *h, struct slice name)
{
    if (http_is_hop_by_hop(h, name)) return false;
    return !slice_eq_nocase(name, SLICE("content-length")) && !slice_eq_nocase(name, SLICE("date"));
}

static void up_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct fwd *f = data;
    struct http_out_field *fl;
    size_t n = 0, cap;
    struct arena *a;

    (void)cr;
    f->upstream_status = h->status;
    f->head_us = sh_now_us();
    if (!f->ex) return;
    if (status_retryable(f->rp, h->status) &&
        retry_possible(f, f->rp->on & (PROXY_RETRY_5XX | PROXY_RETRY_STATUS))) {
        /* retried at on_done, when the connection is free; the body is dropped meanwhile. An
         * answer that cannot be retried (method, body, deadline, budget) goes to the client
         * as the upstream gave it. */
        f->retry_pending = true;
        return;
    }
    a = http_exchange_arena(f->ex);
    cap = h->nfields + f->route->nadd_response_headers + 2;
    fl = arena_alloc(a, cap * sizeof(*fl));
    if (!fl) {
        fail_request(f, 503, "out of memory", NULL, NULL);
        return;
    }
    for (uint32_t i = 0; i < h->nfields; i++) {
        struct slice name = http_field_name(h, i);
        if (keep_response_field(h, name))
            fl[n++] = (struct http_out_field){name, http_field_value(h, i)};
    }
    fl[n++] = (struct http_out_field){SLICE("X-Request-Id"), slice_from_cstr(f->reqid)};
    for (uint32_t i = 0; i < f->route->nadd_response_headers; i++)
        fl[n++] = (struct http_out_field){slice_from_cstr(f->route->add_response_headers[i].name),
                                          slice_from_cstr(f->route->add_response_headers[i].value)};
    struct http_response_head rh = {
        .status = h->status,
        .fields = fl,
        .nfields = n,
        .content_length = h->body == HTTP_BODY_LENGTH  ? (int64_t)h->content_length
                          : (h->flags & HTTP_F_HAS_CL) ? (int64_t)h->content_length
                          : h->body == HTTP_BODY_NONE  ? 0
                                                       : -1,
    };
    if (h->status == 304 || h->status == 204) rh.content_length = -1;
    f->status = h->status;
    if (http_exchange_start(f->ex, &rh) < 0) {
        http_exchange_abort(f->ex);
        f->ex = NULL;
        return;
    }
    f->resp_started = true;
    if (f->route->fallback.enabled)
        f->capture = proxy__cache_capture_begin(&f->captured, &f->route->fallback,
                                                http_exchange_head(f->ex), h);
}

static void up_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct fwd *f = data;
    int rc;

    if (f->retry_pending || !f->ex) return;
    f->bytes_out += chunk.len;
    if (f->capture && buf_appends(&f->captured, chunk) != 0) f->capture = false;
    rc = http_exchange_write(f->ex, chunk.ptr, chunk.len);
    if (rc == HTTP_AGAIN)
        http_creq_pause(cr);
    else if (rc < 0) {
        http_exchange_abort(f->ex);
        f->ex = NULL;
    }
}

static void up_drain(struct http_creq *cr, void *data)
{
    struct fwd *f = data;

    (void)cr;
    if (f->ex) http_exchange_resume(f->ex);
}

/* One upstream attempt starts (+1) or ends (-1) at f's endpoint: the balancer's counts, the
 * breaker's concurrency limit and the in-flight gauge the autoscaler reads. */
static void attempt_active(struct fwd *f, int delta)
{
    struct gw_cluster_rt *c = f->crt;

    c->active[f->ep] = (uint32_t)((int64_t)c->active[f->ep] + delta);
    c->active_requests = (uint32_t)((int64_t)c->active_requests + delta);
    metric_gauge_add(MH(f)->cluster_in_flight[CI(f)], f->w->index, delta);
}

static void up_done(struct http_creq *cr, int rc, void *data)
{
    struct fwd *f = data;
    uint64_t now = now_ms(f);
    bool failed = rc < 0 || f->upstream_status >= 500;

    (void)cr;
    f->cr = NULL;
    f->transport_failed = rc < 0;
    attempt_active(f, -1);
    outlier_record(f, f->ep, failed, now);
    {
        const struct gw_mh *mh = MH(f);
        uint32_t k = rc < 0 ? 0 : (uint32_t)proxy__status_class(f->upstream_status);
        metric_counter_inc(mh->cluster_requests[CI(f) * GW_CLASSES + k], f->w->index);
        metric_counter_inc(mh->endpoint_requests[CI(f)][f->ep * GW_CLASSES + k], f->w->index);
        metric_histogram_observe(mh->cluster_duration[CI(f)], f->w->index,
                                 (double)(sh_now_us() - f->attempt_us) / 1e6);
    }
    if (!f->ex) { /* the client went away */
        fwd_end(f);
        return;
    }
    if (f->retry_pending) {
        f->retry_pending = false;
        char what[64];
        snprintf(what, sizeof(what), "upstream answered %u", f->upstream_status);
        if (retry_allowed(f, f->rp->on & (PROXY_RETRY_5XX | PROXY_RETRY_STATUS))) {
            /* give the budget token back: retry_or_fail takes it again */
            proxy_budget_refund(budget_of(f));
            retry_or_fail(f, f->rp->on & (PROXY_RETRY_5XX | PROXY_RETRY_STATUS), 502, what);
            return;
        }
        /* the budget went to other requests since the head came: the upstream's own answer is
         * what the client should see, but its body is gone; answer with the same status (a
         * real answer: no stale copy instead of it, and a failure only when it is a 5xx) */
        f->outcome = f->upstream_status >= 500 ? FWD_OUTCOME_FAILED : FWD_OUTCOME_OK;
        if (f->upstream_status >= 500) metric_counter_inc(MH(f)->upstream_errors, f->w->index);
        respond_error(f, f->upstream_status, what, NULL, NULL);
        fwd_end(f);
        return;
    }
    if (rc == 0) {
        f->outcome = f->upstream_status >= 500 ? FWD_OUTCOME_FAILED : FWD_OUTCOME_OK;
        if (f->capture && f->captured.err == 0)
            proxy__cache_store(&live_route_rt(f)->cache, &f->route->fallback, &f->captured,
                               now_ms(f));
        if (http_exchange_finish(f->ex) < 0) http_exchange_abort(f->ex);
        f->ex = NULL;
        fwd_end(f);
        return;
    }
    if (f->resp_started) {
        f->outcome = FWD_OUTCOME_FAILED;
        http_exchange_abort(f->ex);
        f->ex = NULL;
        metric_counter_inc(MH(f)->upstream_errors, f->w->index);
        fwd_end(f);
        return;
    }
    switch (rc) {
    case SH_ETIMEDOUT:
        if (now >= f->deadline_ms)
            fail_request(f, 504, "upstream timed out", NULL, NULL);
        else
            retry_or_fail(f, PROXY_RETRY_TIMEOUT, 504, "upstream timed out");
        return;
    case SH_ECONNREFUSED:
        retry_or_fail(f, PROXY_RETRY_CONNECT, 502, "upstream refused the connection");
        return;
    case SH_EPARSE:
        fail_request(f, 502, "malformed upstream response", NULL, NULL);
        return;
    default:
        retry_or_fail(f, PROXY_RETRY_RESET, 502, "upstream connection failed");
        return;
    }
}

static const struct http_creq_handlers up_handlers = {
    .on_head = up_head, .on_body = up_body, .on_drain = up_drain, .on_done = up_done};

static void fwd_start_attempt(struct fwd *f)
{
    struct gw_cluster_rt *c = f->crt;
    const struct proxy_cluster *cl = c->cfg;
    uint64_t now = now_ms(f);
    const struct http_head *h = http_exchange_head(f->ex);
    int rc;

    if (now >= f->deadline_ms) {
        fail_request(f, 504, "request deadline passed", NULL, NULL);
        return;
    }
    if (c->active_requests >= cl->breaker.max_requests) {
        c->rejected_limit++;
        fail_request(f, 503, "too many requests to the cluster", "X-Shoal-Limit", "max_requests");
        return;
    }
    if (f->attempts == 0) { /* the breaker admits requests; their retries go with them */
        enum proxy_breaker_verdict v = proxy_breaker_admit(&c->breaker, &cl->breaker, now);
        if (v == PROXY_BREAKER_REJECT) {
            span_event(f, PROXY_EV_BREAKER_OPEN, NULL);
            metric_counter_inc(MH(f)->fast_fails, f->w->index);
            fail_request(f, 503, "circuit breaker open", "X-Shoal-Breaker", "open");
            return;
        }
        f->admitted = true;
        f->probe = v == PROXY_BREAKER_PROBE;
    }
    for (uint32_t i = 0; i < cl->nendpoints; i++) {
        uint32_t revival = atomic_load_explicit(&c->revival[i], memory_order_relaxed);
        c->excluded[i] = proxy_outlier_ejected(&c->eps[i], revival, now) ||
                         !atomic_load_explicit(&c->healthy[i], memory_order_relaxed);
        c->tried[i] = f->attempts && (f->tried >> (i % 64)) & 1;
    }
    proxy_pick_exclusions(c->excluded, f->attempts ? c->tried : NULL, cl->nendpoints,
                          cl->outlier.panic_percent);
    struct proxy_pick_ctx pc = {
        .excluded = c->excluded, .active = c->active, .hash_key = f->hash_key, .avoid = f->prev_ep};
    f->ep = proxy_lb_pick(cl, &c->lb, &pc);
    if (f->ep == UINT32_MAX) {
        fail_request(f, 503, "no endpoints in the cluster", NULL, NULL);
        return;
    }
    f->tried |= 1ull << (f->ep % 64);
    struct tls_client *tls = NULL;
    if (cl->mtls.is_set) {
        /* another mesh: present the calling service's own certificate (ztunnel-style) */
        const struct proxy_config *cfg = f->st->cfg;
        for (uint32_t k = 0; k < cfg->nidentities && !tls; k++)
            if (strcmp(cfg->identities[k].service, f->caller_service) == 0) tls = cl->mtls.by_id[k];
        if (!tls) {
            fail_request(f, 403, "the caller has no identity here to call another mesh with", NULL,
                         NULL);
            return;
        }
    }
    uint64_t left = f->deadline_ms - now;
    struct http_request_desc d = {
        .addr = (const struct sockaddr *)&cl->endpoints[f->ep].addr,
        .method = http_head_method(h),
        .target = f->target,
        .host = http_head_host(h),
        .fields = f->fields,
        .nfields = f->nfields,
        .fields_checked = true, /* parsed by us, or validated when the config was loaded */
        .content_length = f->req_cl,
        .response_timeout_ms = f->to->per_try_ms,
        .total_timeout_ms = (uint32_t)SH_MIN(left, (uint64_t)UINT32_MAX),
        /* the pool is per endpoint: the cluster's settings, not a route's override */
        .connect_timeout_ms = cl->timeouts.connect_ms,
        .idle_timeout_ms = cl->timeouts.idle_ms,
        .max_pending = cl->breaker.max_pending,
        .tls = tls,
        .tls_name = cl->mtls.server_name,
        .tls_expect_id = cl->mtls.identity,
    };
    if (d.host.len == 0) d.host = SLICE("localhost");
    f->attempts++;
    f->attempt_us = sh_now_us();
    if (f->attempts == 1) f->first_attempt_us = f->attempt_us;
    f->head_us = 0;
    f->upstream_status = 0;
    rc = http_client_request(f->w->client, &d, &up_handlers, f, &f->cr);
    if (rc < 0) {
        if (rc == SH_ELIMIT)
            fail_request(f, 503, "too many pending requests", "X-Shoal-Limit", "max_pending");
        else
            fail_request(f, 502, "cannot reach the upstream", NULL, NULL);
        return;
    }
    attempt_active(f, 1);
    if (f->body.len && http_creq_write(f->cr, f->body.data, f->body.len) < 0) {
        http_creq_cancel(f->cr);
        f->cr = NULL;
        attempt_active(f, -1);
        fail_request(f, 502, "cannot send the body", NULL, NULL);
        return;
    }
    if (f->body_complete) http_creq_finish(f->cr);
}

/* ------------------------------------------------------------------------------------------
 * Downstream side
 * ------------------------------------------------------------------------------------------ */
static void down_body(struct http_exchange *ex, struct slice chunk, void *data)
{
    struct fwd *f = data;
    int rc = 0;

    if (!f->attempted) {
        /* Request buffering (nginx's default): a body up to RETRY_BODY_MAX is read whole
         * before the upstream hears of the request, so a malformed one never reaches it and a
         * retry can replay it. A bigger one starts streaming once the buffer is full. */
        if (f->body.len + chunk.len <= RETRY_BODY_MAX && buf_appends(&f->body, chunk) == 0) return;
        f->attempted = true;
        fwd_start_attempt(f);
        if (!f->ex) return;
    }
    if (f->body_kept) {
        if (f->body.len + chunk.len > RETRY_BODY_MAX || buf_appends(&f->body, chunk) != 0) {
            f->body_kept = false; /* too big to replay: this request will not be retried */
            buf_release(&f->body);
        }
    }
    if (f->cr) {
        rc = http_creq_write(f->cr, chunk.ptr, chunk.len);
        if (rc == HTTP_AGAIN) http_exchange_pause(ex);
    } else if (!f->body_kept) {
        http_exchange_pause(ex); /* waiting for an attempt; nothing must be lost */
    }
}

static void down_body_end(struct http_exchange *ex, void *data)
{
    struct fwd *f = data;

    (void)ex;
    f->body_complete = true;
    if (!f->attempted) {
        f->attempted = true;
        fwd_start_attempt(f);
        return;
    }
    if (f->cr) http_creq_finish(f->cr);
}

static void down_drain(struct http_exchange *ex, void *data)
{
    struct fwd *f = data;

    (void)ex;
    if (f->cr) http_creq_resume(f->cr);
}

static void down_abort(struct http_exchange *ex, int err, void *data)
{
    struct fwd *f = data;

    (void)ex;
    (void)err;
    f->ex = NULL;
    f->status = f->status ? f->status : 499; /* nginx's "client closed request" */
    if (f->cr) {
        http_creq_cancel(f->cr);
        f->cr = NULL;
        attempt_active(f, -1);
    }
    fwd_end(f); /* a pending backoff timer is stopped there */
}

static const struct http_exchange_handlers down_handlers = {.on_body = down_body,
                                                            .on_body_end = down_body_end,
                                                            .on_drain = down_drain,
                                                            .on_abort = down_abort};

/* ------------------------------------------------------------------------------------------
 * Request entry
 * ------------------------------------------------------------------------------------------ */
static void timer_closed(uv_handle_t *h)
{
    sh_free(h);
}

/* Requests that ended are released at the end of the loop turn, once every callback that
 * might still hold them has returned; their memory is reused by the next requests. */
enum { FWD_POOL_MAX = 256 };

void proxy__fwd_reap(struct gw_worker *w)
{
    struct fwd *f;

    while ((f = w->dead) != NULL) {
        w->dead = f->next_dead;
        buf_release(&f->captured);
        if (w->npool < FWD_POOL_MAX && f->body.cap <= 16384) {
            struct buf body = f->body;
            buf_reset(&body);
            memset(f, 0, sizeof(*f));
            f->body = body;
            f->next_dead = w->pool;
            w->pool = f;
            w->npool++;
        } else {
            buf_release(&f->body);
            sh_free(f);
        }
    }
}

void proxy__fwd_pool_free(struct gw_worker *w)
{
    struct fwd *f;

    proxy__fwd_reap(w);
    while ((f = w->pool) != NULL) {
        w->pool = f->next_dead;
        buf_release(&f->body);
        sh_free(f);
    }
    w->npool = 0;
}

static struct fwd *fwd_new(struct gw_worker *w)
{
    struct fwd *f = w->pool;

    if (f) {
        w->pool = f->next_dead;
        w->npool--;
        f->next_dead = NULL;
        return f;
    }
    return sh_calloc(1, sizeof(*f));
}

/* The request's span, when the sampling decision keeps it (errors and slow requests always). */
static void record_span(struct fwd *f)
{
    uint64_t now = sh_now_us();
    const struct gw_mh *mh = MH(f);
    bool has_ep = f->crt && f->ep < f->crt->cfg->nendpoints;
    struct proxy_keep_input keep = {
        .is_sampled = f->sampled,
        .is_error = f->transport_failed || f->status >= 500,
        .duration_us = now - f->start_us,
        .slow_ms = f->st->cfg->tracing.slow_ms,
    };
    struct proxy_span_input in = {
        .trace_id = f->tc.trace_id,
        .span_id = f->tc.span_id,
        .parent_id = f->has_parent ? f->parent_span : NULL,
        .start_us = f->start_wall_us,
        .duration_us = keep.duration_us,
        .local_service = slice_from_cstr(f->caller_service),
        .remote_service = f->crt ? slice_from_cstr(f->crt->cfg->service ? f->crt->cfg->service
                                                                        : f->crt->cfg->name)
                                 : SLICE(""),
        .method = slice_from_cstr(f->method),
        .target = slice_from_cstr(f->log_target),
        .route = f->route ? slice_from_cstr(f->route->name) : SLICE(""),
        .cluster = f->crt ? slice_from_cstr(f->crt->cfg->name) : SLICE(""),
        .endpoint = has_ep ? slice_from_cstr(f->crt->cfg->endpoints[f->ep].name) : SLICE(""),
        .caller_instance = slice_from_cstr(f->caller_instance),
        .status = f->status,
        .transport_failed = f->transport_failed,
        .attempts = f->attempts,
        .has_upstream = f->head_us != 0,
        .queue_us = f->first_attempt_us ? f->first_attempt_us - f->start_us : 0,
        .upstream_us = f->head_us ? f->head_us - f->attempt_us : 0,
        .events = f->ev,
        .nevents = f->nev,
    };
    struct trace_span sp;
    char scratch[PROXY_SPAN_SCRATCH];

    if (!proxy_span_keep(&keep)) return;
    if (proxy__span_build(&in, scratch, sizeof(scratch), &sp) == 0 &&
        trace_queue_push(f->spans, f->w->gw->span_shard + f->w->index, &sp) == 0)
        metric_counter_inc(mh->spans_recorded, f->w->index);
    else
        metric_counter_inc(mh->spans_dropped, f->w->index);
}

/* The caller slot of f's edge series (proxy_int.h): the caller label's index, 0 for the
 * gateway's own requests or an unknown caller at the mesh, 1 + i for cluster i's service. */
static uint32_t edge_caller_slot(const struct fwd *f)
{
    return f->caller;
}

static void fwd_end(struct fwd *f)
{
    struct gw_worker *w = f->w;

    if (f->ended) return;
    f->ended = true;
    breaker_outcome(f);
    {
        const struct gw_mh *mh = MH(f);
        int k = proxy__status_class(f->status);
        metric_counter_inc(mh->responses[k], w->index);
        double took_s = (double)(sh_now_us() - f->start_us) / 1e6;
        if (f->route) {
            uint32_t ri = (uint32_t)(f->route - f->st->cfg->routes);
            struct metric_counter *c = proxy__route_counter(w->gw, mh, ri, f->caller, (uint32_t)k);
            struct metric_histogram *hg = proxy__route_histogram(w->gw, mh, ri, f->caller);
            if (c) metric_counter_inc(c, w->index);
            if (hg) metric_histogram_observe(hg, w->index, took_s);
            metric_sketch_observe(mh->route_sketch[ri], w->index, took_s);
        }
        if (f->crt) {
            uint32_t slot = edge_caller_slot(f);
            struct proxy_edge_series e;
            if (slot >= mh->ncallers) slot = GW_EDGE_CALLER_UNKNOWN;
            if (proxy__edge_series(w->gw, mh, slot, CI(f), &e)) {
                metric_counter_inc(e.requests, w->index);
                if (k == 0 || k == 5) metric_counter_inc(e.errors, w->index);
                metric_sketch_observe(e.sketch, w->index, took_s);
            }
        }
    }
    if (f->ex) http_exchange_abort(f->ex);
    if (f->st->cfg->access_log) access_log(f);
    if (f->spans) record_span(f);
    proxy__state_unref(f->st);
    f->st = NULL;
    if (f->timer) {
        uv_timer_stop(f->timer);
        uv_close((uv_handle_t *)f->timer, timer_closed);
        f->timer = NULL;
    }
    f->next_dead = w->dead;
    w->dead = f;
    uv_prepare_start(&w->log_flush, proxy__worker_prepare);
}

static bool valid_request_id(struct slice v)
{
    if (v.len == 0 || v.len > 40) return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Builds the upstream request's fields in the exchange arena. */
static int build_fields(struct fwd *f, const struct http_head *h)
{
    const struct proxy_route *r = f->route;
    struct arena *a = http_exchange_arena(f->ex);
    size_t cap = h->nfields + r->nadd_request_headers + f->njwt_fields + 5, n = 0;
    struct http_out_field *fl = arena_alloc(a, cap * sizeof(*fl));
    struct slice xff = SLICE_NULL;

    if (!fl) return SH_ENOMEM;
    for (uint32_t i = 0; i < h->nfields; i++) {
        struct slice name = http_field_name(h, i);
        bool drop = http_is_hop_by_hop(h, name) || slice_eq_nocase(name, SLICE("host")) ||
                    slice_eq_nocase(name, SLICE("content-length")) ||
                    slice_eq_nocase(name, SLICE("x-request-id")) ||
                    slice_eq_nocase(name, SLICE("traceparent")) ||
                    slice_eq_nocase(name, SLICE("expect"));
        if (slice_eq_nocase(name, SLICE("x-forwarded-for"))) {
            xff = http_field_value(h, i);
            drop = true;
        }
        for (uint32_t k = 0; !drop && k < r->nremove_request_headers; k++)
            drop = slice_eq_nocase(name, slice_from_cstr(r->remove_request_headers[k]));
        /* a JWT route's claim headers come only from the verified token */
        if (!drop && r->jwt) drop = proxy__jwt_strips(r->jwt, name);
        if (!drop) fl[n++] = (struct http_out_field){name, http_field_value(h, i)};
    }
    /* X-Forwarded-For: what came in, plus this client */
    if (xff.len) {
        size_t len = xff.len + 2 + strlen(f->clientip);
        char *v = arena_alloc(a, len + 1);
        if (!v) return SH_ENOMEM;
        snprintf(v, len + 1, "%.*s, %s", (int)xff.len, xff.ptr, f->clientip);
        fl[n++] = (struct http_out_field){SLICE("X-Forwarded-For"), slice_from_cstr(v)};
    } else {
        fl[n++] = (struct http_out_field){SLICE("X-Forwarded-For"), slice_from_cstr(f->clientip)};
    }
    fl[n++] = (struct http_out_field){SLICE("X-Forwarded-Proto"), SLICE("http")};
    fl[n++] = (struct http_out_field){SLICE("X-Request-Id"), slice_from_cstr(f->reqid)};
    fl[n++] = (struct http_out_field){SLICE("traceparent"), slice_from_cstr(f->traceparent)};
    for (uint32_t i = 0; i < r->nadd_request_headers; i++)
        fl[n++] = (struct http_out_field){slice_from_cstr(r->add_request_headers[i].name),
                                          slice_from_cstr(r->add_request_headers[i].value)};
    for (uint32_t i = 0; i < f->njwt_fields; i++)
        fl[n++] = f->jwt_fields[i];
    f->fields = fl;
    f->nfields = n;
    return 0;
}

/* The upstream target: the origin-form path (absolute-form is reduced), with the route's
 * prefix rewrite applied. */
static int build_target(struct fwd *f, const struct http_head *h)
{
    struct slice t = http_head_target(h);
    const struct proxy_route *r = f->route;

    if (h->form == HTTP_FORM_ABSOLUTE) {
        const char *p = memchr(t.ptr, ':', t.len);
        p = p ? memchr(p + 3, '/', (size_t)(t.ptr + t.len - p - 3)) : NULL;
        t = p ? (struct slice){p, (size_t)(t.ptr + t.len - p)} : SLICE("/");
    } else if (h->form == HTTP_FORM_ASTERISK) {
        t = SLICE("*");
    }
    if (r->prefix_rewrite && r->path_kind == PROXY_PATH_PREFIX) {
        size_t plen = strlen(r->path), rlen = strlen(r->prefix_rewrite);
        char *nt = arena_alloc(http_exchange_arena(f->ex), t.len - plen + rlen + 2);
        if (!nt) return SH_ENOMEM;
        struct slice rest = {t.ptr + plen, t.len - plen};
        /* "/api" -> "/" on "/api/x" gives "/x", not "//x" */
        if (rlen && r->prefix_rewrite[rlen - 1] == '/' && rest.len && rest.ptr[0] == '/') {
            rest.ptr++;
            rest.len--;
        }
        memcpy(nt, r->prefix_rewrite, rlen);
        memcpy(nt + rlen, rest.ptr, rest.len);
        size_t len = rest.len + rlen;
        if (len == 0 || nt[0] != '/') { /* "/api" -> "" becomes "/" */
            memmove(nt + 1, nt, len);
            nt[0] = '/';
            len++;
        }
        t = (struct slice){nt, len};
    }
    f->target = t;
    return 0;
}

static struct slice hash_key_of(const struct proxy_cluster *cl, const struct http_head *h,
                                const char *clientip)
{
    struct slice v = SLICE_NULL;

    switch (cl->hash_on) {
    case PROXY_HASH_CLIENT:
        return slice_from_cstr(clientip);
    case PROXY_HASH_HEADER:
        http_head_get(h, slice_from_cstr(cl->hash_key), &v);
        return v;
    case PROXY_HASH_COOKIE: {
        struct slice cookies, rest, item, name = slice_from_cstr(cl->hash_key);
        if (!http_head_get(h, SLICE("cookie"), &cookies)) return SLICE_NULL;
        rest = cookies;
        while (rest.ptr) {
            rest = slice_split(rest, ';', &item);
            item = slice_trim(item);
            struct slice k, val = slice_split(item, '=', &k);
            if (val.ptr && slice_eq(k, name)) return val;
        }
        return SLICE_NULL;
    }
    }
    return v;
}

/* Token bucket per client key; each worker has rate/N of the route's rate (connections are
 * spread over workers by the kernel). true when the request may go on. */
static bool rate_limited(struct fwd *f, const struct http_head *h, uint32_t *retry_after_s)
{
    const struct proxy_ratelimit *rl = &f->route->ratelimit;
    struct gw_route_rt *rr = route_rt(f);
    struct slice key = slice_from_cstr(f->clientip);
    double rate = rl->rate_per_s / (double)f->w->gw->nworkers;
    double burst = rl->burst ? (double)rl->burst : SH_MAX(1.0, rl->rate_per_s);

    if (rl->rate_per_s <= 0) return false;
    if (rl->key == PROXY_RL_HEADER && !http_head_get(h, slice_from_cstr(rl->header), &key))
        key = SLICE("");
    uint32_t kh = proxy_hash(key);
    *retry_after_s = proxy_bucket_take(&rr->buckets[kh % rr->nbuckets], kh, rate, burst, now_ms(f));
    if (*retry_after_s == 0) return false;
    metric_counter_inc(MH(f)->route_ratelimited[f->route - f->st->cfg->routes], f->w->index);
    return true;
}

/* A JWT route's check (jwtauth.c): true when the request may go on (its claim headers are in
 * f), else the refusal has been answered. */
static bool jwt_passes(struct fwd *f, const struct http_head *h)
{
    struct gw_jwt_outcome jo;
    struct arena *a = http_exchange_arena(f->ex);

    proxy__jwt_check(f->w, route_rt(f), f->route, h, a, sh_wall_ms() / 1000, &jo);
    if (jo.status) {
        f->auth = jo.why != SEC_JWT_OK ? sec_jwt_status_name(jo.why)
                  : jo.status == 503   ? "no_keys"
                  : jo.status == 400   ? "invalid_request"
                                       : "missing_token";
        respond(f, jo.status, "application/json",
                jo.status == 503 ? "Retry-After" : "WWW-Authenticate",
                jo.status == 503 ? "1" : jo.www_authenticate, slice_from_cstr(jo.body));
        return false;
    }
    f->auth = jo.cache_hit ? "cached" : "ok";
    f->njwt_fields = 0;
    if (jo.nfields) {
        f->jwt_fields = arena_alloc(a, jo.nfields * sizeof(*f->jwt_fields));
        if (!f->jwt_fields) {
            respond_error(f, 503, "out of memory", NULL, NULL);
            return false;
        }
        memcpy(f->jwt_fields, jo.fields, jo.nfields * sizeof(*f->jwt_fields));
        f->njwt_fields = jo.nfields;
    }
    return true;
}

/* Copies s into out (n bytes), cut to fit and NUL-terminated; no printf on the hot path. */
static void copy_text(char *out, size_t n, struct slice s)
{
    size_t len = SH_MIN(s.len, n - 1);

    memcpy(out, s.ptr, len);
    out[len] = '\0';
}

static void peer_ip(const char *peer, char *out, size_t n)
{
    const char *colon = strrchr(peer, ':');
    size_t len = colon ? (size_t)(colon - peer) : strlen(peer);

    if (len >= 2 && peer[0] == '[') { /* [::1]:port */
        peer++;
        len -= 2;
    }
    copy_text(out, n, (struct slice){peer, len});
}

/* The credentials table in force for this worker, taken again when a new one was published. */
static const struct proxy_callers *worker_callers(struct gw_worker *w)
{
    uint64_t v = snap_version(w->gw->callers_dom);

    if (v != w->callers_version) {
        snap_release(w->callers);
        w->callers = snap_acquire(w->callers_reader);
        w->callers_version = v;
    }
    return w->callers ? w->callers->obj : NULL;
}

/* The intentions in force for this worker (proxy_gateway_set_intentions), or NULL. */
static const struct sec_intentions *worker_intentions(struct gw_worker *w)
{
    uint64_t v = snap_version(w->gw->intentions_dom);

    if (v != w->intentions_version) {
        snap_release(w->intentions);
        w->intentions = snap_acquire(w->intentions_reader);
        w->intentions_version = v;
    }
    return w->intentions ? w->intentions->obj : NULL;
}

/* May this request's caller call the service of its cluster (docs/security.md, "Intentions")?
 * false when the 403 was sent. */
static bool intention_allows(struct fwd *f, const struct http_head *h)
{
    const struct sec_intentions *set = worker_intentions(f->w);
    const struct proxy_cluster *cl = f->crt->cfg;
    struct sec_intention_decision dec;
    struct slice path;

    if (!set) return true;
    slice_split(http_head_target(h), '?', &path);
    sec_intentions_decide(set, slice_from_cstr(f->caller_service),
                          slice_from_cstr(cl->service ? cl->service : cl->name),
                          http_head_method(h), path, &dec);
    if (dec.allow) return true;
    f->denied_by = arena_strndup(http_exchange_arena(f->ex), dec.why, strlen(dec.why));
    respond_error(f, 403, dec.why, "X-Shoal-Denied-By", dec.why);
    return false;
}

/* Who sent this request (the mesh; docs/observability.md, "Caller identity"): fills f's caller
 * fields. false when the request was answered with 407. */
static bool identify_caller(struct fwd *f, const struct http_head *h)
{
    struct proxy_identity_input in = {.mode = f->st->cfg->identity};
    struct proxy_identity_decision dec;

    if (f->inbound) {
        /* mTLS: the verified certificate says who calls; nothing the request says counts */
        const struct proxy_inbound *ib = &f->st->cfg->inbound;
        char id[TLS_ID_MAX], name[PROXY_CALLER_MAX_NAME_BYTES + 1];
        if (http_exchange_peer_id(f->ex, id, sizeof(id)) != 0 ||
            !tls_spiffe_service(id, ib->trust_domain, name, sizeof(name))) {
            respond_error(f, 403, "the client certificate names no service of this trust domain",
                          NULL, NULL);
            return false;
        }
        copy_text(f->caller_service, sizeof(f->caller_service), slice_from_cstr(name));
        f->caller = proxy__caller_index(MH(f), name);
        return true;
    }
    if (in.mode == PROXY_IDENTITY_OFF) {
        copy_text(f->caller_service, sizeof(f->caller_service), SLICE("gateway"));
        f->caller = 0;
        return true;
    }
    for (uint32_t i = 0; i < h->nfields; i++) {
        if (!slice_eq_nocase(http_field_name(h, i), SLICE("proxy-authorization"))) continue;
        if (in.nfields++ == 0) in.value = http_field_value(h, i);
    }
    in.callers = worker_callers(f->w);
    proxy_identity_decide(&in, &dec);
    if (dec.verdict == PROXY_CALLER_KNOWN) {
        copy_text(f->caller_service, sizeof(f->caller_service), slice_from_cstr(dec.who->service));
        copy_text(f->caller_instance, sizeof(f->caller_instance),
                  slice_from_cstr(dec.who->instance));
        f->caller = proxy__caller_index(MH(f), dec.who->service);
        return true;
    }
    copy_text(f->caller_service, sizeof(f->caller_service), SLICE("unknown"));
    f->caller = 0;
    if (dec.serve) return true;
    respond_error(f, 407, dec.problem, "Proxy-Authenticate", "Basic realm=\"shoal-mesh\"");
    return false;
}

static void on_request(struct http_exchange *ex, struct gw_worker *w, bool inbound);

void proxy__on_request(struct http_exchange *ex, void *data)
{
    on_request(ex, data, false);
}

void proxy__on_inbound_request(struct http_exchange *ex, void *data)
{
    on_request(ex, data, true);
}

static void on_request(struct http_exchange *ex, struct gw_worker *w, bool inbound)
{
    const struct http_head *h = http_exchange_head(ex);
    struct gw_state *st = proxy__worker_state(w);
    struct fwd *f;
    struct slice rid;
    uint32_t retry_after;

    f = st ? fwd_new(w) : NULL;
    if (!f) {
        sh_free(f);
        http_exchange_respond(ex, 503, SLICE("application/json"),
                              SLICE("{\"error\":\"Service Unavailable\"}\n"));
        return;
    }
    f->w = w;
    f->inbound = inbound;
    f->st = st;
    st->refs++;
    metric_counter_inc(st->gs->mh.requests, w->index);
    f->ex = ex;
    f->ep = f->prev_ep = UINT32_MAX;
    f->start_us = sh_now_us();
    f->body_kept = true;
    peer_ip(http_exchange_peer(ex), f->clientip, sizeof(f->clientip));
    copy_text(f->method, sizeof(f->method), http_head_method(h));
    copy_text(f->log_target, sizeof(f->log_target), http_head_target(h));
    if (http_head_get(h, SLICE("x-request-id"), &rid) && valid_request_id(rid)) {
        copy_text(f->reqid, sizeof(f->reqid), rid);
    } else {
        trace_request_id(&w->trng, f->reqid, sizeof(f->reqid));
    }
    f->spans = atomic_load_explicit(&w->gw->spans, memory_order_acquire);
    {
        /* W3C trace context: continue the caller's trace with a new span for this hop (its
         * sampled flag is the head decision), or start one (the head rate decides) */
        struct trace_context parent;
        struct slice tp;
        if (http_head_get(h, SLICE("traceparent"), &tp) && trace_context_parse(tp, &parent) == 0) {
            trace_context_child(&parent, &w->trng, &f->tc);
            memcpy(f->parent_span, parent.span_id, sizeof(f->parent_span));
            f->has_parent = true;
        } else {
            bool head = !f->spans ||
                        proxy_span_head_sampled(st->cfg->tracing.sample, trace_rng_next(&w->trng));
            trace_context_new_root(&w->trng, head ? TRACE_F_SAMPLED : 0, &f->tc);
        }
        f->sampled = f->tc.flags & TRACE_F_SAMPLED;
        trace_context_format(&f->tc, f->traceparent, sizeof(f->traceparent));
        memcpy(f->trace_id, f->traceparent + 3, 32);
        f->trace_id[32] = '\0';
        if (f->spans) f->start_wall_us = wall_us();
    }
    if (!identify_caller(f, h)) goto done;
    f->route = proxy_route_match(st->cfg, h);
    if (!f->route) {
        respond_error(f, 404, "no route matches", NULL, NULL);
        goto done;
    }
    if (rate_limited(f, h, &retry_after)) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%u", retry_after);
        respond_error(f, 429, "rate limit exceeded", "Retry-After", ra);
        goto done;
    }
    if (f->route->jwt && !jwt_passes(f, h)) goto done;
    switch (f->route->action) {
    case PROXY_ACT_RESPOND:
        respond(f, f->route->status, f->route->content_type, NULL, NULL,
                slice_from_cstr(f->route->body));
        goto done;
    case PROXY_ACT_REDIRECT:
        respond(f, f->route->status, NULL, "Location", f->route->location, SLICE(""));
        goto done;
    case PROXY_ACT_FORWARD:
        f->crt = &st->clusters[f->route->cluster];
        break;
    case PROXY_ACT_SPLIT: {
        uint64_t x = proxy_rand(&w->rng) % f->route->split_total;
        uint32_t i = 0;
        while (x >= f->route->splits[i].weight) {
            x -= f->route->splits[i].weight;
            i++;
        }
        f->crt = &st->clusters[f->route->splits[i].cluster];
        break;
    }
    }
    if (!intention_allows(f, h)) goto done;
    f->to = f->route->has_timeouts ? &f->route->timeouts : &f->crt->cfg->timeouts;
    f->rp = f->route->has_retry ? &f->route->retry : &f->crt->cfg->retry;
    f->deadline_ms = now_ms(f) + f->to->request_ms;
    proxy_budget_earn(budget_of(f), f->rp, now_ms(f));
    f->req_cl = h->body == HTTP_BODY_LENGTH    ? (int64_t)h->content_length
                : h->body == HTTP_BODY_CHUNKED ? -1
                                               : 0;
    f->body_complete = h->body == HTTP_BODY_NONE;
    f->hash_key = hash_key_of(f->crt->cfg, h, f->clientip);
    if (build_target(f, h) < 0 || build_fields(f, h) < 0) {
        respond_error(f, 503, "out of memory", NULL, NULL);
        goto done;
    }
    http_exchange_set_handlers(ex, &down_handlers, f);
    if (f->body_complete) {
        f->attempted = true;
        fwd_start_attempt(f);
    }
    if (f->ex) http_exchange_resume(f->ex); /* read the body (sends 100 Continue when expected) */
    return;
done:
    fwd_end(f);
}
