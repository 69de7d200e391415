/* SPDX-License-Identifier: MIT */
/* cli_int.h: private declarations shared by the CLI's files. */
#ifndef SHOAL_CLI_INT_H
#define SHOAL_CLI_INT_H

#include "cli/cli.h"

void cli__print_help(const struct cli_command *c, FILE *out);
bool cli__wants_help(int argc, char **argv);

/* Takes the connection options (--addr ADDR, --token TOKEN, --data-dir DIR) out of argv
 * (argc updated, argv NULL-terminated again; anything after "--" is left) for cli__api.
 * 0, or 2 after printing a usage error. cli_main calls it for CLI_F_CONNECT commands. */
int cli__conn_take(const struct cli_command *cmd, int *argc, char **argv);
/* One synchronous call to the admin API (cmd_control.c) at the address and with the token
 * the connection options, the environment or the runtime file give (docs/cli.md). 0 and *c
 * filled (release c->body), or 1 after printing why (unless cli__api_quiet). */
struct cli_call {
    int status, rc;
    uint64_t index;
    struct buf body;
    bool done;
};
int cli__api(const char *method, const char *path, struct slice body, uint32_t timeout_ms,
             struct cli_call *c);
extern bool cli__api_quiet;
/* Prints the API's JSON error for a failed call ("shoal: <what>: 404 Not Found: ..."),
 * releases c->body and returns 1. */
int cli__api_error(const char *what, struct cli_call *c);
/* Appends <s> %XX-escaped for a URL path. */
void cli__escape(struct buf *b, const char *s);
/* A string member of a JSON object from the API, or "?" when it is missing. */
struct json_t;
const char *cli__str_of(const struct json_t *o, const char *key);

cli_run_fn cli_cmd_version, cli_cmd_help, cli_cmd_echo, cli_cmd_fetch, cli_cmd_services, cli_cmd_ps,
    cli_cmd_down, cli_cmd_logs, cli_cmd_scale, cli_cmd_restart, cli_cmd_config, cli_cmd_token,
    cli_cmd_audit, cli_cmd_intention, cli_cmd_intentions, cli_cmd_traces, cli_cmd_trace,
    cli_cmd_top, cli_cmd_ca;

#endif
