/* SPDX-License-Identifier: MIT */
/* client.c: the pooled HTTP/1.1 client.
 *
 * A pool per upstream address and per-upstream settings (connect, idle, max_pending) holds
 * connections that are idle (reading, so a close by the peer is seen at once), busy with one
 * request, or connecting. Requests wait in the pool's queue while max_conns_per_host are busy. A
 * request keeps a copy of what it sent (head and body) as long as that stays under the retry copy
 * limit: a reused connection that dies before the first response byte is then retried once on a
 * fresh connection.
 *
 * Lifetimes: a creq is freed right after its on_done returns (or by cancel); a connection is
 * freed in its close callbacks; the client when its last handle is closed.
 * Thread: the loop's thread only. */
#include "http/http_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

enum { READ_CHUNK = 16 * 1024, RETRY_COPY_MAX = 64 * 1024, PEEK_AFTER_IDLE_MS = 1000 };

struct cl_pool;
struct cl_conn;

struct http_creq {
    struct http_client *cl;
    struct cl_pool *pool;
    struct cl_conn *conn;
    struct http_creq *next_pending;
    struct http_creq_handlers h;
    void *data;
    enum http_method method;
    struct buf sent;      /* head + body so far, for a retry; released when over the limit */
    struct buf pending;   /* bytes not yet handed to a connection (head first) */
    struct buf head_copy; /* the response head, so on_head's slices outlive the read buffer */
    int64_t content_length, body_left;
    uint32_t response_timeout_ms;
    uint64_t started_ms, sent_ms, deadline_ms;
    bool chunked, body_finished, got_bytes, got_head, paused, retried, reused, copy_ok;
    bool want_drain, resp_keep_alive;
};

struct cl_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    struct http_client *cl;
    struct cl_pool *pool;
    struct sh_list link; /* in pool->conns, the pool's list of all its connections */
    struct http__wq wq;
    struct http_parser parser;
    struct buf in;
    size_t in_off;
    struct http_creq *cr;
    uint64_t since_ms, armed_deadline;
    int open_handles;
    bool connecting, closing, reading, idle, used_before, timer_armed;
    struct tls_conn *tls; /* mTLS pools: NULL until connected */
    bool handshaking;     /* connected, TLS handshake running */
};

struct cl_pool {
    struct cl_pool *next;
    struct sockaddr_storage addr;
    struct sh_list conns; /* of cl_conn, through link; newest first */
    uint32_t nopen, nidle, npending;
    struct http_creq *pending_head, *pending_tail;
    /* per-upstream settings (http_request_desc; 0 = the client's): part of the pool's key,
     * so two callers with different settings for one address get a pool each */
    uint32_t connect_timeout_ms, idle_timeout_ms, max_pending;
    /* mTLS (part of the key too): the caller's context, SNI, the server's expected ID */
    struct tls_client *tls;
    char tls_name[256], tls_expect[TLS_ID_MAX];
};

struct http_client {
    uv_loop_t *loop;
    struct http_client_config cfg;
    struct http__flusher fl;
    struct cl_pool *pools;
    struct http_client_stats stats;
    struct http_creq *pool; /* finished requests kept for reuse, through next_pending */
    uint32_t npool;
    int open_handles;
    bool freeing;
    char *tls_scratch; /* ciphertext read buffer (mTLS pools), made on first use */
};

static void conn_close(struct cl_conn *c);
static void conn_update(struct cl_conn *c);
static void dispatch(struct http_client *cl, struct cl_pool *pool);
static int open_conn(struct http_client *cl, struct cl_pool *pool, struct http_creq *cr);

/* ------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------ */
enum { CREQ_POOL_MAX = 64, CREQ_KEEP_BYTES = 16 * 1024 };

/* Keeps small buffers' capacity: a finished request's memory serves the next one. */
static void keep_or_release(struct buf *b)
{
    if (b->cap > CREQ_KEEP_BYTES)
        buf_release(b);
    else
        buf_reset(b);
}

static void creq_free(struct http_creq *cr)
{
    struct http_client *cl = cr->cl;

    if (cl->npool < CREQ_POOL_MAX && !cl->freeing) {
        struct buf sent = cr->sent, pending = cr->pending, head = cr->head_copy;
        keep_or_release(&sent);
        keep_or_release(&pending);
        keep_or_release(&head);
        memset(cr, 0, sizeof(*cr));
        cr->sent = sent;
        cr->pending = pending;
        cr->head_copy = head;
        cr->next_pending = cl->pool;
        cl->pool = cr;
        cl->npool++;
        return;
    }
    buf_release(&cr->sent);
    buf_release(&cr->pending);
    buf_release(&cr->head_copy);
    sh_free(cr);
}

static struct http_creq *creq_new(struct http_client *cl)
{
    struct http_creq *cr = cl->pool;

    if (!cr) return sh_calloc(1, sizeof(*cr));
    cl->pool = cr->next_pending;
    cl->npool--;
    cr->next_pending = NULL;
    return cr;
}

static void creq_pool_free(struct http_client *cl)
{
    struct http_creq *cr;

    while ((cr = cl->pool) != NULL) {
        cl->pool = cr->next_pending;
        buf_release(&cr->sent);
        buf_release(&cr->pending);
        buf_release(&cr->head_copy);
        sh_free(cr);
    }
    cl->npool = 0;
}

/* Ends a request: calls on_done once and frees it. The connection must be detached. */
static void creq_done(struct http_creq *cr, int rc)
{
    if (rc < 0) cr->cl->stats.errors++;
    if (cr->h.on_done) cr->h.on_done(cr, rc, cr->data);
    creq_free(cr);
}

static void pending_remove(struct cl_pool *pool, struct http_creq *cr)
{
    struct http_creq **link = &pool->pending_head, *prev = NULL;

    for (; *link; prev = *link, link = &(*link)->next_pending) {
        if (*link == cr) {
            *link = cr->next_pending;
            if (pool->pending_tail == cr) pool->pending_tail = prev;
            pool->npending--;
            cr->next_pending = NULL;
            return;
        }
    }
}

/* Records bytes sent for a possible retry; beyond the limit the copy is dropped for good. */
static void keep_copy(struct http_creq *cr, const void *p, size_t n)
{
    if (!cr->copy_ok) return;
    if (cr->sent.len + n > RETRY_COPY_MAX || buf_append(&cr->sent, p, n) != 0) {
        cr->copy_ok = false;
        buf_release(&cr->sent);
    }
}

/* ------------------------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------------------------ */
static void client_maybe_free(struct http_client *cl)
{
    struct cl_pool *p, *next;

    if (!cl->freeing || cl->open_handles > 0) return;
    for (p = cl->pools; p; p = next) {
        next = p->next;
        sh_free(p);
    }
    sh_free(cl->tls_scratch);
    sh_free(cl);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct cl_conn *c = h->data;
    struct http_client *cl = c->cl;

    if (--c->open_handles > 0) return;
    http_parser_release(&c->parser);
    http__wq_release(&c->wq);
    buf_release(&c->in);
    tls_conn_free(c->tls);
    sh_free(c);
    cl->open_handles--;
    client_maybe_free(cl);
}

static void conn_unlink(struct cl_conn *c)
{
    struct cl_pool *pool = c->pool;

    sh_list_remove(&c->link);
    pool->nopen--;
    if (c->idle) {
        pool->nidle--;
        c->idle = false;
    }
}

/* Closes the connection; its request (if any) must have been detached or finished. */
static void conn_close(struct cl_conn *c)
{
    struct http_client *cl = c->cl;

    if (c->closing) return;
    c->closing = true;
    c->cr = NULL;
    conn_unlink(c);
    http__wq_kill(&c->wq);
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    if (!cl->freeing) dispatch(cl, c->pool);
}

/* The request on c failed with rc: retry it on a new connection when that is safe, else end it.
 * Either way c is closed. */
static void conn_fail(struct cl_conn *c, int rc)
{
    struct http_creq *cr = c->cr;
    struct http_client *cl = c->cl;

    c->cr = NULL;
    conn_close(c);
    if (!cr) return;
    cr->conn = NULL;
    if (cr->reused && !cr->got_bytes && !cr->retried && cr->copy_ok && cr->body_finished &&
        (rc == SH_ECLOSED || rc == SH_ECONNRESET || rc == SH_EPIPE)) {
        /* The classic race: the server closed an idle connection as we reused it. */
        cr->retried = true;
        cr->reused = false;
        cl->stats.retries++;
        buf_reset(&cr->pending);
        if (buf_append(&cr->pending, cr->sent.data, cr->sent.len) != 0) {
            creq_done(cr, SH_ENOMEM);
            return;
        }
        rc = open_conn(cl, cr->pool, cr);
        if (rc == 0) return;
    }
    creq_done(cr, rc == SH_ECLOSED ? SH_ECONNRESET : rc);
}

static uint64_t conn_deadline(const struct cl_conn *c)
{
    const struct http_client_config *cfg = &c->cl->cfg;
    const struct http_creq *cr = c->cr;
    uint64_t d = UINT64_MAX;

    if (c->connecting || c->handshaking)
        d = c->since_ms +
            (c->pool->connect_timeout_ms ? c->pool->connect_timeout_ms : cfg->connect_timeout_ms);
    if (c->idle)
        d = c->since_ms +
            (c->pool->idle_timeout_ms ? c->pool->idle_timeout_ms : cfg->idle_timeout_ms);
    if (cr) {
        if (cr->deadline_ms) d = SH_MIN(d, cr->deadline_ms);
        if (cr->response_timeout_ms && cr->sent_ms && !cr->got_head)
            d = SH_MIN(d, cr->sent_ms + cr->response_timeout_ms);
    }
    return d;
}

static void timer_cb(uv_timer_t *t)
{
    struct cl_conn *c = t->data;
    uint64_t now = uv_now(c->cl->loop);

    c->timer_armed = false;
    if (conn_deadline(c) > now) {
        conn_update(c);
        return;
    }
    if (c->idle) {
        conn_close(c);
        return;
    }
    conn_fail(c, SH_ETIMEDOUT); /* never retried: the retry needs a reset, not a timeout */
}

static void conn_arm_timer(struct cl_conn *c)
{
    http__timer_arm(&c->timer, timer_cb, conn_deadline(c), &c->timer_armed, &c->armed_deadline);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct cl_conn *c = h->data;

    (void)hint;
    http__read_space(&c->in, READ_CHUNK, b);
}

static void conn_release_to_pool(struct cl_conn *c);
static void conn_got(struct cl_conn *c, ssize_t nread);
static void tls_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* Feeds the buffered response bytes to the parser and the handlers. */
static void conn_process(struct cl_conn *c)
{
    while (!c->closing && c->cr && !c->cr->paused &&
           (c->in_off < c->in.len || http_parser_done_pending(&c->parser))) {
        struct http_creq *cr = c->cr;
        size_t used;
        int rc = http_parser_feed(&c->parser, c->in.data + c->in_off, c->in.len - c->in_off, &used);

        c->in_off += used;
        if (used) cr->got_bytes = true;
        if (rc == HTTP_AGAIN) break;
        if (rc == HTTP_HEAD) {
            const struct http_head *ph = &c->parser.head;
            if (ph->status >= 100 && ph->status < 200 && ph->status != 101)
                continue; /* interim: DONE follows, then the real head */
            buf_reset(&cr->head_copy);
            if (buf_append(&cr->head_copy, ph->base, ph->len) != 0) {
                conn_fail(c, SH_ENOMEM);
                return;
            }
            cr->got_head = true;
            cr->resp_keep_alive = (ph->flags & HTTP_F_KEEP_ALIVE) != 0;
            struct http_head h = *ph;
            h.base = cr->head_copy.data;
            if (cr->h.on_head) cr->h.on_head(cr, &h, cr->data);
            continue;
        }
        if (rc == HTTP_BODY) {
            if (cr->h.on_body) cr->h.on_body(cr, c->parser.body, cr->data);
            continue;
        }
        if (rc == HTTP_DONE) {
            if (!cr->got_head) continue; /* the end of a 1xx */
            bool reusable = cr->resp_keep_alive && cr->body_finished && c->in_off == c->in.len &&
                            http__wq_pending(&c->wq) == 0;
            c->cr = NULL;
            cr->conn = NULL;
            /* back to the pool first, so a request made from on_done can reuse it */
            if (reusable)
                conn_release_to_pool(c);
            else
                conn_close(c);
            creq_done(cr, 0);
            return;
        }
        conn_fail(c, SH_EPARSE); /* malformed response; never retried */
        return;
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct cl_conn *c = s->data;

    (void)b;
    if (nread == 0) return;
    if (c->idle || !c->cr) {
        /* a pooled connection said something or closed: it is no longer reusable */
        c->cl->stats.idle_closed_by_peer++;
        conn_close(c);
        return;
    }
    if (nread > 0) {
        c->in.len += (size_t)nread;
        c->in.data[c->in.len] = '\0';
    }
    conn_got(c, nread);
}

/* n > 0: plaintext was appended to c->in; else the stream ended (a libuv code). */
static void conn_got(struct cl_conn *c, ssize_t nread)
{
    if (nread > 0) {
        conn_process(c);
        if (!c->closing && c->cr) {
            /* keep an incomplete head in place: the parser needs it contiguous */
            size_t keep = SH_MIN(c->in_off, http_parser_head_pending(&c->parser));
            buf_consume(&c->in, c->in_off - keep);
            c->in_off = keep;
            conn_update(c);
        }
        return;
    }
    if (nread == UV_EOF && c->cr) {
        int rc = http_parser_finish(&c->parser);
        if (rc == HTTP_DONE) {
            struct http_creq *cr = c->cr;
            c->cr = NULL;
            cr->conn = NULL;
            conn_close(c);
            creq_done(cr, 0);
            return;
        }
        if (rc < 0 && rc != SH_EEOF) {
            conn_fail(c, SH_EPARSE);
            return;
        }
    }
    conn_fail(c, http__from_uv((int)nread));
}

static void conn_update(struct cl_conn *c)
{
    bool want;

    if (c->closing) return;
    want = !c->connecting && (c->handshaking || c->idle || (c->cr && !c->cr->paused));
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, c->tls ? tls_alloc_cb : alloc_cb,
                          c->tls ? tls_read_cb : read_cb) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    conn_arm_timer(c);
}

static void conn_drained(struct http__wq *wq)
{
    struct cl_conn *c = HTTP__CONTAINER_OF(wq, struct cl_conn, wq);
    struct http_creq *cr = c->cr;

    if (cr && cr->want_drain && cr->h.on_drain) {
        cr->want_drain = false;
        cr->h.on_drain(cr, cr->data);
    }
}

static void conn_written(struct http__wq *wq, int status)
{
    struct cl_conn *c = HTTP__CONTAINER_OF(wq, struct cl_conn, wq);

    if (c->closing) return;
    if (status < 0) {
        conn_fail(c, http__from_uv(status));
        return;
    }
    if (c->cr && c->cr->body_finished && http__wq_pending(wq) == 0 && !c->cr->sent_ms) {
        c->cr->sent_ms = uv_now(c->cl->loop);
        conn_arm_timer(c);
    }
}

/* Hands cr to the connected, idle-or-new connection c. */
static void conn_assign(struct cl_conn *c, struct http_creq *cr)
{
    c->cr = cr;
    cr->conn = c;
    cr->reused = c->used_before;
    c->used_before = true;
    c->in.len = c->in_off = 0;
    http_parser_set_request_method(&c->parser, cr->method);
    if (cr->reused) c->cl->stats.reuses++;
    if (cr->pending.len) {
        if (http__wq_append(&c->wq, cr->pending.data, cr->pending.len) != 0) {
            conn_fail(c, SH_ENOMEM);
            return;
        }
        buf_release(&cr->pending);
    }
    conn_update(c);
    /* the producer was told to wait while we connected: tell it when to go on */
    if (cr->want_drain && !c->closing && http__wq_level(&c->wq) == 0) {
        cr->want_drain = false;
        if (cr->h.on_drain) cr->h.on_drain(cr, cr->data);
    }
}

static void conn_release_to_pool(struct cl_conn *c)
{
    struct cl_pool *pool = c->pool;
    struct http_client *cl = c->cl;

    buf_release(&c->in);
    c->in_off = 0;
    http__wq_trim(&c->wq);
    if (pool->pending_head) {
        struct http_creq *cr = pool->pending_head;
        pending_remove(pool, cr);
        conn_assign(c, cr);
        return;
    }
    if (pool->nidle >= cl->cfg.max_idle_per_host) {
        conn_close(c);
        return;
    }
    c->idle = true;
    pool->nidle++;
    c->since_ms = uv_now(cl->loop);
    conn_update(c);
}

static void connected(struct cl_conn *c);

/* ------------------------------------------------------------------------------------------
 * mTLS: ciphertext from the socket goes into the TLS connection, plaintext into in; the write
 * queue seals what we write (http__wq_seal). Requests are assigned once the handshake is done.
 * ------------------------------------------------------------------------------------------ */
static void tls_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct cl_conn *c = h->data;

    (void)hint;
    if (!c->cl->tls_scratch) c->cl->tls_scratch = sh_malloc(READ_CHUNK);
    *b = uv_buf_init(c->cl->tls_scratch, c->cl->tls_scratch ? READ_CHUNK : 0);
}

/* The TLS connection failed (or memory ran out): the request ends, never retried. */
static void tls_fail(struct cl_conn *c, int rc)
{
    if (c->tls && tls_conn_failure(c->tls) != TLS_FAIL_NONE) {
        c->cl->stats.tls_failures++;
        (void)http__wq_seal(&c->wq); /* the alert, if the socket still takes it */
    }
    c->wq.tls = NULL;
    if (c->handshaking) {
        struct http_creq *cr = c->cr;
        c->handshaking = false;
        c->cr = NULL;
        conn_close(c);
        if (cr) {
            cr->conn = NULL;
            creq_done(cr, rc);
        }
        return;
    }
    conn_fail(c, rc);
}

static void tls_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct cl_conn *c = s->data;
    size_t before = c->in.len;
    bool eof = false;
    int rc = 0;

    if (nread == 0) return;
    if (nread < 0) {
        if (c->handshaking) {
            tls_fail(c, SH_EPROTO);
            return;
        }
        if (c->idle || !c->cr) {
            c->cl->stats.idle_closed_by_peer++;
            conn_close(c);
            return;
        }
        conn_got(c, nread);
        return;
    }
    if (tls_conn_feed(c->tls, b->base, (size_t)nread) < 0) {
        tls_fail(c, SH_ENOMEM);
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
        if (rc != 0) break;
        c->in.len += n;
        c->in.data[c->in.len] = '\0';
    }
    eof = rc == TLS_EOF;
    if (eof && c->handshaking) rc = SH_EPROTO; /* close_notify before the handshake ended */
    if (rc < 0) {
        tls_fail(c, rc == SH_ENOMEM ? SH_ENOMEM : SH_EPROTO);
        return;
    }
    if (http__wq_seal(&c->wq) < 0) { /* handshake records */
        tls_fail(c, SH_ENOMEM);
        return;
    }
    http__wq_mark(&c->wq);
    if (c->handshaking && tls_conn_is_established(c->tls)) {
        c->handshaking = false;
        c->cl->stats.tls_handshakes++;
        connected(c);
        if (c->closing) return;
    }
    if (c->in.len > before) {
        if (c->idle || !c->cr) { /* plaintext nobody asked for: not reusable */
            c->cl->stats.idle_closed_by_peer++;
            conn_close(c);
            return;
        }
        conn_got(c, (ssize_t)(c->in.len - before));
        if (c->closing) return;
    }
    if (eof && !c->handshaking) {
        if (c->idle || !c->cr) {
            conn_close(c);
            return;
        }
        conn_got(c, UV_EOF);
    }
}

/* TCP is up: starts the handshake (the ClientHello goes out with the next flush). */
static void tls_start(struct cl_conn *c)
{
    struct cl_pool *pool = c->pool;
    char none[1];
    size_t n;
    int rc;

    rc = tls_client_conn_new(pool->tls, pool->tls_name[0] ? pool->tls_name : NULL,
                             pool->tls_expect[0] ? pool->tls_expect : NULL, &c->tls);
    if (rc < 0) {
        tls_fail(c, rc);
        return;
    }
    c->handshaking = true;
    c->wq.tls = c->tls;
    rc = tls_conn_read(c->tls, none, sizeof(none), &n); /* no plaintext before the handshake */
    if (rc < 0 || http__wq_seal(&c->wq) < 0) {
        tls_fail(c, SH_EPROTO);
        return;
    }
    http__wq_mark(&c->wq);
    conn_update(c);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct cl_conn *c = req->data;

    if (c->closing) return;
    c->connecting = false;
    if (status < 0) {
        struct http_creq *cr = c->cr;
        c->cr = NULL;
        conn_close(c);
        if (cr) {
            cr->conn = NULL;
            creq_done(cr, http__from_uv(status));
        }
        return;
    }
    c->cl->stats.connects++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (c->pool->tls) {
        tls_start(c);
        return;
    }
    connected(c);
}

/* The connection is ready for requests (TCP, and TLS when the pool wants it). */
static void connected(struct cl_conn *c)
{
    if (c->cr) {
        struct http_creq *cr = c->cr;
        c->cr = NULL;
        conn_assign(c, cr);
    } else {
        conn_release_to_pool(c);
    }
}

/* Opens a new connection to pool for cr. 0, or a negative code (cr untouched). */
static int open_conn(struct http_client *cl, struct cl_pool *pool, struct http_creq *cr)
{
    struct cl_conn *c = sh_calloc(1, sizeof(*c));
    int rc;

    if (!c) return SH_ENOMEM;
    c->cl = cl;
    c->pool = pool;
    if (http_parser_init(&c->parser, HTTP_RESPONSE, &cl->cfg.limits) < 0) {
        sh_free(c);
        return SH_ENOMEM;
    }
    uv_tcp_init(cl->loop, &c->tcp);
    uv_timer_init(cl->loop, &c->timer);
    c->tcp.data = c->timer.data = c->connect_req.data = c;
    c->open_handles = 2;
    cl->open_handles++;
    http__wq_init(&c->wq, (uv_stream_t *)&c->tcp, &cl->fl, cl->cfg.write_high_bytes,
                  cl->cfg.write_low_bytes);
    c->wq.on_drain = conn_drained;
    c->wq.on_written = conn_written;
    sh_list_insert_head(&pool->conns, &c->link);
    pool->nopen++;
    c->connecting = true;
    c->since_ms = uv_now(cl->loop);
    c->cr = cr;
    cr->conn = c;
    rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&pool->addr, connect_cb);
    if (rc < 0) {
        c->cr = NULL;
        cr->conn = NULL;
        conn_close(c);
        return http__from_uv(rc);
    }
    conn_arm_timer(c);
    return 0;
}

/* A peer may have closed an idle connection without us having run the loop since. Idle
 * connections keep a read armed, so a close is normally seen by the loop; the peek is for the
 * one that idled long enough for a server's keep-alive timeout to be near, and is skipped for
 * one that went back to the pool a moment ago (a syscall saved per request under load). */
static bool conn_still_open(struct cl_conn *c)
{
    uv_os_fd_t fd;
    char byte;

    if (uv_now(c->cl->loop) - c->since_ms < PEEK_AFTER_IDLE_MS) return true;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return false;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static struct cl_conn *conn_of(const struct sh_list *l)
{
    return SH_CONTAINER_OF(l, struct cl_conn, link);
}

/* The newest idle connection of pool, or NULL. */
static struct cl_conn *first_idle(const struct cl_pool *pool)
{
    const struct sh_list *l;

    SH_LIST_FOREACH(l, &pool->conns)
    {
        if (conn_of(l)->idle) return conn_of(l);
    }
    return NULL;
}

/* Starts as many queued requests of pool as connections allow. */
static void dispatch(struct http_client *cl, struct cl_pool *pool)
{
    while (pool->pending_head) {
        struct http_creq *cr = pool->pending_head;
        struct cl_conn *c = first_idle(pool);

        if (c) {
            pool->nidle--;
            c->idle = false;
            if (!conn_still_open(c)) {
                cl->stats.idle_closed_by_peer++;
                conn_close(c);
                continue;
            }
            pending_remove(pool, cr);
            conn_assign(c, cr);
            continue;
        }
        if (pool->nopen >= cl->cfg.max_conns_per_host) return;
        pending_remove(pool, cr);
        int rc = open_conn(cl, pool, cr);
        if (rc < 0) creq_done(cr, rc);
    }
}

/* ------------------------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------------------------ */
static void client_handle_closed(uv_handle_t *h)
{
    struct http_client *cl = h->data;

    cl->open_handles--;
    client_maybe_free(cl);
}

int http_client_new(uv_loop_t *loop, const struct http_client_config *cfg, struct http_client **out)
{
    struct http_client *cl = sh_calloc(1, sizeof(*cl));

    *out = NULL;
    if (!cl) return SH_ENOMEM;
    cl->loop = loop;
    if (cfg) cl->cfg = *cfg;
    if (cl->cfg.limits.max_head == 0) cl->cfg.limits = HTTP_LIMITS_DEFAULT;
    SH_DEFAULT(cl->cfg.max_idle_per_host, 32);
    SH_DEFAULT(cl->cfg.max_conns_per_host, 1024);
    SH_DEFAULT(cl->cfg.max_pending_per_host, 1024);
    SH_DEFAULT(cl->cfg.idle_timeout_ms, 60000);
    SH_DEFAULT(cl->cfg.connect_timeout_ms, 5000);
    SH_DEFAULT(cl->cfg.write_high_bytes, 256 * 1024);
    SH_DEFAULT(cl->cfg.write_low_bytes, 64 * 1024);
    http__flusher_init(loop, &cl->fl);
    cl->fl.prep.data = &cl->fl;
    cl->open_handles = 1;
    *out = cl;
    return 0;
}

void http_client_free(struct http_client *cl)
{
    struct cl_pool *pool;

    if (!cl || cl->freeing) return;
    creq_pool_free(cl);
    cl->freeing = true;
    for (pool = cl->pools; pool; pool = pool->next) {
        while (pool->pending_head) {
            struct http_creq *cr = pool->pending_head;
            pending_remove(pool, cr);
            creq_done(cr, SH_ECANCELED);
        }
        while (!sh_list_empty(&pool->conns)) {
            struct cl_conn *c = conn_of(sh_list_first(&pool->conns));
            struct http_creq *cr = c->cr;
            c->cr = NULL;
            conn_close(c);
            if (cr) {
                cr->conn = NULL;
                creq_done(cr, SH_ECANCELED);
            }
        }
    }
    /* the prepare handle's data is the flusher; the close callback needs the client */
    cl->fl.prep.data = cl;
    http__flusher_close(&cl->fl, client_handle_closed);
}

void http_client_stats(const struct http_client *cl, struct http_client_stats *out)
{
    const struct cl_pool *p;

    *out = cl->stats;
    out->open_conns = out->idle_conns = 0;
    for (p = cl->pools; p; p = p->next) {
        out->open_conns += p->nopen;
        out->idle_conns += p->nidle;
    }
}

static bool addr_eq(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family) return false;
    if (b->sa_family == AF_INET) return memcmp(a, b, sizeof(struct sockaddr_in)) == 0;
    return memcmp(a, b, sizeof(struct sockaddr_in6)) == 0;
}

/* The pool for d's address and per-upstream settings, made on first use. */
static struct cl_pool *pool_get(struct http_client *cl, const struct http_request_desc *d)
{
    struct cl_pool *p;

    for (p = cl->pools; p; p = p->next) {
        if (addr_eq(&p->addr, d->addr) && p->connect_timeout_ms == d->connect_timeout_ms &&
            p->idle_timeout_ms == d->idle_timeout_ms && p->max_pending == d->max_pending &&
            p->tls == d->tls &&
            (!d->tls || (strcmp(p->tls_name, d->tls_name ? d->tls_name : "") == 0 &&
                         strcmp(p->tls_expect, d->tls_expect_id ? d->tls_expect_id : "") == 0)))
            return p;
    }
    p = sh_calloc(1, sizeof(*p));
    if (!p) return NULL;
    memcpy(&p->addr, d->addr,
           d->addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                          : sizeof(struct sockaddr_in));
    p->connect_timeout_ms = d->connect_timeout_ms;
    p->idle_timeout_ms = d->idle_timeout_ms;
    p->max_pending = d->max_pending;
    p->tls = d->tls;
    if (d->tls) {
        snprintf(p->tls_name, sizeof(p->tls_name), "%s", d->tls_name ? d->tls_name : "");
        snprintf(p->tls_expect, sizeof(p->tls_expect), "%s",
                 d->tls_expect_id ? d->tls_expect_id : "");
    }
    sh_list_init(&p->conns);
    p->next = cl->pools;
    cl->pools = p;
    return p;
}

static bool has_ctl(struct slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 && c != '\t') return true;
        if (c == 0x7f) return true;
    }
    return false;
}

int http_client_request(struct http_client *cl, const struct http_request_desc *d,
                        const struct http_creq_handlers *h, void *data, struct http_creq **out)
{
    struct cl_pool *pool;
    struct http_creq *cr;
    struct buf *b;
    int rc;

    *out = NULL;
    if (cl->freeing) return SH_ECANCELED;
    if (!d->addr || (d->addr->sa_family != AF_INET && d->addr->sa_family != AF_INET6) ||
        d->method.len == 0 || d->target.len == 0 || has_ctl(d->method) || has_ctl(d->target) ||
        has_ctl(d->host) || memchr(d->target.ptr, ' ', d->target.len))
        return SH_EINVAL;
    if (d->tls &&
        ((d->tls_name && strlen(d->tls_name) >= sizeof(((struct cl_pool *)0)->tls_name)) ||
         (d->tls_expect_id && strlen(d->tls_expect_id) >= TLS_ID_MAX)))
        return SH_EINVAL;
    for (size_t i = 0; i < d->nfields && !d->fields_checked; i++) {
        if (has_ctl(d->fields[i].name) || has_ctl(d->fields[i].value) || d->fields[i].name.len == 0)
            return SH_EINVAL;
    }
    pool = pool_get(cl, d);
    if (!pool) return SH_ENOMEM;
    if (pool->npending >= (pool->max_pending ? pool->max_pending : cl->cfg.max_pending_per_host) &&
        pool->nopen >= cl->cfg.max_conns_per_host && pool->nidle == 0)
        return SH_ELIMIT;
    cr = creq_new(cl);
    if (!cr) return SH_ENOMEM;
    cr->cl = cl;
    cr->pool = pool;
    cr->h = *h;
    cr->data = data;
    cr->method = http_method_from(d->method);
    cr->content_length = d->content_length;
    cr->chunked = d->content_length < 0;
    cr->body_left = d->content_length > 0 ? d->content_length : 0;
    cr->body_finished = d->content_length == 0;
    cr->response_timeout_ms = d->response_timeout_ms;
    cr->started_ms = uv_now(cl->loop);
    cr->deadline_ms = d->total_timeout_ms ? cr->started_ms + d->total_timeout_ms : 0;
    cr->copy_ok = true;
    b = &cr->sent; /* the head goes to the retry copy and to the unsent bytes */
    buf_appends(b, d->method);
    buf_appendc(b, ' ');
    buf_appends(b, d->target);
    buf_appends(b, SLICE(" HTTP/1.1\r\n"));
    if (d->host.len) http_write_field(b, SLICE("Host"), d->host);
    for (size_t i = 0; i < d->nfields; i++)
        http_write_field(b, d->fields[i].name, d->fields[i].value);
    if (cr->chunked)
        buf_appends(b, SLICE("Transfer-Encoding: chunked\r\n"));
    else if (d->content_length > 0 || cr->method == HTTP_M_POST || cr->method == HTTP_M_PUT) {
        buf_appends(b, SLICE("Content-Length: "));
        buf_append_u64(b, (uint64_t)d->content_length);
        buf_append(b, "\r\n", 2);
    }
    rc = buf_append(b, "\r\n", 2);
    if (rc == 0) rc = buf_append(&cr->pending, b->data, b->len);
    if (rc) {
        creq_free(cr);
        return rc;
    }
    cl->stats.requests++;
    /* queue, then dispatch: no callback can run from inside this call, because a connection
     * assignment only queues bytes and every failure path below is deferred or returned */
    if (pool->pending_tail)
        pool->pending_tail->next_pending = cr;
    else
        pool->pending_head = cr;
    pool->pending_tail = cr;
    pool->npending++;
    *out = cr;
    /* dispatch may complete a request with an error synchronously (open_conn failing); keep
     * this one's callbacks asynchronous by treating a synchronous failure as a return value */
    {
        struct cl_conn *c = first_idle(pool);
        while (c && !conn_still_open(c)) {
            pool->nidle--;
            c->idle = false;
            cl->stats.idle_closed_by_peer++;
            conn_close(c);
            c = first_idle(pool);
        }
        if (c) {
            pool->nidle--;
            c->idle = false;
            pending_remove(pool, cr);
            conn_assign(c, cr);
        } else if (pool->nopen < cl->cfg.max_conns_per_host && pool->pending_head == cr) {
            pending_remove(pool, cr);
            rc = open_conn(cl, pool, cr);
            if (rc < 0) {
                *out = NULL;
                creq_free(cr);
                cl->stats.errors++;
                return rc;
            }
        }
    }
    return 0;
}

int http_creq_write(struct http_creq *cr, const void *p, size_t n)
{
    bool direct = cr->conn && !cr->conn->connecting;
    struct buf *out = direct ? http__wq_buf(&cr->conn->wq) : &cr->pending;
    size_t before = out->len;
    int rc;

    if (cr->body_finished) return SH_EINVAL;
    if (n == 0) return 0;
    if (!cr->chunked) {
        if ((uint64_t)cr->body_left < n) return SH_EINVAL;
    }
    /* framed straight into the queue: no per-chunk allocation on the streaming path */
    rc = cr->chunked ? http_write_chunk(out, p, n) : buf_append(out, p, n);
    if (rc) {
        out->err = 0;
        out->len = before;
        return rc;
    }
    if (!cr->chunked) cr->body_left -= (int64_t)n;
    keep_copy(cr, out->data + before, out->len - before);
    if (direct) {
        http__wq_mark(&cr->conn->wq);
        rc = http__wq_level(&cr->conn->wq);
    } else {
        rc = cr->pending.len > cr->cl->cfg.write_high_bytes ? HTTP_AGAIN : 0;
    }
    if (rc == HTTP_AGAIN) cr->want_drain = true;
    return rc;
}

int http_creq_finish(struct http_creq *cr)
{
    int rc = 0;

    if (cr->body_finished) return 0;
    if (!cr->chunked && cr->body_left > 0) return SH_EINVAL;
    if (cr->chunked) {
        keep_copy(cr, "0\r\n\r\n", 5);
        if (cr->conn && !cr->conn->connecting)
            rc = http__wq_append(&cr->conn->wq, "0\r\n\r\n", 5);
        else
            rc = buf_append(&cr->pending, "0\r\n\r\n", 5);
    }
    cr->body_finished = true;
    return rc;
}

void http_creq_pause(struct http_creq *cr)
{
    cr->paused = true;
    if (cr->conn) conn_update(cr->conn);
}

void http_creq_resume(struct http_creq *cr)
{
    cr->paused = false;
    if (cr->conn && !cr->conn->connecting) {
        conn_process(cr->conn);
        if (cr->conn) conn_update(cr->conn);
    }
}

void http_creq_cancel(struct http_creq *cr)
{
    if (cr->conn) {
        struct cl_conn *c = cr->conn;
        c->cr = NULL;
        cr->conn = NULL;
        conn_close(c);
    } else {
        pending_remove(cr->pool, cr);
    }
    creq_free(cr);
}

bool http_creq_reused(const struct http_creq *cr)
{
    return cr->reused;
}
