/* SPDX-License-Identifier: MIT */
/* security.h: who may call the control plane. Scoped API tokens (read, write, admin; optionally
 * limited to config keys under a prefix; optionally expiring), kept hashed in the store; the
 * decision whether a token may make a request (a plain function); the audit log of writes; and
 * JSON Web Token verification for the gateway's routes (plain functions over a key set).
 * Later: the CA, identities, intentions.
 * Prefixes: sec_, SEC_.
 * Threads: tokens and the audit log: the control thread only (they belong to its loop). JWT: a
 * key set is immutable once built and any thread may verify with it (see that section). */
#ifndef SHOAL_SECURITY_H
#define SHOAL_SECURITY_H

#include "core/core.h"

struct store;

/* ==========================================================================================
 * Tokens
 *
 * A token's text is "shoal_<id>_<secret>": id 16 hex digits (public: lists, the audit log),
 * secret 32 base64url characters (192 random bits). Only SHA-256 of the whole text is kept, in
 * the store under "security/tokens/<id>"; the text is shown once, when it is made. The data
 * directory's token (DATA_DIR/token, or SHOAL_TOKEN) is the root token: id "root", scope admin,
 * never stored, never expiring.
 * ========================================================================================== */

enum sec_scope {
    SEC_SCOPE_READ = 1,  /* every GET (but token lists and the audit log) */
    SEC_SCOPE_WRITE = 2, /* and writes: KV, registrations, checks, scale, restart */
    SEC_SCOPE_ADMIN = 3, /* and tokens, the audit log, stopping the stack */
};

/* What a request needs (the admin API's route table says it). */
enum sec_need {
    SEC_NEED_NONE = 0, /* open: GET /v1/status */
    SEC_NEED_READ = 1,
    SEC_NEED_WRITE = 2,
    SEC_NEED_ADMIN = 3,
};

enum {
    SEC_TOKEN_ID_LEN = 16,
    SEC_TOKEN_SECRET_LEN = 32,
    SEC_TOKEN_TEXT_LEN = 6 + SEC_TOKEN_ID_LEN + 1 + SEC_TOKEN_SECRET_LEN, /* "shoal_" id "_" s */
    SEC_HASH_BYTES = 32,
    SEC_PREFIX_MAX = 512, /* CFGKV_MAX_KEY_BYTES */
    SEC_NAME_MAX = 128,
    SEC_MAX_TOKENS = 10000, /* stored and in-memory together */
};

struct sec_token {
    char id[SEC_TOKEN_ID_LEN + 1]; /* or "root" */
    enum sec_scope scope;
    char prefix[SEC_PREFIX_MAX + 1]; /* "": everything its scope allows; else only config keys
                                      * under it (KV reads, writes, history, watches) */
    char name[SEC_NAME_MAX + 1];     /* what it is for: "prometheus", "instance greeter-1" */
    uint64_t created_ms;             /* Unix ms */
    uint64_t expires_ms;             /* Unix ms; 0 = never */
    bool is_ephemeral;               /* in memory only: an instance's token under shoal up */
    uint8_t hash[SEC_HASH_BYTES];    /* SHA-256 of the text */
};

/* "read", "write", "admin" (also for parsing: 0 and *out, or SH_EINVAL). */
const char *sec_scope_name(enum sec_scope s);
SH_MUST_CHECK int sec_scope_parse(struct slice s, enum sec_scope *out);

/* A request as the decision sees it. */
struct sec_request {
    enum sec_need need;
    bool is_keyed;    /* a config-key route: key is the key or the prefix it reads */
    bool is_prefix;   /* key is a prefix (?recurse, ?keys, a watch, a recursive delete) */
    struct slice key; /* user key ("config/web/x"), not the store's */
};

struct sec_decision {
    bool allow;
    int status;    /* when refused: 401 (no or unknown token) or 403 (not allowed) */
    char why[200]; /* when refused: what to tell the caller, naming the rule */
};

/* May <t> (NULL: no valid token was presented) make <rq> at <now_ms>? A plain function.
 * Refusals: no token for a route that needs one (401); expired (401); a scope below the need
 * (403); a prefix token on a route that is not a config key, or on a key or prefix not under
 * its prefix (403). */
void sec_authorize(const struct sec_token *t, const struct sec_request *rq, uint64_t now_ms,
                   struct sec_decision *out);

/* May <t> see config values marked secret? Admin and write tokens may, and so may a token
 * limited to a prefix (it reaches only its own keys: an instance reads its service's secrets);
 * a read token over everything (Prometheus, a read-only dashboard) sees that they exist, not
 * their values. NULL: no. */
bool sec_may_read_secrets(const struct sec_token *t);

/* The token table: every token in memory (the stored ones loaded at open), looked up by id. */
struct sec_tokens;

/* Loads the stored tokens (a record that does not parse is skipped with a warning). The root
 * token's text must be 16..SH_TOKEN_MAX_LEN characters. <st> may be NULL (nothing stored:
 * tests). 0 and *out, or SH_E* with d. */
SH_MUST_CHECK int sec_tokens_open(struct store *st, const char *root_text, struct sec_tokens **out,
                                  struct sh_diag *d);
void sec_tokens_free(struct sec_tokens *ts); /* NULL is a no-op */

struct sec_token_spec {
    enum sec_scope scope;
    const char *prefix; /* NULL or "": none; else a config key prefix (cfgkv_prefix_check) */
    const char *name;   /* NULL: "" */
    uint64_t ttl_ms;    /* 0: never expires */
    bool is_ephemeral;  /* not written to the store */
};

/* Makes a token: *out gets its record, text (>= SEC_TOKEN_TEXT_LEN + 1 bytes) its text. A
 * stored token is durable when the store's batch commits (as every admin write). 0, or
 * SH_EINVAL/SH_ETOOBIG (a bad prefix or name, with d), SH_ELIMIT (SEC_MAX_TOKENS), SH_E* of the
 * store. */
SH_MUST_CHECK int sec_token_create(struct sec_tokens *ts, const struct sec_token_spec *spec,
                                   uint64_t now_ms, struct sec_token *out, char *text,
                                   size_t text_len, struct sh_diag *d);
/* Revokes (and deletes from the store) the token <id>; "root" cannot be revoked (SH_EPERM).
 * 0, SH_ENOENT, or SH_E* of the store. */
SH_MUST_CHECK int sec_token_revoke(struct sec_tokens *ts, const char *id);
/* The token whose text is <presented>, or NULL (unknown, malformed, revoked). Hashes the text
 * and compares hashes in constant time. Expiry is sec_authorize's business. */
const struct sec_token *sec_tokens_verify(const struct sec_tokens *ts, struct slice presented);
/* The tokens (the root first), in creation order; *count gets how many. Borrowed until the next
 * create or revoke. */
const struct sec_token *sec_tokens_list(const struct sec_tokens *ts, size_t *count);

/* ==========================================================================================
 * Audit log: one JSON line per write to the API (who: the token's id and name; what: method,
 * path, status; when; from where), in DATA_DIR/audit.log (0600), rotated to audit.log.1 past a
 * size. Never holds a secret: no token text, no query string, no body.
 * ========================================================================================== */
struct sec_audit;

struct sec_audit_entry {
    uint64_t time_ms;
    const char *token_id, *token_name; /* "" when the request had no valid token */
    struct slice method;
    struct slice path; /* without the query string */
    int status;
    const char *peer; /* "127.0.0.1:51234" */
};

enum { SEC_AUDIT_DEFAULT_MAX_BYTES = 8 << 20, SEC_AUDIT_MAX_QUERY = 10000 };

/* Opens (creating) DATA_DIR/audit.log for appending. max_bytes 0 = the default. */
SH_MUST_CHECK int sec_audit_open(const char *data_dir, size_t max_bytes, struct sec_audit **out,
                                 struct sh_diag *d);
void sec_audit_close(struct sec_audit *a); /* NULL is a no-op */
/* Appends one line (written through to the file; not fsynced). 0 or SH_E*. */
SH_MUST_CHECK int sec_audit_write(struct sec_audit *a, const struct sec_audit_entry *e);
/* The entries from <since_ms> on, of token <token_id> (NULL: all), newest last, at most <limit>
 * (the newest ones; 0 = SEC_AUDIT_MAX_QUERY), as a JSON array into out. 0 or SH_E*. */
SH_MUST_CHECK int sec_audit_query(struct sec_audit *a, uint64_t since_ms, const char *token_id,
                                  size_t limit, struct buf *out);

/* ==========================================================================================
 * JWT (jwt.c): compact JWS tokens (RFC 7515, 7519) verified against a key set (JWKS, RFC 7517).
 *
 * Algorithms: RS256 (RSA keys of at least 2048 bits), ES256 (P-256; the JOSE signature r||s),
 * EdDSA (Ed25519), HS256 (a shared secret of at least 32 bytes). "none" and every other alg are
 * refused. A key is bound to the one algorithm its type allows (RSA -> RS256, EC P-256 ->
 * ES256, OKP Ed25519 -> EdDSA, oct -> HS256); a token is checked only with a key whose
 * algorithm is the token's, so an RSA public key can never serve as an HMAC secret (algorithm
 * confusion). A token with a kid uses the key with that kid (or, when no key has it, a key
 * without a kid of the token's algorithm: a configured HS256 secret); one without a kid tries
 * the keys of its algorithm (at most SEC_JWT_MAX_TRIES).
 *
 * Parsing is strict: exactly three dot-separated parts, base64url without padding and with
 * zero trailing bits, JSON objects without duplicate members, at most SEC_JWT_MAX_TOKEN bytes;
 * a header with "crit" is refused (no extension is understood).
 *
 * Threads: a struct sec_jwks is immutable once built: any number of threads may verify with
 * it at once. Build and free it on one thread. The verifier keeps no state.
 * ========================================================================================== */
enum sec_jwt_alg {
    SEC_JWT_ALG_INVALID = 0, /* unknown or refused */
    SEC_JWT_RS256,
    SEC_JWT_ES256,
    SEC_JWT_EDDSA,
    SEC_JWT_HS256,
};

enum {
    SEC_JWT_MAX_TOKEN = 8192,       /* bytes of a compact token */
    SEC_JWKS_MAX_BYTES = 64 * 1024, /* bytes of a JWKS document */
    SEC_JWKS_MAX_KEYS = 64,         /* keys in one JWKS (skipped ones included) */
    SEC_JWT_KID_MAX = 128,          /* bytes of a kid */
    SEC_JWT_MAX_TRIES = 8,          /* keys tried for a token without a kid */
    SEC_JWT_MAX_EXTRACT = 16,       /* claims whose values a caller may ask for */
    SEC_JWT_VALUE_MAX = 1024,       /* bytes of one extracted claim value */
    SEC_JWT_HS_MIN_SECRET = 32,     /* bytes (RFC 7518 3.2: at least the hash's size) */
    SEC_JWT_RSA_MIN_BITS = 2048,
};

/* "RS256", "ES256", "EdDSA", "HS256"; "none" for SEC_JWT_ALG_INVALID. */
const char *sec_jwt_alg_name(enum sec_jwt_alg alg);

/* Decodes base64url (RFC 4648 5) without padding: out gets the bytes (at most cap), *len how
 * many. Refuses '=' and any byte outside the alphabet, a length of 1 mod 4, and non-zero
 * trailing bits (one text per byte string). 0, SH_EPARSE, or SH_ETOOBIG (cap too small). */
SH_MUST_CHECK int sec_base64url_decode(struct slice in, uint8_t *out, size_t cap, size_t *len);

struct sec_jwks; /* opaque; immutable once built */

/* Parses a JWKS document ({"keys": [...]}) or a single JWK. Supported keys become usable keys;
 * a key of another type or curve, with "use" other than "sig", or with an "alg" other than
 * the one its type allows, is skipped (counted: sec_jwks_skipped). Refused (SH_EPARSE, with d
 * naming the member, e.g. where "keys[1].x"): not JSON, no "keys" array, a supported key with
 * a missing or malformed member (base64url, a length, a point off the curve, an RSA key under
 * SEC_JWT_RSA_MIN_BITS, an oct key under SEC_JWT_HS_MIN_SECRET bytes), a kid over
 * SEC_JWT_KID_MAX, no usable key at all. SH_ETOOBIG: over SEC_JWKS_MAX_BYTES or
 * SEC_JWKS_MAX_KEYS. 0 and *out (free with sec_jwks_free), or SH_E* and *out NULL. */
SH_MUST_CHECK int sec_jwks_parse(struct slice json, struct sec_jwks **out, struct sh_diag *d);
/* A key set of one HS256 secret (raw bytes, at least SEC_JWT_HS_MIN_SECRET), with kid (NULL:
 * none). 0, SH_EINVAL (too short, with d), SH_ENOMEM. */
SH_MUST_CHECK int sec_jwks_from_secret(struct slice secret, const char *kid, struct sec_jwks **out,
                                       struct sh_diag *d);
void sec_jwks_free(struct sec_jwks *ks);            /* NULL is a no-op */
size_t sec_jwks_count(const struct sec_jwks *ks);   /* usable keys */
size_t sec_jwks_skipped(const struct sec_jwks *ks); /* keys skipped at parse */

/* Why a token was refused; SEC_JWT_OK = 0 when it was not. */
enum sec_jwt_status {
    SEC_JWT_OK = 0,
    SEC_JWT_MALFORMED,       /* not three base64url parts of JSON objects; a claim of a wrong
                              * type (exp not a number, iss not a string...) */
    SEC_JWT_TOO_BIG,         /* over SEC_JWT_MAX_TOKEN */
    SEC_JWT_ALG_NONE,        /* alg "none" */
    SEC_JWT_ALG_UNSUPPORTED, /* another alg, or "crit" */
    SEC_JWT_UNKNOWN_KID,     /* no key with the token's kid (or for its alg, without a kid) */
    SEC_JWT_ALG_MISMATCH,    /* the kid's key is bound to another algorithm */
    SEC_JWT_BAD_SIGNATURE,
    SEC_JWT_EXPIRED,       /* now >= exp + leeway */
    SEC_JWT_NOT_YET_VALID, /* now + leeway < nbf */
    SEC_JWT_WRONG_ISSUER,
    SEC_JWT_WRONG_AUDIENCE,
    SEC_JWT_MISSING_CLAIM,  /* a required claim is absent */
    SEC_JWT_CLAIM_MISMATCH, /* a required claim has another value */
    SEC_JWT_BAD_CLAIM,      /* a claim asked for (extract) cannot be a header value */
};
/* "expired", "bad_signature", ...: the reason as a word, for JSON bodies and logs. */
const char *sec_jwt_status_name(enum sec_jwt_status s);

/* A required claim: present (value NULL), or with this value: a string claim equal to it, an
 * array claim containing it, a number or boolean whose JSON text is it ("true", "42"). */
struct sec_jwt_claim_rule {
    const char *name;
    const char *value;
};

/* What a verified token must also satisfy. Borrowed by sec_jwt_verify for the call. */
struct sec_jwt_policy {
    const char *issuer;           /* NULL: any iss */
    const char *const *audiences; /* the token's aud (a string or an array) must hold one */
    size_t naudiences;            /* 0: any aud */
    uint32_t leeway_s;            /* on exp and nbf */
    const struct sec_jwt_claim_rule *required;
    size_t nrequired;
    const char *const *extract; /* claims whose values the caller wants (claims to headers) */
    size_t nextract;            /* at most SEC_JWT_MAX_EXTRACT */
};

struct sec_jwt_result {
    enum sec_jwt_status status;
    char why[160];        /* a sentence for the caller: printable ASCII without quotes or
                           * backslashes (fits a quoted header value); never token bytes but
                           * a sanitised kid or claim name */
    enum sec_jwt_alg alg; /* the token's, when its header parsed */
    bool has_exp;
    int64_t exp_s; /* Unix seconds, when has_exp */
    /* values[i]: extract[i]'s value (a string as is; numbers, booleans, arrays and objects as
     * compact JSON), or NULL when the token has no such claim; points into text. A value with
     * control characters or over SEC_JWT_VALUE_MAX bytes makes the token SEC_JWT_BAD_CLAIM. */
    const char *values[SEC_JWT_MAX_EXTRACT];
    char text[SEC_JWT_MAX_EXTRACT * 256];
};

/* Verifies <token> against the key sets keys[0..nkeys) (looked up in order) and <pol> at
 * <now_s> (Unix seconds), in that order: size, form, header (alg, kid), key, signature, then
 * the claims (exp, nbf, iss, aud, required, extract). Fills *out and returns out->status. */
enum sec_jwt_status sec_jwt_verify(const struct sec_jwks *const *keys, size_t nkeys,
                                   struct slice token, const struct sec_jwt_policy *pol,
                                   int64_t now_s, struct sec_jwt_result *out);
/* The same checks without the key and signature steps: for tests, fuzzing and diagnostics,
 * never to let a request through. */
enum sec_jwt_status sec_jwt_inspect(struct slice token, const struct sec_jwt_policy *pol,
                                    int64_t now_s, struct sec_jwt_result *out);

#endif
