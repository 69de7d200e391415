/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_manifest.c: the whole input is YAML for manifest_read_buf. On success the tree is
 * walked and its invariants checked (positions are 1-based, text is terminated, map keys are
 * non-empty scalars, nesting stays within the limit), and every typed reader runs on every
 * node, so their messages are built from arbitrary text too. On failure the diagnostic must
 * say where and what. Deterministic, no I/O, frees everything. */
#include "supervisor/supervisor.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A reader either succeeds or says where and what. */
static void check(int rc, const struct sh_diag *d)
{
    assert(rc == 0 || rc == SH_EPARSE || rc == SH_ETOOBIG);
    assert(rc == 0 || (d->where[0] != '\0' && d->what[0] != '\0'));
    (void)rc;
    (void)d;
}

static void try_readers(const struct sh_node *n)
{
    static const char *const allowed[] = {"name", "port", "timeout", "max_body", NULL};
    struct sh_diag d = {{0}, {0}};
    const char *s;
    uint64_t v;
    bool b;

    int rc = sh_node_str(n, "x", &s, &d);

    check(rc, &d);
    assert(rc != 0 || s == n->text);
    check(sh_node_u64(n, "x", 1, 65535, &v, &d), &d);
    check(sh_node_bool(n, "x", &b, &d), &d);
    check(sh_node_duration_ms(n, "x", &v, &d), &d);
    check(sh_node_size(n, "x", &v, &d), &d);
    check(sh_node_check_keys(n, allowed, "routes[0]", &d), &d);
}

static void walk(const struct sh_node *n, size_t depth)
{
    assert(n->line >= 1 && n->col >= 1);
    assert(n->text && n->text[n->len] == '\0');
    assert(depth <= MANIFEST_MAX_DEPTH);
    try_readers(n);
    if (n->kind == SH_NODE_MAP) {
        for (size_t i = 0; i < n->count; i++) {
            assert(n->items[i]->kind == SH_NODE_SCALAR && n->items[i]->len > 0);
            assert(sh_node_get(n, n->items[i]->text) != NULL ||
                   memchr(n->items[i]->text, '\0', n->items[i]->len));
            walk(n->values[i], depth + 1);
        }
    } else if (n->kind == SH_NODE_SEQ) {
        for (size_t i = 0; i < n->count; i++)
            walk(n->items[i], depth + 1);
    } else {
        assert(n->count == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    int rc = manifest_read_buf("fuzz.yaml", (const char *)data, size, &doc, &d);

    if (rc == 0) {
        assert(doc && doc->root);
        assert(doc->node_count <= MANIFEST_MAX_NODES);
        walk(doc->root, 0);
        sh_doc_free(doc);
    } else {
        assert(!doc);
        assert(rc == SH_EPARSE || rc == SH_ETOOBIG || rc == SH_ENOMEM);
        assert(strncmp(d.where, "fuzz.yaml", 9) == 0 && d.what[0] != '\0');
    }
    return 0;
}
