/* The port publisher (svcnet.h): listeners bound once in the caller's
 * network namespace, and one thread running an epoll loop that accepts,
 * connects to the current target from a socket made inside the target's
 * network namespace, and relays bytes both ways.
 *
 * Shared state (the target, the generation counter, the list of open
 * connections, the stop flag) is under the mutex; the loop is woken through
 * an eventfd. An accept, the backend socket it gets and its entry in the
 * list happen in one critical section, so once sub_proxy_set_target has
 * returned, every connection either counts for the old generation in
 * sub_proxy_open_connections or goes to the new target.
 *
 * Relaying is edge-triggered: every event on either side of a connection
 * "pumps" it, moving bytes both ways until nothing moves (each direction has
 * a 64 KiB buffer). A connection that still moves after a few rounds is put
 * back on a run list, so one fast stream cannot starve the others. */
#include "substrate/proc.h"
#include "substrate/svcnet.h"
#include "svcnet-internal.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#define RELAY_BUF (64 * 1024)
#define BACKLOG 512
#define ACCEPT_BATCH 64
#define PUMP_ROUNDS 8

typedef enum { EP_WAKE = 1, EP_LISTENER, EP_CLIENT, EP_BACKEND } ep_kind;

typedef struct listener {
    ep_kind kind; /* EP_LISTENER; first, as epoll's tag */
    int fd;
    uint16_t container_port;
} listener;

typedef struct relay_buf {
    char *data;
    size_t off, len; /* bytes [off, len) wait to be written */
} relay_buf;

typedef struct conn conn;
typedef struct conn_end {
    ep_kind kind; /* EP_CLIENT or EP_BACKEND; first, as epoll's tag */
    conn *c;
} conn_end;

struct conn {
    conn_end client_end, backend_end;
    int cfd, bfd;
    unsigned gen;
    bool connecting;
    bool c_eof, b_eof;   /* read side ended */
    bool c_shut, b_shut; /* we shut down writing to that side */
    bool dead, queued;
    relay_buf up, down;  /* client -> backend, backend -> client */
    conn *prev, *next;   /* the open list (under the mutex) */
    conn *run_next;      /* the run list, or the dead list (thread only) */
};

struct sub_proxy {
    pthread_mutex_t mu;
    pthread_t thread;
    int epfd, evfd, orig_ns;
    ep_kind wake_tag;
    listener *ls;
    size_t nls;
    /* under mu */
    int target_ns; /* dup'd netns fd, -1: none */
    unsigned target_gen, last_gen;
    bool stop;
    conn *conns;
    /* the loop thread only */
    conn *run, *dead;
    atomic_ullong accepted, failed;
};

static void wake(sub_proxy *p) {
    uint64_t one = 1;
    while (write(p->evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void buf_free(relay_buf *b) { free(b->data); }

/* ---- connections ------------------------------------------------------------------------ */

static void conn_free(conn *c) {
    buf_free(&c->up);
    buf_free(&c->down);
    free(c);
}

/* Close both sides; freed after the current batch of events. */
static void conn_close(sub_proxy *p, conn *c) {
    if (c->dead) return;
    c->dead = true;
    /* Out of the epoll set first: close() alone does not remove an fd whose
     * file is still open elsewhere (a child between fork and exec holds a
     * copy of every descriptor), and its events would then name a freed conn. */
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->cfd, NULL);
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->bfd, NULL);
    close(c->cfd);
    close(c->bfd);
    c->cfd = c->bfd = -1;
    pthread_mutex_lock(&p->mu);
    if (c->prev) c->prev->next = c->next;
    else p->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&p->mu);
    if (!c->queued) { /* one list at a time: a queued conn is freed when the run list is */
        c->run_next = p->dead;
        p->dead = c;
    }
}

/* One direction: read what fits from `from`, write what waits to `to`, and
 * pass an end of stream on once the buffer is empty. */
static int move(int from, int to, relay_buf *b, bool *eof, bool *shut, bool can_read,
                bool can_write, bool *progress) {
    if (can_read && !*eof) {
        if (b->len == RELAY_BUF && b->off > 0) {
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len < RELAY_BUF) {
            ssize_t n = recv(from, b->data + b->len, RELAY_BUF - b->len, 0);
            if (n > 0) {
                b->len += (size_t)n;
                *progress = true;
            } else if (n == 0) {
                *eof = true;
                *progress = true;
            } else if (errno != EAGAIN && errno != EINTR)
                return -errno;
        }
    }
    if (can_write && b->off < b->len) {
        ssize_t n = send(to, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
        if (n > 0) {
            b->off += (size_t)n;
            if (b->off == b->len) b->off = b->len = 0;
            *progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    if (can_write && *eof && b->off == b->len && !*shut) {
        if (shutdown(to, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
        *shut = true;
    }
    return 0;
}

/* Move bytes until nothing moves; true when it should run again (it still
 * moved after PUMP_ROUNDS). Closes the connection when both ways are done or
 * on an error. */
static bool pump(sub_proxy *p, conn *c) {
    for (int round = 0; round < PUMP_ROUNDS; round++) {
        bool progress = false;
        bool up = !c->connecting;
        if (move(c->cfd, c->bfd, &c->up, &c->c_eof, &c->b_shut, true, up, &progress) < 0 ||
            move(c->bfd, c->cfd, &c->down, &c->b_eof, &c->c_shut, up, true, &progress) < 0) {
            conn_close(p, c);
            return false;
        }
        if (c->c_eof && c->b_shut && c->b_eof && c->c_shut) {
            conn_close(p, c);
            return false;
        }
        if (!progress) return false;
    }
    return true;
}

static void conn_event(sub_proxy *p, conn_end *end, uint32_t events) {
    conn *c = end->c;
    if (c->dead) return;
    if (c->connecting) {
        if (end->kind != EP_BACKEND || !(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            pump(p, c); /* buffer what the client sends meanwhile */
            return;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err) { /* the target did not take it: the client sees a close */
            atomic_fetch_add(&p->failed, 1);
            conn_close(p, c);
            return;
        }
        c->connecting = false;
    } else if (events & EPOLLERR) {
        conn_close(p, c);
        return;
    }
    if (pump(p, c) && !c->queued) {
        c->queued = true;
        c->run_next = p->run;
        p->run = c;
    }
}

/* A backend socket in the target's namespace: enter it, make the socket, come
 * back. Called with the mutex held (the target fd stays open meanwhile). */
static int target_socket(sub_proxy *p) {
    if (setns(p->target_ns, CLONE_NEWNET) < 0) return -errno;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = errno;
    /* if coming back fails, the thread stays in the target's namespace: it only
     * makes backend sockets, each after entering its own target, so no harm */
    (void)setns(p->orig_ns, CLONE_NEWNET);
    return fd < 0 ? -err : fd;
}

static int watch(sub_proxy *p, int fd, void *tag) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = tag};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void accept_some(sub_proxy *p, listener *l) {
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        pthread_mutex_lock(&p->mu);
        if (p->target_ns < 0 || p->stop) { /* the wake-up will stop listening */
            pthread_mutex_unlock(&p->mu);
            return;
        }
        int cfd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
            int err = errno;
            pthread_mutex_unlock(&p->mu);
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                /* out of descriptors: let the others finish, then try again */
                struct timespec ts = {0, 20 * 1000 * 1000};
                nanosleep(&ts, NULL);
                return;
            }
            if (err == ECONNABORTED || err == EINTR) continue;
            return; /* EAGAIN: the backlog is empty */
        }
        atomic_fetch_add(&p->accepted, 1);
        int bfd = target_socket(p);
        if (bfd < 0) {
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_add(&p->failed, 1);
            close(cfd);
            continue;
        }
        conn *c = xcalloc(1, sizeof *c);
        c->client_end = (conn_end){EP_CLIENT, c};
        c->backend_end = (conn_end){EP_BACKEND, c};
        c->cfd = cfd;
        c->bfd = bfd;
        c->gen = p->target_gen;
        c->connecting = true;
        c->next = p->conns;
        if (p->conns) p->conns->prev = c;
        p->conns = c;
        pthread_mutex_unlock(&p->mu);
        c->up.data = xmalloc(RELAY_BUF);
        c->down.data = xmalloc(RELAY_BUF);
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons(l->container_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(bfd, (struct sockaddr *)&sin, sizeof sin) < 0 && errno != EINPROGRESS) {
            atomic_fetch_add(&p->failed, 1);
            conn_close(p, c);
            continue;
        }
        if (watch(p, cfd, &c->client_end) < 0 || watch(p, bfd, &c->backend_end) < 0) {
            atomic_fetch_add(&p->failed, 1);
            conn_close(p, c);
        }
    }
}

static void set_listening(sub_proxy *p, bool on) {
    for (size_t i = 0; i < p->nls; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->ls[i]};
        epoll_ctl(p->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, p->ls[i].fd, &ev);
    }
}

static void free_dead(sub_proxy *p) {
    while (p->dead) {
        conn *c = p->dead;
        p->dead = c->run_next;
        conn_free(c);
    }
}

static void *proxy_loop(void *arg) {
    sub_proxy *p = arg;
    bool listening = false;
    struct epoll_event evs[64];
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->stop, want = p->target_ns >= 0;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
        if (want != listening) set_listening(p, listening = want);
        int n = epoll_wait(p->epfd, evs, (int)ARRAY_SIZE(evs), p->run ? 0 : -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        conn *run = p->run;
        p->run = NULL;
        for (int i = 0; i < n; i++) {
            ep_kind *k = evs[i].data.ptr;
            if (*k == EP_WAKE) {
                uint64_t v;
                while (read(p->evfd, &v, sizeof v) < 0 && errno == EINTR) {
                }
            } else if (*k == EP_LISTENER) accept_some(p, (listener *)k);
            else conn_event(p, (conn_end *)k, evs[i].events);
        }
        /* the connections that were still moving: another turn each */
        while (run) {
            conn *c = run;
            run = c->run_next;
            c->queued = false;
            if (c->dead) {
                c->run_next = p->dead;
                p->dead = c;
            } else if (pump(p, c)) {
                c->queued = true;
                c->run_next = p->run;
                p->run = c;
            }
        }
        free_dead(p);
    }
    return NULL;
}

/* ---- who holds a port ------------------------------------------------------------------- */

/* The inode of the socket listening on addr:port (or on 0.0.0.0:port) in our
 * network namespace; 0 when none is listed. */
static unsigned long listening_inode(const struct in_addr *addr, uint16_t port) {
    _cleanup_fclose_ FILE *f = fopen("/proc/thread-self/net/tcp", "re");
    if (!f) return 0;
    char line[512];
    if (!fgets(line, sizeof line, f)) return 0; /* the header */
    while (fgets(line, sizeof line, f)) {
        unsigned ip = 0, lport = 0, st = 0;
        unsigned long inode = 0;
        if (sscanf(line, " %*s %x:%x %*s %x %*s %*s %*s %*u %*u %lu", &ip, &lport, &st, &inode) !=
            4)
            continue;
        /* 0x0A: TCP_LISTEN; the address is printed as the raw network-order word */
        if (st == 0x0A && lport == port && (ip == 0 || ip == addr->s_addr)) return inode;
    }
    return 0;
}

/* "PROGRAM, pid N" of the process with an fd on socket:[inode], or "". */
static void socket_owner(unsigned long inode, char *out, size_t outsz) {
    out[0] = 0;
    pid_t pid = sub_socket_owner(inode);
    if (pid <= 0) return;
    char path[64], comm[64] = "?";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *cf = fopen(path, "re");
    if (cf) {
        if (fgets(comm, sizeof comm, cf)) comm[strcspn(comm, "\n")] = 0;
        fclose(cf);
    }
    snprintf(out, outsz, "%s, pid %d", comm, (int)pid);
}

/* ---- API -------------------------------------------------------------------------------- */

static int listen_on(const sub_svc_port *port, int *out, sub_err *e) {
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port->host_port)};
    const char *addr = port->host_addr[0] ? port->host_addr : "127.0.0.1";
    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1 || port->host_port == 0 ||
        port->container_port == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "cannot publish \"%s:%u\" -> %u: not a numeric IPv4 address and ports",
                            addr, (unsigned)port->host_port, (unsigned)port->container_port);
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return sub_err_set(e, -errno, "cannot make a TCP socket: %m");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        return sub_err_set(e, -errno, "SO_REUSEADDR: %m");
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int err = errno;
        if (err == EADDRINUSE) {
            char who[160] = "";
            unsigned long inode = listening_inode(&sin.sin_addr, port->host_port);
            if (inode) socket_owner(inode, who, sizeof who);
            return sub_err_setk(e, SUB_KIND_ENV, -EADDRINUSE,
                                "cannot publish %s:%u: the address is already in use: something "
                                "else holds it%s%s%s; stop it, or publish another port",
                                addr, (unsigned)port->host_port, who[0] ? " (" : "", who,
                                who[0] ? ")" : "");
        }
        if (err == EADDRNOTAVAIL)
            return sub_err_setk(e, SUB_KIND_ENV, -err,
                                "cannot publish %s:%u: no interface of this host has that address",
                                addr, (unsigned)port->host_port);
        if (err == EACCES)
            return sub_err_setk(e, SUB_KIND_ENV, -err,
                                "cannot publish %s:%u: a port below 1024 needs root "
                                "(CAP_NET_BIND_SERVICE)",
                                addr, (unsigned)port->host_port);
        return sub_err_set(e, -err, "cannot publish %s:%u: %s", addr, (unsigned)port->host_port,
                           strerror(err));
    }
    if (listen(fd, BACKLOG) < 0)
        return sub_err_set(e, -errno, "cannot listen on %s:%u: %m", addr,
                           (unsigned)port->host_port);
    *out = TAKE_FD(fd);
    return 0;
}

void sub_proxy_stop(sub_proxy *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_join(p->thread, NULL);
    while (p->conns) {
        conn *c = p->conns;
        p->conns = c->next;
        if (c->cfd >= 0) close(c->cfd);
        if (c->bfd >= 0) close(c->bfd);
        if (!c->queued) conn_free(c); /* queued ones are freed from the run list */
    }
    while (p->run) {
        conn *c = p->run;
        p->run = c->run_next;
        conn_free(c);
    }
    free_dead(p);
    for (size_t i = 0; i < p->nls; i++) close(p->ls[i].fd);
    free(p->ls);
    if (p->target_ns >= 0) close(p->target_ns);
    close(p->orig_ns);
    close(p->epfd);
    close(p->evfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int sub_proxy_start(const sub_svc_port *ports, size_t n, sub_proxy **out, sub_err *e) {
    *out = NULL;
    if (n && !ports) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "no ports given");
    sub_proxy *p = xcalloc(1, sizeof *p);
    p->epfd = p->evfd = p->orig_ns = p->target_ns = -1;
    p->wake_tag = EP_WAKE;
    p->ls = xcalloc(n ? n : 1, sizeof *p->ls);
    int r = 0;
    for (; p->nls < n; p->nls++) {
        p->ls[p->nls].kind = EP_LISTENER;
        p->ls[p->nls].container_port = ports[p->nls].container_port;
        if ((r = listen_on(&ports[p->nls], &p->ls[p->nls].fd, e)) < 0) goto fail;
    }
    p->orig_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (p->orig_ns < 0) {
        r = sub_err_set(e, -errno, "cannot open /proc/thread-self/ns/net: %m");
        goto fail;
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->epfd < 0 || p->evfd < 0) {
        r = sub_err_set(e, -errno, "cannot make the proxy's epoll and eventfd: %m");
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->wake_tag};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->evfd, &ev) < 0) {
        r = sub_err_set(e, -errno, "epoll_ctl: %m");
        goto fail;
    }
    pthread_mutex_init(&p->mu, NULL);
    /* the loop takes no signals: they stay with the caller's threads */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pr = pthread_create(&p->thread, NULL, proxy_loop, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pr != 0) {
        pthread_mutex_destroy(&p->mu);
        r = sub_err_set(e, -pr, "cannot start the proxy thread: %s", strerror(pr));
        goto fail;
    }
    *out = p;
    return 0;
fail:
    for (size_t i = 0; i < p->nls; i++) close(p->ls[i].fd);
    free(p->ls);
    if (p->orig_ns >= 0) close(p->orig_ns);
    if (p->epfd >= 0) close(p->epfd);
    if (p->evfd >= 0) close(p->evfd);
    free(p);
    return r;
}

int sub_proxy_set_target(sub_proxy *p, int netns_fd, sub_err *e) {
    int fd = -1;
    if (netns_fd >= 0) {
        int t = ioctl(netns_fd, NS_GET_NSTYPE); /* Linux 4.11 */
        if (t < 0)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "fd %d is not a namespace (of /proc/PID/ns/net): %m", netns_fd);
        if (t != CLONE_NEWNET)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "fd %d is a namespace, but not a network namespace", netns_fd);
        fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) return sub_err_set(e, -errno, "cannot keep the target's namespace: %m");
    }
    pthread_mutex_lock(&p->mu);
    int old = p->target_ns;
    p->target_ns = fd;
    unsigned gen = ++p->last_gen;
    p->target_gen = gen;
    pthread_mutex_unlock(&p->mu);
    if (old >= 0) close(old);
    wake(p);
    return (int)gen;
}

size_t sub_proxy_open_connections(sub_proxy *p, unsigned gen) {
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    for (conn *c = p->conns; c; c = c->next)
        if (gen == 0 || c->gen == gen) n++;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void sub_proxy_counters(sub_proxy *p, unsigned long long *accepted, unsigned long long *failed) {
    if (accepted) *accepted = atomic_load(&p->accepted);
    if (failed) *failed = atomic_load(&p->failed);
}
