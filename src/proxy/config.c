/* SPDX-License-Identifier: MIT */
/* config.c: the gateway's configuration: defaults, validation, derived tables, and the
 * reading of a document tree (YAML) into it. Every string and array of a config lives in its
 * arena, so freeing a config is one call. */
#include "proxy/proxy.h"
#include "tls/tls.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

void proxy_cluster_defaults(struct proxy_cluster *cl)
{
    memset(cl, 0, sizeof(*cl));
    cl->lb = PROXY_LB_ROUND_ROBIN;
    cl->timeouts = (struct proxy_timeouts){
        .connect_ms = 2000, .per_try_ms = 15000, .request_ms = 30000, .idle_ms = 60000};
    cl->retry = (struct proxy_retry){
        .max_retries = 2,
        .on = PROXY_RETRY_CONNECT | PROXY_RETRY_RESET | PROXY_RETRY_TIMEOUT,
        .backoff_base_ms = 25,
        .backoff_max_ms = 250,
        .budget_ratio = 0.2,
        .budget_min_per_s = 10,
    };
    cl->breaker = (struct proxy_breaker){
        .consecutive_failures = 0,
        .error_ratio = 0.5,
        .window_ms = 10000,
        .min_requests = 20,
        .open_ms = 5000,
        .max_requests = 1024,
        .max_pending = 1024,
    };
    cl->outlier = (struct proxy_outlier){
        .consecutive_errors = 5,
        .base_ejection_ms = 30000,
        .max_ejection_ms = 300000,
        .max_ejection_percent = 50,
        .panic_percent = 50,
    };
    cl->health = (struct proxy_health){
        .path = NULL,
        .expect_status = 0,
        .interval_ms = 5000,
        .timeout_ms = 2000,
        .healthy_threshold = 2,
        .unhealthy_threshold = 3,
    };
}

int proxy_config_new(struct proxy_config **out)
{
    struct proxy_config *cfg = sh_calloc(1, sizeof(*cfg));

    *out = NULL;
    if (!cfg) return SH_ENOMEM;
    arena_init(&cfg->arena, 16384, 0);
    cfg->listen = "127.0.0.1:8080";
    cfg->workers = 0;
    cfg->access_log = true;
    cfg->limits = HTTP_LIMITS_DEFAULT;
    cfg->tracing.sample = 1.0;
    cfg->tracing.slow_ms = 1000;
    *out = cfg;
    return 0;
}

void proxy_config_free(struct proxy_config *cfg)
{
    if (!cfg) return;
    for (uint32_t i = 0; i < cfg->nkeysets; i++)
        sec_jwks_free(cfg->keysets[i]);
    sh_free(cfg->keysets);
    for (uint32_t i = 0; i < cfg->ntls_clients; i++)
        tls_client_free(cfg->tls_clients[i]);
    sh_free(cfg->tls_clients);
    arena_release(&cfg->arena);
    sh_free(cfg);
}

int proxy_cluster_index(const struct proxy_config *cfg, const char *name)
{
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        if (strcmp(cfg->clusters[i].name, name) == 0) return (int)i;
    }
    return -1;
}

int proxy_config_finish(struct proxy_config *cfg, struct sh_diag *d)
{
    for (uint32_t i = 0; i < cfg->nclusters; i++) {
        struct proxy_cluster *cl = &cfg->clusters[i];
        for (uint32_t k = 0; k < i; k++) {
            if (strcmp(cfg->clusters[k].name, cl->name) == 0) {
                sh_diag_set(d, "clusters", "two clusters are named '%s'", cl->name);
                return SH_EPARSE;
            }
        }
        for (uint32_t e = 0; e < cl->nendpoints; e++) {
            if (cl->endpoints[e].weight == 0) cl->endpoints[e].weight = 1;
        }
        if (proxy__lb_build(cl, &cfg->arena) < 0) return SH_ENOMEM;
    }
    for (uint32_t i = 0; i < cfg->nroutes; i++) {
        struct proxy_route *r = &cfg->routes[i];
        if (r->action == PROXY_ACT_FORWARD && r->cluster >= cfg->nclusters) {
            sh_diag_set(d, "routes", "route '%s' names no cluster", r->name);
            return SH_EPARSE;
        }
        r->split_total = 0;
        for (uint32_t k = 0; k < r->nsplits; k++) {
            if (r->splits[k].cluster >= cfg->nclusters) {
                sh_diag_set(d, "routes", "route '%s' splits to a missing cluster", r->name);
                return SH_EPARSE;
            }
            r->split_total += r->splits[k].weight;
        }
        if (r->action == PROXY_ACT_SPLIT && r->split_total == 0) {
            sh_diag_set(d, "routes", "route '%s': split weights add up to 0", r->name);
            return SH_EPARSE;
        }
        if (r->fallback.enabled) {
            if (!r->fallback.max_entry_bytes) r->fallback.max_entry_bytes = 64 * 1024;
            if (!r->fallback.max_total_bytes) r->fallback.max_total_bytes = 8 * 1024 * 1024;
            if (!r->fallback.max_age_ms) r->fallback.max_age_ms = 300000;
        }
    }
    return 0;
}

int proxy__endpoint_index(const struct proxy_cluster *cl, const struct proxy_endpoint *ep)
{
    for (uint32_t i = 0; i < cl->nendpoints; i++) {
        if (cl->endpoints[i].generation == ep->generation &&
            strcmp(cl->endpoints[i].name, ep->name) == 0)
            return (int)i;
    }
    return -1;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool proxy__route_state_carries(const struct proxy_route *a, const struct proxy_route *b)
{
    const struct proxy_fallback *fa = &a->fallback, *fb = &b->fallback;
    const struct proxy_ratelimit *ra = &a->ratelimit, *rb = &b->ratelimit;

    return same_str(a->name, b->name) && fa->enabled == fb->enabled &&
           fa->per_credential == fb->per_credential && fa->max_entry_bytes == fb->max_entry_bytes &&
           fa->max_total_bytes == fb->max_total_bytes && fa->max_age_ms == fb->max_age_ms &&
           ra->rate_per_s == rb->rate_per_s && ra->burst == rb->burst && ra->key == rb->key &&
           same_str(ra->header, rb->header);
}
