/* reconcile, stop, status: the library steps behind the CLI verbs (and the
 * acceptance harness). */
#include "substrate/admit.h"
#include "substrate/config.h"
#include "substrate/bundle.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/manifest.h"
#include "substrate/registry.h"
#include "substrate/rootfs.h"
#include "t1-internal.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const char *sub_t1_outcome_str(sub_t1_outcome o) {
    switch (o) {
    case SUB_T1_STARTED: return "started";
    case SUB_T1_UNCHANGED: return "unchanged";
    case SUB_T1_PROMOTED: return "promoted";
    case SUB_T1_RESTARTED: return "restarted";
    }
    return "?";
}

#define NOTE(o, ...)                                                                               \
    do {                                                                                           \
        if ((o)->note) (o)->note((o)->ud, __VA_ARGS__);                                            \
    } while (0)

/* ---- keys named by the manifest ---- */
char **t1_key_files(const sub_svc_manifest *m) {
    if (!m->keys || !m->keys[0]) return NULL; /* the trust store */
    _cleanup_free_ char *trust = sub_state_path("trust");
    char **v = NULL;
    for (char **p = m->keys; *p; p++) {
        if ((*p)[0] == '/') {
            strv_push(&v, *p);
        } else {
            const char *hex = str_has_prefix(*p, "sha256:") ? *p + 7 : *p;
            _cleanup_free_ char *f = xasprintf("%s/%s.pub", trust, hex);
            strv_push(&v, f);
        }
    }
    return v;
}

int t1_load_keys(const sub_svc_manifest *m, sub_pubkey ***keys, size_t *n, sub_err *e) {
    *keys = NULL;
    *n = 0;
    _cleanup_strv_ char **files = t1_key_files(m);
    if (!files) return 0; /* the trust store */
    sub_pubkey **v = xcalloc(strv_len(files) + 1, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; files[i]; i++) {
        int r = sub_pubkey_load_file(files[i], &v[k], e);
        if (r < 0) {
            sub_err_prefix(e, "manifest %s: key %s", m->path ? m->path : m->name, m->keys[i]);
            sub_pubkeys_free(v);
            return r;
        }
        k++;
    }
    *keys = v;
    *n = k;
    return 0;
}

static const char *verified_key(const sub_admission *ad) {
    if (ad->sig.verified < 0 || (size_t)ad->sig.verified >= ad->sig.n_records) return "";
    return ad->sig.records[ad->sig.verified].key_id;
}

int sub_t1_admit_manifest(const sub_svc_manifest *m, const char *digest, sub_reg *reg, sub_admission *ad,
                          sub_err *e) {
    memset(ad, 0, sizeof *ad);
    sub_pubkey **keys = NULL;
    size_t nkeys = 0;
    int r = t1_load_keys(m, &keys, &nkeys, e);
    if (r < 0) return r;
    sub_ref ref = m->ref;
    if (digest) ref.digest = (char *)digest;
    sub_admit_opts ao = {.ref = &ref, .reg = reg, .keys = (const sub_pubkey *const *)keys, .nkeys = nkeys,
                         .identity = m->identity, .policy = m->policy};
    r = sub_admit_image(&ao, ad, e);
    if (keys) ad->owned_keys = keys; /* ad->keys points at them: ad frees them */
    return r;
}

/* Check the signature of digest under m's policy (admission); on success the
 * verifying key is in key_id. Records nothing. */
int t1_admit_check(const sub_svc_manifest *m, const char *digest, sub_reg *reg, char key_id[80], sub_err *e) {
    _cleanup_admission_ sub_admission ad = {0};
    int r = sub_t1_admit_manifest(m, digest, reg, &ad, e);
    if (r == 0) snprintf(key_id, 80, "%.79s", verified_key(&ad));
    return r;
}

/* t1_admit_check, and a pass is recorded (verified.json). */
int t1_admit(const sub_svc_manifest *m, const char *digest, sub_reg *reg, char key_id[80], sub_err *e) {
    int r = t1_admit_check(m, digest, reg, key_id, e);
    if (r == 0) {
        _cleanup_json_ json_t *v = json_pack("{s:s,s:s,s:I}", "digest", digest, "key_id", key_id, "at_ms",
                                             (json_int_t)t1_wall_ms());
        _cleanup_free_ char *dir = sub_t1_svc_path(m->name, NULL);
        if (sub_mkdir_p(dir, 0755, NULL) == 0) (void)t1_write_json(m->name, "verified.json", v, NULL);
    }
    return r;
}

/* The escalate: policy's job image must verify now, as it will at every job
 * (its own repository's identity, the manifest's keys): a policy naming an
 * image nobody trusts is refused at deploy rather than at the first request. */
static int admit_job_image(const sub_svc_manifest *m, char key_id[80], sub_err *e) {
    sub_pubkey **keys = NULL;
    size_t nkeys = 0;
    int r = t1_load_keys(m, &keys, &nkeys, e);
    if (r < 0) return r;
    _cleanup_reg_ sub_reg *reg = NULL; /* no keys named: the trust store (sub_admit_image loads it) */
    sub_reg_opts ro = {.host = m->escalate.ref.registry};
    r = sub_reg_new(&ro, &reg, e);
    if (r == 0) {
        sub_admit_opts ao = {.ref = &m->escalate.ref, .reg = reg, .keys = (const sub_pubkey *const *)keys,
                             .nkeys = nkeys, .identity = NULL, .policy = SUB_IDENTITY_EXACT};
        _cleanup_admission_ sub_admission ad = {0};
        r = sub_admit_image(&ao, &ad, e);
        if (r == 0) snprintf(key_id, 80, "%.79s", verified_key(&ad));
    }
    sub_pubkeys_free(keys);
    return r;
}

/* ---- image -> rootfs ---- */

static unsigned long next_generation(const char *name) {
    unsigned long g = 0;
    _cleanup_free_ char *dir = sub_t1_svc_path(name, NULL);
    DIR *d = opendir(dir);
    if (!d) return 1;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!str_has_prefix(de->d_name, "gen-")) continue;
        unsigned long x = strtoul(de->d_name + 4, NULL, 10);
        if (x > g) g = x;
    }
    closedir(d);
    _cleanup_json_ json_t *st = NULL;
    if (t1_read_json(name, "state.json", &st, NULL) == 0 && st) {
        unsigned long c = (unsigned long)json_integer_value(json_object_get(json_object_get(st, "current"), "generation"));
        if (c > g) g = c;
    }
    return g + 1;
}

/* Remove the bundles of generations other than keep (and the one running). */
static void prune_bundles(const char *name, unsigned long keep) {
    _cleanup_free_ char *dir = sub_t1_svc_path(name, NULL);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!str_has_prefix(de->d_name, "gen-")) continue;
        if (strtoul(de->d_name + 4, NULL, 10) == keep) continue;
        _cleanup_free_ char *p = sub_path_join(dir, de->d_name);
        (void)sub_rm_rf(p, NULL);
    }
    closedir(d);
}

static int wait_supervisor(const char *name, sub_err *e) {
    _cleanup_free_ char *lock = sub_t1_svc_path(name, "lock");
    for (int i = 0; i < 1000; i++) {
        if (t1_lock_held(lock)) {
            _cleanup_json_ json_t *rep = NULL;
            if (sub_t1_control(name, "status", 5000, &rep, NULL) == 0) return 0;
        }
        t1_sleep_ms(20);
    }
    _cleanup_free_ char *log = sub_t1_path("supervise.log");
    return sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "the supervisor of %s did not come up in 20 s; see %s",
                        name, log);
}

static int lock_reconcile(const char *name, sub_err *e) {
    _cleanup_free_ char *p = sub_t1_svc_path(name, "reconcile.lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "opening %s: %m", p);
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            close(fd);
            return sub_err_setk(e, SUB_KIND_ENV, -errno, "locking %s: %m", p);
        }
    return fd;
}

static json_t *desired_record(const sub_svc_manifest *m, unsigned long gen, const char *digest,
                              const sub_rootfs_info *ri, const char *hash, const char *key_id) {
    _cleanup_free_ char *specs = sub_svc_manifest_to_json(m);
    json_t *spec = json_loads(specs, 0, NULL);
    _cleanup_free_ char *image = xasprintf("%s/%s@%s", m->ref.registry, m->ref.repository, digest);
    _cleanup_free_ char *bundle = sub_t1_svc_path(m->name, NULL);
    _cleanup_free_ char *gdir = xasprintf("%s/gen-%lu", bundle, gen);
    _cleanup_free_ char *id = xasprintf("substrate-%s-%lu", m->name, gen);
    /* cgroups are host-wide: the state dir's hash keeps two state dirs (a test
     * and the demo, say) with a service of the same name apart */
    char sh[SUB_DIGEST_MAX];
    const char *state = sub_state_dir();
    (void)sub_sha256_buf(state, strlen(state), sh, NULL);
    _cleanup_free_ char *cg = xasprintf("/substrate/%s-%lu.%.8s", m->name, gen, sub_digest_hex(sh));
    /* manifest_digest: the file that asked for this generation (an escalated
     * job's report names it) */
    return json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "name", m->name, "generation",
                     (json_int_t)gen, "digest", digest, "image", image, "bundle", gdir, "rootfs", ri->rootfs,
                     "entry_dir", ri->entry_dir, "config_hash", hash, "container_id", id, "cgroup", cg, "key_id",
                     key_id, "manifest", m->path ? m->path : "", "manifest_digest", m->source_digest, "spec", spec);
}

static int reply_error(const json_t *rep, sub_err *e) {
    const char *msg = json_string_value(json_object_get(rep, "message"));
    sub_reason reason = sub_reason_from_string(json_string_value(json_object_get(rep, "reason")));
    int code = (int)json_integer_value(json_object_get(rep, "exit_code"));
    sub_err_kind kind = code == 1 ? SUB_KIND_CHECK : code == 2 ? SUB_KIND_INPUT : SUB_KIND_ENV;
    sub_err_setr(e, reason < 0 ? SUB_R_NONE : reason, kind, reason == SUB_R_NOT_READY ? -ETIMEDOUT : -EIO, "%s",
                 msg ? msg : "the supervisor refused the deploy");
    return e ? e->code : -EIO;
}

int sub_t1_reconcile(const sub_t1_reconcile_opts *o, sub_t1_reconcile_result *res, sub_err *e) {
    const sub_svc_manifest *m = o->m;
    *res = (sub_t1_reconcile_result){0};
    int64_t t0 = t1_now_ms();
    const char *digest = m->ref.digest;
    if (streq(digest, "sha256:0000000000000000000000000000000000000000000000000000000000000000"))
        return sub_err_setr(e, SUB_R_BAD_MANIFEST, SUB_KIND_INPUT, -EINVAL,
                            "%s: the image digest is the all-zero placeholder of the reference manifest: "
                            "pin the digest that build-sign-push printed for %s (for example `sed -i "
                            "\"s|^image: .*|image: REGISTRY/%s@sha256:...|\" %s`), then reconcile again",
                            m->path ? m->path : m->name, m->ref.repository, m->ref.repository,
                            m->path ? m->path : "MANIFEST");
    int r = t1_runtime_usable(m->runtime, e);
    if (r < 0) return r;
    _cleanup_free_ char *sdir = sub_t1_svc_path(m->name, NULL);
    r = sub_mkdir_p(sdir, 0755, e);
    if (r < 0) return r;
    _cleanup_close_ int lk = lock_reconcile(m->name, e);
    if (lk < 0) return lk;

    _cleanup_reg_ sub_reg *reg = NULL;
    sub_reg_opts ro = {.host = m->ref.registry};
    r = sub_reg_new(&ro, &reg, e);
    if (r < 0) return r;
    NOTE(o, "verifying %s/%s@%s", m->ref.registry, m->ref.repository, digest);
    r = t1_admit(m, digest, reg, res->key_id, e);
    if (r < 0) {
        sub_err_prefix(e, "refused to deploy %s (nothing changed)", m->name);
        return r;
    }
    NOTE(o, "verified: signed by key %s", res->key_id);
    if (m->escalate.enabled) {
        char jk[80] = "";
        NOTE(o, "verifying the escalation job image %s", m->escalate.image);
        r = admit_job_image(m, jk, e);
        if (r < 0) {
            sub_err_prefix(e, "refused to deploy %s (nothing changed): escalate.image %s", m->name, m->escalate.image);
            return r;
        }
        NOTE(o, "verified: the job image is signed by key %s", jk);
    }
    _cleanup_free_ char *layout = sub_t1_path("images");
    _cleanup_free_ char *cache = sub_t1_path("rootfs");
    sub_rootfs_info ri = {0};
    _cleanup_(sub_image_config_freep) sub_image_config cfg = {0};
    NOTE(o, "pulling by digest into %s", layout);
    r = sub_rootfs_fetch(reg, m->ref.repository, digest, layout, cache, &ri, &cfg, e);
    if (r < 0) {
        sub_err_prefix(e, "%s not deployed (nothing changed)", m->name);
        return r;
    }
    NOTE(o, "root filesystem: %s (%s, %zu entries%s)", ri.rootfs,
         ri.reused ? "cached, checked" : ri.replaced ? "cache entry differed from its content list: unpacked again" : "unpacked",
         ri.entries, ri.setuid_cleared && ri.setuid_cleared[0] ? "; setuid/setgid bits cleared" : "");
    _cleanup_free_ char *spec = sub_svc_manifest_to_json(m);
    /* the rootfs directory's inode too: an entry unpacked afresh (it differed
     * from its content list) is a new deploy, never "unchanged" */
    struct stat rst = {0};
    (void)stat(ri.rootfs, &rst);
    _cleanup_free_ char *hin = xasprintf("%s\n%s\n%s\n%llu\n", spec, digest, ri.rootfs, (unsigned long long)rst.st_ino);
    char hash[SUB_DIGEST_MAX];
    (void)sub_sha256_buf(hin, strlen(hin), hash, NULL);

    /* the same version as what runs: no new bundle */
    _cleanup_json_ json_t *st = NULL;
    (void)t1_read_json(m->name, "state.json", &st, NULL);
    json_t *cur = st ? json_object_get(st, "current") : NULL;
    _cleanup_json_ json_t *rec = NULL;
    unsigned long gen;
    if (json_is_object(cur) && streq(json_string_value(json_object_get(cur, "config_hash")), hash)) {
        rec = json_deep_copy(cur);
        gen = (unsigned long)json_integer_value(json_object_get(cur, "generation"));
    } else {
        gen = next_generation(m->name);
        rec = desired_record(m, gen, digest, &ri, hash, res->key_id);
        _cleanup_free_ char *escdir = m->escalate.enabled ? sub_t1_svc_path(m->name, "escalate") : NULL;
        if (escdir && (r = sub_mkdir_p(escdir, 0755, e)) < 0) {
            sub_rootfs_info_done(&ri);
            return r;
        }
        sub_bundle_opts bo = {.m = m, .image = &cfg, .rootfs = ri.rootfs,
                              .cgroup_path = json_string_value(json_object_get(rec, "cgroup")), .generation = gen,
                              .escalate_dir = escdir};
        r = sub_bundle_write(json_string_value(json_object_get(rec, "bundle")), &bo, e);
        if (r < 0) {
            sub_rootfs_info_done(&ri);
            return r;
        }
    }
    sub_rootfs_info_done(&ri);
    r = t1_write_json(m->name, "desired.json", rec, e);
    if (r < 0) return r;
    /* stopped by `substrate stop`: reconciling it again is asking for it back */
    if (st && streq(json_string_value(json_object_get(st, "status")), "stopped")) {
        json_object_set_new(st, "status", json_string("pending"));
        r = t1_write_json(m->name, "state.json", st, e);
        if (r < 0) return r;
    }
    r = sub_t1_ensure_root(o->self_exe, e);
    if (r < 0) return r;
    r = t1_ensure_service_supervisor(m->name, o->self_exe, e);
    if (r < 0) return r;
    r = wait_supervisor(m->name, e);
    if (r < 0) return r;
    NOTE(o, "deploying generation %lu", gen);
    uint32_t wait_ms = m->readiness.deadline_ms + m->health.start_period_ms + 2 * m->stop_grace_ms + 60000;
    _cleanup_json_ json_t *rep = NULL;
    r = sub_t1_control(m->name, "deploy", (int)wait_ms, &rep, e);
    if (r < 0) return r;
    res->seconds = (double)(t1_now_ms() - t0) / 1000.0;
    res->generation = gen;
    snprintf(res->previous, sizeof res->previous, "%s", json_string_value(json_object_get(rep, "previous")) ?: "");
    if (!json_is_true(json_object_get(rep, "ok"))) {
        res->rolled_back = json_is_true(json_object_get(rep, "rolled_back"));
        snprintf(res->digest, sizeof res->digest, "%s", json_string_value(json_object_get(rep, "serving")) ?: "");
        if (!json_is_object(cur) || !streq(json_string_value(json_object_get(cur, "config_hash")), hash)) {
            _cleanup_free_ char *g = xasprintf("gen-%lu", gen);
            _cleanup_free_ char *gp = sub_t1_svc_path(m->name, g);
            (void)sub_rm_rf(gp, NULL);
        }
        /* what the supervisor runs stays the desired state */
        if (json_is_object(cur)) (void)t1_write_json(m->name, "desired.json", cur, NULL);
        return reply_error(rep, e);
    }
    const char *oc = json_string_value(json_object_get(rep, "outcome"));
    res->outcome = streq(oc, "unchanged") ? SUB_T1_UNCHANGED : streq(oc, "promoted") ? SUB_T1_PROMOTED
                   : streq(oc, "restarted") ? SUB_T1_RESTARTED : SUB_T1_STARTED;
    res->stop_then_start = json_is_true(json_object_get(rep, "stop_then_start"));
    snprintf(res->digest, sizeof res->digest, "%s", json_string_value(json_object_get(rep, "digest")) ?: digest);
    prune_bundles(m->name, gen);
    return 0;
}

/* ---- stop ---- */
int sub_t1_stop(const char *name, sub_err *e) {
    _cleanup_free_ char *dir = sub_t1_svc_path(name, NULL);
    if (!sub_path_exists(dir))
        return sub_err_setr(e, SUB_R_NOT_RECONCILED, SUB_KIND_INPUT, -ENOENT,
                            "no service %s was ever reconciled here (state %s)", name, dir);
    _cleanup_free_ char *lock = sub_t1_svc_path(name, "lock");
    if (t1_lock_held(lock)) {
        _cleanup_json_ json_t *rep = NULL;
        int r = sub_t1_control(name, "stop", 120000, &rep, e);
        if (r < 0) return r;
        for (int i = 0; i < 500 && t1_lock_held(lock); i++) t1_sleep_ms(10);
        t1_cgroup_prune();
        return json_is_true(json_object_get(rep, "was_running")) ? 1 : 0;
    }
    /* nobody supervises it: stop what the state names, if it still runs */
    _cleanup_json_ json_t *st = NULL;
    (void)t1_read_json(name, "state.json", &st, NULL);
    if (!st) st = json_pack("{s:s,s:n}", "name", name, "current");
    json_t *cur = json_object_get(st, "current");
    int was = 0;
    if (json_is_object(cur)) {
        _cleanup_svc_manifest_ sub_svc_manifest m = {0};
        _cleanup_free_ char *specs = sub_json_dump(json_object_get(cur, "spec"), NULL);
        sub_svc_runtime rt = SUB_RUNTIME_RUNC;
        bool host = false;
        if (specs && sub_svc_manifest_from_json(specs, strlen(specs), &m, NULL) == 0) {
            rt = m.runtime;
            host = m.network == SUB_NET_HOST;
        }
        t1_ctr c;
        t1_ctr_init(&c, cur);
        if (t1_ctr_adopt(&c, rt, host, NULL) == 0) was = 1;
        t1_ctr_stop(&c, rt, m.stop_grace_ms ? m.stop_grace_ms : 10000);
        t1_ctr_done(&c);
    }
    json_object_set_new(st, "status", json_string("stopped"));
    int r = t1_write_json(name, "state.json", st, e);
    t1_cgroup_prune();
    return r < 0 ? r : was;
}

/* ---- status ---- */
int sub_t1_status(const char *name, json_t **out, sub_err *e) {
    *out = NULL;
    _cleanup_free_ char *dir = sub_t1_svc_path(name, NULL);
    if (!sub_path_exists(dir))
        return sub_err_setr(e, SUB_R_NOT_RECONCILED, SUB_KIND_INPUT, -ENOENT,
                            "no service %s was ever reconciled here (state %s)", name, dir);
    json_t *st = NULL;
    int r = t1_read_json(name, "state.json", &st, e);
    if (r == -ENOENT) st = json_pack("{s:s,s:s,s:n}", "name", name, "status", "pending", "current");
    else if (r < 0) return r;
    _cleanup_free_ char *lock = sub_t1_svc_path(name, "lock");
    _cleanup_free_ char *rlock = sub_t1_path("root.lock");
    bool sup = t1_lock_held(lock);
    json_object_set_new(st, "supervisor", json_boolean(sup));
    json_object_set_new(st, "root_supervisor", json_boolean(t1_lock_held(rlock)));
    /* is the container on record alive (status only reads: no repair) */
    json_t *cur = json_object_get(st, "current");
    if (json_is_object(cur)) {
        pid_t pid = (pid_t)json_integer_value(json_object_get(cur, "pid"));
        unsigned long long t = (unsigned long long)json_integer_value(json_object_get(cur, "pid_start"));
        bool alive = pid > 1 && t && t1_proc_start_time(pid) == t;
        json_object_set_new(st, "container_alive", json_boolean(alive));
    }
    /* escalated jobs: for a service with a policy, or one that had one */
    json_t *spec = json_object_get(cur, "spec");
    _cleanup_free_ char *recs = sub_t1_svc_path(name, "escalations");
    if (json_is_object(json_object_get(spec, "escalate")) || sub_path_exists(recs))
        json_object_set_new(st, "escalations", sub_t1_escalations(name, 5));
    *out = st;
    return 0;
}

int sub_t1_list(char ***names, sub_err *e) {
    *names = xcalloc(1, sizeof **names);
    _cleanup_free_ char *dir = sub_t1_path("services");
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : sub_err_setk(e, SUB_KIND_ENV, -errno, "reading %s: %m", dir);
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') strv_push(names, de->d_name);
    closedir(d);
    qsort(*names, strv_len(*names), sizeof **names, strcmp_ptr);
    return 0;
}
