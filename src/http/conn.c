/* SPDX-License-Identifier: MIT */
/* conn.c: the write queue with watermarks and the per-iteration flusher, shared by the server
 * and the client. Invariant: at most one uv_write is in flight per stream, and it owns
 * wq->inflight; new bytes go to wq->out and leave with the next write. */
#include "http/http_int.h"

#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

void http__timer_arm(uv_timer_t *t, uv_timer_cb cb, uint64_t deadline, bool *is_armed,
                     uint64_t *armed_at)
{
    uint64_t now;

    if (deadline == UINT64_MAX) {
        if (*is_armed) {
            uv_timer_stop(t);
            *is_armed = false;
        }
        return;
    }
    if (*is_armed && *armed_at <= deadline) return;
    now = uv_now(t->loop);
    *armed_at = deadline;
    *is_armed = true;
    uv_timer_start(t, cb, deadline > now ? deadline - now : 0, 0);
}

int http__from_uv(int uvrc)
{
    if (uvrc == UV_EOF) return SH_ECLOSED;
    return uvrc; /* libuv codes are -errno on Unix, which is what SH_E* system codes are */
}

/* The owner's barrier holds bytes back (struct http_barrier). */
static bool held(const struct http__wq *wq)
{
    const struct http_barrier *b = wq->fl->barrier;

    return b && b->pending(b->data);
}

static void wq_write(struct http__wq *wq);

int http__wq_seal(struct http__wq *wq)
{
    struct buf *out = &wq->out;
    size_t n;
    int rc = 0;

    if (!wq->tls || wq->dead) return 0;
    if (out->len > wq->sealed) {
        rc = tls_conn_write(wq->tls, out->data + wq->sealed, out->len - wq->sealed);
        out->len = wq->sealed; /* the plaintext now lives in the TLS connection's records */
        if (out->data) out->data[out->len] = '\0';
    }
    while (rc == 0 && (n = tls_conn_pending(wq->tls)) > 0) {
        rc = buf_reserve(out, n);
        if (rc) {
            out->err = 0;
            break;
        }
        out->len += tls_conn_take(wq->tls, out->data + out->len, n);
        out->data[out->len] = '\0';
    }
    wq->sealed = out->len;
    return rc;
}

/* A seal that fails leaves a stream that cannot be framed: it ends like a failed write. */
static bool seal_or_die(struct http__wq *wq)
{
    int rc = http__wq_seal(wq);

    if (rc == 0) return true;
    http__wq_kill(wq);
    if (wq->on_written) wq->on_written(wq, rc);
    return false;
}

/* Offers the socket what is queued followed by p[0..n) in one uv_try_write (nothing may be in
 * flight: the callers check). What the kernel takes leaves the queue; returns how many bytes
 * it took in all, queue first. */
static size_t try_send(struct http__wq *wq, const void *p, size_t n)
{
    uv_buf_t bufs[2];
    unsigned nb = 0;
    size_t queued, done;
    int w;

    queued = wq->out.len;
    if (queued) bufs[nb++] = uv_buf_init(wq->out.data, (unsigned)queued);
    if (n) bufs[nb++] = uv_buf_init((char *)p, (unsigned)n);
    w = nb ? uv_try_write(wq->stream, bufs, nb) : 0;
    if (w <= 0) /* EAGAIN, or an error the next real write reports */
        return 0;
    wq->progress_ms = uv_now(wq->stream->loop);
    done = SH_MIN((size_t)w, queued);
    if (done < queued) memmove(wq->out.data, wq->out.data + done, queued - done);
    wq->out.len = queued - done;
    wq->sealed -= SH_MIN(wq->sealed, done);
    return (size_t)w;
}

/* The flusher's write: the socket is tried at once. What it takes needs no write request,
 * so libuv neither arms nor disarms POLLOUT for it, which would cost an epoll_ctl per write
 * (two per proxied request); on_written runs here. What it does not take goes the usual way
 * (http__wq_flush). Not while a drain is awaited: on_drain must come from write_cb, never
 * from inside the flusher. The flusher is where a barrier is synced: once for the iteration,
 * again only if a callback run by an earlier flush wrote something new. */
static void flush_now(struct http__wq *wq)
{
    if (held(wq)) wq->fl->barrier->sync(wq->fl->barrier->data);
    if (wq->tls && !seal_or_die(wq)) return;
    if (!wq->writing && !wq->dead && wq->out.len && !wq->want_drain) {
        try_send(wq, NULL, 0);
        if (wq->out.len == 0) {
            if (wq->on_written) wq->on_written(wq, 0);
            return;
        }
    }
    wq_write(wq);
}

static void flusher_cb(uv_prepare_t *h)
{
    struct http__flusher *fl = h->data;
    struct http__wq *wq;

    while ((wq = fl->dirty) != NULL) {
        fl->dirty = wq->next_dirty;
        wq->next_dirty = NULL;
        wq->dirty = false;
        flush_now(wq);
    }
    uv_prepare_stop(&fl->prep);
    fl->active = false;
}

void http__flusher_init(uv_loop_t *loop, struct http__flusher *fl)
{
    memset(fl, 0, sizeof(*fl));
    uv_prepare_init(loop, &fl->prep);
    fl->prep.data = fl;
}

void http__flusher_close(struct http__flusher *fl, uv_close_cb cb)
{
    uv_close((uv_handle_t *)&fl->prep, cb);
}

void http__wq_init(struct http__wq *wq, uv_stream_t *stream, struct http__flusher *fl, size_t high,
                   size_t low)
{
    memset(wq, 0, sizeof(*wq));
    wq->stream = stream;
    wq->fl = fl;
    wq->high = high ? high : 256 * 1024;
    wq->low = low ? low : 64 * 1024;
    if (wq->low > wq->high) wq->low = wq->high;
    wq->progress_ms = uv_now(stream->loop);
}

static void unlink_dirty(struct http__wq *wq)
{
    struct http__wq **link;

    if (!wq->dirty) return;
    for (link = &wq->fl->dirty; *link; link = &(*link)->next_dirty) {
        if (*link == wq) {
            *link = wq->next_dirty;
            break;
        }
    }
    wq->dirty = false;
    wq->next_dirty = NULL;
}

void http__wq_kill(struct http__wq *wq)
{
    unlink_dirty(wq);
    wq->dead = true;
    buf_release(&wq->out);
    wq->sealed = 0;
}

void http__wq_release(struct http__wq *wq)
{
    unlink_dirty(wq);
    buf_release(&wq->out);
    buf_release(&wq->inflight);
}

struct buf *http__wq_buf(struct http__wq *wq)
{
    return &wq->out;
}

void http__wq_mark(struct http__wq *wq)
{
    if (wq->dirty || wq->dead || wq->out.len == 0) return;
    wq->dirty = true;
    wq->next_dirty = wq->fl->dirty;
    wq->fl->dirty = wq;
    if (!wq->fl->active) {
        wq->fl->active = true;
        uv_prepare_start(&wq->fl->prep, flusher_cb);
    }
}

int http__wq_append(struct http__wq *wq, const void *p, size_t n)
{
    int rc;

    if (wq->dead) return SH_ECLOSED;
    rc = buf_append(&wq->out, p, n);
    if (rc) {
        wq->out.err = 0; /* the queue stays usable; the caller decides */
        return rc;
    }
    http__wq_mark(wq);
    return 0;
}

int http__wq_append_direct(struct http__wq *wq, const void *p, size_t n)
{
    size_t queued = wq->out.len, sent, taken;
    int rc;

    if (wq->dead) return SH_ECLOSED;
    if (n < HTTP_DIRECT_MIN || wq->writing || held(wq) || wq->tls) return http__wq_append(wq, p, n);
    /* Nothing in flight: the kernel gets what is queued and these bytes in one call, so a
     * large answer the socket can take is never copied into (nor grows) the queue. */
    sent = try_send(wq, p, n);
    taken = sent > queued ? sent - queued : 0;
    if (taken == n) return 0;
    rc = http__wq_append(wq, (const char *)p + taken, n - taken);
    if (rc < 0) {
        if (sent == 0) return rc; /* nothing went out: the caller may still answer */
        http__wq_kill(wq);        /* part of the stream went out: it cannot be framed any more */
        return SH_ECLOSED;
    }
    return 0;
}

size_t http__wq_pending(const struct http__wq *wq)
{
    /* libuv writes at once when it can and reports completion on the next iteration: count
     * only what the kernel has not taken yet */
    return wq->out.len + (wq->writing ? wq->stream->write_queue_size : 0);
}

int http__wq_level(struct http__wq *wq)
{
    if (http__wq_pending(wq) <= wq->high) return 0;
    wq->want_drain = true;
    return HTTP_AGAIN;
}

static void write_cb(uv_write_t *req, int status)
{
    struct http__wq *wq = req->data;

    wq->writing = false;
    wq->inflight.len = 0; /* keeps its capacity: the two buffers swap roles write after write */
    if (wq->dead) {
        if (wq->on_written) wq->on_written(wq, status ? status : SH_ECANCELED);
        return;
    }
    if (status == 0) {
        wq->progress_ms = uv_now(wq->stream->loop);
        if (wq->out.len) http__wq_flush(wq);
        if (wq->want_drain && http__wq_pending(wq) <= wq->low) {
            wq->want_drain = false;
            if (wq->on_drain) wq->on_drain(wq);
        }
    }
    if (wq->on_written) wq->on_written(wq, status);
}

void http__wq_flush(struct http__wq *wq)
{
    if (held(wq)) {
        http__wq_mark(wq); /* the flusher syncs, then writes */
        return;
    }
    wq_write(wq);
}

static void wq_write(struct http__wq *wq)
{
    struct buf tmp;
    uv_buf_t ub;
    int rc;

    if (wq->writing || wq->dead) return;
    if (wq->tls && !seal_or_die(wq)) return;
    if (wq->out.len == 0) return;
    unlink_dirty(wq);
    tmp = wq->inflight;
    wq->inflight = wq->out;
    wq->out = tmp;
    wq->out.len = 0;
    wq->sealed = 0;
    ub = uv_buf_init(wq->inflight.data, (unsigned)wq->inflight.len);
    wq->req.data = wq;
    wq->writing = true;
    rc = uv_write(&wq->req, wq->stream, &ub, 1, write_cb);
    if (rc < 0) {
        /* uv_write refuses only on a closing or broken stream: report it like a failed write */
        wq->writing = false;
        wq->inflight.len = 0;
        if (wq->on_written) wq->on_written(wq, rc);
    }
}

void http__read_space(struct buf *in, size_t chunk, uv_buf_t *out)
{
    if (buf_reserve(in, chunk) != 0) {
        in->err = 0;
        *out = uv_buf_init(NULL, 0); /* the read callback gets UV_ENOBUFS */
        return;
    }
    *out = uv_buf_init(in->data + in->len, (unsigned)(in->cap - in->len - 1));
}

void http__wq_trim(struct http__wq *wq)
{
    if (!wq->writing && wq->out.len == 0) {
        wq->sealed = 0;
        buf_release(&wq->out);
        buf_release(&wq->inflight);
    }
}

int http__listen_socket(const struct sockaddr *sa, bool reuseport, int backlog)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, rc;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    if (fd == -1) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) goto fail;
    /* "[::]:PORT" means every address, IPv4 included, whatever net.ipv6.bindv6only says */
    if (sa->sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){0}, sizeof(int)) == -1)
        goto fail;
    if (bind(fd, sa, len) == -1) goto fail;
    if (listen(fd, backlog) == -1) goto fail;
    return fd;
fail:
    rc = -errno;
    close(fd);
    return rc;
}
