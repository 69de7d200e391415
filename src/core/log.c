/* SPDX-License-Identifier: MIT */
/* log.c: structured records as text (TTY) or JSON lines. Each record is rendered into a
 * stack buffer and written with one write(2), so lines from several threads never interleave.
 * Configuration is set once at start and read-only afterwards. */
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sh_log_min_level = SH_INFO;
static enum sh_log_format log_format = SH_LOG_TEXT;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void sh_log_setup(enum sh_log_level min, enum sh_log_format fmt, int fd)
{
    sh_log_min_level = (int)min;
    log_fd = fd;
    if (fmt == SH_LOG_AUTO)
        fmt = isatty(fd) ? SH_LOG_TEXT : SH_LOG_JSON;
    log_format = fmt;
}

int sh_log_level_parse(struct slice s)
{
    for (size_t i = 0; i < SH_ARRAY_LEN(level_names); i++) {
        if (slice_eq_nocase(s, slice_from_cstr(level_names[i])))
            return (int)i;
    }
    if (slice_eq_nocase(s, SLICE("warning")))
        return SH_WARN;
    return -1;
}

/* Peer bytes in logs are bounded and escaped (style.md B7). */
enum { LOG_VALUE_MAX = 512, LOG_LINE_MAX = 8192 };

static void append_value_text(struct buf *b, const struct log_field *f)
{
    char tmp[64];

    switch (f->type) {
    case LF_T_STR: {
        struct slice s = f->v.s;
        bool quote = s.len == 0;
        if (s.len > LOG_VALUE_MAX)
            s.len = LOG_VALUE_MAX;
        for (size_t i = 0; i < s.len && !quote; i++)
            quote = s.ptr[i] == ' ' || s.ptr[i] == '"' || (unsigned char)s.ptr[i] < 0x20;
        if (quote)
            buf_appendc(b, '"');
        buf_append_json_str(b, s);
        if (quote)
            buf_appendc(b, '"');
        break;
    }
    case LF_T_INT:
        buf_appendf(b, "%lld", (long long)f->v.i);
        break;
    case LF_T_UINT:
        buf_appendf(b, "%llu", (unsigned long long)f->v.u);
        break;
    case LF_T_DBL:
        snprintf(tmp, sizeof(tmp), "%g", f->v.d);
        buf_appends(b, slice_from_cstr(tmp));
        break;
    case LF_T_ERR:
        buf_appendf(b, "\"%s\"", sh_strerror((int)f->v.i));
        break;
    }
}

static void append_value_json(struct buf *b, const struct log_field *f)
{
    struct slice s;

    switch (f->type) {
    case LF_T_STR:
        s = f->v.s;
        if (s.len > LOG_VALUE_MAX)
            s.len = LOG_VALUE_MAX;
        buf_appendc(b, '"');
        buf_append_json_str(b, s);
        buf_appendc(b, '"');
        break;
    case LF_T_ERR:
        buf_appendf(b, "\"%s\"", sh_strerror((int)f->v.i));
        break;
    default:
        append_value_text(b, f);
    }
}

void sh_log_write(enum sh_log_level lvl, const char *comp, const char *msg,
                  const struct log_field *fields, size_t count)
{
    char line[LOG_LINE_MAX + 2];
    struct buf b = BUF_INIT(LOG_LINE_MAX);
    uint64_t now = sh_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    char ts[32];
    const char *lname = level_names[(unsigned)lvl < 4 ? lvl : 3];

    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_format == SH_LOG_JSON) {
        buf_appendf(&b, "{\"ts\":\"%s.%03uZ\",\"level\":\"%s\",\"comp\":\"%s\",\"msg\":\"", ts,
                    (unsigned)(now % 1000), lname, comp);
        buf_append_json_str(&b, slice_from_cstr(msg));
        buf_appendc(&b, '"');
        for (size_t i = 0; i < count; i++) {
            buf_appendf(&b, ",\"%s\":", fields[i].key);
            append_value_json(&b, &fields[i]);
        }
        buf_appendc(&b, '}');
    } else {
        buf_appendf(&b, "%s.%03u %-5s %s: %s", ts + 11, (unsigned)(now % 1000), lname, comp, msg);
        for (size_t i = 0; i < count; i++) {
            buf_appendf(&b, " %s=", fields[i].key);
            append_value_text(&b, &fields[i]);
        }
    }
    /* An over-long record is cut, never dropped. */
    size_t n = b.len;
    if (b.data)
        memcpy(line, b.data, n);
    line[n++] = '\n';
    buf_release(&b);
    ssize_t w = write(log_fd, line, n);
    (void)w; /* nowhere to report a failed log write */
}
