/* SPDX-License-Identifier: MIT */
/* buf.c: slices and capped growable buffers.
 * Invariants (struct buf): len <= cap; data == NULL iff cap == 0; data[len] == '\0' when
 * data != NULL; len <= max when max != 0; once err != 0 appends do nothing until buf_reset. */
#include "core/core.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

struct slice slice_from_cstr(const char *s)
{
    return (struct slice){.ptr = s, .len = s ? strlen(s) : 0};
}

bool slice_eq(struct slice a, struct slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

bool slice_eq_nocase(struct slice a, struct slice b)
{
    if (a.len != b.len) return false;
    for (size_t i = 0; i < a.len; i++) {
        if (lower(a.ptr[i]) != lower(b.ptr[i])) return false;
    }
    return true;
}

bool slice_starts_with(struct slice s, struct slice prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

struct slice slice_trim(struct slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

struct slice slice_split(struct slice s, char sep, struct slice *head)
{
    const char *p = s.len ? memchr(s.ptr, sep, s.len) : NULL;

    if (!p) {
        *head = s;
        return SLICE_NULL;
    }
    *head = (struct slice){.ptr = s.ptr, .len = (size_t)(p - s.ptr)};
    return (struct slice){.ptr = p + 1, .len = s.len - head->len - 1};
}

int slice_to_u64(struct slice s, uint64_t *out)
{
    uint64_t v = 0;

    *out = 0;
    if (s.len == 0) return SH_EPARSE;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned)(unsigned char)s.ptr[i] - '0';
        if (d > 9) return SH_EPARSE;
        if (v > (UINT64_MAX - d) / 10) return SH_ETOOBIG;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static void assert_sane(const struct buf *b)
{
    assert(b->len <= b->cap || (b->cap == 0 && b->len == 0));
    assert((b->data == NULL) == (b->cap == 0));
    assert(b->max == 0 || b->len <= b->max);
    (void)b;
}

int buf_reserve(struct buf *b, size_t n)
{
    size_t need, cap;
    char *p;

    assert_sane(b);
    if (b->err) return b->err;
    if (n > SIZE_MAX - b->len - 1 || (b->max && b->len + n > b->max)) return b->err = SH_ETOOBIG;
    need = b->len + n + 1; /* room for the NUL */
    if (need <= b->cap) return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    /* Never allocate past max + NUL. Written as cap - 1 > max because max + 1 wraps to 0 when
     * max == SIZE_MAX (test_buf__max_of_size_max_means_unlimited). */
    if (b->max && cap - 1 > b->max) cap = b->max + 1;
    p = sh_realloc(b->data, cap);
    if (!p) return b->err = SH_ENOMEM;
    /* A first allocation is uninitialised: keep data[len] == '\0' even when nothing is
     * appended (test_buf__reserve_does_not_change_len). */
    p[b->len] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf__append_slow(struct buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_appends(struct buf *b, struct slice s)
{
    return buf_append(b, s.ptr, s.len);
}

int buf_appendc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;

    assert_sane(b);
    if (b->err) return b->err;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return b->err = SH_EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if (rc) return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_append_u64(struct buf *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_append(b, tmp + sizeof(tmp) - n, n);
}

int buf_append_hex(struct buf *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    return buf_append(b, tmp + sizeof(tmp) - n, n);
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

size_t sh_utf8_len(struct slice s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    unsigned char c, lo, hi;
    size_t len;

    if (s.len == 0) return 0;
    c = p[0];
    len = c < 0x80                 ? 1
          : c >= 0xC2 && c <= 0xDF ? 2
          : c >= 0xE0 && c <= 0xEF ? 3
          : c >= 0xF0 && c <= 0xF4 ? 4
                                   : 0;
    if (len == 0 || len > s.len) return 0;
    /* The second byte's range rules out overlongs (E0, F0), surrogates (ED) and > U+10FFFF. */
    lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (len > 1 && (p[1] < lo || p[1] > hi)) return 0;
    for (size_t k = 2; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) return 0;
    }
    return len;
}

int buf_append_term_str(struct buf *b, struct slice s, size_t max_chars, unsigned flags)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, start = 0, chars = 0, len0 = b->len;
    int rc;

    if (max_chars == 0) max_chars = SIZE_MAX;
    while (i < s.len) {
        size_t n = sh_utf8_len((struct slice){s.ptr + i, s.len - i});
        unsigned char c = (unsigned char)s.ptr[i];
        char esc[6];
        size_t elen = 0;

        bool is_ctl =
            n == 1 && (c < 0x20 || c == 0x7f) && !(c == '\t' && (flags & SH_TERM_KEEP_TAB));
        bool is_c1 = n == 2 && c == 0xC2 && (unsigned char)s.ptr[i + 1] < 0xA0;

        if (n == 0) { /* not UTF-8: the byte as \xHH */
            memcpy(esc, "\\x", 2);
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            elen = 4;
            n = 1;
        } else if (is_ctl || is_c1) { /* the code point as \u00XX */
            unsigned cp = is_c1 ? (unsigned char)s.ptr[i + 1] : c;
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[cp >> 4];
            esc[5] = hex[cp & 15];
            elen = 6;
        }
        if (chars + (elen ? elen : 1) > max_chars) break;
        chars += elen ? elen : 1;
        if (elen) {
            buf_append(b, s.ptr + start, i - start);
            buf_append(b, esc, elen);
            start = i + n;
        }
        i += n;
    }
    rc = buf_append(b, s.ptr + start, i - start);
    if (rc && b->data) { /* as every append: a failure leaves the contents as they were */
        b->len = len0;
        b->data[len0] = '\0';
    }
    return rc;
}

int buf_append_json_str(struct buf *b, struct slice s)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0, len0 = b->len;
    int rc;

    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
        buf_append(b, s.ptr + start, i - start);
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        buf_append(b, esc, elen);
        start = i + 1;
    }
    rc = buf_append(b, s.ptr + start, s.len - start);
    /* The pieces above may have failed part-way: the error stuck, so rc reports it. Undo the
     * partial string so that, like every append, a failure leaves the contents untouched
     * (test_buf__json_past_max_keeps_content). */
    if (rc && b->data) {
        b->len = len0;
        b->data[len0] = '\0';
    }
    return rc;
}

void buf_consume(struct buf *b, size_t n)
{
    assert(n <= b->len);
    if (n == 0) return;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

struct slice buf_slice(const struct buf *b)
{
    return (struct slice){.ptr = b->data, .len = b->len};
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p = b->data;

    if (len) *len = b->len;
    if (!p) p = sh_calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
    return p;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = 0;
    if (b->data) b->data[0] = '\0';
}

void buf_release(struct buf *b)
{
    sh_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}
