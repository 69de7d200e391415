/* SPDX-License-Identifier: MIT */
/* test_mtls_client.c: the pooled client over mTLS against an in-process server that requires
 * a client certificate (one loop, 127.0.0.1): the server reads the caller's SPIFFE ID from the
 * certificate; a second request reuses the connection (one handshake); a server that is not
 * the identity expected, and a client certificate from another CA, end the request with
 * SH_EPROTO; callers with different certificates get different pools. */
#include "mtls_certs.h"

#include "http/http.h"
#include "tls/tls.h"

struct fixture {
    uv_loop_t loop;
    struct http_server *srv;
    struct tls_server *ts;
    struct http_client *cl;
    struct sockaddr_storage addr;
};

struct result {
    int rc, status;
    bool done;
    char body[128];
    size_t len;
};

static void on_request(struct http_exchange *ex, void *data)
{
    char id[TLS_ID_MAX];

    (void)data;
    if (http_exchange_peer_id(ex, id, sizeof(id)) != 0) snprintf(id, sizeof(id), "none");
    http_exchange_respond(ex, 200, SLICE("text/plain"), slice_from_cstr(id));
}

static void fixture_init(struct fixture *f)
{
    struct tls_cert_files cf = {p("names", "crt"), p("names", "key")};
    char addr[64];

    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(tls_server_new(&(struct tls_server_config){.certs = &cf,
                                                                .ncerts = 1,
                                                                .min_version = TLS_V1_3,
                                                                .client_ca = p("caA", "crt")},
                                    &f->ts, NULL),
                     0);
    assert_int_equal(http_server_new(&f->loop,
                                     &(struct http_server_config){.host = "127.0.0.1",
                                                                  .on_request = on_request,
                                                                  .tls = f->ts},
                                     &f->srv, NULL),
                     0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_server_port(f->srv));
    assert_int_equal(http_parse_addr(addr, &f->addr, NULL), 0);
    assert_int_equal(http_client_new(&f->loop, NULL, &f->cl), 0);
}

static void fixture_fini(struct fixture *f)
{
    http_client_free(f->cl);
    http_server_free(f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tls_server_free(f->ts);
}

static void r_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    (void)cr;
    ((struct result *)data)->status = h->status;
}

static void r_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct result *r = data;
    size_t n = SH_MIN(chunk.len, sizeof(r->body) - 1 - r->len);

    (void)cr;
    memcpy(r->body + r->len, chunk.ptr, n);
    r->len += n;
    r->body[r->len] = '\0';
}

static void r_done(struct http_creq *cr, int rc, void *data)
{
    struct result *r = data;

    (void)cr;
    r->rc = rc;
    r->done = true;
}

static void call(struct fixture *f, struct tls_client *tcl, const char *expect, struct result *r)
{
    static const struct http_creq_handlers h = {
        .on_head = r_head, .on_body = r_body, .on_done = r_done};
    struct http_request_desc d = {
        .addr = (struct sockaddr *)&f->addr,
        .method = SLICE("GET"),
        .target = SLICE("/"),
        .host = SLICE("names"),
        .total_timeout_ms = TEST_WAIT_MS,
        .tls = tcl,
        .tls_name = "names",
        .tls_expect_id = expect,
    };
    struct http_creq *cr;

    memset(r, 0, sizeof(*r));
    assert_int_equal(http_client_request(f->cl, &d, &h, r, &cr), 0);
    while (!r->done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static struct tls_client *client(const char *base)
{
    struct tls_client *tcl = NULL;

    assert_int_equal(
        tls_client_new(&(struct tls_client_config){.cert = {p(base, "crt"), p(base, "key")},
                                                   .ca = p("caA", "crt")},
                       &tcl, NULL),
        0);
    return tcl;
}

static void test_mtls_client__identity_and_reuse(void **state)
{
    struct fixture f;
    struct tls_client *tcl, *other;
    struct http_client_stats st;
    struct tls_server_stats ss;
    struct result r;

    (void)state;
    fixture_init(&f);
    tcl = client("caller");
    call(&f, tcl, "spiffe://a.test/service/names", &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "spiffe://a.test/service/caller");
    call(&f, tcl, "spiffe://a.test/service/names", &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "spiffe://a.test/service/caller");
    http_client_stats(f.cl, &st);
    assert_int_equal(st.tls_handshakes, 1);
    assert_int_equal(st.reuses, 1);
    /* another caller identity: its own pool and connection */
    other = client("names");
    call(&f, other, "spiffe://a.test/service/names", &r);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.body, "spiffe://a.test/service/names");
    http_client_stats(f.cl, &st);
    assert_int_equal(st.tls_handshakes, 2);
    tls_server_stats(f.ts, &ss);
    assert_int_equal(ss.handshakes, 2);
    fixture_fini(&f);
    tls_client_free(tcl);
    tls_client_free(other);
}

static void test_mtls_client__refusals(void **state)
{
    struct fixture f;
    struct tls_client *tcl, *intruder;
    struct http_client_stats st;
    struct tls_server_stats ss;
    struct result r;

    (void)state;
    fixture_init(&f);
    tcl = client("caller");
    /* the server is not who we expected */
    call(&f, tcl, "spiffe://a.test/service/billing", &r);
    assert_int_equal(r.rc, SH_EPROTO);
    assert_int_equal(r.status, 0);
    /* a client certificate from another CA: the server refuses it */
    intruder = client("intruder");
    call(&f, intruder, "spiffe://a.test/service/names", &r);
    assert_true(r.rc < 0);
    assert_int_equal(r.status, 0);
    http_client_stats(f.cl, &st);
    assert_true(st.tls_failures >= 1);
    for (int i = 0; i < 200; i++) {
        tls_server_stats(f.ts, &ss);
        if (ss.fail_peer >= 1) break;
        uv_run(&f.loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(ss.fail_peer, 1);
    assert_int_equal(ss.handshakes, 0); /* the client gave up before its Finished */
    fixture_fini(&f);
    tls_client_free(tcl);
    tls_client_free(intruder);
    ERR_clear_error();
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_mtls_client__identity_and_reuse),
        T(test_mtls_client__refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
