/* SPDX-License-Identifier: MIT */
/* test_checks.c: TTL checks and heartbeats, HTTP checks with thresholds and Consul's status
 * mapping against an in-process server, TCP checks against an open and a closed port, and
 * deregistration after a time critical. Real time, 10..200 ms intervals. */
#include "registry/registry_fixture.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

/* Records health flips with the server's hit count and the loop time at the moment of the
 * flip. */
struct flips {
    struct fx *f;
    int n;
    enum registry_health status[16];
    int hits[16];
    uint64_t at[16];
    int deregistered;
};

static void on_flip(void *data, const struct registry_event *ev)
{
    struct flips *fl = data;

    if (ev->type == REGISTRY_EVENT_DEREGISTER) fl->deregistered++;
    if (ev->type != REGISTRY_EVENT_HEALTH || fl->n == 16) return;
    fl->status[fl->n] = ev->instance->status;
    fl->hits[fl->n] = fl->f->hits;
    fl->at[fl->n] = uv_now(&fl->f->loop);
    fl->n++;
}

static const char *note_of(struct fx *f, const char *id, char *out, size_t n)
{
    struct registry_result res;

    out[0] = '\0';
    if (registry_instance_get(f->reg, id, &res) == 0) snprintf(out, n, "%s", res.instances[0].note);
    registry_result_release(&res);
    return out;
}

/* Whether every flip to critical in fl came a full TTL or more after the heartbeat before it
 * (beats: the loop times of the heartbeats, in order). A busy machine may stall the loop past
 * a TTL, and then a flip is right; a flip earlier than the TTL never is. */
static bool no_flip_before_the_ttl(const struct flips *fl, const uint64_t *beats, int nbeats,
                                   uint64_t ttl_ms)
{
    for (int i = 0; i < fl->n; i++) {
        uint64_t last = 0;

        if (fl->status[i] != REGISTRY_CRITICAL) continue;
        for (int b = 0; b < nbeats && beats[b] <= fl->at[i]; b++)
            last = beats[b];
        if (fl->at[i] - last < ttl_ms) {
            print_error("critical %llu ms after a heartbeat, TTL %llu ms\n",
                        (unsigned long long)(fl->at[i] - last), (unsigned long long)ttl_ms);
            return false;
        }
    }
    return true;
}

static void test_checks__ttl_expiry_goes_critical_and_heartbeat_passes(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance in = *FX_INST("web-1", "web", 8001);
    struct flips fl = {.f = f};
    struct registry_sub *sub;
    uint64_t beats[6];
    char note[256];

    (void)state;
    in.check = (struct registry_check){.kind = REGISTRY_CHECK_TTL, .ttl_ms = 100};
    assert_int_equal(registry_register(f->reg, &in, NULL, NULL), 0);
    assert_int_equal(fx_status(f, "web-1"), REGISTRY_CRITICAL); /* until the first heartbeat */
    assert_int_equal(registry_subscribe(f->reg, NULL, on_flip, &fl, &sub), 0);
    beats[0] = uv_now(&f->loop);
    assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_PASSING, "all good"), 0);
    assert_int_equal(fx_status(f, "web-1"), REGISTRY_PASSING);
    assert_string_equal(note_of(f, "web-1", note, sizeof(note)), "all good");
    for (int i = 1; i <= 4; i++) { /* heartbeats within the TTL keep it passing */
        fx_run(f, 50);
        beats[i] = uv_now(&f->loop);
        assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_PASSING, NULL), 0);
        assert_int_equal(fx_status(f, "web-1"), REGISTRY_PASSING);
    }
    /* no heartbeat any more: critical, a TTL after the last one and not before */
    FX_RUN_UNTIL(f, fx_status(f, "web-1") == REGISTRY_CRITICAL, TEST_WAIT_MS);
    assert_int_equal(fl.status[fl.n - 1], REGISTRY_CRITICAL);
    assert_true(fl.at[fl.n - 1] - beats[4] >= 100);
    assert_true(no_flip_before_the_ttl(&fl, beats, 5, 100));
    assert_non_null(strstr(note_of(f, "web-1", note, sizeof(note)), "TTL expired"));
    registry_unsubscribe(sub);
    assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_WARNING, "slow"), 0);
    assert_int_equal(fx_status(f, "web-1"), REGISTRY_WARNING);
    assert_int_equal(registry_heartbeat(f->reg, "nope", REGISTRY_PASSING, NULL), SH_ENOENT);
    assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_HEALTH_DEFAULT, NULL), SH_EINVAL);
    fx_free(f);
}

static void test_checks__ttl_gets_one_ttl_of_grace_after_a_restart(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance in = *FX_INST("web-1", "web", 8001);
    struct flips fl = {.f = f};
    struct registry_sub *sub;
    uint64_t t0;
    int64_t rev;

    (void)state;
    in.check = (struct registry_check){.kind = REGISTRY_CHECK_TTL, .ttl_ms = 150};
    assert_int_equal(registry_register(f->reg, &in, NULL, NULL), 0);
    assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_PASSING, NULL), 0);
    rev = store_revision(f->st);
    for (int i = 0; i < 10; i++) /* heartbeats that change nothing write nothing */
        assert_int_equal(registry_heartbeat(f->reg, "web-1", REGISTRY_PASSING, NULL), 0);
    assert_int_equal(store_revision(f->st), rev);
    t0 = uv_now(&f->loop); /* no later than the reopened registry's clock */
    fx_restart(f);
    assert_int_equal(fx_status(f, "web-1"), REGISTRY_PASSING);
    assert_int_equal(registry_subscribe(f->reg, NULL, on_flip, &fl, &sub), 0);
    /* critical once the grace is over, and not before a full TTL after the restart */
    FX_RUN_UNTIL(f, fx_status(f, "web-1") == REGISTRY_CRITICAL, TEST_WAIT_MS);
    assert_int_equal(fl.n, 1);
    assert_int_equal(fl.status[0], REGISTRY_CRITICAL);
    assert_true(fl.at[0] - t0 >= 150);
    registry_unsubscribe(sub);
    fx_free(f);
}

static void test_checks__http_check_flips_after_its_thresholds(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance in = *FX_INST("web-1", "web", f->port);
    struct flips fl = {.f = f};
    struct registry_sub *sub;
    char note[256];
    int h0;

    (void)state;
    in.check = (struct registry_check){.kind = REGISTRY_CHECK_HTTP,
                                       .path = "/health",
                                       .interval_ms = 20,
                                       .timeout_ms = 500,
                                       .failures_before_critical = 2,
                                       .successes_before_passing = 2};
    assert_int_equal(registry_subscribe(f->reg, NULL, on_flip, &fl, &sub), 0);
    assert_int_equal(registry_register(f->reg, &in, NULL, NULL), 0);
    assert_int_equal(fx_status(f, "web-1"), REGISTRY_CRITICAL);
    FX_RUN_UNTIL(f, fl.n == 1, TEST_WAIT_MS);
    assert_int_equal(fl.status[0], REGISTRY_PASSING);
    assert_int_equal(fl.hits[0], 2); /* two successes before passing */
    assert_non_null(strstr(note_of(f, "web-1", note, sizeof(note)), "200"));

    h0 = f->hits;
    f->answer = 500;
    FX_RUN_UNTIL(f, fl.n == 2, TEST_WAIT_MS);
    assert_int_equal(fl.status[1], REGISTRY_CRITICAL);
    assert_int_equal(fl.hits[1] - h0, 2); /* two failures before critical */
    assert_non_null(strstr(note_of(f, "web-1", note, sizeof(note)), "500"));

    h0 = f->hits;
    f->answer = 204;
    FX_RUN_UNTIL(f, fl.n == 3, TEST_WAIT_MS);
    assert_int_equal(fl.status[2], REGISTRY_PASSING);
    assert_int_equal(fl.hits[2] - h0, 2);
    registry_unsubscribe(sub);
    fx_free(f);
}

static void test_checks__http_429_is_warning_and_expect_status_is_exact(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance in = *FX_INST("web-1", "web", f->port);

    (void)state;
    f->answer = 429;
    in.check = (struct registry_check){.kind = REGISTRY_CHECK_HTTP, .interval_ms = 20};
    assert_int_equal(registry_register(f->reg, &in, NULL, NULL), 0);
    FX_RUN_UNTIL(f, fx_status(f, "web-1") == REGISTRY_WARNING, TEST_WAIT_MS);
    f->answer = 200;
    FX_RUN_UNTIL(f, fx_status(f, "web-1") == REGISTRY_PASSING, TEST_WAIT_MS);
    /* expect_status: only that status passes */
    in.check.expect_status = 204;
    assert_int_equal(registry_register(f->reg, &in, NULL, NULL), 0);
    FX_RUN_UNTIL(f, fx_status(f, "web-1") == REGISTRY_CRITICAL, TEST_WAIT_MS);
    f->answer = 204;
    FX_RUN_UNTIL(f, fx_status(f, "web-1") == REGISTRY_PASSING, TEST_WAIT_MS);
    fx_free(f);
}

/* A port that refuses connections: bound, never listened on (kept bound by the caller). */
static int closed_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof(sin);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void test_checks__tcp_check_open_and_closed_port(void **state)
{
    struct fx *f = fx_new();
    uint16_t dead;
    int fd = closed_port(&dead);
    struct registry_instance up = *FX_INST("up-1", "tcp", f->port);
    struct registry_instance down = *FX_INST("down-1", "tcp", dead);
    char note[256];

    (void)state;
    up.check =
        (struct registry_check){.kind = REGISTRY_CHECK_TCP, .interval_ms = 20, .timeout_ms = 500};
    down.check = up.check;
    down.status = REGISTRY_PASSING; /* starts passing, so the flip is visible */
    assert_int_equal(registry_register(f->reg, &up, NULL, NULL), 0);
    assert_int_equal(registry_register(f->reg, &down, NULL, NULL), 0);
    FX_RUN_UNTIL(f, fx_status(f, "up-1") == REGISTRY_PASSING, TEST_WAIT_MS);
    FX_RUN_UNTIL(f, fx_status(f, "down-1") == REGISTRY_CRITICAL, TEST_WAIT_MS);
    assert_non_null(strstr(note_of(f, "down-1", note, sizeof(note)), "refused"));
    assert_non_null(strstr(note_of(f, "up-1", note, sizeof(note)), "success"));
    assert_int_equal(f->hits, 0); /* connects only, no requests */
    close(fd);
    fx_free(f);
}

static void test_checks__critical_instances_are_deregistered_after_the_set_time(void **state)
{
    struct fx *f = fx_new();
    struct registry_instance ttl = *FX_INST("ttl-1", "web", 8001);
    struct registry_instance http = *FX_INST("http-1", "web", f->port);
    struct registry_instance keep = *FX_INST("keep-1", "web", f->port);
    struct flips fl = {.f = f};
    struct registry_sub *sub;
    struct registry_result res;
    uint64_t t0;

    (void)state;
    f->answer = 503;
    ttl.check = (struct registry_check){
        .kind = REGISTRY_CHECK_TTL, .ttl_ms = 50, .deregister_after_ms = 100};
    http.check = (struct registry_check){
        .kind = REGISTRY_CHECK_HTTP, .interval_ms = 20, .deregister_after_ms = 150};
    keep.check = (struct registry_check){.kind = REGISTRY_CHECK_HTTP, .interval_ms = 20};
    assert_int_equal(registry_subscribe(f->reg, "web", on_flip, &fl, &sub), 0);
    t0 = uv_now(&f->loop);
    assert_int_equal(registry_register(f->reg, &ttl, NULL, NULL), 0);
    assert_int_equal(registry_register(f->reg, &http, NULL, NULL), 0);
    assert_int_equal(registry_register(f->reg, &keep, NULL, NULL), 0);
    assert_int_equal(registry_heartbeat(f->reg, "ttl-1", REGISTRY_PASSING, NULL), 0);
    FX_RUN_UNTIL(f, fl.deregistered == 2, TEST_WAIT_MS);
    assert_true(uv_now(&f->loop) - t0 >= 140);
    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 1); /* keep-1 has no deregister_after */
    assert_string_equal(res.instances[0].id, "keep-1");
    registry_result_release(&res);
    fx_restart(f); /* and they are gone from the store too */
    assert_int_equal(registry_instances(f->reg, "web", REGISTRY_FILTER_ALL, &res), 0);
    assert_int_equal(res.count, 1);
    registry_result_release(&res);
    fx_free(f);
}

static void test_checks__deregister_during_a_probe_leaves_nothing_behind(void **state)
{
    struct fx *f = fx_new();
    uint16_t dead;
    int fd = closed_port(&dead);
    struct registry_instance a = *FX_INST("a-1", "web", f->port);
    struct registry_instance b = *FX_INST("b-1", "web", dead);

    (void)state;
    a.check = (struct registry_check){.kind = REGISTRY_CHECK_HTTP, .interval_ms = 10};
    b.check = (struct registry_check){.kind = REGISTRY_CHECK_TCP, .interval_ms = 10};
    assert_int_equal(registry_register(f->reg, &a, NULL, NULL), 0);
    assert_int_equal(registry_register(f->reg, &b, NULL, NULL), 0);
    for (int i = 0; i < 10; i++) {
        fx_run(f, 7);
        assert_int_equal(registry_deregister(f->reg, "a-1", NULL), 0);
        assert_int_equal(registry_deregister(f->reg, "b-1", NULL), 0);
        assert_int_equal(registry_register(f->reg, &a, NULL, NULL), 0);
        assert_int_equal(registry_register(f->reg, &b, NULL, NULL), 0);
    }
    fx_run(f, 5);
    close(fd);
    fx_free(f); /* probes in flight are stopped; the teardown checks for leaks */
}

/* registry_probe: one run, reported once, registering nothing. */
struct probe_result {
    int calls;
    enum registry_health health;
    char note[256];
};

static void on_probe(void *data, enum registry_health health, const char *note)
{
    struct probe_result *r = data;

    r->calls++;
    r->health = health;
    snprintf(r->note, sizeof(r->note), "%s", note);
}

static void test_checks__probe_runs_once_without_registering(void **state)
{
    struct fx *f = fx_new();
    uint16_t dead;
    int fd = closed_port(&dead);
    struct registry_check http = {
        .kind = REGISTRY_CHECK_HTTP, .path = "/health", .timeout_ms = 500};
    struct registry_check tcp = {.kind = REGISTRY_CHECK_TCP, .timeout_ms = 500};
    struct probe_result ok = {0}, bad = {0}, refused = {0}, open_ = {0};
    struct registry_result res;

    (void)state;
    assert_int_equal(registry_probe(f->reg, &http, "127.0.0.1", f->port, on_probe, &ok), 0);
    FX_RUN_UNTIL(f, ok.calls == 1, TEST_WAIT_MS);
    assert_int_equal(ok.health, REGISTRY_PASSING);
    assert_non_null(strstr(ok.note, "200"));
    f->answer = 503;
    assert_int_equal(registry_probe(f->reg, &http, "127.0.0.1", f->port, on_probe, &bad), 0);
    FX_RUN_UNTIL(f, bad.calls == 1, TEST_WAIT_MS);
    assert_int_equal(bad.health, REGISTRY_CRITICAL);
    assert_int_equal(registry_probe(f->reg, &tcp, "127.0.0.1", dead, on_probe, &refused), 0);
    assert_int_equal(registry_probe(f->reg, &tcp, "127.0.0.1", f->port, on_probe, &open_), 0);
    FX_RUN_UNTIL(f, refused.calls == 1 && open_.calls == 1, TEST_WAIT_MS);
    assert_int_equal(refused.health, REGISTRY_CRITICAL);
    assert_int_equal(open_.health, REGISTRY_PASSING);
    fx_run(f, 30);
    assert_int_equal(ok.calls + bad.calls + refused.calls + open_.calls, 4); /* once each */
    assert_int_equal(f->hits, 2);
    assert_int_equal(registry_services(f->reg, &res), 0);
    assert_int_equal(res.service_count, 0); /* nothing registered */
    registry_result_release(&res);
    /* refused at once: not a check it can run */
    tcp.kind = REGISTRY_CHECK_TTL;
    assert_int_equal(registry_probe(f->reg, &tcp, "127.0.0.1", f->port, on_probe, &ok), SH_EINVAL);
    http.path = NULL;
    assert_int_equal(registry_probe(f->reg, &http, "127.0.0.1", f->port, on_probe, &ok), SH_EINVAL);
    assert_int_equal(ok.calls, 1);
    close(fd);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        REG_TEST(test_checks__ttl_expiry_goes_critical_and_heartbeat_passes),
        REG_TEST(test_checks__ttl_gets_one_ttl_of_grace_after_a_restart),
        REG_TEST(test_checks__http_check_flips_after_its_thresholds),
        REG_TEST(test_checks__http_429_is_warning_and_expect_status_is_exact),
        REG_TEST(test_checks__tcp_check_open_and_closed_port),
        REG_TEST(test_checks__critical_instances_are_deregistered_after_the_set_time),
        REG_TEST(test_checks__deregister_during_a_probe_leaves_nothing_behind),
        REG_TEST(test_checks__probe_runs_once_without_registering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
