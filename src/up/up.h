/* SPDX-License-Identifier: MIT */
/* up.h: the stack (`shoal up`): everything one manifest describes, run from one process: the
 * control plane, the services' instances (started, registered once their check passes,
 * replaced when they fail it, scaled, restarted one by one), the gateway and the mesh, the
 * output of the services, and the live view. Also the control plane as a unit, which
 * `shoal server` runs alone.
 * Prefixes: up_, control_plane_.
 * Thread: the caller's (main); up_run runs its own loop until the stack has stopped. The
 * decisions (policy.c) are plain functions, callable from anywhere.
 *
 * Files: up.c (start and stop order, the admin API's hooks), instances.c (the instance
 * table), scale.c (load from the proxies' metrics, the autoscaler), logs.c (the services'
 * output), view.c (the live view), policy.c (the decisions), control_plane.c. */
#ifndef SHOAL_UP_H
#define SHOAL_UP_H

#include "admin/admin.h"
#include "config/config.h"
#include "observe/observe.h"
#include "registry/registry.h"
#include "security/security.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

/* ==========================================================================================
 * The stack
 * ========================================================================================== */
struct up_options {
    const char *file;     /* the manifest; NULL = "shoal.yaml" */
    const char *data_dir; /* NULL: the manifest's data_dir, relative to its folder */
    bool is_plain;        /* no live view even on a terminal */
};
/* Runs the stack until SIGINT, SIGTERM or `shoal down`. Returns the exit status (0, or 1 with
 * the reason printed on stderr). */
int up_run(const struct up_options *opt);

/* ==========================================================================================
 * Decisions (policy.c): plain functions over plain structs, tested without processes; the
 * instance table and the autoscaler gather their inputs and carry them out.
 * ========================================================================================== */
/* One instance of a service as the decisions see it. */
struct up_member {
    uint32_t ordinal;
    bool is_started, is_ready, is_retiring;
};
/* Which instance leaves first when a service shrinks: one not started, then one not ready,
 * then the newest; retiring ones are not candidates. The index in m, or SIZE_MAX. */
size_t up_policy_victim(const struct up_member *m, size_t n);
/* Instances to start (> 0) or to retire (< 0) so that live ones meet want; 0 while a rolling
 * restart owns the count. */
int64_t up_policy_reconcile(uint32_t live, uint32_t want, bool is_rolling);

/* A rolling restart step: what the instance started to replace an old one has done so far. */
struct up_roll_view {
    bool has_new;       /* a replacement is under way */
    bool is_new_ready;  /* it passes its check (or has none and runs) */
    bool is_new_gone;   /* it left the table (removed) */
    bool is_crash_loop; /* the process layer calls it a crash loop */
    uint64_t waited_ms; /* since the step began */
    uint64_t limit_ms;  /* up_policy_roll_step_limit */
    uint32_t done, total;
};
enum up_roll_action {
    UP_ROLL_WAIT = 0, /* the replacement is not ready yet: wait */
    UP_ROLL_PROMOTE,  /* it is ready: the old one retires, the step is done */
    UP_ROLL_ABORT,    /* it failed (crash loop, never ready in time, gone): stop the restart,
                       * the instances not yet replaced keep running */
    UP_ROLL_NEXT,     /* no step under way: start the next replacement */
    UP_ROLL_FINISHED, /* every instance was replaced */
};
enum up_roll_action up_policy_roll(const struct up_roll_view *v);
/* How long a replacement may take to become ready: its health check's worst case, and at
 * least UP_ROLL_STEP_MS; on a fixed port, plus the old instance's drain and stop. */
uint64_t up_policy_roll_step_limit(const struct manifest_service *s);

/* The autoscaler, per service. */
struct up_load_view {
    double rps, in_flight, p99_ms; /* over the last samples */
};
/* The replicas the load asks for, within [min, max] of as. cur is the count wanted now. */
uint32_t up_policy_desired(const struct manifest_autoscale *as, uint32_t cur,
                           const struct up_load_view *load);
struct up_scale_state {
    uint64_t high_since_ms, low_since_ms, last_up_ms;
    uint32_t low_max; /* the most replicas asked for since low_since_ms */
};
/* One second of the autoscaler: given what the load asks for (desired) and what is wanted now
 * (want), the new want, or want itself. Scaling up needs the ask to hold UP_SCALE_SUSTAIN_MS
 * and up_cooldown since the last scale-up; scaling down needs it to hold down_cooldown, and
 * goes to the most asked for over that time. *why is set to "scaling up" / "scaling down"
 * when it changes. */
uint32_t up_policy_autoscale(const struct manifest_autoscale *as, struct up_scale_state *st,
                             uint32_t want, uint32_t desired, uint64_t now_ms, const char **why);
enum { UP_ROLL_STEP_MS = 60000, UP_SCALE_SUSTAIN_MS = 2000 };
enum { UP_DRAIN_SETTLE_MS = 1000, UP_DRAIN_MAX_MS = 5000 };

/* ==========================================================================================
 * The control plane as one unit (control_plane.c), as `shoal server` and `shoal up` both run
 * it: the store, the config KV, the registry (with the HTTP client its checks use), the admin
 * API, the API token, the CA, the store's lease expiry and the CA's retirement of rotated-out
 * generations once a second, and the span store (its own file, DATA_DIR/traces.sqlite, written
 * every 200 ms from the loop, no fsync).
 * Group commit: every write of one loop iteration goes into one store transaction, committed
 * (one fsync) before the admin API's answers of that iteration leave (http_barrier): in the
 * check phase, right after the I/O callbacks that wrote, so that blocking queries woken by the
 * writes (answered from the next iteration's timers) find nothing to wait for and send their
 * large bodies straight from the render cache; and in the prepare phase for writes made by
 * timers. A commit that fails stops the process with exit status 70: the writes it lost were
 * already applied in memory. Thread: the loop's.
 * ========================================================================================== */
struct control_plane {
    struct store *store;
    struct cfgkv *kv;
    struct http_client *client; /* the registry's active checks */
    struct registry *reg;
    struct admin *admin;
    struct obs_logs *logs;   /* with has_logs, unless it could not open (a warning); else NULL */
    struct obs_spans *spans; /* DATA_DIR/traces.sqlite, flushed by a timer on the loop */
    struct obs_history *history;      /* with has_history: the metrics history shoal up samples into
                                       * and GET /v1/metrics/history, /v1/topology, /v1/slo read */
    struct sec_tokens *tokens;        /* the root token and the stored and instances' ones */
    struct sec_audit *audit;          /* DATA_DIR/audit.log */
    struct sec_itable *intentions;    /* which service may call which */
    struct sec_ca *ca;                /* the CA (DATA_DIR/ca, or an external one) */
    char token[SH_TOKEN_MAX_LEN + 1]; /* the root token's text */
    char runtime_file[4096];          /* published for the CLI (cli_runtime_publish), or "" */
    /* private */
    uv_timer_t tick;
    uv_check_t sync_io;     /* commit the store's batch: after the I/O phase, */
    uv_prepare_t sync_late; /* and before polling (writes made by timers) */
    bool has_tick;
    void (*stopped)(void *);
    void *stopped_data;
};

struct control_plane_config {
    const char *data_dir;      /* the store and the token file */
    const char *listen;        /* the admin API's address */
    const char *zipkin_listen; /* Zipkin's API (/api/v2/ only) also there; NULL: not */
    const char *token;         /* NULL: read DATA_DIR/token, or make one */
    const char *who;           /* "shoal server": names the token message */
    const struct admin_supervisor *supervisor; /* shoal up's hooks; NULL under shoal server */
    /* intentions: the manifest's default and rules (shoal up); every change of the set goes to
     * intentions_changed (the mesh), also once at open */
    bool default_deny;
    const struct sec_intention *intentions;
    size_t intention_count;
    sec_intentions_fn *intentions_changed;
    void *intentions_data;
    bool has_logs;    /* open the log store DATA_DIR/logs.sqlite (cp->logs) for GET /v1/logs */
    bool has_history; /* make the metrics history (cp->history; in memory) */
    /* The CA: trust domain, external files, lifetimes (security.h); its dir is always
     * DATA_DIR/ca. NULL: the defaults. */
    const struct sec_ca_config *ca;
};

/* Opens everything on <loop> into *cp (zeroed first). A token made now is printed once on
 * stderr. Once the admin API listens, publishes the runtime file of its address (cli.h), so
 * that `shoal ps` and the others find the token without flags; a failure there is a warning.
 * Returns 0, or a negative code with d filled; then whatever was opened is closed again and only
 * control_plane_close is left to call, after running the loop. */
SH_MUST_CHECK int control_plane_open(uv_loop_t *loop, const struct control_plane_config *cfg,
                                     struct control_plane *cp, struct sh_diag *d);
/* Stops the admin API (in-flight requests get deadline_ms), then frees the KV, the registry,
 * its client and the API, and calls done(data). The store stays open for control_plane_close. */
void control_plane_stop(struct control_plane *cp, uint32_t deadline_ms, void (*done)(void *),
                        void *data);
/* After the loop has ended: closes the store (and the log and span stores, writing what is
 * pending) and removes the runtime file that lets the CLI
 * find this data directory (and so the token) from the admin address. Idempotent. */
void control_plane_close(struct control_plane *cp);

#endif
