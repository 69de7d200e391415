/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_security_jwt.c: the first byte picks the parser: even, a JWKS document for
 * sec_jwks_parse; odd, a compact token for sec_jwt_verify (against a fixed HS256 secret, with
 * a policy that asks for claims) and sec_jwt_inspect (which reaches the claim checks without a
 * valid signature). Checks what security.h promises: a refused JWKS leaves *out NULL; a status
 * is in range; `why` is printable ASCII without quotes or backslashes; values for headers hold
 * no control bytes and stay within SEC_JWT_VALUE_MAX; over SEC_JWT_MAX_TOKEN is TOO_BIG.
 * Deterministic, no I/O, frees everything. */
#include "security/security.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(const struct sec_jwt_result *r, const struct sec_jwt_policy *pol,
                         size_t token_len)
{
    assert(r->status <= SEC_JWT_BAD_CLAIM);
    for (const char *p = r->why; *p; p++)
        assert(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
    if (token_len > SEC_JWT_MAX_TOKEN) assert(r->status == SEC_JWT_TOO_BIG);
    if (r->status != SEC_JWT_OK) return;
    for (size_t i = 0; i < pol->nextract; i++) {
        const char *v = r->values[i];
        if (!v) continue;
        assert(strlen(v) <= SEC_JWT_VALUE_MAX);
        for (; *v; v++)
            assert((unsigned char)*v >= 0x20 && *v != 0x7f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char secret[] = "fuzz-secret-fuzz-secret-fuzz-secret!";
    const char *extract[] = {"sub", "roles", "nested"};
    const char *aud[] = {"api"};
    struct sec_jwt_claim_rule req[] = {{"scope", NULL}};
    struct sec_jwt_policy pol = {.audiences = aud,
                                 .naudiences = data && size && (data[0] & 2) ? 1 : 0,
                                 .leeway_s = 60,
                                 .required = req,
                                 .nrequired = data && size && (data[0] & 4) ? 1 : 0,
                                 .extract = extract,
                                 .nextract = 3};
    struct sec_jwt_result r;
    struct slice in;

    if (size < 1) return 0;
    in = (struct slice){(const char *)data + 1, size - 1};
    if ((data[0] & 1) == 0) {
        struct sec_jwks *ks = NULL;
        struct sh_diag d;
        int rc = sec_jwks_parse(in, &ks, &d);
        assert(rc == 0 ? ks != NULL && sec_jwks_count(ks) > 0 : ks == NULL);
        (void)rc;
        sec_jwks_free(ks);
        return 0;
    }
    struct sec_jwks *hs = NULL;
    struct sh_diag d;
    if (sec_jwks_from_secret((struct slice){secret, sizeof(secret) - 1}, NULL, &hs, &d) < 0)
        return 0;
    const struct sec_jwks *sets[] = {hs};
    (void)sec_jwt_verify(sets, 1, in, &pol, 1700000000, &r);
    check_result(&r, &pol, in.len);
    (void)sec_jwt_inspect(in, &pol, 1700000000, &r);
    check_result(&r, &pol, in.len);
    sec_jwks_free(hs);
    return 0;
}
