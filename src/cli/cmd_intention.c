/* SPDX-License-Identifier: MIT */
/* cmd_intention.c: `shoal intention allow|deny|delete|check` and `shoal intentions`: which
 * service may call which (docs/security.md, "Intentions"). */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* The comma-joined strings of a JSON array member, or "*" when empty. */
static const char *joined(const json_t *o, const char *key, char *out, size_t n)
{
    const json_t *a = json_object_get(o, key), *v;
    size_t i, used = 0;

    out[0] = '\0';
    json_array_foreach(a, i, v)
    {
        int w = snprintf(out + used, n - used, "%s%s", used ? "," : "",
                         json_string_value(v) ? json_string_value(v) : "");
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    return out[0] ? out : "*";
}

static int list(bool json_out)
{
    struct cli_call c;
    json_t *o, *e;
    size_t i;
    char m[128], p[600];

    if (cli__api("GET", "/v1/intentions", SLICE(""), 10000, &c)) return 1;
    if (c.status != 200) return cli__api_error("intentions", &c);
    if (json_out) {
        fwrite(c.body.data ? c.body.data : "", 1, c.body.len, stdout);
        putchar('\n');
        buf_release(&c.body);
        return 0;
    }
    o = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!o) {
        fprintf(stderr, "shoal: the control plane's answer is not JSON\n");
        return 1;
    }
    printf("%-17s %-6s %-16s %-16s %-12s %-24s %s\n", "ID", "ACTION", "FROM", "TO", "METHODS",
           "PATHS", "SOURCE");
    json_array_foreach(json_object_get(o, "intentions"), i, e)
    {
        printf("%-17s %-6s %-16s %-16s %-12s %-24s %s\n", cli__str_of(e, "id"),
               cli__str_of(e, "action"), cli__str_of(e, "from"), cli__str_of(e, "to"),
               joined(e, "methods", m, sizeof(m)), joined(e, "paths", p, sizeof(p)),
               cli__str_of(e, "source"));
    }
    printf("default: %s (no rule matches)\n", cli__str_of(o, "default"));
    json_decref(o);
    return 0;
}

int cli_cmd_intentions(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("intentions");
    bool json_out = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") != 0)
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
        json_out = true;
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    return list(json_out);
}

int cli_cmd_intention(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("intention");
    const char *sub = argc > 1 ? argv[1] : NULL, *pos[2] = {NULL, NULL};
    json_t *methods, *paths;
    bool json_out = false;
    int npos = 0, rc;
    struct cli_call c;

    if (!sub) return cli_usage_error(cmd, "missing subcommand (allow, deny, delete, check)");
    json_set_alloc_funcs(sh_malloc, sh_free);
    methods = json_array();
    paths = json_array();
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--method") || !strcmp(argv[i], "--path")) {
            if (i + 1 >= argc) {
                json_decref(methods);
                json_decref(paths);
                return cli_usage_error(cmd, "option '%s' needs a value", argv[i]);
            }
            json_array_append_new(!strcmp(argv[i], "--method") ? methods : paths,
                                  json_string(argv[i + 1]));
            i++;
        } else if (!strcmp(argv[i], "--json")) {
            json_out = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            json_decref(methods);
            json_decref(paths);
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            json_decref(methods);
            json_decref(paths);
            return cli_usage_error(cmd, "too many arguments");
        }
    }
    if (!strcmp(sub, "allow") || !strcmp(sub, "deny")) {
        if (npos != 2) {
            json_decref(methods);
            json_decref(paths);
            return cli_usage_error(cmd, "%s needs FROM and TO", sub);
        }
        json_t *req = json_pack("{s:s, s:s, s:s, s:o, s:o}", "from", pos[0], "to", pos[1], "action",
                                sub, "methods", methods, "paths", paths);
        char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!body) {
            fprintf(stderr, "shoal intention: the arguments are not valid UTF-8\n");
            return 1;
        }
        rc = cli__api("POST", "/v1/intentions", slice_from_cstr(body), 10000, &c);
        sh_free(body);
        if (rc) return 1;
        if (c.status != 201) return cli__api_error("intention", &c);
        if (json_out) {
            fwrite(c.body.data ? c.body.data : "", 1, c.body.len, stdout);
            putchar('\n');
        } else {
            json_t *o = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
            fprintf(stderr, "intention %s: %s %s -> %s (in force for new requests)\n",
                    cli__str_of(o, "id"), sub, pos[0], pos[1]);
            json_decref(o);
        }
        buf_release(&c.body);
        return 0;
    }
    if (!strcmp(sub, "check")) {
        struct buf path = BUF_INIT(2048);
        json_t *m0 = json_array_get(methods, 0), *p0 = json_array_get(paths, 0);
        if (npos != 2) {
            json_decref(methods);
            json_decref(paths);
            return cli_usage_error(cmd, "check needs FROM and TO");
        }
        buf_appends(&path, SLICE("/v1/intentions/check?from="));
        cli__escape(&path, pos[0]);
        buf_appends(&path, SLICE("&to="));
        cli__escape(&path, pos[1]);
        buf_appends(&path, SLICE("&method="));
        cli__escape(&path, m0 ? json_string_value(m0) : "GET");
        buf_appends(&path, SLICE("&path="));
        cli__escape(&path, p0 ? json_string_value(p0) : "/");
        json_decref(methods);
        json_decref(paths);
        rc = path.err ? 1 : cli__api("GET", path.data, SLICE(""), 10000, &c);
        buf_release(&path);
        if (rc) return 1;
        if (c.status != 200) return cli__api_error("intention check", &c);
        json_t *o = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
        if (json_out) {
            fwrite(c.body.data ? c.body.data : "", 1, c.body.len, stdout);
            putchar('\n');
        } else {
            printf("%s (%s)\n", json_is_true(json_object_get(o, "allow")) ? "allowed" : "denied",
                   cli__str_of(o, "why"));
        }
        rc = json_is_true(json_object_get(o, "allow")) ? 0 : 1;
        json_decref(o);
        buf_release(&c.body);
        return rc;
    }
    json_decref(methods);
    json_decref(paths);
    if (!strcmp(sub, "delete") || !strcmp(sub, "rm")) {
        struct buf path = BUF_INIT(256);
        if (npos != 1) return cli_usage_error(cmd, "delete needs the intention's ID");
        buf_appends(&path, SLICE("/v1/intentions/"));
        cli__escape(&path, pos[0]);
        rc = path.err ? 1 : cli__api("DELETE", path.data, SLICE(""), 10000, &c);
        buf_release(&path);
        if (rc) return 1;
        if (c.status != 200) return cli__api_error("intention delete", &c);
        buf_release(&c.body);
        fprintf(stderr, "intention %s deleted\n", pos[0]);
        return 0;
    }
    return cli_usage_error(cmd, "unknown subcommand '%s' (allow, deny, delete, check)", sub);
}
