/* SPDX-License-Identifier: MIT */
/* check.c: the checks the registry runs itself. Each instance has one libuv timer; it fires
 * at the instance's next due moment: the next HTTP/TCP probe, the TTL deadline, or the moment
 * a CRITICAL instance is to be deregistered. A probe is one check run: it resolves the address
 * when it is a hostname, then GETs the path through the shared HTTP client or connects a TCP
 * socket, and reports once. Results pass through the thresholds (Consul's rule: WARNING counts
 * as a success) before the status changes; a status change is a store write.
 *
 * A probe can outlive its instance (deregistered while the probe waits on getaddrinfo or on
 * closing TCP handles): the instance then detaches it (probe->inst = NULL) and the probe frees
 * itself when libuv is done with it.
 * Thread: the control thread. */
#include "registry/registry_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#define COMP "registry"

enum { RETRY_MS = 1000, NOTE_BYTES = 256 };

struct reg_probe {
    struct reg_inst *inst; /* NULL once detached */
    uv_loop_t *loop;
    struct http_client *client;
    enum registry_check_kind kind;
    uint32_t timeout_ms, port;
    char host[REGISTRY_MAX_ADDRESS_BYTES + 16]; /* Host field: "address:port" */
    char *path;                                 /* HTTP: owned copy */
    struct sockaddr_storage addr;
    uv_getaddrinfo_t gai;
    bool is_resolving;
    struct http_creq *cr;
    int http_status;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_timer_t timer;
    int open_handles; /* TCP: tcp + timer until their close callbacks ran */
    bool is_reported;
    registry_probe_fn *cb; /* a one-off probe (registry_probe): reported here, no inst */
    void *cb_data;
    uint32_t expect_status;
};

/* A check's note; long host names are cut, which is fine for a note. */
static void notef(char *out, size_t n, const char *fmt, ...) SH_PRINTF(3, 4);
static void notef(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static void probe_free_if_idle(struct reg_probe *p)
{
    if (p->inst || p->is_resolving || p->cr || p->open_handles) return;
    sh_free(p->path);
    sh_free(p);
}

/* ------------------------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------------------------ */
static void inst_timer_start(struct reg_inst *inst, uint64_t delay_ms)
{
    uv_timer_start(inst->timer, registry__timer_fire, delay_ms, 0);
}

/* One check result: thresholds, the status flip, and the deregister-after rule. */
static void check_result(struct reg_inst *inst, enum registry_health health, const char *text)
{
    const struct registry_check *c = &inst->v.check;
    enum registry_health next = inst->v.status;
    uint64_t now = uv_now(inst->reg->loop);
    char *note = sh_strndup(text, strlen(text));
    int rc;

    if (health == REGISTRY_CRITICAL) {
        inst->ok_count = 0;
        if (inst->fail_count < UINT32_MAX) inst->fail_count++;
        if (inst->fail_count >= c->failures_before_critical) next = REGISTRY_CRITICAL;
    } else {
        inst->fail_count = 0;
        if (inst->ok_count < UINT32_MAX) inst->ok_count++;
        /* Leaving CRITICAL takes successes_before_passing; PASSING <-> WARNING is at once. */
        if (inst->v.status != REGISTRY_CRITICAL || inst->ok_count >= c->successes_before_passing)
            next = health;
    }
    /* Out of memory for the note keeps the old note; the status still counts. */
    rc = registry__set_status(inst, next, note);
    if (rc < 0) {
        SH_LOG(SH_WARN, COMP, "could not store a health change; retrying", LF_STR("id", inst->v.id),
               LF_ERR("err", rc));
        inst_timer_start(inst, RETRY_MS);
        return;
    }
    if (inst->v.status == REGISTRY_CRITICAL && c->deregister_after_ms &&
        now - inst->critical_since_ms >= c->deregister_after_ms) {
        rc = registry__remove(inst, NULL);
        if (rc == 0) return;
        SH_LOG(SH_WARN, COMP, "could not deregister a critical instance; retrying",
               LF_STR("id", inst->v.id), LF_ERR("err", rc));
    }
    inst_timer_start(inst, c->interval_ms);
}

/* Reports a probe's outcome once and detaches it from its instance. */
static void probe_report(struct reg_probe *p, enum registry_health health, const char *text)
{
    struct reg_inst *inst = p->inst;

    if (p->is_reported) return;
    p->is_reported = true;
    if (p->cb) {
        p->cb(p->cb_data, health, text);
        p->cb = NULL;
        return;
    }
    if (!inst) return;
    p->inst = NULL;
    inst->probe = NULL;
    check_result(inst, health, text);
}

/* ------------------------------------------------------------------------------------------
 * HTTP
 * ------------------------------------------------------------------------------------------ */
static void http_on_head(struct http_creq *cr, const struct http_head *head, void *data)
{
    struct reg_probe *p = data;

    (void)cr;
    p->http_status = head->status;
}

static void http_on_body(struct http_creq *cr, struct slice chunk, void *data)
{
    (void)cr;
    (void)chunk;
    (void)data;
}

static void http_on_done(struct http_creq *cr, int rc, void *data)
{
    struct reg_probe *p = data;
    char note[NOTE_BYTES];
    enum registry_health h = REGISTRY_CRITICAL;
    uint32_t expect = 0;

    (void)cr;
    p->cr = NULL;
    expect = p->inst ? p->inst->v.check.expect_status : p->expect_status;
    if (rc < 0) {
        notef(note, sizeof(note), "HTTP GET %s%s: %s", p->host, p->path, sh_strerror(rc));
    } else {
        int s = p->http_status;
        if (s == 429)
            h = REGISTRY_WARNING;
        else if (expect ? (uint32_t)s == expect : (s >= 200 && s <= 299))
            h = REGISTRY_PASSING;
        notef(note, sizeof(note), "HTTP GET %s%s: %d %s", p->host, p->path, s, http_reason(s));
    }
    probe_report(p, h, note);
    probe_free_if_idle(p);
}

static const struct http_creq_handlers http_handlers = {
    .on_head = http_on_head, .on_body = http_on_body, .on_done = http_on_done};

static void http_start(struct reg_probe *p)
{
    struct http_request_desc d = {
        .addr = (const struct sockaddr *)&p->addr,
        .method = SLICE("GET"),
        .target = slice_from_cstr(p->path),
        .host = slice_from_cstr(p->host),
        .total_timeout_ms = p->timeout_ms,
    };
    int rc = http_client_request(p->client, &d, &http_handlers, p, &p->cr);

    if (rc < 0) {
        char note[NOTE_BYTES];
        p->cr = NULL;
        notef(note, sizeof(note), "HTTP GET %s%s: %s", p->host, p->path, sh_strerror(rc));
        probe_report(p, REGISTRY_CRITICAL, note);
        probe_free_if_idle(p);
    }
}

/* ------------------------------------------------------------------------------------------
 * TCP
 * ------------------------------------------------------------------------------------------ */
static void tcp_closed(uv_handle_t *h)
{
    struct reg_probe *p = h->data;

    p->open_handles--;
    probe_free_if_idle(p);
}

static void tcp_close_all(struct reg_probe *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->tcp)) uv_close((uv_handle_t *)&p->tcp, tcp_closed);
    if (!uv_is_closing((uv_handle_t *)&p->timer)) uv_close((uv_handle_t *)&p->timer, tcp_closed);
}

static void tcp_on_connect(uv_connect_t *req, int status)
{
    struct reg_probe *p = req->data;
    char note[NOTE_BYTES];

    if (status == UV_ECANCELED) return; /* we closed it: timeout or detach */
    if (status == 0)
        notef(note, sizeof(note), "TCP connect %s: success", p->host);
    else
        notef(note, sizeof(note), "TCP connect %s: %s", p->host, uv_strerror(status));
    probe_report(p, status == 0 ? REGISTRY_PASSING : REGISTRY_CRITICAL, note);
    tcp_close_all(p);
}

static void tcp_on_timeout(uv_timer_t *t)
{
    struct reg_probe *p = t->data;
    char note[NOTE_BYTES];

    notef(note, sizeof(note), "TCP connect %s: timed out", p->host);
    probe_report(p, REGISTRY_CRITICAL, note);
    tcp_close_all(p);
}

static void tcp_start(struct reg_probe *p)
{
    int rc;

    uv_tcp_init(p->loop, &p->tcp);
    uv_timer_init(p->loop, &p->timer);
    p->tcp.data = p;
    p->timer.data = p;
    p->conn.data = p;
    p->open_handles = 2;
    rc = uv_tcp_connect(&p->conn, &p->tcp, (const struct sockaddr *)&p->addr, tcp_on_connect);
    if (rc < 0) {
        char note[NOTE_BYTES];
        notef(note, sizeof(note), "TCP connect %s: %s", p->host, uv_strerror(rc));
        probe_report(p, REGISTRY_CRITICAL, note);
        tcp_close_all(p);
        return;
    }
    uv_timer_start(&p->timer, tcp_on_timeout, p->timeout_ms, 0);
}

/* ------------------------------------------------------------------------------------------
 * Start, resolve, stop
 * ------------------------------------------------------------------------------------------ */
static void probe_go(struct reg_probe *p)
{
    if (p->kind == REGISTRY_CHECK_HTTP)
        http_start(p);
    else
        tcp_start(p);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct reg_probe *p = req->data;

    p->is_resolving = false;
    if (status == 0 && res && res->ai_addrlen <= sizeof(p->addr) && (p->inst || p->cb)) {
        memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
        if (p->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&p->addr)->sin_port = htons((uint16_t)p->port);
        else
            ((struct sockaddr_in6 *)&p->addr)->sin6_port = htons((uint16_t)p->port);
        uv_freeaddrinfo(res);
        probe_go(p);
        return;
    }
    uv_freeaddrinfo(res);
    if (p->inst || p->cb) {
        char note[NOTE_BYTES];
        notef(note, sizeof(note), "resolving %s: %s", p->host,
              status ? uv_strerror(status) : "no address");
        probe_report(p, REGISTRY_CRITICAL, note);
    }
    probe_free_if_idle(p);
}

/* A probe of <check> against address:port, not started; NULL when out of memory. */
static struct reg_probe *probe_new(struct registry *reg, const struct registry_check *check,
                                   const char *address, uint32_t port)
{
    struct reg_probe *p = sh_calloc(1, sizeof(*p));
    bool is_v6 = strchr(address, ':') != NULL;

    if (p && check->kind == REGISTRY_CHECK_HTTP) {
        p->path = sh_strdup(check->path);
        if (!p->path) {
            sh_free(p);
            return NULL;
        }
    }
    if (!p) return NULL;
    p->loop = reg->loop;
    p->client = reg->client;
    p->kind = check->kind;
    p->timeout_ms = check->timeout_ms;
    p->expect_status = check->expect_status;
    p->port = port;
    snprintf(p->host, sizeof(p->host), is_v6 ? "[%s]:%u" : "%s:%u", address, port);
    p->gai.data = p;
    return p;
}

/* Starts <p>: at once for a numeric address, else after resolving it. */
static void probe_launch(struct reg_probe *p, const char *address)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc;

    if (uv_ip4_addr(address, (int)p->port, (struct sockaddr_in *)&p->addr) == 0 ||
        uv_ip6_addr(address, (int)p->port, (struct sockaddr_in6 *)&p->addr) == 0) {
        probe_go(p);
        return;
    }
    p->is_resolving = true;
    rc = uv_getaddrinfo(p->loop, &p->gai, on_resolved, address, NULL, &hints);
    if (rc < 0) {
        char note[NOTE_BYTES];
        p->is_resolving = false;
        notef(note, sizeof(note), "resolving %s: %s", p->host, uv_strerror(rc));
        probe_report(p, REGISTRY_CRITICAL, note);
        probe_free_if_idle(p);
    }
}

static void probe_start(struct reg_inst *inst)
{
    const struct registry_instance *v = &inst->v;
    struct reg_probe *p = probe_new(inst->reg, &v->check, v->address, v->port);

    if (!p) {
        SH_LOG(SH_WARN, COMP, "out of memory starting a check; retrying", LF_STR("id", v->id));
        inst_timer_start(inst, RETRY_MS);
        return;
    }
    p->inst = inst;
    inst->probe = p;
    probe_launch(p, v->address);
}

int registry_probe(struct registry *reg, const struct registry_check *check, const char *address,
                   uint32_t port, registry_probe_fn *cb, void *data)
{
    struct sockaddr_storage ss;
    struct reg_probe *p;

    /* numeric addresses only: a probe waiting on getaddrinfo could outlive the registry and
     * its client, which a one-off probe (tracked by no instance) must not */
    if ((check->kind != REGISTRY_CHECK_HTTP && check->kind != REGISTRY_CHECK_TCP) ||
        (check->kind == REGISTRY_CHECK_HTTP && (!check->path || !reg->client)) || !cb ||
        port == 0 || port > 65535 ||
        (uv_ip4_addr(address, (int)port, (struct sockaddr_in *)&ss) != 0 &&
         uv_ip6_addr(address, (int)port, (struct sockaddr_in6 *)&ss) != 0))
        return SH_EINVAL;
    p = probe_new(reg, check, address, port);
    if (!p) return SH_ENOMEM;
    p->cb = cb;
    p->cb_data = data;
    probe_launch(p, address);
    return 0;
}

void registry__check_stop(struct reg_inst *inst)
{
    struct reg_probe *p = inst->probe;

    if (!p) return;
    inst->probe = NULL;
    p->inst = NULL;
    if (p->cr) {
        http_creq_cancel(p->cr); /* no callback follows */
        p->cr = NULL;
    }
    if (p->is_resolving) uv_cancel((uv_req_t *)&p->gai); /* on_resolved still runs and frees */
    if (p->open_handles) tcp_close_all(p);
    probe_free_if_idle(p);
}

void registry__check_adopt(struct reg_probe *p, struct reg_inst *inst)
{
    p->inst = inst;
}

void registry__check_arm(struct reg_inst *inst, bool is_fresh)
{
    const struct registry_check *c = &inst->v.check;
    uint64_t now = uv_now(inst->reg->loop);

    if (c->kind == REGISTRY_CHECK_HTTP || c->kind == REGISTRY_CHECK_TCP) {
        if (inst->probe) return; /* its result arms the next one */
        /* The first run is staggered within the interval (Consul), so a restart with many
         * instances does not probe them all at once. */
        inst_timer_start(inst,
                         is_fresh ? registry__random(inst->reg) % c->interval_ms : c->interval_ms);
        return;
    }
    if (c->kind == REGISTRY_CHECK_TTL && is_fresh) inst->ttl_deadline_ms = now + c->ttl_ms;
    if (inst->v.status == REGISTRY_CRITICAL) {
        if (c->deregister_after_ms) {
            uint64_t due = inst->critical_since_ms + c->deregister_after_ms;
            inst_timer_start(inst, due > now ? due - now : 0);
        } else {
            uv_timer_stop(inst->timer);
        }
    } else if (c->kind == REGISTRY_CHECK_TTL) {
        inst_timer_start(inst, inst->ttl_deadline_ms > now ? inst->ttl_deadline_ms - now : 0);
    } else {
        uv_timer_stop(inst->timer);
    }
}

void registry__timer_fire(uv_timer_t *t)
{
    struct reg_inst *inst = t->data;
    const struct registry_check *c;
    uint64_t now;
    int rc;

    if (!inst) return;
    c = &inst->v.check;
    now = uv_now(inst->reg->loop);
    if (inst->v.status == REGISTRY_CRITICAL && c->deregister_after_ms &&
        now - inst->critical_since_ms >= c->deregister_after_ms) {
        rc = registry__remove(inst, NULL);
        if (rc == 0) return;
        SH_LOG(SH_WARN, COMP, "could not deregister a critical instance; retrying",
               LF_STR("id", inst->v.id), LF_ERR("err", rc));
        inst_timer_start(inst, RETRY_MS);
        return;
    }
    switch (c->kind) {
    case REGISTRY_CHECK_HTTP:
    case REGISTRY_CHECK_TCP:
        probe_start(inst);
        return;
    case REGISTRY_CHECK_TTL:
        if (inst->v.status != REGISTRY_CRITICAL && now >= inst->ttl_deadline_ms) {
            char text[96];
            char *note;
            snprintf(text, sizeof(text), "TTL expired: no heartbeat for %u ms", c->ttl_ms);
            note = sh_strdup(text);
            rc = registry__set_status(inst, REGISTRY_CRITICAL, note);
            if (rc < 0) {
                SH_LOG(SH_WARN, COMP, "could not store a TTL expiry; retrying",
                       LF_STR("id", inst->v.id), LF_ERR("err", rc));
                inst_timer_start(inst, RETRY_MS);
                return;
            }
        }
        break;
    default:
        break;
    }
    registry__check_arm(inst, false);
}
