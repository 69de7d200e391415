/* SPDX-License-Identifier: MIT */
/* ref_http_parser.c: see ref_http_parser.h.
 *
 * libhttp-parser exports http_parser_init, and so does shoal (src/http/parser.c). Linked
 * together, one of the two silently wins and the other parser runs on a foreign struct. So the
 * library is opened with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), which makes it bind its own
 * symbols first, and its three entry points are looked up by name. */
#include "ref_http_parser.h"

#include <dlfcn.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

#ifndef SHOAL_HTTP_PARSER_SO
#define SHOAL_HTTP_PARSER_SO "libhttp_parser.so"
#endif

typedef void ref_init_fn(http_parser *p, enum http_parser_type t);
typedef size_t ref_execute_fn(http_parser *p, const http_parser_settings *s, const char *data,
                              size_t len);
typedef unsigned long ref_version_fn(void);

static struct {
    bool tried, ok;
    ref_init_fn *init;
    ref_execute_fn *execute;
    ref_version_fn *version;
} lib;

static void *sym(void *h, const char *name)
{
    void *s = dlsym(h, name);

    if (!s) fprintf(stderr, "ref_http_parser: %s: %s\n", name, dlerror());
    return s;
}

static bool load(void)
{
    void *h, *s;

    if (lib.tried) return lib.ok;
    lib.tried = true;
    h = dlopen(SHOAL_HTTP_PARSER_SO, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
        fprintf(stderr, "ref_http_parser: %s\n", dlerror());
        return false;
    }
    /* memcpy: ISO C has no conversion from void * to a function pointer */
    if (!(s = sym(h, "http_parser_init"))) return false;
    memcpy(&lib.init, &s, sizeof(s));
    if (!(s = sym(h, "http_parser_execute"))) return false;
    memcpy(&lib.execute, &s, sizeof(s));
    if (!(s = sym(h, "http_parser_version"))) return false;
    memcpy(&lib.version, &s, sizeof(s));
    lib.ok = true;
    return true;
}

struct ref_counts {
    long messages;
    unsigned long long fields, body_bytes;
};

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct ref_counts *c = p->data;

    (void)at;
    (void)len;
    c->fields++;
    return 0;
}

static int on_data(http_parser *p, const char *at, size_t len)
{
    (void)p;
    (void)at;
    (void)len;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct ref_counts *c = p->data;

    (void)at;
    c->body_bytes += len;
    return 0;
}

static int on_complete(http_parser *p)
{
    struct ref_counts *c = p->data;

    c->messages++;
    return 0;
}

const char *ref_parser_version(void)
{
    static char v[32];
    unsigned long n;

    if (!load()) return "(not loaded)";
    n = lib.version();
    snprintf(v, sizeof(v), "%lu.%lu.%lu", (n >> 16) & 255, (n >> 8) & 255, n & 255);
    return v;
}

long ref_parse_stream(const char *buf, size_t len, bool is_response, unsigned long long *body_bytes)
{
    static const http_parser_settings settings = {
        .on_url = on_data,
        .on_status = on_data,
        .on_header_field = on_field,
        .on_header_value = on_data,
        .on_body = on_body,
        .on_message_complete = on_complete,
    };
    struct ref_counts c = {0};
    http_parser p;
    size_t n;

    if (!load()) return -1;
    lib.init(&p, is_response ? HTTP_RESPONSE : HTTP_REQUEST);
    p.data = &c;
    n = lib.execute(&p, &settings, buf, len);
    if (n != len || HTTP_PARSER_ERRNO(&p) != HPE_OK) return -1;
    *body_bytes = c.body_bytes;
    return c.messages;
}
