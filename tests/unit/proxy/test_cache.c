/* SPDX-License-Identifier: MIT */
/* test_cache.c: the stale fallback cache (src/proxy/cache.c) without sockets: heads are parsed
 * from bytes, captures built as forward.c builds them. Whose copy a request may get (method,
 * Host, target; credentials only with per_credential), which answers are never kept, LRU
 * eviction within max_total_bytes, expiry, replacement, and a hit that allocates nothing. */
#include "test_util.h"

#include "http/http.h"
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"

#include <stdio.h>
#include <string.h>

/* A parsed head kept with its parser (the head points into text, which must stay). */
struct parsed {
    struct http_parser p;
    char text[1024];
};

static const struct http_head *parse(struct parsed *ps, enum http_kind kind, const char *text)
{
    size_t used = 0;

    snprintf(ps->text, sizeof(ps->text), "%s", text);
    assert_int_equal(http_parser_init(&ps->p, kind, NULL), 0);
    if (kind == HTTP_RESPONSE) http_parser_set_request_method(&ps->p, HTTP_M_GET);
    assert_int_equal(http_parser_feed(&ps->p, ps->text, strlen(ps->text), &used), HTTP_HEAD);
    return &ps->p.head;
}

static const struct proxy_fallback FB = {
    .enabled = true, .max_entry_bytes = 1024, .max_total_bytes = 1 << 20, .max_age_ms = 60000};

/* Stores <body> as the answer to <req_text> (a 200 with Content-Length) at now. */
static void store(struct gw_cache *c, const struct proxy_fallback *fb, const char *req_text,
                  const char *body, uint64_t now)
{
    struct parsed rq, rs;
    char resp[256];
    struct buf cap = {0};

    snprintf(resp, sizeof(resp),
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    assert_true(proxy__cache_capture_begin(&cap, fb, parse(&rq, HTTP_REQUEST, req_text),
                                           parse(&rs, HTTP_RESPONSE, resp)));
    assert_int_equal(buf_append(&cap, body, strlen(body)), 0);
    proxy__cache_store(c, fb, &cap, now);
    assert_null(cap.data);
    http_parser_release(&rq.p);
    http_parser_release(&rs.p);
}

/* The body served for <req_text> at now, or NULL. */
static const char *find(struct gw_cache *c, const struct proxy_fallback *fb, const char *req_text,
                        uint64_t now, char *out, size_t out_len)
{
    struct parsed rq;
    const struct gw_cache_entry *e;

    e = proxy__cache_find(c, fb, parse(&rq, HTTP_REQUEST, req_text), now);
    http_parser_release(&rq.p);
    if (!e) return NULL;
    snprintf(out, out_len, "%.*s", (int)e->body_len, proxy__cache_entry_body(e));
    assert_string_equal(proxy__cache_entry_ctype(e), "text/plain");
    assert_int_equal(e->status, 200);
    return out;
}

#define GET(target, host, extra) "GET " target " HTTP/1.1\r\nHost: " host "\r\n" extra "\r\n"

static void test_cache__key_is_method_host_and_target(void **state)
{
    struct gw_cache c = {0};
    char got[256];

    (void)state;
    store(&c, &FB, GET("/a", "x.example", ""), "a on x", 0);
    store(&c, &FB, GET("/a", "y.example", ""), "a on y", 0);
    assert_string_equal(find(&c, &FB, GET("/a", "x.example", ""), 1, got, sizeof(got)), "a on x");
    assert_string_equal(find(&c, &FB, GET("/a", "Y.Example", ""), 1, got, sizeof(got)), "a on y");
    assert_null(find(&c, &FB, GET("/a", "z.example", ""), 1, got, sizeof(got)));
    assert_null(find(&c, &FB, GET("/a?x=1", "x.example", ""), 1, got, sizeof(got)));
    assert_null(find(&c, &FB, GET("/", "x.example", ""), 1, got, sizeof(got)));
    /* HEAD and POST are never served from it */
    assert_null(find(&c, &FB, "HEAD /a HTTP/1.1\r\nHost: x.example\r\n\r\n", 1, got, sizeof(got)));
    assert_int_equal(c.count, 2);
    proxy__cache_release(&c);
    assert_int_equal(c.count, 0);
}

static void test_cache__credentials_are_not_shared(void **state)
{
    struct gw_cache c = {0};
    struct parsed rq, rs;
    struct buf cap = {0};
    char got[256];

    (void)state;
    /* without the opt-in a credentialed request is neither stored nor served */
    assert_false(proxy__cache_capture_begin(
        &cap, &FB, parse(&rq, HTTP_REQUEST, GET("/me", "x", "Authorization: Bearer a\r\n")),
        parse(&rs, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")));
    http_parser_release(&rq.p);
    assert_null(cap.data);
    assert_false(
        proxy__cache_request_ok(&FB, parse(&rq, HTTP_REQUEST, GET("/me", "x", "cookie: s=1\r\n"))));
    http_parser_release(&rq.p);
    store(&c, &FB, GET("/me", "x", ""), "anonymous", 0);
    assert_null(find(&c, &FB, GET("/me", "x", "Authorization: Bearer b\r\n"), 1, got, sizeof(got)));
    assert_null(find(&c, &FB, GET("/me", "x", "Cookie: s=b\r\n"), 1, got, sizeof(got)));

    /* with it, each credential has its own copy */
    struct proxy_fallback pc = FB;
    pc.per_credential = true;
    store(&c, &pc, GET("/me", "x", "Authorization: Bearer a\r\n"), "for a", 0);
    store(&c, &pc, GET("/me", "x", "Authorization: Bearer b\r\n"), "for b", 0);
    store(&c, &pc, GET("/me", "x", "Cookie: s=c\r\n"), "for c", 0);
    store(&c, &pc, GET("/me", "x", "Authorization: Bearer a\r\nCookie: s=c\r\n"), "a and c", 0);
    assert_string_equal(
        find(&c, &pc, GET("/me", "x", "authorization: Bearer a\r\n"), 1, got, sizeof(got)),
        "for a");
    assert_string_equal(
        find(&c, &pc, GET("/me", "x", "Authorization: Bearer b\r\n"), 1, got, sizeof(got)),
        "for b");
    assert_string_equal(find(&c, &pc, GET("/me", "x", "Cookie: s=c\r\n"), 1, got, sizeof(got)),
                        "for c");
    assert_string_equal(find(&c, &pc, GET("/me", "x", "Authorization: Bearer a\r\nCookie: s=c\r\n"),
                             1, got, sizeof(got)),
                        "a and c");
    assert_string_equal(find(&c, &pc, GET("/me", "x", ""), 1, got, sizeof(got)), "anonymous");
    assert_null(find(&c, &pc, GET("/me", "x", "Authorization: Bearer d\r\n"), 1, got, sizeof(got)));
    /* a value that is a prefix of another's is not the same key */
    assert_null(find(&c, &pc, GET("/me", "x", "Authorization: Bearer\r\n"), 1, got, sizeof(got)));
    http_parser_release(&rs.p);
    proxy__cache_release(&c);
}

static void test_cache__private_answers_are_never_kept(void **state)
{
    static const struct {
        const char *resp;
        bool ok;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.1 200 OK\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nset-cookie: s=1\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nCache-Control: max-age=5, Private\r\nContent-Length: 0\r\n\r\n",
         false},
        {"HTTP/1.1 200 OK\r\nCache-Control: private=\"x\"\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nCache-Control: public\r\nCache-Control: NO-STORE\r\n"
         "Content-Length: 0\r\n\r\n",
         false},
        {"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Length: 0\r\n\r\n", true},
        {"HTTP/1.1 200 OK\r\nVary: Accept-Language\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", false}, /* over max_entry */
    };
    struct gw_cache c = {0};
    struct parsed rq, rs;
    struct buf cap = {0};

    (void)state;
    for (size_t i = 0; i < SH_ARRAY_LEN(cases); i++) {
        bool ok = proxy__cache_capture_begin(&cap, &FB, parse(&rq, HTTP_REQUEST, GET("/", "x", "")),
                                             parse(&rs, HTTP_RESPONSE, cases[i].resp));
        if (ok != cases[i].ok) fail_msg("case %zu: capture %d, want %d", i, ok, cases[i].ok);
        buf_release(&cap);
        http_parser_release(&rq.p);
        http_parser_release(&rs.p);
    }
    /* without a Content-Type the copy says application/octet-stream */
    assert_true(proxy__cache_capture_begin(&cap, &FB, parse(&rq, HTTP_REQUEST, GET("/", "x", "")),
                                           parse(&rs, HTTP_RESPONSE, cases[0].resp)));
    proxy__cache_store(&c, &FB, &cap, 0);
    const struct gw_cache_entry *e = proxy__cache_find(&c, &FB, &rq.p.head, 0);
    assert_non_null(e);
    assert_string_equal(proxy__cache_entry_ctype(e), "application/octet-stream");
    assert_int_equal(e->body_len, 0);
    http_parser_release(&rq.p);
    http_parser_release(&rs.p);
    proxy__cache_release(&c);
}

static void test_cache__bounded_bytes_evict_least_recently_used(void **state)
{
    struct gw_cache c = {0};
    struct proxy_fallback fb = FB;
    char got[256], target[64], req[128], body[101];
    size_t one;

    (void)state;
    memset(body, 'b', 100);
    body[100] = '\0';
    store(&c, &fb, GET("/0", "x", ""), body, 0);
    one = c.bytes;
    proxy__cache_release(&c);
    fb.max_total_bytes = (uint32_t)(one * 3 + one / 2); /* room for three */
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof(req), "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        store(&c, &fb, req, body, 0);
    }
    assert_int_equal(c.count, 3);
    /* /0 is used: /1 is now the least recently used and goes first */
    assert_non_null(find(&c, &fb, GET("/0", "x", ""), 1, got, sizeof(got)));
    store(&c, &fb, GET("/3", "x", ""), body, 0);
    assert_int_equal(c.count, 3);
    assert_true(c.bytes <= fb.max_total_bytes);
    assert_null(find(&c, &fb, GET("/1", "x", ""), 1, got, sizeof(got)));
    assert_non_null(find(&c, &fb, GET("/0", "x", ""), 1, got, sizeof(got)));
    assert_non_null(find(&c, &fb, GET("/2", "x", ""), 1, got, sizeof(got)));
    assert_non_null(find(&c, &fb, GET("/3", "x", ""), 1, got, sizeof(got)));
    /* many entries: the table grows and every one is still found */
    proxy__cache_release(&c);
    fb.max_total_bytes = 1 << 24;
    for (int i = 0; i < 500; i++) {
        snprintf(req, sizeof(req), "GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(target, sizeof(target), "v%d", i);
        store(&c, &fb, req, target, 0);
    }
    assert_int_equal(c.count, 500);
    assert_true(c.nbuckets >= 500);
    for (int i = 0; i < 500; i++) {
        snprintf(req, sizeof(req), "GET /k%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(target, sizeof(target), "v%d", i);
        assert_string_equal(find(&c, &fb, req, 1, got, sizeof(got)), target);
    }
    proxy__cache_release(&c);
}

static void test_cache__replace_expire_and_hit_without_allocation(void **state)
{
    struct gw_cache c = {0};
    struct parsed rq;
    char got[256];
    size_t bytes;

    (void)state;
    store(&c, &FB, GET("/a", "x", ""), "old", 0);
    bytes = c.bytes;
    store(&c, &FB, GET("/a", "x", ""), "new", 10);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.bytes, bytes);
    assert_string_equal(find(&c, &FB, GET("/a", "x", ""), 20, got, sizeof(got)), "new");

    /* a hit hands out the stored bytes: no allocation, the body inside the entry */
    const struct http_head *h = parse(&rq, HTTP_REQUEST, GET("/a", "x", ""));
    long before = sh_alloc_count();
    const struct gw_cache_entry *e = proxy__cache_find(&c, &FB, h, 30);
    assert_int_equal(sh_alloc_count(), before);
    assert_non_null(e);
    assert_ptr_equal(proxy__cache_entry_body(e),
                     (const char *)(e + 1) + e->key.len + e->ctype_len + 1);
    assert_true(e->size >= sizeof(*e) + e->key.len + e->ctype_len + 1 + e->body_len);
    http_parser_release(&rq.p);

    /* past max_age it is gone */
    assert_null(find(&c, &FB, GET("/a", "x", ""), 10 + FB.max_age_ms + 1, got, sizeof(got)));
    assert_int_equal(c.count, 0);
    assert_int_equal(c.bytes, 0);
    proxy__cache_release(&c);
}

static void test_cache__chunked_capture_is_capped_and_shrunk(void **state)
{
    struct gw_cache c = {0};
    struct parsed rq, rs;
    struct buf cap = {0};
    char chunk[100], got[2048];

    (void)state;
    memset(chunk, 'c', sizeof(chunk));
    const char *resp =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_true(proxy__cache_capture_begin(&cap, &FB, parse(&rq, HTTP_REQUEST, GET("/c", "x", "")),
                                           parse(&rs, HTTP_RESPONSE, resp)));
    for (int i = 0; i < 10; i++)
        assert_int_equal(buf_append(&cap, chunk, sizeof(chunk)), 0);
    /* over max_entry_bytes (1024): the append fails and forward.c drops the capture */
    assert_int_equal(buf_append(&cap, chunk, sizeof(chunk)), SH_ETOOBIG);
    buf_release(&cap);
    assert_true(proxy__cache_capture_begin(&cap, &FB, &rq.p.head, &rs.p.head));
    for (int i = 0; i < 9; i++)
        assert_int_equal(buf_append(&cap, chunk, sizeof(chunk)), 0);
    proxy__cache_store(&c, &FB, &cap, 0);
    assert_int_equal(strlen(find(&c, &FB, GET("/c", "x", ""), 1, got, sizeof(got))), 900);
    assert_true(c.bytes < 900 + 512); /* not the doubled buffer's capacity */
    http_parser_release(&rq.p);
    http_parser_release(&rs.p);
    proxy__cache_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_cache__key_is_method_host_and_target),
        SH_TEST(test_cache__credentials_are_not_shared),
        SH_TEST(test_cache__private_answers_are_never_kept),
        SH_TEST(test_cache__bounded_bytes_evict_least_recently_used),
        SH_TEST(test_cache__replace_expire_and_hit_without_allocation),
        SH_TEST(test_cache__chunked_capture_is_capped_and_shrunk),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
