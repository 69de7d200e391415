/* SPDX-License-Identifier: MIT */
/* config_int.h: what the config KV's files share: the handle, the store layout (key prefix,
 * value header), key checks and the conversion of store records into entries.
 * Threads: the control thread only, like config.h. */
#ifndef SHOAL_CONFIG_INT_H
#define SHOAL_CONFIG_INT_H

#include "config/config.h"

/* Store layout under CFGKV_STORE_PREFIX:
 *   config/kv/<key>             a key: 1 byte format (CFGKV__FORMAT, or CFGKV__FORMAT_SECRET
 *                               for a value marked secret), 8 bytes flags big-endian, then
 *                               the value's bytes
 *   config/meta/last-delete     rewritten (empty) in the same transaction as every delete, so
 *                               its mod_revision is the index of the last delete: a prefix's
 *                               index takes it into account and never goes backwards when the
 *                               key holding the highest modify_index goes away. */
#define CFGKV__DATA CFGKV_STORE_PREFIX "kv/"
#define CFGKV__LAST_DELETE CFGKV_STORE_PREFIX "meta/last-delete"
enum {
    CFGKV__DATA_LEN = sizeof(CFGKV__DATA) - 1,
    CFGKV__SKEY_BUF = CFGKV__DATA_LEN + CFGKV_MAX_KEY_BYTES,
    CFGKV__HDR_BYTES = 9,
    CFGKV__FORMAT = 1,
    CFGKV__FORMAT_SECRET = 2,
};

struct cfgkv {
    uv_loop_t *loop;
    struct store *st;
    uv_timer_t *timer; /* wait deadlines; freed by its close callback */
    uint32_t history;
    size_t max_value_bytes;
    struct sh_list waits; /* of cfgkv_wait, through link; newest first (deadlines unordered) */
    struct sh_list subs;  /* of cfgkv_sub, through link; newest first */
    bool is_closing;      /* in cfgkv_free: no new waits or subscriptions */
    char errmsg[256];
};

void cfgkv__set_errmsg(struct cfgkv *kv, const char *fmt, ...) SH_PRINTF(2, 3);
/* Checks a key (or a prefix) and on failure sets kv's errmsg. 0, SH_EINVAL or SH_ETOOBIG. */
int cfgkv__check(struct cfgkv *kv, struct slice key, bool is_prefix);
/* The store key of a checked key or prefix, built in buf (CFGKV__SKEY_BUF bytes). */
struct slice cfgkv__skey(char *buf, struct slice key);
/* Fills e from a stored record (a put, or a delete when version == 0). 0 or SH_ECORRUPT. */
int cfgkv__entry_from(const struct store_kv *skv, struct cfgkv_entry *e);
/* The index of a checked key or prefix now (> 0), as reads report it. 0 or SH_E*. */
int cfgkv__index_of(struct cfgkv *kv, struct slice key, bool is_prefix, uint64_t *out);
/* Ends every wait and subscription with SH_ESHUTDOWN (cfgkv_free). */
void cfgkv__watch_shutdown(struct cfgkv *kv);

#endif
