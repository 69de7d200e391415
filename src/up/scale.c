/* SPDX-License-Identifier: MIT */
/* scale.c: the load of each service and instance, read from the gateway's and the mesh's
 * own metrics (no scraping: the same counters /metrics shows), and the autoscaler that turns
 * it into a replica count.
 *
 * Load, per service (the proxies name a service's cluster after it), sampled every second:
 *   rps        upstream attempts ended per second, both proxies;
 *   in_flight  attempts under way, averaged over the 100 ms samples of the last second;
 *   p99_ms     from the attempt-duration histograms over the last UP_LOAD_WINDOW seconds,
 *              interpolated within a bucket as Prometheus' histogram_quantile does.
 * and per instance its rps (attempts to its endpoint).
 *
 * The autoscaler, per service with `autoscale`, every second after the sample:
 *   in_flight / rps targets: desired = ceil(service total / target per instance), held when
 *     within 10% of the current count (no flapping around the target);
 *   p99 target: one step at a time, up by half the current count (at least 1) while p99 is
 *     over the target, down by one while it is under half the target or there is no traffic;
 * clamped to [max(min, 1), max] (no scale from zero: a service without instances shows no
 * demand). It scales up once desired has stayed above the count for UP_SCALE_SUSTAIN_MS and
 * up_cooldown has passed since its last scale-up; down, to the most asked for in that time,
 * once desired has stayed below the count for down_cooldown. The decision itself is
 * up_policy_desired and up_policy_autoscale (policy.c); this file samples and acts.
 * Thread: main. */
#include "up/up_int.h"

#include "telemetry/telemetry.h"

#include <math.h>
#include <string.h>

const char *up_target_name(enum manifest_target_kind k)
{
    return k == MANIFEST_TARGET_RPS ? "rps" : k == MANIFEST_TARGET_P99_MS ? "p99_ms" : "in_flight";
}

/* Both proxies' load of <service>'s cluster, summed. */
static void load_of(struct up *u, const char *service, struct proxy_cluster_load *sum)
{
    struct proxy_gateway *gws[2] = {u->gw, u->mesh};

    memset(sum, 0, sizeof(*sum));
    for (size_t g = 0; g < 2; g++) {
        struct proxy_cluster_load l;
        if (!gws[g] || proxy_gateway_cluster_load(gws[g], service, &l) < 0) continue;
        sum->attempts += l.attempts;
        sum->in_flight += l.in_flight;
        for (size_t i = 0; i < SH_ARRAY_LEN(l.le); i++)
            sum->le[i] += l.le[i];
    }
}

/* The 0.99 quantile of the attempts counted between two cumulative bucket rows, in ms; 0 when
 * there were none. */
static double p99_between(const uint64_t *old, const uint64_t *now)
{
    const size_t nb = SH_ARRAY_LEN(metrics_latency_buckets_s);
    uint64_t total = now[nb] - old[nb];
    double rank = 0.99 * (double)total;

    if (total == 0) return 0;
    for (size_t i = 0; i < nb; i++) {
        uint64_t below = i ? now[i - 1] - old[i - 1] : 0, upto = now[i] - old[i];
        if ((double)upto >= rank) {
            double lo = i ? metrics_latency_buckets_s[i - 1] : 0, hi = metrics_latency_buckets_s[i];
            double in_bucket = (double)(upto - below);
            double frac = in_bucket > 0 ? (rank - (double)below) / in_bucket : 1;
            return (lo + (hi - lo) * frac) * 1000.0;
        }
    }
    return metrics_latency_buckets_s[nb - 1] * 1000.0; /* beyond the last bound */
}

static uint64_t endpoint_attempts(struct up *u, const struct up_instance *in)
{
    const char *svc = u->m->services[in->service].name;

    return (u->gw ? proxy_gateway_endpoint_attempts(u->gw, svc, in->endpoint) : 0) +
           (u->mesh ? proxy_gateway_endpoint_attempts(u->mesh, svc, in->endpoint) : 0);
}

void up_load_tick(struct up *u)
{
    uint64_t now = uv_now(&u->loop);
    double dt = (double)(now - u->sampled_ms) / 1000.0;
    bool first = u->sampled_ms == 0, sample = first || now - u->sampled_ms >= 1000;

    for (uint32_t s = 0; s < u->m->service_count; s++) {
        struct up_service *sv = &u->svc[s];
        struct proxy_cluster_load l;
        uint32_t oldest;
        load_of(u, u->m->services[s].name, &l);
        sv->in_flight_sum += l.in_flight;
        sv->in_flight_n++;
        if (!sample) continue;
        sv->rps =
            !first && l.attempts >= sv->attempts ? (double)(l.attempts - sv->attempts) / dt : 0;
        sv->attempts = l.attempts;
        sv->in_flight = sv->in_flight_sum / sv->in_flight_n;
        sv->in_flight_sum = 0;
        sv->in_flight_n = 0;
        memcpy(sv->le[sv->le_next], l.le, sizeof(l.le));
        sv->le_next = (sv->le_next + 1) % UP_LOAD_WINDOW;
        if (sv->le_count < UP_LOAD_WINDOW) sv->le_count++;
        oldest = (sv->le_next + UP_LOAD_WINDOW - sv->le_count) % UP_LOAD_WINDOW;
        /* a cluster made afresh restarts its counts: then the window starts again */
        if (l.le[SH_ARRAY_LEN(l.le) - 1] < sv->le[oldest][SH_ARRAY_LEN(l.le) - 1])
            memcpy(sv->le[oldest], l.le, sizeof(l.le));
        sv->p99_ms = p99_between(sv->le[oldest], l.le);
    }
    if (!sample) return;
    for (size_t i = 0; i < u->ninst; i++) {
        struct up_instance *in = u->inst[i];
        uint64_t a;
        if (!in->started || !in->port) continue;
        a = endpoint_attempts(u, in);
        /* 0 after a restart or while unlisted: start counting again from the next sample */
        in->rps = !first && in->attempts && a >= in->attempts ? (double)(a - in->attempts) / dt : 0;
        in->attempts = a;
    }
    u->sampled_ms = now;
    up_history_tick(u);
    up_autoscale(u);
}

void up_autoscale(struct up *u)
{
    uint64_t now = uv_now(&u->loop);

    for (uint32_t s = 0; s < u->m->service_count && !u->stopping; s++) {
        const struct manifest_autoscale *as = &u->m->services[s].autoscale;
        struct up_service *sv = &u->svc[s];
        struct up_load_view load = {
            .rps = sv->rps, .in_flight = sv->in_flight, .p99_ms = sv->p99_ms};
        const char *why;
        uint32_t n;
        if (!as->is_set || sv->roll == UP_ROLL_RUNNING || sv->want == 0)
            continue; /* `shoal scale S 0` stands until someone scales it up again */
        sv->desired = up_policy_desired(as, sv->want, &load);
        n = up_policy_autoscale(as, &sv->scale, sv->want, sv->desired, now, &why);
        if (!why) continue;
        SH_LOG(SH_INFO, "autoscaler", why, LF_STR("service", u->m->services[s].name),
               LF_UINT("from", sv->want), LF_UINT("to", n),
               LF_STR("metric", up_target_name(as->target_kind)),
               LF_DBL("value", as->target_kind == MANIFEST_TARGET_P99_MS ? sv->p99_ms
                               : as->target_kind == MANIFEST_TARGET_RPS  ? sv->rps
                                                                         : sv->in_flight),
               LF_UINT("target", as->target));
        sv->want = n;
    }
}
