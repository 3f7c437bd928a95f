/* lib/tier2/vmimage.c: the kernel extracted from a bzImage and cached, the TSC rate, the module
 * closure in load order, the deterministic cpio initramfs. Tests on this machine's kernel
 * (/boot/vmlinuz-VER, /lib/modules/VER) skip when it is absent; fixtures built here cover the rest. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/strbuf.h"
#include "substrate/vmimage.h"
#include "unit.h"
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* ---- fixtures ------------------------------------------------------------------------------- */

static void put(const char *path, const void *data, size_t len) {
    sub_err e = {0};
    _cleanup_free_ char *dir = xstrdup(path);
    *strrchr(dir, '/') = 0;
    if (sub_mkdir_p(dir, 0755, &e) < 0 || sub_write_file_atomic(path, data, len, 0644, &e) < 0)
        unit_fail(__FILE__, __LINE__, "%s", e.msg);
}
static void puts_file(const char *path, const char *s) { put(path, s, strlen(s)); }

/* A complete little ELF64 file with a .modinfo section holding modinfo (modinfo_len bytes,
 * NUL-separated key=value strings) and `pad` bytes of filler before the section headers. */
static void make_elf(sub_buf *b, const char *modinfo, size_t modinfo_len, size_t pad) {
    static const char shstr[] = "\0.modinfo\0.shstrtab";
    Elf64_Ehdr h = {0};
    memcpy(h.e_ident, ELFMAG, SELFMAG);
    h.e_ident[EI_CLASS] = ELFCLASS64;
    h.e_ident[EI_DATA] = ELFDATA2LSB;
    h.e_ident[EI_VERSION] = EV_CURRENT;
    h.e_type = ET_REL;
    h.e_machine = EM_X86_64;
    h.e_version = EV_CURRENT;
    h.e_ehsize = sizeof h;
    h.e_shentsize = sizeof(Elf64_Shdr);
    h.e_shnum = 3;
    h.e_shstrndx = 2;
    size_t mi_off = sizeof h, str_off = mi_off + modinfo_len, fill_off = str_off + sizeof shstr;
    h.e_shoff = fill_off + pad;
    sub_buf_append(b, &h, sizeof h);
    sub_buf_append(b, modinfo, modinfo_len);
    sub_buf_append(b, shstr, sizeof shstr);
    for (size_t i = 0; i < pad; i++) sub_buf_putc(b, (char)(i * 131 + 7));
    Elf64_Shdr s[3] = {{0}};
    s[1] = (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_PROGBITS, .sh_offset = mi_off,
                        .sh_size = modinfo_len, .sh_addralign = 1};
    s[2] = (Elf64_Shdr){.sh_name = 10, .sh_type = SHT_STRTAB, .sh_offset = str_off,
                        .sh_size = sizeof shstr, .sh_addralign = 1};
    sub_buf_append(b, s, sizeof s);
}

static void put_ko(const char *path, const char *modinfo, size_t modinfo_len) {
    _cleanup_buf_ sub_buf b = SUB_BUF_INIT;
    make_elf(&b, modinfo, modinfo_len, 16);
    put(path, b.data, b.len);
}

/* gzip (zlib, gzip header) of data into b */
static void gzip_buf(sub_buf *b, const void *data, size_t len) {
    z_stream z = {0};
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    sub_buf_grow(b, deflateBound(&z, len) + 64);
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)b->data + b->len;
    z.avail_out = (uInt)(b->cap - b->len - 1);
    CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    b->len += z.total_out;
    deflateEnd(&z);
}

/* compress data with a libarchive write filter (raw format) into b; false if unsupported */
static bool compress_with(sub_buf *b, int (*add_filter)(struct archive *), const void *data,
                          size_t len) {
    struct archive *a = archive_write_new();
    size_t cap = len * 2 + 65536, used = 0;
    char *buf = xmalloc(cap);
    bool ok = add_filter(a) == ARCHIVE_OK && archive_write_set_format_raw(a) == ARCHIVE_OK &&
              archive_write_open_memory(a, buf, cap, &used) == ARCHIVE_OK;
    if (ok) {
        struct archive_entry *ent = archive_entry_new();
        archive_entry_set_pathname(ent, "data");
        archive_entry_set_filetype(ent, AE_IFREG);
        archive_entry_set_size(ent, (la_int64_t)len);
        ok = archive_write_header(a, ent) == ARCHIVE_OK &&
             archive_write_data(a, data, len) == (la_ssize_t)len && archive_write_close(a) == ARCHIVE_OK;
        archive_entry_free(ent);
    }
    archive_write_free(a);
    if (ok) sub_buf_append(b, buf, used);
    free(buf);
    return ok;
}

/* A bzImage-like file: two setup sectors with a boot-protocol 2.15 header naming its version
 * string and (when with_fields) the payload's offset and length, the payload (followed by its
 * 4-byte size when size_append, as the kernel's build does for every compressor but gzip), then
 * filler standing for the decompressor's code. */
static void make_bzimage(sub_buf *img, const sub_buf *payload, size_t uncompressed, bool size_append,
                         bool with_fields) {
    const size_t setup_sects = 1, pm = (setup_sects + 1) * 512, off = 300;
    sub_buf_grow(img, pm + off + payload->len + 600);
    memset(img->data, 0, pm + off);
    unsigned char *p = (unsigned char *)img->data;
    p[0x1f1] = (unsigned char)setup_sects;
    memcpy(p + 0x202, "HdrS", 4);
    p[0x206] = 0x0f, p[0x207] = 0x02;
    p[0x20e] = 0x80; /* kernel_version: the string is at 0x200 + 0x80 */
    memcpy(p + 0x280, "9.9.9-fixture (test@example) #1 SMP", 36);
    uint32_t plen = (uint32_t)payload->len + (size_append ? 4 : 0);
    if (with_fields) {
        memcpy(p + 0x248, &(uint32_t){off}, 4);
        memcpy(p + 0x24c, &plen, 4);
    }
    for (size_t i = pm; i < pm + off; i++) p[i] = (unsigned char)(i * 7); /* "decompressor code" */
    img->len = pm + off;
    sub_buf_append(img, payload->data, payload->len);
    uint32_t isize = (uint32_t)uncompressed;
    if (size_append) sub_buf_append(img, &isize, 4);
    for (int i = 0; i < 600; i++) sub_buf_putc(img, (char)(i * 13 + 1));
}

/* ---- a cpio newc reader --------------------------------------------------------------------- */

typedef struct {
    char *name;
    unsigned ino, mode, uid, gid, nlink, mtime, rmaj, rmin;
    const char *data;
    size_t len;
} cpio_ent;

static unsigned hex8(const char *p) {
    char t[9];
    memcpy(t, p, 8);
    t[8] = 0;
    return (unsigned)strtoul(t, NULL, 16);
}

/* Parse an archive; returns the entry count (the trailer excluded) or -1 when malformed. */
static int cpio_parse(const char *d, size_t len, cpio_ent *out, int max) {
    size_t pos = 0;
    int n = 0;
    while (pos + 110 <= len) {
        if (memcmp(d + pos, "070701", 6) != 0) return -1;
        const char *h = d + pos + 6;
        cpio_ent e = {.ino = hex8(h), .mode = hex8(h + 8), .uid = hex8(h + 16), .gid = hex8(h + 24),
                      .nlink = hex8(h + 32), .mtime = hex8(h + 40), .len = hex8(h + 48),
                      .rmaj = hex8(h + 72), .rmin = hex8(h + 80)};
        unsigned namesize = hex8(h + 88);
        if (pos + 110 + namesize > len || d[pos + 110 + namesize - 1]) return -1;
        const char *name = d + pos + 110;
        pos = (pos + 110 + namesize + 3) & ~(size_t)3;
        if (!strcmp(name, "TRAILER!!!")) return pos == len ? n : -1;
        if (pos + e.len > len || n >= max) return -1;
        e.name = xstrdup(name);
        e.data = d + pos;
        out[n++] = e;
        pos = (pos + e.len + 3) & ~(size_t)3;
    }
    return -1;
}

static char *slurp(const char *path, size_t *len) {
    char *s = NULL;
    sub_err e = {0};
    if (sub_read_file(path, (size_t)1 << 30, &s, len, &e) < 0) {
        unit_fail(__FILE__, __LINE__, "%s", e.msg);
        *len = 0;
        return xstrdup("");
    }
    return s;
}

/* ---- the real kernel of this machine ---------------------------------------------------------- */

/* The newest /lib/modules/<ver> with modules.dep and /boot/vmlinuz-<ver>, or NULL. */
static char *real_modules_dir(void) {
    DIR *d = opendir("/lib/modules");
    char *best = NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        _cleanup_free_ char *dep = xasprintf("/lib/modules/%s/modules.dep", de->d_name);
        _cleanup_free_ char *vz = xasprintf("/boot/vmlinuz-%s", de->d_name);
        if (!sub_path_exists(dep) || !sub_path_exists(vz)) continue;
        char *p = xasprintf("/lib/modules/%s", de->d_name);
        if (!best || strverscmp(p, best) > 0) {
            free(best);
            best = p;
        } else {
            free(p);
        }
    }
    if (d) closedir(d);
    return best;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long idx_of(char **v, const char *file) {
    for (long i = 0; v && v[i]; i++) {
        const char *b = strrchr(v[i], '/') ? strrchr(v[i], '/') + 1 : v[i];
        if (str_has_prefix(b, file) && b[strlen(file)] == '.') return i;
    }
    return -1;
}

TEST(vmimage_kernel_extracted_once_and_reused) {
    _cleanup_free_ char *mods = real_modules_dir();
    if (!mods) {
        unit_skip("no /boot/vmlinuz-<ver> with /lib/modules/<ver> (install linux-image-amd64)");
        return;
    }
    unsetenv("SUBSTRATE_VM_KERNEL");
    unsetenv("SUBSTRATE_VM_MODULES");
    const char *cache = unit_tmpdir();
    sub_err e = {0};
    sub_vm_kernel k = {0}, k2 = {0};
    double t0 = now_s();
    CHECK_OK(sub_vm_kernel_prepare(cache, &k, &e), &e);
    double t1 = now_s();
    printf("# kernel %s extracted in %.2f s\n", k.version ? k.version : "?", t1 - t0);
    CHECK_STREQ(k.modules_dir, mods);
    _cleanup_free_ char *want_vz = xasprintf("/boot/vmlinuz-%s", k.version);
    CHECK_STREQ(k.vmlinuz, want_vz);
    _cleanup_free_ char *prefix = xasprintf("%s/kernel/vmlinux-%s-", cache, k.version);
    CHECK(k.vmlinux && str_has_prefix(k.vmlinux, prefix) && strlen(k.vmlinux) == strlen(prefix) + 12);

    struct stat st1 = {0}, st2 = {0};
    CHECK(k.vmlinux && stat(k.vmlinux, &st1) == 0);
    CHECK_INT(st1.st_mode & 07777, 0644);
    CHECK(st1.st_size > 10 << 20);
    Elf64_Ehdr h = {0};
    int fd = k.vmlinux ? open(k.vmlinux, O_RDONLY | O_CLOEXEC) : -1;
    CHECK(fd >= 0 && read(fd, &h, sizeof h) == (ssize_t)sizeof h);
    if (fd >= 0) close(fd);
    CHECK(memcmp(h.e_ident, ELFMAG, SELFMAG) == 0);
    CHECK_INT(h.e_ident[EI_CLASS], ELFCLASS64);
    CHECK_INT(h.e_machine, EM_X86_64);
    CHECK_INT(h.e_type, ET_EXEC);

    CHECK_OK(sub_vm_kernel_prepare(cache, &k2, &e), &e);
    double t2 = now_s();
    printf("# reused in %.3f s\n", t2 - t1);
    CHECK_STREQ(k2.vmlinux, k.vmlinux);
    CHECK(k2.vmlinux && stat(k2.vmlinux, &st2) == 0);
    CHECK_INT(st2.st_ino, st1.st_ino);
    CHECK_INT(st2.st_mtim.tv_sec, st1.st_mtim.tv_sec);
    CHECK_INT(st2.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
    /* no temp file left beside it: the kernel and its memo only */
    _cleanup_free_ char *kdir = xasprintf("%s/kernel", cache);
    DIR *d = opendir(kdir);
    int entries = 0, memos = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        entries++;
        memos += !strncmp(de->d_name, "memo-", 5);
    }
    if (d) closedir(d);
    CHECK_INT(entries, 2);
    CHECK_INT(memos, 1);
    struct stat ds;
    CHECK(stat(kdir, &ds) == 0 && (ds.st_mode & 0755) == 0755);
    sub_vm_kernel_done(&k);
    sub_vm_kernel_done(&k2);
    CHECK(k.vmlinux == NULL);
}

TEST(vmimage_no_kernel_is_an_env_error) {
    const char *cache = unit_tmpdir();
    _cleanup_free_ char *missing = xasprintf("%s/nope/vmlinuz-1.2.3", cache);
    setenv("SUBSTRATE_VM_KERNEL", missing, 1);
    sub_err e = {0};
    sub_vm_kernel k = {0};
    CHECK_FAILS(sub_vm_kernel_prepare(cache, &k, &e), -ENOENT);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_ENV);
    CHECK(strstr(e.msg, "linux-image-amd64") && strstr(e.msg, missing));
    /* a file that holds no kernel */
    _cleanup_free_ char *junk = xasprintf("%s/vmlinuz-junk", cache);
    puts_file(junk, "this is not a kernel, just text long enough to scan through ........");
    setenv("SUBSTRATE_VM_KERNEL", junk, 1);
    e = (sub_err){0};
    CHECK_FAILS(sub_vm_kernel_prepare(cache, &k, &e), -ENOEXEC);
    CHECK(strstr(e.msg, junk) != NULL);
    unsetenv("SUBSTRATE_VM_KERNEL");
    CHECK(k.vmlinux == NULL);
}

static void check_extract(const sub_buf *img, const sub_buf *elf, const char *what) {
    sub_err e = {0};
    _cleanup_free_ char *out = NULL;
    size_t out_len = 0;
    CHECK_OK(sub_vm_bzimage_extract(img->data, img->len, what, &out, &out_len, &e), &e);
    if (out_len != elf->len || !out || memcmp(out, elf->data, elf->len) != 0)
        unit_fail(__FILE__, __LINE__, "%s: extracted %zu bytes, not the %zu of the payload", what,
                  out_len, elf->len);
}

TEST(vmimage_bzimage_fixture_extracts_exact_bytes) {
    _cleanup_buf_ sub_buf elf = SUB_BUF_INIT, gz = SUB_BUF_INIT, xz = SUB_BUF_INIT;
    static const char mi[] = "license=GPL";
    make_elf(&elf, mi, sizeof mi, 300000);
    gzip_buf(&gz, elf.data, elf.len);
    CHECK(compress_with(&xz, archive_write_add_filter_xz, elf.data, elf.len));
    for (int fields = 1; fields >= 0; fields--) {
        /* with payload_offset/length, and without: found by its magic */
        _cleanup_buf_ sub_buf ig = SUB_BUF_INIT, ix = SUB_BUF_INIT;
        make_bzimage(&ig, &gz, elf.len, false, fields);
        make_bzimage(&ix, &xz, elf.len, true, fields);
        check_extract(&ig, &elf, fields ? "gzip, header fields" : "gzip, magic scan");
        check_extract(&ix, &elf, fields ? "xz, header fields" : "xz, magic scan");
    }

    /* a payload cut short is refused, not taken for a kernel */
    _cleanup_buf_ sub_buf img = SUB_BUF_INIT;
    make_bzimage(&img, &gz, elf.len, false, true);
    sub_err e = {0};
    char *cut = NULL;
    size_t cut_len = 0;
    CHECK_FAILS(sub_vm_bzimage_extract(img.data, 1024 + 300 + gz.len / 2, "cut", &cut, &cut_len, &e),
                -ENOEXEC);
    CHECK(cut == NULL);

    /* through sub_vm_kernel_prepare: version from the header, the cache file holds the bytes */
    const char *cache = unit_tmpdir();
    _cleanup_free_ char *path = xasprintf("%s/bzImage", cache);
    put(path, img.data, img.len);
    setenv("SUBSTRATE_VM_KERNEL", path, 1);
    sub_vm_kernel k = {0};
    CHECK_OK(sub_vm_kernel_prepare(cache, &k, &e), &e);
    unsetenv("SUBSTRATE_VM_KERNEL");
    CHECK_STREQ(k.version, "9.9.9-fixture");
    CHECK_STREQ(k.vmlinuz, path);
    CHECK_STREQ(k.modules_dir, "/lib/modules/9.9.9-fixture");
    size_t vl = 0;
    _cleanup_free_ char *v = k.vmlinux ? slurp(k.vmlinux, &vl) : NULL;
    CHECK_INT(vl, elf.len);
    CHECK(v && memcmp(v, elf.data, elf.len) == 0);
    sub_vm_kernel_done(&k);

    /* the same path with another kernel in it (an upgrade): the memo of the
     * first one is not reused, the new bytes are extracted */
    _cleanup_buf_ sub_buf elf2 = SUB_BUF_INIT, gz2 = SUB_BUF_INIT, img2 = SUB_BUF_INIT;
    static const char mi2[] = "license=GPL v2";
    make_elf(&elf2, mi2, sizeof mi2, 310000);
    gzip_buf(&gz2, elf2.data, elf2.len);
    make_bzimage(&img2, &gz2, elf2.len, false, true);
    _cleanup_free_ char *tmp = xasprintf("%s.new", path);
    put(tmp, img2.data, img2.len);
    CHECK(rename(tmp, path) == 0);
    setenv("SUBSTRATE_VM_KERNEL", path, 1);
    sub_vm_kernel k2 = {0};
    CHECK_OK(sub_vm_kernel_prepare(cache, &k2, &e), &e);
    unsetenv("SUBSTRATE_VM_KERNEL");
    size_t vl2 = 0;
    _cleanup_free_ char *v2 = k2.vmlinux ? slurp(k2.vmlinux, &vl2) : NULL;
    CHECK_INT(vl2, elf2.len);
    CHECK(v2 && memcmp(v2, elf2.data, elf2.len) == 0);
    sub_vm_kernel_done(&k2);
}

/* ---- modules ---------------------------------------------------------------------------------- */

TEST(vmimage_modules_real_order) {
    _cleanup_free_ char *mods = real_modules_dir();
    if (!mods) {
        unit_skip("no /lib/modules/<ver> with its /boot/vmlinuz (install linux-image-amd64)");
        return;
    }
    sub_err e = {0};
    _cleanup_strv_ char **v = NULL;
    const char *names[] = {"virtio_console", "virtio_blk", "erofs", "overlay", NULL};
    CHECK_OK(sub_vm_modules_resolve(mods, names, &v, &e), &e);
    long ring = idx_of(v, "virtio_ring"), virtio = idx_of(v, "virtio"),
         console = idx_of(v, "virtio_console"), blk = idx_of(v, "virtio_blk"),
         crc = idx_of(v, "crc32c_generic"), lib = idx_of(v, "libcrc32c"), erofs = idx_of(v, "erofs"),
         ovl = idx_of(v, "overlay");
    CHECK(ring >= 0 && virtio > ring && console > virtio && blk > virtio);
    CHECK(crc >= 0 && lib > crc && erofs > lib);
    CHECK(ovl >= 0);
    CHECK_INT(strv_len(v), 8); /* each once, nothing else */
    for (char **p = v; p && *p; p++) CHECK((*p)[0] == '/' && sub_path_exists(*p));

    const char *all[] = {"virtio_mmio", "virtio_console", "virtio_blk", "erofs", "overlay",
                         "virtio_net", NULL};
    _cleanup_strv_ char **w = NULL;
    CHECK_OK(sub_vm_modules_resolve(mods, all, &w, &e), &e);
    printf("# order:");
    for (char **p = w; p && *p; p++) printf(" %s", strrchr(*p, '/') + 1);
    printf("\n");
    CHECK(idx_of(w, "virtio_mmio") > idx_of(w, "virtio") && idx_of(w, "virtio") > idx_of(w, "virtio_ring"));
    CHECK(idx_of(w, "virtio_net") > idx_of(w, "failover"));

    /* '-' for '_' */
    _cleanup_strv_ char **x = NULL;
    const char *dash[] = {"virtio-console", NULL};
    CHECK_OK(sub_vm_modules_resolve(mods, dash, &x, &e), &e);
    CHECK_INT(strv_len(x), 3);
    CHECK(idx_of(x, "virtio_console") == 2);

    /* unknown names are refused, naming them */
    char **u = NULL;
    const char *bad[] = {"virtio_console", "virtio_consol", NULL};
    e = (sub_err){0};
    CHECK_FAILS(sub_vm_modules_resolve(mods, bad, &u, &e), -ENOENT);
    CHECK(u == NULL);
    CHECK(strstr(e.msg, "\"virtio_consol\"") && strstr(e.msg, "did you mean virtio_console"));
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
}

/* A modules dir with modules.dep, modules.builtin, modules.alias and tiny module files:
 *   top.ko needs mid-dep.ko and base.ko; mid-dep.ko needs base.ko; user.ko needs base.ko and
 *   soft-depends on "soft" (an alias: soft_generic.ko or soft_fast.ko); inkernel is built in. */
static char *fixture_modules(bool softdep_file) {
    _cleanup_free_ char *dir = xasprintf("%s/mods-%d", unit_tmpdir(), softdep_file);
    _cleanup_free_ char *dep = xasprintf("%s/modules.dep", dir);
    puts_file(dep, "kernel/a/top.ko: kernel/b/mid-dep.ko kernel/c/base.ko\n"
                   "kernel/b/mid-dep.ko: kernel/c/base.ko\n"
                   "kernel/c/base.ko:\n"
                   "kernel/d/soft_fast.ko:\n"
                   "kernel/d/soft_generic.ko.xz:\n"
                   "kernel/e/user.ko: kernel/c/base.ko\n");
    _cleanup_free_ char *bi = xasprintf("%s/modules.builtin", dir);
    puts_file(bi, "kernel/x/inkernel.ko\n");
    _cleanup_free_ char *al = xasprintf("%s/modules.alias", dir);
    puts_file(al, "alias soft soft_fast\nalias soft soft_generic\nalias crypto-soft soft_fast\n"
                  "alias crypto-soft soft_generic\n");
    if (softdep_file) {
        _cleanup_free_ char *sd = xasprintf("%s/modules.softdep", dir);
        puts_file(sd, "# Soft dependencies extracted from modules themselves.\n"
                      "softdep user pre: soft post: top\nsoftdep ghost pre: base\n");
    }
    static const char plain[] = "license=GPL";
    static const char user_mi[] = "license=GPL\0softdep=pre: crypto-soft post: top";
    const char *files[] = {"a/top.ko", "b/mid-dep.ko", "c/base.ko", "d/soft_fast.ko"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = xasprintf("%s/kernel/%s", dir, files[i]);
        put_ko(p, plain, sizeof plain);
    }
    _cleanup_free_ char *user = xasprintf("%s/kernel/e/user.ko", dir);
    put_ko(user, user_mi, sizeof user_mi);
    /* soft_generic compressed with xz */
    _cleanup_buf_ sub_buf ko = SUB_BUF_INIT, xz = SUB_BUF_INIT;
    make_elf(&ko, plain, sizeof plain, 5000);
    CHECK(compress_with(&xz, archive_write_add_filter_xz, ko.data, ko.len));
    _cleanup_free_ char *sg = xasprintf("%s/kernel/d/soft_generic.ko.xz", dir);
    put(sg, xz.data, xz.len);
    return TAKE_PTR(dir);
}

static void check_fixture_order(const char *dir) {
    sub_err e = {0};
    _cleanup_strv_ char **v = NULL;
    const char *names[] = {"user", "top", "mid_dep", "inkernel", NULL};
    CHECK_OK(sub_vm_modules_resolve(dir, names, &v, &e), &e);
    /* user: soft (generic) first, then base, then user; top: mid-dep (after base), then top */
    const char *want[] = {"kernel/d/soft_generic.ko.xz", "kernel/c/base.ko", "kernel/e/user.ko",
                          "kernel/b/mid-dep.ko", "kernel/a/top.ko"};
    CHECK_INT(strv_len(v), ARRAY_SIZE(want));
    for (size_t i = 0; i < ARRAY_SIZE(want) && i < strv_len(v); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, want[i]);
        CHECK_STREQ(v[i], p);
    }
}

TEST(vmimage_modules_fixture_softdep_file) {
    _cleanup_free_ char *dir = fixture_modules(true);
    check_fixture_order(dir);
    sub_err e = {0};
    char **v = NULL;
    const char *bad[] = {"top", "no-such_mod", NULL};
    CHECK_FAILS(sub_vm_modules_resolve(dir, bad, &v, &e), -ENOENT);
    CHECK(strstr(e.msg, "no-such_mod") != NULL);
    CHECK(v == NULL);
    /* only built-ins: an empty list */
    const char *bi[] = {"inkernel", NULL};
    CHECK_OK(sub_vm_modules_resolve(dir, bi, &v, &e), &e);
    CHECK(v && v[0] == NULL);
    strv_free(v);
    /* no modules.dep */
    e = (sub_err){0};
    v = NULL;
    CHECK_FAILS(sub_vm_modules_resolve(unit_tmpdir(), bi, &v, &e), -ENOENT);
    CHECK(strstr(e.msg, "modules.dep") != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_ENV);
}

TEST(vmimage_modules_fixture_modinfo_softdep) {
    /* no modules.softdep: user.ko's own .modinfo says "softdep=pre: crypto-soft", and the
     * crypto- alias resolves to the generic implementation too */
    _cleanup_free_ char *dir = fixture_modules(false);
    check_fixture_order(dir);
}

TEST(vmimage_module_read_decompresses) {
    _cleanup_buf_ sub_buf ko = SUB_BUF_INIT;
    static const char mi[] = "license=GPL";
    make_elf(&ko, mi, sizeof mi, 9000);
    struct {
        const char *ext;
        int (*f)(struct archive *);
    } fs[] = {{"xz", archive_write_add_filter_xz}, {"zst", archive_write_add_filter_zstd},
              {"gz", archive_write_add_filter_gzip}};
    for (size_t i = 0; i < ARRAY_SIZE(fs); i++) {
        _cleanup_buf_ sub_buf c = SUB_BUF_INIT;
        if (!compress_with(&c, fs[i].f, ko.data, ko.len)) {
            unit_skip_part(fs[i].ext, "libarchive here cannot write it");
            continue;
        }
        _cleanup_free_ char *p = xasprintf("%s/m.ko.%s", unit_tmpdir(), fs[i].ext);
        put(p, c.data, c.len);
        sub_err e = {0};
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        CHECK_OK(sub_vm_module_read(p, &out, &len, &e), &e);
        CHECK_INT(len, ko.len);
        CHECK(out && memcmp(out, ko.data, ko.len) == 0);
    }
    /* a .ko.xz that is not compressed is refused */
    _cleanup_free_ char *p = xasprintf("%s/plain.ko.xz", unit_tmpdir());
    put(p, ko.data, ko.len);
    sub_err e = {0};
    char *out = NULL;
    size_t len = 0;
    CHECK(sub_vm_module_read(p, &out, &len, &e) < 0);
    CHECK(out == NULL);
}

/* ---- the initramfs ---------------------------------------------------------------------------- */

TEST(vmimage_initramfs_deterministic_and_complete) {
    _cleanup_free_ char *dir = fixture_modules(true);
    const char *cache = unit_tmpdir();
    _cleanup_free_ char *agent = xasprintf("%s/agent", cache);
    puts_file(agent, "\x7f" "ELF pretend agent\n");
    sub_vm_kernel k = {.modules_dir = dir};
    const char *names[] = {"top", "user", NULL};
    sub_err e = {0};
    _cleanup_free_ char *p1 = NULL, *p2 = NULL;
    CHECK_OK(sub_vm_initramfs_prepare(cache, &k, agent, names, &p1, &e), &e);
    struct stat st1 = {0}, st2 = {0};
    CHECK(p1 && stat(p1, &st1) == 0);
    CHECK_OK(sub_vm_initramfs_prepare(cache, &k, agent, names, &p2, &e), &e);
    CHECK_STREQ(p1, p2);
    CHECK(p2 && stat(p2, &st2) == 0);
    CHECK_INT(st1.st_ino, st2.st_ino); /* reused, not rewritten */
    CHECK_INT(st1.st_mode & 07777, 0644);
    _cleanup_free_ char *prefix = xasprintf("%s/initramfs/initramfs-", cache);
    CHECK(p1 && str_has_prefix(p1, prefix) && strlen(p1) == strlen(prefix) + 16 + 5 &&
          str_has_suffix(p1, ".cpio"));

    /* same bytes from a fresh build; the name is the bytes' digest */
    size_t len = 0, len2 = 0;
    _cleanup_free_ char *data = p1 ? slurp(p1, &len) : NULL;
    _cleanup_free_ char *again = NULL;
    CHECK_OK(sub_vm_initramfs_build(&k, agent, names, &again, &len2, &e), &e);
    CHECK(len == len2 && data && again && memcmp(data, again, len) == 0);
    char digest[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(again, len2, digest, &e), &e);
    CHECK(p1 && !strncmp(strrchr(p1, '-') + 1, sub_digest_hex(digest), 16));

    cpio_ent ents[64];
    int n = data ? cpio_parse(data, len, ents, 64) : -1;
    static const struct {
        const char *name;
        unsigned mode, rmaj, rmin;
    } want[] = {
        {"dev", 040755, 0, 0},
        {"dev/console", 020600, 5, 1},
        {"dev/null", 020666, 1, 3},
        {"init", 0100755, 0, 0},
        {"lib", 040755, 0, 0},
        {"lib/modules", 040755, 0, 0},
        {"lib/modules/base.ko", 0100644, 0, 0},
        {"lib/modules/mid-dep.ko", 0100644, 0, 0},
        {"lib/modules/soft_generic.ko", 0100644, 0, 0},
        {"lib/modules/top.ko", 0100644, 0, 0},
        {"lib/modules/user.ko", 0100644, 0, 0},
        {"mnt", 040755, 0, 0},
        {"modules.order", 0100644, 0, 0},
        {"newroot", 040755, 0, 0},
        {"proc", 040755, 0, 0},
        {"run", 040755, 0, 0},
        {"sys", 040755, 0, 0},
        {"tmp", 041777, 0, 0},
    };
    CHECK_INT(n, ARRAY_SIZE(want));
    for (int i = 0; i < n && i < (int)ARRAY_SIZE(want); i++) {
        CHECK_STREQ(ents[i].name, want[i].name);
        CHECK_INT(ents[i].mode, want[i].mode);
        CHECK_INT(ents[i].rmaj, want[i].rmaj);
        CHECK_INT(ents[i].rmin, want[i].rmin);
        CHECK_INT(ents[i].ino, i + 1);
        CHECK_INT(ents[i].uid, 0);
        CHECK_INT(ents[i].gid, 0);
        CHECK_INT(ents[i].mtime, 0);
        CHECK_INT(ents[i].nlink, (want[i].mode & 040000) ? 2 : 1);
        if (!strcmp(want[i].name, "init")) {
            CHECK_INT(ents[i].len, strlen("\x7f" "ELF pretend agent\n"));
            CHECK(!memcmp(ents[i].data, "\x7f" "ELF pretend agent\n", ents[i].len));
        }
        if (!strcmp(want[i].name, "modules.order")) {
            const char *o = "base.ko\nmid-dep.ko\ntop.ko\nsoft_generic.ko\nuser.ko\n";
            CHECK_INT(ents[i].len, strlen(o));
            CHECK(!memcmp(ents[i].data, o, ents[i].len));
        }
        if (!strcmp(want[i].name, "lib/modules/soft_generic.ko")) /* decompressed */
            CHECK(ents[i].len > 5000 && !memcmp(ents[i].data, ELFMAG, SELFMAG));
    }
    for (int i = 0; i < n; i++) free(ents[i].name);

    /* cross-check with GNU cpio when it is installed */
    if (access("/usr/bin/cpio", X_OK) != 0) {
        unit_skip_part("cpio -it lists the entries", "cpio is not installed");
    } else if (p1) {
        _cleanup_free_ char *cmd = xasprintf("cpio -it --quiet < '%s' 2>&1", p1);
        FILE *f = popen(cmd, "r");
        char line[256];
        size_t i = 0;
        while (f && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            if (i < ARRAY_SIZE(want)) CHECK_STREQ(line, want[i].name);
            i++;
        }
        CHECK(f && pclose(f) == 0);
        CHECK_INT(i, ARRAY_SIZE(want));
    }

    /* another agent: another archive, another name */
    puts_file(agent, "\x7f" "ELF another agent\n");
    _cleanup_free_ char *p3 = NULL;
    CHECK_OK(sub_vm_initramfs_prepare(cache, &k, agent, names, &p3, &e), &e);
    CHECK(p3 && p1 && strcmp(p3, p1) != 0 && sub_path_exists(p3) && sub_path_exists(p1));

    /* module paths given directly, in the order given; names and paths mixed: refused */
    _cleanup_free_ char *base = xasprintf("%s/kernel/c/base.ko", dir);
    const char *paths[] = {base, NULL};
    _cleanup_free_ char *one = NULL;
    size_t one_len = 0;
    CHECK_OK(sub_vm_initramfs_build(NULL, agent, paths, &one, &one_len, &e), &e);
    CHECK(one && memmem(one, one_len, "lib/modules/base.ko", 20) != NULL);
    const char *mixed[] = {base, "top", NULL};
    char *none = NULL;
    CHECK_FAILS(sub_vm_initramfs_build(&k, agent, mixed, &none, &one_len, &e), -EINVAL);
    CHECK(none == NULL);
    /* a missing agent is an error naming it */
    _cleanup_free_ char *ghost = xasprintf("%s/ghost-agent", cache);
    _cleanup_free_ char *p4 = NULL;
    e = (sub_err){0};
    CHECK_FAILS(sub_vm_initramfs_prepare(cache, &k, ghost, names, &p4, &e), -ENOENT);
    CHECK(strstr(e.msg, ghost) != NULL);
}

TEST(vmimage_initramfs_real_modules) {
    _cleanup_free_ char *mods = real_modules_dir();
    if (!mods) {
        unit_skip("no /lib/modules/<ver> with its /boot/vmlinuz (install linux-image-amd64)");
        return;
    }
    const char *cache = unit_tmpdir();
    _cleanup_free_ char *agent = xasprintf("%s/agent", cache);
    puts_file(agent, "#!/bin/sh\n");
    sub_vm_kernel k = {.modules_dir = mods};
    const char *names[] = {"virtio_mmio", "virtio_console", "virtio_blk", "erofs", "overlay", NULL};
    sub_err e = {0};
    _cleanup_free_ char *path = NULL;
    CHECK_OK(sub_vm_initramfs_prepare(cache, &k, agent, names, &path, &e), &e);
    size_t len = 0;
    _cleanup_free_ char *data = path ? slurp(path, &len) : NULL;
    printf("# initramfs %zu bytes\n", len);
    cpio_ent ents[64];
    int n = data ? cpio_parse(data, len, ents, 64) : -1;
    CHECK(n > 0);
    const char *order = NULL;
    size_t olen = 0;
    int nko = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(ents[i].name, "modules.order")) order = ents[i].data, olen = ents[i].len;
        if (str_has_prefix(ents[i].name, "lib/modules/") && str_has_suffix(ents[i].name, ".ko")) {
            nko++;
            CHECK(ents[i].len > 0 && !memcmp(ents[i].data, ELFMAG, SELFMAG));
        }
        free(ents[i].name);
    }
    _cleanup_free_ char *o = order ? xstrndup(order, olen) : NULL;
    CHECK_STREQ(o, "virtio_ring.ko\nvirtio.ko\nvirtio_mmio.ko\nvirtio_console.ko\nvirtio_blk.ko\n"
                   "crc32c_generic.ko\nlibcrc32c.ko\nerofs.ko\noverlay.ko\n");
    CHECK_INT(nko, 9);
}

/* ---- the TSC ---------------------------------------------------------------------------------- */

TEST(vmimage_tsc_khz_measured_cached_overridden) {
    const char *cache = unit_tmpdir();
    unsetenv("SUBSTRATE_TSC_KHZ");
    sub_err e = {0};
    unsigned long khz = 0, again = 0;
    double t0 = now_s();
    CHECK_OK(sub_vm_tsc_khz(cache, &khz, &e), &e);
    double t1 = now_s();
    printf("# TSC %lu kHz, measured in %.3f s\n", khz, t1 - t0);
    CHECK(khz >= SUB_TSC_KHZ_MIN && khz <= SUB_TSC_KHZ_MAX);
    CHECK(t1 - t0 >= 0.1);
    _cleanup_free_ char *path = xasprintf("%s/tsc_khz", cache);
    size_t len = 0;
    _cleanup_free_ char *s = slurp(path, &len);
    CHECK_INT(strtoul(s, NULL, 10), khz);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
    /* a second call reads the cache: a planted value comes back */
    puts_file(path, "2345678\n");
    CHECK_OK(sub_vm_tsc_khz(cache, &again, &e), &e);
    CHECK_INT(again, 2345678);
    /* a cached value outside the range is measured again */
    puts_file(path, "42\n");
    CHECK_OK(sub_vm_tsc_khz(cache, &again, &e), &e);
    CHECK(again >= SUB_TSC_KHZ_MIN && again <= SUB_TSC_KHZ_MAX);
    /* two measurements agree within 1% */
    CHECK(again > khz - khz / 100 && again < khz + khz / 100);
    /* $SUBSTRATE_TSC_KHZ wins; out of range refused */
    setenv("SUBSTRATE_TSC_KHZ", "1234567", 1);
    CHECK_OK(sub_vm_tsc_khz(cache, &again, &e), &e);
    CHECK_INT(again, 1234567);
    setenv("SUBSTRATE_TSC_KHZ", "99", 1);
    e = (sub_err){0};
    CHECK_FAILS(sub_vm_tsc_khz(cache, &again, &e), -EINVAL);
    CHECK(strstr(e.msg, "SUBSTRATE_TSC_KHZ") != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    unsetenv("SUBSTRATE_TSC_KHZ");
}
