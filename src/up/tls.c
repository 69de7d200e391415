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

void up_tls_tick(struct up *u)
{
    uint64_t now = sh_wall_ms(), version;
    uint32_t active;
    char dir[PATH_MAX];

    if (!u->cp.ca || uv_now(&u->loop) - u->tls_checked_ms < UP_TLS_CHECK_MS) return;
    u->tls_checked_ms = uv_now(&u->loop);
    active = sec_ca_active_gen(u->cp.ca);
    version = sec_ca_bundle_version(u->cp.ca, now);
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
