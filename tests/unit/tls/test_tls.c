/* SPDX-License-Identifier: MIT */
/* test_tls.c: the TLS server without sockets: certificates made here with OpenSSL (ECDSA
 * P-256, SAN names), loaded from files; the SNI choice as a table (exact before wildcard, one
 * label per '*', strict refusal); bad files refused with the file named; handshakes between
 * an OpenSSL client and a tls_conn over memory (SNI picks the certificate, TLS 1.1 and plain
 * HTTP refused and counted, data both ways, a resumed session); a reload of changed files. */
#include "test_util.h"

#include "tls/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

/* Writes DIR/<base>.crt and DIR/<base>.key: a self-signed certificate for cn with the SAN
 * names sans ("DNS:a,DNS:b"; NULL: none). */
static void make_cert(const char *base, const char *cn, const char *sans)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    char path[160];
    FILE *f;

    assert_non_null(k);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0xffffff) + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (sans) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, sans);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    snprintf(path, sizeof(path), "%s/%s.crt", dir, base);
    f = fopen(path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, base);
    f = fopen(path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static char *p(const char *base, const char *ext)
{
    static char bufs[8][160];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 160, "%s/%s.%s", dir, base, ext);
    return b;
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/shoal-tls-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    return test_setup(state);
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) return -1;
    return test_teardown(state);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static void test_sni__match_table(void **state)
{
    (void)state;
    assert_true(tls_sni_match("api.example.com", "API.example.com"));
    assert_true(tls_sni_match("*.example.com", "a.example.com"));
    assert_false(tls_sni_match("*.example.com", "a.b.example.com"));
    assert_false(tls_sni_match("*.example.com", "example.com"));
    assert_false(tls_sni_match("*.example.com", ".example.com"));
    assert_false(tls_sni_match("example.com", "a.example.com"));
    assert_false(tls_sni_match("*.example.com", ""));
    assert_false(tls_sni_match(NULL, "x"));
}

static struct tls_server *three(bool strict)
{
    struct tls_cert_files certs[3];
    struct tls_server *ts = NULL;
    struct sh_diag d = {0};

    make_cert("default", "default.test", "DNS:default.test");
    make_cert("wild", "wild", "DNS:*.example.com,DNS:example.com");
    make_cert("api", "api", "DNS:api.example.com");
    certs[0] = (struct tls_cert_files){p("default", "crt"), p("default", "key")};
    certs[1] = (struct tls_cert_files){p("wild", "crt"), p("wild", "key")};
    certs[2] = (struct tls_cert_files){p("api", "crt"), p("api", "key")};
    assert_int_equal(
        tls_server_new(
            &(struct tls_server_config){.certs = certs, .ncerts = 3, .sni_strict = strict}, &ts,
            &d),
        0);
    return ts;
}

static void test_server__pick(void **state)
{
    struct tls_server *ts = three(false);

    (void)state;
    assert_int_equal(tls_server_pick(ts, NULL), 0);
    assert_int_equal(tls_server_pick(ts, "default.test"), 0);
    assert_int_equal(tls_server_pick(ts, "api.example.com"), 2); /* exact beats the wildcard */
    assert_int_equal(tls_server_pick(ts, "www.example.com"), 1);
    assert_int_equal(tls_server_pick(ts, "EXAMPLE.com"), 1);
    assert_int_equal(tls_server_pick(ts, "other.test"), 0); /* not strict: the default */
    tls_server_free(ts);
    ts = three(true);
    assert_int_equal(tls_server_pick(ts, "other.test"), -1);
    assert_int_equal(tls_server_pick(ts, NULL), 0);
    tls_server_free(ts);
}

static void test_server__bad_files(void **state)
{
    struct tls_server *ts = NULL;
    struct sh_diag d = {0};
    struct tls_cert_files f;
    FILE *fp;

    (void)state;
    make_cert("a", "a", "DNS:a");
    make_cert("b", "b", "DNS:b");
    f = (struct tls_cert_files){p("missing", "crt"), p("a", "key")};
    assert_int_equal(tls_server_new(&(struct tls_server_config){.certs = &f, .ncerts = 1}, &ts, &d),
                     SH_ENOENT);
    assert_null(ts);
    assert_string_equal(d.where, p("missing", "crt"));
    assert_non_null(strstr(d.what, "cannot read the certificate"));
    /* not PEM */
    fp = fopen(p("junk", "crt"), "w");
    fputs("hello\n", fp);
    fclose(fp);
    f = (struct tls_cert_files){p("junk", "crt"), p("a", "key")};
    assert_int_equal(tls_server_new(&(struct tls_server_config){.certs = &f, .ncerts = 1}, &ts, &d),
                     SH_EPARSE);
    assert_string_equal(d.where, p("junk", "crt"));
    /* a key that is not the certificate's */
    f = (struct tls_cert_files){p("a", "crt"), p("b", "key")};
    assert_true(tls_server_new(&(struct tls_server_config){.certs = &f, .ncerts = 1}, &ts, &d) < 0);
    assert_string_equal(d.where, p("b", "key"));
    /* the key file holds a certificate */
    f = (struct tls_cert_files){p("a", "crt"), p("a", "crt")};
    assert_int_equal(tls_server_new(&(struct tls_server_config){.certs = &f, .ncerts = 1}, &ts, &d),
                     SH_EPARSE);
    assert_string_equal(d.where, p("a", "crt"));
    assert_non_null(strstr(d.what, "private key"));
    /* no certificate at all */
    assert_int_equal(tls_server_new(&(struct tls_server_config){.certs = &f, .ncerts = 0}, &ts, &d),
                     SH_EINVAL);
    ERR_clear_error();
}

/* ---- handshakes over memory ---- */
struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
};

static void client_init(struct client *c, const char *sni, int max_version, SSL_SESSION *sess)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_VERSION);
    SSL_CTX_set_security_level(c->ctx, 0);
    if (max_version) SSL_CTX_set_max_proto_version(c->ctx, max_version);
    c->ssl = SSL_new(c->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    if (sni) SSL_set_tlsext_host_name(c->ssl, sni);
    if (sess) SSL_set_session(c->ssl, sess);
    SSL_set_connect_state(c->ssl);
}

static void client_release(struct client *c)
{
    /* an SSL freed without a shutdown makes its session unresumable */
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Moves bytes both ways until neither side makes progress; returns the server's last rc. */
static int pump(struct client *c, struct tls_conn *tc, char *plain, size_t cap, size_t *got)
{
    char buf[32768];
    int rc = TLS_AGAIN;

    *got = 0;
    for (int round = 0; round < 20; round++) {
        bool moved = false;
        size_t n;
        int cn;
        (void)SSL_do_handshake(c->ssl);
        while ((cn = BIO_read(c->wbio, buf, sizeof(buf))) > 0) {
            assert_int_equal(tls_conn_feed(tc, buf, (size_t)cn), 0);
            moved = true;
        }
        do {
            rc = tls_conn_read(tc, plain + *got, cap - *got, &n);
            if (rc == 0) *got += n;
        } while (rc == 0 && *got < cap);
        while ((n = tls_conn_take(tc, buf, sizeof(buf))) > 0) {
            BIO_write(c->rbio, buf, (int)n);
            moved = true;
        }
        if (rc < 0 || !moved) break;
    }
    return rc;
}

static char *served_cn(struct client *c)
{
    static char cn[64];
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    cn[0] = '\0';
    if (x) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        X509_free(x);
    }
    return cn;
}

static void test_conn__sni_data_resume(void **state)
{
    struct tls_server *ts = three(false);
    struct tls_server_stats st;
    struct tls_conn *tc;
    struct client c;
    char plain[256];
    size_t got;
    SSL_SESSION *sess;

    (void)state;
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "api.example.com", TLS1_2_VERSION, NULL);
    assert_int_equal(pump(&c, tc, plain, sizeof(plain), &got), TLS_AGAIN);
    assert_true(tls_conn_is_established(tc));
    assert_string_equal(served_cn(&c), "api");
    /* client -> server */
    assert_int_equal(SSL_write(c.ssl, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_int_equal(got, 18);
    assert_memory_equal(plain, "GET / HTTP/1.1\r\n\r\n", 18);
    /* server -> client */
    assert_int_equal(tls_conn_write(tc, "HTTP/1.1 200 OK\r\n", 17), 0);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_int_equal(SSL_read(c.ssl, plain, sizeof(plain)), 17);
    sess = SSL_get1_session(c.ssl);
    tls_conn_free(tc);
    client_release(&c);
    /* the session resumes on a new connection */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "api.example.com", TLS1_2_VERSION, sess);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_true(tls_conn_is_established(tc));
    assert_true(SSL_session_reused(c.ssl));
    tls_conn_free(tc);
    client_release(&c);
    SSL_SESSION_free(sess);
    /* TLS 1.3 tickets resume too */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "api.example.com", 0, NULL);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_int_equal(tls_conn_write(tc, "x", 1), 0);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_int_equal(SSL_read(c.ssl, plain, sizeof(plain)), 1); /* the tickets came first */
    sess = SSL_get1_session(c.ssl);
    tls_conn_free(tc);
    client_release(&c);
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "api.example.com", 0, sess);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_true(tls_conn_is_established(tc));
    assert_true(SSL_session_reused(c.ssl));
    assert_int_equal(SSL_version(c.ssl), TLS1_3_VERSION);
    tls_conn_free(tc);
    client_release(&c);
    SSL_SESSION_free(sess);
    /* TLS 1.3 with a wildcard name */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "www.example.com", 0, NULL);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_true(tls_conn_is_established(tc));
    assert_string_equal(served_cn(&c), "wild");
    assert_int_equal(SSL_version(c.ssl), TLS1_3_VERSION);
    tls_conn_free(tc);
    client_release(&c);
    tls_server_stats(ts, &st);
    assert_int_equal(st.handshakes, 5);
    assert_int_equal(st.resumed, 2);
    tls_server_free(ts);
}

static void test_conn__refusals_counted(void **state)
{
    struct tls_server *ts = three(true);
    struct tls_server_stats st;
    struct tls_conn *tc;
    struct client c;
    char plain[256];
    size_t got;
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    (void)state;
    /* TLS 1.1 */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "api.example.com", TLS1_1_VERSION, NULL);
    assert_int_equal(pump(&c, tc, plain, sizeof(plain), &got), SH_EPROTO);
    assert_int_equal(tls_conn_failure(tc), TLS_FAIL_PROTOCOL);
    tls_conn_free(tc);
    client_release(&c);
    /* unknown name, strict */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "nobody.test", 0, NULL);
    assert_int_equal(pump(&c, tc, plain, sizeof(plain), &got), SH_EPROTO);
    assert_int_equal(tls_conn_failure(tc), TLS_FAIL_SNI);
    tls_conn_free(tc);
    client_release(&c);
    /* plain HTTP */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    assert_int_equal(tls_conn_feed(tc, http, sizeof(http) - 1), 0);
    assert_int_equal(tls_conn_read(tc, plain, sizeof(plain), &got), SH_EPROTO);
    assert_int_equal(tls_conn_failure(tc), TLS_FAIL_PLAINTEXT);
    assert_int_equal(tls_conn_write(tc, "x", 1), SH_EPROTO);
    tls_conn_timed_out(tc); /* failed already: not also a timeout? it is counted once anyway */
    tls_conn_free(tc);
    /* a handshake that never finishes */
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    tls_conn_timed_out(tc);
    tls_conn_timed_out(tc);
    tls_conn_free(tc);
    tls_server_stats(ts, &st);
    assert_int_equal(st.fail_protocol, 1);
    assert_int_equal(st.fail_sni, 1);
    assert_int_equal(st.fail_plaintext, 1);
    assert_int_equal(st.handshakes, 0);
    assert_int_equal(st.timeouts, 2);
    tls_server_free(ts);
}

static void test_server__min_13_and_reload(void **state)
{
    struct tls_cert_files f;
    struct tls_server *ts = NULL;
    struct tls_conn *tc, *old;
    struct sh_diag d = {0};
    struct client c, oc;
    char plain[64];
    size_t got;

    (void)state;
    make_cert("one", "one", "DNS:svc.test");
    f = (struct tls_cert_files){p("one", "crt"), p("one", "key")};
    assert_int_equal(
        tls_server_new(
            &(struct tls_server_config){.certs = &f, .ncerts = 1, .min_version = TLS_V1_3}, &ts,
            &d),
        0);
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "svc.test", TLS1_2_VERSION, NULL);
    assert_int_equal(pump(&c, tc, plain, sizeof(plain), &got), SH_EPROTO);
    tls_conn_free(tc);
    client_release(&c);
    /* an established connection, then the files change */
    assert_int_equal(tls_conn_new(ts, &old), 0);
    client_init(&oc, "svc.test", 0, NULL);
    pump(&oc, old, plain, sizeof(plain), &got);
    assert_string_equal(served_cn(&oc), "one");
    assert_int_equal(tls_server_check_files(ts, &d), 0);
    sleep(0); /* mtime granularity is ns; inode changes anyway (rename) */
    make_cert("two", "two", "DNS:svc.test");
    assert_int_equal(rename(p("two", "crt"), p("one", "crt")), 0);
    /* only the cert changed so far: the key does not match, the old generation stays */
    assert_true(tls_server_check_files(ts, &d) < 0);
    assert_string_equal(d.where, p("one", "key"));
    assert_int_equal(tls_server_check_files(ts, &d), 0); /* that state is not retried */
    assert_int_equal(rename(p("two", "key"), p("one", "key")), 0);
    assert_int_equal(tls_server_check_files(ts, &d), 1);
    assert_int_equal(tls_conn_new(ts, &tc), 0);
    client_init(&c, "svc.test", 0, NULL);
    pump(&c, tc, plain, sizeof(plain), &got);
    assert_true(tls_conn_is_established(tc));
    assert_string_equal(served_cn(&c), "two");
    /* the old connection still works */
    assert_int_equal(SSL_write(oc.ssl, "ping", 4), 4);
    pump(&oc, old, plain, sizeof(plain), &got);
    assert_int_equal(got, 4);
    tls_conn_free(tc);
    tls_conn_free(old);
    client_release(&c);
    client_release(&oc);
    tls_server_free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_sni__match_table),       T(test_server__pick),
        T(test_server__bad_files),      T(test_conn__sni_data_resume),
        T(test_conn__refusals_counted), T(test_server__min_13_and_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
