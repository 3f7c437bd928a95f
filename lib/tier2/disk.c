/* The job's root filesystem as a read-only erofs disk, per image digest. */
#include "t2-internal.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "substrate/residue.h"
#include "substrate/rootfs.h"
#include "substrate/strbuf.h"
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void note(sub_job_note_fn fn, void *ud, const char *fmt, ...) _printf_(3, 4);
static void note(sub_job_note_fn fn, void *ud, const char *fmt, ...) {
    if (!fn) return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    fn(ud, m);
}


/* mkfs.erofs TREE into a temp file beside path, then rename: a reader never
 * sees half an image. A fixed timestamp and UUID make it repeatable. */
static int build_erofs(const char *tree, const char *path, const char *hex, sub_err *e) {
    if (!sub_have_program("mkfs.erofs"))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "mkfs.erofs is not installed: install erofs-utils "
                            "(scripts/install-deps does)");
    _cleanup_free_ char *dir = xstrdup(path);
    *strrchr(dir, '/') = 0;
    _cleanup_free_ char *base = xasprintf("%s/.erofs-", dir);
    _cleanup_free_ char *tmp = NULL;
    int fd = sub_residue_mkstemp(base, &tmp, e);
    if (fd < 0) return fd;
    close(fd);
    char uuid[37];
    snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    _cleanup_free_ char *uarg = xasprintf("-U%s", uuid);
    char *argv[] = {"mkfs.erofs", "--quiet", "-T0", uarg, tmp, (char *)tree, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    po.stdout_fd = SUB_FD_NULL;
    int st = 0;
    int r = sub_run(argv, &po, &st, e);
    if (r == 0 && st != 0) r = sub_err_setk(e, SUB_KIND_ENV, -EIO, "mkfs.erofs %s failed (exit %d)", tree, st);
    if (r == 0 && chmod(tmp, 0644) < 0) r = sub_err_setk(e, SUB_KIND_ENV, -errno, "chmod %s: %s", tmp, strerror(errno));
    if (r == 0 && rename(tmp, path) < 0) r = sub_err_setk(e, SUB_KIND_ENV, -errno, "rename %s: %s", path, strerror(errno));
    if (r < 0) sub_residue_remove(tmp);
    else sub_residue_forget(tmp);
    return r;
}

int t2_disk_prepare(const sub_ref *ref, sub_reg *reg, sub_job_note_fn fn, void *ud, t2_disk *out, sub_err *e) {
    *out = (t2_disk){0};
    const char *digest = ref->digest;
    _cleanup_free_ char *layout = t2_path("images");
    _cleanup_free_ char *cache = t2_path("rootfs");
    sub_rootfs_info ri = {0};
    note(fn, ud, "pulling %s by digest", digest);
    int r = sub_rootfs_fetch(reg, ref->repository, digest, layout, cache, &ri, &out->config, e);
    if (r < 0) return r;
    const char *hex = strchr(digest, ':') + 1;
    _cleanup_free_ char *disks = t2_path("disks");
    if ((r = sub_mkdir_p(disks, 0755, e)) < 0 || (r = sub_residue_sweep(disks, ".erofs-", e)) < 0) {
        sub_rootfs_info_done(&ri);
        return r;
    }
    out->path = xasprintf("%s/%s.erofs", disks, hex);
    _cleanup_free_ char *sumf = xasprintf("%s.sha256", out->path);
    _cleanup_free_ char *want = NULL;
    size_t wl = 0;
    char have[SUB_DIGEST_MAX] = "";
    /* reuse only an image whose bytes are the ones recorded when it was made,
     * made from a tree that still matches its content list */
    if (ri.reused && sub_read_file(sumf, 256, &want, &wl, NULL) == 0 &&
        sub_sha256_file(out->path, have, NULL, NULL) == 0 && wl >= strlen(have) &&
        !strncmp(want, have, strlen(have))) {
        out->reused = true;
        note(fn, ud, "disk: %s (cached, sha256 checked)", out->path);
    } else {
        note(fn, ud, "making the read-only disk %s", out->path);
        (void)unlink(sumf);
        r = build_erofs(ri.rootfs, out->path, hex, e);
        if (r == 0) r = sub_sha256_file(out->path, have, NULL, e);
        if (r == 0) {
            _cleanup_free_ char *line = xasprintf("%s\n", have);
            r = sub_write_file_atomic(sumf, line, strlen(line), 0644, e);
        }
    }
    sub_rootfs_info_done(&ri);
    if (r < 0) t2_disk_done(out);
    return r;
}

void t2_disk_done(t2_disk *d) {
    free(d->path);
    sub_image_config_free(&d->config);
    *d = (t2_disk){0};
}
