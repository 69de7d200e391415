/* SPDX-License-Identifier: MIT */
/* security.h: who may call the control plane. Scoped API tokens (read, write, admin; optionally
 * limited to config keys under a prefix; optionally expiring), kept hashed in the store; the
 * decision whether a token may make a request (a plain function); and the audit log of writes.
 * Later: the CA, identities, intentions, JWT.
 * Prefixes: sec_, SEC_.
 * Threads: the control thread only (the token table and the audit log belong to its loop). */
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

#endif
