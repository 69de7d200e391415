/* SPDX-License-Identifier: MIT */
/* cli_int.h: private declarations shared by the CLI's files. */
#ifndef SHOAL_CLI_INT_H
#define SHOAL_CLI_INT_H

#include "cli/cli.h"

void cli__print_help(const struct cli_command *c, FILE *out);
bool cli__wants_help(int argc, char **argv);

/* One synchronous call to the admin API at SHOAL_ADDR (cmd_control.c), with SHOAL_TOKEN or,
 * when unset, the token cli__read_token_file found. 0 and *c filled (release c->body), or 1
 * after printing why (unless cli__api_quiet). */
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
/* The token `shoal up` keeps in <data_dir>/token, used when SHOAL_TOKEN is unset. */
void cli__read_token_file(const char *data_dir);

cli_run_fn cli_cmd_version, cli_cmd_help, cli_cmd_echo, cli_cmd_fetch, cli_cmd_services,
    cli_cmd_ps, cli_cmd_down, cli_cmd_logs, cli_cmd_scale, cli_cmd_restart,
    cli_cmd_config;

#endif
