/* openat2-based helpers: file work beneath a directory fd (see fs.h). */
#include "substrate/fs.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *mode_name(sub_resolve how) {
    return how == SUB_RESOLVE_IN_ROOT ? "inside" : "beneath";
}

/* What rootfd names, for messages (best effort). */
static void root_name(int rootfd, char out[PATH_MAX]) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", rootfd);
    ssize_t n = readlink(link, out, PATH_MAX - 1);
    if (n <= 0) snprintf(out, PATH_MAX, "directory fd %d", rootfd);
    else out[n] = 0;
}

static int raw_openat2(int rootfd, const char *path, int flags, mode_t mode, sub_resolve how) {
    struct open_how oh = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_NO_MAGICLINKS |
                   (how == SUB_RESOLVE_IN_ROOT ? RESOLVE_IN_ROOT : RESOLVE_BENEATH),
    };
    for (int attempt = 0;; attempt++) {
        long fd = syscall(SYS_openat2, rootfd, path, &oh, sizeof oh);
        if (fd >= 0) return (int)fd;
        /* EAGAIN: a rename or mount raced the lookup; the kernel asks for a retry */
        if ((errno == EAGAIN || errno == EINTR) && attempt < 32) continue;
        return -errno;
    }
}

static int open_err(int rootfd, const char *path, int err, sub_resolve how, sub_err *e) {
    char root[PATH_MAX];
    root_name(rootfd, root);
    switch (err) {
    case ENOSYS:
        return sub_err_setk(e, SUB_KIND_ENV, -ENOSYS,
                            "cannot open %s %s %s: this kernel has no openat2 (Linux 5.6 or "
                            "later is needed to work safely inside a directory tree; a seccomp "
                            "filter can also hide it); refusing to fall back to path checks",
                            path, mode_name(how), root);
    case EXDEV:
        return sub_err_setk(e, SUB_KIND_INPUT, -EXDEV,
                            "%s leads outside %s (through \"..\", an absolute path or a "
                            "symlink); refused",
                            path, root);
    case ELOOP:
        return sub_err_setk(e, SUB_KIND_INPUT, -ELOOP,
                            "%s %s %s: too many symlinks, or a /proc magic link; refused", path,
                            mode_name(how), root);
    default:
        return sub_err_set(e, -err, "cannot open %s %s %s: %s%s", path, mode_name(how), root,
                           strerror(err), sub_io_hint(err));
    }
}

int sub_open_at(int rootfd, const char *path, int flags, mode_t mode, sub_resolve how,
                sub_err *e) {
    if (!path || !*path) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "empty path");
    int fd = raw_openat2(rootfd, path, flags, mode, how);
    return fd >= 0 ? fd : open_err(rootfd, path, -fd, how, e);
}

int sub_mkdir_p_at(int rootfd, const char *path, mode_t mode, sub_resolve how, sub_err *e) {
    if (!path) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "empty path");
    /* Each prefix is resolved from rootfd again (never from an fd we got by
     * walking), so a ".." or a symlink met on the way is judged against the
     * root, not against the directory we happen to be in. */
    size_t n = strlen(path);
    _cleanup_free_ char *p = xstrdup(path);
    int cur = sub_open_at(rootfd, *p == '/' ? "/" : ".", O_DIRECTORY | O_RDONLY, 0, how, e);
    if (cur < 0) return cur;
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/') i++;
        if (i >= n) break;
        size_t start = i;
        while (i < n && p[i] != '/') i++;
        char save = p[i];
        p[i] = 0;
        const char *comp = p + start;
        if (strcmp(comp, ".") != 0 && strcmp(comp, "..") != 0 && mkdirat(cur, comp, mode) < 0 &&
            errno != EEXIST) {
            int err = errno;
            char root[PATH_MAX];
            root_name(rootfd, root);
            close(cur);
            return sub_err_set(e, -err, "cannot create directory %s %s %s: %s%s", p,
                               mode_name(how), root, strerror(err), sub_io_hint(err));
        }
        close(cur);
        cur = sub_open_at(rootfd, p, O_DIRECTORY | O_RDONLY, 0, how, e);
        p[i] = save;
        if (cur < 0) return cur;
    }
    return cur;
}

int sub_write_file_at(int rootfd, const char *path, const void *data, size_t len, mode_t mode,
                      sub_resolve how, sub_err *e) {
    if (!path || !*path) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "empty path");
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "%s does not name a file", path);
    if (strlen(base) > NAME_MAX - 24)
        return sub_err_setk(e, SUB_KIND_INPUT, -ENAMETOOLONG, "%s: the name is too long", path);
    _cleanup_free_ char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
    if (!*dir) {
        free(dir);
        dir = xstrdup("/");
    }
    _cleanup_close_ int dfd = sub_open_at(rootfd, dir, O_DIRECTORY | O_RDONLY, 0, how, e);
    if (dfd < 0) return dfd;
    /* a fresh single-component name in that directory: O_EXCL never follows a symlink */
    char tmp[NAME_MAX + 1];
    _cleanup_close_ int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 16; attempt++) {
        unsigned rnd = 0;
        if (getrandom(&rnd, sizeof rnd, 0) < 0) rnd = (unsigned)attempt;
        snprintf(tmp, sizeof tmp, ".%s.tmp-%d-%08x", base, (int)getpid(), rnd);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        int err = errno;
        return sub_err_set(e, -err, "cannot create a file beside %s: %s%s", path, strerror(err),
                           sub_io_hint(err));
    }
    int r = sub_write_all(fd, data, len);
    if (r == 0 && fchmod(fd, mode) < 0) r = -errno;
    if (r == 0 && fsync(fd) < 0) r = -errno;
    if (r == 0 && close(TAKE_FD(fd)) < 0) r = -errno;
    if (r == 0 && renameat(dfd, tmp, dfd, base) < 0) r = -errno;
    if (r < 0) {
        unlinkat(dfd, tmp, 0);
        return sub_err_set(e, r, "cannot write %s: %s%s", path, strerror(-r), sub_io_hint(-r));
    }
    fsync(dfd);
    return 0;
}

int sub_dir_names_at(int fd, char ***out) {
    *out = NULL;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dfd < 0) return -errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        int err = errno;
        close(dfd);
        return -err;
    }
    rewinddir(d); /* the dup shares fd's position */
    char **v = xcalloc(1, sizeof *v);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) strv_push(&v, de->d_name);
    int err = errno;
    closedir(d);
    if (err) {
        strv_free(v);
        return -err;
    }
    *out = v;
    return 0;
}
