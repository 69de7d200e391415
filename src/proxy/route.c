/* SPDX-License-Identifier: MIT */
/* route.c: matching a request head against the routes of a config, in order. */
#include "proxy/proxy.h"

#include <string.h>

bool proxy_glob_match(const char *pat, struct slice path)
{
    const char *s = path.ptr, *end = path.ptr + path.len;
    /* backtracking points for '*' (one segment) and '**' (any bytes) */
    const char *star_p = NULL, *star_s = NULL;
    bool star_any = false;

    while (s < end || *pat) {
        if (*pat == '*' && pat[1] == '*') {
            star_p = pat + 2;
            star_s = s;
            star_any = true;
            pat += 2;
            continue;
        }
        if (*pat == '*') {
            star_p = pat + 1;
            star_s = s;
            star_any = false;
            pat++;
            continue;
        }
        if (s < end && (*pat == '?' ? *s != '/' : *pat == *s)) {
            pat++;
            s++;
            continue;
        }
        /* mismatch: let the last star eat one more byte (a single '*' never eats a '/') */
        if (star_p && star_s < end && (star_any || *star_s != '/')) {
            star_s++;
            s = star_s;
            pat = star_p;
            continue;
        }
        return false;
    }
    return true;
}

uint32_t proxy_hash(struct slice key)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < key.len; i++) {
        h ^= (unsigned char)key.ptr[i];
        h *= 16777619u;
    }
    /* murmur3's finaliser spreads FNV's weak low bits */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* The path of an origin-form target (up to '?'), or of an absolute-form one. */
static struct slice target_path(const struct http_head *h)
{
    struct slice t = http_head_target(h), path;

    if (h->form == HTTP_FORM_ABSOLUTE) {
        const char *p = memchr(t.ptr, '/', t.len);
        /* skip "scheme://authority" */
        if (p && p + 1 < t.ptr + t.len && p[1] == '/')
            p = memchr(p + 2, '/', (size_t)(t.ptr + t.len - p - 2));
        t = p ? (struct slice){p, (size_t)(t.ptr + t.len - p)} : SLICE("/");
    }
    slice_split(t, '?', &path);
    return path;
}

static bool host_matches(const char *pattern, struct slice host)
{
    struct slice name;
    struct slice pat = slice_from_cstr(pattern);

    /* drop the port: "example.com:8080"; IPv6 literals keep their brackets */
    if (host.len && host.ptr[0] == '[') {
        const char *rb = memchr(host.ptr, ']', host.len);
        name = rb ? (struct slice){host.ptr, (size_t)(rb - host.ptr + 1)} : host;
    } else {
        slice_split(host, ':', &name);
    }
    if (pat.len > 2 && pat.ptr[0] == '*' && pat.ptr[1] == '.') {
        struct slice suffix = {pat.ptr + 1, pat.len - 1}; /* ".example.com" */
        return name.len > suffix.len &&
               slice_eq_nocase((struct slice){name.ptr + name.len - suffix.len, suffix.len},
                               suffix);
    }
    return slice_eq_nocase(name, pat);
}

static bool route_accepts(const struct proxy_route *r, const struct http_head *h, struct slice path)
{
    if (r->methods && !(r->methods & (1u << h->method))) return false;
    if (r->host && !host_matches(r->host, http_head_host(h))) return false;
    switch (r->path_kind) {
    case PROXY_PATH_ANY:
        break;
    case PROXY_PATH_EXACT:
        if (!slice_eq(path, slice_from_cstr(r->path))) return false;
        break;
    case PROXY_PATH_PREFIX:
        if (!slice_starts_with(path, slice_from_cstr(r->path))) return false;
        break;
    case PROXY_PATH_GLOB:
        if (!proxy_glob_match(r->path, path)) return false;
        break;
    }
    for (uint32_t i = 0; i < r->nheaders; i++) {
        struct slice v;
        if (!http_head_get(h, slice_from_cstr(r->headers[i].name), &v)) return false;
        if (r->headers[i].value && !slice_eq(v, slice_from_cstr(r->headers[i].value))) return false;
    }
    return true;
}

const struct proxy_route *proxy_route_match(const struct proxy_config *cfg,
                                            const struct http_head *h)
{
    struct slice path = target_path(h);

    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        if (route_accepts(&cfg->routes[i], h, path)) return &cfg->routes[i];
    }
    return NULL;
}
