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

enum cli_command_flags {
    /* Talks to the control plane: cli_main takes the connection options (--addr, --token,
     * --data-dir) out of argv before run() sees it, and the help lists them. */
    CLI_F_CONNECT = 1u << 0,
};

struct cli_command {
    const char *name;
    cli_run_fn *run;
    const char *summary; /* one line for the command list */
    const char *usage;   /* the synopsis */
    const char *help;    /* the full text, ending in a newline */
    unsigned flags;      /* enum cli_command_flags */
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

/* ------------------------------------------------------------------------------------------
 * The runtime file (runtime.c): how the CLI finds the token of the stack behind an address.
 * `shoal up` and `shoal server` publish <runtime dir>/<host>_<port> (e.g. 127.0.0.1_7700),
 * mode 0600, holding the absolute path of their data directory, and remove it on a clean
 * stop; the runtime dir is $XDG_RUNTIME_DIR/shoal, else /tmp/shoal-UID, mode 0700 and used
 * only when it is ours (owned by us, not a symlink, no access for others).
 * ------------------------------------------------------------------------------------------ */
/* The runtime directory into out (created when is_create): 0, SH_EINVAL (it is not ours),
 * SH_ETOOBIG or -errno. */
int cli_runtime_dir(char *out, size_t n, bool is_create);
/* The runtime file of admin address <addr> ("127.0.0.1:7700", "[::1]:7700", ":7700", "7700",
 * with or without http://) into out: 0 or as cli_runtime_dir, SH_EINVAL for a bad port. */
int cli_runtime_file(const char *addr, char *out, size_t n, bool is_create);
/* Writes the runtime file of <addr> naming <data_dir> (made absolute); its path goes to out
 * for cli_runtime_unpublish. 0 or a negative code (out is then ""). */
int cli_runtime_publish(const char *addr, const char *data_dir, char *out, size_t n);
void cli_runtime_unpublish(const char *path); /* "" and NULL are no-ops */
/* The data directory published for <addr>: 0 and data_dir, or a negative code (SH_ENOENT,
 * -ENOENT: none; SH_EINVAL: the directory or file is not ours). */
int cli_runtime_lookup(const char *addr, char *data_dir, size_t n);

#endif
