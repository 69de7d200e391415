/* SPDX-License-Identifier: MIT */
/* schema.c: a MAP read into a C struct by a table of fields (core.h, "Schema reader"). The
 * typed readers of doc.c do the parsing; this file walks the table, checks the keys and the
 * limits, and builds the path each error names. */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

static int read_field(const struct sh_field *f, const struct sh_node *v, const char *path,
                      void *obj, void *ctx, struct sh_diag *d)
{
    void *field = (char *)obj + f->offset;
    uint64_t u, max;
    double ratio;

    switch (f->kind) {
    case SH_FIELD_U32:
        SH_TRY(sh_node_u64(v, path, f->min, f->max ? f->max : UINT32_MAX, &u, d));
        *(uint32_t *)field = (uint32_t)u;
        return 0;
    case SH_FIELD_MS:
        SH_TRY(sh_node_duration_ms(v, path, &u, d));
        max = f->max ? f->max : UINT32_MAX;
        if (u > max)
            return sh_node_fail(d, v, path, "duration too long (at most %llu ms)",
                                (unsigned long long)max);
        if (u < f->min)
            return sh_node_fail(d, v, path, "duration too short (at least %llu ms)",
                                (unsigned long long)f->min);
        *(uint32_t *)field = (uint32_t)u;
        return 0;
    case SH_FIELD_SIZE:
        SH_TRY(sh_node_size(v, path, &u, d));
        max = f->max ? f->max : UINT32_MAX;
        if (u > max || u < f->min)
            return sh_node_fail(d, v, path, "%llu bytes is out of range (%llu..%llu)",
                                (unsigned long long)u, (unsigned long long)f->min,
                                (unsigned long long)max);
        *(uint32_t *)field = (uint32_t)u;
        return 0;
    case SH_FIELD_RATIO:
        return sh_node_ratio(v, path, (double *)field, d);
    case SH_FIELD_PERCENT:
        if (v->kind == SH_NODE_SCALAR && !v->is_quoted && v->len > 0 &&
            v->text[v->len - 1] != '%') {
            SH_TRY(sh_node_u64(v, path, 0, 100, &u, d));
            *(uint32_t *)field = (uint32_t)u;
            return 0;
        }
        SH_TRY(sh_node_ratio(v, path, &ratio, d));
        *(uint32_t *)field = (uint32_t)(ratio * 100.0 + 0.5);
        return 0;
    case SH_FIELD_BOOL:
        return sh_node_bool(v, path, (bool *)field, d);
    case SH_FIELD_STR:
        return sh_node_str(v, path, (const char **)field, d);
    case SH_FIELD_MAP:
        return sh_schema_read(f->sub, v, path, field, ctx, d);
    case SH_FIELD_FN:
        return f->read(v, path, field, ctx, d);
    }
    return sh_node_fail(d, v, path, "internal: unknown field kind %d", (int)f->kind);
}

int sh_schema_read(const struct sh_schema *s, const struct sh_node *map, const char *path,
                   void *obj, void *ctx, struct sh_diag *d)
{
    const char *keys[SH_SCHEMA_MAX_FIELDS + 1];
    const char *base = sh_node_path(map, path);
    char fpath[256];

    if (s->count > SH_SCHEMA_MAX_FIELDS)
        return sh_node_fail(d, map, base, "internal: a schema of %zu fields", s->count);
    for (size_t i = 0; i < s->count; i++)
        keys[i] = s->fields[i].name;
    keys[s->count] = NULL;
    SH_TRY(sh_node_check_keys(map, keys, base, d));
    for (size_t i = 0; i < s->count; i++) {
        const struct sh_field *f = &s->fields[i];
        const struct sh_node *v = sh_node_get(map, f->name);

        if (!v) continue;
        snprintf(fpath, sizeof(fpath), "%s%s%s", base, base[0] ? "." : "", f->name);
        SH_TRY(read_field(f, v, sh_node_path(v, fpath), obj, ctx, d));
    }
    return s->check ? s->check(map, base, obj, ctx, d) : 0;
}
