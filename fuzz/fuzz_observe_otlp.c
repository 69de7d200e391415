/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_observe_otlp.c: the first byte picks the decoder (bit 0: JSON, else protobuf) and
 * whether the body is gzip'd first (bit 1: obs_gunzip, capped at 1 MiB, must succeed or say
 * why); the rest is a POST /v1/traces body. Either the decoder succeeds and every span is valid
 * (ids not all zero, strings within the limits, encodable as Zipkin JSON), or it fails with where
 * and what and an empty batch. Deterministic, no I/O, frees everything. */
#include "observe/observe.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Checked in every build (CHECK() is compiled out of the release replay). */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) abort();                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct obs_limits lim = {.max_spans = 64, .max_string_bytes = 256, .max_depth = 4};
    struct obs_batch b = {0};
    struct sh_diag d = {{0}, {0}};
    struct buf out = BUF_INIT(1 << 24);
    struct slice body;
    int rc;

    struct buf inflated = BUF_INIT(1 << 20);

    if (size < 1) return 0;
    body = (struct slice){(const char *)data + 1, size - 1};
    if (data[0] & 2) {
        rc = obs_gunzip(body, &inflated, &d);
        CHECK(rc == 0 || rc == SH_EPARSE || rc == SH_ETOOBIG);
        CHECK(rc == 0 || (d.what[0] && inflated.len == 0));
        CHECK(inflated.len <= inflated.max);
        if (rc < 0) {
            buf_release(&inflated);
            buf_release(&out);
            return 0;
        }
        body = buf_slice(&inflated);
    }
    rc = data[0] & 1 ? obs_otlp_decode_json(body, &lim, &b, &d)
                     : obs_otlp_decode_proto(body, &lim, &b, &d);
    CHECK(rc == 0 || rc == SH_EPARSE || rc == SH_ETOOBIG);
    if (rc < 0) {
        CHECK(d.where[0] && d.what[0]);
        CHECK(b.count == 0 && b.spans == NULL);
        buf_release(&inflated);
        buf_release(&out);
        return 0;
    }
    CHECK(b.count <= lim.max_spans);
    for (size_t i = 0; i < b.count; i++) {
        const struct trace_span *s = &b.spans[i];
        CHECK(!zero(s->trace_id, TRACE_ID_BYTES) && !zero(s->span_id, TRACE_SPAN_ID_BYTES));
        CHECK(s->name.len <= lim.max_string_bytes && s->tag_count <= TRACE_SPAN_MAX_TAGS);
        for (size_t k = 0; k < s->tag_count; k++)
            CHECK(s->tags[k].value.len <= lim.max_string_bytes);
        buf_reset(&out);
        CHECK(obs_zipkin_encode_span(&out, s) == 0);
    }
    obs_batch_release(&b);
    buf_release(&out);
    buf_release(&inflated);
    return 0;
}
