/* SPDX-License-Identifier: MIT */
/* kv.c: the config KV's handle, reads and writes (config.h). Each write is one store
 * transaction; a delete also rewrites config/meta/last-delete in that transaction, so indexes
 * never go backwards (config_int.h). Threads: the control thread only. */
#include "config/config_int.h"

#include <stdio.h>

void cfgkv__set_errmsg(struct cfgkv *kv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(kv->errmsg, sizeof(kv->errmsg), fmt, ap);
    va_end(ap);
}

/* A store failure: its message, prefixed with what we were doing. */
static int store_failed(struct cfgkv *kv, int rc, const char *doing, struct slice key)
{
    cfgkv__set_errmsg(kv, "%s '%.*s': %s", doing, (int)SH_MIN(key.len, 64), key.ptr,
                      store_errmsg(kv->st)[0] ? store_errmsg(kv->st) : sh_strerror(rc));
    return rc;
}

static void timer_closed(uv_handle_t *h)
{
    sh_free(h);
}

int cfgkv_new(const struct cfgkv_config *cfg, uv_loop_t *loop, struct store *st, struct cfgkv **out)
{
    struct cfgkv *kv;

    *out = NULL;
    if (!cfg || !loop || !st || cfg->max_value_bytes > CFGKV_MAX_VALUE_LIMIT) return SH_EINVAL;
    kv = sh_calloc(1, sizeof(*kv));
    if (!kv) return SH_ENOMEM;
    sh_list_init(&kv->waits);
    sh_list_init(&kv->subs);
    kv->timer = sh_malloc(sizeof(*kv->timer));
    if (!kv->timer) {
        sh_free(kv);
        return SH_ENOMEM;
    }
    uv_timer_init(loop, kv->timer); /* cannot fail (libuv: always 0) */
    kv->timer->data = kv;
    kv->loop = loop;
    kv->st = st;
    kv->history = cfg->history ? cfg->history : CFGKV_DEFAULT_HISTORY;
    kv->max_value_bytes =
        cfg->max_value_bytes ? cfg->max_value_bytes : CFGKV_DEFAULT_MAX_VALUE_BYTES;
    *out = kv;
    return 0;
}

void cfgkv_free(struct cfgkv *kv)
{
    if (!kv) return;
    cfgkv__watch_shutdown(kv);
    uv_timer_stop(kv->timer);
    uv_close((uv_handle_t *)kv->timer, timer_closed);
    kv->timer = NULL;
    sh_free(kv);
}

const char *cfgkv_errmsg(const struct cfgkv *kv)
{
    return kv->errmsg;
}

/* ------------------------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------------------------ */
void cfgkv_result_release(struct cfgkv_result *res)
{
    if (!res) return;
    sh_free(res->entries);
    store_result_release(&res->raw);
    memset(res, 0, sizeof(*res));
}

static uint64_t floor_index(int64_t rev)
{
    return rev > 0 ? (uint64_t)rev : 1;
}

/* The index of the last delete anywhere in the KV (0 = none yet). */
static int last_delete(struct cfgkv *kv, uint64_t *out)
{
    struct store_result r = {0};
    int rc = store_get(kv->st, SLICE(CFGKV__LAST_DELETE), &r);

    *out = 0;
    if (rc == 0) *out = (uint64_t)r.kvs[0].mod_revision;
    store_result_release(&r);
    return rc == SH_ENOENT ? 0 : rc;
}

/* A prefix's index: its highest modify_index raised to the last delete; when both are 0
 * (nothing ever written or deleted), the store's revision. */
static int prefix_index(struct cfgkv *kv, const struct store_result *r, uint64_t *out)
{
    uint64_t idx = 0;
    int rc = last_delete(kv, &idx);

    if (rc < 0) return rc;
    for (size_t i = 0; i < r->count; i++)
        idx = SH_MAX(idx, (uint64_t)r->kvs[i].mod_revision);
    *out = idx ? idx : floor_index(store_revision(kv->st));
    return 0;
}

/* A missing key's index: its delete's if it had one, else the store's revision. */
static int missing_key_index(struct cfgkv *kv, struct slice skey, uint64_t *out)
{
    struct store_result h = {0};
    int rc = store_history(kv->st, skey, 1, &h);

    if (rc == 0) *out = h.count ? (uint64_t)h.kvs[0].mod_revision : floor_index(h.revision);
    store_result_release(&h);
    return rc;
}

int cfgkv__index_of(struct cfgkv *kv, struct slice key, bool is_prefix, uint64_t *out)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey = cfgkv__skey(buf, key);
    struct store_result r = {0};
    int rc;

    if (is_prefix) {
        rc = store_range(kv->st, STORE_PREFIX(skey), 0, &r);
        if (rc == 0) rc = prefix_index(kv, &r, out);
    } else {
        rc = store_get(kv->st, skey, &r);
        if (rc == 0)
            *out = (uint64_t)r.kvs[0].mod_revision;
        else if (rc == SH_ENOENT)
            rc = missing_key_index(kv, skey, out);
    }
    store_result_release(&r);
    return rc;
}

/* Fills res->entries from res->raw. 0, SH_ENOMEM or SH_ECORRUPT. */
static int convert(struct cfgkv *kv, struct cfgkv_result *res)
{
    if (res->raw.count == 0) return 0;
    res->entries = sh_calloc(res->raw.count, sizeof(*res->entries));
    if (!res->entries) return SH_ENOMEM;
    for (size_t i = 0; i < res->raw.count; i++) {
        int rc = cfgkv__entry_from(&res->raw.kvs[i], &res->entries[i]);
        if (rc < 0) {
            cfgkv__set_errmsg(kv, "stored record of '%.*s' is not a config value",
                              (int)SH_MIN(res->raw.kvs[i].key.len, 64), res->raw.kvs[i].key.ptr);
            return rc;
        }
    }
    res->count = res->raw.count;
    return 0;
}

/* The start of a read of one key: res emptied, the key checked, its store key made in buf. */
static int read_one(struct cfgkv *kv, struct slice key, struct cfgkv_result *res, char *buf,
                    struct slice *skey)
{
    memset(res, 0, sizeof(*res));
    SH_TRY(cfgkv__check(kv, key, false));
    *skey = cfgkv__skey(buf, key);
    return 0;
}

int cfgkv_get(struct cfgkv *kv, struct slice key, struct cfgkv_result *res)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey;
    int rc;

    SH_TRY(read_one(kv, key, res, buf, &skey));
    rc = store_get(kv->st, skey, &res->raw);
    if (rc == SH_ENOENT) {
        rc = missing_key_index(kv, skey, &res->index);
        if (rc == 0) {
            cfgkv__set_errmsg(kv, "key '%.*s' not found", (int)key.len, key.ptr);
            return SH_ENOENT;
        }
    }
    if (rc == 0) rc = convert(kv, res);
    if (rc < 0) {
        if (rc != SH_ECORRUPT && rc != SH_ENOMEM) store_failed(kv, rc, "get", key);
        cfgkv_result_release(res);
        return rc;
    }
    res->index = res->entries[0].modify_index;
    return 0;
}

static int range(struct cfgkv *kv, struct slice prefix, struct cfgkv_result *res)
{
    char buf[CFGKV__SKEY_BUF];
    int rc;

    memset(res, 0, sizeof(*res));
    rc = cfgkv__check(kv, prefix, true);
    if (rc < 0) return rc;
    rc = store_range(kv->st, STORE_PREFIX(cfgkv__skey(buf, prefix)), 0, &res->raw);
    if (rc == 0) rc = prefix_index(kv, &res->raw, &res->index);
    if (rc < 0) store_failed(kv, rc, "list", prefix);
    return rc;
}

int cfgkv_list(struct cfgkv *kv, struct slice prefix, struct cfgkv_result *res)
{
    int rc = range(kv, prefix, res);

    if (rc == 0) rc = convert(kv, res);
    if (rc < 0) cfgkv_result_release(res);
    return rc;
}

/* The first occurrence of needle in hay, or NULL. */
static const char *find(struct slice hay, struct slice needle)
{
    for (size_t i = 0; needle.len <= hay.len && i <= hay.len - needle.len; i++) {
        if (memcmp(hay.ptr + i, needle.ptr, needle.len) == 0) return hay.ptr + i;
    }
    return NULL;
}

int cfgkv_keys(struct cfgkv *kv, struct slice prefix, struct slice separator,
               struct cfgkv_result *res)
{
    int rc = range(kv, prefix, res);
    size_t n = 0;

    if (rc == 0) rc = convert(kv, res);
    if (rc < 0) {
        cfgkv_result_release(res);
        return rc;
    }
    /* Fold keys into folders in place: keys sharing a folder are adjacent in key order. */
    for (size_t i = 0; i < res->count; i++) {
        struct cfgkv_entry e = res->entries[i];
        struct slice rest = {.ptr = e.key.ptr + prefix.len, .len = e.key.len - prefix.len};
        const char *at = separator.len ? find(rest, separator) : NULL;

        e.value = SLICE_NULL;
        if (at) {
            size_t len = (size_t)(at - e.key.ptr) + separator.len;
            if (n > 0 && res->entries[n - 1].is_folder &&
                slice_eq(res->entries[n - 1].key, (struct slice){e.key.ptr, len}))
                continue;
            e = (struct cfgkv_entry){.key = {.ptr = e.key.ptr, .len = len}, .is_folder = true};
        }
        res->entries[n++] = e;
    }
    res->count = n;
    return 0;
}

int cfgkv_history(struct cfgkv *kv, struct slice key, struct cfgkv_result *res)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey;
    int rc;

    SH_TRY(read_one(kv, key, res, buf, &skey));
    rc = store_history(kv->st, skey, kv->history, &res->raw);
    if (rc < 0) store_failed(kv, rc, "history of", key);
    if (rc == 0) rc = convert(kv, res);
    if (rc == 0 && res->count == 0)
        rc = missing_key_index(kv, skey, &res->index);
    else if (rc == 0)
        res->index = res->entries[0].modify_index;
    if (rc < 0) cfgkv_result_release(res);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Writes
 * ------------------------------------------------------------------------------------------ */
static const struct cfgkv_write_opts no_opts;

static void write_out(struct cfgkv_write_result *out, int64_t rev, size_t deleted)
{
    if (out)
        *out = (struct cfgkv_write_result){.index = (uint64_t)(rev > 0 ? rev : 0),
                                           .deleted_count = deleted};
}

/* Puts the stored form <stored> under <key>, with the cas of opts. */
static int put_stored(struct cfgkv *kv, struct slice key, struct slice stored,
                      const struct cfgkv_write_opts *opts, struct cfgkv_write_result *out)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey = cfgkv__skey(buf, key);
    int64_t rev = 0;
    int rc;

    if (!opts->has_cas) {
        rc = store_put(kv->st, skey, stored, 0, &rev);
    } else if (opts->cas > INT64_MAX) {
        rc = STORE_CONFLICT; /* no revision is that high */
        rev = store_revision(kv->st);
    } else {
        rc = store_cas(kv->st, skey, (int64_t)opts->cas, stored, &rev);
    }
    if (rc == STORE_CONFLICT) {
        cfgkv__set_errmsg(kv, "cas %llu on '%.*s' does not match its modify index",
                          (unsigned long long)opts->cas, (int)key.len, key.ptr);
        write_out(out, store_revision(kv->st), 0);
        return CFGKV_CONFLICT;
    }
    if (rc < 0) return store_failed(kv, rc, "set", key);
    write_out(out, rev, 0);
    return 0;
}

int cfgkv_set(struct cfgkv *kv, struct slice key, struct slice value,
              const struct cfgkv_write_opts *opts, struct cfgkv_write_result *out)
{
    unsigned char *stored;
    int rc;

    if (out) *out = (struct cfgkv_write_result){0};
    if (!opts) opts = &no_opts;
    rc = cfgkv__check(kv, key, false);
    if (rc < 0) return rc;
    if (value.len > kv->max_value_bytes) {
        cfgkv__set_errmsg(kv, "value of '%.*s' is %zu bytes; the limit is %zu", (int)key.len,
                          key.ptr, value.len, kv->max_value_bytes);
        return SH_ETOOBIG;
    }
    stored = sh_malloc(CFGKV__HDR_BYTES + value.len);
    if (!stored) return SH_ENOMEM;
    stored[0] = opts->is_secret ? CFGKV__FORMAT_SECRET : CFGKV__FORMAT;
    for (int i = 0; i < 8; i++)
        stored[1 + i] = (unsigned char)(opts->flags >> (56 - 8 * i));
    if (value.len) memcpy(stored + CFGKV__HDR_BYTES, value.ptr, value.len);
    rc = put_stored(
        kv, key, (struct slice){.ptr = (const char *)stored, .len = CFGKV__HDR_BYTES + value.len},
        opts, out);
    sh_free(stored);
    return rc;
}

int cfgkv_delete(struct cfgkv *kv, struct slice key, const struct cfgkv_write_opts *opts,
                 struct cfgkv_write_result *out)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey;
    struct store_cmp cmp;
    struct store_op ops[2];
    struct store_txn txn = {.success = ops, .success_count = 2};
    struct store_txn_result tr;
    int rc;

    if (out) *out = (struct cfgkv_write_result){0};
    if (!opts) opts = &no_opts;
    if (opts->is_recurse && opts->has_cas) {
        cfgkv__set_errmsg(kv, "a recursive delete takes no cas");
        return SH_EINVAL;
    }
    rc = cfgkv__check(kv, key, opts->is_recurse);
    if (rc < 0) return rc;
    if (opts->has_cas && (opts->cas == 0 || opts->cas > INT64_MAX)) {
        cfgkv__set_errmsg(kv, "cas %llu on '%.*s' does not match its modify index",
                          (unsigned long long)opts->cas, (int)key.len, key.ptr);
        write_out(out, store_revision(kv->st), 0);
        return CFGKV_CONFLICT;
    }
    skey = cfgkv__skey(buf, key);
    ops[0] = (struct store_op){.type = STORE_OP_DELETE,
                               .span = opts->is_recurse ? STORE_PREFIX(skey) : STORE_KEY(skey)};
    ops[1] = (struct store_op){.type = STORE_OP_PUT, .span = STORE_KEY(SLICE(CFGKV__LAST_DELETE))};
    if (opts->is_recurse) {
        /* Single-threaded: nothing can write between this read and the transaction. */
        struct store_result r = {0};
        rc = store_range(kv->st, ops[0].span, 1, &r);
        size_t found = r.count;
        store_result_release(&r);
        if (rc < 0) return store_failed(kv, rc, "delete", key);
        if (found == 0) {
            write_out(out, store_revision(kv->st), 0);
            return 0;
        }
    } else {
        cmp = (struct store_cmp){.key = skey,
                                 .target = opts->has_cas ? STORE_CMP_MOD : STORE_CMP_VERSION,
                                 .op = opts->has_cas ? STORE_EQ : STORE_GT,
                                 .num = opts->has_cas ? (int64_t)opts->cas : 0};
        txn.cmps = &cmp;
        txn.cmp_count = 1;
    }
    rc = store_txn(kv->st, &txn, &tr);
    if (rc < 0) return store_failed(kv, rc, "delete", key);
    if (!tr.is_succeeded && opts->has_cas) {
        cfgkv__set_errmsg(kv, "cas %llu on '%.*s' does not match its modify index",
                          (unsigned long long)opts->cas, (int)key.len, key.ptr);
        write_out(out, tr.revision, 0);
        return CFGKV_CONFLICT;
    }
    write_out(out, tr.revision, tr.is_succeeded ? tr.deleted_count : 0);
    return 0;
}

int cfgkv_rollback(struct cfgkv *kv, struct slice key, uint64_t modify_index,
                   const struct cfgkv_write_opts *opts, struct cfgkv_write_result *out)
{
    char buf[CFGKV__SKEY_BUF];
    struct store_result h = {0};
    const struct store_kv *found = NULL;
    int rc;

    if (out) *out = (struct cfgkv_write_result){0};
    if (!opts) opts = &no_opts;
    rc = cfgkv__check(kv, key, false);
    if (rc < 0) return rc;
    rc = store_history(kv->st, cfgkv__skey(buf, key), kv->history, &h);
    if (rc < 0) return store_failed(kv, rc, "rollback", key);
    for (size_t i = 0; i < h.count; i++) {
        if ((uint64_t)h.kvs[i].mod_revision == modify_index && h.kvs[i].version > 0)
            found = &h.kvs[i];
    }
    if (!found) {
        cfgkv__set_errmsg(kv, "'%.*s' has no value at index %llu among its last %u versions",
                          (int)key.len, key.ptr, (unsigned long long)modify_index, kv->history);
        rc = SH_ENOENT;
    } else if (found->value.len < CFGKV__HDR_BYTES ||
               ((unsigned char)found->value.ptr[0] != CFGKV__FORMAT &&
                (unsigned char)found->value.ptr[0] != CFGKV__FORMAT_SECRET)) {
        cfgkv__set_errmsg(kv, "stored record of '%.*s' is not a config value", (int)key.len,
                          key.ptr);
        rc = SH_ECORRUPT;
    } else {
        /* The stored form carries the old flags and secret mark too: write it back as it was. */
        rc = put_stored(kv, key, found->value, opts, out);
    }
    store_result_release(&h);
    return rc;
}
