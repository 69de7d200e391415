/* SPDX-License-Identifier: MIT */
/* test_vectors.c: runs every case of the .vec files in tests/vectors/http/ through the HTTP/1.1
 * parser.
 *
 * Each case is fed three ways: whole, one byte at a time and in 7-byte steps, always from one
 * contiguous input buffer (the zero-copy head contract). Every run is rendered to a canonical
 * text (verdict, then per message every head property, every field and the body); the three
 * renderings must be identical, and the keys the vector lists must match. The vector format is
 * documented at the top of tests/vectors/http/requests.vec. Failing cases print a readable
 * diff; the test fails at the end with the number of failing cases.
 * Thread: single-threaded test. */
#include "test_util.h"

#include "http/http.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VEC_DIR SHOAL_SOURCE_DIR "/tests/vectors/http"
#define MAX_GROUPS 16

/* One case of a vector file. Expected lines are canonical "key: value\n" text. */
struct vcase {
    char name[96];
    char where[160]; /* file:line of the "===" line */
    enum http_kind kind;
    enum http_method req_method; /* responses: the request they answer */
    bool is_eof;                 /* call http_parser_finish after the input */
    struct http_limits lim;
    struct buf input;       /* decoded bytes */
    struct buf expect_case; /* verdict, error, messages */
    struct buf expect_msg[MAX_GROUPS];
    int ngroups;
};

/* ------------------------------------------------------------------------------------------
 * Escapes: \r \n \t \\ \xNN and \{N:TEXT} (TEXT repeated N times, taken literally).
 * ------------------------------------------------------------------------------------------ */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s from *i into out, up to the end or (when in_repeat) an unescaped '}', which is
 * consumed. 0, or -1 with *i at the offending byte. */
static int unescape_at(struct slice s, size_t *i, struct buf *out, bool in_repeat)
{
    for (; *i < s.len; (*i)++) {
        char c = s.ptr[*i];
        if (in_repeat && c == '}') return 0;
        if (c != '\\') {
            (void)buf_appendc(out, c);
            continue;
        }
        if (*i + 1 >= s.len) return -1;
        c = s.ptr[++*i];
        if (c == 'r') {
            (void)buf_appendc(out, '\r');
        } else if (c == 'n') {
            (void)buf_appendc(out, '\n');
        } else if (c == 't') {
            (void)buf_appendc(out, '\t');
        } else if (c == '\\') {
            (void)buf_appendc(out, '\\');
        } else if (c == 'x') {
            if (*i + 2 >= s.len || hexval(s.ptr[*i + 1]) < 0 || hexval(s.ptr[*i + 2]) < 0)
                return -1;
            (void)buf_appendc(out, (char)(hexval(s.ptr[*i + 1]) * 16 + hexval(s.ptr[*i + 2])));
            *i += 2;
        } else if (c == '{') {
            size_t count = 0;
            struct buf text = BUF_INIT(0);
            (*i)++;
            while (*i < s.len && s.ptr[*i] >= '0' && s.ptr[*i] <= '9' && count < 1000000)
                count = count * 10 + (size_t)(s.ptr[(*i)++] - '0');
            if (*i >= s.len || s.ptr[*i] != ':') return -1;
            (*i)++;
            if (unescape_at(s, i, &text, true) != 0 || *i >= s.len) {
                buf_release(&text);
                return -1;
            }
            for (size_t k = 0; k < count; k++)
                (void)buf_appends(out, buf_slice(&text));
            buf_release(&text);
        } else {
            return -1;
        }
    }
    return in_repeat ? -1 : 0;
}

/* Decodes s into out; 0, or -1 with *bad set to the offending offset. */
static int unescape(struct slice s, struct buf *out, size_t *bad)
{
    size_t i = 0;

    if (unescape_at(s, &i, out, false) != 0) {
        *bad = i;
        return -1;
    }
    return out->err;
}

/* The canonical text of bytes: printable ASCII as is, backslash doubled, the rest escaped. */
static void escape(struct slice s, struct buf *out)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\\')
            (void)buf_append(out, "\\\\", 2);
        else if (c == '\r')
            (void)buf_append(out, "\\r", 2);
        else if (c == '\n')
            (void)buf_append(out, "\\n", 2);
        else if (c == '\t')
            (void)buf_append(out, "\\t", 2);
        else if (c < 0x20 || c >= 0x7f)
            (void)buf_appendf(out, "\\x%02x", c);
        else
            (void)buf_appendc(out, (char)c);
    }
}

static void put_kv(struct buf *out, const char *key, struct slice raw)
{
    (void)buf_appendf(out, "%s: ", key);
    escape(raw, out);
    (void)buf_appendc(out, '\n');
}

static void put_kvs(struct buf *out, const char *key, const char *value)
{
    put_kv(out, key, slice_from_cstr(value));
}

/* ------------------------------------------------------------------------------------------
 * Vector files
 * ------------------------------------------------------------------------------------------ */
static const char *const case_keys[] = {"verdict", "error", "messages"};
static const char *const msg_keys[] = {
    "method",  "target",          "form",           "version", "status",     "reason",
    "host",    "body_kind",       "content_length", "body",    "keep_alive", "conn_close",
    "upgrade", "expect_continue", "fields",         "field",   "done",
};

static bool in_list(struct slice key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (slice_eq(key, slice_from_cstr(list[i]))) return true;
    }
    return false;
}

static void vcase_release(struct vcase *vc)
{
    buf_release(&vc->input);
    buf_release(&vc->expect_case);
    for (int g = 0; g < MAX_GROUPS; g++)
        buf_release(&vc->expect_msg[g]);
}

static bool parse_u64(struct slice v, uint64_t *out)
{
    return slice_to_u64(slice_trim(v), out) == 0;
}

static bool parse_bool(struct slice v, bool *out)
{
    v = slice_trim(v);
    *out = slice_eq(v, SLICE("yes"));
    return *out || slice_eq(v, SLICE("no"));
}

/* A directive line before "--- input". Returns false when it is not understood. */
static bool set_directive(struct vcase *vc, struct slice key, struct slice v)
{
    uint64_t n = 0;
    static const struct {
        const char *name;
        size_t off;
    } u32_limits[] = {
        {"max_request_line", offsetof(struct http_limits, max_request_line)},
        {"max_field_line", offsetof(struct http_limits, max_field_line)},
        {"max_head", offsetof(struct http_limits, max_head)},
        {"max_fields", offsetof(struct http_limits, max_fields)},
        {"max_chunk_ext", offsetof(struct http_limits, max_chunk_ext)},
        {"max_method", offsetof(struct http_limits, max_method)},
    };

    v = slice_trim(v);
    if (slice_eq(key, SLICE("kind"))) {
        if (slice_eq(v, SLICE("request")))
            vc->kind = HTTP_REQUEST;
        else if (slice_eq(v, SLICE("response")))
            vc->kind = HTTP_RESPONSE;
        else
            return false;
        return true;
    }
    if (slice_eq(key, SLICE("method"))) {
        vc->req_method = http_method_from(v);
        return true;
    }
    if (slice_eq(key, SLICE("lenient_lf"))) return parse_bool(v, &vc->lim.lenient_lf);
    if (slice_eq(key, SLICE("eof"))) return parse_bool(v, &vc->is_eof);
    if (slice_eq(key, SLICE("llhttp"))) return true; /* read by llhttp_diff.js only */
    if (slice_eq(key, SLICE("max_body"))) return parse_u64(v, &vc->lim.max_body);
    for (size_t i = 0; i < SH_ARRAY_LEN(u32_limits); i++) {
        if (slice_eq(key, slice_from_cstr(u32_limits[i].name))) {
            if (!parse_u64(v, &n) || n > UINT32_MAX) return false;
            uint32_t n32 = (uint32_t)n;
            memcpy((char *)&vc->lim + u32_limits[i].off, &n32, sizeof(n32));
            return true;
        }
    }
    return false;
}

/* An expectation line. Values are canonicalised (unescaped, then escaped). */
static bool add_expect(struct vcase *vc, struct slice key, struct slice v)
{
    struct buf raw = BUF_INIT(0);
    size_t bad = 0;
    struct buf *dst;

    v = slice_trim(v);
    if (slice_eq(key, SLICE("message"))) {
        if (vc->ngroups == MAX_GROUPS) return false;
        vc->ngroups++;
        return true;
    }
    if (in_list(key, case_keys, SH_ARRAY_LEN(case_keys))) {
        dst = &vc->expect_case;
    } else if (in_list(key, msg_keys, SH_ARRAY_LEN(msg_keys))) {
        dst = &vc->expect_msg[vc->ngroups - 1];
    } else {
        return false;
    }
    if (unescape(v, &raw, &bad) != 0) {
        buf_release(&raw);
        return false;
    }
    (void)buf_appendf(dst, "%.*s: ", (int)key.len, key.ptr);
    escape(buf_slice(&raw), dst);
    (void)buf_appendc(dst, '\n');
    buf_release(&raw);
    return true;
}

enum section { SEC_NONE, SEC_DIRECTIVES, SEC_INPUT, SEC_EXPECT };

typedef int case_fn(struct vcase *vc, void *data);

/* The case ended: decode its input, run it, free it. Returns the number of format errors. */
static int finish_case(struct vcase *vc, enum section sec, struct buf *in_raw, case_fn *fn,
                       void *data)
{
    size_t bad = 0;
    int errors = 0;

    if (sec != SEC_EXPECT) {
        print_error("%s: case without --- expect\n", vc->where);
        errors++;
    } else if (unescape(buf_slice(in_raw), &vc->input, &bad) != 0) {
        print_error("%s: bad escape at input offset %zu\n", vc->where, bad);
        errors++;
    } else {
        errors += fn(vc, data);
    }
    vcase_release(vc);
    buf_reset(in_raw);
    return errors;
}

/* Parses one file and calls fn for each case. Returns the number of format errors. */
static int load_file(const char *path, const char *fname, case_fn *fn, void *data)
{
    FILE *f = fopen(path, "rb");
    struct buf text = BUF_INIT(0), in_raw = BUF_INIT(0);
    struct vcase vc;
    enum section sec = SEC_NONE;
    int errors = 0, lineno = 0;
    char chunk[4096];
    size_t n;

    if (!f) {
        print_error("%s: cannot open\n", path);
        return 1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        (void)buf_append(&text, chunk, n);
    fclose(f);
    memset(&vc, 0, sizeof(vc));

    struct slice rest = buf_slice(&text);
    while (rest.ptr) {
        struct slice line;
        rest = slice_split(rest, '\n', &line);
        lineno++;
        bool is_new = slice_starts_with(line, SLICE("=== "));
        if (is_new && sec != SEC_NONE) {
            errors += finish_case(&vc, sec, &in_raw, fn, data);
            sec = SEC_NONE;
        }
        if (is_new) {
            struct slice name = slice_trim((struct slice){line.ptr + 4, line.len - 4});
            if (slice_starts_with(name, SLICE("name:")))
                name = slice_trim((struct slice){name.ptr + 5, name.len - 5});
            memset(&vc, 0, sizeof(vc));
            snprintf(vc.name, sizeof(vc.name), "%.*s", (int)name.len, name.ptr);
            snprintf(vc.where, sizeof(vc.where), "%s:%d", fname, lineno);
            vc.lim = HTTP_LIMITS_DEFAULT;
            vc.ngroups = 1;
            sec = SEC_DIRECTIVES;
            continue;
        }
        if (sec == SEC_INPUT) {
            if (slice_eq(line, SLICE("--- expect")))
                sec = SEC_EXPECT;
            else
                (void)buf_appends(&in_raw, line);
            continue;
        }
        struct slice t = slice_trim(line);
        if (t.len == 0 || t.ptr[0] == '#') continue;
        if (sec == SEC_NONE) {
            print_error("%s:%d: text outside a case\n", fname, lineno);
            errors++;
            continue;
        }
        if (sec == SEC_DIRECTIVES && slice_eq(t, SLICE("--- input"))) {
            sec = SEC_INPUT;
            continue;
        }
        struct slice key;
        struct slice v = slice_split(t, ':', &key);
        key = slice_trim(key);
        bool ok = v.ptr != NULL;
        if (ok && sec == SEC_DIRECTIVES)
            ok = set_directive(&vc, key, v);
        else if (ok)
            ok = add_expect(&vc, key, v);
        if (!ok) {
            print_error("%s:%d: cannot read \"%.*s\"\n", fname, lineno, (int)t.len, t.ptr);
            errors++;
        }
    }
    if (sec != SEC_NONE) errors += finish_case(&vc, sec, &in_raw, fn, data);
    buf_release(&text);
    buf_release(&in_raw);
    return errors;
}

/* ------------------------------------------------------------------------------------------
 * Running a case
 * ------------------------------------------------------------------------------------------ */
static const char *const form_names[] = {"origin", "absolute", "authority", "asterisk"};
static const char *const body_names[] = {"none", "length", "chunked", "eof"};

static const char *yes_no(uint32_t flags, uint32_t f)
{
    return (flags & f) ? "yes" : "no";
}

/* Renders everything the head says (the body and "done" are added by the caller). */
static void render_head(const struct http_head *h, struct buf *out)
{
    char num[32];

    if (h->kind == HTTP_REQUEST) {
        put_kv(out, "method", http_head_method(h));
        put_kv(out, "target", http_head_target(h));
        put_kvs(out, "form", form_names[h->form]);
        put_kv(out, "host", http_head_host(h));
    } else {
        snprintf(num, sizeof(num), "%u", h->status);
        put_kvs(out, "status", num);
        put_kv(out, "reason", http_head_reason(h));
    }
    put_kvs(out, "version", h->version_minor ? "1.1" : "1.0");
    put_kvs(out, "body_kind", body_names[h->body]);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)h->content_length);
    put_kvs(out, "content_length", num);
    put_kvs(out, "keep_alive", yes_no(h->flags, HTTP_F_KEEP_ALIVE));
    put_kvs(out, "conn_close", yes_no(h->flags, HTTP_F_CONN_CLOSE));
    put_kvs(out, "upgrade", yes_no(h->flags, HTTP_F_UPGRADE));
    put_kvs(out, "expect_continue", yes_no(h->flags, HTTP_F_EXPECT_CONTINUE));
    snprintf(num, sizeof(num), "%u", h->nfields);
    put_kvs(out, "fields", num);
    for (uint32_t i = 0; i < h->nfields; i++) {
        struct slice name = http_field_name(h, i), value = http_field_value(h, i);
        (void)buf_append(out, "field: ", 7);
        escape(name, out);
        (void)buf_append(out, ": ", 2);
        escape(value, out);
        (void)buf_appendc(out, '\n');
    }
}

struct run {
    struct buf msg[MAX_GROUPS + 1]; /* rendered heads; the last slot collects overflow */
    struct buf body[MAX_GROUPS + 1];
    bool is_done[MAX_GROUPS + 1];
    int nmsgs, ndone;
    int rc, status; /* rc < 0: error */
    bool is_idle;
    char head_changed[200]; /* set when the head changed between HTTP_HEAD and HTTP_DONE */
};

static void run_release(struct run *r)
{
    for (int i = 0; i <= MAX_GROUPS; i++) {
        buf_release(&r->msg[i]);
        buf_release(&r->body[i]);
    }
}

/* Feeds the whole input (step 0) or steps of <step> bytes; renders the outcome into out. */
static void run_case(const struct vcase *vc, size_t step, struct buf *out)
{
    struct http_parser p;
    struct run r;
    const char *in = vc->input.data ? vc->input.data : "";
    size_t total = vc->input.len, off = 0, guard = 4 * total + 64;
    int cur = -1;
    uint16_t last_status = 0;

    memset(&r, 0, sizeof(r));
    if (http_parser_init(&p, vc->kind, &vc->lim) != 0) {
        (void)buf_appendf(out, "verdict: init failed\n");
        return;
    }
    if (vc->kind == HTTP_RESPONSE) http_parser_set_request_method(&p, vc->req_method);
    r.rc = 0;
    while (guard-- > 0) {
        size_t n = total - off, used = 0;
        if (step && n > step) n = step;
        int rc = http_parser_feed(&p, in + off, n, &used);
        if (rc == HTTP_AGAIN && used != n) {
            snprintf(r.head_changed, sizeof(r.head_changed), "AGAIN with used %zu != %zu", used, n);
        }
        off += used;
        if (rc < 0) {
            r.rc = rc;
            r.status = p.status;
            break;
        }
        if (rc == HTTP_HEAD) {
            cur = r.nmsgs < MAX_GROUPS ? r.nmsgs : MAX_GROUPS;
            r.nmsgs++;
            buf_reset(&r.msg[cur]);
            buf_reset(&r.body[cur]);
            render_head(&p.head, &r.msg[cur]);
            last_status = p.head.status;
        } else if (rc == HTTP_BODY) {
            if (cur >= 0) (void)buf_appends(&r.body[cur], p.body);
        } else if (rc == HTTP_DONE) {
            if (cur >= 0) {
                struct buf again = BUF_INIT(0);
                r.is_done[cur] = true;
                r.ndone++;
                /* http.h: the head stays valid until the next message's first byte */
                render_head(&p.head, &again);
                if (!slice_eq(buf_slice(&again), buf_slice(&r.msg[cur])))
                    snprintf(r.head_changed, sizeof(r.head_changed),
                             "message %d: head changed after HTTP_DONE", cur + 1);
                buf_release(&again);
                /* the next response answers the next request (after a 1xx, the same one) */
                if (vc->kind == HTTP_RESPONSE && last_status >= 200)
                    http_parser_set_request_method(&p, vc->req_method);
            }
        } else if (rc == HTTP_AGAIN && n == 0) {
            break; /* all input consumed and nothing pending */
        }
    }
    if (r.rc == 0 && vc->is_eof) {
        int rc = http_parser_finish(&p);
        if (rc < 0) {
            r.rc = rc;
            r.status = p.status;
        } else if (rc == HTTP_DONE && cur >= 0 && !r.is_done[cur]) {
            r.is_done[cur] = true;
            r.ndone++;
        }
    }
    r.is_idle = http_parser_is_idle(&p);

    if (r.rc < 0)
        (void)buf_appendf(out, "verdict: error %d\nerror: %s\n", r.status, sh_errname(r.rc));
    else if (!r.is_idle || (cur >= 0 && !r.is_done[cur]))
        (void)buf_appendf(out, "verdict: incomplete\n");
    else
        (void)buf_appendf(out, "verdict: ok\n");
    (void)buf_appendf(out, "messages: %d\n", r.ndone);
    if (r.head_changed[0]) (void)buf_appendf(out, "contract: %s\n", r.head_changed);
    for (int i = 0; i < r.nmsgs && i <= MAX_GROUPS; i++) {
        (void)buf_appendf(out, "message: %d\n", i + 1);
        (void)buf_appends(out, buf_slice(&r.msg[i]));
        put_kv(out, "body", buf_slice(&r.body[i]));
        put_kvs(out, "done", r.is_done[i] ? "yes" : "no");
    }
    run_release(&r);
    http_parser_release(&p);
}

/* ------------------------------------------------------------------------------------------
 * Comparing
 * ------------------------------------------------------------------------------------------ */
/* The block of lines of message <n> (1-based) in a rendering, or SLICE_NULL. */
static struct slice message_block(struct slice got, int n)
{
    char tag[32];
    int len = snprintf(tag, sizeof(tag), "message: %d\n", n);
    const char *start = NULL;

    for (size_t i = 0; i + (size_t)len <= got.len; i++) {
        if ((i == 0 || got.ptr[i - 1] == '\n') && memcmp(got.ptr + i, tag, (size_t)len) == 0) {
            start = got.ptr + i + len;
            break;
        }
    }
    if (!start) return SLICE_NULL;
    const char *end = got.ptr + got.len;
    for (const char *q = start; q + 9 <= end; q++) {
        if ((q == start || q[-1] == '\n') && memcmp(q, "message: ", 9) == 0) {
            end = q;
            break;
        }
    }
    return (struct slice){start, (size_t)(end - start)};
}

/* The value of the first line "key: ..." in block, or SLICE_NULL. */
static struct slice find_key(struct slice block, struct slice key)
{
    struct slice rest = block, line;

    while (rest.ptr) {
        rest = slice_split(rest, '\n', &line);
        if (line.len > key.len + 1 && memcmp(line.ptr, key.ptr, key.len) == 0 &&
            line.ptr[key.len] == ':')
            return slice_trim((struct slice){line.ptr + key.len + 1, line.len - key.len - 1});
    }
    return SLICE_NULL;
}

/* Appends the "field: " lines of block to out. */
static void field_lines(struct slice block, struct buf *out)
{
    struct slice rest = block, line;

    while (rest.ptr) {
        rest = slice_split(rest, '\n', &line);
        if (slice_starts_with(line, SLICE("field: "))) {
            (void)buf_appends(out, slice_trim(line));
            (void)buf_appendc(out, '\n');
        }
    }
}

/* Checks every expected line of <expect> against <block>; appends mismatches to diff. */
static void compare_block(struct slice expect, struct slice block, const char *what,
                          struct buf *diff)
{
    struct slice rest = expect, line;
    struct buf want_fields = BUF_INIT(0), got_fields = BUF_INIT(0);

    while (rest.ptr) {
        rest = slice_split(rest, '\n', &line);
        if (line.len == 0) continue;
        if (slice_starts_with(line, SLICE("field: "))) {
            (void)buf_appends(&want_fields, slice_trim(line));
            (void)buf_appendc(&want_fields, '\n');
            continue;
        }
        struct slice key;
        struct slice want = slice_trim(slice_split(line, ':', &key));
        struct slice got = block.ptr ? find_key(block, key) : SLICE_NULL;
        if (!got.ptr || !slice_eq(got, want))
            (void)buf_appendf(diff, "    %s %.*s: expected \"%.*s\", got \"%.*s\"\n", what,
                              (int)key.len, key.ptr, (int)want.len, want.ptr, (int)got.len,
                              got.ptr ? got.ptr : "(absent)");
    }
    if (want_fields.len) {
        if (block.ptr) field_lines(block, &got_fields);
        if (!slice_eq(buf_slice(&want_fields), buf_slice(&got_fields)))
            (void)buf_appendf(diff, "    %s fields: expected\n%s      got\n%s", what,
                              want_fields.data, got_fields.data ? got_fields.data : "");
    }
    buf_release(&want_fields);
    buf_release(&got_fields);
}

struct totals {
    int cases, failed, format_errors;
};

static int check_case(struct vcase *vc, void *data)
{
    struct totals *t = data;
    static const size_t steps[] = {0, 1, 7};
    struct buf got[3] = {BUF_INIT(0), BUF_INIT(0), BUF_INIT(0)};
    struct buf diff = BUF_INIT(0);

    t->cases++;
    for (size_t s = 0; s < SH_ARRAY_LEN(steps); s++)
        run_case(vc, steps[s], &got[s]);
    struct slice whole = buf_slice(&got[0]);

    if (vc->expect_case.len == 0) (void)buf_appendf(&diff, "    the case expects no verdict\n");
    compare_block(buf_slice(&vc->expect_case), whole, "case", &diff);
    for (int g = 0; g < vc->ngroups; g++) {
        char what[32];
        snprintf(what, sizeof(what), "message %d", g + 1);
        compare_block(buf_slice(&vc->expect_msg[g]), message_block(whole, g + 1), what, &diff);
    }
    if (find_key(whole, SLICE("contract")).ptr)
        (void)buf_appendf(&diff, "    contract broken: %.*s\n",
                          (int)find_key(whole, SLICE("contract")).len,
                          find_key(whole, SLICE("contract")).ptr);
    for (size_t s = 1; s < SH_ARRAY_LEN(steps); s++) {
        if (!slice_eq(buf_slice(&got[s]), whole))
            (void)buf_appendf(&diff,
                              "    fed in %zu-byte steps the result differs:\n%s"
                              "    --- whole:\n%s",
                              steps[s], got[s].data, whole.ptr);
    }
    if (diff.len) {
        t->failed++;
        print_error("FAIL %s (%s)\n%s    --- got (whole input):\n%s\n", vc->name, vc->where,
                    diff.data, whole.ptr);
    }
    for (size_t s = 0; s < SH_ARRAY_LEN(steps); s++)
        buf_release(&got[s]);
    buf_release(&diff);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_vectors__every_case_matches_at_every_split(void **state)
{
    struct totals t = {0};
    char *names[64];
    size_t nnames = 0;
    DIR *dir = opendir(VEC_DIR);
    struct dirent *e;

    (void)state;
    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL && nnames < SH_ARRAY_LEN(names)) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".vec") == 0)
            names[nnames++] = sh_strdup(e->d_name);
    }
    closedir(dir);
    qsort(names, nnames, sizeof(names[0]), cmp_names);
    for (size_t i = 0; i < nnames; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", VEC_DIR, names[i]);
        t.format_errors += load_file(path, names[i], check_case, &t);
        sh_free(names[i]);
    }
    print_message("http vectors: %d cases in %zu files, %d failed, %d format errors\n", t.cases,
                  nnames, t.failed, t.format_errors);
    assert_true(nnames > 0);
    assert_int_equal(t.format_errors, 0);
    if (t.failed) fail_msg("%d of %d vector cases failed", t.failed, t.cases);
    assert_true(t.cases >= 120);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_vectors__every_case_matches_at_every_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
