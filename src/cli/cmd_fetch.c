/* SPDX-License-Identifier: MIT */
/* cmd_fetch.c: `shoal fetch`, an HTTP request made with shoal's own pooled client. The CLI's
 * later commands talk to the admin API through the same client. */
#include "cli/cli_int.h"
#include "http/http.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { MAX_FIELDS = 64 };

struct fetch {
    uv_loop_t *loop;
    struct http_client *cl;
    struct http_request_desc desc;
    struct http_out_field fields[MAX_FIELDS];
    struct sockaddr_storage addr;
    const char *data;
    size_t data_len;
    int body_fd;
    bool include_head, body_done;
    long remaining;
    int exit_code;
    int last_status;
    struct http_creq *cr;
};

static void start(struct fetch *f);

static void pump_body(struct fetch *f)
{
    char chunk[64 * 1024];

    if (f->body_done) return;
    if (f->data) {
        int rc = http_creq_write(f->cr, f->data, f->data_len);
        f->body_done = true;
        if (rc >= 0) http_creq_finish(f->cr);
        return;
    }
    for (;;) {
        ssize_t n = read(f->body_fd, chunk, sizeof(chunk));
        if (n < 0) {
            fprintf(stderr, "shoal fetch: reading the body: %s\n", strerror(errno));
            f->exit_code = 1;
            http_creq_cancel(f->cr);
            f->cr = NULL;
            return;
        }
        if (n == 0) {
            f->body_done = true;
            http_creq_finish(f->cr);
            return;
        }
        int rc = http_creq_write(f->cr, chunk, (size_t)n);
        if (rc == HTTP_AGAIN) return; /* on_drain calls us again */
        if (rc < 0) {
            fprintf(stderr, "shoal fetch: sending the body: %s\n", sh_strerror(rc));
            f->exit_code = 1;
            return;
        }
    }
}

static void on_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct fetch *f = data;

    (void)cr;
    f->last_status = h->status;
    if (!f->include_head) return;
    printf("HTTP/1.%u %u %.*s\r\n", h->version_minor, h->status, (int)h->reason.len,
           http_head_reason(h).ptr);
    for (uint32_t i = 0; i < h->nfields; i++) {
        struct slice n = http_field_name(h, i), v = http_field_value(h, i);
        printf("%.*s: %.*s\r\n", (int)n.len, n.ptr, (int)v.len, v.ptr);
    }
    printf("\r\n");
}

static void on_body(struct http_creq *cr, struct slice chunk, void *data)
{
    (void)cr;
    (void)data;
    fwrite(chunk.ptr, 1, chunk.len, stdout);
}

static void on_drain(struct http_creq *cr, void *data)
{
    (void)cr;
    pump_body(data);
}

static void on_done(struct http_creq *cr, int rc, void *data)
{
    struct fetch *f = data;

    (void)cr;
    f->cr = NULL;
    fflush(stdout);
    if (rc < 0) {
        fprintf(stderr, "shoal fetch: %s\n", sh_strerror(rc));
        f->exit_code = 1;
        f->remaining = 0;
    } else if (f->last_status >= 400) {
        f->exit_code = 1;
    }
    if (--f->remaining > 0)
        start(f);
    else
        uv_stop(f->loop); /* pooled connections would keep the loop alive */
}

static const struct http_creq_handlers fetch_handlers = {
    .on_head = on_head, .on_body = on_body, .on_drain = on_drain, .on_done = on_done};

static void start(struct fetch *f)
{
    int rc;

    f->body_done = false;
    if (f->body_fd >= 0 && f->remaining > 0 && lseek(f->body_fd, 0, SEEK_SET) < 0 &&
        f->body_fd != 0)
        f->remaining = 1;
    rc = http_client_request(f->cl, &f->desc, &fetch_handlers, f, &f->cr);
    if (rc < 0) {
        fprintf(stderr, "shoal fetch: %s\n", sh_strerror(rc));
        f->exit_code = 1;
        return;
    }
    if (f->desc.content_length != 0) pump_body(f);
}

/* http://HOST[:PORT]/path with a numeric host or localhost. */
static int parse_url(struct fetch *f, const char *url, char *hostport, size_t hp_len,
                     const char **target, struct sh_diag *d)
{
    const char *p;
    size_t n;

    if (strncmp(url, "http://", 7) != 0) {
        sh_diag_set(d, "URL", "'%s': only http:// URLs are supported", url);
        return SH_EPARSE;
    }
    url += 7;
    p = strchr(url, '/');
    n = p ? (size_t)(p - url) : strlen(url);
    if (n == 0 || n + 4 >= hp_len) {
        sh_diag_set(d, "URL", "missing or too long host");
        return SH_EPARSE;
    }
    memcpy(hostport, url, n);
    hostport[n] = '\0';
    *target = p ? p : "/";
    char addr[96];
    if (hostport[n - 1] == ']' || !strrchr(hostport, ':') ||
        (strchr(hostport, ':') != strrchr(hostport, ':') && hostport[0] != '['))
        snprintf(addr, sizeof(addr), "%s:80", hostport);
    else
        snprintf(addr, sizeof(addr), "%s", hostport);
    return sh_addr_parse(addr, &f->addr, d);
}

int cli_cmd_fetch(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("fetch");
    struct fetch f = {.body_fd = -1, .remaining = 1};
    const char *method = NULL, *url = NULL, *upload = NULL, *target = "/";
    char hostport[80];
    uint64_t timeout_ms = 30000;
    size_t nfields = 0;
    bool stats = false;
    struct sh_diag d = {{0}, {0}};
    uv_loop_t loop;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(a, "-X") || !strcmp(a, "-H") || !strcmp(a, "-d") || !strcmp(a, "-T") ||
                     !strcmp(a, "-n") || !strcmp(a, "--timeout");
        if (takes && !v) return cli_usage_error(cmd, "option '%s' needs a value", a);
        if (!strcmp(a, "-X")) {
            method = v;
        } else if (!strcmp(a, "-H")) {
            const char *colon = strchr(v, ':');
            if (!colon || colon == v)
                return cli_usage_error(cmd, "-H '%s': expected 'Name: value'", v);
            if (nfields == MAX_FIELDS)
                return cli_usage_error(cmd, "-H: at most %d fields", MAX_FIELDS);
            f.fields[nfields].name = (struct slice){v, (size_t)(colon - v)};
            f.fields[nfields].value = slice_trim(slice_from_cstr(colon + 1));
            nfields++;
        } else if (!strcmp(a, "-d")) {
            f.data = v;
            f.data_len = strlen(v);
        } else if (!strcmp(a, "-T")) {
            upload = v;
        } else if (!strcmp(a, "-n")) {
            uint64_t n;
            if (slice_to_u64(slice_from_cstr(v), &n) || n == 0 || n > 1000000)
                return cli_usage_error(cmd, "-n: '%s' is not a count from 1 to 1000000", v);
            f.remaining = (long)n;
        } else if (!strcmp(a, "--timeout")) {
            if (sh_parse_duration_ms(slice_from_cstr(v), &timeout_ms, &d) < 0)
                return cli_usage_error(cmd, "--timeout: %s", d.what);
        } else if (!strcmp(a, "-i")) {
            f.include_head = true;
            continue;
        } else if (!strcmp(a, "--stats")) {
            stats = true;
            continue;
        } else if (a[0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        } else if (url) {
            return cli_usage_error(cmd, "more than one URL ('%s')", a);
        } else {
            url = a;
            continue;
        }
        i++;
    }
    if (!url) return cli_usage_error(cmd, "missing URL");
    if (f.data && upload) return cli_usage_error(cmd, "-d and -T cannot be used together");
    if (parse_url(&f, url, hostport, sizeof(hostport), &target, &d) < 0)
        return cli_usage_error(cmd, "%s", d.what);
    if (upload) {
        f.body_fd = strcmp(upload, "-") == 0 ? 0 : open(upload, O_RDONLY | O_CLOEXEC);
        if (f.body_fd < 0) {
            fprintf(stderr, "shoal fetch: -T %s: %s\n", upload, strerror(errno));
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    f.desc = (struct http_request_desc){
        .addr = (struct sockaddr *)&f.addr,
        .method = slice_from_cstr(method               ? method
                                  : (f.data || upload) ? "POST"
                                                       : "GET"),
        .target = slice_from_cstr(target),
        .host = slice_from_cstr(hostport),
        .fields = f.fields,
        .nfields = nfields,
        .content_length = f.data   ? (int64_t)f.data_len
                          : upload ? -1
                                   : 0,
        .total_timeout_ms = (uint32_t)SH_MIN(timeout_ms, UINT32_MAX),
    };
    uv_loop_init(&loop);
    f.loop = &loop;
    if (http_client_new(&loop, NULL, &f.cl) < 0) {
        fprintf(stderr, "shoal fetch: out of memory\n");
        return 1;
    }
    start(&f);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (stats) {
        struct http_client_stats st;
        http_client_stats(f.cl, &st);
        fprintf(stderr,
                "{\"connects\":%llu,\"reuses\":%llu,\"requests\":%llu,\"retries\":%llu,"
                "\"errors\":%llu}\n",
                (unsigned long long)st.connects, (unsigned long long)st.reuses,
                (unsigned long long)st.requests, (unsigned long long)st.retries,
                (unsigned long long)st.errors);
    }
    http_client_free(f.cl);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (f.body_fd > 0) close(f.body_fd);
    return f.exit_code;
}
