/* SPDX-License-Identifier: MIT */
/* ref_http_parser.h: the reference parser for bench_parser, Debian's libhttp-parser (the
 * nodejs/http-parser C library, llhttp's predecessor), behind a function of ours so its
 * names (struct http_parser, HTTP_REQUEST) never meet shoal's in one translation unit.
 * Built only when the library is installed (scripts/install-deps.sh --bench). */
#ifndef SHOAL_BENCH_REF_HTTP_PARSER_H
#define SHOAL_BENCH_REF_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>

/* "2.9.4": the library's version. */
const char *ref_parser_version(void);
/* Parses buf[0..len) as a stream of requests (or responses) in one call with callbacks that
 * count fields and body bytes, as a caller would. Returns the number of complete messages,
 * or -1 on a parse error. */
long ref_parse_stream(const char *buf, size_t len, bool is_response, unsigned long long *body_bytes);

#endif
