/* SPDX-License-Identifier: MIT */
/* child.c: `shoal __child -- CMD...`, the trampoline every instance is started through: it
 * asks the kernel to kill it when the supervisor dies (PDEATHSIG), checks the supervisor is
 * still its parent, and execs the command. Runs in the child, before exec. */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* ---- the trampoline --------------------------------------------------------------------- */

int sup_child_main(int argc, char **argv)
{
    const char *want = getenv(SUPERVISOR_PID_VAR);
    int i = 1;

    if (i < argc && strcmp(argv[i], "--") == 0) i++;
    if (i >= argc) {
        fprintf(stderr, "shoal __child: usage: shoal __child -- CMD [ARG...] (internal)\n");
        return 2;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1) {
        fprintf(stderr, "shoal __child: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
        return 127;
    }
    /* The supervisor may have died before prctl: then the signal will never come, and our
     * parent is already someone else. */
    if (want) {
        uint64_t pid = 0;

        if (slice_to_u64(slice_from_cstr(want), &pid) == 0 && (uint64_t)getppid() != pid)
            raise(SIGKILL);
        unsetenv(SUPERVISOR_PID_VAR);
    } else if (getppid() == 1) {
        raise(SIGKILL);
    }
    execvp(argv[i], argv + i);
    fprintf(stderr, "shoal __child: cannot run '%s': %s\n", argv[i], strerror(errno));
    return 127;
}
