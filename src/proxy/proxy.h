/* SPDX-License-Identifier: MIT */
/* proxy.h: the data plane: routes, clusters, load balancing, resilience (timeouts, retries with
 * a budget, circuit breakers, outlier ejection, health checks, rate limits, stale fallback) and
 * the gateway that runs them on N worker threads.
 * Prefixes: proxy_, PROXY_.
 *
 * Threads: a struct proxy_config is immutable once built and is shared by every worker through
 * a snapshot (core's snap_*); build and validate it anywhere. The gateway's functions run on the
 * thread that created it (the control thread); its workers run their own loops. */
#ifndef SHOAL_PROXY_H
#define SHOAL_PROXY_H

#include "core/core.h"
#include "http/http.h"
#include "security/security.h"
#include "tls/tls.h"

/* ==========================================================================================
 * Configuration (config.c). Everything a config points to lives in its arena.
 * ========================================================================================== */
enum proxy_lb {
    PROXY_LB_ROUND_ROBIN = 0,
    PROXY_LB_WEIGHTED,      /* smooth weighted round robin (nginx's) */
    PROXY_LB_LEAST_REQUEST, /* power of two choices on in-flight requests */
    PROXY_LB_RING_HASH,     /* consistent hashing on a key (hash_on) */
    PROXY_LB_MAGLEV,        /* Maglev table on a key (hash_on) */
    PROXY_LB_RANDOM,
};

enum proxy_hash_on { PROXY_HASH_CLIENT = 0, PROXY_HASH_HEADER, PROXY_HASH_COOKIE };

enum proxy_retry_on {
    PROXY_RETRY_CONNECT = 1u << 0, /* connection refused or timed out */
    PROXY_RETRY_RESET = 1u << 1,   /* reset or closed before a response */
    PROXY_RETRY_5XX = 1u << 2,     /* any 5xx response */
    PROXY_RETRY_STATUS = 1u << 3,  /* the statuses listed */
    PROXY_RETRY_TIMEOUT = 1u << 4, /* per-try timeout */
};

struct proxy_timeouts {
    uint32_t connect_ms; /* default 2s */
    uint32_t per_try_ms; /* response head within this of sending; default 15s */
    uint32_t request_ms; /* whole request, retries included; default 30s */
    uint32_t idle_ms;    /* pooled upstream connections; default 60s */
};

struct proxy_retry {
    uint32_t max_retries; /* default 2 */
    uint32_t on;          /* enum proxy_retry_on; default connect|reset|timeout */
    uint16_t statuses[8]; /* with PROXY_RETRY_STATUS */
    uint32_t nstatuses;
    uint32_t backoff_base_ms;  /* default 25ms; doubles per retry, full jitter */
    uint32_t backoff_max_ms;   /* default 250ms */
    double budget_ratio;       /* retries at most this share of requests; default 0.2 */
    uint32_t budget_min_per_s; /* retries always allowed at this rate; default 10 */
    bool non_idempotent;       /* retry POST/PATCH too (the route opts in) */
};

/* The cluster's breaker judges requests, not attempts: a request counts once, with the outcome
 * it had after its retries (an endpoint's own failures are outlier detection's business). */
struct proxy_breaker {
    uint32_t consecutive_failures; /* open after this many failed requests in a row; default
                                    * 0 = off */
    double error_ratio;            /* or this ratio over window_ms...; default 0.5; 0 = off */
    uint32_t window_ms;            /* sliding, in 10 buckets; default 10s */
    uint32_t min_requests;         /* ...with at least this many requests; default 20 */
    uint32_t open_ms;              /* fail fast this long, then half-open; default 5s */
    uint32_t max_requests;         /* concurrent requests to the cluster; default 1024 */
    uint32_t max_pending;          /* requests waiting for a connection; default 1024 */
};

/* Outlier detection, per endpoint (Envoy's): an endpoint that fails consecutive_errors attempts
 * in a row is ejected for base_ejection_ms times its recent ejections; a passing active health
 * check, or a new registration of the endpoint, returns it at once. */
struct proxy_outlier {
    uint32_t consecutive_errors;   /* 5xx or connect errors in a row to eject; default 5; 0 = off */
    uint32_t base_ejection_ms;     /* first ejection; grows with each; default 30s */
    uint32_t max_ejection_ms;      /* default 300s */
    uint32_t max_ejection_percent; /* never eject more than this share; default 50 */
    uint32_t panic_percent;        /* when fewer than this share of the endpoints are healthy
                                    * and not ejected, route to all of them; default 50; 0 = off
                                    * (still all of them when none is left) */
};

struct proxy_health {
    const char *path;             /* NULL = no active checks */
    uint16_t expect_status;       /* default 200 (any 2xx when 0) */
    uint32_t interval_ms;         /* default 5s */
    uint32_t timeout_ms;          /* default 2s */
    uint32_t healthy_threshold;   /* default 2 */
    uint32_t unhealthy_threshold; /* default 3 */
};

struct proxy_endpoint {
    struct sockaddr_storage addr;
    const char *name;    /* "127.0.0.1:8081" */
    uint32_t weight;     /* default 1 */
    uint64_t generation; /* registry-fed: when this registration began (a re-registered
                          * instance is a new endpoint: nothing learnt about the old one
                          * carries over); 0 for static endpoints */
};

/* mTLS to a cluster that lives in another mesh (mtls: in a cluster; docs/security.md, "mTLS
 * between meshes"): each request presents its caller's certificate (the config's identities)
 * and the server must prove identity; a caller with no identity here gets 403. */
struct proxy_mtls {
    bool is_set;
    const char *identity;      /* the server's SPIFFE ID, e.g. spiffe://td/service/names */
    const char *ca;            /* the bundle the server's certificate chains to */
    const char *server_name;   /* SNI; default the identity's service name */
    struct tls_client **by_id; /* derived: one per config identity (owned by the config) */
};

struct proxy_cluster {
    const char *name;
    struct proxy_mtls mtls;
    const char *service; /* registry-fed: endpoints come from this service (else static) */
    struct proxy_endpoint *endpoints;
    uint32_t nendpoints;
    enum proxy_lb lb;
    enum proxy_hash_on hash_on;
    const char *hash_key; /* header or cookie name */
    struct proxy_timeouts timeouts;
    struct proxy_retry retry;
    struct proxy_breaker breaker;
    struct proxy_outlier outlier;
    struct proxy_health health;
    /* derived at build time */
    uint32_t *ring; /* RING_HASH: sorted hash points, ring_eps the endpoint of each */
    uint32_t *ring_eps;
    uint32_t nring;
    uint32_t *maglev; /* MAGLEV: lookup table of endpoint indexes */
    uint32_t nmaglev;
};

enum proxy_path_match { PROXY_PATH_ANY = 0, PROXY_PATH_EXACT, PROXY_PATH_PREFIX, PROXY_PATH_GLOB };
enum proxy_action { PROXY_ACT_FORWARD = 0, PROXY_ACT_SPLIT, PROXY_ACT_RESPOND, PROXY_ACT_REDIRECT };
enum proxy_rl_key { PROXY_RL_CLIENT = 0, PROXY_RL_HEADER };

struct proxy_header_match {
    const char *name;
    const char *value; /* NULL: present with any value */
};

struct proxy_kv {
    const char *name, *value;
};

struct proxy_split {
    uint32_t cluster; /* index into config clusters */
    uint32_t weight;
};

struct proxy_ratelimit {
    double rate_per_s; /* 0 = off */
    uint32_t burst;
    enum proxy_rl_key key;
    const char *header;
};

struct proxy_fallback {
    bool enabled;
    bool per_credential;      /* requests with Authorization/Cookie get copies of their own
                                 (keyed by those values); false: such requests are not cached */
    uint32_t max_entry_bytes; /* default 64 KiB */
    uint32_t max_total_bytes; /* per worker; default 8 MiB */
    uint32_t max_age_ms;      /* default 5m */
};

/* JWT at the edge (a route's `jwt`): requests need a token verified against the route's keys
 * (security.h's JWT section); forward.c refuses the others with 401 and WWW-Authenticate. */
enum proxy_jwt_from {
    PROXY_JWT_FROM_BEARER = 0, /* Authorization: Bearer <token> */
    PROXY_JWT_FROM_HEADER,     /* the field from_name holds the token ("Bearer " optional) */
    PROXY_JWT_FROM_COOKIE,     /* the cookie from_name */
};

struct proxy_jwt {
    const char *issuer;     /* NULL: any */
    const char **audiences; /* naudiences; 0: any */
    uint32_t naudiences;
    const char *jwks_file;        /* read when the config is built (relative to its file) */
    const char *jwks_url;         /* "http://127.0.0.1:9000/jwks.json": fetched by the gateway */
    const char *hs256_secret_env; /* an environment variable holding an HS256 secret */
    uint32_t leeway_ms;           /* on exp and nbf; default 60s */
    struct sec_jwt_claim_rule *required;
    uint32_t nrequired;
    struct proxy_kv *claims_to_headers; /* name: the claim, value: the header; these headers
                                         * are always removed from the incoming request */
    uint32_t nclaims_to_headers;
    enum proxy_jwt_from from;
    const char *from_name;   /* FROM_HEADER / FROM_COOKIE */
    const char *realm;       /* WWW-Authenticate's realm; default the route's name */
    bool forward_token;      /* pass the token on to the upstream; default true */
    uint32_t refresh_ms;     /* jwks_url: refetched this often; default 5m */
    uint32_t min_refresh_ms; /* jwks_url: at most one fetch per this (an unknown kid asks for
                              * one); default 5s */
    uint32_t cache_entries;  /* verified tokens kept per worker; default 1024; 0: none */
    /* derived at build time */
    struct sec_jwks *file_keys, *secret_keys; /* owned by the config (NULL when not given) */
    struct sockaddr_storage url_addr;         /* jwks_url's */
    const char *url_host, *url_path;
    const char **extract; /* the claims of claims_to_headers, for policy.extract */
    struct sec_jwt_policy policy;
};

struct proxy_route {
    const char *name;
    /* match */
    enum proxy_path_match path_kind;
    const char *path;
    const char *host; /* NULL = any; "*.example.com" matches subdomains */
    uint32_t methods; /* bit (1 << enum http_method); 0 = any */
    struct proxy_header_match *headers;
    uint32_t nheaders;
    /* action */
    enum proxy_action action;
    uint32_t cluster; /* FORWARD */
    struct proxy_split *splits;
    uint32_t nsplits, split_total;
    const char *prefix_rewrite; /* replaces the matched prefix (PREFIX routes) */
    struct proxy_kv *add_request_headers, *add_response_headers;
    uint32_t nadd_request_headers, nadd_response_headers;
    const char **remove_request_headers;
    uint32_t nremove_request_headers;
    uint16_t status; /* RESPOND / REDIRECT */
    const char *body, *content_type, *location;
    /* policies (the cluster's unless set here) */
    bool has_timeouts, has_retry;
    struct proxy_timeouts timeouts;
    struct proxy_retry retry;
    struct proxy_ratelimit ratelimit;
    struct proxy_fallback fallback;
    const struct proxy_jwt *jwt; /* NULL: no token needed */
};

/* Who may call through this proxy (the mesh; docs/observability.md, "Caller identity").
 * OFF: callers are not asked who they are (the gateway: its own requests carry the caller
 * "gateway"). OPTIONAL: a valid credential names the caller, a request without one (or with a
 * bad one) is served as the caller "unknown". REQUIRED: such a request gets 407. */
enum proxy_identity_mode {
    PROXY_IDENTITY_OFF = 0,
    PROXY_IDENTITY_OPTIONAL,
    PROXY_IDENTITY_REQUIRED,
};

/* Spans per hop (docs/observability.md, "Spans per hop"): which finished requests become spans
 * (proxy_span_keep). */
struct proxy_tracing {
    bool is_set;      /* the document has a tracing section (`shoal gateway` records spans
                       * only then; `shoal up` always does) */
    double sample;    /* head rate for the traces this proxy starts; default 1.0 */
    uint32_t slow_ms; /* requests at least this long are kept whatever the rate; default 1000;
                       * 0 = off */
};

/* TLS on the gateway's listener (tls: in the config). Certificates and min_version reload with
 * the config (and the files when they change); the rest needs a restart. */
struct proxy_tls {
    bool is_set;
    struct tls_cert_files *certs; /* in the config's arena */
    uint32_t ncerts;
    enum tls_version min_version; /* default TLS 1.2 */
    bool sni_strict;
    uint32_t handshake_timeout_ms; /* 0 = 10s */
    const char *redirect_http;     /* a plain listener answering 308 to https://, or NULL */
    uint64_t hsts_max_age_s;       /* 0 = no Strict-Transport-Security */
    bool hsts_include_subdomains;
    char hsts_field[128]; /* the field line, made from the two above */
};

/* The mesh's inbound mTLS listener (inbound: in the config; docs/security.md, "mTLS between
 * meshes"): TLS 1.3, a client certificate from client_ca required; the caller of each request
 * is the service named by the certificate's spiffe://<trust_domain>/service/<name> (never a
 * header), and the request is routed as on the main listener. Fixed at start. */
struct proxy_inbound {
    bool is_set;
    const char *listen;
    struct tls_cert_files *certs; /* one per local service; SNI = the service name picks it */
    uint32_t ncerts;
    const char *client_ca;
    const char *trust_domain;
};

/* A certificate the node proxy holds for one of its services (identities: in the config). */
struct proxy_identity_cert {
    const char *service, *cert, *key;
};

struct proxy_config {
    const char *listen; /* "127.0.0.1:8080" */
    struct proxy_identity_cert *identities;
    uint32_t nidentities;
    struct tls_client **tls_clients; /* every cluster's by_id entries, freed with the config */
    uint32_t ntls_clients;
    struct proxy_tls tls;
    struct proxy_inbound inbound;
    const char *control_plane;       /* admin API address for registry-fed clusters, or NULL */
    const char *control_plane_token; /* NULL = none (reads from loopback need none) */
    const char *admin;               /* NULL = no admin listener */
    uint32_t workers;                /* 0 = one per core */
    bool access_log;
    enum proxy_identity_mode identity; /* default OFF (the mesh's document sets it) */
    struct proxy_tracing tracing;
    struct proxy_route *routes;
    uint32_t nroutes;
    struct proxy_cluster *clusters;
    uint32_t nclusters;
    struct http_limits limits;
    char *source_json;         /* the config as JSON with secrets redacted, for /config */
    struct sec_jwks **keysets; /* JWT keys the routes hold (freed with the config) */
    uint32_t nkeysets;
    size_t keysets_cap;
    struct arena arena;
};

struct sh_doc;
struct trace_queue; /* telemetry.h */
/* Where registry-fed clusters get their endpoints when a config is built: fill *out (in the
 * arena) and *count with the service's passing instances (0 when none known yet). */
struct proxy_resolver {
    int (*endpoints)(void *data, const char *service, struct arena *a, struct proxy_endpoint **out,
                     uint32_t *count);
    void *data;
};
/* Builds and validates a config from a document tree (shoal's YAML reader makes one); res may
 * be NULL (registry-fed clusters then start empty). 0 and *out (free with proxy_config_free),
 * or SH_EPARSE/SH_ENOMEM with d->where = "file:line:col" and d->what naming the key and the
 * problem. */
SH_MUST_CHECK int proxy_config_from_doc(const struct sh_doc *doc, const struct proxy_resolver *res,
                                        struct proxy_config **out, struct sh_diag *d);
/* An empty config (one arena, defaults set), for builders and tests. */
SH_MUST_CHECK int proxy_config_new(struct proxy_config **out);
/* Derives the lookup structures (hash rings, Maglev tables, split totals) and checks
 * cross-references; called by proxy_config_from_doc, and by hand-built configs. */
SH_MUST_CHECK int proxy_config_finish(struct proxy_config *cfg, struct sh_diag *d);
void proxy_config_free(struct proxy_config *cfg);
void proxy_cluster_defaults(struct proxy_cluster *cl);
int proxy_cluster_index(const struct proxy_config *cfg, const char *name); /* -1 if absent */

/* ==========================================================================================
 * Routing and load balancing (route.c, lb.c): pure functions, usable from any thread.
 * ========================================================================================== */
/* The first route whose match accepts the request head, or NULL. */
const struct proxy_route *proxy_route_match(const struct proxy_config *cfg,
                                            const struct http_head *h);
/* Glob on paths: '*' matches within one segment, '**' across segments, '?' one byte. */
bool proxy_glob_match(const char *pattern, struct slice path);
/* 32-bit hash used by the hash balancers (FNV-1a then a finaliser). */
uint32_t proxy_hash(struct slice key);

/* Per-worker load-balancer state for one cluster. */
struct proxy_lb_state {
    uint32_t rr_next;
    int64_t *wrr_current; /* nendpoints entries, smooth WRR */
    uint64_t rng;         /* xorshift state */
};

/* What the balancer may pick: endpoints that are ejected or unhealthy are skipped unless all
 * are, in which case all are eligible again (panic mode, as Envoy does). */
struct proxy_pick_ctx {
    const bool *excluded;   /* nendpoints entries, or NULL */
    const uint32_t *active; /* in-flight requests per endpoint (LEAST_REQUEST) */
    struct slice hash_key;  /* for the hash balancers */
    uint32_t avoid;         /* an endpoint to avoid (a retry), or UINT32_MAX */
};
SH_MUST_CHECK int proxy_lb_state_init(struct proxy_lb_state *st, const struct proxy_cluster *cl,
                                      uint64_t seed);
void proxy_lb_state_release(struct proxy_lb_state *st);
/* The endpoint index to use, or UINT32_MAX when the cluster has none. */
uint32_t proxy_lb_pick(const struct proxy_cluster *cl, struct proxy_lb_state *st,
                       const struct proxy_pick_ctx *ctx);
uint64_t proxy_rand(uint64_t *state); /* xorshift64* */

/* ==========================================================================================
 * Resilience decisions (resilience.c): plain functions over plain structs, no sockets, no
 * clock of their own (now_ms is passed in); the gateway's workers keep one state per cluster
 * and per endpoint and carry out what these decide.
 * ========================================================================================== */
enum proxy_breaker_phase { PROXY_BREAKER_CLOSED = 0, PROXY_BREAKER_OPEN, PROXY_BREAKER_HALF_OPEN };
enum { PROXY_BREAKER_BUCKETS = 10 };

struct proxy_breaker_state {
    enum proxy_breaker_phase phase;
    uint64_t open_until_ms;
    uint32_t consecutive_failures;
    bool probe_in_flight; /* HALF_OPEN lets one request through at a time */
    uint32_t requests[PROXY_BREAKER_BUCKETS], errors[PROXY_BREAKER_BUCKETS];
    uint64_t bucket_start_ms; /* start of the current bucket */
    uint32_t bucket;          /* index of the current bucket */
};

enum proxy_breaker_verdict {
    PROXY_BREAKER_PASS = 0, /* closed: go on */
    PROXY_BREAKER_PROBE,    /* half-open: this request is the probe (report its outcome) */
    PROXY_BREAKER_REJECT,   /* open: fail fast */
};
/* What a new request may do. PROBE marks the probe in flight. */
enum proxy_breaker_verdict proxy_breaker_admit(struct proxy_breaker_state *s,
                                               const struct proxy_breaker *cfg, uint64_t now_ms);
enum proxy_breaker_change {
    PROXY_BREAKER_SAME = 0,
    PROXY_BREAKER_OPENED,   /* closed -> open */
    PROXY_BREAKER_REOPENED, /* the half-open probe failed */
    PROXY_BREAKER_RECLOSED, /* the half-open probe succeeded */
};
/* A request admitted by proxy_breaker_admit ended: failed = its final answer (after retries)
 * was a 5xx or no answer. was_probe: admit said PROBE for it. */
enum proxy_breaker_change proxy_breaker_record(struct proxy_breaker_state *s,
                                               const struct proxy_breaker *cfg, bool failed,
                                               bool was_probe, uint64_t now_ms);
/* A probe ended without an outcome (the client left before an attempt): let another probe. */
void proxy_breaker_probe_abandoned(struct proxy_breaker_state *s);
/* Requests and errors in the current window (what the ratio is judged on). */
void proxy_breaker_window(const struct proxy_breaker_state *s, const struct proxy_breaker *cfg,
                          uint64_t now_ms, uint32_t *requests, uint32_t *errors);

struct proxy_outlier_state {
    uint32_t consecutive_errors;
    uint32_t ejections; /* recent ejections (decays by one per base_ejection_ms healthy) */
    uint64_t ejected_until_ms;
    uint64_t last_change_ms; /* when ejections last grew or decayed */
    uint32_t revival_seen;   /* the endpoint's revival count when it was ejected */
};
/* An attempt at endpoint ep ended. eps has n entries (the cluster's endpoints); revival is
 * ep's current revival count (see proxy_outlier_revive). Returns the ejection time in ms
 * when this ejected ep, else 0. */
uint64_t proxy_outlier_record(struct proxy_outlier_state *eps, uint32_t n, uint32_t ep,
                              const struct proxy_outlier *cfg, bool failed, uint32_t revival,
                              uint64_t now_ms);
/* Whether ep is ejected now. An ejected endpoint whose revival count moved since its ejection
 * (it passed an active health check, or was registered again) is returned at once. */
bool proxy_outlier_ejected(struct proxy_outlier_state *e, uint32_t revival, uint64_t now_ms);

/* Which endpoints a pick may use. excluded[i] says (on input) that endpoint i is ejected or
 * failing its health checks. When fewer than panic_percent of the n endpoints remain (or none),
 * every exclusion is lifted and it returns true: panic, route to all (Envoy's healthy panic
 * threshold). Then, for a retry, the endpoints already tried (tried[i]) are excluded too while
 * another one is left (the previous-hosts predicate). tried may be NULL. */
bool proxy_pick_exclusions(bool *excluded, const bool *tried, uint32_t n, uint32_t panic_percent);

/* The retry budget (Linkerd's): every request earns budget_ratio of a retry, and
 * budget_min_per_s retries a second are always allowed (a new budget starts with a second's
 * worth, so a cluster's first failures are retried too). */
struct proxy_budget {
    double tokens;
    uint64_t at_ms; /* last refill; 0 = new */
};
void proxy_budget_earn(struct proxy_budget *b, const struct proxy_retry *rp, uint64_t now_ms);
/* Takes one retry from the budget: true, or false when it is spent. */
bool proxy_budget_spend(struct proxy_budget *b, const struct proxy_retry *rp, uint64_t now_ms);
void proxy_budget_refund(struct proxy_budget *b); /* a retry taken and not made */
/* Whether a retry could be taken now, without taking it. */
bool proxy_budget_available(const struct proxy_budget *b, const struct proxy_retry *rp,
                            uint64_t now_ms);

/* A rate limit's token bucket for one key (by hash). */
struct proxy_bucket {
    uint32_t key_hash;
    double tokens;
    uint64_t at_ms;
};
/* One request of key_hash: 0 when allowed, else the seconds to wait (>= 1, Retry-After). A
 * bucket that held another key starts full for this one. */
uint32_t proxy_bucket_take(struct proxy_bucket *b, uint32_t key_hash, double rate_per_s,
                           double burst, uint64_t now_ms);

/* ==========================================================================================
 * Caller identity (identity.c): who sent a request to the mesh. Each instance gets its own
 * credential in its proxy URL (http://<user>:<secret>@127.0.0.1:<mesh port>), which unmodified
 * clients send as "Proxy-Authorization: Basic base64(user:secret)". The mesh checks it against
 * the table of the live instances' credentials (proxy_gateway_set_callers) and never believes
 * anything else a caller says about itself.
 * ========================================================================================== */
enum {
    PROXY_CALLER_MAX_AUTH_BYTES = 512, /* a longer Proxy-Authorization is malformed */
    PROXY_CALLER_MAX_USER_BYTES = 160,
    PROXY_CALLER_MAX_SECRET_BYTES = 128,
    PROXY_CALLER_MAX_NAME_BYTES = 95, /* service and instance names */
};

/* One live instance's credential. */
struct proxy_caller {
    const char *user;     /* "greeter.1": the user part of its proxy URL; unique in a table */
    const char *secret;   /* the password part (shoal up: 32 hex digits, 128 random bits) */
    const char *service;  /* "greeter" */
    const char *instance; /* "greeter-1" */
};

/* An immutable table of credentials (service object): built once, then read by any thread. */
struct proxy_callers;
/* Copies <n> callers into one table sorted by user. 0 and *out, or SH_EINVAL (a missing or
 * overlong field, or a user listed twice), SH_ENOMEM; then *out is NULL. */
SH_MUST_CHECK int proxy_callers_new(const struct proxy_caller *list, size_t n,
                                    struct proxy_callers **out);
void proxy_callers_free(struct proxy_callers *t); /* NULL is a no-op */
size_t proxy_callers_count(const struct proxy_callers *t);

enum proxy_caller_verdict {
    PROXY_CALLER_KNOWN = 0,    /* a valid credential of a live instance: who is set */
    PROXY_CALLER_NONE,         /* no Proxy-Authorization */
    PROXY_CALLER_MALFORMED,    /* not "Basic <base64 of user:secret>", too long, or sent twice */
    PROXY_CALLER_UNKNOWN_USER, /* no live instance has that user (it exited, or never was) */
    PROXY_CALLER_BAD_SECRET,   /* the user exists; the secret is not its current one */
};

/* What the mesh does with a request, decided from its Proxy-Authorization fields alone. */
struct proxy_identity_input {
    enum proxy_identity_mode mode;
    const struct proxy_callers *callers; /* NULL: none published yet (every user is unknown) */
    uint32_t nfields;                    /* Proxy-Authorization fields the request carried */
    struct slice value;                  /* the first one's value */
};
struct proxy_identity_decision {
    enum proxy_caller_verdict verdict;
    const struct proxy_caller *who; /* KNOWN: borrowed from callers; else NULL */
    bool serve;                     /* false: answer 407 (REQUIRED and not KNOWN) */
    const char *problem;            /* not KNOWN: a constant phrase for the 407 body and logs */
};
/* Pure: no clock, no sockets. With mode OFF the verdict is NONE and serve is true (nothing is
 * looked at). The secret is compared in constant time (for its length). */
void proxy_identity_decide(const struct proxy_identity_input *in,
                           struct proxy_identity_decision *out);

/* ==========================================================================================
 * Spans per hop (span.c): the sampling decisions, plain functions.
 * ========================================================================================== */
/* The head decision for a trace this proxy starts (no valid traceparent came in): true when
 * <random> (uniform over 64 bits) falls under <rate> (0..1). A trace that came in keeps the
 * caller's sampled flag instead. */
bool proxy_span_head_sampled(double rate, uint64_t random);

struct proxy_keep_input {
    bool is_sampled;      /* the head decision (ours, or the caller's flag) */
    bool is_error;        /* status >= 500, or no answer from the upstream */
    uint64_t duration_us; /* the whole request at this hop */
    uint32_t slow_ms;     /* tracing.slow; 0 = off */
};
/* Decided when the response is complete: sampled, or an error, or slow (errors and slow
 * requests are kept whatever the head rate). */
bool proxy_span_keep(const struct proxy_keep_input *in);

/* ==========================================================================================
 * Gateway (gateway.c, forward.c)
 * ========================================================================================== */
struct proxy_gateway;

struct proxy_gateway_stats {
    uint64_t requests, responses_5xx, retries, upstream_errors;
};

/* Starts the listener(s) and workers for cfg (taken: the gateway owns it from now on, also on
 * failure). Runs on loop (the control thread), which must keep running. 0 or a negative code
 * with d filled (address in use, ...). */
SH_MUST_CHECK int proxy_gateway_start(uv_loop_t *loop, struct proxy_config *cfg,
                                      struct proxy_gateway **out, struct sh_diag *d);
/* Swaps in a new config (taken) for new requests; in-flight ones finish on the old one.
 * Listeners that did not change keep running; a changed listen address is refused
 * (SH_ENOTSUP) and the running config stays. */
SH_MUST_CHECK int proxy_gateway_reload(struct proxy_gateway *gw, struct proxy_config *cfg,
                                       struct sh_diag *d);
/* The config in force (borrowed; valid until the next reload on this thread). */
const struct proxy_config *proxy_gateway_config(const struct proxy_gateway *gw);
/* Publishes the credentials of the live callers (taken, also on failure; NULL = none) for
 * new requests: a caller missing from the table is unknown from the next request on. Control
 * thread. 0 or SH_ENOMEM. */
SH_MUST_CHECK int proxy_gateway_set_callers(struct proxy_gateway *gw, struct proxy_callers *t);
/* Publishes the intentions in force (security.h; taken, sh_free'd when no worker uses it any
 * more, also on failure; NULL = none: everything allowed) for new requests: each request's
 * caller (its identity at the mesh, "gateway" at the gateway) and destination service are
 * decided by sec_intentions_decide once its cluster is chosen; a refusal is 403 with
 * X-Shoal-Denied-By naming the rule, and "denied_by" in the access log. Control thread. */
struct sec_intentions;
SH_MUST_CHECK int proxy_gateway_set_intentions(struct proxy_gateway *gw,
                                               struct sec_intentions *set);
/* Every request this gateway serves from now on records a span into <q> (borrowed: it must
 * outlive the gateway's workers; NULL = tracing off), worker i pushing into shard
 * first_shard + i, which must be below the queue's shard count. Control thread; call once,
 * after proxy_gateway_start. */
void proxy_gateway_set_spans(struct proxy_gateway *gw, struct trace_queue *q, uint32_t first_shard);
/* The number of worker threads (span shards it needs). */
uint32_t proxy_gateway_workers(const struct proxy_gateway *gw);
/* Graceful stop: listeners close, in-flight requests get deadline_ms, then done(data). */
void proxy_gateway_stop(struct proxy_gateway *gw, uint32_t deadline_ms, void (*done)(void *),
                        void *data);
void proxy_gateway_free(struct proxy_gateway *gw); /* after done; NULL is a no-op */
uint16_t proxy_gateway_port(const struct proxy_gateway *gw);
/* The inbound mTLS listener's port (0: none). */
uint16_t proxy_gateway_inbound_port(const struct proxy_gateway *gw);

/* The load of one cluster, summed over the workers, from the gateway's own metrics (for the
 * autoscaler and `shoal ps`). Control thread; counts survive reloads that keep the cluster. */
struct proxy_cluster_load {
    uint64_t attempts; /* upstream attempts ended so far, every outcome */
    double in_flight;  /* upstream attempts under way now */
    uint64_t le[15];   /* cumulative attempt durations: le[i] = attempts that took at most
                        * metrics_latency_buckets_s[i] (i < 14); le[14] = all of them */
};
/* 0 and *out, or SH_ENOENT (no such cluster in the config in force; *out zeroed). */
SH_MUST_CHECK int proxy_gateway_cluster_load(const struct proxy_gateway *gw, const char *cluster,
                                             struct proxy_cluster_load *out);
/* Attempts ended at the endpoint named <endpoint> ("127.0.0.1:8081") of <cluster>; 0 when the
 * config in force has no such endpoint. */
uint64_t proxy_gateway_endpoint_attempts(const struct proxy_gateway *gw, const char *cluster,
                                         const char *endpoint);
/* Whether the config in force still lists that endpoint (new requests may go there). */
bool proxy_gateway_has_endpoint(const struct proxy_gateway *gw, const char *cluster,
                                const char *endpoint);

/* The traffic of one route or one edge (caller -> cluster) in the config in force, for the
 * metrics history (src/observe). Counts are cumulative over the proxy's life (series revive
 * across reloads). A request counts once, when it ends, with its whole duration (retries
 * included); an error is a request answered 5xx or without a response. */
struct metric_sketch; /* telemetry.h: read with metric_sketch_read */
struct proxy_traffic {
    const char *route;   /* a route's series: its name; NULL for an edge */
    const char *caller;  /* an edge's caller service; "" while the mesh does not know it */
    const char *cluster; /* an edge's callee: the cluster (named after its service) */
    uint64_t requests, errors;
    struct metric_sketch *sketch; /* durations in seconds; valid until the gateway is freed */
};
typedef void proxy_traffic_fn(void *data, const struct proxy_traffic *t);
/* Calls fn for every route, then every edge, synchronously. Control thread. */
void proxy_gateway_traffic(const struct proxy_gateway *gw, proxy_traffic_fn *fn, void *data);

/* Access lines for the control thread instead of stdout (`shoal up` keeps them in its log
 * store). Once capture is on, each worker hands the lines of a loop turn over as one chunk,
 * pushed onto its own lock-free list (a compare-and-swap; no lock on the request path); the
 * control thread takes a worker's whole list with one atomic exchange in drain. Past
 * PROXY_ACCESS_PENDING_MAX bytes not yet drained, lines are dropped and counted.
 * Control thread: capture, drain, dropped. Drain before proxy_gateway_free (free drops what
 * was not drained); after the stop's done, drain has every line the workers wrote. */
enum { PROXY_ACCESS_PENDING_MAX = 16u << 20 };
void proxy_gateway_access_capture(struct proxy_gateway *gw);
typedef void proxy_access_line_fn(void *data, struct slice line); /* without its newline */
/* Hands every line handed over so far to fn, oldest first per worker; returns how many. */
size_t proxy_gateway_access_drain(struct proxy_gateway *gw, proxy_access_line_fn *fn, void *data);
uint64_t proxy_gateway_access_dropped(const struct proxy_gateway *gw); /* lines, since start */

/* ==========================================================================================
 * Discovery (discovery.c): registry-fed clusters, kept fresh by long polls on the control
 * plane; the last known endpoints stay when it is unreachable. Control thread only.
 * ========================================================================================== */
struct proxy_discovery;
typedef void proxy_discovery_fn(void *data); /* some service's endpoints changed */
SH_MUST_CHECK int proxy_discovery_new(uv_loop_t *loop, const char *address, const char *token,
                                      proxy_discovery_fn *on_change, void *data,
                                      struct proxy_discovery **out, struct sh_diag *d);
/* Starts polling <service> (idempotent). */
SH_MUST_CHECK int proxy_discovery_watch(struct proxy_discovery *d, const char *service);
/* Watches a config key (its raw value, e.g. a gateway YAML kept in the control plane):
 * fn(data, key, value) runs with each new value. */
typedef void proxy_discovery_key_fn(void *data, const char *key, struct slice value);
SH_MUST_CHECK int proxy_discovery_watch_key(struct proxy_discovery *d, const char *key,
                                            proxy_discovery_key_fn *fn, void *data);
/* The last known endpoints of <service> (a resolver's endpoints function). */
int proxy_discovery_endpoints(struct proxy_discovery *d, const char *service, struct arena *a,
                              struct proxy_endpoint **out, uint32_t *count);
/* Closes everything (asynchronously: run the loop). NULL is a no-op. */
void proxy_discovery_free(struct proxy_discovery *d);
uint16_t proxy_gateway_admin_port(const struct proxy_gateway *gw);

#endif
