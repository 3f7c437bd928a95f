/* The local registry daemon: Debian's docker-registry on loopback (see regserver.h). */
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "substrate/registry.h"
#include "substrate/regserver.h"
#include "substrate/strbuf.h"
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROGRAM "docker-registry"
#define STOP_WAIT_MS 10000
#define KILL_WAIT_MS 3000
#define LOG_ROTATE_BYTES (8u << 20)

typedef struct paths {
    char *dir, *config, *data, *pid, *log;
} paths;

static void paths_free(paths *p) {
    free(p->dir);
    free(p->config);
    free(p->data);
    free(p->pid);
    free(p->log);
}

/* Absolute paths under <state>/registry; creates the directory when create. */
static int paths_get(const char *state, bool create, paths *p, sub_err *e) {
    memset(p, 0, sizeof *p);
    if (!state || !*state) return sub_err_set(e, -EINVAL, "no state directory given");
    _cleanup_free_ char *d = sub_path_join(state, "registry");
    if (create) {
        int r = sub_mkdir_p(d, 0700, e);
        if (r < 0) return r;
    }
    char buf[PATH_MAX];
    if (realpath(d, buf)) p->dir = xstrdup(buf);
    else if (d[0] == '/') p->dir = TAKE_PTR(d);
    else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return sub_err_set(e, -errno, "getcwd: %m");
        p->dir = sub_path_join(cwd, d);
    }
    p->config = sub_path_join(p->dir, "config.yml");
    p->data = sub_path_join(p->dir, "data");
    p->pid = sub_path_join(p->dir, "registry.pid");
    p->log = sub_path_join(p->dir, "registry.log");
    return 0;
}

static int lock_dir(const char *dir, sub_err *e) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", dir);
    while (flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR) continue;
        int r = sub_err_set(e, -errno, "cannot lock %s: %m", dir);
        close(fd);
        return r;
    }
    return fd;
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- address ---------------------------------------------------------------------------- */

static int check_addr(const char *addr, sub_err *e) {
    if (!addr || !*addr)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "no registry address given (SUBSTRATE_REGISTRY)");
    int port = 0;
    sub_err ae = {0};
    int r = sub_reg_addr_split(addr, NULL, &port, &ae);
    if (r < 0) return sub_err_setk(e, SUB_KIND_INPUT, r, "%s", ae.msg);
    if (!port)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "registry address \"%s\" has no port (write e.g. 127.0.0.1:5000)",
                            addr);
    if (!sub_reg_addr_is_loopback(addr))
        return sub_err_setk(
            e, SUB_KIND_INPUT, -EPERM,
            "refusing to run the registry on %s: it must listen on loopback only "
            "(127.0.0.0/8, localhost or [::1]), so nothing off this machine can reach "
            "it; set SUBSTRATE_REGISTRY, e.g. 127.0.0.1:5000",
            addr);
    return 0;
}

/* Fails with -EADDRINUSE when something is listening on (or bound to) addr. */
static int check_port_free(const char *addr, sub_err *e) {
    _cleanup_free_ char *host = NULL;
    int port = 0;
    int r = sub_reg_addr_split(addr, &host, &port, e);
    if (r < 0) return r;
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    int fam;
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        fam = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return sub_err_set(e, -EINVAL, "bad IPv6 address %s", host);
        sl = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        fam = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        const char *h = strcmp(host, "localhost") ? host : "127.0.0.1";
        if (inet_pton(AF_INET, h, &s4->sin_addr) != 1)
            return sub_err_set(e, -EINVAL, "bad IPv4 address %s", host);
        sl = sizeof *s4;
    }
    _cleanup_close_ int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return sub_err_set(e, -errno, "socket: %m");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* ignore TIME_WAIT, like Go */
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        int err = errno;
        if (err == EADDRINUSE)
            return sub_err_setk(e, SUB_KIND_ENV, -EADDRINUSE,
                                "port %d on %s is already in use by another program; stop it, or "
                                "choose another port with SUBSTRATE_REGISTRY=%s:PORT",
                                port, host, strchr(host, ':') ? "[::1]" : host);
        if (err == EADDRNOTAVAIL)
            return sub_err_setk(e, SUB_KIND_ENV, -EADDRNOTAVAIL,
                                "cannot listen on %s: no such local address", addr);
        return sub_err_set(e, -err, "cannot bind %s: %s", addr, strerror(err));
    }
    return 0;
}

/* GET /v2/ answered with 200, or 401 when the registry wants credentials
 * (auth: it was configured with htpasswd). */
static bool answering(const char *addr, bool auth) {
    CURL *c = curl_easy_init();
    if (!c) return false;
    _cleanup_free_ char *u = xasprintf("http://%s/v2/", addr);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, NULL);
    FILE *devnull = fopen("/dev/null", "we");
    if (devnull) curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    if (cc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (devnull) fclose(devnull);
    return code == 200 || (auth && code == 401);
}

/* ---- process identity ------------------------------------------------------------------- */

/* 0 no pid file, 1 *pid read, -EBADMSG unreadable content. */
static int read_pid(const char *path, pid_t *pid) {
    _cleanup_free_ char *s = NULL;
    size_t len;
    if (sub_read_file(path, 64, &s, &len, NULL) < 0) return 0;
    char *end;
    long v = strtol(s, &end, 10);
    while (*end == '\n' || *end == ' ') end++;
    if (end == s || *end || v <= 1 || v > INT_MAX) return -EBADMSG;
    *pid = (pid_t)v;
    return 1;
}

/* Alive and not a zombie. */
static bool proc_alive(pid_t pid) {
    _cleanup_free_ char *p = xasprintf("/proc/%d/stat", (int)pid);
    _cleanup_free_ char *s = NULL;
    size_t len;
    if (sub_read_file(p, 4096, &s, &len, NULL) < 0) return false;
    const char *rp = strrchr(s, ')');
    if (!rp || rp[1] != ' ') return false;
    char state = rp[2];
    return state != 'Z' && state != 'X' && state != 'x';
}

/* The process runs docker-registry with our config. */
static bool is_our_registry(pid_t pid, const char *config) {
    if (!proc_alive(pid)) return false;
    _cleanup_free_ char *p = xasprintf("/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *s = NULL;
    size_t len;
    if (sub_read_file(p, 65536, &s, &len, NULL) < 0) return false;
    bool prog = false, cfg = false;
    for (size_t off = 0; off < len;) {
        const char *a = s + off;
        size_t al = strlen(a);
        const char *base = strrchr(a, '/');
        base = base ? base + 1 : a;
        if (off == 0 && !strcmp(base, PROGRAM)) prog = true;
        if (!strcmp(a, config)) cfg = true;
        off += al + 1;
    }
    return prog && cfg;
}

/* Address from our generated config ("  addr: \"...\""). */
static void recorded_addr(const char *config, char *out, size_t outsz) {
    out[0] = 0;
    _cleanup_free_ char *s = NULL;
    size_t len;
    if (sub_read_file(config, 65536, &s, &len, NULL) < 0) return;
    const char *k = strstr(s, "\n  addr: \"");
    if (!k) return;
    k += strlen("\n  addr: \"");
    size_t n = strcspn(k, "\"\n");
    snprintf(out, outsz, "%.*s", (int)n, k);
}

static bool recorded_htpasswd(const char *config) {
    _cleanup_free_ char *s = NULL;
    size_t len;
    if (sub_read_file(config, 65536, &s, &len, NULL) < 0) return false;
    return strstr(s, "\n  htpasswd:\n") != NULL;
}

/* The "auth:" section of a config we generated ("" without one). */
static const char *auth_section(const char *cfg) {
    const char *a = strstr(cfg, "\nauth:\n");
    return a ? a : "";
}

/* The recorded config has the same auth settings (none, or the same
 * htpasswd file) as the config `want` we would write now. */
static bool recorded_auth_is(const char *config, const char *want) {
    _cleanup_free_ char *s = NULL;
    size_t len;
    if (sub_read_file(config, 65536, &s, &len, NULL) < 0) return false;
    return streq(auth_section(s), auth_section(want));
}

/* Last lines of the log, for error details. */
static void log_tail(const char *log, sub_err *e) {
    if (!e) return;
    _cleanup_close_ int fd = open(log, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > 1500 ? end - 1500 : 0;
    char buf[1600];
    ssize_t n = pread(fd, buf, sizeof buf - 1, start);
    if (n <= 0) return;
    buf[n] = 0;
    char *p = buf;
    if (start > 0 && strchr(p, '\n')) p = strchr(p, '\n') + 1;
    for (char *q = p; *q; q++)
        if (*q == '\n') *q = '|';
    sub_err_detail(e, "%s says: %s", log, p);
}

/* ---- who holds a port ------------------------------------------------------------------- */

/* The inode of a socket listening on port (on ip4, or on the wildcard), from
 * /proc/net/tcp or tcp6; 0 when none. v6 matches "::" and "::1" (and a
 * v4-mapped ip4). */
static unsigned long listening_inode(const char *table, bool v6, const struct in_addr *ip4,
                                     int port) {
    _cleanup_fclose_ FILE *f = fopen(table, "re");
    if (!f) return 0;
    char line[512];
    if (!fgets(line, sizeof line, f)) return 0; /* header */
    while (fgets(line, sizeof line, f)) {
        char local[64];
        unsigned st = 0;
        unsigned long inode = 0;
        if (sscanf(line, " %*s %63s %*s %x %*s %*s %*s %*u %*u %lu", local, &st, &inode) != 3)
            continue;
        char *colon = strrchr(local, ':');
        if (!colon || st != 0x0A) continue; /* TCP_LISTEN */
        *colon = 0;
        if ((int)strtoul(colon + 1, NULL, 16) != port) continue;
        bool match;
        if (!v6) {
            struct in_addr a = {.s_addr = (uint32_t)strtoul(local, NULL, 16)};
            match = a.s_addr == INADDR_ANY || a.s_addr == ip4->s_addr;
        } else {
            /* four host-order 32-bit words, as the kernel prints them */
            char mapped[33];
            snprintf(mapped, sizeof mapped, "0000000000000000FFFF0000%08X", ip4->s_addr);
            match = !strcmp(local, "00000000000000000000000000000000") ||
                    !strcmp(local, "00000000000000000000000001000000") ||
                    !strcasecmp(local, mapped);
        }
        if (match) return inode;
    }
    return 0;
}

static void describe_process(sub_port_holder *h) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/comm", (int)h->pid);
    _cleanup_free_ char *comm = NULL;
    if (sub_read_file(p, 256, &comm, NULL, NULL) == 0)
        snprintf(h->program, sizeof h->program, "%.*s", (int)strcspn(comm, "\n"), comm);
    snprintf(p, sizeof p, "/proc/%d/cmdline", (int)h->pid);
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    if (sub_read_file(p, 65536, &s, &len, NULL) < 0) return;
    sub_buf b = SUB_BUF_INIT;
    const char *argv[3] = {NULL, NULL, NULL};
    int argc = 0;
    for (size_t off = 0; off < len; argc++) {
        const char *a = s + off;
        if (argc < 3) argv[argc] = a;
        if (b.len) sub_buf_putc(&b, ' ');
        for (const char *c = a; *c; c++) /* never print control characters */
            sub_buf_putc(&b, (unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c);
        off += strlen(a) + 1;
    }
    snprintf(h->cmdline, sizeof h->cmdline, "%s", sub_buf_str(&b));
    sub_buf_free(&b);
    const char *base = argv[0] ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : argv[0];
    if (!streq(base, PROGRAM) || !streq(argv[1], "serve") || !argv[2]) return;
    _cleanup_free_ char *cfg = NULL;
    if (argv[2][0] == '/') cfg = xstrdup(argv[2]);
    else { /* relative to its working directory */
        char cwdl[64], cwd[PATH_MAX];
        snprintf(cwdl, sizeof cwdl, "/proc/%d/cwd", (int)h->pid);
        ssize_t n = readlink(cwdl, cwd, sizeof cwd - 1);
        if (n <= 0) return;
        cwd[n] = 0;
        cfg = sub_path_join(cwd, argv[2]);
    }
    if (strlen(cfg) >= sizeof h->config) return;
    memcpy(h->config, cfg, strlen(cfg) + 1);
    static const char suffix[] = "/registry/config.yml";
    size_t cl = strlen(cfg);
    if (cl > strlen(suffix) && !strcmp(cfg + cl - strlen(suffix), suffix))
        snprintf(h->state_dir, sizeof h->state_dir, "%.*s", (int)(cl - strlen(suffix)), cfg);
}

int sub_regsrv_port_holder(const char *addr, sub_port_holder *h, sub_err *e) {
    memset(h, 0, sizeof *h);
    int r = check_addr(addr, e);
    if (r < 0) return r;
    sub_err pe = {0};
    if (check_port_free(addr, &pe) == -EADDRINUSE) h->held = true;
    _cleanup_free_ char *host = NULL;
    int port = 0;
    if ((r = sub_reg_addr_split(addr, &host, &port, e)) < 0) return r;
    struct in_addr ip4 = {.s_addr = htonl(INADDR_LOOPBACK)};
    if (!strchr(host, ':') && strcmp(host, "localhost") != 0) inet_pton(AF_INET, host, &ip4);
    unsigned long inode = listening_inode("/proc/net/tcp", false, &ip4, port);
    if (!inode) inode = listening_inode("/proc/net/tcp6", true, &ip4, port);
    if (inode) h->held = true;
    if (!h->held) return 0;
    h->answering = answering(addr, true);
    if (inode && (h->pid = sub_socket_owner(inode)) > 0) describe_process(h);
    return 0;
}

char *sub_regsrv_holder_text(const char *addr, const sub_port_holder *h) {
    const char *what = h->answering ? "a registry answers" : "a program that is not a registry listens";
    if (!h->held) return xasprintf("nothing listens on %s", addr);
    if (!h->pid)
        return xasprintf("%s on %s, run by a process we cannot see (another user's? `ss -ltnp` "
                         "as root names it); stop it, or use another SUBSTRATE_REGISTRY port",
                         what, addr);
    if (h->state_dir[0])
        return xasprintf("%s on %s: %s (pid %d) of the state dir %s; to stop it, run "
                         "`SUBSTRATE_STATE=%s substrate registry stop`",
                         what, addr, h->program[0] ? h->program : PROGRAM, (int)h->pid,
                         h->state_dir, h->state_dir);
    if (h->config[0])
        return xasprintf("%s on %s: %s (pid %d) run with the config %s, not started by "
                         "Substrate; stop it with `kill %d`",
                         what, addr, h->program[0] ? h->program : PROGRAM, (int)h->pid, h->config,
                         (int)h->pid);
    return xasprintf("%s on %s: %s (pid %d: %s); stop it with `kill %d`, or use another "
                     "SUBSTRATE_REGISTRY port",
                     what, addr, h->program[0] ? h->program : "?", (int)h->pid, h->cmdline,
                     (int)h->pid);
}

/* ---- config ----------------------------------------------------------------------------- */

static void yaml_str(sub_buf *b, const char *s) {
    sub_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') sub_buf_printf(b, "\\%c", c);
        else if (c < 0x20) sub_buf_printf(b, "\\x%02x", c);
        else sub_buf_putc(b, (char)c);
    }
    sub_buf_putc(b, '"');
}

static char *render_config(const paths *p, const char *addr, const char *htpasswd) {
    sub_buf b = SUB_BUF_INIT;
    sub_buf_puts(&b, "# Generated by substrate registry start; do not edit.\n"
                     "version: 0.1\n"
                     "log:\n"
                     "  level: info\n"
                     "  formatter: text\n"
                     "storage:\n"
                     "  filesystem:\n"
                     "    rootdirectory: ");
    yaml_str(&b, p->data);
    sub_buf_puts(&b, "\n"
                     "  delete:\n"
                     "    enabled: true\n"
                     "http:\n"
                     "  addr: ");
    yaml_str(&b, addr);
    sub_buf_puts(&b, "\n"
                     "  headers:\n"
                     "    X-Content-Type-Options: [nosniff]\n");
    if (htpasswd) {
        sub_buf_puts(&b, "auth:\n"
                         "  htpasswd:\n"
                         "    realm: \"substrate\"\n"
                         "    path: ");
        yaml_str(&b, htpasswd);
        sub_buf_puts(&b, "\n");
    }
    return sub_buf_detach(&b, NULL);
}

/* ---- signals ---------------------------------------------------------------------------- */

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

static int send_signal(int pidfd, pid_t pid, int sig) {
#ifdef SYS_pidfd_send_signal
    if (pidfd >= 0) return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    (void)pidfd;
#endif
    return kill(pid, sig);
}

/* Reap it when it is our child (the start path); harmless otherwise. */
static void reap(pid_t pid) { waitpid(pid, NULL, WNOHANG); }

static bool wait_gone(pid_t pid, long ms) {
    long deadline = now_ms() + ms;
    for (;;) {
        reap(pid);
        if (!proc_alive(pid)) return true;
        if (now_ms() >= deadline) return false;
        sleep_ms(50);
    }
}

/* SIGTERM, wait, SIGKILL. pidfd (may be -1) pins the process we verified. */
static int terminate(int pidfd, pid_t pid, sub_err *e) {
    if (send_signal(pidfd, pid, SIGTERM) < 0 && errno != ESRCH)
        return sub_err_set(e, -errno, "cannot signal the registry (pid %d): %m", (int)pid);
    if (wait_gone(pid, STOP_WAIT_MS)) return 0;
    if (send_signal(pidfd, pid, SIGKILL) < 0 && errno != ESRCH)
        return sub_err_set(e, -errno, "cannot kill the registry (pid %d): %m", (int)pid);
    if (wait_gone(pid, KILL_WAIT_MS)) return 0;
    return sub_err_set(e, -ETIMEDOUT, "the registry (pid %d) did not exit after SIGKILL", (int)pid);
}

/* ---- API -------------------------------------------------------------------------------- */

int sub_regsrv_status_get(const sub_regsrv_opts *o, sub_regsrv_status *st, sub_err *e) {
    memset(st, 0, sizeof *st);
    _cleanup_(paths_free) paths p = {0};
    int r = paths_get(o->state_dir, false, &p, e);
    if (r < 0) return r;
    recorded_addr(p.config, st->addr, sizeof st->addr);
    pid_t pid = 0;
    if (read_pid(p.pid, &pid) == 1) {
        st->pid = pid;
        st->running = is_our_registry(pid, p.config);
    }
    if (st->running && st->addr[0])
        st->answering = answering(st->addr, recorded_htpasswd(p.config));
    if (!st->running && check_addr(o->addr, NULL) == 0)
        sub_regsrv_port_holder(o->addr, &st->other, NULL);
    return 0;
}

int sub_regsrv_start(const sub_regsrv_opts *o, bool *already, pid_t *pid_out, sub_err *e) {
    if (already) *already = false;
    int r = check_addr(o->addr, e);
    if (r < 0) return r;
    if (!sub_have_program(PROGRAM))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                            PROGRAM " is not installed: run `apt-get install docker-registry` (or "
                                    "scripts/install-deps)");
    _cleanup_free_ char *htpasswd = NULL;
    if (o->htpasswd) {
        char buf[PATH_MAX];
        if (!realpath(o->htpasswd, buf))
            return sub_err_setk(
                e, SUB_KIND_INPUT, -errno,
                "htpasswd file %s: %m (create it with `htpasswd -Bbn USER PASS > FILE`)",
                o->htpasswd);
        struct stat hst;
        if (stat(buf, &hst) < 0 || !S_ISREG(hst.st_mode))
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "htpasswd file %s is not a regular file", buf);
        if (access(buf, R_OK) < 0)
            return sub_err_setk(e, SUB_KIND_INPUT, -errno, "htpasswd file %s is not readable: %m",
                                buf);
        htpasswd = xstrdup(buf);
    }
    _cleanup_(paths_free) paths p = {0};
    if ((r = paths_get(o->state_dir, true, &p, e)) < 0) return r;
    _cleanup_close_ int lk = lock_dir(p.dir, e);
    if (lk < 0) return lk;

    pid_t old = 0;
    int pr = read_pid(p.pid, &old);
    if (pr == 1 && is_our_registry(old, p.config)) {
        char cur[128];
        recorded_addr(p.config, cur, sizeof cur);
        _cleanup_free_ char *want = render_config(&p, o->addr, htpasswd);
        bool same_auth = recorded_auth_is(p.config, want);
        if (!streq(cur, o->addr) || !same_auth)
            return sub_err_setk(e, SUB_KIND_ENV, -EBUSY,
                                "a registry from this state directory is already running at %s%s "
                                "(pid %d); stop it first with `substrate registry stop`",
                                cur, same_auth ? "" : " with other authentication settings",
                                (int)old);
        int wait_s = o->wait_s > 0 ? o->wait_s : 15;
        long deadline = now_ms() + wait_s * 1000L;
        while (!answering(o->addr, htpasswd != NULL)) {
            if (!is_our_registry(old, p.config) || now_ms() >= deadline) {
                r = sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT,
                                 "the registry (pid %d) runs but does not answer on %s; see %s, or "
                                 "restart it with `substrate registry stop` and `start`",
                                 (int)old, o->addr, p.log);
                log_tail(p.log, e);
                return r;
            }
            sleep_ms(100);
        }
        if (already) *already = true;
        if (pid_out) *pid_out = old;
        return 0;
    }
    if (pr != 0) unlink(p.pid); /* stale: the process is gone or is not ours; never signalled */

    if ((r = check_port_free(o->addr, e)) < 0) return r;
    if ((r = sub_mkdir_p(p.data, 0700, e)) < 0) return r;
    _cleanup_free_ char *cfg = render_config(&p, o->addr, htpasswd);
    if ((r = sub_write_file_atomic(p.config, cfg, strlen(cfg), 0600, e)) < 0) return r;

    struct stat lst;
    if (stat(p.log, &lst) == 0 && (uint64_t)lst.st_size > LOG_ROTATE_BYTES) {
        _cleanup_free_ char *old_log = xasprintf("%s.1", p.log);
        rename(p.log, old_log);
    }
    _cleanup_close_ int logfd = open(p.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        int err = errno;
        return sub_err_set(e, -err, "cannot open %s: %s%s", p.log, strerror(err), sub_io_hint(err));
    }
    const char *path_env = getenv("PATH");
    _cleanup_free_ char *pathv =
        xasprintf("PATH=%s", path_env ? path_env : "/usr/sbin:/usr/bin:/sbin:/bin");
    /* A clean environment: REGISTRY_* variables would override the config. */
    char *env[] = {pathv, NULL};
    char *argv[] = {PROGRAM, "serve", p.config, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.clear_env = true;
    po.setenv = env;
    po.stdin_fd = SUB_FD_NULL;
    po.stdout_fd = logfd;
    po.stderr_fd = logfd;
    po.new_session = true;
    po.cwd = p.dir;
    po.umask = 077;
    pid_t pid;
    /* sub_spawn gives the daemon 0-2 only: a pipe of ours held open by it would
     * keep a caller's `$(substrate registry start)` waiting forever */
    if ((r = sub_spawn(argv, &po, &pid, e)) < 0) return r;
    _cleanup_free_ char *pidtxt = xasprintf("%d\n", (int)pid);
    if ((r = sub_write_file_atomic(p.pid, pidtxt, strlen(pidtxt), 0644, e)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return r;
    }
    int wait_s = o->wait_s > 0 ? o->wait_s : 15;
    long deadline = now_ms() + wait_s * 1000L;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            unlink(p.pid);
            int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            r = sub_err_setk(e, SUB_KIND_ENV, -EIO,
                             PROGRAM " exited during startup (status %d); see %s", code, p.log);
            log_tail(p.log, e);
            return r;
        }
        if (answering(o->addr, htpasswd != NULL)) break;
        if (now_ms() >= deadline) {
            kill(pid, SIGTERM);
            if (!wait_gone(pid, 3000)) kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            unlink(p.pid);
            r = sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT,
                             PROGRAM " did not answer on %s within %d s; it was stopped (see %s)",
                             o->addr, wait_s, p.log);
            log_tail(p.log, e);
            return r;
        }
        sleep_ms(50);
    }
    if (pid_out) *pid_out = pid;
    return 0;
}

/* Nothing of ours ran: fine when nothing holds the address either; when
 * something else does, the caller asked for a stop that did not happen. */
static int stop_nothing(const sub_regsrv_opts *o, sub_err *e) {
    sub_port_holder h;
    if (!o->addr || check_addr(o->addr, NULL) < 0 || sub_regsrv_port_holder(o->addr, &h, NULL) < 0 ||
        !h.held)
        return 0;
    _cleanup_free_ char *who = sub_regsrv_holder_text(o->addr, &h);
    return sub_err_setk(e, SUB_KIND_ENV, -EADDRINUSE,
                        "nothing was stopped: no registry of the state dir %s runs, but %s",
                        o->state_dir, who);
}

int sub_regsrv_stop(const sub_regsrv_opts *o, bool *was_running, sub_err *e) {
    if (was_running) *was_running = false;
    _cleanup_(paths_free) paths p = {0};
    int r = paths_get(o->state_dir, false, &p, e);
    if (r < 0) return r;
    if (!sub_path_exists(p.dir)) return stop_nothing(o, e);
    _cleanup_close_ int lk = lock_dir(p.dir, e);
    if (lk < 0) return lk;
    pid_t pid = 0;
    int pr = read_pid(p.pid, &pid);
    if (pr == 0) return stop_nothing(o, e);
    if (pr < 0) {
        unlink(p.pid);
        return stop_nothing(o, e);
    }
    /* Pin the process, then check it is ours: a pid reused after the check
     * cannot be signalled through the pidfd. */
    _cleanup_close_ int pidfd = pidfd_open_(pid);
    if (!is_our_registry(pid, p.config)) {
        unlink(p.pid); /* stale pid file: gone, or a pid reused by another program */
        return stop_nothing(o, e);
    }
    if (was_running) *was_running = true;
    if ((r = terminate(pidfd, pid, e)) < 0) return r;
    unlink(p.pid);
    return 0;
}

int sub_free_loopback_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &l) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}
