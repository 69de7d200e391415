/* SPDX-License-Identifier: MIT */
/* parser.c: the incremental HTTP/1.1 parser (RFC 9112 framing, RFC 9110 semantics).
 *
 * One byte-at-a-time state machine, resumable at any byte: all state lives in the parser, the
 * head is recorded as offsets from its first byte, and body bytes are handed out as slices of
 * the caller's input. Every rule in shared/reference/http1-rules.md that concerns framing is
 * enforced here; the server and client only act on the verdicts. Where we are stricter than a
 * lenient peer would be, the vector that pins it down is named in tests/vectors/http/.
 *
 * Invariants: pos counts the head bytes of the current message (leading empty lines excluded);
 * every offset recorded is < pos; pos never exceeds lim.max_head + 1. */
#include "http/http.h"
#include "http/http_int.h"

#include <string.h>

enum state {
    S_START = 0,   /* before a message: empty lines are skipped */
    S_START_LF,    /* saw CR of an empty leading line */
    S_METHOD,      /* request: method token */
    S_TARGET,      /* request: target */
    S_VERSION,     /* request: "HTTP/x.y" */
    S_RL_LF,       /* request line: saw CR */
    S_RVERSION,    /* response: "HTTP/x.y" */
    S_STATUS,      /* response: three digits */
    S_STATUS_SP,   /* response: after the code, SP or line end */
    S_REASON,      /* response: reason phrase */
    S_LINE_START,  /* start of a field line or of the empty line ending the head */
    S_NAME,        /* field name */
    S_VALUE_OWS,   /* whitespace after the colon */
    S_VALUE,       /* field value */
    S_FIELD_LF,    /* saw CR at the end of a field line */
    S_HEAD_LF,     /* saw CR of the empty line */
    S_BODY_LENGTH, /* Content-Length body */
    S_CHUNK_SIZE,  /* hex digits */
    S_CHUNK_BWS,   /* blanks after the size, before ';' */
    S_CHUNK_EXT,   /* extensions; p->sub is the extension sub-state */
    S_CHUNK_LF,    /* saw CR after the size line */
    S_CHUNK_DATA,
    S_CHUNK_DATA_CR,
    S_CHUNK_DATA_LF,
    S_BODY_EOF,     /* until close */
    S_DONE_PENDING, /* the message ended; the next call reports HTTP_DONE */
    S_ERROR,
};

/* Chunk-extension sub-states: ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted ) ] ) */
enum ext_state {
    X_NAME_START = 0,
    X_NAME,
    X_AFTER_NAME,
    X_VALUE_START,
    X_TOKEN,
    X_QUOTED,
    X_QUOTED_ESC,
    X_AFTER_VALUE,
};

/* Character classes. */
enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4, C_HEX = 8, C_QDTEXT = 16, C_HOST = 32 };

static uint8_t cls[256];
static _Atomic int cls_ready;

static void cls_init(void)
{
    static const char tspecial[] = "!#$%&'*+-.^_`|~";

    if (atomic_load_explicit(&cls_ready, memory_order_acquire)) return;
    for (int c = 0; c < 256; c++) {
        uint8_t v = 0;
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (alnum || (c && strchr(tspecial, c))) v |= C_TCHAR;
        if (c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7e) || c >= 0x80) v |= C_VALUE;
        if (c >= 0x21 && c <= 0x7e) v |= C_TARGET;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= C_HEX;
        /* Host: reg-name (unreserved, sub-delims, pct-encoded) plus ':' '[' ']' for ports
         * and IP literals */
        if (alnum || (c && strchr("-._~!$&'()*+,;=:[]%", c))) v |= C_HOST;
        if (c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
            (c >= 0x5d && c <= 0x7e) || c >= 0x80)
            v |= C_QDTEXT;
        cls[c] = v;
    }
    atomic_store_explicit(&cls_ready, 1, memory_order_release);
}

static inline bool is_c(unsigned char c, uint8_t k)
{
    return (cls[c] & k) != 0;
}

/* ------------------------------------------------------------------------------------------
 * Lists in field values
 * ------------------------------------------------------------------------------------------ */
/* Calls fn for each trimmed, non-empty element of a comma-separated list; stops when fn
 * returns false. Returns false when stopped. */
bool http__list_each(struct slice v, http__list_fn *fn, void *data)
{
    struct slice head;

    while (v.ptr) {
        v = slice_split(v, ',', &head);
        head = slice_trim(head);
        if (head.len && !fn(head, data)) return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------ */
/* Clears the head for a new message. Called at the message's first byte, not when the last
 * one ends: http.h promises the head stays readable until then (vector
 * response-pipelined-keepalive checks it after every HTTP_DONE). */
static void clear_head(struct http_head *h)
{
    struct http_field *fields = h->fields;
    enum http_kind kind = h->kind;

    memset(h, 0, sizeof(*h));
    h->fields = fields;
    h->kind = kind;
}

static void reset_message(struct http_parser *p)
{
    p->state = S_START;
    p->sub = 0;
    p->is_trailer = false;
    p->pos = p->line_start = p->tok_start = p->value_end = 0;
    p->ext_len = p->ntrailers = 0;
    p->hexdigits = 0;
    p->remaining = p->body_seen = 0;
    p->ver_len = 0;
    p->body = SLICE_NULL;
}

int http_parser_init(struct http_parser *p, enum http_kind kind, const struct http_limits *lim)
{
    cls_init();
    memset(p, 0, sizeof(*p));
    p->lim = lim ? *lim : HTTP_LIMITS_DEFAULT;
    if (p->lim.max_fields > HTTP_MAX_FIELDS_CAP) p->lim.max_fields = HTTP_MAX_FIELDS_CAP;
    /* Offsets are 32-bit: cap every head size well below that. */
    if (p->lim.max_head == 0 || p->lim.max_head > HTTP_MAX_HEAD_CAP)
        p->lim.max_head = HTTP_MAX_HEAD_CAP;
    p->lim.max_request_line = SH_MIN(p->lim.max_request_line, p->lim.max_head);
    p->lim.max_field_line = SH_MIN(p->lim.max_field_line, p->lim.max_head);
    p->cap_fields = p->lim.max_fields ? p->lim.max_fields : 1;
    p->head.fields = sh_calloc(p->cap_fields, sizeof(struct http_field));
    if (!p->head.fields) return SH_ENOMEM;
    p->head.kind = kind;
    reset_message(p);
    return 0;
}

/* A message ended. A final response (not 1xx) consumes the request method set for it. */
static void message_done(struct http_parser *p)
{
    if (p->head.kind == HTTP_RESPONSE && p->head.status >= 200)
        p->expect_no_body = p->req_connect = false;
    reset_message(p);
}

void http_parser_release(struct http_parser *p)
{
    sh_free(p->head.fields);
    p->head.fields = NULL;
    p->head.nfields = 0;
}

void http_parser_set_request_method(struct http_parser *p, enum http_method m)
{
    p->expect_no_body = m == HTTP_M_HEAD;
    p->req_connect = m == HTTP_M_CONNECT;
}

size_t http_parser_head_pending(const struct http_parser *p)
{
    return p->state < S_BODY_LENGTH && p->state != S_START ? p->pos : 0;
}

bool http_parser_done_pending(const struct http_parser *p)
{
    return p->state == S_DONE_PENDING;
}

bool http_parser_is_idle(const struct http_parser *p)
{
    return p->state == S_START && p->pos == 0;
}

/* ------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------ */
static int fail(struct http_parser *p, int err, int status, const char *where, const char *what)
{
    /* A response we cannot frame is the upstream's fault: the client gets 502. */
    if (p->head.kind == HTTP_RESPONSE) status = 502;
    p->state = S_ERROR;
    p->err = err;
    p->status = status;
    sh_diag_set(&p->diag, where, "%s", what);
    return err;
}

static int fail_field(struct http_parser *p, int err, int status, uint32_t name_off,
                      uint32_t name_len, const char *base, const char *what)
{
    char where[64];
    size_t n = SH_MIN(name_len, 48u);

    /* name bytes are tchars only (checked before we get here), safe to print */
    memcpy(where, base + name_off, n);
    where[n] = '\0';
    return fail(p, err, status, where, what);
}

/* ------------------------------------------------------------------------------------------
 * Field semantics: each completed field line is classified here.
 * ------------------------------------------------------------------------------------------ */
static bool parse_cl_elem(struct slice elem, void *data)
{
    uint64_t *acc = data, v; /* acc[0]: value, acc[1]: 0 ok / 1 bad / 2 differ, acc[2]: seen */
    int rc = slice_to_u64(elem, &v);

    if (rc) {
        acc[1] = 1;
        return false;
    }
    if (acc[2] && acc[0] != v) {
        acc[1] = 2;
        return false;
    }
    acc[0] = v;
    acc[2] = 1;
    return true;
}

struct te_state {
    unsigned count, chunked_at; /* chunked_at: 1-based position of "chunked", 0 if absent */
    bool unknown, chunked_twice;
};

static bool parse_te_elem(struct slice elem, void *data)
{
    struct te_state *te = data;
    struct slice name;

    slice_split(elem, ';', &name); /* transfer parameters are not used by us */
    name = slice_trim(name);
    te->count++;
    if (slice_eq_nocase(name, SLICE("chunked"))) {
        if (te->chunked_at) te->chunked_twice = true;
        te->chunked_at = te->count;
    } else {
        te->unknown = true;
    }
    return true;
}

struct conn_state {
    uint32_t flags;
};

static bool parse_conn_elem(struct slice elem, void *data)
{
    struct conn_state *cs = data;

    if (slice_eq_nocase(elem, SLICE("close")))
        cs->flags |= HTTP_F_CONN_CLOSE;
    else if (slice_eq_nocase(elem, SLICE("keep-alive")))
        cs->flags |= HTTP_F_CONN_KA;
    else if (slice_eq_nocase(elem, SLICE("upgrade")))
        cs->flags |= HTTP_F_CONN_UPGRADE;
    else
        cs->flags |= HTTP_F_CONN_OTHER;
    return true;
}

/* Host = uri-host [ ":" port ]: reg-name / IPv4 / "[" IPv6 "]"; we accept the unreserved,
 * sub-delims and pct-encoded bytes of reg-name plus brackets and colons for IP literals. */
static bool host_valid(struct slice h)
{
    for (size_t i = 0; i < h.len; i++) {
        if (!is_c((unsigned char)h.ptr[i], C_HOST)) return false;
    }
    return true;
}

static int on_field(struct http_parser *p, const char *base, struct http_field *f)
{
    struct slice name = {base + f->name.off, f->name.len};
    struct slice value = {base + f->value.off, f->value.len};
    struct http_head *h = &p->head;

    switch (name.len) {
    case 4:
        if (slice_eq_nocase(name, SLICE("host")) && h->kind == HTTP_REQUEST) {
            if (h->flags & HTTP_F_HAS_HOST)
                return fail(p, SH_EPARSE, 400, "Host", "more than one Host field");
            if (!host_valid(value)) return fail(p, SH_EPARSE, 400, "Host", "invalid Host value");
            h->flags |= HTTP_F_HAS_HOST;
            if (h->form != HTTP_FORM_ABSOLUTE && h->form != HTTP_FORM_AUTHORITY) h->host = f->value;
        }
        break;
    case 6:
        if (slice_eq_nocase(name, SLICE("expect")) && h->kind == HTTP_REQUEST &&
            h->version_minor >= 1) {
            if (slice_eq_nocase(value, SLICE("100-continue"))) h->flags |= HTTP_F_EXPECT_CONTINUE;
        }
        break;
    case 7:
        if (slice_eq_nocase(name, SLICE("upgrade")))
            h->flags |= HTTP_F_UPGRADE;
        else if (slice_eq_nocase(name, SLICE("trailer")))
            h->flags |= HTTP_F_HAS_TRAILER;
        break;
    case 10:
        if (slice_eq_nocase(name, SLICE("connection"))) {
            struct conn_state cs = {0};
            http__list_each(value, parse_conn_elem, &cs);
            h->flags |= cs.flags;
        }
        break;
    case 14:
        if (slice_eq_nocase(name, SLICE("content-length"))) {
            uint64_t acc[3] = {h->content_length, 0, (h->flags & HTTP_F_HAS_CL) ? 1 : 0};
            if (value.len == 0)
                return fail(p, SH_EPARSE, 400, "Content-Length", "empty Content-Length");
            http__list_each(value, parse_cl_elem, acc);
            if (acc[1] == 1 || !acc[2])
                return fail(p, SH_EPARSE, 400, "Content-Length", "invalid Content-Length");
            if (acc[1] == 2)
                return fail(p, SH_EPARSE, 400, "Content-Length", "differing Content-Length values");
            /* Empty list elements ("5,,5") are skipped; a trailing comma alone is not a value. */
            h->content_length = acc[0];
            h->flags |= HTTP_F_HAS_CL;
        }
        break;
    case 17:
        if (slice_eq_nocase(name, SLICE("transfer-encoding"))) {
            if (value.len == 0)
                return fail(p, SH_EPARSE, 400, "Transfer-Encoding", "empty Transfer-Encoding");
            /* Repeated fields form one list (RFC 9110 5.3); we re-read all of them at the end,
             * so here we only note presence. */
            h->flags |= HTTP_F_HAS_TE;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Reads every Transfer-Encoding field as one list and decides the framing (RFC 9112 6.1). */
static int check_te(struct http_parser *p, const char *base)
{
    struct http_head *h = &p->head;
    struct te_state te = {0};

    for (uint32_t i = 0; i < h->nfields; i++) {
        struct http_field *f = &h->fields[i];
        struct slice name = {base + f->name.off, f->name.len};
        if (slice_eq_nocase(name, SLICE("transfer-encoding")))
            http__list_each((struct slice){base + f->value.off, f->value.len}, parse_te_elem, &te);
    }
    if (te.count == 0)
        return fail(p, SH_EPARSE, 400, "Transfer-Encoding", "empty Transfer-Encoding");
    if (h->kind == HTTP_RESPONSE) {
        /* Not chunked last: the body runs until close (RFC 9112 6.3 item 7). */
        h->body =
            te.chunked_at == te.count && !te.chunked_twice ? HTTP_BODY_CHUNKED : HTTP_BODY_EOF;
        return 0;
    }
    if (te.chunked_twice)
        return fail(p, SH_EPARSE, 400, "Transfer-Encoding", "chunked applied more than once");
    /* Without chunked last the length cannot be known: 400, even for a coding we do not know
     * (RFC 9112 6.3 item 4; vector te-unknown-coding-alone). */
    if (te.chunked_at != te.count)
        return fail(p, SH_EPARSE, 400, "Transfer-Encoding", "chunked is not the final coding");
    if (te.unknown)
        return fail(p, SH_ENOTSUP, 501, "Transfer-Encoding",
                    "transfer coding not supported (only chunked)");
    h->body = HTTP_BODY_CHUNKED;
    return 0;
}

/* The head is complete: decide framing and persistence. */
static int on_head_end(struct http_parser *p, const char *base)
{
    struct http_head *h = &p->head;
    int rc;

    if (h->flags & HTTP_F_HAS_TE) {
        if (h->flags & HTTP_F_HAS_CL)
            return fail(p, SH_EPARSE, 400, "Transfer-Encoding",
                        "both Content-Length and Transfer-Encoding");
        if (h->kind == HTTP_REQUEST && h->version_minor == 0)
            return fail(p, SH_EPARSE, 400, "Transfer-Encoding",
                        "Transfer-Encoding in an HTTP/1.0 request");
        rc = check_te(p, base);
        if (rc < 0) return rc;
    } else if (h->flags & HTTP_F_HAS_CL) {
        h->body = HTTP_BODY_LENGTH;
    } else {
        h->body = h->kind == HTTP_RESPONSE ? HTTP_BODY_EOF : HTTP_BODY_NONE;
    }

    if (h->kind == HTTP_REQUEST) {
        if (h->version_minor >= 1 && !(h->flags & HTTP_F_HAS_HOST))
            return fail(p, SH_EPARSE, 400, "Host", "missing Host in an HTTP/1.1 request");
    } else {
        uint16_t st = h->status;
        if (p->expect_no_body || (st >= 100 && st < 200) || st == 204 || st == 304 ||
            (p->req_connect && st >= 200 && st < 300))
            h->body = HTTP_BODY_NONE;
        if (st == 101) h->flags |= HTTP_F_UPGRADE;
    }
    if (h->body == HTTP_BODY_LENGTH && h->content_length == 0) h->body = HTTP_BODY_NONE;
    /* Checked once the body kind is final, so a HEAD response may announce any length, and
     * for responses too, as chunked and until-close bodies are (vector
     * response-length-over-max-body). */
    if (p->lim.max_body && h->body == HTTP_BODY_LENGTH && h->content_length > p->lim.max_body)
        return fail(p, SH_ETOOBIG, 413, "Content-Length", "body exceeds the limit");

    bool ka = h->version_minor >= 1
                  ? !(h->flags & HTTP_F_CONN_CLOSE)
                  : (h->flags & HTTP_F_CONN_KA) && !(h->flags & HTTP_F_CONN_CLOSE);
    if (h->body == HTTP_BODY_EOF) ka = false;
    if (ka) h->flags |= HTTP_F_KEEP_ALIVE;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Request and status lines
 * ------------------------------------------------------------------------------------------ */
static int parse_version(struct http_parser *p, const char *where)
{
    const char *v = p->ver;

    if (p->ver_len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
        v[7] < '0' || v[7] > '9')
        return fail(p, SH_EPARSE, 400, where, "malformed HTTP version");
    if (v[5] != '1') return fail(p, SH_ENOTSUP, 505, where, "HTTP major version not supported");
    p->head.version_minor = v[7] == '0' ? 0 : 1;
    return 0;
}

static int end_request_line(struct http_parser *p, const char *base)
{
    struct http_head *h = &p->head;
    struct slice t = {base + h->target.off, h->target.len};
    int rc = parse_version(p, "request-line");

    if (rc < 0) return rc;
    if (h->method == HTTP_M_CONNECT) {
        /* authority-form only: host:port, no scheme, no path */
        struct slice host;
        struct slice port = slice_split(t, ':', &host);
        (void)host;
        if (!port.ptr || port.len == 0 || t.ptr[0] == '/' || memchr(t.ptr, '/', t.len) ||
            !host_valid(t))
            return fail(p, SH_EPARSE, 400, "request-target", "CONNECT needs host:port");
        h->form = HTTP_FORM_AUTHORITY;
        h->host = h->target;
    } else if (t.len == 1 && t.ptr[0] == '*') {
        if (h->method != HTTP_M_OPTIONS)
            return fail(p, SH_EPARSE, 400, "request-target", "'*' is for OPTIONS only");
        h->form = HTTP_FORM_ASTERISK;
    } else if (t.ptr[0] == '/') {
        h->form = HTTP_FORM_ORIGIN;
    } else {
        /* absolute-form: scheme "://" authority [path]; the authority replaces Host. */
        size_t i = 0;
        while (i < t.len &&
               ((t.ptr[i] >= 'a' && t.ptr[i] <= 'z') || (t.ptr[i] >= 'A' && t.ptr[i] <= 'Z') ||
                (i > 0 && ((t.ptr[i] >= '0' && t.ptr[i] <= '9') || t.ptr[i] == '+' ||
                           t.ptr[i] == '-' || t.ptr[i] == '.'))))
            i++;
        if (i == 0 || i + 3 > t.len || memcmp(t.ptr + i, "://", 3) != 0)
            return fail(p, SH_EPARSE, 400, "request-target", "malformed request-target");
        size_t a = i + 3, e = a;
        while (e < t.len && t.ptr[e] != '/' && t.ptr[e] != '?' && t.ptr[e] != '#')
            e++;
        struct slice auth = {t.ptr + a, e - a};
        const char *at = memchr(auth.ptr, '@', auth.len);
        if (at) /* userinfo is deprecated and a classic confusion vector */
            return fail(p, SH_EPARSE, 400, "request-target", "userinfo in request-target");
        if (auth.len == 0 || !host_valid(auth))
            return fail(p, SH_EPARSE, 400, "request-target", "invalid authority");
        h->form = HTTP_FORM_ABSOLUTE;
        h->host = (struct http_span){h->target.off + (uint32_t)a, (uint32_t)auth.len};
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The machine
 * ------------------------------------------------------------------------------------------ */
#define FAIL(err, st, where, what)                                                                 \
    do {                                                                                           \
        rc = fail(p, (err), (st), (where), (what));                                                \
        goto out;                                                                                  \
    } while (0)

/* Line end inside the head: CR must be followed by LF; bare LF only when lenient, and never
 * in trailers, which belong to the chunked body (vector chunked-last-chunk-bare-lf-end). */
static inline bool lf_ok(const struct http_parser *p)
{
    return p->lim.lenient_lf && !p->is_trailer;
}

/* The end of a fast scan starting at data[i]: no further than one byte past <limit_pos> in
 * head offsets, so pos cannot overflow and the limit check after the scan fires. */
static inline size_t scan_end(const struct http_parser *p, size_t i, size_t len, uint64_t limit_pos)
{
    uint64_t room = limit_pos >= p->pos ? limit_pos - p->pos + 1 : 1;

    return len - i > room ? i + (size_t)room : len;
}

static int head_too_big(struct http_parser *p)
{
    return fail(p, SH_ETOOBIG, 431, p->is_trailer ? "trailers" : "head",
                "header section exceeds the limit");
}

int http_parser_feed(struct http_parser *p, const char *data, size_t len, size_t *used)
{
    const unsigned char *d = (const unsigned char *)data;
    /* base: where the head's first byte is, as if all head bytes were contiguous before data */
    const char *base = data - p->pos;
    size_t i = 0;
    int rc = HTTP_AGAIN;
    struct http_head *h = &p->head;

    if (p->state == S_ERROR) {
        *used = 0;
        return p->err;
    }
    while (i < len) {
        unsigned char c = d[i];

        switch ((enum state)p->state) {
        case S_START:
            if (c == '\r') {
                p->state = S_START_LF;
                i++;
                base++;
                continue;
            }
            if (c == '\n' && lf_ok(p)) {
                i++;
                base++;
                continue;
            }
            p->line_start = p->tok_start = 0;
            clear_head(h);
            if (h->kind == HTTP_REQUEST) {
                if (!is_c(c, C_TCHAR))
                    FAIL(SH_EPARSE, 400, "request-line", "invalid character in method");
                p->state = S_METHOD;
            } else {
                p->state = S_RVERSION;
            }
            continue; /* reprocess c in the new state */
        case S_START_LF:
            if (c != '\n') FAIL(SH_EPARSE, 400, "request-line", "bare CR before the request line");
            p->state = S_START;
            i++;
            base++;
            continue;

        case S_METHOD:
            if (c == ' ') {
                h->method_s = (struct http_span){0, p->pos};
                h->method = http_method_from((struct slice){base, p->pos});
                p->tok_start = p->pos + 1;
                p->state = S_TARGET;
            } else if (!is_c(c, C_TCHAR)) {
                FAIL(SH_EPARSE, 400, "request-line", "invalid character in method");
            } else if (p->pos >= p->lim.max_method) {
                FAIL(SH_ENOTSUP, 501, "request-line", "method too long");
            }
            break;
        case S_TARGET: {
            /* fast scan of target bytes */
            size_t j = i, end = scan_end(p, i, len, p->lim.max_request_line);
            while (j < end && is_c(d[j], C_TARGET))
                j++;
            p->pos += (uint32_t)(j - i);
            if (p->pos > p->lim.max_request_line)
                FAIL(SH_ETOOBIG, 414, "request-target", "request-target too long");
            i = j;
            if (i == len) continue;
            c = d[i];
            if (c != ' ') {
                if (c == '\r' || c == '\n')
                    FAIL(SH_EPARSE, 400, "request-line", "missing HTTP version");
                FAIL(SH_EPARSE, 400, "request-target", "invalid character in request-target");
            }
            if (p->pos == p->tok_start)
                FAIL(SH_EPARSE, 400, "request-line", "empty request-target");
            h->target = (struct http_span){p->tok_start, p->pos - p->tok_start};
            p->state = S_VERSION;
            break;
        }
        case S_VERSION:
            /* fast path: the usual "HTTP/1.x" in one go (the checks below still judge it) */
            if (p->ver_len == 0 && len - i >= 8 && memcmp(d + i, "HTTP/1.", 7) == 0 &&
                d[i + 7] >= '0' && d[i + 7] <= '9' && p->pos + 8 <= p->lim.max_request_line) {
                memcpy(p->ver, d + i, 8);
                p->ver_len = 8;
                p->pos += 8;
                i += 8;
                continue;
            }
            if (c == '\r') {
                p->state = S_RL_LF;
            } else if (c == '\n') {
                if (!lf_ok(p))
                    FAIL(SH_EPARSE, 400, "request-line", "bare LF ends the request line");
                p->pos++;
                i++;
                rc = end_request_line(p, base);
                if (rc < 0) goto out;
                rc = HTTP_AGAIN;
                p->line_start = p->pos;
                p->state = S_LINE_START;
                continue;
            } else if (p->ver_len >= 8) {
                FAIL(SH_EPARSE, 400, "request-line", "malformed HTTP version");
            } else {
                p->ver[p->ver_len++] = (char)c;
            }
            break;
        case S_RL_LF:
            if (c != '\n') FAIL(SH_EPARSE, 400, "request-line", "bare CR in the request line");
            p->pos++;
            i++;
            rc = end_request_line(p, base);
            if (rc < 0) goto out;
            rc = HTTP_AGAIN;
            p->line_start = p->pos;
            p->state = S_LINE_START;
            continue;

        case S_RVERSION:
            if (p->ver_len == 0 && len - i >= 8 && memcmp(d + i, "HTTP/1.", 7) == 0 &&
                d[i + 7] >= '0' && d[i + 7] <= '9' && p->pos + 8 <= p->lim.max_head) {
                memcpy(p->ver, d + i, 8);
                p->ver_len = 8;
                p->pos += 8;
                i += 8;
                continue;
            }
            if (c == ' ') {
                p->ver[p->ver_len] = '\0';
                rc = parse_version(p, "status-line");
                if (rc < 0) goto out;
                rc = HTTP_AGAIN;
                p->state = S_STATUS;
                p->hexdigits = 0;
            } else if (p->ver_len >= 8) {
                FAIL(SH_EPARSE, 400, "status-line", "malformed HTTP version");
            } else {
                p->ver[p->ver_len++] = (char)c;
            }
            break;
        case S_STATUS:
            if (c < '0' || c > '9')
                FAIL(SH_EPARSE, 400, "status-line", "status code is not three digits");
            h->status = (uint16_t)(h->status * 10 + (c - '0'));
            if (++p->hexdigits == 3) {
                if (h->status < 100) FAIL(SH_EPARSE, 400, "status-line", "status code below 100");
                p->state = S_STATUS_SP;
            }
            break;
        case S_STATUS_SP:
            if (c == ' ') {
                p->tok_start = p->pos + 1;
                p->state = S_REASON;
                break;
            }
            if (c == '\r' || c == '\n') { /* missing SP before an empty reason: accepted */
                p->tok_start = p->pos;
                p->state = S_REASON;
                continue;
            }
            FAIL(SH_EPARSE, 400, "status-line", "status code is not three digits");
        case S_REASON: {
            /* fast scan of the reason phrase, as far as the status-line limit allows */
            size_t j = i,
                   end = scan_end(p, i, len, (uint64_t)p->line_start + p->lim.max_request_line);
            while (j < end && is_c(d[j], C_VALUE))
                j++;
            p->pos += (uint32_t)(j - i);
            i = j;
            if (p->pos - p->line_start > p->lim.max_request_line)
                FAIL(SH_ETOOBIG, 400, "status-line", "status line too long");
            if (i == len) continue;
            c = d[i];
        }
            if (c == '\r' || c == '\n') {
                if (c == '\n' && !lf_ok(p))
                    FAIL(SH_EPARSE, 400, "status-line", "bare LF ends the status line");
                h->reason = (struct http_span){p->tok_start, p->pos - p->tok_start};
                if (c == '\r') {
                    p->state = S_FIELD_LF;  /* same "expect LF, then a field line" step */
                    p->line_start = p->pos; /* so the CR is not measured by max_field_line */
                    break;
                }
                p->pos++;
                i++;
                p->line_start = p->pos;
                p->state = S_LINE_START;
                continue;
            }
            if (!is_c(c, C_VALUE))
                FAIL(SH_EPARSE, 400, "status-line", "invalid character in reason phrase");
            if (p->pos - p->line_start >= p->lim.max_request_line)
                FAIL(SH_ETOOBIG, 400, "status-line", "status line too long");
            break;

        case S_LINE_START:
            if (c == '\r') {
                p->state = S_HEAD_LF;
                break;
            }
            if (c == '\n') {
                if (!lf_ok(p)) FAIL(SH_EPARSE, 400, "head", "bare LF as a line end");
                goto head_end;
            }
            if (c == ' ' || c == '\t') {
                if (h->nfields == 0 && !p->is_trailer && h->kind == HTTP_REQUEST)
                    FAIL(SH_EPARSE, 400, "head", "whitespace before the first field");
                FAIL(SH_EPARSE, 400, "head", "obsolete line folding");
            }
            if (!is_c(c, C_TCHAR)) {
                if (c == ':') FAIL(SH_EPARSE, 400, "head", "empty field name");
                FAIL(SH_EPARSE, 400, "head", "invalid character in field name");
            }
            if (!p->is_trailer && h->nfields >= p->lim.max_fields)
                FAIL(SH_ETOOBIG, 431, "head", "too many header fields");
            if (p->is_trailer && p->ntrailers >= p->lim.max_fields)
                FAIL(SH_ETOOBIG, 431, "trailers", "too many trailer fields");
            p->tok_start = p->pos;
            p->state = S_NAME;
            break;
        case S_NAME: {
            size_t j = i, end = scan_end(p, i, len, p->line_start + p->lim.max_field_line);
            while (j < end && is_c(d[j], C_TCHAR))
                j++;
            p->pos += (uint32_t)(j - i);
            i = j;
            if (p->pos - p->line_start > p->lim.max_field_line)
                FAIL(SH_ETOOBIG, 431, "head", "header field too long");
            if (p->pos > p->lim.max_head) goto too_big;
            if (i == len) continue;
            c = d[i];
            if (c != ':') {
                if (c == ' ' || c == '\t')
                    FAIL(SH_EPARSE, 400, "head", "whitespace between field name and colon");
                if (c == '\r' || c == '\n')
                    FAIL(SH_EPARSE, 400, "head", "field line without a colon");
                FAIL(SH_EPARSE, 400, "head", "invalid character in field name");
            }
            if (!p->is_trailer) {
                struct http_field *f = &h->fields[h->nfields];
                f->name = (struct http_span){p->tok_start, p->pos - p->tok_start};
            }
            p->state = S_VALUE_OWS;
            break;
        }
        case S_VALUE_OWS:
            if (c == ' ' || c == '\t') break;
            p->tok_start = p->value_end = p->pos;
            p->state = S_VALUE;
            continue;
        case S_VALUE: {
            size_t j = i, end = scan_end(p, i, len, p->line_start + p->lim.max_field_line);
            uint32_t start = p->pos;
            while (j < end && is_c(d[j], C_VALUE))
                j++;
            /* trailing blanks are trimmed: find the last non-blank of this stretch */
            for (size_t k = j; k > i; k--) {
                if (d[k - 1] != ' ' && d[k - 1] != '\t') {
                    p->value_end = start + (uint32_t)(k - i);
                    break;
                }
            }
            p->pos += (uint32_t)(j - i);
            i = j;
            if (p->pos - p->line_start > p->lim.max_field_line)
                FAIL(SH_ETOOBIG, 431, "head", "header field too long");
            if (p->pos > p->lim.max_head) goto too_big;
            if (i == len) continue;
            c = d[i];
            if (c != '\r' && c != '\n') {
                if (p->is_trailer)
                    FAIL(SH_EPARSE, 400, "trailers", "invalid character in a trailer value");
                struct http_field *f = &h->fields[h->nfields];
                rc = fail_field(p, SH_EPARSE, 400, f->name.off, f->name.len, base,
                                "invalid character in field value");
                goto out;
            }
            if (c == '\n' && !lf_ok(p)) FAIL(SH_EPARSE, 400, "head", "bare LF as a line end");
            if (!p->is_trailer) {
                struct http_field *f = &h->fields[h->nfields];
                f->value = (struct http_span){p->tok_start, p->value_end - p->tok_start};
                h->nfields++;
                rc = on_field(p, base, f);
                if (rc < 0) goto out;
                rc = HTTP_AGAIN;
            } else {
                p->ntrailers++;
            }
            if (c == '\r') {
                p->state = S_FIELD_LF;
                break;
            }
            p->pos++;
            i++;
            p->line_start = p->pos;
            p->state = S_LINE_START;
            continue;
        }
        case S_FIELD_LF:
            if (c != '\n') FAIL(SH_EPARSE, 400, "head", "bare CR in the head");
            p->pos++;
            i++;
            p->line_start = p->pos;
            p->state = S_LINE_START;
            continue;
        case S_HEAD_LF:
            if (c != '\n') FAIL(SH_EPARSE, 400, "head", "bare CR in the head");
            goto head_end;

        case S_BODY_LENGTH: {
            size_t n = len - i;
            if (n > p->remaining) n = (size_t)p->remaining;
            p->body = (struct slice){data + i, n};
            p->remaining -= n;
            i += n;
            p->body_seen += n;
            if (p->remaining == 0)
                p->state = S_DONE_PENDING; /* marker: done after this chunk is delivered */
            rc = HTTP_BODY;
            goto out;
        }
        case S_CHUNK_SIZE:
            if (is_c(c, C_HEX)) {
                unsigned v = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
                if (p->remaining > (UINT64_MAX >> 4))
                    FAIL(SH_ETOOBIG, 400, "chunk-size", "chunk size overflows");
                p->remaining = (p->remaining << 4) | v;
                if (p->hexdigits < UINT8_MAX) /* saturate: leading zeros are unbounded */
                    p->hexdigits++;
                break;
            }
            if (p->hexdigits == 0)
                FAIL(SH_EPARSE, 400, "chunk-size", "chunk size is not hexadecimal");
            if (c == ' ' || c == '\t') {
                p->state = S_CHUNK_BWS;
                break;
            }
            if (c == ';') {
                p->state = S_CHUNK_EXT;
                p->sub = X_NAME_START;
                break;
            }
            if (c == '\r') {
                p->state = S_CHUNK_LF;
                break;
            }
            FAIL(SH_EPARSE, 400, "chunk-size", "invalid character after chunk size");
        case S_CHUNK_BWS:
            if (c == ' ' || c == '\t') break;
            if (c == ';') {
                p->state = S_CHUNK_EXT;
                p->sub = X_NAME_START;
                break;
            }
            FAIL(SH_EPARSE, 400, "chunk-size", "whitespace after chunk size");
        case S_CHUNK_EXT:
            if (++p->ext_len > p->lim.max_chunk_ext)
                FAIL(SH_ETOOBIG, 400, "chunk-ext", "chunk extensions too long");
            switch ((enum ext_state)p->sub) {
            case X_NAME_START:
                if (c == ' ' || c == '\t') break;
                if (!is_c(c, C_TCHAR))
                    FAIL(SH_EPARSE, 400, "chunk-ext", "chunk extension without a name");
                p->sub = X_NAME;
                break;
            case X_NAME:
                if (is_c(c, C_TCHAR)) break;
                p->sub = X_AFTER_NAME;
                /* fall through */
            case X_AFTER_NAME:
                if (c == ' ' || c == '\t') break;
                if (c == '=') {
                    p->sub = X_VALUE_START;
                    break;
                }
                if (c == ';') {
                    p->sub = X_NAME_START;
                    break;
                }
                if (c == '\r') {
                    p->state = S_CHUNK_LF;
                    break;
                }
                FAIL(SH_EPARSE, 400, "chunk-ext", "invalid character in chunk extension");
            case X_VALUE_START:
                if (c == ' ' || c == '\t') break;
                if (c == '"') {
                    p->sub = X_QUOTED;
                    break;
                }
                if (!is_c(c, C_TCHAR))
                    FAIL(SH_EPARSE, 400, "chunk-ext", "invalid chunk extension value");
                p->sub = X_TOKEN;
                break;
            case X_TOKEN:
                if (is_c(c, C_TCHAR)) break;
                p->sub = X_AFTER_VALUE;
                /* fall through */
            case X_AFTER_VALUE:
                if (c == ' ' || c == '\t') break;
                if (c == ';') {
                    p->sub = X_NAME_START;
                    break;
                }
                if (c == '\r') {
                    p->state = S_CHUNK_LF;
                    break;
                }
                FAIL(SH_EPARSE, 400, "chunk-ext", "invalid character in chunk extension");
            case X_QUOTED:
                if (c == '"') {
                    p->sub = X_AFTER_VALUE;
                    break;
                }
                if (c == '\\') {
                    p->sub = X_QUOTED_ESC;
                    break;
                }
                if (!is_c(c, C_QDTEXT))
                    FAIL(SH_EPARSE, 400, "chunk-ext", "invalid character in quoted string");
                break;
            case X_QUOTED_ESC:
                if (c != '\t' && c != ' ' && !(c >= 0x21 && c <= 0x7e) && c < 0x80)
                    FAIL(SH_EPARSE, 400, "chunk-ext", "invalid escape in quoted string");
                p->sub = X_QUOTED;
                break;
            }
            break;
        case S_CHUNK_LF:
            if (c != '\n') FAIL(SH_EPARSE, 400, "chunk-size", "chunk line not ended by CRLF");
            i++;
            p->ext_len = 0;
            if (p->remaining == 0) {
                /* last chunk: trailers follow, parsed like fields but never stored */
                p->is_trailer = true;
                p->pos = 0;
                p->line_start = 0;
                base = data + i;
                p->state = S_LINE_START;
                continue;
            }
            /* body_seen <= max_body here; a sum could wrap for a size near 2^64 (fuzz) */
            if (p->lim.max_body && p->remaining > p->lim.max_body - p->body_seen)
                FAIL(SH_ETOOBIG, 413, "body", "body exceeds the limit");
            p->state = S_CHUNK_DATA;
            continue;
        case S_CHUNK_DATA: {
            size_t n = len - i;
            if (n > p->remaining) n = (size_t)p->remaining;
            p->body = (struct slice){data + i, n};
            p->remaining -= n;
            p->body_seen += n;
            i += n;
            if (p->remaining == 0) p->state = S_CHUNK_DATA_CR;
            rc = HTTP_BODY;
            goto out;
        }
        case S_CHUNK_DATA_CR:
            if (c != '\r') FAIL(SH_EPARSE, 400, "chunk-data", "chunk data not followed by CRLF");
            p->state = S_CHUNK_DATA_LF;
            break;
        case S_CHUNK_DATA_LF:
            if (c != '\n') FAIL(SH_EPARSE, 400, "chunk-data", "chunk data not followed by CRLF");
            i++;
            p->remaining = 0;
            p->hexdigits = 0;
            p->state = S_CHUNK_SIZE;
            continue;
        case S_BODY_EOF: {
            /* Capped like the other bodies: the bytes up to the limit are delivered, the
             * first byte past it fails, at any split (vector response-body-eof-over-limit). */
            size_t n = len - i;
            if (p->lim.max_body) {
                if (p->body_seen >= p->lim.max_body)
                    FAIL(SH_ETOOBIG, 413, "body", "body exceeds the limit");
                n = (size_t)SH_MIN((uint64_t)n, p->lim.max_body - p->body_seen);
            }
            p->body = (struct slice){data + i, n};
            p->body_seen += n;
            i += n;
            rc = HTTP_BODY;
            goto out;
        }
        case S_DONE_PENDING:
            message_done(p);
            rc = HTTP_DONE;
            goto out;
        case S_ERROR:
        default:
            rc = p->err;
            goto out;
        }
        /* the byte was consumed as part of the head */
        i++;
        if (p->state < S_BODY_LENGTH) {
            p->pos++;
            if (p->pos > p->lim.max_head) goto too_big;
            /* Line limits count the line without its end, so CRLF and a lenient LF agree: the
             * states after a CR (S_RL_LF, S_FIELD_LF) are not checked (vectors
             * request-line-at-limit, field-line-at-limit). */
            if (p->state == S_TARGET || p->state == S_METHOD || p->state == S_VERSION) {
                if (p->pos > p->lim.max_request_line) {
                    rc = fail(p, SH_ETOOBIG, p->state == S_METHOD ? 501 : 414, "request-line",
                              "request line too long");
                    goto out;
                }
            } else if (p->state >= S_LINE_START && p->state != S_FIELD_LF &&
                       p->pos - p->line_start > p->lim.max_field_line) {
                rc = fail(p, SH_ETOOBIG, 431, p->is_trailer ? "trailers" : "head",
                          "header field too long");
                goto out;
            }
        }
        continue;

    head_end:
        /* c is the LF ending the head (or the trailers); it counts (vector head-over-limit-431) */
        i++;
        p->pos++;
        if (p->pos > p->lim.max_head) /* the final LF counts too (fuzz: head of max_head + 1) */
            goto too_big;
        if (p->is_trailer) {
            message_done(p);
            rc = HTTP_DONE;
            goto out;
        }
        h->base = base;
        h->len = p->pos;
        rc = on_head_end(p, base);
        if (rc < 0) goto out;
        switch (h->body) {
        case HTTP_BODY_NONE:
            p->state = S_DONE_PENDING; /* DONE on the next call */
            break;
        case HTTP_BODY_LENGTH:
            p->remaining = h->content_length;
            p->state = S_BODY_LENGTH;
            break;
        case HTTP_BODY_CHUNKED:
            p->remaining = 0;
            p->hexdigits = 0;
            p->state = S_CHUNK_SIZE;
            break;
        case HTTP_BODY_EOF:
            p->state = S_BODY_EOF;
            break;
        }
        rc = HTTP_HEAD;
        goto out;
    too_big:
        rc = head_too_big(p);
        goto out;
    }
out:
    *used = i;
    if (rc == HTTP_AGAIN && p->state == S_DONE_PENDING) {
        /* A body-less message or a finished Content-Length body: report DONE now (no input
         * is consumed by that report). */
        message_done(p);
        rc = HTTP_DONE;
    }
    return rc;
}

int http_parser_finish(struct http_parser *p)
{
    if (p->state == S_ERROR) return p->err;
    if (p->state == S_BODY_EOF) {
        message_done(p);
        return HTTP_DONE;
    }
    if (p->state == S_DONE_PENDING) {
        message_done(p);
        return HTTP_DONE;
    }
    if (p->state == S_START && p->pos == 0) return 0;
    return fail(p, SH_EEOF, 400, p->state >= S_BODY_LENGTH ? "body" : "head",
                "connection closed in the middle of a message");
}
