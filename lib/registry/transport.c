/* OCI distribution-API client over libcurl: the transport (see registry.h).
 *
 * One curl easy handle per sub_reg (connections are reused). Every request
 * goes through reg_perform(): it sets the options afresh, streams the response
 * body into memory or a file while hashing it, enforces size caps as bytes
 * arrive (and from Content-Length before they do), and answers a 401
 * challenge through auth.c. Time: every transfer slower than SUB_REG_LOW_SPEED
 * bytes/s for stall_s is stopped as stalled; a blob body has no total timeout
 * beyond that (a large blob that flows is never cut), other requests have
 * timeout_s; an overall deadline (sub_reg_set_deadline) stops everything.
 * Progress of blob bodies goes to the caller's callback; one debug log line
 * per request. The network policy (https or plain http, CA file, proxies) is
 * reg_net_opts(); only blob GETs follow redirects, never with credentials to
 * another host; upload locations must stay on the same host:port. */
#include "client-internal.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/log.h"
#include "substrate/ref.h"
#include "substrate/strbuf.h"
#include "version.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- addresses -------------------------------------------------------------------------- */

int sub_reg_addr_split(const char *addr, char **host, int *port, sub_err *e) {
    if (!addr || !*addr) return sub_err_set(e, -EINVAL, "empty registry address");
    const char *hs, *he, *ps = NULL;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close) return sub_err_set(e, -EINVAL, "registry address \"%s\": missing ']'", addr);
        hs = addr + 1;
        he = close;
        if (close[1] == ':') ps = close + 2;
        else if (close[1])
            return sub_err_set(e, -EINVAL, "registry address \"%s\": junk after ']'", addr);
    } else {
        hs = addr;
        const char *c = strchr(addr, ':');
        if (c && strchr(c + 1, ':'))
            return sub_err_set(
                e, -EINVAL,
                "registry address \"%s\": write IPv6 addresses in brackets ([::1]:5000)", addr);
        he = c ? c : addr + strlen(addr);
        if (c) ps = c + 1;
    }
    if (he == hs) return sub_err_set(e, -EINVAL, "registry address \"%s\" has no host", addr);
    int p = 0;
    if (ps) {
        if (!*ps) return sub_err_set(e, -EINVAL, "registry address \"%s\": empty port", addr);
        for (const char *q = ps; *q; q++) {
            if (!isdigit((unsigned char)*q) || p > 65535)
                return sub_err_set(e, -EINVAL, "registry address \"%s\": port must be 1-65535",
                                   addr);
            p = p * 10 + (*q - '0');
        }
        if (p < 1 || p > 65535)
            return sub_err_set(e, -EINVAL, "registry address \"%s\": port must be 1-65535", addr);
    }
    if (host) *host = xstrndup(hs, (size_t)(he - hs));
    if (port) *port = p;
    return 0;
}

bool sub_reg_addr_is_loopback(const char *addr) {
    _cleanup_free_ char *h = NULL;
    if (sub_reg_addr_split(addr, &h, NULL, NULL) < 0) return false;
    if (!strcasecmp(h, "localhost")) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, h, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

void xfer_init(xfer *x, const char *method) {
    memset(x, 0, sizeof *x);
    x->method = method;
    x->in_fd = -1;
    x->out_fd = -1;
    x->clen = -1;
}

static void resp_reset(xfer *x) {
    free(x->ctype);
    free(x->location);
    free(x->docker_digest);
    free(x->www_auth);
    free(x->link);
    x->ctype = x->location = x->docker_digest = x->www_auth = x->link = NULL;
    x->status = 0;
    x->clen = -1;
}

void xfer_done(xfer *x) {
    resp_reset(x);
    free(x->url);
    free(x->hop_url);
    free(x->what);
    sub_buf_free(&x->mem);
    sub_buf_free(&x->err_body);
    sub_sha256_free(&x->in_hash);
    sub_sha256_free(&x->out_hash);
}

bool reg_ok2xx(long s) { return s >= 200 && s < 300; }

static char *trim_dup(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return xstrndup(s, n);
}

size_t reg_on_header(char *buf, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    if (n >= 5 && !memcmp(buf, "HTTP/", 5)) {
        resp_reset(x);
        /* "HTTP/1.1 200 OK": curl's buffer is not NUL-terminated, so the
         * code is read within the line (at most 3 digits) */
        const char *sp = memchr(buf, ' ', n);
        long st = 0;
        for (size_t i = sp ? (size_t)(sp - buf) + 1 : n, k = 0;
             i < n && k < 3 && isdigit((unsigned char)buf[i]); i++, k++)
            st = st * 10 + (buf[i] - '0');
        x->status = st;
        return n;
    }
    if (n >= 1 && n <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        /* end of this response's headers: refuse an announced oversize body now */
        if (reg_ok2xx(x->status) && x->out_max && x->clen >= 0 && strcmp(x->method, "HEAD") != 0) {
            if (x->out_expect && (uint64_t)x->clen != x->out_expect) {
                x->abort = ABORT_SIZE;
                return 0;
            }
            if ((uint64_t)x->clen > x->out_max) {
                x->abort = ABORT_TOO_BIG;
                return 0;
            }
        }
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon) return n;
    size_t kl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vl = n - kl - 1;
#define IS(name) (kl == strlen(name) && !strncasecmp(buf, name, kl))
    if (IS("content-type")) {
        free(x->ctype);
        x->ctype = trim_dup(v, vl);
    } else if (IS("content-length")) {
        _cleanup_free_ char *s = trim_dup(v, vl);
        char *end;
        long long l = strtoll(s, &end, 10);
        x->clen = (*s && !*end && l >= 0) ? l : -1;
    } else if (IS("docker-content-digest")) {
        free(x->docker_digest);
        x->docker_digest = trim_dup(v, vl);
    } else if (IS("location")) {
        free(x->location);
        x->location = trim_dup(v, vl);
    } else if (IS("www-authenticate")) {
        if (!x->www_auth) x->www_auth = trim_dup(v, vl); /* the first challenge */
    } else if (IS("link")) {
        free(x->link);
        x->link = trim_dup(v, vl);
    }
#undef IS
    return n;
}

static size_t on_write(char *ptr, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    if (!reg_ok2xx(x->status)) {
        if (x->err_body.len < ERR_BODY_MAX)
            sub_buf_append(&x->err_body, ptr,
                           n < ERR_BODY_MAX - x->err_body.len ? n : ERR_BODY_MAX - x->err_body.len);
        return n;
    }
    if (x->out_expect && x->received + n > x->out_expect) {
        x->abort = ABORT_LONGER;
        return 0;
    }
    if (x->out_max == 0 || x->received + n > x->out_max) {
        x->abort = ABORT_TOO_BIG;
        return 0;
    }
    if (x->hash_out) sub_sha256_update(&x->out_hash, ptr, n);
    if (x->out_fd >= 0) {
        const char *p = ptr;
        size_t left = n;
        while (left) {
            ssize_t w = write(x->out_fd, p, left);
            if (w < 0) {
                if (errno == EINTR) continue;
                x->out_errno = errno;
                x->abort = ABORT_WRITE;
                return 0;
            }
            p += w;
            left -= (size_t)w;
        }
    } else {
        sub_buf_append(&x->mem, ptr, n);
    }
    x->received += n;
    return n;
}

static size_t on_read(char *buf, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    if (x->body) {
        size_t left = x->body_len - x->body_off;
        if (n > left) n = left;
        memcpy(buf, (const char *)x->body + x->body_off, n);
        x->body_off += n;
        return n;
    }
    if (x->in_fd < 0) return 0;
    uint64_t left = x->in_len - x->in_off;
    if ((uint64_t)n > left) n = (size_t)left;
    if (n == 0) return 0;
    ssize_t got;
    do got = read(x->in_fd, buf, n);
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        x->in_errno = got < 0 ? errno : EIO; /* EIO: the file shrank while we sent it */
        return CURL_READFUNC_ABORT;
    }
    if (x->hash_in) sub_sha256_update(&x->in_hash, buf, (size_t)got);
    x->in_off += (uint64_t)got;
    return (size_t)got;
}

static int on_seek(void *ud, curl_off_t off, int origin) {
    xfer *x = ud;
    if (off != 0 || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
    /* libcurl rewinds to send the request again itself when a reused connection
     * dies before an answer: once body bytes went out that replays an upload the
     * registry saw part of. Refused (CURLE_SEND_FAIL_REWIND, reported as a lost
     * connection); reg_perform() decides about retries. */
    if (x->body_off || x->in_off) return CURL_SEEKFUNC_FAIL;
    if (x->body) {
        x->body_off = 0;
        return CURL_SEEKFUNC_OK;
    }
    if (x->in_fd < 0 || lseek(x->in_fd, 0, SEEK_SET) < 0) return CURL_SEEKFUNC_FAIL;
    x->in_off = 0;
    if (x->hash_in) {
        sub_sha256_free(&x->in_hash);
        if (sub_sha256_init(&x->in_hash, NULL) < 0) return CURL_SEEKFUNC_FAIL;
    }
    return CURL_SEEKFUNC_OK;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CURLOPT_XFERINFOFUNCTION: the overall deadline, and byte progress of blob
 * bodies to the caller's callback (the library never prints). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
    xfer *x = ud;
    sub_reg *r = x->reg;
    (void)dltotal;
    (void)dlnow;
    if (r->deadline_ms && mono_ms() >= r->deadline_ms) {
        x->abort = ABORT_DEADLINE;
        return 1;
    }
    if (!x->report || !r->progress) return 0;
    uint64_t done, total;
    if (!strcmp(x->method, "PUT")) {
        done = ulnow > 0 ? (uint64_t)ulnow : 0;
        total = ultotal > 0 ? (uint64_t)ultotal : x->in_len;
    } else {
        if (!reg_ok2xx(x->status)) return 0;
        done = x->received;
        total = x->out_expect ? x->out_expect : x->clen > 0 ? (uint64_t)x->clen : 0;
    }
    if (done != x->reported) {
        x->reported = done;
        r->progress(r->progress_ud, done, total);
    }
    return 0;
}

/* Restart a transfer's local state (for the retry after a 401). */
static int xfer_rewind(xfer *x, sub_err *e) {
    resp_reset(x);
    x->received = 0;
    x->reported = 0;
    x->abort = ABORT_NONE;
    x->out_errno = x->in_errno = 0;
    x->body_off = 0;
    x->in_off = 0;
    sub_buf_reset(&x->mem);
    sub_buf_reset(&x->err_body);
    int r;
    if (x->hash_out) {
        sub_sha256_free(&x->out_hash);
        if ((r = sub_sha256_init(&x->out_hash, e)) < 0) return r;
    }
    if (x->hash_in) {
        sub_sha256_free(&x->in_hash);
        if ((r = sub_sha256_init(&x->in_hash, e)) < 0) return r;
    }
    if (x->in_fd >= 0 && lseek(x->in_fd, 0, SEEK_SET) < 0)
        return sub_err_set(e, -errno, "cannot rewind the upload: %m");
    if (x->out_fd >= 0 && (ftruncate(x->out_fd, 0) < 0 || lseek(x->out_fd, 0, SEEK_SET) < 0))
        return sub_err_set(e, -errno, "cannot rewind the download: %m");
    return 0;
}

/* ---- errors ----------------------------------------------------------------------------- */

/* "HTTP 404: MANIFEST_UNKNOWN: manifest unknown; ..." from the registry's error JSON. */
void reg_http_detail(xfer *x, sub_err *e) {
    if (!e) return;
    e->http_status = x->status;
    sub_buf d = SUB_BUF_INIT;
    sub_buf_printf(&d, "HTTP %ld", x->status);
    json_t *j = NULL;
    if (x->err_body.len && sub_json_parse(x->err_body.data, x->err_body.len, ERR_BODY_MAX,
                                          "error body", &j, NULL) == 0) {
        json_t *errs = json_object_get(j, "errors");
        size_t i;
        json_t *it;
        json_array_foreach(errs, i, it) {
            const char *code = json_string_value(json_object_get(it, "code"));
            const char *msg = json_string_value(json_object_get(it, "message"));
            json_t *det = json_object_get(it, "detail");
            sub_buf_printf(&d, "%s%s%s%s", i ? "; " : ": ", code ? code : "?", msg ? ": " : "",
                           msg ? msg : "");
            if (det && !json_is_null(det)) {
                _cleanup_free_ char *ds = sub_json_dump(det, NULL);
                sub_buf_printf(&d, " (%.200s)", ds);
            }
        }
        json_decref(j);
    } else if (x->err_body.len) {
        sub_buf_puts(&d, ": ");
        for (size_t i = 0; i < x->err_body.len && i < 200; i++) {
            char c = x->err_body.data[i];
            sub_buf_putc(&d, (c >= 32 && c < 127) ? c : ' ');
        }
    }
    sub_err_detail(e, "%s", sub_buf_str(&d));
    sub_buf_free(&d);
}

/* An unexpected HTTP status: errno from the status, message naming the request. */
int reg_status_error(sub_reg *r, xfer *x, sub_err *e) {
    int code;
    sub_err_kind kind = SUB_KIND_DEFAULT;
    if (x->status == 401 || x->status == 403) code = -EACCES;
    else if (x->status == 404) code = -ENOENT;
    else if (x->status == 400 || x->status == 405 || x->status == 413) code = -EPROTO;
    else if (x->status == 429) code = -EBUSY;
    else code = -EIO;
    const char *hint = "";
    if (x->status >= 300 && x->status < 400)
        hint = " (only blob downloads follow redirects)";
    else if (x->status >= 500 && x->err_body.len &&
             memmem(x->err_body.data, x->err_body.len, "no space left on device", 23))
        hint = " (its storage is full: free space there, then push again)";
    else if (x->status >= 500) hint = " (see the registry's log: substrate registry status)";
    sub_err_setk(e, kind, code, "%s: the registry at %s answered HTTP %ld to %s %s%s", x->what,
                 r->host, x->status, x->method, x->url + strlen(r->base), hint);
    reg_http_detail(x, e);
    return code;
}

static int deadline_error(sub_reg *r, xfer *x, sub_err *e);

static int curl_error(sub_reg *r, xfer *x, CURLcode cc, sub_err *e) {
    const char *cerr = x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
    int rr;
    switch (x->abort) {
    case ABORT_TOO_BIG:
        if (x->clen >= 0)
            rr = sub_err_set(
                e, -EFBIG,
                "%s from %s is %lld bytes, larger than the limit of %llu bytes; refused, "
                "nothing was kept",
                x->what, r->host, (long long)x->clen, (unsigned long long)x->out_max);
        else
            rr = sub_err_set(e, -EFBIG,
                             "%s from %s is larger than the limit of %llu bytes; refused, nothing "
                             "was kept",
                             x->what, r->host, (unsigned long long)x->out_max);
        return rr;
    case ABORT_SIZE:
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "%s: the registry at %s announced %lld bytes, but its descriptor says "
                            "%llu; refused, nothing was kept",
                            x->what, r->host, (long long)x->clen,
                            (unsigned long long)x->out_expect);
    case ABORT_LONGER:
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "%s: the registry at %s sent more than the %llu bytes its descriptor "
                            "says; refused, nothing was kept",
                            x->what, r->host, (unsigned long long)x->out_expect);
    case ABORT_WRITE:
        return sub_err_set(e, -x->out_errno, "cannot store %s: %s%s", x->what,
                           strerror(x->out_errno), sub_io_hint(x->out_errno));
    case ABORT_DEADLINE:
        return deadline_error(r, x, e);
    case ABORT_NONE: break;
    }
    if (x->in_errno)
        return sub_err_set(e, -x->in_errno, "cannot read the data to upload for %s: %s", x->what,
                           strerror(x->in_errno));
    const char *tls = reg_tls_problem(cc);
    if (tls) {
        rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                          "%s: %s with the registry at %s%s: if it uses a private CA, trust "
                          "it with SUBSTRATE_CA_FILE=ca.pem; if it speaks plain http, list it in "
                          "SUBSTRATE_INSECURE_REGISTRIES (or, on loopback, unset "
                          "SUBSTRATE_REGISTRY_TLS)",
                          x->what, tls, r->host, x->hop_url ? " (after a redirect)" : "");
        sub_err_detail(e, "curl: %s", cerr);
        return rr;
    }
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
        rr =
            sub_err_set(e, -ECONNREFUSED,
                        "the registry at %s is not reachable (connection refused): start it with "
                        "`substrate registry start`, or set SUBSTRATE_REGISTRY to the address of a "
                        "running registry",
                        r->host);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        rr = sub_err_set(e, -EHOSTUNREACH, "cannot resolve the registry host of %s", r->host);
        break;
    case CURLE_OPERATION_TIMEDOUT: {
        /* one curl code for three limits: tell them apart by the clock */
        curl_off_t total_us = 0, connect_us = 0;
        long conns = 0;
        curl_easy_getinfo(r->curl, CURLINFO_TOTAL_TIME_T, &total_us);
        curl_easy_getinfo(r->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
        curl_easy_getinfo(r->curl, CURLINFO_NUM_CONNECTS, &conns);
        if (connect_us == 0 && conns > 0) /* a reused connection has no connect time */
            rr = sub_err_set(e, -ETIMEDOUT, "%s: cannot connect to the registry at %s (timed out)",
                             x->what, r->host);
        else if (x->timeout_used && total_us >= (curl_off_t)x->timeout_used * 1000000 - 500000)
            rr = sub_err_set(e, -ETIMEDOUT,
                             "%s: the registry at %s did not finish %s within %ld s", x->what,
                             r->host, x->method, x->timeout_used);
        else
            rr = sub_err_set(e, -ETIMEDOUT,
                             "%s: the transfer with the registry at %s stalled: less than %d "
                             "bytes/s for %ld s (after %llu bytes); stopped, nothing was kept. "
                             "Check the registry and the network, then try again "
                             "(SUBSTRATE_STALL_SECONDS sets the window)",
                             x->what, r->host, SUB_REG_LOW_SPEED, r->stall_s,
                             (unsigned long long)(strcmp(x->method, "PUT") ? x->received
                                                                           : x->in_off));
        break;
    }
    case CURLE_PARTIAL_FILE:
        if (x->clen >= 0)
            rr =
                sub_err_set(e, -EIO,
                            "%s: the registry at %s closed the connection after %llu of %lld bytes "
                            "(truncated transfer); nothing was kept",
                            x->what, r->host, (unsigned long long)x->received, (long long)x->clen);
        else
            rr = sub_err_set(e, -EIO,
                             "%s: the registry at %s closed the connection after %llu bytes "
                             "(truncated transfer); nothing was kept",
                             x->what, r->host, (unsigned long long)x->received);
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_FAIL_REWIND: /* lost after body bytes went out: not replayed (on_seek) */
        rr = sub_err_set(e, -ECONNRESET,
                         "%s: the connection to the registry at %s was lost during %s; nothing was "
                         "committed, try again",
                         x->what, r->host, x->method);
        break;
    default:
        rr = sub_err_set(e, -EIO, "%s: %s %s on the registry at %s failed", x->what, x->method,
                         x->url + strlen(r->base), r->host);
        break;
    }
    sub_err_detail(e, "curl: %s", cerr);
    return rr;
}

/* ---- network policy --------------------------------------------------------------------- */

bool reg_insecure_listed(const char *addr) {
    const char *list = getenv("SUBSTRATE_INSECURE_REGISTRIES");
    if (!list || !*list || !addr) return false;
    _cleanup_free_ char *host = NULL;
    if (sub_reg_addr_split(addr, &host, NULL, NULL) < 0) return false;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ", \t");
        if (n) {
            _cleanup_free_ char *item = xstrndup(p, n);
            _cleanup_free_ char *ih = NULL;
            int iport = 0;
            if (!strcasecmp(item, addr)) return true;
            /* a bare host (no port) lists every port of that host */
            if (sub_reg_addr_split(item, &ih, &iport, NULL) == 0 && iport == 0 &&
                !strcasecmp(ih, host))
                return true;
        }
        p += n;
        while (*p == ',' || *p == ' ' || *p == '\t') p++;
    }
    return false;
}

const char *reg_tls_problem(CURLcode cc) {
    switch (cc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        return "the TLS certificate could not be verified (unknown CA, wrong host name or "
               "expired)";
    case CURLE_SSL_CACERT_BADFILE: return "the CA file could not be loaded";
    case CURLE_SSL_CONNECT_ERROR: return "the TLS handshake failed";
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: return "TLS failed";
    default: return NULL;
    }
}

int reg_net_opts(sub_reg *r, CURL *c, const char *url, sub_err *e) {
    CURLU *u = curl_url();
    if (!u) return sub_err_set(e, -ENOMEM, "out of memory");
    char *scheme = NULL, *host = NULL, *port = NULL, *addr = NULL;
    int rr = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rr = sub_err_set(e, -EPROTO, "not a usable URL: %.200s", url);
        goto out;
    }
    addr = xasprintf("%s:%s", host, port);
    bool lo = sub_reg_addr_is_loopback(addr);
    if (!strcasecmp(scheme, "http")) {
        if (!lo && !reg_insecure_listed(addr)) {
            rr = sub_err_setk(e, SUB_KIND_ENV, -EPERM,
                              "refusing plain http to %s (for the registry at %s): only loopback "
                              "hosts and hosts listed in SUBSTRATE_INSECURE_REGISTRIES are "
                              "reached without TLS",
                              addr, r->host);
            goto out;
        }
    } else if (strcasecmp(scheme, "https") != 0) {
        rr = sub_err_setk(e, SUB_KIND_ENV, -EPERM,
                          "refusing %s://%s (for the registry at %s): only https and http are "
                          "spoken",
                          scheme, addr, r->host);
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, !strcasecmp(scheme, "http") ? "http" : "https");
    if (lo) curl_easy_setopt(c, CURLOPT_PROXY, ""); /* loopback never goes through a proxy */
    if (r->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, r->ca_file);
out:
    free(addr);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rr;
}

/* Does url name r's own scheme://host:port (so credentials may go there)? */
static bool same_origin(sub_reg *r, const char *url) {
    size_t bl = strlen(r->base);
    return !strncasecmp(url, r->base, bl) && (url[bl] == '/' || url[bl] == '?' || !url[bl]);
}

/* ---- perform ---------------------------------------------------------------------------- */

static const char *url_path(sub_reg *r, const char *url) {
    size_t bl = strlen(r->base);
    return strncmp(url, r->base, bl) == 0 ? url + bl : url;
}

/* One debug line per request: method, path, status, bytes, time. */
static void log_request(sub_reg *r, xfer *x, CURLcode cc) {
    if (sub_log_get_level() < SUB_LOG_DEBUG) return;
    curl_off_t up = 0, down = 0, us = 0;
    curl_easy_getinfo(r->curl, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(r->curl, CURLINFO_SIZE_DOWNLOAD_T, &down);
    curl_easy_getinfo(r->curl, CURLINFO_TOTAL_TIME_T, &us);
    long code = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
    char st[64];
    if (cc == CURLE_OK) snprintf(st, sizeof st, "%ld", code);
    else snprintf(st, sizeof st, "failed (%s)", curl_easy_strerror(cc));
    log_debug("registry %s: %s %s -> %s, %lld bytes sent, %lld received, %.3f s", r->host,
              x->method, url_path(r, x->url), st, (long long)up, (long long)down,
              (double)us / 1e6);
}

static int deadline_error(sub_reg *r, xfer *x, sub_err *e) {
    return sub_err_set(e, -ETIMEDOUT,
                       "%s: stopped: the overall time limit of %ld s passed before the work with "
                       "the registry at %s was done (raise it with --timeout)",
                       x->what, r->deadline_s, r->host);
}

int reg_perform(sub_reg *r, xfer *x, sub_err *e) {
    CURL *c = r->curl;
    int rr;
    x->reg = r;
    if (r->deadline_ms && mono_ms() >= r->deadline_ms) return deadline_error(r, x, e);
    bool fresh = false; /* retrying on a new connection after a reused one died */
    int hops = 0;
    free(x->hop_url);
    x->hop_url = NULL;
    for (int attempt = 0;; attempt++) {
        if ((rr = xfer_rewind(x, e)) < 0) return rr;
        curl_easy_reset(c);
        if (fresh) curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        x->errbuf[0] = 0;
        const char *url = x->hop_url ? x->hop_url : x->url;
        /* credentials only to the registry itself, never to a redirect target elsewhere */
        bool own = !x->hop_url || same_origin(r, x->hop_url);
        struct curl_slist *h = NULL;
        curl_easy_setopt(c, CURLOPT_URL, url);
        if ((rr = reg_net_opts(r, c, url, e)) < 0) return rr;
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* redirects are followed below */
        /* A blob body may take long while it flows: only the stall limit
         * and the deadline bound it; every other request has a total timeout. */
        x->timeout_used = x->report ? 0 : r->timeout_s;
        curl_easy_setopt(c, CURLOPT_TIMEOUT, x->timeout_used);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)SUB_REG_LOW_SPEED);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, r->stall_s);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "substrate/" SUBSTRATE_VERSION);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, reg_on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        if (own && r->auth == AUTH_BASIC) {
            curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(c, CURLOPT_USERNAME, r->username);
            curl_easy_setopt(c, CURLOPT_PASSWORD, r->password);
        } else if (own && r->auth == AUTH_BEARER && r->token) {
            _cleanup_free_ char *a = xasprintf("Authorization: Bearer %s", r->token);
            h = curl_slist_append(h, a);
        }
        h = curl_slist_append(h, "Expect:");
        if (x->accept) {
            _cleanup_free_ char *a = xasprintf("Accept: %s", x->accept);
            h = curl_slist_append(h, a);
        }
        if (!strcmp(x->method, "HEAD")) {
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        } else if (!strcmp(x->method, "POST")) {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
            h = curl_slist_append(h, "Content-Type:");
        } else if (!strcmp(x->method, "PUT")) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, x);
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
            curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                             (curl_off_t)(x->body ? x->body_len : x->in_len));
            _cleanup_free_ char *ct = xasprintf(
                "Content-Type: %s", x->content_type ? x->content_type : "application/octet-stream");
            h = curl_slist_append(h, ct);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        CURLcode cc = curl_easy_perform(c);
        log_request(r, x, cc);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(h);
        long new_conns = -1, header_bytes = -1;
        curl_off_t sent = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &new_conns);
        curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &header_bytes);
        curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &sent);
        /* x lives on the caller's stack: leave no pointers to it in the handle */
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
        curl_easy_setopt(c, CURLOPT_READDATA, NULL);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, NULL);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, NULL);
        /* A kept-alive connection the registry had closed meanwhile (it restarted,
         * or timed the idle connection out): no body byte went out and no answer
         * came back, so the request is sent once more on a new connection. A
         * connection lost after body bytes were sent is not retried: the registry
         * saw part of the request. */
        if (!fresh && new_conns == 0 && sent == 0 && header_bytes == 0 && x->received == 0 &&
            (cc == CURLE_SEND_ERROR || cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING)) {
            fresh = true;
            attempt--;
            continue;
        }
        if (cc != CURLE_OK) return curl_error(r, x, cc, e);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        x->status = code;
        if (x->follow_redirects && !strcmp(x->method, "GET") &&
            (code == 301 || code == 302 || code == 303 || code == 307 || code == 308)) {
            char *to = NULL;
            curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &to);
            if (!to || !*to) return reg_status_error(r, x, e);
            if (++hops > SUB_REG_MAX_REDIRECTS) /* (no query: it may hold a signed grant) */
                return sub_err_set(e, -ELOOP,
                                   "%s: the registry at %s redirected more than %d times; "
                                   "last to %.*s",
                                   x->what, r->host, SUB_REG_MAX_REDIRECTS,
                                   (int)(strcspn(to, "?#") < 200 ? strcspn(to, "?#") : 200), to);
            char *next = xstrdup(to); /* `to` belongs to the handle, reset next round */
            free(x->hop_url);
            x->hop_url = next;
            fresh = false;
            attempt--;
            continue;
        }
        if (x->status != 401 || !own) return 0;
        bool retry;
        if ((rr = reg_handle_challenge(r, x, &retry, e)) < 0) return rr;
        if (!retry || attempt >= 1) return reg_status_error(r, x, e);
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* SUBSTRATE_REGISTRY_TLS: "1" https even on loopback, "0" or unset the rule. */
static int env_tls(bool *on, sub_err *e) {
    const char *v = getenv("SUBSTRATE_REGISTRY_TLS");
    *on = false;
    if (!v || !*v || !strcmp(v, "0")) return 0;
    if (!strcmp(v, "1")) {
        *on = true;
        return 0;
    }
    return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                        "SUBSTRATE_REGISTRY_TLS=%.40s: write 1 (https, also on loopback) or 0 "
                        "(the default: https except for loopback and insecure-listed registries)",
                        v);
}

int sub_reg_new(const sub_reg_opts *o, sub_reg **out, sub_err *e) {
    if (!o || !o->host) return sub_err_set(e, -EINVAL, "no registry address given");
    int rr = sub_reg_addr_split(o->host, NULL, NULL, e);
    if (rr < 0) return rr;
    bool tls = o->tls;
    if (!tls && (rr = env_tls(&tls, e)) < 0) return rr;
    bool lo = sub_reg_addr_is_loopback(o->host);
    if (!lo && !reg_insecure_listed(o->host)) tls = true;
    const char *ca = o->ca_file ? o->ca_file : getenv("SUBSTRATE_CA_FILE");
    if (ca && !*ca) ca = NULL;
    if (ca) {
        struct stat st;
        if (stat(ca, &st) < 0 || !S_ISREG(st.st_mode) || access(ca, R_OK) < 0)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "CA file %s (SUBSTRATE_CA_FILE) is not a readable file: give the "
                                "PEM certificate(s) of the CA that signed the registry's "
                                "certificate",
                                ca);
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return sub_err_set(e, -EIO, "cannot initialise libcurl: %s",
                           curl_easy_strerror(curl_init_rc));
    _cleanup_free_ char *user = NULL, *pass = NULL, *source = NULL;
    if (o->username && *o->username) {
        if (!o->password)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "a registry user is given (%s) but no password", o->username);
        user = xstrdup(o->username);
        pass = xstrdup(o->password);
        source = xstrdup("the given credentials");
    } else if ((rr = reg_creds_env(&user, &pass, &source, e)) < 0) {
        return rr; /* the auth files are read at the first 401 (auth.c) */
    }
    long stall = o->stall_s;
    const char *se = getenv("SUBSTRATE_STALL_SECONDS");
    if (stall <= 0 && se && *se) {
        char *end;
        errno = 0;
        long v = strtol(se, &end, 10);
        if (errno || *end || v < 1 || v > 86400)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "SUBSTRATE_STALL_SECONDS=%s: give a number of seconds (1-86400)",
                                se);
        stall = v;
    }
    CURL *c = curl_easy_init();
    if (!c) return sub_err_set(e, -ENOMEM, "cannot create a curl handle");
    sub_reg *r = xcalloc(1, sizeof *r);
    r->curl = c;
    r->host = xstrdup(o->host);
    r->tls = tls;
    r->base = xasprintf("%s://%s", tls ? "https" : "http", o->host);
    r->ca_file = ca ? xstrdup(ca) : NULL;
    r->username = TAKE_PTR(user);
    r->password = TAKE_PTR(pass);
    r->cred_source = TAKE_PTR(source);
    r->timeout_s = o->timeout_s > 0 ? o->timeout_s : 300;
    r->max_blob = o->max_blob ? o->max_blob : SUB_REG_MAX_BLOB;
    r->stall_s = stall > 0 ? stall : SUB_REG_STALL_S;
    *out = r;
    return 0;
}

const char *sub_reg_host(const sub_reg *r) { return r->host; }
const char *sub_reg_scheme(const sub_reg *r) { return r->tls ? "https" : "http"; }

void sub_reg_set_progress(sub_reg *r, sub_reg_bytes_fn fn, void *ud) {
    r->progress = fn;
    r->progress_ud = ud;
}

void sub_reg_set_deadline(sub_reg *r, long seconds) {
    r->deadline_s = seconds > 0 ? seconds : 0;
    r->deadline_ms = seconds > 0 ? mono_ms() + (int64_t)seconds * 1000 : 0;
}

void sub_reg_free(sub_reg *r) {
    if (!r) return;
    if (r->curl) curl_easy_cleanup(r->curl);
    reg_tokens_free(r);
    free(r->host);
    free(r->base);
    free(r->ca_file);
    free(r->username);
    free(r->cred_source);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
}

/* ---- argument checks -------------------------------------------------------------------- */

int reg_check_repo(const char *repo, sub_err *e) {
    return sub_repo_validate(repo ? repo : "", e);
}

int reg_check_ref(const char *ref, bool *is_digest, sub_err *e) {
    if (!ref || !*ref) return sub_err_set(e, -EINVAL, "empty tag or digest");
    if (strchr(ref, ':')) {
        *is_digest = true;
        return sub_digest_validate(ref, e);
    }
    *is_digest = false;
    return sub_tag_validate(ref, e);
}

int reg_check_sha256(const char *digest, sub_err *e) {
    int rr = sub_digest_validate(digest, e);
    if (rr < 0) return rr;
    if (!str_has_prefix(digest, "sha256:"))
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOTSUP,
                            "digest %s: only sha256 content is supported; name the image by its "
                            "sha256 digest (or by tag)",
                            digest);
    return 0;
}

char *reg_url(sub_reg *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *path = xvasprintf(fmt, ap);
    va_end(ap);
    return xasprintf("%s%s", r->base, path);
}

/* Validated Docker-Content-Digest header, or NULL. */
int reg_header_digest(sub_reg *r, xfer *x, const char **out, sub_err *e) {
    *out = NULL;
    if (!x->docker_digest || !*x->docker_digest) return 0;
    sub_err de = {0};
    if (sub_digest_validate(x->docker_digest, &de) < 0)
        return sub_err_set(e, -EPROTO,
                           "%s: the registry at %s sent an invalid Docker-Content-Digest: %s",
                           x->what, r->host, de.msg);
    *out = x->docker_digest;
    return 0;
}

