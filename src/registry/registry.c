/* SPDX-License-Identifier: MIT */
/* registry.c: the registry object, its in-memory indexes over the stored instances, changes
 * and queries. Blocking waits and subscriptions are in watch.c.
 *
 * Ordering: a change is written to the store first; only when the write committed does memory
 * change (everything a change needs is allocated before the write, so nothing can fail after
 * it), then subscribers hear of it synchronously, then waiters are marked ready and woken from
 * the wait timer on a later loop turn (never inside the changing call).
 * Thread: the control thread. */
#include "registry/registry_int.h"

#include <stdio.h>
#include <stdlib.h>

#define COMP "registry"

enum { INSTANCE_ARENA_BYTES = 512, RESULT_ARENA_BYTES = 4096 };

const char *registry_health_name(enum registry_health h)
{
    static const char *const names[] = {"default", "passing", "warning", "critical"};

    return (unsigned)h < SH_ARRAY_LEN(names) ? names[h] : "?";
}

uint64_t registry__random(struct registry *reg)
{
    /* xorshift64*: stagger and nothing more */
    reg->rng ^= reg->rng >> 12;
    reg->rng ^= reg->rng << 25;
    reg->rng ^= reg->rng >> 27;
    return reg->rng * 2685821657736338717ull;
}

/* ------------------------------------------------------------------------------------------
 * Id hash
 * ------------------------------------------------------------------------------------------ */
static size_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static struct reg_inst *find_id(const struct registry *reg, const char *id)
{
    struct reg_inst *i;

    if (!reg->id_buckets) return NULL;
    for (i = reg->ids[hash_str(id) & (reg->id_buckets - 1)]; i; i = i->id_next) {
        if (strcmp(i->v.id, id) == 0) return i;
    }
    return NULL;
}

/* Makes room for one more id; rehashing may fail, inserting after it cannot. */
static int ids_reserve(struct registry *reg)
{
    size_t n, nb;
    struct reg_inst **t;

    if (reg->id_count + 1 <= reg->id_buckets) return 0;
    nb = reg->id_buckets ? reg->id_buckets * 2 : 64;
    t = sh_calloc(nb, sizeof(*t));
    if (!t) return SH_ENOMEM;
    for (n = 0; n < reg->id_buckets; n++) {
        struct reg_inst *i = reg->ids[n], *next;
        for (; i; i = next) {
            size_t b = hash_str(i->v.id) & (nb - 1);
            next = i->id_next;
            i->id_next = t[b];
            t[b] = i;
        }
    }
    sh_free(reg->ids);
    reg->ids = t;
    reg->id_buckets = nb;
    return 0;
}

static void ids_insert(struct registry *reg, struct reg_inst *inst)
{
    size_t b = hash_str(inst->v.id) & (reg->id_buckets - 1);

    inst->id_next = reg->ids[b];
    reg->ids[b] = inst;
    reg->id_count++;
}

static void ids_remove(struct registry *reg, struct reg_inst *inst)
{
    struct reg_inst **pp = &reg->ids[hash_str(inst->v.id) & (reg->id_buckets - 1)];

    for (; *pp; pp = &(*pp)->id_next) {
        if (*pp == inst) {
            *pp = inst->id_next;
            reg->id_count--;
            return;
        }
    }
}

/* ------------------------------------------------------------------------------------------
 * Services
 * ------------------------------------------------------------------------------------------ */
static size_t svc_pos(const struct registry *reg, const char *name, bool *found)
{
    size_t lo = 0, hi = reg->svc_count;

    *found = false;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(reg->svcs[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct reg_svc *svc_find(const struct registry *reg, const char *name)
{
    bool found;
    size_t pos = svc_pos(reg, name, &found);

    return found ? reg->svcs[pos] : NULL;
}

int registry__svc_get(struct registry *reg, const char *name, struct reg_svc **out)
{
    bool found;
    size_t pos = svc_pos(reg, name, &found);
    struct reg_svc *s;

    if (found) {
        *out = reg->svcs[pos];
        return 0;
    }
    *out = NULL;
    SH_TRY(sh_array_reserve(&reg->svcs, &reg->svc_cap, reg->svc_count + 1, sizeof(*reg->svcs)));
    s = sh_calloc(1, sizeof(*s));
    if (!s) return SH_ENOMEM;
    s->name = sh_strdup(name);
    if (!s->name) {
        sh_free(s);
        return SH_ENOMEM;
    }
    s->index = reg->index;
    sh_list_init(&s->insts);
    sh_list_init(&s->waiters);
    memmove(reg->svcs + pos + 1, reg->svcs + pos, (reg->svc_count - pos) * sizeof(*reg->svcs));
    reg->svcs[pos] = s;
    reg->svc_count++;
    *out = s;
    return 0;
}

/* Frees a service record nobody needs. Its index is forgotten: a later record for the name
 * starts at the registry-wide index, which is never lower. */
void registry__svc_gc(struct registry *reg, struct reg_svc *s)
{
    bool found;
    size_t pos;

    if (!s || s->count || !sh_list_empty(&s->waiters)) return;
    pos = svc_pos(reg, s->name, &found);
    if (SH_NEVER(!found)) return;
    memmove(reg->svcs + pos, reg->svcs + pos + 1, (reg->svc_count - pos - 1) * sizeof(*reg->svcs));
    reg->svc_count--;
    sh_free(s->name);
    sh_free(s);
}

static void svc_link(struct reg_svc *s, struct reg_inst *inst)
{
    inst->svc = s;
    sh_list_insert_head(&s->insts, &inst->svc_link);
    s->count++;
}

static void svc_unlink(struct reg_inst *inst)
{
    sh_list_remove(&inst->svc_link);
    inst->svc->count--;
    inst->svc = NULL;
}

/* The instance whose svc_link is <l>. */
static struct reg_inst *svc_inst(const struct sh_list *l)
{
    return SH_CONTAINER_OF(l, struct reg_inst, svc_link);
}

/* ------------------------------------------------------------------------------------------
 * Instances
 * ------------------------------------------------------------------------------------------ */
static int inst_key(const struct registry *reg, const struct registry_instance *v, struct buf *b)
{
    buf_appends(b, slice_from_cstr(reg->prefix));
    buf_appends(b, slice_from_cstr(v->service));
    buf_appendc(b, '/');
    return buf_appends(b, slice_from_cstr(v->id));
}

static void inst_free(struct reg_inst *inst)
{
    if (!inst) return;
    registry__check_stop(inst);
    if (inst->timer) {
        inst->timer->data = NULL;
        uv_close((uv_handle_t *)inst->timer, registry__handle_free);
        inst->timer = NULL;
    }
    arena_release(&inst->mem);
    sh_free(inst->note);
    sh_free(inst->enc);
    sh_free(inst);
}

void registry__handle_free(uv_handle_t *h)
{
    sh_free(h);
}

/* Builds an instance (not linked anywhere) from <src>, with its stored form. */
static int inst_new(struct registry *reg, const struct registry_instance *src,
                    struct reg_inst **out)
{
    struct reg_inst *inst = sh_calloc(1, sizeof(*inst));
    struct buf enc = BUF_INIT(STORE_MAX_VALUE_BYTES);
    int rc;

    *out = NULL;
    if (!inst) return SH_ENOMEM;
    inst->reg = reg;
    sh_list_init(&inst->svc_link);
    arena_init(&inst->mem, INSTANCE_ARENA_BYTES, 0);
    rc = registry__copy(&inst->mem, src, &inst->v);
    if (rc < 0) goto fail;
    inst->v.note = "";
    rc = registry__encode(&inst->v, &enc);
    if (rc < 0) goto fail;
    inst->enc = buf_detach(&enc, &inst->enc_len);
    inst->timer = sh_malloc(sizeof(*inst->timer));
    if (!inst->timer) {
        rc = SH_ENOMEM;
        goto fail;
    }
    uv_timer_init(reg->loop, inst->timer);
    inst->timer->data = inst;
    *out = inst;
    return 0;
fail:
    buf_release(&enc);
    arena_release(&inst->mem);
    sh_free(inst->enc);
    sh_free(inst);
    return rc;
}

/* Indexes are store revisions plus one: always above 0 (Consul clients need that), and the
 * first write to an empty store (revision 1) still moves the index past the one reported
 * before it. */
static void set_index(struct registry *reg, struct reg_svc *s, int64_t rev)
{
    if (rev + 1 > reg->index) reg->index = rev + 1;
    if (s && reg->index > s->index) s->index = reg->index;
}

static void critical_clock(struct reg_inst *inst, enum registry_health before)
{
    if (inst->v.status == REGISTRY_CRITICAL && before != REGISTRY_CRITICAL)
        inst->critical_since_ms = uv_now(inst->reg->loop);
}

int registry_register(struct registry *reg, const struct registry_instance *in, struct sh_diag *d,
                      int64_t *out_index)
{
    struct reg_inst *old, *inst = NULL;
    struct reg_svc *svc = NULL, *old_svc;
    struct registry_instance tmp;
    struct buf key = BUF_INIT(STORE_MAX_KEY_BYTES), old_key = BUF_INIT(STORE_MAX_KEY_BYTES);
    bool is_same_check;
    int rc;

    if (out_index) *out_index = 0;
    rc = registry__validate(reg, in, d);
    if (rc < 0) return rc;
    if (reg->dispatch_depth) return SH_EBUSY;
    old = find_id(reg, in->id);
    tmp = *in;
    if (tmp.status == REGISTRY_HEALTH_DEFAULT) {
        if (old && old->v.check.kind == in->check.kind)
            tmp.status = old->v.status;
        else
            tmp.status =
                in->check.kind == REGISTRY_CHECK_NONE ? REGISTRY_PASSING : REGISTRY_CRITICAL;
    }
    tmp.registered_ms = old ? old->v.registered_ms : sh_wall_ms();
    tmp.note = NULL;
    rc = inst_new(reg, &tmp, &inst);
    if (rc < 0) return rc;
    if (old && inst->enc_len == old->enc_len && memcmp(inst->enc, old->enc, old->enc_len) == 0) {
        inst_free(inst); /* nothing changed: no write, no index move */
        if (out_index) *out_index = registry_index(reg, in->service);
        return 0;
    }
    rc = registry__svc_get(reg, in->service, &svc);
    if (rc == 0 && !old) rc = ids_reserve(reg);
    if (rc == 0) rc = inst_key(reg, &inst->v, &key);
    if (rc == 0 && old && old->svc != svc) rc = inst_key(reg, &old->v, &old_key);
    if (rc == 0) {
        struct store_op ops[2] = {
            {.type = STORE_OP_PUT,
             .span = STORE_KEY(buf_slice(&key)),
             .value = {.ptr = inst->enc, .len = inst->enc_len}},
            {.type = STORE_OP_DELETE, .span = STORE_KEY(buf_slice(&old_key))},
        };
        struct store_txn_result tr;
        rc = store_txn(reg->st,
                       &(struct store_txn){.success = ops, .success_count = old_key.len ? 2 : 1},
                       &tr);
        if (rc == 0) set_index(reg, NULL, tr.revision);
    }
    buf_release(&key);
    buf_release(&old_key);
    if (rc < 0) {
        inst_free(inst);
        registry__svc_gc(reg, svc);
        return rc;
    }
    /* Committed: nothing below may fail. */
    is_same_check = old && registry__check_equal(&old->v.check, &inst->v.check) &&
                    strcmp(old->v.address, inst->v.address) == 0 && old->v.port == inst->v.port;
    old_svc = old ? old->svc : NULL;
    if (old) {
        ids_remove(reg, old);
        svc_unlink(old);
        if (is_same_check) {
            /* the running check carries on: hand over its state */
            inst->note = old->note;
            old->note = NULL;
            inst->ok_count = old->ok_count;
            inst->fail_count = old->fail_count;
            inst->ttl_deadline_ms = old->ttl_deadline_ms;
            inst->critical_since_ms = old->critical_since_ms;
            inst->probe = old->probe;
            old->probe = NULL;
            if (inst->probe) registry__check_adopt(inst->probe, inst);
        }
    }
    if (inst->note) inst->v.note = inst->note;
    ids_insert(reg, inst);
    svc_link(svc, inst);
    set_index(reg, svc, reg->index - 1); /* the index already moved: carry it to svc */
    if (old_svc && old_svc != svc) set_index(reg, old_svc, reg->index - 1);
    critical_clock(inst, old && is_same_check ? old->v.status : REGISTRY_PASSING);
    if (old && old_svc != svc)
        registry__emit(reg, REGISTRY_EVENT_DEREGISTER, old, old->v.status, reg->index);
    registry__emit(reg, REGISTRY_EVENT_REGISTER, inst, old ? old->v.status : inst->v.status,
                   reg->index);
    /* A changed check starts afresh; an unchanged one keeps its clocks (and its probe). */
    registry__check_arm(inst, !is_same_check);
    inst_free(old);
    registry__wake(reg, svc);
    if (old_svc && old_svc != svc) {
        registry__wake(reg, old_svc);
        registry__svc_gc(reg, old_svc);
    }
    if (out_index) *out_index = registry_index(reg, in->service);
    return 0;
}

int registry__remove(struct reg_inst *inst, int64_t *out_index)
{
    struct registry *reg = inst->reg;
    struct reg_svc *svc = inst->svc;
    struct buf key = BUF_INIT(STORE_MAX_KEY_BYTES);
    int64_t rev = 0;
    int rc;

    rc = inst_key(reg, &inst->v, &key);
    if (rc == 0) rc = store_delete(reg->st, STORE_KEY(buf_slice(&key)), NULL, &rev);
    buf_release(&key);
    if (rc < 0) return rc;
    ids_remove(reg, inst);
    svc_unlink(inst);
    set_index(reg, svc, rev);
    registry__emit(reg, REGISTRY_EVENT_DEREGISTER, inst, inst->v.status, reg->index);
    inst_free(inst);
    registry__wake(reg, svc);
    if (out_index) *out_index = svc->index;
    registry__svc_gc(reg, svc);
    return 0;
}

int registry_deregister(struct registry *reg, const char *id, int64_t *out_index)
{
    struct reg_inst *inst;

    if (out_index) *out_index = 0;
    if (reg->dispatch_depth) return SH_EBUSY;
    inst = id ? find_id(reg, id) : NULL;
    if (!inst) return SH_ENOENT;
    return registry__remove(inst, out_index);
}

int registry__set_status(struct reg_inst *inst, enum registry_health status, char *note)
{
    struct registry *reg = inst->reg;
    enum registry_health before = inst->v.status;
    struct buf enc = BUF_INIT(STORE_MAX_VALUE_BYTES), key = BUF_INIT(STORE_MAX_KEY_BYTES);
    int64_t rev = 0;
    int rc = 0;

    if (status != before) {
        inst->v.status = status;
        rc = registry__encode(&inst->v, &enc);
        inst->v.status = before;
        if (rc == 0) rc = inst_key(reg, &inst->v, &key);
        if (rc == 0) rc = store_put(reg->st, buf_slice(&key), buf_slice(&enc), 0, &rev);
        buf_release(&key);
        if (rc < 0) {
            buf_release(&enc);
            sh_free(note);
            return rc;
        }
        sh_free(inst->enc);
        inst->enc = buf_detach(&enc, &inst->enc_len);
        inst->v.status = status;
    }
    if (note) {
        sh_free(inst->note);
        inst->note = note;
        inst->v.note = note;
    }
    if (status == before) return 0;
    critical_clock(inst, before);
    set_index(reg, inst->svc, rev);
    registry__emit(reg, REGISTRY_EVENT_HEALTH, inst, before, reg->index);
    registry__wake(reg, inst->svc);
    return 0;
}

int registry_heartbeat(struct registry *reg, const char *id, enum registry_health status,
                       const char *note)
{
    struct reg_inst *inst;
    char *copy = NULL;
    int rc;

    if (reg->dispatch_depth) return SH_EBUSY;
    if (status < REGISTRY_PASSING || status > REGISTRY_CRITICAL) return SH_EINVAL;
    inst = id ? find_id(reg, id) : NULL;
    if (!inst) return SH_ENOENT;
    if (inst->v.check.kind != REGISTRY_CHECK_TTL && inst->v.check.kind != REGISTRY_CHECK_NONE)
        return SH_EINVAL;
    if (note && strcmp(note, inst->v.note) != 0) {
        copy = sh_strndup(note, SH_MIN(strlen(note), (size_t)REGISTRY_MAX_NOTE_BYTES));
        if (!copy) return SH_ENOMEM;
    }
    rc = registry__set_status(inst, status, copy);
    if (rc < 0) return rc;
    if (inst->v.check.kind == REGISTRY_CHECK_TTL)
        inst->ttl_deadline_ms = uv_now(reg->loop) + inst->v.check.ttl_ms;
    registry__check_arm(inst, false);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------------------------ */
int64_t registry_index(const struct registry *reg, const char *service)
{
    const struct reg_svc *s = service ? svc_find(reg, service) : NULL;

    return s ? s->index : reg->index;
}

void registry_result_release(struct registry_result *res)
{
    if (!res) return;
    arena_release(&res->arena);
    memset(res, 0, sizeof(*res));
}

static int cmp_inst(const void *a, const void *b)
{
    return strcmp(((const struct registry_instance *)a)->id,
                  ((const struct registry_instance *)b)->id);
}

static bool passes(const struct reg_inst *i, enum registry_filter f)
{
    switch (f) {
    case REGISTRY_FILTER_PASSING:
        return i->v.status == REGISTRY_PASSING;
    case REGISTRY_FILTER_NOT_CRITICAL:
        return i->v.status != REGISTRY_CRITICAL;
    default:
        return true;
    }
}

int registry_instances(struct registry *reg, const char *service, enum registry_filter filter,
                       struct registry_result *res)
{
    const struct reg_svc *s = service ? svc_find(reg, service) : NULL;
    const struct sh_list *l;
    size_t n = 0;

    memset(res, 0, sizeof(*res));
    arena_init(&res->arena, RESULT_ARENA_BYTES, 0);
    res->index = s ? s->index : reg->index;
    if (!s) return 0;
    SH_LIST_FOREACH(l, &s->insts)
    n += passes(svc_inst(l), filter);
    if (!n) return 0;
    res->instances = arena_alloc(&res->arena, n * sizeof(*res->instances));
    if (!res->instances) goto oom;
    SH_LIST_FOREACH(l, &s->insts)
    {
        const struct reg_inst *i = svc_inst(l);
        if (!passes(i, filter)) continue;
        if (registry__copy(&res->arena, &i->v, &res->instances[res->count]) < 0) goto oom;
        res->count++;
    }
    qsort(res->instances, res->count, sizeof(*res->instances), cmp_inst);
    return 0;
oom:
    registry_result_release(res);
    return SH_ENOMEM;
}

int registry_instance_get(struct registry *reg, const char *id, struct registry_result *res)
{
    const struct reg_inst *i = id ? find_id(reg, id) : NULL;

    memset(res, 0, sizeof(*res));
    arena_init(&res->arena, RESULT_ARENA_BYTES, 0);
    res->index = reg->index;
    if (!i) return SH_ENOENT;
    res->index = i->svc->index;
    res->instances = arena_alloc(&res->arena, sizeof(*res->instances));
    if (!res->instances || registry__copy(&res->arena, &i->v, res->instances) < 0) {
        registry_result_release(res);
        return SH_ENOMEM;
    }
    res->count = 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int registry_services(struct registry *reg, struct registry_result *res)
{
    size_t n = 0;

    memset(res, 0, sizeof(*res));
    arena_init(&res->arena, RESULT_ARENA_BYTES, 0);
    res->index = reg->index;
    for (size_t k = 0; k < reg->svc_count; k++)
        n += reg->svcs[k]->count > 0;
    if (!n) return 0;
    res->services = arena_alloc(&res->arena, n * sizeof(*res->services));
    if (!res->services) goto oom;
    for (size_t k = 0; k < reg->svc_count; k++) {
        const struct reg_svc *s = reg->svcs[k];
        const struct sh_list *l;
        struct registry_service_info *out = &res->services[res->service_count];
        const char **tags;
        size_t ntags = 0, uniq = 0;

        if (!s->count) continue;
        memset(out, 0, sizeof(*out));
        out->name = arena_strndup(&res->arena, s->name, strlen(s->name));
        if (!out->name) goto oom;
        out->index = s->index;
        out->instance_count = s->count;
        SH_LIST_FOREACH(l, &s->insts)
        {
            ntags += svc_inst(l)->v.tag_count;
            out->passing_count += svc_inst(l)->v.status == REGISTRY_PASSING;
        }
        res->service_count++;
        if (!ntags) continue;
        tags = arena_alloc(&res->arena, ntags * sizeof(*tags));
        if (!tags) goto oom;
        ntags = 0;
        SH_LIST_FOREACH(l, &s->insts)
        {
            const struct reg_inst *i = svc_inst(l);
            for (size_t t = 0; t < i->v.tag_count; t++)
                tags[ntags++] = i->v.tags[t];
        }
        qsort(tags, ntags, sizeof(*tags), cmp_str);
        for (size_t t = 0; t < ntags; t++) {
            if (uniq && strcmp(tags[uniq - 1], tags[t]) == 0) continue;
            tags[uniq++] = tags[t];
        }
        for (size_t t = 0; t < uniq; t++) {
            tags[t] = arena_strndup(&res->arena, tags[t], strlen(tags[t]));
            if (!tags[t]) goto oom;
        }
        out->tags = tags;
        out->tag_count = uniq;
    }
    return 0;
oom:
    registry_result_release(res);
    return SH_ENOMEM;
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------------------------ */
/* Loads one stored instance; a value that does not decode is logged and skipped. */
static int load_one(struct registry *reg, const struct store_kv *kv)
{
    struct arena tmp;
    struct registry_instance v;
    struct reg_inst *inst = NULL;
    struct reg_svc *svc = NULL;
    int rc;

    arena_init(&tmp, INSTANCE_ARENA_BYTES, 0);
    rc = registry__decode(kv->value, &tmp, &v);
    if (rc == SH_ECORRUPT || (rc == 0 && find_id(reg, v.id))) {
        SH_LOG(SH_WARN, COMP, "skipping a stored instance that does not decode",
               LF_SLICE("key", kv->key), LF_ERR("err", rc ? rc : SH_EEXIST));
        arena_release(&tmp);
        return 0;
    }
    if (rc == 0) rc = inst_new(reg, &v, &inst);
    arena_release(&tmp);
    if (rc == 0) rc = registry__svc_get(reg, inst->v.service, &svc);
    if (rc == 0) rc = ids_reserve(reg);
    if (rc < 0) {
        inst_free(inst);
        return rc;
    }
    ids_insert(reg, inst);
    svc_link(svc, inst);
    /* Restart rules (registry.h): the clocks start again at open; check_arm gives TTL
     * instances one full TTL. */
    if (inst->v.status == REGISTRY_CRITICAL) inst->critical_since_ms = uv_now(reg->loop);
    return 0;
}

int registry_new(const struct registry_config *cfg, uv_loop_t *loop, struct store *st,
                 struct http_client *client, struct registry **out)
{
    struct registry *reg;
    struct store_result res = {0};
    const char *prefix = cfg && cfg->key_prefix ? cfg->key_prefix : "registry/";
    struct buf p = BUF_INIT(STORE_MAX_KEY_BYTES);
    int rc;

    *out = NULL;
    if (!loop || !st) return SH_EINVAL;
    reg = sh_calloc(1, sizeof(*reg));
    if (!reg) return SH_ENOMEM;
    reg->loop = loop;
    rc = registry__watch_init(reg); /* first: registry_free needs its lists */
    if (rc < 0) goto fail;
    reg->st = st;
    reg->client = client;
    reg->min_interval_ms = cfg && cfg->min_interval_ms ? cfg->min_interval_ms : 1000;
    reg->min_deregister_after_ms =
        cfg && cfg->min_deregister_after_ms ? cfg->min_deregister_after_ms : 60000;
    reg->rng = uv_hrtime() | 1;
    buf_appends(&p, slice_from_cstr(prefix));
    rc = buf_appends(&p, SLICE("instances/"));
    if (rc < 0) {
        buf_release(&p);
        goto fail;
    }
    reg->prefix = buf_detach(&p, NULL);
    rc = store_range(st, STORE_PREFIX(slice_from_cstr(reg->prefix)), 0, &res);
    if (rc < 0) goto fail;
    reg->index = res.revision + 1;
    for (size_t i = 0; i < res.count && rc == 0; i++)
        rc = load_one(reg, &res.kvs[i]);
    store_result_release(&res);
    if (rc < 0) goto fail;
    for (size_t k = 0; k < reg->svc_count; k++) {
        struct sh_list *l;
        reg->svcs[k]->index = reg->index;
        SH_LIST_FOREACH(l, &reg->svcs[k]->insts)
        registry__check_arm(svc_inst(l), true);
    }
    *out = reg;
    return 0;
fail:
    registry_free(reg);
    return rc;
}

void registry_free(struct registry *reg)
{
    if (!reg) return;
    registry__watch_shutdown(reg); /* ends waits and subscriptions while instances exist */
    for (size_t b = 0; b < reg->id_buckets; b++) {
        struct reg_inst *i, *next;
        for (i = reg->ids[b]; i; i = next) {
            next = i->id_next;
            inst_free(i);
        }
    }
    for (size_t k = 0; k < reg->svc_count; k++) {
        sh_free(reg->svcs[k]->name);
        sh_free(reg->svcs[k]);
    }
    sh_free(reg->svcs);
    sh_free(reg->ids);
    sh_free(reg->prefix);
    sh_free(reg);
}
