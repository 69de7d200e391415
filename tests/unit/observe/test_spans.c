/* SPDX-License-Identifier: MIT */
/* test_spans.c: the span store on a real SQLite file: spans are written only by flush, read
 * back as Zipkin JSON, found by the queries; the bounds hold (size: the oldest traces go
 * first and the stored bytes and the file stay bounded; age: traces first stored too long ago
 * go); a full buffer refuses spans instead of growing. */
#include "test_util.h"

#include "observe/observe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fixture {
    char dir[64], path[128];
};

static void fx_open(struct fixture *fx)
{
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/shoal-spans-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/traces.sqlite", fx->dir);
}

static void fx_close(struct fixture *fx)
{
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, sfx[i]);
        unlink(p);
    }
    rmdir(fx->dir);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A span of trace <n> (trace id = n, big-endian in the low bytes), span id n*16+k. */
static void make_span(struct trace_span *s, uint32_t n, uint32_t k, uint64_t ts, uint64_t dur,
                      const char *service)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < 4; i++)
        s->trace_id[15 - i] = (uint8_t)(n >> (8 * i));
    s->trace_id[0] = 0x42; /* a 128-bit id */
    uint32_t sid = n * 16 + k + 1;
    for (int i = 0; i < 4; i++)
        s->span_id[7 - i] = (uint8_t)(sid >> (8 * i));
    if (k) {
        uint32_t pid = n * 16 + 1;
        for (int i = 0; i < 4; i++)
            s->parent_id[7 - i] = (uint8_t)(pid >> (8 * i));
    }
    s->kind = k ? TRACE_KIND_CLIENT : TRACE_KIND_SERVER;
    s->name = k ? SLICE("get /child") : SLICE("get /root");
    s->timestamp_us = ts;
    s->duration_us = dur;
    s->local.service = slice_from_cstr(service);
    s->remote.service = k ? SLICE("db") : SLICE_NULL;
    s->tags[0] = (struct trace_tag){SLICE("http.path"), SLICE("/root")};
    s->tag_count = 1;
}

static void trace_id_of(uint32_t n, uint8_t id[16])
{
    struct trace_span s;
    make_span(&s, n, 0, 1, 1, "x");
    memcpy(id, s.trace_id, 16);
}

static void test_spans__flush_writes_and_queries_read(void **state)
{
    struct fixture fx;
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    struct trace_span s;
    struct buf out = BUF_INIT(0);
    uint8_t id[16];
    uint64_t now_us = 1700000000000000ull;
    (void)state;

    fx_open(&fx);
    assert_int_equal(
        obs_spans_open(&(struct obs_spans_config){.path = fx.path, .flush_ms = 3600000}, &st, &d),
        0);
    make_span(&s, 1, 0, now_us, 5000, "api");
    assert_int_equal(obs_spans_add(st, &s), 0);
    make_span(&s, 1, 1, now_us + 10, 3000, "api");
    assert_int_equal(obs_spans_add(st, &s), 0);
    make_span(&s, 2, 0, now_us + 100, 50, "web");
    assert_int_equal(obs_spans_add(st, &s), 0);
    assert_int_equal(obs_spans_pending(st), 3);
    assert_int_equal(obs_spans_flush(st, 1000), 0);
    assert_int_equal(obs_spans_pending(st), 0);
    struct obs_spans_stats stats;
    assert_int_equal(obs_spans_stats(st, &stats), 0);
    assert_int_equal(stats.traces, 2);
    assert_int_equal(stats.spans, 3);

    trace_id_of(1, id);
    assert_int_equal(obs_spans_trace(st, id, &out), 0);
    assert_non_null(strstr(out.data, "\"name\":\"get /child\""));
    assert_non_null(strstr(out.data, "\"remoteEndpoint\":{\"serviceName\":\"db\"}"));
    buf_reset(&out);
    trace_id_of(3, id);
    assert_int_equal(obs_spans_trace(st, id, &out), SH_ENOENT);

    buf_reset(&out);
    assert_int_equal(obs_spans_services(st, &out), 0);
    assert_string_equal(out.data, "[\"api\",\"web\"]");
    buf_reset(&out);
    assert_int_equal(obs_spans_span_names(st, "api", &out), 0);
    assert_string_equal(out.data, "[\"get /child\",\"get /root\"]");
    buf_reset(&out);
    assert_int_equal(obs_spans_remote_services(st, "api", &out), 0);
    assert_string_equal(out.data, "[\"db\"]");

    struct obs_query q = {.end_ms = now_us / 1000 + 1000, .lookback_ms = 60000};
    buf_reset(&out);
    assert_int_equal(obs_spans_traces(st, &q, &out), 0);
    assert_non_null(strstr(out.data, "\"serviceName\":\"web\""));
    assert_non_null(strstr(out.data, "\"serviceName\":\"api\""));
    q.min_duration_us = 4000;
    buf_reset(&out);
    assert_int_equal(obs_spans_traces(st, &q, &out), 0);
    assert_null(strstr(out.data, "\"serviceName\":\"web\""));
    assert_non_null(strstr(out.data, "\"serviceName\":\"api\""));
    q.min_duration_us = 0;
    q.service = "web";
    buf_reset(&out);
    assert_int_equal(obs_spans_traces(st, &q, &out), 0);
    assert_null(strstr(out.data, "\"serviceName\":\"api\""));
    q.service = NULL;
    q.end_ms = now_us / 1000 - 1000; /* a window before both */
    buf_reset(&out);
    assert_int_equal(obs_spans_traces(st, &q, &out), 0);
    assert_string_equal(out.data, "[]");

    buf_reset(&out);
    assert_int_equal(obs_spans_dependencies(st, now_us / 1000 + 1000, 60000, &out), 0);
    assert_string_equal(out.data, "[{\"parent\":\"api\",\"child\":\"db\",\"callCount\":1}]");

    /* a reopened store has the same spans */
    obs_spans_close(st);
    assert_int_equal(obs_spans_open(&(struct obs_spans_config){.path = fx.path}, &st, &d), 0);
    assert_int_equal(obs_spans_stats(st, &stats), 0);
    assert_int_equal(stats.spans, 3);
    obs_spans_close(st);
    buf_release(&out);
    fx_close(&fx);
}

static void test_spans__size_bound_drops_oldest_first(void **state)
{
    struct fixture fx;
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    struct trace_span s;
    struct buf out = BUF_INIT(0);
    struct obs_spans_stats stats;
    uint8_t id[16];
    const uint64_t max = 256 * 1024;
    off_t biggest = 0;
    char big[900];
    (void)state;

    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fx_open(&fx);
    assert_int_equal(
        obs_spans_open(&(struct obs_spans_config){.path = fx.path, .max_bytes = max}, &st, &d), 0);
    /* ~1 KiB a span, 40000 traces: about 150 times the bound */
    for (uint32_t n = 1; n <= 40000; n++) {
        make_span(&s, n, 0, 1700000000000000ull + n, 100, "svc");
        s.tags[1] = (struct trace_tag){SLICE("payload"), slice_from_cstr(big)};
        s.tag_count = 2;
        assert_int_equal(obs_spans_add(st, &s), 0);
        if (n % 200 == 0) {
            assert_int_equal(obs_spans_flush(st, 1000 + n), 0);
            assert_int_equal(obs_spans_stats(st, &stats), 0);
            assert_true(stats.bytes <= max);
            if (file_size(fx.path) > biggest) biggest = file_size(fx.path);
        }
    }
    assert_int_equal(obs_spans_stats(st, &stats), 0);
    assert_true(stats.bytes <= max && stats.bytes > max / 2);
    assert_true(stats.evicted_traces > 7000);
    /* the newest is there, the oldest are gone, and what is kept is a suffix */
    trace_id_of(40000, id);
    assert_int_equal(obs_spans_trace(st, id, &out), 0);
    trace_id_of(1, id);
    assert_int_equal(obs_spans_trace(st, id, &out), SH_ENOENT);
    trace_id_of((uint32_t)(40000 - stats.traces), id);
    assert_int_equal(obs_spans_trace(st, id, &out), SH_ENOENT);
    trace_id_of((uint32_t)(40000 - stats.traces + 1), id);
    assert_int_equal(obs_spans_trace(st, id, &out), 0);
    obs_spans_close(st);
    /* the file: its pages are reused, not appended forever (WAL checkpointed at close) */
    off_t final = file_size(fx.path);
    print_message("stored %llu bytes (bound %llu); file %lld bytes at most, %lld after close\n",
                  (unsigned long long)stats.bytes, (unsigned long long)max, (long long)biggest,
                  (long long) final);
    if (final > (off_t)(4 * max + 512 * 1024) || biggest > (off_t)(4 * max + 512 * 1024))
        fail_msg("the file grew past the bound: %lld bytes (biggest %lld) for %llu stored",
                 (long long) final, (long long)biggest, (unsigned long long)max);
    buf_release(&out);
    fx_close(&fx);
}

static void test_spans__age_bound(void **state)
{
    struct fixture fx;
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    struct trace_span s;
    struct buf out = BUF_INIT(0);
    uint8_t id[16];
    (void)state;

    fx_open(&fx);
    assert_int_equal(
        obs_spans_open(
            &(struct obs_spans_config){.path = fx.path, .max_age_ms = 60000, .is_manual = true},
            &st, &d),
        0);
    make_span(&s, 1, 0, 1, 1, "old");
    assert_int_equal(obs_spans_add(st, &s), 0);
    assert_int_equal(obs_spans_flush(st, 1000000), 0);
    make_span(&s, 2, 0, 1, 1, "new");
    assert_int_equal(obs_spans_add(st, &s), 0);
    assert_int_equal(obs_spans_flush(st, 1000000 + 30000), 0);
    trace_id_of(1, id);
    assert_int_equal(obs_spans_trace(st, id, &out), 0); /* 30 s old: kept */
    make_span(&s, 3, 0, 1, 1, "newer");
    assert_int_equal(obs_spans_add(st, &s), 0);
    assert_int_equal(obs_spans_flush(st, 1000000 + 61000), 0);
    assert_int_equal(obs_spans_trace(st, id, &out), SH_ENOENT); /* 61 s old: gone */
    trace_id_of(2, id);
    assert_int_equal(obs_spans_trace(st, id, &out), 0);
    buf_reset(&out);
    assert_int_equal(obs_spans_services(st, &out), 0);
    assert_string_equal(out.data, "[\"new\",\"newer\"]"); /* its name went with it */
    obs_spans_close(st);
    buf_release(&out);
    fx_close(&fx);
}

static void test_spans__buffer_is_bounded(void **state)
{
    struct fixture fx;
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    struct trace_span s;
    struct obs_spans_stats stats;
    static char huge[TRACE_SPAN_MAX_BYTES + 1];
    (void)state;

    fx_open(&fx);
    assert_int_equal(
        obs_spans_open(
            &(struct obs_spans_config){.path = fx.path, .max_buffered = 3, .flush_ms = 3600000},
            &st, &d),
        0);
    struct trace_span four[4];
    for (uint32_t n = 0; n < 4; n++)
        make_span(&four[n], n + 1, 0, 1, 1, "a");
    assert_true(obs_spans_has_room(st, four, 3));
    assert_false(obs_spans_has_room(st, four, 4));
    for (uint32_t n = 1; n <= 3; n++) {
        make_span(&s, n, 0, 1, 1, "a");
        assert_int_equal(obs_spans_add(st, &s), 0);
    }
    make_span(&s, 4, 0, 1, 1, "a");
    assert_int_equal(obs_spans_add(st, &s), SH_ELIMIT);
    memset(huge, 'x', sizeof(huge) - 1);
    s.name = slice_from_cstr(huge);
    assert_int_equal(obs_spans_add(st, &s), SH_ETOOBIG);
    assert_int_equal(obs_spans_flush(st, 1), 0);
    assert_int_equal(obs_spans_stats(st, &stats), 0);
    assert_int_equal(stats.spans, 3);
    assert_int_equal(stats.refused_spans, 1);
    obs_spans_close(st);
    fx_close(&fx);
}

static void test_spans__a_rare_service_is_found_among_many(void **state)
{
    struct fixture fx;
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    struct trace_span s;
    struct buf out = BUF_INIT(0);
    uint64_t t0 = 1700000000000000ull;
    (void)state;

    fx_open(&fx);
    assert_int_equal(
        obs_spans_open(&(struct obs_spans_config){.path = fx.path, .max_scan = 100}, &st, &d), 0);
    make_span(&s, 1, 0, t0, 10, "rare"); /* the oldest of the window */
    assert_int_equal(obs_spans_add(st, &s), 0);
    for (uint32_t n = 2; n <= 2000; n++) {
        make_span(&s, n, 0, t0 + n, 10, "busy");
        assert_int_equal(obs_spans_add(st, &s), 0);
    }
    assert_int_equal(obs_spans_flush(st, 1), 0);
    struct obs_query q = {.service = "rare", .end_ms = t0 / 1000 + 10000, .lookback_ms = 60000};
    assert_int_equal(obs_spans_traces(st, &q, &out), 0);
    assert_non_null(strstr(out.data, "\"serviceName\":\"rare\""));
    /* without a service, a query examines the max_scan newest traces of its window */
    q.service = NULL;
    q.limit = 1000;
    buf_reset(&out);
    assert_int_equal(obs_spans_traces(st, &q, &out), 0);
    assert_null(strstr(out.data, "\"serviceName\":\"rare\""));
    size_t traces = 0;
    for (const char *p = out.data; (p = strstr(p, "\"kind\":\"SERVER\"")); p++)
        traces++;
    assert_int_equal(traces, 100);
    obs_spans_close(st);
    buf_release(&out);
    fx_close(&fx);
}

/* The writer thread writes a large batch while its opener goes on adding spans: an add never
 * waits for the batch's transaction (it takes the lock only for as long as the writer swaps
 * buffers), and a query then sees every span added before it. */
static void test_spans__a_large_flush_does_not_block_adds(void **state)
{
    struct fixture fx;
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    struct trace_span s;
    struct obs_spans_stats stats;
    const uint32_t batch = 40000;
    uint64_t t0, t1, worst = 0, adds = 0;
    (void)state;

    fx_open(&fx);
    assert_int_equal(
        obs_spans_open(&(struct obs_spans_config){.path = fx.path, .flush_ms = 3600000}, &st, &d),
        0);
    for (uint32_t n = 1; n <= batch; n++) {
        make_span(&s, n, 0, 1700000000000000ull + n, 100, "bulk");
        assert_int_equal(obs_spans_add(st, &s), 0);
    }
    t0 = sh_now_us();
    obs_spans_kick(st);
    /* while the batch is written (pending counts it until it is committed) */
    while (obs_spans_pending(st) > adds) {
        if (adds == 20000) continue; /* enough: the buffer is bounded */
        uint64_t a = sh_now_us();
        make_span(&s, batch + 1 + (uint32_t)adds, 0, 1700000000000000ull, 100, "live");
        assert_int_equal(obs_spans_add(st, &s), 0);
        uint64_t took = sh_now_us() - a;
        if (took > worst) worst = took;
        adds++;
    }
    t1 = sh_now_us();
    print_message("a %u-span batch written in %.1f ms; %llu adds meanwhile, the slowest %.3f ms\n",
                  batch, (double)(t1 - t0) / 1000.0, (unsigned long long)adds,
                  (double)worst / 1000.0);
    assert_true(t1 - t0 > 20000);     /* the batch took a while ... */
    assert_true(adds > 100);          /* ... adds went on meanwhile ... */
    assert_true(worst * 4 < t1 - t0); /* ... and none of them waited for it */
    /* a query sees everything added before it, the adds made during the batch too */
    assert_int_equal(obs_spans_stats(st, &stats), 0);
    struct buf out = BUF_INIT(0);
    assert_int_equal(obs_spans_services(st, &out), 0);
    assert_string_equal(out.data, "[\"bulk\",\"live\"]");
    assert_int_equal(obs_spans_stats(st, &stats), 0);
    assert_int_equal(stats.spans, batch + adds);
    assert_int_equal(obs_spans_pending(st), 0);
    buf_release(&out);
    obs_spans_close(st);
    fx_close(&fx);
}

static void test_spans__open_fails_with_where(void **state)
{
    struct obs_spans *st;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    assert_true(obs_spans_open(&(struct obs_spans_config){.path = "/nonexistent/dir/t.sqlite"}, &st,
                               &d) < 0);
    assert_null(st);
    assert_string_equal(d.where, "/nonexistent/dir/t.sqlite");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_spans__flush_writes_and_queries_read),
        SH_TEST(test_spans__size_bound_drops_oldest_first),
        SH_TEST(test_spans__age_bound),
        SH_TEST(test_spans__buffer_is_bounded),
        SH_TEST(test_spans__a_rare_service_is_found_among_many),
        SH_TEST(test_spans__a_large_flush_does_not_block_adds),
        SH_TEST(test_spans__open_fails_with_where),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
