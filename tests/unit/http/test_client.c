/* SPDX-License-Identifier: MIT */
/* test_client.c: the pooled client against an in-process server on 127.0.0.1, one loop.
 * Each test builds its fixture, runs the loop until the requests end (bounded by a guard
 * timer) and tears everything down; the teardown fails the test on a leaked block. */
#include "test_util.h"

#include "http/http.h"

#include <arpa/inet.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum mode { M_OK = 0, M_NEVER, M_CLOSE_SECOND, M_DELAY, M_ECHO };

struct fixture {
    uv_loop_t loop;
    uv_timer_t guard;
    struct http_server *srv;
    struct http_client *cl;
    struct sockaddr_storage addr;
    enum mode mode;
    int seen;          /* requests the server saw */
    char peers[8][64]; /* for M_CLOSE_SECOND: peers that already got an answer */
    int npeers;
    struct http_exchange *held; /* M_NEVER */
    bool guard_fired;
    uint32_t max_active;
};

struct result {
    struct fixture *f;
    int rc, status;
    bool done;
    struct buf body;
};

/* ---------------- server side ---------------- */
struct delayed {
    uv_timer_t t;
    struct http_exchange *ex;
    struct fixture *f;
};

static void delayed_closed(uv_handle_t *h)
{
    sh_free(h->data);
}

static void delayed_fire(uv_timer_t *t)
{
    struct delayed *d = t->data;

    http_exchange_respond(d->ex, 200, SLICE("text/plain"), SLICE("late"));
    uv_close((uv_handle_t *)t, delayed_closed);
}

static void never_abort(struct http_exchange *ex, int err, void *data)
{
    struct fixture *f = data;

    (void)ex;
    (void)err;
    f->held = NULL;
}

static void echo_body(struct http_exchange *ex, struct slice chunk, void *data)
{
    (void)data;
    http_exchange_write(ex, chunk.ptr, chunk.len);
}

static void echo_end(struct http_exchange *ex, void *data)
{
    (void)data;
    http_exchange_finish(ex);
}

static void on_request(struct http_exchange *ex, void *data)
{
    struct fixture *f = data;
    struct http_server_stats st;

    f->seen++;
    http_server_stats(f->srv, &st);
    if (st.active_conns > f->max_active) f->max_active = (uint32_t)st.active_conns;
    switch (f->mode) {
    case M_OK: {
        const struct http_head *h = http_exchange_head(ex);
        http_exchange_respond(ex, 200, SLICE("text/plain"), http_head_target(h));
        return;
    }
    case M_NEVER:
        f->held = ex;
        http_exchange_set_handlers(ex, &(struct http_exchange_handlers){.on_abort = never_abort},
                                   f);
        return;
    case M_CLOSE_SECOND: {
        const char *peer = http_exchange_peer(ex);
        for (int i = 0; i < f->npeers; i++) {
            if (strcmp(f->peers[i], peer) == 0) {
                http_exchange_abort(ex); /* a reused connection dies before any answer */
                return;
            }
        }
        if (f->npeers < 8) snprintf(f->peers[f->npeers++], sizeof(f->peers[0]), "%s", peer);
        http_exchange_respond(ex, 200, SLICE("text/plain"), SLICE("first"));
        return;
    }
    case M_DELAY: {
        struct delayed *d = sh_malloc(sizeof(*d));
        assert_non_null(d);
        d->ex = ex;
        d->f = f;
        uv_timer_init(&f->loop, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, delayed_fire, 20, 0);
        return;
    }
    case M_ECHO: {
        struct http_response_head rh = {.status = 200, .content_length = -1};
        http_exchange_set_handlers(
            ex, &(struct http_exchange_handlers){.on_body = echo_body, .on_body_end = echo_end}, f);
        http_exchange_start(ex, &rh);
        http_exchange_resume(ex);
        return;
    }
    }
}

static void guard_fire(uv_timer_t *t)
{
    struct fixture *f = t->data;

    f->guard_fired = true;
    uv_stop(&f->loop);
}

static struct fixture *fixture_new(enum mode mode, const struct http_server_config *scfg,
                                   const struct http_client_config *ccfg)
{
    struct fixture *f = sh_calloc(1, sizeof(*f));
    struct http_server_config cfg = scfg ? *scfg : (struct http_server_config){0};
    char addr[64];

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->mode = mode;
    cfg.host = "127.0.0.1";
    cfg.on_request = on_request;
    cfg.data = f;
    assert_int_equal(http_server_new(&f->loop, &cfg, &f->srv, NULL), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_server_port(f->srv));
    assert_int_equal(http_parse_addr(addr, &f->addr, NULL), 0);
    assert_int_equal(http_client_new(&f->loop, ccfg, &f->cl), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    uv_timer_start(&f->guard, guard_fire, TEST_WAIT_MS, 0);
    uv_unref((uv_handle_t *)&f->guard);
    return f;
}

static void fixture_free(struct fixture *f)
{
    if (f->held) http_exchange_abort(f->held);
    http_client_free(f->cl);
    http_server_free(f->srv);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_false(f->guard_fired);
    sh_free(f);
}

/* ---------------- client side ---------------- */
static void r_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct result *r = data;

    (void)cr;
    r->status = h->status;
}

static void r_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct result *r = data;

    (void)cr;
    assert_int_equal(buf_appends(&r->body, chunk), 0);
}

static void r_done(struct http_creq *cr, int rc, void *data)
{
    struct result *r = data;

    (void)cr;
    r->rc = rc;
    r->done = true;
}

static const struct http_creq_handlers handlers = {
    .on_head = r_head, .on_body = r_body, .on_done = r_done};

static struct http_creq *start(struct fixture *f, struct result *r, const char *target,
                               uint32_t response_timeout_ms)
{
    struct http_creq *cr = NULL;
    struct http_request_desc d = {
        .addr = (struct sockaddr *)&f->addr,
        .method = SLICE("GET"),
        .target = slice_from_cstr(target),
        .host = SLICE("test"),
        .response_timeout_ms = response_timeout_ms,
    };

    memset(r, 0, sizeof(*r));
    r->f = f;
    assert_int_equal(http_client_request(f->cl, &d, &handlers, r, &cr), 0);
    assert_false(r->done); /* callbacks never run from inside the call */
    return cr;
}

static void run_until(struct fixture *f, struct result *rs, size_t n)
{
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += rs[i].done;
        if (done == n || f->guard_fired) break;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_false(f->guard_fired);
}

static void run_for(struct fixture *f, uint64_t ms)
{
    uint64_t end = uv_now(&f->loop) + ms;

    while (uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_sleep(5);
        uv_update_time(&f->loop);
    }
}

/* Runs the loop until expr holds, for at most TEST_WAIT_MS; fails the test otherwise. */
#define RUN_UNTIL(f, expr)                                                                         \
    do {                                                                                           \
        uint64_t end_ = uv_now(&(f)->loop) + TEST_WAIT_MS;                                         \
        while (!(expr) && uv_now(&(f)->loop) < end_)                                               \
            run_for((f), 5);                                                                       \
        if (!(expr)) fail_msg("timed out waiting for: %s", #expr);                                 \
    } while (0)

/* ---------------- tests ---------------- */
static void test_client__reuses_connection_for_sequential_requests(void **state)
{
    struct fixture *f = fixture_new(M_OK, NULL, NULL);
    struct http_client_stats st;
    struct result r;

    (void)state;
    for (int i = 0; i < 5; i++) {
        start(f, &r, "/seq", 0);
        run_until(f, &r, 1);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body.data, "/seq", 4);
        buf_release(&r.body);
    }
    http_client_stats(f->cl, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reuses, 4);
    assert_int_equal(st.idle_conns, 1);
    fixture_free(f);
}

static void test_client__limits_connections_per_host(void **state)
{
    struct http_client_config cc = {.max_conns_per_host = 2};
    struct fixture *f = fixture_new(M_DELAY, NULL, &cc);
    struct result r[6];
    struct http_client_stats st;

    (void)state;
    for (int i = 0; i < 6; i++)
        start(f, &r[i], "/limited", 0);
    run_until(f, r, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].rc, 0);
        assert_int_equal(r[i].status, 200);
        buf_release(&r[i].body);
    }
    http_client_stats(f->cl, &st);
    assert_int_equal(st.connects, 2);
    assert_true(f->max_active <= 2);
    fixture_free(f);
}

static void test_client__idle_connection_closed_by_peer_is_not_reused(void **state)
{
    struct http_server_config sc = {.idle_timeout_ms = 50};
    struct fixture *f = fixture_new(M_OK, &sc, NULL);
    struct http_client_stats st;
    struct result r;

    (void)state;
    start(f, &r, "/a", 0);
    run_until(f, &r, 1);
    assert_int_equal(r.rc, 0);
    buf_release(&r.body);
    /* the server closes the idle connection; the client must notice */
    RUN_UNTIL(f, (http_client_stats(f->cl, &st), st.idle_closed_by_peer == 1));
    assert_int_equal(st.idle_conns, 0);
    start(f, &r, "/b", 0);
    run_until(f, &r, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    buf_release(&r.body);
    http_client_stats(f->cl, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.retries, 0);
    fixture_free(f);
}

static void test_client__retries_once_when_a_reused_connection_dies(void **state)
{
    struct fixture *f = fixture_new(M_CLOSE_SECOND, NULL, NULL);
    struct http_client_stats st;
    struct result r;

    (void)state;
    start(f, &r, "/1", 0);
    run_until(f, &r, 1);
    assert_int_equal(r.rc, 0);
    buf_release(&r.body);
    start(f, &r, "/2", 0); /* goes out on the pooled connection, which the server drops */
    run_until(f, &r, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body.data, "first", 5);
    buf_release(&r.body);
    http_client_stats(f->cl, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.reuses, 1);
    assert_int_equal(st.connects, 2);
    fixture_free(f);
}

static void test_client__response_timeout(void **state)
{
    struct fixture *f = fixture_new(M_NEVER, NULL, NULL);
    struct result r;
    uint64_t t0;

    (void)state;
    t0 = uv_now(&f->loop);
    start(f, &r, "/never", 100);
    run_until(f, &r, 1);
    assert_int_equal(r.rc, SH_ETIMEDOUT);
    assert_true(uv_now(&f->loop) - t0 >= 90); /* SH_ETIMEDOUT: the 100 ms timeout, not before */
    RUN_UNTIL(f, f->held == NULL); /* the server sees the close and aborts the held exchange */
    fixture_free(f);
}

static void test_client__connection_refused(void **state)
{
    struct fixture *f = fixture_new(M_OK, NULL, NULL);
    struct result r;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof(sin);

    (void)state;
    /* a port that was just free: bound, never listened on */
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    memcpy(&f->addr, &sin, sizeof(sin));
    start(f, &r, "/", 0);
    run_until(f, &r, 1);
    close(fd);
    assert_int_equal(r.rc, SH_ECONNREFUSED);
    fixture_free(f);
}

static void test_client__cancel_leaves_nothing_behind(void **state)
{
    struct fixture *f = fixture_new(M_NEVER, NULL, NULL);
    struct result r;
    struct http_creq *cr;
    struct http_client_stats st;

    (void)state;
    cr = start(f, &r, "/cancel", 0);
    RUN_UNTIL(f, f->held != NULL); /* the server holds the request */
    http_creq_cancel(cr);
    RUN_UNTIL(f, f->held == NULL); /* the server saw the connection go */
    assert_false(r.done);          /* and no callback after cancel */
    http_client_stats(f->cl, &st);
    assert_int_equal(st.open_conns, 0);
    fixture_free(f);
}

static void test_client__chunked_body_round_trip(void **state)
{
    struct fixture *f = fixture_new(M_ECHO, NULL, NULL);
    struct result r = {0};
    struct http_creq *cr = NULL;
    struct http_request_desc d = {
        .addr = (struct sockaddr *)&f->addr,
        .method = SLICE("POST"),
        .target = SLICE("/echo"),
        .host = SLICE("test"),
        .content_length = -1,
    };
    char chunk[1000];

    (void)state;
    r.f = f;
    assert_int_equal(http_client_request(f->cl, &d, &handlers, &r, &cr), 0);
    for (int i = 0; i < 100; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        assert_true(http_creq_write(cr, chunk, sizeof(chunk)) >= 0);
    }
    assert_int_equal(http_creq_finish(cr), 0);
    run_until(f, &r, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.body.len, 100 * sizeof(chunk));
    for (size_t i = 0; i < r.body.len; i++)
        assert_int_equal(r.body.data[i], 'a' + (int)(i / sizeof(chunk)) % 26);
    buf_release(&r.body);
    fixture_free(f);
}

static void test_client__rejects_bad_requests_synchronously(void **state)
{
    struct fixture *f = fixture_new(M_OK, NULL, NULL);
    struct http_creq *cr = (struct http_creq *)1;
    struct result r = {0};
    struct http_out_field bad = {SLICE("X-A"), SLICE("a\r\nInjected: 1")};
    struct http_request_desc d = {
        .addr = (struct sockaddr *)&f->addr,
        .method = SLICE("GET"),
        .target = SLICE("/"),
        .fields = &bad,
        .nfields = 1,
    };

    (void)state;
    assert_int_equal(http_client_request(f->cl, &d, &handlers, &r, &cr), SH_EINVAL);
    assert_null(cr);
    d.nfields = 0;
    d.target = SLICE("/a b");
    assert_int_equal(http_client_request(f->cl, &d, &handlers, &r, &cr), SH_EINVAL);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_client__reuses_connection_for_sequential_requests),
        SH_TEST(test_client__limits_connections_per_host),
        SH_TEST(test_client__idle_connection_closed_by_peer_is_not_reused),
        SH_TEST(test_client__retries_once_when_a_reused_connection_dies),
        SH_TEST(test_client__response_timeout),
        SH_TEST(test_client__connection_refused),
        SH_TEST(test_client__cancel_leaves_nothing_behind),
        SH_TEST(test_client__chunked_body_round_trip),
        SH_TEST(test_client__rejects_bad_requests_synchronously),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
