/* SPDX-License-Identifier: MIT */
/* tokens.c: scoped API tokens: the decision (sec_authorize), the table, and their records in
 * the store. See security.h. */
#include "security/security.h"
#include "store/store.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#define STORE_TOKENS "security/tokens/"
#define ROOT_ID "root"

struct sec_tokens {
    struct store *st;        /* borrowed; NULL in tests */
    struct sec_token *items; /* items[0] is the root token */
    size_t count, cap;
};

/* ------------------------------------------------------------------------------------------
 * Scopes and the decision
 * ------------------------------------------------------------------------------------------ */
static const char *const scope_names[] = {
    [SEC_SCOPE_READ] = "read", [SEC_SCOPE_WRITE] = "write", [SEC_SCOPE_ADMIN] = "admin"};

const char *sec_scope_name(enum sec_scope s)
{
    return s >= SEC_SCOPE_READ && s <= SEC_SCOPE_ADMIN ? scope_names[s] : "?";
}

int sec_scope_parse(struct slice s, enum sec_scope *out)
{
    for (int i = SEC_SCOPE_READ; i <= SEC_SCOPE_ADMIN; i++) {
        if (slice_eq(s, slice_from_cstr(scope_names[i]))) {
            *out = (enum sec_scope)i;
            return 0;
        }
    }
    return SH_EINVAL;
}

static void refuse(struct sec_decision *out, int status, const char *fmt, ...) SH_PRINTF(3, 4);
static void refuse(struct sec_decision *out, int status, const char *fmt, ...)
{
    va_list ap;

    out->allow = false;
    out->status = status;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof(out->why), fmt, ap);
    va_end(ap);
}

static const char *const need_names[] = {[SEC_NEED_NONE] = "nothing",
                                         [SEC_NEED_READ] = "read",
                                         [SEC_NEED_WRITE] = "write",
                                         [SEC_NEED_ADMIN] = "admin"};

void sec_authorize(const struct sec_token *t, const struct sec_request *rq, uint64_t now_ms,
                   struct sec_decision *out)
{
    *out = (struct sec_decision){.allow = true};
    if (rq->need == SEC_NEED_NONE) return;
    if (!t) {
        refuse(out, 401, "a token is required: send 'Authorization: Bearer <token>'");
        return;
    }
    if (t->expires_ms && now_ms >= t->expires_ms) {
        refuse(out, 401, "the token %s has expired", t->id);
        return;
    }
    /* an instance sends its own spans with the token it reads its config with: that is all
     * this grants (spans are what a service says about itself, never an authority) */
    if (rq->is_ingest && t->may_ingest) return;
    if ((int)t->scope < (int)rq->need) {
        refuse(out, 403, "the token %s has scope '%s'; this route needs '%s'", t->id,
               sec_scope_name(t->scope), need_names[rq->need]);
        return;
    }
    if (!t->prefix[0]) return;
    struct slice p = slice_from_cstr(t->prefix);
    if (!rq->is_keyed) {
        refuse(out, 403, "the token %s may only use config keys under '%s'", t->id, t->prefix);
        return;
    }
    /* A key must lie under the prefix; so must a prefix read (a shorter one would list keys
     * outside it). */
    if (!slice_starts_with(rq->key, p)) {
        refuse(out, 403, "the token %s may only use config keys under '%s'", t->id, t->prefix);
        return;
    }
}

bool sec_may_read_secrets(const struct sec_token *t)
{
    return t && (t->scope >= SEC_SCOPE_WRITE || t->prefix[0]);
}

/* ------------------------------------------------------------------------------------------
 * Hashing and text
 * ------------------------------------------------------------------------------------------ */
static int sha256(struct slice text, uint8_t out[SEC_HASH_BYTES])
{
    unsigned int n = 0;

    if (!EVP_Digest(text.ptr, text.len, out, &n, EVP_sha256(), NULL) || n != SEC_HASH_BYTES)
        return SH_EIO;
    return 0;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n) return SH_EINVAL;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return SH_EINVAL;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] = (uint8_t)(out[i / 2] | v);
    }
    return 0;
}

static int random_bytes(uint8_t *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0) return SH_EIO;
        got += (size_t)r;
    }
    return 0;
}

/* 192 bits as 32 base64url characters. */
static void b64url(const uint8_t in[24], char out[SEC_TOKEN_SECRET_LEN + 1])
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < 24; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        out[o++] = a[v >> 6 & 63];
        out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static bool printable_ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e) return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------
 * Records in the store: JSON {"scope","prefix","name","created_ms","expires_ms","hash"}
 * ------------------------------------------------------------------------------------------ */
/* The record's length (< n) written into out, or 0. */
static size_t record_encode(const struct sec_token *t, char *out, size_t n)
{
    char h[2 * SEC_HASH_BYTES + 1];

    hex(t->hash, SEC_HASH_BYTES, h);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "scope", sec_scope_name(t->scope), "prefix",
                  t->prefix, "name", t->name, "created_ms", (json_int_t)t->created_ms, "expires_ms",
                  (json_int_t)t->expires_ms, "hash", h);
    size_t len = o ? json_dumpb(o, out, n, JSON_COMPACT) : 0;

    json_decref(o);
    return len < n ? len : 0;
}

static int record_decode(struct slice id, struct slice value, struct sec_token *t)
{
    json_t *o = json_loadb(value.ptr, value.len, 0, NULL);
    const char *scope = NULL, *prefix = NULL, *name = NULL, *hash = NULL;
    json_int_t created = 0, expires = 0;
    int rc = SH_EPARSE;

    memset(t, 0, sizeof(*t));
    if (o && id.len == SEC_TOKEN_ID_LEN &&
        json_unpack(o, "{s:s, s:s, s:s, s:I, s:I, s:s}", "scope", &scope, "prefix", &prefix, "name",
                    &name, "created_ms", &created, "expires_ms", &expires, "hash", &hash) == 0 &&
        sec_scope_parse(slice_from_cstr(scope), &t->scope) == 0 &&
        strlen(prefix) <= SEC_PREFIX_MAX && strlen(name) <= SEC_NAME_MAX && created >= 0 &&
        expires >= 0 && unhex(hash, t->hash, SEC_HASH_BYTES) == 0) {
        memcpy(t->id, id.ptr, id.len);
        t->id[id.len] = '\0';
        snprintf(t->prefix, sizeof(t->prefix), "%s", prefix);
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->created_ms = (uint64_t)created;
        t->expires_ms = (uint64_t)expires;
        rc = 0;
    }
    json_decref(o);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------------------------ */
static int add(struct sec_tokens *ts, const struct sec_token *t)
{
    if (ts->count >= SEC_MAX_TOKENS) return SH_ELIMIT;
    SH_TRY(sh_array_reserve((void **)&ts->items, &ts->cap, ts->count + 1, sizeof(*ts->items)));
    ts->items[ts->count++] = *t;
    return 0;
}

int sec_tokens_open(struct store *st, const char *root_text, struct sec_tokens **out,
                    struct sh_diag *d)
{
    struct sec_tokens *ts;
    struct sec_token root = {.id = ROOT_ID, .scope = SEC_SCOPE_ADMIN, .name = "root"};
    struct store_result res = {0};
    size_t len = root_text ? strlen(root_text) : 0;
    int rc;

    *out = NULL;
    if (len < 16 || len > SH_TOKEN_MAX_LEN) {
        sh_diag_set(d, "token", "the root token must have 16 to %d characters", SH_TOKEN_MAX_LEN);
        return SH_EINVAL;
    }
    ts = sh_calloc(1, sizeof(*ts));
    if (!ts) return SH_ENOMEM;
    ts->st = st;
    rc = sha256(slice_from_cstr(root_text), root.hash);
    if (rc == 0) rc = add(ts, &root);
    if (rc == 0 && st) rc = store_range(st, STORE_PREFIX(SLICE(STORE_TOKENS)), 0, &res);
    for (size_t i = 0; rc == 0 && i < res.count; i++) {
        struct slice id = {res.kvs[i].key.ptr + strlen(STORE_TOKENS),
                           res.kvs[i].key.len - strlen(STORE_TOKENS)};
        struct sec_token t;
        if (record_decode(id, res.kvs[i].value, &t) < 0) {
            SH_LOG(SH_WARN, "security", "a stored token record does not parse; ignored",
                   LF_SLICE("key", res.kvs[i].key));
            continue;
        }
        rc = add(ts, &t);
    }
    store_result_release(&res);
    if (rc < 0) {
        sh_diag_set(d, "tokens", "cannot load the API tokens: %s", sh_strerror(rc));
        sec_tokens_free(ts);
        return rc;
    }
    *out = ts;
    return 0;
}

void sec_tokens_free(struct sec_tokens *ts)
{
    if (!ts) return;
    sh_free(ts->items);
    sh_free(ts);
}

int sec_token_create(struct sec_tokens *ts, const struct sec_token_spec *spec, uint64_t now_ms,
                     struct sec_token *out, char *text, size_t text_len, struct sh_diag *d)
{
    struct sec_token t = {.scope = spec->scope,
                          .created_ms = now_ms,
                          .is_ephemeral = spec->is_ephemeral,
                          .may_ingest = spec->may_ingest && spec->is_ephemeral};
    uint8_t raw[8 + 24];
    char secret[SEC_TOKEN_SECRET_LEN + 1];
    const char *prefix = spec->prefix ? spec->prefix : "";
    const char *name = spec->name ? spec->name : "";

    if (text_len < SEC_TOKEN_TEXT_LEN + 1) return SH_ETOOBIG;
    if (spec->scope < SEC_SCOPE_READ || spec->scope > SEC_SCOPE_ADMIN) {
        sh_diag_set(d, "scope", "the scope must be read, write or admin");
        return SH_EINVAL;
    }
    if (strlen(prefix) > SEC_PREFIX_MAX || !printable_ascii(prefix) || prefix[0] == '/') {
        sh_diag_set(d, "prefix",
                    "the prefix must be up to %d printable ASCII characters without spaces, "
                    "not starting with '/'",
                    SEC_PREFIX_MAX);
        return strlen(prefix) > SEC_PREFIX_MAX ? SH_ETOOBIG : SH_EINVAL;
    }
    if (strlen(name) > SEC_NAME_MAX) {
        sh_diag_set(d, "name", "the name is longer than %d bytes", SEC_NAME_MAX);
        return SH_ETOOBIG;
    }
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            sh_diag_set(d, "name", "the name has a control character");
            return SH_EINVAL;
        }
    }
    if (ts->count >= SEC_MAX_TOKENS) {
        sh_diag_set(d, "tokens", "there are already %d tokens; revoke some first", SEC_MAX_TOKENS);
        return SH_ELIMIT;
    }
    if (random_bytes(raw, sizeof(raw)) < 0) {
        sh_diag_set(d, "tokens", "no randomness for a token");
        return SH_EIO;
    }
    hex(raw, 8, t.id);
    b64url(raw + 8, secret);
    snprintf(text, text_len, "shoal_%s_%s", t.id, secret);
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(secret, sizeof(secret));
    snprintf(t.prefix, sizeof(t.prefix), "%s", prefix);
    snprintf(t.name, sizeof(t.name), "%s", name);
    if (spec->ttl_ms) t.expires_ms = now_ms + spec->ttl_ms;
    SH_TRY(sha256(slice_from_cstr(text), t.hash));
    if (!t.is_ephemeral && ts->st) {
        char key[64], rec[2 * SEC_PREFIX_MAX + 2 * SEC_NAME_MAX + 512];
        size_t len = record_encode(&t, rec, sizeof(rec));
        if (!len) {
            sh_diag_set(d, "name", "the name is not valid UTF-8");
            return SH_EINVAL;
        }
        snprintf(key, sizeof(key), STORE_TOKENS "%s", t.id);
        int rc = store_put(ts->st, slice_from_cstr(key), (struct slice){rec, len}, 0, NULL);
        if (rc < 0) {
            sh_diag_set(d, "store", "cannot store the token: %s", sh_strerror(rc));
            return rc;
        }
    }
    SH_TRY(add(ts, &t));
    *out = t;
    return 0;
}

int sec_token_revoke(struct sec_tokens *ts, const char *id)
{
    if (!strcmp(id, ROOT_ID)) return SH_EPERM;
    for (size_t i = 1; i < ts->count; i++) {
        if (strcmp(ts->items[i].id, id) != 0) continue;
        if (!ts->items[i].is_ephemeral && ts->st) {
            char key[64];
            snprintf(key, sizeof(key), STORE_TOKENS "%s", id);
            SH_TRY(store_delete(ts->st, STORE_KEY(slice_from_cstr(key)), NULL, NULL));
        }
        memmove(&ts->items[i], &ts->items[i + 1], (ts->count - i - 1) * sizeof(*ts->items));
        ts->count--;
        return 0;
    }
    return SH_ENOENT;
}

const struct sec_token *sec_tokens_verify(const struct sec_tokens *ts, struct slice presented)
{
    uint8_t h[SEC_HASH_BYTES];
    const struct sec_token *cand = NULL;

    if (presented.len == 0 || presented.len > SH_TOKEN_MAX_LEN) return NULL;
    if (sha256(presented, h) < 0) return NULL;
    /* a token of ours names its record; anything else can only be the root token */
    if (presented.len == SEC_TOKEN_TEXT_LEN && slice_starts_with(presented, SLICE("shoal_")) &&
        presented.ptr[6 + SEC_TOKEN_ID_LEN] == '_') {
        struct slice id = {presented.ptr + 6, SEC_TOKEN_ID_LEN};
        for (size_t i = 1; i < ts->count && !cand; i++) {
            if (slice_eq(id, slice_from_cstr(ts->items[i].id))) cand = &ts->items[i];
        }
    }
    if (!cand) cand = &ts->items[0];
    return CRYPTO_memcmp(h, cand->hash, SEC_HASH_BYTES) == 0 ? cand : NULL;
}

const struct sec_token *sec_tokens_list(const struct sec_tokens *ts, size_t *count)
{
    *count = ts->count;
    return ts->items;
}
