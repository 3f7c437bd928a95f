/* align: is what runs what the manifest says, and does its signature verify
 * now? Each check is evidence on its own line; the verdict is ALIGNED only
 * when every one passed. */
#include "substrate/fs.h"
#include "substrate/registry.h"
#include "substrate/rootfs.h"
#include "t1-internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sub_t1_check *add_check(sub_t1_align_result *r, const char *name) {
    sub_t1_check *c = &r->checks[r->nchecks++];
    *c = (sub_t1_check){.name = name, .result = 1};
    return c;
}

static void verdict(sub_t1_check *c, int result, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void verdict(sub_t1_check *c, int result, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    c->result = result;
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
}

static void check_process(sub_t1_check *c, const json_t *st, const json_t *cur) {
    const char *status = json_string_value(json_object_get(st, "status"));
    if (!streq(status, "running")) {
        verdict(c, 0, "not running (status: %s)", status ? status : "unknown");
        return;
    }
    pid_t pid = (pid_t)json_integer_value(json_object_get(cur, "pid"));
    unsigned long long t = (unsigned long long)json_integer_value(json_object_get(cur, "pid_start"));
    const char *rootfs = json_string_value(json_object_get(cur, "rootfs"));
    const char *cg = json_string_value(json_object_get(cur, "cgroup"));
    if (pid <= 1 || !t || t1_proc_start_time(pid) != t) {
        verdict(c, 0, "not running: the container's init (pid %d) is gone", (int)pid);
        return;
    }
    const char *rt = json_string_value(json_object_get(json_object_get(cur, "spec"), "runtime"));
    const char *id = json_string_value(json_object_get(cur, "container_id"));
    const char *bundle = json_string_value(json_object_get(cur, "bundle"));
    char how[160];
    if (streq(rt, "runsc")) {
        /* gVisor's sandbox runs in an empty root (its gofer serves the rootfs):
         * the runtime's record of the container is the evidence */
        _cleanup_json_ json_t *rs = NULL;
        if (!id || t1_runtime_state(SUB_RUNTIME_RUNSC, id, &rs, NULL) < 0 ||
            !streq(json_string_value(json_object_get(rs, "status")), "running") ||
            json_integer_value(json_object_get(rs, "pid")) != pid ||
            !streq(json_string_value(json_object_get(rs, "bundle")), bundle)) {
            verdict(c, 0, "runsc does not report container %s running as pid %d from %s", id ? id : "?", (int)pid,
                    bundle ? bundle : "?");
            return;
        }
        snprintf(how, sizeof how, "runsc runs it from bundle gen-%lld",
                 (long long)json_integer_value(json_object_get(cur, "generation")));
    } else {
        if (!rootfs || !t1_proc_root_is(pid, rootfs)) {
            verdict(c, 0, "pid %d does not run in the bundle's root filesystem %s", (int)pid, rootfs ? rootfs : "?");
            return;
        }
        snprintf(how, sizeof how, "root = the bundle's rootfs");
    }
    char have[512];
    t1_proc_cgroup(pid, have, sizeof have);
    size_t hl = strlen(have), cl = cg ? strlen(cg) : 0;
    if (!cg || hl < cl || strcmp(have + hl - cl, cg) != 0) {
        verdict(c, 0, "pid %d is in cgroup %s, not the service's %s", (int)pid, have, cg ? cg : "?");
        return;
    }
    verdict(c, 1, "pid %d alive since its recorded start, %s (%s), cgroup %s", (int)pid, how, rootfs, cg);
}

void t1_signature_now(const sub_svc_manifest *m, const char *digest, const char *cache, bool record_cache,
                      sub_t1_check *c, char key_id[80]) {
    sub_err e = {0};
    _cleanup_reg_ sub_reg *reg = NULL;
    sub_reg_opts ro = {.host = m->ref.registry, .timeout_s = 15};
    int r = sub_reg_new(&ro, &reg, &e);
    if (r == 0) r = record_cache ? t1_admit_check(m, digest, reg, key_id, &e) : t1_admit(m, digest, reg, key_id, &e);
    if (r == 0) {
        verdict(c, 1, "verifies now: signed by key %s", key_id);
        if (record_cache) {
            _cleanup_json_ json_t *v = json_pack("{s:s,s:s,s:I}", "digest", digest, "key_id", key_id, "at_ms",
                                                 (json_int_t)t1_wall_ms());
            _cleanup_free_ char *dir = xstrdup(cache);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            _cleanup_free_ char *txt = sub_json_dump_pretty(v);
            if (sub_mkdir_p(dir, 0755, NULL) == 0) (void)sub_write_file_atomic(cache, txt, strlen(txt), 0644, NULL);
        }
        return;
    }
    if (sub_err_exit_code(&e) == SUB_EXIT_CHECK || sub_err_exit_code(&e) == SUB_EXIT_USAGE) {
        verdict(c, 0, "does not verify now: %s", e.msg);
        return;
    }
    if (e.reason == SUB_R_NO_TRUST_STORE) { /* not the registry: nothing to verify with, here */
        verdict(c, -1, "cannot decide: %s", e.msg);
        return;
    }
    /* the registry cannot be asked: a recent enough verification may stand in */
    _cleanup_json_ json_t *v = NULL;
    if (access(cache, F_OK) == 0) (void)sub_json_load_file(cache, T1_STATE_MAX, &v, NULL);
    int64_t at = v ? json_integer_value(json_object_get(v, "at_ms")) : 0;
    int64_t age = t1_wall_ms() - at;
    if (v && streq(json_string_value(json_object_get(v, "digest")), digest) && at > 0 && age >= 0 &&
        age <= (int64_t)m->verify_max_age_ms) {
        snprintf(key_id, 80, "%s", json_string_value(json_object_get(v, "key_id")) ?: "");
        verdict(c, 1, "registry unreachable (%s); last verified %lld s ago by key %s (maximum age %u s)", e.msg,
                (long long)(age / 1000), key_id, m->verify_max_age_ms / 1000);
        return;
    }
    if (v && at > 0)
        verdict(c, -1, "cannot decide: registry unreachable (%s) and the last verification is %lld s old "
                       "(maximum age %u s)", e.msg, (long long)(age / 1000), m->verify_max_age_ms / 1000);
    else
        verdict(c, -1, "cannot decide: registry unreachable (%s) and no verification on record", e.msg);
}

static void check_rootfs(const json_t *cur, sub_t1_check *c, char ***reasons) {
    const char *entry = json_string_value(json_object_get(cur, "entry_dir"));
    sub_rootfs_diff d = {0};
    sub_err e = {0};
    if (!entry || sub_rootfs_check(entry, &d, &e) < 0) {
        verdict(c, 0, "cannot read the unpacked image: %s", entry ? e.msg : "no entry on record");
        return;
    }
    if (!d.n) {
        verdict(c, 1, "the root filesystem equals its content list");
    } else {
        verdict(c, 0, "%zu difference%s from the content list, first: %s %s", d.n, d.n == 1 ? "" : "s",
                sub_rootfs_change_str(d.items[0].change), d.items[0].path);
        for (size_t i = 0; i < d.n; i++) {
            _cleanup_free_ char *s = d.items[i].change == SUB_ROOTFS_CHANGED
                                         ? xasprintf("rootfs: %s changed (%s)", d.items[i].path, d.items[i].what)
                                         : xasprintf("rootfs: %s %s", d.items[i].path,
                                                     sub_rootfs_change_str(d.items[i].change));
            strv_push(reasons, s);
        }
    }
    sub_rootfs_diff_done(&d);
}

json_t *sub_t1_align_json(const sub_t1_align_result *r) {
    json_t *checks = json_array();
    for (size_t i = 0; i < r->nchecks; i++)
        json_array_append_new(checks, json_pack("{s:s,s:s,s:s}", "check", r->checks[i].name, "result",
                                                r->checks[i].result > 0 ? "pass" : r->checks[i].result == 0 ? "fail" : "undecided",
                                                "detail", r->checks[i].detail));
    json_t *reasons = json_array();
    for (char **p = r->reasons; p && *p; p++) json_array_append_new(reasons, json_string(*p));
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:f,s:b}", "service", r->service, "verdict",
                     r->aligned ? "ALIGNED" : r->undecided ? "UNDECIDED" : "DRIFT", "manifest_digest", r->manifest_digest,
                     "running_digest", r->running_digest, "key_id", r->key_id, "checks", checks, "reasons", reasons,
                     "seconds", r->seconds, "halted", r->halted);
}

void sub_t1_align_result_done(sub_t1_align_result *r) {
    strv_free(r->reasons);
    r->reasons = NULL;
}

int sub_t1_align(const sub_t1_align_opts *o, sub_t1_align_result *res, sub_err *e) {
    const sub_svc_manifest *m = o->m;
    *res = (sub_t1_align_result){0};
    int64_t t0 = t1_now_ms();
    snprintf(res->service, sizeof res->service, "%s", m->name);
    snprintf(res->manifest_digest, sizeof res->manifest_digest, "%s", m->ref.digest);
    _cleanup_json_ json_t *st = NULL;
    int r = t1_read_json(m->name, "state.json", &st, e);
    if (r == -ENOENT || (r == 0 && !json_is_object(json_object_get(st, "current"))))
        return sub_err_setr(e, SUB_R_NOT_RECONCILED, SUB_KIND_INPUT, -ENOENT,
                            "%s was never reconciled (no running version on record): run `substrate "
                            "reconcile %s` first",
                            m->name, m->path ? m->path : "MANIFEST");
    if (r < 0) return r;
    json_t *cur = json_object_get(st, "current");
    const char *running = json_string_value(json_object_get(cur, "digest"));
    snprintf(res->running_digest, sizeof res->running_digest, "%s", running ? running : "");
    res->reasons = xcalloc(1, sizeof *res->reasons);

    sub_t1_check *c = add_check(res, "digest");
    if (streq(running, m->ref.digest)) verdict(c, 1, "running %s = manifest", running);
    else verdict(c, 0, "manifest pins %s, running %s", m->ref.digest, running ? running : "nothing");

    c = add_check(res, "process");
    check_process(c, st, cur);

    c = add_check(res, "signature");
    _cleanup_free_ char *cache = sub_t1_svc_path(m->name, "verified.json");
    t1_signature_now(m, running && *running ? running : m->ref.digest, cache, false, c, res->key_id);

    if (o->deep) {
        c = add_check(res, "rootfs");
        check_rootfs(cur, c, &res->reasons);
    }
    bool failed = false, undecided = false;
    for (size_t i = 0; i < res->nchecks; i++) {
        if (res->checks[i].result == 0) {
            failed = true;
            if (!streq(res->checks[i].name, "rootfs")) {
                _cleanup_free_ char *s = xasprintf("%s: %s", res->checks[i].name, res->checks[i].detail);
                strv_push(&res->reasons, s);
            }
        }
        if (res->checks[i].result < 0) undecided = true;
    }
    res->aligned = !failed && !undecided;
    res->undecided = !failed && undecided;
    if (failed && o->act && !o->in_supervisor && m->on_drift == SUB_DRIFT_HALT) {
        _cleanup_json_ json_t *rep = NULL;
        if (sub_t1_control(m->name, "halt", 120000, &rep, NULL) == 0 && json_is_true(json_object_get(rep, "ok")))
            res->halted = true;
    }
    res->seconds = (double)(t1_now_ms() - t0) / 1000.0;
    _cleanup_json_ json_t *j = sub_t1_align_json(res);
    _cleanup_free_ char *at = t1_iso_time(t1_wall_ms());
    json_object_set_new(j, "at", json_string(at));
    (void)t1_write_json(m->name, "align.json", j, NULL);
    return 0;
}
