/* SPDX-License-Identifier: MIT */
/* bench_span.c: the CPU a proxy worker spends on one request's span, and what the drain spends
 * on it: a producer thread builds a gateway hop's span (proxy__span_build, as forward.c does
 * for every kept request) and pushes it onto its ring; a consumer thread drains the queue every
 * 200 ms, as `shoal up`'s control loop does, and frees the spans. Thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID) per span on each side; dropped spans (a full ring) are reported.
 * The producer paces itself to <rate> spans/s (default 60000, about the gateway's requests/s
 * on one core; 0 = as fast as it can) so the ring behaves as it does under load; the consumer
 * drains every <drain_ms> (default 200). Usage: bench_span [spans] [rate] [drain_ms] [capacity] */
#include "proxy/proxy.h"
#include "proxy/proxy_int.h"
#include "telemetry/telemetry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct run {
    struct trace_queue *q;
    uint64_t spans, rate, drain_ms, pushed, drained;
    uint64_t producer_ns, consumer_ns;
    _Atomic int done;
};

static void count(void *data, const struct trace_span *s)
{
    struct run *r = data;

    (void)s;
    r->drained++;
}

static void *consumer(void *arg)
{
    struct run *r = arg;
    uint64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    struct timespec nap = {(time_t)(r->drain_ms / 1000), (long)(r->drain_ms % 1000) * 1000000};

    while (!atomic_load(&r->done)) {
        nanosleep(&nap, NULL);
        trace_queue_drain(r->q, 0, count, r);
    }
    trace_queue_drain(r->q, 0, count, r);
    r->consumer_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    return NULL;
}

static void *producer(void *arg)
{
    struct run *r = arg;
    static const uint8_t tid[TRACE_ID_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    uint8_t sid[TRACE_SPAN_ID_BYTES] = {1};
    uint64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), start = clock_ns(CLOCK_MONOTONIC);

    for (uint64_t i = 0; i < r->spans; i++) {
        struct proxy_span_input in = {
            .trace_id = tid,
            .span_id = sid,
            .start_us = 1700000000000000ull + i,
            .duration_us = 800 + i % 100,
            .local_service = SLICE("gateway"),
            .remote_service = SLICE("greeter"),
            .method = SLICE("GET"),
            .target = SLICE("/hello?x=1"),
            .route = SLICE("hello"),
            .cluster = SLICE("greeter"),
            .endpoint = SLICE("127.0.0.1:41234"),
            .status = 200,
            .attempts = 1,
            .has_upstream = true,
            .queue_us = 12,
            .upstream_us = 700,
        };
        struct trace_span sp;
        char scratch[PROXY_SPAN_SCRATCH];
        sid[1] = (uint8_t)i;
        if (proxy__span_build(&in, scratch, sizeof(scratch), &sp) == 0 &&
            trace_queue_push(r->q, 0, &sp) == 0)
            r->pushed++;
        if (r->rate && (i & 63) == 63) { /* pace: sleep when ahead of the rate */
            uint64_t due = start + (i + 1) * 1000000000ull / r->rate,
                     now = clock_ns(CLOCK_MONOTONIC);
            if (due > now) {
                struct timespec nap = {(time_t)((due - now) / 1000000000u),
                                       (long)((due - now) % 1000000000u)};
                nanosleep(&nap, NULL);
            }
        }
    }
    r->producer_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    atomic_store(&r->done, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    struct run r = {.spans = argc > 1 ? strtoull(argv[1], NULL, 10) : 600000,
                    .rate = argc > 2 ? strtoull(argv[2], NULL, 10) : 60000,
                    .drain_ms = argc > 3 ? strtoull(argv[3], NULL, 10) : 200};
    uint32_t capacity = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0;
    pthread_t p, c;

    sh_alloc_accounting(false);
    if (trace_queue_new(&(struct trace_queue_config){.shards = 1, .capacity = capacity}, &r.q) < 0)
        return 1;
    pthread_create(&c, NULL, consumer, &r);
    pthread_create(&p, NULL, producer, &r);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    printf("spans %llu at %llu/s: pushed %llu, drained %llu, dropped %llu\n",
           (unsigned long long)r.spans, (unsigned long long)r.rate, (unsigned long long)r.pushed,
           (unsigned long long)r.drained, (unsigned long long)trace_queue_dropped(r.q));
    printf("worker (build + push): %.0f ns/span; drain (hand over + free): %.0f ns/span; "
           "total %.0f ns/span\n",
           (double)r.producer_ns / (double)r.spans, (double)r.consumer_ns / (double)r.spans,
           (double)(r.producer_ns + r.consumer_ns) / (double)r.spans);
    trace_queue_free(r.q);
    return 0;
}
