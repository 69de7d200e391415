/* SPDX-License-Identifier: MIT */
/* test_process.c: the supervisor's process layer with real /bin/sh children. Every test runs
 * its own loop, frees the process layer, runs the loop dry and checks uv_loop_close() == 0, so
 * a handle left open fails the test; SH_TEST checks that no allocation is left.
 * This binary is also its own trampoline: "test_process __child -- CMD" runs sup_child_main. */
#include "test_util.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/supervisor.h"

#define MAX_LINES 64
#define MAX_EVENTS 64

struct line {
    uint64_t id;
    enum sup_stream stream;
    char text[256]; /* the first bytes */
    size_t len;
    bool is_cut;
};

struct fx {
    uv_loop_t loop;
    struct sup_procs *procs;
    struct line lines[MAX_LINES];
    size_t nlines;
    struct sup_event events[MAX_EVENTS];
    uint64_t event_ms[MAX_EVENTS];
    size_t nevents;
    int stops;
    struct sup_exit stop_exit;
    uint64_t stop_ms;
};

static char self_exe[PATH_MAX];

static void on_line(void *data, uint64_t id, enum sup_stream stream, struct slice line, bool is_cut)
{
    struct fx *f = data;
    struct line *l;

    if (f->nlines == MAX_LINES) return;
    l = &f->lines[f->nlines++];
    l->id = id;
    l->stream = stream;
    l->len = line.len;
    l->is_cut = is_cut;
    memcpy(l->text, line.ptr, SH_MIN(line.len, sizeof(l->text) - 1));
    l->text[SH_MIN(line.len, sizeof(l->text) - 1)] = '\0';
}

static void on_event(void *data, const struct sup_event *ev)
{
    struct fx *f = data;

    if (f->nevents == MAX_EVENTS) return;
    f->event_ms[f->nevents] = sh_now_ms();
    f->events[f->nevents] = *ev;
    f->events[f->nevents].service = NULL; /* borrowed for the call only */
    f->nevents++;
}

static void on_stop(void *data, uint64_t id, const struct sup_exit *ex)
{
    struct fx *f = data;

    (void)id;
    f->stops++;
    f->stop_exit = *ex;
    f->stop_ms = sh_now_ms();
}

static void fx_init(struct fx *f, struct sup_procs_config cfg)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    cfg.on_line = on_line;
    cfg.on_event = on_event;
    cfg.data = f;
    assert_int_equal(sup_procs_new(&cfg, &f->loop, &f->procs), 0);
}

static void fx_done(struct fx *f)
{
    sup_procs_free(f->procs);
    f->procs = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(f) holds or timeout_ms passed; returns cond(f). */
static bool run_until(struct fx *f, bool (*cond)(struct fx *f), uint64_t timeout_ms)
{
    uint64_t end = sh_now_ms() + timeout_ms;
    uv_timer_t t;
    bool ok;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    while (!(ok = cond(f)) && sh_now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return ok;
}

static void run_for(struct fx *f, uint64_t ms)
{
    uint64_t end = sh_now_ms() + ms;
    uv_timer_t t;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, tick, 5, 5);
    while (sh_now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static size_t count_events(const struct fx *f, enum sup_event_kind kind)
{
    size_t n = 0;

    for (size_t i = 0; i < f->nevents; i++)
        n += f->events[i].kind == kind;
    return n;
}

static bool has_exited(struct fx *f)
{
    return count_events(f, SUP_EV_EXITED) >= 1;
}

static bool has_stopped(struct fx *f)
{
    return f->stops >= 1;
}

static bool has_line(struct fx *f)
{
    return f->nlines >= 1;
}

static bool has_two_lines(struct fx *f)
{
    return f->nlines >= 2;
}

static const struct line *nth_line(const struct fx *f, enum sup_stream stream, size_t n)
{
    for (size_t i = 0; i < f->nlines; i++) {
        if (f->lines[i].stream == stream && n-- == 0) return &f->lines[i];
    }
    fail_msg("no line %zu on stream %d", n, (int)stream);
    return NULL;
}

static uint64_t start_sh(struct fx *f, const char *script, enum sup_restart restart)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    uint64_t id = 0;

    assert_int_equal(
        sup_instance_start(
            f->procs,
            &(struct sup_instance_spec){.service = "svc", .argv = argv, .restart = restart}, &id),
        0);
    assert_true(id != 0);
    return id;
}

/* Alive means present and not a zombie (a container's init may leave zombies unreaped). */
static bool pid_alive(long pid)
{
    char path[64], buf[256];
    FILE *fp;
    char *paren;
    bool alive = false;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fp = fopen(path, "r");
    if (!fp) return false;
    if (fgets(buf, sizeof(buf), fp)) {
        paren = strrchr(buf, ')');
        alive = paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
    }
    fclose(fp);
    return alive;
}

static long line_pid(const struct line *l)
{
    uint64_t v = 0;

    assert_int_equal(slice_to_u64((struct slice){.ptr = l->text, .len = strlen(l->text)}, &v), 0);
    return (long)v;
}

static bool wait_dead(long pid, uint64_t timeout_ms)
{
    uint64_t end = sh_now_ms() + timeout_ms;

    while (pid_alive(pid)) {
        if (sh_now_ms() > end) return false;
        usleep(10000);
    }
    return true;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_process__captures_lines_from_both_streams(void **state)
{
    struct fx f;
    struct sup_instance_status st;
    uint64_t id;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    id = start_sh(&f, "echo out1; echo err1 >&2; printf 'out2\\r\\n'; printf tail",
                  SUP_RESTART_NEVER);
    assert_true(run_until(&f, has_exited, TEST_WAIT_MS));
    assert_string_equal(nth_line(&f, SUP_STDOUT, 0)->text, "out1");
    assert_string_equal(nth_line(&f, SUP_STDOUT, 1)->text, "out2");
    assert_string_equal(nth_line(&f, SUP_STDOUT, 2)->text, "tail"); /* no newline at the end */
    assert_string_equal(nth_line(&f, SUP_STDERR, 0)->text, "err1");
    assert_int_equal(f.nlines, 4);
    assert_int_equal(f.lines[0].id, id);
    assert_false(f.lines[0].is_cut);
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_int_equal(st.state, SUP_EXITED);
    assert_string_equal(sup_state_name(st.state), "exited");
    assert_string_equal(st.service, "svc");
    assert_true(st.has_exited);
    assert_int_equal(st.last_exit.status, 0);
    assert_int_equal(st.last_exit.signal, 0);
    assert_int_equal(st.pid, 0);
    assert_true(st.started_wall_ms > 0);
    fx_done(&f);
}

static void test_process__long_lines_are_cut_and_memory_stays_bounded(void **state)
{
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    start_sh(&f,
             "head -c 40000 /dev/zero | tr '\\0' a; echo; echo next;"
             "head -c 100000 /dev/zero | tr '\\0' b",
             SUP_RESTART_NEVER);
    assert_true(run_until(&f, has_exited, TEST_WAIT_MS));
    assert_int_equal(f.nlines, 3);
    assert_int_equal(f.lines[0].len, SUP_MAX_LINE_BYTES);
    assert_true(f.lines[0].is_cut);
    assert_int_equal(f.lines[0].text[0], 'a');
    assert_string_equal(f.lines[1].text, "next");
    assert_false(f.lines[1].is_cut);
    assert_int_equal(f.lines[2].len, SUP_MAX_LINE_BYTES); /* no newline ever: still cut */
    assert_true(f.lines[2].is_cut);
    assert_int_equal(f.lines[2].text[0], 'b');
    fx_done(&f);
}

static void test_process__port_auto_env_and_cwd_reach_the_child(void **state)
{
    const char *argv[] = {
        "/bin/sh", "-c",
        "echo \"$PORT $SHOAL_PORT $FOO $HOME\"; pwd; echo \"[$SHOAL_SUPERVISOR_PID]\"", NULL};
    const char *env[] = {"FOO=bar", "HOME=/nowhere", NULL};
    struct sup_instance_status st;
    char want[64];
    uint64_t id;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    assert_int_equal(
        sup_instance_start(
            f.procs,
            &(struct sup_instance_spec){
                .service = "api", .argv = argv, .env = env, .cwd = "/tmp", .is_port_auto = true},
            &id),
        0);
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_true(st.port > 0);
    assert_true(run_until(&f, has_exited, TEST_WAIT_MS));
    snprintf(want, sizeof(want), "%u %u bar /nowhere", (unsigned)st.port, (unsigned)st.port);
    assert_string_equal(nth_line(&f, SUP_STDOUT, 0)->text, want);
    assert_string_equal(nth_line(&f, SUP_STDOUT, 1)->text, "/tmp");
    assert_string_equal(nth_line(&f, SUP_STDOUT, 2)->text, "[]"); /* no trampoline, no pid */
    fx_done(&f);
}

/* A 10 KiB value with references reaches the child whole (shoal up once cut values at 4 KiB);
 * SHOAL_DATA_DIR is created (parents too, mode 0700) and passed. */
static void test_process__long_env_templates_and_the_data_dir_reach_the_child(void **state)
{
    const char *argv[] = {"/bin/sh", "-c",
                          "echo \"$BIG\"; echo \"${BIG##*x}\"; echo \"$DB\"; "
                          "echo \"$SHOAL_DATA_DIR\"; echo \"$LIT\"",
                          NULL};
    const char *env[] = {"LIT=a$$b", NULL};
    char tmpl[10300], root[] = "/tmp/shoal-test-process-XXXXXX", dir[128], want[256];
    const char *templates[] = {tmpl, "DB=${SHOAL_DATA_DIR}/names.sqlite", NULL};
    struct sup_instance_status st;
    struct stat sb;
    uint64_t id;
    struct fx f;
    (void)state;

    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/services/api", root);
    memcpy(tmpl, "BIG=", 4);
    memset(tmpl + 4, 'x', 10240);
    snprintf(tmpl + 4 + 10240, sizeof(tmpl) - 4 - 10240, "${SHOAL_SERVICE}:$PORT:$${LIT}");
    fx_init(&f, (struct sup_procs_config){0});
    assert_int_equal(sup_instance_start(f.procs,
                                        &(struct sup_instance_spec){.service = "api",
                                                                    .argv = argv,
                                                                    .env = env,
                                                                    .env_templates = templates,
                                                                    .data_dir = dir,
                                                                    .is_port_auto = true},
                                        &id),
                     0);
    assert_string_equal(sup_procs_errmsg(f.procs), "");
    assert_int_equal(stat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_true(run_until(&f, has_exited, 2000));
    snprintf(want, sizeof(want), "api:%u:${LIT}", (unsigned)st.port);
    assert_int_equal(nth_line(&f, SUP_STDOUT, 0)->len, 10240 + strlen(want));
    assert_int_equal(nth_line(&f, SUP_STDOUT, 0)->text[0], 'x');
    assert_string_equal(nth_line(&f, SUP_STDOUT, 1)->text, want);
    snprintf(want, sizeof(want), "%s/names.sqlite", dir);
    assert_string_equal(nth_line(&f, SUP_STDOUT, 2)->text, want);
    assert_string_equal(nth_line(&f, SUP_STDOUT, 3)->text, dir);
    assert_string_equal(nth_line(&f, SUP_STDOUT, 4)->text, "a$$b"); /* env is literal */
    fx_done(&f);
    rmdir(dir);
    snprintf(dir, sizeof(dir), "%s/services", root);
    rmdir(dir);
    rmdir(root);
}

/* A reference that cannot be expanded fails the start, naming the variable: nothing runs
 * with a variable dropped or cut. */
static void test_process__bad_env_templates_fail_the_start_naming_the_variable(void **state)
{
    const char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
    const char *unknown[] = {"OK=1", "DB=${NO_SUCH_VAR_FOR_SHOAL}/x", NULL};
    const char *no_port[] = {"URL=http://127.0.0.1:${PORT}/", NULL};
    char *big = sh_malloc(SUP_ENV_VALUE_MAX + 16);
    const char *too_long[] = {big, NULL};
    uint64_t id = 1;
    struct fx f;
    (void)state;

    assert_non_null(big);
    memcpy(big, "HUGE=${HOME}", 12);
    memset(big + 12, 'y', SUP_ENV_VALUE_MAX - 4);
    big[SUP_ENV_VALUE_MAX + 8] = '\0';
    setenv("HOME", "/home/someone", 0);
    fx_init(&f, (struct sup_procs_config){0});
    assert_int_equal(
        sup_instance_start(
            f.procs, &(struct sup_instance_spec){.argv = argv, .env_templates = unknown}, &id),
        SH_ENOENT);
    assert_int_equal(id, 0);
    assert_string_equal(sup_procs_errmsg(f.procs),
                        "env DB: unknown variable 'NO_SUCH_VAR_FOR_SHOAL'");
    assert_int_equal(
        sup_instance_start(
            f.procs, &(struct sup_instance_spec){.argv = argv, .env_templates = no_port}, &id),
        SH_ENOENT);
    assert_string_equal(sup_procs_errmsg(f.procs), "env URL: unknown variable 'PORT'");
    assert_int_equal(
        sup_instance_start(
            f.procs, &(struct sup_instance_spec){.argv = argv, .env_templates = too_long}, &id),
        SH_ETOOBIG);
    assert_non_null(strstr(sup_procs_errmsg(f.procs), "env HUGE: longer than"));
    assert_int_equal(sup_procs_status(f.procs, NULL, 0), 0); /* nothing was started */
    fx_done(&f);
    sh_free(big);
}

/* Failing each allocation of a start with a long template in turn: SH_ENOMEM, nothing
 * spawned, nothing leaked, and a failure inside the expansion names the variable. */
static void test_process__out_of_memory_in_env_templates_fails_the_start(void **state)
{
    const char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
    char tmpl[10300];
    const char *templates[] = {"A=1", tmpl, NULL};
    int rc = SH_ENOMEM, named = 0;
    long n;
    (void)state;

    memcpy(tmpl, "BIG=", 4);
    memset(tmpl + 4, 'z', 10240);
    snprintf(tmpl + 4 + 10240, sizeof(tmpl) - 4 - 10240, "${SHOAL_SERVICE}");
    for (n = 1; rc == SH_ENOMEM && n < 1000; n++) {
        struct fx f;
        uint64_t id = 0;

        fx_init(&f, (struct sup_procs_config){0});
        sh_alloc_fail_after(n);
        rc = sup_instance_start(
            f.procs,
            &(struct sup_instance_spec){.service = "svc", .argv = argv, .env_templates = templates},
            &id);
        sh_alloc_fail_after(0);
        if (rc != 0) {
            assert_int_equal(rc, SH_ENOMEM);
            assert_int_equal(id, 0);
            assert_int_equal(sup_procs_status(f.procs, NULL, 0), 0);
            named += strcmp(sup_procs_errmsg(f.procs), "env BIG: out of memory") == 0;
        }
        fx_done(&f);
        assert_int_equal(sh_alloc_live(), test_live_at_start);
    }
    assert_int_equal(rc, 0);
    assert_true(named >= 1);
}

static void test_process__stop_sends_sigterm(void **state)
{
    struct sup_instance_status st;
    uint64_t id;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    id = start_sh(&f, "echo ready; sleep 30; echo not reached", SUP_RESTART_ALWAYS);
    assert_true(run_until(&f, has_line, TEST_WAIT_MS));
    assert_int_equal(sup_instance_stop(f.procs, id, 2000, on_stop, &f), 0);
    assert_int_equal(sup_instance_stop(f.procs, id, 2000, on_stop, &f), SH_EBUSY);
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_int_equal(st.state, SUP_STOPPING);
    assert_int_equal(f.stops, 0); /* never from inside the call */
    assert_true(run_until(&f, has_stopped, TEST_WAIT_MS));
    assert_int_equal(f.stop_exit.signal, SIGTERM); /* not the SIGKILL after the 2 s grace */
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_int_equal(st.state, SUP_EXITED);
    assert_int_equal(st.restarts, 0); /* a stop is not a failure to restart from */
    run_for(&f, 150);
    assert_int_equal(count_events(&f, SUP_EV_STARTED), 1);
    assert_int_equal(f.nlines, 1);
    assert_int_equal(sup_instance_forget(f.procs, id), 0);
    assert_int_equal(sup_instance_status(f.procs, id, &st), SH_ENOENT);
    assert_int_equal(sup_procs_status(f.procs, NULL, 0), 0);
    fx_done(&f);
}

static void test_process__sigkill_after_the_grace_when_term_is_ignored(void **state)
{
    uint64_t id, t0;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    id = start_sh(&f, "trap '' TERM; echo ready; while :; do sleep 0.05; done",
                  SUP_RESTART_ON_FAILURE);
    assert_true(run_until(&f, has_line, TEST_WAIT_MS));
    t0 = sh_now_ms();
    assert_int_equal(sup_instance_stop(f.procs, id, 300, on_stop, &f), 0);
    assert_true(run_until(&f, has_stopped, TEST_WAIT_MS));
    assert_true(f.stop_ms - t0 >= 290);            /* the grace first, */
    assert_int_equal(f.stop_exit.signal, SIGKILL); /* then SIGKILL */
    fx_done(&f);
}

static void test_process__the_childs_own_children_die_with_the_group(void **state)
{
    long grandchild;
    uint64_t id;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    id = start_sh(&f, "sleep 30 & echo $!; echo started; wait", SUP_RESTART_NEVER);
    assert_true(run_until(&f, has_two_lines, TEST_WAIT_MS));
    grandchild = line_pid(nth_line(&f, SUP_STDOUT, 0));
    assert_true(pid_alive(grandchild));
    assert_int_equal(sup_instance_stop(f.procs, id, 1000, on_stop, &f), 0);
    assert_true(run_until(&f, has_stopped, TEST_WAIT_MS));
    assert_true(wait_dead(grandchild, TEST_WAIT_MS));
    fx_done(&f);
}

static void test_process__leftovers_of_a_group_die_when_its_main_process_exits(void **state)
{
    long grandchild;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    /* The background sleep keeps the pipes open; the main process exits at once. */
    start_sh(&f, "sleep 30 & echo $!", SUP_RESTART_NEVER);
    assert_true(run_until(&f, has_exited, TEST_WAIT_MS));
    grandchild = line_pid(nth_line(&f, SUP_STDOUT, 0));
    assert_true(wait_dead(grandchild, TEST_WAIT_MS));
    fx_done(&f);
}

static bool four_backoffs(struct fx *f)
{
    return count_events(f, SUP_EV_BACKOFF) >= 4;
}

static void test_process__restarts_on_failure_with_growing_backoff(void **state)
{
    struct sup_instance_status st;
    uint32_t delays[4] = {0};
    uint64_t started[5] = {0};
    size_t nb = 0, ns = 0;
    uint64_t id;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){
                    .backoff_initial_ms = 40, .backoff_max_ms = 1000, .crash_loop_restarts = 64});
    id = start_sh(&f, "echo run; exit 3", SUP_RESTART_ON_FAILURE);
    assert_true(run_until(&f, four_backoffs, TEST_WAIT_MS));
    for (size_t i = 0; i < f.nevents; i++) {
        if (f.events[i].kind == SUP_EV_BACKOFF && nb < 4) delays[nb++] = f.events[i].delay_ms;
        if (f.events[i].kind == SUP_EV_STARTED && ns < 5) started[ns++] = f.event_ms[i];
        if (f.events[i].kind == SUP_EV_EXITED) assert_int_equal(f.events[i].exit.status, 3);
    }
    assert_int_equal(delays[0], 40);
    assert_int_equal(delays[1], 80);
    assert_int_equal(delays[2], 160);
    assert_int_equal(delays[3], 320);
    assert_true(ns >= 4);
    for (size_t i = 1; i < ns; i++) /* each restart waited at least its delay */
        assert_true(started[i] - started[i - 1] >= delays[i - 1]);
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_true(st.restarts >= 4);
    assert_false(st.is_crash_loop);
    assert_int_equal(st.last_exit.status, 3);
    /* Stopping an instance that waits in backoff reports its last exit, from the loop. */
    if (st.state == SUP_BACKOFF) {
        assert_int_equal(sup_instance_stop(f.procs, id, 1000, on_stop, &f), 0);
        assert_int_equal(f.stops, 0);
        assert_true(run_until(&f, has_stopped, TEST_WAIT_MS));
        assert_int_equal(f.stop_exit.status, 3);
    }
    fx_done(&f);
}

static bool three_backoffs(struct fx *f)
{
    return count_events(f, SUP_EV_BACKOFF) >= 3;
}

static void test_process__backoff_resets_after_a_long_enough_run(void **state)
{
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){.start_period_ms = 50,
                                          .backoff_initial_ms = 20,
                                          .backoff_reset_ms = 150,
                                          .crash_loop_restarts = 64});
    start_sh(&f, "sleep 0.25; exit 1", SUP_RESTART_ALWAYS);
    assert_true(run_until(&f, three_backoffs, TEST_WAIT_MS));
    for (size_t i = 0; i < f.nevents; i++) {
        if (f.events[i].kind == SUP_EV_BACKOFF) assert_int_equal(f.events[i].delay_ms, 20);
    }
    fx_done(&f);
}

static bool crash_looping(struct fx *f)
{
    return count_events(f, SUP_EV_CRASH_LOOP) >= 1;
}

static bool four_restarts(struct fx *f)
{
    return count_events(f, SUP_EV_BACKOFF) + count_events(f, SUP_EV_CRASH_LOOP) >= 4;
}

/* An instance killed again and again, each time after it had run past backoff_reset_ms (a
 * kill -9 of a healthy instance), is restarted at the first delay every time and never called
 * a crash loop, however many such restarts fall within the window. */
static void test_process__long_runs_never_make_a_crash_loop(void **state)
{
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){.start_period_ms = 50,
                                          .backoff_initial_ms = 20,
                                          .backoff_reset_ms = 150,
                                          .crash_loop_restarts = 3,
                                          .crash_loop_window_ms = 60000});
    start_sh(&f, "sleep 0.25; kill -9 $$", SUP_RESTART_ALWAYS);
    assert_true(run_until(&f, four_restarts, 5000));
    assert_int_equal(count_events(&f, SUP_EV_CRASH_LOOP), 0);
    for (size_t i = 0; i < f.nevents; i++) {
        if (f.events[i].kind == SUP_EV_BACKOFF) assert_int_equal(f.events[i].delay_ms, 20);
    }
    fx_done(&f);
}

static void test_process__detects_a_crash_loop(void **state)
{
    struct sup_instance_status st;
    uint64_t id;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){.backoff_initial_ms = 10,
                                          .backoff_max_ms = 5000,
                                          .crash_loop_restarts = 3,
                                          .crash_loop_window_ms = 10000});
    id = start_sh(&f, "exit 0", SUP_RESTART_ALWAYS);
    assert_true(run_until(&f, crash_looping, TEST_WAIT_MS));
    assert_int_equal(count_events(&f, SUP_EV_BACKOFF), 2);
    for (size_t i = 0; i < f.nevents; i++) {
        if (f.events[i].kind == SUP_EV_CRASH_LOOP) {
            assert_int_equal(f.events[i].delay_ms, 5000); /* capped */
            assert_int_equal(f.events[i].restarts, 3);
        }
    }
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_int_equal(st.state, SUP_CRASH_LOOP);
    assert_string_equal(sup_state_name(st.state), "crash-loop");
    assert_true(st.is_crash_loop);
    assert_int_equal(st.restarts, 3);
    assert_int_equal(st.pid, 0);
    assert_int_equal(sup_instance_stop(f.procs, id, 100, on_stop, &f), 0);
    assert_true(run_until(&f, has_stopped, TEST_WAIT_MS));
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_int_equal(st.state, SUP_EXITED);
    fx_done(&f);
}

static bool two_exits(struct fx *f)
{
    return count_events(f, SUP_EV_EXITED) >= 2;
}

static void
test_process__never_restarts_for_never_and_not_after_success_for_on_failure(void **state)
{
    struct sup_instance_status st[2];
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){.backoff_initial_ms = 10});
    start_sh(&f, "exit 1", SUP_RESTART_NEVER);
    start_sh(&f, "exit 0", SUP_RESTART_ON_FAILURE);
    assert_true(run_until(&f, two_exits, TEST_WAIT_MS));
    run_for(&f, 200);
    assert_int_equal(count_events(&f, SUP_EV_STARTED), 2);
    assert_int_equal(count_events(&f, SUP_EV_BACKOFF), 0);
    assert_int_equal(sup_procs_status(f.procs, st, 2), 2);
    assert_int_equal(st[0].state, SUP_EXITED);
    assert_int_equal(st[0].restarts, 0);
    assert_int_equal(st[0].last_exit.status, 1);
    assert_int_equal(st[1].state, SUP_EXITED);
    assert_int_equal(st[1].last_exit.status, 0);
    assert_true(st[0].id < st[1].id);
    fx_done(&f);
}

static bool three_exits(struct fx *f)
{
    return count_events(f, SUP_EV_EXITED) >= 3;
}

static void test_process__leaves_no_zombie(void **state)
{
    uint64_t id;
    struct fx f;
    int status;
    (void)state;

    fx_init(&f, (struct sup_procs_config){.backoff_initial_ms = 10});
    start_sh(&f, "exit 0", SUP_RESTART_NEVER);
    start_sh(&f, "kill -9 $$", SUP_RESTART_NEVER);
    id = start_sh(&f, "echo up; sleep 30", SUP_RESTART_NEVER);
    assert_true(run_until(&f, has_line, TEST_WAIT_MS));
    assert_int_equal(sup_instance_stop(f.procs, id, 0, on_stop, &f), 0);
    assert_true(run_until(&f, three_exits, TEST_WAIT_MS));
    assert_int_equal(f.stop_exit.signal, SIGKILL);
    fx_done(&f);
    assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_process__free_kills_running_children(void **state)
{
    long pids[2];
    uint64_t t0;
    struct fx f;
    int status;
    (void)state;

    fx_init(&f, (struct sup_procs_config){0});
    start_sh(&f, "echo $$; exec sleep 30", SUP_RESTART_ALWAYS);
    start_sh(&f, "trap '' TERM; echo $$; sleep 30", SUP_RESTART_ALWAYS);
    assert_true(run_until(&f, has_two_lines, TEST_WAIT_MS));
    pids[0] = line_pid(&f.lines[0]);
    pids[1] = line_pid(&f.lines[1]);
    t0 = sh_now_ms();
    fx_done(&f);                                          /* free, run the loop dry, close it */
    assert_true(sh_now_ms() - t0 < TEST_WAIT_MS);         /* killed, not waited for (sleep 30) */
    assert_int_equal(count_events(&f, SUP_EV_EXITED), 0); /* no callback after free */
    assert_false(pid_alive(pids[0]));
    assert_false(pid_alive(pids[1]));
    assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
}

static void test_process__runs_children_through_the_trampoline(void **state)
{
    const char *tramp[] = {self_exe, "__child", "--", NULL};
    const char *missing[] = {"/nonexistent/cmd", NULL};
    struct sup_instance_status st;
    uint64_t id;
    struct fx f;
    (void)state;

    fx_init(&f, (struct sup_procs_config){.trampoline = tramp});
    id = start_sh(&f, "echo \"[$SHOAL_SUPERVISOR_PID]\"; echo $$", SUP_RESTART_NEVER);
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_true(run_until(&f, has_exited, TEST_WAIT_MS));
    assert_string_equal(f.lines[0].text, "[]");      /* the trampoline removes its variable */
    assert_int_equal(line_pid(&f.lines[1]), st.pid); /* it execs: same pid, same group */
    f.nevents = 0;
    f.nlines = 0;
    /* With a trampoline a missing program is an exit 127 with a message, not a start error. */
    assert_int_equal(sup_instance_start(f.procs, &(struct sup_instance_spec){.argv = missing}, &id),
                     0);
    assert_true(run_until(&f, has_exited, TEST_WAIT_MS));
    assert_int_equal(sup_instance_status(f.procs, id, &st), 0);
    assert_int_equal(st.last_exit.status, 127);
    assert_int_equal(f.lines[0].stream, SUP_STDERR);
    assert_non_null(strstr(f.lines[0].text, "cannot run '/nonexistent/cmd'"));
    fx_done(&f);
}

static void test_process__bad_calls_are_errors(void **state)
{
    const char *empty[] = {NULL};
    const char *missing[] = {"/nonexistent/cmd", NULL};
    struct sup_procs *procs = NULL;
    uint64_t id = 99;
    struct fx f;
    (void)state;

    assert_int_equal(
        sup_procs_new(&(struct sup_procs_config){.crash_loop_restarts = 65}, &f.loop, &procs),
        SH_EINVAL);
    assert_null(procs);
    fx_init(&f, (struct sup_procs_config){0});
    assert_int_equal(sup_instance_start(f.procs, &(struct sup_instance_spec){.argv = empty}, &id),
                     SH_EINVAL);
    assert_int_equal(id, 0);
    assert_int_equal(sup_instance_start(f.procs, &(struct sup_instance_spec){.argv = missing}, &id),
                     SH_ENOENT);
    assert_int_equal(id, 0);
    assert_int_equal(sup_procs_status(f.procs, NULL, 0), 0);
    assert_int_equal(sup_instance_stop(f.procs, 12345, 0, NULL, NULL), SH_ENOENT);
    id = start_sh(&f, "sleep 30", SUP_RESTART_NEVER);
    assert_int_equal(sup_instance_forget(f.procs, id), SH_EBUSY);
    assert_int_equal(sup_instance_forget(f.procs, 12345), SH_ENOENT);
    sup_procs_free(NULL);
    fx_done(&f);
}

/* OOM torture: failing each allocation of new + start in turn gives SH_ENOMEM, spawns nothing
 * and leaks nothing once the loop has run. */
static void test_process__out_of_memory_torture(void **state)
{
    const char *tramp[] = {"/bin/env", "--", NULL};
    const char *argv[] = {"/bin/sh", "-c", "exit 0", NULL};
    const char *env[] = {"A=1", "B=2", NULL};
    int failures = 0, rc = SH_ENOMEM;
    long n;
    (void)state;

    for (n = 1; rc == SH_ENOMEM && n < 1000; n++) {
        struct fx f;
        uint64_t id = 0;

        memset(&f, 0, sizeof(f));
        assert_int_equal(uv_loop_init(&f.loop), 0);
        sh_alloc_fail_after(n);
        rc = sup_procs_new(&(struct sup_procs_config){.trampoline = tramp, .data = &f}, &f.loop,
                           &f.procs);
        if (rc == 0)
            rc = sup_instance_start(
                f.procs,
                &(struct sup_instance_spec){.argv = argv, .env = env, .is_port_auto = true}, &id);
        sh_alloc_fail_after(0);
        if (rc != 0) {
            assert_int_equal(rc, SH_ENOMEM);
            assert_int_equal(id, 0);
            failures++;
        }
        fx_done(&f); /* NULL procs too */
        assert_int_equal(sh_alloc_live(), test_live_at_start);
    }
    assert_int_equal(rc, 0);
    assert_true(failures >= 5);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_process__captures_lines_from_both_streams),
        SH_TEST(test_process__long_lines_are_cut_and_memory_stays_bounded),
        SH_TEST(test_process__port_auto_env_and_cwd_reach_the_child),
        SH_TEST(test_process__long_env_templates_and_the_data_dir_reach_the_child),
        SH_TEST(test_process__bad_env_templates_fail_the_start_naming_the_variable),
        SH_TEST(test_process__out_of_memory_in_env_templates_fails_the_start),
        SH_TEST(test_process__stop_sends_sigterm),
        SH_TEST(test_process__sigkill_after_the_grace_when_term_is_ignored),
        SH_TEST(test_process__the_childs_own_children_die_with_the_group),
        SH_TEST(test_process__leftovers_of_a_group_die_when_its_main_process_exits),
        SH_TEST(test_process__restarts_on_failure_with_growing_backoff),
        SH_TEST(test_process__backoff_resets_after_a_long_enough_run),
        SH_TEST(test_process__detects_a_crash_loop),
        SH_TEST(test_process__long_runs_never_make_a_crash_loop),
        SH_TEST(test_process__never_restarts_for_never_and_not_after_success_for_on_failure),
        SH_TEST(test_process__leaves_no_zombie),
        SH_TEST(test_process__free_kills_running_children),
        SH_TEST(test_process__runs_children_through_the_trampoline),
        SH_TEST(test_process__bad_calls_are_errors),
        SH_TEST(test_process__out_of_memory_torture),
    };
    ssize_t n;

    if (argc > 1 && strcmp(argv[1], "__child") == 0) return sup_child_main(argc - 1, argv + 1);
    n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0) return 1;
    self_exe[n] = '\0';
    return cmocka_run_group_tests(tests, NULL, NULL);
}
