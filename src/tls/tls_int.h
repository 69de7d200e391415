/* SPDX-License-Identifier: MIT */
/* tls_int.h: what server.c and conn.c share: a generation (the SSL_CTXs of one load of the
 * files, with the names each certificate covers) and the server's counters.
 * Threads: generations are immutable once published and counted by reference. */
#ifndef SHOAL_TLS_INT_H
#define SHOAL_TLS_INT_H

#include "tls/tls.h"

#include <openssl/ssl.h>
#include <stdatomic.h>

struct tls__cert {
    SSL_CTX *ctx;
    char **names; /* DNS names of the SAN (or the CN when there is no SAN), lower case */
    size_t nnames;
};

struct tls__gen {
    _Atomic uint32_t refs;
    struct tls_server *ts;
    struct tls__cert *certs; /* certs[0] is the default; its SSL_CTX starts every handshake */
    size_t ncerts;
    bool sni_strict;
};

struct tls__counters {
    _Atomic uint64_t handshakes, resumed, fail_protocol, fail_plaintext, fail_sni, fail_other,
        timeouts, reloads, fail_peer;
};

/* The generation new connections use, with a reference (drop with tls__gen_unref). */
struct tls__gen *tls__gen_acquire(struct tls_server *ts);
void tls__gen_unref(struct tls__gen *g);
/* A connection keeps its server alive (counters) with a reference. */
void tls__server_ref(struct tls_server *ts);
void tls__server_unref(struct tls_server *ts);
struct tls__counters *tls__counters(struct tls_server *ts);
/* Index of the certificate for name in g (-1: none covers it and sni_strict is set). */
int tls__gen_pick(const struct tls__gen *g, const char *name);
/* The SNI callback every SSL_CTX of a generation carries (conn.c): picks the certificate of
 * the connection's generation (SSL_set_SSL_CTX) or refuses the name. */
int tls__servername_cb(SSL *ssl, int *alert, void *arg);

/* The verify callback of client contexts and of servers with client_ca (conn.c): OpenSSL's
 * chain verdict, and for a client connection with an expected identity, the leaf's SPIFFE ID. */
int tls__verify_cb(int preverify_ok, X509_STORE_CTX *x);
/* The first URI SAN of x that starts with "spiffe://", into out: 0, SH_ENOENT, SH_ELIMIT
 * (client.c). */
int tls__cert_spiffe(X509 *x, char *out, size_t cap);
/* A client connection on ctx (the SSL takes its own reference to ctx). */
int tls__client_conn_new(SSL_CTX *ctx, const char *server_name, const char *expect_id,
                         struct tls_conn **out);

#endif
