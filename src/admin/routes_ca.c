/* SPDX-License-Identifier: MIT */
/* routes_ca.c: the CA: its bundle and generations (GET /v1/ca), a rotation (POST
 * /v1/ca/rotate) and a leaf certificate for a service (POST /v1/ca/sign). See security.h. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include <string.h>

static bool has_ca(struct admin_req *r)
{
    if (r->a->cfg.ca) return true;
    admin__reply_error(r, 404, NULL, "no CA runs in this process");
    return false;
}

/* {"trust_domain", "active_gen", "cert_ttl_ms", "external", "bundle": PEM, "cas": [...]} */
static json_t *ca_json(struct sec_ca *ca, uint64_t now)
{
    struct sec_ca_info info[SEC_CA_MAX];
    size_t n = sec_ca_list(ca, now, info, SEC_CA_MAX);
    struct buf pem = BUF_INIT(1u << 20);
    json_t *arr = json_array(), *o;

    for (size_t i = 0; arr && i < n; i++) {
        json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I}", "gen", (json_int_t)info[i].gen,
                              "state", sec_ca_state_name(info[i].state), "subject", info[i].subject,
                              "fingerprint_sha256", info[i].fingerprint, "serial", info[i].serial,
                              "not_before_ms", (json_int_t)info[i].not_before_ms, "not_after_ms",
                              (json_int_t)info[i].not_after_ms);
        if (e && info[i].retire_at_ms)
            json_object_set_new(e, "retire_at_ms", json_integer((json_int_t)info[i].retire_at_ms));
        json_array_append_new(arr, e);
    }
    if (sec_ca_bundle_pem(ca, now, &pem) < 0) {
        json_decref(arr);
        buf_release(&pem);
        return NULL;
    }
    o = json_pack("{s:s, s:I, s:I, s:b, s:s, s:o}", "trust_domain", sec_ca_trust_domain(ca),
                  "active_gen", (json_int_t)sec_ca_active_gen(ca), "cert_ttl_ms",
                  (json_int_t)sec_ca_leaf_ttl(ca), "external", sec_ca_is_external(ca), "bundle",
                  pem.data ? pem.data : "", "cas", arr);
    buf_release(&pem);
    return o;
}

/* GET /v1/ca: the bundle and what is in it. */
void admin__ca_get(struct admin_req *r)
{
    json_t *o;

    if (!has_ca(r)) return;
    o = ca_json(r->a->cfg.ca, sh_wall_ms());
    if (!o)
        admin__reply_error(r, 500, NULL, "out of memory");
    else
        admin__reply_json(r, 200, o);
}

/* POST /v1/ca/rotate: a new CA generation signs from now on; the old one retires. */
void admin__ca_rotate(struct admin_req *r)
{
    struct sh_diag d = {{0}, {0}};
    json_t *o;
    int rc;

    if (!has_ca(r)) return;
    rc = sec_ca_rotate(r->a->cfg.ca, sh_wall_ms(), &d);
    if (rc < 0) {
        int status = rc == SH_ENOTSUP || rc == SH_ELIMIT ? 409 : 500;
        admin__reply_error(r, status, status == 409 ? "ca" : NULL,
                           d.what[0] ? d.what : sh_strerror(rc));
        return;
    }
    o = ca_json(r->a->cfg.ca, sh_wall_ms());
    if (!o)
        admin__reply_error(r, 500, NULL, "out of memory");
    else
        admin__reply_json(r, 200, o);
}

/* POST /v1/ca/sign {"service": NAME, "ttl": "1h"}: 201 {identity, serial, not_after_ms,
 * cert, key, ca}. The key is a secret: it is in this answer only. */
void admin__ca_sign(struct admin_req *r)
{
    json_t *body, *v, *o;
    struct sh_diag d = {{0}, {0}};
    struct sec_leaf l;
    struct buf pem = BUF_INIT(1u << 20);
    uint64_t ttl = 0, now = sh_wall_ms();
    const char *key;
    int rc;

    if (!has_ca(r) || !(body = admin__body_json(r, JSON_OBJECT))) return;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "service") && strcmp(key, "ttl")) {
            char what[160];
            snprintf(what, sizeof(what), "unknown field '%.64s' (expected service, ttl)", key);
            admin__reply_error(r, 400, key, what);
            json_decref(body);
            return;
        }
        if (!json_is_string(v)) {
            admin__reply_error(r, 400, key, "must be a string");
            json_decref(body);
            return;
        }
    }
    v = json_object_get(body, "service");
    if (!v) {
        json_decref(body);
        admin__reply_error(r, 400, "service", "the service's name is required");
        return;
    }
    if ((o = json_object_get(body, "ttl")) &&
        sh_parse_duration_ms(slice_from_cstr(json_string_value(o)), &ttl, &d) < 0) {
        char what[200];
        snprintf(what, sizeof(what), "not a duration: %s", d.what);
        json_decref(body);
        admin__reply_error(r, 400, "ttl", what);
        return;
    }
    if (o && ttl == 0) ttl = 1; /* "0s": refused below rather than taken as the default */
    rc = sec_ca_issue(r->a->cfg.ca, json_string_value(v), ttl, now, &l, &d);
    json_decref(body);
    if (rc < 0) {
        admin__reply_error(r, rc == SH_EINVAL || rc == SH_ETOOBIG ? 400 : 500,
                           d.where[0] ? d.where : NULL, d.what[0] ? d.what : sh_strerror(rc));
        return;
    }
    if (sec_ca_bundle_pem(r->a->cfg.ca, now, &pem) < 0) {
        sec_leaf_release(&l);
        buf_release(&pem);
        admin__reply_error(r, 500, NULL, "out of memory");
        return;
    }
    o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "identity", l.identity, "serial",
                  l.serial, "ca_gen", (json_int_t)l.ca_gen, "issued_ms", (json_int_t)l.issued_ms,
                  "not_after_ms", (json_int_t)l.not_after_ms, "cert", l.cert_pem, "key", l.key_pem,
                  "ca", pem.data ? pem.data : "");
    sec_leaf_release(&l);
    buf_release(&pem);
    admin__reply_json(r, 201, o);
}
