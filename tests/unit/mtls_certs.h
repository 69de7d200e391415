/* SPDX-License-Identifier: MIT */
/* mtls_certs.h: the certificates the mTLS tests share, made in a fresh temporary directory by
 * setup() and removed by teardown(): two CAs (caA: trust domain "a.test", caB: "b.test") and
 * leaves with SPIFFE URI SANs (names and caller under caA, intruder under caB). p(base, ext)
 * names a file of it. For tests/unit/tls/test_mtls.c and tests/unit/http/test_mtls_client.c. */
#ifndef SHOAL_TEST_MTLS_CERTS_H
#define SHOAL_TEST_MTLS_CERTS_H

#include "test_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static char *p(const char *base, const char *ext)
{
    static char bufs[8][160];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 160, "%s/%s.%s", dir, base, ext);
    return b;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

static void write_pair(const char *base, X509 *x, EVP_PKEY *k)
{
    FILE *f = fopen(p(base, "crt"), "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(p(base, "key"), "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

/* base.crt/.key: signed by ca_base (NULL: a self-signed CA); uri: a URI SAN or NULL. */
static void make(const char *base, const char *ca_base, const char *uri)
{
    EVP_PKEY *k = EVP_EC_gen("P-256"), *ck = NULL;
    X509 *x = X509_new(), *ca = NULL;
    FILE *f;

    assert_non_null(k);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0xffffff) + 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)base, -1, -1, 0);
    if (ca_base) {
        f = fopen(p(ca_base, "crt"), "r");
        ca = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
        f = fopen(p(ca_base, "key"), "r");
        ck = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        assert_non_null(ca);
        assert_non_null(ck);
        X509_set_issuer_name(x, X509_get_subject_name(ca));
        add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
        if (uri) add_ext(x, ca, NID_subject_alt_name, uri);
    } else {
        X509_set_issuer_name(x, X509_get_subject_name(x));
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(x, x, NID_subject_key_identifier, "hash");
    }
    assert_true(X509_sign(x, ck ? ck : k, EVP_sha256()) > 0);
    write_pair(base, x, k);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ck);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/shoal-mtls-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    make("caA", NULL, NULL);
    make("caB", NULL, NULL);
    make("names", "caA", "URI:spiffe://a.test/service/names");
    make("caller", "caA", "URI:spiffe://a.test/service/caller");
    make("intruder", "caB", "URI:spiffe://b.test/service/caller");
    return test_setup(state);
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) return -1;
    return test_teardown(state);
}

#endif
