/* SPDX-License-Identifier: MIT */
/* cli.c: the subcommand table, help, and dispatch. Each command lives in its own file
 * (cli/cmd_<name>.c) and is declared in cli_int.h. */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* What every CLI_F_CONNECT command's help ends with (docs/cli.md says the same). */
#define CONNECT_HELP                                                                               \
    "\nConnection (the same for every command that talks to the control plane):\n"                 \
    "  --addr ADDR         the control plane's admin API (default: SHOAL_ADDR, else\n"             \
    "                      127.0.0.1:7700)\n"                                                      \
    "  --token TOKEN       the API token (default: SHOAL_TOKEN)\n"                                 \
    "  --data-dir DIR      read the token from DIR/token (the data directory of the stack)\n"      \
    "Without any of the three, the token is read from the data directory that the `shoal up`\n"    \
    "or `shoal server` at ADDR published in $XDG_RUNTIME_DIR/shoal (or /tmp/shoal-UID), else\n"    \
    "from ./.shoal/token.\n"

/* The one table of subcommands (style.md B12). Hidden commands are left out of the list. */
static const struct cli_command commands[] = {
    {"version", cli_cmd_version, "print the version", "shoal version [--json]",
     "Prints shoal's version. --json prints {\"version\": ..., \"build\": ...}.\n", 0},
    {"help", cli_cmd_help, "show help for a command", "shoal help [COMMAND]",
     "Shows the list of commands, or the full help of one.\n", 0},
    {"echo", cli_cmd_echo, "run an HTTP echo server (a test upstream)",
     "shoal echo [--listen ADDR] [--name NAME] [--delay DURATION] [--status CODE]",
     "Runs a small HTTP server that answers every request with a JSON description of it\n"
     "(method, target, headers, body size), streams the body back for POST/PUT to /echo,\n"
     "and answers GET /health. SIGINT/SIGTERM stop it gracefully (in-flight requests finish).\n"
     "Useful as an upstream for the gateway, the examples and the benchmarks.\n\n"
     "  --listen ADDR       address to listen on (default 127.0.0.1:8081; a port alone works)\n"
     "  --name NAME         name reported in the X-Served-By header (default: echo)\n"
     "  --delay DURATION    wait this long before answering (e.g. 250ms)\n"
     "  --status CODE       answer with this status (default 200)\n"
     "  --log-level LEVEL   debug, info, warn, error (default info)\n"
     "  --timeout-header D  time allowed for a request head (default 10s; 408 after)\n"
     "  --timeout-body D    silence allowed inside a request body (default 30s)\n"
     "  --timeout-idle D    keep-alive connections close after D idle (default 60s)\n"
     "  --timeout-send D    time allowed without write progress (default 60s)\n"
     "  --shutdown-grace D  on SIGTERM, in-flight requests get D to finish (default 5s)\n",
     0},
    {"services", cli_cmd_services, "list services and their instances' health",
     "shoal services [--json] [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Lists the services registered with the control plane, with their instance and passing\n"
     "counts and tags. --json prints every instance with its address, port and "
     "status.\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"ps", cli_cmd_ps, "list the instances `shoal up` runs",
     "shoal ps [--json] [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Lists every instance the `shoal up` behind ADDR runs: service, instance, pid, port,\n"
     "process state (starting, running, backoff, crash-loop, draining, ...), health (passing,\n"
     "critical, ...), restarts, requests/s through the gateway and the mesh over the last\n"
     "second, and uptime. --json prints the same as a JSON array.\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"top", cli_cmd_top, "a live table of the services' traffic, latency and SLO budget",
     "shoal top [--once] [--json] [--interval DURATION] [--addr ADDR] [--token TOKEN]\n"
     "       [--data-dir DIR]",
     "Shows, per service of the `shoal up` behind ADDR: instances ready/wanted, and over the\n"
     "last minute (the metrics history): requests/s, error % (5xx and requests without a\n"
     "response), p50 and p99 latency, and the error budget left of its SLO (manifest slo).\n"
     "Redrawn every --interval (default 1s) on a terminal until Ctrl-C; one snapshot with\n"
     "--once or when stdout is not a terminal. --json prints snapshots as JSON "
     "lines.\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"logs", cli_cmd_logs, "search the services' output and the access logs `shoal up` keeps",
     "shoal logs [SERVICE] [-f] [--grep TEXT] [--level LEVEL] [--trace ID] [--since DURATION]\n"
     "       [--until MS] [--instance ID] [--limit N] [--json] [--addr ADDR] [--token TOKEN]\n"
     "       [--data-dir DIR]",
     "Prints the lines the instances wrote (stdout, and stderr marked '!') and the access lines\n"
     "of the gateway and the mesh (service 'gateway' / 'mesh'), oldest first, from the log\n"
     "store of the `shoal up` behind ADDR (DATA_DIR/logs.sqlite, bounded by size and age):\n"
     "the newest --limit lines that match every option. Control characters are shown, not\n"
     "obeyed: ESC as \\u001b, other C0 and C1 controls as \\u00XX (a tab stays); --json\n"
     "gives the lines as they were.\n\n"
     "  SERVICE             only this service's lines ('gateway', 'mesh': access lines)\n"
     "  -f, --follow        keep printing new lines until Ctrl-C\n"
     "  --grep TEXT         full-text search: lines with every word of TEXT (\"a phrase\",\n"
     "                      pre* for a prefix; case does not matter)\n"
     "  --level LEVEL       lines at LEVEL or above (trace, debug, info, warn, error, fatal);\n"
     "                      a line's level comes from its JSON, or a leading ERROR/WARN...\n"
     "  --trace ID          lines that carry this trace id (32 hex digits)\n"
     "  --since DURATION    only lines from the last DURATION (e.g. 10m)\n"
     "  --until MS          only lines up to this time (Unix ms, or a duration ago)\n"
     "  --instance ID       only this instance's lines (e.g. api-2)\n"
     "  --limit N           at most N lines (default 1000, at most 10000)\n"
     "  --json              one JSON object per line: seq, ms, service, instance, stream,\n"
     "                      line, level, message, trace_id, span_id\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"traces", cli_cmd_traces, "list recent traces from the span store",
     "shoal traces [--service S] [--min DURATION] [--limit N] [--lookback DURATION] [--json]\n"
     "       [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Lists the most recent traces the control plane stores (Zipkin's /api/v2/traces), newest\n"
     "first: trace id, start, duration (first start to last end), span count, whether a span\n"
     "failed, and the root span's service and name.\n\n"
     "  --service S         only traces with a span of service S\n"
     "  --min DURATION      only traces with a span of S (any service without --service)\n"
     "                      lasting at least DURATION (e.g. 100ms)\n"
     "  --limit N           at most N traces (default 20, at most 1000)\n"
     "  --lookback DURATION traces that started in the last DURATION (default 1h)\n"
     "  --json              a JSON array: trace_id, root_service, root_name, start_us,\n"
     "                      duration_us, spans, error\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"trace", cli_cmd_trace, "show one trace as a waterfall",
     "shoal trace ID [--json] [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Prints the spans of trace ID (16 or 32 hex digits) as a waterfall: one line per span,\n"
     "indented under its parent, with a bar placed and scaled on the trace's duration, the\n"
     "span's duration, and its kind; failed spans are marked ERROR (red on a terminal).\n"
     "--json prints the spans as the Zipkin v2 JSON the API returns. Exit 1 when the trace is\n"
     "not stored.\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"scale", cli_cmd_scale, "change how many instances of a service `shoal up` runs",
     "shoal scale SERVICE N [--wait] [--timeout DURATION] [--addr ADDR] [--token TOKEN]\n"
     "       [--data-dir DIR]",
     "Sets the replica count of SERVICE in the `shoal up` behind ADDR. New instances start\n"
     "and register once healthy; extra ones are deregistered, drained (no new requests, those\n"
     "under way finish) and stopped, the newest or unhealthy ones first. An autoscaled service\n"
     "keeps scaling from the new count.\n\n"
     "  --wait              wait until N instances are ready (progress on stderr)\n"
     "  --timeout DURATION  how long --wait waits (default 2m); exit 1 after it\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"restart", cli_cmd_restart, "replace a service's instances one at a time",
     "shoal restart SERVICE [--wait] [--timeout DURATION] [--addr ADDR] [--token TOKEN]\n"
     "       [--data-dir DIR]",
     "Rolling restart of SERVICE in the `shoal up` behind ADDR: for each instance, a new\n"
     "one starts and, once it passes its health check, the old one is drained and stopped, so\n"
     "the service never has fewer ready instances (a service on one fixed port cannot run two:\n"
     "there the old one stops first). A new instance that does not become ready stops the\n"
     "restart; the instances not yet replaced keep running.\n\n"
     "  --wait              wait until it is done (exit 1 if it stopped), progress on stderr\n"
     "  --timeout DURATION  how long --wait waits (default 2m)\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"down", cli_cmd_down, "stop the `shoal up` behind ADDR",
     "shoal down [--timeout DURATION] [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Asks the `shoal up` behind ADDR to stop everything, as Ctrl-C would (gateway drained,\n"
     "instances stopped, then the control plane), and waits until it has (--timeout, default\n"
     "60s).\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"config", cli_cmd_config, "read and change configuration in the control plane",
     "shoal config get KEY | set KEY VALUE|- [--cas INDEX] [--secret] | del KEY [--recurse] |\n"
     "       ls [PREFIX] [--json] | watch KEY [--count N] | history KEY [--json] |\n"
     "       rollback KEY INDEX    [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Reads and writes the control plane's configuration keys (writes need the token).\n\n"
     "  get KEY               print the value\n"
     "  set KEY VALUE         write it ('-' reads stdin); --cas INDEX writes only if the key's\n"
     "                        index is still INDEX (0: only if absent); exit 1 on a conflict;\n"
     "                        --secret marks the value secret: read tokens see that it exists,\n"
     "                        not its value (write/admin tokens and prefix tokens do)\n"
     "  del KEY               delete it; --recurse deletes everything under KEY\n"
     "  ls [PREFIX]           list keys (with --json: values, base64, and indexes)\n"
     "  watch KEY             print the value, then each new one as it changes\n"
     "                        (--count N: stop after N changes)\n"
     "  history KEY           the last versions, newest first\n"
     "  rollback KEY INDEX    write the value the key had at INDEX again\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"token", cli_cmd_token, "create, list and revoke API tokens",
     "shoal token create --scope read|write|admin [--prefix PREFIX] [--ttl DURATION]\n"
     "       [--name NAME] [--json] | list [--json] | revoke ID   [--addr ADDR] [--token TOKEN]\n"
     "       [--data-dir DIR]",
     "Manages the control plane's API tokens (needs an admin token, such as the stack's own\n"
     "in DATA_DIR/token). Every API route but GET /v1/status needs a token.\n\n"
     "  create              make a token and print it on stdout, once (only its hash is kept)\n"
     "    --scope SCOPE     read: every read; write: reads and writes (config, registry,\n"
     "                      scale, restart); admin: everything, tokens and the audit log too\n"
     "    --prefix PREFIX   only config keys under PREFIX (e.g. config/web/), nothing else\n"
     "    --ttl DURATION    it stops working after DURATION (e.g. 24h); default: never\n"
     "    --name NAME       what it is for (shown in lists and the audit log)\n"
     "  list                the tokens: id, scope, created, expires, prefix, name\n"
     "  revoke ID           it stops working at once\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"intention", cli_cmd_intention, "allow or deny calls between services",
     "shoal intention allow|deny FROM TO [--method M]... [--path PREFIX]... [--json] |\n"
     "       delete ID | check FROM TO [--method M] [--path P]   [--addr ADDR] [--token TOKEN]\n"
     "       [--data-dir DIR]",
     "Manages intentions: which service (FROM: a service, '*', or 'gateway') may call which\n"
     "(TO: a service or '*'), enforced by the mesh for new requests within a second; a refusal\n"
     "is 403 naming the rule. The most specific rule wins (an exact FROM before '*', an exact\n"
     "TO before '*', rules with methods or paths before those without, deny before allow);\n"
     "none: the manifest's security.default. Changes need an admin token.\n\n"
     "  allow|deny FROM TO  add a rule; --method and --path (a prefix) narrow it (repeatable)\n"
     "  delete ID           remove a rule made here (manifest rules: change the manifest)\n"
     "  check FROM TO       what the mesh would decide for one call, and which rule decides\n"
     "                      (exit 0 allowed, 1 denied)\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"intentions", cli_cmd_intentions, "list the intentions in force",
     "shoal intentions [--json] [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "Lists the intentions in the order they are tried, with their id, action, caller,\n"
     "destination, methods, paths and source (manifest or api), and the default.\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"ca", cli_cmd_ca, "show or rotate the control plane's CA",
     "shoal ca show [--json] | rotate [--json]   [--addr ADDR] [--token TOKEN] [--data-dir DIR]",
     "The control plane's CA, which signs the services' certificates (identities\n"
     "spiffe://<trust domain>/service/<name>; docs/security.md).\n\n"
     "  show      the trust domain and every CA in the bundle, newest first: state (active:\n"
     "            signs new certificates; retiring: trusted until its last certificate\n"
     "            expires), subject, validity, serial and SHA-256 fingerprint (needs a read\n"
     "            token); --json: the API's answer, with the bundle's PEM\n"
     "  rotate    make a new CA that signs from now on; the old one retires (needs an admin\n"
     "            token). Instances under `shoal up` get new certificates within a "
     "second\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"audit", cli_cmd_audit, "show the audit log of API writes",
     "shoal audit [--since DURATION] [--token-id ID] [--limit N] [--json] [--addr ADDR]\n"
     "       [--token TOKEN] [--data-dir DIR]",
     "Prints the control plane's audit log, oldest first: every request to a route that\n"
     "writes (allowed or refused), with the time, the token's id, the status, the method,\n"
     "the path and the peer (needs an admin token). Never holds a token or a body.\n\n"
     "  --since DURATION    only the last DURATION (e.g. 1h)\n"
     "  --token-id ID       only requests made with this token (\"\" for none)\n"
     "  --limit N           at most the N newest (default and maximum 10000)\n"
     "  --json              the entries as a JSON array\n" CONNECT_HELP,
     CLI_F_CONNECT},
    {"fetch", cli_cmd_fetch, "make an HTTP request and print the response",
     "shoal fetch [-X METHOD] [-H 'Name: value']... [-d DATA | -T FILE] [-i] [-n COUNT] URL",
     "Sends an HTTP/1.1 request with shoal's own client and prints the response body.\n\n"
     "  -X METHOD    request method (default GET, or POST with -d/-T)\n"
     "  -H FIELD     add a header field, 'Name: value' (repeatable)\n"
     "  -d DATA      send DATA as the body\n"
     "  -T FILE      stream FILE as the body ('-' for stdin)\n"
     "  -i           print the status line and headers too\n"
     "  -n COUNT     send the request COUNT times over the pooled connection\n"
     "  --stats      print the client's connection statistics as JSON on stderr\n"
     "  --timeout D  give up after D (default 30s)\n"
     "Exit status: 0 for a 2xx/3xx answer, 1 for 4xx/5xx or a transport error, 2 for usage.\n",
     0},
};

/* The role commands main.c adds; set once by cli_main. */
static const struct cli_command *role_commands;
static size_t nrole_commands;

const struct cli_command *cli_find(const char *name)
{
    for (size_t i = 0; i < nrole_commands; i++) {
        if (strcmp(role_commands[i].name, name) == 0) return &role_commands[i];
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    }
    return NULL;
}

static void print_usage(FILE *out)
{
    fprintf(out, "shoal %s: one binary for a microservice platform\n\n", SHOAL_VERSION);
    fprintf(out, "Usage: shoal COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < nrole_commands; i++) {
        if (role_commands[i].name[0] == '_') /* internal ("__child") */
            continue;
        fprintf(out, "  %-10s %s\n", role_commands[i].name, role_commands[i].summary);
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'shoal help COMMAND' or 'shoal COMMAND --help' for a command's options.\n");
}

void cli__print_help(const struct cli_command *c, FILE *out)
{
    fprintf(out, "Usage: %s\n\n%s", c->usage, c->help);
}

int cli_usage_error(const struct cli_command *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "shoal %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUsage: %s\n", c->usage);
    return 2;
}

bool cli__wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
        if (strcmp(argv[i], "--") == 0) break;
    }
    return false;
}

int cli_cmd_help(int argc, char **argv)
{
    const struct cli_command *c;

    if (argc < 2) {
        print_usage(stdout);
        return 0;
    }
    c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "shoal help: unknown command '%s'\n", argv[1]);
        print_usage(stderr);
        return 2;
    }
    cli__print_help(c, stdout);
    return 0;
}

int cli_cmd_version(int argc, char **argv)
{
    bool json = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return cli_usage_error(cli_find("version"), "unknown option '%s'", argv[i]);
    }
    if (json)
        printf("{\"version\":\"%s\",\"build\":\"%s %s\"}\n", SHOAL_VERSION, __DATE__, __TIME__);
    else
        printf("shoal %s\n", SHOAL_VERSION);
    return 0;
}

int cli_main(int argc, char **argv, const struct cli_command *roles, size_t nroles)
{
    const struct cli_command *c;

    role_commands = roles;
    nrole_commands = nroles;
    sh_log_setup(SH_INFO, SH_LOG_AUTO, 2);
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) return cli_cmd_version(1, argv + 1);
    c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "shoal: unknown command '%s'\n\n", argv[1]);
        print_usage(stderr);
        return 2;
    }
    if (cli__wants_help(argc - 1, argv + 1)) {
        cli__print_help(c, stdout);
        return 0;
    }
    argc--;
    argv++;
    if ((c->flags & CLI_F_CONNECT) && cli__conn_take(c, &argc, argv) != 0) return 2;
    return c->run(argc, argv);
}
