/* SPDX-License-Identifier: MIT */
/* runtime.c: how the CLI finds the token of a stack it did not start: `shoal up` and `shoal
 * server` publish, in the user's runtime directory, one file per admin address whose content
 * is the absolute path of their data directory (where the token is); the CLI reads the file of
 * the address it talks to (a file whose pid no longer runs is stale: removed, not used). The
 * directory is $XDG_RUNTIME_DIR/shoal, or /tmp/shoal-UID without
 * XDG_RUNTIME_DIR, mode 0700 and checked to be ours (not a symlink, owned by us, no access
 * for others) before anything is written to or read from it; files are 0600 and written whole
 * (a temporary file renamed). Main thread only. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 when <path> is a directory of ours that only we can use; creates it when is_create. */
static int own_dir(const char *path, bool is_create)
{
    struct stat st;

    if (is_create && mkdir(path, 0700) < 0 && errno != EEXIST) return -errno;
    if (lstat(path, &st) < 0) return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) return SH_EINVAL;
    return 0;
}

int cli_runtime_dir(char *out, size_t n, bool is_create)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int rc;

    if (xdg && xdg[0] == '/') {
        if ((size_t)snprintf(out, n, "%s/shoal", xdg) >= n) return SH_ETOOBIG;
    } else if ((size_t)snprintf(out, n, "/tmp/shoal-%lu", (unsigned long)getuid()) >= n) {
        return SH_ETOOBIG;
    }
    rc = own_dir(out, is_create);
    return rc;
}

int cli_runtime_file(const char *addr, char *out, size_t n, bool is_create)
{
    char dir[512], key[160];
    const char *colon;
    size_t k = 0, hostlen;
    int rc;

    if (strncmp(addr, "http://", 7) == 0) addr += 7;
    colon = strrchr(addr, ':');
    hostlen = colon ? (size_t)(colon - addr) : 0;
    if (hostlen == 0) { /* ":7700" and "7700" are 127.0.0.1 (http_parse_addr) */
        memcpy(key, "127.0.0.1", 9);
        k = 9;
    }
    for (size_t i = 0; i < hostlen && k < sizeof(key) - 8; i++) {
        char c = addr[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-';
        key[k++] = keep ? c : '_';
    }
    key[k] = '\0';
    {
        const char *port = colon ? colon + 1 : addr;
        size_t plen = strlen(port);
        if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen) return SH_EINVAL;
    }
    snprintf(key + k, sizeof(key) - k, "_%s", colon ? colon + 1 : addr);
    rc = cli_runtime_dir(dir, sizeof(dir), is_create);
    if (rc < 0) return rc;
    if ((size_t)snprintf(out, n, "%s/%s", dir, key) >= n) return SH_ETOOBIG;
    return 0;
}

int cli_runtime_publish(const char *addr, const char *data_dir, char *out, size_t n)
{
    char real[PATH_MAX], tmp[PATH_MAX + 16];
    int fd, rc = cli_runtime_file(addr, out, n, true);
    size_t len;

    if (rc < 0) return rc;
    if (!realpath(data_dir, real)) return -errno;
    len = strlen(real);
    /* the data dir, then the pid that listens: a file left by a kill -9 is known stale */
    len += (size_t)snprintf(real + len, sizeof(real) - len, "\n%ld\n", (long)getpid());
    if (len >= sizeof(real)) return SH_ETOOBIG;
    snprintf(tmp, sizeof(tmp), "%s.%ld", out, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return -errno;
    errno = 0;
    rc = write(fd, real, len) == (ssize_t)len ? 0 : errno ? -errno : SH_EIO;
    if (close(fd) < 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, out) < 0) rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        out[0] = '\0';
    }
    return rc;
}

void cli_runtime_unpublish(const char *path)
{
    if (path && path[0]) unlink(path);
}

int cli_runtime_lookup(const char *addr, char *data_dir, size_t n)
{
    char path[PATH_MAX];
    struct stat st;
    ssize_t got;
    int fd, rc = cli_runtime_file(addr, path, sizeof(path), false);

    if (rc < 0) return rc;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid()) {
        close(fd);
        return SH_EINVAL;
    }
    got = read(fd, data_dir, n - 1);
    close(fd);
    if (got <= 0) return SH_ENOENT;
    data_dir[got] = '\0';
    {
        /* "DATA_DIR\nPID\n": a pid that no longer runs means shoal went away without
         * removing the file (kill -9); its token is not sent to whoever listens there now */
        char *nl = strchr(data_dir, '\n');
        uint64_t pid = 0;
        if (nl) {
            *nl = '\0';
            char *end = strchr(nl + 1, '\n');
            if (end) *end = '\0';
            if (slice_to_u64(slice_from_cstr(nl + 1), &pid) == 0 && pid > 0 && pid < INT32_MAX &&
                kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
                unlink(path);
                return SH_ENOENT;
            }
        }
        got = (ssize_t)strlen(data_dir);
        while (got > 0 && data_dir[got - 1] == '\r')
            data_dir[--got] = '\0';
    }
    return got > 0 ? 0 : SH_ENOENT;
}
