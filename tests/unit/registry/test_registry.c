/* SPDX-License-Identifier: MIT */
/* test_registry.c: registrations, validation, persistence, queries, blocking waits,
 * subscriptions and OOM torture. Health checks: test_checks.c. */
#include "registry/registry_fixture.h"

#include <stdio.h>

/* ---------------- registrations and queries ---------------- */
static void test_registry__register_query_deregister(void **state)
{
    struct fx *f = fx_new();
    const char *tags1[] = {"v2", "primary"}, *tags2[] = {"v2", "canary"};
    const struct registry_meta meta[] = {{"zone", "eu-1"}, {"owner", "team a"}};
    struct registry_instance a = fx_inst("web-1", "web", 8001), b = fx_inst("web-2", "web", 8002);
    struct registry_instance c = fx_inst("api-1", "api", 9001);
    struct registry_result res;
    int64_t i1 = 0, i2 = 0, i3 = 0;

    (void)state;
    a.tags = tags1;
    a.tag_count = 2;
    a.meta = meta;
    a.meta_count = 2;
    a.version = "1.2.3";
    a.node = "node-a";
    b.tags = tags2;
    b.tag_count = 2;
    b.weight = 5;
    b.status = REGISTRY_WARNING;
    assert_int_equal(registry_register(f->reg, &b, NULL, &i1), 0);
    assert_int_equal(registry_register(f->reg, &a, NULL, &i2), 0);
    assert_int_equal(registry_register(f->reg, &c, NULL, &i3), 0);
    assert_true(i1 >= 1 && i2 > i1 && i3 > i2);
    assert_int_equal(registry_index(f->reg, NULL), i3);
    assert_int_equal(registry_index(f->reg, "web"), i2);

    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 2);
    assert_int_equal(res.index, i2);
    assert_string_equal(res.instances[0].id, "web-1"); /* sorted by id */
    assert_string_equal(res.instances[0].version, "1.2.3");
    assert_string_equal(res.instances[0].node, "node-a");
    assert_int_equal(res.instances[0].weight, 1);
    assert_int_equal(res.instances[0].status, REGISTRY_PASSING); /* no check: passing */
    assert_int_equal(res.instances[0].tag_count, 2);
    assert_string_equal(res.instances[0].tags[1], "primary");
    assert_int_equal(res.instances[0].meta_count, 2);
    assert_string_equal(res.instances[0].meta[1].value, "team a");
    assert_true(res.instances[0].registered_ms > 0);
    assert_string_equal(res.instances[1].id, "web-2");
    assert_string_equal(res.instances[1].version, "");
    assert_int_equal(res.instances[1].weight, 5);
    assert_int_equal(res.instances[1].status, REGISTRY_WARNING);
    registry_result_release(&res);

    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_PASSING, &res), 0);
    assert_int_equal(res.count, 1);
    registry_result_release(&res);
    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_NOT_CRITICAL, &res), 0);
    assert_int_equal(res.count, 2);
    registry_result_release(&res);
    assert_int_equal(registry_instances(f->reg, "nope", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 0);
    assert_int_equal(res.index, i3);
    registry_result_release(&res);

    assert_int_equal(registry_services(f->reg, &res), 0);
    assert_int_equal(res.service_count, 2);
    assert_string_equal(res.services[0].name, "api");
    assert_string_equal(res.services[1].name, "web");
    assert_int_equal(res.services[1].instance_count, 2);
    assert_int_equal(res.services[1].passing_count, 1);
    assert_int_equal(res.services[1].tag_count, 3); /* canary, primary, v2 */
    assert_string_equal(res.services[1].tags[0], "canary");
    assert_string_equal(res.services[1].tags[2], "v2");
    assert_int_equal(res.index, i3);
    registry_result_release(&res);

    assert_int_equal(registry_instance_get(f->reg, "api-1", &res), 0);
    assert_int_equal(res.count, 1);
    assert_int_equal(res.instances[0].port, 9001);
    registry_result_release(&res);

    assert_int_equal(registry_deregister(f->reg, "web-1", &i1), 0);
    assert_true(i1 > i3);
    assert_int_equal(registry_deregister(f->reg, "web-1", NULL), SH_ENOENT);
    assert_int_equal(registry_instance_get(f->reg, "web-1", &res), SH_ENOENT);
    registry_result_release(&res);
    assert_int_equal(registry_deregister(f->reg, "web-2", NULL), 0);
    assert_int_equal(registry_services(f->reg, &res), 0);
    assert_int_equal(res.service_count, 1); /* web has no instances left */
    registry_result_release(&res);
    fx_free(f);
}

static void test_registry__upsert_updates_and_same_registration_writes_nothing(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance a = fx_inst("web-1", "web", 8001);
    struct registry_result res, before;
    struct store_result sr;
    int64_t i1, i2, rev;

    (void)state;
    assert_int_equal(registry_register(f->reg, &a, NULL, &i1), 0);
    assert_int_equal(registry_instance_get(f->reg, "web-1", &before), 0);
    rev = store_revision(f->st);
    assert_int_equal(registry_register(f->reg, &a, NULL, &i2), 0); /* idempotent */
    assert_int_equal(i2, i1);
    assert_int_equal(store_revision(f->st), rev);

    a.port = 8009;
    assert_int_equal(registry_register(f->reg, &a, NULL, &i2), 0);
    assert_true(i2 > i1);
    assert_int_equal(registry_instance_get(f->reg, "web-1", &res), 0);
    assert_int_equal(res.instances[0].port, 8009);
    assert_int_equal(res.instances[0].registered_ms, before.instances[0].registered_ms);
    registry_result_release(&res);
    registry_result_release(&before);

    a.service = "www"; /* moves to another service: one key, under the new name */
    assert_int_equal(registry_register(f->reg, &a, NULL, &i1), 0);
    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 0);
    assert_int_equal(res.index, i1); /* the move changed web too */
    registry_result_release(&res);
    assert_int_equal(registry_instances(f->reg, "www", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 1);
    registry_result_release(&res);
    assert_int_equal(store_range(f->st, STORE_PREFIX(SLICE("registry/")), 0, &sr), 0);
    assert_int_equal(sr.count, 1);
    assert_memory_equal(sr.kvs[0].key.ptr, "registry/instances/www/web-1", sr.kvs[0].key.len);
    store_result_release(&sr);
    fx_free(f);
}

struct bad_case {
    const char *where, *what;
    int rc;
};

static void check_bad(struct fx *f, const struct registry_instance *in, int rc, const char *where,
                      const char *what)
{
    struct sh_diag d = {{0}, {0}};

    assert_int_equal(registry_register(f->reg, in, &d, NULL), rc);
    assert_string_equal(d.where, where);
    if (strstr(d.what, what) == NULL) fail_msg("diag '%s' lacks '%s'", d.what, what);
}

static void test_registry__validation_names_the_field(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance in;
    const char *many_tags[65];
    char long_value[600];
    struct registry_meta dup_meta[] = {{"a", "1"}, {"a", "2"}};
    struct registry_meta big_meta[] = {{"k", long_value}};
    struct registry_result res;
    int64_t rev = store_revision(f->st);

    (void)state;
    for (size_t i = 0; i < 65; i++)
        many_tags[i] = "t";
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';

    in = fx_inst("web-1", "web", 0);
    check_bad(f, &in, SH_EINVAL, "port", "port: must be 1..65535");
    in.port = 70000;
    check_bad(f, &in, SH_EINVAL, "port", "port: must be 1..65535");
    in = fx_inst(NULL, "web", 80);
    check_bad(f, &in, SH_EINVAL, "id", "id: required");
    in = fx_inst("web/1", "web", 80);
    check_bad(f, &in, SH_EINVAL, "id", "id: use letters");
    in = fx_inst("web-1", "Web", 80);
    check_bad(f, &in, SH_EINVAL, "service", "service: must be a DNS label");
    in = fx_inst("web-1", "web-", 80);
    check_bad(f, &in, SH_EINVAL, "service", "DNS label");
    in = fx_inst("web-1", "web", 80);
    in.address = "not an address";
    check_bad(f, &in, SH_EINVAL, "address", "address: must be");
    in.address = "::1";
    in.tags = many_tags;
    in.tag_count = 65;
    check_bad(f, &in, SH_ETOOBIG, "tags", "more than 64");
    in.tag_count = 3;
    many_tags[2] = "bad\ntag";
    check_bad(f, &in, SH_EINVAL, "tags[2]", "control");
    in.tag_count = 0;
    in.meta = dup_meta;
    in.meta_count = 2;
    check_bad(f, &in, SH_EINVAL, "meta.a", "duplicate key");
    in.meta = big_meta;
    in.meta_count = 1;
    check_bad(f, &in, SH_ETOOBIG, "meta.k", "longer than 512");
    in.meta_count = 0;
    in.weight = 10001;
    check_bad(f, &in, SH_EINVAL, "weight", "0..10000");
    in.weight = 0;
    in.check = (struct registry_check){.kind = REGISTRY_CHECK_HTTP, .interval_ms = 5};
    check_bad(f, &in, SH_EINVAL, "check.interval", "at least 10 ms");
    in.check =
        (struct registry_check){.kind = REGISTRY_CHECK_HTTP, .interval_ms = 50, .path = "health"};
    check_bad(f, &in, SH_EINVAL, "check.path", "must start with '/'");
    in.check = (struct registry_check){.kind = REGISTRY_CHECK_TTL};
    check_bad(f, &in, SH_EINVAL, "check.ttl", "at least");
    in.check = (struct registry_check){
        .kind = REGISTRY_CHECK_TTL, .ttl_ms = 100, .deregister_after_ms = 5};
    check_bad(f, &in, SH_EINVAL, "check.deregister_after", "at least 10 ms");
    in.check = (struct registry_check){.kind = 9};
    check_bad(f, &in, SH_EINVAL, "check.kind", "none, ttl, http or tcp");

    /* nothing was stored or indexed */
    assert_int_equal(store_revision(f->st), rev);
    assert_int_equal(registry_services(f->reg, &res), 0);
    assert_int_equal(res.service_count, 0);
    registry_result_release(&res);
    in = fx_inst("web-1.a_b", "web", 80);
    in.address = "host-1.example.com";
    assert_int_equal(registry_register(f->reg, &in, NULL, NULL), 0);
    fx_free(f);
}

static void test_registry__registrations_survive_a_restart(void **state)
{
    struct fx *f = fx_new();
    const char *tags[] = {"a:b", "with space"};
    const struct registry_meta meta[] = {{"k", "v:1 2\n3"}};
    struct registry_instance a = fx_inst("web-1", "web", 8001);
    struct registry_result res;
    int64_t idx;

    (void)state;
    a.tags = tags;
    a.tag_count = 2;
    a.meta = meta;
    a.meta_count = 1;
    a.version = "7";
    a.weight = 3;
    a.check = (struct registry_check){.kind = REGISTRY_CHECK_HTTP,
                                      .interval_ms = 100000,
                                      .path = "/ready",
                                      .expect_status = 204,
                                      .failures_before_critical = 3};
    assert_int_equal(registry_register(f->reg, &a, NULL, NULL), 0);
    assert_int_equal(registry_register(f->reg, FX_INST("api-1", "api", 9001), NULL, &idx), 0);
    assert_int_equal(registry_deregister(f->reg, "api-1", &idx), 0);
    fx_restart(f);
    assert_true(registry_index(f->reg, NULL) >= idx);
    assert_true(registry_index(f->reg, "api") >= idx); /* never backwards */
    assert_int_equal(registry_instance_get(f->reg, "web-1", &res), 0);
    assert_string_equal(res.instances[0].service, "web");
    assert_string_equal(res.instances[0].tags[1], "with space");
    assert_string_equal(res.instances[0].meta[0].value, "v:1 2\n3");
    assert_string_equal(res.instances[0].version, "7");
    assert_int_equal(res.instances[0].weight, 3);
    assert_int_equal(res.instances[0].check.kind, REGISTRY_CHECK_HTTP);
    assert_string_equal(res.instances[0].check.path, "/ready");
    assert_int_equal(res.instances[0].check.expect_status, 204);
    assert_int_equal(res.instances[0].check.failures_before_critical, 3);
    assert_int_equal(res.instances[0].check.timeout_ms, 10000);
    assert_int_equal(res.instances[0].status, REGISTRY_CRITICAL); /* checked: starts critical */
    registry_result_release(&res);
    assert_int_equal(registry_instance_get(f->reg, "api-1", &res), SH_ENOENT);
    registry_result_release(&res);
    fx_free(f);
}

static void test_registry__undecodable_stored_value_is_skipped(void **state)
{
    struct fx *f = fx_new();
    struct registry_result res;

    (void)state;
    assert_int_equal(registry_register(f->reg, FX_INST("web-1", "web", 8001), NULL, NULL), 0);
    assert_int_equal(
        store_put(f->st, SLICE("registry/instances/web/web-2"), SLICE("R1garbage"), 0, NULL), 0);
    fx_restart(f);
    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 1);
    registry_result_release(&res);
    fx_free(f);
}

/* ---------------- blocking waits ---------------- */
struct wres {
    int calls, rc;
    int64_t index;
    uint64_t at_ms;
    uv_loop_t *loop;
};

static void on_wait(void *data, int rc, int64_t index)
{
    struct wres *w = data;

    w->calls++;
    w->rc = rc;
    w->index = index;
    w->at_ms = uv_now(w->loop);
}

static void test_registry__wait_returns_at_once_when_index_already_moved(void **state)
{
    struct fx *f = fx_new();
    struct wres w = {.loop = &f->loop};
    int64_t idx;

    (void)state;
    assert_int_equal(registry_register(f->reg, FX_INST("web-1", "web", 8001), NULL, &idx), 0);
    assert_int_equal(registry_wait(f->reg, "web", idx - 1, 5000, on_wait, &w, NULL), 0);
    assert_int_equal(w.calls, 0); /* never inside the call */
    FX_RUN_UNTIL(f, w.calls == 1, TEST_WAIT_MS);
    assert_int_equal(w.rc, 0);
    assert_int_equal(w.index, idx);
    w.calls = 0;
    assert_int_equal(registry_wait(f->reg, NULL, 0, 5000, on_wait, &w, NULL), 0);
    FX_RUN_UNTIL(f, w.calls == 1, TEST_WAIT_MS);
    assert_int_equal(w.rc, 0);
    fx_free(f);
}

static void test_registry__wait_wakes_on_a_change_of_its_service_only(void **state)
{
    struct fx *f = fx_new();
    struct wres web = {.loop = &f->loop}, api = {.loop = &f->loop}, any = {.loop = &f->loop};
    struct wres fresh = {.loop = &f->loop};
    struct registry_waiter *wa = NULL;
    int64_t idx, idx2;

    (void)state;
    assert_int_equal(registry_register(f->reg, FX_INST("web-1", "web", 8001), NULL, &idx), 0);
    assert_int_equal(registry_wait(f->reg, "web", idx, 5000, on_wait, &web, NULL), 0);
    assert_int_equal(
        registry_wait(f->reg, "api", registry_index(f->reg, "api"), 5000, on_wait, &api, &wa), 0);
    assert_int_equal(registry_wait(f->reg, NULL, idx, 5000, on_wait, &any, NULL), 0);
    assert_int_equal(
        registry_wait(f->reg, "new", registry_index(f->reg, "new"), 5000, on_wait, &fresh, NULL),
        0);
    fx_run(f, 50);
    assert_int_equal(web.calls + api.calls + any.calls + fresh.calls, 0);
    assert_int_equal(registry_register(f->reg, FX_INST("web-2", "web", 8002), NULL, &idx2), 0);
    FX_RUN_UNTIL(f, web.calls == 1 && any.calls == 1, TEST_WAIT_MS);
    assert_int_equal(web.rc, 0);
    assert_int_equal(web.index, idx2);
    /* rc 0 with the new index: woken by the change, not at its 5 s deadline */
    assert_int_equal(any.index, idx2);
    assert_int_equal(api.calls, 0);
    assert_int_equal(fresh.calls, 0);
    /* a service that did not exist wakes when it appears */
    assert_int_equal(registry_register(f->reg, FX_INST("new-1", "new", 7000), NULL, &idx2), 0);
    FX_RUN_UNTIL(f, fresh.calls == 1, TEST_WAIT_MS);
    assert_int_equal(fresh.rc, 0);
    assert_int_equal(fresh.index, idx2);
    assert_int_equal(api.calls, 0);
    registry_wait_cancel(wa);
    fx_free(f);
}

static void test_registry__wait_ends_at_its_deadline(void **state)
{
    struct fx *f = fx_new();
    struct wres w = {.loop = &f->loop};
    int64_t idx = registry_index(f->reg, "web");
    uint64_t t0 = uv_now(&f->loop);

    (void)state;
    assert_int_equal(registry_wait(f->reg, "web", idx, 100, on_wait, &w, NULL), 0);
    FX_RUN_UNTIL(f, w.calls == 1, TEST_WAIT_MS);
    assert_int_equal(w.rc, SH_ETIMEDOUT);
    assert_int_equal(w.index, idx);
    assert_true(w.at_ms - t0 >= 95); /* not before; SH_ETIMEDOUT says it was the deadline */
    fx_free(f);
}

static void test_registry__wait_cancel_and_free(void **state)
{
    struct fx *f = fx_new();
    struct wres a = {.loop = &f->loop}, b = {.loop = &f->loop}, c = {.loop = &f->loop};
    struct registry_waiter *wa, *wc;
    int64_t idx;

    (void)state;
    assert_int_equal(registry_wait(f->reg, "web", 1, 50, on_wait, &a, &wa), 0);
    registry_wait_cancel(wa);
    assert_int_equal(registry_register(f->reg, FX_INST("web-1", "web", 8001), NULL, &idx), 0);
    /* ready but not yet delivered: cancel still works */
    assert_int_equal(registry_wait(f->reg, "web", 0, 50, on_wait, &c, &wc), 0);
    registry_wait_cancel(wc);
    fx_run(f, 100);
    assert_int_equal(a.calls, 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(registry_wait(f->reg, "web", idx, 60000, on_wait, &b, NULL), 0);
    assert_int_equal(registry_wait(f->reg, "bad name", 0, 1, on_wait, &b, NULL), SH_EINVAL);
    registry_free(f->reg); /* pending waits end with SH_ECANCELED */
    f->reg = NULL;
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.rc, SH_ECANCELED);
    fx_free(f);
}

/* ---------------- subscriptions ---------------- */
struct sres {
    struct fx *f;
    int count[5];
    enum registry_health last_previous, last_status;
    int rc_inside;
    struct registry_sub *self;
    bool unsubscribe_self;
};

static void on_event(void *data, const struct registry_event *ev)
{
    struct sres *s = data;

    s->count[ev->type]++;
    if (ev->instance) {
        s->last_status = ev->instance->status;
        s->last_previous = ev->previous;
        s->rc_inside = registry_deregister(s->f->reg, ev->instance->id, NULL);
    }
    if (s->unsubscribe_self && ev->type != REGISTRY_EVENT_CLOSED) {
        registry_unsubscribe(s->self);
        s->self = NULL;
    }
}

static void test_registry__subscriptions_see_every_change(void **state)
{
    struct fx *f = fx_new();
    struct sres all = {.f = f}, api = {.f = f}, once = {.f = f, .unsubscribe_self = true};

    (void)state;
    assert_int_equal(registry_subscribe(f->reg, NULL, on_event, &all, &all.self), 0);
    assert_int_equal(registry_subscribe(f->reg, "api", on_event, &api, &api.self), 0);
    assert_int_equal(registry_subscribe(f->reg, NULL, on_event, &once, &once.self), 0);
    assert_int_equal(registry_register(f->reg, FX_INST("web-1", "web", 8001), NULL, NULL), 0);
    assert_int_equal(all.count[REGISTRY_EVENT_REGISTER], 1);
    assert_int_equal(all.rc_inside, SH_EBUSY); /* no changes from inside a callback */
    assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_CRITICAL, "down"), 0);
    assert_int_equal(all.count[REGISTRY_EVENT_HEALTH], 1);
    assert_int_equal(all.last_previous, REGISTRY_PASSING);
    assert_int_equal(all.last_status, REGISTRY_CRITICAL);
    assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_CRITICAL, "still"), 0);
    assert_int_equal(all.count[REGISTRY_EVENT_HEALTH], 1); /* no change, no event */
    assert_int_equal(registry_deregister(f->reg, "web-1", NULL), 0);
    assert_int_equal(all.count[REGISTRY_EVENT_DEREGISTER], 1);
    assert_int_equal(api.count[REGISTRY_EVENT_REGISTER] + api.count[REGISTRY_EVENT_HEALTH] +
                         api.count[REGISTRY_EVENT_DEREGISTER],
                     0);
    assert_int_equal(once.count[REGISTRY_EVENT_REGISTER], 1);
    assert_int_equal(once.count[REGISTRY_EVENT_HEALTH], 0);
    assert_int_equal(registry_register(f->reg, FX_INST("api-1", "api", 9001), NULL, NULL), 0);
    assert_int_equal(api.count[REGISTRY_EVENT_REGISTER], 1);
    registry_unsubscribe(api.self);
    registry_free(f->reg);
    f->reg = NULL;
    assert_int_equal(all.count[REGISTRY_EVENT_CLOSED], 1);
    assert_int_equal(api.count[REGISTRY_EVENT_CLOSED], 0);
    assert_int_equal(once.count[REGISTRY_EVENT_CLOSED], 0);
    fx_free(f);
}

/* ---------------- OOM torture ---------------- */
/* Opens a registry under its own key prefix, registers, queries and deregisters, with the Nth
 * allocation failing. Every step must fail cleanly, leaving memory and the registry sane. */
static int torture_once(struct fx *f, const char *prefix, long n)
{
    const char *tags[] = {"x", "y"};
    const struct registry_meta meta[] = {{"k", "v"}};
    struct registry_instance a = fx_inst("web-1", "web", 8001);
    struct registry_result res = {0};
    struct registry *reg = NULL;
    struct wres w = {.loop = &f->loop};
    struct registry_sub *sub = NULL;
    struct sres s = {.f = f};
    struct registry_config cfg = f->cfg;
    int rc;

    a.tags = tags;
    a.tag_count = 2;
    a.meta = meta;
    a.meta_count = 1;
    a.check = (struct registry_check){.kind = REGISTRY_CHECK_TTL, .ttl_ms = 60000};
    cfg.key_prefix = prefix;
    sh_alloc_fail_after(n);
    rc = registry_new(&cfg, &f->loop, f->st, f->cl, &reg);
    if (rc < 0) goto out;
    rc = registry_subscribe(reg, NULL, on_event, &s, &sub);
    if (rc == 0) rc = registry_register(reg, &a, NULL, NULL);
    if (rc == 0) rc = registry_heartbeat(reg, "web-1", REGISTRY_PASSING, "fine");
    if (rc == 0) rc = registry_wait(reg, "web", 0, 1000, on_wait, &w, NULL);
    if (rc == 0) {
        rc = registry_instances(reg, "web", REGISTRY_FILTER_PASSING, &res);
        if (rc == 0 && res.count != 1) rc = SH_EIO;
        registry_result_release(&res);
    }
    if (rc == 0) {
        rc = registry_services(reg, &res);
        registry_result_release(&res);
    }
    if (rc == 0) {
        rc = registry_instance_get(reg, "web-1", &res);
        registry_result_release(&res);
    }
    if (rc == 0) rc = registry_deregister(reg, "web-1", NULL);
    sh_alloc_fail_after(0);
    /* whatever failed, the registry still answers consistently */
    if (registry_instance_get(reg, "web-1", &res) == 0)
        assert_string_equal(res.instances[0].tags[1], "y");
    registry_result_release(&res);
out:
    sh_alloc_fail_after(0);
    registry_free(reg);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return rc;
}

static void test_registry__oom_torture_register_and_query(void **state)
{
    struct fx *f = fx_new();
    long live = sh_alloc_live();
    char prefix[32];
    long n;
    int rc = SH_ENOMEM;

    (void)state;
    for (n = 1; n < 2000; n++) {
        snprintf(prefix, sizeof(prefix), "t%ld/", n);
        rc = torture_once(f, prefix, n);
        if (rc != SH_ENOMEM && rc != 0) fail_msg("allocation %ld: %s", n, sh_errname(rc));
        assert_int_equal(sh_alloc_live(), live);
        if (rc == 0) break;
    }
    assert_int_equal(rc, 0);
    assert_true(n > 10);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        REG_TEST(test_registry__register_query_deregister),
        REG_TEST(test_registry__upsert_updates_and_same_registration_writes_nothing),
        REG_TEST(test_registry__validation_names_the_field),
        REG_TEST(test_registry__registrations_survive_a_restart),
        REG_TEST(test_registry__undecodable_stored_value_is_skipped),
        REG_TEST(test_registry__wait_returns_at_once_when_index_already_moved),
        REG_TEST(test_registry__wait_wakes_on_a_change_of_its_service_only),
        REG_TEST(test_registry__wait_ends_at_its_deadline),
        REG_TEST(test_registry__wait_cancel_and_free),
        REG_TEST(test_registry__subscriptions_see_every_change),
        REG_TEST(test_registry__oom_torture_register_and_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
