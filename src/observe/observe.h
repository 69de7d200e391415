/* SPDX-License-Identifier: MIT */
/* observe.h: what the control plane keeps to look back at a running system: the services'
 * output and the proxies' access logs in one searchable store (Logs), the span store and the
 * trace codecs (Zipkin v2 JSON, OTLP/HTTP JSON and protobuf) (Traces); requests/s, errors and
 * latency quantiles per service, route and edge over the last 24 h, and SLOs (Metrics history, in
 * memory), each in its own section. Each store is its own SQLite file in the data directory,
 * written off the request path in batches, without an fsync per write, and bounded by size and age.
 * Prefixes: obs_, OBS_.
 * Threads: each section says; the codecs and the decisions (query test, dependency links) are
 * plain functions callable from any thread.
 *
 * Files: logs_parse.c, logs_store.c (logs); spans.c (the span store), span_pack.c (a span's
 * stored form), query.c (annotation queries, the Zipkin trace test, dependency links),
 * zipkin.c (Zipkin v2 JSON), otlp.c (OTLP JSON and protobuf), gzip.c (compressed bodies).
 * Third-party: SQLite, jansson, zlib. */
#ifndef SHOAL_OBSERVE_H
#define SHOAL_OBSERVE_H

#include "core/core.h"

/* ==========================================================================================
 * Logs
 *
 * One row per line: when, which service and instance, which stream (stdout, stderr, or a
 * proxy's access log), and what the line says. The line parser (obs_log_parse) finds a level,
 * a message, a trace id and a span id in JSON lines under their common key names and, more
 * cheaply, in plain text; a line that carries a trace id is found by it (GET /v1/logs?trace=).
 * Full text search is SQLite FTS5 over the message and the raw line.
 *
 * The store (logs_store.c) is DATA_DIR/logs.sqlite in WAL mode, synchronous=NORMAL: a commit
 * does not fsync (a power cut may lose the last batches, never the file). obs_logs_add only
 * copies the line into a pending list; a writer thread parses and inserts what is pending in
 * one transaction every flush_ms, and drops the oldest rows past max_bytes or max_age_ms.
 * Searches run on the caller's thread on their own connection and see every batch committed
 * before they start.
 * ========================================================================================== */
enum {
    OBS_LOG_LINE_MAX = 8192, /* bytes of one line kept; longer ones are cut (between characters) */
    OBS_LOG_NAME_MAX = 128,  /* bytes of a service or instance name */
    OBS_LOG_QUERY_MAX = 512, /* bytes of a full-text query */
    OBS_LOG_QUERY_TERMS = 16,
    OBS_LOG_LIMIT_MAX = 10000, /* rows one search returns at most */
};

enum obs_log_stream { OBS_STREAM_STDOUT = 0, OBS_STREAM_STDERR, OBS_STREAM_ACCESS };

/* Severity, in order: a level filter keeps lines at that level or above. NONE: the line did
 * not say (such lines never pass a level filter). */
enum obs_log_level {
    OBS_LEVEL_NONE = 0,
    OBS_LEVEL_TRACE,
    OBS_LEVEL_DEBUG,
    OBS_LEVEL_INFO,
    OBS_LEVEL_WARN,
    OBS_LEVEL_ERROR,
    OBS_LEVEL_FATAL,
};

/* "stdout", "stderr", "access". Never NULL. */
const char *obs_log_stream_name(enum obs_log_stream s);
/* "trace", "debug", "info", "warn", "error", "fatal"; NULL for OBS_LEVEL_NONE. */
const char *obs_log_level_name(enum obs_log_level l);
/* A level as people and loggers write it, any case: trace, debug, info, notice (info), warn,
 * warning, error, err, fatal, critical, crit, panic, emerg, alert; or pino/bunyan's numbers
 * (10 trace ... 60 fatal). Returns the level, or OBS_LEVEL_NONE when s is none of those. */
enum obs_log_level obs_log_level_parse(struct slice s);

/* What obs_log_parse found in a line. The slices point into the parsed line or into msg_buf;
 * valid while both are. A plain value: the caller allocates it (it is ~8 KiB: not for deep
 * stacks), nothing to release. */
struct obs_log_fields {
    enum obs_log_level level;
    struct slice message;               /* the line's message, or the whole line */
    char trace_id[33];                  /* 32 lowercase hex digits and a NUL, or "" */
    char span_id[17];                   /* 16 lowercase hex digits and a NUL, or "" */
    uint64_t ts_ms;                     /* a time the line states (access lines' "ts"), or 0 */
    bool is_json;                       /* the line is one JSON object */
    char msg_buf[OBS_LOG_LINE_MAX + 1]; /* private: an unescaped JSON message */
};

/* Parses one line (without its newline; any bytes, any length) of <stream>:
 * - a JSON object: level under level, lvl, severity, levelname, log.level (or {"log":
 *   {"level"}}); message under msg, message, log (a string); trace id under trace_id, traceId,
 *   traceid, trace.id (or {"trace":{"id"}}), else from a traceparent field; span id under
 *   span_id, spanId, spanid, span.id (or {"span":{"id"}}), else from the traceparent;
 * - plain text: a level word leading the line (after a timestamp, '[' or '<' when there is
 *   one: "ERROR ...", "[warn] ...", "2024-05-01T10:00:00Z INFO ..."), or logfmt's level=;
 *   a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>") anywhere, or trace_id=<32 hex> (also
 *   traceId, trace.id, traceid; '=' or ':'), and span_id=<16 hex> likewise;
 * - an access line of the gateway or the mesh (stream OBS_STREAM_ACCESS, the JSON
 *   proxy/forward.c writes): the message "METHOD TARGET STATUS DURATIONms route=R
 *   cluster=C", the level from the status (5xx error, 4xx warn, else info), ts_ms from "ts".
 * Trace ids of 16 hex digits (64-bit, Zipkin) are widened to 32 with leading zeros; ids of
 * another size or all zeros are not ids. Never fails: what is not found stays empty. */
void obs_log_parse(struct slice line, enum obs_log_stream stream, struct obs_log_fields *out);

/* A trace id as a user gives it (32 or 16 hex digits, any case) into out[33] (32 lowercase
 * hex, widened as above). false when it is not one. */
bool obs_log_trace_id_norm(struct slice s, char out[33]);

/* Turns a user's full-text query into an FTS5 expression that cannot be anything else than
 * what the user typed: every whitespace-separated word, or "double-quoted phrase", becomes a
 * quoted FTS5 string (so AND, OR, NOT, NEAR, ':', '^', '(' are words like any other); a word
 * ending in '*' searches for a prefix. All the terms must match. Into <out> (reset first).
 * Returns 0; SH_EINVAL for an empty query; SH_ETOOBIG past OBS_LOG_QUERY_MAX bytes or
 * OBS_LOG_QUERY_TERMS terms; SH_EPARSE for a control character, an unbalanced quote or a term
 * with no letter or digit in it; d->what says which (d->where is "q"). */
SH_MUST_CHECK int obs_log_fts_query(struct slice q, struct buf *out, struct sh_diag *d);

/* ---- the store ---- */
struct obs_logs;

struct obs_logs_config {
    const char *path;         /* the SQLite file, e.g. DATA_DIR/logs.sqlite; created if absent */
    uint64_t max_bytes;       /* rows past it are dropped, oldest first; 0 = 256 MiB */
    uint64_t max_age_ms;      /* rows older are dropped; 0 = 7 days */
    uint32_t flush_ms;        /* the writer's batch interval; 0 = 100 */
    uint32_t retain_every_ms; /* how often the bounds are enforced; 0 = 5000 */
    size_t max_pending_bytes; /* lines added but not yet written; past it, added lines are
                               * dropped and counted; 0 = 32 MiB */
    bool is_manual;           /* no writer thread: obs_logs_flush writes (tests, bench) */
};

/* Opens (creates) the store and starts its writer thread. 0 and *out, or SH_E* with d. The
 * caller's thread then owns add, flush, search, stats and close. */
SH_MUST_CHECK int obs_logs_open(const struct obs_logs_config *cfg, struct obs_logs **out,
                                struct sh_diag *d);
/* Writes what is pending, stops the writer and closes the file. NULL is a no-op. */
void obs_logs_close(struct obs_logs *st);

/* One line to keep. The slices are copied; line is cut at OBS_LOG_LINE_MAX bytes and bytes
 * that are not well-formed UTF-8 become '?'. */
struct obs_log_entry {
    uint64_t ms; /* when it was written, Unix ms; an access line's own "ts" wins when set */
    struct slice service, instance; /* cut at OBS_LOG_NAME_MAX */
    enum obs_log_stream stream;
    struct slice line; /* without its newline */
};
/* Queues a line for the writer. 0; SH_ELIMIT when max_pending_bytes are pending (the line is
 * dropped and counted in stats.dropped); SH_ENOMEM. Never blocks on the disk. */
SH_MUST_CHECK int obs_logs_add(struct obs_logs *st, const struct obs_log_entry *e);
/* Blocks until every line added before the call is committed (or failed). 0 or SH_E*. */
SH_MUST_CHECK int obs_logs_flush(struct obs_logs *st);
/* Enforces the bounds now, as the writer does every retain_every_ms, with <now_ms> as the
 * present (tests pass a time to age rows). Call only after obs_logs_flush in manual mode or
 * when nothing else writes. 0 or SH_E*. */
SH_MUST_CHECK int obs_logs_retain(struct obs_logs *st, uint64_t now_ms);

/* A search. Every field is optional (zero: no filter). */
struct obs_logs_query {
    const char *fts;      /* an FTS5 expression from obs_log_fts_query */
    const char *contains; /* a substring of the raw line (the old ?grep=) */
    const char *service, *instance;
    const char *trace_id; /* 32 lowercase hex (obs_log_trace_id_norm) */
    enum obs_log_level min_level;
    uint64_t since_ms, until_ms; /* Unix ms, inclusive */
    uint64_t after_id;           /* rows with a larger id only, oldest first (follow) */
    uint32_t limit;              /* 0 = 1000; at most OBS_LOG_LIMIT_MAX */
};

/* One row found. Strings are NUL-terminated and valid during the callback only. */
struct obs_log_row {
    uint64_t id; /* grows with every insert; never reused */
    uint64_t ms;
    const char *service, *instance;
    enum obs_log_stream stream;
    enum obs_log_level level;
    const char *message;
    const char *trace_id, *span_id; /* "" when none */
    const char *line;               /* the raw line */
};
/* Returns a callback's non-zero result to stop the search with it. */
typedef int obs_log_row_fn(void *data, const struct obs_log_row *row);

/* Finds the rows that match every filter: without after_id the newest <limit> ones, handed
 * to fn oldest first; with after_id the oldest <limit> rows past it. Returns 0, fn's
 * non-zero result, or SH_E* with d (an FTS5 expression SQLite refuses: SH_EPARSE, d->where
 * "q"). The caller's thread; does not wait for the writer. */
SH_MUST_CHECK int obs_logs_search(struct obs_logs *st, const struct obs_logs_query *q,
                                  obs_log_row_fn *fn, void *data, struct sh_diag *d);

struct obs_logs_stats {
    uint64_t rows;       /* rows in the store */
    uint64_t used_bytes; /* pages in use (the file may be larger: free pages are reused) */
    uint64_t inserted;   /* rows written since open */
    uint64_t deleted;    /* rows dropped by the bounds since open */
    uint64_t dropped;    /* lines refused by obs_logs_add (pending list full) or lost to a
                          * failed write, since open */
    uint64_t oldest_ms;  /* the oldest row's time, 0 when empty */
};
SH_MUST_CHECK int obs_logs_stats(struct obs_logs *st, struct obs_logs_stats *out);
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
 * obs_spans_add and written in one transaction every flush_ms by the store's own writer thread
 * (so a large batch never holds the caller's loop), never by a proxy worker (workers push to a
 * trace_queue, the control loop drains it into obs_spans_add). Every query first waits until
 * each span added before it is committed (obs_spans_flush), so it sees them all.
 * Bounds: after each flush, the oldest traces (first stored first dropped) go until the stored
 * bytes are at most max_bytes and none was first stored more than max_age_ms ago. Service
 * object; add/flush/queries/close belong to the opener's thread. */
struct obs_spans;
struct obs_spans_config {
    const char *path;      /* e.g. DATA_DIR/traces.sqlite; created when missing */
    uint64_t max_bytes;    /* stored spans' bytes; 0 = 256 MiB */
    uint64_t max_age_ms;   /* 0 = 7 days */
    uint32_t max_buffered; /* spans added and not yet committed; 0 = 100000; then add refuses */
    uint32_t max_scan;     /* traces a query may examine; 0 = 20000 */
    uint32_t flush_ms;     /* the writer's period; 0 = 200 */
    bool is_manual;        /* tests: no thread; obs_spans_flush writes on the caller's thread */
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
bool obs_spans_has_room(struct obs_spans *st, const struct trace_span *spans, size_t n);
/* A trace_span_fn for trace_queue_drain(q, max, obs_spans_drain_fn, st): obs_spans_add,
 * counting refusals. */
void obs_spans_drain_fn(void *data, const struct trace_span *s);
/* Has the writer write the buffer in one transaction, then enforce the bounds at <now_ms> (wall
 * clock, Unix ms), and waits until it did (the writer does so by itself every flush_ms; call
 * this only to see the spans stored now). 0 or SH_E* (then the buffered spans are dropped and
 * counted, the store stays usable; the detail is in obs_spans_errmsg). */
SH_MUST_CHECK int obs_spans_flush(struct obs_spans *st, uint64_t now_ms);
/* Has the writer start writing the buffer now, without waiting (no-op when manual). */
void obs_spans_kick(struct obs_spans *st);
size_t obs_spans_pending(struct obs_spans *st); /* added, not yet committed */
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

/* ==========================================================================================
 * Metrics history
 *
 * Per series (a service, a route, or an edge "CALLER->CALLEE"): requests/s, error ratio (5xx
 * and requests without a response), the share of requests slower than the series' SLO latency
 * threshold, and p50/p95/p99 from the proxies' latency sketches (telemetry.h, "Latency
 * sketch"). Two rings a series, in memory: 3600 points of 1 s (the last hour) and 1440 of 1 min
 * (the last day), 24 bytes a point; plus what sampling needs: the cumulative counts and sketch
 * at the previous sample, at the start of the current minute, and at the last 7 ten-second
 * marks (the "last minute" window of the service map). About 136 KiB a series.
 *
 * The caller samples once a second: obs_history_record with every series' cumulative counts
 * (they only grow); a point is the difference from the previous sample, so its quantiles are
 * those of the requests that ended in that second, and a minute's are those of its requests
 * (merged sketch), not an average of the seconds'. Seconds with no sample are gaps (no data).
 * Plain code over plain structs (no clock inside: now is passed in); unit-tested in
 * tests/unit/observe/test_history.c.
 * Threads: one thread at a time (shoal up's control thread samples and the admin API reads).
 * ========================================================================================== */
enum obs_series_kind { OBS_SERIES_SERVICE = 0, OBS_SERIES_ROUTE, OBS_SERIES_EDGE };

enum {
    OBS_HISTORY_SECONDS = 3600,    /* 1 s points kept */
    OBS_HISTORY_MINUTES = 1440,    /* 1 min points kept */
    OBS_HISTORY_MAX_SERIES = 4096, /* default cap; past it new series are refused */
    OBS_HISTORY_NAME_MAX = 256,    /* bytes of a series name */
    OBS_HISTORY_RECENT_S = 60,     /* the service map's window */
};

/* One series' cumulative counts at one sample. */
struct obs_sample {
    enum obs_series_kind kind;
    const char *name;
    uint64_t requests, errors; /* ended requests; those answered 5xx or without a response */
    const uint64_t *sketch;    /* METRIC_SKETCH_BUCKETS cumulative counts of durations, or NULL */
    double slow_s;             /* the SLO latency threshold: requests over it count as slow;
                                * 0 = none */
};

/* One point (or a window's totals). NaN in a quantile: no request; everything NaN (and
 * requests 0): no data for that interval. */
struct obs_point {
    int64_t t;          /* Unix seconds: the end of the interval */
    double requests;    /* ended in the interval */
    double rps;         /* requests / interval length */
    double error_ratio; /* errors / requests; 0 without requests */
    double slow_ratio;  /* over slow_s / requests; 0 without requests or threshold */
    double p50_ms, p95_ms, p99_ms;
};

struct obs_history;
struct obs_history_config {
    uint32_t max_series; /* 0 = OBS_HISTORY_MAX_SERIES */
};
SH_MUST_CHECK int obs_history_new(const struct obs_history_config *cfg, struct obs_history **out);
void obs_history_free(struct obs_history *h); /* NULL is a no-op */

/* Records the samples taken at now_s (Unix seconds, one call a second with every series).
 * A series is made on its first sample (which gives no point: there is nothing to subtract
 * yet). A sample not after the series' previous one is ignored; counts that went down start
 * the series over (its cumulative base is taken as 0). Returns 0, or SH_ELIMIT / SH_ENOMEM /
 * SH_EINVAL (a name empty or too long) after recording the samples it could. */
SH_MUST_CHECK int obs_history_record(struct obs_history *h, int64_t now_s,
                                     const struct obs_sample *s, size_t n);

/* The points of a series over the last window_s seconds up to now_s, oldest first: 1 s points
 * when window_s <= OBS_HISTORY_SECONDS, else 1 min points (window_s at most 24 h).
 * *out (caller frees with sh_free) gets one point per step, gaps included; *step_s the step.
 * Returns 0, SH_ENOENT (no such series), SH_EINVAL (window 0 or over 24 h), SH_ENOMEM. */
SH_MUST_CHECK int obs_history_points(struct obs_history *h, enum obs_series_kind kind,
                                     const char *name, int64_t now_s, uint32_t window_s,
                                     struct obs_point **out, size_t *n, uint32_t *step_s);

/* Totals over the last window_s seconds up to now_s, from the rings (1 s points up to an
 * hour, else 1 min points): requests, rps over the window, error and slow ratios; quantiles
 * are NaN (the rings keep quantiles, not sketches). 0 or SH_ENOENT / SH_EINVAL. */
SH_MUST_CHECK int obs_history_totals(struct obs_history *h, enum obs_series_kind kind,
                                     const char *name, int64_t now_s, uint32_t window_s,
                                     struct obs_point *out);

/* The last OBS_HISTORY_RECENT_S seconds (from the newest ten-second mark at least that old;
 * less while the series is younger), quantiles included (merged sketch). 0 or SH_ENOENT. */
SH_MUST_CHECK int obs_history_recent(struct obs_history *h, enum obs_series_kind kind,
                                     const char *name, struct obs_point *out);

/* The requests a series has counted since it was made (0 when there is no such series). */
uint64_t obs_history_requests(struct obs_history *h, enum obs_series_kind kind, const char *name);

/* Calls fn for every series, in the order they were made. */
typedef void obs_series_fn(void *data, enum obs_series_kind kind, const char *name);
void obs_history_each(struct obs_history *h, obs_series_fn *fn, void *data);

/* "service", "route", "edge". */
const char *obs_series_kind_name(enum obs_series_kind kind);

/* ---- SLOs: error budget and burn rate (plain functions) ----
 * An SLO is an availability objective (requests not failed, in percent) and/or a latency
 * objective (latency_percent of the requests under latency_ms), over window_s. A request is
 * bad when it failed (availability) or was slower (latency); each objective's budget is the
 * share of bad requests it allows (100 - objective)%. */
struct obs_slo {
    double availability;    /* percent, e.g. 99.9; 0 = none */
    double latency_ms;      /* threshold; 0 = none */
    double latency_percent; /* e.g. 99 (a p99 objective); with latency_ms */
    uint32_t window_s;      /* e.g. 30 days */
};

struct obs_slo_status {
    double budget_left;      /* fraction of the window's budget not spent (1 = all, < 0 when
                              * overspent), the smaller of the two objectives' */
    double burn_1h, burn_6h; /* bad share over the last hour / six hours divided by the budget
                              * share (1 = spending exactly the budget over the window); the
                              * larger of the two objectives' */
    double availability;     /* measured over the window, percent; NaN without requests */
    double latency_good;     /* percent of requests under latency_ms; NaN without */
    double window_requests;  /* requests the window's figures rest on */
};

/* From three totals (obs_history_totals over the SLO's window, 1 h and 6 h): fills *out.
 * With no requests the budget is whole and the burn rates 0. */
void obs_slo_eval(const struct obs_slo *slo, const struct obs_point *window,
                  const struct obs_point *last_1h, const struct obs_point *last_6h,
                  struct obs_slo_status *out);

/* The SLO of a service, kept in the history so readers find it beside the data: a copy is
 * made (replacing the one set before; NULL or an SLO with no objective removes it). 0 or
 * SH_ENOMEM / SH_ELIMIT (as many SLOs as max_series). */
SH_MUST_CHECK int obs_history_set_slo(struct obs_history *h, const char *service,
                                      const struct obs_slo *slo);
/* The SLO set for <service>: true and *out, or false. */
bool obs_history_slo(struct obs_history *h, const char *service, struct obs_slo *out);
/* The service's SLO status at now_s: the window is what the rings keep (at most 24 h, until
 * the minute ring is kept on disk), the burn rates over 1 h and 6 h. 0, or SH_ENOENT (no SLO
 * set for it; a service with an SLO and no traffic yet has a whole budget). */
SH_MUST_CHECK int obs_history_slo_status(struct obs_history *h, const char *service, int64_t now_s,
                                         struct obs_slo_status *out);

#endif
