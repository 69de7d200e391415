/* SPDX-License-Identifier: MIT */
/* manifest_schema.c: the `shoal up` manifest (shoal.yaml) read from a document tree into a
 * struct manifest, every error reported as "file:line:col: path: problem". The gateway's and
 * the mesh's documents derived from it are manifest_docs.c's, `shoal check` is
 * manifest_check.c's. docs/manifest.md is the user's reference for these keys; keep the two in
 * step. The security section is manifest_security.c's. Keeps no state; any thread. */
#include "supervisor/supervisor.h"
#include "supervisor/supervisor_int.h"

#include "config/config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void *sup__alloc0(struct rd *r, size_t n)
{
    void *p = arena_alloc(&r->m->arena, n ? n : 1);

    if (p) memset(p, 0, n ? n : 1);
    return p;
}

int sup__get_str(struct rd *r, const struct sh_node *n, const char *path, const char **out)
{
    const char *s;

    SH_TRY(sh_node_str(n, path, &s, r->d));
    *out = arena_strndup(&r->m->arena, s, strlen(s));
    return *out ? 0 : SH_ENOMEM;
}

int sup__get_ms(struct rd *r, const struct sh_node *n, const char *path, uint32_t *out)
{
    uint64_t v;

    SH_TRY(sh_node_duration_ms(n, path, &v, r->d));
    if (v > UINT32_MAX) return fail_at(r, n, "%s: duration too long (at most about 49 days)", path);
    *out = (uint32_t)v;
    return 0;
}

static int get_u32(struct rd *r, const struct sh_node *n, const char *path, uint64_t min,
                   uint64_t max, uint32_t *out)
{
    uint64_t v;
    int rc = sh_node_u64(n, path, min, max, &v, r->d);

    /* one message for every failure: "expected a number from 0 to 1000" */
    if (rc == SH_EPARSE || rc == SH_ETOOBIG)
        return fail_at(r, n, "%s: expected a number from %llu to %llu", path,
                       (unsigned long long)min, (unsigned long long)max);
    SH_TRY(rc);
    *out = (uint32_t)v;
    return 0;
}

/* RFC 1123 label, lowercase: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes. */
static bool dns_label(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    return true;
}

static int get_label(struct rd *r, const struct sh_node *n, const char *path, const char **out)
{
    SH_TRY(sup__get_str(r, n, path, out));
    if (!dns_label(*out))
        return fail_at(r, n,
                       "%s: '%s' is not a valid name (a DNS label: 1 to 63 of a-z, 0-9 and "
                       "'-', not starting or ending with '-')",
                       path, *out);
    return 0;
}

/* An address to listen on, as sh_listen_parse reads it ("127.0.0.1:8080", "[::]:8080",
 * ":8080"...); port 0 (any free port) only where nothing needs to know the port in advance. */
static int get_addr(struct rd *r, const struct sh_node *n, const char *path, bool is_any_port_ok,
                    const char **out)
{
    struct sockaddr_storage ss;
    struct sh_diag ad;

    SH_TRY(sup__get_str(r, n, path, out));
    if (sh_listen_parse(*out, &ss, &ad) < 0) return fail_at(r, n, "%s: %s", path, ad.what);
    if (!is_any_port_ok && sh_addr_port(&ss) == 0)
        return fail_at(r, n, "%s: '%s': port 0 is not allowed here (others connect to it)", path,
                       *out);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * command: a string split as a shell would for simple cases, or an argv list
 * ------------------------------------------------------------------------------------------ */

/* Checks the "$" references in an argv item: $NAME, ${NAME} and $$ only. */
static int check_refs(struct rd *r, const struct sh_node *n, const char *path, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p != '$') continue;
        p++;
        if (*p == '$') continue;
        bool brace = *p == '{';
        const char *q = p + brace;
        if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || *q == '_'))
            return fail_at(r, n,
                           "%s: '$' must start a variable ($NAME or ${NAME}); write $$ for a "
                           "'$'",
                           path);
        while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || *q == '_' ||
               (*q >= '0' && *q <= '9'))
            q++;
        if (brace && *q != '}') return fail_at(r, n, "%s: '${' without its closing '}'", path);
        p = brace ? q : q - 1;
    }
    return 0;
}

/* Splits <s> into words: blanks separate; '...' is literal; "..." keeps blanks and takes
 * \" \\ \$ \` as escapes; \c outside quotes is c. Writes the words NUL-separated into <out>
 * (strlen(s) + 1 bytes at least) and returns the word count, or a negative code on error. */
static int split_words(struct rd *r, const struct sh_node *n, const char *path, const char *s,
                       char *out, size_t *count)
{
    char *o = out;
    bool in_word = false;
    size_t words = 0;

    for (const char *p = s; *p; p++) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                *o++ = '\0';
                in_word = false;
            }
            continue;
        }
        bool starts = !in_word;
        if (starts) {
            in_word = true;
            words++;
        }
        if (c == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end) return fail_at(r, n, "%s: unterminated single quote", path);
            memcpy(o, p + 1, (size_t)(end - p - 1));
            o += end - p - 1;
            p = end;
        } else if (c == '"') {
            for (p++; *p != '"'; p++) {
                if (!*p) return fail_at(r, n, "%s: unterminated double quote", path);
                if (*p == '\\' && p[1] && strchr("\"\\$`", p[1])) p++;
                *o++ = *p;
            }
        } else if (c == '\\') {
            if (!p[1]) return fail_at(r, n, "%s: a '\\' at the end", path);
            *o++ = *++p;
        } else if ((strchr("|&;<>()`*?[]{}", c) && !(c == '{' && p > s && p[-1] == '$') &&
                    c != '}') ||
                   (starts && (c == '#' || c == '~'))) {
            return fail_at(r, n,
                           "%s: '%c' is shell syntax, which a command string does not run; "
                           "write a list such as [sh, -c, '...']",
                           path, c);
        } else {
            *o++ = c;
        }
    }
    if (in_word) *o++ = '\0';
    *count = words;
    return 0;
}

static int read_command(struct rd *r, const struct sh_node *n, const char *base,
                        struct manifest_service *svc)
{
    const char **argv;
    char p[160];

    snprintf(p, sizeof(p), "%s", base);
    if (n->kind == SH_NODE_SEQ) {
        if (n->count == 0) return fail_at(r, n, "%s: expected at least the program", p);
        argv = sup__alloc0(r, (n->count + 1) * sizeof(*argv));
        if (!argv) return SH_ENOMEM;
        for (size_t i = 0; i < n->count; i++) {
            SH_TRY(sup__get_str(r, n->items[i], pathf(r, "%s[%zu]", p, i), &argv[i]));
            SH_TRY(check_refs(r, n->items[i], r->path, argv[i]));
        }
        svc->argc = n->count;
    } else {
        const char *s;
        char *words;
        size_t count = 0, len;
        if (n->kind != SH_NODE_SCALAR)
            return fail_at(r, n, "%s: expected a string or a list of arguments, found %s", p,
                           sh_node_kind_name(n->kind));
        SH_TRY(sh_node_str(n, p, &s, r->d));
        len = strlen(s);
        words = arena_alloc(&r->m->arena, len + 1);
        if (!words) return SH_ENOMEM;
        SH_TRY(split_words(r, n, p, s, words, &count));
        if (count == 0) return fail_at(r, n, "%s: expected at least the program", p);
        argv = sup__alloc0(r, (count + 1) * sizeof(*argv));
        if (!argv) return SH_ENOMEM;
        for (size_t i = 0; i < count; i++) {
            argv[i] = words;
            SH_TRY(check_refs(r, n, p, words));
            words += strlen(words) + 1;
        }
        svc->argc = count;
    }
    svc->argv = argv;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Maps of strings: env and config
 * ------------------------------------------------------------------------------------------ */
static bool env_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return false;
    for (s++; *s; s++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return false;
    }
    return true;
}

static int read_kvs(struct rd *r, const struct sh_node *m, const char *base, bool is_env,
                    const struct manifest_kv **out, size_t *count)
{
    struct manifest_kv *kv;
    char p[160];

    snprintf(p, sizeof(p), "%s", base);
    SH_TRY(sh_node_expect(m, SH_NODE_MAP, p, r->d));
    kv = sup__alloc0(r, (m->count + 1) * sizeof(*kv));
    if (!kv) return SH_ENOMEM;
    for (size_t i = 0; i < m->count; i++) {
        const struct sh_node *v = m->values[i];
        SH_TRY(sup__get_str(r, m->items[i], p, &kv[i].name));
        pathf(r, "%s.%s", p, kv[i].name);
        if (is_env && !env_name(kv[i].name))
            return fail_at(r, m->items[i],
                           "%s: '%s' is not a variable name (letters, digits and '_', not "
                           "starting with a digit)",
                           p, kv[i].name);
        if (!is_env) {
            struct sh_diag kd;
            if (cfgkv_key_check(slice_from_cstr(kv[i].name), &kd) < 0)
                return fail_at(r, m->items[i], "%s: %s", p, kd.what);
        }
        if (v->kind == SH_NODE_NULL) {
            kv[i].value = "";
            continue;
        }
        if (v->kind != SH_NODE_SCALAR)
            return fail_at(r, v, "%s: expected a single value, found %s", r->path,
                           sh_node_kind_name(v->kind));
        SH_TRY(sup__get_str(r, v, r->path, &kv[i].value));
    }
    *out = kv;
    *count = m->count;
    return 0;
}

/* What ${NAME} in an env value may name when the manifest is read: shoal's variables
 * (supervisor.h, SUP_ENV_VARS) and those of shoal's own environment. The values do not matter
 * here; the process layer expands them at each start. */
static const char *env_known(void *data, struct slice name)
{
    const struct manifest_service *svc = data;
    static const char *const ours[] = {"SHOAL_DATA_DIR", "SHOAL_SERVICE", "SHOAL_INSTANCE",
                                       "SHOAL_MESH"};
    char cname[SUP_ENV_NAME_MAX + 1];

    if ((svc->port || svc->is_port_auto) &&
        (slice_eq(name, SLICE("PORT")) || slice_eq(name, SLICE("SHOAL_PORT"))))
        return "";
    for (size_t i = 0; i < SH_ARRAY_LEN(ours); i++) {
        if (slice_eq(name, slice_from_cstr(ours[i]))) return "";
    }
    if (name.len > SUP_ENV_NAME_MAX) return NULL;
    memcpy(cname, name.ptr, name.len);
    cname[name.len] = '\0';
    return getenv(cname) ? "" : NULL;
}

/* Env entry i of <svc> (its map <env>): the name and value within the limits, every reference
 * in the value known (an error names it, at the value's line and column). */
static int check_env_value(struct rd *r, const struct sh_node *env, size_t i, const char *p,
                           const struct manifest_service *svc)
{
    const struct manifest_kv *kv = &svc->env[i];
    const struct sh_node *v = env->values[i];
    struct buf scratch = BUF_INIT(0);
    struct sh_diag d = {{0}, {0}};
    size_t len = strlen(kv->value);
    int rc;

    if (strlen(kv->name) > SUP_ENV_NAME_MAX)
        return fail_at(r, env->items[i], "%s.env: a name of %zu characters (at most %u)", p,
                       strlen(kv->name), SUP_ENV_NAME_MAX);
    if (!strcmp(kv->name, "SHOAL_DATA_DIR"))
        return fail_at(r, env->items[i],
                       "%s.env.SHOAL_DATA_DIR: set by shoal (DATA_DIR/services/%s); remove it", p,
                       svc->name);
    if (len > SUP_ENV_VALUE_MAX)
        return fail_at(r, v, "%s.env.%s: a value of %zu bytes (at most %u)", p, kv->name, len,
                       SUP_ENV_VALUE_MAX);
    rc = sup_env_expand(slice_from_cstr(kv->value), env_known, (void *)svc, &scratch, &d);
    buf_release(&scratch);
    if (rc == SH_ENOENT && (!strcmp(d.what, "unknown variable 'PORT'") ||
                            !strcmp(d.what, "unknown variable 'SHOAL_PORT'")))
        return fail_at(r, v, "%s.env.%s: %s: the service has no port (port: auto)", p, kv->name,
                       d.what);
    if (rc == SH_ENOENT)
        return fail_at(r, v,
                       "%s.env.%s: %s (neither shoal's nor in its environment; $$ for a "
                       "'$')",
                       p, kv->name, d.what);
    if (rc == SH_EPARSE) return fail_at(r, v, "%s.env.%s: %s", p, kv->name, d.what);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * health, autoscale, resilience
 * ------------------------------------------------------------------------------------------ */
/* health.http: the path to GET (kept in the manifest's arena); ctx is the reader. */
static int read_health_http(const struct sh_node *v, const char *path, void *field, void *ctx,
                            struct sh_diag *d)
{
    struct rd *r = ctx;
    struct manifest_health *h = field;

    (void)d;
    h->kind = MANIFEST_HEALTH_HTTP;
    SH_TRY(sup__get_str(r, v, path, &h->http_path));
    if (h->http_path[0] != '/' || strpbrk(h->http_path, " \t\r\n"))
        return fail_at(r, v, "%s: expected a path starting with '/', like /health", path);
    return 0;
}

static int read_health_tcp(const struct sh_node *v, const char *path, void *field, void *ctx,
                           struct sh_diag *d)
{
    struct manifest_health *h = field;
    bool on;

    (void)ctx;
    SH_TRY(sh_node_bool(v, path, &on, d));
    if (!on) return sh_node_fail(d, v, path, "write tcp: true, or leave health out");
    h->kind = MANIFEST_HEALTH_TCP;
    return 0;
}

static int check_health(const struct sh_node *m, const char *path, void *obj, void *ctx,
                        struct sh_diag *d)
{
    struct manifest_health *h = obj;
    const struct sh_node *timeout = sh_node_get(m, "timeout");

    (void)ctx;
    if (!sh_node_get(m, "http") == !sh_node_get(m, "tcp"))
        return sh_node_fail(d, m, path, "give exactly one of http: /path and tcp: true");
    if (!timeout && h->timeout_ms > h->interval_ms)
        h->timeout_ms = h->interval_ms; /* the default never exceeds a short interval */
    if (h->interval_ms < 100)
        return sh_node_fail(d, sh_node_get(m, "interval"), NULL, "%s.interval: at least 100ms",
                            path);
    if (h->timeout_ms == 0 || h->timeout_ms > h->interval_ms)
        return sh_node_fail(d, timeout ? timeout : m, NULL,
                            "%s.timeout: expected above 0 and at most the interval", path);
    return 0;
}

static const struct sh_field health_fields[] = {
    {"http", SH_FIELD_FN, 0, 0, 0, NULL, read_health_http},
    {"tcp", SH_FIELD_FN, 0, 0, 0, NULL, read_health_tcp},
    {"interval", SH_FIELD_MS, offsetof(struct manifest_health, interval_ms), 0, 0, NULL, NULL},
    {"timeout", SH_FIELD_MS, offsetof(struct manifest_health, timeout_ms), 0, 0, NULL, NULL},
    {"healthy_threshold", SH_FIELD_U32, offsetof(struct manifest_health, healthy_threshold), 1, 100,
     NULL, NULL},
    {"unhealthy_threshold", SH_FIELD_U32, offsetof(struct manifest_health, unhealthy_threshold), 1,
     100, NULL, NULL},
    {"start_period", SH_FIELD_MS, offsetof(struct manifest_health, start_period_ms), 0, 0, NULL,
     NULL},
};
SH_SCHEMA(health_schema, health_fields, check_health);

static int read_health(struct rd *r, const struct sh_node *m, const char *base,
                       struct manifest_health *h)
{
    return sh_schema_read(&health_schema, m, base, h, r, r->d);
}

/* autoscale.target: exactly one of in_flight, rps and p99, into the whole manifest_autoscale */
static int read_scale_target(const struct sh_node *t, const char *path, void *field, void *ctx,
                             struct sh_diag *d)
{
    static const char *const tkeys[] = {"in_flight", "rps", "p99", NULL};
    struct manifest_autoscale *a = field;
    struct rd *r = ctx;
    const struct sh_node *v;
    char p[192];
    uint32_t n = 0;

    SH_TRY(sh_node_check_keys(t, tkeys, path, d));
    if (t->count != 1) return fail_at(r, t, "%s: give exactly one of in_flight, rps and p99", path);
    if ((v = sh_node_get(t, "in_flight"))) {
        a->target_kind = MANIFEST_TARGET_IN_FLIGHT;
        snprintf(p, sizeof(p), "%s.in_flight", path);
        SH_TRY(get_u32(r, v, p, 1, 100000, &n));
        a->target = n;
    } else if ((v = sh_node_get(t, "rps"))) {
        a->target_kind = MANIFEST_TARGET_RPS;
        snprintf(p, sizeof(p), "%s.rps", path);
        SH_TRY(get_u32(r, v, p, 1, 10000000, &n));
        a->target = n;
    } else {
        v = sh_node_get(t, "p99");
        a->target_kind = MANIFEST_TARGET_P99_MS;
        snprintf(p, sizeof(p), "%s.p99", path);
        SH_TRY(sup__get_ms(r, v, p, &n));
        if (n == 0) return fail_at(r, v, "%s: expected above 0", p);
        a->target = n;
    }
    return 0;
}

static int check_autoscale(const struct sh_node *m, const char *path, void *obj, void *ctx,
                           struct sh_diag *d)
{
    static const char *const required[] = {"min", "max", "target"};
    const struct manifest_autoscale *a = obj;
    const struct sh_node *v;

    (void)ctx;
    for (size_t i = 0; i < SH_ARRAY_LEN(required); i++)
        SH_TRY(sh_node_require(m, required[i], path, &v, d));
    if (a->min > a->max)
        return sh_node_fail(d, sh_node_get(m, "min"), NULL, "%s.min: %u is above max (%u)", path,
                            a->min, a->max);
    return 0;
}

static const struct sh_field autoscale_fields[] = {
    {"min", SH_FIELD_U32, offsetof(struct manifest_autoscale, min), 0, MANIFEST_MAX_REPLICAS, NULL,
     NULL},
    {"max", SH_FIELD_U32, offsetof(struct manifest_autoscale, max), 1, MANIFEST_MAX_REPLICAS, NULL,
     NULL},
    {"target", SH_FIELD_FN, 0, 0, 0, NULL, read_scale_target},
    {"up_cooldown", SH_FIELD_MS, offsetof(struct manifest_autoscale, up_cooldown_ms), 0, 0, NULL,
     NULL},
    {"down_cooldown", SH_FIELD_MS, offsetof(struct manifest_autoscale, down_cooldown_ms), 0, 0,
     NULL, NULL},
};
SH_SCHEMA(autoscale_schema, autoscale_fields, check_autoscale);

static int read_autoscale(struct rd *r, const struct sh_node *m, const char *base,
                          struct manifest_autoscale *a)
{
    a->is_set = true;
    a->up_cooldown_ms = 30000;
    a->down_cooldown_ms = 300000;
    return sh_schema_read(&autoscale_schema, m, base, a, r, r->d);
}

/* A percent in (0, 100): "99.9%" or 99.9. */
static int get_percent(struct rd *r, const struct sh_node *n, const char *path, double *out)
{
    char num[32], *end = NULL;
    size_t len;

    if (n->kind != SH_NODE_SCALAR || (len = strlen(n->text)) == 0 || len >= sizeof(num))
        return fail_at(r, n, "%s: expected a percent such as 99.9%%", path);
    memcpy(num, n->text, len + 1);
    if (num[len - 1] == '%') num[--len] = '\0';
    *out = len ? strtod(num, &end) : 0;
    if (!end || *end || !(*out > 0 && *out < 100))
        return fail_at(r, n, "%s: expected a percent above 0 and below 100, such as 99.9%%", path);
    return 0;
}

static int read_slo_availability(const struct sh_node *n, const char *path, void *field, void *ctx,
                                 struct sh_diag *d)
{
    (void)d;
    return get_percent(ctx, n, path, &((struct manifest_slo *)field)->availability);
}

/* latency: {pNN: 300ms} (NN in 50, 75, 90, 95, 99, 99.9), or {threshold: 300ms, objective: 99%} */
static int read_slo_latency(const struct sh_node *m, const char *path, void *field, void *ctx,
                            struct sh_diag *d)
{
    static const struct {
        const char *key;
        double percent;
    } ps[] = {{"p50", 50}, {"p75", 75}, {"p90", 90}, {"p95", 95}, {"p99", 99}, {"p999", 99.9}};
    static const char *const keys[] = {"p50",  "p75",       "p90",       "p95", "p99",
                                       "p999", "threshold", "objective", NULL};
    struct manifest_slo *slo = field;
    struct rd *r = ctx;
    const struct sh_node *v;
    char p[192];

    SH_TRY(sh_node_expect(m, SH_NODE_MAP, path, d));
    SH_TRY(sh_node_check_keys(m, keys, path, d));
    bool has_pair = sh_node_get(m, "threshold") && sh_node_get(m, "objective");
    bool has_half = sh_node_get(m, "threshold") || sh_node_get(m, "objective");
    if (has_pair ? m->count != 2 : (has_half || m->count != 1))
        return fail_at(r, m, "%s: give one of p50..p999 (p99: 300ms), or threshold and objective",
                       path);
    for (size_t i = 0; i < SH_ARRAY_LEN(ps); i++) {
        if (!(v = sh_node_get(m, ps[i].key))) continue;
        snprintf(p, sizeof(p), "%s.%s", path, ps[i].key);
        SH_TRY(sup__get_ms(r, v, p, &slo->latency_ms));
        slo->latency_percent = ps[i].percent;
    }
    if ((v = sh_node_get(m, "threshold"))) {
        snprintf(p, sizeof(p), "%s.threshold", path);
        SH_TRY(sup__get_ms(r, v, p, &slo->latency_ms));
        snprintf(p, sizeof(p), "%s.objective", path);
        SH_TRY(get_percent(r, sh_node_get(m, "objective"), p, &slo->latency_percent));
    }
    if (slo->latency_ms == 0) return fail_at(r, m, "%s: the threshold must be above 0", path);
    return 0;
}

/* window: a duration, or whole days ("30d"); 1 minute to 90 days. */
static int read_slo_window(const struct sh_node *n, const char *path, void *field, void *ctx,
                           struct sh_diag *d)
{
    struct manifest_slo *slo = field;
    struct rd *r = ctx;
    uint64_t v = 0;
    size_t len = n->kind == SH_NODE_SCALAR ? strlen(n->text) : 0;

    (void)d;
    if (len > 1 && n->text[len - 1] == 'd' &&
        slice_to_u64((struct slice){.ptr = n->text, .len = len - 1}, &v) == 0 && v <= 36500) {
        v *= 86400000u;
    } else {
        SH_TRY(sh_node_duration_ms(n, path, &v, r->d));
    }
    if (v < 60000 || v > 90 * 86400000ull)
        return fail_at(r, n, "%s: expected from 1m to 90d, such as 30d", path);
    slo->window_s = (uint32_t)(v / 1000);
    return 0;
}

static int check_slo(const struct sh_node *m, const char *path, void *obj, void *ctx,
                     struct sh_diag *d)
{
    const struct manifest_slo *slo = obj;

    (void)ctx;
    if (slo->availability <= 0 && slo->latency_ms == 0)
        return sh_node_fail(d, m, NULL, "%s: give availability, latency or both", path);
    return 0;
}

static const struct sh_field slo_fields[] = {
    {"availability", SH_FIELD_FN, 0, 0, 0, NULL, read_slo_availability},
    {"latency", SH_FIELD_FN, 0, 0, 0, NULL, read_slo_latency},
    {"window", SH_FIELD_FN, 0, 0, 0, NULL, read_slo_window},
};
SH_SCHEMA(slo_schema, slo_fields, check_slo);

static int read_slo(struct rd *r, const struct sh_node *m, const char *base,
                    struct manifest_slo *slo)
{
    slo->is_set = true;
    slo->window_s = 30 * 86400;
    return sh_schema_read(&slo_schema, m, base, slo, r, r->d);
}

/* The keys of the gateway's cluster that are policies; their insides are the proxy's to read
 * (manifest_gateway_doc), so only their shape is checked here. */
static int read_resilience(struct rd *r, const struct sh_node *m, const char *base)
{
    static const char *const keys[] = {"timeouts", "retry",   "breaker", "outlier",
                                       "lb",       "hash_on", NULL};
    char p[160];

    snprintf(p, sizeof(p), "%s", base);
    SH_TRY(sh_node_check_keys(m, keys, p, r->d));
    for (size_t i = 0; i < m->count; i++) {
        const char *k = m->items[i]->text;
        bool scalar = !strcmp(k, "lb") || !strcmp(k, "hash_on");
        SH_TRY(sh_node_expect(m->values[i], scalar ? SH_NODE_SCALAR : SH_NODE_MAP,
                              pathf(r, "%s.%s", p, k), r->d));
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Services
 * ------------------------------------------------------------------------------------------ */
static const struct {
    const char *name;
    enum manifest_restart restart;
} restart_names[] = {
    {"always", MANIFEST_RESTART_ALWAYS},
    {"on-failure", MANIFEST_RESTART_ON_FAILURE},
    {"never", MANIFEST_RESTART_NEVER},
};

static int read_service(struct rd *r, const struct sh_node *key, const struct sh_node *m,
                        struct manifest_service *svc)
{
    static const char *const keys[] = {"command",    "env",     "working_dir", "replicas",
                                       "port",       "health",  "depends_on",  "restart",
                                       "stop_grace", "version", "autoscale",   "resilience",
                                       "config",     "slo",     NULL};
    const struct sh_node *v;
    char p[96];

    SH_TRY(get_label(r, key, "services", &svc->name));
    snprintf(p, sizeof(p), "services.%s", svc->name);
    svc->node = m;
    svc->replicas = 1;
    svc->stop_grace_ms = 10000;
    svc->health = (struct manifest_health){
        .interval_ms = 5000, .timeout_ms = 2000, .healthy_threshold = 1, .unhealthy_threshold = 3};
    SH_TRY(sh_node_expect(m, SH_NODE_MAP, p, r->d));
    SH_TRY(sh_node_check_keys(m, keys, p, r->d));
    SH_TRY(sh_node_require(m, "command", p, &v, r->d));
    SH_TRY(read_command(r, v, pathf(r, "%s.command", p), svc));
    if ((v = sh_node_get(m, "env")))
        SH_TRY(read_kvs(r, v, pathf(r, "%s.env", p), true, &svc->env, &svc->env_count));
    if ((v = sh_node_get(m, "working_dir")))
        SH_TRY(sup__get_str(r, v, pathf(r, "%s.working_dir", p), &svc->working_dir));
    if ((v = sh_node_get(m, "port"))) {
        if (v->kind == SH_NODE_SCALAR && !v->is_quoted && !strcmp(v->text, "auto")) {
            svc->is_port_auto = true;
        } else {
            uint64_t port;
            if (v->kind != SH_NODE_SCALAR || v->is_quoted ||
                slice_to_u64(slice_from_cstr(v->text), &port) < 0 || port < 1 || port > 65535)
                return fail_at(r, v, "%s.port: expected auto or a number from 1 to 65535", p);
            svc->port = (uint16_t)port;
        }
    }
    if ((v = sh_node_get(m, "slo"))) SH_TRY(read_slo(r, v, pathf(r, "%s.slo", p), &svc->slo));
    if ((v = sh_node_get(m, "autoscale"))) {
        SH_TRY(read_autoscale(r, v, pathf(r, "%s.autoscale", p), &svc->autoscale));
        svc->replicas = SH_MAX(svc->autoscale.min, 1);
    }
    if ((v = sh_node_get(m, "replicas"))) {
        SH_TRY(get_u32(r, v, pathf(r, "%s.replicas", p), 0, MANIFEST_MAX_REPLICAS, &svc->replicas));
        if (svc->autoscale.is_set &&
            (svc->replicas < svc->autoscale.min || svc->replicas > svc->autoscale.max))
            return fail_at(r, v, "%s.replicas: %u is outside autoscale's min..max (%u..%u)", p,
                           svc->replicas, svc->autoscale.min, svc->autoscale.max);
    }
    if (svc->port && (svc->replicas > 1 || svc->autoscale.max > 1))
        return fail_at(r, sh_node_get(m, "port"),
                       "%s.port: a fixed port allows one instance; write port: auto", p);
    for (size_t i = 0; i < svc->env_count; i++) {
        if ((svc->port || svc->is_port_auto) &&
            (!strcmp(svc->env[i].name, "PORT") || !strcmp(svc->env[i].name, "SHOAL_PORT")))
            return fail_at(r, sh_node_get(m, "env")->items[i],
                           "%s.env.%s: set by shoal from port; remove it", p, svc->env[i].name);
        SH_TRY(check_env_value(r, sh_node_get(m, "env"), i, p, svc));
    }
    if ((v = sh_node_get(m, "health"))) {
        SH_TRY(read_health(r, v, pathf(r, "%s.health", p), &svc->health));
        if (!svc->port && !svc->is_port_auto)
            return fail_at(r, v, "%s.health: needs a port (port: auto)", p);
    }
    if ((v = sh_node_get(m, "depends_on"))) {
        const char **names;
        SH_TRY(sh_node_expect(v, SH_NODE_SEQ, pathf(r, "%s.depends_on", p), r->d));
        names = sup__alloc0(r, (v->count + 1) * sizeof(*names));
        if (!names) return SH_ENOMEM;
        for (size_t i = 0; i < v->count; i++)
            SH_TRY(sup__get_str(r, v->items[i], pathf(r, "%s.depends_on[%zu]", p, i), &names[i]));
        svc->depends_on = names;
        svc->depends_count = v->count;
    }
    if ((v = sh_node_get(m, "restart"))) {
        const char *s;
        bool known = false;
        SH_TRY(sh_node_str(v, pathf(r, "%s.restart", p), &s, r->d));
        for (size_t k = 0; k < SH_ARRAY_LEN(restart_names); k++) {
            if (!strcmp(s, restart_names[k].name)) {
                svc->restart = restart_names[k].restart;
                known = true;
            }
        }
        if (!known)
            return fail_at(r, v, "%s.restart: '%s' (expected always, on-failure or never)", p, s);
    }
    if ((v = sh_node_get(m, "stop_grace")))
        SH_TRY(sup__get_ms(r, v, pathf(r, "%s.stop_grace", p), &svc->stop_grace_ms));
    if ((v = sh_node_get(m, "version")))
        SH_TRY(sup__get_str(r, v, pathf(r, "%s.version", p), &svc->version));
    if ((v = sh_node_get(m, "resilience"))) {
        SH_TRY(read_resilience(r, v, pathf(r, "%s.resilience", p)));
        svc->resilience = v;
    }
    if ((v = sh_node_get(m, "config")))
        SH_TRY(read_kvs(r, v, pathf(r, "%s.config", p), false, &svc->config, &svc->config_count));
    return 0;
}

/* Resolves depends_on to indexes, rejects unknown names and cycles, and orders the start. */
static int resolve_depends(struct rd *r)
{
    struct manifest *m = r->m;
    size_t n = m->service_count, done = 0;
    uint8_t *state = sup__alloc0(r, n); /* 0 unvisited, 1 on the stack, 2 finished */
    uint32_t *stack = sup__alloc0(r, n * sizeof(*stack)), *next = sup__alloc0(r, n * sizeof(*next));

    m->start_order = sup__alloc0(r, n * sizeof(*m->start_order));
    if (!state || !stack || !next || !m->start_order) return SH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct manifest_service *svc = &m->services[i];
        uint32_t *idx = sup__alloc0(r, (svc->depends_count + 1) * sizeof(*idx));
        const struct sh_node *dn = sh_node_get(svc->node, "depends_on");
        if (!idx) return SH_ENOMEM;
        for (size_t k = 0; k < svc->depends_count; k++) {
            int j = manifest_service_index(m, svc->depends_on[k]);
            if (j < 0)
                return fail_at(r, dn->items[k],
                               "services.%s.depends_on[%zu]: no service named '%s'", svc->name, k,
                               svc->depends_on[k]);
            idx[k] = (uint32_t)j;
        }
        svc->depends_idx = idx;
    }
    /* depth-first: a service finishes after everything it depends on (Tarjan's ordering) */
    for (size_t root = 0; root < n; root++) {
        size_t top = 0;
        if (state[root]) continue;
        stack[top++] = (uint32_t)root;
        state[root] = 1;
        next[root] = 0;
        while (top) {
            uint32_t u = stack[top - 1];
            struct manifest_service *su = &m->services[u];
            if (next[u] == su->depends_count) {
                state[u] = 2;
                m->start_order[done++] = u;
                top--;
                continue;
            }
            uint32_t k = next[u]++, v = su->depends_idx[k];
            if (state[v] == 2) continue;
            if (state[v] == 1) {
                char cyc[160];
                size_t at = 0, len = 0;
                while (stack[at] != v)
                    at++;
                for (size_t s = at; s < top; s++)
                    len += (size_t)snprintf(cyc + len, len < sizeof(cyc) ? sizeof(cyc) - len : 0,
                                            "%s -> ", m->services[stack[s]].name);
                if (len < sizeof(cyc))
                    snprintf(cyc + len, sizeof(cyc) - len, "%s", m->services[v].name);
                return fail_at(r, sh_node_get(su->node, "depends_on")->items[k],
                               "services.%s.depends_on: a dependency cycle: %s", su->name, cyc);
            }
            state[v] = 1;
            next[v] = 0;
            stack[top++] = v;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The gateway section
 * ------------------------------------------------------------------------------------------ */
static int service_ref(struct rd *r, const struct sh_node *v, const char *path)
{
    const char *name;
    int i;

    SH_TRY(sh_node_str(v, path, &name, r->d));
    i = manifest_service_index(r->m, name);
    if (i < 0) return fail_at(r, v, "%s: no service named '%s'", path, name);
    if (!r->m->services[i].port && !r->m->services[i].is_port_auto)
        return fail_at(r, v, "%s: service '%s' has no port (give it port: auto)", path, name);
    return 0;
}

static int read_gateway(struct rd *r, const struct sh_node *g)
{
    static const char *const keys[] = {"listen", "admin",   "workers", "access_log", "limits",
                                       "routes", "tracing", "tls",     NULL};
    static const char *const rkeys[] = {"name",
                                        "match",
                                        "service",
                                        "split",
                                        "respond",
                                        "redirect",
                                        "rewrite_prefix",
                                        "request_headers",
                                        "response_headers",
                                        "timeouts",
                                        "retry",
                                        "rate_limit",
                                        "fallback",
                                        "jwt",
                                        NULL};
    struct manifest_gateway *gw = &r->m->gateway;
    const struct sh_node *v, *routes;

    SH_TRY(sh_node_check_keys(g, keys, "gateway", r->d));
    gw->is_set = true;
    gw->node = g;
    if ((v = sh_node_get(g, "listen"))) SH_TRY(get_addr(r, v, "gateway.listen", true, &gw->listen));
    if ((v = sh_node_get(g, "admin")) && v->kind != SH_NODE_NULL)
        SH_TRY(get_addr(r, v, "gateway.admin", true, &gw->admin));
    SH_TRY(sh_node_require(g, "routes", "gateway", &routes, r->d));
    SH_TRY(sh_node_expect(routes, SH_NODE_SEQ, "gateway.routes", r->d));
    for (size_t i = 0; i < routes->count; i++) {
        const struct sh_node *rt = routes->items[i];
        char p[64];
        snprintf(p, sizeof(p), "gateway.routes[%zu]", i);
        if (rt->kind == SH_NODE_MAP && sh_node_get(rt, "cluster"))
            return fail_at(r, sh_node_get(rt, "cluster"),
                           "%s.cluster: routes name services here (write service: NAME)", p);
        SH_TRY(sh_node_check_keys(rt, rkeys, p, r->d));
        if ((v = sh_node_get(rt, "service"))) SH_TRY(service_ref(r, v, pathf(r, "%s.service", p)));
        if ((v = sh_node_get(rt, "split"))) {
            SH_TRY(sh_node_expect(v, SH_NODE_SEQ, pathf(r, "%s.split", p), r->d));
            for (size_t k = 0; k < v->count; k++) {
                static const char *const sk[] = {"service", "weight", NULL};
                const struct sh_node *s;
                char sp[96];
                snprintf(sp, sizeof(sp), "%s.split[%zu]", p, k);
                SH_TRY(sh_node_check_keys(v->items[k], sk, sp, r->d));
                SH_TRY(sh_node_require(v->items[k], "service", sp, &s, r->d));
                SH_TRY(service_ref(r, s, pathf(r, "%s.service", sp)));
            }
        }
    }
    gw->routes = routes;
    gw->route_count = routes->count;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The top level
 * ------------------------------------------------------------------------------------------ */
/* remote_services: {NAME: {address, identity, ca}} (after services: a name may not be both). */
static int read_remotes(struct rd *r, const struct sh_node *v)
{
    static const char *const keys[] = {"address", "identity", "ca", NULL};
    struct manifest *m = r->m;

    SH_TRY(sh_node_expect(v, SH_NODE_MAP, "remote_services", r->d));
    if (v->count > MANIFEST_MAX_REMOTES) {
        fail_at(r, v, "remote_services: at most %d", MANIFEST_MAX_REMOTES);
        return SH_ETOOBIG;
    }
    m->remotes = sup__alloc0(r, (v->count + 1) * sizeof(*m->remotes));
    if (!m->remotes) return SH_ENOMEM;
    for (size_t i = 0; i < v->count; i++) {
        struct manifest_remote *rs = &m->remotes[i];
        const struct sh_node *item = v->values[i], *x;
        char p[128], fp[160];
        const char *id;
        size_t nl;
        SH_TRY(sup__get_str(r, v->items[i], "remote_services", &rs->name));
        snprintf(p, sizeof(p), "remote_services.%.63s", rs->name);
        nl = strlen(rs->name);
        if (nl == 0 || nl > 63 || strspn(rs->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != nl ||
            rs->name[0] == '-' || rs->name[nl - 1] == '-')
            return fail_at(r, v->items[i],
                           "%s: '%s' is not a service name (a DNS label: 1 to 63 of a-z, 0-9 "
                           "and '-')",
                           p, rs->name);
        if (manifest_service_index(m, rs->name) >= 0)
            return fail_at(r, v->items[i], "%s: '%s' is also a service of this manifest", p,
                           rs->name);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(m->remotes[k].name, rs->name))
                return fail_at(r, v->items[i], "%s: given twice", p);
        rs->node = item;
        SH_TRY(sh_node_expect(item, SH_NODE_MAP, p, r->d));
        SH_TRY(sh_node_check_keys(item, keys, p, r->d));
        SH_TRY(sh_node_require(item, "address", p, &x, r->d));
        SH_TRY(get_addr(r, x, sh_fmt(fp, sizeof(fp), "%s.address", p), false, &rs->address));
        SH_TRY(sh_node_require(item, "identity", p, &x, r->d));
        SH_TRY(sup__get_str(r, x, sh_fmt(fp, sizeof(fp), "%s.identity", p), &id));
        {
            const char *svc = strncmp(id, "spiffe://", 9) == 0 ? strstr(id + 9, "/service/") : NULL;
            if (!svc || svc == id + 9 || strlen(id) > 255 || !svc[9] || strchr(svc + 9, '/'))
                return fail_at(r, x, "%s.identity: '%s' is not spiffe://TD/service/NAME", p, id);
        }
        rs->identity = id;
        SH_TRY(sh_node_require(item, "ca", p, &x, r->d));
        SH_TRY(sup__get_str(r, x, sh_fmt(fp, sizeof(fp), "%s.ca", p), &rs->ca));
        if (!rs->ca[0]) return fail_at(r, x, "%s.ca: give the trust bundle's file", p);
        m->remote_count = i + 1;
    }
    return 0;
}

static int read_top(struct rd *r, const struct sh_node *root)
{
    static const char *const keys[] = {"name",     "services", "gateway", "control_plane",   "mesh",
                                       "data_dir", "security", "observe", "remote_services", NULL};
    struct manifest *m = r->m;
    const struct sh_node *v, *svcs;

    SH_TRY(sh_node_expect(root, SH_NODE_MAP, "the file", r->d));
    SH_TRY(sh_node_check_keys(root, keys, "top level", r->d));
    if ((v = sh_node_get(root, "name"))) SH_TRY(get_label(r, v, "name", &m->name));
    if ((v = sh_node_get(root, "data_dir"))) SH_TRY(sup__get_str(r, v, "data_dir", &m->data_dir));
    if ((v = sh_node_get(root, "control_plane"))) {
        static const char *const ck[] = {"listen", NULL};
        const struct sh_node *x;
        SH_TRY(sh_node_check_keys(v, ck, "control_plane", r->d));
        if ((x = sh_node_get(v, "listen")))
            SH_TRY(get_addr(r, x, "control_plane.listen", false, &m->control_plane_listen));
    }
    if ((v = sh_node_get(root, "observe"))) {
        static const char *const ok[] = {"zipkin_port", NULL};
        const struct sh_node *x;
        SH_TRY(sh_node_check_keys(v, ok, "observe", r->d));
        if ((x = sh_node_get(v, "zipkin_port")))
            SH_TRY(get_u32(r, x, "observe.zipkin_port", 1, 65535, &m->zipkin_port));
    }
    if ((v = sh_node_get(root, "mesh"))) {
        static const char *const mk[] = {"listen", "admin", "identity", "tracing", "inbound", NULL};
        const struct sh_node *x;
        SH_TRY(sh_node_check_keys(v, mk, "mesh", r->d));
        if ((x = sh_node_get(v, "identity"))) {
            SH_TRY(sup__get_str(r, x, "mesh.identity", &m->mesh_identity));
            if (strcmp(m->mesh_identity, "optional") && strcmp(m->mesh_identity, "required"))
                return fail_at(r, x, "mesh.identity: '%s' is not optional or required",
                               m->mesh_identity);
        }
        if ((x = sh_node_get(v, "listen")))
            SH_TRY(get_addr(r, x, "mesh.listen", true, &m->mesh_listen));
        if ((x = sh_node_get(v, "admin")) && x->kind != SH_NODE_NULL)
            SH_TRY(get_addr(r, x, "mesh.admin", true, &m->mesh_admin));
        if ((x = sh_node_get(v, "inbound")) && x->kind != SH_NODE_NULL)
            SH_TRY(get_addr(r, x, "mesh.inbound", true, &m->mesh_inbound));
    }
    SH_TRY(sh_node_require(root, "services", "top level", &svcs, r->d));
    SH_TRY(sh_node_expect(svcs, SH_NODE_MAP, "services", r->d));
    if (svcs->count == 0) return fail_at(r, svcs, "services: expected at least one service");
    if (svcs->count > MANIFEST_MAX_SERVICES) {
        fail_at(r, svcs, "services: at most %d services", MANIFEST_MAX_SERVICES);
        return SH_ETOOBIG;
    }
    m->services = sup__alloc0(r, svcs->count * sizeof(*m->services));
    if (!m->services) return SH_ENOMEM;
    for (size_t i = 0; i < svcs->count; i++) {
        SH_TRY(read_service(r, svcs->items[i], svcs->values[i], &m->services[i]));
        m->service_count = i + 1;
    }
    for (size_t i = 0; i < m->service_count; i++) {
        for (size_t k = 0; k < i; k++) {
            if (m->services[i].port && m->services[i].port == m->services[k].port)
                return fail_at(r, sh_node_get(m->services[i].node, "port"),
                               "services.%s.port: %u is also services.%s.port", m->services[i].name,
                               m->services[i].port, m->services[k].name);
        }
    }
    SH_TRY(resolve_depends(r));
    if ((v = sh_node_get(root, "gateway"))) SH_TRY(read_gateway(r, v));
    if ((v = sh_node_get(root, "remote_services"))) SH_TRY(read_remotes(r, v));
    if ((v = sh_node_get(root, "security"))) SH_TRY(sup__read_security(r, v));
    return 0;
}

int manifest_from_doc(const struct sh_doc *doc, struct manifest **out, struct sh_diag *d)
{
    struct sh_diag scratch;
    struct manifest *m;
    struct rd r;
    int rc;

    *out = NULL;
    if (!d) d = &scratch;
    m = sh_calloc(1, sizeof(*m));
    if (!m) {
        sh_diag_set(d, doc->file, "out of memory");
        return SH_ENOMEM;
    }
    arena_init(&m->arena, 8192, 0);
    m->doc = doc;
    m->file = doc->file;
    m->control_plane_listen = MANIFEST_DEFAULT_CONTROL_PLANE;
    m->mesh_listen = MANIFEST_DEFAULT_MESH_LISTEN;
    m->mesh_identity = "optional";
    m->data_dir = MANIFEST_DEFAULT_DATA_DIR;
    m->gateway.listen = MANIFEST_DEFAULT_GATEWAY_LISTEN;
    r = (struct rd){.m = m, .d = d};
    rc = read_top(&r, doc->root);
    if (rc < 0) {
        if (rc == SH_ENOMEM) sh_diag_set(d, doc->file, "out of memory");
        manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int manifest_load_file(const char *path, struct manifest **out, struct sh_diag *d)
{
    struct sh_doc *doc;
    int rc;

    *out = NULL;
    rc = manifest_read_file(path, &doc, d);
    if (rc < 0) return rc;
    rc = manifest_from_doc(doc, out, d);
    if (rc < 0) {
        sh_doc_free(doc);
        return rc;
    }
    (*out)->owned_doc = doc;
    return 0;
}

void manifest_free(struct manifest *m)
{
    if (!m) return;
    arena_release(&m->arena);
    sh_doc_free(m->owned_doc);
    sh_free(m);
}

int manifest_service_index(const struct manifest *m, const char *name)
{
    for (size_t i = 0; i < m->service_count; i++) {
        if (!strcmp(m->services[i].name, name)) return (int)i;
    }
    return -1;
}

uint64_t manifest_instance_count(const struct manifest *m)
{
    uint64_t n = 0;

    for (size_t i = 0; i < m->service_count; i++)
        n += m->services[i].replicas;
    return n;
}
