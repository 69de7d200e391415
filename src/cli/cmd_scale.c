/* SPDX-License-Identifier: MIT */
/* cmd_scale.c: commands that change what a running `shoal up` runs:
 *   shoal scale SERVICE N [--wait] [--timeout D] [connection options]
 *   shoal restart SERVICE [--wait] [--timeout D] [connection options]
 * Both ask the admin API (POST /v1/scale/:service, /v1/restart/:service) and, with --wait,
 * follow GET /v1/stack until the change is complete. */
#include "cli/cli_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct opts {
    const char *pos[2];
    size_t npos;
    bool wait;
    uint64_t timeout_ms;
};

/* Parses [--wait] [--timeout D] and up to <want> positionals (cli_main took the connection
 * options); -1 after a usage error (already printed; its exit status in *status). */
static int parse(const struct cli_command *cmd, int argc, char **argv, size_t want, struct opts *o,
                 int *status)
{
    struct sh_diag d = {{0}, {0}};

    *o = (struct opts){.timeout_ms = 120000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--wait")) {
            o->wait = true;
        } else if (!strcmp(a, "--timeout")) {
            if (!v) {
                *status = cli_usage_error(cmd, "option '%s' needs a value", a);
                return -1;
            }
            i++;
            if (sh_parse_duration_ms(slice_from_cstr(v), &o->timeout_ms, &d) < 0) {
                *status = cli_usage_error(cmd, "--timeout: %s", d.what);
                return -1;
            }
        } else if (a[0] == '-' || o->npos == want) {
            *status = cli_usage_error(cmd, "unexpected argument '%s'", a);
            return -1;
        } else {
            o->pos[o->npos++] = a;
        }
    }
    if (o->npos < want) {
        *status = cli_usage_error(cmd, want == 2 ? "expected SERVICE and a replica count"
                                                 : "expected a SERVICE");
        return -1;
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    return 0;
}

static json_int_t int_of(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* POSTs to <prefix><service> with <body>; the answer's JSON (caller decrefs), or NULL after
 * printing the error. */
static json_t *post(const char *prefix, const char *service, struct slice body, int expect,
                    const char *what)
{
    struct buf path = BUF_INIT(4096);
    struct cli_call c;
    json_t *j;
    int rc;

    buf_appends(&path, slice_from_cstr(prefix));
    cli__escape(&path, service);
    rc = path.err ? 1 : cli__api("POST", path.data, body, 10000, &c);
    buf_release(&path);
    if (rc) return NULL;
    if (c.status != expect) {
        cli__api_error(what, &c);
        return NULL;
    }
    j = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!j) fprintf(stderr, "shoal: %s: the control plane's answer is not JSON\n", what);
    return j;
}

/* The entry of <service> in GET /v1/stack (caller decrefs the returned root; *svc borrowed
 * from it), or NULL after printing why. */
static json_t *stack_entry(const char *service, json_t **svc)
{
    struct cli_call c;
    json_t *root, *e;
    size_t i;

    if (cli__api("GET", "/v1/stack", SLICE(""), 10000, &c)) return NULL;
    if (c.status != 200) {
        cli__api_error("reading the stack", &c);
        return NULL;
    }
    root = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
    buf_release(&c.body);
    json_array_foreach(json_object_get(root, "services"), i, e)
    {
        if (!strcmp(cli__str_of(e, "name"), service)) {
            *svc = e;
            return root;
        }
    }
    fprintf(stderr, "shoal: '%s' is not in the stack any more\n", service);
    json_decref(root);
    return NULL;
}

/* Polls the stack every 200 ms until done(entry) says 1 (success) or -1 (failure), or the
 * timeout. Progress on stderr: the line <progress> writes, rewritten when it changes. */
static int follow(const char *service, const struct opts *o,
                  int (*done)(const json_t *svc, char *line, size_t n))
{
    char line[256] = "", last[256] = "";
    uint64_t waited = 0;

    for (;;) {
        json_t *svc = NULL, *root = stack_entry(service, &svc);
        int st;
        if (!root) return 1;
        st = done(svc, line, sizeof(line));
        json_decref(root);
        if (strcmp(line, last)) {
            fprintf(stderr, "  %s\n", line);
            snprintf(last, sizeof(last), "%s", line);
        }
        if (st) return st > 0 ? 0 : 1;
        if (waited >= o->timeout_ms) {
            fprintf(stderr, "shoal: still not done after %llu ms (it goes on; see shoal ps)\n",
                    (unsigned long long)o->timeout_ms);
            return 1;
        }
        usleep(200 * 1000);
        waited += 200;
    }
}

static int scale_done(const json_t *svc, char *line, size_t n)
{
    json_int_t want = int_of(svc, "replicas"), live = int_of(svc, "instances");
    json_int_t ready = int_of(svc, "ready"), retiring = int_of(svc, "retiring");

    snprintf(line, n, "%lld of %lld ready, %lld instances, %lld stopping", (long long)ready,
             (long long)want, (long long)live, (long long)retiring);
    return live == want && ready == want && retiring == 0;
}

int cli_cmd_scale(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("scale");
    struct opts o;
    char body[64];
    uint64_t n;
    json_t *j;
    int status;

    if (parse(cmd, argc, argv, 2, &o, &status) < 0) return status;
    if (slice_to_u64(slice_from_cstr(o.pos[1]), &n) != 0 || n > 1000)
        return cli_usage_error(cmd, "replicas: expected a number from 0 to 1000, not '%s'",
                               o.pos[1]);
    snprintf(body, sizeof(body), "{\"replicas\":%llu}", (unsigned long long)n);
    j = post("/v1/scale/", o.pos[0], slice_from_cstr(body), 200, "scale");
    if (!j) return 1;
    fprintf(stderr, "shoal scale: %s: %lld -> %llu replicas\n", o.pos[0],
            (long long)int_of(j, "was"), (unsigned long long)n);
    json_decref(j);
    return o.wait ? follow(o.pos[0], &o, scale_done) : 0;
}

static int restart_done(const json_t *svc, char *line, size_t n)
{
    const json_t *r = json_object_get(svc, "restart");
    const char *state = cli__str_of(r, "state"), *msg = cli__str_of(r, "message");

    snprintf(line, n, "%s: %s, %lld stopping", state, msg, (long long)int_of(svc, "retiring"));
    if (!strcmp(state, "stopped")) return -1;
    return !strcmp(state, "done") && int_of(svc, "retiring") == 0; /* the last old one gone */
}

int cli_cmd_restart(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("restart");
    struct opts o;
    json_t *j;
    int status;

    if (parse(cmd, argc, argv, 1, &o, &status) < 0) return status;
    j = post("/v1/restart/", o.pos[0], SLICE(""), 202, "restart");
    if (!j) return 1;
    fprintf(stderr, "shoal restart: %s: replacing %lld instances one at a time\n", o.pos[0],
            (long long)int_of(j, "instances"));
    json_decref(j);
    return o.wait ? follow(o.pos[0], &o, restart_done) : 0;
}
