/* SPDX-License-Identifier: MIT */
/* registry_fixture.h: one loop, a store in a fresh data dir, an HTTP server on 127.0.0.1
 * whose answer the test sets (the target of HTTP and TCP checks), an HTTP client and a
 * registry, for tests/unit/registry/test_*.c. The teardown checks for leaked blocks, then
 * removes the data dir. Time is real: tests use intervals of 10..200 ms. */
#ifndef SHOAL_TEST_REGISTRY_FIXTURE_H
#define SHOAL_TEST_REGISTRY_FIXTURE_H

#include "store/store_fixture.h"

#include "http/http.h"
#include "registry/registry.h"

#include <string.h>

struct fx {
    uv_loop_t loop;
    struct store *st;
    struct http_server *srv;
    struct http_client *cl;
    struct registry *reg;
    struct registry_config cfg;
    int answer; /* status the server answers with */
    int hits;   /* requests the server saw */
    uint16_t port;
};

static inline void fx_on_request(struct http_exchange *ex, void *data)
{
    struct fx *f = data;

    f->hits++;
    http_exchange_respond(ex, f->answer, SLICE("text/plain"), SLICE("ok"));
}

static inline void fx_open_store(struct fx *f)
{
    struct sh_diag d = {{0}, {0}};
    int rc = store_open(&(struct store_config){.data_dir = dir}, &f->st, &d);

    if (rc != 0) print_error("store_open: %s: %s\n", sh_errname(rc), d.what);
    assert_int_equal(rc, 0);
}

static inline void fx_open_registry(struct fx *f)
{
    assert_int_equal(registry_new(&f->cfg, &f->loop, f->st, f->cl, &f->reg), 0);
}

static inline struct fx *fx_new(void)
{
    struct fx *f = sh_calloc(1, sizeof(*f));
    struct http_server_config sc = {.host = "127.0.0.1", .on_request = fx_on_request};

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->answer = 200;
    f->cfg = (struct registry_config){.min_interval_ms = 10, .min_deregister_after_ms = 10};
    sc.data = f;
    assert_int_equal(http_server_new(&f->loop, &sc, &f->srv, NULL), 0);
    f->port = http_server_port(f->srv);
    assert_int_equal(http_client_new(&f->loop, NULL, &f->cl), 0);
    fx_open_store(f);
    fx_open_registry(f);
    return f;
}

/* Runs the loop for about ms milliseconds. */
static inline void fx_stop_cb(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static inline void fx_run(struct fx *f, uint64_t ms)
{
    uv_timer_t t;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, fx_stop_cb, ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Runs the loop until expr holds, for at most max_ms; fails the test otherwise. */
#define FX_RUN_UNTIL(f, expr, max_ms)                                                              \
    do {                                                                                           \
        uint64_t fx_end_ = uv_now(&(f)->loop) + (max_ms);                                          \
        while (!(expr) && uv_now(&(f)->loop) < fx_end_)                                            \
            fx_run((f), 5);                                                                        \
        if (!(expr)) fail_msg("timed out waiting for: %s", #expr);                                 \
    } while (0)

/* Frees the registry and reopens it (and the store) on the same data dir: a restart. */
static inline void fx_restart(struct fx *f)
{
    registry_free(f->reg);
    f->reg = NULL;
    store_close(f->st);
    f->st = NULL;
    fx_run(f, 1);
    fx_open_store(f);
    fx_open_registry(f);
}

static inline void fx_free(struct fx *f)
{
    registry_free(f->reg);
    http_client_free(f->cl);
    http_server_free(f->srv);
    store_close(f->st);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    sh_free(f);
}

/* The status of one instance (0 when absent). */
static inline enum registry_health fx_status(struct fx *f, const char *id)
{
    struct registry_result res;
    enum registry_health h = 0;

    if (registry_instance_get(f->reg, id, &res) == 0) h = res.instances[0].status;
    registry_result_release(&res);
    return h;
}

/* A minimal valid instance. */
static inline struct registry_instance fx_inst(const char *id, const char *service, uint32_t port)
{
    return (struct registry_instance){
        .id = id, .service = service, .address = "127.0.0.1", .port = port};
}

#define FX_INST(id_, service_, port_)                                                              \
    (&(struct registry_instance){                                                                  \
        .id = (id_), .service = (service_), .address = "127.0.0.1", .port = (port_)})

#define REG_TEST(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

#endif
