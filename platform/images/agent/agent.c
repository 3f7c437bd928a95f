/* agent: the reference Tier-1 service that escalates untrusted code to a
 * Tier-2 microVM. A small, static HTTP/1.1 server:
 *   GET  /healthz  200 "ok"
 *   GET  /readyz   200 "ready" when the escalation socket exists, else 503 and why
 *   POST /run      the raw body is a shell snippet (at most 64 KiB); it is sent to
 *                  the supervisor's escalation socket as the job
 *                  {"command": ["/bin/sh", "-c"], "args": [SNIPPET]} (plus
 *                  "timeout": N for ?timeout=N) and the reply's status and body
 *                  are relayed unchanged
 *   HEAD like GET without the body; other paths 404; other methods 405.
 * Each connection is served by its own child process (at most MAX_CHILDREN at
 * once; beyond that connections wait in the listen backlog), so health probes
 * are answered while jobs run. Every read and write has a deadline; buffers are
 * fixed. A client that goes away while its job runs makes the child close the
 * escalation connection, which cancels the job. SIGTERM/SIGINT: stop
 * accepting, tell the children (a job in flight is cancelled and its client
 * gets 503), wait for them, exit 0. Numeric addresses only (no NSS in a static
 * binary). One log line per request on stderr. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AGENT_VERSION
#define AGENT_VERSION "dev"
#endif
#ifndef AGENT_REVISION
#define AGENT_REVISION "unknown"
#endif

#define DEFAULT_LISTEN "0.0.0.0:8080"
#define DEFAULT_SOCKET "/run/substrate/escalate.sock"
#define MAX_CHILDREN 32
#define MAX_HEAD 8192                 /* request line + headers */
#define MAX_SNIPPET (64 * 1024)       /* POST /run body */
#define MAX_REPLY_HEAD 16384          /* the escalation reply's status line + headers */
#define READ_TIMEOUT_MS 10000         /* from accept to a complete request (head and body) */
#define WRITE_TIMEOUT_MS 30000        /* a client that takes no bytes for this long is dropped */
#define CONNECT_TIMEOUT_MS 5000       /* the escalation socket's backlog is full */
#define ESCALATE_TIMEOUT_MS 300000    /* from sending the job to the end of its reply */
#define MAX_TIMEOUT_DIGITS 9

static volatile sig_atomic_t got_signal;
static const char *esc_path = DEFAULT_SOCKET;

/* the connection a child serves */
static int cfd = -1;
static char peer[INET6_ADDRSTRLEN + 8];
static char reqline[256];

static void on_signal(int sig) { got_signal = sig; }
static void on_child(int sig) { (void)sig; }

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "agent: %s\n", line);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: agent [--listen ADDR:PORT] [--escalate-socket PATH]\n"
            "       agent --help | --version\n"
            "\n"
            "Substrate's reference Tier-1 agent service: runs shell snippets as Tier-2 jobs\n"
            "through the supervisor's escalation socket.\n"
            "\n"
            "Routes:\n"
            "  GET  /healthz   200, \"ok\"\n"
            "  GET  /readyz    200 \"ready\" when the escalation socket exists, else 503 and why\n"
            "  POST /run       body: the shell snippet (raw bytes, UTF-8, no NUL, at most %d\n"
            "                  bytes, with Content-Length); ?timeout=N asks for N seconds.\n"
            "                  Runs it as {\"command\": [\"/bin/sh\", \"-c\"], \"args\": [SNIPPET]}\n"
            "                  and relays the reply's status and JSON body unchanged: 200 with\n"
            "                  the job's report, or 4xx/5xx {\"error\": ..., \"reason\": ...}.\n"
            "  HEAD works like GET; other paths get 404, other methods 405.\n"
            "The agent's own refusals: 400 (bad request, chunked body, NUL or invalid UTF-8,\n"
            "bad timeout), 411 (no Content-Length), 413 (body too large), 502 (bad reply),\n"
            "503 (no escalation socket: reason \"no_escalation\"), 504 (no reply in %d s).\n"
            "A client that disconnects while its job runs cancels the job.\n"
            "\n"
            "Options:\n"
            "  --listen ADDR:PORT      numeric IPv4 address and port, or [IPv6]:PORT\n"
            "                          (default %s; port 0 = any free port)\n"
            "  --escalate-socket PATH  the escalation socket (default %s)\n"
            "  --help                  show this text\n"
            "  --version               print the version and revision\n"
            "\n"
            "At most %d connections are served at once; more wait to be accepted.\n"
            "Signals: SIGTERM or SIGINT stop accepting, cancel the jobs in flight (their\n"
            "clients get 503), exit 0.\n"
            "Logs: one line per request on stderr.\n"
            "Exit status: 0 after a clean shutdown, 1 when it cannot listen, 2 on usage errors.\n"
            "\n"
            "Example: agent --listen 127.0.0.1:8080 &\n"
            "         curl --data-binary 'echo hi' http://127.0.0.1:8080/run\n",
            MAX_SNIPPET, ESCALATE_TIMEOUT_MS / 1000, DEFAULT_LISTEN, DEFAULT_SOCKET, MAX_CHILDREN);
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

/* ---- a child's I/O: non-blocking fds, every wait bounded ---------------- */

static sigset_t waitmask; /* the mask ppoll runs with: SIGTERM/SIGINT let through */

/* Wait for EVENTS on fd until DEADLINE: 1 ready, 0 deadline passed, -1 signal
 * (SIGTERM/SIGINT: the agent is stopping), unless IGNORE_SIGNAL. */
static int wait_fd(int fd, short events, int64_t deadline, bool ignore_signal) {
    for (;;) {
        if (got_signal && !ignore_signal) return -1;
        int64_t left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = events};
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        int r = ppoll(&p, 1, &ts, &waitmask);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return 0;
    }
}

/* Send all of p, waiting at most WRITE_TIMEOUT_MS for each bit of progress.
 * A signal does not interrupt it (the answer to a shutdown is sent this way). */
static int send_all(int fd, const char *p, size_t len) {
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (poll(&pf, 1, WRITE_TIMEOUT_MS) > 0) continue;
        }
        return -1;
    }
    return 0;
}

/* Done with the client: say so, then read what it still sends (for a moment)
 * so the close does not become a reset that eats the response. */
static void client_close(void) {
    shutdown(cfd, SHUT_WR);
    char sink[4096];
    int64_t deadline = now_ms() + 1000;
    size_t total = 0;
    while (total < 1024 * 1024) {
        ssize_t n = recv(cfd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = cfd, .events = POLLIN};
            int64_t left = deadline - now_ms();
            if (left > 0 && poll(&p, 1, (int)left) > 0) continue;
        }
        break;
    }
    close(cfd);
    cfd = -1;
}

static const char *status_text(int status) {
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* CONTENT_LENGTH < 0: no Content-Length (the body ends when the connection closes). */
static int send_head(int status, const char *ctype, long long content_length, const char *extra) {
    char date[64], cl[64] = "";
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (content_length >= 0) snprintf(cl, sizeof cl, "Content-Length: %lld\r\n", content_length);
    char out[1024];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: agent/%s\r\nContent-Type: %s\r\n%s%s"
                     "Connection: close\r\n\r\n",
                     status, status_text(status), date, AGENT_VERSION, ctype, cl, extra ? extra : "");
    if (n <= 0 || (size_t)n >= sizeof out) return -1;
    return send_all(cfd, out, (size_t)n);
}

static void respond(int status, const char *ctype, const char *body, bool head, const char *extra) {
    size_t len = strlen(body);
    if (send_head(status, ctype, (long long)len, extra) == 0 && !head) send_all(cfd, body, len);
    logf_("%s \"%s\" %d %zu", peer, reqline, status, head ? (size_t)0 : len);
}

static void respond_text(int status, const char *body, bool head, const char *extra) {
    respond(status, "text/plain; charset=utf-8", body, head, extra);
}

/* ---- JSON ------------------------------------------------------------------ */

/* Append s[0..len) to out as the inside of a JSON string. out must have room
 * for 6 * len bytes more (every byte escaped as \u00XX at worst). */
static size_t json_escape(char *out, const unsigned char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        switch (c) {
        case '"': out[j++] = '\\'; out[j++] = '"'; break;
        case '\\': out[j++] = '\\'; out[j++] = '\\'; break;
        case '\n': out[j++] = '\\'; out[j++] = 'n'; break;
        case '\r': out[j++] = '\\'; out[j++] = 'r'; break;
        case '\t': out[j++] = '\\'; out[j++] = 't'; break;
        case '\b': out[j++] = '\\'; out[j++] = 'b'; break;
        case '\f': out[j++] = '\\'; out[j++] = 'f'; break;
        default:
            if (c < 0x20) {
                memcpy(out + j, "\\u00", 4);
                out[j + 4] = hex[c >> 4];
                out[j + 5] = hex[c & 15];
                j += 6;
            } else {
                out[j++] = (char)c; /* UTF-8 passes through as is */
            }
        }
    }
    return j;
}

/* {"error": ERR, "reason": REASON} with ERR escaped. */
static void respond_error(int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond_error(int status, const char *reason, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char esc[6 * sizeof msg];
    size_t n = json_escape(esc, (const unsigned char *)msg, strlen(msg));
    esc[n] = 0;
    char body[sizeof esc + 256];
    snprintf(body, sizeof body, "{\"error\": \"%s\", \"reason\": \"%s\"}\n", esc, reason);
    respond(status, "application/json", body, false, NULL);
}

/* Well-formed UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool valid_utf8(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return false;
        if (len - i - 1 < n) return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* ---- the request ------------------------------------------------------------ */

typedef struct request {
    char buf[MAX_HEAD + 1];
    size_t len;       /* bytes in buf */
    size_t head_len;  /* the head, up to and including its empty line */
    char method[16];
    char path[MAX_HEAD];
    char query[MAX_HEAD];
    long long content_length; /* -1: none */
    bool bad_length;          /* unparseable or repeated with another value */
    bool transfer_encoding;
    bool expect_continue;
} request;

static request req;
static unsigned char snippet[MAX_SNIPPET];
/* the job's JSON: every snippet byte may become \u00XX */
static char job[6 * MAX_SNIPPET + 256];

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

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* Read until the end of the head: 1 got it, 0 answered (or the client left). */
static int read_head(int64_t deadline) {
    for (;;) {
        char *end = strstr(req.buf, "\r\n\r\n");
        char *lf = strstr(req.buf, "\n\n");
        if (end && (!lf || end < lf)) {
            req.head_len = (size_t)(end - req.buf) + 4;
            return 1;
        }
        if (lf) {
            req.head_len = (size_t)(lf - req.buf) + 2;
            return 1;
        }
        if (req.len == MAX_HEAD) {
            respond_text(431, "request head too large\n", false, NULL);
            return 0;
        }
        ssize_t n = recv(cfd, req.buf + req.len, MAX_HEAD - req.len, MSG_DONTWAIT);
        if (n > 0) {
            if (memchr(req.buf + req.len, 0, (size_t)n)) {
                respond_text(400, "bad request: NUL byte in the request head\n", false, NULL);
                return 0;
            }
            req.len += (size_t)n;
            req.buf[req.len] = 0;
            printable(req.buf, strcspn(req.buf, "\r\n"), reqline, sizeof reqline);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return 0; /* gone: nothing to answer */
        int w = wait_fd(cfd, POLLIN, deadline, false);
        if (w == 0) {
            respond_text(408, "request timeout: send the whole request within 10 s\n", false, NULL);
            return 0;
        }
        if (w < 0) {
            respond_text(503, "the agent is shutting down\n", false, NULL);
            return 0;
        }
    }
}

/* Parse the head in req.buf: false when it was answered 400. */
static bool parse_head(void) {
    char head[MAX_HEAD + 1];
    memcpy(head, req.buf, req.head_len);
    head[req.head_len] = 0;
    char *save = NULL, *line = strtok_r(head, "\n", &save);
    if (!line) goto bad;
    char *lsave = NULL;
    char *method = strtok_r(line, " \r", &lsave);
    char *target = method ? strtok_r(NULL, " \r", &lsave) : NULL;
    char *version = target ? strtok_r(NULL, " \r", &lsave) : NULL;
    char *rest = version ? strtok_r(NULL, " \r", &lsave) : NULL;
    if (!method || !target || !version || rest || !is_token(method) || strlen(method) >= sizeof req.method ||
        strncmp(version, "HTTP/1.", 7) != 0 || target[0] != '/')
        goto bad;
    snprintf(req.method, sizeof req.method, "%s", method);
    target[strcspn(target, "#")] = 0;
    char *q = strchr(target, '?');
    if (q) *q++ = 0;
    snprintf(req.path, sizeof req.path, "%s", target);
    snprintf(req.query, sizeof req.query, "%s", q ? q : "");
    req.content_length = -1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *colon = strchr(line, ':');
        if (!trim(line)[0]) break;
        if (!colon) goto bad;
        *colon = 0;
        char *name = line, *value = trim(colon + 1);
        if (!is_token(name)) goto bad;
        if (!strcasecmp(name, "Content-Length")) {
            if (!*value || strlen(value) > 15 || strspn(value, "0123456789") != strlen(value)) {
                req.bad_length = true;
                continue;
            }
            long long v = strtoll(value, NULL, 10);
            if (req.content_length >= 0 && req.content_length != v) req.bad_length = true;
            req.content_length = v;
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            req.transfer_encoding = true;
        } else if (!strcasecmp(name, "Expect") && !strcasecmp(value, "100-continue")) {
            req.expect_continue = true;
        }
    }
    return true;
bad:
    respond_text(400, "bad request\n", false, NULL);
    return false;
}

static bool escalation_socket_exists(void) {
    struct stat st;
    return stat(esc_path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ---- POST /run ---------------------------------------------------------------- */

/* ?timeout=N: N (>= 0), -1 when absent, -2 when bad (answered). */
static long parse_query(void) {
    long timeout = -1;
    char q[MAX_HEAD];
    snprintf(q, sizeof q, "%s", req.query);
    char *save = NULL;
    for (char *p = strtok_r(q, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
        if (!strncmp(p, "timeout=", 8)) {
            const char *v = p + 8;
            if (!*v || strlen(v) > MAX_TIMEOUT_DIGITS || strspn(v, "0123456789") != strlen(v)) {
                respond_error(400, "bad_request", "timeout must be whole seconds, digits only (at most %d)",
                              MAX_TIMEOUT_DIGITS);
                return -2;
            }
            timeout = strtol(v, NULL, 10);
        } else {
            char name[64];
            printable(p, strcspn(p, "="), name, sizeof name);
            respond_error(400, "bad_request", "unknown query parameter \"%s\": /run takes only ?timeout=N",
                          name);
            return -2;
        }
    }
    return timeout;
}

/* Read the body (Content-Length bytes) into snippet: true when complete. */
static bool read_body(size_t want, int64_t deadline) {
    size_t have = req.len - req.head_len;
    if (have > want) have = want; /* anything after the body is ignored */
    memcpy(snippet, req.buf + req.head_len, have);
    while (have < want) {
        ssize_t n = recv(cfd, snippet + have, want - have, MSG_DONTWAIT);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
        int w = wait_fd(cfd, POLLIN, deadline, false);
        if (w == 0) {
            respond_error(408, "bad_request", "request timeout: send the whole body within %d s",
                          READ_TIMEOUT_MS / 1000);
            return false;
        }
        if (w < 0) {
            respond_error(503, "shutting_down", "the agent is shutting down");
            return false;
        }
    }
    return true;
}

static int connect_escalation(void) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", esc_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int64_t deadline = now_ms() + CONNECT_TIMEOUT_MS;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return fd;
        int e = errno;
        /* a Unix socket's connect says EAGAIN while the listener's backlog is full */
        if ((e == EAGAIN || e == EINTR) && now_ms() < deadline && !got_signal) {
            usleep(50000);
            continue;
        }
        close(fd);
        return -e;
    }
}

/* Relay the escalation reply: its status line and headers are in rh[0..head_len),
 * followed by extra body bytes rh[head_len..have). */
static void relay_reply(int efd, char *rh, size_t head_len, size_t have, int64_t deadline) {
    rh[head_len - 1] = 0;
    int status = 0;
    char ctype[128] = "application/json";
    char retry[64] = "";
    long long clen = -1;
    char *save = NULL, *line = strtok_r(rh, "\n", &save);
    if (line && (!strncmp(line, "HTTP/1.1 ", 9) || !strncmp(line, "HTTP/1.0 ", 9)) &&
        strspn(line + 9, "0123456789") == 3 && strchr(" \r", line[12]))
        status = atoi(line + 9);
    if (status < 200 || status > 599) {
        char shown[128];
        printable(line ? line : "", line ? strcspn(line, "\r") : 0, shown, sizeof shown);
        respond_error(502, "bad_escalation_reply", "the escalation socket answered \"%s\", not an HTTP/1.1 reply",
                      shown);
        return;
    }
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *value = trim(colon + 1);
        if (!strcasecmp(trim(line), "Content-Length") && *value && strlen(value) <= 15 &&
            strspn(value, "0123456789") == strlen(value))
            clen = strtoll(value, NULL, 10);
        else if (!strcasecmp(trim(line), "Content-Type") && *value && strlen(value) < sizeof ctype &&
                 !strpbrk(value, "\r\n"))
            snprintf(ctype, sizeof ctype, "%s", value);
        else if (!strcasecmp(trim(line), "Retry-After") && *value && strlen(value) <= 9 &&
                 strspn(value, "0123456789") == strlen(value))
            snprintf(retry, sizeof retry, "Retry-After: %s\r\n", value); /* a 429's or 503's hint */
    }
    /* status and body unchanged (and Content-Type and Retry-After); without a
     * Content-Length the body ends at EOF, and so does ours */
    if (send_head(status, ctype, clen, retry[0] ? retry : NULL) < 0) {
        logf_("%s \"%s\" %d: the client went away before the reply (job already finished)", peer, reqline,
              status);
        return;
    }
    long long sent = 0;
    const char *body = rh + head_len;
    size_t n0 = have - head_len;
    if (clen >= 0 && (long long)n0 > clen) n0 = (size_t)clen;
    bool ok = send_all(cfd, body, n0) == 0;
    sent += (long long)n0;
    char chunk[16384];
    bool truncated = false;
    while (ok && (clen < 0 || sent < clen)) {
        ssize_t n = recv(efd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            if (clen >= 0 && sent + n > clen) n = (ssize_t)(clen - sent);
            ok = send_all(cfd, chunk, (size_t)n) == 0;
            sent += n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            truncated = clen >= 0;
            break;
        }
        /* a shutdown does not cut a reply that is being relayed */
        if (wait_fd(efd, POLLIN, deadline, true) == 0) {
            truncated = true;
            break;
        }
    }
    logf_("%s \"%s\" %d %lld%s", peer, reqline, status, sent,
          !ok ? " (the client went away during the reply)" : truncated ? " (the reply was cut short)" : "");
}

/* Send the job and wait for the head of its reply, watching the client: if it
 * goes away, close the escalation connection at once (that cancels the job).
 * A client that only shuts down its sending side counts as gone, as it does
 * for most proxies: it cannot be told apart from one that closed. */
static void escalate(int efd, size_t job_len) {
    char req_head[256];
    int hn = snprintf(req_head, sizeof req_head,
                      "POST /v1/jobs HTTP/1.1\r\nHost: substrate\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      job_len);
    struct piece {
        const char *p;
        size_t n;
    } out[2] = {{req_head, (size_t)hn}, {job, job_len}};
    size_t oi = 0;
    static char rh[MAX_REPLY_HEAD + 1];
    size_t have = 0;
    int64_t deadline = now_ms() + ESCALATE_TIMEOUT_MS;
    bool sending = true;
    for (;;) {
        struct pollfd p[2] = {{.fd = cfd, .events = POLLIN | POLLRDHUP},
                              {.fd = efd, .events = (short)(POLLIN | (sending ? POLLOUT : 0))}};
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            close(efd);
            respond_error(504, "escalation_timeout", "no reply from the escalation socket at %s within %d s",
                          esc_path, ESCALATE_TIMEOUT_MS / 1000);
            return;
        }
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        int r = ppoll(p, 2, &ts, &waitmask);
        if (got_signal) {
            close(efd);
            respond_error(503, "shutting_down", "the agent is shutting down: the job was cancelled");
            return;
        }
        if (r < 0 && errno != EINTR) {
            close(efd);
            respond_error(500, "internal", "poll: %s", strerror(errno));
            return;
        }
        if (r <= 0) continue;
        if (p[0].revents) {
            char sink[4096];
            ssize_t n = recv(cfd, sink, sizeof sink, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
                (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
                close(efd);
                logf_("%s \"%s\" -: the client went away; escalation connection closed (job cancelled)",
                      peer, reqline);
                return;
            }
            /* bytes after the request: ignored */
        }
        if (sending && (p[1].revents & POLLOUT)) {
            ssize_t n = send(efd, out[oi].p, out[oi].n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                out[oi].p += n;
                out[oi].n -= (size_t)n;
                if (!out[oi].n && ++oi == 2) sending = false;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                sending = false; /* it stopped reading: its reply says why */
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(efd, rh + have, MAX_REPLY_HEAD - have, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
            if (n <= 0) {
                close(efd);
                respond_error(502, "bad_escalation_reply",
                              "the escalation socket at %s closed the connection without a complete reply",
                              esc_path);
                return;
            }
            have += (size_t)n;
            rh[have] = 0;
            char *end = strstr(rh, "\r\n\r\n");
            if (end || have == MAX_REPLY_HEAD) {
                if (!end) {
                    close(efd);
                    respond_error(502, "bad_escalation_reply", "the escalation reply's head exceeds %d bytes",
                                  MAX_REPLY_HEAD);
                    return;
                }
                relay_reply(efd, rh, (size_t)(end - rh) + 4, have, deadline);
                close(efd);
                return;
            }
        }
    }
}

static void handle_run(int64_t deadline) {
    long timeout = parse_query();
    if (timeout == -2) return;
    if (req.transfer_encoding) {
        respond_error(400, "bad_request",
                      "chunked (Transfer-Encoding) bodies are not accepted: send the snippet with Content-Length");
        return;
    }
    if (req.bad_length) {
        respond_error(400, "bad_request", "bad Content-Length");
        return;
    }
    if (req.content_length < 0) {
        respond_error(411, "length_required", "send the snippet as the body with a Content-Length");
        return;
    }
    if (req.content_length > MAX_SNIPPET) {
        respond_error(413, "too_large", "the snippet is %lld bytes; at most %d are accepted",
                      req.content_length, MAX_SNIPPET);
        return;
    }
    if (!escalation_socket_exists()) {
        respond_error(503, "no_escalation",
                      "no escalation socket at %s: the service's manifest has no escalate: policy", esc_path);
        return;
    }
    size_t len = (size_t)req.content_length;
    if (req.expect_continue && req.len - req.head_len < len &&
        send_all(cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        return;
    if (!read_body(len, deadline)) return;
    if (memchr(snippet, 0, len)) {
        respond_error(400, "bad_request", "the snippet contains a NUL byte");
        return;
    }
    if (!valid_utf8(snippet, len)) {
        respond_error(400, "bad_request", "the snippet is not valid UTF-8");
        return;
    }
    size_t j = (size_t)sprintf(job, "{\"command\": [\"/bin/sh\", \"-c\"], \"args\": [\"");
    j += json_escape(job + j, snippet, len);
    if (timeout >= 0)
        j += (size_t)sprintf(job + j, "\"], \"timeout\": %ld}", timeout);
    else
        j += (size_t)sprintf(job + j, "\"]}");
    int efd = connect_escalation();
    if (efd == -ENOENT) {
        respond_error(503, "no_escalation",
                      "no escalation socket at %s: the service's manifest has no escalate: policy", esc_path);
        return;
    }
    if (efd < 0) {
        respond_error(503, "escalation_unavailable", "cannot connect to the escalation socket at %s: %s",
                      esc_path, strerror(-efd));
        return;
    }
    escalate(efd, j);
}

static void handle_conn(void) {
    int64_t deadline = now_ms() + READ_TIMEOUT_MS;
    if (read_head(deadline) <= 0) return;
    if (!parse_head()) return;
    bool get = !strcmp(req.method, "GET"), head = !strcmp(req.method, "HEAD");
    if (!strcmp(req.path, "/healthz") || !strcmp(req.path, "/readyz")) {
        if (!get && !head) {
            respond_text(405, "method not allowed: use GET\n", false, "Allow: GET, HEAD\r\n");
        } else if (req.path[1] == 'h') {
            respond_text(200, "ok\n", head, NULL);
        } else if (escalation_socket_exists()) {
            respond_text(200, "ready\n", head, NULL);
        } else {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof msg, "not ready: no escalation socket at %s\n", esc_path);
            respond_text(503, msg, head, NULL);
        }
    } else if (!strcmp(req.path, "/run")) {
        if (strcmp(req.method, "POST") != 0)
            respond_text(405, "method not allowed: POST the snippet to /run\n", head, "Allow: POST\r\n");
        else
            handle_run(deadline);
    } else {
        respond_text(404, "not found: the routes are GET /healthz, GET /readyz and POST /run\n", head, NULL);
    }
}

/* ---- the parent: accept, fork, reap ------------------------------------------ */

static pid_t children[MAX_CHILDREN];
static size_t nchildren;

static void reap(void) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (size_t i = 0; i < nchildren; i++)
            if (children[i] == pid) {
                children[i] = children[--nchildren];
                break;
            }
        if (WIFSIGNALED(st)) logf_("connection handler %d killed by signal %d", (int)pid, WTERMSIG(st));
    }
}

static void accept_one(int lfd) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
            logf_("accept: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(lfd);
        cfd = fd;
        format_addr(&ss, peer, sizeof peer);
        handle_conn();
        if (cfd >= 0) client_close();
        _exit(0);
    }
    if (pid < 0) {
        logf_("fork: %s; dropped a connection", strerror(errno));
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: 15\r\nConnection: close\r\n\r\nagent is busy.\n";
        send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        children[nchildren++] = pid;
    }
    close(fd);
}

int main(int argc, char **argv) {
    const char *listen_addr = DEFAULT_LISTEN;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("agent %s (revision %s)\n", AGENT_VERSION, AGENT_REVISION);
            return 0;
        } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
            listen_addr = argv[++i];
        } else if (!strncmp(argv[i], "--listen=", 9)) {
            listen_addr = argv[i] + 9;
        } else if (!strcmp(argv[i], "--escalate-socket") && i + 1 < argc) {
            esc_path = argv[++i];
        } else if (!strncmp(argv[i], "--escalate-socket=", 18)) {
            esc_path = argv[i] + 18;
        } else {
            fprintf(stderr, "agent: unknown or incomplete argument \"%s\" (see agent --help)\n", argv[i]);
            return 2;
        }
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_listen(listen_addr, &ss, &sl) < 0) {
        fprintf(stderr,
                "agent: bad listen address \"%s\": give a numeric ADDR:PORT such as 0.0.0.0:8080 or "
                "[::1]:8080\n",
                listen_addr);
        return 2;
    }
    if (!*esc_path || strlen(esc_path) >= sizeof((struct sockaddr_un *)0)->sun_path) {
        fprintf(stderr, "agent: --escalate-socket \"%s\" is empty or longer than %zu bytes: use a shorter path\n",
                esc_path, sizeof((struct sockaddr_un *)0)->sun_path - 1);
        return 2;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigset_t parentmask = waitmask;
    sigdelset(&parentmask, SIGCHLD);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
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
        logf_("cannot listen on %s: %s (is the port in use? pick another with --listen)", listen_addr,
              strerror(errno));
        return 1;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    char where[INET6_ADDRSTRLEN + 8] = "?";
    if (getsockname(lfd, (struct sockaddr *)&bound, &bl) == 0) format_addr(&bound, where, sizeof where);
    logf_("listening on %s, escalating to %s%s (version %s, revision %s)", where, esc_path,
          escalation_socket_exists() ? "" : " (not there yet)", AGENT_VERSION, AGENT_REVISION);

    bool stopping = false;
    for (;;) {
        reap();
        if (got_signal && !stopping) {
            stopping = true;
            close(lfd);
            lfd = -1;
            logf_("received %s: no longer accepting; stopping %zu connection handler(s)",
                  got_signal == SIGINT ? "SIGINT" : "SIGTERM", nchildren);
            for (size_t i = 0; i < nchildren; i++) kill(children[i], SIGTERM);
        }
        if (stopping && nchildren == 0) break;
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        bool listening = lfd >= 0 && nchildren < MAX_CHILDREN;
        /* without the listener: sleep until a child exits (SIGCHLD) or a signal */
        int r = ppoll(&p, listening ? 1 : 0, NULL, &parentmask);
        if (r < 0 && errno != EINTR) {
            logf_("poll: %s", strerror(errno));
            return 1;
        }
        if (r > 0 && (p.revents & POLLIN)) accept_one(lfd);
    }
    logf_("shut down cleanly");
    return 0;
}
