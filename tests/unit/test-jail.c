/* The VMM jail (jail.h), checked from the parent's side: /proc/<pid>/status,
 * namespaces, cgroup files, what the jailed program prints about its view
 * (static /usr/bin/busybox from busybox-static), and that destroy leaves no
 * cgroup, process or mount. The last test boots the real qemu in the jail.
 * Needs root and namespaces; skips with the reason otherwise. */
#include "unit.h"
#include "substrate/fs.h"
#include "substrate/jail.h"
#include "substrate/vmimage.h"
#include "substrate/proc.h"
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define BUSYBOX "/usr/bin/busybox"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Root, the namespaces the jail makes, and busybox; otherwise skip. */
static bool jail_possible(void) {
    if (geteuid() != 0) {
        unit_skip("needs root (namespaces, mounts, cgroups)");
        return false;
    }
    if (access(BUSYBOX, X_OK) < 0) {
        unit_skip(BUSYBOX " (busybox-static) is not installed");
        return false;
    }
    pid_t p = fork();
    if (p == 0) _exit(unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) < 0);
    int st = -1;
    if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        unit_skip("new mount/pid/ipc/uts/net namespaces are refused here");
        return false;
    }
    return true;
}

static char *read_text(const char *path) {
    char *s = NULL;
    size_t n;
    if (sub_read_file(path, 1 << 20, &s, &n, NULL) < 0) return xstrdup("");
    return s;
}

/* The value of "Key:" in /proc/<pid>/status, whitespace squeezed to single spaces. */
static char *status_field(pid_t pid, const char *key) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    _cleanup_free_ char *s = read_text(path);
    _cleanup_free_ char *k = xasprintf("\n%s:", key);
    char *p = strstr(s, k);
    if (!p) return xstrdup("(missing)");
    p += strlen(k);
    char out[256];
    size_t o = 0;
    bool sp = false;
    for (; *p && *p != '\n' && o < sizeof out - 2; p++) {
        if (*p == ' ' || *p == '\t') {
            sp = o > 0;
            continue;
        }
        if (sp) out[o++] = ' ';
        sp = false;
        out[o++] = *p;
    }
    out[o] = 0;
    return xstrdup(out);
}

static bool ns_differs(pid_t pid, const char *ns) {
    char a[128], b[128], pa[64], pb[64];
    snprintf(pa, sizeof pa, "/proc/%d/ns/%s", (int)pid, ns);
    snprintf(pb, sizeof pb, "/proc/self/ns/%s", ns);
    ssize_t na = readlink(pa, a, sizeof a - 1), nb = readlink(pb, b, sizeof b - 1);
    if (na <= 0 || nb <= 0) return false;
    a[na] = b[nb] = 0;
    return strcmp(a, b) != 0;
}

/* Read fd into *buf until `until` shows up, EOF, or the deadline. */
static void read_until(int fd, char **buf, const char *until, int ms) {
    size_t len = *buf ? strlen(*buf) : 0;
    int64_t end = now_ms() + ms;
    while (!(until && *buf && strstr(*buf, until))) {
        int left = (int)(end - now_ms());
        if (left <= 0) break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, left) <= 0) break;
        char tmp[4096];
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n <= 0) break;
        *buf = xrealloc(*buf, len + (size_t)n + 1);
        memcpy(*buf + len, tmp, (size_t)n);
        len += (size_t)n;
        (*buf)[len] = 0;
    }
}

static bool mountinfo_mentions(const char *path) {
    _cleanup_free_ char *mi = read_text("/proc/self/mountinfo");
    return strstr(mi, path) != NULL;
}

static char *make_root(const char *name) {
    char *root = xasprintf("%s/%s", unit_tmpdir(), name);
    CHECK(mkdir(root, 0755) == 0);
    return root;
}

TEST(jail_uid_allocator) {
    char base_s[32];
    snprintf(base_s, sizeof base_s, "%u", 1700000000u + (unsigned)(getpid() % 1000) * 2048u);
    setenv("SUBSTRATE_JOB_UID_BASE", base_s, 1);
    uid_t base = (uid_t)strtoul(base_s, NULL, 10);
    sub_err e = {0};
    uid_t u1 = 0, u2 = 0, u3 = 0;
    int l1 = -1, l2 = -1, l3 = -1;
    CHECK_OK(sub_jail_uid_acquire(unit_tmpdir(), &u1, &l1, &e), &e);
    CHECK_OK(sub_jail_uid_acquire(unit_tmpdir(), &u2, &l2, &e), &e);
    CHECK_INT(u1, base);
    CHECK_INT(u2, base + 1);
    close(l1); /* the slot frees itself */
    CHECK_OK(sub_jail_uid_acquire(unit_tmpdir(), &u3, &l3, &e), &e);
    CHECK_INT(u3, u1);
    close(l3);
    /* a uid that still owns a process is skipped, even with its lock free */
    if (geteuid() == 0) {
        int pfd[2];
        CHECK(pipe(pfd) == 0);
        pid_t p = fork();
        if (p == 0) {
            close(pfd[1]);
            if (setresuid(base, base, base) < 0) _exit(1);
            char c;
            (void)!read(pfd[0], &c, 1); /* until the test closes its end */
            _exit(0);
        }
        close(pfd[0]);
        int64_t end = now_ms() + 5000;
        while (sub_jail_uid_processes(base, NULL, &e) < 1 && now_ms() < end) sleep_ms(5);
        pid_t first = 0;
        CHECK_INT(sub_jail_uid_processes(base, &first, &e), 1);
        CHECK_INT(first, p);
        CHECK_OK(sub_jail_uid_acquire(unit_tmpdir(), &u3, &l3, &e), &e);
        CHECK_INT(u3, base + 2);
        close(l3);
        close(pfd[1]);
        waitpid(p, NULL, 0);
        CHECK_INT(sub_jail_uid_processes(base, NULL, &e), 0);
    } else {
        unit_skip_part("a uid owning a process is skipped", "needs root to run as another uid");
    }
    close(l2);
    setenv("SUBSTRATE_JOB_UID_BASE", "12abc", 1);
    CHECK_FAILS(sub_jail_uid_acquire(unit_tmpdir(), &u3, &l3, &e), -EINVAL);
    unsetenv("SUBSTRATE_JOB_UID_BASE");
}

TEST(jail_busybox_view) {
    if (!jail_possible()) return;
    sub_err e = {0};
    uid_t uid;
    _cleanup_close_ int lock = -1;
    CHECK_OK(sub_jail_uid_acquire(unit_tmpdir(), &uid, &lock, &e), &e);
    _cleanup_free_ char *root = make_root("root");
    int out[2], side[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0 && pipe2(side, O_CLOEXEC) == 0);
    /* pass the side pipe at a number of its own, close-on-exec (the jail clears that) */
    int passed = fcntl(side[1], F_DUPFD_CLOEXEC, 40);
    close(side[1]);
    char id[32];
    snprintf(id, sizeof id, "unit-%d", (int)getpid());
    _cleanup_free_ char *script = xasprintf(
        "busybox ls -a1 /; echo ---; busybox ls -1 /dev; echo ---;"
        "busybox touch /x 2>&1; busybox mkdir /dev/x 2>&1;"
        "if [ -e /etc/passwd ]; then echo passwd-visible; else echo no-passwd; fi;"
        "echo via-fd >&%d; echo host=$(busybox hostname); echo READY;"
        "exec busybox sleep 60",
        passed);
    char *argv[] = {BUSYBOX, "sh", "-c", script, NULL};
    sub_jail_opts o = {.id = id, .root_dir = root, .uid = uid, .gid = uid, .argv = argv,
                       .fds = &passed, .nfds = 1, .stdout_fd = out[1], .stderr_fd = out[1],
                       .memory_bytes = 64u << 20, .pids_max = 16, .netns_fd = -1};
    sub_jail j;
    CHECK_OK(sub_jail_spawn(&o, &j, &e), &e);
    close(out[1]);
    close(passed);
    if (e.code) {
        close(out[0]);
        close(side[0]);
        return;
    }
    _cleanup_free_ char *text = NULL, *viafd = NULL;
    read_until(out[0], &text, "READY\n", 10000);
    read_until(side[0], &viafd, "\n", 2000);
    CHECK(text && strstr(text, "READY\n"));
    /* what it sees: only the skeleton, read-only, no host /etc */
    CHECK(text && str_has_prefix(text, ".\n..\ndev\nusr\n---\nnull\nrandom\nurandom\nzero\n---\n"));
    CHECK(text && strstr(text, "touch: /x: Read-only file system\n"));
    CHECK(text && strstr(text, "mkdir: can't create directory '/dev/x': Read-only file system\n"));
    CHECK(text && strstr(text, "no-passwd\n"));
    CHECK(text && strstr(text, "host=job\n"));
    CHECK_STREQ(viafd, "via-fd\n");
    /* how it runs, from our side */
    pid_t pid = j.pid;
    char ids[64];
    snprintf(ids, sizeof ids, "%u %u %u %u", uid, uid, uid, uid);
    static const char *const zero_caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    char *v;
    CHECK_STREQ(v = status_field(pid, "Uid"), ids);
    free(v);
    CHECK_STREQ(v = status_field(pid, "Gid"), ids);
    free(v);
    CHECK_STREQ(v = status_field(pid, "Groups"), "");
    free(v);
    for (size_t i = 0; i < ARRAY_SIZE(zero_caps); i++) {
        CHECK_STREQ(v = status_field(pid, zero_caps[i]), "0000000000000000");
        free(v);
    }
    CHECK_STREQ(v = status_field(pid, "NoNewPrivs"), "1");
    free(v);
    char nspid[32];
    snprintf(nspid, sizeof nspid, "%d 1", (int)pid);
    CHECK_STREQ(v = status_field(pid, "NSpid"), nspid);
    free(v);
    static const char *const nss[] = {"mnt", "pid", "net", "ipc", "uts"};
    for (size_t i = 0; i < ARRAY_SIZE(nss); i++)
        if (!ns_differs(pid, nss[i])) unit_fail(__FILE__, __LINE__, "namespace %s is the host's", nss[i]);
    char path[128];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    _cleanup_free_ char *cg = read_text(path);
    _cleanup_free_ char *cgname = xasprintf("/" SUB_JAIL_CGROUP_PREFIX "%s\n", id);
    CHECK(strstr(cg, cgname) != NULL);
    size_t ndirs = strv_len(j.cgroup_dirs);
    CHECK(ndirs >= 1);
    bool saw_mem = false, saw_pids = false;
    for (size_t i = 0; i < ndirs; i++) {
        _cleanup_free_ char *pp = xasprintf("%s/cgroup.procs", j.cgroup_dirs[i]);
        _cleanup_free_ char *procs = read_text(pp);
        snprintf(path, sizeof path, "%d\n", (int)pid);
        CHECK_STREQ(procs, path); /* it alone */
        _cleanup_free_ char *mf = xasprintf("%s/memory.limit_in_bytes", j.cgroup_dirs[i]);
        _cleanup_free_ char *mf2 = xasprintf("%s/memory.max", j.cgroup_dirs[i]);
        _cleanup_free_ char *pf = xasprintf("%s/pids.max", j.cgroup_dirs[i]);
        if (sub_path_exists(mf) || sub_path_exists(mf2)) {
            _cleanup_free_ char *m = read_text(sub_path_exists(mf) ? mf : mf2);
            CHECK_STREQ(m, "67108864\n");
            saw_mem = true;
        }
        if (sub_path_exists(pf)) {
            _cleanup_free_ char *m = read_text(pf);
            CHECK_STREQ(m, "16\n");
            saw_pids = true;
        }
    }
    CHECK(saw_mem && saw_pids);
    CHECK(!mountinfo_mentions(root)); /* its mounts are not ours */
    snprintf(path, sizeof path, "/proc/%d/mountinfo", (int)pid);
    _cleanup_free_ char *mi = read_text(path);
    CHECK(strstr(mi, " / / ro,nosuid,nodev") != NULL); /* its root: the read-only tmpfs */
    /* destroy: group killed, reaped, nothing left */
    char **dirs = NULL;
    for (size_t i = 0; i < ndirs; i++) strv_push(&dirs, j.cgroup_dirs[i]);
    int st = 0;
    CHECK_OK(sub_jail_destroy(&j, &st, &e), &e);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    for (size_t i = 0; dirs && dirs[i]; i++) CHECK(!sub_path_exists(dirs[i]));
    strv_free(dirs);
    CHECK_INT(sub_jail_uid_processes(uid, NULL, &e), 0);
    CHECK(!mountinfo_mentions(root));
    CHECK(kill(pid, 0) < 0 && errno == ESRCH);
    CHECK_OK(sub_jail_destroy(&j, &st, &e), &e); /* idempotent */
    CHECK_INT(st, -1);
    sub_jail_done(&j);
    close(out[0]);
    close(side[0]);
}

TEST(jail_setup_failure_names_the_step) {
    if (!jail_possible()) return;
    sub_err e = {0};
    _cleanup_free_ char *root = make_root("root-fail");
    char id[32];
    snprintf(id, sizeof id, "unit-fail-%d", (int)getpid());
    const char *ro[] = {"/nonexistent-substrate-jail-test/kernel", NULL};
    char *argv[] = {BUSYBOX, "true", NULL};
    sub_jail_opts o = {.id = id, .root_dir = root, .uid = SUB_JOB_UID_BASE + 1023, .gid = SUB_JOB_UID_BASE + 1023,
                       .argv = argv, .ro_paths = ro, .stdout_fd = -1, .stderr_fd = -1,
                       .memory_bytes = 64u << 20, .pids_max = 8, .netns_fd = -1};
    sub_jail j;
    CHECK_FAILS(sub_jail_spawn(&o, &j, &e), -ENOENT);
    CHECK(strstr(e.msg, "jail: bind-mount /nonexistent-substrate-jail-test/kernel: ENOENT") != NULL);
    CHECK(j.pid == 0 && j.pidfd == -1 && j.cgroup_dirs == NULL);
    _cleanup_free_ char *cgname = xasprintf(SUB_JAIL_CGROUP_PREFIX "%s", id);
    static const char *const hier[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"};
    for (size_t i = 0; i < ARRAY_SIZE(hier); i++) {
        _cleanup_free_ char *d = xasprintf("%s/%s", hier[i], cgname);
        CHECK(!sub_path_exists(d));
    }
    CHECK(!mountinfo_mentions(root));
    CHECK_INT(sub_jail_uid_processes(SUB_JOB_UID_BASE + 1023, NULL, &e), 0);
    /* bad input is refused before anything is made */
    o.ro_paths = NULL;
    o.id = "Bad_Id";
    CHECK_FAILS(sub_jail_spawn(&o, &j, &e), -EINVAL);
    o.id = id;
    o.uid = 0;
    CHECK_FAILS(sub_jail_spawn(&o, &j, &e), -EINVAL);
}

/* The runner dies without destroy: the jailed program dies with it. */
TEST(jail_dies_with_its_runner) {
    if (!jail_possible()) return;
    sub_err e = {0};
    _cleanup_free_ char *root = make_root("root-pdeath");
    char id[32];
    snprintf(id, sizeof id, "unit-pdeath-%d", (int)getpid());
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0); /* the orphan comes back to us */
    int pfd[2];
    CHECK(pipe2(pfd, O_CLOEXEC) == 0);
    pid_t runner = fork();
    if (runner == 0) {
        close(pfd[0]);
        char *argv[] = {BUSYBOX, "sleep", "60", NULL};
        sub_jail_opts o = {.id = id, .root_dir = root, .uid = SUB_JOB_UID_BASE + 1022,
                           .gid = SUB_JOB_UID_BASE + 1022, .argv = argv, .stdout_fd = -1,
                           .stderr_fd = -1, .pids_max = 4, .netns_fd = -1};
        sub_jail j;
        sub_err ce = {0};
        if (sub_jail_spawn(&o, &j, &ce) < 0) {
            dprintf(pfd[1], "ERR %s\n", ce.msg);
            _exit(1);
        }
        dprintf(pfd[1], "%d\n", (int)j.pid);
        for (char **d = j.cgroup_dirs; *d; d++) dprintf(pfd[1], "%s\n", *d);
        _exit(0); /* no destroy */
    }
    close(pfd[1]);
    _cleanup_free_ char *msg = NULL;
    read_until(pfd[0], &msg, NULL, 10000);
    close(pfd[0]);
    waitpid(runner, NULL, 0);
    CHECK(msg && !str_has_prefix(msg, "ERR"));
    pid_t pid = msg ? (pid_t)atoi(msg) : 0;
    CHECK(pid > 0);
    if (pid > 0) {
        int st = 0;
        pid_t w = 0;
        int64_t end = now_ms() + 5000;
        while ((w = waitpid(pid, &st, WNOHANG)) == 0 && now_ms() < end) sleep_ms(10);
        CHECK_INT(w, pid);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        if (w != pid) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) == 0);
    /* the runner's cgroups stay behind; a destroy from their names removes them */
    sub_jail j = {.pidfd = -1};
    char *save = NULL;
    for (char *l = msg ? strtok_r(msg, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save))
        if (l[0] == '/') strv_push(&j.cgroup_dirs, l);
    CHECK(j.cgroup_dirs != NULL);
    char **dirs = NULL;
    for (char **d = j.cgroup_dirs; d && *d; d++) strv_push(&dirs, *d);
    CHECK_OK(sub_jail_destroy(&j, NULL, &e), &e);
    for (char **d = dirs; d && *d; d++) CHECK(!sub_path_exists(*d));
    strv_free(dirs);
    sub_jail_done(&j);
}

/* qemu boots a microVM from inside the jail and powers off (TCG, ~2-4 s). */
/* A static /init that says so and powers the VM off (built here with cc). */
static char *tiny_init(void) {
    static const char src[] = "#include <stdio.h>\n#include <sys/reboot.h>\n#include <unistd.h>\n"
                              "int main(void) { printf(\"tiny-init ran\\n\"); fflush(stdout); sync();"
                              " reboot(RB_POWER_OFF); return 1; }\n";
    _cleanup_free_ char *c = xasprintf("%s/tiny-init.c", unit_tmpdir());
    char *bin = xasprintf("%s/tiny-init", unit_tmpdir());
    sub_err e = {0};
    if (sub_write_file_atomic(c, src, strlen(src), 0644, &e) < 0) return bin;
    char *argv[] = {"cc", "-static", "-O1", "-o", bin, c, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    int st = -1;
    (void)sub_run(argv, &po, &st, &e);
    return bin;
}

TEST(jail_qemu_boots) {
    if (!jail_possible()) return;
    if (access("/usr/bin/qemu-system-x86_64", X_OK) < 0) {
        unit_skip("qemu-system-x86_64 is not installed");
        return;
    }
    _cleanup_free_ char *cache = xasprintf("%s/vmcache", unit_tmpdir());
    sub_vm_kernel k = {0};
    sub_err ke = {0};
    if (sub_vm_kernel_prepare(cache, &k, &ke) < 0) {
        sub_vm_kernel_done(&k);
        unit_skip("no kernel to boot (linux-image-amd64)");
        return;
    }
    _cleanup_free_ char *init = tiny_init();
    _cleanup_free_ char *initrd = NULL;
    unsigned long khz = 0;
    CHECK_OK(sub_vm_tsc_khz(cache, &khz, &ke), &ke);
    CHECK_OK(sub_vm_initramfs_prepare(cache, &k, init, NULL, &initrd, &ke), &ke);
    _cleanup_free_ char *kernel = xstrdup(k.vmlinux);
    sub_vm_kernel_done(&k);
    if (ke.code) return;
    _cleanup_free_ char *append =
        xasprintf("console=ttyS0 quiet tsc=reliable no_timer_check tsc_early_khz=%lu rdinit=/init panic=-1", khz);
    sub_err e = {0};
    uid_t uid;
    _cleanup_close_ int lock = -1;
    CHECK_OK(sub_jail_uid_acquire(unit_tmpdir(), &uid, &lock, &e), &e);
    _cleanup_free_ char *root = make_root("root-qemu");
    char id[32];
    snprintf(id, sizeof id, "unit-qemu-%d", (int)getpid());
    int out[2];
    CHECK(pipe2(out, O_CLOEXEC) == 0);
    char *argv[] = {"/usr/bin/qemu-system-x86_64", "-M", "microvm,acpi=on", "-accel", "tcg", "-m", "128",
                    "-nodefaults", "-no-reboot", "-display", "none", "-sandbox",
                    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
                    "-kernel", kernel, "-initrd", initrd, "-append", append, "-serial", "stdio", NULL};
    const char *ro[] = {kernel, initrd, NULL};
    sub_jail_opts o = {.id = id, .root_dir = root, .uid = uid, .gid = uid, .argv = argv, .ro_paths = ro,
                       .stdout_fd = out[1], .stderr_fd = out[1], .memory_bytes = 512u << 20,
                       .pids_max = 64, .netns_fd = -1};
    sub_jail j;
    int64_t t0 = now_ms();
    CHECK_OK(sub_jail_spawn(&o, &j, &e), &e);
    close(out[1]);
    if (e.code) {
        close(out[0]);
        return;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mountinfo", (int)j.pid);
    _cleanup_free_ char *mi = read_text(path);
    _cleanup_free_ char *text = NULL;
    read_until(out[0], &text, NULL, 60000); /* until qemu exits (EOF) */
    close(out[0]);
    struct pollfd pf = {.fd = j.pidfd, .events = POLLIN};
    CHECK(poll(&pf, 1, 10000) == 1);
    int64_t ms = now_ms() - t0;
    int st = -1;
    CHECK_OK(sub_jail_destroy(&j, &st, &e), &e);
    sub_jail_done(&j);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) || !text || !strstr(text, "tiny-init ran") ||
        !strstr(text, "reboot: Power down"))
        unit_fail(__FILE__, __LINE__, "qemu status 0x%x after %lld ms, output: %s", st, (long long)ms,
                  text ? text : "(none)");
    /* its root held the firmware and TCG module directories */
    CHECK(strstr(mi, " /usr/share/qemu ") && strstr(mi, " /usr/lib/x86_64-linux-gnu/qemu "));
    _cleanup_free_ char *kmnt = xasprintf(" %s ", kernel);
    CHECK(strstr(mi, " /lib64/ld-linux-x86-64.so.2 ") && strstr(mi, kmnt));
    CHECK(!mountinfo_mentions(root));
    CHECK_INT(sub_jail_uid_processes(uid, NULL, &e), 0);
    if (getenv("UNIT_JAIL_SHOW")) fprintf(stderr, "# qemu in the jail: %lld ms\n%s", (long long)ms, mi);
}

/* A child that holds a new network namespace until its pipe closes. */
static pid_t netns_holder(int *nsfd, int *keep) {
    int pfd[2], rfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0 || pipe2(rfd, O_CLOEXEC) < 0) return -1;
    pid_t p = fork();
    if (p == 0) {
        close(pfd[1]);
        close(rfd[0]);
        if (unshare(CLONE_NEWNET) < 0) _exit(1);
        (void)!write(rfd[1], "R", 1);
        char c;
        (void)!read(pfd[0], &c, 1);
        _exit(0);
    }
    close(pfd[0]);
    close(rfd[1]);
    char c = 0;
    (void)!read(rfd[0], &c, 1);
    close(rfd[0]);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)p);
    *nsfd = c == 'R' ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    *keep = pfd[1];
    return p;
}

TEST(jail_joins_the_given_netns) {
    if (!jail_possible()) return;
    sub_err e = {0};
    int nsfd = -1, keep = -1;
    pid_t holder = netns_holder(&nsfd, &keep);
    CHECK(holder > 0 && nsfd >= 0);
    _cleanup_free_ char *root = make_root("root-netns");
    char id[32];
    snprintf(id, sizeof id, "unit-netns-%d", (int)getpid());
    char *argv[] = {BUSYBOX, "sleep", "60", NULL};
    sub_jail_opts o = {.id = id, .root_dir = root, .uid = SUB_JOB_UID_BASE + 1021, .gid = SUB_JOB_UID_BASE + 1021,
                       .argv = argv, .stdout_fd = -1, .stderr_fd = -1, .pids_max = 4, .netns_fd = nsfd};
    sub_jail j;
    CHECK_OK(sub_jail_spawn(&o, &j, &e), &e);
    if (!e.code) {
        char a[128], b[128], pa[64], pb[64];
        snprintf(pa, sizeof pa, "/proc/%d/ns/net", (int)j.pid);
        snprintf(pb, sizeof pb, "/proc/%d/ns/net", (int)holder);
        ssize_t na = readlink(pa, a, sizeof a - 1), nb = readlink(pb, b, sizeof b - 1);
        CHECK(na > 0 && nb > 0);
        if (na > 0 && nb > 0) {
            a[na] = b[nb] = 0;
            CHECK_STREQ(a, b);
        }
        CHECK(ns_differs(j.pid, "net") && ns_differs(j.pid, "pid") && ns_differs(j.pid, "mnt"));
        CHECK_OK(sub_jail_destroy(&j, NULL, &e), &e);
        sub_jail_done(&j);
    }
    close(nsfd);
    close(keep);
    waitpid(holder, NULL, 0);
}

/* cgroup v2: this host is hybrid (memory and pids belong to v1), so a child
 * in a mount namespace of its own puts the v2 hierarchy (/sys/fs/cgroup/
 * unified) at /sys/fs/cgroup and runs a jail without limits there: the
 * group is made, holds the program, is emptied with cgroup.kill and removed. */
TEST(jail_cgroup_v2) {
    if (!jail_possible()) return;
    if (!sub_path_exists("/sys/fs/cgroup/unified/cgroup.procs")) {
        unit_skip("no cgroup v2 hierarchy at /sys/fs/cgroup/unified");
        return;
    }
    _cleanup_free_ char *root = make_root("root-v2");
    char id[32];
    snprintf(id, sizeof id, "unit-v2-%d", (int)getpid());
    _cleanup_free_ char *host_dir = xasprintf("/sys/fs/cgroup/unified/" SUB_JAIL_CGROUP_PREFIX "%s", id);
    int pfd[2];
    CHECK(pipe2(pfd, O_CLOEXEC) == 0);
    pid_t p = fork();
    if (p == 0) {
        close(pfd[0]);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("/sys/fs/cgroup/unified", "/sys/fs/cgroup", NULL, MS_BIND, NULL) < 0) {
            dprintf(pfd[1], "setup: %m\n");
            _exit(1);
        }
        char *argv[] = {BUSYBOX, "sleep", "60", NULL};
        sub_jail_opts o = {.id = id, .root_dir = root, .uid = SUB_JOB_UID_BASE + 1020,
                           .gid = SUB_JOB_UID_BASE + 1020, .argv = argv, .stdout_fd = -1,
                           .stderr_fd = -1, .netns_fd = -1};
        sub_jail j;
        sub_err ce = {0};
        if (sub_jail_spawn(&o, &j, &ce) < 0) {
            dprintf(pfd[1], "spawn: %s\n", ce.msg);
            _exit(1);
        }
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/cgroup", (int)j.pid);
        char *cg = read_text(path);
        dprintf(pfd[1], "dirs=%s%s\ncgroup:\n%s", j.cgroup_dirs[0], j.cgroup_dirs[1] ? " +more" : "", cg);
        free(cg);
        int st = 0;
        if (sub_jail_destroy(&j, &st, &ce) < 0) dprintf(pfd[1], "destroy: %s\n", ce.msg);
        dprintf(pfd[1], "killed=%d\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        sub_jail_done(&j);
        _exit(0);
    }
    close(pfd[1]);
    _cleanup_free_ char *msg = NULL;
    read_until(pfd[0], &msg, NULL, 20000);
    close(pfd[0]);
    int st = -1;
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    _cleanup_free_ char *want_dirs = xasprintf("dirs=/sys/fs/cgroup/" SUB_JAIL_CGROUP_PREFIX "%s\n", id);
    _cleanup_free_ char *want_cg = xasprintf("\n0::/" SUB_JAIL_CGROUP_PREFIX "%s\n", id);
    if (!msg || !str_has_prefix(msg, want_dirs) || !strstr(msg, want_cg) || !strstr(msg, "killed=1\n") ||
        strstr(msg, "destroy:"))
        unit_fail(__FILE__, __LINE__, "v2 jail: %s", msg ? msg : "(no report)");
    CHECK(!sub_path_exists(host_dir));
    if (sub_path_exists(host_dir)) (void)rmdir(host_dir);
}
