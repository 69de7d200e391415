/* SPDX-License-Identifier: MIT */
/* logs_parse.c: one log line into its level, message, trace id and span id (obs_log_parse),
 * and a user's full-text query into a safe FTS5 expression (obs_log_fts_query). Plain
 * functions over bytes: no I/O, no state; any thread. */
#include "observe/observe.h"

#include "telemetry/telemetry.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------------------------ */
const char *obs_log_stream_name(enum obs_log_stream s)
{
    return s == OBS_STREAM_STDERR ? "stderr" : s == OBS_STREAM_ACCESS ? "access" : "stdout";
}

static const char *const level_names[] = {NULL, "trace", "debug", "info", "warn", "error", "fatal"};

const char *obs_log_level_name(enum obs_log_level l)
{
    return (unsigned)l < SH_ARRAY_LEN(level_names) ? level_names[l] : NULL;
}

static const struct {
    const char *word;
    enum obs_log_level level;
} level_words[] = {
    {"trace", OBS_LEVEL_TRACE},  {"debug", OBS_LEVEL_DEBUG},    {"dbug", OBS_LEVEL_DEBUG},
    {"info", OBS_LEVEL_INFO},    {"notice", OBS_LEVEL_INFO},    {"warn", OBS_LEVEL_WARN},
    {"warning", OBS_LEVEL_WARN}, {"error", OBS_LEVEL_ERROR},    {"err", OBS_LEVEL_ERROR},
    {"fatal", OBS_LEVEL_FATAL},  {"critical", OBS_LEVEL_FATAL}, {"crit", OBS_LEVEL_FATAL},
    {"panic", OBS_LEVEL_FATAL},  {"emerg", OBS_LEVEL_FATAL},    {"alert", OBS_LEVEL_FATAL},
};

enum obs_log_level obs_log_level_parse(struct slice s)
{
    uint64_t n;

    if (s.len == 0 || s.len > 8) return OBS_LEVEL_NONE;
    if (slice_to_u64(s, &n) == 0) { /* pino / bunyan: 10 trace, 20 debug ... 60 fatal */
        if (n < 10 || n > 60 || n % 10) return OBS_LEVEL_NONE;
        return (enum obs_log_level)(n / 10);
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(level_words); i++) {
        if (slice_eq_nocase(s, slice_from_cstr(level_words[i].word))) return level_words[i].level;
    }
    return OBS_LEVEL_NONE;
}

/* ------------------------------------------------------------------------------------------
 * Ids
 * ------------------------------------------------------------------------------------------ */
static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* n hex digits at p into out (lowercase, NUL-terminated); false if any is not hex or all are
 * zero. */
static bool hex_copy(const char *p, size_t n, char *out)
{
    bool nonzero = false;

    for (size_t i = 0; i < n; i++) {
        int v = hexval(p[i]);
        if (v < 0) return false;
        nonzero |= v != 0;
        out[i] = "0123456789abcdef"[v];
    }
    out[n] = '\0';
    return nonzero;
}

bool obs_log_trace_id_norm(struct slice s, char out[33])
{
    out[0] = '\0';
    if (s.len == 32) {
        if (hex_copy(s.ptr, 32, out)) return true;
    } else if (s.len == 16) {
        memset(out, '0', 16);
        if (hex_copy(s.ptr, 16, out + 16)) return true;
    }
    out[0] = '\0';
    return false;
}

static bool span_id_norm(struct slice s, char out[17])
{
    if (s.len == 16 && hex_copy(s.ptr, 16, out)) return true;
    out[0] = '\0';
    return false;
}

static void ids_from_traceparent(struct slice v, struct obs_log_fields *out)
{
    struct trace_context tc;

    if (trace_context_parse(v, &tc) != 0) return;
    if (!out->trace_id[0]) {
        for (size_t i = 0; i < TRACE_ID_BYTES; i++) {
            out->trace_id[2 * i] = "0123456789abcdef"[tc.trace_id[i] >> 4];
            out->trace_id[2 * i + 1] = "0123456789abcdef"[tc.trace_id[i] & 15];
        }
        out->trace_id[32] = '\0';
    }
    if (!out->span_id[0]) {
        for (size_t i = 0; i < TRACE_SPAN_ID_BYTES; i++) {
            out->span_id[2 * i] = "0123456789abcdef"[tc.span_id[i] >> 4];
            out->span_id[2 * i + 1] = "0123456789abcdef"[tc.span_id[i] & 15];
        }
        out->span_id[16] = '\0';
    }
}

/* ------------------------------------------------------------------------------------------
 * JSON lines
 * ------------------------------------------------------------------------------------------ */
/* The string at obj[key], or obj[outer][inner] for a dotted "outer.inner" also written nested
 * (ECS's {"log":{"level":...}}). */
static const json_t *jget(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    const char *dot = strchr(key, '.');
    char outer[16];

    if (v || !dot || (size_t)(dot - key) >= sizeof(outer)) return v;
    memcpy(outer, key, (size_t)(dot - key));
    outer[dot - key] = '\0';
    v = json_object_get(obj, outer);
    return json_is_object(v) ? json_object_get(v, dot + 1) : NULL;
}

static struct slice jstr(const json_t *v)
{
    if (!json_is_string(v)) return SLICE_NULL;
    return (struct slice){json_string_value(v), json_string_length(v)};
}

static const json_t *first_of(const json_t *obj, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *v = jget(obj, keys[i]);
        if (v && !json_is_null(v)) return v;
    }
    return NULL;
}

static enum obs_log_level json_level(const json_t *v)
{
    char num[24];

    if (json_is_string(v)) return obs_log_level_parse(jstr(v));
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return obs_log_level_parse(slice_from_cstr(num));
    }
    return OBS_LEVEL_NONE;
}

/* A message with control characters kept (the store and the API escape them). */
static void set_message(struct obs_log_fields *out, struct slice s)
{
    size_t n = SH_MIN(s.len, (size_t)OBS_LOG_LINE_MAX);

    memcpy(out->msg_buf, s.ptr, n);
    out->msg_buf[n] = '\0';
    out->message = (struct slice){out->msg_buf, n};
}

static void parse_json(const json_t *o, struct obs_log_fields *out)
{
    static const char *const level_keys[] = {"level", "lvl", "severity", "levelname", "log.level"};
    static const char *const msg_keys[] = {"msg", "message", "log"};
    static const char *const trace_keys[] = {"trace_id", "traceId", "traceid", "trace.id"};
    static const char *const span_keys[] = {"span_id", "spanId", "spanid", "span.id"};
    const json_t *v;

    out->level = json_level(first_of(o, level_keys, SH_ARRAY_LEN(level_keys)));
    for (size_t i = 0; i < SH_ARRAY_LEN(msg_keys); i++) {
        v = json_object_get(o, msg_keys[i]);
        if (json_is_string(v)) {
            set_message(out, jstr(v));
            break;
        }
    }
    v = first_of(o, trace_keys, SH_ARRAY_LEN(trace_keys));
    obs_log_trace_id_norm(jstr(v), out->trace_id);
    v = first_of(o, span_keys, SH_ARRAY_LEN(span_keys));
    span_id_norm(jstr(v), out->span_id);
    v = json_object_get(o, "traceparent");
    if (json_is_string(v)) ids_from_traceparent(jstr(v), out);
}

/* An access line of proxy/forward.c: a readable message, a level from the status. */
static void parse_access(const json_t *o, struct obs_log_fields *out)
{
    json_int_t status = json_integer_value(json_object_get(o, "status"));
    const json_t *ts = json_object_get(o, "ts");
    struct slice method = jstr(json_object_get(o, "method")),
                 target = jstr(json_object_get(o, "target")),
                 route = jstr(json_object_get(o, "route")),
                 cluster = jstr(json_object_get(o, "cluster"));
    int n;

    obs_log_trace_id_norm(jstr(json_object_get(o, "trace_id")), out->trace_id);
    span_id_norm(jstr(json_object_get(o, "span_id")), out->span_id);
    if (json_is_integer(ts) && json_integer_value(ts) > 0)
        out->ts_ms = (uint64_t)json_integer_value(ts);
    out->level = status >= 500 ? OBS_LEVEL_ERROR : status >= 400 ? OBS_LEVEL_WARN : OBS_LEVEL_INFO;
    /* jstr gives SLICE_NULL for a missing field: "%.*s" of length 0 reads nothing */
    n = snprintf(
        out->msg_buf, sizeof(out->msg_buf), "%.*s %.*s %lld %.3fms route=%.*s cluster=%.*s",
        (int)SH_MIN(method.len, 32), method.ptr ? method.ptr : "", (int)SH_MIN(target.len, 4096),
        target.ptr ? target.ptr : "", (long long)status,
        json_number_value(json_object_get(o, "duration_ms")), (int)SH_MIN(route.len, 256),
        route.ptr ? route.ptr : "", (int)SH_MIN(cluster.len, 256), cluster.ptr ? cluster.ptr : "");
    if (n < 0) n = 0;
    out->message = (struct slice){out->msg_buf, SH_MIN((size_t)n, sizeof(out->msg_buf) - 1)};
}

/* ------------------------------------------------------------------------------------------
 * Plain text
 * ------------------------------------------------------------------------------------------ */
static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

/* The level a word at s[i..] names, if the word is one (letters only, then a non-letter). */
static enum obs_log_level level_word_at(struct slice s, size_t i)
{
    size_t j = i;

    while (j < s.len && j - i <= 8 && is_alpha(s.ptr[j]))
        j++;
    if (j == i || j - i > 8 || (j < s.len && is_word(s.ptr[j]))) return OBS_LEVEL_NONE;
    return obs_log_level_parse((struct slice){s.ptr + i, j - i});
}

static size_t skip_space(struct slice s, size_t i)
{
    while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\t'))
        i++;
    return i;
}

/* A level word first ("ERROR x", "[warn] x", "<info> x"), or after one leading timestamp-like
 * token (starts with a digit), or logfmt's level=/lvl= anywhere at a word start. */
static enum obs_log_level plain_level(struct slice s)
{
    size_t i = skip_space(s, 0);
    enum obs_log_level l;

    for (int round = 0; round < 2 && i < s.len; round++) {
        size_t k = i + (s.ptr[i] == '[' || s.ptr[i] == '<');
        l = level_word_at(s, k);
        if (l != OBS_LEVEL_NONE) return l;
        if (s.ptr[i] < '0' || s.ptr[i] > '9') break;
        while (i < s.len && s.ptr[i] != ' ' && s.ptr[i] != '\t')
            i++;
        i = skip_space(s, i);
    }
    for (size_t k = 0; k + 4 < s.len; k++) {
        size_t klen = 0;
        if (k > 0 && is_word(s.ptr[k - 1])) continue;
        if (s.len - k > 6 && !memcmp(s.ptr + k, "level=", 6))
            klen = 6;
        else if (!memcmp(s.ptr + k, "lvl=", 4)) /* k + 4 < s.len */
            klen = 4;
        if (!klen) continue;
        k += klen;
        if (k < s.len && s.ptr[k] == '"') k++;
        return level_word_at(s, k);
    }
    return OBS_LEVEL_NONE;
}

/* A traceparent anywhere in the text: "vv-<32 hex>-<16 hex>-ff" not inside a longer word. */
static void plain_traceparent(struct slice s, struct obs_log_fields *out)
{
    for (size_t i = 0; i + TRACE_PARENT_LEN <= s.len; i++) {
        const char *p = s.ptr + i;
        if (p[2] != '-' || p[35] != '-' || p[52] != '-') continue;
        if (i > 0 && is_word(p[-1])) continue;
        if (i + TRACE_PARENT_LEN < s.len && is_word(p[TRACE_PARENT_LEN])) continue;
        ids_from_traceparent((struct slice){p, TRACE_PARENT_LEN}, out);
        if (out->trace_id[0]) return;
    }
}

/* key=<hex> or key:<hex> (optionally quoted, as in "trace_id": "..."), where key is
 * <name>_id, <name>Id, <name>.id or <name>id, at a word start; n hex digits that end there. */
static struct slice plain_id(struct slice s, const char *name, size_t min_len, size_t max_len)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i + nl + 3 < s.len; i++) {
        size_t k = i + nl, h;
        if (!slice_eq_nocase((struct slice){s.ptr + i, nl}, (struct slice){name, nl})) continue;
        if (i > 0 && (is_word(s.ptr[i - 1]) || s.ptr[i - 1] == '.')) continue;
        if (s.ptr[k] == '_' || s.ptr[k] == '.') k++;
        if (k + 2 > s.len || (s.ptr[k] != 'i' && s.ptr[k] != 'I') ||
            (s.ptr[k + 1] != 'd' && s.ptr[k + 1] != 'D'))
            continue;
        k += 2;
        if (k < s.len && s.ptr[k] == '"') k++;
        if (k >= s.len || (s.ptr[k] != '=' && s.ptr[k] != ':')) continue;
        k = skip_space(s, k + 1);
        if (k < s.len && s.ptr[k] == '"') k++;
        h = k;
        while (h < s.len && hexval(s.ptr[h]) >= 0)
            h++;
        if (h < s.len && is_word(s.ptr[h])) continue;
        if (h - k >= min_len && h - k <= max_len && (h - k == min_len || h - k == max_len))
            return (struct slice){s.ptr + k, h - k};
    }
    return SLICE_NULL;
}

/* ------------------------------------------------------------------------------------------
 * obs_log_parse
 * ------------------------------------------------------------------------------------------ */
void obs_log_parse(struct slice line, enum obs_log_stream stream, struct obs_log_fields *out)
{
    struct slice t;

    out->level = OBS_LEVEL_NONE;
    out->trace_id[0] = out->span_id[0] = '\0';
    out->ts_ms = 0;
    out->is_json = false;
    out->msg_buf[0] = '\0';
    if (line.len > OBS_LOG_LINE_MAX) line.len = OBS_LOG_LINE_MAX;
    out->message = line;
    t = slice_trim(line);
    if (t.len >= 2 && t.ptr[0] == '{' && t.ptr[t.len - 1] == '}') {
        json_t *o = json_loadb(t.ptr, t.len, JSON_REJECT_DUPLICATES, NULL);
        if (json_is_object(o)) {
            out->is_json = true;
            if (stream == OBS_STREAM_ACCESS)
                parse_access(o, out);
            else
                parse_json(o, out);
        }
        json_decref(o);
        if (out->is_json) return;
    }
    out->level = plain_level(line);
    plain_traceparent(line, out);
    if (!out->trace_id[0]) obs_log_trace_id_norm(plain_id(line, "trace", 16, 32), out->trace_id);
    if (!out->span_id[0]) span_id_norm(plain_id(line, "span", 16, 16), out->span_id);
}

/* ------------------------------------------------------------------------------------------
 * Full-text queries
 * ------------------------------------------------------------------------------------------ */
static bool has_word_char(struct slice s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x80 || is_word((char)c)) return true;
    }
    return false;
}

int obs_log_fts_query(struct slice q, struct buf *out, struct sh_diag *d)
{
    size_t i = 0, terms = 0;

    buf_reset(out);
    if (q.len > OBS_LOG_QUERY_MAX) {
        sh_diag_set(d, "q", "the query is longer than %d bytes", OBS_LOG_QUERY_MAX);
        return SH_ETOOBIG;
    }
    for (size_t k = 0; k < q.len; k++) {
        unsigned char c = (unsigned char)q.ptr[k];
        if (c < 0x20 || c == 0x7f) {
            sh_diag_set(d, "q", "control character 0x%02x at byte %zu", c, k);
            return SH_EPARSE;
        }
    }
    for (;;) {
        struct slice term;
        bool prefix = false, phrase;
        while (i < q.len && q.ptr[i] == ' ')
            i++;
        if (i == q.len) break;
        phrase = q.ptr[i] == '"';
        if (phrase) {
            size_t end = ++i;
            while (end < q.len && q.ptr[end] != '"')
                end++;
            if (end == q.len) {
                sh_diag_set(d, "q", "unbalanced '\"' at byte %zu", i - 1);
                return SH_EPARSE;
            }
            term = (struct slice){q.ptr + i, end - i};
            i = end + 1;
        } else {
            size_t end = i;
            while (end < q.len && q.ptr[end] != ' ' && q.ptr[end] != '"')
                end++;
            term = (struct slice){q.ptr + i, end - i};
            i = end;
            if (term.len > 1 && term.ptr[term.len - 1] == '*') {
                prefix = true;
                term.len--;
            }
        }
        if (!has_word_char(term)) {
            sh_diag_set(d, "q", "'%.*s' has no letter or digit to search for",
                        (int)SH_MIN(term.len, 64), term.ptr);
            return SH_EPARSE;
        }
        if (++terms > OBS_LOG_QUERY_TERMS) {
            sh_diag_set(d, "q", "more than %d terms", OBS_LOG_QUERY_TERMS);
            return SH_ETOOBIG;
        }
        if (out->len) buf_appendc(out, ' ');
        buf_appendc(out, '"');
        for (size_t k = 0; k < term.len; k++) {
            if (term.ptr[k] == '"') buf_appendc(out, '"'); /* FTS5 escapes " by doubling it */
            buf_appendc(out, term.ptr[k]);
        }
        buf_appendc(out, '"');
        if (prefix) buf_appendc(out, '*');
    }
    if (out->err) return out->err;
    if (terms == 0) {
        sh_diag_set(d, "q", "the query is empty");
        return SH_EINVAL;
    }
    return 0;
}
