/* The control socket of a service supervisor: one JSON request per
 * connection, one JSON reply, then the server closes. */
#include "substrate/fs.h"
#include "substrate/strbuf.h"
#include <sys/stat.h>
#include "t1-internal.h"
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CONTROL_MAX (1u << 20)

static int sock_addr(const char *name, struct sockaddr_un *sa, sub_err *e) {
    _cleanup_free_ char *p = sub_t1_svc_path(name, "control.sock");
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    if (strlen(p) >= sizeof sa->sun_path)
        return sub_err_setk(e, SUB_KIND_ENV, -ENAMETOOLONG,
                            "control socket path %s is longer than a socket address allows (%zu "
                            "bytes); use a shorter $SUBSTRATE_STATE",
                            p, sizeof sa->sun_path - 1);
    memcpy(sa->sun_path, p, strlen(p) + 1);
    return 0;
}

int t1_control_listen(const char *name, sub_err *e) {
    struct sockaddr_un sa;
    int r = sock_addr(name, &sa, e);
    if (r < 0) return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "socket: %m");
    unlink(sa.sun_path); /* we hold the service lock: a socket file here is a dead one's */
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0) {
        int err = errno;
        close(fd);
        return sub_err_setk(e, SUB_KIND_ENV, -err, "control socket %s: %s", sa.sun_path, strerror(err));
    }
    chmod(sa.sun_path, 0600);
    return fd;
}

static int read_all(int fd, int64_t deadline, sub_buf *b, sub_err *e) {
    for (;;) {
        int64_t left = deadline - t1_now_ms();
        if (left <= 0) return sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "no answer in time");
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[8192];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "reading the control socket: %m");
        if (n == 0) return 0;
        sub_buf_append(b, buf, (size_t)n);
        if (b->len > CONTROL_MAX) return sub_err_setk(e, SUB_KIND_ENV, -E2BIG, "control message too large");
        if (memchr(buf, '\n', (size_t)n)) return 0;
    }
}

int t1_control_read(int fd, int timeout_ms, json_t **req, sub_err *e) {
    _cleanup_buf_ sub_buf b = SUB_BUF_INIT;
    int r = read_all(fd, t1_now_ms() + timeout_ms, &b, e);
    if (r < 0) return r;
    return sub_json_parse(sub_buf_str(&b), b.len, CONTROL_MAX, "control request", req, e);
}

void t1_control_reply(int fd, const json_t *reply) {
    _cleanup_free_ char *s = sub_json_dump(reply, NULL);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    (void)sub_write_all(fd, s, strlen(s));
    (void)sub_write_all(fd, "\n", 1);
}

int sub_t1_control(const char *name, const char *op, int timeout_ms, json_t **reply, sub_err *e) {
    *reply = NULL;
    struct sockaddr_un sa;
    int r = sock_addr(name, &sa, e);
    if (r < 0) return r;
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "socket: %m");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -errno, "the supervisor of %s does not answer (%s): %m",
                            name, sa.sun_path);
    _cleanup_json_ json_t *req = json_pack("{s:s}", "op", op);
    _cleanup_free_ char *s = sub_json_dump(req, NULL);
    if (sub_write_all(fd, s, strlen(s)) < 0 || sub_write_all(fd, "\n", 1) < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -EPIPE, "the supervisor of %s closed its socket", name);
    shutdown(fd, SHUT_WR);
    _cleanup_buf_ sub_buf b = SUB_BUF_INIT;
    r = read_all(fd, t1_now_ms() + timeout_ms, &b, e);
    if (r < 0) {
        sub_err_prefix(e, "%s %s", name, op);
        return r;
    }
    if (!b.len)
        return sub_err_setk(e, SUB_KIND_ENV, -EPIPE, "the supervisor of %s closed without an answer to %s",
                            name, op);
    return sub_json_parse(sub_buf_str(&b), b.len, CONTROL_MAX, "control reply", reply, e);
}
