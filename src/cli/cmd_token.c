/* SPDX-License-Identifier: MIT */
/* cmd_token.c: `shoal token create|list|revoke` and `shoal audit`: the admin API's tokens and
 * its audit log (docs/security.md). */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* "2026-12-06T10:20:52Z" from Unix ms. */
static const char *iso_time(uint64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (!ms || !gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, n, "-");
    return out;
}

static uint64_t u64_of(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));

    return v > 0 ? (uint64_t)v : 0;
}

/* --json: prints the answer as it came and returns 0; else parses it into *out and returns -1
 * (go on), or 1 when it is not JSON. Releases c->body. */
static int take_json(struct cli_call *c, bool json_out, json_t **out)
{
    *out = NULL;
    if (json_out) {
        fwrite(c->body.data ? c->body.data : "", 1, c->body.len, stdout);
        putchar('\n');
        buf_release(&c->body);
        return 0;
    }
    *out = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
    buf_release(&c->body);
    if (*out) return -1;
    fprintf(stderr, "shoal: the control plane's answer is not JSON\n");
    return 1;
}

static int token_create(const char *scope, const char *prefix, const char *ttl, const char *name,
                        bool json_out)
{
    json_t *req = json_pack("{s:s}", "scope", scope), *o;
    struct cli_call c;
    char *body;
    int rc;

    if (prefix) json_object_set_new(req, "prefix", json_string(prefix));
    if (ttl) json_object_set_new(req, "ttl", json_string(ttl));
    if (name) json_object_set_new(req, "name", json_string(name));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body) {
        fprintf(stderr, "shoal token create: the name or prefix is not valid UTF-8\n");
        return 1;
    }
    rc = cli__api("POST", "/v1/tokens", slice_from_cstr(body), 10000, &c);
    sh_free(body);
    if (rc) return 1;
    if (c.status != 201) return cli__api_error("token create", &c);
    if ((rc = take_json(&c, json_out, &o)) >= 0) return rc;
    /* the text alone on stdout (for $(...)), what it is on stderr */
    printf("%s\n", cli__str_of(o, "token"));
    fprintf(stderr, "token %s: scope %s%s%s; shown once, keep it safe\n", cli__str_of(o, "id"),
            cli__str_of(o, "scope"), prefix ? ", keys under " : "", prefix ? prefix : "");
    json_decref(o);
    return 0;
}

static int token_list(bool json_out)
{
    struct cli_call c;
    int rc;
    json_t *arr, *e;
    size_t i;
    char t1[32], t2[32];

    if (cli__api("GET", "/v1/tokens", SLICE(""), 10000, &c)) return 1;
    if (c.status != 200) return cli__api_error("token list", &c);
    if ((rc = take_json(&c, json_out, &arr)) >= 0) return rc;
    printf("%-17s %-6s %-20s %-20s %-24s %s\n", "ID", "SCOPE", "CREATED", "EXPIRES", "PREFIX",
           "NAME");
    json_array_foreach(arr, i, e)
    {
        const char *prefix = cli__str_of(e, "prefix");
        printf("%-17s %-6s %-20s %-20s %-24s %s%s\n", cli__str_of(e, "id"), cli__str_of(e, "scope"),
               iso_time(u64_of(e, "created_ms"), t1, sizeof(t1)),
               json_is_true(json_object_get(e, "expired"))
                   ? "expired"
                   : iso_time(u64_of(e, "expires_ms"), t2, sizeof(t2)),
               prefix[0] ? prefix : "-", cli__str_of(e, "name"),
               json_is_true(json_object_get(e, "ephemeral")) ? " (until it stops)" : "");
    }
    json_decref(arr);
    return 0;
}

static int token_revoke(const char *id)
{
    struct buf path = BUF_INIT(256);
    struct cli_call c;
    int rc;

    buf_appends(&path, SLICE("/v1/tokens/"));
    cli__escape(&path, id);
    rc = path.err ? 1 : cli__api("DELETE", path.data, SLICE(""), 10000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status != 200) return cli__api_error("token revoke", &c);
    buf_release(&c.body);
    fprintf(stderr, "token %s revoked\n", id);
    return 0;
}

int cli_cmd_token(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("token");
    const char *sub = argc > 1 ? argv[1] : NULL;
    const char *scope = NULL, *prefix = NULL, *ttl = NULL, *name = NULL, *pos = NULL;
    bool json_out = false;

    if (!sub) return cli_usage_error(cmd, "missing subcommand (create, list, revoke)");
    for (int i = 2; i < argc; i++) {
        const char **slot = !strcmp(argv[i], "--scope")    ? &scope
                            : !strcmp(argv[i], "--prefix") ? &prefix
                            : !strcmp(argv[i], "--ttl")    ? &ttl
                            : !strcmp(argv[i], "--name")   ? &name
                                                           : NULL;
        if (slot) {
            if (i + 1 >= argc) return cli_usage_error(cmd, "option '%s' needs a value", argv[i]);
            *slot = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json_out = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (!pos) {
            pos = argv[i];
        } else {
            return cli_usage_error(cmd, "too many arguments");
        }
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    if (!strcmp(sub, "create")) {
        if (pos) return cli_usage_error(cmd, "create takes no argument ('%s')", pos);
        if (!scope) return cli_usage_error(cmd, "create needs --scope read|write|admin");
        if (strcmp(scope, "read") && strcmp(scope, "write") && strcmp(scope, "admin"))
            return cli_usage_error(cmd, "--scope: '%s' is not read, write or admin", scope);
        return token_create(scope, prefix, ttl, name, json_out);
    }
    if (scope || prefix || ttl || name)
        return cli_usage_error(cmd, "--scope, --prefix, --ttl and --name go with create");
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) {
        if (pos) return cli_usage_error(cmd, "list takes no argument ('%s')", pos);
        return token_list(json_out);
    }
    if (!strcmp(sub, "revoke")) {
        if (!pos) return cli_usage_error(cmd, "revoke needs the token's ID (shoal token list)");
        return token_revoke(pos);
    }
    return cli_usage_error(cmd, "unknown subcommand '%s' (create, list, revoke)", sub);
}

int cli_cmd_audit(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("audit");
    const char *since = NULL, *token = NULL, *limit = NULL;
    bool json_out = false;
    struct buf path = BUF_INIT(512);
    struct cli_call c;
    json_t *arr, *e;
    size_t i;
    char t[32];
    int rc;

    for (int a = 1; a < argc; a++) {
        const char **slot = !strcmp(argv[a], "--since")      ? &since
                            : !strcmp(argv[a], "--token-id") ? &token
                            : !strcmp(argv[a], "--limit")    ? &limit
                                                             : NULL;
        if (slot) {
            if (a + 1 >= argc) return cli_usage_error(cmd, "option '%s' needs a value", argv[a]);
            *slot = argv[++a];
        } else if (!strcmp(argv[a], "--json")) {
            json_out = true;
        } else {
            return cli_usage_error(cmd, "unknown argument '%s'", argv[a]);
        }
    }
    buf_appends(&path, SLICE("/v1/audit?"));
    if (since) {
        uint64_t ms;
        struct sh_diag d = {{0}, {0}};
        if (sh_parse_duration_ms(slice_from_cstr(since), &ms, &d) < 0)
            return cli_usage_error(cmd, "--since: %s", d.what);
        buf_appendf(&path, "since=%llu&", (unsigned long long)(sh_wall_ms() - ms));
    }
    if (limit) {
        uint64_t n;
        if (slice_to_u64(slice_from_cstr(limit), &n) < 0 || n == 0 || n > 10000)
            return cli_usage_error(cmd, "--limit: '%s' is not a number from 1 to 10000", limit);
        buf_appendf(&path, "limit=%llu&", (unsigned long long)n);
    }
    if (token) {
        buf_appends(&path, SLICE("token="));
        cli__escape(&path, token);
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    rc = path.err ? 1 : cli__api("GET", path.data, SLICE(""), 10000, &c);
    buf_release(&path);
    if (rc) return 1;
    if (c.status != 200) return cli__api_error("audit", &c);
    if ((rc = take_json(&c, json_out, &arr)) >= 0) return rc;
    printf("%-20s %-17s %-6s %-6s %-40s %s\n", "TIME", "TOKEN", "STATUS", "METHOD", "PATH", "FROM");
    json_array_foreach(arr, i, e)
    {
        const char *tok = cli__str_of(e, "token");
        printf("%-20s %-17s %-6lld %-6s %-40s %s\n", iso_time(u64_of(e, "time_ms"), t, sizeof(t)),
               tok[0] ? tok : "(none)", (long long)json_integer_value(json_object_get(e, "status")),
               cli__str_of(e, "method"), cli__str_of(e, "path"), cli__str_of(e, "peer"));
    }
    json_decref(arr);
    return 0;
}
