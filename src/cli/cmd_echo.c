/* SPDX-License-Identifier: MIT */
/* cmd_echo.c: `shoal echo`, a small HTTP server that describes each request it gets.
 * It is the upstream of the examples, the integration tests and the benchmarks, and it drives
 * the http server through the real binary: streaming bodies (POST /echo streams the body back
 * as it arrives, with backpressure), keep-alive, pipelining, timeouts, graceful shutdown. */
#include "cli/cli_int.h"
#include "http/http.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct echo {
    uv_loop_t *loop;
    struct http_server *srv;
    uv_signal_t sigint, sigterm;
    const char *name;
    uint64_t delay_ms;
    int status;
    uint32_t shutdown_ms;
    struct http_server_config cfg;
};

/* Per-request state, in the exchange's arena. */
struct echo_req {
    struct echo *e;
    struct http_exchange *ex;
    uv_timer_t *delay; /* heap-allocated: a handle must outlive the exchange until closed */
    uint64_t body_bytes;
    bool streaming, started;
};

static void timer_closed(uv_handle_t *h)
{
    sh_free(h);
}

static void describe(struct echo_req *r)
{
    const struct http_head *h = http_exchange_head(r->ex);
    struct buf b = BUF_INIT(256 * 1024);
    char status[8];
    struct http_out_field f[2] = {
        {SLICE("Content-Type"), SLICE("application/json")},
        {SLICE("X-Served-By"), slice_from_cstr(r->e->name)},
    };

    buf_appends(&b, SLICE("{\"method\":\""));
    buf_append_json_str(&b, http_head_method(h));
    buf_appends(&b, SLICE("\",\"target\":\""));
    buf_append_json_str(&b, http_head_target(h));
    buf_appendf(&b, "\",\"version\":\"1.%u\",\"served_by\":\"", h->version_minor);
    buf_append_json_str(&b, slice_from_cstr(r->e->name));
    buf_appends(&b, SLICE("\",\"peer\":\""));
    buf_append_json_str(&b, slice_from_cstr(http_exchange_peer(r->ex)));
    buf_appendf(&b, "\",\"body_bytes\":%llu,\"headers\":{", (unsigned long long)r->body_bytes);
    for (uint32_t i = 0; i < h->nfields; i++) {
        buf_appends(&b, i ? SLICE(",\"") : SLICE("\""));
        buf_append_json_str(&b, http_field_name(h, i));
        buf_appends(&b, SLICE("\":\""));
        buf_append_json_str(&b, http_field_value(h, i));
        buf_appendc(&b, '"');
    }
    buf_appends(&b, SLICE("}}\n"));
    snprintf(status, sizeof(status), "%d", r->e->status);
    if (b.err) {
        buf_release(&b);
        http_exchange_respond(r->ex, 500, SLICE("text/plain"), SLICE("response too large\n"));
        return;
    }
    struct http_response_head rh = {
        .status = r->e->status, .fields = f, .nfields = 2, .content_length = (int64_t)b.len};
    if (http_exchange_start(r->ex, &rh) == 0 && http_exchange_write(r->ex, b.data, b.len) >= 0)
        http_exchange_finish(r->ex);
    buf_release(&b);
}

/* The streamed answer starts with the first body byte, so that 100 Continue (sent when we ask
 * for the body) never follows a final status. */
static int stream_start(struct echo_req *r)
{
    const struct http_head *h = http_exchange_head(r->ex);
    struct slice ct;
    struct http_out_field f = {SLICE("Content-Type"), SLICE("application/octet-stream")};
    struct http_response_head rh = {
        .status = 200,
        .fields = &f,
        .nfields = 1,
        .content_length = h->body == HTTP_BODY_LENGTH ? (int64_t)h->content_length
                          : h->body == HTTP_BODY_NONE ? 0
                                                      : -1,
    };

    if (r->started) return 0;
    r->started = true;
    if (http_head_get(h, SLICE("content-type"), &ct)) f.value = ct;
    return http_exchange_start(r->ex, &rh);
}

static void on_body(struct http_exchange *ex, struct slice chunk, void *data)
{
    struct echo_req *r = data;

    r->body_bytes += chunk.len;
    if (!r->streaming) return;
    if (stream_start(r) < 0) {
        http_exchange_abort(ex);
        return;
    }
    /* backpressure: a slow reader pauses the upload until its queue drains */
    if (http_exchange_write(ex, chunk.ptr, chunk.len) == HTTP_AGAIN) http_exchange_pause(ex);
}

static void on_drain(struct http_exchange *ex, void *data)
{
    (void)data;
    http_exchange_resume(ex);
}

static void delay_done(uv_timer_t *t)
{
    struct echo_req *r = t->data;

    r->delay = NULL;
    uv_close((uv_handle_t *)t, timer_closed);
    describe(r);
}

static void on_body_end(struct http_exchange *ex, void *data)
{
    struct echo_req *r = data;

    if (r->streaming) {
        if (stream_start(r) < 0 || http_exchange_finish(ex) < 0) http_exchange_abort(ex);
        return;
    }
    if (r->e->delay_ms) {
        r->delay = sh_malloc(sizeof(*r->delay));
        if (r->delay) {
            uv_timer_init(r->e->loop, r->delay);
            r->delay->data = r;
            uv_timer_start(r->delay, delay_done, r->e->delay_ms, 0);
            return;
        }
    }
    describe(r);
}

static void on_abort(struct http_exchange *ex, int err, void *data)
{
    struct echo_req *r = data;

    (void)ex;
    (void)err;
    if (r->delay) {
        uv_timer_stop(r->delay);
        uv_close((uv_handle_t *)r->delay, timer_closed);
        r->delay = NULL;
    }
}

static const struct http_exchange_handlers echo_handlers = {
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_drain = on_drain,
    .on_abort = on_abort,
};

static void on_request(struct http_exchange *ex, void *data)
{
    struct echo *e = data;
    const struct http_head *h = http_exchange_head(ex);
    struct echo_req *r = arena_alloc(http_exchange_arena(ex), sizeof(*r));

    if (!r) {
        http_exchange_abort(ex);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->e = e;
    r->ex = ex;
    http_exchange_set_handlers(ex, &echo_handlers, r);
    r->streaming = (h->method == HTTP_M_POST || h->method == HTTP_M_PUT) &&
                   slice_eq(http_head_target(h), SLICE("/echo"));
    if (slice_eq(http_head_target(h), SLICE("/health")) && h->method == HTTP_M_GET) {
        http_exchange_respond(ex, 200, SLICE("application/json"), SLICE("{\"status\":\"ok\"}\n"));
        return;
    }
    http_exchange_resume(ex);
}

static void on_shutdown_done(void *data)
{
    struct echo *e = data;

    uv_close((uv_handle_t *)&e->sigint, NULL);
    uv_close((uv_handle_t *)&e->sigterm, NULL);
    http_server_free(e->srv);
    e->srv = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct echo *e = s->data;

    SH_LOG(SH_INFO, "cli", "shutting down", LF_INT("signal", signum));
    uv_signal_stop(&e->sigint);
    uv_signal_stop(&e->sigterm);
    http_server_shutdown(e->srv, e->shutdown_ms, on_shutdown_done, e);
}

int cli_cmd_echo(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("echo");
    const char *listen = "127.0.0.1:8081";
    struct echo e = {.name = "echo", .status = 200, .shutdown_ms = 5000};
    struct sockaddr_storage ss;
    struct sh_diag d = {{0}, {0}};
    uv_loop_t loop;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--listen") || !strcmp(a, "--name") || !strcmp(a, "--delay") ||
            !strcmp(a, "--status") || !strcmp(a, "--log-level") || !strncmp(a, "--timeout-", 10) ||
            !strcmp(a, "--shutdown-grace")) {
            if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a);
            i++;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
        if (!strcmp(a, "--listen")) {
            listen = v;
        } else if (!strcmp(a, "--name")) {
            e.name = v;
        } else if (!strcmp(a, "--delay")) {
            if (sh_parse_duration_ms(slice_from_cstr(v), &e.delay_ms, &d) < 0)
                return cli_usage_error(cmd, "--delay: %s", d.what);
        } else if (!strncmp(a, "--timeout-", 10) || !strcmp(a, "--shutdown-grace")) {
            static const char *const names[] = {"--timeout-header", "--timeout-body",
                                                "--timeout-idle", "--timeout-send",
                                                "--shutdown-grace"};
            uint32_t *slots[] = {&e.cfg.header_timeout_ms, &e.cfg.body_timeout_ms,
                                 &e.cfg.idle_timeout_ms, &e.cfg.send_timeout_ms, &e.shutdown_ms};
            uint64_t ms;
            size_t k = 0;
            while (k < SH_ARRAY_LEN(names) && strcmp(a, names[k]) != 0)
                k++;
            if (k == SH_ARRAY_LEN(names)) return cli_usage_error(cmd, "unknown option '%s'", a);
            if (sh_parse_duration_ms(slice_from_cstr(v), &ms, &d) < 0 || ms == 0 || ms > UINT32_MAX)
                return cli_usage_error(cmd, "%s: %s", a, ms == 0 ? "must be above 0" : d.what);
            *slots[k] = (uint32_t)ms;
        } else if (!strcmp(a, "--status")) {
            uint64_t st;
            if (slice_to_u64(slice_from_cstr(v), &st) || st < 200 || st > 599)
                return cli_usage_error(cmd, "--status: '%s' is not a status from 200 to 599", v);
            e.status = (int)st;
        } else {
            int lvl = sh_log_level_parse(slice_from_cstr(v));
            if (lvl < 0) return cli_usage_error(cmd, "--log-level: unknown level '%s'", v);
            sh_log_setup((enum sh_log_level)lvl, SH_LOG_AUTO, 2);
        }
    }
    if (sh_listen_parse(listen, &ss, &d) < 0) return cli_usage_error(cmd, "--listen: %s", d.what);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    e.loop = &loop;
    e.cfg.addr = &ss;
    e.cfg.on_request = on_request;
    e.cfg.data = &e;
    rc = http_server_new(&loop, &e.cfg, &e.srv, &d);
    if (rc < 0) {
        fprintf(stderr, "shoal echo: %s: %s\n", d.where, d.what);
        uv_loop_close(&loop);
        return 1;
    }
    uv_signal_init(&loop, &e.sigint);
    uv_signal_init(&loop, &e.sigterm);
    e.sigint.data = e.sigterm.data = &e;
    uv_signal_start(&e.sigint, on_signal, SIGINT);
    uv_signal_start(&e.sigterm, on_signal, SIGTERM);
    SH_LOG(SH_INFO, "cli", "echo server listening", LF_STR("addr", listen),
           LF_UINT("port", http_server_port(e.srv)), LF_STR("name", e.name));
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&loop);
    SH_LOG(SH_INFO, "cli", "echo server stopped");
    return rc == 0 ? 0 : 1;
}
