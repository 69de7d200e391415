/* SPDX-License-Identifier: MIT */
/* proxy_int.h: private declarations shared by the proxy's files: the per-worker runtime state
 * built for each config generation, and the forwarding entry points.
 * Thread: everything here belongs to one worker thread, except struct gw_health (written by the
 * control thread with atomic stores, read by workers with atomic loads). */
#ifndef SHOAL_PROXY_INT_H
#define SHOAL_PROXY_INT_H

#include "proxy/proxy.h"
#include "telemetry/telemetry.h"

int proxy__lb_build(struct proxy_cluster *cl, struct arena *a);
/* The index of the endpoint of cl with ep's name and generation (the same registration), or
 * -1. */
int proxy__endpoint_index(const struct proxy_cluster *cl, const struct proxy_endpoint *ep);
/* Whether a route's runtime (stale copies, rate-limit buckets) may pass from route a of one
 * config to route b of the next: the same name and the same fallback and rate-limit settings. */
bool proxy__route_state_carries(const struct proxy_route *a, const struct proxy_route *b);

/* Active health results for every endpoint of every cluster of one config: 1 healthy,
 * 0 unhealthy; and each endpoint's revival count, which the control thread bumps when an
 * active health check passes (workers then return the endpoint from outlier ejection at once).
 * Lives as long as the snapshot that carries it; both carry over to the next snapshot by
 * endpoint name and generation. */
struct gw_health {
    _Atomic uint8_t **healthy;  /* [cluster][endpoint] */
    _Atomic uint32_t **revival; /* [cluster][endpoint] */
    uint32_t nclusters;
};

/* Outcome classes used as metric labels: 0 = transport error, 1..5 = 1xx..5xx. */
enum { GW_CLASSES = 6 };

struct gw_families {
    struct metric_family *requests, *responses, *retries, *fast_fails, *upstream_errors;
    struct metric_family *connections;
    struct metric_family *route_requests, *route_duration, *route_ratelimited, *route_fallbacks;
    struct metric_family *cluster_requests, *cluster_duration, *cluster_retries;
    struct metric_family *breaker_open, *breaker_opens, *ejections, *cluster_in_flight;
    struct metric_family *endpoint_requests, *endpoint_healthy;
    struct metric_family *spans_recorded, *spans_dropped;
    /* the metrics history's (internal: not in /metrics) */
    struct metric_family *route_sketch, *edge_requests, *edge_errors, *edge_sketch;
};

/* The per-edge series are [caller slot * nclusters + cluster], the slots of the caller label
 * below (slot 0: the gateway's own requests, or the caller not known at the mesh). Slot 0's are
 * made with the generation, the others on first use (proxy__edge_series), as route series. */
enum { GW_EDGE_CALLER_UNKNOWN = 0 };

/* The series handles of one config generation (indexes follow the config's arrays).
 * Per route and caller (the label "caller"): caller 0 is "gateway" when the config's identity
 * is OFF (then it is the only one) and "unknown" otherwise; caller 1 + i is the service of
 * cluster i (the mesh's callers are its services). Caller 0's series are made with the
 * generation; the others when a worker first records one (proxy__route_series): their slots
 * start NULL and are filled with an atomic store (two workers racing store the same handle). */
struct gw_mh {
    uint32_t nroutes, nclusters, *nendpoints, ncallers;
    const struct proxy_config *cfg; /* the generation's (route and cluster names) */
    struct metric_counter *requests, *responses[GW_CLASSES], *retries, *fast_fails;
    struct metric_counter *upstream_errors, *spans_recorded, *spans_dropped;
    struct metric_counter *_Atomic *route_requests;   /* [(route * ncallers + caller) *
                                                       * GW_CLASSES + class] */
    struct metric_histogram *_Atomic *route_duration; /* [route * ncallers + caller] */
    struct metric_counter **route_ratelimited, **route_fallbacks;
    struct metric_counter **cluster_requests; /* [cluster * GW_CLASSES + class] */
    struct metric_histogram **cluster_duration;
    struct metric_counter **cluster_retries, **breaker_opens, **ejections;
    struct metric_gauge **breaker_open, **cluster_in_flight;
    struct metric_counter ***endpoint_requests; /* [cluster][endpoint * GW_CLASSES + class] */
    struct metric_gauge ***endpoint_healthy;    /* [cluster][endpoint] */
    struct metric_sketch **route_sketch;        /* [route]: request durations */
    /* [slot * nclusters + cluster], slots as the caller label's (ncallers); NULL until made */
    struct metric_counter *_Atomic *edge_requests, *_Atomic *edge_errors;
    struct metric_sketch *_Atomic *edge_sketch; /* idem: request durations */
};

/* What workers read through the snapshot: the config, its health table, its metric series. */
struct gw_snapshot {
    struct proxy_config *cfg;
    struct gw_health health;
    struct gw_mh mh;
};

struct gw_cluster_rt {
    const struct proxy_cluster *cfg;
    _Atomic uint8_t *healthy;
    _Atomic uint32_t *revival;
    struct proxy_lb_state lb;
    struct proxy_outlier_state *eps;
    uint32_t *active; /* in flight per endpoint */
    bool *excluded;   /* scratch for picks */
    bool *tried;      /* scratch for picks */
    uint32_t active_requests;
    struct proxy_breaker_state breaker;
    struct proxy_budget budget; /* retries: earned by requests, spent by retries */
    uint64_t retries, breaker_opens, ejections_total, rejected_limit;
};

/* The stale fallback of one route on one worker (cache.c): the last good answers to GETs,
 * keyed by method, Host and target (plus Authorization and Cookie with per_credential; requests
 * carrying them are not cached otherwise), in a hash table bounded by max_total_bytes (least
 * recently used out first). Answers with Set-Cookie or Cache-Control private/no-store are never
 * kept. Zeroed = empty. */
struct gw_cache_key {
    uint64_t h;
    size_t len;
};
/* One allocation: this header, then the key bytes, the content type and a NUL, the body. */
struct gw_cache_entry {
    struct gw_cache_entry *hnext;               /* bucket chain */
    struct gw_cache_entry *lru_prev, *lru_next; /* towards newer / older */
    struct gw_cache_key key;
    size_t ctype_len, body_len;
    size_t size; /* bytes charged against max_total_bytes: the whole allocation */
    uint64_t stored_ms;
    uint16_t status;
};
struct gw_cache {
    struct gw_cache_entry **buckets; /* nbuckets, a power of two (0 before the first store) */
    uint32_t nbuckets, count;
    struct gw_cache_entry *newest, *oldest; /* LRU list */
    size_t bytes;
    uint64_t seed; /* hash basis, random, chosen with the first bucket array */
};
static inline const char *proxy__cache_entry_key(const struct gw_cache_entry *e)
{
    return (const char *)(e + 1);
}
static inline const char *proxy__cache_entry_ctype(const struct gw_cache_entry *e)
{
    return proxy__cache_entry_key(e) + e->key.len; /* NUL-terminated */
}
static inline const char *proxy__cache_entry_body(const struct gw_cache_entry *e)
{
    return proxy__cache_entry_ctype(e) + e->ctype_len + 1;
}
/* Whether req may be stored or served at all: GET on a route with a fallback, and no
 * Authorization or Cookie field unless the route has per_credential. */
bool proxy__cache_request_ok(const struct proxy_fallback *fb, const struct http_head *req);
/* Whether an answer may be stored: 200, no Set-Cookie, no Cache-Control private/no-store. */
bool proxy__cache_response_ok(const struct http_head *resp);
/* The fresh copy for req, or NULL (an expired one is dropped). Borrowed: valid until the next
 * store or release on c. A hit becomes the most recently used. */
const struct gw_cache_entry *proxy__cache_find(struct gw_cache *c, const struct proxy_fallback *fb,
                                               const struct http_head *req, uint64_t now_ms);
/* Starts capturing the answer resp to req into *cap (released first): true when it may be
 * stored; the caller then appends body bytes to *cap (capped at max_entry_bytes: an append
 * that fails means "too big, do not store") and hands it to proxy__cache_store. */
bool proxy__cache_capture_begin(struct buf *cap, const struct proxy_fallback *fb,
                                const struct http_head *req, const struct http_head *resp);
/* Stores a complete capture, taking its memory (cap is reset): replaces the copy under the same
 * key, then evicts least recently used copies while the total is over max_total_bytes. A
 * capture with an error, or larger than max_total_bytes alone, is dropped. */
void proxy__cache_store(struct gw_cache *c, const struct proxy_fallback *fb, struct buf *cap,
                        uint64_t now_ms);
void proxy__cache_release(struct gw_cache *c); /* frees every copy; c is left empty */

/* Verified tokens of one JWT route on one worker (jwtauth.c): a hash table keyed by the token
 * (a seeded 64-bit hash, then the whole token compared), least recently used out first, bounded
 * by the route's cache_entries and GW_JWT_CACHE_BYTES. An entry holds the claim values for the
 * headers and expires at the token's exp + leeway (GW_JWT_CACHE_NO_EXP_S after it was verified
 * when the token has no exp), or when the key set it was verified with is replaced. Zeroed =
 * empty. */
enum { GW_JWT_CACHE_BYTES = 4 << 20, GW_JWT_CACHE_NO_EXP_S = 300 };
struct gw_jwt_entry;
struct gw_jwt_cache {
    struct gw_jwt_entry **buckets; /* nbuckets, a power of two (0 before the first insert) */
    uint32_t nbuckets, count;
    struct gw_jwt_entry *newest, *oldest;
    size_t bytes;
    uint64_t seed;
    uint64_t hits, misses;
};
void proxy__jwt_cache_release(struct gw_jwt_cache *c);

struct gw_route_rt {
    struct proxy_bucket *buckets; /* rate limiting, fixed table */
    uint32_t nbuckets;
    struct gw_cache cache; /* stale fallback */
    struct gw_jwt_cache jwt_cache;
    uint64_t ratelimited, fallbacks;
};

struct gw_worker;
struct proxy_gateway;

/* What a JWT route decided about one request (proxy__jwt_check). */
struct gw_jwt_outcome {
    int status;              /* 0: pass; else 400, 401 or 503 to answer */
    enum sec_jwt_status why; /* the verifier's reason (SEC_JWT_OK when the token was missing
                              * or the keys were) */
    char www_authenticate[400];
    char body[400];                                    /* JSON */
    struct http_out_field fields[SEC_JWT_MAX_EXTRACT]; /* pass: claims to headers, in the arena */
    uint32_t nfields;
    bool cache_hit;
};
/* Checks the token of request h on route rt (whose runtime on this worker is rr) at now_s (Unix
 * seconds); header values are copied into a. Worker thread. */
void proxy__jwt_check(struct gw_worker *w, struct gw_route_rt *rr, const struct proxy_route *rt,
                      const struct http_head *h, struct arena *a, uint64_t now_s,
                      struct gw_jwt_outcome *out);
/* Whether the incoming field name is one a JWT route removes before forwarding: a header of
 * claims_to_headers (always: a client must not forge it), or the token's own field when
 * forward_token is off. */
bool proxy__jwt_strips(const struct proxy_jwt *j, struct slice name);

/* JWKS fetched from URLs: one source per distinct URL, kept for the gateway's life (workers may
 * hold pointers to it). The control thread fetches each (at start, every refresh_ms, and when a
 * worker met an unknown kid, at most once per min_refresh_ms) and publishes every source's
 * current key set as one snapshot (struct gw_keys) that workers read like the config. */
struct gw_keyset;
struct gw_jwks_source {
    struct gw_jwks_source *next;
    struct proxy_gateway *gw;
    char *url, *host, *path;
    struct sockaddr_storage addr;
    uint32_t refresh_ms, min_refresh_ms;
    struct gw_keyset *set; /* the current key set (NULL before the first good fetch) */
    uint64_t last_fetch_ms, next_fetch_ms;
    struct http_creq *cr; /* the fetch in flight */
    struct buf body;
    uint16_t status;
    _Atomic bool want; /* a worker met an unknown kid, or found no keys */
    uint64_t fetches, failures;
};
int proxy__jwks_init(struct proxy_gateway *gw);
/* Adds a source for each jwks_url of cfg not known yet (its first fetch starts at once). */
void proxy__jwks_sync(struct proxy_gateway *gw, const struct proxy_config *cfg);
/* The timer and the wake-up on the control loop (gateway.c counts and closes them); start
 * arms the timer once the gateway's HTTP client exists. */
void proxy__jwks_handles_init(struct proxy_gateway *gw);
void proxy__jwks_start(struct proxy_gateway *gw);
void proxy__jwks_stop(struct proxy_gateway *gw); /* cancels fetches in flight */
void proxy__jwks_free(struct proxy_gateway *gw); /* before the handles are closed */

struct gw_worker;
struct fwd;

/* One config generation as one worker sees it. Counted: the worker holds one reference and
 * every request forwarded under it holds one. */
struct gw_state {
    struct snap *snap;
    const struct gw_snapshot *gs;
    const struct proxy_config *cfg;
    struct gw_cluster_rt *clusters;
    struct gw_route_rt *routes;
    uint32_t refs;
};

/* One loop turn's access lines, handed to the control thread (proxy_gateway_access_drain). */
struct gw_log_chunk {
    struct gw_log_chunk *next;
    size_t len;
    char data[];
};

struct gw_worker {
    struct proxy_gateway *gw;
    struct snap_reader *callers_reader;
    struct snap *callers; /* the credentials table this worker last took (obj may be NULL) */
    uint64_t callers_version;
    struct snap_reader *intentions_reader;
    struct snap *intentions; /* the intentions this worker last took (obj may be NULL) */
    uint64_t intentions_version;
    uint32_t index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_prepare_t log_flush;
    struct http_server *srv;
    struct http_server *inbound; /* the mesh's mTLS listener, or NULL */
    bool shutting;
    struct http_client *client;
    struct snap_reader *reader;
    uint64_t version;
    struct gw_state *state;
    struct buf access_log;
    _Atomic(struct gw_log_chunk *) access_out; /* newest first; the control thread takes all */
    struct metric_gauge *connections;
    struct fwd *dead, *pool; /* ended requests to release; released ones to reuse */
    uint32_t npool;
    uv_timer_t stats_timer;
    struct trace_rng trng;
    struct snap_reader *keys_reader; /* the JWKS fetched from URLs (gw->keys_dom) */
    struct snap *keys_snap;
    uint64_t keys_version;
    uint64_t rng;
    bool stopping, loop_ready, handles_ready, thread_started, joined;
    _Atomic bool exited;
};

struct gw_hc_state {
    uint32_t oks, fails;
    uint64_t next_ms;
    bool in_flight;
};

struct proxy_gateway {
    uv_loop_t *loop; /* the control thread's */
    struct snap_domain *dom;
    struct gw_snapshot *current; /* the last published (owned by dom) */
    uint64_t generation;         /* publishes so far; health probes of older ones are ignored */
    struct gw_worker *workers;
    uint32_t nworkers, workers_running;
    uint16_t port, admin_port, inbound_port;
    struct tls_server *inbound_tls; /* inbound: the mTLS listeners' certificates */
    struct http_server *admin;
    struct http_server *redirect; /* tls.redirect_http: 308 to https:// (control loop) */
    struct tls_server *tls;       /* tls: the workers' listeners terminate TLS with it */
    char hsts_line[160];          /* "Strict-Transport-Security: ...\r\n" or "" */
    struct http_client *health_client;
    struct gw_hc_state **hc; /* [cluster][endpoint], for the current generation */
    uint32_t hc_nclusters;
    uv_timer_t health_timer, collect_timer;
    uv_async_t worker_done;
    /* JWKS from URLs (jwtauth.c) */
    struct snap_domain *keys_dom;
    struct gw_jwks_source *jwks_sources;
    uint64_t jwks_next_id;
    uv_timer_t jwks_timer;
    uv_async_t jwks_wake;
    struct metrics *metrics;
    struct gw_families fam;
    struct snap_domain *callers_dom;    /* struct proxy_callers, proxy_gateway_set_callers */
    struct snap_domain *intentions_dom; /* struct sec_intentions, proxy_gateway_set_intentions */
    struct trace_queue *_Atomic spans;  /* proxy_gateway_set_spans; NULL: tracing off */
    uint32_t span_shard;                /* worker i pushes into span_shard + i */
    int open_handles;
    char listen[96];
    _Atomic uint32_t stop_deadline_ms;
    void (*stop_done)(void *);
    void *stop_data;
    bool stopping, admin_down, free_requested;
    _Atomic bool access_capture;   /* access lines go to access_out, not stdout */
    _Atomic size_t access_pending; /* bytes handed over, not yet drained */
    _Atomic uint64_t access_dropped;
};

/* span.c: one hop's span from the plain record of how its request went. */
enum proxy_span_event_kind {
    PROXY_EV_RETRY = 0,    /* detail: why (the failure retried) */
    PROXY_EV_BREAKER_OPEN, /* failed fast: the cluster's breaker is open */
    PROXY_EV_EJECTED,      /* detail: the endpoint this request's failure ejected */
    PROXY_EV_STALE,        /* answered with the route's stale copy */
    PROXY_EV_BUDGET,       /* a retry was due and the retry budget said no */
};
struct proxy_span_event {
    uint64_t at_us; /* Unix microseconds */
    enum proxy_span_event_kind kind;
    const char *detail; /* borrowed (a constant, or a name in the request's config); may be NULL */
};
enum { PROXY_SPAN_MAX_EVENTS = 12, PROXY_SPAN_SCRATCH = 2048 };
struct proxy_span_input {
    const uint8_t *trace_id;  /* TRACE_ID_BYTES */
    const uint8_t *span_id;   /* TRACE_SPAN_ID_BYTES: the id sent downstream */
    const uint8_t *parent_id; /* the caller's span, or NULL (a trace this hop started) */
    uint64_t start_us;        /* Unix microseconds */
    uint64_t duration_us;
    struct slice local_service;  /* "gateway", or the caller ("greeter", "unknown") */
    struct slice remote_service; /* the service called; empty when no cluster was chosen */
    struct slice method, target; /* the target's query is left out of http.path */
    struct slice route, cluster, endpoint, caller_instance;
    int status;            /* what the client got (499: it left first) */
    bool transport_failed; /* no answer from the upstream (refused, reset, timed out) */
    uint32_t attempts;
    bool has_upstream;              /* an attempt got a response head: upstream_us is set */
    uint64_t queue_us, upstream_us; /* head -> first attempt; last attempt -> response head */
    const struct proxy_span_event *events;
    uint32_t nevents;
};
/* Fills *out: CLIENT kind, named "<method> <route>" in lower case, the tags and annotations of
 * docs/observability.md; slices point into <in>'s strings and into scratch. Events past
 * TRACE_SPAN_MAX_ANNOTATIONS are left out. 0, or SH_ETOOBIG when scratch is too small (use
 * PROXY_SPAN_SCRATCH). */
int proxy__span_build(const struct proxy_span_input *in, char *scratch, size_t scratch_len,
                      struct trace_span *out);

/* metrics.c */
int proxy__metrics_init(struct proxy_gateway *gw);
int proxy__metrics_worker_init(struct proxy_gateway *gw, struct gw_worker *w);
int proxy__metrics_build(struct proxy_gateway *gw, const struct gw_mh *prev, struct gw_mh *mh,
                         const struct proxy_config *cfg);
void proxy__metrics_release(struct gw_mh *mh);
int proxy__status_class(int status);
/* The route/caller series of mh for the request (worker thread): made on first use (the
 * registry's mutex, once per series and generation). NULL when the registry refuses it
 * (max_series): the request is then not counted there. */
struct metric_counter *proxy__route_counter(struct proxy_gateway *gw, const struct gw_mh *mh,
                                            uint32_t route, uint32_t caller, uint32_t cls);
/* The edge series of (caller slot, cluster), made on first use as the route series are. false
 * when they cannot be made (the registry's series limit, no memory). */
struct proxy_edge_series {
    struct metric_counter *requests, *errors;
    struct metric_sketch *sketch;
};
bool proxy__edge_series(struct proxy_gateway *gw, const struct gw_mh *mh, uint32_t slot,
                        uint32_t cluster, struct proxy_edge_series *out);
struct metric_histogram *proxy__route_histogram(struct proxy_gateway *gw, const struct gw_mh *mh,
                                                uint32_t route, uint32_t caller);
/* The caller label index of a service for mh (0 when it has no cluster). */
uint32_t proxy__caller_index(const struct gw_mh *mh, const char *service);

/* forward.c */
void proxy__on_request(struct http_exchange *ex, void *data); /* data: struct gw_worker */
/* The same for the inbound mTLS listener: the caller is the client certificate's service. */
void proxy__on_inbound_request(struct http_exchange *ex, void *data);
struct gw_state *proxy__worker_state(struct gw_worker *w);
void proxy__state_unref(struct gw_state *st);
void proxy__log_flush(struct gw_worker *w);
void proxy__fwd_reap(struct gw_worker *w);
void proxy__fwd_pool_free(struct gw_worker *w);
void proxy__worker_prepare(uv_prepare_t *p); /* gateway.c: flush logs, reap requests */

#endif
