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
    HTTP_F_KEEP_ALIVE = 1u << 0,  /* the connection may be reused after this message */
    HTTP_F_CONN_CLOSE = 1u << 1,  /* "Connection: close" was sent */
    HTTP_F_CONN_KA = 1u << 2,     /* "Connection: keep-alive" was sent */
    HTTP_F_CONN_UPGRADE = 1u << 3, /* "Connection: upgrade" was sent */
    HTTP_F_UPGRADE = 1u << 4,     /* an Upgrade header field is present */
    HTTP_F_EXPECT_CONTINUE = 1u << 5, /* "Expect: 100-continue" on an HTTP/1.1 request */
    HTTP_F_HAS_HOST = 1u << 6,
    HTTP_F_CONN_OTHER = 1u << 7,  /* Connection lists other tokens (hop-by-hop fields) */
    HTTP_F_HAS_TE = 1u << 8,      /* Transfer-Encoding present (chunked, by the rules) */
    HTTP_F_HAS_CL = 1u << 9,
    HTTP_F_HAS_TRAILER = 1u << 10, /* a "Trailer" header announced trailers */
};

/* Every size a peer controls. Exceeding one fails the message with the status shown. */
struct http_limits {
    uint32_t max_request_line; /* 414; default 8 KiB (status line, for responses) */
    uint32_t max_field_line;   /* 431; one header line, default 8 KiB */
    uint32_t max_head;         /* 431; all of the head, default 64 KiB */
    uint32_t max_fields;       /* 431; header fields, default 100 (trailers count too) */
    uint32_t max_chunk_ext;    /* 400; bytes of extensions on one chunk line, default 1 KiB */
    uint32_t max_method;       /* 501; method length, default 32 */
    uint64_t max_body;         /* 413; 0 = unlimited */
    bool lenient_lf;           /* accept a bare LF as a line end in the head (never in chunked) */
};
#define HTTP_LIMITS_DEFAULT                                                                    \
    ((struct http_limits){.max_request_line = 8192,                                            \
                          .max_field_line = 8192,                                              \
                          .max_head = 65536,                                                   \
                          .max_fields = 100,                                                   \
                          .max_chunk_ext = 1024,                                               \
                          .max_method = 32,                                                    \
                          .max_body = 0,                                                       \
                          .lenient_lf = false})
#define HTTP_MAX_FIELDS_CAP 4096        /* max_fields above this is clamped */
#define HTTP_MAX_HEAD_CAP (1u << 30)     /* max_head above this (or 0) is clamped */

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
/* True when no byte of a next message has been consumed since the last HTTP_DONE. */
bool http_parser_is_idle(const struct http_parser *p);

/* Known method text to id ("GET" -> HTTP_M_GET), HTTP_M_OTHER otherwise. */
enum http_method http_method_from(struct slice s);
/* Standard reason phrase for a status ("Not Found"), "" when unknown. */
const char *http_reason(int status);

#endif
