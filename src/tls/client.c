/* SPDX-License-Identifier: MIT */
/* client.c: mTLS client contexts (docs/security.md, "mTLS between meshes"): the certificate a
 * node proxy presents for one of its services, the bundle the server must chain to, TLS 1.3
 * only; and the SPIFFE IDs read from certificates. The SSL_CTX is counted by OpenSSL: each
 * connection holds a reference, so a renewed certificate is a new tls_client while the old
 * connections finish on the old one.
 * Threads: a tls_client is immutable once made; any thread. */
#include "tls/tls_int.h"

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* Clients are shared: a config rebuilt from the same files (the mesh rebuilds its config on
 * every discovery change) gets the same tls_client, so the HTTP client's pools, keyed by it,
 * keep their connections. A file that changed (size, mtime, inode) makes a new one. */
struct tls_client {
    SSL_CTX *ctx;
    uint32_t refs;  /* under cache_mu */
    char *files[3]; /* cert, key, ca */
    struct stat st[3];
    struct tls_client *next;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_client *cache;

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* A live client for these files as they are now (with a reference), or NULL. */
static struct tls_client *cache_find(const char *const files[3], const struct stat st[3])
{
    struct tls_client *c;

    pthread_mutex_lock(&cache_mu);
    for (c = cache; c; c = c->next) {
        bool same = true;
        for (int i = 0; i < 3 && same; i++)
            same = !strcmp(c->files[i], files[i]) && same_file(&c->st[i], &st[i]);
        if (same) {
            c->refs++;
            break;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    return c;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = sh_malloc(n + 1);

    if (p) memcpy(p, s, n + 1);
    return p;
}

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

static int readable(const char *file, const char *what, struct sh_diag *d)
{
    FILE *f;
    int rc;

    if (!file || !*file) {
        sh_diag_set(d, "tls", "no %s file given", what);
        return SH_EINVAL;
    }
    f = fopen(file, "r");
    if (f) {
        fclose(f);
        return 0;
    }
    rc = -errno;
    sh_diag_set(d, file, "cannot read the %s: %s", what, strerror(-rc));
    return rc == -ENOENT ? SH_ENOENT : rc == -EACCES ? SH_EPERM : rc;
}

int tls_client_new(const struct tls_client_config *cfg, struct tls_client **out, struct sh_diag *d)
{
    const char *const files[3] = {cfg->cert.cert, cfg->cert.key, cfg->ca};
    struct stat st[3];
    struct tls_client *tcl;
    SSL_CTX *ctx;
    int rc;

    *out = NULL;
    if ((rc = readable(cfg->cert.cert, "certificate", d)) < 0 ||
        (rc = readable(cfg->cert.key, "key", d)) < 0 ||
        (rc = readable(cfg->ca, "CA bundle", d)) < 0)
        return rc;
    for (int i = 0; i < 3; i++)
        if (stat(files[i], &st[i]) != 0) memset(&st[i], 0, sizeof(st[i]));
    if ((*out = cache_find(files, st)) != NULL) return 0;
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return fail_ssl(d, cfg->cert.cert, "cannot make a TLS context", SH_ENOMEM);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert.cert) != 1) {
        rc = fail_ssl(d, cfg->cert.cert, "not a PEM certificate chain", SH_EPARSE);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->cert.key, SSL_FILETYPE_PEM) != 1) {
        rc = fail_ssl(d, cfg->cert.key, "not a PEM private key (or not the certificate's)",
                      SH_EPARSE);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        rc = fail_ssl(d, cfg->cert.key, "the key does not match the certificate", SH_EINVAL);
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca, NULL) != 1) {
        rc = fail_ssl(d, cfg->ca, "not a PEM CA bundle", SH_EPARSE);
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, tls__verify_cb);
    SSL_CTX_set_verify_depth(ctx, 4);
    tcl = sh_calloc(1, sizeof(*tcl));
    if (!tcl) {
        rc = SH_ENOMEM;
        goto fail;
    }
    tcl->ctx = ctx;
    tcl->refs = 1;
    for (int i = 0; i < 3; i++) {
        tcl->files[i] = dup_str(files[i]);
        tcl->st[i] = st[i];
        if (!tcl->files[i]) {
            for (int k = 0; k < i; k++)
                sh_free(tcl->files[k]);
            sh_free(tcl);
            rc = SH_ENOMEM;
            goto fail;
        }
    }
    pthread_mutex_lock(&cache_mu);
    tcl->next = cache;
    cache = tcl;
    pthread_mutex_unlock(&cache_mu);
    *out = tcl;
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

void tls_client_free(struct tls_client *tcl)
{
    struct tls_client **link;

    if (!tcl) return;
    pthread_mutex_lock(&cache_mu);
    if (--tcl->refs > 0) {
        pthread_mutex_unlock(&cache_mu);
        return;
    }
    for (link = &cache; *link; link = &(*link)->next) {
        if (*link == tcl) {
            *link = tcl->next;
            break;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    SSL_CTX_free(tcl->ctx);
    for (int i = 0; i < 3; i++)
        sh_free(tcl->files[i]);
    sh_free(tcl);
}

int tls_client_conn_new(struct tls_client *tcl, const char *server_name, const char *expect_id,
                        struct tls_conn **out)
{
    return tls__client_conn_new(tcl->ctx, server_name, expect_id, out);
}

int tls__cert_spiffe(X509 *x, char *out, size_t cap)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int rc = SH_ENOENT;

    if (cap) out[0] = '\0';
    if (!sans) return SH_ENOENT;
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        const char *p;
        size_t n;
        if (gn->type != GEN_URI) continue;
        p = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        n = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (n < 9 || memcmp(p, "spiffe://", 9) != 0 || memchr(p, '\0', n)) continue;
        if (n >= cap) {
            rc = SH_ELIMIT;
            break;
        }
        memcpy(out, p, n);
        out[n] = '\0';
        rc = 0;
        break;
    }
    GENERAL_NAMES_free(sans);
    return rc;
}

static bool name_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool tls_spiffe_service(const char *id, const char *trust_domain, char *out, size_t cap)
{
    size_t td, n;
    const char *name;

    if (cap) out[0] = '\0';
    if (!id || !trust_domain || !*trust_domain || strncmp(id, "spiffe://", 9) != 0) return false;
    id += 9;
    td = strlen(trust_domain);
    if (strncmp(id, trust_domain, td) != 0 || strncmp(id + td, "/service/", 9) != 0) return false;
    name = id + td + 9;
    n = strlen(name);
    if (n == 0 || n >= cap) return false;
    for (size_t i = 0; i < n; i++)
        if (!name_byte(name[i])) return false;
    memcpy(out, name, n + 1);
    return true;
}
