/* SPDX-License-Identifier: MIT */
/* supervisor.h: the supervisor (manifest, processes, restarts, scaling, deployments). So far:
 * the manifest reader (YAML into a core document tree whose nodes keep file:line:column), the
 * shoal.yaml schema (struct manifest, shoal check) and the process layer (children in their
 * own process groups, output captured by line, restarts with backoff and crash-loop detection).
 * Threads: the reader and the schema keep no state (any thread); the process layer belongs to
 * its loop's thread (see its section).
 * Prefixes: manifest_, MANIFEST_, sup_procs_, sup_instance_, sup_child_, sup_env_, SUP_.
 * (Guard SHOAL_SUPERVISOR_H; includes core/core.h and uv.h.) */
#ifndef SHOAL_SUPERVISOR_H
#define SHOAL_SUPERVISOR_H

#include "core/core.h"

/* ------------------------------------------------------------------------------------------
 * Manifest reader (manifest.c, the one owner of libyaml).
 *
 * What it accepts: one YAML document of block or flow maps, lists and scalars, with comments.
 * - Plain "", "~", "null", "Null", "NULL" (and a key with no value) become SH_NODE_NULL; every
 *   other scalar is SH_NODE_SCALAR with its text. Quoted scalars, block scalars (| and >) and
 *   scalars tagged !!str have is_quoted set, so "10" and "true" stay strings.
 * - Map keys must be non-empty scalars; a key written twice in one map is an error at the
 *   second one that names the first ("duplicate key 'port' (already set at line 3, column 5)").
 * - Rejected with a clear error: anchors and aliases (&a, *a, and so "<<: *a" merges), tags
 *   other than !!str/!!map/!!seq, and files with more than one document.
 * - Limits (errors with SH_ETOOBIG, never crashes): MANIFEST_MAX_BYTES of text, collections
 *   nested MANIFEST_MAX_DEPTH deep, MANIFEST_MAX_NODES nodes (keys and values both count).
 * An empty file (or one of only comments) gives a doc whose root is a NULL node at 1:1.
 * ------------------------------------------------------------------------------------------ */
#define MANIFEST_MAX_BYTES (4u * 1024 * 1024)
#define MANIFEST_MAX_DEPTH 64
#define MANIFEST_MAX_NODES 100000

/* Reads the YAML file at <path> into a document tree named <path>.
 * Returns 0 and sets *out (caller frees with sh_doc_free), or sets *out to NULL and returns
 *   SH_ENOENT   no such file (d->where = path);
 *   SH_EPARSE   a YAML syntax error or a rejected construct (d->where = "path:line:col");
 *   SH_ETOOBIG  a limit above was passed;
 *   SH_ENOMEM   out of memory;
 *   -errno      another failure of open(2)/read(2), e.g. -EACCES, -EISDIR.
 * d->what says what is wrong in plain words; d may be NULL. */
SH_MUST_CHECK int manifest_read_file(const char *path, struct sh_doc **out, struct sh_diag *d);

/* Reads <len> bytes of YAML at <text> (not necessarily NUL-terminated) as if from a file
 * named <name> (used in positions). Returns and fills as manifest_read_file, without the
 * file errors. <text> is not kept. */
SH_MUST_CHECK int manifest_read_buf(const char *name, const char *text, size_t len,
                                    struct sh_doc **out, struct sh_diag *d);

/* ------------------------------------------------------------------------------------------
 * Manifest schema (manifest_schema.c): the `shoal up` manifest (shoal.yaml) read from a
 * document tree into a struct manifest, with every error as "file:line:col" plus
 * "<path>: <problem>" ("services.api.replicas: expected a number from 0 to 1000").
 * docs/manifest.md is the user's reference; keep the two in step.
 *
 * A manifest is a service object: manifest_from_doc / manifest_load_file, manifest_free.
 * Every string and array lives in its arena and is freed with it. The sh_node pointers it
 * keeps (service nodes, resilience, gateway routes) are borrowed from the doc it was read
 * from: with manifest_from_doc the caller keeps the doc alive longer than the manifest; a
 * manifest from manifest_load_file owns its doc. Read-only once built; any thread may read.
 * ------------------------------------------------------------------------------------------ */
#define MANIFEST_MAX_SERVICES 256
#define MANIFEST_MAX_REPLICAS 1000
#define MANIFEST_DEFAULT_CONTROL_PLANE "127.0.0.1:7700"
#define MANIFEST_DEFAULT_GATEWAY_LISTEN "127.0.0.1:8080"
#define MANIFEST_DEFAULT_DATA_DIR ".shoal"
#define MANIFEST_DEFAULT_MESH_LISTEN "127.0.0.1:7701"

enum manifest_restart {
    MANIFEST_RESTART_ALWAYS = 0, /* the default */
    MANIFEST_RESTART_ON_FAILURE, /* only after a non-zero exit or a signal */
    MANIFEST_RESTART_NEVER,
};

enum manifest_health_kind {
    MANIFEST_HEALTH_NONE = 0, /* no check: an instance is healthy once started */
    MANIFEST_HEALTH_HTTP,     /* GET http_path on the instance's port; 2xx passes */
    MANIFEST_HEALTH_TCP,      /* a TCP connect to the instance's port passes */
};

enum manifest_target_kind {
    MANIFEST_TARGET_IN_FLIGHT = 1, /* requests in flight per instance */
    MANIFEST_TARGET_RPS,           /* requests per second per instance */
    MANIFEST_TARGET_P99_MS,        /* p99 latency in milliseconds */
};

/* One name = value pair (env, config); both NUL-terminated, in the order written. */
struct manifest_kv {
    const char *name;
    const char *value;
};

struct manifest_health {
    enum manifest_health_kind kind;
    const char *http_path;        /* HTTP: "/health"; NULL otherwise */
    uint32_t interval_ms;         /* default 5000 */
    uint32_t timeout_ms;          /* default 2000; at most interval_ms */
    uint32_t healthy_threshold;   /* passes in a row to become healthy; default 1 */
    uint32_t unhealthy_threshold; /* failures in a row to become unhealthy; default 3 */
    uint32_t start_period_ms;     /* failures after a start do not count this long; default 0 */
};

struct manifest_autoscale {
    bool is_set;       /* false: fields below are zero and replicas is fixed */
    uint32_t min, max; /* min <= max <= MANIFEST_MAX_REPLICAS, max >= 1 */
    enum manifest_target_kind target_kind;
    uint64_t target;           /* per instance: in flight, req/s, or p99 in ms */
    uint32_t up_cooldown_ms;   /* default 30000 */
    uint32_t down_cooldown_ms; /* default 300000 */
};

/* slo: {availability: 99.9%, latency: {p99: 300ms}, window: 30d} (docs/manifest.md). */
struct manifest_slo {
    bool is_set;
    double availability;    /* percent of requests not failed, in (0, 100); 0 = none */
    uint32_t latency_ms;    /* threshold; 0 = none */
    double latency_percent; /* percent of requests under latency_ms, in (0, 100) */
    uint32_t window_s;      /* 60 s .. 90 days; default 30 days */
};

struct manifest_service {
    const char *name;        /* a DNS label: [a-z0-9-], 1..63, no '-' at either end */
    const char *const *argv; /* argc >= 1 items, argv[argc] == NULL; "$PORT", "${X}" and
                              * "$$" are kept as written, for expansion at spawn time */
    size_t argc;
    const struct manifest_kv *env; /* env_count pairs */
    size_t env_count;
    const char *working_dir; /* NULL: the manifest's directory */
    uint32_t replicas;       /* 0..MANIFEST_MAX_REPLICAS; default 1 (autoscale: min, at
                              * least 1) */
    bool is_port_auto;       /* port: auto (assigned per instance) */
    uint16_t port;           /* port: N; 0 with !is_port_auto means no port */
    struct manifest_health health;
    const char *const *depends_on; /* names of other services, depends_count of them */
    const uint32_t *depends_idx;   /* the same as indexes into manifest.services */
    size_t depends_count;
    enum manifest_restart restart;
    uint32_t stop_grace_ms; /* SIGTERM, then SIGKILL after this; default 10000 */
    const char *version;    /* NULL when not given */
    struct manifest_autoscale autoscale;
    struct manifest_slo slo;
    const struct sh_node *resilience; /* borrowed MAP in the gateway's cluster syntax, or NULL */
    const struct manifest_kv *config; /* default config keys, config_count pairs */
    size_t config_count;
    const struct sh_node *node; /* borrowed: the service's MAP, for positions */
};

struct manifest_gateway {
    bool is_set;        /* false when the manifest has no gateway section */
    const char *listen; /* default MANIFEST_DEFAULT_GATEWAY_LISTEN */
    const char *admin;  /* NULL: no admin listener */
    size_t route_count;
    const struct sh_node *routes; /* borrowed SEQ of route MAPs in the gateway's syntax with
                                   * "service: NAME" for "cluster:" (see manifest_gateway_doc) */
    const struct sh_node *node;   /* borrowed: the gateway MAP */
};

/* security: {default: allow|deny, intentions: [{from, to, action, methods, paths}]}: checked
 * here (names of this manifest's services, "*", "gateway" as a caller; methods; paths start
 * with '/'); up makes them security.h's rules. */
enum {
    MANIFEST_MAX_INTENTIONS = 1024,
    MANIFEST_INTENTION_METHODS = 9,
    MANIFEST_INTENTION_PATHS = 4
};
struct manifest_intention {
    const char *from, *to;
    bool allow;
    const char *methods[MANIFEST_INTENTION_METHODS];
    size_t method_count;
    const char *paths[MANIFEST_INTENTION_PATHS];
    size_t path_count;
};
/* security: the CA and the services' certificates, and intentions (docs/security.md). */
struct manifest_security {
    const char *trust_domain; /* NULL: the default (security.h's SEC_TRUST_DOMAIN_DEFAULT) */
    uint32_t cert_ttl_ms;     /* an instance certificate's lifetime; 0: the default (24 h) */
    uint32_t ca_overlap_ms;   /* a rotated-out CA's time in the bundle; 0: its last leaf's end */
    const char *ca_cert;      /* with ca_key: an external CA, paths as written (relative to */
    const char *ca_key;       /* the manifest's directory); NULL: shoal makes its own */
    bool default_deny;        /* default: deny */
    struct manifest_intention *intentions;
    size_t intention_count;
};

/* remote_services: NAME: {address, identity, ca}: a service that lives in another stack's
 * mesh, called by name from this one over mTLS (docs/security.md, "mTLS between meshes"). */
enum { MANIFEST_MAX_REMOTES = 256 };
struct manifest_remote {
    const char *name;     /* a DNS label, not a service of this manifest */
    const char *address;  /* the other mesh's inbound listener, "127.0.0.1:7443" */
    const char *identity; /* spiffe://TD/service/NAME the other side must prove */
    const char *ca;       /* its trust bundle (PEM), as written (relative to the manifest) */
    const struct sh_node *node;
};

struct manifest {
    const char *file;                /* the doc's file name */
    const char *mesh_inbound;        /* mesh.inbound: the mTLS listener; NULL: none */
    struct manifest_remote *remotes; /* remote_services, remote_count of them */
    size_t remote_count;
    const char *name;                 /* NULL when not given */
    const char *control_plane_listen; /* default MANIFEST_DEFAULT_CONTROL_PLANE */
    uint32_t zipkin_port;      /* observe.zipkin_port: Zipkin's API (/api/v2/) also on this port of
                                * the control plane's host (9411 is Zipkin's); 0 = not */
    const char *mesh_listen;   /* default MANIFEST_DEFAULT_MESH_LISTEN */
    const char *mesh_admin;    /* the mesh's /metrics, /ready, /config; NULL: none */
    const char *mesh_identity; /* "optional" (default) or "required": a caller without a
                                * valid credential is served as "unknown", or gets 407 */
    const char *data_dir;      /* as written (relative to the manifest's directory);
                                * default MANIFEST_DEFAULT_DATA_DIR */
    struct manifest_service *services; /* service_count, in the order written */
    size_t service_count;
    uint32_t *start_order; /* service indexes, each after all it depends on */
    struct manifest_gateway gateway;
    struct manifest_security security;
    const struct sh_doc *doc; /* the doc read from (owned only via load_file) */
    struct sh_doc *owned_doc; /* private */
    struct arena arena;       /* private */
};

/* Validates <doc> as a manifest. Returns 0 and sets *out (free with manifest_free; doc must
 * outlive it), or sets *out to NULL and returns SH_EPARSE (d->where = "file:line:col",
 * d->what = "<path>: <problem>"), SH_ETOOBIG (a limit above) or SH_ENOMEM. d may be NULL. */
SH_MUST_CHECK int manifest_from_doc(const struct sh_doc *doc, struct manifest **out,
                                    struct sh_diag *d);
/* manifest_read_file + manifest_from_doc; the manifest owns the doc. Errors as both. */
SH_MUST_CHECK int manifest_load_file(const char *path, struct manifest **out, struct sh_diag *d);
void manifest_free(struct manifest *m); /* NULL is a no-op */

/* The index of the service named <name>, or -1. */
int manifest_service_index(const struct manifest *m, const char *name);
/* Sum of replicas over every service. */
uint64_t manifest_instance_count(const struct manifest *m);

/* Builds the gateway's configuration for this manifest as a document tree in the gateway's
 * own syntax (docs/gateway.md), for the proxy to read with proxy_config_from_doc (the
 * supervisor may not import the proxy; main.c and `shoal up` may):
 *   listen/admin/workers/access_log/limits/tracing    as in the manifest's gateway section;
 *   control_plane: {address: control_plane_listen};
 *   clusters: one per service, {name: S, service: S, <the service's resilience keys>};
 *   routes: the manifest's routes with each "service:" key renamed "cluster:".
 * Nodes copied from the manifest are shared, not copied, so the proxy's errors keep
 * shoal.yaml's line and column (with the proxy's paths, such as "clusters[api].retry.max").
 * Returns 0 and *out (caller frees with sh_doc_free, before the manifest's doc), or SH_ENOMEM. */
SH_MUST_CHECK int manifest_gateway_doc(const struct manifest *m, struct sh_doc **out);

/* The mesh listener's configuration, in the same syntax: listen: mesh_listen (and admin:
 * mesh_admin when set), identity: mesh_identity, tracing: as the manifest's mesh.tracing; the same
 * control_plane and clusters as manifest_gateway_doc; one route per service matching
 * "host: S" (so "Host: S" and absolute-form "http://S/..." requests reach S), and a last
 * route answering 503 with a message that names the services of this manifest. Returns as
 * manifest_gateway_doc. */
SH_MUST_CHECK int manifest_mesh_doc(const struct manifest *m, struct sh_doc **out);

/* `shoal check`: loads and validates the manifest at <path>, and checks the gateway part with
 * <gateway_check> when not NULL (main.c passes one that runs proxy_config_from_doc on
 * manifest_gateway_doc's tree). On success returns 0 and *out is the summary
 * ("shoal.yaml: ok (3 services, 5 instances, gateway on 127.0.0.1:8080)\n") or, with
 * <is_json>, the parsed manifest as one JSON object and a newline. Caller frees *out with
 * sh_free. On failure returns as manifest_load_file (or the gateway_check's error) with d set
 * and *out NULL. */
typedef int manifest_doc_check_fn(const struct sh_doc *gateway_doc, struct sh_diag *d);
SH_MUST_CHECK int manifest_check(const char *path, bool is_json,
                                 manifest_doc_check_fn *gateway_check, char **out,
                                 struct sh_diag *d);

/* ------------------------------------------------------------------------------------------
 * Environment of an instance (env.c). A value of a service's env may refer to variables:
 * "${NAME}" or "$NAME" is the variable's value, "$$" is one '$'; any other '$' is an error
 * (SH_EPARSE), and so is a "${" without its '}'. NAME is one of shoal's variables
 * (SUP_ENV_VARS: PORT and SHOAL_PORT for a service with a port, SHOAL_DATA_DIR, SHOAL_SERVICE,
 * SHOAL_INSTANCE, SHOAL_MESH) or a variable of shoal's own environment; another entry of the
 * same env is not one (they are not ordered). The manifest checks every reference when it is
 * read (file:line:col); the process layer expands them when it builds the environment.
 * A value may be SUP_ENV_VALUE_MAX bytes long, written and expanded, and a name
 * SUP_ENV_NAME_MAX: together with '=' and the final NUL that stays under Linux's limit for one
 * environment string (MAX_ARG_STRLEN, 128 KiB).
 * ------------------------------------------------------------------------------------------ */
#define SUP_ENV_VALUE_MAX (127u * 1024)
#define SUP_ENV_NAME_MAX 255u
#define SUP_ENV_VARS "SHOAL_DATA_DIR, SHOAL_PORT, PORT, SHOAL_SERVICE, SHOAL_INSTANCE, SHOAL_MESH"

/* The value of variable <name>, or NULL when there is none (borrowed for the call). */
typedef const char *sup_env_lookup_fn(void *data, struct slice name);
/* Appends <tmpl> to <out> with its references replaced by lookup's values. Returns 0, or
 * SH_EPARSE (a '$' that starts nothing, a "${" without '}'), SH_ENOENT (lookup knew no such
 * variable) or the buffer's error (SH_ETOOBIG past out->max, SH_ENOMEM), with d->what saying
 * which ("unknown variable 'X'"; d->where is left empty for the caller); d may be NULL. <out>
 * holds what was expanded so far after an error. */
SH_MUST_CHECK int sup_env_expand(struct slice tmpl, sup_env_lookup_fn *lookup, void *data,
                                 struct buf *out, struct sh_diag *d);

/* ------------------------------------------------------------------------------------------
 * Processes (process.c): service instances as child processes on a libuv loop.
 * Prefixes: sup_procs_, sup_instance_, sup_child_, SUP_.
 *
 * struct sup_procs is a service object. Threads: every sup_procs_* and sup_instance_* call,
 * and every callback, runs on the thread of the loop passed to sup_procs_new (the control
 * thread); nothing here is synchronised. sup_child_main runs in a fresh process.
 *
 * Each instance runs in its own session and process group (setsid), so a stop signal goes to
 * the whole group: kill(-pgid). When the instance's main process exits, what is left of its
 * group is killed too. stdin is /dev/null; stdout and stderr come back line by line.
 *
 * Children never outlive shoal, also after kill -9 of shoal, when cfg.trampoline is set: each
 * child is spawned as "<trampoline...> <argv...>", and the trampoline (sup_child_main, the
 * binary's hidden `shoal __child -- CMD...`) asks the kernel for SIGKILL when its parent dies
 * (PR_SET_PDEATHSIG), checks that the parent did not die before that, then execs CMD. Two
 * limits of the kernel feature: the signal fires when the *thread* that spawned the child
 * exits, so the loop's thread must live as long as the children; and it reaches the
 * instance's main process only, not processes it started (sup_procs_free and stops do kill
 * whole groups).
 * ------------------------------------------------------------------------------------------ */
#include <uv.h>

struct sup_procs; /* opaque */

enum sup_stream { SUP_STDOUT = 1, SUP_STDERR = 2 };

enum sup_restart {
    SUP_RESTART_NEVER = 0,  /* an exit is final */
    SUP_RESTART_ON_FAILURE, /* restart after a non-zero exit status or a signal */
    SUP_RESTART_ALWAYS,     /* restart after any exit that sup_instance_stop did not ask for */
};

enum sup_state {
    SUP_STARTING = 0, /* spawned, up for less than cfg.start_period_ms */
    SUP_RUNNING,      /* up for at least cfg.start_period_ms */
    SUP_STOPPING,     /* sup_instance_stop sent SIGTERM; SIGKILL follows after the grace */
    SUP_EXITED,       /* not running and not coming back (stopped, or the policy said no) */
    SUP_BACKOFF,      /* exited; restarts when the backoff delay has passed */
    SUP_CRASH_LOOP,   /* as BACKOFF, but it restarted too often: the delay is backoff_max_ms */
};
const char *sup_state_name(enum sup_state st); /* "starting", ..., "crash-loop"; never NULL */

/* How a process ended: exactly one of the two is non-zero, or both are zero for exit(0). */
struct sup_exit {
    int64_t status; /* exit status, or -errno when the restart could not spawn at all */
    int signal;     /* the signal that killed it, 0 if it exited */
};

/* Events for the log and the layers above (registry, `shoal ps`). */
enum sup_event_kind {
    SUP_EV_STARTED = 0, /* spawned: pid is set */
    SUP_EV_EXITED,      /* the process ended (any reason): exit is set */
    SUP_EV_BACKOFF,     /* a restart is scheduled in delay_ms */
    SUP_EV_CRASH_LOOP,  /* cfg.crash_loop_restarts restarts within the window; in delay_ms */
    SUP_EV_SPAWN_FAILED /* a restart could not spawn: exit.status = -errno */
};
struct sup_event {
    enum sup_event_kind kind;
    uint64_t id;
    const char *service; /* borrowed for the call */
    int pid;
    struct sup_exit exit;
    uint32_t delay_ms;
    uint32_t restarts; /* restarts so far, this one included for BACKOFF/CRASH_LOOP */
};

/* A line of a child's output: <line> without its "\n" (and without a "\r" before it), valid
 * only during the call. A line longer than cfg.max_line_bytes is delivered cut to that length
 * with is_cut set, as soon as that much has arrived; its remaining bytes up to the next "\n"
 * are dropped, so memory stays bounded whatever the child writes. Output that ends without a
 * newline is delivered as a last line when the process exits. */
typedef void sup_line_fn(void *data, uint64_t id, enum sup_stream stream, struct slice line,
                         bool is_cut);
typedef void sup_event_fn(void *data, const struct sup_event *ev);
/* What happens to events when no on_event is set: one log line each (SH_LOG "supervisor"). */
void sup_event_log(const struct sup_event *ev);
/* Called once when a stopped instance has exited; <ex> is how its process ended (the last
 * exit recorded, or zeros, when nothing was running at the time of the stop). */
typedef void sup_stop_fn(void *data, uint64_t id, const struct sup_exit *ex);

struct sup_procs_config {
    /* NULL-terminated argv prefix of the trampoline, e.g. {"/usr/bin/shoal", "__child",
     * "--", NULL}; copied. NULL spawns argv directly (then a kill -9 of shoal leaves the
     * children running). */
    const char *const *trampoline;
    /* NULL-terminated argv of the reaper, e.g. {"/usr/bin/shoal", "__reaper", NULL}, started
     * by sup_procs_new: a detached helper that learns each instance's process group as it
     * starts and ends, and kills every group still running when shoal goes away (its stdin
     * reaches EOF), also after kill -9. That takes along what instances started themselves
     * (the trampoline's PDEATHSIG reaches only the main process), unless they left the group
     * (setsid, setpgid). NULL: no reaper. */
    const char *const *reaper;
    sup_line_fn *on_line;          /* NULL drops output */
    sup_event_fn *on_event;        /* NULL: events are logged with SH_LOG under "supervisor" */
    void *data;                    /* passed to on_line and on_event */
    uint32_t start_period_ms;      /* STARTING -> RUNNING after this uptime; 0 = 1000 */
    uint32_t backoff_initial_ms;   /* first restart delay, doubled each time; 0 = 100 */
    uint32_t backoff_max_ms;       /* cap of the delay, and the crash-loop delay; 0 = 30000 */
    uint32_t backoff_reset_ms;     /* uptime that resets backoff and crash-loop; 0 = 10000 */
    uint32_t crash_loop_restarts;  /* this many restarts within ... ; 0 = 5, at most 64 */
    uint32_t crash_loop_window_ms; /* ... this window is a crash loop; 0 = 60000 */
    size_t max_line_bytes;         /* 0 = SUP_MAX_LINE_BYTES */
};
#define SUP_MAX_LINE_BYTES (16u * 1024)

/* What an instance runs. Everything is copied by sup_instance_start. */
struct sup_instance_spec {
    const char *service;              /* the service's name, for status and events; NULL = "" */
    const char *const *argv;          /* NULL-terminated, at least argv[0] (looked up in PATH) */
    const char *const *env;           /* NULL-terminated "NAME=value" added to shoal's own
                                         environment (replacing a variable of the same name); may be
                                         NULL */
    const char *const *env_templates; /* NULL-terminated "NAME=value" added after env, each
                                 value expanded by sup_env_expand against: PORT and SHOAL_PORT
                                 (when there is a port), SHOAL_DATA_DIR (data_dir),
                                 SHOAL_SERVICE (service), then <env>, then shoal's own
                                 environment. An unknown variable, a syntax error or a value
                                 past SUP_ENV_VALUE_MAX fails the start (sup_procs_errmsg says
                                 which variable and why); may be NULL */
    const char *data_dir;             /* non-NULL: the instance's own directory, created (mode 0700,
                                         missing parents too) before the start and passed as
                                         SHOAL_DATA_DIR; an absolute path, so the instance may change
                                         its working directory */
    const char *cwd;                  /* working directory; NULL = shoal's */
    uint16_t port;                    /* non-zero: passed as PORT and SHOAL_PORT */
    bool is_port_auto; /* pick a free loopback TCP port instead (kept across restarts) */
    enum sup_restart restart;
};

/* Per instance, for `shoal ps`. */
struct sup_instance_status {
    uint64_t id;
    const char *service; /* borrowed: valid until the instance is forgotten or procs freed */
    int pid;             /* 0 when no process runs */
    uint16_t port;       /* 0 when none */
    enum sup_state state;
    bool is_crash_loop; /* a crash loop was detected and no run has lasted backoff_reset_ms */
    uint32_t restarts;
    bool has_exited; /* last_exit is set */
    struct sup_exit last_exit;
    uint64_t started_wall_ms; /* when the current (or last) process was spawned, Unix ms */
};

/* Creates the process layer on <loop>, which must outlive it.
 * Returns 0 and sets *out, or SH_EINVAL (crash_loop_restarts > 64) / SH_ENOMEM / -errno from
 * starting the reaper, and NULL (after a failed reaper start, run the loop before closing it). */
SH_MUST_CHECK int sup_procs_new(const struct sup_procs_config *cfg, uv_loop_t *loop,
                                struct sup_procs **out);
/* Kills every instance's process group with SIGKILL and releases everything. No callback
 * runs after this call (pending stop callbacks are dropped). Memory and handles are released
 * from close and exit callbacks, so run the loop afterwards (uv_run until it has no more
 * handles) before uv_loop_close; the children are reaped there, leaving no zombie. Must not
 * be called from inside one of this object's callbacks. NULL is a no-op. */
void sup_procs_free(struct sup_procs *procs);

/* Spawns an instance of <spec>. Returns 0 and sets *out_id (never 0), or a negative code and
 * 0: SH_EINVAL (no argv[0]), SH_ENOMEM, -errno from finding a port or from uv_spawn (e.g.
 * SH_ENOENT when argv[0] does not exist and there is no trampoline; with a trampoline that
 * case is an exit with status 127 and the message on stderr). */
SH_MUST_CHECK int sup_instance_start(struct sup_procs *procs, const struct sup_instance_spec *spec,
                                     uint64_t *out_id);
/* Sets variable <name> to <value> in the environment instance <id>'s next runs get (the
 * restarts after an exit); the process running now keeps its own. Values the templates were
 * expanded from at the start are not expanded again. 0, SH_ENOENT (no such id), SH_ENOMEM. */
SH_MUST_CHECK int sup_instance_setenv(struct sup_procs *procs, uint64_t id, const char *name,
                                      const char *value);
/* Why the last sup_instance_start failed when the reason is more than its code: the variable
 * that could not be expanded, the data directory that could not be created ("env NAMES_DB:
 * unknown variable 'X'"). "" after a start that succeeded or failed otherwise. Valid until the
 * next call on procs. */
const char *sup_procs_errmsg(const struct sup_procs *procs);
/* Stops instance <id> for good: SIGTERM to its group, SIGKILL after <grace_ms> (0 = at once),
 * no more restarts. cb(data, id, exit) runs once when it has exited (never from inside this
 * call; also when it was already exited or waiting in backoff). cb may be NULL.
 * Returns 0, SH_ENOENT (no such id) or SH_EBUSY (a stop is already under way). */
SH_MUST_CHECK int sup_instance_stop(struct sup_procs *procs, uint64_t id, uint32_t grace_ms,
                                    sup_stop_fn *cb, void *data);
/* Drops an EXITED instance from the table (its status disappears). Returns 0, SH_ENOENT, or
 * SH_EBUSY when it is not EXITED (stop it first). May be called from its stop callback. */
SH_MUST_CHECK int sup_instance_forget(struct sup_procs *procs, uint64_t id);
/* The status of instance <id>: 0 and *out, or SH_ENOENT. */
SH_MUST_CHECK int sup_instance_status(const struct sup_procs *procs, uint64_t id,
                                      struct sup_instance_status *out);
/* Fills out[0..cap) with the instances in start order and returns how many there are (which
 * may be more than cap: call again with a larger array). out may be NULL when cap is 0. */
size_t sup_procs_status(const struct sup_procs *procs, struct sup_instance_status *out, size_t cap);

/* The trampoline: `shoal __child [--] CMD [ARG...]` (argv[0] is the command name). Sets
 * PR_SET_PDEATHSIG to SIGKILL, checks that the parent is still the supervisor that spawned it
 * (SHOAL_SUPERVISOR_PID, which it removes from the environment), then execvp(CMD). Returns
 * only on failure: 2 for bad usage, 127 when CMD cannot be executed (message on stderr). */
int sup_child_main(int argc, char **argv);

/* The reaper: `shoal __reaper` (internal), started by sup_procs_new with cfg.reaper. Reads
 * "+PGID\n" and "-PGID\n" lines on stdin; at EOF (the supervisor closed it or died) sends
 * SIGKILL to every group still listed and returns 0. Ignores SIGINT, SIGTERM and SIGHUP. */
int sup_reaper_main(int argc, char **argv);

#endif
