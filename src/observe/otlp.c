/* SPDX-License-Identifier: MIT */
/* otlp.c: OTLP/HTTP traces (ExportTraceServiceRequest) as JSON and as protobuf, mapped onto
 * Zipkin's span model as observe.h says. The protobuf reader is ours and minimal: it knows
 * the fields of opentelemetry-proto's trace.proto, common.proto and resource.proto that the
 * mapping uses and skips every other field by its wire type; groups (wire types 3, 4) and
 * anything past the end of a message are refused. Field numbers:
 *   ExportTraceServiceRequest: 1 resource_spans
 *   ResourceSpans: 1 resource, 2 scope_spans          Resource: 1 attributes
 *   ScopeSpans: 1 scope, 2 spans                      InstrumentationScope: 1 name, 2 version
 *   Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start_time_unix_nano
 *         (fixed64), 8 end_time_unix_nano (fixed64), 9 attributes, 11 events, 15 status
 *   Event: 1 time_unix_nano (fixed64), 2 name         Status: 2 message, 3 code
 *   KeyValue: 1 key, 2 value                          KeyValueList / ArrayValue: 1 values
 *   AnyValue: 1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes
 * Both decoders name a bad field by its path ("resourceSpans[0].scopeSpans[0].spans[3].spanId"). */
#include "observe/observe.h"
#include "observe/observe_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * The mapping, shared by both decoders
 * ------------------------------------------------------------------------------------------ */
struct octx {
    struct obs_batch *out;
    struct obs_limits lim;
    struct sh_diag *d;
    char path[128]; /* of the message being read */
    struct slice service, scope;
};

static int fail(struct octx *o, int rc, const char *field, const char *fmt, ...) SH_PRINTF(4, 5);
static int fail(struct octx *o, int rc, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(o->d->what, sizeof(o->d->what), fmt, ap);
    va_end(ap);
    struct buf w = BUF_INIT(sizeof(o->d->where) - 1);
    buf_appendf(&w, "%s%s%s", o->path, o->path[0] && field[0] ? "." : "", field);
    snprintf(o->d->where, sizeof(o->d->where), "%.95s", w.data ? w.data : o->path);
    buf_release(&w);
    return rc;
}

static const char *copy(struct octx *o, struct slice s, bool lower)
{
    char *p = (char *)obs__batch_str(o->out, s.ptr ? s.ptr : "", s.len);

    if (p && lower)
        for (size_t i = 0; i < s.len; i++)
            if (p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] - 'A' + 'a');
    return p;
}

static int check_len(struct octx *o, const char *field, size_t n)
{
    if (n > o->lim.max_string_bytes)
        return fail(o, SH_ETOOBIG, field, "longer than %zu bytes", o->lim.max_string_bytes);
    return 0;
}

/* One attribute (value already as text) onto the span: a tag, and the remote service. */
static int add_attr(struct octx *o, struct trace_span *s, struct slice key, struct slice text,
                    bool is_string)
{
    const char *k, *v;

    SH_TRY(check_len(o, "attributes", key.len));
    SH_TRY(check_len(o, "attributes", text.len));
    if (is_string && slice_eq(key, SLICE("peer.service")))
        s->remote.service = (struct slice){copy(o, text, true), text.len};
    else if (is_string && !s->remote.service.len &&
             (s->kind == TRACE_KIND_CLIENT || s->kind == TRACE_KIND_PRODUCER) &&
             (slice_eq(key, SLICE("server.address")) || slice_eq(key, SLICE("net.peer.name"))))
        s->remote.service = (struct slice){copy(o, text, true), text.len};
    if (s->tag_count == TRACE_SPAN_MAX_TAGS) {
        o->out->tags_dropped++;
        return 0;
    }
    k = copy(o, key, false);
    v = copy(o, text, false);
    if (!k || !v) return fail(o, SH_ENOMEM, "attributes", "out of memory");
    s->tags[s->tag_count++] = (struct trace_tag){{k, key.len}, {v, text.len}};
    return 0;
}

static bool has_tag(const struct trace_span *s, struct slice key)
{
    for (size_t i = 0; i < s->tag_count; i++)
        if (slice_eq(s->tags[i].key, key)) return true;
    return false;
}

/* What every span gets once its own fields are read. */
static int finish_span(struct octx *o, struct trace_span *s, uint64_t start_ns, uint64_t end_ns,
                       int status_code, struct slice status_msg)
{
    size_t bytes = 0;

    if (obs__is_zero(s->trace_id, TRACE_ID_BYTES))
        return fail(o, SH_EPARSE, "traceId", "required (16 bytes, not all zero)");
    if (obs__is_zero(s->span_id, TRACE_SPAN_ID_BYTES))
        return fail(o, SH_EPARSE, "spanId", "required (8 bytes, not all zero)");
    if (end_ns && end_ns < start_ns)
        return fail(o, SH_EPARSE, "endTimeUnixNano", "before startTimeUnixNano");
    s->timestamp_us = start_ns / 1000;
    s->duration_us = end_ns ? (end_ns - start_ns) / 1000 : 0;
    if (end_ns > start_ns && !s->duration_us) s->duration_us = 1; /* Zipkin: at least 1 µs */
    s->local.service = o->service;
    if (o->scope.len && s->tag_count < TRACE_SPAN_MAX_TAGS)
        SH_TRY(add_attr(o, s, SLICE("otel.scope.name"), o->scope, false));
    if (status_code == 2) {
        s->is_error = true;
        if (!has_tag(s, SLICE("error")))
            SH_TRY(
                add_attr(o, s, SLICE("error"), status_msg.len ? status_msg : SLICE("true"), false));
    }
    bytes = s->name.len + s->local.service.len + s->remote.service.len;
    for (size_t i = 0; i < s->tag_count; i++)
        bytes += s->tags[i].key.len + s->tags[i].value.len;
    for (size_t i = 0; i < s->annotation_count; i++)
        bytes += s->annotations[i].value.len;
    if (bytes > TRACE_SPAN_MAX_BYTES)
        return fail(o, SH_ETOOBIG, "", "the span's strings exceed %d bytes", TRACE_SPAN_MAX_BYTES);
    return 0;
}

static enum trace_span_kind map_kind(uint64_t k)
{
    static const enum trace_span_kind kinds[] = {TRACE_KIND_NONE,     TRACE_KIND_NONE,
                                                 TRACE_KIND_SERVER,   TRACE_KIND_CLIENT,
                                                 TRACE_KIND_PRODUCER, TRACE_KIND_CONSUMER};
    return k < SH_ARRAY_LEN(kinds) ? kinds[k] : TRACE_KIND_NONE;
}

static int add_event(struct octx *o, struct trace_span *s, uint64_t time_ns, struct slice name)
{
    if (s->annotation_count == TRACE_SPAN_MAX_ANNOTATIONS) {
        o->out->tags_dropped++;
        return 0;
    }
    SH_TRY(check_len(o, "events", name.len));
    const char *v = copy(o, name, false);
    if (!v) return fail(o, SH_ENOMEM, "events", "out of memory");
    s->annotations[s->annotation_count++] =
        (struct trace_annotation){time_ns / 1000, {v, name.len}};
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------------------------ */
/* A 64-bit unsigned integer sent as a decimal string or a number. */
static int json_u64(struct octx *o, json_t *v, const char *field, uint64_t *out)
{
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        slice_to_u64((struct slice){json_string_value(v), json_string_length(v)}, out) == 0)
        return 0;
    return fail(o, SH_EPARSE, field, "expected an unsigned integer (a number or a decimal string)");
}

static int json_id(struct octx *o, json_t *v, const char *field, uint8_t *out, size_t n,
                   bool required)
{
    memset(out, 0, n);
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        if (required) return fail(o, SH_EPARSE, field, "required");
        return 0;
    }
    if (!json_is_string(v) ||
        obs__unhex((struct slice){json_string_value(v), json_string_length(v)}, out, n) != 0)
        return fail(o, SH_EPARSE, field, "expected %zu hex digits", 2 * n);
    if (obs__is_zero(out, n) && required) return fail(o, SH_EPARSE, field, "must not be all zeros");
    return 0;
}

/* AnyValue as text: strings bare at the top, JSON-quoted inside arrays and lists. */
static int json_anyvalue(struct octx *o, json_t *v, struct buf *b, size_t depth, bool top,
                         bool *is_string)
{
    json_t *x;

    if (depth > o->lim.max_depth) return fail(o, SH_ETOOBIG, "attributes", "nested too deep");
    if (!json_is_object(v)) return fail(o, SH_EPARSE, "attributes", "expected an AnyValue object");
    if ((x = json_object_get(v, "stringValue")) && json_is_string(x)) {
        struct slice s = {json_string_value(x), json_string_length(x)};
        if (top) {
            *is_string = true;
            return buf_appends(b, s);
        }
        buf_appendc(b, '"');
        buf_append_json_str(b, s);
        return buf_appendc(b, '"');
    }
    if ((x = json_object_get(v, "boolValue")) && json_is_boolean(x))
        return buf_appends(b, json_is_true(x) ? SLICE("true") : SLICE("false"));
    if ((x = json_object_get(v, "intValue"))) {
        if (json_is_integer(x)) return buf_appendf(b, "%lld", (long long)json_integer_value(x));
        if (json_is_string(x)) return buf_appends(b, slice_from_cstr(json_string_value(x)));
    }
    if ((x = json_object_get(v, "doubleValue")) && json_is_number(x))
        return buf_appendf(b, "%.17g", json_number_value(x));
    if ((x = json_object_get(v, "bytesValue")) && json_is_string(x)) {
        if (!top) buf_appendc(b, '"');
        buf_append_json_str(b, slice_from_cstr(json_string_value(x)));
        return top ? b->err : buf_appendc(b, '"');
    }
    if ((x = json_object_get(v, "arrayValue")) && json_is_object(x)) {
        json_t *vals = json_object_get(x, "values"), *e;
        size_t i;
        buf_appendc(b, '[');
        if (json_is_array(vals)) json_array_foreach(vals, i, e)
            {
                if (i) buf_appendc(b, ',');
                SH_TRY(json_anyvalue(o, e, b, depth + 1, false, is_string));
            }
        return buf_appendc(b, ']');
    }
    if ((x = json_object_get(v, "kvlistValue")) && json_is_object(x)) {
        json_t *vals = json_object_get(x, "values"), *e;
        size_t i;
        buf_appendc(b, '{');
        if (json_is_array(vals)) json_array_foreach(vals, i, e)
            {
                json_t *k = json_object_get(e, "key");
                if (i) buf_appendc(b, ',');
                buf_appendc(b, '"');
                buf_append_json_str(b,
                                    slice_from_cstr(json_is_string(k) ? json_string_value(k) : ""));
                buf_appends(b, SLICE("\":"));
                json_t *ev = json_object_get(e, "value");
                if (ev)
                    SH_TRY(json_anyvalue(o, ev, b, depth + 1, false, is_string));
                else
                    buf_appends(b, SLICE("null"));
            }
        return buf_appendc(b, '}');
    }
    return buf_appends(b, top ? SLICE("") : SLICE("null")); /* an empty AnyValue */
}

/* Each {key, value} of <arr> (an attributes array): fn(key, text). */
static int json_attrs(struct octx *o, json_t *arr, struct trace_span *s, struct slice *service)
{
    json_t *kv;
    size_t i;

    if (!arr || json_is_null(arr)) return 0;
    if (!json_is_array(arr)) return fail(o, SH_EPARSE, "attributes", "expected an array");
    json_array_foreach(arr, i, kv)
    {
        json_t *k = json_object_get(kv, "key"), *v = json_object_get(kv, "value");
        struct buf b = BUF_INIT(o->lim.max_string_bytes);
        bool is_string = false;
        int rc;
        if (!json_is_string(k))
            return fail(o, SH_EPARSE, "attributes", "[%zu].key: expected a string", i);
        rc = v ? json_anyvalue(o, v, &b, 0, true, &is_string) : 0;
        if (rc == SH_ETOOBIG && !o->d->what[0])
            rc = fail(o, rc, "attributes", "[%zu].value: longer than %zu bytes", i,
                      o->lim.max_string_bytes);
        struct slice key = {json_string_value(k), json_string_length(k)};
        if (rc == 0 && service) {
            if (is_string && slice_eq(key, SLICE("service.name")) && b.len) {
                SH_TRY(check_len(o, "attributes", b.len));
                *service = (struct slice){copy(o, buf_slice(&b), true), b.len};
                if (!service->ptr) rc = SH_ENOMEM;
            }
        } else if (rc == 0) {
            rc = add_attr(o, s, key, b.len ? buf_slice(&b) : (struct slice){"", 0}, is_string);
        }
        buf_release(&b);
        if (rc < 0) {
            if (!o->d->what[0]) fail(o, rc, "attributes", "%s", sh_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int json_span(struct octx *o, json_t *v)
{
    struct trace_span *s;
    uint64_t start = 0, end = 0, kind = 0;
    json_t *x;
    int rc, status_code = 0;
    struct slice status_msg = {"", 0};

    if (!json_is_object(v)) return fail(o, SH_EPARSE, "", "expected a span object");
    if (!(s = obs__batch_push(o->out, o->lim.max_spans, &rc)))
        return fail(o, rc, "",
                    rc == SH_ETOOBIG ? "more spans than allowed in one request" : "out of memory");
    SH_TRY(json_id(o, json_object_get(v, "traceId"), "traceId", s->trace_id, TRACE_ID_BYTES, true));
    SH_TRY(
        json_id(o, json_object_get(v, "spanId"), "spanId", s->span_id, TRACE_SPAN_ID_BYTES, true));
    SH_TRY(json_id(o, json_object_get(v, "parentSpanId"), "parentSpanId", s->parent_id,
                   TRACE_SPAN_ID_BYTES, false));
    x = json_object_get(v, "name");
    if (x && !json_is_string(x)) return fail(o, SH_EPARSE, "name", "expected a string");
    if (x) {
        struct slice n = {json_string_value(x), json_string_length(x)};
        SH_TRY(check_len(o, "name", n.len));
        s->name = (struct slice){copy(o, n, true), n.len};
    }
    x = json_object_get(v, "kind");
    if (x && !json_is_null(x)) {
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return fail(o, SH_EPARSE, "kind", "expected an integer (2 = SERVER, 3 = CLIENT...)");
        kind = (uint64_t)json_integer_value(x);
    }
    s->kind = map_kind(kind);
    SH_TRY(json_u64(o, json_object_get(v, "startTimeUnixNano"), "startTimeUnixNano", &start));
    SH_TRY(json_u64(o, json_object_get(v, "endTimeUnixNano"), "endTimeUnixNano", &end));
    SH_TRY(json_attrs(o, json_object_get(v, "attributes"), s, NULL));
    x = json_object_get(v, "events");
    if (x && !json_is_null(x)) {
        json_t *e;
        size_t i;
        if (!json_is_array(x)) return fail(o, SH_EPARSE, "events", "expected an array");
        json_array_foreach(x, i, e)
        {
            uint64_t t = 0;
            json_t *n = json_object_get(e, "name");
            SH_TRY(json_u64(o, json_object_get(e, "timeUnixNano"), "events.timeUnixNano", &t));
            SH_TRY(add_event(o, s, t,
                             json_is_string(n)
                                 ? (struct slice){json_string_value(n), json_string_length(n)}
                                 : SLICE("event")));
        }
    }
    x = json_object_get(v, "status");
    if (x && json_is_object(x)) {
        json_t *c = json_object_get(x, "code"), *m = json_object_get(x, "message");
        if (c && !json_is_null(c) && !json_is_integer(c))
            return fail(o, SH_EPARSE, "status.code", "expected an integer (2 = ERROR)");
        status_code = c ? (int)json_integer_value(c) : 0;
        if (json_is_string(m))
            status_msg = (struct slice){json_string_value(m), json_string_length(m)};
        SH_TRY(check_len(o, "status.message", status_msg.len));
    }
    return finish_span(o, s, start, end, status_code, status_msg);
}

int obs_otlp_decode_json(struct slice body, const struct obs_limits *lim, struct obs_batch *out,
                         struct sh_diag *d)
{
    struct octx o = {.out = out, .d = d};
    json_error_t err;
    json_t *root, *rs, *ss, *sp;
    size_t i, j, k;
    int rc = 0;

    obs__limits_default(lim, &o.lim);
    root = json_loadb(body.ptr ? body.ptr : "", body.len, 0, &err);
    if (!root) {
        sh_diag_set(d, "body", "invalid JSON at line %d, column %d: %s", err.line, err.column,
                    err.text);
        return SH_EPARSE;
    }
    json_t *arr = json_object_get(root, "resourceSpans");
    if (!json_is_object(root) || (arr && !json_is_array(arr))) {
        json_decref(root);
        sh_diag_set(d, "resourceSpans", "expected {\"resourceSpans\": [...]}");
        return SH_EPARSE;
    }
    json_array_foreach(arr, i, rs)
    {
        snprintf(o.path, sizeof(o.path), "resourceSpans[%zu]", i);
        o.service = SLICE("unknown_service");
        json_t *res = json_object_get(rs, "resource");
        if (res && json_is_object(res))
            rc = json_attrs(&o, json_object_get(res, "attributes"), NULL, &o.service);
        json_t *sss = json_object_get(rs, "scopeSpans");
        if (rc == 0 && sss && !json_is_array(sss))
            rc = fail(&o, SH_EPARSE, "scopeSpans", "expected an array");
        if (rc < 0) break;
        json_array_foreach(sss, j, ss)
        {
            json_t *scope = json_object_get(ss, "scope"), *name = json_object_get(scope, "name");
            o.scope = json_is_string(name) && json_string_length(name) <= o.lim.max_string_bytes
                          ? (struct slice){json_string_value(name), json_string_length(name)}
                          : SLICE_NULL;
            json_t *spans = json_object_get(ss, "spans");
            snprintf(o.path, sizeof(o.path), "resourceSpans[%zu].scopeSpans[%zu]", i, j);
            if (spans && !json_is_array(spans)) {
                rc = fail(&o, SH_EPARSE, "spans", "expected an array");
                break;
            }
            json_array_foreach(spans, k, sp)
            {
                snprintf(o.path, sizeof(o.path), "resourceSpans[%zu].scopeSpans[%zu].spans[%zu]", i,
                         j, k);
                if ((rc = json_span(&o, sp)) < 0) break;
            }
            if (rc < 0) break;
        }
        if (rc < 0) break;
    }
    json_decref(root);
    if (rc < 0) obs_batch_release(out);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Protobuf
 * ------------------------------------------------------------------------------------------ */
struct pb {
    const uint8_t *p, *end;
};

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

struct pb_field {
    uint32_t num, wire;
    uint64_t v;     /* varint, i64, i32 */
    struct slice b; /* len */
};

static int pb_varint(struct pb *r, uint64_t *out)
{
    uint64_t v = 0;

    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return SH_EPARSE;
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return SH_EPARSE;
}

/* 1 and *f filled, 0 at the end, or SH_EPARSE. */
static int pb_next(struct pb *r, struct pb_field *f)
{
    uint64_t key, n;

    if (r->p >= r->end) return 0;
    if (pb_varint(r, &key) < 0) return SH_EPARSE;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    if (f->num == 0 || key >> 3 > UINT32_MAX >> 3) return SH_EPARSE;
    switch (f->wire) {
    case PB_VARINT:
        return pb_varint(r, &f->v) < 0 ? SH_EPARSE : 1;
    case PB_I64:
        if (r->end - r->p < 8) return SH_EPARSE;
        f->v = 0;
        for (int i = 0; i < 8; i++)
            f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        return 1;
    case PB_I32:
        if (r->end - r->p < 4) return SH_EPARSE;
        f->v = 0;
        for (int i = 0; i < 4; i++)
            f->v |= (uint64_t)r->p[i] << (8 * i);
        r->p += 4;
        return 1;
    case PB_LEN:
        if (pb_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p)) return SH_EPARSE;
        f->b = (struct slice){(const char *)r->p, (size_t)n};
        r->p += n;
        return 1;
    default:
        return SH_EPARSE; /* groups and reserved wire types */
    }
}

static struct pb pb_of(struct slice s)
{
    return (struct pb){(const uint8_t *)s.ptr, (const uint8_t *)s.ptr + s.len};
}

static bool utf8_valid(struct slice s)
{
    const uint8_t *p = (const uint8_t *)s.ptr, *e = p + s.len;

    while (p < e) {
        uint8_t c = *p;
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(e - p) <= n) return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* A string field: wire type and UTF-8 checked (proto3 strings are UTF-8). */
static int pb_str(struct octx *o, const struct pb_field *f, const char *field, struct slice *out)
{
    if (f->wire != PB_LEN) return fail(o, SH_EPARSE, field, "wrong wire type for a string");
    SH_TRY(check_len(o, field, f->b.len));
    if (!utf8_valid(f->b)) return fail(o, SH_EPARSE, field, "not valid UTF-8");
    *out = f->b;
    return 0;
}

static int bad_message(struct octx *o, const char *field)
{
    return fail(o, SH_EPARSE, field, "malformed protobuf");
}

static int pb_anyvalue(struct octx *o, struct slice msg, struct buf *b, size_t depth, bool top,
                       bool *is_string);

static int pb_keyvalue(struct octx *o, struct slice msg, struct slice *key, struct slice *value)
{
    struct pb r = pb_of(msg);
    struct pb_field f;
    int rc;

    *key = (struct slice){"", 0};
    *value = SLICE_NULL;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num == 1)
            SH_TRY(pb_str(o, &f, "attributes.key", key));
        else if (f.num == 2 && f.wire == PB_LEN)
            *value = f.b;
    }
    return rc < 0 ? bad_message(o, "attributes") : 0;
}

static int pb_anyvalue(struct octx *o, struct slice msg, struct buf *b, size_t depth, bool top,
                       bool *is_string)
{
    struct pb r = pb_of(msg);
    struct pb_field f;
    struct slice s;
    int rc;
    bool any = false;

    if (depth > o->lim.max_depth) return fail(o, SH_ETOOBIG, "attributes", "nested too deep");
    while ((rc = pb_next(&r, &f)) == 1) {
        any = true;
        switch (f.num) {
        case 1:
            SH_TRY(pb_str(o, &f, "attributes.value", &s));
            if (top) {
                *is_string = true;
                buf_appends(b, s);
            } else {
                buf_appendc(b, '"');
                buf_append_json_str(b, s);
                buf_appendc(b, '"');
            }
            break;
        case 2:
            buf_appends(b, f.v ? SLICE("true") : SLICE("false"));
            break;
        case 3:
            buf_appendf(b, "%lld", (long long)(int64_t)f.v);
            break;
        case 4: {
            double dv;
            memcpy(&dv, &f.v, sizeof(dv));
            buf_appendf(b, "%.17g", dv);
            break;
        }
        case 5:
        case 6: {
            if (f.wire != PB_LEN) return bad_message(o, "attributes");
            struct pb ar = pb_of(f.b);
            struct pb_field e;
            bool first = true;
            buf_appendc(b, f.num == 5 ? '[' : '{');
            while ((rc = pb_next(&ar, &e)) == 1) {
                if (e.num != 1 || e.wire != PB_LEN) continue;
                if (!first) buf_appendc(b, ',');
                first = false;
                if (f.num == 5) {
                    SH_TRY(pb_anyvalue(o, e.b, b, depth + 1, false, is_string));
                } else {
                    struct slice k, v;
                    SH_TRY(pb_keyvalue(o, e.b, &k, &v));
                    buf_appendc(b, '"');
                    buf_append_json_str(b, k);
                    buf_appends(b, SLICE("\":"));
                    if (v.ptr)
                        SH_TRY(pb_anyvalue(o, v, b, depth + 1, false, is_string));
                    else
                        buf_appends(b, SLICE("null"));
                }
            }
            if (rc < 0) return bad_message(o, "attributes");
            buf_appendc(b, f.num == 5 ? ']' : '}');
            break;
        }
        case 7:
            if (f.wire != PB_LEN) return bad_message(o, "attributes");
            if (!top) buf_appendc(b, '"');
            for (size_t i = 0; i < f.b.len; i++)
                buf_appendf(b, "%02x", (unsigned)(uint8_t)f.b.ptr[i]);
            if (!top) buf_appendc(b, '"');
            break;
        default:
            break;
        }
        if (b->err) return fail(o, b->err, "attributes", "the value is too long");
    }
    if (rc < 0) return bad_message(o, "attributes");
    if (!any && !top) buf_appends(b, SLICE("null"));
    return b->err;
}

/* An attribute (KeyValue message): onto the span, or service.name into *service. */
static int pb_attr(struct octx *o, struct slice msg, struct trace_span *s, struct slice *service)
{
    struct slice key, value;
    struct buf b = BUF_INIT(o->lim.max_string_bytes);
    bool is_string = false;
    int rc;

    SH_TRY(pb_keyvalue(o, msg, &key, &value));
    rc = value.ptr ? pb_anyvalue(o, value, &b, 0, true, &is_string) : 0;
    if (rc == 0 && service) {
        if (is_string && slice_eq(key, SLICE("service.name")) && b.len) {
            *service = (struct slice){copy(o, buf_slice(&b), true), b.len};
            if (!service->ptr) rc = fail(o, SH_ENOMEM, "attributes", "out of memory");
        }
    } else if (rc == 0) {
        rc = add_attr(o, s, key, b.len ? buf_slice(&b) : (struct slice){"", 0}, is_string);
    }
    buf_release(&b);
    return rc;
}

static int pb_id(struct octx *o, const struct pb_field *f, const char *field, uint8_t *out,
                 size_t n, bool allow_empty)
{
    if (f->wire != PB_LEN) return fail(o, SH_EPARSE, field, "wrong wire type for bytes");
    if (f->b.len == 0 && allow_empty) return 0;
    if (f->b.len != n) return fail(o, SH_EPARSE, field, "expected %zu bytes, got %zu", n, f->b.len);
    memcpy(out, f->b.ptr, n);
    return 0;
}

static int pb_span(struct octx *o, struct slice msg)
{
    struct pb r = pb_of(msg);
    struct pb_field f;
    struct trace_span *s;
    uint64_t start = 0, end = 0;
    int rc, status_code = 0;
    struct slice status_msg = {"", 0}, name;

    if (!(s = obs__batch_push(o->out, o->lim.max_spans, &rc)))
        return fail(o, rc, "",
                    rc == SH_ETOOBIG ? "more spans than allowed in one request" : "out of memory");
    /* kind first: the remote service attributes depend on it */
    while ((rc = pb_next(&r, &f)) == 1)
        if (f.num == 6 && f.wire == PB_VARINT) s->kind = map_kind(f.v);
    if (rc < 0) return bad_message(o, "");
    r = pb_of(msg);
    while ((rc = pb_next(&r, &f)) == 1) {
        switch (f.num) {
        case 1:
            SH_TRY(pb_id(o, &f, "traceId", s->trace_id, TRACE_ID_BYTES, false));
            break;
        case 2:
            SH_TRY(pb_id(o, &f, "spanId", s->span_id, TRACE_SPAN_ID_BYTES, false));
            break;
        case 4:
            SH_TRY(pb_id(o, &f, "parentSpanId", s->parent_id, TRACE_SPAN_ID_BYTES, true));
            break;
        case 5:
            SH_TRY(pb_str(o, &f, "name", &name));
            s->name = (struct slice){copy(o, name, true), name.len};
            if (!s->name.ptr) return fail(o, SH_ENOMEM, "name", "out of memory");
            break;
        case 7:
        case 8:
            if (f.wire != PB_I64)
                return fail(o, SH_EPARSE, f.num == 7 ? "startTimeUnixNano" : "endTimeUnixNano",
                            "wrong wire type for fixed64");
            *(f.num == 7 ? &start : &end) = f.v;
            break;
        case 9:
            if (f.wire != PB_LEN) return bad_message(o, "attributes");
            SH_TRY(pb_attr(o, f.b, s, NULL));
            break;
        case 11: {
            if (f.wire != PB_LEN) return bad_message(o, "events");
            struct pb er = pb_of(f.b);
            struct pb_field e;
            uint64_t t = 0;
            struct slice en = SLICE("event");
            while ((rc = pb_next(&er, &e)) == 1) {
                if (e.num == 1 && e.wire == PB_I64) t = e.v;
                if (e.num == 2) SH_TRY(pb_str(o, &e, "events.name", &en));
            }
            if (rc < 0) return bad_message(o, "events");
            SH_TRY(add_event(o, s, t, en));
            break;
        }
        case 15: {
            if (f.wire != PB_LEN) return bad_message(o, "status");
            struct pb sr = pb_of(f.b);
            struct pb_field e;
            while ((rc = pb_next(&sr, &e)) == 1) {
                if (e.num == 2) SH_TRY(pb_str(o, &e, "status.message", &status_msg));
                if (e.num == 3 && e.wire == PB_VARINT) status_code = e.v == 2 ? 2 : 0;
            }
            if (rc < 0) return bad_message(o, "status");
            break;
        }
        default:
            break;
        }
    }
    if (rc < 0) return bad_message(o, "");
    return finish_span(o, s, start, end, status_code, status_msg);
}

static int pb_scope_spans(struct octx *o, struct slice msg, size_t i, size_t j)
{
    struct pb r = pb_of(msg);
    struct pb_field f;
    size_t k = 0;
    int rc;

    snprintf(o->path, sizeof(o->path), "resourceSpans[%zu].scopeSpans[%zu]", i, j);
    o->scope = SLICE_NULL;
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != 1 || f.wire != PB_LEN) continue;
        struct pb sr = pb_of(f.b);
        struct pb_field e;
        while ((rc = pb_next(&sr, &e)) == 1)
            if (e.num == 1) SH_TRY(pb_str(o, &e, "scope.name", &o->scope));
        if (rc < 0) return bad_message(o, "scope");
    }
    if (rc < 0) return bad_message(o, "");
    r = pb_of(msg);
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != 2) continue;
        snprintf(o->path, sizeof(o->path), "resourceSpans[%zu].scopeSpans[%zu].spans[%zu]", i, j,
                 k++);
        if (f.wire != PB_LEN) return bad_message(o, "");
        SH_TRY(pb_span(o, f.b));
    }
    snprintf(o->path, sizeof(o->path), "resourceSpans[%zu].scopeSpans[%zu]", i, j);
    return rc < 0 ? bad_message(o, "") : 0;
}

static int pb_resource_spans(struct octx *o, struct slice msg, size_t i)
{
    struct pb r = pb_of(msg);
    struct pb_field f;
    size_t j = 0;
    int rc;

    snprintf(o->path, sizeof(o->path), "resourceSpans[%zu]", i);
    o->service = SLICE("unknown_service");
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != 1) continue;
        if (f.wire != PB_LEN) return bad_message(o, "resource");
        struct pb rr = pb_of(f.b);
        struct pb_field e;
        while ((rc = pb_next(&rr, &e)) == 1) {
            if (e.num != 1) continue;
            if (e.wire != PB_LEN) return bad_message(o, "resource.attributes");
            SH_TRY(pb_attr(o, e.b, NULL, &o->service));
        }
        if (rc < 0) return bad_message(o, "resource");
    }
    if (rc < 0) return bad_message(o, "");
    r = pb_of(msg);
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != 2) continue;
        if (f.wire != PB_LEN) return bad_message(o, "scopeSpans");
        SH_TRY(pb_scope_spans(o, f.b, i, j++));
    }
    return rc < 0 ? bad_message(o, "") : 0;
}

int obs_otlp_decode_proto(struct slice body, const struct obs_limits *lim, struct obs_batch *out,
                          struct sh_diag *d)
{
    struct octx o = {.out = out, .d = d};
    struct pb r = pb_of(body.ptr ? body : (struct slice){"", 0});
    struct pb_field f;
    size_t i = 0;
    int rc;

    obs__limits_default(lim, &o.lim);
    while ((rc = pb_next(&r, &f)) == 1) {
        if (f.num != 1) continue;
        if (f.wire != PB_LEN) {
            rc = fail(&o, SH_EPARSE, "resourceSpans", "malformed protobuf");
            break;
        }
        if ((rc = pb_resource_spans(&o, f.b, i++)) < 0) break;
    }
    if (rc == SH_EPARSE && !d->what[0]) {
        sh_diag_set(d, "body", "malformed protobuf (not an ExportTraceServiceRequest)");
    }
    if (rc < 0) {
        obs_batch_release(out);
        return rc;
    }
    return 0;
}
