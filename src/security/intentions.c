/* SPDX-License-Identifier: MIT */
/* intentions.c: which service may call which: rules, their precedence, the decision, and
 * their records in the store. See security.h. */
#include "security/security.h"
#include "store/store.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define STORE_INTENTIONS "security/intentions/"

static const char *const method_names[] = {"GET",    "HEAD",    "POST",    "PUT",  "PATCH",
                                           "DELETE", "OPTIONS", "CONNECT", "TRACE"};

uint32_t sec_method_bit(struct slice method)
{
    for (size_t i = 0; i < SH_ARRAY_LEN(method_names); i++) {
        if (slice_eq(method, slice_from_cstr(method_names[i]))) return 1u << i;
    }
    return 0;
}

static bool name_ok(const char *s, bool is_from)
{
    size_t n = strlen(s);

    if (!strcmp(s, "*") || (is_from && !strcmp(s, "gateway"))) return true;
    if (n == 0 || n > SEC_INTENTION_NAME_MAX) return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
              *p == '.'))
            return false;
    }
    return true;
}

int sec_intention_make(const char *from, const char *to, const char *action,
                       const char *const *methods, size_t nmethods, const char *const *paths,
                       size_t npaths, struct sec_intention *out, struct sh_diag *d)
{
    memset(out, 0, sizeof(*out));
    if (!from || !name_ok(from, true)) {
        sh_diag_set(d, "from",
                    "the caller must be a service name ([a-z0-9-_.], up to %d), '*' or "
                    "'gateway'",
                    SEC_INTENTION_NAME_MAX);
        return SH_EINVAL;
    }
    if (!to || !name_ok(to, false)) {
        sh_diag_set(d, "to",
                    "the destination must be a service name ([a-z0-9-_.], up to %d) or '*'",
                    SEC_INTENTION_NAME_MAX);
        return SH_EINVAL;
    }
    if (!action || (strcmp(action, "allow") && strcmp(action, "deny"))) {
        sh_diag_set(d, "action", "the action must be allow or deny");
        return SH_EINVAL;
    }
    for (size_t i = 0; i < nmethods; i++) {
        uint32_t bit = sec_method_bit(slice_from_cstr(methods[i]));
        if (!bit) {
            sh_diag_set(d, "methods",
                        "'%.32s' is not a method (GET, HEAD, POST, PUT, PATCH, "
                        "DELETE, OPTIONS, CONNECT, TRACE)",
                        methods[i]);
            return SH_EINVAL;
        }
        out->methods |= bit;
    }
    if (npaths > SEC_INTENTION_PATHS) {
        sh_diag_set(d, "paths", "at most %d path prefixes", SEC_INTENTION_PATHS);
        return SH_ETOOBIG;
    }
    for (size_t i = 0; i < npaths; i++) {
        size_t n = strlen(paths[i]);
        if (paths[i][0] != '/' || n > SEC_INTENTION_PATH_MAX) {
            sh_diag_set(d, "paths", "a path prefix starts with '/' and has at most %d bytes",
                        SEC_INTENTION_PATH_MAX);
            return SH_EINVAL;
        }
        for (const char *p = paths[i]; *p; p++) {
            if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
                sh_diag_set(d, "paths", "a path prefix has no spaces or control characters");
                return SH_EINVAL;
            }
        }
        snprintf(out->paths[i], sizeof(out->paths[i]), "%s", paths[i]);
    }
    out->npaths = (uint32_t)npaths;
    snprintf(out->from, sizeof(out->from), "%s", from);
    snprintf(out->to, sizeof(out->to), "%s", to);
    out->allow = !strcmp(action, "allow");
    return 0;
}

/* Lower sorts first: the more specific rule, and deny at a tie. */
static int precedence(const struct sec_intention *r)
{
    return (strcmp(r->from, "*") ? 0 : 8) + (strcmp(r->to, "*") ? 0 : 4) +
           (r->methods || r->npaths ? 0 : 2) + (r->allow ? 1 : 0);
}

static int by_precedence(const void *a, const void *b)
{
    const struct sec_intention *x = a, *y = b;
    int d = precedence(x) - precedence(y);

    return d ? d : strcmp(x->id, y->id); /* a stable order between equals */
}

int sec_intentions_build(bool default_allow, const struct sec_intention *rules, size_t n,
                         struct sec_intentions **out)
{
    struct sec_intentions *set;

    *out = NULL;
    if (n > SEC_MAX_INTENTIONS) return SH_ELIMIT;
    set = sh_malloc(sizeof(*set) + n * sizeof(set->items[0]));
    if (!set) return SH_ENOMEM;
    set->default_allow = default_allow;
    set->count = n;
    if (n) memcpy(set->items, rules, n * sizeof(set->items[0]));
    qsort(set->items, n, sizeof(set->items[0]), by_precedence);
    *out = set;
    return 0;
}

static bool matches(const struct sec_intention *r, struct slice from, struct slice to,
                    struct slice method, struct slice path)
{
    if (strcmp(r->from, "*") && !slice_eq(from, slice_from_cstr(r->from))) return false;
    if (strcmp(r->to, "*") && !slice_eq(to, slice_from_cstr(r->to))) return false;
    if (r->methods && !(r->methods & sec_method_bit(method))) return false;
    if (!r->npaths) return true;
    for (uint32_t i = 0; i < r->npaths; i++) {
        if (slice_starts_with(path, slice_from_cstr(r->paths[i]))) return true;
    }
    return false;
}

void sec_intentions_decide(const struct sec_intentions *set, struct slice from, struct slice to,
                           struct slice method, struct slice path,
                           struct sec_intention_decision *out)
{
    out->rule = -1;
    if (!set) {
        out->allow = true;
        snprintf(out->why, sizeof(out->why), "no intentions");
        return;
    }
    for (size_t i = 0; i < set->count; i++) {
        const struct sec_intention *r = &set->items[i];
        if (!matches(r, from, to, method, path)) continue;
        out->allow = r->allow;
        out->rule = (int)i;
        snprintf(out->why, sizeof(out->why), "intention %s: %s %s -> %s", r->id,
                 r->allow ? "allow" : "deny", r->from, r->to);
        return;
    }
    out->allow = set->default_allow;
    snprintf(out->why, sizeof(out->why), "default: %s", set->default_allow ? "allow" : "deny");
}

/* ------------------------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------------------------ */
int sec_intention_new_id(struct sec_intention *it)
{
    static const char digits[] = "0123456789abcdef";
    uint8_t raw[8];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) return SH_EIO;
    for (size_t i = 0; i < sizeof(raw); i++) {
        it->id[2 * i] = digits[raw[i] >> 4];
        it->id[2 * i + 1] = digits[raw[i] & 15];
    }
    it->id[2 * sizeof(raw)] = '\0';
    return 0;
}

int sec_intention_save(struct store *st, const struct sec_intention *it)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:[]}", "from", it->from, "to", it->to, "action",
                  it->allow ? "allow" : "deny", "methods", (json_int_t)it->methods, "created_ms",
                  (json_int_t)it->created_ms, "source",
                  it->source == SEC_SOURCE_MANIFEST ? "manifest" : "api", "paths");
    char key[64], rec[2048];
    size_t len;

    for (uint32_t i = 0; o && i < it->npaths; i++)
        json_array_append_new(json_object_get(o, "paths"), json_string(it->paths[i]));
    len = o ? json_dumpb(o, rec, sizeof(rec), JSON_COMPACT) : 0;
    json_decref(o);
    if (!len || len >= sizeof(rec)) return SH_ENOMEM;
    snprintf(key, sizeof(key), STORE_INTENTIONS "%s", it->id);
    return store_put(st, slice_from_cstr(key), (struct slice){rec, len}, 0, NULL);
}

int sec_intention_delete(struct store *st, const char *id)
{
    char key[64];
    size_t n = 0;

    snprintf(key, sizeof(key), STORE_INTENTIONS "%s", id);
    SH_TRY(store_delete(st, STORE_KEY(slice_from_cstr(key)), &n, NULL));
    return n ? 0 : SH_ENOENT;
}

static int decode(struct slice id, struct slice value, struct sec_intention *it)
{
    json_t *o = json_loadb(value.ptr, value.len, 0, NULL), *paths = NULL;
    const char *from, *to, *action, *source;
    json_int_t methods, created;
    const char *p[SEC_INTENTION_PATHS];
    size_t np;
    int rc = SH_EPARSE;

    if (o && id.len == SEC_TOKEN_ID_LEN &&
        json_unpack(o, "{s:s, s:s, s:s, s:I, s:I, s:s, s:o}", "from", &from, "to", &to, "action",
                    &action, "methods", &methods, "created_ms", &created, "source", &source,
                    "paths", &paths) == 0 &&
        json_is_array(paths) && (np = json_array_size(paths)) <= SEC_INTENTION_PATHS) {
        for (size_t i = 0; i < np; i++)
            p[i] = json_is_string(json_array_get(paths, i))
                       ? json_string_value(json_array_get(paths, i))
                       : "";
        rc = sec_intention_make(from, to, action, NULL, 0, p, np, it, NULL);
        if (rc == 0) {
            memcpy(it->id, id.ptr, id.len);
            it->id[id.len] = '\0';
            it->methods = (uint32_t)methods & ((1u << SH_ARRAY_LEN(method_names)) - 1);
            it->created_ms = created > 0 ? (uint64_t)created : 0;
            it->source = strcmp(source, "manifest") ? SEC_SOURCE_API : SEC_SOURCE_MANIFEST;
        }
    }
    json_decref(o);
    return rc;
}

int sec_intentions_load(struct store *st, struct sec_intention **out, size_t *n)
{
    struct store_result res = {0};
    struct sec_intention *v = NULL;
    size_t cap = 0, count = 0;
    int rc = store_range(st, STORE_PREFIX(SLICE(STORE_INTENTIONS)), 0, &res);

    for (size_t i = 0; rc == 0 && i < res.count && count < SEC_MAX_INTENTIONS; i++) {
        struct slice id = {res.kvs[i].key.ptr + strlen(STORE_INTENTIONS),
                           res.kvs[i].key.len - strlen(STORE_INTENTIONS)};
        rc = sh_array_reserve((void **)&v, &cap, count + 1, sizeof(*v));
        if (rc == 0 && decode(id, res.kvs[i].value, &v[count]) == 0)
            count++;
        else if (rc == 0)
            SH_LOG(SH_WARN, "security", "a stored intention does not parse; ignored",
                   LF_SLICE("key", res.kvs[i].key));
    }
    store_result_release(&res);
    if (rc < 0) {
        sh_free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------------------------ */
struct sec_itable {
    struct store *st;
    bool default_allow;
    struct sec_intention *rules;
    size_t count, cap;
    struct sec_intentions *set;
    sec_intentions_fn *on_change;
    void *data;
};

/* The same rule, whatever its id, source and time. */
static bool same_rule(const struct sec_intention *a, const struct sec_intention *b)
{
    if (strcmp(a->from, b->from) || strcmp(a->to, b->to) || a->allow != b->allow ||
        a->methods != b->methods || a->npaths != b->npaths)
        return false;
    for (uint32_t i = 0; i < a->npaths; i++) {
        if (strcmp(a->paths[i], b->paths[i])) return false;
    }
    return true;
}

/* A manifest rule's id: from its content, so that it is the same at every start. */
static void content_id(struct sec_intention *it)
{
    static const char digits[] = "0123456789abcdef";
    char text[1024];
    uint8_t h[32];
    unsigned int hn = 0;
    int n = snprintf(text, sizeof(text), "%s|%s|%d|%u", it->from, it->to, it->allow, it->methods);

    for (uint32_t i = 0; i < it->npaths && n > 0 && (size_t)n < sizeof(text); i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "|%s", it->paths[i]);
    if (n < 0 || (size_t)n >= sizeof(text)) n = (int)sizeof(text) - 1;
    EVP_Digest(text, (size_t)n, h, &hn, EVP_sha256(), NULL);
    for (size_t i = 0; i < 8; i++) {
        it->id[2 * i] = digits[h[i] >> 4];
        it->id[2 * i + 1] = digits[h[i] & 15];
    }
    it->id[16] = '\0';
}

static int rebuild(struct sec_itable *t)
{
    struct sec_intentions *set;

    SH_TRY(sec_intentions_build(t->default_allow, t->rules, t->count, &set));
    sh_free(t->set);
    t->set = set;
    if (t->on_change) t->on_change(t->data, set);
    return 0;
}

static int push(struct sec_itable *t, const struct sec_intention *r)
{
    if (t->count >= SEC_MAX_INTENTIONS) return SH_ELIMIT;
    SH_TRY(sh_array_reserve((void **)&t->rules, &t->cap, t->count + 1, sizeof(*t->rules)));
    t->rules[t->count++] = *r;
    return 0;
}

int sec_itable_open(struct store *st, bool default_allow, const struct sec_intention *manifest,
                    size_t n, sec_intentions_fn *on_change, void *data, struct sec_itable **out,
                    struct sh_diag *d)
{
    struct sec_itable *t = sh_calloc(1, sizeof(*t));
    struct sec_intention *stored = NULL;
    size_t nstored = 0;
    int rc;

    *out = NULL;
    if (!t) return SH_ENOMEM;
    t->st = st;
    t->default_allow = default_allow;
    t->on_change = on_change;
    t->data = data;
    rc = st ? sec_intentions_load(st, &stored, &nstored) : 0;
    /* the manifest's rules of the last start go; this start's come in */
    for (size_t i = 0; rc == 0 && i < nstored; i++) {
        if (stored[i].source == SEC_SOURCE_MANIFEST)
            rc = sec_intention_delete(st, stored[i].id);
        else
            rc = push(t, &stored[i]);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct sec_intention r = manifest[i];
        r.source = SEC_SOURCE_MANIFEST;
        content_id(&r);
        bool dup = false;
        for (size_t k = 0; k < t->count && !dup; k++)
            dup = !strcmp(t->rules[k].id, r.id);
        if (dup) continue;
        rc = push(t, &r);
        if (rc == 0 && st) rc = sec_intention_save(st, &r);
    }
    sh_free(stored);
    if (rc == 0) rc = rebuild(t);
    if (rc < 0) {
        sh_diag_set(d, "intentions", "cannot load the intentions: %s", sh_strerror(rc));
        sec_itable_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void sec_itable_free(struct sec_itable *t)
{
    if (!t) return;
    sh_free(t->rules);
    sh_free(t->set);
    sh_free(t);
}

int sec_itable_add(struct sec_itable *t, const struct sec_intention *rule, uint64_t now_ms,
                   struct sec_intention *out)
{
    struct sec_intention r = *rule;

    for (size_t i = 0; i < t->count; i++) {
        if (same_rule(&t->rules[i], &r)) {
            *out = t->rules[i];
            return SH_EEXIST;
        }
    }
    SH_TRY(sec_intention_new_id(&r));
    r.source = SEC_SOURCE_API;
    r.created_ms = now_ms;
    if (t->count >= SEC_MAX_INTENTIONS) return SH_ELIMIT;
    if (t->st) SH_TRY(sec_intention_save(t->st, &r));
    SH_TRY(push(t, &r));
    *out = r;
    return rebuild(t);
}

int sec_itable_remove(struct sec_itable *t, const char *id)
{
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->rules[i].id, id)) continue;
        if (t->rules[i].source == SEC_SOURCE_MANIFEST) return SH_EPERM;
        if (t->st) SH_TRY(sec_intention_delete(t->st, id));
        memmove(&t->rules[i], &t->rules[i + 1], (t->count - i - 1) * sizeof(*t->rules));
        t->count--;
        return rebuild(t);
    }
    return SH_ENOENT;
}

const struct sec_intentions *sec_itable_current(const struct sec_itable *t)
{
    return t->set;
}
