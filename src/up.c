/* SPDX-License-Identifier: MIT */
/* up.c: `shoal up`, a whole stack from one manifest, in one process: the control plane
 * (store, config KV, registry, admin API), every service instance as a supervised child
 * process registered with an active health check, and the gateway fed by the registry.
 * Ctrl-C or SIGTERM stops the gateway, the instances (SIGTERM, then SIGKILL after their grace)
 * and the control plane, in that order.
 * This is the first cut: no live status view, no autoscaling, no `ps`/`logs`/`scale` yet
 * (docs/manifest.md says what works). Thread: main. */
#include "roles.h"

#include "admin/admin.h"
#include "cli/cli.h"
#include "config/config.h"
#include "proxy/proxy.h"
#include "registry/registry.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

struct up_instance {
    struct up *u;
    uint32_t service; /* index into manifest services */
    uint32_t ordinal;
    uint64_t proc_id;
    uint16_t port;
    char id[96];
    bool started;
    bool replacing;   /* failed its health check: being stopped, to be started afresh */
    int pid_passed;   /* the process that last passed its check (0: none yet) */
    uint32_t replaced; /* times replaced for failing health (ps adds it to restarts) */
};

/* The instances' output, kept for `shoal logs`: a ring of the last UP_LOG_LINES lines, each cut
 * at UP_LOG_LINE_MAX bytes (at most about 20 MiB). */
enum { UP_LOG_LINES = 10000, UP_LOG_LINE_MAX = 2048 };
struct up_logline {
    uint64_t seq;  /* 1, 2, ... in arrival order */
    uint64_t ms;   /* Unix ms */
    uint32_t inst; /* index into up->inst */
    bool is_stderr;
    char *text;    /* sh_malloc'd, NUL-terminated */
};

struct up {
    uv_loop_t loop;
    struct manifest *m;
    char dir[PATH_MAX], data_dir[PATH_MAX], token[128], self[PATH_MAX];
    struct store *store;
    struct cfgkv *kv;
    struct http_client *client;
    struct registry *reg;
    struct admin *admin;
    struct sup_procs *procs;
    struct proxy_gateway *gw, *mesh; /* the edge gateway (NULL without one) and the mesh */
    struct proxy_discovery *disc;
    struct sh_doc *gw_doc, *mesh_doc;
    struct admin_supervisor sup;     /* what the admin API may ask of us */
    char mesh_url[80];               /* SHOAL_MESH, HTTP_PROXY: http://127.0.0.1:<mesh port> */
    struct up_instance *inst;
    size_t ninst;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    uint64_t started_ms, health_checked_ms;
    bool all_healthy_logged, stopping;
    uint32_t stops_pending;
    struct up_logline *log; /* UP_LOG_LINES slots; log_next is the oldest once full */
    size_t log_next, log_count;
    uint64_t log_seq;
};

/* ------------------------------------------------------------------------------------------
 * Instances
 * ------------------------------------------------------------------------------------------ */
static uint16_t free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;

    if (fd < 0)
        return 0;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* "$PORT", "${PORT}", "$SHOAL_PORT" and "$$" expanded in one argument (in the arena). */
static const char *expand(struct arena *a, const char *arg, uint16_t port)
{
    struct buf b = BUF_INIT(4096);
    char num[8];
    const char *p = arg, *out;

    snprintf(num, sizeof(num), "%u", port);
    while (*p) {
        if (p[0] == '$' && p[1] == '$') {
            buf_appendc(&b, '$');
            p += 2;
        } else if (!strncmp(p, "${PORT}", 7)) {
            buf_appends(&b, slice_from_cstr(num));
            p += 7;
        } else if (!strncmp(p, "$SHOAL_PORT", 11)) {
            buf_appends(&b, slice_from_cstr(num));
            p += 11;
        } else if (!strncmp(p, "$PORT", 5)) {
            buf_appends(&b, slice_from_cstr(num));
            p += 5;
        } else {
            buf_appendc(&b, *p++);
        }
    }
    out = b.data ? arena_strndup(a, b.data, b.len) : arena_strndup(a, "", 0);
    buf_release(&b);
    return out;
}

/* a + "/" + b into out; false when it does not fit. */
static bool join_path(char *out, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la + 1 + lb + 1 > n)
        return false;
    memcpy(out, a, la);
    out[la] = '/';
    memcpy(out + la + 1, b, lb + 1);
    return true;
}

static enum sup_restart restart_of(enum manifest_restart r)
{
    return r == MANIFEST_RESTART_NEVER        ? SUP_RESTART_NEVER
           : r == MANIFEST_RESTART_ON_FAILURE ? SUP_RESTART_ON_FAILURE
                                              : SUP_RESTART_ALWAYS;
}

static int register_instance(struct up *u, struct up_instance *in)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct registry_instance ri = {
        .id = in->id,
        .service = s->name,
        .version = s->version,
        .address = "127.0.0.1",
        .port = in->port,
        .node = "local",
    };
    struct sh_diag d = {{0}, {0}};

    if (s->health.kind != MANIFEST_HEALTH_NONE) {
        ri.check.kind = s->health.kind == MANIFEST_HEALTH_TCP ? REGISTRY_CHECK_TCP
                                                             : REGISTRY_CHECK_HTTP;
        ri.check.path = s->health.http_path;
        ri.check.interval_ms = SH_MAX(s->health.interval_ms, 1000u);
        ri.check.timeout_ms = SH_MIN(s->health.timeout_ms, ri.check.interval_ms);
        ri.check.failures_before_critical = s->health.unhealthy_threshold;
        ri.check.successes_before_passing = s->health.healthy_threshold;
    }
    int rc = registry_register(u->reg, &ri, &d, NULL);
    if (rc < 0)
        SH_LOG(SH_ERROR, "supervisor", "cannot register an instance", LF_STR("id", in->id),
               LF_STR("where", d.where), LF_STR("error", d.what));
    return rc;
}

/* What every instance gets about the mesh; a NULL value is the mesh's URL. */
static const struct {
    const char *name, *value;
} mesh_env[] = {
    {"SHOAL_MESH", NULL},
    {"HTTP_PROXY", NULL},
    {"http_proxy", NULL},
    {"NO_PROXY", "localhost,127.0.0.1,::1"},
    {"no_proxy", "localhost,127.0.0.1,::1"},
};

static bool service_sets(const struct manifest_service *s, const char *name)
{
    for (size_t i = 0; i < s->env_count; i++) {
        if (!strcmp(s->env[i].name, name))
            return true;
    }
    return false;
}

static int start_instance(struct up *u, struct up_instance *in)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct arena a;
    const char **argv, **env;
    char cwd[PATH_MAX], port_env[32];
    size_t nenv;
    int rc;

    arena_init(&a, 4096, 0);
    argv = arena_alloc(&a, (s->argc + 1) * sizeof(*argv));
    env = arena_alloc(&a, (s->env_count + 2 + SH_ARRAY_LEN(mesh_env)) * sizeof(*env));
    if (!argv || !env) {
        arena_release(&a);
        return SH_ENOMEM;
    }
    in->port = s->is_port_auto ? free_port() : s->port;
    for (size_t i = 0; i < s->argc; i++)
        argv[i] = expand(&a, s->argv[i], in->port);
    argv[s->argc] = NULL;
    for (size_t i = 0; i < s->env_count; i++) {
        const char *v = expand(&a, s->env[i].value, in->port);
        size_t n = strlen(s->env[i].name) + strlen(v ? v : "") + 2;
        char *kv = arena_alloc(&a, n);
        if (kv)
            snprintf(kv, n, "%s=%s", s->env[i].name, v ? v : "");
        env[i] = kv;
    }
    snprintf(port_env, sizeof(port_env), "SHOAL_SERVICE=%s", s->name);
    env[s->env_count] = arena_strndup(&a, port_env, strlen(port_env));
    nenv = s->env_count + 1;
    /* the mesh, for clients that honour a proxy (curl reads only the lower-case http_proxy);
     * loopback stays direct. A service's own env wins. */
    for (size_t i = 0; u->mesh && i < SH_ARRAY_LEN(mesh_env); i++) {
        const char *v = mesh_env[i].value ? mesh_env[i].value : u->mesh_url;
        size_t n = strlen(mesh_env[i].name) + strlen(v) + 2;
        char *kv;
        if (service_sets(s, mesh_env[i].name) || !(kv = arena_alloc(&a, n)))
            continue;
        snprintf(kv, n, "%s=%s", mesh_env[i].name, v);
        env[nenv++] = kv;
    }
    env[nenv] = NULL;
    if (s->working_dir && s->working_dir[0] == '/')
        snprintf(cwd, sizeof(cwd), "%s", s->working_dir);
    else
        if (!join_path(cwd, sizeof(cwd), u->dir, s->working_dir ? s->working_dir : ".")) {
            arena_release(&a);
            return SH_ETOOBIG;
        }
    struct sup_instance_spec spec = {
        .service = s->name,
        .argv = argv,
        .env = env,
        .cwd = cwd,
        .port = in->port,
        .restart = restart_of(s->restart),
    };
    rc = sup_instance_start(u->procs, &spec, &in->proc_id);
    arena_release(&a);
    if (rc < 0) {
        SH_LOG(SH_ERROR, "supervisor", "cannot start an instance", LF_STR("id", in->id),
               LF_ERR("err", rc));
        return rc;
    }
    in->started = true;
    if (in->port)
        rc = register_instance(u, in);
    SH_LOG(SH_INFO, "supervisor", "instance started", LF_STR("id", in->id),
           LF_UINT("port", in->port));
    return rc;
}

static size_t passing_of(struct up *u, const char *service, size_t *total)
{
    struct registry_result res = {0};
    size_t n = 0;

    *total = 0;
    if (registry_instances(u->reg, service, REGISTRY_FILTER_ALL, &res) == 0) {
        *total = res.count;
        for (size_t i = 0; i < res.count; i++)
            n += res.instances[i].status == REGISTRY_PASSING;
    }
    registry_result_release(&res);
    return n;
}

/* Starts what can start: a service waits until every service it depends on has all its
 * instances passing. Logs once when everything is healthy. */
static void replaced_stopped(void *data, uint64_t id, const struct sup_exit *ex)
{
    struct up_instance *in = data;
    struct up *u = in->u;

    (void)ex;
    if (sup_instance_forget(u->procs, id) < 0)
        return;
    in->replacing = false;
    in->pid_passed = 0;
    in->replaced++;
    if (!u->stopping && start_instance(u, in) < 0) {
        /* logged by start_instance; ps shows the instance as exited */
    }
}

/* Self-healing beyond crashes: a process that passed its health check and now fails it (past
 * the check's unhealthy threshold, which the registry applies) is deregistered, stopped
 * (SIGTERM, SIGKILL after stop_grace) and started afresh. A process restarted after a crash
 * must pass once before it can be judged. */
static void check_health(struct up *u, struct up_instance *in)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct sup_instance_status st;
    struct registry_result res = {0};
    enum registry_health h;

    if (!in->started || in->replacing || s->health.kind == MANIFEST_HEALTH_NONE ||
        sup_instance_status(u->procs, in->proc_id, &st) < 0 || st.pid == 0 ||
        registry_instance_get(u->reg, in->id, &res) < 0)
        return;
    h = res.instances[0].status;
    registry_result_release(&res);
    if (h == REGISTRY_PASSING) {
        in->pid_passed = st.pid;
        return;
    }
    if (h != REGISTRY_CRITICAL || in->pid_passed != st.pid)
        return;
    SH_LOG(SH_WARN, "supervisor", "instance failed its health check; replacing it",
           LF_STR("id", in->id), LF_INT("pid", st.pid));
    in->replacing = true;
    if (registry_deregister(u->reg, in->id, NULL) < 0) {
        /* not registered any more: nothing to drain */
    }
    if (sup_instance_stop(u->procs, in->proc_id, s->stop_grace_ms, replaced_stopped, in) < 0)
        in->replacing = false;
}

static void tick(uv_timer_t *t)
{
    struct up *u = t->data;
    bool all = true;

    if (u->stopping)
        return;
    for (size_t i = 0; i < u->ninst; i++) {
        struct up_instance *in = &u->inst[i];
        const struct manifest_service *s = &u->m->services[in->service];
        bool ready = true;
        if (in->started)
            continue;
        for (size_t k = 0; k < s->depends_count && ready; k++) {
            const struct manifest_service *dep = &u->m->services[s->depends_idx[k]];
            size_t total, ok = passing_of(u, dep->name, &total);
            ready = dep->port == 0 && !dep->is_port_auto ? true : total > 0 && ok == total;
        }
        if (ready)
            start_instance(u, in);
    }
    if (uv_now(&u->loop) - u->health_checked_ms >= 500) { /* checks run every 1 s at most */
        u->health_checked_ms = uv_now(&u->loop);
        for (size_t i = 0; i < u->ninst; i++)
            check_health(u, &u->inst[i]);
    }
    for (size_t i = 0; i < u->ninst; i++) {
        size_t total;
        const struct manifest_service *s = &u->m->services[u->inst[i].service];
        if (!u->inst[i].started || (u->inst[i].port && passing_of(u, s->name, &total) < total))
            all = false;
    }
    if (all && !u->all_healthy_logged) {
        u->all_healthy_logged = true;
        SH_LOG(SH_INFO, "supervisor", "all instances healthy", LF_UINT("instances", u->ninst),
               LF_UINT("ms", uv_now(&u->loop) - u->started_ms));
    }
}

/* Replaces every byte that is not part of well-formed UTF-8 (RFC 3629) with '?', so the API's
 * JSON stays valid whatever a service prints. */
static void utf8_sanitize(unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                                 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        bool ok = len > 0 && i + len <= n;

        for (size_t k = 1; ok && k < len; k++)
            ok = k == 1 ? s[i + k] >= lo && s[i + k] <= hi : (s[i + k] & 0xC0) == 0x80;
        if (!ok || c == 0) {
            s[i++] = '?';
            continue;
        }
        i += len;
    }
}

/* One line an instance wrote: into shoal's log and the ring `shoal logs` reads, cut at
 * UP_LOG_LINE_MAX bytes and made valid UTF-8 (both outputs are JSON). */
static void on_line(void *data, uint64_t id, enum sup_stream stream, struct slice line,
                    bool is_cut)
{
    struct up *u = data;
    const char *who = "?";
    size_t inst = SIZE_MAX, n = SH_MIN(line.len, (size_t)UP_LOG_LINE_MAX);
    char *text = sh_malloc(n + 1);
    struct up_logline *l;

    (void)is_cut;
    for (size_t i = 0; i < u->ninst; i++) {
        if (u->inst[i].proc_id == id) {
            who = u->inst[i].id;
            inst = i;
        }
    }
    if (!text) {
        SH_LOG(SH_WARN, "service", "output line dropped: out of memory", LF_STR("instance", who));
        return;
    }
    memcpy(text, line.ptr, n);
    text[n] = '\0';
    utf8_sanitize((unsigned char *)text, n);
    SH_LOG(SH_INFO, "service", stream == SUP_STDERR ? "stderr" : "stdout", LF_STR("instance", who),
           LF_STR("line", text));
    if (inst == SIZE_MAX || !u->log) {
        sh_free(text);
        return;
    }
    l = &u->log[u->log_next];
    sh_free(l->text);
    *l = (struct up_logline){.seq = ++u->log_seq, .ms = sh_wall_ms(), .inst = (uint32_t)inst,
                             .is_stderr = stream == SUP_STDERR, .text = text};
    u->log_next = (u->log_next + 1) % UP_LOG_LINES;
    if (u->log_count < UP_LOG_LINES)
        u->log_count++;
}

static int render_logs(void *data, const char *service, uint64_t since_ms, uint64_t after_seq,
                       const char *grep, struct buf *b)
{
    struct up *u = data;
    size_t start = (u->log_next + UP_LOG_LINES - u->log_count) % UP_LOG_LINES;
    bool first = true;

    buf_appendc(b, '[');
    for (size_t k = 0; k < u->log_count; k++) {
        const struct up_logline *l = &u->log[(start + k) % UP_LOG_LINES];
        const struct up_instance *in = &u->inst[l->inst];
        const char *svc = u->m->services[in->service].name;
        if (l->ms < since_ms || l->seq <= after_seq || (service && strcmp(service, svc)) ||
            (grep && !strstr(l->text, grep)))
            continue;
        buf_appendf(b, "%s{\"seq\":%llu,\"ms\":%llu,\"service\":\"", first ? "" : ",",
                    (unsigned long long)l->seq, (unsigned long long)l->ms);
        first = false;
        buf_append_json_str(b, slice_from_cstr(svc));
        buf_appends(b, SLICE("\",\"instance\":\""));
        buf_append_json_str(b, slice_from_cstr(in->id));
        buf_appendf(b, "\",\"stream\":\"%s\",\"line\":\"", l->is_stderr ? "stderr" : "stdout");
        buf_append_json_str(b, slice_from_cstr(l->text));
        buf_appends(b, SLICE("\"}"));
    }
    buf_appends(b, SLICE("]\n"));
    return b->err;
}

/* ------------------------------------------------------------------------------------------
 * Stopping
 * ------------------------------------------------------------------------------------------ */
static void finish(struct up *u)
{
    admin_free(u->admin);
    u->admin = NULL;
    registry_free(u->reg);
    u->reg = NULL;
    http_client_free(u->client);
    u->client = NULL;
    cfgkv_free(u->kv);
    u->kv = NULL;
    sup_procs_free(u->procs);
    u->procs = NULL;
    proxy_discovery_free(u->disc);
    u->disc = NULL;
    uv_close((uv_handle_t *)&u->tick, NULL);
    uv_close((uv_handle_t *)&u->sigint, NULL);
    uv_close((uv_handle_t *)&u->sigterm, NULL);
    SH_LOG(SH_INFO, "supervisor", "stopped");
}

static void admin_stopped(void *data)
{
    finish(data);
}

/* Last, the control plane; discovery first, so its pending long polls do not end in 503s. */
static void stop_control_plane(struct up *u)
{
    proxy_discovery_free(u->disc);
    u->disc = NULL;
    admin_stop(u->admin, 2000, admin_stopped, u);
}

static void mesh_stopped(void *data)
{
    struct up *u = data;

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
    if (--u->stops_pending)
        return;
    if (u->mesh)
        proxy_gateway_stop(u->mesh, 2000, mesh_stopped, u);
    else
        stop_control_plane(u);
}

static void stop_instances(struct up *u)
{
    u->stops_pending = 1; /* held until every stop is asked, so it cannot reach 0 early */
    for (size_t i = 0; i < u->ninst; i++) {
        struct up_instance *in = &u->inst[i];
        if (!in->started)
            continue;
        if (registry_deregister(u->reg, in->id, NULL) < 0) {
            /* already gone: nothing to drain */
        }
        u->stops_pending++;
        if (sup_instance_stop(u->procs, in->proc_id, u->m->services[in->service].stop_grace_ms,
                              instance_stopped, u) < 0)
            u->stops_pending--;
    }
    instance_stopped(u, 0, NULL);
}

static void gateway_stopped(void *data)
{
    struct up *u = data;

    proxy_gateway_free(u->gw);
    u->gw = NULL;
    stop_instances(u);
}

/* Ctrl-C, SIGTERM or `shoal down`: the gateway drains, then the instances, the mesh and the
 * control plane stop in that order. */
static void stop_all(struct up *u, const char *why)
{
    if (u->stopping)
        return;
    u->stopping = true;
    SH_LOG(SH_INFO, "supervisor", "stopping", LF_STR("by", why));
    uv_timer_stop(&u->tick);
    if (u->gw)
        proxy_gateway_stop(u->gw, 5000, gateway_stopped, u);
    else
        stop_instances(u);
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
    uint64_t now = (uint64_t)sh_wall_ms();
    bool first = true;

    buf_appendc(b, '[');
    for (size_t i = 0; i < u->ninst; i++) {
        const struct up_instance *in = &u->inst[i];
        const struct manifest_service *s = &u->m->services[in->service];
        struct sup_instance_status st = {0};
        struct registry_result res = {0};
        const char *health = in->started ? "none" : "-";

        if (in->started && sup_instance_status(u->procs, in->proc_id, &st) < 0)
            continue;
        if (in->started && s->health.kind != MANIFEST_HEALTH_NONE) {
            int rc = registry_instance_get(u->reg, in->id, &res);
            if (rc == SH_ENOMEM)
                return rc;
            health = rc == 0 ? registry_health_name(res.instances[0].status) : "unregistered";
        }
        buf_appends(b, first ? SLICE("{\"id\":\"") : SLICE(",{\"id\":\""));
        first = false;
        buf_append_json_str(b, slice_from_cstr(in->id));
        buf_appendc(b, '"');
        json_field_str(b, "service", s->name);
        json_field_str(b, "state", in->started ? sup_state_name(st.state) : "waiting");
        json_field_str(b, "health", health);
        registry_result_release(&res);
        buf_appendf(b, ",\"pid\":%d,\"port\":%u,\"restarts\":%u,\"crash_loop\":%s", st.pid,
                    in->port, st.restarts + in->replaced, st.is_crash_loop ? "true" : "false");
        buf_appendf(b, ",\"uptime_ms\":%llu}",
                    (unsigned long long)(st.pid && st.started_wall_ms && now > st.started_wall_ms
                                             ? now - st.started_wall_ms
                                             : 0));
    }
    buf_appends(b, SLICE("]\n"));
    return b->err;
}

/* ------------------------------------------------------------------------------------------
 * Starting
 * ------------------------------------------------------------------------------------------ */
static int endpoints(void *data, const char *service, struct arena *a,
                     struct proxy_endpoint **out, uint32_t *count)
{
    struct up *u = data;

    return proxy_discovery_endpoints(u->disc, service, a, out, count);
}

static void reload(struct up *u, struct proxy_gateway *gw, const struct sh_doc *doc)
{
    struct proxy_resolver res = {.endpoints = endpoints, .data = u};
    struct proxy_config *cfg;
    struct sh_diag d = {{0}, {0}};

    if (!gw || u->stopping)
        return;
    if (proxy_config_from_doc(doc, &res, &cfg, &d) == 0 && proxy_gateway_reload(gw, cfg, &d) == 0)
        return;
    SH_LOG(SH_ERROR, "proxy", "cannot apply new endpoints", LF_STR("where", d.where),
           LF_STR("error", d.what));
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

/* Discovery of every service, then the mesh (instances need its URL) and the gateway. */
static int start_proxies(struct up *u, struct sh_diag *d)
{
    const char *listen = u->m->mesh_listen;

    SH_TRY(proxy_discovery_new(&u->loop, u->m->control_plane_listen, u->token, discovery_changed,
                            u, &u->disc, d));
    for (size_t i = 0; i < u->m->service_count; i++)
        SH_TRY(proxy_discovery_watch(u->disc, u->m->services[i].name));
    SH_TRY(manifest_mesh_doc(u->m, &u->mesh_doc));
    SH_TRY(start_proxy(u, u->mesh_doc, &u->mesh, d));
    snprintf(u->mesh_url, sizeof(u->mesh_url), "http://%s:%u",
             listen[0] == '[' ? "[::1]" : "127.0.0.1", proxy_gateway_port(u->mesh));
    SH_LOG(SH_INFO, "proxy", "mesh listening", LF_STR("listen", listen),
           LF_STR("url", u->mesh_url));
    if (!u->m->gateway.is_set)
        return 0;
    SH_TRY(manifest_gateway_doc(u->m, &u->gw_doc));
    SH_TRY(start_proxy(u, u->gw_doc, &u->gw, d));
    SH_LOG(SH_INFO, "proxy", "gateway listening", LF_STR("listen", u->m->gateway.listen),
           LF_UINT("port", proxy_gateway_port(u->gw)));
    return 0;
}

static int start_all(struct up *u, struct sh_diag *d)
{
    bool created = false;
    const char *token = getenv("SHOAL_TOKEN");
    int rc;

    rc = store_open(&(struct store_config){.data_dir = u->data_dir}, &u->store, d);
    if (rc < 0)
        return rc;
    if (token && *token) {
        snprintf(u->token, sizeof(u->token), "%s", token);
    } else {
        rc = admin_token_load(u->data_dir, u->token, sizeof(u->token), &created, d);
        if (rc < 0)
            return rc;
        if (created)
            fprintf(stderr, "shoal up: API token in %s/token:\n  export SHOAL_TOKEN=%s\n",
                    u->data_dir, u->token);
    }
    u->sup = (struct admin_supervisor){.instances = render_instances, .stop = on_api_stop,
                                       .logs = render_logs, .data = u};
    u->log = sh_calloc(UP_LOG_LINES, sizeof(*u->log));
    if (!u->log)
        return SH_ENOMEM;
    rc = cfgkv_new(&(struct cfgkv_config){0}, &u->loop, u->store, &u->kv);
    if (rc == 0)
        rc = http_client_new(&u->loop, &(struct http_client_config){.max_idle_per_host = 2},
                             &u->client);
    if (rc == 0)
        rc = registry_new(&(struct registry_config){0}, &u->loop, u->store, u->client, &u->reg);
    if (rc == 0)
        rc = admin_new(&u->loop,
                       &(struct admin_config){.listen = u->m->control_plane_listen,
                                              .token = u->token, .store = u->store,
                                              .kv = u->kv, .registry = u->reg,
                                              .supervisor = &u->sup},
                       &u->admin, d);
    if (rc < 0)
        return rc;
    /* default config keys: written only when absent, so operators' changes survive */
    for (size_t i = 0; i < u->m->service_count; i++) {
        const struct manifest_service *s = &u->m->services[i];
        for (size_t k = 0; k < s->config_count; k++) {
            struct cfgkv_write_opts o = {.has_cas = true, .cas = 0};
            int wr = cfgkv_set(u->kv, slice_from_cstr(s->config[k].name),
                               slice_from_cstr(s->config[k].value), &o, NULL);
            if (wr < 0)
                SH_LOG(SH_WARN, "supervisor", "cannot write a default config key",
                       LF_STR("key", s->config[k].name), LF_ERR("err", wr));
        }
    }
    const char *tramp[] = {u->self, "__child", "--", NULL};
    rc = sup_procs_new(&(struct sup_procs_config){.trampoline = tramp, .on_line = on_line,
                                                  .data = u},
                       &u->loop, &u->procs);
    if (rc < 0)
        return rc;
    u->ninst = (size_t)manifest_instance_count(u->m);
    u->inst = sh_calloc(u->ninst + 1, sizeof(*u->inst));
    if (!u->inst)
        return SH_ENOMEM;
    size_t n = 0;
    for (size_t o = 0; o < u->m->service_count; o++) {
        uint32_t si = u->m->start_order[o];
        for (uint32_t r = 0; r < u->m->services[si].replicas; r++) {
            struct up_instance *in = &u->inst[n++];
            in->u = u;
            in->service = si;
            in->ordinal = r;
            snprintf(in->id, sizeof(in->id), "%s-%u", u->m->services[si].name, r + 1);
        }
    }
    u->ninst = n;
    return start_proxies(u, d);
}

static int up_main(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("up");
    const char *file = "shoal.yaml", *data_dir = NULL;
    struct up *u;
    struct sh_diag d = {{0}, {0}};
    char real[PATH_MAX];
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-f") && strcmp(a, "--data-dir") && strcmp(a, "--log-level"))
            return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!v)
            return cli_usage_error(cmd, "option '%s' needs a value", a);
        i++;
        if (!strcmp(a, "-f"))
            file = v;
        else if (!strcmp(a, "--data-dir"))
            data_dir = v;
        else {
            int lvl = sh_log_level_parse(slice_from_cstr(v));
            if (lvl < 0)
                return cli_usage_error(cmd, "--log-level: unknown level '%s'", v);
            sh_log_setup((enum sh_log_level)lvl, SH_LOG_AUTO, 2);
        }
    }
    u = sh_calloc(1, sizeof(*u));
    if (!u)
        return 1;
    rc = manifest_load_file(file, &u->m, &d);
    if (rc < 0) {
        fprintf(stderr, "shoal up: %s: %s\n", d.where, d.what);
        sh_free(u);
        return 1;
    }
    if (!realpath(file, real))
        snprintf(real, sizeof(real), "%s", file);
    snprintf(u->dir, sizeof(u->dir), "%s", real);
    *strrchr(u->dir, '/') = '\0';
    if (data_dir)
        snprintf(u->data_dir, sizeof(u->data_dir), "%s", data_dir);
    else if (u->m->data_dir[0] == '/')
        snprintf(u->data_dir, sizeof(u->data_dir), "%s", u->m->data_dir);
    else
        if (!join_path(u->data_dir, sizeof(u->data_dir), u->dir, u->m->data_dir))
            snprintf(u->data_dir, sizeof(u->data_dir), "%s", u->m->data_dir);
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
    u->started_ms = uv_now(&u->loop);
    rc = start_all(u, &d);
    if (rc < 0) {
        fprintf(stderr, "shoal up: %s: %s\n", d.where, d.what[0] ? d.what : sh_strerror(rc));
        u->stopping = true;
        if (u->gw) {
            proxy_gateway_stop(u->gw, 0, gateway_stopped, u);
        } else if (u->admin) {
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
        uv_timer_start(&u->tick, tick, 0, 100);
        uv_run(&u->loop, UV_RUN_DEFAULT);
        rc = 0;
    }
    if (uv_loop_close(&u->loop) != 0)
        rc = 1;
    store_close(u->store);
    sh_doc_free(u->gw_doc);
    sh_doc_free(u->mesh_doc);
    manifest_free(u->m);
    for (size_t i = 0; u->log && i < UP_LOG_LINES; i++)
        sh_free(u->log[i].text);
    sh_free(u->log);
    sh_free(u->inst);
    sh_free(u);
    return rc;
}

int role_up(int argc, char **argv)
{
    return up_main(argc, argv);
}
