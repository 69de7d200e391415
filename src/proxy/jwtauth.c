/* SPDX-License-Identifier: MIT */
/* jwtauth.c: JWT at the edge. On a worker: the token of a request on a route with `jwt` (from
 * Authorization: Bearer, another header or a cookie), checked by security's verifier against the
 * route's keys, answered with 401 + WWW-Authenticate (RFC 6750) when refused; verified tokens
 * kept in a per-worker cache so the signature check is skipped on a hit. On the control thread:
 * the JWKS of jwks_url routes, fetched, refreshed and published to the workers as a snapshot.
 *
 * Threads: proxy__jwt_check and the cache run on the worker that owns them; the sources, the
 * fetches and the keys snapshot belong to the control thread, except a source's `want` flag,
 * which workers set (an atomic) before waking the control thread. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

/* A fetched key set, shared by the snapshots that list it (refs: control thread only). */
struct gw_keyset {
    struct sec_jwks *ks;
    uint64_t id; /* unique per gateway: cache entries remember which set verified them */
    uint32_t refs;
};

/* The published object: every source and its current set. */
struct gw_keys {
    uint32_t n;
    struct gw_keys_item {
        struct gw_jwks_source *src;
        struct gw_keyset *set; /* NULL: not fetched yet */
    } items[];
};

/* ------------------------------------------------------------------------------------------
 * The cache of verified tokens (worker)
 * ------------------------------------------------------------------------------------------ */
/* One allocation: this header, the token's bytes, then each value and its NUL. */
struct gw_jwt_entry {
    struct gw_jwt_entry *hnext;
    struct gw_jwt_entry *newer, *older;
    uint64_t h, keys_id, expires_s;
    size_t token_len, size;
    uint32_t nvalues;
    uint16_t value_len[SEC_JWT_MAX_EXTRACT]; /* UINT16_MAX: the claim is absent */
    char data[];
};

static uint64_t token_hash(const struct gw_jwt_cache *c, struct slice t)
{
    uint64_t h = 0xcbf29ce484222325ull ^ c->seed;

    for (size_t i = 0; i < t.len; i++) {
        h ^= (unsigned char)t.ptr[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static void lru_unlink(struct gw_jwt_cache *c, struct gw_jwt_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct gw_jwt_cache *c, struct gw_jwt_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest) c->newest->newer = e;
    c->newest = e;
    if (!c->oldest) c->oldest = e;
}

static void entry_drop(struct gw_jwt_cache *c, struct gw_jwt_entry *e)
{
    struct gw_jwt_entry **pp = &c->buckets[e->h & (c->nbuckets - 1)];

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    lru_unlink(c, e);
    c->count--;
    c->bytes -= e->size;
    sh_free(e);
}

void proxy__jwt_cache_release(struct gw_jwt_cache *c)
{
    while (c->oldest)
        entry_drop(c, c->oldest);
    sh_free(c->buckets);
    *c = (struct gw_jwt_cache){0};
}

static struct gw_jwt_entry *cache_find(struct gw_jwt_cache *c, struct slice token, uint64_t h)
{
    struct gw_jwt_entry *e;

    if (!c->nbuckets) return NULL;
    for (e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext) {
        if (e->h == h && e->token_len == token.len && memcmp(e->data, token.ptr, token.len) == 0)
            return e;
    }
    return NULL;
}

static void cache_store(struct gw_jwt_cache *c, uint32_t max_entries, struct slice token,
                        uint64_t h, uint64_t keys_id, uint64_t expires_s,
                        const struct sec_jwt_result *res, uint32_t nvalues)
{
    size_t size = sizeof(struct gw_jwt_entry) + token.len, off;
    struct gw_jwt_entry *e;

    if (max_entries == 0) return;
    if (!c->nbuckets) {
        uint32_t n = 16;
        while (n < max_entries && n < (1u << 16))
            n <<= 1;
        c->buckets = sh_calloc(n, sizeof(*c->buckets));
        if (!c->buckets) return;
        c->nbuckets = n;
    }
    for (uint32_t i = 0; i < nvalues; i++)
        size += res->values[i] ? strlen(res->values[i]) + 1 : 0;
    while (c->oldest && (c->count >= max_entries || c->bytes + size > GW_JWT_CACHE_BYTES))
        entry_drop(c, c->oldest);
    e = sh_malloc(size);
    if (!e) return; /* a cache: nothing is lost but the next hit */
    memset(e, 0, sizeof(*e));
    e->h = h;
    e->keys_id = keys_id;
    e->expires_s = expires_s;
    e->token_len = token.len;
    e->size = size;
    e->nvalues = nvalues;
    memcpy(e->data, token.ptr, token.len);
    off = token.len;
    for (uint32_t i = 0; i < nvalues; i++) {
        if (!res->values[i]) {
            e->value_len[i] = UINT16_MAX;
            continue;
        }
        size_t len = strlen(res->values[i]);
        e->value_len[i] = (uint16_t)len; /* SEC_JWT_VALUE_MAX bounds it */
        memcpy(e->data + off, res->values[i], len + 1);
        off += len + 1;
    }
    e->hnext = c->buckets[h & (c->nbuckets - 1)];
    c->buckets[h & (c->nbuckets - 1)] = e;
    lru_push(c, e);
    c->count++;
    c->bytes += size;
}

/* ------------------------------------------------------------------------------------------
 * The check (worker)
 * ------------------------------------------------------------------------------------------ */
bool proxy__jwt_strips(const struct proxy_jwt *j, struct slice name)
{
    for (uint32_t i = 0; i < j->nclaims_to_headers; i++) {
        if (slice_eq_nocase(name, slice_from_cstr(j->claims_to_headers[i].value))) return true;
    }
    if (j->forward_token) return false;
    if (j->from == PROXY_JWT_FROM_BEARER) return slice_eq_nocase(name, SLICE("authorization"));
    if (j->from == PROXY_JWT_FROM_HEADER)
        return slice_eq_nocase(name, slice_from_cstr(j->from_name));
    return false;
}

/* "Bearer <token>" (the scheme in any case, then spaces): the token, or SLICE_NULL. */
static struct slice bearer(struct slice v)
{
    v = slice_trim(v);
    if (v.len < 7 || !slice_eq_nocase((struct slice){v.ptr, 6}, SLICE("bearer")) ||
        (v.ptr[6] != ' ' && v.ptr[6] != '\t'))
        return SLICE_NULL;
    return slice_trim((struct slice){v.ptr + 7, v.len - 7});
}

enum token_found { TOKEN_NONE = 0, TOKEN_FOUND, TOKEN_AMBIGUOUS };

static enum token_found find_token(const struct proxy_jwt *j, const struct http_head *h,
                                   struct slice *out)
{
    struct slice v;
    uint32_t seen = 0;

    *out = SLICE_NULL;
    switch (j->from) {
    case PROXY_JWT_FROM_BEARER:
        /* two Authorization fields: which one would the upstream read? refuse */
        for (uint32_t i = 0; i < h->nfields; i++) {
            if (!slice_eq_nocase(http_field_name(h, i), SLICE("authorization"))) continue;
            if (++seen > 1) return TOKEN_AMBIGUOUS;
            *out = bearer(http_field_value(h, i));
        }
        break;
    case PROXY_JWT_FROM_HEADER:
        if (http_head_get(h, slice_from_cstr(j->from_name), &v)) {
            struct slice b = bearer(v);
            *out = b.ptr ? b : slice_trim(v);
        }
        break;
    case PROXY_JWT_FROM_COOKIE: {
        struct slice rest, item, name = slice_from_cstr(j->from_name);
        if (!http_head_get(h, SLICE("cookie"), &rest)) break;
        while (rest.ptr) {
            rest = slice_split(rest, ';', &item);
            item = slice_trim(item);
            struct slice k, val = slice_split(item, '=', &k);
            if (val.ptr && slice_eq(k, name)) {
                *out = val;
                break;
            }
        }
        break;
    }
    }
    return out->ptr ? TOKEN_FOUND : TOKEN_NONE;
}

/* The realm as a quoted-string body: the route's name or the configured realm, with quotes and
 * backslashes replaced (they never reach a header). */
static void realm_text(const struct proxy_jwt *j, char *out, size_t n)
{
    size_t i = 0;

    for (const char *p = j->realm ? j->realm : "shoal"; *p && i + 1 < n; p++)
        out[i++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '_' : *p;
    out[i] = '\0';
}

static void refuse(struct gw_jwt_outcome *out, const struct proxy_jwt *j, int status,
                   const char *error, enum sec_jwt_status why, const char *detail)
{
    char realm[128];

    realm_text(j, realm, sizeof(realm));
    out->status = status;
    out->why = why;
    if (!error) /* no credentials: RFC 6750 3.1 says no error code */
        snprintf(out->www_authenticate, sizeof(out->www_authenticate), "Bearer realm=\"%s\"",
                 realm);
    else
        snprintf(out->www_authenticate, sizeof(out->www_authenticate),
                 "Bearer realm=\"%s\", error=\"%s\", error_description=\"%s\"", realm, error,
                 detail);
    /* detail is the verifier's `why`, or ours: printable ASCII without quotes or backslashes */
    snprintf(out->body, sizeof(out->body),
             "{\"error\":\"%s\",\"reason\":\"%s\",\"detail\":\"%s\"}\n",
             error ? error : "unauthorized",
             why != SEC_JWT_OK ? sec_jwt_status_name(why)
                               : (status == 503 ? "no_keys" : "missing_token"),
             detail);
}

/* The worker's view of the key set fetched for url (NULL: none yet); *src its source. */
static const struct gw_keyset *url_keys(struct gw_worker *w, const char *url,
                                        struct gw_jwks_source **src)
{
    const struct gw_keys *k;

    *src = NULL;
    if (!w->keys_reader) return NULL;
    if (!w->keys_snap || snap_version(w->gw->keys_dom) != w->keys_version) {
        struct snap *s = snap_acquire(w->keys_reader);
        if (s) {
            snap_release(w->keys_snap);
            w->keys_snap = s;
            w->keys_version = s->version;
        }
    }
    if (!w->keys_snap) return NULL;
    k = w->keys_snap->obj;
    for (uint32_t i = 0; k && i < k->n; i++) {
        if (strcmp(k->items[i].src->url, url) == 0) {
            *src = k->items[i].src;
            return k->items[i].set;
        }
    }
    return NULL;
}

/* Asks the control thread for a fetch of src (it decides when: rate-limited). */
static void want_refresh(struct gw_worker *w, struct gw_jwks_source *src)
{
    if (!src || atomic_exchange(&src->want, true)) return; /* already asked */
    uv_async_send(&w->gw->jwks_wake);
}

static bool copy_values(struct gw_jwt_outcome *out, const struct proxy_jwt *j, struct arena *a,
                        const char *const *values, const size_t *lens)
{
    out->nfields = 0;
    for (uint32_t i = 0; i < j->nclaims_to_headers; i++) {
        if (!values[i]) continue;
        char *v = arena_strndup(a, values[i], lens[i]);
        if (!v) return false;
        out->fields[out->nfields++] = (struct http_out_field){
            slice_from_cstr(j->claims_to_headers[i].value), (struct slice){v, lens[i]}};
    }
    return true;
}

void proxy__jwt_check(struct gw_worker *w, struct gw_route_rt *rr, const struct proxy_route *rt,
                      const struct http_head *h, struct arena *a, uint64_t now_s,
                      struct gw_jwt_outcome *out)
{
    const struct proxy_jwt *j = rt->jwt;
    const struct sec_jwks *sets[2];
    const struct gw_keyset *uk = NULL;
    struct gw_jwks_source *src = NULL;
    struct sec_jwt_result res;
    struct slice token;
    const char *values[SEC_JWT_MAX_EXTRACT];
    size_t lens[SEC_JWT_MAX_EXTRACT];
    size_t nsets = 0;
    uint64_t hash = 0, keys_id = 0;
    char detail[64];

    out->status = 0;
    out->why = SEC_JWT_OK;
    out->nfields = 0;
    out->cache_hit = false;
    switch (find_token(j, h, &token)) {
    case TOKEN_NONE:
        refuse(out, j, 401, NULL, SEC_JWT_OK, "a bearer token is required");
        return;
    case TOKEN_AMBIGUOUS:
        refuse(out, j, 400, "invalid_request", SEC_JWT_OK, "more than one Authorization field");
        return;
    case TOKEN_FOUND:
        break;
    }
    if (token.len > SEC_JWT_MAX_TOKEN) {
        snprintf(detail, sizeof(detail), "the token is over %d bytes", SEC_JWT_MAX_TOKEN);
        refuse(out, j, 401, "invalid_token", SEC_JWT_TOO_BIG, detail);
        return;
    }
    if (j->file_keys) sets[nsets++] = j->file_keys;
    if (j->jwks_url) {
        uk = url_keys(w, j->jwks_url, &src);
        if (uk) {
            sets[nsets++] = uk->ks;
            keys_id = uk->id;
        } else {
            want_refresh(w, src);
        }
    }
    if (j->secret_keys) sets[nsets++] = j->secret_keys;
    if (nsets == 0) {
        refuse(out, j, 503, "temporarily_unavailable", SEC_JWT_OK,
               "the signing keys are not available yet");
        return;
    }
    if (j->cache_entries) {
        struct gw_jwt_entry *e;
        if (!rr->jwt_cache.seed) rr->jwt_cache.seed = proxy_rand(&w->rng) | 1;
        hash = token_hash(&rr->jwt_cache, token);
        e = cache_find(&rr->jwt_cache, token, hash);
        if (e && (e->expires_s <= now_s || e->keys_id != keys_id)) {
            entry_drop(&rr->jwt_cache, e); /* expired, or verified with keys now replaced */
            e = NULL;
        }
        if (e) {
            size_t off = e->token_len;
            for (uint32_t i = 0; i < e->nvalues; i++) {
                values[i] = NULL;
                if (e->value_len[i] == UINT16_MAX) continue;
                values[i] = e->data + off;
                lens[i] = e->value_len[i];
                off += lens[i] + 1;
            }
            lru_unlink(&rr->jwt_cache, e);
            lru_push(&rr->jwt_cache, e);
            rr->jwt_cache.hits++;
            out->cache_hit = true;
            if (!copy_values(out, j, a, values, lens))
                refuse(out, j, 503, "temporarily_unavailable", SEC_JWT_OK, "out of memory");
            return;
        }
        rr->jwt_cache.misses++;
    }
    if (sec_jwt_verify(sets, nsets, token, &j->policy, (int64_t)now_s, &res) != SEC_JWT_OK) {
        if (res.status == SEC_JWT_UNKNOWN_KID) want_refresh(w, src); /* a rotation? */
        refuse(out, j, 401, "invalid_token", res.status, res.why);
        return;
    }
    for (uint32_t i = 0; i < j->nclaims_to_headers; i++) {
        values[i] = res.values[i];
        lens[i] = values[i] ? strlen(values[i]) : 0;
    }
    if (!copy_values(out, j, a, values, lens)) {
        refuse(out, j, 503, "temporarily_unavailable", SEC_JWT_OK, "out of memory");
        return;
    }
    if (j->cache_entries) {
        uint64_t until = res.has_exp ? (uint64_t)SH_MAX(res.exp_s, 0) + j->leeway_ms / 1000
                                     : now_s + GW_JWT_CACHE_NO_EXP_S;
        if (res.has_exp && until > now_s + 86400) until = now_s + 86400; /* re-check daily */
        cache_store(&rr->jwt_cache, j->cache_entries, token, hash, keys_id, until, &res,
                    j->nclaims_to_headers);
    }
}

/* ------------------------------------------------------------------------------------------
 * JWKS from URLs (control thread)
 * ------------------------------------------------------------------------------------------ */
static void keyset_unref(struct gw_keyset *set)
{
    if (!set || --set->refs > 0) return;
    sec_jwks_free(set->ks);
    sh_free(set);
}

static void keys_free(void *obj, void *data)
{
    struct gw_keys *k = obj;

    (void)data;
    for (uint32_t i = 0; k && i < k->n; i++)
        keyset_unref(k->items[i].set);
    sh_free(k);
}

/* Publishes every source with its current set. */
static int keys_publish(struct proxy_gateway *gw)
{
    uint32_t n = 0;
    struct gw_keys *k;

    for (struct gw_jwks_source *s = gw->jwks_sources; s; s = s->next)
        n++;
    k = sh_calloc(1, sizeof(*k) + n * sizeof(k->items[0]));
    if (!k) return SH_ENOMEM;
    for (struct gw_jwks_source *s = gw->jwks_sources; s; s = s->next) {
        k->items[k->n].src = s;
        k->items[k->n].set = s->set;
        if (s->set) s->set->refs++;
        k->n++;
    }
    if (snap_publish(gw->keys_dom, k) < 0) {
        keys_free(k, NULL);
        return SH_ENOMEM;
    }
    return 0;
}

static void fetch_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct gw_jwks_source *s = data;

    (void)cr;
    s->status = h->status;
}

static void fetch_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct gw_jwks_source *s = data;

    (void)cr;
    (void)buf_appends(&s->body, chunk); /* past SEC_JWKS_MAX_BYTES + 1 the error sticks */
}

static void fetch_done(struct http_creq *cr, int rc, void *data)
{
    struct gw_jwks_source *s = data;
    struct proxy_gateway *gw = s->gw;
    struct sec_jwks *ks = NULL;
    struct gw_keyset *set;
    struct sh_diag d = {{0}, {0}};
    uint64_t now = uv_now(gw->loop);

    (void)cr;
    s->cr = NULL;
    s->next_fetch_ms = now + s->refresh_ms;
    if (rc == 0 && s->status != 200) {
        sh_diag_set(&d, "jwks", "the server answered %u", s->status);
        rc = SH_EPARSE;
    } else if (rc == 0 && s->body.err) {
        sh_diag_set(&d, "jwks", "over %d bytes", SEC_JWKS_MAX_BYTES);
        rc = SH_ETOOBIG;
    } else if (rc == 0) {
        rc = sec_jwks_parse(buf_slice(&s->body), &ks, &d);
    } else {
        sh_diag_set(&d, "jwks", "%s", sh_strerror(rc));
    }
    buf_release(&s->body);
    if (rc < 0) {
        s->failures++;
        /* keep the keys we have; try again sooner than a refresh */
        s->next_fetch_ms = now + SH_MAX(s->min_refresh_ms, 1000);
        SH_LOG(SH_WARN, "proxy", "JWKS fetch failed; keeping the keys we have",
               LF_STR("url", s->url), LF_STR("where", d.where), LF_STR("what", d.what));
        return;
    }
    set = sh_calloc(1, sizeof(*set));
    if (!set) {
        sec_jwks_free(ks);
        return;
    }
    set->ks = ks;
    set->id = ++gw->jwks_next_id;
    set->refs = 1; /* the source's */
    keyset_unref(s->set);
    s->set = set;
    if (keys_publish(gw) < 0) return; /* workers keep the previous set until the next fetch */
    SH_LOG(SH_INFO, "proxy", "JWKS fetched", LF_STR("url", s->url),
           LF_UINT("keys", sec_jwks_count(ks)), LF_UINT("skipped", sec_jwks_skipped(ks)));
}

static const struct http_creq_handlers fetch_handlers = {
    .on_head = fetch_head, .on_body = fetch_body, .on_done = fetch_done};

static void fetch(struct proxy_gateway *gw, struct gw_jwks_source *s, uint64_t now)
{
    struct http_out_field fl[2] = {{SLICE("User-Agent"), SLICE("shoal-gateway")},
                                   {SLICE("Accept"), SLICE("application/json")}};
    struct http_request_desc d = {
        .addr = (const struct sockaddr *)&s->addr,
        .method = SLICE("GET"),
        .target = slice_from_cstr(s->path),
        .host = slice_from_cstr(s->host),
        .fields = fl,
        .nfields = 2,
        .response_timeout_ms = 5000,
        .total_timeout_ms = 10000,
    };

    s->last_fetch_ms = now;
    s->status = 0;
    s->body = BUF_INIT(SEC_JWKS_MAX_BYTES + 1);
    s->fetches++;
    if (http_client_request(gw->health_client, &d, &fetch_handlers, s, &s->cr) < 0) {
        s->cr = NULL;
        s->failures++;
        s->next_fetch_ms = now + SH_MAX(s->min_refresh_ms, 1000);
    }
}

/* Starts what is due: a first fetch, a refresh, or a fetch a worker asked for once
 * min_refresh_ms has passed since the last one (a flood of unknown kids costs one fetch per
 * min_refresh_ms, not one per request). */
static void jwks_tick(struct proxy_gateway *gw)
{
    uint64_t now = uv_now(gw->loop);

    if (gw->stopping || !gw->health_client) return;
    for (struct gw_jwks_source *s = gw->jwks_sources; s; s = s->next) {
        bool asked = atomic_load(&s->want) && now >= s->last_fetch_ms + s->min_refresh_ms;
        if (s->cr || !(asked || now >= s->next_fetch_ms)) continue;
        atomic_store(&s->want, false);
        fetch(gw, s, now);
    }
}

static void jwks_timer_cb(uv_timer_t *t)
{
    jwks_tick(t->data);
}

static void jwks_wake_cb(uv_async_t *a)
{
    jwks_tick(a->data);
}

int proxy__jwks_init(struct proxy_gateway *gw)
{
    return snap_domain_new(keys_free, NULL, &gw->keys_dom);
}

void proxy__jwks_sync(struct proxy_gateway *gw, const struct proxy_config *cfg)
{
    bool added = false;

    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        const struct proxy_jwt *j = cfg->routes[i].jwt;
        struct gw_jwks_source *s;
        if (!j || !j->jwks_url) continue;
        for (s = gw->jwks_sources; s && strcmp(s->url, j->jwks_url) != 0; s = s->next)
            ;
        if (s) { /* the latest config's timings win */
            s->refresh_ms = j->refresh_ms;
            s->min_refresh_ms = j->min_refresh_ms;
            continue;
        }
        s = sh_calloc(1, sizeof(*s));
        if (!s) continue; /* its requests answer 503 until a reload brings memory */
        s->url = sh_strdup(j->jwks_url);
        s->host = sh_strdup(j->url_host);
        s->path = sh_strdup(j->url_path);
        if (!s->url || !s->host || !s->path) {
            sh_free(s->url);
            sh_free(s->host);
            sh_free(s->path);
            sh_free(s);
            continue;
        }
        s->gw = gw;
        s->addr = j->url_addr;
        s->refresh_ms = j->refresh_ms;
        s->min_refresh_ms = j->min_refresh_ms;
        atomic_init(&s->want, false);
        s->next = gw->jwks_sources;
        gw->jwks_sources = s;
        added = true;
    }
    if (added) (void)keys_publish(gw); /* workers find the new sources (without keys yet) */
}

void proxy__jwks_stop(struct proxy_gateway *gw)
{
    for (struct gw_jwks_source *s = gw->jwks_sources; s; s = s->next) {
        if (s->cr) http_creq_cancel(s->cr);
        s->cr = NULL;
        buf_release(&s->body);
    }
}

void proxy__jwks_free(struct proxy_gateway *gw)
{
    struct gw_jwks_source *s;

    proxy__jwks_stop(gw);
    snap_domain_free(gw->keys_dom); /* the snapshots' references to the sets */
    gw->keys_dom = NULL;
    while ((s = gw->jwks_sources) != NULL) {
        gw->jwks_sources = s->next;
        keyset_unref(s->set);
        sh_free(s->url);
        sh_free(s->host);
        sh_free(s->path);
        sh_free(s);
    }
}

void proxy__jwks_handles_init(struct proxy_gateway *gw)
{
    uv_timer_init(gw->loop, &gw->jwks_timer);
    gw->jwks_timer.data = gw;
    uv_async_init(gw->loop, &gw->jwks_wake, jwks_wake_cb);
    gw->jwks_wake.data = gw;
}

void proxy__jwks_start(struct proxy_gateway *gw)
{
    uv_timer_start(&gw->jwks_timer, jwks_timer_cb, 0, 250);
    uv_unref((uv_handle_t *)&gw->jwks_timer);
}
