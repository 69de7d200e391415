/* SPDX-License-Identifier: MIT */
/* routes_logs.c: GET /v1/logs from the log store (observe.h, Logs): full text (q), filters by
 * service, instance, level, trace id and time, a limit, and after= for `shoal logs -f`.
 * Every parameter is checked before the store is asked; a bad one is a 400 naming it. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include "observe/observe.h"

#include <stdio.h>
#include <string.h>

/* A name parameter (service, instance): absent or empty is no filter; past OBS_LOG_NAME_MAX a
 * 400. false after answering. */
static bool name_param(struct admin_req *r, const char *name, const char **out)
{
    const char *v = admin__query(r, name);

    *out = v && *v ? v : NULL;
    if (!*out || strlen(*out) <= OBS_LOG_NAME_MAX) return true;
    admin__reply_error(r, 400, name, "longer than 128 bytes");
    return false;
}

/* since/until: Unix ms, or a duration back from now ("10m"). */
static bool time_param(struct admin_req *r, const char *name, uint64_t now_ms, uint64_t *out)
{
    const char *v = admin__query(r, name);
    struct sh_diag d = {{0}, {0}};
    uint64_t ago;

    *out = 0;
    if (!v || !*v || slice_to_u64(slice_from_cstr(v), out) == 0) return true;
    if (sh_parse_duration_ms(slice_from_cstr(v), &ago, &d) == 0) {
        *out = now_ms > ago ? now_ms - ago : 1;
        return true;
    }
    admin__reply_error(r, 400, name,
                       "expected milliseconds since the Unix epoch or a duration such as 10m");
    return false;
}

static bool u64_param(struct admin_req *r, const char *name, uint64_t max, const char *what,
                      uint64_t *out)
{
    const char *v = admin__query(r, name);

    *out = 0;
    if (!v || !*v) return true;
    if (slice_to_u64(slice_from_cstr(v), out) == 0 && *out <= max) return true;
    admin__reply_error(r, 400, name, what);
    return false;
}

static void json_str_or_null(struct buf *b, const char *key, const char *v)
{
    buf_appendf(b, ",\"%s\":", key);
    if (!v || !*v) {
        buf_appends(b, SLICE("null"));
        return;
    }
    buf_appendc(b, '"');
    buf_append_json_str(b, slice_from_cstr(v));
    buf_appendc(b, '"');
}

struct render {
    struct buf *b;
    bool first;
};

/* One row as GET /v1/logs has always given lines (seq, ms, service, instance, stream, line),
 * plus what the store found in it. */
static int render_row(void *data, const struct obs_log_row *row)
{
    struct render *rd = data;
    struct buf *b = rd->b;

    buf_appends(b, rd->first ? SLICE("{\"seq\":") : SLICE(",{\"seq\":"));
    rd->first = false;
    buf_append_u64(b, row->id);
    buf_appends(b, SLICE(",\"ms\":"));
    buf_append_u64(b, row->ms);
    buf_appends(b, SLICE(",\"service\":\""));
    buf_append_json_str(b, slice_from_cstr(row->service));
    buf_appends(b, SLICE("\",\"instance\":\""));
    buf_append_json_str(b, slice_from_cstr(row->instance));
    buf_appendf(b, "\",\"stream\":\"%s\",\"line\":\"", obs_log_stream_name(row->stream));
    buf_append_json_str(b, slice_from_cstr(row->line));
    buf_appendc(b, '"');
    json_str_or_null(b, "level", obs_log_level_name(row->level));
    json_str_or_null(b, "message", row->message);
    json_str_or_null(b, "trace_id", row->trace_id);
    json_str_or_null(b, "span_id", row->span_id);
    buf_appendc(b, '}');
    return b->err;
}

void admin__logs_search(struct admin_req *r, struct obs_logs *logs)
{
    const char *q = admin__query(r, "q"), *grep = admin__query(r, "grep");
    const char *level = admin__query(r, "level"), *trace = admin__query(r, "trace");
    struct obs_logs_query query = {0};
    struct buf fts = BUF_INIT(4 * OBS_LOG_QUERY_MAX), b = BUF_INIT(64u << 20);
    struct sh_diag d = {{0}, {0}};
    struct render rd = {.b = &b, .first = true};
    char trace_id[33];
    uint64_t now = sh_wall_ms(), limit;
    int rc;

    if (!name_param(r, "service", &query.service) || !name_param(r, "instance", &query.instance) ||
        !time_param(r, "since", now, &query.since_ms) ||
        !time_param(r, "until", now, &query.until_ms) ||
        !u64_param(r, "after", UINT64_MAX, "expected a line sequence number", &query.after_id) ||
        !u64_param(r, "limit", OBS_LOG_LIMIT_MAX, "expected a number from 1 to 10000", &limit))
        return;
    if (admin__query(r, "limit") && limit == 0) {
        admin__reply_error(r, 400, "limit", "expected a number from 1 to 10000");
        return;
    }
    query.limit = (uint32_t)limit;
    if (level && *level) {
        query.min_level = obs_log_level_parse(slice_from_cstr(level));
        if (query.min_level == OBS_LEVEL_NONE) {
            admin__reply_error(r, 400, "level",
                               "expected trace, debug, info, warn, error or fatal");
            return;
        }
    }
    if (trace && *trace) {
        if (!obs_log_trace_id_norm(slice_from_cstr(trace), trace_id)) {
            admin__reply_error(r, 400, "trace", "expected a trace id of 32 (or 16) hex digits");
            return;
        }
        query.trace_id = trace_id;
    }
    if (grep && *grep) {
        if (strlen(grep) > OBS_LOG_QUERY_MAX) {
            admin__reply_error(r, 400, "grep", "longer than 512 bytes");
            return;
        }
        query.contains = grep;
    }
    if (q && *q) {
        rc = obs_log_fts_query(slice_from_cstr(q), &fts, &d);
        if (rc < 0) {
            admin__reply_error(r, 400, "q", d.what);
            buf_release(&fts);
            return;
        }
        query.fts = fts.data;
    }
    buf_appendc(&b, '[');
    rc = obs_logs_search(logs, &query, render_row, &rd, &d);
    buf_release(&fts);
    buf_appends(&b, SLICE("]\n"));
    if (rc == SH_EPARSE && !strcmp(d.where, "q"))
        admin__reply_error(r, 400, "q", d.what);
    else if (rc < 0 || b.err)
        admin__reply_error(r, 500, NULL, d.what[0] ? d.what : sh_strerror(rc < 0 ? rc : b.err));
    else
        admin__reply_raw(r, 200, "application/json", buf_slice(&b), 0);
    buf_release(&b);
}
