/* Rootfs cache (lib/tier1/rootfs.c) and the layer unpacker (lib/oci/unpack.c):
 * layers are built here with libarchive's write side into an OCI layout; the
 * unpacked tree, its content list, hostile layers (refused, nothing written
 * outside the cache, nothing left in it), corrupt blobs, reuse, tampering
 * and the sweep of dead writers' temp dirs. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/layer.h"
#include "substrate/layout.h"
#include "substrate/manifest.h"
#include "substrate/rootfs.h"
#include "substrate/strbuf.h"
#include "substrate/unpack.h"
#include "unit.h"
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define MTIME 1700000000LL

/* ---- building layers ------------------------------------------------------------------------ */

typedef struct tarb {
    struct archive *a;
    sub_buf buf;
} tarb;

static la_ssize_t tb_write_cb(struct archive *a, void *ud, const void *buf, size_t n) {
    (void)a;
    sub_buf_append(ud, buf, n);
    return (la_ssize_t)n;
}

static void tb_open(tarb *t) {
    *t = (tarb){0};
    t->a = archive_write_new();
    archive_write_set_format_pax_restricted(t->a);
    /* names that are not UTF-8 are written as they are */
    archive_write_set_format_option(t->a, "pax", "hdrcharset", "BINARY");
    archive_write_set_bytes_in_last_block(t->a, 1);
    if (archive_write_open(t->a, &t->buf, NULL, tb_write_cb, NULL) != ARCHIVE_OK) abort();
}

/* One entry: type AE_IFREG (data), AE_IFDIR, AE_IFLNK (link = target), a
 * hardlink (type 0, link = target), or a device / FIFO. */
static void tb_add(tarb *t, const char *path, unsigned type, unsigned perm, const char *data,
                   const char *link, int uid, int gid) {
    struct archive_entry *en = archive_entry_new();
    archive_entry_set_pathname(en, path);
    archive_entry_set_mtime(en, MTIME, 0);
    archive_entry_set_uid(en, uid);
    archive_entry_set_gid(en, gid);
    archive_entry_set_perm(en, perm);
    if (type == 0) {
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_hardlink(en, link);
        archive_entry_set_size(en, 0);
    } else {
        archive_entry_set_filetype(en, type);
        if (type == AE_IFLNK) archive_entry_set_symlink(en, link);
        if (type == AE_IFCHR || type == AE_IFBLK) archive_entry_set_rdev(en, makedev(1, 3));
        archive_entry_set_size(en, type == AE_IFREG && data ? (la_int64_t)strlen(data) : 0);
    }
    if (archive_write_header(t->a, en) != ARCHIVE_OK)
        unit_fail(__FILE__, __LINE__, "tar header %s: %s", path, archive_error_string(t->a));
    if (type == AE_IFREG && data && *data) archive_write_data(t->a, data, strlen(data));
    archive_entry_free(en);
}
#define F(t, p, perm, data) tb_add(t, p, AE_IFREG, perm, data, NULL, 0, 0)
#define D(t, p, perm) tb_add(t, p, AE_IFDIR, perm, NULL, NULL, 0, 0)
#define L(t, p, target) tb_add(t, p, AE_IFLNK, 0777, NULL, target, 0, 0)
#define H(t, p, target) tb_add(t, p, 0, 0644, NULL, target, 0, 0)

static void tb_close(tarb *t) {
    archive_write_close(t->a);
    archive_write_free(t->a);
    t->a = NULL;
}

static char *gzip_buf(const char *in, size_t n, size_t *outlen) {
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    char *out = xmalloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *outlen = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

typedef struct layer {
    tarb t;
    bool gz;
    const char *media_type; /* NULL: the OCI type for gz */
} layer;

/* An image of these layers in a fresh layout at dir; its manifest digest. */
static void make_image(const char *dir, layer *ls, size_t n, char md[SUB_DIGEST_MAX],
                       char layer_digest[][SUB_DIGEST_MAX]) {
    sub_err e = {0};
    CHECK_OK(sub_layout_init(dir, &e), &e);
    json_t *layers = json_array(), *diffs = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *tar = ls[i].t.buf.data;
        size_t tl = ls[i].t.buf.len;
        char diff[SUB_DIGEST_MAX], ld[SUB_DIGEST_MAX];
        CHECK_OK(sub_sha256_buf(tar, tl, diff, &e), &e);
        size_t bl = tl;
        _cleanup_free_ char *gz = ls[i].gz ? gzip_buf(tar, tl, &bl) : NULL;
        CHECK_OK(sub_layout_put_blob_buf(dir, gz ? gz : tar, bl, ld, &e), &e);
        if (layer_digest) memcpy(layer_digest[i], ld, SUB_DIGEST_MAX);
        const char *mt = ls[i].media_type ? ls[i].media_type
                         : ls[i].gz       ? SUB_MT_OCI_LAYER_GZIP
                                          : SUB_MT_OCI_LAYER_TAR;
        json_array_append_new(layers, json_pack("{s:s,s:s,s:I}", "mediaType", mt, "digest", ld,
                                                "size", (json_int_t)bl));
        json_array_append_new(diffs, json_string(diff));
        sub_buf_free(&ls[i].t.buf);
    }
    _cleanup_json_ json_t *cfg =
        json_pack("{s:s,s:s,s:{s:s,s:o}}", "architecture", "amd64", "os", "linux", "rootfs",
                  "type", "layers", "diff_ids", diffs);
    size_t cl;
    _cleanup_free_ char *cs = sub_json_dump(cfg, &cl);
    char cd[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_buf(dir, cs, cl, cd, &e), &e);
    _cleanup_json_ json_t *m =
        json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:o}", "schemaVersion", 2, "mediaType",
                  SUB_MT_OCI_MANIFEST, "config", "mediaType", SUB_MT_OCI_CONFIG, "digest", cd,
                  "size", (json_int_t)cl, "layers", layers);
    size_t ml;
    _cleanup_free_ char *ms = sub_json_dump(m, &ml);
    CHECK_OK(sub_layout_put_blob_buf(dir, ms, ml, md, &e), &e);
}

/* ---- looking at the results --------------------------------------------------------------------- */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static char *at(const char *a, const char *b) { return sub_path_join(a, b); }

static bool lexists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static char *slurp(const char *p) {
    char *s = NULL;
    size_t n;
    sub_err e = {0};
    if (sub_read_file(p, 1 << 24, &s, &n, &e) < 0) return xstrdup("(unreadable)");
    return s;
}

static void put(const char *p, const char *s) {
    sub_err e = {0};
    CHECK_OK(sub_write_file_atomic(p, s, strlen(s), 0644, &e), &e);
}

/* "path type mode" per content-list entry, one per line. */
static char *content_summary(const char *entry_dir) {
    _cleanup_free_ char *p = at(entry_dir, "content.json");
    _cleanup_json_ json_t *j = NULL;
    sub_err e = {0};
    if (sub_json_load_file(p, 1 << 24, &j, &e) < 0) return xstrdup(e.msg);
    sub_buf b = SUB_BUF_INIT;
    size_t i;
    json_t *x;
    json_array_foreach(j, i, x) {
        const char *path = json_string_value(json_object_get(x, "path"));
        const char *hex = json_string_value(json_object_get(x, "path_hex"));
        const char *mode = json_string_value(json_object_get(x, "mode"));
        sub_buf_printf(&b, "%s%s %s %s\n", path ? "" : "hex:", path ? path : hex,
                       json_string_value(json_object_get(x, "type")), mode ? mode : "-");
    }
    return sub_buf_detach(&b, NULL);
}

/* A pid that is certainly not running: a child we forked and reaped. */
static pid_t dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

/* ---- the reference image ------------------------------------------------------------------------ */

static void reference_layers(layer ls[2]) {
    tarb *t = &ls[0].t;
    tb_open(t);
    ls[0].gz = true;
    D(t, "./", 0755);
    D(t, "etc/", 0755);
    F(t, "etc/passwd", 0644, "root:x:0:0::/root:/bin/sh\n");
    F(t, "etc/gone", 0644, "whited out by layer 2\n");
    L(t, "etc/abs", "/etc/passwd"); /* an absolute target is contents, kept */
    D(t, "usr/", 0755);
    D(t, "usr/bin/", 0755);
    F(t, "usr/bin/hello", 0755, "#!/bin/sh\necho hello\n");
    H(t, "usr/bin/hello2", "usr/bin/hello");
    F(t, "usr/bin/su", 04755, "setuid\n");
    L(t, "bin", "usr/bin");
    D(t, "var/lib/old/", 0755); /* parents made implicitly */
    F(t, "var/lib/old/a", 0644, "a");
    F(t, "var/lib/old/b", 0644, "b");
    D(t, "tmp/", 01777);
    tb_add(t, "owned", AE_IFREG, 0600, "mine", NULL, 1000, 1001);
    D(t, "d2f/", 0755);
    F(t, "d2f/x", 0644, "x");
    F(t, "f2d", 0644, "a file first");
    F(t, "latin-\xe9", 0644, "not UTF-8");
    tb_close(t);

    t = &ls[1].t;
    tb_open(t);
    ls[1].gz = false;
    F(t, "etc/.wh.gone", 0644, "");
    F(t, "var/lib/old/c", 0644, "c, before the opaque marker in the tar");
    F(t, "var/lib/old/.wh..wh..opq", 0644, "");
    F(t, "d2f", 0755, "a file now");
    D(t, "f2d/", 0700);
    F(t, "f2d/y", 0644, "y");
    F(t, "bin/via-link", 0755, "written through bin -> usr/bin");
    D(t, "sg/", 02755);
    F(t, "usr/bin/.wh..wh.plnk", 0644, ""); /* aufs bookkeeping: ignored */
    tb_close(t);
}

static const char reference_summary[] =
    "bin symlink -\n"
    "d2f file 0755\n"
    "dev dir 0755\n" /* the mount points are made by the cache */
    "etc dir 0755\n"
    "etc/abs symlink -\n"
    "etc/passwd file 0644\n"
    "f2d dir 0700\n"
    "f2d/y file 0644\n"
    "owned file 0600\n"
    "proc dir 0555\n"
    "run dir 0755\n"
    "sg dir 0755\n"
    "sys dir 0555\n"
    "tmp dir 1777\n"
    "usr dir 0755\n"
    "usr/bin dir 0755\n"
    "usr/bin/hello file 0755\n"
    "usr/bin/hello2 file 0755\n"
    "usr/bin/su file 0755\n"
    "usr/bin/via-link file 0755\n"
    "var dir 0755\n"
    "var/lib dir 0755\n"
    "var/lib/old dir 0755\n"
    "var/lib/old/c file 0644\n"
    "hex:6c6174696e2de9 file 0644\n";

/* The summary is sorted by the raw path; "latin-\xe9" sorts after "etc..."
 * but before "owned"; rebuild the expected text in raw order. */
static char *expected_summary(void) {
    const char *lines[64];
    size_t n = 0;
    _cleanup_free_ char *copy = xstrdup(reference_summary);
    for (char *s = strtok(copy, "\n"); s; s = strtok(NULL, "\n")) lines[n++] = s;
    /* insert the hex line where "latin-\xe9" sorts */
    const char *hexline = lines[n - 1];
    n--;
    sub_buf b = SUB_BUF_INIT;
    bool done = false;
    for (size_t i = 0; i < n; i++) {
        if (!done && strcmp(lines[i], "latin-\xe9") > 0) {
            sub_buf_printf(&b, "%s\n", hexline);
            done = true;
        }
        sub_buf_printf(&b, "%s\n", lines[i]);
    }
    if (!done) sub_buf_printf(&b, "%s\n", hexline);
    return sub_buf_detach(&b, NULL);
}

typedef struct fix {
    char *layout, *cache, *outside;
    char md[SUB_DIGEST_MAX];
    char ld[4][SUB_DIGEST_MAX];
} fix;

static void fix_make(fix *f, const char *name, layer *ls, size_t n) {
    _cleanup_free_ char *base = at(unit_tmpdir(), name);
    f->layout = at(base, "layout");
    f->cache = at(base, "cache");
    f->outside = at(base, "outside");
    sub_err e = {0};
    CHECK_OK(sub_mkdir_p(f->outside, 0755, &e), &e);
    _cleanup_free_ char *sentinel = at(f->outside, "file");
    put(sentinel, "sentinel");
    make_image(f->layout, ls, n, f->md, f->ld);
}

static void fix_free(fix *f) {
    free(f->layout);
    free(f->cache);
    free(f->outside);
}

/* Nothing but the sentinel file outside, with one link. */
static void check_outside(const fix *f, const char *what) {
    if (count_entries(f->outside) != 1)
        unit_fail(__FILE__, __LINE__, "%s: %d entries beside the cache", what,
                  count_entries(f->outside));
    _cleanup_free_ char *s = at(f->outside, "file");
    struct stat st;
    if (lstat(s, &st) < 0 || st.st_nlink != 1)
        unit_fail(__FILE__, __LINE__, "%s: the sentinel file was linked or removed", what);
    _cleanup_free_ char *c = slurp(s);
    if (strcmp(c, "sentinel")) unit_fail(__FILE__, __LINE__, "%s: the sentinel changed", what);
}

/* ---- tests ------------------------------------------------------------------------------------- */

TEST(rootfs_unpacks_layers_with_whiteouts_links_and_setuid_cleared) {
    layer ls[2] = {0};
    reference_layers(ls);
    fix f = {0};
    fix_make(&f, "ref", ls, 2);
    sub_err e = {0};
    sub_rootfs_info info = {0};
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e), &e);
    CHECK(!info.reused && !info.replaced);
    _cleanup_free_ char *want_entry = at(f.cache, sub_digest_hex(f.md));
    CHECK_STREQ(info.entry_dir, want_entry);
    _cleanup_free_ char *want_rootfs = at(want_entry, "rootfs");
    CHECK_STREQ(info.rootfs, want_rootfs);
    CHECK_INT(info.entries, 25);

    _cleanup_free_ char *sum = content_summary(info.entry_dir);
    _cleanup_free_ char *want = expected_summary();
    CHECK_STREQ(sum, want);

    /* setuid and setgid cleared and listed, sorted */
    CHECK(info.setuid_cleared && strv_len(info.setuid_cleared) == 2);
    if (info.setuid_cleared && strv_len(info.setuid_cleared) == 2) {
        CHECK_STREQ(info.setuid_cleared[0], "sg");
        CHECK_STREQ(info.setuid_cleared[1], "usr/bin/su");
    }
    const char *r = info.rootfs;
    struct stat st, st2;
    _cleanup_free_ char *su = at(r, "usr/bin/su");
    CHECK(stat(su, &st) == 0 && (st.st_mode & 07777) == 0755);

    /* whiteout, opaque whiteout (an entry of the same layer stays), replacements */
    _cleanup_free_ char *gone = at(r, "etc/gone"), *wh = at(r, "etc/.wh.gone");
    CHECK(!lexists(gone) && !lexists(wh));
    _cleanup_free_ char *oa = at(r, "var/lib/old/a"), *oc = at(r, "var/lib/old/c");
    CHECK(!lexists(oa) && lexists(oc));
    _cleanup_free_ char *d2f = at(r, "d2f"), *f2dy = at(r, "f2d/y");
    CHECK(lstat(d2f, &st) == 0 && S_ISREG(st.st_mode));
    _cleanup_free_ char *d2fc = slurp(d2f);
    CHECK_STREQ(d2fc, "a file now");
    CHECK(lexists(f2dy));

    /* links */
    char buf[256] = "";
    _cleanup_free_ char *abs = at(r, "etc/abs");
    ssize_t n = readlink(abs, buf, sizeof buf - 1);
    CHECK(n == 11 && !memcmp(buf, "/etc/passwd", 11));
    _cleanup_free_ char *h1 = at(r, "usr/bin/hello"), *h2 = at(r, "usr/bin/hello2");
    CHECK(stat(h1, &st) == 0 && stat(h2, &st2) == 0 && st.st_ino == st2.st_ino);
    _cleanup_free_ char *vl = at(r, "usr/bin/via-link");
    CHECK(lexists(vl));

    /* modes, mtimes, owners */
    _cleanup_free_ char *tmp = at(r, "tmp");
    CHECK(lstat(tmp, &st) == 0 && (st.st_mode & 07777) == 01777);
    CHECK(lstat(h1, &st) == 0 && st.st_mtim.tv_sec == MTIME);
    _cleanup_free_ char *usr = at(r, "usr");
    CHECK(lstat(usr, &st) == 0 && st.st_mtim.tv_sec == MTIME); /* after its contents */
    CHECK(lstat(abs, &st) == 0 && st.st_mtim.tv_sec == MTIME);
    _cleanup_free_ char *owned = at(r, "owned");
    if (geteuid() == 0) CHECK(lstat(owned, &st) == 0 && st.st_uid == 1000 && st.st_gid == 1001);
    else unit_skip_part("ownership", "not root");

    /* unpack.json */
    _cleanup_free_ char *up = at(info.entry_dir, "unpack.json");
    _cleanup_json_ json_t *u = NULL;
    CHECK_OK(sub_json_load_file(up, 1 << 20, &u, &e), &e);
    CHECK_STREQ(json_string_value(json_object_get(u, "manifest_digest")), f.md);
    CHECK_INT(json_array_size(json_object_get(u, "layers")), 2);
    CHECK_STREQ(json_string_value(json_array_get(json_object_get(u, "layers"), 0)), f.ld[0]);
    CHECK_INT(json_integer_value(json_object_get(u, "entries")), 25);
    CHECK_INT(json_array_size(json_object_get(u, "setuid_cleared")), 2);

    /* a fresh entry checks clean; only the entry is in the cache */
    sub_rootfs_diff d = {0};
    CHECK_OK(sub_rootfs_check(info.entry_dir, &d, &e), &e);
    CHECK_INT(d.n, 0);
    sub_rootfs_diff_done(&d);
    CHECK_INT(count_entries(f.cache), 1);
    check_outside(&f, "reference image");
    sub_rootfs_info_done(&info);
    fix_free(&f);
}

/* One hostile layer after a harmless one; the refusal must name the entry. */
typedef void (*hostile_fn)(tarb *lower, tarb *t, const char *outside);

static void h_dotdot(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    F(t, "../x", 0644, "x");
}
static void h_dotdot_deep(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    F(t, "ok/../../../../outside/x", 0644, "x");
}
static void h_absolute(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    _cleanup_free_ char *p = at(o, "x"); /* "/etc/x", aimed at the sentinel */
    F(t, p, 0644, "x");
}
static void h_absolute_etc(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    F(t, "/etc/substrate-test-must-not-exist", 0644, "x");
}
static void h_symlink_root(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    L(t, "s", "/");
    _cleanup_free_ char *p = xasprintf("s%s/x", o);
    F(t, p, 0644, "x");
}
static void h_symlink_abs(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    L(t, "s", o);
    F(t, "s/x", 0644, "x");
}
static void h_symlink_dotdot(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    L(t, "s", "../../../outside");
    F(t, "s/x", 0644, "x");
}
static void h_symlink_dotdot_dir(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    L(t, "s", "../../..");
    D(t, "s/outside/newdir/", 0755);
}
static void h_symlink_mkdir_p(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    L(t, "s", "../../../outside");
    F(t, "s/a/b/c", 0644, "x");
}
static void h_symlink_whiteout(tarb *lower, tarb *t, const char *o) {
    L(lower, "s", o); /* a lower layer's symlink out: contents, allowed */
    F(t, "s/.wh.file", 0644, "");
}
static void h_symlink_chain(tarb *lower, tarb *t, const char *o) {
    (void)o;
    L(lower, "b", "../../.."); /* from the rootfs in the cache: beside the cache */
    L(t, "a", "b/outside");
    F(t, "a/x", 0644, "x");
}
static void h_hardlink_abs(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    H(t, "pw", "/etc/passwd");
}
static void h_hardlink_outside(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    H(t, "pw", "../../../outside/file");
}
static void h_hardlink_via_symlink(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    L(t, "s", o);
    H(t, "pw", "s/file");
}
static void h_hardlink_missing(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    H(t, "pw", "not/yet/there");
}
static void h_chardev(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    tb_add(t, "dev/null", AE_IFCHR, 0666, NULL, NULL, 0, 0);
}
static void h_blockdev(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    tb_add(t, "dev/sda", AE_IFBLK, 0660, NULL, NULL, 0, 0);
}
static void h_fifo(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    tb_add(t, "run/fifo", AE_IFIFO, 0644, NULL, NULL, 0, 0);
}
static void h_deep(tarb *lower, tarb *t, const char *o) {
    (void)lower;
    (void)o;
    sub_buf b = SUB_BUF_INIT;
    for (int i = 0; i < SUB_UNPACK_MAX_DEPTH + 4; i++) sub_buf_puts(&b, "d/");
    D(t, sub_buf_str(&b), 0755);
    sub_buf_free(&b);
}

TEST(rootfs_refuses_hostile_layers_and_leaves_nothing) {
    static const struct {
        const char *name;
        hostile_fn fn;
        const char *entry; /* in the message */
    } cases[] = {
        {"dotdot", h_dotdot, "../x"},
        {"dotdot-deep", h_dotdot_deep, "ok/../../../../outside/x"},
        {"absolute", h_absolute, "/x"},
        {"absolute-etc", h_absolute_etc, "/etc/substrate-test-must-not-exist"},
        {"symlink-root", h_symlink_root, "/x"},
        {"symlink-abs", h_symlink_abs, "s/x"},
        {"symlink-dotdot", h_symlink_dotdot, "s/x"},
        {"symlink-dotdot-dir", h_symlink_dotdot_dir, "s/outside/newdir"},
        {"symlink-mkdir-p", h_symlink_mkdir_p, "s/a/b/c"},
        {"symlink-whiteout", h_symlink_whiteout, "s/.wh.file"},
        {"symlink-chain", h_symlink_chain, "a/x"},
        {"hardlink-abs", h_hardlink_abs, "pw"},
        {"hardlink-outside", h_hardlink_outside, "pw"},
        {"hardlink-via-symlink", h_hardlink_via_symlink, "pw"},
        {"hardlink-missing", h_hardlink_missing, "pw"},
        {"chardev", h_chardev, "dev/null"},
        {"blockdev", h_blockdev, "dev/sda"},
        {"fifo", h_fifo, "run/fifo"},
        {"deep", h_deep, "d/d/d/"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        for (int gz = 0; gz < 2; gz++) {
            _cleanup_free_ char *name = xasprintf("h-%s-%d", cases[i].name, gz);
            _cleanup_free_ char *base = at(unit_tmpdir(), name);
            _cleanup_free_ char *outside = at(base, "outside");
            layer ls[2] = {0};
            tb_open(&ls[0].t);
            tb_open(&ls[1].t);
            F(&ls[0].t, "etc/hostname", 0644, "base\n");
            ls[1].gz = gz;
            cases[i].fn(&ls[0].t, &ls[1].t, outside);
            tb_close(&ls[0].t);
            tb_close(&ls[1].t);
            fix f = {0};
            fix_make(&f, name, ls, 2);
            sub_err e = {0};
            sub_rootfs_info info = {0};
            int r = sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e);
            if (r >= 0) unit_fail(__FILE__, __LINE__, "%s: not refused", name);
            if (getenv("UNIT_VERBOSE")) printf("# %s: %s\n", name, e.msg);
            if (e.reason != SUB_R_HOSTILE_LAYER || e.kind != SUB_KIND_INPUT)
                unit_fail(__FILE__, __LINE__, "%s: reason %s kind %d: %s", name,
                          sub_reason_to_string(e.reason), e.kind, e.msg);
            if (!strstr(e.msg, f.ld[1]) || !strstr(e.msg, cases[i].entry))
                unit_fail(__FILE__, __LINE__, "%s: the message names neither layer nor entry: %s",
                          name, e.msg);
            CHECK(info.entry_dir == NULL);
            if (count_entries(f.cache) != 0)
                unit_fail(__FILE__, __LINE__, "%s: %d entries left in the cache", name,
                          count_entries(f.cache));
            check_outside(&f, name);
            fix_free(&f);
        }
    }
    CHECK(!lexists("/etc/substrate-test-must-not-exist"));
}

TEST(rootfs_refuses_a_corrupt_layer_blob) {
    layer ls[2] = {0};
    reference_layers(ls);
    fix f = {0};
    fix_make(&f, "corrupt", ls, 2);
    for (int i = 0; i < 2; i++) {
        /* one byte changed in the middle (gzip'd and plain layers) */
        _cleanup_free_ char *bp = sub_layout_blob_path(f.layout, f.ld[i]);
        int fd = open(bp, O_RDWR);
        struct stat st;
        CHECK(fd >= 0 && fstat(fd, &st) == 0);
        off_t off = st.st_size / 2;
        unsigned char c;
        CHECK(pread(fd, &c, 1, off) == 1);
        c ^= 0x20;
        CHECK(pwrite(fd, &c, 1, off) == 1);
        close(fd);
        sub_err e = {0};
        sub_rootfs_info info = {0};
        CHECK_FAILS(sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e), -EILSEQ);
        CHECK_REASON(&e, SUB_R_LAYER_MISMATCH);
        CHECK(strstr(e.msg, f.ld[i]) != NULL);
        CHECK_INT(count_entries(f.cache), 0);
        c ^= 0x20;
        fd = open(bp, O_RDWR);
        CHECK(pwrite(fd, &c, 1, off) == 1);
        close(fd);
    }
    /* repaired: it unpacks */
    sub_err e = {0};
    sub_rootfs_info info = {0};
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e), &e);
    sub_rootfs_info_done(&info);
    check_outside(&f, "corrupt");
    fix_free(&f);
}

TEST(rootfs_reuses_a_clean_entry_and_replaces_a_tampered_one) {
    layer ls[2] = {0};
    reference_layers(ls);
    fix f = {0};
    fix_make(&f, "reuse", ls, 2);
    sub_err e = {0};
    sub_rootfs_info a = {0}, b = {0}, c = {0};
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &a, &e), &e);
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &b, &e), &e);
    CHECK(b.reused && !b.replaced);
    CHECK_INT(b.entries, a.entries);
    CHECK(b.setuid_cleared && strv_len(b.setuid_cleared) == 2);
    CHECK_STREQ(b.rootfs, a.rootfs);

    /* tamper: content, mode, owner, an added file, a removed symlink, a retargeted one */
    const char *r = a.rootfs;
    _cleanup_free_ char *pw = at(r, "etc/passwd"), *tmp = at(r, "tmp"), *hello = at(r, "f2d/y");
    _cleanup_free_ char *added = at(r, "usr/bin/.backdoor"), *abs = at(r, "etc/abs");
    _cleanup_free_ char *bin = at(r, "bin"), *owned = at(r, "owned");
    put(hello, "Y"); /* same size, other content */
    put(pw, "root::0:0::/root:/bin/sh\n");
    CHECK(chmod(tmp, 0777) == 0);
    put(added, "evil");
    CHECK(unlink(abs) == 0);
    CHECK(unlink(bin) == 0 && symlink("/usr/sbin", bin) == 0);
    bool root = geteuid() == 0;
    if (root) CHECK(lchown(owned, 0, 0) == 0);

    sub_rootfs_diff d = {0};
    CHECK_OK(sub_rootfs_check(a.entry_dir, &d, &e), &e);
    sub_buf sb = SUB_BUF_INIT;
    for (size_t i = 0; i < d.n; i++)
        sub_buf_printf(&sb, "%s %s %s\n", sub_rootfs_change_str(d.items[i].change),
                       d.items[i].path, d.items[i].what ? d.items[i].what : "-");
    /* etc/passwd's new text is one byte shorter: its size tells */
    const char *want = root ? "changed bin target\n"
                              "removed etc/abs -\n"
                              "changed etc/passwd size\n"
                              "changed f2d/y content\n"
                              "changed owned owner\n"
                              "changed tmp mode\n"
                              "added usr/bin/.backdoor -\n"
                            : "changed bin target\n"
                              "removed etc/abs -\n"
                              "changed etc/passwd size\n"
                              "changed f2d/y content\n"
                              "changed tmp mode\n"
                              "added usr/bin/.backdoor -\n";
    CHECK_STREQ(sub_buf_str(&sb), want);
    sub_buf_free(&sb);
    sub_rootfs_diff_done(&d);

    /* prepare notices, unpacks again, and the tamper is gone */
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &c, &e), &e);
    CHECK(c.replaced && !c.reused);
    CHECK(!lexists(added) && lexists(abs));
    _cleanup_free_ char *pwc = slurp(pw);
    CHECK_STREQ(pwc, "root:x:0:0::/root:/bin/sh\n");
    CHECK_OK(sub_rootfs_check(c.entry_dir, &d, &e), &e);
    CHECK_INT(d.n, 0);
    sub_rootfs_diff_done(&d);
    CHECK_INT(count_entries(f.cache), 1);

    /* a missing content list is -ENOENT for check and a re-unpack for prepare */
    _cleanup_free_ char *cj = at(c.entry_dir, "content.json");
    CHECK(unlink(cj) == 0);
    CHECK_FAILS(sub_rootfs_check(c.entry_dir, &d, &e), -ENOENT);
    sub_rootfs_info x = {0};
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &x, &e), &e);
    CHECK(x.replaced && !x.reused);
    sub_rootfs_info_done(&x);

    sub_rootfs_info_done(&a);
    sub_rootfs_info_done(&b);
    sub_rootfs_info_done(&c);
    check_outside(&f, "reuse");
    fix_free(&f);
}

TEST(rootfs_sweeps_a_dead_writers_temp_dir) {
    layer ls[1] = {0};
    tb_open(&ls[0].t);
    F(&ls[0].t, "a", 0644, "a");
    tb_close(&ls[0].t);
    fix f = {0};
    fix_make(&f, "sweep", ls, 1);
    sub_err e = {0};
    _cleanup_free_ char *dead = xasprintf("%s/.tmp-%d-AbCdEf", f.cache, (int)dead_pid());
    _cleanup_free_ char *deadsub = at(dead, "rootfs/usr/bin");
    CHECK_OK(sub_mkdir_p(deadsub, 0755, &e), &e);
    _cleanup_free_ char *live = xasprintf("%s/.tmp-%d-LiVeXx", f.cache, (int)getppid());
    CHECK_OK(sub_mkdir_p(live, 0755, &e), &e);
    sub_rootfs_info info = {0};
    CHECK_OK(sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e), &e);
    CHECK(!lexists(dead));
    CHECK(lexists(live)); /* a live writer's */
    CHECK_INT(count_entries(f.cache), 2);
    rmdir(live);
    sub_rootfs_info_done(&info);
    fix_free(&f);
}

TEST(rootfs_refuses_zstd_and_unknown_layers_and_indexes) {
    static const char *const mts[] = {"application/vnd.oci.image.layer.v1.tar+zstd",
                                      "application/vnd.example.layer"};
    for (size_t i = 0; i < ARRAY_SIZE(mts); i++) {
        layer ls[1] = {0};
        tb_open(&ls[0].t);
        F(&ls[0].t, "a", 0644, "a");
        tb_close(&ls[0].t);
        ls[0].media_type = mts[i];
        fix f = {0};
        _cleanup_free_ char *name = xasprintf("mt%zu", i);
        fix_make(&f, name, ls, 1);
        sub_err e = {0};
        sub_rootfs_info info = {0};
        CHECK_FAILS(sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e), -EPROTONOSUPPORT);
        CHECK(e.kind == SUB_KIND_INPUT);
        CHECK(strstr(e.msg, i == 0 ? "zstd" : "application/vnd.example.layer") != NULL);
        CHECK_INT(count_entries(f.cache), 0);
        fix_free(&f);
    }
    /* a plain tar declared as gzip */
    layer ls[1] = {0};
    tb_open(&ls[0].t);
    F(&ls[0].t, "a", 0644, "a");
    tb_close(&ls[0].t);
    ls[0].media_type = SUB_MT_DOCKER_LAYER_GZIP;
    fix f = {0};
    fix_make(&f, "notgz", ls, 1);
    sub_err e = {0};
    sub_rootfs_info info = {0};
    CHECK(sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e) < 0);
    CHECK(strstr(e.msg, "gzip") != NULL);
    CHECK_INT(count_entries(f.cache), 0);
    /* an index digest, and a digest that is not one */
    const char *idx = "{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_INDEX "\",\"manifests\":[]}";
    char id[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_buf(f.layout, idx, strlen(idx), id, &e), &e);
    CHECK_FAILS(sub_rootfs_prepare(f.layout, id, f.cache, &info, &e), -EINVAL);
    CHECK(strstr(e.msg, "index") != NULL);
    CHECK(sub_rootfs_prepare(f.layout, "sha256:../../x", f.cache, &info, &e) < 0);
    CHECK(e.kind == SUB_KIND_INPUT);
    fix_free(&f);
}

/* The caps, directly on sub_unpack_layer with small limits. */
TEST(unpack_caps_bytes_and_entries) {
    sub_err e = {0};
    _cleanup_free_ char *dir = at(unit_tmpdir(), "caps");
    CHECK_OK(sub_mkdir_p(dir, 0755, &e), &e);
    tarb t;
    tb_open(&t);
    F(&t, "a", 0644, "0123456789");
    F(&t, "b", 0644, "0123456789");
    F(&t, "c", 0644, "0123456789");
    tb_close(&t);
    _cleanup_free_ char *blob = at(dir, "blob");
    sub_err we = {0};
    CHECK_OK(sub_write_file_atomic(blob, t.buf.data, t.buf.len, 0644, &we), &we);
    char dg[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(t.buf.data, t.buf.len, dg, &e), &e);
    for (int k = 0; k < 3; k++) {
        _cleanup_free_ char *rd = xasprintf("%s/root%d", dir, k);
        CHECK_OK(sub_mkdir_p(rd, 0755, &e), &e);
        int rootfd = open(rd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        sub_unpack_report rep = {0};
        if (k == 0) rep.max_bytes = 25;
        if (k == 1) rep.max_entries = 2;
        int r = sub_unpack_layer(rootfd, blob, SUB_MT_OCI_LAYER_TAR, dg, t.buf.len, dg, &rep, &e);
        if (k < 2) {
            CHECK_FAILS(r, k == 0 ? -EFBIG : -E2BIG);
            CHECK_REASON(&e, SUB_R_HOSTILE_LAYER);
            CHECK_INT(count_entries(rd), 0); /* refused before anything was written */
        } else {
            CHECK_OK(r, &e);
            CHECK_INT(rep.bytes, 30);
            CHECK_INT(rep.entries, 3);
            CHECK_INT(count_entries(rd), 3);
        }
        /* a wrong diff_id is a mismatch */
        if (k == 2) {
            char other[SUB_DIGEST_MAX];
            CHECK_OK(sub_sha256_buf("x", 1, other, &e), &e);
            CHECK_FAILS(sub_unpack_layer(rootfd, blob, SUB_MT_OCI_LAYER_TAR, dg, 0, other, NULL, &e),
                        -EILSEQ);
            CHECK_REASON(&e, SUB_R_LAYER_MISMATCH);
        }
        sub_unpack_report_done(&rep);
        close(rootfd);
    }
    sub_buf_free(&t.buf);
}

TEST(unpack_rm_rf_at_stays_below_and_refuses_bad_names) {
    sub_err e = {0};
    _cleanup_free_ char *dir = at(unit_tmpdir(), "rm");
    _cleanup_free_ char *deep = at(dir, "t/a/b/c");
    CHECK_OK(sub_mkdir_p(deep, 0755, &e), &e);
    _cleanup_free_ char *keep = at(dir, "keep");
    put(keep, "k");
    _cleanup_free_ char *ln = at(dir, "t/a/link");
    CHECK(symlink(keep, ln) == 0);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK_FAILS(sub_rm_rf_at(fd, "..", &e), -EINVAL);
    CHECK_FAILS(sub_rm_rf_at(fd, "t/a", &e), -EINVAL);
    CHECK_OK(sub_rm_rf_at(fd, "t", &e), &e);
    CHECK_OK(sub_rm_rf_at(fd, "missing", &e), &e);
    close(fd);
    _cleanup_free_ char *t = at(dir, "t");
    CHECK(!lexists(t) && lexists(keep));
}

/* gzip as the spec allows it (several members) and as it does not (trailing
 * bytes, a cut stream). */
TEST(unpack_gzip_members_trailing_bytes_and_truncation) {
    sub_err e = {0};
    _cleanup_free_ char *dir = at(unit_tmpdir(), "gz");
    CHECK_OK(sub_mkdir_p(dir, 0755, &e), &e);
    tarb t;
    tb_open(&t);
    F(&t, "a", 0644, "first");
    F(&t, "b/c", 0644, "second");
    tb_close(&t);
    char diff[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(t.buf.data, t.buf.len, diff, &e), &e);
    size_t half = t.buf.len / 2, l1, l2;
    _cleanup_free_ char *g1 = gzip_buf(t.buf.data, half, &l1);
    _cleanup_free_ char *g2 = gzip_buf(t.buf.data + half, t.buf.len - half, &l2);
    static const char *const names[] = {"two-members", "trailing", "truncated"};
    for (int k = 0; k < 3; k++) {
        sub_buf b = SUB_BUF_INIT;
        sub_buf_append(&b, g1, l1);
        if (k == 2) b.len -= 5;
        else sub_buf_append(&b, g2, l2);
        if (k == 1) sub_buf_puts(&b, "junk after the stream");
        _cleanup_free_ char *blob = xasprintf("%s/%s", dir, names[k]);
        CHECK_OK(sub_write_file_atomic(blob, b.data, b.len, 0644, &e), &e);
        char dg[SUB_DIGEST_MAX];
        CHECK_OK(sub_sha256_buf(b.data, b.len, dg, &e), &e);
        _cleanup_free_ char *rd = xasprintf("%s/root-%s", dir, names[k]);
        CHECK_OK(sub_mkdir_p(rd, 0755, &e), &e);
        int rootfd = open(rd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = sub_unpack_layer(rootfd, blob, SUB_MT_DOCKER_LAYER_GZIP, dg, b.len, diff, NULL, &e);
        close(rootfd);
        if (k == 0) {
            CHECK_OK(r, &e);
            _cleanup_free_ char *c = xasprintf("%s/b/c", rd);
            _cleanup_free_ char *s = slurp(c);
            CHECK_STREQ(s, "second");
        } else {
            CHECK_FAILS(r, -EBADMSG);
            CHECK(strstr(e.msg, k == 1 ? "not a valid gzip stream" : "truncated") != NULL);
            CHECK(strstr(e.msg, dg) != NULL);
        }
        sub_buf_free(&b);
    }
    sub_buf_free(&t.buf);
}

/* Two writers at once: both succeed, one entry stays (the loser checks the
 * winner's and drops its own temp dir). */
TEST(rootfs_concurrent_prepares_leave_one_entry) {
    layer ls[2] = {0};
    reference_layers(ls);
    fix f = {0};
    fix_make(&f, "race", ls, 2);
    for (int round = 0; round < 3; round++) {
        pid_t kids[3];
        for (int k = 0; k < 3; k++) {
            kids[k] = fork();
            if (kids[k] == 0) {
                sub_err e = {0};
                sub_rootfs_info info = {0};
                int r = sub_rootfs_prepare(f.layout, f.md, f.cache, &info, &e);
                if (r < 0) fprintf(stderr, "# child: %s\n", e.msg);
                if (getenv("UNIT_VERBOSE")) fprintf(stderr, "# child: reused %d\n", info.reused);
                _exit(r < 0 || info.entries != 25);
            }
        }
        for (int k = 0; k < 3; k++) {
            int st = -1;
            waitpid(kids[k], &st, 0);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        CHECK_INT(count_entries(f.cache), 1);
        _cleanup_free_ char *entry = at(f.cache, sub_digest_hex(f.md));
        sub_err e = {0};
        sub_rootfs_diff d = {0};
        CHECK_OK(sub_rootfs_check(entry, &d, &e), &e);
        CHECK_INT(d.n, 0);
        sub_rootfs_diff_done(&d);
        CHECK_OK(sub_rm_rf(entry, &e), &e); /* the next round races for a fresh entry */
    }
    fix_free(&f);
}

/* A layer from our own deterministic writer (lib/image/layer.c) unpacks, and
 * its diff_id matches what the unpacker hashed. */
TEST(rootfs_unpacks_our_own_layer_writer_output) {
    sub_err e = {0};
    _cleanup_free_ char *base = at(unit_tmpdir(), "own");
    _cleanup_free_ char *layout = at(base, "layout"), *cache = at(base, "cache");
    _cleanup_free_ char *src = at(base, "hello.txt");
    CHECK_OK(sub_mkdir_p(base, 0755, &e), &e);
    put(src, "hello\n");
    sub_layer_entry v[] = {
        {.path = "/usr/bin/hello", .type = SUB_LAYER_FILE, .src = src, .mode = 04755},
        {.path = "/tmp/", .type = SUB_LAYER_DIR, .mode = 01777},
        {.path = "bin/sh", .type = SUB_LAYER_SYMLINK, .target = "/usr/bin/hello"},
    };
    _cleanup_free_ char *lp = at(base, "layer.tar.gz");
    sub_layer_result lr = {0};
    CHECK_OK(sub_layer_write(v, ARRAY_SIZE(v), MTIME, lp, &lr, &e), &e);
    CHECK_OK(sub_layout_init(layout, &e), &e);
    char ld[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_file(layout, lp, lr.digest, ld, &e), &e);
    _cleanup_json_ json_t *cfg =
        json_pack("{s:s,s:s,s:{s:s,s:[s]}}", "architecture", "amd64", "os", "linux", "rootfs",
                  "type", "layers", "diff_ids", lr.diff_id);
    size_t cl;
    _cleanup_free_ char *cs = sub_json_dump(cfg, &cl);
    char cd[SUB_DIGEST_MAX], md[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_buf(layout, cs, cl, cd, &e), &e);
    _cleanup_json_ json_t *m = json_pack(
        "{s:i,s:s,s:{s:s,s:s,s:I},s:[{s:s,s:s,s:I}]}", "schemaVersion", 2, "mediaType",
        SUB_MT_OCI_MANIFEST, "config", "mediaType", SUB_MT_OCI_CONFIG, "digest", cd, "size",
        (json_int_t)cl, "layers", "mediaType", SUB_LAYER_MEDIA_TYPE, "digest", ld, "size",
        (json_int_t)lr.size);
    size_t ml;
    _cleanup_free_ char *ms = sub_json_dump(m, &ml);
    CHECK_OK(sub_layout_put_blob_buf(layout, ms, ml, md, &e), &e);
    sub_rootfs_info info = {0};
    CHECK_OK(sub_rootfs_prepare(layout, md, cache, &info, &e), &e);
    _cleanup_free_ char *sum = info.entry_dir ? content_summary(info.entry_dir) : xstrdup("");
    CHECK_STREQ(sum, "bin dir 0755\n"
                     "bin/sh symlink -\n"
                     "dev dir 0755\n"
                     "proc dir 0555\n"
                     "run dir 0755\n"
                     "sys dir 0555\n"
                     "tmp dir 1777\n"
                     "usr dir 0755\n"
                     "usr/bin dir 0755\n"
                     "usr/bin/hello file 0755\n");
    CHECK(info.setuid_cleared && info.setuid_cleared[0] &&
          streq(info.setuid_cleared[0], "usr/bin/hello"));
    sub_rootfs_info_done(&info);
}
