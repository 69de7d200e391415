/* SPDX-License-Identifier: MIT */
/* identity.c: who called the mesh. The table of the live instances' credentials (immutable once
 * built, shared by the workers through a snapshot) and the decision over one request's
 * Proxy-Authorization: parse "Basic base64(user:secret)", find the user, compare the secret in
 * constant time, and say whether the request is served. Pure functions; any thread. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdlib.h>
#include <string.h>

struct proxy_callers {
    struct proxy_caller *items; /* sorted by user */
    size_t count;
    struct arena arena;
};

static int by_user(const void *a, const void *b)
{
    return strcmp(((const struct proxy_caller *)a)->user, ((const struct proxy_caller *)b)->user);
}

static bool field_ok(const char *s, size_t max)
{
    return s && s[0] && strlen(s) <= max;
}

int proxy_callers_new(const struct proxy_caller *list, size_t n, struct proxy_callers **out)
{
    struct proxy_callers *t = sh_calloc(1, sizeof(*t));
    int rc = SH_ENOMEM;

    *out = NULL;
    if (!t) return SH_ENOMEM;
    arena_init(&t->arena, 4096, 0);
    t->items = arena_alloc(&t->arena, (n + 1) * sizeof(*t->items));
    if (!t->items) goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct proxy_caller *c = &list[i];
        struct proxy_caller *d = &t->items[i];
        if (!field_ok(c->user, PROXY_CALLER_MAX_USER_BYTES) ||
            !field_ok(c->secret, PROXY_CALLER_MAX_SECRET_BYTES) ||
            !field_ok(c->service, PROXY_CALLER_MAX_NAME_BYTES) ||
            !field_ok(c->instance, PROXY_CALLER_MAX_NAME_BYTES)) {
            rc = SH_EINVAL;
            goto fail;
        }
        d->user = arena_strndup(&t->arena, c->user, strlen(c->user));
        d->secret = arena_strndup(&t->arena, c->secret, strlen(c->secret));
        d->service = arena_strndup(&t->arena, c->service, strlen(c->service));
        d->instance = arena_strndup(&t->arena, c->instance, strlen(c->instance));
        if (!d->user || !d->secret || !d->service || !d->instance) goto fail;
    }
    t->count = n;
    if (n > 1) qsort(t->items, n, sizeof(*t->items), by_user);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(t->items[i - 1].user, t->items[i].user) == 0) {
            rc = SH_EINVAL;
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    proxy_callers_free(t);
    return rc;
}

void proxy_callers_free(struct proxy_callers *t)
{
    if (!t) return;
    arena_release(&t->arena);
    sh_free(t);
}

size_t proxy_callers_count(const struct proxy_callers *t)
{
    return t ? t->count : 0;
}

static const struct proxy_caller *find_user(const struct proxy_callers *t, struct slice user)
{
    size_t lo = 0, hi = t ? t->count : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *u = t->items[mid].user;
        size_t ulen = strlen(u);
        int c = memcmp(u, user.ptr, SH_MIN(ulen, user.len));
        if (c == 0) c = ulen < user.len ? -1 : ulen > user.len ? 1 : 0;
        if (c == 0) return &t->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Equal in time that depends only on the lengths (the secret's length is no secret). */
static bool secret_eq(const char *want, struct slice got)
{
    size_t len = strlen(want);
    volatile unsigned char diff = (unsigned char)(len != got.len);

    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(want[i] ^ (i < got.len ? got.ptr[i] : 0));
    return diff == 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with its padding (RFC 4648 section 4, what RFC 7617 Basic uses); padding may
 * be left out. Returns the decoded length, or -1 (a bad character, a bad length, or more than
 * cap bytes). */
static long b64_decode(struct slice in, char *out, size_t cap)
{
    size_t n = 0, len = in.len;
    uint32_t acc = 0;
    int bits = 0;

    while (len && in.ptr[len - 1] == '=')
        len--;
    if (in.len - len > 2 || (in.len % 4 && in.len != len)) return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in.ptr[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6) return -1; /* one lone character: not a whole byte */
    return (long)n;
}

void proxy_identity_decide(const struct proxy_identity_input *in,
                           struct proxy_identity_decision *out)
{
    char raw[PROXY_CALLER_MAX_USER_BYTES + 1 + PROXY_CALLER_MAX_SECRET_BYTES];
    struct slice v = slice_trim(in->value), scheme, cred;
    const char *colon;
    long n;

    *out = (struct proxy_identity_decision){.verdict = PROXY_CALLER_NONE, .serve = true};
    if (in->mode == PROXY_IDENTITY_OFF) return;
    if (in->nfields == 0) {
        out->problem = "no Proxy-Authorization: send the credential of your proxy URL "
                       "(HTTP_PROXY)";
        goto verdict;
    }
    out->verdict = PROXY_CALLER_MALFORMED;
    if (in->nfields > 1) {
        out->problem = "Proxy-Authorization sent more than once";
        goto verdict;
    }
    if (v.len > PROXY_CALLER_MAX_AUTH_BYTES) {
        out->problem = "Proxy-Authorization too long";
        goto verdict;
    }
    cred = slice_split(v, ' ', &scheme);
    if (!cred.ptr || !slice_eq_nocase(scheme, SLICE("basic"))) {
        out->problem = "Proxy-Authorization is not Basic";
        goto verdict;
    }
    cred = slice_trim(cred);
    n = b64_decode(cred, raw, sizeof(raw));
    colon = n > 0 ? memchr(raw, ':', (size_t)n) : NULL;
    if (!colon) {
        out->problem = "Proxy-Authorization is not base64 of user:password";
        goto verdict;
    }
    struct slice user = {raw, (size_t)(colon - raw)};
    struct slice secret = {colon + 1, (size_t)(raw + n - colon - 1)};
    const struct proxy_caller *who = find_user(in->callers, user);
    if (!who) {
        out->verdict = PROXY_CALLER_UNKNOWN_USER;
        out->problem = "no live instance has this credential (a restarted instance gets a new "
                       "one: read HTTP_PROXY again)";
        goto verdict;
    }
    if (!secret_eq(who->secret, secret)) {
        out->verdict = PROXY_CALLER_BAD_SECRET;
        out->problem = "wrong password for this caller (a restarted instance gets a new one)";
        goto verdict;
    }
    out->verdict = PROXY_CALLER_KNOWN;
    out->who = who;
    out->problem = NULL;
    return;
verdict:
    out->serve = in->mode != PROXY_IDENTITY_REQUIRED;
}
