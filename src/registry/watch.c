/* SPDX-License-Identifier: MIT */
/* watch.c: blocking waits (registry_wait) and subscriptions (registry_subscribe).
 *
 * Waits: a waiter hangs on its service's list (or the registry-wide one) and on the deadline
 * list, sorted by deadline, behind one uv timer. A change marks the waiters it satisfies ready
 * (registry__wake); the timer delivers them on a later loop turn, never inside the call that
 * made the change, and ends the waiters whose deadline passed with SH_ETIMEDOUT.
 * Subscriptions: called synchronously after each committed change (registry__emit); one may
 * unsubscribe from its callback (it is only marked, and swept when the dispatch ends).
 * Thread: the control thread. */
#include "registry/registry_int.h"

/* ------------------------------------------------------------------------------------------
 * Waiters
 * ------------------------------------------------------------------------------------------ */
static struct registry_waiter *waiter_of(struct sh_list *link)
{
    return SH_CONTAINER_OF(link, struct registry_waiter, link);
}

static struct registry_waiter *dl_waiter_of(struct sh_list *dl_link)
{
    return SH_CONTAINER_OF(dl_link, struct registry_waiter, dl_link);
}

/* The earliest deadline, or NULL. */
static struct registry_waiter *dl_first(const struct registry *reg)
{
    struct sh_list *l = sh_list_first(&reg->deadlines);

    return l ? dl_waiter_of(l) : NULL;
}

/* Deadlines mostly arrive in order (one default wait), so insert from the tail. */
static void dl_insert(struct registry *reg, struct registry_waiter *w)
{
    struct sh_list *p = reg->deadlines.prev;

    while (p != &reg->deadlines && dl_waiter_of(p)->deadline_ms > w->deadline_ms)
        p = p->prev;
    sh_list_insert_after(p, &w->dl_link);
}

/* Ends w's membership of every list (a list it is not in is left alone). */
static void waiter_unlink(struct registry_waiter *w)
{
    sh_list_remove(&w->link);
    sh_list_remove(&w->dl_link);
}

static void wait_timer_fire(uv_timer_t *t);

static void wait_timer_arm(struct registry *reg)
{
    uint64_t now = uv_now(reg->loop);
    struct registry_waiter *first = dl_first(reg);

    if (!sh_list_empty(&reg->ready) || !sh_list_empty(&reg->firing))
        uv_timer_start(reg->wait_timer, wait_timer_fire, 0, 0);
    else if (first)
        uv_timer_start(reg->wait_timer, wait_timer_fire,
                       first->deadline_ms > now ? first->deadline_ms - now : 0, 0);
    else
        uv_timer_stop(reg->wait_timer);
}

/* Moves a waiting waiter to the ready list. */
/* The service record is not freed here: callers run registry__svc_gc when they are done with
 * it. */
static void waiter_ready(struct registry *reg, struct registry_waiter *w, int rc, int64_t index)
{
    waiter_unlink(w);
    w->svc = NULL;
    w->state = W_READY;
    w->rc = rc;
    w->index = index;
    sh_list_insert_head(&reg->ready, &w->link);
}

/* Marks ready every waiter of <list> waiting for an index below <index>; true if any. */
static bool wake_list(struct registry *reg, struct sh_list *list, int64_t index)
{
    struct sh_list *l, *next;
    bool any = false;

    SH_LIST_FOREACH_SAFE(l, next, list)
    {
        struct registry_waiter *w = waiter_of(l);
        if (index > w->after) {
            any = true;
            waiter_ready(reg, w, 0, index);
        }
    }
    return any;
}

void registry__wake(struct registry *reg, struct reg_svc *s)
{
    bool any = false;

    if (s) any = wake_list(reg, &s->waiters, s->index);
    any |= wake_list(reg, &reg->any_waiters, reg->index);
    if (any) wait_timer_arm(reg);
}

static void wait_timer_fire(uv_timer_t *t)
{
    struct registry *reg = t->data;
    uint64_t now = uv_now(reg->loop);
    struct registry_waiter *w;
    struct sh_list *l;

    while ((w = dl_first(reg)) != NULL && w->deadline_ms <= now) {
        struct reg_svc *s = w->svc;
        waiter_ready(reg, w, SH_ETIMEDOUT, s ? s->index : reg->index);
        registry__svc_gc(reg, s);
    }
    /* Deliver what is ready now; waiters made ready by the callbacks wait for the next turn,
     * so a caller re-waiting on an old index cannot spin inside this loop. */
    while ((l = sh_list_first(&reg->ready)) != NULL) {
        sh_list_remove(l);
        sh_list_insert_tail(&reg->firing, l);
        waiter_of(l)->state = W_FIRING;
    }
    while ((l = sh_list_first(&reg->firing)) != NULL) {
        w = waiter_of(l);
        sh_list_remove(l);
        w->cb(w->data, w->rc, w->index);
        sh_free(w);
    }
    wait_timer_arm(reg);
}

int registry_wait(struct registry *reg, const char *service, int64_t after_index,
                  uint64_t timeout_ms, registry_wait_fn *cb, void *data,
                  struct registry_waiter **out)
{
    struct registry_waiter *w;
    struct reg_svc *s = NULL;
    int64_t cur;
    int rc;

    if (out) *out = NULL;
    if (!cb || (service && !registry__valid_service(service))) return SH_EINVAL;
    w = sh_calloc(1, sizeof(*w));
    if (!w) return SH_ENOMEM;
    if (service) {
        rc = registry__svc_get(reg, service, &s);
        if (rc < 0) {
            sh_free(w);
            return rc;
        }
    }
    cur = s ? s->index : reg->index;
    w->reg = reg;
    w->svc = s;
    w->after = after_index;
    w->deadline_ms = uv_now(reg->loop) + SH_MIN(timeout_ms, (uint64_t)REGISTRY_MAX_WAIT_MS);
    w->cb = cb;
    w->data = data;
    sh_list_insert_head(s ? &s->waiters : &reg->any_waiters, &w->link);
    dl_insert(reg, w);
    if (cur > after_index) {
        waiter_ready(reg, w, 0, cur);
        registry__svc_gc(reg, s);
    }
    wait_timer_arm(reg);
    if (out) *out = w;
    return 0;
}

void registry_wait_cancel(struct registry_waiter *w)
{
    struct registry *reg;
    struct reg_svc *s;

    if (!w) return;
    reg = w->reg;
    s = w->svc;
    waiter_unlink(w); /* waiting, ready or firing: each state is one list or two */
    sh_free(w);
    registry__svc_gc(reg, s);
    wait_timer_arm(reg);
}

/* ------------------------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------------------------ */
int registry_subscribe(struct registry *reg, const char *service, registry_event_fn *cb, void *data,
                       struct registry_sub **out)
{
    struct registry_sub *sub;

    *out = NULL;
    if (!cb || (service && !registry__valid_service(service))) return SH_EINVAL;
    sub = sh_calloc(1, sizeof(*sub));
    if (!sub) return SH_ENOMEM;
    if (service) {
        sub->service = sh_strdup(service);
        if (!sub->service) {
            sh_free(sub);
            return SH_ENOMEM;
        }
    }
    sub->reg = reg;
    sub->cb = cb;
    sub->data = data;
    sub->next = reg->subs;
    reg->subs = sub;
    *out = sub;
    return 0;
}

static void sub_free(struct registry_sub *sub)
{
    sh_free(sub->service);
    sh_free(sub);
}

static void subs_sweep(struct registry *reg)
{
    struct registry_sub **pp = &reg->subs;

    while (*pp) {
        struct registry_sub *s = *pp;
        if (s->is_dead) {
            *pp = s->next;
            sub_free(s);
        } else {
            pp = &s->next;
        }
    }
    reg->has_dead_subs = false;
}

void registry_unsubscribe(struct registry_sub *sub)
{
    struct registry *reg;

    if (!sub) return;
    reg = sub->reg;
    sub->is_dead = true;
    reg->has_dead_subs = true;
    if (reg->dispatch_depth == 0) subs_sweep(reg);
}

void registry__emit(struct registry *reg, enum registry_event_type type,
                    const struct reg_inst *inst, enum registry_health previous, int64_t index)
{
    struct registry_event ev = {
        .type = type, .index = index, .instance = inst ? &inst->v : NULL, .previous = previous};

    reg->dispatch_depth++;
    for (struct registry_sub *s = reg->subs; s; s = s->next) {
        if (s->is_dead) continue;
        if (inst && s->service && strcmp(s->service, inst->v.service) != 0) continue;
        s->cb(s->data, &ev);
    }
    reg->dispatch_depth--;
    if (reg->dispatch_depth == 0 && reg->has_dead_subs) subs_sweep(reg);
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------ */
int registry__watch_init(struct registry *reg)
{
    sh_list_init(&reg->any_waiters);
    sh_list_init(&reg->ready);
    sh_list_init(&reg->firing);
    sh_list_init(&reg->deadlines);
    reg->wait_timer = sh_malloc(sizeof(*reg->wait_timer));
    if (!reg->wait_timer) return SH_ENOMEM;
    uv_timer_init(reg->loop, reg->wait_timer);
    reg->wait_timer->data = reg;
    return 0;
}

void registry__watch_shutdown(struct registry *reg)
{
    struct sh_list *l;

    /* End every wait, then every subscription, while the instances still exist. */
    for (;;) {
        struct registry_waiter *w;
        struct reg_svc *s;

        l = sh_list_first(&reg->firing);
        if (!l) l = sh_list_first(&reg->ready);
        if (l) {
            w = waiter_of(l);
        } else {
            w = dl_first(reg);
            if (!w) break;
        }
        s = w->svc; /* NULL unless W_WAITING */
        waiter_unlink(w);
        registry__svc_gc(reg, s);
        w->cb(w->data, SH_ECANCELED, reg->index);
        sh_free(w);
    }
    registry__emit(reg, REGISTRY_EVENT_CLOSED, NULL, REGISTRY_HEALTH_DEFAULT, reg->index);
    for (struct registry_sub *s = reg->subs; s; s = s->next)
        s->is_dead = true;
    subs_sweep(reg);
    if (reg->wait_timer) {
        reg->wait_timer->data = NULL;
        uv_close((uv_handle_t *)reg->wait_timer, registry__handle_free);
        reg->wait_timer = NULL;
    }
}
