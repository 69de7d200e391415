/* SPDX-License-Identifier: MIT */
/* logs_store.c: the log store, DATA_DIR/logs.sqlite (see observe.h, Logs).
 *
 * Schema: one table `logs` (id, ms, service, instance, stream, level, trace_id, span_id,
 * message, raw) and an FTS5 index `logs_fts` over (message, raw) with external content: the
 * text is kept once, in `logs`, where the API reads it anyway, and the index holds only the
 * tokens. raw is NULL when the line is its own message (plain text), so such lines are
 * neither stored nor indexed twice. A contentless index would not need the text to delete a
 * row, but SQLite 3.40 (Debian 12) has no contentless_delete, and rows must go when the
 * bounds say so: triggers keep the index in step, the delete trigger handing FTS5 the old
 * values. Indexes: ms (age bound, since/until), service, trace_id (partial: lines with one).
 *
 * Threads: obs_logs_add/flush/search/stats/close belong to the owner's thread. The writer
 * thread owns `wdb`; the owner's searches use `rdb` (WAL: readers never wait for the writer).
 * The pending list is the only state both touch, under `mu`, for as long as a pointer swap
 * (add appends one entry; the writer takes the whole list). */
#include "observe/observe.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
    DEFAULT_MAX_BYTES = 256u << 20,
    DEFAULT_FLUSH_MS = 100,
    DEFAULT_RETAIN_MS = 5000,
    DEFAULT_PENDING = 32u << 20,
    DELETE_CHUNK = 5000, /* rows dropped per transaction by the bounds */
};
#define DEFAULT_MAX_AGE_MS (7ull * 24 * 3600 * 1000)

/* One added line, waiting for the writer: service, instance and line follow, NUL-terminated. */
struct pend {
    struct pend *next;
    uint64_t ms;
    enum obs_log_stream stream;
    size_t service_len, instance_len, line_len;
    char data[];
};

struct obs_logs {
    struct obs_logs_config cfg;
    sqlite3 *wdb, *rdb;
    sqlite3_stmt *ins;
    pthread_t thread;
    bool has_thread, has_sync;
    pthread_mutex_t mu;  /* the pending list */
    pthread_mutex_t wmu; /* wdb: the writer's batches against obs_logs_retain */
    pthread_cond_t wake, done;
    /* under mu */
    struct pend *head, *tail;
    size_t pending_bytes;
    uint64_t added, committed; /* lines added, lines the writer is done with */
    bool stopping, flush_wanted;
    /* the writer's */
    uint64_t last_retain_ms;
    bool is_failing; /* the last batch failed: the next failure is not logged again */
    struct obs_log_fields fields;
    /* any thread */
    _Atomic uint64_t inserted, deleted, dropped;
};

/* The FTS5 index also holds, in a third column `tags`, a token naming the line's service
 * ("s" + the hex of its bytes, so any name is one token) and one token per level at or under
 * the line's ("g1".."g6"): a full-text query with ?service= and ?level= is then one FTS5
 * expression, intersected in the posting lists, instead of visiting every match newest first
 * to test its row (bench/results/logs.md). The column is computed by the view the index reads
 * as its content, and by the triggers from the same expression, so a delete gives FTS5 the
 * same tokens as the insert. */
#define LOGS_TAGS(r)                                                                               \
    "'s' || hex(" r ".service) || ' ' || substr('g1 g2 g3 g4 g5 g6', 1, 3 * " r ".level)"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS logs("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, ms INTEGER NOT NULL, service TEXT NOT NULL,"
    " instance TEXT NOT NULL, stream INTEGER NOT NULL, level INTEGER NOT NULL,"
    " trace_id TEXT, span_id TEXT, message TEXT NOT NULL, raw TEXT);"
    "CREATE INDEX IF NOT EXISTS logs_ms ON logs(ms);"
    "CREATE INDEX IF NOT EXISTS logs_service ON logs(service);"
    "CREATE INDEX IF NOT EXISTS logs_trace ON logs(trace_id) WHERE trace_id IS NOT NULL;"
    "CREATE VIEW IF NOT EXISTS logs_fts_src AS SELECT id, message, raw, " LOGS_TAGS(
        "logs") " AS tags FROM logs;"
                "CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(message, raw, tags,"
                " content='logs_fts_src', content_rowid='id', tokenize='unicode61');"
                "CREATE TRIGGER IF NOT EXISTS logs_ai AFTER INSERT ON logs BEGIN"
                " INSERT INTO logs_fts(rowid, message, raw, tags) VALUES (new.id, new.message, "
                "new.raw, " LOGS_TAGS(
                    "new") "); END;"
                           "CREATE TRIGGER IF NOT EXISTS logs_ad AFTER DELETE ON logs BEGIN"
                           " INSERT INTO logs_fts(logs_fts, rowid, message, raw, tags)"
                           " VALUES ('delete', old.id, old.message, old.raw, " LOGS_TAGS(
                               "old") "); END;";

/* Version 1 indexed (message, raw) only: its index is rebuilt with the tags (once; it reads
 * every row, about a minute for a full 256 MiB store). */
static const char migrate_v1_sql[] =
    "DROP TRIGGER IF EXISTS logs_ai; DROP TRIGGER IF EXISTS logs_ad;"
    " DROP TABLE IF EXISTS logs_fts;";

/* The one place SQLite's codes become ours. */
static int from_sqlite(sqlite3 *db, int rc, struct sh_diag *d, const char *what)
{
    int prim = rc & 0xff;

    if (d) sh_diag_set(d, "logs", "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return prim == SQLITE_NOMEM     ? SH_ENOMEM
           : prim == SQLITE_FULL    ? SH_ENOSPC
           : prim == SQLITE_BUSY    ? SH_EBUSY
           : prim == SQLITE_CORRUPT ? SH_ECORRUPT
           : prim == SQLITE_NOTADB  ? SH_ECORRUPT
                                    : SH_EIO;
}

static int exec(sqlite3 *db, const char *sql, struct sh_diag *d)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : from_sqlite(db, rc, d, sql);
}

static int open_db(const char *path, sqlite3 **out, struct sh_diag *d)
{
    int rc = sqlite3_open_v2(
        path, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK) return from_sqlite(*out, rc, d, path);
    sqlite3_busy_timeout(*out, 5000);
    return 0;
}

static uint64_t now_mono_ms(void)
{
    return sh_now_ms();
}

/* ------------------------------------------------------------------------------------------
 * Writing (the writer thread, or the owner's in manual mode)
 * ------------------------------------------------------------------------------------------ */
static void bind_text(sqlite3_stmt *s, int i, const char *p, size_t n)
{
    if (!p || n == 0)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_text(s, i, p, (int)n, SQLITE_STATIC);
}

static int insert_one(struct obs_logs *st, const struct pend *p)
{
    struct obs_log_fields *f = &st->fields;
    const char *service = p->data, *instance = service + p->service_len + 1;
    const char *line = instance + p->instance_len + 1;
    struct slice ln = {line, p->line_len};
    bool same;
    int rc;

    obs_log_parse(ln, p->stream, f);
    same = f->message.ptr == ln.ptr && f->message.len == ln.len;
    sqlite3_bind_int64(st->ins, 1, (sqlite3_int64)(f->ts_ms ? f->ts_ms : p->ms));
    sqlite3_bind_text(st->ins, 2, service, (int)p->service_len, SQLITE_STATIC);
    sqlite3_bind_text(st->ins, 3, instance, (int)p->instance_len, SQLITE_STATIC);
    sqlite3_bind_int(st->ins, 4, (int)p->stream);
    sqlite3_bind_int(st->ins, 5, (int)f->level);
    bind_text(st->ins, 6, f->trace_id, strlen(f->trace_id));
    bind_text(st->ins, 7, f->span_id, strlen(f->span_id));
    sqlite3_bind_text(st->ins, 8, f->message.ptr ? f->message.ptr : "", (int)f->message.len,
                      SQLITE_STATIC);
    if (same)
        sqlite3_bind_null(st->ins, 9);
    else
        sqlite3_bind_text(st->ins, 9, line, (int)p->line_len, SQLITE_STATIC);
    rc = sqlite3_step(st->ins);
    sqlite3_reset(st->ins);
    sqlite3_clear_bindings(st->ins);
    return rc == SQLITE_DONE ? 0 : from_sqlite(st->wdb, rc, NULL, "insert");
}

/* One transaction for the whole list; frees it. Lines of a failed batch are counted dropped. */
static void pend_sanitize(struct pend *p);

static int write_batch(struct obs_logs *st, struct pend *list)
{
    uint64_t n = 0, total = 0;
    int rc = exec(st->wdb, "BEGIN", NULL);

    for (struct pend *p = list; p; p = p->next) {
        total++;
        if (rc == 0) {
            pend_sanitize(p); /* here, on the writer's thread, not on the caller's */
            rc = insert_one(st, p);
            n += rc == 0;
        }
    }
    if (rc == 0) rc = exec(st->wdb, "COMMIT", NULL);
    if (rc < 0) {
        (void)exec(st->wdb, "ROLLBACK", NULL);
        atomic_fetch_add(&st->dropped, total);
        if (!st->is_failing) /* once per run of failures: a full disk fails every batch */
            SH_LOG(SH_WARN, "observe", "log lines lost: the log store's write failed",
                   LF_UINT("lines", total), LF_ERR("err", rc),
                   LF_STR("detail", sqlite3_errmsg(st->wdb)));
        st->is_failing = true;
    } else {
        if (st->is_failing) SH_LOG(SH_INFO, "observe", "the log store writes again");
        st->is_failing = false;
        atomic_fetch_add(&st->inserted, n);
    }
    while (list) {
        struct pend *next = list->next;
        sh_free(list);
        list = next;
    }
    return rc;
}

static int query_u64(sqlite3 *db, const char *sql, uint64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

    *out = 0;
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(s, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? 0 : from_sqlite(db, rc, NULL, sql);
}

static int used_bytes(sqlite3 *db, uint64_t *out)
{
    uint64_t pages, free_pages, page_size;

    SH_TRY(query_u64(db, "PRAGMA page_count", &pages));
    SH_TRY(query_u64(db, "PRAGMA freelist_count", &free_pages));
    SH_TRY(query_u64(db, "PRAGMA page_size", &page_size));
    *out = (pages - SH_MIN(free_pages, pages)) * page_size;
    return 0;
}

/* DELETE ... with one bound parameter, in chunks of DELETE_CHUNK rows a transaction, until a
 * chunk deletes fewer. */
static int delete_chunks(struct obs_logs *st, const char *sql, uint64_t param)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->wdb, sql, -1, &s, NULL), changed;

    if (rc != SQLITE_OK) return from_sqlite(st->wdb, rc, NULL, sql);
    do {
        rc = exec(st->wdb, "BEGIN", NULL);
        if (rc < 0) break;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)param);
        sqlite3_bind_int(s, 2, DELETE_CHUNK);
        rc = sqlite3_step(s) == SQLITE_DONE ? 0 : from_sqlite(st->wdb, SQLITE_ERROR, NULL, sql);
        sqlite3_reset(s);
        changed = sqlite3_changes(st->wdb);
        if (rc == 0) rc = exec(st->wdb, "COMMIT", NULL);
        if (rc < 0) {
            (void)exec(st->wdb, "ROLLBACK", NULL);
            break;
        }
        atomic_fetch_add(&st->deleted, (uint64_t)changed);
    } while (changed == DELETE_CHUNK);
    sqlite3_finalize(s);
    return rc;
}

static int retain(struct obs_logs *st, uint64_t now_ms)
{
    uint64_t used, min_id, max_id, cutoff;
    int rc;

    cutoff = now_ms > st->cfg.max_age_ms ? now_ms - st->cfg.max_age_ms : 0;
    rc = delete_chunks(st,
                       "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ms < ?1 "
                       "ORDER BY ms LIMIT ?2)",
                       cutoff);
    /* Size: drop the oldest rows in proportion to the excess, aiming 10% under the bound so
     * the next batches do not cross it again at once; the freed pages are reused. */
    for (int round = 0; rc == 0 && round < 8; round++) {
        uint64_t target = st->cfg.max_bytes / 10 * 9, rows, n;
        SH_TRY(used_bytes(st->wdb, &used));
        if (used <= st->cfg.max_bytes) break;
        SH_TRY(query_u64(st->wdb, "SELECT min(id) FROM logs", &min_id));
        SH_TRY(query_u64(st->wdb, "SELECT max(id) FROM logs", &max_id));
        if (max_id < min_id || max_id == 0) break;
        rows = max_id - min_id + 1;
        n = (uint64_t)((double)rows * (double)(used - target) / (double)used) + 1;
        rc = delete_chunks(st,
                           "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE id < ?1 "
                           "ORDER BY id LIMIT ?2)",
                           min_id + n);
        /* the index keeps delete markers until its segments merge: merge now, so the pages
         * of what was dropped are free before the size is measured again */
        if (rc == 0)
            rc =
                exec(st->wdb, "INSERT INTO logs_fts(logs_fts, rank) VALUES ('merge', -1000)", NULL);
    }
    return rc;
}

/* Takes the pending list (under mu). */
static struct pend *take_pending(struct obs_logs *st, uint64_t *count)
{
    struct pend *list = st->head;

    st->head = st->tail = NULL;
    st->pending_bytes = 0;
    *count = st->added;
    return list;
}

static void *writer_main(void *arg)
{
    struct obs_logs *st = arg;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        struct pend *list;
        uint64_t upto;
        bool stop;
        if (!st->stopping && !st->flush_wanted) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += (long)(st->cfg.flush_ms % 1000) * 1000000L;
            ts.tv_sec += (time_t)(st->cfg.flush_ms / 1000) + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&st->wake, &st->mu, &ts);
        }
        list = take_pending(st, &upto);
        stop = st->stopping;
        st->flush_wanted = false;
        pthread_mutex_unlock(&st->mu);
        pthread_mutex_lock(&st->wmu);
        if (list) (void)write_batch(st, list);
        if (now_mono_ms() - st->last_retain_ms >= st->cfg.retain_every_ms) {
            int rc = retain(st, sh_wall_ms());
            if (rc < 0)
                SH_LOG(SH_WARN, "observe", "the log store's bounds could not be enforced",
                       LF_ERR("err", rc), LF_STR("detail", sqlite3_errmsg(st->wdb)));
            st->last_retain_ms = now_mono_ms();
        }
        pthread_mutex_unlock(&st->wmu);
        pthread_mutex_lock(&st->mu);
        st->committed = upto;
        pthread_cond_broadcast(&st->done);
        if (stop && !st->head) break;
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------ */
int obs_logs_open(const struct obs_logs_config *cfg, struct obs_logs **out, struct sh_diag *d)
{
    struct obs_logs *st = sh_calloc(1, sizeof(*st));
    pthread_condattr_t ca;
    uint64_t version = 0;
    int rc;

    *out = NULL;
    if (!st) return SH_ENOMEM;
    st->cfg = *cfg;
    SH_DEFAULT(st->cfg.max_bytes, DEFAULT_MAX_BYTES);
    SH_DEFAULT(st->cfg.max_age_ms, DEFAULT_MAX_AGE_MS);
    SH_DEFAULT(st->cfg.flush_ms, DEFAULT_FLUSH_MS);
    SH_DEFAULT(st->cfg.retain_every_ms, DEFAULT_RETAIN_MS);
    SH_DEFAULT(st->cfg.max_pending_bytes, DEFAULT_PENDING);
    st->cfg.path = NULL; /* not kept */
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->wmu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->done, NULL);
    st->has_sync = true;
    st->last_retain_ms = now_mono_ms();
    json_set_alloc_funcs(sh_malloc, sh_free); /* as admin_new does: the same, process-wide */
    rc = open_db(cfg->path, &st->wdb, d);
    if (rc == 0)
        rc = exec(st->wdb,
                  "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                  "PRAGMA journal_size_limit = 67108864; PRAGMA cache_size = -16384;"
                  "PRAGMA temp_store = MEMORY;",
                  d);
    if (rc == 0) rc = query_u64(st->wdb, "PRAGMA user_version", &version);
    if (rc == 0 && version == 1) {
        SH_LOG(SH_INFO, "observe", "rebuilding the log store's full-text index (once)");
        rc = exec(st->wdb, "BEGIN", d);
        if (rc == 0) rc = exec(st->wdb, migrate_v1_sql, d);
        if (rc == 0) rc = exec(st->wdb, schema_sql, d);
        if (rc == 0) rc = exec(st->wdb, "INSERT INTO logs_fts(logs_fts) VALUES ('rebuild')", d);
        if (rc == 0) rc = exec(st->wdb, "PRAGMA user_version = 2; COMMIT", d);
        if (rc < 0) (void)exec(st->wdb, "ROLLBACK", NULL);
    } else if (rc == 0) {
        rc = exec(st->wdb, schema_sql, d);
        if (rc == 0) rc = exec(st->wdb, "PRAGMA user_version = 2", d);
    }
    if (rc == 0) {
        int src = sqlite3_prepare_v3(
            st->wdb,
            "INSERT INTO logs(ms, service, instance, stream, level, trace_id, span_id, message,"
            " raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            -1, SQLITE_PREPARE_PERSISTENT, &st->ins, NULL);
        if (src != SQLITE_OK) rc = from_sqlite(st->wdb, src, d, "prepare");
    }
    if (rc == 0) rc = open_db(cfg->path, &st->rdb, d);
    if (rc == 0 && !cfg->is_manual) {
        int prc = pthread_create(&st->thread, NULL, writer_main, st);
        if (prc != 0) {
            sh_diag_set(d, "logs", "cannot start the log writer thread: %s", strerror(prc));
            rc = -prc;
        } else {
            st->has_thread = true;
        }
    }
    if (rc < 0) {
        if (d && !d->what[0]) sh_diag_set(d, "logs", "%s", sh_strerror(rc));
        obs_logs_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void obs_logs_close(struct obs_logs *st)
{
    if (!st) return;
    if (st->has_thread) {
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thread, NULL);
    } else if (st->head && st->wdb && st->ins) {
        uint64_t upto;
        (void)write_batch(st, take_pending(st, &upto));
    }
    while (st->head) { /* only when the store never opened */
        struct pend *next = st->head->next;
        sh_free(st->head);
        st->head = next;
    }
    sqlite3_finalize(st->ins);
    sqlite3_close(st->wdb);
    sqlite3_close(st->rdb);
    if (st->has_sync) {
        pthread_mutex_destroy(&st->mu);
        pthread_mutex_destroy(&st->wmu);
        pthread_cond_destroy(&st->wake);
        pthread_cond_destroy(&st->done);
    }
    sh_free(st);
}

/* ------------------------------------------------------------------------------------------
 * Adding
 * ------------------------------------------------------------------------------------------ */
/* Replaces bytes that are not well-formed UTF-8 (and NULs) with '?'. */
static void utf8_sanitize(char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        if ((unsigned char)s[i] - 1u < 0x7fu) { /* ASCII but NUL: most bytes, no call */
            i++;
            continue;
        }
        size_t k = sh_utf8_len((struct slice){s + i, n - i});
        if (k == 0 || s[i] == '\0') {
            s[i++] = '?';
            continue;
        }
        i += k;
    }
}

/* s cut at max bytes, between two UTF-8 characters. */
/* Valid UTF-8 without NULs, each field (what is not becomes '?'). The writer's thread. */
static void pend_sanitize(struct pend *p)
{
    utf8_sanitize(p->data, p->service_len);
    utf8_sanitize(p->data + p->service_len + 1, p->instance_len);
    utf8_sanitize(p->data + p->service_len + p->instance_len + 2, p->line_len);
}

static struct slice cut(struct slice s, size_t max)
{
    if (s.len <= max) return s;
    s.len = max;
    for (int k = 0; k < 3 && s.len > 0 && ((unsigned char)s.ptr[s.len] & 0xC0) == 0x80; k++)
        s.len--;
    return s;
}

int obs_logs_add(struct obs_logs *st, const struct obs_log_entry *e)
{
    struct slice svc = cut(e->service, OBS_LOG_NAME_MAX), inst = cut(e->instance, OBS_LOG_NAME_MAX);
    struct slice line = cut(e->line, OBS_LOG_LINE_MAX);
    size_t size = sizeof(struct pend) + svc.len + inst.len + line.len + 3;
    struct pend *p;

    pthread_mutex_lock(&st->mu);
    if (st->pending_bytes + size > st->cfg.max_pending_bytes) {
        pthread_mutex_unlock(&st->mu);
        atomic_fetch_add(&st->dropped, 1);
        return SH_ELIMIT;
    }
    pthread_mutex_unlock(&st->mu);
    p = sh_malloc(size);
    if (!p) {
        atomic_fetch_add(&st->dropped, 1);
        return SH_ENOMEM;
    }
    p->next = NULL;
    p->ms = e->ms;
    p->stream = e->stream;
    p->service_len = svc.len;
    p->instance_len = inst.len;
    p->line_len = line.len;
    memcpy(p->data, svc.ptr, svc.len);
    p->data[svc.len] = '\0';
    memcpy(p->data + svc.len + 1, inst.ptr, inst.len);
    p->data[svc.len + 1 + inst.len] = '\0';
    memcpy(p->data + svc.len + inst.len + 2, line.ptr, line.len);
    p->data[size - sizeof(struct pend) - 1] = '\0';
    pthread_mutex_lock(&st->mu);
    if (st->tail)
        st->tail->next = p;
    else
        st->head = p;
    st->tail = p;
    st->pending_bytes += size;
    st->added++;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

int obs_logs_flush(struct obs_logs *st)
{
    uint64_t target;

    if (!st->has_thread) {
        uint64_t upto;
        struct pend *list;
        pthread_mutex_lock(&st->mu);
        list = take_pending(st, &upto);
        st->committed = upto;
        pthread_mutex_unlock(&st->mu);
        return list ? write_batch(st, list) : 0;
    }
    pthread_mutex_lock(&st->mu);
    target = st->added;
    st->flush_wanted = true;
    pthread_cond_signal(&st->wake);
    while (st->committed < target)
        pthread_cond_wait(&st->done, &st->mu);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

int obs_logs_retain(struct obs_logs *st, uint64_t now_ms)
{
    int rc;

    SH_TRY(obs_logs_flush(st));
    pthread_mutex_lock(&st->wmu); /* the writer uses wdb under it */
    rc = retain(st, now_ms);
    pthread_mutex_unlock(&st->wmu);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Searching (the owner's thread, on rdb)
 * ------------------------------------------------------------------------------------------ */
int obs_logs_search(struct obs_logs *st, const struct obs_logs_query *q, obs_log_row_fn *fn,
                    void *data, struct sh_diag *d)
{
    struct buf sql = BUF_INIT(4096), match = BUF_INIT(1024);
    sqlite3_stmt *s = NULL;
    uint32_t limit = q->limit ? SH_MIN(q->limit, (uint32_t)OBS_LOG_LIMIT_MAX) : 1000;
    bool asc = q->after_id > 0;
    int rc, src;

    buf_appends(&sql, SLICE("SELECT l.id, l.ms, l.service, l.instance, l.stream, l.level,"
                            " l.message, l.trace_id, l.span_id, coalesce(l.raw, l.message)"));
    if (q->fts) {
        /* the words in the text columns only; the service and level as tag tokens */
        buf_appends(&match, SLICE("{message raw} : ("));
        buf_appends(&match, slice_from_cstr(q->fts));
        buf_appends(&match, SLICE(")"));
        if (q->service) {
            buf_appends(&match, SLICE(" AND tags : \"s"));
            for (const unsigned char *c = (const unsigned char *)q->service; *c; c++) {
                buf_appendc(&match, "0123456789ABCDEF"[*c >> 4]);
                buf_appendc(&match, "0123456789ABCDEF"[*c & 15]);
            }
            buf_appends(&match, SLICE("\""));
        }
        if (q->min_level > OBS_LEVEL_NONE && q->min_level <= OBS_LEVEL_FATAL) {
            buf_appends(&match, SLICE(" AND tags : \"g"));
            buf_appendc(&match, (char)('0' + (int)q->min_level));
            buf_appends(&match, SLICE("\""));
        }
        buf_appendc(&match, '\0');
        if (match.err) {
            buf_release(&sql);
            return match.err;
        }
        buf_appends(&sql, SLICE(" FROM logs_fts JOIN logs l ON l.id = logs_fts.rowid"
                                " WHERE logs_fts MATCH ?1"));
    } else
        buf_appends(&sql, SLICE(" FROM logs l WHERE 1"));
    if (q->service) buf_appends(&sql, SLICE(" AND l.service = ?2"));
    if (q->instance) buf_appends(&sql, SLICE(" AND l.instance = ?3"));
    if (q->trace_id) buf_appends(&sql, SLICE(" AND l.trace_id = ?4"));
    if (q->min_level) buf_appends(&sql, SLICE(" AND l.level >= ?5"));
    if (q->since_ms) buf_appends(&sql, SLICE(" AND l.ms >= ?6"));
    if (q->until_ms) buf_appends(&sql, SLICE(" AND l.ms <= ?7"));
    if (q->after_id) buf_appends(&sql, SLICE(" AND l.id > ?8"));
    if (q->contains) buf_appends(&sql, SLICE(" AND instr(coalesce(l.raw, l.message), ?9) > 0"));
    if (q->fts)
        buf_appends(&sql, asc ? SLICE(" ORDER BY logs_fts.rowid ASC")
                              : SLICE(" ORDER BY logs_fts.rowid DESC"));
    else
        buf_appends(&sql, asc ? SLICE(" ORDER BY l.id ASC") : SLICE(" ORDER BY l.id DESC"));
    buf_appends(&sql, SLICE(" LIMIT ?10"));
    if (sql.err) {
        buf_release(&match);
        return sql.err;
    }
    if (!asc) { /* the newest <limit>, handed oldest first */
        struct buf outer = BUF_INIT(8192);
        buf_appends(&outer, SLICE("SELECT * FROM ("));
        buf_appends(&outer, buf_slice(&sql));
        buf_appends(&outer, SLICE(") ORDER BY 1 ASC"));
        buf_release(&sql);
        sql = outer;
        if (sql.err) {
            buf_release(&match);
            return sql.err;
        }
    }
    src = sqlite3_prepare_v2(st->rdb, sql.data, (int)sql.len, &s, NULL);
    buf_release(&sql);
    if (src != SQLITE_OK) {
        buf_release(&match);
        return from_sqlite(st->rdb, src, d, "search");
    }
    if (q->fts) sqlite3_bind_text(s, 1, match.data, -1, SQLITE_STATIC);
    if (q->service) sqlite3_bind_text(s, 2, q->service, -1, SQLITE_STATIC);
    if (q->instance) sqlite3_bind_text(s, 3, q->instance, -1, SQLITE_STATIC);
    if (q->trace_id) sqlite3_bind_text(s, 4, q->trace_id, -1, SQLITE_STATIC);
    if (q->min_level) sqlite3_bind_int(s, 5, (int)q->min_level);
    if (q->since_ms) sqlite3_bind_int64(s, 6, (sqlite3_int64)q->since_ms);
    if (q->until_ms) sqlite3_bind_int64(s, 7, (sqlite3_int64)q->until_ms);
    if (q->after_id) sqlite3_bind_int64(s, 8, (sqlite3_int64)q->after_id);
    if (q->contains) sqlite3_bind_text(s, 9, q->contains, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 10, (int)limit);
    rc = 0;
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *tid = (const char *)sqlite3_column_text(s, 7);
        const char *sid = (const char *)sqlite3_column_text(s, 8);
        struct obs_log_row row = {
            .id = (uint64_t)sqlite3_column_int64(s, 0),
            .ms = (uint64_t)sqlite3_column_int64(s, 1),
            .service = (const char *)sqlite3_column_text(s, 2),
            .instance = (const char *)sqlite3_column_text(s, 3),
            .stream = (enum obs_log_stream)sqlite3_column_int(s, 4),
            .level = (enum obs_log_level)sqlite3_column_int(s, 5),
            .message = (const char *)sqlite3_column_text(s, 6),
            .trace_id = tid ? tid : "",
            .span_id = sid ? sid : "",
            .line = (const char *)sqlite3_column_text(s, 9),
        };
        if (!row.service || !row.instance || !row.message || !row.line) {
            rc = SH_ENOMEM;
            break;
        }
        rc = fn(data, &row);
        if (rc) break;
    }
    if (rc == 0 && src != SQLITE_DONE) {
        rc = from_sqlite(st->rdb, src, d, "search");
        /* a MATCH expression FTS5 cannot read is the query's fault, not the store's */
        if (q->fts && src == SQLITE_ERROR && strstr(sqlite3_errmsg(st->rdb), "fts5")) {
            sh_diag_set(d, "q", "%s", sqlite3_errmsg(st->rdb));
            rc = SH_EPARSE;
        }
    }
    sqlite3_finalize(s);
    buf_release(&match);
    return rc;
}

int obs_logs_stats(struct obs_logs *st, struct obs_logs_stats *out)
{
    uint64_t min_id = 0;

    memset(out, 0, sizeof(*out));
    SH_TRY(query_u64(st->rdb, "SELECT count(*) FROM logs", &out->rows));
    SH_TRY(used_bytes(st->rdb, &out->used_bytes));
    SH_TRY(query_u64(st->rdb, "SELECT min(id) FROM logs", &min_id));
    if (min_id) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(st->rdb, "SELECT ms FROM logs WHERE id = ?1", -1, &s, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_int64(s, 1, (sqlite3_int64)min_id);
            if (sqlite3_step(s) == SQLITE_ROW)
                out->oldest_ms = (uint64_t)sqlite3_column_int64(s, 0);
        }
        sqlite3_finalize(s);
    }
    out->inserted = atomic_load(&st->inserted);
    out->deleted = atomic_load(&st->deleted);
    out->dropped = atomic_load(&st->dropped);
    return 0;
}
