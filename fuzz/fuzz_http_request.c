/* SPDX-License-Identifier: MIT */
/* fuzz_http_request.c: the request parser against its contract (http.h) and against itself:
 * the first byte picks options (lenient_lf, small limits), the second the feed steps, the rest
 * is the input, parsed once whole and once in steps (see http_fuzz.h). */
#include "http_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_opts o;

    if (size < 2) return 0;
    o = fuzz_opts_decode(HTTP_REQUEST, data[0], data[1]);
    fuzz_http_run(&o, (const char *)data + 2, size - 2);
    return 0;
}
