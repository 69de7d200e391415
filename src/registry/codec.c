/* SPDX-License-Identifier: MIT */
/* codec.c: the field rules of a registration, deep copies with defaults applied, and the
 * stored form of an instance.
 *
 * Stored form (a store value): "R1" followed by fields, each written as <decimal length> ':'
 * <bytes>, in the fixed order of the table below; tags and metadata are a count field and
 * then that many strings (key, value for metadata). Length-prefixed, so any byte may appear in
 * a metadata value without escaping, and a truncated or foreign value is rejected.
 * Thread: any (pure functions). */
#include "registry/registry_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

enum { DEFAULT_TIMEOUT_MS = 10000 };

/* ------------------------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------------------------ */
static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool registry__valid_service(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > REGISTRY_MAX_SERVICE_BYTES || name[0] == '-' || name[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

static bool valid_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > REGISTRY_MAX_ID_BYTES || !is_alnum(id[0])) return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(id[i]) && id[i] != '.' && id[i] != '_' && id[i] != '-') return false;
    }
    return true;
}

/* Printable ASCII without spaces (version, node); or with spaces (tags, when is_space_ok). */
static bool valid_text(const char *s, bool is_space_ok)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || (c == ' ' && !is_space_ok)) return false;
    }
    return true;
}

static bool valid_hostname(const char *s)
{
    size_t n = strlen(s), label = 0;

    if (n == 0 || n > REGISTRY_MAX_ADDRESS_BYTES) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        if (!is_alnum(c) && c != '-') return false;
        if (c == '-' && label == 0) return false;
        if (++label > 63) return false;
    }
    return s[n - 1] != '-';
}

static bool valid_address(const char *s)
{
    unsigned char tmp[16];

    if (inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1) return true;
    return valid_hostname(s);
}

static int bad(struct sh_diag *d, int rc, const char *field, const char *what)
{
    sh_diag_set(d, field, "%s: %s", field, what);
    return rc;
}

static int validate_check(const struct registry *reg, const struct registry_check *c,
                          struct sh_diag *d)
{
    char lim[64];

    snprintf(lim, sizeof(lim), "must be at least %u ms", reg->min_interval_ms);
    switch (c->kind) {
    case REGISTRY_CHECK_NONE:
        break;
    case REGISTRY_CHECK_TTL:
        if (c->ttl_ms < reg->min_interval_ms) return bad(d, SH_EINVAL, "check.ttl", lim);
        break;
    case REGISTRY_CHECK_HTTP:
        if (!reg->client)
            return bad(d, SH_ENOTSUP, "check.kind", "HTTP checks need an HTTP client");
        if (c->path) {
            size_t n = strlen(c->path);
            if (n > REGISTRY_MAX_PATH_BYTES)
                return bad(d, SH_ETOOBIG, "check.path", "longer than 1024 bytes");
            if (c->path[0] != '/' || !valid_text(c->path, false))
                return bad(d, SH_EINVAL, "check.path",
                           "must start with '/' and hold no spaces or control bytes");
        }
        if (c->expect_status != 0 && (c->expect_status < 100 || c->expect_status > 599))
            return bad(d, SH_EINVAL, "check.expect_status", "must be 0 or 100..599");
        /* fall through */
    case REGISTRY_CHECK_TCP:
        if (c->interval_ms < reg->min_interval_ms) return bad(d, SH_EINVAL, "check.interval", lim);
        break;
    default:
        return bad(d, SH_EINVAL, "check.kind", "must be none, ttl, http or tcp");
    }
    if (c->kind != REGISTRY_CHECK_HTTP && (c->path || c->expect_status))
        return bad(d, SH_EINVAL, "check.path", "only HTTP checks have a path and status");
    if (c->kind != REGISTRY_CHECK_TTL && c->ttl_ms)
        return bad(d, SH_EINVAL, "check.ttl", "only TTL checks have a TTL");
    if ((c->kind == REGISTRY_CHECK_TTL || c->kind == REGISTRY_CHECK_NONE) &&
        (c->interval_ms || c->timeout_ms))
        return bad(d, SH_EINVAL, "check.interval", "only HTTP and TCP checks run on an interval");
    if (c->failures_before_critical > REGISTRY_MAX_THRESHOLD)
        return bad(d, SH_EINVAL, "check.failures_before_critical", "must be 0..100");
    if (c->successes_before_passing > REGISTRY_MAX_THRESHOLD)
        return bad(d, SH_EINVAL, "check.successes_before_passing", "must be 0..100");
    if (c->deregister_after_ms && c->deregister_after_ms < reg->min_deregister_after_ms) {
        snprintf(lim, sizeof(lim), "must be 0 or at least %u ms", reg->min_deregister_after_ms);
        return bad(d, SH_EINVAL, "check.deregister_after", lim);
    }
    return 0;
}

int registry__validate(const struct registry *reg, const struct registry_instance *in,
                       struct sh_diag *d)
{
    if (!in->id || !*in->id) return bad(d, SH_EINVAL, "id", "required");
    if (strlen(in->id) > REGISTRY_MAX_ID_BYTES)
        return bad(d, SH_ETOOBIG, "id", "longer than 128 bytes");
    if (!valid_id(in->id))
        return bad(d, SH_EINVAL, "id",
                   "use letters, digits, '.', '_' and '-', starting with a letter or digit");
    if (!in->service || !*in->service) return bad(d, SH_EINVAL, "service", "required");
    if (!registry__valid_service(in->service))
        return bad(d, SH_EINVAL, "service",
                   "must be a DNS label: 1..63 of a-z, 0-9 and '-', not starting or ending "
                   "with '-'");
    if (in->version &&
        (strlen(in->version) > REGISTRY_MAX_NAME_BYTES || !valid_text(in->version, false)))
        return bad(d, SH_EINVAL, "version", "up to 64 printable bytes without spaces");
    if (!in->address || !*in->address) return bad(d, SH_EINVAL, "address", "required");
    if (!valid_address(in->address))
        return bad(d, SH_EINVAL, "address", "must be a numeric IPv4/IPv6 address or a hostname");
    if (in->port < 1 || in->port > 65535) return bad(d, SH_EINVAL, "port", "must be 1..65535");
    if (in->node && *in->node && !valid_hostname(in->node))
        return bad(d, SH_EINVAL, "node", "must be a hostname-like name");
    if (in->node && strlen(in->node) > REGISTRY_MAX_NAME_BYTES)
        return bad(d, SH_ETOOBIG, "node", "longer than 64 bytes");
    if (in->weight > REGISTRY_MAX_WEIGHT)
        return bad(d, SH_EINVAL, "weight", "must be 0..10000 (0 means 1)");
    if (in->tag_count > REGISTRY_MAX_TAGS) return bad(d, SH_ETOOBIG, "tags", "more than 64 tags");
    if (in->tag_count && !in->tags) return bad(d, SH_EINVAL, "tags", "tag_count without tags");
    for (size_t i = 0; i < in->tag_count; i++) {
        char field[32];
        const char *t = in->tags[i];
        snprintf(field, sizeof(field), "tags[%zu]", i);
        if (!t || !*t) return bad(d, SH_EINVAL, field, "empty tag");
        if (strlen(t) > REGISTRY_MAX_TAG_BYTES)
            return bad(d, SH_ETOOBIG, field, "longer than 128 bytes");
        if (!valid_text(t, true)) return bad(d, SH_EINVAL, field, "control bytes are not allowed");
    }
    if (in->meta_count > REGISTRY_MAX_META) return bad(d, SH_ETOOBIG, "meta", "more than 64 keys");
    if (in->meta_count && !in->meta) return bad(d, SH_EINVAL, "meta", "meta_count without meta");
    for (size_t i = 0; i < in->meta_count; i++) {
        char field[REGISTRY_MAX_META_KEY_BYTES + 16];
        const char *k = in->meta[i].key, *v = in->meta[i].value;
        size_t kn = k ? strlen(k) : 0;

        snprintf(field, sizeof(field), "meta[%zu]", i);
        if (kn == 0) return bad(d, SH_EINVAL, field, "empty key");
        if (kn > REGISTRY_MAX_META_KEY_BYTES)
            return bad(d, SH_ETOOBIG, field, "key longer than 128 bytes");
        for (size_t j = 0; j < kn; j++) {
            if (!is_alnum(k[j]) && k[j] != '_' && k[j] != '-')
                return bad(d, SH_EINVAL, field, "keys use letters, digits, '_' and '-'");
        }
        snprintf(field, sizeof(field), "meta.%s", k);
        if (!v) return bad(d, SH_EINVAL, field, "missing value");
        if (strlen(v) > REGISTRY_MAX_META_VALUE_BYTES)
            return bad(d, SH_ETOOBIG, field, "value longer than 512 bytes");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(in->meta[j].key, k) == 0) return bad(d, SH_EINVAL, field, "duplicate key");
        }
    }
    if (in->status > REGISTRY_CRITICAL)
        return bad(d, SH_EINVAL, "status", "must be passing, warning or critical");
    return validate_check(reg, &in->check, d);
}

bool registry__check_equal(const struct registry_check *a, const struct registry_check *b)
{
    return a->kind == b->kind && strcmp(a->path ? a->path : "", b->path ? b->path : "") == 0 &&
           a->expect_status == b->expect_status && a->interval_ms == b->interval_ms &&
           a->timeout_ms == b->timeout_ms && a->ttl_ms == b->ttl_ms &&
           a->failures_before_critical == b->failures_before_critical &&
           a->successes_before_passing == b->successes_before_passing &&
           a->deregister_after_ms == b->deregister_after_ms;
}

/* ------------------------------------------------------------------------------------------
 * Deep copies
 * ------------------------------------------------------------------------------------------ */
static const char *copy_str(struct arena *a, const char *s, bool *is_oom)
{
    char *p;

    if (!s) s = "";
    p = arena_strndup(a, s, strlen(s));
    if (!p) *is_oom = true;
    return p ? p : "";
}

int registry__copy(struct arena *a, const struct registry_instance *src,
                   struct registry_instance *dst)
{
    bool is_oom = false;
    struct registry_check *c = &dst->check;

    memset(dst, 0, sizeof(*dst));
    dst->id = copy_str(a, src->id, &is_oom);
    dst->service = copy_str(a, src->service, &is_oom);
    dst->version = copy_str(a, src->version, &is_oom);
    dst->address = copy_str(a, src->address, &is_oom);
    dst->port = src->port;
    dst->node = copy_str(a, src->node, &is_oom);
    dst->weight = src->weight ? src->weight : 1;
    dst->status = src->status;
    dst->note = copy_str(a, src->note, &is_oom);
    dst->registered_ms = src->registered_ms;
    if (src->tag_count) {
        const char **tags = arena_alloc(a, src->tag_count * sizeof(*tags));
        if (!tags) return SH_ENOMEM;
        for (size_t i = 0; i < src->tag_count; i++)
            tags[i] = copy_str(a, src->tags[i], &is_oom);
        dst->tags = tags;
        dst->tag_count = src->tag_count;
    }
    if (src->meta_count) {
        struct registry_meta *m = arena_alloc(a, src->meta_count * sizeof(*m));
        if (!m) return SH_ENOMEM;
        for (size_t i = 0; i < src->meta_count; i++) {
            m[i].key = copy_str(a, src->meta[i].key, &is_oom);
            m[i].value = copy_str(a, src->meta[i].value, &is_oom);
        }
        dst->meta = m;
        dst->meta_count = src->meta_count;
    }
    *c = src->check;
    c->path = NULL;
    if (c->kind == REGISTRY_CHECK_HTTP)
        c->path = copy_str(a, src->check.path ? src->check.path : "/health", &is_oom);
    if ((c->kind == REGISTRY_CHECK_HTTP || c->kind == REGISTRY_CHECK_TCP) && !c->timeout_ms)
        c->timeout_ms = SH_MIN(DEFAULT_TIMEOUT_MS, c->interval_ms);
    if (c->kind != REGISTRY_CHECK_NONE) {
        if (!c->failures_before_critical) c->failures_before_critical = 1;
        if (!c->successes_before_passing) c->successes_before_passing = 1;
    }
    return is_oom ? SH_ENOMEM : 0;
}

/* ------------------------------------------------------------------------------------------
 * Stored form
 * ------------------------------------------------------------------------------------------ */
static void put_str(struct buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    buf_append_u64(b, n);
    buf_appendc(b, ':');
    buf_append(b, s ? s : "", n);
}

static void put_num(struct buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);

    buf_append_u64(b, (uint64_t)n);
    buf_appendc(b, ':');
    buf_append(b, tmp, (size_t)n);
}

int registry__encode(const struct registry_instance *in, struct buf *out)
{
    const struct registry_check *c = &in->check;

    buf_append(out, "R1", 2);
    put_str(out, in->id);
    put_str(out, in->service);
    put_str(out, in->version);
    put_str(out, in->address);
    put_num(out, in->port);
    put_str(out, in->node);
    put_num(out, in->weight);
    put_num(out, (uint64_t)in->status);
    put_num(out, in->registered_ms);
    put_num(out, (uint64_t)c->kind);
    put_str(out, c->path);
    put_num(out, c->expect_status);
    put_num(out, c->interval_ms);
    put_num(out, c->timeout_ms);
    put_num(out, c->ttl_ms);
    put_num(out, c->failures_before_critical);
    put_num(out, c->successes_before_passing);
    put_num(out, c->deregister_after_ms);
    put_num(out, in->tag_count);
    for (size_t i = 0; i < in->tag_count; i++)
        put_str(out, in->tags[i]);
    put_num(out, in->meta_count);
    for (size_t i = 0; i < in->meta_count; i++) {
        put_str(out, in->meta[i].key);
        put_str(out, in->meta[i].value);
    }
    return out->err;
}

struct reader {
    struct slice s;
    struct arena *a;
    int err;
};

static struct slice get_field(struct reader *r)
{
    uint64_t n = 0;
    size_t i = 0;

    if (r->err) return SLICE_NULL;
    while (i < r->s.len && r->s.ptr[i] >= '0' && r->s.ptr[i] <= '9' && i < 8) {
        n = n * 10 + (uint64_t)(r->s.ptr[i] - '0');
        i++;
    }
    if (i == 0 || i >= r->s.len || r->s.ptr[i] != ':' || n > r->s.len - i - 1) {
        r->err = SH_ECORRUPT;
        return SLICE_NULL;
    }
    struct slice f = {.ptr = r->s.ptr + i + 1, .len = (size_t)n};
    r->s.ptr += i + 1 + n;
    r->s.len -= i + 1 + n;
    return f;
}

static const char *get_str(struct reader *r)
{
    struct slice f = get_field(r);
    char *p;

    if (r->err) return "";
    if (memchr(f.ptr, '\0', f.len)) {
        r->err = SH_ECORRUPT;
        return "";
    }
    p = arena_strndup(r->a, f.ptr, f.len);
    if (!p) {
        r->err = SH_ENOMEM;
        return "";
    }
    return p;
}

static uint64_t get_num(struct reader *r, uint64_t max)
{
    struct slice f = get_field(r);
    uint64_t v = 0;

    if (r->err) return 0;
    if (slice_to_u64(f, &v) != 0 || v > max) {
        r->err = SH_ECORRUPT;
        return 0;
    }
    return v;
}

int registry__decode(struct slice enc, struct arena *a, struct registry_instance *out)
{
    struct reader r = {.s = enc, .a = a};
    struct registry_check *c = &out->check;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (enc.len < 2 || memcmp(enc.ptr, "R1", 2) != 0) return SH_ECORRUPT;
    r.s.ptr += 2;
    r.s.len -= 2;
    out->id = get_str(&r);
    out->service = get_str(&r);
    out->version = get_str(&r);
    out->address = get_str(&r);
    out->port = (uint32_t)get_num(&r, 65535);
    out->node = get_str(&r);
    out->weight = (uint32_t)get_num(&r, REGISTRY_MAX_WEIGHT);
    out->status = (enum registry_health)get_num(&r, REGISTRY_CRITICAL);
    out->registered_ms = get_num(&r, UINT64_MAX);
    out->note = "";
    c->kind = (enum registry_check_kind)get_num(&r, REGISTRY_CHECK_TCP);
    c->path = get_str(&r);
    if (c->kind != REGISTRY_CHECK_HTTP) c->path = NULL;
    c->expect_status = (uint32_t)get_num(&r, 599);
    c->interval_ms = (uint32_t)get_num(&r, UINT32_MAX);
    c->timeout_ms = (uint32_t)get_num(&r, UINT32_MAX);
    c->ttl_ms = (uint32_t)get_num(&r, UINT32_MAX);
    c->failures_before_critical = (uint32_t)get_num(&r, REGISTRY_MAX_THRESHOLD);
    c->successes_before_passing = (uint32_t)get_num(&r, REGISTRY_MAX_THRESHOLD);
    c->deregister_after_ms = (uint32_t)get_num(&r, UINT32_MAX);
    n = (size_t)get_num(&r, REGISTRY_MAX_TAGS);
    if (!r.err && n) {
        const char **tags = arena_alloc(a, n * sizeof(*tags));
        if (!tags) return SH_ENOMEM;
        for (size_t i = 0; i < n; i++)
            tags[i] = get_str(&r);
        out->tags = tags;
        out->tag_count = n;
    }
    n = (size_t)get_num(&r, REGISTRY_MAX_META);
    if (!r.err && n) {
        struct registry_meta *m = arena_alloc(a, n * sizeof(*m));
        if (!m) return SH_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            m[i].key = get_str(&r);
            m[i].value = get_str(&r);
        }
        out->meta = m;
        out->meta_count = n;
    }
    if (!r.err && r.s.len != 0) r.err = SH_ECORRUPT;
    if (!r.err && out->status == REGISTRY_HEALTH_DEFAULT) r.err = SH_ECORRUPT;
    return r.err;
}
