/* SPDX-License-Identifier: MIT */
/* routes_traces.c: span ingest and Zipkin's query API over the span store (observe.h):
 *   POST /api/v2/spans                 Zipkin v2 JSON; 202 Accepted, empty body
 *   POST /v1/traces                    OTLP/HTTP, application/json or application/x-protobuf;
 *                                      200 with an empty ExportTraceServiceResponse
 *   GET  /api/v2/services | spans?serviceName= | remoteServices?serviceName=
 *   GET  /api/v2/traces?serviceName&remoteServiceName&spanName&annotationQuery&minDuration
 *                      &maxDuration&endTs&lookback&limit
 *   GET  /api/v2/trace/{traceId}       404 when none
 *   GET  /api/v2/dependencies?endTs&lookback
 *   GET  /api/v2/autocompleteKeys, /api/v2/autocompleteValues   [] (the Zipkin UI asks)
 * Ingest bodies may be gzip-compressed (Content-Encoding: gzip), inflated up to 64 MiB.
 * A request's spans are stored whole or not at all: bad input (400 naming the field) and a
 * full buffer (503, retryable) store nothing. */
#include "admin/admin.h"
#include "admin/admin_int.h"
#include "observe/observe.h"

#include <stdio.h>
#include <string.h>

enum {
    TRACES_LIMIT_MAX = 1000,
    LOOKBACK_DEFAULT_MS = 24 * 3600 * 1000, /* Zipkin's zipkin.query.lookback */
    ANSWER_MAX_BYTES = 64u << 20,
};

static struct obs_spans *span_store(struct admin_req *r)
{
    if (r->a->cfg.spans) return r->a->cfg.spans;
    admin__reply_error(r, 503, NULL, "the span store is not running in this process");
    return NULL;
}

static bool content_type_is(struct admin_req *r, const char *want)
{
    struct slice v;

    if (!http_head_get(r->h, SLICE("content-type"), &v)) return false;
    struct slice rest = slice_split(v, ';', &v);
    (void)rest;
    return slice_eq_nocase(slice_trim(v), slice_from_cstr(want));
}

/* The request body, inflated when Content-Encoding is gzip: 0 and *body (pointing into
 * r->body or into *inflated, which the caller releases), or a negative code with d saying
 * why and *status the answer (415 for another encoding, 413 past the cap, 400 corrupt). */
enum { INFLATED_MAX_BYTES = 64u << 20 };
static int request_body(struct admin_req *r, struct buf *inflated, struct slice *body, int *status,
                        struct sh_diag *d)
{
    struct slice v;
    int rc;

    *body = buf_slice(&r->body);
    if (!http_head_get(r->h, SLICE("content-encoding"), &v) ||
        slice_eq_nocase(slice_trim(v), SLICE("identity")))
        return 0;
    if (!slice_eq_nocase(slice_trim(v), SLICE("gzip"))) {
        sh_diag_set(d, "Content-Encoding", "only gzip (or no encoding) is accepted");
        *status = 415;
        return SH_ENOTSUP;
    }
    *inflated = BUF_INIT(INFLATED_MAX_BYTES);
    rc = obs_gunzip(buf_slice(&r->body), inflated, d);
    if (rc < 0) {
        *status = rc == SH_ETOOBIG ? 413 : rc == SH_ENOMEM ? 503 : 400;
        return rc;
    }
    *body = buf_slice(inflated);
    return 0;
}

/* Span ingest bodies: OTLP recommends accepting batches up to 20 MiB; exporters send 512 spans
 * (a few hundred KiB) by default. */
size_t admin__traces_body_limit(struct slice path, enum http_method method)
{
    if (method == HTTP_M_POST &&
        (slice_eq(path, SLICE("/api/v2/spans")) || slice_eq(path, SLICE("/v1/traces"))))
        return (size_t)16 << 20;
    return 0;
}

/* Adds every span of <b> (the caller checked there is room, the decoder their sizes: only
 * running out of memory can refuse one, and the store counts it). */
static void store_batch(struct obs_spans *st, const struct obs_batch *b)
{
    size_t refused = 0;

    for (size_t i = 0; i < b->count; i++)
        if (obs_spans_add(st, &b->spans[i]) < 0) refused++;
    if (refused)
        SH_LOG(SH_WARN, "admin", "spans refused by the span store", LF_UINT("count", refused));
}

/* ---- POST /api/v2/spans ------------------------------------------------------------------- */
void admin__zipkin_ingest(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    struct buf inflated = BUF_INIT(0);
    struct slice body;
    int rc, status = 400;

    if (!st) return;
    if (content_type_is(r, "application/x-protobuf") ||
        content_type_is(r, "application/x-thrift")) {
        admin__reply_error(r, 415, "Content-Type",
                           "only Zipkin v2 JSON is accepted (Content-Type: application/json)");
        return;
    }
    if (request_body(r, &inflated, &body, &status, &d) < 0) {
        buf_release(&inflated);
        admin__reply_error(r, status, d.where, d.what);
        return;
    }
    rc = obs_zipkin_decode(body, NULL, &b, &d);
    buf_release(&inflated);
    if (rc < 0) {
        admin__reply_error(r, rc == SH_ENOMEM ? 503 : 400, d.where[0] ? d.where : "body",
                           d.what[0] ? d.what : sh_strerror(rc));
        return;
    }
    if (!obs_spans_has_room(st, b.spans, b.count)) {
        obs_batch_release(&b);
        admin__reply_error(r, 503, NULL, "the span store is busy; retry later");
        return;
    }
    store_batch(st, &b);
    obs_batch_release(&b);
    admin__reply_raw(r, 202, "application/json", SLICE(""), 0);
}

/* ---- POST /v1/traces (OTLP/HTTP) ---------------------------------------------------------- */
/* google.rpc.Status in protobuf: 1 code (varint), 2 message (string). */
static void reply_status_proto(struct admin_req *r, int http_status, int code, const char *msg)
{
    struct buf b = BUF_INIT(4096);
    size_t n = SH_MIN(strlen(msg), (size_t)1000);

    buf_appendc(&b, 0x08);
    buf_appendc(&b, (char)code);
    buf_appendc(&b, 0x12);
    if (n >= 128) {
        buf_appendc(&b, (char)(0x80 | (n & 0x7f)));
        buf_appendc(&b, (char)(n >> 7));
    } else {
        buf_appendc(&b, (char)n);
    }
    buf_append(&b, msg, n);
    admin__reply_raw(r, http_status, "application/x-protobuf", buf_slice(&b), 0);
    buf_release(&b);
}

/* An OTLP error: google.rpc.Status (code 3 INVALID_ARGUMENT for 400 and 415, 8
 * RESOURCE_EXHAUSTED for 413, 14 UNAVAILABLE for 503), with our {"error","field"} beside it
 * in the JSON form. */
static void otlp_error(struct admin_req *r, bool proto, int http_status, const char *field,
                       const char *what)
{
    int code = http_status == 413 ? 8 : http_status == 503 ? 14 : 3;
    char msg[300];

    snprintf(msg, sizeof(msg), "%s%s%s", field ? field : "", field ? ": " : "", what);
    if (proto) {
        reply_status_proto(r, http_status, code, msg);
        return;
    }
    json_t *o =
        json_pack("{s:i, s:s, s:[], s:s}", "code", code, "message", msg, "details", "error", what);
    if (field) json_object_set_new(o, "field", json_string(field));
    admin__reply_json(r, http_status, o);
}

void admin__otlp_ingest(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    bool proto = content_type_is(r, "application/x-protobuf");
    struct buf inflated = BUF_INIT(0);
    struct slice body;
    int rc, status = 400;

    if (!st) return;
    if (!proto && !content_type_is(r, "application/json")) {
        otlp_error(r, false, 415, "Content-Type",
                   "expected application/json or application/x-protobuf");
        return;
    }
    if (request_body(r, &inflated, &body, &status, &d) < 0) {
        buf_release(&inflated);
        otlp_error(r, proto, status, d.where, d.what);
        return;
    }
    rc = proto ? obs_otlp_decode_proto(body, NULL, &b, &d)
               : obs_otlp_decode_json(body, NULL, &b, &d);
    buf_release(&inflated);
    if (rc < 0) {
        otlp_error(r, proto, rc == SH_ENOMEM ? 503 : 400, d.where[0] ? d.where : "body",
                   d.what[0] ? d.what : sh_strerror(rc));
        return;
    }
    if (!obs_spans_has_room(st, b.spans, b.count)) {
        obs_batch_release(&b);
        otlp_error(r, proto, 503, NULL, "the span store is busy; retry later");
        return;
    }
    store_batch(st, &b);
    obs_batch_release(&b);
    if (proto)
        admin__reply_raw(r, 200, "application/x-protobuf", SLICE(""), 0);
    else
        admin__reply_raw(r, 200, "application/json", SLICE("{}"), 0);
}

/* ---- queries ------------------------------------------------------------------------------ */
static void reply_rendered(struct admin_req *r, int rc, struct buf *b)
{
    if (rc == 0 && b->err) rc = b->err;
    if (rc == SH_ENOENT)
        admin__reply_error(r, 404, "traceId", "no trace with this id is stored");
    else if (rc < 0)
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
    else
        admin__reply_raw(r, 200, "application/json", buf_slice(b), 0);
    buf_release(b);
}

/* ?name= lower-cased into the arena (Zipkin stores names lower-case); NULL when absent or
 * empty. */
static const char *name_param(struct admin_req *r, const char *name)
{
    const char *v = admin__query(r, name);

    if (!v || !*v) return NULL;
    char *c = arena_strndup(http_exchange_arena(r->ex), v, strlen(v));
    if (!c) return v;
    for (char *p = c; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return c;
}

/* A number parameter: *out keeps its default when absent; false after answering 400. */
static bool num_param(struct admin_req *r, const char *name, const char *unit, uint64_t *out)
{
    const char *v = admin__query(r, name);
    char what[128];

    if (!v || !*v) return true;
    if (slice_to_u64(slice_from_cstr(v), out) == 0) return true;
    snprintf(what, sizeof(what), "expected a non-negative integer (%s)", unit);
    admin__reply_error(r, 400, name, what);
    return false;
}

void admin__zipkin_services(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct buf b = BUF_INIT(ANSWER_MAX_BYTES);

    if (!st) return;
    reply_rendered(r, obs_spans_services(st, &b), &b);
}

static const char *service_required(struct admin_req *r)
{
    const char *svc = name_param(r, "serviceName");

    if (!svc) admin__reply_error(r, 400, "serviceName", "required");
    return svc;
}

void admin__zipkin_span_names(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct buf b = BUF_INIT(ANSWER_MAX_BYTES);
    const char *svc;

    if (!st || !(svc = service_required(r))) return;
    reply_rendered(r, obs_spans_span_names(st, svc, &b), &b);
}

void admin__zipkin_remote_services(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct buf b = BUF_INIT(ANSWER_MAX_BYTES);
    const char *svc;

    if (!st || !(svc = service_required(r))) return;
    reply_rendered(r, obs_spans_remote_services(st, svc, &b), &b);
}

void admin__zipkin_traces(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct buf b = BUF_INIT(ANSWER_MAX_BYTES);
    struct obs_query q = {0};
    struct sh_diag d = {{0}, {0}};
    uint64_t limit = 10;
    const char *aq;

    if (!st) return;
    q.service = name_param(r, "serviceName");
    q.remote_service = name_param(r, "remoteServiceName");
    q.span_name = name_param(r, "spanName");
    if (q.span_name && strcmp(q.span_name, "all") == 0) q.span_name = NULL; /* the old UI */
    q.end_ms = sh_wall_ms();
    q.lookback_ms = LOOKBACK_DEFAULT_MS;
    if (!num_param(r, "endTs", "milliseconds since the Unix epoch", &q.end_ms) ||
        !num_param(r, "lookback", "milliseconds", &q.lookback_ms) ||
        !num_param(r, "minDuration", "microseconds", &q.min_duration_us) ||
        !num_param(r, "maxDuration", "microseconds", &q.max_duration_us) ||
        !num_param(r, "limit", "traces", &limit))
        return;
    if (limit == 0 || limit > TRACES_LIMIT_MAX) {
        admin__reply_error(r, 400, "limit", "expected a number from 1 to 1000");
        return;
    }
    q.limit = (uint32_t)limit;
    if (q.end_ms > UINT64_MAX / 1000) q.end_ms = UINT64_MAX / 1000;
    if (q.lookback_ms > q.end_ms) q.lookback_ms = q.end_ms;
    aq = admin__query(r, "annotationQuery");
    if (aq && obs_query_parse_annotations(slice_from_cstr(aq), &q, &d) < 0) {
        admin__reply_error(r, 400, d.where, d.what);
        return;
    }
    reply_rendered(r, obs_spans_traces(st, &q, &b), &b);
}

void admin__zipkin_trace(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct buf b = BUF_INIT(ANSWER_MAX_BYTES);
    uint8_t id[TRACE_ID_BYTES];

    if (!st) return;
    static const uint8_t zero[TRACE_ID_BYTES];
    if (obs_trace_id_parse(slice_from_cstr(r->rest), id) < 0 ||
        memcmp(id, zero, sizeof(zero)) == 0) {
        admin__reply_error(r, 400, "traceId", "expected 16 or 32 hex digits");
        return;
    }
    reply_rendered(r, obs_spans_trace(st, id, &b), &b);
}

void admin__zipkin_dependencies(struct admin_req *r)
{
    struct obs_spans *st = span_store(r);
    struct buf b = BUF_INIT(ANSWER_MAX_BYTES);
    uint64_t end_ms = sh_wall_ms(), lookback_ms = LOOKBACK_DEFAULT_MS;

    if (!st) return;
    if (!num_param(r, "endTs", "milliseconds since the Unix epoch", &end_ms) ||
        !num_param(r, "lookback", "milliseconds", &lookback_ms))
        return;
    if (end_ms > UINT64_MAX / 1000) end_ms = UINT64_MAX / 1000;
    if (lookback_ms > end_ms) lookback_ms = end_ms;
    reply_rendered(r, obs_spans_dependencies(st, end_ms, lookback_ms, &b), &b);
}

/* The Zipkin UI asks which tag keys to offer for autocompletion: none are configured. */
void admin__zipkin_autocomplete(struct admin_req *r)
{
    admin__reply_raw(r, 200, "application/json", SLICE("[]"), 0);
}
