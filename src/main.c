/* SPDX-License-Identifier: MIT */
/* main.c: the shoal binary. Everything it does is a subcommand of the CLI table. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
