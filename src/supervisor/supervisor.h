/* SPDX-License-Identifier: MIT */
/* supervisor.h: the supervisor (manifest, processes, restarts, scaling, deployments). For now,
 * the manifest reader: YAML text into a core document tree (struct sh_doc) whose nodes keep
 * their file:line:column, so each component validates its own part of a configuration file.
 * Threads: the reader keeps no state; any thread may call it.
 * Prefixes: manifest_, MANIFEST_.   (Guard SHOAL_SUPERVISOR_H; includes core/core.h.) */
#ifndef SHOAL_SUPERVISOR_H
#define SHOAL_SUPERVISOR_H

#include "core/core.h"

/* ------------------------------------------------------------------------------------------
 * Manifest reader (manifest.c, the one owner of libyaml).
 *
 * What it accepts: one YAML document of block or flow maps, lists and scalars, with comments.
 * - Plain "", "~", "null", "Null", "NULL" (and a key with no value) become SH_NODE_NULL; every
 *   other scalar is SH_NODE_SCALAR with its text. Quoted scalars, block scalars (| and >) and
 *   scalars tagged !!str have is_quoted set, so "10" and "true" stay strings.
 * - Map keys must be non-empty scalars; a key written twice in one map is an error at the
 *   second one that names the first ("duplicate key 'port' (already set at line 3, column 5)").
 * - Rejected with a clear error: anchors and aliases (&a, *a, and so "<<: *a" merges), tags
 *   other than !!str/!!map/!!seq, and files with more than one document.
 * - Limits (errors with SH_ETOOBIG, never crashes): MANIFEST_MAX_BYTES of text, collections
 *   nested MANIFEST_MAX_DEPTH deep, MANIFEST_MAX_NODES nodes (keys and values both count).
 * An empty file (or one of only comments) gives a doc whose root is a NULL node at 1:1.
 * ------------------------------------------------------------------------------------------ */
#define MANIFEST_MAX_BYTES (4u * 1024 * 1024)
#define MANIFEST_MAX_DEPTH 64
#define MANIFEST_MAX_NODES 100000

/* Reads the YAML file at <path> into a document tree named <path>.
 * Returns 0 and sets *out (caller frees with sh_doc_free), or sets *out to NULL and returns
 *   SH_ENOENT   no such file (d->where = path);
 *   SH_EPARSE   a YAML syntax error or a rejected construct (d->where = "path:line:col");
 *   SH_ETOOBIG  a limit above was passed;
 *   SH_ENOMEM   out of memory;
 *   -errno      another failure of open(2)/read(2), e.g. -EACCES, -EISDIR.
 * d->what says what is wrong in plain words; d may be NULL. */
SH_MUST_CHECK int manifest_read_file(const char *path, struct sh_doc **out, struct sh_diag *d);

/* Reads <len> bytes of YAML at <text> (not necessarily NUL-terminated) as if from a file
 * named <name> (used in positions). Returns and fills as manifest_read_file, without the
 * file errors. <text> is not kept. */
SH_MUST_CHECK int manifest_read_buf(const char *name, const char *text, size_t len,
                                    struct sh_doc **out, struct sh_diag *d);

#endif
