/* SPDX-License-Identifier: MIT */
/* routes_intentions.c: which service may call which (docs/security.md, "Intentions"): list,
 * add, remove, and the decision for one call. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include <string.h>

static const char *const method_names[] = {"GET",    "HEAD",    "POST",    "PUT",  "PATCH",
                                           "DELETE", "OPTIONS", "CONNECT", "TRACE"};

static json_t *rule_json(const struct sec_intention *r)
{
    json_t *m = json_array(), *p = json_array();

    for (size_t i = 0; i < SH_ARRAY_LEN(method_names); i++) {
        if (r->methods & (1u << i)) json_array_append_new(m, json_string(method_names[i]));
    }
    for (uint32_t i = 0; i < r->npaths; i++)
        json_array_append_new(p, json_string(r->paths[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:I}", "id", r->id, "from", r->from, "to",
                     r->to, "action", r->allow ? "allow" : "deny", "methods", m, "paths", p,
                     "source", r->source == SEC_SOURCE_MANIFEST ? "manifest" : "api", "created_ms",
                     (json_int_t)r->created_ms);
}

static bool ready(struct admin_req *r)
{
    if (r->a->cfg.intentions) return true;
    admin__reply_error(r, 404, NULL, "no intentions here");
    return false;
}

/* GET /v1/intentions: {"default", "intentions": [...]} in the order they are tried. */
void admin__intentions_list(struct admin_req *r)
{
    if (!ready(r)) return;
    const struct sec_intentions *set = sec_itable_current(r->a->cfg.intentions);
    json_t *arr = json_array();

    for (size_t i = 0; i < set->count; i++)
        json_array_append_new(arr, rule_json(&set->items[i]));
    admin__reply_json(r, 200,
                      json_pack("{s:s, s:o}", "default", set->default_allow ? "allow" : "deny",
                                "intentions", arr));
}

/* The strings of a JSON array member into out (at most max); -1 after answering 400. */
static int strings(struct admin_req *r, json_t *body, const char *field, const char **out,
                   size_t max, size_t *n)
{
    json_t *a = json_object_get(body, field), *v;
    size_t i;

    *n = 0;
    if (!a) return 0;
    if (!json_is_array(a) || json_array_size(a) > max) {
        char what[96];
        snprintf(what, sizeof(what), "must be a list of at most %zu strings", max);
        admin__reply_error(r, 400, field, what);
        return -1;
    }
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v)) {
            admin__reply_error(r, 400, field, "must be a list of strings");
            return -1;
        }
        out[(*n)++] = json_string_value(v);
    }
    return 0;
}

/* POST /v1/intentions {"from", "to", "action", "methods"?: [...], "paths"?: [...]} */
void admin__intentions_add(struct admin_req *r)
{
    json_t *body, *v;
    const char *methods[16], *paths[SEC_INTENTION_PATHS], *key;
    size_t nm = 0, np = 0;
    struct sec_intention rule, out;
    struct sh_diag d = {{0}, {0}};
    int rc;

    if (!ready(r) || !(body = admin__body_json(r, JSON_OBJECT))) return;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "action") &&
            strcmp(key, "methods") && strcmp(key, "paths")) {
            char what[160];
            snprintf(what, sizeof(what),
                     "unknown field '%.64s' (expected from, to, action, methods, paths)", key);
            admin__reply_error(r, 400, key, what);
            json_decref(body);
            return;
        }
    }
    if (strings(r, body, "methods", methods, SH_ARRAY_LEN(methods), &nm) < 0 ||
        strings(r, body, "paths", paths, SH_ARRAY_LEN(paths), &np) < 0) {
        json_decref(body);
        return;
    }
    rc = sec_intention_make(json_string_value(json_object_get(body, "from")),
                            json_string_value(json_object_get(body, "to")),
                            json_string_value(json_object_get(body, "action")), methods, nm, paths,
                            np, &rule, &d);
    json_decref(body);
    if (rc < 0) {
        admin__reply_error(r, 400, d.where, d.what);
        return;
    }
    rc = sec_itable_add(r->a->cfg.intentions, &rule, sh_wall_ms(), &out);
    if (rc == SH_EEXIST) {
        json_t *o = rule_json(&out);
        json_object_set_new(o, "error", json_string("an equal intention exists"));
        admin__reply_json(r, 409, o);
    } else if (rc < 0) {
        admin__reply_error(r, rc == SH_ELIMIT ? 409 : 500, NULL, sh_strerror(rc));
    } else {
        admin__reply_json(r, 201, rule_json(&out));
    }
}

void admin__intentions_remove(struct admin_req *r)
{
    int rc;

    if (!ready(r)) return;
    rc = sec_itable_remove(r->a->cfg.intentions, r->rest);
    if (rc == SH_ENOENT)
        admin__reply_error(r, 404, "id", "no such intention");
    else if (rc == SH_EPERM)
        admin__reply_error(r, 400, "id", "it comes from the manifest: change the manifest");
    else if (rc < 0)
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
    else
        admin__reply_json(r, 200, json_pack("{s:s, s:b}", "id", r->rest, "removed", 1));
}

/* GET /v1/intentions/check?from=&to=&method=GET&path=/ */
void admin__intentions_check(struct admin_req *r)
{
    const char *from = admin__query(r, "from"), *to = admin__query(r, "to");
    const char *method = admin__query(r, "method"), *path = admin__query(r, "path");
    struct sec_intention_decision dec;

    if (!ready(r)) return;
    if (!from || !*from || !to || !*to) {
        admin__reply_error(r, 400, !from || !*from ? "from" : "to", "from and to are required");
        return;
    }
    const struct sec_intentions *set = sec_itable_current(r->a->cfg.intentions);
    sec_intentions_decide(set, slice_from_cstr(from), slice_from_cstr(to),
                          slice_from_cstr(method ? method : "GET"),
                          slice_from_cstr(path ? path : "/"), &dec);
    json_t *o = json_pack("{s:b, s:s}", "allow", dec.allow, "why", dec.why);
    json_object_set_new(o, "rule",
                        dec.rule >= 0 ? json_string(set->items[dec.rule].id) : json_null());
    admin__reply_json(r, 200, o);
}
