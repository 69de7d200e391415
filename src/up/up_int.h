/* SPDX-License-Identifier: MIT */
/* up_int.h: what the files of the stack share (up.h has the component's interface).
 *   up.c         start and stop order, the proxies fed by the registry, the admin API's hooks;
 *   instances.c  the instance table: start, register, health replacement, drain and stop,
 *                carrying out reconcile and rolling-restart decisions (policy.c);
 *   scale.c      load per service and instance from the proxies' metrics; the autoscaler's
 *                inputs and actions (its decision is policy.c's);
 *   logs.c       the services' output: the ring `shoal logs` reads, the log file;
 *   view.c       the live status view on a terminal.
 * Everything runs on the main thread's loop. */
#ifndef SHOAL_UP_INT_H
#define SHOAL_UP_INT_H

#include "up/up.h"

#include "observe/observe.h"
#include "proxy/proxy.h"
#include "supervisor/supervisor.h"
#include "telemetry/telemetry.h"

#include <limits.h>
#include <stdio.h>

enum { UP_TICK_MS = 100 }; /* the supervisor's pace: starts, checks, drains, load samples */

/* Drain before a stop (UP_DRAIN_* in up.h): after deregistering, an instance is stopped once
 * neither proxy lists it any more and UP_DRAIN_SETTLE_MS have passed (requests already sent
 * there finish), or after UP_DRAIN_MAX_MS whatever happens. */
/* Before its registration, an instance with a check is probed this often (or at its check's
 * interval when shorter), so it takes traffic soon after it is ready. */
enum { UP_PROBE_MS = 250 };
/* Load samples kept per service (one per second): the p99 window. */
enum { UP_LOAD_WINDOW = 10 };

/* An instance's certificate, key and CA bundle, as files in DATA_DIR/services/NAME/tls/ID/
 * (tls.c): what was last written there. */
struct up_tls {
    struct sec_leaf_view leaf;           /* issued_ms 0: none yet */
    char serial[SEC_SERIAL_HEX_MAX + 1]; /* of the certificate in the files */
    uint64_t bundle_version;             /* sec_ca_bundle_version of the ca.pem written */
    bool has_files;
};

struct up_instance {
    struct up *u;
    uint32_t service; /* index into manifest services */
    uint32_t ordinal; /* the N of "<service>-N"; never reused within one run */
    uint64_t proc_id; /* 0 until started */
    uint16_t port;
    char id[96];
    char endpoint[32];                   /* "127.0.0.1:<port>", as the proxies name it */
    char token_id[SEC_TOKEN_ID_LEN + 1]; /* its API token (SHOAL_TOKEN), or "" */
    char secret[33]; /* its mesh credential's password: 128 random bits in hex, new for every
                      * process (a restart gets another) */
    bool cred_live;  /* its process runs: the mesh accepts the credential */
    bool started;
    bool replacing;     /* failed its health check: being stopped, to be started afresh */
    bool retiring;      /* leaving for good (scale down, restart): deregistered, draining */
    bool stop_sent;     /* retiring and its stop is under way */
    uint64_t retire_ms; /* when it was deregistered */
    uint64_t left_ms;   /* when the proxies stopped listing it (0: not yet) */
    uint32_t waits_for; /* ordinal of an instance that must be gone before this starts (the
                         * same fixed port); 0: none */
    bool registered;    /* in the registry: at once without a check, else once the probes
                         * before registration have passed (instances.c) */
    bool probing;       /* a probe before registration is under way */
    uint32_t probe_ok;  /* passes in a row of those probes */
    uint32_t gen;       /* starts so far: a probe's answer for an older start is dropped */
    uint64_t next_probe_ms;
    uint64_t start_after_ms; /* not started before (a failed start waits a second) */
    int pid_passed;          /* the process that last passed its check (0: none yet) */
    uint32_t replaced;       /* times replaced for failing health (ps adds it to restarts) */
    uint64_t attempts;       /* proxies' attempts to it at the last load sample */
    double rps;              /* requests/s it got over the last second */
    struct up_tls tls;       /* its certificate (SHOAL_TLS_*: tls.c) */
};

enum up_roll_state { UP_ROLL_IDLE = 0, UP_ROLL_RUNNING, UP_ROLL_DONE, UP_ROLL_ABORTED };

/* Per service, beside its manifest entry. */
struct up_service {
    uint32_t want;         /* replicas wanted: manifest, then `shoal scale` or the autoscaler */
    uint32_t next_ordinal; /* the next instance's N */
    /* rolling restart (`shoal restart`) */
    enum up_roll_state roll;
    uint32_t *roll_old; /* ordinals to replace, roll_total of them */
    uint32_t roll_total, roll_done;
    uint32_t roll_new, roll_cur; /* the replacement being started, and what it replaces */
    uint64_t roll_step_ms, roll_started_ms;
    char roll_msg[256];
    /* load (scale.c) */
    uint64_t attempts;               /* both proxies' attempts to the service at the last sample */
    uint64_t le[UP_LOAD_WINDOW][15]; /* cumulative duration buckets, one row per second */
    uint32_t le_next, le_count;
    double in_flight_sum; /* in-flight samples since the last second, and their count */
    uint32_t in_flight_n;
    double rps, in_flight, p99_ms;
    /* autoscaler */
    uint32_t desired; /* what the last evaluation asked for */
    struct up_scale_state scale;
};

/* The instances' output, kept for `shoal logs`: a ring of the last UP_LOG_LINES lines, each cut
 * at UP_LOG_LINE_MAX bytes (at most about 20 MiB). */
enum { UP_LOG_LINES = 10000, UP_LOG_LINE_MAX = 2048 };
struct up_logline {
    uint64_t seq;     /* 1, 2, ... in arrival order */
    uint64_t ms;      /* Unix ms */
    uint32_t service; /* index into manifest services */
    uint32_t ordinal;
    bool is_stderr;
    char *text; /* sh_malloc'd, NUL-terminated */
};

struct up {
    uv_loop_t loop;
    struct manifest *m;
    char dir[PATH_MAX], data_dir[PATH_MAX], self[PATH_MAX];
    struct control_plane cp; /* store, KV, registry, admin API (control_plane.c) */
    bool cp_open;
    struct sup_procs *procs;
    struct proxy_gateway *gw, *mesh; /* the edge gateway (NULL without one) and the mesh */
    struct proxy_discovery *disc;
    struct sh_doc *gw_doc, *mesh_doc;
    struct admin_supervisor sup; /* what the admin API may ask of us */
    char mesh_url[80];           /* SHOAL_MESH, HTTP_PROXY: http://127.0.0.1:<mesh port> */
    char admin_addr[64];         /* SHOAL_ADDR: the admin API, "127.0.0.1:<port>" */
    struct up_service *svc;      /* one per manifest service */
    struct up_instance **inst;   /* ninst of them, each its own allocation */
    size_t ninst, inst_cap;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    uint64_t started_ms, health_checked_ms, sampled_ms, tls_checked_ms;
    /* mTLS between meshes (tls.c): the mesh holds a leaf per local service in
     * DATA_DIR/mesh/NAME/ (all issued together, renewed together) */
    bool mesh_ids;
    struct sec_leaf_view mesh_leaf;
    uint64_t mesh_bundle_version;
    bool all_healthy_logged, stopping;
    bool want_view; /* a terminal, and no --plain */
    bool view;      /* the live status view is on (up_view.c) */
    int log_fd;     /* <data_dir>/shoal.log while the view is on, else -1 */
    uint32_t stops_pending;
    struct up_logline *log; /* UP_LOG_LINES slots; log_next is the oldest once full */
    size_t log_next, log_count;
    uint64_t log_seq;
    FILE *logfile;           /* DATA_DIR/logs/services.log, or NULL */
    struct obs_logs *logs;   /* cp.logs: output and access lines, searchable; may be NULL */
    bool logs_warned;        /* a refused line was logged once */
    uint64_t access_dropped; /* access lines dropped over a drain's time budget (logs.c) */
    /* spans per hop: both proxies push into one queue (a shard per worker), drained every
     * UP_SPAN_DRAIN_MS on this loop into span_sink (the span store's ingest, once there is
     * one; until then it counts them) */
    struct trace_queue *spans;
    uv_timer_t span_timer;
    trace_span_fn *span_sink;
    void *span_sink_data;
    uint64_t spans_drained;
    struct up_hsample *hist; /* history.c: this second's samples, nhist of them */
    size_t nhist, hist_cap;
    bool hist_warned;
};

enum { UP_SPAN_DRAIN_MS = 50, UP_SPAN_RING = 16384 }; /* 60k spans/s per worker fit */
enum { UP_SPAN_DRAIN_CHUNK = 256, UP_SPAN_DRAIN_BUDGET_US = 10000 }; /* 20% of the loop at most */

/* history.c: the metrics history's sampler (cp.history) */
void up_history_tick(struct up *u);    /* after each load sample (once a second) */
void up_history_slos(struct up *u);    /* the manifest's SLOs into the history */
void up_history_release(struct up *u); /* frees the samples' scratch */

/* up.c */
void up_instance_stop_done(struct up *u); /* one stop counted by up_instances_stop_all ended */
bool up_join_path(char *out, size_t n, const char *a, const char *b); /* a/b; false: too long */

/* logs.c */
void up_logfile_open(struct up *u);  /* DATA_DIR/logs/services.log; a warning when it cannot */
void up_logfile_flush(struct up *u); /* every tick: flush, rotate past its size limit */
/* every tick, and once each proxy has stopped: their access lines into the store */
void up_access_drain(struct up *u, struct proxy_gateway *gw, const char *name);
/* sup_procs_config.on_line: one line of an instance's output */
void up_on_line(void *data, uint64_t id, enum sup_stream stream, struct slice line, bool is_cut);
/* admin_supervisor.logs: GET /v1/logs */
int up_render_logs(void *data, const char *service, uint64_t since_ms, uint64_t after_seq,
                   const char *grep, struct buf *b);

/* instances.c */
int up_instances_init(struct up *u);  /* the manifest's replicas; 0 or SH_ENOMEM */
void up_instances_free(struct up *u); /* at exit, after the loop has ended */
void up_instances_tick(struct up *u); /* every 100 ms: start, check, drain, scale */
struct up_instance *up_instance_find(struct up *u, uint32_t service, uint32_t ordinal);
bool up_instance_ready(struct up *u, const struct up_instance *in); /* serving, or could */
/* Hands the mesh a copy of the intentions in force (up.c). */
void up_publish_intentions(struct up *u, const struct sec_intentions *set);
void up_instance_event(struct up *u, const struct sup_event *ev); /* the process layer's news */
/* The mesh's table of caller credentials, from the instances whose process runs. */
void up_callers_publish(struct up *u);
uint32_t up_service_live(struct up *u, uint32_t service, uint32_t *ready); /* not retiring */
/* What ps and the live view show of an instance. Strings are static. */
struct up_instance_info {
    const char *state;  /* "waiting", "starting", "running", "draining", "backoff", ... */
    const char *health; /* "passing", "warning", "critical", "none", "unregistered", "-" */
    int pid;
    uint32_t restarts; /* crashes restarted + health replacements */
    bool crash_loop;
    uint64_t uptime_ms;
};
/* 0, SH_ENOENT (its process is gone from the process layer: skip it) or SH_ENOMEM. */
int up_instance_info(struct up *u, const struct up_instance *in, struct up_instance_info *out);
/* `shoal restart`: 0, SH_EBUSY (one is under way) or SH_ENOENT (no instances). */
int up_service_restart(struct up *u, uint32_t service, uint32_t *count);
/* The stop of `shoal up`: every instance that runs gets a stop with cb(data); one whose stop
 * is already under way (retiring, replaced) reports through up_instance_stop_done instead.
 * Returns how many stops to wait for. */
uint32_t up_instances_stop_all(struct up *u, sup_stop_fn *cb, void *data);

/* tls.c: the instances' certificates (SHOAL_TLS_CERT, SHOAL_TLS_KEY, SHOAL_TLS_CA) */
/* Issues the instance's certificate and writes its files (cert.pem, key.pem 0600, ca.pem) into
 * DATA_DIR/services/NAME/tls/ID/; *dir gets that directory (PATH_MAX bytes). 0 or SH_E*
 * (logged here). */
int up_tls_issue(struct up *u, struct up_instance *in, char *dir);
/* Twice a second: renews the certificates due (sec_leaf_should_renew: at 2/3 of their life, or
 * signed by a rotated-out CA) and rewrites the bundles that changed, atomically. */
void up_tls_tick(struct up *u);
/* mesh.inbound or remote_services: issues the mesh's leaf per local service and adds
 * `identities:` (and `inbound:`) to the mesh's config doc. 0 or SH_E* (d). */
int up_mesh_identities(struct up *u, struct sh_doc *doc, struct sh_diag *d);
/* The mesh's files changed: rebuild its config (new client contexts) (up.c). */
void up_mesh_reload(struct up *u);
/* The instance left: its files are removed. */
void up_tls_forget(struct up *u, struct up_instance *in);
/* ,"cert":{"identity","serial","not_after_ms","ca_gen"} for GET /v1/instances (nothing when
 * it has none). */
void up_tls_render(struct up *u, const struct up_instance *in, struct buf *b);

/* view.c: the live status view, when stdout is a terminal (see up_view_wanted) */
bool up_view_wanted(void);       /* stdout and stderr are terminals, TERM is not dumb */
int up_view_start(struct up *u); /* log to <data_dir>/shoal.log, enter the view */
void up_view_draw(struct up *u); /* once a second */
void up_view_stop(struct up *u); /* leave it (idempotent) */

/* scale.c */
void up_load_tick(struct up *u); /* every 100 ms: in-flight samples; every 1 s: the rest */
void up_autoscale(struct up *u); /* every 1 s, after the load sample */
const char *up_target_name(enum manifest_target_kind k); /* "in_flight", "rps", "p99_ms" */

#endif
