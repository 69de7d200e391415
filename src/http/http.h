/* SPDX-License-Identifier: MIT */
/* http.h: HTTP/1.1 for shoal: an incremental zero-copy parser (RFC 9110/9112) with smuggling
 * defences, response/request serialisation helpers, a libuv server with keep-alive, pipelining
 * and streaming bodies, and a pooled client. The gateway, the mesh, the admin API and the CLI
 * all stand on it.
 * Prefixes: http_, HTTP_.
 * Threads: every object belongs to the thread whose loop it was created on. */
#ifndef SHOAL_HTTP_H
#define SHOAL_HTTP_H

#include "core/core.h"

#include <uv.h>

/* ==========================================================================================
 * Parser
 *
 * Feed bytes as they arrive; http_parser_feed consumes what it can and says what it found:
 *   HTTP_AGAIN  all of the input was consumed and more is needed (*used == len).
 *   HTTP_HEAD   the head is complete: p->head is valid; *used ends at the end of the head.
 *   HTTP_BODY   p->body is a slice of body bytes inside the input just fed (framing removed);
 *               *used ends right after it.
 *   HTTP_DONE   the message is complete; *used ends at its end. The next feed starts the next
 *               message (pipelining), so bytes after it are never read as body.
 *   < 0         an error (SH_EPARSE, SH_ETOOBIG, SH_ENOTSUP, SH_EEOF): p->status holds the HTTP
 *               status to answer with (400, 413, 414, 431, 501, 505; 502 when parsing a
 *               response) and p->diag says where and what. Errors are sticky and the
 *               connection must be closed after the answer.
 *
 * Zero-copy head: while a head is incomplete, the bytes already fed for it must stay where
 * they are, immediately before the next bytes fed (accumulate the head in one buffer and feed
 * its new tail; the buffer may move between feeds, since the parser keeps offsets). The head's
 * slices (http_head_*) point into that buffer and stay valid until the caller changes it.
 * Body slices point into the input of the feed that returned them.
 * ========================================================================================== */

enum http_status_code {
    HTTP_AGAIN = 1,
    HTTP_HEAD = 2,
    HTTP_BODY = 3,
    HTTP_DONE = 4,
};

enum http_kind { HTTP_REQUEST = 0, HTTP_RESPONSE = 1 };

/* Methods the code branches on; anything else is HTTP_M_OTHER with its text in the head. */
enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_CONNECT,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
};

enum http_target_form {
    HTTP_FORM_ORIGIN = 0, /* /path?query */
    HTTP_FORM_ABSOLUTE,   /* http://host/path (proxy requests) */
    HTTP_FORM_AUTHORITY,  /* host:port (CONNECT only) */
    HTTP_FORM_ASTERISK,   /* * (OPTIONS only) */
};

enum http_body_kind {
    HTTP_BODY_NONE = 0, /* no body: no framing headers, HEAD/1xx/204/304 responses */
    HTTP_BODY_LENGTH,   /* Content-Length bytes */
    HTTP_BODY_CHUNKED,  /* chunked transfer coding */
    HTTP_BODY_EOF,      /* responses only: until the connection closes */
};

enum http_head_flags {
    HTTP_F_KEEP_ALIVE = 1u << 0,      /* the connection may be reused after this message */
    HTTP_F_CONN_CLOSE = 1u << 1,      /* "Connection: close" was sent */
    HTTP_F_CONN_KA = 1u << 2,         /* "Connection: keep-alive" was sent */
    HTTP_F_CONN_UPGRADE = 1u << 3,    /* "Connection: upgrade" was sent */
    HTTP_F_UPGRADE = 1u << 4,         /* an Upgrade header field is present */
    HTTP_F_EXPECT_CONTINUE = 1u << 5, /* "Expect: 100-continue" on an HTTP/1.1 request */
    HTTP_F_HAS_HOST = 1u << 6,
    HTTP_F_CONN_OTHER = 1u << 7, /* Connection lists other tokens (hop-by-hop fields) */
    HTTP_F_HAS_TE = 1u << 8,     /* Transfer-Encoding present (chunked, by the rules) */
    HTTP_F_HAS_CL = 1u << 9,
    HTTP_F_HAS_TRAILER = 1u << 10, /* a "Trailer" header announced trailers */
};

/* Every size a peer controls. Exceeding one fails the message with the status shown. */
struct http_limits {
    uint32_t max_request_line; /* 414; default 8 KiB (status line, for responses) */
    uint32_t max_field_line;   /* 431; one header line, default 8 KiB */
    uint32_t max_head;         /* 431; all of the head, default 64 KiB */
    uint32_t max_fields;       /* 431; header fields, default 100; trailers get as many again */
    uint32_t max_chunk_ext;    /* 400; bytes of extensions on one chunk line, default 1 KiB */
    uint32_t max_method;       /* 501; method length, default 32 */
    uint64_t max_body;         /* 413; 0 = unlimited */
    bool lenient_lf;           /* accept a bare LF as a line end in the head (never in chunked) */
};
#define HTTP_LIMITS_DEFAULT                                                                        \
    ((struct http_limits){.max_request_line = 8192,                                                \
                          .max_field_line = 8192,                                                  \
                          .max_head = 65536,                                                       \
                          .max_fields = 100,                                                       \
                          .max_chunk_ext = 1024,                                                   \
                          .max_method = 32,                                                        \
                          .max_body = 0,                                                           \
                          .lenient_lf = false})
#define HTTP_MAX_FIELDS_CAP 4096     /* max_fields above this is clamped */
#define HTTP_MAX_HEAD_CAP (1u << 30) /* max_head above this (or 0) is clamped */

/* A span of the head: an offset from the head's first byte and a length. */
struct http_span {
    uint32_t off, len;
};
struct http_field {
    struct http_span name, value; /* value without surrounding whitespace */
};

/* A parsed head. Read-only for callers; use the accessors for slices. */
struct http_head {
    const char *base; /* first byte of the head (set when HTTP_HEAD is returned) */
    size_t len;       /* bytes of the head, final empty line included */
    enum http_kind kind;
    enum http_method method;
    enum http_target_form form;
    uint8_t version_minor; /* 0 or 1 (HTTP/1.2+ is handled as 1.1) */
    uint16_t status;       /* responses */
    uint32_t flags;        /* enum http_head_flags */
    enum http_body_kind body;
    uint64_t content_length; /* when body == HTTP_BODY_LENGTH */
    struct http_span method_s, target, reason, host;
    uint32_t nfields;
    struct http_field *fields; /* nfields entries, in order of arrival */
};

static inline struct slice http_span_slice(const struct http_head *h, struct http_span s)
{
    return (struct slice){.ptr = h->base + s.off, .len = s.len};
}
static inline struct slice http_head_method(const struct http_head *h)
{
    return http_span_slice(h, h->method_s);
}
static inline struct slice http_head_target(const struct http_head *h)
{
    return http_span_slice(h, h->target);
}
static inline struct slice http_head_reason(const struct http_head *h)
{
    return http_span_slice(h, h->reason);
}
/* The Host field, or for absolute-form and CONNECT the target's authority (RFC 9112 3.2.2). */
static inline struct slice http_head_host(const struct http_head *h)
{
    return http_span_slice(h, h->host);
}
static inline struct slice http_field_name(const struct http_head *h, uint32_t i)
{
    return http_span_slice(h, h->fields[i].name);
}
static inline struct slice http_field_value(const struct http_head *h, uint32_t i)
{
    return http_span_slice(h, h->fields[i].value);
}
/* The value of the first field named <name> (case-insensitive); false when absent. */
bool http_head_get(const struct http_head *h, struct slice name, struct slice *out);
/* Whether the comma-separated list in any field named <name> holds <token> (case-insensitive). */
bool http_head_has_token(const struct http_head *h, struct slice name, struct slice token);

/* Private state, grouped so callers see what is theirs. */
struct http_parser {
    /* results (read-only) */
    struct http_head head; /* valid from HTTP_HEAD until the next message's first byte */
    struct slice body;     /* valid after HTTP_BODY */
    int status;            /* after an error: the HTTP status to answer with */
    struct sh_diag diag;   /* after an error: where and what */
    /* configuration (set by init) */
    struct http_limits lim;
    /* private */
    uint8_t state, sub;
    bool is_trailer, expect_no_body, req_connect;
    int err;
    uint32_t pos;        /* head bytes consumed for this message */
    uint32_t line_start; /* offset of the current line */
    uint32_t tok_start;  /* offset of the token being read */
    uint32_t value_end;  /* offset just past the last non-blank byte of a value */
    uint32_t ext_len;    /* chunk extension bytes on this line */
    uint32_t ntrailers;
    uint32_t cap_fields;
    uint8_t hexdigits;
    uint64_t remaining; /* body bytes left in this message or chunk */
    uint64_t body_seen;
    char ver[9];
    uint8_t ver_len;
};

/* Prepares a parser for requests or responses; lim may be NULL for the defaults.
 * 0 or SH_ENOMEM (the field table is allocated here). Release with http_parser_release. */
SH_MUST_CHECK int http_parser_init(struct http_parser *p, enum http_kind kind,
                                   const struct http_limits *lim);
void http_parser_release(struct http_parser *p); /* idempotent */
/* See the block comment above. *used is always set. */
int http_parser_feed(struct http_parser *p, const char *data, size_t len, size_t *used);
/* The peer closed the connection. Returns HTTP_DONE when that ends the message (a response
 * read until close), 0 when no message had begun, or SH_EEOF (with status and diag) when a
 * message was cut short. */
int http_parser_finish(struct http_parser *p);
/* For response parsers: the method of the request this response answers (HEAD responses have
 * no body; a 2xx to CONNECT starts a tunnel). Set before feeding each response. */
void http_parser_set_request_method(struct http_parser *p, enum http_method m);
/* Bytes of an incomplete head the parser has consumed and still refers to (0 outside a head):
 * the caller must keep these many bytes before its next input, contiguous. */
size_t http_parser_head_pending(const struct http_parser *p);
/* True when the message has ended and the next feed (even of zero bytes) returns HTTP_DONE.
 * A caller that stops feeding when its input runs out must still make that call. */
bool http_parser_done_pending(const struct http_parser *p);
/* True when no byte of a next message has been consumed since the last HTTP_DONE. */
bool http_parser_is_idle(const struct http_parser *p);

/* Known method text to id ("GET" -> HTTP_M_GET), HTTP_M_OTHER otherwise. */
enum http_method http_method_from(struct slice s);
/* Standard reason phrase for a status ("Not Found"), "" when unknown. */
const char *http_reason(int status);

/* ==========================================================================================
 * Serialisation helpers (write.c)
 * ========================================================================================== */

/* A header field to send. */
struct http_out_field {
    struct slice name, value;
};

/* Whether a field is hop-by-hop (RFC 9110 7.6.1): Connection, Keep-Alive, Proxy-Connection,
 * TE, Transfer-Encoding, Upgrade, Trailer, Proxy-Authenticate, Proxy-Authorization — or
 * listed by name in the message's Connection field. A proxy drops these when forwarding. */
bool http_is_hop_by_hop(const struct http_head *h, struct slice name);
/* Appends "HTTP/1.1 <status> <reason>\r\n" and the fields, without the final empty line. */
int http_write_status_line(struct buf *out, int status, const char *reason);
int http_write_field(struct buf *out, struct slice name, struct slice value);
/* Appends one chunk of the chunked coding ("<hex>\r\n<data>\r\n"); n == 0 writes nothing. */
int http_write_chunk(struct buf *out, const void *p, size_t n);
/* "Sun, 06 Nov 1994 08:49:37 GMT" for now, cached per second; valid until the next call. */
const char *http_date_now(void);

/* ==========================================================================================
 * Server (server.c, conn.c)
 *
 * One http_server per loop. Each listens on its own SO_REUSEPORT socket, so N workers with N
 * loops share one port with no lock. A connection carries one exchange at a time: pipelined
 * requests are parsed only after the previous response is finished, so responses leave in
 * request order. Bodies stream both ways in chunks with backpressure:
 *   request body:  on_body(chunk) for each chunk as it arrives; http_exchange_pause() stops
 *                  reading from the socket, http_exchange_resume() starts again.
 *   response body: http_exchange_write() copies into the connection's queue and returns
 *                  HTTP_AGAIN once the queue is above its high watermark; the producer stops
 *                  and waits for on_drain (queue under the low watermark).
 * Expect: 100-continue is answered when the handler first asks for the body (resume or
 * http_exchange_read_body); a handler that answers without reading gets the connection closed
 * after the response instead (no body is ever read as the next request).
 * ========================================================================================== */
struct http_server;
struct tls_server;    /* tls/tls.h */
struct tls_client;    /* tls/tls.h */
struct http_exchange; /* one request and its response */

/* Called once per request, when its head is complete. The handler answers now or later. */
typedef void http_request_fn(struct http_exchange *ex, void *data);

/* What a handler wants to hear about while an exchange lives. All optional. */
struct http_exchange_handlers {
    /* A chunk of request body (framing removed); chunk.ptr is valid only during the call. */
    void (*on_body)(struct http_exchange *ex, struct slice chunk, void *data);
    /* The request body is complete (also called, at once, for a request without body). */
    void (*on_body_end)(struct http_exchange *ex, void *data);
    /* The response queue fell under the low watermark after http_exchange_write said AGAIN. */
    void (*on_drain)(struct http_exchange *ex, void *data);
    /* The exchange died before the response was finished: the client went away (SH_ECLOSED),
     * a timeout (SH_ETIMEDOUT), a malformed body (SH_EPARSE, SH_ETOOBIG), or server shutdown.
     * After this returns, ex is gone: the handler must drop every pointer to it. */
    void (*on_abort)(struct http_exchange *ex, int err, void *data);
};

/* Holds a server's answers until what they acknowledge is durable (the control plane's group
 * commit): no byte queued while pending(data) is true leaves before sync(data) has run. The
 * server's flusher runs sync before it writes, once per loop iteration, so every answer of the
 * iteration waits for one sync; bytes that would otherwise leave at once (a large body's
 * direct write, the rest of a queue when a write completes) wait for the flusher instead. (A
 * uv_write already in flight carries on by itself: its bytes were queued before.)
 * sync must leave pending false (the control plane stops the process when it cannot). */
struct http_barrier {
    bool (*pending)(void *data);
    void (*sync)(void *data);
    void *data;
};

struct http_server_config {
    const struct sockaddr_storage *addr; /* where to listen (sh_listen_parse); when set,
                                    host and port are ignored; its port 0 = pick one */
    const char *host;                    /* numeric address to listen on; NULL = 127.0.0.1 */
    uint16_t port;                       /* 0 = pick one (see http_server_port) */
    bool reuseport;                      /* SO_REUSEPORT, for one server per worker on one port */
    struct http_limits limits;           /* zeroed = HTTP_LIMITS_DEFAULT */
    uint32_t header_timeout_ms;          /* head must arrive within this from its first byte; 408.
                                            0 = 10s */
    uint32_t body_timeout_ms;            /* max silence while reading a body; 408. 0 = 30s */
    uint32_t idle_timeout_ms;            /* keep-alive: close after this long idle. 0 = 60s */
    uint32_t send_timeout_ms;            /* max time without write progress; then close. 0 = 60s */
    uint32_t max_connections;            /* accepted connections above this are closed. 0 = 10000 */
    uint32_t max_requests_per_conn;      /* 0 = unlimited */
    size_t write_high_bytes;             /* 0 = 256 KiB */
    size_t write_low_bytes;              /* 0 = 64 KiB */
    http_request_fn *on_request;
    void *data;
    struct http_barrier barrier; /* zeroed = none: answers leave as soon as they can */
    /* TLS: every connection is TLS on this server's certificates (tls/tls.h; borrowed, must
     * outlive the server). NULL = plain HTTP, and no TLS code runs. */
    struct tls_server *tls;
    uint32_t handshake_timeout_ms; /* a TLS handshake must finish within this; 0 = 10s */
    const char *response_fields;   /* "Name: value\r\n" lines added to every response made
                                      with http_exchange_start (HSTS); borrowed; NULL = none */
};

/* Binds and listens on loop. Returns 0 and *out, or a negative code (SH_E*, -errno from
 * bind/listen) with a message in *diag (may be NULL). */
SH_MUST_CHECK int http_server_new(uv_loop_t *loop, const struct http_server_config *cfg,
                                  struct http_server **out, struct sh_diag *diag);
uint16_t http_server_port(const struct http_server *srv);
/* Counters for metrics and tests (this server only). */
struct http_server_stats {
    uint64_t accepted, requests, active_conns, parse_errors, timeouts;
    uint64_t tls_failures; /* handshakes that failed or timed out (tls_server_stats: why) */
};
void http_server_stats(const struct http_server *srv, struct http_server_stats *out);
/* Graceful stop: closes the listener at once, closes idle connections, lets in-flight
 * exchanges finish (their responses carry Connection: close) and force-closes what is left
 * after deadline_ms. done(data) runs when the last connection is closed; then free. */
void http_server_shutdown(struct http_server *srv, uint32_t deadline_ms, void (*done)(void *data),
                          void *data);
/* Frees a server whose shutdown completed (or that never started). NULL is a no-op. */
void http_server_free(struct http_server *srv);

/* --- exchange: the request --- */
const struct http_head *http_exchange_head(const struct http_exchange *ex); /* valid until the
                                                                             exchange ends */
/* Per-exchange arena (freed when the exchange ends). */
struct arena *http_exchange_arena(struct http_exchange *ex);
/* The peer's address as text ("127.0.0.1:5555"); valid while ex lives. */
const char *http_exchange_peer(const struct http_exchange *ex);
/* mTLS (a server with tls_server_config.client_ca): the SPIFFE ID of the client's verified
 * certificate into out; 0, SH_ENOENT (plain, or no such SAN), SH_ELIMIT. */
SH_MUST_CHECK int http_exchange_peer_id(const struct http_exchange *ex, char *out, size_t cap);
void http_exchange_set_handlers(struct http_exchange *ex, const struct http_exchange_handlers *h,
                                void *data);
/* Start (or restart) delivering the request body; sends 100 Continue when expected. */
void http_exchange_resume(struct http_exchange *ex);
/* Stop reading the request body from the socket until resume. */
void http_exchange_pause(struct http_exchange *ex);

/* --- exchange: the response --- */
struct http_response_head {
    int status;
    const char *reason;                  /* NULL = standard phrase */
    const struct http_out_field *fields; /* must not include framing or Connection fields */
    size_t nfields;
    int64_t content_length; /* -1 = unknown: chunked (HTTP/1.1) or until close */
};
/* Sends the status line and fields. 0, SH_EINVAL (already started) or SH_ECLOSED. */
int http_exchange_start(struct http_exchange *ex, const struct http_response_head *rh);
/* Queues body bytes (copied). 0, HTTP_AGAIN (queued, but above the high watermark: wait for
 * on_drain), SH_EINVAL (more than content_length, or not started) or SH_ECLOSED. */
int http_exchange_write(struct http_exchange *ex, const void *p, size_t n);
/* Ends the response. A request body not yet read is drained (up to 1 MiB) or the connection
 * is closed after the response. No handler is called after finish, and ex must not be used
 * after it returns: the exchange may end inside this call. */
int http_exchange_finish(struct http_exchange *ex);
/* One-shot response with a complete body. */
int http_exchange_respond(struct http_exchange *ex, int status, struct slice content_type,
                          struct slice body);
/* Drops the connection now (e.g. the upstream failed mid-response). ex becomes invalid;
 * on_abort is not called. */
void http_exchange_abort(struct http_exchange *ex);

/* ==========================================================================================
 * Client (client.c)
 *
 * One http_client per loop, with a pool of connections per upstream address: idle
 * connections are kept (max_idle_per_host, idle_timeout_ms) with a read armed so a close by
 * the peer is noticed at once, and re-checked with a non-blocking peek before reuse. At most
 * max_conns_per_host connections are open to one address; further requests wait in a queue
 * (max_pending_per_host, then SH_ELIMIT). A request that fails on a reused connection before
 * any response byte arrived and whose body was fully sent is retried once on a new one.
 * ========================================================================================== */
struct http_client;
struct http_creq; /* one request in flight */

struct http_client_config {
    uint32_t max_idle_per_host;               /* 0 = 32 */
    uint32_t max_conns_per_host;              /* 0 = 1024 */
    uint32_t max_pending_per_host;            /* 0 = 1024 */
    uint32_t idle_timeout_ms;                 /* 0 = 60s */
    uint32_t connect_timeout_ms;              /* 0 = 5s */
    struct http_limits limits;                /* for responses; zeroed = defaults */
    size_t write_high_bytes, write_low_bytes; /* 0 = 256 KiB / 64 KiB */
};

struct http_creq_handlers {
    /* The response head (after any 1xx). head is valid until on_done. */
    void (*on_head)(struct http_creq *cr, const struct http_head *head, void *data);
    /* A chunk of response body; valid only during the call. */
    void (*on_body)(struct http_creq *cr, struct slice chunk, void *data);
    /* The request body queue fell under the low watermark after a write said AGAIN. */
    void (*on_drain)(struct http_creq *cr, void *data);
    /* The exchange is over: 0 when the whole response arrived, else SH_ECONNREFUSED,
     * SH_ETIMEDOUT, SH_ECONNRESET, SH_EPARSE (malformed response), SH_ELIMIT, SH_ECANCELED...
     * Called exactly once (unless http_creq_cancel was called); cr is invalid afterwards. */
    void (*on_done)(struct http_creq *cr, int rc, void *data);
};

struct http_request_desc {
    const struct sockaddr *addr;         /* upstream (IPv4 or IPv6, numeric) */
    struct slice method, target;         /* "GET", "/path?q" */
    struct slice host;                   /* Host field value */
    const struct http_out_field *fields; /* no framing, Host or Connection fields */
    size_t nfields;
    bool fields_checked;          /* the caller vouches that names are tokens and values
                                     hold no CR/LF/NUL (e.g. they come from our parser) */
    int64_t content_length;       /* 0 = no body, -1 = chunked, else exact */
    uint32_t response_timeout_ms; /* head must arrive within this after the request was
                                     sent; 0 = none */
    uint32_t total_timeout_ms;    /* whole exchange; 0 = none */
    /* Per-upstream settings (a gateway passes its cluster's): 0 = the client's
     * connect_timeout_ms, idle_timeout_ms, max_pending_per_host. Connections are pooled per
     * address and settings: requests with other settings never share a connection. */
    uint32_t connect_timeout_ms, idle_timeout_ms, max_pending;
    /* mTLS to the upstream (docs/security.md, "mTLS between meshes"): NULL = plain. The
     * connection presents tls's certificate, sends tls_name as SNI (NULL: none) and refuses a
     * server whose certificate's SPIFFE ID is not tls_expect_id (NULL: any the bundle signs).
     * Part of the pool's key (so connections are pooled per caller identity and destination);
     * tls must outlive the requests made with it. A failed handshake ends the request with
     * SH_EPROTO. */
    struct tls_client *tls;
    const char *tls_name, *tls_expect_id;
};

SH_MUST_CHECK int http_client_new(uv_loop_t *loop, const struct http_client_config *cfg,
                                  struct http_client **out);
/* Closes every connection; in-flight requests end with SH_ECANCELED. Asynchronous: the memory
 * is released from close callbacks, so run the loop until it has no handles before freeing
 * the loop. NULL is a no-op. */
void http_client_free(struct http_client *cl);
struct http_client_stats {
    uint64_t connects, reuses, requests, retries, errors, idle_closed_by_peer;
    uint64_t tls_handshakes, tls_failures; /* mTLS upstreams */
    uint32_t open_conns, idle_conns;
};
void http_client_stats(const struct http_client *cl, struct http_client_stats *out);

/* Starts a request. Returns 0 and *out (callbacks will follow, never from inside this call),
 * or a negative code (then no callback is ever called). */
SH_MUST_CHECK int http_client_request(struct http_client *cl, const struct http_request_desc *d,
                                      const struct http_creq_handlers *h, void *data,
                                      struct http_creq **out);
/* Request body: copied into the queue. 0, HTTP_AGAIN (wait for on_drain), SH_EINVAL. */
int http_creq_write(struct http_creq *cr, const void *p, size_t n);
/* Ends the request body (the last chunk for chunked bodies). */
int http_creq_finish(struct http_creq *cr);
/* Stop / restart reading the response body (backpressure towards the upstream). */
void http_creq_pause(struct http_creq *cr);
void http_creq_resume(struct http_creq *cr);
/* Abandons the request; its connection is closed; no callback follows. */
void http_creq_cancel(struct http_creq *cr);
/* Whether the request went out on a reused pooled connection. */
bool http_creq_reused(const struct http_creq *cr);

/* An address to connect to: sh_addr_parse (core.h), kept for the http component's callers.
 * 0 or SH_EPARSE with d->what filled. Listeners parse theirs with sh_listen_parse. */
SH_MUST_CHECK int http_parse_addr(const char *text, struct sockaddr_storage *out,
                                  struct sh_diag *d);
/* "127.0.0.1:8080" / "[::1]:8080" into out (at least 64 bytes); returns out. */
char *http_format_addr(const struct sockaddr *sa, char *out, size_t out_len);

#endif
