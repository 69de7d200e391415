/* SPDX-License-Identifier: MIT */
/* tls.c: the instances' certificates. Every instance of `shoal up` gets, before it starts, a
 * leaf certificate for its service's identity (spiffe://<trust domain>/service/<name>), its
 * key and the CA bundle, as files in DATA_DIR/services/NAME/tls/ID/ (cert.pem, key.pem 0600,
 * ca.pem) named by SHOAL_TLS_CERT, SHOAL_TLS_KEY and SHOAL_TLS_CA. The control plane renews the
 * certificate at 2/3 of its life (or at once after a CA rotation) and rewrites the bundle when
 * it changes, each file replaced by a rename; the instance reloads them when it likes (each new
 * TLS context, or on the files' mtime). The decision is security.h's sec_leaf_should_renew.
 * Thread: main. */
#include "up/up_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { UP_TLS_CHECK_MS = 500 };

/* DATA_DIR/services/NAME/tls[/ID], each level made (0700) when missing. */
static int tls_dir(struct up *u, const struct up_instance *in, bool make, char *out)
{
    const char *svc = u->m->services[in->service].name;
    char p[PATH_MAX + 128];

    if ((size_t)snprintf(out, PATH_MAX, "%s/services/%s/tls/%s", u->data_dir, svc, in->id) >=
        PATH_MAX)
        return SH_ETOOBIG;
    if (!make) return 0;
    /* service names are DNS labels (63 bytes at most) */
    snprintf(p, sizeof(p), "%s/services", u->data_dir);
    if (mkdir(p, 0700) < 0 && errno != EEXIST) return SH_EIO;
    snprintf(p, sizeof(p), "%s/services/%.63s", u->data_dir, svc);
    if (mkdir(p, 0700) < 0 && errno != EEXIST) return SH_EIO;
    snprintf(p, sizeof(p), "%s/services/%.63s/tls", u->data_dir, svc);
    if (mkdir(p, 0700) < 0 && errno != EEXIST) return SH_EIO;
    return 0;
}

/* Writes a new leaf (when leaf) and the bundle into the instance's directory. */
static int write_files(struct up *u, struct up_instance *in, const struct sec_leaf *leaf,
                       uint64_t now, const char *dir)
{
    struct buf bundle = BUF_INIT(1u << 20);
    struct sh_diag d = {{0}, {0}};
    uint64_t version = sec_ca_bundle_version(u->cp.ca, now);
    int rc = sec_ca_bundle_pem(u->cp.ca, now, &bundle);

    if (rc == 0) rc = sec_tls_files_write(dir, leaf, buf_slice(&bundle), true, &d);
    buf_release(&bundle);
    if (rc < 0) {
        SH_LOG(SH_ERROR, "security", "cannot write an instance's certificate files",
               LF_STR("id", in->id), LF_STR("where", d.where), LF_STR("error", d.what),
               LF_ERR("err", rc));
        return rc;
    }
    in->tls.bundle_version = version;
    in->tls.has_files = true;
    if (leaf) {
        in->tls.leaf = (struct sec_leaf_view){.issued_ms = leaf->issued_ms,
                                              .not_after_ms = leaf->not_after_ms,
                                              .ca_gen = leaf->ca_gen};
        snprintf(in->tls.serial, sizeof(in->tls.serial), "%s", leaf->serial);
    }
    return 0;
}

static int renew(struct up *u, struct up_instance *in, uint64_t now, const char *dir)
{
    struct sec_leaf leaf;
    struct sh_diag d = {{0}, {0}};
    int rc = sec_ca_issue(u->cp.ca, u->m->services[in->service].name, 0, now, &leaf, &d);

    if (rc < 0) {
        SH_LOG(SH_ERROR, "security", "cannot issue an instance's certificate", LF_STR("id", in->id),
               LF_STR("error", d.what), LF_ERR("err", rc));
        return rc;
    }
    rc = write_files(u, in, &leaf, now, dir);
    if (rc == 0)
        SH_LOG(SH_DEBUG, "security", "certificate issued", LF_STR("id", in->id),
               LF_STR("serial", leaf.serial), LF_UINT("ca_gen", leaf.ca_gen));
    sec_leaf_release(&leaf);
    return rc;
}

int up_tls_issue(struct up *u, struct up_instance *in, char *dir)
{
    int rc;

    if (!u->cp.ca) return SH_ENOENT;
    rc = tls_dir(u, in, true, dir);
    if (rc < 0) {
        SH_LOG(SH_ERROR, "security", "cannot make an instance's certificate directory",
               LF_STR("id", in->id), LF_STR("data_dir", u->data_dir), LF_ERR("err", rc));
        return rc;
    }
    return renew(u, in, sh_wall_ms(), dir);
}

/* ------------------------------------------------------------------------------------------
 * The mesh's identities (docs/security.md, "mTLS between meshes"): like ztunnel, the node proxy
 * holds a certificate per service it runs, in DATA_DIR/mesh/NAME/{cert,key,ca}.pem.
 * ------------------------------------------------------------------------------------------ */
static int mesh_dir(struct up *u, const char *svc, char *out)
{
    char p[PATH_MAX];

    if ((size_t)snprintf(p, sizeof(p), "%s/mesh", u->data_dir) >= sizeof(p)) return SH_ETOOBIG;
    if (mkdir(p, 0700) < 0 && errno != EEXIST) return SH_EIO;
    if ((size_t)snprintf(out, PATH_MAX, "%s/mesh/%s", u->data_dir, svc) >= PATH_MAX)
        return SH_ETOOBIG;
    return 0;
}

/* Issues and writes every local service's leaf and the bundle. */
static int mesh_issue(struct up *u, uint64_t now, struct sh_diag *d)
{
    struct buf bundle = BUF_INIT(1u << 20);
    uint64_t version = sec_ca_bundle_version(u->cp.ca, now);
    int rc = sec_ca_bundle_pem(u->cp.ca, now, &bundle);

    for (size_t i = 0; rc == 0 && i < u->m->service_count; i++) {
        struct sec_leaf leaf;
        char dir[PATH_MAX];
        rc = mesh_dir(u, u->m->services[i].name, dir);
        if (rc < 0) {
            sh_diag_set(d, u->data_dir, "cannot make the mesh's certificate directory");
            break;
        }
        rc = sec_ca_issue(u->cp.ca, u->m->services[i].name, 0, now, &leaf, d);
        if (rc == 0) rc = sec_tls_files_write(dir, &leaf, buf_slice(&bundle), true, d);
        if (rc == 0 && i == 0)
            u->mesh_leaf = (struct sec_leaf_view){.issued_ms = leaf.issued_ms,
                                                  .not_after_ms = leaf.not_after_ms,
                                                  .ca_gen = leaf.ca_gen};
        sec_leaf_release(&leaf);
    }
    buf_release(&bundle);
    if (rc == 0) u->mesh_bundle_version = version;
    return rc;
}

static struct sh_node *scalar(struct sh_doc *doc, const char *s)
{
    return sh_node_new_scalar(doc, slice_from_cstr(s), false, doc->root->line, doc->root->col);
}

static int map_put(struct sh_doc *doc, struct sh_node *map, const char *key, struct sh_node *v)
{
    struct sh_node *k = scalar(doc, key);

    if (!k || !v) return SH_ENOMEM;
    return sh_node_map_append(doc, map, k, v);
}

int up_mesh_identities(struct up *u, struct sh_doc *doc, struct sh_diag *d)
{
    const struct manifest *m = u->m;
    struct sh_node *ids, *certs = NULL, *in;
    uint32_t line = doc->root->line, col = doc->root->col;
    char path[PATH_MAX + 16], dir[PATH_MAX];

    if (!m->mesh_inbound && m->remote_count == 0) return 0;
    if (!u->cp.ca) {
        sh_diag_set(d, "mesh", "mTLS between meshes needs the CA");
        return SH_EINVAL;
    }
    SH_TRY(mesh_issue(u, sh_wall_ms(), d));
    u->mesh_ids = true;
    ids = sh_node_new(doc, SH_NODE_SEQ, line, col);
    if (m->mesh_inbound) certs = sh_node_new(doc, SH_NODE_SEQ, line, col);
    if (!ids || (m->mesh_inbound && !certs)) return SH_ENOMEM;
    for (size_t i = 0; i < m->service_count; i++) {
        struct sh_node *id = sh_node_new(doc, SH_NODE_MAP, line, col), *c;
        if (!id) return SH_ENOMEM;
        SH_TRY(mesh_dir(u, m->services[i].name, dir));
        SH_TRY(map_put(doc, id, "service", scalar(doc, m->services[i].name)));
        snprintf(path, sizeof(path), "%s/cert.pem", dir);
        SH_TRY(map_put(doc, id, "cert", scalar(doc, path)));
        snprintf(path, sizeof(path), "%s/key.pem", dir);
        SH_TRY(map_put(doc, id, "key", scalar(doc, path)));
        SH_TRY(sh_node_seq_append(doc, ids, id));
        if (!certs) continue;
        c = sh_node_new(doc, SH_NODE_MAP, line, col);
        if (!c) return SH_ENOMEM;
        snprintf(path, sizeof(path), "%s/cert.pem", dir);
        SH_TRY(map_put(doc, c, "cert", scalar(doc, path)));
        snprintf(path, sizeof(path), "%s/key.pem", dir);
        SH_TRY(map_put(doc, c, "key", scalar(doc, path)));
        SH_TRY(sh_node_seq_append(doc, certs, c));
    }
    SH_TRY(map_put(doc, doc->root, "identities", ids));
    if (!certs) return 0;
    in = sh_node_new(doc, SH_NODE_MAP, line, col);
    if (!in) return SH_ENOMEM;
    SH_TRY(map_put(doc, in, "listen", scalar(doc, m->mesh_inbound)));
    SH_TRY(map_put(doc, in, "trust_domain", scalar(doc, sec_ca_trust_domain(u->cp.ca))));
    SH_TRY(mesh_dir(u, m->services[0].name, dir));
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    SH_TRY(map_put(doc, in, "client_ca", scalar(doc, path)));
    SH_TRY(map_put(doc, in, "certs", certs));
    return map_put(doc, doc->root, "inbound", in);
}

/* Renews the mesh's leaves with the instances' rule; the new files reach the inbound listener
 * by its file check and the outbound client contexts by a config rebuild. */
static void mesh_tick(struct up *u, uint32_t active, uint64_t now, uint64_t version)
{
    struct sh_diag d = {{0}, {0}};

    if (!u->mesh_ids) return;
    if (!sec_leaf_should_renew(&u->mesh_leaf, active, now) && u->mesh_bundle_version == version)
        return;
    if (mesh_issue(u, now, &d) < 0) {
        SH_LOG(SH_ERROR, "security", "cannot renew the mesh's certificates",
               LF_STR("where", d.where), LF_STR("error", d.what));
        return;
    }
    SH_LOG(SH_INFO, "security", "mesh certificates renewed");
    up_mesh_reload(u);
}

void up_tls_tick(struct up *u)
{
    uint64_t now = sh_wall_ms(), version;
    uint32_t active;
    char dir[PATH_MAX];

    if (!u->cp.ca || uv_now(&u->loop) - u->tls_checked_ms < UP_TLS_CHECK_MS) return;
    u->tls_checked_ms = uv_now(&u->loop);
    active = sec_ca_active_gen(u->cp.ca);
    version = sec_ca_bundle_version(u->cp.ca, now);
    mesh_tick(u, active, now, version);
    for (size_t i = 0; i < u->ninst; i++) {
        struct up_instance *in = u->inst[i];
        if (!in->tls.has_files || tls_dir(u, in, false, dir) < 0) continue;
        if (sec_leaf_should_renew(&in->tls.leaf, active, now)) {
            if (renew(u, in, now, dir) < 0) {
                /* logged; tried again at the next check */
            }
        } else if (in->tls.bundle_version != version && write_files(u, in, NULL, now, dir) < 0) {
            /* logged; tried again at the next check */
        }
    }
}

void up_tls_forget(struct up *u, struct up_instance *in)
{
    static const char *const files[] = {"cert.pem", "key.pem", "ca.pem"};
    char dir[PATH_MAX], p[PATH_MAX + 16];

    if (!in->tls.has_files || tls_dir(u, in, false, dir) < 0) return;
    for (size_t i = 0; i < SH_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    in->tls.has_files = false;
}

void up_tls_render(struct up *u, const struct up_instance *in, struct buf *b)
{
    char id[SEC_IDENTITY_MAX + 1];
    struct sh_diag d = {{0}, {0}};

    if (!in->tls.has_files || !u->cp.ca ||
        sec_identity(sec_ca_trust_domain(u->cp.ca), u->m->services[in->service].name, id,
                     sizeof(id), &d) < 0)
        return;
    buf_appends(b, SLICE(",\"cert\":{\"identity\":\""));
    buf_append_json_str(b, slice_from_cstr(id));
    buf_appendf(b, "\",\"serial\":\"%s\",\"issued_ms\":%llu,\"not_after_ms\":%llu,\"ca_gen\":%u}",
                in->tls.serial, (unsigned long long)in->tls.leaf.issued_ms,
                (unsigned long long)in->tls.leaf.not_after_ms, in->tls.leaf.ca_gen);
}
