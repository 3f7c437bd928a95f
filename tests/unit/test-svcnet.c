/* Probes and the port publisher (svcnet.h) against small HTTP servers, each
 * in a network namespace of its own: a forked child unshares CLONE_NEWNET
 * (nothing is named under /run/netns, so nothing outlives the test), brings
 * up its loopback and serves on 127.0.0.1:PORT there. Needs root. */
#include "unit.h"
#include "substrate/fs.h"
#include "substrate/regserver.h"
#include "substrate/svcnet.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define BIG_BODY (4u << 20)

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static ino_t my_netns(void) {
    struct stat st;
    return stat("/proc/thread-self/ns/net", &st) == 0 ? st.st_ino : 0;
}

/* ---- the servers (in the child) ---------------------------------------------------------- */

static bool write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void respond(int fd, int code, const char *body, size_t len) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
                     code == 200 ? "OK" : "Internal Server Error", len);
    if (write_all(fd, head, (size_t)n)) write_all(fd, body, len);
}

/* One request per connection, one connection at a time: "/" answers the
 * server's name, /fail 500, /big BIG_BODY bytes, /echo the number of body
 * bytes the client sent before its end of stream, /hang nothing at all. */
static void serve(int lfd, char name) {
    static char big[BIG_BODY];
    for (size_t i = 0; i < BIG_BODY; i++) big[i] = (char)('a' + i % 26);
    int nhung = 0;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        char req[8192];
        size_t got = 0;
        char *end = NULL;
        while (!end && got < sizeof req - 1) {
            ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
            if (n <= 0) break;
            got += (size_t)n;
            req[got] = 0;
            end = strstr(req, "\r\n\r\n");
        }
        if (!end) {
            close(fd);
            continue;
        }
        char body[64];
        if (!strncmp(req, "GET /fail ", 10)) respond(fd, 500, "no", 2);
        else if (!strncmp(req, "GET /big ", 9)) respond(fd, 200, big, BIG_BODY);
        else if (!strncmp(req, "POST /echo ", 11)) {
            size_t count = got - (size_t)(end + 4 - req);
            char buf[65536];
            ssize_t n;
            while ((n = recv(fd, buf, sizeof buf, 0)) > 0) count += (size_t)n;
            int bl = snprintf(body, sizeof body, "%c %zu", name, count);
            respond(fd, 200, body, (size_t)bl);
        } else if (!strncmp(req, "GET /hang ", 10) && nhung < 64) {
            nhung++; /* fd kept open, never answered */
            continue;
        } else {
            body[0] = name;
            respond(fd, 200, body, 1);
        }
        close(fd);
    }
}

typedef struct {
    pid_t pid;
    int nsfd; /* /proc/PID/ns/net */
} nsrv;

/* A child in a new network namespace, serving on 127.0.0.1:port there (no
 * server when port is 0), and, when stuck_port is not 0, listening on
 * 127.0.0.1:stuck_port with the smallest backlog and never accepting (once
 * it is full, connects there hang). false (and a skip) when namespaces are
 * not ours. */
static bool start_server2(char name, uint16_t port, uint16_t stuck_port, nsrv *s) {
    s->pid = -1;
    s->nsfd = -1;
    if (geteuid() != 0) {
        unit_skip("needs root to make network namespaces");
        return false;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) return false;
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        close(pfd[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (unshare(CLONE_NEWNET) < 0) {
            (void)!write(pfd[1], "U", 1);
            _exit(1);
        }
        int s4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {0};
        strcpy(ifr.ifr_name, "lo");
        if (s4 < 0 || ioctl(s4, SIOCGIFFLAGS, &ifr) < 0) _exit(2);
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s4, SIOCSIFFLAGS, &ifr) < 0) _exit(2);
        close(s4);
        int lfd = -1;
        if (port) {
            lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                                      .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            int one = 1;
            setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 128) < 0)
                _exit(3);
        }
        if (stuck_port) {
            int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(stuck_port),
                                      .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (bind(sfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(sfd, 0) < 0)
                _exit(3);
        }
        (void)!write(pfd[1], "R", 1);
        close(pfd[1]);
        if (lfd >= 0) serve(lfd, name);
        for (;;) pause();
    }
    close(pfd[1]);
    char c = 0;
    ssize_t n;
    do n = read(pfd[0], &c, 1);
    while (n < 0 && errno == EINTR);
    close(pfd[0]);
    s->pid = pid;
    if (n != 1 || c != 'R') {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->pid = -1;
        if (c == 'U') unit_skip("unshare(CLONE_NEWNET) refused here");
        else unit_fail(__FILE__, __LINE__, "the server in a new network namespace did not start");
        return false;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)pid);
    s->nsfd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(s->nsfd >= 0);
    return s->nsfd >= 0;
}

static bool start_server(char name, uint16_t port, nsrv *s) {
    return start_server2(name, port, 0, s);
}

static void stop_server(nsrv *s) {
    if (s->nsfd >= 0) close(s->nsfd);
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    s->pid = -1;
    s->nsfd = -1;
}

/* ---- a client in our own namespace ------------------------------------------------------- */

static int dial(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Read the whole response (to the end of stream) and split it: status, body. */
static int read_response(int fd, int *status, char **body, size_t *blen) {
    size_t cap = BIG_BODY + 4096, got = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (got == cap) break;
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(buf);
            return -errno;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    buf[got] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (got < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0 || !end) {
        free(buf);
        return -EPROTO;
    }
    *status = atoi(buf + 9);
    *blen = got - (size_t)(end + 4 - buf);
    *body = xmalloc(*blen + 1);
    memcpy(*body, end + 4, *blen);
    (*body)[*blen] = 0;
    free(buf);
    return 0;
}

static int http_get(uint16_t port, const char *path, int *status, char **body, size_t *blen) {
    int fd = dial(port);
    if (fd < 0) return fd;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     path);
    int r = write_all(fd, req, (size_t)n) ? read_response(fd, status, body, blen) : -EIO;
    close(fd);
    return r;
}

static sub_probe_spec http_probe(char *url, uint32_t timeout_ms) {
    return (sub_probe_spec){.kind = SUB_PROBE_HTTP, .url = url, .timeout_ms = timeout_ms};
}

/* ---- probes ------------------------------------------------------------------------------- */

/* The pids of this thread's children, as /proc lists them ("" for none). */
static char *children_of_this_thread(void) {
    _cleanup_free_ char *p = xasprintf("/proc/self/task/%d/children", (int)gettid());
    char *out = NULL;
    size_t len = 0;
    if (sub_read_file(p, 1 << 16, &out, &len, NULL) < 0) return xstrdup("?");
    return out;
}

TEST(svcnet_probe_http_tcp) {
    int fds = count_fds();
    int port = sub_free_loopback_port();
    CHECK(port > 0);
    nsrv a;
    if (!start_server('A', (uint16_t)port, &a)) return;
    ino_t ns = my_netns();
    sub_err e = {0};
    sub_probe_result res;
    char url[128];

    snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", port);
    sub_probe_spec p = http_probe(url, 2000);
    CHECK_OK(sub_probe_run(&p, a.nsfd, NULL, NULL, &res, &e), &e);
    CHECK(res.ok);
    CHECK_STREQ(res.detail, "HTTP 200");
    /* the same probe from our own namespace finds nobody there */
    CHECK_OK(sub_probe_run(&p, -1, NULL, NULL, &res, &e), &e);
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "connection refused");

    snprintf(url, sizeof url, "http://127.0.0.1:%d/fail", port);
    p = http_probe(url, 2000);
    CHECK_OK(sub_probe_run(&p, a.nsfd, NULL, NULL, &res, &e), &e);
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "HTTP 500");

    /* accepted, never answered: bounded by the timeout */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hang", port);
    p = http_probe(url, 300);
    int64_t t0 = now_ms();
    CHECK_OK(sub_probe_run(&p, a.nsfd, NULL, NULL, &res, &e), &e);
    int64_t took = now_ms() - t0;
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "timed out after 300 ms");
    CHECK(took >= 290 && took < 2000);

    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    sub_probe_spec t = {.kind = SUB_PROBE_TCP, .address = addr, .timeout_ms = 1000};
    CHECK_OK(sub_probe_run(&t, a.nsfd, NULL, NULL, &res, &e), &e);
    CHECK(res.ok);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port == 65535 ? 65534 : port + 1);
    CHECK_OK(sub_probe_run(&t, a.nsfd, NULL, NULL, &res, &e), &e);
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "connection refused");

    /* attempts that cannot be made at all */
    p = http_probe("ftp://127.0.0.1:21/", 1000);
    CHECK_FAILS(sub_probe_run(&p, a.nsfd, NULL, NULL, &res, &e), -EINVAL);
    p = http_probe("http://localhost:80/", 1000);
    CHECK_FAILS(sub_probe_run(&p, a.nsfd, NULL, NULL, &res, &e), -EINVAL);
    t.address = "127.0.0.1";
    CHECK_FAILS(sub_probe_run(&t, a.nsfd, NULL, NULL, &res, &e), -EINVAL);
    sub_probe_spec none = {.kind = SUB_PROBE_NONE};
    CHECK_FAILS(sub_probe_run(&none, a.nsfd, NULL, NULL, &res, &e), -EINVAL);
    int notns = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    p = http_probe(url, 1000);
    CHECK(sub_probe_run(&p, notns, NULL, NULL, &res, &e) < 0);
    CHECK(strstr(e.msg, "network namespace") != NULL);
    close(notns);

    CHECK(my_netns() == ns); /* our thread never moved */
    stop_server(&a);
    CHECK_INT(count_fds(), fds);
}

TEST(svcnet_netns_connect) {
    int fds = count_fds();
    int port = sub_free_loopback_port();
    nsrv a;
    if (!start_server('A', (uint16_t)port, &a)) return;
    sub_err e = {0};
    int fd = sub_netns_connect(a.nsfd, "127.0.0.1", (uint16_t)port, 1000, &e);
    CHECK_OK(fd, &e);
    if (fd >= 0) {
        CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
        CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK(write_all(fd, req, sizeof req - 1));
        int status = 0;
        char *body = NULL;
        size_t blen = 0;
        CHECK_OK(read_response(fd, &status, &body, &blen), &e);
        CHECK_INT(status, 200);
        CHECK_STREQ(body, "A");
        free(body);
        close(fd);
    }
    CHECK_FAILS(sub_netns_connect(a.nsfd, "127.0.0.1", (uint16_t)(port == 65535 ? 65534 : port + 1),
                                  1000, &e),
                -ECONNREFUSED);
    CHECK(strstr(e.msg, "refused") != NULL);
    CHECK_FAILS(sub_netns_connect(a.nsfd, "localhost", 80, 1000, &e), -EINVAL);
    stop_server(&a);
    CHECK_INT(count_fds(), fds);
}

TEST(svcnet_probe_exec) {
    int fds = count_fds();
    /* a stand-in runtime: checks "exec ctr1", then runs the rest */
    _cleanup_free_ char *rt = xasprintf("%s/runtime", unit_tmpdir());
    sub_err e = {0};
    const char script[] = "#!/bin/sh\n"
                          "[ \"$1\" = --root ] && [ \"$2\" = /x ] || exit 90\n"
                          "[ \"$3\" = exec ] && [ \"$4\" = ctr1 ] || exit 91\n"
                          "shift 4\n"
                          "exec \"$@\"\n";
    CHECK_OK(sub_write_file_atomic(rt, script, sizeof script - 1, 0755, &e), &e);
    char *rtv[] = {rt, "--root", "/x", NULL};
    sub_probe_result res;

    char *yes[] = {"true", NULL};
    sub_probe_spec p = {.kind = SUB_PROBE_EXEC, .exec = yes, .timeout_ms = 5000};
    CHECK_OK(sub_probe_run(&p, -1, rtv, "ctr1", &res, &e), &e);
    CHECK(res.ok);
    CHECK_STREQ(res.detail, "exit status 0");
    /* the container id reaches the runtime */
    CHECK_OK(sub_probe_run(&p, -1, rtv, "ctr2", &res, &e), &e);
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "exit status 91");

    char *no[] = {"sh", "-c", "exit 1", NULL};
    p.exec = no;
    CHECK_OK(sub_probe_run(&p, -1, rtv, "ctr1", &res, &e), &e);
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "exit status 1");

    /* too slow: killed at the deadline, and reaped */
    char *slow[] = {"sleep", "30", NULL};
    p.exec = slow;
    p.timeout_ms = 300;
    _cleanup_free_ char *kids_before = children_of_this_thread();
    int64_t t0 = now_ms();
    CHECK_OK(sub_probe_run(&p, -1, rtv, "ctr1", &res, &e), &e);
    int64_t took = now_ms() - t0;
    CHECK(!res.ok);
    CHECK_STREQ(res.detail, "timed out after 300 ms");
    CHECK(took >= 290 && took < 3000);
    /* no child left (compared with before: other tests' daemons may run) */
    _cleanup_free_ char *kids_after = children_of_this_thread();
    CHECK_STREQ(kids_after, kids_before);

    char *missing_rt[] = {"/nonexistent/runtime", NULL};
    p.exec = yes;
    CHECK(sub_probe_run(&p, -1, missing_rt, "ctr1", &res, &e) < 0);
    char *empty[] = {NULL};
    p.exec = empty;
    CHECK_FAILS(sub_probe_run(&p, -1, rtv, "ctr1", &res, &e), -EINVAL);
    CHECK_INT(count_fds(), fds);
}

/* ---- the proxy ---------------------------------------------------------------------------- */

static sub_svc_port port_of(uint16_t host_port, uint16_t container_port) {
    sub_svc_port sp = {.host_port = host_port, .container_port = container_port};
    strcpy(sp.host_addr, "127.0.0.1");
    return sp;
}

/* Wait (up to 5 s) for the count of open connections of gen to reach want. */
static size_t wait_open(sub_proxy *px, unsigned gen, size_t want) {
    size_t n = 0;
    for (int i = 0; i < 500; i++) {
        if ((n = sub_proxy_open_connections(px, gen)) == want) break;
        sleep_ms(10);
    }
    return n;
}

TEST(svcnet_proxy_waits_for_target) {
    int fds = count_fds();
    int cport = sub_free_loopback_port(), hport = sub_free_loopback_port();
    nsrv a;
    if (!start_server('A', (uint16_t)cport, &a)) return;
    sub_err e = {0};
    sub_svc_port sp = port_of((uint16_t)hport, (uint16_t)cport);
    sub_proxy *px = NULL;
    CHECK_OK(sub_proxy_start(&sp, 1, &px, &e), &e);
    if (!px) {
        stop_server(&a);
        return;
    }
    /* no target: the connect is not refused, the request just waits */
    int fd = dial((uint16_t)hport);
    CHECK(fd >= 0);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CHECK(fd >= 0 && write_all(fd, req, sizeof req - 1));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK_INT(poll(&pfd, 1, 300), 0);
    unsigned long long acc = 9, fail = 9;
    sub_proxy_counters(px, &acc, &fail);
    CHECK_INT(acc, 0);

    int gen = sub_proxy_set_target(px, a.nsfd, &e);
    CHECK_INT(gen, 1);
    int status = 0;
    char *body = NULL;
    size_t blen = 0;
    CHECK_OK(read_response(fd, &status, &body, &blen), &e);
    CHECK_INT(status, 200);
    CHECK_STREQ(body, "A");
    free(body);
    close(fd);
    CHECK_INT(wait_open(px, (unsigned)gen, 0), 0);
    sub_proxy_counters(px, &acc, &fail);
    CHECK_INT(acc, 1);
    CHECK_INT(fail, 0);

    /* back to no target: new connections wait again */
    CHECK_INT(sub_proxy_set_target(px, -1, &e), 2);
    fd = dial((uint16_t)hport);
    CHECK(fd >= 0 && write_all(fd, req, sizeof req - 1));
    pfd.fd = fd;
    CHECK_INT(poll(&pfd, 1, 300), 0);
    CHECK_INT(sub_proxy_set_target(px, a.nsfd, &e), 3);
    CHECK_OK(read_response(fd, &status, &body, &blen), &e);
    CHECK_STREQ(body, "A");
    free(body);
    close(fd);
    /* not a network namespace */
    int notns = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    CHECK_FAILS(sub_proxy_set_target(px, notns, &e), -EINVAL);
    close(notns);
    sub_proxy_stop(px);
    stop_server(&a);
    CHECK_INT(count_fds(), fds);
}

typedef struct {
    uint16_t port;
    int requests;
    atomic_int done, ok, from_a, from_b, bad;
} load;

static void *load_client(void *arg) {
    load *l = arg;
    for (int i = 0; i < l->requests; i++) {
        int status = 0;
        char *body = NULL;
        size_t blen = 0;
        int r = http_get(l->port, "/", &status, &body, &blen);
        if (r == 0 && status == 200 && streq(body, "A")) l->from_a++;
        else if (r == 0 && status == 200 && streq(body, "B")) l->from_b++;
        else l->bad++;
        if (r == 0 && status == 200 && (streq(body, "A") || streq(body, "B"))) l->ok++;
        free(body);
        l->done++;
    }
    return NULL;
}

TEST(svcnet_proxy_switch_under_load) {
    int fds = count_fds();
    int cport = sub_free_loopback_port(), hport = sub_free_loopback_port();
    nsrv a, b;
    if (!start_server('A', (uint16_t)cport, &a)) return;
    if (!start_server('B', (uint16_t)cport, &b)) {
        stop_server(&a);
        return;
    }
    sub_err e = {0};
    sub_svc_port sp = port_of((uint16_t)hport, (uint16_t)cport);
    sub_proxy *px = NULL;
    CHECK_OK(sub_proxy_start(&sp, 1, &px, &e), &e);
    int gens[16], ngens = 0;
    if (px) {
        gens[ngens++] = sub_proxy_set_target(px, a.nsfd, &e);
        load l = {.port = (uint16_t)hport, .requests = 300};
        pthread_t t;
        CHECK_INT(pthread_create(&t, NULL, load_client, &l), 0);
        /* A -> B -> A ... while requests flow */
        for (int i = 1; i < 9; i++) {
            int target_done = (l.requests * i) / 10;
            for (int k = 0; k < 2000 && l.done < target_done; k++) sleep_ms(5);
            gens[ngens++] = sub_proxy_set_target(px, (i % 2) ? b.nsfd : a.nsfd, &e);
        }
        pthread_join(t, NULL);
        CHECK_INT(l.done, 300);
        CHECK_INT(l.ok, 300);
        CHECK_INT(l.bad, 0);
        CHECK(l.from_a > 0);
        CHECK(l.from_b > 0);
        for (int i = 0; i < ngens; i++) CHECK_INT(gens[i], i + 1);
        CHECK_INT(wait_open(px, 0, 0), 0);
        unsigned long long acc = 0, fail = 9;
        sub_proxy_counters(px, &acc, &fail);
        CHECK_INT(acc, 300);
        CHECK_INT(fail, 0);
        sub_proxy_stop(px);
    }
    stop_server(&a);
    stop_server(&b);
    CHECK_INT(count_fds(), fds);
}

TEST(svcnet_proxy_big_bodies) {
    int fds = count_fds();
    int cport = sub_free_loopback_port(), hport = sub_free_loopback_port();
    nsrv a;
    if (!start_server('A', (uint16_t)cport, &a)) return;
    sub_err e = {0};
    sub_svc_port sp = port_of((uint16_t)hport, (uint16_t)cport);
    sub_proxy *px = NULL;
    CHECK_OK(sub_proxy_start(&sp, 1, &px, &e), &e);
    if (px) {
        CHECK(sub_proxy_set_target(px, a.nsfd, &e) > 0);
        /* down: 4 MiB through the 64 KiB buffers, intact */
        int status = 0;
        char *body = NULL;
        size_t blen = 0;
        CHECK_OK(http_get((uint16_t)hport, "/big", &status, &body, &blen), &e);
        CHECK_INT(status, 200);
        CHECK_INT(blen, BIG_BODY);
        size_t bad = 0;
        for (size_t i = 0; body && i < blen; i++)
            if (body[i] != (char)('a' + i % 26)) bad++;
        CHECK_INT(bad, 0);
        free(body);
        body = NULL;
        /* up: 4 MiB, then our end of stream (half-close); the server counts
         * what it got, and its answer still comes back */
        int fd = dial((uint16_t)hport);
        CHECK(fd >= 0);
        const char head[] = "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n";
        char *up = xmalloc(BIG_BODY);
        memset(up, 'u', BIG_BODY);
        CHECK(write_all(fd, head, sizeof head - 1));
        CHECK(write_all(fd, up, BIG_BODY));
        free(up);
        CHECK_INT(shutdown(fd, SHUT_WR), 0);
        CHECK_OK(read_response(fd, &status, &body, &blen), &e);
        CHECK_INT(status, 200);
        char want[64];
        snprintf(want, sizeof want, "A %u", BIG_BODY);
        CHECK_STREQ(body, want);
        free(body);
        close(fd);
        CHECK_INT(wait_open(px, 0, 0), 0);
        sub_proxy_stop(px);
    }
    stop_server(&a);
    CHECK_INT(count_fds(), fds);
}

TEST(svcnet_proxy_refused_and_port_taken) {
    int fds = count_fds();
    int cport = sub_free_loopback_port(), hport = sub_free_loopback_port();
    nsrv empty;
    if (!start_server('E', 0, &empty)) return; /* a namespace where nothing listens */
    sub_err e = {0};
    sub_svc_port sp = port_of((uint16_t)hport, (uint16_t)cport);
    sub_proxy *px = NULL;
    CHECK_OK(sub_proxy_start(&sp, 1, &px, &e), &e);
    if (px) {
        CHECK(sub_proxy_set_target(px, empty.nsfd, &e) > 0);
        int status = 0;
        char *body = NULL;
        size_t blen = 0;
        /* the client sees a close without a reply */
        CHECK_FAILS(http_get((uint16_t)hport, "/", &status, &body, &blen), -EPROTO);
        unsigned long long acc = 0, fail = 0;
        for (int i = 0; i < 200 && fail == 0; i++, sleep_ms(10))
            sub_proxy_counters(px, &acc, &fail);
        CHECK_INT(acc, 1);
        CHECK_INT(fail, 1);
        CHECK_INT(wait_open(px, 0, 0), 0);

        /* the same address again: held by the first proxy */
        sub_proxy *px2 = NULL;
        sub_svc_port two[2] = {port_of((uint16_t)cport, 1), sp};
        CHECK_FAILS(sub_proxy_start(two, 2, &px2, &e), -EADDRINUSE);
        CHECK(px2 == NULL);
        CHECK_INT(e.kind, SUB_KIND_ENV);
        CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_ENV);
        char hp[64];
        snprintf(hp, sizeof hp, "127.0.0.1:%d", hport);
        CHECK(strstr(e.msg, hp) != NULL);
        CHECK(strstr(e.msg, "something else holds it") != NULL);
        CHECK(strstr(e.msg, "pid") != NULL); /* it is us */
        sub_proxy_stop(px);
    }
    sub_svc_port bad = port_of(80, 0);
    strcpy(bad.host_addr, "localhost");
    sub_proxy *px3 = NULL;
    CHECK_FAILS(sub_proxy_start(&bad, 1, &px3, &e), -EINVAL);
    sub_proxy_stop(NULL);
    stop_server(&empty);
    CHECK_INT(count_fds(), fds);
}

TEST(svcnet_proxy_stop_with_open_connections) {
    int fds = count_fds();
    int cport = sub_free_loopback_port(), hport = sub_free_loopback_port();
    nsrv a, b;
    if (!start_server('A', (uint16_t)cport, &a)) return;
    if (!start_server('B', (uint16_t)cport, &b)) {
        stop_server(&a);
        return;
    }
    sub_err e = {0};
    sub_svc_port sp = port_of((uint16_t)hport, (uint16_t)cport);
    sub_proxy *px = NULL;
    CHECK_OK(sub_proxy_start(&sp, 1, &px, &e), &e);
    if (px) {
        int ga = sub_proxy_set_target(px, a.nsfd, &e);
        /* two requests A never answers: they stay open on generation ga */
        const char req[] = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
        int h1 = dial((uint16_t)hport), h2 = dial((uint16_t)hport);
        CHECK(h1 >= 0 && write_all(h1, req, sizeof req - 1));
        CHECK(h2 >= 0 && write_all(h2, req, sizeof req - 1));
        CHECK_INT(wait_open(px, (unsigned)ga, 2), 2);
        int gb = sub_proxy_set_target(px, b.nsfd, &e);
        int status = 0;
        char *body = NULL;
        size_t blen = 0;
        CHECK_OK(http_get((uint16_t)hport, "/", &status, &body, &blen), &e);
        CHECK_STREQ(body, "B");
        free(body);
        CHECK_INT(wait_open(px, (unsigned)gb, 0), 0);
        CHECK_INT(sub_proxy_open_connections(px, (unsigned)ga), 2);
        CHECK_INT(sub_proxy_open_connections(px, 0), 2);
        /* one client gives up (a reset): its count goes */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(h1, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(h1);
        CHECK_INT(wait_open(px, (unsigned)ga, 1), 1);
        /* stop with one still open: the client sees the close */
        sub_proxy_stop(px);
        struct pollfd pfd = {.fd = h2, .events = POLLIN};
        CHECK_INT(poll(&pfd, 1, 2000), 1);
        char c;
        CHECK(recv(h2, &c, 1, 0) <= 0);
        close(h2);
    }
    stop_server(&a);
    stop_server(&b);
    CHECK_INT(count_fds(), fds);
}

TEST(svcnet_proxy_slow_backend_does_not_stall) {
    int fds = count_fds();
    int cport = sub_free_loopback_port(), stuck = sub_free_loopback_port();
    int h1 = sub_free_loopback_port(), h2 = sub_free_loopback_port();
    nsrv a;
    if (!start_server2('A', (uint16_t)cport, (uint16_t)stuck, &a)) return;
    sub_err e = {0};
    sub_svc_port sp[2] = {port_of((uint16_t)h1, (uint16_t)stuck),
                          port_of((uint16_t)h2, (uint16_t)cport)};
    sub_proxy *px = NULL;
    CHECK_OK(sub_proxy_start(sp, 2, &px, &e), &e);
    if (px) {
        CHECK(sub_proxy_set_target(px, a.nsfd, &e) > 0);
        /* fill the stuck backlog: the proxy's later connects there hang */
        int c[6];
        for (int i = 0; i < 6; i++) CHECK((c[i] = dial((uint16_t)h1)) >= 0);
        CHECK_INT(wait_open(px, 0, 6), 6);
        /* the other port still answers at once */
        int64_t t0 = now_ms();
        int status = 0;
        char *body = NULL;
        size_t blen = 0;
        CHECK_OK(http_get((uint16_t)h2, "/", &status, &body, &blen), &e);
        CHECK_STREQ(body, "A");
        free(body);
        CHECK(now_ms() - t0 < 900); /* below the first SYN retransmission (1 s) */
        /* stopping closes the connections still connecting */
        sub_proxy_stop(px);
        for (int i = 0; i < 6; i++)
            if (c[i] >= 0) close(c[i]);
    }
    stop_server(&a);
    CHECK_INT(count_fds(), fds);
}
