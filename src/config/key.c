/* SPDX-License-Identifier: MIT */
/* key.c: the rules for keys and prefixes (config.h, "Keys"), and the stored form of a value
 * (config_int.h): a format byte, the flags, the bytes. Pure functions; any thread. */
#include "config/config_int.h"

#include <stdio.h>

/* Writes s for a message: at most 48 bytes, non-printables as \xNN, "..." when cut. */
static const char *shown(struct slice s, char *out, size_t n)
{
    size_t o = 0, i;

    for (i = 0; i < s.len && o + 8 < n && i < 48; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            snprintf(out + o, n - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (i < s.len && o + 4 < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static bool is_dot_segment(const char *p, size_t len)
{
    return (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.');
}

static int check(struct slice s, bool is_prefix, struct sh_diag *d)
{
    const char *what = is_prefix ? "prefix" : "key";
    char show[256];
    size_t start = 0, i;

    if (s.len > CFGKV_MAX_KEY_BYTES) {
        sh_diag_set(d, what, "'%s' is %zu bytes; the limit is %d", shown(s, show, sizeof(show)),
                    s.len, CFGKV_MAX_KEY_BYTES);
        return SH_ETOOBIG;
    }
    if (s.len == 0 && !is_prefix) {
        sh_diag_set(d, what, "the key is empty");
        return SH_EINVAL;
    }
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x21 || c > 0x7e) {
            sh_diag_set(d, what,
                        "'%s': byte %zu is 0x%02x (keys are printable ASCII without spaces)",
                        shown(s, show, sizeof(show)), i, c);
            return SH_EINVAL;
        }
    }
    for (i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != '/') continue;
        if (i == s.len) {
            /* The last segment: a prefix may end anywhere, a key must end in a segment. */
            if (is_prefix || s.len == 0) break;
            if (i == start) {
                sh_diag_set(d, what, "'%s' ends with '/' (an empty last segment)",
                            shown(s, show, sizeof(show)));
                return SH_EINVAL;
            }
        } else if (i == start) {
            if (i == 0)
                sh_diag_set(d, what, "'%s' starts with '/' (write keys without it)",
                            shown(s, show, sizeof(show)));
            else
                sh_diag_set(d, what, "'%s': empty segment at byte %zu ('//')",
                            shown(s, show, sizeof(show)), i);
            return SH_EINVAL;
        }
        if (is_dot_segment(s.ptr + start, i - start)) {
            sh_diag_set(d, what, "'%s': segment '%.*s' at byte %zu ('.' and '..' are not allowed)",
                        shown(s, show, sizeof(show)), (int)(i - start), s.ptr + start, start);
            return SH_EINVAL;
        }
        start = i + 1;
    }
    return 0;
}

int cfgkv_key_check(struct slice key, struct sh_diag *d)
{
    return check(key, false, d);
}

int cfgkv_prefix_check(struct slice prefix, struct sh_diag *d)
{
    return check(prefix, true, d);
}

int cfgkv__check(struct cfgkv *kv, struct slice key, bool is_prefix)
{
    struct sh_diag d;
    int rc = check(key, is_prefix, &d);

    if (rc < 0) cfgkv__set_errmsg(kv, "%s: %s", d.where, d.what);
    return rc;
}

struct slice cfgkv__skey(char *buf, struct slice key)
{
    memcpy(buf, CFGKV__DATA, CFGKV__DATA_LEN);
    if (key.len) memcpy(buf + CFGKV__DATA_LEN, key.ptr, key.len);
    return (struct slice){.ptr = buf, .len = CFGKV__DATA_LEN + key.len};
}

int cfgkv__entry_from(const struct store_kv *skv, struct cfgkv_entry *e)
{
    const unsigned char *h = (const unsigned char *)skv->value.ptr;

    memset(e, 0, sizeof(*e));
    if (SH_NEVER(skv->key.len < CFGKV__DATA_LEN)) return SH_ECORRUPT;
    e->key = (struct slice){.ptr = skv->key.ptr + CFGKV__DATA_LEN,
                            .len = skv->key.len - CFGKV__DATA_LEN};
    e->modify_index = (uint64_t)skv->mod_revision;
    if (skv->version == 0) {
        e->is_deleted = true;
        return 0;
    }
    if (skv->value.len < CFGKV__HDR_BYTES ||
        (h[0] != CFGKV__FORMAT && h[0] != CFGKV__FORMAT_SECRET))
        return SH_ECORRUPT;
    e->is_secret = h[0] == CFGKV__FORMAT_SECRET;
    for (int i = 1; i < CFGKV__HDR_BYTES; i++)
        e->flags = e->flags << 8 | h[i];
    e->value = (struct slice){.ptr = skv->value.ptr + CFGKV__HDR_BYTES,
                              .len = skv->value.len - CFGKV__HDR_BYTES};
    e->create_index = (uint64_t)skv->create_revision;
    e->version = (uint64_t)skv->version;
    return 0;
}
