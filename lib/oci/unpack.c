/* Layer unpacking beneath a directory fd (see unpack.h). */
#include "substrate/unpack.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/manifest.h"
#include "substrate/strbuf.h"
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define WH_PREFIX ".wh."
#define WH_META ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define RM_MAX_DEPTH 1024
#define BUFSZ (64 * 1024)
#define MT_DOCKER_LAYER_TAR "application/vnd.docker.image.rootfs.diff.tar"
#define MT_OCI_ND_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define MT_OCI_ND_TAR "application/vnd.oci.image.layer.nondistributable.v1.tar"

/* ---- media types ------------------------------------------------------------------------ */

int sub_unpack_media_type(const char *media_type, bool *gzip, sub_err *e) {
    _cleanup_free_ char *mt = sub_mt_normalize(media_type ? media_type : "");
    bool gz;
    if (streq(mt, SUB_MT_OCI_LAYER_GZIP) || streq(mt, SUB_MT_DOCKER_LAYER_GZIP) ||
        streq(mt, MT_OCI_ND_GZIP))
        gz = true;
    else if (streq(mt, SUB_MT_OCI_LAYER_TAR) || streq(mt, MT_DOCKER_LAYER_TAR) ||
             streq(mt, MT_OCI_ND_TAR))
        gz = false;
    else if (str_has_suffix(mt, "+zstd") || str_has_suffix(mt, ".zstd"))
        return sub_err_setk(e, SUB_KIND_INPUT, -EPROTONOSUPPORT,
                            "layer media type %s: zstd-compressed layers are not supported "
                            "(push the image with gzip or uncompressed layers)",
                            mt);
    else
        return sub_err_setk(e, SUB_KIND_INPUT, -EPROTONOSUPPORT,
                            "layer media type \"%s\" is not one we unpack (OCI or Docker tar or "
                            "tar+gzip layers only)",
                            mt);
    if (gzip) *gzip = gz;
    return 0;
}

/* ---- removal beneath a directory fd --------------------------------------------------------- */

static int rm_rec(int dirfd, const char *name, dev_t dev, int depth) {
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return 0;
    if (errno != EISDIR && errno != EPERM) return -errno;
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (st.st_dev != dev) return -EXDEV; /* a mount point: not ours to empty */
    if (depth >= RM_MAX_DEPTH) return -ELOOP;
    _cleanup_strv_ char **names = NULL;
    int r = sub_dir_names_at(fd, &names);
    if (r < 0) return r;
    for (char **n = names; *n; n++)
        if ((r = rm_rec(fd, *n, dev, depth + 1)) < 0) return r;
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) return -errno;
    return 0;
}

static bool single_name(const char *name) {
    return name && *name && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/');
}

int sub_rm_rf_at(int dirfd, const char *name, sub_err *e) {
    if (!single_name(name))
        return sub_err_set(e, -EINVAL, "refusing to remove \"%s\": not a single name",
                           name ? name : "");
    struct stat st;
    if (fstat(dirfd, &st) < 0) return sub_err_set(e, -errno, "cannot stat a directory: %m");
    int r = rm_rec(dirfd, name, st.st_dev, 0);
    if (r == -EXDEV)
        return sub_err_set(e, r, "cannot remove %s: a mount point is below it; unmount it first",
                           name);
    if (r == -ELOOP)
        return sub_err_set(e, r, "cannot remove %s: nested more than %d directories deep", name,
                           RM_MAX_DEPTH);
    if (r < 0)
        return sub_err_set(e, r, "cannot remove %s: %s%s", name, strerror(-r), sub_io_hint(-r));
    return 0;
}

/* ---- reading the blob: hashing, inflating ---------------------------------------------------- */

typedef struct src {
    int fd;
    bool gz;
    uint64_t want_size; /* 0: unknown */
    uint64_t diff_max;  /* cap on the uncompressed stream */
    sub_sha256 blob_h, diff_h;
    uint64_t blob_n, diff_n;
    z_stream z;
    bool z_ready, member_done, in_eof;
    int err;      /* < 0 once reading failed */
    bool err_check; /* the failure is a mismatch with the descriptor (check class) */
    char why[256];
    unsigned char in[BUFSZ], out[BUFSZ];
} src;

static int src_fail(src *s, int err, bool check, const char *fmt, ...) _printf_(4, 5);
static int src_fail(src *s, int err, bool check, const char *fmt, ...) {
    if (s->err == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->why, sizeof s->why, fmt, ap);
        va_end(ap);
        s->err = err;
        s->err_check = check;
    }
    return s->err;
}

static int src_start(src *s, sub_err *e) {
    if (lseek(s->fd, 0, SEEK_SET) < 0) return sub_err_set(e, -errno, "cannot rewind a layer: %m");
    sub_sha256_free(&s->blob_h);
    sub_sha256_free(&s->diff_h);
    int r;
    if ((r = sub_sha256_init(&s->blob_h, e)) < 0 || (r = sub_sha256_init(&s->diff_h, e)) < 0)
        return r;
    s->blob_n = s->diff_n = 0;
    s->member_done = s->in_eof = false;
    s->err = 0;
    s->err_check = false;
    s->why[0] = 0;
    if (s->gz) {
        if (s->z_ready) inflateEnd(&s->z);
        memset(&s->z, 0, sizeof s->z);
        if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
            return sub_err_set(e, -ENOMEM, "cannot set up zlib");
        s->z_ready = true;
    }
    return 0;
}

static void src_done(src *s) {
    sub_sha256_free(&s->blob_h);
    sub_sha256_free(&s->diff_h);
    if (s->z_ready) inflateEnd(&s->z);
    s->z_ready = false;
}

/* Raw blob bytes into s->in; the count, 0 at the end, or < 0. */
static ssize_t src_raw(src *s) {
    ssize_t n;
    do n = read(s->fd, s->in, BUFSZ);
    while (n < 0 && errno == EINTR);
    if (n < 0) return src_fail(s, -errno, false, "cannot read the blob: %s", strerror(errno));
    sub_sha256_update(&s->blob_h, s->in, (size_t)n);
    s->blob_n += (uint64_t)n;
    if (s->want_size && s->blob_n > s->want_size)
        return src_fail(s, -EILSEQ, true, "the blob is larger than its descriptor's %llu bytes",
                        (unsigned long long)s->want_size);
    return n;
}

static ssize_t src_out(src *s, const unsigned char *p, size_t n) {
    s->diff_n += n;
    if (s->diff_n > s->diff_max)
        return src_fail(s, -EFBIG, false,
                        "the uncompressed layer is larger than %llu bytes (a decompression bomb?)",
                        (unsigned long long)s->diff_max);
    sub_sha256_update(&s->diff_h, p, n);
    return (ssize_t)n;
}

/* The next piece of the uncompressed stream in *buf: its length, 0 at the end, < 0. */
static ssize_t src_next(src *s, const void **buf) {
    if (s->err) return s->err;
    if (!s->gz) {
        ssize_t n = src_raw(s);
        *buf = s->in;
        return n <= 0 ? n : src_out(s, s->in, (size_t)n);
    }
    for (;;) {
        if (s->z.avail_in == 0 && !s->in_eof) {
            ssize_t n = src_raw(s);
            if (n < 0) return n;
            if (n == 0) s->in_eof = true;
            s->z.next_in = s->in;
            s->z.avail_in = (uInt)n;
        }
        if (s->member_done) {
            if (s->z.avail_in == 0) {
                if (s->in_eof) return 0;
                continue;
            }
            /* another gzip member follows (anything else fails its header check) */
            inflateReset(&s->z);
            s->member_done = false;
        }
        if (s->z.avail_in == 0 && s->in_eof)
            return src_fail(s, -EBADMSG, false, "the gzip stream is truncated");
        s->z.next_out = s->out;
        s->z.avail_out = BUFSZ;
        int zr = inflate(&s->z, Z_NO_FLUSH);
        size_t produced = BUFSZ - s->z.avail_out;
        if (zr == Z_STREAM_END) s->member_done = true;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return src_fail(s, -EBADMSG, false, "not a valid gzip stream (%s)",
                            s->z.msg ? s->z.msg : "zlib error");
        if (produced) {
            *buf = s->out;
            return src_out(s, s->out, produced);
        }
    }
}

static la_ssize_t src_read_cb(struct archive *a, void *ud, const void **buf) {
    src *s = ud;
    ssize_t n = src_next(s, buf);
    if (n < 0) {
        archive_set_error(a, (int)-n, "%s", s->why);
        return -1;
    }
    return n;
}

/* Read what libarchive left unread (tar padding, trailing members) through
 * the hashes. */
static void src_drain(src *s) {
    const void *b;
    while (src_next(s, &b) > 0) {
    }
}

/* After a failure: hash the rest of the raw blob, so a corrupt blob is
 * reported as such rather than as whatever its corruption broke. */
static void src_drain_raw(src *s) {
    while (!s->in_eof) {
        ssize_t n = src_raw(s);
        if (n <= 0) break;
    }
}

/* ---- the unpack context -------------------------------------------------------------------- */

typedef struct dirmeta {
    char *path; /* "" = the root */
    mode_t mode;
    struct timespec ts[2];
} dirmeta;

typedef struct ctx {
    int rootfd;
    const char *digest;
    const char *diff_id;
    sub_unpack_report *rep;
    uint64_t max_bytes, max_entries;
    bool chown;
    size_t root_slashes;
    char **whiteouts; /* pass 1: the whiteout entries (".../.wh.NAME") */
    char **opaque;    /* pass 1: directories to empty */
    dirmeta *dirs;    /* pass 2: directory metadata, applied at the end */
    size_t n_dirs;
    sub_err *e;
} ctx;

static void ctx_done(ctx *c) {
    strv_free(c->whiteouts);
    strv_free(c->opaque);
    for (size_t i = 0; i < c->n_dirs; i++) free(c->dirs[i].path);
    free(c->dirs);
}

static int entry_err(ctx *c, sub_reason reason, sub_err_kind kind, int code, const char *path,
                     const char *fmt, ...) _printf_(6, 7);
static int entry_err(ctx *c, sub_reason reason, sub_err_kind kind, int code, const char *path,
                     const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    _cleanup_free_ char *p = sub_str_escape(path ? path : "(unreadable)");
    if (reason == SUB_R_HOSTILE_LAYER)
        return sub_err_setr(c->e, reason, kind, code, "layer %s: entry \"%s\": %s; refused",
                            c->digest, p, why);
    return sub_err_setr(c->e, reason, kind, code, "layer %s: entry \"%s\": %s", c->digest, p, why);
}
#define HOSTILE(c, code, path, ...)                                                                \
    entry_err(c, SUB_R_HOSTILE_LAYER, SUB_KIND_INPUT, code, path, __VA_ARGS__)
#define BADINPUT(c, code, path, ...) entry_err(c, SUB_R_NONE, SUB_KIND_INPUT, code, path, __VA_ARGS__)
#define IOERR(c, err, path, what)                                                                  \
    entry_err(c, SUB_R_NONE, SUB_KIND_DEFAULT, -(err), path, "cannot %s: %s%s", what,            \
              strerror(err), sub_io_hint(err))

/* Check a raw tar path and normalise it ("./a//b/" -> "a/b", the root -> "").
 * label names it in messages ("path", "hardlink target"). */
static int norm_path(ctx *c, const char *entry, const char *raw, const char *label, char **out) {
    if (!raw) return HOSTILE(c, -EINVAL, entry, "its %s cannot be read", label);
    if (raw[0] == '/') return HOSTILE(c, -EXDEV, entry, "its %s is absolute", label);
    sub_buf b = SUB_BUF_INIT;
    const char *p = raw;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            sub_buf_free(&b);
            return HOSTILE(c, -EXDEV, entry, "its %s has a \"..\" component", label);
        }
        if (n > NAME_MAX) {
            sub_buf_free(&b);
            return BADINPUT(c, -ENAMETOOLONG, entry, "a name in its %s is too long", label);
        }
        if (n && !(n == 1 && p[0] == '.')) {
            if (b.len) sub_buf_putc(&b, '/');
            sub_buf_append(&b, p, n);
        }
        p += n;
        while (*p == '/') p++;
    }
    if (b.len >= PATH_MAX - 1) {
        sub_buf_free(&b);
        return BADINPUT(c, -ENAMETOOLONG, entry, "its %s is too long", label);
    }
    *out = sub_buf_detach(&b, NULL);
    return 0;
}

/* Split "a/b/c" into "a/b" and "c" (the root's children: "" and the name). */
static char *split_parent(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    return slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup("");
}

static size_t count_slashes(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += *s == '/';
    return n;
}

/* The path of a directory fd, from /proc (for its real depth). */
static int fd_path(int fd, char buf[PATH_MAX]) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, buf, PATH_MAX - 1);
    if (n < 0) return -errno;
    if (n >= PATH_MAX - 2) return -ENAMETOOLONG;
    buf[n] = 0;
    return 0;
}

/* May a directory be created in dirfd? Its real depth below the root must
 * stay within SUB_UNPACK_MAX_DEPTH. */
static int check_depth(ctx *c, const char *entry, int dirfd) {
    char p[PATH_MAX];
    int r = fd_path(dirfd, p);
    if (r == -ENAMETOOLONG)
        return HOSTILE(c, -ENAMETOOLONG, entry, "its directory's real path is too long");
    if (r < 0) return IOERR(c, -r, entry, "find its directory's depth (is /proc mounted?)");
    size_t s = streq(p, "/") ? 0 : count_slashes(p);
    if (s >= c->root_slashes + SUB_UNPACK_MAX_DEPTH)
        return HOSTILE(c, -ELOOP, entry, "directories nested more than %d deep",
                       SUB_UNPACK_MAX_DEPTH);
    return 0;
}

/* The error for a directory beneath the root that cannot be opened. */
static int beneath_err(ctx *c, const char *entry, const char *dir, int r, const sub_err *oe) {
    _cleanup_free_ char *d = sub_str_escape(*dir ? dir : ".");
    if (r == -EXDEV || r == -ELOOP)
        return HOSTILE(c, r, entry, "its directory %s leads outside the rootfs (through a symlink)",
                       d);
    if (r == -ENOTDIR) return BADINPUT(c, r, entry, "%s is not a directory", d);
    return entry_err(c, SUB_R_NONE, oe->kind, r, entry, "%s", oe->msg);
}

/* Open dir (relative to the root, never leaving it); with create, missing
 * directories are made (0755, depth-checked). The fd or < 0 (without create,
 * a missing directory or a non-directory on the way: -ENOENT or -ENOTDIR,
 * no error recorded). */
static int open_dir(ctx *c, const char *entry, const char *dir, bool create) {
    sub_err oe = {0};
    int fd = sub_open_at(c->rootfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY, 0,
                         SUB_RESOLVE_BENEATH, &oe);
    if (fd >= 0) return fd;
    if (!create && (fd == -ENOENT || fd == -ENOTDIR)) return fd;
    if (fd != -ENOENT) return beneath_err(c, entry, dir, fd, &oe);
    /* Each prefix is resolved from the root again, like sub_mkdir_p_at, so a
     * symlink met on the way is judged against the root. */
    _cleanup_free_ char *p = xstrdup(dir);
    int cur = fcntl(c->rootfd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0) return IOERR(c, errno, entry, "duplicate a descriptor");
    for (size_t i = 0;; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char save = p[i];
        p[i] = 0;
        fd = sub_open_at(c->rootfd, p, O_RDONLY | O_DIRECTORY, 0, SUB_RESOLVE_BENEATH, &oe);
        if (fd == -ENOENT) {
            const char *comp = strrchr(p, '/');
            comp = comp ? comp + 1 : p;
            int r = check_depth(c, entry, cur);
            if (r < 0) {
                close(cur);
                return r;
            }
            bool made = mkdirat(cur, comp, 0755) == 0;
            if (!made && errno != EEXIST) {
                int err = errno;
                close(cur);
                return IOERR(c, err, entry, "create its parent directories");
            }
            fd = sub_open_at(c->rootfd, p, O_RDONLY | O_DIRECTORY, 0, SUB_RESOLVE_BENEATH, &oe);
            if (fd >= 0 && made) (void)fchmod(fd, 0755); /* whatever the umask */
        }
        close(cur);
        if (fd < 0) return beneath_err(c, entry, p, fd, &oe);
        cur = fd;
        if (save == 0) return cur;
        p[i] = save;
    }
}

/* Make room for a new entry called base in pfd: remove what is there (a
 * directory with its contents), unless keep_dir and it is a directory: 1. */
static int clear_slot(ctx *c, const char *entry, int pfd, const char *base, bool keep_dir) {
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : IOERR(c, errno, entry, "stat what is there");
    if (keep_dir && S_ISDIR(st.st_mode)) return 1;
    sub_err re = {0};
    if (sub_rm_rf_at(pfd, base, &re) < 0)
        return entry_err(c, SUB_R_NONE, SUB_KIND_DEFAULT, re.code, entry,
                         "replacing what is there: %s", re.msg);
    return 0;
}

static void entry_times(struct archive_entry *ent, struct timespec ts[2]) {
    if (archive_entry_mtime_is_set(ent)) {
        long ns = archive_entry_mtime_nsec(ent);
        ts[1].tv_sec = archive_entry_mtime(ent);
        ts[1].tv_nsec = ns >= 0 && ns < 1000000000L ? ns : 0;
    } else {
        ts[1].tv_sec = 0;
        ts[1].tv_nsec = UTIME_OMIT;
    }
    ts[0] = ts[1];
}

/* The entry's permission bits with setuid/setgid cleared (and listed). */
static mode_t entry_mode(ctx *c, struct archive_entry *ent, const char *path) {
    mode_t m = archive_entry_perm(ent) & 07777;
    if (m & (S_ISUID | S_ISGID)) {
        strv_push(&c->rep->setuid_cleared, path);
        m &= (mode_t) ~(S_ISUID | S_ISGID);
    }
    return m;
}

/* ---- pass 1: check every header, collect the whiteouts ---------------------------------------- */

/* The raw hardlink target, or NULL for every other entry. */
static const char *entry_hardlink(struct archive_entry *ent) {
    const char *hl = archive_entry_hardlink(ent);
    return hl ? hl : archive_entry_hardlink_utf8(ent);
}

static bool is_whiteout(const char *path, const char **base) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    return str_has_prefix(*base, WH_PREFIX);
}

/* Checks shared by both passes; *path gets the normalised path. */
static int check_entry(ctx *c, struct archive_entry *ent, char **path) {
    const char *raw = archive_entry_pathname(ent);
    if (!raw) raw = archive_entry_pathname_utf8(ent);
    int r = norm_path(c, raw, raw, "path", path);
    if (r < 0) return r;
    const char *p = *path;
    int64_t uid = archive_entry_uid(ent), gid = archive_entry_gid(ent);
    if (uid < 0 || uid >= (int64_t)UINT32_MAX || gid < 0 || gid >= (int64_t)UINT32_MAX)
        return HOSTILE(c, -ERANGE, p, "its owner %lld:%lld is out of range", (long long)uid,
                       (long long)gid);
    const char *hl = entry_hardlink(ent);
    if (hl) {
        _cleanup_free_ char *t = NULL;
        if ((r = norm_path(c, p, hl, "hardlink target", &t)) < 0) return r;
        if (!*t || !*p) return HOSTILE(c, -EINVAL, p, "a hardlink to or from the root");
        return 0;
    }
    switch (archive_entry_filetype(ent)) {
    case AE_IFREG:
        if (archive_entry_size(ent) < 0) return BADINPUT(c, -EINVAL, p, "a negative size");
        break;
    case AE_IFDIR:
        break;
    case AE_IFLNK: {
        const char *t = archive_entry_symlink(ent);
        if (!t) t = archive_entry_symlink_utf8(ent);
        if (!t || !*t) return BADINPUT(c, -EINVAL, p, "a symlink without a target");
        break;
    }
    case AE_IFCHR:
        return HOSTILE(c, -EPERM, p, "a character device");
    case AE_IFBLK:
        return HOSTILE(c, -EPERM, p, "a block device");
    case AE_IFIFO:
        return HOSTILE(c, -EPERM, p, "a FIFO");
    case AE_IFSOCK:
        return HOSTILE(c, -EPERM, p, "a socket");
    default:
        return HOSTILE(c, -EPERM, p, "an entry of unknown type (0%o)",
                       (unsigned)archive_entry_filetype(ent));
    }
    if (!*p && archive_entry_filetype(ent) != AE_IFDIR)
        return HOSTILE(c, -EINVAL, p, "a non-directory in place of the root");
    return 0;
}

static int scan_entry(ctx *c, struct archive_entry *ent, uint64_t *n, uint64_t *bytes) {
    _cleanup_free_ char *path = NULL;
    int r = check_entry(c, ent, &path);
    if (r < 0) return r;
    if (c->rep->entries + ++*n > c->max_entries)
        return HOSTILE(c, -E2BIG, path, "the image has more than %llu entries",
                       (unsigned long long)c->max_entries);
    if (!entry_hardlink(ent) && archive_entry_filetype(ent) == AE_IFREG) {
        uint64_t sz = (uint64_t)archive_entry_size(ent);
        if (sz > c->max_bytes || c->rep->bytes + *bytes > c->max_bytes - sz)
            return HOSTILE(c, -EFBIG, path, "the image unpacks to more than %llu bytes",
                           (unsigned long long)c->max_bytes);
        *bytes += sz;
    }
    const char *base;
    if (!is_whiteout(path, &base)) {
        /* a whiteout name as a directory on the way: no layer tool makes it */
        if (strstr(path, "/" WH_PREFIX) || str_has_prefix(path, WH_PREFIX))
            return BADINPUT(c, -EINVAL, path, "a whiteout name used as a directory");
        return 0;
    }
    if (entry_hardlink(ent) || archive_entry_filetype(ent) != AE_IFREG)
        return BADINPUT(c, -EINVAL, path, "a whiteout that is not a plain file");
    _cleanup_free_ char *parent = split_parent(path, &base);
    if (streq(base, WH_OPAQUE)) {
        strv_push(&c->opaque, parent);
        return 0;
    }
    if (str_has_prefix(base, WH_META)) return 0; /* aufs bookkeeping, not a whiteout */
    if (!single_name(base + strlen(WH_PREFIX)))
        return HOSTILE(c, -EINVAL, path, "a whiteout of no valid name");
    strv_push(&c->whiteouts, path);
    return 0;
}

/* Apply the whiteouts of this layer to what lower layers wrote. */
static int apply_whiteouts(ctx *c) {
    int r;
    for (char **w = c->whiteouts; w && *w; w++) {
        const char *base;
        _cleanup_free_ char *parent = split_parent(*w, &base);
        base += strlen(WH_PREFIX);
        _cleanup_close_ int pfd = open_dir(c, *w, parent, false);
        if (pfd == -ENOENT || pfd == -ENOTDIR) continue; /* nothing below to hide */
        if (pfd < 0) return pfd;
        sub_err re = {0};
        if (sub_rm_rf_at(pfd, base, &re) < 0)
            return entry_err(c, SUB_R_NONE, SUB_KIND_DEFAULT, re.code, *w, "whiteout: %s", re.msg);
    }
    for (char **o = c->opaque; o && *o; o++) {
        _cleanup_close_ int dfd = open_dir(c, *o, *o, false);
        if (dfd == -ENOENT || dfd == -ENOTDIR) continue;
        if (dfd < 0) return dfd;
        _cleanup_strv_ char **names = NULL;
        if ((r = sub_dir_names_at(dfd, &names)) < 0) return IOERR(c, -r, *o, "list it (opaque whiteout)");
        for (char **n = names; *n; n++) {
            sub_err re = {0};
            if (sub_rm_rf_at(dfd, *n, &re) < 0)
                return entry_err(c, SUB_R_NONE, SUB_KIND_DEFAULT, re.code, *o,
                                 "opaque whiteout: %s", re.msg);
        }
    }
    return 0;
}

/* ---- pass 2: write the entries ------------------------------------------------------------- */

static int set_owner_fd(ctx *c, const char *path, int fd, struct archive_entry *ent) {
    if (!c->chown) return 0;
    if (fchown(fd, (uid_t)archive_entry_uid(ent), (gid_t)archive_entry_gid(ent)) < 0)
        return IOERR(c, errno, path, "set its owner");
    return 0;
}

static int put_dir(ctx *c, struct archive_entry *ent, const char *path) {
    _cleanup_close_ int dfd = -1;
    if (!*path) {
        dfd = fcntl(c->rootfd, F_DUPFD_CLOEXEC, 3);
        if (dfd < 0) return IOERR(c, errno, path, "duplicate a descriptor");
    } else {
        const char *base;
        _cleanup_free_ char *parent = split_parent(path, &base);
        _cleanup_close_ int pfd = open_dir(c, path, parent, true);
        if (pfd < 0) return pfd;
        int r = clear_slot(c, path, pfd, base, true);
        if (r < 0) return r;
        if (r == 0) {
            if ((r = check_depth(c, path, pfd)) < 0) return r;
            if (mkdirat(pfd, base, 0700) < 0) return IOERR(c, errno, path, "create it");
        }
        dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0) return IOERR(c, errno, path, "open it");
    }
    int r = set_owner_fd(c, path, dfd, ent);
    if (r < 0) return r;
    c->dirs = xrealloc(c->dirs, (c->n_dirs + 1) * sizeof *c->dirs);
    dirmeta *d = &c->dirs[c->n_dirs++];
    d->path = xstrdup(path);
    d->mode = entry_mode(c, ent, path);
    entry_times(ent, d->ts);
    return 0;
}

static int write_data(ctx *c, struct archive *a, int fd, const char *path, uint64_t size) {
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int ar = archive_read_data_block(a, &buf, &len, &off);
        if (ar == ARCHIVE_EOF) return 0;
        if (ar < ARCHIVE_WARN)
            return BADINPUT(c, -EBADMSG, path, "its data cannot be read: %s",
                            archive_error_string(a) ? archive_error_string(a) : "?");
        if (off < 0 || (uint64_t)off > size || len > size - (uint64_t)off)
            return BADINPUT(c, -EBADMSG, path, "data past its declared size");
        const char *p = buf;
        while (len) {
            ssize_t n = pwrite(fd, p, len, off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return IOERR(c, n < 0 ? errno : EIO, path, "write it");
            p += n;
            off += n;
            len -= (size_t)n;
        }
    }
}

static int put_file(ctx *c, struct archive *a, struct archive_entry *ent, const char *path) {
    uint64_t size = (uint64_t)archive_entry_size(ent);
    if (size > c->max_bytes || c->rep->bytes > c->max_bytes - size)
        return HOSTILE(c, -EFBIG, path, "the image unpacks to more than %llu bytes",
                       (unsigned long long)c->max_bytes);
    const char *base;
    _cleanup_free_ char *parent = split_parent(path, &base);
    _cleanup_close_ int pfd = open_dir(c, path, parent, true);
    if (pfd < 0) return pfd;
    int r = clear_slot(c, path, pfd, base, false);
    if (r < 0) return r;
    _cleanup_close_ int fd =
        openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return IOERR(c, errno, path, "create it");
    if ((r = write_data(c, a, fd, path, size)) < 0) return r;
    if (ftruncate(fd, (off_t)size) < 0) return IOERR(c, errno, path, "set its size");
    c->rep->bytes += size;
    if ((r = set_owner_fd(c, path, fd, ent)) < 0) return r;
    if (fchmod(fd, entry_mode(c, ent, path)) < 0) return IOERR(c, errno, path, "set its mode");
    struct timespec ts[2];
    entry_times(ent, ts);
    if (futimens(fd, ts) < 0) return IOERR(c, errno, path, "set its mtime");
    return 0;
}

static int put_symlink(ctx *c, struct archive_entry *ent, const char *path) {
    const char *target = archive_entry_symlink(ent);
    if (!target) target = archive_entry_symlink_utf8(ent);
    const char *base;
    _cleanup_free_ char *parent = split_parent(path, &base);
    _cleanup_close_ int pfd = open_dir(c, path, parent, true);
    if (pfd < 0) return pfd;
    int r = clear_slot(c, path, pfd, base, false);
    if (r < 0) return r;
    /* the target is contents: an absolute one resolves inside the rootfs
     * when the container runs, and we never follow it here */
    if (symlinkat(target, pfd, base) < 0) return IOERR(c, errno, path, "create it");
    if (c->chown && fchownat(pfd, base, (uid_t)archive_entry_uid(ent),
                             (gid_t)archive_entry_gid(ent), AT_SYMLINK_NOFOLLOW) < 0)
        return IOERR(c, errno, path, "set its owner");
    struct timespec ts[2];
    entry_times(ent, ts);
    if (utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return IOERR(c, errno, path, "set its mtime");
    return 0;
}

static int put_hardlink(ctx *c, struct archive_entry *ent, const char *path) {
    _cleanup_free_ char *tpath = NULL;
    int r = norm_path(c, path, entry_hardlink(ent), "hardlink target", &tpath);
    if (r < 0) return r;
    _cleanup_free_ char *tshow = sub_str_escape(tpath);
    const char *tbase;
    _cleanup_free_ char *tparent = split_parent(tpath, &tbase);
    _cleanup_close_ int tfd = open_dir(c, path, tparent, false);
    if (tfd == -ENOENT || tfd == -ENOTDIR)
        return HOSTILE(c, -ENOENT, path, "a hardlink to %s, which is not in the tree", tshow);
    if (tfd < 0) return tfd;
    struct stat tst;
    if (fstatat(tfd, tbase, &tst, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return HOSTILE(c, -ENOENT, path, "a hardlink to %s, which is not in the tree", tshow);
        return IOERR(c, errno, path, "stat its hardlink target");
    }
    if (S_ISDIR(tst.st_mode))
        return HOSTILE(c, -EPERM, path, "a hardlink to the directory %s", tshow);
    const char *base;
    _cleanup_free_ char *parent = split_parent(path, &base);
    _cleanup_close_ int pfd = open_dir(c, path, parent, true);
    if (pfd < 0) return pfd;
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev &&
        st.st_ino == tst.st_ino)
        return 0; /* already that file */
    if ((r = clear_slot(c, path, pfd, base, false)) < 0) return r;
    /* flags 0: a symlink target is linked itself, never followed */
    if (linkat(tfd, tbase, pfd, base, 0) < 0) return IOERR(c, errno, path, "create the hardlink");
    return 0;
}

static int put_entry(ctx *c, struct archive *a, struct archive_entry *ent) {
    _cleanup_free_ char *path = NULL;
    int r = check_entry(c, ent, &path);
    if (r < 0) return r;
    if (++c->rep->entries > c->max_entries)
        return HOSTILE(c, -E2BIG, path, "the image has more than %llu entries",
                       (unsigned long long)c->max_entries);
    const char *base;
    if (is_whiteout(path, &base)) return 0; /* applied before this pass */
    if (entry_hardlink(ent)) return put_hardlink(c, ent, path);
    switch (archive_entry_filetype(ent)) {
    case AE_IFDIR:
        return put_dir(c, ent, path);
    case AE_IFREG:
        return put_file(c, a, ent, path);
    case AE_IFLNK:
        return put_symlink(c, ent, path);
    default: /* check_entry refused the rest */
        return HOSTILE(c, -EPERM, path, "an entry of unknown type");
    }
}

/* Directory modes and mtimes, after their contents are written (a later
 * entry for the same directory wins). */
static int apply_dirs(ctx *c) {
    for (size_t i = 0; i < c->n_dirs; i++) {
        dirmeta *d = &c->dirs[i];
        _cleanup_close_ int fd =
            sub_open_at(c->rootfd, *d->path ? d->path : ".",
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, SUB_RESOLVE_BENEATH, NULL);
        if (fd < 0) continue; /* replaced or removed later in the layer */
        if (fchmod(fd, d->mode) < 0) return IOERR(c, errno, d->path, "set its mode");
        if (futimens(fd, d->ts) < 0) return IOERR(c, errno, d->path, "set its mtime");
    }
    return 0;
}

/* ---- the two passes ------------------------------------------------------------------------ */

/* libarchive stopped: record why (our reader's failure when it was ours). */
static int tar_err(ctx *c, struct archive *a, src *s) {
    if (s->err)
        return sub_err_setk(c->e, s->err == -EFBIG ? SUB_KIND_INPUT : SUB_KIND_DEFAULT, s->err,
                            "layer %s: %s", c->digest, s->why);
    const char *msg = archive_error_string(a);
    return sub_err_setk(c->e, SUB_KIND_INPUT, -EBADMSG, "layer %s is not a readable tar: %s",
                        c->digest, msg ? msg : "unknown error");
}

/* Check what was read against the descriptor. r is the pass's result so
 * far: a corrupt blob is reported as such whatever else went wrong (its
 * corruption is the cause), otherwise r stands. */
static int finish(ctx *c, src *s, int r, const char *pass) {
    if ((r < 0 || s->err) && !s->err_check) src_drain_raw(s);
    char got[SUB_DIGEST_MAX], got_diff[SUB_DIGEST_MAX];
    sub_sha256_final(&s->blob_h, got);
    sub_sha256_final(&s->diff_h, got_diff);
    if (s->err_check)
        return sub_err_setr(c->e, SUB_R_LAYER_MISMATCH, SUB_KIND_CHECK, -EILSEQ,
                            "layer %s is corrupt (%s): %s", c->digest, pass, s->why);
    if (s->want_size && s->blob_n != s->want_size)
        return sub_err_setr(c->e, SUB_R_LAYER_MISMATCH, SUB_KIND_CHECK, -EILSEQ,
                            "layer %s is corrupt (%s): %llu bytes where its descriptor says %llu",
                            c->digest, pass, (unsigned long long)s->blob_n,
                            (unsigned long long)s->want_size);
    if (strcmp(got, c->digest))
        return sub_err_setr(c->e, SUB_R_LAYER_MISMATCH, SUB_KIND_CHECK, -EILSEQ,
                            "layer %s is corrupt (%s): its content hashes to %s", c->digest, pass,
                            got);
    if (r < 0) return r;
    if (c->diff_id && strcmp(got_diff, c->diff_id))
        return sub_err_setr(c->e, SUB_R_LAYER_MISMATCH, SUB_KIND_CHECK, -EILSEQ,
                            "layer %s: its uncompressed content hashes to %s, but the image "
                            "config's diff_id is %s",
                            c->digest, got_diff, c->diff_id);
    return 0;
}

static void archive_freep(struct archive **a) {
    if (*a) archive_read_free(*a);
}

/* One pass over the layer; pass 1 checks and collects, pass 2 writes. */
static int run_pass(ctx *c, src *s, int pass) {
    int r = src_start(s, c->e);
    if (r < 0) return r;
    _cleanup_(archive_freep) struct archive *a = archive_read_new();
    if (!a) return sub_err_set(c->e, -ENOMEM, "cannot set up libarchive");
    archive_read_support_format_tar(a);
    archive_read_support_format_empty(a);
    uint64_t n = 0, bytes = 0;
    if (archive_read_open(a, s, NULL, src_read_cb, NULL) != ARCHIVE_OK) r = tar_err(c, a, s);
    while (r == 0) {
        struct archive_entry *ent;
        int ar = archive_read_next_header(a, &ent);
        if (ar == ARCHIVE_EOF) {
            src_drain(s); /* tar padding and what follows count for the digests */
            if (s->err) r = tar_err(c, a, s);
            break;
        }
        if (ar < ARCHIVE_WARN) {
            r = tar_err(c, a, s);
            break;
        }
        r = pass == 1 ? scan_entry(c, ent, &n, &bytes) : put_entry(c, a, ent);
    }
    return finish(c, s, r, pass == 1 ? "first read" : "second read");
}

int sub_unpack_layer(int rootfd, const char *blob_path, const char *media_type, const char *digest,
                     uint64_t size, const char *diff_id, sub_unpack_report *rep, sub_err *e) {
    bool gz;
    int r = sub_unpack_media_type(media_type, &gz, e);
    if (r < 0) {
        sub_err_prefix(e, "layer %s", digest);
        return r;
    }
    if ((r = sub_digest_validate(digest, e)) < 0) return r;
    if (diff_id && (r = sub_digest_validate(diff_id, e)) < 0) return r;
    _cleanup_(sub_unpack_report_done) sub_unpack_report none = {0};
    if (!rep) rep = &none;
    ctx c = {
        .rootfd = rootfd,
        .digest = digest,
        .diff_id = diff_id,
        .rep = rep,
        .max_bytes = rep->max_bytes ? rep->max_bytes : SUB_UNPACK_MAX_BYTES,
        .max_entries = rep->max_entries ? rep->max_entries : SUB_UNPACK_MAX_ENTRIES,
        .chown = geteuid() == 0,
        .e = e,
    };
    char rp[PATH_MAX];
    if ((r = fd_path(rootfd, rp)) < 0)
        return sub_err_set(e, r, "cannot find the path of the unpack directory (is /proc "
                                 "mounted?): %s",
                           strerror(-r));
    c.root_slashes = streq(rp, "/") ? 0 : count_slashes(rp);

    _cleanup_close_ int fd = open(blob_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sub_err_set(e, -errno, "cannot open layer %s (%s): %m", digest, blob_path);
    struct stat st;
    if (fstat(fd, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", blob_path);
    if (!S_ISREG(st.st_mode))
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ, "layer %s: %s is not a regular file",
                            digest, blob_path);
    if (size && (uint64_t)st.st_size != size)
        return sub_err_setr(e, SUB_R_LAYER_MISMATCH, SUB_KIND_CHECK, -EILSEQ,
                            "layer %s is corrupt: %llu bytes where its descriptor says %llu",
                            digest, (unsigned long long)st.st_size, (unsigned long long)size);
    src *s = xcalloc(1, sizeof *s);
    s->fd = fd;
    s->gz = gz;
    s->want_size = size;
    /* the tar around the file bytes: headers, long names, padding */
    s->diff_max = c.max_entries > (UINT64_MAX / 4 - c.max_bytes) / 8192
                      ? UINT64_MAX
                      : c.max_bytes + c.max_entries * 8192 + (1u << 20);
    r = run_pass(&c, s, 1);
    if (r == 0) r = apply_whiteouts(&c);
    if (r == 0) r = run_pass(&c, s, 2);
    if (r == 0) r = apply_dirs(&c);
    src_done(s);
    free(s);
    ctx_done(&c);
    return r;
}

void sub_unpack_report_done(sub_unpack_report *r) {
    if (!r) return;
    strv_free(r->setuid_cleared);
    r->setuid_cleared = NULL;
}
