/* SPDX-License-Identifier: MIT */
/* test_snapshot.c: snapshot publishing. Single-threaded contract tests, then the hammer: one
 * publisher thread publishing thousands of objects while four readers acquire, check and
 * release continuously (two of them holding references across many iterations). The free
 * function poisons each object and counts it; half the objects are really freed (ASan catches
 * any later access) and half are kept poisoned in a graveyard until the end (so the plain build
 * catches a reader that sees a retired object too). */
#include "test_util.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#define MAGIC_LIVE UINT64_C(0x5a5a0b1ec7)
#define MAGIC_DEAD UINT64_C(0xdeadbeefdeadbeef)

struct obj {
    uint64_t magic;
    uint64_t counter; /* equals the version it was published as */
    uint64_t payload[6];
};

/* Bookkeeping the free function keeps; it runs only on the publishing thread. */
struct tracker {
    long frees;
    long bad_frees;       /* freed twice, or not live when freed */
    unsigned char *freed; /* freed[counter] = times freed */
    size_t max_counter;
    struct obj **graveyard; /* poisoned objects kept readable until the end */
    size_t ngraveyard;
};

static void obj_free(void *p, void *data)
{
    struct obj *o = p;
    struct tracker *t = data;

    if (o->magic != MAGIC_LIVE) t->bad_frees++;
    if (o->counter <= t->max_counter && t->freed[o->counter]++ != 0) t->bad_frees++;
    o->magic = MAGIC_DEAD;
    memset(o->payload, 0xee, sizeof(o->payload));
    t->frees++;
    if (t->graveyard && o->counter % 2 == 0)
        t->graveyard[t->ngraveyard++] = o;
    else
        sh_free(o);
}

static struct obj *obj_new(uint64_t counter)
{
    struct obj *o = sh_malloc(sizeof(*o));

    if (!o) return NULL;
    o->magic = MAGIC_LIVE;
    o->counter = counter;
    for (size_t i = 0; i < SH_ARRAY_LEN(o->payload); i++)
        o->payload[i] = counter * 31 + i;
    return o;
}

static bool obj_intact(const struct snap *s)
{
    const struct obj *o = s->obj;

    if (o->magic != MAGIC_LIVE || o->counter != s->version) return false;
    for (size_t i = 0; i < SH_ARRAY_LEN(o->payload); i++) {
        if (o->payload[i] != o->counter * 31 + i) return false;
    }
    return true;
}

static void tracker_init(struct tracker *t, size_t max_counter, bool graveyard)
{
    memset(t, 0, sizeof(*t));
    t->max_counter = max_counter;
    t->freed = sh_calloc(max_counter + 1, 1);
    assert_non_null(t->freed);
    if (graveyard) {
        t->graveyard = sh_calloc(max_counter + 1, sizeof(*t->graveyard));
        assert_non_null(t->graveyard);
    }
}

static void tracker_release(struct tracker *t)
{
    for (size_t i = 0; i < t->ngraveyard; i++)
        sh_free(t->graveyard[i]);
    sh_free(t->graveyard);
    sh_free(t->freed);
    memset(t, 0, sizeof(*t));
}

/* ---- single-threaded contract ---- */

static void test_snapshot__nothing_published_acquires_null(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;
    struct tracker t;

    (void)state;
    tracker_init(&t, 4, false);
    assert_int_equal(snap_domain_new(obj_free, &t, &dom), 0);
    assert_int_equal(snap_reader_register(dom, &r), 0);
    assert_null(snap_acquire(r));
    assert_int_equal(snap_version(dom), 0);
    assert_int_equal(snap_domain_collect(dom), 0);
    snap_release(NULL);
    snap_domain_free(dom);
    assert_int_equal(t.frees, 0);
    tracker_release(&t);
    snap_domain_free(NULL);
}

static void test_snapshot__publish_then_acquire_returns_object(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;
    struct snap *s, *s2;
    struct tracker t;

    (void)state;
    tracker_init(&t, 4, false);
    assert_int_equal(snap_domain_new(obj_free, &t, &dom), 0);
    assert_int_equal(snap_reader_register(dom, &r), 0);
    assert_int_equal(snap_publish(dom, obj_new(1)), 0);
    assert_int_equal(snap_version(dom), 1);
    s = snap_acquire(r);
    assert_non_null(s);
    assert_int_equal(s->version, 1);
    assert_true(obj_intact(s));
    s2 = snap_acquire(r); /* two references from one reader are fine */
    assert_ptr_equal(s, s2);
    snap_release(s2);
    snap_release(s);
    snap_domain_free(dom);
    assert_int_equal(t.frees, 1);
    assert_int_equal(t.bad_frees, 0);
    tracker_release(&t);
}

static void test_snapshot__publish_null_unpublishes(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;
    struct tracker t;

    (void)state;
    tracker_init(&t, 4, false);
    assert_int_equal(snap_domain_new(obj_free, &t, &dom), 0);
    assert_int_equal(snap_reader_register(dom, &r), 0);
    assert_int_equal(snap_publish(dom, obj_new(1)), 0);
    assert_int_equal(snap_publish(dom, NULL), 0);
    assert_int_equal(snap_version(dom), 2);
    assert_null(snap_acquire(r));
    /* Nobody held the first one: publishing retired it and collected it. */
    assert_int_equal(t.frees, 1);
    assert_int_equal(snap_domain_collect(dom), 0);
    assert_int_equal(snap_publish(dom, obj_new(3)), 0);
    struct snap *s = snap_acquire(r);
    assert_non_null(s);
    assert_int_equal(s->version, 3);
    assert_true(obj_intact(s));
    snap_release(s);
    snap_domain_free(dom);
    assert_int_equal(t.frees, 2);
    assert_int_equal(t.bad_frees, 0);
    tracker_release(&t);
}

static void test_snapshot__held_reference_outlives_publishes(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;
    struct snap *held, *s;
    struct tracker t;

    (void)state;
    tracker_init(&t, 8, false);
    assert_int_equal(snap_domain_new(obj_free, &t, &dom), 0);
    assert_int_equal(snap_reader_register(dom, &r), 0);
    assert_int_equal(snap_publish(dom, obj_new(1)), 0);
    held = snap_acquire(r);
    for (uint64_t v = 2; v <= 5; v++)
        assert_int_equal(snap_publish(dom, obj_new(v)), 0);
    /* 2, 3, 4 were never held: freed. 1 is held: retired but alive. */
    assert_int_equal(t.frees, 3);
    assert_int_equal(snap_domain_collect(dom), 1);
    assert_true(obj_intact(held));
    s = snap_acquire(r);
    assert_int_equal(s->version, 5);
    snap_release(s);
    snap_release(held);
    assert_int_equal(snap_domain_collect(dom), 0);
    assert_int_equal(t.frees, 4);
    assert_int_equal(t.freed[1], 1);
    snap_domain_free(dom);
    assert_int_equal(t.frees, 5);
    assert_int_equal(t.bad_frees, 0);
    tracker_release(&t);
}

static void test_snapshot__reader_limit_is_256(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;

    (void)state;
    assert_int_equal(snap_domain_new(NULL, NULL, &dom), 0);
    for (int i = 0; i < 256; i++)
        assert_int_equal(snap_reader_register(dom, &r), 0);
    r = (struct snap_reader *)dom; /* must be reset to NULL */
    assert_int_equal(snap_reader_register(dom, &r), SH_ELIMIT);
    assert_null(r);
    assert_int_equal(snap_reader_register(dom, &r), SH_ELIMIT);
    snap_domain_free(dom); /* frees every reader */
}

static void test_snapshot__readers_are_cache_line_aligned(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;

    (void)state;
    assert_int_equal(snap_domain_new(NULL, NULL, &dom), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(snap_reader_register(dom, &r), 0);
        /* The struct asks for 64-byte alignment; handing out less is undefined behaviour. */
        assert_int_equal((uintptr_t)r % 64, 0);
        assert_null(snap_acquire(r));
    }
    snap_domain_free(dom);
}

static void test_snapshot__oom_in_publish_keeps_previous_current(void **state)
{
    struct snap_domain *dom;
    struct snap_reader *r;
    struct obj *o2;
    struct snap *s;
    struct tracker t;

    (void)state;
    tracker_init(&t, 4, false);
    assert_int_equal(snap_domain_new(obj_free, &t, &dom), 0);
    assert_int_equal(snap_reader_register(dom, &r), 0);
    assert_int_equal(snap_publish(dom, obj_new(1)), 0);
    o2 = obj_new(2);
    assert_non_null(o2);
    sh_alloc_fail_after(1);
    assert_int_equal(snap_publish(dom, o2), SH_ENOMEM);
    sh_alloc_fail_after(0);
    assert_int_equal(snap_version(dom), 1);
    assert_int_equal(t.frees, 0); /* neither freed: o2 was not taken */
    s = snap_acquire(r);
    assert_non_null(s);
    assert_int_equal(s->version, 1);
    assert_true(obj_intact(s));
    snap_release(s);
    sh_free(o2);
    /* The next publish takes version 2. */
    assert_int_equal(snap_publish(dom, obj_new(2)), 0);
    s = snap_acquire(r);
    assert_int_equal(s->version, 2);
    assert_true(obj_intact(s));
    snap_release(s);
    snap_domain_free(dom);
    assert_int_equal(t.frees, 2);
    assert_int_equal(t.bad_frees, 0);
    tracker_release(&t);
}

static void test_snapshot__oom_torture_of_setup(void **state)
{
    long total;

    (void)state;
    for (long n = 1;; n++) {
        struct snap_domain *dom = NULL;
        struct snap_reader *r = NULL;
        struct obj *o = NULL;
        int rc;

        sh_alloc_fail_after(n);
        rc = snap_domain_new(NULL, NULL, &dom);
        if (rc == 0) rc = snap_reader_register(dom, &r);
        if (rc == 0) rc = snap_reader_register(dom, &r);
        if (rc == 0) {
            o = obj_new(1);
            rc = o ? snap_publish(dom, o) : SH_ENOMEM;
        }
        total = sh_alloc_count();
        sh_alloc_fail_after(0);
        snap_domain_free(dom);
        sh_free(o); /* free_fn is NULL: the object stays ours, published or not */
        if (rc == 0) break;
        assert_int_equal(rc, SH_ENOMEM);
        assert_true(n < 100);
    }
    assert_true(total >= 5);
}

/* ---- the hammer ---- */

enum { READERS = 4, MIN_PUBLISHES = 20000, PUBLISHES = 2000000, HOLD_SLOTS = 8, HAMMER_MS = 1500 };

struct hammer {
    struct snap_domain *dom;
    _Atomic bool stop;
    _Atomic int started;
    _Atomic long published;
};

struct reader_ctx {
    struct hammer *h;
    struct snap_reader *r;
    bool holds;           /* keeps up to HOLD_SLOTS references across iterations */
    long acquired, nulls; /* results, read after join */
    long poisoned;        /* saw a retired or wrong object */
    long backwards;       /* saw a version lower than one seen before */
};

static void *reader_main(void *arg)
{
    struct reader_ctx *c = arg;
    struct snap *held[HOLD_SLOTS] = {0};
    uint64_t last = 0;
    unsigned long it = 0;

    atomic_fetch_add(&c->h->started, 1);
    while (!atomic_load_explicit(&c->h->stop, memory_order_relaxed)) {
        struct snap *s = snap_acquire(c->r);
        it++;
        if (!s) {
            c->nulls++;
            continue;
        }
        c->acquired++;
        if (!obj_intact(s)) c->poisoned++;
        if (s->version < last) c->backwards++;
        last = s->version;
        if (c->holds) {
            /* Hold this one for a while: swap it into a slot, release what was there. */
            size_t k = (it / 7) % HOLD_SLOTS;
            if (held[k] && !obj_intact(held[k])) c->poisoned++;
            snap_release(held[k]);
            held[k] = s;
            /* Check every held reference now and then: none may have been freed. */
            if (it % 64 == 0) {
                for (size_t j = 0; j < HOLD_SLOTS; j++) {
                    if (held[j] && !obj_intact(held[j])) c->poisoned++;
                }
            }
        } else {
            snap_release(s);
        }
    }
    for (size_t j = 0; j < HOLD_SLOTS; j++) {
        if (held[j] && !obj_intact(held[j])) c->poisoned++;
        snap_release(held[j]);
    }
    return NULL;
}

static void test_snapshot__hammer_readers_never_see_freed_objects(void **state)
{
    struct hammer h = {0};
    struct reader_ctx ctx[READERS];
    pthread_t th[READERS];
    struct tracker t;
    uint64_t deadline, start_ms;
    long published = 0, live;

    (void)state;
    tracker_init(&t, PUBLISHES, true);
    live = sh_alloc_live();
    assert_int_equal(snap_domain_new(obj_free, &t, &h.dom), 0);
    for (int i = 0; i < READERS; i++) {
        ctx[i] = (struct reader_ctx){.h = &h, .holds = i < 2};
        assert_int_equal(snap_reader_register(h.dom, &ctx[i].r), 0);
    }
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &ctx[i]), 0);
    while (atomic_load(&h.started) < READERS)
        sched_yield();

    /* Publish for HAMMER_MS (at least MIN_PUBLISHES, at most PUBLISHES); every 1000th publish
     * is NULL. The race windows are nanoseconds wide, so the hammer needs time more than a
     * count: with the epoch check removed from collect, ASan reports a use-after-free here. */
    start_ms = sh_now_ms();
    deadline = start_ms + HAMMER_MS;
    for (uint64_t v = 1; v <= PUBLISHES; v++) {
        struct obj *o = v % 1000 == 0 ? NULL : obj_new(v);
        if (v % 1000 != 0) assert_non_null(o);
        assert_int_equal(snap_publish(h.dom, o), 0);
        published += o != NULL;
        if (v % 16 == 0) (void)snap_domain_collect(h.dom);
        if (v % 256 == 0) {
            sched_yield(); /* let readers catch up and hold old versions */
            if (v >= MIN_PUBLISHES && sh_now_ms() > deadline) break;
        }
    }
    atomic_store(&h.stop, true);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    long acquired = 0;
    for (int i = 0; i < READERS; i++) {
        if (ctx[i].poisoned || ctx[i].backwards)
            fail_msg("reader %d: %ld poisoned, %ld backwards of %ld", i, ctx[i].poisoned,
                     ctx[i].backwards, ctx[i].acquired);
        acquired += ctx[i].acquired;
    }
    assert_true(acquired > 0);
    assert_int_equal(t.bad_frees, 0);

    /* Every reader released: collect frees every retired snapshot. */
    assert_int_equal(snap_domain_collect(h.dom), 0);
    uint64_t last_version = snap_version(h.dom);
    bool current_is_null = last_version % 1000 == 0;
    assert_int_equal(t.frees, published - (current_is_null ? 0 : 1));
    snap_domain_free(h.dom);
    assert_int_equal(t.frees, published);
    assert_int_equal(t.bad_frees, 0);
    for (uint64_t v = 1; v <= last_version; v++)
        assert_int_equal(t.freed[v], v % 1000 == 0 ? 0 : 1);
    tracker_release(&t);
    assert_int_equal(sh_alloc_live(), live - 2); /* tracker arrays were counted in live */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_snapshot__nothing_published_acquires_null),
        SH_TEST(test_snapshot__publish_then_acquire_returns_object),
        SH_TEST(test_snapshot__publish_null_unpublishes),
        SH_TEST(test_snapshot__held_reference_outlives_publishes),
        SH_TEST(test_snapshot__reader_limit_is_256),
        SH_TEST(test_snapshot__readers_are_cache_line_aligned),
        SH_TEST(test_snapshot__oom_in_publish_keeps_previous_current),
        SH_TEST(test_snapshot__oom_torture_of_setup),
        SH_TEST(test_snapshot__hammer_readers_never_see_freed_objects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
