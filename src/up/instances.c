/* SPDX-License-Identifier: MIT */
/* instances.c: the instances of `shoal up`. Each service is kept at its wanted replica
 * count (the manifest's, then `shoal scale`'s or the autoscaler's): missing instances are
 * added and start once what they depend on is healthy; extra ones retire. An instance with a
 * health check is registered only once it has passed it (probed here every UP_PROBE_MS with
 * registry_probe until then); the registry runs the check from then on. An instance that
 * retires is deregistered first, stays up until neither proxy sends it new requests and those
 * already sent have had time to finish (the drain), then gets SIGTERM and, after its
 * stop_grace, SIGKILL. `shoal restart` replaces a service's instances one at a time, starting
 * the new one before the old one retires (when the port allows two), so the service never has
 * fewer ready instances than before. Thread: main. */
#include "up/up_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

static uint16_t free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;

    if (fd < 0) return 0;
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* "$PORT", "${PORT}", "$SHOAL_PORT" and "$$" expanded in one argument (in the arena); NULL
 * when out of memory or past 128 KiB (Linux's limit for one argument). */
static const char *expand(struct arena *a, const char *arg, uint16_t port)
{
    struct buf b = BUF_INIT(128 * 1024);
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
    out = b.err ? NULL : b.data ? arena_strndup(a, b.data, b.len) : arena_strndup(a, "", 0);
    buf_release(&b);
    return out;
}

static enum sup_restart restart_of(enum manifest_restart r)
{
    return r == MANIFEST_RESTART_NEVER        ? SUP_RESTART_NEVER
           : r == MANIFEST_RESTART_ON_FAILURE ? SUP_RESTART_ON_FAILURE
                                              : SUP_RESTART_ALWAYS;
}

/* ------------------------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------------------------ */
struct up_instance *up_instance_find(struct up *u, uint32_t service, uint32_t ordinal)
{
    for (size_t i = 0; i < u->ninst; i++) {
        if (u->inst[i]->service == service && u->inst[i]->ordinal == ordinal) return u->inst[i];
    }
    return NULL;
}

/* A new instance of <service>, not started yet (the tick starts it); NULL when out of memory. */
static struct up_instance *add_instance(struct up *u, uint32_t service)
{
    struct up_instance *in;

    if (sh_array_reserve(&u->inst, &u->inst_cap, u->ninst + 1, sizeof(*u->inst)) < 0) return NULL;
    in = sh_calloc(1, sizeof(*in));
    if (!in) return NULL;
    in->u = u;
    in->service = service;
    in->ordinal = u->svc[service].next_ordinal++;
    snprintf(in->id, sizeof(in->id), "%s-%u", u->m->services[service].name, in->ordinal);
    u->inst[u->ninst++] = in;
    return in;
}

static void revoke_token(struct up *u, struct up_instance *in)
{
    if (in->token_id[0] && u->cp.tokens && sec_token_revoke(u->cp.tokens, in->token_id) < 0) {
        /* gone already */
    }
    in->token_id[0] = '\0';
}

/* The instance's own API token, made afresh at each start (the old one revoked): it reads its
 * service's config keys, config/<service>/..., and sends spans (/v1/traces, /api/v2/spans),
 * nothing else. Into text. */
static int instance_token(struct up *u, struct up_instance *in, char *text, size_t len)
{
    const char *svc = u->m->services[in->service].name;
    char prefix[SEC_PREFIX_MAX + 1], name[SEC_NAME_MAX + 1];
    struct sec_token t;
    struct sh_diag d = {0};

    revoke_token(u, in);
    snprintf(prefix, sizeof(prefix), "config/%s/", svc);
    snprintf(name, sizeof(name), "instance %s", in->id);
    SH_TRY(sec_token_create(u->cp.tokens,
                            &(struct sec_token_spec){.scope = SEC_SCOPE_READ,
                                                     .prefix = prefix,
                                                     .name = name,
                                                     .is_ephemeral = true,
                                                     .may_ingest = true},
                            sh_wall_ms(), &t, text, len, &d));
    snprintf(in->token_id, sizeof(in->token_id), "%s", t.id);
    return 0;
}

static void remove_instance(struct up *u, struct up_instance *in)
{
    for (size_t i = 0; i < u->ninst; i++) {
        if (u->inst[i] == in) {
            memmove(&u->inst[i], &u->inst[i + 1], (u->ninst - i - 1) * sizeof(*u->inst));
            u->ninst--;
            break;
        }
    }
    for (size_t i = 0; i < u->ninst; i++) {
        if (u->inst[i]->service == in->service && u->inst[i]->waits_for == in->ordinal)
            u->inst[i]->waits_for = 0;
    }
    SH_LOG(SH_INFO, "supervisor", "instance removed", LF_STR("id", in->id));
    revoke_token(u, in);
    up_tls_forget(u, in);
    sh_free(in);
}

int up_instances_init(struct up *u)
{
    u->svc = sh_calloc(u->m->service_count + 1, sizeof(*u->svc));
    if (!u->svc) return SH_ENOMEM;
    for (size_t o = 0; o < u->m->service_count; o++) {
        uint32_t si = u->m->start_order[o];
        u->svc[si].next_ordinal = 1;
        u->svc[si].want = u->m->services[si].replicas;
        for (uint32_t r = 0; r < u->svc[si].want; r++) {
            if (!add_instance(u, si)) return SH_ENOMEM;
        }
    }
    return 0;
}

void up_instances_free(struct up *u)
{
    for (size_t i = 0; i < u->ninst; i++) {
        up_tls_forget(u, u->inst[i]);
        sh_free(u->inst[i]);
    }
    sh_free(u->inst);
    u->inst = NULL;
    u->ninst = u->inst_cap = 0;
    for (size_t s = 0; u->svc && s < u->m->service_count; s++)
        sh_free(u->svc[s].roll_old);
    sh_free(u->svc);
    u->svc = NULL;
}

/* ------------------------------------------------------------------------------------------
 * Starting, registering
 * ------------------------------------------------------------------------------------------ */
/* The registry's check for a service's health section (kind NONE without one). */
static struct registry_check check_of(const struct manifest_service *s)
{
    struct registry_check c = {0};

    if (s->health.kind == MANIFEST_HEALTH_NONE) return c;
    c.kind = s->health.kind == MANIFEST_HEALTH_TCP ? REGISTRY_CHECK_TCP : REGISTRY_CHECK_HTTP;
    c.path = s->health.http_path;
    c.interval_ms = SH_MAX(s->health.interval_ms, 1000u);
    c.timeout_ms = SH_MIN(s->health.timeout_ms, c.interval_ms);
    c.failures_before_critical = s->health.unhealthy_threshold;
    c.successes_before_passing = s->health.healthy_threshold;
    return c;
}

/* Registers the instance, passing: it has no check, or its probes have just passed. */
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
        .check = check_of(s),
        .status = REGISTRY_PASSING,
    };
    struct sh_diag d = {{0}, {0}};
    int rc = registry_register(u->cp.reg, &ri, &d, NULL);

    if (rc < 0)
        SH_LOG(SH_ERROR, "supervisor", "cannot register an instance", LF_STR("id", in->id),
               LF_STR("where", d.where), LF_STR("error", d.what));
    else
        in->registered = true;
    return rc;
}

/* A probe before registration: who asked, so a late answer finds its instance (or not). */
struct up_probe {
    struct up *u;
    uint32_t service, ordinal, gen;
};

static void probed(void *data, enum registry_health health, const char *note)
{
    struct up_probe *pr = data;
    struct up *u = pr->u;
    struct up_instance *in = up_instance_find(u, pr->service, pr->ordinal);
    const struct manifest_service *s;

    if (!in || in->gen != pr->gen) {
        sh_free(pr);
        return;
    }
    sh_free(pr);
    s = &u->m->services[in->service];
    in->probing = false;
    in->next_probe_ms = uv_now(&u->loop) + SH_MIN(s->health.interval_ms, (uint32_t)UP_PROBE_MS);
    in->probe_ok = health == REGISTRY_PASSING ? in->probe_ok + 1 : 0;
    if (in->probe_ok < s->health.healthy_threshold || u->stopping || in->retiring || in->replacing)
        return;
    SH_LOG(SH_INFO, "supervisor", "instance passed its check; registering it", LF_STR("id", in->id),
           LF_STR("check", note));
    if (register_instance(u, in) < 0) {
        /* logged; probed again, then registered */
    }
}

/* Probes an instance that waits for its first passing check (see UP_PROBE_MS). */
static void probe(struct up *u, struct up_instance *in)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct registry_check c = check_of(s);
    struct up_probe *pr;
    int rc;

    if (!in->started || in->registered || in->probing || in->retiring || in->replacing ||
        !in->port || c.kind == REGISTRY_CHECK_NONE || uv_now(&u->loop) < in->next_probe_ms)
        return;
    pr = sh_malloc(sizeof(*pr));
    if (!pr) return;
    *pr = (struct up_probe){.u = u, .service = in->service, .ordinal = in->ordinal, .gen = in->gen};
    in->probing = true;
    rc = registry_probe(u->cp.reg, &c, "127.0.0.1", in->port, probed, pr);
    if (rc < 0) {
        sh_free(pr);
        in->probing = false;
        in->next_probe_ms = uv_now(&u->loop) + UP_PROBE_MS;
    }
}

/* ------------------------------------------------------------------------------------------
 * Caller identity: every process of an instance gets its own credential in its proxy URL,
 * http://<service>.<ordinal>:<secret>@<mesh>; the mesh knows the credentials of the processes
 * that run (docs/observability.md, "Caller identity").
 * ------------------------------------------------------------------------------------------ */
/* A fresh secret for the instance's next process: 0, or -errno when the kernel has no entropy
 * to give (the start is then tried again later). */
static int new_secret(struct up_instance *in)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    ssize_t got = getrandom(raw, sizeof(raw), 0);

    if (got != (ssize_t)sizeof(raw)) return got < 0 ? -errno : -EAGAIN;
    for (size_t i = 0; i < sizeof(raw); i++) {
        in->secret[2 * i] = hex[raw[i] >> 4];
        in->secret[2 * i + 1] = hex[raw[i] & 15];
    }
    in->secret[2 * sizeof(raw)] = '\0';
    return 0;
}

/* The instance's proxy URL, "http://greeter.1:<secret>@127.0.0.1:7701". */
static void proxy_url(const struct up *u, const struct up_instance *in, char *out, size_t n)
{
    snprintf(out, n, "http://%s.%u:%s@%s", u->m->services[in->service].name, in->ordinal,
             in->secret, u->mesh_url + strlen("http://"));
}

void up_callers_publish(struct up *u)
{
    struct proxy_caller *list;
    struct proxy_callers *t = NULL;
    char(*users)[112];
    size_t n = 0;
    int rc = SH_ENOMEM;

    if (!u->mesh) return;
    list = sh_calloc(u->ninst + 1, sizeof(*list));
    users = sh_calloc(u->ninst + 1, sizeof(*users));
    if (list && users) {
        for (size_t i = 0; i < u->ninst; i++) {
            const struct up_instance *in = u->inst[i];
            if (!in->cred_live) continue;
            snprintf(users[n], sizeof(users[n]), "%s.%u", u->m->services[in->service].name,
                     in->ordinal);
            list[n] = (struct proxy_caller){.user = users[n],
                                            .secret = in->secret,
                                            .service = u->m->services[in->service].name,
                                            .instance = in->id};
            n++;
        }
        rc = proxy_callers_new(list, n, &t);
    }
    if (rc == 0) rc = proxy_gateway_set_callers(u->mesh, t);
    sh_free(list);
    sh_free(users);
    if (rc < 0)
        SH_LOG(SH_ERROR, "proxy", "cannot publish the mesh's caller credentials",
               LF_ERR("err", rc));
}

/* What every instance gets about the mesh; a NULL value is its own proxy URL. */
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
        if (!strcmp(s->env[i].name, name)) return true;
    }
    return false;
}

/* "NAME=value" in the arena, or NULL when out of memory. */
static const char *env_pair(struct arena *a, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    char *kv = arena_alloc(a, len);

    if (kv) snprintf(kv, len, "%s=%s", name, value);
    return kv;
}

/* Its certificate, key and the CA bundle (tls.c), as SHOAL_TLS_CERT, SHOAL_TLS_KEY and
 * SHOAL_TLS_CA (at most 3 more in lit). Without a certificate (logged) it starts without them. */
static int tls_env(struct up *u, const struct manifest_service *s, struct up_instance *in,
                   struct arena *a, const char **lit, size_t *n)
{
    static const char *const vars[][2] = {
        {"SHOAL_TLS_CERT", "cert.pem"}, {"SHOAL_TLS_KEY", "key.pem"}, {"SHOAL_TLS_CA", "ca.pem"}};
    char dir[PATH_MAX], path[PATH_MAX + 16];

    if (up_tls_issue(u, in, dir) < 0) return 0;
    for (size_t i = 0; i < SH_ARRAY_LEN(vars); i++) {
        if (service_sets(s, vars[i][0])) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, vars[i][1]);
        lit[*n] = env_pair(a, vars[i][0], path);
        if (!lit[(*n)++]) return SH_ENOMEM;
    }
    return 0;
}

/* The environment of an instance of <s>, in <a>: *env gets SHOAL_SERVICE, SHOAL_INSTANCE and
 * the mesh's variables (literal), *templates the manifest's env as written, for the process
 * layer to expand (${SHOAL_DATA_DIR}, ${PORT}, ...: sup_env_expand). Both NULL-terminated.
 * 0, or SH_ENOMEM: a variable is never dropped. */
static int instance_env(struct up *u, const struct manifest_service *s, struct up_instance *in,
                        struct arena *a, const char ***env, const char ***templates)
{
    const char **lit = arena_alloc(a, (8 + SH_ARRAY_LEN(mesh_env)) * sizeof(*lit));
    char token[SEC_TOKEN_TEXT_LEN + 1];
    char url[256];
    const char **tmpl = arena_alloc(a, (s->env_count + 1) * sizeof(*tmpl));
    size_t n = 0;

    if (!lit || !tmpl) return SH_ENOMEM;
    for (size_t i = 0; i < s->env_count; i++) {
        tmpl[i] = env_pair(a, s->env[i].name, s->env[i].value);
        if (!tmpl[i]) return SH_ENOMEM;
    }
    tmpl[s->env_count] = NULL;
    lit[n++] = env_pair(a, "SHOAL_SERVICE", s->name);
    lit[n++] = env_pair(a, "SHOAL_INSTANCE", in->id);
    if (!lit[0] || !lit[1]) return SH_ENOMEM;
    /* the control plane, and a token that reads this service's config keys */
    if (!service_sets(s, "SHOAL_ADDR") && u->admin_addr[0]) {
        lit[n] = env_pair(a, "SHOAL_ADDR", u->admin_addr);
        if (!lit[n++]) return SH_ENOMEM;
    }
    if (!service_sets(s, "SHOAL_TOKEN")) {
        SH_TRY(instance_token(u, in, token, sizeof(token)));
        lit[n] = env_pair(a, "SHOAL_TOKEN", token);
        explicit_bzero(token, sizeof(token));
        if (!lit[n++]) return SH_ENOMEM;
    }
    SH_TRY(tls_env(u, s, in, a, lit, &n));
    /* the mesh, for clients that honour a proxy (curl reads only the lower-case http_proxy);
     * loopback stays direct. A service's own env wins. */
    if (u->mesh) proxy_url(u, in, url, sizeof(url));
    for (size_t i = 0; u->mesh && i < SH_ARRAY_LEN(mesh_env); i++) {
        if (service_sets(s, mesh_env[i].name)) continue;
        lit[n] = env_pair(a, mesh_env[i].name, mesh_env[i].value ? mesh_env[i].value : url);
        if (!lit[n++]) return SH_ENOMEM;
    }
    lit[n] = NULL;
    *env = lit;
    *templates = tmpl;
    return 0;
}

static int start_instance(struct up *u, struct up_instance *in)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct arena a;
    const char **argv, **env = NULL, **templates = NULL;
    char cwd[PATH_MAX], services[PATH_MAX], data_dir[PATH_MAX];
    int rc;

    rc = new_secret(in);
    if (rc < 0) {
        SH_LOG(SH_ERROR, "supervisor", "cannot make a mesh credential; trying again in 1 s",
               LF_STR("id", in->id), LF_ERR("err", rc));
        return rc;
    }
    arena_init(&a, 4096, 0);
    in->port = s->is_port_auto ? free_port() : s->port;
    snprintf(in->endpoint, sizeof(in->endpoint), "127.0.0.1:%u", in->port);
    argv = arena_alloc(&a, (s->argc + 1) * sizeof(*argv));
    rc = argv ? instance_env(u, s, in, &a, &env, &templates) : SH_ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->argc; i++) {
        argv[i] = expand(&a, s->argv[i], in->port);
        if (!argv[i]) rc = SH_ENOMEM;
    }
    if (rc < 0) {
        arena_release(&a);
        SH_LOG(SH_ERROR, "supervisor", "cannot start an instance; trying again in 1 s",
               LF_STR("id", in->id), LF_ERR("err", rc));
        return rc;
    }
    argv[s->argc] = NULL;
    if (s->working_dir && s->working_dir[0] == '/')
        snprintf(cwd, sizeof(cwd), "%s", s->working_dir);
    else if (!up_join_path(cwd, sizeof(cwd), u->dir, s->working_dir ? s->working_dir : ".")) {
        arena_release(&a);
        return SH_ETOOBIG;
    }
    /* Its own directory, DATA_DIR/services/NAME: the process layer creates it (0700) and
     * passes it as SHOAL_DATA_DIR. */
    if (!up_join_path(services, sizeof(services), u->data_dir, "services") ||
        !up_join_path(data_dir, sizeof(data_dir), services, s->name)) {
        arena_release(&a);
        return SH_ETOOBIG;
    }
    struct sup_instance_spec spec = {
        .service = s->name,
        .argv = argv,
        .env = env,
        .env_templates = templates,
        .data_dir = data_dir,
        .cwd = cwd,
        .port = in->port,
        .restart = restart_of(s->restart),
    };
    rc = sup_instance_start(u->procs, &spec, &in->proc_id);
    arena_release(&a);
    if (rc < 0) {
        SH_LOG(SH_ERROR, "supervisor", "cannot start an instance; trying again in 1 s",
               LF_STR("id", in->id), LF_ERR("err", rc), LF_STR("why", sup_procs_errmsg(u->procs)));
        return rc;
    }
    in->started = true;
    in->cred_live = true;
    up_callers_publish(u);
    in->attempts = 0;
    in->rps = 0;
    in->gen++;
    in->registered = in->probing = false;
    in->probe_ok = 0;
    in->next_probe_ms = uv_now(&u->loop) + 20; /* a moment to bind its port */
    if (in->port && s->health.kind == MANIFEST_HEALTH_NONE) rc = register_instance(u, in);
    SH_LOG(SH_INFO, "supervisor", "instance started", LF_STR("id", in->id),
           LF_UINT("port", in->port));
    return rc;
}

/* A process of <in> started (is_started) or exited. An exited process's credential stops
 * working at once, and the process layer's restart (if any) gets a new one: the variables that
 * carry it are replaced in the environment of the next run before the mesh learns it. */
static void rotate_credential(struct up *u, struct up_instance *in, bool is_started)
{
    const struct manifest_service *s = &u->m->services[in->service];
    char url[256];
    int rc = 0;

    if (is_started) {
        in->cred_live = true;
        up_callers_publish(u);
        return;
    }
    in->cred_live = false;
    up_callers_publish(u);
    if (!u->mesh || new_secret(in) < 0) return; /* the next run keeps the old (dead) one */
    proxy_url(u, in, url, sizeof(url));
    for (size_t i = 0; rc == 0 && i < SH_ARRAY_LEN(mesh_env); i++) {
        if (mesh_env[i].value || service_sets(s, mesh_env[i].name)) continue;
        rc = sup_instance_setenv(u->procs, in->proc_id, mesh_env[i].name, url);
    }
    if (rc < 0 && rc != SH_ENOENT)
        SH_LOG(SH_WARN, "supervisor", "cannot renew the mesh credential of the next run",
               LF_STR("id", in->id), LF_ERR("err", rc));
}

/* The process layer restarts a crashed process by itself; this keeps the registry true to it.
 * A registered instance whose process exited leaves the registry at once, so the proxies stop
 * sending it requests within milliseconds instead of learning it from failures; once its
 * process is back it is registered again when its check passes (at once without a check). That
 * is a new registration: the proxies forget what they learnt about the old process (an outlier
 * ejection) and the restarted one takes traffic as soon as it is ready. */
void up_instance_event(struct up *u, const struct sup_event *ev)
{
    struct up_instance *in = NULL;

    if (ev->kind != SUP_EV_EXITED && ev->kind != SUP_EV_STARTED) return;
    for (size_t i = 0; i < u->ninst && !in; i++) {
        if (u->inst[i]->started && u->inst[i]->proc_id == ev->id) in = u->inst[i];
    }
    if (in) rotate_credential(u, in, ev->kind == SUP_EV_STARTED);
    if (!in || in->retiring || in->replacing || u->stopping) return;
    if (ev->kind == SUP_EV_EXITED) {
        if (in->registered && registry_deregister(u->cp.reg, in->id, NULL) < 0) {
            /* gone already: nothing to undo */
        }
        in->registered = false;
        in->gen++; /* a probe of the old process in flight is dropped when it answers */
        in->probing = false;
        in->probe_ok = 0;
        return;
    }
    in->next_probe_ms = uv_now(&u->loop) + 20; /* a moment to bind its port */
    if (in->port && !in->registered &&
        u->m->services[in->service].health.kind == MANIFEST_HEALTH_NONE &&
        register_instance(u, in) < 0) {
        /* logged; the next restart tries again */
    }
}

bool up_instance_ready(struct up *u, const struct up_instance *in)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct sup_instance_status st;
    struct registry_result res = {0};
    bool ok;

    if (!in->started || in->retiring || in->replacing ||
        sup_instance_status(u->procs, in->proc_id, &st) < 0 || st.pid == 0)
        return false;
    if (!in->port || s->health.kind == MANIFEST_HEALTH_NONE) return st.state == SUP_RUNNING;
    if (registry_instance_get(u->cp.reg, in->id, &res) < 0) return false;
    ok = res.instances[0].status == REGISTRY_PASSING;
    registry_result_release(&res);
    return ok;
}

uint32_t up_service_live(struct up *u, uint32_t service, uint32_t *ready)
{
    uint32_t live = 0, ok = 0;

    for (size_t i = 0; i < u->ninst; i++) {
        const struct up_instance *in = u->inst[i];
        if (in->service != service || in->retiring) continue;
        live++;
        if (ready) /* a registry lookup each: only when asked */
            ok += up_instance_ready(u, in);
    }
    if (ready) *ready = ok;
    return live;
}

int up_instance_info(struct up *u, const struct up_instance *in, struct up_instance_info *out)
{
    const struct manifest_service *s = &u->m->services[in->service];
    struct sup_instance_status st = {0};
    struct registry_result res = {0};
    uint64_t now = (uint64_t)sh_wall_ms();

    *out = (struct up_instance_info){.state = "waiting", .health = "-"};
    if (!in->started) return 0;
    if (sup_instance_status(u->procs, in->proc_id, &st) < 0) return SH_ENOENT;
    out->health = "none";
    if (s->health.kind != MANIFEST_HEALTH_NONE && in->port && !in->registered) {
        out->health = in->retiring || in->replacing ? "unregistered" : "pending";
    } else if (s->health.kind != MANIFEST_HEALTH_NONE && in->port) {
        int rc = registry_instance_get(u->cp.reg, in->id, &res);
        if (rc == SH_ENOMEM) return rc;
        out->health = rc == 0 ? registry_health_name(res.instances[0].status) : "unregistered";
        registry_result_release(&res);
    }
    out->state = in->retiring && !in->stop_sent && st.pid ? "draining" : sup_state_name(st.state);
    out->pid = st.pid;
    out->restarts = st.restarts + in->replaced;
    out->crash_loop = st.is_crash_loop;
    out->uptime_ms =
        st.pid && st.started_wall_ms && now > st.started_wall_ms ? now - st.started_wall_ms : 0;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Leaving: health replacement, retirement with drain
 * ------------------------------------------------------------------------------------------ */
/* Stops that were under way when shoal up began to stop are counted by up_instances_stop_all;
 * their callbacks report here. */
static void stop_counted(struct up *u)
{
    if (u->stopping) up_instance_stop_done(u);
}

static void retired_stopped(void *data, uint64_t id, const struct sup_exit *ex)
{
    struct up_instance *in = data;
    struct up *u = in->u;

    (void)ex;
    if (sup_instance_forget(u->procs, id) == 0) remove_instance(u, in);
    stop_counted(u);
}

static void replaced_stopped(void *data, uint64_t id, const struct sup_exit *ex)
{
    struct up_instance *in = data;
    struct up *u = in->u;

    if (in->retiring) { /* it was asked to leave while being replaced */
        retired_stopped(data, id, ex);
        return;
    }
    if (sup_instance_forget(u->procs, id) == 0) {
        in->replacing = false;
        in->pid_passed = 0;
        in->replaced++;
        in->started = false; /* the tick starts it again (and retries if that fails) */
        in->proc_id = 0;
    }
    stop_counted(u);
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

    if (!in->started || in->replacing || in->retiring || s->health.kind == MANIFEST_HEALTH_NONE ||
        sup_instance_status(u->procs, in->proc_id, &st) < 0 || st.pid == 0 ||
        registry_instance_get(u->cp.reg, in->id, &res) < 0)
        return;
    h = res.instances[0].status;
    registry_result_release(&res);
    if (h == REGISTRY_PASSING) {
        in->pid_passed = st.pid;
        return;
    }
    if (h != REGISTRY_CRITICAL || in->pid_passed != st.pid) return;
    SH_LOG(SH_WARN, "supervisor", "instance failed its health check; replacing it",
           LF_STR("id", in->id), LF_INT("pid", st.pid));
    in->replacing = true;
    in->registered = false;
    if (registry_deregister(u->cp.reg, in->id, NULL) < 0) {
        /* not registered any more: nothing to drain */
    }
    if (sup_instance_stop(u->procs, in->proc_id, s->stop_grace_ms, replaced_stopped, in) < 0)
        in->replacing = false;
}

/* The instance leaves for good: deregistered now, stopped once drained (drain()). */
static void retire(struct up *u, struct up_instance *in, const char *why)
{
    if (in->retiring) return;
    in->retiring = true;
    in->retire_ms = uv_now(&u->loop);
    SH_LOG(SH_INFO, "supervisor", "instance retiring", LF_STR("id", in->id), LF_STR("why", why));
    if (!in->started) {
        remove_instance(u, in);
        return;
    }
    if (in->registered && registry_deregister(u->cp.reg, in->id, NULL) < 0) {
        /* already gone: nothing to drain */
    }
    in->registered = false;
}

static bool proxies_list(struct up *u, const struct up_instance *in)
{
    const char *svc = u->m->services[in->service].name;

    return (u->gw && proxy_gateway_has_endpoint(u->gw, svc, in->endpoint)) ||
           (u->mesh && proxy_gateway_has_endpoint(u->mesh, svc, in->endpoint));
}

static void drain(struct up *u, struct up_instance *in)
{
    uint64_t now = uv_now(&u->loop);

    struct sup_instance_status st;
    bool idle; /* nothing to drain: no port, or no process running (backoff, crash loop) */

    if (!in->retiring || in->stop_sent || in->replacing) return;
    idle = !in->port || sup_instance_status(u->procs, in->proc_id, &st) < 0 || st.pid == 0;
    if (!in->left_ms && (idle || !proxies_list(u, in))) in->left_ms = now;
    if (!(in->left_ms && (now - in->left_ms >= UP_DRAIN_SETTLE_MS || idle)) &&
        now - in->retire_ms < UP_DRAIN_MAX_MS)
        return;
    in->stop_sent = true;
    SH_LOG(SH_INFO, "supervisor", "instance drained; stopping it", LF_STR("id", in->id),
           LF_UINT("drain_ms", now - in->retire_ms));
    if (sup_instance_stop(u->procs, in->proc_id, u->m->services[in->service].stop_grace_ms,
                          retired_stopped, in) < 0)
        in->stop_sent = false;
}

/* ------------------------------------------------------------------------------------------
 * Replica count, rolling restart
 * ------------------------------------------------------------------------------------------ */
/* Which instance of <service> leaves first (up_policy_victim), or NULL. */
static struct up_instance *victim(struct up *u, uint32_t service)
{
    struct up_member *m = sh_calloc(u->ninst + 1, sizeof(*m));
    struct up_instance **who = sh_calloc(u->ninst + 1, sizeof(*who));
    struct up_instance *out = NULL;
    size_t n = 0, k;

    for (size_t i = 0; m && who && i < u->ninst; i++) {
        struct up_instance *in = u->inst[i];
        if (in->service != service) continue;
        m[n] = (struct up_member){.ordinal = in->ordinal,
                                  .is_started = in->started,
                                  .is_ready = in->started && up_instance_ready(u, in),
                                  .is_retiring = in->retiring};
        who[n++] = in;
    }
    k = m && who ? up_policy_victim(m, n) : SIZE_MAX;
    if (k != SIZE_MAX) out = who[k];
    sh_free(m);
    sh_free(who);
    return out;
}

static void reconcile(struct up *u, uint32_t service)
{
    struct up_service *sv = &u->svc[service];
    int64_t delta = up_policy_reconcile(up_service_live(u, service, NULL), sv->want,
                                        sv->roll == UP_ROLL_RUNNING);

    for (; delta > 0; delta--) {
        if (!add_instance(u, service)) return;
    }
    for (; delta < 0; delta++) {
        struct up_instance *in = victim(u, service);
        if (!in) return;
        retire(u, in, "scaled down");
    }
}

static void roll_end(struct up *u, uint32_t service, enum up_roll_state st)
{
    struct up_service *sv = &u->svc[service];

    sv->roll = st;
    sh_free(sv->roll_old);
    sv->roll_old = NULL;
    sv->roll_new = sv->roll_cur = 0;
    SH_LOG(st == UP_ROLL_DONE ? SH_INFO : SH_ERROR, "supervisor",
           st == UP_ROLL_DONE ? "restart done" : "restart stopped",
           LF_STR("service", u->m->services[service].name), LF_STR("detail", sv->roll_msg));
}

int up_service_restart(struct up *u, uint32_t service, uint32_t *count)
{
    struct up_service *sv = &u->svc[service];
    uint32_t n = 0;

    if (sv->roll == UP_ROLL_RUNNING) return SH_EBUSY;
    sh_free(sv->roll_old);
    sv->roll_old = sh_calloc(u->ninst + 1, sizeof(*sv->roll_old));
    if (!sv->roll_old) return SH_ENOMEM;
    for (size_t i = 0; i < u->ninst; i++) {
        if (u->inst[i]->service == service && !u->inst[i]->retiring)
            sv->roll_old[n++] = u->inst[i]->ordinal;
    }
    *count = n;
    if (n == 0) {
        sh_free(sv->roll_old);
        sv->roll_old = NULL;
        return SH_ENOENT;
    }
    sv->roll = UP_ROLL_RUNNING;
    sv->roll_total = n;
    sv->roll_done = 0;
    sv->roll_new = sv->roll_cur = 0;
    sv->roll_started_ms = uv_now(&u->loop);
    snprintf(sv->roll_msg, sizeof(sv->roll_msg), "replaced 0 of %u", n);
    SH_LOG(SH_INFO, "supervisor", "restart", LF_STR("service", u->m->services[service].name),
           LF_UINT("instances", n));
    return 0;
}

/* One step of a rolling restart: a new instance (started beside the old one when the service's
 * port allows; else after the old one has gone), then, once it is ready, the old one retires. */
static void roll(struct up *u, uint32_t service)
{
    struct up_service *sv = &u->svc[service];
    const struct manifest_service *s = &u->m->services[service];
    uint64_t now = uv_now(&u->loop);
    struct up_instance *nw = NULL, *old;
    struct sup_instance_status st = {0};
    struct up_roll_view v = {.has_new = sv->roll_new != 0,
                             .done = sv->roll_done,
                             .total = sv->roll_total,
                             .waited_ms = now - sv->roll_step_ms,
                             .limit_ms = up_policy_roll_step_limit(s)};

    if (sv->roll != UP_ROLL_RUNNING) return;
    if (v.has_new) {
        nw = up_instance_find(u, service, sv->roll_new);
        v.is_new_gone = !nw;
        v.is_new_ready = nw && up_instance_ready(u, nw);
        if (nw && nw->started && sup_instance_status(u->procs, nw->proc_id, &st) < 0)
            st.is_crash_loop = false;
        v.is_crash_loop = st.is_crash_loop;
    } else {
        /* skip the old ones that left meanwhile: nothing to replace */
        for (; sv->roll_done < sv->roll_total; sv->roll_done++) {
            old = up_instance_find(u, service, sv->roll_old[sv->roll_done]);
            if (old && !old->retiring) break;
        }
        v.done = sv->roll_done;
    }
    switch (up_policy_roll(&v)) {
    case UP_ROLL_WAIT:
        return;
    case UP_ROLL_PROMOTE:
        old = up_instance_find(u, service, sv->roll_cur);
        if (old) retire(u, old, "restart");
        sv->roll_done++;
        sv->roll_new = sv->roll_cur = 0;
        snprintf(sv->roll_msg, sizeof(sv->roll_msg), "replaced %u of %u", sv->roll_done,
                 sv->roll_total);
        return;
    case UP_ROLL_ABORT:
        snprintf(sv->roll_msg, sizeof(sv->roll_msg),
                 "stopped after %u of %u: %s %s; the other instances keep running", sv->roll_done,
                 sv->roll_total, nw ? nw->id : "the new instance",
                 st.is_crash_loop ? "is crash-looping" : "did not become ready in time");
        if (nw) retire(u, nw, "restart failed");
        roll_end(u, service, UP_ROLL_ABORTED);
        return;
    case UP_ROLL_FINISHED:
        snprintf(sv->roll_msg, sizeof(sv->roll_msg), "%u instances replaced in %.1f s",
                 sv->roll_total, (double)(now - sv->roll_started_ms) / 1000.0);
        roll_end(u, service, UP_ROLL_DONE);
        return;
    case UP_ROLL_NEXT:
        break;
    }
    old = up_instance_find(u, service, sv->roll_old[sv->roll_done]);
    nw = add_instance(u, service);
    if (!nw) {
        snprintf(sv->roll_msg, sizeof(sv->roll_msg), "stopped: out of memory");
        roll_end(u, service, UP_ROLL_ABORTED);
        return;
    }
    sv->roll_new = nw->ordinal;
    sv->roll_cur = old->ordinal;
    sv->roll_step_ms = now;
    if (s->port && !s->is_port_auto) { /* one fixed port: the old one goes first */
        if (old->started) nw->waits_for = old->ordinal;
        retire(u, old, "restart"); /* frees it when it never started: not used after this */
    }
}

/* ------------------------------------------------------------------------------------------
 * The tick
 * ------------------------------------------------------------------------------------------ */
/* Every instance of every service <s> depends on is ready (a service scaled to 0 is not
 * waited for). */
static bool deps_ready(struct up *u, const struct manifest_service *s)
{
    for (size_t k = 0; k < s->depends_count; k++) {
        uint32_t dep = s->depends_idx[k], ready, live = up_service_live(u, dep, &ready);
        if (u->svc[dep].want && (live == 0 || ready < live)) return false;
    }
    return true;
}

void up_instances_tick(struct up *u)
{
    bool all = true;

    for (uint32_t s = 0; s < u->m->service_count; s++) {
        reconcile(u, s);
        roll(u, s);
    }
    for (size_t i = 0; i < u->ninst; i++) {
        struct up_instance *in = u->inst[i];
        if (!in->started && !in->retiring && !in->waits_for &&
            uv_now(&u->loop) >= in->start_after_ms && deps_ready(u, &u->m->services[in->service]) &&
            start_instance(u, in) < 0 && !in->started)
            in->start_after_ms = uv_now(&u->loop) + 1000;
    }
    for (size_t i = 0; i < u->ninst; i++)
        probe(u, u->inst[i]);
    if (uv_now(&u->loop) - u->health_checked_ms >= 500) { /* checks run every 1 s at most */
        u->health_checked_ms = uv_now(&u->loop);
        for (size_t i = 0; i < u->ninst; i++)
            check_health(u, u->inst[i]);
    }
    for (size_t i = u->ninst; i-- > 0;) /* backwards: a drain may remove the instance */
        drain(u, u->inst[i]);
    for (size_t i = 0; i < u->ninst && !u->all_healthy_logged; i++) {
        const struct up_instance *in = u->inst[i];
        if (!in->retiring && (!in->started || (in->port && !up_instance_ready(u, in)))) all = false;
    }
    if (all && !u->all_healthy_logged) {
        u->all_healthy_logged = true;
        SH_LOG(SH_INFO, "supervisor", "all instances healthy", LF_UINT("instances", u->ninst),
               LF_UINT("ms", uv_now(&u->loop) - u->started_ms));
    }
}

uint32_t up_instances_stop_all(struct up *u, sup_stop_fn *cb, void *data)
{
    uint32_t n = 0;

    for (size_t i = 0; i < u->ninst; i++) {
        struct up_instance *in = u->inst[i];
        if (!in->started) continue;
        if (in->replacing || (in->retiring && in->stop_sent)) {
            n++; /* its stop is under way: its callback reports (stop_counted) */
            continue;
        }
        if (in->registered && registry_deregister(u->cp.reg, in->id, NULL) < 0) {
            /* already gone: nothing to drain */
        }
        in->registered = false;
        if (sup_instance_stop(u->procs, in->proc_id, u->m->services[in->service].stop_grace_ms, cb,
                              data) == 0)
            n++;
    }
    return n;
}
