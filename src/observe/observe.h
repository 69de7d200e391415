/* SPDX-License-Identifier: MIT */
/* observe.h: what the control plane keeps to look back at a running system: the span store
 * and the trace codecs (Zipkin v2 JSON, OTLP/HTTP JSON and protobuf), each in its own section.
 * Prefixes: obs_, OBS_.
 * Threads: a store belongs to the thread that opened it (the control loop); the codecs and the
 * decisions (query test, dependency links) are plain functions callable from any thread.
 *
 * Files: spans.c (the span store), span_pack.c (a span's stored form), query.c (annotation
 * queries, the Zipkin trace test, dependency links), zipkin.c (Zipkin v2 JSON), otlp.c (OTLP
 * JSON and protobuf), gzip.c (compressed bodies). Third-party: SQLite (the store's own file),
 * jansson (the JSON decoders), zlib (gzip). */
#ifndef SHOAL_OBSERVE_H
#define SHOAL_OBSERVE_H

#include "core/core.h"
#include "telemetry/telemetry.h"

/* ==========================================================================================
 * Traces
 * ========================================================================================== */

/* ---- Decoded spans ------------------------------------------------------------------------
 * A batch holds the spans one ingest request carried; their strings live in the batch's
 * arena. Value type: zero it, decode into it, release it. */
struct obs_batch {
    struct trace_span *spans;
    size_t count, cap;
    size_t tags_dropped; /* tags or annotations past TRACE_SPAN_MAX_* (not an error) */
    struct arena arena;  /* private: the spans' strings */
};
void obs_batch_release(struct obs_batch *b); /* idempotent; a zeroed batch is released */

/* Limits on what an ingest request may carry (checked while decoding, before allocating). */
struct obs_limits {
    size_t max_spans;        /* per request; 0 = 10000 */
    size_t max_string_bytes; /* one name, id, tag key or value; 0 = 16 KiB */
    size_t max_depth;        /* nesting of OTLP values (arrays, kvlists); 0 = 8 */
};

/* Zipkin v2 JSON (zipkin.c). <body> is a JSON array of spans. Strict: traceId is 16 or 32
 * lowercase-or-uppercase hex (a 16-hex id fills the low half), id and parentId 16 hex, none
 * all zero; kind one of CLIENT, SERVER, PRODUCER, CONSUMER; timestamp and duration
 * non-negative integers (µs); tags' values strings; endpoints objects. Unknown fields are
 * ignored. Returns 0 and fills *out (which must be zeroed or released), or SH_EPARSE /
 * SH_ETOOBIG with d->where naming the field ("[3].traceId") and d->what the reason; then *out
 * holds nothing. */
SH_MUST_CHECK int obs_zipkin_decode(struct slice body, const struct obs_limits *lim,
                                    struct obs_batch *out, struct sh_diag *d);
/* Appends <s> as one Zipkin v2 JSON span object (what the Zipkin UI and Grafana read). The
 * buffer's sticky error is returned (0 or SH_E*). */
int obs_zipkin_encode_span(struct buf *b, const struct trace_span *s);
/* Hex forms of ids: a trace id whose high half is zero prints as 16 hex (as Zipkin does). */
void obs_trace_id_hex(const uint8_t id[TRACE_ID_BYTES], char out[33]);
/* Parses 16 or 32 hex digits (either case) into a trace id (16: the low half). 0 or SH_EPARSE. */
SH_MUST_CHECK int obs_trace_id_parse(struct slice hex, uint8_t out[TRACE_ID_BYTES]);

/* OTLP/HTTP traces (otlp.c): ExportTraceServiceRequest as JSON (ids hex; 64-bit integers as
 * strings or numbers; enums as integers) or protobuf. Mapping onto Zipkin's model, as the
 * OpenTelemetry Collector's Zipkin exporter does: resource attribute service.name becomes the
 * local service (else "unknown_service"); span attributes become tags (non-strings printed);
 * events become annotations ("name" or "name: {attributes}"); status code 2 (error) sets
 * is_error and tag "error" (the status message, or "true"); kinds 2..5 map to SERVER, CLIENT,
 * PRODUCER, CONSUMER, others to none; peer.service / server.address attributes name the remote
 * service. Same return and diag contract as obs_zipkin_decode; where names the field with its
 * path ("resourceSpans[0].scopeSpans[1].spans[2].traceId"). */
SH_MUST_CHECK int obs_otlp_decode_json(struct slice body, const struct obs_limits *lim,
                                       struct obs_batch *out, struct sh_diag *d);
SH_MUST_CHECK int obs_otlp_decode_proto(struct slice body, const struct obs_limits *lim,
                                        struct obs_batch *out, struct sh_diag *d);

/* Inflates a gzip body (Content-Encoding: gzip; several members are one body) into <out>,
 * whose max caps what it may grow to (set it: a small body can inflate to gigabytes). 0, or
 * SH_ETOOBIG (past out->max), SH_EPARSE (not gzip, corrupt, cut short), SH_ENOMEM, with d
 * saying why; then out is released (empty, holding no memory). (gzip.c, zlib.) */
SH_MUST_CHECK int obs_gunzip(struct slice in, struct buf *out, struct sh_diag *d);

/* ---- Queries: plain decisions over spans (query.c) ---------------------------------------- */
enum { OBS_QUERY_MAX_TERMS = 16 };
/* Zipkin's /api/v2/traces parameters. Strings are borrowed (NULL = any). */
struct obs_query {
    const char *service, *remote_service, *span_name;
    uint64_t min_duration_us, max_duration_us; /* 0 = no bound */
    uint64_t end_ms, lookback_ms; /* the root's start must lie in [end-lookback, end] */
    uint32_t limit;               /* traces; 0 = 10 */
    struct {
        struct slice key, value; /* value.ptr NULL: a bare term (tag key or annotation value) */
    } terms[OBS_QUERY_MAX_TERMS];
    size_t term_count;
};
/* Parses Zipkin's annotationQuery ("error and http.path=/foo and finagle.retry") into q's
 * terms; slices point into <text>. Terms are split on " and " (any case); a term is key or
 * key=value (split at the first '='); empty keys are refused. 0, or SH_EPARSE / SH_ETOOBIG (more
 * than OBS_QUERY_MAX_TERMS terms) with d naming "annotationQuery". */
SH_MUST_CHECK int obs_query_parse_annotations(struct slice text, struct obs_query *q,
                                              struct sh_diag *d);
/* Zipkin's QueryRequest.test: whether the trace made of <spans> matches <q>: its start (the
 * root's timestamp, else the earliest) within the window; and, among the spans of q->service
 * (all spans when NULL), one with the remote service, one with the span name, every term
 * (bare: an annotation value or a tag key; key=value: that tag), and one in the duration
 * bounds (not necessarily the same span, as in Zipkin). */
bool obs_query_test(const struct obs_query *q, const struct trace_span *spans, size_t n);

/* Dependency links (Zipkin's DependencyLinker, simplified): per RPC one call parent -> child,
 * counted once per client/server pair: a SERVER span under a CLIENT span links the client's
 * service to the server's; a CLIENT span with no SERVER child links its service to its remote
 * service; a SERVER span with no CLIENT parent links its remote service (else the nearest
 * ancestor's service, when different) to itself; PRODUCER -> remote, remote -> CONSUMER. A call
 * is an error when either side has is_error or an "error" tag. */
struct obs_link {
    char *parent, *child; /* owned */
    uint64_t call_count, error_count;
};
struct obs_links {
    struct obs_link *links;
    size_t count, cap;
};
SH_MUST_CHECK int obs_links_add_trace(struct obs_links *l, const struct trace_span *spans,
                                      size_t n);
/* Appends [{"parent","child","callCount","errorCount"}...]; the buffer's error. */
int obs_links_render(const struct obs_links *l, struct buf *out);
void obs_links_release(struct obs_links *l); /* idempotent */

/* ---- The span store (spans.c) -------------------------------------------------------------
 * Its own SQLite file (WAL, synchronous=OFF: nothing on the request path waits for a disk;
 * a crash may lose the last seconds of spans, never the file). Spans are buffered in memory by
 * obs_spans_add and written by obs_spans_flush in one transaction; the caller runs flush from
 * a timer (the control loop's), never from a proxy worker (workers push to a trace_queue, the
 * control loop drains it into obs_spans_add).
 * Bounds: after each flush, the oldest traces (first stored first dropped) go until the stored
 * bytes are at most max_bytes and none was first stored more than max_age_ms ago. Service
 * object; thread: the opener's. */
struct obs_spans;
struct obs_spans_config {
    const char *path;      /* e.g. DATA_DIR/traces.sqlite; created when missing */
    uint64_t max_bytes;    /* stored spans' bytes; 0 = 256 MiB */
    uint64_t max_age_ms;   /* 0 = 7 days */
    uint32_t max_buffered; /* spans held between flushes; 0 = 100000; then add refuses */
    uint32_t max_scan;     /* traces a query may examine; 0 = 20000 */
};
SH_MUST_CHECK int obs_spans_open(const struct obs_spans_config *cfg, struct obs_spans **out,
                                 struct sh_diag *d);
/* Flushes what is buffered, then closes. NULL is a no-op. */
void obs_spans_close(struct obs_spans *st);
/* Copies <s> into the buffer. 0, SH_ELIMIT (buffer full: dropped and counted), SH_ETOOBIG
 * (its strings exceed TRACE_SPAN_MAX_BYTES), SH_ENOMEM. Never touches the disk. */
SH_MUST_CHECK int obs_spans_add(struct obs_spans *st, const struct trace_span *s);
/* Whether the <n> spans fit in the buffer, by count and by bytes (an ingest request checks
 * before adding any, so that it is stored whole or not at all). */
bool obs_spans_has_room(const struct obs_spans *st, const struct trace_span *spans, size_t n);
/* A trace_span_fn for trace_queue_drain(q, max, obs_spans_drain_fn, st): obs_spans_add,
 * counting refusals. */
void obs_spans_drain_fn(void *data, const struct trace_span *s);
/* Writes the buffer in one transaction, then enforces the bounds at <now_ms> (wall clock,
 * Unix ms). 0 or SH_E* (then the buffered spans are dropped and counted, the store stays
 * usable; the detail is in obs_spans_errmsg). */
SH_MUST_CHECK int obs_spans_flush(struct obs_spans *st, uint64_t now_ms);
size_t obs_spans_pending(const struct obs_spans *st);
const char *obs_spans_errmsg(const struct obs_spans *st);
struct obs_spans_stats {
    uint64_t traces, spans, bytes; /* stored now */
    uint64_t evicted_traces;       /* dropped by the bounds since open */
    uint64_t refused_spans;        /* refused by add (buffer full) or lost by a failed flush */
};
SH_MUST_CHECK int obs_spans_stats(struct obs_spans *st, struct obs_spans_stats *out);

/* Zipkin's query API, rendered as its JSON into <out> (each flushes the buffer first, so a
 * query sees every span added before it). 0 or SH_E*. */
SH_MUST_CHECK int obs_spans_services(struct obs_spans *st, struct buf *out);
SH_MUST_CHECK int obs_spans_span_names(struct obs_spans *st, const char *service, struct buf *out);
SH_MUST_CHECK int obs_spans_remote_services(struct obs_spans *st, const char *service,
                                            struct buf *out);
/* The spans of one trace as a JSON array; SH_ENOENT when none is stored. */
SH_MUST_CHECK int obs_spans_trace(struct obs_spans *st, const uint8_t id[TRACE_ID_BYTES],
                                  struct buf *out);
/* Traces matching q, newest first, as an array of arrays of spans. */
SH_MUST_CHECK int obs_spans_traces(struct obs_spans *st, const struct obs_query *q,
                                   struct buf *out);
/* Links of the traces that started in [end_ms - lookback_ms, end_ms]. */
SH_MUST_CHECK int obs_spans_dependencies(struct obs_spans *st, uint64_t end_ms,
                                         uint64_t lookback_ms, struct buf *out);

#endif
