/* The host side of the guest agent's channel (t2-internal.h): frames in and
 * out, streams, outputs, and the loop under the deadline. Everything the
 * guest sends is untrusted and parsed with bounds. */
#include "t2-internal.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/guestproto.h"
#include "substrate/json.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define DONE_GRACE_MS 3000 /* after DONE, the guest's power-off */

void t2_frame(sub_buf *b, uint8_t type, const void *p, size_t n) {
    unsigned char h[SUB_GP_HDR];
    sub_gp_header(h, type, (uint32_t)n);
    sub_buf_append(b, h, sizeof h);
    if (n) sub_buf_append(b, p, n);
}

void t2_frame_str(sub_buf *b, uint8_t type, const char *s) { t2_frame(b, type, s, strlen(s)); }

static void stream_add(stream *s, const unsigned char *p, size_t n) {
    s->total += n;
    if (s->log_fd >= 0 && s->logged < T2_LOG_MAX) {
        size_t k = T2_LOG_MAX - s->logged < n ? (size_t)(T2_LOG_MAX - s->logged) : n;
        if (sub_write_all(s->log_fd, p, k) == 0) s->logged += k;
    }
    size_t room = s->data.len < SUB_JOB_STREAM_MAX ? SUB_JOB_STREAM_MAX - s->data.len : 0;
    sub_buf_append(&s->data, p, n < room ? n : room);
}

json_t *t2_stream_json(const stream *s) {
    size_t n = sub_utf8_cut(s->data.data ? s->data.data : "", s->data.len);
    _cleanup_free_ char *txt = xstrndup(s->data.data ? s->data.data : "", n);
    _cleanup_free_ char *clean = sub_utf8_sanitize(txt);
    return json_pack("{s:s,s:I,s:b}", "text", clean, "bytes", (json_int_t)s->total, "truncated",
                     s->total > s->data.len);
}

/* An output file the guest sent: kept under the report's outputs dir, by its
 * guest path (beneath that dir only). */
static void got_output(session *s, const unsigned char *p, size_t n) {
    if (n < 8) {
        s->protocol_error = true;
        return;
    }
    uint32_t status = sub_gp_get32(p), pl = sub_gp_get32(p + 4);
    if (pl == 0 || pl > n - 8) {
        s->protocol_error = true;
        return;
    }
    _cleanup_free_ char *path = xstrndup((const char *)p + 8, pl);
    size_t clen = n - 8 - pl;
    json_t *o = json_pack("{s:o}", "path", sub_json_str(path));
    if (status) {
        json_object_set_new(o, "error", json_string(status == EFBIG ? "over the outputs' size cap"
                                                     : status == ENOENT ? "no such file"
                                                                        : strerror((int)status)));
    } else {
        char sha[SUB_DIGEST_MAX];
        (void)sub_sha256_buf(p + 8 + pl, clen, sha, NULL);
        json_object_set_new(o, "bytes", json_integer((json_int_t)clen));
        json_object_set_new(o, "sha256", json_string(sha));
        if (s->outputs_dir && strlen(path) > 1 && path[0] == '/') {
            _cleanup_close_ int dfd = -1;
            sub_err e = {0};
            if (sub_mkdir_p(s->outputs_dir, 0700, &e) == 0 &&
                (dfd = open(s->outputs_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) >= 0) {
                const char *rel = path + 1;
                _cleanup_free_ char *parent = xstrdup(rel);
                char *sl = strrchr(parent, '/');
                if (sl) {
                    *sl = 0;
                    (void)sub_mkdir_p_at(dfd, parent, 0700, SUB_RESOLVE_BENEATH, NULL);
                }
                if (sub_write_file_at(dfd, rel, p + 8 + pl, clen, 0600, SUB_RESOLVE_BENEATH, &e) == 0) {
                    _cleanup_free_ char *saved = sub_path_join(s->outputs_dir, rel);
                    json_object_set_new(o, "saved_to", json_string(saved));
                }
            }
        }
    }
    json_array_append_new(s->outputs, o);
}

static void got_frame(session *s, uint8_t type, const unsigned char *p, size_t n) {
    switch (type) {
    case SUB_GP_HELLO:
        if (n < 4 || s->hello) {
            s->protocol_error = true;
            break;
        }
        s->hello = true;
        s->hello_ms = t2_now_ms() - s->t0;
        s->guest_uptime_ms = sub_gp_get32(p);
        break;
    case SUB_GP_PROBE_RESULT: {
        _cleanup_free_ char *t = xstrndup((const char *)p, n);
        char target[64], res[32], err[32];
        unsigned long long ms = 0;
        if (sscanf(t, "%63s %31s %31s %llu", target, res, err, &ms) != 4) {
            s->protocol_error = true;
            break;
        }
        json_array_append_new(s->probes, json_pack("{s:s,s:s,s:s,s:I}", "target", target, "result", res, "errno",
                                                   err, "ms", (json_int_t)ms));
        break;
    }
    case SUB_GP_STDOUT: stream_add(&s->so, p, n); break;
    case SUB_GP_STDERR: stream_add(&s->se, p, n); break;
    case SUB_GP_EXIT:
        if (n != 4) {
            s->protocol_error = true;
            break;
        }
        s->exit_code = (int)sub_gp_get32(p);
        break;
    case SUB_GP_OUTPUT_FILE: got_output(s, p, n); break;
    case SUB_GP_ERROR: {
        _cleanup_free_ char *t = xstrndup((const char *)p, n);
        json_array_append_new(s->errors, json_string(t));
        break;
    }
    case SUB_GP_DONE: s->done = true; break;
    default: s->protocol_error = true;
    }
}

static void parse_frames(session *s) {
    size_t off = 0;
    while (s->in.len - off >= SUB_GP_HDR && !s->protocol_error) {
        const unsigned char *h = (const unsigned char *)s->in.data + off;
        uint32_t len = sub_gp_get32(h);
        if (len > SUB_GP_MAX_PAYLOAD) {
            s->protocol_error = true;
            break;
        }
        if (s->in.len - off - SUB_GP_HDR < len) break;
        got_frame(s, h[4], h + SUB_GP_HDR, len);
        off += SUB_GP_HDR + len;
    }
    if (off) {
        memmove(s->in.data, s->in.data + off, s->in.len - off);
        s->in.len -= off;
    }
}

static void read_ctl(session *s) {
    unsigned char b[65536];
    for (;;) {
        ssize_t n = read(s->ctl, b, sizeof b);
        if (n > 0) {
            sub_buf_append(&s->in, b, (size_t)n);
            parse_frames(s);
            continue;
        }
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(s->ctl);
            s->ctl = -1;
        }
        return;
    }
}

static void read_console(session *s) {
    char b[4096];
    for (;;) {
        ssize_t n = read(s->con, b, sizeof b);
        if (n <= 0) {
            if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(s->con);
                s->con = -1;
            }
            return;
        }
        s->con_total += (size_t)n;
        for (ssize_t i = 0; i < n; i++) {
            if (s->con_len == sizeof s->console) {
                memmove(s->console, s->console + sizeof s->console / 2, sizeof s->console / 2);
                s->con_len = sizeof s->console / 2;
            }
            s->console[s->con_len++] = b[i];
        }
    }
}

static void arm(int tfd, int64_t at_ms_from_now) {
    if (at_ms_from_now < 1) at_ms_from_now = 1;
    struct itimerspec it = {.it_value = {.tv_sec = at_ms_from_now / 1000, .tv_nsec = (at_ms_from_now % 1000) * 1000000}};
    (void)timerfd_settime(tfd, 0, &it, NULL);
}

/* Until the VMM is gone (its own power-off, a crash, a kill from outside),
 * the deadline passes (timed_out), a signal arrives (interrupted), or the
 * guest breaks the protocol. The VMM is not killed here. */
void t2_session_loop(session *s, int64_t deadline_ms) {
    arm(s->tfd, deadline_ms - t2_now_ms());
    int64_t done_at = 0;
    for (;;) {
        if (s->done && !done_at) {
            done_at = t2_now_ms();
            int64_t until = done_at + DONE_GRACE_MS < deadline_ms ? done_at + DONE_GRACE_MS : deadline_ms;
            arm(s->tfd, until - t2_now_ms());
        }
        if (s->stop_at_hello && s->hello) return;
        if (s->protocol_error) return;
        struct pollfd pf[5 + SUB_JOB_CANCEL_MAX] = {
            {.fd = s->ctl, .events = POLLIN | (s->out_off < s->out.len ? POLLOUT : 0)},
            {.fd = s->con, .events = POLLIN},
            {.fd = s->vmm_gone ? -1 : s->pidfd, .events = POLLIN},
            {.fd = s->tfd, .events = POLLIN},
            {.fd = s->sfd, .events = POLLIN},
        };
        size_t nc = s->ncancel < SUB_JOB_CANCEL_MAX ? s->ncancel : SUB_JOB_CANCEL_MAX;
        for (size_t i = 0; i < nc; i++) pf[5 + i] = (struct pollfd){.fd = s->cancel[i].fd, .events = s->cancel[i].events};
        if (poll(pf, 5 + nc, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (size_t i = 0; i < nc; i++)
            if (pf[5 + i].revents) {
                s->cancelled = true;
                s->cancel_why = s->cancel[i].why ? s->cancel[i].why : "cancelled by the caller";
                return;
            }
        if (pf[0].revents & POLLOUT) {
            ssize_t w = write(s->ctl, s->out.data + s->out_off, s->out.len - s->out_off);
            if (w > 0) s->out_off += (size_t)w;
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) read_ctl(s);
        if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) read_console(s);
        if (pf[4].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(s->sfd, &si, sizeof si) == sizeof si) {
                s->interrupted = true;
                s->signal = (int)si.ssi_signo;
                return;
            }
        }
        if (pf[2].revents & POLLIN) {
            /* gone: take what it wrote last, then stop */
            s->vmm_gone = true;
            if (s->ctl >= 0) read_ctl(s);
            if (s->con >= 0) read_console(s);
            return;
        }
        if (pf[3].revents & POLLIN) {
            uint64_t x;
            (void)!read(s->tfd, &x, sizeof x);
            if (t2_now_ms() >= deadline_ms) {
                s->timed_out = true;
                return;
            }
            if (s->done) return; /* it did not power off in time: killed */
        }
    }
}


void t2_session_init(session *s) {
    *s = (session){.ctl = -1, .con = -1, .pidfd = -1, .tfd = -1, .sfd = -1, .exit_code = -1,
                   .probes = json_array(), .outputs = json_array(), .errors = json_array(),
                   .so = {.log_fd = -1}, .se = {.log_fd = -1}};
}

void t2_session_done(session *s) {
    sub_buf_free(&s->out);
    sub_buf_free(&s->in);
    sub_buf_free(&s->so.data);
    sub_buf_free(&s->se.data);
    json_decref(s->probes);
    json_decref(s->outputs);
    json_decref(s->errors);
    free(s->outputs_dir);
    s->probes = s->outputs = s->errors = NULL;
    s->outputs_dir = NULL;
}

void t2_session_feed(session *s, const void *p, size_t n) {
    sub_buf_append(&s->in, p, n);
    parse_frames(s);
}

void t2_session_drain(session *s) {
    if (s->ctl >= 0) read_ctl(s);
    if (s->con >= 0) read_console(s);
}

