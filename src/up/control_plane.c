/* SPDX-License-Identifier: MIT */
/* control_plane.c: see control_plane.h. */
#include "up/up.h"

#include "cli/cli.h"
#include "observe/observe.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void tick(uv_timer_t *t)
{
    struct control_plane *cp = t->data;
    int rc = store_tick(cp->store); /* expires leases */

    if (rc < 0)
        SH_LOG(SH_ERROR, "store", "lease expiry failed", LF_ERR("err", rc),
               LF_STR("detail", store_errmsg(cp->store)));
    if (cp->ca) sec_ca_tick(cp->ca, sh_wall_ms());
}

static bool is_unsynced(void *data)
{
    struct control_plane *cp = data;

    return cp->store && store_is_unsynced(cp->store);
}

/* The batch's writes are already in the registry's and the KV's memory, and watchers may have
 * been woken by them: after a failed commit nothing here is true any more. Stop, as etcd and
 * PostgreSQL do on a failed WAL fsync; no answer for those writes has left (http_barrier), and
 * a restart reads the store as it was before the batch. */
static void sync_now(void *data)
{
    struct control_plane *cp = data;
    int rc = cp->store ? store_sync(cp->store) : 0;

    if (rc == 0) return;
    SH_LOG(SH_ERROR, "store",
           "commit failed: stopping (the store keeps every write acknowledged "
           "before this one)",
           LF_ERR("err", rc), LF_STR("detail", store_errmsg(cp->store)));
    fprintf(stderr, "shoal: the store's commit failed (%s: %s); stopping.\n", sh_strerror(rc),
            store_errmsg(cp->store));
    fflush(NULL);
    _exit(70); /* not exit(): other threads (proxy workers, the view) are still running */
}

static void sync_io_cb(uv_check_t *h)
{
    if (is_unsynced(h->data)) sync_now(h->data);
}

static void sync_late_cb(uv_prepare_t *h)
{
    if (is_unsynced(h->data)) sync_now(h->data);
}

/* Frees what runs on the loop (not the store). */
static void release(struct control_plane *cp)
{
    admin_free(cp->admin);
    cp->admin = NULL;
    registry_free(cp->reg);
    cp->reg = NULL;
    http_client_free(cp->client);
    cp->client = NULL;
    cfgkv_free(cp->kv);
    cp->kv = NULL;
    sec_tokens_free(cp->tokens);
    cp->tokens = NULL;
    sec_audit_close(cp->audit);
    cp->audit = NULL;
    sec_itable_free(cp->intentions);
    cp->intentions = NULL;
    sec_ca_free(cp->ca);
    cp->ca = NULL;
    if (cp->has_tick) {
        uv_close((uv_handle_t *)&cp->tick, NULL);
        uv_close((uv_handle_t *)&cp->sync_io, NULL);
        uv_close((uv_handle_t *)&cp->sync_late, NULL);
        cp->has_tick = false;
    }
}

/* DATA_DIR/logs.sqlite (the store made the directory). Without it, a warning: GET /v1/logs
 * answers from the supervisor's last lines. */
static void open_logs(struct control_plane *cp, const char *data_dir)
{
    char path[4096];
    struct sh_diag d = {{0}, {0}};
    int rc;

    snprintf(path, sizeof(path), "%s/logs.sqlite", data_dir);
    rc = obs_logs_open(&(struct obs_logs_config){.path = path}, &cp->logs, &d);
    if (rc < 0)
        SH_LOG(SH_WARN, "observe",
               "no log store: shoal logs shows the last 10,000 lines, without search",
               LF_STR("file", path), LF_STR("error", d.what), LF_ERR("err", rc));
}

/* The CA: DATA_DIR/ca (made on first start), or the external one the config names. */
static int open_ca(struct control_plane *cp, const struct control_plane_config *cfg,
                   struct sh_diag *d)
{
    struct sec_ca_config c = cfg->ca ? *cfg->ca : (struct sec_ca_config){0};
    char dir[4096];

    if ((size_t)snprintf(dir, sizeof(dir), "%s/ca", cfg->data_dir) >= sizeof(dir)) {
        sh_diag_set(d, "data_dir", "the path is too long");
        return SH_ETOOBIG;
    }
    c.dir = dir;
    return sec_ca_open(&c, sh_wall_ms(), &cp->ca, d);
}

/* The runtime file of the admin address (its actual port: "127.0.0.1:0" works too). */
static void publish(struct control_plane *cp, const struct control_plane_config *cfg)
{
    const char *listen = cfg->listen ? cfg->listen : "127.0.0.1:7700";
    const char *colon = strrchr(listen, ':');
    char addr[128];
    int rc;

    snprintf(addr, sizeof(addr), "%.*s:%u", colon ? (int)(colon - listen) : 0, listen,
             (unsigned)admin_port(cp->admin));
    rc = cli_runtime_publish(addr, cfg->data_dir, cp->runtime_file, sizeof(cp->runtime_file));
    if (rc < 0)
        SH_LOG(SH_WARN, "admin",
               "the CLI will need the token (--token, --data-dir): cannot "
               "publish the data directory in the runtime directory",
               LF_STR("addr", addr), LF_ERR("err", rc));
}

int control_plane_open(uv_loop_t *loop, const struct control_plane_config *cfg,
                       struct control_plane *cp, struct sh_diag *d)
{
    bool created = false;
    char path[4096];
    int rc;

    memset(cp, 0, sizeof(*cp));
    SH_TRY(store_open(&(struct store_config){.data_dir = cfg->data_dir, .is_group_commit = true},
                      &cp->store, d));
    if (cfg->token && strlen(cfg->token) >= sizeof(cp->token)) {
        sh_diag_set(d, "token", "the token is longer than %d characters", SH_TOKEN_MAX_LEN);
        return SH_ETOOBIG;
    } else if (cfg->token) {
        snprintf(cp->token, sizeof(cp->token), "%s", cfg->token);
    } else {
        rc = admin_token_load(cfg->data_dir, cp->token, sizeof(cp->token), &created, d);
        if (rc < 0) return rc;
        if (created)
            fprintf(stderr,
                    "%s: a new API token was written to %s/token (shown once):\n"
                    "  export SHOAL_TOKEN=%s\n",
                    cfg->who, cfg->data_dir, cp->token);
    }
    snprintf(path, sizeof(path), "%s/traces.sqlite", cfg->data_dir);
    SH_TRY(obs_spans_open(&(struct obs_spans_config){.path = path}, &cp->spans, d));
    if (cfg->has_logs) open_logs(cp, cfg->data_dir);
    rc = cfg->has_history ? obs_history_new(NULL, &cp->history) : 0;
    if (rc < 0) {
        sh_diag_set(d, "metrics history", "cannot make it: %s", sh_strerror(rc));
        return rc;
    }
    rc = sec_tokens_open(cp->store, cp->token, &cp->tokens, d);
    if (rc == 0) rc = sec_audit_open(cfg->data_dir, 0, &cp->audit, d);
    if (rc == 0)
        rc = sec_itable_open(cp->store, !cfg->default_deny, cfg->intentions, cfg->intention_count,
                             cfg->intentions_changed, cfg->intentions_data, &cp->intentions, d);
    if (rc == 0) rc = open_ca(cp, cfg, d);
    if (rc == 0) rc = cfgkv_new(&(struct cfgkv_config){0}, loop, cp->store, &cp->kv);
    if (rc == 0)
        rc = http_client_new(loop, &(struct http_client_config){.max_idle_per_host = 2},
                             &cp->client);
    if (rc == 0)
        rc = registry_new(&(struct registry_config){0}, loop, cp->store, cp->client, &cp->reg);
    if (rc == 0)
        rc = admin_new(loop,
                       &(struct admin_config){
                           .listen = cfg->listen,
                           .zipkin_listen = cfg->zipkin_listen,
                           .tokens = cp->tokens,
                           .audit = cp->audit,
                           .intentions = cp->intentions,
                           .ca = cp->ca,
                           .store = cp->store,
                           .kv = cp->kv,
                           .registry = cp->reg,
                           .supervisor = cfg->supervisor,
                           .logs = cp->logs,
                           .spans = cp->spans,
                           .history = cp->history,
                           .barrier = {.pending = is_unsynced, .sync = sync_now, .data = cp}},
                       &cp->admin, d);
    if (rc < 0) {
        if (!d->what[0]) sh_diag_set(d, "control plane", "cannot start: %s", sh_strerror(rc));
        release(cp);
        return rc;
    }
    publish(cp, cfg);
    uv_timer_init(loop, &cp->tick);
    cp->tick.data = cp;
    uv_timer_start(&cp->tick, tick, 1000, 1000);
    uv_check_init(loop, &cp->sync_io);
    cp->sync_io.data = cp;
    uv_check_start(&cp->sync_io, sync_io_cb);
    uv_unref((uv_handle_t *)&cp->sync_io);
    uv_prepare_init(loop, &cp->sync_late);
    cp->sync_late.data = cp;
    uv_prepare_start(&cp->sync_late, sync_late_cb);
    uv_unref((uv_handle_t *)&cp->sync_late);
    cp->has_tick = true;
    return 0;
}

static void admin_stopped(void *data)
{
    struct control_plane *cp = data;

    release(cp);
    if (cp->stopped) cp->stopped(cp->stopped_data);
}

void control_plane_stop(struct control_plane *cp, uint32_t deadline_ms, void (*done)(void *),
                        void *data)
{
    cp->stopped = done;
    cp->stopped_data = data;
    if (cp->has_tick) uv_timer_stop(&cp->tick);
    if (cp->admin)
        admin_stop(cp->admin, deadline_ms, admin_stopped, cp);
    else
        admin_stopped(cp);
}

void control_plane_close(struct control_plane *cp)
{
    cli_runtime_unpublish(cp->runtime_file);
    cp->runtime_file[0] = '\0';
    obs_spans_close(cp->spans);
    cp->spans = NULL;
    store_close(cp->store);
    cp->store = NULL;
    obs_logs_close(cp->logs);
    cp->logs = NULL;
    obs_history_free(cp->history);
    cp->history = NULL;
}
