/* SPDX-License-Identifier: MIT */
/* bench_logs.c: the log store (src/observe) filled with N lines, then full-text queries.
 *  - fill: N lines (default 1,000,000) of a mix like a small stack's: 60% plain service lines,
 *    25% JSON lines with a level and a trace id, 15% access lines of the gateway; words drawn
 *    from a 20,000-word vocabulary with a Zipf-like skew (a few words in most lines, most
 *    words rare); added through obs_logs_add and written by obs_logs_flush every 10,000 lines
 *    (the writer's batches), so the insert rate includes parsing and the FTS5 index;
 *  - queries: each kind run R times (default 200) with a different word each time, timing
 *    obs_logs_search at the API's default limit (the newest 1000 rows; rows handed to a
 *    callback that counts them, JSON rendering excluded); p50, p99, max.
 * Usage: bench_logs [--lines N] [--runs R] [--dir DIR] [--keep]
 * DIR defaults to a fresh directory under /tmp; the store is removed unless --keep. */
#include "observe/observe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { VOCAB = 20000, BATCH = 10000 };

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

/* A word index with a Zipf-like skew (P(i) ~ 1/(i+1)): inverse of the log CDF. */
static uint32_t zipf(void)
{
    double u = (double)(rnd() >> 11) / 9007199254740992.0; /* [0, 1) */
    uint32_t i = (uint32_t)exp(u * log((double)VOCAB + 1.0));

    return i ? SH_MIN(i - 1, (uint32_t)VOCAB - 1) : 0;
}

static char words[VOCAB][16];

/* Pronounceable distinct words: syllables from the index in base 90. */
static void make_vocab(void)
{
    static const char cons[] = "bcdfghjklmnprstvwz", vow[] = "aeiou";

    for (uint32_t i = 0; i < VOCAB; i++) {
        size_t len = 0;
        uint32_t x = i;
        do {
            words[i][len++] = cons[x % 18];
            words[i][len++] = vow[(x / 18) % 5];
            x /= 90;
        } while (x && len < sizeof(words[i]) - 3);
        words[i][len] = '\0';
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void hex(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = "0123456789abcdef"[rnd() & 15];
    out[n] = '\0';
}

static char trace_ids[256][33]; /* some kept to query by trace id */
static uint32_t ntrace;

static void make_line(uint64_t i, struct buf *b, struct obs_log_entry *e, char *inst)
{
    static const char *const services[] = {"api", "orders", "payments", "users", "search"};
    static const char *const levels[] = {"debug", "info", "info", "info", "warn", "error"};
    uint32_t kind = (uint32_t)(rnd() % 100), svc = (uint32_t)(rnd() % 5);
    char tid[33];

    buf_reset(b);
    hex(tid, 32);
    if (kind >= 60 && i % 1024 == 0) memcpy(trace_ids[ntrace++ % 256], tid, 33);
    e->ms = 1700000000000ull + i * 10;
    e->stream = OBS_STREAM_STDOUT;
    if (kind < 60) {
        e->service = slice_from_cstr(services[svc]);
        buf_appendf(b, "%s ", rnd() % 10 ? "INFO" : "WARN");
        for (int k = 0, n = 6 + (int)(rnd() % 10); k < n; k++)
            buf_appendf(b, "%s%s", k ? " " : "", words[zipf()]);
        buf_appendf(b, " took %llu ms", (unsigned long long)(rnd() % 500));
    } else if (kind < 85) {
        e->service = slice_from_cstr(services[svc]);
        buf_appendf(b, "{\"time\":\"2026-01-01T00:00:00Z\",\"level\":\"%s\",\"msg\":\"",
                    levels[rnd() % 6]);
        for (int k = 0, n = 4 + (int)(rnd() % 8); k < n; k++)
            buf_appendf(b, "%s%s", k ? " " : "", words[zipf()]);
        buf_appendf(b, "\",\"trace_id\":\"%s\",\"user\":%llu}", tid,
                    (unsigned long long)(rnd() % 100000));
    } else {
        e->service = SLICE("gateway");
        e->stream = OBS_STREAM_ACCESS;
        buf_appendf(b,
                    "{\"ts\":%llu,\"request_id\":\"%08llx\",\"method\":\"GET\",\"target\":\"/%s/%s"
                    "\",\"route\":\"%s\",\"cluster\":\"%s\",\"endpoint\":\"127.0.0.1:%u\","
                    "\"status\":%u,\"upstream_status\":200,\"bytes\":%llu,\"duration_ms\":%.3f,"
                    "\"attempts\":1,\"client\":\"127.0.0.1\",\"trace_id\":\"%s\"}",
                    (unsigned long long)e->ms, (unsigned long long)(rnd() & 0xffffffff),
                    services[svc], words[zipf()], services[svc], services[svc], 8000u + svc,
                    rnd() % 50 ? 200u : 503u, (unsigned long long)(rnd() % 9000),
                    (double)(rnd() % 100000) / 1000.0, tid);
    }
    snprintf(inst, 32, "%.*s-%u", (int)e->service.len, e->service.ptr, (unsigned)(rnd() % 3) + 1);
    e->instance = slice_from_cstr(inst);
    e->line = buf_slice(b);
}

static int count_row(void *data, const struct obs_log_row *row)
{
    (void)row;
    ++*(size_t *)data;
    return 0;
}

struct kind {
    const char *name;
    void (*make)(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts);
};

static void fts_of(const char *text, struct buf *fts, struct obs_logs_query *q)
{
    struct sh_diag d = {{0}, {0}};

    if (obs_log_fts_query(slice_from_cstr(text), fts, &d) < 0) {
        fprintf(stderr, "bench_logs: query '%s': %s\n", text, d.what);
        exit(1);
    }
    q->fts = fts->data;
}

/* Words by frequency rank: common (top 10), middle (rank 100-600), rare (rank 5000+). */
static void q_common(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    snprintf(text, 256, "%s", words[run % 10]);
    fts_of(text, fts, q);
}

static void q_middle(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    snprintf(text, 256, "%s", words[100 + (run * 7) % 500]);
    fts_of(text, fts, q);
}

static void q_rare(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    snprintf(text, 256, "%s", words[5000 + (run * 37) % 15000]);
    fts_of(text, fts, q);
}

static void q_two(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    snprintf(text, 256, "%s %s", words[run % 50], words[200 + (run * 13) % 800]);
    fts_of(text, fts, q);
}

static void q_prefix(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    snprintf(text, 256, "%.3s*", words[100 + run % 900]);
    fts_of(text, fts, q);
}

static void q_service(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    static const char *const services[] = {"api", "orders", "payments", "users", "search"};

    snprintf(text, 256, "%s", words[20 + (run * 3) % 200]);
    fts_of(text, fts, q);
    q->service = services[run % 5];
    q->min_level = OBS_LEVEL_WARN;
}

static void q_trace(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    (void)fts;
    snprintf(text, 256, "%s", trace_ids[run % SH_MAX(SH_MIN(ntrace, 256u), 1u)]);
    q->trace_id = text;
}

static void q_trace_words(uint32_t run, struct obs_logs_query *q, char *text, struct buf *fts)
{
    snprintf(text, 256, "%s", trace_ids[run % SH_MAX(SH_MIN(ntrace, 256u), 1u)]);
    fts_of(text, fts, q);
}

static const struct kind kinds[] = {
    {"one common word (top 10)", q_common}, {"one mid-frequency word (rank 100-600)", q_middle},
    {"one rare word (rank 5000+)", q_rare}, {"two words (AND)", q_two},
    {"prefix (3 letters*)", q_prefix},      {"word + service + level>=warn", q_service},
    {"trace id (?trace=, index)", q_trace}, {"trace id as a word (?q=)", q_trace_words},
};

int main(int argc, char **argv)
{
    uint64_t lines = 1000000, runs = 200;
    const char *dir = NULL;
    bool keep = false;
    char tmp[64], path[4200], inst[32];
    struct obs_logs *st;
    struct sh_diag d = {{0}, {0}};
    struct buf b = BUF_INIT(0), fts = BUF_INIT(0);
    struct obs_logs_stats stats;
    uint64_t t0, fill_us;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lines") && i + 1 < argc)
            lines = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else {
            fprintf(stderr, "usage: bench_logs [--lines N] [--runs R] [--dir DIR] [--keep]\n");
            return 2;
        }
    }
    if (!dir) {
        snprintf(tmp, sizeof(tmp), "/tmp/shoal-bench-logs-XXXXXX");
        if (!mkdtemp(tmp)) return 1;
        dir = tmp;
    }
    snprintf(path, sizeof(path), "%s/logs.sqlite", dir);
    make_vocab();
    /* large enough bounds: the bench measures 1 M lines kept, not the bounds */
    if (obs_logs_open(&(struct obs_logs_config){.path = path,
                                                .max_bytes = 8ull << 30,
                                                .max_age_ms = 1ull << 62,
                                                .max_pending_bytes = 1u << 30,
                                                .is_manual = true},
                      &st, &d) < 0) {
        fprintf(stderr, "bench_logs: %s: %s\n", d.where, d.what);
        return 1;
    }
    t0 = sh_now_us();
    for (uint64_t i = 0; i < lines; i++) {
        struct obs_log_entry e;
        make_line(i, &b, &e, inst);
        if (obs_logs_add(st, &e) < 0) return 1;
        if ((i + 1) % BATCH == 0 && obs_logs_flush(st) < 0) return 1;
    }
    if (obs_logs_flush(st) < 0) return 1;
    fill_us = sh_now_us() - t0;
    if (obs_logs_stats(st, &stats) < 0) return 1;
    printf("fill: %llu lines in %.1f s: %.0f lines/s; %llu rows, %.1f MiB in use\n",
           (unsigned long long)lines, (double)fill_us / 1e6, (double)lines * 1e6 / (double)fill_us,
           (unsigned long long)stats.rows, (double)stats.used_bytes / 1048576.0);
    printf("\n| query (limit 1000, newest first) | runs | rows (median) | p50 ms | p99 ms | max ms "
           "|\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    uint64_t *lat = sh_calloc(runs, sizeof(*lat)), *rows = sh_calloc(runs, sizeof(*rows));
    if (!lat || !rows) return 1;
    for (size_t k = 0; k < SH_ARRAY_LEN(kinds); k++) {
        for (uint32_t r = 0; r < runs; r++) {
            struct obs_logs_query q = {0};
            char text[256];
            size_t n = 0;
            kinds[k].make(r, &q, text, &fts);
            uint64_t s = sh_now_us();
            if (obs_logs_search(st, &q, count_row, &n, &d) < 0) {
                fprintf(stderr, "bench_logs: search '%s': %s\n", text, d.what);
                return 1;
            }
            lat[r] = sh_now_us() - s;
            rows[r] = n;
        }
        qsort(lat, runs, sizeof(*lat), cmp_u64);
        qsort(rows, runs, sizeof(*rows), cmp_u64);
        printf("| %s | %llu | %llu | %.2f | %.2f | %.2f |\n", kinds[k].name,
               (unsigned long long)runs, (unsigned long long)rows[runs / 2],
               (double)lat[runs / 2] / 1000.0, (double)lat[runs * 99 / 100] / 1000.0,
               (double)lat[runs - 1] / 1000.0);
    }
    sh_free(lat);
    sh_free(rows);
    buf_release(&b);
    buf_release(&fts);
    obs_logs_close(st);
    if (!keep) {
        char p[4300];
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof(p), "%s%s", path, (const char *[]){"", "-wal", "-shm"}[i]);
            unlink(p);
        }
        if (dir == tmp) rmdir(dir);
    }
    return 0;
}
