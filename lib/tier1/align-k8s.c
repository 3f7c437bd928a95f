/* align --k8s: the question align asks of a local service, asked of the pods
 * a Kubernetes cluster runs for it. The pod list is kubectl's JSON (a file,
 * stdin, or kubectl run here); the verdict is a pure function of the
 * manifest, that list and the signature check's outcome. Nothing local is
 * changed: the only file written is the cache of the last verification that
 * passed ($SUBSTRATE_STATE/k8s/verified/NAME.json). */
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "substrate/ref.h"
#include "substrate/strbuf.h"
#include "t1-internal.h"
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_LABEL "app.kubernetes.io/name"

/* ---- parsing ---- */

static int bad_list(sub_err *e, const char *what, const char *fmt, ...) _printf_(3, 4);
static int bad_list(sub_err *e, const char *what, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sub_err_setr(e, SUB_R_BAD_POD_LIST, SUB_KIND_INPUT, -EINVAL,
                        "%s: %s; give the output of `kubectl get pods -l " NAME_LABEL "=NAME -o json`", what, msg);
}

static const char *json_type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* The checks sub_t1_k8s_pods_parse makes, on a parsed document. */
static int validate_list(const json_t *j, const char *what, sub_err *e) {
    if (!json_is_object(j))
        return bad_list(e, what, "not a pod list: the document is %s, not an object of kind List", json_type_name(j));
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (!kind) return bad_list(e, what, "not a pod list: no \"kind\" (expected List or PodList)");
    if (streq(kind, "Pod"))
        return bad_list(e, what, "a single Pod, not a list of pods (kubectl get pod NAME prints one Pod)");
    if (!streq(kind, "List") && !streq(kind, "PodList"))
        return bad_list(e, what, "not a pod list: kind %s (expected List or PodList)", kind);
    json_t *items = json_object_get(j, "items");
    if (!items) return bad_list(e, what, "no \"items\" in the %s", kind);
    if (!json_is_array(items) && !json_is_null(items))
        return bad_list(e, what, "\"items\" is %s, not an array", json_type_name(items));
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        if (!json_is_object(it)) return bad_list(e, what, "items[%zu] is %s, not a Pod object", i, json_type_name(it));
        const char *ik = json_string_value(json_object_get(it, "kind"));
        if (json_object_get(it, "kind") && !streq(ik, "Pod"))
            return bad_list(e, what, "items[%zu] is a %s, not a Pod", i, ik ? ik : "(kind not a string)");
        json_t *md = json_object_get(it, "metadata");
        const char *name = json_string_value(json_object_get(md, "name"));
        if (!json_is_object(md) || !name || !*name)
            return bad_list(e, what, "items[%zu] has no metadata.name", i);
        static const char *const objs[] = {"spec", "status"};
        for (size_t k = 0; k < ARRAY_SIZE(objs); k++) {
            json_t *o = json_object_get(it, objs[k]);
            if (o && !json_is_object(o))
                return bad_list(e, what, "pod %s: %s is %s, not an object", name, objs[k], json_type_name(o));
        }
        json_t *cs = json_object_get(json_object_get(it, "spec"), "containers");
        if (cs && !json_is_array(cs))
            return bad_list(e, what, "pod %s: spec.containers is %s, not an array", name, json_type_name(cs));
        json_t *st = json_object_get(json_object_get(it, "status"), "containerStatuses");
        if (st && !json_is_array(st) && !json_is_null(st))
            return bad_list(e, what, "pod %s: status.containerStatuses is %s, not an array", name,
                            json_type_name(st));
        json_t *cd = json_object_get(json_object_get(it, "status"), "conditions");
        if (cd && !json_is_array(cd) && !json_is_null(cd))
            return bad_list(e, what, "pod %s: status.conditions is %s, not an array", name, json_type_name(cd));
    }
    return 0;
}

int sub_t1_k8s_pods_parse(const char *text, size_t len, const char *what, json_t **out, sub_err *e) {
    *out = NULL;
    if (!what) what = "the pod list";
    if (len > SUB_T1_K8S_PODS_MAX)
        return bad_list(e, what, "too large (%zu bytes; the limit is %u MiB)", len, SUB_T1_K8S_PODS_MAX >> 20);
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return bad_list(e, what, "not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    int r = validate_list(j, what, e);
    if (r < 0) {
        json_decref(j);
        return r;
    }
    *out = j;
    return 0;
}

/* ---- the verdict ---- */

/* The digest after the last '@' of an imageID ("docker-pullable://reg/repo@sha256:...",
 * containerd's "reg/repo@sha256:..."), or NULL when it carries none
 * (docker's "docker://sha256:..." names the image config, not what was pulled). */
static const char *image_id_digest(const char *id) {
    const char *at = id ? strrchr(id, '@') : NULL;
    if (!at) return NULL;
    const char *d = at + 1, *colon = strchr(d, ':');
    if (!colon || colon == d || strlen(colon + 1) < 32) return NULL;
    for (const char *p = d; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) return NULL;
    for (const char *p = colon + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'f') || (*p >= '0' && *p <= '9'))) return NULL;
    return d;
}

/* Is the image (as written in a pod spec) in the manifest's repository? */
static bool same_repository(const char *image, const sub_svc_manifest *m) {
    sub_ref r = {0};
    if (!image || sub_ref_parse(image, "docker.io", &r, NULL) < 0) return false;
    bool same = streq(r.registry, m->ref.registry) && streq(r.repository, m->ref.repository);
    sub_ref_free(&r);
    return same;
}

static json_t *container_status(const json_t *pod, const char *name) {
    json_t *st = json_object_get(json_object_get(pod, "status"), "containerStatuses");
    size_t i;
    json_t *c;
    json_array_foreach(st, i, c) if (streq(json_string_value(json_object_get(c, "name")), name)) return c;
    return NULL;
}

/* The service's containers of a pod (indexes into spec.containers). */
static size_t pick_containers(const json_t *cs, const sub_svc_manifest *m, size_t *idx, size_t max) {
    size_t i, n = 0;
    json_t *c;
    json_array_foreach(cs, i, c) if (streq(json_string_value(json_object_get(c, "name")), m->name)) {
        idx[0] = i;
        return 1;
    }
    if (json_array_size(cs) == 1) {
        idx[0] = 0;
        return 1;
    }
    json_array_foreach(cs, i, c) if (n < max && same_repository(json_string_value(json_object_get(c, "image")), m))
        idx[n++] = i;
    return n;
}

typedef struct pod_flags {
    bool bad_image; /* runs or names something else */
    bool not_running;
    bool not_ready;
} pod_flags;

static void reason(sub_t1_k8s_pod *p, const char *fmt, ...) _printf_(2, 3);
static void reason(sub_t1_k8s_pod *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = xvasprintf(fmt, ap);
    va_end(ap);
    strv_push(&p->reasons, s);
}

static const char *str_or(const json_t *j, const char *dflt) {
    const char *s = json_string_value(j);
    return s ? s : dflt;
}

/* One pod: fill p, say what differs. */
static void eval_pod(const sub_svc_manifest *m, const json_t *pod, sub_t1_k8s_pod *p, pod_flags *f) {
    const json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec"),
                 *status = json_object_get(pod, "status");
    p->name = xstrdup(str_or(json_object_get(md, "name"), ""));
    p->namespace_ = xstrdup(str_or(json_object_get(md, "namespace"), ""));
    p->phase = xstrdup(str_or(json_object_get(status, "phase"), ""));
    p->terminating = json_object_get(md, "deletionTimestamp") && !json_is_null(json_object_get(md, "deletionTimestamp"));
    p->reasons = xcalloc(1, sizeof *p->reasons);
    p->digest = xstrdup("");

    const char *label = json_string_value(json_object_get(json_object_get(md, "labels"), NAME_LABEL));
    if (label && !streq(label, m->name)) {
        reason(p, "labelled " NAME_LABEL "=%s, not %s: a pod of another service", label, m->name);
        f->bad_image = true;
    }
    if (!p->terminating && !streq(p->phase, "Running")) {
        reason(p, "not running (phase %s)", *p->phase ? p->phase : "unknown");
        f->not_running = true;
    }

    json_t *cs = json_object_get(spec, "containers");
    size_t idx[16];
    size_t n = pick_containers(cs, m, idx, ARRAY_SIZE(idx));
    if (!n) {
        _cleanup_free_ char *repo = sub_ref_name(&m->ref);
        reason(p, "no container named %s, and none of its %zu containers runs an image of %s", m->name,
               json_array_size(cs), repo);
        f->bad_image = true;
        return;
    }
    p->containers = xcalloc(n, sizeof *p->containers);
    p->ncontainers = n;
    bool all_ready = true;
    const char *first_digest = NULL;
    bool one_digest = true;
    for (size_t k = 0; k < n; k++) {
        const json_t *c = json_array_get(cs, idx[k]);
        sub_t1_k8s_container *pc = &p->containers[k];
        pc->name = xstrdup(str_or(json_object_get(c, "name"), ""));
        pc->image = xstrdup(str_or(json_object_get(c, "image"), ""));
        const json_t *st = container_status(pod, pc->name);
        pc->image_id = xstrdup(str_or(json_object_get(st, "imageID"), ""));
        const char *d = image_id_digest(pc->image_id);
        pc->digest = xstrdup(d ? d : "");
        pc->ready = json_is_true(json_object_get(st, "ready"));
        if (!pc->ready) all_ready = false;
        _cleanup_free_ char *who = n > 1 ? xasprintf("container %s: ", pc->name) : xstrdup("");

        const char *at = strrchr(pc->image, '@');
        if (!*pc->image) {
            reason(p, "%sno image in its spec", who);
            f->bad_image = true;
        } else if (!at) {
            reason(p, "%simage by tag %s (the manifest pins %s by digest)", who, pc->image, m->ref.digest);
            f->bad_image = true;
        }
        if (*pc->image && !same_repository(pc->image, m)) {
            _cleanup_free_ char *repo = sub_ref_name(&m->ref);
            reason(p, "%simage %s is not from the manifest's repository %s", who, pc->image, repo);
            f->bad_image = true;
        }
        if (d) {
            if (!streq(d, m->ref.digest)) {
                reason(p, "%sruns %s (manifest %s)", who, d, m->ref.digest);
                f->bad_image = true;
            } else if (at && !streq(at + 1, m->ref.digest)) {
                reason(p, "%simage pins %s (manifest %s)", who, at + 1, m->ref.digest);
                f->bad_image = true;
            }
            if (!first_digest) first_digest = d;
            else if (!streq(first_digest, d)) one_digest = false;
        } else if (streq(p->phase, "Running") || p->terminating) {
            /* a pod that is not running yet was named above; a running one must say what it runs */
            if (*pc->image_id) reason(p, "%simageID %s carries no digest", who, pc->image_id);
            else reason(p, "%sno imageID: the container has not started", who);
            f->bad_image = true;
        }
    }
    if (first_digest && one_digest) {
        free(p->digest);
        p->digest = xstrdup(first_digest);
    }

    /* readiness: the pod condition and the container's own flag */
    const char *cond = NULL, *why = NULL;
    size_t i;
    json_t *cd;
    json_array_foreach(json_object_get(status, "conditions"), i, cd) if (streq(json_string_value(json_object_get(cd, "type")), "Ready")) {
        cond = str_or(json_object_get(cd, "status"), "?");
        why = json_string_value(json_object_get(cd, "reason"));
    }
    p->ready = streq(cond, "True") && all_ready;
    /* a pod on its way out is not expected to be ready, and one not running was named already */
    if (!p->ready && !p->terminating && !f->not_running) {
        if (!streq(cond, "True"))
            reason(p, "not ready (condition Ready: %s%s%s)", cond ? cond : "absent", why ? ", " : "", why ? why : "");
        else
            for (size_t k = 0; k < n; k++)
                if (!p->containers[k].ready) reason(p, "not ready (container %s is not ready)", p->containers[k].name);
        f->not_ready = true;
    }
}

static sub_t1_check *add_check(sub_t1_align_result *r, const char *name) {
    sub_t1_check *c = &r->checks[r->nchecks++];
    *c = (sub_t1_check){.name = name, .result = 1};
    return c;
}

static void set_check(sub_t1_check *c, int result, const char *fmt, ...) _printf_(3, 4);
static void set_check(sub_t1_check *c, int result, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    c->result = result;
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
}

/* "pod NAME: reason" of the first pod whose flag is set */
static char *first_reason(const sub_t1_k8s_result *r, const pod_flags *fl, size_t which) {
    for (size_t i = 0; i < r->npods; i++) {
        const pod_flags *f = &fl[i];
        bool hit = which == 0 ? f->not_running : which == 1 ? f->bad_image : f->not_ready;
        if (!hit) continue;
        const sub_t1_k8s_pod *p = &r->pods[i];
        for (char **s = p->reasons; s && *s; s++) {
            bool is_run = str_has_prefix(*s, "not running"), is_ready = str_has_prefix(*s, "not ready");
            if ((which == 0 && is_run) || (which == 2 && is_ready) || (which == 1 && !is_run && !is_ready))
                return xasprintf("pod %s: %s", p->name, *s);
        }
    }
    return xstrdup("");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int sub_t1_align_k8s_eval(const sub_svc_manifest *m, const json_t *pods, const char *namespace_,
                          const sub_t1_check *sig, const char *key_id, sub_t1_k8s_result *res, sub_err *e) {
    *res = (sub_t1_k8s_result){0};
    sub_t1_align_result *a = &res->a;
    snprintf(a->service, sizeof a->service, "%s", m->name);
    snprintf(a->manifest_digest, sizeof a->manifest_digest, "%s", m->ref.digest);
    a->reasons = xcalloc(1, sizeof *a->reasons);
    res->running_digests = xcalloc(1, sizeof *res->running_digests);
    if (namespace_) res->namespace_ = xstrdup(namespace_);
    int r = validate_list(pods, "the pod list", e);
    if (r < 0) return r;

    json_t *items = json_object_get(pods, "items");
    size_t total = json_array_size(items);
    res->pods = xcalloc(total ? total : 1, sizeof *res->pods);
    _cleanup_free_ pod_flags *fl = xcalloc(total ? total : 1, sizeof *fl);
    size_t i, active = 0, terminating = 0, n_run = 0, n_img = 0, n_ready = 0;
    json_t *it;
    json_array_foreach(items, i, it) {
        const char *ns = json_string_value(json_object_get(json_object_get(it, "metadata"), "namespace"));
        if (namespace_ && ns && !streq(ns, namespace_)) {
            res->ignored++;
            continue;
        }
        sub_t1_k8s_pod *p = &res->pods[res->npods];
        pod_flags *f = &fl[res->npods++];
        eval_pod(m, it, p, f);
        if (p->terminating) terminating++;
        else active++;
        n_run += f->not_running;
        n_img += f->bad_image;
        n_ready += f->not_ready;
        for (size_t k = 0; k < p->ncontainers; k++) {
            const char *d = p->containers[k].digest;
            bool seen = !*d;
            for (char **s = res->running_digests; !seen && *s; s++) seen = streq(*s, d);
            if (!seen) strv_push(&res->running_digests, d);
        }
        for (char **s = p->reasons; *s; s++) {
            _cleanup_free_ char *line = xasprintf("pod %s%s: %s", p->name, p->terminating ? " (terminating)" : "", *s);
            strv_push(&a->reasons, line);
        }
    }
    size_t nd = strv_len(res->running_digests);
    qsort(res->running_digests, nd, sizeof *res->running_digests, cmp_str);
    if (nd == 1) snprintf(a->running_digest, sizeof a->running_digest, "%s", res->running_digests[0]);

    sub_t1_check *c = add_check(a, "running");
    if (!active) {
        if (terminating)
            set_check(c, 0, "no pods: not running (%zu terminating, none to replace them)", terminating);
        else
            set_check(c, 0, "no pods: not running");
        _cleanup_free_ char *line = xasprintf("%s", c->detail);
        strv_push(&a->reasons, line);
    } else if (n_run) {
        _cleanup_free_ char *first = first_reason(res, fl, 0);
        set_check(c, 0, "%zu of %zu pods not running; %s", n_run, active, first);
    } else {
        set_check(c, 1, "%zu pod%s Running", active, active == 1 ? "" : "s");
    }

    c = add_check(a, "digest");
    if (n_img) {
        _cleanup_free_ char *first = first_reason(res, fl, 1);
        set_check(c, 0, "%zu of %zu pods differ; %s", n_img, res->npods, first);
    } else if (!res->npods) {
        set_check(c, 0, "nothing runs (manifest %s)", m->ref.digest);
    } else if (nd == 0) {
        set_check(c, 0, "no pod reports what it runs yet (manifest %s)", m->ref.digest);
    } else {
        set_check(c, 1, "every pod runs %s = manifest, named by digest", m->ref.digest);
    }

    c = add_check(a, "ready");
    if (n_ready) {
        _cleanup_free_ char *first = first_reason(res, fl, 2);
        set_check(c, 0, "%zu of %zu pods not ready; %s", n_ready, active, first);
    } else if (!active || n_run) {
        set_check(c, 0, "%s", !active ? "no pod to be ready" : "not every pod runs");
    } else {
        set_check(c, 1, "%zu pod%s ready", active, active == 1 ? "" : "s");
    }

    c = add_check(a, "signature");
    c->result = sig->result;
    snprintf(c->detail, sizeof c->detail, "%s", sig->detail);
    snprintf(a->key_id, sizeof a->key_id, "%s", key_id ? key_id : "");
    if (sig->result == 0) {
        _cleanup_free_ char *line = xasprintf("signature: %s", sig->detail);
        strv_push(&a->reasons, line);
    }

    bool failed = false, undecided = false;
    for (size_t k = 0; k < a->nchecks; k++) {
        if (a->checks[k].result == 0) failed = true;
        if (a->checks[k].result < 0) undecided = true;
    }
    a->aligned = !failed && !undecided;
    a->undecided = !failed && undecided;
    return 0;
}

/* ---- obtaining the pod list ---- */

static int read_bounded(int fd, const char *what, char **out, size_t *len, sub_err *e) {
    int r = sub_read_fd(fd, what, SUB_T1_K8S_PODS_MAX, out, len, e);
    if (r < 0) {
        e->kind = SUB_KIND_INPUT;
        if (r == -EFBIG) e->reason = SUB_R_BAD_POD_LIST;
    }
    return r;
}

static int read_pods_file(const char *path, char **out, size_t *len, sub_err *e) {
    if (streq(path, "-")) return read_bounded(STDIN_FILENO, "the pod list on stdin", out, len, e);
    /* a FIFO is fine here (--pods <(kubectl ...)): the user named it */
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return sub_err_setk(e, SUB_KIND_INPUT, -err, "cannot open the pod list %s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        return sub_err_setk(e, SUB_KIND_INPUT, -EISDIR, "the pod list %s is a directory, not a file", path);
    _cleanup_free_ char *what = xasprintf("the pod list %s", path);
    return read_bounded(fd, what, out, len, e);
}

static char *first_lines(const char *s, size_t max) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) n--;
    if (n > max) n = max;
    return xstrndup(s, n);
}

static int run_kubectl(const sub_t1_align_k8s_opts *o, char **out, size_t *len, char **source, sub_err *e) {
    const sub_svc_manifest *m = o->m;
    _cleanup_free_ char *sel = xasprintf(NAME_LABEL "=%s", m->name);
    _cleanup_strv_ char **argv = NULL;
    const char *fixed[] = {"kubectl", "get", "pods", "-l", sel, "-o", "json"};
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) strv_push(&argv, fixed[i]);
    if (o->namespace_) {
        strv_push(&argv, "--namespace");
        strv_push(&argv, o->namespace_);
    }
    *source = sub_argv_str(argv);
    if (!sub_have_program("kubectl"))
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                            "kubectl is not on PATH: install kubectl (configured for the cluster), or pass the "
                            "pod list yourself with --pods FILE, or --pods - to read it from stdin "
                            "(`kubectl get pods -l %s -o json`)",
                            sel);
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    int timeout = o->timeout_ms > 0 ? o->timeout_ms : SUB_T1_K8S_TIMEOUT_MS;
    _cleanup_free_ char *err = NULL;
    int status = 0;
    int r = sub_run_capture_timeout(argv, &po, SUB_T1_K8S_PODS_MAX, timeout, out, len, &err, &status, e);
    if (r < 0) {
        sub_err_prefix(e, "%s", *source);
        return r;
    }
    if (status != 0) {
        free(*out);
        *out = NULL;
        _cleanup_free_ char *why = first_lines(err ? err : "", 900);
        r = sub_err_setk(e, SUB_KIND_ENV, -EIO,
                         "%s failed (exit %d): kubectl could not list the pods; check its context and "
                         "access (`kubectl config current-context`), or pass the list with --pods",
                         *source, status);
        if (*why) sub_err_detail(e, "%s", why);
        return r;
    }
    return 0;
}

int sub_t1_align_k8s(const sub_t1_align_k8s_opts *o, sub_t1_k8s_result *res, sub_err *e) {
    const sub_svc_manifest *m = o->m;
    *res = (sub_t1_k8s_result){0};
    int64_t t0 = t1_now_ms();
    _cleanup_free_ char *text = NULL, *source = NULL;
    size_t len = 0;
    int r;
    if (o->pods_path) {
        source = xstrdup(streq(o->pods_path, "-") ? "stdin" : o->pods_path);
        r = read_pods_file(o->pods_path, &text, &len, e);
    } else {
        r = run_kubectl(o, &text, &len, &source, e);
    }
    if (r < 0) return r;
    _cleanup_free_ char *what = streq(source, "stdin") ? xstrdup("the pod list on stdin")
                                : o->pods_path ? xasprintf("the pod list %s", source)
                                               : xasprintf("the output of %s", source);
    _cleanup_json_ json_t *pods = NULL;
    r = sub_t1_k8s_pods_parse(text, len, what, &pods, e);
    if (r < 0) return r;

    /* the digest the manifest pins must verify now: pods on any other digest are DRIFT anyway */
    sub_t1_check sig = {.name = "signature"};
    char key_id[80] = "";
    _cleanup_free_ char *rel = xasprintf("k8s/verified/%s.json", m->name);
    _cleanup_free_ char *cache = sub_state_path(rel);
    t1_signature_now(m, m->ref.digest, cache, true, &sig, key_id);

    r = sub_t1_align_k8s_eval(m, pods, o->namespace_, &sig, key_id, res, e);
    res->source = TAKE_PTR(source);
    res->a.seconds = (double)(t1_now_ms() - t0) / 1000.0;
    return r;
}

void sub_t1_k8s_result_done(sub_t1_k8s_result *r) {
    for (size_t i = 0; i < r->npods; i++) {
        sub_t1_k8s_pod *p = &r->pods[i];
        for (size_t k = 0; k < p->ncontainers; k++) {
            free(p->containers[k].name);
            free(p->containers[k].image);
            free(p->containers[k].image_id);
            free(p->containers[k].digest);
        }
        free(p->containers);
        free(p->name);
        free(p->namespace_);
        free(p->phase);
        free(p->digest);
        strv_free(p->reasons);
    }
    free(r->pods);
    strv_free(r->running_digests);
    free(r->namespace_);
    free(r->source);
    sub_t1_align_result_done(&r->a);
    *r = (sub_t1_k8s_result){0};
}

json_t *sub_t1_align_k8s_json(const sub_t1_k8s_result *r) {
    json_t *j = sub_t1_align_json(&r->a);
    json_object_set_new(j, "target", json_string("k8s"));
    json_object_set_new(j, "namespace", r->namespace_ ? sub_json_str(r->namespace_) : json_null());
    json_object_set_new(j, "source", r->source ? sub_json_str(r->source) : json_null());
    json_object_set_new(j, "ignored", json_integer((json_int_t)r->ignored));
    json_t *ds = json_array();
    for (char **s = r->running_digests; s && *s; s++) json_array_append_new(ds, sub_json_str(*s));
    json_object_set_new(j, "running_digests", ds);
    json_t *pods = json_array();
    for (size_t i = 0; i < r->npods; i++) {
        const sub_t1_k8s_pod *p = &r->pods[i];
        json_t *cs = json_array();
        for (size_t k = 0; k < p->ncontainers; k++) {
            const sub_t1_k8s_container *c = &p->containers[k];
            json_array_append_new(cs, json_pack("{s:o,s:o,s:o,s:o,s:b}", "name", sub_json_str(c->name), "image",
                                                sub_json_str(c->image), "image_id", sub_json_str(c->image_id),
                                                "digest", sub_json_str(c->digest), "ready", c->ready));
        }
        json_t *rs = json_array();
        for (char **s = p->reasons; s && *s; s++) json_array_append_new(rs, sub_json_str(*s));
        json_array_append_new(pods, json_pack("{s:o,s:o,s:o,s:o,s:b,s:b,s:o,s:o}", "name", sub_json_str(p->name),
                                              "namespace", sub_json_str(p->namespace_), "phase",
                                              sub_json_str(p->phase), "digest", sub_json_str(p->digest), "ready",
                                              p->ready, "terminating", p->terminating, "reasons", rs,
                                              "containers", cs));
    }
    json_object_set_new(j, "pods", pods);
    return j;
}
