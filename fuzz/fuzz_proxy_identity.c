/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_proxy_identity.c: the mesh's caller decision over a Proxy-Authorization value
 * (proxy_identity_decide). The first byte picks the mode and the number of fields, the rest is
 * the value. Invariants: a known caller is served and named; anything else names the problem,
 * names no caller, and is refused exactly when identity is required. Deterministic, no I/O,
 * frees everything. */
#include "proxy/proxy.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct proxy_caller callers[] = {
    {.user = "greeter.1",
     .secret = "0123456789abcdef0123456789abcdef",
     .service = "greeter",
     .instance = "greeter-1"},
    {.user = "names.2", .secret = "s3cret", .service = "names", .instance = "names-2"},
    {.user = "a", .secret = "b", .service = "a", .instance = "a-1"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_callers *t;
    struct proxy_identity_decision d;

    if (size < 1 || proxy_callers_new(callers, SH_ARRAY_LEN(callers), &t) < 0) return 0;
    struct proxy_identity_input in = {
        .mode = (enum proxy_identity_mode)(1 + (data[0] & 1)),
        .callers = t,
        .nfields = 1 + ((data[0] >> 1) & 1),
        .value = {(const char *)data + 1, size - 1},
    };
    proxy_identity_decide(&in, &d);
    if (d.verdict == PROXY_CALLER_KNOWN) {
        assert(d.who && d.serve && !d.problem && in.nfields == 1);
    } else {
        assert(!d.who && d.problem && d.problem[0]);
        assert(d.serve == (in.mode == PROXY_IDENTITY_OPTIONAL));
    }
    proxy_callers_free(t);
    return 0;
}
