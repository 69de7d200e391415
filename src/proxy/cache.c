/* SPDX-License-Identifier: MIT */
/* cache.c: a route's stale fallback, the last good answers to GETs that forward.c serves
 * when the cluster cannot answer.
 *
 * Whose copy: the key is the method, the Host (case-insensitive) and the target; on a route
 * with fallback.per_credential it also holds every Authorization and Cookie value, so each
 * credential has its own copy. On other routes a request carrying Authorization or Cookie is
 * neither stored nor served: one user's answer never reaches another. An answer carrying
 * Set-Cookie, Cache-Control private / no-store, a Content-Encoding or a Vary is never stored.
 *
 * Shape: a chained hash table (O(1) lookup, doubled when it holds more entries than buckets)
 * and an LRU list; max_total_bytes bounds the bytes of every entry together, the least
 * recently stored or served going first. An entry is ONE allocation: its header, key, content
 * type and body, built in place while the body streams (the capture buffer becomes the entry,
 * nothing is copied at store time), and a hit is written from it as is.
 *
 * Thread: one worker; every table belongs to one gw_route_rt of that worker. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

enum { CACHE_MIN_BUCKETS = 16 };

/* ------------------------------------------------------------------------------------------
 * The key: emitted as chunks by one walker, which hashing, building and comparing share.
 * Layout: method \0 host(lowercase) \0 target \0 then, per_credential only, for each
 * Authorization or Cookie field in order: 'A' or 'C', its value, \0. (Field values and targets
 * never hold NUL: the parser refuses it.)
 * ------------------------------------------------------------------------------------------ */
typedef void key_sink_fn(void *data, const char *p, size_t n);

static void emit_lower(key_sink_fn *sink, void *data, struct slice s)
{
    char tmp[64];

    while (s.len) {
        size_t n = SH_MIN(s.len, sizeof(tmp));
        for (size_t i = 0; i < n; i++) {
            char c = s.ptr[i];
            tmp[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
        sink(data, tmp, n);
        s.ptr += n;
        s.len -= n;
    }
}

static bool is_credential(struct slice name, char *tag)
{
    if (slice_eq_nocase(name, SLICE("authorization")))
        *tag = 'A';
    else if (slice_eq_nocase(name, SLICE("cookie")))
        *tag = 'C';
    else
        return false;
    return true;
}

static void key_walk(const struct proxy_fallback *fb, const struct http_head *req,
                     key_sink_fn *sink, void *data)
{
    struct slice m = http_head_method(req), t = http_head_target(req);
    char tag;

    sink(data, m.ptr, m.len);
    sink(data, "", 1);
    emit_lower(sink, data, http_head_host(req));
    sink(data, "", 1);
    sink(data, t.ptr, t.len);
    sink(data, "", 1);
    if (!fb->per_credential) return;
    for (uint32_t i = 0; i < req->nfields; i++) {
        if (!is_credential(http_field_name(req, i), &tag)) continue;
        struct slice v = http_field_value(req, i);
        sink(data, &tag, 1);
        sink(data, v.ptr, v.len);
        sink(data, "", 1);
    }
}

static void sink_hash(void *data, const char *p, size_t n)
{
    struct gw_cache_key *k = data;

    for (size_t i = 0; i < n; i++) { /* FNV-1a, 64 bits */
        k->h ^= (unsigned char)p[i];
        k->h *= 0x100000001b3ull;
    }
    k->len += n;
}

struct key_cmp {
    const char *at, *end;
    bool differs;
};

static void sink_cmp(void *data, const char *p, size_t n)
{
    struct key_cmp *k = data;

    if (k->differs || (size_t)(k->end - k->at) < n || memcmp(k->at, p, n) != 0) {
        k->differs = true;
        return;
    }
    k->at += n;
}

static void sink_buf(void *data, const char *p, size_t n)
{
    (void)buf_append(data, p, n); /* an error sticks in the buf */
}

/* FNV-1a from a per-table random basis: clients choose the keys, and a fixed hash would let
 * them pick targets that all land in one bucket. */
static struct gw_cache_key key_hash(uint64_t seed, const struct proxy_fallback *fb,
                                    const struct http_head *req)
{
    struct gw_cache_key k = {.h = 0xcbf29ce484222325ull ^ seed};

    key_walk(fb, req, sink_hash, &k);
    return k;
}

static uint64_t bytes_hash(uint64_t seed, const char *p, size_t n)
{
    struct gw_cache_key k = {.h = 0xcbf29ce484222325ull ^ seed};

    sink_hash(&k, p, n);
    return k.h;
}

/* ------------------------------------------------------------------------------------------
 * What may be cached
 * ------------------------------------------------------------------------------------------ */
bool proxy__cache_request_ok(const struct proxy_fallback *fb, const struct http_head *req)
{
    char tag;

    if (!fb->enabled || req->method != HTTP_M_GET) return false;
    if (fb->per_credential) return true;
    for (uint32_t i = 0; i < req->nfields; i++) {
        if (is_credential(http_field_name(req, i), &tag)) return false;
    }
    return true;
}

/* Whether a Cache-Control list holds the directive <name> (with or without "=value"). */
static bool has_directive(struct slice list, struct slice name)
{
    struct slice item;

    while (list.ptr) {
        list = slice_split(list, ',', &item);
        item = slice_trim(item);
        struct slice dname;
        (void)slice_split(item, '=', &dname);
        if (slice_eq_nocase(slice_trim(dname), name)) return true;
    }
    return false;
}

bool proxy__cache_response_ok(const struct http_head *resp)
{
    if (resp->status != 200) return false;
    for (uint32_t i = 0; i < resp->nfields; i++) {
        struct slice n = http_field_name(resp, i), v = http_field_value(resp, i);
        if (slice_eq_nocase(n, SLICE("set-cookie"))) return false;
        if (slice_eq_nocase(n, SLICE("cache-control")) &&
            (has_directive(v, SLICE("private")) || has_directive(v, SLICE("no-store"))))
            return false;
        /* the copy is served with its Content-Type only, to whoever asks: an encoded body
         * (gzip for a client that accepted it) or one that varies by request is not kept */
        if (slice_eq_nocase(n, SLICE("content-encoding")) &&
            !slice_eq_nocase(slice_trim(v), SLICE("identity")))
            return false;
        if (slice_eq_nocase(n, SLICE("vary"))) return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------
 * Capture: the buffer is laid out as the entry will be, so storing it is a hand-over.
 * ------------------------------------------------------------------------------------------ */
bool proxy__cache_capture_begin(struct buf *cap, const struct proxy_fallback *fb,
                                const struct http_head *req, const struct http_head *resp)
{
    struct gw_cache_entry hdr;
    struct slice ct;
    size_t head;

    buf_release(cap);
    if (!proxy__cache_request_ok(fb, req) || !proxy__cache_response_ok(resp)) return false;
    if (resp->body == HTTP_BODY_LENGTH && resp->content_length > fb->max_entry_bytes) return false;
    if (!http_head_get(resp, SLICE("content-type"), &ct)) ct = SLICE("application/octet-stream");
    memset(&hdr, 0, sizeof(hdr));
    hdr.ctype_len = ct.len;
    hdr.status = resp->status;
    struct gw_cache_key k = key_hash(0, fb, req); /* its length; the table hashes at store */
    hdr.key.len = k.len;
    head = sizeof(hdr) + hdr.key.len + ct.len + 1;
    *cap = BUF_INIT(head + fb->max_entry_bytes);
    if (buf_reserve(cap, head + (resp->body == HTTP_BODY_LENGTH ? resp->content_length : 0)) != 0)
        return false;
    (void)buf_append(cap, &hdr, sizeof(hdr));
    key_walk(fb, req, sink_buf, cap);
    (void)buf_appends(cap, ct);
    (void)buf_append(cap, "", 1);
    if (cap->err || cap->len != head) {
        buf_release(cap);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------
 * The table
 * ------------------------------------------------------------------------------------------ */
static void lru_unlink(struct gw_cache *c, struct gw_cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->newest = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->oldest = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(struct gw_cache *c, struct gw_cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->newest;
    if (c->newest) c->newest->lru_prev = e;
    c->newest = e;
    if (!c->oldest) c->oldest = e;
}

static struct gw_cache_entry **bucket_of(const struct gw_cache *c, uint64_t h)
{
    return &c->buckets[h & (c->nbuckets - 1)];
}

static void cache_remove(struct gw_cache *c, struct gw_cache_entry *e)
{
    struct gw_cache_entry **link = bucket_of(c, e->key.h);

    while (*link != e)
        link = &(*link)->hnext;
    *link = e->hnext;
    lru_unlink(c, e);
    c->bytes -= e->size;
    c->count--;
    sh_free(e);
}

static struct gw_cache_entry *lookup(const struct gw_cache *c, const struct proxy_fallback *fb,
                                     const struct http_head *req, struct gw_cache_key k)
{
    if (!c->nbuckets) return NULL;
    for (struct gw_cache_entry *e = *bucket_of(c, k.h); e; e = e->hnext) {
        if (e->key.h != k.h || e->key.len != k.len) continue;
        const char *data = proxy__cache_entry_key(e);
        struct key_cmp cmp = {.at = data, .end = data + e->key.len};
        key_walk(fb, req, sink_cmp, &cmp);
        if (!cmp.differs && cmp.at == cmp.end) return e;
    }
    return NULL;
}

/* Doubles the bucket array; on allocation failure the table stays as it is (longer chains). */
static void grow(struct gw_cache *c)
{
    uint32_t n = c->nbuckets ? c->nbuckets * 2 : CACHE_MIN_BUCKETS;
    struct gw_cache_entry **b = sh_calloc(n, sizeof(*b));

    if (!b) return;
    if (!c->nbuckets &&
        getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != (ssize_t)sizeof(c->seed))
        c->seed = sh_now_us() ^ (uint64_t)(uintptr_t)c;
    for (uint32_t i = 0; i < c->nbuckets; i++) {
        struct gw_cache_entry *e, *next;
        for (e = c->buckets[i]; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->key.h & (n - 1)];
            b[e->key.h & (n - 1)] = e;
        }
    }
    sh_free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

const struct gw_cache_entry *proxy__cache_find(struct gw_cache *c, const struct proxy_fallback *fb,
                                               const struct http_head *req, uint64_t now_ms)
{
    struct gw_cache_entry *e;

    if (!c->count || !proxy__cache_request_ok(fb, req)) return NULL;
    e = lookup(c, fb, req, key_hash(c->seed, fb, req));
    if (!e) return NULL;
    if (now_ms - e->stored_ms > fb->max_age_ms) {
        cache_remove(c, e);
        return NULL;
    }
    lru_unlink(c, e);
    lru_push(c, e);
    return e;
}

void proxy__cache_store(struct gw_cache *c, const struct proxy_fallback *fb, struct buf *cap,
                        uint64_t now_ms)
{
    struct gw_cache_entry *e, *old;
    size_t len, cap_bytes = cap->cap;
    char *p;

    if (cap->err || cap->len < sizeof(*e)) {
        buf_release(cap);
        return;
    }
    p = buf_detach(cap, &len);
    if (cap_bytes > len + 1 + len / 8) { /* a chunked body grew the buffer by doubling */
        char *q = sh_realloc(p, len + 1);
        if (q) p = q;
        cap_bytes = len + 1;
    }
    e = (struct gw_cache_entry *)(void *)p; /* malloc'd memory is aligned for any type */
    e->hnext = e->lru_prev = e->lru_next = NULL;
    e->body_len = len - sizeof(*e) - e->key.len - e->ctype_len - 1;
    e->stored_ms = now_ms;
    e->size = cap_bytes;
    if (e->size > fb->max_total_bytes) {
        sh_free(e);
        return;
    }
    if (c->count >= c->nbuckets) grow(c);
    if (!c->nbuckets) {
        sh_free(e);
        return;
    }
    e->key.h = bytes_hash(c->seed, proxy__cache_entry_key(e), e->key.len);
    /* a newer answer replaces the copy under the same key */
    for (old = *bucket_of(c, e->key.h); old; old = old->hnext) {
        if (old->key.h == e->key.h && old->key.len == e->key.len &&
            memcmp(proxy__cache_entry_key(old), proxy__cache_entry_key(e), e->key.len) == 0)
            break;
    }
    if (old) cache_remove(c, old);
    e->hnext = *bucket_of(c, e->key.h);
    *bucket_of(c, e->key.h) = e;
    lru_push(c, e);
    c->bytes += e->size;
    c->count++;
    while (c->bytes > fb->max_total_bytes && c->oldest && c->oldest != e)
        cache_remove(c, c->oldest);
}

void proxy__cache_release(struct gw_cache *c)
{
    struct gw_cache_entry *e, *next;

    for (e = c->newest; e; e = next) {
        next = e->lru_next;
        sh_free(e);
    }
    sh_free(c->buckets);
    memset(c, 0, sizeof(*c));
}
