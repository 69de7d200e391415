/* SPDX-License-Identifier: MIT */
/* zipkin.c: Zipkin v2 JSON, the body of POST /api/v2/spans and the answers of the query API.
 * The decoder is strict about ids, kinds and types, and names the bad field with its index
 * ("[3].traceId"); it ignores fields it does not know, as Zipkin does. Span and service names
 * are lower-cased on the way in (Zipkin's Span.Builder does the same; its UI and Grafana send
 * lower-case names back in queries). */
#include "observe/observe.h"
#include "observe/observe_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------------------------ */
struct zctx {
    struct obs_batch *out;
    struct obs_limits lim;
    struct sh_diag *d;
    size_t index;
};

static int fail(struct zctx *z, int rc, const char *field, const char *what)
{
    sh_diag_set(z->d, "", "%s", what);
    snprintf(z->d->where, sizeof(z->d->where), "[%zu]%s%s", z->index, field[0] ? "." : "", field);
    return rc;
}

/* A string field (NULL/absent: empty). lower: ASCII lower-case the copy. */
static int get_str(struct zctx *z, json_t *v, const char *field, bool lower, struct slice *out)
{
    *out = (struct slice){"", 0};
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return fail(z, SH_EPARSE, field, "expected a string");
    size_t n = json_string_length(v);
    if (n > z->lim.max_string_bytes) return fail(z, SH_ETOOBIG, field, "the string is too long");
    const char *p = obs__batch_str(z->out, json_string_value(v), n);
    if (!p) return fail(z, SH_ENOMEM, field, "out of memory");
    if (lower)
        for (size_t i = 0; i < n; i++)
            if (p[i] >= 'A' && p[i] <= 'Z') ((char *)p)[i] = (char)(p[i] - 'A' + 'a');
    *out = (struct slice){p, n};
    return 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* An id: n1 or n2 hex digits (n2 0 = only n1), lower-case, not all zero. */
static int get_id(struct zctx *z, json_t *v, const char *field, uint8_t *out, size_t bytes,
                  bool required)
{
    char what[96];

    memset(out, 0, bytes);
    if (!v || json_is_null(v)) {
        if (!required) return 0;
        return fail(z, SH_EPARSE, field, "required");
    }
    if (!json_is_string(v)) return fail(z, SH_EPARSE, field, "expected a hex string");
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (bytes == TRACE_ID_BYTES && (n == 16 || n == 32) && is_lower_hex(s, n)) {
        if (obs_trace_id_parse((struct slice){s, n}, out) != 0)
            return fail(z, SH_EPARSE, field, "not hex");
    } else if (bytes == TRACE_SPAN_ID_BYTES && n == 16 && is_lower_hex(s, n)) {
        if (obs__unhex((struct slice){s, n}, out, bytes) != 0)
            return fail(z, SH_EPARSE, field, "not hex");
    } else {
        snprintf(what, sizeof(what), "expected %s lower-case hex digits, got %zu characters",
                 bytes == TRACE_ID_BYTES ? "16 or 32" : "16", n);
        return fail(z, SH_EPARSE, field, what);
    }
    if (obs__is_zero(out, bytes)) {
        if (!required) return 0; /* a zero parentId means none (some tracers send it) */
        return fail(z, SH_EPARSE, field, "must not be all zeros");
    }
    return 0;
}

static int get_u64(struct zctx *z, json_t *v, const char *field, uint64_t *out)
{
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(z, SH_EPARSE, field, "expected a non-negative integer (microseconds)");
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_endpoint(struct zctx *z, json_t *v, const char *field, struct trace_endpoint *ep)
{
    char f[64];
    struct slice ip6;

    memset(ep, 0, sizeof(*ep));
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return fail(z, SH_EPARSE, field, "expected an object");
    snprintf(f, sizeof(f), "%s.serviceName", field);
    SH_TRY(get_str(z, json_object_get(v, "serviceName"), f, true, &ep->service));
    snprintf(f, sizeof(f), "%s.ipv4", field);
    SH_TRY(get_str(z, json_object_get(v, "ipv4"), f, false, &ep->ip));
    snprintf(f, sizeof(f), "%s.ipv6", field);
    SH_TRY(get_str(z, json_object_get(v, "ipv6"), f, false, &ip6));
    if (!ep->ip.len) ep->ip = ip6;
    json_t *port = json_object_get(v, "port");
    if (port && !json_is_null(port)) {
        if (!json_is_integer(port) || json_integer_value(port) < 0 ||
            json_integer_value(port) > 65535) {
            snprintf(f, sizeof(f), "%s.port", field);
            return fail(z, SH_EPARSE, f, "expected a port number (0 to 65535)");
        }
        ep->port = (uint16_t)json_integer_value(port);
    }
    return 0;
}

static const struct {
    const char *name;
    enum trace_span_kind kind;
} kinds[] = {{"CLIENT", TRACE_KIND_CLIENT},
             {"SERVER", TRACE_KIND_SERVER},
             {"PRODUCER", TRACE_KIND_PRODUCER},
             {"CONSUMER", TRACE_KIND_CONSUMER}};

static int decode_span(struct zctx *z, json_t *o, struct trace_span *s)
{
    json_t *v;
    char f[48];

    if (!json_is_object(o)) return fail(z, SH_EPARSE, "", "expected a span object");
    SH_TRY(get_id(z, json_object_get(o, "traceId"), "traceId", s->trace_id, TRACE_ID_BYTES, true));
    SH_TRY(get_id(z, json_object_get(o, "id"), "id", s->span_id, TRACE_SPAN_ID_BYTES, true));
    SH_TRY(get_id(z, json_object_get(o, "parentId"), "parentId", s->parent_id, TRACE_SPAN_ID_BYTES,
                  false));
    SH_TRY(get_str(z, json_object_get(o, "name"), "name", true, &s->name));
    v = json_object_get(o, "kind");
    if (v && !json_is_null(v)) {
        const char *k = json_is_string(v) ? json_string_value(v) : "";
        for (size_t i = 0; i < SH_ARRAY_LEN(kinds); i++)
            if (strcmp(k, kinds[i].name) == 0) s->kind = kinds[i].kind;
        if (s->kind == TRACE_KIND_NONE)
            return fail(z, SH_EPARSE, "kind", "expected CLIENT, SERVER, PRODUCER or CONSUMER");
    }
    SH_TRY(get_u64(z, json_object_get(o, "timestamp"), "timestamp", &s->timestamp_us));
    SH_TRY(get_u64(z, json_object_get(o, "duration"), "duration", &s->duration_us));
    SH_TRY(get_endpoint(z, json_object_get(o, "localEndpoint"), "localEndpoint", &s->local));
    SH_TRY(get_endpoint(z, json_object_get(o, "remoteEndpoint"), "remoteEndpoint", &s->remote));
    v = json_object_get(o, "annotations");
    if (v && !json_is_null(v)) {
        size_t i;
        json_t *a;
        if (!json_is_array(v)) return fail(z, SH_EPARSE, "annotations", "expected an array");
        json_array_foreach(v, i, a)
        {
            snprintf(f, sizeof(f), "annotations[%zu]", i);
            if (!json_is_object(a)) return fail(z, SH_EPARSE, f, "expected an object");
            if (s->annotation_count == TRACE_SPAN_MAX_ANNOTATIONS) {
                z->out->tags_dropped++;
                continue;
            }
            struct trace_annotation *an = &s->annotations[s->annotation_count];
            snprintf(f, sizeof(f), "annotations[%zu].timestamp", i);
            SH_TRY(get_u64(z, json_object_get(a, "timestamp"), f, &an->timestamp_us));
            snprintf(f, sizeof(f), "annotations[%zu].value", i);
            SH_TRY(get_str(z, json_object_get(a, "value"), f, false, &an->value));
            s->annotation_count++;
        }
    }
    v = json_object_get(o, "tags");
    if (v && !json_is_null(v)) {
        const char *key;
        json_t *t;
        if (!json_is_object(v)) return fail(z, SH_EPARSE, "tags", "expected an object");
        json_object_foreach(v, key, t)
        {
            snprintf(f, sizeof(f), "tags.%.32s", key);
            if (!json_is_string(t)) return fail(z, SH_EPARSE, f, "expected a string value");
            if (s->tag_count == TRACE_SPAN_MAX_TAGS) {
                z->out->tags_dropped++;
                continue;
            }
            size_t kn = strlen(key);
            if (kn > z->lim.max_string_bytes) return fail(z, SH_ETOOBIG, f, "the key is too long");
            const char *kp = obs__batch_str(z->out, key, kn);
            if (!kp) return fail(z, SH_ENOMEM, f, "out of memory");
            s->tags[s->tag_count].key = (struct slice){kp, kn};
            SH_TRY(get_str(z, t, f, false, &s->tags[s->tag_count].value));
            if (kn == 5 && memcmp(key, "error", 5) == 0) s->is_error = true;
            s->tag_count++;
        }
    }
    v = json_object_get(o, "debug");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return fail(z, SH_EPARSE, "debug", "expected true or false");
        s->debug = json_is_true(v);
    }
    v = json_object_get(o, "shared");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) return fail(z, SH_EPARSE, "shared", "expected true or false");
        s->shared = json_is_true(v);
    }
    size_t bytes = s->name.len + s->local.service.len + s->local.ip.len + s->remote.service.len +
                   s->remote.ip.len;
    for (size_t i = 0; i < s->tag_count; i++)
        bytes += s->tags[i].key.len + s->tags[i].value.len;
    for (size_t i = 0; i < s->annotation_count; i++)
        bytes += s->annotations[i].value.len;
    if (bytes > TRACE_SPAN_MAX_BYTES)
        return fail(z, SH_ETOOBIG, "", "the span's strings exceed 64 KiB");
    return 0;
}

int obs_zipkin_decode(struct slice body, const struct obs_limits *lim, struct obs_batch *out,
                      struct sh_diag *d)
{
    struct zctx z = {.out = out, .d = d};
    json_error_t err;
    json_t *root, *o;
    size_t i;
    int rc = 0;

    obs__limits_default(lim, &z.lim);
    root = json_loadb(body.ptr ? body.ptr : "", body.len, 0, &err);
    if (!root) {
        sh_diag_set(d, "body", "invalid JSON at line %d, column %d: %s", err.line, err.column,
                    err.text);
        return SH_EPARSE;
    }
    if (!json_is_array(root)) {
        json_decref(root);
        sh_diag_set(d, "body", "expected a JSON array of spans");
        return SH_EPARSE;
    }
    if (json_array_size(root) > z.lim.max_spans) {
        json_decref(root);
        sh_diag_set(d, "body", "more than %zu spans in one request", z.lim.max_spans);
        return SH_ETOOBIG;
    }
    json_array_foreach(root, i, o)
    {
        struct trace_span *s;
        z.index = i;
        if (!(s = obs__batch_push(out, z.lim.max_spans, &rc))) {
            rc = fail(&z, rc, "", sh_strerror(rc));
            break;
        }
        if ((rc = decode_span(&z, o, s)) < 0) break;
    }
    json_decref(root);
    if (rc < 0) obs_batch_release(out);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------------------------ */
static void put_str(struct buf *b, const char *key, struct slice v, bool *first)
{
    buf_appendf(b, "%s\"%s\":\"", *first ? "" : ",", key);
    buf_append_json_str(b, v);
    buf_appendc(b, '"');
    *first = false;
}

static void put_endpoint(struct buf *b, const char *key, const struct trace_endpoint *ep)
{
    bool first = true;
    bool v6 = memchr(ep->ip.ptr ? ep->ip.ptr : "", ':', ep->ip.len) != NULL;

    if (!ep->service.len && !ep->ip.len && !ep->port) return;
    buf_appendf(b, ",\"%s\":{", key);
    if (ep->service.len) put_str(b, "serviceName", ep->service, &first);
    if (ep->ip.len) put_str(b, v6 ? "ipv6" : "ipv4", ep->ip, &first);
    if (ep->port) buf_appendf(b, "%s\"port\":%u", first ? "" : ",", (unsigned)ep->port);
    buf_appendc(b, '}');
}

int obs_zipkin_encode_span(struct buf *b, const struct trace_span *s)
{
    static const char *const kind_names[] = {"", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"};
    char hex[33];
    bool first = true;

    obs_trace_id_hex(s->trace_id, hex);
    buf_appendf(b, "{\"traceId\":\"%s\"", hex);
    if (!obs__is_zero(s->parent_id, TRACE_SPAN_ID_BYTES)) {
        obs__hex(s->parent_id, TRACE_SPAN_ID_BYTES, hex);
        buf_appendf(b, ",\"parentId\":\"%s\"", hex);
    }
    obs__hex(s->span_id, TRACE_SPAN_ID_BYTES, hex);
    buf_appendf(b, ",\"id\":\"%s\"", hex);
    if (s->kind > TRACE_KIND_NONE && s->kind <= TRACE_KIND_CONSUMER)
        buf_appendf(b, ",\"kind\":\"%s\"", kind_names[s->kind]);
    if (s->name.len) {
        first = false;
        put_str(b, "name", s->name, &first);
    }
    if (s->timestamp_us) buf_appendf(b, ",\"timestamp\":%llu", (unsigned long long)s->timestamp_us);
    if (s->duration_us) buf_appendf(b, ",\"duration\":%llu", (unsigned long long)s->duration_us);
    put_endpoint(b, "localEndpoint", &s->local);
    put_endpoint(b, "remoteEndpoint", &s->remote);
    if (s->annotation_count) {
        buf_appends(b, SLICE(",\"annotations\":["));
        for (size_t i = 0; i < s->annotation_count; i++) {
            buf_appendf(b, "%s{\"timestamp\":%llu,\"value\":\"", i ? "," : "",
                        (unsigned long long)s->annotations[i].timestamp_us);
            buf_append_json_str(b, s->annotations[i].value);
            buf_appends(b, SLICE("\"}"));
        }
        buf_appendc(b, ']');
    }
    bool has_error_tag = false;
    if (s->tag_count || s->is_error) {
        buf_appends(b, SLICE(",\"tags\":{"));
        first = true;
        for (size_t i = 0; i < s->tag_count; i++) {
            if (slice_eq(s->tags[i].key, SLICE("error"))) has_error_tag = true;
            buf_appends(b, first ? SLICE("\"") : SLICE(",\""));
            buf_append_json_str(b, s->tags[i].key);
            buf_appends(b, SLICE("\":\""));
            buf_append_json_str(b, s->tags[i].value);
            buf_appendc(b, '"');
            first = false;
        }
        /* the UI marks a span red by its "error" tag: an error without one gets it */
        if (s->is_error && !has_error_tag) buf_appendf(b, "%s\"error\":\"true\"", first ? "" : ",");
        buf_appendc(b, '}');
    }
    if (s->debug) buf_appends(b, SLICE(",\"debug\":true"));
    if (s->shared) buf_appends(b, SLICE(",\"shared\":true"));
    buf_appendc(b, '}');
    return b->err;
}
