/* substrate-agent: PID 1 of a Tier-2 microVM.
 *
 * Loads the kernel modules listed in /modules.order (virtio transport,
 * console, block, the filesystem chain), opens the virtio-serial port named
 * substrate.ctl (found by name, never by number), reads the job from the
 * host (include/substrate/guestproto.h), mounts the job's root filesystem
 * (/dev/vda, erofs, read-only) under an overlay whose writable layer is a
 * tmpfs, brings up lo, dials the probes, runs the command as the job's user
 * with its env, working directory and stdin, streams stdout and stderr,
 * reports the exit status, copies the outputs back, and powers off.
 *
 * Static, no library of ours: it is the only program in the initramfs.
 * Any failure is reported to the host as an ERROR frame (when the port is
 * open) and on the console, then the VM powers off: the host treats a VM
 * that stops without DONE as a failed job, and one that never answers is
 * caught by the host's deadline.
 *
 * Test hook (documented in the README): the kernel parameter
 * substrate_hang=boot (an environment variable of PID 1) makes the agent
 * stop before it opens the port, as a guest that never boots would. */
#include "substrate/guestproto.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AGENT_VERSION "substrate-agent 1"
#define MAX_ITEMS 4096
#define PROBE_TIMEOUT_MS 3000
#define ROOT "/newroot"

static int ctl = -1;
/* Tier-0 (`substrate-agent --process`): PID 1 of the job's PID namespace on
 * the host, started by the runner's jail as the job's uid with no
 * capabilities, its root already the job's (pivot_root), lo already up, the
 * channel on the fd its second argument names. Nothing is mounted, loaded or chrooted here; no user is
 * set (it already is the job's); the end is an exit, not a power-off. */
static bool process_mode;
static const char *root = ROOT; /* the job's root as the agent sees it ("" in process mode) */

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n) c *= 2;
        unsigned char *q = realloc(b->p, c);
        if (!q) abort();
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void say(const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    dprintf(2, "substrate-agent: %s\n", m);
}

static int write_all(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    unsigned char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) return -EPIPE;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static void send_frame2(uint8_t type, const void *a, size_t na, const void *b, size_t nb) {
    if (ctl < 0) return;
    unsigned char h[SUB_GP_HDR];
    sub_gp_header(h, type, (uint32_t)(na + nb));
    if (write_all(ctl, h, sizeof h) < 0 || (na && write_all(ctl, a, na) < 0) ||
        (nb && write_all(ctl, b, nb) < 0))
        say("writing to the host failed: %s", strerror(errno));
}

static void send_frame(uint8_t type, const void *p, size_t n) { send_frame2(type, p, n, NULL, 0); }

static void send_text(uint8_t type, const char *fmt, ...) {
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof m) n = sizeof m - 1;
    send_frame(type, m, (size_t)n);
}

static _Noreturn void power_off(void) {
    if (process_mode) _exit(0);
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
}

/* Report, then stop the VM. */
static _Noreturn void fail(const char *step, int err) {
    say("%s: %s", step, strerror(err));
    send_text(SUB_GP_ERROR, "%s: %s", step, strerror(err));
    send_frame(SUB_GP_DONE, NULL, 0);
    power_off();
}

static uint64_t now_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void load_modules(void) {
    FILE *f = fopen("/modules.order", "re");
    if (!f) return; /* a kernel with everything built in */
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char path[320];
        snprintf(path, sizeof path, "/lib/modules/%s", line);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail(path, errno);
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) fail(path, errno);
        close(fd);
    }
    fclose(f);
}

/* /dev/vportNpM whose /sys/class/virtio-ports/<it>/name is SUB_GUEST_PORT. */
static int open_port(void) {
    for (int tries = 0; tries < 3000; tries++) {
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char p[300], name[64] = {0};
            snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", de->d_name);
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ssize_t n = read(fd, name, sizeof name - 1);
            close(fd);
            if (n <= 0) continue;
            name[strcspn(name, "\n")] = 0;
            if (strcmp(name, SUB_GUEST_PORT) != 0) continue;
            snprintf(p, sizeof p, "/dev/%s", de->d_name);
            int pfd = open(p, O_RDWR | O_CLOEXEC);
            if (pfd >= 0) {
                closedir(d);
                return pfd;
            }
        }
        if (d) closedir(d);
        usleep(10000);
    }
    fail("no virtio-serial port named " SUB_GUEST_PORT, ENODEV);
}

typedef struct job {
    char *argv[MAX_ITEMS + 1];
    size_t argc;
    char *envp[MAX_ITEMS + 2];
    size_t envc;
    char *cwd;
    uid_t uid;
    gid_t gid;
    bool have_user;
    char *probes[64];
    size_t nprobes;
    char *outputs[64];
    size_t noutputs;
    uint64_t outmax;
    buf stdin_data;
    buf inputs; /* INPUT payloads, back to back, each prefixed by its u32 length */
    char *net;
} job;

static char *strndup_or_die(const unsigned char *p, size_t n) {
    if (memchr(p, 0, n)) fail("a string from the host holds a NUL byte", EINVAL);
    char *s = strndup((const char *)p, n);
    if (!s) fail("memory", ENOMEM);
    return s;
}

static void read_job(job *j) {
    unsigned char h[SUB_GP_HDR];
    for (;;) {
        int r = read_all(ctl, h, sizeof h);
        if (r < 0) fail("reading the job from the host", -r);
        uint32_t len = sub_gp_get32(h);
        uint8_t type = h[4];
        if (len > SUB_GP_MAX_PAYLOAD) fail("a frame from the host is too large", EMSGSIZE);
        unsigned char *p = malloc(len ? len : 1);
        if (!p) fail("memory", ENOMEM);
        r = read_all(ctl, p, len);
        if (r < 0) fail("reading the job from the host", -r);
        switch (type) {
        case SUB_GP_ARG:
            if (j->argc >= MAX_ITEMS) fail("too many arguments", E2BIG);
            j->argv[j->argc++] = strndup_or_die(p, len);
            break;
        case SUB_GP_ENV:
            if (j->envc >= MAX_ITEMS) fail("too many environment variables", E2BIG);
            j->envp[j->envc++] = strndup_or_die(p, len);
            break;
        case SUB_GP_CWD: free(j->cwd); j->cwd = strndup_or_die(p, len); break;
        case SUB_GP_USER: {
            char *s = strndup_or_die(p, len);
            unsigned long u, g;
            if (sscanf(s, "%lu:%lu", &u, &g) != 2) fail("USER is not uid:gid", EINVAL);
            if (process_mode && (u != getuid() || g != getgid())) fail("USER is not the agent's own uid:gid", EPERM);
            j->uid = (uid_t)u;
            j->gid = (gid_t)g;
            j->have_user = true;
            free(s);
            break;
        }
        case SUB_GP_INPUT: {
            unsigned char l[4];
            sub_gp_put32(l, len);
            buf_add(&j->inputs, l, 4);
            buf_add(&j->inputs, p, len);
            break;
        }
        case SUB_GP_PROBE:
            if (j->nprobes >= 64) fail("too many probes", E2BIG);
            j->probes[j->nprobes++] = strndup_or_die(p, len);
            break;
        case SUB_GP_OUTPUT:
            if (j->noutputs >= 64) fail("too many outputs", E2BIG);
            j->outputs[j->noutputs++] = strndup_or_die(p, len);
            break;
        case SUB_GP_OUTMAX:
            if (len != 8) fail("OUTMAX is not 8 bytes", EINVAL);
            j->outmax = sub_gp_get64(p);
            break;
        case SUB_GP_STDIN: buf_add(&j->stdin_data, p, len); break;
        case SUB_GP_NET: free(j->net); j->net = strndup_or_die(p, len); break;
        case SUB_GP_RUN: free(p); return;
        default: fail("unknown frame type from the host", EPROTO);
        }
        free(p);
    }
}

static void mkdir_p(const char *path, mode_t mode) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        (void)mkdir(tmp, mode);
        *s = '/';
    }
    (void)mkdir(tmp, mode);
}

static void wait_for(const char *path) {
    for (int i = 0; i < 1000 && access(path, F_OK) < 0; i++) usleep(10000);
}

static void mount_root(void) {
    wait_for("/dev/vda");
    mkdir_p("/mnt/lower", 0755);
    mkdir_p("/mnt/rw", 0755);
    if (mount("/dev/vda", "/mnt/lower", "erofs", MS_RDONLY | MS_NODEV, NULL) < 0)
        fail("mount the job's root filesystem (/dev/vda, erofs)", errno);
    if (mount("tmpfs", "/mnt/rw", "tmpfs", MS_NODEV, "mode=0755") < 0) fail("mount tmpfs for writes", errno);
    mkdir_p("/mnt/rw/upper", 0755);
    mkdir_p("/mnt/rw/work", 0755);
    if (mount("overlay", ROOT, "overlay", MS_NODEV,
              "lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work") < 0)
        fail("mount the overlay root", errno);
    mkdir_p(ROOT "/proc", 0555);
    mkdir_p(ROOT "/dev", 0755);
    mkdir_p(ROOT "/tmp", 01777);
    mkdir_p(ROOT "/sys", 0555);
    if (mount("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) fail("mount /proc", errno);
    if (mount("sysfs", ROOT "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail("mount /sys", errno);
    /* a /dev of its own: the job never sees the disk or the host channel */
    if (mount("tmpfs", ROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0) fail("mount /dev", errno);
    static const struct { const char *n; unsigned maj, min; } devs[] = {
        {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
        char p[64];
        snprintf(p, sizeof p, ROOT "/dev/%s", devs[i].n);
        if (mknod(p, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)) < 0) fail(p, errno);
        (void)chmod(p, 0666);
    }
    (void)symlink("/proc/self/fd", ROOT "/dev/fd");
    mkdir_p(ROOT "/dev/shm", 01777);
    if (mount("tmpfs", ROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) fail("mount /tmp", errno);
}

/* INPUT payload: u32 mode, u32 path length, path, content. Written as root,
 * beneath the root (never through a symlink out of it), owned by the job. */
static void write_inputs(job *j) {
    int rootfd = open(root[0] ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) fail("open the root", errno);
    size_t off = 0;
    while (off + 4 <= j->inputs.len) {
        uint32_t n = sub_gp_get32(j->inputs.p + off);
        const unsigned char *p = j->inputs.p + off + 4;
        off += 4 + (size_t)n;
        if (off > j->inputs.len || n < 8) fail("a malformed INPUT frame", EPROTO);
        uint32_t mode = sub_gp_get32(p), pl = sub_gp_get32(p + 4);
        if (pl == 0 || pl > n - 8) fail("a malformed INPUT frame", EPROTO);
        char *path = strndup_or_die(p + 8, pl);
        if (path[0] != '/') fail("an INPUT path is not absolute", EINVAL);
        char full[4200];
        snprintf(full, sizeof full, "%s%s", root, path);
        char *slash = strrchr(full, '/');
        *slash = 0;
        mkdir_p(full, 0755);
        *slash = '/';
        struct open_how how = {.flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                               .mode = mode & 07777, .resolve = RESOLVE_IN_ROOT};
        int fd = (int)syscall(SYS_openat2, rootfd, path + 1, &how, sizeof how);
        if (fd < 0) fail(path, errno);
        if (write_all(fd, p + 8 + pl, n - 8 - pl) < 0) fail(path, errno);
        if (fchmod(fd, mode & 07777) < 0 || fchown(fd, j->uid, j->gid) < 0) fail(path, errno);
        close(fd);
        free(path);
    }
    close(rootfd);
}

/* Each output's directory exists and the job may write into it: parents
 * the agent makes are root's, the last one (when made here) the job's. */
static void prepare_outputs(const job *j) {
    for (size_t i = 0; i < j->noutputs; i++) {
        const char *p = j->outputs[i];
        if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./")) continue;
        char full[4200];
        snprintf(full, sizeof full, "%s%s", root, p);
        char *slash = strrchr(full, '/');
        if (slash == full + strlen(root)) continue; /* directly under / */
        *slash = 0;
        struct stat st;
        if (lstat(full, &st) == 0) continue;
        mkdir_p(full, 0755);
        if (chown(full, j->uid, j->gid) < 0) fail(full, errno);
    }
}

static void if_up(int s, const char *name) {
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) fail(name, errno);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) fail(name, errno);
}

static void set_addr(int s, unsigned long req, const char *ifn, in_addr_t a) {
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifn);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = a;
    if (ioctl(s, req, &ifr) < 0) fail("configure eth0", errno);
}

/* "a.b.c.d/prefix gw": eth0's address, and the default route via gw. */
static void net_up(const job *j) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) fail("socket", errno);
    if_up(s, "lo");
    if (j->net) {
        char addr[32], gw[32];
        unsigned prefix;
        if (sscanf(j->net, "%31[0-9.]/%u %31[0-9.]", addr, &prefix, gw) != 3 || prefix > 32)
            fail("NET is not 'addr/prefix gateway'", EINVAL);
        struct in_addr a, g;
        if (inet_pton(AF_INET, addr, &a) != 1 || inet_pton(AF_INET, gw, &g) != 1) fail("NET address", EINVAL);
        wait_for("/sys/class/net/eth0");
        set_addr(s, SIOCSIFADDR, "eth0", a.s_addr);
        set_addr(s, SIOCSIFNETMASK, "eth0", prefix ? htonl(~0u << (32 - prefix)) : 0);
        if_up(s, "eth0");
        struct rtentry rt = {0};
        struct sockaddr_in *d = (struct sockaddr_in *)&rt.rt_dst, *m = (struct sockaddr_in *)&rt.rt_genmask,
                           *gwa = (struct sockaddr_in *)&rt.rt_gateway;
        d->sin_family = m->sin_family = gwa->sin_family = AF_INET;
        gwa->sin_addr = g;
        rt.rt_flags = RTF_UP | RTF_GATEWAY;
        rt.rt_dev = (char *)"eth0";
        if (ioctl(s, SIOCADDRT, &rt) < 0) fail("add the default route", errno);
    }
    close(s);
}

static const char *errno_name(int e) {
    switch (e) {
    case 0: return "0";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ECONNRESET: return "ECONNRESET";
    default: return "EOTHER";
    }
}

static void run_probe(const char *target) {
    char host[32];
    unsigned port;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (sscanf(target, "%31[0-9.]:%u", host, &port) != 2 || port == 0 || port > 65535 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        send_text(SUB_GP_PROBE_RESULT, "%s error EINVAL 0", target);
        return;
    }
    sa.sin_port = htons((uint16_t)port);
    uint64_t t0 = now_ms(CLOCK_MONOTONIC);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    const char *res;
    if (s < 0) {
        err = errno;
        res = "error";
    } else if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) {
        res = "connected";
    } else if (errno != EINPROGRESS) {
        err = errno;
        res = NULL;
    } else {
        struct pollfd pf = {.fd = s, .events = POLLOUT};
        int pr = poll(&pf, 1, PROBE_TIMEOUT_MS);
        if (pr == 0) {
            err = ETIMEDOUT;
            res = "timeout";
        } else {
            socklen_t sl = sizeof err;
            if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &sl) < 0) err = errno;
            res = err ? NULL : "connected";
        }
    }
    if (!res) {
        res = err == ECONNREFUSED                              ? "refused"
              : (err == ENETUNREACH || err == EHOSTUNREACH)   ? "unreachable"
              : (err == EPERM || err == EACCES)               ? "denied"
              : err == ETIMEDOUT                              ? "timeout"
                                                              : "error";
    }
    if (s >= 0) close(s);
    send_text(SUB_GP_PROBE_RESULT, "%s %s %s %llu", target, res, errno_name(err),
              (unsigned long long)(now_ms(CLOCK_MONOTONIC) - t0));
}

static bool has_path(const job *j) {
    for (size_t i = 0; i < j->envc; i++)
        if (strncmp(j->envp[i], "PATH=", 5) == 0) return true;
    return false;
}

static int g_exec_err[2];

static _Noreturn void child(job *j, int in, int out, int err) {
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int e;
    const char *step;
    if (!process_mode && chroot(ROOT) < 0) { e = errno; step = "chroot"; goto bad; }
    if (chdir(j->cwd ? j->cwd : "/") < 0) { e = errno; step = "chdir to the working directory"; goto bad; }
    if (!process_mode && (setgroups(0, NULL) < 0 || setgid(j->gid) < 0 || setuid(j->uid) < 0)) { e = errno; step = "set the user"; goto bad; }
    if (process_mode) umask(022); /* the jail's 077 is the agent's, not the job's */
    if (!has_path(j)) j->envp[j->envc++] = (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    j->envp[j->envc] = NULL;
    j->argv[j->argc] = NULL;
    environ = j->envp;
    execvp(j->argv[0], j->argv);
    e = errno;
    step = "exec";
bad:;
    char m[256];
    int n = snprintf(m, sizeof m, "%d %s %s", e, step, j->argv[0]);
    (void)!write(g_exec_err[1], m, (size_t)n);
    _exit(e == ENOENT ? 127 : 126);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void run_job(job *j) {
    if (j->argc == 0) fail("no command", EINVAL);
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(g_exec_err, O_CLOEXEC) < 0)
        fail("pipe", errno);
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGCHLD);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) fail("signalfd", errno);
    pid_t pid = fork();
    if (pid < 0) fail("fork", errno);
    if (pid == 0) child(j, in[0], out[1], err[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    close(g_exec_err[1]);
    char em[256] = {0};
    ssize_t en = read(g_exec_err[0], em, sizeof em - 1);
    close(g_exec_err[0]);
    if (en > 0) {
        int code = 0;
        char step[64] = "", what[160] = "";
        sscanf(em, "%d %63s %159[^\n]", &code, step, what);
        send_text(SUB_GP_ERROR, "%s %s: %s", step, what, strerror(code));
    }
    set_nonblock(in[1]);
    set_nonblock(out[0]);
    set_nonblock(err[0]);
    size_t in_off = 0;
    if (j->stdin_data.len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    int status = -1;
    bool exited = false;
    uint64_t exit_at = 0;
    unsigned char chunk[65536];
    while (out[0] >= 0 || err[0] >= 0 || !exited) {
        struct pollfd pf[4] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN},
                               {.fd = in[1], .events = POLLOUT}, {.fd = sfd, .events = POLLIN}};
        /* after the job's main process is gone, a background child holding
         * the pipes open gets 500 ms, then everything is killed */
        int to = -1;
        if (exited) {
            uint64_t now = now_ms(CLOCK_MONOTONIC);
            if (now - exit_at >= 500) {
                kill(-1, SIGKILL);
                break;
            }
            to = (int)(500 - (now - exit_at));
        }
        if (poll(pf, 4, to) < 0) {
            if (errno == EINTR) continue;
            fail("poll", errno);
        }
        for (int k = 0; k < 2; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(pf[k].fd, chunk, sizeof chunk);
            if (n > 0) {
                send_frame(k == 0 ? SUB_GP_STDOUT : SUB_GP_STDERR, chunk, (size_t)n);
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(pf[k].fd);
                if (k == 0) out[0] = -1;
                else err[0] = -1;
            }
        }
        if (in[1] >= 0 && (pf[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], j->stdin_data.p + in_off, j->stdin_data.len - in_off);
            if (w > 0) in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN) || in_off == j->stdin_data.len) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (pf[3].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {}
            int st;
            pid_t w;
            while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                if (w != pid) continue;
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                exited = true;
                exit_at = now_ms(CLOCK_MONOTONIC);
            }
        }
    }
    if (in[1] >= 0) close(in[1]);
    kill(-1, SIGKILL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    unsigned char c[4];
    sub_gp_put32(c, (uint32_t)status);
    send_frame(SUB_GP_EXIT, c, 4);
}

static void send_outputs(const job *j) {
    int rootfd = open(root[0] ? root : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    uint64_t left = j->outmax;
    for (size_t i = 0; i < j->noutputs; i++) {
        const char *path = j->outputs[i];
        unsigned char h[8];
        size_t pl = strlen(path);
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW, .resolve = RESOLVE_IN_ROOT};
        int fd = rootfd < 0 ? -1 : (int)syscall(SYS_openat2, rootfd, path + (path[0] == '/'), &how, sizeof how);
        struct stat st;
        uint32_t status = 0;
        if (fd < 0) status = (uint32_t)errno;
        else if (fstat(fd, &st) < 0) status = (uint32_t)errno;
        else if (!S_ISREG(st.st_mode)) status = EINVAL;
        else if ((uint64_t)st.st_size > left || (uint64_t)st.st_size > SUB_GP_MAX_PAYLOAD - 8 - pl) status = EFBIG;
        buf b = {0};
        if (status == 0) {
            unsigned char tmp[65536];
            ssize_t n;
            while ((n = read(fd, tmp, sizeof tmp)) > 0 && b.len + (size_t)n <= left) buf_add(&b, tmp, (size_t)n);
            if (n < 0) status = (uint32_t)errno;
            else if (n > 0) status = EFBIG; /* grew while read */
        }
        if (fd >= 0) close(fd);
        if (status) b.len = 0;
        left -= b.len;
        sub_gp_put32(h, status);
        sub_gp_put32(h + 4, (uint32_t)pl);
        unsigned char *msg = malloc(8 + pl + b.len + 1);
        if (!msg) fail("memory", ENOMEM);
        memcpy(msg, h, 8);
        memcpy(msg + 8, path, pl);
        if (b.len) memcpy(msg + 8 + pl, b.p, b.len);
        send_frame(SUB_GP_OUTPUT_FILE, msg, 8 + pl + b.len);
        free(msg);
        free(b.p);
    }
    if (rootfd >= 0) close(rootfd);
}

/* Tier-0: the runner's jail did the mounts, the namespaces, the uid and lo. */
static _Noreturn void process_main(const char *fd) {
    process_mode = true;
    root = "";
    char *end;
    long v = strtol(fd, &end, 10);
    ctl = *end || v < 3 || v > 65535 ? -1 : (int)v;
    /* the job (same uid) must not inherit the channel, nor ptrace or read us */
    if (fcntl(ctl, F_SETFD, FD_CLOEXEC) < 0) {
        say("fd %s (the channel) is not open: %s", fd, strerror(errno));
        _exit(1);
    }
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    {
        unsigned char p[4 + sizeof AGENT_VERSION];
        sub_gp_put32(p, 0); /* no guest uptime: it is the host's clock */
        memcpy(p + 4, AGENT_VERSION, sizeof AGENT_VERSION - 1);
        send_frame(SUB_GP_HELLO, p, 4 + sizeof AGENT_VERSION - 1);
    }
    static job j = {.outmax = 1u << 20};
    j.uid = getuid();
    j.gid = getgid();
    read_job(&j);
    write_inputs(&j);
    prepare_outputs(&j);
    for (size_t i = 0; i < j.nprobes; i++) run_probe(j.probes[i]);
    run_job(&j);
    send_outputs(&j);
    send_frame(SUB_GP_DONE, NULL, 0);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--process") == 0) process_main(argv[2]);
    (void)mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    (void)mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    (void)mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    int con = open("/dev/console", O_RDWR | O_CLOEXEC);
    if (con >= 0) {
        dup2(con, 1);
        dup2(con, 2);
        close(con);
    }
    const char *hang = getenv("substrate_hang");
    if (hang && strcmp(hang, "boot") == 0) {
        say("test hook substrate_hang=boot: never opening the port");
        for (;;) pause();
    }
    load_modules();
    ctl = open_port();
    {
        unsigned char p[4 + sizeof AGENT_VERSION];
        sub_gp_put32(p, (uint32_t)now_ms(CLOCK_BOOTTIME));
        memcpy(p + 4, AGENT_VERSION, sizeof AGENT_VERSION - 1);
        send_frame(SUB_GP_HELLO, p, 4 + sizeof AGENT_VERSION - 1);
    }
    static job j = {.uid = 65534, .gid = 65534, .outmax = 1u << 20};
    read_job(&j);
    mount_root();
    write_inputs(&j);
    prepare_outputs(&j);
    net_up(&j);
    for (size_t i = 0; i < j.nprobes; i++) run_probe(j.probes[i]);
    run_job(&j);
    send_outputs(&j);
    send_frame(SUB_GP_DONE, NULL, 0);
    power_off();
}
