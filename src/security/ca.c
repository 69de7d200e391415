/* SPDX-License-Identifier: MIT */
/* ca.c: the control plane's CA (generations, rotation, the bundle), the services' SPIFFE-style
 * leaf certificates, and the decisions when to renew a leaf and when a CA leaves the bundle.
 * See security.h ("CA and identities"). OpenSSL 3's EVP and X509 interfaces only. Every
 * OpenSSL failure becomes SH_EIO here, with OpenSSL's reason in the diag (ca__ossl).
 * Thread: the control thread only (the CA object is not shared). */
#include "security/security.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { CA_STATE_MAX_BYTES = 64 * 1024 };
/* ca.json records the last leaf's end this much later than it is, so that issuing many leaves
 * (every instance at a start) writes the file once, not once each; only after a restart does
 * a rotation keep the old CA in the bundle up to this much longer than needed. */
#define CA_LEAF_SLACK_MS (10ull * 60 * 1000)

struct ca_gen {
    uint32_t gen;
    X509 *cert;
    EVP_PKEY *key;
    uint64_t not_before_ms, not_after_ms;
    uint64_t retire_at_ms;  /* 0 while active */
    uint64_t last_leaf_ms;  /* the latest notAfter of the leaves it signed */
    uint64_t saved_leaf_ms; /* what ca.json says of it: last_leaf_ms or later (CA_LEAF_SLACK) */
    char subject[256], fingerprint[SEC_FINGERPRINT_LEN + 1], serial[SEC_SERIAL_HEX_MAX + 1];
};

struct sec_ca {
    char dir[4096];
    char td[SEC_TRUST_DOMAIN_MAX + 1];
    bool is_external;
    uint64_t leaf_ttl_ms, overlap_ms;
    struct ca_gen gens[SEC_CA_MAX]; /* oldest first; the last is the active one */
    size_t ngens;
};

/* ------------------------------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------------------------------ */
uint64_t sec_leaf_renew_at(const struct sec_leaf_view *l)
{
    uint64_t life = l->not_after_ms > l->issued_ms ? l->not_after_ms - l->issued_ms : 0;

    return l->issued_ms + (life - life / 3); /* 2/3, rounded up */
}

bool sec_leaf_should_renew(const struct sec_leaf_view *l, uint32_t active_gen, uint64_t now_ms)
{
    if (l->issued_ms == 0 || l->ca_gen != active_gen) return true;
    return now_ms >= sec_leaf_renew_at(l);
}

enum sec_ca_state sec_ca_state_of(const struct sec_ca_view *v, uint32_t active_gen, uint64_t now_ms)
{
    if (now_ms >= v->not_after_ms) return SEC_CA_RETIRED;
    if (v->gen == active_gen) return SEC_CA_ACTIVE;
    if (v->gen > active_gen || now_ms >= v->retire_at_ms) return SEC_CA_RETIRED;
    return SEC_CA_RETIRING;
}

uint64_t sec_ca_retire_at(uint64_t now_ms, uint64_t last_leaf_not_after_ms, uint64_t overlap_ms)
{
    if (overlap_ms) return now_ms + overlap_ms;
    return SH_MAX(now_ms, last_leaf_not_after_ms);
}

const char *sec_ca_state_name(enum sec_ca_state s)
{
    return s == SEC_CA_ACTIVE ? "active" : s == SEC_CA_RETIRING ? "retiring" : "retired";
}

/* ------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------ */
int sec_trust_domain_check(const char *td, struct sh_diag *d)
{
    size_t n = strlen(td);

    if (n == 0 || n > SEC_TRUST_DOMAIN_MAX || td[0] == '.' || td[n - 1] == '.') goto bad;
    for (size_t i = 0; i < n; i++) {
        char c = td[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            goto bad;
    }
    return 0;
bad:
    sh_diag_set(d, "trust_domain",
                "'%.64s' is not a trust domain (1 to 255 of a-z, 0-9, '.', '-', '_'; no "
                "leading or trailing '.')",
                td);
    return SH_EINVAL;
}

static bool dns_label(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SEC_SERVICE_NAME_MAX || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

int sec_identity(const char *td, const char *service, char *out, size_t len, struct sh_diag *d)
{
    if (!dns_label(service)) {
        sh_diag_set(d, "service",
                    "'%.64s' is not a service name (a DNS label: 1 to 63 of a-z, 0-9 and '-', "
                    "not starting or ending with '-')",
                    service);
        return SH_EINVAL;
    }
    if ((size_t)snprintf(out, len, "spiffe://%s/service/%s", td, service) >= len) {
        sh_diag_set(d, "service", "the identity is too long");
        return SH_ETOOBIG;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * OpenSSL helpers
 * ------------------------------------------------------------------------------------------ */

/* The one place OpenSSL's errors become ours: its first reason goes into d, the queue is
 * emptied. */
static int ca__ossl(struct sh_diag *d, const char *where, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[160] = "";

    if (e) ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    sh_diag_set(d, where, "%s%s%s", what, reason[0] ? ": " : "", reason);
    return SH_EIO;
}

static uint64_t ms_of(const ASN1_TIME *t)
{
    struct tm tm;
    time_t s;

    if (!t || !ASN1_TIME_to_tm(t, &tm)) return 0;
    s = timegm(&tm);
    return s < 0 ? 0 : (uint64_t)s * 1000;
}

static void serial_hex(const X509 *x, char *out, size_t n)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *h = bn ? BN_bn2hex(bn) : NULL;

    snprintf(out, n, "%s", h ? h : "");
    OPENSSL_free(h);
    BN_free(bn);
}

static void fingerprint(const X509 *x, char *out, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    size_t o = 0;

    out[0] = '\0';
    if (!X509_digest(x, EVP_sha256(), md, &len)) return;
    for (unsigned int i = 0; i < len && o + 3 < n; i++) {
        if (i) out[o++] = ':';
        out[o++] = digits[md[i] >> 4];
        out[o++] = digits[md[i] & 15];
    }
    out[o] = '\0';
}

/* Fills what a generation shows from its certificate. */
static void gen_describe(struct ca_gen *g)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;

    g->not_before_ms = ms_of(X509_get0_notBefore(g->cert));
    g->not_after_ms = ms_of(X509_get0_notAfter(g->cert));
    fingerprint(g->cert, g->fingerprint, sizeof(g->fingerprint));
    serial_hex(g->cert, g->serial, sizeof(g->serial));
    g->subject[0] = '\0';
    if (b && X509_NAME_print_ex(b, X509_get_subject_name(g->cert), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(b, &p);
        snprintf(g->subject, sizeof(g->subject), "%.*s", (int)SH_MIN(n, 255), p);
    }
    BIO_free(b);
}

/* PEM text of a certificate or key into a NUL-terminated sh_malloc'd string (NULL: failure). */
static char *pem_of(X509 *x, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p, *out = NULL;
    long n;
    int ok;

    if (!b) return NULL;
    ok = x ? PEM_write_bio_X509(b, x) : PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(b, &p);
    if (ok && n > 0) out = sh_strndup(p, (size_t)n);
    if (k && n > 0) OPENSSL_cleanse(p, (size_t)n);
    BIO_free(b);
    return out;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1);

    X509_EXTENSION_free(e);
    return ok ? 0 : SH_EIO;
}

struct cert_spec {
    EVP_PKEY *pub;         /* the subject's key */
    const char *cn, *org;  /* subject */
    X509 *issuer;          /* NULL: self-signed */
    EVP_PKEY *issuer_key;  /* signs */
    uint64_t nb_ms, na_ms; /* validity */
    bool is_ca;
    const char *uri; /* the URI SAN */
};

/* Builds and signs a certificate. 0 and *out, or SH_EIO/SH_ENOMEM with d. */
static int make_cert(const struct cert_spec *s, X509 **out, struct sh_diag *d)
{
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX ctx;
    BIGNUM *bn = NULL;
    unsigned char rnd[16];
    char san[SEC_IDENTITY_MAX + 16];
    int rc = SH_EIO;

    *out = NULL;
    if (!x) return SH_ENOMEM;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) goto fail;
    rnd[0] = (unsigned char)((rnd[0] & 0x7f) | 0x40); /* positive, 16 bytes long */
    bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    name = X509_get_subject_name(x);
    if (!bn || !X509_set_version(x, X509_VERSION_3) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        !ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(s->nb_ms / 1000)) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(s->na_ms / 1000)) ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)s->org, -1, -1,
                                    0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, s->issuer ? X509_get_subject_name(s->issuer) : name) ||
        !X509_set_pubkey(x, s->pub))
        goto fail;
    X509V3_set_ctx(&ctx, s->issuer ? s->issuer : x, x, NULL, NULL, 0);
    snprintf(san, sizeof(san), "URI:%s", s->uri);
    /* the subject key id before the authority key id: a self-signed one names its own */
    if (add_ext(x, &ctx, NID_basic_constraints,
                s->is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") < 0 ||
        add_ext(x, &ctx, NID_key_usage,
                s->is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature") < 0 ||
        (!s->is_ca && add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") < 0) ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0 ||
        add_ext(x, &ctx, NID_subject_alt_name, san) < 0)
        goto fail;
    if (X509_sign(x, s->issuer_key, EVP_sha256()) <= 0) goto fail;
    BN_free(bn);
    *out = x;
    return 0;
fail:
    rc = ca__ossl(d, s->cn, "cannot make the certificate");
    BN_free(bn);
    X509_free(x);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------ */
static int write_atomic(const char *path, struct slice data, mode_t mode, struct sh_diag *d)
{
    char tmp[4200];
    int fd;
    size_t off = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        sh_diag_set(d, path, "the path is too long");
        return SH_ETOOBIG;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) goto fail;
    if (fchmod(fd, mode) != 0) goto fail;
    while (off < data.len) {
        ssize_t w = write(fd, data.ptr + off, data.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto fail;
        off += (size_t)w;
    }
    if (fsync(fd) != 0) goto fail;
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) goto fail;
    return 0;
fail:
    sh_diag_set(d, path, "cannot write: %s", strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    return SH_EIO;
}

static int gen_path(const struct sec_ca *ca, uint32_t gen, const char *ext, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "%s/ca-%u.%s", ca->dir, gen, ext) < n ? 0 : SH_ETOOBIG;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1; /* an encrypted key is refused rather than prompted for */
}

static int load_pem(const char *path, X509 **cert, EVP_PKEY **key, struct sh_diag *d)
{
    BIO *b = BIO_new_file(path, "r");

    if (!b) {
        ERR_clear_error();
        sh_diag_set(d, path, "cannot read: %s", strerror(errno));
        return SH_EIO;
    }
    if (cert) *cert = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
    if (key) *key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if ((cert && !*cert) || (key && !*key))
        return ca__ossl(d, path,
                        cert ? "not a PEM certificate"
                             : "not a PEM private key (or one with a passphrase)");
    return 0;
}

/* ca.json: the trust domain and, per generation, retire_at_ms and last_leaf_ms. */
static int save_state(const struct sec_ca *ca, struct sh_diag *d)
{
    json_t *o = json_pack("{s:s, s:[]}", "trust_domain", ca->td, "cas"), *arr;
    char path[4200], *text;
    int rc;

    if (!o) return SH_ENOMEM;
    arr = json_object_get(o, "cas");
    for (size_t i = 0; i < ca->ngens; i++) {
        const struct ca_gen *g = &ca->gens[i];
        json_array_append_new(arr, json_pack("{s:I, s:I, s:I}", "gen", (json_int_t)g->gen,
                                             "retire_at_ms", (json_int_t)g->retire_at_ms,
                                             "last_leaf_ms", (json_int_t)g->saved_leaf_ms));
    }
    text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) return SH_ENOMEM;
    snprintf(path, sizeof(path), "%s/ca.json", ca->dir);
    rc = write_atomic(path, slice_from_cstr(text), 0600, d);
    sh_free(text);
    return rc;
}

static void gen_release(struct ca_gen *g)
{
    X509_free(g->cert);
    EVP_PKEY_free(g->key);
    memset(g, 0, sizeof(*g));
}

/* Makes generation <gen>: a key and a self-signed certificate, both written. */
static int gen_make(struct sec_ca *ca, uint32_t gen, uint64_t now_ms, struct ca_gen *g,
                    struct sh_diag *d)
{
    char cn[64], uri[SEC_IDENTITY_MAX + 1], path[4200], *pem = NULL;
    int rc;

    memset(g, 0, sizeof(*g));
    g->gen = gen;
    g->key = EVP_EC_gen("P-256");
    if (!g->key) return ca__ossl(d, "ca", "cannot make a P-256 key");
    snprintf(cn, sizeof(cn), "shoal CA %u", gen);
    snprintf(uri, sizeof(uri), "spiffe://%s", ca->td);
    rc = make_cert(&(struct cert_spec){.pub = g->key,
                                       .cn = cn,
                                       .org = ca->td,
                                       .issuer_key = g->key,
                                       .nb_ms = now_ms - SEC_CERT_BACKDATE_MS,
                                       .na_ms = now_ms + SEC_CA_TTL_MS,
                                       .is_ca = true,
                                       .uri = uri},
                   &g->cert, d);
    if (rc < 0) goto fail;
    gen_describe(g);
    /* the key first: a certificate on disk always has its key */
    rc = SH_ENOMEM;
    if (!(pem = pem_of(NULL, g->key))) goto fail;
    rc = gen_path(ca, gen, "key", path, sizeof(path));
    if (rc == 0) rc = write_atomic(path, slice_from_cstr(pem), 0600, d);
    explicit_bzero(pem, strlen(pem));
    sh_free(pem);
    if (rc < 0) goto fail;
    rc = SH_ENOMEM;
    if (!(pem = pem_of(g->cert, NULL))) goto fail;
    rc = gen_path(ca, gen, "pem", path, sizeof(path));
    if (rc == 0) rc = write_atomic(path, slice_from_cstr(pem), 0644, d);
    sh_free(pem);
    if (rc < 0) goto fail;
    return 0;
fail:
    gen_release(g);
    return rc;
}

static int gen_load(struct sec_ca *ca, struct ca_gen *g, struct sh_diag *d)
{
    char path[4200];

    SH_TRY(gen_path(ca, g->gen, "pem", path, sizeof(path)));
    SH_TRY(load_pem(path, &g->cert, NULL, d));
    SH_TRY(gen_path(ca, g->gen, "key", path, sizeof(path)));
    SH_TRY(load_pem(path, NULL, &g->key, d));
    if (X509_check_private_key(g->cert, g->key) != 1)
        return ca__ossl(d, path, "the key does not match its certificate");
    gen_describe(g);
    return 0;
}

static int read_small(const char *path, struct buf *out, struct sh_diag *d)
{
    FILE *f = fopen(path, "re");
    char chunk[4096];
    size_t n;

    if (!f) {
        sh_diag_set(d, path, "cannot read: %s", strerror(errno));
        return errno == ENOENT ? SH_ENOENT : SH_EIO;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && buf_append(out, chunk, n) == 0) {
    }
    fclose(f);
    if (out->err) sh_diag_set(d, path, "larger than %zu bytes", out->max);
    return out->err;
}

/* Loads ca.json and every generation it lists. SH_ENOENT when there is no ca.json. */
static int load_dir(struct sec_ca *ca, struct sh_diag *d)
{
    struct buf b = BUF_INIT(CA_STATE_MAX_BYTES);
    char path[4200];
    json_t *o, *arr, *e;
    json_error_t je;
    const char *td;
    size_t i;
    int rc;

    snprintf(path, sizeof(path), "%s/ca.json", ca->dir);
    rc = read_small(path, &b, d);
    if (rc < 0) {
        buf_release(&b);
        return rc;
    }
    o = json_loadb(b.data ? b.data : "", b.len, 0, &je);
    buf_release(&b);
    arr = o ? json_object_get(o, "cas") : NULL;
    td = o ? json_string_value(json_object_get(o, "trust_domain")) : NULL;
    if (!o || !td || !json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > SEC_CA_MAX) {
        json_decref(o);
        sh_diag_set(d, path, "not a CA state file (expected trust_domain and 1 to %d cas)",
                    SEC_CA_MAX);
        return SH_ECORRUPT;
    }
    if (strcmp(td, ca->td)) {
        sh_diag_set(d, path,
                    "this CA was made for trust domain '%.100s', not '%.100s' (remove %.100s to "
                    "make a new CA: every certificate it signed stops being trusted)",
                    td, ca->td, ca->dir);
        json_decref(o);
        return SH_EINVAL;
    }
    json_array_foreach(arr, i, e)
    {
        json_int_t gen = json_integer_value(json_object_get(e, "gen"));
        json_int_t ra = json_integer_value(json_object_get(e, "retire_at_ms"));
        json_int_t ll = json_integer_value(json_object_get(e, "last_leaf_ms"));
        if (gen <= 0 || gen > UINT32_MAX || ra < 0 || ll < 0 ||
            (i && (uint32_t)gen <= ca->gens[i - 1].gen)) {
            json_decref(o);
            sh_diag_set(d, path, "cas[%zu]: a bad generation", i);
            return SH_ECORRUPT;
        }
        struct ca_gen *g = &ca->gens[ca->ngens++];
        g->gen = (uint32_t)gen;
        g->retire_at_ms = (uint64_t)ra;
        g->last_leaf_ms = g->saved_leaf_ms = (uint64_t)ll;
        rc = gen_load(ca, g, d);
        if (rc < 0) {
            json_decref(o);
            return rc;
        }
    }
    json_decref(o);
    return 0;
}

static struct sec_ca_view view_of(const struct ca_gen *g)
{
    return (struct sec_ca_view){
        .gen = g->gen, .not_after_ms = g->not_after_ms, .retire_at_ms = g->retire_at_ms};
}

static enum sec_ca_state gen_state(const struct sec_ca *ca, const struct ca_gen *g, uint64_t now)
{
    struct sec_ca_view v = view_of(g);

    return sec_ca_state_of(&v, sec_ca_active_gen(ca), now);
}

/* Removes the retired generations but the active one. true when one was removed. */
static bool purge(struct sec_ca *ca, uint64_t now_ms)
{
    bool any = false;
    size_t k = 0;

    for (size_t i = 0; i < ca->ngens; i++) {
        struct ca_gen *g = &ca->gens[i];
        if (i + 1 < ca->ngens && gen_state(ca, g, now_ms) == SEC_CA_RETIRED) {
            char path[4200];
            if (!ca->is_external && gen_path(ca, g->gen, "key", path, sizeof(path)) == 0)
                unlink(path);
            if (!ca->is_external && gen_path(ca, g->gen, "pem", path, sizeof(path)) == 0)
                unlink(path);
            SH_LOG(SH_INFO, "security", "a retired CA left the bundle", LF_UINT("gen", g->gen));
            gen_release(g);
            any = true;
            continue;
        }
        if (k != i) {
            ca->gens[k] = *g;
            memset(g, 0, sizeof(*g));
        }
        k++;
    }
    ca->ngens = k;
    return any;
}

static int open_external(struct sec_ca *ca, const struct sec_ca_config *cfg, struct sh_diag *d)
{
    struct ca_gen *g = &ca->gens[0];

    ca->is_external = true;
    g->gen = 1;
    SH_TRY(load_pem(cfg->cert_file, &g->cert, NULL, d));
    ca->ngens = 1;
    SH_TRY(load_pem(cfg->key_file, NULL, &g->key, d));
    if (X509_check_private_key(g->cert, g->key) != 1)
        return ca__ossl(d, cfg->key_file, "the key does not match the CA certificate");
    if (X509_check_ca(g->cert) != 1) {
        sh_diag_set(d, cfg->cert_file, "not a CA certificate (basicConstraints CA:TRUE)");
        return SH_EINVAL;
    }
    gen_describe(g);
    return 0;
}

int sec_ca_open(const struct sec_ca_config *cfg, uint64_t now_ms, struct sec_ca **out,
                struct sh_diag *d)
{
    struct sec_ca *ca;
    int rc;

    *out = NULL;
    if (cfg->trust_domain) SH_TRY(sec_trust_domain_check(cfg->trust_domain, d));
    if (cfg->leaf_ttl_ms &&
        (cfg->leaf_ttl_ms < SEC_LEAF_TTL_MIN_MS || cfg->leaf_ttl_ms > SEC_LEAF_TTL_MAX_MS)) {
        sh_diag_set(d, "cert_ttl", "a certificate's lifetime must be from 2s to 30 days");
        return SH_EINVAL;
    }
    if (!cfg->cert_file != !cfg->key_file) {
        sh_diag_set(d, "ca", "an external CA needs both its certificate and its key");
        return SH_EINVAL;
    }
    ca = sh_calloc(1, sizeof(*ca));
    if (!ca) return SH_ENOMEM;
    snprintf(ca->td, sizeof(ca->td), "%s",
             cfg->trust_domain ? cfg->trust_domain : SEC_TRUST_DOMAIN_DEFAULT);
    ca->leaf_ttl_ms = cfg->leaf_ttl_ms ? cfg->leaf_ttl_ms : SEC_LEAF_TTL_DEFAULT_MS;
    ca->overlap_ms = cfg->overlap_ms;
    json_set_alloc_funcs(sh_malloc, sh_free);
    if (cfg->cert_file) {
        rc = open_external(ca, cfg, d);
        if (rc < 0) goto fail;
        *out = ca;
        return 0;
    }
    if ((size_t)snprintf(ca->dir, sizeof(ca->dir), "%s", cfg->dir) >= sizeof(ca->dir)) {
        sh_diag_set(d, "ca", "the directory's path is too long");
        rc = SH_ETOOBIG;
        goto fail;
    }
    if (mkdir(ca->dir, 0700) != 0 && errno != EEXIST) {
        sh_diag_set(d, ca->dir, "cannot make the CA's directory: %s", strerror(errno));
        rc = SH_EIO;
        goto fail;
    }
    rc = load_dir(ca, d);
    if (rc == SH_ENOENT) {
        memset(d, 0, sizeof(*d));
        rc = gen_make(ca, 1, now_ms, &ca->gens[0], d);
        if (rc == 0) ca->ngens = 1;
        if (rc == 0) rc = save_state(ca, d);
        if (rc == 0)
            SH_LOG(SH_INFO, "security", "a new CA was made", LF_STR("dir", ca->dir),
                   LF_STR("trust_domain", ca->td), LF_STR("sha256", ca->gens[0].fingerprint));
    }
    if (rc < 0) goto fail;
    if (purge(ca, now_ms)) {
        rc = save_state(ca, d);
        if (rc < 0) goto fail;
    }
    *out = ca;
    return 0;
fail:
    sec_ca_free(ca);
    return rc;
}

void sec_ca_free(struct sec_ca *ca)
{
    if (!ca) return;
    for (size_t i = 0; i < ca->ngens; i++)
        gen_release(&ca->gens[i]);
    sh_free(ca);
}

const char *sec_ca_trust_domain(const struct sec_ca *ca)
{
    return ca->td;
}

uint64_t sec_ca_leaf_ttl(const struct sec_ca *ca)
{
    return ca->leaf_ttl_ms;
}

uint32_t sec_ca_active_gen(const struct sec_ca *ca)
{
    return ca->ngens ? ca->gens[ca->ngens - 1].gen : 0;
}

bool sec_ca_is_external(const struct sec_ca *ca)
{
    return ca->is_external;
}

uint64_t sec_ca_bundle_version(const struct sec_ca *ca, uint64_t now_ms)
{
    uint64_t n = 0;

    /* between two rotations the bundle only shrinks: (active gen, size) never repeats */
    for (size_t i = 0; i < ca->ngens; i++)
        n += gen_state(ca, &ca->gens[i], now_ms) != SEC_CA_RETIRED;
    return (uint64_t)sec_ca_active_gen(ca) << 32 | n;
}

void sec_ca_tick(struct sec_ca *ca, uint64_t now_ms)
{
    struct sh_diag d = {{0}, {0}};

    if (purge(ca, now_ms) && !ca->is_external && save_state(ca, &d) < 0)
        SH_LOG(SH_WARN, "security", "cannot save the CA's state", LF_STR("where", d.where),
               LF_STR("error", d.what));
}

int sec_ca_rotate(struct sec_ca *ca, uint64_t now_ms, struct sh_diag *d)
{
    struct ca_gen *old, fresh;
    uint64_t was;
    int rc;

    if (ca->is_external) {
        sh_diag_set(d, "ca",
                    "the CA is external (security.ca in the manifest): replace its files and "
                    "restart instead");
        return SH_ENOTSUP;
    }
    sec_ca_tick(ca, now_ms);
    if (ca->ngens >= SEC_CA_MAX) {
        sh_diag_set(d, "ca", "%d CAs are still in the bundle: wait until a retiring one leaves",
                    SEC_CA_MAX);
        return SH_ELIMIT;
    }
    old = &ca->gens[ca->ngens - 1];
    rc = gen_make(ca, old->gen + 1, now_ms, &fresh, d);
    if (rc < 0) return rc;
    was = old->retire_at_ms;
    old->retire_at_ms = sec_ca_retire_at(now_ms, old->last_leaf_ms, ca->overlap_ms);
    ca->gens[ca->ngens++] = fresh;
    rc = save_state(ca, d); /* the commit point: before it, the old generation is still active */
    if (rc < 0) {
        char path[4200];
        ca->ngens--;
        old->retire_at_ms = was;
        if (gen_path(ca, fresh.gen, "key", path, sizeof(path)) == 0) unlink(path);
        if (gen_path(ca, fresh.gen, "pem", path, sizeof(path)) == 0) unlink(path);
        gen_release(&fresh);
        return rc;
    }
    SH_LOG(SH_INFO, "security", "the CA was rotated", LF_UINT("gen", fresh.gen),
           LF_STR("sha256", fresh.fingerprint), LF_UINT("old_retires_ms", old->retire_at_ms));
    return 0;
}

int sec_ca_bundle_pem(const struct sec_ca *ca, uint64_t now_ms, struct buf *out)
{
    for (size_t i = ca->ngens; i-- > 0;) {
        char *pem;
        if (gen_state(ca, &ca->gens[i], now_ms) == SEC_CA_RETIRED) continue;
        pem = pem_of(ca->gens[i].cert, NULL);
        if (!pem) return SH_ENOMEM;
        buf_appends(out, slice_from_cstr(pem));
        sh_free(pem);
    }
    return out->err;
}

size_t sec_ca_list(const struct sec_ca *ca, uint64_t now_ms, struct sec_ca_info *out, size_t max)
{
    size_t n = 0;

    for (size_t i = ca->ngens; i-- > 0 && n < max;) {
        const struct ca_gen *g = &ca->gens[i];
        enum sec_ca_state st = gen_state(ca, g, now_ms);
        if (st == SEC_CA_RETIRED) continue;
        struct sec_ca_info *o = &out[n++];
        memset(o, 0, sizeof(*o));
        o->gen = g->gen;
        o->state = st;
        o->is_external = ca->is_external;
        memcpy(o->subject, g->subject, sizeof(o->subject));
        memcpy(o->fingerprint, g->fingerprint, sizeof(o->fingerprint));
        memcpy(o->serial, g->serial, sizeof(o->serial));
        o->not_before_ms = g->not_before_ms;
        o->not_after_ms = g->not_after_ms;
        o->retire_at_ms = st == SEC_CA_RETIRING ? g->retire_at_ms : 0;
    }
    return n;
}

/* ------------------------------------------------------------------------------------------
 * Leaves
 * ------------------------------------------------------------------------------------------ */
int sec_ca_issue(struct sec_ca *ca, const char *service, uint64_t ttl_ms, uint64_t now_ms,
                 struct sec_leaf *out, struct sh_diag *d)
{
    struct ca_gen *g = &ca->gens[ca->ngens - 1];
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    SH_TRY(sec_identity(ca->td, service, out->identity, sizeof(out->identity), d));
    if (ttl_ms == 0) ttl_ms = ca->leaf_ttl_ms;
    if (ttl_ms < SEC_LEAF_TTL_MIN_MS || ttl_ms > SEC_LEAF_TTL_MAX_MS) {
        sh_diag_set(d, "ttl", "a certificate's lifetime must be from 2s to 30 days");
        return SH_EINVAL;
    }
    if (now_ms + SEC_LEAF_TTL_MIN_MS > g->not_after_ms) {
        sh_diag_set(d, "ca", "the CA's certificate has expired: rotate it");
        return SH_EINVAL;
    }
    out->issued_ms = now_ms;
    out->not_after_ms = SH_MIN(now_ms + ttl_ms, g->not_after_ms) / 1000 * 1000; /* whole s */
    out->ca_gen = g->gen;
    key = EVP_EC_gen("P-256");
    if (!key) return ca__ossl(d, "service", "cannot make a P-256 key");
    rc = make_cert(&(struct cert_spec){.pub = key,
                                       .cn = service,
                                       .org = ca->td,
                                       .issuer = g->cert,
                                       .issuer_key = g->key,
                                       .nb_ms = now_ms - SEC_CERT_BACKDATE_MS,
                                       .na_ms = out->not_after_ms,
                                       .uri = out->identity},
                   &x, d);
    if (rc < 0) goto fail;
    serial_hex(x, out->serial, sizeof(out->serial));
    out->cert_pem = pem_of(x, NULL);
    out->key_pem = pem_of(NULL, key);
    rc = SH_ENOMEM;
    if (!out->cert_pem || !out->key_pem) goto fail;
    X509_free(x);
    EVP_PKEY_free(key);
    g->last_leaf_ms = SH_MAX(g->last_leaf_ms, out->not_after_ms);
    if (!ca->is_external && g->last_leaf_ms > g->saved_leaf_ms) {
        struct sh_diag sd = {{0}, {0}};
        g->saved_leaf_ms = SH_MIN(g->last_leaf_ms + CA_LEAF_SLACK_MS, g->not_after_ms);
        /* a lost record only shortens a later rotation's overlap; the leaf is still good */
        if (save_state(ca, &sd) < 0)
            SH_LOG(SH_WARN, "security", "cannot save the CA's state", LF_STR("where", sd.where),
                   LF_STR("error", sd.what));
    }
    return 0;
fail:
    X509_free(x);
    EVP_PKEY_free(key);
    sec_leaf_release(out);
    return rc;
}

void sec_leaf_release(struct sec_leaf *l)
{
    if (l->key_pem) explicit_bzero(l->key_pem, strlen(l->key_pem));
    sh_free(l->key_pem);
    sh_free(l->cert_pem);
    memset(l, 0, sizeof(*l));
}

int sec_tls_files_write(const char *dir, const struct sec_leaf *leaf, struct slice bundle,
                        bool has_bundle, struct sh_diag *d)
{
    char path[4200];

    if (strlen(dir) > 4000) {
        sh_diag_set(d, dir, "the path is too long");
        return SH_ETOOBIG;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sh_diag_set(d, dir, "cannot make the directory: %s", strerror(errno));
        return SH_EIO;
    }
    /* the key before the certificate: a reader that sees a new certificate finds its key */
    if (leaf) {
        snprintf(path, sizeof(path), "%s/key.pem", dir);
        SH_TRY(write_atomic(path, slice_from_cstr(leaf->key_pem), 0600, d));
        snprintf(path, sizeof(path), "%s/cert.pem", dir);
        SH_TRY(write_atomic(path, slice_from_cstr(leaf->cert_pem), 0644, d));
    }
    if (has_bundle) {
        snprintf(path, sizeof(path), "%s/ca.pem", dir);
        SH_TRY(write_atomic(path, bundle, 0644, d));
    }
    return 0;
}
