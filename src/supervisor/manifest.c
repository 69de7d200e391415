/* SPDX-License-Identifier: MIT */
/* manifest.c: YAML text into a core document tree, with libyaml's event API. The only file
 * that includes <yaml.h>: libyaml's 1/0 results and its problem marks become SH_E* codes and
 * "file:line:col" diagnostics here, and nowhere else (style.md B4).
 * The tree is built without recursion: an explicit stack of open collections, at most
 * MANIFEST_MAX_DEPTH deep. Positions are libyaml's marks plus one (libyaml counts from 0). */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#define TAG_STR "tag:yaml.org,2002:str"
#define TAG_MAP "tag:yaml.org,2002:map"
#define TAG_SEQ "tag:yaml.org,2002:seq"

/* An open collection. For a MAP, key is the key read whose value has not come yet. */
struct frame {
    struct sh_node *node;
    struct sh_node *key;
};

struct reader {
    struct sh_doc *doc;
    const char *text; /* the input, to look at the bytes around a problem */
    size_t len;
    struct frame stack[MANIFEST_MAX_DEPTH];
    size_t depth;
    unsigned doc_count; /* DOCUMENT_START events seen */
    struct sh_diag *d;
};

/* Fills d->where with "file:line:col" for a 1-based position, keeping the tail of a long
 * file name as sh_node_where does. */
static void where_at(struct reader *r, uint32_t line, uint32_t col)
{
    struct sh_node at = {.doc = r->doc, .line = line, .col = col};

    if (r->d) sh_node_where(&at, r->d->where, sizeof(r->d->where));
}

static uint32_t to_pos(size_t zero_based)
{
    return zero_based >= UINT32_MAX ? UINT32_MAX : (uint32_t)zero_based + 1;
}

static int fail_at(struct reader *r, int rc, const yaml_mark_t *mark, const char *fmt, ...)
    SH_PRINTF(4, 5);
static int fail_at(struct reader *r, int rc, const yaml_mark_t *mark, const char *fmt, ...)
{
    va_list ap;

    if (!r->d) return rc;
    where_at(r, to_pos(mark->line), to_pos(mark->column));
    va_start(ap, fmt);
    vsnprintf(r->d->what, sizeof(r->d->what), fmt, ap);
    va_end(ap);
    return rc;
}

/* libyaml's problems in plain words. Matched by prefix; the first match wins. A problem that
 * is not here is passed through as libyaml wrote it. */
static const struct {
    const char *problem;
    const char *plain;
} problems[] = {
    {"found character that cannot start any token", "unexpected character"},
    {"mapping values are not allowed in this context",
     "a ':' is not allowed here (check the indentation; quote a value that contains ': ')"},
    {"did not find expected key", "this line does not fit the indentation of the map"},
    {"did not find expected '-' indicator", "this line does not fit the indentation of the list"},
    {"block sequence entries are not allowed in this context",
     "a '- ' list item is not allowed here (check the indentation)"},
    {"could not find expected ':'", "expected ':' after a key"},
    {"found unexpected end of stream", "the file ends before this is closed"},
    {"did not find expected ',' or ']'", "expected ',' or ']' in a [list]"},
    {"did not find expected ',' or '}'", "expected ',' or '}' in a {map}"},
    {"found unknown escape character", "unknown escape sequence in a double-quoted string"},
    {"found a tab character", "a tab is used for indentation; YAML allows only spaces"},
    {"did not find expected node content", "expected a value here"},
    {"found unexpected document indicator", "a '---' or '...' line inside a quoted string"},
    {"found undefined tag handle", "unknown tag handle"},
    {"did not find expected <document start>",
     "content after the end of the document ('...'); the file must hold one document"},
    {"control characters are not allowed",
     "the file contains a control character (only tab, CR and LF are allowed)"},
    {"invalid leading UTF-8 octet", "the file is not valid UTF-8"},
    {"incomplete UTF-8 octet sequence", "the file is not valid UTF-8"},
    {"invalid trailing UTF-8 octet", "the file is not valid UTF-8"},
    {"invalid length of a UTF-8 sequence", "the file is not valid UTF-8"},
    {"invalid Unicode character", "the file contains an invalid Unicode character"},
};

/* libyaml's contexts ("while parsing a block mapping") in words, as "in the map started". */
static const struct {
    const char *context;
    const char *plain;
} contexts[] = {
    {"while parsing a block mapping", "in the map that starts"},
    {"while parsing a block collection", "in the list that starts"},
    {"while parsing a flow sequence", "in the [list] that starts"},
    {"while parsing a flow mapping", "in the {map} that starts"},
    {"while scanning a quoted scalar", "in the quoted string that starts"},
    {"while parsing a quoted scalar", "in the quoted string that starts"},
    {"while scanning a simple key", "for the key that starts"},
    {"while scanning a block scalar", "in the block text that starts"},
    {"while parsing a block node", "in the value that starts"},
    {"while parsing a flow node", "in the value that starts"},
};

/* A line ends at LF, or at a CR that no LF follows (CRLF counts once, at its LF). */
static bool is_break(const struct reader *r, size_t i)
{
    if (r->text[i] == '\n') return true;
    return r->text[i] == '\r' && (i + 1 >= r->len || r->text[i + 1] != '\n');
}

/* The byte offset of a 0-based line and character column, or len when out of the text.
 * Columns count UTF-8 characters, as libyaml's marks do. */
static size_t offset_of(const struct reader *r, size_t line, size_t col)
{
    size_t i = 0;

    while (line > 0 && i < r->len) {
        if (is_break(r, i)) line--;
        i++;
    }
    while (col > 0 && i < r->len) {
        i++;
        while (i < r->len && ((unsigned char)r->text[i] & 0xC0) == 0x80)
            i++;
        col--;
    }
    return i;
}

/* 0-based line and character column of a byte offset, for reader errors (which carry only
 * an offset). */
static yaml_mark_t mark_of_offset(const struct reader *r, size_t off)
{
    yaml_mark_t m = {0, 0, 0};

    for (size_t i = 0; i < off && i < r->len; i++) {
        if (is_break(r, i)) {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)r->text[i] & 0xC0) != 0x80) {
            m.column++;
        }
    }
    m.index = off;
    return m;
}

/* Turns the parser's error into an SH_E* code and fills d. */
static int from_yaml(struct reader *r, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    const char *plain = problem, *ctx = NULL;
    yaml_mark_t mark = p->problem_mark;
    char detail[48] = "";

    if (p->error == YAML_MEMORY_ERROR) {
        if (r->d) {
            snprintf(r->d->where, sizeof(r->d->where), "%s", r->doc->file);
            snprintf(r->d->what, sizeof(r->d->what), "out of memory while reading YAML");
        }
        return SH_ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) mark = mark_of_offset(r, p->problem_offset);
    for (size_t i = 0; i < SH_ARRAY_LEN(problems); i++) {
        if (strncmp(problem, problems[i].problem, strlen(problems[i].problem)) == 0) {
            plain = problems[i].plain;
            break;
        }
    }
    if (strcmp(problem, "found character that cannot start any token") == 0) {
        size_t off = offset_of(r, mark.line, mark.column);
        unsigned char c = off < r->len ? (unsigned char)r->text[off] : 0;
        if (c == '\t')
            plain = "a tab is used for indentation; YAML allows only spaces";
        else if (c == '@' || c == '`')
            snprintf(detail, sizeof(detail), " '%c' (reserved; quote the value)", c);
        else if (c > 0x20 && c < 0x7f)
            snprintf(detail, sizeof(detail), " '%c'", c);
    }
    if (p->context) {
        ctx = p->context;
        for (size_t i = 0; i < SH_ARRAY_LEN(contexts); i++) {
            if (strcmp(ctx, contexts[i].context) == 0) {
                ctx = contexts[i].plain;
                break;
            }
        }
    }
    if (ctx && (p->context_mark.line != mark.line || p->context_mark.column != mark.column))
        return fail_at(r, SH_EPARSE, &mark, "%s%s (%s at line %zu, column %zu)", plain, detail, ctx,
                       p->context_mark.line + 1, p->context_mark.column + 1);
    return fail_at(r, SH_EPARSE, &mark, "%s%s", plain, detail);
}

static bool is_null_text(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    for (size_t i = 0; i < SH_ARRAY_LEN(nulls); i++) {
        if (strlen(nulls[i]) == len && memcmp(nulls[i], s, len) == 0) return true;
    }
    return false;
}

/* Rejects anchors and tags other than <allowed_tag> (the core tag of the node's kind). */
static int check_props(struct reader *r, const yaml_event_t *ev, const yaml_char_t *anchor,
                       const yaml_char_t *tag, const char *allowed_tag)
{
    if (anchor)
        return fail_at(r, SH_EPARSE, &ev->start_mark,
                       "anchors and aliases (&%.40s, *name) are not supported; write the value "
                       "out in full",
                       (const char *)anchor);
    if (tag && strcmp((const char *)tag, allowed_tag) != 0) {
        const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";
        bool is_core = strncmp(t, core, strlen(core)) == 0; /* shown as the user wrote it */
        return fail_at(r, SH_EPARSE, &ev->start_mark, "tag '%s%.60s' is not supported",
                       is_core ? "!!" : "", is_core ? t + strlen(core) : t);
    }
    return 0;
}

/* Counts a node against the limit before it is built. */
static int check_count(struct reader *r, const yaml_event_t *ev)
{
    if (r->doc->node_count >= MANIFEST_MAX_NODES)
        return fail_at(r, SH_ETOOBIG, &ev->start_mark,
                       "the document has more than %u values (the limit)",
                       (unsigned)MANIFEST_MAX_NODES);
    return 0;
}

/* Places a finished or just-opened node: the root, the next list item, a map key or its value. */
static int attach(struct reader *r, const yaml_event_t *ev, struct sh_node *node)
{
    struct frame *top;

    if (r->depth == 0) {
        r->doc->root = node;
        return 0;
    }
    top = &r->stack[r->depth - 1];
    if (top->node->kind == SH_NODE_SEQ) return sh_node_seq_append(r->doc, top->node, node);
    if (top->key) {
        int rc = sh_node_map_append(r->doc, top->node, top->key, node);
        top->key = NULL;
        return rc;
    }
    if (node->kind != SH_NODE_SCALAR)
        return fail_at(r, SH_EPARSE, &ev->start_mark, "a map key must be a single value, not %s",
                       sh_node_kind_name(node->kind));
    if (node->len == 0) return fail_at(r, SH_EPARSE, &ev->start_mark, "a map key is empty");
    top->key = node;
    return 0;
}

static int cmp_keys(const void *pa, const void *pb)
{
    const struct sh_node *a = *(const struct sh_node *const *)pa;
    const struct sh_node *b = *(const struct sh_node *const *)pb;
    int c = memcmp(a->text, b->text, SH_MIN(a->len, b->len));

    if (c) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    if (a->line != b->line) return a->line < b->line ? -1 : 1;
    return a->col < b->col ? -1 : a->col > b->col;
}

static bool same_key(const struct sh_node *a, const struct sh_node *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

static bool before(const struct sh_node *a, const struct sh_node *b)
{
    return a->line < b->line || (a->line == b->line && a->col < b->col);
}

/* Finds the duplicate key of <map> whose second occurrence comes first in the file. Small maps
 * are compared pair by pair; big ones through a sorted copy of their keys. */
static int check_duplicates(struct reader *r, const struct sh_node *map)
{
    const struct sh_node *first = NULL, *second = NULL;

    if (map->count < 2) return 0;
    if (map->count <= 16) {
        for (size_t j = 1; j < map->count && !second; j++) {
            for (size_t i = 0; i < j; i++) {
                if (same_key(map->items[i], map->items[j])) {
                    first = map->items[i];
                    second = map->items[j];
                    break;
                }
            }
        }
    } else {
        const struct sh_node **keys = sh_malloc(map->count * sizeof(*keys));
        if (!keys) return SH_ENOMEM;
        memcpy(keys, map->items, map->count * sizeof(*keys));
        qsort(keys, map->count, sizeof(*keys), cmp_keys);
        for (size_t i = 1; i < map->count; i++) {
            if (same_key(keys[i - 1], keys[i]) && (!second || before(keys[i], second))) {
                first = keys[i - 1];
                second = keys[i];
            }
        }
        sh_free(keys);
    }
    if (!second) return 0;
    if (r->d) {
        where_at(r, second->line, second->col);
        snprintf(r->d->what, sizeof(r->d->what),
                 "duplicate key '%.60s' (already set at line %" PRIu32 ", column %" PRIu32 ")",
                 second->text, first->line, first->col);
    }
    return SH_EPARSE;
}

static int on_scalar(struct reader *r, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    bool is_plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const yaml_char_t *tag = ev->data.scalar.tag;
    struct sh_node *node;
    bool is_key = r->depth > 0 && r->stack[r->depth - 1].node->kind == SH_NODE_MAP &&
                  !r->stack[r->depth - 1].key;
    int rc = check_props(r, ev, ev->data.scalar.anchor, tag, TAG_STR);

    if (rc) return rc;
    rc = check_count(r, ev);
    if (rc) return rc;
    /* A key is always text ("null: 1" has the key "null"); a value written as nothing or as
     * a null word is NULL. */
    if (is_plain && !tag && !is_key && is_null_text(text, len))
        node = sh_node_new(r->doc, SH_NODE_NULL, to_pos(ev->start_mark.line),
                           to_pos(ev->start_mark.column));
    else
        node = sh_node_new_scalar(r->doc, (struct slice){text, len}, !is_plain || tag != NULL,
                                  to_pos(ev->start_mark.line), to_pos(ev->start_mark.column));
    if (!node) return SH_ENOMEM;
    return attach(r, ev, node);
}

static int on_open(struct reader *r, const yaml_event_t *ev, enum sh_node_kind kind)
{
    const yaml_char_t *anchor, *tag;
    struct sh_node *node;
    int rc;

    if (kind == SH_NODE_MAP) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    rc = check_props(r, ev, anchor, tag, kind == SH_NODE_MAP ? TAG_MAP : TAG_SEQ);
    if (rc) return rc;
    if (r->depth == MANIFEST_MAX_DEPTH)
        return fail_at(r, SH_ETOOBIG, &ev->start_mark,
                       "maps and lists are nested more than %d levels deep (the limit)",
                       MANIFEST_MAX_DEPTH);
    rc = check_count(r, ev);
    if (rc) return rc;
    node = sh_node_new(r->doc, kind, to_pos(ev->start_mark.line), to_pos(ev->start_mark.column));
    if (!node) return SH_ENOMEM;
    rc = attach(r, ev, node);
    if (rc) return rc;
    r->stack[r->depth++] = (struct frame){.node = node};
    return 0;
}

static int on_close(struct reader *r)
{
    struct sh_node *node;

    if (SH_NEVER(r->depth == 0)) return SH_EPARSE;
    node = r->stack[--r->depth].node;
    return node->kind == SH_NODE_MAP ? check_duplicates(r, node) : 0;
}

/* Handles one event; returns 0 to go on, a positive 1 at the end of the stream, or SH_E*. */
static int on_event(struct reader *r, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (r->doc_count++ > 0)
            return fail_at(r, SH_EPARSE, &ev->start_mark,
                           "a second YAML document starts here; the file must hold one");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail_at(r, SH_EPARSE, &ev->start_mark,
                       "anchors and aliases (&name, *%.40s) are not supported; write the value "
                       "out in full",
                       (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT:
        return on_scalar(r, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_open(r, ev, SH_NODE_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_open(r, ev, SH_NODE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_close(r);
    }
    return 0;
}

/* Copies the name of a file into d->where, keeping its tail when long. */
static void where_file(struct sh_diag *d, const char *name)
{
    size_t len = strlen(name);

    if (!d) return;
    if (len < sizeof(d->where))
        snprintf(d->where, sizeof(d->where), "%s", name);
    else
        snprintf(d->where, sizeof(d->where), "...%s", name + len - (sizeof(d->where) - 4));
}

int manifest_read_buf(const char *name, const char *text, size_t len, struct sh_doc **out,
                      struct sh_diag *d)
{
    struct reader r = {.text = text, .len = len, .d = d};
    yaml_parser_t parser;
    bool has_parser = false;
    int rc;

    *out = NULL;
    if (!name) name = "";
    if (len > MANIFEST_MAX_BYTES) {
        where_file(d, name);
        if (d)
            snprintf(d->what, sizeof(d->what), "the file is %zu bytes; the limit is %u (4 MiB)",
                     len, (unsigned)MANIFEST_MAX_BYTES);
        return SH_ETOOBIG;
    }
    rc = sh_doc_new(name, &r.doc);
    if (rc) goto fail;
    if (!yaml_parser_initialize(&parser)) {
        rc = SH_ENOMEM;
        goto fail;
    }
    has_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(len ? text : ""), len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = from_yaml(&r, &parser);
            goto fail;
        }
        rc = on_event(&r, &ev);
        yaml_event_delete(&ev);
        if (rc < 0) goto fail;
        if (rc > 0) break;
    }
    yaml_parser_delete(&parser);
    has_parser = false;
    if (!r.doc->root) {
        r.doc->root = sh_node_new(r.doc, SH_NODE_NULL, 1, 1);
        if (!r.doc->root) {
            rc = SH_ENOMEM;
            goto fail;
        }
    }
    *out = r.doc;
    return 0;
fail:
    if (has_parser) yaml_parser_delete(&parser);
    if (rc == SH_ENOMEM && d) {
        where_file(d, name);
        snprintf(d->what, sizeof(d->what), "out of memory while reading the file");
    }
    sh_doc_free(r.doc);
    return rc;
}

int manifest_read_file(const char *path, struct sh_doc **out, struct sh_diag *d)
{
    struct buf text = BUF_INIT(MANIFEST_MAX_BYTES);
    char chunk[16384];
    struct stat st;
    int fd, rc = 0;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        rc = -errno;
        goto fail;
    }
    /* Checked before allocating; a pipe or a growing file is caught by the buffer's cap. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > (off_t)MANIFEST_MAX_BYTES) {
        rc = SH_ETOOBIG;
        goto fail;
    }
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got == -1 && errno == EINTR) continue;
        if (got == -1) {
            rc = -errno;
            goto fail;
        }
        if (got == 0) break;
        rc = buf_append(&text, chunk, (size_t)got);
        if (rc) goto fail;
    }
    close(fd);
    rc = manifest_read_buf(path, text.data, text.len, out, d);
    buf_release(&text);
    return rc;
fail:
    if (fd != -1) close(fd);
    buf_release(&text);
    where_file(d, path);
    if (d) {
        if (rc == SH_ETOOBIG)
            snprintf(d->what, sizeof(d->what),
                     "the file is larger than %u bytes (4 MiB), the limit",
                     (unsigned)MANIFEST_MAX_BYTES);
        else if (rc == SH_ENOMEM)
            snprintf(d->what, sizeof(d->what), "out of memory while reading the file");
        else
            snprintf(d->what, sizeof(d->what), "cannot read the file: %s", sh_strerror(rc));
    }
    return rc;
}
