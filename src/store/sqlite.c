/* SPDX-License-Identifier: MIT */
/* sqlite.c: the embedded store backend, one SQLite database <data_dir>/store.db in WAL mode.
 * The only file of shoal that includes <sqlite3.h> (scripts/check-layout.sh).
 *
 * Tables (schema version 2, PRAGMA user_version):
 *   meta(name, value)       'revision', 'compact_revision', 'lease_seq'
 *   kv(key, value, create_rev, mod_rev, version, lease)          the live keys
 *   log(id, rev, key, value, create_rev, version, lease)         every event, in id order;
 *                           a delete has version 0 and value NULL
 *   lease(id, ttl_ms, deadline_ms)                               deadline: wall clock, ms
 *
 * Invariants, all kept inside each write transaction:
 *   - meta.revision is the highest rev in log (or 0); a write that changes nothing adds no rev.
 *   - log holds every event with rev > meta.compact_revision, and for every key at least its
 *     last <history> events. compact_revision = revision - watch_window, advanced with each
 *     write; the rows it uncovers that are not among their key's last <history> are deleted
 *     then, and a key's older rows whenever it is written again.
 *   - Every kv row has its last put in log (the row for its mod_rev), unless compacted.
 *
 * Durability: journal_mode=WAL, synchronous=FULL: each COMMIT fsyncs the WAL before it returns,
 * so a write acknowledged to the caller survives kill -9 and power loss. (NORMAL would survive
 * kill -9 too, since the WAL pages are in the kernel's cache, but not a power cut, and the
 * store holds what a cluster restart must find.) Writes use BEGIN IMMEDIATE so the write lock is
 * taken up front and a busy database fails before any work. Reads need no transaction: the
 * owner thread is the only writer and every read is one statement.
 * Group commit: the first write opens the batch (BEGIN IMMEDIATE) and every write is a
 * SAVEPOINT inside it, released on success and rolled back to on failure; be_sync COMMITs.
 * Some errors (SQLITE_FULL, IOERR, NOMEM) may make SQLite roll the whole transaction back:
 * when the batch held released writes they are lost, be->is_batch_lost says so, every write
 * fails and the next be_sync fails (a failure of the batch's first write loses nothing). A
 * ROLLBACK TO that fails rolls the whole batch back the same way, so the half-done write is
 * never committed.
 * Integrity: SQLite's own journaling keeps the file consistent across crashes; a quick_check at
 * open is available (store_config.is_integrity_check) for operators who suspect the disk.
 * Threads: the store's owner thread only; the connection is opened SQLITE_OPEN_NOMUTEX. */
#include "store/store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

enum { SCHEMA_VERSION = 2 };

/* Cached prepared statements, prepared on first use with SQLITE_PREPARE_PERSISTENT. */
enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_META_GET,
    S_META_SET,
    S_KV_GET,
    S_KV_RANGE,
    S_KV_RANGE_OPEN,
    S_KV_PUT,
    S_KV_DEL,
    S_KV_BY_LEASE,
    S_LOG_ADD,
    S_LOG_RANGE,
    S_LOG_RANGE_OPEN,
    S_LOG_KEY,
    S_TRIM_KEY,
    S_TRIM_WINDOW,
    S_LEASE_GET,
    S_LEASE_ADD,
    S_LEASE_SET,
    S_LEASE_DEL,
    S_LEASE_DUE,
    S_COUNT
};

#define KV_COLS "key, value, create_rev, mod_rev, version, lease"
#define LOG_COLS "key, value, create_rev, rev, version, lease"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT w",
    [S_RELEASE] = "RELEASE w",
    [S_ROLLBACK_TO] = "ROLLBACK TO w",
    [S_META_GET] = "SELECT value FROM meta WHERE name = ?1",
    [S_META_SET] = "UPDATE meta SET value = ?2 WHERE name = ?1",
    [S_KV_GET] = "SELECT " KV_COLS " FROM kv WHERE key = ?1",
    [S_KV_RANGE] = "SELECT " KV_COLS " FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3",
    [S_KV_RANGE_OPEN] = "SELECT " KV_COLS " FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?3",
    [S_KV_PUT] = "INSERT OR REPLACE INTO kv (" KV_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_KV_DEL] = "DELETE FROM kv WHERE key = ?1",
    [S_KV_BY_LEASE] = "SELECT " KV_COLS " FROM kv WHERE lease = ?1 ORDER BY key",
    [S_LOG_ADD] = "INSERT INTO log (" LOG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_LOG_RANGE] = "SELECT " LOG_COLS " FROM log WHERE rev >= ?1 AND rev < ?2"
                    " AND key >= ?3 AND key < ?4 ORDER BY id",
    [S_LOG_RANGE_OPEN] = "SELECT " LOG_COLS " FROM log WHERE rev >= ?1 AND rev < ?2"
                         " AND key >= ?3 ORDER BY id",
    [S_LOG_KEY] = "SELECT " LOG_COLS " FROM log WHERE key = ?1 ORDER BY rev DESC, id DESC"
                  " LIMIT ?2",
    /* A key's rows at or below the compact revision, but for its last ?3. */
    [S_TRIM_KEY] = "DELETE FROM log WHERE key = ?1 AND rev <= ?2 AND id NOT IN"
                   " (SELECT id FROM log WHERE key = ?1 ORDER BY rev DESC, id DESC LIMIT ?3)",
    /* Rows the compact revision just passed over, but for each key's last ?3. */
    [S_TRIM_WINDOW] = "DELETE FROM log WHERE rev > ?1 AND rev <= ?2 AND id NOT IN"
                      " (SELECT l.id FROM log AS l WHERE l.key = log.key"
                      " ORDER BY l.rev DESC, l.id DESC LIMIT ?3)",
    [S_LEASE_GET] = "SELECT ttl_ms, deadline_ms FROM lease WHERE id = ?1",
    [S_LEASE_ADD] = "INSERT INTO lease (id, ttl_ms, deadline_ms) VALUES (?1, ?2, ?3)",
    [S_LEASE_SET] = "UPDATE lease SET deadline_ms = ?2 WHERE id = ?1",
    [S_LEASE_DEL] = "DELETE FROM lease WHERE id = ?1",
    [S_LEASE_DUE] = "SELECT id FROM lease WHERE deadline_ms <= ?1 ORDER BY deadline_ms, id"
                    " LIMIT 1",
};

/* Migrations: migrations[v] takes a database from user_version v to v + 1, in one transaction
 * with the version bump. Append only; a released step never changes. */
static const char *const migrations[SCHEMA_VERSION] = {
    /* 0 -> 1: keys, revisions and the event log. */
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('revision', 0), ('compact_revision', 0);"
    "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, create_rev INTEGER NOT NULL,"
    " mod_rev INTEGER NOT NULL, version INTEGER NOT NULL);"
    "CREATE TABLE log (id INTEGER PRIMARY KEY, rev INTEGER NOT NULL, key BLOB NOT NULL,"
    " value BLOB, create_rev INTEGER NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX log_rev ON log (rev);"
    "CREATE INDEX log_key ON log (key, rev);",
    /* 1 -> 2: leases. */
    "ALTER TABLE kv ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE log ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX kv_lease ON kv (lease) WHERE lease <> 0;"
    "CREATE TABLE lease (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL,"
    " deadline_ms INTEGER NOT NULL);"
    "CREATE INDEX lease_deadline ON lease (deadline_ms);"
    "INSERT INTO meta VALUES ('lease_seq', 0);",
};

struct sqlite_be {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    int lock_fd;
    int64_t revision, compact_revision, lease_seq;
    int64_t history, watch_window;
    bool is_group_commit;
    bool is_batch_open;    /* group commit: BEGIN done, COMMIT not yet */
    bool is_batch_lost;    /* SQLite rolled back an open batch: be_sync reports it */
    uint64_t batch_writes; /* writes released into the open batch */
};

static struct sqlite_be *BE(const struct store *st)
{
    return st->be;
}

/* ---- the one place SQLite's codes become ours ---- */

static const struct {
    int sqlite;
    int sh;
} code_map[] = {
    {SQLITE_NOMEM, SH_ENOMEM},        {SQLITE_BUSY, SH_EBUSY},    {SQLITE_LOCKED, SH_EBUSY},
    {SQLITE_FULL, SH_ENOSPC},         {SQLITE_IOERR, SH_EIO},     {SQLITE_CORRUPT, SH_ECORRUPT},
    {SQLITE_NOTADB, SH_ECORRUPT},     {SQLITE_CANTOPEN, -EACCES}, {SQLITE_PERM, -EACCES},
    {SQLITE_READONLY, -EACCES},       {SQLITE_AUTH, -EACCES},     {SQLITE_TOOBIG, SH_ETOOBIG},
    {SQLITE_INTERRUPT, SH_ECANCELED}, {SQLITE_PROTOCOL, SH_EIO},  {SQLITE_SCHEMA, SH_EIO},
};

/* Translates rc (not OK/ROW/DONE) and keeps SQLite's message on the handle. */
static int store__from_sqlite(struct store *st, int rc)
{
    struct sqlite_be *be = st->be;
    int primary = rc & 0xff;

    store__set_errmsg(st, "sqlite: %s (%d)",
                      be && be->db ? sqlite3_errmsg(be->db) : sqlite3_errstr(rc), rc);
    for (size_t i = 0; i < SH_ARRAY_LEN(code_map); i++) {
        if (code_map[i].sqlite == primary) return code_map[i].sh;
    }
    /* SQLITE_ERROR and the rest: a statement the schema does not support (a database that
     * is not ours) or a bug; the message says which. */
    return SH_EIO;
}

/* ---- statements ---- */

static int stmt_get(struct store *st, enum stmt_id id, sqlite3_stmt **out)
{
    struct sqlite_be *be = st->be;
    int rc;

    if (!be->stmt[id]) {
        rc = sqlite3_prepare_v3(be->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &be->stmt[id],
                                NULL);
        if (rc != SQLITE_OK) return store__from_sqlite(st, rc);
    }
    *out = be->stmt[id];
    return 0;
}

static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static int bind_blob(sqlite3_stmt *s, int i, struct slice v)
{
    /* A zero-length blob must still be a blob, not NULL: pass a valid pointer. */
    return sqlite3_bind_blob(s, i, v.len ? v.ptr : "", (int)v.len, SQLITE_STATIC);
}

/* Runs a statement that returns no rows. */
static int exec_stmt(struct store *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    stmt_done(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return store__from_sqlite(st, rc);
    return 0;
}

static int exec_id(struct store *st, enum stmt_id id)
{
    sqlite3_stmt *s = NULL;
    int rc = stmt_get(st, id, &s);

    return rc < 0 ? rc : exec_stmt(st, s);
}

/* Group commit: SQLite rolled the open batch back by itself (after FULL, IOERR, NOMEM). The
 * batch is lost when it held released writes; a failure of its first write loses nothing. */
static void note_auto_rollback(struct sqlite_be *be)
{
    if (!be->is_batch_open || !sqlite3_get_autocommit(be->db)) return;
    be->is_batch_open = false;
    if (be->batch_writes) be->is_batch_lost = true;
    be->batch_writes = 0;
}

/* A write's transaction: its own, or a savepoint in the open batch (group commit). */
static int begin(struct store *st)
{
    struct sqlite_be *be = st->be;
    int rc;

    if (!be->is_group_commit) return exec_id(st, S_BEGIN);
    note_auto_rollback(be);
    if (be->is_batch_lost) {
        store__set_errmsg(st, "the open batch was rolled back by SQLite; it must be synced");
        return SH_EIO;
    }
    if (!be->is_batch_open) {
        rc = exec_id(st, S_BEGIN);
        if (rc < 0) return rc;
        be->is_batch_open = true;
        be->batch_writes = 0;
    }
    return exec_id(st, S_SAVEPOINT);
}

static int step_id(struct store *st, enum stmt_id id)
{
    sqlite3_stmt *s = NULL;
    int rc;

    if (stmt_get(st, id, &s) < 0) return SQLITE_ERROR;
    rc = sqlite3_step(s);
    stmt_done(s);
    return rc;
}

static void rollback(struct store *st)
{
    struct sqlite_be *be = st->be;

    /* After some errors SQLite has already rolled back; then there is nothing to do, but in
     * group commit the writes before this one may have gone with it. */
    if (sqlite3_get_autocommit(be->db)) {
        note_auto_rollback(be);
        return;
    }
    if (!be->is_group_commit) {
        step_id(st, S_ROLLBACK);
        return;
    }
    /* Undo this write only. If that fails, its half-done changes must not be committed with
     * the batch: roll everything back and let the sync report the loss. */
    if (step_id(st, S_ROLLBACK_TO) == SQLITE_DONE && step_id(st, S_RELEASE) == SQLITE_DONE) return;
    if (!sqlite3_get_autocommit(be->db)) step_id(st, S_ROLLBACK);
    be->is_batch_open = false;
    be->is_batch_lost = true;
}

static int commit(struct store *st)
{
    struct sqlite_be *be = st->be;
    int rc;

    if (!be->is_group_commit) return exec_id(st, S_COMMIT);
    rc = exec_id(st, S_RELEASE);
    if (rc == 0) be->batch_writes++;
    return rc;
}

static int meta_get(struct store *st, const char *name, int64_t *out)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_META_GET, &s);

    if (rc < 0) return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        store__set_errmsg(st, "meta row '%s' is missing", name);
        rc = SH_ECORRUPT;
    } else {
        rc = store__from_sqlite(st, rc);
    }
    stmt_done(s);
    return rc;
}

static int meta_set(struct store *st, const char *name, int64_t value)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_META_SET, &s);

    if (rc < 0) return rc;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    return exec_stmt(st, s);
}

/* Reads a row of KV_COLS or LOG_COLS (same order) into kv; the slices borrow from s. */
static void row_kv(sqlite3_stmt *s, struct store_kv *kv)
{
    kv->key.ptr = sqlite3_column_blob(s, 0);
    kv->key.len = (size_t)sqlite3_column_bytes(s, 0);
    kv->value.ptr = sqlite3_column_blob(s, 1);
    kv->value.len = (size_t)sqlite3_column_bytes(s, 1);
    kv->create_revision = sqlite3_column_int64(s, 2);
    kv->mod_revision = sqlite3_column_int64(s, 3);
    kv->version = sqlite3_column_int64(s, 4);
    kv->lease = sqlite3_column_int64(s, 5);
}

/* Reads the live kv of key into *kv (copying nothing: valid until stmt_done), or returns 1 when
 * the key does not exist. The caller resets *s_out with stmt_done. */
static int kv_lookup(struct store *st, struct slice key, sqlite3_stmt **s_out, struct store_kv *kv)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_KV_GET, &s);

    *s_out = NULL;
    if (rc < 0) return rc;
    bind_blob(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        row_kv(s, kv);
        if (!kv->key.ptr && sqlite3_errcode(BE(st)->db) == SQLITE_NOMEM) {
            stmt_done(s);
            return SH_ENOMEM;
        }
        *s_out = s;
        return 0;
    }
    stmt_done(s);
    if (rc == SQLITE_DONE) {
        memset(kv, 0, sizeof(*kv));
        return 1;
    }
    return store__from_sqlite(st, rc);
}

/* ---- open / close ---- */

static int mkdir_p(const char *dir, struct sh_diag *d)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n >= sizeof(path)) {
        sh_diag_set(d, "store", "data dir path is too long");
        return SH_ETOOBIG;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) == -1 && errno != EEXIST) {
            int err = -errno;
            sh_diag_set(d, path, "cannot create directory: %s", sh_strerror(err));
            return err;
        }
        path[i] = c;
    }
    return 0;
}

static int lock_dir(struct sqlite_be *be, const char *dir, struct sh_diag *d)
{
    char path[4200];

    snprintf(path, sizeof(path), "%s/store.lock", dir);
    be->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (be->lock_fd == -1) {
        int err = -errno;
        sh_diag_set(d, path, "cannot open lock file: %s", sh_strerror(err));
        return err;
    }
    if (flock(be->lock_fd, LOCK_EX | LOCK_NB) == -1) {
        int err = errno == EWOULDBLOCK ? SH_EBUSY : -errno;
        sh_diag_set(d, dir, "data dir is in use by another process (%s)", sh_strerror(err));
        return err;
    }
    return 0;
}

static int exec_sql(struct store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(BE(st)->db, sql, NULL, NULL, &msg);

    sqlite3_free(msg); /* sqlite3_errmsg keeps the same text */
    return rc == SQLITE_OK ? 0 : store__from_sqlite(st, rc);
}

static int pragma_int(struct store *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(BE(st)->db, sql, -1, &s, NULL);

    if (rc != SQLITE_OK) return store__from_sqlite(st, rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return store__from_sqlite(st, rc == SQLITE_DONE ? SQLITE_ERROR : rc);
    return 0;
}

static int migrate(struct store *st)
{
    int64_t version = 0;
    int rc = pragma_int(st, "PRAGMA user_version", &version);

    if (rc < 0) return rc;
    if (version > SCHEMA_VERSION) {
        store__set_errmsg(st, "schema version %lld is newer than this shoal's (%d)",
                          (long long)version, SCHEMA_VERSION);
        return SH_ENOTSUP;
    }
    for (int64_t v = version; v < SCHEMA_VERSION; v++) {
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %lld", (long long)(v + 1));
        rc = exec_sql(st, "BEGIN IMMEDIATE");
        if (rc < 0) return rc;
        rc = exec_sql(st, migrations[v]);
        if (rc == 0) rc = exec_sql(st, bump);
        if (rc == 0) rc = exec_sql(st, "COMMIT");
        if (rc < 0) {
            char keep[sizeof(st->errmsg)];
            memcpy(keep, st->errmsg, sizeof(keep));
            rollback(st);
            store__set_errmsg(st, "migration %lld -> %lld: %.200s", (long long)v,
                              (long long)(v + 1), keep);
            return rc;
        }
        SH_LOG(SH_INFO, "store", "schema migrated", LF_INT("from", v), LF_INT("to", v + 1));
    }
    return 0;
}

static int quick_check(struct store *st)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(BE(st)->db, "PRAGMA quick_check", -1, &s, NULL);

    if (rc != SQLITE_OK) return store__from_sqlite(st, rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *txt = (const char *)sqlite3_column_text(s, 0);
        if (!txt || strcmp(txt, "ok") != 0) {
            store__set_errmsg(st, "integrity check: %s", txt ? txt : "(no answer)");
            rc = SH_ECORRUPT;
        } else {
            rc = 0;
        }
    } else {
        rc = store__from_sqlite(st, rc);
    }
    sqlite3_finalize(s);
    return rc;
}

static int be_open(struct store *st, const struct store_config *cfg, uint64_t now_ms,
                   struct sh_diag *d)
{
    struct sqlite_be *be = sh_calloc(1, sizeof(*be));
    char path[4200], sql[128];
    int rc;

    if (!be) {
        sh_diag_set(d, cfg->data_dir, "out of memory");
        return SH_ENOMEM;
    }
    be->lock_fd = -1;
    be->history = cfg->history ? cfg->history : STORE_DEFAULT_HISTORY;
    be->watch_window = cfg->watch_window ? cfg->watch_window : STORE_DEFAULT_WATCH_WINDOW;
    st->be = be;
    rc = mkdir_p(cfg->data_dir, d);
    if (rc < 0) return rc;
    rc = lock_dir(be, cfg->data_dir, d);
    if (rc < 0) return rc;
    snprintf(path, sizeof(path), "%s/store.db", cfg->data_dir);
    rc = sqlite3_open_v2(path, &be->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = store__from_sqlite(st, rc);
        goto fail;
    }
    sqlite3_extended_result_codes(be->db, 1);
    rc = sqlite3_busy_timeout(
        be->db, cfg->busy_timeout_ms ? (int)SH_MIN(cfg->busy_timeout_ms, INT32_MAX) : 5000);
    if (rc != SQLITE_OK) {
        rc = store__from_sqlite(st, rc);
        goto fail;
    }
    /* WAL: readers never block the writer and a commit appends instead of rewriting pages.
     * FULL: the WAL is fsynced at each commit (see the file comment). */
    rc = exec_sql(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                      " PRAGMA foreign_keys = OFF; PRAGMA secure_delete = OFF;");
    if (rc < 0) goto fail;
    if (cfg->is_integrity_check) {
        rc = quick_check(st);
        if (rc < 0) goto fail;
    }
    rc = migrate(st);
    if (rc < 0) goto fail;
    rc = meta_get(st, "revision", &be->revision);
    if (rc == 0) rc = meta_get(st, "compact_revision", &be->compact_revision);
    if (rc == 0) rc = meta_get(st, "lease_seq", &be->lease_seq);
    if (rc < 0) goto fail;
    if (cfg->lease_grace_ms) {
        uint64_t floor = now_ms + SH_MIN(cfg->lease_grace_ms, (uint64_t)INT64_MAX / 4);
        snprintf(sql, sizeof(sql), "UPDATE lease SET deadline_ms = %llu WHERE deadline_ms < %llu",
                 (unsigned long long)floor, (unsigned long long)floor);
        rc = exec_sql(st, sql);
        if (rc < 0) goto fail;
    }
    be->is_group_commit = cfg->is_group_commit; /* after the migrations' own transactions */
    return 0;
fail:
    sh_diag_set(d, path, "%s", st->errmsg);
    return rc;
}

static void be_close(struct store *st)
{
    struct sqlite_be *be = st->be;

    if (!be) return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(be->stmt[i]);
    /* sqlite3_close_v2: the last connection checkpoints the WAL into the database. */
    sqlite3_close_v2(be->db);
    if (be->lock_fd != -1) close(be->lock_fd);
    sh_free(be);
    st->be = NULL;
}

static int be_sync(struct store *st)
{
    struct sqlite_be *be = st->be;
    int rc;

    note_auto_rollback(be);
    if (be->is_batch_lost) {
        be->is_batch_lost = false;
        store__set_errmsg(st, "SQLite rolled back the open batch after an error");
        return SH_EIO;
    }
    if (!be->is_batch_open) return 0;
    be->is_batch_open = false;
    be->batch_writes = 0;
    rc = exec_id(st, S_COMMIT);
    if (rc < 0) {
        char msg[sizeof(st->errmsg)];
        snprintf(msg, sizeof(msg), "%s", st->errmsg);
        if (!sqlite3_get_autocommit(be->db)) step_id(st, S_ROLLBACK);
        store__set_errmsg(st, "commit of the batch failed: %s", msg);
    }
    return rc;
}

static bool be_is_unsynced(const struct store *st)
{
    return BE(st)->is_batch_open || BE(st)->is_batch_lost;
}

static int64_t be_revision(const struct store *st)
{
    return BE(st)->revision;
}

static int64_t be_compact_revision(const struct store *st)
{
    return BE(st)->compact_revision;
}

/* ---- reads ---- */

static int be_range(struct store *st, const struct store__range *r, size_t limit,
                    struct store_result *res)
{
    sqlite3_stmt *s;
    int64_t lim = limit && limit < INT64_MAX ? (int64_t)limit + 1 : -1; /* +1: has_more */
    int rc = stmt_get(st, r->has_hi ? S_KV_RANGE : S_KV_RANGE_OPEN, &s);

    if (rc < 0) return rc;
    bind_blob(s, 1, r->lo);
    if (r->has_hi) bind_blob(s, 2, r->hi);
    sqlite3_bind_int64(s, 3, lim);
    res->revision = BE(st)->revision;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_kv kv;
        if (limit && res->count == limit) {
            res->has_more = true;
            break;
        }
        row_kv(s, &kv);
        rc = store__result_add(res, &kv);
        if (rc < 0) goto out;
    }
    rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store__from_sqlite(st, rc);
out:
    stmt_done(s);
    return rc;
}

static int be_history(struct store *st, struct slice key, size_t limit, struct store_result *res)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_LOG_KEY, &s);

    if (rc < 0) return rc;
    bind_blob(s, 1, key);
    sqlite3_bind_int64(s, 2, limit && limit < INT64_MAX ? (int64_t)limit : -1);
    res->revision = BE(st)->revision;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_kv kv;
        row_kv(s, &kv);
        rc = store__result_add(res, &kv);
        if (rc < 0) goto out;
    }
    rc = rc == SQLITE_DONE ? 0 : store__from_sqlite(st, rc);
out:
    stmt_done(s);
    return rc;
}

static int be_events(struct store *st, const struct store__range *r, int64_t from, int64_t to,
                     struct store__events *evs)
{
    sqlite3_stmt *s;
    int rc;

    if (from <= BE(st)->compact_revision) {
        store__set_errmsg(st, "revision %lld is compacted", (long long)from);
        return SH_ECOMPACTED;
    }
    rc = stmt_get(st, r->has_hi ? S_LOG_RANGE : S_LOG_RANGE_OPEN, &s);
    if (rc < 0) return rc;
    sqlite3_bind_int64(s, 1, from);
    sqlite3_bind_int64(s, 2, to);
    bind_blob(s, 3, r->lo);
    if (r->has_hi) bind_blob(s, 4, r->hi);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_kv kv;
        row_kv(s, &kv);
        rc = store__events_add(evs, kv.version ? STORE_EVENT_PUT : STORE_EVENT_DELETE, &kv);
        if (rc < 0) goto out;
    }
    rc = rc == SQLITE_DONE ? 0 : store__from_sqlite(st, rc);
out:
    stmt_done(s);
    return rc;
}

/* ---- writes (inside a transaction begun by the caller) ---- */

static int log_add(struct store *st, const struct store_kv *kv)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_LOG_ADD, &s);

    if (rc < 0) return rc;
    bind_blob(s, 1, kv->key);
    if (kv->version)
        bind_blob(s, 2, kv->value);
    else
        sqlite3_bind_null(s, 2);
    sqlite3_bind_int64(s, 3, kv->create_revision);
    sqlite3_bind_int64(s, 4, kv->mod_revision);
    sqlite3_bind_int64(s, 5, kv->version);
    sqlite3_bind_int64(s, 6, kv->lease);
    return exec_stmt(st, s);
}

/* Drops key's compacted rows beyond its last <history>. */
static int trim_key(struct store *st, struct slice key)
{
    struct sqlite_be *be = st->be;
    sqlite3_stmt *s;
    int rc;

    if (!be->compact_revision) return 0;
    rc = stmt_get(st, S_TRIM_KEY, &s);
    if (rc < 0) return rc;
    bind_blob(s, 1, key);
    sqlite3_bind_int64(s, 2, be->compact_revision);
    sqlite3_bind_int64(s, 3, be->history);
    return exec_stmt(st, s);
}

static int lease_exists(struct store *st, int64_t id, bool *out)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_LEASE_GET, &s);

    if (rc < 0) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW;
    stmt_done(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store__from_sqlite(st, rc);
}

static int do_put(struct store *st, const struct store_op *op, int64_t rev,
                  struct store__events *evs)
{
    struct store_kv old, kv;
    sqlite3_stmt *s;
    int rc;

    if (op->lease) {
        bool ok;
        rc = lease_exists(st, op->lease, &ok);
        if (rc < 0) return rc;
        if (!ok) {
            store__set_errmsg(st, "lease %lld not found", (long long)op->lease);
            return SH_ENOENT;
        }
    }
    rc = kv_lookup(st, op->span.key, &s, &old);
    if (rc < 0) return rc;
    kv = (struct store_kv){
        .key = op->span.key,
        .value = op->value,
        .create_revision = rc == 0 ? old.create_revision : rev,
        .mod_revision = rev,
        .version = rc == 0 ? old.version + 1 : 1,
        .lease = op->lease,
    };
    if (s) stmt_done(s);
    rc = stmt_get(st, S_KV_PUT, &s);
    if (rc < 0) return rc;
    bind_blob(s, 1, kv.key);
    bind_blob(s, 2, kv.value);
    sqlite3_bind_int64(s, 3, kv.create_revision);
    sqlite3_bind_int64(s, 4, kv.mod_revision);
    sqlite3_bind_int64(s, 5, kv.version);
    sqlite3_bind_int64(s, 6, kv.lease);
    rc = exec_stmt(st, s);
    if (rc == 0) rc = log_add(st, &kv);
    if (rc == 0) rc = trim_key(st, kv.key);
    if (rc == 0) rc = store__events_add(evs, STORE_EVENT_PUT, &kv);
    return rc;
}

/* Deletes the keys evs->ev[first..] names (DELETE events already added) at revision rev. */
static int delete_listed(struct store *st, struct store__events *evs, size_t first)
{
    for (size_t i = first; i < evs->count; i++) {
        const struct store_kv *kv = &evs->ev[i].kv;
        sqlite3_stmt *s;
        int rc = stmt_get(st, S_KV_DEL, &s);
        if (rc < 0) return rc;
        bind_blob(s, 1, kv->key);
        rc = exec_stmt(st, s);
        if (rc == 0) rc = log_add(st, kv);
        if (rc == 0) rc = trim_key(st, kv->key);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Adds a DELETE event for every key the statement s (bound, returning KV_COLS) yields. */
static int list_deletes(struct store *st, sqlite3_stmt *s, int64_t rev, struct store__events *evs)
{
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct store_kv kv = {.mod_revision = rev};
        kv.key.ptr = sqlite3_column_blob(s, 0);
        kv.key.len = (size_t)sqlite3_column_bytes(s, 0);
        rc = store__events_add(evs, STORE_EVENT_DELETE, &kv);
        if (rc < 0) goto out;
    }
    rc = rc == SQLITE_DONE ? 0 : store__from_sqlite(st, rc);
out:
    stmt_done(s);
    return rc;
}

static int do_delete(struct store *st, const struct store_op *op, int64_t rev,
                     struct store__events *evs, size_t *deleted)
{
    struct store__range r;
    char buf[STORE__RANGE_BUF];
    size_t first = evs->count;
    sqlite3_stmt *s;
    int rc;

    store__range_from_span(&r, op->span, buf);
    rc = stmt_get(st, r.has_hi ? S_KV_RANGE : S_KV_RANGE_OPEN, &s);
    if (rc < 0) return rc;
    bind_blob(s, 1, r.lo);
    if (r.has_hi) bind_blob(s, 2, r.hi);
    sqlite3_bind_int64(s, 3, -1);
    rc = list_deletes(st, s, rev, evs);
    if (rc == 0) rc = delete_listed(st, evs, first);
    *deleted += evs->count - first;
    return rc;
}

/* After the changes of revision rev: bumps the revision, moves the compact revision and trims
 * the rows it passed over. */
static int finish_revision(struct store *st, int64_t rev)
{
    struct sqlite_be *be = st->be;
    int64_t cut = rev - be->watch_window;
    sqlite3_stmt *s;
    int rc = meta_set(st, "revision", rev);

    if (rc < 0 || cut <= be->compact_revision) return rc;
    rc = stmt_get(st, S_TRIM_WINDOW, &s);
    if (rc < 0) return rc;
    sqlite3_bind_int64(s, 1, be->compact_revision);
    sqlite3_bind_int64(s, 2, cut);
    sqlite3_bind_int64(s, 3, be->history);
    rc = exec_stmt(st, s);
    if (rc == 0) rc = meta_set(st, "compact_revision", cut);
    return rc;
}

static bool cmp_holds(const struct store_cmp *c, const struct store_kv *kv, bool exists)
{
    int64_t have = 0;
    int order;

    switch (c->target) {
    case STORE_CMP_VERSION:
        have = kv->version;
        break;
    case STORE_CMP_CREATE:
        have = kv->create_revision;
        break;
    case STORE_CMP_MOD:
        have = kv->mod_revision;
        break;
    case STORE_CMP_LEASE:
        have = kv->lease;
        break;
    case STORE_CMP_VALUE:
    default:
        if (!exists) return false;
        order = store__key_cmp(kv->value, c->value);
        goto decide;
    }
    order = have < c->num ? -1 : have > c->num;
decide:
    switch (c->op) {
    case STORE_EQ:
        return order == 0;
    case STORE_NE:
        return order != 0;
    case STORE_LT:
        return order < 0;
    case STORE_GT:
    default:
        return order > 0;
    }
}

static int be_txn(struct store *st, const struct store_txn *txn, struct store_txn_result *out,
                  struct store__events *evs)
{
    struct sqlite_be *be = st->be;
    int64_t rev = be->revision + 1;
    const struct store_op *ops;
    size_t count, deleted = 0;
    bool ok = true;
    int rc = begin(st);

    if (rc < 0) return rc;
    for (size_t i = 0; i < txn->cmp_count && ok; i++) {
        struct store_kv kv;
        sqlite3_stmt *s;
        rc = kv_lookup(st, txn->cmps[i].key, &s, &kv);
        if (rc < 0) goto fail;
        ok = cmp_holds(&txn->cmps[i], &kv, rc == 0);
        if (s) stmt_done(s);
    }
    ops = ok ? txn->success : txn->failure;
    count = ok ? txn->success_count : txn->failure_count;
    for (size_t i = 0; i < count; i++) {
        rc = ops[i].type == STORE_OP_PUT ? do_put(st, &ops[i], rev, evs)
                                         : do_delete(st, &ops[i], rev, evs, &deleted);
        if (rc < 0) goto fail;
    }
    if (evs->count) {
        rc = finish_revision(st, rev);
        if (rc < 0) goto fail;
    }
    rc = commit(st);
    if (rc < 0) goto fail;
    if (evs->count) {
        be->revision = rev;
        if (rev - be->watch_window > be->compact_revision)
            be->compact_revision = rev - be->watch_window;
    }
    out->is_succeeded = ok;
    out->revision = be->revision;
    out->deleted_count = deleted;
    return 0;
fail:
    rollback(st);
    return rc;
}

/* ---- leases ---- */

static int lease_read(struct store *st, int64_t id, int64_t *ttl_ms, int64_t *deadline_ms)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_LEASE_GET, &s);

    if (rc < 0) return rc;
    sqlite3_bind_int64(s, 1, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ttl_ms = sqlite3_column_int64(s, 0);
        *deadline_ms = sqlite3_column_int64(s, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        store__set_errmsg(st, "lease %lld not found", (long long)id);
        rc = SH_ENOENT;
    } else {
        rc = store__from_sqlite(st, rc);
    }
    stmt_done(s);
    return rc;
}

static int be_lease_grant(struct store *st, uint64_t ttl_ms, uint64_t now_ms, int64_t *out_id)
{
    struct sqlite_be *be = st->be;
    int64_t id = be->lease_seq + 1;
    sqlite3_stmt *s;
    int rc = begin(st);

    if (rc < 0) return rc;
    rc = stmt_get(st, S_LEASE_ADD, &s);
    if (rc < 0) goto fail;
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (int64_t)ttl_ms);
    sqlite3_bind_int64(s, 3, (int64_t)(now_ms + ttl_ms));
    rc = exec_stmt(st, s);
    if (rc == 0) rc = meta_set(st, "lease_seq", id);
    if (rc == 0) rc = commit(st);
    if (rc < 0) goto fail;
    be->lease_seq = id;
    *out_id = id;
    return 0;
fail:
    rollback(st);
    return rc;
}

static int be_lease_keepalive(struct store *st, int64_t id, uint64_t now_ms)
{
    int64_t ttl, deadline;
    sqlite3_stmt *s;
    int rc = lease_read(st, id, &ttl, &deadline);

    if (rc < 0) return rc;
    if ((uint64_t)deadline <= now_ms) {
        store__set_errmsg(st, "lease %lld has expired", (long long)id);
        return SH_ENOENT; /* the next store_tick revokes it */
    }
    rc = begin(st);
    if (rc < 0) return rc;
    rc = stmt_get(st, S_LEASE_SET, &s);
    if (rc == 0) {
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, (int64_t)now_ms + ttl);
        rc = exec_stmt(st, s);
    }
    if (rc == 0) rc = commit(st);
    if (rc < 0) rollback(st);
    return rc;
}

static int be_lease_ttl(struct store *st, int64_t id, uint64_t now_ms, uint64_t *out_ms)
{
    int64_t ttl, deadline;
    int rc = lease_read(st, id, &ttl, &deadline);

    if (rc < 0) return rc;
    *out_ms = (uint64_t)deadline > now_ms ? (uint64_t)deadline - now_ms : 0;
    return 0;
}

static int be_lease_revoke(struct store *st, int64_t id, struct store__events *evs)
{
    struct sqlite_be *be = st->be;
    int64_t rev = be->revision + 1, ttl, deadline;
    sqlite3_stmt *s;
    int rc = begin(st);

    if (rc < 0) return rc;
    rc = lease_read(st, id, &ttl, &deadline);
    if (rc < 0) goto fail;
    rc = stmt_get(st, S_KV_BY_LEASE, &s);
    if (rc < 0) goto fail;
    sqlite3_bind_int64(s, 1, id);
    rc = list_deletes(st, s, rev, evs);
    if (rc == 0) rc = delete_listed(st, evs, 0);
    if (rc == 0 && evs->count) rc = finish_revision(st, rev);
    if (rc < 0) goto fail;
    rc = stmt_get(st, S_LEASE_DEL, &s);
    if (rc < 0) goto fail;
    sqlite3_bind_int64(s, 1, id);
    rc = exec_stmt(st, s);
    if (rc == 0) rc = commit(st);
    if (rc < 0) goto fail;
    if (evs->count) {
        be->revision = rev;
        if (rev - be->watch_window > be->compact_revision)
            be->compact_revision = rev - be->watch_window;
    }
    return 0;
fail:
    rollback(st);
    return rc;
}

static int be_lease_due(struct store *st, uint64_t now_ms, int64_t *out_id)
{
    sqlite3_stmt *s;
    int rc = stmt_get(st, S_LEASE_DUE, &s);

    *out_id = 0;
    if (rc < 0) return rc;
    sqlite3_bind_int64(s, 1, (int64_t)SH_MIN(now_ms, (uint64_t)INT64_MAX));
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *out_id = sqlite3_column_int64(s, 0);
    stmt_done(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store__from_sqlite(st, rc);
}

const struct store_ops store__sqlite_ops = {
    .name = "sqlite",
    .open = be_open,
    .close = be_close,
    .range = be_range,
    .history = be_history,
    .txn = be_txn,
    .events = be_events,
    .lease_grant = be_lease_grant,
    .lease_keepalive = be_lease_keepalive,
    .lease_ttl = be_lease_ttl,
    .lease_revoke = be_lease_revoke,
    .lease_due = be_lease_due,
    .sync = be_sync,
    .is_unsynced = be_is_unsynced,
    .revision = be_revision,
    .compact_revision = be_compact_revision,
};
