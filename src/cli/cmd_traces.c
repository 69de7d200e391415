/* SPDX-License-Identifier: MIT */
/* cmd_traces.c: traces from the control plane's span store, through Zipkin's query API.
 *   shoal traces [--service S] [--min DURATION] [--limit N] [--lookback DURATION] [--json]
 *   shoal trace ID [--json]      a waterfall: one line per span, indented by depth, a bar
 *                                placed and scaled on the trace's duration
 * The summaries (root, duration, error) and the waterfall's layout are computed here from the
 * spans the API returns; colour only when stdout is a terminal. */
#include "cli/cli_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    WATERFALL_BAR = 40,     /* columns of the bar */
    WATERFALL_LABEL = 44,   /* columns of "  service name" before it */
    WATERFALL_DEPTH = 16,   /* deeper spans are drawn at this depth */
    TRACE_MAX_SPANS = 5000, /* spans drawn; more are counted, not drawn */
};

/* ---- one span as the CLI reads it ----------------------------------------------------------- */
struct tspan {
    const char *id, *parent, *service, *name, *kind;
    uint64_t ts, dur;
    bool is_error, shared;
    const char *error; /* the error tag's value, or NULL */
    size_t depth;
    bool placed;
};

static uint64_t u64_of(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v ? v : dflt;
}

static void read_span(const json_t *o, struct tspan *s)
{
    json_t *tags = json_object_get(o, "tags");

    memset(s, 0, sizeof(*s));
    s->id = str_or(o, "id", "");
    s->parent = str_or(o, "parentId", NULL);
    s->service = str_or(json_object_get(o, "localEndpoint"), "serviceName", "?");
    s->name = str_or(o, "name", "");
    s->kind = str_or(o, "kind", "");
    s->ts = u64_of(o, "timestamp");
    s->dur = u64_of(o, "duration");
    s->shared = json_is_true(json_object_get(o, "shared"));
    s->error = str_or(tags, "error", NULL);
    s->is_error = s->error != NULL;
}

/* Columns of text that buf_append_term_str wrote (well-formed UTF-8, one column a code point). */
static size_t term_cols(struct slice s)
{
    size_t n = 0;

    for (size_t i = 0; i < s.len; i++)
        n += ((unsigned char)s.ptr[i] & 0xc0) != 0x80;
    return n;
}

/* "850µs", "12.3ms", "4.20s", "2m3s" */
static void fmt_us(char *out, size_t n, uint64_t us)
{
    if (us < 1000)
        snprintf(out, n, "%lluµs", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(out, n, "%.1fms", (double)us / 1000.0);
    else if (us < 60000000)
        snprintf(out, n, "%.2fs", (double)us / 1e6);
    else
        snprintf(out, n, "%llum%llus", (unsigned long long)(us / 60000000),
                 (unsigned long long)(us / 1000000 % 60));
}

static void fmt_start(char *out, size_t n, uint64_t us)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;

    if (!us || !localtime_r(&secs, &tm)) {
        snprintf(out, n, "-");
        return;
    }
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* A trace's summary from its spans: the root (no parent; else the earliest), the span from
 * the earliest start to the latest end, and whether any span failed. */
struct summary {
    const char *trace_id, *root_service, *root_name;
    uint64_t start_us, duration_us;
    size_t spans;
    bool is_error;
};

static void summarize(const json_t *trace, struct summary *sm)
{
    size_t i;
    json_t *o;
    uint64_t end = 0;
    const json_t *root = NULL;

    memset(sm, 0, sizeof(*sm));
    sm->spans = json_array_size(trace);
    json_array_foreach(trace, i, o)
    {
        struct tspan s;
        read_span(o, &s);
        if (!sm->trace_id) sm->trace_id = str_or(o, "traceId", "?");
        if (s.ts && (!sm->start_us || s.ts < sm->start_us)) sm->start_us = s.ts;
        if (s.ts + s.dur > end) end = s.ts + s.dur;
        sm->is_error |= s.is_error;
        if (!s.parent && !root) root = o;
    }
    if (!root) {
        json_array_foreach(trace, i, o)
        {
            if (!root || u64_of(o, "timestamp") < u64_of(root, "timestamp")) root = o;
        }
    }
    sm->root_service = str_or(json_object_get(root, "localEndpoint"), "serviceName", "?");
    sm->root_name = str_or(root, "name", "");
    sm->duration_us = end > sm->start_us ? end - sm->start_us : 0;
}

/* ---- shoal traces --------------------------------------------------------------------------- */
int cli_cmd_traces(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("traces");
    const char *service = NULL;
    uint64_t min_ms = 0, lookback_ms = 3600 * 1000, limit = 20;
    bool json_out = false;
    struct sh_diag d = {{0}, {0}};
    struct buf path = BUF_INIT(4096);
    struct cli_call c;
    json_t *traces, *t, *out;
    size_t i;
    int rc;

    for (int k = 1; k < argc; k++) {
        const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json_out = true;
            continue;
        }
        if (strcmp(a, "--service") && strcmp(a, "--min") && strcmp(a, "--limit") &&
            strcmp(a, "--lookback"))
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a);
        k++;
        if (!strcmp(a, "--service")) {
            service = v;
        } else if (!strcmp(a, "--limit")) {
            if (slice_to_u64(slice_from_cstr(v), &limit) < 0 || limit < 1 || limit > 1000)
                return cli_usage_error(cmd, "--limit: expected a number from 1 to 1000");
        } else if (sh_parse_duration_ms(slice_from_cstr(v),
                                        !strcmp(a, "--min") ? &min_ms : &lookback_ms, &d) < 0) {
            return cli_usage_error(cmd, "%s: %s", a, d.what);
        }
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    buf_appendf(&path, "/api/v2/traces?limit=%llu&lookback=%llu&endTs=%llu",
                (unsigned long long)limit, (unsigned long long)lookback_ms,
                (unsigned long long)sh_wall_ms());
    if (min_ms) buf_appendf(&path, "&minDuration=%llu", (unsigned long long)min_ms * 1000);
    if (service) {
        buf_appends(&path, SLICE("&serviceName="));
        cli__escape(&path, service);
    }
    rc = path.err ? 1 : cli__api("GET", path.data, SLICE(""), 30000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status != 200) return cli__api_error("listing traces", &c);
    traces = json_loadb(c.body.data, c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!json_is_array(traces)) {
        fprintf(stderr, "shoal: the control plane sent something that is not a trace list\n");
        json_decref(traces);
        return 1;
    }
    out = json_array();
    if (!json_out)
        printf("%-32s  %-19s  %9s  %5s  %-5s  %s\n", "TRACE ID", "START", "DURATION", "SPANS",
               "ERROR", "ROOT");
    json_array_foreach(traces, i, t)
    {
        struct summary sm;
        char start[32], dur[24];
        summarize(t, &sm);
        if (json_out) {
            json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "trace_id",
                                                 sm.trace_id, "root_service", sm.root_service,
                                                 "root_name", sm.root_name, "start_us",
                                                 (json_int_t)sm.start_us, "duration_us",
                                                 (json_int_t)sm.duration_us, "spans",
                                                 (json_int_t)sm.spans, "error", sm.is_error));
            continue;
        }
        fmt_start(start, sizeof(start), sm.start_us);
        fmt_us(dur, sizeof(dur), sm.duration_us);
        struct buf root = BUF_INIT(4096);
        buf_append_term_str(&root, slice_from_cstr(sm.root_service), 64, 0);
        buf_appendc(&root, ' ');
        buf_append_term_str(&root, slice_from_cstr(sm.root_name), 80, 0);
        printf("%-32.32s  %-19s  %*s  %5zu  %-5s  %s\n", sm.trace_id, start,
               9 + (int)(strlen(dur) - term_cols(slice_from_cstr(dur))), dur, sm.spans,
               sm.is_error ? "error" : "-", root.data ? root.data : "");
        buf_release(&root);
    }
    if (json_out) {
        char *text = json_dumps(out, JSON_INDENT(2));
        if (text) puts(text);
        sh_free(text);
    } else if (json_array_size(traces) == 0) {
        printf("(no traces found: widen --lookback or lower --min)\n");
    }
    json_decref(out);
    json_decref(traces);
    return 0;
}

/* ---- shoal trace ID ---------------------------------------------------------------------------
 */
/* The parent of s among spans: its parentId's span (for a server span sharing its client's
 * id, the client); NULL for a root or an orphan. */
static struct tspan *parent_of(struct tspan *spans, size_t n, const struct tspan *s)
{
    for (size_t i = 0; i < n; i++) {
        struct tspan *p = &spans[i];
        if (p == s) continue;
        /* Zipkin's shared span: the server half of an RPC under the client half */
        if (!strcmp(p->id, s->id) && s->shared && strcmp(p->kind, "CLIENT") == 0) return p;
    }
    if (!s->parent) return NULL;
    for (size_t i = 0; i < n; i++)
        if (&spans[i] != s && !strcmp(spans[i].id, s->parent) &&
            !(spans[i].shared && !strcmp(spans[i].kind, "SERVER") && s->shared))
            return &spans[i];
    return NULL;
}

struct layout {
    struct tspan *spans;
    size_t n;
    struct tspan **order; /* depth-first, children by start */
    size_t count;
    struct tspan **parents;
};

static void place(struct layout *l, struct tspan *s, size_t depth)
{
    if (s->placed || l->count == l->n) return;
    s->placed = true;
    s->depth = depth;
    l->order[l->count++] = s;
    /* children by start (spans are sorted by start already) */
    for (size_t i = 0; i < l->n; i++)
        if (l->parents[i] == s) place(l, &l->spans[i], depth + 1);
}

static int by_start(const void *a, const void *b)
{
    const struct tspan *x = a, *y = b;

    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static void print_waterfall(struct tspan *spans, size_t n, size_t total, const char *id)
{
    bool tty = isatty(STDOUT_FILENO);
    const char *red = tty ? "\x1b[31m" : "", *dim = tty ? "\x1b[2m" : "",
               *bar_on = tty ? "\x1b[36m" : "", *off = tty ? "\x1b[0m" : "";
    struct layout l = {.spans = spans, .n = n};
    uint64_t start = 0, end = 0, width;
    char dur[24], when[32];
    size_t errors = 0;

    qsort(spans, n, sizeof(*spans), by_start);
    l.order = sh_calloc(n ? n : 1, sizeof(*l.order));
    l.parents = sh_calloc(n ? n : 1, sizeof(*l.parents));
    if (!l.order || !l.parents) {
        fprintf(stderr, "shoal: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        l.parents[i] = parent_of(spans, n, &spans[i]);
        if (spans[i].ts && (!start || spans[i].ts < start)) start = spans[i].ts;
        if (spans[i].ts + spans[i].dur > end) end = spans[i].ts + spans[i].dur;
        errors += spans[i].is_error;
    }
    for (size_t i = 0; i < n; i++) /* roots and orphans first, in start order */
        if (!l.parents[i]) place(&l, &spans[i], 0);
    for (size_t i = 0; i < n; i++) /* a cycle of parent ids: drawn flat */
        if (!spans[i].placed) place(&l, &spans[i], 0);
    width = end > start ? end - start : 1;
    fmt_us(dur, sizeof(dur), end > start ? end - start : 0);
    fmt_start(when, sizeof(when), start);
    printf("trace %s: %zu spans, %s, started %s%s%s%s\n\n", id, total, dur, when, errors ? red : "",
           errors ? (errors == 1 ? ", 1 error" : ", errors") : "", errors ? off : "");
    for (size_t i = 0; i < l.count; i++) {
        const struct tspan *s = l.order[i];
        size_t depth = s->depth < WATERFALL_DEPTH ? s->depth : WATERFALL_DEPTH;
        char bar[WATERFALL_BAR + 1];
        uint64_t off_us = s->ts > start ? s->ts - start : 0;
        size_t from = (size_t)(off_us * WATERFALL_BAR / width);
        size_t len = (size_t)((s->dur * WATERFALL_BAR + width - 1) / width);
        if (from >= WATERFALL_BAR) from = WATERFALL_BAR - 1;
        if (len < 1) len = 1;
        if (from + len > WATERFALL_BAR) len = WATERFALL_BAR - from;
        memset(bar, ' ', WATERFALL_BAR);
        memset(bar + from, '=', len);
        bar[WATERFALL_BAR] = '\0';
        struct buf label = BUF_INIT(4096);
        size_t cols;
        for (size_t k = 0; k < depth; k++)
            buf_appends(&label, SLICE("  "));
        buf_append_term_str(&label, slice_from_cstr(s->service), 0, 0);
        buf_appendc(&label, ' ');
        buf_append_term_str(&label, slice_from_cstr(s->name), 0, 0);
        cols = term_cols(buf_slice(&label));
        if (cols > WATERFALL_LABEL) { /* cut at a character, leaving room for '~' */
            struct buf cut = BUF_INIT(4096);
            buf_append_term_str(&cut, buf_slice(&label), WATERFALL_LABEL - 1, 0);
            buf_appendc(&cut, '~');
            buf_release(&label);
            label = cut;
            cols = WATERFALL_LABEL;
        }
        size_t pad = WATERFALL_LABEL - cols;
        fmt_us(dur, sizeof(dur), s->dur);
        printf("%s%s%*s%s |", s->is_error ? red : "", label.data ? label.data : "", (int)pad, "",
               off);
        buf_release(&label);
        printf("%.*s%s%s%s|", (int)from, bar, s->is_error ? red : bar_on, bar + from, off);
        printf(" %s%*s", s->is_error ? red : "",
               9 + (int)(strlen(dur) - term_cols(slice_from_cstr(dur))), dur);
        if (s->is_error) {
            struct buf e = BUF_INIT(1024);
            if (s->error && *s->error && strcmp(s->error, "true"))
                buf_append_term_str(&e, slice_from_cstr(s->error), 60, 0);
            printf("  ERROR%s%s", e.len ? ": " : "", e.len ? e.data : "");
            buf_release(&e);
        } else if (s->kind[0])
            printf("  %s%s", dim, s->kind);
        printf("%s\n", off);
    }
    if (total > n) printf("(%zu more spans not drawn)\n", total - n);
done:
    sh_free(l.order);
    sh_free(l.parents);
}

int cli_cmd_trace(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("trace");
    const char *id = NULL;
    bool json_out = false;
    struct buf path = BUF_INIT(256);
    struct cli_call c;
    json_t *spans, *o;
    struct tspan *ts;
    size_t i, n;
    int rc;

    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "--json"))
            json_out = true;
        else if (argv[k][0] == '-' || id)
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[k]);
        else
            id = argv[k];
    }
    if (!id) return cli_usage_error(cmd, "which trace? give its trace id");
    size_t len = strlen(id);
    if ((len != 16 && len != 32) || strspn(id, "0123456789abcdefABCDEF") != len)
        return cli_usage_error(cmd, "'%s' is not a trace id (16 or 32 hex digits)", id);
    json_set_alloc_funcs(sh_malloc, sh_free);
    buf_appendf(&path, "/api/v2/trace/%s", id);
    rc = cli__api("GET", path.data, SLICE(""), 30000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status == 404) {
        fprintf(stderr,
                "shoal: no trace %s is stored (it may have been dropped by the span "
                "store's limits, or not sent yet)\n",
                id);
        buf_release(&c.body);
        return 1;
    }
    if (c.status != 200) return cli__api_error("reading the trace", &c);
    if (json_out) {
        fwrite(c.body.data, 1, c.body.len, stdout);
        putchar('\n');
        buf_release(&c.body);
        return 0;
    }
    spans = json_loadb(c.body.data, c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!json_is_array(spans)) {
        fprintf(stderr, "shoal: the control plane sent something that is not a trace\n");
        json_decref(spans);
        return 1;
    }
    n = SH_MIN(json_array_size(spans), (size_t)TRACE_MAX_SPANS);
    ts = sh_calloc(n ? n : 1, sizeof(*ts));
    if (!ts) {
        json_decref(spans);
        fprintf(stderr, "shoal: out of memory\n");
        return 1;
    }
    json_array_foreach(spans, i, o)
    {
        if (i < n) read_span(o, &ts[i]);
    }
    print_waterfall(ts, n, json_array_size(spans), id);
    sh_free(ts);
    json_decref(spans);
    return 0;
}
