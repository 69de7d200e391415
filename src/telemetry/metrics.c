/* SPDX-License-Identifier: MIT */
/* metrics.c: the metrics registry, per-shard cells and the Prometheus text exposition.
 *
 * Memory: every series owns <ncells> consecutive 8-byte cells in every shard (1 for counters
 * and gauges; buckets + 1 counts and 1 sum for histograms; METRIC_SKETCH_BUCKETS counts for
 * sketches). Cells are carved from blocks of
 * METRICS_CHUNK_CELLS cells, allocated one per shard at a time and 64-byte aligned, so a cache
 * line holds cells of one shard only: workers never false-share, whatever series they touch.
 * A series never spans blocks. Blocks and series are freed only by metrics_free, which is what
 * makes stale handles safe (telemetry.h, "Lifetime").
 *
 * Concurrency: a cell has one writer (the thread owning the shard) and any number of readers
 * (render, read). Writers do a relaxed load and a relaxed store, never a read-modify-write;
 * readers do relaxed loads. That is race-free in the C11 model and compiles to plain moves.
 * Everything else (families, series lists, the index, block allocation, the retired flags) is
 * guarded by m->lock, which the hot path never takes. A handle reaches a worker through some
 * release/acquire publication (a config snapshot), which orders the zeroed cells before use.
 *
 * Threads: see telemetry.h. */
#include "telemetry/telemetry.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CACHE_LINE = 64 };

const double metrics_latency_buckets_s[14] = {.0005, .001, .0025, .005, .01, .025, .05,
                                              .1,    .25,  .5,    1,    2.5, 5,    10};

/* The handle behind struct metric_counter, metric_gauge and metric_histogram: those are only
 * ever pointers to this, converted through void * (see S()). */
struct metric_series {
    /* read-only after creation: the hot path reads these */
    uint32_t nshards;
    uint32_t nbounds;     /* histograms: finite bounds; the +Inf count sits at cells[nbounds] */
    const double *bounds; /* the family's */
    struct metric_family *fam;
    _Atomic uint64_t gauge_base; /* gauges: bits of the double set by metric_gauge_set */
    /* guarded by m->lock */
    bool is_retired;
    uint64_t hash;
    char *key; /* label values joined with 0xff (never valid UTF-8, so unambiguous) */
    size_t key_len;
    _Atomic uint64_t *cells[]; /* per shard: this series' first cell in that shard's block */
};

struct metric_family {
    struct metrics *m;
    char *name;
    char *help;
    enum metric_type type;
    bool is_internal; /* never rendered */
    char **label_names;
    size_t label_count;
    double *bounds;
    char **bound_text; /* "0.005": each bound formatted once */
    uint32_t nbounds;
    uint32_t ncells;               /* per series per shard */
    struct metric_series **series; /* creation order, retired ones included */
    size_t nseries, capseries;
    uint32_t *index;  /* open addressing: 1 + position in series, 0 = empty */
    size_t index_cap; /* power of two, or 0 */
};

struct metrics {
    pthread_mutex_t lock;
    uint32_t shards;
    uint32_t max_series;
    uint32_t series_count; /* all families, retired included */
    struct metric_family **fams;
    size_t nfams, capfams;
    /* shard blocks: raw allocations (for sh_free), and the current block of every shard */
    void **blocks;
    size_t nblocks, capblocks;
    _Atomic uint64_t **cur; /* shards entries; NULL until the first block */
    uint32_t cur_used;      /* cells handed out in the current blocks */
};

static struct metric_series *S(const void *handle)
{
    return (struct metric_series *)(uintptr_t)handle;
}

/* ---- small helpers ---- */

static bool is_name(const char *s, bool allow_colon)
{
    size_t i;

    if (!s || !s[0] || strlen(s) > METRICS_MAX_NAME_BYTES) return false;
    for (i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9') || (allow_colon && c == ':');
        if (!ok) return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool is_utf8(struct slice s)
{
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t i = 0, n = s.len;

    while (i < n) {
        unsigned c = p[i];
        size_t extra;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i <= extra) return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += extra + 1;
    }
    return true;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3u;
    }
    return h ^ (h >> 29);
}

/* Shortest "%.Ng" that reads back as v; "+Inf", "-Inf", "NaN" as Prometheus writes them.
 * Assumes the C locale (shoal never calls setlocale). */
static void format_double(double v, char *out, size_t n)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static inline void cell_add(_Atomic uint64_t *p, uint64_t n)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t cell_get(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline double bits_to_double(uint64_t bits)
{
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

/* ---- registry ---- */

int metrics_new(const struct metrics_config *cfg, struct metrics **out)
{
    struct metrics *m;
    uint32_t shards = cfg && cfg->shards ? cfg->shards : METRICS_DEFAULT_SHARDS;
    int rc;

    *out = NULL;
    if (shards > METRICS_MAX_SHARDS) return SH_EINVAL;
    m = sh_calloc(1, sizeof(*m));
    if (!m) return SH_ENOMEM;
    rc = pthread_mutex_init(&m->lock, NULL);
    if (rc != 0) {
        sh_free(m);
        return -rc;
    }
    m->shards = shards;
    m->max_series = cfg && cfg->max_series ? cfg->max_series : METRICS_DEFAULT_MAX_SERIES;
    m->cur_used = METRICS_CHUNK_CELLS; /* no current block: the first series allocates one */
    m->cur = sh_calloc(shards, sizeof(*m->cur));
    if (!m->cur) {
        metrics_free(m);
        return SH_ENOMEM;
    }
    *out = m;
    return 0;
}

static void family_free(struct metric_family *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->nseries; i++) {
        sh_free(f->series[i]->key);
        sh_free(f->series[i]);
    }
    sh_free(f->series);
    sh_free(f->index);
    for (size_t i = 0; f->label_names && i < f->label_count; i++)
        sh_free(f->label_names[i]);
    sh_free(f->label_names);
    for (size_t i = 0; f->bound_text && i < f->nbounds; i++)
        sh_free(f->bound_text[i]);
    sh_free(f->bound_text);
    sh_free(f->bounds);
    sh_free(f->name);
    sh_free(f->help);
    sh_free(f);
}

void metrics_free(struct metrics *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    sh_free(m->fams);
    for (size_t i = 0; i < m->nblocks; i++)
        sh_free(m->blocks[i]);
    sh_free(m->blocks);
    sh_free(m->cur);
    pthread_mutex_destroy(&m->lock);
    sh_free(m);
}

uint32_t metrics_shards(const struct metrics *m)
{
    return m->shards;
}

static int family_check(const struct metrics *m, const struct metric_family_config *cfg)
{
    if (!is_name(cfg->name, false) || !cfg->help || strlen(cfg->help) > METRICS_MAX_HELP_BYTES)
        return SH_EINVAL;
    if (cfg->type != METRIC_COUNTER && cfg->type != METRIC_GAUGE && cfg->type != METRIC_HISTOGRAM &&
        cfg->type != METRIC_SKETCH)
        return SH_EINVAL;
    /* promtool's lint: counters end in _total and nothing else does; a histogram's own series
     * end in _bucket/_sum/_count, which other families must then not claim. */
    if ((cfg->type == METRIC_COUNTER) != ends_with(cfg->name, "_total")) return SH_EINVAL;
    if (cfg->label_count > METRICS_MAX_LABELS || (cfg->label_count && !cfg->label_names))
        return SH_EINVAL;
    for (size_t i = 0; i < cfg->label_count; i++) {
        const char *l = cfg->label_names[i];
        if (!is_name(l, false) || strncmp(l, "__", 2) == 0) return SH_EINVAL;
        if (cfg->type == METRIC_HISTOGRAM && strcmp(l, "le") == 0) return SH_EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(l, cfg->label_names[j]) == 0) return SH_EINVAL;
        }
    }
    if (cfg->type == METRIC_HISTOGRAM && cfg->buckets) {
        if (cfg->bucket_count == 0 || cfg->bucket_count > METRICS_MAX_BUCKETS) return SH_EINVAL;
        for (size_t i = 0; i < cfg->bucket_count; i++) {
            if (!isfinite(cfg->buckets[i]) || (i > 0 && !(cfg->buckets[i] > cfg->buckets[i - 1])))
                return SH_EINVAL;
        }
    }
    for (size_t i = 0; i < m->nfams; i++) {
        if (strcmp(m->fams[i]->name, cfg->name) == 0) return SH_EEXIST;
    }
    return 0;
}

int metrics_family_add(struct metrics *m, const struct metric_family_config *cfg,
                       struct metric_family **out)
{
    struct metric_family *f = NULL;
    const double *bounds = metrics_latency_buckets_s;
    size_t nbounds = SH_ARRAY_LEN(metrics_latency_buckets_s);
    int rc;

    *out = NULL;
    pthread_mutex_lock(&m->lock);
    rc = family_check(m, cfg);
    if (rc < 0) goto fail;
    rc = SH_ENOMEM;
    if (sh_array_reserve(&m->fams, &m->capfams, m->nfams + 1, sizeof(*m->fams)) < 0) goto fail;
    f = sh_calloc(1, sizeof(*f));
    if (!f) goto fail;
    f->m = m;
    f->type = cfg->type;
    f->is_internal = cfg->is_internal || cfg->type == METRIC_SKETCH;
    f->name = sh_strdup(cfg->name);
    f->help = sh_strdup(cfg->help);
    if (!f->name || !f->help) goto fail;
    if (cfg->label_count) {
        f->label_names = sh_calloc(cfg->label_count, sizeof(*f->label_names));
        if (!f->label_names) goto fail;
        f->label_count = cfg->label_count;
        for (size_t i = 0; i < cfg->label_count; i++) {
            f->label_names[i] = sh_strdup(cfg->label_names[i]);
            if (!f->label_names[i]) goto fail;
        }
    }
    f->ncells = 1;
    if (cfg->type == METRIC_HISTOGRAM) {
        char text[40];

        if (cfg->buckets) {
            bounds = cfg->buckets;
            nbounds = cfg->bucket_count;
        }
        f->bounds = sh_calloc(nbounds, sizeof(*f->bounds));
        f->bound_text = sh_calloc(nbounds, sizeof(*f->bound_text));
        if (!f->bounds || !f->bound_text) goto fail;
        f->nbounds = (uint32_t)nbounds;
        for (size_t i = 0; i < nbounds; i++) {
            f->bounds[i] = bounds[i];
            format_double(bounds[i], text, sizeof(text));
            f->bound_text[i] = sh_strdup(text);
            if (!f->bound_text[i]) goto fail;
        }
        f->ncells = f->nbounds + 2; /* finite buckets, +Inf, sum */
    }
    if (cfg->type == METRIC_SKETCH) f->ncells = METRIC_SKETCH_BUCKETS;
    m->fams[m->nfams++] = f;
    pthread_mutex_unlock(&m->lock);
    *out = f;
    return 0;
fail:
    pthread_mutex_unlock(&m->lock);
    family_free(f);
    return rc;
}

/* ---- series ---- */

/* Makes sure the current blocks have room for n cells, allocating one block per shard if not.
 * On failure nothing changes. Under m->lock. */
static int reserve_cells(struct metrics *m, uint32_t n)
{
    const size_t bytes = (size_t)METRICS_CHUNK_CELLS * sizeof(uint64_t) + CACHE_LINE;
    size_t first = m->nblocks;

    assert(n <= METRICS_CHUNK_CELLS);
    if (m->cur_used + n <= METRICS_CHUNK_CELLS) return 0;
    if (sh_array_reserve(&m->blocks, &m->capblocks, m->nblocks + m->shards, sizeof(*m->blocks)) < 0)
        return SH_ENOMEM;
    for (uint32_t s = 0; s < m->shards; s++) {
        void *raw = sh_calloc(1, bytes);
        if (!raw) {
            while (m->nblocks > first)
                sh_free(m->blocks[--m->nblocks]);
            return SH_ENOMEM;
        }
        m->blocks[m->nblocks++] = raw;
    }
    /* Commit only once every shard has its block. The block's cells start on a cache line
     * boundary and fill whole lines (METRICS_CHUNK_CELLS * 8 is a multiple of 64), so no line
     * we write is shared with another allocation. */
    for (uint32_t s = 0; s < m->shards; s++) {
        uintptr_t p = (uintptr_t)m->blocks[first + s];
        p = (p + CACHE_LINE - 1) & ~(uintptr_t)(CACHE_LINE - 1);
        m->cur[s] = (_Atomic uint64_t *)p;
    }
    m->cur_used = 0;
    return 0;
}

static void index_insert(struct metric_family *f, const struct metric_series *s, uint32_t pos)
{
    size_t mask = f->index_cap - 1, i = (size_t)s->hash & mask;

    while (f->index[i])
        i = (i + 1) & mask;
    f->index[i] = pos + 1;
}

/* Keeps the index at most half full, so it can take one more series. Under m->lock. */
static int index_reserve(struct metric_family *f)
{
    size_t ncap;
    uint32_t *old = f->index;
    size_t old_cap = f->index_cap;

    if ((f->nseries + 1) * 2 <= f->index_cap) return 0;
    ncap = f->index_cap ? f->index_cap * 2 : 16;
    f->index = sh_calloc(ncap, sizeof(*f->index));
    if (!f->index) {
        f->index = old;
        return SH_ENOMEM;
    }
    f->index_cap = ncap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i]) index_insert(f, f->series[old[i] - 1], old[i] - 1);
    }
    sh_free(old);
    return 0;
}

static struct metric_series *index_find(struct metric_family *f, uint64_t hash, const char *key,
                                        size_t key_len)
{
    size_t mask, i;

    if (!f->index_cap) return NULL;
    mask = f->index_cap - 1;
    for (i = (size_t)hash & mask; f->index[i]; i = (i + 1) & mask) {
        struct metric_series *s = f->series[f->index[i] - 1];
        if (s->hash == hash && s->key_len == key_len && memcmp(s->key, key, key_len) == 0) return s;
    }
    return NULL;
}

static int series_get(struct metric_family *fam, enum metric_type type, const struct slice *values,
                      size_t count, struct metric_series **out)
{
    struct metrics *m = fam->m;
    struct metric_series *s = NULL;
    char *key = NULL;
    size_t key_len = 0;
    uint64_t hash;
    int rc = SH_EINVAL;

    *out = NULL;
    if (fam->type != type || count != fam->label_count || (count && !values)) return SH_EINVAL;
    for (size_t i = 0; i < count; i++) {
        if (values[i].len > METRICS_MAX_LABEL_VALUE_BYTES) return SH_ETOOBIG;
        if (values[i].len && !values[i].ptr) return SH_EINVAL;
        if (!is_utf8(values[i])) return SH_EINVAL;
        key_len += values[i].len + 1;
    }
    key = sh_malloc(key_len + 1);
    if (!key) return SH_ENOMEM;
    key_len = 0;
    for (size_t i = 0; i < count; i++) {
        if (values[i].len) memcpy(key + key_len, values[i].ptr, values[i].len);
        key_len += values[i].len;
        key[key_len++] = '\xff';
    }
    key[key_len] = '\0';
    hash = hash_bytes(key, key_len);

    pthread_mutex_lock(&m->lock);
    s = index_find(fam, hash, key, key_len);
    if (s) {
        s->is_retired = false;
        pthread_mutex_unlock(&m->lock);
        sh_free(key);
        *out = s;
        return 0;
    }
    if (m->series_count >= m->max_series) {
        rc = SH_ELIMIT;
        goto fail;
    }
    rc = SH_ENOMEM;
    if (sh_array_reserve(&fam->series, &fam->capseries, fam->nseries + 1, sizeof(*fam->series)) < 0)
        goto fail;
    if (index_reserve(fam) < 0 || reserve_cells(m, fam->ncells) < 0) goto fail;
    s = sh_calloc(1, sizeof(*s) + m->shards * sizeof(s->cells[0]));
    if (!s) goto fail;
    s->nshards = m->shards;
    s->nbounds = fam->nbounds;
    s->bounds = fam->bounds;
    s->fam = fam;
    atomic_init(&s->gauge_base, double_to_bits(0.0));
    s->hash = hash;
    s->key = key;
    s->key_len = key_len;
    for (uint32_t i = 0; i < m->shards; i++)
        s->cells[i] = m->cur[i] + m->cur_used;
    m->cur_used += fam->ncells;
    fam->series[fam->nseries] = s;
    index_insert(fam, s, (uint32_t)fam->nseries);
    fam->nseries++;
    m->series_count++;
    pthread_mutex_unlock(&m->lock);
    *out = s;
    return 0;
fail:
    pthread_mutex_unlock(&m->lock);
    sh_free(key);
    return rc;
}

int metric_counter_get(struct metric_family *fam, const struct slice *values, size_t count,
                       struct metric_counter **out)
{
    struct metric_series *s;
    int rc = series_get(fam, METRIC_COUNTER, values, count, &s);

    *out = (struct metric_counter *)(void *)s;
    return rc;
}

int metric_gauge_get(struct metric_family *fam, const struct slice *values, size_t count,
                     struct metric_gauge **out)
{
    struct metric_series *s;
    int rc = series_get(fam, METRIC_GAUGE, values, count, &s);

    *out = (struct metric_gauge *)(void *)s;
    return rc;
}

int metric_histogram_get(struct metric_family *fam, const struct slice *values, size_t count,
                         struct metric_histogram **out)
{
    struct metric_series *s;
    int rc = series_get(fam, METRIC_HISTOGRAM, values, count, &s);

    *out = (struct metric_histogram *)(void *)s;
    return rc;
}

int metric_sketch_get(struct metric_family *fam, const struct slice *values, size_t count,
                      struct metric_sketch **out)
{
    struct metric_series *s;
    int rc = series_get(fam, METRIC_SKETCH, values, count, &s);

    *out = (struct metric_sketch *)(void *)s;
    return rc;
}

static void series_retire(struct metric_series *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->fam->m->lock);
    s->is_retired = true;
    pthread_mutex_unlock(&s->fam->m->lock);
}

void metric_counter_retire(struct metric_counter *c)
{
    series_retire(S(c));
}

void metric_gauge_retire(struct metric_gauge *g)
{
    series_retire(S(g));
}

void metric_histogram_retire(struct metric_histogram *h)
{
    series_retire(S(h));
}

void metric_sketch_retire(struct metric_sketch *k)
{
    series_retire(S(k));
}

/* ---- hot path ---- */

void metric_counter_add(struct metric_counter *c, uint32_t shard, uint64_t n)
{
    struct metric_series *s = S(c);

    if (SH_NEVER(!s || shard >= s->nshards)) return;
    cell_add(s->cells[shard], n);
}

void metric_counter_inc(struct metric_counter *c, uint32_t shard)
{
    metric_counter_add(c, shard, 1);
}

void metric_gauge_add(struct metric_gauge *g, uint32_t shard, int64_t delta)
{
    struct metric_series *s = S(g);

    if (SH_NEVER(!s || shard >= s->nshards)) return;
    cell_add(s->cells[shard], (uint64_t)delta); /* two's complement: the sum wraps back */
}

void metric_gauge_set(struct metric_gauge *g, double value)
{
    struct metric_series *s = S(g);

    if (SH_NEVER(!s)) return;
    atomic_store_explicit(&s->gauge_base, double_to_bits(value), memory_order_relaxed);
}

void metric_histogram_observe(struct metric_histogram *h, uint32_t shard, double value)
{
    struct metric_series *s = S(h);
    _Atomic uint64_t *cells;
    uint32_t lo = 0, hi;

    if (SH_NEVER(!s || shard >= s->nshards) || isnan(value)) return;
    /* The first bound >= value; nbounds (the +Inf bucket) when there is none. */
    hi = s->nbounds;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->bounds[mid] < value)
            lo = mid + 1;
        else
            hi = mid;
    }
    cells = s->cells[shard];
    cell_add(&cells[lo], 1);
    atomic_store_explicit(&cells[s->nbounds + 1],
                          double_to_bits(bits_to_double(cell_get(&cells[s->nbounds + 1])) + value),
                          memory_order_relaxed);
}

/* ln(g) for g = (1 + a) / (1 - a), a = METRIC_SKETCH_ALPHA = 0.02: one log() per observation
 * instead of two. */
static const double sketch_ln_gamma = 0.040005334613699206; /* log(1.02 / 0.98) */

uint32_t metric_sketch_index(double value_s)
{
    double i;

    if (!(value_s > METRIC_SKETCH_MIN_S)) return 0; /* also NaN */
    i = ceil(log(value_s / METRIC_SKETCH_MIN_S) / sketch_ln_gamma);
    if (i < 1) return 1;
    if (i > METRIC_SKETCH_BUCKETS - 1) return METRIC_SKETCH_BUCKETS - 1;
    return (uint32_t)i;
}

double metric_sketch_value(uint32_t index)
{
    const double g = (1 + METRIC_SKETCH_ALPHA) / (1 - METRIC_SKETCH_ALPHA);

    if (index == 0) return METRIC_SKETCH_MIN_S;
    if (index > METRIC_SKETCH_BUCKETS - 1) index = METRIC_SKETCH_BUCKETS - 1;
    return METRIC_SKETCH_MIN_S * exp((double)index * sketch_ln_gamma) * 2.0 / (g + 1.0);
}

void metric_sketch_observe(struct metric_sketch *k, uint32_t shard, double value_s)
{
    struct metric_series *s = S(k);

    if (SH_NEVER(!s || shard >= s->nshards) || isnan(value_s) || value_s < 0) return;
    cell_add(&s->cells[shard][metric_sketch_index(value_s)], 1);
}

void metric_sketch_read(struct metric_sketch *k, uint64_t *counts)
{
    struct metric_series *s = S(k);

    memset(counts, 0, METRIC_SKETCH_BUCKETS * sizeof(*counts));
    for (uint32_t i = 0; i < s->nshards; i++) {
        _Atomic uint64_t *cells = s->cells[i];
        for (uint32_t b = 0; b < METRIC_SKETCH_BUCKETS; b++)
            counts[b] += cell_get(&cells[b]);
    }
}

double metric_sketch_quantile(const uint64_t *counts, double q, uint64_t *total)
{
    uint64_t n = 0, rank, acc = 0;

    for (uint32_t b = 0; b < METRIC_SKETCH_BUCKETS; b++)
        n += counts[b];
    if (total) *total = n;
    if (n == 0) return NAN;
    if (!(q > 0)) q = 0;
    if (q > 1) q = 1;
    rank = (uint64_t)(q * (double)(n - 1));
    for (uint32_t b = 0; b < METRIC_SKETCH_BUCKETS; b++) {
        acc += counts[b];
        if (acc > rank) return metric_sketch_value(b);
    }
    return metric_sketch_value(METRIC_SKETCH_BUCKETS - 1);
}

size_t metric_sketch_series_bytes(const struct metrics *m)
{
    return (size_t)m->shards * METRIC_SKETCH_BUCKETS * sizeof(uint64_t);
}

/* ---- reading ---- */

uint64_t metric_counter_read(struct metric_counter *c)
{
    struct metric_series *s = S(c);
    uint64_t sum = 0;

    for (uint32_t i = 0; i < s->nshards; i++)
        sum += cell_get(s->cells[i]);
    return sum;
}

double metric_gauge_read(struct metric_gauge *g)
{
    struct metric_series *s = S(g);
    uint64_t sum = 0;

    for (uint32_t i = 0; i < s->nshards; i++)
        sum += cell_get(s->cells[i]);
    return bits_to_double(atomic_load_explicit(&s->gauge_base, memory_order_relaxed)) +
           (double)(int64_t)sum;
}

/* counts[0..nbounds] get the per-bucket (not cumulative) counts summed over shards. */
static double histogram_sum_shards(const struct metric_series *s, uint64_t *counts)
{
    double sum = 0;

    memset(counts, 0, (s->nbounds + 1) * sizeof(*counts));
    for (uint32_t i = 0; i < s->nshards; i++) {
        _Atomic uint64_t *cells = s->cells[i];
        for (uint32_t b = 0; b <= s->nbounds; b++)
            counts[b] += cell_get(&cells[b]);
        sum += bits_to_double(cell_get(&cells[s->nbounds + 1]));
    }
    return sum;
}

void metric_histogram_read(struct metric_histogram *h, uint64_t *cumulative, size_t n, double *sum,
                           uint64_t *count)
{
    struct metric_series *s = S(h);
    uint64_t counts[METRICS_MAX_BUCKETS + 1], acc = 0;
    double total = histogram_sum_shards(s, counts);

    for (uint32_t b = 0; b <= s->nbounds; b++) {
        acc += counts[b];
        if (b < n) cumulative[b] = acc;
    }
    if (sum) *sum = total;
    if (count) *count = acc;
}

/* ---- exposition ---- */

static void append_escaped(struct buf *out, const char *p, size_t n, bool is_label_value)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        if (p[i] == '\\')
            rep = "\\\\";
        else if (p[i] == '\n')
            rep = "\\n";
        else if (p[i] == '"' && is_label_value)
            rep = "\\\"";
        if (!rep) continue;
        buf_append(out, p + start, i - start);
        buf_append(out, rep, 2);
        start = i + 1;
    }
    buf_append(out, p + start, n - start);
}

/* Writes name{l1="v1",...[,le="x"]} (no braces when there is nothing inside). */
static void append_series_name(struct buf *out, const struct metric_family *f,
                               const struct metric_series *s, const char *suffix, const char *le)
{
    const char *v = s->key;

    buf_appendf(out, "%s%s", f->name, suffix);
    if (f->label_count == 0 && !le) return;
    buf_appendc(out, '{');
    for (size_t i = 0; i < f->label_count; i++) {
        const char *end = memchr(v, '\xff', s->key_len - (size_t)(v - s->key));
        assert(end);
        buf_appendf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
        append_escaped(out, v, (size_t)(end - v), true);
        buf_appendc(out, '"');
        v = end + 1;
    }
    if (le) buf_appendf(out, "%sle=\"%s\"", f->label_count ? "," : "", le);
    buf_appendc(out, '}');
}

static void render_series(struct buf *out, const struct metric_family *f,
                          const struct metric_series *s)
{
    char num[40];

    if (f->type == METRIC_COUNTER) {
        append_series_name(out, f, s, "", NULL);
        buf_appendf(out, " %" PRIu64 "\n", metric_counter_read((struct metric_counter *)(void *)s));
    } else if (f->type == METRIC_GAUGE) {
        format_double(metric_gauge_read((struct metric_gauge *)(void *)s), num, sizeof(num));
        append_series_name(out, f, s, "", NULL);
        buf_appendf(out, " %s\n", num);
    } else {
        uint64_t counts[METRICS_MAX_BUCKETS + 1], acc = 0;
        double sum = histogram_sum_shards(s, counts);

        for (uint32_t b = 0; b <= s->nbounds; b++) {
            acc += counts[b];
            append_series_name(out, f, s, "_bucket", b < s->nbounds ? f->bound_text[b] : "+Inf");
            buf_appendf(out, " %" PRIu64 "\n", acc);
        }
        format_double(sum, num, sizeof(num));
        append_series_name(out, f, s, "_sum", NULL);
        buf_appendf(out, " %s\n", num);
        append_series_name(out, f, s, "_count", NULL);
        buf_appendf(out, " %" PRIu64 "\n", acc);
    }
}

static const char *const type_names[] = {
    [METRIC_COUNTER] = "counter",
    [METRIC_GAUGE] = "gauge",
    [METRIC_HISTOGRAM] = "histogram",
    [METRIC_SKETCH] = "untyped", /* never rendered */
};

int metrics_render(struct metrics *m, struct buf *out)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nfams && !out->err; i++) {
        const struct metric_family *f = m->fams[i];
        bool has_live = false;

        if (f->is_internal) continue;
        for (size_t k = 0; k < f->nseries && !has_live; k++)
            has_live = !f->series[k]->is_retired;
        if (!has_live) continue;
        buf_appendf(out, "# HELP %s ", f->name);
        append_escaped(out, f->help, strlen(f->help), false);
        buf_appendf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (size_t k = 0; k < f->nseries && !out->err; k++) {
            if (!f->series[k]->is_retired) render_series(out, f, f->series[k]);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return out->err;
}
