/* SPDX-License-Identifier: MIT */
/* watch.c: blocking waits and subscriptions (config.h). Each wait and each subscription holds
 * one store watch on its key or prefix, so the store does the matching, the ordering and the
 * replay; a wait also has a deadline, and one loop timer per cfgkv serves the earliest one.
 * Threads: the control thread only. */
#include "config/config_int.h"

struct cfgkv_wait {
    struct cfgkv *kv;
    struct store_watch *sw;
    cfgkv_wait_fn *cb;
    void *data;
    uint64_t deadline_ms; /* sh_now_ms(): the loop's cached time may be stale when we start */
    struct sh_list link;  /* in kv->waits */
};

struct cfgkv_sub {
    struct cfgkv *kv;
    struct store_watch *sw;
    cfgkv_sub_fn *cb;
    void *data;
    bool is_replaying; /* inside cfgkv_subscribe: a cancel only marks */
    bool is_canceled;
    bool is_gone;        /* cfgkv_free ended it: a cancel from its last callback does nothing */
    struct sh_list link; /* in kv->subs once the replay is over */
};

/* ------------------------------------------------------------------------------------------
 * Waits
 * ------------------------------------------------------------------------------------------ */
static void on_timer(uv_timer_t *t);

static struct cfgkv_wait *wait_of(const struct sh_list *l)
{
    return SH_CONTAINER_OF(l, struct cfgkv_wait, link);
}

/* Points the timer at the earliest deadline, or stops it. */
static void rearm(struct cfgkv *kv)
{
    uint64_t first = UINT64_MAX, now = sh_now_ms();
    struct sh_list *l;

    SH_LIST_FOREACH(l, &kv->waits)
    first = SH_MIN(first, wait_of(l)->deadline_ms);
    if (first == UINT64_MAX)
        uv_timer_stop(kv->timer);
    else
        uv_timer_start(kv->timer, on_timer, first > now ? first - now : 0, 0);
}

static void unlink_wait(struct cfgkv_wait *w)
{
    sh_list_remove(&w->link);
    store_watch_cancel(w->sw);
    sh_free(w);
}

/* Ends w and then calls its callback: w is gone by then, so the callback may do anything. */
static void finish(struct cfgkv_wait *w, int status, bool is_rearm)
{
    struct cfgkv *kv = w->kv;
    cfgkv_wait_fn *cb = w->cb;
    void *data = w->data;

    unlink_wait(w);
    if (is_rearm) rearm(kv);
    cb(data, status);
}

static void on_timer(uv_timer_t *t)
{
    struct cfgkv *kv = t->data;

    /* A callback may cancel or add waits: look again from the head after each one. The loop's
     * clock may run behind ours, so the timer can fire early: rearm() then starts it again. */
    for (;;) {
        uint64_t now = sh_now_ms();
        struct cfgkv_wait *due = NULL;
        struct sh_list *l;
        SH_LIST_FOREACH(l, &kv->waits)
        {
            if (wait_of(l)->deadline_ms <= now) {
                due = wait_of(l);
                break;
            }
        }
        if (!due) break;
        finish(due, CFGKV_TIMEOUT, false);
    }
    rearm(kv);
}

static void wait_on_event(void *data, struct store_watch *sw, const struct store_event *ev)
{
    struct cfgkv_wait *w = data;
    (void)sw;

    finish(w, ev->type == STORE_EVENT_ERROR ? ev->err : CFGKV_CHANGED, true);
}

int cfgkv_wait(struct cfgkv *kv, const struct cfgkv_wait_config *cfg, cfgkv_wait_fn *cb, void *data,
               struct cfgkv_wait **out)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey;
    struct cfgkv_wait *w;
    uint64_t index, timeout_ms;
    int rc;

    *out = NULL;
    if (!cfg || !cb) return SH_EINVAL;
    if (kv->is_closing) return SH_ESHUTDOWN;
    rc = cfgkv__check(kv, cfg->key, cfg->is_prefix);
    if (rc < 0) return rc;
    if (cfg->index == 0) return CFGKV_CHANGED;
    rc = cfgkv__index_of(kv, cfg->key, cfg->is_prefix, &index);
    if (rc < 0) return rc;
    if (index > cfg->index) return CFGKV_CHANGED;
    w = sh_calloc(1, sizeof(*w));
    if (!w) return SH_ENOMEM;
    skey = cfgkv__skey(buf, cfg->key);
    /* From now on: nothing can be written between the index read above and this watch. */
    rc = store_watch(
        kv->st,
        &(struct store_watch_config){.span = cfg->is_prefix ? STORE_PREFIX(skey) : STORE_KEY(skey)},
        wait_on_event, w, &w->sw);
    if (rc < 0) {
        sh_free(w);
        return rc;
    }
    timeout_ms = cfg->timeout_ms ? SH_MIN(cfg->timeout_ms, (uint64_t)CFGKV_MAX_WAIT_MS)
                                 : CFGKV_DEFAULT_WAIT_MS;
    w->kv = kv;
    w->cb = cb;
    w->data = data;
    w->deadline_ms = sh_now_ms() + timeout_ms;
    sh_list_insert_head(&kv->waits, &w->link);
    rearm(kv);
    *out = w;
    return 0;
}

void cfgkv_wait_cancel(struct cfgkv_wait *w)
{
    struct cfgkv *kv;

    if (!w) return;
    kv = w->kv;
    unlink_wait(w);
    rearm(kv);
}

/* ------------------------------------------------------------------------------------------
 * Subscriptions
 * ------------------------------------------------------------------------------------------ */
static void sub_on_event(void *data, struct store_watch *sw, const struct store_event *sev)
{
    struct cfgkv_sub *s = data;
    bool is_replaying = s->is_replaying;
    struct cfgkv_event ev = {.is_index_end = sev->is_revision_end};
    int rc;

    if (s->is_canceled) return;
    if (sev->type == STORE_EVENT_ERROR) {
        ev.type = CFGKV_EVENT_ERROR;
        ev.err = sev->err;
    } else {
        rc = cfgkv__entry_from(&sev->kv, &ev.entry);
        ev.type = sev->type == STORE_EVENT_PUT ? CFGKV_EVENT_SET : CFGKV_EVENT_DELETE;
        if (rc < 0) {
            /* Not written by us: say so once, and stop (ERROR is the last event). */
            ev = (struct cfgkv_event){.type = CFGKV_EVENT_ERROR, .err = rc};
            store_watch_cancel(sw);
            s->sw = NULL;
        }
    }
    s->cb(s->data, s, &ev); /* may free s, unless replaying */
    if (is_replaying && s->is_canceled) store_watch_cancel(sw);
}

int cfgkv_subscribe(struct cfgkv *kv, const struct cfgkv_sub_config *cfg, cfgkv_sub_fn *cb,
                    void *data, struct cfgkv_sub **out)
{
    char buf[CFGKV__SKEY_BUF];
    struct slice skey;
    struct cfgkv_sub *s;
    struct store_watch *sw = NULL;
    int rc;

    *out = NULL;
    if (!cfg || !cb || cfg->from_index > INT64_MAX) return SH_EINVAL;
    if (kv->is_closing) return SH_ESHUTDOWN;
    rc = cfgkv__check(kv, cfg->key, cfg->is_prefix);
    if (rc < 0) return rc;
    s = sh_calloc(1, sizeof(*s));
    if (!s) return SH_ENOMEM;
    s->kv = kv;
    s->cb = cb;
    s->data = data;
    s->is_replaying = true;
    sh_list_init(&s->link);
    skey = cfgkv__skey(buf, cfg->key);
    rc = store_watch(
        kv->st,
        &(struct store_watch_config){.span = cfg->is_prefix ? STORE_PREFIX(skey) : STORE_KEY(skey),
                                     .from_revision = (int64_t)cfg->from_index},
        sub_on_event, s, &sw);
    if (rc < 0) {
        cfgkv__set_errmsg(kv, "subscribe: %s", store_errmsg(kv->st));
        sh_free(s);
        return rc;
    }
    if (s->is_canceled) {
        store_watch_cancel(sw); /* NULL when the replay already canceled it */
        sh_free(s);
        return 0;
    }
    s->is_replaying = false;
    s->sw = sw;
    sh_list_insert_head(&kv->subs, &s->link);
    *out = s;
    return 0;
}

void cfgkv_sub_cancel(struct cfgkv_sub *s)
{
    if (!s || s->is_gone || s->is_canceled) return;
    s->is_canceled = true;
    if (s->is_replaying) return; /* cfgkv_subscribe frees it when the replay ends */
    sh_list_remove(&s->link);
    store_watch_cancel(s->sw);
    sh_free(s);
}

void cfgkv__watch_shutdown(struct cfgkv *kv)
{
    struct sh_list *l;

    kv->is_closing = true;
    while ((l = sh_list_first(&kv->waits)) != NULL)
        finish(wait_of(l), SH_ESHUTDOWN, false);
    while ((l = sh_list_first(&kv->subs)) != NULL) {
        struct cfgkv_sub *s = SH_CONTAINER_OF(l, struct cfgkv_sub, link);
        sh_list_remove(l);
        store_watch_cancel(s->sw);
        s->is_gone = true;
        s->cb(s->data, s, &(struct cfgkv_event){.type = CFGKV_EVENT_ERROR, .err = SH_ESHUTDOWN});
        sh_free(s);
    }
}
