/* SPDX-License-Identifier: MIT */
/* roles.h: role commands that live beside main.c (they import every component, as main.c
 * may). Each returns the process exit status. Thread: main. */
#ifndef SHOAL_ROLES_H
#define SHOAL_ROLES_H

/* `shoal up [-f FILE] [--data-dir DIR]` (up.c). */
int role_up(int argc, char **argv);

#endif
