/* OCI distribution-API client over libcurl (see registry.h).
 *
 * One curl easy handle per sub_reg (connections are reused). Every request
 * goes through perform(): it sets the options afresh, streams the response
 * body into memory or a file while hashing it, enforces size caps as bytes
 * arrive (and from Content-Length before they do), and handles a 401
 * challenge. Network safety: only loopback hosts, no proxies, no redirects,
 * upload locations must stay on the same host:port. */
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include "substrate/registry.h"
#include "substrate/strbuf.h"
#include "version.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERR_BODY_MAX (64u << 10) /* how much of an error response we keep */
#define MAX_TAG_PAGES 1000

typedef enum {
    AUTH_ANON = 0, /* nothing sent yet */
    AUTH_BASIC,    /* credentials sent with every request */
    /* AUTH_BEARER: a token from the challenge's realm, sent as
     * "Authorization: Bearer <token>"; fetched by a future
     * fetch_bearer_token() from handle_challenge(). */
} auth_mode;

struct sub_reg {
    CURL *curl;
    char *host; /* "host:port" as given */
    char *base; /* "http://host:port" */
    char *username;
    char *password;
    long timeout_s;
    uint64_t max_blob;
    auth_mode auth;
};

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

/* ---- one transfer ----------------------------------------------------------------------- */

typedef enum {
    ABORT_NONE = 0,
    ABORT_TOO_BIG, /* over the cap */
    ABORT_SIZE,    /* Content-Length differs from the expected size */
    ABORT_LONGER,  /* more bytes than expected */
    ABORT_WRITE,   /* local write failed (out_errno) */
} abort_reason;

typedef struct xfer {
    /* request */
    const char *method; /* GET HEAD PUT POST */
    char *url;          /* owned */
    char *what;         /* owned: "manifest repo:tag", "blob sha256:..." for messages */
    const char *accept;
    const char *content_type;
    const void *body; /* in-memory request body */
    size_t body_len, body_off;
    int in_fd; /* or a file body */
    uint64_t in_len, in_off;
    int in_errno;
    bool hash_in;
    sub_sha256 in_hash;
    /* response body sink (2xx only; other bodies go to err_body) */
    int out_fd;       /* >= 0: write here */
    sub_buf mem;      /* out_fd < 0: keep in memory */
    uint64_t out_max; /* cap, 0 = no body expected */
    uint64_t out_expect;
    bool hash_out;
    sub_sha256 out_hash;
    uint64_t received;
    int out_errno;
    abort_reason abort;
    sub_buf err_body;
    /* response */
    long status;
    int64_t clen;
    char *ctype, *location, *docker_digest, *www_auth, *link;
    char errbuf[CURL_ERROR_SIZE];
} xfer;

static void xfer_init(xfer *x, const char *method) {
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

static void xfer_done(xfer *x) {
    resp_reset(x);
    free(x->url);
    free(x->what);
    sub_buf_free(&x->mem);
    sub_buf_free(&x->err_body);
    sub_sha256_free(&x->in_hash);
    sub_sha256_free(&x->out_hash);
}

static bool ok2xx(long s) { return s >= 200 && s < 300; }

static char *trim_dup(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return xstrndup(s, n);
}

static size_t on_header(char *buf, size_t sz, size_t nm, void *ud) {
    xfer *x = ud;
    size_t n = sz * nm;
    if (n >= 5 && !memcmp(buf, "HTTP/", 5)) {
        resp_reset(x);
        const char *sp = memchr(buf, ' ', n);
        if (sp) x->status = strtol(sp + 1, NULL, 10);
        return n;
    }
    if (n <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        /* end of this response's headers: refuse an announced oversize body now */
        if (ok2xx(x->status) && x->out_max && x->clen >= 0 && strcmp(x->method, "HEAD") != 0) {
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
    if (!ok2xx(x->status)) {
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
     * connection); perform() decides about retries. */
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

/* Restart a transfer's local state (for the retry after a 401). */
static int xfer_rewind(xfer *x, sub_err *e) {
    resp_reset(x);
    x->received = 0;
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
static void set_http_detail(xfer *x, sub_err *e) {
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
static int status_error(sub_reg *r, xfer *x, sub_err *e) {
    int code;
    sub_err_kind kind = SUB_KIND_DEFAULT;
    if (x->status == 401 || x->status == 403) code = -EACCES;
    else if (x->status == 404) code = -ENOENT;
    else if (x->status == 400 || x->status == 405 || x->status == 413) code = -EPROTO;
    else if (x->status == 429) code = -EBUSY;
    else code = -EIO;
    const char *hint = "";
    if (x->status >= 300 && x->status < 400)
        hint = " (redirects are not followed: Substrate only talks to the local registry)";
    else if (x->status >= 500) hint = " (see the registry's log: substrate registry status)";
    sub_err_setk(e, kind, code, "%s: the registry at %s answered HTTP %ld to %s %s%s", x->what,
                 r->host, x->status, x->method, x->url + strlen(r->base), hint);
    set_http_detail(x, e);
    return code;
}

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
    case ABORT_NONE: break;
    }
    if (x->in_errno)
        return sub_err_set(e, -x->in_errno, "cannot read the data to upload for %s: %s", x->what,
                           strerror(x->in_errno));
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
    case CURLE_OPERATION_TIMEDOUT:
        rr = sub_err_set(e, -ETIMEDOUT, "%s: the registry at %s did not finish %s within %ld s",
                         x->what, r->host, x->method, r->timeout_s);
        break;
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

/* ---- authentication ----------------------------------------------------------------------- */

typedef struct challenge {
    char scheme[16];
    char realm[512];
    char service[512];
    char scope[512];
} challenge;

static void parse_challenge(const char *h, challenge *c) {
    memset(c, 0, sizeof *c);
    if (!h) return;
    size_t n = strcspn(h, " \t");
    snprintf(c->scheme, sizeof c->scheme, "%.*s", (int)(n < 15 ? n : 15), h);
    const char *p = h + n;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ',') p++;
        size_t kl = (size_t)(p - k);
        if (*p != '=') continue;
        p++;
        char val[512];
        size_t vl = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                if (vl < sizeof val - 1) val[vl++] = *p;
                p++;
            }
            if (*p == '"') p++;
        } else {
            while (*p && *p != ',' && *p != ' ') {
                if (vl < sizeof val - 1) val[vl++] = *p;
                p++;
            }
        }
        val[vl] = 0;
        if (kl == 5 && !strncasecmp(k, "realm", 5)) snprintf(c->realm, sizeof c->realm, "%s", val);
        else if (kl == 7 && !strncasecmp(k, "service", 7))
            snprintf(c->service, sizeof c->service, "%s", val);
        else if (kl == 5 && !strncasecmp(k, "scope", 5))
            snprintf(c->scope, sizeof c->scope, "%s", val);
    }
}

/* A 401 arrived. *retry = true when the request should be sent again with
 * the authentication now configured on r. */
static int handle_challenge(sub_reg *r, xfer *x, bool *retry, sub_err *e) {
    *retry = false;
    challenge c;
    parse_challenge(x->www_auth, &c);
    int rr;
    if (!strcasecmp(c.scheme, "Basic")) {
        if (!r->username) {
            rr =
                sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                             "the registry at %s requires authentication (HTTP 401, realm \"%s\"): "
                             "set SUBSTRATE_REGISTRY_USER and SUBSTRATE_REGISTRY_PASSWORD",
                             r->host, c.realm);
        } else if (r->auth != AUTH_BASIC) {
            r->auth = AUTH_BASIC;
            *retry = true;
            return 0;
        } else {
            rr = sub_err_setk(
                e, SUB_KIND_ENV, -EACCES,
                "the registry at %s rejected the credentials of user \"%s\" (HTTP 401): "
                "check SUBSTRATE_REGISTRY_USER and SUBSTRATE_REGISTRY_PASSWORD",
                r->host, r->username);
        }
    } else if (!strcasecmp(c.scheme, "Bearer")) {
        /* The token flow slots in here: GET realm?service=&scope= (with basic
         * credentials if configured), keep the token, set AUTH_BEARER, retry. */
        rr = sub_err_setk(e, SUB_KIND_ENV, -ENOTSUP,
                          "the registry at %s wants a bearer token from %s (service \"%s\"): token "
                          "auth is not supported yet; use anonymous access or HTTP basic auth "
                          "(htpasswd)",
                          r->host, c.realm[0] ? c.realm : "(no realm)", c.service);
    } else {
        rr = sub_err_setk(e, SUB_KIND_ENV, -EACCES,
                          "the registry at %s refused access (HTTP 401) without a usable "
                          "authentication challenge (WWW-Authenticate: %s)",
                          r->host, x->www_auth ? x->www_auth : "none");
    }
    set_http_detail(x, e);
    return rr;
}

/* ---- perform ---------------------------------------------------------------------------- */

static int perform(sub_reg *r, xfer *x, sub_err *e) {
    CURL *c = r->curl;
    int rr;
    bool fresh = false; /* retrying on a new connection after a reused one died */
    for (int attempt = 0;; attempt++) {
        if ((rr = xfer_rewind(x, e)) < 0) return rr;
        curl_easy_reset(c);
        if (fresh) curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        x->errbuf[0] = 0;
        struct curl_slist *h = NULL;
        curl_easy_setopt(c, CURLOPT_URL, x->url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never a proxy from the environment */
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(c, CURLOPT_TIMEOUT, r->timeout_s);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "substrate/" SUBSTRATE_VERSION);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        if (r->auth == AUTH_BASIC) {
            curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(c, CURLOPT_USERNAME, r->username);
            curl_easy_setopt(c, CURLOPT_PASSWORD, r->password);
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
        if (x->status != 401) return 0;
        bool retry;
        if ((rr = handle_challenge(r, x, &retry, e)) < 0) return rr;
        if (!retry || attempt >= 1) return status_error(r, x, e);
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

int sub_reg_new(const sub_reg_opts *o, sub_reg **out, sub_err *e) {
    if (!o || !o->host) return sub_err_set(e, -EINVAL, "no registry address given");
    int rr = sub_reg_addr_split(o->host, NULL, NULL, e);
    if (rr < 0) return rr;
    if (!sub_reg_addr_is_loopback(o->host))
        return sub_err_setk(
            e, SUB_KIND_INPUT, -EPERM,
            "registry %s is not on this machine: Substrate only talks to a loopback "
            "registry (127.0.0.0/8, localhost or [::1]); set SUBSTRATE_REGISTRY, e.g. "
            "127.0.0.1:5000",
            o->host);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return sub_err_set(e, -EIO, "cannot initialise libcurl: %s",
                           curl_easy_strerror(curl_init_rc));
    const char *user = o->username ? o->username : getenv("SUBSTRATE_REGISTRY_USER");
    const char *pass = o->password ? o->password : getenv("SUBSTRATE_REGISTRY_PASSWORD");
    if (user && !*user) user = NULL;
    if (user && !pass)
        return sub_err_setk(
            e, SUB_KIND_INPUT, -EINVAL,
            "a registry user is set (SUBSTRATE_REGISTRY_USER=%s) but no password: set "
            "SUBSTRATE_REGISTRY_PASSWORD too",
            user);
    CURL *c = curl_easy_init();
    if (!c) return sub_err_set(e, -ENOMEM, "cannot create a curl handle");
    sub_reg *r = xcalloc(1, sizeof *r);
    r->curl = c;
    r->host = xstrdup(o->host);
    r->base = xasprintf("http://%s", o->host);
    r->username = user ? xstrdup(user) : NULL;
    r->password = user ? xstrdup(pass) : NULL;
    r->timeout_s = o->timeout_s > 0 ? o->timeout_s : 300;
    r->max_blob = o->max_blob ? o->max_blob : SUB_REG_MAX_BLOB;
    *out = r;
    return 0;
}

const char *sub_reg_host(const sub_reg *r) { return r->host; }

void sub_reg_free(sub_reg *r) {
    if (!r) return;
    if (r->curl) curl_easy_cleanup(r->curl);
    free(r->host);
    free(r->base);
    free(r->username);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r);
}

/* ---- argument checks -------------------------------------------------------------------- */

static int check_repo(const char *repo, sub_err *e) {
    return sub_repo_validate(repo ? repo : "", e);
}

static int check_ref(const char *ref, bool *is_digest, sub_err *e) {
    if (!ref || !*ref) return sub_err_set(e, -EINVAL, "empty tag or digest");
    if (strchr(ref, ':')) {
        *is_digest = true;
        return sub_digest_validate(ref, e);
    }
    *is_digest = false;
    return sub_tag_validate(ref, e);
}

static int check_sha256(const char *digest, sub_err *e) {
    int rr = sub_digest_validate(digest, e);
    if (rr < 0) return rr;
    if (!str_has_prefix(digest, "sha256:"))
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOTSUP,
                            "digest %s: only sha256 content is supported; name the image by its "
                            "sha256 digest (or by tag)",
                            digest);
    return 0;
}

static char *url(sub_reg *r, const char *fmt, ...) _printf_(2, 3);
static char *url(sub_reg *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *path = xvasprintf(fmt, ap);
    va_end(ap);
    return xasprintf("%s%s", r->base, path);
}

/* Validated Docker-Content-Digest header, or NULL. */
static int header_digest(sub_reg *r, xfer *x, const char **out, sub_err *e) {
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

/* ---- API -------------------------------------------------------------------------------- */

int sub_reg_ping(sub_reg *r, sub_err *e) {
    xfer x;
    xfer_init(&x, "GET");
    x.url = url(r, "/v2/");
    x.what = xasprintf("registry %s", r->host);
    x.out_max = 65536;
    int rr = perform(r, &x, e);
    if (rr == 0 && x.status != 200) {
        rr = status_error(r, &x, e);
        sub_err_prefix(e, "%s does not answer as a distribution (OCI) registry", r->host);
    }
    xfer_done(&x);
    return rr;
}

int sub_reg_manifest_head(sub_reg *r, const char *repo, const char *ref,
                          char digest_out[SUB_DIGEST_MAX], char **media_type, uint64_t *size,
                          sub_err *e) {
    bool isd;
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_ref(ref, &isd, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "HEAD");
    x.url = url(r, "/v2/%s/manifests/%s", repo, ref);
    x.what = xasprintf("manifest %s%s%s", repo, isd ? "@" : ":", ref);
    x.accept = SUB_MT_ACCEPT_MANIFESTS;
    rr = perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status == 404) {
        rr = 0;
        goto out;
    }
    if (x.status != 200) {
        rr = status_error(r, &x, e);
        goto out;
    }
    const char *hd;
    if ((rr = header_digest(r, &x, &hd, e)) < 0) goto out;
    if (isd && hd && strcmp(hd, ref) != 0) {
        rr = sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                          "digest mismatch for %s: expected %s, the registry at %s says %s", x.what,
                          ref, r->host, hd);
        goto out;
    }
    if (digest_out) snprintf(digest_out, SUB_DIGEST_MAX, "%s", hd ? hd : (isd ? ref : ""));
    if (media_type) *media_type = x.ctype ? sub_mt_normalize(x.ctype) : NULL;
    if (size) *size = x.clen >= 0 ? (uint64_t)x.clen : 0;
    rr = 1;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_manifest_get(sub_reg *r, const char *repo, const char *ref, char **body, size_t *len,
                         char **media_type, char digest_out[SUB_DIGEST_MAX], sub_err *e) {
    bool isd;
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_ref(ref, &isd, e)) < 0) return rr;
    if (isd && (rr = check_sha256(ref, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "GET");
    x.url = url(r, "/v2/%s/manifests/%s", repo, ref);
    x.what = xasprintf("manifest %s%s%s", repo, isd ? "@" : ":", ref);
    x.accept = SUB_MT_ACCEPT_MANIFESTS;
    x.out_max = SUB_REG_MAX_MANIFEST;
    x.hash_out = true;
    rr = perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status == 404) {
        rr = sub_err_setk(e, SUB_KIND_INPUT, -ENOENT, "%s: no such manifest in the registry at %s",
                          x.what, r->host);
        set_http_detail(&x, e);
        goto out;
    }
    if (x.status != 200) {
        rr = status_error(r, &x, e);
        goto out;
    }
    char got[SUB_DIGEST_MAX];
    sub_sha256_final(&x.out_hash, got);
    const char *hd;
    if ((rr = header_digest(r, &x, &hd, e)) < 0) goto out;
    const char *want = isd ? ref : hd;
    if (want && strcmp(want, got) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch for %s from %s: expected %s, but the content hashes to %s; "
            "refused",
            x.what, r->host, want, got);
        goto out;
    }
    if (isd && hd && strcmp(hd, got) != 0) {
        rr = sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                          "digest mismatch for %s from %s: the registry says %s, but the content "
                          "hashes to %s; refused",
                          x.what, r->host, hd, got);
        goto out;
    }
    if (digest_out) memcpy(digest_out, got, strlen(got) + 1);
    if (media_type) *media_type = x.ctype ? sub_mt_normalize(x.ctype) : NULL;
    *body = sub_buf_detach(&x.mem, len);
    rr = 0;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_manifest_put(sub_reg *r, const char *repo, const char *ref, const char *media_type,
                         const void *body, size_t len, char digest_out[SUB_DIGEST_MAX],
                         sub_err *e) {
    bool isd;
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_ref(ref, &isd, e)) < 0) return rr;
    if (!sub_mt_is_manifest(media_type))
        return sub_err_set(e, -EINVAL, "cannot push a manifest of media type \"%s\"",
                           media_type ? media_type : "(none)");
    if (len > SUB_REG_MAX_MANIFEST)
        return sub_err_set(e, -E2BIG, "manifest is too large to push (%zu bytes; the limit is %u)",
                           len, SUB_REG_MAX_MANIFEST);
    char want[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(body, len, want, e)) < 0) return rr;
    if (isd && strcmp(ref, want) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "cannot push a manifest as %s: its content hashes to %s", ref, want);
    xfer x;
    xfer_init(&x, "PUT");
    x.url = url(r, "/v2/%s/manifests/%s", repo, ref);
    x.what = xasprintf("manifest %s%s%s", repo, isd ? "@" : ":", ref);
    x.content_type = media_type;
    x.body = body;
    x.body_len = len;
    x.out_max = 65536;
    rr = perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status != 201 && x.status != 200) {
        rr = status_error(r, &x, e);
        sub_err_prefix(e, "pushing the manifest failed");
        goto out;
    }
    const char *hd;
    if ((rr = header_digest(r, &x, &hd, e)) < 0) goto out;
    if (hd && strcmp(hd, want) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch after pushing %s: expected %s, the registry at %s stored %s", x.what,
            want, r->host, hd);
        goto out;
    }
    if (digest_out) memcpy(digest_out, want, strlen(want) + 1);
    rr = 0;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_blob_exists(sub_reg *r, const char *repo, const char *digest, uint64_t *size,
                        sub_err *e) {
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = sub_digest_validate(digest, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "HEAD");
    x.url = url(r, "/v2/%s/blobs/%s", repo, digest);
    x.what = xasprintf("blob %s", digest);
    rr = perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status == 404) rr = 0;
    else if (x.status == 200) {
        if (size) *size = x.clen >= 0 ? (uint64_t)x.clen : 0;
        rr = 1;
    } else rr = status_error(r, &x, e);
out:
    xfer_done(&x);
    return rr;
}

static int blob_get(sub_reg *r, xfer *x, const char *repo, const char *digest, sub_err *e) {
    int rr = perform(r, x, e);
    if (rr < 0) return rr;
    if (x->status == 404) {
        rr = sub_err_setk(e, SUB_KIND_CHECK, -ENOENT, "%s is not in repository %s at %s", x->what,
                          repo, r->host);
        set_http_detail(x, e);
        return rr;
    }
    if (x->status != 200) return status_error(r, x, e);
    if (x->out_expect && x->received != x->out_expect)
        return sub_err_set(e, -EIO,
                           "%s: the registry at %s sent %llu bytes, but its descriptor says %llu "
                           "(truncated transfer); nothing was kept",
                           x->what, r->host, (unsigned long long)x->received,
                           (unsigned long long)x->out_expect);
    char got[SUB_DIGEST_MAX];
    sub_sha256_final(&x->out_hash, got);
    if (strcmp(got, digest) != 0)
        return sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch for %s from %s/%s: expected %s, but the content hashes "
            "to %s; refused, nothing was kept",
            x->what, r->host, repo, digest, got);
    return 0;
}

int sub_reg_blob_get_file(sub_reg *r, const char *repo, const char *digest, uint64_t expected_size,
                          const char *path, sub_err *e) {
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_sha256(digest, e)) < 0) return rr;
    if (expected_size > r->max_blob)
        return sub_err_set(
            e, -EFBIG, "blob %s is %llu bytes, larger than the limit of %llu bytes; refused",
            digest, (unsigned long long)expected_size, (unsigned long long)r->max_blob);
    _cleanup_free_ char *tmp = xasprintf("%s.part-XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return sub_err_set(e, -err, "cannot create a temporary file beside %s: %s%s", path,
                           strerror(err), sub_io_hint(err));
    }
    xfer x;
    xfer_init(&x, "GET");
    x.url = url(r, "/v2/%s/blobs/%s", repo, digest);
    x.what = xasprintf("blob %s", digest);
    x.out_fd = fd;
    x.out_max = expected_size ? expected_size : r->max_blob;
    x.out_expect = expected_size;
    x.hash_out = true;
    rr = blob_get(r, &x, repo, digest, e);
    if (rr == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0)) {
        int err = errno;
        rr = sub_err_set(e, -err, "cannot store %s at %s: %s%s", x.what, path, strerror(err),
                         sub_io_hint(err));
    }
    if (close(fd) < 0 && rr == 0) {
        int err = errno;
        rr = sub_err_set(e, -err, "cannot store %s at %s: %s%s", x.what, path, strerror(err),
                         sub_io_hint(err));
    }
    if (rr == 0 && rename(tmp, path) < 0) {
        int err = errno;
        rr = sub_err_set(e, -err, "cannot store %s at %s: %s%s", x.what, path, strerror(err),
                         sub_io_hint(err));
    }
    if (rr < 0) unlink(tmp);
    else {
        _cleanup_free_ char *d = xstrdup(path);
        sub_fsync_dir(dirname(d));
    }
    xfer_done(&x);
    return rr;
}

int sub_reg_blob_get_buf(sub_reg *r, const char *repo, const char *digest, size_t max, char **out,
                         size_t *len, sub_err *e) {
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_sha256(digest, e)) < 0) return rr;
    xfer x;
    xfer_init(&x, "GET");
    x.url = url(r, "/v2/%s/blobs/%s", repo, digest);
    x.what = xasprintf("blob %s", digest);
    x.out_max = max ? max : 1;
    x.hash_out = true;
    rr = blob_get(r, &x, repo, digest, e);
    if (rr == 0) *out = sub_buf_detach(&x.mem, len);
    xfer_done(&x);
    return rr;
}

/* The upload URL from a Location header, which must stay on our registry. */
static int resolve_location(sub_reg *r, const char *repo, const char *loc, char **out, sub_err *e) {
    if (!loc || !*loc)
        return sub_err_set(e, -EPROTO, "the registry at %s started an upload without a Location",
                           r->host);
    for (const char *p = loc; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return sub_err_set(e, -EPROTO,
                               "the registry at %s sent an upload Location with invalid "
                               "characters",
                               r->host);
    const char *rest = NULL;
    if (str_has_prefix(loc, "http://")) rest = loc + 7;
    else if (str_has_prefix(loc, "//")) rest = loc + 2;
    if (rest) {
        size_t al = strcspn(rest, "/?#");
        if (al != strlen(r->host) || strncasecmp(rest, r->host, al) != 0)
            return sub_err_set(e, -EPERM,
                               "the registry at %s asked us to upload to another address (%.*s); "
                               "refused: Substrate only sends data to the registry it was given",
                               r->host, (int)al, rest);
        *out = xasprintf("%s%s", r->base, rest + al);
        return 0;
    }
    if (strstr(loc, "://"))
        return sub_err_set(e, -EPERM,
                           "the registry at %s gave an upload Location with another scheme "
                           "(%.60s); refused",
                           r->host, loc);
    if (loc[0] == '/') *out = xasprintf("%s%s", r->base, loc);
    else *out = xasprintf("%s/v2/%s/blobs/uploads/%s", r->base, repo, loc);
    return 0;
}

static int blob_put(sub_reg *r, const char *repo, const char *digest, const void *buf, size_t len,
                    int fd, uint64_t flen, const char *src, sub_err *e) {
    _cleanup_free_ char *loc = NULL;
    int rr = sub_reg_blob_exists(r, repo, digest, NULL, e);
    if (rr < 0) return rr;
    if (rr == 1) return 0;
    xfer x;
    xfer_init(&x, "POST");
    x.url = url(r, "/v2/%s/blobs/uploads/", repo);
    x.what = xasprintf("upload of blob %s", digest);
    x.out_max = 65536;
    rr = perform(r, &x, e);
    if (rr < 0) goto out;
    if (x.status != 202) {
        rr = status_error(r, &x, e);
        sub_err_prefix(e, "cannot start the upload");
        goto out;
    }
    if ((rr = resolve_location(r, repo, x.location, &loc, e)) < 0) goto out;
    char *put_url = xasprintf("%s%cdigest=sha256%%3A%s", loc, strchr(loc, '?') ? '&' : '?',
                              sub_digest_hex(digest));
    xfer_done(&x);
    xfer_init(&x, "PUT");
    x.url = put_url;
    x.what = xasprintf("upload of blob %s", digest);
    x.out_max = 65536;
    if (buf) {
        x.body = buf;
        x.body_len = len;
    } else {
        x.in_fd = fd;
        x.in_len = flen;
        x.hash_in = true;
    }
    rr = perform(r, &x, e);
    char sent[SUB_DIGEST_MAX] = "";
    if (x.hash_in && rr == 0) sub_sha256_final(&x.in_hash, sent);
    if (rr < 0) goto out;
    if (x.hash_in && strcmp(sent, digest) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch uploading %s: expected %s, but the data sent hashes to %s "
            "(did the file change?)",
            src, digest, sent);
        goto out;
    }
    if (x.status != 201) {
        rr = status_error(r, &x, e);
        sub_err_prefix(e, "the upload was refused");
        goto out;
    }
    const char *hd;
    if ((rr = header_digest(r, &x, &hd, e)) < 0) goto out;
    if (hd && strcmp(hd, digest) != 0) {
        rr = sub_err_setk(
            e, SUB_KIND_CHECK, -EILSEQ,
            "digest mismatch after uploading: expected %s, the registry at %s stored %s", digest,
            r->host, hd);
        goto out;
    }
    rr = 0;
out:
    xfer_done(&x);
    return rr;
}

int sub_reg_blob_put_file(sub_reg *r, const char *repo, const char *digest, const char *path,
                          sub_err *e) {
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_sha256(digest, e)) < 0) return rr;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", path);
    struct stat st;
    if (fstat(fd, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", path);
    if (!S_ISREG(st.st_mode)) return sub_err_set(e, -EINVAL, "%s is not a regular file", path);
    return blob_put(r, repo, digest, NULL, 0, fd, (uint64_t)st.st_size, path, e);
}

int sub_reg_blob_put_buf(sub_reg *r, const char *repo, const char *digest, const void *data,
                         size_t len, sub_err *e) {
    int rr;
    if ((rr = check_repo(repo, e)) < 0 || (rr = check_sha256(digest, e)) < 0) return rr;
    char got[SUB_DIGEST_MAX];
    if ((rr = sub_sha256_buf(data, len, got, e)) < 0) return rr;
    if (strcmp(got, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "digest mismatch: the data to upload as %s hashes to %s", digest, got);
    return blob_put(r, repo, digest, data ? data : "", len, -1, 0, "(memory)", e);
}

/* Link: </v2/x/tags/list?last=a&n=100>; rel="next" */
static char *next_link(const char *link) {
    if (!link || !strstr(link, "rel=\"next\"")) return NULL;
    const char *lt = strchr(link, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) return NULL;
    return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

int sub_reg_tags(sub_reg *r, const char *repo, char ***tags, sub_err *e) {
    int rr;
    if ((rr = check_repo(repo, e)) < 0) return rr;
    _cleanup_strv_ char **v = xcalloc(1, sizeof(char *));
    char *u = url(r, "/v2/%s/tags/list", repo);
    for (int page = 0; u; page++) {
        if (page >= MAX_TAG_PAGES) {
            free(u);
            return sub_err_set(e, -E2BIG, "tag list of %s is longer than %d pages", repo,
                               MAX_TAG_PAGES);
        }
        xfer x;
        xfer_init(&x, "GET");
        x.url = u;
        u = NULL;
        x.what = xasprintf("tag list of %s", repo);
        x.out_max = SUB_REG_MAX_MANIFEST;
        rr = perform(r, &x, e);
        if (rr == 0 && x.status == 404) {
            rr = sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                              "repository %s does not exist in the registry at %s", repo, r->host);
            set_http_detail(&x, e);
        } else if (rr == 0 && x.status != 200) rr = status_error(r, &x, e);
        json_t *j = NULL;
        if (rr == 0)
            rr = sub_json_parse(x.mem.data ? x.mem.data : "", x.mem.len, SUB_REG_MAX_MANIFEST,
                                "tag list", &j, e);
        if (rr == 0) {
            json_t *t = json_object_get(j, "tags");
            size_t i;
            json_t *it;
            if (t && !json_is_null(t) && !json_is_array(t))
                rr = sub_err_set(e, -EPROTO, "tag list of %s: \"tags\" is not an array", repo);
            json_array_foreach(t, i, it) {
                if (json_is_string(it)) strv_push(&v, json_string_value(it));
            }
            json_decref(j);
        }
        if (rr == 0) {
            _cleanup_free_ char *nl = next_link(x.link);
            if (nl && (rr = resolve_location(r, repo, nl, &u, e)) < 0) u = NULL;
        }
        xfer_done(&x);
        if (rr < 0) {
            free(u);
            return rr;
        }
    }
    *tags = TAKE_PTR(v);
    return 0;
}
