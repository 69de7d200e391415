/* SPDX-License-Identifier: MIT */
/* routes_tokens.c: API tokens (create, list, revoke, whoami) and the audit log. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include <string.h>

static json_t *token_json(const struct sec_token *t, uint64_t now_ms)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b}", "id", t->id, "scope",
                          sec_scope_name(t->scope), "prefix", t->prefix, "name", t->name,
                          "created_ms", (json_int_t)t->created_ms, "ephemeral", t->is_ephemeral,
                          "expired", t->expires_ms && now_ms >= t->expires_ms);

    if (o && t->expires_ms)
        json_object_set_new(o, "expires_ms", json_integer((json_int_t)t->expires_ms));
    return o;
}

/* GET /v1/token/self: what the caller's token is and may do (the dashboard's login, scripts). */
void admin__token_self(struct admin_req *r)
{
    admin__reply_json(r, 200, token_json(r->token, sh_wall_ms()));
}

void admin__tokens_list(struct admin_req *r)
{
    size_t n;
    const struct sec_token *ts = sec_tokens_list(r->a->cfg.tokens, &n);
    json_t *arr = json_array();
    uint64_t now = sh_wall_ms();

    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, token_json(&ts[i], now));
    admin__reply_json(r, 200, arr);
}

/* POST /v1/tokens {"scope": "read|write|admin", "prefix": "config/app/", "ttl": "24h",
 * "name": "..."}: 201 with the record and "token", the text, shown this once. */
void admin__tokens_create(struct admin_req *r)
{
    json_t *body = admin__body_json(r, JSON_OBJECT), *v;
    struct sec_token_spec spec = {0};
    struct sec_token t;
    struct sh_diag d = {0};
    char text[SEC_TOKEN_TEXT_LEN + 1];
    const char *key;
    int rc;

    if (!body) return;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "scope") && strcmp(key, "prefix") && strcmp(key, "ttl") &&
            strcmp(key, "name")) {
            char what[160];
            snprintf(what, sizeof(what),
                     "unknown field '%.64s' (expected scope, prefix, ttl, name)", key);
            admin__reply_error(r, 400, key, what); /* before key dies with body */
            json_decref(body);
            return;
        }
        if (!json_is_string(v)) {
            admin__reply_error(r, 400, key, "must be a string");
            json_decref(body);
            return;
        }
    }
    v = json_object_get(body, "scope");
    if (!v || sec_scope_parse(slice_from_cstr(json_string_value(v)), &spec.scope) < 0) {
        json_decref(body);
        admin__reply_error(r, 400, "scope", "the scope must be read, write or admin");
        return;
    }
    spec.prefix = json_string_value(json_object_get(body, "prefix"));
    spec.name = json_string_value(json_object_get(body, "name"));
    v = json_object_get(body, "ttl");
    if (v && sh_parse_duration_ms(slice_from_cstr(json_string_value(v)), &spec.ttl_ms, &d) < 0) {
        char what[200];
        snprintf(what, sizeof(what), "not a duration: %s", d.what);
        json_decref(body);
        admin__reply_error(r, 400, "ttl", what);
        return;
    }
    if (v && spec.ttl_ms == 0) {
        json_decref(body);
        admin__reply_error(r, 400, "ttl", "the ttl must be above 0 (leave it out for none)");
        return;
    }
    rc = sec_token_create(r->a->cfg.tokens, &spec, sh_wall_ms(), &t, text, sizeof(text), &d);
    json_decref(body);
    if (rc < 0) {
        int status = rc == SH_EINVAL || rc == SH_ETOOBIG ? 400 : rc == SH_ELIMIT ? 409 : 500;
        admin__reply_error(r, status, d.where[0] ? d.where : NULL,
                           d.what[0] ? d.what : sh_strerror(rc));
        return;
    }
    json_t *o = token_json(&t, sh_wall_ms());
    json_object_set_new(o, "token", json_string(text));
    explicit_bzero(text, sizeof(text));
    admin__reply_json(r, 201, o);
}

void admin__tokens_revoke(struct admin_req *r)
{
    int rc = sec_token_revoke(r->a->cfg.tokens, r->rest);

    if (rc == SH_ENOENT)
        admin__reply_error(r, 404, "id", "no such token");
    else if (rc == SH_EPERM)
        admin__reply_error(r, 400, "id",
                           "the root token cannot be revoked (replace DATA_DIR/token and restart)");
    else if (rc < 0)
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
    else
        admin__reply_json(r, 200, json_pack("{s:s, s:b}", "id", r->rest, "revoked", 1));
}

/* GET /v1/audit?since=<Unix ms>&token=<id>&limit=N */
void admin__audit(struct admin_req *r)
{
    const char *since = admin__query(r, "since"), *limit = admin__query(r, "limit");
    uint64_t since_ms = 0, n = 0;
    struct buf b = BUF_INIT(64u << 20);
    int rc;

    if (!r->a->cfg.audit) {
        admin__reply_error(r, 404, NULL, "no audit log here");
        return;
    }
    if (since && slice_to_u64(slice_from_cstr(since), &since_ms) < 0) {
        admin__reply_error(r, 400, "since", "must be Unix milliseconds");
        return;
    }
    if (limit && (slice_to_u64(slice_from_cstr(limit), &n) < 0 || n > SEC_AUDIT_MAX_QUERY)) {
        admin__reply_error(r, 400, "limit", "must be a number up to 10000");
        return;
    }
    rc = sec_audit_query(r->a->cfg.audit, since_ms, admin__query(r, "token"), (size_t)n, &b);
    if (rc < 0)
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
    else
        admin__reply_raw(r, 200, "application/json", buf_slice(&b), 0);
    buf_release(&b);
}
