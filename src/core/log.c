/* SPDX-License-Identifier: MIT */
/* log.c: structured records as text (TTY) or JSON lines. Each record is rendered into a
 * stack buffer and written with one write(2) (a short write is continued), so lines from several
 * threads do not interleave.
 * Configuration is set once at start and read-only afterwards. */
#include "core/core.h"

#include <errno.h>
#include <math.h>
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
    if (fmt == SH_LOG_AUTO) fmt = isatty(fd) ? SH_LOG_TEXT : SH_LOG_JSON;
    log_format = fmt;
}

/* Nowhere to report a failed log write: retry interruptions and short writes, drop the rest. */
static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(log_fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

int sh_log_level_parse(struct slice s)
{
    for (size_t i = 0; i < SH_ARRAY_LEN(level_names); i++) {
        if (slice_eq_nocase(s, slice_from_cstr(level_names[i]))) return (int)i;
    }
    if (slice_eq_nocase(s, SLICE("warning"))) return SH_WARN;
    return -1;
}

/* Peer bytes in logs are bounded and escaped (style.md B7). A record is rendered into a stack
 * buffer of LOG_LINE_MAX bytes: logging never allocates, so it works under OOM and costs the
 * allocator nothing. Fields that would not fit are dropped whole and the record says
 * truncated, so a JSON line always stays one valid object
 * (test_log__json_overlong_record_stays_valid). */
enum { LOG_VALUE_MAX = 512, LOG_LINE_MAX = 8192, LOG_TAIL = 32 };

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static struct slice cut(struct slice s, size_t max)
{
    if (s.len <= max) return s;
    s.len = max;
    for (int k = 0; k < 3 && s.len > 0 && ((unsigned char)s.ptr[s.len] & 0xc0) == 0x80; k++)
        s.len--;
    return s;
}

static struct slice cstr(const char *s)
{
    return slice_from_cstr(s ? s : "");
}

static void append_value_text(struct buf *b, const struct log_field *f)
{
    char tmp[64];
    struct slice s;
    bool quote;

    switch (f->type) {
    case LF_T_STR:
        s = cut(f->v.s, LOG_VALUE_MAX);
        quote = s.len == 0;
        for (size_t i = 0; i < s.len && !quote; i++) {
            unsigned char c = (unsigned char)s.ptr[i];
            quote = c == ' ' || c == '"' || c == '=' || c < 0x20 || c == 0x7f;
        }
        if (quote) buf_appendc(b, '"');
        buf_append_json_str(b, s);
        if (quote) buf_appendc(b, '"');
        break;
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
        buf_appendc(b, '"');
        buf_append_json_str(b, slice_from_cstr(sh_strerror((int)f->v.i)));
        buf_appendc(b, '"');
        break;
    }
}

static void append_value_json(struct buf *b, const struct log_field *f)
{
    switch (f->type) {
    case LF_T_STR:
        buf_appendc(b, '"');
        buf_append_json_str(b, cut(f->v.s, LOG_VALUE_MAX));
        buf_appendc(b, '"');
        break;
    case LF_T_DBL:
        /* JSON has no NaN or infinity: those travel as strings. */
        if (!isfinite(f->v.d)) {
            buf_appendc(b, '"');
            append_value_text(b, f);
            buf_appendc(b, '"');
            break;
        }
        append_value_text(b, f);
        break;
    default:
        append_value_text(b, f);
    }
}

static void append_field(struct buf *b, bool json, const struct log_field *f)
{
    struct slice key = cut(cstr(f->key), LOG_VALUE_MAX);

    if (json) {
        buf_append(b, ",\"", 2);
        buf_append_json_str(b, key);
        buf_append(b, "\":", 2);
        append_value_json(b, f);
    } else {
        buf_appendc(b, ' ');
        buf_append_json_str(b, key);
        buf_appendc(b, '=');
        append_value_text(b, f);
    }
}

void sh_log_write(enum sh_log_level lvl, const char *comp, const char *msg,
                  const struct log_field *fields, size_t count)
{
    char line[LOG_LINE_MAX + 2];
    /* cap > max, so buf_reserve never reallocates this stack memory; never buf_release it. */
    struct buf b = {.data = line, .cap = sizeof(line), .max = LOG_LINE_MAX - LOG_TAIL};
    bool json = log_format == SH_LOG_JSON, truncated = false;
    uint64_t now = sh_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    char ts[32];
    const char *lname = level_names[(unsigned)lvl < 4 ? lvl : 3];
    struct slice c = cut(cstr(comp), LOG_VALUE_MAX), m = cut(cstr(msg), LOG_VALUE_MAX);

    if ((int)lvl < sh_log_min_level || (unsigned)lvl >= SH_OFF) return;
    line[0] = '\0';
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    /* The head always fits: two values of at most 6 * LOG_VALUE_MAX escaped bytes each. */
    if (json) {
        buf_appendf(&b, "{\"ts\":\"%s.%03uZ\",\"level\":\"%s\",\"comp\":\"", ts,
                    (unsigned)(now % 1000), lname);
        buf_append_json_str(&b, c);
        buf_append(&b, "\",\"msg\":\"", 9);
        buf_append_json_str(&b, m);
        buf_appendc(&b, '"');
    } else {
        buf_appendf(&b, "%s.%03u %-5s ", ts + 11, (unsigned)(now % 1000), lname);
        buf_append_json_str(&b, c);
        buf_append(&b, ": ", 2);
        buf_append_json_str(&b, m);
    }
    for (size_t i = 0; i < count && !b.err; i++) {
        size_t mark = b.len;
        append_field(&b, json, &fields[i]);
        if (b.err) {
            /* Drop the field whole rather than cut it mid-token. */
            b.len = mark;
            line[mark] = '\0';
            truncated = true;
        }
    }
    b.err = 0;
    b.max = LOG_LINE_MAX; /* the tail has room reserved */
    if (truncated) buf_appends(&b, json ? SLICE(",\"truncated\":true") : SLICE(" truncated=true"));
    if (json) buf_appendc(&b, '}');
    line[b.len] = '\n';
    write_all(line, b.len + 1);
}
