/* The escalation broker of one Tier-1 service: HTTP/1.1 on a Unix socket
 * that the service's container sees at /run/substrate/escalate.sock, each
 * POST /v1/jobs checked against the manifest's escalate: policy and run
 * through the Tier-2 runner's entry point for policy-authorised jobspecs.
 *
 * It is a process of its own (`substrate supervise --escalation NAME`,
 * started by the service's supervisor with a parent-death SIGTERM), so the
 * supervisor's loop never waits on a client, and a fault in this parser of
 * untrusted input cannot take the supervisor down. One thread per
 * connection (at most concurrency + queue + ESC_SPARE_CONN; more are told
 * "busy" at once), each job on the thread of its request: the jail's
 * parent-death signal follows that thread, which lives as long as the job.
 *
 * What a request may do is read from the service's state at each request
 * (the generation that runs, its manifest's policy), so a promotion that
 * changes the policy applies to the next request. */
#include "substrate/bundle.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/jobspec.h"
#include "substrate/strbuf.h"
#include "substrate/tier2.h"
#include "escalate-internal.h"
#include "t1-internal.h"
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ESC_BODY_SLACK (64u << 10)     /* JSON around the inputs */
#define ESC_READ_MS 10000              /* the whole request, from accept */
#define ESC_SEND_MS 10000
#define ESC_SPARE_CONN 8               /* connections beyond concurrency + queue: policy reads, refusals */
#define ESC_INLINE_MAX 1024            /* request strings longer than this are recorded by digest */
#define ESC_STOP_WAIT_MS ((SUB_JOB_TEARDOWN_GRACE_S + 25) * 1000)

typedef struct broker {
    const char *name;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned conns, running, queued, max_conns;
    int64_t *admits;                   /* admission times (monotonic ms), oldest first */
    size_t nadmits;
    unsigned long seq;
    bool stopping;
    int stop_pipe[2];
    char *dir, *sock, *records;
} broker;

typedef struct conn {
    broker *b;
    int fd;
} conn;

/* ---- HTTP ---------------------------------------------------------------------------------- */

typedef struct http_req {
    char method[16];
    char target[256];
    sub_buf body;
} http_req;

typedef struct verdict {
    int status;                        /* HTTP status */
    const char *reason;                /* machine-readable */
    char msg[1024];
    int retry_after;                   /* seconds, 0 = none */
} verdict;

static int refuse(verdict *v, int status, const char *reason, const char *fmt, ...) _printf_(4, 5);
static int refuse(verdict *v, int status, const char *reason, const char *fmt, ...) {
    v->status = status;
    v->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof v->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *status_text(int s) {
    switch (s) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static void send_all(int fd, const char *p, size_t n) {
    int64_t end = t1_now_ms() + ESC_SEND_MS;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) return;
        int64_t left = end - t1_now_ms();
        if (left <= 0) return;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        (void)poll(&pf, 1, (int)left);
    }
}

static void http_reply(int fd, int status, const json_t *body, int retry_after) {
    _cleanup_free_ char *js = sub_json_dump_pretty(body);
    _cleanup_free_ char *ra = retry_after > 0 ? xasprintf("Retry-After: %d\r\n", retry_after) : xstrdup("");
    _cleanup_free_ char *allow = status == 405 ? xstrdup("Allow: GET, POST\r\n") : xstrdup("");
    _cleanup_free_ char *head = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                                          "Content-Length: %zu\r\nConnection: close\r\n%s%s\r\n",
                                          status, status_text(status), strlen(js) + 1, ra, allow);
    send_all(fd, head, strlen(head));
    send_all(fd, js, strlen(js));
    send_all(fd, "\n", 1);
}

static json_t *error_body(const broker *b, const verdict *v, const char *id) {
    return json_pack("{s:s,s:s,s:s,s:o}", "error", v->msg, "reason", v->reason, "service", b->name,
                     "escalation_id", id ? json_string(id) : json_null());
}

/* Read more of fd into buf until the deadline; 0 at EOF, 1 when bytes came. */
static int read_some(int fd, int64_t deadline, sub_buf *buf, verdict *v) {
    for (;;) {
        int64_t left = deadline - t1_now_ms();
        if (left <= 0) return refuse(v, 408, "request_timeout", "the request did not arrive within %d s", ESC_READ_MS / 1000);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int n = poll(&pf, 1, (int)left);
        if (n < 0 && errno != EINTR) return refuse(v, 500, "internal", "poll: %s", strerror(errno));
        if (n <= 0) continue;
        char tmp[16384];
        ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r < 0) return refuse(v, 400, "bad_request", "reading the request: %s", strerror(errno));
        if (r == 0) return 0;
        sub_buf_append(buf, tmp, (size_t)r);
        return 1;
    }
}

static bool header_is(const char *line, size_t n, const char *name, const char **val) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return false;
    const char *p = line + k + 1;
    while (*p == ' ' || *p == '\t') p++;
    *val = p;
    return true;
}

/* The request head in buf[0..len) (see escalate-internal.h): pure, no I/O. */
static int parse_head(const char *buf, size_t len, size_t body_max, esc_http_head *h, verdict *v) {
    const char *end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
    if (!end) {
        if (len > ESC_HTTP_HEAD_MAX)
            return refuse(v, 413, "too_large", "the request head is over %u bytes", ESC_HTTP_HEAD_MAX);
        return 0;
    }
    /* the same limit whether the blank line came in the same read or not */
    if ((size_t)(end - buf) + 4 > ESC_HTTP_HEAD_MAX)
        return refuse(v, 413, "too_large", "the request head is over %u bytes", ESC_HTTP_HEAD_MAX);
    /* a NUL would end the C string early and hide the headers after it */
    if (memchr(buf, 0, (size_t)(end - buf)))
        return refuse(v, 400, "bad_request", "a NUL byte in the request head");
    *h = (esc_http_head){.length = -1, .body_off = (size_t)(end - buf) + 4};
    /* the head as a C string (it ends at the blank line) */
    _cleanup_free_ char *head = xmalloc((size_t)(end - buf) + 1);
    memcpy(head, buf, (size_t)(end - buf));
    head[end - buf] = 0;
    /* request line */
    char *line = head, *nl = strstr(line, "\r\n");
    if (nl) *nl = 0;
    char proto[16] = "";
    if (sscanf(line, "%15s %255s %15s", h->method, h->target, proto) != 3 || strncmp(proto, "HTTP/1.", 7))
        return refuse(v, 400, "bad_request", "not an HTTP/1.x request line (POST /v1/jobs HTTP/1.1)");
    bool chunked = false;
    for (char *l = nl ? nl + 2 : NULL; l && *l;) {
        char *e = strstr(l, "\r\n");
        size_t n = e ? (size_t)(e - l) : strlen(l);
        if (e) *e = 0;
        const char *val;
        if (header_is(l, n, "Content-Length", &val)) {
            char *x;
            errno = 0;
            long long cl = strtoll(val, &x, 10);
            if (errno || x == val || *x || cl < 0 || (h->length >= 0 && h->length != cl))
                return refuse(v, 400, "bad_request", "Content-Length \"%.40s\" is not one whole number", val);
            h->length = cl;
        } else if (header_is(l, n, "Transfer-Encoding", &val)) {
            chunked = true;
        } else if (header_is(l, n, "Expect", &val)) {
            h->expect_continue = !strcasecmp(val, "100-continue");
        }
        l = e ? e + 2 : NULL;
    }
    if (chunked) return refuse(v, 411, "length_required", "a chunked body is not accepted: send Content-Length");
    if (!strcmp(h->method, "POST") && h->length < 0)
        return refuse(v, 411, "length_required", "a POST needs Content-Length");
    if (h->length > 0 && (unsigned long long)h->length > body_max)
        return refuse(v, 413, "too_large",
                      "the body is %lld bytes; this service's policy takes at most %zu (max_input plus %u for the JSON)",
                      h->length, body_max, ESC_BODY_SLACK);
    return 1;
}

int esc_http_parse_head(const char *buf, size_t len, size_t body_max, esc_http_head *h, int *http_status,
                        const char **reason, char *msg, size_t msgn) {
    verdict v = {0};
    int r = parse_head(buf, len, body_max, h, &v);
    if (r < 0) {
        *http_status = v.status;
        *reason = v.reason;
        snprintf(msg, msgn, "%s", v.msg);
    }
    return r;
}

/* The request line and headers, then the body (at most body_max bytes). */
static int http_read(int fd, size_t body_max, http_req *q, verdict *v) {
    int64_t deadline = t1_now_ms() + ESC_READ_MS;
    sub_buf in = SUB_BUF_INIT;
    esc_http_head h;
    int r;
    while (!(r = esc_http_parse_head(in.data, in.len, body_max, &h, &v->status, &v->reason, v->msg, sizeof v->msg))) {
        if ((r = read_some(fd, deadline, &in, v)) <= 0) {
            sub_buf_free(&in);
            return r < 0 ? r : refuse(v, 400, "bad_request", "the connection closed before the request was complete");
        }
    }
    if (r < 0) {
        sub_buf_free(&in);
        return r;
    }
    memcpy(q->method, h.method, sizeof q->method);
    memcpy(q->target, h.target, sizeof q->target);
    size_t want = h.length > 0 ? (size_t)h.length : 0, have = in.len - h.body_off;
    if (h.expect_continue && have < want) send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    sub_buf_append(&q->body, in.data + h.body_off, have < want ? have : want);
    sub_buf_free(&in);
    while (q->body.len < want) {
        sub_buf more = SUB_BUF_INIT;
        r = read_some(fd, deadline, &more, v);
        if (r <= 0) {
            sub_buf_free(&more);
            return r < 0 ? r : refuse(v, 400, "bad_request", "the body ended after %zu of %zu bytes", q->body.len, want);
        }
        size_t take = more.len < want - q->body.len ? more.len : want - q->body.len;
        sub_buf_append(&q->body, more.data, take);
        sub_buf_free(&more);
    }
    return 0;
}

/* ---- the service as it runs now ------------------------------------------------------------ */

typedef struct svc_now {
    json_t *state;
    json_t *cur;                       /* borrowed from state */
    sub_svc_manifest m;
    bool have_m;
} svc_now;

static void svc_now_done(svc_now *s) {
    if (s->have_m) sub_svc_manifest_done(&s->m);
    json_decref(s->state);
    *s = (svc_now){0};
}

static int load_now(const broker *b, svc_now *s, verdict *v) {
    sub_err e = {0};
    if (t1_read_json(b->name, "state.json", &s->state, &e) < 0 || !s->state)
        return refuse(v, 503, "not_running", "%s has no state yet: it is not running", b->name);
    const char *status = json_string_value(json_object_get(s->state, "status"));
    s->cur = json_object_get(s->state, "current");
    if (!streq(status, "running") || !json_is_object(s->cur))
        return refuse(v, 503, "not_running", "%s is %s: escalation is open only while it runs", b->name,
                      status ? status : "not running");
    json_t *spec = json_object_get(s->cur, "spec");
    _cleanup_free_ char *txt = spec ? sub_json_dump(spec, NULL) : NULL;
    if (!txt || sub_svc_manifest_from_json(txt, strlen(txt), &s->m, &e) < 0)
        return refuse(v, 500, "internal", "the running generation's manifest cannot be read: %s", e.msg);
    s->have_m = true;
    if (!s->m.escalate.enabled)
        return refuse(v, 403, "no_policy", "the running generation of %s has no escalate: policy", b->name);
    return 0;
}

/* The socket's owner: the container's user (process.user of the bundle). */
static void container_user(const json_t *cur, uid_t *uid, gid_t *gid) {
    *uid = 0;
    *gid = 0;
    const char *bundle = json_string_value(json_object_get(cur, "bundle"));
    if (!bundle) return;
    _cleanup_free_ char *p = sub_path_join(bundle, "config.json");
    _cleanup_json_ json_t *c = NULL;
    if (sub_json_load_file(p, 1u << 20, &c, NULL) < 0) return;
    json_t *u = json_object_get(json_object_get(c, "process"), "user");
    *uid = (uid_t)json_integer_value(json_object_get(u, "uid"));
    *gid = (gid_t)json_integer_value(json_object_get(u, "gid"));
}

/* The generation being deployed (desired.json), else the running one: the
 * socket belongs to its user before its container is asked to be ready. */
static void socket_owner(const broker *b, uid_t *uid, gid_t *gid) {
    _cleanup_json_ json_t *rec = NULL, *st = NULL;
    if (t1_read_json(b->name, "desired.json", &rec, NULL) == 0 && json_is_object(rec)) {
        container_user(rec, uid, gid);
        return;
    }
    if (t1_read_json(b->name, "state.json", &st, NULL) == 0 && st) container_user(json_object_get(st, "current"), uid, gid);
    else *uid = 0, *gid = 0;
}

/* ---- the request -> a jobspec under the policy --------------------------------------------- */

static const char *const forbidden[] = {"image", "identity", "repo_prefix", "any_repo"};

static json_t *policy_json(const sub_svc_escalate *x) {
    json_t *eg = json_array();
    for (char **p = x->egress; p && *p; p++) json_array_append_new(eg, json_string(*p));
    return json_pack("{s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "image", x->image, "egress", eg,
                     "max_timeout_s", (json_int_t)x->max_timeout_s, "max_memory_mb", (json_int_t)x->max_memory_mb,
                     "max_vcpus", (json_int_t)x->max_vcpus, "max_input", (json_int_t)x->max_input, "max_output",
                     (json_int_t)x->max_output, "concurrency", (json_int_t)x->concurrency, "queue",
                     (json_int_t)x->queue, "queue_wait_ms", (json_int_t)x->queue_wait_ms, "per_minute",
                     (json_int_t)x->per_minute);
}

static bool egress_allowed(const sub_svc_escalate *x, const sub_hostport *h) {
    char hp[32];
    snprintf(hp, sizeof hp, "%s:%u", h->host, h->port);
    for (char **p = x->egress; p && *p; p++)
        if (streq(*p, hp)) return true;
    return false;
}

/* Parse the request into j (the policy's image, defaults from the policy),
 * then check it against the policy: over a limit is refused, never cut. */
static int build_jobspec(const char *service, const sub_svc_escalate *x, const char *body, size_t len,
                         sub_jobspec *j, verdict *v) {
    sub_err e = {0};
    _cleanup_json_ json_t *req = NULL;
    if (len > x->max_input + ESC_BODY_SLACK)
        return refuse(v, 413, "too_large", "the body is %zu bytes; this policy takes at most %llu (max_input plus %u for the JSON)",
                      len, (unsigned long long)(x->max_input + ESC_BODY_SLACK), ESC_BODY_SLACK);
    if (sub_json_parse(body, len, x->max_input + ESC_BODY_SLACK, "the request body", &req, &e) < 0)
        return refuse(v, 400, "bad_request", "%s", e.msg);
    if (!json_is_object(req))
        return refuse(v, 400, "bad_request",
                      "the body must be a JSON object (a jobspec without image), e.g. "
                      "{\"command\": [\"/bin/sh\", \"-c\"], \"args\": [\"echo hi\"]}");
    if (json_object_get(req, "tier"))
        return refuse(v, 403, "policy",
                      "tier: an escalated job always runs in a Tier-2 microVM (Tier-0 is never reachable through "
                      "escalation)");
    for (size_t i = 0; i < ARRAY_SIZE(forbidden); i++)
        if (json_object_get(req, forbidden[i]))
            return refuse(v, 403, "policy",
                          "%s: the job image and its signature policy are fixed by the manifest's escalate: policy "
                          "(%s); a request cannot name them",
                          forbidden[i], x->image);
    json_object_set_new(req, "image", json_string(x->image));
    if (!json_object_get(req, "name")) {
        _cleanup_free_ char *nm = xasprintf("esc-%.59s", service);
        json_object_set_new(req, "name", json_string(nm));
    }
    /* defaults from the policy (narrower than the jobspec's, never wider) */
    if (!json_object_get(req, "timeout")) json_object_set_new(req, "timeout", json_integer(x->max_timeout_s));
    if (!json_object_get(req, "memory_mb"))
        json_object_set_new(req, "memory_mb", json_integer(x->max_memory_mb < 256 ? x->max_memory_mb : 256));
    json_t *outs = json_object_get(req, "outputs");
    if (json_is_object(outs) && !json_object_get(outs, "max_bytes"))
        json_object_set_new(outs, "max_bytes",
                            json_integer((json_int_t)(x->max_output < (1u << 20) ? x->max_output : (1u << 20))));
    _cleanup_free_ char *txt = sub_json_dump(req, NULL);
    if (sub_jobspec_parse(txt, strlen(txt), "request", sub_job_timeout_max(), j, &e) < 0)
        return refuse(v, 400, "bad_request", "%s", e.msg);
    if (j->timeout_s > x->max_timeout_s)
        return refuse(v, 403, "policy", "timeout %us is over the policy's max_timeout (%us, boot included)",
                      j->timeout_s, x->max_timeout_s);
    if (j->memory_mb > x->max_memory_mb)
        return refuse(v, 403, "policy", "memory_mb %u is over the policy's max_memory (%u MiB)", j->memory_mb,
                      x->max_memory_mb);
    if (j->vcpus > x->max_vcpus)
        return refuse(v, 403, "policy", "vcpus %u is over the policy's max_vcpus (%u)", j->vcpus, x->max_vcpus);
    for (size_t i = 0; i < j->negress; i++)
        if (!egress_allowed(x, &j->egress[i])) {
            _cleanup_buf_ sub_buf al = SUB_BUF_INIT;
            for (char **p = x->egress; p && *p; p++) {
                if (al.len) sub_buf_append(&al, ", ", 2);
                sub_buf_append(&al, *p, strlen(*p));
            }
            return refuse(v, 403, "policy", "egress to %s:%u is not in the policy's egress allowlist (%s)",
                          j->egress[i].host, j->egress[i].port, al.len ? sub_buf_str(&al) : "none");
        }
    uint64_t in = j->stdin_len;
    for (size_t i = 0; i < j->ninputs; i++) in += j->inputs[i].len;
    if (in > x->max_input)
        return refuse(v, 403, "policy", "stdin and inputs carry %llu bytes, over the policy's max_input (%llu)",
                      (unsigned long long)in, (unsigned long long)x->max_input);
    if (j->outputs && j->output_max_bytes > x->max_output)
        return refuse(v, 403, "policy", "outputs.max_bytes %llu is over the policy's max_output (%llu)",
                      (unsigned long long)j->output_max_bytes, (unsigned long long)x->max_output);
    return 0;
}

int sub_t1_escalation_jobspec(const char *service, const sub_svc_escalate *x, const char *body, size_t len,
                              sub_jobspec *j, int *http_status, const char **reason, char *msg, size_t msgn) {
    verdict v = {0};
    if (build_jobspec(service, x, body, len, j, &v) == 0) return 0;
    sub_jobspec_done(j);
    *http_status = v.status;
    *reason = v.reason;
    snprintf(msg, msgn, "%s", v.msg);
    return -1;
}

/* ---- records ------------------------------------------------------------------------------- */

/* The request as recorded: long strings (stdin, input contents) by size and digest. */
static json_t *request_record(const char *body, size_t len) {
    _cleanup_json_ json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(req)) {
        char d[SUB_DIGEST_MAX];
        (void)sub_sha256_buf(body, len, d, NULL);
        return json_pack("{s:s,s:I,s:s}", "unparsed", "not a JSON object", "bytes", (json_int_t)len, "sha256", d);
    }
    json_t *out = json_deep_copy(req);
    json_t *ins = json_object_get(out, "inputs");
    json_t *strs[64 + 1];
    size_t n = 0;
    if (json_is_string(json_object_get(out, "stdin"))) strs[n++] = json_object_get(out, "stdin");
    for (size_t i = 0; json_is_array(ins) && i < json_array_size(ins) && n < ARRAY_SIZE(strs); i++)
        if (json_is_string(json_object_get(json_array_get(ins, i), "content")))
            strs[n++] = json_object_get(json_array_get(ins, i), "content");
    for (size_t i = 0; i < n; i++) {
        size_t l = json_string_length(strs[i]);
        if (l <= ESC_INLINE_MAX) continue;
        char d[SUB_DIGEST_MAX];
        (void)sub_sha256_buf(json_string_value(strs[i]), l, d, NULL);
        _cleanup_free_ char *s = xasprintf("(%zu bytes, %s)", l, d);
        json_string_set(strs[i], s);
    }
    return out;
}

static void record_write(const broker *b, const char *id, json_t *rec) {
    _cleanup_free_ char *p = xasprintf("%s/%s.json", b->records, id);
    _cleanup_free_ char *t = t1_iso_time(t1_wall_ms());
    json_object_set_new(rec, "updated", json_string(t));
    _cleanup_free_ char *s = sub_json_dump_pretty(rec);
    (void)sub_write_file_atomic(p, s, strlen(s), 0600, NULL);
}

/* ---- admission: rate, then a slot or the queue --------------------------------------------- */

static bool client_gone(int fd) {
    struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* 0: a slot is ours (release it with slot_release); -1 with v filled; -2: the client went away. */
static int slot_acquire(broker *b, const sub_svc_escalate *x, int fd, int64_t *queued_ms, verdict *v) {
    int64_t t0 = t1_now_ms();
    pthread_mutex_lock(&b->mu);
    size_t k = 0;
    while (k < b->nadmits && b->admits[k] <= t0 - 60000) k++;
    if (k) memmove(b->admits, b->admits + k, (b->nadmits - k) * sizeof *b->admits);
    b->nadmits -= k;
    if (b->nadmits >= x->per_minute) {
        int wait = (int)((b->admits[0] + 60000 - t0 + 999) / 1000);
        pthread_mutex_unlock(&b->mu);
        v->retry_after = wait > 0 ? wait : 1;
        return refuse(v, 429, "rate", "%u requests were admitted in the last minute, the policy's per_minute: "
                                      "try again in %d s", x->per_minute, v->retry_after);
    }
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return refuse(v, 503, "stopping", "%s is stopping: no new jobs", b->name);
    }
    bool slot = b->running < x->concurrency && b->queued == 0;
    if (!slot && b->queued >= x->queue) {
        unsigned run = b->running, q = b->queued;
        pthread_mutex_unlock(&b->mu);
        return refuse(v, 503, "busy", "busy: %u job(s) running and %u queued, the policy's concurrency (%u) and "
                                      "queue (%u): try again later", run, q, x->concurrency, x->queue);
    }
    b->admits = xrealloc(b->admits, (b->nadmits + 1) * sizeof *b->admits);
    b->admits[b->nadmits++] = t0;
    if (slot) {
        b->running++;
        pthread_mutex_unlock(&b->mu);
        *queued_ms = 0;
        return 0;
    }
    b->queued++;
    int rc = 0;
    for (;;) {
        if (b->stopping) {
            rc = refuse(v, 503, "stopping", "%s is stopping: the queued request was dropped", b->name);
            break;
        }
        if (b->running < x->concurrency) {
            b->running++;
            break;
        }
        int64_t now = t1_now_ms();
        if (now - t0 >= x->queue_wait_ms) {
            rc = refuse(v, 503, "busy", "busy: waited %u ms in the queue (the policy's queue_wait) for one of %u job "
                                        "slot(s)", x->queue_wait_ms, x->concurrency);
            break;
        }
        pthread_mutex_unlock(&b->mu);
        bool gone = client_gone(fd);
        pthread_mutex_lock(&b->mu);
        if (gone) {
            rc = -2;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    b->queued--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    *queued_ms = t1_now_ms() - t0;
    return rc;
}

static void slot_release(broker *b) {
    pthread_mutex_lock(&b->mu);
    b->running--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* ---- one job ------------------------------------------------------------------------------- */

static void new_id(broker *b, char out[64]) {
    pthread_mutex_lock(&b->mu);
    unsigned long n = ++b->seq;
    pthread_mutex_unlock(&b->mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 64, "%04d%02d%02dT%02d%02d%02d.%03ldZ-%d-%lu", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(), n);
}

static void serve_jobs(broker *b, int fd, const http_req *q) {
    char id[64];
    new_id(b, id);
    _cleanup_free_ char *received = t1_iso_time(t1_wall_ms());
    _cleanup_json_ json_t *rec = json_pack("{s:s,s:s,s:s,s:i}", "id", id, "service", b->name, "received", received,
                                           "broker_pid", (int)getpid());
    json_object_set_new(rec, "request", request_record(q->body.data ? q->body.data : "", q->body.len));
    verdict v = {0};
    svc_now now = {0};
    _cleanup_jobspec_ sub_jobspec j = {0};
    int r = load_now(b, &now, &v);
    if (r == 0) {
        json_object_set_new(rec, "policy", policy_json(&now.m.escalate));
        r = sub_t1_escalation_jobspec(b->name, &now.m.escalate, q->body.data ? q->body.data : "{}",
                                      q->body.data ? q->body.len : 2, &j, &v.status, &v.reason, v.msg, sizeof v.msg);
    }
    int64_t queued_ms = 0;
    if (r == 0) {
        json_object_set_new(rec, "state", json_string("queued"));
        record_write(b, id, rec);
        r = slot_acquire(b, &now.m.escalate, fd, &queued_ms, &v);
        if (r == -2) refuse(&v, 499, "client_gone", "the client disconnected while its request was queued");
    }
    if (r < 0) {
        json_object_set_new(rec, "state", json_string("refused"));
        json_object_set_new(rec, "decision", json_pack("{s:s,s:i,s:s,s:s}", "result", "refused", "http_status", v.status,
                                                       "reason", v.reason, "message", v.msg));
        record_write(b, id, rec);
        if (v.status != 499) {
            _cleanup_json_ json_t *eb = error_body(b, &v, id);
            http_reply(fd, v.status, eb, v.retry_after);
        }
        svc_now_done(&now);
        return;
    }
    json_object_set_new(rec, "state", json_string("running"));
    json_object_set_new(rec, "decision", json_pack("{s:s,s:i,s:I}", "result", "accepted", "http_status", 200,
                                                   "queued_ms", (json_int_t)queued_ms));
    record_write(b, id, rec);

    json_t *cur = now.cur;
    json_t *origin = json_pack("{s:s,s:O?,s:O?,s:O?,s:O?,s:O?,s:s}", "service", b->name, "image",
                               json_object_get(cur, "image"), "image_digest", json_object_get(cur, "digest"),
                               "manifest", json_object_get(cur, "manifest"), "manifest_digest",
                               json_object_get(cur, "manifest_digest"), "generation", json_object_get(cur, "generation"),
                               "escalation_id", id);
    _cleanup_strv_ char **keys = t1_key_files(&now.m);
    sub_job_cancel cancel[2] = {{.fd = fd, .events = POLLRDHUP, .why = "the escalating client disconnected"},
                                {.fd = b->stop_pipe[0], .events = POLLIN, .why = "the service is stopping"}};
    sub_job_opts o = {.key_files = keys, .cancel = cancel, .ncancel = 2, .caller_handles_signals = true};
    json_t *report = NULL;
    sub_err e = {0};
    r = sub_job_run_authorized(&j, "manifest-policy", origin, &o, &report, &e);
    json_decref(origin);
    slot_release(b);
    if (r < 0 || !report) {
        refuse(&v, 500, "runner", "the Tier-2 runner failed: %s", e.msg);
        json_object_set_new(rec, "state", json_string("failed"));
        json_object_set_new(rec, "error", json_string(v.msg));
        record_write(b, id, rec);
        _cleanup_json_ json_t *eb = error_body(b, &v, id);
        http_reply(fd, 500, eb, 0);
        svc_now_done(&now);
        return;
    }
    json_object_set_new(report, "escalation", json_pack("{s:s,s:I}", "id", id, "queued_ms", (json_int_t)queued_ms));
    json_object_set_new(rec, "state", json_string("done"));
    json_object_set_new(rec, "outcome", json_incref(json_object_get(report, "outcome")));
    json_object_set_new(rec, "exit_code", json_integer(sub_job_exit_code(report)));
    json_object_set_new(rec, "job_id", json_incref(json_object_get(report, "job_id")));
    json_object_set_new(rec, "report", json_incref(report));
    record_write(b, id, rec);
    if (!client_gone(fd)) http_reply(fd, 200, report, 0);
    json_decref(report);
    svc_now_done(&now);
}

static void serve_policy(broker *b, int fd) {
    verdict v = {0};
    svc_now now = {0};
    if (load_now(b, &now, &v) < 0) {
        _cleanup_json_ json_t *eb = error_body(b, &v, NULL);
        http_reply(fd, v.status, eb, 0);
    } else {
        _cleanup_json_ json_t *p = json_pack("{s:s,s:O?,s:o}", "service", b->name, "image", json_object_get(now.cur, "image"),
                                             "escalate", policy_json(&now.m.escalate));
        http_reply(fd, 200, p, 0);
    }
    svc_now_done(&now);
}

static void *conn_main(void *arg) {
    conn *c = arg;
    broker *b = c->b;
    http_req q = {.body = SUB_BUF_INIT};
    verdict v = {0};
    /* the body limit before the policy is read: the largest any policy allows */
    if (http_read(c->fd, SUB_JOB_INPUTS_MAX + ESC_BODY_SLACK, &q, &v) < 0) {
        _cleanup_json_ json_t *eb = error_body(b, &v, NULL);
        http_reply(c->fd, v.status, eb, 0);
    } else {
        const char *path = q.target;
        if (streq(path, "/v1/jobs")) {
            if (streq(q.method, "POST")) serve_jobs(b, c->fd, &q);
            else {
                refuse(&v, 405, "method", "%s /v1/jobs: use POST with a JSON body", q.method);
                _cleanup_json_ json_t *eb = error_body(b, &v, NULL);
                http_reply(c->fd, 405, eb, 0);
            }
        } else if (streq(path, "/v1/policy")) {
            if (streq(q.method, "GET")) serve_policy(b, c->fd);
            else {
                refuse(&v, 405, "method", "%s /v1/policy: use GET", q.method);
                _cleanup_json_ json_t *eb = error_body(b, &v, NULL);
                http_reply(c->fd, 405, eb, 0);
            }
        } else {
            refuse(&v, 404, "not_found", "%.100s: not here (POST /v1/jobs runs a job; GET /v1/policy shows the limits)",
                   path);
            _cleanup_json_ json_t *eb = error_body(b, &v, NULL);
            http_reply(c->fd, 404, eb, 0);
        }
    }
    sub_buf_free(&q.body);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&b->mu);
    b->conns--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ---- the socket ---------------------------------------------------------------------------- */

/* Bind at a temporary name, give it to the container's user (0600), then
 * rename into place: it never exists with the wrong owner. */
static int sock_open(broker *b, uid_t uid, gid_t gid, sub_err *e) {
    _cleanup_free_ char *tmp = xasprintf("%s.%d", b->sock, (int)getpid());
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(tmp) >= sizeof sa.sun_path)
        return sub_err_setk(e, SUB_KIND_ENV, -ENAMETOOLONG,
                            "the escalation socket path %s is too long for a Unix socket: use a shorter $SUBSTRATE_STATE", tmp);
    memcpy(sa.sun_path, tmp, strlen(tmp) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "socket: %m");
    unlink(tmp);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 || chown(tmp, uid, gid) < 0 ||
        chmod(tmp, 0600) < 0 || rename(tmp, b->sock) < 0) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return sub_err_setk(e, SUB_KIND_ENV, -err, "escalation socket %s: %s", b->sock, strerror(err));
    }
    return fd;
}

static void reown(broker *b) {
    uid_t uid;
    gid_t gid;
    socket_owner(b, &uid, &gid);
    if (chown(b->sock, uid, gid) < 0) { /* the old owner stays: the next SIGHUP tries again */
    }
    svc_now now = {0};
    verdict v = {0};
    if (load_now(b, &now, &v) == 0) {
        pthread_mutex_lock(&b->mu);
        b->max_conns = now.m.escalate.concurrency + now.m.escalate.queue + ESC_SPARE_CONN;
        pthread_mutex_unlock(&b->mu);
    }
    svc_now_done(&now);
}

/* Records a dead broker left "queued" or "running": their jobs died with it
 * (the VMM's parent-death signal) and are swept; say so. */
static void settle_orphans(broker *b) {
    DIR *d = opendir(b->records);
    if (!d) return;
    struct dirent *de;
    bool any = false;
    while ((de = readdir(d))) {
        if (!str_has_suffix(de->d_name, ".json")) continue;
        _cleanup_free_ char *p = xasprintf("%s/%s", b->records, de->d_name);
        _cleanup_json_ json_t *rec = NULL;
        if (sub_json_load_file(p, 16u << 20, &rec, NULL) < 0) continue;
        const char *st = json_string_value(json_object_get(rec, "state"));
        if (!streq(st, "queued") && !streq(st, "running")) continue;
        json_object_set_new(rec, "state", json_string("interrupted"));
        json_object_set_new(rec, "error", json_string("the broker ended before this request did (killed, or the host "
                                                      "went down); its job was killed with it and swept"));
        _cleanup_free_ char *id = xstrndup(de->d_name, strlen(de->d_name) - 5);
        record_write(b, id, rec);
        any = true;
    }
    closedir(d);
    if (any) (void)sub_job_sweep(NULL, NULL);
}

int sub_t1_escalation_run(const char *name, sub_err *e) {
    size_t nl = strlen(name);
    if (!nl || nl > SUB_SVC_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != nl || name[0] == '-')
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "\"%s\" is not a service name ([a-z0-9][a-z0-9-]*, at most %d)",
                            name, SUB_SVC_NAME_MAX);
    broker b = {.name = name, .stop_pipe = {-1, -1}};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    b.dir = sub_t1_svc_path(name, "escalate");
    b.sock = sub_t1_svc_path(name, "escalate/escalate.sock");
    b.records = sub_t1_svc_path(name, "escalations");
    _cleanup_free_ char *lockp = sub_t1_svc_path(name, "escalate.lock");
    int lfd = -1, sfd = -1, lsn = -1, r;
    if ((r = sub_mkdir_p(b.dir, 0755, e)) < 0 || (r = sub_mkdir_p(b.records, 0700, e)) < 0) goto out;
    lfd = t1_trylock(lockp, e);
    if (lfd == -EWOULDBLOCK) {
        sub_err_set(e, 0, "another escalation broker serves %s", name);
        r = 0;
        goto out;
    }
    if ((r = lfd) < 0) goto out;
    /* every thread inherits this mask: only the signalfd below sees them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0 || pipe2(b.stop_pipe, O_CLOEXEC) < 0) {
        r = sub_err_setk(e, SUB_KIND_ENV, -errno, "signalfd/pipe: %m");
        goto out;
    }
    settle_orphans(&b);
    svc_now now = {0};
    verdict v = {0};
    uid_t uid = 0;
    gid_t gid = 0;
    b.max_conns = 1 + 4 + ESC_SPARE_CONN;
    socket_owner(&b, &uid, &gid);
    if (load_now(&b, &now, &v) == 0) b.max_conns = now.m.escalate.concurrency + now.m.escalate.queue + ESC_SPARE_CONN;
    svc_now_done(&now);
    if ((lsn = sock_open(&b, uid, gid, e)) < 0) {
        r = lsn;
        goto out;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (!b.stopping) {
        struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN}, {.fd = lsn, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR) break;
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGHUP) reown(&b);
                else b.stopping = true;
            }
        }
        if (b.stopping || !(pf[1].revents & POLLIN)) continue;
        int fd = accept4(lsn, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        pthread_mutex_lock(&b.mu);
        bool full = b.conns >= b.max_conns;
        if (!full) b.conns++;
        pthread_mutex_unlock(&b.mu);
        if (full) {
            verdict bv = {0};
            refuse(&bv, 503, "busy", "busy: %u connections are open, the most this policy takes", b.max_conns);
            _cleanup_json_ json_t *eb = error_body(&b, &bv, NULL);
            http_reply(fd, 503, eb, 0);
            close(fd);
            continue;
        }
        conn *c = xmalloc(sizeof *c);
        *c = (conn){.b = &b, .fd = fd};
        pthread_t t;
        if (pthread_create(&t, &attr, conn_main, c) != 0) {
            close(fd);
            free(c);
            pthread_mutex_lock(&b.mu);
            b.conns--;
            pthread_mutex_unlock(&b.mu);
        }
    }
    pthread_attr_destroy(&attr);
    /* stopping: no new connections; running jobs are cancelled (and audited), queued ones refused */
    close(lsn);
    lsn = -1;
    unlink(b.sock);
    pthread_mutex_lock(&b.mu);
    b.stopping = true;
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    (void)!write(b.stop_pipe[1], "x", 1);
    int64_t end = t1_now_ms() + ESC_STOP_WAIT_MS;
    pthread_mutex_lock(&b.mu);
    while (b.conns > 0 && t1_now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&b.cv, &b.mu, &ts);
    }
    unsigned left = b.conns;
    pthread_mutex_unlock(&b.mu);
    if (left) {
        /* threads still inside a job's teardown own memory and fds: leave
         * them to process exit rather than free under their feet */
        r = sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "%u escalation connection(s) still open after %d s", left,
                         ESC_STOP_WAIT_MS / 1000);
        if (sfd >= 0) close(sfd);
        return r;
    }
    r = 1;
out:
    if (lsn >= 0) {
        close(lsn);
        unlink(b.sock);
    }
    if (sfd >= 0) close(sfd);
    for (int i = 0; i < 2; i++)
        if (b.stop_pipe[i] >= 0) close(b.stop_pipe[i]);
    if (lfd >= 0) close(lfd);
    free(b.admits);
    free(b.dir);
    free(b.sock);
    free(b.records);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
    return r < 0 ? r : 0;
}

/* ---- what status shows ---------------------------------------------------------------------- */

static int cmp_desc(const void *a, const void *b) { return strcmp(*(char *const *)b, *(char *const *)a); }

json_t *sub_t1_escalations(const char *name, size_t last) {
    _cleanup_free_ char *dir = sub_t1_svc_path(name, "escalations");
    _cleanup_free_ char *lock = sub_t1_svc_path(name, "escalate.lock");
    _cleanup_free_ char *sock = sub_t1_svc_path(name, "escalate/escalate.sock");
    bool alive = t1_lock_held(lock);
    json_t *counts = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "queued", 0, "running", 0, "done", 0, "refused", 0,
                               "failed", 0, "interrupted", 0);
    json_t *out = json_pack("{s:b,s:o,s:o,s:[]}", "broker", alive, "socket",
                            alive && sub_path_exists(sock) ? json_string(sock) : json_null(), "counts", counts,
                            "last");
    _cleanup_strv_ char **names = NULL;
    DIR *d = opendir(dir);
    if (!d) return out;
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d)))
        if (str_has_suffix(de->d_name, ".json")) strv_push(&names, de->d_name), n++;
    closedir(d);
    if (!n) return out;
    qsort(names, n, sizeof *names, cmp_desc);
    json_t *lastv = json_object_get(out, "last");
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, names[i]);
        _cleanup_json_ json_t *rec = NULL;
        if (sub_json_load_file(p, 16u << 20, &rec, NULL) < 0) continue;
        const char *st = json_string_value(json_object_get(rec, "state"));
        json_t *c = st ? json_object_get(counts, st) : NULL;
        if (c) json_integer_set(c, json_integer_value(c) + 1);
        if (json_array_size(lastv) >= last) continue;
        json_t *dec = json_object_get(rec, "decision");
        json_t *rep = json_object_get(rec, "report");
        json_array_append_new(
            lastv, json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}", "id", json_object_get(rec, "id"),
                             "received", json_object_get(rec, "received"), "state", json_object_get(rec, "state"),
                             "http_status", json_object_get(dec, "http_status"), "reason", json_object_get(dec, "reason"),
                             "message", json_object_get(dec, "message"), "outcome", json_object_get(rec, "outcome"),
                             "exit_code", json_object_get(rec, "exit_code"), "job_id", json_object_get(rec, "job_id"),
                             "report_file", json_object_get(rep, "report_file")));
    }
    return out;
}

/* ---- a client (the acceptance harness, the benchmark) --------------------------------------- */

int sub_t1_escalate_call(const char *name, const char *method, const char *path, const char *body,
                         int timeout_ms, int *status, json_t **reply, sub_err *e) {
    *status = 0;
    *reply = NULL;
    _cleanup_free_ char *sock = sub_t1_svc_path(name, "escalate/escalate.sock");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path)
        return sub_err_setk(e, SUB_KIND_ENV, -ENAMETOOLONG, "%s: path too long for a Unix socket", sock);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "socket: %m");
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -errno, "%s: %m (is %s reconciled with an escalate: policy?)", sock, name);
    size_t blen = body ? strlen(body) : 0;
    _cleanup_free_ char *head = xasprintf("%s %s HTTP/1.1\r\nHost: substrate\r\nContent-Type: application/json\r\n"
                                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                                          method, path, blen);
    if (sub_write_all(fd, head, strlen(head)) < 0 || (blen && sub_write_all(fd, body, blen) < 0))
        return sub_err_setk(e, SUB_KIND_ENV, -errno, "writing to %s: %m", sock);
    _cleanup_buf_ sub_buf in = SUB_BUF_INIT;
    int64_t end = t1_now_ms() + timeout_ms;
    for (;;) {
        verdict v = {0};
        int r = read_some(fd, end, &in, &v);
        if (r < 0) return sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "%s: no complete answer within %d ms", sock, timeout_ms);
        if (r == 0) break;
        if (in.len > (64u << 20)) return sub_err_setk(e, SUB_KIND_ENV, -E2BIG, "%s: answer too large", sock);
    }
    const char *p = sub_buf_str(&in);
    const char *sep = strstr(p, "\r\n\r\n");
    if (!sep || sscanf(p, "HTTP/1.%*c %d", status) != 1)
        return sub_err_setk(e, SUB_KIND_ENV, -EPROTO, "%s: not an HTTP answer", sock);
    return sub_json_parse(sep + 4, in.len - (size_t)(sep + 4 - p), 64u << 20, "the broker's answer", reply, e);
}
