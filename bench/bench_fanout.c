/* SPDX-License-Identifier: MIT */
/* bench_fanout: the registry fan-out measured with a C client, so that the client's own cost
 * (the Python driver spends about as much CPU per change as the server) does not hide the
 * server's. Usage:
 *   bench_fanout --port P --token T --service S [--watchers 1000] [--rounds 10]
 *                [--settle-ms 1000] [--server-pid PID]
 * against a running `shoal server` on 127.0.0.1:P whose service S already has instances.
 * Each round: every watcher has a blocking query parked (GET /v1/health/service/S?index=I
 * &wait=300s, one keep-alive connection each); after settle-ms, one register (or deregister)
 * of an extra instance of S is sent on its own connection; every socket is read as data
 * arrives (epoll), and a watcher is notified when the last byte of its answer has been read.
 * Times are CLOCK_MONOTONIC from writing the change. Prints one JSON object with nearest-rank
 * percentiles (as control_plane.py computes them). Loopback only; bounded by a 60 s deadline
 * per round. */
#include "core/core.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

enum { HEAD_MAX = 8192 };

struct conn {
    int fd;
    char head[HEAD_MAX]; /* the response head as it arrives */
    size_t head_len;
    bool in_body, done;
    long long body_left;
    uint64_t index;
    int status;
    double t_done;
};

/* The decimal number at the start of p (after spaces), or 0. */
static uint64_t num(const char *p)
{
    const char *e;

    while (*p == ' ')
        p++;
    for (e = p; *e >= '0' && *e <= '9'; e++)
        ;
    uint64_t v = 0;
    if (slice_to_u64((struct slice){p, (size_t)(e - p)}, &v) != 0) return 0;
    return v;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_fanout: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_to(uint16_t port)
{
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die("send");
        p += w;
        n -= (size_t)w;
    }
}

/* A field's value in a head (case-insensitive name), or NULL. */
static const char *field(const char *head, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        if (!strncasecmp(p + 2, name, n) && p[2 + n] == ':') return p + 3 + n;
    }
    return NULL;
}

/* Feeds bytes read on c; true once its answer is complete. Bodies are counted, not kept. */
static bool feed(struct conn *c, const char *p, size_t n, double t)
{
    while (n && !c->done) {
        if (!c->in_body) {
            size_t take = SH_MIN(n, HEAD_MAX - 1 - c->head_len);
            char *end;
            if (take == 0) {
                fprintf(stderr, "bench_fanout: response head over %d bytes\n", HEAD_MAX);
                exit(1);
            }
            memcpy(c->head + c->head_len, p, take);
            c->head_len += take;
            c->head[c->head_len] = '\0';
            end = strstr(c->head, "\r\n\r\n");
            if (!end) {
                p += take;
                n -= take;
                continue;
            }
            size_t used = (size_t)(end + 4 - c->head) - (c->head_len - take);
            const char *cl = field(c->head, "Content-Length"),
                       *ix = field(c->head, "X-Consul-Index");
            c->status = (int)num(c->head + 9);
            c->body_left = cl ? (long long)num(cl) : 0;
            c->index = ix ? num(ix) : 0;
            c->in_body = true;
            p += used;
            n -= used;
        }
        size_t take = (size_t)SH_MIN((long long)n, c->body_left);
        c->body_left -= (long long)take;
        p += take;
        n -= take;
        if (c->body_left == 0) {
            c->done = true;
            c->t_done = t;
        }
    }
    return c->done;
}

static void reset(struct conn *c)
{
    c->head_len = 0;
    c->in_body = c->done = false;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Nearest rank of sorted xs, as control_plane.py's pct(). */
static double pct(const double *xs, size_t n, double p)
{
    long k = (long)(p / 100.0 * (double)n + 0.5 + 0.5) - 1;

    k = k < 0 ? 0 : k >= (long)n ? (long)n - 1 : k;
    return xs[k];
}

static void summary(const char *name, double *xs, size_t n, bool comma)
{
    double p50, p99;

    qsort(xs, n, sizeof(*xs), cmp_double);
    p50 = pct(xs, n, 50);
    p99 = pct(xs, n, 99);
    printf("\"%s\":{\"n\":%zu,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}%s", name, n,
           p50 * 1e3, p99 * 1e3, xs[n - 1] * 1e3, comma ? "," : "");
}

static double cpu_of_pid(int pid)
{
    char path[64], buf[1024];
    FILE *f;
    unsigned long ut = 0, st = 0;

    if (pid <= 0) return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f) return 0;
    if (fgets(buf, sizeof(buf), f)) {
        const char *p = strrchr(buf, ')');
        int field_no = 2;
        for (; p && *p; p++) {
            if (*p == ' ' && ++field_no == 14) {
                ut = strtoul(p + 1, NULL, 10);
            } else if (*p == ' ' && field_no == 15) {
                st = strtoul(p + 1, NULL, 10);
                break;
            }
        }
    }
    fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_self(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    const char *token = "", *service = NULL;
    long port = 0, watchers = 1000, rounds = 10, settle_ms = 1000, server_pid = 0;
    char req[1024], body[512];
    static char rbuf[1 << 16];

    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--port"))
            port = (long)num(v);
        else if (!strcmp(a, "--token"))
            token = v;
        else if (!strcmp(a, "--service"))
            service = v;
        else if (!strcmp(a, "--watchers"))
            watchers = (long)num(v);
        else if (!strcmp(a, "--rounds"))
            rounds = (long)num(v);
        else if (!strcmp(a, "--settle-ms"))
            settle_ms = (long)num(v);
        else if (!strcmp(a, "--server-pid"))
            server_pid = (long)num(v);
        else {
            fprintf(stderr, "bench_fanout: unknown option %s\n", a);
            return 2;
        }
    }
    if (!service || port <= 0 || port > 65535 || watchers < 1 || watchers > 20000 || rounds < 1) {
        fprintf(stderr, "usage: bench_fanout --port P --token T --service S [--watchers N] "
                        "[--rounds R] [--settle-ms MS] [--server-pid PID]\n");
        return 2;
    }
    struct rlimit rl = {(rlim_t)watchers + 64, (rlim_t)watchers + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    struct conn *cs = sh_calloc((size_t)watchers + 1, sizeof(*cs)); /* [watchers]: the writer */
    double *samples = sh_calloc((size_t)(watchers * rounds), sizeof(double));
    double *last = sh_calloc((size_t)rounds, sizeof(double)),
           *answer = sh_calloc((size_t)rounds, sizeof(double));
    double server_cpu = 0, client_cpu = 0;
    size_t ns = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    bool extra = false;

    if (!cs || !samples || !last || !answer || ep < 0) die("setup");
    for (long i = 0; i <= watchers; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        cs[i].fd = connect_to((uint16_t)port);
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) die("epoll_ctl");
    }
    /* the current index, from one plain read on the writer's connection */
    struct conn *wr = &cs[watchers];
    int n = snprintf(req, sizeof(req), "GET /v1/health/service/%s HTTP/1.1\r\nHost: b\r\n\r\n",
                     service);
    send_all(wr->fd, req, (size_t)n);
    while (!wr->done) {
        ssize_t r = recv(wr->fd, rbuf, sizeof(rbuf), 0);
        if (r <= 0) die("reading the index");
        feed(wr, rbuf, (size_t)r, now_s());
    }
    uint64_t index = wr->index;
    for (long rnd = 0; rnd < rounds; rnd++) {
        long pending = watchers + 1;
        double t0, deadline;
        for (long i = 0; i < watchers; i++) {
            reset(&cs[i]);
            n = snprintf(
                req, sizeof(req),
                "GET /v1/health/service/%s?index=%llu&wait=300s HTTP/1.1\r\nHost: b\r\n\r\n",
                service, (unsigned long long)index);
            send_all(cs[i].fd, req, (size_t)n);
        }
        usleep((useconds_t)settle_ms * 1000);
        reset(wr);
        if (extra) {
            n = snprintf(req, sizeof(req),
                         "PUT /v1/agent/service/deregister/%s-extra HTTP/1.1\r\nHost: b\r\n"
                         "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
                         service, token);
        } else {
            int bl = snprintf(body, sizeof(body),
                              "{\"ID\":\"%s-extra\",\"Name\":\"%s\",\"Tags\":[\"bench\",\"v1\"],"
                              "\"Address\":\"127.0.0.1\",\"Port\":19999,\"Meta\":{\"version\":"
                              "\"1\",\"zone\":\"a\"},\"Check\":{\"TTL\":\"10m\"}}",
                              service, service);
            n = snprintf(req, sizeof(req),
                         "PUT /v1/agent/service/register HTTP/1.1\r\nHost: b\r\nAuthorization: "
                         "Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         "\r\n%s",
                         token, bl, body);
        }
        extra = !extra;
        double scpu0 = cpu_of_pid((int)server_pid), ccpu0 = cpu_self();
        t0 = now_s();
        send_all(wr->fd, req, (size_t)n);
        deadline = t0 + 60;
        while (pending > 0) {
            struct epoll_event evs[256];
            int k = epoll_wait(ep, evs, 256, 1000);
            if (k < 0 && errno == EINTR) continue;
            if (now_s() > deadline) {
                fprintf(stderr, "bench_fanout: round %ld: %ld answers missing after 60 s\n", rnd,
                        pending);
                return 1;
            }
            for (int e = 0; e < k; e++) {
                struct conn *c = &cs[evs[e].data.u64];
                ssize_t r = recv(c->fd, rbuf, sizeof(rbuf), MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                    fprintf(stderr, "bench_fanout: a connection closed in round %ld\n", rnd);
                    return 1;
                }
                if (r > 0 && !c->done && feed(c, rbuf, (size_t)r, now_s())) pending--;
            }
        }
        double scpu1 = cpu_of_pid((int)server_pid), ccpu1 = cpu_self();
        server_cpu += scpu1 - scpu0;
        client_cpu += ccpu1 - ccpu0;
        if (wr->status != 200) {
            fprintf(stderr, "bench_fanout: the change got %d\n", wr->status);
            return 1;
        }
        answer[rnd] = wr->t_done - t0;
        last[rnd] = 0;
        for (long i = 0; i < watchers; i++) {
            if (cs[i].status != 200 || cs[i].index <= index) {
                fprintf(stderr, "bench_fanout: watcher %ld: status %d index %llu\n", i,
                        cs[i].status, (unsigned long long)cs[i].index);
                return 1;
            }
            samples[ns++] = cs[i].t_done - t0;
            last[rnd] = SH_MAX(last[rnd], cs[i].t_done - t0);
        }
        index = cs[0].index;
    }
    printf("{\"watchers\":%ld,\"rounds\":%ld,", watchers, rounds);
    summary("change_to_watcher_from_send", samples, ns, true);
    summary("change_to_last_watcher_from_send", last, (size_t)rounds, true);
    summary("change_answer", answer, (size_t)rounds, true);
    printf("\"server_cpu_ms_per_change\":%.1f,\"client_cpu_ms_per_change\":%.1f}\n",
           server_cpu * 1e3 / (double)rounds, client_cpu * 1e3 / (double)rounds);
    for (long i = 0; i <= watchers; i++)
        close(cs[i].fd);
    sh_free(cs);
    sh_free(samples);
    sh_free(last);
    sh_free(answer);
    return 0;
}
