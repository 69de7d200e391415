/* SPDX-License-Identifier: MIT */
/* audit.c: the audit log of API writes, one JSON line each in DATA_DIR/audit.log, rotated to
 * audit.log.1. See security.h. */
#include "security/security.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sec_audit {
    char path[4096], old[4100];
    int fd;
    size_t size, max_bytes;
};

static int open_log(struct sec_audit *a)
{
    struct stat sb;

    a->fd = open(a->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0) return SH_EIO;
    a->size = fstat(a->fd, &sb) == 0 ? (size_t)sb.st_size : 0;
    return 0;
}

int sec_audit_open(const char *data_dir, size_t max_bytes, struct sec_audit **out,
                   struct sh_diag *d)
{
    struct sec_audit *a = sh_calloc(1, sizeof(*a));

    *out = NULL;
    if (!a) return SH_ENOMEM;
    a->max_bytes = max_bytes ? max_bytes : SEC_AUDIT_DEFAULT_MAX_BYTES;
    if ((size_t)snprintf(a->path, sizeof(a->path), "%s/audit.log", data_dir) >= sizeof(a->path)) {
        sh_free(a);
        sh_diag_set(d, "data_dir", "the path is too long");
        return SH_ETOOBIG;
    }
    snprintf(a->old, sizeof(a->old), "%s.1", a->path);
    if (open_log(a) < 0) {
        sh_diag_set(d, a->path, "cannot open the audit log: %s", strerror(errno));
        sh_free(a);
        return SH_EIO;
    }
    *out = a;
    return 0;
}

void sec_audit_close(struct sec_audit *a)
{
    if (!a) return;
    if (a->fd >= 0) close(a->fd);
    sh_free(a);
}

/* ,"name":"value" */
static void json_field(struct buf *b, const char *name, struct slice value)
{
    buf_appendf(b, ",\"%s\":\"", name);
    buf_append_json_str(b, value);
    buf_appendc(b, '"');
}

int sec_audit_write(struct sec_audit *a, const struct sec_audit_entry *e)
{
    struct buf b = BUF_INIT(16384);
    int rc;

    buf_appendf(&b, "{\"time_ms\":%llu", (unsigned long long)e->time_ms);
    json_field(&b, "token", slice_from_cstr(e->token_id));
    json_field(&b, "token_name", slice_from_cstr(e->token_name));
    json_field(&b, "method", e->method);
    json_field(&b, "path", e->path);
    buf_appendf(&b, ",\"status\":%d", e->status);
    json_field(&b, "peer", slice_from_cstr(e->peer));
    buf_appends(&b, SLICE("}\n"));
    if (b.err) {
        rc = b.err;
        buf_release(&b);
        return rc;
    }
    if (a->size + b.len > a->max_bytes && a->size > 0) {
        close(a->fd);
        a->fd = -1;
        if (rename(a->path, a->old) < 0) SH_LOG(SH_WARN, "security", "cannot rotate the audit log");
        if (open_log(a) < 0) {
            buf_release(&b);
            return SH_EIO;
        }
    }
    rc = 0;
    for (size_t off = 0; off < b.len;) {
        ssize_t n = write(a->fd, b.data + off, b.len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = SH_EIO;
            break;
        }
        off += (size_t)n;
    }
    a->size += b.len;
    buf_release(&b);
    return rc;
}

/* Appends the matching lines of one file to *lines (a JSON array). */
static void scan(const char *path, uint64_t since_ms, const char *token_id, json_t *lines)
{
    FILE *f = fopen(path, "re");
    char line[16384];

    if (!f) return;
    while (fgets(line, sizeof(line), f)) {
        json_t *o = json_loads(line, 0, NULL);
        json_int_t t = json_integer_value(json_object_get(o, "time_ms"));
        const char *tok = json_string_value(json_object_get(o, "token"));
        if (o && t >= 0 && (uint64_t)t >= since_ms &&
            (!token_id || (tok && !strcmp(tok, token_id))))
            json_array_append_new(lines, o);
        else
            json_decref(o);
    }
    fclose(f);
}

int sec_audit_query(struct sec_audit *a, uint64_t since_ms, const char *token_id, size_t limit,
                    struct buf *out)
{
    json_t *lines = json_array(), *sel;
    size_t n, from;
    int rc = 0;

    if (!lines) return SH_ENOMEM;
    if (!limit || limit > SEC_AUDIT_MAX_QUERY) limit = SEC_AUDIT_MAX_QUERY;
    scan(a->old, since_ms, token_id, lines);
    scan(a->path, since_ms, token_id, lines);
    n = json_array_size(lines);
    from = n > limit ? n - limit : 0;
    sel = json_array();
    for (size_t i = from; sel && i < n; i++)
        json_array_append(sel, json_array_get(lines, i));
    json_decref(lines);
    if (!sel) return SH_ENOMEM;
    char *text = json_dumps(sel, JSON_COMPACT);
    json_decref(sel);
    if (!text) return SH_ENOMEM;
    rc = buf_appends(out, slice_from_cstr(text));
    json_free_t free_fn;
    json_get_alloc_funcs(NULL, &free_fn);
    free_fn(text);
    return rc;
}
