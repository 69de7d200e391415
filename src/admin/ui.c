/* SPDX-License-Identifier: MIT */
/* ui.c: the dashboard on the admin listener: its assets (compiled into the binary, see
 * ui_assets.c in the build tree), served with a strict Content-Security-Policy, ETags and
 * gzip; and its login: POST /ui/login trades a token for an HttpOnly, SameSite=Strict cookie
 * naming a server-side session (ui_session.c), GET /ui/session gives the page its CSRF value,
 * POST /ui/logout ends the session. docs/dashboard.md. */
#include "admin/admin.h"
#include "admin/admin_int.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* No inline script or style, nothing from elsewhere: the page runs app.js and app.css only. */
#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "                   \
    "frame-ancestors 'none'"

static const struct admin_ui_asset *asset_named(const char *name)
{
    for (size_t i = 0; i < admin_ui_nassets; i++)
        if (strcmp(admin_ui_assets[i].name, name) == 0) return &admin_ui_assets[i];
    return NULL;
}

/* Whether an If-None-Match header names <etag> (a list, or *). */
static bool etag_matches(const struct http_head *h, const char *etag)
{
    struct slice v, rest, item;

    if (!http_head_get(h, SLICE("if-none-match"), &v)) return false;
    if (slice_eq(slice_trim(v), SLICE("*"))) return true;
    rest = v;
    while (rest.ptr && rest.len) {
        rest = slice_split(rest, ',', &item);
        item = slice_trim(item);
        if (slice_starts_with(item, SLICE("W/"))) item = (struct slice){item.ptr + 2, item.len - 2};
        if (slice_eq(item, slice_from_cstr(etag))) return true;
    }
    return false;
}

static bool accepts_gzip(const struct http_head *h)
{
    struct slice v, rest, item, name;

    if (!http_head_get(h, SLICE("accept-encoding"), &v)) return false;
    rest = v;
    while (rest.ptr && rest.len) {
        rest = slice_split(rest, ',', &item);
        struct slice params = slice_split(slice_trim(item), ';', &name);
        if (!slice_eq_nocase(slice_trim(name), SLICE("gzip"))) continue;
        /* "gzip;q=0" refuses it */
        return !(params.ptr && slice_eq(slice_trim(params), SLICE("q=0")));
    }
    return false;
}

/* GET /ui/ (index.html), /ui/app.js, /ui/app.css. */
void admin__ui_asset(struct admin_req *r)
{
    const char *name = r->rest && *r->rest ? r->rest : "index.html";
    const struct admin_ui_asset *as = asset_named(name);
    struct http_out_field f[8];
    size_t n = 0;

    if (!as) {
        admin__reply_error(r, 404, "path", "no such dashboard file");
        return;
    }
    f[n++] = (struct http_out_field){SLICE("Content-Security-Policy"), SLICE(UI_CSP)};
    f[n++] = (struct http_out_field){SLICE("X-Content-Type-Options"), SLICE("nosniff")};
    f[n++] = (struct http_out_field){SLICE("Referrer-Policy"), SLICE("no-referrer")};
    f[n++] = (struct http_out_field){SLICE("X-Frame-Options"), SLICE("DENY")};
    /* the names are not hashed: revalidate each time (a 304 costs one loopback round trip) */
    f[n++] = (struct http_out_field){SLICE("Cache-Control"), SLICE("no-cache")};
    f[n++] = (struct http_out_field){SLICE("ETag"), slice_from_cstr(as->etag)};
    f[n++] = (struct http_out_field){SLICE("Vary"), SLICE("Accept-Encoding")};
    if (etag_matches(r->h, as->etag)) {
        admin__reply_fields(r, 304, as->ctype, f, n, SLICE(""));
        return;
    }
    if (as->gz && accepts_gzip(r->h)) {
        f[n++] = (struct http_out_field){SLICE("Content-Encoding"), SLICE("gzip")};
        admin__reply_fields(r, 200, as->ctype, f, n,
                            (struct slice){(const char *)as->gz, as->gz_len});
        return;
    }
    admin__reply_fields(r, 200, as->ctype, f, n, (struct slice){(const char *)as->data, as->len});
}

/* GET /ui: the page lives at /ui/ (its relative asset links need the slash). */
void admin__ui_redirect(struct admin_req *r)
{
    struct http_out_field f[] = {{SLICE("Location"), SLICE("/ui/")}};

    admin__reply_fields(r, 301, "text/plain", f, SH_ARRAY_LEN(f), SLICE("/ui/\n"));
}

static json_t *session_json(const struct sec_token *t, const struct admin_session *s)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "id", t->id, "scope",
                          sec_scope_name(t->scope), "prefix", t->prefix, "name", t->name, "csrf",
                          s->csrf, "session_expires_ms", (json_int_t)s->expires_ms);
    if (o && t->expires_ms)
        json_object_set_new(o, "expires_ms", json_integer((json_int_t)t->expires_ms));
    return o;
}

/* POST /ui/login {"token": "..."}: 200 with the token's description and the CSRF value, and
 * the cookie; 400 without a token, 401/403 as the API answers a bad token. */
void admin__ui_login(struct admin_req *r)
{
    json_t *body = admin__body_json(r, JSON_OBJECT), *tv;
    const struct sec_token *t;
    const struct admin_session *s;
    uint8_t rnd[ADMIN_SESSION_RANDOM_BYTES];
    uint64_t now = sh_wall_ms();
    char cookie[160], what[96];

    if (!body) return;
    tv = json_object_get(body, "token");
    if (!json_is_string(tv) || json_string_length(tv) == 0) {
        json_decref(body);
        admin__reply_error(r, 400, "token", "expected the API token as a string");
        return;
    }
    if (json_string_length(tv) > SH_TOKEN_MAX_LEN) {
        json_decref(body);
        snprintf(what, sizeof(what), "the token is longer than %d characters", SH_TOKEN_MAX_LEN);
        admin__reply_error(r, 401, "token", what);
        return;
    }
    t = sec_tokens_verify(r->a->cfg.tokens,
                          (struct slice){json_string_value(tv), json_string_length(tv)});
    json_decref(body);
    if (!t) {
        admin__reply_error(r, 403, "token", "the token is not valid (unknown or revoked)");
        return;
    }
    if (t->expires_ms && t->expires_ms <= now) {
        snprintf(what, sizeof(what), "the token %s has expired", t->id);
        admin__reply_error(r, 401, "token", what);
        return;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        admin__reply_error(r, 500, NULL, "no randomness for a session");
        return;
    }
    s = admin__session_add(&r->a->sessions, t->id, t->expires_ms, rnd, now);
    snprintf(cookie, sizeof(cookie),
             "shoal_session=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%llu", s->sid,
             (unsigned long long)((s->expires_ms - now) / 1000));
    json_t *o = session_json(t, s);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        admin__reply_error(r, 500, NULL, "out of memory");
        return;
    }
    struct http_out_field f[] = {{SLICE("Set-Cookie"), slice_from_cstr(cookie)},
                                 {SLICE("Cache-Control"), SLICE("no-store")}};
    admin__reply_fields(r, 200, "application/json", f, SH_ARRAY_LEN(f), slice_from_cstr(text));
    sh_free(text);
}

/* The live session the request's cookie names, or NULL (after answering 401 unless quiet). */
static const struct admin_session *cookie_session(struct admin_req *r, struct slice *sid,
                                                  bool is_quiet)
{
    struct slice v;
    const struct admin_session *s = NULL;

    *sid = SLICE_NULL;
    if (http_head_get(r->h, SLICE("cookie"), &v) &&
        admin__cookie_get(v, SLICE("shoal_session"), sid))
        s = admin__session_find(&r->a->sessions, *sid, sh_wall_ms());
    if (!s && !is_quiet) admin__reply_error(r, 401, "session", "no dashboard session; log in");
    return s;
}

/* GET /ui/session: what the page needs after a reload (the cookie is HttpOnly): the token's
 * description and the CSRF value; {"logged_in": false} without a live session. Another site's
 * page cannot read this answer. */
void admin__ui_session(struct admin_req *r)
{
    struct slice sid;
    const struct admin_session *s = cookie_session(r, &sid, true);
    size_t count = 0;
    const struct sec_token *all;

    if (!s) { /* not an error for the page: it shows the login form (and no console error) */
        admin__reply_raw(r, 200, "application/json", SLICE("{\"logged_in\":false}\n"), 0);
        return;
    }
    all = sec_tokens_list(r->a->cfg.tokens, &count);
    for (size_t i = 0; i < count; i++)
        if (strcmp(all[i].id, s->token_id) == 0) {
            struct http_out_field f[] = {{SLICE("Cache-Control"), SLICE("no-store")}};
            json_t *o = session_json(&all[i], s);
            char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            if (!text) {
                admin__reply_error(r, 500, NULL, "out of memory");
                return;
            }
            admin__reply_fields(r, 200, "application/json", f, SH_ARRAY_LEN(f),
                                slice_from_cstr(text));
            sh_free(text);
            return;
        }
    admin__session_remove(&r->a->sessions, sid);
    admin__reply_error(r, 401, "session", "the session's token was revoked; log in again");
}

/* POST /ui/logout (with X-Shoal-CSRF): the session ends here and the cookie is cleared. */
void admin__ui_logout(struct admin_req *r)
{
    struct slice sid, csrf = SLICE_NULL;
    const struct admin_session *s = cookie_session(r, &sid, false);

    if (!s) return;
    if (!http_head_get(r->h, SLICE("x-shoal-csrf"), &csrf) ||
        !admin__session_csrf_ok(s, slice_trim(csrf))) {
        admin__reply_error(r, 403, "X-Shoal-CSRF",
                           "logout needs the session's X-Shoal-CSRF header");
        return;
    }
    admin__session_remove(&r->a->sessions, sid);
    struct http_out_field f[] = {
        {SLICE("Set-Cookie"),
         SLICE("shoal_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")}};
    admin__reply_fields(r, 200, "application/json", f, SH_ARRAY_LEN(f),
                        SLICE("{\"logged_out\":true}\n"));
}
