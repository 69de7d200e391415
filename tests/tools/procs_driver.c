/* SPDX-License-Identifier: MIT */
/* procs_driver: a tiny supervisor for test_supervisor_orphans.sh. Usage:
 *     procs_driver SHOAL_BINARY COUNT CMD [ARG...]
 * Starts COUNT instances of CMD through the trampoline "SHOAL_BINARY __child --" (with the
 * reaper "SHOAL_BINARY __reaper"), prints each
 * instance's pid on its own line once all are started, then runs its loop until killed. The
 * test kills it with SIGKILL and checks that the children went with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/supervisor.h"

int main(int argc, char **argv)
{
    const char *tramp[4], *reaper[3] = {argv[1], "__reaper", NULL};
    struct sup_procs *procs = NULL;
    uint64_t count = 0, id;
    uv_loop_t loop;
    int rc;

    if (argc < 4 || slice_to_u64(slice_from_cstr(argv[2]), &count) != 0 || count == 0 ||
        count > 64) {
        fprintf(stderr, "usage: procs_driver SHOAL_BINARY COUNT CMD [ARG...]\n");
        return 2;
    }
    tramp[0] = argv[1];
    tramp[1] = "__child";
    tramp[2] = "--";
    tramp[3] = NULL;
    uv_loop_init(&loop);
    rc = sup_procs_new(&(struct sup_procs_config){.trampoline = tramp, .reaper = reaper}, &loop,
                       &procs);
    for (uint64_t i = 0; rc == 0 && i < count; i++) {
        struct sup_instance_status st;

        rc = sup_instance_start(procs,
                                &(struct sup_instance_spec){.service = "sleeper",
                                                            .argv = (const char *const *)argv + 3,
                                                            .restart = SUP_RESTART_ALWAYS},
                                &id);
        if (rc == 0) rc = sup_instance_status(procs, id, &st);
        if (rc == 0) printf("%d\n", st.pid);
    }
    if (rc != 0) {
        fprintf(stderr, "procs_driver: %s\n", sh_strerror(rc));
        sup_procs_free(procs);
        uv_run(&loop, UV_RUN_DEFAULT);
        return 1;
    }
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0;
}
