/* SPDX-License-Identifier: MIT */
/* process.c: service instances as child processes on a libuv loop (supervisor.h, "Processes").
 * Thread: the loop's thread only.
 *
 * Two objects with different lifetimes:
 * - struct sup_instance: what to run and what happened (state, restarts, backoff). It lives
 *   from sup_instance_start until forget or free, and owns one timer (start period, backoff
 *   reset, restart delay and stop grace: the state says which).
 * - struct run: one spawned process with its two output pipes. It lives until its three
 *   handles are closed, which happens after the exit callback; an instance points to its
 *   current run, and a run points back to its instance until the instance is dropped (then
 *   inst is NULL and the run only finishes closing).
 * The procs object itself is freed when sup_procs_free was called and its last handle closed.
 * Output capture is output.c, the reaper reaper.c, the trampoline child.c. */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

static const char *const state_names[] = {
    [SUP_STARTING] = "starting", [SUP_RUNNING] = "running", [SUP_STOPPING] = "stopping",
    [SUP_EXITED] = "exited",     [SUP_BACKOFF] = "backoff", [SUP_CRASH_LOOP] = "crash-loop",
};

const char *sup_state_name(enum sup_state st)
{
    if ((size_t)st < SH_ARRAY_LEN(state_names) && state_names[st]) return state_names[st];
    return "unknown";
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void strv_free(char **v)
{
    if (!v) return;
    for (size_t i = 0; v[i]; i++)
        sh_free(v[i]);
    sh_free(v);
}

static size_t strv_len(const char *const *v)
{
    size_t n = 0;

    while (v && v[n])
        n++;
    return n;
}

/* Appends copies of src to dst (room already reserved); 0 or SH_ENOMEM. */
static int strv_copy_into(char **dst, size_t *n, const char *const *src)
{
    for (size_t i = 0; src && src[i]; i++) {
        dst[*n] = sh_strdup(src[i]);
        if (!dst[*n]) return SH_ENOMEM;
        (*n)++;
    }
    return 0;
}

static size_t env_name_len(const char *kv)
{
    const char *eq = strchr(kv, '=');

    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Whether "NAME=..." <kv> is overridden by one of <over> (n entries). */
static bool env_overridden(const char *kv, char *const *over, size_t n)
{
    size_t len = env_name_len(kv);

    for (size_t i = 0; i < n; i++) {
        if (env_name_len(over[i]) == len && memcmp(over[i], kv, len) == 0) return true;
    }
    return false;
}

/* What ${NAME} in an env template may name (sup_instance_spec.env_templates). */
struct env_scope {
    const struct sup_instance_spec *spec;
    char port[8]; /* "" without a port */
};

static const char *env_lookup(void *data, struct slice name)
{
    const struct env_scope *sc = data;
    const char *const *env = sc->spec->env;

    if (sc->port[0] && (slice_eq(name, SLICE("PORT")) || slice_eq(name, SLICE("SHOAL_PORT"))))
        return sc->port;
    if (sc->spec->data_dir && slice_eq(name, SLICE("SHOAL_DATA_DIR"))) return sc->spec->data_dir;
    if (sc->spec->service && slice_eq(name, SLICE("SHOAL_SERVICE"))) return sc->spec->service;
    for (size_t i = 0; env && env[i]; i++) {
        if (env_name_len(env[i]) == name.len && !memcmp(env[i], name.ptr, name.len) &&
            env[i][name.len] == '=')
            return env[i] + name.len + 1;
    }
    for (size_t i = 0; environ[i]; i++) {
        if (env_name_len(environ[i]) == name.len && !memcmp(environ[i], name.ptr, name.len) &&
            environ[i][name.len] == '=')
            return environ[i] + name.len + 1;
    }
    return NULL;
}

/* Appends the expanded templates to dst (room reserved). 0, or a negative code with
 * procs->errmsg naming the variable: nothing is dropped or cut silently. */
static int expand_templates(struct sup_procs *procs, const struct sup_instance_spec *spec,
                            uint16_t port, char **dst, size_t *n)
{
    struct env_scope sc = {.spec = spec};

    if (port) snprintf(sc.port, sizeof(sc.port), "%u", (unsigned)port);
    for (size_t i = 0; spec->env_templates && spec->env_templates[i]; i++) {
        const char *t = spec->env_templates[i];
        size_t len = env_name_len(t);
        struct buf b = BUF_INIT(len + 1 + SUP_ENV_VALUE_MAX);
        struct sh_diag d = {{0}, {0}};
        int rc;

        buf_append(&b, t, len);
        buf_appendc(&b, '=');
        rc = b.err;
        if (rc == 0 && t[len] == '=')
            rc = sup_env_expand(slice_from_cstr(t + len + 1), env_lookup, &sc, &b, &d);
        if (rc < 0) {
            if (rc == SH_ETOOBIG)
                snprintf(d.what, sizeof(d.what), "longer than %u bytes once expanded",
                         SUP_ENV_VALUE_MAX);
            snprintf(procs->errmsg, sizeof(procs->errmsg), "env %.*s: %s", (int)SH_MIN(len, 64), t,
                     d.what[0] ? d.what : sh_strerror(rc));
            buf_release(&b);
            return rc;
        }
        dst[(*n)++] = buf_detach(&b, NULL);
    }
    return 0;
}

/* Builds shoal's environment with <extra>, the expanded templates and the port and data
 * directory variables on top. */
static int build_env(struct sup_procs *procs, const struct sup_instance_spec *spec, uint16_t port,
                     char ***out)
{
    size_t nbase = strv_len((const char *const *)environ), nextra = strv_len(spec->env);
    size_t ntmpl = strv_len(spec->env_templates), n = 0, nover;
    char **over = NULL, **env = NULL;
    int rc = SH_ENOMEM;

    *out = NULL;
    /* The overriding variables first, so the inherited ones can be checked against them. */
    over = sh_calloc(nextra + ntmpl + 5, sizeof(*over));
    if (!over) goto fail;
    rc = strv_copy_into(over, &n, spec->env);
    if (rc == 0) rc = expand_templates(procs, spec, port, over, &n);
    if (rc < 0) goto fail;
    rc = SH_ENOMEM;
    if (spec->data_dir) {
        size_t len = sizeof("SHOAL_DATA_DIR=") + strlen(spec->data_dir);

        over[n] = sh_malloc(len);
        if (!over[n]) goto fail;
        snprintf(over[n++], len, "SHOAL_DATA_DIR=%s", spec->data_dir);
    }
    if (port) {
        char tmp[32];

        snprintf(tmp, sizeof(tmp), "PORT=%u", (unsigned)port);
        over[n] = sh_strdup(tmp);
        if (!over[n++]) goto fail;
        snprintf(tmp, sizeof(tmp), "SHOAL_PORT=%u", (unsigned)port);
        over[n] = sh_strdup(tmp);
        if (!over[n++]) goto fail;
    }
    if (procs->trampoline) {
        char tmp[48];

        snprintf(tmp, sizeof(tmp), SUPERVISOR_PID_VAR "=%ld", (long)getpid());
        over[n] = sh_strdup(tmp);
        if (!over[n++]) goto fail;
    }
    nover = n;
    env = sh_calloc(nbase + nover + 1, sizeof(*env));
    if (!env) goto fail;
    n = 0;
    for (size_t i = 0; i < nbase; i++) {
        if (env_overridden(environ[i], over, nover)) continue;
        env[n] = sh_strdup(environ[i]);
        if (!env[n++]) goto fail;
    }
    /* Later duplicates in <over> win for getenv, which takes the first match: keep the last. */
    for (size_t i = 0; i < nover; i++) {
        if (env_overridden(over[i], over + i + 1, nover - i - 1)) {
            sh_free(over[i]);
        } else {
            env[n++] = over[i];
        }
        over[i] = NULL;
    }
    sh_free(over);
    *out = env;
    return 0;
fail:
    strv_free(over);
    strv_free(env);
    return rc;
}

/* A free loopback TCP port: bind port 0, read what the kernel picked, close. */
static int pick_port(uint16_t *out)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd, rc = 0;

    *out = 0;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) == -1)
        rc = -errno;
    else
        *out = ntohs(sa.sin_port);
    close(fd);
    return rc;
}

static void emit(struct sup_procs *procs, const struct sup_event *ev)
{
    if (procs->cfg.on_event) {
        procs->cfg.on_event(procs->cfg.data, ev);
        return;
    }
    sup_event_log(ev);
}

void sup_event_log(const struct sup_event *ev)
{
    switch (ev->kind) {
    case SUP_EV_STARTED:
        SH_LOG(SH_INFO, "supervisor", "instance started", LF_STR("service", ev->service),
               LF_UINT("id", ev->id), LF_INT("pid", ev->pid));
        break;
    case SUP_EV_EXITED:
        SH_LOG(SH_INFO, "supervisor", "instance exited", LF_STR("service", ev->service),
               LF_UINT("id", ev->id), LF_INT("pid", ev->pid), LF_INT("status", ev->exit.status),
               LF_INT("signal", ev->exit.signal));
        break;
    case SUP_EV_BACKOFF:
        SH_LOG(SH_INFO, "supervisor", "instance restarting", LF_STR("service", ev->service),
               LF_UINT("id", ev->id), LF_UINT("delay_ms", ev->delay_ms),
               LF_UINT("restarts", ev->restarts));
        break;
    case SUP_EV_CRASH_LOOP:
        SH_LOG(SH_WARN, "supervisor", "instance is crash-looping", LF_STR("service", ev->service),
               LF_UINT("id", ev->id), LF_UINT("delay_ms", ev->delay_ms),
               LF_UINT("restarts", ev->restarts));
        break;
    case SUP_EV_SPAWN_FAILED:
        SH_LOG(SH_ERROR, "supervisor", "instance could not be spawned",
               LF_STR("service", ev->service), LF_UINT("id", ev->id),
               LF_ERR("err", ev->exit.status));
        break;
    }
}

static void emit_simple(struct sup_instance *inst, enum sup_event_kind kind, int pid)
{
    struct sup_event ev = {.kind = kind,
                           .id = inst->id,
                           .service = inst->service,
                           .pid = pid,
                           .exit = inst->last_exit,
                           .restarts = inst->restarts};

    emit(inst->procs, &ev);
}

/* Frees procs once sup_procs_free was called and nothing is open any more. */
static void procs_maybe_release(struct sup_procs *procs)
{
    if (!procs->is_freeing || procs->open_handles > 0) return;
    strv_free(procs->trampoline);
    sh_free(procs->items);
    sh_free(procs);
}

void sup__handle_closed(struct sup_procs *procs)
{
    procs->open_handles--;
    procs_maybe_release(procs);
}

void sup__run_handle_closed(uv_handle_t *h)
{
    struct run *run = h->type == UV_PROCESS ? h->data : ((struct out_stream *)h->data)->run;
    struct sup_procs *procs = run->procs;

    if (--run->open_handles == 0) {
        sh_free(run->out[0].line);
        sh_free(run->out[1].line);
        sh_free(run);
    }
    sup__handle_closed(procs);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);
static void on_process_exit(uv_process_t *p, int64_t exit_status, int term_signal);

/* Spawns inst's next run. 0 or a negative code (nothing left open then). */
static int spawn_run(struct sup_instance *inst)
{
    struct sup_procs *procs = inst->procs;
    uv_stdio_container_t stdio[3];
    uv_process_options_t opt;
    struct run *run;
    int rc;

    run = sh_calloc(1, sizeof(*run));
    if (!run) return SH_ENOMEM;
    run->inst = inst;
    run->procs = procs;
    for (int i = 0; i < 2; i++) {
        run->out[i].run = run;
        run->out[i].which = i == 0 ? SUP_STDOUT : SUP_STDERR;
        run->out[i].line = sh_malloc(procs->cfg.max_line_bytes);
        if (!run->out[i].line) {
            sh_free(run->out[0].line);
            sh_free(run);
            return SH_ENOMEM;
        }
    }
    for (int i = 0; i < 2; i++) {
        uv_pipe_init(procs->loop, &run->out[i].pipe, 0);
        run->out[i].pipe.data = &run->out[i];
        run->out[i].is_reading = true;
    }
    run->open_handles = 3;
    procs->open_handles += 3;

    memset(&opt, 0, sizeof(opt));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    for (int i = 0; i < 2; i++) {
        stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[i + 1].data.stream = (uv_stream_t *)&run->out[i].pipe;
    }
    opt.file = inst->argv[0];
    opt.args = inst->argv;
    opt.env = inst->env;
    opt.cwd = inst->cwd;
    opt.flags = UV_PROCESS_DETACHED; /* setsid(): its own session and process group */
    opt.stdio = stdio;
    opt.stdio_count = 3;
    opt.exit_cb = on_process_exit;
    run->proc.data = run;
    rc = uv_spawn(procs->loop, &run->proc, &opt);
    if (rc != 0) {
        /* libuv: a failed spawn still needs its handle closed. */
        run->inst = NULL;
        for (int i = 0; i < 2; i++) {
            run->out[i].is_reading = false;
            uv_close((uv_handle_t *)&run->out[i].pipe, sup__run_handle_closed);
        }
        uv_close((uv_handle_t *)&run->proc, sup__run_handle_closed);
        return rc;
    }
    for (int i = 0; i < 2; i++)
        sup__stream_start(&run->out[i]);
    run->pid = run->proc.pid;
    sup__reaper_note(procs, '+', run->pid);
    inst->run = run;
    inst->state = SUP_STARTING;
    inst->started_ms = sh_now_ms();
    inst->started_wall_ms = sh_wall_ms();
    uv_timer_start(&inst->timer, on_timer, procs->cfg.start_period_ms, 0);
    emit_simple(inst, SUP_EV_STARTED, run->pid);
    return 0;
}

/* Records a restart now; true when that makes a crash loop. */
static bool note_restart(struct sup_instance *inst, uint64_t now)
{
    const struct sup_procs_config *cfg = &inst->procs->cfg;
    size_t n = cfg->crash_loop_restarts;
    uint64_t oldest;

    inst->restart_at[inst->ring_pos] = now;
    inst->ring_pos = (inst->ring_pos + 1) % n;
    if (inst->ring_len < n) inst->ring_len++;
    if (inst->ring_len < n) return false;
    oldest = inst->restart_at[inst->ring_pos]; /* the slot written n restarts ago */
    return now - oldest <= cfg->crash_loop_window_ms;
}

/* The process ended (or could not be spawned): restart per policy, or settle as EXITED. */
static void after_exit(struct sup_instance *inst, bool is_failure)
{
    const struct sup_procs_config *cfg = &inst->procs->cfg;
    bool again = inst->restart == SUP_RESTART_ALWAYS ||
                 (inst->restart == SUP_RESTART_ON_FAILURE && is_failure);
    struct sup_event ev;
    uint64_t now = sh_now_ms();
    uint32_t delay;

    if (!again) {
        inst->state = SUP_EXITED;
        return;
    }
    if (inst->started_ms && now - inst->started_ms >= cfg->backoff_reset_ms) {
        /* it ran long enough: this exit is a first failure, not part of a loop (the on_timer
         * case below does the same, for when the timer fired before the exit was seen) */
        inst->backoff_ms = cfg->backoff_initial_ms;
        inst->is_crash_loop = false;
        inst->ring_len = 0;
    }
    inst->restarts++;
    if (note_restart(inst, now)) inst->is_crash_loop = true;
    if (inst->is_crash_loop) {
        delay = cfg->backoff_max_ms;
        inst->state = SUP_CRASH_LOOP;
    } else {
        delay = inst->backoff_ms;
        inst->state = SUP_BACKOFF;
    }
    inst->backoff_ms = (uint32_t)SH_MIN((uint64_t)inst->backoff_ms * 2, cfg->backoff_max_ms);
    uv_timer_start(&inst->timer, on_timer, delay, 0);
    ev = (struct sup_event){.kind = inst->is_crash_loop ? SUP_EV_CRASH_LOOP : SUP_EV_BACKOFF,
                            .id = inst->id,
                            .service = inst->service,
                            .exit = inst->last_exit,
                            .delay_ms = delay,
                            .restarts = inst->restarts};
    emit(inst->procs, &ev);
}

static void finish_stop(struct sup_instance *inst)
{
    sup_stop_fn *cb = inst->stop_cb;
    void *data = inst->stop_data;
    struct sup_exit ex = inst->last_exit;

    inst->state = SUP_EXITED;
    inst->is_stop_cb_pending = false;
    inst->stop_cb = NULL;
    inst->stop_data = NULL;
    if (cb) cb(data, inst->id, &ex); /* last: the callback may forget the instance */
}

static void on_process_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct run *run = p->data;
    struct sup_instance *inst = run->inst;
    int pid = run->pid;

    /* What is left of the group (the main process's own children) goes with it. The group id
     * cannot have been reused: Linux keeps a pid out of use while a group of that id exists. */
    kill(-pid, SIGKILL);
    sup__reaper_note(run->procs, '-', pid);
    sup__stream_drain(&run->out[0]);
    sup__stream_drain(&run->out[1]);
    uv_close((uv_handle_t *)&run->proc, sup__run_handle_closed);
    inst = run->inst; /* a line callback may not drop it, but read it after them anyway */
    if (!inst) return;
    run->inst = NULL;
    inst->run = NULL;
    uv_timer_stop(&inst->timer);
    inst->has_exited = true;
    inst->last_exit = (struct sup_exit){.status = exit_status, .signal = term_signal};
    emit_simple(inst, SUP_EV_EXITED, pid);
    if (inst->is_stop_requested) {
        finish_stop(inst);
        return;
    }
    after_exit(inst, exit_status != 0 || term_signal != 0);
}

static void on_timer(uv_timer_t *t)
{
    struct sup_instance *inst = t->data;
    const struct sup_procs_config *cfg = &inst->procs->cfg;
    int rc;

    switch (inst->state) {
    case SUP_STARTING:
    case SUP_RUNNING:
        if (inst->state == SUP_STARTING) {
            inst->state = SUP_RUNNING;
            if (cfg->backoff_reset_ms > cfg->start_period_ms) {
                uv_timer_start(&inst->timer, on_timer, cfg->backoff_reset_ms - cfg->start_period_ms,
                               0);
                break;
            }
        }
        /* Up for backoff_reset_ms: the next failure starts from the first delay again, and
         * the restarts before it no longer count toward a crash loop (Kubernetes forgets
         * after 10 min of running; we forget after backoff_reset_ms, 10 s by default, since
         * an instance here is judged by its health check, not by its uptime). */
        inst->backoff_ms = cfg->backoff_initial_ms;
        inst->is_crash_loop = false;
        inst->ring_len = 0;
        break;
    case SUP_STOPPING:
        if (inst->run) /* the grace is over */
            kill(-inst->run->pid, SIGKILL);
        break;
    case SUP_BACKOFF:
    case SUP_CRASH_LOOP:
        rc = spawn_run(inst);
        if (rc < 0) {
            inst->has_exited = true;
            inst->last_exit = (struct sup_exit){.status = rc};
            inst->started_ms = 0;
            emit_simple(inst, SUP_EV_SPAWN_FAILED, 0);
            after_exit(inst, true);
        }
        break;
    case SUP_EXITED:
        if (inst->is_stop_cb_pending) finish_stop(inst);
        break;
    }
}

static void inst_timer_closed(uv_handle_t *h)
{
    struct sup_instance *inst = h->data;
    struct sup_procs *procs = inst->procs;

    sh_free(inst->service);
    strv_free(inst->argv);
    strv_free(inst->env);
    sh_free(inst->cwd);
    sh_free(inst);
    sup__handle_closed(procs);
}

/* Detaches inst from its run (SIGKILL to the group if it still runs) and closes its timer;
 * inst is freed in the close callback. */
static void inst_drop(struct sup_instance *inst)
{
    if (inst->run) {
        kill(-inst->run->pid, SIGKILL);
        inst->run->inst = NULL;
        inst->run = NULL;
    }
    uv_timer_stop(&inst->timer);
    uv_close((uv_handle_t *)&inst->timer, inst_timer_closed);
}

static struct sup_instance *find(const struct sup_procs *procs, uint64_t id, size_t *index)
{
    for (size_t i = 0; i < procs->count; i++) {
        if (procs->items[i]->id == id) {
            if (index) *index = i;
            return procs->items[i];
        }
    }
    return NULL;
}

/* ---- public ----------------------------------------------------------------------------- */

int sup_procs_new(const struct sup_procs_config *cfg, uv_loop_t *loop, struct sup_procs **out)
{
    struct sup_procs *procs;
    size_t n = 0;

    *out = NULL;
    if (!loop || cfg->crash_loop_restarts > CRASH_RING_MAX) return SH_EINVAL;
    procs = sh_calloc(1, sizeof(*procs));
    if (!procs) return SH_ENOMEM;
    procs->loop = loop;
    procs->cfg = *cfg;
    procs->next_id = 1;
    procs->reaper_fd = -1;
    if (cfg->trampoline && cfg->trampoline[0]) {
        procs->trampoline_count = strv_len(cfg->trampoline);
        procs->trampoline = sh_calloc(procs->trampoline_count + 1, sizeof(char *));
        if (!procs->trampoline || strv_copy_into(procs->trampoline, &n, cfg->trampoline) < 0) {
            strv_free(procs->trampoline);
            sh_free(procs);
            return SH_ENOMEM;
        }
    }
    procs->cfg.trampoline = (const char *const *)procs->trampoline;
    procs->cfg.reaper = NULL;
    if (cfg->reaper && cfg->reaper[0]) {
        int rc = sup__reaper_start(procs, cfg->reaper);
        if (rc < 0) {
            procs->is_freeing = true;
            procs_maybe_release(procs); /* after the loop closes the reaper's handle */
            return rc;
        }
    }
    SH_DEFAULT(procs->cfg.start_period_ms, 1000);
    SH_DEFAULT(procs->cfg.backoff_initial_ms, 100);
    SH_DEFAULT(procs->cfg.backoff_max_ms, 30000);
    SH_DEFAULT(procs->cfg.backoff_reset_ms, 10000);
    SH_DEFAULT(procs->cfg.crash_loop_restarts, 5);
    SH_DEFAULT(procs->cfg.crash_loop_window_ms, 60000);
    SH_DEFAULT(procs->cfg.max_line_bytes, SUP_MAX_LINE_BYTES);
    if (procs->cfg.backoff_initial_ms > procs->cfg.backoff_max_ms)
        procs->cfg.backoff_initial_ms = procs->cfg.backoff_max_ms;
    *out = procs;
    return 0;
}

void sup_procs_free(struct sup_procs *procs)
{
    if (!procs) return;
    procs->is_freeing = true;
    for (size_t i = 0; i < procs->count; i++)
        inst_drop(procs->items[i]);
    procs->count = 0;
    if (procs->reaper_fd >= 0) { /* every group is killed: the reaper ends on EOF */
        close(procs->reaper_fd);
        procs->reaper_fd = -1;
    }
    procs_maybe_release(procs);
}

const char *sup_procs_errmsg(const struct sup_procs *procs)
{
    return procs->errmsg;
}

/* mkdir -p <path> with mode 0700 for what it creates; 0 or -errno with procs->errmsg set. */
static int make_data_dir(struct sup_procs *procs, const char *path)
{
    char tmp[4096];
    struct stat st;
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp)) {
        snprintf(procs->errmsg, sizeof(procs->errmsg), "data directory: path too long");
        return SH_ETOOBIG;
    }
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
            int rc = -errno;
            snprintf(procs->errmsg, sizeof(procs->errmsg), "data directory %.200s: %s", tmp,
                     sh_strerror(rc));
            return rc;
        }
        tmp[i] = i < len ? '/' : '\0';
    }
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(procs->errmsg, sizeof(procs->errmsg), "data directory %.200s: not a directory",
                 path);
        return -ENOTDIR;
    }
    return 0;
}

int sup_instance_setenv(struct sup_procs *procs, uint64_t id, const char *name, const char *value)
{
    struct sup_instance *inst = find(procs, id, NULL);
    size_t nlen = strlen(name), vlen = strlen(value), n;
    char *kv, **grown;

    if (!inst) return SH_ENOENT;
    kv = sh_malloc(nlen + vlen + 2);
    if (!kv) return SH_ENOMEM;
    memcpy(kv, name, nlen);
    kv[nlen] = '=';
    memcpy(kv + nlen + 1, value, vlen + 1);
    for (n = 0; inst->env[n]; n++) {
        if (!strncmp(inst->env[n], name, nlen) && inst->env[n][nlen] == '=') {
            sh_free(inst->env[n]);
            inst->env[n] = kv;
            return 0;
        }
    }
    grown = sh_realloc(inst->env, (n + 2) * sizeof(*grown));
    if (!grown) {
        sh_free(kv);
        return SH_ENOMEM;
    }
    grown[n] = kv;
    grown[n + 1] = NULL;
    inst->env = grown;
    return 0;
}

int sup_instance_start(struct sup_procs *procs, const struct sup_instance_spec *spec,
                       uint64_t *out_id)
{
    struct sup_instance *inst = NULL;
    size_t nargv = strv_len(spec->argv), n = 0;
    int rc = SH_ENOMEM;

    *out_id = 0;
    procs->errmsg[0] = '\0';
    if (nargv == 0 || procs->is_freeing) return SH_EINVAL;
    if (spec->data_dir) {
        rc = make_data_dir(procs, spec->data_dir);
        if (rc < 0) return rc;
        rc = SH_ENOMEM;
    }
    SH_TRY(sh_array_reserve(&procs->items, &procs->cap, procs->count + 1, sizeof(*procs->items)));
    inst = sh_calloc(1, sizeof(*inst));
    if (!inst) return SH_ENOMEM;
    inst->procs = procs;
    inst->restart = spec->restart;
    inst->port = spec->port;
    inst->backoff_ms = procs->cfg.backoff_initial_ms;
    inst->service = sh_strdup(spec->service ? spec->service : "");
    inst->argv = sh_calloc(procs->trampoline_count + nargv + 1, sizeof(char *));
    if (!inst->service || !inst->argv) goto fail;
    if (strv_copy_into(inst->argv, &n, procs->cfg.trampoline) < 0 ||
        strv_copy_into(inst->argv, &n, spec->argv) < 0)
        goto fail;
    if (spec->cwd) {
        inst->cwd = sh_strdup(spec->cwd);
        if (!inst->cwd) goto fail;
    }
    if (spec->is_port_auto) {
        rc = pick_port(&inst->port);
        if (rc < 0) goto fail;
    }
    rc = build_env(procs, spec, inst->port, &inst->env);
    if (rc < 0) goto fail;
    uv_timer_init(procs->loop, &inst->timer);
    inst->timer.data = inst;
    procs->open_handles++;
    inst->id = procs->next_id;
    procs->items[procs->count++] = inst; /* before the STARTED event, for its status calls */
    rc = spawn_run(inst);
    if (rc < 0) {
        procs->count--;
        uv_close((uv_handle_t *)&inst->timer, inst_timer_closed);
        return rc;
    }
    procs->next_id++;
    *out_id = inst->id;
    return 0;
fail:
    sh_free(inst->service);
    strv_free(inst->argv);
    strv_free(inst->env);
    sh_free(inst->cwd);
    sh_free(inst);
    return rc;
}

int sup_instance_stop(struct sup_procs *procs, uint64_t id, uint32_t grace_ms, sup_stop_fn *cb,
                      void *data)
{
    struct sup_instance *inst = find(procs, id, NULL);

    if (!inst) return SH_ENOENT;
    if (inst->is_stop_requested && (inst->state == SUP_STOPPING || inst->is_stop_cb_pending))
        return SH_EBUSY;
    inst->is_stop_requested = true;
    inst->stop_cb = cb;
    inst->stop_data = data;
    uv_timer_stop(&inst->timer);
    if (inst->run) {
        inst->state = SUP_STOPPING;
        kill(-inst->run->pid, grace_ms ? SIGTERM : SIGKILL);
        if (grace_ms) uv_timer_start(&inst->timer, on_timer, grace_ms, 0);
        return 0;
    }
    /* Nothing runs (backoff, crash-loop or exited): report from the loop, not from here. */
    inst->state = SUP_EXITED;
    inst->is_stop_cb_pending = true;
    uv_timer_start(&inst->timer, on_timer, 0, 0);
    return 0;
}

int sup_instance_forget(struct sup_procs *procs, uint64_t id)
{
    size_t i;
    struct sup_instance *inst = find(procs, id, &i);

    if (!inst) return SH_ENOENT;
    if (inst->state != SUP_EXITED || inst->run || inst->is_stop_cb_pending) return SH_EBUSY;
    memmove(procs->items + i, procs->items + i + 1, (procs->count - i - 1) * sizeof(*procs->items));
    procs->count--;
    inst_drop(inst);
    return 0;
}

static void fill_status(const struct sup_instance *inst, struct sup_instance_status *out)
{
    *out = (struct sup_instance_status){
        .id = inst->id,
        .service = inst->service,
        .pid = inst->run ? inst->run->pid : 0,
        .port = inst->port,
        .state = inst->state,
        .is_crash_loop = inst->is_crash_loop,
        .restarts = inst->restarts,
        .has_exited = inst->has_exited,
        .last_exit = inst->last_exit,
        .started_wall_ms = inst->started_wall_ms,
    };
}

int sup_instance_status(const struct sup_procs *procs, uint64_t id, struct sup_instance_status *out)
{
    const struct sup_instance *inst = find(procs, id, NULL);

    if (!inst) {
        memset(out, 0, sizeof(*out));
        return SH_ENOENT;
    }
    fill_status(inst, out);
    return 0;
}

size_t sup_procs_status(const struct sup_procs *procs, struct sup_instance_status *out, size_t cap)
{
    for (size_t i = 0; i < procs->count && i < cap; i++)
        fill_status(procs->items[i], &out[i]);
    return procs->count;
}
