/* SPDX-License-Identifier: MIT */
/* cmd_top.c: `shoal top`: a live table per service from the admin API: GET /v1/stack
 * (instances ready and wanted) and GET /v1/topology (the last minute of each service from the
 * metrics history: requests/s, error ratio, p50, p99, and the SLO's budget left). Redrawn every
 * --interval on a terminal; one snapshot with --once or when stdout is not a terminal.
 * Thread: main. */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t top_interrupted;

static void top_on_sigint(int sig)
{
    (void)sig;
    top_interrupted = 1;
}

/* GET <path> as JSON: the object, or NULL after printing why. */
static json_t *get_json(const char *path, const char *what)
{
    struct cli_call c;
    json_t *j;

    if (cli__api("GET", path, SLICE(""), 10000, &c)) return NULL;
    if (c.status != 200) {
        cli__api_error(what, &c);
        return NULL;
    }
    j = json_loadb(c.body.data, c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!json_is_object(j)) {
        fprintf(stderr, "shoal: %s: the control plane sent something that is not JSON\n", what);
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *node_of(json_t *topo, const char *service)
{
    json_t *nodes = json_object_get(topo, "nodes"), *n;
    size_t i;

    json_array_foreach(nodes, i, n)
    {
        if (!strcmp(cli__str_of(n, "id"), service)) return n;
    }
    return NULL;
}

static json_t *copy_num(json_t *o, const char *key)
{
    json_t *v = o ? json_object_get(o, key) : NULL;

    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

/* One snapshot: {"t": ..., "services": [{service, ready, wanted, instances, rps, error_ratio,
 * p50, p99, budget_left}]} (numbers null when there is nothing behind them). */
static json_t *snapshot(void)
{
    json_t *stack = get_json("/v1/stack", "reading the stack");
    json_t *topo = stack ? get_json("/v1/topology", "reading the service map") : NULL;
    json_t *out, *arr, *s;
    size_t i;

    if (!topo) {
        json_decref(stack);
        return NULL;
    }
    arr = json_array();
    json_array_foreach(json_object_get(stack, "services"), i, s)
    {
        const char *name = cli__str_of(s, "name");
        json_t *n = node_of(topo, name), *slo = n ? json_object_get(n, "slo") : NULL;
        json_array_append_new(
            arr, json_pack("{s:s,s:O,s:O,s:O,s:o,s:o,s:o,s:o,s:o}", "service", name, "ready",
                           json_object_get(s, "ready"), "wanted", json_object_get(s, "replicas"),
                           "instances", json_object_get(s, "instances"), "rps", copy_num(n, "rps"),
                           "error_ratio", copy_num(n, "error_ratio"), "p50", copy_num(n, "p50"),
                           "p99", copy_num(n, "p99"), "budget_left", copy_num(slo, "budget_left")));
    }
    out = json_pack("{s:O,s:o}", "t", json_object_get(topo, "t"), "services", arr);
    json_decref(stack);
    json_decref(topo);
    return out;
}

/* "12.3" or "-" for a null. */
static const char *fmt_num(char *buf, size_t n, json_t *v, double scale, const char *unit)
{
    if (!json_is_number(v)) return "-";
    snprintf(buf, n, "%.1f%s", json_number_value(v) * scale, unit);
    return buf;
}

static void print_table(json_t *snap)
{
    json_t *s;
    size_t i;

    printf("%-20s %-9s %9s %8s %9s %9s %8s\n", "SERVICE", "READY", "RPS", "ERR%", "P50", "P99",
           "BUDGET");
    json_array_foreach(json_object_get(snap, "services"), i, s)
    {
        char ready[24], rps[24], err[24], p50[24], p99[24], budget[24];
        snprintf(ready, sizeof(ready), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(s, "ready")),
                 (long long)json_integer_value(json_object_get(s, "wanted")));
        printf("%-20s %-9s %9s %8s %9s %9s %8s\n", cli__str_of(s, "service"), ready,
               fmt_num(rps, sizeof(rps), json_object_get(s, "rps"), 1, ""),
               fmt_num(err, sizeof(err), json_object_get(s, "error_ratio"), 100, ""),
               fmt_num(p50, sizeof(p50), json_object_get(s, "p50"), 1, "ms"),
               fmt_num(p99, sizeof(p99), json_object_get(s, "p99"), 1, "ms"),
               fmt_num(budget, sizeof(budget), json_object_get(s, "budget_left"), 100, "%"));
    }
}

int cli_cmd_top(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("top");
    bool json_out = false, once = false, is_tty = isatty(STDOUT_FILENO) == 1;
    uint64_t interval_ms = 1000;

    for (int i = 1; i < argc; i++) {
        struct sh_diag d = {{0}, {0}};
        if (!strcmp(argv[i], "--json")) {
            json_out = true;
        } else if (!strcmp(argv[i], "--once")) {
            once = true;
        } else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
            if (sh_parse_duration_ms(slice_from_cstr(argv[++i]), &interval_ms, &d) < 0 ||
                interval_ms < 100 || interval_ms > 3600000)
                return cli_usage_error(cmd, "--interval: expected a duration from 100ms to 1h");
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        }
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    if (!is_tty) once = true;
    signal(SIGINT, top_on_sigint);
    for (;;) {
        json_t *snap = snapshot();
        if (!snap) return 1;
        if (json_out) {
            char *text = json_dumps(snap, JSON_COMPACT);
            if (text) printf("%s\n", text);
            sh_free(text);
        } else {
            if (!once) printf("\x1b[H\x1b[2J"); /* home, clear: redraw in place */
            print_table(snap);
        }
        json_decref(snap);
        fflush(stdout);
        if (once) return 0;
        for (uint64_t slept = 0; slept < interval_ms && !top_interrupted; slept += 100)
            usleep(100 * 1000);
        if (top_interrupted) return 0;
    }
}
