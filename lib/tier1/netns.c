/* Sockets made inside another network namespace, and a connect with a
 * deadline (svcnet.h). A socket keeps the namespace it was created in, so
 * only the socket() call needs the namespace: a helper thread enters it
 * (setns with CLONE_NEWNET changes the calling thread only), makes the
 * socket and exits; the connect then runs on the caller's thread. */
#include "substrate/svcnet.h"
#include "svcnet-internal.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int64_t svcnet_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int svcnet_parse_ipv4_port(const char *s, size_t len, struct sockaddr_in *sin) {
    char host[INET_ADDRSTRLEN];
    const char *colon = memchr(s, ':', len);
    if (!colon || (size_t)(colon - s) >= sizeof host) return -EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    const char *p = colon + 1, *end = s + len;
    if (p == end || end - p > 5) return -EINVAL;
    unsigned port = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return -EINVAL;
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (port == 0 || port > 65535) return -EINVAL;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) return -EINVAL;
    return 0;
}

typedef struct {
    int netns_fd;
    int fd;   /* the socket, or -1 */
    int err;  /* errno of the failed step */
    const char *step;
} ns_job;

static void *ns_socket_thread(void *arg) {
    ns_job *j = arg;
    if (setns(j->netns_fd, CLONE_NEWNET) < 0) {
        j->err = errno;
        j->step = "enter the network namespace";
        return NULL;
    }
    j->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (j->fd < 0) {
        j->err = errno;
        j->step = "make a socket in the network namespace";
    }
    return NULL; /* the thread, and its namespace, end here */
}

int svcnet_socket_in(int netns_fd, sub_err *e) {
    if (netns_fd < 0) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        return fd < 0 ? sub_err_set(e, -errno, "cannot make a TCP socket: %m") : fd;
    }
    ns_job j = {.netns_fd = netns_fd, .fd = -1};
    /* the helper takes no signals: they stay with the caller's threads */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int r = pthread_create(&t, NULL, ns_socket_thread, &j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) return sub_err_set(e, -r, "cannot start a thread to enter a network namespace: %s",
                                   strerror(r));
    pthread_join(t, NULL);
    if (j.fd >= 0) return j.fd;
    if (j.err == EPERM)
        return sub_err_setk(e, SUB_KIND_ENV, -EPERM,
                            "cannot %s (fd %d): not permitted (CAP_SYS_ADMIN is needed; "
                            "run as root)",
                            j.step, netns_fd);
    return sub_err_set(e, -j.err, "cannot %s (fd %d): %s", j.step, netns_fd, strerror(j.err));
}

int svcnet_connect_until(int fd, const struct sockaddr_in *sin, int64_t deadline) {
    if (connect(fd, (const struct sockaddr *)sin, sizeof *sin) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR) return -errno;
    for (;;) {
        int64_t left = deadline - svcnet_mono_ms();
        if (left <= 0) return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
        if (n < 0 && errno != EINTR) return -errno;
        if (n <= 0) continue;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
        return err ? -err : 0;
    }
}

int sub_netns_connect(int netns_fd, const char *addr, uint16_t port, int timeout_ms, sub_err *e) {
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (!addr || inet_pton(AF_INET, addr, &sin.sin_addr) != 1 || port == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "cannot connect to \"%s:%u\": not a numeric IPv4 address and port",
                            addr ? addr : "(null)", (unsigned)port);
    int64_t deadline = svcnet_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    _cleanup_close_ int fd = svcnet_socket_in(netns_fd, e);
    if (fd < 0) return fd;
    int r = svcnet_connect_until(fd, &sin, deadline);
    if (r == -ETIMEDOUT)
        return sub_err_set(e, r, "cannot connect to %s:%u: timed out after %d ms", addr,
                           (unsigned)port, timeout_ms);
    if (r < 0)
        return sub_err_set(e, r, "cannot connect to %s:%u: %s", addr, (unsigned)port,
                           strerror(-r));
    /* the caller gets an ordinary blocking socket */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return sub_err_set(e, -errno, "fcntl: %m");
    return TAKE_FD(fd);
}
