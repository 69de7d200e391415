/* SPDX-License-Identifier: MIT */
/* config_doc.c: reading the gateway's configuration from a document tree (the YAML file),
 * with every error reported as "file:line:col: path: problem". docs/gateway.md is the user's
 * reference for these keys; keep the two in step. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reading context: the config being filled and where errors go. */
struct rd {
    struct proxy_config *cfg;
    const struct proxy_resolver *res;
    struct sh_diag *d;
    char path[128];
};

/* The path of a key, for messages, in the reader's buffer. */
#define pathf(r, ...) sh_fmt((r)->path, sizeof((r)->path), __VA_ARGS__)

/* An error at node n of this reader's document (the path is part of the message). */
#define fail_at(r, n, ...) sh_node_fail((r)->d, (n), NULL, __VA_ARGS__)

static char *cfg_dup(struct rd *r, const char *s)
{
    return arena_strndup(&r->cfg->arena, s, strlen(s));
}

static int get_str(struct rd *r, const struct sh_node *n, const char *path, const char **out)
{
    const char *s;

    SH_TRY(sh_node_str(n, path, &s, r->d));
    *out = cfg_dup(r, s);
    return *out ? 0 : SH_ENOMEM;
}

static int get_u32(struct rd *r, const struct sh_node *n, const char *path, uint64_t min,
                   uint64_t max, uint32_t *out)
{
    uint64_t v;

    SH_TRY(sh_node_u64(n, path, min, max, &v, r->d));
    *out = (uint32_t)v;
    return 0;
}

static int get_ms(struct rd *r, const struct sh_node *n, const char *path, uint32_t *out)
{
    uint64_t v;

    SH_TRY(sh_node_duration_ms(n, path, &v, r->d));
    if (v > UINT32_MAX) return fail_at(r, n, "%s: duration too long (at most about 49 days)", path);
    *out = (uint32_t)v;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Policies (shared by clusters and routes): schema tables (core's sh_schema_read), so limits,
 * unknown keys and the paths in errors work the same here and in the manifest, whose
 * `resilience` sections become these maps (named by the path the user wrote: node origins).
 * ------------------------------------------------------------------------------------------ */
static int check_timeouts(const struct sh_node *m, const char *path, void *obj, void *ctx,
                          struct sh_diag *d)
{
    const struct proxy_timeouts *t = obj;

    (void)ctx;
    if (t->connect_ms == 0 || t->per_try_ms == 0 || t->request_ms == 0)
        return sh_node_fail(d, m, path, "timeouts must be above 0");
    return 0;
}

static const struct sh_field timeouts_fields[] = {
    {"connect", SH_FIELD_MS, offsetof(struct proxy_timeouts, connect_ms), 0, 0, NULL, NULL},
    {"per_try", SH_FIELD_MS, offsetof(struct proxy_timeouts, per_try_ms), 0, 0, NULL, NULL},
    {"request", SH_FIELD_MS, offsetof(struct proxy_timeouts, request_ms), 0, 0, NULL, NULL},
    {"idle", SH_FIELD_MS, offsetof(struct proxy_timeouts, idle_ms), 0, 0, NULL, NULL},
};
SH_SCHEMA(timeouts_schema, timeouts_fields, check_timeouts);

static const struct {
    const char *name;
    uint32_t flag;
} retry_on_names[] = {
    {"connect", PROXY_RETRY_CONNECT}, {"connect-failure", PROXY_RETRY_CONNECT},
    {"reset", PROXY_RETRY_RESET},     {"timeout", PROXY_RETRY_TIMEOUT},
    {"5xx", PROXY_RETRY_5XX},
};

/* retry.on: a list of conditions and statuses, into the whole struct proxy_retry (on,
 * statuses, nstatuses). */
static int read_retry_on(const struct sh_node *v, const char *path, void *field, void *ctx,
                         struct sh_diag *d)
{
    struct proxy_retry *rp = field;
    char ip[192];

    (void)ctx;
    SH_TRY(sh_node_expect(v, SH_NODE_SEQ, path, d));
    rp->on = 0;
    rp->nstatuses = 0;
    for (size_t i = 0; i < v->count; i++) {
        const struct sh_node *it = v->items[i];
        const char *s;
        uint64_t st;
        bool known = false;
        snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
        SH_TRY(sh_node_str(it, ip, &s, d));
        for (size_t k = 0; k < SH_ARRAY_LEN(retry_on_names); k++) {
            if (strcmp(s, retry_on_names[k].name) == 0) {
                rp->on |= retry_on_names[k].flag;
                known = true;
            }
        }
        if (known) continue;
        if (slice_to_u64(slice_from_cstr(s), &st) == 0 && st >= 400 && st <= 599) {
            if (rp->nstatuses == SH_ARRAY_LEN(rp->statuses))
                return sh_node_fail(d, it, ip, "at most 8 statuses");
            rp->statuses[rp->nstatuses++] = (uint16_t)st;
            rp->on |= PROXY_RETRY_STATUS;
            continue;
        }
        return sh_node_fail(d, it, ip,
                            "'%s' is not a retry condition (connect, reset, timeout, 5xx, or a "
                            "status from 400 to 599)",
                            s);
    }
    return 0;
}

static const struct sh_field retry_fields[] = {
    {"max", SH_FIELD_U32, offsetof(struct proxy_retry, max_retries), 0, 10, NULL, NULL},
    {"on", SH_FIELD_FN, 0, 0, 0, NULL, read_retry_on},
    {"backoff", SH_FIELD_MS, offsetof(struct proxy_retry, backoff_base_ms), 0, 0, NULL, NULL},
    {"backoff_max", SH_FIELD_MS, offsetof(struct proxy_retry, backoff_max_ms), 0, 0, NULL, NULL},
    {"budget", SH_FIELD_RATIO, offsetof(struct proxy_retry, budget_ratio), 0, 0, NULL, NULL},
    {"min_per_second", SH_FIELD_U32, offsetof(struct proxy_retry, budget_min_per_s), 0, 100000,
     NULL, NULL},
    {"non_idempotent", SH_FIELD_BOOL, offsetof(struct proxy_retry, non_idempotent), 0, 0, NULL,
     NULL},
};
SH_SCHEMA(retry_schema, retry_fields, NULL);

static const struct sh_field breaker_fields[] = {
    {"consecutive_failures", SH_FIELD_U32, offsetof(struct proxy_breaker, consecutive_failures), 0,
     1000000, NULL, NULL},
    {"error_ratio", SH_FIELD_RATIO, offsetof(struct proxy_breaker, error_ratio), 0, 0, NULL, NULL},
    {"window", SH_FIELD_MS, offsetof(struct proxy_breaker, window_ms), 0, 0, NULL, NULL},
    {"min_requests", SH_FIELD_U32, offsetof(struct proxy_breaker, min_requests), 1, 1000000, NULL,
     NULL},
    {"open", SH_FIELD_MS, offsetof(struct proxy_breaker, open_ms), 0, 0, NULL, NULL},
    {"max_requests", SH_FIELD_U32, offsetof(struct proxy_breaker, max_requests), 1, 10000000, NULL,
     NULL},
    {"max_pending", SH_FIELD_U32, offsetof(struct proxy_breaker, max_pending), 1, 10000000, NULL,
     NULL},
};
SH_SCHEMA(breaker_schema, breaker_fields, NULL);

static const struct sh_field outlier_fields[] = {
    {"consecutive_errors", SH_FIELD_U32, offsetof(struct proxy_outlier, consecutive_errors), 0,
     1000000, NULL, NULL},
    {"base_ejection", SH_FIELD_MS, offsetof(struct proxy_outlier, base_ejection_ms), 0, 0, NULL,
     NULL},
    {"max_ejection", SH_FIELD_MS, offsetof(struct proxy_outlier, max_ejection_ms), 0, 0, NULL,
     NULL},
    {"max_ejection_percent", SH_FIELD_PERCENT, offsetof(struct proxy_outlier, max_ejection_percent),
     0, 0, NULL, NULL},
    {"panic_threshold", SH_FIELD_PERCENT, offsetof(struct proxy_outlier, panic_percent), 0, 0, NULL,
     NULL},
};
SH_SCHEMA(outlier_schema, outlier_fields, NULL);

/* A string the config keeps: copied into its arena (ctx is the reader). */
static int read_owned_str(const struct sh_node *v, const char *path, void *field, void *ctx,
                          struct sh_diag *d)
{
    struct rd *r = ctx;
    const char *s;

    SH_TRY(sh_node_str(v, path, &s, d));
    *(const char **)field = cfg_dup(r, s);
    return *(const char **)field ? 0 : SH_ENOMEM;
}

static int read_status(const struct sh_node *v, const char *path, void *field, void *ctx,
                       struct sh_diag *d)
{
    uint64_t st;

    (void)ctx;
    SH_TRY(sh_node_u64(v, path, 100, 599, &st, d));
    *(uint16_t *)field = (uint16_t)st;
    return 0;
}

static int check_health(const struct sh_node *m, const char *path, void *obj, void *ctx,
                        struct sh_diag *d)
{
    const struct proxy_health *h = obj;

    (void)ctx;
    if (!h->path) return sh_node_fail(d, m, path, "missing required key 'path'");
    if (h->path[0] != '/')
        return sh_node_fail(d, sh_node_get(m, "path"), NULL, "%s.path: must start with '/'", path);
    if (h->interval_ms < 100) return sh_node_fail(d, m, NULL, "%s.interval: at least 100ms", path);
    return 0;
}

static const struct sh_field health_fields[] = {
    {"path", SH_FIELD_FN, offsetof(struct proxy_health, path), 0, 0, NULL, read_owned_str},
    {"expect_status", SH_FIELD_FN, offsetof(struct proxy_health, expect_status), 0, 0, NULL,
     read_status},
    {"interval", SH_FIELD_MS, offsetof(struct proxy_health, interval_ms), 0, 0, NULL, NULL},
    {"timeout", SH_FIELD_MS, offsetof(struct proxy_health, timeout_ms), 0, 0, NULL, NULL},
    {"healthy_threshold", SH_FIELD_U32, offsetof(struct proxy_health, healthy_threshold), 1, 100,
     NULL, NULL},
    {"unhealthy_threshold", SH_FIELD_U32, offsetof(struct proxy_health, unhealthy_threshold), 1,
     100, NULL, NULL},
};
SH_SCHEMA(health_schema, health_fields, check_health);

static int read_timeouts(struct rd *r, const struct sh_node *m, const char *base,
                         struct proxy_timeouts *t)
{
    return sh_schema_read(&timeouts_schema, m, base, t, r, r->d);
}

static int read_retry(struct rd *r, const struct sh_node *m, const char *base,
                      struct proxy_retry *rp)
{
    return sh_schema_read(&retry_schema, m, base, rp, r, r->d);
}

/* ------------------------------------------------------------------------------------------
 * Clusters
 * ------------------------------------------------------------------------------------------ */
static const struct {
    const char *name;
    enum proxy_lb lb;
} lb_names[] = {
    {"round_robin", PROXY_LB_ROUND_ROBIN},
    {"weighted", PROXY_LB_WEIGHTED},
    {"least_request", PROXY_LB_LEAST_REQUEST},
    {"ring_hash", PROXY_LB_RING_HASH},
    {"maglev", PROXY_LB_MAGLEV},
    {"random", PROXY_LB_RANDOM},
};

static int read_endpoint(struct rd *r, const struct sh_node *n, const char *path,
                         struct proxy_endpoint *ep)
{
    char p[160]; /* path may be r->path, which pathf rewrites */
    static const char *const keys[] = {"address", "weight", NULL};
    const struct sh_node *addr = n, *v;
    struct sh_diag ad;
    char text[96];

    snprintf(p, sizeof(p), "%s", path);

    ep->weight = 1;
    if (n->kind == SH_NODE_MAP) {
        SH_TRY(sh_node_check_keys(n, keys, p, r->d));
        SH_TRY(sh_node_require(n, "address", p, &addr, r->d));
        if ((v = sh_node_get(n, "weight")))
            SH_TRY(get_u32(r, v, pathf(r, "%s.weight", p), 0, 1000, &ep->weight));
    }
    SH_TRY(sh_node_str(addr, p, &ep->name, r->d));
    if (sh_addr_parse(ep->name, &ep->addr, &ad) < 0) return fail_at(r, addr, "%s: %s", p, ad.what);
    /* the canonical text: "localhost:80" becomes "127.0.0.1:80" */
    ep->name = cfg_dup(r, sh_addr_format(&ep->addr, text, sizeof(text)));
    return ep->name ? 0 : SH_ENOMEM;
}

static int read_mtls(struct rd *r, const struct sh_node *v, const char *p, struct proxy_cluster *cl)
{
    static const char *const keys[] = {"identity", "ca", "server_name", NULL};
    struct proxy_mtls *t = &cl->mtls;
    const struct sh_node *x;
    char path[192], svc[64];

    snprintf(path, sizeof(path), "%s.mtls", p);

    SH_TRY(sh_node_expect(v, SH_NODE_MAP, path, r->d));
    SH_TRY(sh_node_check_keys(v, keys, path, r->d));
    SH_TRY(sh_node_require(v, "identity", path, &x, r->d));
    SH_TRY(get_str(r, x, pathf(r, "%s.mtls.identity", p), &t->identity));
    {
        /* the trust domain is what precedes /service/ */
        const char *slash =
            strncmp(t->identity, "spiffe://", 9) == 0 ? strstr(t->identity + 9, "/service/") : NULL;
        size_t n = slash ? (size_t)(slash - (t->identity + 9)) : 0;
        char td[TLS_ID_MAX];
        if (n > 0 && n < sizeof(td)) {
            memcpy(td, t->identity + 9, n);
            td[n] = '\0';
        }
        if (n == 0 || n >= sizeof(td) || strlen(t->identity) >= TLS_ID_MAX ||
            !tls_spiffe_service(t->identity, td, svc, sizeof(svc)))
            return fail_at(r, x, "%s.mtls.identity: '%s' is not spiffe://TD/service/NAME", p,
                           t->identity);
    }
    SH_TRY(sh_node_require(v, "ca", path, &x, r->d));
    SH_TRY(get_str(r, x, pathf(r, "%s.mtls.ca", p), &t->ca));
    if ((x = sh_node_get(v, "server_name"))) {
        SH_TRY(get_str(r, x, pathf(r, "%s.mtls.server_name", p), &t->server_name));
    } else {
        t->server_name = arena_strndup(&r->cfg->arena, svc, strlen(svc));
        if (!t->server_name) return SH_ENOMEM;
    }
    t->is_set = true;
    return 0;
}

static int read_cluster(struct rd *r, const struct sh_node *m, size_t idx, struct proxy_cluster *cl)
{
    static const char *const keys[] = {"name",    "endpoints", "service", "lb",
                                       "hash_on", "timeouts",  "retry",   "breaker",
                                       "outlier", "health",    "mtls",    NULL};
    const struct sh_node *v;
    char p[160];

    snprintf(p, sizeof(p), "clusters[%zu]", idx);
    proxy_cluster_defaults(cl);
    SH_TRY(sh_node_check_keys(m, keys, p, r->d));
    SH_TRY(sh_node_require(m, "name", p, &v, r->d));
    SH_TRY(get_str(r, v, pathf(r, "%s.name", p), &cl->name));
    snprintf(p, sizeof(p), "%s", sh_node_path(m, ""));
    if (!p[0]) /* a cluster of this file; one made from a manifest is named as written there */
        snprintf(p, sizeof(p), "clusters[%s]", cl->name);
    if ((v = sh_node_get(m, "service"))) {
        /* registry-fed: the control plane says which instances (passing ones) to use */
        if (sh_node_get(m, "endpoints"))
            return fail_at(r, v, "%s: give either endpoints or service, not both", p);
        SH_TRY(get_str(r, v, pathf(r, "%s.service", p), &cl->service));
        if (!r->cfg->control_plane)
            return fail_at(r, v, "%s.service: needs control_plane at the top level", p);
        if (r->res)
            SH_TRY(r->res->endpoints(r->res->data, cl->service, &r->cfg->arena, &cl->endpoints,
                                     &cl->nendpoints));
        if (!cl->endpoints) {
            cl->endpoints = arena_alloc(&r->cfg->arena, sizeof(*cl->endpoints));
            if (!cl->endpoints) return SH_ENOMEM;
            cl->nendpoints = 0;
        }
    } else {
        SH_TRY(sh_node_require(m, "endpoints", p, &v, r->d));
        SH_TRY(sh_node_expect(v, SH_NODE_SEQ, pathf(r, "%s.endpoints", p), r->d));
        cl->nendpoints = (uint32_t)v->count;
        cl->endpoints = arena_alloc(&r->cfg->arena, (v->count + 1) * sizeof(*cl->endpoints));
        if (!cl->endpoints) return SH_ENOMEM;
        memset(cl->endpoints, 0, (v->count + 1) * sizeof(*cl->endpoints));
        for (size_t i = 0; i < v->count; i++)
            SH_TRY(read_endpoint(r, v->items[i], pathf(r, "%s.endpoints[%zu]", p, i),
                                 &cl->endpoints[i]));
    }
    if ((v = sh_node_get(m, "lb"))) {
        const char *s;
        bool known = false;
        SH_TRY(sh_node_str(v, pathf(r, "%s.lb", p), &s, r->d));
        for (size_t k = 0; k < SH_ARRAY_LEN(lb_names); k++) {
            if (strcmp(s, lb_names[k].name) == 0) {
                cl->lb = lb_names[k].lb;
                known = true;
            }
        }
        if (!known)
            return fail_at(r, v,
                           "%s.lb: unknown balancer '%s' (round_robin, weighted, least_request, "
                           "ring_hash, maglev, random)",
                           p, s);
    }
    if ((v = sh_node_get(m, "hash_on"))) {
        const char *s;
        SH_TRY(sh_node_str(v, pathf(r, "%s.hash_on", p), &s, r->d));
        if (strcmp(s, "client") == 0) {
            cl->hash_on = PROXY_HASH_CLIENT;
        } else if (strncmp(s, "header:", 7) == 0 && s[7]) {
            cl->hash_on = PROXY_HASH_HEADER;
            cl->hash_key = cfg_dup(r, s + 7);
        } else if (strncmp(s, "cookie:", 7) == 0 && s[7]) {
            cl->hash_on = PROXY_HASH_COOKIE;
            cl->hash_key = cfg_dup(r, s + 7);
        } else {
            return fail_at(r, v, "%s.hash_on: '%s' (write client, header:NAME or cookie:NAME)", p,
                           s);
        }
        if (cl->hash_on != PROXY_HASH_CLIENT && !cl->hash_key) return SH_ENOMEM;
    }
    if ((v = sh_node_get(m, "timeouts")))
        SH_TRY(read_timeouts(r, v, pathf(r, "%s.timeouts", p), &cl->timeouts));
    if ((v = sh_node_get(m, "retry")))
        SH_TRY(read_retry(r, v, pathf(r, "%s.retry", p), &cl->retry));
    if ((v = sh_node_get(m, "breaker")))
        SH_TRY(
            sh_schema_read(&breaker_schema, v, pathf(r, "%s.breaker", p), &cl->breaker, r, r->d));
    if ((v = sh_node_get(m, "outlier")))
        SH_TRY(
            sh_schema_read(&outlier_schema, v, pathf(r, "%s.outlier", p), &cl->outlier, r, r->d));
    if ((v = sh_node_get(m, "health")))
        SH_TRY(sh_schema_read(&health_schema, v, pathf(r, "%s.health", p), &cl->health, r, r->d));
    if ((v = sh_node_get(m, "mtls"))) SH_TRY(read_mtls(r, v, p, cl));
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Routes
 * ------------------------------------------------------------------------------------------ */
static int cluster_ref(struct rd *r, const struct sh_node *v, const char *path, uint32_t *out)
{
    const char *name;
    int i;

    SH_TRY(sh_node_str(v, path, &name, r->d));
    i = proxy_cluster_index(r->cfg, name);
    if (i < 0) return fail_at(r, v, "%s: no cluster named '%s'", path, name);
    *out = (uint32_t)i;
    return 0;
}

static int read_kv_map(struct rd *r, const struct sh_node *m, const char *path,
                       struct proxy_kv **out, uint32_t *count)
{
    SH_TRY(sh_node_expect(m, SH_NODE_MAP, path, r->d));
    *out = arena_alloc(&r->cfg->arena, (m->count + 1) * sizeof(**out));
    if (!*out) return SH_ENOMEM;
    for (size_t i = 0; i < m->count; i++) {
        SH_TRY(get_str(r, m->items[i], path, &(*out)[i].name));
        SH_TRY(get_str(r, m->values[i], path, &(*out)[i].value));
        if (strpbrk((*out)[i].value, "\r\n") || strpbrk((*out)[i].name, " \t:\r\n"))
            return fail_at(r, m->items[i], "%s: '%s' is not a valid header field", path,
                           (*out)[i].name);
    }
    *count = (uint32_t)m->count;
    return 0;
}

static int read_match(struct rd *r, const struct sh_node *m, const char *path,
                      struct proxy_route *rt)
{
    char p[160]; /* path may be r->path, which pathf rewrites */
    static const char *const keys[] = {"path",    "prefix",  "glob", "host",
                                       "methods", "headers", NULL};
    const struct sh_node *v;
    int kinds = 0;

    snprintf(p, sizeof(p), "%s", path);

    SH_TRY(sh_node_check_keys(m, keys, p, r->d));
    if ((v = sh_node_get(m, "path"))) {
        rt->path_kind = PROXY_PATH_EXACT;
        SH_TRY(get_str(r, v, pathf(r, "%s.path", p), &rt->path));
        kinds++;
    }
    if ((v = sh_node_get(m, "prefix"))) {
        rt->path_kind = PROXY_PATH_PREFIX;
        SH_TRY(get_str(r, v, pathf(r, "%s.prefix", p), &rt->path));
        kinds++;
    }
    if ((v = sh_node_get(m, "glob"))) {
        rt->path_kind = PROXY_PATH_GLOB;
        SH_TRY(get_str(r, v, pathf(r, "%s.glob", p), &rt->path));
        kinds++;
    }
    if (kinds > 1) return fail_at(r, m, "%s: use one of path, prefix and glob", p);
    if (kinds && rt->path[0] != '/') return fail_at(r, m, "%s: a path must start with '/'", p);
    if ((v = sh_node_get(m, "host"))) SH_TRY(get_str(r, v, pathf(r, "%s.host", p), &rt->host));
    if ((v = sh_node_get(m, "methods"))) {
        SH_TRY(sh_node_expect(v, SH_NODE_SEQ, pathf(r, "%s.methods", p), r->d));
        for (size_t i = 0; i < v->count; i++) {
            const char *s;
            SH_TRY(sh_node_str(v->items[i], pathf(r, "%s.methods[%zu]", p, i), &s, r->d));
            enum http_method mth = http_method_from(slice_from_cstr(s));
            if (mth == HTTP_M_OTHER)
                return fail_at(r, v->items[i],
                               "%s: unknown method '%s' (GET, HEAD, POST, PUT, DELETE, "
                               "CONNECT, OPTIONS, TRACE, PATCH)",
                               r->path, s);
            rt->methods |= 1u << mth;
        }
    }
    if ((v = sh_node_get(m, "headers"))) {
        SH_TRY(sh_node_expect(v, SH_NODE_MAP, pathf(r, "%s.headers", p), r->d));
        rt->headers = arena_alloc(&r->cfg->arena, (v->count + 1) * sizeof(*rt->headers));
        if (!rt->headers) return SH_ENOMEM;
        for (size_t i = 0; i < v->count; i++) {
            SH_TRY(get_str(r, v->items[i], pathf(r, "%s.headers", p), &rt->headers[i].name));
            rt->headers[i].value = NULL;
            if (v->values[i]->kind != SH_NODE_NULL)
                SH_TRY(get_str(r, v->values[i], pathf(r, "%s.headers.%s", p, rt->headers[i].name),
                               &rt->headers[i].value));
        }
        rt->nheaders = (uint32_t)v->count;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * JWT (a route's `jwt`): read with a schema table; keys from a file or an environment variable
 * are loaded here, so a bad key set fails the load with its path; a URL's are the gateway's
 * to fetch.
 * ------------------------------------------------------------------------------------------ */
/* A list of strings (or one string) into const char ** + count (field: the struct proxy_jwt). */
static int read_audiences(const struct sh_node *v, const char *path, void *field, void *ctx,
                          struct sh_diag *d)
{
    struct proxy_jwt *j = field;
    struct rd *r = ctx;
    char ip[192];

    if (v->kind == SH_NODE_SCALAR) {
        j->audiences = arena_alloc(&r->cfg->arena, sizeof(char *));
        if (!j->audiences) return SH_ENOMEM;
        j->naudiences = 1;
        return read_owned_str(v, path, (void *)&j->audiences[0], ctx, d);
    }
    SH_TRY(sh_node_expect(v, SH_NODE_SEQ, path, d));
    if (v->count == 0) return sh_node_fail(d, v, path, "list at least one audience");
    j->audiences = arena_alloc(&r->cfg->arena, v->count * sizeof(char *));
    if (!j->audiences) return SH_ENOMEM;
    for (size_t i = 0; i < v->count; i++)
        SH_TRY(read_owned_str(v->items[i], sh_fmt(ip, sizeof(ip), "%s[%zu]", path, i),
                              (void *)&j->audiences[i], ctx, d));
    j->naudiences = (uint32_t)v->count;
    return 0;
}

/* required_claims: a map claim -> value (a null value: present with any value), or a list of
 * claims that must be present. */
static int read_required(const struct sh_node *v, const char *path, void *field, void *ctx,
                         struct sh_diag *d)
{
    struct proxy_jwt *j = field;
    struct rd *r = ctx;
    char ip[192];

    if (v->kind != SH_NODE_MAP) SH_TRY(sh_node_expect(v, SH_NODE_SEQ, path, d));
    j->required = arena_alloc(&r->cfg->arena, (v->count + 1) * sizeof(*j->required));
    if (!j->required) return SH_ENOMEM;
    for (size_t i = 0; i < v->count; i++) {
        struct sec_jwt_claim_rule *c = &j->required[i];
        c->value = NULL;
        SH_TRY(read_owned_str(v->items[i], sh_fmt(ip, sizeof(ip), "%s[%zu]", path, i),
                              (void *)&c->name, ctx, d));
        if (v->kind == SH_NODE_MAP && v->values[i]->kind != SH_NODE_NULL)
            SH_TRY(read_owned_str(v->values[i], sh_fmt(ip, sizeof(ip), "%s.%s", path, c->name),
                                  (void *)&c->value, ctx, d));
    }
    j->nrequired = (uint32_t)v->count;
    return 0;
}

static bool header_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c)) return false;
    }
    return true;
}

static int read_claims_to_headers(const struct sh_node *v, const char *path, void *field, void *ctx,
                                  struct sh_diag *d)
{
    struct proxy_jwt *j = field;
    struct rd *r = ctx;
    char ip[192];

    SH_TRY(read_kv_map(r, v, path, &j->claims_to_headers, &j->nclaims_to_headers));
    if (j->nclaims_to_headers > SEC_JWT_MAX_EXTRACT)
        return sh_node_fail(d, v, path, "at most %d claims", SEC_JWT_MAX_EXTRACT);
    j->extract = arena_alloc(&r->cfg->arena, (j->nclaims_to_headers + 1) * sizeof(char *));
    if (!j->extract) return SH_ENOMEM;
    for (uint32_t i = 0; i < j->nclaims_to_headers; i++) {
        const char *h = j->claims_to_headers[i].value;
        if (!header_name_ok(h) || slice_eq_nocase(slice_from_cstr(h), SLICE("host")) ||
            slice_eq_nocase(slice_from_cstr(h), SLICE("content-length")) ||
            slice_eq_nocase(slice_from_cstr(h), SLICE("transfer-encoding")))
            return sh_node_fail(d, v->values[i],
                                sh_fmt(ip, sizeof(ip), "%s.%s", path, j->claims_to_headers[i].name),
                                "'%s' is not a header a claim may set", h);
        j->extract[i] = j->claims_to_headers[i].name;
    }
    return 0;
}

/* from: header (Authorization: Bearer), header:NAME, cookie:NAME */
static int read_from(const struct sh_node *v, const char *path, void *field, void *ctx,
                     struct sh_diag *d)
{
    struct proxy_jwt *j = field;
    struct rd *r = ctx;
    const char *s;

    SH_TRY(sh_node_str(v, path, &s, d));
    if (strcmp(s, "header") == 0 || strcmp(s, "authorization") == 0) {
        j->from = PROXY_JWT_FROM_BEARER;
        return 0;
    }
    if (strncmp(s, "header:", 7) == 0 && header_name_ok(s + 7)) {
        j->from = PROXY_JWT_FROM_HEADER;
    } else if (strncmp(s, "cookie:", 7) == 0 && s[7] && !strpbrk(s + 7, " \t;=,\"")) {
        j->from = PROXY_JWT_FROM_COOKIE;
    } else {
        return sh_node_fail(d, v, path, "'%s' (write header, header:NAME or cookie:NAME)", s);
    }
    j->from_name = cfg_dup(r, s + 7);
    return j->from_name ? 0 : SH_ENOMEM;
}

static const struct sh_field jwt_fields[] = {
    {"issuer", SH_FIELD_FN, offsetof(struct proxy_jwt, issuer), 0, 0, NULL, read_owned_str},
    {"audiences", SH_FIELD_FN, 0, 0, 0, NULL, read_audiences},
    {"jwks_file", SH_FIELD_FN, offsetof(struct proxy_jwt, jwks_file), 0, 0, NULL, read_owned_str},
    {"jwks_url", SH_FIELD_FN, offsetof(struct proxy_jwt, jwks_url), 0, 0, NULL, read_owned_str},
    {"hs256_secret_env", SH_FIELD_FN, offsetof(struct proxy_jwt, hs256_secret_env), 0, 0, NULL,
     read_owned_str},
    {"leeway", SH_FIELD_MS, offsetof(struct proxy_jwt, leeway_ms), 0, 3600000, NULL, NULL},
    {"required_claims", SH_FIELD_FN, 0, 0, 0, NULL, read_required},
    {"claims_to_headers", SH_FIELD_FN, 0, 0, 0, NULL, read_claims_to_headers},
    {"from", SH_FIELD_FN, 0, 0, 0, NULL, read_from},
    {"realm", SH_FIELD_FN, offsetof(struct proxy_jwt, realm), 0, 0, NULL, read_owned_str},
    {"forward_token", SH_FIELD_BOOL, offsetof(struct proxy_jwt, forward_token), 0, 0, NULL, NULL},
    {"jwks_refresh", SH_FIELD_MS, offsetof(struct proxy_jwt, refresh_ms), 1000, 0, NULL, NULL},
    {"jwks_min_refresh", SH_FIELD_MS, offsetof(struct proxy_jwt, min_refresh_ms), 100, 0, NULL,
     NULL},
    {"cache", SH_FIELD_U32, offsetof(struct proxy_jwt, cache_entries), 0, 100000, NULL, NULL},
};

/* The config keeps the key set (freed with it). */
static int keep_keyset(struct rd *r, struct sec_jwks *ks)
{
    struct proxy_config *cfg = r->cfg;

    if (sh_array_reserve(&cfg->keysets, &cfg->keysets_cap, cfg->nkeysets + 1,
                         sizeof(*cfg->keysets)) < 0) {
        sec_jwks_free(ks);
        return SH_ENOMEM;
    }
    cfg->keysets[cfg->nkeysets++] = ks;
    return 0;
}

/* A JWKS file, relative to the directory of the document that names it. */
static int load_jwks_file(struct rd *r, const struct sh_node *at, const char *path,
                          const char *file, struct sec_jwks **out)
{
    char full[1024], *buf = NULL;
    const char *doc = at->doc ? at->doc->file : NULL, *slash = doc ? strrchr(doc, '/') : NULL;
    struct sh_diag kd;
    size_t len = 0;
    ssize_t n;
    int fd, rc;

    if (file[0] != '/' && slash)
        snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - doc), doc, file);
    else
        snprintf(full, sizeof(full), "%s", file);
    fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_at(r, at, "%s: cannot open %s: %s", path, full, strerror(errno));
    buf = sh_malloc(SEC_JWKS_MAX_BYTES + 2);
    if (!buf) {
        close(fd);
        return SH_ENOMEM;
    }
    while (len <= SEC_JWKS_MAX_BYTES &&
           (n = read(fd, buf + len, SEC_JWKS_MAX_BYTES + 1 - len)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = errno;
            close(fd);
            sh_free(buf);
            return fail_at(r, at, "%s: cannot read %s: %s", path, full, strerror(rc));
        }
        len += (size_t)n;
    }
    close(fd);
    rc = sec_jwks_parse((struct slice){buf, len}, out, &kd);
    sh_free(buf);
    if (rc == SH_ENOMEM) return rc;
    if (rc < 0) return fail_at(r, at, "%s: %s: %s: %s", path, full, kd.where, kd.what);
    return keep_keyset(r, *out);
}

/* "http://HOST[:PORT]/path" with a numeric host (or localhost): no resolver, no TLS client yet. */
static int parse_jwks_url(struct rd *r, const struct sh_node *at, const char *path,
                          struct proxy_jwt *j)
{
    const char *u = j->jwks_url, *auth, *slash;
    char hostport[128];
    struct sh_diag ad;

    if (strncmp(u, "https://", 8) == 0)
        return fail_at(r, at,
                       "%s: https is not supported yet (serve the JWKS over http on a "
                       "trusted network, or use jwks_file)",
                       path);
    if (strncmp(u, "http://", 7) != 0)
        return fail_at(r, at, "%s: '%s' is not an http:// URL", path, u);
    auth = u + 7;
    slash = strchr(auth, '/');
    if (!slash) slash = auth + strlen(auth);
    if (slash == auth || (size_t)(slash - auth) >= sizeof(hostport) - 4)
        return fail_at(r, at, "%s: '%s' has no host", path, u);
    snprintf(hostport, sizeof(hostport), "%.*s", (int)(slash - auth), auth);
    if (!strchr(hostport, ':') || hostport[strlen(hostport) - 1] == ']')
        snprintf(hostport, sizeof(hostport), "%.*s:80", (int)(slash - auth), auth);
    if (sh_addr_parse(hostport, &j->url_addr, &ad) < 0)
        return fail_at(r, at, "%s: %s (a numeric address or localhost)", path, ad.what);
    j->url_host = arena_strndup(&r->cfg->arena, auth, (size_t)(slash - auth));
    j->url_path = cfg_dup(r, *slash ? slash : "/");
    if (strpbrk(j->url_path, " \r\n\t"))
        return fail_at(r, at, "%s: the path may not hold spaces or line breaks", path);
    return j->url_host && j->url_path ? 0 : SH_ENOMEM;
}

static int check_jwt(const struct sh_node *m, const char *path, void *obj, void *ctx,
                     struct sh_diag *d)
{
    struct proxy_jwt *j = obj;
    struct rd *r = ctx;
    char kp[192];

    (void)d;
    if (!j->jwks_file && !j->jwks_url && !j->hs256_secret_env)
        return fail_at(r, m, "%s: give jwks_file, jwks_url or hs256_secret_env", path);
    if (j->jwks_file && j->jwks_url)
        return fail_at(r, m, "%s: give either jwks_file or jwks_url, not both", path);
    if (j->jwks_file)
        SH_TRY(load_jwks_file(r, sh_node_get(m, "jwks_file"),
                              sh_fmt(kp, sizeof(kp), "%s.jwks_file", path), j->jwks_file,
                              &j->file_keys));
    if (j->jwks_url)
        SH_TRY(parse_jwks_url(r, sh_node_get(m, "jwks_url"),
                              sh_fmt(kp, sizeof(kp), "%s.jwks_url", path), j));
    if (j->hs256_secret_env) {
        const char *sec = getenv(j->hs256_secret_env);
        struct sh_diag kd;
        int rc;
        if (!sec)
            return fail_at(r, sh_node_get(m, "hs256_secret_env"),
                           "%s.hs256_secret_env: the environment has no %s", path,
                           j->hs256_secret_env);
        rc = sec_jwks_from_secret(slice_from_cstr(sec), NULL, &j->secret_keys, &kd);
        if (rc == SH_ENOMEM) return rc;
        if (rc < 0)
            return fail_at(r, sh_node_get(m, "hs256_secret_env"), "%s.hs256_secret_env: %s: %s",
                           path, j->hs256_secret_env, kd.what);
        SH_TRY(keep_keyset(r, j->secret_keys));
    }
    j->policy = (struct sec_jwt_policy){
        .issuer = j->issuer,
        .audiences = j->audiences,
        .naudiences = j->naudiences,
        .leeway_s = j->leeway_ms / 1000,
        .required = j->required,
        .nrequired = j->nrequired,
        .extract = j->extract,
        .nextract = j->nclaims_to_headers,
    };
    return 0;
}
SH_SCHEMA(jwt_schema, jwt_fields, check_jwt);

static int read_jwt(struct rd *r, const struct sh_node *v, const char *path, struct proxy_route *rt)
{
    struct proxy_jwt *j = arena_alloc(&r->cfg->arena, sizeof(*j));

    if (!j) return SH_ENOMEM;
    *j = (struct proxy_jwt){
        .leeway_ms = 60000,
        .forward_token = true,
        .refresh_ms = 300000,
        .min_refresh_ms = 5000,
        .cache_entries = 1024,
        .realm = rt->name,
    };
    SH_TRY(sh_schema_read(&jwt_schema, v, path, j, r, r->d));
    rt->jwt = j;
    return 0;
}

static int read_route(struct rd *r, const struct sh_node *m, size_t idx, struct proxy_route *rt)
{
    static const char *const keys[] = {"name",
                                       "match",
                                       "cluster",
                                       "split",
                                       "respond",
                                       "redirect",
                                       "rewrite_prefix",
                                       "request_headers",
                                       "response_headers",
                                       "timeouts",
                                       "retry",
                                       "rate_limit",
                                       "fallback",
                                       "jwt",
                                       NULL};
    const struct sh_node *v;
    char p[160];
    int actions = 0;
    const struct proxy_cluster *policy_from = NULL;

    if (m->origin) /* a route made from a manifest is named as written there */
        snprintf(p, sizeof(p), "%s", m->origin);
    else
        snprintf(p, sizeof(p), "routes[%zu]", idx);
    SH_TRY(sh_node_check_keys(m, keys, p, r->d));
    if ((v = sh_node_get(m, "name"))) {
        SH_TRY(get_str(r, v, pathf(r, "%s.name", p), &rt->name));
    } else {
        char nm[32];
        snprintf(nm, sizeof(nm), "route-%zu", idx);
        rt->name = cfg_dup(r, nm);
        if (!rt->name) return SH_ENOMEM;
    }
    if ((v = sh_node_get(m, "match"))) SH_TRY(read_match(r, v, pathf(r, "%s.match", p), rt));
    if ((v = sh_node_get(m, "cluster"))) {
        rt->action = PROXY_ACT_FORWARD;
        SH_TRY(cluster_ref(r, v, pathf(r, "%s.cluster", p), &rt->cluster));
        policy_from = &r->cfg->clusters[rt->cluster];
        actions++;
    }
    if ((v = sh_node_get(m, "split"))) {
        rt->action = PROXY_ACT_SPLIT;
        SH_TRY(sh_node_expect(v, SH_NODE_SEQ, pathf(r, "%s.split", p), r->d));
        if (v->count == 0) return fail_at(r, v, "%s.split: needs at least one cluster", p);
        rt->splits = arena_alloc(&r->cfg->arena, v->count * sizeof(*rt->splits));
        if (!rt->splits) return SH_ENOMEM;
        for (size_t i = 0; i < v->count; i++) {
            static const char *const sk[] = {"cluster", "weight", NULL};
            const struct sh_node *it = v->items[i], *c, *w;
            char sp[192];
            snprintf(sp, sizeof(sp), "%s.split[%zu]", p, i);
            SH_TRY(sh_node_check_keys(it, sk, sp, r->d));
            SH_TRY(sh_node_require(it, "cluster", sp, &c, r->d));
            SH_TRY(cluster_ref(r, c, pathf(r, "%s.cluster", sp), &rt->splits[i].cluster));
            SH_TRY(sh_node_require(it, "weight", sp, &w, r->d));
            SH_TRY(get_u32(r, w, pathf(r, "%s.weight", sp), 0, 1000000, &rt->splits[i].weight));
        }
        rt->nsplits = (uint32_t)v->count;
        policy_from = &r->cfg->clusters[rt->splits[0].cluster];
        actions++;
    }
    if ((v = sh_node_get(m, "respond"))) {
        static const char *const rk[] = {"status", "body", "content_type", NULL};
        const struct sh_node *x;
        uint32_t st = 200;
        rt->action = PROXY_ACT_RESPOND;
        SH_TRY(sh_node_check_keys(v, rk, pathf(r, "%s.respond", p), r->d));
        if ((x = sh_node_get(v, "status")))
            SH_TRY(get_u32(r, x, pathf(r, "%s.respond.status", p), 200, 599, &st));
        rt->status = (uint16_t)st;
        rt->body = "";
        if ((x = sh_node_get(v, "body")))
            SH_TRY(get_str(r, x, pathf(r, "%s.respond.body", p), &rt->body));
        rt->content_type = "text/plain";
        if ((x = sh_node_get(v, "content_type")))
            SH_TRY(get_str(r, x, pathf(r, "%s.respond.content_type", p), &rt->content_type));
        actions++;
    }
    if ((v = sh_node_get(m, "redirect"))) {
        static const char *const rk[] = {"status", "location", NULL};
        const struct sh_node *x;
        uint32_t st = 302;
        rt->action = PROXY_ACT_REDIRECT;
        SH_TRY(sh_node_check_keys(v, rk, pathf(r, "%s.redirect", p), r->d));
        if ((x = sh_node_get(v, "status")))
            SH_TRY(get_u32(r, x, pathf(r, "%s.redirect.status", p), 300, 399, &st));
        rt->status = (uint16_t)st;
        SH_TRY(sh_node_require(v, "location", pathf(r, "%s.redirect", p), &x, r->d));
        SH_TRY(get_str(r, x, pathf(r, "%s.redirect.location", p), &rt->location));
        if (strpbrk(rt->location, "\r\n"))
            return fail_at(r, x, "%s.redirect.location: line breaks are not allowed", p);
        actions++;
    }
    if (actions != 1)
        return fail_at(r, m,
                       "%s: give exactly one of cluster, split, respond and redirect (found %d)", p,
                       actions);
    if ((v = sh_node_get(m, "rewrite_prefix"))) {
        if (rt->path_kind != PROXY_PATH_PREFIX)
            return fail_at(r, v, "%s.rewrite_prefix: needs a match.prefix", p);
        SH_TRY(get_str(r, v, pathf(r, "%s.rewrite_prefix", p), &rt->prefix_rewrite));
    }
    if ((v = sh_node_get(m, "request_headers"))) {
        static const char *const hk[] = {"add", "remove", NULL};
        const struct sh_node *x;
        SH_TRY(sh_node_check_keys(v, hk, pathf(r, "%s.request_headers", p), r->d));
        if ((x = sh_node_get(v, "add")))
            SH_TRY(read_kv_map(r, x, pathf(r, "%s.request_headers.add", p),
                               &rt->add_request_headers, &rt->nadd_request_headers));
        if ((x = sh_node_get(v, "remove"))) {
            SH_TRY(sh_node_expect(x, SH_NODE_SEQ, pathf(r, "%s.request_headers.remove", p), r->d));
            rt->remove_request_headers =
                arena_alloc(&r->cfg->arena, (x->count + 1) * sizeof(char *));
            if (!rt->remove_request_headers) return SH_ENOMEM;
            for (size_t i = 0; i < x->count; i++)
                SH_TRY(get_str(r, x->items[i], pathf(r, "%s.request_headers.remove[%zu]", p, i),
                               &rt->remove_request_headers[i]));
            rt->nremove_request_headers = (uint32_t)x->count;
        }
    }
    if ((v = sh_node_get(m, "response_headers"))) {
        static const char *const hk[] = {"add", NULL};
        const struct sh_node *x;
        SH_TRY(sh_node_check_keys(v, hk, pathf(r, "%s.response_headers", p), r->d));
        if ((x = sh_node_get(v, "add")))
            SH_TRY(read_kv_map(r, x, pathf(r, "%s.response_headers.add", p),
                               &rt->add_response_headers, &rt->nadd_response_headers));
    }
    if (policy_from) {
        rt->timeouts = policy_from->timeouts;
        rt->retry = policy_from->retry;
    }
    if ((v = sh_node_get(m, "timeouts"))) {
        rt->has_timeouts = true;
        SH_TRY(read_timeouts(r, v, pathf(r, "%s.timeouts", p), &rt->timeouts));
    }
    if ((v = sh_node_get(m, "retry"))) {
        rt->has_retry = true;
        SH_TRY(read_retry(r, v, pathf(r, "%s.retry", p), &rt->retry));
    }
    if ((v = sh_node_get(m, "rate_limit"))) {
        static const char *const rk[] = {"rate", "burst", "key", NULL};
        const struct sh_node *x;
        uint32_t rate;
        SH_TRY(sh_node_check_keys(v, rk, pathf(r, "%s.rate_limit", p), r->d));
        SH_TRY(sh_node_require(v, "rate", pathf(r, "%s.rate_limit", p), &x, r->d));
        SH_TRY(get_u32(r, x, pathf(r, "%s.rate_limit.rate", p), 1, 10000000, &rate));
        rt->ratelimit.rate_per_s = rate;
        if ((x = sh_node_get(v, "burst")))
            SH_TRY(get_u32(r, x, pathf(r, "%s.rate_limit.burst", p), 1, 10000000,
                           &rt->ratelimit.burst));
        if ((x = sh_node_get(v, "key"))) {
            const char *s;
            SH_TRY(sh_node_str(x, pathf(r, "%s.rate_limit.key", p), &s, r->d));
            if (strcmp(s, "client") == 0) {
                rt->ratelimit.key = PROXY_RL_CLIENT;
            } else if (strncmp(s, "header:", 7) == 0 && s[7]) {
                rt->ratelimit.key = PROXY_RL_HEADER;
                rt->ratelimit.header = cfg_dup(r, s + 7);
                if (!rt->ratelimit.header) return SH_ENOMEM;
            } else {
                return fail_at(r, x, "%s: '%s' (write client or header:NAME)", r->path, s);
            }
        }
    }
    if ((v = sh_node_get(m, "jwt"))) SH_TRY(read_jwt(r, v, pathf(r, "%s.jwt", p), rt));
    if ((v = sh_node_get(m, "fallback"))) {
        static const char *const fk[] = {"max_entry", "max_total", "max_age", "per_credential",
                                         NULL};
        const struct sh_node *x;
        uint64_t sz;
        rt->fallback.enabled = true;
        if (v->kind == SH_NODE_SCALAR) {
            SH_TRY(sh_node_bool(v, pathf(r, "%s.fallback", p), &rt->fallback.enabled, r->d));
        } else {
            SH_TRY(sh_node_check_keys(v, fk, pathf(r, "%s.fallback", p), r->d));
            if ((x = sh_node_get(v, "max_entry"))) {
                SH_TRY(sh_node_size(x, pathf(r, "%s.fallback.max_entry", p), &sz, r->d));
                rt->fallback.max_entry_bytes = (uint32_t)SH_MIN(sz, 64ull << 20);
            }
            if ((x = sh_node_get(v, "max_total"))) {
                SH_TRY(sh_node_size(x, pathf(r, "%s.fallback.max_total", p), &sz, r->d));
                rt->fallback.max_total_bytes = (uint32_t)SH_MIN(sz, 1ull << 30);
            }
            if ((x = sh_node_get(v, "max_age")))
                SH_TRY(get_ms(r, x, pathf(r, "%s.fallback.max_age", p), &rt->fallback.max_age_ms));
            if ((x = sh_node_get(v, "per_credential")))
                SH_TRY(sh_node_bool(x, pathf(r, "%s.fallback.per_credential", p),
                                    &rt->fallback.per_credential, r->d));
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The active config as JSON, for the admin /config endpoint
 * ------------------------------------------------------------------------------------------ */
static bool secret_name(const char *name)
{
    static const char *const secret[] = {"authorization", "cookie", "token",
                                         "secret",        "key",    "password"};
    char low[128];
    size_t n = strlen(name);

    if (n >= sizeof(low)) n = sizeof(low) - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    low[n] = '\0';
    for (size_t i = 0; i < SH_ARRAY_LEN(secret); i++) {
        if (strstr(low, secret[i])) return true;
    }
    return false;
}

static void json_str(struct buf *b, const char *key, const char *v, bool comma)
{
    buf_appendf(b, "%s\"%s\":", comma ? "," : "", key);
    if (!v) {
        buf_appends(b, SLICE("null"));
        return;
    }
    buf_appendc(b, '"');
    buf_append_json_str(b, slice_from_cstr(v));
    buf_appendc(b, '"');
}

static void json_kvs(struct buf *b, const char *key, const struct proxy_kv *kv, uint32_t n)
{
    buf_appendf(b, ",\"%s\":{", key);
    for (uint32_t i = 0; i < n; i++) {
        json_str(b, kv[i].name, secret_name(kv[i].name) ? "<redacted>" : kv[i].value, i > 0);
    }
    buf_appendc(b, '}');
}

static int render_json(struct proxy_config *cfg)
{
    static const char *const lbn[] = {"round_robin", "weighted", "least_request",
                                      "ring_hash",   "maglev",   "random"};
    static const char *const actn[] = {"forward", "split", "respond", "redirect"};
    static const char *const pathn[] = {"any", "exact", "prefix", "glob"};
    struct buf b = BUF_INIT(16 << 20);

    buf_appendc(&b, '{');
    json_str(&b, "listen", cfg->listen, false);
    json_str(&b, "admin", cfg->admin, true);
    buf_appendf(&b,
                ",\"workers\":%u,\"access_log\":%s,\"identity\":\"%s\","
                "\"tracing\":{\"sample\":%g,\"slow_ms\":%u},\"clusters\":[",
                cfg->workers, cfg->access_log ? "true" : "false",
                cfg->identity == PROXY_IDENTITY_OFF        ? "off"
                : cfg->identity == PROXY_IDENTITY_OPTIONAL ? "optional"
                                                           : "required",
                cfg->tracing.sample, cfg->tracing.slow_ms);
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        const struct proxy_cluster *cl = &cfg->clusters[i];
        buf_appends(&b, i ? SLICE(",{") : SLICE("{"));
        json_str(&b, "name", cl->name, false);
        json_str(&b, "lb", lbn[cl->lb], true);
        json_str(&b, "service", cl->service, true);
        buf_appends(&b, SLICE(",\"endpoints\":["));
        for (uint32_t e = 0; e < cl->nendpoints; e++)
            buf_appendf(&b, "%s{\"address\":\"%s\",\"weight\":%u}", e ? "," : "",
                        cl->endpoints[e].name, cl->endpoints[e].weight);
        buf_appendf(&b,
                    "],\"timeouts\":{\"connect_ms\":%u,\"per_try_ms\":%u,\"request_ms\":%u},"
                    "\"retry\":{\"max\":%u,\"budget\":%g},\"breaker\":{\"consecutive_failures\""
                    ":%u,\"error_ratio\":%g,\"open_ms\":%u,\"max_requests\":%u},"
                    "\"outlier\":{\"consecutive_errors\":%u,\"base_ejection_ms\":%u}",
                    cl->timeouts.connect_ms, cl->timeouts.per_try_ms, cl->timeouts.request_ms,
                    cl->retry.max_retries, cl->retry.budget_ratio, cl->breaker.consecutive_failures,
                    cl->breaker.error_ratio, cl->breaker.open_ms, cl->breaker.max_requests,
                    cl->outlier.consecutive_errors, cl->outlier.base_ejection_ms);
        json_str(&b, "health_path", cl->health.path, true);
        buf_appendc(&b, '}');
    }
    buf_appends(&b, SLICE("],\"routes\":["));
    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        const struct proxy_route *r = &cfg->routes[i];
        buf_appends(&b, i ? SLICE(",{") : SLICE("{"));
        json_str(&b, "name", r->name, false);
        json_str(&b, "match", pathn[r->path_kind], true);
        json_str(&b, "path", r->path, true);
        json_str(&b, "host", r->host, true);
        json_str(&b, "action", actn[r->action], true);
        if (r->action == PROXY_ACT_FORWARD)
            json_str(&b, "cluster", cfg->clusters[r->cluster].name, true);
        if (r->action == PROXY_ACT_SPLIT) {
            buf_appends(&b, SLICE(",\"split\":["));
            for (uint32_t k = 0; k < r->nsplits; k++)
                buf_appendf(&b, "%s{\"cluster\":\"%s\",\"weight\":%u}", k ? "," : "",
                            cfg->clusters[r->splits[k].cluster].name, r->splits[k].weight);
            buf_appendc(&b, ']');
        }
        json_kvs(&b, "add_request_headers", r->add_request_headers, r->nadd_request_headers);
        json_kvs(&b, "add_response_headers", r->add_response_headers, r->nadd_response_headers);
        if (r->ratelimit.rate_per_s > 0)
            buf_appendf(&b, ",\"rate_limit\":{\"rate\":%g,\"burst\":%u}", r->ratelimit.rate_per_s,
                        r->ratelimit.burst);
        if (r->jwt) {
            buf_appends(&b, SLICE(",\"jwt\":{"));
            json_str(&b, "issuer", r->jwt->issuer, false);
            json_str(&b, "jwks_file", r->jwt->jwks_file, true);
            json_str(&b, "jwks_url", r->jwt->jwks_url, true);
            buf_appendf(&b, ",\"audiences\":%u,\"leeway_ms\":%u,\"cache\":%u}", r->jwt->naudiences,
                        r->jwt->leeway_ms, r->jwt->cache_entries);
        }
        buf_appendf(&b, ",\"fallback\":%s}",
                    !r->fallback.enabled         ? "false"
                    : r->fallback.per_credential ? "{\"per_credential\":true}"
                                                 : "true");
    }
    buf_appends(&b, SLICE("]}\n"));
    if (b.err) {
        int rc = b.err;
        buf_release(&b);
        return rc;
    }
    cfg->source_json = arena_strndup(&cfg->arena, b.data, b.len);
    buf_release(&b);
    return cfg->source_json ? 0 : SH_ENOMEM;
}

/* ------------------------------------------------------------------------------------------
 * The top level
 * ------------------------------------------------------------------------------------------ */
static const struct sh_field tracing_fields[] = {
    {"sample", SH_FIELD_RATIO, offsetof(struct proxy_tracing, sample), 0, 0, NULL, NULL},
    {"slow", SH_FIELD_MS, offsetof(struct proxy_tracing, slow_ms), 0, 0, NULL, NULL},
};
SH_SCHEMA(tracing_schema, tracing_fields, NULL);

static int read_identity(struct rd *r, const struct sh_node *v, enum proxy_identity_mode *out)
{
    static const char *const names[] = {"off", "optional", "required"};
    const char *s;

    SH_TRY(sh_node_str(v, "identity", &s, r->d));
    for (size_t i = 0; i < SH_ARRAY_LEN(names); i++) {
        if (!strcmp(s, names[i])) {
            *out = (enum proxy_identity_mode)i;
            return 0;
        }
    }
    return fail_at(r, v, "identity: '%s' is not one of off, optional, required", s);
}

/* HSTS max_age: "1y", "180d", a duration ("12h"), or seconds. */
static int read_max_age(struct rd *r, const struct sh_node *v, uint64_t *out_s)
{
    const char *s;
    size_t n;
    uint64_t num = 0, unit = 0, ms;

    if (v->kind == SH_NODE_SCALAR && (s = v->text) != NULL && (n = strlen(s)) >= 2 &&
        (s[n - 1] == 'y' || s[n - 1] == 'd')) {
        unit = s[n - 1] == 'y' ? 365ull * 86400 : 86400;
        for (size_t i = 0; i + 1 < n; i++) {
            if (s[i] < '0' || s[i] > '9' || num > 1000000)
                return fail_at(r, v, "tls.hsts.max_age: '%s' is not a duration (1y, 180d, 12h)", s);
            num = num * 10 + (uint64_t)(s[i] - '0');
        }
        *out_s = num * unit;
        return 0;
    }
    if (sh_node_u64(v, "tls.hsts.max_age", 0, 1000000000ull, out_s, NULL) == 0) return 0;
    SH_TRY(sh_node_duration_ms(v, "tls.hsts.max_age", &ms, r->d));
    *out_s = ms / 1000;
    return 0;
}

static int read_tls(struct rd *r, const struct sh_node *v)
{
    static const char *const keys[] = {"certs", "min_version",       "sni_strict", "redirect_http",
                                       "hsts",  "handshake_timeout", NULL};
    static const char *const ckeys[] = {"cert", "key", NULL};
    static const char *const hkeys[] = {"max_age", "include_subdomains", NULL};
    struct proxy_tls *t = &r->cfg->tls;
    const struct sh_node *x, *certs;
    struct sockaddr_storage ss;
    struct sh_diag ad;
    char path[64];

    if (v->kind == SH_NODE_SCALAR && !strcmp(v->text, "auto"))
        return fail_at(r, v,
                       "tls: 'auto' (a certificate from the CA) is not supported yet: "
                       "give tls.certs");
    SH_TRY(sh_node_expect(v, SH_NODE_MAP, "tls", r->d));
    SH_TRY(sh_node_check_keys(v, keys, "tls", r->d));
    SH_TRY(sh_node_require(v, "certs", "tls", &certs, r->d));
    SH_TRY(sh_node_expect(certs, SH_NODE_SEQ, "tls.certs", r->d));
    if (certs->count == 0 || certs->count > TLS_MAX_CERTS)
        return fail_at(r, certs, "tls.certs: give 1 to %d certificates", TLS_MAX_CERTS);
    t->certs = arena_alloc(&r->cfg->arena, certs->count * sizeof(*t->certs));
    if (!t->certs) return SH_ENOMEM;
    for (size_t i = 0; i < certs->count; i++) {
        const struct sh_node *c = certs->items[i];
        sh_fmt(path, sizeof(path), "tls.certs[%zu]", i);
        SH_TRY(sh_node_expect(c, SH_NODE_MAP, path, r->d));
        SH_TRY(sh_node_check_keys(c, ckeys, path, r->d));
        SH_TRY(sh_node_require(c, "cert", path, &x, r->d));
        SH_TRY(
            get_str(r, x, sh_fmt(path, sizeof(path), "tls.certs[%zu].cert", i), &t->certs[i].cert));
        SH_TRY(sh_node_require(c, "key", path, &x, r->d));
        SH_TRY(
            get_str(r, x, sh_fmt(path, sizeof(path), "tls.certs[%zu].key", i), &t->certs[i].key));
        t->ncerts = (uint32_t)i + 1;
    }
    if ((x = sh_node_get(v, "min_version"))) {
        const char *s;
        SH_TRY(sh_node_str(x, "tls.min_version", &s, r->d));
        if (!strcmp(s, "1.2"))
            t->min_version = TLS_V1_2;
        else if (!strcmp(s, "1.3"))
            t->min_version = TLS_V1_3;
        else
            return fail_at(r, x, "tls.min_version: '%s' is not one of 1.2, 1.3", s);
    }
    if ((x = sh_node_get(v, "sni_strict")))
        SH_TRY(sh_node_bool(x, "tls.sni_strict", &t->sni_strict, r->d));
    if ((x = sh_node_get(v, "handshake_timeout"))) {
        uint64_t ms;
        SH_TRY(sh_node_duration_ms(x, "tls.handshake_timeout", &ms, r->d));
        if (ms == 0 || ms > 600000) return fail_at(r, x, "tls.handshake_timeout: give 1ms to 10m");
        t->handshake_timeout_ms = (uint32_t)ms;
    }
    if ((x = sh_node_get(v, "redirect_http")) && x->kind != SH_NODE_NULL) {
        SH_TRY(get_str(r, x, "tls.redirect_http", &t->redirect_http));
        if (sh_listen_parse(t->redirect_http, &ss, &ad) < 0)
            return fail_at(r, x, "tls.redirect_http: %s", ad.what);
    }
    if ((x = sh_node_get(v, "hsts"))) {
        const struct sh_node *y;
        SH_TRY(sh_node_expect(x, SH_NODE_MAP, "tls.hsts", r->d));
        SH_TRY(sh_node_check_keys(x, hkeys, "tls.hsts", r->d));
        t->hsts_max_age_s = 365ull * 86400;
        if ((y = sh_node_get(x, "max_age"))) SH_TRY(read_max_age(r, y, &t->hsts_max_age_s));
        if ((y = sh_node_get(x, "include_subdomains")))
            SH_TRY(
                sh_node_bool(y, "tls.hsts.include_subdomains", &t->hsts_include_subdomains, r->d));
        snprintf(t->hsts_field, sizeof(t->hsts_field), "max-age=%llu%s",
                 (unsigned long long)t->hsts_max_age_s,
                 t->hsts_include_subdomains ? "; includeSubDomains" : "");
    }
    t->is_set = true;
    return 0;
}

static int read_inbound(struct rd *r, const struct sh_node *v)
{
    static const char *const keys[] = {"listen", "certs", "client_ca", "trust_domain", NULL};
    static const char *const ckeys[] = {"cert", "key", NULL};
    struct proxy_inbound *t = &r->cfg->inbound;
    const struct sh_node *x, *certs;
    struct sockaddr_storage ss;
    struct sh_diag ad;
    char path[64];

    SH_TRY(sh_node_expect(v, SH_NODE_MAP, "inbound", r->d));
    SH_TRY(sh_node_check_keys(v, keys, "inbound", r->d));
    SH_TRY(sh_node_require(v, "listen", "inbound", &x, r->d));
    SH_TRY(get_str(r, x, "inbound.listen", &t->listen));
    if (sh_listen_parse(t->listen, &ss, &ad) < 0)
        return fail_at(r, x, "inbound.listen: %s", ad.what);
    SH_TRY(sh_node_require(v, "client_ca", "inbound", &x, r->d));
    SH_TRY(get_str(r, x, "inbound.client_ca", &t->client_ca));
    SH_TRY(sh_node_require(v, "trust_domain", "inbound", &x, r->d));
    SH_TRY(get_str(r, x, "inbound.trust_domain", &t->trust_domain));
    if (!t->trust_domain[0] || strchr(t->trust_domain, '/'))
        return fail_at(r, x, "inbound.trust_domain: '%s' is not a trust domain", t->trust_domain);
    SH_TRY(sh_node_require(v, "certs", "inbound", &certs, r->d));
    SH_TRY(sh_node_expect(certs, SH_NODE_SEQ, "inbound.certs", r->d));
    if (certs->count == 0 || certs->count > TLS_MAX_CERTS)
        return fail_at(r, certs, "inbound.certs: give 1 to %d certificates", TLS_MAX_CERTS);
    t->certs = arena_alloc(&r->cfg->arena, certs->count * sizeof(*t->certs));
    if (!t->certs) return SH_ENOMEM;
    for (size_t i = 0; i < certs->count; i++) {
        const struct sh_node *c = certs->items[i];
        sh_fmt(path, sizeof(path), "inbound.certs[%zu]", i);
        SH_TRY(sh_node_expect(c, SH_NODE_MAP, path, r->d));
        SH_TRY(sh_node_check_keys(c, ckeys, path, r->d));
        SH_TRY(sh_node_require(c, "cert", path, &x, r->d));
        SH_TRY(get_str(r, x, sh_fmt(path, sizeof(path), "inbound.certs[%zu].cert", i),
                       &t->certs[i].cert));
        SH_TRY(sh_node_require(c, "key", path, &x, r->d));
        SH_TRY(get_str(r, x, sh_fmt(path, sizeof(path), "inbound.certs[%zu].key", i),
                       &t->certs[i].key));
        t->ncerts = (uint32_t)i + 1;
    }
    t->is_set = true;
    return 0;
}

static int read_identities(struct rd *r, const struct sh_node *v)
{
    static const char *const keys[] = {"service", "cert", "key", NULL};
    struct proxy_config *cfg = r->cfg;
    const struct sh_node *x;
    char path[64];

    SH_TRY(sh_node_expect(v, SH_NODE_SEQ, "identities", r->d));
    if (v->count > 4096) return fail_at(r, v, "identities: at most 4096");
    cfg->identities = arena_alloc(&cfg->arena, (v->count + 1) * sizeof(*cfg->identities));
    if (!cfg->identities) return SH_ENOMEM;
    for (size_t i = 0; i < v->count; i++) {
        const struct sh_node *c = v->items[i];
        struct proxy_identity_cert *id = &cfg->identities[i];
        sh_fmt(path, sizeof(path), "identities[%zu]", i);
        SH_TRY(sh_node_expect(c, SH_NODE_MAP, path, r->d));
        SH_TRY(sh_node_check_keys(c, keys, path, r->d));
        SH_TRY(sh_node_require(c, "service", path, &x, r->d));
        SH_TRY(
            get_str(r, x, sh_fmt(path, sizeof(path), "identities[%zu].service", i), &id->service));
        SH_TRY(sh_node_require(c, "cert", path, &x, r->d));
        SH_TRY(get_str(r, x, sh_fmt(path, sizeof(path), "identities[%zu].cert", i), &id->cert));
        SH_TRY(sh_node_require(c, "key", path, &x, r->d));
        SH_TRY(get_str(r, x, sh_fmt(path, sizeof(path), "identities[%zu].key", i), &id->key));
        for (size_t k = 0; k < i; k++)
            if (!strcmp(cfg->identities[k].service, id->service))
                return fail_at(r, x, "identities[%zu]: '%s' is given twice", i, id->service);
        cfg->nidentities = (uint32_t)i + 1;
    }
    return 0;
}

/* mTLS clusters: a client context per (cluster, identity), the files loaded now. */
static int build_mtls(struct rd *r)
{
    struct proxy_config *cfg = r->cfg;
    uint32_t need = 0;

    for (uint32_t i = 0; i < cfg->nclusters; i++)
        if (cfg->clusters[i].mtls.is_set) need += cfg->nidentities;
    if (need == 0) return 0;
    cfg->tls_clients = sh_calloc(need, sizeof(*cfg->tls_clients));
    if (!cfg->tls_clients) return SH_ENOMEM;
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        struct proxy_mtls *t = &cfg->clusters[i].mtls;
        if (!t->is_set) continue;
        t->by_id = &cfg->tls_clients[cfg->ntls_clients];
        for (uint32_t k = 0; k < cfg->nidentities; k++) {
            const struct proxy_identity_cert *id = &cfg->identities[k];
            struct tls_client_config tc = {.cert = {id->cert, id->key}, .ca = t->ca};
            SH_TRY(tls_client_new(&tc, &cfg->tls_clients[cfg->ntls_clients], r->d));
            cfg->ntls_clients++;
        }
    }
    return 0;
}

static int read_top(struct rd *r, const struct sh_node *root)
{
    static const char *const keys[] = {
        "listen", "workers",  "admin",   "access_log", "limits",  "control_plane", "clusters",
        "routes", "identity", "tracing", "tls",        "inbound", "identities",    NULL};
    static const char *const lkeys[] = {"max_request_line", "max_field_line", "max_head",
                                        "max_fields",       "max_body",       NULL};
    struct proxy_config *cfg = r->cfg;
    const struct sh_node *v;
    struct sockaddr_storage ss;
    struct sh_diag ad;

    SH_TRY(sh_node_expect(root, SH_NODE_MAP, "the file", r->d));
    SH_TRY(sh_node_check_keys(root, keys, "top level", r->d));
    if ((v = sh_node_get(root, "listen"))) {
        SH_TRY(get_str(r, v, "listen", &cfg->listen));
        if (sh_listen_parse(cfg->listen, &ss, &ad) < 0) return fail_at(r, v, "listen: %s", ad.what);
    }
    if ((v = sh_node_get(root, "admin")) && v->kind != SH_NODE_NULL) {
        SH_TRY(get_str(r, v, "admin", &cfg->admin));
        if (sh_listen_parse(cfg->admin, &ss, &ad) < 0) return fail_at(r, v, "admin: %s", ad.what);
    }
    if ((v = sh_node_get(root, "control_plane"))) {
        static const char *const ck[] = {"address", "token", NULL};
        const struct sh_node *x;
        SH_TRY(sh_node_check_keys(v, ck, "control_plane", r->d));
        SH_TRY(sh_node_require(v, "address", "control_plane", &x, r->d));
        SH_TRY(get_str(r, x, "control_plane.address", &cfg->control_plane));
        if (sh_addr_parse(cfg->control_plane, &ss, &ad) < 0)
            return fail_at(r, x, "control_plane.address: %s", ad.what);
        if ((x = sh_node_get(v, "token")))
            SH_TRY(get_str(r, x, "control_plane.token", &cfg->control_plane_token));
    }
    if ((v = sh_node_get(root, "workers"))) SH_TRY(get_u32(r, v, "workers", 0, 256, &cfg->workers));
    if ((v = sh_node_get(root, "access_log")))
        SH_TRY(sh_node_bool(v, "access_log", &cfg->access_log, r->d));
    if ((v = sh_node_get(root, "identity"))) SH_TRY(read_identity(r, v, &cfg->identity));
    if ((v = sh_node_get(root, "tls"))) SH_TRY(read_tls(r, v));
    if ((v = sh_node_get(root, "inbound"))) SH_TRY(read_inbound(r, v));
    if ((v = sh_node_get(root, "identities"))) SH_TRY(read_identities(r, v));
    if ((v = sh_node_get(root, "tracing"))) {
        SH_TRY(sh_schema_read(&tracing_schema, v, "tracing", &cfg->tracing, r, r->d));
        cfg->tracing.is_set = true;
    }
    if ((v = sh_node_get(root, "limits"))) {
        const struct sh_node *x;
        uint64_t sz;
        SH_TRY(sh_node_check_keys(v, lkeys, "limits", r->d));
        if ((x = sh_node_get(v, "max_request_line"))) {
            SH_TRY(sh_node_size(x, "limits.max_request_line", &sz, r->d));
            cfg->limits.max_request_line = (uint32_t)SH_MIN(sz, HTTP_MAX_HEAD_CAP);
        }
        if ((x = sh_node_get(v, "max_field_line"))) {
            SH_TRY(sh_node_size(x, "limits.max_field_line", &sz, r->d));
            cfg->limits.max_field_line = (uint32_t)SH_MIN(sz, HTTP_MAX_HEAD_CAP);
        }
        if ((x = sh_node_get(v, "max_head"))) {
            SH_TRY(sh_node_size(x, "limits.max_head", &sz, r->d));
            cfg->limits.max_head = (uint32_t)SH_MIN(sz, HTTP_MAX_HEAD_CAP);
        }
        if ((x = sh_node_get(v, "max_fields")))
            SH_TRY(get_u32(r, x, "limits.max_fields", 1, HTTP_MAX_FIELDS_CAP,
                           &cfg->limits.max_fields));
        if ((x = sh_node_get(v, "max_body")))
            SH_TRY(sh_node_size(x, "limits.max_body", &cfg->limits.max_body, r->d));
    }
    if ((v = sh_node_get(root, "clusters"))) {
        SH_TRY(sh_node_expect(v, SH_NODE_SEQ, "clusters", r->d));
        cfg->clusters = arena_alloc(&cfg->arena, (v->count + 1) * sizeof(*cfg->clusters));
        if (!cfg->clusters) return SH_ENOMEM;
        for (size_t i = 0; i < v->count; i++) {
            SH_TRY(read_cluster(r, v->items[i], i, &cfg->clusters[i]));
            for (uint32_t k = 0; k < i; k++) {
                if (strcmp(cfg->clusters[k].name, cfg->clusters[i].name) == 0)
                    return fail_at(r, v->items[i], "clusters[%zu]: a cluster named '%s' exists", i,
                                   cfg->clusters[i].name);
            }
            cfg->nclusters = (uint32_t)i + 1;
        }
    }
    SH_TRY(sh_node_require(root, "routes", "top level", &v, r->d));
    SH_TRY(sh_node_expect(v, SH_NODE_SEQ, "routes", r->d));
    cfg->routes = arena_alloc(&cfg->arena, (v->count + 1) * sizeof(*cfg->routes));
    if (!cfg->routes) return SH_ENOMEM;
    memset(cfg->routes, 0, (v->count + 1) * sizeof(*cfg->routes));
    for (size_t i = 0; i < v->count; i++) {
        SH_TRY(read_route(r, v->items[i], i, &cfg->routes[i]));
        cfg->nroutes = (uint32_t)i + 1;
    }
    return 0;
}

int proxy_config_from_doc(const struct sh_doc *doc, const struct proxy_resolver *res,
                          struct proxy_config **out, struct sh_diag *d)
{
    struct proxy_config *cfg;
    struct rd r;
    int rc;

    *out = NULL;
    rc = proxy_config_new(&cfg);
    if (rc < 0) return rc;
    r = (struct rd){.cfg = cfg, .res = res, .d = d};
    rc = read_top(&r, doc->root);
    if (rc == 0) rc = build_mtls(&r);
    if (rc == 0) rc = proxy_config_finish(cfg, d);
    if (rc == 0) rc = render_json(cfg);
    if (rc < 0) {
        if (rc == SH_ENOMEM) sh_diag_set(d, doc->file, "out of memory");
        proxy_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}
