/* SPDX-License-Identifier: MIT */
/* supervisor.h: the supervisor (manifest, processes, restarts, scaling, deployments). For now,
 * the manifest reader: YAML text into a core document tree (struct sh_doc) whose nodes keep
 * their file:line:column, so each component validates its own part of a configuration file.
 * Threads: the reader keeps no state; any thread may call it.
 * Prefixes: manifest_, MANIFEST_.   (Guard SHOAL_SUPERVISOR_H; includes core/core.h.) */
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
    const char *http_path;         /* HTTP: "/health"; NULL otherwise */
    uint32_t interval_ms;          /* default 5000 */
    uint32_t timeout_ms;           /* default 2000; at most interval_ms */
    uint32_t healthy_threshold;    /* passes in a row to become healthy; default 1 */
    uint32_t unhealthy_threshold;  /* failures in a row to become unhealthy; default 3 */
    uint32_t start_period_ms;      /* failures after a start do not count this long; default 0 */
};

struct manifest_autoscale {
    bool is_set;                    /* false: fields below are zero and replicas is fixed */
    uint32_t min, max;              /* min <= max <= MANIFEST_MAX_REPLICAS, max >= 1 */
    enum manifest_target_kind target_kind;
    uint64_t target;                /* per instance: in flight, req/s, or p99 in ms */
    uint32_t up_cooldown_ms;        /* default 30000 */
    uint32_t down_cooldown_ms;      /* default 300000 */
};

struct manifest_service {
    const char *name;               /* a DNS label: [a-z0-9-], 1..63, no '-' at either end */
    const char *const *argv;        /* argc >= 1 items, argv[argc] == NULL; "$PORT", "${X}" and
                                     * "$$" are kept as written, for expansion at spawn time */
    size_t argc;
    const struct manifest_kv *env;  /* env_count pairs */
    size_t env_count;
    const char *working_dir;        /* NULL: the manifest's directory */
    uint32_t replicas;              /* 0..MANIFEST_MAX_REPLICAS; default 1 (autoscale: min, at
                                     * least 1) */
    bool is_port_auto;              /* port: auto (assigned per instance) */
    uint16_t port;                  /* port: N; 0 with !is_port_auto means no port */
    struct manifest_health health;
    const char *const *depends_on;  /* names of other services, depends_count of them */
    const uint32_t *depends_idx;    /* the same as indexes into manifest.services */
    size_t depends_count;
    enum manifest_restart restart;
    uint32_t stop_grace_ms;         /* SIGTERM, then SIGKILL after this; default 10000 */
    const char *version;            /* NULL when not given */
    struct manifest_autoscale autoscale;
    const struct sh_node *resilience; /* borrowed MAP in the gateway's cluster syntax, or NULL */
    const struct manifest_kv *config; /* default config keys, config_count pairs */
    size_t config_count;
    const struct sh_node *node;     /* borrowed: the service's MAP, for positions */
};

struct manifest_gateway {
    bool is_set;                    /* false when the manifest has no gateway section */
    const char *listen;             /* default MANIFEST_DEFAULT_GATEWAY_LISTEN */
    const char *admin;              /* NULL: no admin listener */
    size_t route_count;
    const struct sh_node *routes;   /* borrowed SEQ of route MAPs in the gateway's syntax with
                                     * "service: NAME" for "cluster:" (see manifest_gateway_doc) */
    const struct sh_node *node;     /* borrowed: the gateway MAP */
};

struct manifest {
    const char *file;                 /* the doc's file name */
    const char *name;                 /* NULL when not given */
    const char *control_plane_listen; /* default MANIFEST_DEFAULT_CONTROL_PLANE */
    const char *data_dir;             /* as written (relative to the manifest's directory);
                                       * default MANIFEST_DEFAULT_DATA_DIR */
    struct manifest_service *services; /* service_count, in the order written */
    size_t service_count;
    uint32_t *start_order;            /* service indexes, each after all it depends on */
    struct manifest_gateway gateway;
    const struct sh_doc *doc;         /* the doc read from (owned only via load_file) */
    struct sh_doc *owned_doc;         /* private */
    struct arena arena;               /* private */
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
 *   listen/admin/workers/access_log/limits    as in the manifest's gateway section;
 *   control_plane: {address: control_plane_listen};
 *   clusters: one per service, {name: S, service: S, <the service's resilience keys>};
 *   routes: the manifest's routes with each "service:" key renamed "cluster:".
 * Nodes copied from the manifest are shared, not copied, so the proxy's errors keep
 * shoal.yaml's line and column (with the proxy's paths, such as "clusters[api].retry.max").
 * Returns 0 and *out (caller frees with sh_doc_free, before the manifest's doc), or SH_ENOMEM. */
SH_MUST_CHECK int manifest_gateway_doc(const struct manifest *m, struct sh_doc **out);

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

#endif
