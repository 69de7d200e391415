/* SPDX-License-Identifier: MIT */
/* cli.h: the shoal command line. One table maps each subcommand to its handler and help.
 * Prefixes: cli_.
 * Threads: main thread only. */
#ifndef SHOAL_CLI_H
#define SHOAL_CLI_H

#include "core/core.h"

/* Runs argv (argv[0] is the program name) and returns the process exit status:
 * 0 success, 1 the command failed, 2 bad usage. */
int cli_main(int argc, char **argv);

#endif
