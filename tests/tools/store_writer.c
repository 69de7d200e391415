/* SPDX-License-Identifier: MIT */
/* store_writer.c: the crash test's writer and checker (tests/integ/test_store_crash.sh).
 *   store_writer write DIR START COUNT   puts k<i> = v<i>-<pad> for i in [START, START+COUNT),
 *                                        printing "k<i>" on stdout (flushed) after each put returns
 *   store_writer verify DIR FILE         checks that every key listed in FILE (one a line; a last
 *                                        line without its newline is ignored: it may be half
 *                                        written) is in the store with its value
 * Exit status: 0, or 1 with a message on stderr. */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int value_for(const char *key, char *out, size_t n)
{
    /* Values of a few hundred bytes, different per key, so a torn or misplaced write shows. */
    int len = snprintf(out, n, "v%s-", key);
    while ((size_t)len + 1 < n && len < 300) {
        out[len] = (char)('a' + (len * 7 + (int)strlen(key)) % 26);
        len++;
    }
    out[len] = '\0';
    return len;
}

static int fail(const char *what, struct store *st, int rc)
{
    fprintf(stderr, "store_writer: %s: %s (%s)\n", what, sh_strerror(rc),
            st ? store_errmsg(st) : "");
    store_close(st);
    return 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
    return slice_to_u64(slice_from_cstr(s), out);
}

int main(int argc, char **argv)
{
    struct store *st = NULL;
    struct sh_diag d = {{0}, {0}};
    char key[32], val[512];
    int rc;

    sh_log_setup(SH_WARN, SH_LOG_AUTO, 2);
    if (argc < 4 || (strcmp(argv[1], "write") != 0 && strcmp(argv[1], "verify") != 0)) {
        fprintf(stderr, "usage: store_writer write DIR START COUNT | verify DIR FILE\n");
        return 2;
    }
    rc = store_open(&(struct store_config){.data_dir = argv[2]}, &st, &d);
    if (rc < 0) {
        fprintf(stderr, "store_writer: %s: %s\n", d.where, d.what);
        return 1;
    }
    if (strcmp(argv[1], "write") == 0) {
        uint64_t start, count;
        if (argc != 5 || parse_u64(argv[3], &start) != 0 || parse_u64(argv[4], &count) != 0)
            return fail("bad START or COUNT", st, SH_EINVAL);
        for (uint64_t i = start; i < start + count; i++) {
            snprintf(key, sizeof(key), "k%llu", (unsigned long long)i);
            int n = value_for(key, val, sizeof(val));
            rc = store_put(st, slice_from_cstr(key), (struct slice){val, (size_t)n}, 0, NULL);
            if (rc < 0) return fail("put", st, rc);
            /* Acknowledged: the put returned after its commit. */
            printf("%s\n", key);
            fflush(stdout);
        }
        store_close(st);
        return 0;
    }

    FILE *f = fopen(argv[3], "r");
    char line[64];
    long checked = 0;
    if (!f) return fail("cannot open the acknowledged list", st, SH_ENOENT);
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        struct store_result res;
        if (!len || line[len - 1] != '\n')
            break; /* a half-printed last line was never acknowledged in full */
        line[len - 1] = '\0';
        int n = value_for(line, val, sizeof(val));
        rc = store_get(st, slice_from_cstr(line), &res);
        if (rc < 0) {
            fprintf(stderr, "store_writer: acknowledged key %s: %s\n", line, sh_strerror(rc));
            fclose(f);
            store_result_release(&res);
            store_close(st);
            return 1;
        }
        if (res.kvs[0].value.len != (size_t)n || memcmp(res.kvs[0].value.ptr, val, (size_t)n)) {
            fprintf(stderr, "store_writer: acknowledged key %s has the wrong value\n", line);
            fclose(f);
            store_result_release(&res);
            store_close(st);
            return 1;
        }
        store_result_release(&res);
        checked++;
    }
    fclose(f);
    printf("verified %ld acknowledged keys; store revision %lld\n", checked,
           (long long)store_revision(st));
    store_close(st);
    return 0;
}
