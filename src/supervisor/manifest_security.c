/* SPDX-License-Identifier: MIT */
/* manifest_security.c: the manifest's security section (docs/manifest.md, "security"): the CA
 * and the instances' certificates, and intentions, checked against the manifest's services.
 * The rest of the manifest is read by manifest_schema.c, with the helpers both share
 * (supervisor_int.h). */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_int.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * The security section: the CA and the instances' certificates; intentions
 * ------------------------------------------------------------------------------------------ */
/* A caller or destination of an intention: one of this manifest's services, "*", or (a
 * caller) "gateway". */
static int intention_end(struct rd *r, const struct sh_node *v, const char *path, bool is_from,
                         const char **out)
{
    SH_TRY(sup__get_str(r, v, path, out));
    if (!strcmp(*out, "*") || (is_from && !strcmp(*out, "gateway"))) return 0;
    /* with an inbound mTLS listener, callers may be services of other stacks */
    if (is_from && r->m->mesh_inbound && **out && strlen(*out) <= 63 &&
        strspn(*out, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(*out))
        return 0;
    if (manifest_service_index(r->m, *out) < 0)
        return fail_at(r, v, "%s: no service named '%s' (a service, '*'%s)", path, *out,
                       is_from ? " or 'gateway'" : "");
    return 0;
}

/* The strings of an optional SEQ, at most max of them. */
static int str_list(struct rd *r, const struct sh_node *seq, const char *path, const char **out,
                    size_t max, size_t *n)
{
    *n = 0;
    if (!seq) return 0;
    SH_TRY(sh_node_expect(seq, SH_NODE_SEQ, path, r->d));
    if (seq->count > max) return fail_at(r, seq, "%s: at most %zu", path, max);
    for (size_t i = 0; i < seq->count; i++) {
        char ip[192];
        snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
        SH_TRY(sup__get_str(r, seq->items[i], ip, &out[i]));
        *n = i + 1;
    }
    return 0;
}

/* A SPIFFE trust domain: 1 to 255 of a-z, 0-9, '.', '-', '_', no '.' at either end (the same
 * rule as security.h's sec_trust_domain_check, which the supervisor may not import). */
static bool trust_domain_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 255 || s[0] == '.' || s[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

int sup__read_security(struct rd *r, const struct sh_node *sec)
{
    static const char *const keys[] = {"trust_domain", "cert_ttl",   "ca_overlap", "ca",
                                       "default",      "intentions", NULL};
    static const char *const ca_keys[] = {"cert", "key", NULL};
    static const char *const ikeys[] = {"from", "to", "action", "methods", "paths", NULL};
    static const char *const methods[] = {"GET",    "HEAD",    "POST",    "PUT",  "PATCH",
                                          "DELETE", "OPTIONS", "CONNECT", "TRACE"};
    struct manifest_security *ms = &r->m->security;
    const struct sh_node *v, *c, *list;
    const char *s;

    SH_TRY(sh_node_expect(sec, SH_NODE_MAP, "security", r->d));
    SH_TRY(sh_node_check_keys(sec, keys, "security", r->d));
    if ((v = sh_node_get(sec, "trust_domain"))) {
        SH_TRY(sup__get_str(r, v, "security.trust_domain", &ms->trust_domain));
        if (!trust_domain_ok(ms->trust_domain))
            return fail_at(r, v,
                           "security.trust_domain: '%s' is not a trust domain (1 to 255 of a-z, "
                           "0-9, '.', '-', '_'; no '.' at either end)",
                           ms->trust_domain);
    }
    if ((v = sh_node_get(sec, "cert_ttl"))) {
        SH_TRY(sup__get_ms(r, v, "security.cert_ttl", &ms->cert_ttl_ms));
        if (ms->cert_ttl_ms < 2000 || ms->cert_ttl_ms > 30u * 24 * 3600 * 1000)
            return fail_at(r, v, "security.cert_ttl: expected a duration from 2s to 30 days");
    }
    if ((v = sh_node_get(sec, "ca_overlap"))) {
        SH_TRY(sup__get_ms(r, v, "security.ca_overlap", &ms->ca_overlap_ms));
        if (ms->ca_overlap_ms == 0)
            return fail_at(r, v,
                           "security.ca_overlap: must be above 0 (leave it out for the "
                           "default: until the last certificate expires)");
    }
    if ((v = sh_node_get(sec, "ca"))) {
        SH_TRY(sh_node_check_keys(v, ca_keys, "security.ca", r->d));
        SH_TRY(sh_node_require(v, "cert", "security.ca", &c, r->d));
        SH_TRY(sup__get_str(r, c, "security.ca.cert", &ms->ca_cert));
        SH_TRY(sh_node_require(v, "key", "security.ca", &c, r->d));
        SH_TRY(sup__get_str(r, c, "security.ca.key", &ms->ca_key));
    }
    if ((v = sh_node_get(sec, "default"))) {
        SH_TRY(sup__get_str(r, v, "security.default", &s));
        if (strcmp(s, "allow") && strcmp(s, "deny"))
            return fail_at(r, v, "security.default: '%s' is not allow or deny", s);
        ms->default_deny = !strcmp(s, "deny");
    }
    if (!(list = sh_node_get(sec, "intentions"))) return 0;
    SH_TRY(sh_node_expect(list, SH_NODE_SEQ, "security.intentions", r->d));
    if (list->count > MANIFEST_MAX_INTENTIONS)
        return fail_at(r, list, "security.intentions: at most %d", MANIFEST_MAX_INTENTIONS);
    ms->intentions = sup__alloc0(r, list->count * sizeof(*ms->intentions));
    if (!ms->intentions) return SH_ENOMEM;
    for (size_t i = 0; i < list->count; i++) {
        struct manifest_intention *it = &ms->intentions[i];
        const struct sh_node *item = list->items[i], *x;
        char p[96], fp[128];
        snprintf(p, sizeof(p), "security.intentions[%zu]", i);
        SH_TRY(sh_node_check_keys(item, ikeys, p, r->d));
        SH_TRY(sh_node_require(item, "from", p, &x, r->d));
        SH_TRY(intention_end(r, x, sh_fmt(fp, sizeof(fp), "%s.from", p), true, &it->from));
        SH_TRY(sh_node_require(item, "to", p, &x, r->d));
        SH_TRY(intention_end(r, x, sh_fmt(fp, sizeof(fp), "%s.to", p), false, &it->to));
        SH_TRY(sh_node_require(item, "action", p, &x, r->d));
        SH_TRY(sup__get_str(r, x, sh_fmt(fp, sizeof(fp), "%s.action", p), &s));
        if (strcmp(s, "allow") && strcmp(s, "deny"))
            return fail_at(r, x, "%s.action: '%s' is not allow or deny", p, s);
        it->allow = !strcmp(s, "allow");
        x = sh_node_get(item, "methods");
        SH_TRY(str_list(r, x, sh_fmt(fp, sizeof(fp), "%s.methods", p), it->methods,
                        MANIFEST_INTENTION_METHODS, &it->method_count));
        for (size_t k = 0; k < it->method_count; k++) {
            bool known = false;
            for (size_t m = 0; m < SH_ARRAY_LEN(methods) && !known; m++)
                known = !strcmp(it->methods[k], methods[m]);
            if (!known)
                return fail_at(r, x->items[k],
                               "%s.methods[%zu]: '%s' is not a method (GET, HEAD, POST, PUT, "
                               "PATCH, DELETE, OPTIONS, CONNECT, TRACE)",
                               p, k, it->methods[k]);
        }
        x = sh_node_get(item, "paths");
        SH_TRY(str_list(r, x, sh_fmt(fp, sizeof(fp), "%s.paths", p), it->paths,
                        MANIFEST_INTENTION_PATHS, &it->path_count));
        for (size_t k = 0; k < it->path_count; k++) {
            const char *q = it->paths[k];
            bool ok = q[0] == '/' && strlen(q) <= 128;
            for (; ok && *q; q++)
                ok = (unsigned char)*q > 0x20 && *q != 0x7f;
            if (!ok)
                return fail_at(r, x->items[k],
                               "%s.paths[%zu]: a path prefix starts with '/', has no spaces "
                               "and at most 128 bytes",
                               p, k);
        }
        ms->intention_count = i + 1;
    }
    return 0;
}
