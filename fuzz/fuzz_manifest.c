/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_manifest.c: the whole input is YAML for manifest_read_buf, then the manifest's
 * schema (manifest_from_doc) and the mesh's config doc over what parses. On success the tree is
 * walked and its invariants checked (positions are 1-based, text is terminated, map keys are
 * non-empty scalars, nesting stays within the limit), and every typed reader runs on every
 * node, so their messages are built from arbitrary text too. On failure the diagnostic must
 * say where and what. Deterministic, no I/O, frees everything. */
#include "supervisor/supervisor.h"

#include <assert.h>
#include <stddef.h>
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

/* A struct and a schema for sh_schema_read on every map of the input. */
struct fz_obj {
    uint32_t count, ms, size, pct;
    double ratio;
    bool on;
    const char *name;
    struct fz_inner {
        uint32_t max;
    } inner;
};
static const struct sh_field fz_inner_fields[] = {
    {"max", SH_FIELD_U32, offsetof(struct fz_inner, max), 0, 10, NULL, NULL},
};
SH_SCHEMA(fz_inner_schema, fz_inner_fields, NULL);
static const struct sh_field fz_fields[] = {
    {"count", SH_FIELD_U32, offsetof(struct fz_obj, count), 1, 100, NULL, NULL},
    {"timeout", SH_FIELD_MS, offsetof(struct fz_obj, ms), 1, 60000, NULL, NULL},
    {"max_body", SH_FIELD_SIZE, offsetof(struct fz_obj, size), 0, 1 << 20, NULL, NULL},
    {"share", SH_FIELD_PERCENT, offsetof(struct fz_obj, pct), 0, 0, NULL, NULL},
    {"budget", SH_FIELD_RATIO, offsetof(struct fz_obj, ratio), 0, 0, NULL, NULL},
    {"on", SH_FIELD_BOOL, offsetof(struct fz_obj, on), 0, 0, NULL, NULL},
    {"name", SH_FIELD_STR, offsetof(struct fz_obj, name), 0, 0, NULL, NULL},
    {"retry", SH_FIELD_MAP, offsetof(struct fz_obj, inner), 0, 0, &fz_inner_schema, NULL},
};
SH_SCHEMA(fz_schema, fz_fields, NULL);

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
    {
        double r;
        struct fz_obj o = {0};
        struct sockaddr_storage ss;
        check(sh_node_ratio(n, "x", &r, &d), &d);
        if (n->kind == SH_NODE_MAP) check(sh_schema_read(&fz_schema, n, "fz", &o, NULL, &d), &d);
        /* the address parsers take any text: 0 or a negative code with the reason */
        if (n->kind == SH_NODE_SCALAR) {
            int la = sh_listen_parse(n->text, &ss, &d), ca = sh_addr_parse(n->text, &ss, &d);
            assert(la <= 0 && ca <= 0);
            (void)la;
            (void)ca;
        }
    }
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
        {
            /* the schema over arbitrary trees (mesh.inbound, remote_services...), and the
             * mesh's config built from what it accepts */
            struct manifest *m = NULL;
            struct sh_diag md = {{0}, {0}};
            int mrc = manifest_from_doc(doc, &m, &md);
            assert(mrc == 0 || mrc == SH_EPARSE || mrc == SH_ETOOBIG || mrc == SH_ENOMEM);
            assert(mrc == 0 || mrc == SH_ENOMEM || md.what[0] != '\0');
            if (mrc == 0) {
                struct sh_doc *mesh = NULL;
                if (manifest_mesh_doc(m, &mesh) == 0) sh_doc_free(mesh);
                manifest_free(m);
            }
        }
        sh_doc_free(doc);
    } else {
        assert(!doc);
        assert(rc == SH_EPARSE || rc == SH_ETOOBIG || rc == SH_ENOMEM);
        assert(strncmp(d.where, "fuzz.yaml", 9) == 0 && d.what[0] != '\0');
    }
    return 0;
}
