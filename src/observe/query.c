/* SPDX-License-Identifier: MIT */
/* query.c: the decisions behind Zipkin's query API, over plain spans: the annotationQuery
 * parser, the test a trace must pass (Zipkin's QueryRequest.test), and the dependency links
 * (Zipkin's DependencyLinker, simplified: see observe.h). No storage, no clock. */
#include "observe/observe.h"
#include "observe/observe_int.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------
 * annotationQuery
 * ------------------------------------------------------------------------------------------ */
static bool is_and(struct slice s, size_t i)
{
    /* " and " in any case */
    static const char w[] = " and ";
    if (s.len - i < 5) return false;
    for (size_t k = 0; k < 5; k++) {
        char c = s.ptr[i + k];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != w[k]) return false;
    }
    return true;
}

int obs_query_parse_annotations(struct slice text, struct obs_query *q, struct sh_diag *d)
{
    size_t start = 0, i = 0;

    q->term_count = 0;
    text = slice_trim(text);
    if (!text.len) return 0;
    while (i <= text.len) {
        if (i < text.len && !is_and(text, i)) {
            i++;
            continue;
        }
        struct slice term = slice_trim((struct slice){text.ptr + start, i - start});
        struct slice key, value;
        value = slice_split(term, '=', &key);
        key = slice_trim(key);
        if (!key.len) {
            sh_diag_set(d, "annotationQuery",
                        "an empty term: write terms such as 'error and http.path=/foo'");
            q->term_count = 0;
            return SH_EPARSE;
        }
        if (q->term_count == OBS_QUERY_MAX_TERMS) {
            sh_diag_set(d, "annotationQuery", "more than %d terms", OBS_QUERY_MAX_TERMS);
            q->term_count = 0;
            return SH_ETOOBIG;
        }
        q->terms[q->term_count].key = key;
        q->terms[q->term_count].value = value.ptr ? slice_trim(value) : SLICE_NULL;
        if (value.ptr && !q->terms[q->term_count].value.ptr)
            q->terms[q->term_count].value = (struct slice){"", 0};
        q->term_count++;
        i += 5;
        start = i;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The trace test
 * ------------------------------------------------------------------------------------------ */
static bool eq_cstr(struct slice s, const char *c)
{
    return slice_eq(s, slice_from_cstr(c));
}

static uint64_t trace_start(const struct trace_span *spans, size_t n)
{
    uint64_t ts = 0;

    for (size_t i = 0; i < n; i++) {
        if (!spans[i].timestamp_us) continue;
        if (obs__is_zero(spans[i].parent_id, TRACE_SPAN_ID_BYTES)) return spans[i].timestamp_us;
        if (!ts || spans[i].timestamp_us < ts) ts = spans[i].timestamp_us;
    }
    return ts;
}

bool obs_query_test(const struct obs_query *q, const struct trace_span *spans, size_t n)
{
    uint64_t ts = trace_start(spans, n);
    uint64_t end_us = q->end_ms * 1000, lo_us;
    bool need_remote = q->remote_service && *q->remote_service;
    bool need_name = q->span_name && *q->span_name;
    bool need_duration = q->min_duration_us || q->max_duration_us;
    bool seen_term[OBS_QUERY_MAX_TERMS] = {false};
    size_t terms_left = q->term_count;

    lo_us = q->lookback_ms * 1000 < end_us ? end_us - q->lookback_ms * 1000 : 0;
    if (!ts || ts < lo_us || ts > end_us) return false;
    for (size_t i = 0; i < n; i++) {
        const struct trace_span *s = &spans[i];
        if (q->service && *q->service && !eq_cstr(s->local.service, q->service)) continue;
        if (need_remote && eq_cstr(s->remote.service, q->remote_service)) need_remote = false;
        if (need_name && eq_cstr(s->name, q->span_name)) need_name = false;
        for (size_t t = 0; t < q->term_count; t++) {
            if (seen_term[t]) continue;
            bool hit = false;
            if (!q->terms[t].value.ptr)
                for (size_t a = 0; a < s->annotation_count && !hit; a++)
                    hit = slice_eq(s->annotations[a].value, q->terms[t].key);
            for (size_t k = 0; k < s->tag_count && !hit; k++)
                hit = slice_eq(s->tags[k].key, q->terms[t].key) &&
                      (!q->terms[t].value.ptr || slice_eq(s->tags[k].value, q->terms[t].value));
            /* an error without an "error" tag (a proxy's 5xx, an OTLP status) still matches */
            if (!hit && !q->terms[t].value.ptr && s->is_error &&
                slice_eq(q->terms[t].key, SLICE("error")))
                hit = true;
            if (hit) {
                seen_term[t] = true;
                terms_left--;
            }
        }
        if (need_duration) {
            bool over = !q->min_duration_us || s->duration_us >= q->min_duration_us;
            bool under = !q->max_duration_us || s->duration_us <= q->max_duration_us;
            if (over && under) need_duration = false;
        }
    }
    return !need_remote && !need_name && !need_duration && terms_left == 0;
}

/* ------------------------------------------------------------------------------------------
 * Dependency links
 * ------------------------------------------------------------------------------------------ */
static bool span_error(const struct trace_span *s)
{
    if (s->is_error) return true;
    for (size_t i = 0; i < s->tag_count; i++)
        if (slice_eq(s->tags[i].key, SLICE("error"))) return true;
    return false;
}

static int add_link(struct obs_links *l, struct slice parent, struct slice child, bool is_error)
{
    if (!parent.len || !child.len) return 0;
    for (size_t i = 0; i < l->count; i++) {
        struct obs_link *k = &l->links[i];
        if (slice_eq(slice_from_cstr(k->parent), parent) &&
            slice_eq(slice_from_cstr(k->child), child)) {
            k->call_count++;
            k->error_count += is_error;
            return 0;
        }
    }
    SH_TRY(sh_array_reserve(&l->links, &l->cap, l->count + 1, sizeof(*l->links)));
    struct obs_link *k = &l->links[l->count];
    k->parent = sh_strndup(parent.ptr, parent.len);
    k->child = sh_strndup(child.ptr, child.len);
    if (!k->parent || !k->child) {
        sh_free(k->parent);
        sh_free(k->child);
        return SH_ENOMEM;
    }
    k->call_count = 1;
    k->error_count = is_error;
    l->count++;
    return 0;
}

/* The span whose id is <id> (the first one when a client and server share it, preferring
 * kind <want> when given); NULL when absent. */
static const struct trace_span *find(const struct trace_span *spans, size_t n, const uint8_t *id,
                                     enum trace_span_kind want)
{
    const struct trace_span *any = NULL;

    for (size_t i = 0; i < n; i++) {
        if (memcmp(spans[i].span_id, id, TRACE_SPAN_ID_BYTES) != 0) continue;
        if (want == TRACE_KIND_NONE || spans[i].kind == want) return &spans[i];
        if (!any) any = &spans[i];
    }
    return want == TRACE_KIND_NONE ? any : NULL;
}

/* The CLIENT span this SERVER span answers: its parent, or the span sharing its id. */
static const struct trace_span *client_of(const struct trace_span *spans, size_t n,
                                          const struct trace_span *s)
{
    const struct trace_span *c = find(spans, n, s->span_id, TRACE_KIND_CLIENT);

    if (c && c != s) return c;
    if (obs__is_zero(s->parent_id, TRACE_SPAN_ID_BYTES)) return NULL;
    return find(spans, n, s->parent_id, TRACE_KIND_CLIENT);
}

static bool has_server_child(const struct trace_span *spans, size_t n, const struct trace_span *c)
{
    for (size_t i = 0; i < n; i++) {
        const struct trace_span *s = &spans[i];
        if (s->kind != TRACE_KIND_SERVER) continue;
        if (memcmp(s->parent_id, c->span_id, TRACE_SPAN_ID_BYTES) == 0 ||
            memcmp(s->span_id, c->span_id, TRACE_SPAN_ID_BYTES) == 0)
            return true;
    }
    return false;
}

/* The service of the nearest ancestor with one (bounded walk: ids may form a cycle). */
static struct slice ancestor_service(const struct trace_span *spans, size_t n,
                                     const struct trace_span *s)
{
    for (size_t hops = 0; hops < n && !obs__is_zero(s->parent_id, TRACE_SPAN_ID_BYTES); hops++) {
        const struct trace_span *p = find(spans, n, s->parent_id, TRACE_KIND_NONE);
        if (!p || p == s) break;
        if (p->local.service.len) return p->local.service;
        s = p;
    }
    return SLICE_NULL;
}

int obs_links_add_trace(struct obs_links *l, const struct trace_span *spans, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct trace_span *s = &spans[i], *c;
        struct slice parent;
        switch (s->kind) {
        case TRACE_KIND_SERVER:
            c = client_of(spans, n, s);
            if (c) {
                parent = c->local.service.len ? c->local.service : s->remote.service;
                SH_TRY(add_link(l, parent, s->local.service, span_error(s) || span_error(c)));
                break;
            }
            parent = s->remote.service;
            if (!parent.len) {
                parent = ancestor_service(spans, n, s);
                if (parent.len && slice_eq(parent, s->local.service)) parent = SLICE_NULL;
            }
            SH_TRY(add_link(l, parent, s->local.service, span_error(s)));
            break;
        case TRACE_KIND_CLIENT:
            if (!has_server_child(spans, n, s))
                SH_TRY(add_link(l, s->local.service, s->remote.service, span_error(s)));
            break;
        case TRACE_KIND_PRODUCER:
            SH_TRY(add_link(l, s->local.service, s->remote.service, span_error(s)));
            break;
        case TRACE_KIND_CONSUMER:
            SH_TRY(add_link(l, s->remote.service, s->local.service, span_error(s)));
            break;
        default:
            break;
        }
    }
    return 0;
}

int obs_links_render(const struct obs_links *l, struct buf *out)
{
    buf_appendc(out, '[');
    for (size_t i = 0; i < l->count; i++) {
        buf_appends(out, i ? SLICE(",{\"parent\":\"") : SLICE("{\"parent\":\""));
        buf_append_json_str(out, slice_from_cstr(l->links[i].parent));
        buf_appends(out, SLICE("\",\"child\":\""));
        buf_append_json_str(out, slice_from_cstr(l->links[i].child));
        buf_appendf(out, "\",\"callCount\":%llu", (unsigned long long)l->links[i].call_count);
        if (l->links[i].error_count)
            buf_appendf(out, ",\"errorCount\":%llu", (unsigned long long)l->links[i].error_count);
        buf_appendc(out, '}');
    }
    buf_appendc(out, ']');
    return out->err;
}

void obs_links_release(struct obs_links *l)
{
    for (size_t i = 0; i < l->count; i++) {
        sh_free(l->links[i].parent);
        sh_free(l->links[i].child);
    }
    sh_free(l->links);
    memset(l, 0, sizeof(*l));
}
