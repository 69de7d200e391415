/* SPDX-License-Identifier: MIT */
/* cli_int.h: private declarations shared by the CLI's files. */
#ifndef SHOAL_CLI_INT_H
#define SHOAL_CLI_INT_H

#include "core/core.h"

#include <stdio.h>

/* argv[0] is the command name. Returns the exit status. */
typedef int cli_run_fn(int argc, char **argv);

struct cli_command {
    const char *name;
    cli_run_fn *run;
    const char *summary; /* one line for the command list */
    const char *usage;   /* the synopsis */
    const char *help;    /* the full text, ending in a newline */
};

const struct cli_command *cli__find(const char *name);
void cli__print_help(const struct cli_command *c, FILE *out);
int cli__usage_error(const struct cli_command *c, const char *fmt, ...) SH_PRINTF(2, 3);
bool cli__wants_help(int argc, char **argv);

cli_run_fn cli_cmd_version, cli_cmd_help, cli_cmd_echo, cli_cmd_fetch;

#endif
