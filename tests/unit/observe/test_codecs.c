/* SPDX-License-Identifier: MIT */
/* test_codecs.c: the trace codecs: Zipkin v2 JSON decoding (every field, the strict id rules,
 * the field named with its index on each refusal, limits) and encoding (a round trip), and
 * OTLP/HTTP decoding from JSON and from protobuf written here byte by byte (service.name,
 * kinds, attributes to tags, events to annotations, status to error; refusals named by path). */
#include "test_util.h"

#include "observe/observe.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"
#define PID "00f067aa0ba90200"

static bool eq(struct slice s, const char *c)
{
    return slice_eq(s, slice_from_cstr(c));
}

static const char *tag(const struct trace_span *s, const char *key)
{
    static char out[256];
    for (size_t i = 0; i < s->tag_count; i++)
        if (eq(s->tags[i].key, key)) {
            snprintf(out, sizeof(out), "%.*s", (int)s->tags[i].value.len, s->tags[i].value.ptr);
            return out;
        }
    return NULL;
}

/* ---- Zipkin ---- */
static const char zipkin_full[] =
    "[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"parentId\":\"" PID "\",\"kind\":\"CLIENT\","
    "\"name\":\"GET /API\",\"timestamp\":1700000000000000,\"duration\":1500,"
    "\"localEndpoint\":{\"serviceName\":\"Api\",\"ipv4\":\"10.0.0.1\",\"port\":8080},"
    "\"remoteEndpoint\":{\"serviceName\":\"db\",\"ipv6\":\"::1\",\"port\":5432},"
    "\"annotations\":[{\"timestamp\":1700000000000100,\"value\":\"retry\"}],"
    "\"tags\":{\"http.method\":\"GET\",\"error\":\"boom\"},\"debug\":true,\"shared\":false,"
    "\"unknownField\":{\"ignored\":[1,2]}}]";

static void test_zipkin__decodes_every_field(void **state)
{
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    uint8_t tid[16];
    (void)state;

    assert_int_equal(obs_zipkin_decode(slice_from_cstr(zipkin_full), NULL, &b, &d), 0);
    assert_int_equal(b.count, 1);
    const struct trace_span *s = &b.spans[0];
    assert_int_equal(obs_trace_id_parse(SLICE(TID), tid), 0);
    assert_memory_equal(s->trace_id, tid, 16);
    assert_int_equal(s->span_id[7], 0xb7);
    assert_int_equal(s->parent_id[6], 0x02);
    assert_int_equal(s->kind, TRACE_KIND_CLIENT);
    assert_true(eq(s->name, "get /api")); /* lower-cased, as Zipkin does */
    assert_true(eq(s->local.service, "api"));
    assert_true(eq(s->local.ip, "10.0.0.1"));
    assert_int_equal(s->local.port, 8080);
    assert_true(eq(s->remote.service, "db"));
    assert_true(eq(s->remote.ip, "::1"));
    assert_int_equal(s->timestamp_us, 1700000000000000ull);
    assert_int_equal(s->duration_us, 1500);
    assert_int_equal(s->annotation_count, 1);
    assert_true(eq(s->annotations[0].value, "retry"));
    assert_string_equal(tag(s, "error"), "boom");
    assert_true(s->is_error && s->debug && !s->shared);
    obs_batch_release(&b);
}

static void test_zipkin__encode_decode_round_trip(void **state)
{
    struct obs_batch b = {0}, b2 = {0};
    struct sh_diag d = {{0}, {0}};
    struct buf out = BUF_INIT(0);
    (void)state;

    assert_int_equal(obs_zipkin_decode(slice_from_cstr(zipkin_full), NULL, &b, &d), 0);
    buf_appendc(&out, '[');
    assert_int_equal(obs_zipkin_encode_span(&out, &b.spans[0]), 0);
    buf_appendc(&out, ']');
    assert_non_null(strstr(out.data, "\"ipv6\":\"::1\""));
    assert_non_null(strstr(out.data, "\"kind\":\"CLIENT\""));
    assert_int_equal(obs_zipkin_decode(buf_slice(&out), NULL, &b2, &d), 0);
    const struct trace_span *x = &b.spans[0], *y = &b2.spans[0];
    assert_memory_equal(x->trace_id, y->trace_id, 16);
    assert_memory_equal(x->parent_id, y->parent_id, 8);
    assert_int_equal(x->timestamp_us, y->timestamp_us);
    assert_int_equal(x->tag_count, y->tag_count);
    assert_true(eq(y->remote.service, "db") && y->remote.port == 5432);
    assert_true(y->debug && y->is_error);
    buf_release(&out);
    obs_batch_release(&b);
    obs_batch_release(&b2);
}

static void test_zipkin__64_bit_trace_id_answers_as_16_hex(void **state)
{
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    char hex[33];
    (void)state;

    assert_int_equal(
        obs_zipkin_decode(SLICE("[{\"traceId\":\"" SID "\",\"id\":\"" SID "\"}]"), NULL, &b, &d),
        0);
    obs_trace_id_hex(b.spans[0].trace_id, hex);
    assert_string_equal(hex, SID);
    obs_batch_release(&b);
}

struct bad_case {
    const char *body, *where;
    int rc;
};

static void test_zipkin__refusals_name_the_field(void **state)
{
    static const struct bad_case cases[] = {
        {"[{", "body", SH_EPARSE},
        {"{}", "body", SH_EPARSE},
        {"[1]", "[0]", SH_EPARSE},
        {"[{\"id\":\"" SID "\"}]", "[0].traceId", SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\"},{\"traceId\":\"abc\",\"id\":\"" SID "\"}]",
         "[1].traceId", SH_EPARSE},
        {"[{\"traceId\":\"4BF92F3577B34DA6A3CE929D0E0E4736\",\"id\":\"" SID "\"}]", "[0].traceId",
         SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"0000000000000000\"}]", "[0].id", SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "1\"}]", "[0].id", SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"parentId\":\"" TID "\"}]", "[0].parentId",
         SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"kind\":\"server\"}]", "[0].kind",
         SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"timestamp\":1.5}]", "[0].timestamp",
         SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"duration\":-1}]", "[0].duration",
         SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"tags\":{\"a\":1}}]", "[0].tags.a",
         SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"localEndpoint\":{\"port\":70000}}]",
         "[0].localEndpoint.port", SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"annotations\":[{\"value\":5}]}]",
         "[0].annotations[0].value", SH_EPARSE},
        {"[{\"traceId\":\"" TID "\",\"id\":\"" SID "\",\"debug\":\"yes\"}]", "[0].debug",
         SH_EPARSE},
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct obs_batch b = {0};
        struct sh_diag d = {{0}, {0}};
        int rc = obs_zipkin_decode(slice_from_cstr(cases[i].body), NULL, &b, &d);
        if (rc != cases[i].rc || strcmp(d.where, cases[i].where) != 0)
            fail_msg("case %zu (%s): rc %s where '%s' what '%s'", i, cases[i].body, sh_errname(rc),
                     d.where, d.what);
        assert_int_equal(b.count, 0); /* nothing kept */
        assert_null(b.spans);
    }
}

static void test_zipkin__limits(void **state)
{
    struct buf body = BUF_INIT(0);
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    (void)state;

    buf_appendc(&body, '[');
    for (int i = 0; i < 11; i++)
        buf_appendf(&body, "%s{\"traceId\":\"%s\",\"id\":\"%s\"}", i ? "," : "", TID, SID);
    buf_appendc(&body, ']');
    assert_int_equal(
        obs_zipkin_decode(buf_slice(&body), &(struct obs_limits){.max_spans = 10}, &b, &d),
        SH_ETOOBIG);
    assert_int_equal(
        obs_zipkin_decode(buf_slice(&body), &(struct obs_limits){.max_spans = 11}, &b, &d), 0);
    assert_int_equal(b.count, 11);
    obs_batch_release(&b);
    buf_reset(&body);
    buf_appendf(&body, "[{\"traceId\":\"%s\",\"id\":\"%s\",\"name\":\"%s\"}]", TID, SID,
                "0123456789abcdefX");
    assert_int_equal(
        obs_zipkin_decode(buf_slice(&body), &(struct obs_limits){.max_string_bytes = 16}, &b, &d),
        SH_ETOOBIG);
    assert_string_equal(d.where, "[0].name");
    /* more tags than a span keeps: the rest are dropped and counted, not refused */
    buf_reset(&body);
    buf_appendf(&body, "[{\"traceId\":\"%s\",\"id\":\"%s\",\"tags\":{", TID, SID);
    for (int i = 0; i < TRACE_SPAN_MAX_TAGS + 3; i++)
        buf_appendf(&body, "%s\"k%d\":\"v\"", i ? "," : "", i);
    buf_appends(&body, SLICE("}}]"));
    assert_int_equal(obs_zipkin_decode(buf_slice(&body), NULL, &b, &d), 0);
    assert_int_equal(b.spans[0].tag_count, TRACE_SPAN_MAX_TAGS);
    assert_int_equal(b.tags_dropped, 3);
    obs_batch_release(&b);
    buf_release(&body);
}

/* ---- OTLP JSON ---- */
static const char otlp_json[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
    "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"Checkout\"}},"
    "{\"key\":\"host.name\",\"value\":{\"stringValue\":\"h1\"}}]},"
    "\"scopeSpans\":[{\"scope\":{\"name\":\"lib\"},\"spans\":["
    "{\"traceId\":\"" TID "\",\"spanId\":\"" SID "\",\"parentSpanId\":\"\",\"name\":\"GET /api\","
    "\"kind\":2,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":"
    "1700000000001500000,\"attributes\":["
    "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"200\"}},"
    "{\"key\":\"ok\",\"value\":{\"boolValue\":true}},"
    "{\"key\":\"ratio\",\"value\":{\"doubleValue\":0.5}},"
    "{\"key\":\"list\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"a\"},"
    "{\"intValue\":3}]}}}],"
    "\"events\":[{\"timeUnixNano\":\"1700000000000500000\",\"name\":\"cache miss\"}],"
    "\"status\":{\"code\":2,\"message\":\"db down\"}},"
    "{\"traceId\":\"" TID "\",\"spanId\":\"" PID "\",\"parentSpanId\":\"" SID "\","
    "\"name\":\"query\",\"kind\":3,\"startTimeUnixNano\":1700000000000100000,"
    "\"endTimeUnixNano\":1700000000000900000,\"attributes\":[{\"key\":\"peer.service\","
    "\"value\":{\"stringValue\":\"Postgres\"}}]}]}]}]}";

static void test_otlp__json_maps_onto_zipkin(void **state)
{
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    (void)state;

    assert_int_equal(obs_otlp_decode_json(slice_from_cstr(otlp_json), NULL, &b, &d), 0);
    assert_int_equal(b.count, 2);
    const struct trace_span *s = &b.spans[0], *c = &b.spans[1];
    assert_true(eq(s->local.service, "checkout"));
    assert_true(eq(s->name, "get /api"));
    assert_int_equal(s->kind, TRACE_KIND_SERVER);
    assert_int_equal(s->timestamp_us, 1700000000000000ull);
    assert_int_equal(s->duration_us, 1500);
    assert_string_equal(tag(s, "http.response.status_code"), "200");
    assert_string_equal(tag(s, "ok"), "true");
    assert_string_equal(tag(s, "ratio"), "0.5");
    assert_string_equal(tag(s, "list"), "[\"a\",3]");
    assert_string_equal(tag(s, "otel.scope.name"), "lib");
    assert_string_equal(tag(s, "error"), "db down");
    assert_true(s->is_error);
    assert_int_equal(s->annotation_count, 1);
    assert_true(eq(s->annotations[0].value, "cache miss"));
    assert_int_equal(s->annotations[0].timestamp_us, 1700000000000500ull);
    assert_true(obs_trace_id_parse(SLICE(TID), (uint8_t[16]){0}) == 0);
    assert_int_equal(c->kind, TRACE_KIND_CLIENT);
    assert_true(eq(c->remote.service, "postgres"));
    assert_int_equal(c->parent_id[7], 0xb7);
    assert_false(c->is_error);
    obs_batch_release(&b);
}

static void test_otlp__json_refusals_name_the_path(void **state)
{
    static const struct bad_case cases[] = {
        {"{", "body", SH_EPARSE},
        {"{\"resourceSpans\":{}}", "resourceSpans", SH_EPARSE},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"abcd\",\"spanId\":\"" SID
         "\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].traceId", SH_EPARSE},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID
         "\",\"spanId\":\"" SID "\"},{\"traceId\":\"" TID "\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[1].spanId", SH_EPARSE},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID
         "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":\"soon\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano", SH_EPARSE},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID
         "\",\"spanId\":\"" SID "\",\"kind\":\"SPAN_KIND_SERVER\"}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].kind", SH_EPARSE},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" TID
         "\",\"spanId\":\"" SID "\",\"startTimeUnixNano\":5,\"endTimeUnixNano\":4}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].endTimeUnixNano", SH_EPARSE},
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct obs_batch b = {0};
        struct sh_diag d = {{0}, {0}};
        int rc = obs_otlp_decode_json(slice_from_cstr(cases[i].body), NULL, &b, &d);
        if (rc != cases[i].rc || strcmp(d.where, cases[i].where) != 0)
            fail_msg("case %zu: rc %s where '%s' what '%s'", i, sh_errname(rc), d.where, d.what);
        assert_int_equal(b.count, 0);
    }
}

/* ---- OTLP protobuf, written by hand ---- */
static void pb_varint(struct buf *b, uint64_t v)
{
    while (v >= 0x80) {
        buf_appendc(b, (char)(v | 0x80));
        v >>= 7;
    }
    buf_appendc(b, (char)v);
}

static void pb_bytes(struct buf *b, uint32_t field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    buf_append(b, p, n);
}

static void pb_msg(struct buf *b, uint32_t field, const struct buf *inner)
{
    pb_bytes(b, field, inner->data ? inner->data : "", inner->len);
}

static void pb_fixed64(struct buf *b, uint32_t field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3 | 1);
    for (int i = 0; i < 8; i++)
        buf_appendc(b, (char)(v >> (8 * i)));
}

static void pb_kv_str(struct buf *b, uint32_t field, const char *k, const char *v)
{
    struct buf kv = BUF_INIT(0), any = BUF_INIT(0);
    pb_bytes(&any, 1, v, strlen(v));
    pb_bytes(&kv, 1, k, strlen(k));
    pb_msg(&kv, 2, &any);
    pb_msg(b, field, &kv);
    buf_release(&kv);
    buf_release(&any);
}

static void pb_kv_int(struct buf *b, uint32_t field, const char *k, int64_t v)
{
    struct buf kv = BUF_INIT(0), any = BUF_INIT(0);
    pb_varint(&any, 3 << 3);
    pb_varint(&any, (uint64_t)v);
    pb_bytes(&kv, 1, k, strlen(k));
    pb_msg(&kv, 2, &any);
    pb_msg(b, field, &kv);
    buf_release(&kv);
    buf_release(&any);
}

/* One request: service "pb-svc", one CLIENT span with an attribute, an event and an error
 * status; trace id of <tid_len> bytes. */
static void build_request(struct buf *out, size_t tid_len, const char *name)
{
    struct buf span = BUF_INIT(0), ev = BUF_INIT(0), st = BUF_INIT(0), scope = BUF_INIT(0),
               ss = BUF_INIT(0), res = BUF_INIT(0), rs = BUF_INIT(0);
    uint8_t tid[17], sid[8];

    for (size_t i = 0; i < sizeof(tid); i++)
        tid[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof(sid); i++)
        sid[i] = (uint8_t)(0xa0 + i);
    pb_bytes(&span, 1, tid, tid_len);
    pb_bytes(&span, 2, sid, 8);
    pb_bytes(&span, 4, "", 0); /* an empty parent: a root */
    pb_bytes(&span, 5, name, strlen(name));
    pb_varint(&span, 6 << 3);
    pb_varint(&span, 3);
    pb_fixed64(&span, 7, 1700000000000000000ull);
    pb_fixed64(&span, 8, 1700000000002000000ull);
    pb_kv_int(&span, 9, "http.response.status_code", 503);
    pb_kv_str(&span, 9, "server.address", "Payments");
    pb_varint(&span, 10 << 3); /* dropped_attributes_count: skipped */
    pb_varint(&span, 0);
    pb_fixed64(&ev, 1, 1700000000001000000ull);
    pb_bytes(&ev, 2, "retry", 5);
    pb_msg(&span, 11, &ev);
    pb_bytes(&st, 2, "timeout", 7);
    pb_varint(&st, 3 << 3);
    pb_varint(&st, 2);
    pb_msg(&span, 15, &st);
    pb_varint(&span, 16 << 3 | 5); /* flags, fixed32: skipped */
    buf_append(&span, "\x01\x01\x00\x00", 4);
    pb_bytes(&scope, 1, "pb-lib", 6);
    pb_msg(&ss, 1, &scope);
    pb_msg(&ss, 2, &span);
    pb_kv_str(&res, 1, "service.name", "pb-svc");
    pb_msg(&rs, 1, &res);
    pb_msg(&rs, 2, &ss);
    pb_msg(out, 1, &rs);
    buf_release(&span);
    buf_release(&ev);
    buf_release(&st);
    buf_release(&scope);
    buf_release(&ss);
    buf_release(&res);
    buf_release(&rs);
}

static void test_otlp__protobuf_maps_onto_zipkin(void **state)
{
    struct buf req = BUF_INIT(0);
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    (void)state;

    build_request(&req, 16, "POST /Charge");
    assert_int_equal(obs_otlp_decode_proto(buf_slice(&req), NULL, &b, &d), 0);
    assert_int_equal(b.count, 1);
    const struct trace_span *s = &b.spans[0];
    assert_int_equal(s->trace_id[0], 1);
    assert_int_equal(s->trace_id[15], 16);
    assert_int_equal(s->span_id[0], 0xa0);
    assert_true(obs_trace_id_parse(SLICE("0000000000000000"), (uint8_t[16]){0}) == 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(s->parent_id[i], 0);
    assert_true(eq(s->name, "post /charge"));
    assert_int_equal(s->kind, TRACE_KIND_CLIENT);
    assert_true(eq(s->local.service, "pb-svc"));
    assert_true(eq(s->remote.service, "payments"));
    assert_int_equal(s->duration_us, 2000);
    assert_string_equal(tag(s, "http.response.status_code"), "503");
    assert_string_equal(tag(s, "error"), "timeout");
    assert_string_equal(tag(s, "otel.scope.name"), "pb-lib");
    assert_true(s->is_error);
    assert_int_equal(s->annotation_count, 1);
    assert_int_equal(s->annotations[0].timestamp_us, 1700000000001000ull);
    obs_batch_release(&b);
    buf_release(&req);
}

static void test_otlp__protobuf_refusals(void **state)
{
    struct buf req = BUF_INIT(0);
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    (void)state;

    build_request(&req, 15, "x");
    assert_int_equal(obs_otlp_decode_proto(buf_slice(&req), NULL, &b, &d), SH_EPARSE);
    assert_string_equal(d.where, "resourceSpans[0].scopeSpans[0].spans[0].traceId");
    assert_int_equal(b.count, 0);
    /* every truncation of a valid request is refused or decodes a prefix, never crashes */
    buf_reset(&req);
    build_request(&req, 16, "x");
    for (size_t n = 1; n < req.len; n++) {
        struct sh_diag d2 = {{0}, {0}};
        int rc = obs_otlp_decode_proto((struct slice){req.data, n}, NULL, &b, &d2);
        assert_true(rc == 0 || rc == SH_EPARSE);
        assert_true(rc == 0 || (b.count == 0 && d2.what[0]));
        obs_batch_release(&b);
    }
    assert_int_equal(obs_otlp_decode_proto(SLICE("\xff\xff\xff"), NULL, &b, &d), SH_EPARSE);
    assert_int_equal(obs_otlp_decode_proto(SLICE("\x0b"), NULL, &b, &d), SH_EPARSE); /* group */
    /* invalid UTF-8 in a string */
    buf_reset(&req);
    build_request(&req, 16, "bad \xc3\x28 name");
    assert_int_equal(obs_otlp_decode_proto(buf_slice(&req), NULL, &b, &d), SH_EPARSE);
    assert_string_equal(d.where, "resourceSpans[0].scopeSpans[0].spans[0].name");
    /* an empty request is valid and holds nothing */
    assert_int_equal(obs_otlp_decode_proto(SLICE(""), NULL, &b, &d), 0);
    assert_int_equal(b.count, 0);
    obs_batch_release(&b);
    buf_release(&req);
}

static void test_otlp__protobuf_nesting_is_bounded(void **state)
{
    struct buf any = BUF_INIT(0), next = BUF_INIT(0), span = BUF_INIT(0), ss = BUF_INIT(0),
               rs = BUF_INIT(0), req = BUF_INIT(0), kv = BUF_INIT(0), arr = BUF_INIT(0);
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    uint8_t id[16] = {1}, sid[8] = {2};
    (void)state;

    pb_bytes(&any, 1, "leaf", 4);
    for (int i = 0; i < 20; i++) { /* AnyValue{array_value{values: [AnyValue]}} */
        buf_reset(&arr);
        pb_msg(&arr, 1, &any);
        buf_reset(&next);
        pb_msg(&next, 5, &arr);
        buf_reset(&any);
        buf_append(&any, next.data, next.len);
    }
    pb_bytes(&kv, 1, "deep", 4);
    pb_msg(&kv, 2, &any);
    pb_bytes(&span, 1, id, 16);
    pb_bytes(&span, 2, sid, 8);
    pb_msg(&span, 9, &kv);
    pb_msg(&ss, 2, &span);
    pb_msg(&rs, 2, &ss);
    pb_msg(&req, 1, &rs);
    assert_int_equal(obs_otlp_decode_proto(buf_slice(&req), NULL, &b, &d), SH_ETOOBIG);
    assert_int_equal(
        obs_otlp_decode_proto(buf_slice(&req), &(struct obs_limits){.max_depth = 32}, &b, &d), 0);
    obs_batch_release(&b);
    buf_release(&any);
    buf_release(&next);
    buf_release(&span);
    buf_release(&ss);
    buf_release(&rs);
    buf_release(&req);
    buf_release(&kv);
    buf_release(&arr);
}

/* ---- gzip ---- */
static void gz(struct buf *out, const void *p, size_t n)
{
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    assert_int_equal(buf_reserve(out, deflateBound(&zs, (uLong)n) + 1), 0);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)(out->cap - out->len - 1);
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out->len += zs.total_out;
    deflateEnd(&zs);
}

static void test_gzip__inflates_capped(void **state)
{
    struct buf z = BUF_INIT(0), out = BUF_INIT(1 << 20);
    struct sh_diag d = {{0}, {0}};
    static char zeros[4 << 20];
    (void)state;

    gz(&z, "hello ", 6);
    gz(&z, "world", 5); /* two members are one body */
    assert_int_equal(obs_gunzip(buf_slice(&z), &out, &d), 0);
    assert_string_equal(out.data, "hello world");
    /* a bomb: 4 MiB of zeros is a few KiB compressed; the cap stops it */
    buf_reset(&z);
    buf_reset(&out);
    gz(&z, zeros, sizeof(zeros));
    assert_true(z.len < 64 * 1024);
    assert_int_equal(obs_gunzip(buf_slice(&z), &out, &d), SH_ETOOBIG);
    assert_int_equal(out.len, 0);
    assert_string_equal(d.where, "body");
    /* cut short, corrupt, not gzip */
    buf_reset(&z);
    gz(&z, "hello world", 11);
    assert_int_equal(obs_gunzip((struct slice){z.data, z.len - 4}, &out, &d), SH_EPARSE);
    z.data[12] ^= 0x55;
    assert_int_equal(obs_gunzip(buf_slice(&z), &out, &d), SH_EPARSE);
    assert_int_equal(obs_gunzip(SLICE("[{\"plain\": 1}]"), &out, &d), SH_EPARSE);
    assert_int_equal(obs_gunzip(SLICE(""), &out, &d), SH_EPARSE);
    buf_release(&z);
    buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_zipkin__decodes_every_field),
        SH_TEST(test_zipkin__encode_decode_round_trip),
        SH_TEST(test_zipkin__64_bit_trace_id_answers_as_16_hex),
        SH_TEST(test_zipkin__refusals_name_the_field),
        SH_TEST(test_zipkin__limits),
        SH_TEST(test_otlp__json_maps_onto_zipkin),
        SH_TEST(test_otlp__json_refusals_name_the_path),
        SH_TEST(test_otlp__protobuf_maps_onto_zipkin),
        SH_TEST(test_otlp__protobuf_refusals),
        SH_TEST(test_otlp__protobuf_nesting_is_bounded),
        SH_TEST(test_gzip__inflates_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
