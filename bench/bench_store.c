/* SPDX-License-Identifier: MIT */
/* bench_store.c: the embedded store's durable write rate and watch notification latency.
 *  - sequential durable puts from one writer (each put returns after its fsynced commit),
 *    with p50/p99 per-put latency; the same for 10-put transactions;
 *  - point reads per second;
 *  - watch latency: from the start of a put to its event in a watch callback, with one
 *    matching watch, and with 1000 other (non-matching) watches registered as well.
 * Usage: bench_store [DIR] [puts]   (DIR defaults to a fresh directory under /tmp; it is where
 * the fsyncs go, so point it at the disk you care about). */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *lat_us, size_t n, uint64_t total_us,
                   size_t ops_per_item)
{
    qsort(lat_us, n, sizeof(*lat_us), cmp_u64);
    printf("%-44s %9.0f ops/s   p50 %6llu us   p99 %6llu us   max %6llu us\n", what,
           (double)(n * ops_per_item) * 1e6 / (double)(total_us ? total_us : 1),
           (unsigned long long)lat_us[n / 2], (unsigned long long)lat_us[n * 99 / 100],
           (unsigned long long)lat_us[n - 1]);
}

struct watch_probe {
    uint64_t started_us, seen_us;
};

static void on_event(void *data, struct store_watch *w, const struct store_event *ev)
{
    struct watch_probe *p = data;
    (void)w;
    (void)ev;
    p->seen_us = sh_now_us();
}

static void on_other(void *data, struct store_watch *w, const struct store_event *ev)
{
    (void)data;
    (void)w;
    (void)ev;
    abort(); /* never matches */
}

static int die(const char *what, int rc)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, sh_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    char tmpl[] = "/tmp/shoal-bench-store-XXXXXX", key[64], val[128];
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 2000;
    struct store *st;
    struct sh_diag d;
    uint64_t *lat = calloc(n ? n : 1, sizeof(*lat)), t0, total;
    int rc;

    sh_log_setup(SH_WARN, SH_LOG_AUTO, 2);
    if (!dir || !lat || n < 10)
        return die("setup (need a directory and at least 10 puts)", SH_EINVAL);
    rc = store_open(&(struct store_config){.data_dir = dir}, &st, &d);
    if (rc < 0) {
        fprintf(stderr, "bench_store: %s: %s\n", d.where, d.what);
        return 1;
    }
    memset(val, 'v', sizeof(val));
    struct slice value = {val, 100};
    printf("store bench in %s, %zu items per run, 100-byte values, synchronous=FULL\n", dir, n);

    total = sh_now_us();
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "/bench/put/%08zu", i);
        t0 = sh_now_us();
        rc = store_put(st, slice_from_cstr(key), value, 0, NULL);
        if (rc < 0) return die("put", rc);
        lat[i] = sh_now_us() - t0;
    }
    report("durable put, 1 writer, sequential", lat, n, sh_now_us() - total, 1);

    size_t txns = n / 10;
    total = sh_now_us();
    for (size_t i = 0; i < txns; i++) {
        struct store_op ops[10];
        char keys[10][64];
        for (size_t k = 0; k < 10; k++) {
            snprintf(keys[k], sizeof(keys[k]), "/bench/txn/%08zu/%zu", i, k);
            ops[k] = (struct store_op){
                .type = STORE_OP_PUT, .span = STORE_KEY(slice_from_cstr(keys[k])), .value = value};
        }
        struct store_txn_result tr;
        t0 = sh_now_us();
        rc = store_txn(st, &(struct store_txn){.success = ops, .success_count = 10}, &tr);
        if (rc < 0) return die("txn", rc);
        lat[i] = sh_now_us() - t0;
    }
    report("durable txn of 10 puts (puts/s)", lat, txns, sh_now_us() - total, 10);

    total = sh_now_us();
    for (size_t i = 0; i < n; i++) {
        struct store_result res;
        snprintf(key, sizeof(key), "/bench/put/%08zu", (i * 7919) % n);
        t0 = sh_now_us();
        rc = store_get(st, slice_from_cstr(key), &res);
        store_result_release(&res);
        if (rc < 0) return die("get", rc);
        lat[i] = sh_now_us() - t0;
    }
    report("get (random key)", lat, n, sh_now_us() - total, 1);

    for (int with_others = 0; with_others < 2; with_others++) {
        struct watch_probe probe = {0};
        struct store_watch *w, **others = calloc(1000, sizeof(*others));
        if (!others) return die("calloc", SH_ENOMEM);
        for (size_t k = 0; with_others && k < 1000; k++) {
            snprintf(key, sizeof(key), "/bench/other/%zu/", k);
            rc = store_watch(
                st, &(struct store_watch_config){.span = STORE_PREFIX(slice_from_cstr(key))},
                on_other, NULL, &others[k]);
            if (rc < 0) return die("watch", rc);
        }
        rc = store_watch(st, &(struct store_watch_config){.span = STORE_PREFIX(SLICE("/bench/w/"))},
                         on_event, &probe, &w);
        if (rc < 0) return die("watch", rc);
        size_t m = n / 2;
        total = sh_now_us();
        for (size_t i = 0; i < m; i++) {
            snprintf(key, sizeof(key), "/bench/w/%08zu", i);
            probe.started_us = sh_now_us();
            probe.seen_us = 0;
            rc = store_put(st, slice_from_cstr(key), value, 0, NULL);
            if (rc < 0 || !probe.seen_us) return die("watched put", rc < 0 ? rc : SH_EIO);
            lat[i] = probe.seen_us - probe.started_us;
        }
        report(with_others ? "put -> watch callback, +1000 other watches"
                           : "put -> watch callback, 1 watch",
               lat, m, sh_now_us() - total, 1);
        store_watch_cancel(w);
        for (size_t k = 0; k < 1000; k++)
            store_watch_cancel(others[k]);
        free(others);
    }
    store_close(st);
    free(lat);
    if (argc <= 1) {
        char p[128];
        const char *files[] = {"store.db", "store.db-wal", "store.db-shm", "store.lock"};
        for (size_t i = 0; i < SH_ARRAY_LEN(files); i++) {
            snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    return 0;
}
