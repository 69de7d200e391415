/* SPDX-License-Identifier: MIT */
/* bench_parser.c: throughput of the HTTP/1.1 parser (src/http/parser.c) on realistic
 * message mixes, in MB/s and messages/s, and of Debian's libhttp-parser on the same bytes
 * when it was found at configure time (SHOAL_BENCH_HTTP_PARSER).
 *
 * Each workload is a stream of many messages (about 256 KiB) fed in one call per verdict, as a
 * server does with a full read buffer; a run repeats the stream for about --ms milliseconds and
 * the best of --runs runs is printed as a markdown table row. Time is the thread's CPU time,
 * and the parsers take turns run by run, because the machine is shared. Single-threaded, no I/O
 * besides the table. Usage: bench_parser [--ms N] [--runs N]    (defaults 1000 and 5) */
#include "core/core.h"
#include "http/http.h"
#ifdef SHOAL_BENCH_HTTP_PARSER
#include "ref_http_parser.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_BYTES (256u * 1024u)

static const char browser_get[] =
    "GET /products/widgets?color=blue&size=m HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
    "Accept: "
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://shop.example.com/products?page=2\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; csrftoken=c4ca4238a0b923820dcc509a6f75849b; "
    "theme=dark; _ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Cache-Control: max-age=0\r\n"
    "\r\n";

static const char api_post[] =
    "POST /api/v1/orders HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: shoal-client/0.1\r\n"
    "Accept: application/json\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer "
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N\r\n"
    "X-Request-Id: 7d3f1c2a-9b8e-4f6d-a5c4-3b2a1f0e9d8c\r\n";
static const char api_post_body[] =
    "{\"customer\":\"c-10293\",\"items\":[{\"sku\":\"W-001\",\"qty\":2,\"price\":1999},"
    "{\"sku\":\"W-017\",\"qty\":1,\"price\":4999},{\"sku\":\"G-204\",\"qty\":5,\"price\":250}],"
    "\"currency\":\"EUR\",\"shipping\":{\"method\":\"standard\",\"country\":\"DE\"},\"note\":\"\"}";

static const char ping[] = "GET /ping HTTP/1.1\r\nHost: svc\r\n\r\n";

static const char resp_json[] = "HTTP/1.1 200 OK\r\n"
                                "Date: Mon, 01 Jan 2024 12:00:00 GMT\r\n"
                                "Server: shoal\r\n"
                                "Content-Type: application/json\r\n"
                                "Cache-Control: no-store\r\n";
static const char resp_json_body[] =
    "{\"id\":\"o-5566\",\"status\":\"accepted\",\"total\":9247,\"currency\":\"EUR\","
    "\"eta\":\"2024-01-04\",\"links\":{\"self\":\"/api/v1/o/5566\"}}";
static const char resp_304[] =
    "HTTP/1.1 304 Not Modified\r\nDate: Mon, 01 Jan 2024 12:00:00 GMT\r\n"
    "ETag: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\nCache-Control: max-age=3600\r\n\r\n";
static const char resp_204[] = "HTTP/1.1 204 No Content\r\nServer: shoal\r\n\r\n";

/* A JSON body of exactly n bytes, deterministic. */
static void append_payload(struct buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf_appendc(b, (char)('a' + i % 26));
}

static void gen_browser(struct buf *b)
{
    buf_append(b, browser_get, sizeof(browser_get) - 1);
}
/* a head, its Content-Length and its body */
static void append_with_length(struct buf *b, const char *head, const char *body)
{
    buf_appendf(b, "%sContent-Length: %zu\r\n\r\n%s", head, strlen(body), body);
}
static void gen_api_post(struct buf *b)
{
    append_with_length(b, api_post, api_post_body);
}
static void gen_chunked_upload(struct buf *b)
{
    buf_appends(b, SLICE("POST /upload HTTP/1.1\r\nHost: files.example.com\r\n"
                         "Content-Type: application/octet-stream\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"));
    for (int i = 0; i < 4; i++) {
        buf_appends(b, SLICE("400\r\n"));
        append_payload(b, 1024);
        buf_appends(b, SLICE("\r\n"));
    }
    buf_appends(b, SLICE("0\r\n\r\n"));
}
static void gen_ping(struct buf *b)
{
    buf_append(b, ping, sizeof(ping) - 1);
}
static void gen_request_mix(struct buf *b)
{
    /* a gateway's day: mostly small reads, some API writes, a few uploads */
    for (int i = 0; i < 4; i++)
        gen_ping(b);
    gen_browser(b);
    gen_browser(b);
    gen_api_post(b);
    gen_api_post(b);
    gen_chunked_upload(b);
}
static void gen_response_mix(struct buf *b)
{
    append_with_length(b, resp_json, resp_json_body);
    buf_append(b, resp_304, sizeof(resp_304) - 1);
    buf_append(b, resp_204, sizeof(resp_204) - 1);
    buf_appends(b, SLICE("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"));
    for (int i = 0; i < 3; i++) {
        buf_appends(b, SLICE("200\r\n"));
        append_payload(b, 512);
        buf_appends(b, SLICE("\r\n"));
    }
    buf_appends(b, SLICE("0\r\n\r\n"));
}

struct workload {
    const char *name;
    enum http_kind kind;
    void (*gen)(struct buf *b); /* appends one unit of the mix */
    int msgs_per_unit;
};

static const struct workload workloads[] = {
    {"browser GET (14 fields, cookies)", HTTP_REQUEST, gen_browser, 1},
    {"API POST JSON (Content-Length body)", HTTP_REQUEST, gen_api_post, 1},
    {"chunked upload (4 x 1 KiB)", HTTP_REQUEST, gen_chunked_upload, 1},
    {"pipelined small GETs", HTTP_REQUEST, gen_ping, 1},
    {"request mix (4 ping, 2 GET, 2 POST, 1 upload)", HTTP_REQUEST, gen_request_mix, 9},
    {"response mix (200 JSON, 304, 204, chunked 1.5 KiB)", HTTP_RESPONSE, gen_response_mix, 4},
};

/* Parses the stream once; returns messages, or -1 on an unexpected verdict. */
static long shoal_parse_stream(struct http_parser *p, const char *s, size_t len,
                               unsigned long long *body_bytes)
{
    size_t off = 0;
    long msgs = 0;

    while (off < len) {
        size_t used;
        int rc = http_parser_feed(p, s + off, len - off, &used);
        off += used;
        if (rc == HTTP_DONE)
            msgs++;
        else if (rc == HTTP_BODY)
            *body_bytes += p->body.len;
        else if (rc < 0 || (rc == HTTP_AGAIN && off < len))
            return -1;
    }
    /* a body-less last message reports DONE on the next call */
    size_t used;
    if (http_parser_feed(p, s + len, 0, &used) == HTTP_DONE) msgs++;
    return msgs;
}

struct result {
    double mb_s, msgs_s;
};

enum which { P_SHOAL, P_REF };

/* Thread CPU time: the machine is shared, and time spent preempted is not the parser's. */
static uint64_t cpu_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* One run of about ms milliseconds of CPU time; 0, or -1 on a wrong message count. */
static int run_once(enum which w, struct http_parser *p, const struct workload *wl,
                    const struct buf *s, long want_msgs, int ms, struct result *out)
{
    uint64_t t0 = cpu_now_us(), t1;
    unsigned long long bytes = 0, msgs = 0;

    do {
        for (int rep = 0; rep < 8; rep++) {
            unsigned long long body = 0;
            long n = -1;
            if (w == P_SHOAL) n = shoal_parse_stream(p, s->data, s->len, &body);
#ifdef SHOAL_BENCH_HTTP_PARSER
            else
                n = ref_parse_stream(s->data, s->len, wl->kind == HTTP_RESPONSE, &body);
#endif
            if (n != want_msgs) {
                fprintf(stderr, "bench_parser: %s: %ld messages, expected %ld\n", wl->name, n,
                        want_msgs);
                return -1;
            }
            bytes += s->len;
            msgs += (unsigned long long)n;
        }
        t1 = cpu_now_us();
    } while (t1 - t0 < (uint64_t)ms * 1000u);
    double secs = (double)(t1 - t0) / 1e6;
    *out = (struct result){(double)bytes / secs / 1e6, (double)msgs / secs};
    return 0;
}

int main(int argc, char **argv)
{
    int ms = 1000, runs = 5, failed = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ms") == 0)
            ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
    }
    if (ms <= 0 || runs <= 0) {
        fprintf(stderr, "usage: bench_parser [--ms N] [--runs N]\n");
        return 2;
    }
    printf("Best of %d runs of ~%d ms of thread CPU time each, the parsers taking turns; every "
           "run parses a ~%u KiB stream of back-to-back messages, one feed call per verdict.\n\n",
           runs, ms, STREAM_BYTES / 1024);
    printf("| workload | bytes/msg | parser | MB/s | messages/s |\n");
    printf("|---|---:|---|---:|---:|\n");
    for (size_t i = 0; i < SH_ARRAY_LEN(workloads); i++) {
        const struct workload *wl = &workloads[i];
        struct buf s = BUF_INIT(0);
        long want = 0;

        while (s.len < STREAM_BYTES) {
            wl->gen(&s);
            want += wl->msgs_per_unit;
        }
        if (s.err) {
            fprintf(stderr, "bench_parser: out of memory\n");
            return 1;
        }
        /* the parsers take turns, so a burst of load on the machine hits both */
        struct result best[2] = {{0, 0}, {0, 0}};
        int nparsers = 1, bad = 0;
        struct http_parser p;
#ifdef SHOAL_BENCH_HTTP_PARSER
        nparsers = 2;
#endif
        if (http_parser_init(&p, wl->kind, NULL) < 0) return 1;
        for (int r = 0; r < runs && !bad; r++) {
            for (int w = 0; w < nparsers && !bad; w++) {
                struct result res;
                bad = run_once((enum which)w, &p, wl, &s, want, ms, &res) < 0;
                if (!bad && res.mb_s > best[w].mb_s) best[w] = res;
            }
        }
        http_parser_release(&p);
        if (bad) {
            failed = 1;
        } else {
            printf("| %s | %zu | shoal | %.0f | %.0f |\n", wl->name, s.len / (size_t)want,
                   best[P_SHOAL].mb_s, best[P_SHOAL].msgs_s);
#ifdef SHOAL_BENCH_HTTP_PARSER
            printf("| %s | %zu | http-parser %s | %.0f | %.0f |\n", wl->name, s.len / (size_t)want,
                   ref_parser_version(), best[P_REF].mb_s, best[P_REF].msgs_s);
#endif
        }
        fflush(stdout);
        buf_release(&s);
    }
    return failed;
}
