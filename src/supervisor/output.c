/* SPDX-License-Identifier: MIT */
/* output.c: the children's stdout and stderr, read from their pipes and delivered line by line
 * (cut at cfg.max_line_bytes, the rest of a cut line dropped, so memory stays bounded).
 * One read buffer, in procs, serves every pipe: libuv calls alloc and read back to back on
 * this thread, so it is never in use twice. When the main process exits, what it wrote is
 * already in the pipes: they are drained with plain read(2) and closed, so every line is
 * delivered before the exit is handled. */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* ---- output ----------------------------------------------------------------------------- */

static void deliver(struct out_stream *os, bool is_cut)
{
    struct run *run = os->run;
    struct sup_procs *procs = run->procs;
    size_t len = os->len;

    os->len = 0;
    if (!run->inst || !procs->cfg.on_line) return;
    if (!is_cut && len > 0 && os->line[len - 1] == '\r') len--;
    procs->cfg.on_line(procs->cfg.data, run->inst->id, os->which,
                       (struct slice){.ptr = os->line, .len = len}, is_cut);
}

static void feed(struct out_stream *os, const char *p, size_t n)
{
    size_t max = os->run->procs->cfg.max_line_bytes;

    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t part = nl ? (size_t)(nl - p) : n;

        if (os->is_skipping) {
            /* The rest of a cut line. */
        } else {
            size_t room = max - os->len, take = SH_MIN(part, room);

            memcpy(os->line + os->len, p, take);
            os->len += take;
            if (part > room) { /* a full line that is not over: cut it now */
                deliver(os, true);
                os->is_skipping = true;
            }
        }
        if (!nl) return;
        if (os->is_skipping)
            os->is_skipping = false;
        else
            deliver(os, false);
        p = nl + 1;
        n -= part + 1;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct out_stream *os = h->data;

    (void)suggested;
    buf->base = os->run->procs->read_buf;
    buf->len = sizeof(os->run->procs->read_buf);
}

static void stream_finish(struct out_stream *os)
{
    if (!os->is_reading) return;
    os->is_reading = false;
    uv_read_stop((uv_stream_t *)&os->pipe);
    if (os->len > 0 && !os->is_skipping) deliver(os, false);
    os->len = 0;
    uv_close((uv_handle_t *)&os->pipe, sup__run_handle_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct out_stream *os = s->data;

    if (nread > 0)
        feed(os, buf->base, (size_t)nread);
    else if (nread < 0) /* UV_EOF or an error: either way this stream is done */
        stream_finish(os);
}

/* Reads what is already in the pipe without blocking (the pipe is non-blocking). */
void sup__stream_drain(struct out_stream *os)
{
    uv_os_fd_t fd;
    char *buf = os->run->procs->read_buf;

    if (!os->is_reading || uv_fileno((uv_handle_t *)&os->pipe, &fd) != 0) return;
    uv_read_stop((uv_stream_t *)&os->pipe);
    for (int i = 0; i < 64; i++) { /* bounded: a grandchild may keep writing */
        ssize_t n = read(fd, buf, READ_BUF_BYTES);

        if (n > 0) {
            feed(os, buf, (size_t)n);
            continue;
        }
        if (n == -1 && errno == EINTR) continue;
        break;
    }
    stream_finish(os);
}

void sup__stream_start(struct out_stream *os)
{
    if (uv_read_start((uv_stream_t *)&os->pipe, on_alloc, on_read) != 0) {
        /* a pipe libuv just made: cannot fail short of a bug; the exit drains it anyway */
    }
}
