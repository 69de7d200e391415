/* SPDX-License-Identifier: MIT */
/* server.c: a TLS server's generations. One generation is one load of the certificate files:
 * an SSL_CTX per certificate (TLS 1.2+ with modern ciphers, tickets and a session cache on the
 * default one, which every handshake starts on) and the DNS names each covers, for SNI.
 * A reload builds a new generation and swaps it in under the mutex; connections hold a
 * reference to theirs, so the old one lives until its last handshake is done.
 * Threads: new/reload/check_files/free on one thread; acquire and stats on any. */
#include "tls/tls_int.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. TLS 1.3 keeps
 * OpenSSL's default suites (AES-GCM and ChaCha20-Poly1305). */
static const char CIPHERS_12[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

enum { TICKET_KEYS_LEN = 80 };

struct stamp {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
};

struct tls_server {
    _Atomic uint32_t refs; /* the owner's, plus one per live connection */
    pthread_mutex_t mu;    /* guards cur */
    struct tls__gen *cur;
    struct tls_server_config cfg; /* certs deep-copied into files */
    struct tls_cert_files *files;
    struct stamp *stamps; /* 2 per certificate: cert, key (of the last load or attempt) */
    unsigned char ticket_keys[TICKET_KEYS_LEN];
    bool have_keys;
    struct tls__counters n;
};

/* ------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------ */
/* Drains OpenSSL's queue into d: the last (innermost) reason is the telling one. */
static int fail_ssl(struct sh_diag *d, const char *file, const char *what, int rc)
{
    unsigned long e, last = 0;
    char reason[120] = "unknown error";

    while ((e = ERR_get_error()) != 0)
        last = e;
    if (last) {
        const char *r = ERR_reason_error_string(last);
        snprintf(reason, sizeof(reason), "%s", r ? r : "unknown error");
    }
    sh_diag_set(d, file, "%s: %s", what, reason);
    return rc;
}

static int check_readable(const char *file, const char *what, struct sh_diag *d)
{
    FILE *f = fopen(file, "r");
    int rc;

    if (f) {
        fclose(f);
        return 0;
    }
    rc = -errno;
    sh_diag_set(d, file, "cannot read the %s: %s", what, strerror(-rc));
    return rc == -ENOENT ? SH_ENOENT : rc == -EACCES ? SH_EPERM : rc;
}

/* ------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------ */
bool tls_sni_match(const char *pattern, const char *name)
{
    const char *dot;

    if (!pattern || !name || !*name) return false;
    if (strcasecmp(pattern, name) == 0) return true;
    if (pattern[0] != '*' || pattern[1] != '.') return false;
    dot = strchr(name, '.');
    /* one label, not empty, in front of the rest */
    return dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

int tls__gen_pick(const struct tls__gen *g, const char *name)
{
    if (!name || !*name) return 0;
    for (size_t i = 0; i < g->ncerts; i++) /* an exact name wins over any wildcard */
        for (size_t k = 0; k < g->certs[i].nnames; k++)
            if (g->certs[i].names[k][0] != '*' && strcasecmp(g->certs[i].names[k], name) == 0)
                return (int)i;
    for (size_t i = 0; i < g->ncerts; i++)
        for (size_t k = 0; k < g->certs[i].nnames; k++)
            if (tls_sni_match(g->certs[i].names[k], name)) return (int)i;
    return g->sni_strict ? -1 : 0;
}

static char *dup_lower(const char *p, size_t n)
{
    char *s = sh_malloc(n + 1);

    if (!s) return NULL;
    for (size_t i = 0; i < n; i++)
        s[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] - 'A' + 'a') : p[i];
    s[n] = '\0';
    return s;
}

static int add_name(struct tls__cert *c, const char *p, size_t n)
{
    char **names;

    if (n == 0 || memchr(p, '\0', n)) return 0; /* embedded NULs: never a name we match */
    names = sh_realloc(c->names, (c->nnames + 1) * sizeof(*names));
    if (!names) return SH_ENOMEM;
    c->names = names;
    c->names[c->nnames] = dup_lower(p, n);
    if (!c->names[c->nnames]) return SH_ENOMEM;
    c->nnames++;
    return 0;
}

static int collect_names(struct tls__cert *c, X509 *x)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = 0;

    if (sans) {
        for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(sans); i++) {
            const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
            if (gn->type == GEN_URI) {
                /* a SPIFFE leaf (spiffe://td/service/NAME) answers to its service name, so a
                 * mesh's inbound listener picks the destination service's by SNI */
                const char *u =
                    (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
                size_t n = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
                const char *svc = n > 9 && !memcmp(u, "spiffe://", 9) && !memchr(u, '\0', n)
                                      ? strstr(u + 9, "/service/")
                                      : NULL;
                if (svc && !strchr(svc + 9, '/'))
                    rc = add_name(c, svc + 9, n - (size_t)(svc + 9 - u));
                continue;
            }
            if (gn->type != GEN_DNS) continue;
            rc = add_name(c, (const char *)ASN1_STRING_get0_data(gn->d.dNSName),
                          (size_t)ASN1_STRING_length(gn->d.dNSName));
        }
        GENERAL_NAMES_free(sans);
        return rc;
    }
    /* no SAN: the subject's CN, as older clients accept */
    X509_NAME *subj = X509_get_subject_name(x);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx >= 0) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
        rc = add_name(c, (const char *)ASN1_STRING_get0_data(cn), (size_t)ASN1_STRING_length(cn));
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Generations
 * ------------------------------------------------------------------------------------------ */
static void gen_free(struct tls__gen *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->ncerts; i++) {
        SSL_CTX_free(g->certs[i].ctx);
        for (size_t k = 0; k < g->certs[i].nnames; k++)
            sh_free(g->certs[i].names[k]);
        sh_free(g->certs[i].names);
    }
    sh_free(g->certs);
    sh_free(g);
}

void tls__gen_unref(struct tls__gen *g)
{
    if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1) gen_free(g);
}

struct tls__gen *tls__gen_acquire(struct tls_server *ts)
{
    struct tls__gen *g;

    pthread_mutex_lock(&ts->mu);
    g = ts->cur;
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&ts->mu);
    return g;
}

struct tls__counters *tls__counters(struct tls_server *ts)
{
    return &ts->n;
}

static SSL_CTX *ctx_new(const struct tls_server_config *cfg, const struct tls_cert_files *f,
                        struct sh_diag *d, int *rc)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        *rc = fail_ssl(d, f->cert, "cannot make a TLS context", SH_ENOMEM);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx,
                                  cfg->min_version == TLS_V1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!SSL_CTX_set_cipher_list(ctx, CIPHERS_12)) {
        *rc = fail_ssl(d, f->cert, "cannot set the ciphers", SH_EINVAL);
        goto fail;
    }
    *rc = check_readable(f->cert, "certificate", d);
    if (*rc == 0) *rc = check_readable(f->key, "key", d);
    if (*rc < 0) goto fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1) {
        *rc = fail_ssl(d, f->cert, "not a PEM certificate chain", SH_EPARSE);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1) {
        *rc = fail_ssl(d, f->key, "not a PEM private key (or not the certificate's)", SH_EPARSE);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        *rc = fail_ssl(d, f->key, "the key does not match the certificate", SH_EINVAL);
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, cfg->session_cache ? cfg->session_cache : 20480);
    SSL_CTX_set_timeout(ctx, cfg->session_timeout_s ? cfg->session_timeout_s : 7200);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"shoal", 5);
    SSL_CTX_set_tlsext_servername_callback(ctx, tls__servername_cb);
    if (cfg->client_ca) {
        *rc = check_readable(cfg->client_ca, "client CA bundle", d);
        if (*rc < 0) goto fail;
        if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca, NULL) != 1) {
            *rc = fail_ssl(d, cfg->client_ca, "not a PEM CA bundle", SH_EPARSE);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tls__verify_cb);
        SSL_CTX_set_verify_depth(ctx, 4);
    }
    *rc = 0;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static int gen_new(struct tls_server *ts, const struct tls_server_config *cfg,
                   struct tls__gen **out, struct sh_diag *d)
{
    struct tls__gen *g = sh_calloc(1, sizeof(*g));
    int rc = SH_ENOMEM;

    *out = NULL;
    if (!g) return SH_ENOMEM;
    atomic_init(&g->refs, 1);
    g->ts = ts;
    g->sni_strict = cfg->sni_strict;
    g->certs = sh_calloc(cfg->ncerts, sizeof(*g->certs));
    if (!g->certs) goto fail;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        g->certs[i].ctx = ctx_new(cfg, &cfg->certs[i], d, &rc);
        if (!g->certs[i].ctx) goto fail;
        g->ncerts = i + 1;
        rc = collect_names(&g->certs[i], SSL_CTX_get0_certificate(g->certs[i].ctx));
        if (rc < 0) goto fail;
    }
    /* the ticket keys of the first load carry over to every later one */
    if (ts->have_keys) {
        SSL_CTX_set_tlsext_ticket_keys(g->certs[0].ctx, ts->ticket_keys, TICKET_KEYS_LEN);
    } else if (SSL_CTX_get_tlsext_ticket_keys(g->certs[0].ctx, ts->ticket_keys, TICKET_KEYS_LEN) ==
               1) {
        ts->have_keys = true;
    }
    *out = g;
    return 0;
fail:
    ERR_clear_error();
    gen_free(g);
    return rc;
}

static void stamp_of(const char *file, struct stamp *s)
{
    struct stat st;

    memset(s, 0, sizeof(*s));
    if (stat(file, &st) != 0) return;
    s->dev = (uint64_t)st.st_dev;
    s->ino = (uint64_t)st.st_ino;
    s->size = (uint64_t)st.st_size;
    s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
}

static void files_free(struct tls_cert_files *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        sh_free((char *)f[i].cert);
        sh_free((char *)f[i].key);
    }
    sh_free(f);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = sh_malloc(n + 1);

    if (p) memcpy(p, s, n + 1);
    return p;
}

/* Copies cfg (and its file names) into ts. */
static int take_config(struct tls_server *ts, const struct tls_server_config *cfg)
{
    struct tls_cert_files *f = sh_calloc(cfg->ncerts, sizeof(*f));
    struct stamp *st = sh_calloc(cfg->ncerts * 2, sizeof(*st));

    if (!f || !st) goto fail;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        f[i].cert = dup_str(cfg->certs[i].cert);
        f[i].key = dup_str(cfg->certs[i].key);
        if (!f[i].cert || !f[i].key) goto fail;
    }
    char *ca = cfg->client_ca ? dup_str(cfg->client_ca) : NULL;
    if (cfg->client_ca && !ca) goto fail;
    files_free(ts->files, ts->cfg.ncerts);
    sh_free(ts->stamps);
    sh_free((char *)ts->cfg.client_ca);
    ts->cfg = *cfg;
    ts->cfg.client_ca = ca;
    ts->cfg.certs = ts->files = f;
    ts->stamps = st;
    return 0;
fail:
    files_free(f, cfg->ncerts);
    sh_free(st);
    return SH_ENOMEM;
}

static void stamps_take(struct tls_server *ts, struct stamp *st)
{
    for (size_t i = 0; i < ts->cfg.ncerts; i++) {
        stamp_of(ts->files[i].cert, &st[2 * i]);
        stamp_of(ts->files[i].key, &st[2 * i + 1]);
    }
}

static int check_config(const struct tls_server_config *cfg, struct sh_diag *d)
{
    if (cfg->ncerts == 0 || cfg->ncerts > TLS_MAX_CERTS) {
        sh_diag_set(d, "tls.certs", "%zu certificates: give 1 to %d", cfg->ncerts, TLS_MAX_CERTS);
        return SH_EINVAL;
    }
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (!cfg->certs[i].cert || !*cfg->certs[i].cert || !cfg->certs[i].key ||
            !*cfg->certs[i].key) {
            sh_diag_set(d, "tls.certs", "certificate %zu needs both cert and key files", i);
            return SH_EINVAL;
        }
    }
    return 0;
}

int tls_server_new(const struct tls_server_config *cfg, struct tls_server **out, struct sh_diag *d)
{
    struct tls_server *ts;
    int rc;

    *out = NULL;
    rc = check_config(cfg, d);
    if (rc < 0) return rc;
    ts = sh_calloc(1, sizeof(*ts));
    if (!ts) return SH_ENOMEM;
    atomic_init(&ts->refs, 1);
    pthread_mutex_init(&ts->mu, NULL);
    rc = take_config(ts, cfg);
    if (rc == 0) {
        stamps_take(ts, ts->stamps);
        rc = gen_new(ts, &ts->cfg, &ts->cur, d);
    }
    if (rc < 0) {
        tls_server_free(ts);
        return rc;
    }
    *out = ts;
    return 0;
}

void tls__server_ref(struct tls_server *ts)
{
    atomic_fetch_add_explicit(&ts->refs, 1, memory_order_relaxed);
}

void tls__server_unref(struct tls_server *ts)
{
    if (!ts || atomic_fetch_sub_explicit(&ts->refs, 1, memory_order_acq_rel) != 1) return;
    tls__gen_unref(ts->cur);
    files_free(ts->files, ts->cfg.ncerts);
    sh_free(ts->stamps);
    sh_free((char *)ts->cfg.client_ca);
    pthread_mutex_destroy(&ts->mu);
    OPENSSL_cleanse(ts->ticket_keys, sizeof(ts->ticket_keys));
    sh_free(ts);
}

void tls_server_free(struct tls_server *ts)
{
    tls__server_unref(ts);
}

static void publish(struct tls_server *ts, struct tls__gen *g)
{
    struct tls__gen *old;

    pthread_mutex_lock(&ts->mu);
    old = ts->cur;
    ts->cur = g;
    pthread_mutex_unlock(&ts->mu);
    tls__gen_unref(old);
    atomic_fetch_add_explicit(&ts->n.reloads, 1, memory_order_relaxed);
}

int tls_server_reload(struct tls_server *ts, const struct tls_server_config *cfg, struct sh_diag *d)
{
    struct tls__gen *g;
    struct tls_server tmp;
    int rc;

    if (cfg) {
        rc = check_config(cfg, d);
        if (rc < 0) return rc;
        /* load from the new list first: a failure leaves everything as it was */
        memset(&tmp, 0, sizeof(tmp));
        memcpy(tmp.ticket_keys, ts->ticket_keys, sizeof(tmp.ticket_keys));
        tmp.have_keys = ts->have_keys;
        rc = gen_new(&tmp, cfg, &g, d);
        OPENSSL_cleanse(tmp.ticket_keys, sizeof(tmp.ticket_keys));
        if (rc < 0) return rc;
        g->ts = ts;
        rc = take_config(ts, cfg);
        if (rc < 0) {
            tls__gen_unref(g);
            return rc;
        }
        stamps_take(ts, ts->stamps);
    } else {
        stamps_take(ts, ts->stamps);
        rc = gen_new(ts, &ts->cfg, &g, d);
        if (rc < 0) return rc;
    }
    publish(ts, g);
    return 0;
}

int tls_server_check_files(struct tls_server *ts, struct sh_diag *d)
{
    size_t n = ts->cfg.ncerts * 2;
    struct stamp *now = sh_calloc(n, sizeof(*now));
    bool changed = false;
    int rc;

    if (!now) return SH_ENOMEM;
    stamps_take(ts, now);
    for (size_t i = 0; i < n && !changed; i++)
        changed = memcmp(&now[i], &ts->stamps[i], sizeof(*now)) != 0;
    sh_free(now);
    if (!changed) return 0;
    rc = tls_server_reload(ts, NULL, d); /* records the new stamps, loaded or not */
    return rc < 0 ? rc : 1;
}

int tls_server_pick(struct tls_server *ts, const char *name)
{
    struct tls__gen *g = tls__gen_acquire(ts);
    int i = tls__gen_pick(g, name);

    tls__gen_unref(g);
    return i;
}

void tls_server_stats(struct tls_server *ts, struct tls_server_stats *out)
{
    const struct tls__counters *n = &ts->n;

    out->handshakes = atomic_load_explicit(&n->handshakes, memory_order_relaxed);
    out->resumed = atomic_load_explicit(&n->resumed, memory_order_relaxed);
    out->fail_protocol = atomic_load_explicit(&n->fail_protocol, memory_order_relaxed);
    out->fail_plaintext = atomic_load_explicit(&n->fail_plaintext, memory_order_relaxed);
    out->fail_sni = atomic_load_explicit(&n->fail_sni, memory_order_relaxed);
    out->fail_other = atomic_load_explicit(&n->fail_other, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&n->timeouts, memory_order_relaxed);
    out->reloads = atomic_load_explicit(&n->reloads, memory_order_relaxed);
    out->fail_peer = atomic_load_explicit(&n->fail_peer, memory_order_relaxed);
}
