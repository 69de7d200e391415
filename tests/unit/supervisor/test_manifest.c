/* SPDX-License-Identifier: MIT */
/* test_manifest.c: the YAML reader: the tree it builds (kinds, text, quoting, positions),
 * the errors it reports (exact file:line:col and words), the constructs it rejects, its
 * limits, files, and out-of-memory torture. */
#include "test_util.h"

#include "supervisor/supervisor.h"

#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_str(const char *text, struct sh_doc **out, struct sh_diag *d)
{
    return manifest_read_buf("t.yaml", text, strlen(text), out, d);
}

static void expect_pos(const struct sh_node *n, enum sh_node_kind kind, uint32_t line, uint32_t col)
{
    assert_non_null(n);
    if (n->kind != kind || n->line != line || n->col != col)
        fail_msg("node '%s': kind %d at %u:%u, expected kind %d at %u:%u", n->text, n->kind,
                 n->line, n->col, kind, line, col);
}

static void expect_scalar(const struct sh_node *n, const char *text, bool is_quoted)
{
    assert_non_null(n);
    assert_int_equal(n->kind, SH_NODE_SCALAR);
    assert_string_equal(n->text, text);
    assert_int_equal(n->len, strlen(text));
    assert_int_equal(n->is_quoted, is_quoted);
}

static void test_manifest__builds_nested_maps_and_lists(void **state)
{
    static const char text[] = "# the gateway\n"
                               "gateway:\n"
                               "  listen: 127.0.0.1:8080   # comment after a value\n"
                               "  workers: 4\n"
                               "routes:\n"
                               "  - path: /api\n"
                               "    upstream: api\n"
                               "    retries: [1, 2, \"3\"]\n"
                               "  - {path: /web, upstream: 'web'}\n"
                               "empty:\n"
                               "tilde: ~\n"
                               "word: null\n"
                               "text: \"null\"\n";
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    const struct sh_node *root, *gw, *routes, *r0, *r1, *retries;
    (void)state;

    assert_int_equal(read_str(text, &doc, &d), 0);
    assert_string_equal(doc->file, "t.yaml");
    root = doc->root;
    expect_pos(root, SH_NODE_MAP, 2, 1);
    assert_int_equal(root->count, 6);
    expect_pos(root->items[0], SH_NODE_SCALAR, 2, 1);
    expect_scalar(root->items[0], "gateway", false);

    gw = sh_node_get(root, "gateway");
    expect_pos(gw, SH_NODE_MAP, 3, 3);
    expect_scalar(sh_node_get(gw, "listen"), "127.0.0.1:8080", false);
    expect_pos(sh_node_get(gw, "listen"), SH_NODE_SCALAR, 3, 11);
    expect_scalar(sh_node_get(gw, "workers"), "4", false);

    routes = sh_node_get(root, "routes");
    expect_pos(routes, SH_NODE_SEQ, 6, 3);
    assert_int_equal(routes->count, 2);
    r0 = routes->items[0];
    expect_pos(r0, SH_NODE_MAP, 6, 5);
    expect_scalar(sh_node_get(r0, "path"), "/api", false);
    retries = sh_node_get(r0, "retries");
    expect_pos(retries, SH_NODE_SEQ, 8, 14);
    assert_int_equal(retries->count, 3);
    expect_scalar(retries->items[0], "1", false);
    expect_pos(retries->items[1], SH_NODE_SCALAR, 8, 18);
    expect_scalar(retries->items[2], "3", true);
    r1 = routes->items[1];
    expect_pos(r1, SH_NODE_MAP, 9, 5);
    expect_scalar(sh_node_get(r1, "upstream"), "web", true);
    expect_pos(sh_node_get(r1, "upstream"), SH_NODE_SCALAR, 9, 28);

    assert_int_equal(sh_node_get(root, "empty")->kind, SH_NODE_NULL);
    assert_string_equal(sh_node_get(root, "empty")->text, "");
    assert_int_equal(sh_node_get(root, "tilde")->kind, SH_NODE_NULL);
    expect_pos(sh_node_get(root, "word"), SH_NODE_NULL, 12, 7);
    expect_scalar(sh_node_get(root, "text"), "null", true);
    sh_doc_free(doc);
}

static void test_manifest__quoting_keeps_strings_strings(void **state)
{
    static const char text[] = "a: true\n"
                               "b: \"true\"\n"
                               "c: '10'\n"
                               "d: !!str 10\n"
                               "e: |\n"
                               "  line one\n"
                               "  line two\n"
                               "f: >\n"
                               "  folded\n"
                               "  text\n"
                               "g: \"tab\\there\"\n"
                               "null: key named null\n";
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    bool b = false;
    uint64_t v;
    (void)state;

    assert_int_equal(read_str(text, &doc, &d), 0);
    assert_int_equal(sh_node_bool(sh_node_get(doc->root, "a"), "a", &b, &d), 0);
    assert_true(b);
    assert_int_equal(sh_node_bool(sh_node_get(doc->root, "b"), "b", &b, &d), SH_EPARSE);
    assert_string_equal(d.where, "t.yaml:2:4");
    assert_string_equal(d.what, "b: expected true or false, found the quoted string 'true' "
                                "(remove the quotes)");
    assert_int_equal(sh_node_u64(sh_node_get(doc->root, "c"), "c", 0, 100, &v, &d), SH_EPARSE);
    assert_string_equal(d.where, "t.yaml:3:4");
    expect_scalar(sh_node_get(doc->root, "d"), "10", true);
    expect_scalar(sh_node_get(doc->root, "e"), "line one\nline two\n", true);
    expect_scalar(sh_node_get(doc->root, "f"), "folded text\n", true);
    expect_scalar(sh_node_get(doc->root, "g"), "tab\there", true);
    expect_scalar(sh_node_get(doc->root, "null"), "key named null", false);
    sh_doc_free(doc);
}

static void test_manifest__flow_style_and_crlf(void **state)
{
    static const char text[] = "{services: {web: {port: 8080, tags: [a, b]}}, n: []}\r\n";
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    const struct sh_node *web;
    uint64_t port;
    (void)state;

    assert_int_equal(read_str(text, &doc, &d), 0);
    web = sh_node_get(sh_node_get(doc->root, "services"), "web");
    expect_pos(web, SH_NODE_MAP, 1, 18);
    assert_int_equal(
        sh_node_u64(sh_node_get(web, "port"), "services.web.port", 1, 65535, &port, &d), 0);
    assert_int_equal(port, 8080);
    assert_int_equal(sh_node_get(web, "tags")->count, 2);
    assert_int_equal(sh_node_get(doc->root, "n")->kind, SH_NODE_SEQ);
    assert_int_equal(sh_node_get(doc->root, "n")->count, 0);
    sh_doc_free(doc);

    assert_int_equal(read_str("a: 1\r\nb:\r\n  - x\r\n", &doc, &d), 0);
    expect_pos(sh_node_get(doc->root, "b")->items[0], SH_NODE_SCALAR, 3, 5);
    sh_doc_free(doc);
}

static void test_manifest__empty_and_comment_only_files_give_a_null_root(void **state)
{
    static const char *const texts[] = {"", "# nothing here\n# at all\n", "\n\n", "---\n",
                                        "---\n...\n"};
    (void)state;

    for (size_t i = 0; i < SH_ARRAY_LEN(texts); i++) {
        struct sh_doc *doc = NULL;
        struct sh_diag d = {{0}, {0}};
        assert_int_equal(read_str(texts[i], &doc, &d), 0);
        assert_non_null(doc->root);
        assert_int_equal(doc->root->kind, SH_NODE_NULL);
        sh_doc_free(doc);
    }
    /* And a component asking for a map says so. */
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    assert_int_equal(manifest_read_buf("shoal.yaml", NULL, 0, &doc, &d), 0);
    assert_int_equal(sh_node_expect(doc->root, SH_NODE_MAP, "the manifest", &d), SH_EPARSE);
    assert_string_equal(d.where, "shoal.yaml:1:1");
    assert_string_equal(d.what, "the manifest: expected a map, found nothing (null)");
    sh_doc_free(doc);
}

struct err_case {
    const char *text;
    int rc;
    const char *where;
    const char *what;
};

static void run_errors(const struct err_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct sh_doc *doc = (struct sh_doc *)&doc; /* must be reset to NULL */
        struct sh_diag d = {{0}, {0}};
        int rc = read_str(cases[i].text, &doc, &d);
        assert_null(doc);
        if (rc != cases[i].rc || strcmp(d.where, cases[i].where) != 0 ||
            strcmp(d.what, cases[i].what) != 0)
            fail_msg("case %zu:\n%s\ngot      %s '%s: %s'\nexpected %s '%s: %s'", i, cases[i].text,
                     sh_errname(rc), d.where, d.what, sh_errname(cases[i].rc), cases[i].where,
                     cases[i].what);
    }
}

static void test_manifest__syntax_errors_have_exact_positions(void **state)
{
    static const struct err_case cases[] = {
        {"a: 1\n b: 2\n", SH_EPARSE, "t.yaml:2:3",
         "a ':' is not allowed here (check the indentation; quote a value that contains ': ')"},
        {"a:\n  b: 1\n c: 2\n", SH_EPARSE, "t.yaml:3:2",
         "this line does not fit the indentation of the map (in the map that starts at line 1, "
         "column 1)"},
        {"a:\n  - 1\n  - 2\n - 3\n", SH_EPARSE, "t.yaml:4:2",
         "this line does not fit the indentation of the map (in the map that starts at line 1, "
         "column 1)"},
        {"- a\nb: 1\n", SH_EPARSE, "t.yaml:2:1",
         "this line does not fit the indentation of the list (in the list that starts at line 1, "
         "column 1)"},
        {"a: b: c\n", SH_EPARSE, "t.yaml:1:5",
         "a ':' is not allowed here (check the indentation; quote a value that contains ': ')"},
        {"a: 1\nb: [1, 2\nc: 3\n", SH_EPARSE, "t.yaml:3:2",
         "expected ',' or ']' in a [list] (in the [list] that starts at line 2, column 4)"},
        {"a: {b: 1, c\n", SH_EPARSE, "t.yaml:2:1",
         "expected ',' or '}' in a {map} (in the {map} that starts at line 1, column 4)"},
        {"a: 'x\n", SH_EPARSE, "t.yaml:2:1",
         "the file ends before this is closed (in the quoted string that starts at line 1, "
         "column 4)"},
        {"x: \"\\q\"\n", SH_EPARSE, "t.yaml:1:5",
         "unknown escape sequence in a double-quoted string (in the quoted string that starts at "
         "line 1, column 4)"},
        {"a: @x\n", SH_EPARSE, "t.yaml:1:4",
         "unexpected character '@' (reserved; quote the value)"},
        /* Columns count characters, not bytes. */
        {"\xc3\xa9: \xc3\xa9\n\xc3\xbc: `\n", SH_EPARSE, "t.yaml:2:4",
         "unexpected character '`' (reserved; quote the value)"},
        {"a: \"x\n---\n\"\n", SH_EPARSE, "t.yaml:2:1",
         "a '---' or '...' line inside a quoted string (in the quoted string that starts at line "
         "1, column 4)"},
        {"a: \"\x01\"\n", SH_EPARSE, "t.yaml:1:5",
         "the file contains a control character (only tab, CR and LF are allowed)"},
        {"a: 1\nb: \xff\n", SH_EPARSE, "t.yaml:2:4", "the file is not valid UTF-8"},
        {"a: 1\r\nb: 2\rc: \xff\r\n", SH_EPARSE, "t.yaml:3:4", "the file is not valid UTF-8"},
    };
    (void)state;
    run_errors(cases, SH_ARRAY_LEN(cases));
}

static void test_manifest__tabs_in_indentation_are_named(void **state)
{
    static const struct err_case cases[] = {
        {"a:\n\tb: 1\n", SH_EPARSE, "t.yaml:2:1",
         "a tab is used for indentation; YAML allows only spaces"},
        {"\ta: 1\n", SH_EPARSE, "t.yaml:1:1",
         "a tab is used for indentation; YAML allows only spaces"},
        {"- a\n-\tb\n", SH_EPARSE, "t.yaml:2:2",
         "a tab is used for indentation; YAML allows only spaces"},
    };
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    run_errors(cases, SH_ARRAY_LEN(cases));
    /* A tab after "key:" separates, it does not indent: fine. */
    assert_int_equal(read_str("a:\t1\n", &doc, &d), 0);
    expect_scalar(sh_node_get(doc->root, "a"), "1", false);
    sh_doc_free(doc);
}

static void test_manifest__duplicate_keys_name_both_positions(void **state)
{
    static const struct err_case cases[] = {
        {"a: 1\nb: 2\na: 3\n", SH_EPARSE, "t.yaml:3:1",
         "duplicate key 'a' (already set at line 1, column 1)"},
        {"web:\n  port: 1\n  image: x\n  port: 2\n", SH_EPARSE, "t.yaml:4:3",
         "duplicate key 'port' (already set at line 2, column 3)"},
        {"{a: 1, b: 2, 'a': 3}\n", SH_EPARSE, "t.yaml:1:14",
         "duplicate key 'a' (already set at line 1, column 2)"},
        /* The same key in different maps is fine; here the outer map repeats "x". */
        {"x: {x: 1, y: {x: 2}}\nx: 2\n", SH_EPARSE, "t.yaml:2:1",
         "duplicate key 'x' (already set at line 1, column 1)"},
    };
    struct buf big = BUF_INIT(0);
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    run_errors(cases, SH_ARRAY_LEN(cases));

    /* A big map goes through the sorted path; the earliest second occurrence is reported. */
    for (int i = 0; i < 40; i++)
        assert_int_equal(buf_appendf(&big, "key%d: %d\n", i, i), 0);
    assert_int_equal(buf_appendf(&big, "key30: again\nkey7: again\nkey7: thrice\n"), 0);
    assert_int_equal(manifest_read_buf("big.yaml", big.data, big.len, &doc, &d), SH_EPARSE);
    assert_string_equal(d.where, "big.yaml:41:1");
    assert_string_equal(d.what, "duplicate key 'key30' (already set at line 31, column 1)");
    buf_reset(&big);
    for (int i = 0; i < 40; i++)
        assert_int_equal(buf_appendf(&big, "key%d: %d\n", i, i), 0);
    assert_int_equal(manifest_read_buf("big.yaml", big.data, big.len, &doc, &d), 0);
    assert_int_equal(doc->root->count, 40);
    sh_doc_free(doc);
    buf_release(&big);
}

static void test_manifest__rejected_constructs_say_why(void **state)
{
    static const struct err_case cases[] = {
        {"base: &b {x: 1}\nweb: *b\n", SH_EPARSE, "t.yaml:1:7",
         "anchors and aliases (&b, *name) are not supported; write the value out in full"},
        {"web: *b\n", SH_EPARSE, "t.yaml:1:6",
         "anchors and aliases (&name, *b) are not supported; write the value out in full"},
        {"a: 1\n---\nb: 2\n", SH_EPARSE, "t.yaml:2:1",
         "a second YAML document starts here; the file must hold one"},
        {"a: 1\n...\nb: 2\n", SH_EPARSE, "t.yaml:3:1",
         "content after the end of the document ('...'); the file must hold one document"},
        {"x: !!int 1\n", SH_EPARSE, "t.yaml:1:4", "tag '!!int' is not supported"},
        {"x: !custom 1\n", SH_EPARSE, "t.yaml:1:4", "tag '!custom' is not supported"},
        {"x: !!map [1]\n", SH_EPARSE, "t.yaml:1:4", "tag '!!map' is not supported"},
        {"? [a]\n: 1\n", SH_EPARSE, "t.yaml:1:3", "a map key must be a single value, not a list"},
        {"? {a: 1}\n: 1\n", SH_EPARSE, "t.yaml:1:3", "a map key must be a single value, not a map"},
        {"\"\": 1\n", SH_EPARSE, "t.yaml:1:1", "a map key is empty"},
        {"?\n: 1\n", SH_EPARSE, "t.yaml:1:2", "a map key is empty"},
    };
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    (void)state;

    run_errors(cases, SH_ARRAY_LEN(cases));
    /* The core tags of the right kind are accepted. */
    assert_int_equal(read_str("x: !!map {a: !!seq [1]}\n", &doc, &d), 0);
    sh_doc_free(doc);
}

static void test_manifest__unknown_key_is_reported_where_written(void **state)
{
    static const char text[] = "routes:\n"
                               "  - path: /api\n"
                               "    upstream: api\n"
                               "  - path: /web\n"
                               "    upstream: web\n"
                               "    tmeout: 5s\n";
    static const char *const route_keys[] = {"path", "upstream", "timeout", NULL};
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    const struct sh_node *routes;
    char path[32];
    int rc = 0;
    (void)state;

    assert_int_equal(manifest_read_buf("gateway.yaml", text, strlen(text), &doc, &d), 0);
    routes = sh_node_get(doc->root, "routes");
    assert_int_equal(sh_node_expect(routes, SH_NODE_SEQ, "routes", &d), 0);
    for (size_t i = 0; i < routes->count && rc == 0; i++) {
        snprintf(path, sizeof(path), "routes[%zu]", i);
        rc = sh_node_check_keys(routes->items[i], route_keys, path, &d);
    }
    assert_int_equal(rc, SH_EPARSE);
    assert_string_equal(d.where, "gateway.yaml:6:5");
    assert_string_equal(d.what, "routes[1]: unknown key 'tmeout' (did you mean 'timeout'?)");
    sh_doc_free(doc);
}

static void test_manifest__limits_are_errors(void **state)
{
    struct buf b = BUF_INIT(0);
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    char *text;
    int i;
    (void)state;

    /* Size: one byte over 4 MiB. */
    text = sh_malloc(MANIFEST_MAX_BYTES + 1);
    assert_non_null(text);
    memset(text, '#', MANIFEST_MAX_BYTES + 1);
    assert_int_equal(manifest_read_buf("huge.yaml", text, MANIFEST_MAX_BYTES + 1, &doc, &d),
                     SH_ETOOBIG);
    assert_null(doc);
    assert_string_equal(d.where, "huge.yaml");
    assert_string_equal(d.what, "the file is 4194305 bytes; the limit is 4194304 (4 MiB)");
    /* Exactly 4 MiB of comment is fine. */
    assert_int_equal(manifest_read_buf("huge.yaml", text, MANIFEST_MAX_BYTES, &doc, &d), 0);
    sh_doc_free(doc);
    sh_free(text);

    /* Depth: 64 nested lists are fine, 65 are not, in flow and in block style. */
    for (i = 0; i < MANIFEST_MAX_DEPTH; i++)
        assert_int_equal(buf_appendc(&b, '['), 0);
    for (i = 0; i < MANIFEST_MAX_DEPTH; i++)
        assert_int_equal(buf_appendc(&b, ']'), 0);
    assert_int_equal(manifest_read_buf("deep.yaml", b.data, b.len, &doc, &d), 0);
    sh_doc_free(doc);
    buf_reset(&b);
    for (i = 0; i < MANIFEST_MAX_DEPTH + 1; i++)
        assert_int_equal(buf_appendc(&b, '['), 0);
    assert_int_equal(manifest_read_buf("deep.yaml", b.data, b.len, &doc, &d), SH_ETOOBIG);
    assert_string_equal(d.where, "deep.yaml:1:65");
    assert_string_equal(d.what, "maps and lists are nested more than 64 levels deep (the limit)");
    buf_reset(&b);
    for (i = 0; i < MANIFEST_MAX_DEPTH + 1; i++)
        assert_int_equal(buf_appendf(&b, "%*sk:\n", i, ""), 0);
    assert_int_equal(buf_appendf(&b, "%*sv: 1\n", i, ""), 0);
    assert_int_equal(manifest_read_buf("deep.yaml", b.data, b.len, &doc, &d), SH_ETOOBIG);
    assert_string_equal(d.where, "deep.yaml:65:65");
    /* A deep flood of brackets stops at the limit, whatever follows. */
    buf_reset(&b);
    for (i = 0; i < 100000; i++)
        assert_int_equal(buf_appendc(&b, '['), 0);
    assert_int_equal(manifest_read_buf("deep.yaml", b.data, b.len, &doc, &d), SH_ETOOBIG);

    /* Nodes: a list of 99,999 items plus the list itself is the limit. */
    buf_reset(&b);
    assert_int_equal(buf_appendc(&b, '['), 0);
    for (i = 0; i < MANIFEST_MAX_NODES - 1; i++)
        assert_int_equal(buf_append(&b, "0,", 2), 0);
    assert_int_equal(buf_appendc(&b, ']'), 0);
    assert_int_equal(manifest_read_buf("many.yaml", b.data, b.len, &doc, &d), 0);
    assert_int_equal(doc->root->count, MANIFEST_MAX_NODES - 1);
    sh_doc_free(doc);
    b.len -= 1;
    assert_int_equal(buf_append(&b, "0]", 2), 0);
    assert_int_equal(manifest_read_buf("many.yaml", b.data, b.len, &doc, &d), SH_ETOOBIG);
    assert_string_equal(d.where, "many.yaml:1:200000");
    assert_string_equal(d.what, "the document has more than 100000 values (the limit)");
    buf_release(&b);
}

static void test_manifest__reads_files(void **state)
{
    char path[] = "/tmp/shoal-test-manifest-XXXXXX";
    static const char text[] = "services:\n  web:\n    port: 80\n";
    struct sh_doc *doc;
    struct sh_diag d = {{0}, {0}};
    int fd;
    (void)state;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(manifest_read_file(path, &doc, &d), 0);
    assert_string_equal(doc->file, path);
    expect_scalar(sh_node_get(sh_node_get(sh_node_get(doc->root, "services"), "web"), "port"), "80",
                  false);
    sh_doc_free(doc);

    /* Over the limit, found from the file's size before reading. */
    assert_int_equal(truncate(path, MANIFEST_MAX_BYTES + 1), 0);
    assert_int_equal(manifest_read_file(path, &doc, &d), SH_ETOOBIG);
    assert_null(doc);
    assert_string_equal(d.where, path);
    assert_string_equal(d.what, "the file is larger than 4194304 bytes (4 MiB), the limit");
    unlink(path);

    assert_int_equal(manifest_read_file(path, &doc, &d), SH_ENOENT);
    assert_null(doc);
    assert_string_equal(d.where, path);
    assert_string_equal(d.what, "cannot read the file: no such entry");
    assert_int_equal(manifest_read_file("/tmp", &doc, &d), -EISDIR);
    assert_string_equal(d.where, "/tmp");
    /* Syntax errors carry the path. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a: [\n", 5), 5);
    close(fd);
    assert_int_equal(manifest_read_file(path, &doc, &d), SH_EPARSE);
    assert_int_equal(strncmp(d.where, path, strlen(path)), 0);
    assert_string_equal(d.where + strlen(path), ":2:1");
    unlink(path);
}

/* Reads a small document with allocation n failing, for every n until it succeeds: each
 * failure must be SH_ENOMEM, with no doc and no leak. */
static void test_manifest__out_of_memory_torture(void **state)
{
    static const char text[] = "gateway:\n"
                               "  listen: 127.0.0.1:8080\n"
                               "routes:\n"
                               "  - {path: /api, upstream: api, retries: [1, 2, 3, 4, 5, 6]}\n"
                               "  - path: /web\n"
                               "    upstream: web\n"
                               "big: {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, "
                               "k8: 8, k9: 9, k10: 10, k11: 11, k12: 12, k13: 13, k14: 14, "
                               "k15: 15, k16: 16, k17: 17}\n";
    long n, failures = 0;
    (void)state;

    for (n = 1; n < 10000; n++) {
        struct sh_doc *doc = (struct sh_doc *)&doc;
        struct sh_diag d = {{0}, {0}};
        int rc;

        sh_alloc_fail_after(n);
        rc = manifest_read_buf("oom.yaml", text, strlen(text), &doc, &d);
        sh_alloc_fail_after(0);
        if (rc == 0) {
            assert_non_null(doc);
            assert_int_equal(doc->root->kind, SH_NODE_MAP);
            sh_doc_free(doc);
            break;
        }
        failures++;
        if (rc != SH_ENOMEM)
            fail_msg("allocation %ld failed: got %s (%s: %s)", n, sh_errname(rc), d.where, d.what);
        assert_null(doc);
        assert_string_equal(d.where, "oom.yaml");
        assert_string_equal(d.what, "out of memory while reading the file");
        assert_int_equal(sh_alloc_live(), test_live_at_start);
    }
    assert_true(n < 10000);
    assert_true(failures >= 3); /* the doc, its name, an arena block and the sort array */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SH_TEST(test_manifest__builds_nested_maps_and_lists),
        SH_TEST(test_manifest__quoting_keeps_strings_strings),
        SH_TEST(test_manifest__flow_style_and_crlf),
        SH_TEST(test_manifest__empty_and_comment_only_files_give_a_null_root),
        SH_TEST(test_manifest__syntax_errors_have_exact_positions),
        SH_TEST(test_manifest__tabs_in_indentation_are_named),
        SH_TEST(test_manifest__duplicate_keys_name_both_positions),
        SH_TEST(test_manifest__rejected_constructs_say_why),
        SH_TEST(test_manifest__unknown_key_is_reported_where_written),
        SH_TEST(test_manifest__limits_are_errors),
        SH_TEST(test_manifest__reads_files),
        SH_TEST(test_manifest__out_of_memory_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
