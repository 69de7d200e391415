/* SPDX-License-Identifier: MIT */
/* manifest_docs.c: the gateway's and the mesh's configuration documents derived from a read
 * manifest (manifest_gateway_doc, manifest_mesh_doc), for the proxy's own reader: one cluster
 * per service (its `resilience` keys copied in), the gateway's routes with `service` read as
 * `cluster`, the mesh's Host routes. Nodes keep the manifest's positions, and clusters and
 * routes carry the path the user wrote as their origin, so the proxy's errors point into
 * shoal.yaml and name `services.api.resilience...`. Keeps no state; any thread. */
#include "supervisor/supervisor.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------------------------------
 * The gateway's document
 * ------------------------------------------------------------------------------------------ */
static int put(struct sh_doc *doc, struct sh_node *map, const char *key, const struct sh_node *at,
               struct sh_node *value)
{
    struct sh_node *k;

    if (!value) return SH_ENOMEM;
    k = sh_node_new_scalar(doc, slice_from_cstr(key), false, at->line, at->col);
    if (!k) return SH_ENOMEM;
    return sh_node_map_append(doc, map, k, value);
}

static struct sh_node *scalar_at(struct sh_doc *doc, const char *text, const struct sh_node *at)
{
    return sh_node_new_scalar(doc, slice_from_cstr(text), false, at->line, at->col);
}

/* A copy of the MAP <src> (sharing its values) whose "service" keys read "cluster"; split
 * lists are copied the same way. */
static struct sh_node *route_copy(struct sh_doc *doc, const struct sh_node *src)
{
    struct sh_node *map = sh_node_new(doc, SH_NODE_MAP, src->line, src->col);

    if (!map) return NULL;
    for (size_t i = 0; i < src->count; i++) {
        struct sh_node *key = src->items[i], *val = src->values[i];
        if (!strcmp(key->text, "service")) {
            key = scalar_at(doc, "cluster", key);
        } else if (!strcmp(key->text, "split") && val->kind == SH_NODE_SEQ) {
            struct sh_node *seq = sh_node_new(doc, SH_NODE_SEQ, val->line, val->col);
            for (size_t k = 0; seq && k < val->count; k++) {
                struct sh_node *it = route_copy(doc, val->items[k]);
                if (!it || sh_node_seq_append(doc, seq, it) < 0) seq = NULL;
            }
            val = seq;
        }
        if (!key || !val || sh_node_map_append(doc, map, key, val) < 0) return NULL;
    }
    return map;
}

/* control_plane and one cluster per service, shared by the gateway's and the mesh's docs. */
static int put_clusters(const struct manifest *m, struct sh_doc *doc, struct sh_node *top)
{
    const struct sh_node *root = m->doc->root, *cpn;
    struct sh_node *cp, *clusters;
    struct sockaddr_storage ss;
    char cp_addr[64];

    /* the proxies connect to the control plane: a wildcard listen is reached on loopback */
    if (sh_listen_parse(m->control_plane_listen, &ss, NULL) < 0)
        return SH_EINVAL; /* read_top checked it */
    sh_addr_loopback_for(&ss);
    sh_addr_format(&ss, cp_addr, sizeof(cp_addr));
    cpn = sh_node_get(sh_node_get(root, "control_plane"), "listen");
    if (!cpn) cpn = root;
    cp = sh_node_new(doc, SH_NODE_MAP, cpn->line, cpn->col);
    if (!cp) return SH_ENOMEM;
    SH_TRY(put(doc, cp, "address", cpn, scalar_at(doc, cp_addr, cpn)));
    SH_TRY(put(doc, top, "control_plane", cpn, cp));
    clusters = sh_node_new(doc, SH_NODE_SEQ, root->line, root->col);
    if (!clusters) return SH_ENOMEM;
    for (size_t i = 0; i < m->service_count; i++) {
        const struct manifest_service *s = &m->services[i];
        struct sh_node *cl = sh_node_new(doc, SH_NODE_MAP, s->node->line, s->node->col);
        if (!cl) return SH_ENOMEM;
        char origin[96];
        SH_TRY(put(doc, cl, "name", s->node, scalar_at(doc, s->name, s->node)));
        SH_TRY(put(doc, cl, "service", s->node, scalar_at(doc, s->name, s->node)));
        /* the proxy names what it finds wrong in here as the user wrote it */
        snprintf(origin, sizeof(origin), "services.%s.resilience", s->name);
        SH_TRY(sh_node_set_origin(doc, cl, origin));
        for (size_t k = 0; s->resilience && k < s->resilience->count; k++)
            SH_TRY(sh_node_map_append(doc, cl, s->resilience->items[k], s->resilience->values[k]));
        SH_TRY(sh_node_seq_append(doc, clusters, cl));
    }
    return put(doc, top, "clusters", root, clusters);
}

static int build_gateway_doc(const struct manifest *m, struct sh_doc *doc)
{
    static const char *const pass[] = {"listen", "admin",   "workers", "access_log",
                                       "limits", "tracing", "tls"};
    const struct sh_node *root = m->doc->root, *g = m->gateway.node;
    struct sh_node *top, *routes;

    top = sh_node_new(doc, SH_NODE_MAP, root->line, root->col);
    if (!top) return SH_ENOMEM;
    doc->root = top;
    for (size_t i = 0; g && i < SH_ARRAY_LEN(pass); i++) {
        const struct sh_node *v = sh_node_get(g, pass[i]);
        if (v) SH_TRY(put(doc, top, pass[i], v, (struct sh_node *)v));
    }
    if (!g || !sh_node_get(g, "listen"))
        SH_TRY(put(doc, top, "listen", root, scalar_at(doc, m->gateway.listen, root)));
    SH_TRY(put_clusters(m, doc, top));
    routes = sh_node_new(doc, SH_NODE_SEQ, g ? g->line : root->line, g ? g->col : root->col);
    if (!routes) return SH_ENOMEM;
    for (size_t i = 0; i < m->gateway.route_count; i++) {
        struct sh_node *rt = route_copy(doc, m->gateway.routes->items[i]);
        char origin[48];
        if (!rt) return SH_ENOMEM;
        snprintf(origin, sizeof(origin), "gateway.routes[%zu]", i);
        SH_TRY(sh_node_set_origin(doc, rt, origin));
        SH_TRY(sh_node_seq_append(doc, routes, rt));
    }
    return put(doc, top, "routes", routes, routes);
}

/* A MAP {key: value} positioned at <at>. */
static struct sh_node *pair_at(struct sh_doc *doc, const char *key, const char *value,
                               const struct sh_node *at)
{
    struct sh_node *map = sh_node_new(doc, SH_NODE_MAP, at->line, at->col);

    if (!map || put(doc, map, key, at, scalar_at(doc, value, at)) < 0) return NULL;
    return map;
}

/* A path as written in the manifest: relative ones are relative to the manifest's directory. */
static const char *manifest_relative(const struct manifest *m, const char *p, char *out, size_t cap)
{
    const char *slash = strrchr(m->file, '/');

    if (p[0] == '/' || !slash) return p;
    if ((size_t)snprintf(out, cap, "%.*s/%s", (int)(slash - m->file), m->file, p) >= cap) return p;
    return out;
}

/* remote_services: one cluster each, its endpoint the other mesh's inbound listener, mTLS. */
static int put_remotes(const struct manifest *m, struct sh_doc *doc, struct sh_node *top)
{
    struct sh_node *clusters = (struct sh_node *)sh_node_get(top, "clusters");

    for (size_t i = 0; i < m->remote_count; i++) {
        const struct manifest_remote *s = &m->remotes[i];
        const struct sh_node *at = s->node;
        struct sh_node *cl = sh_node_new(doc, SH_NODE_MAP, at->line, at->col);
        struct sh_node *eps = sh_node_new(doc, SH_NODE_SEQ, at->line, at->col);
        struct sh_node *mt = sh_node_new(doc, SH_NODE_MAP, at->line, at->col);
        char ca[4096];
        if (!cl || !eps || !mt) return SH_ENOMEM;
        SH_TRY(put(doc, cl, "name", at, scalar_at(doc, s->name, at)));
        SH_TRY(sh_node_seq_append(doc, eps, scalar_at(doc, s->address, at)));
        SH_TRY(put(doc, cl, "endpoints", at, eps));
        SH_TRY(put(doc, mt, "identity", at, scalar_at(doc, s->identity, at)));
        SH_TRY(put(doc, mt, "ca", at,
                   scalar_at(doc, manifest_relative(m, s->ca, ca, sizeof(ca)), at)));
        SH_TRY(put(doc, cl, "mtls", at, mt));
        SH_TRY(sh_node_seq_append(doc, clusters, cl));
    }
    return 0;
}

static int build_mesh_doc(const struct manifest *m, struct sh_doc *doc)
{
    const struct sh_node *root = m->doc->root, *at;
    struct sh_node *top, *routes, *rt, *resp;
    struct buf msg;
    int rc;

    at = sh_node_get(sh_node_get(root, "mesh"), "listen");
    if (!at) at = root;
    top = sh_node_new(doc, SH_NODE_MAP, root->line, root->col);
    if (!top) return SH_ENOMEM;
    doc->root = top;
    SH_TRY(put(doc, top, "listen", at, scalar_at(doc, m->mesh_listen, at)));
    if (m->mesh_admin) {
        const struct sh_node *adm = sh_node_get(sh_node_get(root, "mesh"), "admin");
        SH_TRY(put(doc, top, "admin", adm, scalar_at(doc, m->mesh_admin, adm)));
    }
    {
        const struct sh_node *mesh = sh_node_get(root, "mesh");
        const struct sh_node *idn = sh_node_get(mesh, "identity"),
                             *tr = sh_node_get(mesh, "tracing");
        SH_TRY(put(doc, top, "identity", idn ? idn : at,
                   scalar_at(doc, m->mesh_identity, idn ? idn : at)));
        if (tr) SH_TRY(put(doc, top, "tracing", tr, (struct sh_node *)tr));
    }
    SH_TRY(put_clusters(m, doc, top));
    SH_TRY(put_remotes(m, doc, top));
    routes = sh_node_new(doc, SH_NODE_SEQ, at->line, at->col);
    if (!routes) return SH_ENOMEM;
    for (size_t i = 0; i < m->remote_count; i++) {
        const struct manifest_remote *s = &m->remotes[i];
        rt = sh_node_new(doc, SH_NODE_MAP, s->node->line, s->node->col);
        if (!rt) return SH_ENOMEM;
        SH_TRY(put(doc, rt, "name", s->node, scalar_at(doc, s->name, s->node)));
        SH_TRY(put(doc, rt, "match", s->node, pair_at(doc, "host", s->name, s->node)));
        SH_TRY(put(doc, rt, "cluster", s->node, scalar_at(doc, s->name, s->node)));
        SH_TRY(sh_node_seq_append(doc, routes, rt));
    }
    for (size_t i = 0; i < m->service_count; i++) {
        const struct manifest_service *s = &m->services[i];
        rt = sh_node_new(doc, SH_NODE_MAP, s->node->line, s->node->col);
        if (!rt) return SH_ENOMEM;
        SH_TRY(put(doc, rt, "name", s->node, scalar_at(doc, s->name, s->node)));
        SH_TRY(put(doc, rt, "match", s->node, pair_at(doc, "host", s->name, s->node)));
        SH_TRY(put(doc, rt, "cluster", s->node, scalar_at(doc, s->name, s->node)));
        SH_TRY(sh_node_seq_append(doc, routes, rt));
    }
    msg = BUF_INIT(0);
    buf_appends(&msg, SLICE("no such service: send Host: <service> (or http://<service>/... "
                            "through HTTP_PROXY); services here:"));
    for (size_t i = 0; i < m->service_count; i++)
        buf_appendf(&msg, " %s", m->services[i].name);
    buf_appendc(&msg, '\n');
    rc = msg.err ? SH_ENOMEM : 0;
    resp = rc == 0 ? sh_node_new(doc, SH_NODE_MAP, at->line, at->col) : NULL;
    rt = resp ? sh_node_new(doc, SH_NODE_MAP, at->line, at->col) : NULL;
    if (!rt) {
        buf_release(&msg);
        return SH_ENOMEM;
    }
    rc = put(doc, resp, "status", at, scalar_at(doc, "503", at));
    if (rc == 0)
        rc = put(doc, resp, "body", at,
                 sh_node_new_scalar(doc, buf_slice(&msg), true, at->line, at->col));
    buf_release(&msg);
    SH_TRY(rc);
    SH_TRY(put(doc, rt, "name", at, scalar_at(doc, "no-such-service", at)));
    SH_TRY(put(doc, rt, "respond", at, resp));
    SH_TRY(sh_node_seq_append(doc, routes, rt));
    return put(doc, top, "routes", routes, routes);
}

typedef int build_doc_fn(const struct manifest *m, struct sh_doc *doc);

static int make_doc(const struct manifest *m, build_doc_fn *build, struct sh_doc **out)
{
    struct sh_doc *doc;
    int rc;

    *out = NULL;
    SH_TRY(sh_doc_new(m->file, &doc));
    rc = build(m, doc);
    if (rc < 0) {
        sh_doc_free(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

int manifest_gateway_doc(const struct manifest *m, struct sh_doc **out)
{
    return make_doc(m, build_gateway_doc, out);
}

int manifest_mesh_doc(const struct manifest *m, struct sh_doc **out)
{
    return make_doc(m, build_mesh_doc, out);
}
