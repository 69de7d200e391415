/* SPDX-License-Identifier: MIT */
/* span_pack.c: a span's stored form (observe_int.h), the hex forms of ids, and the batch that
 * decoders fill. A packed span is what the store buffers between flushes and keeps in a row:
 * one byte string, read back without copying. */
#include "observe/observe.h"
#include "observe/observe_int.h"

#include <string.h>

static void put_u16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_append(b, x, 2);
}

static void put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    buf_append(b, x, 8);
}

static void put_str(struct buf *b, struct slice s)
{
    if (s.len > UINT32_MAX) {
        if (!b->err) b->err = SH_ETOOBIG;
        return;
    }
    put_u32(b, (uint32_t)s.len);
    if (s.len) buf_append(b, s.ptr, s.len);
}

int obs__span_pack(struct buf *b, const struct trace_span *s)
{
    uint8_t head = OBS_PACK_VERSION;
    uint8_t flags =
        (uint8_t)((s->is_error ? 1u : 0u) | (s->debug ? 2u : 0u) | (s->shared ? 4u : 0u));
    size_t tags = SH_MIN(s->tag_count, (size_t)TRACE_SPAN_MAX_TAGS);
    size_t anns = SH_MIN(s->annotation_count, (size_t)TRACE_SPAN_MAX_ANNOTATIONS);

    buf_append(b, &head, 1);
    buf_append(b, s->trace_id, TRACE_ID_BYTES);
    buf_append(b, s->span_id, TRACE_SPAN_ID_BYTES);
    buf_append(b, s->parent_id, TRACE_SPAN_ID_BYTES);
    buf_appendc(b, (char)s->kind);
    buf_appendc(b, (char)flags);
    put_u64(b, s->timestamp_us);
    put_u64(b, s->duration_us);
    put_u16(b, s->local.port);
    put_u16(b, s->remote.port);
    put_str(b, s->name);
    put_str(b, s->local.service);
    put_str(b, s->local.ip);
    put_str(b, s->remote.service);
    put_str(b, s->remote.ip);
    put_u16(b, (uint16_t)tags);
    for (size_t i = 0; i < tags; i++) {
        put_str(b, s->tags[i].key);
        put_str(b, s->tags[i].value);
    }
    put_u16(b, (uint16_t)anns);
    for (size_t i = 0; i < anns; i++) {
        put_u64(b, s->annotations[i].timestamp_us);
        put_str(b, s->annotations[i].value);
    }
    return b->err;
}

size_t obs__span_packed_len(const struct trace_span *s)
{
    size_t tags = SH_MIN(s->tag_count, (size_t)TRACE_SPAN_MAX_TAGS);
    size_t anns = SH_MIN(s->annotation_count, (size_t)TRACE_SPAN_MAX_ANNOTATIONS);
    size_t n = 1 + TRACE_ID_BYTES + 2 * TRACE_SPAN_ID_BYTES + 2 + 16 + 4 + 5 * 4 + 2 + 2;

    n += s->name.len + s->local.service.len + s->local.ip.len + s->remote.service.len +
         s->remote.ip.len;
    for (size_t i = 0; i < tags; i++)
        n += 8 + s->tags[i].key.len + s->tags[i].value.len;
    for (size_t i = 0; i < anns; i++)
        n += 12 + s->annotations[i].value.len;
    return n;
}

struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

static uint64_t get_n(struct rd *r, int n)
{
    uint64_t v = 0;

    if (r->bad || r->len - r->off < (size_t)n) {
        r->bad = true;
        return 0;
    }
    for (int i = 0; i < n; i++)
        v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += (size_t)n;
    return v;
}

static void get_bytes(struct rd *r, uint8_t *out, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->off, n);
    r->off += n;
}

static struct slice get_str(struct rd *r)
{
    size_t n = (size_t)get_n(r, 4);

    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return SLICE_NULL;
    }
    struct slice s = {(const char *)r->p + r->off, n};
    r->off += n;
    return s;
}

int obs__span_unpack(const uint8_t *p, size_t len, struct trace_span *out)
{
    struct rd r = {.p = p, .len = len};
    uint64_t flags, kind;

    memset(out, 0, sizeof(*out));
    if (get_n(&r, 1) != OBS_PACK_VERSION) return SH_ECORRUPT;
    get_bytes(&r, out->trace_id, TRACE_ID_BYTES);
    get_bytes(&r, out->span_id, TRACE_SPAN_ID_BYTES);
    get_bytes(&r, out->parent_id, TRACE_SPAN_ID_BYTES);
    kind = get_n(&r, 1);
    flags = get_n(&r, 1);
    out->kind = kind <= TRACE_KIND_CONSUMER ? (enum trace_span_kind)kind : TRACE_KIND_NONE;
    out->is_error = flags & 1u;
    out->debug = flags & 2u;
    out->shared = flags & 4u;
    out->timestamp_us = get_n(&r, 8);
    out->duration_us = get_n(&r, 8);
    out->local.port = (uint16_t)get_n(&r, 2);
    out->remote.port = (uint16_t)get_n(&r, 2);
    out->name = get_str(&r);
    out->local.service = get_str(&r);
    out->local.ip = get_str(&r);
    out->remote.service = get_str(&r);
    out->remote.ip = get_str(&r);
    out->tag_count = (size_t)get_n(&r, 2);
    if (out->tag_count > TRACE_SPAN_MAX_TAGS) return SH_ECORRUPT;
    for (size_t i = 0; i < out->tag_count; i++) {
        out->tags[i].key = get_str(&r);
        out->tags[i].value = get_str(&r);
    }
    out->annotation_count = (size_t)get_n(&r, 2);
    if (out->annotation_count > TRACE_SPAN_MAX_ANNOTATIONS) return SH_ECORRUPT;
    for (size_t i = 0; i < out->annotation_count; i++) {
        out->annotations[i].timestamp_us = get_n(&r, 8);
        out->annotations[i].value = get_str(&r);
    }
    if (r.bad || r.off != len) {
        memset(out, 0, sizeof(*out));
        return SH_ECORRUPT;
    }
    return 0;
}

void obs__hex(const uint8_t *id, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int obs__unhex(struct slice hex, uint8_t *out, size_t n)
{
    if (hex.len != 2 * n) return SH_EPARSE;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex.ptr[2 * i]), lo = hexval(hex.ptr[2 * i + 1]);
        if (hi < 0 || lo < 0) return SH_EPARSE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

bool obs__is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

void obs_trace_id_hex(const uint8_t id[TRACE_ID_BYTES], char out[33])
{
    if (obs__is_zero(id, 8))
        obs__hex(id + 8, 8, out);
    else
        obs__hex(id, TRACE_ID_BYTES, out);
}

int obs_trace_id_parse(struct slice hex, uint8_t out[TRACE_ID_BYTES])
{
    memset(out, 0, TRACE_ID_BYTES);
    if (hex.len == 16) return obs__unhex(hex, out + 8, 8);
    if (hex.len == 32) return obs__unhex(hex, out, 16);
    return SH_EPARSE;
}

void obs__limits_default(const struct obs_limits *in, struct obs_limits *out)
{
    *out = in ? *in : (struct obs_limits){0};
    if (!out->max_spans) out->max_spans = 10000;
    if (!out->max_string_bytes) out->max_string_bytes = 16 * 1024;
    if (!out->max_depth) out->max_depth = 8;
}

struct trace_span *obs__batch_push(struct obs_batch *b, size_t max_spans, int *rc)
{
    if (b->count >= max_spans) {
        *rc = SH_ETOOBIG;
        return NULL;
    }
    if (b->count == b->cap) {
        if ((*rc = sh_array_reserve(&b->spans, &b->cap, b->count + 1, sizeof(*b->spans))) < 0)
            return NULL;
    }
    if (!b->arena.block_bytes) arena_init(&b->arena, 16 * 1024, 0);
    struct trace_span *s = &b->spans[b->count++];
    memset(s, 0, sizeof(*s));
    *rc = 0;
    return s;
}

const char *obs__batch_str(struct obs_batch *b, const char *s, size_t n)
{
    if (!b->arena.block_bytes) arena_init(&b->arena, 16 * 1024, 0);
    if (n == 0) return "";
    return arena_strndup(&b->arena, s, n);
}

void obs_batch_release(struct obs_batch *b)
{
    sh_free(b->spans);
    arena_release(&b->arena);
    memset(b, 0, sizeof(*b));
}
