/* SPDX-License-Identifier: MIT */
/* supervisor.h: the supervisor (manifest, processes, restarts, scaling, deployments). For now,
 * the manifest reader: YAML text into a core document tree (struct sh_doc) whose nodes keep
 * their file:line:column, so each component validates its own part of a configuration file.
 * Threads: the reader keeps no state; any thread may call it.
 * Prefixes: manifest_, MANIFEST_.   (Guard SHOAL_SUPERVISOR_H; includes core/core.h.) */
#ifndef SHOAL_SUPERVISOR_H
#define SHOAL_SUPERVISOR_H

#include "core/core.h"

/* ------------------------------------------------------------------------------------------
 * Manifest reader (manifest.c, the one owner of libyaml).
 *
 * What it accepts: one YAML document of block or flow maps, lists and scalars, with comments.
 * - Plain "", "~", "null", "Null", "NULL" (and a key with no value) become SH_NODE_NULL; every
 *   other scalar is SH_NODE_SCALAR with its text. Quoted scalars, block scalars (| and >) and
 *   scalars tagged !!str have is_quoted set, so "10" and "true" stay strings.
 * - Map keys must be non-empty scalars; a key written twice in one map is an error at the
 *   second one that names the first ("duplicate key 'port' (already set at line 3, column 5)").
 * - Rejected with a clear error: anchors and aliases (&a, *a, and so "<<: *a" merges), tags
 *   other than !!str/!!map/!!seq, and files with more than one document.
 * - Limits (errors with SH_ETOOBIG, never crashes): MANIFEST_MAX_BYTES of text, collections
 *   nested MANIFEST_MAX_DEPTH deep, MANIFEST_MAX_NODES nodes (keys and values both count).
 * An empty file (or one of only comments) gives a doc whose root is a NULL node at 1:1.
 * ------------------------------------------------------------------------------------------ */
#define MANIFEST_MAX_BYTES (4u * 1024 * 1024)
#define MANIFEST_MAX_DEPTH 64
#define MANIFEST_MAX_NODES 100000

/* Reads the YAML file at <path> into a document tree named <path>.
 * Returns 0 and sets *out (caller frees with sh_doc_free), or sets *out to NULL and returns
 *   SH_ENOENT   no such file (d->where = path);
 *   SH_EPARSE   a YAML syntax error or a rejected construct (d->where = "path:line:col");
 *   SH_ETOOBIG  a limit above was passed;
 *   SH_ENOMEM   out of memory;
 *   -errno      another failure of open(2)/read(2), e.g. -EACCES, -EISDIR.
 * d->what says what is wrong in plain words; d may be NULL. */
SH_MUST_CHECK int manifest_read_file(const char *path, struct sh_doc **out, struct sh_diag *d);

/* Reads <len> bytes of YAML at <text> (not necessarily NUL-terminated) as if from a file
 * named <name> (used in positions). Returns and fills as manifest_read_file, without the
 * file errors. <text> is not kept. */
SH_MUST_CHECK int manifest_read_buf(const char *name, const char *text, size_t len,
                                    struct sh_doc **out, struct sh_diag *d);


/* ------------------------------------------------------------------------------------------
 * Processes (process.c): service instances as child processes on a libuv loop.
 * Prefixes: sup_procs_, sup_instance_, sup_child_, SUP_.
 *
 * struct sup_procs is a service object. Threads: every sup_procs_* and sup_instance_* call,
 * and every callback, runs on the thread of the loop passed to sup_procs_new (the control
 * thread); nothing here is synchronised. sup_child_main runs in a fresh process.
 *
 * Each instance runs in its own session and process group (setsid), so a stop signal goes to
 * the whole group: kill(-pgid). When the instance's main process exits, what is left of its
 * group is killed too. stdin is /dev/null; stdout and stderr come back line by line.
 *
 * Children never outlive shoal, also after kill -9 of shoal, when cfg.trampoline is set: each
 * child is spawned as "<trampoline...> <argv...>", and the trampoline (sup_child_main, the
 * binary's hidden `shoal __child -- CMD...`) asks the kernel for SIGKILL when its parent dies
 * (PR_SET_PDEATHSIG), checks that the parent did not die before that, then execs CMD. Two
 * limits of the kernel feature: the signal fires when the *thread* that spawned the child
 * exits, so the loop's thread must live as long as the children; and it reaches the
 * instance's main process only, not processes it started (sup_procs_free and stops do kill
 * whole groups).
 * ------------------------------------------------------------------------------------------ */
#include <uv.h>

struct sup_procs; /* opaque */

enum sup_stream { SUP_STDOUT = 1, SUP_STDERR = 2 };

enum sup_restart {
    SUP_RESTART_NEVER = 0,  /* an exit is final */
    SUP_RESTART_ON_FAILURE, /* restart after a non-zero exit status or a signal */
    SUP_RESTART_ALWAYS,     /* restart after any exit that sup_instance_stop did not ask for */
};

enum sup_state {
    SUP_STARTING = 0, /* spawned, up for less than cfg.start_period_ms */
    SUP_RUNNING,      /* up for at least cfg.start_period_ms */
    SUP_STOPPING,     /* sup_instance_stop sent SIGTERM; SIGKILL follows after the grace */
    SUP_EXITED,       /* not running and not coming back (stopped, or the policy said no) */
    SUP_BACKOFF,      /* exited; restarts when the backoff delay has passed */
    SUP_CRASH_LOOP,   /* as BACKOFF, but it restarted too often: the delay is backoff_max_ms */
};
const char *sup_state_name(enum sup_state st); /* "starting", ..., "crash-loop"; never NULL */

/* How a process ended: exactly one of the two is non-zero, or both are zero for exit(0). */
struct sup_exit {
    int64_t status; /* exit status, or -errno when the restart could not spawn at all */
    int signal;     /* the signal that killed it, 0 if it exited */
};

/* Events for the log and the layers above (registry, `shoal ps`). */
enum sup_event_kind {
    SUP_EV_STARTED = 0, /* spawned: pid is set */
    SUP_EV_EXITED,      /* the process ended (any reason): exit is set */
    SUP_EV_BACKOFF,     /* a restart is scheduled in delay_ms */
    SUP_EV_CRASH_LOOP,  /* cfg.crash_loop_restarts restarts within the window; in delay_ms */
    SUP_EV_SPAWN_FAILED /* a restart could not spawn: exit.status = -errno */
};
struct sup_event {
    enum sup_event_kind kind;
    uint64_t id;
    const char *service; /* borrowed for the call */
    int pid;
    struct sup_exit exit;
    uint32_t delay_ms;
    uint32_t restarts; /* restarts so far, this one included for BACKOFF/CRASH_LOOP */
};

/* A line of a child's output: <line> without its "\n" (and without a "\r" before it), valid
 * only during the call. A line longer than cfg.max_line_bytes is delivered cut to that length
 * with is_cut set, as soon as that much has arrived; its remaining bytes up to the next "\n"
 * are dropped, so memory stays bounded whatever the child writes. Output that ends without a
 * newline is delivered as a last line when the process exits. */
typedef void sup_line_fn(void *data, uint64_t id, enum sup_stream stream, struct slice line,
                         bool is_cut);
typedef void sup_event_fn(void *data, const struct sup_event *ev);
/* Called once when a stopped instance has exited; <ex> is how its process ended (the last
 * exit recorded, or zeros, when nothing was running at the time of the stop). */
typedef void sup_stop_fn(void *data, uint64_t id, const struct sup_exit *ex);

struct sup_procs_config {
    /* NULL-terminated argv prefix of the trampoline, e.g. {"/usr/bin/shoal", "__child",
     * "--", NULL}; copied. NULL spawns argv directly (then a kill -9 of shoal leaves the
     * children running). */
    const char *const *trampoline;
    sup_line_fn *on_line;   /* NULL drops output */
    sup_event_fn *on_event; /* NULL: events are logged with SH_LOG under "supervisor" */
    void *data;             /* passed to on_line and on_event */
    uint32_t start_period_ms;      /* STARTING -> RUNNING after this uptime; 0 = 1000 */
    uint32_t backoff_initial_ms;   /* first restart delay, doubled each time; 0 = 100 */
    uint32_t backoff_max_ms;       /* cap of the delay, and the crash-loop delay; 0 = 30000 */
    uint32_t backoff_reset_ms;     /* uptime that resets backoff and crash-loop; 0 = 10000 */
    uint32_t crash_loop_restarts;  /* this many restarts within ... ; 0 = 5, at most 64 */
    uint32_t crash_loop_window_ms; /* ... this window is a crash loop; 0 = 60000 */
    size_t max_line_bytes;         /* 0 = SUP_MAX_LINE_BYTES */
};
#define SUP_MAX_LINE_BYTES (16u * 1024)

/* What an instance runs. Everything is copied by sup_instance_start. */
struct sup_instance_spec {
    const char *service;      /* the service's name, for status and events; NULL = "" */
    const char *const *argv;  /* NULL-terminated, at least argv[0] (looked up in PATH) */
    const char *const *env;   /* NULL-terminated "NAME=value" added to shoal's own
                                 environment (replacing a variable of the same name); may be
                                 NULL */
    const char *cwd;          /* working directory; NULL = shoal's */
    uint16_t port;            /* non-zero: passed as PORT and SHOAL_PORT */
    bool is_port_auto;        /* pick a free loopback TCP port instead (kept across restarts) */
    enum sup_restart restart;
};

/* Per instance, for `shoal ps`. */
struct sup_instance_status {
    uint64_t id;
    const char *service; /* borrowed: valid until the instance is forgotten or procs freed */
    int pid;             /* 0 when no process runs */
    uint16_t port;       /* 0 when none */
    enum sup_state state;
    bool is_crash_loop;  /* a crash loop was detected and no run has lasted backoff_reset_ms */
    uint32_t restarts;
    bool has_exited;            /* last_exit is set */
    struct sup_exit last_exit;
    uint64_t started_wall_ms;   /* when the current (or last) process was spawned, Unix ms */
};

/* Creates the process layer on <loop>, which must outlive it.
 * Returns 0 and sets *out, or SH_EINVAL (crash_loop_restarts > 64) / SH_ENOMEM and NULL. */
SH_MUST_CHECK int sup_procs_new(const struct sup_procs_config *cfg, uv_loop_t *loop,
                                struct sup_procs **out);
/* Kills every instance's process group with SIGKILL and releases everything. No callback
 * runs after this call (pending stop callbacks are dropped). Memory and handles are released
 * from close and exit callbacks, so run the loop afterwards (uv_run until it has no more
 * handles) before uv_loop_close; the children are reaped there, leaving no zombie. Must not
 * be called from inside one of this object's callbacks. NULL is a no-op. */
void sup_procs_free(struct sup_procs *procs);

/* Spawns an instance of <spec>. Returns 0 and sets *out_id (never 0), or a negative code and
 * 0: SH_EINVAL (no argv[0]), SH_ENOMEM, -errno from finding a port or from uv_spawn (e.g.
 * SH_ENOENT when argv[0] does not exist and there is no trampoline; with a trampoline that
 * case is an exit with status 127 and the message on stderr). */
SH_MUST_CHECK int sup_instance_start(struct sup_procs *procs, const struct sup_instance_spec *spec,
                                     uint64_t *out_id);
/* Stops instance <id> for good: SIGTERM to its group, SIGKILL after <grace_ms> (0 = at once),
 * no more restarts. cb(data, id, exit) runs once when it has exited (never from inside this
 * call; also when it was already exited or waiting in backoff). cb may be NULL.
 * Returns 0, SH_ENOENT (no such id) or SH_EBUSY (a stop is already under way). */
SH_MUST_CHECK int sup_instance_stop(struct sup_procs *procs, uint64_t id, uint32_t grace_ms,
                                    sup_stop_fn *cb, void *data);
/* Drops an EXITED instance from the table (its status disappears). Returns 0, SH_ENOENT, or
 * SH_EBUSY when it is not EXITED (stop it first). May be called from its stop callback. */
SH_MUST_CHECK int sup_instance_forget(struct sup_procs *procs, uint64_t id);
/* The status of instance <id>: 0 and *out, or SH_ENOENT. */
SH_MUST_CHECK int sup_instance_status(const struct sup_procs *procs, uint64_t id,
                                      struct sup_instance_status *out);
/* Fills out[0..cap) with the instances in start order and returns how many there are (which
 * may be more than cap: call again with a larger array). out may be NULL when cap is 0. */
size_t sup_procs_status(const struct sup_procs *procs, struct sup_instance_status *out,
                        size_t cap);

/* The trampoline: `shoal __child [--] CMD [ARG...]` (argv[0] is the command name). Sets
 * PR_SET_PDEATHSIG to SIGKILL, checks that the parent is still the supervisor that spawned it
 * (SHOAL_SUPERVISOR_PID, which it removes from the environment), then execvp(CMD). Returns
 * only on failure: 2 for bad usage, 127 when CMD cannot be executed (message on stderr). */
int sup_child_main(int argc, char **argv);

#endif
