/* SPDX-License-Identifier: MIT */
/* test_ca.c: the CA and the services' identities: the renewal and bundle decisions as tables;
 * a leaf issued and checked with OpenSSL (signature, chain, URI SAN, lifetime, key); bad
 * service names and lifetimes refused; the CA kept across a reopen, rotated (old leaves still
 * verify during the overlap, new ones come from the new CA), its retired generation dropped;
 * another trust domain refused; an external CA; the instance files' modes. */
#include "test_util.h"

#include "security/security.h"

#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOUR (3600ull * 1000)

static void test_decide__renewal_table(void **state)
{
    const struct {
        struct sec_leaf_view l;
        uint32_t active;
        uint64_t now;
        bool renew;
        const char *why;
    } cases[] = {
        {{0, 0, 0}, 1, 1000, true, "none issued yet"},
        {{1000, 1000 + 24 * HOUR, 1}, 1, 1000 + 1 * HOUR, false, "young"},
        {{1000, 1000 + 24 * HOUR, 1}, 1, 1000 + 16 * HOUR - 1, false, "just before 2/3"},
        {{1000, 1000 + 24 * HOUR, 1}, 1, 1000 + 16 * HOUR, true, "at 2/3"},
        {{1000, 1000 + 24 * HOUR, 1}, 1, 1000 + 30 * HOUR, true, "expired"},
        {{1000, 1000 + 24 * HOUR, 1}, 2, 1000 + 1 * HOUR, true, "signed by a rotated-out CA"},
        {{1000, 11000, 3}, 3, 7666, false, "10 s leaf at 6.666 s"},
        {{1000, 11000, 3}, 3, 7667, true, "10 s leaf at 6.667 s"},
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        bool got = sec_leaf_should_renew(&cases[i].l, cases[i].active, cases[i].now);
        if (got != cases[i].renew) fail_msg("case %zu (%s): got %d", i, cases[i].why, got);
    }
    struct sec_leaf_view l = {.issued_ms = 0, .not_after_ms = 3000, .ca_gen = 1};
    assert_int_equal(sec_leaf_renew_at(&l), 2000);
}

static void test_decide__bundle_table(void **state)
{
    const uint64_t far = 100000 * HOUR;
    const struct {
        struct sec_ca_view v;
        uint32_t active;
        uint64_t now;
        enum sec_ca_state want;
        const char *why;
    } cases[] = {
        {{1, far, 0}, 1, 5000, SEC_CA_ACTIVE, "the only one"},
        {{1, 4000, 0}, 1, 5000, SEC_CA_RETIRED, "the active one expired"},
        {{1, far, 9000}, 2, 5000, SEC_CA_RETIRING, "rotated out, overlap running"},
        {{1, far, 9000}, 2, 9000, SEC_CA_RETIRED, "overlap over"},
        {{1, 6000, 9000}, 2, 7000, SEC_CA_RETIRED, "its certificate ended first"},
        {{3, far, 0}, 2, 5000, SEC_CA_RETIRED, "newer than the active one: unknown"},
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        enum sec_ca_state got = sec_ca_state_of(&cases[i].v, cases[i].active, cases[i].now);
        if (got != cases[i].want) fail_msg("case %zu (%s): got %d", i, cases[i].why, got);
    }
    /* the overlap: the configured one, else until the last leaf expires (not before now) */
    assert_int_equal(sec_ca_retire_at(1000, 50000, 0), 50000);
    assert_int_equal(sec_ca_retire_at(1000, 0, 0), 1000);
    assert_int_equal(sec_ca_retire_at(1000, 50000, 2000), 3000);
    assert_string_equal(sec_ca_state_name(SEC_CA_RETIRING), "retiring");
}

/* ------------------------------------------------------------------------------------------ */

static char *tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/shoal-test-ca-XXXXXX");
    assert_non_null(mkdtemp(out));
    return out;
}

static void rm_rf(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    char p[4200];

    if (!dp) return;
    while ((e = readdir(dp))) {
        struct stat sb;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            rm_rf(p);
        else
            unlink(p);
    }
    closedir(dp);
    rmdir(dir);
}

static X509 *cert_of(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

    BIO_free(b);
    assert_non_null(x);
    return x;
}

/* Every certificate of a bundle into a new store. */
static X509_STORE *store_of(const struct sec_ca *ca, uint64_t now, int *count)
{
    struct buf b = BUF_INIT(1 << 20);
    X509_STORE *st = X509_STORE_new();
    BIO *bio;
    X509 *x;

    assert_int_equal(sec_ca_bundle_pem(ca, now, &b), 0);
    bio = BIO_new_mem_buf(b.data, (int)b.len);
    *count = 0;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        assert_int_equal(X509_STORE_add_cert(st, x), 1);
        X509_free(x);
        (*count)++;
    }
    ERR_clear_error();
    BIO_free(bio);
    buf_release(&b);
    return st;
}

/* 1 when the leaf's chain verifies against the CA bundle of <ca> at <now> (as a TLS peer would),
 * with its purpose checked as a TLS client certificate. */
static int chain_ok(const struct sec_ca *ca, uint64_t now, const char *leaf_pem)
{
    int n;
    X509_STORE *st = store_of(ca, now, &n);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509 *leaf = cert_of(leaf_pem);
    int ok;

    assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, NULL), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    X509_free(leaf);
    return ok;
}

/* The one URI SAN of a certificate, into out. */
static void uri_san(X509 *x, char *out, size_t n)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int uris = 0;

    out[0] = '\0';
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI) continue;
        uris++;
        snprintf(out, n, "%.*s", ASN1_STRING_length(g->d.uniformResourceIdentifier),
                 (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
    }
    GENERAL_NAMES_free(names);
    assert_int_equal(uris, 1);
}

static void test_ca__issue_verifies(void **state)
{
    char dir[64], cadir[128], path[200], uri[300];
    struct sec_ca *ca;
    struct sec_leaf l;
    struct sh_diag d = {{0}, {0}};
    struct stat sb;
    uint64_t now = sh_wall_ms();
    (void)state;

    snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir(dir, sizeof(dir)));
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.dir = cadir}, now, &ca, &d), 0);
    assert_string_equal(sec_ca_trust_domain(ca), "shoal.local");
    assert_int_equal(sec_ca_active_gen(ca), 1);
    assert_int_equal(stat(cadir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/ca-1.key", cadir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    assert_int_equal(sec_ca_issue(ca, "greeter", 0, now, &l, &d), 0);
    assert_string_equal(l.identity, "spiffe://shoal.local/service/greeter");
    assert_int_equal(l.ca_gen, 1);
    assert_true(l.not_after_ms <= now + SEC_LEAF_TTL_DEFAULT_MS);
    assert_true(l.not_after_ms > now + SEC_LEAF_TTL_DEFAULT_MS - 1000);
    assert_true(strlen(l.serial) >= 30);

    /* the signature, against the CA's own key */
    struct sec_ca_info info[SEC_CA_MAX];
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 1);
    assert_int_equal(info[0].state, SEC_CA_ACTIVE);
    assert_int_equal(strlen(info[0].fingerprint), SEC_FINGERPRINT_LEN);
    assert_non_null(strstr(info[0].subject, "CN=shoal CA 1"));
    struct buf b = BUF_INIT(1 << 20);
    assert_int_equal(sec_ca_bundle_pem(ca, now, &b), 0);
    X509 *cax = cert_of(b.data), *leaf = cert_of(l.cert_pem);
    buf_release(&b);
    EVP_PKEY *capub = X509_get0_pubkey(cax);
    assert_int_equal(X509_verify(leaf, capub), 1);
    assert_int_equal(X509_verify(cax, capub), 1); /* self-signed */
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_check_ca(cax), 1);
    /* P-256 */
    assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(leaf)), 256);
    assert_true(EVP_PKEY_is_a(X509_get0_pubkey(leaf), "EC"));
    /* the URI SAN and the lifetime */
    uri_san(leaf, uri, sizeof(uri));
    assert_string_equal(uri, "spiffe://shoal.local/service/greeter");
    assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &(time_t){(time_t)(now / 1000) + 86399}) >
                0);
    assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &(time_t){(time_t)(now / 1000) + 86401}) <
                0);
    /* the key is the certificate's */
    BIO *kb = BIO_new_mem_buf(l.key_pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    assert_non_null(k);
    assert_int_equal(X509_check_private_key(leaf, k), 1);
    EVP_PKEY_free(k);
    BIO_free(kb);
    /* the chain, as a TLS peer checks it */
    assert_int_equal(chain_ok(ca, now, l.cert_pem), 1);
    X509_free(leaf);
    X509_free(cax);

    /* a short lifetime */
    sec_leaf_release(&l);
    assert_int_equal(sec_ca_issue(ca, "a-b-9", 10000, now, &l, &d), 0);
    assert_true(l.not_after_ms <= now + 10000 && l.not_after_ms > now + 8000);
    sec_leaf_release(&l);
    sec_ca_free(ca);
    rm_rf(dir);
}

static void test_ca__bad_input_refused(void **state)
{
    char dir[64], cadir[128];
    struct sec_ca *ca;
    struct sec_leaf l;
    struct sh_diag d = {{0}, {0}};
    uint64_t now = sh_wall_ms();
    const char *bad_names[] = {
        "",    "Greeter", "a_b",
        "-a",  "a-",      "a/b",
        "a.b", "é",       "a234567890123456789012345678901234567890123456789012345678901234"};
    (void)state;

    snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir(dir, sizeof(dir)));
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.dir = cadir}, now, &ca, &d), 0);
    for (size_t i = 0; i < SH_ARRAY_LEN(bad_names); i++) {
        memset(&d, 0, sizeof(d));
        if (sec_ca_issue(ca, bad_names[i], 0, now, &l, &d) != SH_EINVAL)
            fail_msg("'%s' was accepted", bad_names[i]);
        assert_string_equal(d.where, "service");
        assert_null(l.cert_pem);
    }
    const uint64_t ttls[] = {1, 1999, SEC_LEAF_TTL_MAX_MS + 1, UINT64_MAX / 2};
    for (size_t i = 0; i < SH_ARRAY_LEN(ttls); i++) {
        memset(&d, 0, sizeof(d));
        assert_int_equal(sec_ca_issue(ca, "ok", ttls[i], now, &l, &d), SH_EINVAL);
        assert_string_equal(d.where, "ttl");
    }
    sec_ca_free(ca);
    /* a bad trust domain, a bad default lifetime, half an external CA */
    assert_int_equal(
        sec_ca_open(&(struct sec_ca_config){.dir = cadir, .trust_domain = "A B"}, now, &ca, &d),
        SH_EINVAL);
    assert_string_equal(d.where, "trust_domain");
    assert_int_equal(
        sec_ca_open(&(struct sec_ca_config){.dir = cadir, .leaf_ttl_ms = 100}, now, &ca, &d),
        SH_EINVAL);
    assert_int_equal(
        sec_ca_open(&(struct sec_ca_config){.dir = cadir, .cert_file = "x"}, now, &ca, &d),
        SH_EINVAL);
    assert_null(ca);
    rm_rf(dir);
}

static void test_ca__reopen_rotate_retire(void **state)
{
    char dir[64], cadir[128], path[200], fp1[SEC_FINGERPRINT_LEN + 1];
    struct sec_ca *ca;
    struct sec_leaf old, fresh;
    struct sh_diag d = {{0}, {0}};
    struct sec_ca_info info[SEC_CA_MAX];
    uint64_t now = sh_wall_ms(), v1;
    int n;
    (void)state;

    snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir(dir, sizeof(dir)));
    struct sec_ca_config cfg = {.dir = cadir, .trust_domain = "example.org"};
    assert_int_equal(sec_ca_open(&cfg, now, &ca, &d), 0);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 1);
    memcpy(fp1, info[0].fingerprint, sizeof(fp1));
    assert_int_equal(sec_ca_issue(ca, "api", 2 * HOUR, now, &old, &d), 0);
    sec_ca_free(ca);

    /* the same CA after a reopen; another trust domain is refused */
    assert_int_equal(sec_ca_open(&cfg, now, &ca, &d), 0);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 1);
    assert_string_equal(info[0].fingerprint, fp1);
    assert_int_equal(chain_ok(ca, now, old.cert_pem), 1);
    struct sec_ca *other;
    memset(&d, 0, sizeof(d));
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.dir = cadir}, now, &other, &d),
                     SH_EINVAL);
    assert_non_null(strstr(d.what, "example.org"));

    /* rotation: the old one retires when its last leaf (2 h) expires; after a reopen, as
     * ca.json has it: 10 minutes later (a write per leaf would be one per instance start) */
    const uint64_t retire = old.not_after_ms + 10 * 60 * 1000;
    v1 = sec_ca_bundle_version(ca, now);
    assert_int_equal(sec_ca_rotate(ca, now, &d), 0);
    assert_int_equal(sec_ca_active_gen(ca), 2);
    assert_true(sec_ca_bundle_version(ca, now) != v1);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 2);
    assert_int_equal(info[0].gen, 2);
    assert_int_equal(info[0].state, SEC_CA_ACTIVE);
    assert_int_equal(info[1].state, SEC_CA_RETIRING);
    assert_int_equal(info[1].retire_at_ms, retire);
    assert_int_equal(sec_ca_issue(ca, "api", 0, now, &fresh, &d), 0);
    assert_int_equal(fresh.ca_gen, 2);
    /* both verify against the bundle during the overlap */
    X509_STORE_free(store_of(ca, now, &n));
    assert_int_equal(n, 2);
    assert_int_equal(chain_ok(ca, now, old.cert_pem), 1);
    assert_int_equal(chain_ok(ca, now, fresh.cert_pem), 1);
    /* an old leaf must be renewed now, the new one not */
    struct sec_leaf_view ov = {old.issued_ms, old.not_after_ms, old.ca_gen},
                         nv = {fresh.issued_ms, fresh.not_after_ms, fresh.ca_gen};
    assert_true(sec_leaf_should_renew(&ov, sec_ca_active_gen(ca), now));
    assert_false(sec_leaf_should_renew(&nv, sec_ca_active_gen(ca), now));
    sec_ca_free(ca);

    /* kept across a reopen; past the overlap the old one leaves, with its files */
    assert_int_equal(sec_ca_open(&cfg, now, &ca, &d), 0);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 2);
    v1 = sec_ca_bundle_version(ca, now);
    sec_ca_tick(ca, retire - 1);
    assert_int_equal(sec_ca_bundle_version(ca, retire - 1), v1);
    sec_ca_tick(ca, retire);
    assert_true(sec_ca_bundle_version(ca, retire) != v1);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 1);
    assert_int_equal(info[0].gen, 2);
    X509_STORE_free(store_of(ca, now, &n));
    assert_int_equal(n, 1);
    assert_int_equal(chain_ok(ca, now, old.cert_pem), 0);
    assert_int_equal(chain_ok(ca, now, fresh.cert_pem), 1);
    snprintf(path, sizeof(path), "%s/ca-1.key", cadir);
    assert_int_equal(access(path, F_OK), -1);
    sec_ca_free(ca);
    assert_int_equal(sec_ca_open(&cfg, now, &ca, &d), 0);
    assert_int_equal(sec_ca_active_gen(ca), 2);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 1);

    /* a configured overlap wins over the last leaf */
    sec_ca_free(ca);
    cfg.overlap_ms = 5000;
    assert_int_equal(sec_ca_open(&cfg, now, &ca, &d), 0);
    assert_int_equal(sec_ca_rotate(ca, now, &d), 0);
    assert_int_equal(sec_ca_list(ca, now, info, SEC_CA_MAX), 2);
    assert_int_equal(info[1].retire_at_ms, now + 5000);
    assert_int_equal(sec_ca_list(ca, now + 5000, info, SEC_CA_MAX), 1);

    sec_leaf_release(&old);
    sec_leaf_release(&fresh);
    sec_ca_free(ca);
    rm_rf(dir);
}

static void test_ca__external(void **state)
{
    char dir[64], cadir[128], cert[400], key[400];
    struct sec_ca *made, *ext;
    struct sec_leaf l;
    struct sh_diag d = {{0}, {0}};
    uint64_t now = sh_wall_ms();
    (void)state;

    snprintf(cadir, sizeof(cadir), "%s/ca", tmpdir(dir, sizeof(dir)));
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.dir = cadir}, now, &made, &d), 0);
    snprintf(cert, sizeof(cert), "%s/ca-1.pem", cadir);
    snprintf(key, sizeof(key), "%s/ca-1.key", cadir);
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.cert_file = cert,
                                                         .key_file = key,
                                                         .trust_domain = "ext.example"},
                                 now, &ext, &d),
                     0);
    assert_true(sec_ca_is_external(ext));
    assert_int_equal(sec_ca_issue(ext, "svc", 0, now, &l, &d), 0);
    assert_string_equal(l.identity, "spiffe://ext.example/service/svc");
    assert_int_equal(chain_ok(made, now, l.cert_pem), 1); /* signed by that key */
    assert_int_equal(sec_ca_rotate(ext, now, &d), SH_ENOTSUP);
    sec_leaf_release(&l);
    sec_ca_free(ext);
    /* a key that is not the certificate's; a certificate that is no CA; a missing file */
    sec_ca_free(made);
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.dir = cadir}, now, &made, &d), 0);
    assert_int_equal(sec_ca_rotate(made, now, &d), 0);
    snprintf(key, sizeof(key), "%s/ca-2.key", cadir);
    memset(&d, 0, sizeof(d));
    assert_int_equal(
        sec_ca_open(&(struct sec_ca_config){.cert_file = cert, .key_file = key}, now, &ext, &d),
        SH_EIO);
    assert_non_null(strstr(d.what, "does not match"));
    assert_int_equal(sec_ca_issue(made, "svc", 0, now, &l, &d), 0);
    char leaf[200];
    snprintf(leaf, sizeof(leaf), "%s/leaf", dir);
    assert_int_equal(sec_tls_files_write(leaf, &l, SLICE(""), false, &d), 0);
    snprintf(cert, sizeof(cert), "%s/cert.pem", leaf);
    snprintf(key, sizeof(key), "%s/key.pem", leaf);
    assert_int_equal(
        sec_ca_open(&(struct sec_ca_config){.cert_file = cert, .key_file = key}, now, &ext, &d),
        SH_EINVAL);
    assert_non_null(strstr(d.what, "not a CA"));
    assert_int_equal(
        sec_ca_open(&(struct sec_ca_config){.cert_file = "/nonexistent/c.pem", .key_file = key},
                    now, &ext, &d),
        SH_EIO);
    assert_string_equal(d.where, "/nonexistent/c.pem");
    sec_leaf_release(&l);
    sec_ca_free(made);
    rm_rf(dir);
}

static void test_tls_files__modes_and_rewrite(void **state)
{
    char dir[64], sub[128], path[200];
    struct sec_ca *ca;
    struct sec_leaf l;
    struct sh_diag d = {{0}, {0}};
    struct stat sb;
    uint64_t now = sh_wall_ms();
    (void)state;

    tmpdir(dir, sizeof(dir));
    snprintf(sub, sizeof(sub), "%s/ca", dir);
    assert_int_equal(sec_ca_open(&(struct sec_ca_config){.dir = sub}, now, &ca, &d), 0);
    assert_int_equal(sec_ca_issue(ca, "web", 0, now, &l, &d), 0);
    snprintf(sub, sizeof(sub), "%s/web-1", dir);
    assert_int_equal(sec_tls_files_write(sub, &l, SLICE("BUNDLE"), true, &d), 0);
    assert_int_equal(stat(sub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/key.pem", sub);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/ca.pem", sub);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 6);
    /* the bundle alone */
    assert_int_equal(sec_tls_files_write(sub, NULL, SLICE("BUNDLE2"), true, &d), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 7);
    snprintf(path, sizeof(path), "%s/ca.pem.tmp", sub);
    assert_int_equal(access(path, F_OK), -1);
    sec_leaf_release(&l);
    sec_ca_free(ca);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_decide__renewal_table),        SH_TEST(test_decide__bundle_table),
        SH_TEST(test_ca__issue_verifies),           SH_TEST(test_ca__bad_input_refused),
        SH_TEST(test_ca__reopen_rotate_retire),     SH_TEST(test_ca__external),
        SH_TEST(test_tls_files__modes_and_rewrite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
