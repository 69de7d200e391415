/* SPDX-License-Identifier: MIT */
/* test_logs_store.c: the log store on a temporary file: lines added are found by a word, by
 * trace id, by service, instance, level and time, newest <limit> handed oldest first, and
 * after an id (follow); the bounds drop the oldest rows (age, size); a query FTS5 refuses is
 * SH_EPARSE naming q; the writer thread commits what flush waits for. */
#include "test_util.h"

#include "observe/observe.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"

struct fixture {
    char dir[64], path[96];
    struct obs_logs *st;
};

static void fx_open(struct fixture *fx, const struct obs_logs_config *base)
{
    struct obs_logs_config cfg = *base;
    struct sh_diag d = {{0}, {0}};

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/shoal-logs-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/logs.sqlite", fx->dir);
    cfg.path = fx->path;
    if (obs_logs_open(&cfg, &fx->st, &d) != 0) fail_msg("open: %s: %s", d.where, d.what);
}

static void fx_close(struct fixture *fx)
{
    char p[128];

    obs_logs_close(fx->st);
    fx->st = NULL;
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", fx->path, (const char *[]){"", "-wal", "-shm"}[i]);
        unlink(p);
    }
    rmdir(fx->dir);
}

static void add(struct obs_logs *st, uint64_t ms, const char *svc, const char *inst,
                enum obs_log_stream stream, const char *line)
{
    struct obs_log_entry e = {.ms = ms,
                              .service = slice_from_cstr(svc),
                              .instance = slice_from_cstr(inst),
                              .stream = stream,
                              .line = slice_from_cstr(line)};
    assert_int_equal(obs_logs_add(st, &e), 0);
}

/* Rows found, as "instance|line" joined by '\n', into a buffer. */
struct found {
    struct buf b;
    size_t n;
    uint64_t last_id;
    struct obs_log_row first;
    char first_trace[33], first_level[8];
};

static int collect(void *data, const struct obs_log_row *row)
{
    struct found *f = data;

    if (f->n++ == 0) {
        snprintf(f->first_trace, sizeof(f->first_trace), "%s", row->trace_id);
        snprintf(f->first_level, sizeof(f->first_level), "%s",
                 obs_log_level_name(row->level) ? obs_log_level_name(row->level) : "");
    }
    assert_true(row->id > f->last_id); /* oldest first */
    f->last_id = row->id;
    buf_appendf(&f->b, "%s|%s\n", row->instance, row->line);
    return 0;
}

static size_t search(struct obs_logs *st, const struct obs_logs_query *q, struct found *f)
{
    struct sh_diag d = {{0}, {0}};
    int rc;

    buf_release(&f->b);
    memset(f, 0, sizeof(*f));
    rc = obs_logs_search(st, q, collect, f, &d);
    if (rc != 0) fail_msg("search: %d %s: %s", rc, d.where, d.what);
    return f->n;
}

static size_t search_text(struct obs_logs *st, const char *text, struct found *f)
{
    struct buf fts = BUF_INIT(1024);
    struct sh_diag d = {{0}, {0}};
    size_t n;

    assert_int_equal(obs_log_fts_query(slice_from_cstr(text), &fts, &d), 0);
    n = search(st, &(struct obs_logs_query){.fts = fts.data}, f);
    buf_release(&fts);
    return n;
}

static void fill(struct obs_logs *st)
{
    add(st, 1000, "api", "api-1", OBS_STREAM_STDOUT, "INFO listening on 8080");
    add(st, 2000, "api", "api-2", OBS_STREAM_STDERR, "ERROR database timeout after 5s");
    add(st, 3000, "db", "db-1", OBS_STREAM_STDOUT,
        "{\"level\":\"warn\",\"msg\":\"slow query\",\"trace_id\":\"" TID "\",\"user\":\"ada\"}");
    add(st, 4000, "gateway", "gateway", OBS_STREAM_ACCESS,
        "{\"ts\":4500,\"method\":\"GET\",\"target\":\"/users\",\"route\":\"r\",\"cluster\":\"api\","
        "\"status\":200,\"duration_ms\":2.0,\"trace_id\":\"" TID "\"}");
    assert_int_equal(obs_logs_flush(st), 0);
}

static void test_store__search_by_word_trace_and_filters(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true});
    fill(fx.st);
    assert_int_equal(search_text(fx.st, "timeout", &f), 1);
    assert_string_equal(f.b.data, "api-2|ERROR database timeout after 5s\n");
    assert_string_equal(f.first_level, "error");
    /* a word only in the raw JSON (not the message) is found too */
    assert_int_equal(search_text(fx.st, "ada", &f), 1);
    assert_string_equal(f.first_trace, TID);
    /* prefix, and two words that must both be there */
    assert_int_equal(search_text(fx.st, "datab*", &f), 1);
    assert_int_equal(search_text(fx.st, "database listening", &f), 0);
    /* a word of the access line's readable message */
    assert_int_equal(search_text(fx.st, "users", &f), 1);
    /* FTS5 syntax typed by a user is just words */
    assert_int_equal(search_text(fx.st, "NOT OR AND", &f), 0);
    /* by trace id: the service's line and the access line */
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.trace_id = TID}, &f), 2);
    assert_non_null(strstr(f.b.data, "db-1|"));
    assert_non_null(strstr(f.b.data, "gateway|"));
    /* filters */
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.service = "api"}, &f), 2);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.instance = "api-1"}, &f), 1);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.min_level = OBS_LEVEL_WARN}, &f), 2);
    assert_int_equal(
        search(fx.st, &(struct obs_logs_query){.since_ms = 2000, .until_ms = 3000}, &f), 2);
    /* the access line's own ts is its time */
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.since_ms = 4400}, &f), 1);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.contains = "timeout aft"}, &f), 1);
    buf_release(&f.b);
    fx_close(&fx);
}

static void test_store__newest_limit_oldest_first_and_follow(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    char line[64];
    uint64_t mid;
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true});
    for (int i = 0; i < 50; i++) {
        snprintf(line, sizeof(line), "line %d", i);
        add(fx.st, 1000 + (uint64_t)i, "s", "s-1", OBS_STREAM_STDOUT, line);
    }
    assert_int_equal(obs_logs_flush(fx.st), 0);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.limit = 3}, &f), 3);
    assert_string_equal(f.b.data, "s-1|line 47\ns-1|line 48\ns-1|line 49\n");
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.limit = 2, .fts = "\"line\""}, &f), 2);
    assert_string_equal(f.b.data, "s-1|line 48\ns-1|line 49\n");
    mid = f.last_id - 10;
    /* follow: the oldest rows after an id */
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.after_id = mid, .limit = 2}, &f), 2);
    assert_string_equal(f.b.data, "s-1|line 40\ns-1|line 41\n");
    buf_release(&f.b);
    fx_close(&fx);
}

static void test_store__bad_fts_expression_is_eparse_on_q(void **state)
{
    struct fixture fx = {0};
    struct sh_diag d = {{0}, {0}};
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true});
    fill(fx.st);
    /* obs_log_fts_query never makes this; a caller passing raw FTS5 gets the error on q */
    assert_int_equal(obs_logs_search(fx.st, &(struct obs_logs_query){.fts = "AND AND ("}, collect,
                                     &(struct found){0}, &d),
                     SH_EPARSE);
    assert_string_equal(d.where, "q");
    fx_close(&fx);
}

static void test_store__age_bound_drops_oldest(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    struct obs_logs_stats s;
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true, .max_age_ms = 10000});
    for (uint64_t i = 0; i < 100; i++)
        add(fx.st, 1000 * i, "s", "s-1", OBS_STREAM_STDOUT, "tick");
    assert_int_equal(obs_logs_flush(fx.st), 0);
    /* now = 100 s: rows older than 90 s go */
    assert_int_equal(obs_logs_retain(fx.st, 100000), 0);
    assert_int_equal(obs_logs_stats(fx.st, &s), 0);
    assert_int_equal(s.rows, 10);
    assert_int_equal(s.deleted, 90);
    assert_int_equal(s.oldest_ms, 90000);
    /* the index forgot them too */
    assert_int_equal(search_text(fx.st, "tick", &f), 10);
    buf_release(&f.b);
    fx_close(&fx);
}

static void test_store__size_bound_drops_oldest(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    struct obs_logs_stats s;
    char line[256];
    const uint64_t max = 1u << 20;
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true, .max_bytes = max});
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 2000; i++) {
            snprintf(line, sizeof(line),
                     "request %d of round rnd%d took %d ms on worker w%d with token t%08x", i,
                     round, i % 97, i % 7, (unsigned)i * 2654435761u);
            add(fx.st, 1000, "s", "s-1", OBS_STREAM_STDOUT, line);
        }
        assert_int_equal(obs_logs_flush(fx.st), 0);
        assert_int_equal(obs_logs_retain(fx.st, 2000), 0);
        assert_int_equal(obs_logs_stats(fx.st, &s), 0);
        if (s.used_bytes > max)
            fail_msg("round %d: %llu bytes used", round, (unsigned long long)s.used_bytes);
    }
    assert_true(s.deleted > 0);
    assert_int_equal(s.rows + s.deleted, 20000);
    /* the newest lines stay, the oldest went */
    assert_int_equal(search_text(fx.st, "round", &f), 1000);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.fts = "\"rnd9\"", .limit = 1}, &f), 1);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.fts = "\"rnd0\""}, &f), 0);
    buf_release(&f.b);
    fx_close(&fx);
}

static void test_store__writer_thread_commits_on_flush(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.flush_ms = 50});
    fill(fx.st);
    assert_int_equal(search_text(fx.st, "timeout", &f), 1);
    /* and without flush: the writer's timer */
    add(fx.st, 5000, "api", "api-1", OBS_STREAM_STDOUT, "later");
    for (int i = 0; i < TEST_WAIT_MS / 10 && search_text(fx.st, "later", &f) == 0; i++)
        usleep(10000);
    assert_int_equal(f.n, 1);
    buf_release(&f.b);
    fx_close(&fx);
}

static void test_store__pending_bound_drops_and_counts(void **state)
{
    struct fixture fx = {0};
    struct obs_logs_stats s;
    struct obs_log_entry e = {.service = SLICE("s"), .instance = SLICE("s-1"), .line = SLICE("x")};
    int refused = 0;
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true, .max_pending_bytes = 4096});
    for (int i = 0; i < 200; i++)
        refused += obs_logs_add(fx.st, &e) == SH_ELIMIT;
    assert_true(refused > 0);
    assert_int_equal(obs_logs_flush(fx.st), 0);
    assert_int_equal(obs_logs_stats(fx.st, &s), 0);
    assert_int_equal(s.dropped, (uint64_t)refused);
    assert_int_equal(s.rows, 200 - (uint64_t)refused);
    fx_close(&fx);
}

static void test_store__invalid_utf8_and_long_lines(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    static char big[OBS_LOG_LINE_MAX + 100];
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true});
    add(fx.st, 1, "s", "s-1", OBS_STREAM_STDOUT, "bad \xff\xfe byte");
    memset(big, 'b', sizeof(big) - 1);
    add(fx.st, 2, "s", "s-2", OBS_STREAM_STDOUT, big);
    assert_int_equal(obs_logs_flush(fx.st), 0);
    assert_int_equal(search_text(fx.st, "byte", &f), 1);
    assert_string_equal(f.b.data, "s-1|bad ?? byte\n");
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.instance = "s-2"}, &f), 1);
    assert_int_equal(f.b.len, strlen("s-2|\n") + OBS_LOG_LINE_MAX);
    buf_release(&f.b);
    fx_close(&fx);
}

/* Full text with ?service= and ?level=: the service and the level are tag tokens of the index
 * (any name, whatever its characters); a word the user types never matches a tag. */
static void test_store__words_with_service_and_level(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    struct buf fts = BUF_INIT(1024);
    struct sh_diag d = {{0}, {0}};
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true});
    add(fx.st, 1000, "my-svc.v2", "a-1", OBS_STREAM_STDOUT, "WARN disk almost full");
    add(fx.st, 2000, "my-svc.v2", "a-1", OBS_STREAM_STDOUT, "INFO disk fine");
    add(fx.st, 3000, "my-svc", "b-1", OBS_STREAM_STDOUT, "ERROR disk gone");
    add(fx.st, 4000, "other", "c-1", OBS_STREAM_STDOUT, "FATAL disk on fire g4");
    assert_int_equal(obs_logs_flush(fx.st), 0);
    assert_int_equal(obs_log_fts_query(SLICE("disk"), &fts, &d), 0);
    struct obs_logs_query q = {.fts = fts.data, .service = "my-svc.v2"};
    assert_int_equal(search(fx.st, &q, &f), 2);
    q.min_level = OBS_LEVEL_WARN;
    assert_int_equal(search(fx.st, &q, &f), 1);
    assert_non_null(strstr(f.b.data, "almost full"));
    q.service = "my-svc";
    assert_int_equal(search(fx.st, &q, &f), 1);
    assert_non_null(strstr(f.b.data, "gone"));
    q.service = NULL;
    q.min_level = OBS_LEVEL_ERROR;
    assert_int_equal(search(fx.st, &q, &f), 2);
    q.min_level = OBS_LEVEL_FATAL;
    assert_int_equal(search(fx.st, &q, &f), 1);
    q.service = "nobody";
    assert_int_equal(search(fx.st, &q, &f), 0);
    /* the tags are not words: "g4" is found in the one line that says it */
    assert_int_equal(search_text(fx.st, "g4", &f), 1);
    assert_int_equal(search_text(fx.st, "s6F74686572", &f), 0); /* "other" as a tag */
    /* rows dropped by the bounds leave the index in step */
    assert_int_equal(obs_logs_retain(fx.st, 4000 + 7ull * 24 * 3600 * 1000 - 1500), 0);
    buf_reset(&fts);
    assert_int_equal(obs_log_fts_query(SLICE("disk"), &fts, &d), 0);
    q = (struct obs_logs_query){.fts = fts.data, .min_level = OBS_LEVEL_WARN};
    assert_int_equal(search(fx.st, &q, &f), 2);
    buf_release(&fts);
    buf_release(&f.b);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO logs_fts(logs_fts) VALUES ('integrity-check')", 0, 0, 0),
        SQLITE_OK);
    sqlite3_close(db);
    fx_close(&fx);
}

/* A store of version 1 (no tags in the index) is migrated when opened: its lines are found
 * by word, service and level. */
static void test_store__migrates_version_1(void **state)
{
    struct fixture fx = {0};
    struct found f = {0};
    struct buf fts = BUF_INIT(1024);
    struct sh_diag d = {{0}, {0}};
    sqlite3 *db;
    (void)state;

    fx_open(&fx, &(struct obs_logs_config){.is_manual = true});
    obs_logs_close(fx.st);
    unlink(fx.path);
    assert_int_equal(sqlite3_open(fx.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "CREATE TABLE logs(id INTEGER PRIMARY KEY AUTOINCREMENT, ms INTEGER NOT NULL,"
            " service TEXT NOT NULL, instance TEXT NOT NULL, stream INTEGER NOT NULL,"
            " level INTEGER NOT NULL, trace_id TEXT, span_id TEXT, message TEXT NOT NULL, raw "
            "TEXT);"
            "CREATE VIRTUAL TABLE logs_fts USING fts5(message, raw, content='logs',"
            " content_rowid='id', tokenize='unicode61');"
            "CREATE TRIGGER logs_ai AFTER INSERT ON logs BEGIN"
            " INSERT INTO logs_fts(rowid, message, raw) VALUES (new.id, new.message, new.raw); END;"
            "INSERT INTO logs(ms, service, instance, stream, level, message) VALUES"
            " (1, 'api', 'api-1', 0, 5, 'ERROR old line kept'),"
            " (2, 'web', 'web-1', 0, 3, 'INFO old line too');"
            "PRAGMA user_version = 1;",
            0, 0, 0),
        SQLITE_OK);
    sqlite3_close(db);
    if (obs_logs_open(&(struct obs_logs_config){.path = fx.path, .is_manual = true}, &fx.st, &d))
        fail_msg("open: %s: %s", d.where, d.what);
    assert_int_equal(obs_log_fts_query(SLICE("old"), &fts, &d), 0);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.fts = fts.data}, &f), 2);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.fts = fts.data, .service = "api"}, &f),
                     1);
    assert_int_equal(
        search(fx.st, &(struct obs_logs_query){.fts = fts.data, .min_level = OBS_LEVEL_ERROR}, &f),
        1);
    add(fx.st, 3, "api", "api-1", OBS_STREAM_STDOUT, "WARN new old line");
    assert_int_equal(obs_logs_flush(fx.st), 0);
    assert_int_equal(search(fx.st, &(struct obs_logs_query){.fts = fts.data, .service = "api"}, &f),
                     2);
    buf_release(&fts);
    buf_release(&f.b);
    fx_close(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_store__words_with_service_and_level),
        SH_TEST(test_store__migrates_version_1),
        SH_TEST(test_store__search_by_word_trace_and_filters),
        SH_TEST(test_store__newest_limit_oldest_first_and_follow),
        SH_TEST(test_store__bad_fts_expression_is_eparse_on_q),
        SH_TEST(test_store__age_bound_drops_oldest),
        SH_TEST(test_store__size_bound_drops_oldest),
        SH_TEST(test_store__writer_thread_commits_on_flush),
        SH_TEST(test_store__pending_bound_drops_and_counts),
        SH_TEST(test_store__invalid_utf8_and_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
