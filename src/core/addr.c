/* SPDX-License-Identifier: MIT */
/* addr.c: socket addresses written as text ("127.0.0.1:8080", "[::1]:8080", ":8080",
 * "*:8080", "[::]:8080", "localhost:8080"): the one parser every listener and every client
 * address of shoal goes through, and its formatter. Numeric hosts only (and "localhost"): no
 * name resolution happens here, so parsing never blocks.
 * Thread: any. */
#include "core/core.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

enum { HOST_MAX = 64 };

static int fail(struct sh_diag *d, const char *text, const char *why)
{
    sh_diag_set(d, "address", "'%s': %s", text, why);
    return SH_EPARSE;
}

static void set_v4(struct sockaddr_storage *out, uint32_t host_order, uint16_t port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;

    memset(out, 0, sizeof(*out));
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    s4->sin_addr.s_addr = htonl(host_order);
}

static int parse(const char *text, bool is_listen, struct sockaddr_storage *out, struct sh_diag *d)
{
    char host[HOST_MAX];
    const char *port_s, *colon;
    bool bracketed = false, wildcard4 = false;
    uint64_t port;
    size_t hlen;

    memset(out, 0, sizeof(*out));
    if (!text || !*text) {
        sh_diag_set(d, "address", "address is empty (write HOST:PORT, e.g. 127.0.0.1:8080)");
        return SH_EPARSE;
    }
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':') return fail(d, text, "expected [IPv6]:PORT, e.g. [::1]:8080");
        hlen = (size_t)(end - text - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return fail(d, text, "the IPv6 address in brackets is empty or too long");
        memcpy(host, text + 1, hlen);
        host[hlen] = '\0';
        port_s = end + 2;
        bracketed = true;
    } else if ((colon = strrchr(text, ':')) != NULL) {
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen))
            return fail(d, text, "an IPv6 address goes in brackets: [IPv6]:PORT, e.g. [::1]:8080");
        if (hlen >= sizeof(host)) return fail(d, text, "the host is too long");
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        port_s = colon + 1;
        if (hlen == 0 || strcmp(host, "*") == 0) {
            if (is_listen)
                wildcard4 = true;
            else if (hlen != 0)
                return fail(d, text,
                            "'*' (every address) is for listeners; name the host to "
                            "connect to, e.g. 127.0.0.1");
            else
                memcpy(host, "127.0.0.1", 10); /* ":8080" to connect: this machine */
        } else if (strcmp(host, "localhost") == 0) {
            memcpy(host, "127.0.0.1", 10);
        }
    } else {
        if (text[strspn(text, "0123456789")] != '\0')
            return fail(d, text, "the port is missing (write HOST:PORT, e.g. 127.0.0.1:8080)");
        memcpy(host, "127.0.0.1", 10); /* a bare port: this machine's loopback */
        port_s = text;
    }
    if (!*port_s)
        return fail(d, text, "the port is missing (write HOST:PORT, e.g. 127.0.0.1:8080)");
    if (slice_to_u64(slice_from_cstr(port_s), &port) != 0 || port > 65535)
        return fail(d, text, "the port must be a number from 1 to 65535");
    if (port == 0 && !is_listen)
        return fail(d, text, "port 0 cannot be connected to (use a port from 1 to 65535)");
    if (wildcard4) {
        set_v4(out, INADDR_ANY, (uint16_t)port);
        return 0;
    }
    if (bracketed) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return fail(d, text, "the host in brackets is not a numeric IPv6 address");
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return fail(d, text,
                        "the host must be a numeric IPv4 address, [IPv6] in brackets, "
                        "'localhost', or empty/'*' for every address");
    }
    if (!is_listen && sh_addr_is_wildcard(out))
        return fail(d, text, "a wildcard address cannot be connected to (use 127.0.0.1 or [::1])");
    return 0;
}

int sh_listen_parse(const char *text, struct sockaddr_storage *out, struct sh_diag *d)
{
    int rc = parse(text, true, out, d);

    if (rc < 0) memset(out, 0, sizeof(*out));
    return rc;
}

int sh_addr_parse(const char *text, struct sockaddr_storage *out, struct sh_diag *d)
{
    int rc = parse(text, false, out, d);

    if (rc < 0) memset(out, 0, sizeof(*out));
    return rc;
}

uint16_t sh_addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return 0;
}

void sh_addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

bool sh_addr_is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return memcmp(a, &in6addr_any, sizeof(*a)) == 0;
    }
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return false;
}

void sh_addr_loopback_for(struct sockaddr_storage *ss)
{
    if (!sh_addr_is_wildcard(ss)) return;
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
    else
        ((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

char *sh_addr_format(const struct sockaddr_storage *ss, char *out, size_t out_len)
{
    char ip[INET6_ADDRSTRLEN];

    if (!out_len) return out;
    out[0] = '\0';
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip)))
            snprintf(out, out_len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip)))
            snprintf(out, out_len, "%s:%u", ip, ntohs(s4->sin_port));
    }
    return out;
}
