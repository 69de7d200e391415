/* SPDX-License-Identifier: MIT */
/* observe_int.h: private pieces shared by the observe component's files: a span's stored
 * (packed) form, and the JSON helpers of the decoders.
 * Threads: any (plain functions). */
#ifndef SHOAL_OBSERVE_INT_H
#define SHOAL_OBSERVE_INT_H

#include "observe/observe.h"

/* A span packed into one byte string (span_pack.c): what the store buffers and keeps in its
 * rows. Little-endian, version byte first; strings length-prefixed. */
enum { OBS_PACK_VERSION = 1 };
/* Appends the packed form of <s> to <b>. The buffer's error (0, SH_ETOOBIG, SH_ENOMEM). */
int obs__span_pack(struct buf *b, const struct trace_span *s);
/* The bytes obs__span_pack appends for <s>. */
size_t obs__span_packed_len(const struct trace_span *s);
/* Reads a packed span; the slices in *out point into <p>, valid while it is. 0 or
 * SH_ECORRUPT. */
SH_MUST_CHECK int obs__span_unpack(const uint8_t *p, size_t len, struct trace_span *out);

/* Lower-case hex of n bytes into out (2n chars and a NUL). */
void obs__hex(const uint8_t *id, size_t n, char *out);
/* Exactly 2n hex digits into n bytes. 0 or SH_EPARSE. */
SH_MUST_CHECK int obs__unhex(struct slice hex, uint8_t *out, size_t n);
bool obs__is_zero(const uint8_t *p, size_t n);

/* Grows b->spans for one more, zeroed span, and returns it (NULL: SH_ETOOBIG past
 * max_spans, or SH_ENOMEM, in *rc). */
struct trace_span *obs__batch_push(struct obs_batch *b, size_t max_spans, int *rc);
/* Copies n bytes into the batch's arena (NULL when out of memory). */
const char *obs__batch_str(struct obs_batch *b, const char *s, size_t n);
void obs__limits_default(const struct obs_limits *in, struct obs_limits *out);

#endif
