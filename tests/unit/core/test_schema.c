/* SPDX-License-Identifier: MIT */
/* test_schema.c: the table-driven schema reader: fields of each kind, limits, unknown keys,
 * nested maps, custom readers and checks, and the paths errors name (origins included). */
#include "test_util.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct inner {
    uint32_t max;
    double budget;
};

struct outer {
    uint32_t count, timeout_ms, size, share;
    bool on;
    const char *name;
    struct inner retry;
    int custom;
};

static int read_custom(const struct sh_node *n, const char *path, void *field, void *ctx,
                       struct sh_diag *d)
{
    const char *s;

    (void)ctx;
    SH_TRY(sh_node_str(n, path, &s, d));
    if (strcmp(s, "yes") != 0) return sh_node_fail(d, n, path, "'%s' is not yes", s);
    *(int *)field = 1;
    return 0;
}

static int check_outer(const struct sh_node *map, const char *path, void *obj, void *ctx,
                       struct sh_diag *d)
{
    const struct outer *o = obj;

    (void)ctx;
    if (o->count > 5 && !o->on) return sh_node_fail(d, map, path, "count above 5 needs on: true");
    return 0;
}

static const struct sh_field inner_fields[] = {
    {"max", SH_FIELD_U32, offsetof(struct inner, max), 0, 10, NULL, NULL},
    {"budget", SH_FIELD_RATIO, offsetof(struct inner, budget), 0, 0, NULL, NULL},
};
SH_SCHEMA(inner_schema, inner_fields, NULL);

static const struct sh_field outer_fields[] = {
    {"count", SH_FIELD_U32, offsetof(struct outer, count), 1, 100, NULL, NULL},
    {"timeout", SH_FIELD_MS, offsetof(struct outer, timeout_ms), 1, 60000, NULL, NULL},
    {"size", SH_FIELD_SIZE, offsetof(struct outer, size), 0, 1 << 20, NULL, NULL},
    {"share", SH_FIELD_PERCENT, offsetof(struct outer, share), 0, 0, NULL, NULL},
    {"on", SH_FIELD_BOOL, offsetof(struct outer, on), 0, 0, NULL, NULL},
    {"name", SH_FIELD_STR, offsetof(struct outer, name), 0, 0, NULL, NULL},
    {"retry", SH_FIELD_MAP, offsetof(struct outer, retry), 0, 0, &inner_schema, NULL},
    {"custom", SH_FIELD_FN, offsetof(struct outer, custom), 0, 0, NULL, read_custom},
};
SH_SCHEMA(outer_schema, outer_fields, check_outer);

struct fx {
    struct sh_doc *doc;
    struct sh_node *map;
    uint32_t line;
};

static void fx_init(struct fx *f)
{
    assert_int_equal(sh_doc_new("t.yaml", &f->doc), 0);
    f->map = sh_node_new(f->doc, SH_NODE_MAP, 1, 1);
    assert_non_null(f->map);
    f->doc->root = f->map;
    f->line = 1;
}

static void put_in(struct fx *f, struct sh_node *map, const char *key, const char *value,
                   bool quoted)
{
    struct sh_node *k = sh_node_new_scalar(f->doc, slice_from_cstr(key), false, ++f->line, 3);
    struct sh_node *v = sh_node_new_scalar(f->doc, slice_from_cstr(value), quoted, f->line, 10);
    assert_non_null(k);
    assert_non_null(v);
    assert_int_equal(sh_node_map_append(f->doc, map, k, v), 0);
}

static struct sh_node *put_map(struct fx *f, struct sh_node *map, const char *key)
{
    struct sh_node *k = sh_node_new_scalar(f->doc, slice_from_cstr(key), false, ++f->line, 3);
    struct sh_node *m = sh_node_new(f->doc, SH_NODE_MAP, f->line, 10);
    assert_non_null(k);
    assert_non_null(m);
    assert_int_equal(sh_node_map_append(f->doc, map, k, m), 0);
    return m;
}

static void test_schema__reads_every_kind(void **state)
{
    struct outer o = {.count = 3, .timeout_ms = 7};
    struct sh_diag d = {{0}, {0}};
    struct fx f;
    struct sh_node *r;
    (void)state;

    fx_init(&f);
    put_in(&f, f.map, "count", "42", false);
    put_in(&f, f.map, "size", "64KiB", false);
    put_in(&f, f.map, "share", "25%", false);
    put_in(&f, f.map, "on", "true", false);
    put_in(&f, f.map, "name", "api", true);
    r = put_map(&f, f.map, "retry");
    put_in(&f, r, "max", "2", false);
    put_in(&f, r, "budget", "20%", false);
    put_in(&f, f.map, "custom", "yes", false);
    assert_int_equal(sh_schema_read(&outer_schema, f.map, "svc", &o, NULL, &d), 0);
    assert_int_equal(o.count, 42);
    assert_int_equal(o.timeout_ms, 7); /* absent: the default stays */
    assert_int_equal(o.size, 65536);
    assert_int_equal(o.share, 25);
    assert_true(o.on);
    assert_string_equal(o.name, "api");
    assert_int_equal(o.retry.max, 2);
    assert_true(o.retry.budget > 0.19 && o.retry.budget < 0.21);
    assert_int_equal(o.custom, 1);
    sh_doc_free(f.doc);
}

/* Each failure names the key's full path and the value's position. */
static void expect_error(const char *key, const char *value, const char *where, const char *what)
{
    struct outer o = {0};
    struct sh_diag d = {{0}, {0}};
    struct fx f;

    fx_init(&f);
    put_in(&f, f.map, key, value, false);
    assert_int_not_equal(sh_schema_read(&outer_schema, f.map, "services.api", &o, NULL, &d), 0);
    assert_string_equal(d.where, where);
    assert_string_equal(d.what, what);
    sh_doc_free(f.doc);
}

static void test_schema__errors_name_path_and_position(void **state)
{
    (void)state;
    expect_error("count", "0", "t.yaml:2:10", "services.api.count: 0 is out of range (1..100)");
    expect_error("cuont", "1", "t.yaml:2:3",
                 "services.api: unknown key 'cuont' (did you mean 'count'?)");
    expect_error("timeout", "2m", "t.yaml:2:10",
                 "services.api.timeout: duration too long (at most 60000 ms)");
    expect_error("share", "120", "t.yaml:2:10", "services.api.share: 120 is out of range (0..100)");
    expect_error("custom", "no", "t.yaml:2:10", "services.api.custom: 'no' is not yes");
    expect_error("count", "9", "t.yaml:1:1", "services.api: count above 5 needs on: true");
}

/* A map made from another document (the manifest's resilience section copied into a gateway
 * cluster) is named by the path the user wrote. */
static void test_schema__origin_names_the_users_path(void **state)
{
    struct outer o = {0};
    struct sh_diag d = {{0}, {0}};
    struct fx f;
    struct sh_node *r;
    (void)state;

    fx_init(&f);
    r = put_map(&f, f.map, "retry");
    put_in(&f, r, "max", "99", false);
    assert_int_equal(sh_node_set_origin(f.doc, f.map, "services.api.resilience"), 0);
    assert_int_not_equal(sh_schema_read(&outer_schema, f.map, "clusters[api]", &o, NULL, &d), 0);
    assert_string_equal(d.what, "services.api.resilience.retry.max: 99 is out of range (0..10)");
    sh_doc_free(f.doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_schema__reads_every_kind),
        SH_TEST(test_schema__errors_name_path_and_position),
        SH_TEST(test_schema__origin_names_the_users_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
