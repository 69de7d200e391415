/* SPDX-License-Identifier: MIT */
/* routes.c: the one table of admin API routes, and the status handlers. The KV handlers live
 * in routes_kv.c, the registry's in routes_registry.c, the CA's in routes_ca.c. */
#include "admin/admin.h"
#include "admin/admin_int.h"

enum { ADMIN_MAX_REPLICAS = 1000 }; /* MANIFEST_MAX_REPLICAS: admin may not import supervisor */

/* "waiting": requests parked on a blocking query or an event stream (tests wait on it). */
static void status(struct admin_req *r)
{
    json_int_t waiting = 0;
    json_t *o;

    for (const struct admin_req *w = r->a->waiting; w; w = w->next_waiting)
        waiting++;
    o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:{s:b, s:b, s:b}}", "status", "ok", "version",
                  SHOAL_VERSION, "node", r->a->node, "uptime_ms",
                  (json_int_t)(uv_now(r->a->loop) - r->a->started_ms), "waiting", waiting,
                  "components", "store", r->a->cfg.store != NULL, "registry",
                  r->a->cfg.registry != NULL, "config", r->a->cfg.kv != NULL);
    admin__reply_json(r, 200, o);
}

/* Consul's /v1/agent/self: Prometheus reads Config.Datacenter, consul-template the node. */
static void agent_self(struct admin_req *r)
{
    json_t *o = json_pack("{s:{s:s, s:s, s:s}, s:{s:s, s:s}}", "Config", "Datacenter",
                          r->a->cfg.datacenter, "NodeName", r->a->node, "Version", SHOAL_VERSION,
                          "Member", "Name", r->a->node, "Addr", "127.0.0.1");
    admin__reply_json(r, 200, o);
}

static void datacenters(struct admin_req *r)
{
    admin__reply_json(r, 200, json_pack("[s]", r->a->cfg.datacenter));
}

static bool has_supervisor(struct admin_req *r)
{
    if (r->a->cfg.supervisor) return true;
    admin__reply_error(r, 404, NULL, "no supervisor runs in this process (only under shoal up)");
    return false;
}

/* 200 with the JSON the supervisor rendered into <b> (rc 0), else 500; releases b. */
static void reply_rendered(struct admin_req *r, int rc, struct buf *b)
{
    if (rc == 0 && b->err) rc = b->err;
    if (rc < 0)
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
    else
        admin__reply_raw(r, 200, "application/json", buf_slice(b), 0);
    buf_release(b);
}

/* What `shoal ps` shows: the supervisor's instances (shoal up). */
static void instances(struct admin_req *r)
{
    struct buf b = BUF_INIT(16u << 20);

    if (!has_supervisor(r)) return;
    reply_rendered(r, r->a->cfg.supervisor->instances(r->a->cfg.supervisor->data, &b), &b);
}

/* A number query parameter (0 when absent); false after answering 400. */
static bool query_u64(struct admin_req *r, const char *name, const char *what, uint64_t *out)
{
    const char *v = admin__query(r, name);

    *out = 0;
    if (!v || !*v || slice_to_u64(slice_from_cstr(v), out) == 0) return true;
    admin__reply_error(r, 400, name, what);
    return false;
}

/* `shoal logs`: from the log store when there is one (routes_logs.c: q, level, trace...);
 * else the supervisor's last lines: ?service=NAME&since=UNIX_MS&after=SEQ&grep=TEXT. */
static void logs(struct admin_req *r)
{
    const char *service = admin__query(r, "service"), *grep = admin__query(r, "grep");
    struct buf b = BUF_INIT(64u << 20);
    uint64_t since_ms, after;

    if (!grep || !*grep) grep = admin__query(r, "q"); /* no store: words as a substring */
    if (r->a->cfg.logs) {
        admin__logs_search(r, r->a->cfg.logs);
        return;
    }
    if (!has_supervisor(r) ||
        !query_u64(r, "since", "expected milliseconds since the Unix epoch", &since_ms) ||
        !query_u64(r, "after", "expected a line sequence number", &after))
        return;
    reply_rendered(r,
                   r->a->cfg.supervisor->logs(r->a->cfg.supervisor->data,
                                              service && *service ? service : NULL, since_ms, after,
                                              grep && *grep ? grep : NULL, &b),
                   &b);
}

/* What `shoal ps` shows above the instances, and `scale --wait` / `restart --wait` poll. */
static void stack(struct admin_req *r)
{
    struct buf b = BUF_INIT(16u << 20);

    if (!has_supervisor(r)) return;
    reply_rendered(r, r->a->cfg.supervisor->stack(r->a->cfg.supervisor->data, &b), &b);
}

/* 404 for an unknown service, 409 when busy, 400 for a refused value, else 500; the
 * supervisor's words. */
static void reply_sup_error(struct admin_req *r, int rc, const struct sh_diag *d)
{
    int status = rc == SH_ENOENT ? 404 : rc == SH_EBUSY ? 409 : rc == SH_EINVAL ? 400 : 500;

    admin__reply_error(r, status, d->where[0] ? d->where : NULL,
                       d->what[0] ? d->what : sh_strerror(rc));
}

/* `shoal scale SERVICE N`: {"replicas": N}, 0..MANIFEST_MAX_REPLICAS. */
static void scale(struct admin_req *r)
{
    const struct admin_supervisor *sup = r->a->cfg.supervisor;
    struct sh_diag d = {{0}, {0}};
    json_t *body, *v;
    uint32_t was = 0;
    int rc;

    if (!has_supervisor(r) || !(body = admin__body_json(r, JSON_OBJECT))) return;
    v = json_object_get(body, "replicas");
    if (!v || !json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > ADMIN_MAX_REPLICAS) {
        json_decref(body);
        admin__reply_error(r, 400, "replicas", "expected a number from 0 to 1000");
        return;
    }
    rc = sup->scale(sup->data, r->rest, (uint32_t)json_integer_value(v), &was, &d);
    if (rc < 0)
        reply_sup_error(r, rc, &d);
    else
        admin__reply_json(r, 200,
                          json_pack("{s:s, s:I, s:I}", "service", r->rest, "replicas",
                                    json_integer_value(v), "was", (json_int_t)was));
    json_decref(body);
}

/* `shoal restart SERVICE`: 202, the restart goes on; GET /v1/stack follows it. */
static void restart(struct admin_req *r)
{
    const struct admin_supervisor *sup = r->a->cfg.supervisor;
    struct sh_diag d = {{0}, {0}};
    uint32_t count = 0;
    int rc;

    if (!has_supervisor(r)) return;
    rc = sup->restart(sup->data, r->rest, &count, &d);
    if (rc < 0)
        reply_sup_error(r, rc, &d);
    else
        admin__reply_json(
            r, 202, json_pack("{s:s, s:I}", "service", r->rest, "instances", (json_int_t)count));
}

/* `shoal down`: the whole stack stops, this API last. */
static void stop(struct admin_req *r)
{
    const struct admin_supervisor *sup = r->a->cfg.supervisor;

    if (!has_supervisor(r)) return;
    admin__reply_raw(r, 202, "application/json", SLICE("{\"stopping\":true}\n"), 0);
    sup->stop(sup->data);
}

const struct admin_route admin_routes[] = {
    {HTTP_M_GET, "/v1/status", false, false, ADMIN_AUTH_NONE, status},
    {HTTP_M_GET, "/v1/agent/self", false, true, ADMIN_AUTH_READ, agent_self},
    {HTTP_M_GET, "/v1/catalog/datacenters", false, true, ADMIN_AUTH_READ, datacenters},
    {HTTP_M_GET, "/v1/instances", false, false, ADMIN_AUTH_READ, instances},
    {HTTP_M_POST, "/v1/stop", false, false, ADMIN_AUTH_ADMIN, stop},
    {HTTP_M_GET, "/v1/logs", false, false, ADMIN_AUTH_READ, logs},
    {HTTP_M_GET, "/v1/stack", false, false, ADMIN_AUTH_READ, stack},
    {HTTP_M_GET, "/v1/metrics/history", false, false, ADMIN_AUTH_READ, admin__metrics_history},
    {HTTP_M_GET, "/v1/topology", false, false, ADMIN_AUTH_READ, admin__topology},
    {HTTP_M_GET, "/v1/slo", false, false, ADMIN_AUTH_READ, admin__slo},
    {HTTP_M_POST, "/v1/scale/", true, false, ADMIN_AUTH_WRITE, scale},
    {HTTP_M_POST, "/v1/restart/", true, false, ADMIN_AUTH_WRITE, restart},
    /* config KV (Consul's shape) and shoal's history / rollback */
    {HTTP_M_GET, "/v1/kv/", true, true, ADMIN_AUTH_READ | ADMIN_AUTH_KEYED, admin__kv_get},
    {HTTP_M_PUT, "/v1/kv/", true, true, ADMIN_AUTH_WRITE | ADMIN_AUTH_KEYED, admin__kv_put},
    {HTTP_M_DELETE, "/v1/kv/", true, true, ADMIN_AUTH_WRITE | ADMIN_AUTH_KEYED, admin__kv_delete},
    {HTTP_M_GET, "/v1/config/history/", true, false, ADMIN_AUTH_READ | ADMIN_AUTH_KEYED,
     admin__kv_history},
    {HTTP_M_POST, "/v1/config/rollback/", true, false, ADMIN_AUTH_WRITE | ADMIN_AUTH_KEYED,
     admin__kv_rollback},
    /* registry (Consul's agent, catalog and health shapes) */
    {HTTP_M_PUT, "/v1/agent/service/register", false, true, ADMIN_AUTH_WRITE,
     admin__service_register},
    {HTTP_M_PUT, "/v1/agent/service/deregister/", true, true, ADMIN_AUTH_WRITE,
     admin__service_deregister},
    {HTTP_M_PUT, "/v1/agent/check/pass/", true, true, ADMIN_AUTH_WRITE, admin__check_pass},
    {HTTP_M_PUT, "/v1/agent/check/warn/", true, true, ADMIN_AUTH_WRITE, admin__check_warn},
    {HTTP_M_PUT, "/v1/agent/check/fail/", true, true, ADMIN_AUTH_WRITE, admin__check_fail},
    {HTTP_M_GET, "/v1/catalog/services", false, true, ADMIN_AUTH_READ, admin__catalog_services},
    {HTTP_M_GET, "/v1/catalog/service/", true, true, ADMIN_AUTH_READ, admin__catalog_service},
    {HTTP_M_GET, "/v1/health/service/", true, true, ADMIN_AUTH_READ, admin__health_service},
    {HTTP_M_GET, "/v1/sd/prometheus", false, false, ADMIN_AUTH_READ, admin__prometheus_sd},
    {HTTP_M_GET, "/v1/sd/endpoints/", true, false, ADMIN_AUTH_READ, admin__sd_endpoints},
    /* Server-Sent Events streams of changes */
    {HTTP_M_GET, "/v1/events/services", false, false, ADMIN_AUTH_READ, admin__events_services},
    {HTTP_M_GET, "/v1/events/kv/", true, false, ADMIN_AUTH_READ | ADMIN_AUTH_KEYED,
     admin__events_kv},
    /* API tokens and the audit log */
    {HTTP_M_GET, "/v1/token/self", false, false, ADMIN_AUTH_READ, admin__token_self},
    {HTTP_M_GET, "/v1/tokens", false, false, ADMIN_AUTH_ADMIN, admin__tokens_list},
    {HTTP_M_POST, "/v1/tokens", false, false, ADMIN_AUTH_ADMIN, admin__tokens_create},
    {HTTP_M_DELETE, "/v1/tokens/", true, false, ADMIN_AUTH_ADMIN, admin__tokens_revoke},
    {HTTP_M_GET, "/v1/audit", false, false, ADMIN_AUTH_ADMIN, admin__audit},
    /* intentions: which service may call which */
    {HTTP_M_GET, "/v1/intentions/check", false, false, ADMIN_AUTH_READ, admin__intentions_check},
    {HTTP_M_GET, "/v1/intentions", false, false, ADMIN_AUTH_READ, admin__intentions_list},
    {HTTP_M_POST, "/v1/intentions", false, false, ADMIN_AUTH_ADMIN, admin__intentions_add},
    {HTTP_M_DELETE, "/v1/intentions/", true, false, ADMIN_AUTH_ADMIN, admin__intentions_remove},
    /* traces: Zipkin v2 and OTLP/HTTP ingest, Zipkin's query API (routes_traces.c) */
    {HTTP_M_POST, "/api/v2/spans", false, false, ADMIN_AUTH_WRITE | ADMIN_AUTH_INGEST,
     admin__zipkin_ingest},
    {HTTP_M_POST, "/v1/traces", false, false, ADMIN_AUTH_WRITE | ADMIN_AUTH_INGEST,
     admin__otlp_ingest},
    {HTTP_M_GET, "/api/v2/services", false, false, ADMIN_AUTH_READ, admin__zipkin_services},
    {HTTP_M_GET, "/api/v2/spans", false, false, ADMIN_AUTH_READ, admin__zipkin_span_names},
    {HTTP_M_GET, "/api/v2/remoteServices", false, false, ADMIN_AUTH_READ,
     admin__zipkin_remote_services},
    {HTTP_M_GET, "/api/v2/traces", false, false, ADMIN_AUTH_READ, admin__zipkin_traces},
    {HTTP_M_GET, "/api/v2/trace/", true, false, ADMIN_AUTH_READ, admin__zipkin_trace},
    {HTTP_M_GET, "/api/v2/dependencies", false, false, ADMIN_AUTH_READ, admin__zipkin_dependencies},
    {HTTP_M_GET, "/api/v2/autocompleteKeys", false, false, ADMIN_AUTH_READ,
     admin__zipkin_autocomplete},
    {HTTP_M_GET, "/api/v2/autocompleteValues", false, false, ADMIN_AUTH_READ,
     admin__zipkin_autocomplete},
    /* the CA (routes_ca.c): a signed leaf carries its private key, so sign is admin */
    {HTTP_M_GET, "/v1/ca", false, false, ADMIN_AUTH_READ, admin__ca_get},
    {HTTP_M_POST, "/v1/ca/rotate", false, false, ADMIN_AUTH_ADMIN, admin__ca_rotate},
    {HTTP_M_POST, "/v1/ca/sign", false, false, ADMIN_AUTH_ADMIN, admin__ca_sign},
    /* the dashboard (ui.c): open routes; login checks the token itself, the session routes
     * the cookie (and logout its CSRF value) */
    {HTTP_M_POST, "/ui/login", false, false, ADMIN_AUTH_NONE, admin__ui_login},
    {HTTP_M_POST, "/ui/logout", false, false, ADMIN_AUTH_NONE, admin__ui_logout},
    {HTTP_M_GET, "/ui/session", false, false, ADMIN_AUTH_NONE, admin__ui_session},
    {HTTP_M_GET, "/ui", false, false, ADMIN_AUTH_NONE, admin__ui_redirect},
    {HTTP_M_GET, "/ui/", true, false, ADMIN_AUTH_NONE, admin__ui_asset},
};
const size_t admin_nroutes = SH_ARRAY_LEN(admin_routes);
