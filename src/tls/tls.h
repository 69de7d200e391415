/* SPDX-License-Identifier: MIT */
/* tls.h: TLS termination with OpenSSL 3, behind plain C types: a server (certificates chosen
 * by SNI, TLS 1.2/1.3, session tickets and a session cache, hot reload of the files) and its
 * connections, which run over memory buffers so the caller owns the socket (libuv).
 * Prefixes: tls_server_, tls_conn_, tls_sni_.
 *
 * Threads: a tls_server is shared. tls_server_new/reload/check_files/free run on one control
 * thread; tls_conn_new and tls_server_stats may run on any thread at the same time. A
 * tls_conn belongs to the thread that made it. */
#ifndef SHOAL_TLS_H
#define SHOAL_TLS_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TLS_MAX_CERTS = 64 };

/* A certificate chain and its key, both PEM files; the chain file starts with the leaf. */
struct tls_cert_files {
    const char *cert;
    const char *key;
};

enum tls_version { TLS_V1_2 = 0, TLS_V1_3 = 1 };

struct tls_server_config {
    const struct tls_cert_files *certs; /* the first one is the default (no or unknown SNI) */
    size_t ncerts;                      /* 1..TLS_MAX_CERTS */
    enum tls_version min_version;       /* default TLS 1.2; nothing older is ever offered */
    bool sni_strict;                    /* a server name no certificate covers fails the handshake
                                           (no SNI at all still gets the default certificate) */
    uint32_t session_cache;             /* sessions kept for resumption; 0 = 20480 */
    uint32_t session_timeout_s;         /* 0 = 7200 (tickets and cache) */
    /* mTLS (the mesh's inbound listener): a PEM bundle; when set, every client must present
     * a certificate that chains to it (none, or another CA's, fails the handshake). */
    const char *client_ca;
};

/* Service object. The files are read here; every certificate must match its key.
 * Returns 0 and *out, or SH_ENOENT/SH_EPERM/SH_EPARSE/SH_EINVAL/SH_ENOMEM with d naming the
 * file (d->where) and the problem (d->what). */
struct tls_server;
SH_MUST_CHECK int tls_server_new(const struct tls_server_config *cfg, struct tls_server **out,
                                 struct sh_diag *d);
/* Drops the caller's reference; connections still running keep what they use. NULL: no-op. */
void tls_server_free(struct tls_server *ts);
/* Re-reads the files (of cfg when not NULL: a new list; else the current one) into a new
 * generation. New handshakes use it; connections already made are unaffected. Session ticket
 * keys carry over, so clients resume across a reload. On failure the running generation
 * stays and the error is returned as for tls_server_new. */
SH_MUST_CHECK int tls_server_reload(struct tls_server *ts, const struct tls_server_config *cfg,
                                    struct sh_diag *d);
/* Reloads when a file changed (mtime, size or inode) since the last load or attempt.
 * 0: unchanged; 1: reloaded; negative: the changed files do not load (the old ones stay;
 * the same change is not retried). */
SH_MUST_CHECK int tls_server_check_files(struct tls_server *ts, struct sh_diag *d);
/* The certificate index SNI name selects in the current generation (-1: none, and
 * sni_strict refuses it; name NULL: the default, 0). For tests and /config. */
int tls_server_pick(struct tls_server *ts, const char *name);

struct tls_server_stats {
    uint64_t handshakes;     /* completed */
    uint64_t resumed;        /* of those, resumed sessions */
    uint64_t fail_protocol;  /* a version older than min_version, or no shared cipher */
    uint64_t fail_plaintext; /* plain HTTP (or other non-TLS bytes) to the TLS port */
    uint64_t fail_sni;       /* unknown server name with sni_strict */
    uint64_t fail_other;     /* any other handshake failure */
    uint64_t timeouts;       /* handshakes not done in time (tls_conn_timed_out) */
    uint64_t fail_peer;      /* client_ca: no client certificate, or not one the bundle trusts */
    uint64_t reloads;        /* generations loaded after the first */
};
void tls_server_stats(struct tls_server *ts, struct tls_server_stats *out);

/* A server name against a certificate name: exact (case-insensitive), or "*.b.c" matching
 * exactly one label in front of "b.c". Plain function for the SNI choice. */
bool tls_sni_match(const char *pattern, const char *name);

/* --- connections: value flow over memory buffers ---
 * Ciphertext from the socket goes in with tls_conn_feed; tls_conn_read runs the handshake and
 * yields plaintext; tls_conn_write seals plaintext; tls_conn_take hands out the ciphertext to
 * send (handshake records included), which the caller must do after each call that may have
 * made some (feed+read, write). */
struct tls_conn;
enum tls_status {
    TLS_AGAIN = 1, /* no plaintext now: feed more ciphertext (and send what is pending) */
    TLS_EOF = 2,   /* the peer sent close_notify */
};
enum tls_failure {
    TLS_FAIL_NONE = 0,
    TLS_FAIL_PROTOCOL,
    TLS_FAIL_PLAINTEXT,
    TLS_FAIL_SNI,
    TLS_FAIL_OTHER,
    TLS_FAIL_PEER, /* mTLS: the peer's certificate is missing, untrusted, or not the identity
                      expected (or the peer refused ours) */
};
/* A connection on the server's current generation. 0 and *out (free with tls_conn_free),
 * SH_ENOMEM. */
SH_MUST_CHECK int tls_conn_new(struct tls_server *ts, struct tls_conn **out);
void tls_conn_free(struct tls_conn *tc); /* NULL: no-op */
/* Copies n ciphertext bytes in. 0 or SH_ENOMEM. */
SH_MUST_CHECK int tls_conn_feed(struct tls_conn *tc, const void *p, size_t n);
/* Up to cap plaintext bytes into dst: 0 with *nread > 0, TLS_AGAIN, TLS_EOF, or SH_EPROTO
 * when the handshake or a record failed (tls_conn_failure says why; the alert to send is
 * pending in the output). */
SH_MUST_CHECK int tls_conn_read(struct tls_conn *tc, void *dst, size_t cap, size_t *nread);
/* Seals n plaintext bytes (after the handshake). 0, SH_EPROTO or SH_ENOMEM. */
SH_MUST_CHECK int tls_conn_write(struct tls_conn *tc, const void *p, size_t n);
/* Ciphertext waiting to be sent, and taking up to cap bytes of it (returns how many). */
size_t tls_conn_pending(const struct tls_conn *tc);
size_t tls_conn_take(struct tls_conn *tc, void *dst, size_t cap);
bool tls_conn_is_established(const struct tls_conn *tc);
enum tls_failure tls_conn_failure(const struct tls_conn *tc);
/* A short reason for logs ("tls 1.0 refused", "plain HTTP", ...); never NULL. */
const char *tls_conn_reason(const struct tls_conn *tc);
/* The handshake did not finish in time: counted as a timeout (once). */
void tls_conn_timed_out(struct tls_conn *tc);
/* Queues close_notify (take and send it before closing). */
void tls_conn_shutdown(struct tls_conn *tc);

/* --- mTLS: the client side and identities (docs/security.md, "mTLS between meshes") ---
 * A tls_client is a client context: the certificate we present (a SPIFFE leaf), the bundle
 * the server's certificate must chain to, TLS 1.3 only. Its connections are tls_conns as
 * above (feed/read/write/take); the first tls_conn_read makes the ClientHello. */
enum { TLS_ID_MAX = 256 }; /* bytes of a SPIFFE ID we accept, NUL included */
struct tls_client_config {
    struct tls_cert_files cert; /* presented to the server */
    const char *ca;             /* PEM bundle the server's certificate must chain to */
};
struct tls_client;
/* 0 and *out, or SH_ENOENT/SH_EPERM/SH_EPARSE/SH_EINVAL/SH_ENOMEM with d naming the file.
 * The same three files, unchanged (inode, size, mtime), give the same client (counted), so
 * connection pools keyed by it survive a rebuilt config; a changed file gives a new one.
 * Threads: any; free it while connections run (they keep what they use). */
SH_MUST_CHECK int tls_client_new(const struct tls_client_config *cfg, struct tls_client **out,
                                 struct sh_diag *d);
void tls_client_free(struct tls_client *tcl); /* NULL: no-op */
/* A client connection: server_name goes in SNI (NULL: none); expect_id, when not NULL, is the
 * SPIFFE ID the server's certificate must carry as its URI SAN (else the handshake fails with
 * TLS_FAIL_PEER). 0 and *out, SH_EINVAL (expect_id too long), SH_ENOMEM. */
SH_MUST_CHECK int tls_client_conn_new(struct tls_client *tcl, const char *server_name,
                                      const char *expect_id, struct tls_conn **out);
/* The SPIFFE ID (URI SAN "spiffe://...") of the peer's verified certificate, into out (cap
 * bytes): 0, or SH_ENOENT (no verified certificate, or no such SAN), SH_ELIMIT (too long). */
SH_MUST_CHECK int tls_conn_peer_id(const struct tls_conn *tc, char *out, size_t cap);
/* "spiffe://<td>/service/<name>" with td equal to trust_domain: the name into out (cap bytes)
 * and true; anything else (another trust domain, another path, an empty or too long name, a
 * name with '/' or bytes outside [A-Za-z0-9._-]) false. Plain function. */
bool tls_spiffe_service(const char *id, const char *trust_domain, char *out, size_t cap);

#endif
