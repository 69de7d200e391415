/* SPDX-License-Identifier: MIT */
/* cli.h: the shoal command line. One table maps each subcommand to its handler and help; the
 * CLI's own commands live in src/cli, and main.c adds the role commands (gateway, ...) that
 * need components the CLI may not import.
 * Prefixes: cli_.
 * Threads: main thread only. */
#ifndef SHOAL_CLI_H
#define SHOAL_CLI_H

#include "core/core.h"

#include <stdio.h>

/* argv[0] is the command name. Returns the process exit status: 0 success, 1 the command
 * failed, 2 bad usage. */
typedef int cli_run_fn(int argc, char **argv);

struct cli_command {
    const char *name;
    cli_run_fn *run;
    const char *summary; /* one line for the command list */
    const char *usage;   /* the synopsis */
    const char *help;    /* the full text, ending in a newline */
};

/* Runs argv (argv[0] is the program name) with the CLI's commands plus <roles> (nroles
 * entries, listed first in help). Returns the process exit status. */
int cli_main(int argc, char **argv, const struct cli_command *roles, size_t nroles);

/* For command handlers: prints "shoal NAME: <message>" and the usage line on stderr, returns 2. */
int cli_usage_error(const struct cli_command *c, const char *fmt, ...) SH_PRINTF(2, 3);
/* The command named <name> (CLI or role), or NULL. */
const struct cli_command *cli_find(const char *name);
/* A duration as ps shows it: "-" for 0, "42s", "3m7s", "2h5m". */
void cli_format_duration(char *out, size_t len, uint64_t ms);

#endif
