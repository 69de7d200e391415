/* SPDX-License-Identifier: MIT */
/* control_plane.h: the control plane as `shoal server` and `shoal up` both run it, in one
 * place: the store, the config KV, the registry (with the HTTP client its checks use), the
 * admin API, the API token, and the store's lease expiry once a second.
 * Group commit: every write of one loop iteration goes into one store transaction, committed
 * (one fsync) before the admin API's answers of that iteration leave (http_barrier): in the
 * check phase, right after the I/O callbacks that wrote, so that blocking queries woken by the
 * writes (answered from the next iteration's timers) find nothing to wait for and send their
 * large bodies straight from the render cache; and in the prepare phase for writes made by
 * timers. A commit that fails stops
 * the process with exit status 70: the writes it lost were already applied in memory. Part of the main
 * program (it imports admin, config, registry, store). Thread: the loop's. */
#ifndef SHOAL_CONTROL_PLANE_H
#define SHOAL_CONTROL_PLANE_H

#include "admin/admin.h"
#include "config/config.h"
#include "registry/registry.h"
#include "store/store.h"

struct control_plane {
    struct store *store;
    struct cfgkv *kv;
    struct http_client *client; /* the registry's active checks */
    struct registry *reg;
    struct admin *admin;
    char token[SH_TOKEN_MAX_LEN + 1];
    char runtime_file[4096]; /* published for the CLI (cli_runtime_publish), or "" */
    /* private */
    uv_timer_t tick;
    uv_check_t sync_io;     /* commit the store's batch: after the I/O phase, */
    uv_prepare_t sync_late; /* and before polling (writes made by timers) */
    bool has_tick;
    void (*stopped)(void *);
    void *stopped_data;
};

struct control_plane_config {
    const char *data_dir;                      /* the store and the token file */
    const char *listen;                        /* the admin API's address */
    const char *token;                         /* NULL: read DATA_DIR/token, or make one */
    const char *who;                           /* "shoal server": names the token message */
    const struct admin_supervisor *supervisor; /* shoal up's hooks; NULL under shoal server */
};

/* Opens everything on <loop> into *cp (zeroed first). A token made now is printed once on
 * stderr. Once the admin API listens, publishes the runtime file of its address (cli.h), so
 * that `shoal ps` and the others find the token without flags; a failure there is a warning. Returns 0, or a negative code with d filled; then whatever was opened is closed
 * again and only control_plane_close is left to call, after running the loop. */
SH_MUST_CHECK int control_plane_open(uv_loop_t *loop, const struct control_plane_config *cfg,
                                     struct control_plane *cp, struct sh_diag *d);
/* Stops the admin API (in-flight requests get deadline_ms), then frees the KV, the registry,
 * its client and the API, and calls done(data). The store stays open for control_plane_close. */
void control_plane_stop(struct control_plane *cp, uint32_t deadline_ms, void (*done)(void *),
                        void *data);
/* After the loop has ended: closes the store and removes the runtime file that lets the CLI
 * find this data directory (and so the token) from the admin address. Idempotent. */
void control_plane_close(struct control_plane *cp);

#endif
