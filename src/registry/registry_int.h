/* SPDX-License-Identifier: MIT */
/* registry_int.h: private declarations shared by the registry's .c files: registry.c (ids,
 * services, instances, queries, lifecycle), watch.c (waits and subscriptions), codec.c, check.c.
 * Thread: the control thread (the loop given to registry_new).
 *
 * Invariants:
 *  - every instance is in reg->ids (by id) and in exactly one service's list (inst->svc);
 *  - inst->enc is exactly the value stored under inst_key(inst), so an upsert that changes
 *    nothing is detected by comparing encodings and writes nothing;
 *  - a service record lives while it has instances or waiters (reg_svc_gc frees it after);
 *  - a waiter is in exactly one place: its service's (or the registry-wide) waiting list and
 *    the deadline list (W_WAITING), the ready list (W_READY), or the firing list (W_FIRING);
 *    a list it is not in leaves its link self-linked (sh_list);
 *  - a probe (one check run) outlives its instance when libuv still holds its handles or its
 *    getaddrinfo request: probe->inst is then NULL and the probe frees itself. */
#ifndef SHOAL_REGISTRY_INT_H
#define SHOAL_REGISTRY_INT_H

#include "registry/registry.h"

struct reg_probe;

struct reg_svc {
    char *name;
    struct sh_list insts; /* of reg_inst, through svc_link; newest first */
    size_t count;
    int64_t index;
    struct sh_list waiters; /* of registry_waiter (W_WAITING), through link; newest first */
};

struct reg_inst {
    struct registry *reg;
    struct registry_instance v; /* strings live in mem; v.note points at note or "" */
    struct arena mem;
    char *note; /* owned, in memory only */
    char *enc;  /* owned: the stored value */
    size_t enc_len;
    struct reg_svc *svc;
    struct sh_list svc_link;  /* in svc->insts */
    struct reg_inst *id_next; /* hash chain */
    uv_timer_t *timer;        /* owned; freed in its close callback */
    struct reg_probe *probe;  /* the check run in flight, if any */
    uint32_t ok_count, fail_count;
    uint64_t ttl_deadline_ms;   /* uv_now time; TTL checks */
    uint64_t critical_since_ms; /* uv_now time of the flip to CRITICAL */
};

enum reg_waiter_state { W_WAITING = 0, W_READY, W_FIRING };

struct registry_waiter {
    struct registry *reg;
    struct reg_svc *svc; /* NULL = registry-wide; only while W_WAITING */
    int64_t after;
    uint64_t deadline_ms;
    registry_wait_fn *cb;
    void *data;
    enum reg_waiter_state state;
    int rc;                 /* READY/FIRING: what cb gets */
    int64_t index;          /* READY/FIRING: what cb gets */
    struct sh_list link;    /* waiting, ready or firing list */
    struct sh_list dl_link; /* deadline list (W_WAITING only) */
};

struct registry_sub {
    struct registry *reg;
    char *service; /* NULL = all */
    registry_event_fn *cb;
    void *data;
    struct registry_sub *next;
    bool is_dead;
};

struct registry {
    uv_loop_t *loop;
    struct store *st;
    struct http_client *client;
    uint32_t min_interval_ms, min_deregister_after_ms;
    char *prefix; /* "<key_prefix>instances/" */
    /* instances by id: chained hash, power-of-two buckets */
    struct reg_inst **ids;
    size_t id_buckets, id_count;
    /* services, sorted by name */
    struct reg_svc **svcs;
    size_t svc_count, svc_cap;
    int64_t index;
    /* waiters (watch.c); lists of registry_waiter */
    struct sh_list any_waiters; /* registry-wide waits, through link; newest first */
    struct sh_list ready;       /* through link; newest first */
    struct sh_list firing;      /* through link; being delivered by the wait timer */
    struct sh_list deadlines;   /* W_WAITING, through dl_link; earliest deadline first */
    uv_timer_t *wait_timer;     /* owned; freed in its close callback */
    /* subscriptions */
    struct registry_sub *subs;
    int dispatch_depth;
    bool has_dead_subs;
    uint64_t rng;
};

/* codec.c: field rules and the stored form. */
int registry__validate(const struct registry *reg, const struct registry_instance *in,
                       struct sh_diag *d);
bool registry__valid_service(const char *name);
/* Deep-copies src into dst with strings, tags and meta in <a>; applies defaults (version "",
 * node "", weight 1, path "/health", timeout, thresholds). 0 or SH_ENOMEM. */
int registry__copy(struct arena *a, const struct registry_instance *src,
                   struct registry_instance *dst);
/* Appends the stored form of <in> (normalised) to <out>. 0 or SH_E*. */
int registry__encode(const struct registry_instance *in, struct buf *out);
/* Decodes a stored value into out, strings in <a>. 0, SH_ECORRUPT or SH_ENOMEM. */
int registry__decode(struct slice enc, struct arena *a, struct registry_instance *out);
bool registry__check_equal(const struct registry_check *a, const struct registry_check *b);

/* check.c: running checks. */
/* (Re)arms the instance's timer for its check: TTL deadline, next probe, or the
 * deregister-after deadline. <is_fresh>: the check just started (stagger probes). */
void registry__check_arm(struct reg_inst *inst, bool is_fresh);
/* Stops the instance's probe in flight (it frees itself later if libuv holds it). */
void registry__check_stop(struct reg_inst *inst);
/* Hands a probe in flight over to the instance that replaces its own on an update. */
void registry__check_adopt(struct reg_probe *p, struct reg_inst *inst);
void registry__timer_fire(uv_timer_t *t);
void registry__handle_free(uv_handle_t *h);

/* registry.c: shared helpers. */
/* Persists <status> (with <note>, taken: owned string or NULL) and tells everyone. */
int registry__set_status(struct reg_inst *inst, enum registry_health status, char *note);
int registry__remove(struct reg_inst *inst, int64_t *out_index);
uint64_t registry__random(struct registry *reg);
/* The record of service <name>, made (with no instances, at the registry-wide index) when
 * there is none. 0 and *out, or SH_ENOMEM and *out NULL. */
int registry__svc_get(struct registry *reg, const char *name, struct reg_svc **out);
/* Frees <s> when it has neither instances nor waiters; NULL is a no-op. */
void registry__svc_gc(struct registry *reg, struct reg_svc *s);

/* watch.c: waits and subscriptions. */
/* Sets up the waiter lists and the wait timer; the lists first, so registry__watch_shutdown
 * works after a failure. 0 or SH_ENOMEM. */
int registry__watch_init(struct registry *reg);
/* Ends every wait (SH_ECANCELED) and then every subscription (a CLOSED event), and closes the
 * wait timer. For registry_free, while the instances still exist. */
void registry__watch_shutdown(struct registry *reg);
/* Marks ready the waiters that the indexes of <s> (NULL: none) and of the registry now
 * satisfy; the wait timer delivers them on a later loop turn. */
void registry__wake(struct registry *reg, struct reg_svc *s);
/* Calls the subscribers of inst's service (every subscriber when inst is NULL), now. */
void registry__emit(struct registry *reg, enum registry_event_type type,
                    const struct reg_inst *inst, enum registry_health previous, int64_t index);

#endif
