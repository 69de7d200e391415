/* SPDX-License-Identifier: MIT */
/* names: the example's data service. It owns its database (one SQLite file, a database per
 * service: NAMES_DB, which shoal.yaml puts in the service's own ${SHOAL_DATA_DIR}; default
 * names.db in the working directory), seeds it on first start and answers
 *   GET  /health        200 {"status":"ok"}
 *   GET  /names         200 ["Ada","Grace",...]
 *   GET  /names/random  200 {"name":"Ada"}
 *   POST /names         body: a name (1-40 letters, spaces, '-'); 201, or 400 naming why
 * It listens on 127.0.0.1:$PORT and is built on shoal's HTTP engine (src/http), but it is an
 * ordinary program: shoal only starts it, checks /health and routes to it. */
#include "core/core.h"
#include "http/http.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* PORT as a number from 1 to 65535, or 0. */
static uint16_t port_of(const char *s)
{
    char *end;
    unsigned long v = s && *s ? strtoul(s, &end, 10) : 0;

    return v && v <= 65535 && *end == '\0' ? (uint16_t)v : 0;
}

#define NAME_MAX_LEN 40

struct names {
    sqlite3 *db;
    struct http_server *srv;
    uv_signal_t sigterm, sigint;
};

struct post {
    struct names *n;
    struct http_exchange *ex;
    char name[NAME_MAX_LEN + 1];
    size_t len;
    bool too_long;
};

static void respond_json(struct http_exchange *ex, int status, const struct buf *b)
{
    if (b->err)
        http_exchange_respond(ex, 500, SLICE("text/plain"), SLICE("out of memory\n"));
    else
        http_exchange_respond(ex, status, SLICE("application/json"), buf_slice(b));
}

static void list(struct names *n, struct http_exchange *ex, bool one)
{
    const char *sql = one ? "SELECT name FROM names ORDER BY random() LIMIT 1"
                          : "SELECT name FROM names ORDER BY name";
    struct buf b = BUF_INIT(64 * 1024);
    sqlite3_stmt *st;
    int rows = 0;

    if (sqlite3_prepare_v2(n->db, sql, -1, &st, NULL) != SQLITE_OK) {
        http_exchange_respond(ex, 500, SLICE("text/plain"), SLICE("database error\n"));
        return;
    }
    buf_appends(&b, one ? SLICE("{\"name\":") : SLICE("["));
    while (sqlite3_step(st) == SQLITE_ROW) {
        buf_appends(&b, rows++ ? SLICE(",\"") : SLICE("\""));
        buf_append_json_str(&b, slice_from_cstr((const char *)sqlite3_column_text(st, 0)));
        buf_appendc(&b, '"');
    }
    sqlite3_finalize(st);
    if (one && rows == 0)
        buf_appends(&b, SLICE("null"));
    buf_appends(&b, one ? SLICE("}\n") : SLICE("]\n"));
    respond_json(ex, 200, &b);
    buf_release(&b);
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' ' || c == '-'))
            return false;
    }
    return true;
}

static void post_body(struct http_exchange *ex, struct slice chunk, void *data)
{
    struct post *p = data;

    (void)ex;
    if (p->len + chunk.len > NAME_MAX_LEN) {
        p->too_long = true;
        return;
    }
    memcpy(p->name + p->len, chunk.ptr, chunk.len);
    p->len += chunk.len;
}

static void post_end(struct http_exchange *ex, void *data)
{
    struct post *p = data;
    sqlite3_stmt *st;
    int rc;

    while (p->len && (p->name[p->len - 1] == '\n' || p->name[p->len - 1] == '\r'))
        p->len--;
    if (p->too_long || !valid_name(p->name, p->len)) {
        http_exchange_respond(ex, 400, SLICE("application/json"),
                              SLICE("{\"error\":\"body: a name of 1 to 40 letters, spaces or "
                                    "'-'\"}\n"));
        return;
    }
    if (sqlite3_prepare_v2(p->n->db, "INSERT OR IGNORE INTO names(name) VALUES (?)", -1, &st,
                           NULL) != SQLITE_OK) {
        http_exchange_respond(ex, 500, SLICE("text/plain"), SLICE("database error\n"));
        return;
    }
    sqlite3_bind_text(st, 1, p->name, (int)p->len, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        http_exchange_respond(ex, 500, SLICE("text/plain"), SLICE("database error\n"));
    else
        http_exchange_respond(ex, 201, SLICE("application/json"), SLICE("{\"ok\":true}\n"));
}

static const struct http_exchange_handlers post_handlers = {
    .on_body = post_body,
    .on_body_end = post_end,
};

static void on_request(struct http_exchange *ex, void *data)
{
    struct names *n = data;
    const struct http_head *h = http_exchange_head(ex);
    struct slice path, query = slice_split(http_head_target(h), '?', &path);
    struct post *p;

    (void)query;
    if (h->method == HTTP_M_GET && slice_eq(path, SLICE("/health"))) {
        http_exchange_respond(ex, 200, SLICE("application/json"), SLICE("{\"status\":\"ok\"}\n"));
    } else if (h->method == HTTP_M_GET && slice_eq(path, SLICE("/names"))) {
        list(n, ex, false);
    } else if (h->method == HTTP_M_GET && slice_eq(path, SLICE("/names/random"))) {
        list(n, ex, true);
    } else if (h->method == HTTP_M_POST && slice_eq(path, SLICE("/names"))) {
        p = arena_alloc(http_exchange_arena(ex), sizeof(*p));
        if (!p) {
            http_exchange_abort(ex);
            return;
        }
        memset(p, 0, sizeof(*p));
        p->n = n;
        p->ex = ex;
        http_exchange_set_handlers(ex, &post_handlers, p);
        http_exchange_resume(ex);
    } else {
        http_exchange_respond(ex, 404, SLICE("application/json"),
                              SLICE("{\"error\":\"no such resource (try GET /names)\"}\n"));
    }
}

/* The schema and the seed rows, once. SQLITE_BUSY when another process holds the file. */
static int setup_db(sqlite3 *db, const char *path)
{
    static const char *const seed[] = {"Ada", "Grace", "Barbara", "Margaret", "Linus"};
    char *err = NULL, sql[128];
    int rc = sqlite3_exec(db,
                          "PRAGMA journal_mode=WAL;"
                          "CREATE TABLE IF NOT EXISTS names(name TEXT PRIMARY KEY);",
                          NULL, NULL, &err);

    for (size_t i = 0; rc == SQLITE_OK && i < SH_ARRAY_LEN(seed); i++) {
        snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO names(name) VALUES ('%s')", seed[i]);
        rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
        fprintf(stderr, "names: %s: %s\n", path, err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return rc;
}

/* Both replicas share one file: the first start of two at once may find it locked while the
 * other switches it to WAL (the busy handler does not cover that), so the setup is tried
 * again for a few seconds. */
static int open_db(struct names *n, const char *path)
{
    int rc = SQLITE_BUSY;

    if (sqlite3_open(path, &n->db) != SQLITE_OK) {
        fprintf(stderr, "names: %s: %s\n", path, sqlite3_errmsg(n->db));
        sqlite3_close(n->db);
        n->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(n->db, 2000);
    for (int i = 0; i < 100 && (rc == SQLITE_BUSY || rc == SQLITE_LOCKED); i++) {
        if (i)
            usleep(20000);
        rc = setup_db(n->db, path);
    }
    if (rc == SQLITE_OK)
        return 0;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        fprintf(stderr, "names: %s: still locked after 2 s\n", path);
    sqlite3_close(n->db);
    n->db = NULL;
    return -1;
}

static void stopped(void *data)
{
    struct names *n = data;

    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    http_server_free(n->srv); /* closes its handles: the loop runs until they are closed */
    n->srv = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct names *n = s->data;

    (void)signum;
    uv_signal_stop(&n->sigterm);
    uv_signal_stop(&n->sigint);
    http_server_shutdown(n->srv, 5000, stopped, n);
}

int main(void)
{
    const char *port = getenv("PORT"), *db = getenv("NAMES_DB");
    struct names n = {0};
    struct sh_diag d = {{0}, {0}};
    uv_loop_t loop;
    int rc;

    if (!port_of(port)) {
        fprintf(stderr, "names: PORT must be set to a port number (shoal sets it)\n");
        return 2;
    }
    if (open_db(&n, db && *db ? db : "names.db") < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    rc = http_server_new(&loop,
                         &(struct http_server_config){.port = port_of(port),
                                                      .on_request = on_request, .data = &n},
                         &n.srv, &d);
    if (rc < 0) {
        fprintf(stderr, "names: cannot listen on 127.0.0.1:%s: %s\n", port, d.what);
        sqlite3_close(n.db);
        return 1;
    }
    uv_signal_init(&loop, &n.sigterm);
    uv_signal_init(&loop, &n.sigint);
    n.sigterm.data = n.sigint.data = &n;
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    printf("names: listening on 127.0.0.1:%s, database %s\n", port, db && *db ? db : "names.db");
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sqlite3_close(n.db);
    return 0;
}
