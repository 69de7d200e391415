/* SPDX-License-Identifier: MIT */
/* ui_session.c: the dashboard's sessions as plain functions over a bounded table (unit-tested
 * without sockets): a random session id (the shoal_session cookie) maps to a token id and a
 * per-session CSRF value; entries expire, and a full table drops its expired entries first,
 * then the oldest. The table never holds a token's text. */
#include "admin/admin_int.h"

#include <stdio.h>
#include <string.h>

/* Equal lengths and bytes, in time that depends on the length only. */
static bool ct_eq(struct slice a, const char *b)
{
    size_t n = strlen(b);
    unsigned char diff = 0;

    if (a.len != n) return false;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a.ptr[i] ^ b[i]);
    return diff == 0;
}

static void to_hex(const uint8_t *raw, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

const struct admin_session *admin__session_add(struct admin_sessions *t, const char *token_id,
                                               uint64_t token_expires_ms,
                                               const uint8_t rnd[ADMIN_SESSION_RANDOM_BYTES],
                                               uint64_t now_ms)
{
    struct admin_session *slot = NULL;

    for (size_t i = 0; i < ADMIN_SESSIONS_MAX && !slot; i++)
        if (!t->s[i].sid[0] || t->s[i].expires_ms <= now_ms) slot = &t->s[i];
    if (!slot) { /* full of live sessions: the oldest goes */
        slot = &t->s[0];
        for (size_t i = 1; i < ADMIN_SESSIONS_MAX; i++)
            if (t->s[i].created_ms < slot->created_ms) slot = &t->s[i];
    }
    memset(slot, 0, sizeof(*slot));
    to_hex(rnd, ADMIN_SESSION_ID_BYTES, slot->sid);
    to_hex(rnd + ADMIN_SESSION_ID_BYTES, ADMIN_SESSION_ID_BYTES, slot->csrf);
    snprintf(slot->token_id, sizeof(slot->token_id), "%s", token_id);
    slot->created_ms = now_ms;
    slot->expires_ms = now_ms + ADMIN_SESSION_TTL_MS;
    if (token_expires_ms && token_expires_ms < slot->expires_ms)
        slot->expires_ms = token_expires_ms;
    return slot;
}

const struct admin_session *admin__session_find(const struct admin_sessions *t, struct slice sid,
                                                uint64_t now_ms)
{
    if (sid.len != 2 * ADMIN_SESSION_ID_BYTES) return NULL;
    for (size_t i = 0; i < ADMIN_SESSIONS_MAX; i++)
        if (t->s[i].sid[0] && t->s[i].expires_ms > now_ms && ct_eq(sid, t->s[i].sid))
            return &t->s[i];
    return NULL;
}

bool admin__session_remove(struct admin_sessions *t, struct slice sid)
{
    if (sid.len != 2 * ADMIN_SESSION_ID_BYTES) return false;
    for (size_t i = 0; i < ADMIN_SESSIONS_MAX; i++)
        if (t->s[i].sid[0] && ct_eq(sid, t->s[i].sid)) {
            memset(&t->s[i], 0, sizeof(t->s[i]));
            return true;
        }
    return false;
}

bool admin__session_csrf_ok(const struct admin_session *s, struct slice csrf)
{
    return s && csrf.len > 0 && ct_eq(csrf, s->csrf);
}

bool admin__cookie_get(struct slice header, struct slice name, struct slice *out)
{
    struct slice rest = header, item, k;

    *out = SLICE_NULL;
    while (rest.ptr && rest.len) {
        rest = slice_split(rest, ';', &item);
        struct slice v = slice_split(slice_trim(item), '=', &k);
        if (v.ptr && slice_eq(slice_trim(k), name)) {
            *out = slice_trim(v);
            return true;
        }
    }
    return false;
}
