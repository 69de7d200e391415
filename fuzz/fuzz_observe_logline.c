/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_observe_logline.c: the first byte picks the stream (stdout, stderr, access), the
 * rest is one log line for obs_log_parse; the same bytes are also a full-text query for
 * obs_log_fts_query. Checks what observe.h promises: the message lies inside the line or the
 * parser's own buffer, ids are empty or exactly 32/16 lowercase hex digits (never all zero),
 * the level is in range; a query is either refused naming q or quoted so that every '"' of
 * the input is doubled inside a quoted string. Deterministic, no I/O, frees everything. */
#include "observe/observe.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_hex(const char *id, size_t want)
{
    size_t n = strlen(id);
    bool nonzero = false;

    assert(n == 0 || n == want);
    for (size_t i = 0; i < n; i++) {
        assert((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'));
        nonzero |= id[i] != '0';
    }
    assert(n == 0 || nonzero);
    (void)nonzero;
    (void)want;
}

/* The expression is a sequence of "..." strings (with "" inside) each maybe followed by '*',
 * separated by one space. */
static void check_fts(const struct buf *b)
{
    size_t i = 0;

    assert(b->len > 0);
    while (i < b->len) {
        assert(b->data[i] == '"');
        i++;
        for (;;) {
            assert(i < b->len);
            if (b->data[i] == '"') {
                if (i + 1 < b->len && b->data[i + 1] == '"') {
                    i += 2;
                    continue;
                }
                i++;
                break;
            }
            i++;
        }
        if (i < b->len && b->data[i] == '*') i++;
        if (i < b->len) {
            assert(b->data[i] == ' ');
            i++;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct obs_log_fields f;
    struct slice line;
    struct buf b = BUF_INIT(16 * 1024);
    struct sh_diag d = {{0}, {0}};
    int rc;

    if (size < 1) return 0;
    line = (struct slice){(const char *)data + 1, size - 1};
    obs_log_parse(line, (enum obs_log_stream)(data[0] % 3), &f);
    assert(f.level >= OBS_LEVEL_NONE && f.level <= OBS_LEVEL_FATAL);
    assert(f.message.len <= OBS_LOG_LINE_MAX);
    assert((f.message.ptr >= line.ptr && f.message.ptr + f.message.len <= line.ptr + line.len) ||
           (f.message.ptr >= f.msg_buf &&
            f.message.ptr + f.message.len <= f.msg_buf + sizeof(f.msg_buf)));
    check_hex(f.trace_id, 32);
    check_hex(f.span_id, 16);
    rc = obs_log_fts_query(line, &b, &d);
    assert(rc == 0 || rc == SH_EINVAL || rc == SH_EPARSE || rc == SH_ETOOBIG);
    if (rc == 0)
        check_fts(&b);
    else
        assert(!strcmp(d.where, "q") && d.what[0]);
    buf_release(&b);
    return 0;
}
