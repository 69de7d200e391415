/* SPDX-License-Identifier: MIT */
/* security.h: who may call the control plane. Scoped API tokens (read, write, admin; optionally
 * limited to config keys under a prefix; optionally expiring), kept hashed in the store; the
 * decision whether a token may make a request (a plain function); the audit log of writes;
 * intentions (which service may call which); the CA and the services' identities (SPIFFE-style
 * certificates); and JSON Web Token verification for the gateway's routes (plain functions over
 * a key set).
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
    bool may_ingest; /* may also send spans (SEC_REQUEST's is_ingest routes: /v1/traces,
                      * /api/v2/spans) whatever its scope and prefix: an instance's token */
    uint8_t hash[SEC_HASH_BYTES]; /* SHA-256 of the text */
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
    bool is_ingest;   /* a span ingest route: a token that may_ingest may use it */
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
    bool may_ingest;    /* see sec_token; only for ephemeral tokens (it is not stored) */
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
 * Intentions: which service may call which (Consul's word). A rule names a caller and a
 * destination (a service name, or "*"; the caller may also be "gateway"), an action, and
 * optionally methods and path prefixes. The decision is a plain function over an immutable
 * set; the control plane keeps the rules (the manifest's and the API's) in the store and
 * publishes a new set to the proxies on every change.
 * ========================================================================================== */
enum {
    SEC_INTENTION_NAME_MAX = 64, /* a service name, "*", "gateway" */
    SEC_INTENTION_PATHS = 4,     /* path prefixes per rule */
    SEC_INTENTION_PATH_MAX = 128,
    SEC_MAX_INTENTIONS = 4096,
};

enum sec_intention_source { SEC_SOURCE_API = 0, SEC_SOURCE_MANIFEST = 1 };

struct sec_intention {
    char id[SEC_TOKEN_ID_LEN + 1]; /* 16 hex */
    char from[SEC_INTENTION_NAME_MAX + 1];
    char to[SEC_INTENTION_NAME_MAX + 1];
    bool allow;
    uint32_t methods; /* bit per method (sec_method_bit); 0 = every method */
    char paths[SEC_INTENTION_PATHS][SEC_INTENTION_PATH_MAX + 1]; /* prefixes; none = all */
    uint32_t npaths;
    enum sec_intention_source source;
    uint64_t created_ms;
};

/* An immutable set, shared by readers on any thread once built. */
struct sec_intentions {
    bool default_allow;
    size_t count;
    struct sec_intention items[]; /* in precedence order (sec_intentions_build sorts them) */
};

/* "GET" -> its bit, for methods masks; 0 for a method outside the list (GET HEAD POST PUT
 * PATCH DELETE OPTIONS CONNECT TRACE). */
uint32_t sec_method_bit(struct slice method);

/* A rule from its parts, checked: names are [a-z0-9-_.]{1,64} or "*" (from: also "gateway");
 * methods are names above; paths start with '/'. 0, or SH_EINVAL with d naming the field. */
SH_MUST_CHECK int sec_intention_make(const char *from, const char *to, const char *action,
                                     const char *const *methods, size_t nmethods,
                                     const char *const *paths, size_t npaths,
                                     struct sec_intention *out, struct sh_diag *d);

/* Builds a set (sh_free it) from n rules, sorted by precedence: an exact caller before "*",
 * then an exact destination before "*", then rules with methods or paths before those
 * without, then deny before allow. 0 and *out, or SH_ENOMEM / SH_ELIMIT. */
SH_MUST_CHECK int sec_intentions_build(bool default_allow, const struct sec_intention *rules,
                                       size_t n, struct sec_intentions **out);

struct sec_intention_decision {
    bool allow;
    int rule;      /* index into the set's items of the deciding rule; -1: the default */
    char why[192]; /* "intention 1a2b...: deny greeter -> names", "default: deny" */
};

/* The first rule in precedence order that matches (caller, destination, method, path) decides;
 * none: the set's default. A NULL set allows everything. Any thread. */
void sec_intentions_decide(const struct sec_intentions *set, struct slice from, struct slice to,
                           struct slice method, struct slice path,
                           struct sec_intention_decision *out);

/* Stored rules (API-made ones survive restarts; the manifest's are replaced at every start).
 * JSON records under "security/intentions/<id>". */
SH_MUST_CHECK int sec_intentions_load(struct store *st, struct sec_intention **out, size_t *n);
SH_MUST_CHECK int sec_intention_save(struct store *st, const struct sec_intention *it);
SH_MUST_CHECK int sec_intention_delete(struct store *st, const char *id);
/* A fresh random id into it->id. */
SH_MUST_CHECK int sec_intention_new_id(struct sec_intention *it);

/* The control plane's rules: the manifest's (replaced at every start, ids derived from their
 * content) and the API's (kept in the store). Every change builds a new set and hands it to
 * on_change (which copies what it keeps). Control thread. */
struct sec_itable;
typedef void sec_intentions_fn(void *data, const struct sec_intentions *set);
SH_MUST_CHECK int sec_itable_open(struct store *st, bool default_allow,
                                  const struct sec_intention *manifest, size_t n,
                                  sec_intentions_fn *on_change, void *data, struct sec_itable **out,
                                  struct sh_diag *d);
void sec_itable_free(struct sec_itable *t); /* NULL is a no-op */
/* Adds an API rule (its id and time are set here; *out gets the stored rule). 0, SH_EEXIST (an
 * equal rule exists: *out gets it), SH_ELIMIT, or SH_E* of the store. */
SH_MUST_CHECK int sec_itable_add(struct sec_itable *t, const struct sec_intention *rule,
                                 uint64_t now_ms, struct sec_intention *out);
/* Removes rule <id>: 0, SH_ENOENT, SH_EPERM (a manifest rule: change the manifest), SH_E*. */
SH_MUST_CHECK int sec_itable_remove(struct sec_itable *t, const char *id);
/* The current set (borrowed until the next change). */
const struct sec_intentions *sec_itable_current(const struct sec_itable *t);

/* ==========================================================================================
 * CA and identities (ca.c)
 *
 * The control plane's CA signs short-lived leaf certificates that name a service by a
 * SPIFFE-style identity, spiffe://<trust domain>/service/<name>, as the certificate's one URI
 * SAN. Keys are ECDSA P-256, signatures ECDSA with SHA-256.
 *
 * A CA made by shoal lives in a directory (DATA_DIR/ca, 0700): ca-<gen>.key (PKCS#8 PEM, 0600)
 * and ca-<gen>.pem (a self-signed root, valid SEC_CA_TTL_MS) per generation, and ca.json (which
 * generations exist, when a retiring one leaves the bundle, the trust domain). Generation N+1
 * is made by a rotation: from then on it signs every new leaf (it is "active"); generation N
 * is "retiring": it stays in the bundle (the CA certificates a peer trusts) until the last leaf
 * it signed has expired (or a configured overlap has passed), then it is "retired": out of the
 * bundle, its files removed. An external CA (a certificate and key given by path) is used as
 * it is and never rotated by shoal.
 *
 * The decisions (when to renew a leaf, what state a CA is in) are plain functions over plain
 * structs; the CA object carries them out.
 * ========================================================================================== */
#define SEC_TRUST_DOMAIN_DEFAULT "shoal.local"
#define SEC_LEAF_TTL_DEFAULT_MS (24ull * 3600 * 1000)  /* 24 h, as Linkerd's */
#define SEC_LEAF_TTL_MIN_MS 2000ull                    /* 2 s: tests */
#define SEC_LEAF_TTL_MAX_MS (30ull * 24 * 3600 * 1000) /* 30 days */
#define SEC_CA_TTL_MS (10ull * 365 * 24 * 3600 * 1000) /* a CA made by shoal: 10 years */
#define SEC_CERT_BACKDATE_MS 60000ull /* notBefore is this much before the issue (clock skew) */

enum {
    SEC_TRUST_DOMAIN_MAX = 255,
    SEC_SERVICE_NAME_MAX = 63, /* a DNS label, as the manifest's service names */
    SEC_IDENTITY_MAX = 9 + SEC_TRUST_DOMAIN_MAX + 9 + SEC_SERVICE_NAME_MAX, /* with "spiffe://" */
    SEC_SERIAL_HEX_MAX = 40,  /* a serial number in hex (20 bytes at most, RFC 5280) */
    SEC_FINGERPRINT_LEN = 95, /* SHA-256 as "AB:CD:...", as `openssl x509 -fingerprint` */
    SEC_CA_MAX = 8,           /* generations at once (the active one and retiring ones) */
};

/* A leaf as the renewal decision sees it. */
struct sec_leaf_view {
    uint64_t issued_ms;    /* when it was issued (Unix ms); 0: none issued yet */
    uint64_t not_after_ms; /* when it expires */
    uint32_t ca_gen;       /* the CA generation that signed it */
};
/* When a leaf is due for renewal: at 2/3 of its life from its issue. */
uint64_t sec_leaf_renew_at(const struct sec_leaf_view *l);
/* Renew now? Yes when none was issued, at or past sec_leaf_renew_at, or when it was signed by a
 * generation other than the active one (after a rotation: new leaves come from the new CA). */
bool sec_leaf_should_renew(const struct sec_leaf_view *l, uint32_t active_gen, uint64_t now_ms);

/* A CA generation as the bundle decision sees it. */
struct sec_ca_view {
    uint32_t gen;
    uint64_t not_after_ms; /* its certificate's end */
    uint64_t retire_at_ms; /* set when a newer generation took over: it leaves the bundle then */
};
enum sec_ca_state {
    SEC_CA_ACTIVE = 0, /* signs new leaves; in the bundle */
    SEC_CA_RETIRING,   /* signs nothing; in the bundle until retire_at_ms */
    SEC_CA_RETIRED,    /* out of the bundle */
};
/* The state of <v> when <active_gen> is the newest generation: the active one is active (until
 * its own certificate expires: then retired); an older one is retiring before its retire_at_ms
 * and before its certificate's end, else retired. */
enum sec_ca_state sec_ca_state_of(const struct sec_ca_view *v, uint32_t active_gen,
                                  uint64_t now_ms);
/* When the generation active until a rotation at <now_ms> leaves the bundle: <overlap_ms>
 * after the rotation when that is set (not 0); else when the last leaf it signed expires
 * (<last_leaf_not_after_ms>), and not before now_ms. */
uint64_t sec_ca_retire_at(uint64_t now_ms, uint64_t last_leaf_not_after_ms, uint64_t overlap_ms);
const char *sec_ca_state_name(enum sec_ca_state s); /* "active", "retiring", "retired" */

/* Checks a trust domain: 1 to SEC_TRUST_DOMAIN_MAX of a-z, 0-9, '.', '-', '_' (SPIFFE's
 * characters), not starting or ending with '.'. 0, or SH_EINVAL with d. */
SH_MUST_CHECK int sec_trust_domain_check(const char *td, struct sh_diag *d);
/* spiffe://<td>/service/<service> into out (SEC_IDENTITY_MAX + 1 bytes). The service name must
 * be a DNS label (1 to 63 of a-z, 0-9, '-', not starting or ending with '-'). 0, or SH_EINVAL
 * (d->where "service") / SH_ETOOBIG. */
SH_MUST_CHECK int sec_identity(const char *td, const char *service, char *out, size_t len,
                               struct sh_diag *d);

struct sec_ca;

struct sec_ca_config {
    const char *dir;          /* where a CA made by shoal lives (DATA_DIR/ca); made 0700 */
    const char *trust_domain; /* NULL: SEC_TRUST_DOMAIN_DEFAULT */
    const char *cert_file;    /* with key_file: an external CA (PEM), used as it is */
    const char *key_file;
    uint64_t leaf_ttl_ms; /* a leaf's lifetime when the caller asks none; 0: 24 h */
    uint64_t overlap_ms;  /* a retiring CA's time in the bundle; 0: until its last leaf expires */
};

/* Opens the CA: the external one of cfg, or the one in cfg->dir (made now, generation 1, when
 * the directory has none). A CA directory made for another trust domain is refused (SH_EINVAL:
 * remove the directory to start afresh). Retired generations are dropped. 0 and *out, or SH_E*
 * with d naming the file and the problem. */
SH_MUST_CHECK int sec_ca_open(const struct sec_ca_config *cfg, uint64_t now_ms, struct sec_ca **out,
                              struct sh_diag *d);
void sec_ca_free(struct sec_ca *ca); /* NULL is a no-op */

const char *sec_ca_trust_domain(const struct sec_ca *ca);
uint64_t sec_ca_leaf_ttl(const struct sec_ca *ca); /* the default leaf lifetime */
uint32_t sec_ca_active_gen(const struct sec_ca *ca);
bool sec_ca_is_external(const struct sec_ca *ca);
/* A value that changes whenever the bundle does at <now_ms> (a rotation, a retirement): a
 * holder of a copy of the bundle writes it again when it moved. */
uint64_t sec_ca_bundle_version(const struct sec_ca *ca, uint64_t now_ms);
/* Drops the generations retired at <now_ms> (their files too). Once a second is plenty. */
void sec_ca_tick(struct sec_ca *ca, uint64_t now_ms);

/* Makes generation active+1 (key, self-signed certificate) and makes it the active one; the
 * previous one retires (sec_ca_retire_at). Durable when it returns 0. SH_ENOTSUP for an
 * external CA, SH_ELIMIT with SEC_CA_MAX generations still in the bundle, SH_EIO (d). */
SH_MUST_CHECK int sec_ca_rotate(struct sec_ca *ca, uint64_t now_ms, struct sh_diag *d);

/* The bundle at <now_ms>: the PEM certificates of the active and retiring generations, newest
 * first, appended to out. 0 or out's error. */
SH_MUST_CHECK int sec_ca_bundle_pem(const struct sec_ca *ca, uint64_t now_ms, struct buf *out);

struct sec_ca_info {
    uint32_t gen;
    enum sec_ca_state state;
    bool is_external;
    char subject[256];                         /* RFC 2253: "CN=shoal CA 1,O=shoal.local" */
    char fingerprint[SEC_FINGERPRINT_LEN + 1]; /* SHA-256 of the DER certificate */
    char serial[SEC_SERIAL_HEX_MAX + 1];
    uint64_t not_before_ms, not_after_ms;
    uint64_t retire_at_ms; /* 0 unless retiring */
};
/* The generations in the bundle at <now_ms>, newest first, at most <max>; returns how many. */
size_t sec_ca_list(const struct sec_ca *ca, uint64_t now_ms, struct sec_ca_info *out, size_t max);

/* A leaf certificate and its key, issued by sec_ca_issue. Release with sec_leaf_release. */
struct sec_leaf {
    char *cert_pem; /* sh_malloc'd PEM, NUL-terminated */
    char *key_pem;  /* sh_malloc'd PKCS#8 PEM (a secret: never logged); wiped at release */
    char identity[SEC_IDENTITY_MAX + 1];
    char serial[SEC_SERIAL_HEX_MAX + 1]; /* upper-case hex, as `openssl x509 -serial` */
    uint64_t issued_ms, not_after_ms;    /* notBefore is issued_ms - SEC_CERT_BACKDATE_MS */
    uint32_t ca_gen;
};
/* Issues a leaf for <service> (a DNS label) with a fresh P-256 key, valid <ttl_ms> from
 * <now_ms> (0: the CA's default; SEC_LEAF_TTL_MIN_MS..SEC_LEAF_TTL_MAX_MS), never past the
 * CA's own end, signed by the active generation. Extensions: CA:FALSE, digitalSignature,
 * serverAuth + clientAuth, the identity as URI SAN. 0 and *out, or SH_EINVAL (d->where
 * "service" or "ttl"), SH_ENOMEM, SH_EIO (d). */
SH_MUST_CHECK int sec_ca_issue(struct sec_ca *ca, const char *service, uint64_t ttl_ms,
                               uint64_t now_ms, struct sec_leaf *out, struct sh_diag *d);
void sec_leaf_release(struct sec_leaf *l); /* zeroes *l; a zeroed one is fine */

/* Writes into <dir> (made 0700 when missing) cert.pem and key.pem (0600) of <leaf> when it is
 * not NULL, and ca.pem (<bundle>) when it is not NULL; each by a temporary file and a rename,
 * so a reader sees the old file or the new one, never a part. 0 or SH_EIO/SH_ETOOBIG (d). */
SH_MUST_CHECK int sec_tls_files_write(const char *dir, const struct sec_leaf *leaf,
                                      struct slice bundle, bool has_bundle, struct sh_diag *d);

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
