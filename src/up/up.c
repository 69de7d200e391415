/* SPDX-License-Identifier: MIT */
/* up.c: `shoal up`, a whole stack from one manifest, in one process: the control plane
 * (store, config KV, registry, admin API), every service instance as a supervised child
 * process registered with an active health check (instances.c), the mesh and the gateway
 * fed by the registry, and the autoscaler (scale.c). The admin API's supervisor routes
 * (ps, logs, scale, restart, down) are answered here.
 * Ctrl-C or SIGTERM stops the gateway, the instances (SIGTERM, then SIGKILL after their grace),
 * the mesh and the control plane, in that order. Thread: main. */
#include "up/up_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

bool up_join_path(char *out, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la + 1 + lb + 1 > n) return false;
    memcpy(out, a, la);
    out[la] = '/';
    memcpy(out + la + 1, b, lb + 1);
    return true;
}

/* The process layer's events: logged, and the instance table follows crashes and restarts. */
static void on_event(void *data, const struct sup_event *ev)
{
    sup_event_log(ev);
    up_instance_event(data, ev);
}

/* ------------------------------------------------------------------------------------------
 * Stopping
 * ------------------------------------------------------------------------------------------ */
static void finish(void *data)
{
    struct up *u = data;

    sup_procs_free(u->procs);
    u->procs = NULL;
    proxy_discovery_free(u->disc);
    u->disc = NULL;
    uv_close((uv_handle_t *)&u->tick, NULL);
    uv_close((uv_handle_t *)&u->span_timer, NULL);
    uv_close((uv_handle_t *)&u->sigint, NULL);
    uv_close((uv_handle_t *)&u->sigterm, NULL);
    SH_LOG(SH_INFO, "supervisor", "stopped");
}

/* Last, the control plane; discovery first, so its pending long polls do not end in 503s. */
static void stop_control_plane(struct up *u)
{
    proxy_discovery_free(u->disc);
    u->disc = NULL;
    control_plane_stop(&u->cp, 2000, finish, u);
}

static void mesh_stopped(void *data)
{
    struct up *u = data;

    up_access_drain(u, u->mesh, "mesh");
    proxy_gateway_free(u->mesh);
    u->mesh = NULL;
    stop_control_plane(u);
}

/* The mesh stays up until every instance has stopped: services may call each other while
 * they drain. */
static void instance_stopped(void *data, uint64_t id, const struct sup_exit *ex)
{
    struct up *u = data;

    (void)id;
    (void)ex;
    if (--u->stops_pending) return;
    if (u->mesh)
        proxy_gateway_stop(u->mesh, 2000, mesh_stopped, u);
    else
        stop_control_plane(u);
}

void up_instance_stop_done(struct up *u)
{
    instance_stopped(u, 0, NULL);
}

static void stop_instances(struct up *u)
{
    u->stops_pending = 1; /* held until every stop is asked, so it cannot reach 0 early */
    u->stops_pending += up_instances_stop_all(u, instance_stopped, u);
    instance_stopped(u, 0, NULL);
}

static void gateway_stopped(void *data)
{
    struct up *u = data;

    up_access_drain(u, u->gw, "gateway");
    proxy_gateway_free(u->gw);
    u->gw = NULL;
    stop_instances(u);
}

/* Ctrl-C, SIGTERM or `shoal down`: the gateway drains, then the instances, the mesh and the
 * control plane stop in that order. */
static void stop_all(struct up *u, const char *why)
{
    if (u->stopping) return;
    u->stopping = true;
    if (u->view) {
        up_view_stop(u);
        fprintf(stderr, "shoal up: stopping (%s): gateway, instances, mesh, control plane\n", why);
    }
    SH_LOG(SH_INFO, "supervisor", "stopping", LF_STR("by", why));
    uv_timer_stop(&u->tick);
    if (u->gw)
        proxy_gateway_stop(u->gw, 5000, gateway_stopped, u);
    else
        stop_instances(u);
}

static void tick(uv_timer_t *t)
{
    struct up *u = t->data;
    uint64_t sampled = u->sampled_ms;

    if (u->stopping) return;
    up_instances_tick(u);
    up_tls_tick(u);
    up_load_tick(u);
    up_logfile_flush(u);
    up_access_drain(u, u->gw, "gateway");
    up_access_drain(u, u->mesh, "mesh");
    if (u->sampled_ms != sampled) /* once a second, with fresh load figures */
        up_view_draw(u);
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop_all(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_api_stop(void *data)
{
    stop_all(data, "shoal down");
}

/* ------------------------------------------------------------------------------------------
 * Status (GET /v1/instances, `shoal ps`)
 * ------------------------------------------------------------------------------------------ */
static void json_field_str(struct buf *b, const char *key, const char *v)
{
    buf_appendf(b, ",\"%s\":\"", key);
    buf_append_json_str(b, slice_from_cstr(v));
    buf_appendc(b, '"');
}

static int render_instances(void *data, struct buf *b)
{
    struct up *u = data;
    bool first = true;

    buf_appendc(b, '[');
    for (size_t i = 0; i < u->ninst; i++) {
        const struct up_instance *in = u->inst[i];
        struct up_instance_info info;
        int rc = up_instance_info(u, in, &info);
        if (rc == SH_ENOENT) continue;
        if (rc < 0) return rc;
        buf_appends(b, first ? SLICE("{\"id\":\"") : SLICE(",{\"id\":\""));
        first = false;
        buf_append_json_str(b, slice_from_cstr(in->id));
        buf_appendc(b, '"');
        json_field_str(b, "service", u->m->services[in->service].name);
        json_field_str(b, "state", info.state);
        json_field_str(b, "health", info.health);
        buf_appendf(b, ",\"pid\":%d,\"port\":%u,\"restarts\":%u,\"crash_loop\":%s", info.pid,
                    in->port, info.restarts, info.crash_loop ? "true" : "false");
        buf_appendf(b, ",\"rps\":%.1f,\"retiring\":%s,\"uptime_ms\":%llu", in->rps,
                    in->retiring ? "true" : "false", (unsigned long long)info.uptime_ms);
        up_tls_render(u, in, b);
        buf_appendc(b, '}');
    }
    buf_appends(b, SLICE("]\n"));
    return b->err;
}

static const char *const roll_names[] = {"idle", "running", "done", "stopped"};

/* GET /v1/stack: per service, the wanted and actual replicas, load, autoscaler, restart. */
static int render_stack(void *data, struct buf *b)
{
    struct up *u = data;

    if (!u->svc) /* the start failed before the instance table existed */
        return SH_EBUSY;
    buf_appends(b, SLICE("{\"name\":"));
    if (u->m->name) {
        buf_appendc(b, '"');
        buf_append_json_str(b, slice_from_cstr(u->m->name));
        buf_appendc(b, '"');
    } else {
        buf_appends(b, SLICE("null"));
    }
    buf_appends(b, SLICE(",\"services\":["));
    for (uint32_t i = 0; i < u->m->service_count; i++) {
        const struct manifest_service *s = &u->m->services[i];
        const struct up_service *sv = &u->svc[i];
        uint32_t ready, live = up_service_live(u, i, &ready), retiring = 0;
        for (size_t k = 0; k < u->ninst; k++)
            retiring += u->inst[k]->service == i && u->inst[k]->retiring;
        buf_appends(b, i ? SLICE(",{\"name\":\"") : SLICE("{\"name\":\""));
        buf_append_json_str(b, slice_from_cstr(s->name));
        buf_appendf(b,
                    "\",\"replicas\":%u,\"instances\":%u,\"ready\":%u,\"retiring\":%u,"
                    "\"rps\":%.1f,\"in_flight\":%.2f,\"p99_ms\":%.1f,\"autoscale\":",
                    sv->want, live, ready, retiring, sv->rps, sv->in_flight, sv->p99_ms);
        if (s->autoscale.is_set)
            buf_appendf(b,
                        "{\"min\":%u,\"max\":%u,\"metric\":\"%s\",\"target\":%llu,"
                        "\"desired\":%u}",
                        s->autoscale.min, s->autoscale.max,
                        up_target_name(s->autoscale.target_kind),
                        (unsigned long long)s->autoscale.target, sv->desired);
        else
            buf_appends(b, SLICE("null"));
        buf_appendf(b, ",\"restart\":{\"state\":\"%s\",\"done\":%u,\"total\":%u",
                    roll_names[sv->roll], sv->roll_done, sv->roll_total);
        json_field_str(b, "message", sv->roll_msg);
        buf_appends(b, SLICE("}}"));
    }
    buf_appends(b, SLICE("]}\n"));
    return b->err;
}

static int service_of(struct up *u, const char *name, struct sh_diag *d)
{
    int i = manifest_service_index(u->m, name);

    if (i < 0) sh_diag_set(d, "service", "no service named '%s' in %s", name, u->m->file);
    return i;
}

/* POST /v1/scale/:service */
static int on_api_scale(void *data, const char *service, uint32_t replicas, uint32_t *was,
                        struct sh_diag *d)
{
    struct up *u = data;
    int i = service_of(u, service, d);

    if (i < 0) return SH_ENOENT;
    if (u->stopping) {
        sh_diag_set(d, "service", "shoal up is stopping");
        return SH_EBUSY;
    }
    if (replicas > 1 && u->m->services[i].port && !u->m->services[i].is_port_auto) {
        sh_diag_set(d, "replicas", "'%s' has a fixed port (%u): it can run one instance", service,
                    u->m->services[i].port);
        return SH_EINVAL;
    }
    *was = u->svc[i].want;
    u->svc[i].want = replicas;
    SH_LOG(SH_INFO, "supervisor", "scale", LF_STR("service", service), LF_UINT("from", *was),
           LF_UINT("to", replicas));
    return 0;
}

/* POST /v1/restart/:service */
static int on_api_restart(void *data, const char *service, uint32_t *count, struct sh_diag *d)
{
    struct up *u = data;
    int i = service_of(u, service, d), rc;

    if (i < 0) return SH_ENOENT;
    if (u->stopping) {
        sh_diag_set(d, "service", "shoal up is stopping");
        return SH_EBUSY;
    }
    rc = up_service_restart(u, (uint32_t)i, count);
    if (rc == SH_EBUSY)
        sh_diag_set(d, "service", "a restart of '%s' is under way (%s)", service,
                    u->svc[i].roll_msg);
    else if (rc == SH_ENOENT)
        sh_diag_set(d, "service", "'%s' has no instances to restart (shoal scale it first)",
                    service);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Starting
 * ------------------------------------------------------------------------------------------ */
static int endpoints(void *data, const char *service, struct arena *a, struct proxy_endpoint **out,
                     uint32_t *count)
{
    struct up *u = data;

    return proxy_discovery_endpoints(u->disc, service, a, out, count);
}

static void reload(struct up *u, struct proxy_gateway *gw, const struct sh_doc *doc)
{
    struct proxy_resolver res = {.endpoints = endpoints, .data = u};
    struct proxy_config *cfg;
    struct sh_diag d = {{0}, {0}};

    if (!gw || u->stopping) return;
    if (proxy_config_from_doc(doc, &res, &cfg, &d) == 0 && proxy_gateway_reload(gw, cfg, &d) == 0)
        return;
    SH_LOG(SH_ERROR, "proxy", "cannot apply new endpoints", LF_STR("where", d.where),
           LF_STR("error", d.what));
}

void up_mesh_reload(struct up *u)
{
    reload(u, u->mesh, u->mesh_doc);
}

static void discovery_changed(void *data)
{
    struct up *u = data;

    reload(u, u->gw, u->gw_doc);
    reload(u, u->mesh, u->mesh_doc);
}

static int start_proxy(struct up *u, const struct sh_doc *doc, struct proxy_gateway **gw,
                       struct sh_diag *d)
{
    struct proxy_resolver res = {.endpoints = endpoints, .data = u};
    struct proxy_config *cfg;

    SH_TRY(proxy_config_from_doc(doc, &res, &cfg, d));
    return proxy_gateway_start(&u->loop, cfg, gw, d);
}

/* ------------------------------------------------------------------------------------------
 * Spans per hop: one queue for both proxies, drained on this loop
 * ------------------------------------------------------------------------------------------ */
/* Each span goes to the control plane's span store (what the Zipkin API and `shoal trace`
 * read); counted either way. */
static void store_span(void *data, const struct trace_span *s)
{
    struct up *u = data;

    u->spans_drained++;
    if (u->cp.spans) obs_spans_drain_fn(u->cp.spans, s);
}

/* At most UP_SPAN_DRAIN_BUDGET_US of the control loop per tick, in chunks: what is left waits in
 * the workers' rings for the next tick (full rings drop and count), so that a flood of spans
 * never delays the health checks, the registry and the API on this loop. */
static void drain_spans(uv_timer_t *t)
{
    struct up *u = t->data;
    uint64_t start = uv_hrtime();

    while (trace_queue_drain(u->spans, UP_SPAN_DRAIN_CHUNK, u->span_sink, u->span_sink_data) ==
               UP_SPAN_DRAIN_CHUNK &&
           uv_hrtime() - start < UP_SPAN_DRAIN_BUDGET_US * 1000u)
        ;
}

static int start_spans(struct up *u)
{
    uint32_t mesh_n = proxy_gateway_workers(u->mesh),
             gw_n = u->gw ? proxy_gateway_workers(u->gw) : 0;

    SH_TRY(trace_queue_new(
        &(struct trace_queue_config){.shards = mesh_n + gw_n, .capacity = UP_SPAN_RING},
        &u->spans));
    if (!u->span_sink) {
        u->span_sink = store_span;
        u->span_sink_data = u;
    }
    proxy_gateway_set_spans(u->mesh, u->spans, 0);
    if (u->gw) proxy_gateway_set_spans(u->gw, u->spans, mesh_n);
    uv_timer_start(&u->span_timer, drain_spans, UP_SPAN_DRAIN_MS, UP_SPAN_DRAIN_MS);
    return 0;
}

/* Discovery of every service, then the mesh (instances need its URL) and the gateway. */
static int start_proxies(struct up *u, struct sh_diag *d)
{
    const char *listen = u->m->mesh_listen;
    struct sockaddr_storage ss;
    char addr[64];

    /* both listen addresses were checked by the manifest reader; a wildcard is reached on
     * this machine's loopback */
    SH_TRY(sh_listen_parse(u->m->control_plane_listen, &ss, d));
    sh_addr_loopback_for(&ss);
    sh_addr_set_port(&ss, admin_port(u->cp.admin));
    sh_addr_format(&ss, u->admin_addr, sizeof(u->admin_addr));
    SH_TRY(sh_listen_parse(u->m->control_plane_listen, &ss, d));
    sh_addr_loopback_for(&ss);
    SH_TRY(proxy_discovery_new(&u->loop, sh_addr_format(&ss, addr, sizeof(addr)), u->cp.token,
                               discovery_changed, u, &u->disc, d));
    for (size_t i = 0; i < u->m->service_count; i++)
        SH_TRY(proxy_discovery_watch(u->disc, u->m->services[i].name));
    SH_TRY(manifest_mesh_doc(u->m, &u->mesh_doc));
    SH_TRY(up_mesh_identities(u, u->mesh_doc, d));
    SH_TRY(start_proxy(u, u->mesh_doc, &u->mesh, d));
    if (u->logs) proxy_gateway_access_capture(u->mesh);
    SH_TRY(sh_listen_parse(listen, &ss, d));
    sh_addr_loopback_for(&ss);
    sh_addr_set_port(&ss, proxy_gateway_port(u->mesh));
    snprintf(u->mesh_url, sizeof(u->mesh_url), "http://%s",
             sh_addr_format(&ss, addr, sizeof(addr)));
    SH_LOG(SH_INFO, "proxy", "mesh listening", LF_STR("listen", listen),
           LF_STR("url", u->mesh_url));
    if (u->m->gateway.is_set) {
        SH_TRY(manifest_gateway_doc(u->m, &u->gw_doc));
        SH_TRY(start_proxy(u, u->gw_doc, &u->gw, d));
        if (u->logs) proxy_gateway_access_capture(u->gw);
        SH_LOG(SH_INFO, "proxy", "gateway listening", LF_STR("listen", u->m->gateway.listen),
               LF_UINT("port", proxy_gateway_port(u->gw)));
    }
    up_publish_intentions(u, sec_itable_current(u->cp.intentions));
    return start_spans(u);
}

/* A copy of <set> for one proxy (each frees its own when its workers are done with it). */
static struct sec_intentions *intentions_copy(const struct sec_intentions *set)
{
    size_t n = sizeof(*set) + set->count * sizeof(set->items[0]);
    struct sec_intentions *c = sh_malloc(n);

    if (c) memcpy(c, set, n);
    return c;
}

void up_publish_intentions(struct up *u, const struct sec_intentions *set)
{
    struct proxy_gateway *gws[] = {u->mesh, u->gw};

    for (size_t i = 0; set && i < SH_ARRAY_LEN(gws); i++) {
        struct sec_intentions *c;
        if (!gws[i]) continue;
        c = intentions_copy(set);
        if (!c || proxy_gateway_set_intentions(gws[i], c) < 0)
            SH_LOG(SH_ERROR, "security", "cannot hand the intentions to a proxy: out of memory");
    }
}

/* The set of intentions changed (at open, and on every API change): the mesh enforces it for
 * new requests. */
static void intentions_changed(void *data, const struct sec_intentions *set)
{
    struct up *u = data;

    SH_LOG(SH_INFO, "security", "intentions in force", LF_UINT("rules", set->count),
           LF_STR("default", set->default_allow ? "allow" : "deny"));
    up_publish_intentions(u, set); /* the proxies, once they run (start_proxies) */
}

/* The manifest's intentions as security.h's rules (checked by the manifest reader already). */
static int manifest_intentions(struct up *u, struct sec_intention **out, struct sh_diag *d)
{
    const struct manifest_security *ms = &u->m->security;
    struct sec_intention *v = sh_calloc(ms->intention_count ? ms->intention_count : 1, sizeof(*v));

    *out = v;
    if (!v) return SH_ENOMEM;
    for (size_t i = 0; i < ms->intention_count; i++) {
        const struct manifest_intention *it = &ms->intentions[i];
        int rc = sec_intention_make(it->from, it->to, it->allow ? "allow" : "deny", it->methods,
                                    it->method_count, it->paths, it->path_count, &v[i], d);
        if (rc < 0) return rc;
    }
    return 0;
}

/* A path the manifest gives, relative to its directory unless absolute. false: too long. */
static bool manifest_path(const struct up *u, const char *p, char *out, size_t n)
{
    if (p[0] == '/') return (size_t)snprintf(out, n, "%s", p) < n;
    return up_join_path(out, n, u->dir, p);
}

static int start_all(struct up *u, struct sh_diag *d)
{
    const char *token = getenv("SHOAL_TOKEN");
    struct sec_intention *rules = NULL;
    const struct manifest_security *sec = &u->m->security;
    char ca_cert[PATH_MAX], ca_key[PATH_MAX];
    int rc;

    if (sec->ca_cert && (!manifest_path(u, sec->ca_cert, ca_cert, sizeof(ca_cert)) ||
                         !manifest_path(u, sec->ca_key, ca_key, sizeof(ca_key)))) {
        sh_diag_set(d, "security.ca", "the path is too long");
        return SH_ETOOBIG;
    }
    struct sec_ca_config ca = {.trust_domain = sec->trust_domain,
                               .cert_file = sec->ca_cert ? ca_cert : NULL,
                               .key_file = sec->ca_key ? ca_key : NULL,
                               .leaf_ttl_ms = sec->cert_ttl_ms,
                               .overlap_ms = sec->ca_overlap_ms};

    u->sup = (struct admin_supervisor){.instances = render_instances,
                                       .stop = on_api_stop,
                                       .logs = up_render_logs,
                                       .stack = render_stack,
                                       .scale = on_api_scale,
                                       .restart = on_api_restart,
                                       .data = u};
    rc = manifest_intentions(u, &rules, d);
    /* observe.zipkin_port: on the control plane's host ("127.0.0.1", "[::1]") */
    char zipkin[300] = "";
    if (u->m->zipkin_port) {
        const char *cpl = u->m->control_plane_listen, *colon = strrchr(cpl, ':');
        int host_len = colon ? (int)(colon - cpl) : (int)strlen(cpl);
        snprintf(zipkin, sizeof(zipkin), "%.*s:%u", host_len, cpl, (unsigned)u->m->zipkin_port);
    }
    if (rc == 0)
        rc = control_plane_open(
            &u->loop,
            &(struct control_plane_config){.data_dir = u->data_dir,
                                           .listen = u->m->control_plane_listen,
                                           .zipkin_listen = zipkin[0] ? zipkin : NULL,
                                           .token = token && *token ? token : NULL,
                                           .who = "shoal up",
                                           .supervisor = &u->sup,
                                           .has_logs = true,
                                           .has_history = true,
                                           .ca = &ca,
                                           .default_deny = u->m->security.default_deny,
                                           .intentions = rules,
                                           .intention_count = u->m->security.intention_count,
                                           .intentions_changed = intentions_changed,
                                           .intentions_data = u},
            &u->cp, d);
    sh_free(rules);
    SH_TRY(rc);
    u->cp_open = true;
    u->logs = u->cp.logs;
    up_history_slos(u);
    if (u->want_view && (rc = up_view_start(u)) < 0) /* before any thread starts */
        SH_LOG(SH_WARN, "supervisor", "no live view: cannot open the log file",
               LF_STR("data_dir", u->data_dir), LF_ERR("err", rc));
    u->log = sh_calloc(UP_LOG_LINES, sizeof(*u->log));
    if (!u->log) return SH_ENOMEM;
    up_logfile_open(u);
    /* default config keys, config/<service>/<key> (the keys the instances' tokens read):
     * written only when absent, so operators' changes survive */
    for (size_t i = 0; i < u->m->service_count; i++) {
        const struct manifest_service *s = &u->m->services[i];
        for (size_t k = 0; k < s->config_count; k++) {
            struct cfgkv_write_opts o = {.has_cas = true, .cas = 0};
            char key[1024];
            snprintf(key, sizeof(key), "config/%s/%s", s->name, s->config[k].name);
            int wr = cfgkv_set(u->cp.kv, slice_from_cstr(key), slice_from_cstr(s->config[k].value),
                               &o, NULL);
            if (wr < 0)
                SH_LOG(SH_WARN, "supervisor", "cannot write a default config key",
                       LF_STR("key", key), LF_ERR("err", wr));
        }
    }
    const char *tramp[] = {u->self, "__child", "--", NULL}, *reaper[] = {u->self, "__reaper", NULL};
    rc = sup_procs_new(&(struct sup_procs_config){.trampoline = tramp,
                                                  .reaper = reaper,
                                                  .on_line = up_on_line,
                                                  .on_event = on_event,
                                                  .data = u},
                       &u->loop, &u->procs);
    if (rc < 0) return rc;
    rc = up_instances_init(u);
    if (rc < 0) return rc;
    return start_proxies(u, d);
}

int up_run(const struct up_options *opt)
{
    const char *file = opt->file ? opt->file : "shoal.yaml", *data_dir = opt->data_dir;
    struct up *u;
    struct sh_diag d = {{0}, {0}};
    char real[PATH_MAX];
    int rc;

    u = sh_calloc(1, sizeof(*u));
    if (!u) return 1;
    u->log_fd = -1;
    u->want_view = !opt->is_plain && up_view_wanted();
    rc = manifest_load_file(file, &u->m, &d);
    if (rc < 0) {
        fprintf(stderr, "shoal up: %s: %s\n", d.where, d.what);
        sh_free(u);
        return 1;
    }
    if (!realpath(file, real)) snprintf(real, sizeof(real), "%s", file);
    snprintf(u->dir, sizeof(u->dir), "%s", real);
    *strrchr(u->dir, '/') = '\0';
    /* Absolute, so that SHOAL_DATA_DIR (DATA_DIR/services/NAME) holds in any working_dir. */
    if (data_dir && data_dir[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)) ||
            !up_join_path(u->data_dir, sizeof(u->data_dir), cwd, data_dir))
            snprintf(u->data_dir, sizeof(u->data_dir), "%s", data_dir);
    } else if (data_dir) {
        snprintf(u->data_dir, sizeof(u->data_dir), "%s", data_dir);
    } else if (u->m->data_dir[0] == '/') {
        snprintf(u->data_dir, sizeof(u->data_dir), "%s", u->m->data_dir);
    } else if (!up_join_path(u->data_dir, sizeof(u->data_dir), u->dir, u->m->data_dir)) {
        snprintf(u->data_dir, sizeof(u->data_dir), "%s", u->m->data_dir);
    }
    ssize_t sl = readlink("/proc/self/exe", u->self, sizeof(u->self) - 1);
    u->self[sl > 0 ? sl : 0] = '\0';
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&u->loop);
    uv_signal_init(&u->loop, &u->sigint);
    uv_signal_init(&u->loop, &u->sigterm);
    u->sigint.data = u->sigterm.data = u;
    uv_signal_start(&u->sigint, on_signal, SIGINT);
    uv_signal_start(&u->sigterm, on_signal, SIGTERM);
    uv_timer_init(&u->loop, &u->tick);
    u->tick.data = u;
    uv_timer_init(&u->loop, &u->span_timer);
    u->span_timer.data = u;
    u->started_ms = uv_now(&u->loop);
    rc = start_all(u, &d);
    if (rc < 0) {
        up_view_stop(u);
        fprintf(stderr, "shoal up: %s: %s\n", d.where, d.what[0] ? d.what : sh_strerror(rc));
        u->stopping = true;
        if (u->gw) {
            proxy_gateway_stop(u->gw, 0, gateway_stopped, u);
        } else if (u->cp_open) {
            stop_instances(u);
        } else {
            finish(u);
        }
        uv_run(&u->loop, UV_RUN_DEFAULT);
        rc = 1;
    } else {
        SH_LOG(SH_INFO, "supervisor", "starting", LF_STR("manifest", real),
               LF_UINT("services", u->m->service_count), LF_UINT("instances", u->ninst),
               LF_STR("control_plane", u->m->control_plane_listen));
        uv_timer_start(&u->tick, tick, 0, UP_TICK_MS);
        uv_run(&u->loop, UV_RUN_DEFAULT);
        rc = 0;
    }
    up_view_stop(u);
    if (uv_loop_close(&u->loop) != 0) rc = 1;
    if (u->log_fd >= 0) { /* every thread has ended: the log may move back to stderr */
        sh_log_setup((enum sh_log_level)sh_log_min_level, SH_LOG_AUTO, 2);
        close(u->log_fd);
        fprintf(stderr, "shoal up: %s\n", rc ? "stopped, with errors (see shoal.log)" : "stopped");
    }
    u->logs = NULL;
    /* both proxies' workers have ended: their last spans go to the store before it closes */
    if (u->spans && u->span_sink) trace_queue_drain(u->spans, 0, u->span_sink, u->span_sink_data);
    control_plane_close(&u->cp); /* the log and span stores too, after the last lines */
    trace_queue_free(u->spans);
    up_history_release(u);
    sh_doc_free(u->gw_doc);
    sh_doc_free(u->mesh_doc);
    up_instances_free(u); /* reads the manifest */
    manifest_free(u->m);
    for (size_t i = 0; u->log && i < UP_LOG_LINES; i++)
        sh_free(u->log[i].text);
    sh_free(u->log);
    if (u->logfile) fclose(u->logfile);
    sh_free(u);
    return rc;
}
