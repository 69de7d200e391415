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
 * Thread: the opener's. */
#include "observe/observe.h"
#include "observe/observe_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

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
    MAX_PENDING_BYTES = 256u << 20,
    LOADED_MAX_BYTES = 256u << 20, /* the spans of one trace a query holds */
};

struct obs_spans {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    struct obs_spans_config cfg;
    struct buf pending; /* packed spans, each after its u32 length */
    size_t pending_count;
    uint64_t stored_bytes; /* sum of traces.bytes */
    uint64_t evicted, refused;
    char errmsg[256];
};

static int from_sqlite(struct obs_spans *st, int rc)
{
    snprintf(st->errmsg, sizeof(st->errmsg), "sqlite: %s (%d)",
             st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc), rc);
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

static int exec(struct obs_spans *st, const char *sql)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : from_sqlite(st, rc);
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

int obs_spans_open(const struct obs_spans_config *cfg, struct obs_spans **out, struct sh_diag *d)
{
    struct obs_spans *st = sh_calloc(1, sizeof(*st));
    int rc;

    *out = NULL;
    if (!st) return SH_ENOMEM;
    st->cfg = *cfg;
    if (!st->cfg.max_bytes) st->cfg.max_bytes = 256u << 20;
    if (!st->cfg.max_age_ms) st->cfg.max_age_ms = 7ull * 24 * 3600 * 1000;
    if (!st->cfg.max_buffered) st->cfg.max_buffered = 100000;
    if (!st->cfg.max_scan) st->cfg.max_scan = 20000;
    st->pending = BUF_INIT(MAX_PENDING_BYTES);
    rc = sqlite3_open_v2(cfg->path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = from_sqlite(st, rc);
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 1000);
    rc = exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;"
                  "PRAGMA journal_size_limit = 16777216; PRAGMA temp_store = MEMORY;"
                  "PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 4096;");
    if (rc == 0) rc = exec(st, schema_sql);
    for (int i = 0; rc == 0 && i < S_COUNT; i++) {
        int src = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                     &st->stmt[i], NULL);
        if (src != SQLITE_OK) rc = from_sqlite(st, src);
    }
    if (rc < 0) goto fail;
    struct obs_spans_stats stats;
    if ((rc = obs_spans_stats(st, &stats)) < 0) goto fail;
    st->stored_bytes = stats.bytes;
    *out = st;
    return 0;
fail:
    sh_diag_set(d, cfg->path, "cannot open the span store: %s",
                st->errmsg[0] ? st->errmsg : sh_strerror(rc));
    obs_spans_close(st);
    return rc;
}

void obs_spans_close(struct obs_spans *st)
{
    if (!st) return;
    if (st->db && st->pending_count && obs_spans_flush(st, sh_wall_ms()) < 0) {
        /* lost and counted: the store is going away */
    }
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    sqlite3_close_v2(st->db);
    buf_release(&st->pending);
    sh_free(st);
}

const char *obs_spans_errmsg(const struct obs_spans *st)
{
    return st->errmsg;
}

size_t obs_spans_pending(const struct obs_spans *st)
{
    return st->pending_count;
}

bool obs_spans_has_room(const struct obs_spans *st, const struct trace_span *spans, size_t n)
{
    size_t bytes = 0;

    if (st->pending_count + n > st->cfg.max_buffered) return false;
    for (size_t i = 0; i < n; i++)
        bytes += 4 + obs__span_packed_len(&spans[i]);
    return st->pending.len + bytes <= st->pending.max;
}

int obs_spans_add(struct obs_spans *st, const struct trace_span *s)
{
    size_t start = st->pending.len, bytes = s->name.len + s->local.service.len + s->local.ip.len +
                                            s->remote.service.len + s->remote.ip.len;
    uint8_t len[4] = {0};

    for (size_t i = 0; i < SH_MIN(s->tag_count, (size_t)TRACE_SPAN_MAX_TAGS); i++)
        bytes += s->tags[i].key.len + s->tags[i].value.len;
    for (size_t i = 0; i < SH_MIN(s->annotation_count, (size_t)TRACE_SPAN_MAX_ANNOTATIONS); i++)
        bytes += s->annotations[i].value.len;
    if (bytes > TRACE_SPAN_MAX_BYTES) return SH_ETOOBIG;
    if (st->pending_count >= st->cfg.max_buffered) {
        st->refused++;
        return SH_ELIMIT;
    }
    buf_append(&st->pending, len, sizeof(len));
    int rc = obs__span_pack(&st->pending, s);
    if (rc < 0) {
        st->pending.len = start; /* drop the partial entry; the sticky error goes too */
        st->pending.err = 0;
        if (st->pending.data) st->pending.data[start] = '\0';
        st->refused++;
        return rc == SH_ETOOBIG ? SH_ELIMIT : rc;
    }
    size_t n = st->pending.len - start - 4;
    for (int i = 0; i < 4; i++)
        st->pending.data[start + (size_t)i] = (char)(uint8_t)(n >> (8 * i));
    st->pending_count++;
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
    sqlite3_stmt *s = st->stmt[S_NAME_UPSERT];
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
    return rc == SQLITE_DONE ? 0 : from_sqlite(st, rc);
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
    s = st->stmt[S_TRACE_UPSERT];
    sqlite3_bind_blob(s, 1, sp.trace_id, TRACE_ID_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, i64(now_ms));
    sqlite3_bind_int64(s, 3, i64(sp.timestamp_us));
    sqlite3_bind_int(s, 4, obs__is_zero(sp.parent_id, TRACE_SPAN_ID_BYTES));
    sqlite3_bind_int64(s, 5, i64(bytes));
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = from_sqlite(st, rc);
        done(s);
        return rc;
    }
    seq = sqlite3_column_int64(s, 0);
    done(s);
    s = st->stmt[S_SPAN_INSERT];
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_text(s, 2, sp.local.service.ptr ? sp.local.service.ptr : "",
                      (int)sp.local.service.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, i64(sp.timestamp_us));
    sqlite3_bind_blob(s, 4, p, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(s);
    done(s);
    if (rc != SQLITE_DONE) return from_sqlite(st, rc);
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
        sqlite3_stmt *s = st->stmt[S_OLDEST];
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
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return from_sqlite(st, rc);
        if (!more) break;
        for (int id = S_DEL_SPANS; id <= S_DEL_NAMES; id++) {
            s = st->stmt[id];
            sqlite3_bind_int64(s, 1, upto);
            rc = sqlite3_step(s);
            done(s);
            if (rc != SQLITE_DONE) return from_sqlite(st, rc);
        }
        st->stored_bytes = freed > st->stored_bytes ? 0 : st->stored_bytes - freed;
        st->evicted += traces;
    }
    return 0;
}

int obs_spans_flush(struct obs_spans *st, uint64_t now_ms)
{
    uint32_t seen[NAME_SEEN_SLOTS] = {0};
    size_t off = 0;
    int rc;

    if (!st->pending_count) return 0;
    rc = exec(st, "BEGIN IMMEDIATE");
    while (rc == 0 && off + 4 <= st->pending.len) {
        const uint8_t *p = (const uint8_t *)st->pending.data + off;
        size_t n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 | (size_t)p[3] << 24;
        rc = store_one(st, p + 4, n, now_ms, seen);
        off += 4 + n;
    }
    if (rc == 0) rc = evict(st, now_ms);
    if (rc == 0) rc = exec(st, "COMMIT");
    if (rc < 0) {
        char keep[sizeof(st->errmsg)];
        memcpy(keep, st->errmsg, sizeof(keep));
        (void)exec(st, "ROLLBACK");
        memcpy(st->errmsg, keep, sizeof(keep));
        st->refused += st->pending_count;
        struct obs_spans_stats stats;
        if (obs_spans_stats(st, &stats) == 0) st->stored_bytes = stats.bytes;
    }
    buf_reset(&st->pending);
    st->pending_count = 0;
    return rc;
}

int obs_spans_stats(struct obs_spans *st, struct obs_spans_stats *out)
{
    sqlite3_stmt *s = st->stmt[S_STATS];
    int rc = sqlite3_step(s);

    memset(out, 0, sizeof(*out));
    if (rc == SQLITE_ROW) {
        out->traces = (uint64_t)sqlite3_column_int64(s, 0);
        out->spans = (uint64_t)sqlite3_column_int64(s, 1);
        out->bytes = (uint64_t)sqlite3_column_int64(s, 2);
    }
    done(s);
    out->evicted_traces = st->evicted;
    out->refused_spans = st->refused;
    return rc == SQLITE_ROW ? 0 : from_sqlite(st, rc);
}

/* ---- queries ------------------------------------------------------------------------------ */
/* A query's answer is rendered from what is stored: the buffer is written first. A failed
 * flush is not the query's failure (it counted the loss); the query answers from the rest. */
static void flush_first(struct obs_spans *st)
{
    if (st->pending_count && obs_spans_flush(st, sh_wall_ms()) < 0) {
        /* counted in refused_spans; the query answers from what is stored */
    }
}

static int string_list(struct obs_spans *st, int id, const char *service, struct buf *out)
{
    sqlite3_stmt *s = st->stmt[id];
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
    if (rc != SQLITE_DONE) return from_sqlite(st, rc);
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
    sqlite3_stmt *s = st->stmt[S_TRACE_BY_ID];
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
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = from_sqlite(st, src);
    if (rc == 0) rc = loaded_unpack(&l, &n);
    if (rc == 0) rc = n ? render_trace(out, l.spans, n) : SH_ENOENT;
    loaded_release(&l);
    return rc;
}

static int load_trace(struct obs_spans *st, int64_t seq, struct loaded *l, size_t *n)
{
    sqlite3_stmt *s = st->stmt[S_TRACE_SPANS];
    int rc = 0, src;

    loaded_reset(l);
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_int(s, 2, MAX_TRACE_SPANS);
    while ((src = sqlite3_step(s)) == SQLITE_ROW && rc == 0)
        rc = loaded_add(l, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    done(s);
    if (rc == 0 && src != SQLITE_DONE && src != SQLITE_ROW) rc = from_sqlite(st, src);
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
    sqlite3_stmt *s = st->stmt[by_service ? S_SERVICE_CANDIDATES : S_CANDIDATES];
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
    if (rc == 0 && nseq < st->cfg.max_scan && src != SQLITE_DONE) rc = from_sqlite(st, src);
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
    sqlite3_stmt *s = st->stmt[S_WINDOW_SPANS];
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
    if (rc == 0 && src != SQLITE_DONE) rc = from_sqlite(st, src);
    if (rc == 0 && l.count) {
        rc = loaded_unpack(&l, &n);
        if (rc == 0) rc = obs_links_add_trace(&links, l.spans, n);
    }
    if (rc == 0) rc = obs_links_render(&links, out);
    obs_links_release(&links);
    loaded_release(&l);
    return rc;
}
