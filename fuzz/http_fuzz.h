/* SPDX-License-Identifier: MIT */
/* http_fuzz.h: the harness shared by the HTTP parser fuzz targets (fuzz_http_*.c).
 *
 * Each target decodes two option bytes and hands the rest to http_fuzz_run(), which feeds the
 * input to two parsers, one in a single call and one in small steps, checks every promise of
 * the parser contract in http.h after every call, and then checks that both parsers saw the
 * same message sequence. Checks use FUZZ_CHECK, which aborts in every build type (assert()
 * would vanish under NDEBUG, and the replay build is a release build).
 *
 * Option byte (data[0]):
 *   bit 0      lenient_lf
 *   bit 1      small limits; bits 6-7 pick one of four limit profiles
 *   bits 2-3   response parsers: method of the request answered first (GET, HEAD, CONNECT,
 *              none set); the chunked target uses bit 2 to pick a response head instead
 *   bits 4-5   response parsers: method set after each final response
 * Step byte (data[1]):
 *   bits 0-5   step - 1 (1..64 bytes per feed)
 *   bits 6-7   pattern: constant, alternate 1/step, cycle 1..step, pseudo-random 1..step
 *
 * Deterministic, no I/O except the message printed before an abort, no state kept between
 * runs; every parser is released and sh_alloc_live() must be back to its starting value.
 * Included by one .c file per target; everything here is static. */
#ifndef SHOAL_FUZZ_HTTP_FUZZ_H
#define SHOAL_FUZZ_HTTP_FUZZ_H

#include "http/http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: parser contract violated: %s\n", __FILE__, __LINE__,      \
                    #cond);                                                                    \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

struct fuzz_opts {
    struct http_limits lim;
    enum http_kind kind;
    enum http_method first_method, next_method; /* responses; HTTP_M_OTHER = none set */
    uint8_t step_byte;
};

/* What one parser saw. Two runs over the same bytes must agree on all of it. */
struct fuzz_run {
    uint64_t verdict_hash; /* HEAD (with its head), DONE and errors; AGAIN skipped, BODY runs collapsed */
    uint32_t nverdicts;
    uint64_t body_bytes;
    uint64_t body_hash; /* the input offset of every body byte, in order */
    int last_rc;
    int status;
    int finish_rc;
    size_t consumed;
};

static const struct http_limits fuzz_small_limits[4] = {
    {.max_request_line = 16, .max_field_line = 16, .max_head = 64, .max_fields = 2,
     .max_chunk_ext = 4, .max_method = 4, .max_body = 8},
    {.max_request_line = 64, .max_field_line = 64, .max_head = 256, .max_fields = 8,
     .max_chunk_ext = 16, .max_method = 8, .max_body = 100},
    {.max_request_line = 8192, .max_field_line = 32, .max_head = 128, .max_fields = 100,
     .max_chunk_ext = 0, .max_method = 32, .max_body = 0},
    {.max_request_line = 1, .max_field_line = 1, .max_head = 1, .max_fields = 0,
     .max_chunk_ext = 1, .max_method = 1, .max_body = 1},
};

static const enum http_method fuzz_methods[4] = {HTTP_M_GET, HTTP_M_HEAD, HTTP_M_CONNECT,
                                                  HTTP_M_OTHER};

static struct fuzz_opts fuzz_opts_decode(enum http_kind kind, uint8_t opt, uint8_t step)
{
    struct fuzz_opts o = {.lim = HTTP_LIMITS_DEFAULT, .kind = kind, .step_byte = step};

    if (opt & 2)
        o.lim = fuzz_small_limits[opt >> 6];
    o.lim.lenient_lf = (opt & 1) != 0;
    o.first_method = fuzz_methods[(opt >> 2) & 3];
    o.next_method = fuzz_methods[(opt >> 4) & 3];
    return o;
}

static uint64_t fuzz_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15u + (h << 6) + (h >> 2);
    return h * 0x100000001b3u;
}

/* Bytes for the k-th feed (k from 0); 0 in the step byte means "all at once". */
static size_t fuzz_step(uint8_t step_byte, size_t k, uint32_t *rng)
{
    size_t step = (size_t)(step_byte & 63) + 1;

    switch (step_byte >> 6) {
    case 0:
        return step;
    case 1:
        return k % 2 ? 1 : step;
    case 2:
        return k % step + 1;
    default:
        *rng = *rng * 1103515245u + 12345u;
        return (size_t)(*rng >> 16) % step + 1;
    }
}

static bool fuzz_span_in(const struct http_head *h, struct http_span s)
{
    return (uint64_t)s.off + s.len <= h->len;
}

static bool fuzz_is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Everything HTTP_HEAD promises, checked against the bytes the parser was fed. */
static void fuzz_check_head(const struct http_parser *p, const char *in, size_t off, size_t used,
                            enum http_method req_method)
{
    const struct http_head *h = &p->head;

    FUZZ_CHECK(h->base != NULL);
    FUZZ_CHECK(h->base >= in && h->base + h->len == in + off + used); /* used ends the head */
    FUZZ_CHECK(h->len >= 2 && h->base[h->len - 1] == '\n');
    FUZZ_CHECK(h->len <= p->lim.max_head);
    FUZZ_CHECK(h->nfields <= p->lim.max_fields && h->nfields <= p->cap_fields);
    FUZZ_CHECK(fuzz_span_in(h, h->method_s) && fuzz_span_in(h, h->target));
    FUZZ_CHECK(fuzz_span_in(h, h->reason) && fuzz_span_in(h, h->host));
    for (uint32_t i = 0; i < h->nfields; i++) {
        struct slice name = http_field_name(h, i), value = http_field_value(h, i);
        FUZZ_CHECK(fuzz_span_in(h, h->fields[i].name) && fuzz_span_in(h, h->fields[i].value));
        FUZZ_CHECK(name.len > 0 && h->fields[i].value.off > h->fields[i].name.off);
        FUZZ_CHECK((uint64_t)h->fields[i].value.off + h->fields[i].value.len -
                       h->fields[i].name.off <= p->lim.max_field_line);
        for (size_t j = 0; j < name.len; j++)
            FUZZ_CHECK(fuzz_is_tchar((unsigned char)name.ptr[j]));
        for (size_t j = 0; j < value.len; j++)
            FUZZ_CHECK(value.ptr[j] != '\r' && value.ptr[j] != '\n' && value.ptr[j] != '\0');
        if (value.len) {
            FUZZ_CHECK(value.ptr[0] != ' ' && value.ptr[0] != '\t');
            FUZZ_CHECK(value.ptr[value.len - 1] != ' ' && value.ptr[value.len - 1] != '\t');
        }
        /* name ":" OWS value OWS line-end, re-read from the bytes themselves */
        FUZZ_CHECK(name.ptr[name.len] == ':');
        for (const char *q = name.ptr + name.len + 1; q < value.ptr; q++)
            FUZZ_CHECK(*q == ' ' || *q == '\t');
        for (const char *q = value.ptr + value.len; *q != '\r' && *q != '\n'; q++)
            FUZZ_CHECK((*q == ' ' || *q == '\t') && q < h->base + h->len);
    }
    FUZZ_CHECK(h->version_minor <= 1);
    if (h->body == HTTP_BODY_LENGTH)
        FUZZ_CHECK(h->content_length > 0 && (h->flags & HTTP_F_HAS_CL));
    if (h->body == HTTP_BODY_EOF)
        FUZZ_CHECK(!(h->flags & HTTP_F_KEEP_ALIVE));
    if (h->kind == HTTP_REQUEST) {
        struct slice m = http_head_method(h);
        FUZZ_CHECK(h->method_s.off == 0 && m.len > 0 && m.len <= p->lim.max_method);
        FUZZ_CHECK(h->method == http_method_from(m));
        FUZZ_CHECK(h->target.len > 0 && h->target.off > h->method_s.len);
        FUZZ_CHECK(m.ptr[m.len] == ' ' && h->base[h->target.off - 1] == ' ');
        FUZZ_CHECK(h->base[h->target.off + h->target.len] == ' ');
        if (h->form == HTTP_FORM_ORIGIN && (h->flags & HTTP_F_HAS_HOST)) {
            struct slice host;
            FUZZ_CHECK(http_head_get(h, SLICE("host"), &host));
            FUZZ_CHECK(slice_eq(host, http_head_host(h)) && host.ptr == http_head_host(h).ptr);
        }
        if (h->form == HTTP_FORM_ABSOLUTE || h->form == HTTP_FORM_AUTHORITY)
            FUZZ_CHECK(h->host.off >= h->target.off &&
                       h->host.off + h->host.len <= h->target.off + h->target.len);
        /* the request line without its line end fits max_request_line */
        FUZZ_CHECK((uint64_t)h->target.off + h->target.len + 9 <= p->lim.max_request_line);
        FUZZ_CHECK(h->body != HTTP_BODY_EOF);
        FUZZ_CHECK(!((h->flags & HTTP_F_HAS_TE) && (h->flags & HTTP_F_HAS_CL)));
        if (h->version_minor == 1)
            FUZZ_CHECK(h->flags & HTTP_F_HAS_HOST);
        if (p->lim.max_body && h->body == HTTP_BODY_LENGTH)
            FUZZ_CHECK(h->content_length <= p->lim.max_body);
    } else {
        FUZZ_CHECK(h->status >= 100 && h->status <= 999);
        FUZZ_CHECK((uint64_t)h->reason.off + h->reason.len <= p->lim.max_request_line);
        FUZZ_CHECK(memcmp(h->base, "HTTP/", 5) == 0);
        FUZZ_CHECK(h->base[h->reason.off + h->reason.len] == '\r' ||
                   h->base[h->reason.off + h->reason.len] == '\n');
        if (req_method == HTTP_M_HEAD || h->status < 200 || h->status == 204 ||
            h->status == 304 || (req_method == HTTP_M_CONNECT && h->status < 300))
            FUZZ_CHECK(h->body == HTTP_BODY_NONE);
    }
}

static bool fuzz_status_ok(enum http_kind kind, int err, int status)
{
    static const int req_status[] = {400, 413, 414, 431, 501, 505};

    if (err != SH_EPARSE && err != SH_ETOOBIG && err != SH_ENOTSUP && err != SH_EEOF)
        return false;
    if (kind == HTTP_RESPONSE)
        return status == 502;
    for (size_t i = 0; i < SH_ARRAY_LEN(req_status); i++) {
        if (req_status[i] == status)
            return true;
    }
    return false;
}

/* Feeds in[0..len) to a fresh parser in steps (step_byte) or all at once (whole). */
static void fuzz_run_one(const struct fuzz_opts *o, const char *in, size_t len, bool whole,
                         struct fuzz_run *r)
{
    struct http_parser p;
    enum http_method req_method = o->kind == HTTP_RESPONSE ? o->first_method : HTTP_M_OTHER;
    enum http_body_kind msg_body = HTTP_BODY_NONE;
    uint64_t msg_cl = 0, msg_bytes = 0;
    uint16_t msg_status = 0;
    bool in_message = false, last_was_body = false;
    uint32_t rng = o->step_byte;
    size_t off = 0, k = 0, zero_runs = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    if (http_parser_init(&p, o->kind, &o->lim) < 0) {
        r->last_rc = SH_ENOMEM;
        return;
    }
    if (o->kind == HTTP_RESPONSE && req_method != HTTP_M_OTHER)
        http_parser_set_request_method(&p, req_method);
    for (;;) {
        size_t n = len - off, used = (size_t)-1;

        if (!whole) {
            size_t step = fuzz_step(o->step_byte, k++, &rng); /* SH_MIN evaluates twice */
            n = SH_MIN(step, n);
        }

        rc = http_parser_feed(&p, in + off, n, &used);
        FUZZ_CHECK(used <= n);
        if (rc != HTTP_BODY && rc != HTTP_AGAIN)
            last_was_body = false;
        switch (rc) {
        case HTTP_AGAIN:
            FUZZ_CHECK(used == n);
            break;
        case HTTP_HEAD:
            FUZZ_CHECK(!in_message && used > 0);
            fuzz_check_head(&p, in, off, used, req_method);
            in_message = true;
            msg_body = p.head.body;
            msg_cl = p.head.content_length;
            msg_status = p.head.status;
            msg_bytes = 0;
            r->verdict_hash = fuzz_mix(r->verdict_hash, HTTP_HEAD);
            r->verdict_hash = fuzz_mix(r->verdict_hash, (uint64_t)(p.head.base - in));
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.len);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.nfields);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.flags);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.body);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.content_length);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.method);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.status);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.form);
            r->verdict_hash = fuzz_mix(r->verdict_hash, p.head.version_minor);
            r->nverdicts++;
            break;
        case HTTP_BODY:
            FUZZ_CHECK(in_message && msg_body != HTTP_BODY_NONE);
            FUZZ_CHECK(p.body.len > 0 && p.body.ptr >= in + off);
            FUZZ_CHECK(p.body.ptr + p.body.len == in + off + used); /* used ends right after it */
            for (size_t j = 0; j < p.body.len; j++)
                r->body_hash = fuzz_mix(r->body_hash, (uint64_t)(p.body.ptr + j - in));
            r->body_bytes += p.body.len;
            msg_bytes += p.body.len;
            if (msg_body == HTTP_BODY_LENGTH)
                FUZZ_CHECK(msg_bytes <= msg_cl);
            if (o->lim.max_body && msg_body == HTTP_BODY_CHUNKED)
                FUZZ_CHECK(msg_bytes <= o->lim.max_body);
            if (!last_was_body) {
                r->verdict_hash = fuzz_mix(r->verdict_hash, HTTP_BODY);
                r->nverdicts++;
            }
            last_was_body = true;
            break;
        case HTTP_DONE:
            FUZZ_CHECK(in_message && http_parser_is_idle(&p));
            if (msg_body == HTTP_BODY_LENGTH)
                FUZZ_CHECK(msg_bytes == msg_cl);
            if (msg_body == HTTP_BODY_NONE)
                FUZZ_CHECK(msg_bytes == 0);
            in_message = false;
            r->verdict_hash = fuzz_mix(r->verdict_hash, HTTP_DONE);
            r->nverdicts++;
            if (o->kind == HTTP_RESPONSE && msg_status >= 200) {
                req_method = o->next_method;
                if (req_method != HTTP_M_OTHER)
                    http_parser_set_request_method(&p, req_method);
            }
            break;
        default: {
            size_t used2 = (size_t)-1;
            FUZZ_CHECK(rc < 0);
            FUZZ_CHECK(fuzz_status_ok(o->kind, rc, p.status) && rc != SH_EEOF);
            FUZZ_CHECK(p.diag.what[0] != '\0');
            /* errors are sticky and consume nothing */
            FUZZ_CHECK(http_parser_feed(&p, in, len ? 1 : 0, &used2) == rc && used2 == 0);
            r->verdict_hash = fuzz_mix(r->verdict_hash, (uint64_t)(int64_t)rc);
            r->verdict_hash = fuzz_mix(r->verdict_hash, (uint64_t)p.status);
            r->nverdicts++;
            break;
        }
        }
        off += used;
        if (rc < 0)
            break;
        /* A DONE may consume nothing; two calls in a row without progress would spin. */
        zero_runs = used == 0 && rc != HTTP_AGAIN ? zero_runs + 1 : 0;
        FUZZ_CHECK(zero_runs < 2);
        if (rc == HTTP_AGAIN && off == len)
            break;
    }
    r->last_rc = rc;
    r->status = rc < 0 ? p.status : 0;
    r->consumed = off;
    r->finish_rc = http_parser_finish(&p);
    if (rc < 0) {
        FUZZ_CHECK(r->finish_rc == rc);
    } else if (r->finish_rc == HTTP_DONE) {
        /* only a body read until close ends at EOF */
        FUZZ_CHECK(in_message && msg_body == HTTP_BODY_EOF && http_parser_is_idle(&p));
        FUZZ_CHECK(http_parser_finish(&p) == 0);
    } else if (r->finish_rc == 0) {
        FUZZ_CHECK(!in_message && http_parser_is_idle(&p));
    } else {
        FUZZ_CHECK(r->finish_rc == SH_EEOF && fuzz_status_ok(o->kind, SH_EEOF, p.status));
        FUZZ_CHECK(http_parser_finish(&p) == SH_EEOF);
    }
    http_parser_release(&p);
    http_parser_release(&p); /* idempotent */
}

/* The whole differential: one feed versus the stepped feeds must agree on everything. */
static void fuzz_http_run(const struct fuzz_opts *o, const char *in, size_t len)
{
    long live = sh_alloc_live();
    struct fuzz_run whole, stepped;

    fuzz_run_one(o, in, len, true, &whole);
    fuzz_run_one(o, in, len, false, &stepped);
    FUZZ_CHECK(whole.verdict_hash == stepped.verdict_hash);
    FUZZ_CHECK(whole.nverdicts == stepped.nverdicts);
    FUZZ_CHECK(whole.body_bytes == stepped.body_bytes);
    FUZZ_CHECK(whole.body_hash == stepped.body_hash);
    FUZZ_CHECK(whole.last_rc == stepped.last_rc && whole.status == stepped.status);
    FUZZ_CHECK(whole.finish_rc == stepped.finish_rc);
    /* where *used ends on an error is not part of the contract */
    FUZZ_CHECK(whole.last_rc < 0 || whole.consumed == stepped.consumed);
    FUZZ_CHECK(sh_alloc_live() == live);
}

#endif
