/* SPDX-License-Identifier: MIT */
/* telemetry.h: metrics (counters, gauges, histograms with labels, per-worker shards, Prometheus
 * text exposition 0.0.4) and trace context (W3C traceparent/tracestate, id generation).
 * Prefixes: metrics_, metric_, METRIC_, METRICS_, trace_, TRACE_.
 * Threads: each section says which calls belong to which thread. */
#ifndef SHOAL_TELEMETRY_H
#define SHOAL_TELEMETRY_H

#include "core/core.h"

/* ==========================================================================================
 * Metrics registry (service object).
 *
 * Shape: families are registered with a name, help text, type and label names; a series is one
 * tuple of label values within a family, and is what the hot path writes to through a handle
 * (struct metric_counter/metric_gauge/metric_histogram).
 *
 * Shards: the registry has cfg.shards shards. Every thread that records (each proxy worker,
 * and the control thread if it records too) owns one shard index in [0, shards) and passes it
 * to the hot-path calls. A shard index must be used by one thread at a time: a shard cell has a
 * single writer, so recording is a relaxed load and store, with no lock, no read-modify-write
 * and no allocation. Each shard's cells live in memory of their own (64-byte aligned blocks),
 * so workers never share a cache line. A scrape sums the shards.
 *
 * Threads:
 *   - metrics_new / metrics_free: the owning (control) thread; free only after every thread
 *     that records has stopped.
 *   - Control calls: metrics_family_add, metric_*_get, metric_*_retire, metrics_render. Any
 *     thread; they serialise on one internal mutex, which the hot path never takes. Creating a
 * series is cheap (a hash lookup, one small allocation, and one block per shard every
 * METRICS_CHUNK_CELLS cells) and may happen while workers record.
 *   - Hot path: metric_counter_add/_inc, metric_gauge_add, metric_histogram_observe: the thread
 *     that owns the shard index. metric_gauge_set: any thread (one atomic store). Lock-free and
 *     allocation-free; they never fail.
 *   - metric_*_read, metrics_shards: any thread, lock-free (relaxed loads of the shards).
 *
 * Lifetime of handles (the simple rule): a series is never freed before metrics_free. A handle
 * stays valid until then, whatever happens to its series. metric_*_retire only hides a series
 * from the exposition; a worker still holding the handle (say, through an old config snapshot)
 * keeps writing into cells nobody renders, which is harmless. Getting the same label values
 * again revives the same series with the counts it had. Memory is therefore bounded by the
 * number of distinct label tuples ever created, which cfg.max_series caps.
 * ========================================================================================== */

enum metric_type {
    METRIC_COUNTER = 0,   /* monotonic uint64; the family name must end in "_total" */
    METRIC_GAUGE = 1,     /* double: the last metric_gauge_set value plus every shard's adds */
    METRIC_HISTOGRAM = 2, /* cumulative buckets with fixed upper bounds, _sum and _count */
    METRIC_SKETCH = 3,    /* latency sketch for quantiles (see "Latency sketch"); never rendered */
};

enum {
    METRICS_DEFAULT_SHARDS = 1,
    METRICS_DEFAULT_MAX_SERIES = 65536,
    METRICS_MAX_SHARDS = 1024,
    METRICS_MAX_LABELS = 16,              /* label names per family */
    METRICS_MAX_BUCKETS = 64,             /* finite bucket bounds per histogram family */
    METRICS_MAX_NAME_BYTES = 200,         /* metric and label names */
    METRICS_MAX_LABEL_VALUE_BYTES = 1024, /* each label value */
    METRICS_MAX_HELP_BYTES = 1024,
    METRICS_CHUNK_CELLS = 1024, /* 8-byte cells per shard block */
};

/* The default latency buckets in seconds: .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5
 * 5 10 (and +Inf, which every histogram has implicitly). */
extern const double metrics_latency_buckets_s[14];

struct metrics;        /* opaque service object */
struct metric_family;  /* opaque; owned by the registry */
struct metric_counter; /* opaque series handles; owned by the registry, see "Lifetime" */
struct metric_gauge;
struct metric_histogram;
struct metric_sketch;

struct metrics_config {
    uint32_t shards;     /* recording threads; 0 = METRICS_DEFAULT_SHARDS; max METRICS_MAX_SHARDS */
    uint32_t max_series; /* series ever created, all families; 0 = METRICS_DEFAULT_MAX_SERIES */
};

/* Returns 0 and sets *out, or SH_EINVAL (shards over the maximum) / SH_ENOMEM and sets *out
 * to NULL. */
SH_MUST_CHECK int metrics_new(const struct metrics_config *cfg, struct metrics **out);
/* Frees the registry, its families, series and shard memory; every handle dies with it.
 * NULL is a no-op. */
void metrics_free(struct metrics *m);
/* The shard count the registry was created with. Any thread. */
uint32_t metrics_shards(const struct metrics *m);

struct metric_family_config {
    const char *name; /* [a-zA-Z_][a-zA-Z0-9_]* (no ':'), <= METRICS_MAX_NAME_BYTES;
                         counters must end in "_total", others must not */
    const char *help; /* any text, <= METRICS_MAX_HELP_BYTES; escaped on output */
    enum metric_type type;
    const char *const *label_names; /* label_count names, [a-zA-Z_][a-zA-Z0-9_]*, not "__*",
                                       distinct, and not "le" for a histogram */
    size_t label_count;             /* <= METRICS_MAX_LABELS */
    const double *buckets;          /* histograms: strictly increasing finite upper bounds;
                                       NULL = metrics_latency_buckets_s; ignored otherwise */
    size_t bucket_count;            /* 1..METRICS_MAX_BUCKETS when buckets is set */
    bool is_internal; /* kept out of metrics_render (series read by shoal itself, such as the
                         per-edge counters of the metrics history); sketches always are */
};

/* Registers a family; strings and arrays are copied. Families render in registration order.
 * Returns 0 and sets *out (owned by the registry), or SH_EINVAL (a rule above is broken),
 * SH_EEXIST (the name is taken), SH_ENOMEM; then *out is NULL. Control call. */
SH_MUST_CHECK int metrics_family_add(struct metrics *m, const struct metric_family_config *cfg,
                                     struct metric_family **out);

/* Finds or creates the series of <fam> with these label values (one per label name, in the
 * order of the family's label_names; count must equal label_count, values may be empty and
 * are any valid UTF-8 up to METRICS_MAX_LABEL_VALUE_BYTES). A retired series is revived.
 * Returns 0 and sets *out, or SH_EINVAL (wrong type for the family, wrong count, invalid
 * UTF-8), SH_ETOOBIG (a value too long), SH_ELIMIT (cfg.max_series reached), SH_ENOMEM; then
 * *out is NULL. Control call. */
SH_MUST_CHECK int metric_counter_get(struct metric_family *fam, const struct slice *values,
                                     size_t count, struct metric_counter **out);
SH_MUST_CHECK int metric_gauge_get(struct metric_family *fam, const struct slice *values,
                                   size_t count, struct metric_gauge **out);
SH_MUST_CHECK int metric_histogram_get(struct metric_family *fam, const struct slice *values,
                                       size_t count, struct metric_histogram **out);
SH_MUST_CHECK int metric_sketch_get(struct metric_family *fam, const struct slice *values,
                                    size_t count, struct metric_sketch **out);

/* Hides the series from the exposition; the handle stays valid (see "Lifetime"). Idempotent;
 * NULL is a no-op. Control call. */
void metric_counter_retire(struct metric_counter *c);
void metric_gauge_retire(struct metric_gauge *g);
void metric_histogram_retire(struct metric_histogram *h);
void metric_sketch_retire(struct metric_sketch *k);

/* Hot path (the thread owning <shard>). A shard out of range is ignored (a programming error
 * that must not corrupt memory). */
void metric_counter_add(struct metric_counter *c, uint32_t shard, uint64_t n);
void metric_counter_inc(struct metric_counter *c, uint32_t shard);
/* Adds delta (may be negative) to the shard's part of the gauge: inc/dec pairs such as active
 * connections, each done on the worker that owns the connection. */
void metric_gauge_add(struct metric_gauge *g, uint32_t shard, int64_t delta);
/* Sets the gauge's base value (any thread; last writer wins). The rendered value is the base
 * plus the sum of every shard's adds, so use either set or add for one series, not both. */
void metric_gauge_set(struct metric_gauge *g, double value);
/* Counts <value> in the first bucket whose bound is >= value (binary search) and adds it to
 * the sum. NaN is ignored. O(log buckets), allocation-free. */
void metric_histogram_observe(struct metric_histogram *h, uint32_t shard, double value);

/* Reads, summed over shards (tests, dashboard, autoscaler). Concurrent recording may or may
 * not be included. Any thread, lock-free. */
uint64_t metric_counter_read(struct metric_counter *c);
double metric_gauge_read(struct metric_gauge *g);
/* cumulative[i] gets the count of observations <= bound i, for i < min(n, buckets + 1), the
 * last being +Inf (== *count). *sum and *count may be NULL. */
void metric_histogram_read(struct metric_histogram *h, uint64_t *cumulative, size_t n, double *sum,
                           uint64_t *count);

/* ==========================================================================================
 * Latency sketch (a METRIC_SKETCH series): quantiles with a bounded relative error.
 *
 * DDSketch's logarithmic mapping: bucket i >= 1 holds the values in
 * (METRIC_SKETCH_MIN_S * g^(i-1), METRIC_SKETCH_MIN_S * g^i] with g = (1 + a) / (1 - a),
 * a = METRIC_SKETCH_ALPHA; bucket 0 holds everything up to METRIC_SKETCH_MIN_S and the last
 * bucket everything above its lower bound (about 12 minutes). A bucket's representative value,
 * 2 g^i / (g + 1) * MIN, is within a of every value in it, so a quantile read from the counts is
 * within a (2%) of a value of the exact rank: tests/unit/telemetry/test_sketch.c measures it.
 *
 * Memory: METRIC_SKETCH_BUCKETS 8-byte cells per series per shard (4 KiB; with the gateway's
 * workers + 1 shards, 12 KiB a series on a two-core machine). Fixed, whatever the traffic.
 * Recording is one log() and a relaxed load and store into the recording thread's own shard
 * (the same rule as the histograms); reading sums the shards, so shards merge by addition, and
 * so do sketches of different series (a service's callers) and the difference of two reads of
 * one series is the sketch of what happened between them.
 * ========================================================================================== */
enum { METRIC_SKETCH_BUCKETS = 512 };
#define METRIC_SKETCH_ALPHA 0.02
#define METRIC_SKETCH_MIN_S 1e-6

/* Counts <value_s> (seconds; NaN and negatives are ignored) in its bucket. Hot path: the
 * thread owning <shard>; lock-free, allocation-free. */
void metric_sketch_observe(struct metric_sketch *k, uint32_t shard, double value_s);
/* counts[i] = the series' bucket i summed over the shards (METRIC_SKETCH_BUCKETS entries).
 * Any thread, lock-free. */
void metric_sketch_read(struct metric_sketch *k, uint64_t *counts);
/* Plain functions over count arrays of METRIC_SKETCH_BUCKETS entries. */
uint32_t metric_sketch_index(double value_s); /* the bucket of a value */
double metric_sketch_value(uint32_t index);   /* the bucket's representative value, seconds */
/* The q-quantile (0 <= q <= 1) of the counts, in seconds: the representative value of the
 * bucket holding the value of rank floor(q * (n - 1)) (0-based) of the n counted; NaN when n
 * is 0. *total, when not NULL, gets n. */
double metric_sketch_quantile(const uint64_t *counts, double q, uint64_t *total);
/* Bytes one sketch series takes in <m> (cells of every shard), for the docs and the tests. */
size_t metric_sketch_series_bytes(const struct metrics *m);

/* Appends the Prometheus text format 0.0.4 (Content-Type: METRICS_CONTENT_TYPE) of every
 * family with at least one live series: "# HELP", "# TYPE", then one line per series (label
 * values escaped), histograms as _bucket{le=...} (cumulative, with +Inf), _sum and _count.
 * Returns 0, or out's error (SH_ETOOBIG past out->max, SH_ENOMEM); what was appended before
 * the error stays in out. Control call. */
SH_MUST_CHECK int metrics_render(struct metrics *m, struct buf *out);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ==========================================================================================
 * Trace context (value types; no allocation; every function may run on any thread, and a
 * struct trace_rng belongs to one thread at a time).
 * ========================================================================================== */

enum {
    TRACE_ID_BYTES = 16,
    TRACE_SPAN_ID_BYTES = 8,
    TRACE_PARENT_LEN = 55, /* "00-<32 hex>-<16 hex>-<2 hex>" */
    TRACE_STATE_MAX_BYTES = 512,
    TRACE_STATE_MAX_MEMBERS = 32,
    TRACE_REQUEST_ID_LEN = 36, /* UUIDv4 text, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" */
};

enum trace_flags {
    TRACE_F_SAMPLED = 1u << 0,
};

/* A parsed or generated traceparent. span_id is the parent-id field: the caller's span on
 * input, our own span when we send it on. */
struct trace_context {
    uint8_t trace_id[TRACE_ID_BYTES];     /* never all zero when valid */
    uint8_t span_id[TRACE_SPAN_ID_BYTES]; /* never all zero when valid */
    uint8_t flags;                        /* enum trace_flags bits, as received */
    uint8_t version;                      /* as received; trace_context_format always sends 00 */
};

/* Parses a traceparent header value (SP/HTAB around it are ignored). Version 00 must be
 * exactly 55 characters; a higher version (01..fe) must be at least 55 characters, and if
 * longer, followed by '-' at position 55 (its extra fields are ignored). Hex must be lowercase;
 * all-zero ids and version ff are rejected. Returns 0 and fills *out, or SH_EPARSE (then *out
 * is zeroed and the caller must also ignore tracestate, per the spec). */
SH_MUST_CHECK int trace_context_parse(struct slice value, struct trace_context *out);

/* Writes "00-<trace>-<span>-<flags>" and a NUL: needs out_len >= TRACE_PARENT_LEN + 1.
 * Returns TRACE_PARENT_LEN, or 0 (and writes nothing) when out is too small. */
size_t trace_context_format(const struct trace_context *tc, char *out, size_t out_len);

/* Per-thread generator for ids: xoshiro256** seeded from getrandom(). Not cryptographic:
 * ids must be unique and unpredictable enough for tracing, never secrets. */
struct trace_rng {
    uint64_t s[4]; /* private */
};
/* Seeds from getrandom(); if the kernel cannot give entropy (ENOSYS, early boot), falls back
 * to the clocks, the thread id and addresses, so it never fails. */
void trace_rng_init(struct trace_rng *rng);
/* Seeds deterministically (tests). */
void trace_rng_seed(struct trace_rng *rng, uint64_t seed);
uint64_t trace_rng_next(struct trace_rng *rng);

/* Fresh random ids, never all zero. */
void trace_id_generate(struct trace_rng *rng, uint8_t out[TRACE_ID_BYTES]);
void trace_span_id_generate(struct trace_rng *rng, uint8_t out[TRACE_SPAN_ID_BYTES]);
/* A new root context: new trace id and span id, flags as given, version 00. */
void trace_context_new_root(struct trace_rng *rng, uint8_t flags, struct trace_context *out);
/* The context to send downstream for our span under <parent>: same trace id, new span id, only
 * the sampled flag kept (the spec makes us zero the flags we do not know), version 00. */
void trace_context_child(const struct trace_context *parent, struct trace_rng *rng,
                         struct trace_context *out);

/* Writes a random UUIDv4 string and a NUL (needs out_len >= TRACE_REQUEST_ID_LEN + 1) for
 * X-Request-Id. Returns TRACE_REQUEST_ID_LEN, or 0 (writes nothing) when out is too small. */
size_t trace_request_id(struct trace_rng *rng, char *out, size_t out_len);

/* Builds the tracestate to send from the received value <in> (several header fields already
 * joined with ','): validates every member (key: [a-z0-9][a-z0-9_*-/@]{0,255}; value: 1..256
 * printable ASCII without ',' and '=', not ending in a space), drops empty members and the
 * whitespace around members, and, when own_key is not empty, puts "own_key=own_value" first and
 * drops the received member with that key. The result is truncated to TRACE_STATE_MAX_MEMBERS
 * members and TRACE_STATE_MAX_BYTES bytes by removing whole members: those over 128 bytes
 * first, then from the right (the spec's order); our own member is never removed.
 * Writes the result and a NUL into out (needs TRACE_STATE_MAX_BYTES + 1 to never fail).
 * Returns 0 and sets *out_used (0 means: send no tracestate), SH_EPARSE when <in> is invalid
 * (a bad member or a duplicate key: drop the received tracestate and call again with an empty
 * <in>), SH_EINVAL when own_key/own_value is invalid, or SH_ETOOBIG when out is too small. */
SH_MUST_CHECK int trace_state_build(struct slice in, struct slice own_key, struct slice own_value,
                                    char *out, size_t out_len, size_t *out_used);

/* ==========================================================================================
 * Spans: a finished span (the Zipkin v2 model, which OTLP maps onto), and the queue that
 * carries the proxy workers' spans to the span store (src/observe) off the request path.
 *
 * A struct trace_span is a plain value whose slices point wherever its builder likes (a
 * request's arena); trace_queue_push copies it into one allocation, so the builder's memory may
 * go as soon as push returns.
 * Threads: push belongs to the worker owning <shard> (lock-free, single producer per shard);
 * drain belongs to one consumer thread; new/free to the owner, free after producers stopped.
 * ========================================================================================== */

enum trace_span_kind {
    TRACE_KIND_NONE = 0,
    TRACE_KIND_CLIENT, /* the caller's side of a hop (mesh out) */
    TRACE_KIND_SERVER, /* the receiver's side (gateway in, mesh in) */
    TRACE_KIND_PRODUCER,
    TRACE_KIND_CONSUMER,
};

enum {
    TRACE_SPAN_MAX_TAGS = 32,
    TRACE_SPAN_MAX_ANNOTATIONS = 16,
    TRACE_SPAN_MAX_BYTES = 64 * 1024, /* a pushed span's strings together; longer: refused */
};

struct trace_endpoint {
    struct slice service; /* Zipkin serviceName: "greeter", "gateway"; may be empty */
    struct slice ip;      /* "127.0.0.1" or "::1"; may be empty */
    uint16_t port;        /* 0 = unknown */
};

struct trace_tag {
    struct slice key, value;
};

struct trace_annotation {
    uint64_t timestamp_us; /* Unix microseconds */
    struct slice value;    /* "retry", "breaker open", "ejected 127.0.0.1:9001"... */
};

struct trace_span {
    uint8_t trace_id[TRACE_ID_BYTES]; /* 128-bit; a 64-bit Zipkin id has the high half zero */
    uint8_t span_id[TRACE_SPAN_ID_BYTES];
    uint8_t parent_id[TRACE_SPAN_ID_BYTES]; /* all zero: a root span */
    enum trace_span_kind kind;
    struct slice name;     /* "get /hello": Zipkin lower-cases span names */
    uint64_t timestamp_us; /* start, Unix microseconds */
    uint64_t duration_us;
    struct trace_endpoint local, remote;
    struct trace_tag tags[TRACE_SPAN_MAX_TAGS];
    size_t tag_count;
    struct trace_annotation annotations[TRACE_SPAN_MAX_ANNOTATIONS];
    size_t annotation_count;
    bool is_error; /* status >= 500, or a transport failure: always kept (tail rule) */
    bool debug;    /* Zipkin's debug flag: kept whatever the sampling */
    bool shared;   /* Zipkin's shared flag (a server span sharing the client's id) */
};

/* The queue (span.c): one single-producer ring of span pointers per shard (worker). */
struct trace_queue;
struct trace_queue_config {
    uint32_t shards;   /* producers; 1..METRICS_MAX_SHARDS */
    uint32_t capacity; /* spans per shard, rounded up to a power of two; 0 = 8192 */
};
SH_MUST_CHECK int trace_queue_new(const struct trace_queue_config *cfg, struct trace_queue **out);
/* Frees the queue and every span still in it. NULL is a no-op. */
void trace_queue_free(struct trace_queue *q);
/* Copies <s> into one allocation and enqueues it. 0, or SH_ELIMIT (the shard's ring is full:
 * the span is dropped and counted), SH_ETOOBIG (over TRACE_SPAN_MAX_BYTES), SH_ENOMEM. Never
 * blocks. */
SH_MUST_CHECK int trace_queue_push(struct trace_queue *q, uint32_t shard,
                                   const struct trace_span *s);
/* Hands at most <max> queued spans (0 = all there are now) to fn, oldest first per shard, and
 * frees each after fn returns (fn copies what it keeps). Returns how many. */
typedef void trace_span_fn(void *data, const struct trace_span *s);
size_t trace_queue_drain(struct trace_queue *q, size_t max, trace_span_fn *fn, void *data);
/* Spans dropped because a ring was full, since trace_queue_new. Any thread. */
uint64_t trace_queue_dropped(const struct trace_queue *q);

#endif
