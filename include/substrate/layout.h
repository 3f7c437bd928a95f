/* OCI image layout (image-spec layout.md) read and write:
 *
 *   <dir>/oci-layout        {"imageLayoutVersion":"1.0.0"}
 *   <dir>/index.json        an OCI index; entries may carry the annotation
 *                           org.opencontainers.image.ref.name (the "name")
 *   <dir>/blobs/<alg>/<hex> content-addressed blobs
 *
 * Crash safety: every file is written to a temp file in the same directory,
 * fsync'd and renamed into place (then the directory is fsync'd). Blobs are
 * written before the index.json entry that refers to them, and sub_layout_tag
 * refuses to name a blob that is not present, so a crash never leaves an index
 * pointing at missing content. index.json is rewritten canonically
 * (sub_json_dump) under an exclusive flock on the layout directory, so
 * concurrent writers do not lose each other's entries.
 *
 * Interruption: temp files carry the writer's pid (blobs/sha256/<hex>.part-<pid>-…
 * while a pull downloads, .tmp-blob-<pid>-… while a blob is copied in,
 * <file>.tmp-<pid>-… for small files). They are removed on SIGINT/SIGTERM by
 * the CLI's handler, and those of dead pids by the next sub_layout_init
 * (residue.h), so an interrupted pull or build leaves nothing `umoci gc`
 * trips over.
 *
 * Ownership: paths and strings passed in are borrowed; strings returned via
 * char** / char* are the caller's to free(). */
#pragma once
#include "digest.h"
#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_LAYOUT_VERSION "1.0.0"
#define SUB_LAYOUT_MAX_INDEX (16u << 20) /* index.json size cap */

/* Create dir (and parents), oci-layout, an empty index.json and blobs/sha256.
 * Idempotent: an existing layout is left as it is (but its oci-layout file
 * must be valid). */
int sub_layout_init(const char *dir, sub_err *e);
/* Remove the temp files of dead writers (see above); returns how many. */
int sub_layout_sweep(const char *dir);
#define SUB_LAYOUT_TMP_PART ".part-"    /* a blob being downloaded (registry client) */
#define SUB_LAYOUT_TMP_BLOB ".tmp-blob-" /* a blob being copied in */

/* <dir>/blobs/<alg>/<hex>, or NULL when digest is not a valid digest (so a
 * hostile digest can never name a path outside the layout). Caller frees. */
char *sub_layout_blob_path(const char *dir, const char *digest);

/* Store bytes as a blob (sha256); digest_out gets its digest. A blob that is
 * already present with the right content is left alone. */
int sub_layout_put_blob_buf(const char *dir, const void *data, size_t len,
                            char digest_out[SUB_DIGEST_MAX], sub_err *e);

/* Copy a file in as a blob, hashing while copying; renamed into place only
 * when complete. When expect_digest is non-NULL a mismatch is refused
 * (-EILSEQ, nothing kept). digest_out may be NULL. */
int sub_layout_put_blob_file(const char *dir, const char *src, const char *expect_digest,
                             char digest_out[SUB_DIGEST_MAX], sub_err *e);

/* Add or replace the index.json entry named ref_name (annotation
 * org.opencontainers.image.ref.name) so it points at digest. ref_name NULL
 * adds an unnamed entry (once per digest). The blob must already be in the
 * layout with this size (and, for manifests, this digest). Atomic rewrite. */
int sub_layout_tag(const char *dir, const char *ref_name, const char *media_type,
                   const char *digest, uint64_t size, sub_err *e);

/* Find the entry named ref_name (or, when ref_name is a digest, the entry
 * with that digest). media_type and size may be NULL. -ENOENT (input class)
 * when there is no such name, listing the names there are. */
int sub_layout_resolve(const char *dir, const char *ref_name, char digest_out[SUB_DIGEST_MAX],
                       char **media_type, uint64_t *size, sub_err *e);

/* Check every blob reachable from index.json (through indexes, manifests,
 * configs and layers) exists, has the size its descriptor says and hashes to
 * its name. Returns the number of blobs checked (>= 0), or a negative error
 * (check class for missing or corrupt content). */
int sub_layout_verify(const char *dir, sub_err *e);

/* Read a blob into memory (at most max bytes), checking its digest. */
int sub_layout_read_blob(const char *dir, const char *digest, size_t max, char **out, size_t *len,
                         sub_err *e);

/* 1 when the blob is present with this size (0 = unknown) and content,
 * 0 when absent, < 0 when present but wrong (check class) or unreadable. */
int sub_layout_check_blob(const char *dir, const char *digest, uint64_t size, sub_err *e);
/* The fast path of the same question: 1 when the blob is a regular file of
 * this size, 0 when absent, < 0 when present with another size or not a
 * regular file. The content is NOT read: it trusts that nothing altered the
 * layout since it was written (pull --trust-layout). */
int sub_layout_has_blob(const char *dir, const char *digest, uint64_t size, sub_err *e);

/* Validate a ref.name per the layout spec:
 * component ("/" component)*, component = alnum+ (sep alnum+)*, sep = [-._:@+] | "--". */
int sub_layout_refname_validate(const char *name, sub_err *e);

/* Split a command-line "DIR[:NAME]" into the layout directory and the name
 * (NULL when absent). The name is what follows the last ':' when that part
 * contains no '/', so "/tmp/a:b/c" is a directory; "DIR:sha256:<hex>" names
 * the image by digest. Caller frees both. */
void sub_layout_parse_arg(const char *arg, char **dir, char **name);

struct sub_image_config;
/* The config of the image manifest `digest` in the layout at dir (both
 * digest-checked as read). An index is refused (input class, -EBADMSG):
 * what runs must be named by an image manifest's digest. */
int sub_layout_image_config(const char *dir, const char *digest, struct sub_image_config *cfg, sub_err *e);
