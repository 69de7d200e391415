/* SPDX-License-Identifier: MIT */
/* jwt.c: JSON Web Tokens: strict compact JWS parsing, JWKS parsing into OpenSSL 3 keys
 * (EVP_PKEY_fromdata), signature checks (RS256, ES256, EdDSA, HS256) and the claim checks
 * (exp, nbf, iss, aud, required claims, values for headers). See security.h's JWT section.
 *
 * Invariants: a key is bound to one algorithm when it is parsed, and a token is checked only
 * with keys bound to its own algorithm (test_jwt__hs256_with_rsa_public_key_refused). Nothing
 * here keeps state between calls: a key set is read-only once built, so workers share it. */
#include "security/security.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct jwk {
    char kid[SEC_JWT_KID_MAX + 1];
    bool has_kid;
    enum sec_jwt_alg alg;
    EVP_PKEY *pkey;  /* RS256, ES256, EdDSA */
    uint8_t *secret; /* HS256 */
    size_t secret_len;
};

struct sec_jwks {
    struct jwk *keys;
    size_t count, skipped;
};

static const char *const alg_names[] = {
    [SEC_JWT_ALG_INVALID] = "none", [SEC_JWT_RS256] = "RS256", [SEC_JWT_ES256] = "ES256",
    [SEC_JWT_EDDSA] = "EdDSA",      [SEC_JWT_HS256] = "HS256",
};

const char *sec_jwt_alg_name(enum sec_jwt_alg alg)
{
    return alg <= SEC_JWT_HS256 ? alg_names[alg] : "none";
}

static enum sec_jwt_alg alg_from(const char *s)
{
    for (int i = SEC_JWT_RS256; i <= SEC_JWT_HS256; i++) {
        if (strcmp(s, alg_names[i]) == 0) return (enum sec_jwt_alg)i;
    }
    return SEC_JWT_ALG_INVALID;
}

static const char *const status_names[] = {
    [SEC_JWT_OK] = "ok",
    [SEC_JWT_MALFORMED] = "malformed",
    [SEC_JWT_TOO_BIG] = "too_big",
    [SEC_JWT_ALG_NONE] = "alg_none",
    [SEC_JWT_ALG_UNSUPPORTED] = "alg_unsupported",
    [SEC_JWT_UNKNOWN_KID] = "unknown_kid",
    [SEC_JWT_ALG_MISMATCH] = "alg_mismatch",
    [SEC_JWT_BAD_SIGNATURE] = "bad_signature",
    [SEC_JWT_EXPIRED] = "expired",
    [SEC_JWT_NOT_YET_VALID] = "not_yet_valid",
    [SEC_JWT_WRONG_ISSUER] = "wrong_issuer",
    [SEC_JWT_WRONG_AUDIENCE] = "wrong_audience",
    [SEC_JWT_MISSING_CLAIM] = "missing_claim",
    [SEC_JWT_CLAIM_MISMATCH] = "claim_mismatch",
    [SEC_JWT_BAD_CLAIM] = "bad_claim",
};

const char *sec_jwt_status_name(enum sec_jwt_status s)
{
    return s <= SEC_JWT_BAD_CLAIM ? status_names[s] : "?";
}

/* ------------------------------------------------------------------------------------------
 * base64url
 * ------------------------------------------------------------------------------------------ */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int sec_base64url_decode(struct slice in, uint8_t *out, size_t cap, size_t *len)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    *len = 0;
    if (in.len % 4 == 1) return SH_EPARSE;
    if (in.len / 4 * 3 + (in.len % 4 ? in.len % 4 - 1 : 0) > cap) return SH_ETOOBIG;
    for (size_t i = 0; i < in.len; i++) {
        int v = b64_value((unsigned char)in.ptr[i]);
        if (v < 0) return SH_EPARSE;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return SH_EPARSE; /* trailing bits must be zero: one text per byte string */
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Messages: what goes into `why` is printable ASCII without quotes or backslashes.
 * ------------------------------------------------------------------------------------------ */
static void set_why(struct sec_jwt_result *out, const char *fmt, ...) SH_PRINTF(2, 3);
static void set_why(struct sec_jwt_result *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out->why, sizeof(out->why), fmt, ap);
    va_end(ap);
    for (char *p = out->why; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') *p = '?';
    }
}

static enum sec_jwt_status refuse(struct sec_jwt_result *out, enum sec_jwt_status st,
                                  const char *fmt, ...) SH_PRINTF(3, 4);
static enum sec_jwt_status refuse(struct sec_jwt_result *out, enum sec_jwt_status st,
                                  const char *fmt, ...)
{
    va_list ap;
    char msg[sizeof(out->why)];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_why(out, "%s", msg);
    out->status = st;
    return st;
}

/* A peer's short text for a message: at most 48 bytes, the unsafe ones as '?'. */
static const char *safe_text(const char *s, char *buf, size_t n)
{
    size_t i = 0;

    for (; s[i] && i + 1 < n && i < 48; i++)
        buf[i] = (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------------------------
 * JWKS
 * ------------------------------------------------------------------------------------------ */
static void jwk_release(struct jwk *k)
{
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    if (k->secret) OPENSSL_cleanse(k->secret, k->secret_len);
    sh_free(k->secret);
    k->secret = NULL;
}

void sec_jwks_free(struct sec_jwks *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->count; i++)
        jwk_release(&ks->keys[i]);
    sh_free(ks->keys);
    sh_free(ks);
}

size_t sec_jwks_count(const struct sec_jwks *ks)
{
    return ks ? ks->count : 0;
}

size_t sec_jwks_skipped(const struct sec_jwks *ks)
{
    return ks ? ks->skipped : 0;
}

/* A base64url member of a JWK, decoded into buf (cap bytes). */
static int member_b64(json_t *k, const char *name, const char *where, uint8_t *buf, size_t cap,
                      size_t *len, struct sh_diag *d)
{
    json_t *v = json_object_get(k, name);
    int rc;

    if (!json_is_string(v)) {
        sh_diag_set(d, where, "member '%s' is %s", name, v ? "not a string" : "missing");
        return SH_EPARSE;
    }
    rc = sec_base64url_decode((struct slice){json_string_value(v), json_string_length(v)}, buf, cap,
                              len);
    if (rc < 0) {
        sh_diag_set(d, where, "member '%s' is %s", name,
                    rc == SH_ETOOBIG ? "too long" : "not base64url (RFC 7515, no padding)");
        return SH_EPARSE;
    }
    return 0;
}

/* EVP_PKEY_fromdata over params built by bld, of key type <type>. */
static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pc = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;

    if (pc && EVP_PKEY_fromdata_init(pc) == 1 &&
        EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(pc);
    OSSL_PARAM_free(params);
    return pkey;
}

static int jwk_rsa(json_t *k, const char *where, struct jwk *out, struct sh_diag *d)
{
    uint8_t n[1024], e[16];
    size_t nlen, elen;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int rc = SH_ENOMEM;

    SH_TRY(member_b64(k, "n", where, n, sizeof(n), &nlen, d));
    SH_TRY(member_b64(k, "e", where, e, sizeof(e), &elen, d));
    if (nlen == 0 || elen == 0 || n[0] == 0 || e[0] == 0) {
        sh_diag_set(d, where, "members 'n' and 'e' must be unsigned big-endian, no leading zero");
        return SH_EPARSE;
    }
    bn = BN_bin2bn(n, (int)nlen, NULL);
    be = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1) {
        out->pkey = pkey_from("RSA", bld);
        if (!out->pkey) {
            sh_diag_set(d, where, "not a valid RSA public key");
            rc = SH_EPARSE;
        } else if (EVP_PKEY_get_bits(out->pkey) < SEC_JWT_RSA_MIN_BITS || !BN_is_odd(be) ||
                   BN_is_one(be)) {
            sh_diag_set(d, where, "RSA key of %d bits or a bad exponent (at least %d bits)",
                        EVP_PKEY_get_bits(out->pkey), SEC_JWT_RSA_MIN_BITS);
            rc = SH_EPARSE;
        } else {
            rc = 0;
        }
    }
    BN_free(bn);
    BN_free(be);
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

static int jwk_ec(json_t *k, const char *where, struct jwk *out, struct sh_diag *d)
{
    uint8_t pub[65], x[32], y[32];
    size_t xlen, ylen;
    OSSL_PARAM_BLD *bld;
    int rc = SH_ENOMEM;

    SH_TRY(member_b64(k, "x", where, x, sizeof(x), &xlen, d));
    SH_TRY(member_b64(k, "y", where, y, sizeof(y), &ylen, d));
    if (xlen != 32 || ylen != 32) {
        sh_diag_set(d, where, "P-256 coordinates 'x' and 'y' must be 32 bytes each");
        return SH_EPARSE;
    }
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    bld = OSSL_PARAM_BLD_new();
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) == 1) {
        out->pkey = pkey_from("EC", bld);
        rc = 0;
        if (out->pkey) { /* the point must be on the curve (invalid-curve attacks) */
            EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, out->pkey, NULL);
            if (!pc || EVP_PKEY_public_check(pc) != 1) {
                EVP_PKEY_free(out->pkey);
                out->pkey = NULL;
            }
            EVP_PKEY_CTX_free(pc);
        }
        if (!out->pkey) {
            sh_diag_set(d, where, "not a point on P-256");
            rc = SH_EPARSE;
        }
    }
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

static int jwk_okp(json_t *k, const char *where, struct jwk *out, struct sh_diag *d)
{
    uint8_t x[32];
    size_t xlen;
    OSSL_PARAM_BLD *bld;
    int rc = SH_ENOMEM;

    SH_TRY(member_b64(k, "x", where, x, sizeof(x), &xlen, d));
    if (xlen != 32) {
        sh_diag_set(d, where, "an Ed25519 'x' must be 32 bytes");
        return SH_EPARSE;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, xlen) == 1) {
        out->pkey = pkey_from("ED25519", bld);
        rc = 0;
        if (!out->pkey) {
            sh_diag_set(d, where, "not a valid Ed25519 public key");
            rc = SH_EPARSE;
        }
    }
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

static int jwk_oct(json_t *k, const char *where, struct jwk *out, struct sh_diag *d)
{
    uint8_t buf[512];
    size_t len;

    SH_TRY(member_b64(k, "k", where, buf, sizeof(buf), &len, d));
    if (len < SEC_JWT_HS_MIN_SECRET) {
        sh_diag_set(d, where, "an HS256 key 'k' must be at least %d bytes", SEC_JWT_HS_MIN_SECRET);
        return SH_EPARSE;
    }
    out->secret = sh_malloc(len);
    if (!out->secret) return SH_ENOMEM;
    memcpy(out->secret, buf, len);
    out->secret_len = len;
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* One JWK into *out: 0 (usable), 1 (skipped), or SH_E* with d. */
static int jwk_parse(json_t *k, const char *where, struct jwk *out, struct sh_diag *d)
{
    json_t *kty = json_object_get(k, "kty"), *use = json_object_get(k, "use");
    json_t *alg = json_object_get(k, "alg"), *kid = json_object_get(k, "kid");
    json_t *crv = json_object_get(k, "crv");
    const char *t, *c = json_is_string(crv) ? json_string_value(crv) : "";

    memset(out, 0, sizeof(*out));
    if (!json_is_object(k)) {
        sh_diag_set(d, where, "a key must be an object");
        return SH_EPARSE;
    }
    if (!json_is_string(kty)) {
        sh_diag_set(d, where, "member 'kty' is missing or not a string");
        return SH_EPARSE;
    }
    if (kid && (!json_is_string(kid) || json_string_length(kid) > SEC_JWT_KID_MAX)) {
        sh_diag_set(d, where, "member 'kid' must be a string of at most %d bytes", SEC_JWT_KID_MAX);
        return SH_EPARSE;
    }
    if ((use && !json_is_string(use)) || (alg && !json_is_string(alg))) {
        sh_diag_set(d, where, "members 'use' and 'alg' must be strings");
        return SH_EPARSE;
    }
    if (use && strcmp(json_string_value(use), "sig") != 0) return 1; /* an encryption key */
    t = json_string_value(kty);
    if (strcmp(t, "RSA") == 0) {
        out->alg = SEC_JWT_RS256;
    } else if (strcmp(t, "EC") == 0 && strcmp(c, "P-256") == 0) {
        out->alg = SEC_JWT_ES256;
    } else if (strcmp(t, "OKP") == 0 && strcmp(c, "Ed25519") == 0) {
        out->alg = SEC_JWT_EDDSA;
    } else if (strcmp(t, "oct") == 0) {
        out->alg = SEC_JWT_HS256;
    } else {
        return 1; /* another type or curve */
    }
    /* the key's own alg, when it names one, must be the one its type is bound to here (an RSA
     * key marked RS384 or PS256 is not used for RS256) */
    if (alg && strcmp(json_string_value(alg), alg_names[out->alg]) != 0) return 1;
    if (kid) {
        memcpy(out->kid, json_string_value(kid), json_string_length(kid));
        out->kid[json_string_length(kid)] = '\0';
        out->has_kid = true;
    }
    switch (out->alg) {
    case SEC_JWT_RS256:
        return jwk_rsa(k, where, out, d);
    case SEC_JWT_ES256:
        return jwk_ec(k, where, out, d);
    case SEC_JWT_EDDSA:
        return jwk_okp(k, where, out, d);
    case SEC_JWT_HS256:
        return jwk_oct(k, where, out, d);
    case SEC_JWT_ALG_INVALID:
        break;
    }
    return 1;
}

int sec_jwks_parse(struct slice json, struct sec_jwks **out, struct sh_diag *d)
{
    struct sec_jwks *ks = NULL;
    json_error_t jerr;
    json_t *root = NULL, *keys;
    json_t *single[1];
    size_t n;
    int rc;

    *out = NULL;
    if (json.len > SEC_JWKS_MAX_BYTES) {
        sh_diag_set(d, "jwks", "%zu bytes; at most %d", json.len, SEC_JWKS_MAX_BYTES);
        return SH_ETOOBIG;
    }
    root = json_loadb(json.ptr, json.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        sh_diag_set(d, "jwks", "not a JSON object%s%s", root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return SH_EPARSE;
    }
    keys = json_object_get(root, "keys");
    if (keys && !json_is_array(keys)) {
        sh_diag_set(d, "jwks.keys", "not an array");
        rc = SH_EPARSE;
        goto fail;
    }
    single[0] = root;
    n = keys ? json_array_size(keys) : 1;
    if (n > SEC_JWKS_MAX_KEYS) {
        sh_diag_set(d, "jwks.keys", "%zu keys; at most %d", n, SEC_JWKS_MAX_KEYS);
        rc = SH_ETOOBIG;
        goto fail;
    }
    rc = SH_ENOMEM;
    ks = sh_calloc(1, sizeof(*ks));
    if (!ks) goto fail;
    ks->keys = sh_calloc(n + 1, sizeof(*ks->keys));
    if (!ks->keys) goto fail;
    for (size_t i = 0; i < n; i++) {
        char where[32];
        json_t *k = keys ? json_array_get(keys, i) : single[0];
        snprintf(where, sizeof(where), keys ? "keys[%zu]" : "jwk", i);
        rc = jwk_parse(k, where, &ks->keys[ks->count], d);
        if (rc < 0) {
            jwk_release(&ks->keys[ks->count]);
            goto fail;
        }
        if (rc == 1) {
            jwk_release(&ks->keys[ks->count]);
            ks->skipped++;
        } else {
            ks->count++;
        }
    }
    if (ks->count == 0) {
        sh_diag_set(d, "jwks",
                    "no usable key (%zu skipped: supported are RSA, EC P-256, OKP "
                    "Ed25519 and oct signing keys)",
                    ks->skipped);
        rc = SH_EPARSE;
        goto fail;
    }
    json_decref(root);
    *out = ks;
    return 0;
fail:
    json_decref(root);
    sec_jwks_free(ks);
    return rc;
}

int sec_jwks_from_secret(struct slice secret, const char *kid, struct sec_jwks **out,
                         struct sh_diag *d)
{
    struct sec_jwks *ks;

    *out = NULL;
    if (secret.len < SEC_JWT_HS_MIN_SECRET) {
        sh_diag_set(d, "hs256_secret", "%zu bytes; an HS256 secret needs at least %d", secret.len,
                    SEC_JWT_HS_MIN_SECRET);
        return SH_EINVAL;
    }
    if (kid && strlen(kid) > SEC_JWT_KID_MAX) {
        sh_diag_set(d, "kid", "at most %d bytes", SEC_JWT_KID_MAX);
        return SH_EINVAL;
    }
    ks = sh_calloc(1, sizeof(*ks));
    if (!ks) return SH_ENOMEM;
    ks->keys = sh_calloc(1, sizeof(*ks->keys));
    if (!ks->keys || !(ks->keys[0].secret = sh_malloc(secret.len))) {
        sec_jwks_free(ks);
        return SH_ENOMEM;
    }
    ks->count = 1;
    ks->keys[0].alg = SEC_JWT_HS256;
    memcpy(ks->keys[0].secret, secret.ptr, secret.len);
    ks->keys[0].secret_len = secret.len;
    if (kid) {
        snprintf(ks->keys[0].kid, sizeof(ks->keys[0].kid), "%s", kid);
        ks->keys[0].has_kid = true;
    }
    *out = ks;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------------------------ */
struct parsed {
    struct slice signing_input; /* header "." payload */
    struct slice sig_b64;
    json_t *header, *claims;
    const char *kid; /* in header; NULL when absent */
    enum sec_jwt_alg alg;
};

static void parsed_release(struct parsed *p)
{
    json_decref(p->header);
    json_decref(p->claims);
    p->header = p->claims = NULL;
}

/* A base64url part that must hold a JSON object. */
static json_t *part_json(struct slice b64, const char *what, struct sec_jwt_result *out)
{
    uint8_t buf[SEC_JWT_MAX_TOKEN];
    size_t len;
    json_error_t jerr;
    json_t *j;

    if (sec_base64url_decode(b64, buf, sizeof(buf), &len) < 0) {
        refuse(out, SEC_JWT_MALFORMED, "the %s is not base64url", what);
        return NULL;
    }
    j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        refuse(out, SEC_JWT_MALFORMED, "the %s is not a JSON object", what);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Size, form and header; p->claims parsed too. */
static enum sec_jwt_status parse_token(struct slice token, struct parsed *p,
                                       struct sec_jwt_result *out)
{
    const char *dot1, *dot2, *end = token.ptr + token.len;
    json_t *alg, *kid, *crit;
    char tmp[64];

    memset(p, 0, sizeof(*p));
    if (token.len > SEC_JWT_MAX_TOKEN)
        return refuse(out, SEC_JWT_TOO_BIG, "the token is %zu bytes; at most %d", token.len,
                      SEC_JWT_MAX_TOKEN);
    dot1 = token.len ? memchr(token.ptr, '.', token.len) : NULL;
    dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return refuse(out, SEC_JWT_MALFORMED, "a token has exactly three parts");
    p->signing_input = (struct slice){token.ptr, (size_t)(dot2 - token.ptr)};
    p->sig_b64 = (struct slice){dot2 + 1, (size_t)(end - dot2 - 1)};
    p->header = part_json((struct slice){token.ptr, (size_t)(dot1 - token.ptr)}, "header", out);
    if (!p->header) return out->status;
    alg = json_object_get(p->header, "alg");
    if (!json_is_string(alg)) return refuse(out, SEC_JWT_MALFORMED, "the header has no alg");
    if (strcasecmp(json_string_value(alg), "none") == 0)
        return refuse(out, SEC_JWT_ALG_NONE, "alg none is refused");
    p->alg = out->alg = alg_from(json_string_value(alg));
    if (p->alg == SEC_JWT_ALG_INVALID)
        return refuse(out, SEC_JWT_ALG_UNSUPPORTED,
                      "alg %s is not accepted (RS256, ES256, EdDSA, HS256)",
                      safe_text(json_string_value(alg), tmp, sizeof(tmp)));
    if ((crit = json_object_get(p->header, "crit")))
        return refuse(out, SEC_JWT_ALG_UNSUPPORTED, "the header has crit (no extension known)");
    kid = json_object_get(p->header, "kid");
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) > SEC_JWT_KID_MAX)
            return refuse(out, SEC_JWT_MALFORMED, "the kid is not a string of at most %d bytes",
                          SEC_JWT_KID_MAX);
        p->kid = json_string_value(kid);
    }
    p->claims = part_json((struct slice){dot1 + 1, (size_t)(dot2 - dot1 - 1)}, "payload", out);
    if (!p->claims) return out->status;
    return SEC_JWT_OK;
}

/* JOSE ES256 signature (r||s, 32 bytes each) to the DER form OpenSSL verifies. */
static int ecdsa_der(const uint8_t *sig, uint8_t *der, size_t cap, size_t *len)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char *p = der;
    int n = -1;

    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them */
        if (i2d_ECDSA_SIG(es, NULL) <= (int)cap) n = i2d_ECDSA_SIG(es, &p);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    if (n <= 0) return SH_ENOMEM;
    *len = (size_t)n;
    return 0;
}

/* Whether sig is k's signature of msg. */
static bool sig_ok(const struct jwk *k, struct slice msg, const uint8_t *sig, size_t siglen)
{
    uint8_t der[80];
    size_t derlen;
    EVP_MD_CTX *ctx;
    bool ok = false;

    if (k->alg == SEC_JWT_HS256) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        if (siglen != 32) return false;
        if (!HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)msg.ptr,
                  msg.len, mac, &maclen) ||
            maclen != 32)
            return false;
        return CRYPTO_memcmp(mac, sig, 32) == 0;
    }
    if (k->alg == SEC_JWT_ES256) {
        if (siglen != 64 || ecdsa_der(sig, der, sizeof(der), &derlen) < 0) return false;
        sig = der;
        siglen = derlen;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx) return false;
    if (EVP_DigestVerifyInit_ex(ctx, NULL, k->alg == SEC_JWT_EDDSA ? NULL : "SHA256", NULL, NULL,
                                k->pkey, NULL) == 1)
        ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)msg.ptr, msg.len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static enum sec_jwt_status check_signature(const struct sec_jwks *const *keys, size_t nkeys,
                                           const struct parsed *p, struct sec_jwt_result *out)
{
    uint8_t sig[1024];
    size_t siglen;
    const struct jwk *cand[SEC_JWT_MAX_TRIES];
    size_t ncand = 0;
    bool kid_other_alg = false;
    char tmp[64];

    if (sec_base64url_decode(p->sig_b64, sig, sizeof(sig), &siglen) < 0)
        return refuse(out, SEC_JWT_MALFORMED, "the signature is not base64url");
    for (size_t s = 0; p->kid && s < nkeys && ncand == 0; s++) {
        for (size_t i = 0; keys[s] && i < keys[s]->count; i++) {
            const struct jwk *k = &keys[s]->keys[i];
            if (!k->has_kid || strcmp(k->kid, p->kid) != 0) continue;
            if (k->alg == p->alg) {
                cand[ncand++] = k;
                break;
            }
            kid_other_alg = true;
        }
    }
    if (p->kid && ncand == 0 && kid_other_alg) /* algorithm confusion, by kid */
        return refuse(out, SEC_JWT_ALG_MISMATCH, "key %s is not a %s key",
                      safe_text(p->kid, tmp, sizeof(tmp)), alg_names[p->alg]);
    /* no kid: every key of the token's algorithm; a kid no key has: the keys of its algorithm
     * that have no kid (a configured secret) */
    for (size_t s = 0, by_kid = ncand; !by_kid && s < nkeys; s++) {
        for (size_t i = 0; keys[s] && i < keys[s]->count && ncand < SEC_JWT_MAX_TRIES; i++) {
            const struct jwk *k = &keys[s]->keys[i];
            if (k->alg == p->alg && (!p->kid || !k->has_kid)) cand[ncand++] = k;
        }
    }
    if (ncand == 0) {
        if (p->kid)
            return refuse(out, SEC_JWT_UNKNOWN_KID, "no key has kid %s",
                          safe_text(p->kid, tmp, sizeof(tmp)));
        return refuse(out, SEC_JWT_UNKNOWN_KID, "no %s key for a token without a kid",
                      alg_names[p->alg]);
    }
    for (size_t i = 0; i < ncand; i++) {
        if (sig_ok(cand[i], p->signing_input, sig, siglen)) return SEC_JWT_OK;
    }
    return refuse(out, SEC_JWT_BAD_SIGNATURE, "the signature does not verify");
}

/* A NumericDate claim: absent (0), present (1, *out set), or not a number (SH_EPARSE). */
static int numeric_date(json_t *claims, const char *name, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    double x;

    if (!v) return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v)) return SH_EPARSE;
    x = json_real_value(v);
    if (!(x > -9e15 && x < 9e15)) return SH_EPARSE;
    *out = (int64_t)x;
    return 1;
}

/* Whether v is the string want (lengths compared: a claim with a NUL inside is not a prefix). */
static bool jstr_eq(json_t *v, const char *want)
{
    size_t n = strlen(want);

    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), want, n) == 0;
}

/* The JSON text of a scalar claim into buf: "true", "42"; strings as they are. NULL for
 * arrays, objects and null. */
static const char *scalar_text(json_t *v, char *buf, size_t n)
{
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_true(v)) return "true";
    if (json_is_false(v)) return "false";
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    if (json_is_real(v)) {
        snprintf(buf, n, "%.17g", json_real_value(v));
        return buf;
    }
    return NULL;
}

static bool claim_has(json_t *v, const char *want)
{
    char buf[64];
    const char *t;

    if (json_is_array(v)) {
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it)
        {
            t = json_is_string(it) ? NULL : scalar_text(it, buf, sizeof(buf));
            if (jstr_eq(it, want) || (t && strcmp(t, want) == 0)) return true;
        }
        return false;
    }
    t = json_is_string(v) ? NULL : scalar_text(v, buf, sizeof(buf));
    return jstr_eq(v, want) || (t && strcmp(t, want) == 0);
}

static bool aud_ok(json_t *aud, const struct sec_jwt_policy *pol)
{
    for (size_t i = 0; i < pol->naudiences; i++) {
        if (jstr_eq(aud, pol->audiences[i])) return true;
        if (json_is_array(aud)) {
            size_t k;
            json_t *it;
            json_array_foreach(aud, k, it)
            {
                if (jstr_eq(it, pol->audiences[i])) return true;
            }
        }
    }
    return false;
}

/* The value of one claim for a header into out->text at *used. */
static enum sec_jwt_status extract_one(json_t *v, const char *name, size_t idx, size_t *used,
                                       struct sec_jwt_result *out)
{
    char buf[64], tmp[64];
    const char *t = scalar_text(v, buf, sizeof(buf));
    char *dst = out->text + *used;
    size_t room = sizeof(out->text) - *used, len;

    if (t) {
        len = json_is_string(v) ? json_string_length(v) : strlen(t);
        if (len < room) memcpy(dst, t, len + 1);
    } else { /* an array or object: its compact JSON */
        len = json_dumpb(v, dst, room, JSON_COMPACT | JSON_ENCODE_ANY);
        if (len < room) dst[len] = '\0';
    }
    if (len == 0 && !t) len = SIZE_MAX; /* json_dumpb failed */
    for (size_t i = 0; len < room && i < len; i++) {
        unsigned char c = (unsigned char)dst[i];
        if (c < 0x20 || c == 0x7f) len = SIZE_MAX; /* no control bytes (nor NUL) in a header */
    }
    if (len > SEC_JWT_VALUE_MAX || len >= room)
        return refuse(out, SEC_JWT_BAD_CLAIM, "claim %s cannot be a header value",
                      safe_text(name, tmp, sizeof(tmp)));
    out->values[idx] = dst;
    *used += len + 1;
    return SEC_JWT_OK;
}

static enum sec_jwt_status check_claims(json_t *c, const struct sec_jwt_policy *pol, int64_t now_s,
                                        struct sec_jwt_result *out)
{
    int64_t exp = 0, nbf = 0, leeway = pol ? pol->leeway_s : 0;
    int rc;
    size_t used = 0;
    char tmp[64];

    rc = numeric_date(c, "exp", &exp);
    if (rc < 0) return refuse(out, SEC_JWT_MALFORMED, "exp is not a number");
    if (rc == 1) {
        out->has_exp = true;
        out->exp_s = exp;
        if (now_s >= exp + leeway) return refuse(out, SEC_JWT_EXPIRED, "the token has expired");
    }
    rc = numeric_date(c, "nbf", &nbf);
    if (rc < 0) return refuse(out, SEC_JWT_MALFORMED, "nbf is not a number");
    if (rc == 1 && now_s + leeway < nbf)
        return refuse(out, SEC_JWT_NOT_YET_VALID, "the token is not valid yet (nbf)");
    if (!pol) return SEC_JWT_OK;
    if (pol->issuer) {
        json_t *iss = json_object_get(c, "iss");
        if (!jstr_eq(iss, pol->issuer))
            return refuse(out, SEC_JWT_WRONG_ISSUER, "the issuer is not the expected one");
    }
    if (pol->naudiences && !aud_ok(json_object_get(c, "aud"), pol))
        return refuse(out, SEC_JWT_WRONG_AUDIENCE, "the audience is not an accepted one");
    for (size_t i = 0; i < pol->nrequired; i++) {
        const struct sec_jwt_claim_rule *r = &pol->required[i];
        json_t *v = json_object_get(c, r->name);
        if (!v)
            return refuse(out, SEC_JWT_MISSING_CLAIM, "claim %s is required",
                          safe_text(r->name, tmp, sizeof(tmp)));
        if (r->value && !claim_has(v, r->value))
            return refuse(out, SEC_JWT_CLAIM_MISMATCH, "claim %s does not have the required value",
                          safe_text(r->name, tmp, sizeof(tmp)));
    }
    for (size_t i = 0; i < pol->nextract && i < SEC_JWT_MAX_EXTRACT; i++) {
        json_t *v = json_object_get(c, pol->extract[i]);
        out->values[i] = NULL;
        if (!v || json_is_null(v)) continue;
        if (extract_one(v, pol->extract[i], i, &used, out) != SEC_JWT_OK) return out->status;
    }
    return SEC_JWT_OK;
}

static void result_init(struct sec_jwt_result *out)
{
    out->status = SEC_JWT_OK;
    out->why[0] = '\0';
    out->alg = SEC_JWT_ALG_INVALID;
    out->has_exp = false;
    out->exp_s = 0;
    memset(out->values, 0, sizeof(out->values));
}

enum sec_jwt_status sec_jwt_verify(const struct sec_jwks *const *keys, size_t nkeys,
                                   struct slice token, const struct sec_jwt_policy *pol,
                                   int64_t now_s, struct sec_jwt_result *out)
{
    struct parsed p;

    result_init(out);
    if (parse_token(token, &p, out) == SEC_JWT_OK && check_signature(keys, nkeys, &p, out) == 0)
        check_claims(p.claims, pol, now_s, out);
    parsed_release(&p);
    return out->status;
}

enum sec_jwt_status sec_jwt_inspect(struct slice token, const struct sec_jwt_policy *pol,
                                    int64_t now_s, struct sec_jwt_result *out)
{
    struct parsed p;

    result_init(out);
    if (parse_token(token, &p, out) == SEC_JWT_OK) check_claims(p.claims, pol, now_s, out);
    parsed_release(&p);
    return out->status;
}
