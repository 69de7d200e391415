/* SPDX-License-Identifier: MIT */
/* greeter: the example's front service. GET /hello asks the names service for a random name
 * through the mesh, by name only (SHOAL_MESH with "Host: names"; shoal picks a healthy
 * instance, retries and breaks circuits), and answers
 *   200 {"greeting":"hello, Ada!","from":"greeter on 127.0.0.1:41234"}
 * or 502 naming what failed. GREETING (default "hello") is the word used. */
#include "core/core.h"
#include "http/http.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PORT as a number from 1 to 65535, or 0. */
static uint16_t port_of(const char *s)
{
    char *end;
    unsigned long v = s && *s ? strtoul(s, &end, 10) : 0;

    return v && v <= 65535 && *end == '\0' ? (uint16_t)v : 0;
}

struct greeter {
    struct http_server *srv;
    struct http_client *cl;
    struct sockaddr_storage mesh;
    char proxy_auth[256]; /* "Basic base64(user:secret)" from SHOAL_MESH's userinfo, or "" */
    const char *greeting, *port;
    uv_signal_t sigterm, sigint;
};

/* One /hello: the exchange waits for the call to names. */
struct hello {
    struct greeter *g;
    struct http_exchange *ex;
    struct http_creq *cr;
    int status;
    struct buf body;
};

static void call_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct hello *r = data;

    (void)cr;
    r->status = h->status;
}

static void call_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct hello *r = data;

    (void)cr;
    buf_appends(&r->body, chunk);
}

/* The name out of {"name":"Ada"}; names never contain quotes or backslashes. */
static struct slice name_of(struct slice json)
{
    const char *key = "\"name\":\"", *p = NULL, *end;

    for (size_t i = 0; json.len >= 8 && i + 8 <= json.len && !p; i++) {
        if (!memcmp(json.ptr + i, key, 8))
            p = json.ptr + i + 8;
    }
    if (!p)
        return SLICE_NULL;
    end = memchr(p, '"', (size_t)(json.ptr + json.len - p));
    return end ? (struct slice){p, (size_t)(end - p)} : SLICE_NULL;
}

static void call_done(struct http_creq *cr, int rc, void *data)
{
    struct hello *r = data;
    struct http_exchange *ex = r->ex;
    struct buf b = BUF_INIT(4096);
    struct slice name = rc == 0 && r->status == 200 ? name_of(buf_slice(&r->body)) : SLICE_NULL;
    int status = name.ptr ? 200 : 502;

    (void)cr;
    r->cr = NULL;
    if (!name.ptr && rc < 0) {
        buf_appendf(&b, "{\"error\":\"calling names through the mesh: %s\"}\n",
                    sh_strerror(rc));
    } else if (!name.ptr) {
        buf_appendf(&b, "{\"error\":\"names answered %d\"}\n", r->status);
    } else {
        buf_appends(&b, SLICE("{\"greeting\":\""));
        buf_append_json_str(&b, slice_from_cstr(r->g->greeting));
        buf_appends(&b, SLICE(", "));
        buf_append_json_str(&b, name);
        buf_appendf(&b, "!\",\"from\":\"greeter on 127.0.0.1:%s\"}\n", r->g->port);
    }
    buf_release(&r->body); /* r lives in the exchange's arena: done with it before answering */
    http_exchange_respond(ex, status, SLICE("application/json"), buf_slice(&b));
    buf_release(&b);
}

static const struct http_creq_handlers call_handlers = {
    .on_head = call_head,
    .on_body = call_body,
    .on_done = call_done,
};

/* The client went away while names was being asked: drop the call. */
static void hello_abort(struct http_exchange *ex, int err, void *data)
{
    struct hello *r = data;

    (void)ex;
    (void)err;
    if (r->cr)
        http_creq_cancel(r->cr);
    r->cr = NULL;
    buf_release(&r->body);
}

static const struct http_exchange_handlers hello_handlers = {.on_abort = hello_abort};

static void on_request(struct http_exchange *ex, void *data)
{
    struct greeter *g = data;
    const struct http_head *h = http_exchange_head(ex);
    struct slice path, query = slice_split(http_head_target(h), '?', &path);
    struct hello *r;

    (void)query;
    if (h->method == HTTP_M_GET && slice_eq(path, SLICE("/health"))) {
        http_exchange_respond(ex, 200, SLICE("application/json"), SLICE("{\"status\":\"ok\"}\n"));
        return;
    }
    if (h->method != HTTP_M_GET || !slice_eq(path, SLICE("/hello"))) {
        http_exchange_respond(ex, 404, SLICE("application/json"),
                              SLICE("{\"error\":\"no such resource (try GET /hello)\"}\n"));
        return;
    }
    r = arena_alloc(http_exchange_arena(ex), sizeof(*r));
    if (!r) {
        http_exchange_abort(ex);
        return;
    }
    *r = (struct hello){.g = g, .ex = ex, .body = BUF_INIT(4096)};
    http_exchange_set_handlers(ex, &hello_handlers, r);
    /* who we are (the credential of our proxy URL), and the trace we are part of */
    struct http_out_field fl[2];
    size_t nfl = 0;
    struct slice tp;
    if (g->proxy_auth[0])
        fl[nfl++] = (struct http_out_field){SLICE("Proxy-Authorization"),
                                            slice_from_cstr(g->proxy_auth)};
    if (http_head_get(h, SLICE("traceparent"), &tp))
        fl[nfl++] = (struct http_out_field){SLICE("traceparent"), tp};
    struct http_request_desc desc = {
        .addr = (struct sockaddr *)&g->mesh,
        .method = SLICE("GET"),
        .target = SLICE("/names/random"),
        .host = SLICE("names"),
        .fields = fl,
        .nfields = nfl,
        .total_timeout_ms = 5000,
    };
    if (http_client_request(g->cl, &desc, &call_handlers, r, &r->cr) < 0)
        http_exchange_respond(ex, 502, SLICE("application/json"),
                              SLICE("{\"error\":\"cannot call names\"}\n"));
}

static void stopped(void *data)
{
    struct greeter *g = data;

    uv_close((uv_handle_t *)&g->sigterm, NULL);
    uv_close((uv_handle_t *)&g->sigint, NULL);
    http_server_free(g->srv); /* closes its handles: the loop runs until they are closed */
    g->srv = NULL;
    http_client_free(g->cl);
    g->cl = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct greeter *g = s->data;

    (void)signum;
    uv_signal_stop(&g->sigterm);
    uv_signal_stop(&g->sigint);
    http_server_shutdown(g->srv, 5000, stopped, g);
}

/* "Basic " and the base64 of user:secret (RFC 7617), as curl and Python send a proxy URL's
 * credential; false when out does not have room. */
static bool basic_auth(const char *userinfo, size_t len, char *out, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)userinfo;
    size_t o = 6;

    if (n < 6 + (len + 2) / 3 * 4 + 1) return false;
    memcpy(out, "Basic ", 6);
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len) v |= p[i + 2];
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return true;
}

/* SHOAL_MESH is http://[user:secret@]HOST:PORT: the address into g->mesh and the credential
 * into g->proxy_auth; *hostport points past the credential (never print the secret). */
static bool read_mesh(struct greeter *g, const char *mesh, const char **hostport)
{
    const char *at, *hp;
    struct sh_diag d = {{0}, {0}};

    if (!mesh || strncmp(mesh, "http://", 7)) return false;
    hp = mesh + 7;
    at = strrchr(hp, '@');
    if (at) {
        if (!basic_auth(hp, (size_t)(at - hp), g->proxy_auth, sizeof(g->proxy_auth))) return false;
        hp = at + 1;
    }
    *hostport = hp;
    return http_parse_addr(hp, &g->mesh, &d) == 0;
}

int main(void)
{
    const char *port = getenv("PORT"), *mesh = getenv("SHOAL_MESH"), *word = getenv("GREETING");
    struct greeter g = {.greeting = word && *word ? word : "hello", .port = port};
    struct sh_diag d = {{0}, {0}};
    uv_loop_t loop;
    int rc;

    if (!port_of(port)) {
        fprintf(stderr, "greeter: PORT must be set to a port number (shoal sets it)\n");
        return 2;
    }
    const char *mesh_addr = "";
    if (!read_mesh(&g, mesh, &mesh_addr)) {
        fprintf(stderr, "greeter: SHOAL_MESH must be http://[USER:SECRET@]HOST:PORT (shoal up "
                        "sets it), got '%s'\n", mesh_addr[0] ? mesh_addr : "(not that)");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    rc = http_client_new(&loop, &(struct http_client_config){0}, &g.cl);
    if (rc == 0)
        rc = http_server_new(&loop,
                             &(struct http_server_config){.port = port_of(port),
                                                          .on_request = on_request, .data = &g},
                             &g.srv, &d);
    if (rc < 0) {
        fprintf(stderr, "greeter: cannot listen on 127.0.0.1:%s: %s\n", port,
                d.what[0] ? d.what : sh_strerror(rc));
        http_client_free(g.cl);
        uv_run(&loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_init(&loop, &g.sigterm);
    uv_signal_init(&loop, &g.sigint);
    g.sigterm.data = g.sigint.data = &g;
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    printf("greeter: listening on 127.0.0.1:%s, calling names through the mesh at %s%s\n", port,
           mesh_addr, g.proxy_auth[0] ? " (with this instance's credential)" : "");
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
