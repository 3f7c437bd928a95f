/* Probes (svcnet.h): one attempt of an HTTP, TCP or exec probe, bounded by
 * the probe's timeout. HTTP and TCP connect from a socket made inside the
 * service's network namespace; exec runs `RUNTIME exec ID argv...`. */
#include "substrate/proc.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include "substrate/svcnet.h"
#include "svcnet-internal.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define HTTP_READ_MAX (64 * 1024)

static void detail(sub_probe_result *res, bool ok, const char *fmt, ...) _printf_(3, 4);
static void detail(sub_probe_result *res, bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof res->detail, fmt, ap);
    va_end(ap);
    res->ok = ok;
}

static void timed_out(sub_probe_result *res, uint32_t timeout_ms) {
    detail(res, false, "timed out after %u ms", (unsigned)timeout_ms);
}

/* Why a connect failed, in the words of the header ("connection refused"). */
static void connect_failed(sub_probe_result *res, int err, uint32_t timeout_ms) {
    if (err == -ETIMEDOUT) timed_out(res, timeout_ms);
    else if (err == -ECONNREFUSED) detail(res, false, "connection refused");
    else detail(res, false, "cannot connect: %s", strerror(-err));
}

/* "http://A.B.C.D[:PORT][/PATH]" -> sin, host ("A.B.C.D:PORT" as written) and path. */
static int parse_url(const char *url, struct sockaddr_in *sin, char *host, size_t hostsz,
                     const char **path) {
    if (!url || strncmp(url, "http://", 7) != 0) return -EINVAL;
    const char *h = url + 7;
    size_t hl = strcspn(h, "/?#");
    if (hl == 0 || hl >= hostsz) return -EINVAL;
    if (h[hl] == '#') return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    if (!memchr(h, ':', hl)) { /* no port: 80 */
        char with[80];
        snprintf(with, sizeof with, "%s:80", host);
        if (svcnet_parse_ipv4_port(with, strlen(with), sin) < 0) return -EINVAL;
    } else if (svcnet_parse_ipv4_port(h, hl, sin) < 0)
        return -EINVAL;
    *path = h[hl] ? h + hl : "/";
    /* the request line must stay one line */
    for (const char *c = *path; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) return -EINVAL;
    return 0;
}

/* Wait for fd to be ready for events until the deadline: 1 ready, 0 timed out, -errno. */
static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - svcnet_mono_ms();
        if (left <= 0) return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
        if (n < 0 && errno != EINTR) return -errno;
        if (n > 0) return 1;
    }
}

/* Parse "HTTP/1.x NNN ..." at the start of buf (len bytes, a whole line). */
static int status_code(const char *buf, size_t len) {
    if (len < 12 || strncmp(buf, "HTTP/", 5) != 0) return -1;
    const char *sp = memchr(buf, ' ', len);
    if (!sp || (size_t)(sp - buf) + 4 > len) return -1;
    int code = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9') return -1;
        code = code * 10 + (sp[i] - '0');
    }
    if ((size_t)(sp - buf) + 4 < len && sp[4] != ' ' && sp[4] != '\r' && sp[4] != '\n') return -1;
    return code;
}

static int probe_http(const sub_probe_spec *p, int netns_fd, sub_probe_result *res, sub_err *e) {
    struct sockaddr_in sin;
    char host[72];
    const char *path;
    if (parse_url(p->url, &sin, host, sizeof host, &path) < 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "http probe: \"%s\" is not http://IPV4:PORT/PATH",
                            p->url ? p->url : "");
    int64_t deadline = svcnet_mono_ms() + p->timeout_ms;
    _cleanup_close_ int fd = svcnet_socket_in(netns_fd, e);
    if (fd < 0) return fd;
    int r = svcnet_connect_until(fd, &sin, deadline);
    if (r < 0) {
        connect_failed(res, r, p->timeout_ms);
        return 0;
    }
    _cleanup_free_ char *req =
        xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: substrate-probe\r\nAccept: */*\r\n"
                  "Connection: close\r\n\r\n",
                  path, host);
    size_t len = strlen(req), off = 0;
    while (off < len) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) {
            detail(res, false, "cannot send the request: %s", strerror(errno));
            return 0;
        }
        r = wait_fd(fd, POLLOUT, deadline);
        if (r == 0) {
            timed_out(res, p->timeout_ms);
            return 0;
        }
        if (r < 0) return sub_err_set(e, r, "poll: %s", strerror(-r));
    }
    _cleanup_free_ char *buf = xmalloc(HTTP_READ_MAX + 1);
    size_t got = 0;
    for (;;) {
        char *nl = got ? memchr(buf, '\n', got) : NULL;
        if (nl) {
            int code = status_code(buf, (size_t)(nl - buf));
            if (code < 0) detail(res, false, "not an HTTP response");
            else detail(res, code >= 200 && code < 400, "HTTP %d", code);
            return 0;
        }
        if (got == HTTP_READ_MAX) {
            detail(res, false, "no HTTP status line in the first %d bytes", HTTP_READ_MAX);
            return 0;
        }
        ssize_t n = recv(fd, buf + got, HTTP_READ_MAX - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) {
            detail(res, false, got ? "not an HTTP response" : "connection closed without a reply");
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            if (errno == ECONNRESET) detail(res, false, "connection reset");
            else detail(res, false, "cannot read: %s", strerror(errno));
            return 0;
        }
        r = wait_fd(fd, POLLIN, deadline);
        if (r == 0) {
            timed_out(res, p->timeout_ms);
            return 0;
        }
        if (r < 0) return sub_err_set(e, r, "poll: %s", strerror(-r));
    }
}

static int probe_tcp(const sub_probe_spec *p, int netns_fd, sub_probe_result *res, sub_err *e) {
    struct sockaddr_in sin;
    if (!p->address || svcnet_parse_ipv4_port(p->address, strlen(p->address), &sin) < 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "tcp probe: \"%s\" is not IPV4:PORT",
                            p->address ? p->address : "");
    int64_t deadline = svcnet_mono_ms() + p->timeout_ms;
    _cleanup_close_ int fd = svcnet_socket_in(netns_fd, e);
    if (fd < 0) return fd;
    int r = svcnet_connect_until(fd, &sin, deadline);
    if (r < 0) connect_failed(res, r, p->timeout_ms);
    else detail(res, true, "connected to %s", p->address);
    return 0;
}

static int pidfd_open_(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* Wait for pid until the deadline: 1 and *st when it ended, 0 on timeout. */
static int wait_child_until(pid_t pid, int64_t deadline, int *st) {
    _cleanup_close_ int pfd = pidfd_open_(pid);
    for (;;) {
        pid_t w = waitpid(pid, st, WNOHANG);
        if (w == pid) return 1;
        if (w < 0 && errno != EINTR) return -errno;
        int64_t left = deadline - svcnet_mono_ms();
        if (left <= 0) return 0;
        if (pfd >= 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            if (poll(&p, 1, (int)(left > 60000 ? 60000 : left)) < 0 && errno != EINTR)
                return -errno;
        } else { /* no pidfd (old kernel, seccomp): look again in 10 ms */
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static int probe_exec(const sub_probe_spec *p, char *const *runtime_argv, const char *container_id,
                      sub_probe_result *res, sub_err *e) {
    if (!p->exec || !p->exec[0])
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "exec probe: no command given");
    if (!runtime_argv || !runtime_argv[0] || !container_id || !*container_id)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "exec probe: no runtime or container to run it in");
    _cleanup_strv_ char **argv = NULL;
    for (char *const *a = runtime_argv; *a; a++) strv_push(&argv, *a);
    strv_push(&argv, "exec");
    strv_push(&argv, container_id);
    for (char **a = p->exec; *a; a++) strv_push(&argv, *a);
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdin_fd = SUB_FD_NULL;
    o.stdout_fd = SUB_FD_NULL;
    o.stderr_fd = SUB_FD_NULL;
    int64_t deadline = svcnet_mono_ms() + p->timeout_ms;
    pid_t pid;
    int r = sub_spawn(argv, &o, &pid, e);
    if (r < 0) return r;
    int st = 0;
    r = wait_child_until(pid, deadline, &st);
    if (r == 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        sub_residue_forget_child(pid);
        timed_out(res, p->timeout_ms);
        return 0;
    }
    if (r < 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        sub_residue_forget_child(pid);
        return sub_err_set(e, r, "waiting for the exec probe (pid %d): %s", (int)pid, strerror(-r));
    }
    sub_residue_forget_child(pid);
    if (WIFEXITED(st)) detail(res, WEXITSTATUS(st) == 0, "exit status %d", WEXITSTATUS(st));
    else detail(res, false, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    return 0;
}

int sub_probe_run(const sub_probe_spec *p, int netns_fd, char *const *runtime_argv,
                  const char *container_id, sub_probe_result *res, sub_err *e) {
    memset(res, 0, sizeof *res);
    if (!p) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "no probe given");
    switch (p->kind) {
    case SUB_PROBE_HTTP:
        return probe_http(p, netns_fd, res, e);
    case SUB_PROBE_TCP:
        return probe_tcp(p, netns_fd, res, e);
    case SUB_PROBE_EXEC:
        return probe_exec(p, runtime_argv, container_id, res, e);
    case SUB_PROBE_NONE:
        break;
    }
    return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "no probe kind set (http, tcp or exec)");
}
