/* SPDX-License-Identifier: MIT */
/* history.c: the metrics history's sampler. Once a second, after the load sample (scale.c),
 * reads both proxies' traffic series (proxy_gateway_traffic: cumulative requests, errors and
 * latency sketch per route and per edge) and records into cp.history:
 *   route "R"             each gateway route;
 *   edge "gateway->S"     the gateway's requests to service S's cluster;
 *   edge "CALLER->S"      the mesh's, CALLER the calling service, "unknown" while the mesh does
 *                         not know who calls (proxy_traffic.caller "": see edge_caller_slot in
 *                         proxy/forward.c);
 *   edge "external->gateway"  everything the gateway's routes received;
 *   service "S"           every edge into S, merged (requests, errors, sketches add up).
 * A service's SLO latency threshold (manifest slo.latency) makes its points count slow requests.
 * Thread: main. */
#include "up/up_int.h"

#include "observe/observe.h"
#include "telemetry/telemetry.h"

#include <stdio.h>
#include <string.h>

struct up_hsample {
    enum obs_series_kind kind;
    char name[OBS_HISTORY_NAME_MAX + 1];
    uint64_t requests, errors;
    uint64_t sketch[METRIC_SKETCH_BUCKETS];
};

/* The sample (kind, name) of this round, made empty when new; NULL on OOM or a long name. */
static struct up_hsample *sample_of(struct up *u, enum obs_series_kind kind, const char *name)
{
    struct up_hsample *s;

    if (strlen(name) > OBS_HISTORY_NAME_MAX) return NULL;
    for (size_t i = 0; i < u->nhist; i++) {
        if (u->hist[i].kind == kind && !strcmp(u->hist[i].name, name)) return &u->hist[i];
    }
    if (sh_array_reserve(&u->hist, &u->hist_cap, u->nhist + 1, sizeof(*u->hist)) < 0) return NULL;
    s = &u->hist[u->nhist++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    snprintf(s->name, sizeof(s->name), "%s", name);
    return s;
}

static void add_to(struct up_hsample *s, const struct proxy_traffic *t, const uint64_t *sketch)
{
    if (!s) return;
    s->requests += t->requests;
    s->errors += t->errors;
    for (uint32_t b = 0; b < METRIC_SKETCH_BUCKETS; b++)
        s->sketch[b] += sketch[b];
}

struct sampling {
    struct up *u;
    bool is_gateway;
};

static void on_traffic(void *data, const struct proxy_traffic *t)
{
    struct sampling *sp = data;
    uint64_t sketch[METRIC_SKETCH_BUCKETS];
    char name[OBS_HISTORY_NAME_MAX + 1];

    if (t->route && !sp->is_gateway) return; /* the mesh's routes are its edges */
    metric_sketch_read(t->sketch, sketch);
    if (t->route) {
        add_to(sample_of(sp->u, OBS_SERIES_ROUTE, t->route), t, sketch);
        add_to(sample_of(sp->u, OBS_SERIES_EDGE, "external->gateway"), t, sketch);
        return;
    }
    snprintf(name, sizeof(name), "%s->%s",
             sp->is_gateway ? "gateway" : (t->caller[0] ? t->caller : "unknown"), t->cluster);
    add_to(sample_of(sp->u, OBS_SERIES_EDGE, name), t, sketch);
    add_to(sample_of(sp->u, OBS_SERIES_SERVICE, t->cluster), t, sketch);
}

/* The SLO latency threshold in seconds of the service an edge or service series is about. */
static double slow_s_of(const struct up *u, const struct up_hsample *s)
{
    const char *svc = s->name, *arrow = strstr(s->name, "->");

    if (s->kind == OBS_SERIES_ROUTE) return 0;
    if (arrow) svc = arrow + 2;
    for (uint32_t i = 0; i < u->m->service_count; i++) {
        const struct manifest_service *ms = &u->m->services[i];
        if (!strcmp(ms->name, svc)) return (double)ms->slo.latency_ms / 1000.0;
    }
    return 0;
}

void up_history_tick(struct up *u)
{
    struct obs_history *h = u->cp.history;
    struct obs_sample *smp;
    struct sampling sp = {.u = u};
    int rc;

    if (!h) return;
    u->nhist = 0;
    if (u->gw) {
        sp.is_gateway = true;
        proxy_gateway_traffic(u->gw, on_traffic, &sp);
    }
    if (u->mesh) {
        sp.is_gateway = false;
        proxy_gateway_traffic(u->mesh, on_traffic, &sp);
    }
    if (u->nhist == 0) return;
    smp = sh_calloc(u->nhist, sizeof(*smp));
    if (!smp) return; /* this second is a gap */
    for (size_t i = 0; i < u->nhist; i++) {
        smp[i] = (struct obs_sample){.kind = u->hist[i].kind,
                                     .name = u->hist[i].name,
                                     .requests = u->hist[i].requests,
                                     .errors = u->hist[i].errors,
                                     .sketch = u->hist[i].sketch,
                                     .slow_s = slow_s_of(u, &u->hist[i])};
    }
    rc = obs_history_record(h, (int64_t)(sh_wall_ms() / 1000), smp, u->nhist);
    if (rc < 0 && !u->hist_warned) {
        SH_LOG(SH_WARN, "up", "metrics history: some series were not recorded", LF_ERR("err", rc));
        u->hist_warned = true;
    }
    sh_free(smp);
}

/* The manifest's SLOs into the history, where the API reads them. */
void up_history_slos(struct up *u)
{
    struct obs_history *h = u->cp.history;

    for (uint32_t i = 0; h && i < u->m->service_count; i++) {
        const struct manifest_service *ms = &u->m->services[i];
        struct obs_slo slo = {.availability = ms->slo.availability,
                              .latency_ms = (double)ms->slo.latency_ms,
                              .latency_percent = ms->slo.latency_percent,
                              .window_s = ms->slo.window_s};
        if (!ms->slo.is_set) continue;
        if (obs_history_set_slo(h, ms->name, &slo) < 0)
            SH_LOG(SH_WARN, "up", "metrics history: SLO not kept", LF_STR("service", ms->name));
    }
}

void up_history_release(struct up *u)
{
    sh_free(u->hist);
    u->hist = NULL;
    u->nhist = u->hist_cap = 0;
}
