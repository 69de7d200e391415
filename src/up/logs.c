/* SPDX-License-Identifier: MIT */
/* logs.c: the services' output. Each line an instance writes goes into shoal's own log, into
 * the log store (DATA_DIR/logs.sqlite, which GET /v1/logs and `shoal logs` search), into the
 * ring of the last lines (what GET /v1/logs answers from when the store could not open), and
 * into DATA_DIR/logs/services.log (JSON lines, rotated), made valid UTF-8 and cut between
 * characters. The gateway's and the mesh's access lines go into the store too (service
 * "gateway" / "mesh", stream "access"). Thread: main. */
#include "up/up_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------------------------
 * Output of the instances (shoal logs)
 * ------------------------------------------------------------------------------------------ */

/* Replaces every byte that is not part of well-formed UTF-8 (RFC 3629) with '?', so the API's
 * JSON stays valid whatever a service prints. */
static void utf8_sanitize(unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xC2 && c <= 0xDF ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        bool ok = len > 0 && i + len <= n;

        for (size_t k = 1; ok && k < len; k++)
            ok = k == 1 ? s[i + k] >= lo && s[i + k] <= hi : (s[i + k] & 0xC0) == 0x80;
        if (!ok || c == 0) {
            s[i++] = '?';
            continue;
        }
        i += len;
    }
}

/* One kept line as the JSON object GET /v1/logs and DATA_DIR/logs/services.log carry. */
static void logline_json(const struct up *u, const struct up_logline *l, struct buf *b)
{
    const char *svc = u->m->services[l->service].name;
    char id[96];

    buf_appendf(b, "{\"seq\":%llu,\"ms\":%llu,\"service\":\"", (unsigned long long)l->seq,
                (unsigned long long)l->ms);
    buf_append_json_str(b, slice_from_cstr(svc));
    buf_appends(b, SLICE("\",\"instance\":\""));
    snprintf(id, sizeof(id), "%s-%u", svc, l->ordinal);
    buf_append_json_str(b, slice_from_cstr(id));
    buf_appendf(b, "\",\"stream\":\"%s\",\"line\":\"", l->is_stderr ? "stderr" : "stdout");
    buf_append_json_str(b, slice_from_cstr(l->text));
    buf_appends(b, SLICE("\"}"));
}

int up_render_logs(void *data, const char *service, uint64_t since_ms, uint64_t after_seq,
                   const char *grep, struct buf *b)
{
    struct up *u = data;
    size_t start = (u->log_next + UP_LOG_LINES - u->log_count) % UP_LOG_LINES;
    bool first = true;

    buf_appendc(b, '[');
    for (size_t k = 0; k < u->log_count; k++) {
        const struct up_logline *l = &u->log[(start + k) % UP_LOG_LINES];
        if (l->ms < since_ms || l->seq <= after_seq ||
            (service && strcmp(service, u->m->services[l->service].name)) ||
            (grep && !strstr(l->text, grep)))
            continue;
        if (!first) buf_appendc(b, ',');
        first = false;
        logline_json(u, l, b);
    }
    buf_appends(b, SLICE("]\n"));
    return b->err;
}

/* The services' output on disk: DATA_DIR/logs/services.log, JSON lines as GET /v1/logs gives
 * them, written through a stdio buffer flushed every tick; past UP_LOGFILE_MAX it becomes
 * services.log.1 (the previous .1 goes), so the two files stay under 2 x UP_LOGFILE_MAX. */
enum { UP_LOGFILE_MAX = 16 << 20 };

void up_logfile_open(struct up *u)
{
    char dir[PATH_MAX], path[PATH_MAX + 16];

    if (!up_join_path(dir, sizeof(dir), u->data_dir, "logs") ||
        !up_join_path(path, sizeof(path), dir, "services.log"))
        return;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        SH_LOG(SH_WARN, "supervisor", "services' output not kept on disk", LF_STR("dir", dir),
               LF_ERR("err", -errno));
        return;
    }
    u->logfile = fopen(path, "ae");
    if (!u->logfile)
        SH_LOG(SH_WARN, "supervisor", "services' output not kept on disk", LF_STR("file", path),
               LF_ERR("err", -errno));
}

static void logfile_write(struct up *u, const struct up_logline *l)
{
    struct buf b = BUF_INIT(UP_LOG_LINE_MAX * 8);

    if (!u->logfile) return;
    logline_json(u, l, &b);
    buf_appendc(&b, '\n');
    if (!b.err && fwrite(b.data, 1, b.len, u->logfile) != b.len) {
        SH_LOG(SH_WARN, "supervisor",
               "cannot write the services' output to disk; stopped "
               "keeping it",
               LF_ERR("err", -errno));
        fclose(u->logfile);
        u->logfile = NULL;
    }
    buf_release(&b);
}

void up_logfile_flush(struct up *u)
{
    char path[PATH_MAX + 32], old[PATH_MAX + 40];
    long size;

    if (!u->logfile) return;
    fflush(u->logfile);
    size = ftell(u->logfile);
    if (size < UP_LOGFILE_MAX) return;
    fclose(u->logfile);
    u->logfile = NULL;
    snprintf(path, sizeof(path), "%s/logs/services.log", u->data_dir);
    snprintf(old, sizeof(old), "%s.1", path);
    if (rename(path, old) < 0)
        SH_LOG(SH_WARN, "supervisor", "cannot rotate the services' log", LF_STR("file", path),
               LF_ERR("err", -errno));
    up_logfile_open(u);
}

/* ------------------------------------------------------------------------------------------
 * The log store
 * ------------------------------------------------------------------------------------------ */
/* A line into the store; the first refusal of a run is logged (the count is in the store's
 * stats). */
static void logstore_add(struct up *u, const struct obs_log_entry *e)
{
    int rc = obs_logs_add(u->logs, e);

    if (rc < 0 && !u->logs_warned) {
        u->logs_warned = true;
        SH_LOG(SH_WARN, "supervisor", "log lines dropped: the log store's writer is behind",
               LF_ERR("err", rc));
    }
}

struct access_ctx {
    struct up *u;
    const char *name;
    uint64_t ms;
    uint64_t deadline_ns; /* past it, this drain's remaining lines are dropped (counted) */
    uint32_t n;
    bool over;
};

/* At most UP_ACCESS_BUDGET_US of the control loop per drain: past it the lines already taken
 * from the workers are dropped and counted, so that a flood of requests never delays the
 * health checks, the registry and the API on this loop. */
enum { UP_ACCESS_BUDGET_US = 10000 };

static void access_line(void *data, struct slice line)
{
    struct access_ctx *c = data;
    if (c->over || (++c->n % 64 == 0 && uv_hrtime() > c->deadline_ns)) {
        c->over = true;
        c->u->access_dropped++;
        return;
    }
    struct obs_log_entry e = {.ms = c->ms,
                              .service = slice_from_cstr(c->name),
                              .instance = slice_from_cstr(c->name),
                              .stream = OBS_STREAM_ACCESS,
                              .line = line};

    logstore_add(c->u, &e);
}

void up_access_drain(struct up *u, struct proxy_gateway *gw, const char *name)
{
    struct access_ctx c = {.u = u,
                           .name = name,
                           .ms = sh_wall_ms(),
                           .deadline_ns = uv_hrtime() + UP_ACCESS_BUDGET_US * 1000ull};

    if (gw && u->logs) (void)proxy_gateway_access_drain(gw, access_line, &c);
}

/* One line an instance wrote: into shoal's log and the ring `shoal logs` reads, cut at
 * UP_LOG_LINE_MAX bytes (between two characters) and made valid UTF-8 (both outputs are JSON;
 * what is not UTF-8 becomes '?'). Control characters stay: the JSON escapes them, and the live
 * view and `shoal logs` show them escaped (buf_append_term_str). */
void up_on_line(void *data, uint64_t id, enum sup_stream stream, struct slice line, bool is_cut)
{
    struct up *u = data;
    const struct up_instance *in = NULL;
    const char *who = "?";
    size_t n = SH_MIN(line.len, (size_t)UP_LOG_LINE_MAX);
    char *text;
    struct up_logline *l;

    (void)is_cut;
    /* Cut before a character, not inside it (at most 3 continuation bytes to step back). */
    for (size_t k = 0; k < 3 && n > 0 && n < line.len; k++) {
        if (((unsigned char)line.ptr[n] & 0xC0) != 0x80) break;
        n--;
    }
    text = sh_malloc(n + 1);
    for (size_t i = 0; i < u->ninst && !in; i++) {
        if (u->inst[i]->proc_id == id) in = u->inst[i];
    }
    if (in) who = in->id;
    if (!text) {
        SH_LOG(SH_WARN, "service", "output line dropped: out of memory", LF_STR("instance", who));
        return;
    }
    memcpy(text, line.ptr, n);
    text[n] = '\0';
    utf8_sanitize((unsigned char *)text, n);
    SH_LOG(SH_INFO, "service", stream == SUP_STDERR ? "stderr" : "stdout", LF_STR("instance", who),
           LF_STR("line", text));
    if (in && u->logs) {
        struct obs_log_entry e = {
            .ms = sh_wall_ms(),
            .service = slice_from_cstr(u->m->services[in->service].name),
            .instance = slice_from_cstr(in->id),
            .stream = stream == SUP_STDERR ? OBS_STREAM_STDERR : OBS_STREAM_STDOUT,
            .line = (struct slice){text, n},
        };
        logstore_add(u, &e);
    }
    if (!in || !u->log) {
        sh_free(text);
        return;
    }
    l = &u->log[u->log_next];
    sh_free(l->text);
    *l = (struct up_logline){.seq = ++u->log_seq,
                             .ms = sh_wall_ms(),
                             .service = in->service,
                             .ordinal = in->ordinal,
                             .is_stderr = stream == SUP_STDERR,
                             .text = text};
    logfile_write(u, l);
    u->log_next = (u->log_next + 1) % UP_LOG_LINES;
    if (u->log_count < UP_LOG_LINES) u->log_count++;
}
