/* SPDX-License-Identifier: MIT */
/* doc.c: document trees with source positions, and the typed readers components validate
 * their configuration with. Invariants: every node, string and array of a doc lives in its
 * arena; a MAP's keys are SCALAR nodes; text[len] == '\0' for every node. */
#include "core/core.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sh_doc_new(const char *file, struct sh_doc **out)
{
    struct sh_doc *doc = sh_calloc(1, sizeof(*doc));

    *out = NULL;
    if (!doc) return SH_ENOMEM;
    doc->file = sh_strdup(file ? file : "");
    if (!doc->file) {
        sh_free(doc);
        return SH_ENOMEM;
    }
    arena_init(&doc->arena, 8192, 0);
    *out = doc;
    return 0;
}

void sh_doc_free(struct sh_doc *doc)
{
    if (!doc) return;
    arena_release(&doc->arena);
    sh_free(doc->file);
    doc->file = NULL;
    sh_free(doc);
}

struct sh_node *sh_node_new(struct sh_doc *doc, enum sh_node_kind kind, uint32_t line, uint32_t col)
{
    struct sh_node *n = arena_alloc(&doc->arena, sizeof(*n));

    if (!n) return NULL;
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = line;
    n->col = col;
    n->doc = doc;
    n->text = "";
    doc->node_count++;
    return n;
}

struct sh_node *sh_node_new_scalar(struct sh_doc *doc, struct slice text, bool is_quoted,
                                   uint32_t line, uint32_t col)
{
    char *copy = arena_strndup(&doc->arena, text.len ? text.ptr : "", text.len);
    struct sh_node *n;

    if (!copy) return NULL;
    n = sh_node_new(doc, SH_NODE_SCALAR, line, col);
    if (!n) return NULL;
    n->text = copy;
    n->len = text.len;
    n->is_quoted = is_quoted;
    return n;
}

/* Makes room for one more entry in items (and values for a MAP). Arrays double inside the
 * arena; the old ones are left there, which at most doubles what the arrays take. */
static int grow(struct sh_doc *doc, struct sh_node *n)
{
    size_t cap;
    struct sh_node **items, **values = NULL;

    if (n->count < n->cap) return 0;
    if (sh_array_grow_cap(n->cap, n->count + 1, sizeof(*items), &cap) < 0) return SH_ENOMEM;
    items = arena_alloc(&doc->arena, cap * sizeof(*items));
    if (!items) return SH_ENOMEM;
    if (n->kind == SH_NODE_MAP) {
        values = arena_alloc(&doc->arena, cap * sizeof(*values));
        if (!values) return SH_ENOMEM;
        if (n->count) memcpy(values, n->values, n->count * sizeof(*values));
    }
    if (n->count) memcpy(items, n->items, n->count * sizeof(*items));
    n->items = items;
    n->values = values;
    n->cap = cap;
    return 0;
}

int sh_node_seq_append(struct sh_doc *doc, struct sh_node *seq, struct sh_node *item)
{
    int rc;

    assert(seq->kind == SH_NODE_SEQ && item);
    rc = grow(doc, seq);
    if (rc) return rc;
    seq->items[seq->count++] = item;
    return 0;
}

int sh_node_map_append(struct sh_doc *doc, struct sh_node *map, struct sh_node *key,
                       struct sh_node *value)
{
    int rc;

    assert(map->kind == SH_NODE_MAP && key && key->kind == SH_NODE_SCALAR && value);
    rc = grow(doc, map);
    if (rc) return rc;
    map->items[map->count] = key;
    map->values[map->count] = value;
    map->count++;
    return 0;
}

static bool text_is(const struct sh_node *n, const char *s)
{
    size_t len = strlen(s);

    return n->len == len && memcmp(n->text, s, len) == 0;
}

int sh_node_set_origin(struct sh_doc *doc, struct sh_node *node, const char *path)
{
    char *copy = arena_strndup(&doc->arena, path, strlen(path));

    if (!copy) return SH_ENOMEM;
    node->origin = copy;
    return 0;
}

const char *sh_node_path(const struct sh_node *node, const char *fallback)
{
    return node && node->origin ? node->origin : fallback;
}

const struct sh_node *sh_node_get(const struct sh_node *map, const char *key)
{
    if (!map || map->kind != SH_NODE_MAP) return NULL;
    for (size_t i = 0; i < map->count; i++) {
        if (text_is(map->items[i], key)) return map->values[i];
    }
    return NULL;
}

const char *sh_node_kind_name(enum sh_node_kind kind)
{
    static const char *const names[] = {
        [SH_NODE_NULL] = "nothing (null)",
        [SH_NODE_SCALAR] = "a single value",
        [SH_NODE_MAP] = "a map",
        [SH_NODE_SEQ] = "a list",
    };

    return (size_t)kind < SH_ARRAY_LEN(names) ? names[kind] : "an unknown node";
}

char *sh_node_where(const struct sh_node *node, char *out, size_t n)
{
    char pos[32];
    const char *file = node->doc && node->doc->file ? node->doc->file : "";
    size_t flen = strlen(file), plen, room;

    if (n == 0) return out;
    snprintf(pos, sizeof(pos), ":%" PRIu32 ":%" PRIu32, node->line, node->col);
    plen = strlen(pos);
    if (plen >= n) {
        snprintf(out, n, "%s", pos);
        return out;
    }
    room = n - 1 - plen;
    if (flen <= room) {
        snprintf(out, n, "%s%s", file, pos);
    } else if (room > 3) {
        /* Keep the end of a long path: the file's own name and the position matter most. */
        snprintf(out, n, "...%s%s", file + flen - (room - 3), pos);
    } else {
        snprintf(out, n, "%s", pos);
    }
    return out;
}

int sh_node_fail(struct sh_diag *d, const struct sh_node *node, const char *path, const char *fmt,
                 ...)
{
    va_list ap;
    size_t off = 0;

    if (!d) return SH_EPARSE;
    sh_node_where(node, d->where, sizeof(d->where));
    d->what[0] = '\0';
    if (path && *path) {
        snprintf(d->what, sizeof(d->what), "%s: ", path);
        off = strlen(d->what);
    }
    va_start(ap, fmt);
    vsnprintf(d->what + off, sizeof(d->what) - off, fmt, ap);
    va_end(ap);
    return SH_EPARSE;
}

/* How a user would recognise what they wrote, for "found ..." in messages. */
static void describe(const struct sh_node *node, char *out, size_t n)
{
    if (node->kind != SH_NODE_SCALAR) {
        snprintf(out, n, "%s", sh_node_kind_name(node->kind));
        return;
    }
    int shown = node->len > 40 ? 40 : (int)node->len;
    const char *more = node->len > 40 ? "..." : "";
    if (node->is_quoted)
        snprintf(out, n, "the quoted string '%.*s%s'", shown, node->text, more);
    else
        snprintf(out, n, "'%.*s%s'", shown, node->text, more);
}

int sh_node_expect(const struct sh_node *node, enum sh_node_kind kind, const char *path,
                   struct sh_diag *d)
{
    char found[64];

    if (node->kind == kind) return 0;
    describe(node, found, sizeof(found));
    sh_node_fail(d, node, path, "expected %s, found %s", sh_node_kind_name(kind), found);
    return SH_EPARSE;
}

int sh_node_require(const struct sh_node *map, const char *key, const char *path,
                    const struct sh_node **out, struct sh_diag *d)
{
    int rc = sh_node_expect(map, SH_NODE_MAP, path, d);

    *out = NULL;
    if (rc) return rc;
    *out = sh_node_get(map, key);
    if (*out) return 0;
    sh_node_fail(d, map, path, "missing required key '%s'", key);
    return SH_EPARSE;
}

/* Edit distance between a and b (Levenshtein), or SIZE_MAX when either is too long to bother:
 * only short typos of short keys get a "did you mean". */
static size_t distance(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t row[33];

    if (alen > 32 || blen > 32) return SIZE_MAX;
    for (size_t j = 0; j <= blen; j++)
        row[j] = j;
    for (size_t i = 1; i <= alen; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = SH_MIN(row[j] + 1, row[j - 1] + 1);
            row[j] = SH_MIN(best, diag + cost);
            diag = up;
        }
    }
    return row[blen];
}

int sh_node_check_keys(const struct sh_node *map, const char *const allowed[], const char *path,
                       struct sh_diag *d)
{
    int rc = sh_node_expect(map, SH_NODE_MAP, path, d);

    if (rc) return rc;
    for (size_t i = 0; i < map->count; i++) {
        const struct sh_node *key = map->items[i];
        const char *best = NULL;
        size_t best_dist = SIZE_MAX, k;

        for (k = 0; allowed[k]; k++) {
            if (text_is(key, allowed[k])) break;
            size_t dist = distance(key->text, key->len, allowed[k], strlen(allowed[k]));
            if (dist < best_dist) {
                best_dist = dist;
                best = allowed[k];
            }
        }
        if (allowed[k]) continue;
        int shown = key->len > 40 ? 40 : (int)key->len;
        /* A close match is the likely typo; otherwise the list tells what is possible. */
        if (best && best_dist <= 2 && best_dist < key->len) {
            sh_node_fail(d, key, path, "unknown key '%.*s' (did you mean '%s'?)", shown, key->text,
                         best);
            return SH_EPARSE;
        }
        if (d) {
            struct buf list = BUF_INIT(sizeof(d->what));
            for (k = 0; allowed[k]; k++)
                (void)buf_appendf(&list, "%s%s", k ? ", " : "", allowed[k]);
            sh_node_fail(d, key, path, "unknown key '%.*s' (allowed: %s)", shown, key->text,
                         list.err ? "..." : (list.data ? list.data : "none"));
            buf_release(&list);
        }
        return SH_EPARSE;
    }
    return 0;
}

/* The scalar checks every typed reader starts with. */
static int need_scalar(const struct sh_node *node, const char *path, struct sh_diag *d)
{
    return sh_node_expect(node, SH_NODE_SCALAR, path, d);
}

int sh_node_str(const struct sh_node *node, const char *path, const char **out, struct sh_diag *d)
{
    int rc = need_scalar(node, path, d);

    *out = NULL;
    if (rc) return rc;
    if (memchr(node->text, '\0', node->len)) {
        sh_node_fail(d, node, path, "the text contains a NUL character");
        return SH_EPARSE;
    }
    *out = node->text;
    return 0;
}

int sh_node_u64(const struct sh_node *node, const char *path, uint64_t min, uint64_t max,
                uint64_t *out, struct sh_diag *d)
{
    int rc = need_scalar(node, path, d);
    uint64_t v;

    *out = 0;
    if (rc) return rc;
    if (node->is_quoted) {
        sh_node_fail(d, node, path,
                     "expected a number, found the quoted string '%.*s' "
                     "(remove the quotes)",
                     node->len > 40 ? 40 : (int)node->len, node->text);
        return SH_EPARSE;
    }
    rc = slice_to_u64((struct slice){node->text, node->len}, &v);
    if (rc == SH_ETOOBIG) {
        sh_node_fail(d, node, path, "number '%.*s' is too large (at most %" PRIu64 ")",
                     node->len > 40 ? 40 : (int)node->len, node->text, max);
        return SH_ETOOBIG;
    }
    if (rc) {
        sh_node_fail(d, node, path, "expected a whole number, found '%.*s'",
                     node->len > 40 ? 40 : (int)node->len, node->text);
        return SH_EPARSE;
    }
    if (v < min || v > max) {
        sh_node_fail(d, node, path, "%" PRIu64 " is out of range (%" PRIu64 "..%" PRIu64 ")", v,
                     min, max);
        return v > max ? SH_ETOOBIG : SH_EPARSE;
    }
    *out = v;
    return 0;
}

static const struct {
    const char *text;
    bool value;
} bool_words[] = {
    {"true", true}, {"false", false}, {"yes", true}, {"no", false}, {"on", true}, {"off", false},
};

int sh_node_bool(const struct sh_node *node, const char *path, bool *out, struct sh_diag *d)
{
    int rc = need_scalar(node, path, d);
    struct slice s = {node->text, node->len};

    *out = false;
    if (rc) return rc;
    for (size_t i = 0; !node->is_quoted && i < SH_ARRAY_LEN(bool_words); i++) {
        if (slice_eq_nocase(s, slice_from_cstr(bool_words[i].text))) {
            *out = bool_words[i].value;
            return 0;
        }
    }
    if (node->is_quoted)
        sh_node_fail(d, node, path,
                     "expected true or false, found the quoted string '%.*s' "
                     "(remove the quotes)",
                     node->len > 40 ? 40 : (int)node->len, node->text);
    else
        sh_node_fail(d, node, path, "expected true or false, found '%.*s'",
                     node->len > 40 ? 40 : (int)node->len, node->text);
    return SH_EPARSE;
}

/* Runs one of core's unit parsers on a scalar and puts the node's position and path on its
 * message. */
static int parse_units(const struct sh_node *node, const char *path, uint64_t *out,
                       struct sh_diag *d, int (*parse)(struct slice, uint64_t *, struct sh_diag *))
{
    struct sh_diag inner = {{0}, {0}};
    int rc = need_scalar(node, path, d);

    *out = 0;
    if (rc) return rc;
    rc = parse((struct slice){node->text, node->len}, out, &inner);
    if (rc) sh_node_fail(d, node, path, "%s", inner.what);
    return rc;
}

int sh_node_duration_ms(const struct sh_node *node, const char *path, uint64_t *out_ms,
                        struct sh_diag *d)
{
    return parse_units(node, path, out_ms, d, sh_parse_duration_ms);
}

int sh_node_size(const struct sh_node *node, const char *path, uint64_t *out_bytes,
                 struct sh_diag *d)
{
    return parse_units(node, path, out_bytes, d, sh_parse_size);
}

int sh_node_ratio(const struct sh_node *node, const char *path, double *out, struct sh_diag *d)
{
    const char *s;
    char *end;
    double v;

    SH_TRY(sh_node_str(node, path, &s, d));
    v = strtod(s, &end);
    if (end == s) return sh_node_fail(d, node, path, "'%s' is not a ratio (write 20%% or 0.2)", s);
    if (*end == '%' && end[1] == '\0')
        v /= 100.0;
    else if (*end != '\0')
        return sh_node_fail(d, node, path, "'%s' is not a ratio (write 20%% or 0.2)", s);
    if (!(v >= 0.0 && v <= 1.0))
        return sh_node_fail(d, node, path, "'%s' is outside 0%%..100%%", s);
    *out = v;
    return 0;
}
