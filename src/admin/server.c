/* SPDX-License-Identifier: MIT */
/* server.c: the admin API's transport: listener, body collection with a size cap, token
 * checks, route dispatch through the one table, JSON replies and parked blocking queries. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------------------------ */
/* Every request to a write or admin route, allowed or not, goes to the audit log; but for the
 * spans accepted by an ingest route (telemetry every few seconds from every instance, not a
 * change to the system: refusals are still written). */
static void audit(struct admin_req *r, int status)
{
    if (!r->a->cfg.audit || !r->route || (r->route->auth & ADMIN_AUTH_NEED) < ADMIN_AUTH_WRITE)
        return;
    if ((r->route->auth & ADMIN_AUTH_INGEST) && status < 400) return;
    struct sec_audit_entry e = {
        .time_ms = sh_wall_ms(),
        .token_id = r->token ? r->token->id : "",
        .token_name = r->token ? r->token->name : "",
        .method = http_head_method(r->h),
        .path = r->path,
        .status = status,
        .peer = http_exchange_peer(r->ex),
    };
    if (sec_audit_write(r->a->cfg.audit, &e) < 0)
        SH_LOG(SH_WARN, "admin", "cannot write the audit log", LF_SLICE("path", r->path));
}

static void reply_with(struct admin_req *r, int status, const char *ctype, struct slice body,
                       bool consul, uint64_t index, const struct http_out_field *extra,
                       size_t nextra)
{
    struct http_out_field f[14];
    size_t n = 0;
    char idx[24];

    if (r->answered) return;
    r->answered = true;
    admin__unpark(r);
    audit(r, status);
    f[n++] = (struct http_out_field){SLICE("Content-Type"), slice_from_cstr(ctype)};
    if (consul) {
        snprintf(idx, sizeof(idx), "%llu", (unsigned long long)(index ? index : 1));
        f[n++] = (struct http_out_field){SLICE("X-Consul-Index"), slice_from_cstr(idx)};
        f[n++] = (struct http_out_field){SLICE("X-Consul-LastContact"), SLICE("0")};
        f[n++] = (struct http_out_field){SLICE("X-Consul-KnownLeader"), SLICE("true")};
    }
    for (size_t i = 0; i < nextra && n < SH_ARRAY_LEN(f); i++)
        f[n++] = extra[i];
    struct http_response_head rh = {
        .status = status, .fields = f, .nfields = n, .content_length = (int64_t)body.len};
    if (http_exchange_start(r->ex, &rh) < 0 || http_exchange_write(r->ex, body.ptr, body.len) < 0 ||
        http_exchange_finish(r->ex) < 0)
        http_exchange_abort(r->ex);
    buf_release(&r->body);
}

static void reply(struct admin_req *r, int status, const char *ctype, struct slice body,
                  bool consul, uint64_t index)
{
    reply_with(r, status, ctype, body, consul, index, NULL, 0);
}

void admin__reply_fields(struct admin_req *r, int status, const char *content_type,
                         const struct http_out_field *extra, size_t nextra, struct slice body)
{
    reply_with(r, status, content_type, body, false, 0, extra, SH_MIN(nextra, (size_t)8));
}

void admin__reply_raw(struct admin_req *r, int status, const char *content_type, struct slice body,
                      uint64_t index)
{
    reply(r, status, content_type, body, r->route && r->route->is_consul, index);
}

void admin__reply_raw_consul(struct admin_req *r, int status, const char *content_type,
                             struct slice body, uint64_t index)
{
    reply(r, status, content_type, body, true, index);
}

void admin__reply_json_index(struct admin_req *r, int status, json_t *body, uint64_t index)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);

    json_decref(body);
    if (!text) {
        reply(r, 500, "application/json", SLICE("{\"error\":\"out of memory\"}\n"), false, 0);
        return;
    }
    reply(r, status, "application/json", slice_from_cstr(text), r->route && r->route->is_consul,
          index);
    sh_free(text); /* jansson allocates through sh_malloc (admin_new sets it) */
}

void admin__cache_key(struct admin_req *r, char *out, size_t n)
{
    struct buf b = BUF_INIT(n - 1);
    struct slice rest = r->query, item, key;

    buf_appends(&b, r->path);
    buf_appendc(&b, '?');
    while (rest.ptr && rest.len) {
        rest = slice_split(rest, '&', &item);
        slice_split(item, '=', &key);
        if (slice_eq(key, SLICE("index")) || slice_eq(key, SLICE("wait")) ||
            slice_eq(key, SLICE("stale")) || slice_eq(key, SLICE("token")) ||
            slice_eq(key, SLICE("consistent")))
            continue;
        buf_appends(&b, item);
        buf_appendc(&b, '&');
    }
    /* too long to key: an empty key never matches (the answer is rendered each time) */
    snprintf(out, n, "%s", b.err ? "" : b.data ? b.data : "");
    buf_release(&b);
}

bool admin__cache_reply(struct admin_req *r, const char *key, uint64_t index)
{
    if (!key[0]) return false;
    for (size_t i = 0; i < ADMIN_CACHE_SLOTS; i++) {
        struct admin_cached *c = &r->a->cache[i];
        if (c->index == index && c->body.data && strcmp(c->key, key) == 0) {
            /* the reply copies the bytes into the connection's queue */
            reply(r, 200, c->ctype, buf_slice(&c->body), r->route && r->route->is_consul, index);
            return true;
        }
    }
    return false;
}

void admin__reply_json_cached(struct admin_req *r, json_t *body, uint64_t index, const char *key)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);

    json_decref(body);
    if (!text) {
        reply(r, 500, "application/json", SLICE("{\"error\":\"out of memory\"}\n"), false, 0);
        return;
    }
    if (key[0]) {
        struct admin_cached *c = &r->a->cache[r->a->cache_next++ % ADMIN_CACHE_SLOTS];
        buf_reset(&c->body);
        if (buf_appends(&c->body, slice_from_cstr(text)) == 0) {
            snprintf(c->key, sizeof(c->key), "%s", key);
            c->index = index;
            c->ctype = "application/json";
        } else {
            buf_release(&c->body);
        }
    }
    reply(r, 200, "application/json", slice_from_cstr(text), r->route && r->route->is_consul,
          index);
    sh_free(text);
}

void admin__reply_json(struct admin_req *r, int status, json_t *body)
{
    admin__reply_json_index(r, status, body, 0);
}

void admin__reply_error(struct admin_req *r, int status, const char *field, const char *what)
{
    json_t *o = json_object();

    json_object_set_new(o, "error", json_string(what));
    if (field) json_object_set_new(o, "field", json_string(field));
    admin__reply_json(r, status, o);
}

json_t *admin__body_json(struct admin_req *r, json_type want)
{
    json_error_t err;
    json_t *v;
    char what[256];

    if (r->body.len == 0) {
        admin__reply_error(r, 400, "body", "a JSON body is required");
        return NULL;
    }
    v = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        snprintf(what, sizeof(what), "invalid JSON at line %d, column %d: %s", err.line, err.column,
                 err.text);
        admin__reply_error(r, 400, "body", what);
        return NULL;
    }
    if (json_typeof(v) != want) {
        json_decref(v);
        admin__reply_error(r, 400, "body",
                           want == JSON_OBJECT ? "expected a JSON object" : "wrong JSON type");
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------------------------------
 * Query strings
 * ------------------------------------------------------------------------------------------ */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %XX and '+' (in queries) decoded into the arena; NULL on a bad escape or no memory. */
static char *url_decode(struct arena *a, struct slice s, bool plus_is_space)
{
    char *out = arena_alloc(a, s.len + 1), *p = out;

    if (!out) return NULL;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c == '%') {
            int hi = i + 2 < s.len ? hexval(s.ptr[i + 1]) : -1;
            int lo = i + 2 < s.len ? hexval(s.ptr[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return NULL;
            *p++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *p++ = plus_is_space && c == '+' ? ' ' : c;
        }
    }
    *p = '\0';
    return out;
}

const char *admin__query_nth(struct admin_req *r, const char *name, size_t nth)
{
    struct slice rest = r->query, item, key;
    struct slice want = slice_from_cstr(name);

    while (rest.ptr && rest.len) {
        rest = slice_split(rest, '&', &item);
        struct slice value = slice_split(item, '=', &key);
        if (!slice_eq(key, want)) continue;
        if (nth > 0) {
            nth--;
            continue;
        }
        if (!value.ptr) return "";
        return url_decode(http_exchange_arena(r->ex), value, true);
    }
    return NULL;
}

const char *admin__query(struct admin_req *r, const char *name)
{
    return admin__query_nth(r, name, 0);
}

int admin__blocking_params(struct admin_req *r, uint64_t *index, uint64_t *wait_ms)
{
    const char *v;
    char what[160];
    int rc;

    *index = 0;
    *wait_ms = 0;
    v = admin__query(r, "index");
    if (v && *v && slice_to_u64(slice_from_cstr(v), index) != 0) {
        snprintf(what, sizeof(what),
                 "index: '%.64s' is not an index (a decimal number from X-Consul-Index)", v);
        admin__reply_error(r, 400, "index", what);
        *index = 0;
        return -1;
    }
    v = admin__query(r, "wait");
    if (v && *v) {
        /* Consul clients send "120000ms"; a bare number means seconds there. Values past the
         * cap are clamped to it (as Consul does), huge ones included: no multiplication here
         * can overflow */
        uint64_t n;
        rc = slice_to_u64(slice_from_cstr(v), &n);
        if (rc == 0 || rc == SH_ETOOBIG)
            *wait_ms = rc == 0 && n <= ADMIN_WAIT_MAX_MS / 1000 ? n * 1000 : ADMIN_WAIT_MAX_MS;
        else if ((rc = sh_parse_duration_ms(slice_from_cstr(v), wait_ms, NULL)) == SH_ETOOBIG)
            *wait_ms = ADMIN_WAIT_MAX_MS;
        else if (rc != 0) {
            snprintf(what, sizeof(what),
                     "wait: '%.64s' is not a duration (write e.g. 30s, 5m or 120000ms; at most "
                     "10m)",
                     v);
            admin__reply_error(r, 400, "wait", what);
            *index = *wait_ms = 0;
            return -1;
        }
    }
    if (*index && *wait_ms == 0) *wait_ms = 5 * 60 * 1000; /* Consul's default */
    if (*wait_ms > ADMIN_WAIT_MAX_MS) *wait_ms = ADMIN_WAIT_MAX_MS;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Parked requests (blocking queries)
 * ------------------------------------------------------------------------------------------ */
void admin__park(struct admin_req *r, void *wait, void (*cancel)(struct admin_req *r))
{
    r->wait = wait;
    r->cancel_wait = cancel;
    r->next_waiting = r->a->waiting;
    r->prev_waiting = NULL;
    if (r->a->waiting) r->a->waiting->prev_waiting = r;
    r->a->waiting = r;
}

void admin__unpark(struct admin_req *r)
{
    if (!r->cancel_wait) return;
    if (r->prev_waiting)
        r->prev_waiting->next_waiting = r->next_waiting;
    else
        r->a->waiting = r->next_waiting;
    if (r->next_waiting) r->next_waiting->prev_waiting = r->prev_waiting;
    r->next_waiting = r->prev_waiting = NULL;
    r->cancel_wait = NULL; /* r->wait stays: a caller that unparks to cancel still needs it */
}

/* Drops r's pending wait, if any. The cancel callback runs first: it reads r->wait, which
 * admin__unpark clears (the other order leaked the wait, whose callback later ran on a freed
 * request: "blocking queries the client cancels leave the server sound" in
 * tests/integ/consul-client/consul_client_test.js pins this down). */
static void cancel_parked(struct admin_req *r)
{
    void (*cancel)(struct admin_req *) = r->cancel_wait;

    if (!cancel) return;
    cancel(r);
    admin__unpark(r);
}

/* ------------------------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------------------------ */
/* The key a keyed route names, and whether it is a prefix: a recursive read, a key listing, a
 * recursive delete or a watch of a prefix. */
static struct sec_request route_request(struct admin_req *r)
{
    unsigned auth = r->route->auth;
    struct sec_request rq = {.need = (enum sec_need)(auth & ADMIN_AUTH_NEED),
                             .is_ingest = (auth & ADMIN_AUTH_INGEST) != 0};

    if (!(auth & ADMIN_AUTH_KEYED)) return rq;
    rq.is_keyed = true;
    rq.key = slice_from_cstr(r->rest ? r->rest : "");
    rq.is_prefix = admin__query(r, "recurse") != NULL || admin__query(r, "keys") != NULL ||
                   slice_starts_with(r->path, SLICE("/v1/events/"));
    return rq;
}

/* The token a session stands for, copied into the request's arena; NULL when it is gone. */
static const struct sec_token *session_token(struct admin_req *r, const struct admin_session *s)
{
    size_t count = 0;
    const struct sec_token *all = sec_tokens_list(r->a->cfg.tokens, &count);
    struct sec_token *copy;

    for (size_t i = 0; i < count; i++) {
        if (strcmp(all[i].id, s->token_id) != 0) continue;
        copy = arena_alloc(http_exchange_arena(r->ex), sizeof(*copy));
        if (copy) *copy = all[i];
        return copy;
    }
    return NULL;
}

/* The dashboard's cookie: a live session whose token still exists; a request that is not a
 * GET or HEAD must also carry the session's CSRF value in X-Shoal-CSRF (a page of another
 * site cannot read it, so it cannot forge a write even where a browser sends the cookie). */
static int check_session(struct admin_req *r, struct slice sid, const struct sec_request *rq)
{
    const struct admin_session *s = admin__session_find(&r->a->sessions, sid, sh_wall_ms());
    enum http_method m = r->h->method;
    struct sec_decision dec;
    struct slice csrf = SLICE_NULL;

    if (!s) {
        admin__reply_error(r, 401, "session",
                           "the dashboard session is unknown or has expired; log in again");
        return -1;
    }
    if (m != HTTP_M_GET && m != HTTP_M_HEAD &&
        (!http_head_get(r->h, SLICE("x-shoal-csrf"), &csrf) ||
         !admin__session_csrf_ok(s, slice_trim(csrf)))) {
        admin__reply_error(r, 403, "X-Shoal-CSRF",
                           "a write with the session cookie needs the session's X-Shoal-CSRF "
                           "header");
        return -1;
    }
    r->session = s;
    r->token = session_token(r, s);
    if (!r->token) {
        admin__reply_error(r, 401, "session", "the session's token was revoked; log in again");
        return -1;
    }
    sec_authorize(r->token, rq, sh_wall_ms(), &dec);
    if (dec.allow) return 0;
    admin__reply_error(r, dec.status, "token", dec.why);
    return -1;
}

/* 0 when the request may go on; otherwise the reply was sent. */
static int check_token(struct admin_req *r)
{
    struct slice got = SLICE_NULL, v;
    const char *q;
    struct sec_decision dec;
    struct sec_request rq = route_request(r);

    if (rq.need == SEC_NEED_NONE) return 0;
    if (http_head_get(r->h, SLICE("authorization"), &v) && slice_starts_with(v, SLICE("Bearer ")))
        got = slice_trim((struct slice){v.ptr + 7, v.len - 7});
    else if (http_head_get(r->h, SLICE("authorization"), &v) && !memchr(v.ptr, ' ', v.len))
        got = v; /* a bare token: Prometheus 2.42's http_sd sends `credentials` so without type */
    else if (http_head_get(r->h, SLICE("x-consul-token"), &v))
        got = slice_trim(v);
    else if (r->route->is_consul && (q = admin__query(r, "token")) != NULL)
        got = slice_from_cstr(q);
    else if (http_head_get(r->h, SLICE("cookie"), &v) &&
             admin__cookie_get(v, SLICE("shoal_session"), &v))
        return check_session(r, v, &rq);
    if (got.ptr && got.len) {
        if (got.len > SH_TOKEN_MAX_LEN) {
            char what[96];
            snprintf(what, sizeof(what), "the token is longer than %d characters",
                     SH_TOKEN_MAX_LEN);
            admin__reply_error(r, 401, "token", what);
            return -1;
        }
        const struct sec_token *t = sec_tokens_verify(r->a->cfg.tokens, got);
        /* a copy: the table moves when tokens are made or revoked, and a parked request (a
         * blocking query, an event stream, the audit at its answer) outlives this call */
        struct sec_token *copy = t ? arena_alloc(http_exchange_arena(r->ex), sizeof(*copy)) : NULL;
        if (copy) *copy = *t;
        r->token = copy;
        if (t && !copy) {
            admin__reply_error(r, 500, NULL, "out of memory");
            return -1;
        }
        if (!r->token) { /* 403, as Consul answers an unknown ACL token */
            admin__reply_error(r, 403, "token", "the token is not valid (unknown or revoked)");
            return -1;
        }
    }
    sec_authorize(r->token, &rq, sh_wall_ms(), &dec);
    if (dec.allow) return 0;
    admin__reply_error(r, dec.status, "token", dec.why);
    return -1;
}

/* Consul's ?dc=: only our own datacenter is reachable. Consul answers any other with a 500 and
 * this text (clients show it), rather than with local data. false when that reply was sent. */
static bool local_dc(struct admin_req *r)
{
    const char *dc = admin__query(r, "dc");

    if (!dc || !*dc || strcmp(dc, r->a->cfg.datacenter) == 0) return true;
    admin__reply_raw(r, 500, "text/plain", SLICE("No path to datacenter"), 0);
    return false;
}

static void dispatch(struct admin_req *r)
{
    const struct admin_route *rt;
    bool path_known = false;

    for (size_t i = 0; i < admin_nroutes; i++) {
        rt = &admin_routes[i];
        struct slice p = slice_from_cstr(rt->path);
        bool match = rt->is_prefix ? slice_starts_with(r->path, p) : slice_eq(r->path, p);
        if (!match) continue;
        path_known = true;
        if (rt->method != r->h->method &&
            !(rt->method == HTTP_M_GET && r->h->method == HTTP_M_HEAD))
            continue;
        r->route = rt;
        if (rt->is_prefix) {
            r->rest = url_decode(http_exchange_arena(r->ex),
                                 (struct slice){r->path.ptr + p.len, r->path.len - p.len}, false);
            if (!r->rest) {
                admin__reply_error(r, 400, "path", "invalid %-escape in the path");
                return;
            }
        }
        if (check_token(r) < 0) return;
        if (rt->is_consul && !local_dc(r)) return;
        rt->fn(r);
        return;
    }
    if (path_known)
        admin__reply_error(r, 405, "method", "method not allowed on this path");
    else
        admin__reply_error(r, 404, "path", "no such API route");
}

static void on_body(struct http_exchange *ex, struct slice chunk, void *data)
{
    struct admin_req *r = data;

    (void)ex;
    if (r->too_big) return;
    if (buf_appends(&r->body, chunk) != 0) {
        r->too_big = true;
        buf_release(&r->body);
    }
}

static void on_body_end(struct http_exchange *ex, void *data)
{
    struct admin_req *r = data;

    (void)ex;
    if (r->too_big) {
        admin__reply_error(r, 413, "body", "the body is larger than the limit");
        return;
    }
    dispatch(r);
}

static void on_abort(struct http_exchange *ex, int err, void *data)
{
    struct admin_req *r = data;

    (void)ex;
    (void)err;
    r->answered = true;
    cancel_parked(r);
    buf_release(&r->body);
}

static const struct http_exchange_handlers req_handlers = {
    .on_body = on_body, .on_body_end = on_body_end, .on_abort = on_abort};

/* The body cap of the route a request goes to: span ingest has its own, else the admin's. */
static size_t body_limit(const struct admin *a, struct slice path, enum http_method method)
{
    size_t n = admin__traces_body_limit(path, method);

    return n ? n : a->cfg.max_body_bytes;
}

static void on_request(struct http_exchange *ex, void *data)
{
    struct admin *a = data;
    const struct http_head *h = http_exchange_head(ex);
    struct admin_req *r = arena_alloc(http_exchange_arena(ex), sizeof(*r));
    struct slice t = http_head_target(h);

    if (!r) {
        http_exchange_abort(ex);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->a = a;
    r->ex = ex;
    r->h = h;
    r->query = slice_split(t, '?', &r->path);
    size_t max_body = body_limit(a, r->path, h->method);
    r->body = BUF_INIT(max_body);
    if (h->body == HTTP_BODY_LENGTH && h->content_length > max_body) {
        admin__reply_error(r, 413, "body", "the body is larger than the limit");
        return;
    }
    http_exchange_set_handlers(ex, &req_handlers, r);
    http_exchange_resume(ex);
}

/* The Zipkin listener: Zipkin's API only (what the Zipkin UI, Grafana's Zipkin data source and
 * Zipkin reporters expect on port 9411), with the same tokens; anything else is 404. */
static void on_zipkin_request(struct http_exchange *ex, void *data)
{
    struct slice path, t = http_head_target(http_exchange_head(ex));

    (void)slice_split(t, '?', &path);
    if (!slice_starts_with(path, SLICE("/api/v2/"))) {
        static const char body[] = "{\"error\":\"not found: this listener serves Zipkin's API "
                                   "(/api/v2/...) only\"}\n";
        if (http_exchange_respond(ex, 404, SLICE("application/json"),
                                  (struct slice){body, sizeof(body) - 1}) < 0)
            http_exchange_abort(ex);
        return;
    }
    on_request(ex, data);
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------ */
int admin_new(uv_loop_t *loop, const struct admin_config *cfg, struct admin **out,
              struct sh_diag *d)
{
    struct admin *a = sh_calloc(1, sizeof(*a));
    struct sockaddr_storage ss;
    int rc;

    *out = NULL;
    if (!a) return SH_ENOMEM;
    /* jansson's allocations go through ours, so tests count them and torture can fail them;
     * set before any JSON value exists, and the same for every admin */
    json_set_alloc_funcs(sh_malloc, sh_free);
    a->loop = loop;
    a->cfg = *cfg;
    if (!a->cfg.listen) a->cfg.listen = "127.0.0.1:7700";
    if (!a->cfg.datacenter) a->cfg.datacenter = "dc1";
    if (!a->cfg.max_body_bytes) a->cfg.max_body_bytes = 1 << 20;
    if (!cfg->tokens) {
        sh_diag_set(d, "tokens", "the admin API needs a token table");
        sh_free(a);
        return SH_EINVAL;
    }
    if (cfg->node)
        snprintf(a->node, sizeof(a->node), "%s", cfg->node);
    else if (gethostname(a->node, sizeof(a->node) - 1) != 0)
        snprintf(a->node, sizeof(a->node), "node-1");
    a->started_ms = uv_now(loop);
    rc = sh_listen_parse(a->cfg.listen, &ss, d);
    if (rc < 0) {
        sh_free(a);
        return rc;
    }
    struct http_server_config scfg = {
        .addr = &ss,
        .on_request = on_request,
        .data = a,
        .idle_timeout_ms = 700000, /* blocking queries hold a connection up to 10 min */
        .send_timeout_ms = 60000,
        .barrier = cfg->barrier,
    };
    rc = http_server_new(loop, &scfg, &a->srv, d);
    if (rc < 0) {
        sh_free(a);
        return rc;
    }
    if (cfg->zipkin_listen) {
        rc = sh_listen_parse(cfg->zipkin_listen, &ss, d);
        scfg.on_request = on_zipkin_request;
        if (rc == 0) rc = http_server_new(loop, &scfg, &a->zipkin_srv, d);
        if (rc < 0) {
            http_server_free(a->srv);
            sh_free(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

uint16_t admin_port(const struct admin *a)
{
    return http_server_port(a->srv);
}

static void stopped(void *data)
{
    struct admin *a = data;

    if (--a->stop_pending > 0) return;
    if (a->stop_done) a->stop_done(a->stop_data);
}

void admin_stop(struct admin *a, uint32_t deadline_ms, void (*done)(void *), void *data)
{
    a->stopping = true;
    a->stop_done = done;
    a->stop_data = data;
    /* parked blocking queries are answered now rather than held until the deadline */
    while (a->waiting) {
        struct admin_req *r = a->waiting;
        cancel_parked(r);
        if (r->is_stream && !r->stream_ended) {
            r->stream_ended = true;
            if (http_exchange_finish(r->ex) < 0) http_exchange_abort(r->ex);
        } else if (!r->answered) {
            admin__reply_error(r, 503, NULL, "shutting down");
        }
    }
    a->stop_pending = a->zipkin_srv ? 2 : 1;
    http_server_shutdown(a->srv, deadline_ms, stopped, a);
    if (a->zipkin_srv) http_server_shutdown(a->zipkin_srv, deadline_ms, stopped, a);
}

void admin_free(struct admin *a)
{
    if (!a) return;
    for (size_t i = 0; i < ADMIN_CACHE_SLOTS; i++)
        buf_release(&a->cache[i].body);
    http_server_free(a->srv);
    http_server_free(a->zipkin_srv);
    sh_free(a);
}

int admin_token_load(const char *data_dir, char *out, size_t out_len, bool *created,
                     struct sh_diag *d)
{
    char path[1024];
    char text[SH_TOKEN_MAX_LEN + 64];
    unsigned char raw[24];
    int fd;
    ssize_t n;

    *created = false;
    snprintf(path, sizeof(path), "%s/token", data_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, text, sizeof(text));
        close(fd);
        if (n <= 0) {
            sh_diag_set(d, path, "cannot read the token file");
            return SH_EPARSE;
        }
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
            n--;
        if ((size_t)n >= out_len || n > SH_TOKEN_MAX_LEN) {
            sh_diag_set(d, path, "the token in this file is longer than %d characters",
                        (int)SH_MIN(out_len - 1, SH_TOKEN_MAX_LEN));
            return SH_ETOOBIG;
        }
        memcpy(out, text, (size_t)n);
        out[n] = '\0';
        if (n < 16) {
            sh_diag_set(d, path, "the token in this file is shorter than 16 characters");
            return SH_EPARSE;
        }
        return 0;
    }
    if (errno != ENOENT) {
        sh_diag_set(d, path, "cannot open: %s", strerror(errno));
        return -errno;
    }
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        sh_diag_set(d, path, "no randomness for a token: %s", strerror(errno));
        return SH_EIO;
    }
    if (out_len < sizeof(raw) * 2 + 1) return SH_EINVAL;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sh_diag_set(d, path, "cannot create: %s", strerror(errno));
        return -errno;
    }
    n = write(fd, out, strlen(out));
    if (n != (ssize_t)strlen(out) || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        sh_diag_set(d, path, "cannot write the token");
        return SH_EIO;
    }
    close(fd);
    *created = true;
    return 0;
}
