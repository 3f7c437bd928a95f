/* Filesystem utilities. All paths are caller-owned; outputs allocated here
 * are returned to the caller to free. */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <sys/types.h>

/* write(2) all of data, retrying on EINTR; 0 or -errno. */
int sub_write_all(int fd, const void *data, size_t len);
/* The temporary files of the two calls below are named <path>.tmp-<pid>-XXXXXX
 * (see residue.h). */
#define SUB_FS_TMP ".tmp-"
/* Write via temp file in the same directory + fsync + rename + fsync(dir).
 * Readers see either the old file or the complete new one, never a part. */
int sub_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, sub_err *e);
/* The same, but never replacing anything: -EEXIST (input class, message
 * naming path) when path exists. */
int sub_write_file_new(const char *path, const void *data, size_t len, mode_t mode, sub_err *e);
/* Read a whole file; fails with -EFBIG when larger than max. *out is
 * NUL-terminated (not counted in *len). */
int sub_read_file(const char *path, size_t max, char **out, size_t *len, sub_err *e);
/* Read fd to its end (a pipe, stdin); what names it in messages. The same
 * limit (-EFBIG) and result as sub_read_file. */
int sub_read_fd(int fd, const char *what, size_t max, char **out, size_t *len, sub_err *e);
int sub_mkdir_p(const char *path, mode_t mode, sub_err *e);
/* Detach every mount at or under dir (deepest first, MNT_DETACH, never
 * following a symlink), as /proc/self/mountinfo lists them: what a killed
 * chroot builder (mmdebstrap's /proc, /sys, /dev/pts) leaves behind, before
 * sub_rm_rf, which does not cross mount points. Returns how many were
 * detached. */
int sub_umount_under(const char *dir);
/* Remove a tree without following symlinks or crossing mount points.
 * A missing path is success. Refuses "/" and "". */
int sub_rm_rf(const char *path, sub_err *e);
/* Create a fresh private directory parent/prefixXXXXXX; *out to free. */
int sub_mkdtemp(const char *parent, const char *prefix, char **out, sub_err *e);
int sub_fsync_dir(const char *dir);
/* Copy a regular file (contents + mode), atomically at dst. */
int sub_copy_file(const char *src, const char *dst, mode_t mode, sub_err *e);
/* Join two path pieces with exactly one '/' between them. Caller frees. */
char *sub_path_join(const char *a, const char *b);
bool sub_path_exists(const char *p);
/* After a failed write by a child process: is the filesystem holding path
 * (nearly) out of space, so the failure is most likely a full disk? */
bool sub_fs_nearly_full(const char *path);
/* Readable message for an I/O errno, with a hint for ENOSPC/EROFS/EACCES. */
const char *sub_io_hint(int err);

/* ---- Work beneath a directory fd (openat2) -----------------------------------------------
 * For writing into a tree we do not trust (unpacking a hostile layer into a
 * rootfs, writing a bundle): every path is resolved by the kernel relative to
 * rootfd, with magic links (/proc/self/fd/...) refused, so no "..", absolute
 * path or symlink in the tree (or in the path given) can reach outside it,
 * even if the tree changes while we work. Two modes:
 *   SUB_RESOLVE_BENEATH  any escape is refused (-EXDEV, input class): "..",
 *                        an absolute path or a symlink pointing out;
 *   SUB_RESOLVE_IN_ROOT  rootfd acts as "/" (as a container sees its rootfs):
 *                        ".." stops at it and absolute symlinks resolve inside
 *                        it, so every path is contained, never refused.
 * openat2 needs Linux 5.6; without it (-ENOSYS, e.g. an old kernel or a
 * seccomp filter) the helpers fail with an environment error saying so, and
 * never fall back to comparing path strings. A rename racing the lookup
 * (-EAGAIN) is retried. Returned fds are O_CLOEXEC. */
typedef enum {
    SUB_RESOLVE_BENEATH,
    SUB_RESOLVE_IN_ROOT,
} sub_resolve;

/* openat2(rootfd, path, flags | O_CLOEXEC, mode) in the given mode; the fd or -errno. */
int sub_open_at(int rootfd, const char *path, int flags, mode_t mode, sub_resolve how, sub_err *e);
/* mkdir -p of path beneath rootfd (components made with mode, existing
 * directories and symlinks to directories inside the root are fine); the fd of
 * the final directory (O_DIRECTORY) or -errno. */
int sub_mkdir_p_at(int rootfd, const char *path, mode_t mode, sub_resolve how, sub_err *e);
/* Write path beneath rootfd atomically: a temp file in its (existing) parent
 * directory, fsync, renameat over path (a symlink at path is replaced, never
 * followed), fsync of the parent. 0 or -errno. */
int sub_write_file_at(int rootfd, const char *path, const void *data, size_t len, mode_t mode,
                      sub_resolve how, sub_err *e);
/* The names in the directory fd other than "." and ".." (NULL-terminated,
 * caller frees with strv_free), read completely before returning, so the
 * caller may remove entries while it goes through them. 0 or -errno. */
int sub_dir_names_at(int fd, char ***out);
