/* SPDX-License-Identifier: MIT */
/* discovery.c: registry-fed clusters. For each watched service, a long poll on the control
 * plane's /v1/sd/endpoints/<service>?index=N&wait=30s (text lines "address:port weight"):
 * it answers at once when the passing set changed, so a change reaches the gateway in
 * milliseconds; the owner then rebuilds its config and publishes it to the workers.
 * Static stability: when the control plane is unreachable, the last endpoints stay in force
 * and polling retries every second until it answers again.
 * Thread: the control thread's loop. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

enum { POLL_WAIT_S = 30, RETRY_MS = 1000, MAX_BODY = 1 << 20 };

struct disc_service {
    struct disc_service *next;
    struct proxy_discovery *d;
    char *name;
    proxy_discovery_key_fn *on_key; /* a watched config key rather than a service */
    void *key_data;
    uint64_t index;
    struct buf body, pending; /* the last good answer; the one arriving */
    bool known, polling;
    uint16_t status;
    uv_timer_t retry;
    struct http_creq *cr;
};

struct proxy_discovery {
    uv_loop_t *loop;
    struct http_client *client;
    struct sockaddr_storage addr;
    char host[96];
    char auth[SH_TOKEN_MAX_LEN + 8]; /* "Bearer <token>" */
    proxy_discovery_fn *on_change;
    void *data;
    struct disc_service *services;
    int open_handles;
    bool freeing;
};

static void poll_service(struct disc_service *s);

static void retry_cb(uv_timer_t *t)
{
    poll_service(t->data);
}

static void poll_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct disc_service *s = data;
    struct slice v;
    uint64_t idx;

    (void)cr;
    s->status = h->status;
    if (h->status == 200 && http_head_get(h, SLICE("x-consul-index"), &v) &&
        slice_to_u64(v, &idx) == 0)
        s->index = idx;
}

static void poll_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct disc_service *s = data;

    (void)cr;
    buf_appends(&s->pending, chunk);
}

static void poll_done(struct http_creq *cr, int rc, void *data)
{
    struct disc_service *s = data;
    struct proxy_discovery *d = s->d;

    (void)cr;
    s->cr = NULL;
    s->polling = false;
    if (d->freeing) return;
    if (rc == 0 && s->on_key && s->status == 404) {
        /* the key does not exist (yet): wait for it to appear */
        buf_reset(&s->pending);
        poll_service(s);
        return;
    }
    if (rc == 0 && s->status == 200 && s->pending.err == 0) {
        bool changed = !s->known || !slice_eq(buf_slice(&s->pending), buf_slice(&s->body));
        struct buf tmp = s->body;
        s->body = s->pending;
        s->pending = tmp;
        buf_reset(&s->pending);
        s->known = true;
        if (changed && s->on_key) {
            SH_LOG(SH_INFO, "proxy", "config key changed", LF_STR("key", s->name),
                   LF_UINT("index", s->index));
            s->on_key(s->key_data, s->name, buf_slice(&s->body));
        } else if (changed) {
            SH_LOG(SH_INFO, "proxy", "service endpoints changed", LF_STR("service", s->name),
                   LF_UINT("index", s->index));
            d->on_change(d->data);
        }
        poll_service(s);
        return;
    }
    buf_reset(&s->pending);
    /* keep what we had (static stability) and try again soon */
    SH_LOG(SH_WARN, "proxy", "control plane poll failed; keeping the last endpoints",
           LF_STR("service", s->name), LF_ERR("err", rc), LF_UINT("status", s->status));
    s->index = 0;
    uv_timer_start(&s->retry, retry_cb, RETRY_MS, 0);
}

static const struct http_creq_handlers poll_handlers = {
    .on_head = poll_head, .on_body = poll_body, .on_done = poll_done};

static void poll_service(struct disc_service *s)
{
    struct proxy_discovery *d = s->d;
    char target[512];
    struct http_out_field f[1];
    size_t nf = 0;

    if (s->polling || d->freeing) return;
    snprintf(target, sizeof(target),
             s->on_key ? "/v1/kv/%s?raw&index=%llu&wait=%ds"
                       : "/v1/sd/endpoints/%s?index=%llu&wait=%ds",
             s->name, (unsigned long long)s->index, POLL_WAIT_S);
    if (d->auth[0])
        f[nf++] = (struct http_out_field){SLICE("Authorization"), slice_from_cstr(d->auth)};
    struct http_request_desc desc = {
        .addr = (const struct sockaddr *)&d->addr,
        .method = SLICE("GET"),
        .target = slice_from_cstr(target),
        .host = slice_from_cstr(d->host),
        .fields = f,
        .nfields = nf,
        .response_timeout_ms = (POLL_WAIT_S + 10) * 1000,
    };
    s->status = 0;
    buf_reset(&s->pending);
    if (http_client_request(d->client, &desc, &poll_handlers, s, &s->cr) < 0) {
        uv_timer_start(&s->retry, retry_cb, RETRY_MS, 0);
        return;
    }
    s->polling = true;
}

int proxy_discovery_new(uv_loop_t *loop, const char *address, const char *token,
                        proxy_discovery_fn *on_change, void *data, struct proxy_discovery **out,
                        struct sh_diag *diag)
{
    struct proxy_discovery *d = sh_calloc(1, sizeof(*d));
    int rc;

    *out = NULL;
    if (!d) return SH_ENOMEM;
    if (token && strlen(token) > SH_TOKEN_MAX_LEN) {
        sh_diag_set(diag, "control_plane.token", "the token is longer than %d characters",
                    SH_TOKEN_MAX_LEN);
        sh_free(d);
        return SH_ETOOBIG;
    }
    rc = sh_addr_parse(address, &d->addr, diag);
    if (rc < 0) {
        sh_free(d);
        return rc;
    }
    rc = http_client_new(loop, &(struct http_client_config){.max_idle_per_host = 64}, &d->client);
    if (rc < 0) {
        sh_free(d);
        return rc;
    }
    d->loop = loop;
    d->on_change = on_change;
    d->data = data;
    snprintf(d->host, sizeof(d->host), "%s", address);
    if (token && *token) snprintf(d->auth, sizeof(d->auth), "Bearer %s", token);
    *out = d;
    return 0;
}

static struct disc_service *find(struct proxy_discovery *d, const char *name)
{
    for (struct disc_service *s = d->services; s; s = s->next) {
        if (strcmp(s->name, name) == 0 && !s->on_key) return s;
    }
    return NULL;
}

static int watch(struct proxy_discovery *d, const char *service, proxy_discovery_key_fn *on_key,
                 void *key_data)
{
    struct disc_service *s = find(d, service);

    if (s) return 0;
    s = sh_calloc(1, sizeof(*s));
    if (!s) return SH_ENOMEM;
    s->name = sh_strdup(service);
    if (!s->name) {
        sh_free(s);
        return SH_ENOMEM;
    }
    s->d = d;
    s->on_key = on_key;
    s->key_data = key_data;
    s->body = BUF_INIT(MAX_BODY);
    s->pending = BUF_INIT(MAX_BODY);
    uv_timer_init(d->loop, &s->retry);
    s->retry.data = s;
    d->open_handles++;
    s->next = d->services;
    d->services = s;
    poll_service(s);
    return 0;
}

int proxy_discovery_watch(struct proxy_discovery *d, const char *service)
{
    return watch(d, service, NULL, NULL);
}

int proxy_discovery_watch_key(struct proxy_discovery *d, const char *key,
                              proxy_discovery_key_fn *fn, void *data)
{
    return watch(d, key, fn, data);
}

int proxy_discovery_endpoints(struct proxy_discovery *d, const char *service, struct arena *a,
                              struct proxy_endpoint **out, uint32_t *count)
{
    struct disc_service *s = d ? find(d, service) : NULL;
    struct slice rest, line;
    uint32_t n = 0, cap = 0;

    *out = NULL;
    *count = 0;
    if (!s || !s->known) return 0;
    for (size_t i = 0; i < s->body.len; i++)
        cap += s->body.data[i] == '\n';
    *out = arena_alloc(a, (cap + 1) * sizeof(**out));
    if (!*out) return SH_ENOMEM;
    rest = buf_slice(&s->body);
    while (rest.ptr && rest.len) {
        struct slice addr, w, gen;
        uint64_t weight = 1, generation = 0;
        char text[128];
        rest = slice_split(rest, '\n', &line);
        w = slice_split(line, ' ', &addr);
        gen = w.ptr ? slice_split(w, ' ', &w) : w;
        if (addr.len == 0 || addr.len >= sizeof(text)) continue;
        if (w.ptr && (slice_to_u64(w, &weight) != 0 || weight == 0 || weight > 1000)) weight = 1;
        if (gen.ptr && slice_to_u64(gen, &generation) != 0) generation = 0;
        memcpy(text, addr.ptr, addr.len);
        text[addr.len] = '\0';
        struct proxy_endpoint *ep = &(*out)[n];
        memset(ep, 0, sizeof(*ep));
        if (sh_addr_parse(text, &ep->addr, NULL) != 0)
            continue; /* a hostname: not resolvable here, skipped */
        ep->name = arena_strndup(a, text, addr.len);
        if (!ep->name) return SH_ENOMEM;
        ep->weight = (uint32_t)weight;
        ep->generation = generation;
        n++;
    }
    *count = n;
    return 0;
}

static void service_closed(uv_handle_t *h)
{
    struct disc_service *s = h->data;
    struct proxy_discovery *d = s->d;

    buf_release(&s->body);
    buf_release(&s->pending);
    sh_free(s->name);
    sh_free(s);
    if (--d->open_handles == 0) sh_free(d);
}

void proxy_discovery_free(struct proxy_discovery *d)
{
    struct disc_service *s, *next;

    if (!d) return;
    d->freeing = true;
    for (s = d->services; s; s = next) {
        next = s->next;
        if (s->cr) http_creq_cancel(s->cr);
        s->cr = NULL;
        uv_close((uv_handle_t *)&s->retry, service_closed);
    }
    http_client_free(d->client);
    if (d->open_handles == 0) sh_free(d);
}
