#define _XOPEN_SOURCE 700
#include "substrate/fs.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

const char *sub_io_hint(int err) {
    switch (err) {
    case ENOSPC: return " (the disk is full: free space under the state dir or point SUBSTRATE_STATE elsewhere)";
    case EDQUOT: return " (disk quota exceeded)";
    case EROFS: return " (read-only filesystem: point SUBSTRATE_STATE at a writable directory)";
    case EACCES:
    case EPERM: return " (permission denied: run as root or fix the directory's ownership)";
    default: return "";
    }
}

char *sub_path_join(const char *a, const char *b) {
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/') la--;
    while (*b == '/') b++;
    if (!*b) return xstrndup(a, la);
    return xasprintf("%.*s/%s", (int)la, a, b);
}

bool sub_path_exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

int sub_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int sub_write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write data to a fresh 0600 temp file beside path, set mode, fsync, close.
 * *tmp gets its name (caller unlinks/renames and frees). */
static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char **tmp,
                      sub_err *e) {
    _cleanup_free_ char *dcopy = xstrdup(path);
    const char *dir = dirname(dcopy);
    /* <path>.tmp-<pid>-XXXXXX, 0600: never visible with a wider mode; removed if
     * we are interrupted, swept by the next writer if we are killed (residue.h) */
    char *t = xasprintf("%s" SUB_FS_TMP "%d-XXXXXX", path, (int)getpid());
    int fd = mkostemp(t, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        free(t);
        return sub_err_set(e, -err, "cannot create a file in %s: %s%s", dir, strerror(err),
                           sub_io_hint(err));
    }
    sub_residue_add(t);
    int r = sub_write_all(fd, data, len);
    if (r == 0 && fchmod(fd, mode) < 0) r = -errno;
    if (r == 0 && fsync(fd) < 0) r = -errno;
    if (close(fd) < 0 && r == 0) r = -errno;
    if (r < 0) {
        unlink(t);
        sub_residue_forget(t);
        free(t);
        return sub_err_set(e, r, "cannot write %s: %s%s", path, strerror(-r), sub_io_hint(-r));
    }
    *tmp = t;
    return 0;
}

int sub_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                          sub_err *e) {
    _cleanup_free_ char *tmp = NULL;
    int r = write_temp(path, data, len, mode, &tmp, e);
    if (r < 0) return r;
    if (rename(tmp, path) < 0) {
        r = -errno;
        unlink(tmp);
        sub_residue_forget(tmp);
        return sub_err_set(e, r, "cannot write %s: %s%s", path, strerror(-r), sub_io_hint(-r));
    }
    sub_residue_forget(tmp);
    _cleanup_free_ char *dcopy = xstrdup(path);
    sub_fsync_dir(dirname(dcopy));
    return 0;
}

int sub_write_file_new(const char *path, const void *data, size_t len, mode_t mode, sub_err *e) {
    _cleanup_free_ char *tmp = NULL;
    int r = write_temp(path, data, len, mode, &tmp, e);
    if (r < 0) return r;
    r = link(tmp, path) < 0 ? -errno : 0;
    unlink(tmp);
    sub_residue_forget(tmp);
    if (r == -EEXIST)
        return sub_err_setk(e, SUB_KIND_INPUT, -EEXIST,
                            "%s already exists; refusing to overwrite it (move it away or choose "
                            "another name)",
                            path);
    if (r < 0) return sub_err_set(e, r, "cannot write %s: %s%s", path, strerror(-r), sub_io_hint(-r));
    _cleanup_free_ char *dcopy = xstrdup(path);
    sub_fsync_dir(dirname(dcopy));
    return 0;
}

int sub_read_file(const char *path, size_t max, char **out, size_t *len, sub_err *e) {
    /* O_NONBLOCK: a FIFO planted at path must not hang the open */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        return sub_err_set(e, -err, "cannot open %s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", path);
    if (S_ISDIR(st.st_mode)) return sub_err_set(e, -EISDIR, "%s is a directory, not a file", path);
    if (!S_ISREG(st.st_mode))
        return sub_err_set(e, -EINVAL, "%s is not a regular file (a device, FIFO or socket)", path);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (S_ISREG(st.st_mode) && (size_t)st.st_size > max)
        return sub_err_set(e, -EFBIG, "%s is too large (%lld bytes; the limit is %zu)", path,
                           (long long)st.st_size, max);
    return sub_read_fd(fd, path, max, out, len, e);
}

int sub_read_fd(int fd, const char *what, size_t max, char **out, size_t *len, sub_err *e) {
    sub_buf b = SUB_BUF_INIT;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int r = sub_err_set(e, -errno, "cannot read %s: %m", what);
            sub_buf_free(&b);
            return r;
        }
        if (n == 0) break;
        if (b.len + (size_t)n > max) {
            sub_buf_free(&b);
            return sub_err_set(e, -EFBIG, "%s is too large (the limit is %zu bytes)", what, max);
        }
        sub_buf_append(&b, buf, (size_t)n);
    }
    *out = sub_buf_detach(&b, len);
    return 0;
}

int sub_mkdir_p(const char *path, mode_t mode, sub_err *e) {
    _cleanup_free_ char *p = xstrdup(path);
    size_t n = strlen(p);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            int err = errno;
            return sub_err_set(e, -err, "cannot create directory %s: %s%s", p, strerror(err),
                               sub_io_hint(err));
        }
        p[i] = c;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return sub_err_set(e, -ENOTDIR, "%s exists and is not a directory", path);
    return 0;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    int r = (flag == FTW_DP) ? rmdir(p) : unlink(p);
    if (r < 0 && errno != ENOENT) return -errno;
    return 0;
}

int sub_rm_rf(const char *path, sub_err *e) {
    if (!path || !*path || !strcmp(path, "/"))
        return sub_err_set(e, -EINVAL, "refusing to remove \"%s\"", path ? path : "");
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : sub_err_set(e, -errno, "cannot stat %s: %m", path);
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return sub_err_set(e, -errno, "cannot remove %s: %m", path);
        return 0;
    }
    int r = nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (r != 0) {
        int err = r < 0 ? (errno ? errno : EIO) : -r;
        return sub_err_set(e, -err, "cannot remove %s: %s", path, strerror(err));
    }
    return 0;
}

int sub_mkdtemp(const char *parent, const char *prefix, char **out, sub_err *e) {
    int r = sub_mkdir_p(parent, 0755, e);
    if (r < 0) return r;
    char *t = xasprintf("%s/%sXXXXXX", parent, prefix);
    if (!mkdtemp(t)) {
        int err = errno;
        free(t);
        return sub_err_set(e, -err, "cannot create a temporary directory in %s: %s%s", parent,
                           strerror(err), sub_io_hint(err));
    }
    *out = t;
    return 0;
}

int sub_copy_file(const char *src, const char *dst, mode_t mode, sub_err *e) {
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return sub_err_set(e, -errno, "cannot open %s: %m", src);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp.XXXXXX", dst);
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return sub_err_set(e, -err, "cannot create %s: %s%s", tmp, strerror(err), sub_io_hint(err));
    }
    char buf[65536];
    int r = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            r = -errno;
            break;
        }
        if (n == 0) break;
        if ((r = sub_write_all(fd, buf, (size_t)n)) < 0) break;
    }
    if (r == 0 && fchmod(fd, mode) < 0) r = -errno;
    if (r == 0 && fsync(fd) < 0) r = -errno;
    if (r == 0 && close(TAKE_FD(fd)) < 0) r = -errno;
    if (r == 0 && rename(tmp, dst) < 0) r = -errno;
    if (r < 0) {
        unlink(tmp);
        return sub_err_set(e, r, "cannot copy %s to %s: %s%s", src, dst, strerror(-r),
                           sub_io_hint(-r));
    }
    return 0;
}

bool sub_fs_nearly_full(const char *path) {
    struct statvfs sv;
    if (statvfs(path, &sv) < 0) return false;
    unsigned long long avail = (unsigned long long)sv.f_bavail * sv.f_frsize;
    return avail < (256ull << 10) || (sv.f_files && sv.f_favail == 0);
}

/* A mount point field of /proc/self/mountinfo, its octal escapes (\040 for
 * a blank, \011, \012, \134) undone in place. */
static void unescape_mountinfo(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static int cmp_len_desc(const void *a, const void *b) {
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
    return la < lb ? 1 : la > lb ? -1 : strcmp(*(char *const *)a, *(char *const *)b);
}

int sub_umount_under(const char *dir) {
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return 0;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    _cleanup_strv_ char **v = NULL;
    size_t n = 0;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... */
        char *save = NULL, *mp = strtok_r(line, " ", &save);
        for (int i = 0; mp && i < 4; i++) mp = strtok_r(NULL, " ", &save);
        if (!mp) continue;
        unescape_mountinfo(mp);
        if (strncmp(mp, dir, dl) || (mp[dl] != '/' && mp[dl] != '\0')) continue;
        strv_push(&v, mp);
        n++;
    }
    if (!n) return 0;
    qsort(v, n, sizeof *v, cmp_len_desc); /* the deepest first */
    int done = 0;
    for (size_t i = 0; i < n; i++)
        if (umount2(v[i], MNT_DETACH | UMOUNT_NOFOLLOW) == 0) done++;
    return done;
}
