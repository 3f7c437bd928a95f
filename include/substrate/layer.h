/* Deterministic image layers: a gzip-compressed tar written from a list of
 * declared entries, so that the bytes (and both digests) are a pure function
 * of the entries and one timestamp — never of the host files' owners, modes,
 * timestamps, extended attributes, the order the entries were given in, the
 * current time, the process id or the locale.
 *
 * Rules applied by sub_layer_write():
 *   - paths are normalised (leading '/' dropped; a DIR may end in one '/'),
 *     then sorted bytewise (strcmp); a parent always precedes its children;
 *   - missing parent directories are added implicitly with mode 0755;
 *   - a path given twice, an empty, "." or ".." component, a non-printable or
 *     non-ASCII byte, a FILE without src, a SYMLINK without target, a mode
 *     outside 07777, or an entry below a FILE/SYMLINK entry is an error that
 *     names the entry;
 *   - uid/gid 0, empty uname/gname, every mtime = the given mtime, no
 *     atime/ctime, no xattrs, ACLs or file flags; the mode comes only from the
 *     entry (a SYMLINK with mode 0 is stored as 0777);
 *   - a FILE's bytes are streamed from src, which must be a regular file; a
 *     file whose size changes while it is copied is an error;
 *   - directories are named with a trailing '/';
 *   - tar format: POSIX pax-restricted (plain ustar headers unless a long
 *     name or link target forces a pax extended header);
 *   - gzip via zlib deflate (level SUB_LAYER_GZIP_LEVEL, windowBits 31) with a
 *     fixed header: mtime 0, no file name or comment, OS byte SUB_LAYER_GZIP_OS.
 *     The compressed bytes depend on the level and on the zlib version, so
 *     both are part of the reproducibility contract: images carry them in the
 *     label dev.substrate.layer-compression (sub_layer_compression()).
 * The output is written atomically (temp file in the same directory, fsync,
 * rename, fsync of the directory); on failure nothing is left at out_path
 * and no temp file remains. */
#pragma once
#include "digest.h"
#include "error.h"
#include <stddef.h>
#include <stdint.h>

/* Deflate level of every layer. 6, zlib's default: level 9 cost 44 % of a
 * release's CPU for layers 0.5 % smaller (measured on the hello image). */
#define SUB_LAYER_GZIP_LEVEL 6

/* "gzip-6 zlib-1.2.13": the level and the zlib version that made the layer
 * bytes (static storage). */
const char *sub_layer_compression(void);

/* OS byte (offset 9) of every layer's gzip header: 255 = "unknown", as
 * written by Go's compress/gzip (and so by most OCI tooling). */
#define SUB_LAYER_GZIP_OS 255

/* Media types of what sub_layer_write() produces. */
#define SUB_LAYER_MEDIA_TYPE "application/vnd.oci.image.layer.v1.tar+gzip"

typedef enum { SUB_LAYER_FILE, SUB_LAYER_DIR, SUB_LAYER_SYMLINK } sub_layer_type;

typedef struct sub_layer_entry {
    const char *path;   /* path in the image, e.g. "usr/bin/hello" or "/usr/bin/hello" (leading '/' ignored) */
    sub_layer_type type;
    const char *src;    /* FILE: host file whose bytes are copied (must be a regular file) */
    const char *target; /* SYMLINK: link target, stored as given */
    unsigned mode;      /* permission bits incl. setuid/sticky, e.g. 0755, 01777 */
} sub_layer_entry;

typedef struct sub_layer_result {
    char digest[SUB_DIGEST_MAX];  /* sha256 of the gzip blob */
    char diff_id[SUB_DIGEST_MAX]; /* sha256 of the uncompressed tar */
    uint64_t size;                /* gzip blob size */
    uint64_t tar_size;
} sub_layer_result;

/* Write a gzip-compressed tar layer to out_path (atomically: temp + fsync +
 * rename; nothing left on failure). entries (n of them) and every string
 * they point to stay owned by the caller. mtime (seconds since the epoch,
 * >= 0; normally SOURCE_DATE_EPOCH) is stored for every entry. On success
 * *res (may be NULL) is filled and 0 returned; on failure *res is untouched
 * and a negative errno is returned with *e naming the offending entry:
 * -EINVAL (input class) for a bad entry list, a duplicate path or a src that
 * is not a regular file; -ENOENT/-EACCES/... for an unreadable src; -EIO for
 * a src whose size changed while it was read, or a libarchive/zlib failure;
 * the write error (-ENOSPC, ...) when the output cannot be written. */
int sub_layer_write(const sub_layer_entry *entries, size_t n, int64_t mtime, const char *out_path,
                    sub_layer_result *res, sub_err *e);
