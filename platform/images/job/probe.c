/* probe: a static evidence tool for Tier-2 jobs.
 *   probe tcp HOST:PORT [--timeout-ms N]
 * tries exactly one TCP connect to a numeric address and prints one JSON line
 *   {"probe":"tcp","target":"HOST:PORT","result":"connected|refused|unreachable|timeout|error",
 *    "errno":N,"detail":"..."}
 * exit 0 when connected, 1 when not, 2 on usage errors. `probe version`
 * prints the version. No name lookups (a static binary has no NSS; egress
 * evidence must not depend on DNS either). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PROBE_VERSION
#define PROBE_VERSION "dev"
#endif
#ifndef PROBE_REVISION
#define PROBE_REVISION "unknown"
#endif

#define DEFAULT_TIMEOUT_MS 3000
#define MAX_TIMEOUT_MS 600000

static void usage(FILE *f) {
    fprintf(f,
            "Usage: probe tcp HOST:PORT [--timeout-ms N]\n"
            "       probe version\n"
            "       probe --help\n"
            "\n"
            "tcp      Try one TCP connection to HOST:PORT (a numeric IPv4 address, or [IPv6]:PORT;\n"
            "         no DNS) and print one JSON line:\n"
            "           {\"probe\":\"tcp\",\"target\":\"HOST:PORT\",\"result\":R,\"errno\":N,\"detail\":\"...\"}\n"
            "         R is connected, refused (ECONNREFUSED), unreachable (ENETUNREACH,\n"
            "         EHOSTUNREACH), timeout (no answer within the timeout, or ETIMEDOUT) or\n"
            "         error (anything else, e.g. EPERM from a firewall); errno is 0 when connected.\n"
            "         --timeout-ms N   give up after N milliseconds (1..%d, default %d)\n"
            "version  Print the version and revision.\n"
            "\n"
            "Exit status: 0 connected, 1 not connected, 2 usage error.\n"
            "Example: probe tcp 127.0.0.1:8080 --timeout-ms 500\n",
            MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS);
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "probe: %s%s%s%s (see probe --help)\n", msg, arg ? " \"" : "", arg ? arg : "",
            arg ? "\"" : "");
    return 2;
}

/* JSON string body (without quotes), escaping what must be escaped. */
static void json_str(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20 || *p >= 0x7f) printf("\\u%04x", *p);
            else putchar(*p);
        }
    }
}

static int report(const char *target, const char *result, int err, const char *detail) {
    fputs("{\"probe\":\"tcp\",\"target\":\"", stdout);
    json_str(target);
    printf("\",\"result\":\"%s\",\"errno\":%d,\"detail\":\"", result, err);
    json_str(detail);
    fputs("\"}\n", stdout);
    fflush(stdout);
    return strcmp(result, "connected") == 0 ? 0 : 1;
}

static const char *classify(int err) {
    switch (err) {
    case 0: return "connected";
    case ECONNREFUSED: return "refused";
    case ENETUNREACH:
    case EHOSTUNREACH: return "unreachable";
    case ETIMEDOUT: return "timeout";
    default: return "error";
    }
}

static int parse_target(const char *s, struct sockaddr_storage *ss, socklen_t *sl) {
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    bool v6 = s[0] == '[';
    memset(ss, 0, sizeof *ss);
    if (v6) {
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
    if (p < 1 || p > 65535) return -1;
    if (v6) {
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

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int probe_tcp(const char *target, long timeout_ms) {
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_target(target, &ss, &sl) < 0)
        return usage_error("HOST:PORT must be a numeric IPv4 address or [IPv6] and a port 1-65535, got",
                           target);
    char detail[256];
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        snprintf(detail, sizeof detail, "socket: %s", strerror(err));
        return report(target, "error", err, detail);
    }
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) err = errno;
    if (err == EINPROGRESS) {
        int64_t deadline = now_ms() + timeout_ms;
        for (;;) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                close(fd);
                snprintf(detail, sizeof detail, "no answer within %ld ms", timeout_ms);
                return report(target, "timeout", ETIMEDOUT, detail);
            }
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int pr = poll(&pfd, 1, (int)left);
            if (pr < 0 && errno == EINTR) continue;
            if (pr < 0) {
                err = errno;
                close(fd);
                snprintf(detail, sizeof detail, "poll: %s", strerror(err));
                return report(target, "error", err, detail);
            }
            if (pr == 0) continue; /* deadline check above */
            socklen_t el = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
            break;
        }
    }
    close(fd);
    if (err == 0) {
        snprintf(detail, sizeof detail, "TCP handshake completed");
        return report(target, "connected", 0, detail);
    }
    snprintf(detail, sizeof detail, "connect: %s", strerror(err));
    return report(target, classify(err), err, detail);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        if (argc > 2) return usage_error("version takes no arguments", NULL);
        printf("probe %s (revision %s)\n", PROBE_VERSION, PROBE_REVISION);
        return 0;
    }
    if (strcmp(argv[1], "tcp") != 0) return usage_error("unknown probe", argv[1]);
    const char *target = NULL;
    long timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 2; i < argc; i++) {
        const char *val = NULL;
        if (!strcmp(argv[i], "--timeout-ms")) {
            if (i + 1 >= argc) return usage_error("--timeout-ms needs a value", NULL);
            val = argv[++i];
        } else if (!strncmp(argv[i], "--timeout-ms=", 13)) {
            val = argv[i] + 13;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option", argv[i]);
        } else if (!target) {
            target = argv[i];
            continue;
        } else {
            return usage_error("unexpected argument", argv[i]);
        }
        char *end = NULL;
        errno = 0;
        timeout_ms = strtol(val, &end, 10);
        if (errno || !*val || *end || timeout_ms < 1 || timeout_ms > MAX_TIMEOUT_MS)
            return usage_error("--timeout-ms must be a whole number of milliseconds 1..600000, got",
                               val);
    }
    if (!target) return usage_error("tcp needs a HOST:PORT", NULL);
    return probe_tcp(target, timeout_ms);
}
