/* SPDX-License-Identifier: MIT */
/* spans.c: the span store (observe.h). Its own SQLite file, WAL with synchronous=OFF: a flush
 * never waits for the disk, and a crash may lose the last flushes, never the file.
 * Tables:
 *   traces(seq INTEGER PRIMARY KEY, trace_id BLOB UNIQUE, seen_ms, ts, has_root, bytes, spans)
 *     seq is first-stored order (eviction drops the lowest first); ts the trace's start in µs
 *     (the root span's timestamp, else the earliest), which the queries' windows use.
 *   spans(trace_seq, service, ts, data): data is the packed span (span_pack.c).
 *   names(service, kind, value, seq): 0 = a span name of the service, 1 = a remote service;
 *     what /api/v2/services, /spans and /remoteServices list (rows older than the oldest
 *     stored trace go with it).
 * The buffer holds packed spans (u32 length, bytes) between flushes.
 * Threads: a writer thread owns `wdb` and writes the buffer every flush_ms (200) in one
 * transaction, bounds included, so a burst of ingest never holds the control loop for the
 * length of a big transaction. Everything else runs on the opener's thread, queries on `rdb`
 * (WAL: readers never wait for the writer). The buffer, the counters added/committed and the
 * last error are the only state both touch, under `mu`, for as long as a pack or a swap. A
 * query first waits until every span added before it is committed. */
#include "observe/observe.h"
#include "observe/observe_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum stmt_id {
    S_TRACE_UPSERT,
    S_SPAN_INSERT,
    S_NAME_UPSERT,
    S_OLDEST,
    S_DEL_SPANS,
    S_DEL_TRACES,
    S_DEL_NAMES,
    S_SERVICES,
    S_SPAN_NAMES,
    S_REMOTES,
    S_TRACE_BY_ID,
    S_CANDIDATES,
    S_SERVICE_CANDIDATES,
    S_TRACE_SPANS,
    S_WINDOW_SPANS,
    S_STATS,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_TRACE_UPSERT] =
        "INSERT INTO traces(trace_id, seen_ms, ts, has_root, bytes, spans) "
        "VALUES(?1, ?2, ?3, ?4, ?5, 1) ON CONFLICT(trace_id) DO UPDATE SET "
        "ts = CASE WHEN has_root THEN ts WHEN excluded.has_root THEN excluded.ts "
        "WHEN ts = 0 OR (excluded.ts > 0 AND excluded.ts < ts) THEN excluded.ts ELSE ts END, "
        "has_root = max(has_root, excluded.has_root), bytes = bytes + excluded.bytes, "
        "spans = spans + 1 RETURNING seq",
    [S_SPAN_INSERT] = "INSERT INTO spans(trace_seq, service, ts, data) VALUES(?1, ?2, ?3, ?4)",
    [S_NAME_UPSERT] = "INSERT INTO names(service, kind, value, seq) VALUES(?1, ?2, ?3, ?4) "
                      "ON CONFLICT DO UPDATE SET seq = max(seq, excluded.seq)",
    [S_OLDEST] = "SELECT seq, seen_ms, bytes, spans FROM traces ORDER BY seq LIMIT 512",
    [S_DEL_SPANS] = "DELETE FROM spans WHERE trace_seq <= ?1",
    [S_DEL_TRACES] = "DELETE FROM traces WHERE seq <= ?1",
    [S_DEL_NAMES] = "DELETE FROM names WHERE seq <= ?1",
    [S_SERVICES] = "SELECT DISTINCT service FROM names WHERE service <> '' ORDER BY 1",
    [S_SPAN_NAMES] = "SELECT value FROM names WHERE service = ?1 AND kind = 0 AND value <> '' "
                     "ORDER BY 1",
    [S_REMOTES] = "SELECT value FROM names WHERE service = ?1 AND kind = 1 AND value <> '' "
                  "ORDER BY 1",
    [S_TRACE_BY_ID] = "SELECT s.data FROM traces t JOIN spans s ON s.trace_seq = t.seq "
                      "WHERE t.trace_id = ?1 ORDER BY s.ts, s.rowid LIMIT ?2",
    [S_CANDIDATES] = "SELECT seq FROM traces WHERE ts BETWEEN ?1 AND ?2 ORDER BY ts DESC "
                     "LIMIT ?3",
    /* a service's spans, newest first, through spans_service: a rare service's traces are
     * found however many others share the window */
    [S_SERVICE_CANDIDATES] = "SELECT trace_seq FROM spans WHERE service = ?3 AND ts BETWEEN ?1 "
                             "AND ?2 ORDER BY ts DESC LIMIT ?4",
    [S_TRACE_SPANS] = "SELECT data FROM spans WHERE trace_seq = ?1 ORDER BY ts, rowid LIMIT ?2",
    [S_WINDOW_SPANS] = "SELECT s.trace_seq, s.data FROM traces t JOIN spans s ON "
                       "s.trace_seq = t.seq WHERE t.seq IN (SELECT seq FROM traces WHERE ts "
                       "BETWEEN ?1 AND ?2 ORDER BY ts DESC LIMIT ?3) ORDER BY s.trace_seq",
    [S_STATS] = "SELECT count(*), coalesce(sum(spans), 0), coalesce(sum(bytes), 0) FROM traces",
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS traces(seq INTEGER PRIMARY KEY, trace_id BLOB NOT NULL UNIQUE,"
    " seen_ms INTEGER NOT NULL, ts INTEGER NOT NULL, has_root INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL, spans INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS traces_ts ON traces(ts);"
    "CREATE TABLE IF NOT EXISTS spans(trace_seq INTEGER NOT NULL, service TEXT NOT NULL,"
    " ts INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS spans_trace ON spans(trace_seq, ts);"
    "CREATE INDEX IF NOT EXISTS spans_service ON spans(service, ts);"
    "CREATE TABLE IF NOT EXISTS names(service TEXT NOT NULL, kind INTEGER NOT NULL,"
    " value TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(service, kind, value))"
    " WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

enum {
    MAX_TRACE_SPANS = 10000, /* spans of one trace a query reads */
    SPAN_ROW_OVERHEAD = 64,  /* row header and index entries, roughly, per span */
    NAME_SEEN_SLOTS = 1024,  /* per-flush dedupe of names rows */
    WRITE_CHUNK = 4096,      /* spans a transaction */
    MAX_PENDING_BYTES = 256u << 20,
    LOADED_MAX_BYTES = 256u << 20, /* the spans of one trace a query holds */
};

struct obs_spans {
    sqlite3 *wdb, *rdb;
    sqlite3_stmt *wstmt[S_COUNT], *rstmt[S_COUNT];
    struct obs_spans_config cfg;
    pthread_t thread;
    bool has_thread, has_sync;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* under mu */
    struct buf pending; /* packed spans, each after its u32 length */
    size_t pending_count, inflight_count;
    uint64_t added, committed; /* spans added; spans the writer is done with */
    uint64_t flush_now_ms;     /* the time a waited-for flush asked for (0: the clock's) */
    bool flush_wanted, stopping;
    int last_rc;       /* of the last batch */
    char lasterr[256]; /* its detail */
    /* the writer's */
    struct buf batch;
    uint64_t stored_bytes; /* sum of traces.bytes */
    bool is_failing;
    char werr[256];
    /* the opener's */
    char errmsg[256];
    /* any thread */
    _Atomic uint64_t evicted, refused;
};

/* A SQLite error of <db> as ours, its detail into <msg> (each thread its own). */
static int from_sqlite_db(sqlite3 *db, char *msg, size_t size, int rc)
{
    snprintf(msg, size, "sqlite: %s (%d)", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return SH_ENOMEM;
    case SQLITE_FULL:
        return SH_ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SH_EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return SH_ECORRUPT;
    default:
        return SH_EIO;
    }
}

/* The writer's (wdb) and the opener's (rdb). */
static int werr(struct obs_spans *st, int rc)
{
    return from_sqlite_db(st->wdb, st->werr, sizeof(st->werr), rc);
}

static int rerr(struct obs_spans *st, int rc)
{
    return from_sqlite_db(st->rdb, st->errmsg, sizeof(st->errmsg), rc);
}

static int exec(struct obs_spans *st, const char *sql)
{
    int rc = sqlite3_exec(st->wdb, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : werr(st, rc);
}

static void done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static int64_t i64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static void *writer_main(void *arg);

static int prepare_all(sqlite3 *db, sqlite3_stmt **stmt)
{
    for (int i = 0; i < S_COUNT; i++) {
        int src =
            sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmt[i], NULL);
        if (src != SQLITE_OK) return src;
    }
    return SQLITE_OK;
}

static int open_db(const char *path, sqlite3 **db)
{
    int rc = sqlite3_open_v2(
        path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) sqlite3_busy_timeout(*db, 1000);
    return rc;
}

static int stats_of(sqlite3_stmt *s, struct obs_spans_stats *out)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_ROW) {
        out->traces = (uint64_t)sqlite3_column_int64(s, 0);
        out->spans = (uint64_t)sqlite3_column_int64(s, 1);
        out->bytes = (uint64_t)sqlite3_column_int64(s, 2);
    }
    done(s);
    return rc;
}

int obs_spans_open(const struct obs_spans_config *cfg, struct obs_spans **out, struct sh_diag *d)
{
    struct obs_spans *st = sh_calloc(1, sizeof(*st));
    struct obs_spans_stats stats = {0};
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    if (!st) return SH_ENOMEM;
    st->cfg = *cfg;
    if (!st->cfg.max_bytes) st->cfg.max_bytes = 256u << 20;
    if (!st->cfg.max_age_ms) st->cfg.max_age_ms = 7ull * 24 * 3600 * 1000;
    if (!st->cfg.max_buffered) st->cfg.max_buffered = 100000;
    if (!st->cfg.max_scan) st->cfg.max_scan = 20000;
    if (!st->cfg.flush_ms) st->cfg.flush_ms = 200;
    st->cfg.path = NULL; /* not kept */
    st->pending = BUF_INIT(MAX_PENDING_BYTES);
    st->batch = BUF_INIT(MAX_PENDING_BYTES);
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&st->done, NULL);
    st->has_sync = true;
    rc = open_db(cfg->path, &st->wdb);
    if (rc != SQLITE_OK) {
        rc = werr(st, rc);
        goto fail;
    }
    rc = exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;"
                  "PRAGMA journal_size_limit = 16777216; PRAGMA temp_store = MEMORY;"
                  "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4096;");
    if (rc == 0) rc = exec(st, schema_sql);
    if (rc == 0 && (rc = prepare_all(st->wdb, st->wstmt)) != SQLITE_OK) rc = werr(st, rc);
    if (rc == 0 && (rc = open_db(cfg->path, &st->rdb)) != SQLITE_OK) rc = werr(st, rc);
    if (rc == 0 && sqlite3_exec(st->rdb, "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384;",
                                NULL, NULL, NULL) != SQLITE_OK)
        rc = rerr(st, SQLITE_ERROR);
    if (rc == 0 && (rc = prepare_all(st->rdb, st->rstmt)) != SQLITE_OK) rc = rerr(st, rc);
    if (rc == 0 && (rc = stats_of(st->wstmt[S_STATS], &stats)) != SQLITE_ROW)
        rc = werr(st, rc);
    else if (rc == SQLITE_ROW)
        rc = 0;
    if (rc < 0) goto fail;
    st->stored_bytes = stats.bytes;
    if (!cfg->is_manual) {
        int prc = pthread_create(&st->thread, NULL, writer_main, st);
        if (prc != 0) {
            snprintf(st->werr, sizeof(st->werr), "cannot start the span writer thread: %s",
                     strerror(prc));
            rc = -prc;
            goto fail;
        }
        st->has_thread = true;
    }
    *out = st;
    return 0;
fail:
    sh_diag_set(d, cfg->path, "cannot open the span store: %s",
                st->werr[0]     ? st->werr
                : st->errmsg[0] ? st->errmsg
                                : sh_strerror(rc));
    obs_spans_close(st);
    return rc;
}

static int write_batch(struct obs_spans *st, const struct buf *batch, size_t count,
                       uint64_t now_ms);

void obs_spans_close(struct obs_spans *st)
{
    if (!st) return;
    if (st->has_thread) {
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        pthread_cond_signal(&st->wake);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thread, NULL); /* it writes what is buffered first */
    } else if (st->wdb && st->pending_count &&
               write_batch(st, &st->pending, st->pending_count, sh_wall_ms()) < 0) {
        /* lost and counted: the store is going away */
    }
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(st->wstmt[i]);
        sqlite3_finalize(st->rstmt[i]);
    }
    sqlite3_close_v2(st->rdb);
    sqlite3_close_v2(st->wdb);
    buf_release(&st->pending);
    buf_release(&st->batch);
    if (st->has_sync) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->wake);
        pthread_cond_destroy(&st->done);
    }
    sh_free(st);
}

const char *obs_spans_errmsg(const struct obs_spans *st)
{
    return st->errmsg;
}

size_t obs_spans_pending(struct obs_spans *st)
{
    size_t n;

    pthread_mutex_lock(&st->mu);
    n = (size_t)(st->added - st->committed);
    pthread_mutex_unlock(&st->mu);
    return n;
}

bool obs_spans_has_room(struct obs_spans *st, const struct trace_span *spans, size_t n)
{
    size_t bytes = 0;
    bool room;

    for (size_t i = 0; i < n; i++)
        bytes += 4 + obs__span_packed_len(&spans[i]);
    pthread_mutex_lock(&st->mu);
    room = st->pending_count + st->inflight_count + n <= st->cfg.max_buffered &&
           st->pending.len + bytes <= st->pending.max;
    pthread_mutex_unlock(&st->mu);
    return room;
}

int obs_spans_add(struct obs_spans *st, const struct trace_span *s)
{
    size_t start, bytes = s->name.len + s->local.service.len + s->local.ip.len +
                          s->remote.service.len + s->remote.ip.len;
    uint8_t len[4] = {0};
    int rc;

    for (size_t i = 0; i < SH_MIN(s->tag_count, (size_t)TRACE_SPAN_MAX_TAGS); i++)
        bytes += s->tags[i].key.len + s->tags[i].value.len;
    for (size_t i = 0; i < SH_MIN(s->annotation_count, (size_t)TRACE_SPAN_MAX_ANNOTATIONS); i++)
        bytes += s->annotations[i].value.len;
    if (bytes > TRACE_SPAN_MAX_BYTES) return SH_ETOOBIG;
    pthread_mutex_lock(&st->mu); /* the writer holds it only to swap the buffer */
    if (st->pending_count + st->inflight_count >= st->cfg.max_buffered) {
        pthread_mutex_unlock(&st->mu);
        atomic_fetch_add(&st->refused, 1);
        return SH_ELIMIT;
    }
    start = st->pending.len;
    buf_append(&st->pending, len, sizeof(len));
    rc = obs__span_pack(&st->pending, s);
    if (rc < 0) {
        st->pending.len = start; /* drop the partial entry; the sticky error goes too */
        st->pending.err = 0;
        if (st->pending.data) st->pending.data[start] = '\0';
        pthread_mutex_unlock(&st->mu);
        atomic_fetch_add(&st->refused, 1);
        return rc == SH_ETOOBIG ? SH_ELIMIT : rc;
    }
    size_t n = st->pending.len - start - 4;
    for (int i = 0; i < 4; i++)
        st->pending.data[start + (size_t)i] = (char)(uint8_t)(n >> (8 * i));
    st->pending_count++;
    st->added++;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

void obs_spans_drain_fn(void *data, const struct trace_span *s)
{
    if (obs_spans_add(data, s) < 0) {
        /* refusals are counted in stats */
    }
}

/* ---- flush -------------------------------------------------------------------------------- */
static uint32_t name_hash(struct slice svc, int kind, struct slice value)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (size_t i = 0; i < svc.len; i++)
        h = (h ^ (uint8_t)svc.ptr[i]) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (size_t i = 0; i < value.len; i++)
        h = (h ^ (uint8_t)value.ptr[i]) * 16777619u;
    return h ? h : 1;
}

static int upsert_name(struct obs_spans *st, uint32_t *seen, struct slice svc, int kind,
                       struct slice value, int64_t seq)
{
    uint32_t h = name_hash(svc, kind, value);
    sqlite3_stmt *s = st->wstmt[S_NAME_UPSERT];
    int rc;

    /* a hash seen in this flush was written already (two names with one 32-bit hash in one
     * flush: the second is written by a later flush that sees it first) */
    if (seen[h % NAME_SEEN_SLOTS] == h) return 0;
    seen[h % NAME_SEEN_SLOTS] = h;
    sqlite3_bind_text(s, 1, svc.ptr ? svc.ptr : "", (int)svc.len, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, kind);
    sqlite3_bind_text(s, 3, value.ptr ? value.ptr : "", (int)value.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, seq);
    rc = sqlite3_step(s);
    done(s);
    return rc == SQLITE_DONE ? 0 : werr(st, rc);
}

static int store_one(struct obs_spans *st, const uint8_t *p, size_t len, uint64_t now_ms,
                     uint32_t *seen)
{
    struct trace_span sp;
    sqlite3_stmt *s;
    int64_t seq;
    int rc;
    uint64_t bytes = len + SPAN_ROW_OVERHEAD;

    if (obs__span_unpack(p, len, &sp) < 0) return 0; /* cannot happen: we packed it */
    bytes += sp.local.service.len;
    s = st->wstmt[S_TRACE_UPSERT];
    sqlite3_bind_blob(s, 1, sp.trace_id, TRACE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(now_ms));
    sqlite3_bind_int64(s, 3, i64(sp.timestamp_us));
    sqlite3_bind_int(s, 4, obs__is_zero(sp.parent_id, TRACE_SPAN_ID_BYTES));
    sqlite3_bind_int64(s, 5, i64(bytes));
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = werr(st, rc);
        done(s);
        return rc;
    }
    seq = sqlite3_column_int64(s, 0);
    done(s);
    s = st->wstmt[S_SPAN_INSERT];
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, sp.local.service.ptr ? sp.local.service.ptr : "",
                      (int)sp.local.service.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, i64(sp.timestamp_us));
    sqlite3_bind_blob(s, 4, p, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) return werr(st, rc);
    st->stored_bytes += bytes;
    if (sp.local.service.len) {
        SH_TRY(upsert_name(st, seen, sp.local.service, 0, sp.name, seq));
        if (sp.remote.service.len)
            SH_TRY(upsert_name(st, seen, sp.local.service, 1, sp.remote.service, seq));
    }
    return 0;
}

/* Drops the oldest traces until the bounds hold. Inside the flush's transaction. */
static int evict(struct obs_spans *st, uint64_t now_ms)
{
    uint64_t min_seen = now_ms > st->cfg.max_age_ms ? now_ms - st->cfg.max_age_ms : 0;
    int rc;

    while (st->stored_bytes > st->cfg.max_bytes || min_seen) {
        sqlite3_stmt *s = st->wstmt[S_OLDEST];
        int64_t upto = -1;
        uint64_t freed = 0, traces = 0;
        bool more = false;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            uint64_t seen = (uint64_t)sqlite3_column_int64(s, 1);
            if (st->stored_bytes - freed <= st->cfg.max_bytes && seen >= min_seen) break;
            upto = sqlite3_column_int64(s, 0);
            freed += (uint64_t)sqlite3_column_int64(s, 2);
            traces++;
            more = true;
        }
        done(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return werr(st, rc);
        if (!more) break;
        for (int id = S_DEL_SPANS; id <= S_DEL_NAMES; id++) {
            s = st->wstmt[id];
            sqlite3_bind_int64(s, 1, upto);
            rc = sqlite3_step(s);
            done(s);
            if (rc != SQLITE_DONE) return werr(st, rc);
        }
        st->stored_bytes = freed > st->stored_bytes ? 0 : st->stored_bytes - freed;
        atomic_fetch_add(&st->evicted, traces);
    }
    return 0;
}

/* <count> packed spans of <batch>, in transactions of WRITE_CHUNK spans, each followed by the
 * bounds (a transaction larger than SQLite's page cache spills pages mid-way and costs about
 * twice as much a span). A failure loses the rest of the batch (counted), never the file. The
 * writer's (or, manual, the opener's). */
static int write_batch(struct obs_spans *st, const struct buf *batch, size_t count, uint64_t now_ms)
{
    uint32_t seen[NAME_SEEN_SLOTS] = {0};
    size_t off = 0, written = 0;
    int rc = 0;

    while (rc == 0 && written < count && off + 4 <= batch->len) {
        size_t n = 0;
        rc = exec(st, "BEGIN IMMEDIATE");
        while (rc == 0 && n < WRITE_CHUNK && off + 4 <= batch->len) {
            const uint8_t *p = (const uint8_t *)batch->data + off;
            size_t len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
            rc = store_one(st, p + 4, len, now_ms, seen);
            off += 4 + len;
            n++;
        }
        if (rc == 0) rc = evict(st, now_ms);
        if (rc == 0) rc = exec(st, "COMMIT");
        if (rc == 0) written += n;
    }
    if (rc < 0) {
        char keep[sizeof(st->werr)];
        struct obs_spans_stats stats;
        memcpy(keep, st->werr, sizeof(keep));
        (void)exec(st, "ROLLBACK");
        memcpy(st->werr, keep, sizeof(keep));
        atomic_fetch_add(&st->refused, count - written);
        if (stats_of(st->wstmt[S_STATS], &stats) == SQLITE_ROW) st->stored_bytes = stats.bytes;
        if (!st->is_failing) /* once per run of failures: a full disk fails every batch */
            SH_LOG(SH_ERROR, "observe", "writing spans failed; the rest of this batch is lost",
                   LF_UINT("spans", count - written), LF_ERR("err", rc),
                   LF_STR("detail", st->werr));
        st->is_failing = true;
    } else {
        if (st->is_failing) SH_LOG(SH_INFO, "observe", "the span store writes again");
        st->is_failing = false;
    }
    return rc;
}

static void *writer_main(void *arg)
{
    struct obs_spans *st = arg;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        struct buf tmp;
        uint64_t upto, now_ms;
        size_t count;
        bool stop;
        int rc;
        if (!st->stopping && !st->flush_wanted) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += (long)(st->cfg.flush_ms % 1000) * 1000000L;
            ts.tv_sec += (time_t)(st->cfg.flush_ms / 1000) + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&st->wake, &st->mu, &ts);
        }
        /* take the buffer: the empty batch buffer becomes the one add appends to */
        tmp = st->batch;
        st->batch = st->pending;
        st->pending = tmp;
        count = st->inflight_count = st->pending_count;
        st->pending_count = 0;
        upto = st->added;
        now_ms = st->flush_now_ms ? st->flush_now_ms : sh_wall_ms();
        st->flush_now_ms = 0;
        st->flush_wanted = false;
        stop = st->stopping;
        pthread_mutex_unlock(&st->mu);
        rc = write_batch(st, &st->batch, count, now_ms);
        buf_reset(&st->batch);
        pthread_mutex_lock(&st->mu);
        st->inflight_count = 0;
        st->committed = upto;
        if (count) {
            st->last_rc = rc;
            memcpy(st->lasterr, st->werr, sizeof(st->lasterr));
        }
        pthread_cond_broadcast(&st->done);
        if (stop && !st->pending_count) break;
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

void obs_spans_kick(struct obs_spans *st)
{
    if (!st->has_thread) return;
    pthread_mutex_lock(&st->mu);
    st->flush_wanted = true;
    pthread_cond_signal(&st->wake);
    pthread_mutex_unlock(&st->mu);
}

int obs_spans_flush(struct obs_spans *st, uint64_t now_ms)
{
    uint64_t target;
    int rc;

    if (!st->has_thread) {
        rc = write_batch(st, &st->pending, st->pending_count, now_ms);
        if (rc < 0) memcpy(st->errmsg, st->werr, sizeof(st->errmsg));
        buf_reset(&st->pending);
        st->committed = st->added;
        st->pending_count = 0;
        return rc;
    }
    pthread_mutex_lock(&st->mu);
    target = st->added;
    if (st->committed >= target) {
        pthread_mutex_unlock(&st->mu);
        return 0;
    }
    st->flush_wanted = true;
    st->flush_now_ms = now_ms;
    pthread_cond_signal(&st->wake);
    while (st->committed < target)
        pthread_cond_wait(&st->done, &st->mu);
    rc = st->last_rc;
    if (rc < 0) memcpy(st->errmsg, st->lasterr, sizeof(st->errmsg));
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int obs_spans_stats(struct obs_spans *st, struct obs_spans_stats *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    rc = stats_of(st->rstmt[S_STATS], out);
    out->evicted_traces = atomic_load(&st->evicted);
    out->refused_spans = atomic_load(&st->refused);
    return rc == SQLITE_ROW ? 0 : rerr(st, rc);
}

/* ---- queries ------------------------------------------------------------------------------ */
/* A query's answer is rendered from what is stored: the buffer is written first. A failed
 * flush is not the query's failure (it counted the loss); the query answers from the rest. */
static void flush_first(struct obs_spans *st)
{
    if (obs_spans_flush(st, sh_wall_ms()) < 0) {
        /* counted in refused_spans; the query answers from what is stored */
    }
}

static int string_list(struct obs_spans *st, int id, const char *service, struct buf *out)
{
    sqlite3_stmt *s = st->rstmt[id];
    bool first = true;
    int rc;

    flush_first(st);
    if (service) sqlite3_bind_text(s, 1, service, -1, SQLITE_STATIC);
    buf_appendc(out, '[');
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        buf_appends(out, first ? SLICE("\"") : SLICE(",\""));
        buf_append_json_str(out, slice_from_cstr(v ? v : ""));
        buf_appendc(out, '"');
        first = false;
    }
    done(s);
    buf_appendc(out, ']');
    if (rc != SQLITE_DONE) return rerr(st, rc);
    return out->err;
}

int obs_spans_services(struct obs_spans *st, struct buf *out)
{
    return string_list(st, S_SERVICES, NULL, out);
}

int obs_spans_span_names(struct obs_spans *st, const char *service, struct buf *out)
{
    return string_list(st, S_SPAN_NAMES, service ? service : "", out);
}

int obs_spans_remote_services(struct obs_spans *st, const char *service, struct buf *out)
{
    return string_list(st, S_REMOTES, service ? service : "", out);
}

/* Spans read back: the rows' bytes kept in <blobs>, unpacked into <spans>. */
struct loaded {
    struct buf blobs;
    size_t *offs, *lens;
    struct trace_span *spans;
    size_t count, cap, cap_offs, cap_lens;
};

static void loaded_reset(struct loaded *l)
{
    buf_reset(&l->blobs);
    l->count = 0;
}

static void loaded_release(struct loaded *l)
{
    buf_release(&l->blobs);
    sh_free(l->offs);
    sh_free(l->lens);
    sh_free(l->spans);
    memset(l, 0, sizeof(*l));
}

static int loaded_add(struct loaded *l, const void *p, size_t n)
{
    SH_TRY(sh_array_reserve(&l->offs, &l->cap_offs, l->count + 1, sizeof(*l->offs)));
    SH_TRY(sh_array_reserve(&l->lens, &l->cap_lens, l->count + 1, sizeof(*l->lens)));
    l->offs[l->count] = l->blobs.len;
    l->lens[l->count] = n;
    SH_TRY(buf_append(&l->blobs, p, n));
    l->count++;
    return 0;
}

/* Unpacks every row read (after the blobs stopped moving); corrupt rows are skipped. */
static int loaded_unpack(struct loaded *l, size_t *n)
{
    SH_TRY(sh_array_reserve(&l->spans, &l->cap, l->count ? l->count : 1, sizeof(*l->spans)));
    *n = 0;
    for (size_t i = 0; i < l->count; i++)
        if (obs__span_unpack((const uint8_t *)l->blobs.data + l->offs[i], l->lens[i],
                             &l->spans[*n]) == 0)
            (*n)++;
    return 0;
}

static int render_trace(struct buf *out, const struct trace_span *spans, size_t n)
{
    buf_appendc(out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) buf_appendc(out, ',');
        obs_zipkin_encode_span(out, &spans[i]);
    }
    buf_appendc(out, ']');
    return out->err;
}

int obs_spans_trace(struct obs_spans *st, const uint8_t id[TRACE_ID_BYTES], struct buf *out)
{
    sqlite3_stmt *s = st->rstmt[S_TRACE_BY_ID];
    struct loaded l = {.blobs = BUF_INIT(LOADED_MAX_BYTES)};
    size_t n = 0;
    int rc, src;

    flush_first(st);
    sqlite3_bind_blob(s, 1, id, TRACE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, MAX_TRACE_SPANS);
    rc = 0;
    while ((src = sqlite3_step(s)) == SQLITE_ROW && rc == 0)
        rc = loaded_add(&l, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    done(s);
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = rerr(st, src);
    if (rc == 0) rc = loaded_unpack(&l, &n);
    if (rc == 0) rc = n ? render_trace(out, l.spans, n) : SH_ENOENT;
    loaded_release(&l);
    return rc;
}

static int load_trace(struct obs_spans *st, int64_t seq, struct loaded *l, size_t *n)
{
    sqlite3_stmt *s = st->rstmt[S_TRACE_SPANS];
    int rc = 0, src;

    loaded_reset(l);
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_int(s, 2, MAX_TRACE_SPANS);
    while ((src = sqlite3_step(s)) == SQLITE_ROW && rc == 0)
        rc = loaded_add(l, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    done(s);
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = rerr(st, src);
    if (rc == 0) rc = loaded_unpack(l, n);
    return rc;
}

/* Adds seq to the candidates unless there already (an open-addressing set of cap slots, a
 * power of two). */
static int add_candidate(int64_t *set, size_t cap, int64_t seq, int64_t **seqs, size_t *n,
                         size_t *seqs_cap)
{
    size_t h = (size_t)((uint64_t)seq * 0x9E3779B97F4A7C15ull) & (cap - 1);

    while (set[h]) {
        if (set[h] == seq) return 0;
        h = (h + 1) & (cap - 1);
    }
    set[h] = seq;
    SH_TRY(sh_array_reserve(seqs, seqs_cap, *n + 1, sizeof(**seqs)));
    (*seqs)[(*n)++] = seq;
    return 0;
}

int obs_spans_traces(struct obs_spans *st, const struct obs_query *q, struct buf *out)
{
    bool by_service = q->service && *q->service;
    sqlite3_stmt *s = st->rstmt[by_service ? S_SERVICE_CANDIDATES : S_CANDIDATES];
    struct loaded l = {.blobs = BUF_INIT(LOADED_MAX_BYTES)};
    int64_t *seqs = NULL, *set = NULL;
    size_t nseq = 0, cap = 0, found = 0, limit = q->limit ? q->limit : 10, set_cap = 1;
    uint64_t end_us = q->end_ms * 1000;
    uint64_t lo_us = q->lookback_ms * 1000 < end_us ? end_us - q->lookback_ms * 1000 : 0;
    /* a service's spans start after its trace's root and end before the trace: a span's
     * window is the trace window widened by an hour (obs_query_test has the last word) */
    const uint64_t slack = 3600ull * 1000 * 1000;
    int rc = 0, src;

    flush_first(st);
    while (set_cap < 2 * (size_t)st->cfg.max_scan)
        set_cap <<= 1;
    if (!(set = sh_calloc(set_cap, sizeof(*set)))) return SH_ENOMEM;
    if (by_service) {
        sqlite3_bind_int64(s, 1, i64(lo_us > slack ? lo_us - slack : 0));
        sqlite3_bind_int64(s, 2, i64(end_us + slack));
        sqlite3_bind_text(s, 3, q->service, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, (int64_t)st->cfg.max_scan * 8);
    } else {
        sqlite3_bind_int64(s, 1, i64(lo_us));
        sqlite3_bind_int64(s, 2, i64(end_us));
        sqlite3_bind_int64(s, 3, st->cfg.max_scan);
    }
    /* the candidates first, newest first: the per-trace reads below use another statement */
    while (rc == 0 && nseq < st->cfg.max_scan && (src = sqlite3_step(s)) == SQLITE_ROW)
        rc = add_candidate(set, set_cap, sqlite3_column_int64(s, 0), &seqs, &nseq, &cap);
    if (rc == 0 && nseq < st->cfg.max_scan && src != SQLITE_DONE) rc = rerr(st, src);
    done(s);
    sh_free(set);
    buf_appendc(out, '[');
    for (size_t i = 0; rc == 0 && i < nseq && found < limit; i++) {
        size_t n = 0;
        rc = load_trace(st, seqs[i], &l, &n);
        if (rc < 0 || !n || !obs_query_test(q, l.spans, n)) continue;
        if (found++) buf_appendc(out, ',');
        rc = render_trace(out, l.spans, n);
    }
    buf_appendc(out, ']');
    loaded_release(&l);
    sh_free(seqs);
    return rc < 0 ? rc : out->err;
}

int obs_spans_dependencies(struct obs_spans *st, uint64_t end_ms, uint64_t lookback_ms,
                           struct buf *out)
{
    sqlite3_stmt *s = st->rstmt[S_WINDOW_SPANS];
    struct loaded l = {.blobs = BUF_INIT(LOADED_MAX_BYTES)};
    struct obs_links links = {0};
    uint64_t end_us = end_ms * 1000;
    uint64_t lo_us = lookback_ms * 1000 < end_us ? end_us - lookback_ms * 1000 : 0;
    int64_t cur = -1;
    size_t n;
    int rc = 0, src;

    flush_first(st);
    sqlite3_bind_int64(s, 1, i64(lo_us));
    sqlite3_bind_int64(s, 2, i64(end_us));
    sqlite3_bind_int64(s, 3, st->cfg.max_scan);
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(s, 0);
        if (seq != cur && l.count) {
            rc = loaded_unpack(&l, &n);
            if (rc == 0) rc = obs_links_add_trace(&links, l.spans, n);
            loaded_reset(&l);
        }
        cur = seq;
        if (rc == 0 && l.count < MAX_TRACE_SPANS)
            rc = loaded_add(&l, sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1));
    }
    done(s);
    if (rc == 0 && src != SQLITE_DONE) rc = rerr(st, src);
    if (rc == 0 && l.count) {
        rc = loaded_unpack(&l, &n);
        if (rc == 0) rc = obs_links_add_trace(&links, l.spans, n);
    }
    if (rc == 0) rc = obs_links_render(&links, out);
    obs_links_release(&links);
    loaded_release(&l);
    return rc;
}
