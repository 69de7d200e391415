/* SPDX-License-Identifier: MIT */
/* core.h: allocation, errors, intrusive lists and array growth, byte slices and buffers, socket
 * addresses, arenas, time, logging, snapshot publishing, document trees and the table-driven
 * schema reader. Every other component stands on this header; it imports nothing of ours.
 * Prefixes: sh_, SH_, slice_, buf_, arena_, sh_doc_, sh_node_, snap_, LF_.
 * Threads: everything here may be called from any thread unless a section says otherwise;
 * value types (slice, buf, arena) are not synchronised and belong to one thread at a time. */
#ifndef SHOAL_CORE_H
#define SHOAL_CORE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SH_MUST_CHECK __attribute__((warn_unused_result))
#define SH_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define SH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SH_MAX(a, b) ((a) > (b) ? (a) : (b))
/* Sets the config field <lv> to <v> when it was left 0 (the "0 = default" rule of configs). */
#define SH_DEFAULT(lv, v)                                                                          \
    do {                                                                                           \
        if ((lv) == 0) (lv) = (v);                                                                 \
    } while (0)
/* Returns from the calling function the negative result of <expr>. */
#define SH_TRY(expr)                                                                               \
    do {                                                                                           \
        int sh_try_rc_ = (expr);                                                                   \
        if (sh_try_rc_ < 0) return sh_try_rc_;                                                     \
    } while (0)
/* Defensive branches that tests must never reach (SQLite's ALWAYS/NEVER). */
#define SH_ALWAYS(x) (__builtin_expect(!!(x), 1))
#define SH_NEVER(x) (__builtin_expect(!!(x), 0))

/* ------------------------------------------------------------------------------------------
 * Errors: negative codes, one X-macro table (libuv style). Append-only.
 * ------------------------------------------------------------------------------------------ */
#define SH_ERRNO_MAP(XX)                                                                           \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                           \
    XX(EINVAL, -EINVAL, "invalid argument")                                                        \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                         \
    XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                                        \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                          \
    XX(EPIPE, -EPIPE, "broken pipe")                                                               \
    XX(ECANCELED, -ECANCELED, "operation canceled")                                                \
    XX(ENOENT, -ENOENT, "no such entry")                                                           \
    XX(EEXIST, -EEXIST, "entry already exists")                                                    \
    XX(EBUSY, -EBUSY, "resource busy")                                                             \
    XX(ETOOBIG, -4000, "value exceeds its configured limit")                                       \
    XX(EPARSE, -4001, "malformed input")                                                           \
    XX(ENOTSUP, -4002, "not supported")                                                            \
    XX(EEOF, -4003, "unexpected end of input")                                                     \
    XX(ECLOSED, -4004, "connection closed")                                                        \
    XX(ESHUTDOWN, -4005, "shutting down")                                                          \
    XX(ELIMIT, -4006, "concurrency limit reached")                                                 \
    XX(EIO, -EIO, "input/output error")                                                            \
    XX(ENOSPC, -ENOSPC, "no space left on device")                                                 \
    XX(ECOMPACTED, -4007, "revision compacted")                                                    \
    XX(ECORRUPT, -4008, "stored data is corrupt")                                                  \
    XX(EPERM, -EPERM, "operation not permitted")                                                   \
    XX(EPROTO, -EPROTO, "protocol error")

enum sh_err {
#define XX(name, value, msg) SH_##name = (value),
    SH_ERRNO_MAP(XX)
#undef XX
};

/* Never NULL; codes outside the table fall back to strerror(-err). */
const char *sh_strerror(int err);
/* "SH_ENOMEM", for logs and tests; "SH_E?" for codes outside the table. */
const char *sh_errname(int err);

/* Where and what for a parse error: a parser fills it, the caller prints it.
 * where: "file:line:column", a JSON field, a header name. Both always NUL-terminated. */
struct sh_diag {
    char where[96];
    char what[160];
};
void sh_diag_set(struct sh_diag *d, const char *where, const char *fmt, ...) SH_PRINTF(3, 4);
/* Formats into buf (n bytes, cut to fit, NUL-terminated) and returns buf: the readers' way to
 * build the path of a key for a message, sh_fmt(path, sizeof(path), "%s.%s", base, key). */
const char *sh_fmt(char *buf, size_t n, const char *fmt, ...) SH_PRINTF(3, 4);

/* The longest API token (admin API, CLI, gateway discovery) accepted anywhere; a longer one
 * is refused where it is given, never cut. Buffers hold SH_TOKEN_MAX_LEN + 1 bytes. */
#define SH_TOKEN_MAX_LEN 1024

/* ------------------------------------------------------------------------------------------
 * Allocation. Everything allocates through these so tests can count live blocks and fail
 * the Nth allocation (curl's torture mode). sh_free(NULL) is a no-op.
 * ------------------------------------------------------------------------------------------ */
void *sh_malloc(size_t n);
void *sh_calloc(size_t count, size_t size);
void *sh_realloc(void *p, size_t n); /* on failure p is untouched and NULL is returned */
void sh_free(void *p);
char *sh_strndup(const char *s, size_t n); /* always NUL-terminated; caller frees */
char *sh_strdup(const char *s);

/* Counting (and failure injection) is on by default, for tests. A server process turns it off
 * before it starts threads: the counters are shared cache lines. Call before other threads
 * exist; sh_alloc_live and sh_alloc_fail_after mean nothing while it is off. */
void sh_alloc_accounting(bool on);
/* Live blocks allocated through sh_* across the process (tests assert 0 at teardown). */
long sh_alloc_live(void);
/* Test hook: allocation number n from now (1-based) and every later one fail; 0 disables. */
void sh_alloc_fail_after(long n);
/* Allocations attempted since the last sh_alloc_fail_after() call. */
long sh_alloc_count(void);

/* ------------------------------------------------------------------------------------------
 * Lists and arrays: one intrusive doubly linked list (the Linux kernel's list.h, libuv's
 * queue.h) and one growth rule for arrays, so no component open-codes either.
 *
 * A list is circular around a head that is not an item: an empty head points at itself, and
 * so does a node that is in no list. Both must be set up with sh_list_init (a zeroed struct
 * is not a valid list). An item embeds a struct sh_list per list it can be in, and
 * SH_CONTAINER_OF gets the item back from its node:
 *
 *     struct conn { struct sh_list link; ... };        struct sh_list conns;  (sh_list_init)
 *     sh_list_insert_head(&conns, &c->link);
 *     SH_LIST_FOREACH_SAFE(node, next, &conns) {
 *         struct conn *c = SH_CONTAINER_OF(node, struct conn, link);
 *         ...                                          (c may leave the list here)
 *     }
 * Value types: the owner of the head keeps them in one thread; nothing here allocates.
 * ------------------------------------------------------------------------------------------ */
struct sh_list {
    struct sh_list *prev, *next;
};

/* The item of type <type> whose member <member> is at <ptr>. */
#define SH_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Makes l an empty head, or a node in no list. */
static inline void sh_list_init(struct sh_list *l)
{
    l->prev = l->next = l;
}

/* True when the head <l> holds no node (or when the node <l> is in no list). */
static inline bool sh_list_empty(const struct sh_list *l)
{
    return l->next == l;
}

/* Links <node> (in no list) right after <pos>, which is a head or a node in a list. */
static inline void sh_list_insert_after(struct sh_list *pos, struct sh_list *node)
{
    node->prev = pos;
    node->next = pos->next;
    pos->next->prev = node;
    pos->next = node;
}

/* Links <node> (in no list) right before <pos>, which is a head or a node in a list. */
static inline void sh_list_insert_before(struct sh_list *pos, struct sh_list *node)
{
    sh_list_insert_after(pos->prev, node);
}

/* First and last in iteration order. */
static inline void sh_list_insert_head(struct sh_list *head, struct sh_list *node)
{
    sh_list_insert_after(head, node);
}

static inline void sh_list_insert_tail(struct sh_list *head, struct sh_list *node)
{
    sh_list_insert_before(head, node);
}

/* Unlinks <node> and leaves it in no list, so removing it again does nothing. */
static inline void sh_list_remove(struct sh_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    sh_list_init(node);
}

/* The first (last) node of the list <head>, or NULL when it is empty. */
static inline struct sh_list *sh_list_first(const struct sh_list *head)
{
    return head->next == head ? NULL : head->next;
}

static inline struct sh_list *sh_list_last(const struct sh_list *head)
{
    return head->prev == head ? NULL : head->prev;
}

/* Visits every node of <head> from first to last; the body must not unlink <node>. */
#define SH_LIST_FOREACH(node, head)                                                                \
    for ((node) = (head)->next; (node) != (head); (node) = (node)->next)
/* The same, but the body may unlink (and free) <node>; <next> is a struct sh_list * the macro
 * uses. The body must not unlink the node after <node>. */
#define SH_LIST_FOREACH_SAFE(node, next, head)                                                     \
    for ((node) = (head)->next, (next) = (node)->next; (node) != (head);                           \
         (node) = (next), (next) = (node)->next)

/* Array growth: the capacity to give an array of <elem_size>-byte items (elem_size > 0) that
 * has room for <cap> and must hold <need>: cap itself when need <= cap, else cap doubled (8 when
 * cap is 0) until it holds need, or the largest count whose size fits a size_t when doubling
 * would pass it. Returns 0 and sets *out_cap, or SH_ETOOBIG when need items do not fit a size_t
 * (*out_cap untouched). For arrays that do not live in sh_malloc'd memory (an arena). */
SH_MUST_CHECK int sh_array_grow_cap(size_t cap, size_t need, size_t elem_size, size_t *out_cap);
/* Makes the sh_malloc'd array at *items_ptr (a T **, NULL when nothing is allocated yet), with
 * room for *cap items of <elem_size> bytes, hold at least <need> items, growing it with
 * sh_realloc to sh_array_grow_cap's capacity. Items already there keep their values; new room
 * is uninitialised. Returns 0, or SH_ETOOBIG / SH_ENOMEM with the array and *cap untouched.
 * An append is then
 *     SH_TRY(sh_array_reserve(&a->items, &a->cap, a->count + 1, sizeof(*a->items))); */
SH_MUST_CHECK int sh_array_reserve(void *items_ptr, size_t *cap, size_t need, size_t elem_size);

/* ------------------------------------------------------------------------------------------
 * Slices: borrowed views of bytes. Never own; valid while what they point into is.
 * Not NUL-terminated: print with "%.*s", (int)s.len, s.ptr.
 * ------------------------------------------------------------------------------------------ */
struct slice {
    const char *ptr;
    size_t len;
};
#define SLICE(lit) ((struct slice){.ptr = lit "", .len = sizeof(lit "") - 1})
#define SLICE_NULL ((struct slice){.ptr = NULL, .len = 0})

struct slice slice_from_cstr(const char *s);
bool slice_eq(struct slice a, struct slice b);
bool slice_eq_nocase(struct slice a, struct slice b); /* ASCII case-insensitive */
bool slice_starts_with(struct slice s, struct slice prefix);
struct slice slice_trim(struct slice s); /* drops leading and trailing SP and HTAB */
/* Splits at the first <sep>: *head gets the part before, the return value the part after
 * (SLICE_NULL with ptr == NULL when <sep> is absent, in which case *head is all of s). */
struct slice slice_split(struct slice s, char sep, struct slice *head);
/* Decimal digits only, no sign, no spaces; 0 or SH_EPARSE (empty, non-digit) or SH_ETOOBIG. */
SH_MUST_CHECK int slice_to_u64(struct slice s, uint64_t *out);

/* ------------------------------------------------------------------------------------------
 * Socket addresses as text (addr.c): the one parser of every address shoal listens on or
 * connects to. Numeric hosts only, plus "localhost" (127.0.0.1); nothing is resolved.
 * ------------------------------------------------------------------------------------------ */
struct sockaddr_storage;

/* Parses an address to listen on:
 *   "127.0.0.1:8080", "[::1]:8080"   that address;
 *   ":8080", "*:8080"                 every IPv4 address (0.0.0.0);
 *   "[::]:8080"                       every address: IPv6 and, since shoal's listeners clear
 *                                     IPV6_V6ONLY, IPv4 too (as ::ffff:a.b.c.d), whatever
 *                                     net.ipv6.bindv6only says;
 *   "localhost:8080", "8080"          127.0.0.1.
 * Port 0 asks the kernel for a free port (the server reports the one it got).
 * 0, or SH_EPARSE with d filled naming the text (empty, missing or non-numeric port, port
 * above 65535, a host that is not numeric, IPv6 without brackets); *out is zeroed then. */
SH_MUST_CHECK int sh_listen_parse(const char *text, struct sockaddr_storage *out,
                                  struct sh_diag *d);
/* Parses an address to connect to: as sh_listen_parse, except that ":8080" means 127.0.0.1
 * and wildcards ("*:8080", "0.0.0.0:8080", "[::]:8080") and port 0 are refused. */
SH_MUST_CHECK int sh_addr_parse(const char *text, struct sockaddr_storage *out, struct sh_diag *d);
uint16_t sh_addr_port(const struct sockaddr_storage *ss); /* host order; 0 if not IP */
void sh_addr_set_port(struct sockaddr_storage *ss, uint16_t port);
bool sh_addr_is_wildcard(const struct sockaddr_storage *ss); /* 0.0.0.0 or :: */
/* A wildcard becomes the loopback address of its family (0.0.0.0 -> 127.0.0.1, :: -> ::1),
 * which reaches a listener bound to it from this machine; other addresses are left alone. */
void sh_addr_loopback_for(struct sockaddr_storage *ss);
/* "127.0.0.1:8080" / "[::1]:8080" into out (64 bytes are enough); returns out. */
char *sh_addr_format(const struct sockaddr_storage *ss, char *out, size_t out_len);

/* ------------------------------------------------------------------------------------------
 * Buffers: owned, growable, capped bytes. data[len] == '\0' whenever data != NULL.
 * len never exceeds max (0 = SIZE_MAX); an append past max fails with SH_ETOOBIG and
 * leaves the contents untouched. The first error sticks in err: later appends do nothing
 * and return it, so a long renderer may check once. A zeroed struct is a valid empty buffer.
 * ------------------------------------------------------------------------------------------ */
struct buf {
    char *data;
    size_t len, cap, max;
    int err;
};
#define BUF_INIT(limit) ((struct buf){.max = (limit)})

int buf__append_slow(struct buf *b, const void *p, size_t n);
/* Appends n bytes; the common case (room already there) is inline. */
static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->err == 0 && b->cap - b->len > n && (b->max == 0 || b->len + n <= b->max) && b->data) {
        if (n) memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    return buf__append_slow(b, p, n);
}
int buf_appends(struct buf *b, struct slice s);
int buf_appendc(struct buf *b, char c);
int buf_appendf(struct buf *b, const char *fmt, ...) SH_PRINTF(2, 3);
/* Decimal / lowercase hex text of v, without printf (for hot paths). */
int buf_append_u64(struct buf *b, uint64_t v);
int buf_append_hex(struct buf *b, uint64_t v);
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) SH_PRINTF(2, 0);
/* Appends s as a JSON string body (no quotes), escaping quotes, backslash and controls. */
int buf_append_json_str(struct buf *b, struct slice s);
/* Appends s for display on a terminal, so bytes a peer or a service wrote cannot drive it
 * (clear the screen, move the cursor, set the title...). Well-formed UTF-8 passes as is, except:
 * - C0 controls (U+0000..U+001F), DEL (U+007F) and C1 controls (U+0080..U+009F, which a UTF-8
 *   terminal takes as ESC sequences too) become "\u00XX": ESC is written "\u001b"; a tab
 *   passes only with SH_TERM_KEEP_TAB;
 * - each byte that is not part of well-formed UTF-8 (RFC 3629: no overlongs, surrogates or
 *   code points past U+10FFFF; a sequence cut short by the end of s) becomes "\xHH".
 * A backslash itself is not escaped, so "\u001b" in the output may also be what was written.
 * At most <max_chars> characters are appended (0: no limit), counting each code point as one
 * and each escape as its length: a cut falls between characters and escapes, never inside
 * one. Returns 0, or the buffer's error (SH_ENOMEM, SH_ETOOBIG), leaving its contents as they
 * were. Used for services' output in `shoal up`'s live view and `shoal logs`. */
enum sh_term_flags { SH_TERM_KEEP_TAB = 1u << 0 };
int buf_append_term_str(struct buf *b, struct slice s, size_t max_chars, unsigned flags);
/* The length of the well-formed UTF-8 sequence at the start of s (1..4), or 0 when s is
 * empty or does not start with one. */
size_t sh_utf8_len(struct slice s);
/* Makes room for n more bytes without changing len; 0 or SH_E*. */
int buf_reserve(struct buf *b, size_t n);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
struct slice buf_slice(const struct buf *b);
char *buf_detach(struct buf *b, size_t *len); /* caller frees with sh_free; b is reset */
void buf_reset(struct buf *b);                /* keeps capacity, clears err */
void buf_release(struct buf *b);              /* frees; idempotent */

/* ------------------------------------------------------------------------------------------
 * Arena: bump allocation for request-scoped memory, freed with one call. Blocks grow from
 * <block_bytes>; the memory held in blocks (held_bytes, headers included) is capped by
 * <max_bytes> (0 = unlimited); when a whole block would pass the cap, a smaller last block takes
 * what is left. Nothing that outlives the arena may point into it. A zeroed arena after
 * arena_init() costs no allocation.
 * ------------------------------------------------------------------------------------------ */
struct arena_block;
struct arena {
    struct arena_block *head; /* private */
    size_t block_bytes, max_bytes;
    size_t used_bytes; /* read-only: bytes handed out plus block overhead */
    size_t held_bytes; /* read-only: bytes of every block held, overhead included; <= max_bytes */
};
void arena_init(struct arena *a, size_t block_bytes, size_t max_bytes);
/* 16-byte aligned, uninitialised; NULL when out of memory or over max_bytes. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* Frees every block but the first, which is kept for reuse by the next request. */
void arena_reset(struct arena *a);
void arena_release(struct arena *a); /* frees everything; idempotent */

/* ------------------------------------------------------------------------------------------
 * Time: monotonic clocks and the textual forms users write.
 * ------------------------------------------------------------------------------------------ */
uint64_t sh_now_ms(void);  /* monotonic */
uint64_t sh_now_us(void);  /* monotonic */
uint64_t sh_wall_ms(void); /* wall clock, ms since the Unix epoch */

/* Parses "250ms", "2s", "1m", "1h", "1500us", "1m30s" (units required, no sign, no spaces)
 * into milliseconds (microsecond values round up to 1 ms when non-zero).
 * Returns 0, SH_EPARSE or SH_ETOOBIG, and on error fills d->what (d may be NULL). */
SH_MUST_CHECK int sh_parse_duration_ms(struct slice s, uint64_t *out_ms, struct sh_diag *d);
/* Parses "512", "512B", "64KiB", "10MiB", "1GiB", "1KB" (KB/MB/GB are decimal) into bytes. */
SH_MUST_CHECK int sh_parse_size(struct slice s, uint64_t *out_bytes, struct sh_diag *d);
/* Writes "1m30s"-style text for ms into out (at least 32 bytes); returns out. */
char *sh_format_duration(uint64_t ms, char *out, size_t out_len);

/* ------------------------------------------------------------------------------------------
 * Document trees: configuration (the gateway's YAML, the `shoal up` manifest) read into generic
 * nodes that remember where they were written, so each component validates its own part and
 * reports errors as "file:line:column". A reader (supervisor/manifest.c for YAML) or a test
 * builds the tree; components only read it.
 *
 * A doc is a service object: sh_doc_new / sh_doc_free. Every node, string and array lives in
 * the doc's arena and is freed with the doc; node pointers are borrowed from it and nothing may
 * keep one past sh_doc_free. Threads: one thread builds a doc; once built it is read-only and
 * any thread may read it.
 *
 * The typed readers (sh_node_str, sh_node_u64, ...) take a <path> label from the caller, the
 * user's name for the node ("routes[2].timeout"; NULL or "" for none). On error they return
 * SH_EPARSE or SH_ETOOBIG and fill d (which may be NULL) with
 *     d->where = "gateway.yaml:12:7"      the node's position (sh_node_where)
 *     d->what  = "routes[2].timeout: duration '5x': unknown unit 'x' (use us, ms, s, m, h)"
 * and print "%s: %s", d->where, d->what for the user. On success they set *out and leave d.
 * ------------------------------------------------------------------------------------------ */
enum sh_node_kind {
    SH_NODE_NULL = 0, /* "~", "null", an empty value: written as nothing */
    SH_NODE_SCALAR,   /* text: a string, number or boolean, as written */
    SH_NODE_MAP,      /* count key/value pairs, in the order written */
    SH_NODE_SEQ,      /* count items, in the order written */
};

struct sh_doc;

/* Fields are read-only for readers; builders use the constructors and appends below. */
struct sh_node {
    enum sh_node_kind kind;
    uint32_t line, col;       /* 1-based position of the first character; col counts characters */
    const struct sh_doc *doc; /* owner, for the file name */
    const char *text;         /* SCALAR: the value, NUL-terminated ("" for NULL, MAP, SEQ) */
    size_t len;               /* bytes of text, NUL excluded (text may hold a NUL of its own) */
    bool is_quoted;           /* SCALAR written quoted, as a block or !!str: "10" stays a string */
    struct sh_node **items;   /* SEQ: the items; MAP: the keys (SCALAR nodes) */
    struct sh_node **values;  /* MAP: values[i] belongs to items[i]; NULL otherwise */
    size_t count;             /* SEQ: items; MAP: pairs */
    size_t cap;               /* private: room in items/values */
    const char *origin;       /* NULL, or the path the user wrote for this node when a builder
                               * made it from another document (sh_node_set_origin) */
};

struct sh_doc {
    char *file;           /* the name used in positions ("gateway.yaml"); owned */
    struct sh_node *root; /* set by the builder; a reader gives an empty file a NULL node */
    size_t node_count;    /* read-only: nodes built so far, for the readers' limits */
    struct arena arena;   /* private: every node lives here */
};

/* Creates an empty doc named <file> (copied; NULL means ""). Returns 0 and sets *out (caller
 * frees with sh_doc_free), or SH_ENOMEM and sets *out to NULL. */
SH_MUST_CHECK int sh_doc_new(const char *file, struct sh_doc **out);
void sh_doc_free(struct sh_doc *doc); /* frees every node too; NULL is a no-op */

/* Builders. Each allocates in doc's arena and returns the node, or NULL when out of memory.
 * sh_node_new makes an empty MAP or SEQ, or a NULL node (text ""); a SCALAR needs
 * sh_node_new_scalar, which copies <text> (any bytes, NUL added). */
SH_MUST_CHECK struct sh_node *sh_node_new(struct sh_doc *doc, enum sh_node_kind kind, uint32_t line,
                                          uint32_t col);
SH_MUST_CHECK struct sh_node *sh_node_new_scalar(struct sh_doc *doc, struct slice text,
                                                 bool is_quoted, uint32_t line, uint32_t col);
/* Appends <item> to the SEQ <seq>; both belong to doc. 0 or SH_ENOMEM (seq unchanged). */
SH_MUST_CHECK int sh_node_seq_append(struct sh_doc *doc, struct sh_node *seq, struct sh_node *item);
/* Appends key/value to the MAP <map>; key must be a SCALAR. Duplicates are not checked here
 * (a reader rejects them). 0 or SH_ENOMEM (map unchanged). */
SH_MUST_CHECK int sh_node_map_append(struct sh_doc *doc, struct sh_node *map, struct sh_node *key,
                                     struct sh_node *value);

/* Labels <node> with the path the user wrote for it ("services.api.resilience") when a builder
 * made it from another document: readers name that path in their errors rather than their own
 * (sh_node_path). The text is copied into doc. 0 or SH_ENOMEM. */
SH_MUST_CHECK int sh_node_set_origin(struct sh_doc *doc, struct sh_node *node, const char *path);
/* The path to name <node> by: its origin when set, else <fallback>. */
const char *sh_node_path(const struct sh_node *node, const char *fallback);

/* Lookups. sh_node_get returns the value stored under <key> in <map> (first match), or NULL
 * when map is NULL, not a MAP, or has no such key: chains like
 * sh_node_get(sh_node_get(root, "gateway"), "listen") are safe. */
const struct sh_node *sh_node_get(const struct sh_node *map, const char *key);
/* A kind in words for messages: "nothing (null)", "a single value", "a map", "a list". */
const char *sh_node_kind_name(enum sh_node_kind kind);
/* Writes "file:line:col" into out (n bytes, NUL-terminated; a file name too long keeps its
 * tail, so the position survives) and returns out. */
char *sh_node_where(const struct sh_node *node, char *out, size_t n);

/* Fills d (NULL: nothing) with where = node's position and what = "<path>: <message>" (only the
 * message when path is NULL or ""); returns SH_EPARSE. For readers built on these helpers. */
int sh_node_fail(struct sh_diag *d, const struct sh_node *node, const char *path, const char *fmt,
                 ...) SH_PRINTF(4, 5);
/* Checks that node is of <kind>: 0, or SH_EPARSE with "<path>: expected a map, found a list". */
SH_MUST_CHECK int sh_node_expect(const struct sh_node *node, enum sh_node_kind kind,
                                 const char *path, struct sh_diag *d);
/* Finds <key> in the MAP <map> (whose label is <path>): 0 and *out, or SH_EPARSE with
 * "<path>: missing required key '<key>'" at the map's position (also when map is not a map). */
SH_MUST_CHECK int sh_node_require(const struct sh_node *map, const char *key, const char *path,
                                  const struct sh_node **out, struct sh_diag *d);
/* Checks every key of the MAP <map> against <allowed> (NULL-terminated). 0, or SH_EPARSE at
 * the first unknown key: "<path>: unknown key 'tmeout' (did you mean 'timeout'?)" or
 * "... (allowed: path, upstream, timeout)". A <map> that is not a MAP fails as sh_node_expect. */
SH_MUST_CHECK int sh_node_check_keys(const struct sh_node *map, const char *const allowed[],
                                     const char *path, struct sh_diag *d);

/* Typed readers: node must not be NULL (look it up first). Each sets *out on success. */
/* Any SCALAR, quoted or not, without NUL bytes inside; *out is borrowed from the doc. */
SH_MUST_CHECK int sh_node_str(const struct sh_node *node, const char *path, const char **out,
                              struct sh_diag *d);
/* An unquoted decimal integer in [min, max]. SH_ETOOBIG above max (or past UINT64_MAX),
 * SH_EPARSE for anything else, a quoted "10" included. */
SH_MUST_CHECK int sh_node_u64(const struct sh_node *node, const char *path, uint64_t min,
                              uint64_t max, uint64_t *out, struct sh_diag *d);
/* Unquoted true/false, yes/no, on/off (any letter case). A quoted "true" is a string: error. */
SH_MUST_CHECK int sh_node_bool(const struct sh_node *node, const char *path, bool *out,
                               struct sh_diag *d);
/* A duration as sh_parse_duration_ms reads it ("250ms", "1m30s"); quoting is allowed. */
SH_MUST_CHECK int sh_node_duration_ms(const struct sh_node *node, const char *path,
                                      uint64_t *out_ms, struct sh_diag *d);
/* A size as sh_parse_size reads it ("512", "64KiB"); quoting is allowed. */
SH_MUST_CHECK int sh_node_size(const struct sh_node *node, const char *path, uint64_t *out_bytes,
                               struct sh_diag *d);
/* A ratio written "20%" or 0.2, into [0, 1]. */
SH_MUST_CHECK int sh_node_ratio(const struct sh_node *node, const char *path, double *out,
                                struct sh_diag *d);

/* ------------------------------------------------------------------------------------------
 * Schema reader (schema.c): a MAP read into a C struct by a table of fields (name, kind,
 * offset, limits), so every reader of YAML (the gateway's config, the manifest) refuses unknown
 * keys, checks limits and names the user's path in the same way:
 *     static const struct sh_field retry_fields[] = {
 *         {"max", SH_FIELD_U32, offsetof(struct proxy_retry, max_retries), 0, 10},
 *         {"backoff", SH_FIELD_MS, offsetof(struct proxy_retry, backoff_base_ms)},
 *         ...};
 *     SH_SCHEMA(retry_schema, retry_fields, NULL);
 *     SH_TRY(sh_schema_read(&retry_schema, node, "clusters[api].retry", &cl->retry, ctx, d));
 * Errors: "<path>.<field>: ..." at the value's file:line:col, where <path> is the map's origin
 * when a builder set one (sh_node_set_origin), so a manifest's `services.api.resilience.retry`
 * is named as the user wrote it, not as the gateway document it became.
 * ------------------------------------------------------------------------------------------ */
enum sh_field_kind {
    SH_FIELD_U32 = 0, /* an unquoted integer in [min, max] (max 0: UINT32_MAX) into uint32_t */
    SH_FIELD_MS,      /* a duration into uint32_t milliseconds, in [min, max] (0: ~49 days) */
    SH_FIELD_SIZE,    /* a size ("64KiB") into uint32_t bytes, in [min, max] (0: UINT32_MAX) */
    SH_FIELD_RATIO,   /* "20%" or 0.2 into double in [0, 1] */
    SH_FIELD_PERCENT, /* "50%" or 50 into uint32_t in [0, 100] */
    SH_FIELD_BOOL,    /* into bool */
    SH_FIELD_STR,     /* into const char *, borrowed from the document */
    SH_FIELD_MAP,     /* a nested map read with <sub> into the struct at offset */
    SH_FIELD_FN,      /* read(node, path, field, ctx, d) does it */
};
/* A custom field reader: <field> points at offset within the object. 0 or SH_E* with d set. */
typedef int sh_field_read_fn(const struct sh_node *node, const char *path, void *field, void *ctx,
                             struct sh_diag *d);
/* Rules across fields, run after the fields of <obj> were read from <map>. */
typedef int sh_schema_check_fn(const struct sh_node *map, const char *path, void *obj, void *ctx,
                               struct sh_diag *d);
struct sh_schema;
struct sh_field {
    const char *name;
    enum sh_field_kind kind;
    size_t offset;
    uint64_t min, max;
    const struct sh_schema *sub; /* SH_FIELD_MAP */
    sh_field_read_fn *read;      /* SH_FIELD_FN */
};
struct sh_schema {
    const struct sh_field *fields;
    size_t count;              /* at most SH_SCHEMA_MAX_FIELDS */
    sh_schema_check_fn *check; /* NULL: none */
};
enum { SH_SCHEMA_MAX_FIELDS = 48 };
#define SH_SCHEMA(name, fields, check)                                                             \
    static const struct sh_schema name = {(fields), SH_ARRAY_LEN(fields), (check)}
/* Reads the MAP <map> into <obj>: unknown keys are refused (with a "did you mean"), each field
 * present is read into obj + offset and checked against its limits, absent ones keep what obj
 * held (the defaults), then s->check runs. <path> names the map (its origin wins). ctx is
 * handed to custom readers and checks. 0, or SH_EPARSE/SH_ETOOBIG/SH_ENOMEM with d set. */
SH_MUST_CHECK int sh_schema_read(const struct sh_schema *s, const struct sh_node *map,
                                 const char *path, void *obj, void *ctx, struct sh_diag *d);

/* ------------------------------------------------------------------------------------------
 * Logging: leveled, structured. A record is a constant message plus typed fields; it prints as
 * "LEVEL comp: msg key=value ..." on a TTY and as one JSON line otherwise. SH_LOG tests the
 * level before evaluating any argument. Each record is one write(2) of one line.
 * Configure once at start (sh_log_setup), before other threads start.
 * ------------------------------------------------------------------------------------------ */
enum sh_log_level { SH_DEBUG = 0, SH_INFO = 1, SH_WARN = 2, SH_ERROR = 3, SH_OFF = 4 };
enum sh_log_format { SH_LOG_AUTO = 0, SH_LOG_TEXT = 1, SH_LOG_JSON = 2 };

enum log_field_type { LF_T_STR, LF_T_INT, LF_T_UINT, LF_T_ERR, LF_T_DBL };
struct log_field {
    const char *key;
    enum log_field_type type;
    union {
        struct slice s;
        int64_t i;
        uint64_t u;
        double d;
    } v;
};
#define LF_STR(k, str)                                                                             \
    ((struct log_field){.key = (k), .type = LF_T_STR, .v.s = slice_from_cstr(str)})
#define LF_SLICE(k, sl) ((struct log_field){.key = (k), .type = LF_T_STR, .v.s = (sl)})
#define LF_INT(k, n) ((struct log_field){.key = (k), .type = LF_T_INT, .v.i = (int64_t)(n)})
#define LF_UINT(k, n) ((struct log_field){.key = (k), .type = LF_T_UINT, .v.u = (uint64_t)(n)})
#define LF_DBL(k, n) ((struct log_field){.key = (k), .type = LF_T_DBL, .v.d = (double)(n)})
#define LF_ERR(k, rc) ((struct log_field){.key = (k), .type = LF_T_ERR, .v.i = (int64_t)(rc)})

extern int sh_log_min_level; /* read-only after sh_log_setup */

/* fd: where records go (2 for stderr). AUTO picks TEXT when fd is a TTY, else JSON. */
void sh_log_setup(enum sh_log_level min, enum sh_log_format fmt, int fd);
/* Parses "debug", "info", "warn", "error", "off"; -1 when unknown. */
int sh_log_level_parse(struct slice s);
void sh_log_write(enum sh_log_level lvl, const char *comp, const char *msg,
                  const struct log_field *fields, size_t count);

/* SH_LOG(lvl, comp, msg, fields...): msg travels inside "..." with a sentinel appended, so a
 * record without fields is still valid ISO C17 (", ##__VA_ARGS__" is not, under -Wpedantic). */
#define SH_LOG(lvl, comp, ...) SH_LOG_((lvl), (comp), __VA_ARGS__, SH_LF_END_)
#define SH_LF_END_ ((struct log_field){.key = NULL})
#define SH_LOG_(lvl, comp, msg, ...)                                                               \
    do {                                                                                           \
        if ((int)(lvl) >= sh_log_min_level) {                                                      \
            const struct log_field sh_lf_[] = {__VA_ARGS__};                                       \
            sh_log_write((lvl), (comp), (msg), sh_lf_, SH_ARRAY_LEN(sh_lf_) - 1);                  \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------------------------------------
 * Snapshot publishing (design.md): the control thread publishes immutable objects through an
 * atomic pointer; worker threads read them without locks; an object is freed only when no
 * reader can reach it any more.
 *
 * Readers take a counted reference inside a short epoch-protected window, so a reader may
 * keep a snapshot across callbacks (an in-flight request keeps the config it started with).
 * Retired snapshots are freed by snap_domain_collect() on the publishing thread once their
 * count is zero and every registered reader has left the window it might have found them in.
 *
 * Threads: snap_publish, snap_domain_collect, snap_reader_register and snap_domain_free on one
 * publisher thread. snap_acquire/snap_release/snap_version on the reader's own thread
 * (each struct snap_reader belongs to one thread). snap_release may run on any thread.
 * ------------------------------------------------------------------------------------------ */
typedef void snap_free_fn(void *obj, void *data);

struct snap_domain; /* opaque */
struct snap_reader; /* opaque; one per reading thread */

/* One published object. obj and version are read-only for readers; the rest is private. */
struct snap {
    void *obj;
    uint64_t version; /* 1 for the first publish, then 2, 3, ... */
    _Atomic long refs;
    uint64_t retire_epoch;
    struct snap *next_retired;
};

/* Publishes nothing yet (snap_acquire returns NULL until the first snap_publish).
 * free_fn(obj, data) frees an object once it is unreachable. */
SH_MUST_CHECK int snap_domain_new(snap_free_fn *free_fn, void *data, struct snap_domain **out);
/* Frees the current object and every retired one. Readers must have stopped and released. */
void snap_domain_free(struct snap_domain *dom);
/* Registers a reader (at most 256 per domain). 0, SH_ENOMEM or SH_ELIMIT. The reader lives
 * as long as the domain. */
SH_MUST_CHECK int snap_reader_register(struct snap_domain *dom, struct snap_reader **out);

/* Makes obj (owned by the domain from now on) the current snapshot, retires the previous one
 * and collects what can be freed. obj may be NULL. 0 or SH_ENOMEM (then obj is not taken). */
SH_MUST_CHECK int snap_publish(struct snap_domain *dom, void *obj);
/* Frees retired snapshots nobody can reach; returns how many remain retired. */
size_t snap_domain_collect(struct snap_domain *dom);
/* The number of publishes so far: one relaxed atomic load, for "has it changed since I last
 * looked" checks between requests. */
uint64_t snap_version(const struct snap_domain *dom);

/* Returns the current snapshot with a reference the caller gives back with snap_release, or
 * NULL when nothing (or NULL) is published. Lock-free. */
struct snap *snap_acquire(struct snap_reader *r);
/* Gives back a reference taken by snap_acquire. NULL is a no-op. Any thread. */
void snap_release(struct snap *s);

#endif
