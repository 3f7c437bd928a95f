/* The supervisor of one Tier-1 service (s6-supervise's job, plus adoption,
 * exponential backoff, probes, the port publisher and periodic alignment).
 *
 * One event loop: the signalfd, the control socket and the container's
 * pidfd, with timers for restart, health probes, alignment and log
 * rotation. A deploy request runs to its end inside the loop (the proxy
 * keeps serving the current version on its own thread meanwhile). */
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "substrate/svcnet.h"
#include "t1-internal.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct svc {
    const char *name;
    int lockfd, ctlfd, sigfd, logfd;
    sub_svc_manifest m; /* the spec of the current generation */
    bool have_m;
    t1_ctr cur;
    bool have_cur;
    sub_proxy *proxy;
    sub_svc_port *proxy_ports;
    size_t proxy_nports;
    char status[16];    /* starting running backoff exited halted stopped */
    unsigned restarts;
    int64_t next_restart;
    uint32_t backoff;
    int health_fails;
    char health[16];    /* unknown healthy unhealthy */
    char health_detail[256];
    int64_t next_health;
    int64_t next_align, next_deep, next_logcheck;
    json_t *last_align;
    char last_error[1200];
    uint64_t log_max;
    bool quit;
    pid_t esc_pid;      /* the escalation broker (0: none) */
    int esc_pidfd;
    int64_t esc_next_start;
} svc;

#define INF_MS INT64_MAX

static void set_status(svc *s, const char *st) { snprintf(s->status, sizeof s->status, "%s", st); }

static void write_state(svc *s) {
    _cleanup_json_ json_t *j = json_object();
    json_object_set_new(j, "name", json_string(s->name));
    json_object_set_new(j, "status", json_string(s->status));
    json_object_set_new(j, "supervisor_pid", json_integer(getpid()));
    json_object_set_new(j, "current", s->have_cur ? t1_ctr_json(&s->cur) : json_null());
    json_object_set_new(j, "restarts", json_integer(s->restarts));
    json_object_set_new(j, "health", json_string(s->health));
    json_object_set_new(j, "health_detail", json_string(s->health_detail));
    json_object_set_new(j, "last_error", json_string(s->last_error));
    if (s->last_align) json_object_set(j, "last_align", s->last_align);
    if (s->proxy) {
        unsigned long long acc = 0, failed = 0;
        sub_proxy_counters(s->proxy, &acc, &failed);
        json_object_set_new(j, "proxy", json_pack("{s:I,s:I}", "accepted", (json_int_t)acc, "failed", (json_int_t)failed));
    }
    _cleanup_free_ char *t = t1_iso_time(t1_wall_ms());
    json_object_set_new(j, "updated", json_string(t));
    (void)t1_write_json(s->name, "state.json", j, NULL);
}

static int spec_of(json_t *rec, sub_svc_manifest *m, sub_err *e) {
    json_t *spec = json_object_get(rec, "spec");
    if (!json_is_object(spec)) return sub_err_set(e, -EBADMSG, "the desired record has no spec");
    _cleanup_free_ char *s = sub_json_dump(spec, NULL);
    return sub_svc_manifest_from_json(s, strlen(s), m, e);
}

static bool host_net(const sub_svc_manifest *m) { return m->network == SUB_NET_HOST; }

/* ---- the port publisher ---- */
static bool ports_equal(const svc *s, const sub_svc_manifest *m) {
    if (s->proxy_nports != m->nports) return false;
    for (size_t i = 0; i < m->nports; i++)
        if (strcmp(s->proxy_ports[i].host_addr, m->ports[i].host_addr) ||
            s->proxy_ports[i].host_port != m->ports[i].host_port ||
            s->proxy_ports[i].container_port != m->ports[i].container_port)
            return false;
    return true;
}

static void proxy_close(svc *s) {
    sub_proxy_stop(s->proxy);
    s->proxy = NULL;
    free(s->proxy_ports);
    s->proxy_ports = NULL;
    s->proxy_nports = 0;
}

static int proxy_ensure(svc *s, const sub_svc_manifest *m, sub_err *e) {
    if (host_net(m) || !m->nports) {
        if (s->proxy) proxy_close(s);
        return 0;
    }
    if (s->proxy && ports_equal(s, m)) return 0;
    if (s->proxy) proxy_close(s); /* the published ports changed: a short gap */
    int r = sub_proxy_start(m->ports, m->nports, &s->proxy, e);
    if (r < 0) return r;
    s->proxy_ports = xcalloc(m->nports, sizeof *m->ports);
    memcpy(s->proxy_ports, m->ports, m->nports * sizeof *m->ports);
    s->proxy_nports = m->nports;
    return 0;
}

static void proxy_point(svc *s, t1_ctr *c) {
    if (!s->proxy) return;
    int g = sub_proxy_set_target(s->proxy, c ? c->netns_fd : -1, NULL);
    if (c && g > 0) c->proxy_gen = (unsigned)g;
}

/* ---- probes ---- */
static int probe(const sub_svc_manifest *m, const sub_probe_spec *p, t1_ctr *c, sub_probe_result *res) {
    _cleanup_strv_ char **rt = t1_runtime_argv(m->runtime);
    sub_err e = {0};
    int r = sub_probe_run(p, c->netns_fd, rt, c->id, res, &e);
    if (r < 0) {
        res->ok = false;
        snprintf(res->detail, sizeof res->detail, "%.250s", e.msg);
    }
    return r;
}

static void rotate_logs(svc *s);

/* Wait until c is ready (its readiness probe passes; without one, its health
 * probe; without either, it is running), up to the readiness deadline. */
static int wait_ready(svc *s, const sub_svc_manifest *m, t1_ctr *c, sub_err *e) {
    const sub_probe_spec *p = m->readiness.kind != SUB_PROBE_NONE ? &m->readiness
                              : m->health.kind != SUB_PROBE_NONE ? &m->health
                                                                 : NULL;
    uint32_t deadline = m->readiness.kind != SUB_PROBE_NONE ? m->readiness.deadline_ms : 0;
    if (!deadline && p) deadline = p->start_period_ms + p->failure_threshold * p->interval_ms;
    if (!deadline) deadline = 1000;
    int64_t end = t1_now_ms() + deadline;
    uint32_t step = p && p->interval_ms < 250 ? p->interval_ms : 250;
    char last[256] = "no probe answered yet";
    for (;;) {
        if (t1_ctr_exited(c))
            return sub_err_setr(e, SUB_R_NOT_READY, SUB_KIND_CHECK, -ETIMEDOUT,
                                "%s (generation %lu, %s) exited before it was ready; see `substrate logs %s`",
                                s->name, c->gen, c->digest, s->name);
        if (!p) {
            if (t1_now_ms() >= end) return 0; /* running for the whole (short) deadline */
        } else {
            sub_probe_result res = {0};
            probe(m, p, c, &res);
            if (res.ok) return 0;
            snprintf(last, sizeof last, "%s", res.detail);
        }
        if (t1_now_ms() >= end) break;
        rotate_logs(s); /* the loop's own rotation waits for the deploy */
        t1_sleep_ms((int)step);
    }
    return sub_err_setr(e, SUB_R_NOT_READY, SUB_KIND_CHECK, -ETIMEDOUT,
                        "%s (generation %lu, %s) was not ready within %u ms: last probe: %s", s->name,
                        c->gen, c->digest, deadline, last);
}

/* ---- logs ---- */
static void rotate_logs(svc *s) {
    struct stat st;
    if (fstat(s->logfd, &st) < 0 || (uint64_t)st.st_size <= s->log_max) return;
    _cleanup_free_ char *cur = sub_t1_svc_path(s->name, "logs/current");
    for (int i = T1_LOG_KEEP - 1; i > 1; i--) {
        _cleanup_free_ char *from = xasprintf("%s.%d", cur, i - 1);
        _cleanup_free_ char *to = xasprintf("%s.%d", cur, i);
        (void)rename(from, to);
    }
    _cleanup_free_ char *one = xasprintf("%s.1", cur);
    /* copy, then truncate: the container holds the file open (O_APPEND), so a
     * rename would only move its writes along. Only the last log_max bytes are
     * kept, so a rotated file never exceeds the cap. */
    _cleanup_close_ int rfd = open(cur, O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
        size_t keep = (size_t)((uint64_t)st.st_size < s->log_max ? (uint64_t)st.st_size : s->log_max);
        _cleanup_free_ char *tail = xmalloc(keep + 1);
        ssize_t n = pread(rfd, tail, keep, st.st_size - (off_t)keep);
        if (n > 0) (void)sub_write_file_atomic(one, tail, (size_t)n, 0640, NULL);
    }
    if (ftruncate(s->logfd, 0) < 0) {
    }
}

/* ---- starting and stopping the current generation ---- */
static void reset_timers(svc *s) {
    int64_t now = t1_now_ms();
    s->health_fails = 0;
    snprintf(s->health, sizeof s->health, "unknown");
    s->health_detail[0] = 0;
    s->next_health = s->m.health.kind != SUB_PROBE_NONE ? now + s->m.health.start_period_ms + s->m.health.interval_ms : INF_MS;
    s->next_align = s->m.align_interval_ms ? now + s->m.align_interval_ms : INF_MS;
    s->next_deep = s->m.deep_align_interval_ms ? now + s->m.deep_align_interval_ms : INF_MS;
}

static int start_current(svc *s, sub_err *e) {
    int r = t1_ctr_start(&s->cur, s->m.runtime, s->logfd, e);
    if (r < 0) return r;
    proxy_point(s, &s->cur);
    set_status(s, "running");
    reset_timers(s);
    return 0;
}

static void schedule_restart(svc *s, const char *why) {
    int64_t ran = t1_wall_ms() - s->cur.started_ms;
    if (ran > 10000) s->backoff = s->m.backoff_initial_ms; /* it had been up a while */
    s->next_restart = t1_now_ms() + s->backoff;
    snprintf(s->last_error, sizeof s->last_error, "%s; restart in %u ms", why, s->backoff);
    s->backoff = s->backoff * 2 > s->m.backoff_max_ms ? s->m.backoff_max_ms : s->backoff * 2;
    set_status(s, "backoff");
}

static void on_exit_of_current(svc *s) {
    int code = -1;
    int st;
    if (waitpid(s->cur.pid, &st, WNOHANG) == s->cur.pid)
        code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    proxy_point(s, NULL); /* new connections wait for the restart */
    t1_ctr_stop(&s->cur, s->m.runtime, 0);
    char why[128];
    if (code >= 0) snprintf(why, sizeof why, "the container exited with status %d", code);
    else snprintf(why, sizeof why, "the container exited");
    bool again = s->m.restart == SUB_RESTART_ALWAYS || (s->m.restart == SUB_RESTART_ON_FAILURE && code != 0);
    if (again) {
        schedule_restart(s, why);
    } else {
        snprintf(s->last_error, sizeof s->last_error, "%s; restart: %s", why, sub_svc_restart_str(s->m.restart));
        set_status(s, "exited");
    }
    write_state(s);
}

static void stop_current(svc *s, const char *status) {
    proxy_point(s, NULL);
    if (s->have_cur) t1_ctr_stop(&s->cur, s->m.runtime, s->m.stop_grace_ms);
    set_status(s, status);
}

/* ---- the escalation broker (escalate.c) ----
 * A process of its own, started for a generation with an escalate: policy
 * and kept while the service is meant to run; it gets SIGTERM when this
 * supervisor goes (parent-death signal), so it never outlives it. */
#define ESC_BROKER_STOP_MS 40000 /* its running jobs are cancelled, torn down and audited first */

static bool esc_wanted(const svc *s) {
    return s->have_m && s->m.escalate.enabled && !streq(s->status, "stopped") && !streq(s->status, "halted") &&
           !streq(s->status, "exited") && !streq(s->status, "idle");
}

static void esc_start(svc *s) {
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) return;
    self[k] = 0;
    char *argv[] = {self, "supervise", "--escalation", (char *)s->name, NULL};
    _cleanup_free_ char *log = sub_t1_svc_path(s->name, "logs/escalate.log");
    _cleanup_close_ int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdin_fd = SUB_FD_NULL;
    o.stdout_fd = fd >= 0 ? fd : SUB_FD_NULL;
    o.stderr_fd = fd >= 0 ? fd : SUB_FD_NULL;
    o.pdeathsig = SIGTERM;
    sub_err e = {0};
    pid_t pid;
    if (sub_spawn(argv, &o, &pid, &e) < 0) {
        snprintf(s->last_error, sizeof s->last_error, "escalation broker: %s", e.msg);
        return;
    }
    s->esc_pid = pid;
    s->esc_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
}

static void esc_gone(svc *s) {
    if (s->esc_pidfd >= 0) close(s->esc_pidfd);
    s->esc_pidfd = -1;
    s->esc_pid = 0;
}

/* SIGTERM, then wait while it cancels and audits its jobs; SIGKILL after. */
static void esc_stop(svc *s) {
    if (!s->esc_pid) return;
    if (s->esc_pidfd >= 0) {
        (void)syscall(SYS_pidfd_send_signal, s->esc_pidfd, SIGTERM, NULL, 0);
        struct pollfd pf = {.fd = s->esc_pidfd, .events = POLLIN};
        int64_t end = t1_now_ms() + ESC_BROKER_STOP_MS;
        while (poll(&pf, 1, 250) == 0 && t1_now_ms() < end) rotate_logs(s);
        if (!(pf.revents & POLLIN)) {
            (void)syscall(SYS_pidfd_send_signal, s->esc_pidfd, SIGKILL, NULL, 0);
            (void)poll(&pf, 1, 2000);
        }
    }
    (void)waitpid(s->esc_pid, NULL, WNOHANG);
    esc_gone(s);
}

static void esc_sync(svc *s) {
    bool want = esc_wanted(s);
    if (want && !s->esc_pid && t1_now_ms() >= s->esc_next_start) {
        s->esc_next_start = t1_now_ms() + 1000; /* a broker that dies at once is not restarted in a loop */
        esc_start(s);
    } else if (!want && s->esc_pid) {
        esc_stop(s);
    }
}

/* The broker before a container that has a policy starts: its readiness may
 * wait for the socket (the reference agent's does). A running broker re-reads
 * who the socket belongs to. */
static void esc_before_start(svc *s, const sub_svc_manifest *m) {
    if (!m->escalate.enabled) return;
    if (!s->esc_pid) esc_start(s);
    else if (s->esc_pidfd >= 0) (void)syscall(SYS_pidfd_send_signal, s->esc_pidfd, SIGHUP, NULL, 0);
    s->esc_next_start = t1_now_ms() + 1000;
}

/* ---- deploy ---- */
static json_t *fail_reply(const sub_err *e) {
    return json_pack("{s:b,s:s,s:s,s:i}", "ok", 0, "message", e->msg, "reason",
                     sub_reason_to_string(e->reason) ? sub_reason_to_string(e->reason) : "none", "exit_code",
                     sub_err_exit_code(e));
}

static bool same_version(const svc *s, const json_t *rec) {
    if (!s->have_cur) return false;
    return streq(json_string_value(json_object_get(rec, "digest")), s->cur.digest) &&
           streq(json_string_value(json_object_get(rec, "config_hash")),
                 json_string_value(json_object_get(s->cur.rec, "config_hash")));
}

static json_t *deploy(svc *s) {
    sub_err e = {0};
    _cleanup_json_ json_t *rec = NULL;
    int r = t1_read_json(s->name, "desired.json", &rec, &e);
    if (r < 0) {
        if (r == -ENOENT) sub_err_set(&e, r, "no desired.json: run reconcile");
        return fail_reply(&e);
    }
    bool running = s->have_cur && s->cur.pidfd >= 0 && !t1_ctr_exited(&s->cur);
    if (same_version(s, rec)) {
        if (running) return json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "outcome", "unchanged", "digest", s->cur.digest,
                                      "generation", (json_int_t)s->cur.gen);
        /* same version, not running (halted, exited, backing off, stopped):
         * start it, with its published ports (stop closed them) */
        s->next_restart = INF_MS;
        r = proxy_ensure(s, &s->m, &e);
        esc_before_start(s, &s->m);
        if (r >= 0) r = start_current(s, &e);
        if (r < 0) {
            snprintf(s->last_error, sizeof s->last_error, "%s", e.msg);
            write_state(s);
            return fail_reply(&e);
        }
        r = wait_ready(s, &s->m, &s->cur, &e);
        write_state(s);
        if (r < 0) return fail_reply(&e);
        return json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "outcome", "restarted", "digest", s->cur.digest, "generation",
                         (json_int_t)s->cur.gen);
    }
    _cleanup_svc_manifest_ sub_svc_manifest nm = {0};
    r = spec_of(rec, &nm, &e);
    if (r < 0) return fail_reply(&e);
    r = t1_runtime_usable(nm.runtime, &e);
    if (r < 0) return fail_reply(&e);
    r = proxy_ensure(s, &nm, &e);
    if (r < 0) return fail_reply(&e);

    bool stop_first = running && (host_net(&nm) || (s->have_m && host_net(&s->m)));
    char previous[80] = "";
    if (s->have_cur) snprintf(previous, sizeof previous, "%s", s->cur.digest);
    if (stop_first) stop_current(s, "starting");
    if (running && !stop_first) set_status(s, "running");
    else set_status(s, "starting");
    write_state(s);

    esc_before_start(s, &nm);
    t1_ctr nc;
    t1_ctr_init(&nc, rec);
    r = t1_ctr_start(&nc, nm.runtime, s->logfd, &e);
    if (r >= 0) r = wait_ready(s, &nm, &nc, &e);
    if (r < 0) {
        t1_ctr_stop(&nc, nm.runtime, 0);
        t1_ctr_done(&nc);
        json_t *rep = fail_reply(&e);
        if (stop_first && s->have_cur) { /* roll back: the old version again */
            sub_err e2 = {0};
            if (start_current(s, &e2) < 0 || wait_ready(s, &s->m, &s->cur, &e2) < 0)
                snprintf(s->last_error, sizeof s->last_error, "rollback failed too: %s", e2.msg);
        } else if (!running) {
            set_status(s, s->have_cur ? "backoff" : "exited");
        } else {
            set_status(s, "running");
        }
        json_object_set_new(rep, "rolled_back", json_boolean(s->have_cur && strcmp(s->status, "running") == 0));
        json_object_set_new(rep, "serving", json_string(s->have_cur && !strcmp(s->status, "running") ? s->cur.digest : ""));
        write_state(s);
        return rep;
    }
    /* the new version is ready: traffic moves to it, then the old one goes */
    proxy_point(s, &nc);
    if (running && !stop_first) {
        int64_t end = t1_now_ms() + s->m.stop_grace_ms;
        while (s->proxy && s->cur.proxy_gen && sub_proxy_open_connections(s->proxy, s->cur.proxy_gen) > 0 &&
               t1_now_ms() < end) {
            rotate_logs(s);
            t1_sleep_ms(20);
        }
        t1_ctr_stop(&s->cur, s->m.runtime, s->m.stop_grace_ms);
    }
    if (s->have_cur) t1_ctr_done(&s->cur);
    s->cur = nc;
    s->have_cur = true;
    if (s->have_m) sub_svc_manifest_done(&s->m);
    s->m = nm;
    nm = (sub_svc_manifest){0};
    s->have_m = true;
    s->backoff = s->m.backoff_initial_ms;
    s->next_restart = INF_MS;
    s->last_error[0] = 0;
    set_status(s, "running");
    reset_timers(s);
    write_state(s);
    if (s->esc_pidfd >= 0) /* the broker re-reads what runs: its user, its policy */
        (void)syscall(SYS_pidfd_send_signal, s->esc_pidfd, SIGHUP, NULL, 0);
    const char *outcome = previous[0] ? (streq(previous, s->cur.digest) ? "restarted" : "promoted") : "started";
    return json_pack("{s:b,s:s,s:s,s:s,s:I,s:b}", "ok", 1, "outcome", outcome, "digest", s->cur.digest, "previous",
                     previous, "generation", (json_int_t)s->cur.gen, "stop_then_start", stop_first);
}

/* ---- alignment in the supervisor ---- */
static json_t *align_now(svc *s, bool deep) {
    if (!s->have_m) return json_pack("{s:b,s:s}", "ok", 0, "message", "nothing deployed");
    sub_t1_align_opts ao = {.m = &s->m, .deep = deep, .act = false, .in_supervisor = true};
    sub_t1_align_result res = {0};
    sub_err e = {0};
    int r = sub_t1_align(&ao, &res, &e);
    json_t *j;
    if (r < 0) {
        j = fail_reply(&e);
    } else {
        j = sub_t1_align_json(&res);
        json_object_set_new(j, "ok", json_true());
        json_decref(s->last_align);
        s->last_align = json_pack("{s:s,s:b,s:s}", "result", res.aligned ? "ALIGNED" : res.undecided ? "UNDECIDED" : "DRIFT",
                                  "deep", deep, "at", "");
        _cleanup_free_ char *t = t1_iso_time(t1_wall_ms());
        json_object_set_new(s->last_align, "at", json_string(t));
        if (res.reasons) {
            json_t *a = json_array();
            for (char **p = res.reasons; *p; p++) json_array_append_new(a, json_string(*p));
            json_object_set_new(s->last_align, "reasons", a);
        }
        if (!res.aligned && !res.undecided && s->m.on_drift == SUB_DRIFT_HALT && strcmp(s->status, "halted")) {
            stop_current(s, "halted");
            snprintf(s->last_error, sizeof s->last_error, "halted on DRIFT: %s",
                     res.reasons && res.reasons[0] ? res.reasons[0] : "drift");
            json_object_set_new(j, "halted", json_true());
        }
        write_state(s);
    }
    sub_t1_align_result_done(&res);
    return j;
}

/* ---- the control socket ---- */
static void handle_control(svc *s) {
    int fd = accept4(s->ctlfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return;
    _cleanup_json_ json_t *req = NULL;
    _cleanup_json_ json_t *rep = NULL;
    sub_err e = {0};
    if (t1_control_read(fd, 2000, &req, &e) < 0) {
        rep = fail_reply(&e);
    } else {
        const char *op = json_string_value(json_object_get(req, "op"));
        if (streq(op, "status")) {
            write_state(s);
            (void)t1_read_json(s->name, "state.json", &rep, &e);
            if (rep) json_object_set_new(rep, "ok", json_true());
        } else if (streq(op, "deploy")) {
            rep = deploy(s);
        } else if (streq(op, "stop")) {
            bool was = s->have_cur && s->cur.pidfd >= 0;
            esc_stop(s); /* its running jobs end (cancelled, audited) before the service */
            stop_current(s, "stopped");
            proxy_close(s);
            s->next_restart = INF_MS;
            write_state(s);
            rep = json_pack("{s:b,s:b}", "ok", 1, "was_running", was);
            s->quit = true;
        } else if (streq(op, "halt")) {
            bool was = s->have_cur && s->cur.pidfd >= 0;
            esc_stop(s);
            stop_current(s, "halted");
            s->next_restart = INF_MS;
            snprintf(s->last_error, sizeof s->last_error, "halted on DRIFT (align, on_drift: halt)");
            write_state(s);
            rep = json_pack("{s:b,s:b}", "ok", 1, "was_running", was);
        } else if (streq(op, "restart")) {
            if (!s->have_cur) {
                rep = json_pack("{s:b,s:s}", "ok", 0, "message", "nothing deployed");
            } else {
                stop_current(s, "starting");
                if (start_current(s, &e) < 0) rep = fail_reply(&e);
                else rep = json_pack("{s:b}", "ok", 1);
                write_state(s);
            }
        } else if (streq(op, "align") || streq(op, "align-deep")) {
            rep = align_now(s, streq(op, "align-deep"));
        } else {
            rep = json_pack("{s:b,s:s}", "ok", 0, "message", "unknown op");
        }
    }
    if (!rep) rep = fail_reply(&e);
    t1_control_reply(fd, rep);
    close(fd);
}

/* ---- startup: adopt or start what the state says ---- */
static void resume(svc *s) {
    _cleanup_json_ json_t *st = NULL;
    if (t1_read_json(s->name, "state.json", &st, NULL) < 0 || !st) return;
    const char *status = json_string_value(json_object_get(st, "status"));
    json_t *cur = json_object_get(st, "current");
    if (!json_is_object(cur)) return;
    sub_err e = {0};
    if (spec_of(cur, &s->m, &e) < 0) {
        snprintf(s->last_error, sizeof s->last_error, "state.json: %s", e.msg);
        return;
    }
    s->have_m = true;
    t1_ctr_init(&s->cur, cur);
    s->have_cur = true;
    s->restarts = (unsigned)json_integer_value(json_object_get(st, "restarts"));
    s->backoff = s->m.backoff_initial_ms;
    json_t *la = json_object_get(st, "last_align");
    if (la) s->last_align = json_incref(la);
    if (streq(status, "stopped") || streq(status, "halted") || streq(status, "exited") ||
        streq(status, "pending")) {
        /* pending: reconcile brought back a stopped service and deploys next */
        set_status(s, streq(status, "pending") ? "stopped" : status);
        return;
    }
    (void)proxy_ensure(s, &s->m, &e);
    if (t1_ctr_adopt(&s->cur, s->m.runtime, host_net(&s->m), &e) == 0) {
        proxy_point(s, &s->cur);
        set_status(s, "running");
        reset_timers(s);
        return;
    }
    /* not running any more (or not what we started): start it again */
    t1_ctr_stop(&s->cur, s->m.runtime, 0);
    if (start_current(s, &e) < 0) {
        snprintf(s->last_error, sizeof s->last_error, "%s", e.msg);
        s->cur.started_ms = t1_wall_ms();
        schedule_restart(s, e.msg);
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static void tick(svc *s) {
    int64_t now = t1_now_ms();
    if (now >= s->next_restart && streq(s->status, "backoff")) {
        s->next_restart = INF_MS;
        sub_err e = {0};
        s->restarts++;
        if (start_current(s, &e) < 0) schedule_restart(s, e.msg);
        write_state(s);
    }
    if (now >= s->next_health && streq(s->status, "running")) {
        sub_probe_result res = {0};
        probe(&s->m, &s->m.health, &s->cur, &res);
        snprintf(s->health_detail, sizeof s->health_detail, "%s", res.detail);
        s->next_health = t1_now_ms() + s->m.health.interval_ms;
        if (res.ok) {
            s->health_fails = 0;
            snprintf(s->health, sizeof s->health, "healthy");
        } else if (++s->health_fails >= (int)s->m.health.failure_threshold) {
            snprintf(s->health, sizeof s->health, "unhealthy");
            proxy_point(s, NULL);
            t1_ctr_stop(&s->cur, s->m.runtime, s->m.stop_grace_ms);
            schedule_restart(s, "the health probe failed");
        }
        write_state(s);
    }
    if (now >= s->next_align && s->have_m) {
        s->next_align = s->m.align_interval_ms ? t1_now_ms() + s->m.align_interval_ms : INF_MS;
        json_decref(align_now(s, false));
    }
    if (now >= s->next_deep && s->have_m) {
        s->next_deep = s->m.deep_align_interval_ms ? t1_now_ms() + s->m.deep_align_interval_ms : INF_MS;
        json_decref(align_now(s, true));
    }
    if (now >= s->next_logcheck) {
        rotate_logs(s);
        s->next_logcheck = t1_now_ms() + 250;
    }
}

static int setup(svc *s, sub_err *e) {
    _cleanup_free_ char *logs = sub_t1_svc_path(s->name, "logs");
    int r = sub_mkdir_p(logs, 0750, e);
    if (r < 0) return r;
    _cleanup_free_ char *lock = sub_t1_svc_path(s->name, "lock");
    s->lockfd = t1_trylock(lock, e);
    if (s->lockfd == -EWOULDBLOCK) return 0;
    if (s->lockfd < 0) return s->lockfd;
    _cleanup_free_ char *logp = sub_t1_svc_path(s->name, "logs/current");
    s->logfd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (s->logfd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "opening %s: %m", logp);
    s->sigfd = t1_signalfd(e);
    if (s->sigfd < 0) return s->sigfd;
    const char *lm = getenv("SUBSTRATE_SERVICE_LOG_MAX");
    s->log_max = lm && *lm ? strtoull(lm, NULL, 10) : T1_LOG_MAX_DEFAULT;
    if (!s->log_max) s->log_max = T1_LOG_MAX_DEFAULT;
    return 1;
}

int sub_t1_service_run(const char *name, sub_err *e) {
    svc s = {.name = name, .lockfd = -1, .ctlfd = -1, .sigfd = -1, .logfd = -1, .esc_pidfd = -1, .next_restart = INF_MS,
             .next_health = INF_MS, .next_align = INF_MS, .next_deep = INF_MS};
    set_status(&s, "idle");
    snprintf(s.health, sizeof s.health, "unknown");
    int r = setup(&s, e);
    if (r <= 0) goto out;
    resume(&s);
    s.ctlfd = t1_control_listen(name, e);
    if (s.ctlfd < 0) {
        r = s.ctlfd;
        goto out;
    }
    write_state(&s);
    while (!s.quit) {
        struct pollfd p[4] = {{.fd = s.sigfd, .events = POLLIN}, {.fd = s.ctlfd, .events = POLLIN},
                              {.fd = s.have_cur ? s.cur.pidfd : -1, .events = POLLIN},
                              {.fd = s.esc_pidfd, .events = POLLIN}};
        int64_t now = t1_now_ms();
        int64_t next = min64(min64(s.next_restart, s.next_health), min64(min64(s.next_align, s.next_deep), s.next_logcheck));
        int timeout = next == INF_MS ? 1000 : (int)(next - now < 0 ? 0 : next - now > 1000 ? 1000 : next - now);
        int n = poll(p, 4, timeout);
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && (p[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(s.sigfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGCHLD) {
                    while (waitpid(-1, NULL, WNOHANG) > 0) {
                    }
                } else {
                    s.quit = true; /* the container keeps running: the next supervisor adopts it */
                }
            }
        }
        if (n > 0 && s.have_cur && s.cur.pidfd >= 0 && (p[2].revents & (POLLIN | POLLHUP)) &&
            streq(s.status, "running"))
            on_exit_of_current(&s);
        if (n > 0 && (p[3].revents & POLLIN)) esc_gone(&s); /* restarted by esc_sync */
        if (n > 0 && (p[1].revents & POLLIN)) handle_control(&s);
        tick(&s);
        esc_sync(&s);
    }
    write_state(&s);
    r = 1;
out:
    if (s.ctlfd >= 0) {
        _cleanup_free_ char *sock = sub_t1_svc_path(name, "control.sock");
        unlink(sock);
        close(s.ctlfd);
    }
    proxy_close(&s);
    if (s.esc_pidfd >= 0) close(s.esc_pidfd); /* the broker follows by its parent-death signal */
    if (s.have_cur) {
        if (s.cur.pidfd >= 0) close(s.cur.pidfd);
        if (s.cur.netns_fd >= 0) close(s.cur.netns_fd);
        json_decref(s.cur.rec);
    }
    if (s.have_m) sub_svc_manifest_done(&s.m);
    json_decref(s.last_align);
    if (s.sigfd >= 0) close(s.sigfd);
    if (s.logfd >= 0) close(s.logfd);
    if (s.lockfd >= 0) close(s.lockfd);
    return r < 0 ? r : 0;
}
