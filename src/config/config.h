/* SPDX-License-Identifier: MIT */
/* config.h: the configuration KV, Consul's /v1/kv model on top of the store.
 * Prefixes: cfgkv_, CFGKV_.   (Guard SHOAL_CONFIG_H; includes core/core.h, store/store.h, uv.h.)
 *
 * Model:
 *  - Keys are paths of segments separated by single '/': "services/web/timeout". Values are
 *    bytes (text or JSON; this layer does not look inside), with Consul's opaque uint64 flags.
 *  - Every key has create_index (the write that created it), modify_index (its last write) and
 *    version (1 on creation, +1 on every write). Indexes are store revisions: one counter for
 *    the whole store, so they only grow (Consul's X-Consul-Index). A result's <index> is the
 *    index of what was read: the highest modify_index in it, raised by deletes under it; it
 *    never decreases for a key or prefix and moves whenever the answer changes (spurious moves
 *    are possible, as in Consul, for keys or prefixes that never held anything).
 *  - Compare-and-swap: a write with a cas only happens when the key's modify_index equals it
 *    (cas 0: only when the key is absent); otherwise CFGKV_CONFLICT and nothing changes.
 *  - History: the last <history> versions (puts and deletes) of each key are kept. A rollback
 *    is a new write of an old value, so history stays linear.
 *  - Waits (Consul's ?index=N&wait=30s) and subscriptions (change events, for SSE) sit on store
 *    watches: a change is noticed inside the write that makes it, wherever that write came from.
 *
 * Storage: everything lives in the store under CFGKV_STORE_PREFIX ("config/"), which nothing
 * else may write: a key k is the store key "config/kv/<k>", its value a 9-byte header (format,
 * flags) and the bytes. Writes are durable when they return (store.h).
 *
 * Threads: a cfgkv belongs to the control thread, like its store; every function below and
 * every callback runs there. Callbacks of waits and subscriptions run inside the write that
 * caused them, after it has committed (as store watches do), or from the loop's timer.
 */
#ifndef SHOAL_CONFIG_H
#define SHOAL_CONFIG_H

#include <uv.h>

#include "core/core.h"
#include "store/store.h"

/* ------------------------------------------------------------------------------------------
 * Limits and statuses
 * ------------------------------------------------------------------------------------------ */
#define CFGKV_STORE_PREFIX "config/"

enum {
    CFGKV_MAX_KEY_BYTES = 512,                  /* longer keys and prefixes: SH_ETOOBIG */
    CFGKV_DEFAULT_MAX_VALUE_BYTES = 512 * 1024, /* Consul's kv_max_value_size */
    CFGKV_MAX_VALUE_LIMIT = 1000 * 1000,        /* the highest max_value_bytes accepted */
    CFGKV_DEFAULT_HISTORY = 10,                 /* versions kept per key */
    CFGKV_DEFAULT_WAIT_MS = 5 * 60 * 1000,      /* Consul's default ?wait */
    CFGKV_MAX_WAIT_MS = 10 * 60 * 1000,         /* Consul's cap on ?wait */
};

/* Named positive statuses. */
enum {
    CFGKV_CONFLICT = 1, /* a cas did not match: nothing was changed (Consul answers false) */
    CFGKV_CHANGED = 2,  /* a wait: the key or prefix has moved past the index */
    CFGKV_TIMEOUT = 3,  /* a wait: the deadline came first (answer with the current data) */
};

/* ------------------------------------------------------------------------------------------
 * Keys
 *
 * A key is 1..CFGKV_MAX_KEY_BYTES bytes of printable ASCII without spaces (0x21..0x7e), split
 * by '/' into segments: no leading or trailing '/', no empty segment ("a//b"), no "." or ".."
 * segment. A prefix (for recursive reads, listings, recursive deletes, waits) is 0..512 bytes
 * of the same characters and matches keys by bytes, as Consul's: "" is every key, "app/" the
 * keys below app, "app/co" also matches "app/config". A prefix may end with '/'; its complete
 * segments follow the key rules; its last, partial segment may be anything printable.
 * ------------------------------------------------------------------------------------------ */

/* 0, or SH_EINVAL / SH_ETOOBIG with d (may be NULL) filled: where = "key", what = the key
 * (escaped, bounded) and the rule it breaks with the byte offset. */
SH_MUST_CHECK int cfgkv_key_check(struct slice key, struct sh_diag *d);
/* The same for a prefix. */
SH_MUST_CHECK int cfgkv_prefix_check(struct slice prefix, struct sh_diag *d);

/* ------------------------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------------------------ */
struct cfgkv; /* opaque service object */

struct cfgkv_config {
    /* Versions returned by cfgkv_history and reachable by cfgkv_rollback; 0 =
     * CFGKV_DEFAULT_HISTORY. The store must keep at least as many (store_config.history);
     * when it keeps fewer, fewer are returned. */
    uint32_t history;
    /* Largest value accepted; 0 = CFGKV_DEFAULT_MAX_VALUE_BYTES; above CFGKV_MAX_VALUE_LIMIT
     * is SH_EINVAL. */
    size_t max_value_bytes;
};

/* Opens the config KV kept in <st> on <loop> (used for wait deadlines). Both must outlive it.
 * Returns 0 and sets *out (caller frees with cfgkv_free), or SH_EINVAL / SH_ENOMEM and sets
 * *out to NULL. */
SH_MUST_CHECK int cfgkv_new(const struct cfgkv_config *cfg, uv_loop_t *loop, struct store *st,
                            struct cfgkv **out);
/* Ends every pending wait (its callback gets SH_ESHUTDOWN) and subscription (its callback gets
 * an ERROR event with SH_ESHUTDOWN), after which their handles are gone, then frees kv. Call it
 * before store_close. Its timer handle is released by the loop: run the loop once more (even
 * UV_RUN_NOWAIT) before closing it. NULL is a no-op. Not from inside a cfgkv callback. */
void cfgkv_free(struct cfgkv *kv);

/* The last error's message on this handle ("" when none): which key, which rule or limit.
 * Borrowed until the next call on kv. */
const char *cfgkv_errmsg(const struct cfgkv *kv);

/* ------------------------------------------------------------------------------------------
 * Reads. Results are owned by a struct cfgkv_result the caller releases.
 * ------------------------------------------------------------------------------------------ */
struct cfgkv_entry {
    struct slice key;      /* the config key (no store prefix) */
    struct slice value;    /* empty for a delete (history) and a folder (cfgkv_keys) */
    uint64_t flags;        /* as written with the value; 0 for a delete or folder */
    uint64_t create_index; /* 0 for a delete or folder */
    uint64_t modify_index; /* the write's index (the delete's, in history); 0 for a folder */
    uint64_t lock_index;   /* always 0: there are no sessions or locks yet */
    uint64_t version;      /* 1 = created; 0 for a delete or folder */
    bool is_secret;        /* written as a secret: the API shows it only to tokens that may
                            * read secrets (security.h); history and events likewise */
    bool is_deleted;       /* cfgkv_history: this version is a delete */
    bool is_folder;        /* cfgkv_keys: a "dir/" grouping of keys, not a key */
};

/* entries[i] point into the result and live until cfgkv_result_release. A zeroed struct is a
 * valid empty result. */
struct cfgkv_result {
    struct cfgkv_entry *entries;
    size_t count;
    uint64_t index;          /* the answer's index (> 0): send it as X-Consul-Index */
    struct store_result raw; /* private: the bytes */
};
void cfgkv_result_release(struct cfgkv_result *res); /* idempotent */

/* Each read overwrites <res> (release it first when reusing) and sets res->index even when it
 * finds nothing. SH_EINVAL / SH_ETOOBIG: bad key or prefix (cfgkv_errmsg says why). */

/* One key: 0 with count == 1, SH_ENOENT (count 0; Consul's 404), or SH_E*. */
SH_MUST_CHECK int cfgkv_get(struct cfgkv *kv, struct slice key, struct cfgkv_result *res);
/* Every key under <prefix> with its value, in key order (Consul's ?recurse). 0 (count may be
 * 0: Consul answers 404 then) or SH_E*. */
SH_MUST_CHECK int cfgkv_list(struct cfgkv *kv, struct slice prefix, struct cfgkv_result *res);
/* The keys under <prefix> without values (Consul's ?keys), in key order. With a non-empty
 * <separator>, a key whose rest after the prefix contains it is folded into one folder entry
 * ending at its first occurrence: ?keys&separator=/ on "app/" gives "app/config", "app/sub/".
 * Entries carry key, indexes and flags; folders only the key and is_folder. 0 or SH_E*. */
SH_MUST_CHECK int cfgkv_keys(struct cfgkv *kv, struct slice prefix, struct slice separator,
                             struct cfgkv_result *res);
/* The last versions of <key> (at most the configured history), newest first, deletes included
 * (is_deleted). 0 (count 0 for a key never written) or SH_E*. */
SH_MUST_CHECK int cfgkv_history(struct cfgkv *kv, struct slice key, struct cfgkv_result *res);

/* ------------------------------------------------------------------------------------------
 * Writes. Each is one store transaction: it happens completely or not at all.
 * ------------------------------------------------------------------------------------------ */
struct cfgkv_write_opts {
    bool has_cas;    /* compare-and-swap (Consul's ?cas=N) */
    uint64_t cas;    /* the modify_index expected; 0 = the key must be absent (set only) */
    uint64_t flags;  /* set, rollback: stored with the value (Consul's ?flags=N) */
    bool is_recurse; /* delete: every key under the prefix (Consul's ?recurse); no cas then */
    bool is_secret;  /* set: the value is a secret (shoal's ?secret); rollback keeps the old
                      * version's mark */
};

struct cfgkv_write_result {
    uint64_t index;       /* the store's revision after the call: the write's, if it wrote */
    size_t deleted_count; /* delete: keys removed */
};

/* Writes <value> (0..max_value_bytes bytes) under <key>, with opts->flags. <opts> and <out>
 * may be NULL (no cas, flags 0). Returns 0, CFGKV_CONFLICT (cas missed; nothing changed), or
 * SH_EINVAL (bad key), SH_ETOOBIG (key or value too long), SH_E* from the store. */
SH_MUST_CHECK int cfgkv_set(struct cfgkv *kv, struct slice key, struct slice value,
                            const struct cfgkv_write_opts *opts, struct cfgkv_write_result *out);
/* Deletes <key>, or with opts->is_recurse every key under the prefix <key> ("" = all).
 * Deleting what does not exist is 0 with deleted_count 0 (Consul answers true). With a cas
 * (not with is_recurse: SH_EINVAL) the key is deleted only when its modify_index equals it;
 * cas 0 never deletes (as Consul). 0, CFGKV_CONFLICT, or SH_E*. */
SH_MUST_CHECK int cfgkv_delete(struct cfgkv *kv, struct slice key,
                               const struct cfgkv_write_opts *opts, struct cfgkv_write_result *out);
/* Writes again the value and flags <key> had at version <modify_index> (one of the versions
 * cfgkv_history returns, and not a delete), as a new version. opts->has_cas/cas apply to the
 * key's current state; opts->flags is ignored. 0, CFGKV_CONFLICT, SH_ENOENT (no such version
 * among the kept ones), or SH_E*. */
SH_MUST_CHECK int cfgkv_rollback(struct cfgkv *kv, struct slice key, uint64_t modify_index,
                                 const struct cfgkv_write_opts *opts,
                                 struct cfgkv_write_result *out);

/* ------------------------------------------------------------------------------------------
 * Blocking waits (Consul's ?index=N&wait=...)
 * ------------------------------------------------------------------------------------------ */
struct cfgkv_wait; /* opaque; owned by kv, the caller holds it until the callback or a cancel */

/* status: CFGKV_CHANGED, CFGKV_TIMEOUT, or SH_E* (SH_ESHUTDOWN from cfgkv_free, an error of
 * the store's watch). Called once; the wait is gone when it runs (do not cancel it then). */
typedef void cfgkv_wait_fn(void *data, int status);

struct cfgkv_wait_config {
    struct slice key; /* a key, or a prefix when is_prefix */
    bool is_prefix;
    uint64_t index;      /* the index the client has seen; 0 = do not block */
    uint64_t timeout_ms; /* 0 = CFGKV_DEFAULT_WAIT_MS; above CFGKV_MAX_WAIT_MS is capped.
                          * Consul's jitter (up to wait/16) is the caller's to add. */
};

/* Returns CFGKV_CHANGED at once (no callback, *out NULL) when index is 0 or the key or prefix
 * has already moved past it: read and answer now. Otherwise returns 0, sets *out and calls
 * cb(data, status) once: CFGKV_CHANGED on the first write under the key or prefix, or
 * CFGKV_TIMEOUT at the deadline. SH_EINVAL / SH_ETOOBIG (bad key), SH_ENOMEM, SH_ESHUTDOWN
 * (from a callback inside cfgkv_free), SH_E*: *out NULL, no callback.
 * An index above every index handed out (a client's invention) blocks like any other. */
SH_MUST_CHECK int cfgkv_wait(struct cfgkv *kv, const struct cfgkv_wait_config *cfg,
                             cfgkv_wait_fn *cb, void *data, struct cfgkv_wait **out);
/* Ends the wait without calling its callback (a client went away). NULL is a no-op; not for a
 * wait whose callback has run. Safe inside any cfgkv callback. */
void cfgkv_wait_cancel(struct cfgkv_wait *w);

/* ------------------------------------------------------------------------------------------
 * Subscriptions: every change under a key or prefix, in order (for SSE and for publishing
 * routes and policies to the proxy workers without a restart).
 * ------------------------------------------------------------------------------------------ */
struct cfgkv_sub; /* opaque; owned by the caller until cfgkv_sub_cancel */

enum cfgkv_event_type {
    CFGKV_EVENT_SET = 1,    /* entry: the key's new state */
    CFGKV_EVENT_DELETE = 2, /* entry: key, modify_index = the delete's index, is_deleted */
    CFGKV_EVENT_ERROR = 3,  /* err says why (SH_ECOMPACTED: fell behind; SH_ESHUTDOWN);
                             * nothing more is delivered: cancel the subscription */
};

struct cfgkv_event {
    enum cfgkv_event_type type;
    struct cfgkv_entry entry; /* borrowed for the callback's duration */
    bool is_index_end;        /* the last event of its index (one write) for this subscription */
    int err;                  /* ERROR */
};

/* May call anything on kv (cancels included) except cfgkv_free. */
typedef void cfgkv_sub_fn(void *data, struct cfgkv_sub *sub, const struct cfgkv_event *ev);

struct cfgkv_sub_config {
    struct slice key; /* a key, or a prefix when is_prefix */
    bool is_prefix;
    /* 0: changes from now on. N > 0: first every kept change with index >= N (resume after an
     * SSE Last-Event-ID of N-1), then live ones; SH_ECOMPACTED when those are gone. */
    uint64_t from_index;
};

/* Starts a subscription; a replay (from_index) is delivered before this returns. Returns 0 and
 * sets *out, or SH_E* (SH_ESHUTDOWN inside cfgkv_free) with *out NULL and no callback. If the
 * callback cancels it during the replay, 0 is returned with *out NULL. */
SH_MUST_CHECK int cfgkv_subscribe(struct cfgkv *kv, const struct cfgkv_sub_config *cfg,
                                  cfgkv_sub_fn *cb, void *data, struct cfgkv_sub **out);
/* Stops and frees the subscription; safe inside any callback. NULL is a no-op. */
void cfgkv_sub_cancel(struct cfgkv_sub *sub);

#endif
