/* SPDX-License-Identifier: MIT */
/* test_buf.c: slices (comparison, trimming, splitting, number parsing) and capped buffers.
 * Every buffer operation is followed by check_sane(), which asserts the invariants core.h
 * promises (git's assert_sane_strbuf); the OOM torture test fails each allocation in turn. */
#include "test_util.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The invariants of struct buf (core.h, buf.c): len < cap and data[len] == '\0' when data is
 * set; data == NULL iff cap == 0 (then len == 0); len <= max when max is set. */
static void check_sane(const struct buf *b)
{
    if (b->data == NULL) {
        assert_int_equal(b->cap, 0);
        assert_int_equal(b->len, 0);
    } else {
        assert_true(b->cap > 0);
        assert_true(b->len < b->cap);
        assert_int_equal(b->data[b->len], '\0');
    }
    if (b->max) assert_true(b->len <= b->max);
}

/* ---- slices ---- */

static void test_slice__eq_compares_length_and_bytes(void **state)
{
    (void)state;
    assert_true(slice_eq(SLICE("abc"), SLICE("abc")));
    assert_false(slice_eq(SLICE("abc"), SLICE("abd")));
    assert_false(slice_eq(SLICE("abc"), SLICE("ab")));
    assert_false(slice_eq(SLICE("ABC"), SLICE("abc")));
    assert_true(slice_eq(SLICE(""), SLICE_NULL));
    assert_true(slice_eq(SLICE_NULL, SLICE_NULL));
    assert_true(slice_eq(slice_from_cstr("x\0y"), SLICE("x")));
    assert_false(slice_eq(SLICE("a\0b"), SLICE("a\0c")));
}

static void test_slice__eq_nocase_folds_ascii_only(void **state)
{
    (void)state;
    assert_true(slice_eq_nocase(SLICE("Content-Length"), SLICE("content-length")));
    assert_true(slice_eq_nocase(SLICE("AZaz09"), SLICE("azAZ09")));
    assert_false(slice_eq_nocase(SLICE("abc"), SLICE("abcd")));
    assert_false(slice_eq_nocase(SLICE("["), SLICE("{"))); /* 0x5b vs 0x7b: not letters */
    assert_false(slice_eq_nocase(SLICE("@"), SLICE("`")));
    assert_false(slice_eq_nocase(SLICE("\xc3\x89"), SLICE("\xc3\xa9"))); /* no UTF-8 folding */
    assert_true(slice_eq_nocase(SLICE_NULL, SLICE("")));
}

static void test_slice__from_cstr_null_is_empty(void **state)
{
    struct slice s = slice_from_cstr(NULL);

    (void)state;
    assert_null(s.ptr);
    assert_int_equal(s.len, 0);
    s = slice_from_cstr("hello");
    assert_int_equal(s.len, 5);
}

static void test_slice__trim_drops_spaces_and_tabs_only(void **state)
{
    struct slice t;

    (void)state;
    t = slice_trim(SLICE(" \t value \t "));
    assert_true(slice_eq(t, SLICE("value")));
    t = slice_trim(SLICE("a b"));
    assert_true(slice_eq(t, SLICE("a b")));
    t = slice_trim(SLICE("\r\nx\n"));
    assert_true(slice_eq(t, SLICE("\r\nx\n"))); /* CR/LF are not trimmed */
    t = slice_trim(SLICE("   "));
    assert_int_equal(t.len, 0);
    t = slice_trim(SLICE_NULL);
    assert_int_equal(t.len, 0);
}

static void test_slice__split_at_first_separator(void **state)
{
    struct slice head, rest;

    (void)state;
    rest = slice_split(SLICE("a=b=c"), '=', &head);
    assert_true(slice_eq(head, SLICE("a")));
    assert_true(slice_eq(rest, SLICE("b=c")));
    assert_non_null(rest.ptr);

    rest = slice_split(SLICE("key="), '=', &head);
    assert_true(slice_eq(head, SLICE("key")));
    assert_non_null(rest.ptr); /* present but empty differs from absent */
    assert_int_equal(rest.len, 0);

    rest = slice_split(SLICE("=v"), '=', &head);
    assert_int_equal(head.len, 0);
    assert_true(slice_eq(rest, SLICE("v")));
}

static void test_slice__split_without_separator_returns_null_rest(void **state)
{
    struct slice head, rest;

    (void)state;
    rest = slice_split(SLICE("abc"), '=', &head);
    assert_null(rest.ptr);
    assert_int_equal(rest.len, 0);
    assert_true(slice_eq(head, SLICE("abc")));

    rest = slice_split(SLICE_NULL, '=', &head);
    assert_null(rest.ptr);
    assert_int_equal(head.len, 0);
}

static void test_slice__starts_with(void **state)
{
    (void)state;
    assert_true(slice_starts_with(SLICE("/api/v1"), SLICE("/api")));
    assert_true(slice_starts_with(SLICE("/api"), SLICE("/api")));
    assert_true(slice_starts_with(SLICE("x"), SLICE("")));
    assert_true(slice_starts_with(SLICE_NULL, SLICE_NULL));
    assert_false(slice_starts_with(SLICE("/ap"), SLICE("/api")));
    assert_false(slice_starts_with(SLICE("/API"), SLICE("/api")));
}

static void test_slice__to_u64_parses_decimal(void **state)
{
    uint64_t v = 99;

    (void)state;
    assert_int_equal(slice_to_u64(SLICE("0"), &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(slice_to_u64(SLICE("42"), &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(slice_to_u64(SLICE("000123"), &v), 0);
    assert_int_equal(v, 123);
    assert_int_equal(slice_to_u64(SLICE("18446744073709551615"), &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(slice_to_u64(SLICE("018446744073709551615"), &v), 0);
    assert_true(v == UINT64_MAX);
}

static void test_slice__to_u64_rejects_overflow(void **state)
{
    uint64_t v = 99;

    (void)state;
    assert_int_equal(slice_to_u64(SLICE("18446744073709551616"), &v), SH_ETOOBIG);
    assert_int_equal(v, 0);
    assert_int_equal(slice_to_u64(SLICE("18446744073709551620"), &v), SH_ETOOBIG);
    assert_int_equal(slice_to_u64(SLICE("99999999999999999999"), &v), SH_ETOOBIG);
    assert_int_equal(slice_to_u64(SLICE("184467440737095516150"), &v), SH_ETOOBIG);
}

static void test_slice__to_u64_rejects_empty_signs_and_spaces(void **state)
{
    static const char *const bad[] = {
        "",     "+1",  "-1",  " 1",    "1 ",  "1\t",
        "0x10", "1e3", "1.0", "1,000", "abc", "\xd9\xa1" /* Arabic-Indic one */};
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(bad); i++) {
        v = 99;
        assert_int_equal(slice_to_u64(slice_from_cstr(bad[i]), &v), SH_EPARSE);
        assert_int_equal(v, 0);
    }
    v = 99;
    assert_int_equal(slice_to_u64(SLICE_NULL, &v), SH_EPARSE);
    assert_int_equal(v, 0);
    /* Bytes past len are not read: "12" of "123". */
    assert_int_equal(slice_to_u64((struct slice){.ptr = "123", .len = 2}, &v), 0);
    assert_int_equal(v, 12);
}

/* ---- buffers ---- */

static void test_buf__zeroed_is_valid_empty(void **state)
{
    struct buf b = {0};
    struct slice s;

    (void)state;
    check_sane(&b);
    s = buf_slice(&b);
    assert_int_equal(s.len, 0);
    buf_reset(&b);
    check_sane(&b);
    buf_release(&b);
    check_sane(&b);
    assert_int_equal(sh_alloc_live(), 0);
}

static void test_buf__append_grows_and_terminates(void **state)
{
    struct buf b = BUF_INIT(0);
    char big[1000];

    (void)state;
    memset(big, 'x', sizeof(big));
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    check_sane(&b);
    assert_string_equal(b.data, "abc");
    assert_int_equal(buf_appendc(&b, '-'), 0);
    check_sane(&b);
    assert_int_equal(buf_appends(&b, SLICE("de")), 0);
    check_sane(&b);
    assert_string_equal(b.data, "abc-de");
    assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
    check_sane(&b);
    assert_int_equal(b.len, 6 + sizeof(big));
    assert_memory_equal(b.data + 6, big, sizeof(big));
    assert_int_equal(buf_append(&b, NULL, 0), 0);
    check_sane(&b);
    assert_int_equal(b.len, 6 + sizeof(big));
    buf_release(&b);
    check_sane(&b);
}

static void test_buf__append_embedded_nul_counts_in_len(void **state)
{
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(buf_append(&b, "a\0b", 3), 0);
    check_sane(&b);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b\0", 4);
    buf_release(&b);
}

static void test_buf__append_past_max_keeps_content(void **state)
{
    struct buf b = BUF_INIT(8);

    (void)state;
    assert_int_equal(buf_append(&b, "1234", 4), 0);
    check_sane(&b);
    assert_int_equal(buf_append(&b, "56789", 5), SH_ETOOBIG);
    check_sane(&b);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "1234", 5); /* NUL included */
    buf_release(&b);
}

static void test_buf__append_exactly_to_max_succeeds(void **state)
{
    struct buf b = BUF_INIT(8);

    (void)state;
    assert_int_equal(buf_append(&b, "12345678", 8), 0);
    check_sane(&b);
    assert_int_equal(b.len, 8);
    assert_true(b.cap <= 9); /* never allocates past max + NUL */
    assert_int_equal(buf_appendc(&b, '9'), SH_ETOOBIG);
    check_sane(&b);
    assert_string_equal(b.data, "12345678");
    buf_release(&b);
}

static void test_buf__max_of_size_max_means_unlimited(void **state)
{
    struct buf b = BUF_INIT(SIZE_MAX);

    (void)state;
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    check_sane(&b);
    assert_string_equal(b.data, "hello");
    assert_int_equal(buf_reserve(&b, 200), 0);
    check_sane(&b);
    assert_true(b.cap >= 206);
    buf_release(&b);
}

static void test_buf__huge_append_is_too_big_not_overflow(void **state)
{
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(buf_append(&b, "ab", 2), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX - 1), SH_ETOOBIG);
    check_sane(&b);
    assert_string_equal(b.data, "ab");
    buf_release(&b);
}

static void test_buf__error_is_sticky_until_reset(void **state)
{
    struct buf b = BUF_INIT(4);

    (void)state;
    assert_int_equal(buf_append(&b, "12345", 5), SH_ETOOBIG);
    check_sane(&b);
    assert_int_equal(b.err, SH_ETOOBIG);
    /* A later append that would fit still fails: the renderer may check once at the end. */
    assert_int_equal(buf_append(&b, "1", 1), SH_ETOOBIG);
    assert_int_equal(buf_appendf(&b, "%d", 1), SH_ETOOBIG);
    assert_int_equal(buf_append_json_str(&b, SLICE("x")), SH_ETOOBIG);
    assert_int_equal(buf_reserve(&b, 1), SH_ETOOBIG);
    check_sane(&b);
    assert_int_equal(b.len, 0);
    buf_reset(&b);
    check_sane(&b);
    assert_int_equal(b.err, 0);
    assert_int_equal(buf_append(&b, "1234", 4), 0);
    check_sane(&b);
    assert_string_equal(b.data, "1234");
    buf_release(&b);
}

static void test_buf__appendf_formats_and_grows(void **state)
{
    struct buf b = BUF_INIT(0);
    char expect[600];

    (void)state;
    assert_int_equal(buf_appendf(&b, "%s=%d", "n", 42), 0);
    check_sane(&b);
    assert_string_equal(b.data, "n=42");
    assert_int_equal(buf_appendf(&b, "%s", ""), 0);
    check_sane(&b);
    assert_int_equal(b.len, 4);
    /* Past the initial capacity, in one call. */
    assert_int_equal(buf_appendf(&b, "%500s|", "r"), 0);
    check_sane(&b);
    snprintf(expect, sizeof(expect), "n=42%500s|", "r");
    assert_string_equal(b.data, expect);
    assert_int_equal(b.len, strlen(expect));
    buf_release(&b);
}

static void test_buf__appendf_past_max_keeps_content(void **state)
{
    struct buf b = BUF_INIT(10);

    (void)state;
    assert_int_equal(buf_appendf(&b, "%d", 12345), 0);
    assert_int_equal(buf_appendf(&b, "%d", 123456), SH_ETOOBIG);
    check_sane(&b);
    assert_string_equal(b.data, "12345");
    buf_release(&b);
}

static void test_buf__json_escapes_quotes_backslash_and_controls(void **state)
{
    struct buf b = BUF_INIT(0);
    static const char in[] = "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi\x08j\x0ck/l";

    (void)state;
    assert_int_equal(buf_append_json_str(&b, (struct slice){in, sizeof(in) - 1}), 0);
    check_sane(&b);
    assert_string_equal(b.data,
                        "a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh\\u007fi\\u0008j\\u000ck/l");
    buf_reset(&b);
    assert_int_equal(buf_append_json_str(&b, (struct slice){"\0", 1}), 0);
    check_sane(&b);
    assert_string_equal(b.data, "\\u0000");
    buf_release(&b);
}

static void test_buf__json_passes_utf8_through(void **state)
{
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(buf_append_json_str(&b, SLICE("caf\xc3\xa9 \xe2\x82\xac")), 0);
    check_sane(&b);
    assert_string_equal(b.data, "caf\xc3\xa9 \xe2\x82\xac");
    assert_int_equal(buf_append_json_str(&b, SLICE_NULL), 0);
    check_sane(&b);
    buf_release(&b);
}

static void test_buf__json_past_max_keeps_content(void **state)
{
    struct buf b = BUF_INIT(12);

    (void)state;
    assert_int_equal(buf_append(&b, "ok:", 3), 0);
    /* The escaped form needs 11 bytes and only 9 are left: none of it may be appended. */
    assert_int_equal(buf_append_json_str(&b, SLICE("ab\"c\"d\"e")), SH_ETOOBIG);
    check_sane(&b);
    assert_string_equal(b.data, "ok:");
    assert_int_equal(b.len, 3);
    buf_release(&b);
}

static void test_buf__consume_moves_rest_to_front(void **state)
{
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(buf_append(&b, "hello world", 11), 0);
    buf_consume(&b, 0);
    check_sane(&b);
    assert_string_equal(b.data, "hello world");
    buf_consume(&b, 6);
    check_sane(&b);
    assert_string_equal(b.data, "world");
    buf_consume(&b, 5);
    check_sane(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_consume(&b, 0);
    check_sane(&b);
    buf_release(&b);

    b = (struct buf){0};
    buf_consume(&b, 0); /* zeroed buffer */
    check_sane(&b);
}

static void test_buf__detach_hands_over_and_resets(void **state)
{
    struct buf b = BUF_INIT(100);
    size_t len = 99;
    char *p;

    (void)state;
    assert_int_equal(buf_append(&b, "xyz", 3), 0);
    p = buf_detach(&b, &len);
    check_sane(&b);
    assert_non_null(p);
    assert_int_equal(len, 3);
    assert_string_equal(p, "xyz");
    assert_null(b.data);
    assert_int_equal(b.max, 100); /* the cap stays */
    assert_int_equal(b.err, 0);
    sh_free(p);

    /* An empty buffer detaches an empty string the caller frees alike. */
    p = buf_detach(&b, &len);
    check_sane(&b);
    assert_non_null(p);
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    sh_free(p);

    p = buf_detach(&b, NULL);
    assert_non_null(p);
    sh_free(p);
    assert_int_equal(buf_append(&b, "again", 5), 0);
    check_sane(&b);
    buf_release(&b);
}

static void test_buf__reset_keeps_capacity(void **state)
{
    struct buf b = BUF_INIT(0);
    size_t cap;
    char *data;
    long live;

    (void)state;
    assert_int_equal(buf_append(&b, "some bytes", 10), 0);
    cap = b.cap;
    data = b.data;
    live = sh_alloc_live();
    buf_reset(&b);
    check_sane(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, data);
    assert_string_equal(b.data, "");
    assert_int_equal(sh_alloc_live(), live);
    buf_release(&b);
}

static void test_buf__release_is_idempotent(void **state)
{
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(buf_append(&b, "x", 1), 0);
    buf_release(&b);
    check_sane(&b);
    buf_release(&b);
    check_sane(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    /* Still usable. */
    assert_int_equal(buf_append(&b, "y", 1), 0);
    buf_release(&b);
}

static void test_buf__reserve_does_not_change_len(void **state)
{
    struct buf b = BUF_INIT(0);

    (void)state;
    assert_int_equal(buf_reserve(&b, 0), 0);
    check_sane(&b);
    assert_int_equal(buf_append(&b, "ab", 2), 0);
    assert_int_equal(buf_reserve(&b, 1000), 0);
    check_sane(&b);
    assert_int_equal(b.len, 2);
    assert_true(b.cap >= 1003);
    assert_string_equal(b.data, "ab");
    buf_release(&b);
}

/* ---- OOM torture ---- */

/* A renderer: many appends of every kind, checked once at the end (sticky error). */
static int render(struct buf *b)
{
    int rc = 0;

    for (int i = 0; i < 40; i++) {
        rc = buf_appendf(b, "line %d: ", i);
        check_sane(b);
        if (rc == 0)
            rc = buf_append_json_str(b, SLICE("quote \" and \n newline, and some padding"));
        check_sane(b);
        if (rc == 0) rc = buf_appendc(b, '\n');
        check_sane(b);
        if (rc) break;
    }
    if (rc == 0) rc = buf_reserve(b, 100000);
    check_sane(b);
    if (rc == 0) rc = buf_appends(b, SLICE("end"));
    check_sane(b);
    return rc ? rc : b->err;
}

static void test_buf__oom_torture_fails_cleanly(void **state)
{
    struct buf b = BUF_INIT(0);
    struct buf ref = BUF_INIT(0);
    long total, live;

    (void)state;
    sh_alloc_fail_after(0);
    assert_int_equal(render(&ref), 0);
    total = sh_alloc_count();
    live = sh_alloc_live();
    assert_true(total > 1);

    for (long n = 1; n <= total; n++) {
        sh_alloc_fail_after(n);
        b = BUF_INIT(0);
        assert_int_equal(render(&b), SH_ENOMEM);
        check_sane(&b);
        assert_int_equal(b.err, SH_ENOMEM);
        /* Whatever was rendered before the failure is intact. */
        assert_true(b.len <= ref.len);
        if (b.len) assert_memory_equal(b.data, ref.data, b.len);
        buf_release(&b);
        sh_alloc_fail_after(0);
        assert_int_equal(sh_alloc_live(), live); /* only ref's block */
    }
    /* With one allocation more than needed, everything succeeds again. */
    sh_alloc_fail_after(total + 1);
    b = BUF_INIT(0);
    assert_int_equal(render(&b), 0);
    assert_int_equal(b.len, ref.len);
    assert_memory_equal(b.data, ref.data, ref.len);
    buf_release(&b);
    buf_release(&ref);
}

static void test_buf__detach_empty_under_oom_returns_null(void **state)
{
    struct buf b = BUF_INIT(0);
    size_t len = 7;

    (void)state;
    sh_alloc_fail_after(1);
    assert_null(buf_detach(&b, &len));
    assert_int_equal(len, 0);
    check_sane(&b);
    sh_alloc_fail_after(0);
}

/* ---- text for a terminal (buf_append_term_str) ---- */

static void term(const char *in, size_t len, size_t max_chars, unsigned flags, const char *want)
{
    struct buf b = BUF_INIT(0);

    assert_int_equal(buf_append_term_str(&b, (struct slice){in, len}, max_chars, flags), 0);
    check_sane(&b);
    assert_string_equal(b.data ? b.data : "", want);
    buf_release(&b);
}
#define TERM(lit, max, flags, want) term(lit, sizeof(lit) - 1, max, flags, want)

static void test_buf__term_escapes_c0_del_and_c1_controls(void **state)
{
    (void)state;
    TERM("plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9f", 0, 0,
         "plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x9f");
    TERM("\x1b[2Jcleared", 0, 0, "\\u001b[2Jcleared"); /* ESC: the screen stays */
    TERM("a\rb\nc\bd\x07"
         "e\x7f",
         0, 0, "a\\u000db\\u000ac\\u0008d\\u0007e\\u007f");
    TERM("nul\0here", 0, 0, "nul\\u0000here");
    TERM("csi \xc2\x9b"
         "2J, \xc2\x80, \xc2\x9f, \xc2\xa0",
         0, 0, /* U+009B is CSI */
         "csi \\u009b2J, \\u0080, \\u009f, \xc2\xa0");
    TERM("a\tb", 0, 0, "a\\u0009b");
    TERM("a\tb", 0, SH_TERM_KEEP_TAB, "a\tb");
    TERM("back\\slash", 0, 0, "back\\slash"); /* not escaped (documented) */
}

static void test_buf__term_escapes_bytes_that_are_not_utf8(void **state)
{
    (void)state;
    TERM("raw \x9b csi", 0, 0, "raw \\x9b csi"); /* a lone C1 byte */
    TERM("\xff\xfe", 0, 0, "\\xff\\xfe");
    TERM("\xc0\xaf", 0, 0, "\\xc0\\xaf");                   /* overlong '/' */
    TERM("\xed\xa0\x80", 0, 0, "\\xed\\xa0\\x80");          /* a surrogate */
    TERM("\xf4\x90\x80\x80", 0, 0, "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
    TERM("cut \xe2\x82", 0, 0, "cut \\xe2\\x82");           /* cut short at the end */
    TERM("\xe2\x82"
         "A",
         0, 0, "\\xe2\\x82A");
}

static void test_buf__term_cuts_between_characters_only(void **state)
{
    (void)state;
    TERM("abcdef", 4, 0, "abcd");
    /* "é" is 2 bytes, one character: 3 characters fit, never half of one */
    TERM("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3, 0, "\xc3\xa9\xc3\xa9\xc3\xa9");
    TERM("ab\xf0\x9f\x90\x9f"
         "cd",
         3, 0, "ab\xf0\x9f\x90\x9f");
    /* an escape is written whole or not at all */
    TERM("ab\x1b"
         "cd",
         7, 0, "ab");
    TERM("ab\x1b"
         "cd",
         8, 0, "ab\\u001b");
    TERM("ab\x9b"
         "cd",
         5, 0, "ab");
    TERM("ab\x9b"
         "cd",
         6, 0, "ab\\x9b");
    TERM("", 5, 0, "");
}

static void test_buf__term_past_max_keeps_content(void **state)
{
    struct buf b = BUF_INIT(8);
    (void)state;

    assert_int_equal(buf_append(&b, "12", 2), 0);
    assert_int_equal(buf_append_term_str(&b,
                                         SLICE("a\x1b"
                                               "b"),
                                         0, 0),
                     SH_ETOOBIG);
    check_sane(&b);
    assert_string_equal(b.data, "12");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_slice__eq_compares_length_and_bytes),
        SH_TEST(test_slice__eq_nocase_folds_ascii_only),
        SH_TEST(test_slice__from_cstr_null_is_empty),
        SH_TEST(test_slice__trim_drops_spaces_and_tabs_only),
        SH_TEST(test_slice__split_at_first_separator),
        SH_TEST(test_slice__split_without_separator_returns_null_rest),
        SH_TEST(test_slice__starts_with),
        SH_TEST(test_slice__to_u64_parses_decimal),
        SH_TEST(test_slice__to_u64_rejects_overflow),
        SH_TEST(test_slice__to_u64_rejects_empty_signs_and_spaces),
        SH_TEST(test_buf__zeroed_is_valid_empty),
        SH_TEST(test_buf__append_grows_and_terminates),
        SH_TEST(test_buf__append_embedded_nul_counts_in_len),
        SH_TEST(test_buf__append_past_max_keeps_content),
        SH_TEST(test_buf__append_exactly_to_max_succeeds),
        SH_TEST(test_buf__max_of_size_max_means_unlimited),
        SH_TEST(test_buf__huge_append_is_too_big_not_overflow),
        SH_TEST(test_buf__error_is_sticky_until_reset),
        SH_TEST(test_buf__appendf_formats_and_grows),
        SH_TEST(test_buf__appendf_past_max_keeps_content),
        SH_TEST(test_buf__json_escapes_quotes_backslash_and_controls),
        SH_TEST(test_buf__json_passes_utf8_through),
        SH_TEST(test_buf__json_past_max_keeps_content),
        SH_TEST(test_buf__consume_moves_rest_to_front),
        SH_TEST(test_buf__detach_hands_over_and_resets),
        SH_TEST(test_buf__reset_keeps_capacity),
        SH_TEST(test_buf__release_is_idempotent),
        SH_TEST(test_buf__reserve_does_not_change_len),
        SH_TEST(test_buf__oom_torture_fails_cleanly),
        SH_TEST(test_buf__detach_empty_under_oom_returns_null),
        SH_TEST(test_buf__term_escapes_c0_del_and_c1_controls),
        SH_TEST(test_buf__term_escapes_bytes_that_are_not_utf8),
        SH_TEST(test_buf__term_cuts_between_characters_only),
        SH_TEST(test_buf__term_past_max_keeps_content),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
