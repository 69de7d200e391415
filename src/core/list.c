/* SPDX-License-Identifier: MIT */
/* list.c: array growth (core.h, "Lists and arrays"). The list itself is inline in core.h.
 * Threads: any; nothing here keeps state. */
#include "core/core.h"

#include <assert.h>

enum { FIRST_CAP = 8 };

int sh_array_grow_cap(size_t cap, size_t need, size_t elem_size, size_t *out_cap)
{
    size_t max, ncap;

    assert(elem_size > 0);
    if (need <= cap) {
        *out_cap = cap;
        return 0;
    }
    max = SIZE_MAX / elem_size;
    if (need > max) return SH_ETOOBIG;
    ncap = cap ? cap : FIRST_CAP;
    while (ncap < need)
        ncap = ncap > max / 2 ? max : ncap * 2;
    *out_cap = SH_MIN(ncap, max); /* FIRST_CAP itself may be too many huge items */
    return 0;
}

int sh_array_reserve(void *items_ptr, size_t *cap, size_t need, size_t elem_size)
{
    size_t ncap;
    void *old, *p;
    int rc;

    if (need <= *cap) return 0;
    rc = sh_array_grow_cap(*cap, need, elem_size, &ncap);
    if (rc < 0) return rc;
    /* items_ptr is a T **: copy the pointer out and back rather than read a T * as a void *. */
    memcpy(&old, items_ptr, sizeof(old));
    p = sh_realloc(old, ncap * elem_size);
    if (!p) return SH_ENOMEM;
    memcpy(items_ptr, &p, sizeof(p));
    *cap = ncap;
    return 0;
}
