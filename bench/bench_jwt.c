/* SPDX-License-Identifier: MIT */
/* bench_jwt.c: the cost of JWT at the edge, per algorithm (RS256 with a 2048-bit key, ES256,
 * EdDSA, HS256), on one thread:
 *  - verify: sec_jwt_verify of a typical token (iss, aud, sub, exp, a roles array; one claim to
 *    a header): parse, key lookup, signature, claims: what a cache miss costs;
 *  - gateway miss: the gateway's whole check (proxy__jwt_check: token from the Authorization
 *    field, verify, claim values copied for the header) on a route with `cache: 0`;
 *  - gateway hit: the same check on a route with the cache, token already verified (hash, one
 *    compare of the whole token, values copied).
 * Prints µs per operation and operations per second per core. Keys are made by OpenSSL at start.
 * Usage: bench_jwt [--seconds S]   (S per measurement, default 1) */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "security/security.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t hs_secret[] = "bench-secret-bench-secret-bench-secret!!";

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

static void bn_b64(EVP_PKEY *k, const char *param, char *out)
{
    BIGNUM *bn = NULL;
    uint8_t buf[1024];

    EVP_PKEY_get_bn_param(k, param, &bn);
    b64url(buf, (size_t)BN_bn2bin(bn, buf), out);
    BN_free(bn);
}

/* The JWKS holding k's public key (or the HS256 secret) as kid "k1". */
static void jwks_of(const char *alg, EVP_PKEY *k, char *out, size_t n)
{
    char a[1400], b[1400];

    if (!strcmp(alg, "RS256")) {
        bn_b64(k, OSSL_PKEY_PARAM_RSA_N, a);
        bn_b64(k, OSSL_PKEY_PARAM_RSA_E, b);
        snprintf(out, n, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\",\"n\":\"%s\",\"e\":\"%s\"}]}",
                 a, b);
    } else if (!strcmp(alg, "ES256")) {
        uint8_t pub[65];
        size_t len = 0;
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len);
        b64url(pub + 1, 32, a);
        b64url(pub + 33, 32, b);
        snprintf(out, n,
                 "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\",\"x\":\"%s\","
                 "\"y\":\"%s\"}]}",
                 a, b);
    } else if (!strcmp(alg, "EdDSA")) {
        uint8_t pub[32];
        size_t len = sizeof(pub);
        EVP_PKEY_get_raw_public_key(k, pub, &len);
        b64url(pub, len, a);
        snprintf(out, n,
                 "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k1\",\"x\":\"%s\"}]}",
                 a);
    } else {
        b64url(hs_secret, sizeof(hs_secret) - 1, a);
        snprintf(out, n, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"k\":\"%s\"}]}", a);
    }
}

static void sign(const char *alg, EVP_PKEY *k, const char *payload, char *out, size_t n)
{
    char h[256], p[2048], hj[128], s[1400], si[2400];
    uint8_t sig[1024];
    size_t siglen = sizeof(sig);

    snprintf(hj, sizeof(hj), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"k1\"}", alg);
    b64url((const uint8_t *)hj, strlen(hj), h);
    b64url((const uint8_t *)payload, strlen(payload), p);
    snprintf(si, sizeof(si), "%s.%s", h, p);
    if (!strcmp(alg, "HS256")) {
        unsigned ml = 0;
        HMAC(EVP_sha256(), hs_secret, (int)sizeof(hs_secret) - 1, (const uint8_t *)si, strlen(si),
             sig, &ml);
        siglen = ml;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestSignInit_ex(ctx, NULL, strcmp(alg, "EdDSA") ? "SHA256" : NULL, NULL, NULL, k,
                              NULL);
        EVP_DigestSign(ctx, sig, &siglen, (const uint8_t *)si, strlen(si));
        EVP_MD_CTX_free(ctx);
        if (!strcmp(alg, "ES256")) {
            const uint8_t *dp = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)siglen);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            siglen = 64;
            ECDSA_SIG_free(es);
        }
    }
    b64url(sig, siglen, s);
    snprintf(out, n, "%s.%s", si, s);
}

static double seconds = 1.0;

/* Runs fn(ctx) in batches until `seconds` have passed; µs per call. */
typedef void bench_fn(void *ctx);
static double measure(bench_fn *fn, void *ctx)
{
    uint64_t t0 = sh_now_us(), n = 0, el;

    do {
        for (int i = 0; i < 64; i++)
            fn(ctx);
        n += 64;
        el = sh_now_us() - t0;
    } while (el < (uint64_t)(seconds * 1e6));
    return (double)el / (double)n;
}

struct ctx {
    const struct sec_jwks *sets[1];
    struct slice token;
    struct proxy_route route;
    struct proxy_jwt jwt;
    struct gw_worker w;
    struct gw_route_rt rr;
    struct http_parser parser;
    struct arena arena;
    int64_t now;
};

static void run_verify(void *p)
{
    struct ctx *c = p;
    struct sec_jwt_result r;

    if (sec_jwt_verify(c->sets, 1, c->token, &c->jwt.policy, c->now, &r) != SEC_JWT_OK) {
        fprintf(stderr, "bench_jwt: verify failed: %s\n", r.why);
        exit(1);
    }
}

static void run_gateway(void *p)
{
    struct ctx *c = p;
    struct gw_jwt_outcome o;

    arena_reset(&c->arena);
    proxy__jwt_check(&c->w, &c->rr, &c->route, &c->parser.head, &c->arena, (uint64_t)c->now, &o);
    if (o.status != 0 || o.nfields != 1) {
        fprintf(stderr, "bench_jwt: gateway check failed: %d %s\n", o.status, o.body);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    static const char *const algs[] = {"RS256", "ES256", "EdDSA", "HS256"};
    const char *extract[] = {"sub"};
    const char *aud[] = {"api"};
    struct proxy_kv c2h[] = {{"sub", "X-User"}};
    int64_t now = (int64_t)(sh_wall_ms() / 1000);
    char payload[512], jwks[4096], tok[4096], req[6000];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
    }
    sh_alloc_accounting(false);
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"https://idp.example\",\"aud\":[\"api\",\"web\"],\"sub\":\"user-12345\","
             "\"roles\":[\"reader\",\"writer\"],\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
             (long long)now, (long long)now - 5, (long long)now + 3600);
    printf("| algorithm | token bytes | verify (miss) µs | gateway check, miss µs | gateway "
           "check, hit µs | misses/s per core | hits/s per core |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t a = 0; a < SH_ARRAY_LEN(algs); a++) {
        struct ctx *c = sh_calloc(1, sizeof(*c));
        EVP_PKEY *k = NULL;
        struct sec_jwks *ks = NULL;
        struct sh_diag d;
        size_t used;
        double v, miss, hit;

        if (!strcmp(algs[a], "RS256")) k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        if (!strcmp(algs[a], "ES256")) k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!strcmp(algs[a], "EdDSA")) k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        jwks_of(algs[a], k, jwks, sizeof(jwks));
        if (sec_jwks_parse(slice_from_cstr(jwks), &ks, &d) < 0) {
            fprintf(stderr, "bench_jwt: %s: %s\n", d.where, d.what);
            return 1;
        }
        sign(algs[a], k, payload, tok, sizeof(tok));
        c->sets[0] = ks;
        c->token = slice_from_cstr(tok);
        c->now = now;
        c->jwt = (struct proxy_jwt){.leeway_ms = 60000,
                                    .forward_token = true,
                                    .file_keys = ks,
                                    .claims_to_headers = c2h,
                                    .nclaims_to_headers = 1,
                                    .realm = "bench",
                                    .policy = {.issuer = "https://idp.example",
                                               .audiences = aud,
                                               .naudiences = 1,
                                               .leeway_s = 60,
                                               .extract = extract,
                                               .nextract = 1}};
        c->route.name = "bench";
        c->route.jwt = &c->jwt;
        c->w.rng = 0x9e3779b97f4a7c15ull;
        arena_init(&c->arena, 4096, 0);
        snprintf(req, sizeof(req),
                 "GET /api/x HTTP/1.1\r\nHost: api.example\r\nUser-Agent: bench\r\n"
                 "Accept: */*\r\nAuthorization: Bearer %s\r\n\r\n",
                 tok);
        if (http_parser_init(&c->parser, HTTP_REQUEST, NULL) < 0 ||
            http_parser_feed(&c->parser, req, strlen(req), &used) != HTTP_HEAD) {
            fprintf(stderr, "bench_jwt: request did not parse\n");
            return 1;
        }
        v = measure(run_verify, c);
        c->jwt.cache_entries = 0;
        miss = measure(run_gateway, c);
        c->jwt.cache_entries = 1024;
        hit = measure(run_gateway, c);
        printf("| %s | %zu | %.2f | %.2f | %.3f | %.0f | %.0f |\n", algs[a], strlen(tok), v, miss,
               hit, 1e6 / miss, 1e6 / hit);
        fflush(stdout);
        proxy__jwt_cache_release(&c->rr.jwt_cache);
        arena_release(&c->arena);
        http_parser_release(&c->parser);
        sec_jwks_free(ks);
        EVP_PKEY_free(k);
        sh_free(c);
    }
    return 0;
}
