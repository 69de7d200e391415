/* SPDX-License-Identifier: MIT */
/* view.c: the live status view of `shoal up` on a terminal. When stdout and stderr are
 * terminals (and --plain is not given), shoal's own log goes to <data_dir>/shoal.log and the
 * terminal shows, redrawn once a second on the alternate screen: the stack's addresses, one
 * line per service (ready/wanted, requests/s, in flight, p99, autoscaler, restart), one line
 * per instance (state, health, pid, port, restarts, requests/s, uptime) and the newest output
 * lines of the services, cut to the terminal's size. Colour unless NO_COLOR is set. On stop
 * the normal screen comes back and the stop is reported in plain lines. Thread: main. */
#include "up/up_int.h"

#include "cli/cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define ESC "\033["

bool up_view_wanted(void)
{
    const char *term = getenv("TERM");

    return isatty(1) && isatty(2) && term && *term && strcmp(term, "dumb") != 0;
}

static bool colour(void)
{
    const char *no = getenv("NO_COLOR");

    return !no || !*no;
}

int up_view_start(struct up *u)
{
    char path[PATH_MAX + 16];
    int fd;

    if (!up_join_path(path, sizeof(path), u->data_dir, "shoal.log")) return SH_ETOOBIG;
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    fprintf(stderr,
            "shoal up: the live view is on; shoal's own log goes to %s (--plain: no "
            "view)\n",
            path);
    sh_log_setup((enum sh_log_level)sh_log_min_level, SH_LOG_JSON, fd);
    u->log_fd = fd;
    u->view = true;
    fputs(ESC "?1049h" ESC "?25l", stdout); /* alternate screen, no cursor */
    fflush(stdout);
    return 0;
}

void up_view_stop(struct up *u)
{
    if (!u->view) return;
    u->view = false;
    fputs(ESC "?25h" ESC "?1049l", stdout);
    fflush(stdout);
}

/* The frame, built in a buffer and written at once; each line is cut at the width. */
struct frame {
    struct buf b;
    int rows, cols, used;
    bool colour;
};

/* One line of the frame. Everything in it (services' output above all) goes through
 * buf_append_term_str: control characters and bytes that are not UTF-8 are shown escaped,
 * never sent to the terminal, and the cut at the width falls between characters. */
static void line(struct frame *f, const char *col, const char *fmt, ...) SH_PRINTF(3, 4);
static void line(struct frame *f, const char *col, const char *fmt, ...)
{
    struct buf text = BUF_INIT(64 * 1024);
    va_list ap;

    if (f->used >= f->rows) return;
    va_start(ap, fmt);
    buf_vappendf(&text, fmt, ap);
    va_end(ap);
    if (col && f->colour) buf_appends(&f->b, slice_from_cstr(col));
    buf_append_term_str(&f->b, buf_slice(&text), (size_t)SH_MAX(f->cols, 1), 0);
    buf_release(&text);
    if (col && f->colour) buf_appends(&f->b, SLICE(ESC "0m"));
    buf_appends(&f->b, SLICE(ESC "K\r\n"));
    f->used++;
}

static const char *health_colour(const char *h)
{
    return !strcmp(h, "passing")    ? ESC "32m"
           : !strcmp(h, "critical") ? ESC "31m"
           : !strcmp(h, "warning")  ? ESC "33m"
                                    : NULL;
}

static void services(struct up *u, struct frame *f)
{
    line(f, ESC "1m", "%-16s %-7s %-8s %-9s %-9s %-24s %s", "SERVICE", "READY", "RPS", "IN-FLIGHT",
         "P99", "AUTOSCALE", "RESTART");
    for (uint32_t i = 0; i < u->m->service_count; i++) {
        const struct manifest_service *s = &u->m->services[i];
        const struct up_service *sv = &u->svc[i];
        char ready[24], as[64] = "-", p99[24] = "-";
        uint32_t ok, live = up_service_live(u, i, &ok);
        (void)live;
        snprintf(ready, sizeof(ready), "%u/%u", ok, sv->want);
        if (sv->p99_ms > 0) snprintf(p99, sizeof(p99), "%.1fms", sv->p99_ms);
        if (s->autoscale.is_set)
            snprintf(as, sizeof(as), "%u..%u %s=%llu", s->autoscale.min, s->autoscale.max,
                     up_target_name(s->autoscale.target_kind),
                     (unsigned long long)s->autoscale.target);
        line(f, ok < sv->want ? ESC "33m" : NULL, "%-16s %-7s %-8.1f %-9.1f %-9s %-24s %s", s->name,
             ready, sv->rps, sv->in_flight, p99, as,
             sv->roll == UP_ROLL_RUNNING || sv->roll_msg[0] ? sv->roll_msg : "-");
    }
}

static void instances(struct up *u, struct frame *f, int room)
{
    int shown = 0;

    line(f, ESC "1m", "%-20s %-11s %-12s %-8s %-6s %-9s %-8s %s", "INSTANCE", "STATE", "HEALTH",
         "PID", "PORT", "RESTARTS", "RPS", "UPTIME");
    for (size_t i = 0; i < u->ninst; i++) {
        const struct up_instance *in = u->inst[i];
        struct up_instance_info info;
        char up[24];
        if (up_instance_info(u, in, &info) < 0) continue;
        if (shown == room - 1 && i + 1 < u->ninst) {
            line(f, NULL, "... %zu more (shoal ps)", u->ninst - i);
            return;
        }
        cli_format_duration(up, sizeof(up), info.uptime_ms);
        line(f, info.crash_loop ? ESC "31m" : health_colour(info.health),
             "%-20s %-11s %-12s %-8d %-6u %-9u %-8.1f %s", in->id, info.state, info.health,
             info.pid, in->port, info.restarts, in->rps, up);
        shown++;
    }
}

/* The newest <room> output lines of the services, oldest first. */
static void output(struct up *u, struct frame *f, int room)
{
    size_t n = SH_MIN((size_t)SH_MAX(room, 0), u->log_count);
    size_t start = (u->log_next + UP_LOG_LINES - n) % UP_LOG_LINES;

    for (size_t k = 0; k < n; k++) {
        const struct up_logline *l = &u->log[(start + k) % UP_LOG_LINES];
        time_t t = (time_t)(l->ms / 1000);
        struct tm tm;
        char id[96];
        localtime_r(&t, &tm);
        snprintf(id, sizeof(id), "%s-%u", u->m->services[l->service].name, l->ordinal);
        line(f, l->is_stderr ? ESC "2m" : NULL, "%02d:%02d:%02d %-20s %s", tm.tm_hour, tm.tm_min,
             tm.tm_sec, id, l->text);
    }
}

void up_view_draw(struct up *u)
{
    struct frame f = {.b = BUF_INIT(1u << 20), .rows = 24, .cols = 80, .colour = colour()};
    struct winsize ws;
    char up[24];
    int room;

    if (!u->view) return;
    if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 4 && ws.ws_col > 20) {
        f.rows = ws.ws_row;
        f.cols = ws.ws_col;
    }
    f.rows--; /* the last line stays empty: no scroll */
    buf_appends(&f.b, SLICE(ESC "H"));
    cli_format_duration(up, sizeof(up), uv_now(&u->loop) - u->started_ms);
    line(&f, ESC "1m", "shoal up %s  ·  up %s  ·  admin %s  ·  mesh %s%s%s",
         u->m->name ? u->m->name : "", up, u->m->control_plane_listen, u->mesh_url + 7,
         u->m->gateway.is_set ? "  ·  gateway " : "",
         u->m->gateway.is_set ? u->m->gateway.listen : "");
    line(&f, NULL, "%s", "");
    services(u, &f);
    line(&f, NULL, "%s", "");
    room = f.rows - f.used - 4; /* instances get what is left after a few output lines */
    instances(u, &f, SH_MAX(SH_MIN((int)u->ninst + 1, room), 2));
    line(&f, NULL, "%s", "");
    line(&f, ESC "1m", "%s", "OUTPUT (shoal logs -f SERVICE for more)");
    output(u, &f, f.rows - f.used - 1);
    while (f.used < f.rows - 1)
        line(&f, NULL, "%s", "");
    line(&f, ESC "2m", "%s",
         "Ctrl-C stops everything  ·  shoal ps, shoal logs, shoal scale in another terminal");
    buf_appends(&f.b, SLICE(ESC "J"));
    if (!f.b.err) {
        fwrite(f.b.data, 1, f.b.len, stdout);
        fflush(stdout);
    }
    buf_release(&f.b);
}
