/* SPDX-License-Identifier: MIT */
/* supervisor_int.h: private declarations shared by the process layer's files: process.c
 * (instances, runs, restarts), output.c (line capture of the children's pipes), reaper.c (the
 * detached helper that kills what is left after shoal dies) and child.c (the trampoline).
 * Thread: the loop's thread only. */
#ifndef SHOAL_SUPERVISOR_INT_H
#define SHOAL_SUPERVISOR_INT_H

#include "supervisor/supervisor.h"

#include <uv.h>

#define READ_BUF_BYTES (64u * 1024)
#define CRASH_RING_MAX 64
#define SUPERVISOR_PID_VAR "SHOAL_SUPERVISOR_PID"

extern char **environ;

struct run;

struct out_stream {
    uv_pipe_t pipe;
    struct run *run;
    enum sup_stream which;
    char *line; /* max_line_bytes, allocated with the run */
    size_t len;
    bool is_skipping; /* a cut line: drop bytes up to the next newline */
    bool is_reading;
};

struct run {
    struct sup_instance *inst; /* NULL once the instance was dropped */
    struct sup_procs *procs;
    uv_process_t proc;
    struct out_stream out[2];
    int open_handles;
    int pid;
};

struct sup_instance {
    struct sup_procs *procs;
    uint64_t id;
    char *service;
    char **argv; /* trampoline + spec argv, NULL-terminated */
    char **env;  /* complete environment, NULL-terminated */
    char *cwd;
    uint16_t port;
    enum sup_restart restart;

    enum sup_state state;
    bool is_crash_loop;
    bool is_stop_requested;
    bool is_stop_cb_pending; /* stop cb runs from the timer (nothing was running) */
    uint32_t restarts;
    bool has_exited;
    struct sup_exit last_exit;
    uint64_t started_ms; /* monotonic */
    uint64_t started_wall_ms;
    uint32_t backoff_ms;                 /* the next delay */
    uint64_t restart_at[CRASH_RING_MAX]; /* ring of recent restart times (monotonic) */
    size_t ring_pos, ring_len;

    uv_timer_t timer;
    struct run *run;
    sup_stop_fn *stop_cb;
    void *stop_data;
};

struct sup_procs {
    uv_loop_t *loop;
    char **trampoline;
    size_t trampoline_count;
    uv_process_t reaper;         /* cfg.reaper's process, when one runs */
    int reaper_fd;               /* our end of its stdin (a stream socket), or -1 */
    struct sup_procs_config cfg; /* defaults filled in; trampoline points to ours */
    struct sup_instance **items;
    size_t count, cap;
    uint64_t next_id;
    int open_handles;
    bool is_freeing;
    char errmsg[256]; /* sup_procs_errmsg: why the last start failed, or "" */
    char read_buf[READ_BUF_BYTES];
};

/* process.c */
void sup__handle_closed(struct sup_procs *procs); /* one of procs' handles closed */
void sup__run_handle_closed(uv_handle_t *h);      /* a run's process or pipe closed */

/* output.c: a run's stdout/stderr, delivered line by line to cfg.on_line */
void sup__stream_start(struct out_stream *os);
/* Reads what is already in the pipe, delivers it, and closes the stream (the process exited). */
void sup__stream_drain(struct out_stream *os);

/* reaper.c */
int sup__reaper_start(struct sup_procs *procs, const char *const *argv); /* 0 or -errno */
/* Tells the reaper that process group <pgid> began ('+') or ended ('-'). */
void sup__reaper_note(struct sup_procs *procs, char op, int pgid);

/* ------------------------------------------------------------------------------------------
 * The manifest reader's shared pieces (manifest_schema.c; manifest_security.c reads the
 * security section with them)
 * ------------------------------------------------------------------------------------------ */
/* Reading context: the manifest being filled and where errors go. */
struct rd {
    struct manifest *m;
    struct sh_diag *d;
    char path[160];
};

/* The path of a key, for messages, in the reader's buffer. */
#define pathf(r, ...) sh_fmt((r)->path, sizeof((r)->path), __VA_ARGS__)

/* An error at node n of this reader's document (the path is part of the message). */
#define fail_at(r, n, ...) sh_node_fail((r)->d, (n), NULL, __VA_ARGS__)

/* Zeroed memory in the manifest's arena (n 0: one byte). NULL when out of memory. */
void *sup__alloc0(struct rd *r, size_t n);
/* A string node, copied into the manifest's arena. 0 or SH_E* with r->d set. */
int sup__get_str(struct rd *r, const struct sh_node *n, const char *path, const char **out);
/* A duration in ms that fits in 32 bits. 0 or SH_E* with r->d set. */
int sup__get_ms(struct rd *r, const struct sh_node *n, const char *path, uint32_t *out);
/* The security section (manifest_security.c). 0 or SH_E* with r->d set. */
int sup__read_security(struct rd *r, const struct sh_node *sec);

#endif
