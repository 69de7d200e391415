/* SPDX-License-Identifier: MIT */
/* test_jwt.c: JWT verification (security.h's JWT section): base64url, JWKS parsing, RFC 7515's
 * own examples (A.1 HS256, A.3 ES256), and tokens signed here with keys OpenSSL makes for the
 * test (RS256, ES256, EdDSA, HS256), then every refusal: expired, not yet valid, wrong aud and
 * iss, bad signature, alg none, HS256 with the RSA public key as the secret (algorithm
 * confusion), unknown kid, oversize, malformed base64url and JSON, crit, required claims,
 * claim values that cannot be headers. */
#include "test_util.h"

#include "security/security.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

/* snprintf into fixed test buffers: sizes are checked by the assertions that use them */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define NOW 1700000000

static EVP_PKEY *rsa_key, *ec_key, *ed_key;
static const uint8_t hs_secret[] = "0123456789abcdef0123456789abcdef-secret";
static char jwks_text[16384];

/* ------------------------------------------------------------------------------------------
 * Helpers: base64url, keys as JWKs, signing
 * ------------------------------------------------------------------------------------------ */
static void b64url(const uint8_t *p, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;

    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = al[(v >> 6) & 63];
        out[o++] = al[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = al[(v >> 6) & 63];
    }
    out[o] = '\0';
}

static void b64url_str(const char *s, char *out)
{
    b64url((const uint8_t *)s, strlen(s), out);
}

static void bn_b64(EVP_PKEY *k, const char *param, char *out)
{
    BIGNUM *bn = NULL;
    uint8_t buf[1024];
    int n;

    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    n = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

/* The public JWK of k (kid, and alg when given) into out. */
static void jwk_of(EVP_PKEY *k, const char *kid, const char *alg, char *out, size_t n)
{
    char a[1400], b[1400], algm[64] = "";

    if (alg) snprintf(algm, sizeof(algm), ",\"alg\":\"%s\"", alg);
    if (EVP_PKEY_is_a(k, "RSA")) {
        bn_b64(k, OSSL_PKEY_PARAM_RSA_N, a);
        bn_b64(k, OSSL_PKEY_PARAM_RSA_E, b);
        snprintf(out, n,
                 "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\"%s,\"n\":\"%s\",\"e\":\"%s\"}",
                 kid, algm, a, b);
    } else if (EVP_PKEY_is_a(k, "EC")) {
        uint8_t pub[65];
        size_t len = 0;
        assert_int_equal(
            EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
        assert_int_equal(len, 65);
        b64url(pub + 1, 32, a);
        b64url(pub + 33, 32, b);
        snprintf(out, n,
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\"%s,\"x\":\"%s\",\"y\":\"%s\"}",
                 kid, algm, a, b);
    } else {
        uint8_t pub[32];
        size_t len = sizeof(pub);
        assert_int_equal(EVP_PKEY_get_raw_public_key(k, pub, &len), 1);
        b64url(pub, len, a);
        snprintf(out, n, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\"%s,\"x\":\"%s\"}", kid,
                 algm, a);
    }
}

/* header.payload.signature with header and payload given as JSON text; alg picks the signer:
 * "RS256"/"ES256"/"EdDSA" use k, "HS256" uses secret (n bytes), "none" signs nothing. */
static void sign_token(const char *header, const char *payload, const char *alg, EVP_PKEY *k,
                       const uint8_t *secret, size_t secret_len, char *out, size_t n)
{
    char h[2048], p[12000], s[1400];
    uint8_t sig[1024];
    size_t siglen = sizeof(sig), si_len;
    char *si;

    b64url_str(header, h);
    b64url_str(payload, p);
    si_len = strlen(h) + 1 + strlen(p);
    si = sh_malloc(si_len + 1);
    assert_non_null(si);
    snprintf(si, si_len + 1, "%s.%s", h, p);
    if (strcmp(alg, "HS256") == 0) {
        unsigned ml = 0;
        HMAC(EVP_sha256(), secret, (int)secret_len, (const uint8_t *)si, si_len, sig, &ml);
        siglen = ml;
    } else if (strcmp(alg, "none") == 0) {
        siglen = 0;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, strcmp(alg, "EdDSA") ? "SHA256" : NULL,
                                               NULL, NULL, k, NULL),
                         1);
        assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)si, si_len), 1);
        EVP_MD_CTX_free(ctx);
        if (strcmp(alg, "ES256") == 0) { /* DER to JOSE r||s */
            const uint8_t *dp = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)siglen);
            assert_non_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            siglen = 64;
            ECDSA_SIG_free(es);
        }
    }
    b64url(sig, siglen, s);
    snprintf(out, n, "%s.%s", si, s);
    sh_free(si);
}

static struct sec_jwks *test_jwks(void)
{
    struct sec_jwks *ks = NULL;
    struct sh_diag d = {0};

    if (sec_jwks_parse(slice_from_cstr(jwks_text), &ks, &d) < 0)
        fail_msg("jwks: %s: %s", d.where, d.what);
    return ks;
}

static int keys_setup(void **state)
{
    char a[2048], b[1024], c[1024], k[128];

    (void)state;
    json_set_alloc_funcs(sh_malloc, sh_free); /* jansson's blocks count as ours: leaks fail */
    rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!rsa_key || !ec_key || !ed_key) return -1;
    jwk_of(rsa_key, "rsa1", "RS256", a, sizeof(a));
    jwk_of(ec_key, "ec1", NULL, b, sizeof(b));
    jwk_of(ed_key, "ed1", "EdDSA", c, sizeof(c));
    b64url(hs_secret, sizeof(hs_secret) - 1, k);
    snprintf(jwks_text, sizeof(jwks_text),
             "{\"keys\":[%s,%s,%s,{\"kty\":\"oct\",\"kid\":\"hs1\",\"k\":\"%s\"},"
             "{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"enc1\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
             "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
             a, b, c, k);
    return 0;
}

static int keys_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(ed_key);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * base64url
 * ------------------------------------------------------------------------------------------ */
static void test_base64url__strict(void **state)
{
    uint8_t out[16];
    size_t len;
    struct {
        const char *in;
        int rc;
        const char *bytes;
    } cases[] = {
        {"", 0, ""},
        {"Zg", 0, "f"},
        {"Zm8", 0, "fo"},
        {"Zm9v", 0, "foo"},
        {"Zg==", SH_EPARSE, NULL}, /* padding */
        {"Zh", SH_EPARSE, NULL},   /* non-zero trailing bits: a second text for "f" */
        {"Z", SH_EPARSE, NULL},    /* 1 mod 4 */
        {"+/8", SH_EPARSE, NULL},  /* base64, not base64url */
        {"Zm 9v", SH_EPARSE, NULL},
        {"-_8", 0, "\xfb\xff"},
        {"Zm9vZm9vZm9vZm9vZm9vZm9v", SH_ETOOBIG, NULL}, /* 18 bytes into 16 */
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        int rc = sec_base64url_decode(slice_from_cstr(cases[i].in), out, sizeof(out), &len);
        if (rc != cases[i].rc) fail_msg("case %zu (%s): rc %d", i, cases[i].in, rc);
        if (rc == 0) {
            assert_int_equal(len, strlen(cases[i].bytes));
            assert_memory_equal(out, cases[i].bytes, len);
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * RFC 7515's examples
 * ------------------------------------------------------------------------------------------ */
#define RFC_PAYLOAD                                                                                \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl" \
    "fQ"

static void test_jwt__rfc7515_a1_hs256(void **state)
{
    const char *jwk = "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
                      "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}";
    const char *tok = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC_PAYLOAD
                      ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const char *extract[] = {"http://example.com/is_root", "iss", "nope"};
    struct sec_jwt_policy pol = {.issuer = "joe", .extract = extract, .nextract = 3};
    struct sec_jwks *ks = NULL;
    struct sec_jwt_result r;
    struct sh_diag d;
    (void)state;

    assert_int_equal(sec_jwks_parse(slice_from_cstr(jwk), &ks, &d), 0); /* a single JWK */
    const struct sec_jwks *sets[] = {ks};
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), &pol, 1300819000, &r),
                     SEC_JWT_OK);
    assert_int_equal(r.alg, SEC_JWT_HS256);
    assert_true(r.has_exp);
    assert_int_equal(r.exp_s, 1300819380);
    assert_string_equal(r.values[0], "true");
    assert_string_equal(r.values[1], "joe");
    assert_null(r.values[2]);
    /* its exp is 2011: expired now, and at exp + leeway exactly */
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), &pol, NOW, &r), SEC_JWT_EXPIRED);
    pol.leeway_s = 60;
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), &pol, 1300819439, &r),
                     SEC_JWT_OK);
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), &pol, 1300819440, &r),
                     SEC_JWT_EXPIRED);
    sec_jwks_free(ks);
}

static void test_jwt__rfc7515_a3_es256(void **state)
{
    const char *jwk = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                      "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                      "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
    const char *tok =
        "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-"
        "Kg6NU1Q";
    struct sec_jwks *ks = NULL;
    struct sec_jwt_result r;
    struct sh_diag d;
    (void)state;

    assert_int_equal(sec_jwks_parse(slice_from_cstr(jwk), &ks, &d), 0);
    const struct sec_jwks *sets[] = {ks};
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, 1300819000, &r),
                     SEC_JWT_OK);
    assert_int_equal(r.alg, SEC_JWT_ES256);
    sec_jwks_free(ks);
}

/* ------------------------------------------------------------------------------------------
 * Generated keys: every algorithm verifies; every refusal
 * ------------------------------------------------------------------------------------------ */
static void test_jwt__each_algorithm_verifies(void **state)
{
    struct {
        const char *alg, *kid;
        EVP_PKEY **k;
    } cases[] = {
        {"RS256", "rsa1", &rsa_key}, {"ES256", "ec1", &ec_key}, {"EdDSA", "ed1", &ed_key},
        {"HS256", "hs1", NULL},      {"ES256", NULL, &ec_key}, /* no kid: tries its alg's keys */
    };
    const char *aud[] = {"other", "api"};
    const char *extract[] = {"sub", "roles"};
    struct sec_jwt_claim_rule req[] = {{"roles", "admin"}, {"sub", NULL}};
    struct sec_jwt_policy pol = {.issuer = "https://idp.test",
                                 .audiences = aud,
                                 .naudiences = 2,
                                 .leeway_s = 60,
                                 .required = req,
                                 .nrequired = 2,
                                 .extract = extract,
                                 .nextract = 2};
    struct sec_jwks *ks = test_jwks();
    const struct sec_jwks *sets[] = {ks};
    char header[256], tok[8192];
    struct sec_jwt_result r;
    (void)state;

    assert_int_equal(sec_jwks_count(ks), 4);
    assert_int_equal(sec_jwks_skipped(ks), 2); /* the encryption key, the P-384 one */
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        if (cases[i].kid)
            snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                     cases[i].alg, cases[i].kid);
        else
            snprintf(header, sizeof(header), "{\"alg\":\"%s\"}", cases[i].alg);
        sign_token(header,
                   "{\"iss\":\"https://idp.test\",\"aud\":[\"x\",\"api\"],\"sub\":\"alice\","
                   "\"roles\":[\"user\",\"admin\"],\"exp\":1700000600,\"nbf\":1699999990}",
                   cases[i].alg, cases[i].k ? *cases[i].k : NULL, hs_secret, sizeof(hs_secret) - 1,
                   tok, sizeof(tok));
        if (sec_jwt_verify(sets, 1, slice_from_cstr(tok), &pol, NOW, &r) != SEC_JWT_OK)
            fail_msg("case %zu (%s): %s: %s", i, cases[i].alg, sec_jwt_status_name(r.status),
                     r.why);
        assert_string_equal(r.values[0], "alice");
        assert_string_equal(r.values[1], "[\"user\",\"admin\"]");
        assert_int_equal(r.exp_s, 1700000600);
    }
    sec_jwks_free(ks);
}

static void test_jwt__refusals(void **state)
{
    struct {
        const char *name, *header, *payload, *alg;
        enum sec_jwt_status want;
        const char *why; /* a part of the message, or NULL */
    } cases[] = {
        {"valid", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"exp\":1700000600}", "RS256", SEC_JWT_OK, NULL},
        {"expired", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"exp\":1699999940}", "RS256", SEC_JWT_EXPIRED,
         "expired"},
        {"expired, within leeway", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"exp\":1699999941}", "RS256", SEC_JWT_OK, NULL},
        {"not yet valid", "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"nbf\":1700000061}", "ES256", SEC_JWT_NOT_YET_VALID,
         "nbf"},
        {"wrong aud", "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}",
         "{\"iss\":\"iss\",\"aud\":[\"web\",\"apix\"]}", "EdDSA", SEC_JWT_WRONG_AUDIENCE,
         "audience"},
        {"no aud", "{\"alg\":\"EdDSA\",\"kid\":\"ed1\"}", "{\"iss\":\"iss\"}", "EdDSA",
         SEC_JWT_WRONG_AUDIENCE, NULL},
        {"wrong iss", "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", "{\"iss\":\"evil\",\"aud\":\"api\"}",
         "HS256", SEC_JWT_WRONG_ISSUER, "issuer"},
        /* jansson refuses \u0000 in strings: a claim cannot hide a NUL */
        {"iss with a NUL", "{\"alg\":\"HS256\",\"kid\":\"hs1\"}",
         "{\"iss\":\"iss\\u0000x\",\"aud\":\"api\"}", "HS256", SEC_JWT_MALFORMED, NULL},
        {"alg none", "{\"alg\":\"none\"}", "{\"iss\":\"iss\",\"aud\":\"api\"}", "none",
         SEC_JWT_ALG_NONE, "none"},
        {"alg NoNe", "{\"alg\":\"NoNe\",\"kid\":\"rsa1\"}", "{\"iss\":\"iss\",\"aud\":\"api\"}",
         "none", SEC_JWT_ALG_NONE, NULL},
        {"alg RS512", "{\"alg\":\"RS512\",\"kid\":\"rsa1\"}", "{}", "RS256",
         SEC_JWT_ALG_UNSUPPORTED, "RS512"},
        {"crit", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"b64\"],\"b64\":false}", "{}",
         "RS256", SEC_JWT_ALG_UNSUPPORTED, "crit"},
        {"unknown kid", "{\"alg\":\"RS256\",\"kid\":\"rsa2\"}", "{\"iss\":\"iss\",\"aud\":\"api\"}",
         "RS256", SEC_JWT_UNKNOWN_KID, "rsa2"},
        {"kid of an EC key on an RS256 token", "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", "{}", "RS256",
         SEC_JWT_ALG_MISMATCH, "not a RS256 key"},
        {"kid with a quote", "{\"alg\":\"RS256\",\"kid\":\"a\\\"b\\r\\n\"}", "{}", "RS256",
         SEC_JWT_UNKNOWN_KID, "a?b??"},
        {"exp a string", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"exp\":\"1700000600\"}", "RS256", SEC_JWT_MALFORMED,
         "exp"},
        {"payload an array", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "[1]", "RS256",
         SEC_JWT_MALFORMED, "payload"},
        {"payload not JSON", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "{\"iss\":", "RS256",
         SEC_JWT_MALFORMED, "payload"},
        {"duplicate member", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"aud\":\"x\"}", "RS256", SEC_JWT_MALFORMED, NULL},
        {"header duplicate alg", "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"rsa1\"}", "{}",
         "RS256", SEC_JWT_MALFORMED, "header"},
        {"header without alg", "{\"kid\":\"rsa1\"}", "{}", "RS256", SEC_JWT_MALFORMED, "alg"},
        {"kid a number", "{\"alg\":\"RS256\",\"kid\":7}", "{}", "RS256", SEC_JWT_MALFORMED, "kid"},
        {"required claim missing", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"tenant\":\"t1\"}", "RS256", SEC_JWT_MISSING_CLAIM,
         "scope"},
        {"required claim other value", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"scope\":\"x\",\"tenant\":\"t2\"}", "RS256",
         SEC_JWT_CLAIM_MISMATCH, "tenant"},
        {"a header claim with a line break", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}",
         "{\"iss\":\"iss\",\"aud\":\"api\",\"scope\":\"x\",\"tenant\":\"t1\","
         "\"sub\":\"a\\r\\nX-Admin: 1\"}",
         "RS256", SEC_JWT_BAD_CLAIM, "sub"},
    };
    const char *aud[] = {"api"};
    const char *extract[] = {"sub"};
    struct sec_jwt_claim_rule req[] = {{"scope", NULL}, {"tenant", "t1"}};
    struct sec_jwt_policy pol = {.issuer = "iss",
                                 .audiences = aud,
                                 .naudiences = 1,
                                 .leeway_s = 60,
                                 .extract = extract,
                                 .nextract = 1};
    struct sec_jwks *ks = test_jwks();
    const struct sec_jwks *sets[] = {ks};
    char tok[8192];
    struct sec_jwt_result r;
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        EVP_PKEY *k = !strcmp(cases[i].alg, "RS256")   ? rsa_key
                      : !strcmp(cases[i].alg, "ES256") ? ec_key
                                                       : ed_key;
        bool reqd = strstr(cases[i].name, "required") || strstr(cases[i].name, "header claim");
        pol.required = reqd ? req : NULL;
        pol.nrequired = reqd ? 2 : 0;
        sign_token(cases[i].header, cases[i].payload, cases[i].alg, k, hs_secret,
                   sizeof(hs_secret) - 1, tok, sizeof(tok));
        enum sec_jwt_status st = sec_jwt_verify(sets, 1, slice_from_cstr(tok), &pol, NOW, &r);
        if (st != cases[i].want)
            fail_msg("case '%s': %s (%s), want %s", cases[i].name, sec_jwt_status_name(st), r.why,
                     sec_jwt_status_name(cases[i].want));
        if (cases[i].why && !strstr(r.why, cases[i].why))
            fail_msg("case '%s': why '%s' lacks '%s'", cases[i].name, r.why, cases[i].why);
        for (const char *p = r.why; *p; p++) /* fits a quoted header value */
            assert_true(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
    }
    sec_jwks_free(ks);
}

/* The classic confusion: the RSA public key (its PEM text, as a server would hold it) used as
 * the HMAC secret of an HS256 token. With the RSA key's kid it is an algorithm mismatch;
 * without a kid there is no HS256 key to try in a set of public keys. */
static void test_jwt__hs256_with_rsa_public_key_refused(void **state)
{
    const char *jwks_parts;
    struct sec_jwks *ks = NULL;
    struct sh_diag d;
    char jwk[2048], tok[8192];
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem;
    long pem_len;
    struct sec_jwt_result r;
    (void)state;

    assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa_key), 1);
    pem_len = BIO_get_mem_data(bio, &pem);
    jwk_of(rsa_key, "rsa1", NULL, jwk, sizeof(jwk));
    jwks_parts = jwk;
    assert_int_equal(sec_jwks_parse(slice_from_cstr(jwks_parts), &ks, &d), 0);
    const struct sec_jwks *sets[] = {ks};
    sign_token("{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", "{\"sub\":\"admin\"}", "HS256", NULL,
               (const uint8_t *)pem, (size_t)pem_len, tok, sizeof(tok));
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, NOW, &r),
                     SEC_JWT_ALG_MISMATCH);
    sign_token("{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", "HS256", NULL, (const uint8_t *)pem,
               (size_t)pem_len, tok, sizeof(tok));
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, NOW, &r),
                     SEC_JWT_UNKNOWN_KID);
    /* and the modulus bytes as the secret fare no better */
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, NOW, &r),
                     SEC_JWT_UNKNOWN_KID);
    BIO_free(bio);
    sec_jwks_free(ks);
}

static void test_jwt__bad_signatures(void **state)
{
    struct sec_jwks *ks = test_jwks();
    const struct sec_jwks *sets[] = {ks};
    const char *algs[] = {"RS256", "ES256", "EdDSA", "HS256"};
    const char *kids[] = {"rsa1", "ec1", "ed1", "hs1"};
    EVP_PKEY *keys[] = {rsa_key, ec_key, ed_key, NULL};
    char header[128], tok[8192], tok2[8192];
    struct sec_jwt_result r;
    (void)state;

    for (size_t i = 0; i < 4; i++) {
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i], kids[i]);
        sign_token(header, "{\"sub\":\"alice\"}", algs[i], keys[i], hs_secret,
                   sizeof(hs_secret) - 1, tok, sizeof(tok));
        assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, NOW, &r), SEC_JWT_OK);
        /* one signature character changed (the first: all six of its bits are used) */
        char *sig = strrchr(tok, '.') + 1;
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
        assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, NOW, &r),
                         SEC_JWT_BAD_SIGNATURE);
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
        /* the payload changed under the same signature */
        snprintf(tok2, sizeof(tok2), "%s", tok);
        sign_token(header, "{\"sub\":\"mallory\"}", algs[i], keys[i], hs_secret,
                   sizeof(hs_secret) - 1, tok2, sizeof(tok2));
        {
            char *p1 = strchr(tok, '.'), *p2 = strchr(tok2, '.');
            char mixed[8192];
            snprintf(mixed, sizeof(mixed), "%.*s%s", (int)(strrchr(tok2, '.') - tok2), tok2,
                     strrchr(tok, '.'));
            (void)p1;
            (void)p2;
            assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(mixed), NULL, NOW, &r),
                             SEC_JWT_BAD_SIGNATURE);
        }
        /* a truncated signature (40 characters: 30 bytes, no trailing bits) */
        strrchr(tok, '.')[41] = '\0';
        assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(tok), NULL, NOW, &r),
                         SEC_JWT_BAD_SIGNATURE);
    }
    sec_jwks_free(ks);
}

static void test_jwt__malformed_tokens(void **state)
{
    struct sec_jwks *ks = test_jwks();
    const struct sec_jwks *sets[] = {ks};
    char good[8192], t[20000];
    struct sec_jwt_result r;
    struct {
        const char *name;
        enum sec_jwt_status want;
    } cases[] = {
        {"", SEC_JWT_MALFORMED},
        {"abc", SEC_JWT_MALFORMED},
        {"a.b", SEC_JWT_MALFORMED},
        {"a.b.c.d", SEC_JWT_MALFORMED},
        {"..", SEC_JWT_MALFORMED},
        {"e30=.e30.AA", SEC_JWT_MALFORMED}, /* padding */
        {"e30.e3*.AA", SEC_JWT_MALFORMED},
        {"eyJhbGciOiJSUzI1NiJ9.e30.A", SEC_JWT_MALFORMED}, /* signature 1 mod 4 */
        {"bm90IGpzb24.e30.AA", SEC_JWT_MALFORMED},         /* "not json" */
        {"e30.e30.AA", SEC_JWT_MALFORMED},                 /* {}: no alg */
    };
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        if (sec_jwt_verify(sets, 1, slice_from_cstr(cases[i].name), NULL, NOW, &r) != cases[i].want)
            fail_msg("case '%s': %s (%s)", cases[i].name, sec_jwt_status_name(r.status), r.why);
    }
    /* oversize: a valid token with a claim that makes it 8 KiB + 1 */
    {
        char pad[7000], payload[7100];
        memset(pad, 'x', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        snprintf(payload, sizeof(payload), "{\"pad\":\"%s\"}", pad);
        sign_token("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", payload, "HS256", NULL, hs_secret,
                   sizeof(hs_secret) - 1, t, sizeof(t));
        assert_true(strlen(t) > SEC_JWT_MAX_TOKEN);
        assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(t), NULL, NOW, &r),
                         SEC_JWT_TOO_BIG);
        assert_int_equal(r.status, SEC_JWT_TOO_BIG);
    }
    /* a good token with a character appended to each part */
    sign_token("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", "{\"sub\":\"a\"}", "HS256", NULL, hs_secret,
               sizeof(hs_secret) - 1, good, sizeof(good));
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(good), NULL, NOW, &r), SEC_JWT_OK);
    snprintf(t, sizeof(t), "%s=", good);
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(t), NULL, NOW, &r), SEC_JWT_MALFORMED);
    snprintf(t, sizeof(t), " %s", good);
    assert_int_equal(sec_jwt_verify(sets, 1, slice_from_cstr(t), NULL, NOW, &r), SEC_JWT_MALFORMED);
    sec_jwks_free(ks);
}

/* A secret from configuration (hs256_secret_env) as its own key set, after a JWKS. */
static void test_jwt__configured_secret(void **state)
{
    struct sec_jwks *ks = test_jwks(), *sec = NULL;
    struct sh_diag d;
    const uint8_t other[] = "another-secret-of-at-least-32-bytes!!";
    char tok[8192];
    struct sec_jwt_result r;
    (void)state;

    assert_int_equal(sec_jwks_from_secret(SLICE("short"), NULL, &sec, &d), SH_EINVAL);
    assert_non_null(strstr(d.what, "at least 32"));
    assert_int_equal(sec_jwks_from_secret((struct slice){(const char *)other, sizeof(other) - 1},
                                          NULL, &sec, &d),
                     0);
    const struct sec_jwks *sets[] = {ks, sec};
    sign_token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\"}", "HS256", NULL, other, sizeof(other) - 1,
               tok, sizeof(tok));
    assert_int_equal(sec_jwt_verify(sets, 2, slice_from_cstr(tok), NULL, NOW, &r), SEC_JWT_OK);
    /* a kid no key has: the kid-less secret serves it */
    sign_token("{\"alg\":\"HS256\",\"kid\":\"k9\"}", "{\"sub\":\"a\"}", "HS256", NULL, other,
               sizeof(other) - 1, tok, sizeof(tok));
    assert_int_equal(sec_jwt_verify(sets, 2, slice_from_cstr(tok), NULL, NOW, &r), SEC_JWT_OK);
    /* but a kid that names the JWKS's HS256 key is checked with that key only */
    sign_token("{\"alg\":\"HS256\",\"kid\":\"hs1\"}", "{\"sub\":\"a\"}", "HS256", NULL, other,
               sizeof(other) - 1, tok, sizeof(tok));
    assert_int_equal(sec_jwt_verify(sets, 2, slice_from_cstr(tok), NULL, NOW, &r),
                     SEC_JWT_BAD_SIGNATURE);
    /* the RS256 token with an unknown kid: the secret is no candidate */
    sign_token("{\"alg\":\"RS256\",\"kid\":\"k9\"}", "{}", "RS256", rsa_key, NULL, 0, tok,
               sizeof(tok));
    assert_int_equal(sec_jwt_verify(sets, 2, slice_from_cstr(tok), NULL, NOW, &r),
                     SEC_JWT_UNKNOWN_KID);
    sec_jwks_free(sec);
    sec_jwks_free(ks);
}

static void test_jwks__refused_documents(void **state)
{
    char big[SEC_JWKS_MAX_BYTES + 64], many[8192], weak[2048];
    struct {
        const char *name, *json;
        int rc;
        const char *what;
    } cases[] = {
        {"not JSON", "{\"keys\":", SH_EPARSE, "not a JSON"},
        {"keys not an array", "{\"keys\":{}}", SH_EPARSE, "not an array"},
        {"no usable key",
         "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
         "{\"kty\":\"RSA\",\"alg\":\"PS256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
         SH_EPARSE, "no usable key (2 skipped"},
        {"empty", "{\"keys\":[]}", SH_EPARSE, "no usable key"},
        {"no kty", "{\"keys\":[{\"n\":\"AQAB\"}]}", SH_EPARSE, "kty"},
        {"EC x too short",
         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", SH_EPARSE,
         "32 bytes"},
        {"EC point off the curve",
         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
         "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
         "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
         SH_EPARSE, "P-256"},
        {"Ed25519 x padded", "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA=\"}]}",
         SH_EPARSE, "base64url"},
        {"oct too short", "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", SH_EPARSE,
         "at least 32"},
        {"kid a number", "{\"keys\":[{\"kty\":\"oct\",\"kid\":1,\"k\":\"AAAA\"}]}", SH_EPARSE,
         "kid"},
        {"duplicate member", "{\"keys\":[],\"keys\":[]}", SH_EPARSE, NULL},
        {"weak RSA", weak, SH_EPARSE, "1024 bits"},
        {"too big", big, SH_ETOOBIG, "at most"},
        {"too many keys", many, SH_ETOOBIG, "at most 64"},
    };
    (void)state;

    {
        EVP_PKEY *k1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
        char jwk[1024];
        assert_non_null(k1024);
        jwk_of(k1024, "weak", NULL, jwk, sizeof(jwk));
        snprintf(weak, sizeof(weak), "{\"keys\":[%s]}", jwk);
        EVP_PKEY_free(k1024);
    }
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"keys\":[]}", 11);
    {
        size_t o = (size_t)snprintf(many, sizeof(many), "{\"keys\":[");
        for (int i = 0; i < 65; i++)
            o += (size_t)snprintf(many + o, sizeof(many) - o, "%s{\"kty\":\"x\"}", i ? "," : "");
        snprintf(many + o, sizeof(many) - o, "]}");
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        struct sec_jwks *ks = NULL;
        struct sh_diag d = {0};
        int rc = sec_jwks_parse(slice_from_cstr(cases[i].json), &ks, &d);
        if (rc != cases[i].rc)
            fail_msg("case '%s': rc %s (%s: %s)", cases[i].name, sh_errname(rc), d.where, d.what);
        assert_null(ks);
        if (cases[i].what && !strstr(d.what, cases[i].what))
            fail_msg("case '%s': '%s' lacks '%s'", cases[i].name, d.what, cases[i].what);
    }
}

static void test_jwt__inspect_skips_only_the_signature(void **state)
{
    struct sec_jwt_result r;
    const char *aud[] = {"api"};
    struct sec_jwt_policy pol = {.audiences = aud, .naudiences = 1};
    char tok[4096];
    (void)state;

    sign_token("{\"alg\":\"RS256\",\"kid\":\"nobody\"}", "{\"aud\":\"api\",\"exp\":1700000600}",
               "RS256", rsa_key, NULL, 0, tok, sizeof(tok));
    assert_int_equal(sec_jwt_inspect(slice_from_cstr(tok), &pol, NOW, &r), SEC_JWT_OK);
    assert_int_equal(sec_jwt_inspect(slice_from_cstr(tok), &pol, 1700000700, &r), SEC_JWT_EXPIRED);
    assert_int_equal(sec_jwt_inspect(SLICE("x.y.z"), &pol, NOW, &r), SEC_JWT_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_base64url__strict),
        SH_TEST(test_jwt__rfc7515_a1_hs256),
        SH_TEST(test_jwt__rfc7515_a3_es256),
        SH_TEST(test_jwt__each_algorithm_verifies),
        SH_TEST(test_jwt__refusals),
        SH_TEST(test_jwt__hs256_with_rsa_public_key_refused),
        SH_TEST(test_jwt__bad_signatures),
        SH_TEST(test_jwt__malformed_tokens),
        SH_TEST(test_jwt__configured_secret),
        SH_TEST(test_jwks__refused_documents),
        SH_TEST(test_jwt__inspect_skips_only_the_signature),
    };
    return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
