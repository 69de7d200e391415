/* SPDX-License-Identifier: MIT */
/* history.c: the metrics history (observe.h, "Metrics history"): per series, two rings of
 * points indexed by time (slot = t / step % capacity, so a gap is simply a slot whose stamp is
 * not its time), the sampling state that turns cumulative counts into points, and the SLO
 * arithmetic.
 * Invariants: a ring slot holds the point stamped at its time or a stale one (stamp differs:
 * read as no data); cumulative bases only move forward in time.
 * Thread: one at a time (see observe.h). */
#include "observe/observe.h"

#include "telemetry/telemetry.h"

#include <math.h>
#include <string.h>

enum { MARKS = 7, MARK_S = 10, DAY_S = 86400 };

/* A point as a ring keeps it (24 bytes). */
struct cpoint {
    int32_t stamp; /* t / step; a slot whose stamp is not its time is no data */
    float requests, errors, slow, p50_ms, p95_ms, p99_ms;
};

struct ring {
    struct cpoint *pts;
    uint32_t cap, step_s;
};

/* Cumulative counts at one moment. */
struct cum {
    int64_t t;
    uint64_t requests, errors;
    uint64_t sketch[METRIC_SKETCH_BUCKETS];
};

struct hseries {
    enum obs_series_kind kind;
    char *name;
    bool has_prev;
    struct cum prev;         /* the previous sample */
    struct cum mbase;        /* the last sample before the current minute */
    int64_t minute;          /* the current minute (t / 60) */
    struct cum marks[MARKS]; /* ten-second marks, ring; nmarks used, mnext the next slot */
    uint32_t nmarks, mnext;
    struct ring sec, min;
};

struct slo_entry {
    char *service;
    struct obs_slo slo;
};

struct obs_history {
    struct hseries **series;
    size_t n, cap, max;
    struct slo_entry *slos;
    size_t nslos, capslos;
    size_t hint; /* where the next sample's series probably is (rounds come in one order) */
};

const char *obs_series_kind_name(enum obs_series_kind kind)
{
    return kind == OBS_SERIES_SERVICE ? "service" : kind == OBS_SERIES_ROUTE ? "route" : "edge";
}

int obs_history_new(const struct obs_history_config *cfg, struct obs_history **out)
{
    struct obs_history *h = sh_calloc(1, sizeof(*h));

    *out = NULL;
    if (!h) return SH_ENOMEM;
    h->max = cfg && cfg->max_series ? cfg->max_series : OBS_HISTORY_MAX_SERIES;
    *out = h;
    return 0;
}

static void series_free(struct hseries *s)
{
    if (!s) return;
    sh_free(s->sec.pts);
    sh_free(s->min.pts);
    sh_free(s->name);
    sh_free(s);
}

void obs_history_free(struct obs_history *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++)
        series_free(h->series[i]);
    sh_free(h->series);
    for (size_t i = 0; i < h->nslos; i++)
        sh_free(h->slos[i].service);
    sh_free(h->slos);
    sh_free(h);
}

static struct hseries *find(struct obs_history *h, enum obs_series_kind kind, const char *name)
{
    if (h->hint < h->n && h->series[h->hint]->kind == kind &&
        strcmp(h->series[h->hint]->name, name) == 0)
        return h->series[h->hint++];
    for (size_t i = 0; i < h->n; i++) {
        if (h->series[i]->kind == kind && strcmp(h->series[i]->name, name) == 0) {
            h->hint = i + 1;
            return h->series[i];
        }
    }
    return NULL;
}

static int ring_init(struct ring *r, uint32_t cap, uint32_t step_s)
{
    r->pts = sh_calloc(cap, sizeof(*r->pts));
    if (!r->pts) return SH_ENOMEM;
    for (uint32_t i = 0; i < cap; i++)
        r->pts[i].stamp = -1;
    r->cap = cap;
    r->step_s = step_s;
    return 0;
}

static int series_add(struct obs_history *h, enum obs_series_kind kind, const char *name,
                      struct hseries **out)
{
    struct hseries *s;

    *out = NULL;
    if (h->n >= h->max) return SH_ELIMIT;
    if (sh_array_reserve(&h->series, &h->cap, h->n + 1, sizeof(*h->series)) < 0) return SH_ENOMEM;
    s = sh_calloc(1, sizeof(*s));
    if (!s) return SH_ENOMEM;
    s->kind = kind;
    s->name = sh_strdup(name);
    if (!s->name || ring_init(&s->sec, OBS_HISTORY_SECONDS, 1) < 0 ||
        ring_init(&s->min, OBS_HISTORY_MINUTES, 60) < 0) {
        series_free(s);
        return SH_ENOMEM;
    }
    h->series[h->n++] = s;
    *out = s;
    return 0;
}

static float q_ms(const uint64_t *counts, double q)
{
    return (float)(metric_sketch_quantile(counts, q, NULL) * 1000.0);
}

/* The point for what happened between <from> and <to>, stamped at t / step. */
static void point_between(const struct cum *from, const struct cum *to, double slow_s,
                          struct cpoint *p)
{
    uint64_t d[METRIC_SKETCH_BUCKETS], slow = 0;
    double slow_at = slow_s > 0 ? slow_s : INFINITY;

    p->requests = (float)(to->requests - from->requests);
    p->errors = (float)(to->errors - from->errors);
    for (uint32_t b = 0; b < METRIC_SKETCH_BUCKETS; b++) {
        d[b] = to->sketch[b] >= from->sketch[b] ? to->sketch[b] - from->sketch[b] : 0;
        if (d[b] && metric_sketch_value(b) > slow_at) slow += d[b];
    }
    p->slow = (float)slow;
    p->p50_ms = q_ms(d, 0.50);
    p->p95_ms = q_ms(d, 0.95);
    p->p99_ms = q_ms(d, 0.99);
}

static void ring_put(struct ring *r, int64_t t, struct cpoint *p)
{
    int64_t k = t / r->step_s;

    p->stamp = (int32_t)k;
    r->pts[(uint64_t)k % r->cap] = *p;
}

static const struct cpoint *ring_get(const struct ring *r, int64_t k)
{
    const struct cpoint *p;

    if (k < 0) return NULL;
    p = &r->pts[(uint64_t)k % r->cap];
    return p->stamp == (int32_t)k ? p : NULL;
}

static void cum_set(struct cum *c, int64_t t, const struct obs_sample *s)
{
    c->t = t;
    c->requests = s->requests;
    c->errors = s->errors;
    if (s->sketch)
        memcpy(c->sketch, s->sketch, sizeof(c->sketch));
    else
        memset(c->sketch, 0, sizeof(c->sketch));
}

static void record_one(struct hseries *s, int64_t t, const struct obs_sample *smp)
{
    struct cum cur;
    struct cpoint p;

    cum_set(&cur, t, smp);
    if (s->has_prev && t <= s->prev.t) return;
    if (s->has_prev && (cur.requests < s->prev.requests || cur.errors < s->prev.errors)) {
        /* the counts started over: take the base as zero (ignore the marks before) */
        memset(&s->prev, 0, sizeof(s->prev));
        s->prev.t = t - 1;
        s->mbase = s->prev;
        s->nmarks = 0;
    }
    if (!s->has_prev) {
        s->has_prev = true;
        s->prev = cur;
        s->mbase = cur;
        s->minute = t / 60;
        s->marks[0] = cur;
        s->nmarks = 1;
        s->mnext = 1;
        return;
    }
    point_between(&s->prev, &cur, smp->slow_s, &p);
    {
        /* a late sample (the timer slipped past a second) covers several seconds: each gets
         * its share, so no second reads twice its rate; after a long stall, only the last */
        int64_t dt = t - s->prev.t, from = dt <= 60 ? s->prev.t + 1 : t;
        float share = (float)(t - from + 1);
        p.requests /= share;
        p.errors /= share;
        p.slow /= share;
        for (int64_t k = from; k <= t; k++)
            ring_put(&s->sec, k, &p);
    }
    if (t / 60 != s->minute) {
        /* the minute is over: its point is what its samples added (prev is its last) */
        point_between(&s->mbase, &s->prev, smp->slow_s, &p);
        ring_put(&s->min, (s->minute + 1) * 60 - 1, &p);
        s->mbase = s->prev;
        s->minute = t / 60;
    }
    if (t / MARK_S != s->marks[(s->mnext + MARKS - 1) % MARKS].t / MARK_S) {
        s->marks[s->mnext] = cur;
        s->mnext = (s->mnext + 1) % MARKS;
        if (s->nmarks < MARKS) s->nmarks++;
    }
    s->prev = cur;
}

int obs_history_record(struct obs_history *h, int64_t now_s, const struct obs_sample *s, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        struct hseries *hs;
        size_t len = s[i].name ? strlen(s[i].name) : 0;

        if (len == 0 || len > OBS_HISTORY_NAME_MAX) {
            rc = SH_EINVAL;
            continue;
        }
        hs = find(h, s[i].kind, s[i].name);
        if (!hs) {
            int r = series_add(h, s[i].kind, s[i].name, &hs);
            if (r < 0) {
                rc = r;
                continue;
            }
        }
        record_one(hs, now_s, &s[i]);
    }
    return rc;
}

static struct hseries *lookup(struct obs_history *h, enum obs_series_kind kind, const char *name)
{
    for (size_t i = 0; name && i < h->n; i++) {
        if (h->series[i]->kind == kind && strcmp(h->series[i]->name, name) == 0)
            return h->series[i];
    }
    return NULL;
}

static void point_out(const struct cpoint *c, int64_t t, double secs, struct obs_point *p)
{
    p->t = t;
    if (!c) {
        p->requests = 0;
        p->rps = p->error_ratio = p->slow_ratio = NAN;
        p->p50_ms = p->p95_ms = p->p99_ms = NAN;
        return;
    }
    p->requests = c->requests;
    p->rps = c->requests / secs;
    p->error_ratio = c->requests > 0 ? c->errors / c->requests : 0;
    p->slow_ratio = c->requests > 0 ? c->slow / c->requests : 0;
    p->p50_ms = c->p50_ms;
    p->p95_ms = c->p95_ms;
    p->p99_ms = c->p99_ms;
}

int obs_history_points(struct obs_history *h, enum obs_series_kind kind, const char *name,
                       int64_t now_s, uint32_t window_s, struct obs_point **out, size_t *n,
                       uint32_t *step_s)
{
    struct hseries *s = lookup(h, kind, name);
    const struct ring *r;
    int64_t last, count;

    *out = NULL;
    *n = 0;
    *step_s = 0;
    if (window_s == 0 || window_s > DAY_S) return SH_EINVAL;
    if (!s) return SH_ENOENT;
    r = window_s <= OBS_HISTORY_SECONDS ? &s->sec : &s->min;
    /* the newest whole step at or before now */
    last = now_s / r->step_s - (r->step_s > 1 ? 1 : 0);
    count = (window_s + r->step_s - 1) / r->step_s;
    if (count > r->cap) count = r->cap;
    *out = sh_calloc((size_t)count, sizeof(**out));
    if (!*out) return SH_ENOMEM;
    for (int64_t i = 0; i < count; i++) {
        int64_t k = last - count + 1 + i;
        /* a second's point is stamped with its sample's time, a minute's with its end */
        point_out(ring_get(r, k), r->step_s > 1 ? (k + 1) * r->step_s : k, r->step_s, &(*out)[i]);
    }
    *n = (size_t)count;
    *step_s = r->step_s;
    return 0;
}

int obs_history_totals(struct obs_history *h, enum obs_series_kind kind, const char *name,
                       int64_t now_s, uint32_t window_s, struct obs_point *out)
{
    struct hseries *s = lookup(h, kind, name);
    const struct ring *r;
    double req = 0, err = 0, slow = 0;
    int64_t last, count;

    memset(out, 0, sizeof(*out));
    out->t = now_s;
    out->p50_ms = out->p95_ms = out->p99_ms = NAN;
    if (window_s == 0) return SH_EINVAL;
    if (!s) return SH_ENOENT;
    r = window_s <= OBS_HISTORY_SECONDS ? &s->sec : &s->min;
    last = now_s / r->step_s;
    count = (window_s + r->step_s - 1) / r->step_s;
    if (count > r->cap) count = r->cap;
    for (int64_t k = last - count + 1; k <= last; k++) {
        const struct cpoint *c = ring_get(r, k);
        if (!c) continue;
        req += c->requests;
        err += c->errors;
        slow += c->slow;
    }
    out->requests = req;
    out->rps = req / window_s;
    out->error_ratio = req > 0 ? err / req : 0;
    out->slow_ratio = req > 0 ? slow / req : 0;
    return 0;
}

int obs_history_recent(struct obs_history *h, enum obs_series_kind kind, const char *name,
                       struct obs_point *out)
{
    struct hseries *s = lookup(h, kind, name);
    const struct cum *from = NULL;
    struct cpoint c;
    double secs;

    memset(out, 0, sizeof(*out));
    if (!s) return SH_ENOENT;
    /* the newest mark at least RECENT_S old, else the oldest there is */
    for (uint32_t i = 0; i < s->nmarks; i++) {
        const struct cum *m = &s->marks[(s->mnext + MARKS - 1 - i) % MARKS];
        from = m;
        if (s->prev.t - m->t >= OBS_HISTORY_RECENT_S) break;
    }
    if (!from || from->t >= s->prev.t) {
        point_out(NULL, s->prev.t, 1, out);
        out->rps = out->error_ratio = out->slow_ratio = 0;
        return 0;
    }
    point_between(from, &s->prev, 0, &c);
    secs = (double)(s->prev.t - from->t);
    point_out(&c, s->prev.t, secs, out);
    return 0;
}

uint64_t obs_history_requests(struct obs_history *h, enum obs_series_kind kind, const char *name)
{
    const struct hseries *s = lookup(h, kind, name);

    return s ? s->prev.requests : 0;
}

void obs_history_each(struct obs_history *h, obs_series_fn *fn, void *data)
{
    for (size_t i = 0; i < h->n; i++)
        fn(data, h->series[i]->kind, h->series[i]->name);
}

/* ---- SLOs ---- */

/* bad / requests over budget share; 0 without requests. */
static double burn(double bad_ratio, double requests, double objective_percent)
{
    double budget = (100.0 - objective_percent) / 100.0;

    if (requests <= 0) return 0;
    if (budget <= 0) return bad_ratio > 0 ? INFINITY : 0;
    return bad_ratio / budget;
}

void obs_slo_eval(const struct obs_slo *slo, const struct obs_point *window,
                  const struct obs_point *last_1h, const struct obs_point *last_6h,
                  struct obs_slo_status *out)
{
    bool has_avail = slo->availability > 0, has_lat = slo->latency_ms > 0;

    memset(out, 0, sizeof(*out));
    out->budget_left = 1;
    out->window_requests = window->requests;
    out->availability = window->requests > 0 ? 100.0 * (1 - window->error_ratio) : NAN;
    out->latency_good = window->requests > 0 && has_lat ? 100.0 * (1 - window->slow_ratio) : NAN;
    if (has_avail) {
        double left = 1 - burn(window->error_ratio, window->requests, slo->availability);
        double b1 = burn(last_1h->error_ratio, last_1h->requests, slo->availability);
        double b6 = burn(last_6h->error_ratio, last_6h->requests, slo->availability);
        out->budget_left = left;
        out->burn_1h = b1;
        out->burn_6h = b6;
    }
    if (has_lat) {
        double left = 1 - burn(window->slow_ratio, window->requests, slo->latency_percent);
        double b1 = burn(last_1h->slow_ratio, last_1h->requests, slo->latency_percent);
        double b6 = burn(last_6h->slow_ratio, last_6h->requests, slo->latency_percent);
        if (left < out->budget_left) out->budget_left = left;
        if (b1 > out->burn_1h) out->burn_1h = b1;
        if (b6 > out->burn_6h) out->burn_6h = b6;
    }
}

static struct slo_entry *slo_find(struct obs_history *h, const char *service)
{
    for (size_t i = 0; service && i < h->nslos; i++) {
        if (strcmp(h->slos[i].service, service) == 0) return &h->slos[i];
    }
    return NULL;
}

int obs_history_set_slo(struct obs_history *h, const char *service, const struct obs_slo *slo)
{
    struct slo_entry *e = slo_find(h, service);
    bool is_none = !slo || (slo->availability <= 0 && slo->latency_ms <= 0);

    if (is_none) {
        if (e) {
            sh_free(e->service);
            *e = h->slos[--h->nslos];
        }
        return 0;
    }
    if (!e) {
        if (h->nslos >= h->max) return SH_ELIMIT;
        if (sh_array_reserve(&h->slos, &h->capslos, h->nslos + 1, sizeof(*h->slos)) < 0)
            return SH_ENOMEM;
        e = &h->slos[h->nslos];
        e->service = sh_strdup(service);
        if (!e->service) return SH_ENOMEM;
        h->nslos++;
    }
    e->slo = *slo;
    return 0;
}

bool obs_history_slo(struct obs_history *h, const char *service, struct obs_slo *out)
{
    const struct slo_entry *e = slo_find(h, service);

    if (e) *out = e->slo;
    return e != NULL;
}

int obs_history_slo_status(struct obs_history *h, const char *service, int64_t now_s,
                           struct obs_slo_status *out)
{
    const struct slo_entry *e = slo_find(h, service);
    struct obs_point win, h1, h6;
    uint32_t window_s;

    memset(out, 0, sizeof(*out));
    if (!e) return SH_ENOENT;
    window_s = e->slo.window_s && e->slo.window_s < DAY_S ? e->slo.window_s : DAY_S;
    /* a service seen by no proxy yet has no series: zero totals */
    if (obs_history_totals(h, OBS_SERIES_SERVICE, service, now_s, window_s, &win) < 0)
        memset(&win, 0, sizeof(win));
    if (obs_history_totals(h, OBS_SERIES_SERVICE, service, now_s, 3600, &h1) < 0)
        memset(&h1, 0, sizeof(h1));
    if (obs_history_totals(h, OBS_SERIES_SERVICE, service, now_s, 6 * 3600, &h6) < 0)
        memset(&h6, 0, sizeof(h6));
    obs_slo_eval(&e->slo, &win, &h1, &h6, out);
    return 0;
}
