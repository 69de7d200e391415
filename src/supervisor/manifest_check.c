/* SPDX-License-Identifier: MIT */
/* manifest_check.c: `shoal check`: a manifest read (manifest_schema.c), its gateway document
 * checked by the proxy's reader when the caller passes it, and the summary line or the JSON
 * of what would run. Keeps no state; any thread. */
#include "supervisor/supervisor.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * shoal check: summary and JSON
 * ------------------------------------------------------------------------------------------ */
static void json_str(struct buf *b, const char *v)
{
    if (!v) {
        buf_appends(b, SLICE("null"));
        return;
    }
    buf_appendc(b, '"');
    buf_append_json_str(b, slice_from_cstr(v));
    buf_appendc(b, '"');
}

static void json_kvs(struct buf *b, const char *key, const struct manifest_kv *kv, size_t n)
{
    buf_appendf(b, ",\"%s\":{", key);
    for (size_t i = 0; i < n; i++) {
        if (i) buf_appendc(b, ',');
        json_str(b, kv[i].name);
        buf_appendc(b, ':');
        json_str(b, kv[i].value);
    }
    buf_appendc(b, '}');
}

static void render_service(struct buf *b, const struct manifest_service *s)
{
    static const char *const restart[] = {"always", "on-failure", "never"};
    static const char *const hk[] = {"none", "http", "tcp"};
    static const char *const tk[] = {"", "in_flight", "rps", "p99_ms"};

    buf_appends(b, SLICE("{\"name\":"));
    json_str(b, s->name);
    buf_appends(b, SLICE(",\"command\":["));
    for (size_t i = 0; i < s->argc; i++) {
        if (i) buf_appendc(b, ',');
        json_str(b, s->argv[i]);
    }
    buf_appendc(b, ']');
    json_kvs(b, "env", s->env, s->env_count);
    buf_appends(b, SLICE(",\"working_dir\":"));
    json_str(b, s->working_dir);
    buf_appendf(b, ",\"replicas\":%u,\"port\":", s->replicas);
    if (s->is_port_auto)
        buf_appends(b, SLICE("\"auto\""));
    else if (s->port)
        buf_appendf(b, "%u", s->port);
    else
        buf_appends(b, SLICE("null"));
    buf_appends(b, SLICE(",\"health\":"));
    if (s->health.kind == MANIFEST_HEALTH_NONE) {
        buf_appends(b, SLICE("null"));
    } else {
        buf_appendf(b, "{\"kind\":\"%s\",\"http\":", hk[s->health.kind]);
        json_str(b, s->health.http_path);
        buf_appendf(b,
                    ",\"interval_ms\":%u,\"timeout_ms\":%u,\"healthy_threshold\":%u,"
                    "\"unhealthy_threshold\":%u,\"start_period_ms\":%u}",
                    s->health.interval_ms, s->health.timeout_ms, s->health.healthy_threshold,
                    s->health.unhealthy_threshold, s->health.start_period_ms);
    }
    buf_appends(b, SLICE(",\"depends_on\":["));
    for (size_t i = 0; i < s->depends_count; i++) {
        if (i) buf_appendc(b, ',');
        json_str(b, s->depends_on[i]);
    }
    buf_appendf(b, "],\"restart\":\"%s\",\"stop_grace_ms\":%u,\"version\":", restart[s->restart],
                s->stop_grace_ms);
    json_str(b, s->version);
    buf_appends(b, SLICE(",\"autoscale\":"));
    if (!s->autoscale.is_set)
        buf_appends(b, SLICE("null"));
    else
        buf_appendf(b,
                    "{\"min\":%u,\"max\":%u,\"target\":{\"%s\":%llu},\"up_cooldown_ms\":%u,"
                    "\"down_cooldown_ms\":%u}",
                    s->autoscale.min, s->autoscale.max, tk[s->autoscale.target_kind],
                    (unsigned long long)s->autoscale.target, s->autoscale.up_cooldown_ms,
                    s->autoscale.down_cooldown_ms);
    buf_appendf(b, ",\"has_resilience\":%s", s->resilience ? "true" : "false");
    json_kvs(b, "config", s->config, s->config_count);
    buf_appendc(b, '}');
}

static int render(const struct manifest *m, bool is_json, char **out)
{
    struct buf b = BUF_INIT(16u << 20);
    uint64_t inst = manifest_instance_count(m);

    if (!is_json) {
        buf_appendf(&b, "%s: ok (%zu service%s, %llu instance%s, ", m->file, m->service_count,
                    m->service_count == 1 ? "" : "s", (unsigned long long)inst,
                    inst == 1 ? "" : "s");
        if (m->gateway.is_set)
            buf_appendf(&b, "gateway on %s)\n", m->gateway.listen);
        else
            buf_appends(&b, SLICE("no gateway)\n"));
    } else {
        buf_appends(&b, SLICE("{\"file\":"));
        json_str(&b, m->file);
        buf_appends(&b, SLICE(",\"name\":"));
        json_str(&b, m->name);
        buf_appends(&b, SLICE(",\"control_plane\":{\"listen\":"));
        json_str(&b, m->control_plane_listen);
        buf_appends(&b, SLICE("},\"data_dir\":"));
        json_str(&b, m->data_dir);
        buf_appendf(&b, ",\"instances\":%llu,\"services\":[", (unsigned long long)inst);
        for (size_t i = 0; i < m->service_count; i++) {
            if (i) buf_appendc(&b, ',');
            render_service(&b, &m->services[i]);
        }
        buf_appends(&b, SLICE("],\"start_order\":["));
        for (size_t i = 0; i < m->service_count; i++) {
            if (i) buf_appendc(&b, ',');
            json_str(&b, m->services[m->start_order[i]].name);
        }
        buf_appends(&b, SLICE("],\"gateway\":"));
        if (!m->gateway.is_set) {
            buf_appends(&b, SLICE("null"));
        } else {
            buf_appends(&b, SLICE("{\"listen\":"));
            json_str(&b, m->gateway.listen);
            buf_appends(&b, SLICE(",\"admin\":"));
            json_str(&b, m->gateway.admin);
            buf_appendf(&b, ",\"routes\":%zu}", m->gateway.route_count);
        }
        buf_appends(&b, SLICE(",\"mesh\":{\"listen\":"));
        json_str(&b, m->mesh_listen);
        buf_appends(&b, SLICE(",\"admin\":"));
        json_str(&b, m->mesh_admin);
        buf_appends(&b, SLICE("}}\n"));
    }
    if (b.err) {
        int rc = b.err;
        buf_release(&b);
        return rc;
    }
    *out = buf_detach(&b, NULL);
    return *out ? 0 : SH_ENOMEM;
}

int manifest_check(const char *path, bool is_json, manifest_doc_check_fn *gateway_check, char **out,
                   struct sh_diag *d)
{
    struct manifest *m;
    struct sh_doc *gdoc = NULL;
    int rc;

    *out = NULL;
    SH_TRY(manifest_load_file(path, &m, d));
    rc = gateway_check ? manifest_gateway_doc(m, &gdoc) : 0;
    if (rc == SH_ENOMEM) sh_diag_set(d, path, "out of memory");
    if (rc == 0 && gateway_check) rc = gateway_check(gdoc, d);
    if (rc == 0) rc = render(m, is_json, out);
    sh_doc_free(gdoc);
    manifest_free(m);
    return rc;
}
