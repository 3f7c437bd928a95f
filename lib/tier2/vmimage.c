/* The host-side pieces of a bootable microVM: the kernel extracted from its bzImage and cached,
 * the host TSC rate, the module closure in load order and a deterministic cpio initramfs
 * (vmimage.h has the contracts). */
#include "substrate/vmimage.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_RDTSC 1
#else
#define HAVE_RDTSC 0
#endif

#define KERNEL_FILE_MAX ((size_t)256 << 20) /* a vmlinuz; Debian's is 8 MB */
#define VMLINUX_MAX ((size_t)1 << 30)       /* its payload; Debian's is 65 MB */
#define MODULE_MAX ((size_t)128 << 20)
#define AGENT_MAX ((size_t)256 << 20)
#define INDEX_MAX ((size_t)64 << 20) /* modules.dep, modules.alias, ... */

void sub_vm_kernel_done(sub_vm_kernel *k) {
    if (!k) return;
    free(k->version);
    free(k->vmlinuz);
    free(k->vmlinux);
    free(k->modules_dir);
    *k = (sub_vm_kernel){0};
}

/* ---- small helpers -------------------------------------------------------------------------- */

/* mkdir -p, then make sure an unprivileged uid (qemu's) can traverse it: add 0755 when bits are
 * missing (never take any away). */
static int ensure_dir(const char *path, sub_err *e) {
    int r = sub_mkdir_p(path, 0755, e);
    if (r < 0) return r;
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 0755) != 0755) (void)chmod(path, (st.st_mode & 07777) | 0755);
    return 0;
}

static bool file_starts_with(const char *path, const void *magic, size_t n) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return false;
    char buf[16];
    if (n > sizeof buf) return false;
    return pread(fd, buf, n, 0) == (ssize_t)n && memcmp(buf, magic, n) == 0;
}

/* Decompress data with libarchive (raw format, every filter) into *out. Fails unless a filter
 * recognised the data (a plain file is not "decompressed"). An error after some output is
 * reported in *late_err (when non-NULL) instead of failing: the caller decides whether the output
 * is complete (a bzImage payload may be followed by bytes the decoder refuses). */
static int decompress_mem(const void *data, size_t len, size_t max, const char *what, sub_buf *out,
                          bool *late_err, sub_err *e) {
    struct archive *a = archive_read_new();
    if (!a) return sub_err_set(e, -ENOMEM, "libarchive: out of memory");
    archive_read_support_filter_all(a);
    archive_read_support_format_raw(a);
    int r = 0;
    struct archive_entry *ent;
    if (archive_read_open_memory(a, data, len) != ARCHIVE_OK ||
        archive_read_next_header(a, &ent) != ARCHIVE_OK) {
        r = sub_err_setk(e, SUB_KIND_INPUT, -ENOEXEC, "%s: not compressed data libarchive knows: %s",
                         what, archive_error_string(a) ? archive_error_string(a) : "unknown format");
        goto out;
    }
    if (archive_filter_code(a, 0) == ARCHIVE_FILTER_NONE) {
        r = sub_err_setk(e, SUB_KIND_INPUT, -ENOEXEC, "%s: not compressed (no xz, gzip or zstd stream)",
                         what);
        goto out;
    }
    if (late_err) *late_err = false;
    for (;;) {
        sub_buf_grow(out, (size_t)4 << 20);
        la_ssize_t n = archive_read_data(a, out->data + out->len, out->cap - out->len - 1);
        if (n == 0) break;
        if (n < 0) {
            if (late_err && out->len > 0) {
                *late_err = true;
                break;
            }
            r = sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG, "%s: cannot decompress: %s", what,
                             archive_error_string(a) ? archive_error_string(a) : "corrupt data");
            goto out;
        }
        out->len += (size_t)n;
        out->data[out->len] = 0;
        if (out->len > max) {
            r = sub_err_setk(e, SUB_KIND_INPUT, -EFBIG, "%s: decompresses to more than %zu bytes",
                             what, max);
            goto out;
        }
    }
out:
    archive_read_free(a);
    return r;
}

/* A complete ELF64 file: magic, class, and its program and section header tables inside it. */
static bool elf64_complete(const char *p, size_t len) {
    if (len < sizeof(Elf64_Ehdr) || memcmp(p, ELFMAG, SELFMAG) != 0 || p[EI_CLASS] != ELFCLASS64)
        return false;
    Elf64_Ehdr h;
    memcpy(&h, p, sizeof h);
    if (h.e_phnum && (h.e_phoff > len || (uint64_t)h.e_phnum * h.e_phentsize > len - h.e_phoff))
        return false;
    if (h.e_shnum && (h.e_shoff > len || (uint64_t)h.e_shnum * h.e_shentsize > len - h.e_shoff))
        return false;
    return true;
}

/* ---- the kernel ----------------------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* The setup header, when there is one ("HdrS" at 0x202): the protected-mode code's offset. */
static bool bz_setup(const unsigned char *p, size_t len, size_t *pm_start) {
    if (len < 0x250 || memcmp(p + 0x202, "HdrS", 4) != 0) return false;
    unsigned sects = p[0x1f1] ? p[0x1f1] : 4; /* 0 means 4, per the boot protocol */
    *pm_start = ((size_t)sects + 1) * 512;
    return *pm_start < len;
}

/* The length of the xz stream at p: up to the first stream footer ("YZ" at a multiple of 4
 * bytes, its flags equal to the header's, its CRC32 right), or 0. libarchive fails on bytes after
 * an xz stream (a bzImage has the payload's 4-byte size, then the decompressor's code) and drops
 * the last output block when it does, so the stream must be cut exactly. */
static size_t xz_stream_len(const unsigned char *p, size_t len) {
    if (len < 24 || memcmp(p, "\xfd" "7zXZ\0", 6) != 0) return 0;
    for (size_t end = 24; end <= len; end += 4) {
        const unsigned char *f = p + end - 12; /* CRC32, backward size, flags, "YZ" */
        if (f[10] == 'Y' && f[11] == 'Z' && f[8] == p[6] && f[9] == p[7] &&
            crc32(0, f + 4, 6) == le32(f))
            return end;
    }
    return 0;
}

static int try_payload(const unsigned char *p, size_t len, const char *what, char **out,
                       size_t *out_len, sub_err *e) {
    _cleanup_buf_ sub_buf b = SUB_BUF_INIT;
    size_t xl = xz_stream_len(p, len);
    if (xl) len = xl;
    bool late = false;
    int r = decompress_mem(p, len, VMLINUX_MAX, what, &b, &late, e);
    if (r < 0) return r;
    if (!elf64_complete(b.data, b.len))
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOEXEC,
                            late ? "%s: the payload is cut short (decompression failed before the "
                                   "end of the kernel ELF file)"
                                 : "%s: the payload is not a complete ELF64 kernel",
                            what);
    *out = sub_buf_detach(&b, out_len);
    return 0;
}

int sub_vm_bzimage_extract(const void *data, size_t len, const char *what, char **out,
                           size_t *out_len, sub_err *e) {
    const unsigned char *p = data;
    size_t pm = 0x200;
    if (bz_setup(p, len, &pm) && le16(p + 0x206) >= 0x0208) {
        size_t off = le32(p + 0x248), plen = le32(p + 0x24c);
        /* the payload ends with its uncompressed size (4 bytes, the kernel build's
         * size_append), which some decoders refuse as trailing garbage: without it first */
        if (plen > 4 && off < len - pm && plen <= len - pm - off) {
            sub_err pe = {0};
            if (try_payload(p + pm + off, plen - 4, what, out, out_len, &pe) == 0) return 0;
            if (try_payload(p + pm + off, plen, what, out, out_len, &pe) == 0) return 0;
        }
    }
    /* No usable header: the first compressed stream after the setup code that decompresses to
     * a complete ELF file. */
    static const struct {
        const char *m;
        size_t n;
    } magics[] = {
        {"\xfd" "7zXZ\0", 6},     /* xz (Debian) */
        {"\x1f\x8b\x08", 3},      /* gzip */
        {"\x28\xb5\x2f\xfd", 4},  /* zstd */
        {"BZh", 3},               /* bzip2 */
        {"\x02\x21\x4c\x18", 4},  /* lz4 legacy */
        {"\x5d\x00\x00", 3},      /* lzma */
    };
    size_t pos = pm < len ? pm : 0;
    for (int tries = 0; tries < 64 && pos < len; tries++) {
        const unsigned char *best = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(magics); i++) {
            const unsigned char *q = memmem(p + pos, len - pos, magics[i].m, magics[i].n);
            if (q && (!best || q < best)) best = q;
        }
        if (!best) break;
        sub_err pe = {0};
        if (try_payload(best, len - (size_t)(best - p), what, out, out_len, &pe) == 0) return 0;
        pos = (size_t)(best - p) + 1;
    }
    return sub_err_setk(e, SUB_KIND_INPUT, -ENOEXEC,
                        "%s: no compressed kernel found in it (not a bzImage with an xz, gzip or "
                        "zstd payload; set SUBSTRATE_VM_KERNEL to a vmlinuz file)",
                        what);
}

static bool valid_version(const char *v) {
    if (!*v || strlen(v) > 128 || v[0] == '.') return false;
    for (const char *c = v; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr("._+-~", *c)))
            return false;
    return true;
}

/* The first word of the setup header's kernel_version string, or NULL. */
static char *bz_version(const unsigned char *p, size_t len) {
    size_t pm;
    if (!bz_setup(p, len, &pm) || le16(p + 0x206) < 0x0200) return NULL;
    size_t off = le16(p + 0x20e);
    if (!off || off + 0x200 >= len) return NULL;
    const char *s = (const char *)p + off + 0x200;
    size_t n = 0, lim = len - off - 0x200;
    while (n < lim && n < 128 && s[n] && s[n] != ' ') n++;
    char *v = xstrndup(s, n);
    if (valid_version(v)) return v;
    free(v);
    return NULL;
}

static int verscmp_desc(const void *a, const void *b) {
    return strverscmp(*(char *const *)b, *(char *const *)a);
}

/* The newest /boot/vmlinuz-<ver> with /lib/modules/<ver>/modules.dep. */
static int find_boot_kernel(char **vmlinuz, char **version, sub_err *e) {
    _cleanup_strv_ char **vers = NULL;
    DIR *d = opendir("/boot");
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (str_has_prefix(de->d_name, "vmlinuz-") && valid_version(de->d_name + 8))
                strv_push(&vers, de->d_name + 8);
        closedir(d);
    }
    size_t n = strv_len(vers);
    if (n) qsort(vers, n, sizeof *vers, verscmp_desc);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *dep = xasprintf("/lib/modules/%s/modules.dep", vers[i]);
        if (!sub_path_exists(dep)) continue;
        *vmlinuz = xasprintf("/boot/vmlinuz-%s", vers[i]);
        *version = xstrdup(vers[i]);
        return 0;
    }
    return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                        "no kernel for the microVM: no /boot/vmlinuz-<version> with "
                        "/lib/modules/<version>/modules.dep%s; install linux-image-amd64 "
                        "(scripts/install-deps does) or set SUBSTRATE_VM_KERNEL to a vmlinuz",
                        n ? " (the modules of every /boot/vmlinuz-* are missing)" : "");
}

/* ---- memo: a derived file keyed by the identity of its inputs ------------------------------ */

/* Deriving the kernel (8 MB hashed, 65 MB decompressed) or the initramfs
 * (modules resolved, read and archived) on every run costs tens of ms. The
 * result is recorded in <dir>/memo-<key>, where key hashes each input's
 * path, device, inode, size and mtime (ns) plus `extra`: a package upgrade
 * rewrites its files and so changes the key. A hit needs the recorded file
 * to exist; anything odd is a miss, and the slow path runs as before. */
static char *memo_key(const char *const *inputs, const char *extra) {
    sub_buf b = {0};
    for (const char *const *p = inputs; p && *p; p++) {
        struct stat st;
        if (stat(*p, &st) < 0) {
            sub_buf_free(&b);
            return NULL;
        }
        sub_buf_printf(&b, "%s %llu %llu %lld %lld.%09ld\n", *p, (unsigned long long)st.st_dev,
                       (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                       st.st_mtim.tv_nsec);
    }
    sub_buf_printf(&b, "%s", extra ? extra : "");
    char d[SUB_DIGEST_MAX];
    int r = sub_sha256_buf(b.data ? b.data : "", b.len, d, NULL);
    sub_buf_free(&b);
    return r < 0 ? NULL : xasprintf("%.24s", sub_digest_hex(d));
}

/* The recorded lines (caller frees), or NULL on a miss. */
static char *memo_get(const char *dir, const char *key) {
    if (!key) return NULL;
    _cleanup_free_ char *p = xasprintf("%s/memo-%s", dir, key);
    char *txt = NULL;
    size_t n = 0;
    if (sub_read_file(p, 8192, &txt, &n, NULL) < 0) return NULL;
    return txt;
}

static void memo_put(const char *dir, const char *key, const char *txt) {
    if (!key) return;
    _cleanup_free_ char *p = xasprintf("%s/memo-%s", dir, key);
    (void)sub_write_file_atomic(p, txt, strlen(txt), 0644, NULL);
}

int sub_vm_kernel_prepare(const char *cache_dir, sub_vm_kernel *out, sub_err *e) {
    _cleanup_free_ char *vmlinuz = NULL, *version = NULL;
    const char *env = getenv("SUBSTRATE_VM_KERNEL");
    int r;
    if (env && *env) {
        if (!sub_path_exists(env))
            return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                                "SUBSTRATE_VM_KERNEL=%s does not exist; point it at a vmlinuz "
                                "(bzImage), or unset it to use /boot (install linux-image-amd64: "
                                "scripts/install-deps does)",
                                env);
        vmlinuz = xstrdup(env);
    } else if ((r = find_boot_kernel(&vmlinuz, &version, e)) < 0) {
        return r;
    }

    _cleanup_free_ char *dir = sub_path_join(cache_dir, "kernel");
    const char *mods = getenv("SUBSTRATE_VM_MODULES");
    {
        const char *in[] = {vmlinuz, NULL};
        _cleanup_free_ char *key = memo_key(in, version);
        _cleanup_free_ char *hit = memo_get(dir, key);
        char *nl = hit ? strchr(hit, '\n') : NULL;
        if (nl && nl[1]) {
            *nl = 0;
            char *ver = nl + 1;
            ver[strcspn(ver, "\n")] = 0;
            if (*ver && file_starts_with(hit, ELFMAG, SELFMAG)) {
                *out = (sub_vm_kernel){.version = xstrdup(ver), .vmlinuz = TAKE_PTR(vmlinuz), .vmlinux = xstrdup(hit),
                                       .modules_dir = mods && *mods ? xstrdup(mods) : xasprintf("/lib/modules/%s", ver)};
                return 0;
            }
        }
    }
    _cleanup_free_ char *memo_version = version ? xstrdup(version) : NULL;

    _cleanup_free_ char *img = NULL;
    size_t img_len = 0;
    if ((r = sub_read_file(vmlinuz, KERNEL_FILE_MAX, &img, &img_len, e)) < 0) return r;
    if (!version) {
        version = bz_version((const unsigned char *)img, img_len);
        const char *base = strrchr(vmlinuz, '/') ? strrchr(vmlinuz, '/') + 1 : vmlinuz;
        if (!version && str_has_prefix(base, "vmlinuz-") && valid_version(base + 8))
            version = xstrdup(base + 8);
        if (!version)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "cannot tell the kernel version of %s (no version string in its "
                                "header); name it vmlinuz-<version>",
                                vmlinuz);
    }
    char digest[SUB_DIGEST_MAX];
    if ((r = sub_sha256_buf(img, img_len, digest, e)) < 0) return r;

    if ((r = ensure_dir(cache_dir, e)) < 0 || (r = ensure_dir(dir, e)) < 0) return r;
    sub_residue_sweep(dir, SUB_FS_TMP, NULL); /* temp files of killed extractions */
    _cleanup_free_ char *vmlinux =
        xasprintf("%s/vmlinux-%s-%.12s", dir, version, sub_digest_hex(digest));
    if (!file_starts_with(vmlinux, ELFMAG, SELFMAG)) {
        _cleanup_free_ char *elf = NULL;
        size_t elf_len = 0;
        if ((r = sub_vm_bzimage_extract(img, img_len, vmlinuz, &elf, &elf_len, e)) < 0) return r;
        free(TAKE_PTR(img)); /* 8 MB less while we write 65 */
        if ((r = sub_write_file_atomic(vmlinux, elf, elf_len, 0644, e)) < 0) return r;
    }

    {
        const char *in[] = {vmlinuz, NULL};
        _cleanup_free_ char *key = memo_key(in, memo_version);
        _cleanup_free_ char *rec = xasprintf("%s\n%s\n", vmlinux, version);
        memo_put(dir, key, rec);
    }
    *out = (sub_vm_kernel){
        .version = TAKE_PTR(version),
        .vmlinuz = TAKE_PTR(vmlinuz),
        .vmlinux = TAKE_PTR(vmlinux),
        .modules_dir = mods && *mods ? xstrdup(mods) : NULL,
    };
    if (!out->modules_dir) out->modules_dir = xasprintf("/lib/modules/%s", out->version);
    return 0;
}

/* ---- the TSC -------------------------------------------------------------------------------- */

static int parse_khz(const char *s, unsigned long *khz) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    while (*end == '\n' || *end == ' ') end++;
    if (errno || end == s || *end || v < SUB_TSC_KHZ_MIN || v > SUB_TSC_KHZ_MAX) return -EINVAL;
    *khz = v;
    return 0;
}

#if HAVE_RDTSC
static uint64_t ns_of(const struct timespec *t) {
    return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

/* One (time, tsc) pair: the rdtsc bracketed by two clock reads, the tightest of a few tries,
 * paired with the middle of its bracket. */
static void tsc_sample(uint64_t *ns, uint64_t *tsc) {
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC_RAW, &a);
        uint64_t t = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC_RAW, &b);
        uint64_t na = ns_of(&a), nb = ns_of(&b);
        if (nb - na < best) {
            best = nb - na;
            *ns = na + (nb - na) / 2;
            *tsc = t;
        }
    }
}

static int cmp_ul(const void *a, const void *b) {
    unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
    return x < y ? -1 : x > y;
}

/* 7 windows of 20 ms (~140 ms), the median rate. */
static unsigned long tsc_measure(void) {
    unsigned long v[7];
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        uint64_t n0, t0, n1, t1;
        tsc_sample(&n0, &t0);
        struct timespec d = {0, 20 * 1000 * 1000};
        while (nanosleep(&d, &d) < 0 && errno == EINTR) {}
        tsc_sample(&n1, &t1);
        uint64_t dn = n1 - n0, dt = t1 - t0;
        /* kHz = cycles per ms = dt * 1e6 / dn (dt < 2^36 for 20 ms, no overflow) */
        v[i] = dn ? (unsigned long)((dt * 1000000u + dn / 2) / dn) : 0;
    }
    qsort(v, ARRAY_SIZE(v), sizeof v[0], cmp_ul);
    return v[ARRAY_SIZE(v) / 2];
}
#endif

int sub_vm_tsc_khz(const char *cache_dir, unsigned long *khz, sub_err *e) {
    const char *env = getenv("SUBSTRATE_TSC_KHZ");
    if (env && *env) {
        if (parse_khz(env, khz) < 0)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "SUBSTRATE_TSC_KHZ=%.32s is not a TSC rate in kHz between %lu and "
                                "%lu; fix it or unset it to measure the host's",
                                env, SUB_TSC_KHZ_MIN, SUB_TSC_KHZ_MAX);
        return 0;
    }
    _cleanup_free_ char *path = sub_path_join(cache_dir, "tsc_khz");
    _cleanup_free_ char *cached = NULL;
    size_t n;
    if (sub_read_file(path, 64, &cached, &n, NULL) == 0 && parse_khz(cached, khz) == 0) return 0;
#if HAVE_RDTSC
    unsigned long v = tsc_measure();
    if (v < SUB_TSC_KHZ_MIN || v > SUB_TSC_KHZ_MAX)
        return sub_err_setk(e, SUB_KIND_ENV, -ERANGE,
                            "the host's TSC measured %lu kHz, outside %lu..%lu (an unstable TSC?); "
                            "set SUBSTRATE_TSC_KHZ to the host's TSC rate",
                            v, SUB_TSC_KHZ_MIN, SUB_TSC_KHZ_MAX);
    int r = ensure_dir(cache_dir, e);
    if (r < 0) return r;
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%lu\n", v);
    if ((r = sub_write_file_atomic(path, buf, (size_t)len, 0644, e)) < 0) return r;
    *khz = v;
    return 0;
#else
    return sub_err_setk(e, SUB_KIND_ENV, -EOPNOTSUPP,
                        "cannot measure a TSC on this architecture; set SUBSTRATE_TSC_KHZ");
#endif
}

/* ---- modules -------------------------------------------------------------------------------- */

typedef struct vmod {
    char *name;   /* '-' made '_' */
    char *path;   /* absolute */
    char **deps;  /* modules.dep paths as written */
    char **pre;   /* softdep pre: names, raw */
    bool modinfo_read;
    int state;    /* 0 new, 1 being visited, 2 placed */
} vmod;

typedef struct modctx {
    const char *dir;   /* absolute */
    vmod *m;           /* sorted by name */
    size_t n;
    char **builtin;    /* normalised names, sorted */
    char *alias;       /* modules.alias text, or NULL */
    bool softdep_file; /* modules.softdep exists: do not read .modinfo */
    char **order;      /* the result */
    sub_err *e;
} modctx;

/* Module name of a path or name: basename, up to ".ko", '-' made '_'. */
static char *mod_name(const char *s) {
    const char *b = strrchr(s, '/') ? strrchr(s, '/') + 1 : s;
    const char *ko = NULL;
    for (const char *q = strstr(b, ".ko"); q; q = strstr(q + 1, ".ko"))
        if (q[3] == 0 || q[3] == '.') ko = q;
    char *n = xstrndup(b, ko ? (size_t)(ko - b) : strlen(b));
    for (char *c = n; *c; c++)
        if (*c == '-') *c = '_';
    return n;
}

static int vmod_cmp(const void *a, const void *b) {
    return strcmp(((const vmod *)a)->name, ((const vmod *)b)->name);
}

static vmod *mod_find(modctx *c, const char *name) {
    _cleanup_free_ char *n = mod_name(name);
    vmod key = {.name = n};
    return c->n ? bsearch(&key, c->m, c->n, sizeof *c->m, vmod_cmp) : NULL;
}

static bool is_builtin(modctx *c, const char *name) {
    _cleanup_free_ char *n = mod_name(name);
    const char *k = n;
    return c->builtin && bsearch(&k, c->builtin, strv_len(c->builtin), sizeof(char *), strcmp_ptr);
}

static void ctx_done(modctx *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->m[i].name);
        free(c->m[i].path);
        strv_free(c->m[i].deps);
        strv_free(c->m[i].pre);
    }
    free(c->m);
    strv_free(c->builtin);
    free(c->alias);
    strv_free(c->order);
}

/* An index file of modules_dir, or NULL (*err < 0 on a read error other than "missing"). */
static char *read_index(const char *dir, const char *name, int *err, sub_err *e) {
    _cleanup_free_ char *p = sub_path_join(dir, name);
    char *s = NULL;
    size_t n;
    sub_err re = {0};
    int r = sub_read_file(p, INDEX_MAX, &s, &n, &re);
    if (r == -ENOENT) return NULL;
    if (r < 0) {
        *err = sub_err_setk(e, SUB_KIND_ENV, r, "%s", re.msg);
        return NULL;
    }
    return s;
}

static int load_dep(modctx *c) {
    int r = 0;
    _cleanup_free_ char *dep = read_index(c->dir, "modules.dep", &r, c->e);
    if (r < 0) return r;
    if (!dep)
        return sub_err_setk(c->e, SUB_KIND_ENV, -ENOENT,
                            "no modules.dep in %s: install the modules of that kernel "
                            "(linux-image-amd64; scripts/install-deps does), run depmod, or set "
                            "SUBSTRATE_VM_MODULES",
                            c->dir);
    size_t cap = 0;
    char *save = NULL;
    for (char *line = strtok_r(dep, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon || line[0] == '#') continue;
        *colon = 0;
        if (c->n == cap) c->m = xrealloc(c->m, (cap = cap ? cap * 2 : 1024) * sizeof *c->m);
        vmod *m = &c->m[c->n++];
        *m = (vmod){.name = mod_name(line),
                    .path = line[0] == '/' ? xstrdup(line) : sub_path_join(c->dir, line)};
        char *s2 = NULL;
        for (char *d = strtok_r(colon + 1, " \t", &s2); d; d = strtok_r(NULL, " \t", &s2))
            strv_push(&m->deps, d);
    }
    if (c->n) qsort(c->m, c->n, sizeof *c->m, vmod_cmp);
    return 0;
}

static int load_builtin(modctx *c) {
    int r = 0;
    _cleanup_free_ char *s = read_index(c->dir, "modules.builtin", &r, c->e);
    if (r < 0 || !s) return r;
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        _cleanup_free_ char *n = mod_name(line);
        strv_push(&c->builtin, n);
    }
    if (c->builtin) qsort(c->builtin, strv_len(c->builtin), sizeof(char *), strcmp_ptr);
    return 0;
}

/* "pre: a b post: c" (a softdep line after its module name, or a .modinfo softdep= value):
 * append the pre: names to *pre. */
static void parse_softdep(char *spec, char ***pre) {
    bool in_pre = false;
    char *save = NULL;
    for (char *w = strtok_r(spec, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (streq(w, "pre:")) in_pre = true;
        else if (str_has_suffix(w, ":")) in_pre = false;
        else if (in_pre) strv_push(pre, w);
    }
}

static int load_softdep(modctx *c) {
    int r = 0;
    _cleanup_free_ char *s = read_index(c->dir, "modules.softdep", &r, c->e);
    if (r < 0 || !s) return r;
    c->softdep_file = true;
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line += strspn(line, " \t");
        if (!str_has_prefix(line, "softdep") || (line[7] != ' ' && line[7] != '\t')) continue;
        char *p = line + 7;
        p += strspn(p, " \t");
        size_t nl = strcspn(p, " \t");
        if (!nl || !p[nl]) continue;
        p[nl] = 0;
        vmod *m = mod_find(c, p);
        if (m) parse_softdep(p + nl + 1, &m->pre);
    }
    return 0;
}

/* The .modinfo section of an ELF64 module: its softdep= values. */
static void modinfo_softdeps(const char *p, size_t len, char ***pre) {
    if (!elf64_complete(p, len)) return;
    Elf64_Ehdr h;
    memcpy(&h, p, sizeof h);
    if (h.e_shentsize != sizeof(Elf64_Shdr) || h.e_shstrndx >= h.e_shnum) return;
    Elf64_Shdr strs;
    memcpy(&strs, p + h.e_shoff + (size_t)h.e_shstrndx * sizeof strs, sizeof strs);
    if (strs.sh_offset > len || strs.sh_size > len - strs.sh_offset) return;
    for (size_t i = 0; i < h.e_shnum; i++) {
        Elf64_Shdr s;
        memcpy(&s, p + h.e_shoff + i * sizeof s, sizeof s);
        if (s.sh_name >= strs.sh_size || s.sh_offset > len || s.sh_size > len - s.sh_offset)
            continue;
        const char *nm = p + strs.sh_offset + s.sh_name;
        if (strnlen(nm, strs.sh_size - s.sh_name) == strs.sh_size - s.sh_name ||
            strcmp(nm, ".modinfo") != 0)
            continue;
        const char *q = p + s.sh_offset, *end = q + s.sh_size;
        while (q < end) {
            size_t n = strnlen(q, (size_t)(end - q));
            if (n > 8 && !strncmp(q, "softdep=", 8)) {
                _cleanup_free_ char *v = xstrndup(q + 8, n - 8);
                parse_softdep(v, pre);
            }
            q += n + 1;
        }
        return;
    }
}

/* Resolve a softdep name: a module, "<name>_generic", a modules.alias entry (a *_generic one
 * first), the same without "crypto-"; NULL for nothing or a built-in. */
static vmod *resolve_soft(modctx *c, const char *name) {
    if (is_builtin(c, name)) return NULL;
    vmod *m = mod_find(c, name);
    if (m) return m;
    _cleanup_free_ char *gen = xasprintf("%s_generic", name);
    if (is_builtin(c, gen)) return NULL;
    if ((m = mod_find(c, gen))) return m;
    if (c->alias) {
        vmod *best = NULL;
        size_t nl = strlen(name);
        for (const char *l = c->alias; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
            if (strncmp(l, "alias ", 6) != 0 || strncmp(l + 6, name, nl) != 0 || l[6 + nl] != ' ')
                continue;
            const char *t = l + 6 + nl + 1;
            _cleanup_free_ char *target = xstrndup(t, strcspn(t, " \t\n"));
            if (is_builtin(c, target)) return NULL;
            vmod *cand = mod_find(c, target);
            if (!cand) continue;
            bool gb = best && str_has_suffix(best->name, "_generic");
            bool gc = str_has_suffix(cand->name, "_generic");
            if (!best || (gc && !gb) || (gc == gb && strcmp(cand->name, best->name) < 0)) best = cand;
        }
        if (best) return best;
    }
    if (str_has_prefix(name, "crypto-")) return resolve_soft(c, name + 7);
    return NULL;
}

static int visit(modctx *c, vmod *m) {
    if (m->state) return 0; /* placed, or a (soft) cycle: already on the way */
    m->state = 1;
    if (!c->softdep_file && !m->modinfo_read) {
        m->modinfo_read = true;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        sub_err me = {0};
        if (sub_vm_module_read(m->path, &data, &len, &me) == 0) modinfo_softdeps(data, len, &m->pre);
    }
    for (char **s = m->pre; s && *s; s++) {
        vmod *d = resolve_soft(c, *s);
        int r;
        if (d && (r = visit(c, d)) < 0) return r;
    }
    for (size_t i = strv_len(m->deps); i-- > 0;) {
        vmod *d = mod_find(c, m->deps[i]);
        if (!d)
            return sub_err_setk(c->e, SUB_KIND_ENV, -EINVAL,
                                "%s/modules.dep is inconsistent: %s needs %s, which it does not "
                                "list; run depmod",
                                c->dir, m->name, m->deps[i]);
        int r = visit(c, d);
        if (r < 0) return r;
    }
    if (access(m->path, F_OK) < 0)
        return sub_err_setk(c->e, SUB_KIND_ENV, -ENOENT,
                            "module %s is listed in %s/modules.dep but %s is missing; reinstall "
                            "the kernel's modules or run depmod",
                            m->name, c->dir, m->path);
    m->state = 2;
    strv_push(&c->order, m->path);
    return 0;
}

static int unknown_module(modctx *c, const char *name) {
    _cleanup_free_ char *n = mod_name(name);
    const char *near = NULL;
    size_t bestd = 3;
    for (size_t i = 0; i < c->n; i++) {
        size_t d = sub_edit_distance(n, c->m[i].name);
        if (d < bestd) {
            bestd = d;
            near = c->m[i].name;
        }
    }
    char hint[160] = "";
    if (near) snprintf(hint, sizeof hint, " (did you mean %s?)", near);
    return sub_err_setk(c->e, SUB_KIND_INPUT, -ENOENT,
                        "unknown kernel module \"%s\": not in %s/modules.dep nor built in%s", name,
                        c->dir, hint);
}

int sub_vm_modules_resolve(const char *modules_dir, const char *const *names, char ***out,
                           sub_err *e) {
    char abs[PATH_MAX];
    if (!realpath(modules_dir, abs))
        return sub_err_setk(e, SUB_KIND_ENV, -errno,
                            "kernel modules directory %s: %m; install the kernel's modules "
                            "(linux-image-amd64; scripts/install-deps does) or set "
                            "SUBSTRATE_VM_MODULES",
                            modules_dir);
    modctx c = {.dir = abs, .e = e};
    int r;
    if ((r = load_dep(&c)) < 0 || (r = load_builtin(&c)) < 0 || (r = load_softdep(&c)) < 0)
        goto out;
    c.alias = read_index(abs, "modules.alias", &r, e);
    if (r < 0) goto out;
    for (const char *const *n = names; n && *n; n++) {
        if (mod_find(&c, *n) || is_builtin(&c, *n)) continue;
        r = unknown_module(&c, *n);
        goto out;
    }
    for (const char *const *n = names; n && *n; n++) {
        vmod *m = mod_find(&c, *n);
        if (m && (r = visit(&c, m)) < 0) goto out;
    }
    *out = c.order ? TAKE_PTR(c.order) : xcalloc(1, sizeof(char *));
out:
    ctx_done(&c);
    return r;
}

int sub_vm_module_read(const char *path, char **out, size_t *out_len, sub_err *e) {
    _cleanup_free_ char *raw = NULL;
    size_t len = 0;
    int r = sub_read_file(path, MODULE_MAX, &raw, &len, e);
    if (r < 0) return r;
    if (str_has_suffix(path, ".ko")) {
        *out = TAKE_PTR(raw);
        *out_len = len;
        return 0;
    }
    _cleanup_buf_ sub_buf b = SUB_BUF_INIT;
    if ((r = decompress_mem(raw, len, MODULE_MAX, path, &b, NULL, e)) < 0) return r;
    if (b.len < SELFMAG || memcmp(b.data, ELFMAG, SELFMAG) != 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOEXEC, "%s does not decompress to an ELF module",
                            path);
    *out = sub_buf_detach(&b, out_len);
    return 0;
}

/* ---- the initramfs -------------------------------------------------------------------------- */

typedef struct centry {
    char *name; /* no leading '/' */
    unsigned mode;
    unsigned rmaj, rmin;
    char *data; /* owned */
    size_t len;
} centry;

static int centry_cmp(const void *a, const void *b) {
    return strcmp(((const centry *)a)->name, ((const centry *)b)->name);
}

static void pad4(sub_buf *b) {
    while (b->len % 4) sub_buf_putc(b, 0);
}

static void cpio_header(sub_buf *b, unsigned ino, unsigned mode, unsigned nlink, size_t size,
                        unsigned rmaj, unsigned rmin, const char *name) {
    sub_buf_printf(b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode,
                   0u, 0u, nlink, 0u, (unsigned)size, 0u, 0u, rmaj, rmin,
                   (unsigned)strlen(name) + 1, 0u);
    sub_buf_append(b, name, strlen(name) + 1);
    pad4(b);
}

/* Module files in load order: the given paths, or the closure of the given names. */
static int initramfs_modules(const sub_vm_kernel *k, const char *const *modules, char ***paths,
                             sub_err *e) {
    size_t n = 0, nabs = 0;
    for (const char *const *m = modules; m && *m; m++, n++)
        if ((*m)[0] == '/') nabs++;
    if (nabs && nabs != n)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "initramfs modules: give either module names or module file paths, "
                            "not both");
    if (n == 0 || nabs) {
        for (const char *const *m = modules; m && *m; m++) strv_push(paths, *m);
        if (!*paths) *paths = xcalloc(1, sizeof(char *));
        return 0;
    }
    if (!k || !k->modules_dir)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "initramfs modules given by name need the kernel (its modules dir)");
    return sub_vm_modules_resolve(k->modules_dir, modules, paths, e);
}

int sub_vm_initramfs_build(const sub_vm_kernel *k, const char *agent_path,
                           const char *const *modules, char **out, size_t *out_len, sub_err *e) {
    _cleanup_strv_ char **paths = NULL;
    int r = initramfs_modules(k, modules, &paths, e);
    if (r < 0) return r;
    size_t nmods = strv_len(paths), n = 0;
    static const struct {
        const char *name;
        unsigned mode, rmaj, rmin;
    } fixed[] = {
        {"dev", S_IFDIR | 0755, 0, 0},         {"dev/console", S_IFCHR | 0600, 5, 1},
        {"dev/null", S_IFCHR | 0666, 1, 3},    {"lib", S_IFDIR | 0755, 0, 0},
        {"lib/modules", S_IFDIR | 0755, 0, 0}, {"mnt", S_IFDIR | 0755, 0, 0},
        {"newroot", S_IFDIR | 0755, 0, 0},     {"proc", S_IFDIR | 0755, 0, 0},
        {"run", S_IFDIR | 0755, 0, 0},         {"sys", S_IFDIR | 0755, 0, 0},
        {"tmp", S_IFDIR | 01777, 0, 0},
    };
    size_t cap = ARRAY_SIZE(fixed) + nmods + 2;
    centry *ents = xcalloc(cap, sizeof *ents);
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
        ents[n++] = (centry){.name = xstrdup(fixed[i].name), .mode = fixed[i].mode,
                             .rmaj = fixed[i].rmaj, .rmin = fixed[i].rmin};
    _cleanup_buf_ sub_buf order = SUB_BUF_INIT;
    _cleanup_buf_ sub_buf b = SUB_BUF_INIT;
    centry *agent = &ents[n++];
    *agent = (centry){.name = xstrdup("init"), .mode = S_IFREG | 0755};
    if ((r = sub_read_file(agent_path, AGENT_MAX, &agent->data, &agent->len, e)) < 0) {
        sub_err_prefix(e, "the guest agent: ");
        goto out;
    }
    for (size_t i = 0; i < nmods; i++) {
        /* the file's own spelling (virtio-rng.ko), without a compression suffix */
        const char *fb = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        const char *ko = strstr(fb, ".ko");
        _cleanup_free_ char *file = xasprintf("%.*s.ko", ko ? (int)(ko - fb) : (int)strlen(fb), fb);
        centry *m = &ents[n];
        *m = (centry){.name = xasprintf("lib/modules/%s", file), .mode = S_IFREG | 0644};
        n++;
        for (size_t j = ARRAY_SIZE(fixed) + 1; j + 1 < n; j++)
            if (streq(ents[j].name, m->name)) {
                r = sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                 "two modules named %s in the initramfs list (%s)", file, paths[i]);
                goto out;
            }
        if ((r = sub_vm_module_read(paths[i], &m->data, &m->len, e)) < 0) goto out;
        sub_buf_printf(&order, "%s\n", file);
    }
    size_t olen = 0;
    char *od = sub_buf_detach(&order, &olen);
    ents[n++] = (centry){.name = xstrdup("modules.order"), .mode = S_IFREG | 0644, .data = od,
                         .len = olen};
    qsort(ents, n, sizeof *ents, centry_cmp);
    for (size_t i = 0; i < n; i++) {
        if (ents[i].len > UINT32_MAX) {
            r = sub_err_setk(e, SUB_KIND_INPUT, -EFBIG, "/%s is too large for a cpio archive",
                             ents[i].name);
            goto out;
        }
        cpio_header(&b, (unsigned)i + 1, ents[i].mode, S_ISDIR(ents[i].mode) ? 2 : 1, ents[i].len,
                    ents[i].rmaj, ents[i].rmin, ents[i].name);
        if (ents[i].len) sub_buf_append(&b, ents[i].data, ents[i].len);
        pad4(&b);
    }
    cpio_header(&b, 0, 0, 1, 0, 0, 0, "TRAILER!!!");
    *out = sub_buf_detach(&b, out_len);
out:
    for (size_t i = 0; i < n; i++) {
        free(ents[i].name);
        free(ents[i].data);
    }
    free(ents);
    return r;
}

int sub_vm_initramfs_prepare(const char *cache_dir, const sub_vm_kernel *k, const char *agent_path,
                             const char *const *modules, char **out_path, sub_err *e) {
    /* the memo: the agent, the module index files, the names asked for */
    _cleanup_free_ char *mdir = sub_path_join(cache_dir, "initramfs");
    _cleanup_free_ char *dep = k && k->modules_dir ? sub_path_join(k->modules_dir, "modules.dep") : NULL;
    _cleanup_free_ char *key = NULL;
    {
        sub_buf names = {0};
        bool paths = false;
        for (const char *const *m = modules; m && *m; m++) {
            sub_buf_printf(&names, "%s\n", *m);
            paths |= (*m)[0] == '/';
        }
        const char *in[] = {agent_path, dep, NULL};
        /* module paths are inputs themselves; names go through modules.dep */
        if (!paths && (!modules || !*modules || dep)) key = memo_key(in, names.data);
        sub_buf_free(&names);
        _cleanup_free_ char *hit = memo_get(mdir, key);
        if (hit) {
            hit[strcspn(hit, "\n")] = 0;
            struct stat hst;
            if (*hit == '/' && stat(hit, &hst) == 0 && S_ISREG(hst.st_mode)) {
                *out_path = xstrdup(hit);
                return 0;
            }
        }
    }
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = sub_vm_initramfs_build(k, agent_path, modules, &data, &len, e);
    if (r < 0) return r;
    char digest[SUB_DIGEST_MAX];
    if ((r = sub_sha256_buf(data, len, digest, e)) < 0) return r;
    _cleanup_free_ char *dir = sub_path_join(cache_dir, "initramfs");
    if ((r = ensure_dir(cache_dir, e)) < 0 || (r = ensure_dir(dir, e)) < 0) return r;
    sub_residue_sweep(dir, SUB_FS_TMP, NULL);
    _cleanup_free_ char *path =
        xasprintf("%s/initramfs-%.16s.cpio", dir, sub_digest_hex(digest));
    struct stat st;
    /* the name is the content's digest and files only appear by rename: same name and size is
     * the same archive */
    if (!(stat(path, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len) &&
        (r = sub_write_file_atomic(path, data, len, 0644, e)) < 0)
        return r;
    _cleanup_free_ char *rec = xasprintf("%s\n", path);
    memo_put(dir, key, rec);
    *out_path = TAKE_PTR(path);
    return 0;
}
