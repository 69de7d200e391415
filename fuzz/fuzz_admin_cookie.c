/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_admin_cookie.c: the admin API's reading of a Cookie header (admin__cookie_get) and
 * the session lookup by a presented id and CSRF value (ui_session.c), over bytes a browser or
 * any client controls. Invariants: a found value lies inside the header, holds no ';', and
 * follows "shoal_session=" there; a presented id finds a session only when it is that session's
 * id byte for byte; the CSRF check only accepts the session's own value. No I/O. */
#include "admin/admin_int.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct admin_sessions table;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct slice header = {(const char *)data, size}, v;
    uint8_t rnd[ADMIN_SESSION_RANDOM_BYTES];
    const struct admin_session *s, *found;

    if (admin__cookie_get(header, SLICE("shoal_session"), &v)) {
        assert(v.ptr >= header.ptr && v.ptr + v.len <= header.ptr + header.len);
        assert(!memchr(v.ptr, ';', v.len));
        assert(v.ptr - header.ptr >= 14); /* after at least "shoal_session=" */
    } else {
        assert(v.ptr == NULL && v.len == 0);
        v = header;
    }
    memset(&table, 0, sizeof(table));
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)(i * 13u + 5u);
    s = admin__session_add(&table, "root", 0, rnd, 1000);
    found = admin__session_find(&table, v, 2000);
    assert(found == NULL ||
           (found == s && v.len == strlen(s->sid) && memcmp(v.ptr, s->sid, v.len) == 0));
    if (admin__session_csrf_ok(s, v))
        assert(v.len == strlen(s->csrf) && memcmp(v.ptr, s->csrf, v.len) == 0);
    (void)found; /* used by the asserts only */
    return 0;
}
