/* SPDX-License-Identifier: MIT */
/* main.c: the shoal binary. It owns the role commands, which start components the CLI may not
 * import (design.md: main.c parses argv and starts roles); everything else is the CLI's table.
 * Roles: `shoal gateway` (the proxy alone). */

#include "admin/admin.h"
#include "cli/cli.h"
#include "config/config.h"
#include "proxy/proxy.h"
#include "registry/registry.h"
#include "security/security.h"
#include "store/store.h"
#include "supervisor/supervisor.h"
#include "telemetry/telemetry.h"
#include "up/up.h"

#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * shoal gateway
 * ------------------------------------------------------------------------------------------ */
struct gateway_run {
    uv_loop_t *loop;
    struct proxy_gateway *gw;
    const char *path;
    char dir[512], base[256];
    uv_fs_event_t watch;
    uv_timer_t debounce;
    uv_signal_t sighup, sigint, sigterm;
    uint32_t grace_ms;
    bool watching;
    uint64_t reloads;
    const char *kv_key;           /* --from-kv: the config lives in the control plane */
    struct sh_doc *doc;           /* the file in force, kept to rebuild on registry changes */
    struct proxy_discovery *disc; /* registry-fed clusters; NULL without control_plane */
    struct trace_queue *spans;    /* with a tracing section: the workers' spans */
    uv_timer_t span_timer;        /* drains them (no exporter yet: they are counted) */
    uint64_t spans_drained;
};

static int resolve_endpoints(void *data, const char *service, struct arena *a,
                             struct proxy_endpoint **out, uint32_t *count)
{
    struct gateway_run *g = data;

    return proxy_discovery_endpoints(g->disc, service, a, out, count);
}

/* Builds a config from doc, with registry-fed clusters filled from discovery. */
static int gateway_build(struct gateway_run *g, const struct sh_doc *doc, struct proxy_config **out,
                         struct sh_diag *d)
{
    struct proxy_resolver res = {.endpoints = resolve_endpoints, .data = g};

    return proxy_config_from_doc(doc, &res, out, d);
}

static void discovery_changed(void *data);

/* Starts discovery when the config names a control plane, and watches its services. */
static int gateway_discover(struct gateway_run *g, const struct proxy_config *cfg,
                            struct sh_diag *d)
{
    const char *token = cfg->control_plane_token ? cfg->control_plane_token : getenv("SHOAL_TOKEN");
    int rc;

    if (!cfg->control_plane) return 0;
    if (!g->disc) {
        rc = proxy_discovery_new(g->loop, cfg->control_plane, token, discovery_changed, g, &g->disc,
                                 d);
        if (rc < 0) return rc;
    }
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        if (cfg->clusters[i].service &&
            proxy_discovery_watch(g->disc, cfg->clusters[i].service) < 0)
            return SH_ENOMEM;
    }
    return 0;
}

/* Reads and validates the config file. 0 and *out (with *doc_out kept), or an error. */
static int gateway_load(struct gateway_run *g, struct proxy_config **out, struct sh_doc **doc_out,
                        struct sh_diag *d)
{
    struct sh_doc *doc;
    int rc = manifest_read_file(g->path, &doc, d);

    *out = NULL;
    *doc_out = NULL;
    if (rc < 0) return rc;
    rc = gateway_build(g, doc, out, d);
    if (rc < 0) {
        sh_doc_free(doc);
        return rc;
    }
    *doc_out = doc;
    return 0;
}

/* Applies a new document (taken): build, discover, reload; or log why not and keep the
 * running config. */
static void gateway_apply(struct gateway_run *g, struct sh_doc *doc, int rc, struct sh_diag *dg,
                          const char *why)
{
    struct proxy_config *cfg = NULL;
    struct sh_diag dd = {{0}, {0}}, *dp = dg ? dg : &dd;
    struct sh_diag d = *dp;

    if (rc == 0) rc = gateway_build(g, doc, &cfg, &d);
    if (rc == 0) rc = gateway_discover(g, cfg, &d);
    if (rc == 0) {
        rc = proxy_gateway_reload(g->gw, cfg, &d); /* takes cfg, also on failure */
        cfg = NULL;
    }
    if (rc < 0) {
        proxy_config_free(cfg);
        sh_doc_free(doc);
        SH_LOG(SH_ERROR, "proxy", "config rejected; the running config stays",
               LF_STR("where", d.where), LF_STR("error", d.what), LF_STR("trigger", why));
        return;
    }
    sh_doc_free(g->doc);
    g->doc = doc;
    g->reloads++;
    SH_LOG(SH_INFO, "proxy", "config reloaded", LF_STR("source", g->path ? g->path : g->kv_key),
           LF_STR("trigger", why), LF_UINT("routes", proxy_gateway_config(g->gw)->nroutes),
           LF_UINT("reloads", g->reloads));
}

static void gateway_reload(struct gateway_run *g, const char *why)
{
    struct sh_doc *doc = NULL;
    struct sh_diag d = {{0}, {0}};
    int rc = manifest_read_file(g->path, &doc, &d);

    gateway_apply(g, doc, rc, &d, why);
}

static int gateway_start_with(struct gateway_run *g, struct proxy_config *cfg, struct sh_diag *d);
static void gateway_watch(struct gateway_run *g);

/* The gateway's YAML kept in the control plane changed (or arrived). */
static void kv_config(void *data, const char *key, struct slice value)
{
    struct gateway_run *g = data;
    struct sh_doc *doc = NULL;
    struct sh_diag d = {{0}, {0}};
    char name[300];
    int rc;

    snprintf(name, sizeof(name), "kv:%s", key);
    rc = manifest_read_buf(name, value.ptr ? value.ptr : "", value.len, &doc, &d);
    if (g->gw) {
        gateway_apply(g, doc, rc, &d, "control plane key changed");
        return;
    }
    struct proxy_config *cfg = NULL;
    if (rc == 0) rc = gateway_build(g, doc, &cfg, &d);
    if (rc == 0) rc = gateway_discover(g, cfg, &d);
    if (rc == 0) {
        g->doc = doc;
        doc = NULL;
        rc = gateway_start_with(g, cfg, &d); /* takes cfg */
        cfg = NULL;
    }
    if (rc < 0) {
        SH_LOG(SH_ERROR, "proxy", "config in the control plane rejected; waiting for a good one",
               LF_STR("where", d.where), LF_STR("error", d.what));
        proxy_config_free(cfg);
        sh_doc_free(doc);
    }
}

/* A watched service changed: rebuild the config in force with its new endpoints. */
static void discovery_changed(void *data)
{
    struct gateway_run *g = data;
    struct proxy_config *cfg;
    struct sh_diag d = {{0}, {0}};
    int rc;

    if (!g->gw || !g->doc) return;
    rc = gateway_build(g, g->doc, &cfg, &d);
    if (rc == 0) rc = proxy_gateway_reload(g->gw, cfg, &d);
    if (rc < 0)
        SH_LOG(SH_ERROR, "proxy", "cannot apply new endpoints", LF_STR("where", d.where),
               LF_STR("error", d.what));
}

static void debounce_cb(uv_timer_t *t)
{
    gateway_reload(t->data, "file changed");
}

/* Editors replace files by renaming, so the directory is watched and events filtered by name. */
static void watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
    struct gateway_run *g = h->data;

    (void)events;
    if (status < 0 || (filename && strcmp(filename, g->base) != 0)) return;
    uv_timer_start(&g->debounce, debounce_cb, 100, 0); /* one reload for a burst of events */
}

static void on_sighup(uv_signal_t *s, int signum)
{
    struct gateway_run *g = s->data;

    (void)signum;
    if (g->path) /* --from-kv follows the control plane by itself */
        gateway_reload(g, "SIGHUP");
}

static void gateway_stopped(void *data)
{
    struct gateway_run *g = data;

    proxy_gateway_free(g->gw);
    g->gw = NULL;
    if (g->spans) uv_close((uv_handle_t *)&g->span_timer, NULL);
    uv_close((uv_handle_t *)&g->sighup, NULL);
    uv_close((uv_handle_t *)&g->sigint, NULL);
    uv_close((uv_handle_t *)&g->sigterm, NULL);
    uv_close((uv_handle_t *)&g->debounce, NULL);
    if (g->watching) uv_close((uv_handle_t *)&g->watch, NULL);
    proxy_discovery_free(g->disc);
    g->disc = NULL;
    sh_doc_free(g->doc);
    g->doc = NULL;
    SH_LOG(SH_INFO, "proxy", "gateway stopped");
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    struct gateway_run *g = s->data;

    if (!g->gw) { /* still waiting for a config: nothing to drain */
        uv_signal_stop(&g->sigint);
        uv_signal_stop(&g->sigterm);
        gateway_stopped(g);
        return;
    }

    SH_LOG(SH_INFO, "proxy", "stopping", LF_INT("signal", signum),
           LF_UINT("grace_ms", g->grace_ms));
    uv_signal_stop(&g->sigint);
    uv_signal_stop(&g->sigterm);
    uv_signal_stop(&g->sighup);
    if (g->watching) uv_fs_event_stop(&g->watch);
    uv_timer_stop(&g->debounce);
    proxy_gateway_stop(g->gw, g->grace_ms, gateway_stopped, g);
}

static void count_span(void *data, const struct trace_span *s)
{
    struct gateway_run *g = data;

    (void)s;
    g->spans_drained++;
}

static void drain_spans(uv_timer_t *t)
{
    struct gateway_run *g = t->data;

    trace_queue_drain(g->spans, 0, count_span, g);
}

/* Starts the gateway with cfg (taken), and the signals; the file watch in file mode. With a
 * tracing section, every request records a span (docs/observability.md); until there is an
 * exporter the control loop drains and counts them (shoal_spans_recorded_total). */
static int gateway_start_with(struct gateway_run *g, struct proxy_config *cfg, struct sh_diag *d)
{
    bool tracing = cfg->tracing.is_set;
    int rc = proxy_gateway_start(g->loop, cfg, &g->gw, d);

    if (rc < 0) return rc;
    if (tracing) {
        rc = trace_queue_new(
            &(struct trace_queue_config){.shards = proxy_gateway_workers(g->gw), .capacity = 16384},
            &g->spans);
        if (rc < 0) {
            SH_LOG(SH_ERROR, "proxy", "no spans: cannot make the span queue", LF_ERR("err", rc));
        } else {
            proxy_gateway_set_spans(g->gw, g->spans, 0);
            uv_timer_init(g->loop, &g->span_timer);
            g->span_timer.data = g;
            uv_timer_start(&g->span_timer, drain_spans, 50, 50); /* as shoal up */
        }
    }
    uv_signal_start(&g->sighup, on_sighup, SIGHUP);
    if (g->path) gateway_watch(g);
    /* Logged last: once this line is out, a change of the file is seen (tests rely on it). */
    const struct proxy_config *run = proxy_gateway_config(g->gw);
    SH_LOG(SH_INFO, "proxy", "gateway listening", LF_STR("listen", run->listen),
           LF_UINT("port", proxy_gateway_port(g->gw)),
           LF_UINT("admin_port", proxy_gateway_admin_port(g->gw)), LF_UINT("routes", run->nroutes),
           LF_UINT("clusters", run->nclusters), LF_STR("config", g->path ? g->path : g->kv_key));
    return 0;
}

/* Watches the config file's directory (editors replace files by renaming). */
static void gateway_watch(struct gateway_run *g)
{
    const char *slash = strrchr(g->path, '/');

    snprintf(g->dir, sizeof(g->dir), "%.*s", slash ? (int)(slash - g->path) : 1,
             slash ? g->path : ".");
    if (g->dir[0] == '\0') snprintf(g->dir, sizeof(g->dir), "/");
    snprintf(g->base, sizeof(g->base), "%s", slash ? slash + 1 : g->path);
    uv_fs_event_init(g->loop, &g->watch);
    g->watch.data = g;
    if (uv_fs_event_start(&g->watch, watch_cb, g->dir, 0) == 0)
        g->watching = true;
    else
        uv_close((uv_handle_t *)&g->watch, NULL);
}

static int cmd_gateway(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("gateway");
    struct gateway_run g = {.grace_ms = 10000};
    struct proxy_config *cfg = NULL;
    struct sh_diag d = {{0}, {0}};
    bool check = false;
    uv_loop_t loop;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--check")) {
            check = true;
            continue;
        }
        if (strcmp(a, "-c") && strcmp(a, "--config") && strcmp(a, "--grace") &&
            strcmp(a, "--log-level") && strcmp(a, "--from-kv"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a);
        i++;
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            g.path = v;
        } else if (!strcmp(a, "--from-kv")) {
            g.kv_key = v;
        } else if (!strcmp(a, "--grace")) {
            uint64_t ms;
            if (sh_parse_duration_ms(slice_from_cstr(v), &ms, &d) < 0 || ms > UINT32_MAX)
                return cli_usage_error(cmd, "--grace: %s", d.what[0] ? d.what : "too long");
            g.grace_ms = (uint32_t)ms;
        } else {
            int lvl = sh_log_level_parse(slice_from_cstr(v));
            if (lvl < 0) return cli_usage_error(cmd, "--log-level: unknown level '%s'", v);
            sh_log_setup((enum sh_log_level)lvl, SH_LOG_AUTO, 2);
        }
    }
    if (!g.path == !g.kv_key) return cli_usage_error(cmd, "give one of -c FILE and --from-kv KEY");
    if (check && !g.path) return cli_usage_error(cmd, "--check validates a file (-c FILE)");
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    g.loop = &loop;
    uv_signal_init(&loop, &g.sighup);
    uv_signal_init(&loop, &g.sigint);
    uv_signal_init(&loop, &g.sigterm);
    g.sighup.data = g.sigint.data = g.sigterm.data = &g;
    /* before anything listens: a SIGTERM right after "listening" must stop us gracefully */
    uv_signal_start(&g.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&g.sigterm, on_stop_signal, SIGTERM);
    uv_timer_init(&loop, &g.debounce);
    g.debounce.data = &g;
    if (g.path) {
        rc = gateway_load(&g, &cfg, &g.doc, &d);
        if (rc == 0 && !check) rc = gateway_discover(&g, cfg, &d);
        if (rc == 0 && check) {
            printf("%s: ok (%u routes, %u clusters)\n", g.path, cfg->nroutes, cfg->nclusters);
            proxy_config_free(cfg);
            cfg = NULL;
            rc = 1; /* not an error: leave through the clean-up below */
        } else if (rc == 0) {
            rc = gateway_start_with(&g, cfg, &d); /* takes cfg */
            cfg = NULL;
        }
    } else {
        /* the config lives in the control plane: start when its first value arrives */
        const char *addr = getenv("SHOAL_ADDR");
        rc = proxy_discovery_new(&loop, addr && *addr ? addr : "127.0.0.1:7700",
                                 getenv("SHOAL_TOKEN"), discovery_changed, &g, &g.disc, &d);
        if (rc == 0) rc = proxy_discovery_watch_key(g.disc, g.kv_key, kv_config, &g);
        if (rc == 0)
            SH_LOG(SH_INFO, "proxy", "waiting for the gateway config in the control plane",
                   LF_STR("key", g.kv_key));
    }
    if (rc != 0) {
        if (!(check && rc == 1))
            fprintf(stderr, "shoal gateway: %s: %s\n", d.where,
                    d.what[0] ? d.what : sh_strerror(rc));
        proxy_config_free(cfg);
        sh_doc_free(g.doc);
        proxy_discovery_free(g.disc);
        uv_close((uv_handle_t *)&g.sighup, NULL);
        uv_close((uv_handle_t *)&g.sigint, NULL);
        uv_close((uv_handle_t *)&g.sigterm, NULL);
        uv_close((uv_handle_t *)&g.debounce, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return check && rc == 1 ? 0 : 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    trace_queue_free(g.spans); /* the workers have ended */
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------
 * shoal server
 * ------------------------------------------------------------------------------------------ */
struct server_run {
    struct control_plane cp;
    uv_signal_t sigint, sigterm;
    uint32_t grace_ms;
};

static void server_stopped(void *data)
{
    struct server_run *s = data;

    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    SH_LOG(SH_INFO, "admin", "control plane stopped");
}

static void server_signal(uv_signal_t *sig, int signum)
{
    struct server_run *s = sig->data;

    SH_LOG(SH_INFO, "admin", "stopping", LF_INT("signal", signum));
    uv_signal_stop(&s->sigint);
    uv_signal_stop(&s->sigterm);
    control_plane_stop(&s->cp, s->grace_ms, server_stopped, s);
}

static int cmd_server(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("server");
    const char *data_dir = ".shoal", *listen = "127.0.0.1:7700", *token = getenv("SHOAL_TOKEN");
    struct server_run s = {.grace_ms = 5000};
    struct sec_ca_config ca = {0};
    struct sh_diag d = {{0}, {0}};
    uv_loop_t loop;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(a, "--data-dir")       ? &data_dir
                            : !strcmp(a, "--listen")       ? &listen
                            : !strcmp(a, "--token")        ? &token
                            : !strcmp(a, "--trust-domain") ? &ca.trust_domain
                            : !strcmp(a, "--ca-cert")      ? &ca.cert_file
                            : !strcmp(a, "--ca-key")       ? &ca.key_file
                                                           : NULL;
        if (!slot && strcmp(a, "--log-level") && strcmp(a, "--cert-ttl"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a);
        i++;
        if (slot) {
            *slot = v;
        } else if (!strcmp(a, "--cert-ttl")) {
            if (sh_parse_duration_ms(slice_from_cstr(v), &ca.leaf_ttl_ms, &d) < 0 ||
                ca.leaf_ttl_ms < SEC_LEAF_TTL_MIN_MS || ca.leaf_ttl_ms > SEC_LEAF_TTL_MAX_MS)
                return cli_usage_error(cmd, "--cert-ttl: '%s' is not a duration from 2s to 30d", v);
        } else {
            int lvl = sh_log_level_parse(slice_from_cstr(v));
            if (lvl < 0) return cli_usage_error(cmd, "--log-level: unknown level '%s'", v);
            sh_log_setup((enum sh_log_level)lvl, SH_LOG_AUTO, 2);
        }
    }
    if (!ca.cert_file != !ca.key_file)
        return cli_usage_error(cmd, "--ca-cert and --ca-key go together");
    if (ca.trust_domain && sec_trust_domain_check(ca.trust_domain, &d) < 0)
        return cli_usage_error(cmd, "--trust-domain: %s", d.what);
    if (token && *token && strlen(token) < 16)
        return cli_usage_error(cmd, "the token must be at least 16 characters");
    if (token && strlen(token) > SH_TOKEN_MAX_LEN)
        return cli_usage_error(cmd, "%s: the token is longer than %d characters",
                               token == getenv("SHOAL_TOKEN") ? "SHOAL_TOKEN" : "--token",
                               SH_TOKEN_MAX_LEN);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    rc = control_plane_open(&loop,
                            &(struct control_plane_config){.data_dir = data_dir,
                                                           .listen = listen,
                                                           .token = token && *token ? token : NULL,
                                                           .who = "shoal server",
                                                           .ca = &ca},
                            &s.cp, &d);
    if (rc < 0) {
        fprintf(stderr, "shoal server: %s: %s\n", d.where, d.what[0] ? d.what : sh_strerror(rc));
        uv_run(&loop, UV_RUN_DEFAULT);
        control_plane_close(&s.cp);
        uv_loop_close(&loop);
        return 1;
    }
    uv_signal_init(&loop, &s.sigint);
    uv_signal_init(&loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, server_signal, SIGINT);
    uv_signal_start(&s.sigterm, server_signal, SIGTERM);
    SH_LOG(SH_INFO, "admin", "control plane listening", LF_STR("listen", listen),
           LF_UINT("port", admin_port(s.cp.admin)), LF_STR("data_dir", data_dir),
           LF_INT("revision", store_revision(s.cp.store)));
    uv_run(&loop, UV_RUN_DEFAULT);
    control_plane_close(&s.cp);
    rc = uv_loop_close(&loop);
    return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------
 * shoal check
 * ------------------------------------------------------------------------------------------ */

/* The manifest's gateway part, read by the proxy itself (the supervisor may not import it). */
static int check_gateway_doc(const struct sh_doc *gateway_doc, struct sh_diag *d)
{
    struct proxy_config *cfg = NULL;
    int rc = proxy_config_from_doc(gateway_doc, NULL, &cfg, d);

    proxy_config_free(cfg);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("check");
    const char *path = NULL;
    struct sh_diag d = {{0}, {0}};
    bool is_json = false;
    char *out;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            is_json = true;
        else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
            path = argv[++i];
        else
            return cli_usage_error(cmd, "unexpected '%s'", argv[i]);
    }
    if (!path) return cli_usage_error(cmd, "give the manifest with -f FILE");
    if (manifest_check(path, is_json, check_gateway_doc, &out, &d) < 0) {
        fprintf(stderr, "%s: %s\n", d.where, d.what);
        return 1;
    }
    fputs(out, stdout);
    sh_free(out);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * shoal up: the stack (src/up/)
 * ------------------------------------------------------------------------------------------ */
static int role_up(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("up");
    struct up_options opt = {.file = "shoal.yaml"};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--plain")) {
            opt.is_plain = true;
            continue;
        }
        if (strcmp(a, "-f") && strcmp(a, "--data-dir") && strcmp(a, "--log-level"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a);
        i++;
        if (!strcmp(a, "-f")) {
            opt.file = v;
        } else if (!strcmp(a, "--data-dir")) {
            opt.data_dir = v;
        } else {
            int lvl = sh_log_level_parse(slice_from_cstr(v));
            if (lvl < 0) return cli_usage_error(cmd, "--log-level: unknown level '%s'", v);
            sh_log_setup((enum sh_log_level)lvl, SH_LOG_AUTO, 2);
        }
    }
    return up_run(&opt);
}

static const struct cli_command roles[] = {
    {"server", cmd_server, "run the control plane (registry, config, admin API)",
     "shoal server [--data-dir DIR] [--listen ADDR] [--token TOKEN] [--log-level LEVEL]\n"
     "       [--trust-domain TD] [--cert-ttl DURATION] [--ca-cert FILE --ca-key FILE]",
     "Runs the control plane alone: the admin API (JSON over HTTP under /v1, with a\n"
     "Consul-compatible subset) on its durable store, and the span store (DIR/traces.sqlite:\n"
     "Zipkin and OTLP/HTTP ingest, Zipkin's query API; docs/observability.md). `shoal up`\n"
     "embeds the same.\n\n"
     "  --data-dir DIR     where state lives (default ./.shoal)\n"
     "  --listen ADDR      the API's address (default 127.0.0.1:7700)\n"
     "  --token TOKEN      the API token (default: SHOAL_TOKEN, else DIR/token, created and\n"
     "                     printed once on first start); writes always need it, reads need\n"
     "                     it from other hosts\n"
     "  --log-level LEVEL  debug, info, warn, error (default info)\n"
     "  --trust-domain TD  the CA's trust domain: identities are spiffe://TD/service/NAME\n"
     "                     (default shoal.local)\n"
     "  --cert-ttl D       lifetime of the certificates POST /v1/ca/sign makes (default 24h)\n"
     "  --ca-cert FILE, --ca-key FILE\n"
     "                     sign with this CA (PEM) instead of the one shoal makes in DIR/ca\n",
     0},
    {"up", role_up, "run a whole stack from shoal.yaml (control plane, services, gateway)",
     "shoal up [-f FILE] [--data-dir DIR] [--plain] [--log-level LEVEL]",
     "Starts everything shoal.yaml (or FILE) describes, in the foreground: the control plane\n"
     "(registry, config, admin API on control_plane.listen), every service instance as a\n"
     "supervised process (PORT assigned, restarted with backoff when it dies, registered with\n"
     "its health check so only passing instances get traffic; depends_on waits until the\n"
     "services named are healthy), and the gateway fed by the registry. Ctrl-C or SIGTERM\n"
     "stops the gateway, then the instances (SIGTERM, SIGKILL after stop_grace), then the\n"
     "control plane. On a terminal it shows a live status view (services, instances, load,\n"
     "the newest output lines) and writes its own log to DIR/shoal.log; otherwise it logs to\n"
     "stderr (JSON lines). See docs/manifest.md.\n\n"
     "  -f FILE            the manifest (default ./shoal.yaml)\n"
     "  --data-dir DIR     state (default: data_dir of the manifest, next to it)\n"
     "  --plain            no live view on a terminal: log lines on stderr\n"
     "  --log-level LEVEL  debug, info, warn, error (default info)\n",
     0},
    {"check", cmd_check, "validate a shoal.yaml manifest without starting anything",
     "shoal check -f FILE [--json]",
     "Reads the `shoal up` manifest FILE (see docs/manifest.md) and checks all of it: services,\n"
     "commands, ports, health checks, dependencies (unknown names, cycles), autoscaling, the\n"
     "resilience policies and the gateway's routes (as the gateway itself reads them). Starts\n"
     "nothing. Prints \"FILE: ok (N services, M instances, gateway on ADDR)\" and exits 0, or\n"
     "prints \"FILE:LINE:COLUMN: path: problem\" on stderr and exits 1.\n\n"
     "  -f, --file FILE  the manifest\n"
     "  --json           print the parsed manifest as one JSON object instead, for tools\n",
     0},
    {"gateway", cmd_gateway, "run the API gateway (reverse proxy) from a YAML file",
     "shoal gateway (-c FILE [--check] | --from-kv KEY) [--grace DURATION] [--log-level LEVEL]",
     "Runs the gateway described by FILE (see docs/gateway.md): listeners, routes, clusters,\n"
     "load balancing and resilience policies, and an admin listener with /metrics, /ready and\n"
     "/config. Editing FILE (or SIGHUP) applies the new config to new requests without\n"
     "dropping a connection; an invalid file is reported as file:line:column and the running\n"
     "config stays. SIGINT/SIGTERM stop it gracefully. Access logs go to stdout as JSON lines.\n\n"
     "  -c, --config FILE   the gateway's YAML configuration\n"
     "  --from-kv KEY       read the YAML from the control plane's config key KEY instead\n"
     "                      (SHOAL_ADDR, SHOAL_TOKEN); a change there reaches every worker\n"
     "  --check             validate FILE and exit (0 when valid)\n"
     "  --grace DURATION    on SIGTERM, in-flight requests get this long (default 10s)\n"
     "  --log-level LEVEL   debug, info, warn, error (default info)\n",
     0},
    {"__child", sup_child_main, "internal: the supervisor's trampoline for its children",
     "shoal __child -- CMD [ARG...]", "Internal. Runs CMD so that it dies with its supervisor.\n",
     0},
    {"__reaper", sup_reaper_main, "internal: kills the instances' process groups when shoal dies",
     "shoal __reaper", "Internal. Reads +PGID/-PGID lines on stdin; at EOF kills the groups.\n", 0},
};

int main(int argc, char **argv)
{
    /* The binary never uses the allocation counters (tests link the libraries directly) and
     * its workers must not share them: see sh_alloc_accounting. */
    sh_alloc_accounting(false);
    /* A gateway or a control plane holds a socket per client: take the whole hard limit of
     * open files, as nginx's worker_rlimit_nofile or Go's runtime do (the soft default, often
     * 1024, is too low for 1,000 watchers). Service instances inherit the raised limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            /* keep the soft limit: the accept error says so when it is reached */
        }
    }
    return cli_main(argc, argv, roles, SH_ARRAY_LEN(roles));
}
