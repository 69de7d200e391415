/* SPDX-License-Identifier: MIT */
/* conn.c: one TLS connection over a pair of memory BIOs: the caller feeds ciphertext from its
 * socket into rbio and sends what SSL leaves in wbio, so OpenSSL never touches a socket and
 * the connection runs on any event loop. Handshake outcomes are counted on the server once.
 * Threads: the thread that made the connection. */
#include "tls/tls_int.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>

struct tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    struct tls_server *ts;
    struct tls__gen *gen; /* until the handshake is done (the SNI callback reads it) */
    enum tls_failure failure;
    const char *reason;
    bool established, sni_refused, timed_out;
    bool peer_mismatch;      /* client: the server's identity is not expect */
    char expect[TLS_ID_MAX]; /* client: the server's SPIFFE ID ("" = any the CA signed) */
};

int tls_conn_new(struct tls_server *ts, struct tls_conn **out)
{
    struct tls_conn *tc = sh_calloc(1, sizeof(*tc));

    *out = NULL;
    if (!tc) return SH_ENOMEM;
    tc->gen = tls__gen_acquire(ts);
    tc->ts = ts;
    tls__server_ref(ts);
    tc->reason = "";
    tc->ssl = SSL_new(tc->gen->certs[0].ctx);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        tc->rbio = tc->wbio = NULL;
        tls_conn_free(tc);
        ERR_clear_error();
        return SH_ENOMEM;
    }
    BIO_set_mem_eof_return(tc->rbio, -1); /* empty means "more later", not EOF */
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_app_data(tc->ssl, tc);
    SSL_set_accept_state(tc->ssl);
    *out = tc;
    return 0;
}

void tls_conn_free(struct tls_conn *tc)
{
    if (!tc) return;
    /* OpenSSL drops the session of a connection freed without close_notify from the cache;
     * a client that just went away keeps it (a failed one does not) */
    if (tc->ssl && tc->established && tc->failure == TLS_FAIL_NONE)
        SSL_set_shutdown(tc->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(tc->ssl);
    tls__gen_unref(tc->gen);
    tls__server_unref(tc->ts);
    sh_free(tc);
}

int tls__servername_cb(SSL *ssl, int *alert, void *arg)
{
    struct tls_conn *tc = SSL_get_app_data(ssl);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    int i;

    (void)arg;
    if (!tc || !tc->gen) return SSL_TLSEXT_ERR_NOACK;
    i = tls__gen_pick(tc->gen, name);
    if (i < 0) {
        tc->sni_refused = true;
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    if (i > 0 && !SSL_set_SSL_CTX(ssl, tc->gen->certs[i].ctx)) return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Client connections have no server: nothing is counted for them. */
static struct tls__counters *counters_of(struct tls_conn *tc)
{
    static struct tls__counters none;

    return tc->ts ? tls__counters(tc->ts) : &none;
}

int tls__client_conn_new(SSL_CTX *ctx, const char *server_name, const char *expect_id,
                         struct tls_conn **out)
{
    struct tls_conn *tc;

    *out = NULL;
    if (expect_id && strlen(expect_id) >= TLS_ID_MAX) return SH_EINVAL;
    tc = sh_calloc(1, sizeof(*tc));
    if (!tc) return SH_ENOMEM;
    tc->reason = "";
    if (expect_id) memcpy(tc->expect, expect_id, strlen(expect_id) + 1);
    tc->ssl = SSL_new(ctx);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        tc->rbio = tc->wbio = NULL;
        goto fail;
    }
    BIO_set_mem_eof_return(tc->rbio, -1);
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio);
    SSL_set_app_data(tc->ssl, tc);
    SSL_set_connect_state(tc->ssl);
    if (server_name && *server_name && !SSL_set_tlsext_host_name(tc->ssl, server_name)) goto fail;
    *out = tc;
    return 0;
fail:
    tls_conn_free(tc);
    ERR_clear_error();
    return SH_ENOMEM;
}

int tls__verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_conn *tc = ssl ? SSL_get_app_data(ssl) : NULL;
    char id[TLS_ID_MAX];

    if (!preverify_ok || !tc || X509_STORE_CTX_get_error_depth(x) != 0 || !tc->expect[0])
        return preverify_ok;
    if (tls__cert_spiffe(X509_STORE_CTX_get_current_cert(x), id, sizeof(id)) != 0 ||
        strcmp(id, tc->expect) != 0) {
        tc->peer_mismatch = true;
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

int tls_conn_peer_id(const struct tls_conn *tc, char *out, size_t cap)
{
    X509 *x;
    int rc;

    if (cap) out[0] = '\0';
    if (!tc->established || SSL_get_verify_result(tc->ssl) != X509_V_OK) return SH_ENOENT;
    x = SSL_get0_peer_certificate(tc->ssl);
    if (!x) return SH_ENOENT;
    rc = tls__cert_spiffe(x, out, cap);
    return rc;
}

static void handshake_done(struct tls_conn *tc)
{
    struct tls__counters *n = counters_of(tc);

    tc->established = true;
    count(&n->handshakes);
    if (SSL_session_reused(tc->ssl)) count(&n->resumed);
    tls__gen_unref(tc->gen); /* the handshake is over: the SNI choice is made */
    tc->gen = NULL;
}

/* Names a failed handshake or record and counts it (once per connection). */
static void failed(struct tls_conn *tc)
{
    struct tls__counters *n = counters_of(tc);
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);

    if (tc->failure != TLS_FAIL_NONE) goto out;
    if (tc->sni_refused) {
        tc->failure = TLS_FAIL_SNI;
        tc->reason = "unknown server name (SNI)";
    } else if (tc->peer_mismatch) {
        tc->failure = TLS_FAIL_PEER;
        tc->reason = "the peer's certificate is not the identity expected";
    } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        tc->failure = TLS_FAIL_PEER;
        tc->reason = "no client certificate";
    } else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        tc->failure = TLS_FAIL_PEER;
        tc->reason = "the peer's certificate is not signed by the trust bundle";
    } else if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
               reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
               reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
               reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN) {
        tc->failure = TLS_FAIL_PEER;
        tc->reason = "the peer refused our certificate";
    } else if (reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST) {
        tc->failure = TLS_FAIL_PLAINTEXT;
        tc->reason = "plain HTTP sent to a TLS port";
    } else if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
               reason == SSL_R_RECORD_LENGTH_MISMATCH) {
        tc->failure = TLS_FAIL_PLAINTEXT;
        tc->reason = "not a TLS record";
    } else if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_VERSION_TOO_LOW ||
               reason == SSL_R_NO_PROTOCOLS_AVAILABLE || reason == SSL_R_NO_SHARED_CIPHER) {
        tc->failure = TLS_FAIL_PROTOCOL;
        tc->reason =
            reason == SSL_R_NO_SHARED_CIPHER ? "no shared cipher" : "protocol version refused";
    } else {
        tc->failure = TLS_FAIL_OTHER;
        tc->reason = "TLS handshake or record failed";
    }
    if (!tc->established) {
        switch (tc->failure) {
        case TLS_FAIL_SNI:
            count(&n->fail_sni);
            break;
        case TLS_FAIL_PLAINTEXT:
            count(&n->fail_plaintext);
            break;
        case TLS_FAIL_PROTOCOL:
            count(&n->fail_protocol);
            break;
        case TLS_FAIL_PEER:
            count(&n->fail_peer);
            break;
        default:
            count(&n->fail_other);
            break;
        }
    }
out:
    ERR_clear_error();
}

int tls_conn_feed(struct tls_conn *tc, const void *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        int w = BIO_write(tc->rbio, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return SH_ENOMEM;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

int tls_conn_read(struct tls_conn *tc, void *dst, size_t cap, size_t *nread)
{
    size_t n = 0;
    int ok, err;

    *nread = 0;
    if (tc->failure != TLS_FAIL_NONE) return SH_EPROTO;
    ERR_clear_error();
    ok = SSL_read_ex(tc->ssl, dst, cap, &n);
    if (!tc->established && SSL_is_init_finished(tc->ssl)) handshake_done(tc);
    if (ok) {
        *nread = n;
        return 0;
    }
    err = SSL_get_error(tc->ssl, 0);
    switch (err) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    default:
        failed(tc);
        return SH_EPROTO;
    }
}

int tls_conn_write(struct tls_conn *tc, const void *p, size_t n)
{
    size_t w = 0;

    if (tc->failure != TLS_FAIL_NONE) return SH_EPROTO;
    if (n == 0) return 0;
    ERR_clear_error();
    /* a memory BIO takes everything: one call seals it all, in records of 16 KiB */
    if (!SSL_write_ex(tc->ssl, p, n, &w) || w != n) {
        int err = SSL_get_error(tc->ssl, 0);
        failed(tc);
        return err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL ? SH_EPROTO : SH_ENOMEM;
    }
    return 0;
}

size_t tls_conn_pending(const struct tls_conn *tc)
{
    return BIO_ctrl_pending(tc->wbio);
}

size_t tls_conn_take(struct tls_conn *tc, void *dst, size_t cap)
{
    size_t n = 0;

    if (cap == 0 || BIO_ctrl_pending(tc->wbio) == 0) return 0;
    if (BIO_read_ex(tc->wbio, dst, cap, &n) != 1) {
        ERR_clear_error();
        return 0;
    }
    return n;
}

bool tls_conn_is_established(const struct tls_conn *tc)
{
    return tc->established;
}

enum tls_failure tls_conn_failure(const struct tls_conn *tc)
{
    return tc->failure;
}

const char *tls_conn_reason(const struct tls_conn *tc)
{
    if (tc->timed_out) return "handshake timed out";
    return tc->reason;
}

void tls_conn_timed_out(struct tls_conn *tc)
{
    if (tc->timed_out || tc->established) return;
    tc->timed_out = true;
    count(&counters_of(tc)->timeouts);
}

void tls_conn_shutdown(struct tls_conn *tc)
{
    if (!tc->established || tc->failure != TLS_FAIL_NONE) return;
    ERR_clear_error();
    (void)SSL_shutdown(tc->ssl);
    ERR_clear_error();
}
