/* SPDX-License-Identifier: MIT */
/* server.c: the HTTP/1.1 server: listener, connections, exchanges.
 *
 * A connection is IDLE (waiting for a request), HEAD (a request's head is arriving: the
 * header timeout runs), EXCHANGE (a handler owns the request) or LINGER (our side is shut
 * down after an answer that ends the connection; we read and discard for a moment so the
 * peer gets the answer rather than a reset). One exchange at a time: the next pipelined
 * request is parsed only when the current one has ended, so responses keep request order.
 *
 * Re-entrancy: handlers may call any http_exchange_* function from inside on_request/on_body;
 * conn_process then only records that it must run again (conn->reprocess). A conn is freed in
 * its close callbacks, never inside a callback of its own (style.md B5).
 * Thread: the loop's thread only. */
#include "http/http_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum conn_state { C_IDLE = 0, C_HEAD, C_EXCHANGE, C_LINGER };

enum {
    READ_CHUNK = 16 * 1024, /* bytes offered to each read */
    DRAIN_MAX = 1 << 20,    /* unread request body we discard to keep a connection */
    LINGER_MS = 2000,       /* time to read and discard after shutting our side down */
    PEEK_MAX = 64 * 1024,   /* bytes read ahead while an exchange waits for its answer */
    IDLE_SHED_CONNS = 128,  /* above this many connections, idle ones free their buffers */
    BACKLOG = 511,
};

struct http_exchange {
    struct srv_conn *conn;
    struct http_head head; /* base points into arena */
    struct arena arena;
    struct http_exchange_handlers h;
    void *data;
    bool active, body_done, want_body, paused, end_delivered, continue_sent, draining;
    bool resp_started, resp_done, chunked, no_body, keep_alive;
    int64_t resp_remaining; /* Content-Length bytes still due; -1 when not length-framed */
    uint64_t drained;
};

struct srv_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct http_server *srv;
    struct sh_list link; /* in srv->conns until conn_close */
    struct http__wq wq;
    struct http_parser parser;
    struct buf in; /* bytes read and not yet released; parsing is at in_off */
    size_t in_off;
    enum conn_state state;
    bool reading, close_after, closing, processing, reprocess, timer_armed;
    bool eof;             /* the client half-closed: no more reading, answer and close */
    bool tls_off;         /* TLS failed: the socket carries plain bytes (a 400) or nothing more */
    struct tls_conn *tls; /* NULL: plain HTTP */
    int open_handles;
    uint64_t since_ms, last_read_ms, armed_deadline, accepted_ms;
    uint32_t nrequests;
    struct http_exchange ex;
    char peer[64];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t shutdown_timer;
    struct http__flusher fl;
    struct http_server_config cfg;
    struct sh_list conns; /* of srv_conn, through link; newest first */
    struct http_server_stats stats;
    uint16_t port;
    bool shutting_down, listener_closed, freeing;
    int open_handles;
    uint32_t conns_allocated; /* until their close callbacks ran */
    char *tls_scratch;        /* ciphertext lands here, straight into the TLS connection */
    void (*done)(void *data);
    void *done_data;
};

static void conn_process(struct srv_conn *c);
static void conn_close(struct srv_conn *c);
static void conn_update(struct srv_conn *c);
static void shutdown_check(struct http_server *srv);

/* ------------------------------------------------------------------------------------------
 * Connection lifecycle
 * ------------------------------------------------------------------------------------------ */
static void server_maybe_free(struct http_server *srv)
{
    if (srv->freeing && srv->open_handles == 0 && srv->conns_allocated == 0) {
        sh_free(srv->tls_scratch);
        sh_free(srv);
    }
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct srv_conn *c = h->data;
    struct http_server *srv = c->srv;

    if (--c->open_handles > 0) return;
    http_parser_release(&c->parser);
    http__wq_release(&c->wq);
    buf_release(&c->in);
    arena_release(&c->ex.arena);
    tls_conn_free(c->tls);
    sh_free(c);
    srv->conns_allocated--;
    shutdown_check(srv);
    server_maybe_free(srv);
}

static void abort_exchange(struct srv_conn *c, int err)
{
    struct http_exchange *ex = &c->ex;

    if (!ex->active) return;
    ex->active = false;
    if (!ex->resp_done && ex->h.on_abort) ex->h.on_abort(ex, err, ex->data);
}

static void conn_close(struct srv_conn *c)
{
    struct http_server *srv = c->srv;

    if (c->closing) return;
    c->closing = true;
    abort_exchange(c, SH_ECLOSED);
    sh_list_remove(&c->link);
    srv->stats.active_conns--;
    http__wq_kill(&c->wq);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void linger_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct srv_conn *c = s->data;

    (void)b;
    c->in.len = 0; /* discard */
    if (nread < 0) conn_close(c);
}

static void linger_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct srv_conn *c = h->data;

    (void)hint;
    if (buf_reserve(&c->in, READ_CHUNK) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init(c->in.data, (unsigned)(c->in.cap - 1));
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct srv_conn *c = req->data;

    sh_free(req);
    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    c->state = C_LINGER;
    c->since_ms = uv_now(c->srv->loop);
    c->in.len = 0;
    c->in_off = 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_read_start((uv_stream_t *)&c->tcp, linger_alloc_cb, linger_read_cb) < 0) {
        conn_close(c);
        return;
    }
    c->reading = true;
    conn_update(c);
}

/* The answer that ends this connection is fully written: shut our side down and linger. */
static void conn_begin_linger(struct srv_conn *c)
{
    uv_shutdown_t *req;

    if (c->closing || c->state == C_LINGER) return;
    req = sh_malloc(sizeof(*req));
    if (!req) {
        conn_close(c);
        return;
    }
    req->data = c;
    c->state = C_LINGER; /* no more parsing, whatever arrives */
    c->since_ms = uv_now(c->srv->loop);
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
        sh_free(req);
        conn_close(c);
    }
}

static void conn_after_write(struct http__wq *wq, int status)
{
    struct srv_conn *c = HTTP__CONTAINER_OF(wq, struct srv_conn, wq);

    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after && !c->ex.active && http__wq_pending(wq) == 0)
        conn_begin_linger(c);
    else if (!c->ex.active && c->srv->stats.active_conns > IDLE_SHED_CONNS)
        http__wq_trim(wq); /* idle, everything written: no write buffers either */
}

static void conn_drained(struct http__wq *wq)
{
    struct srv_conn *c = HTTP__CONTAINER_OF(wq, struct srv_conn, wq);
    struct http_exchange *ex = &c->ex;

    if (c->closing) return;
    if (ex->active && !ex->resp_done && ex->h.on_drain) ex->h.on_drain(ex, ex->data);
    if (!c->closing) conn_process(c); /* pipelined requests may have waited for a slow reader */
}

/* ------------------------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------------------------ */
static uint64_t conn_deadline(const struct srv_conn *c)
{
    const struct http_server_config *cfg = &c->srv->cfg;
    const struct http_exchange *ex = &c->ex;
    uint64_t d = UINT64_MAX;

    if (c->state == C_LINGER) return c->since_ms + LINGER_MS;
    if (http__wq_pending(&c->wq) > 0) d = c->wq.progress_ms + cfg->send_timeout_ms;
    if (c->tls && !c->tls_off && !tls_conn_is_established(c->tls))
        d = SH_MIN(d, c->accepted_ms + cfg->handshake_timeout_ms);
    switch (c->state) {
    case C_IDLE:
        /* waiting for a next request; an answer that closes is covered by the send timeout */
        if (c->in_off == c->in.len && !c->close_after)
            d = SH_MIN(d, c->since_ms + cfg->idle_timeout_ms);
        break;
    case C_HEAD:
        d = SH_MIN(d, c->since_ms + cfg->header_timeout_ms);
        break;
    case C_EXCHANGE:
        if (ex->active && !ex->body_done && (ex->draining || (ex->want_body && !ex->paused)))
            d = SH_MIN(d, c->last_read_ms + cfg->body_timeout_ms);
        break;
    case C_LINGER:
        break;
    }
    return d;
}

static void respond_error(struct srv_conn *c, int status, const char *where, const char *what);

static void timer_cb(uv_timer_t *t)
{
    struct srv_conn *c = t->data;
    uint64_t now = uv_now(c->srv->loop), d;

    c->timer_armed = false;
    d = conn_deadline(c);
    if (d > now) {
        conn_update(c);
        return;
    }
    if (c->tls && !c->tls_off && !tls_conn_is_established(c->tls)) {
        tls_conn_timed_out(c->tls);
        c->srv->stats.tls_failures++;
        conn_close(c);
        return;
    }
    if (c->state == C_LINGER || c->state == C_IDLE) {
        conn_close(c);
        return;
    }
    c->srv->stats.timeouts++;
    if (http__wq_pending(&c->wq) > 0 && c->wq.progress_ms + c->srv->cfg.send_timeout_ms <= now) {
        abort_exchange(c, SH_ETIMEDOUT);
        conn_close(c);
        return;
    }
    if (c->state == C_HEAD) {
        respond_error(c, 408, "head", "request head not received in time");
        return;
    }
    /* a request body went silent */
    bool started = c->ex.resp_started;
    abort_exchange(c, SH_ETIMEDOUT);
    if (started)
        conn_close(c);
    else
        respond_error(c, 408, "body", "request body not received in time");
}

static void conn_arm_timer(struct srv_conn *c)
{
    http__timer_arm(&c->timer, timer_cb, conn_deadline(c), &c->timer_armed, &c->armed_deadline);
}

/* ------------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------------ */
static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct srv_conn *c = h->data;

    (void)hint;
    http__read_space(&c->in, READ_CHUNK, b);
}

static void read_end(struct srv_conn *c, ssize_t nread);

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct srv_conn *c = s->data;

    (void)b;
    if (nread > 0) {
        c->in.len += (size_t)nread;
        c->in.data[c->in.len] = '\0';
        c->last_read_ms = uv_now(c->srv->loop);
        conn_process(c);
        return;
    }
    if (nread == 0) return;
    read_end(c, nread);
}

/* ------------------------------------------------------------------------------------------
 * TLS: ciphertext from the socket goes into the TLS connection, plaintext comes out into in,
 * where the parser reads it as from a plain socket; what we write is sealed by the write
 * queue (http__wq_seal). Only connections of a TLS server come here.
 * ------------------------------------------------------------------------------------------ */
static void tls_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct srv_conn *c = h->data;

    (void)hint;
    *b = uv_buf_init(c->srv->tls_scratch, READ_CHUNK);
}

/* The handshake or a record failed: plain HTTP gets a plain 400 (as nginx's 497 does), any
 * other failure the alert OpenSSL queued, then the connection closes. */
static void tls_failed(struct srv_conn *c)
{
    c->srv->stats.tls_failures++;
    if (tls_conn_failure(c->tls) == TLS_FAIL_PLAINTEXT && c->in.len == 0 &&
        !tls_conn_is_established(c->tls)) {
        c->tls_off = true;
        c->wq.tls = NULL;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        respond_error(c, 400, "tls", "plain HTTP sent to the HTTPS port: use https://");
        return;
    }
    c->tls_off = true;
    abort_exchange(c, SH_EPROTO);
    (void)http__wq_seal(&c->wq); /* the alert */
    c->wq.tls = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    c->close_after = true;
    if (http__wq_pending(&c->wq) == 0) {
        conn_close(c);
        return;
    }
    http__wq_mark(&c->wq);
}

static void tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct srv_conn *c = s->data;
    bool eof = false;
    int rc = 0;

    if (nread <= 0) {
        if (nread < 0) read_end(c, nread);
        return;
    }
    if (c->tls_off) return;
    c->last_read_ms = uv_now(c->srv->loop);
    if (tls_conn_feed(c->tls, b->base, (size_t)nread) < 0) {
        conn_close(c);
        return;
    }
    for (;;) {
        uv_buf_t room;
        size_t n;
        http__read_space(&c->in, READ_CHUNK, &room);
        if (!room.base) {
            rc = SH_ENOMEM;
            break;
        }
        rc = tls_conn_read(c->tls, room.base, room.len, &n);
        if (rc == 0) {
            c->in.len += n;
            c->in.data[c->in.len] = '\0';
            continue;
        }
        eof = rc == TLS_EOF;
        break;
    }
    if (rc < 0 && rc != SH_ENOMEM) {
        tls_failed(c);
        return;
    }
    if (rc == SH_ENOMEM) {
        conn_close(c);
        return;
    }
    if (http__wq_seal(&c->wq) < 0) { /* handshake records, tickets */
        conn_close(c);
        return;
    }
    http__wq_mark(&c->wq);
    conn_process(c);
    if (eof && !c->closing) read_end(c, UV_EOF);
}

static void read_end(struct srv_conn *c, ssize_t nread)
{
    struct http_exchange *ex = &c->ex;
    uv_stream_t *s = (uv_stream_t *)&c->tcp;

    /* EOF or error. An exchange still reading its body, or waiting for its answer, dies.
     * After a clean EOF (a client that half-closed after its request), an answer already
     * finished is still delivered: stop reading, flush, then close. */
    if (ex->active && !ex->resp_done)
        abort_exchange(c, nread == UV_EOF ? SH_ECLOSED : http__from_uv((int)nread));
    if (nread == UV_EOF && !c->closing && (ex->active || http__wq_pending(&c->wq) > 0)) {
        c->close_after = true;
        uv_read_stop(s);
        c->reading = false;
        c->eof = true;
        return;
    }
    conn_close(c);
}

static bool conn_wants_read(const struct srv_conn *c)
{
    const struct http_exchange *ex = &c->ex;

    if (c->eof) return false;
    if (c->closing || c->state == C_LINGER) return c->state == C_LINGER;
    if (ex->active) {
        if (ex->body_done)
            /* keep reading what is pipelined behind the request, a little, so a client that
             * goes away while its answer is being prepared is noticed (and the work aborted);
             * reading on through the end of the exchange also spares two epoll_ctl calls per
             * keep-alive request */
            return c->in.len < PEEK_MAX;
        return ex->draining || (ex->want_body && !ex->paused);
    }
    if (c->close_after) return false;
    return http__wq_pending(&c->wq) <= c->wq.high;
}

/* Brings reading and the timer in line with the state. */
static void conn_update(struct srv_conn *c)
{
    bool want;

    if (c->closing) return;
    want = conn_wants_read(c);
    if (want && !c->reading && c->state != C_LINGER) {
        bool tls = c->tls && !c->tls_off;
        if (uv_read_start((uv_stream_t *)&c->tcp, tls ? tls_alloc_cb : alloc_cb,
                          tls ? tls_read_cb : read_cb) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    conn_arm_timer(c);
}

/* ------------------------------------------------------------------------------------------
 * Writing heads
 * ------------------------------------------------------------------------------------------ */
static void respond_error(struct srv_conn *c, int status, const char *where, const char *what)
{
    struct buf *out = http__wq_buf(&c->wq);
    char body[512];
    struct buf jb = BUF_INIT(sizeof(body) - 1);
    size_t before = out->len;

    if (c->state == C_HEAD || c->state == C_IDLE) c->srv->stats.parse_errors += status != 408;
    buf_appendf(&jb, "{\"error\":\"%s\",\"where\":\"", http_reason(status));
    buf_append_json_str(&jb, slice_from_cstr(where));
    buf_appends(&jb, SLICE("\",\"detail\":\""));
    buf_append_json_str(&jb, slice_from_cstr(what));
    buf_appends(&jb, SLICE("\"}\n"));
    http_write_status_line(out, status, NULL);
    buf_appendf(out,
                "Date: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                "Connection: close\r\n\r\n",
                http_date_now(), jb.len);
    buf_append(out, jb.data, jb.len);
    buf_release(&jb);
    if (out->err) {
        out->err = 0;
        out->len = before;
        conn_close(c);
        return;
    }
    http__wq_mark(&c->wq);
    c->close_after = true;
    c->state = C_IDLE; /* no exchange; parsing stops because close_after is set */
    c->since_ms = uv_now(c->srv->loop);
    conn_update(c);
}

/* ------------------------------------------------------------------------------------------
 * The processing loop
 * ------------------------------------------------------------------------------------------ */
static void end_exchange(struct srv_conn *c)
{
    struct http_exchange *ex = &c->ex;
    struct http_server *srv = c->srv;

    ex->active = false;
    /* With many connections open, an idle one keeps no per-request memory (about 4 KiB of
     * arena); with few, the block is kept for the next request (one malloc saved each). */
    if (srv->stats.active_conns > IDLE_SHED_CONNS)
        arena_release(&ex->arena);
    else
        arena_reset(&ex->arena);
    c->nrequests++;
    c->state = C_IDLE;
    c->since_ms = uv_now(srv->loop);
    if (!ex->keep_alive || srv->shutting_down) c->close_after = true;
    if (c->close_after && http__wq_pending(&c->wq) == 0) conn_begin_linger(c);
}

static void start_exchange(struct srv_conn *c)
{
    struct http_exchange *ex = &c->ex;
    const struct http_head *ph = &c->parser.head;
    struct http_server *srv = c->srv;
    char *copy;

    srv->stats.requests++;
    memset(&ex->h, 0, sizeof(ex->h));
    ex->data = NULL;
    ex->conn = c;
    ex->active = true;
    ex->body_done = ex->want_body = ex->paused = ex->end_delivered = false;
    ex->continue_sent = ex->draining = false;
    ex->resp_started = ex->resp_done = ex->chunked = ex->no_body = ex->keep_alive = false;
    ex->resp_remaining = -1;
    ex->drained = 0;
    c->state = C_EXCHANGE;
    /* The head moves into the arena: the read buffer is reused while the exchange lives. The
     * field table stays in the parser, which parses nothing else until the exchange ends. */
    copy = arena_alloc(&ex->arena, ph->len);
    if (!copy) {
        ex->active = false;
        respond_error(c, 503, "server", "out of memory");
        return;
    }
    memcpy(copy, ph->base, ph->len);
    ex->head = *ph;
    ex->head.base = copy;
    if (ph->body == HTTP_BODY_NONE) {
        size_t used;
        int rc = http_parser_feed(&c->parser, c->in.data + c->in_off, 0, &used);
        (void)rc;
        assert(rc == HTTP_DONE);
        ex->body_done = true;
    }
    if (srv->cfg.on_request)
        srv->cfg.on_request(ex, srv->cfg.data);
    else
        http_exchange_respond(ex, 404, SLICE("text/plain"), SLICE("no handler\n"));
}

static void process_once(struct srv_conn *c)
{
    struct http_exchange *ex = &c->ex;

    while (!c->closing && c->state != C_LINGER) {
        size_t used;
        int rc;

        if (ex->active) {
            if (ex->body_done) {
                /* after the answer is finished the handler hears nothing more */
                if (ex->want_body && !ex->paused && !ex->end_delivered && !ex->resp_done) {
                    ex->end_delivered = true;
                    if (ex->h.on_body_end) ex->h.on_body_end(ex, ex->data);
                    continue;
                }
                if (ex->resp_done) {
                    end_exchange(c);
                    continue;
                }
                break;
            }
            if (!ex->draining && (!ex->want_body || ex->paused)) break;
        } else if (c->close_after || http__wq_pending(&c->wq) > c->wq.high) {
            break;
        }
        if (c->in_off == c->in.len && !http_parser_done_pending(&c->parser)) break;
        rc = http_parser_feed(&c->parser, c->in.data + c->in_off, c->in.len - c->in_off, &used);
        c->in_off += used;
        switch (rc) {
        case HTTP_AGAIN:
            if (c->state == C_IDLE && !http_parser_is_idle(&c->parser)) {
                c->state = C_HEAD;
                c->since_ms = uv_now(c->srv->loop);
            }
            break;
        case HTTP_HEAD:
            start_exchange(c);
            continue;
        case HTTP_BODY:
            if (ex->draining) {
                ex->drained += c->parser.body.len;
                if (ex->drained > DRAIN_MAX) {
                    /* too much to read through: the exchange ends and the connection closes
                     * after the answer, lingering (reading and discarding) so the client
                     * reads its answer rather than a reset while it still sends */
                    ex->keep_alive = false;
                    ex->body_done = true;
                    c->in_off = c->in.len;
                }
            } else if (ex->h.on_body) {
                ex->h.on_body(ex, c->parser.body, ex->data);
            }
            continue;
        case HTTP_DONE:
            if (ex->active) ex->body_done = true;
            continue;
        default: { /* a malformed message */
            bool started = ex->active && ex->resp_started;
            if (ex->active) abort_exchange(c, rc);
            if (started) {
                conn_close(c);
                return;
            }
            respond_error(c, c->parser.status, c->parser.diag.where, c->parser.diag.what);
            return;
        }
        }
        break; /* HTTP_AGAIN: need more bytes */
    }
}

/* Drops consumed bytes, keeping the partial head (the parser needs it contiguous). */
static void conn_compact(struct srv_conn *c)
{
    size_t keep_from = c->in_off - SH_MIN(c->in_off, http_parser_head_pending(&c->parser));

    if (keep_from == 0) return;
    buf_consume(&c->in, keep_from);
    c->in_off -= keep_from;
    if (c->in.len == 0 && c->state == C_IDLE)
        buf_release(&c->in); /* idle keep-alive connections hold no read buffer */
}

static void conn_process(struct srv_conn *c)
{
    if (c->processing) {
        c->reprocess = true;
        return;
    }
    c->processing = true;
    do {
        c->reprocess = false;
        process_once(c);
    } while (c->reprocess && !c->closing);
    c->processing = false;
    if (c->closing) return;
    if (c->state != C_LINGER) conn_compact(c);
    if (c->close_after && !c->ex.active && http__wq_pending(&c->wq) == 0) {
        conn_begin_linger(c);
        return;
    }
    conn_update(c);
}

/* ------------------------------------------------------------------------------------------
 * Accepting
 * ------------------------------------------------------------------------------------------ */
static void on_connection(uv_stream_t *listener, int status)
{
    struct http_server *srv = listener->data;
    struct srv_conn *c;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (status < 0) return;
    c = sh_calloc(1, sizeof(*c));
    if (!c) return; /* the pending connection stays in the backlog; we try again on the next one */
    c->srv = srv;
    sh_list_init(&c->link);
    srv->conns_allocated++;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    arena_init(&c->ex.arena, 4096, 0);
    c->ex.conn = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 ||
        http_parser_init(&c->parser, HTTP_REQUEST, &srv->cfg.limits) < 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
        return;
    }
    srv->stats.accepted++;
    srv->stats.active_conns++;
    sh_list_insert_head(&srv->conns, &c->link);
    if (srv->stats.active_conns > srv->cfg.max_connections || srv->shutting_down) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        http_format_addr((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
    http__wq_init(&c->wq, (uv_stream_t *)&c->tcp, &srv->fl, srv->cfg.write_high_bytes,
                  srv->cfg.write_low_bytes);
    c->wq.on_drain = conn_drained;
    c->wq.on_written = conn_after_write;
    if (srv->cfg.tls) {
        if (tls_conn_new(srv->cfg.tls, &c->tls) < 0) {
            conn_close(c);
            return;
        }
        c->wq.tls = c->tls;
    }
    c->state = C_IDLE;
    c->since_ms = c->last_read_ms = c->accepted_ms = uv_now(srv->loop);
    conn_update(c);
}

/* ------------------------------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------------------------------ */
static void server_handle_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;

    srv->open_handles--;
    if (h == (uv_handle_t *)&srv->listener) srv->listener_closed = true;
    shutdown_check(srv);
    server_maybe_free(srv);
}

int http_server_new(uv_loop_t *loop, const struct http_server_config *cfg, struct http_server **out,
                    struct sh_diag *diag)
{
    struct http_server *srv;
    struct sockaddr_storage ss;
    char addr[96];
    int fd, rc;

    *out = NULL;
    if (cfg->addr) {
        ss = *cfg->addr;
        sh_addr_format(&ss, addr, sizeof(addr));
    } else {
        snprintf(addr, sizeof(addr), "%s%s%s:%u",
                 strchr(cfg->host ? cfg->host : "", ':') ? "[" : "",
                 cfg->host ? cfg->host : "127.0.0.1",
                 strchr(cfg->host ? cfg->host : "", ':') ? "]" : "", cfg->port);
        rc = sh_listen_parse(addr, &ss, diag);
        if (rc < 0) return rc;
    }
    srv = sh_calloc(1, sizeof(*srv));
    if (!srv) return SH_ENOMEM;
    srv->loop = loop;
    sh_list_init(&srv->conns);
    srv->cfg = *cfg;
    srv->cfg.addr = NULL; /* borrowed for this call only */
    if (srv->cfg.limits.max_head == 0) srv->cfg.limits = HTTP_LIMITS_DEFAULT;
    SH_DEFAULT(srv->cfg.header_timeout_ms, 10000);
    SH_DEFAULT(srv->cfg.body_timeout_ms, 30000);
    SH_DEFAULT(srv->cfg.idle_timeout_ms, 60000);
    SH_DEFAULT(srv->cfg.send_timeout_ms, 60000);
    SH_DEFAULT(srv->cfg.max_connections, 10000);
    SH_DEFAULT(srv->cfg.handshake_timeout_ms, 10000);
    if (srv->cfg.tls && !(srv->tls_scratch = sh_malloc(READ_CHUNK))) {
        sh_free(srv);
        return SH_ENOMEM;
    }
    fd = http__listen_socket((struct sockaddr *)&ss, cfg->reuseport, BACKLOG);
    if (fd < 0) {
        sh_diag_set(diag, addr, "cannot listen: %s", sh_strerror(fd));
        sh_free(srv->tls_scratch);
        sh_free(srv);
        return fd;
    }
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->open_handles = 1;
    rc = uv_tcp_open(&srv->listener, fd);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&srv->listener, BACKLOG, on_connection);
    if (rc < 0) {
        sh_diag_set(diag, addr, "cannot listen: %s", uv_strerror(rc));
        srv->freeing = true;
        srv->listener_closed = true;
        uv_close((uv_handle_t *)&srv->listener, server_handle_closed);
        return http__from_uv(rc);
    }
    http__flusher_init(loop, &srv->fl);
    srv->fl.prep.data = &srv->fl;
    if (srv->cfg.barrier.pending && srv->cfg.barrier.sync) srv->fl.barrier = &srv->cfg.barrier;
    srv->open_handles++;
    uv_timer_init(loop, &srv->shutdown_timer);
    srv->shutdown_timer.data = srv;
    srv->open_handles++;
    {
        struct sockaddr_storage bound;
        int len = sizeof(bound);
        uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
        srv->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    *out = srv;
    return 0;
}

uint16_t http_server_port(const struct http_server *srv)
{
    return srv->port;
}

void http_server_stats(const struct http_server *srv, struct http_server_stats *out)
{
    *out = srv->stats;
}

static void shutdown_check(struct http_server *srv)
{
    void (*done)(void *);

    if (!srv->shutting_down || !srv->listener_closed || !sh_list_empty(&srv->conns) || !srv->done)
        return;
    done = srv->done;
    srv->done = NULL;
    uv_timer_stop(&srv->shutdown_timer);
    done(srv->done_data);
}

static struct srv_conn *conn_of(struct sh_list *l)
{
    return SH_CONTAINER_OF(l, struct srv_conn, link);
}

static void close_all(struct http_server *srv)
{
    struct sh_list *l;

    while ((l = sh_list_first(&srv->conns)) != NULL)
        conn_close(conn_of(l));
}

static void shutdown_deadline_cb(uv_timer_t *t)
{
    close_all(t->data);
}

void http_server_shutdown(struct http_server *srv, uint32_t deadline_ms, void (*done)(void *data),
                          void *data)
{
    struct sh_list *l, *next;

    if (srv->shutting_down) return;
    srv->shutting_down = true;
    srv->done = done;
    srv->done_data = data;
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, server_handle_closed);
    SH_LIST_FOREACH_SAFE(l, next, &srv->conns)
    {
        struct srv_conn *c = conn_of(l);
        if ((c->state == C_IDLE || c->state == C_LINGER) && !c->ex.active &&
            http__wq_pending(&c->wq) == 0)
            conn_close(c);
        else if (!c->ex.active && c->state != C_LINGER)
            c->close_after = true;
    }
    uv_timer_start(&srv->shutdown_timer, shutdown_deadline_cb, deadline_ms, 0);
    shutdown_check(srv);
}

void http_server_free(struct http_server *srv)
{
    if (!srv || srv->freeing) return;
    srv->freeing = true;
    srv->done = NULL;
    close_all(srv);
    if (!uv_is_closing((uv_handle_t *)&srv->listener))
        uv_close((uv_handle_t *)&srv->listener, server_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&srv->fl.prep)) {
        srv->fl.prep.data = srv; /* the close callback wants the server, not the flusher */
        http__flusher_close(&srv->fl, server_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&srv->shutdown_timer))
        uv_close((uv_handle_t *)&srv->shutdown_timer, server_handle_closed);
}

/* ------------------------------------------------------------------------------------------
 * Exchanges
 * ------------------------------------------------------------------------------------------ */
const struct http_head *http_exchange_head(const struct http_exchange *ex)
{
    return &ex->head;
}

struct arena *http_exchange_arena(struct http_exchange *ex)
{
    return &ex->arena;
}

const char *http_exchange_peer(const struct http_exchange *ex)
{
    return ex->conn->peer;
}

int http_exchange_peer_id(const struct http_exchange *ex, char *out, size_t cap)
{
    if (cap) out[0] = '\0';
    if (!ex->conn->tls || ex->conn->tls_off) return SH_ENOENT;
    return tls_conn_peer_id(ex->conn->tls, out, cap);
}

void http_exchange_set_handlers(struct http_exchange *ex, const struct http_exchange_handlers *h,
                                void *data)
{
    ex->h = *h;
    ex->data = data;
}

void http_exchange_resume(struct http_exchange *ex)
{
    struct srv_conn *c = ex->conn;

    ex->want_body = true;
    ex->paused = false;
    if ((ex->head.flags & HTTP_F_EXPECT_CONTINUE) && !ex->continue_sent && !ex->body_done &&
        !ex->resp_started) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ex->continue_sent = true;
        if (http__wq_append(&c->wq, cont, sizeof(cont) - 1) == 0) http__wq_flush(&c->wq);
    }
    conn_process(c);
}

void http_exchange_pause(struct http_exchange *ex)
{
    ex->paused = true;
    if (!ex->conn->processing) conn_update(ex->conn);
}

int http_exchange_start(struct http_exchange *ex, const struct http_response_head *rh)
{
    struct srv_conn *c = ex->conn;
    struct buf *out = http__wq_buf(&c->wq);
    size_t before = out->len;
    int st = rh->status;

    if (!ex->active || c->closing) return SH_ECLOSED;
    if (ex->resp_started || st < 200 || st > 999) return SH_EINVAL;
    ex->resp_started = true;
    ex->no_body = ex->head.method == HTTP_M_HEAD || st == 204 || st == 304;
    ex->keep_alive = (ex->head.flags & HTTP_F_KEEP_ALIVE) && !c->srv->shutting_down &&
                     !(c->srv->cfg.max_requests_per_conn &&
                       c->nrequests + 1 >= c->srv->cfg.max_requests_per_conn);
    /* A body nobody asked for and the client has not sent yet (100-continue): do not wait. */
    if (!ex->body_done && !ex->want_body)
        ex->keep_alive = ex->keep_alive && !(ex->head.flags & HTTP_F_EXPECT_CONTINUE);
    http_write_status_line(out, st, rh->reason);
    for (size_t i = 0; i < rh->nfields; i++)
        http_write_field(out, rh->fields[i].name, rh->fields[i].value);
    buf_appends(out, SLICE("Date: "));
    buf_appends(out, slice_from_cstr(http_date_now()));
    buf_append(out, "\r\n", 2);
    if (c->srv->cfg.response_fields) buf_appends(out, slice_from_cstr(c->srv->cfg.response_fields));
    if (st == 204 || st == 304) {
        ex->resp_remaining = -1;
    } else if (rh->content_length >= 0) {
        buf_appends(out, SLICE("Content-Length: "));
        buf_append_u64(out, (uint64_t)rh->content_length);
        buf_append(out, "\r\n", 2);
        ex->resp_remaining = rh->content_length;
    } else if (ex->head.version_minor >= 1) {
        buf_appends(out, SLICE("Transfer-Encoding: chunked\r\n"));
        ex->chunked = !ex->no_body;
        if (ex->no_body) /* HEAD: announce the framing a GET would get, send no body */
            ex->chunked = false;
    } else if (!ex->no_body) {
        ex->keep_alive = false; /* HTTP/1.0 without a length: the body ends at close */
    }
    if (!ex->keep_alive)
        buf_appends(out, SLICE("Connection: close\r\n"));
    else if (ex->head.version_minor == 0)
        buf_appends(out, SLICE("Connection: keep-alive\r\n"));
    buf_append(out, "\r\n", 2);
    if (out->err) {
        int rc = out->err;
        out->err = 0;
        out->len = before;
        ex->resp_started = false;
        return rc;
    }
    http__wq_mark(&c->wq);
    return 0;
}

int http_exchange_write(struct http_exchange *ex, const void *p, size_t n)
{
    struct srv_conn *c = ex->conn;
    struct buf *out = http__wq_buf(&c->wq);
    size_t before = out->len;
    int rc;

    if (!ex->active || c->closing) return SH_ECLOSED;
    if (!ex->resp_started || ex->resp_done) return SH_EINVAL;
    if (ex->no_body || n == 0) return http__wq_level(&c->wq);
    if (ex->resp_remaining >= 0) {
        if ((uint64_t)ex->resp_remaining < n) return SH_EINVAL;
        ex->resp_remaining -= (int64_t)n;
    }
    if (!ex->chunked) {
        rc = http__wq_append_direct(&c->wq, p, n);
        return rc ? rc : http__wq_level(&c->wq);
    }
    rc = http_write_chunk(out, p, n);
    if (rc) {
        out->err = 0;
        out->len = before;
        return rc;
    }
    http__wq_mark(&c->wq);
    return http__wq_level(&c->wq);
}

int http_exchange_finish(struct http_exchange *ex)
{
    struct srv_conn *c = ex->conn;

    if (!ex->active || c->closing) return SH_ECLOSED;
    if (!ex->resp_started || ex->resp_done) return SH_EINVAL;
    if (ex->chunked && http__wq_append(&c->wq, "0\r\n\r\n", 5) != 0) {
        http_exchange_abort(ex);
        return SH_ENOMEM;
    }
    if (ex->resp_remaining > 0 && !ex->no_body) {
        /* fewer bytes than announced: the only honest end is closing the connection */
        ex->keep_alive = false;
        http_exchange_abort(ex);
        return SH_EINVAL;
    }
    ex->resp_done = true;
    if (!ex->body_done) {
        if ((ex->head.flags & HTTP_F_EXPECT_CONTINUE) && !ex->continue_sent) {
            ex->body_done = true; /* the client will not send it; never read it as a request */
            ex->keep_alive = false;
        } else {
            ex->draining = true;
        }
    }
    conn_process(c);
    return 0;
}

int http_exchange_respond(struct http_exchange *ex, int status, struct slice content_type,
                          struct slice body)
{
    struct http_out_field f = {SLICE("Content-Type"), content_type};
    struct http_response_head rh = {
        .status = status,
        .fields = content_type.len ? &f : NULL,
        .nfields = content_type.len ? 1 : 0,
        .content_length = (int64_t)body.len,
    };
    int rc = http_exchange_start(ex, &rh);

    if (rc < 0) return rc;
    rc = http_exchange_write(ex, body.ptr, body.len);
    if (rc < 0) return rc;
    return http_exchange_finish(ex);
}

void http_exchange_abort(struct http_exchange *ex)
{
    struct srv_conn *c = ex->conn;

    ex->active = false; /* no on_abort for an abort the handler asked for */
    conn_close(c);
}
