/* SPDX-License-Identifier: MIT */
/* head.c: what callers read from a parsed head (field lookups, token lists) and the small
 * tables of methods and reason phrases. The parser itself is parser.c. */
#include "http/http.h"
#include "http/http_int.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------
 * Small tables
 * ------------------------------------------------------------------------------------------ */
static const struct {
    const char *name;
    enum http_method m;
} method_table[] = {
    {"GET", HTTP_M_GET},         {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
    {"PUT", HTTP_M_PUT},         {"DELETE", HTTP_M_DELETE}, {"CONNECT", HTTP_M_CONNECT},
    {"OPTIONS", HTTP_M_OPTIONS}, {"TRACE", HTTP_M_TRACE},   {"PATCH", HTTP_M_PATCH},
};

enum http_method http_method_from(struct slice s)
{
    for (size_t i = 0; i < SH_ARRAY_LEN(method_table); i++) {
        if (slice_eq(s, slice_from_cstr(method_table[i].name))) return method_table[i].m;
    }
    return HTTP_M_OTHER;
}

static const struct {
    int status;
    const char *reason;
} reason_table[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http_reason(int status)
{
    for (size_t i = 0; i < SH_ARRAY_LEN(reason_table); i++) {
        if (reason_table[i].status == status) return reason_table[i].reason;
    }
    return "";
}

/* ------------------------------------------------------------------------------------------
 * Head accessors
 * ------------------------------------------------------------------------------------------ */
bool http_head_get(const struct http_head *h, struct slice name, struct slice *out)
{
    for (uint32_t i = 0; i < h->nfields; i++) {
        if (slice_eq_nocase(http_field_name(h, i), name)) {
            *out = http_field_value(h, i);
            return true;
        }
    }
    *out = SLICE_NULL;
    return false;
}

static bool token_differs(struct slice elem, void *data)
{
    return !slice_eq_nocase(elem, *(struct slice *)data);
}

bool http_head_has_token(const struct http_head *h, struct slice name, struct slice token)
{
    for (uint32_t i = 0; i < h->nfields; i++) {
        if (slice_eq_nocase(http_field_name(h, i), name) &&
            !http__list_each(http_field_value(h, i), token_differs, &token))
            return true;
    }
    return false;
}
