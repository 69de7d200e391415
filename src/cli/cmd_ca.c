/* SPDX-License-Identifier: MIT */
/* cmd_ca.c: `shoal ca show|rotate`: the control plane's CA (docs/security.md). */
#include "cli/cli.h"
#include "cli/cli_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *iso(const json_t *o, const char *key, char *out, size_t n)
{
    json_int_t ms = json_integer_value(json_object_get(o, key));
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, n, "-");
    return out;
}

/* The CA as a table: one block per generation, newest first. */
static void print_ca(const json_t *o)
{
    json_t *cas = json_object_get(o, "cas"), *e;
    char t1[32], t2[32], t3[32];
    size_t i;

    printf("trust domain  %s%s\n", cli__str_of(o, "trust_domain"),
           json_is_true(json_object_get(o, "external")) ? "  (external CA)" : "");
    printf("identities    spiffe://%s/service/<name>\n", cli__str_of(o, "trust_domain"));
    printf("cert ttl      %llds\n",
           (long long)json_integer_value(json_object_get(o, "cert_ttl_ms")) / 1000);
    json_array_foreach(cas, i, e)
    {
        printf("\nCA %lld  %s\n", (long long)json_integer_value(json_object_get(e, "gen")),
               cli__str_of(e, "state"));
        printf("  subject      %s\n", cli__str_of(e, "subject"));
        printf("  not before   %s\n", iso(e, "not_before_ms", t1, sizeof(t1)));
        printf("  not after    %s\n", iso(e, "not_after_ms", t2, sizeof(t2)));
        if (json_object_get(e, "retire_at_ms"))
            printf("  leaves the bundle at %s\n", iso(e, "retire_at_ms", t3, sizeof(t3)));
        printf("  serial       %s\n", cli__str_of(e, "serial"));
        printf("  sha256       %s\n", cli__str_of(e, "fingerprint_sha256"));
    }
}

static int ca_call(const char *method, const char *path, bool json_out, const char *what)
{
    struct cli_call c;
    json_t *o;

    if (cli__api(method, path, SLICE(""), 30000, &c)) return 1;
    if (c.status != 200) return cli__api_error(what, &c);
    if (json_out) {
        fwrite(c.body.data ? c.body.data : "", 1, c.body.len, stdout);
        buf_release(&c.body);
        return 0;
    }
    o = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
    buf_release(&c.body);
    if (!o) {
        fprintf(stderr, "shoal: the control plane's answer is not JSON\n");
        return 1;
    }
    print_ca(o);
    json_decref(o);
    return 0;
}

int cli_cmd_ca(int argc, char **argv)
{
    const struct cli_command *cmd = cli_find("ca");
    const char *sub = argc > 1 ? argv[1] : NULL;
    bool json_out = false;

    if (!sub) return cli_usage_error(cmd, "missing subcommand (show, rotate)");
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json_out = true;
        else
            return cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
    }
    json_set_alloc_funcs(sh_malloc, sh_free);
    if (!strcmp(sub, "show")) return ca_call("GET", "/v1/ca", json_out, "ca show");
    if (!strcmp(sub, "rotate")) {
        int rc = ca_call("POST", "/v1/ca/rotate", json_out, "ca rotate");
        if (rc == 0)
            fprintf(stderr, "the CA was rotated: new certificates come from the new CA; the old "
                            "one stays in the bundle until its last certificate expires\n");
        return rc;
    }
    return cli_usage_error(cmd, "unknown subcommand '%s' (show, rotate)", sub);
}
