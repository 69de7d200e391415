/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_observe_zipkin.c: the whole input is a POST /api/v2/spans body for
 * obs_zipkin_decode. On success every span is encoded back to Zipkin JSON and decoded again
 * (the round trip must succeed and keep the span count), and packed for the store; on failure
 * the diagnostic must say where and what, and the batch must be empty. Deterministic, no I/O,
 * frees everything. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct obs_limits lim = {.max_spans = 64, .max_string_bytes = 256};
    struct obs_batch b = {0}, again = {0};
    struct sh_diag d = {{0}, {0}};
    struct buf out = BUF_INIT(1 << 24);
    int rc = obs_zipkin_decode((struct slice){(const char *)data, size}, &lim, &b, &d);

    CHECK(rc == 0 || rc == SH_EPARSE || rc == SH_ETOOBIG);
    if (rc < 0) {
        CHECK(d.where[0] && d.what[0]);
        CHECK(b.count == 0 && b.spans == NULL);
        return 0;
    }
    buf_appendc(&out, '[');
    for (size_t i = 0; i < b.count; i++) {
        if (i) buf_appendc(&out, ',');
        CHECK(obs_zipkin_encode_span(&out, &b.spans[i]) == 0);
    }
    buf_appendc(&out, ']');
    rc = obs_zipkin_decode(buf_slice(&out), &lim, &again, &d);
    CHECK(rc == 0 && again.count == b.count);
    for (size_t i = 0; i < b.count; i++) {
        CHECK(memcmp(again.spans[i].trace_id, b.spans[i].trace_id, TRACE_ID_BYTES) == 0);
        CHECK(again.spans[i].duration_us == b.spans[i].duration_us);
        CHECK(again.spans[i].tag_count >= b.spans[i].tag_count);
    }
    obs_batch_release(&again);
    obs_batch_release(&b);
    buf_release(&out);
    return 0;
}
