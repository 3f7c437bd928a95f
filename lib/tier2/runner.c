/* The Tier-2 runner: authorise, admit, prepare, run in a jailed microVM
 * under one deadline, tear down, audit, report (tier2.h). */
#include "t2-internal.h"
#include "substrate/admit.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/guestproto.h"
#include "substrate/imgproc.h"
#include "substrate/proc.h"
#include "substrate/jail.h"
#include "substrate/json.h"
#include "substrate/strbuf.h"
#include "substrate/vmimage.h"
#include "substrate/config.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define GUEST_MODULES                                                                              \
    { "virtio_mmio", "virtio_console", "virtio_blk", "erofs", "overlay", "virtio_net", NULL }
#define JOB_PIDS_MAX 128
#define JOB_UID_LOCKS "/run/substrate" /* uids/<uid>.lock: every runner on the host */
#define ZERO_DIGEST "sha256:0000000000000000000000000000000000000000000000000000000000000000"

static void closedirp(DIR **d) {
    if (*d) closedir(*d);
}

char *t2_path(const char *rel) {
    _cleanup_free_ char *base = sub_state_path("tier2");
    return rel ? sub_path_join(base, rel) : TAKE_PTR(base);
}

int64_t t2_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note(const sub_job_opts *o, const char *fmt, ...) _printf_(2, 3);
static void note(const sub_job_opts *o, const char *fmt, ...) {
    if (!o || !o->note) return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    o->note(o->ud, m);
}

/* ---- the session: one VM, the agent's frames, the deadline ---- */
/* ---- the accelerator ---- */
typedef struct vm_assets {
    sub_vm_kernel kernel;
    char *initramfs;
    unsigned long tsc_khz;
} vm_assets;

static void vm_assets_done(vm_assets *a) {
    sub_vm_kernel_done(&a->kernel);
    free(a->initramfs);
}

/* The agent binary: $SUBSTRATE_AGENT, else substrate-agent beside our own binary. */
char *t2_agent_path(void) {
    const char *env = getenv("SUBSTRATE_AGENT");
    if (env && *env) return xstrdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return xstrdup("substrate-agent");
    self[n] = 0;
    char *sl = strrchr(self, '/');
    if (sl) *sl = 0;
    return xasprintf("%s/substrate-agent", self);
}

static int prepare_assets(vm_assets *a, sub_err *e) {
    _cleanup_free_ char *cache = t2_path("cache");
    int r = sub_mkdir_p(cache, 0755, e);
    if (r < 0) return r;
    _cleanup_free_ char *agent = t2_agent_path();
    if (access(agent, X_OK) < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "the guest agent %s is missing (build it with `make`, or "
                            "set SUBSTRATE_AGENT)", agent);
    if ((r = sub_vm_kernel_prepare(cache, &a->kernel, e)) < 0) return r;
    if ((r = sub_vm_tsc_khz(cache, &a->tsc_khz, e)) < 0) return r;
    const char *mods[] = GUEST_MODULES;
    return sub_vm_initramfs_prepare(cache, &a->kernel, agent, mods, &a->initramfs, e);
}

/* ---- one job ---- */
typedef t2_job job;

static void job_id(const char *name, char out[96]) {
    unsigned char r[4] = {0};
    if (getrandom(r, sizeof r, 0) != sizeof r) {
        unsigned v = (unsigned)getpid() ^ (unsigned)t2_now_ms();
        memcpy(r, &v, sizeof r);
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, 96, "%.40s-%04d%02d%02d%02d%02d%02d-%02x%02x%02x%02x", name, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, r[0], r[1], r[2], r[3]);
}

static unsigned long fd_inode(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static unsigned long ns_inode(pid_t pid, const char *ns) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/%s", (int)pid, ns);
    struct stat st;
    return stat(p, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

/* Every process whose network namespace is inode ino. */
static int netns_holders(unsigned long ino) {
    if (!ino) return 0;
    int n = 0;
    _cleanup_(closedirp) DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
        char p[300];
        snprintf(p, sizeof p, "/proc/%s/ns/net", de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && (unsigned long)st.st_ino == ino) n++;
    }
    return n;
}

static int our_fds_on(const unsigned long ino[2]) {
    int n = 0;
    _cleanup_(closedirp) DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        struct stat st;
        char p[300];
        snprintf(p, sizeof p, "/proc/self/fd/%s", de->d_name);
        if (stat(p, &st) == 0 && S_ISSOCK(st.st_mode) &&
            ((ino[0] && st.st_ino == ino[0]) || (ino[1] && st.st_ino == ino[1])))
            n++;
    }
    return n;
}

static int mounts_under(const char *dir) {
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    size_t dl = strlen(dir);
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, dir);
        if (p && (p[dl] == '/' || p[dl] == ' ')) n++;
    }
    return n;
}

static void check(json_t *checks, int *residual, const char *name, int count, const char *what) {
    if (count < 0) count = 0;
    *residual += count;
    json_array_append_new(checks, json_pack("{s:s,s:i,s:s}", "check", name, "residual", count, "what", what));
}

/* The audit, after everything was removed: what of the job is still there. */
static json_t *audit(const job *jb, const char *const *cgroups, bool had_vmm, int pidfd, bool tier0) {
    json_t *checks = json_array();
    int residual = 0;
    int vmm = 0;
    if (had_vmm && pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0) vmm = 1;
    if (tier0)
        check(checks, &residual, "init_process", vmm,
              "the job's PID 1 (the agent; by pidfd: no pid-reuse confusion): with it goes its PID namespace");
    else
        check(checks, &residual, "vmm_process", vmm, "the VMM process (by pidfd: no pid-reuse confusion)");
    pid_t first = 0;
    int up = jb->uid ? sub_jail_uid_processes(jb->uid, &first, NULL) : 0;
    check(checks, &residual, "uid_processes", up, "processes of the job's uid (scan of /proc)");
    int cg = 0;
    for (const char *const *c = cgroups; c && *c; c++) cg += sub_path_exists(*c);
    check(checks, &residual, "cgroups", cg, "the job's cgroup directories");
    check(checks, &residual, "mounts", jb->dir ? mounts_under(jb->dir) : 0, "mounts referring to the job dir");
    check(checks, &residual, "netns", netns_holders(jb->netns_ino), "processes in the job's network namespace");
    check(checks, &residual, "sockets", our_fds_on(jb->sock_ino), "the runner's ends of the job's sockets");
    check(checks, &residual, "job_dir", jb->dir && sub_path_exists(jb->dir), "the job directory");
    if (jb->eg.made)
        check(checks, &residual, "egress", t2_egress_residue(&jb->eg),
              "the job's named network namespace (its tap and nftables table live in it) and uplink veth");
    return json_pack("{s:o,s:i}", "checks", checks, "residual", residual);
}

/* The job's dir, made under a dot name and locked before it gets its real
 * name (a sweeping runner never sees an unlocked job dir), its jail mount
 * point, its uid, and job.json (what a sweep needs). jb->id and jb->dir set. */
static int job_open(job *jb, sub_err *e) {
    _cleanup_free_ char *jobs = t2_path("jobs");
    _cleanup_free_ char *newdir = xasprintf("%s/.new-%s", jobs, jb->id);
    _cleanup_free_ char *newlock = sub_path_join(newdir, "lock");
    _cleanup_free_ char *root = sub_path_join(jb->dir, "root");
    int r = sub_mkdir_p(newdir, 0711, e);
    if (r < 0) return r;
    jb->lock_fd = open(newlock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (jb->lock_fd < 0 || flock(jb->lock_fd, LOCK_EX | LOCK_NB) < 0 || chmod(newdir, 0711) < 0 ||
        rename(newdir, jb->dir) < 0) {
        r = sub_err_setk(e, SUB_KIND_ENV, -errno, "making the job dir %s: %s", jb->dir, strerror(errno));
        (void)sub_rm_rf(newdir, NULL);
        return r;
    }
    if ((r = sub_mkdir_p(root, 0755, e)) < 0) return r;
    /* uids are the host's, not one state dir's: their locks live in /run */
    if ((r = sub_jail_uid_acquire(JOB_UID_LOCKS, &jb->uid, &jb->uid_lock, e)) < 0) return r;
    _cleanup_json_ json_t *rec = json_pack("{s:s,s:I,s:I}", "job_id", jb->id, "uid", (json_int_t)jb->uid,
                                           "runner_pid", (json_int_t)getpid());
    _cleanup_free_ char *txt = sub_json_dump(rec, NULL);
    _cleanup_free_ char *jp = sub_path_join(jb->dir, "job.json");
    return sub_write_file_atomic(jp, txt, strlen(txt), 0600, e);
}

/* What one VM needs; the same for a job and for the KVM probe. */
typedef struct vm_spec {
    const vm_assets *va;
    const t2_backend *be;
    const char *disk, *cmdline, *root; /* root: the jail's mount point in the job dir */
    uint32_t vcpus, memory_mb;
    bool kvm;
    int tap_fd;                        /* -1: no NIC */
    const char *mac;
    const sigset_t *block;             /* the stop signals, for the session's signalfd */
} vm_spec;

int t2_spawn_session(t2_job *jb, session *s, const sub_jail_opts *jo, int ctl[2], int con[2], const sigset_t *block,
                     sub_err *e) {
    s->t0 = t2_now_ms();
    int r = sub_jail_spawn(jo, &jb->jail, e);
    if (r < 0) return r;
    jb->jailed = true;
    s->ctl = TAKE_FD(ctl[0]);
    s->con = TAKE_FD(con[0]);
    (void)fcntl(s->ctl, F_SETFL, O_NONBLOCK);
    (void)fcntl(s->con, F_SETFL, O_NONBLOCK);
    s->pidfd = jb->jail.pidfd;
    s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    s->sfd = block ? signalfd(-1, block, SFD_CLOEXEC | SFD_NONBLOCK) : -1;
    return 0;
}

/* The socket pairs, the VMM's argv and the jail. On success the VMM runs
 * and s holds our ends of the channel and console, its pidfd, a timerfd and
 * a signalfd, with s->t0 the start; the job records the socket inodes (for
 * the audit) and the jail. On failure no VMM runs and no fd is left open. */
static int vm_start(job *jb, session *s, const vm_spec *v, sub_err *e) {
    int ctl[2] = {-1, -1}, con[2] = {-1, -1};
    _cleanup_strv_ char **argv = NULL;
    int r = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0) {
        r = sub_err_setk(e, SUB_KIND_ENV, -errno, "socketpair: %s", strerror(errno));
        goto out;
    }
    jb->sock_ino[0] = fd_inode(ctl[0]);
    jb->sock_ino[1] = fd_inode(con[0]);
    t2_vm_config vc = {.kernel = v->va->kernel.vmlinux, .initramfs = v->va->initramfs, .disk = v->disk,
                       .cmdline = v->cmdline, .vcpus = v->vcpus, .memory_mb = v->memory_mb, .kvm = v->kvm,
                       .ctl_fd = ctl[1], .console_fd = con[1], .tap_fd = v->tap_fd, .mac = v->mac};
    if ((r = v->be->argv(v->be, &vc, &argv, e)) < 0) goto out;
    const char *ro_paths[] = {v->va->kernel.vmlinux, v->va->initramfs, v->disk, NULL};
    int pass[] = {ctl[1], con[1], v->tap_fd};
    sub_jail_opts jo = {.id = jb->id, .root_dir = v->root, .uid = jb->uid, .gid = jb->uid, .argv = argv,
                        .ro_paths = ro_paths, .fds = pass, .nfds = v->tap_fd >= 0 ? 3 : 2, .stdout_fd = -1,
                        .stderr_fd = con[1], .memory_bytes = ((uint64_t)v->memory_mb + SUB_JOB_MEM_OVERHEAD_MB) << 20,
                        .pids_max = JOB_PIDS_MAX, .netns_fd = -1, .kvm = v->kvm};
    r = t2_spawn_session(jb, s, &jo, ctl, con, v->block, e);
out:;
    int fds[] = {ctl[0], ctl[1], con[0], con[1]}; /* the VMM has its ends now, or never will */
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0) close(fds[i]);
    return r;
}

/* The session's fds, then the job's uid slot, dir and lock (in that order:
 * the dir goes while its lock still keeps a sweeping runner away). */
static void vm_close(job *jb, session *s) {
    int fds[] = {s->ctl, s->con, s->tfd, s->sfd, jb->uid_lock, s->so.log_fd, s->se.log_fd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0) close(fds[i]);
    s->ctl = s->con = s->tfd = s->sfd = jb->uid_lock = s->so.log_fd = s->se.log_fd = -1;
    if (jb->dir) (void)sub_rm_rf(jb->dir, NULL);
    if (jb->lock_fd >= 0) close(jb->lock_fd);
    jb->lock_fd = -1;
}

#define KVM_PROBE_MS 20000

/* While a VM runs, SIGINT/SIGTERM/SIGHUP arrive on a signalfd (block), so
 * the runner tears down before it goes; old is the mask to restore. */
static void block_stop_signals(sigset_t *block, sigset_t *old) {
    sigemptyset(block);
    sigaddset(block, SIGINT);
    sigaddset(block, SIGTERM);
    sigaddset(block, SIGHUP);
    sigprocmask(SIG_BLOCK, block, old);
}

static char *accel_key(const vm_assets *va, const t2_backend *be) {
    struct stat q = {0}, k = {0}, d = {0};
    (void)stat(be->binary, &q);
    (void)stat(va->kernel.vmlinux, &k);
    (void)stat("/dev/kvm", &d);
    return xasprintf("%s %lld %lld %s %lld %llx", be->binary, (long long)q.st_size, (long long)q.st_mtime,
                     va->kernel.vmlinux, (long long)k.st_size, (unsigned long long)d.st_rdev);
}

/* One short boot with KVM to the agent's HELLO under a deadline: a broken
 * KVM may make qemu exit, hang, or pause itself (the deadline covers all
 * three). true when the agent answered; *cause (may be NULL) says which of
 * "booted", "setup", "qemu_failed", "no_sign_of_life", and *ms how long. */
static bool kvm_boot(const vm_assets *va, const t2_backend *be, const char *disk, const char *cmdline,
                     int64_t deadline_ms, char *detail, size_t dn, const char **cause, int64_t *ms) {
    job jb = {.lock_fd = -1, .uid_lock = -1, .eg = {.tap_fd = -1}};
    job_id("kvm-probe", jb.id);
    _cleanup_free_ char *jobs = t2_path("jobs");
    jb.dir = sub_path_join(jobs, jb.id);
    _cleanup_free_ char *root = sub_path_join(jb.dir, "root");
    session s;
    t2_session_init(&s);
    s.stop_at_hello = true;
    sub_err e = {0};
    sigset_t block, old;
    block_stop_signals(&block, &old);
    vm_spec v = {.va = va, .be = be, .disk = disk, .cmdline = cmdline, .root = root, .vcpus = 1, .memory_mb = 128,
                 .kvm = true, .tap_fd = -1, .block = &block};
    int r = job_open(&jb, &e);
    if (r == 0 && (r = vm_start(&jb, &s, &v, &e)) == 0) t2_session_loop(&s, s.t0 + deadline_ms);
    if (ms) *ms = s.t0 ? t2_now_ms() - s.t0 : 0;
    _cleanup_free_ char *con = s.con_len ? sub_utf8_sanitize(s.console) : xstrdup("empty");
    size_t cl = strlen(con);
    while (cl && (con[cl - 1] == '\n' || con[cl - 1] == '\r')) con[--cl] = 0;
    const char *tail = cl > 300 ? con + cl - 300 : con; /* the last words: qemu's error, a panic */
    const char *why = s.hello ? "booted" : r < 0 ? "setup" : s.vmm_gone ? "qemu_failed" : "no_sign_of_life";
    if (cause) *cause = why;
    if (s.hello)
        snprintf(detail, dn, "a KVM boot reached the guest agent in %lld ms", (long long)s.hello_ms);
    else if (r < 0)
        snprintf(detail, dn, "the KVM boot could not start: %.300s", e.msg);
    else if (s.vmm_gone)
        snprintf(detail, dn, "/dev/kvm is there, but the KVM guest failed: qemu ended before the guest agent "
                             "answered (console and qemu's errors: %s)", tail);
    else
        snprintf(detail, dn, "/dev/kvm is there, but the KVM guest showed no sign of life within %lld ms (console: %s)",
                 (long long)deadline_ms, tail);
    if (jb.jailed) (void)sub_jail_destroy(&jb.jail, NULL, NULL);
    sub_jail_done(&jb.jail);
    vm_close(&jb, &s);
    free(jb.dir);
    bool ok = s.hello;
    t2_session_done(&s);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return ok;
}

/* KVM when it works here, else TCG. $SUBSTRATE_ACCEL=tcg|kvm decides
 * without a probe; otherwise no usable /dev/kvm means TCG, and a probe boot
 * decides once per kernel, qemu binary and /dev/kvm (cache/accel.json). */
static bool use_kvm(const vm_assets *va, const t2_backend *be, const char *disk, const char *cmdline,
                    const sub_job_opts *o, char *why, size_t wn) {
    const char *force = getenv("SUBSTRATE_ACCEL");
    if (force && (streq(force, "tcg") || streq(force, "kvm"))) {
        snprintf(why, wn, "chosen by SUBSTRATE_ACCEL=%s", force);
        return streq(force, "kvm");
    }
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, wn, "/dev/kvm: %s", strerror(errno));
        return false;
    }
    close(fd);
    _cleanup_free_ char *cachef = t2_path("cache/accel.json");
    _cleanup_free_ char *key = accel_key(va, be);
    _cleanup_json_ json_t *c = NULL;
    if (sub_json_load_file(cachef, 65536, &c, NULL) == 0 &&
        streq(json_string_value(json_object_get(c, "key")), key)) {
        snprintf(why, wn, "cached verdict: %s", json_string_value(json_object_get(c, "detail")) ?: "");
        return json_is_true(json_object_get(c, "kvm"));
    }
    note(o, "probing KVM with one short boot (once per kernel and qemu)");
    char boot[700], detail[760];
    bool ok = kvm_boot(va, be, disk, cmdline, KVM_PROBE_MS, boot, sizeof boot, NULL, NULL);
    snprintf(detail, sizeof detail, "KVM probe boot: %s", boot);
    _cleanup_json_ json_t *v = json_pack("{s:s,s:b,s:s}", "key", key, "kvm", ok, "detail", detail);
    _cleanup_free_ char *txt = sub_json_dump_pretty(v);
    (void)sub_write_file_atomic(cachef, txt, strlen(txt), 0644, NULL);
    snprintf(why, wn, "%s", detail);
    return ok;
}

static void report_set_outcome(json_t *rep, const char *outcome, int code, const sub_err *e) {
    json_object_set_new(rep, "outcome", json_string(outcome));
    json_object_set_new(rep, "runner_exit_code", json_integer(code));
    if (e && e->code) {
        json_object_set_new(rep, "error", sub_json_str(e->msg));
        json_object_set_new(rep, "reason", e->reason ? json_string(sub_reason_to_string(e->reason)) : json_null());
    }
}

int sub_job_exit_code(const json_t *report) {
    json_t *c = json_object_get(report, "runner_exit_code");
    return json_is_integer(c) ? (int)json_integer_value(c) : SUB_JOB_EXIT_RUNNER;
}

static void save_report(json_t *rep) {
    const char *id = json_string_value(json_object_get(rep, "job_id"));
    if (!id) return;
    _cleanup_free_ char *dir = t2_path("reports");
    if (sub_mkdir_p(dir, 0700, NULL) < 0) return;
    _cleanup_free_ char *p = xasprintf("%s/%s.json", dir, id);
    _cleanup_free_ char *s = sub_json_dump_pretty(rep);
    json_object_set_new(rep, "report_file", json_string(p));
    (void)sub_write_file_atomic(p, s, strlen(s), 0600, NULL);
}

static void job_frames(sub_buf *b, const sub_jobspec *j, const sub_proc_spec *ps, uint32_t uid, uint32_t gid,
                       const char *net) {
    if (net) t2_frame_str(b, SUB_GP_NET, net);
    for (char **a = ps->argv; a && *a; a++) t2_frame_str(b, SUB_GP_ARG, *a);
    for (char **v = ps->env; v && *v; v++) t2_frame_str(b, SUB_GP_ENV, *v);
    t2_frame_str(b, SUB_GP_CWD, ps->cwd);
    _cleanup_free_ char *u = xasprintf("%u:%u", uid, gid);
    t2_frame_str(b, SUB_GP_USER, u);
    for (size_t i = 0; i < j->ninputs; i++) {
        const sub_job_input *in = &j->inputs[i];
        size_t pl = strlen(in->path);
        unsigned char h[8];
        sub_gp_put32(h, in->mode);
        sub_gp_put32(h + 4, (uint32_t)pl);
        unsigned char fh[SUB_GP_HDR];
        sub_gp_header(fh, SUB_GP_INPUT, (uint32_t)(8 + pl + in->len));
        sub_buf_append(b, fh, sizeof fh);
        sub_buf_append(b, h, 8);
        sub_buf_append(b, in->path, pl);
        sub_buf_append(b, in->content, in->len);
    }
    for (size_t i = 0; i < j->nprobes; i++) {
        char t[32];
        snprintf(t, sizeof t, "%s:%u", j->probes[i].host, j->probes[i].port);
        t2_frame_str(b, SUB_GP_PROBE, t);
    }
    for (char **p = j->outputs; p && *p; p++) t2_frame_str(b, SUB_GP_OUTPUT, *p);
    unsigned char m[8];
    sub_gp_put64(m, j->output_max_bytes);
    t2_frame(b, SUB_GP_OUTMAX, m, 8);
    for (size_t off = 0; off < j->stdin_len; off += 65536) {
        size_t n = j->stdin_len - off < 65536 ? j->stdin_len - off : 65536;
        t2_frame(b, SUB_GP_STDIN, j->stdin_data + off, n);
    }
    t2_frame(b, SUB_GP_RUN, NULL, 0);
}

/* A cancel that fired before the VM (or tier 0's process) started: nothing runs (-ECANCELED). */
static int cancelled_before(const sub_job_opts *o, bool tier0, sub_err *e) {
    if (!o || !o->ncancel) return 0;
    struct pollfd pf[SUB_JOB_CANCEL_MAX];
    size_t n = o->ncancel < SUB_JOB_CANCEL_MAX ? o->ncancel : SUB_JOB_CANCEL_MAX;
    for (size_t i = 0; i < n; i++) pf[i] = (struct pollfd){.fd = o->cancel[i].fd, .events = o->cancel[i].events};
    if (poll(pf, n, 0) <= 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (pf[i].revents)
            return sub_err_setk(e, SUB_KIND_ENV, -ECANCELED, "the job was cancelled before its %s started (%s)",
                                tier0 ? "process" : "VM", o->cancel[i].why ? o->cancel[i].why : "cancelled by the caller");
    return 0;
}

static bool test_hang(void) {
    const char *h = getenv("SUBSTRATE_TEST_GUEST_HANG");
    return h && !strcmp(h, "boot");
}

typedef struct run_ctx {
    const sub_jobspec *j;
    const sub_job_opts *o;
    json_t *rep;
    sub_pubkey **keys;
    size_t nkeys;
} run_ctx;

/* Everything after authorisation. Fills c->rep; returns 0 when the report
 * stands (whatever the outcome), < 0 for a refusal or failure before a VM. */
static int run_job(run_ctx *c, sub_err *e) {
    const sub_jobspec *j = c->j;
    json_t *rep = c->rep;
    int64_t t_start = t2_now_ms();
    json_t *phases = json_object(); /* where the time went, ms (in the report) */
    json_object_set_new(rep, "phases_ms", phases);
#define PHASE(name)                                                                                \
    do {                                                                                           \
        int64_t _n = t2_now_ms();                                                                  \
        json_object_set_new(phases, name, json_integer(_n - t_phase));                             \
        t_phase = _n;                                                                              \
    } while (0)
    int64_t t_phase = t_start;
    int r;

    if (geteuid() != 0)
        return sub_err_setk(e, SUB_KIND_ENV, -EPERM, "the Tier-2 runner needs root: it makes namespaces, cgroups "
                            "and a uid of its own for each job's VMM (run it as root)");
    /* dead runners' leftovers first: a clean slate, reported */
    json_t *swept = NULL;
    if (sub_job_sweep(&swept, NULL) > 0) json_object_set_new(rep, "swept", swept);
    else json_decref(swept);
    PHASE("sweep");

    if (streq(j->ref.digest, ZERO_DIGEST))
        return sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, -EINVAL,
                            "%s: the image digest is the all-zero placeholder of the reference jobspec: pin the "
                            "digest build-sign-push printed for the job image, then sign the result with "
                            "`substrate sign-blob` (scripts/demo does both for the reference)",
                            j->path ? j->path : j->name);
    /* the image: admitted under the jobspec's policy, with the same keys */
    _cleanup_reg_ sub_reg *reg = NULL;
    sub_reg_opts ro = {.host = j->ref.registry};
    if ((r = sub_reg_new(&ro, &reg, e)) < 0) return r;
    note(c->o, "verifying the image %s/%s@%s", j->ref.registry, j->ref.repository, j->ref.digest);
    _cleanup_admission_ sub_admission ad = {0};
    r = sub_job_admit_image(j, (const sub_pubkey *const *)c->keys, c->nkeys, reg, &ad, e);
    if (r < 0) return r;
    const char *img_key = ad.sig.verified >= 0 && (size_t)ad.sig.verified < ad.sig.n_records
                              ? ad.sig.records[ad.sig.verified].key_id
                              : "";
    json_object_set_new(json_object_get(rep, "image"), "key_id", json_string(img_key));
    note(c->o, "image verified: signed by key %s", img_key);
    PHASE("admit_image");

    t2_disk disk = {0};
    t0_prep tp = {0};
    vm_assets va = {0};
    const sub_image_config *icfg;
    bool tier0 = j->tier == 0;
    if (tier0) {
        if ((r = t0_prepare(j, reg, c->o ? c->o->note : NULL, c->o ? c->o->ud : NULL, &tp, e)) < 0) {
            t0_prep_done(&tp);
            return r;
        }
        json_object_set_new(json_object_get(rep, "image"), "rootfs",
                            json_pack("{s:s,s:b,s:I}", "path", tp.ri.rootfs, "cached", tp.ri.reused, "entries",
                                      (json_int_t)tp.ri.entries));
        icfg = &tp.config;
        PHASE("rootfs");
    } else {
        if ((r = t2_disk_prepare(&j->ref, reg, c->o ? c->o->note : NULL, c->o ? c->o->ud : NULL, &disk, e)) < 0)
            return r;
        json_object_set_new(json_object_get(rep, "image"), "disk",
                            json_pack("{s:s,s:b}", "path", disk.path, "cached", disk.reused));
        icfg = &disk.config;
        PHASE("disk");
    }

    _cleanup_free_ char *what = xasprintf("jobspec %s", j->path ? j->path : j->name);
    sub_proc_spec_in pin = {.what = what, .doc = "jobspec", .reason = SUB_R_BAD_JOBSPEC, .command = j->command,
                            .args = j->args, .env = j->env, .user = j->user, .workdir = j->workdir};
    _cleanup_proc_spec_ sub_proc_spec ps = {0};
    r = sub_proc_spec_resolve(&pin, icfg, &ps, e);
    if (r < 0) {
        t2_disk_done(&disk);
        t0_prep_done(&tp);
        return r;
    }
    /* the jobspec's user; else the image's unless it is root; else nobody.
     * Tier 0: always the job's own uid (set when the job dir is made). */
    uint32_t uid = ps.uid, gid = ps.gid;
    if (!ps.user_from_doc && (!ps.user_given || uid == 0)) uid = gid = 65534;
    if (tier0 && !j->workdir && (!icfg->working_dir || !*icfg->working_dir || streq(icfg->working_dir, "/"))) {
        free(ps.cwd); /* no workdir anywhere: start in the private one, not in / */
        ps.cwd = xstrdup(tp.workdir);
    }

    const t2_backend *be = NULL;
    _cleanup_free_ char *cmdline = NULL;
    bool kvm = false;
    if (tier0) {
        json_object_set_new(rep, "backend", json_string("process"));
    } else {
        if ((r = prepare_assets(&va, e)) < 0 || (r = t2_backend_qemu(&be, e)) < 0) {
            vm_assets_done(&va);
            t2_disk_done(&disk);
            return r;
        }
        cmdline = xasprintf("console=ttyS0 quiet loglevel=4 tsc=reliable no_timer_check tsc_early_khz=%lu "
                            "rdinit=/init panic=-1%s", va.tsc_khz, test_hang() ? " substrate_hang=boot" : "");
        char accel_why[800];
        kvm = use_kvm(&va, be, disk.path, cmdline, c->o, accel_why, sizeof accel_why);
        json_object_set_new(rep, "backend", json_string(be->name));
        json_object_set_new(rep, "accelerator", json_string(kvm ? "kvm" : "tcg"));
        json_object_set_new(rep, "accelerator_why", json_string(accel_why));
        json_object_set_new(rep, "kernel",
                            json_pack("{s:s,s:s}", "version", va.kernel.version, "image", va.kernel.vmlinux));
        PHASE("vm_assets");
    }

    /* the job: id, dir, lock, uid */
    job jb = {.lock_fd = -1, .uid_lock = -1, .eg = {.tap_fd = -1}};
    job_id(j->name, jb.id);
    json_object_set_new(rep, "job_id", json_string(jb.id));
    _cleanup_free_ char *jobs = t2_path("jobs");
    jb.dir = sub_path_join(jobs, jb.id);
    _cleanup_free_ char *root = sub_path_join(jb.dir, "root");
    _cleanup_free_ char *outdir = t2_path("reports");
    session s;
    t2_session_init(&s);
    s.outputs_dir = xasprintf("%s/%s.outputs", outdir, jb.id);
    bool ran = false;
    int64_t deadline = 0;
    sigset_t block, old;
    block_stop_signals(&block, &old);
    bool own_signals = !(c->o && c->o->caller_handles_signals);

    if ((r = job_open(&jb, e)) < 0) goto teardown;
    const char *proc_key = tier0 ? "process" : "vmm";
    json_object_set_new(rep, proc_key, json_pack("{s:I}", "uid", (json_int_t)jb.uid));
    if (j->negress) {
        note(c->o, "egress: a tap in the job's own network namespace, nftables admitting %zu destination(s)",
             j->negress);
        if ((r = t2_egress_setup(jb.id + strlen(jb.id) - 8, (unsigned)(jb.uid % SUB_JOB_UID_COUNT), j, &jb.eg, e)) < 0)
            goto teardown;
        json_object_set_new(rep, "network", json_pack("{s:s,s:s,s:s,s:s}", "netns", jb.eg.netns, "nft_table",
                                                      jb.eg.table, "uplink", jb.eg.uplink[0] ? jb.eg.uplink : "host",
                                                      "guest", jb.eg.guest_net));
    }
    if (c->o) {
        s.cancel = c->o->cancel;
        s.ncancel = c->o->ncancel;
    }
    PHASE("job_setup");
    if ((r = cancelled_before(c->o, tier0, e)) < 0) goto teardown;
    if (tier0) {
        note(c->o, "starting the job as a process (tier 0: namespaces, cgroup, uid %u; %u MiB, deadline %us)",
             (unsigned)jb.uid, j->memory_mb, j->timeout_s);
        if ((r = t0_start(&jb, &s, &tp, j->memory_mb, root, own_signals ? &block : NULL, rep, e)) < 0) goto teardown;
        uid = gid = jb.uid;
    } else {
        vm_spec v = {.va = &va, .be = be, .disk = disk.path, .cmdline = cmdline, .root = root, .vcpus = j->vcpus,
                     .memory_mb = j->memory_mb, .kvm = kvm, .tap_fd = jb.eg.tap_fd, .mac = jb.eg.mac,
                     .block = own_signals ? &block : NULL};
        note(c->o, "starting the microVM (%s, %s, %u MiB, %u vCPU, deadline %us)", be->name, kvm ? "kvm" : "tcg",
             j->memory_mb, j->vcpus, j->timeout_s);
        if ((r = vm_start(&jb, &s, &v, e)) < 0) goto teardown;
    }
    deadline = s.t0 + (int64_t)j->timeout_s * 1000;
    PHASE("jail_spawn");
    jb.netns_ino = ns_inode(jb.jail.pid, "net");
    json_object_set_new(json_object_get(rep, proc_key), "pid", json_integer(jb.jail.pid));
    job_frames(&s.out, j, &ps, uid, gid, jb.eg.made ? jb.eg.guest_net : NULL);
    ran = true;
    t2_session_loop(&s, deadline);
    PHASE("run");
    r = 0;

teardown:;
    /* teardown: kill what is left (the jail's cgroup, all of it), reap,
     * remove, then audit */
    int64_t t_td = t2_now_ms();
    int wst = -1;
    sub_err te = {0};
    _cleanup_strv_ char **cgroups = NULL;
    int audit_pidfd = -1;
    if (jb.jailed) {
        for (char **cg = jb.jail.cgroup_dirs; cg && *cg; cg++) strv_push(&cgroups, *cg);
        if (jb.jail.pidfd >= 0) audit_pidfd = fcntl(jb.jail.pidfd, F_DUPFD_CLOEXEC, 3);
        (void)sub_jail_destroy(&jb.jail, &wst, &te);
    }
    t2_session_drain(&s);
    json_t *counters = jb.eg.made ? t2_egress_counters(&jb.eg) : NULL;
    t2_egress_teardown(&jb.eg);
    vm_close(&jb, &s);
    json_t *td = audit(&jb, (const char *const *)cgroups, jb.jailed, audit_pidfd, tier0);
    if (audit_pidfd >= 0) close(audit_pidfd);
    json_object_set_new(td, "ms", json_integer(t2_now_ms() - t_td));
    json_object_set_new(rep, "teardown", td);
    if (jb.jailed) sub_jail_done(&jb.jail);
    /* a signal that came during teardown is ours (signalfd drained above or
     * now): never let it hit the default handler half-way */
    {
        struct timespec zero = {0};
        siginfo_t si;
        while (own_signals && sigtimedwait(&block, &si, &zero) > 0) {
            s.interrupted = true;
            s.signal = si.si_signo;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);

    int residual = (int)json_integer_value(json_object_get(td, "residual"));
    if (ran) {
        int64_t now = t2_now_ms();
        json_object_set_new(rep, "duration_ms", json_integer(now - s.t0));
        if (tier0) {
            json_object_set_new(rep, "start_ms", s.hello ? json_integer(s.hello_ms) : json_null());
        } else {
            json_object_set_new(rep, "boot_ms", s.hello ? json_integer(s.hello_ms) : json_null());
            json_object_set_new(rep, "guest_uptime_at_hello_ms", s.hello ? json_integer(s.guest_uptime_ms) : json_null());
        }
        json_object_set_new(rep, "timed_out", json_boolean(s.timed_out));
        json_object_set_new(rep, "exit_code", s.exit_code >= 0 && !s.timed_out ? json_integer(s.exit_code) : json_null());
        json_object_set_new(rep, "stdout", t2_stream_json(&s.so));
        json_object_set_new(rep, "stderr", t2_stream_json(&s.se));
        bool violation = false;
        json_t *verdicts = t2_egress_verdict(j, s.probes, counters, &violation);
        if (tier0) t0_egress_evidence(verdicts);
        json_object_set_new(rep, "egress", verdicts);
        json_object_set_new(rep, "outputs", json_incref(s.outputs));
        if (json_array_size(s.errors)) json_object_set_new(rep, "agent_errors", json_incref(s.errors));
        if (s.con_len) {
            _cleanup_free_ char *ct = xstrndup(s.console, s.con_len);
            _cleanup_free_ char *cc = sub_utf8_sanitize(ct);
            json_object_set_new(rep, tier0 ? "agent_log_tail" : "console_tail", json_string(cc));
        }
        json_object_set_new(rep, tier0 ? "process_wait_status" : "vmm_wait_status", json_integer(wst));
        json_object_set_new(rep, "total_ms", json_integer(now - t_start));
        sub_err oe = {0};
        int code = 0;
        const char *outcome = t2_outcome(&s, residual, violation, j->timeout_s, &code, &oe);
        if (residual) /* name the job: the report may be read alone */
            sub_err_prefix(&oe, "job %s", jb.id);
        report_set_outcome(rep, outcome, code, oe.code ? &oe : NULL);
    } else {
        if (residual) json_object_set_new(rep, "teardown_residual_after_refusal", json_integer(residual));
    }
    json_decref(counters);
    t2_session_done(&s);
    free(jb.dir);
    vm_assets_done(&va);
    t2_disk_done(&disk);
    t0_prep_done(&tp);
    (void)te;
    return r;
}

static json_t *report_new(const sub_jobspec *j) {
    _cleanup_free_ char *img = xasprintf("%s/%s@%s", j->ref.registry, j->ref.repository, j->ref.digest);
    json_t *rep = json_pack("{s:n,s:s,s:{},s:{s:s,s:s},s:i,s:s}", "job_id", "name", j->name, "jobspec", "image",
                            "ref", img, "digest", j->ref.digest, "tier", j->tier, "boundary",
                            j->tier == 0 ? "process" : "microvm");
    if (j->tier == 0)
        json_object_set_new(rep, "boundary_note",
                            json_string("tier 0: a process boundary, not a VM: the job shares the host's kernel "
                                        "(namespaces, a cgroup, an unprivileged uid, no capabilities); weaker "
                                        "than tier 2's microVM"));
    return rep;
}

static int finish(run_ctx *c, int r, const sub_err *e, json_t **report) {
    /* a refusal is the job's fault (input, a check said no); a failure the runner's */
    if (r < 0)
        report_set_outcome(c->rep, r == -ECANCELED ? "cancelled" : sub_err_exit_code(e) == SUB_EXIT_ENV ? "failed" : "refused",
                           SUB_JOB_EXIT_RUNNER, e);
    save_report(c->rep);
    *report = c->rep;
    c->rep = NULL;
    return 0;
}

int sub_job_run_signed(const char *path, const sub_job_opts *o, json_t **report, sub_err *e) {
    *report = NULL;
    _cleanup_job_signed_ sub_job_signed s = {0};
    int r = sub_job_authorize(path, o ? o->key_files : NULL, o ? o->signature_path : NULL, &s, e);
    if (!s.sha256[0]) return r; /* not even read: no report */
    json_t *pre = json_pack("{s:n,s:{s:s,s:s,s:s}}", "job_id", "jobspec", "path", path, "sha256", s.sha256,
                            "signature", s.signature_path);
    run_ctx c = {.o = o, .rep = pre};
    if (s.key_id[0]) {
        json_object_set_new(json_object_get(pre, "jobspec"), "key_id", json_string(s.key_id));
        json_object_set_new(json_object_get(pre, "jobspec"), "authorization", json_string("signature"));
        json_object_set_new(pre, "authorization", json_string("signature"));
        note(o, "jobspec %s: signature verified (key %s)", path, s.key_id);
    }
    if (r < 0) return finish(&c, r, e, report);
    c.j = &s.spec;
    c.keys = s.keys;
    c.nkeys = s.nkeys;
    json_t *base = report_new(&s.spec);
    json_object_update(base, pre);
    json_decref(pre);
    c.rep = base;
    r = run_job(&c, e);
    return finish(&c, r, e, report);
}

int sub_job_run_authorized(const sub_jobspec *j, const char *authorization, const json_t *origin,
                           const sub_job_opts *o, json_t **report, sub_err *e) {
    *report = NULL;
    run_ctx c = {.o = o, .j = j, .rep = report_new(j)};
    json_object_set_new(json_object_get(c.rep, "jobspec"), "authorization", json_string(authorization));
    json_object_set_new(c.rep, "authorization", json_string(authorization));
    if (origin) json_object_set_new(c.rep, "origin", json_deep_copy(origin));
    if (j->tier == 0) /* escalation leads to a microVM, never to a process on the host */
        return finish(&c, sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, -EPERM,
                                       "%s: tier: tier 0 is never reachable through escalation (%s): an escalated "
                                       "job runs in a tier-2 microVM; drop \"tier\": 0",
                                       j->path ? j->path : j->name, authorization),
                      e, report);
    int r = t2_load_keys(o ? o->key_files : NULL, &c.keys, &c.nkeys, e);
    if (r == 0) r = run_job(&c, e);
    sub_pubkeys_free(c.keys);
    return finish(&c, r, e, report);
}

/* ---- nested-smoke: does a hardware-backed microVM boot here? ---- */
static void qemu_version(const char *bin, char *out, size_t n) {
    char *argv[] = {(char *)bin, "--version", NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stderr_fd = SUB_FD_NULL;
    _cleanup_free_ char *txt = NULL;
    int st = 0;
    snprintf(out, n, "unknown");
    if (sub_run_capture(argv, &po, 4096, &txt, &st, NULL) < 0 || !txt) return;
    const char *v = strstr(txt, "version ");
    if (v) snprintf(out, n, "%.*s", (int)strcspn(v + 8, " \n"), v + 8);
}

int sub_vm_kvm_smoke(uint32_t deadline_ms, const char *device, sub_kvm_smoke *res, sub_err *e) {
    *res = (sub_kvm_smoke){.cause = "setup"};
    const t2_backend *be = NULL;
    int r = t2_backend_qemu(&be, e);
    if (r < 0) return r;
    qemu_version(be->binary, res->qemu_version, sizeof res->qemu_version);
    int64_t t0 = t2_now_ms();
    const char *dev = device ? device : "/dev/kvm";
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        res->cause = err == ENOENT ? "no_device" : err == EACCES || err == EPERM ? "no_permission" : "device_error";
        if (err == ENOENT)
            snprintf(res->reason, sizeof res->reason,
                     "no %s: this kernel offers no KVM here (the kvm module is not loaded, or the machine exposes "
                     "no hardware or nested virtualisation); microVMs run on TCG (software emulation) only", dev);
        else
            snprintf(res->reason, sizeof res->reason, "%s: %s%s", dev, strerror(err),
                     err == EACCES || err == EPERM ? " (run as root, or as a member of its group, usually kvm)" : "");
        res->ms = t2_now_ms() - t0;
        vm_assets va = {0};
        if (prepare_assets(&va, NULL) == 0) snprintf(res->kernel_version, sizeof res->kernel_version, "%s", va.kernel.version);
        vm_assets_done(&va);
        return 0;
    }
    close(fd);
    if (device && !streq(device, "/dev/kvm")) /* the jail makes /dev/kvm visible, nothing else */
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "%s opens, but only /dev/kvm can be booted with", device);
    vm_assets va = {0};
    if ((r = prepare_assets(&va, e)) < 0) {
        vm_assets_done(&va);
        return r;
    }
    snprintf(res->kernel_version, sizeof res->kernel_version, "%s", va.kernel.version);
    _cleanup_free_ char *cmdline =
        xasprintf("console=ttyS0 quiet loglevel=4 tsc=reliable no_timer_check tsc_early_khz=%lu rdinit=/init panic=-1",
                  va.tsc_khz);
    int64_t ms = 0;
    const char *cause = NULL;
    res->pass = kvm_boot(&va, be, NULL, cmdline, deadline_ms, res->reason, sizeof res->reason, &cause, &ms);
    res->cause = cause;
    res->ms = ms;
    vm_assets_done(&va);
    return 0;
}
