/* SPDX-License-Identifier: MIT */
/* routes_registry.c: the registry over HTTP: Consul's agent and catalog/health routes (the
 * shapes Prometheus' consul_sd, consul-template and Consul-registering frameworks read and
 * write), and Prometheus' http_sd target list. */
#include "admin/admin.h"
#include "admin/admin_int.h"
#include "registry/registry.h"

#include <stdio.h>
#include <string.h>

static bool reg_ready(struct admin_req *r)
{
    if (r->a->cfg.registry) return true;
    admin__reply_error(r, 503, NULL, "the registry is not running");
    return false;
}

/* ------------------------------------------------------------------------------------------
 * Blocking queries: run the handler again when the service's index passes ?index, or at the
 * deadline (Consul's semantics: answer either way, with the current index).
 * ------------------------------------------------------------------------------------------ */
static void rerun(void *data, int rc, int64_t index)
{
    struct admin_req *r = data;

    (void)index;
    admin__unpark(r);
    if (rc == SH_ECANCELED) {
        admin__reply_error(r, 503, NULL, "shutting down");
        return;
    }
    r->waited = true;
    r->route->fn(r);
}

static void wait_cancel(struct admin_req *r)
{
    registry_wait_cancel(r->wait);
}

/* true when the request was parked (the handler returns and runs again later) or answered
 * (bad ?index or ?wait) */
static bool block_if_unchanged(struct admin_req *r, const char *service)
{
    uint64_t index, wait_ms;
    struct registry_waiter *w;

    if (r->waited) return false;
    if (admin__blocking_params(r, &index, &wait_ms) < 0) return true; /* answered 400 */
    if (!index || (uint64_t)registry_index(r->a->cfg.registry, service) > index) return false;
    if (registry_wait(r->a->cfg.registry, service, (int64_t)index, wait_ms + wait_ms / 16, rerun, r,
                      &w) < 0)
        return false;
    admin__park(r, w, wait_cancel);
    return true;
}

/* ------------------------------------------------------------------------------------------
 * Writes (Consul agent API)
 * ------------------------------------------------------------------------------------------ */
static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A Consul duration ("10s", "1m", "500ms"); 0 when absent. -1 on a bad one. */
static int64_t jdur(json_t *o, const char *key)
{
    const char *s = jstr(o, key);
    uint64_t ms;

    if (!s || !*s) return 0;
    if (sh_parse_duration_ms(slice_from_cstr(s), &ms, NULL) != 0 || ms > UINT32_MAX) return -1;
    return (int64_t)ms;
}

/* A check's initial Status ("passing", "warning", "critical"); absent leaves the registry's
 * default (critical until the first result, as Consul does). -1 on another value. */
static int status_from_name(const char *name, enum registry_health *out)
{
    static const enum registry_health all[] = {REGISTRY_PASSING, REGISTRY_WARNING,
                                               REGISTRY_CRITICAL};

    if (!name || !*name) return 0;
    for (size_t i = 0; i < SH_ARRAY_LEN(all); i++) {
        if (strcmp(name, registry_health_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

void admin__service_register(struct admin_req *r)
{
    json_t *body, *v, *check;
    struct registry_instance in = {0};
    struct arena *a = http_exchange_arena(r->ex);
    struct sh_diag d = {{0}, {0}};
    int64_t index;
    char field[96];

    if (!reg_ready(r) || !(body = admin__body_json(r, JSON_OBJECT))) return;
    in.service = jstr(body, "Name");
    in.id = jstr(body, "ID") ? jstr(body, "ID") : in.service;
    in.address = jstr(body, "Address") ? jstr(body, "Address") : "127.0.0.1";
    in.version = jstr(body, "Version");
    v = json_object_get(body, "Port");
    if (v && !json_is_integer(v)) {
        json_decref(body);
        admin__reply_error(r, 400, "Port", "Port must be a number");
        return;
    }
    in.port = v ? (uint32_t)json_integer_value(v) : 0;
    if ((v = json_object_get(body, "Tags")) && json_is_array(v)) {
        const char **tags = arena_alloc(a, (json_array_size(v) + 1) * sizeof(char *));
        size_t i, n = 0;
        json_t *t;
        json_array_foreach(v, i, t)
        {
            if (tags && json_is_string(t)) tags[n++] = json_string_value(t);
        }
        in.tags = tags;
        in.tag_count = n;
    }
    if ((v = json_object_get(body, "Meta")) && json_is_object(v)) {
        struct registry_meta *meta = arena_alloc(a, (json_object_size(v) + 1) * sizeof(*meta));
        const char *k;
        json_t *mv;
        size_t n = 0;
        json_object_foreach(v, k, mv)
        {
            if (meta && json_is_string(mv))
                meta[n++] = (struct registry_meta){k, json_string_value(mv)};
        }
        in.meta = meta;
        in.meta_count = n;
        if (!in.version && (mv = json_object_get(v, "version")) && json_is_string(mv))
            in.version = json_string_value(mv);
    }
    if ((v = json_object_get(body, "Weights")) && json_is_object(v) &&
        json_is_integer(json_object_get(v, "Passing")))
        in.weight = (uint32_t)json_integer_value(json_object_get(v, "Passing"));
    check = json_object_get(body, "Check");
    v = json_object_get(body, "Checks");
    if (!json_is_object(check) && json_is_array(v) && json_array_size(v) > 0) {
        /* clients send a list as "Checks"; an instance here has one check (Consul names a
         * lone one "service:<id>" too) */
        if (json_array_size(v) > 1) {
            json_decref(body);
            admin__reply_error(r, 400, "Checks", "shoal keeps one check per service instance");
            return;
        }
        check = json_array_get(v, 0);
    }
    if (check && json_is_object(check)) {
        const char *http = jstr(check, "HTTP"), *tcp = jstr(check, "TCP");
        int64_t interval = jdur(check, "Interval"), timeout = jdur(check, "Timeout");
        int64_t ttl = jdur(check, "TTL"), dereg = jdur(check, "DeregisterCriticalServiceAfter");
        if (interval < 0 || timeout < 0 || ttl < 0 || dereg < 0) {
            json_decref(body);
            admin__reply_error(r, 400, "Check", "a duration in Check is not valid (e.g. 10s)");
            return;
        }
        if (http) {
            /* Consul takes a URL; we probe the instance's own address at its path */
            const char *p = strstr(http, "://");
            p = p ? strchr(p + 3, '/') : NULL;
            in.check.kind = REGISTRY_CHECK_HTTP;
            in.check.path = p ? p : "/";
        } else if (tcp) {
            in.check.kind = REGISTRY_CHECK_TCP;
        } else if (ttl) {
            in.check.kind = REGISTRY_CHECK_TTL;
        }
        if (status_from_name(jstr(check, "Status"), &in.status) < 0) {
            json_decref(body);
            admin__reply_error(r, 400, "Check.Status",
                               "Status must be \"passing\", \"warning\" or \"critical\"");
            return;
        }
        in.check.interval_ms = (uint32_t)interval;
        in.check.timeout_ms = (uint32_t)timeout;
        in.check.ttl_ms = (uint32_t)ttl;
        in.check.deregister_after_ms = (uint32_t)dereg;
    }
    int rc = registry_register(r->a->cfg.registry, &in, &d, &index);
    json_decref(body);
    if (rc < 0) {
        snprintf(field, sizeof(field), "%s", d.where[0] ? d.where : "body");
        admin__reply_error(r, rc == SH_EPARSE || rc == SH_EINVAL || rc == SH_ETOOBIG ? 400 : 500,
                           field, d.what[0] ? d.what : sh_strerror(rc));
        return;
    }
    admin__reply_raw(r, 200, "application/json", SLICE(""), (uint64_t)index);
}

void admin__service_deregister(struct admin_req *r)
{
    int64_t index;
    int rc;

    if (!reg_ready(r)) return;
    rc = registry_deregister(r->a->cfg.registry, r->rest, &index);
    if (rc == SH_ENOENT) {
        admin__reply_error(r, 404, "id", "no such service instance");
        return;
    }
    if (rc < 0) {
        admin__reply_error(r, 500, NULL, sh_strerror(rc));
        return;
    }
    admin__reply_raw(r, 200, "application/json", SLICE(""), (uint64_t)index);
}

/* /v1/agent/check/{pass,warn,fail}/<check id>; Consul names a service's check "service:<id>" */
static void check_update(struct admin_req *r, enum registry_health h)
{
    const char *id = r->rest, *note = admin__query(r, "note");
    int rc;

    if (!reg_ready(r)) return;
    if (strncmp(id, "service:", 8) == 0) id += 8;
    rc = registry_heartbeat(r->a->cfg.registry, id, h, note);
    if (rc == SH_ENOENT) {
        admin__reply_error(r, 404, "check", "no such check");
        return;
    }
    if (rc < 0) {
        admin__reply_error(r, 400, "check", sh_strerror(rc));
        return;
    }
    admin__reply_raw(r, 200, "application/json", SLICE(""), 0);
}

void admin__check_pass(struct admin_req *r)
{
    check_update(r, REGISTRY_PASSING);
}

void admin__check_warn(struct admin_req *r)
{
    check_update(r, REGISTRY_WARNING);
}

void admin__check_fail(struct admin_req *r)
{
    check_update(r, REGISTRY_CRITICAL);
}

/* ------------------------------------------------------------------------------------------
 * Reads (catalog, health, Prometheus SD)
 * ------------------------------------------------------------------------------------------ */
static json_t *tags_json(const struct registry_instance *in)
{
    json_t *t = json_array();

    for (size_t i = 0; i < in->tag_count; i++)
        json_array_append_new(t, json_string(in->tags[i]));
    return t;
}

static json_t *meta_json(const struct registry_instance *in)
{
    json_t *m = json_object();

    for (size_t i = 0; i < in->meta_count; i++)
        json_object_set_new(m, in->meta[i].key, json_string(in->meta[i].value));
    if (in->version && *in->version && !json_object_get(m, "version"))
        json_object_set_new(m, "version", json_string(in->version));
    return m;
}

static const char *node_of(struct admin_req *r, const struct registry_instance *in)
{
    return in->node && *in->node ? in->node : r->a->node;
}

void admin__catalog_services(struct admin_req *r)
{
    struct registry_result res = {0};
    json_t *o;

    char key[512];

    if (!reg_ready(r) || block_if_unchanged(r, NULL)) return;
    admin__cache_key(r, key, sizeof(key));
    if (admin__cache_reply(r, key, (uint64_t)registry_index(r->a->cfg.registry, NULL))) return;
    if (registry_services(r->a->cfg.registry, &res) < 0) {
        admin__reply_error(r, 500, NULL, "cannot list services");
        return;
    }
    o = json_object();
    for (size_t i = 0; i < res.service_count; i++) {
        json_t *t = json_array();
        for (size_t k = 0; k < res.services[i].tag_count; k++)
            json_array_append_new(t, json_string(res.services[i].tags[k]));
        json_object_set_new(o, res.services[i].name, t);
    }
    uint64_t index = (uint64_t)res.index;
    registry_result_release(&res);
    admin__reply_json_cached(r, o, index, key);
}

/* Consul's ?tag=x (repeatable): the tags an instance must all carry, decoded once per request
 * into the arena. 0 and *count = 0 when none asked; -1 when out of memory (reply sent). */
struct tag_filter {
    const char **tags;
    size_t count;
};

static int tag_filter_init(struct admin_req *r, struct tag_filter *f)
{
    f->tags = NULL;
    f->count = 0;
    while (admin__query_nth(r, "tag", f->count))
        f->count++;
    if (f->count == 0) return 0;
    f->tags = arena_alloc(http_exchange_arena(r->ex), f->count * sizeof(*f->tags));
    if (!f->tags) {
        admin__reply_error(r, 503, NULL, "out of memory");
        return -1;
    }
    for (size_t n = 0; n < f->count; n++)
        f->tags[n] = admin__query_nth(r, "tag", n);
    return 0;
}

static bool tag_filter_match(const struct tag_filter *f, const struct registry_instance *in)
{
    for (size_t n = 0; n < f->count; n++) {
        bool found = false;
        for (size_t i = 0; i < in->tag_count && !found; i++)
            found = strcmp(in->tags[i], f->tags[n]) == 0;
        if (!found) return false;
    }
    return true;
}

static int instances(struct admin_req *r, enum registry_filter f, struct registry_result *res)
{
    if (registry_instances(r->a->cfg.registry, r->rest, f, res) < 0) {
        admin__reply_error(r, 500, NULL, "cannot list instances");
        return -1;
    }
    return 0;
}

void admin__catalog_service(struct admin_req *r)
{
    struct registry_result res = {0};
    struct tag_filter tf;

    char key[512];

    if (!reg_ready(r) || block_if_unchanged(r, r->rest)) return;
    admin__cache_key(r, key, sizeof(key));
    if (admin__cache_reply(r, key, (uint64_t)registry_index(r->a->cfg.registry, r->rest))) return;
    if (tag_filter_init(r, &tf) < 0 || instances(r, REGISTRY_FILTER_ALL, &res) < 0) return;
    json_t *arr = json_array();
    for (size_t i = 0; i < res.count; i++) {
        const struct registry_instance *in = &res.instances[i];
        if (!tag_filter_match(&tf, in)) continue;
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:{}, s:{}, s:s, s:s, s:o, s:s, s:i, s:o, "
                           "s:{s:i, s:i}}",
                           "ID", in->id, "Node", node_of(r, in), "Address", in->address,
                           "Datacenter", r->a->cfg.datacenter, "TaggedAddresses", "NodeMeta",
                           "ServiceID", in->id, "ServiceName", in->service, "ServiceTags",
                           tags_json(in), "ServiceAddress", in->address, "ServicePort",
                           (int)in->port, "ServiceMeta", meta_json(in), "ServiceWeights", "Passing",
                           (int)(in->weight ? in->weight : 1), "Warning", 1));
    }
    uint64_t index = (uint64_t)res.index;
    registry_result_release(&res);
    admin__reply_json_cached(r, arr, index, key);
}

void admin__health_service(struct admin_req *r)
{
    struct registry_result res = {0};
    bool passing = admin__query(r, "passing") != NULL;
    struct tag_filter tf;

    char key[512];

    if (!reg_ready(r) || block_if_unchanged(r, r->rest)) return;
    admin__cache_key(r, key, sizeof(key));
    if (admin__cache_reply(r, key, (uint64_t)registry_index(r->a->cfg.registry, r->rest))) return;
    if (tag_filter_init(r, &tf) < 0 ||
        instances(r, passing ? REGISTRY_FILTER_PASSING : REGISTRY_FILTER_ALL, &res) < 0)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < res.count; i++) {
        const struct registry_instance *in = &res.instances[i];
        char check_id[160];
        if (!tag_filter_match(&tf, in)) continue;
        snprintf(check_id, sizeof(check_id), "service:%s", in->id);
        json_t *node = json_pack("{s:s, s:s, s:s, s:s, s:{}, s:{}}", "ID", node_of(r, in), "Node",
                                 node_of(r, in), "Address", in->address, "Datacenter",
                                 r->a->cfg.datacenter, "TaggedAddresses", "Meta");
        json_t *svc =
            json_pack("{s:s, s:s, s:o, s:s, s:i, s:o, s:{s:i, s:i}, s:{}}", "ID", in->id, "Service",
                      in->service, "Tags", tags_json(in), "Address", in->address, "Port",
                      (int)in->port, "Meta", meta_json(in), "Weights", "Passing",
                      (int)(in->weight ? in->weight : 1), "Warning", 1, "TaggedAddresses");
        json_t *chk = json_pack("[{s:s, s:s, s:s, s:s, s:s, s:s, s:s}]", "Node", node_of(r, in),
                                "CheckID", check_id, "Name", "service health", "Status",
                                registry_health_name(in->status), "ServiceID", in->id,
                                "ServiceName", in->service, "Output", in->note ? in->note : "");
        json_array_append_new(
            arr, json_pack("{s:o, s:o, s:o}", "Node", node, "Service", svc, "Checks", chk));
    }
    uint64_t index = (uint64_t)res.index;
    registry_result_release(&res);
    admin__reply_json_cached(r, arr, index, key);
}

/* Prometheus http_sd: one target group per passing instance, labelled. */
void admin__prometheus_sd(struct admin_req *r)
{
    struct registry_result svcs = {0};
    json_t *arr;

    if (!reg_ready(r)) return;
    if (registry_services(r->a->cfg.registry, &svcs) < 0) {
        admin__reply_error(r, 500, NULL, "cannot list services");
        return;
    }
    arr = json_array();
    for (size_t s = 0; s < svcs.service_count; s++) {
        struct registry_result res = {0};
        if (registry_instances(r->a->cfg.registry, svcs.services[s].name, REGISTRY_FILTER_PASSING,
                               &res) < 0)
            continue;
        for (size_t i = 0; i < res.count; i++) {
            const struct registry_instance *in = &res.instances[i];
            char target[320];
            snprintf(target, sizeof(target), strchr(in->address, ':') ? "[%s]:%u" : "%s:%u",
                     in->address, in->port);
            json_t *labels =
                json_pack("{s:s, s:s, s:s, s:s}", "__meta_shoal_service", in->service,
                          "__meta_shoal_instance", in->id, "__meta_shoal_node", node_of(r, in),
                          "__meta_shoal_version", in->version ? in->version : "");
            for (size_t k = 0; k < in->meta_count; k++) {
                char name[200];
                size_t n =
                    (size_t)snprintf(name, sizeof(name), "__meta_shoal_meta_%s", in->meta[k].key);
                for (size_t c = 18; c < n && c < sizeof(name); c++) {
                    char ch = name[c];
                    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '_'))
                        name[c] = '_'; /* label names are [a-zA-Z0-9_] */
                }
                json_object_set_new(labels, name, json_string(in->meta[k].value));
            }
            json_array_append_new(arr,
                                  json_pack("{s:[s], s:o}", "targets", target, "labels", labels));
        }
        registry_result_release(&res);
    }
    registry_result_release(&svcs);
    admin__reply_json(r, 200, arr);
}

/* For proxies (which speak no JSON): the passing instances of a service as text lines
 * "address:port weight generation", with X-Consul-Index and blocking ?index&wait like the
 * rest. The generation is when the registration began: a restarted instance registered again
 * at the same address is a new endpoint to the proxies (nothing learnt about the old one, such
 * as an outlier ejection, applies to it). */
void admin__sd_endpoints(struct admin_req *r)
{
    struct registry_result res = {0};
    struct buf b = BUF_INIT(4 << 20);

    if (!reg_ready(r) || block_if_unchanged(r, r->rest) ||
        instances(r, REGISTRY_FILTER_PASSING, &res) < 0)
        return;
    for (size_t i = 0; i < res.count; i++) {
        const struct registry_instance *in = &res.instances[i];
        buf_appendf(&b, strchr(in->address, ':') ? "[%s]:%u %u %llu\n" : "%s:%u %u %llu\n",
                    in->address, in->port, in->weight ? in->weight : 1,
                    (unsigned long long)in->registered_ms);
    }
    uint64_t index = (uint64_t)res.index;
    registry_result_release(&res);
    if (b.err) {
        buf_release(&b);
        admin__reply_error(r, 500, NULL, "too many instances");
        return;
    }
    /* the index header is what the proxy's long poll resumes from */
    admin__reply_raw_consul(r, 200, "text/plain", buf_slice(&b), index);
    buf_release(&b);
}
