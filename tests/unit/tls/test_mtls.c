/* SPDX-License-Identifier: MIT */
/* test_mtls.c: mTLS without sockets: a tls_client against a tls_server with client_ca, both
 * over memory; certificates made here (two CAs: trust domains "a.test" and "b.test", leaves
 * with SPIFFE URI SANs). The handshake and data both ways with the peer IDs read on both
 * sides; a server whose identity is not the expected one refused by the client; a client with
 * no certificate, or one from another CA, refused by the server and counted; the SPIFFE name
 * parser as a table. */
#include "mtls_certs.h"

#include "tls/tls.h"

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static struct tls_server *server(void)
{
    struct tls_cert_files f = {p("names", "crt"), p("names", "key")};
    struct tls_server *ts = NULL;
    struct sh_diag d = {0};

    assert_int_equal(tls_server_new(&(struct tls_server_config){.certs = &f,
                                                                .ncerts = 1,
                                                                .min_version = TLS_V1_3,
                                                                .client_ca = p("caA", "crt")},
                                    &ts, &d),
                     0);
    return ts;
}

static struct tls_client *client(const char *base, const char *ca)
{
    struct tls_client *tcl = NULL;
    struct sh_diag d = {0};

    assert_int_equal(
        tls_client_new(&(struct tls_client_config){.cert = {p(base, "crt"), p(base, "key")},
                                                   .ca = p(ca, "crt")},
                       &tcl, &d),
        0);
    return tcl;
}

/* Moves bytes between the two until neither makes progress. The rcs of the last reads. */
static void pump(struct tls_conn *c, struct tls_conn *s, int *crc, int *src, char *sbuf,
                 size_t *sgot, char *cbuf, size_t *cgot)
{
    char buf[32768];
    size_t n;

    *sgot = *cgot = 0;
    for (int round = 0; round < 20; round++) {
        bool moved = false;
        *crc = tls_conn_read(c, cbuf + *cgot, 256 - *cgot, &n);
        if (*crc == 0) *cgot += n;
        while ((n = tls_conn_take(c, buf, sizeof(buf))) > 0) {
            assert_int_equal(tls_conn_feed(s, buf, n), 0);
            moved = true;
        }
        *src = tls_conn_read(s, sbuf + *sgot, 256 - *sgot, &n);
        if (*src == 0) *sgot += n;
        while ((n = tls_conn_take(s, buf, sizeof(buf))) > 0) {
            assert_int_equal(tls_conn_feed(c, buf, n), 0);
            moved = true;
        }
        if (!moved && *crc != 0 && *src != 0) break;
    }
}

static void test_mtls__handshake_ids_data(void **state)
{
    struct tls_server *ts = server();
    struct tls_client *tcl = client("caller", "caA");
    struct tls_conn *c, *s;
    struct tls_server_stats st;
    char sbuf[256], cbuf[256], id[TLS_ID_MAX];
    size_t sgot, cgot;
    int crc, src;

    (void)state;
    assert_int_equal(tls_client_conn_new(tcl, "names", "spiffe://a.test/service/names", &c), 0);
    assert_int_equal(tls_conn_new(ts, &s), 0);
    pump(c, s, &crc, &src, sbuf, &sgot, cbuf, &cgot);
    assert_true(tls_conn_is_established(c));
    assert_true(tls_conn_is_established(s));
    assert_int_equal(tls_conn_write(c, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    pump(c, s, &crc, &src, sbuf, &sgot, cbuf, &cgot);
    assert_int_equal(sgot, 18);
    assert_memory_equal(sbuf, "GET / HTTP/1.1\r\n\r\n", 18);
    assert_int_equal(tls_conn_write(s, "HTTP/1.1 200 OK\r\n", 17), 0);
    pump(c, s, &crc, &src, sbuf, &sgot, cbuf, &cgot);
    assert_int_equal(cgot, 17);
    /* each side knows the other's identity */
    assert_int_equal(tls_conn_peer_id(s, id, sizeof(id)), 0);
    assert_string_equal(id, "spiffe://a.test/service/caller");
    assert_int_equal(tls_conn_peer_id(c, id, sizeof(id)), 0);
    assert_string_equal(id, "spiffe://a.test/service/names");
    assert_int_equal(tls_conn_peer_id(s, id, 8), SH_ELIMIT);
    tls_server_stats(ts, &st);
    assert_int_equal(st.handshakes, 1);
    assert_int_equal(st.fail_peer, 0);
    tls_conn_free(c);
    tls_conn_free(s);
    tls_client_free(tcl);
    tls_server_free(ts);
}

static void test_mtls__wrong_server_identity(void **state)
{
    struct tls_server *ts = server();
    struct tls_client *tcl = client("caller", "caA");
    struct tls_conn *c, *s;
    char sbuf[256], cbuf[256];
    size_t sgot, cgot;
    int crc, src;

    (void)state;
    /* the server is "names"; we expected "billing" */
    assert_int_equal(tls_client_conn_new(tcl, NULL, "spiffe://a.test/service/billing", &c), 0);
    assert_int_equal(tls_conn_new(ts, &s), 0);
    pump(c, s, &crc, &src, sbuf, &sgot, cbuf, &cgot);
    assert_int_equal(crc, SH_EPROTO);
    assert_false(tls_conn_is_established(c));
    assert_int_equal(tls_conn_failure(c), TLS_FAIL_PEER);
    assert_non_null(strstr(tls_conn_reason(c), "not the identity expected"));
    tls_conn_free(c);
    tls_conn_free(s);
    tls_client_free(tcl);
    tls_server_free(ts);
}

static void test_mtls__server_refuses_untrusted_and_anonymous(void **state)
{
    struct tls_server *ts = server();
    struct tls_client *tcl = client("intruder", "caA"); /* trusts A, presents a B leaf */
    struct tls_conn *c, *s;
    struct tls_server_stats st;
    char sbuf[256], cbuf[256], id[TLS_ID_MAX];
    size_t sgot, cgot;
    int crc, src;

    (void)state;
    assert_int_equal(tls_client_conn_new(tcl, NULL, "spiffe://a.test/service/names", &c), 0);
    assert_int_equal(tls_conn_new(ts, &s), 0);
    pump(c, s, &crc, &src, sbuf, &sgot, cbuf, &cgot);
    assert_int_equal(src, SH_EPROTO);
    assert_int_equal(tls_conn_failure(s), TLS_FAIL_PEER);
    assert_int_not_equal(tls_conn_peer_id(s, id, sizeof(id)), 0);
    /* the client hears the refusal when it reads (TLS 1.3: after its Finished) */
    assert_int_equal(crc, SH_EPROTO);
    assert_int_equal(tls_conn_failure(c), TLS_FAIL_PEER);
    tls_conn_free(c);
    tls_conn_free(s);
    tls_client_free(tcl);

    /* an ordinary TLS client without a certificate */
    {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL *ssl = SSL_new(ctx);
        BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
        char buf[32768];
        int n, rc = TLS_AGAIN;
        size_t got;
        BIO_set_mem_eof_return(rb, -1);
        SSL_set_bio(ssl, rb, wb);
        SSL_set_connect_state(ssl);
        assert_int_equal(tls_conn_new(ts, &s), 0);
        for (int round = 0; round < 10 && rc != SH_EPROTO; round++) {
            (void)SSL_do_handshake(ssl);
            (void)SSL_read(ssl, buf, 1);
            while ((n = BIO_read(wb, buf, sizeof(buf))) > 0)
                assert_int_equal(tls_conn_feed(s, buf, (size_t)n), 0);
            rc = tls_conn_read(s, buf, sizeof(buf), &got);
            while ((got = tls_conn_take(s, buf, sizeof(buf))) > 0)
                BIO_write(rb, buf, (int)got);
        }
        assert_int_equal(rc, SH_EPROTO);
        assert_int_equal(tls_conn_failure(s), TLS_FAIL_PEER);
        assert_string_equal(tls_conn_reason(s), "no client certificate");
        tls_conn_free(s);
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        ERR_clear_error();
    }
    tls_server_stats(ts, &st);
    assert_int_equal(st.fail_peer, 2);
    assert_int_equal(st.handshakes, 0);
    tls_server_free(ts);
}

static void test_mtls__client_bad_files(void **state)
{
    struct tls_client *tcl = NULL;
    struct sh_diag d = {0};

    (void)state;
    assert_true(
        tls_client_new(&(struct tls_client_config){.cert = {p("caller", "crt"), p("names", "key")},
                                                   .ca = p("caA", "crt")},
                       &tcl, &d) < 0);
    assert_null(tcl);
    assert_string_equal(d.where, p("names", "key"));
    assert_int_equal(
        tls_client_new(&(struct tls_client_config){.cert = {p("caller", "crt"), p("caller", "key")},
                                                   .ca = p("nope", "crt")},
                       &tcl, &d),
        SH_ENOENT);
    assert_string_equal(d.where, p("nope", "crt"));
    ERR_clear_error();
}

static void test_mtls__clients_shared_until_files_change(void **state)
{
    struct tls_client *a = client("caller", "caA"), *b = client("caller", "caA"), *c, *o;

    (void)state;
    assert_ptr_equal(a, b); /* a rebuilt config keeps its pools */
    o = client("names", "caA");
    assert_ptr_not_equal(a, o);
    make("caller", "caA", "URI:spiffe://a.test/service/caller"); /* renewed: new files */
    c = client("caller", "caA");
    assert_ptr_not_equal(a, c);
    tls_client_free(a);
    tls_client_free(b); /* the last reference: gone */
    tls_client_free(c);
    tls_client_free(o);
}

static void test_spiffe__service_table(void **state)
{
    char n[16];

    (void)state;
    assert_true(tls_spiffe_service("spiffe://a.test/service/names", "a.test", n, sizeof(n)));
    assert_string_equal(n, "names");
    assert_false(tls_spiffe_service("spiffe://b.test/service/names", "a.test", n, sizeof(n)));
    assert_false(tls_spiffe_service("spiffe://a.testx/service/names", "a.test", n, sizeof(n)));
    assert_false(tls_spiffe_service("spiffe://a.test/service/", "a.test", n, sizeof(n)));
    assert_false(tls_spiffe_service("spiffe://a.test/service/a/b", "a.test", n, sizeof(n)));
    assert_false(tls_spiffe_service("spiffe://a.test/ns/x", "a.test", n, sizeof(n)));
    assert_false(tls_spiffe_service("https://a.test/service/x", "a.test", n, sizeof(n)));
    assert_false(
        tls_spiffe_service("spiffe://a.test/service/waytoolongname12", "a.test", n, sizeof(n)));
    assert_false(tls_spiffe_service(NULL, "a.test", n, sizeof(n)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_mtls__handshake_ids_data),
        T(test_mtls__wrong_server_identity),
        T(test_mtls__server_refuses_untrusted_and_anonymous),
        T(test_mtls__client_bad_files),
        T(test_mtls__clients_shared_until_files_change),
        T(test_spiffe__service_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
