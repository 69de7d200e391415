/* SPDX-License-Identifier: MIT */
/* env.c: "${NAME}" references in the values of a service's env (supervisor.h, "Environment
 * of an instance"): the one expander, used by the manifest's checks (every name known, at
 * shoal check time) and by the process layer when it builds an instance's environment.
 * Keeps no state; any thread. */
#include "supervisor/supervisor.h"

#include <string.h>

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

int sup_env_expand(struct slice tmpl, sup_env_lookup_fn *lookup, void *data, struct buf *out,
                   struct sh_diag *d)
{
    size_t i = 0, start = 0;

    while (i < tmpl.len) {
        struct slice name;
        const char *value;
        size_t q;
        bool brace;

        if (tmpl.ptr[i] != '$') {
            i++;
            continue;
        }
        buf_append(out, tmpl.ptr + start, i - start);
        if (i + 1 < tmpl.len && tmpl.ptr[i + 1] == '$') { /* $$ is one '$' */
            buf_appendc(out, '$');
            i += 2;
            start = i;
            continue;
        }
        brace = i + 1 < tmpl.len && tmpl.ptr[i + 1] == '{';
        q = i + 1 + brace;
        if (q >= tmpl.len || !name_start(tmpl.ptr[q])) {
            if (d)
                sh_diag_set(d, "",
                            "'$' must start a variable (${NAME} or $NAME); write $$ for a "
                            "'$'");
            return SH_EPARSE;
        }
        name.ptr = tmpl.ptr + q;
        while (q < tmpl.len && name_char(tmpl.ptr[q]))
            q++;
        name.len = (size_t)(tmpl.ptr + q - name.ptr);
        if (brace && (q >= tmpl.len || tmpl.ptr[q] != '}')) {
            if (d)
                sh_diag_set(d, "", "'${%.*s' without its closing '}'", (int)SH_MIN(name.len, 64),
                            name.ptr);
            return SH_EPARSE;
        }
        value = lookup(data, name);
        if (!value) {
            if (d)
                sh_diag_set(d, "", "unknown variable '%.*s'", (int)SH_MIN(name.len, 64), name.ptr);
            return SH_ENOENT;
        }
        buf_appends(out, slice_from_cstr(value));
        i = q + brace;
        start = i;
    }
    buf_append(out, tmpl.ptr + start, tmpl.len - start);
    if (out->err && d)
        sh_diag_set(d, "", "%s",
                    out->err == SH_ETOOBIG ? "too long once expanded" : sh_strerror(out->err));
    return out->err;
}
