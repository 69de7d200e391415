/* SPDX-License-Identifier: MIT */
/* routes_kv.c: the config KV over HTTP, in Consul's shape (/v1/kv/<key> with ?recurse, ?keys,
 * ?raw, ?cas, ?flags, base64 values, X-Consul-Index and blocking ?index&wait) plus shoal's
 * history and rollback (/v1/config/history/<key>, /v1/config/rollback/<key>?index=N). */
#include "admin/admin.h"
#include "admin/admin_int.h"
#include "config/config.h"

#include <stdio.h>
#include <string.h>

static char *base64(struct arena *a, struct slice in)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (in.len + 2) / 3 * 4;
    char *out = arena_alloc(a, n + 1), *p = out;
    const unsigned char *s = (const unsigned char *)in.ptr;
    size_t i = 0;

    if (!out) return NULL;
    for (; i + 2 < in.len; i += 3) {
        *p++ = tbl[s[i] >> 2];
        *p++ = tbl[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        *p++ = tbl[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
        *p++ = tbl[s[i + 2] & 63];
    }
    if (i < in.len) {
        *p++ = tbl[s[i] >> 2];
        if (i + 1 < in.len) {
            *p++ = tbl[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
            *p++ = tbl[(s[i + 1] & 15) << 2];
        } else {
            *p++ = tbl[(s[i] & 3) << 4];
            *p++ = '=';
        }
        *p++ = '=';
    }
    *p = '\0';
    return out;
}

static json_t *entry_json(struct admin_req *r, const struct cfgkv_entry *e)
{
    json_t *o = json_object();
    /* Consul stores an empty value as nil and answers "Value": null for it */
    bool hidden = e->is_secret && !sec_may_read_secrets(r->token);
    char *b64 = e->is_deleted || e->value.len == 0 || hidden
                    ? NULL
                    : base64(http_exchange_arena(r->ex), e->value);

    json_object_set_new(o, "Key", json_stringn(e->key.ptr, e->key.len));
    json_object_set_new(o, "Value", b64 ? json_string(b64) : json_null());
    if (e->is_secret) json_object_set_new(o, "Secret", json_true()); /* shoal's, not Consul's */
    json_object_set_new(o, "Flags", json_integer((json_int_t)e->flags));
    json_object_set_new(o, "CreateIndex", json_integer((json_int_t)e->create_index));
    json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)e->modify_index));
    json_object_set_new(o, "LockIndex", json_integer((json_int_t)e->lock_index));
    return o;
}

static bool kv_ready(struct admin_req *r)
{
    if (r->a->cfg.kv) return true;
    admin__reply_error(r, 503, NULL, "the config store is not running");
    return false;
}

/* ------------------------------------------------------------------------------------------
 * Reads, with Consul's blocking queries
 * ------------------------------------------------------------------------------------------ */
static void kv_read(struct admin_req *r);

static void wait_done(void *data, int status)
{
    struct admin_req *r = data;

    (void)status;
    admin__unpark(r);
    r->waited = true;
    kv_read(r); /* answer with what is there now, changed or timed out */
}

static void wait_cancel(struct admin_req *r)
{
    cfgkv_wait_cancel(r->wait);
}

static void kv_read(struct admin_req *r)
{
    struct cfgkv *kv = r->a->cfg.kv;
    struct cfgkv_result res = {0};
    struct slice key = slice_from_cstr(r->rest);
    bool recurse = admin__query(r, "recurse") != NULL;
    const char *keys = admin__query(r, "keys");
    const char *sep = admin__query(r, "separator");
    uint64_t index, wait_ms;
    int rc;

    if (admin__blocking_params(r, &index, &wait_ms) < 0) return;
    if (keys)
        rc = cfgkv_keys(kv, key, sep ? slice_from_cstr(sep) : SLICE(""), &res);
    else if (recurse)
        rc = cfgkv_list(kv, key, &res);
    else
        rc = cfgkv_get(kv, key, &res);
    if (rc < 0 && rc != SH_ENOENT) {
        cfgkv_result_release(&res);
        admin__reply_error(r, rc == SH_EINVAL || rc == SH_EPARSE ? 400 : 500, "key",
                           cfgkv_errmsg(kv));
        return;
    }
    if (index && res.index <= index && !r->waited) {
        /* block until the key (or prefix) changes past index, or the wait ends */
        struct cfgkv_wait *w;
        struct cfgkv_wait_config wc = {.key = key,
                                       .is_prefix = recurse || keys,
                                       .index = index,
                                       .timeout_ms = wait_ms + wait_ms / 16};
        cfgkv_result_release(&res);
        int wr = cfgkv_wait(kv, &wc, wait_done, r, &w);
        if (wr == 0) {
            admin__park(r, w, wait_cancel);
            return;
        }
        /* changed already (or could not wait): read again and answer */
        r->waited = true;
        kv_read(r);
        return;
    }
    if (rc == SH_ENOENT || res.count == 0) {
        uint64_t idx = res.index;
        cfgkv_result_release(&res);
        admin__reply_raw(r, 404, "application/json", SLICE(""), idx);
        return;
    }
    if (admin__query(r, "raw") && !recurse && !keys && res.entries[0].is_secret &&
        !sec_may_read_secrets(r->token)) {
        cfgkv_result_release(&res);
        admin__reply_error(r, 403, "token",
                           "the value is a secret: it needs a write or admin token, or one "
                           "limited to a prefix the key is under");
        return;
    }
    if (admin__query(r, "raw") && !recurse && !keys) {
        uint64_t idx = res.index;
        struct slice v = res.entries[0].value;
        char *copy = arena_strndup(http_exchange_arena(r->ex), v.ptr, v.len);
        cfgkv_result_release(&res);
        admin__reply_raw(r, 200, "application/octet-stream",
                         (struct slice){copy ? copy : "", copy ? v.len : 0}, idx);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < res.count; i++) {
        if (keys)
            json_array_append_new(arr,
                                  json_stringn(res.entries[i].key.ptr, res.entries[i].key.len));
        else
            json_array_append_new(arr, entry_json(r, &res.entries[i]));
    }
    uint64_t idx = res.index;
    cfgkv_result_release(&res);
    admin__reply_json_index(r, 200, arr, idx);
}

void admin__kv_get(struct admin_req *r)
{
    if (kv_ready(r)) kv_read(r);
}

/* ------------------------------------------------------------------------------------------
 * Writes
 * ------------------------------------------------------------------------------------------ */
static int write_opts(struct admin_req *r, struct cfgkv_write_opts *o)
{
    const char *v;

    memset(o, 0, sizeof(*o));
    if ((v = admin__query(r, "cas")) != NULL) {
        if (slice_to_u64(slice_from_cstr(v), &o->cas) != 0) {
            admin__reply_error(r, 400, "cas", "cas must be an index (a number)");
            return -1;
        }
        o->has_cas = true;
    }
    if ((v = admin__query(r, "flags")) != NULL &&
        slice_to_u64(slice_from_cstr(v), &o->flags) != 0) {
        admin__reply_error(r, 400, "flags", "flags must be a number");
        return -1;
    }
    o->is_recurse = admin__query(r, "recurse") != NULL;
    o->is_secret = admin__query(r, "secret") != NULL;
    return 0;
}

static void reply_write(struct admin_req *r, int rc, uint64_t index)
{
    if (rc < 0) {
        int st = rc == SH_EINVAL || rc == SH_EPARSE ? 400 : rc == SH_ETOOBIG ? 413 : 500;
        if (rc == SH_ENOENT) st = 404;
        admin__reply_error(r, st, "key", cfgkv_errmsg(r->a->cfg.kv));
        return;
    }
    admin__reply_raw(r, 200, "application/json",
                     rc == CFGKV_CONFLICT ? SLICE("false") : SLICE("true"), index);
}

void admin__kv_put(struct admin_req *r)
{
    struct cfgkv_write_opts o;
    struct cfgkv_write_result out = {0};

    if (!kv_ready(r) || write_opts(r, &o) < 0) return;
    int rc = cfgkv_set(r->a->cfg.kv, slice_from_cstr(r->rest), buf_slice(&r->body), &o, &out);
    reply_write(r, rc, out.index);
}

void admin__kv_delete(struct admin_req *r)
{
    struct cfgkv_write_opts o;
    struct cfgkv_write_result out = {0};

    if (!kv_ready(r) || write_opts(r, &o) < 0) return;
    int rc = cfgkv_delete(r->a->cfg.kv, slice_from_cstr(r->rest), &o, &out);
    reply_write(r, rc, out.index);
}

/* ------------------------------------------------------------------------------------------
 * shoal's own: history and rollback
 * ------------------------------------------------------------------------------------------ */
void admin__kv_history(struct admin_req *r)
{
    struct cfgkv_result res = {0};
    int rc;

    if (!kv_ready(r)) return;
    rc = cfgkv_history(r->a->cfg.kv, slice_from_cstr(r->rest), &res);
    if (rc < 0) {
        cfgkv_result_release(&res);
        admin__reply_error(r, rc == SH_ENOENT ? 404 : 400, "key", cfgkv_errmsg(r->a->cfg.kv));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < res.count; i++) {
        json_t *o = entry_json(r, &res.entries[i]);
        json_object_set_new(o, "Deleted", json_boolean(res.entries[i].is_deleted));
        json_array_append_new(arr, o);
    }
    uint64_t idx = res.index;
    cfgkv_result_release(&res);
    admin__reply_json_index(r, 200, arr, idx);
}

void admin__kv_rollback(struct admin_req *r)
{
    struct cfgkv_write_opts o;
    struct cfgkv_write_result out = {0};
    const char *v = admin__query(r, "index");
    uint64_t to;

    if (!kv_ready(r) || write_opts(r, &o) < 0) return;
    if (!v || slice_to_u64(slice_from_cstr(v), &to) != 0) {
        admin__reply_error(r, 400, "index", "?index=N names the version to roll back to");
        return;
    }
    int rc = cfgkv_rollback(r->a->cfg.kv, slice_from_cstr(r->rest), to, &o, &out);
    reply_write(r, rc, out.index);
}
