/* SPDX-License-Identifier: MIT */
/* write.c: serialising heads and chunks, hop-by-hop rules, addresses. */
#include "http/http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const hop_by_hop[] = {
    "connection", "keep-alive",         "proxy-connection",    "te", "transfer-encoding", "upgrade",
    "trailer",    "proxy-authenticate", "proxy-authorization",
};

bool http_is_hop_by_hop(const struct http_head *h, struct slice name)
{
    /* the names are 2, 7, 10 and 16 to 19 bytes long: most fields fail the length test */
    switch (name.len) {
    case 2:
    case 7:
    case 10:
    case 16:
    case 17:
    case 18:
    case 19:
        for (size_t i = 0; i < SH_ARRAY_LEN(hop_by_hop); i++) {
            if (slice_eq_nocase(name, slice_from_cstr(hop_by_hop[i]))) return true;
        }
        break;
    default:
        break;
    }
    if (h && (h->flags & HTTP_F_CONN_OTHER))
        return http_head_has_token(h, SLICE("connection"), name);
    return false;
}

int http_write_status_line(struct buf *out, int status, const char *reason)
{
    char line[16] = "HTTP/1.1 000 ";

    if (!reason || !*reason) reason = http_reason(status);
    if (status < 100 || status > 999) status = 500;
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    buf_append(out, line, 13);
    buf_appends(out, slice_from_cstr(reason));
    return buf_append(out, "\r\n", 2);
}

int http_write_field(struct buf *out, struct slice name, struct slice value)
{
    size_t n = name.len + value.len + 4;
    int rc = buf_reserve(out, n); /* one reservation, then plain copies */

    if (rc) return rc;
    char *p = out->data + out->len;
    memcpy(p, name.ptr, name.len);
    p += name.len;
    *p++ = ':';
    *p++ = ' ';
    if (value.len) memcpy(p, value.ptr, value.len);
    p += value.len;
    *p++ = '\r';
    *p++ = '\n';
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

int http_write_chunk(struct buf *out, const void *p, size_t n)
{
    if (n == 0) return out->err;
    buf_append_hex(out, n);
    buf_append(out, "\r\n", 2);
    buf_append(out, p, n);
    return buf_append(out, "\r\n", 2);
}

const char *http_date_now(void)
{
    static _Thread_local char text[40];
    static _Thread_local time_t cached;
    time_t now = time(NULL);
    struct tm tm;

    if (now != cached || !text[0]) {
        cached = now;
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return text;
}

int http_parse_addr(const char *text, struct sockaddr_storage *out, struct sh_diag *d)
{
    return sh_addr_parse(text, out, d);
}

char *http_format_addr(const struct sockaddr *sa, char *out, size_t out_len)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, sa,
           sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    return sh_addr_format(&ss, out, out_len);
}
