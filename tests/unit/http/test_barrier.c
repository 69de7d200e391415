/* SPDX-License-Identifier: MIT */
/* test_barrier.c: a server's http_barrier (the control plane's group commit) holds every
 * answer until sync ran. The handler marks the fake store unsynced, as a write would, and
 * answers; sync() then looks at the raw client socket: no byte of that answer may be there
 * yet. Covers a small answer (the flusher), a 1 MiB answer (the direct write, then the
 * refills from write_cb), an answer sent from a timer, and a pipelined answer behind a large
 * one. Without the barrier sync never runs and every test fails; without the direct path's
 * check the large and timer cases fail. Not covered: the check in http__wq_flush for bytes
 * appended while a uv_write is in flight, which only matters when the append and that write's
 * completion fall in the same poll phase (the flusher syncs first otherwise). */
#include "test_util.h"

#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BIG = 1024 * 1024 };
static char big_body[BIG];

struct fixture {
    uv_loop_t loop;
    uv_timer_t guard, reader, later;
    struct http_server *srv;
    int fd;        /* the raw client socket */
    bool unsynced; /* the fake store: a write waits for its sync */
    int syncs;
    size_t read;            /* bytes the client has read */
    size_t visible_at_sync; /* bytes read or readable at the client when sync ran */
    size_t expect;          /* stop once this many bytes were read... */
    char tail[13];          /* ...or when the stream ends with "small answer" */
    int requests;
    struct http_exchange *parked;
    bool guard_fired;
};

static bool pending(void *data)
{
    return ((struct fixture *)data)->unsynced;
}

static void sync_cb(void *data)
{
    struct fixture *f = data;
    int queued = 0;

    assert_int_equal(ioctl(f->fd, FIONREAD, &queued), 0);
    f->visible_at_sync = f->read + (size_t)queued;
    f->syncs++;
    f->unsynced = false;
}

enum mode { SMALL, LARGE, FROM_TIMER, PIPELINED };
static enum mode mode;

/* Answers as a handler that wrote to the store would: unsynced first, then the answer. */
static void answer_after_write(struct fixture *f, struct http_exchange *ex, bool large)
{
    f->unsynced = true;
    http_exchange_respond(ex, 200, SLICE("text/plain"),
                          large ? (struct slice){big_body, BIG} : SLICE("small answer"));
}

static void later_fire(uv_timer_t *t)
{
    struct fixture *f = t->data;

    answer_after_write(f, f->parked, true);
    f->parked = NULL;
}

static void parked_abort(struct http_exchange *ex, int err, void *data)
{
    (void)ex;
    (void)err;
    ((struct fixture *)data)->parked = NULL;
}

static void on_request(struct http_exchange *ex, void *data)
{
    struct fixture *f = data;
    int n = ++f->requests;

    switch (mode) {
    case SMALL:
    case LARGE:
        answer_after_write(f, ex, mode == LARGE);
        return;
    case FROM_TIMER:
        f->parked = ex;
        http_exchange_set_handlers(ex, &(struct http_exchange_handlers){.on_abort = parked_abort},
                                   f);
        uv_timer_start(&f->later, later_fire, 10, 0);
        return;
    case PIPELINED:
        if (n == 1) /* a read: no store write, so it may leave at once */
            http_exchange_respond(ex, 200, SLICE("text/plain"), (struct slice){big_body, BIG});
        else
            answer_after_write(f, ex, false);
        return;
    }
}

static void reader_fire(uv_timer_t *t)
{
    struct fixture *f = t->data;
    char buf[65536];

    for (;;) {
        ssize_t n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0) break;
        f->read += (size_t)n;
        if (n >= 12) memcpy(f->tail, buf + n - 12, 12);
    }
    if (f->read >= f->expect || strcmp(f->tail, "small answer") == 0) uv_stop(&f->loop);
}

static void guard_fire(uv_timer_t *t)
{
    struct fixture *f = t->data;

    f->guard_fired = true;
    uv_stop(&f->loop);
}

static struct fixture *fixture_new(void)
{
    struct fixture *f = sh_calloc(1, sizeof(*f));
    struct sockaddr_in sin = {.sin_family = AF_INET};

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct http_server_config cfg = {
        .host = "127.0.0.1",
        .on_request = on_request,
        .data = f,
        .barrier = {.pending = pending, .sync = sync_cb, .data = f},
    };
    assert_int_equal(http_server_new(&f->loop, &cfg, &f->srv, NULL), 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    uv_timer_start(&f->guard, guard_fire, 5000, 0);
    uv_timer_init(&f->loop, &f->reader);
    f->reader.data = f;
    uv_timer_start(&f->reader, reader_fire, 1, 1);
    uv_timer_init(&f->loop, &f->later);
    f->later.data = f;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->fd >= 0);
    /* a small receive buffer, so a 1 MiB answer needs many writes */
    int small = 16384;
    assert_int_equal(setsockopt(f->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    sin.sin_port = htons(http_server_port(f->srv));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(f->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return f;
}

static void send_all(struct fixture *f, const char *req)
{
    size_t n = strlen(req);

    assert_int_equal(send(f->fd, req, n, 0), (ssize_t)n);
}

static void run(struct fixture *f, size_t expect)
{
    f->expect = expect;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(f->guard_fired);
}

static void fixture_free(struct fixture *f)
{
    close(f->fd);
    if (f->parked) http_exchange_abort(f->parked);
    http_server_free(f->srv);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_close((uv_handle_t *)&f->reader, NULL);
    uv_close((uv_handle_t *)&f->later, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    sh_free(f);
}

static const char get[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/* One GET answered in mode m, read to its end: exactly one sync, and nothing at the client
 * when it ran. The caller checks what is particular to m, then frees f. */
static struct fixture *one_answer(enum mode m)
{
    struct fixture *f = fixture_new();

    mode = m;
    send_all(f, get);
    run(f, BIG + 60);
    assert_int_equal(f->syncs, 1);
    assert_int_equal(f->visible_at_sync, 0);
    assert_false(f->unsynced);
    return f;
}

static void test_barrier__small_answer_waits_for_sync(void **state)
{
    struct fixture *f = one_answer(SMALL);
    (void)state;

    assert_string_equal(f->tail, "small answer");
    fixture_free(f);
}

static void test_barrier__large_answer_waits_for_sync(void **state)
{
    struct fixture *f = one_answer(LARGE);
    (void)state;

    assert_true(f->read >= BIG);
    fixture_free(f);
}

static void test_barrier__answer_from_a_timer_waits_for_sync(void **state)
{
    struct fixture *f = one_answer(FROM_TIMER);
    (void)state;

    assert_true(f->read >= BIG);
    fixture_free(f);
}

/* Request 2 is answered after a store write, behind the 1 MiB answer to request 1 (a read,
 * which may leave at once): at the sync, answer 1 may be at the client, answer 2 not. */
static void test_barrier__pipelined_answer_behind_a_large_one_waits(void **state)
{
    struct fixture *f = fixture_new();
    char two[sizeof(get) * 2];
    (void)state;

    mode = PIPELINED;
    snprintf(two, sizeof(two), "%s%s", get, get);
    send_all(f, two);
    run(f, SIZE_MAX);
    assert_int_equal(f->requests, 2);
    assert_int_equal(f->syncs, 1);
    assert_string_equal(f->tail, "small answer");
    /* at the sync, answer 2 (at least its 12-byte body) was not at the client yet */
    assert_true(f->visible_at_sync > 0);
    assert_true(f->visible_at_sync + 12 <= f->read);
    fixture_free(f);
}

int main(void)
{
    memset(big_body, 'b', sizeof(big_body));
    const struct CMUnitTest tests[] = {
        SH_TEST(test_barrier__small_answer_waits_for_sync),
        SH_TEST(test_barrier__large_answer_waits_for_sync),
        SH_TEST(test_barrier__answer_from_a_timer_waits_for_sync),
        SH_TEST(test_barrier__pipelined_answer_behind_a_large_one_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
