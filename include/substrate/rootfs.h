/* Unpacked root filesystems for Tier-1 bundles, content-addressed by image
 * manifest digest, and the content list that deep alignment compares with.
 *
 *   <cache>/<hex>/rootfs/         the tree (the bundle's root filesystem)
 *   <cache>/<hex>/content.json    the content list (below), written last
 *   <cache>/<hex>/unpack.json     {"manifest_digest", "layers": [digests],
 *                                  "setuid_cleared": [paths], "entries": N}
 *
 * Unpacking (sub_rootfs_prepare) reads the image's layers from an OCI layout
 * (every blob digest-checked) with libarchive and writes beneath a directory
 * fd with openat2 (fs.h, SUB_RESOLVE_BENEATH: a symlink in the tree may be
 * written through only when it stays inside; unpack.h has the details),
 * into <cache>/.tmp-<pid>-XXXXXX/ which is renamed to <cache>/<hex>
 * only when complete (content.json included): a half-written entry is never
 * used, and the temp dir of a dead writer is swept (residue.h).
 * Refused (input class, reason SUB_R_HOSTILE_LAYER, message naming the layer
 * digest and the entry path): an entry path with ".." or an absolute path,
 * a write through a symlink that leaves the tree, a hardlink whose target is
 * outside the tree (or not yet unpacked), device nodes (char, block) and
 * FIFOs/sockets. Absolute symlink TARGETS are normal and kept (they resolve
 * inside the rootfs when the container runs). setuid/setgid bits are cleared
 * and listed. OCI whiteouts (.wh.NAME, .wh..wh..opq) remove what lower
 * layers wrote. Ownership (uid/gid) and modes are kept; mtimes too.
 *
 * Content list: a JSON array sorted by path, one object per entry below the
 * rootfs (the root itself excluded):
 *   {"path":"usr/bin/hello","type":"file","mode":"0755","size":123,
 *    "sha256":"<hex>"}                      regular file
 *   {"path":"usr","type":"dir","mode":"0755"}
 *   {"path":"bin/sh","type":"symlink","target":"busybox"}
 * ("mode" is the permission bits in octal, setuid bits already cleared;
 * uid/gid are included as "uid","gid" numbers.)
 *
 * Ownership: strings returned are the caller's to free; sub_rootfs_info and
 * sub_rootfs_diff own their members (release with the _done functions). */
#pragma once
#include "digest.h"
#include "error.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct sub_rootfs_info {
    char *entry_dir;      /* <cache>/<hex> */
    char *rootfs;         /* <cache>/<hex>/rootfs (absolute when cache_dir is) */
    bool reused;          /* an existing entry matched its content list */
    bool replaced;        /* an existing entry did NOT match and was unpacked again */
    char **setuid_cleared; /* NULL-terminated paths whose setuid/setgid bits were cleared */
    size_t entries;       /* entries in the content list */
} sub_rootfs_info;

/* The entry for manifest_digest (an image manifest in layout_dir): reuse it
 * when present and sub_rootfs_check finds no difference; otherwise (absent,
 * or different: a tampered entry is removed first) unpack it afresh.
 * cache_dir is created when missing. */
int sub_rootfs_prepare(const char *layout_dir, const char *manifest_digest, const char *cache_dir,
                       sub_rootfs_info *out, sub_err *e);
void sub_rootfs_info_done(sub_rootfs_info *i);

struct sub_reg;
struct sub_image_config;
/* The fetch step both tiers take: pull repo@digest through reg into the
 * OCI layout at layout_dir (created when missing; every byte checked),
 * sub_rootfs_prepare it into cache_dir, and read its image config.
 * Errors are prefixed "pulling <digest>" or "unpacking <digest>". On
 * failure *info and *cfg hold nothing to free. */
int sub_rootfs_fetch(struct sub_reg *reg, const char *repo, const char *digest, const char *layout_dir,
                     const char *cache_dir, sub_rootfs_info *info, struct sub_image_config *cfg, sub_err *e);

typedef enum { SUB_ROOTFS_CHANGED = 0, SUB_ROOTFS_ADDED, SUB_ROOTFS_REMOVED } sub_rootfs_change;
typedef struct sub_rootfs_diff_item {
    sub_rootfs_change change;
    char *path;           /* relative to the rootfs */
    char *what;           /* "content", "mode", "type", "size", "target", "owner" (CHANGED) */
} sub_rootfs_diff_item;
typedef struct sub_rootfs_diff {
    sub_rootfs_diff_item *items;
    size_t n;
} sub_rootfs_diff;

/* Compare entry_dir/rootfs with entry_dir/content.json, walking the tree
 * without following symlinks or crossing mounts. 0 and diff->n == 0 when
 * equal; 0 with the differences in diff otherwise; < 0 when the entry cannot
 * be read (no content list: -ENOENT). Files are re-hashed. */
int sub_rootfs_check(const char *entry_dir, sub_rootfs_diff *diff, sub_err *e);
void sub_rootfs_diff_done(sub_rootfs_diff *d);
const char *sub_rootfs_change_str(sub_rootfs_change c); /* "changed", "added", "removed" */
