/* SPDX-License-Identifier: MIT */
/* observe.h: what shoal keeps to look at a running system afterwards: the services' output and
 * the proxies' access logs in one searchable store (Logs). Each store is its own SQLite file in
 * the data directory, written off the request path in batches, without an fsync per write, and
 * bounded by size and age.
 * Prefixes: obs_, OBS_.
 * Threads: each section says. */
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

#endif
