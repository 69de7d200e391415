/* SPDX-License-Identifier: MIT */
/* registry.h: services, instances, health checks and watches for the control plane.
 * Prefixes: registry_, REGISTRY_.   (Guard SHOAL_REGISTRY_H; includes core, store, http.)
 *
 * Model.
 *  - An instance is one running copy of a service: a globally unique id, its service name, an
 *    address and port, optional version, node, tags, metadata and weight, a health status and
 *    at most one health check. Instances are upserted by id and kept durably in the store
 *    (one key per instance, `registry/instances/<service>/<id>`), so a restart keeps them.
 *  - Health: PASSING, WARNING or CRITICAL. An instance without a check is what its registrant
 *    says (PASSING by default). A TTL check goes CRITICAL when no heartbeat arrives within its
 *    TTL. HTTP and TCP checks are run by the registry on the loop (Consul's rules: 2xx
 *    passing, 429 warning, anything else or no answer critical; thresholds of consecutive
 *    results before a flip). An instance CRITICAL for deregister_after_ms is deregistered.
 *  - Index: the store revision of the change. Every change that a reader can see (register or
 *    update, deregister, a status flip) is one store write and moves the registry-wide index
 *    and the service's index to the revision of that write. Heartbeats that do not change the
 *    status, and check notes, are kept in memory only and move no index. A service without
 *    instances reports the registry-wide index. Indexes never go backwards, across restarts
 *    too (after open every service reports the store revision at open), and are >= 1.
 *
 * Durability and restarts. A register, a deregister and a status flip return (or take
 * effect) only after the store committed them. TTL deadlines live in memory (a heartbeat
 * costs no disk write unless it changes the status); after a restart each TTL instance keeps
 * its stored status and gets one full TTL from open to send its next heartbeat (as Consul and
 * etcd do after a restart), so a live fleet does not flap to critical when the control plane
 * restarts, and a dead instance is critical at most one TTL after open. Check counters and the
 * "critical since" clock for deregister_after_ms restart from zero at open.
 *
 * Threads: the control thread only. Every function, and every callback, runs on the loop
 * passed to registry_new. Workers see registry data through snapshots built by the caller
 * from registry_instances() when a subscription reports a change.
 */
#ifndef SHOAL_REGISTRY_H
#define SHOAL_REGISTRY_H

#include "core/core.h"
#include "http/http.h"
#include "store/store.h"

/* ------------------------------------------------------------------------------------------
 * Limits: a registration over one fails with SH_EINVAL or SH_ETOOBIG and a diag naming the
 * field.
 * ------------------------------------------------------------------------------------------ */
enum {
    REGISTRY_MAX_ID_BYTES = 128,      /* [A-Za-z0-9._-], starts with a letter or digit */
    REGISTRY_MAX_SERVICE_BYTES = 63,  /* a DNS label: [a-z0-9-], no leading/trailing '-' */
    REGISTRY_MAX_NAME_BYTES = 64,     /* version, node */
    REGISTRY_MAX_ADDRESS_BYTES = 253, /* numeric IPv4/IPv6, or a hostname */
    REGISTRY_MAX_TAGS = 64,
    REGISTRY_MAX_TAG_BYTES = 128,
    REGISTRY_MAX_META = 64,
    REGISTRY_MAX_META_KEY_BYTES = 128, /* [A-Za-z0-9_-] */
    REGISTRY_MAX_META_VALUE_BYTES = 512,
    REGISTRY_MAX_WEIGHT = 10000,
    REGISTRY_MAX_PATH_BYTES = 1024, /* HTTP check path */
    REGISTRY_MAX_THRESHOLD = 100,   /* failures_before_critical, successes_before_passing */
    REGISTRY_MAX_WAIT_MS = 600000,  /* registry_wait timeouts are clamped to this (10 min) */
    REGISTRY_MAX_NOTE_BYTES = 1024, /* longer notes are cut */
};

/* ------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------ */
enum registry_health {
    REGISTRY_HEALTH_DEFAULT = 0, /* input only: PASSING without a check, CRITICAL with one */
    REGISTRY_PASSING = 1,
    REGISTRY_WARNING = 2,
    REGISTRY_CRITICAL = 3,
};
/* "passing", "warning", "critical" ("default" for 0, "?" otherwise). */
const char *registry_health_name(enum registry_health h);

enum registry_check_kind {
    REGISTRY_CHECK_NONE = 0,
    REGISTRY_CHECK_TTL = 1,  /* the instance sends registry_heartbeat() within ttl_ms */
    REGISTRY_CHECK_HTTP = 2, /* GET http://address:port<path> every interval_ms */
    REGISTRY_CHECK_TCP = 3,  /* connect to address:port every interval_ms */
};

/* A check definition. Unused fields of a kind must be zero. */
struct registry_check {
    enum registry_check_kind kind;
    const char *path;                  /* HTTP: starts with '/'; NULL = "/health" */
    uint32_t expect_status;            /* HTTP: 0 = any 2xx passes; else exactly this one.
                                          429 is WARNING either way, the rest CRITICAL */
    uint32_t interval_ms;              /* HTTP, TCP: required, >= config min_interval_ms */
    uint32_t timeout_ms;               /* HTTP, TCP: 0 = min(10 s, interval_ms) */
    uint32_t ttl_ms;                   /* TTL: required, >= config min_interval_ms */
    uint32_t failures_before_critical; /* consecutive failures to go CRITICAL; 0 = 1 */
    uint32_t successes_before_passing; /* consecutive successes to leave CRITICAL; 0 = 1 */
    uint32_t deregister_after_ms;      /* CRITICAL this long deregisters; 0 = never, else
                                          >= config min_deregister_after_ms */
};

struct registry_meta {
    const char *key;
    const char *value;
};

/* One instance. As input (registry_register) the caller owns every pointer and the registry
 * copies what it keeps. As output (in a struct registry_result) every pointer is owned by the
 * result. Strings are NUL-terminated; optional ones are "" in output when unset. */
struct registry_instance {
    const char *id;      /* required */
    const char *service; /* required */
    const char *version; /* optional (NULL = "") */
    const char *address; /* required: numeric IPv4/IPv6 or a hostname */
    uint32_t port;       /* 1..65535 */
    const char *node;    /* optional */
    const char *const *tags;
    size_t tag_count;
    const struct registry_meta *meta; /* keys unique */
    size_t meta_count;
    uint32_t weight; /* 0 = 1 on input; 1..REGISTRY_MAX_WEIGHT */
    struct registry_check check;
    /* Input: the initial status (REGISTRY_HEALTH_DEFAULT: on an update of an instance with
     * the same check kind the current status is kept; otherwise as the enum says).
     * Output: the current status. */
    enum registry_health status;
    /* Output only (ignored on input). */
    const char *note;       /* the last check's or heartbeat's output ("" when none) */
    uint64_t registered_ms; /* wall clock of the first registration of this id */
};

struct registry_config {
    uint32_t min_interval_ms;         /* smallest check interval and TTL; 0 = 1000 (Consul) */
    uint32_t min_deregister_after_ms; /* 0 = 60000 (Consul's one minute) */
    const char *key_prefix;           /* store keys; NULL = "registry/" (tests may vary it) */
};

struct registry; /* opaque service object */

/* Loads every stored instance from <st> and starts their checks on <loop>. <st>, <loop> and
 * <client> (used for HTTP checks; may be NULL when none are registered: such registrations
 * then fail with SH_ENOTSUP) must outlive the registry. A stored instance that cannot be
 * decoded is logged and skipped. Returns 0 and sets *out (free with registry_free), or SH_E*
 * and sets *out to NULL. */
SH_MUST_CHECK int registry_new(const struct registry_config *cfg, uv_loop_t *loop, struct store *st,
                               struct http_client *client, struct registry **out);
/* Stops every check, ends every pending wait with SH_ECANCELED and every subscription with a
 * REGISTRY_EVENT_CLOSED event (those callbacks run inside this call), and frees the registry.
 * Handle memory is released from libuv close callbacks: run the loop until it has no handles
 * before closing it. Stored instances stay in the store. NULL is a no-op. Not from inside a
 * registry callback. */
void registry_free(struct registry *reg);

/* ------------------------------------------------------------------------------------------
 * Changes. Each returns after the store committed the change; subscribers hear of it before
 * the call returns; waiters are woken from the loop afterwards. They return SH_EBUSY when
 * called from inside a subscription callback.
 * ------------------------------------------------------------------------------------------ */
/* Registers or updates (by id) an instance. Validates every field first: on SH_EINVAL or
 * SH_ETOOBIG nothing changes and <d> (may be NULL) says which field, e.g. where = "port",
 * what = "port: must be 1..65535". An update may move the instance to another service. An
 * update that changes nothing writes nothing and moves no index. The check restarts when its
 * definition changed. OUT *out_index (may be NULL): the index after the call. */
SH_MUST_CHECK int registry_register(struct registry *reg, const struct registry_instance *in,
                                    struct sh_diag *d, int64_t *out_index);
/* Removes the instance. 0, SH_ENOENT or SH_E*. */
SH_MUST_CHECK int registry_deregister(struct registry *reg, const char *id, int64_t *out_index);
/* Reports the instance's health from the instance itself (Consul's pass/warn/fail) and,
 * for a TTL check, restarts its TTL. <status> is PASSING, WARNING or CRITICAL; <note> (may be
 * NULL) is kept in memory as the instance's note. Only instances with a TTL check or without
 * a check accept heartbeats: SH_EINVAL otherwise. Writes to the store only when the status
 * changes. 0, SH_ENOENT or SH_E*. */
SH_MUST_CHECK int registry_heartbeat(struct registry *reg, const char *id,
                                     enum registry_health status, const char *note);

/* ------------------------------------------------------------------------------------------
 * Queries. Results are copies owned by the caller: release with registry_result_release.
 * Each carries the index it reflects.
 * ------------------------------------------------------------------------------------------ */
struct registry_service_info {
    const char *name;
    const char *const *tags; /* union of the instances' tags, sorted, unique */
    size_t tag_count;
    size_t instance_count;
    size_t passing_count;
    int64_t index; /* the service's index */
};

/* A zeroed struct is a valid empty result; registry_result_release is idempotent. */
struct registry_result {
    struct registry_instance *instances; /* registry_instances, registry_instance_get */
    size_t count;
    struct registry_service_info *services; /* registry_services, sorted by name */
    size_t service_count;
    int64_t index;      /* the service's index (registry_instances, registry_instance_get when
                           found), else the registry-wide one */
    struct arena arena; /* private: the bytes */
};
void registry_result_release(struct registry_result *res);

enum registry_filter {
    REGISTRY_FILTER_ALL = 0,
    REGISTRY_FILTER_PASSING = 1,      /* PASSING only (Consul's ?passing) */
    REGISTRY_FILTER_NOT_CRITICAL = 2, /* PASSING and WARNING */
};

/* Every service with at least one instance. 0 or SH_ENOMEM. <res> is overwritten. */
SH_MUST_CHECK int registry_services(struct registry *reg, struct registry_result *res);
/* The instances of <service> that pass <filter>, sorted by id; an unknown service gives 0 and
 * an empty result (with an index to wait on). 0 or SH_ENOMEM. <res> is overwritten. */
SH_MUST_CHECK int registry_instances(struct registry *reg, const char *service,
                                     enum registry_filter filter, struct registry_result *res);
/* One instance by id: 0 with res->count == 1, SH_ENOENT (res empty, index set) or SH_ENOMEM. */
SH_MUST_CHECK int registry_instance_get(struct registry *reg, const char *id,
                                        struct registry_result *res);
/* One run of an HTTP or TCP <check> against address:port (a numeric IPv4/IPv6 address), outside
 * any registration (shoal up
 * checks a new instance before it registers it). cb(data, health, note) runs exactly once:
 * PASSING (or WARNING for HTTP 429) or CRITICAL with the check's note; from inside this call
 * when the probe cannot even start; at the latest when the registry's HTTP client is freed
 * (CRITICAL) or the check's timeout passes. Returns 0, SH_EINVAL (not an HTTP/TCP check, no
 * path or no client for HTTP, a host name, bad port, no cb) or SH_ENOMEM; then cb never runs. */
typedef void registry_probe_fn(void *data, enum registry_health health, const char *note);
SH_MUST_CHECK int registry_probe(struct registry *reg, const struct registry_check *check,
                                 const char *address, uint32_t port, registry_probe_fn *cb,
                                 void *data);

/* The index of <service> (NULL = registry-wide). Cheap: for "has it changed" checks. */
int64_t registry_index(const struct registry *reg, const char *service);

/* ------------------------------------------------------------------------------------------
 * Blocking queries (Consul's ?index=N&wait=30s).
 * ------------------------------------------------------------------------------------------ */
struct registry_waiter; /* opaque; owned by the registry */

/* rc: 0 when the index moved past after_index, SH_ETIMEDOUT at the deadline, SH_ECANCELED when
 * the registry is being freed. index: the current index of what was waited on. */
typedef void registry_wait_fn(void *data, int rc, int64_t index);

/* Calls cb once, from the loop (never inside this call), when the index of <service> (NULL =
 * registry-wide) is above <after_index> (at once when it already is, after_index 0 included),
 * or when <timeout_ms> (clamped to REGISTRY_MAX_WAIT_MS) has passed. Jitter, if wanted, is the
 * caller's. A wait on an unknown service wakes when that service first appears. The waiter
 * is freed after cb returns. Returns 0 and sets *out (may be NULL when the caller never
 * cancels), or SH_EINVAL/SH_ENOMEM and no callback. Waiters are per service: a change in one
 * service wakes only its own waiters and the registry-wide ones. */
SH_MUST_CHECK int registry_wait(struct registry *reg, const char *service, int64_t after_index,
                                uint64_t timeout_ms, registry_wait_fn *cb, void *data,
                                struct registry_waiter **out);
/* Drops a pending waiter without calling its callback. Not after its callback ran. */
void registry_wait_cancel(struct registry_waiter *w);

/* ------------------------------------------------------------------------------------------
 * Subscriptions: a stream of change events (Server-Sent Events, snapshot rebuilds).
 * ------------------------------------------------------------------------------------------ */
enum registry_event_type {
    REGISTRY_EVENT_REGISTER = 1,   /* a new instance, or new fields for an existing id */
    REGISTRY_EVENT_DEREGISTER = 2, /* instance: its last state */
    REGISTRY_EVENT_HEALTH = 3,     /* status changed (previous says from what) */
    REGISTRY_EVENT_CLOSED = 4,     /* the registry is being freed; nothing follows */
};

struct registry_event {
    enum registry_event_type type;
    int64_t index;                            /* the index of the change */
    const struct registry_instance *instance; /* borrowed for the callback; NULL for CLOSED */
    enum registry_health previous;            /* HEALTH: the status before */
};

/* Called once per event, synchronously, after the change was committed. May query, wait,
 * cancel waits and unsubscribe (any subscription), but not change the registry (SH_EBUSY). */
typedef void registry_event_fn(void *data, const struct registry_event *ev);

struct registry_sub; /* opaque; owned by the registry */

/* Subscribes to the changes of <service> (NULL = every service). 0 and *out, or SH_EINVAL /
 * SH_ENOMEM. */
SH_MUST_CHECK int registry_subscribe(struct registry *reg, const char *service,
                                     registry_event_fn *cb, void *data, struct registry_sub **out);
/* Stops and frees a subscription; safe inside any event callback. NULL is a no-op. */
void registry_unsubscribe(struct registry_sub *sub);

#endif
