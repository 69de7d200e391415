/* SPDX-License-Identifier: MIT */
/* admin.h: the control plane's HTTP API (JSON, versioned under /v1): status, the registry, the
 * config KV, the Consul-compatible subset existing clients use, and Prometheus service
 * discovery, API tokens and the audit log, the CA. One route table (admin_routes in routes.c);
 * every route but GET /v1/status needs a token whose scope covers it (security.h). Prefixes:
 * admin_. Threads: the control thread's loop only. */
#ifndef SHOAL_ADMIN_H
#define SHOAL_ADMIN_H

#include "core/core.h"
#include "http/http.h"

#include <uv.h>

struct store;
struct sec_tokens;
struct sec_audit;
struct sec_itable;
struct sec_ca;
struct registry;
struct cfgkv;
struct obs_logs;
struct obs_spans;
struct obs_history;
struct admin;

/* What a supervisor in the same process (shoal up) offers the API. */
struct admin_supervisor {
    /* GET /v1/instances: the instances as a JSON array into <out>. 0 or SH_E*. */
    int (*instances)(void *data, struct buf *out);
    /* POST /v1/stop (shoal down): stop everything, as SIGTERM would. Called after the 202
     * answer is queued; the admin API is stopped by the supervisor as usual. */
    void (*stop)(void *data);
    /* GET /v1/logs: the kept output lines of <service> (NULL: all) from <since_ms> (Unix ms)
     * with a sequence number above <after_seq>, that contain <grep> (NULL: all), oldest
     * first, as a JSON array. 0 or SH_E*. */
    int (*logs)(void *data, const char *service, uint64_t since_ms, uint64_t after_seq,
                const char *grep, struct buf *out);
    /* GET /v1/stack: every service's wanted and actual replicas, load, autoscaler and restart
     * state as one JSON object. 0 or SH_E*. */
    int (*stack)(void *data, struct buf *out);
    /* POST /v1/scale/:service {"replicas": N}: the service's wanted count becomes N (*was gets
     * the previous). 0, or SH_ENOENT (404) / SH_EBUSY (409) / SH_EINVAL (400) with d set. */
    int (*scale)(void *data, const char *service, uint32_t replicas, uint32_t *was,
                 struct sh_diag *d);
    /* POST /v1/restart/:service: a rolling restart of its *count instances begins. 0, or
     * SH_ENOENT (404) / SH_EBUSY (409, one is under way) with d set. */
    int (*restart)(void *data, const char *service, uint32_t *count, struct sh_diag *d);
    void *data;
};

struct admin_config {
    const char *listen;            /* "127.0.0.1:7700" when NULL */
    const char *zipkin_listen;     /* a second listener with only Zipkin's API (/api/v2/...,
                                    * same tokens), e.g. "127.0.0.1:9411"; NULL: none */
    struct sec_tokens *tokens;     /* borrowed: every route but GET /v1/status needs one of them */
    struct sec_audit *audit;       /* borrowed: every write is logged there; NULL = none */
    struct sec_itable *intentions; /* borrowed: /v1/intentions; NULL = none (404) */
    struct sec_ca *ca;             /* borrowed: GET /v1/ca, rotate, sign; NULL = none (404) */
    const char *datacenter;        /* "dc1" when NULL (Consul answers carry it) */
    const char *node;              /* this node's name; the host name when NULL */
    size_t max_body_bytes;         /* 413 above it; 0 = 1 MiB */
    struct store *store;           /* borrowed; may be NULL while a component is not running */
    struct registry *registry;
    struct cfgkv *kv;
    const struct admin_supervisor *supervisor; /* borrowed; NULL: none here (404s) */
    /* GET /v1/logs searches it (borrowed; the caller's thread owns it); NULL: the
     * supervisor's in-memory lines answer, as before the store */
    struct obs_logs *logs;
    struct obs_spans *spans; /* the span store (Zipkin/OTLP routes); NULL: 503 */
    /* GET /v1/metrics/history, /v1/topology and /v1/slo read it (borrowed; the caller's thread
     * owns and fills it); NULL: those routes answer 404 */
    struct obs_history *history;
    /* Holds answers until the store's group commit is synced; zeroed = none. */
    struct http_barrier barrier;
};

/* Starts listening. 0 and *out, or a negative code with d filled (address in use...). */
SH_MUST_CHECK int admin_new(uv_loop_t *loop, const struct admin_config *cfg, struct admin **out,
                            struct sh_diag *d);
uint16_t admin_port(const struct admin *a);
/* Stops listening; in-flight requests (blocking queries included) are answered or closed
 * within deadline_ms; then done(data). Free after done. */
void admin_stop(struct admin *a, uint32_t deadline_ms, void (*done)(void *), void *data);
void admin_free(struct admin *a); /* NULL is a no-op */

/* The token kept in <data_dir>/token (0600): read it, or create a random one on first start.
 * *created tells whether it was made now (the caller prints it once). 0 or SH_E* with d. */
SH_MUST_CHECK int admin_token_load(const char *data_dir, char *out, size_t out_len, bool *created,
                                   struct sh_diag *d);

#endif
