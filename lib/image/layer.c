/* Deterministic layer writer: libarchive (write side, pax-restricted tar,
 * no filter) feeds a write callback that hashes the uncompressed tar and
 * pushes it through our own zlib deflate stream; the deflate output is
 * hashed again and written to a temp file that is renamed into place.
 * See include/substrate/layer.h for the rules that make the output a pure
 * function of the entries and the mtime. */
#include "substrate/layer.h"
#include "substrate/fs.h"
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define LAYER_IMPLICIT SIZE_MAX /* index of an implicitly added parent */

typedef struct norm_entry {
    char *path; /* normalised: no leading or trailing '/', owned */
    sub_layer_type type;
    const char *src;    /* borrowed from the caller's entry */
    const char *target; /* borrowed from the caller's entry */
    unsigned mode;
    size_t index; /* position in the caller's array, or LAYER_IMPLICIT */
} norm_entry;

static const char *type_name(sub_layer_type t) {
    switch (t) {
    case SUB_LAYER_FILE: return "file";
    case SUB_LAYER_DIR: return "directory";
    case SUB_LAYER_SYMLINK: return "symlink";
    }
    return "?";
}

static int bad_entry(sub_err *e, size_t i, const char *path, const char *fmt, ...)
    _printf_(4, 5);
static int bad_entry(sub_err *e, size_t i, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *what = xvasprintf(fmt, ap);
    va_end(ap);
    return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "layer entry #%zu (\"%s\"): %s", i,
                        path ? path : "(null)", what);
}

/* Bytes we accept in paths and link targets: printable ASCII. This keeps the
 * tar headers independent of the process locale (libarchive converts names
 * through the current charset otherwise). */
static const char *bad_char(const char *s) {
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) return p;
    return NULL;
}

/* Normalise entry i into *out (path allocated). */
static int normalise(const sub_layer_entry *in, size_t i, norm_entry *out, sub_err *e) {
    const char *p = in->path;
    if (!p) return bad_entry(e, i, p, "no path given");
    if (in->type != SUB_LAYER_FILE && in->type != SUB_LAYER_DIR && in->type != SUB_LAYER_SYMLINK)
        return bad_entry(e, i, p, "unknown entry type %d", (int)in->type);
    const char *c = bad_char(p);
    if (c)
        return bad_entry(e, i, p, "byte 0x%02x at offset %zu is not printable ASCII; rename the file",
                         (unsigned char)*c, (size_t)(c - p));
    while (*p == '/') p++;
    size_t len = strlen(p);
    if (in->type == SUB_LAYER_DIR && len > 0 && p[len - 1] == '/') len--;
    if (len == 0) return bad_entry(e, i, in->path, "empty path (the image root is implicit)");
    if (len >= PATH_MAX) return bad_entry(e, i, in->path, "path longer than %d bytes", PATH_MAX - 1);
    _cleanup_free_ char *norm = xstrndup(p, len);
    for (const char *comp = norm;;) {
        const char *slash = strchr(comp, '/');
        size_t clen = slash ? (size_t)(slash - comp) : strlen(comp);
        if (clen == 0)
            return bad_entry(e, i, in->path, "empty path component (\"//\" or a trailing '/' on a %s)",
                             type_name(in->type));
        if ((clen == 1 && comp[0] == '.') || (clen == 2 && comp[0] == '.' && comp[1] == '.'))
            return bad_entry(e, i, in->path, "\"%.*s\" is not allowed as a path component", (int)clen,
                             comp);
        if (!slash) break;
        comp = slash + 1;
    }
    if (in->mode & ~07777u)
        return bad_entry(e, i, in->path, "mode %#o has bits outside 07777 (give permission bits only)",
                         in->mode);
    switch (in->type) {
    case SUB_LAYER_FILE:
        if (!in->src || !*in->src)
            return bad_entry(e, i, in->path, "a file entry needs a src (the host file to copy)");
        break;
    case SUB_LAYER_SYMLINK:
        if (!in->target || !*in->target)
            return bad_entry(e, i, in->path, "a symlink entry needs a target");
        if ((c = bad_char(in->target)))
            return bad_entry(e, i, in->path, "symlink target has byte 0x%02x, not printable ASCII",
                             (unsigned char)*c);
        break;
    case SUB_LAYER_DIR: break;
    }
    *out = (norm_entry){
        .path = TAKE_PTR(norm),
        .type = in->type,
        .src = in->type == SUB_LAYER_FILE ? in->src : NULL,
        .target = in->type == SUB_LAYER_SYMLINK ? in->target : NULL,
        .mode = in->type == SUB_LAYER_SYMLINK && in->mode == 0 ? 0777 : in->mode,
        .index = i,
    };
    return 0;
}

/* Bytewise by path; for equal paths explicit entries first, in input order. */
static int cmp_entry(const void *pa, const void *pb) {
    const norm_entry *a = pa, *b = pb;
    int c = strcmp(a->path, b->path);
    if (c) return c;
    if (a->index != b->index) return a->index < b->index ? -1 : 1;
    return 0;
}

static void free_entries(norm_entry *v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i].path);
    free(v);
}

/* Validate, add implicit parents, sort and de-duplicate. */
static int plan_entries(const sub_layer_entry *entries, size_t n, norm_entry **out, size_t *nout,
                        sub_err *e) {
    size_t cap = n ? n * 2 : 1, cnt = 0;
    norm_entry *v = xcalloc(cap, sizeof *v);
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        r = normalise(&entries[i], i, &v[cnt], e);
        if (r < 0) goto fail;
        cnt++;
        /* every proper prefix is a candidate implicit parent */
        const char *path = v[cnt - 1].path;
        for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
            if (cnt == cap) {
                cap *= 2;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[cnt++] = (norm_entry){.path = xstrndup(path, (size_t)(s - path)),
                                    .type = SUB_LAYER_DIR,
                                    .mode = 0755,
                                    .index = LAYER_IMPLICIT};
        }
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_entry);
    size_t w = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (w > 0 && streq(v[w - 1].path, v[i].path)) {
            const norm_entry *keep = &v[w - 1], *dup = &v[i];
            if (dup->index != LAYER_IMPLICIT) {
                r = sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                 "layer entries #%zu and #%zu both declare \"%s\"; give each path once",
                                 keep->index, dup->index, keep->path);
                goto fail;
            }
            if (keep->type != SUB_LAYER_DIR) {
                /* find a child that needs this path as a directory, for the message */
                const char *child = NULL;
                size_t plen = strlen(keep->path);
                for (size_t j = i; j < cnt && !child; j++)
                    if (v[j].index != LAYER_IMPLICIT && !strncmp(v[j].path, keep->path, plen) &&
                        v[j].path[plen] == '/')
                        child = v[j].path;
                r = bad_entry(e, keep->index, keep->path,
                              "is a %s, but \"%s\" is declared below it; make it a directory",
                              type_name(keep->type), child ? child : "another entry");
                goto fail;
            }
            free(v[i].path);
            v[i].path = NULL;
            continue;
        }
        norm_entry cur = v[i];
        v[i].path = NULL; /* ownership moves to v[w]; keeps the failure path free of double frees */
        v[w++] = cur;
    }
    *out = v;
    *nout = w;
    return 0;
fail:
    free_entries(v, cnt);
    return r;
}

/* ---- output: tar bytes -> sha256(diff_id) + deflate -> sha256(digest) + file ---- */

typedef struct layer_out {
    int fd;
    const char *tmp_path;
    z_stream z;
    gz_header gzh;
    bool z_ready;
    sub_sha256 tar_hash, blob_hash;
    uint64_t tar_size, size;
    sub_err *e;
    bool failed; /* err (and *e when given) hold the reason */
    int err;
    unsigned char buf[65536];
} layer_out;

static int emit(layer_out *o, const unsigned char *p, size_t len) {
    sub_sha256_update(&o->blob_hash, p, len);
    o->size += len;
    while (len) {
        ssize_t n = write(o->fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            o->failed = true;
            o->err = -err;
            return sub_err_set(o->e, -err, "cannot write %s: %s%s", o->tmp_path, strerror(err),
                               sub_io_hint(err));
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Run deflate over whatever is in o->z.next_in with the given flush mode and
 * emit every output byte produced. */
static int pump(layer_out *o, int flush) {
    for (;;) {
        o->z.next_out = o->buf;
        o->z.avail_out = sizeof o->buf;
        int zr = deflate(&o->z, flush);
        if (zr == Z_STREAM_ERROR || (zr == Z_BUF_ERROR && o->z.avail_out == sizeof o->buf &&
                                     flush == Z_FINISH)) {
            o->failed = true;
            o->err = -EIO;
            return sub_err_set(o->e, -EIO, "zlib deflate failed (%d): %s", zr,
                               o->z.msg ? o->z.msg : "internal error");
        }
        size_t have = sizeof o->buf - o->z.avail_out;
        if (have && emit(o, o->buf, have) < 0) return o->err;
        if (flush == Z_FINISH) {
            if (zr == Z_STREAM_END) return 0;
        } else if (o->z.avail_in == 0 && o->z.avail_out != 0) {
            return 0;
        }
    }
}

static la_ssize_t tar_write_cb(struct archive *a, void *ud, const void *buf, size_t len) {
    (void)a;
    layer_out *o = ud;
    if (o->failed) return -1;
    sub_sha256_update(&o->tar_hash, buf, len);
    o->tar_size += len;
    o->z.next_in = (Bytef *)(uintptr_t)buf;
    while (len) {
        uInt chunk = len > UINT_MAX ? UINT_MAX : (uInt)len;
        o->z.avail_in = chunk;
        if (pump(o, Z_NO_FLUSH) < 0) return -1;
        len -= chunk;
    }
    return (la_ssize_t)((const char *)o->z.next_in - (const char *)buf);
}

static int archive_fail(layer_out *o, struct archive *a, const char *path, const char *what) {
    if (o->failed) {
        sub_err_prefix(o->e, "writing \"%s\"", path);
        return o->err;
    }
    o->failed = true;
    o->err = -EIO;
    return sub_err_set(o->e, -EIO, "libarchive: cannot %s \"%s\": %s", what, path,
                       archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

static int write_file_data(layer_out *o, struct archive *a, struct archive_entry *ae,
                           const norm_entry *ne) {
    _cleanup_close_ int fd = open(ne->src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        return sub_err_set(o->e, -err, "layer entry #%zu (\"%s\"): cannot open src %s: %s%s",
                           ne->index, ne->path, ne->src, strerror(err), sub_io_hint(err));
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return sub_err_set(o->e, -errno, "layer entry #%zu (\"%s\"): cannot stat src %s: %m",
                           ne->index, ne->path, ne->src);
    if (!S_ISREG(st.st_mode))
        return sub_err_setk(o->e, SUB_KIND_INPUT, -EINVAL,
                            "layer entry #%zu (\"%s\"): src %s is not a regular file", ne->index,
                            ne->path, ne->src);
    archive_entry_set_size(ae, st.st_size);
    if (archive_write_header(a, ae) != ARCHIVE_OK)
        return archive_fail(o, a, ne->path, "write the header of");
    uint64_t left = (uint64_t)st.st_size;
    char buf[65536];
    while (left) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        ssize_t n = read(fd, buf, want);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sub_err_set(o->e, -errno, "layer entry #%zu (\"%s\"): cannot read src %s: %m",
                               ne->index, ne->path, ne->src);
        }
        if (n == 0)
            return sub_err_setk(o->e, SUB_KIND_ENV, -EIO,
                                "layer entry #%zu (\"%s\"): src %s shrank while it was copied (%lld "
                                "bytes expected, %lld read); rebuild once it is no longer changing",
                                ne->index, ne->path, ne->src, (long long)st.st_size,
                                (long long)((uint64_t)st.st_size - left));
        la_ssize_t w = archive_write_data(a, buf, (size_t)n);
        if (w != n) return archive_fail(o, a, ne->path, "write the data of");
        left -= (uint64_t)n;
    }
    for (;;) {
        ssize_t n = read(fd, buf, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return sub_err_set(o->e, -errno, "layer entry #%zu (\"%s\"): cannot read src %s: %m",
                               ne->index, ne->path, ne->src);
        if (n > 0)
            return sub_err_setk(o->e, SUB_KIND_ENV, -EIO,
                                "layer entry #%zu (\"%s\"): src %s grew while it was copied (more "
                                "than %lld bytes); rebuild once it is no longer changing",
                                ne->index, ne->path, ne->src, (long long)st.st_size);
        break;
    }
    return 0;
}

static int write_entry(layer_out *o, struct archive *a, const norm_entry *ne, int64_t mtime) {
    struct archive_entry *ae = archive_entry_new();
    if (!ae) abort();
    int r = 0;
    if (ne->type == SUB_LAYER_DIR) {
        _cleanup_free_ char *name = xasprintf("%s/", ne->path);
        archive_entry_copy_pathname(ae, name);
        archive_entry_set_filetype(ae, AE_IFDIR);
    } else {
        archive_entry_copy_pathname(ae, ne->path);
        archive_entry_set_filetype(ae, ne->type == SUB_LAYER_FILE ? AE_IFREG : AE_IFLNK);
    }
    archive_entry_set_perm(ae, (mode_t)ne->mode);
    archive_entry_set_uid(ae, 0);
    archive_entry_set_gid(ae, 0);
    archive_entry_set_mtime(ae, (time_t)mtime, 0);
    archive_entry_unset_atime(ae);
    archive_entry_unset_ctime(ae);
    archive_entry_unset_birthtime(ae);
    switch (ne->type) {
    case SUB_LAYER_FILE:
        r = write_file_data(o, a, ae, ne);
        break;
    case SUB_LAYER_SYMLINK:
        archive_entry_copy_symlink(ae, ne->target);
        archive_entry_set_size(ae, 0);
        if (archive_write_header(a, ae) != ARCHIVE_OK) r = archive_fail(o, a, ne->path, "write");
        break;
    case SUB_LAYER_DIR:
        archive_entry_set_size(ae, 0);
        if (archive_write_header(a, ae) != ARCHIVE_OK) r = archive_fail(o, a, ne->path, "write");
        break;
    }
    if (r == 0 && archive_write_finish_entry(a) != ARCHIVE_OK)
        r = archive_fail(o, a, ne->path, "finish");
    archive_entry_free(ae);
    return r;
}

static int write_layer(layer_out *o, const norm_entry *v, size_t n, int64_t mtime) {
    struct archive *a = archive_write_new();
    if (!a) abort();
    int r = 0;
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a, 10240) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open(a, o, NULL, tar_write_cb, NULL) != ARCHIVE_OK) {
        r = sub_err_set(o->e, -EIO, "libarchive: cannot set up the tar writer: %s",
                        archive_error_string(a) ? archive_error_string(a) : "unknown error");
        goto out;
    }
    for (size_t i = 0; i < n && r == 0; i++) r = write_entry(o, a, &v[i], mtime);
    if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
        r = archive_fail(o, a, "end of archive", "write the");
out:
    archive_write_free(a);
    if (r == 0) {
        o->z.next_in = NULL;
        o->z.avail_in = 0;
        r = pump(o, Z_FINISH);
    }
    return r;
}

int sub_layer_write(const sub_layer_entry *entries, size_t n, int64_t mtime, const char *out_path,
                    sub_layer_result *res, sub_err *e) {
    if (!out_path || !*out_path)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "no output path given for the layer");
    if (n && !entries) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "no layer entries given");
    if (mtime < 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "layer mtime %lld is negative; give SOURCE_DATE_EPOCH (seconds since 1970)",
                            (long long)mtime);
    norm_entry *v = NULL;
    size_t nv = 0;
    int r = plan_entries(entries, n, &v, &nv, e);
    if (r < 0) return r;

    _cleanup_free_ char *tmp = xasprintf("%s.tmp.XXXXXX", out_path);
    _cleanup_free_ char *dcopy = xstrdup(out_path);
    const char *dir = dirname(dcopy);
    layer_out *o = xcalloc(1, sizeof *o);
    o->fd = mkostemp(tmp, O_CLOEXEC);
    bool created = o->fd >= 0;
    o->tmp_path = tmp;
    o->e = e;
    if (o->fd < 0) {
        int err = errno;
        r = sub_err_set(e, -err, "cannot create a file in %s: %s%s", dir, strerror(err),
                        sub_io_hint(err));
        goto out;
    }
    if ((r = sub_sha256_init(&o->tar_hash, e)) < 0 || (r = sub_sha256_init(&o->blob_hash, e)) < 0)
        goto out;
    if (deflateInit2(&o->z, SUB_LAYER_GZIP_LEVEL, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        r = sub_err_set(e, -ENOMEM, "zlib: cannot initialise deflate");
        goto out;
    }
    o->z_ready = true;
    /* fixed gzip header: no name, no comment, mtime 0, fixed OS byte */
    o->gzh = (gz_header){.text = 0, .time = 0, .os = SUB_LAYER_GZIP_OS, .hcrc = 0};
    if (deflateSetHeader(&o->z, &o->gzh) != Z_OK) {
        r = sub_err_set(e, -EIO, "zlib: cannot set the gzip header");
        goto out;
    }
    r = write_layer(o, v, nv, mtime);
    if (r < 0) goto out;
    if (fchmod(o->fd, 0644) < 0 || fsync(o->fd) < 0) {
        int err = errno;
        r = sub_err_set(e, -err, "cannot write %s: %s%s", tmp, strerror(err), sub_io_hint(err));
        goto out;
    }
    int fd = TAKE_FD(o->fd);
    if (close(fd) < 0) {
        int err = errno;
        r = sub_err_set(e, -err, "cannot write %s: %s%s", tmp, strerror(err), sub_io_hint(err));
        goto out;
    }
    if (rename(tmp, out_path) < 0) {
        int err = errno;
        r = sub_err_set(e, -err, "cannot rename %s to %s: %s%s", tmp, out_path, strerror(err),
                        sub_io_hint(err));
        goto out;
    }
    sub_fsync_dir(dir);
    sub_layer_result rr = {.size = o->size, .tar_size = o->tar_size};
    sub_sha256_final(&o->tar_hash, rr.diff_id);
    sub_sha256_final(&o->blob_hash, rr.digest);
    if (res) *res = rr;
out:
    if (o->z_ready) deflateEnd(&o->z);
    sub_sha256_free(&o->tar_hash);
    sub_sha256_free(&o->blob_hash);
    if (o->fd >= 0) {
        close(o->fd);
        o->fd = -1;
    }
    if (r < 0 && created) unlink(tmp);
    free(o);
    free_entries(v, nv);
    return r;
}

const char *sub_layer_compression(void) {
    static char buf[64];
    if (!buf[0]) snprintf(buf, sizeof buf, "gzip-%d zlib-%s", SUB_LAYER_GZIP_LEVEL, zlibVersion());
    return buf;
}
