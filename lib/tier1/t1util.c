/* Tier-1 plumbing: paths, state files, locks, the OCI runtime calls and the
 * container record. */
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "t1-internal.h"
#include <dirent.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t t1_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t t1_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *t1_iso_time(int64_t wall_ms) {
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(buf);
}

void t1_sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

char *sub_t1_path(const char *rel) {
    _cleanup_free_ char *base = sub_state_path("tier1");
    return rel ? sub_path_join(base, rel) : TAKE_PTR(base);
}

char *sub_t1_svc_path(const char *name, const char *rel) {
    _cleanup_free_ char *r = rel ? xasprintf("services/%s/%s", name, rel) : xasprintf("services/%s", name);
    return sub_t1_path(r);
}

/* ---- the OCI runtime ---- */
const char *t1_runtime_bin(sub_svc_runtime rt) {
    switch (rt) {
    case SUB_RUNTIME_RUNSC: return "runsc";
    case SUB_RUNTIME_CRUN: return "crun";
    case SUB_RUNTIME_RUNC:
    default: return "runc";
    }
}

char **t1_runtime_argv(sub_svc_runtime rt) {
    _cleanup_free_ char *root = sub_t1_path(rt == SUB_RUNTIME_RUNC ? "runc" : rt == SUB_RUNTIME_RUNSC ? "runsc" : "crun");
    char **v = NULL;
    strv_push(&v, t1_runtime_bin(rt));
    strv_push(&v, "--root");
    strv_push(&v, root);
    if (rt == SUB_RUNTIME_RUNSC) {
        strv_push(&v, "--platform=ptrace");
        /* gVisor's own netstack would need an interface to take over (a
         * veth); with the host network mode its sockets are the kernel's, in
         * the sandbox's own network namespace (loopback only, brought up
         * below), where the supervisor's proxy and probes reach them */
        strv_push(&v, "--network=host");
    }
    return v;
}

int t1_runtime_usable(sub_svc_runtime rt, sub_err *e) {
    const char *bin = t1_runtime_bin(rt);
    if (!sub_have_program(bin))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                            "runtime %s: `%s` is not installed; run scripts/install-deps (it installs "
                            "runc and runsc), or choose another runtime in the manifest",
                            bin, bin);
    if (rt == SUB_RUNTIME_CRUN) {
        struct stat st;
        /* A hybrid host: cgroup v1 controllers with the v2 hierarchy at
         * /sys/fs/cgroup/unified. crun refuses that layout unless it runs in
         * its own mount namespace with the v2 mount hidden. */
        if (stat("/sys/fs/cgroup/unified", &st) == 0 && stat("/sys/fs/cgroup/memory", &st) == 0)
            return sub_err_setk(e, SUB_KIND_ENV, -ENOTSUP,
                                "runtime crun cannot run on this host: its cgroup layout is hybrid "
                                "(v1 controllers with v2 at /sys/fs/cgroup/unified), which crun "
                                "refuses; use `runtime: runc` (the default) or `runtime: runsc`");
    }
    return 0;
}

static int runtime_run(sub_svc_runtime rt, const char *const *args, int outfd, int *status, sub_err *e) {
    _cleanup_strv_ char **argv = t1_runtime_argv(rt);
    for (const char *const *a = args; *a; a++) strv_push(&argv, *a);
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdin_fd = SUB_FD_NULL;
    o.stdout_fd = outfd >= 0 ? outfd : SUB_FD_NULL;
    o.stderr_fd = outfd >= 0 ? outfd : SUB_FD_NULL;
    return sub_run(argv, &o, status, e);
}

/* ---- /proc ---- */
unsigned long long t1_proc_start_time(pid_t pid) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parens */
    if (!p) return 0;
    /* after ") " come fields 3..: state(3) ... starttime(22) */
    int field = 2;
    for (char *s = p + 1; *s; s++) {
        if (*s == ' ') {
            field++;
            if (field == 22) return strtoull(s + 1, NULL, 10);
        }
    }
    return 0;
}

bool t1_proc_root_is(pid_t pid, const char *rootfs) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/root", (int)pid);
    struct stat a, b;
    if (stat(path, &a) < 0 || stat(rootfs, &b) < 0) return false;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int t1_proc_cgroup(pid_t pid, char *out, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    out[0] = 0;
    if (!f) return -errno;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = 0;
        const char *ctrl = c1 + 1;
        if (streq(ctrl, "pids") || (!out[0] && *ctrl == 0)) snprintf(out, n, "%s", c2 + 1);
        if (streq(ctrl, "pids")) break;
    }
    return 0;
}

/* ---- the container record ---- */
static const char *rec_str(const json_t *rec, const char *k) {
    const char *s = json_string_value(json_object_get(rec, k));
    return s ? s : "";
}

void t1_ctr_init(t1_ctr *c, json_t *rec) {
    *c = (t1_ctr){.pidfd = -1, .netns_fd = -1};
    c->rec = json_incref(rec);
    c->gen = (unsigned long)json_integer_value(json_object_get(rec, "generation"));
    c->id = rec_str(rec, "container_id");
    c->bundle = rec_str(rec, "bundle");
    c->digest = rec_str(rec, "digest");
    c->rootfs = rec_str(rec, "rootfs");
}

void t1_ctr_done(t1_ctr *c) {
    if (c->pidfd >= 0) close(c->pidfd);
    if (c->netns_fd >= 0) close(c->netns_fd);
    json_decref(c->rec);
    *c = (t1_ctr){.pidfd = -1, .netns_fd = -1};
}

json_t *t1_ctr_json(const t1_ctr *c) {
    json_t *j = json_deep_copy(c->rec);
    json_object_set_new(j, "pid", json_integer(c->pid));
    json_object_set_new(j, "pid_start", json_integer((json_int_t)c->start_time));
    _cleanup_free_ char *t = t1_iso_time(c->started_ms);
    json_object_set_new(j, "started", json_string(t));
    json_object_set_new(j, "started_ms", json_integer(c->started_ms));
    return j;
}

/* ip link set lo up, inside the network namespace netns_fd (a short-lived
 * child does the setns: the caller's namespaces never change). */
static int netns_lo_up(int netns_fd, sub_err *e) {
    pid_t p = fork();
    if (p < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "fork: %m");
    if (p == 0) {
        if (setns(netns_fd, CLONE_NEWNET) < 0) _exit(1);
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) _exit(2);
        ifr.ifr_flags |= IFF_UP;
        _exit(ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? 3 : 0);
    }
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        return sub_err_setk(e, SUB_KIND_ENV, -EIO, "cannot bring loopback up in the container's network namespace");
    return 0;
}

static int open_pid_handles(t1_ctr *c, bool host_net, sub_err *e) {
    int fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "pidfd_open(%d): %m", (int)c->pid);
    c->pidfd = fd;
    if (!host_net) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/net", (int)c->pid);
        c->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (c->netns_fd < 0)
            return sub_err_setk(e, SUB_KIND_ENV, -errno, "opening %s: %m", path);
    }
    return 0;
}

/* The last bytes of the service's log (where the runtime's own errors go),
 * on one line. logfd is write-only: the file is opened again to read. */
static void log_tail(int logfd, char *out, size_t n) {
    out[0] = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", logfd);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end <= 0) return;
    off_t from = end > (off_t)(n - 1) ? end - (off_t)(n - 1) : 0;
    ssize_t r = pread(fd, out, n - 1, from);
    if (r <= 0) return;
    out[r] = 0;
    for (char *p = out; *p; p++)
        if (*p == '\n' && p[1]) *p = ' ';
}

int t1_ctr_start(t1_ctr *c, sub_svc_runtime rt, int logfd, sub_err *e) {
    bool host_net = streq(json_string_value(json_object_get(json_object_get(c->rec, "spec"), "network")), "host");
    _cleanup_free_ char *pidfile = sub_path_join(c->bundle, "container.pid");
    unlink(pidfile);
    int st = 0;
    /* a leftover of an earlier run under this id (a crash, a reboot) */
    (void)runtime_run(rt, (const char *[]){"delete", "--force", c->id, NULL}, -1, &st, NULL);
    int r = runtime_run(rt, (const char *[]){"run", "--detach", "--pid-file", pidfile, "--bundle", c->bundle, c->id, NULL},
                        logfd, &st, e);
    if (r < 0) return r;
    if (st != 0) {
        char tail[400];
        log_tail(logfd, tail, sizeof tail);
        int st2;
        (void)runtime_run(rt, (const char *[]){"delete", "--force", c->id, NULL}, -1, &st2, NULL);
        return sub_err_setk(e, SUB_KIND_ENV, -EIO, "%s run %s failed (exit %d): %s", t1_runtime_bin(rt), c->id, st,
                            tail[0] ? tail : "no output");
    }
    _cleanup_free_ char *pidtxt = NULL;
    size_t len;
    r = sub_read_file(pidfile, 64, &pidtxt, &len, e);
    if (r < 0) return r;
    c->pid = (pid_t)atoi(pidtxt);
    if (c->pid <= 1) return sub_err_setk(e, SUB_KIND_ENV, -EIO, "%s wrote no pid for %s", t1_runtime_bin(rt), c->id);
    c->start_time = t1_proc_start_time(c->pid);
    c->started_ms = t1_wall_ms();
    r = open_pid_handles(c, host_net, e);
    if (r == 0 && rt == SUB_RUNTIME_RUNSC && !host_net) r = netns_lo_up(c->netns_fd, e);
    if (r < 0) {
        t1_ctr_stop(c, rt, 0);
        return r;
    }
    return 0;
}

int t1_ctr_adopt(t1_ctr *c, sub_svc_runtime rt, bool host_net, sub_err *e) {
    c->pid = (pid_t)json_integer_value(json_object_get(c->rec, "pid"));
    c->start_time = (unsigned long long)json_integer_value(json_object_get(c->rec, "pid_start"));
    c->started_ms = json_integer_value(json_object_get(c->rec, "started_ms"));
    if (c->pid <= 1 || !c->start_time)
        return sub_err_set(e, -ESRCH, "no container pid on record for %s", c->id);
    if (t1_proc_start_time(c->pid) != c->start_time)
        return sub_err_set(e, -ESRCH, "container %s (pid %d) is gone", c->id, (int)c->pid);
    /* gVisor's sandbox process runs in an empty root of its own (its gofer
     * serves the rootfs): for runsc the runtime's state is the evidence */
    if (rt != SUB_RUNTIME_RUNSC && !t1_proc_root_is(c->pid, c->rootfs))
        return sub_err_set(e, -ESRCH, "pid %d does not run in %s's root filesystem", (int)c->pid, c->id);
    /* the runtime must agree: running, and the digest it was created with */
    _cleanup_json_ json_t *j = NULL;
    int r = t1_runtime_state(rt, c->id, &j, e);
    if (r < 0) return r;
    if (!streq(json_string_value(json_object_get(j, "status")), "running") ||
        json_integer_value(json_object_get(j, "pid")) != c->pid)
        return sub_err_set(e, -ESRCH, "container %s is not running", c->id);
    const char *ann = json_string_value(json_object_get(json_object_get(j, "annotations"), "dev.substrate.image.digest"));
    if (ann && !streq(ann, c->digest))
        return sub_err_set(e, -ESRCH, "container %s runs %s, not %s", c->id, ann, c->digest);
    return open_pid_handles(c, host_net, e);
}

int t1_runtime_state(sub_svc_runtime rt, const char *id, json_t **out, sub_err *e) {
    *out = NULL;
    _cleanup_strv_ char **argv = t1_runtime_argv(rt);
    strv_push(&argv, "state");
    strv_push(&argv, id);
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdin_fd = SUB_FD_NULL;
    o.stderr_fd = SUB_FD_NULL;
    _cleanup_free_ char *txt = NULL;
    int st = 0;
    int r = sub_run_capture(argv, &o, 1 << 20, &txt, &st, e);
    if (r < 0) return r;
    if (st != 0 || sub_json_parse(txt, strlen(txt), 1 << 20, "runtime state", out, NULL) < 0)
        return sub_err_set(e, -ESRCH, "%s knows no container %s", t1_runtime_bin(rt), id);
    return 0;
}

bool t1_ctr_exited(const t1_ctr *c) {
    if (c->pidfd < 0) return true;
    struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

static bool wait_exit(const t1_ctr *c, uint32_t ms) {
    if (c->pidfd < 0) return true;
    struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
    int64_t end = t1_now_ms() + ms;
    for (;;) {
        int64_t left = end - t1_now_ms();
        if (left < 0) left = 0;
        int r = poll(&p, 1, (int)left);
        if (r > 0) return true;
        if (r == 0) return false;
        if (errno != EINTR) return false;
    }
}

static void cgroup_remove(const char *cg);

void t1_ctr_stop(t1_ctr *c, sub_svc_runtime rt, uint32_t grace_ms) {
    int st;
    if (c->pidfd >= 0 && !t1_ctr_exited(c)) {
        if (grace_ms > 0) {
            (void)runtime_run(rt, (const char *[]){"kill", c->id, "TERM", NULL}, -1, &st, NULL);
            if (!wait_exit(c, grace_ms)) {
                (void)runtime_run(rt, (const char *[]){"kill", c->id, "KILL", NULL}, -1, &st, NULL);
            }
        } else {
            (void)runtime_run(rt, (const char *[]){"kill", c->id, "KILL", NULL}, -1, &st, NULL);
        }
        if (!wait_exit(c, 5000)) (void)syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
        (void)wait_exit(c, 5000);
    }
    if (c->pid > 0) (void)waitpid(c->pid, NULL, WNOHANG); /* ours only if we started it */
    if (c->id && *c->id) (void)runtime_run(rt, (const char *[]){"delete", "--force", c->id, NULL}, -1, &st, NULL);
    if (c->rec) cgroup_remove(json_string_value(json_object_get(c->rec, "cgroup")));
    if (c->pidfd >= 0) close(c->pidfd);
    if (c->netns_fd >= 0) close(c->netns_fd);
    c->pidfd = c->netns_fd = -1;
}

/* rmdir /sys/fs/cgroup/<each hierarchy><rel> and /sys/fs/cgroup<rel> (v2),
 * retrying up to tries times while the group is busy (its last tasks are
 * leaving). */
static void cgroup_rmdir_everywhere(const char *rel, int tries) {
    DIR *d = opendir("/sys/fs/cgroup");
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s%s", de->d_name, rel);
        for (int i = 0; rmdir(p) < 0 && errno == EBUSY && i < tries; i++) t1_sleep_ms(20);
    }
    closedir(d);
    snprintf(p, sizeof p, "/sys/fs/cgroup%s", rel);
    (void)rmdir(p);
}

/* The group of one generation ("/substrate/NAME-G.HASH"): runc removes it on
 * delete, runsc leaves it. */
static void cgroup_remove(const char *cg) {
    if (!cg || !str_has_prefix(cg, "/substrate/") || strstr(cg, "..")) return;
    cgroup_rmdir_everywhere(cg, 50);
}

/* only where it is empty: another service's group keeps it */
void t1_cgroup_prune(void) { cgroup_rmdir_everywhere("/substrate", 0); }

/* ---- state files ---- */
int t1_read_json(const char *name, const char *file, json_t **out, sub_err *e) {
    *out = NULL;
    _cleanup_free_ char *p = sub_t1_svc_path(name, file);
    if (access(p, F_OK) < 0) return -ENOENT;
    return sub_json_load_file(p, T1_STATE_MAX, out, e);
}

int t1_write_json(const char *name, const char *file, const json_t *j, sub_err *e) {
    _cleanup_free_ char *p = sub_t1_svc_path(name, file);
    _cleanup_free_ char *s = sub_json_dump_pretty(j);
    return sub_write_file_atomic(p, s, strlen(s), 0644, e);
}

int t1_trylock(const char *path, sub_err *e) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "opening %s: %m", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        close(fd);
        return err == EWOULDBLOCK ? -EWOULDBLOCK : sub_err_setk(e, SUB_KIND_ENV, -err, "locking %s: %s", path, strerror(err));
    }
    return fd;
}

int t1_signalfd(sub_err *e) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "signalfd: %m");
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
    return fd;
}

bool t1_lock_held(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}
