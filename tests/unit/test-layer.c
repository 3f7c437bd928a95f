/* Deterministic layer writer: same inputs -> same bytes, whatever the host
 * files look like; the tar reads back as declared; bad entry lists fail and
 * leave nothing behind. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/layer.h"
#include "unit.h"
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <zlib.h>

#define MTIME 1700000000LL

/* Write `len` bytes of a deterministic pattern to dir/name; returns the path. */
static char *make_src(const char *dir, const char *name, size_t len, unsigned seed) {
    char *p = sub_path_join(dir, name);
    char *buf = xmalloc(len ? len : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (char)(x >> 16);
    }
    sub_err e = {0};
    if (sub_write_file_atomic(p, buf, len, 0644, &e) < 0) unit_fail(__FILE__, __LINE__, "%s", e.msg);
    free(buf);
    return p;
}

static char *read_all(const char *path, size_t *len) {
    char *data = NULL;
    sub_err e = {0};
    if (sub_read_file(path, 1 << 28, &data, len, &e) < 0) {
        unit_fail(__FILE__, __LINE__, "%s", e.msg);
        *len = 0;
        return xstrdup("");
    }
    return data;
}

/* gunzip a whole buffer with zlib (independent of the writer's code path). */
static char *gunzip(const char *gz, size_t gzlen, size_t *outlen) {
    z_stream z = {0};
    if (inflateInit2(&z, 31) != Z_OK) abort();
    size_t cap = 1 << 16, len = 0;
    char *out = xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)gz;
    z.avail_in = (uInt)gzlen;
    int zr;
    do {
        if (len == cap) out = xrealloc(out, cap *= 2);
        z.next_out = (Bytef *)out + len;
        z.avail_out = (uInt)(cap - len);
        zr = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
    } while (zr == Z_OK);
    if (zr != Z_STREAM_END) unit_fail(__FILE__, __LINE__, "gunzip failed: %d", zr);
    if (z.avail_in != 0) unit_fail(__FILE__, __LINE__, "trailing bytes after the gzip stream");
    inflateEnd(&z);
    *outlen = len;
    return out;
}

static size_t count_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

typedef struct fixture {
    char *dir;
    char *big, *small, *empty;
} fixture;

static void fixture_make(fixture *f, const char *sub) {
    f->dir = sub_path_join(unit_tmpdir(), sub);
    sub_err e = {0};
    if (sub_mkdir_p(f->dir, 0755, &e) < 0) unit_fail(__FILE__, __LINE__, "%s", e.msg);
    f->big = make_src(f->dir, "big.bin", 300000, 1);
    f->small = make_src(f->dir, "small.txt", 13, 2);
    f->empty = make_src(f->dir, "empty", 0, 3);
}

static void fixture_free(fixture *f) {
    free(f->dir);
    free(f->big);
    free(f->small);
    free(f->empty);
}

/* The reference entry list (deliberately unsorted, with implicit parents). */
static size_t fixture_entries(const fixture *f, sub_layer_entry *v) {
    size_t n = 0;
    v[n++] = (sub_layer_entry){.path = "/usr/bin/hello", .type = SUB_LAYER_FILE, .src = f->big, .mode = 0755};
    v[n++] = (sub_layer_entry){.path = "/tmp/", .type = SUB_LAYER_DIR, .mode = 01777};
    v[n++] = (sub_layer_entry){.path = "bin/sh", .type = SUB_LAYER_SYMLINK, .target = "busybox"};
    v[n++] = (sub_layer_entry){.path = "etc/motd", .type = SUB_LAYER_FILE, .src = f->small, .mode = 0644};
    v[n++] = (sub_layer_entry){.path = "a-b", .type = SUB_LAYER_FILE, .src = f->empty, .mode = 0600};
    v[n++] = (sub_layer_entry){.path = "a/b", .type = SUB_LAYER_SYMLINK, .target = "../etc/motd", .mode = 0777};
    v[n++] = (sub_layer_entry){.path = "/usr/sbin/su", .type = SUB_LAYER_FILE, .src = f->small, .mode = 04755};
    v[n++] = (sub_layer_entry){.path = "usr", .type = SUB_LAYER_DIR, .mode = 0700};
    return n;
}

TEST(layer_same_entries_give_identical_bytes_and_correct_digests) {
    fixture f = {0};
    fixture_make(&f, "src");
    sub_layer_entry v[16];
    size_t n = fixture_entries(&f, v);
    sub_err e = {0};
    sub_layer_result r1 = {0}, r2 = {0};
    _cleanup_free_ char *o1 = sub_path_join(unit_tmpdir(), "one.tar.gz");
    _cleanup_free_ char *o2 = sub_path_join(unit_tmpdir(), "two.tar.gz");
    CHECK_OK(sub_layer_write(v, n, MTIME, o1, &r1, &e), &e);
    CHECK_OK(sub_layer_write(v, n, MTIME, o2, &r2, &e), &e);
    size_t l1, l2;
    _cleanup_free_ char *b1 = read_all(o1, &l1);
    _cleanup_free_ char *b2 = read_all(o2, &l2);
    CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
    CHECK_STREQ(r1.digest, r2.digest);
    CHECK_STREQ(r1.diff_id, r2.diff_id);
    CHECK_OK(sub_digest_validate(r1.digest, &e), &e);
    CHECK_OK(sub_digest_validate(r1.diff_id, &e), &e);

    /* the streamed hashes and sizes describe the bytes on disk */
    char want[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(b1, l1, want, &e), &e);
    CHECK_STREQ(r1.digest, want);
    CHECK_INT(r1.size, l1);
    size_t tl;
    _cleanup_free_ char *tar = gunzip(b1, l1, &tl);
    CHECK_OK(sub_sha256_buf(tar, tl, want, &e), &e);
    CHECK_STREQ(r1.diff_id, want);
    CHECK_INT(r1.tar_size, tl);
    CHECK(tl % 512 == 0);
    CHECK(tl > 300000); /* the big file is really in there */
    CHECK(strcmp(r1.digest, r1.diff_id) != 0);

    /* a different mtime is a different layer */
    sub_layer_result r3 = {0};
    _cleanup_free_ char *o3 = sub_path_join(unit_tmpdir(), "three.tar.gz");
    CHECK_OK(sub_layer_write(v, n, MTIME + 1, o3, &r3, &e), &e);
    CHECK(strcmp(r3.diff_id, r1.diff_id) != 0);
    fixture_free(&f);
}

TEST(layer_ignores_entry_order_and_host_file_metadata) {
    fixture a = {0}, b = {0};
    fixture_make(&a, "a");
    fixture_make(&b, "b-elsewhere");
    /* make b's files look as different as possible, same bytes */
    const char *bs[] = {b.big, b.small, b.empty};
    if (geteuid() != 0) unit_skip_part("files owned by other users", "needs root to chown");
    for (size_t i = 0; i < ARRAY_SIZE(bs); i++) {
        CHECK(chmod(bs[i], i == 0 ? 0600 : 0777) == 0);
        if (geteuid() == 0) CHECK(chown(bs[i], 1234 + (uid_t)i, 5678) == 0);
        struct timespec ts[2] = {{.tv_sec = 12345 + (time_t)i}, {.tv_sec = 987654321 + (time_t)i, .tv_nsec = 5}};
        CHECK(utimensat(AT_FDCWD, bs[i], ts, 0) == 0);
        (void)setxattr(bs[i], "user.substrate-test", "x", 1, 0); /* ignored if unsupported */
    }
    sub_layer_entry va[16], vb[16], rev[16];
    size_t n = fixture_entries(&a, va);
    fixture_entries(&b, vb);
    for (size_t i = 0; i < n; i++) rev[i] = vb[n - 1 - i];
    /* the same paths spelled with and without the leading '/' */
    for (size_t i = 0; i < n; i++)
        if (rev[i].path[0] == '/') rev[i].path++;
    sub_err e = {0};
    sub_layer_result ra = {0}, rb = {0};
    _cleanup_free_ char *oa = sub_path_join(unit_tmpdir(), "a.tar.gz");
    _cleanup_free_ char *ob = sub_path_join(unit_tmpdir(), "b.tar.gz");
    CHECK_OK(sub_layer_write(va, n, MTIME, oa, &ra, &e), &e);
    CHECK_OK(sub_layer_write(rev, n, MTIME, ob, &rb, &e), &e);
    size_t la, lb;
    _cleanup_free_ char *ba = read_all(oa, &la);
    _cleanup_free_ char *bb = read_all(ob, &lb);
    CHECK(la == lb && memcmp(ba, bb, la) == 0);
    CHECK_STREQ(ra.digest, rb.digest);
    CHECK_STREQ(ra.diff_id, rb.diff_id);

    /* ...but the content of a file does matter */
    _cleanup_free_ char *other = make_src(b.dir, "small.txt", 13, 99);
    sub_layer_result rc = {0};
    CHECK_OK(sub_layer_write(rev, n, MTIME, ob, &rc, &e), &e);
    CHECK(strcmp(rc.diff_id, ra.diff_id) != 0);
    fixture_free(&a);
    fixture_free(&b);
}

typedef struct expect {
    const char *name;
    int type; /* AE_IF* */
    unsigned perm;
    const char *link;
    const char *src; /* file whose bytes must match, or NULL */
} expect;

TEST(layer_reads_back_as_declared) {
    fixture f = {0};
    fixture_make(&f, "src");
    sub_layer_entry v[16];
    size_t n = fixture_entries(&f, v);
    sub_err e = {0};
    sub_layer_result r = {0};
    _cleanup_free_ char *out = sub_path_join(unit_tmpdir(), "layer.tar.gz");
    CHECK_OK(sub_layer_write(v, n, MTIME, out, &r, &e), &e);
    /* bytewise order of the normalised paths: "a" < "a-b" < "a/b" ('-' < '/') */
    const expect want[] = {
        {"a/", AE_IFDIR, 0755, NULL, NULL},
        {"a-b", AE_IFREG, 0600, NULL, f.empty},
        {"a/b", AE_IFLNK, 0777, "../etc/motd", NULL},
        {"bin/", AE_IFDIR, 0755, NULL, NULL},
        {"bin/sh", AE_IFLNK, 0777, "busybox", NULL},
        {"etc/", AE_IFDIR, 0755, NULL, NULL},
        {"etc/motd", AE_IFREG, 0644, NULL, f.small},
        {"tmp/", AE_IFDIR, 01777, NULL, NULL},
        {"usr/", AE_IFDIR, 0700, NULL, NULL}, /* explicit entry beats the implicit parent */
        {"usr/bin/", AE_IFDIR, 0755, NULL, NULL},
        {"usr/bin/hello", AE_IFREG, 0755, NULL, f.big},
        {"usr/sbin/", AE_IFDIR, 0755, NULL, NULL},
        {"usr/sbin/su", AE_IFREG, 04755, NULL, f.small},
    };
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    CHECK(archive_read_open_filename(a, out, 10240) == ARCHIVE_OK);
    struct archive_entry *ae;
    size_t i = 0;
    int ar;
    while ((ar = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
        if (i >= ARRAY_SIZE(want)) {
            unit_fail(__FILE__, __LINE__, "unexpected extra entry %s", archive_entry_pathname(ae));
            break;
        }
        const expect *w = &want[i++];
        CHECK_STREQ(archive_entry_pathname(ae), w->name);
        CHECK_INT(archive_entry_filetype(ae), w->type);
        CHECK_INT(archive_entry_perm(ae), w->perm);
        CHECK_INT(archive_entry_uid(ae), 0);
        CHECK_INT(archive_entry_gid(ae), 0);
        const char *un = archive_entry_uname(ae), *gn = archive_entry_gname(ae);
        CHECK(!un || !*un);
        CHECK(!gn || !*gn);
        CHECK_INT(archive_entry_mtime(ae), MTIME);
        CHECK_INT(archive_entry_mtime_nsec(ae), 0);
        CHECK(!archive_entry_atime_is_set(ae));
        CHECK(!archive_entry_ctime_is_set(ae));
        CHECK_INT(archive_entry_xattr_count(ae), 0);
        CHECK(archive_entry_acl(ae) == NULL || archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) == 0);
        unsigned long set = 0, clr = 0;
        archive_entry_fflags(ae, &set, &clr);
        CHECK(set == 0 && clr == 0);
        if (w->link) CHECK_STREQ(archive_entry_symlink(ae), w->link);
        if (w->src) {
            size_t sl;
            _cleanup_free_ char *want_bytes = read_all(w->src, &sl);
            CHECK_INT(archive_entry_size(ae), sl);
            char *got = xmalloc(sl + 1);
            la_ssize_t k = archive_read_data(a, got, sl + 1);
            CHECK_INT(k, sl);
            CHECK(k >= 0 && memcmp(got, want_bytes, sl) == 0);
            free(got);
        } else {
            CHECK_INT(archive_entry_size(ae), 0);
        }
    }
    CHECK_INT(ar, ARCHIVE_EOF);
    CHECK_INT(i, ARRAY_SIZE(want));
    /* plain ustar headers: nothing here needs a pax extended header */
    CHECK(archive_format(a) == ARCHIVE_FORMAT_TAR_USTAR);
    archive_read_free(a);
    fixture_free(&f);
}

TEST(layer_long_names_use_pax_and_round_trip) {
    fixture f = {0};
    fixture_make(&f, "src");
    char comp[201];
    memset(comp, 'n', 200);
    comp[200] = 0;
    _cleanup_free_ char *p = xasprintf("opt/%s/file", comp);
    _cleanup_free_ char *t = xasprintf("../%s/%s/target", comp, comp);
    sub_layer_entry v[] = {
        {.path = p, .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644},
        {.path = "opt/link", .type = SUB_LAYER_SYMLINK, .target = t},
    };
    sub_err e = {0};
    sub_layer_result r1 = {0}, r2 = {0};
    _cleanup_free_ char *o1 = sub_path_join(unit_tmpdir(), "l1.tar.gz");
    _cleanup_free_ char *o2 = sub_path_join(unit_tmpdir(), "l2.tar.gz");
    CHECK_OK(sub_layer_write(v, 2, MTIME, o1, &r1, &e), &e);
    CHECK_OK(sub_layer_write(v, 2, MTIME, o2, &r2, &e), &e);
    CHECK_STREQ(r1.digest, r2.digest);
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    CHECK(archive_read_open_filename(a, o1, 10240) == ARCHIVE_OK);
    struct archive_entry *ae;
    _cleanup_free_ char *dir = xasprintf("opt/%s/", comp);
    const char *names[] = {"opt/", "opt/link", dir, p}; /* 'l' < 'n' */
    size_t i = 0;
    while (archive_read_next_header(a, &ae) == ARCHIVE_OK && i < ARRAY_SIZE(names)) {
        CHECK_STREQ(archive_entry_pathname(ae), names[i]);
        CHECK_INT(archive_entry_mtime(ae), MTIME);
        CHECK_INT(archive_entry_uid(ae), 0);
        if (i == 1) CHECK_STREQ(archive_entry_symlink(ae), t);
        i++;
    }
    CHECK_INT(i, 4);
    CHECK(archive_format(a) == ARCHIVE_FORMAT_TAR_PAX_RESTRICTED ||
          archive_format(a) == ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE);
    archive_read_free(a);
    fixture_free(&f);
}

TEST(layer_gzip_header_is_fixed) {
    fixture f = {0};
    fixture_make(&f, "src");
    sub_layer_entry v[16];
    size_t n = fixture_entries(&f, v);
    sub_err e = {0};
    _cleanup_free_ char *out = sub_path_join(unit_tmpdir(), "h.tar.gz");
    CHECK_OK(sub_layer_write(v, n, MTIME, out, NULL, &e), &e);
    size_t len;
    _cleanup_free_ unsigned char *b = (unsigned char *)read_all(out, &len);
    CHECK(len > 18);
    if (len <= 18) return;
    CHECK(b[0] == 0x1f && b[1] == 0x8b); /* gzip magic */
    CHECK_INT(b[2], 8);                   /* deflate */
    CHECK_INT(b[3], 0);                   /* no FNAME/FCOMMENT/FEXTRA/FHCRC */
    CHECK(b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] == 0); /* MTIME 0 */
    CHECK_INT(b[8], 0);                   /* XFL: neither fastest nor maximum (level 6) */
    CHECK_INT(b[9], SUB_LAYER_GZIP_OS);
    fixture_free(&f);
}

TEST(layer_compression_names_level_and_zlib_version) {
    const char *c = sub_layer_compression();
    CHECK(str_has_prefix(c, "gzip-6 zlib-"));
    CHECK(strstr(c, zlibVersion()) != NULL);
}

TEST(layer_empty_entry_list_is_an_empty_tar) {
    sub_err e = {0};
    sub_layer_result r = {0};
    _cleanup_free_ char *out = sub_path_join(unit_tmpdir(), "empty.tar.gz");
    CHECK_OK(sub_layer_write(NULL, 0, 0, out, &r, &e), &e);
    CHECK_INT(r.tar_size, 1024); /* just the two end-of-archive blocks */
    size_t len;
    _cleanup_free_ char *b = read_all(out, &len);
    size_t tl;
    _cleanup_free_ char *tar = gunzip(b, len, &tl);
    CHECK_INT(tl, 1024);
    bool zero = true;
    for (size_t i = 0; i < tl; i++) zero = zero && tar[i] == 0;
    CHECK(zero);
}

/* Each bad list fails, names the culprit, and leaves the directory empty. */
TEST(layer_errors_name_the_entry_and_leave_nothing) {
    fixture f = {0};
    fixture_make(&f, "src");
    _cleanup_free_ char *outdir = sub_path_join(unit_tmpdir(), "out");
    sub_err e = {0};
    CHECK_OK(sub_mkdir_p(outdir, 0755, &e), &e);
    _cleanup_free_ char *out = sub_path_join(outdir, "layer.tar.gz");
    _cleanup_free_ char *missing = sub_path_join(f.dir, "does-not-exist");
    struct {
        sub_layer_entry v[3];
        size_t n;
        int64_t mtime;
        int code;
        const char *needle;
    } t[] = {
        {{{.path = "/etc/x", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644},
          {.path = "etc/x", .type = SUB_LAYER_DIR, .mode = 0755}},
         2, MTIME, -EINVAL, "both declare \"etc/x\""},
        {{{.path = "etc/../x", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644}}, 1, MTIME, -EINVAL, "etc/../x"},
        {{{.path = "..", .type = SUB_LAYER_DIR, .mode = 0755}}, 1, MTIME, -EINVAL, "\"..\""},
        {{{.path = "./etc", .type = SUB_LAYER_DIR, .mode = 0755}}, 1, MTIME, -EINVAL, "./etc"},
        {{{.path = "etc//x", .type = SUB_LAYER_DIR, .mode = 0755}}, 1, MTIME, -EINVAL, "etc//x"},
        {{{.path = "/", .type = SUB_LAYER_DIR, .mode = 0755}}, 1, MTIME, -EINVAL, "empty path"},
        {{{.path = "etc/x/", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644}}, 1, MTIME, -EINVAL, "etc/x/"},
        {{{.path = "bin/true", .type = SUB_LAYER_FILE, .src = NULL, .mode = 0755}}, 1, MTIME, -EINVAL, "bin/true"},
        {{{.path = "bin/sh", .type = SUB_LAYER_SYMLINK, .target = NULL}}, 1, MTIME, -EINVAL, "bin/sh"},
        {{{.path = "bin/x", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0100755}}, 1, MTIME, -EINVAL, "bin/x"},
        {{{.path = "bad\nname", .type = SUB_LAYER_DIR, .mode = 0755}}, 1, MTIME, -EINVAL, "printable"},
        {{{.path = "bin", .type = SUB_LAYER_SYMLINK, .target = "usr/bin"},
          {.path = "bin/sh", .type = SUB_LAYER_SYMLINK, .target = "busybox"}},
         2, MTIME, -EINVAL, "\"bin\""},
        {{{.path = "etc/x", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644}}, 1, -1, -EINVAL, "negative"},
        /* failures found while streaming, after the temp file exists */
        {{{.path = "a", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644},
          {.path = "z/missing", .type = SUB_LAYER_FILE, .src = missing, .mode = 0644}},
         2, MTIME, -ENOENT, "z/missing"},
        {{{.path = "z/dir", .type = SUB_LAYER_FILE, .src = f.dir, .mode = 0644}}, 1, MTIME, -EINVAL, "not a regular file"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_err_clear(&e);
        sub_layer_result r = {0};
        int rc = sub_layer_write(t[i].v, t[i].n, t[i].mtime, out, &r, &e);
        if (rc != t[i].code)
            unit_fail(__FILE__, __LINE__, "case %zu: returned %d, expected %d (%s)", i, rc, t[i].code, e.msg);
        if (!strstr(e.msg, t[i].needle))
            unit_fail(__FILE__, __LINE__, "case %zu: message \"%s\" does not mention %s", i, e.msg, t[i].needle);
        if (count_dir(outdir) != 0)
            unit_fail(__FILE__, __LINE__, "case %zu: something was left in %s", i, outdir);
        CHECK(r.digest[0] == 0);
    }
    /* a failure does not clobber an existing good layer either */
    sub_layer_entry ok = {.path = "etc/x", .type = SUB_LAYER_FILE, .src = f.small, .mode = 0644};
    sub_layer_result good = {0};
    CHECK_OK(sub_layer_write(&ok, 1, MTIME, out, &good, &e), &e);
    CHECK(sub_layer_write(t[13].v, t[13].n, MTIME, out, NULL, &e) == -ENOENT);
    char d[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_file(out, d, NULL, &e), &e);
    CHECK_STREQ(d, good.digest);
    CHECK_INT(count_dir(outdir), 1);
    fixture_free(&f);
}

/* A src whose size is not what stat said is caught while streaming:
 * /proc files claim size 0 but have content; sysfs attributes claim 4096
 * bytes and deliver fewer. */
TEST(layer_src_changing_size_is_an_error) {
    _cleanup_free_ char *outdir = sub_path_join(unit_tmpdir(), "out");
    sub_err e = {0};
    CHECK_OK(sub_mkdir_p(outdir, 0755, &e), &e);
    _cleanup_free_ char *out = sub_path_join(outdir, "layer.tar.gz");
    sub_layer_entry grow = {.path = "status", .type = SUB_LAYER_FILE, .src = "/proc/self/status", .mode = 0644};
    CHECK(sub_layer_write(&grow, 1, MTIME, out, NULL, &e) == -EIO);
    CHECK(strstr(e.msg, "grew") != NULL);
    CHECK_INT(count_dir(outdir), 0);
    const char *sys = "/sys/kernel/mm/transparent_hugepage/enabled";
    struct stat st;
    if (stat(sys, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 4096) {
        unit_skip("no sysfs attribute to test shrinking sources");
        return;
    }
    sub_layer_entry shrink = {.path = "enabled", .type = SUB_LAYER_FILE, .src = sys, .mode = 0644};
    CHECK(sub_layer_write(&shrink, 1, MTIME, out, NULL, &e) == -EIO);
    CHECK(strstr(e.msg, "shrank") != NULL);
    CHECK_INT(count_dir(outdir), 0);
}
