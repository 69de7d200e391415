/* SPDX-License-Identifier: MIT */
/* admin_int.h: private pieces shared by the admin API's files: one API request, the route
 * table's shape, and the reply helpers. Handlers live in routes_*.c; server.c does transport,
 * auth and dispatch.
 * Thread: the control thread only. */
#ifndef SHOAL_ADMIN_INT_H
#define SHOAL_ADMIN_INT_H

#include "admin/admin.h"
#include "http/http.h"
#include "security/security.h"

#include <jansson.h>

struct admin_req;
typedef void admin_handler_fn(struct admin_req *r);

/* What a route needs of the caller's token (security.h's sec_need), and whether it names config
 * keys (a token limited to a prefix may use only those routes, on keys under its prefix). */
enum admin_auth {
    ADMIN_AUTH_NONE = SEC_NEED_NONE, /* open: GET /v1/status */
    ADMIN_AUTH_READ = SEC_NEED_READ,
    ADMIN_AUTH_WRITE = SEC_NEED_WRITE,
    ADMIN_AUTH_ADMIN = SEC_NEED_ADMIN,
    ADMIN_AUTH_NEED = 0x0f,   /* mask of the above */
    ADMIN_AUTH_KEYED = 0x10,  /* r->rest is a config key (or a prefix: see admin__route_key) */
    ADMIN_AUTH_INGEST = 0x20, /* span ingest: also open to tokens that may_ingest (instances) */
};

struct admin_route {
    enum http_method method;
    const char *path; /* exact, or a prefix when it ends in '/' and is_prefix */
    bool is_prefix;   /* the rest of the path is r->rest (URL-decoded) */
    bool is_consul;   /* accepts X-Consul-Token; answers carry X-Consul-* headers */
    unsigned auth;    /* enum admin_auth: a need, | ADMIN_AUTH_KEYED */
    admin_handler_fn *fn;
};

extern const struct admin_route admin_routes[];
extern const size_t admin_nroutes;

/* Answers rendered for one index, shared by the blocking queries that wake together: a change
 * to a service with 1,000 watchers renders its answer once, not 1,000 times. An entry is valid
 * while the index it was rendered at is current (every change moves the index). */
enum { ADMIN_CACHE_SLOTS = 16 };
struct admin_cached {
    char key[512];
    uint64_t index;
    const char *ctype;
    struct buf body;
};

/* The dashboard's sessions (ui_session.c): a random id (the shoal_session cookie, HttpOnly,
 * SameSite=Strict) maps to a token id and a CSRF value that writes must echo in X-Shoal-CSRF.
 * Bounded: a full table drops expired entries, then the oldest. Never a token's text. */
enum {
    ADMIN_SESSIONS_MAX = 64,
    ADMIN_SESSION_ID_BYTES = 24,                             /* 48 hex characters */
    ADMIN_SESSION_RANDOM_BYTES = 2 * ADMIN_SESSION_ID_BYTES, /* the id, then the CSRF value */
};
#define ADMIN_SESSION_TTL_MS (8ull * 3600 * 1000)
struct admin_session {
    char sid[2 * ADMIN_SESSION_ID_BYTES + 1]; /* "" = a free slot */
    char csrf[2 * ADMIN_SESSION_ID_BYTES + 1];
    char token_id[SEC_TOKEN_ID_LEN + 1]; /* resolved at each use: revoking ends it */
    uint64_t created_ms, expires_ms;     /* Unix ms */
};
struct admin_sessions {
    struct admin_session s[ADMIN_SESSIONS_MAX];
};
/* A new session for token_id from <rnd> (fresh random bytes), expiring after
 * ADMIN_SESSION_TTL_MS or with the token, whichever is first. Never NULL (a full table reuses
 * an expired slot, else the oldest). */
const struct admin_session *admin__session_add(struct admin_sessions *t, const char *token_id,
                                               uint64_t token_expires_ms,
                                               const uint8_t rnd[ADMIN_SESSION_RANDOM_BYTES],
                                               uint64_t now_ms);
/* The live session with this id (compared in constant time), or NULL. */
const struct admin_session *admin__session_find(const struct admin_sessions *t, struct slice sid,
                                                uint64_t now_ms);
bool admin__session_remove(struct admin_sessions *t, struct slice sid); /* false: unknown */
bool admin__session_csrf_ok(const struct admin_session *s, struct slice csrf);
/* The value of cookie <name> in a Cookie header's value; false (and SLICE_NULL) when absent. */
bool admin__cookie_get(struct slice header, struct slice name, struct slice *out);

/* The dashboard's assets, generated at build time (scripts/embed-ui.cmake writes ui_assets.c
 * from the esbuild output in web/, or a page saying the dashboard was not built). */
struct admin_ui_asset {
    const char *name;  /* "index.html", "app.js", "app.css" */
    const char *ctype; /* Content-Type */
    const unsigned char *data;
    size_t len;
    const unsigned char *gz; /* the same, gzipped; NULL when not made */
    size_t gz_len;
    const char *etag; /* "\"<sha256 prefix>\"" */
};
extern const struct admin_ui_asset admin_ui_assets[];
extern const size_t admin_ui_nassets;
extern const bool admin_ui_built; /* false: the fallback page only */

struct admin {
    uv_loop_t *loop;
    struct admin_config cfg;
    struct http_server *srv;
    struct http_server *zipkin_srv; /* cfg.zipkin_listen's, or NULL */
    int stop_pending;               /* servers not yet shut down */
    char node[64];
    uint64_t started_ms;
    struct admin_req *waiting; /* blocking queries, for shutdown */
    struct admin_cached cache[ADMIN_CACHE_SLOTS];
    uint32_t cache_next;
    struct admin_sessions sessions; /* the dashboard's (ui.c) */
    bool stopping;
    void (*stop_done)(void *);
    void *stop_data;
};

/* One API request; lives in the exchange's arena until answered. */
struct admin_req {
    struct admin *a;
    struct http_exchange *ex;
    const struct http_head *h;
    const struct admin_route *route;
    const struct sec_token *token; /* the caller's valid token (a copy in the arena), or NULL */
    const struct admin_session *session; /* when the token came from the dashboard's cookie */
    struct slice path, query;
    char *rest;      /* URL-decoded path after a prefix route, NUL-terminated */
    struct buf body; /* the request body, capped at max_body_bytes */
    bool answered, too_big, waited;
    bool is_stream, stream_ended;             /* a Server-Sent Events answer (routes_events.c) */
    void *wait;                               /* a pending blocking wait (handler-owned) */
    void (*cancel_wait)(struct admin_req *r); /* cancels it when the client goes away */
    struct admin_req *next_waiting, *prev_waiting;
};

/* Query parameters: the value of ?name=value (URL-decoded into the arena), "" for a bare
 * ?name, NULL when absent. */
const char *admin__query(struct admin_req *r, const char *name);
/* As admin__query, for the nth (from 0) occurrence of a repeated parameter (?tag=a&tag=b). */
const char *admin__query_nth(struct admin_req *r, const char *name, size_t nth);
/* ?index=N&wait=D as Consul reads them: 0 and no wait when absent; wait ("30s", "120000ms",
 * or a bare number of seconds) clamped to ADMIN_WAIT_MAX_MS, however large. 0, or -1 after
 * answering 400 naming the parameter (index not a number, wait not a duration). */
enum { ADMIN_WAIT_MAX_MS = 10 * 60 * 1000 };
SH_MUST_CHECK int admin__blocking_params(struct admin_req *r, uint64_t *index, uint64_t *wait_ms);

/* Replies (each ends the request). */
/* As admin__reply_raw with extra header fields (at most 8). */
void admin__reply_fields(struct admin_req *r, int status, const char *content_type,
                         const struct http_out_field *extra, size_t nextra, struct slice body);
void admin__reply_json(struct admin_req *r, int status, json_t *body); /* steals body */
void admin__reply_json_index(struct admin_req *r, int status, json_t *body, uint64_t index);
void admin__reply_raw(struct admin_req *r, int status, const char *content_type, struct slice body,
                      uint64_t index);
/* As admin__reply_raw, with the X-Consul-* headers whatever the route. */
void admin__reply_raw_consul(struct admin_req *r, int status, const char *content_type,
                             struct slice body, uint64_t index);
/* {"error": "<what>", "field": "<field>"} with <status>; field may be NULL. */
void admin__reply_error(struct admin_req *r, int status, const char *field, const char *what);

/* Blocking queries: park r until the handler calls a reply (or the client leaves, when
 * cancel runs). */
void admin__park(struct admin_req *r, void *wait, void (*cancel)(struct admin_req *r));
void admin__unpark(struct admin_req *r);

/* Handlers of the route table (routes.c), by file. */
admin_handler_fn admin__kv_get, admin__kv_put, admin__kv_delete, admin__kv_history,
    admin__kv_rollback;
admin_handler_fn admin__service_register, admin__service_deregister, admin__check_pass,
    admin__check_warn, admin__check_fail, admin__catalog_services, admin__catalog_service,
    admin__health_service, admin__prometheus_sd, admin__sd_endpoints;
admin_handler_fn admin__events_services, admin__events_kv;
admin_handler_fn admin__intentions_list, admin__intentions_add, admin__intentions_remove,
    admin__intentions_check;
admin_handler_fn admin__tokens_list, admin__tokens_create, admin__tokens_revoke, admin__token_self,
    admin__audit;
admin_handler_fn admin__ca_get, admin__ca_rotate, admin__ca_sign;
/* The dashboard (ui.c): assets, login, logout, the session's CSRF value. */
admin_handler_fn admin__ui_asset, admin__ui_login, admin__ui_logout, admin__ui_session,
    admin__ui_redirect;
/* GET /v1/logs from the log store (routes_logs.c). */
/* The metrics history (routes_metrics.c). */
admin_handler_fn admin__metrics_history, admin__topology, admin__slo;
struct obs_logs;
void admin__logs_search(struct admin_req *r, struct obs_logs *logs);
admin_handler_fn admin__zipkin_ingest, admin__otlp_ingest, admin__zipkin_services,
    admin__zipkin_span_names, admin__zipkin_remote_services, admin__zipkin_traces,
    admin__zipkin_trace, admin__zipkin_dependencies, admin__zipkin_autocomplete;
/* The body cap of span ingest routes (larger than the admin's), or 0 for any other request. */
size_t admin__traces_body_limit(struct slice path, enum http_method method);

/* The render cache. The key is the path and the query without index, wait, stale and token
 * (what does not change the answer). cache_reply answers from it and returns true on a hit. */
void admin__cache_key(struct admin_req *r, char *out, size_t n);
bool admin__cache_reply(struct admin_req *r, const char *key, uint64_t index);
/* Renders body (stolen), keeps the text under key at index, and answers with it. */
void admin__reply_json_cached(struct admin_req *r, json_t *body, uint64_t index, const char *key);

/* JSON body parsing with a clear 400 on failure; NULL when the reply was sent. */
json_t *admin__body_json(struct admin_req *r, json_type want);

#endif
