/* SPDX-License-Identifier: MIT */
/* err.c: the error table's messages and names, and parse diagnostics. */
#include "core/core.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

const char *sh_strerror(int err)
{
    switch (err) {
#define XX(name, value, msg)                                                                       \
    case SH_##name:                                                                                \
        return msg;
        SH_ERRNO_MAP(XX)
#undef XX
    default:
        /* -INT_MIN overflows (test_err__unknown_codes_fall_back_to_strerror). */
        if (err == INT_MIN) return "unknown error";
        return err < 0 ? strerror(-err) : "success";
    }
}

const char *sh_errname(int err)
{
    switch (err) {
#define XX(name, value, msg)                                                                       \
    case SH_##name:                                                                                \
        return "SH_" #name;
        SH_ERRNO_MAP(XX)
#undef XX
    default:
        return err == 0 ? "OK" : "SH_E?";
    }
}

void sh_diag_set(struct sh_diag *d, const char *where, const char *fmt, ...)
{
    va_list ap;

    if (!d) return;
    snprintf(d->where, sizeof(d->where), "%s", where ? where : "");
    va_start(ap, fmt);
    vsnprintf(d->what, sizeof(d->what), fmt, ap);
    va_end(ap);
}

const char *sh_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}
