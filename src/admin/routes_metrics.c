/* SPDX-License-Identifier: MIT */
/* routes_metrics.c: the metrics history (observe.h, "Metrics history") as shoal up keeps it:
 * GET /v1/metrics/history (the points of one service, route or edge over a window),
 * GET /v1/topology (the service map: nodes, and edges with their last minute) and GET /v1/slo
 * (each service's objectives, error budget left and burn rates). Read scope. Every parameter is
 * checked before the history is asked; a bad one is a 400 naming it. Quantiles are in
 * milliseconds; a figure with nothing behind it (no request, no data) is null. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include "observe/observe.h"

#include <math.h>
#include <string.h>

static int64_t now_s(void)
{
    return (int64_t)(sh_wall_ms() / 1000);
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static bool need_history(struct admin_req *r)
{
    if (r->a->cfg.history) return true;
    admin__reply_error(r, 404, NULL, "no metrics history here (shoal up keeps it)");
    return false;
}

/* The SLO part of an answer: objectives and status; NULL when the service has none. */
static json_t *slo_json(struct obs_history *h, const char *service, int64_t now)
{
    struct obs_slo slo;
    struct obs_slo_status st;
    json_t *o;

    if (!obs_history_slo(h, service, &slo) || obs_history_slo_status(h, service, now, &st) < 0)
        return NULL;
    o = json_object();
    json_object_set_new(o, "window_s", json_integer(slo.window_s));
    if (slo.availability > 0) {
        json_object_set_new(
            o, "availability",
            json_pack("{s:f,s:o}", "objective", slo.availability, "actual", num(st.availability)));
    }
    if (slo.latency_ms > 0) {
        json_object_set_new(o, "latency",
                            json_pack("{s:f,s:f,s:o}", "threshold_ms", slo.latency_ms, "objective",
                                      slo.latency_percent, "actual", num(st.latency_good)));
    }
    json_object_set_new(o, "budget_left", num(st.budget_left));
    json_object_set_new(o, "burn_1h", num(st.burn_1h));
    json_object_set_new(o, "burn_6h", num(st.burn_6h));
    json_object_set_new(o, "requests", json_real(st.window_requests));
    return o;
}

/* GET /v1/metrics/history?service=S | route=R | edge=CALLER->CALLEE [&window=5m] */
void admin__metrics_history(struct admin_req *r)
{
    static const char *const params[] = {"service", "route", "edge"};
    struct obs_history *h = r->a->cfg.history;
    const char *name = NULL, *param = NULL, *win = admin__query(r, "window");
    enum obs_series_kind kind = OBS_SERIES_SERVICE;
    struct sh_diag d = {{0}, {0}};
    uint64_t window_ms = 300000;
    struct obs_point *pts = NULL;
    size_t n = 0;
    uint32_t step = 0;
    int64_t now = now_s();
    json_t *body, *arr;
    int rc;

    if (!need_history(r)) return;
    for (size_t i = 0; i < SH_ARRAY_LEN(params); i++) {
        const char *v = admin__query(r, params[i]);
        if (!v) continue;
        if (param) {
            admin__reply_error(r, 400, params[i], "give one of service, route and edge");
            return;
        }
        param = params[i];
        name = v;
        kind = (enum obs_series_kind)i;
    }
    if (!param) {
        admin__reply_error(r, 400, "service", "give one of service, route and edge");
        return;
    }
    if (!*name || strlen(name) > OBS_HISTORY_NAME_MAX) {
        admin__reply_error(r, 400, param, "expected a name of 1 to 256 bytes");
        return;
    }
    if (kind == OBS_SERIES_EDGE && !strstr(name, "->")) {
        admin__reply_error(r, 400, "edge", "expected CALLER->CALLEE");
        return;
    }
    if (win && (sh_parse_duration_ms(slice_from_cstr(win), &window_ms, &d) < 0 ||
                window_ms < 1000 || window_ms > 86400000)) {
        admin__reply_error(r, 400, "window", "expected a duration from 1s to 24h, such as 5m");
        return;
    }
    rc = obs_history_points(h, kind, name, now, (uint32_t)(window_ms / 1000), &pts, &n, &step);
    if (rc == SH_ENOENT) {
        admin__reply_error(r, 404, param, "no history for it (no proxy has seen it)");
        return;
    }
    if (rc < 0) {
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_pack("{s:I,s:o,s:o,s:o,s:o,s:o}", "t", (json_int_t)pts[i].t,
                                             "rps", num(pts[i].rps), "error_ratio",
                                             num(pts[i].error_ratio), "p50", num(pts[i].p50_ms),
                                             "p95", num(pts[i].p95_ms), "p99", num(pts[i].p99_ms)));
    }
    sh_free(pts);
    body = json_pack("{s:s,s:s,s:I,s:I,s:o}", "kind", obs_series_kind_name(kind), "name", name,
                     "window_s", (json_int_t)(window_ms / 1000), "step_s", (json_int_t)step,
                     "points", arr);
    if (kind == OBS_SERIES_SERVICE) {
        json_t *slo = slo_json(h, name, now);
        if (slo) json_object_set_new(body, "slo", slo);
    }
    admin__reply_json(r, 200, body);
}

/* ---- the service map ---- */

struct topo {
    struct obs_history *h;
    json_t *nodes, *edges;
    json_t *seen; /* node id -> true */
    int64_t now;
};

static void add_node(struct topo *t, const char *id, const char *kind)
{
    json_t *n;

    if (json_object_get(t->seen, id)) return;
    json_object_set_new(t->seen, id, json_true());
    n = json_pack("{s:s,s:s}", "id", id, "kind", kind);
    if (!strcmp(kind, "service")) {
        struct obs_point p;
        json_t *slo;
        if (obs_history_recent(t->h, OBS_SERIES_SERVICE, id, &p) == 0) {
            json_object_set_new(n, "rps", num(p.rps));
            json_object_set_new(n, "error_ratio", num(p.error_ratio));
            json_object_set_new(n, "p50", num(p.p50_ms));
            json_object_set_new(n, "p99", num(p.p99_ms));
        }
        slo = slo_json(t->h, id, t->now);
        if (slo) json_object_set_new(n, "slo", slo);
    }
    json_array_append_new(t->nodes, n);
}

static const char *node_kind(const char *id)
{
    return !strcmp(id, "gateway")    ? "gateway"
           : !strcmp(id, "external") ? "external"
           : !strcmp(id, "unknown")  ? "unknown"
                                     : "service";
}

static void topo_series(void *data, enum obs_series_kind kind, const char *name)
{
    struct topo *t = data;
    const char *arrow = strstr(name, "->");
    struct obs_point p;
    char caller[OBS_HISTORY_NAME_MAX + 1];
    size_t clen;

    if (kind == OBS_SERIES_SERVICE) {
        add_node(t, name, "service");
        return;
    }
    /* an edge that never carried a request is not drawn */
    if (kind != OBS_SERIES_EDGE || !arrow || obs_history_requests(t->h, kind, name) == 0) return;
    clen = (size_t)(arrow - name);
    if (clen >= sizeof(caller)) return;
    memcpy(caller, name, clen);
    caller[clen] = '\0';
    add_node(t, caller, node_kind(caller));
    add_node(t, arrow + 2, node_kind(arrow + 2));
    if (obs_history_recent(t->h, kind, name, &p) < 0) return;
    json_array_append_new(t->edges,
                          json_pack("{s:s,s:s,s:o,s:o,s:o,s:o}", "source", caller, "target",
                                    arrow + 2, "rps", num(p.rps), "error_ratio", num(p.error_ratio),
                                    "p50", num(p.p50_ms), "p99", num(p.p99_ms)));
}

/* GET /v1/topology: nodes (services, "gateway", "external", "unknown" callers) and the edges
 * that carried requests, with their last minute. */
void admin__topology(struct admin_req *r)
{
    struct topo t;

    if (!need_history(r)) return;
    t.h = r->a->cfg.history;
    t.nodes = json_array();
    t.edges = json_array();
    t.seen = json_object();
    t.now = now_s();
    obs_history_each(t.h, topo_series, &t);
    json_decref(t.seen);
    admin__reply_json(r, 200,
                      json_pack("{s:I,s:I,s:o,s:o}", "t", (json_int_t)t.now, "window_s",
                                (json_int_t)OBS_HISTORY_RECENT_S, "nodes", t.nodes, "edges",
                                t.edges));
}

struct slo_list {
    struct obs_history *h;
    json_t *arr;
    int64_t now;
};

static void slo_series(void *data, enum obs_series_kind kind, const char *name)
{
    struct slo_list *l = data;
    json_t *o;

    if (kind != OBS_SERIES_SERVICE) return;
    o = slo_json(l->h, name, l->now);
    if (!o) return;
    json_object_set_new(o, "service", json_string(name));
    json_array_append_new(l->arr, o);
}

/* GET /v1/slo: every service with an SLO that a proxy has seen. */
void admin__slo(struct admin_req *r)
{
    struct slo_list l;

    if (!need_history(r)) return;
    l.h = r->a->cfg.history;
    l.arr = json_array();
    l.now = now_s();
    obs_history_each(l.h, slo_series, &l);
    admin__reply_json(r, 200, json_pack("{s:o}", "services", l.arr));
}
