/* SPDX-License-Identifier: MIT */
/* reaper.c: `shoal __reaper`, a detached helper started with the process layer. It learns each
 * instance's process group as it starts and ends (lines "+PGID" / "-PGID" on its stdin) and,
 * when its stdin reaches EOF (shoal stopped, or was killed -9), kills every group still
 * running: that takes along what instances started themselves, which the trampoline's
 * PDEATHSIG cannot reach. */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the reaper ------------------------------------------------------------------------- */

/* Tells the reaper that process group <pgid> began ('+') or ended ('-'). Never blocks for long:
 * the reaper reads all the time, and a line is a few bytes. */
void sup__reaper_note(struct sup_procs *procs, char op, int pgid)
{
    char line[32];
    int n = snprintf(line, sizeof(line), "%c%d\n", op, pgid);
    size_t off = 0;
    ssize_t w = 0;

    if (procs->reaper_fd < 0) return;
    while (off < (size_t)n) {
        w = send(procs->reaper_fd, line + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    if (off == (size_t)n) return;
    SH_LOG(SH_WARN, "supervisor",
           "the reaper is gone: after a kill -9 of shoal, processes started by instances may "
           "outlive it",
           LF_ERR("err", w < 0 ? -errno : SH_EIO));
    close(procs->reaper_fd);
    procs->reaper_fd = -1;
}

static void reaper_closed(uv_handle_t *h)
{
    sup__handle_closed(h->data);
}

static void reaper_exited(uv_process_t *p, int64_t status, int sig)
{
    struct sup_procs *procs = p->data;

    if (!procs->is_freeing)
        SH_LOG(SH_WARN, "supervisor", "the reaper exited", LF_INT("status", status),
               LF_INT("signal", sig));
    uv_close((uv_handle_t *)p, reaper_closed);
}

/* Starts cfg.reaper with one end of a socket pair as its stdin (detached: Ctrl-C on the
 * terminal does not reach it). 0 or a negative code. */
int sup__reaper_start(struct sup_procs *procs, const char *const *argv)
{
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_INHERIT_FD}, {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD}};
    uv_process_options_t opt = {0};
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    stdio[0].data.fd = sv[1];
    stdio[2].data.fd = 2;
    opt.file = argv[0];
    opt.args = (char **)argv;
    opt.flags = UV_PROCESS_DETACHED;
    opt.stdio = stdio;
    opt.stdio_count = 3;
    opt.exit_cb = reaper_exited;
    procs->reaper.data = procs;
    rc = uv_spawn(procs->loop, &procs->reaper, &opt);
    close(sv[1]);
    procs->open_handles++;
    if (rc != 0) {
        uv_close((uv_handle_t *)&procs->reaper, reaper_closed);
        close(sv[0]);
        return rc;
    }
    procs->reaper_fd = sv[0];
    return 0;
}

int sup_reaper_main(int argc, char **argv)
{
    int *groups = NULL;
    size_t n = 0, cap = 0, len = 0;
    char buf[4096];
    ssize_t r;

    (void)argc;
    (void)argv;
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        r = read(0, buf + len, sizeof(buf) - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* the supervisor closed its end, or died */
        len += (size_t)r;
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))) {
            uint64_t pgid = 0;
            *nl = '\0';
            if ((line[0] == '+' || line[0] == '-') &&
                slice_to_u64(slice_from_cstr(line + 1), &pgid) == 0 && pgid > 1 &&
                pgid < INT32_MAX) {
                if (line[0] == '+' && n == cap) {
                    size_t c = cap ? cap * 2 : 64;
                    int *g = sh_realloc(groups, c * sizeof(*g));
                    if (g) {
                        groups = g;
                        cap = c;
                    }
                }
                if (line[0] == '+' && n < cap) {
                    groups[n++] = (int)pgid;
                } else {
                    for (size_t i = 0; i < n; i++) {
                        if (groups[i] == (int)pgid) {
                            groups[i] = groups[--n];
                            break;
                        }
                    }
                }
            }
            line = nl + 1;
        }
        len -= (size_t)(line - buf);
        memmove(buf, line, len);
        if (len == sizeof(buf)) len = 0; /* a line this long is not ours: drop it */
    }
    for (size_t i = 0; i < n; i++)
        kill(-groups[i], SIGKILL);
    sh_free(groups);
    return 0;
}
