/* SPDX-License-Identifier: MIT */
/* gzip.c: gzip request bodies (Content-Encoding: gzip), inflated with zlib into a capped
 * buffer: a small body that inflates past the cap (a "zip bomb") stops at the cap. Several
 * gzip members one after the other are one body (RFC 1952). zlib allocates through sh_malloc. */
#include "observe/observe.h"

#include <zlib.h>

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return sh_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    sh_free(p);
}

int obs_gunzip(struct slice in, struct buf *out, struct sh_diag *d)
{
    z_stream zs = {.zalloc = z_alloc, .zfree = z_free};
    const size_t step = 64 * 1024;
    int zrc, rc = 0;

    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        sh_diag_set(d, "Content-Encoding", "out of memory");
        return SH_ENOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)in.ptr;
    zs.avail_in = (uInt)SH_MIN(in.len, (size_t)UINT32_MAX);
    if (in.len > UINT32_MAX) {
        inflateEnd(&zs);
        sh_diag_set(d, "body", "the compressed body is too large");
        return SH_ETOOBIG;
    }
    for (;;) {
        size_t room = out->max ? SH_MIN(step, out->max - out->len) : step;
        if (room == 0) {
            sh_diag_set(d, "body", "the body inflates past %zu bytes", out->max);
            rc = SH_ETOOBIG;
            break;
        }
        if ((rc = buf_reserve(out, room + 1)) < 0) {
            sh_diag_set(d, "body", "%s", sh_strerror(rc));
            break;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        zrc = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        out->data[out->len] = '\0';
        if (zrc == Z_STREAM_END) {
            if (zs.avail_in == 0) break;
            if (inflateReset(&zs) != Z_OK) { /* the next member */
                rc = SH_EPARSE;
                sh_diag_set(d, "body", "invalid gzip data after a member");
                break;
            }
            continue;
        }
        if (zrc == Z_OK) continue;
        if (zrc == Z_BUF_ERROR && zs.avail_in == 0) {
            sh_diag_set(d, "body", "the gzip data ends early");
            rc = SH_EPARSE;
            break;
        }
        if (zrc == Z_BUF_ERROR) continue; /* no room was left: the cap check above says */
        sh_diag_set(d, "body", "invalid gzip data: %s", zs.msg ? zs.msg : "corrupt");
        rc = zrc == Z_MEM_ERROR ? SH_ENOMEM : SH_EPARSE;
        break;
    }
    inflateEnd(&zs);
    if (rc < 0) buf_release(out); /* empty, and nothing held */
    return rc;
}
