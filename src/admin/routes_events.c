/* SPDX-License-Identifier: MIT */
/* routes_events.c: Server-Sent Events streams of changes, for dashboards and tools that want
 * every change rather than a long poll:
 *   GET /v1/events/services[?service=NAME]   registrations, deregistrations, health changes
 *   GET /v1/events/kv/<prefix>[?index=N]     config sets and deletes (replayed from N)
 * Each event is "event: <type>\ndata: <one JSON object>\n\n". The stream ends when the client
 * goes away or the control plane stops. */
#include "admin/admin.h"
#include "admin/admin_int.h"
#include "config/config.h"
#include "registry/registry.h"

#include <stdio.h>
#include <string.h>

static bool start_stream(struct admin_req *r)
{
    struct http_out_field f[2] = {{SLICE("Content-Type"), SLICE("text/event-stream")},
                                  {SLICE("Cache-Control"), SLICE("no-cache")}};
    struct http_response_head rh = {.status = 200, .fields = f, .nfields = 2, .content_length = -1};

    if (http_exchange_start(r->ex, &rh) < 0) {
        http_exchange_abort(r->ex);
        return false;
    }
    r->answered = true; /* the stream is the answer; no reply helper may add another */
    r->is_stream = true;
    /* a comment right away, so clients know the stream is open */
    http_exchange_write(r->ex, ": shoal events\n\n", 16);
    return true;
}

static void send_event(struct admin_req *r, const char *type, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT);
    struct buf b = BUF_INIT(0);

    json_decref(data);
    if (!text) return;
    buf_appends(&b, SLICE("event: "));
    buf_appends(&b, slice_from_cstr(type));
    buf_appends(&b, SLICE("\ndata: "));
    buf_appends(&b, slice_from_cstr(text));
    buf_appends(&b, SLICE("\n\n"));
    sh_free(text);
    if (b.err == 0)
        http_exchange_write(r->ex, b.data, b.len); /* a slow reader only grows its queue */
    buf_release(&b);
}

static void end_stream(struct admin_req *r)
{
    if (r->stream_ended) return;
    r->stream_ended = true;
    admin__unpark(r);
    if (http_exchange_finish(r->ex) < 0) http_exchange_abort(r->ex);
}

/* ------------------------------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------------------------------ */
static void reg_event(void *data, const struct registry_event *ev)
{
    struct admin_req *r = data;
    static const char *const names[] = {"", "register", "deregister", "health", "closed"};
    const struct registry_instance *in = ev->instance;

    if (ev->type == REGISTRY_EVENT_CLOSED) {
        send_event(r, "closed", json_pack("{s:I}", "index", (json_int_t)ev->index));
        end_stream(r);
        return;
    }
    send_event(r, names[ev->type],
               json_pack("{s:I, s:s, s:s, s:s, s:i, s:s, s:s}", "index", (json_int_t)ev->index,
                         "id", in ? in->id : "", "service", in ? in->service : "", "address",
                         in ? in->address : "", "port", in ? (int)in->port : 0, "status",
                         in ? registry_health_name(in->status) : "", "previous",
                         registry_health_name(ev->previous)));
}

static void reg_cancel(struct admin_req *r)
{
    registry_unsubscribe(r->wait);
}

void admin__events_services(struct admin_req *r)
{
    struct registry_sub *sub;
    const char *service = admin__query(r, "service");

    if (!r->a->cfg.registry) {
        admin__reply_error(r, 503, NULL, "the registry is not running");
        return;
    }
    if (registry_subscribe(r->a->cfg.registry, service && *service ? service : NULL, reg_event, r,
                           &sub) < 0) {
        admin__reply_error(r, 400, "service", "cannot subscribe to that service");
        return;
    }
    if (!start_stream(r)) {
        registry_unsubscribe(sub);
        return;
    }
    admin__park(r, sub, reg_cancel);
}

/* ------------------------------------------------------------------------------------------
 * Config KV
 * ------------------------------------------------------------------------------------------ */
static void kv_event(void *data, struct cfgkv_sub *sub, const struct cfgkv_event *ev)
{
    struct admin_req *r = data;

    (void)sub;
    if (ev->type == CFGKV_EVENT_ERROR) {
        send_event(r, "error", json_pack("{s:s}", "error", sh_strerror(ev->err)));
        end_stream(r);
        return;
    }
    json_t *o = json_pack("{s:s%, s:I}", "key", ev->entry.key.ptr, ev->entry.key.len, "index",
                          (json_int_t)ev->entry.modify_index);
    if (ev->type == CFGKV_EVENT_SET && ev->entry.is_secret)
        json_object_set_new(o, "secret", json_true());
    if (ev->type == CFGKV_EVENT_SET && (!ev->entry.is_secret || sec_may_read_secrets(r->token)))
        json_object_set_new(o, "value", json_stringn(ev->entry.value.ptr, ev->entry.value.len));
    send_event(r, ev->type == CFGKV_EVENT_SET ? "set" : "delete", o);
}

static void kv_cancel(struct admin_req *r)
{
    cfgkv_sub_cancel(r->wait);
}

void admin__events_kv(struct admin_req *r)
{
    struct cfgkv_sub *sub;
    uint64_t index, wait_ms;
    int rc;

    if (!r->a->cfg.kv) {
        admin__reply_error(r, 503, NULL, "the config store is not running");
        return;
    }
    if (admin__blocking_params(r, &index, &wait_ms) < 0) return;
    if (!start_stream(r)) return;
    struct cfgkv_sub_config sc = {
        .key = slice_from_cstr(r->rest), .is_prefix = true, .from_index = index ? index + 1 : 0};
    rc = cfgkv_subscribe(r->a->cfg.kv, &sc, kv_event, r, &sub);
    if (rc < 0) {
        send_event(r, "error", json_pack("{s:s}", "error", cfgkv_errmsg(r->a->cfg.kv)));
        end_stream(r);
        return;
    }
    if (r->stream_ended) { /* the replay already failed and ended the stream */
        cfgkv_sub_cancel(sub);
        return;
    }
    admin__park(r, sub, kv_cancel);
}
