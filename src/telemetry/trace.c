/* SPDX-License-Identifier: MIT */
/* trace.c: W3C trace context (traceparent parse/format, tracestate pass-through with the
 * spec's limits), id generation from a per-thread xoshiro256** generator, X-Request-Id.
 * Nothing here allocates; every function works on slices and caller buffers.
 * Threads: any; a struct trace_rng belongs to one thread at a time. */
#include "telemetry/telemetry.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char hex_digits[] = "0123456789abcdef";

/* ---- generator ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void trace_rng_seed(struct trace_rng *rng, uint64_t seed)
{
    /* splitmix64 spreads any seed (even 0) over the whole state, never all zero in practice. */
    for (size_t i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

void trace_rng_init(struct trace_rng *rng)
{
    uint64_t seed[4];
    ssize_t n = getrandom(seed, sizeof(seed), GRND_NONBLOCK);

    if (n == (ssize_t)sizeof(seed) && (seed[0] | seed[1] | seed[2] | seed[3]) != 0) {
        memcpy(rng->s, seed, sizeof(seed));
        return;
    }
    /* No entropy from the kernel: mix what differs between threads and runs. */
    {
        struct timespec rt = {0}, mono = {0};
        uint64_t x;

        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_MONOTONIC, &mono);
        x = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
        x ^= rotl((uint64_t)mono.tv_nsec, 32) ^ ((uint64_t)gettid() << 17);
        x ^= (uint64_t)(uintptr_t)rng ^ rotl((uint64_t)(uintptr_t)&x, 23);
        trace_rng_seed(rng, x);
    }
}

uint64_t trace_rng_next(struct trace_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void fill_random(struct trace_rng *rng, uint8_t *out, size_t n)
{
    while (n > 0) {
        uint64_t r = trace_rng_next(rng);
        size_t k = n < 8 ? n : 8;
        memcpy(out, &r, k);
        out += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

void trace_id_generate(struct trace_rng *rng, uint8_t out[TRACE_ID_BYTES])
{
    do {
        fill_random(rng, out, TRACE_ID_BYTES);
    } while (all_zero(out, TRACE_ID_BYTES));
}

void trace_span_id_generate(struct trace_rng *rng, uint8_t out[TRACE_SPAN_ID_BYTES])
{
    do {
        fill_random(rng, out, TRACE_SPAN_ID_BYTES);
    } while (all_zero(out, TRACE_SPAN_ID_BYTES));
}

void trace_context_new_root(struct trace_rng *rng, uint8_t flags, struct trace_context *out)
{
    trace_id_generate(rng, out->trace_id);
    trace_span_id_generate(rng, out->span_id);
    out->flags = flags;
    out->version = 0;
}

void trace_context_child(const struct trace_context *parent, struct trace_rng *rng,
                         struct trace_context *out)
{
    uint8_t flags = parent->flags & TRACE_F_SAMPLED;

    memmove(out->trace_id, parent->trace_id, TRACE_ID_BYTES); /* out may be parent */
    trace_span_id_generate(rng, out->span_id);
    out->flags = flags;
    out->version = 0;
}

static char *put_hex(char *p, const uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *p++ = hex_digits[bytes[i] >> 4];
        *p++ = hex_digits[bytes[i] & 15];
    }
    return p;
}

size_t trace_request_id(struct trace_rng *rng, char *out, size_t out_len)
{
    uint8_t b[16];
    char *p = out;

    if (out_len < TRACE_REQUEST_ID_LEN + 1) return 0;
    fill_random(rng, b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10xx (RFC 4122) */
    p = put_hex(p, b, 4);
    *p++ = '-';
    p = put_hex(p, b + 4, 2);
    *p++ = '-';
    p = put_hex(p, b + 6, 2);
    *p++ = '-';
    p = put_hex(p, b + 8, 2);
    *p++ = '-';
    p = put_hex(p, b + 10, 6);
    *p = '\0';
    return TRACE_REQUEST_ID_LEN;
}

/* ---- traceparent ---- */

/* Lowercase hex only (the spec's HEXDIGLC); -1 otherwise. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static bool parse_hex(const char *p, uint8_t *out, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* Layout of the version 00 fields (and the first 55 bytes of any later version):
 *   0  version (2)  2 '-'  3 trace-id (32)  35 '-'  36 parent-id (16)  52 '-'  53 flags (2) */
int trace_context_parse(struct slice value, struct trace_context *out)
{
    struct slice v = slice_trim(value);
    const char *p = v.ptr;
    struct trace_context tc;

    memset(out, 0, sizeof(*out));
    if (v.len < TRACE_PARENT_LEN) return SH_EPARSE;
    if (!parse_hex(p, &tc.version, 1) || p[2] != '-' || tc.version == 0xff) return SH_EPARSE;
    if (tc.version == 0 && v.len != TRACE_PARENT_LEN) return SH_EPARSE;
    if (v.len > TRACE_PARENT_LEN && p[TRACE_PARENT_LEN] != '-') return SH_EPARSE;
    if (!parse_hex(p + 3, tc.trace_id, TRACE_ID_BYTES) || p[35] != '-' ||
        !parse_hex(p + 36, tc.span_id, TRACE_SPAN_ID_BYTES) || p[52] != '-' ||
        !parse_hex(p + 53, &tc.flags, 1))
        return SH_EPARSE;
    if (all_zero(tc.trace_id, TRACE_ID_BYTES) || all_zero(tc.span_id, TRACE_SPAN_ID_BYTES))
        return SH_EPARSE;
    *out = tc;
    return 0;
}

size_t trace_context_format(const struct trace_context *tc, char *out, size_t out_len)
{
    char *p = out;

    if (out_len < TRACE_PARENT_LEN + 1) return 0;
    *p++ = '0';
    *p++ = '0';
    *p++ = '-';
    p = put_hex(p, tc->trace_id, TRACE_ID_BYTES);
    *p++ = '-';
    p = put_hex(p, tc->span_id, TRACE_SPAN_ID_BYTES);
    *p++ = '-';
    p = put_hex(p, &tc->flags, 1);
    *p = '\0';
    return TRACE_PARENT_LEN;
}

/* ---- tracestate ---- */

enum { KEY_MAX = 256, VALUE_MAX = 256, LONG_MEMBER = 128 };

struct member {
    struct slice text; /* "key=value" */
    size_t key_len;
};

static bool is_key(struct slice k)
{
    if (k.len == 0 || k.len > KEY_MAX) return false;
    for (size_t i = 0; i < k.len; i++) {
        char c = k.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '_' || c == '-' || c == '*' || c == '/' || c == '@'));
        if (!ok) return false;
    }
    return true;
}

static bool is_value(struct slice v)
{
    if (v.len == 0 || v.len > VALUE_MAX || v.ptr[v.len - 1] == ' ') return false;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.ptr[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
    }
    return true;
}

/* Splits "key=value" and checks both; the key's length goes to *key_len. */
static bool parse_member(struct slice m, size_t *key_len)
{
    struct slice key, value = slice_split(m, '=', &key);

    if (!value.ptr || !is_key(key) || !is_value(value)) return false;
    *key_len = key.len;
    return true;
}

static bool same_key(const struct member *a, struct slice key)
{
    return a->key_len == key.len && memcmp(a->text.ptr, key.ptr, key.len) == 0;
}

int trace_state_build(struct slice in, struct slice own_key, struct slice own_value, char *out,
                      size_t out_len, size_t *out_used)
{
    struct member mem[TRACE_STATE_MAX_MEMBERS + 1]; /* [0] is ours when has_own */
    size_t n = 0, first, total = 0, pos = 0;
    bool has_own = own_key.len > 0;
    struct slice rest = in;

    *out_used = 0;
    if (has_own) {
        if (!is_key(own_key) || !is_value(own_value) ||
            own_key.len + 1 + own_value.len > TRACE_STATE_MAX_BYTES)
            return SH_EINVAL;
        mem[n].text = SLICE_NULL; /* written from own_key/own_value below */
        mem[n].key_len = own_key.len;
        n++;
    }
    first = n;
    while (rest.ptr) {
        struct slice item;
        size_t key_len;

        rest = slice_split(rest, ',', &item);
        item = slice_trim(item);
        if (item.len == 0) continue;
        if (!parse_member(item, &key_len)) return SH_EPARSE;
        if (n - first == TRACE_STATE_MAX_MEMBERS)
            return SH_EPARSE; /* more than 32 members: the header is invalid */
        for (size_t i = first; i < n; i++) {
            if (same_key(&mem[i], (struct slice){item.ptr, key_len})) return SH_EPARSE;
        }
        mem[n].text = item;
        mem[n].key_len = key_len;
        n++;
    }
    /* Our entry replaces the received one with the same key, moved to the left. */
    if (has_own) {
        for (size_t i = first; i < n; i++) {
            if (same_key(&mem[i], own_key)) {
                memmove(&mem[i], &mem[i + 1], (n - i - 1) * sizeof(mem[0]));
                n--;
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        total += (i ? 1 : 0) + (i < first ? own_key.len + 1 + own_value.len : mem[i].text.len);
    /* Truncate whole members: long ones (right-most first), then from the right. */
    while (n > TRACE_STATE_MAX_MEMBERS || total > TRACE_STATE_MAX_BYTES) {
        size_t victim = n - 1;

        for (size_t i = n; i-- > first;) {
            if (mem[i].text.len > LONG_MEMBER) {
                victim = i;
                break;
            }
        }
        if (victim < first) break; /* only ours is left, and it fits (checked above) */
        total -= mem[victim].text.len + (n > 1 ? 1 : 0);
        memmove(&mem[victim], &mem[victim + 1], (n - victim - 1) * sizeof(mem[0]));
        n--;
    }
    if (n == 0) {
        if (out_len) out[0] = '\0';
        return 0;
    }
    if (total + 1 > out_len) return SH_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        if (i) out[pos++] = ',';
        if (i < first) {
            memcpy(out + pos, own_key.ptr, own_key.len);
            pos += own_key.len;
            out[pos++] = '=';
            memcpy(out + pos, own_value.ptr, own_value.len);
            pos += own_value.len;
        } else {
            memcpy(out + pos, mem[i].text.ptr, mem[i].text.len);
            pos += mem[i].text.len;
        }
    }
    out[pos] = '\0';
    *out_used = pos;
    return 0;
}
