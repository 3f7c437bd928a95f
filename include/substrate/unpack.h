/* Unpacking one image layer (a tar, gzip'd or not) beneath a directory fd,
 * for a root filesystem we build from layers we do not trust (rootfs.h).
 *
 * Integrity: the blob is hashed while it is read and must match its digest
 * (and size, and, when given, the config's diff_id for the uncompressed
 * stream); the layer is read twice (first every header is checked and the
 * whiteouts collected, then the entries are written), each pass checked, so
 * nothing of a corrupt blob is written and a blob changed between the passes
 * fails the unpack. gzip is inflated with zlib (several members allowed,
 * trailing bytes refused); the tar is parsed by libarchive (tar formats
 * only), never written with archive_write_disk.
 *
 * Containment: every entry's raw tar path (archive_entry_pathname, before any
 * normalisation) must be relative without a ".." component; the parent
 * directory is opened with openat2 RESOLVE_BENEATH (fs.h), so a symlink in
 * the tree that leads outside it cannot be written through; the entry itself
 * is created relative to that parent fd and an existing last component is
 * replaced, never followed. A hardlink's target follows the same rules and
 * must already exist (from this or a lower layer) and not be a directory.
 * Directories may not be nested deeper than SUB_UNPACK_MAX_DEPTH (real depth,
 * symlinks resolved, read from /proc/self/fd: /proc must be mounted), so the
 * tree can always be walked and removed.
 *
 * Refused, input class, reason SUB_R_HOSTILE_LAYER, the message naming the
 * layer digest, the entry path (escaped) and why: ".." or absolute paths, a
 * write through a symlink leaving the tree, hardlinks outside or to nothing,
 * character and block devices, FIFOs, sockets, unknown entry types, uid/gid
 * out of range, more bytes or entries than the caps, nesting too deep.
 * setuid/setgid bits are cleared and the path listed in the report. xattrs
 * (file capabilities included) are ignored.
 *
 * Whiteouts (OCI image spec): ".wh.NAME" removes NAME, ".wh..wh..opq" empties
 * its directory; both apply to what lower layers wrote (they are applied
 * before any entry of their own layer), other ".wh..wh.*" names are ignored,
 * and no whiteout file is written. An entry replaces whatever is at its path
 * (a directory and everything below it too), except that a directory entry
 * over an existing directory keeps its contents and only takes its metadata.
 *
 * Ownership (uid/gid, when running as root), permission bits and mtimes are
 * applied (directories' modes and mtimes at the end of the layer, so a 0555
 * directory can still be filled and its mtime is the tar's). */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <stdint.h>

#define SUB_UNPACK_MAX_BYTES (16ULL << 30) /* file bytes over every layer of an image */
#define SUB_UNPACK_MAX_ENTRIES 1000000ULL  /* tar entries over every layer of an image */
#define SUB_UNPACK_MAX_DEPTH 256           /* directory nesting below the root */

/* Accumulated over the layers of one image: pass the same report to every
 * sub_unpack_layer call, zero-initialised before the first. */
typedef struct sub_unpack_report {
    uint64_t max_bytes;     /* cap on file bytes; 0 = SUB_UNPACK_MAX_BYTES */
    uint64_t max_entries;   /* cap on tar entries; 0 = SUB_UNPACK_MAX_ENTRIES */
    uint64_t bytes;         /* file bytes written (sizes as declared, holes included) */
    uint64_t entries;       /* tar entries read (whiteouts included) */
    char **setuid_cleared;  /* NULL or NULL-terminated; owned; paths as in the tar,
                             * normalised ("usr/bin/su"), in the order met, maybe repeated */
} sub_unpack_report;
void sub_unpack_report_done(sub_unpack_report *r);

/* Is this a layer media type we unpack (OCI / Docker tar and tar+gzip)?
 * 0, or -EPROTONOSUPPORT (input class) naming it: zstd, foreign or unknown.
 * *gzip (may be NULL) says whether it is compressed. */
int sub_unpack_media_type(const char *media_type, bool *gzip, sub_err *e);

/* Unpack the layer blob at blob_path (media_type as in the manifest, digest
 * and size from its descriptor, size 0 = not checked; diff_id NULL = not
 * checked) beneath rootfd. On failure the tree may be half-written: the
 * caller unpacks into a temporary directory and removes it. Digest, size or
 * diff_id mismatch: check class, -EILSEQ, reason SUB_R_LAYER_MISMATCH. */
int sub_unpack_layer(int rootfd, const char *blob_path, const char *media_type, const char *digest,
                     uint64_t size, const char *diff_id, sub_unpack_report *rep, sub_err *e);

/* Remove name (relative to dirfd) and, when it is a directory, everything
 * below it: never following symlinks, refusing to cross into another mount
 * (-EXDEV), at most 1024 levels deep. A missing name is success. */
int sub_rm_rf_at(int dirfd, const char *name, sub_err *e);
