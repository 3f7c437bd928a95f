/* hello: the reference Tier-1 service. A small, static HTTP/1.1 server:
 *   GET /         200, one line naming the version and revision it was built from
 *   GET /healthz  200 "ok"
 *   GET /readyz   200 "ready" (it only answers once it is listening)
 *   HEAD          like GET without the body;  other paths 404;  other methods 405
 * Every response closes the connection. Requests are bounded in size and each
 * connection has a read deadline; one event loop serves up to MAX_CONN
 * clients at once. SIGTERM/SIGINT: stop accepting, finish the connections in
 * flight, log a line and exit 0. No name lookups (no NSS in a static binary):
 * addresses are numeric only. One log line per request on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef HELLO_VERSION
#define HELLO_VERSION "dev"
#endif
#ifndef HELLO_REVISION
#define HELLO_REVISION "unknown"
#endif

#define DEFAULT_LISTEN "0.0.0.0:8080"
#define MAX_CONN 64
#define MAX_REQUEST 8192      /* request line + headers */
#define READ_TIMEOUT_MS 5000  /* per connection, from accept to a complete request */

typedef struct conn {
    int fd;
    size_t len;
    int64_t deadline_ms;
    char peer[INET6_ADDRSTRLEN + 8];
    char buf[MAX_REQUEST];
} conn;

static volatile sig_atomic_t got_signal;
static conn *conns[MAX_CONN];
static size_t nconns;

static void on_signal(int sig) { got_signal = sig; }

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hello: %s\n", line);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: hello [--listen ADDR:PORT]\n"
            "       hello --help | --version\n"
            "\n"
            "A minimal HTTP/1.1 service for Substrate's Tier-1 examples.\n"
            "\n"
            "Routes (GET and HEAD; other methods get 405, other paths 404):\n"
            "  /          200, \"hello from substrate <version> (revision <revision>)\"\n"
            "  /healthz   200, \"ok\"\n"
            "  /readyz    200, \"ready\" (answered only once listening)\n"
            "Every response carries \"Connection: close\". Requests larger than %d bytes\n"
            "get 431; a client that has not sent a full request within %d ms gets 408.\n"
            "\n"
            "Options:\n"
            "  --listen ADDR:PORT  numeric IPv4 address and port, or [IPv6]:PORT\n"
            "                      (default: $HELLO_LISTEN, else %s; port 0 = any free port)\n"
            "  --help              show this text\n"
            "  --version           print the version and revision\n"
            "\n"
            "Signals: SIGTERM or SIGINT stop accepting, finish open requests, exit 0.\n"
            "Logs: one line per request on stderr.\n"
            "Exit status: 0 after a clean shutdown, 1 when it cannot listen, 2 on usage errors.\n"
            "\n"
            "Example: hello --listen 127.0.0.1:8080 & curl http://127.0.0.1:8080/healthz\n",
            MAX_REQUEST, READ_TIMEOUT_MS, DEFAULT_LISTEN);
}

/* "A.B.C.D:PORT" or "[v6]:PORT" -> sockaddr. Numeric only. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl) {
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host) return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        port = colon + 1;
    }
    if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port)) return -1;
    long p = strtol(port, NULL, 10);
    if (p < 0 || p > 65535) return -1;
    if (s[0] == '[') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)p);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return -1;
        *sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)p);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
        *sl = sizeof *a;
    }
    return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n) {
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, n, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, n, "%s:%u", ip, ntohs(a->sin_port));
    }
}

/* Send everything we can without blocking; the responses are small enough to
 * fit an empty socket buffer, so a short write means the peer is misbehaving. */
static void send_all(int fd, const char *p, size_t len) {
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        len -= (size_t)n;
    }
}

static void conn_close(size_t i) {
    conn *c = conns[i];
    /* tell the client we are done, then drop whatever it still sent so the
     * close does not turn into a reset that eats our response */
    shutdown(c->fd, SHUT_WR);
    char sink[4096];
    while (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {}
    close(c->fd);
    free(c);
    conns[i] = conns[--nconns];
}

static void respond(conn *c, int status, const char *reason, const char *body, bool head,
                    const char *extra, const char *reqline) {
    char date[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    char out[1024];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\n"
                     "Date: %s\r\n"
                     "Server: hello/%s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "%s"
                     "Connection: close\r\n"
                     "\r\n"
                     "%s",
                     status, reason, date, HELLO_VERSION, strlen(body), extra ? extra : "",
                     head ? "" : body);
    if (n > 0) send_all(c->fd, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
    logf_("%s \"%s\" %d %zu", c->peer, reqline, status, head ? (size_t)0 : strlen(body));
}

/* A copy of the request line that is safe to log. */
static void printable(const char *s, size_t len, char *out, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    out[j] = 0;
}

static bool is_token(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", *s))
            return false;
    return true;
}

static void handle_request(conn *c) {
    size_t linelen = strcspn(c->buf, "\r\n");
    char reqline[256];
    printable(c->buf, linelen, reqline, sizeof reqline);
    char line[MAX_REQUEST];
    memcpy(line, c->buf, linelen);
    line[linelen] = 0;
    char *save = NULL;
    char *method = strtok_r(line, " ", &save);
    char *target = method ? strtok_r(NULL, " ", &save) : NULL;
    char *version = target ? strtok_r(NULL, " ", &save) : NULL;
    char *rest = version ? strtok_r(NULL, " ", &save) : NULL;
    if (!method || !target || !version || rest || !is_token(method) ||
        strncmp(version, "HTTP/1.", 7) != 0 || (target[0] != '/')) {
        respond(c, 400, "Bad Request", "bad request\n", false, NULL, reqline);
        return;
    }
    bool head = !strcmp(method, "HEAD");
    if (!head && strcmp(method, "GET") != 0) {
        respond(c, 405, "Method Not Allowed", "method not allowed\n", false,
                "Allow: GET, HEAD\r\n", reqline);
        return;
    }
    target[strcspn(target, "?#")] = 0;
    if (!strcmp(target, "/")) {
        respond(c, 200, "OK",
                "hello from substrate " HELLO_VERSION " (revision " HELLO_REVISION ")\n", head,
                NULL, reqline);
    } else if (!strcmp(target, "/healthz")) {
        respond(c, 200, "OK", "ok\n", head, NULL, reqline);
    } else if (!strcmp(target, "/readyz")) {
        respond(c, 200, "OK", "ready\n", head, NULL, reqline);
    } else {
        respond(c, 404, "Not Found", "not found\n", head, NULL, reqline);
    }
}

/* Read what is available; true when the connection is finished. */
static bool conn_read(conn *c) {
    for (;;) {
        if (c->len == sizeof c->buf - 1) {
            c->buf[c->len] = 0;
            char reqline[256];
            printable(c->buf, strcspn(c->buf, "\r\n"), reqline, sizeof reqline);
            respond(c, 431, "Request Header Fields Too Large", "request too large\n", false,
                    NULL, reqline);
            return true;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
        if (n <= 0) return true; /* closed or reset before a full request: nothing to answer */
        c->len += (size_t)n;
        c->buf[c->len] = 0;
        if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n")) {
            handle_request(c);
            return true;
        }
    }
}

static void accept_all(int lfd) {
    while (nconns < MAX_CONN) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                logf_("accept: %s", strerror(errno));
            return;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            logf_("out of memory; dropped a connection");
            return;
        }
        c->fd = fd;
        c->deadline_ms = now_ms() + READ_TIMEOUT_MS;
        format_addr(&ss, c->peer, sizeof c->peer);
        conns[nconns++] = c;
    }
}

int main(int argc, char **argv) {
    const char *listen_addr = getenv("HELLO_LISTEN");
    if (!listen_addr || !*listen_addr) listen_addr = DEFAULT_LISTEN;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("hello %s (revision %s)\n", HELLO_VERSION, HELLO_REVISION);
            return 0;
        } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen_addr = argv[++i];
        } else if (!strncmp(argv[i], "--listen=", 9)) {
            listen_addr = argv[i] + 9;
        } else {
            fprintf(stderr, "hello: unknown or incomplete argument \"%s\" (see hello --help)\n", argv[i]);
            return 2;
        }
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(listen_addr, &ss, &sl) < 0) {
        fprintf(stderr,
                "hello: bad listen address \"%s\": give a numeric ADDR:PORT such as 0.0.0.0:8080 or "
                "[::1]:8080\n",
                listen_addr);
        return 2;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);

    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        logf_("cannot create a socket: %s", strerror(errno));
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 64) < 0) {
        logf_("cannot listen on %s: %s (is the port in use? pick another with --listen)",
              listen_addr, strerror(errno));
        return 1;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    char where[INET6_ADDRSTRLEN + 8] = "?";
    if (getsockname(lfd, (struct sockaddr *)&bound, &bl) == 0) format_addr(&bound, where, sizeof where);
    logf_("listening on %s (version %s, revision %s)", where, HELLO_VERSION, HELLO_REVISION);

    bool stopping = false;
    for (;;) {
        if (got_signal && !stopping) {
            stopping = true;
            close(lfd);
            lfd = -1;
            logf_("received %s: no longer accepting; finishing %zu open connection(s)",
                  got_signal == SIGINT ? "SIGINT" : "SIGTERM", nconns);
        }
        if (stopping && nconns == 0) break;

        struct pollfd pfd[MAX_CONN + 1];
        size_t np = 0;
        bool with_listener = lfd >= 0 && nconns < MAX_CONN;
        if (with_listener) pfd[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        int64_t now = now_ms(), next = now + 60000;
        for (size_t i = 0; i < nconns; i++) {
            pfd[np++] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
            if (conns[i]->deadline_ms < next) next = conns[i]->deadline_ms;
        }
        int64_t wait = next > now ? next - now : 0;
        struct timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
        int pr = ppoll(pfd, np, &ts, &waitmask);
        if (pr < 0) {
            if (errno == EINTR) continue;
            logf_("poll: %s", strerror(errno));
            return 1;
        }
        /* connections first (their slots move as they close), then the listener */
        size_t base = with_listener ? 1 : 0;
        now = now_ms();
        for (size_t k = np; k-- > base;) {
            size_t i = k - base;
            bool done = false;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) done = conn_read(conns[i]);
            if (!done && conns[i]->deadline_ms <= now) {
                char reqline[256];
                printable(conns[i]->buf, strcspn(conns[i]->buf, "\r\n"), reqline, sizeof reqline);
                respond(conns[i], 408, "Request Timeout", "request timeout\n", false, NULL, reqline);
                done = true;
            }
            if (done) conn_close(i);
        }
        if (with_listener && (pfd[0].revents & POLLIN)) accept_all(lfd);
    }
    logf_("shut down cleanly");
    return 0;
}
