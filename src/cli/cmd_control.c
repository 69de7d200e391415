/* SPDX-License-Identifier: MIT */
/* cmd_control.c: commands that talk to the control plane's admin API, the way consul's CLI
 * does, and the connection options they share (--addr/SHOAL_ADDR, --token/SHOAL_TOKEN,
 * --data-dir, the runtime file: docs/cli.md gives the order).
 *   shoal services [--json]
 *   shoal ps [--json]
 *   shoal config get|set|del|ls|watch|history|rollback ... */
#include "cli/cli_int.h"
#include "http/http.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------
 * One synchronous API call
 * ------------------------------------------------------------------------------------------ */
static void c_head(struct http_creq *cr, const struct http_head *h, void *data)
{
    struct cli_call *c = data;
    struct slice v;

    (void)cr;
    c->status = h->status;
    if (http_head_get(h, SLICE("x-consul-index"), &v) && slice_to_u64(v, &c->index) != 0)
        c->index = 0;
}

static void c_body(struct http_creq *cr, struct slice chunk, void *data)
{
    struct cli_call *c = data;

    (void)cr;
    buf_appends(&c->body, chunk);
}

static void c_done(struct http_creq *cr, int rc, void *data)
{
    struct cli_call *c = data;

    (void)cr;
    c->rc = rc;
    c->done = true;
}

static const struct http_creq_handlers call_handlers = {
    .on_head = c_head, .on_body = c_body, .on_done = c_done};

/* ------------------------------------------------------------------------------------------
 * Connection options, shared by every command that talks to the control plane
 * ------------------------------------------------------------------------------------------ */
/* What the command line said (cli__conn_take), resolved once by resolve_conn. */
static struct {
    const char *addr, *token, *data_dir;
    bool is_resolved;
    char token_buf[SH_TOKEN_MAX_LEN + 2]; /* one more: a longer token is refused */
} conn;
bool cli__api_quiet; /* no message when the control plane cannot be reached */

int cli__conn_take(const struct cli_command *cmd, int *argc, char **argv)
{
    static const char *const names[] = {"--addr", "--token", "--data-dir"};
    const char **slots[] = {&conn.addr, &conn.token, &conn.data_dir};
    int out = 1;

    for (int i = 1; i < *argc; i++) {
        size_t k = 0;
        if (!strcmp(argv[i], "--")) { /* the rest is the command's */
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        while (k < SH_ARRAY_LEN(names) && strcmp(argv[i], names[k]))
            k++;
        if (k == SH_ARRAY_LEN(names)) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= *argc || !argv[i + 1][0])
            return cli_usage_error(cmd, "option '%s' needs a value", argv[i]);
        *slots[k] = argv[++i];
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

/* The token <data_dir>/token holds, into conn.token_buf: true when there is one. */
static bool read_token_file(const char *data_dir)
{
    char path[4096];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/token", data_dir);
    f = fopen(path, "r");
    if (!f) return false;
    n = fread(conn.token_buf, 1, sizeof(conn.token_buf) - 1, f);
    fclose(f);
    /* trimmed as the server trims it when it loads the file (admin_token_load) */
    while (n && (conn.token_buf[n - 1] == '\n' || conn.token_buf[n - 1] == '\r' ||
                 conn.token_buf[n - 1] == ' '))
        n--;
    conn.token_buf[n] = '\0';
    return n > 0;
}

/* The address and the token, in the order docs/cli.md gives: --addr, SHOAL_ADDR, the default;
 * --token, SHOAL_TOKEN, DIR/token of --data-dir, DIR/token of the data directory the runtime
 * file of the address names (what `shoal up`/`shoal server` published), ./.shoal/token. */
static void resolve_conn(void)
{
    const char *env;
    char dir[4096];

    if (conn.is_resolved) return;
    conn.is_resolved = true;
    env = getenv("SHOAL_ADDR");
    if (!conn.addr) conn.addr = env && *env ? env : "127.0.0.1:7700";
    env = getenv("SHOAL_TOKEN");
    if (conn.token) return;
    if (env && *env) {
        conn.token = env;
        return;
    }
    if (conn.data_dir) {
        if (read_token_file(conn.data_dir)) conn.token = conn.token_buf;
        return;
    }
    if (cli_runtime_lookup(conn.addr, dir, sizeof(dir)) == 0 && read_token_file(dir)) {
        conn.token = conn.token_buf;
        return;
    }
    if (read_token_file(".shoal")) conn.token = conn.token_buf;
}

/* Sends method path (body may be NULL) to the control plane; fills c. 0, or prints why and
 * returns 1. */
int cli__api(const char *method, const char *path, struct slice body, uint32_t timeout_ms,
             struct cli_call *c)
{
    const char *addr, *token;
    struct sockaddr_storage ss;
    struct sh_diag d = {{0}, {0}};
    struct http_client *cl;
    struct http_creq *cr;
    struct http_out_field f[1];
    char auth[SH_TOKEN_MAX_LEN + 8]; /* "Bearer <token>" */
    size_t nf = 0;
    uv_loop_t loop;
    int rc;

    resolve_conn();
    addr = conn.addr;
    token = conn.token;
    if (strncmp(addr, "http://", 7) == 0) addr += 7;
    memset(c, 0, sizeof(*c));
    c->body = BUF_INIT(64 << 20);
    if (sh_addr_parse(addr, &ss, &d) < 0) {
        fprintf(stderr, "shoal: the control plane's address (--addr, SHOAL_ADDR): %s\n", d.what);
        return 1;
    }
    if (token && strlen(token) > SH_TOKEN_MAX_LEN) {
        fprintf(stderr, "shoal: %s: the token is longer than %d characters\n",
                token == conn.token_buf          ? "the token file"
                : token == getenv("SHOAL_TOKEN") ? "SHOAL_TOKEN"
                                                 : "--token",
                SH_TOKEN_MAX_LEN);
        return 1;
    }
    if (token && *token) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        f[nf++] = (struct http_out_field){SLICE("Authorization"), slice_from_cstr(auth)};
    }
    uv_loop_init(&loop);
    if (http_client_new(&loop, NULL, &cl) < 0) {
        uv_loop_close(&loop);
        fprintf(stderr, "shoal: out of memory\n");
        return 1;
    }
    struct http_request_desc desc = {
        .addr = (struct sockaddr *)&ss,
        .method = slice_from_cstr(method),
        .target = slice_from_cstr(path),
        .host = slice_from_cstr(addr),
        .fields = f,
        .nfields = nf,
        .content_length = (int64_t)body.len,
        .total_timeout_ms = timeout_ms,
    };
    rc = http_client_request(cl, &desc, &call_handlers, c, &cr);
    if (rc == 0) {
        if (body.len && http_creq_write(cr, body.ptr, body.len) >= 0) http_creq_finish(cr);
        while (!c->done && uv_run(&loop, UV_RUN_ONCE))
            ;
        rc = c->rc;
    }
    http_client_free(cl);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc < 0) {
        if (!cli__api_quiet)
            fprintf(stderr, "shoal: the control plane at %s: %s\n", addr, sh_strerror(rc));
        buf_release(&c->body);
        return 1;
    }
    return 0;
}

/* Prints the API's JSON error for a failed call; returns 1. */
int cli__api_error(const char *what, struct cli_call *c)
{
    json_t *j = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
    const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
    const char *field = j ? json_string_value(json_object_get(j, "field")) : NULL;

    fprintf(stderr, "shoal: %s: %d %s%s%s%s%s\n", what, c->status, http_reason(c->status),
            msg ? ": " : "", field ? field : "", field ? ": " : "", msg ? msg : "");
    if (c->status == 401)
        fprintf(stderr, "  (give the control plane's token: --token TOKEN, SHOAL_TOKEN, or "
                        "--data-dir DIR of the stack)\n");
    json_decref(j);
    buf_release(&c->body);
    return 1;
}

/* A path segment as %XX-escaped text, for keys and names in URLs. */
void cli__escape(struct buf *b, const char *s)
{
    static const char keep[] = "-._~/";

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            strchr(keep, ch))
            buf_appendc(b, (char)ch);
        else
            buf_appendf(b, "%%%02X", ch);
    }
}

/* ------------------------------------------------------------------------------------------
 * shoal services
 * ------------------------------------------------------------------------------------------ */

/* The options of a command that takes only --json: true (after the usage message) when
 * another is given. Sets jansson's allocator for what follows. */
static bool json_flag_only(const struct cli_command *cmd, int argc, char **argv, bool *json_out)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0) {
            cli_usage_error(cmd, "unknown option '%s'", argv[i]);
            return true;
        }
        *json_out = true;
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    return false;
}

int cli_cmd_services(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("services");
    bool json_out = false;
    struct cli_call c;
    json_t *services, *out;
    const char *name;
    json_t *tags;

    if (json_flag_only(cmd, argc, argv, &json_out)) return 2;
    if (cli__api("GET", "/v1/catalog/services", SLICE(""), 10000, &c)) return 1;
    if (c.status != 200) return cli__api_error("listing services", &c);
    services = json_loadb(c.body.data, c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!json_is_object(services)) {
        fprintf(stderr, "shoal: the control plane sent something that is not a service list\n");
        json_decref(services);
        return 1;
    }
    out = json_array();
    if (!json_out) printf("%-24s %-9s %-8s %s\n", "SERVICE", "INSTANCES", "PASSING", "TAGS");
    json_object_foreach(services, name, tags)
    {
        struct buf path = BUF_INIT(1024);
        buf_appends(&path, SLICE("/v1/health/service/"));
        cli__escape(&path, name);
        int rc = cli__api("GET", path.data, SLICE(""), 10000, &c);
        buf_release(&path);
        if (rc) continue;
        json_t *inst = c.status == 200 ? json_loadb(c.body.data, c.body.len, 0, NULL) : NULL;
        buf_release(&c.body);
        size_t n = json_is_array(inst) ? json_array_size(inst) : 0, passing = 0, k;
        json_t *e, *list = json_array();
        json_array_foreach(inst, k, e)
        {
            json_t *svc = json_object_get(e, "Service");
            const char *st = json_string_value(
                json_object_get(json_array_get(json_object_get(e, "Checks"), 0), "Status"));
            passing += st && !strcmp(st, "passing");
            json_array_append_new(
                list, json_pack("{s:O, s:O, s:O, s:s}", "id", json_object_get(svc, "ID"), "address",
                                json_object_get(svc, "Address"), "port",
                                json_object_get(svc, "Port"), "status", st ? st : "unknown"));
        }
        if (json_out) {
            json_array_append_new(out, json_pack("{s:s, s:O, s:o}", "service", name, "tags", tags,
                                                 "instances", list));
        } else {
            char tagtext[256] = "";
            size_t t;
            json_t *tag;
            json_array_foreach(tags, t, tag)
            {
                size_t used = strlen(tagtext);
                snprintf(tagtext + used, sizeof(tagtext) - used, "%s%s", t ? "," : "",
                         json_string_value(tag));
            }
            printf("%-24s %-9zu %-8zu %s\n", name, n, passing, tagtext);
            json_decref(list);
        }
        json_decref(inst);
    }
    if (json_out) {
        char *text = json_dumps(out, JSON_INDENT(2));
        if (text) printf("%s\n", text);
        sh_free(text);
    }
    json_decref(out);
    json_decref(services);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * shoal ps
 * ------------------------------------------------------------------------------------------ */
void cli_format_duration(char *out, size_t len, uint64_t ms)
{
    uint64_t s = ms / 1000;

    if (ms == 0)
        snprintf(out, len, "-");
    else if (s < 60)
        snprintf(out, len, "%llus", (unsigned long long)s);
    else if (s < 3600)
        snprintf(out, len, "%llum%llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(out, len, "%lluh%llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
}

const char *cli__str_of(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));

    return v ? v : "?";
}

int cli_cmd_ps(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("ps");
    bool json_out = false;
    struct cli_call c;
    json_t *list, *e;
    size_t i;

    if (json_flag_only(cmd, argc, argv, &json_out)) return 2;
    if (cli__api("GET", "/v1/instances", SLICE(""), 10000, &c)) return 1;
    if (c.status != 200) return cli__api_error("listing instances", &c);
    if (json_out) {
        fwrite(c.body.data, 1, c.body.len, stdout);
        buf_release(&c.body);
        return 0;
    }
    list = json_loadb(c.body.data, c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!json_is_array(list)) {
        fprintf(stderr, "shoal: the control plane sent something that is not an instance list\n");
        json_decref(list);
        return 1;
    }
    printf("%-16s %-20s %-8s %-6s %-11s %-12s %-8s %-8s %s\n", "SERVICE", "INSTANCE", "PID", "PORT",
           "STATE", "HEALTH", "RESTARTS", "RPS", "UPTIME");
    json_array_foreach(list, i, e)
    {
        char up[32];
        json_int_t ms = json_integer_value(json_object_get(e, "uptime_ms"));
        cli_format_duration(up, sizeof(up), ms > 0 ? (uint64_t)ms : 0);
        printf(
            "%-16s %-20s %-8lld %-6lld %-11s %-12s %-8lld %-8.1f %s\n", cli__str_of(e, "service"),
            cli__str_of(e, "id"), (long long)json_integer_value(json_object_get(e, "pid")),
            (long long)json_integer_value(json_object_get(e, "port")), cli__str_of(e, "state"),
            cli__str_of(e, "health"), (long long)json_integer_value(json_object_get(e, "restarts")),
            json_number_value(json_object_get(e, "rps")), up);
    }
    json_decref(list);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * shoal logs
 * ------------------------------------------------------------------------------------------ */
static volatile sig_atomic_t logs_interrupted;

static void logs_on_sigint(int sig)
{
    (void)sig;
    logs_interrupted = 1;
}

/* Prints the lines of one GET /v1/logs answer; *last_seq gets the newest line's number. */
static int print_logs(const struct cli_call *c, bool json_out, uint64_t *last_seq)
{
    json_t *list = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL), *e;
    size_t i;

    if (!json_is_array(list)) {
        fprintf(stderr, "shoal: the control plane sent something that is not a log list\n");
        json_decref(list);
        return 1;
    }
    json_array_foreach(list, i, e)
    {
        uint64_t ms = (uint64_t)json_integer_value(json_object_get(e, "ms"));
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(e, "seq"));
        if (json_out) {
            char *text = json_dumps(e, JSON_COMPACT);
            if (text) printf("%s\n", text);
            sh_free(text);
        } else {
            /* What a service wrote is shown, never obeyed: controls (ESC, C1) escaped. */
            struct buf text = BUF_INIT(0);
            time_t t = (time_t)(ms / 1000);
            struct tm tm;
            localtime_r(&t, &tm);
            buf_append_term_str(&text, slice_from_cstr(cli__str_of(e, "line")), 0,
                                SH_TERM_KEEP_TAB);
            printf("%02d:%02d:%02d.%03u %-20s %s%s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (unsigned)(ms % 1000), cli__str_of(e, "instance"),
                   !strcmp(cli__str_of(e, "stream"), "stderr") ? "! " : "",
                   text.data ? text.data : "");
            buf_release(&text);
        }
        if (seq > *last_seq) *last_seq = seq;
    }
    fflush(stdout);
    json_decref(list);
    return 0;
}

/* The options of `shoal logs` that become query parameters as they are (the server checks
 * them: a bad one is its 400, naming the parameter). */
static const struct {
    const char *opt, *param;
} logs_params[] = {
    {"--grep", "q"},      {"--level", "level"},       {"--trace", "trace"},
    {"--until", "until"}, {"--instance", "instance"}, {"--limit", "limit"},
};

int cli_cmd_logs(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("logs");
    const char *service = NULL, *values[SH_ARRAY_LEN(logs_params)] = {0};
    bool follow = false, json_out = false;
    uint64_t since_ms = 0, after = 0, ago;
    struct sh_diag d = {{0}, {0}};
    struct cli_call c;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t k = 0;
        while (k < SH_ARRAY_LEN(logs_params) && strcmp(a, logs_params[k].opt))
            k++;
        if (!strcmp(a, "-f") || !strcmp(a, "--follow")) {
            follow = true;
        } else if (!strcmp(a, "--json")) {
            json_out = true;
        } else if (k < SH_ARRAY_LEN(logs_params)) {
            if (!v || !*v) return cli_usage_error(cmd, "option '%s' needs a value", a);
            values[k] = argv[++i];
        } else if (!strcmp(a, "--since")) {
            if (!v) return cli_usage_error(cmd, "option '%s' needs a value", a);
            i++;
            if (sh_parse_duration_ms(slice_from_cstr(v), &ago, &d) < 0)
                return cli_usage_error(cmd, "--since: %s", d.what);
            since_ms = sh_wall_ms() > ago ? sh_wall_ms() - ago : 0;
        } else if (a[0] == '-' || service) {
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        } else {
            service = a;
        }
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    signal(SIGINT, logs_on_sigint);
    do {
        struct buf path = BUF_INIT(4096);
        buf_appendf(&path, "/v1/logs?since=%llu&after=%llu", (unsigned long long)since_ms,
                    (unsigned long long)after);
        if (service) {
            buf_appends(&path, SLICE("&service="));
            cli__escape(&path, service);
        }
        for (size_t k = 0; k < SH_ARRAY_LEN(logs_params); k++) {
            if (!values[k]) continue;
            buf_appendf(&path, "&%s=", logs_params[k].param);
            cli__escape(&path, values[k]);
        }
        rc = path.err ? 1 : cli__api("GET", path.data, SLICE(""), 10000, &c);
        buf_release(&path);
        if (rc) return 1;
        if (c.status != 200) return cli__api_error("reading logs", &c);
        rc = print_logs(&c, json_out, &after);
        buf_release(&c.body);
        for (int k = 0; follow && !rc && k < 5 && !logs_interrupted; k++)
            usleep(100 * 1000);
    } while (follow && !rc && !logs_interrupted);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * shoal down
 * ------------------------------------------------------------------------------------------ */
int cli_cmd_down(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("down");
    uint64_t timeout_ms = 60000, waited = 0;
    struct sh_diag d = {{0}, {0}};
    struct cli_call c;

    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--timeout"))
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        if (!v) return cli_usage_error(cmd, "option '%s' needs a value", argv[i]);
        i++;
        if (sh_parse_duration_ms(slice_from_cstr(v), &timeout_ms, &d) < 0)
            return cli_usage_error(cmd, "--timeout: %s", d.what);
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    if (cli__api("POST", "/v1/stop", SLICE(""), 10000, &c)) return 1;
    if (c.status != 202) return cli__api_error("stopping", &c);
    buf_release(&c.body);
    fprintf(stderr, "shoal down: stopping");
    /* done when the control plane, which stops last, no longer answers */
    cli__api_quiet = true;
    while (waited < timeout_ms) {
        if (cli__api("GET", "/v1/status", SLICE(""), 2000, &c)) {
            fprintf(stderr, ", stopped\n");
            return 0;
        }
        buf_release(&c.body);
        fputc('.', stderr);
        usleep(100 * 1000);
        waited += 100;
    }
    fprintf(stderr, "\nshoal down: still answering after %llu ms\n",
            (unsigned long long)timeout_ms);
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * shoal config
 * ------------------------------------------------------------------------------------------ */
static char *read_all(FILE *f, size_t *len)
{
    struct buf b = BUF_INIT(64 << 20);
    char chunk[65536];
    size_t n;

    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    if (b.err) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, len);
}

static int config_get(const char *key)
{
    struct buf path = BUF_INIT(2048);
    struct cli_call c;
    int rc;

    buf_appends(&path, SLICE("/v1/kv/"));
    cli__escape(&path, key);
    buf_appends(&path, SLICE("?raw"));
    rc = cli__api("GET", path.data, SLICE(""), 10000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status == 404) {
        fprintf(stderr, "shoal config: no key '%s'\n", key);
        buf_release(&c.body);
        return 1;
    }
    if (c.status != 200) return cli__api_error("config get", &c);
    fwrite(c.body.data ? c.body.data : "", 1, c.body.len, stdout);
    if (c.body.len && c.body.data[c.body.len - 1] != '\n' && isatty(1)) putchar('\n');
    buf_release(&c.body);
    return 0;
}

static int config_write(const char *method, const char *key, struct slice value, const char *query)
{
    struct buf path = BUF_INIT(2048);
    struct cli_call c;
    int rc;

    buf_appends(&path, SLICE("/v1/kv/"));
    cli__escape(&path, key);
    if (query) buf_appends(&path, slice_from_cstr(query));
    rc = cli__api(method, path.data, value, 10000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status != 200) return cli__api_error(method[0] == 'P' ? "config set" : "config del", &c);
    rc = c.body.len >= 4 && memcmp(c.body.data, "true", 4) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "shoal config: '%s' changed since index given by --cas; nothing written\n",
                key);
    buf_release(&c.body);
    return rc;
}

/* An answer the command prints: as it came with --json (true: done), else parsed into *arr
 * (NULL when it is not JSON) for a table. The body is released either way. */
static bool json_or_parse(struct cli_call *c, bool json_out, json_t **arr)
{
    *arr = NULL;
    if (json_out) {
        fwrite(c->body.data, 1, c->body.len, stdout);
        putchar('\n');
    } else {
        *arr = json_loadb(c->body.data, c->body.len, 0, NULL);
    }
    buf_release(&c->body);
    return json_out;
}

static int config_ls(const char *prefix, bool json_out)
{
    struct buf path = BUF_INIT(2048);
    struct cli_call c;
    json_t *arr, *e;
    size_t i;
    int rc;

    buf_appends(&path, SLICE("/v1/kv/"));
    cli__escape(&path, prefix);
    buf_appends(&path, SLICE("?recurse"));
    rc = cli__api("GET", path.data, SLICE(""), 10000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status == 404) {
        buf_release(&c.body);
        if (json_out) printf("[]\n");
        return 0;
    }
    if (c.status != 200) return cli__api_error("config ls", &c);
    if (json_or_parse(&c, json_out, &arr)) return 0;
    json_array_foreach(arr, i, e)
    {
        printf("%s\t(index %lld)\n", json_string_value(json_object_get(e, "Key")),
               (long long)json_integer_value(json_object_get(e, "ModifyIndex")));
    }
    json_decref(arr);
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int config_watch(const char *key, long count)
{
    struct buf path = BUF_INIT(2048);
    uint64_t index = 0;
    struct cli_call c;
    long seen = 0;

    signal(SIGINT, on_sigint);
    while (!interrupted && (count <= 0 || seen < count)) {
        buf_reset(&path);
        buf_appends(&path, SLICE("/v1/kv/"));
        cli__escape(&path, key);
        buf_appendf(&path, "?raw&index=%llu&wait=60s", (unsigned long long)index);
        if (cli__api("GET", path.data, SLICE(""), 75000, &c)) {
            sleep(1); /* the control plane is away: try again */
            continue;
        }
        /* the current value first (as consul watch does), then each change */
        if (c.index > index || index == 0) {
            printf("index %llu: ", (unsigned long long)c.index);
            if (c.status == 200)
                fwrite(c.body.data ? c.body.data : "", 1, c.body.len, stdout);
            else
                printf("(no key)");
            putchar('\n');
            fflush(stdout);
            if (index != 0) seen++;
            index = c.index;
        }
        buf_release(&c.body);
    }
    buf_release(&path);
    return 0;
}

static int config_history(const char *key, bool json_out)
{
    struct buf path = BUF_INIT(2048);
    struct cli_call c;
    json_t *arr, *e;
    size_t i;
    int rc;

    buf_appends(&path, SLICE("/v1/config/history/"));
    cli__escape(&path, key);
    rc = cli__api("GET", path.data, SLICE(""), 10000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status != 200) return cli__api_error("config history", &c);
    if (json_or_parse(&c, json_out, &arr)) return 0;
    printf("%-10s %s\n", "INDEX", "VALUE (base64)");
    json_array_foreach(arr, i, e)
    {
        const char *v = json_string_value(json_object_get(e, "Value"));
        printf("%-10lld %s\n", (long long)json_integer_value(json_object_get(e, "ModifyIndex")),
               json_is_true(json_object_get(e, "Deleted")) ? "(deleted)"
               : v                                         ? v
                                                           : "");
    }
    json_decref(arr);
    return 0;
}

int cli_cmd_config(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("config");
    const char *sub = argc > 1 ? argv[1] : NULL, *cas = NULL;
    bool json_out = false, recurse = false, secret = false;
    long count = 0;
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;

    if (!sub)
        return cli_usage_error(cmd, "missing subcommand (get, set, del, ls, watch, history, "
                                    "rollback)");
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json_out = true;
        } else if (!strcmp(argv[i], "--recurse")) {
            recurse = true;
        } else if (!strcmp(argv[i], "--secret")) {
            secret = true;
        } else if (!strcmp(argv[i], "--cas") || !strcmp(argv[i], "--count")) {
            if (i + 1 >= argc) return cli_usage_error(cmd, "option '%s' needs a value", argv[i]);
            uint64_t n;
            if (slice_to_u64(slice_from_cstr(argv[i + 1]), &n) != 0)
                return cli_usage_error(cmd, "%s: '%s' is not a number", argv[i], argv[i + 1]);
            if (!strcmp(argv[i], "--cas"))
                cas = argv[i + 1];
            else
                count = (long)n;
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            return cli_usage_error(cmd, "too many arguments");
        }
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(sub, "get") && npos == 1) return config_get(pos[0]);
    if (!strcmp(sub, "set") && npos == 2) {
        char query[64] = "";
        size_t len;
        char *data = NULL;
        struct slice v = slice_from_cstr(pos[1]);
        if (!strcmp(pos[1], "-")) {
            data = read_all(stdin, &len);
            if (!data) {
                fprintf(stderr, "shoal config set: stdin is too large\n");
                return 1;
            }
            v = (struct slice){data, len};
        }
        if (cas) snprintf(query, sizeof(query), "?cas=%s", cas);
        if (secret)
            snprintf(query + strlen(query), sizeof(query) - strlen(query), "%csecret",
                     cas ? '&' : '?');
        int rc = config_write("PUT", pos[0], v, query[0] ? query : NULL);
        sh_free(data);
        return rc;
    }
    if (!strcmp(sub, "del") && npos == 1)
        return config_write("DELETE", pos[0], SLICE(""), recurse ? "?recurse" : NULL);
    if (!strcmp(sub, "ls") && npos <= 1) return config_ls(npos ? pos[0] : "", json_out);
    if (!strcmp(sub, "watch") && npos == 1) return config_watch(pos[0], count);
    if (!strcmp(sub, "history") && npos == 1) return config_history(pos[0], json_out);
    if (!strcmp(sub, "rollback") && npos == 2) {
        struct buf path = BUF_INIT(2048);
        struct cli_call c;
        buf_appends(&path, SLICE("/v1/config/rollback/"));
        cli__escape(&path, pos[0]);
        buf_appends(&path, SLICE("?index="));
        buf_appends(&path, slice_from_cstr(pos[1]));
        int rc = cli__api("POST", path.data, SLICE(""), 10000, &c);
        buf_release(&path);
        if (rc) return 1;
        if (c.status != 200) return cli__api_error("config rollback", &c);
        buf_release(&c.body);
        return 0;
    }
    return cli_usage_error(cmd, "'%s': unknown subcommand or wrong number of arguments", sub);
}
