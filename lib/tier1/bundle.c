/* OCI runtime bundles for Tier-1 services (see bundle.h). */
#include "substrate/bundle.h"
#include "substrate/fs.h"
#include "substrate/imgproc.h"
#include "substrate/json.h"
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#define OCI_VERSION "1.0.2"
#define NOFILE_LIMIT 1024
#define CPU_PERIOD_US 100000

/* Every input refusal names the service: the fix is in its manifest. */
#define bad(e, m, fmt, ...)                                                                        \
    sub_err_setr(e, SUB_R_BAD_MANIFEST, SUB_KIND_INPUT, -EINVAL, "service %s: " fmt, (m)->name,   \
                 ##__VA_ARGS__)

/* ---- process -------------------------------------------------------------------------------- */

static const char *const known_caps[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

static bool cap_known(const char *c) {
    for (size_t i = 0; i < ARRAY_SIZE(known_caps); i++)
        if (streq(c, known_caps[i])) return true;
    return false;
}

/* Every set holds exactly the manifest's capabilities (ambient too, so a
 * non-root uid keeps them across exec); none by default. */
static int build_caps(const sub_svc_manifest *m, json_t **out, sub_err *e) {
    _cleanup_json_ json_t *list = json_array();
    for (char **c = m->capabilities; c && *c; c++) {
        if (!cap_known(*c))
            return bad(e, m, "unknown capability \"%s\" (names look like CAP_NET_BIND_SERVICE)",
                       *c);
        bool dup = false;
        size_t i;
        json_t *it;
        json_array_foreach(list, i, it) dup |= streq(json_string_value(it), *c);
        if (!dup) json_array_append_new(list, json_string(*c));
    }
    json_t *caps = json_object();
    static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
                                       "ambient"};
    for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
        json_object_set_new(caps, sets[i], json_deep_copy(list));
    *out = caps;
    return 0;
}

static json_t *strv_to_json(char *const *v) {
    json_t *a = json_array();
    for (; v && *v; v++) json_array_append_new(a, sub_json_str(*v));
    return a;
}

static int build_process(const sub_svc_manifest *m, const sub_image_config *img, json_t **out,
                         sub_err *e) {
    _cleanup_free_ char *what = xasprintf("service %s", m->name);
    sub_proc_spec_in in = {.what = what, .doc = "manifest", .reason = SUB_R_BAD_MANIFEST,
                           .command = m->command, .args = m->args, .env = m->env,
                           .user = m->user, .workdir = m->workdir};
    _cleanup_proc_spec_ sub_proc_spec ps = {0};
    _cleanup_json_ json_t *caps = NULL;
    int r = sub_proc_spec_resolve(&in, img, &ps, e);
    if (r < 0 || (r = build_caps(m, &caps, e)) < 0) return r;
    json_t *p = json_object();
    json_object_set_new(p, "terminal", json_false());
    json_object_set_new(p, "user", json_pack("{s:I,s:I}", "uid", (json_int_t)ps.uid, "gid", (json_int_t)ps.gid));
    json_object_set_new(p, "args", strv_to_json(ps.argv));
    json_object_set_new(p, "env", strv_to_json(ps.env));
    json_object_set_new(p, "cwd", sub_json_str(ps.cwd));
    json_object_set_new(p, "capabilities", TAKE_PTR(caps));
    json_object_set_new(p, "rlimits",
                        json_pack("[{s:s,s:I,s:I}]", "type", "RLIMIT_NOFILE", "hard",
                                  (json_int_t)NOFILE_LIMIT, "soft", (json_int_t)NOFILE_LIMIT));
    json_object_set_new(p, "noNewPrivileges", json_true());
    *out = p;
    return 0;
}

/* ---- mounts --------------------------------------------------------------------------------- */

static const struct {
    const char *dest, *type, *source, *options; /* options comma-separated, NULL = none */
} mounts[] = {
    {"/proc", "proc", "proc", NULL},
    {"/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"},
    {"/dev/pts", "devpts", "devpts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"},
    {"/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"},
    {"/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"},
    {"/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"},
    {"/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"},
    /* runc 1.1 gives a tmpfs the mode of the directory it covers when the
     * rootfs has one, so mode= only counts where the image lacks it */
    {"/tmp", "tmpfs", "tmpfs", "nosuid,nodev,mode=1777"},
    {"/run", "tmpfs", "tmpfs", "nosuid,nodev,mode=755"},
};

static json_t *build_mounts(const char *escalate_dir) {
    json_t *arr = json_array();
    for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
        json_t *mt = json_pack("{s:s,s:s,s:s}", "destination", mounts[i].dest, "type",
                               mounts[i].type, "source", mounts[i].source);
        if (mounts[i].options) {
            json_t *opts = json_array();
            const char *s = mounts[i].options;
            while (*s) {
                size_t n = strcspn(s, ",");
                json_array_append_new(opts, json_stringn(s, n));
                s += n + (s[n] == ',');
            }
            json_object_set_new(mt, "options", opts);
        }
        json_array_append_new(arr, mt);
    }
    if (escalate_dir)
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:[s,s,s,s]}", "destination", SUB_ESCALATE_DIR, "type",
                                             "bind", "source", escalate_dir, "options", "bind", "nosuid", "nodev",
                                             "noexec"));
    return arr;
}

/* ---- linux ---------------------------------------------------------------------------------- */

/* As `runc spec` (1.1) writes them. */
static const char *const masked_paths[] = {
    "/proc/acpi",        "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",     "/proc/scsi",
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* Ordinary system calls: files, memory, signals, time, processes and
 * threads, IPC, sockets, polling. Left out (so refused with EPERM): mounts
 * and the new mount API, pivot_root, chroot, namespaces (unshare, setns),
 * modules, kexec, reboot, swap, bpf, perf_event_open, ptrace and its kin
 * (process_vm_*, kcmp, pidfd_getfd), keyrings, handles (open_by_handle_at,
 * name_to_handle_at), userfaultfd, io_uring, acct, quotactl, setting the
 * clock, iopl/ioperm, modify_ldt, personality, syslog, fanotify_init. clone
 * and clone3 are handled apart below. Every name is one libseccomp 2.5
 * knows (unit-tested); names of the 32-bit ABIs are there for SCMP_ARCH_X86. */
static const char *const seccomp_allow[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd",
    "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fadvise64_64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown",
    "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat",
    "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32",
    "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "get_mempolicy",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit",
    "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr",
    "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "mbind",
    "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "sendfile", "sendfile64",
    "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32",
    "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "set_mempolicy", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigpending", "sigprocmask", "sigreturn", "sigsuspend", "socket", "socketcall",
    "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "wait4", "waitid", "waitpid", "write", "writev",
};

/* clone's flags (argument 0 on x86) holding any of these make a namespace. */
#define CLONE_NS_FLAGS 0x7E020000ull /* NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */

static json_t *build_seccomp(void) {
    json_t *names = json_array();
    for (size_t i = 0; i < ARRAY_SIZE(seccomp_allow); i++)
        json_array_append_new(names, json_string(seccomp_allow[i]));
    json_t *syscalls = json_array();
    json_array_append_new(syscalls, json_pack("{s:o,s:s}", "names", names, "action",
                                              "SCMP_ACT_ALLOW"));
    /* clone only without namespace flags (an unprivileged user namespace
     * needs no capability); clone3 hides its flags in memory a filter cannot
     * read, so it says ENOSYS and the C libraries fall back to clone. */
    json_array_append_new(syscalls,
                          json_pack("{s:[s],s:s,s:[{s:i,s:I,s:I,s:s}]}", "names", "clone",
                                    "action", "SCMP_ACT_ALLOW", "args", "index", 0, "value",
                                    (json_int_t)CLONE_NS_FLAGS, "valueTwo", (json_int_t)0, "op",
                                    "SCMP_CMP_MASKED_EQ"));
    json_array_append_new(syscalls, json_pack("{s:[s],s:s,s:i}", "names", "clone3", "action",
                                              "SCMP_ACT_ERRNO", "errnoRet", ENOSYS));
    return json_pack("{s:s,s:i,s:[sss],s:o}", "defaultAction", "SCMP_ACT_ERRNO",
                     "defaultErrnoRet", EPERM, "architectures", "SCMP_ARCH_X86_64",
                     "SCMP_ARCH_X86", "SCMP_ARCH_X32", "syscalls", syscalls);
}

static json_t *strv_json(const char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *build_linux(const sub_svc_manifest *m, const char *cgroup_path) {
    json_t *ns = json_array();
    static const char *const types[] = {"pid", "ipc", "uts", "mount"};
    for (size_t i = 0; i < ARRAY_SIZE(types); i++)
        json_array_append_new(ns, json_pack("{s:s}", "type", types[i]));
    if (m->network != SUB_NET_HOST)
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));

    json_t *res = json_object();
    json_object_set_new(res, "devices", json_pack("[{s:b,s:s}]", "allow", 0, "access", "rwm"));
    if (m->memory_bytes)
        json_object_set_new(res, "memory",
                            json_pack("{s:I}", "limit", (json_int_t)m->memory_bytes));
    if (m->pids) json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)m->pids));
    if (m->cpu_millis)
        json_object_set_new(res, "cpu",
                            json_pack("{s:I,s:I}", "quota", (json_int_t)m->cpu_millis * 100,
                                      "period", (json_int_t)CPU_PERIOD_US));

    json_t *lx = json_object();
    json_object_set_new(lx, "namespaces", ns);
    json_object_set_new(lx, "cgroupsPath", sub_json_str(cgroup_path));
    json_object_set_new(lx, "resources", res);
    json_object_set_new(lx, "maskedPaths", strv_json(masked_paths, ARRAY_SIZE(masked_paths)));
    json_object_set_new(lx, "readonlyPaths",
                        strv_json(readonly_paths, ARRAY_SIZE(readonly_paths)));
    json_object_set_new(lx, "seccomp", build_seccomp());
    return lx;
}

/* ---- the config ----------------------------------------------------------------------------- */

static int build_annotations(const sub_svc_manifest *m, unsigned long generation, json_t **out,
                             sub_err *e) {
    if (!m->ref.digest || !m->ref.registry || !m->ref.repository)
        return bad(e, m, "the image \"%s\" is not pinned by digest",
                   m->image ? m->image : "(none)");
    _cleanup_free_ char *name = sub_ref_name(&m->ref);
    _cleanup_free_ char *image = xasprintf("%s@%s", name, m->ref.digest);
    _cleanup_free_ char *gen = xasprintf("%lu", generation);
    json_t *a = json_object();
    json_object_set_new(a, "dev.substrate.service", sub_json_str(m->name));
    if (m->path) json_object_set_new(a, "dev.substrate.manifest", sub_json_str(m->path));
    json_object_set_new(a, "dev.substrate.image", sub_json_str(image));
    json_object_set_new(a, "dev.substrate.image.digest", sub_json_str(m->ref.digest));
    json_object_set_new(a, "dev.substrate.generation", json_string(gen));
    *out = a;
    return 0;
}

int sub_bundle_config(const sub_bundle_opts *o, json_t **out, sub_err *e) {
    if (!o || !o->m || !o->image || !o->m->name || !o->rootfs || !o->cgroup_path || !out)
        return sub_err_set(e, -EINVAL, "bundle config: a required input is missing");
    const sub_svc_manifest *m = o->m;
    if (o->rootfs[0] != '/')
        return sub_err_set(e, -EINVAL, "bundle config: the rootfs \"%s\" is not an absolute path",
                           o->rootfs);
    if (!*o->cgroup_path)
        return sub_err_set(e, -EINVAL, "bundle config: the cgroup path is empty");
    if (m->escalate.enabled && (!o->escalate_dir || o->escalate_dir[0] != '/'))
        return sub_err_set(e, -EINVAL, "bundle config: %s has an escalate: policy but no socket directory was given",
                           m->name);
    if (m->memory_bytes > INT64_MAX)
        return bad(e, m, "the memory limit %llu is out of range",
                   (unsigned long long)m->memory_bytes);
    _cleanup_json_ json_t *process = NULL, *annotations = NULL;
    int r;
    if ((r = build_process(m, o->image, &process, e)) < 0 ||
        (r = build_annotations(m, o->generation, &annotations, e)) < 0)
        return r;
    json_t *c = json_object();
    json_object_set_new(c, "ociVersion", json_string(OCI_VERSION));
    json_object_set_new(c, "process", TAKE_PTR(process));
    json_object_set_new(c, "root", json_pack("{s:o,s:b}", "path", sub_json_str(o->rootfs),
                                             "readonly", 1));
    json_object_set_new(c, "hostname", sub_json_str(o->hostname ? o->hostname : m->name));
    json_object_set_new(c, "mounts", build_mounts(m->escalate.enabled ? o->escalate_dir : NULL));
    json_object_set_new(c, "linux", build_linux(m, o->cgroup_path));
    json_object_set_new(c, "annotations", TAKE_PTR(annotations));
    *out = c;
    return 0;
}

int sub_bundle_write(const char *bundle_dir, const sub_bundle_opts *o, sub_err *e) {
    if (!bundle_dir || !*bundle_dir)
        return sub_err_set(e, -EINVAL, "bundle: no bundle directory given");
    /* refusals first: nothing is created for a manifest that cannot run */
    _cleanup_json_ json_t *cfg = NULL;
    int r = sub_bundle_config(o, &cfg, e);
    if (r < 0) return r;
    _cleanup_free_ char *parent = xstrdup(bundle_dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if ((r = sub_mkdir_p(parent, 0755, e)) < 0) return r;
    }
    if (mkdir(bundle_dir, 0700) < 0 && errno != EEXIST) {
        int err = errno;
        return sub_err_set(e, -err, "cannot create bundle directory %s: %s%s", bundle_dir,
                           strerror(err), sub_io_hint(err));
    }
    struct stat st;
    if (lstat(bundle_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return sub_err_set(e, -ENOTDIR, "bundle directory %s exists and is not a directory",
                           bundle_dir);
    if ((st.st_mode & 07777) != 0700 && chmod(bundle_dir, 0700) < 0) {
        int err = errno;
        return sub_err_set(e, -err, "cannot make bundle directory %s private: %s", bundle_dir,
                           strerror(err));
    }
    _cleanup_free_ char *path = sub_path_join(bundle_dir, "config.json");
    _cleanup_free_ char *text = sub_json_dump_pretty(cfg);
    /* 0600: the environment may carry secrets */
    return sub_write_file_atomic(path, text, strlen(text), 0600, e);
}
