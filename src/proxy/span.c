/* SPDX-License-Identifier: MIT */
/* span.c: spans per hop. The sampling decisions (head rate, then errors and slow requests kept
 * whatever the rate) and the span of one hop built from a plain record of its request
 * (struct proxy_span_input), which forward.c fills as the request goes. Pure functions; any
 * thread. */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

bool proxy_span_head_sampled(double rate, uint64_t random)
{
    if (!(rate > 0)) return false;
    if (rate >= 1) return true;
    /* random / 2^64 < rate, without floating point rounding at the top end */
    return (double)(random >> 11) < rate * (double)(1ull << 53);
}

bool proxy_span_keep(const struct proxy_keep_input *in)
{
    return in->is_sampled || in->is_error ||
           (in->slow_ms && in->duration_us >= (uint64_t)in->slow_ms * 1000);
}

/* A scratch area the span's generated strings go into. */
struct scratch {
    char *p;
    size_t left;
    bool full;
};

static struct slice put(struct scratch *s, const char *fmt, ...) SH_PRINTF(2, 3);
static struct slice put(struct scratch *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(s->p, s->left, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= s->left) {
        s->full = true;
        return SLICE("");
    }
    struct slice out = {s->p, (size_t)n};
    s->p += n;
    s->left -= (size_t)n;
    return out;
}

/* A decimal number, without printf (this runs for every request kept). */
static struct slice num(struct scratch *s, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (n >= s->left) {
        s->full = true;
        return SLICE("");
    }
    for (size_t i = 0; i < n; i++)
        s->p[i] = tmp[n - 1 - i];
    struct slice out = {s->p, n};
    s->p += n;
    s->left -= n;
    return out;
}

static struct slice lower(struct scratch *s, struct slice a, struct slice b)
{
    size_t n = a.len + 1 + b.len;
    char *p = s->p;

    if (n >= s->left) {
        s->full = true;
        return SLICE("");
    }
    memcpy(p, a.ptr, a.len);
    p[a.len] = ' ';
    memcpy(p + a.len + 1, b.ptr, b.len);
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 'A' && p[i] <= 'Z') p[i] = (char)(p[i] - 'A' + 'a');
    }
    s->p += n;
    s->left -= n;
    return (struct slice){p, n};
}

static void tag(struct trace_span *sp, const char *key, struct slice value)
{
    if (sp->tag_count < TRACE_SPAN_MAX_TAGS)
        sp->tags[sp->tag_count++] = (struct trace_tag){slice_from_cstr(key), value};
}

static const char *const event_text[] = {
    [PROXY_EV_RETRY] = "retry",
    [PROXY_EV_BREAKER_OPEN] = "breaker open: failed fast",
    [PROXY_EV_EJECTED] = "outlier ejected",
    [PROXY_EV_STALE] = "stale fallback served",
    [PROXY_EV_BUDGET] = "retry budget exhausted",
};

int proxy__span_build(const struct proxy_span_input *in, char *scratch, size_t scratch_len,
                      struct trace_span *out)
{
    struct scratch s = {scratch, scratch_len, false};
    struct slice path, query = slice_split(in->target, '?', &path);
    bool is_error = in->transport_failed || in->status >= 500;

    (void)query;
    memset(out, 0, offsetof(struct trace_span, tags));
    out->tag_count = out->annotation_count = 0; /* tags and annotations: only the counted ones */
    out->is_error = is_error;
    out->debug = out->shared = false;
    memcpy(out->trace_id, in->trace_id, TRACE_ID_BYTES);
    memcpy(out->span_id, in->span_id, TRACE_SPAN_ID_BYTES);
    if (in->parent_id) memcpy(out->parent_id, in->parent_id, TRACE_SPAN_ID_BYTES);
    out->kind = TRACE_KIND_CLIENT;
    out->name = lower(&s, in->method, in->route.len ? in->route : SLICE("no route"));
    out->timestamp_us = in->start_us;
    out->duration_us = in->duration_us ? in->duration_us : 1; /* Zipkin: at least 1 µs */
    out->local.service = in->local_service;
    out->local.ip = SLICE("127.0.0.1");
    out->remote.service = in->remote_service;
    if (in->endpoint.len) { /* "127.0.0.1:8081" or "[::1]:8081" */
        struct slice ep = in->endpoint;
        const char *colon = NULL;
        for (size_t i = ep.len; i-- > 0;) {
            if (ep.ptr[i] == ':') {
                colon = ep.ptr + i;
                break;
            }
        }
        uint64_t port = 0;
        if (colon &&
            slice_to_u64((struct slice){colon + 1, (size_t)(ep.ptr + ep.len - colon - 1)}, &port) ==
                0 &&
            port <= 65535) {
            struct slice ip = {ep.ptr, (size_t)(colon - ep.ptr)};
            if (ip.len >= 2 && ip.ptr[0] == '[') ip = (struct slice){ip.ptr + 1, ip.len - 2};
            out->remote.ip = ip;
            out->remote.port = (uint16_t)port;
        }
    }
    tag(out, "http.method", in->method);
    tag(out, "http.path", path);
    tag(out, "http.status_code", num(&s, (uint64_t)(in->status > 0 ? in->status : 0)));
    if (in->route.len) tag(out, "shoal.route", in->route);
    if (in->cluster.len) tag(out, "shoal.cluster", in->cluster);
    if (in->endpoint.len) tag(out, "shoal.endpoint", in->endpoint);
    if (in->caller_instance.len) tag(out, "shoal.caller.instance", in->caller_instance);
    tag(out, "shoal.attempts", num(&s, in->attempts));
    tag(out, "shoal.retries", num(&s, in->attempts ? in->attempts - 1 : 0));
    if (in->attempts) tag(out, "shoal.queue_us", num(&s, in->queue_us));
    if (in->has_upstream) tag(out, "shoal.upstream_us", num(&s, in->upstream_us));
    if (is_error)
        tag(out, "error",
            in->transport_failed ? SLICE("no answer from the upstream")
                                 : num(&s, (uint64_t)(in->status > 0 ? in->status : 0)));
    for (uint32_t i = 0; i < in->nevents && out->annotation_count < TRACE_SPAN_MAX_ANNOTATIONS;
         i++) {
        const struct proxy_span_event *e = &in->events[i];
        struct slice v = e->detail ? put(&s, "%s: %s", event_text[e->kind], e->detail)
                                   : slice_from_cstr(event_text[e->kind]);
        out->annotations[out->annotation_count++] =
            (struct trace_annotation){.timestamp_us = e->at_us, .value = v};
    }
    return s.full ? SH_ETOOBIG : 0;
}
