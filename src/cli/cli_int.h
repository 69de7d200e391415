/* SPDX-License-Identifier: MIT */
/* cli_int.h: private declarations shared by the CLI's files. */
#ifndef SHOAL_CLI_INT_H
#define SHOAL_CLI_INT_H

#include "cli/cli.h"

void cli__print_help(const struct cli_command *c, FILE *out);
bool cli__wants_help(int argc, char **argv);

cli_run_fn cli_cmd_version, cli_cmd_help, cli_cmd_echo, cli_cmd_fetch, cli_cmd_services,
    cli_cmd_ps, cli_cmd_down, cli_cmd_logs,
    cli_cmd_config;

#endif
