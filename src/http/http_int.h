/* SPDX-License-Identifier: MIT */
/* http_int.h: private pieces shared by the server and the client: the write queue over a
 * libuv stream with watermarks, and the per-owner flusher that coalesces every write made in
 * one loop iteration into one writev.
 * Threads: the loop's thread only. */
#ifndef SHOAL_HTTP_INT_H
#define SHOAL_HTTP_INT_H

#include "http/http.h"
#include "tls/tls.h"

#define HTTP__CONTAINER_OF(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct http__wq;

/* Flushes dirty write queues from a uv_prepare handle, i.e. once per loop iteration, after
 * the callbacks that queued bytes have returned. */
struct http__flusher {
    uv_prepare_t prep;
    struct http__wq *dirty; /* singly linked through wq->next_dirty */
    bool active;
    const struct http_barrier *barrier; /* NULL: none (see struct http_barrier) */
};

/* Bytes queued for one stream. out collects new bytes; inflight is what uv_write holds. */
struct http__wq {
    uv_stream_t *stream;
    struct http__flusher *fl;
    struct http__wq *next_dirty;
    struct buf out, inflight;
    uv_write_t req;
    bool writing, dirty, want_drain, dead;
    size_t high, low;
    uint64_t progress_ms; /* loop time of the last write progress */
    /* TLS (NULL: plain, and nothing below costs anything): out[0..sealed) is ciphertext, the
     * rest plaintext the next write seals first (http__wq_seal). */
    struct tls_conn *tls;
    size_t sealed;
    /* Queue fell to <= low after a producer was told HTTP_AGAIN. */
    void (*on_drain)(struct http__wq *wq);
    /* A uv_write finished: status 0 or a negative libuv code. Everything may be flushed. */
    void (*on_written)(struct http__wq *wq, int status);
};

void http__flusher_init(uv_loop_t *loop, struct http__flusher *fl);
void http__flusher_close(struct http__flusher *fl, uv_close_cb cb);

void http__wq_init(struct http__wq *wq, uv_stream_t *stream, struct http__flusher *fl, size_t high,
                   size_t low);
/* The stream is closing: pending bytes are dropped, nothing is written any more. */
void http__wq_kill(struct http__wq *wq);
void http__wq_release(struct http__wq *wq);
/* Reserves n bytes at the end of out and returns where to write them (NULL on ENOMEM);
 * http__wq_commit(n) then marks them queued. For building heads in place. */
struct buf *http__wq_buf(struct http__wq *wq);
void http__wq_mark(struct http__wq *wq); /* bytes were added to http__wq_buf(): schedule */
int http__wq_append(struct http__wq *wq, const void *p, size_t n);
/* As http__wq_append, but an append of at least HTTP_DIRECT_MIN bytes with no write in flight
 * is first offered to the socket (uv_try_write, together with what is queued), and only what
 * the kernel does not take is copied into the queue. If that copy fails after bytes went out,
 * the queue is killed (the stream cannot be framed any more) and SH_ECLOSED is returned. */
enum { HTTP_DIRECT_MIN = 16 * 1024 };
int http__wq_append_direct(struct http__wq *wq, const void *p, size_t n);
/* 0 when under the high watermark, else HTTP_AGAIN (and on_drain will follow). */
int http__wq_level(struct http__wq *wq);
size_t http__wq_pending(const struct http__wq *wq);
/* Starts writing now instead of at the end of the loop iteration (while the owner's barrier
 * holds, the flusher writes it after the sync). */
void http__wq_flush(struct http__wq *wq);
/* TLS: seals the plaintext queued in out and appends the ciphertext the TLS connection has
 * pending (handshake records, alerts, tickets), then schedules the write. 0 or SH_E*. */
int http__wq_seal(struct http__wq *wq);
/* Frees the buffers when nothing is pending (idle connections hold no buffer memory). */
void http__wq_trim(struct http__wq *wq);

/* Calls fn for each trimmed, non-empty element of a comma-separated list; stops when fn
 * returns false. Returns false when stopped. (parser.c) */
typedef bool http__list_fn(struct slice elem, void *data);
bool http__list_each(struct slice v, http__list_fn *fn, void *data);

/* A libuv alloc callback's answer: room for at least <chunk> bytes after in's contents. */
void http__read_space(struct buf *in, size_t chunk, uv_buf_t *out);

/* A connection's one timer, for its earliest deadline (UINT64_MAX: none, the timer stops).
 * A later deadline leaves an armed timer alone (it re-arms itself when it fires early), so
 * the timer heap stays off the per-read and per-request paths. *is_armed and *armed_at are
 * the connection's record of what is armed. */
void http__timer_arm(uv_timer_t *t, uv_timer_cb cb, uint64_t deadline, bool *is_armed,
                     uint64_t *armed_at);

/* -errno style libuv code to ours (they share the negative errno space). */
int http__from_uv(int uvrc);

/* Sets SO_REUSEPORT/SO_REUSEADDR and binds+listens a TCP socket; returns the fd or -errno. */
int http__listen_socket(const struct sockaddr *sa, bool reuseport, int backlog);

#endif
