/* SPDX-License-Identifier: MIT */
/* bench_metrics.c: ns per hot-path metrics call: counter add, gauge add and histogram observe
 * (default latency buckets, values spread log-uniformly over 0.1 ms .. 20 s), on one thread and
 * on several threads each writing its own shard of the same series (no false sharing expected:
 * the per-thread figure should stay flat). A shared atomic fetch_add counter is measured too,
 * as the contended baseline sharding avoids. Usage: bench_metrics [iterations] [threads] */
#include "telemetry/telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { NVALUES = 4096 };

static double values[NVALUES];
static _Atomic uint64_t shared_counter;

struct job {
    const char *what;
    struct metric_counter *c;
    struct metric_gauge *g;
    struct metric_histogram *h;
    uint32_t shard;
    uint64_t iters;
    double ns_per_op;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *p)
{
    struct job *j = p;
    uint64_t t0 = now_ns();

    if (j->c) {
        for (uint64_t i = 0; i < j->iters; i++)
            metric_counter_add(j->c, j->shard, 1);
    } else if (j->g) {
        for (uint64_t i = 0; i < j->iters; i++)
            metric_gauge_add(j->g, j->shard, (i & 1) ? -1 : 1);
    } else if (j->h) {
        for (uint64_t i = 0; i < j->iters; i++)
            metric_histogram_observe(j->h, j->shard, values[i & (NVALUES - 1)]);
    } else {
        for (uint64_t i = 0; i < j->iters; i++)
            atomic_fetch_add_explicit(&shared_counter, 1, memory_order_relaxed);
    }
    j->ns_per_op = (double)(now_ns() - t0) / (double)j->iters;
    return NULL;
}

/* Runs the same job on <threads> threads, shard = thread index; prints the mean ns/op. */
static void bench(const char *what, struct job proto, int threads)
{
    pthread_t th[64];
    struct job jobs[64];
    double sum = 0;

    for (int t = 0; t < threads; t++) {
        jobs[t] = proto;
        jobs[t].shard = (uint32_t)t;
        if (pthread_create(&th[t], NULL, run, &jobs[t]) != 0) {
            fprintf(stderr, "bench_metrics: pthread_create failed\n");
            exit(1);
        }
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        sum += jobs[t].ns_per_op;
    }
    printf("%-36s threads=%-2d %7.2f ns/op\n", what, threads, sum / threads);
}

int main(int argc, char **argv)
{
    uint64_t iters = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000000u;
    long threads = argc > 2 ? strtol(argv[2], NULL, 10) : 2;
    const char *const labels[] = {"route", "cluster"};
    struct slice lv[2] = {SLICE("api"), SLICE("users")};
    struct metrics *m;
    struct metric_family *fc, *fg, *fh;
    struct metric_counter *c;
    struct metric_gauge *g;
    struct metric_histogram *h;
    struct trace_rng rng;

    if (threads < 1 || threads > 64 || iters == 0) {
        fprintf(stderr, "usage: bench_metrics [iterations] [threads 1..64]\n");
        return 2;
    }
    trace_rng_seed(&rng, 1);
    for (int i = 0; i < NVALUES; i++) {
        double u = (double)(trace_rng_next(&rng) >> 11) / 9007199254740992.0;
        values[i] = 0.0001 * pow(200000.0, u);
    }
    if (metrics_new(&(struct metrics_config){.shards = 64}, &m) < 0 ||
        metrics_family_add(m,
                           &(struct metric_family_config){.name = "b_total",
                                                          .help = "b",
                                                          .type = METRIC_COUNTER,
                                                          .label_names = labels,
                                                          .label_count = 2},
                           &fc) < 0 ||
        metrics_family_add(m,
                           &(struct metric_family_config){.name = "b_active",
                                                          .help = "b",
                                                          .type = METRIC_GAUGE,
                                                          .label_names = labels,
                                                          .label_count = 2},
                           &fg) < 0 ||
        metrics_family_add(m,
                           &(struct metric_family_config){.name = "b_seconds",
                                                          .help = "b",
                                                          .type = METRIC_HISTOGRAM,
                                                          .label_names = labels,
                                                          .label_count = 2},
                           &fh) < 0 ||
        metric_counter_get(fc, lv, 2, &c) < 0 || metric_gauge_get(fg, lv, 2, &g) < 0 ||
        metric_histogram_get(fh, lv, 2, &h) < 0) {
        fprintf(stderr, "bench_metrics: setup failed\n");
        return 1;
    }
    printf("bench_metrics: %llu iterations per thread\n", (unsigned long long)iters);
    /* one thread, then all of them (each on its own shard of the same series) */
    for (int t = 1; t <= threads; t = t == threads ? t + 1 : (int)threads) {
        bench("metric_counter_add", (struct job){.c = c, .iters = iters}, t);
        bench("metric_gauge_add", (struct job){.g = g, .iters = iters}, t);
        bench("metric_histogram_observe (14 buckets)", (struct job){.h = h, .iters = iters / 2}, t);
        bench("baseline: shared atomic fetch_add", (struct job){.iters = iters}, t);
    }
    if (metric_counter_read(c) == 0) return 1;
    metrics_free(m);
    return 0;
}
