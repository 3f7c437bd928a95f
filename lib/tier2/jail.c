/* The VMM jail (jail.h): plan in the parent (ELF dependencies, the list of
 * bind mounts, cgroups), then run the plan in the cloned child with system
 * calls only (no allocation, no stdio: the parent may have other threads).
 * Modelled on Firecracker's jailer (namespaces, cgroups, pivot_root, uid
 * drop) and bubblewrap (read-only binds on a tmpfs root, setup errors sent
 * back over a pipe); the code is ours. */
#include "substrate/fs.h"
#include "substrate/jail.h"
#include "t2-internal.h"
#include "substrate/residue.h"
#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILL_WAIT_MS 5000
#define RMDIR_WAIT_MS 2000
#define ROOT_TMPFS_OPTS "size=256k,nr_inodes=1024,mode=0755"

/* ---- small helpers ----------------------------------------------------------------------- */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *errname(int err) {
    const char *n = strerrorname_np(err);
    return n ? n : "E?";
}

static int write_str(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int r = sub_write_all(fd, s, strlen(s));
    if (close(fd) < 0 && r == 0) r = -errno;
    return r;
}

static bool valid_id(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64) return false;
    for (const char *p = id; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')) return false;
    return true;
}

/* ---- ELF dependencies -------------------------------------------------------------------- */

static const char *const lib_dirs[] = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64",
                                       "/usr/lib64", "/lib", "/usr/lib"};

static int pread_all(int fd, void *buf, size_t n, off_t off) {
    ssize_t r = pread(fd, buf, n, off);
    if (r < 0) return -errno;
    return (size_t)r == n ? 0 : -ENOEXEC;
}

/* file offset of virtual address v (through the PT_LOAD segments), or -1 */
static off_t vaddr_off(const Elf64_Phdr *ph, size_t n, uint64_t v) {
    for (size_t i = 0; i < n; i++)
        if (ph[i].p_type == PT_LOAD && v >= ph[i].p_vaddr && v < ph[i].p_vaddr + ph[i].p_filesz)
            return (off_t)(v - ph[i].p_vaddr + ph[i].p_offset);
    return -1;
}

/* PT_INTERP (*interp, or NULL) and the DT_NEEDED names (appended to *needed)
 * of a 64-bit ELF file. A static binary has neither. */
static int elf_deps(const char *path, char **interp, char ***needed, sub_err *e) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sub_err_set(e, -errno, "jail: reading %s: %m", path);
    Elf64_Ehdr eh;
    if (pread_all(fd, &eh, sizeof eh, 0) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256)
        return sub_err_set(e, -ENOEXEC, "jail: %s is not a 64-bit little-endian ELF file", path);
    _cleanup_free_ Elf64_Phdr *ph = xcalloc(eh.e_phnum, sizeof *ph);
    if (pread_all(fd, ph, eh.e_phnum * sizeof *ph, (off_t)eh.e_phoff) < 0)
        return sub_err_set(e, -ENOEXEC, "jail: %s: truncated program headers", path);
    *interp = NULL;
    const Elf64_Phdr *dyn = NULL;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_INTERP && ph[i].p_filesz > 1 && ph[i].p_filesz < 4096 && !*interp) {
            char *s = xcalloc(1, ph[i].p_filesz + 1);
            if (pread_all(fd, s, ph[i].p_filesz, (off_t)ph[i].p_offset) < 0) {
                free(s);
                return sub_err_set(e, -ENOEXEC, "jail: %s: truncated PT_INTERP", path);
            }
            *interp = s;
        }
        if (ph[i].p_type == PT_DYNAMIC) dyn = &ph[i];
    }
    if (!dyn) return 0;
    size_t nd = dyn->p_filesz / sizeof(Elf64_Dyn);
    if (nd == 0 || nd > 4096) return sub_err_set(e, -ENOEXEC, "jail: %s: bad PT_DYNAMIC", path);
    _cleanup_free_ Elf64_Dyn *d = xcalloc(nd, sizeof *d);
    if (pread_all(fd, d, nd * sizeof *d, (off_t)dyn->p_offset) < 0)
        return sub_err_set(e, -ENOEXEC, "jail: %s: truncated PT_DYNAMIC", path);
    uint64_t strtab = 0, strsz = 0;
    for (size_t i = 0; i < nd && d[i].d_tag != DT_NULL; i++) {
        if (d[i].d_tag == DT_STRTAB) strtab = d[i].d_un.d_ptr;
        if (d[i].d_tag == DT_STRSZ) strsz = d[i].d_un.d_val;
    }
    off_t stroff = vaddr_off(ph, eh.e_phnum, strtab);
    if (stroff < 0 || strsz == 0 || strsz > (16u << 20))
        return sub_err_set(e, -ENOEXEC, "jail: %s: no string table for DT_NEEDED", path);
    _cleanup_free_ char *str = xcalloc(1, strsz + 1);
    if (pread_all(fd, str, strsz, stroff) < 0)
        return sub_err_set(e, -ENOEXEC, "jail: %s: truncated string table", path);
    for (size_t i = 0; i < nd && d[i].d_tag != DT_NULL; i++)
        if (d[i].d_tag == DT_NEEDED) {
            if (d[i].d_un.d_val >= strsz)
                return sub_err_set(e, -ENOEXEC, "jail: %s: DT_NEEDED outside the string table", path);
            strv_push(needed, str + d[i].d_un.d_val);
        }
    return 0;
}

static bool is_regular(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool strv_has(char *const *v, const char *s) {
    for (; v && *v; v++)
        if (streq(*v, s)) return true;
    return false;
}

/* Add elf and, recursively, everything it loads, to *files (paths as the
 * loader will look for them, which is where they are bound in the jail). */
static int add_elf_closure(const char *elf, char ***files, sub_err *e) {
    _cleanup_strv_ char **queue = NULL;
    strv_push(&queue, elf);
    for (size_t qi = 0; queue[qi]; qi++) {
        _cleanup_free_ char *interp = NULL;
        _cleanup_strv_ char **needed = NULL;
        int r = elf_deps(queue[qi], &interp, &needed, e);
        if (r < 0) return r;
        if (interp && !strv_has(*files, interp)) {
            if (!is_regular(interp))
                return sub_err_set(e, -ENOENT, "jail: %s names the loader %s, which is missing",
                                   queue[qi], interp);
            strv_push(files, interp);
        }
        for (char **n = needed; n && *n; n++) {
            _cleanup_free_ char *found = NULL;
            if (strchr(*n, '/')) found = xstrdup(*n);
            for (size_t i = 0; !found && i < ARRAY_SIZE(lib_dirs); i++) {
                char *c = xasprintf("%s/%s", lib_dirs[i], *n);
                if (is_regular(c)) found = c;
                else free(c);
            }
            if (!found)
                return sub_err_set(e, -ENOENT,
                                   "jail: %s needs %s, found in none of /lib/x86_64-linux-gnu, "
                                   "/usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib, /usr/lib",
                                   queue[qi], *n);
            if (strv_has(*files, found)) continue;
            strv_push(files, found);
            strv_push(&queue, found);
        }
    }
    return 0;
}

/* ---- the plan ---------------------------------------------------------------------------- */

enum { BIND_EXEC, BIND_DATA, BIND_DEV };

typedef struct mnt_ent {
    char *src;    /* host path */
    char *target; /* root_dir + path inside the jail (the same path) */
    int kind;
} mnt_ent;

/* What the child needs, all prepared before clone. */
typedef struct plan {
    const sub_jail_opts *o;
    mnt_ent *ents;
    size_t nents;
    int *keep; /* sorted fds to keep open across the close_range */
    size_t nkeep;
    int errfd, syncfd;
    int last_cap;
    gid_t kvm_gid;      /* with o->kvm: the group that may open /dev/kvm */
    /* Tier-0 (o->rootfs): everything the child mounts, prepared here */
    char *scratch_opts, *upper, *ovwork, *merged, *ovl_opts, *tmp_opts, *work_opts;
    int exec_fd;        /* argv[0], O_PATH: run with execveat after the pivot */
} plan;

typedef struct child_report {
    int err;
    char step[32];
    char arg[512];
} child_report;

static void plan_done(plan *p) {
    for (size_t i = 0; i < p->nents; i++) {
        free(p->ents[i].src);
        free(p->ents[i].target);
    }
    free(p->ents);
    free(p->keep);
    free(p->scratch_opts);
    free(p->upper);
    free(p->ovwork);
    free(p->merged);
    free(p->ovl_opts);
    free(p->tmp_opts);
    free(p->work_opts);
    if (p->exec_fd >= 0) close(p->exec_fd);
}

/* Tier-0: the overlay and tmpfs options, and argv[0] opened. */
static int plan_build_rootfs(plan *p, const sub_jail_opts *o, sub_err *e) {
    struct stat st;
    if (o->rootfs[0] != '/' || stat(o->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "jail: rootfs %s must be an existing directory", o->rootfs);
    /* overlay's options are split at ',' and ':' (and '\\' escapes) */
    if (strpbrk(o->rootfs, ",:\\") || strpbrk(o->root_dir, ",:\\"))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "jail: %s holds ',', ':' or '\\', which overlayfs options cannot carry (move "
                            "$SUBSTRATE_STATE to a path without them)", strpbrk(o->rootfs, ",:\\") ? o->rootfs : o->root_dir);
    if (!o->workdir || o->workdir[0] != '/' || streq(o->workdir, "/") || strstr(o->workdir, "/..") ||
        strlen(o->workdir) >= 256)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "jail: workdir %s must be an absolute path other than /, "
                            "without \"..\"", o->workdir ? o->workdir : "(null)");
    if (o->ro_paths || o->kvm)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "jail: ro_paths and kvm do not go with rootfs");
    uint32_t mb = o->tmpfs_mb ? o->tmpfs_mb : 64;
    p->scratch_opts = xasprintf("size=%um,mode=0700", mb);
    p->upper = xasprintf("%s/upper", o->root_dir);
    p->ovwork = xasprintf("%s/work", o->root_dir);
    p->merged = xasprintf("%s/merged", o->root_dir);
    p->ovl_opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", o->rootfs, p->upper, p->ovwork);
    p->tmp_opts = xasprintf("size=%um,mode=1777", mb);
    p->work_opts = xasprintf("size=%um,mode=0700,uid=%u,gid=%u", mb, (unsigned)o->uid, (unsigned)o->gid);
    p->exec_fd = open(o->argv[0], O_PATH | O_CLOEXEC);
    if (p->exec_fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "jail: %s: %m", o->argv[0]);
    return 0;
}

/* Programs whose extra files we know. The dirs are bound whole. */
static const struct {
    const char *prefix; /* of the program's file name */
    const char *dirs[3];
    const char *elfs[3]; /* modules it dlopen()s: bound with their dependencies */
} program_extras[] = {
    {"qemu-system-",
     {"/usr/lib/x86_64-linux-gnu/qemu", "/usr/share/qemu", NULL},
     {"/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so", NULL, NULL}},
};

static bool under(const char *path, const char *dir) {
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

static void plan_add(plan *p, const char *root, const char *path, int kind) {
    for (size_t i = 0; i < p->nents; i++)
        if (streq(p->ents[i].src, path)) return;
    p->ents = xrealloc(p->ents, (p->nents + 1) * sizeof *p->ents);
    p->ents[p->nents++] = (mnt_ent){xstrdup(path), xasprintf("%s%s", root, path), kind};
}

static int cmp_ent(const void *a, const void *b) {
    return strcmp(((const mnt_ent *)a)->src, ((const mnt_ent *)b)->src);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int plan_build(plan *p, const sub_jail_opts *o, sub_err *e) {
    if (o->rootfs) return plan_build_rootfs(p, o, e);
    const char *root = o->root_dir;
    _cleanup_strv_ char **files = NULL;
    strv_push(&files, o->argv[0]);
    int r = add_elf_closure(o->argv[0], &files, e);
    if (r < 0) return r;
    const char *base = strrchr(o->argv[0], '/') + 1;
    for (size_t i = 0; i < ARRAY_SIZE(program_extras); i++) {
        if (!str_has_prefix(base, program_extras[i].prefix)) continue;
        for (size_t k = 0; k < ARRAY_SIZE(program_extras[i].dirs) && program_extras[i].dirs[k]; k++)
            if (sub_path_exists(program_extras[i].dirs[k]))
                plan_add(p, root, program_extras[i].dirs[k], BIND_EXEC);
        for (size_t k = 0; k < ARRAY_SIZE(program_extras[i].elfs) && program_extras[i].elfs[k]; k++)
            if (is_regular(program_extras[i].elfs[k])) {
                strv_push(&files, program_extras[i].elfs[k]);
                if ((r = add_elf_closure(program_extras[i].elfs[k], &files, e)) < 0) return r;
            }
    }
    for (char **f = files; *f; f++) plan_add(p, root, *f, BIND_EXEC);
    for (const char *const *rp = o->ro_paths; rp && *rp; rp++) {
        if ((*rp)[0] != '/' || strstr(*rp, "/../") || str_has_suffix(*rp, "/.."))
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "jail: ro_path %s is not an absolute path without \"..\"", *rp);
        plan_add(p, root, *rp, BIND_DATA);
    }
    static const char *const devs[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
    for (size_t i = 0; i < ARRAY_SIZE(devs); i++) plan_add(p, root, devs[i], BIND_DEV);
    if (o->kvm) {
        struct stat kst;
        if (stat("/dev/kvm", &kst) < 0)
            return sub_err_setk(e, SUB_KIND_ENV, -errno, "jail: /dev/kvm: %s", strerror(errno));
        p->kvm_gid = kst.st_gid;
        plan_add(p, root, "/dev/kvm", BIND_DEV);
    }
    /* parents first; a path below another entry is already visible through it */
    qsort(p->ents, p->nents, sizeof *p->ents, cmp_ent);
    size_t w = 0;
    for (size_t i = 0; i < p->nents; i++) {
        bool covered = false;
        for (size_t k = 0; k < w && !covered; k++) covered = under(p->ents[i].src, p->ents[k].src);
        if (covered) {
            free(p->ents[i].src);
            free(p->ents[i].target);
            continue;
        }
        p->ents[w++] = p->ents[i];
    }
    p->nents = w;
    for (size_t i = 0; i < p->nents; i++)
        if (strlen(p->ents[i].target) >= sizeof(((child_report *)0)->arg) - 1)
            return sub_err_setk(e, SUB_KIND_INPUT, -ENAMETOOLONG, "jail: path too long: %s",
                                p->ents[i].target);
    return 0;
}

/* ---- the child --------------------------------------------------------------------------- */

static _noreturn_ void child_fail(const plan *p, const char *step, const char *arg) {
    child_report rep = {.err = errno};
    strncpy(rep.step, step, sizeof rep.step - 1);
    if (arg) strncpy(rep.arg, arg, sizeof rep.arg - 1);
    if (write(p->errfd, &rep, sizeof rep) < 0) { /* the parent sees EOF and a dead child */
    }
    _exit(127);
}

/* mkdir -p of the parents of target, below the (existing) root_dir */
static int mkdir_parents(const plan *p, char *target) {
    size_t rl = strlen(p->o->root_dir);
    for (char *s = target + rl + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        int r = mkdir(target, 0755);
        *s = '/';
        if (r < 0 && errno != EEXIST) return -1;
    }
    return 0;
}

static void child_bind(const plan *p, const mnt_ent *m) {
    struct stat st;
    if (stat(m->src, &st) < 0) child_fail(p, "bind-mount", m->src);
    if (mkdir_parents(p, m->target) < 0) child_fail(p, "mkdir", m->target);
    if (S_ISDIR(st.st_mode)) {
        if (mkdir(m->target, 0755) < 0 && errno != EEXIST) child_fail(p, "mkdir", m->target);
    } else {
        int fd = open(m->target, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) child_fail(p, "create", m->target);
        close(fd);
    }
    if (mount(m->src, m->target, NULL, MS_BIND, NULL) < 0) child_fail(p, "bind-mount", m->src);
    unsigned long fl = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID;
    if (m->kind == BIND_DATA) fl |= MS_NODEV | MS_NOEXEC;
    if (m->kind == BIND_EXEC) fl |= MS_NODEV;
    if (m->kind == BIND_DEV) fl |= MS_NOEXEC;
    if (mount(NULL, m->target, NULL, fl, NULL) < 0) child_fail(p, "remount-ro", m->src);
}

static void child_mounts(const plan *p) {
    const char *root = p->o->root_dir;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(p, "make-private", "/");
    if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS_OPTS) < 0)
        child_fail(p, "mount-tmpfs", root);
    for (size_t i = 0; i < p->nents; i++) child_bind(p, &p->ents[i]);
    if (mount(NULL, root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        child_fail(p, "remount-ro", root);
    if (chdir(root) < 0) child_fail(p, "chdir", root);
    /* the old root ends up stacked on the new one, then goes */
    if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail(p, "pivot_root", root);
    if (umount2(".", MNT_DETACH) < 0) child_fail(p, "detach-old-root", root);
    if (chdir("/") < 0) child_fail(p, "chdir", "/");
}

/* Tier-0: path (absolute, inside the new root) exists as a directory, made
 * when missing; a symlink or a file there is refused. */
static void child_dir(const plan *p, const char *path, mode_t mode) {
    char b[256];
    size_t n = strlen(path);
    if (n >= sizeof b) child_fail(p, "mkdir", path);
    memcpy(b, path, n + 1);
    for (char *s = b + 1;; s++) {
        bool last = *s == 0;
        if (*s != '/' && !last) continue;
        *s = 0;
        struct stat st;
        if (lstat(b, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                errno = ENOTDIR;
                child_fail(p, "mkdir (the image has a non-directory there)", b);
            }
        } else if (mkdir(b, mode) < 0) {
            child_fail(p, "mkdir", b);
        }
        if (last) break;
        *s = '/';
    }
}

static void child_mounts_rootfs(const plan *p) {
    const sub_jail_opts *o = p->o;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(p, "make-private", "/");
    if (mount("tmpfs", o->root_dir, "tmpfs", MS_NOSUID | MS_NODEV, p->scratch_opts) < 0)
        child_fail(p, "mount-tmpfs", o->root_dir);
    if (mkdir(p->upper, 0755) < 0) child_fail(p, "mkdir", p->upper);
    if (mkdir(p->ovwork, 0700) < 0) child_fail(p, "mkdir", p->ovwork);
    if (mkdir(p->merged, 0755) < 0) child_fail(p, "mkdir", p->merged);
    if (mount("overlay", p->merged, "overlay", MS_NOSUID | MS_NODEV, p->ovl_opts) < 0)
        child_fail(p, "mount-overlay", o->rootfs);
    if (chdir(p->merged) < 0) child_fail(p, "chdir", p->merged);
    if (syscall(SYS_pivot_root, ".", ".") < 0) child_fail(p, "pivot_root", p->merged);
    if (umount2(".", MNT_DETACH) < 0) child_fail(p, "detach-old-root", p->merged);
    if (chdir("/") < 0) child_fail(p, "chdir", "/");
    /* from here every path resolves inside the job's tree */
    child_dir(p, "/proc", 0555);
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) child_fail(p, "mount-proc", "/proc");
    child_dir(p, "/dev", 0755);
    if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64") < 0)
        child_fail(p, "mount-tmpfs", "/dev");
    static const struct {
        const char *path;
        unsigned maj, min;
    } devs[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
                {"/dev/random", 1, 8},  {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
    for (size_t i = 0; i < ARRAY_SIZE(devs); i++) {
        if (mknod(devs[i].path, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0 ||
            chmod(devs[i].path, 0666) < 0)
            child_fail(p, "mknod", devs[i].path);
    }
    static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
                                           {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}};
    for (size_t i = 0; i < ARRAY_SIZE(links); i++)
        if (symlink(links[i][0], links[i][1]) < 0) child_fail(p, "symlink", links[i][1]);
    if (mkdir("/dev/shm", 01777) < 0 || chmod("/dev/shm", 01777) < 0) child_fail(p, "mkdir", "/dev/shm");
    child_dir(p, "/tmp", 01777);
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, p->tmp_opts) < 0) child_fail(p, "mount-tmpfs", "/tmp");
    child_dir(p, o->workdir, 0755);
    if (mount("tmpfs", o->workdir, "tmpfs", MS_NOSUID | MS_NODEV, p->work_opts) < 0)
        child_fail(p, "mount-tmpfs", o->workdir);
}

/* Tier-0: the new network namespace's lo, up (it is the only interface). */
static void child_lo_up(const plan *p) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) child_fail(p, "socket", NULL);
    struct ifreq ifr = {0};
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) child_fail(p, "lo-up", "lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) child_fail(p, "lo-up", "lo");
    close(s);
}

static void child_fds(const plan *p, int devnull) {
    const sub_jail_opts *o = p->o;
    int want[3] = {devnull, o->stdout_fd >= 0 ? o->stdout_fd : devnull,
                   o->stderr_fd >= 0 ? o->stderr_fd : devnull};
    static const char *const names[3] = {"stdin", "stdout", "stderr"};
    for (int t = 0; t < 3; t++) {
        if (want[t] == t) {
            if (fcntl(t, F_SETFD, 0) < 0) child_fail(p, names[t], NULL);
        } else if (dup2(want[t], t) < 0) {
            child_fail(p, names[t], NULL);
        }
    }
    for (size_t i = 0; i < o->nfds; i++)
        if (fcntl(o->fds[i], F_SETFD, 0) < 0) child_fail(p, "pass-fd", NULL);
    /* close everything else: the gaps between the kept fds */
    unsigned lo = 0;
    for (size_t i = 0; i <= p->nkeep; i++) {
        unsigned hi = i < p->nkeep ? (unsigned)p->keep[i] : ~0U;
        if (hi > lo && syscall(SYS_close_range, lo, hi - 1, 0) < 0) child_fail(p, "close_range", NULL);
        lo = hi + 1;
    }
}

static void child_drop(const plan *p) {
    const sub_jail_opts *o = p->o;
    for (int c = 0; c <= p->last_cap; c++)
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) child_fail(p, "capbset-drop", NULL);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        child_fail(p, "ambient-clear", NULL);
    /* no supplementary group, but the one of /dev/kvm when the VMM needs it */
    if (o->kvm ? setgroups(1, &p->kvm_gid) < 0 : setgroups(0, NULL) < 0) child_fail(p, "setgroups", NULL);
    if (setresgid(o->gid, o->gid, o->gid) < 0) child_fail(p, "setresgid", NULL);
    if (setresuid(o->uid, o->uid, o->uid) < 0) child_fail(p, "setresuid", NULL);
    /* the uid change emptied permitted and effective; inheritable too */
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2] = {{0, 0, 0}, {0, 0, 0}};
    if (syscall(SYS_capset, &h, d) < 0) child_fail(p, "capset", NULL);
    /* the uid change cleared the parent-death signal: set it again, then make
     * sure the runner did not die before (it holds syncfd's other end) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(p, "pdeathsig", NULL);
    struct pollfd pf = {.fd = p->syncfd, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0) _exit(1); /* EOF or more data: the runner is gone */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(p, "no_new_privs", NULL);
}

static _noreturn_ void child_main(const plan *p) {
    const sub_jail_opts *o = p->o;
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int s = 1; s < NSIG; s++) (void)sigaction(s, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(p, "pdeathsig", NULL);
    char go;
    ssize_t n;
    do n = read(p->syncfd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) _exit(1); /* the runner failed (or died) before moving us into the cgroup */
    if (o->netns_fd >= 0 && setns(o->netns_fd, CLONE_NEWNET) < 0) child_fail(p, "setns-net", NULL);
    umask(022);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) child_fail(p, "open", "/dev/null");
    if (o->rootfs) child_mounts_rootfs(p);
    else child_mounts(p);
    if (sethostname("job", 3) < 0) child_fail(p, "sethostname", NULL);
    if (o->rootfs && o->netns_fd < 0) child_lo_up(p);
    child_fds(p, devnull);
    child_drop(p);
    umask(077);
    char *const env[] = {"PATH=/usr/bin:/bin", NULL};
    if (o->rootfs) syscall(SYS_execveat, p->exec_fd, "", o->argv, env, AT_EMPTY_PATH);
    else execve(o->argv[0], o->argv, env);
    child_fail(p, "execve", o->argv[0]);
}

/* ---- cgroups ----------------------------------------------------------------------------- */

/* The mount points of the v1 hierarchies holding the memory and pids
 * controllers (NULL when not mounted); only mounts of a hierarchy's root. */
static void cg_v1_mounts(char **mem, char **pids) {
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - ");
        if (!sep) continue;
        char fstype[32], super[1024], root[512], mnt[512];
        if (sscanf(sep + 3, "%31s %*s %1023s", fstype, super) != 2 || !streq(fstype, "cgroup")) continue;
        if (sscanf(line, "%*s %*s %*s %511s %511s", root, mnt) != 2 || !streq(root, "/")) continue;
        char *save = NULL;
        for (char *t = strtok_r(super, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (streq(t, "memory") && !*mem) *mem = xstrdup(mnt);
            if (streq(t, "pids") && !*pids) *pids = xstrdup(mnt);
        }
    }
}

static bool cg_is_v2(void) {
    struct statfs sf;
    return statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static int cg_set(const char *dir, const char *file, const char *val, bool optional, sub_err *e) {
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, file);
    if (optional && access(p, F_OK) < 0) return 0;
    int r = write_str(p, val);
    if (r < 0) return sub_err_set(e, r, "jail: writing %s to %s: %s", val, p, strerror(-r));
    return 0;
}

/* mkdir dir (an empty leftover of the same name is replaced) and record it */
static int cg_mkdir(sub_jail *j, const char *dir, sub_err *e) {
    if (mkdir(dir, 0755) < 0) {
        if (errno != EEXIST || rmdir(dir) < 0 || mkdir(dir, 0755) < 0)
            return sub_err_setk(e, SUB_KIND_ENV, -errno,
                                "jail: cannot create cgroup %s: %m (a cgroup of that name that still "
                                "holds processes means a job with this id is running)",
                                dir);
    }
    strv_push(&j->cgroup_dirs, dir);
    return 0;
}

static int cg_create(const sub_jail_opts *o, sub_jail *j, sub_err *e) {
    char num[32];
    int r;
    if (cg_is_v2()) {
        /* enable the controllers for the root's children (fails harmlessly when already on) */
        (void)write_str("/sys/fs/cgroup/cgroup.subtree_control", "+memory");
        (void)write_str("/sys/fs/cgroup/cgroup.subtree_control", "+pids");
        _cleanup_free_ char *dir = xasprintf("/sys/fs/cgroup/" SUB_JAIL_CGROUP_PREFIX "%s", o->id);
        if ((r = cg_mkdir(j, dir, e)) < 0) return r;
        if (o->memory_bytes) {
            snprintf(num, sizeof num, "%llu", (unsigned long long)o->memory_bytes);
            if ((r = cg_set(dir, "memory.max", num, false, e)) < 0) return r;
            if ((r = cg_set(dir, "memory.swap.max", "0", true, e)) < 0) return r;
        }
        if (o->pids_max) {
            snprintf(num, sizeof num, "%u", o->pids_max);
            if ((r = cg_set(dir, "pids.max", num, false, e)) < 0) return r;
        }
        return 0;
    }
    _cleanup_free_ char *mem = NULL, *pids = NULL;
    cg_v1_mounts(&mem, &pids);
    if ((!mem && o->memory_bytes) || (!pids && o->pids_max) || (!mem && !pids))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOTSUP,
                            "jail: no cgroup %s controller is mounted (neither /sys/fs/cgroup as "
                            "cgroup2 nor a cgroup v1 hierarchy with it in /proc/self/mountinfo)",
                            !mem && o->memory_bytes ? "memory" : "pids");
    if (mem) {
        _cleanup_free_ char *dir = xasprintf("%s/" SUB_JAIL_CGROUP_PREFIX "%s", mem, o->id);
        if ((r = cg_mkdir(j, dir, e)) < 0) return r;
        if (o->memory_bytes) {
            snprintf(num, sizeof num, "%llu", (unsigned long long)o->memory_bytes);
            if ((r = cg_set(dir, "memory.limit_in_bytes", num, false, e)) < 0) return r;
            if ((r = cg_set(dir, "memory.memsw.limit_in_bytes", num, true, e)) < 0) return r;
        }
    }
    if (pids) {
        _cleanup_free_ char *dir = xasprintf("%s/" SUB_JAIL_CGROUP_PREFIX "%s", pids, o->id);
        if ((r = cg_mkdir(j, dir, e)) < 0) return r;
        if (o->pids_max) {
            snprintf(num, sizeof num, "%u", o->pids_max);
            if ((r = cg_set(dir, "pids.max", num, false, e)) < 0) return r;
        }
    }
    return 0;
}

/* The pids in dir/cgroup.procs (up to max); -errno when unreadable. */
static int cg_procs(const char *dir, pid_t *out, int max) {
    _cleanup_free_ char *p = xasprintf("%s/cgroup.procs", dir);
    _cleanup_fclose_ FILE *f = fopen(p, "re");
    if (!f) return -errno;
    int n = 0;
    long v;
    while (n < max && fscanf(f, "%ld", &v) == 1) out[n++] = (pid_t)v;
    return n;
}

static bool cg_has(const char *dir, pid_t pid) {
    pid_t v[1024];
    int n = cg_procs(dir, v, (int)ARRAY_SIZE(v));
    for (int i = 0; i < n; i++)
        if (v[i] == pid) return true;
    return false;
}

/* SIGKILL every process in dir until it is empty (bounded). Each pid is
 * pinned with a pidfd and checked to be in the group still before the
 * signal, so a reused pid is never hit. */
static int cg_kill_all(const char *dir, sub_err *e) {
    _cleanup_free_ char *killf = xasprintf("%s/cgroup.kill", dir);
    if (access(killf, F_OK) == 0) (void)write_str(killf, "1");
    int64_t end = t2_now_ms() + KILL_WAIT_MS;
    for (;;) {
        pid_t v[1024];
        int n = cg_procs(dir, v, (int)ARRAY_SIZE(v));
        if (n == -ENOENT || n == 0) return 0;
        if (n < 0) return sub_err_set(e, n, "jail: reading %s/cgroup.procs: %s", dir, strerror(-n));
        if (t2_now_ms() > end)
            return sub_err_setk(e, SUB_KIND_ENV, -EBUSY,
                                "jail: cgroup %s still holds pid %d after SIGKILL for %d ms", dir,
                                (int)v[0], KILL_WAIT_MS);
        for (int i = 0; i < n; i++) {
            int fd = (int)syscall(SYS_pidfd_open, v[i], 0);
            if (fd < 0) continue;
            if (cg_has(dir, v[i])) (void)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
            close(fd);
        }
        sleep_ms(10);
    }
}

static int cg_rmdir(const char *dir, sub_err *e) {
    int64_t end = t2_now_ms() + RMDIR_WAIT_MS;
    while (rmdir(dir) < 0) {
        if (errno == ENOENT) return 0;
        if (errno != EBUSY || t2_now_ms() > end)
            return sub_err_setk(e, SUB_KIND_ENV, -errno, "jail: cannot remove cgroup %s: %m", dir);
        sleep_ms(10);
    }
    return 0;
}

/* ---- spawn / destroy --------------------------------------------------------------------- */

static int check_opts(const sub_jail_opts *o, sub_err *e) {
    if (!o || !valid_id(o->id))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "jail: job id \"%s\" must be 1-64 characters of [a-z0-9-]",
                            o && o->id ? o->id : "(null)");
    if (!o->argv || !o->argv[0] || o->argv[0][0] != '/')
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "jail: argv[0] must be an absolute path");
    struct stat st;
    if (!o->root_dir || o->root_dir[0] != '/' || stat(o->root_dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
        streq(o->root_dir, "/"))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "jail: root_dir %s must be an existing directory (an absolute path, not /)",
                            o->root_dir ? o->root_dir : "(null)");
    if (o->uid == 0 || o->gid == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "jail: the job's uid and gid must not be 0");
    for (size_t i = 0; i < o->nfds; i++)
        if (o->fds[i] < 3 || fcntl(o->fds[i], F_GETFD) < 0)
            return sub_err_setk(e, SUB_KIND_INPUT, -EBADF,
                                "jail: passed fd %d must be an open descriptor >= 3", o->fds[i]);
    if (geteuid() != 0)
        return sub_err_setk(e, SUB_KIND_ENV, -EPERM, "jail: needs root (namespaces, mounts, cgroups)");
    return 0;
}

static int read_last_cap(void) {
    char buf[16] = {0};
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 63;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? atoi(buf) : 63;
}

static void plan_keep(plan *p, const sub_jail_opts *o) {
    p->keep = xcalloc(o->nfds + 6, sizeof(int));
    if (p->exec_fd >= 0) p->keep[p->nkeep++] = p->exec_fd;
    p->keep[p->nkeep++] = 0;
    p->keep[p->nkeep++] = 1;
    p->keep[p->nkeep++] = 2;
    p->keep[p->nkeep++] = p->errfd;
    p->keep[p->nkeep++] = p->syncfd;
    for (size_t i = 0; i < o->nfds; i++) p->keep[p->nkeep++] = o->fds[i];
    qsort(p->keep, p->nkeep, sizeof(int), cmp_int);
    size_t w = 0;
    for (size_t i = 0; i < p->nkeep; i++)
        if (w == 0 || p->keep[w - 1] != p->keep[i]) p->keep[w++] = p->keep[i];
    p->nkeep = w;
}

/* Undo a spawn that failed after the child or the cgroups exist. */
static void spawn_abort(sub_jail *j) {
    if (j->pidfd >= 0) (void)syscall(SYS_pidfd_send_signal, j->pidfd, SIGKILL, NULL, 0);
    else if (j->pid > 0) (void)kill(j->pid, SIGKILL);
    sub_err ignored = {0};
    (void)sub_jail_destroy(j, NULL, &ignored);
    sub_jail_done(j);
    *j = (sub_jail){.pidfd = -1};
}

int sub_jail_spawn(const sub_jail_opts *o, sub_jail *out, sub_err *e) {
    *out = (sub_jail){.pidfd = -1};
    int r = check_opts(o, e);
    if (r < 0) return r;
    _cleanup_(plan_done) plan p = {.o = o, .errfd = -1, .syncfd = -1, .exec_fd = -1};
    if ((r = plan_build(&p, o, e)) < 0) return r;
    p.last_cap = read_last_cap();
    sub_jail j = {.pidfd = -1};
    if ((r = cg_create(o, &j, e)) < 0) {
        spawn_abort(&j);
        return r;
    }
    int errp[2], syncp[2];
    if (pipe2(errp, O_CLOEXEC) < 0) {
        r = sub_err_set(e, -errno, "jail: pipe: %m");
        spawn_abort(&j);
        return r;
    }
    if (pipe2(syncp, O_CLOEXEC) < 0) {
        r = sub_err_set(e, -errno, "jail: pipe: %m");
        close(errp[0]);
        close(errp[1]);
        spawn_abort(&j);
        return r;
    }
    _cleanup_close_ int err_rd = errp[0], sync_wr = syncp[1];
    p.errfd = errp[1];
    p.syncfd = syncp[0];
    plan_keep(&p, o);
    unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
    if (o->netns_fd < 0) flags |= CLONE_NEWNET;
    /* no signal handler of ours may run in the child before it resets them */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) child_main(&p);
    int cerr = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(errp[1]);
    close(syncp[0]);
    if (pid < 0) {
        r = sub_err_setk(e, SUB_KIND_ENV, -cerr, "jail: clone (new mount, pid, net, ipc, uts namespaces): %s",
                         strerror(cerr));
        spawn_abort(&j);
        return r;
    }
    j.pid = pid;
    sub_residue_add_child(pid);
    j.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (char **d = j.cgroup_dirs; d && *d; d++) {
        char num[32];
        snprintf(num, sizeof num, "%d", (int)pid);
        if ((r = cg_set(*d, "cgroup.procs", num, false, e)) < 0) {
            spawn_abort(&j);
            return r;
        }
    }
    if (write(sync_wr, "g", 1) != 1) {
        r = sub_err_set(e, -errno, "jail: waking the child: %m");
        spawn_abort(&j);
        return r;
    }
    child_report rep;
    ssize_t n;
    do n = read(err_rd, &rep, sizeof rep);
    while (n < 0 && errno == EINTR);
    if (n != 0) {
        if (n == (ssize_t)sizeof rep) {
            rep.step[sizeof rep.step - 1] = rep.arg[sizeof rep.arg - 1] = 0;
            r = sub_err_setk(e, SUB_KIND_ENV, rep.err > 0 ? -rep.err : -EIO, "jail: %s%s%s: %s (%s)",
                             rep.step, rep.arg[0] ? " " : "", rep.arg, errname(rep.err),
                             strerror(rep.err));
        } else {
            r = sub_err_setk(e, SUB_KIND_ENV, -EIO, "jail: the child's setup report was cut short");
        }
        spawn_abort(&j);
        return r;
    }
    /* EOF: the exec happened (a setup failure always sends a report first) */
    *out = j;
    return 0;
}

int sub_jail_destroy(sub_jail *j, int *status, sub_err *e) {
    if (status) *status = -1;
    if (!j) return 0;
    int ret = 0;
    if (j->pid > 0) {
        if (j->pidfd >= 0) {
            (void)syscall(SYS_pidfd_send_signal, j->pidfd, SIGKILL, NULL, 0);
            struct pollfd pf = {.fd = j->pidfd, .events = POLLIN};
            (void)poll(&pf, 1, KILL_WAIT_MS);
        } else {
            siginfo_t si = {0};
            if (waitid(P_PID, (id_t)j->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0)
                (void)kill(j->pid, SIGKILL); /* still our live, unreaped child: the pid is its own */
        }
        int st;
        pid_t w = waitpid(j->pid, &st, j->pidfd >= 0 ? WNOHANG : 0);
        if (w == j->pid) {
            if (status) *status = st;
            sub_residue_forget_child(j->pid);
            j->pid = 0;
        } else if (w < 0 && errno == ECHILD) {
            sub_residue_forget_child(j->pid);
            j->pid = 0; /* reaped by the caller */
        } else {
            ret = sub_err_setk(e, SUB_KIND_ENV, -EBUSY, "jail: pid %d did not die within %d ms of SIGKILL",
                               (int)j->pid, KILL_WAIT_MS);
        }
    }
    size_t w = 0;
    for (size_t i = 0; j->cgroup_dirs && j->cgroup_dirs[i]; i++) {
        char *d = j->cgroup_dirs[i];
        int r = cg_kill_all(d, ret < 0 ? NULL : e);
        if (r == 0) r = cg_rmdir(d, ret < 0 ? NULL : e);
        if (r < 0) {
            if (ret == 0) ret = r;
            j->cgroup_dirs[w++] = d; /* kept: a later call retries */
        } else {
            free(d);
        }
    }
    if (j->cgroup_dirs) j->cgroup_dirs[w] = NULL;
    if (ret == 0 && j->pidfd >= 0) {
        close(j->pidfd);
        j->pidfd = -1;
    }
    return ret;
}

/* What a dead runner left of the jail with this id: its cgroups (each
 * hierarchy's substrate-job-<id>), emptied with SIGKILL and removed. */
int sub_jail_cleanup_id(const char *id, int *killed, char ***dirs, sub_err *e) {
    if (killed) *killed = 0;
    if (!valid_id(id)) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "jail: invalid id \"%s\"", id);
    char **v = NULL;
    if (cg_is_v2()) {
        strv_push(&v, "/sys/fs/cgroup/" SUB_JAIL_CGROUP_PREFIX);
    } else {
        _cleanup_free_ char *mem = NULL, *pids = NULL;
        cg_v1_mounts(&mem, &pids);
        if (mem) {
            _cleanup_free_ char *d = xasprintf("%s/" SUB_JAIL_CGROUP_PREFIX, mem);
            strv_push(&v, d);
        }
        if (pids) {
            _cleanup_free_ char *d = xasprintf("%s/" SUB_JAIL_CGROUP_PREFIX, pids);
            strv_push(&v, d);
        }
    }
    int ret = 0;
    for (char **p = v; p && *p; p++) {
        char *d = xasprintf("%s%s", *p, id);
        free(*p);
        *p = d;
        pid_t pv[1024];
        int n = cg_procs(d, pv, (int)ARRAY_SIZE(pv));
        if (n == -ENOENT) continue;
        if (n > 0 && killed) *killed += n;
        int r = cg_kill_all(d, e);
        if (r == 0) r = cg_rmdir(d, e);
        if (r < 0 && ret == 0) ret = r;
    }
    if (dirs) *dirs = v;
    else strv_free(v);
    return ret;
}

void sub_jail_done(sub_jail *j) {
    if (!j) return;
    strv_free(j->cgroup_dirs);
    j->cgroup_dirs = NULL;
    if (j->pidfd >= 0) close(j->pidfd);
    j->pidfd = -1;
}

/* ---- uids -------------------------------------------------------------------------------- */

int sub_jail_uid_processes(uid_t uid, pid_t *first, sub_err *e) {
    if (first) *first = 0;
    DIR *d = opendir("/proc");
    if (!d) return sub_err_set(e, -errno, "jail: opening /proc: %m");
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0])) continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
        FILE *f = fopen(path, "re");
        if (!f) continue;
        unsigned long ru, eu;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Uid: %lu %lu", &ru, &eu) == 2) {
                if (ru == uid || eu == uid) {
                    if (first && !*first) *first = (pid_t)atol(de->d_name);
                    count++;
                }
                break;
            }
        fclose(f);
    }
    closedir(d);
    return count;
}

static int uid_base(uid_t *base, sub_err *e) {
    const char *s = getenv("SUBSTRATE_JOB_UID_BASE");
    *base = SUB_JOB_UID_BASE;
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v == 0 || v + SUB_JOB_UID_COUNT > 0xfffffffeULL)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "SUBSTRATE_JOB_UID_BASE=%s: want a number from 1 to %llu", s,
                            0xfffffffeULL - SUB_JOB_UID_COUNT);
    *base = (uid_t)v;
    return 0;
}

int sub_jail_uid_acquire(const char *state_dir, uid_t *uid, int *lock_fd, sub_err *e) {
    uid_t base;
    int r = uid_base(&base, e);
    if (r < 0) return r;
    _cleanup_free_ char *dir = sub_path_join(state_dir, "uids");
    if ((r = sub_mkdir_p(dir, 0700, e)) < 0) return r;
    for (uid_t i = 0; i < SUB_JOB_UID_COUNT; i++) {
        uid_t u = base + i;
        char name[32];
        snprintf(name, sizeof name, "%u.lock", (unsigned)u);
        _cleanup_free_ char *path = sub_path_join(dir, name);
        _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) return sub_err_set(e, -errno, "jail: opening %s: %m", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno == EWOULDBLOCK) continue;
            return sub_err_set(e, -errno, "jail: locking %s: %m", path);
        }
        r = sub_jail_uid_processes(u, NULL, e);
        if (r < 0) return r;
        if (r > 0) continue; /* a leftover process of a dead job still runs as u */
        *uid = u;
        *lock_fd = TAKE_FD(fd);
        return 0;
    }
    return sub_err_setk(e, SUB_KIND_ENV, -EAGAIN,
                        "jail: all %u job uids from %u are in use (held under %s, or owning processes)",
                        SUB_JOB_UID_COUNT, (unsigned)base, dir);
}
