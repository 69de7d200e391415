/* SPDX-License-Identifier: MIT */
/* test_doc.c: document trees built by hand: building and lookups, positions, and the typed
 * readers with the exact messages a user sees. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>

/* A small tree, as gateway.yaml might give it:
 *   gateway:                       1:1
 *     listen: 8080                 2:3 / 2:11
 *     debug: "true"                3:3 / 3:10 (quoted)
 *   routes:                        4:1
 *     - timeout: 5x                5:7 / 5:16
 */
struct fixture {
    struct sh_doc *doc;
    struct sh_node *root, *gateway, *routes, *route;
};

static struct sh_node *scalar(struct sh_doc *doc, const char *text, bool is_quoted, uint32_t line,
                              uint32_t col)
{
    struct sh_node *n = sh_node_new_scalar(doc, slice_from_cstr(text), is_quoted, line, col);
    assert_non_null(n);
    return n;
}

static void put(struct sh_doc *doc, struct sh_node *map, struct sh_node *key, struct sh_node *value)
{
    assert_int_equal(sh_node_map_append(doc, map, key, value), 0);
}

static void build(struct fixture *f)
{
    struct sh_doc *doc;

    assert_int_equal(sh_doc_new("gateway.yaml", &f->doc), 0);
    doc = f->doc;
    f->root = sh_node_new(doc, SH_NODE_MAP, 1, 1);
    f->gateway = sh_node_new(doc, SH_NODE_MAP, 2, 3);
    f->routes = sh_node_new(doc, SH_NODE_SEQ, 5, 5);
    f->route = sh_node_new(doc, SH_NODE_MAP, 5, 7);
    assert_non_null(f->root);
    assert_non_null(f->gateway);
    assert_non_null(f->routes);
    assert_non_null(f->route);
    doc->root = f->root;
    put(doc, f->root, scalar(doc, "gateway", false, 1, 1), f->gateway);
    put(doc, f->gateway, scalar(doc, "listen", false, 2, 3), scalar(doc, "8080", false, 2, 11));
    put(doc, f->gateway, scalar(doc, "debug", false, 3, 3), scalar(doc, "true", true, 3, 10));
    put(doc, f->root, scalar(doc, "routes", false, 4, 1), f->routes);
    assert_int_equal(sh_node_seq_append(doc, f->routes, f->route), 0);
    put(doc, f->route, scalar(doc, "timeout", false, 5, 7), scalar(doc, "5x", false, 5, 16));
}

static void test_doc__build_and_look_up(void **state)
{
    struct fixture f;
    const struct sh_node *n;
    (void)state;

    build(&f);
    assert_int_equal(f.root->count, 2);
    n = sh_node_get(sh_node_get(f.root, "gateway"), "listen");
    assert_non_null(n);
    assert_int_equal(n->kind, SH_NODE_SCALAR);
    assert_string_equal(n->text, "8080");
    assert_int_equal(n->len, 4);
    assert_false(n->is_quoted);
    assert_ptr_equal(n->doc, f.doc);
    /* Missing keys, non-maps and NULL chain to NULL. */
    assert_null(sh_node_get(f.root, "nope"));
    assert_null(sh_node_get(sh_node_get(f.root, "nope"), "listen"));
    assert_null(sh_node_get(f.routes, "timeout"));
    assert_null(sh_node_get(f.root, "gatewa"));
    assert_int_equal(f.routes->count, 1);
    assert_ptr_equal(f.routes->items[0], f.route);
    assert_null(f.routes->values);
    sh_doc_free(f.doc);
    sh_doc_free(NULL);
}

static void test_doc__appends_grow_past_initial_room(void **state)
{
    struct sh_doc *doc;
    struct sh_node *seq, *map;
    char key[16];
    (void)state;

    assert_int_equal(sh_doc_new(NULL, &doc), 0);
    assert_string_equal(doc->file, "");
    seq = sh_node_new(doc, SH_NODE_SEQ, 1, 1);
    map = sh_node_new(doc, SH_NODE_MAP, 1, 1);
    assert_non_null(seq);
    assert_non_null(map);
    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(sh_node_seq_append(doc, seq, scalar(doc, key, false, i + 1, 1)), 0);
        put(doc, map, scalar(doc, key, false, i + 1, 1), scalar(doc, "v", false, i + 1, 5));
    }
    assert_int_equal(seq->count, 1000);
    assert_int_equal(map->count, 1000);
    assert_string_equal(seq->items[999]->text, "k999");
    assert_string_equal(sh_node_get(map, "k500")->text, "v");
    assert_int_equal(sh_node_get(map, "k500")->line, 501);
    assert_int_equal(doc->node_count, 2 + 3000);
    sh_doc_free(doc);
}

static void test_doc__null_nodes_have_empty_text(void **state)
{
    struct sh_doc *doc;
    struct sh_node *n;
    (void)state;

    assert_int_equal(sh_doc_new("x.yaml", &doc), 0);
    n = sh_node_new(doc, SH_NODE_NULL, 3, 4);
    assert_non_null(n);
    assert_string_equal(n->text, "");
    assert_int_equal(n->len, 0);
    /* Scalars keep any bytes, a NUL included, and are terminated. */
    n = sh_node_new_scalar(doc, (struct slice){"a\0b", 3}, true, 1, 1);
    assert_non_null(n);
    assert_int_equal(n->len, 3);
    assert_memory_equal(n->text, "a\0b", 4);
    sh_doc_free(doc);
}

static void test_doc__where_formats_and_keeps_the_position(void **state)
{
    struct fixture f;
    char out[96], tiny[8];
    struct sh_doc *doc;
    struct sh_node *n;
    char longname[200];
    (void)state;

    build(&f);
    assert_string_equal(sh_node_where(f.route, out, sizeof(out)), "gateway.yaml:5:7");
    assert_string_equal(sh_node_where(f.route, tiny, sizeof(tiny)), ":5:7");
    sh_doc_free(f.doc);

    memset(longname, 'd', sizeof(longname));
    memcpy(longname + sizeof(longname) - 14, "/gateway.yaml", 13);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(sh_doc_new(longname, &doc), 0);
    n = sh_node_new(doc, SH_NODE_MAP, 123, 45);
    assert_non_null(n);
    sh_node_where(n, out, sizeof(out));
    assert_int_equal(strlen(out), sizeof(out) - 1);
    assert_memory_equal(out, "...", 3);
    assert_string_equal(out + strlen(out) - 20, "/gateway.yaml:123:45");
    sh_doc_free(doc);
}

/* Runs a reader's failure and checks where and what exactly. */
static void expect_diag(const struct sh_diag *d, const char *where, const char *what)
{
    if (strcmp(d->where, where) != 0 || strcmp(d->what, what) != 0)
        fail_msg("got      '%s: %s'\nexpected '%s: %s'", d->where, d->what, where, what);
}

static void test_doc__duration_error_names_path_and_position(void **state)
{
    struct fixture f;
    struct sh_diag d = {{0}, {0}};
    uint64_t ms = 7;
    const struct sh_node *t;
    (void)state;

    build(&f);
    t = sh_node_get(f.routes->items[0], "timeout");
    assert_int_equal(sh_node_duration_ms(t, "routes[0].timeout", &ms, &d), SH_EPARSE);
    assert_int_equal(ms, 0);
    expect_diag(&d, "gateway.yaml:5:16",
                "routes[0].timeout: duration '5x': unknown unit 'x' (use us, ms, s, m, h)");
    sh_doc_free(f.doc);
}

static void test_doc__typed_readers_accept_good_values(void **state)
{
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    uint64_t v;
    bool b;
    const char *s;
    (void)state;

    assert_int_equal(sh_doc_new("t.yaml", &doc), 0);
    assert_int_equal(sh_node_u64(scalar(doc, "8080", false, 1, 1), "port", 1, 65535, &v, &d), 0);
    assert_int_equal(v, 8080);
    assert_int_equal(sh_node_u64(scalar(doc, "1", false, 1, 1), "n", 1, 1, &v, &d), 0);
    assert_int_equal(
        sh_node_u64(scalar(doc, "18446744073709551615", false, 1, 1), "n", 0, UINT64_MAX, &v, &d),
        0);
    assert_true(v == UINT64_MAX);
    static const struct {
        const char *text;
        bool want;
    } bools[] = {{"true", true}, {"false", false}, {"yes", true},  {"no", false},
                 {"on", true},   {"off", false},   {"True", true}, {"OFF", false}};
    for (size_t i = 0; i < SH_ARRAY_LEN(bools); i++) {
        b = !bools[i].want;
        assert_int_equal(sh_node_bool(scalar(doc, bools[i].text, false, 1, 1), "x", &b, &d), 0);
        assert_int_equal(b, bools[i].want);
    }
    assert_int_equal(sh_node_duration_ms(scalar(doc, "1m30s", false, 1, 1), "t", &v, &d), 0);
    assert_int_equal(v, 90000);
    assert_int_equal(sh_node_duration_ms(scalar(doc, "250ms", true, 1, 1), "t", &v, &d), 0);
    assert_int_equal(v, 250);
    assert_int_equal(sh_node_size(scalar(doc, "64KiB", false, 1, 1), "s", &v, &d), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(sh_node_size(scalar(doc, "512", false, 1, 1), "s", &v, &d), 0);
    assert_int_equal(v, 512);
    assert_int_equal(sh_node_str(scalar(doc, "10", true, 1, 1), "name", &s, &d), 0);
    assert_string_equal(s, "10");
    assert_int_equal(sh_node_str(scalar(doc, "", false, 1, 1), "name", &s, &d), 0);
    assert_string_equal(s, "");
    /* The diag is untouched on success. */
    assert_string_equal(d.where, "");
    assert_string_equal(d.what, "");
    sh_doc_free(doc);
}

struct err_case {
    const char *text;
    bool is_quoted;
    int rc;
    const char *what;
};

static void test_doc__typed_readers_explain_bad_values(void **state)
{
    static const struct err_case u64s[] = {
        {"10", true, SH_EPARSE,
         "port: expected a number, found the quoted string '10' "
         "(remove the quotes)"},
        {"-1", false, SH_EPARSE, "port: expected a whole number, found '-1'"},
        {"8080.5", false, SH_EPARSE, "port: expected a whole number, found '8080.5'"},
        {"0x10", false, SH_EPARSE, "port: expected a whole number, found '0x10'"},
        {"", false, SH_EPARSE, "port: expected a whole number, found ''"},
        {"0", false, SH_EPARSE, "port: 0 is out of range (1..65535)"},
        {"70000", false, SH_ETOOBIG, "port: 70000 is out of range (1..65535)"},
        {"99999999999999999999", false, SH_ETOOBIG,
         "port: number '99999999999999999999' is too large (at most 65535)"},
    };
    static const struct err_case bools[] = {
        {"true", true, SH_EPARSE,
         "debug: expected true or false, found the quoted string "
         "'true' (remove the quotes)"},
        {"1", false, SH_EPARSE, "debug: expected true or false, found '1'"},
        {"y", false, SH_EPARSE, "debug: expected true or false, found 'y'"},
    };
    static const struct err_case durations[] = {
        {"5", false, SH_EPARSE, "timeout: duration '5': missing unit (use e.g. 250ms, 2s, 1m)"},
        {"1.5s", true, SH_EPARSE,
         "timeout: duration '1.5s': fractions are not supported "
         "(use a smaller unit)"},
    };
    static const struct err_case sizes[] = {
        {"10 MiB", false, SH_EPARSE, "max_body: size '10 MiB': spaces are not allowed"},
        {"99999999999GiB", false, SH_ETOOBIG, "max_body: size '99999999999GiB': value too large"},
    };
    struct sh_doc *doc;
    struct sh_diag d;
    uint64_t v;
    bool b;
    (void)state;

    assert_int_equal(sh_doc_new("gw.yaml", &doc), 0);
    for (size_t i = 0; i < SH_ARRAY_LEN(u64s); i++) {
        memset(&d, 0, sizeof(d));
        v = 1;
        assert_int_equal(sh_node_u64(scalar(doc, u64s[i].text, u64s[i].is_quoted, 7, 9), "port", 1,
                                     65535, &v, &d),
                         u64s[i].rc);
        assert_int_equal(v, 0);
        expect_diag(&d, "gw.yaml:7:9", u64s[i].what);
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(bools); i++) {
        memset(&d, 0, sizeof(d));
        assert_int_equal(
            sh_node_bool(scalar(doc, bools[i].text, bools[i].is_quoted, 2, 10), "debug", &b, &d),
            bools[i].rc);
        expect_diag(&d, "gw.yaml:2:10", bools[i].what);
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(durations); i++) {
        memset(&d, 0, sizeof(d));
        assert_int_equal(
            sh_node_duration_ms(scalar(doc, durations[i].text, durations[i].is_quoted, 3, 12),
                                "timeout", &v, &d),
            durations[i].rc);
        expect_diag(&d, "gw.yaml:3:12", durations[i].what);
    }
    for (size_t i = 0; i < SH_ARRAY_LEN(sizes); i++) {
        memset(&d, 0, sizeof(d));
        assert_int_equal(
            sh_node_size(scalar(doc, sizes[i].text, sizes[i].is_quoted, 4, 13), "max_body", &v, &d),
            sizes[i].rc);
        expect_diag(&d, "gw.yaml:4:13", sizes[i].what);
    }
    /* A NULL diag is allowed everywhere. */
    assert_int_equal(sh_node_u64(scalar(doc, "x", false, 1, 1), "p", 0, 1, &v, NULL), SH_EPARSE);
    assert_int_equal(sh_node_bool(scalar(doc, "x", false, 1, 1), "p", &b, NULL), SH_EPARSE);
    sh_doc_free(doc);
}

static void test_doc__readers_name_the_wrong_kind(void **state)
{
    struct fixture f;
    struct sh_diag d = {{0}, {0}};
    const char *s = "x";
    struct sh_node *null_node, *long_node;
    uint64_t v;
    (void)state;

    build(&f);
    assert_int_equal(sh_node_str(f.routes, "routes", &s, &d), SH_EPARSE);
    assert_null(s);
    expect_diag(&d, "gateway.yaml:5:5", "routes: expected a single value, found a list");
    assert_int_equal(sh_node_expect(f.gateway, SH_NODE_SEQ, "gateway", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:2:3", "gateway: expected a list, found a map");
    assert_int_equal(
        sh_node_expect(sh_node_get(f.gateway, "debug"), SH_NODE_MAP, "gateway.debug", &d),
        SH_EPARSE);
    expect_diag(&d, "gateway.yaml:3:10",
                "gateway.debug: expected a map, found the quoted string 'true'");
    assert_int_equal(sh_node_expect(f.gateway, SH_NODE_MAP, "gateway", &d), 0);

    null_node = sh_node_new(f.doc, SH_NODE_NULL, 9, 8);
    assert_non_null(null_node);
    assert_int_equal(sh_node_duration_ms(null_node, "health.interval", &v, &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:9:8",
                "health.interval: expected a single value, found nothing (null)");
    /* Without a path label the message starts with the problem. */
    assert_int_equal(sh_node_expect(f.root, SH_NODE_SEQ, NULL, &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:1:1", "expected a list, found a map");
    assert_int_equal(sh_node_expect(f.root, SH_NODE_SEQ, "", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:1:1", "expected a list, found a map");
    /* Long values are cut in messages. */
    long_node =
        scalar(f.doc, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, 1, 2);
    assert_int_equal(sh_node_expect(long_node, SH_NODE_MAP, "x", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:1:2",
                "x: expected a map, found 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    /* Embedded NUL bytes are refused as strings. */
    assert_int_equal(sh_node_str(sh_node_new_scalar(f.doc, (struct slice){"a\0b", 3}, true, 6, 1),
                                 "name", &s, &d),
                     SH_EPARSE);
    expect_diag(&d, "gateway.yaml:6:1", "name: the text contains a NUL character");
    sh_doc_free(f.doc);
}

static void test_doc__require_reports_missing_key_at_the_map(void **state)
{
    struct fixture f;
    struct sh_diag d = {{0}, {0}};
    const struct sh_node *n = NULL;
    (void)state;

    build(&f);
    assert_int_equal(sh_node_require(f.gateway, "listen", "gateway", &n, &d), 0);
    assert_string_equal(n->text, "8080");
    assert_int_equal(sh_node_require(f.route, "upstream", "routes[0]", &n, &d), SH_EPARSE);
    assert_null(n);
    expect_diag(&d, "gateway.yaml:5:7", "routes[0]: missing required key 'upstream'");
    assert_int_equal(sh_node_require(f.routes, "upstream", "routes", &n, &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:5:5", "routes: expected a map, found a list");
    sh_doc_free(f.doc);
}

static void test_doc__unknown_key_names_it_and_the_allowed_ones(void **state)
{
    static const char *const route_keys[] = {"path", "upstream", "timeout", "retries", NULL};
    static const char *const other_keys[] = {"listen", "workers", NULL};
    static const char *const no_keys[] = {NULL};
    struct fixture f;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    build(&f);
    assert_int_equal(sh_node_check_keys(f.route, route_keys, "routes[0]", &d), 0);
    /* "debug" is far from every allowed key: the list is given. */
    assert_int_equal(sh_node_check_keys(f.gateway, other_keys, "gateway", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:3:3", "gateway: unknown key 'debug' (allowed: listen, workers)");
    /* A typo gets a suggestion. */
    put(f.doc, f.route, scalar(f.doc, "tmeout", false, 6, 7), scalar(f.doc, "1s", false, 6, 15));
    assert_int_equal(sh_node_check_keys(f.route, route_keys, "routes[0]", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:6:7",
                "routes[0]: unknown key 'tmeout' (did you mean 'timeout'?)");
    assert_int_equal(sh_node_check_keys(f.route, no_keys, "routes[0]", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:5:7", "routes[0]: unknown key 'timeout' (allowed: none)");
    assert_int_equal(sh_node_check_keys(f.routes, route_keys, "routes", &d), SH_EPARSE);
    expect_diag(&d, "gateway.yaml:5:5", "routes: expected a map, found a list");
    assert_int_equal(sh_node_check_keys(f.route, no_keys, "routes[0]", NULL), SH_EPARSE);
    sh_doc_free(f.doc);
}

static void test_doc__unknown_key_list_is_cut_to_fit(void **state)
{
    static const char *const many[] = {"alpha_long_key_name",   "bravo_long_key_name",
                                       "charlie_long_key_name", "delta_long_key_name",
                                       "echo_long_key_name",    "foxtrot_long_key_name",
                                       "golf_long_key_name",    "hotel_long_key_name",
                                       "india_long_key_name",   NULL};
    struct sh_doc *doc;
    struct sh_node *map;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    assert_int_equal(sh_doc_new("m.yaml", &doc), 0);
    map = sh_node_new(doc, SH_NODE_MAP, 1, 1);
    assert_non_null(map);
    put(doc, map, scalar(doc, "zzz", false, 1, 1), scalar(doc, "1", false, 1, 6));
    assert_int_equal(sh_node_check_keys(map, many, "services.web", &d), SH_EPARSE);
    assert_int_equal(strncmp(d.what, "services.web: unknown key 'zzz' (allowed: ", 42), 0);
    assert_true(strlen(d.what) < sizeof(d.what));
    sh_doc_free(doc);
}

static void test_doc__builders_fail_cleanly_when_out_of_memory(void **state)
{
    long n;
    (void)state;

    for (n = 1; n < 100; n++) {
        struct sh_doc *doc = NULL;
        struct sh_node *map, *key, *value;
        int rc;

        sh_alloc_fail_after(n);
        rc = sh_doc_new("oom.yaml", &doc);
        if (rc) {
            assert_int_equal(rc, SH_ENOMEM);
            assert_null(doc);
            continue;
        }
        map = sh_node_new(doc, SH_NODE_MAP, 1, 1);
        rc = map ? 0 : SH_ENOMEM;
        for (int i = 0; i < 600 && rc == 0; i++) {
            key = sh_node_new_scalar(doc, SLICE("some-key-text-that-takes-room"), false, 1, 1);
            value = sh_node_new(doc, SH_NODE_NULL, 1, 1);
            if (!key || !value)
                rc = SH_ENOMEM;
            else
                rc = sh_node_map_append(doc, map, key, value);
        }
        sh_doc_free(doc);
        sh_alloc_fail_after(0);
        if (rc == 0) break;
        assert_int_equal(rc, SH_ENOMEM);
        assert_int_equal(sh_alloc_live(), test_live_at_start);
    }
    assert_true(n > 3); /* the doc, its name and several arena blocks were each refused once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_doc__build_and_look_up),
        SH_TEST(test_doc__appends_grow_past_initial_room),
        SH_TEST(test_doc__null_nodes_have_empty_text),
        SH_TEST(test_doc__where_formats_and_keeps_the_position),
        SH_TEST(test_doc__duration_error_names_path_and_position),
        SH_TEST(test_doc__typed_readers_accept_good_values),
        SH_TEST(test_doc__typed_readers_explain_bad_values),
        SH_TEST(test_doc__readers_name_the_wrong_kind),
        SH_TEST(test_doc__require_reports_missing_key_at_the_map),
        SH_TEST(test_doc__unknown_key_names_it_and_the_allowed_ones),
        SH_TEST(test_doc__unknown_key_list_is_cut_to_fit),
        SH_TEST(test_doc__builders_fail_cleanly_when_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
