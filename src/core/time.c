/* SPDX-License-Identifier: MIT */
/* time.c: clocks, and the duration and size forms users write ("250ms", "64KiB"). */
#include "core/core.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t sh_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t sh_now_ms(void)
{
    return sh_now_us() / 1000u;
}

uint64_t sh_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct unit {
    const char *name;
    uint64_t mult;
};

/* A unit is the whole run of non-digits after a number and must equal a name exactly, so the
 * order of the table does not matter ("ms" is never read as "m" plus junk). */
static const struct unit duration_units[] = {
    {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000u},
};

static const struct unit size_units[] = {
    {"KiB", 1024},
    {"MiB", 1024 * 1024},
    {"GiB", 1024 * 1024 * 1024},
    {"TiB", 1024ull * 1024 * 1024 * 1024},
    {"KB", 1000},
    {"MB", 1000000},
    {"GB", 1000000000},
    {"TB", 1000000000000ull},
    {"B", 1},
    {"k", 1024},
    {"K", 1024},
    {"M", 1024 * 1024},
    {"G", 1024 * 1024 * 1024},
};

/* Reads one "<digits><unit>" term at s[*pos]; the unit must match one of units[] exactly up to
 * the next digit or the end. Returns 0 and adds to *total, or an SH_E* with d filled. */
static int read_term(struct slice s, size_t *pos, const struct unit *units, size_t nunits,
                     bool unit_required, uint64_t *total, struct sh_diag *d, const char *what)
{
    size_t i = *pos, start = i, ustart;
    uint64_t v;
    int rc;

    while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9')
        i++;
    if (i == start) {
        const char *why = "expected a number";
        if (start < s.len && (s.ptr[start] == '-' || s.ptr[start] == '+'))
            why = "a sign is not allowed";
        else if (start < s.len && (s.ptr[start] == ' ' || s.ptr[start] == '\t'))
            why = "spaces are not allowed";
        else if (start < s.len && s.ptr[start] == '.')
            why = "fractions are not supported";
        sh_diag_set(d, NULL, "%s '%.*s': %s at offset %zu", what, (int)s.len, s.ptr, why, start);
        return SH_EPARSE;
    }
    rc = slice_to_u64((struct slice){s.ptr + start, i - start}, &v);
    if (rc) {
        sh_diag_set(d, NULL, "%s '%.*s': number too large", what, (int)s.len, s.ptr);
        return rc;
    }
    ustart = i;
    while (i < s.len && !(s.ptr[i] >= '0' && s.ptr[i] <= '9'))
        i++;
    struct slice u = {s.ptr + ustart, i - ustart};
    if (u.len == 0) {
        if (unit_required) {
            sh_diag_set(d, NULL, "%s '%.*s': missing unit (use e.g. 250ms, 2s, 1m)", what,
                        (int)s.len, s.ptr);
            return SH_EPARSE;
        }
        u = SLICE("B");
    }
    for (size_t k = 0; k < nunits; k++) {
        if (slice_eq(u, slice_from_cstr(units[k].name))) {
            if (v != 0 && units[k].mult > UINT64_MAX / v) {
                sh_diag_set(d, NULL, "%s '%.*s': value too large", what, (int)s.len, s.ptr);
                return SH_ETOOBIG;
            }
            if (*total > UINT64_MAX - v * units[k].mult) {
                sh_diag_set(d, NULL, "%s '%.*s': value too large", what, (int)s.len, s.ptr);
                return SH_ETOOBIG;
            }
            *total += v * units[k].mult;
            *pos = i;
            return 0;
        }
    }
    if (u.ptr[0] == '.' || u.ptr[0] == ',') {
        sh_diag_set(d, NULL, "%s '%.*s': fractions are not supported (use a smaller unit)", what,
                    (int)s.len, s.ptr);
    } else if (memchr(u.ptr, ' ', u.len) || memchr(u.ptr, '\t', u.len)) {
        sh_diag_set(d, NULL, "%s '%.*s': spaces are not allowed", what, (int)s.len, s.ptr);
    } else {
        sh_diag_set(d, NULL, "%s '%.*s': unknown unit '%.*s' (use %s)", what, (int)s.len, s.ptr,
                    (int)u.len, u.ptr,
                    units == duration_units ? "us, ms, s, m, h"
                                            : "B, KiB, MiB, GiB, TiB, KB, MB, GB, TB");
    }
    return SH_EPARSE;
}

int sh_parse_duration_ms(struct slice s, uint64_t *out_ms, struct sh_diag *d)
{
    uint64_t us = 0;
    size_t pos = 0;
    int rc;

    *out_ms = 0;
    if (s.len == 0) {
        sh_diag_set(d, NULL, "duration is empty (use e.g. 250ms, 2s, 1m)");
        return SH_EPARSE;
    }
    while (pos < s.len) {
        rc = read_term(s, &pos, duration_units, SH_ARRAY_LEN(duration_units), true, &us, d,
                       "duration");
        if (rc) return rc;
    }
    *out_ms = us / 1000 + (us % 1000 ? 1 : 0);
    return 0;
}

int sh_parse_size(struct slice s, uint64_t *out_bytes, struct sh_diag *d)
{
    uint64_t total = 0;
    size_t pos = 0;
    int rc;

    *out_bytes = 0;
    if (s.len == 0) {
        sh_diag_set(d, NULL, "size is empty (use e.g. 512, 64KiB, 10MiB)");
        return SH_EPARSE;
    }
    rc = read_term(s, &pos, size_units, SH_ARRAY_LEN(size_units), false, &total, d, "size");
    if (rc) return rc;
    if (pos != s.len) {
        sh_diag_set(d, NULL, "size '%.*s': junk after the unit", (int)s.len, s.ptr);
        return SH_EPARSE;
    }
    *out_bytes = total;
    return 0;
}

char *sh_format_duration(uint64_t ms, char *out, size_t out_len)
{
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, sec = ms / 1000 % 60, rest = ms % 1000;
    size_t n = 0;

    out[0] = '\0';
    if (h) n += (size_t)snprintf(out + n, out_len - n, "%lluh", (unsigned long long)h);
    if (m && n < out_len)
        n += (size_t)snprintf(out + n, out_len - n, "%llum", (unsigned long long)m);
    if (sec && n < out_len)
        n += (size_t)snprintf(out + n, out_len - n, "%llus", (unsigned long long)sec);
    if ((rest || ms == 0) && n < out_len)
        snprintf(out + n, out_len - n, "%llums", (unsigned long long)rest);
    return out;
}
