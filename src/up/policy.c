/* SPDX-License-Identifier: MIT */
/* policy.c: the stack's decisions (up.h, "Decisions"): which instance leaves first, how many to
 * start or retire, what a rolling restart does next, what the autoscaler wants. Plain
 * functions over plain structs, no clock and no processes of their own: instances.c and
 * scale.c gather the inputs and carry the decisions out; tests/unit/up/test_policy.c drives
 * them alone. */
#include "up/up.h"

#include <math.h>
#include <stdint.h>

size_t up_policy_victim(const struct up_member *m, size_t n)
{
    size_t best = SIZE_MAX;
    int best_rank = -1;

    for (size_t i = 0; i < n; i++) {
        int rank;
        if (m[i].is_retiring) continue;
        rank = !m[i].is_started ? 2 : !m[i].is_ready ? 1 : 0;
        if (rank > best_rank || (rank == best_rank && m[i].ordinal > m[best].ordinal)) {
            best = i;
            best_rank = rank;
        }
    }
    return best;
}

int64_t up_policy_reconcile(uint32_t live, uint32_t want, bool is_rolling)
{
    if (is_rolling) return 0; /* the restart owns the count until it ends */
    return (int64_t)want - (int64_t)live;
}

enum up_roll_action up_policy_roll(const struct up_roll_view *v)
{
    if (v->has_new) {
        if (!v->is_new_gone && v->is_new_ready) return UP_ROLL_PROMOTE;
        if (!v->is_new_gone && !v->is_crash_loop && v->waited_ms < v->limit_ms) return UP_ROLL_WAIT;
        return UP_ROLL_ABORT;
    }
    return v->done >= v->total ? UP_ROLL_FINISHED : UP_ROLL_NEXT;
}

uint64_t up_policy_roll_step_limit(const struct manifest_service *s)
{
    uint64_t hc = s->health.start_period_ms +
                  3ull * SH_MAX(s->health.interval_ms, 1000u) * (s->health.healthy_threshold + 1);
    uint64_t limit = SH_MAX((uint64_t)UP_ROLL_STEP_MS, hc);

    if (s->port && !s->is_port_auto) limit += UP_DRAIN_MAX_MS + (uint64_t)s->stop_grace_ms;
    return limit;
}

/* What each target asks for: in_flight and rps share out the total load (within 10% of the
 * target per instance is close enough: no change); p99 grows by half when above the target
 * and shrinks by one when well under it (or idle). */
uint32_t up_policy_desired(const struct manifest_autoscale *as, uint32_t cur,
                           const struct up_load_view *load)
{
    uint32_t lo = SH_MAX(as->min, 1u), d;
    double target = (double)as->target, total;

    if (as->target_kind == MANIFEST_TARGET_P99_MS) {
        if (load->p99_ms > target)
            d = cur + SH_MAX(cur / 2, 1u);
        else if (load->rps == 0 || load->p99_ms < target / 2)
            d = cur ? cur - 1 : 0;
        else
            d = cur;
    } else {
        total = as->target_kind == MANIFEST_TARGET_RPS ? load->rps : load->in_flight;
        d = (uint32_t)SH_MIN(ceil(total / target), (double)MANIFEST_MAX_REPLICAS);
        if (cur && fabs(total / target / cur - 1.0) <= 0.1) d = cur;
    }
    return SH_MIN(SH_MAX(d, lo), as->max);
}

uint32_t up_policy_autoscale(const struct manifest_autoscale *as, struct up_scale_state *st,
                             uint32_t want, uint32_t desired, uint64_t now_ms, const char **why)
{
    *why = NULL;
    if (desired > want) {
        st->low_since_ms = 0;
        if (!st->high_since_ms) st->high_since_ms = now_ms;
        if (now_ms - st->high_since_ms < UP_SCALE_SUSTAIN_MS ||
            (st->last_up_ms && now_ms - st->last_up_ms < as->up_cooldown_ms))
            return want;
        *why = "scaling up";
        st->last_up_ms = now_ms;
        st->high_since_ms = st->low_since_ms = 0;
        return desired;
    }
    if (desired < want) {
        st->high_since_ms = 0;
        if (!st->low_since_ms) {
            st->low_since_ms = now_ms;
            st->low_max = desired;
        }
        st->low_max = SH_MAX(st->low_max, desired);
        if (now_ms - st->low_since_ms < as->down_cooldown_ms) return want;
        *why = "scaling down";
        st->high_since_ms = st->low_since_ms = 0;
        return st->low_max;
    }
    st->high_since_ms = st->low_since_ms = 0;
    return want;
}
