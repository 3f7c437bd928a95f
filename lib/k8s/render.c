/* The mapping from a parsed manifest or jobspec to Kubernetes objects
 * (k8s.h): pure, no I/O. Every object is built key by key in the order it
 * is emitted. */
#include "substrate/json.h"
#include "substrate/k8s.h"
#include "substrate/strbuf.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANN "substrate.dev/"

static void note(const sub_k8s_opts *o, const char *fmt, ...) _printf_(2, 3);
static void note(const sub_k8s_opts *o, const char *fmt, ...) {
    if (!o || !o->note) return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    o->note(o->ud, m);
}

static const char *dur(char buf[32], uint32_t ms) {
    if (ms % 1000) snprintf(buf, 32, "%ums", ms);
    else snprintf(buf, 32, "%us", ms / 1000);
    return buf;
}

/* Whole seconds, rounded up, at least 1. */
static json_int_t secs(uint32_t ms) {
    json_int_t s = ((json_int_t)ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

/* ---- names ---- */

static bool dns_label(const char *s, size_t max) {
    size_t n = strlen(s);
    if (!n || n > max || s[0] == '-' || s[n - 1] == '-') return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')) return false;
    return true;
}

static bool dns_subdomain(const char *s) {
    size_t n = strlen(s);
    if (!n || n > 253) return false;
    _cleanup_free_ char *c = xstrdup(s);
    char *save = NULL;
    if (s[0] == '.' || s[n - 1] == '.' || strstr(s, "..")) return false;
    for (char *t = strtok_r(c, ".", &save); t; t = strtok_r(NULL, ".", &save))
        if (!dns_label(t, 63)) return false;
    return true;
}

int sub_k8s_opts_check(const sub_k8s_opts *o, sub_err *e) {
    if (o->namespace_ && !dns_label(o->namespace_, 63))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "--namespace \"%s\" is not a Kubernetes namespace name (lowercase letters, digits "
                            "and '-', starting and ending with a letter or digit, at most 63)", o->namespace_);
    const char *cls[2][2] = {{"--runtime-class", o->runtime_class}, {"--gvisor-class", o->gvisor_class}};
    for (size_t i = 0; i < 2; i++)
        if (cls[i][1] && !dns_subdomain(cls[i][1]))
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "%s \"%s\" is not a RuntimeClass name (a DNS subdomain: lowercase letters, digits, "
                                "'-' and '.', at most 253)", cls[i][0], cls[i][1]);
    return 0;
}

static const char *runtime_class(const sub_k8s_opts *o) {
    return o && o->runtime_class ? o->runtime_class : SUB_K8S_RUNTIME_CLASS_DEFAULT;
}
static const char *gvisor_class(const sub_k8s_opts *o) {
    return o && o->gvisor_class ? o->gvisor_class : SUB_K8S_GVISOR_CLASS_DEFAULT;
}

/* ---- metadata ---- */

static json_t *labels(const char *name, const char *component) {
    return json_pack("{s:s,s:s,s:s,s:s}", "app.kubernetes.io/name", name, "app.kubernetes.io/instance", name,
                     "app.kubernetes.io/component", component, "app.kubernetes.io/managed-by", "substrate");
}

static json_t *selector_labels(const char *name) {
    return json_pack("{s:s,s:s}", "app.kubernetes.io/name", name, "app.kubernetes.io/instance", name);
}

static json_t *metadata(const char *name, const sub_k8s_opts *o, bool namespaced, json_t *lbl, json_t *ann) {
    json_t *m = json_object();
    json_object_set_new(m, "name", json_string(name));
    if (namespaced && o && o->namespace_) json_object_set_new(m, "namespace", json_string(o->namespace_));
    if (lbl) json_object_set_new(m, "labels", lbl);
    if (ann) json_object_set_new(m, "annotations", ann);
    return m;
}

static json_t *object(const char *api, const char *kind, json_t *meta) {
    return json_pack("{s:s,s:s,s:o}", "apiVersion", api, "kind", kind, "metadata", meta);
}

/* The annotations every object of one document carries. */
static json_t *annotations(bool job, const sub_ref *ref, const sub_k8s_admitted *a) {
    json_t *m = json_object();
    json_object_set_new(m, job ? ANN "jobspec-digest" : ANN "manifest-digest", json_string(a->doc_digest));
    if (job && a->doc_key_id) json_object_set_new(m, ANN "jobspec-key-id", json_string(a->doc_key_id));
    json_object_set_new(m, ANN "image-digest", json_string(ref->digest));
    json_object_set_new(m, ANN "key-id", json_string(a->key_id));
    return m;
}

/* ---- the ClusterImagePolicy ---- */

static int key_cmp(const void *x, const void *y) {
    return strcmp(((const sub_k8s_key *)x)->id, ((const sub_k8s_key *)y)->id);
}

/* policy-controller's glob grammar: letters, digits and - _ : / * . only, '*' = any run
 * of characters but '/'. It has no '@', so "REGISTRY/REPO*" is the closest
 * to "this repository": it also covers REPO<anything> at the same level (a
 * repository whose name starts with REPO), which must then verify with the
 * same keys: stricter, never looser (matching policies are all enforced). */
static int image_glob(const char *doc, const sub_ref *ref, char **out, sub_err *e) {
    char *g = xasprintf("%s/%s*", ref->registry, ref->repository);
    for (const char *p = g; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("-_:/*.", *p))) {
            int r = sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                 "%s: image: \"%s/%s\" cannot be named in a ClusterImagePolicy glob (policy-"
                                 "controller accepts only letters, digits and -_:/*. there)",
                                 doc, ref->registry, ref->repository);
            free(g);
            return r;
        }
    *out = g;
    return 0;
}

static int cluster_image_policy(const char *doc, const char *name, bool job, const sub_ref *ref,
                                const sub_k8s_admitted *a, const sub_k8s_opts *o, json_t *items, sub_err *e) {
    if (!a->nkeys)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "%s: no trusted key to put in the ClusterImagePolicy", doc);
    _cleanup_free_ char *glob = NULL;
    int r = image_glob(doc, ref, &glob, e);
    if (r < 0) return r;
    sub_k8s_key *keys = xcalloc(a->nkeys, sizeof *keys);
    memcpy(keys, a->keys, a->nkeys * sizeof *keys);
    qsort(keys, a->nkeys, sizeof *keys, key_cmp);
    json_t *auth = json_array();
    for (size_t i = 0; i < a->nkeys; i++) {
        const char *hex = str_has_prefix(keys[i].id, "sha256:") ? keys[i].id + 7 : keys[i].id;
        _cleanup_free_ char *an = xasprintf("key-%.16s", hex);
        json_array_append_new(auth, json_pack("{s:s,s:{s:s,s:s}}", "name", an, "key", "data", keys[i].pem,
                                              "hashAlgorithm", "sha256"));
    }
    free(keys);
    /* cluster-scoped: the namespace goes into the name so two namespaces do not share one */
    _cleanup_free_ char *cname = o && o->namespace_ ? xasprintf("substrate-%s-%s", o->namespace_, name)
                                                    : xasprintf("substrate-%s", name);
    json_t *ann = json_object();
    json_object_set_new(ann, ANN "image-digest", json_string(ref->digest));
    json_object_set_new(ann, ANN "key-id", json_string(a->key_id));
    json_t *cip = object("policy.sigstore.dev/v1beta1", "ClusterImagePolicy",
                         metadata(cname, o, false, labels(name, job ? "job" : "service"), ann));
    json_object_set_new(cip, "spec", json_pack("{s:[{s:s}],s:o,s:s}", "images", "glob", glob, "authorities", auth,
                                               "mode", "enforce"));
    json_array_append_new(items, cip);
    return 0;
}

/* ---- pod pieces ---- */

static json_t *strv_json(char *const *v) {
    json_t *a = json_array();
    for (; v && *v; v++) json_array_append_new(a, json_string(*v));
    return a;
}

static json_t *env_json(char *const *env) {
    json_t *a = json_array();
    for (; env && *env; env++) {
        const char *eq = strchr(*env, '=');
        _cleanup_free_ char *k = eq ? xstrndup(*env, (size_t)(eq - *env)) : xstrdup(*env);
        json_array_append_new(a, json_pack("{s:s,s:s}", "name", k, "value", eq ? eq + 1 : ""));
    }
    return a;
}

/* "uid[:gid]" (numeric, checked by the parsers); gid defaults to uid, as
 * the local runtimes do. */
static void user_ids(const char *u, json_int_t *uid, json_int_t *gid) {
    char *end;
    *uid = (json_int_t)strtoull(u, &end, 10);
    *gid = *end == ':' ? (json_int_t)strtoull(end + 1, NULL, 10) : *uid;
}

static json_t *pod_security(const char *user) {
    json_t *sc = json_object();
    json_int_t uid = -1, gid = -1;
    if (user) user_ids(user, &uid, &gid);
    json_object_set_new(sc, "runAsNonRoot", json_boolean(uid != 0));
    if (user) {
        json_object_set_new(sc, "runAsUser", json_integer(uid));
        json_object_set_new(sc, "runAsGroup", json_integer(gid));
    }
    json_object_set_new(sc, "seccompProfile", json_pack("{s:s}", "type", "RuntimeDefault"));
    return sc;
}

static json_t *container_security(char *const *caps) {
    json_t *c = json_pack("{s:[s]}", "drop", "ALL");
    if (caps && *caps) {
        json_t *add = json_array();
        for (; *caps; caps++)
            json_array_append_new(add, json_string(str_has_prefix(*caps, "CAP_") ? *caps + 4 : *caps));
        json_object_set_new(c, "add", add);
    }
    return json_pack("{s:b,s:b,s:b,s:o}", "allowPrivilegeEscalation", 0, "privileged", 0, "readOnlyRootFilesystem", 1,
                     "capabilities", c);
}

static void tmp_volume(json_t *container, json_t *podspec) {
    json_object_set_new(container, "volumeMounts", json_pack("[{s:s,s:s}]", "name", "tmp", "mountPath", "/tmp"));
    /* /tmp is a tmpfs locally: memory-backed, charged to the service's memory */
    json_object_set_new(podspec, "volumes", json_pack("[{s:s,s:{s:s}}]", "name", "tmp", "emptyDir", "medium", "Memory"));
}

/* 67108864 -> "64Mi"; a size no binary unit divides stays in bytes. */
static char *quantity_bytes(uint64_t b) {
    static const char *const units[] = {"Ti", "Gi", "Mi", "Ki"};
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        uint64_t u = 1ull << (10 * (4 - i));
        if (b >= u && b % u == 0) return xasprintf("%llu%s", (unsigned long long)(b / u), units[i]);
    }
    return xasprintf("%llu", (unsigned long long)b);
}

static char *quantity_cpu(uint32_t millis) {
    if (millis % 1000 == 0) return xasprintf("%u", millis / 1000);
    return xasprintf("%um", millis);
}

static json_t *resources(const char *cpu, const char *mem) {
    if (!cpu && !mem) return NULL;
    json_t *q = json_object();
    if (cpu) json_object_set_new(q, "cpu", json_string(cpu));
    if (mem) json_object_set_new(q, "memory", json_string(mem));
    return json_pack("{s:o,s:o}", "requests", json_deep_copy(q), "limits", q);
}

/* The port and path of "http://HOST:PORT/PATH" (checked by the parser). */
static void http_target(const char *url, json_int_t *port, char **path) {
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    const char *slash = strchr(h, '/');
    const char *colon = memchr(h, ':', slash ? (size_t)(slash - h) : strlen(h));
    *port = colon ? (json_int_t)strtoul(colon + 1, NULL, 10) : 80;
    *path = xstrdup(slash ? slash : "/");
}

static json_t *probe(const sub_probe_spec *p, bool readiness) {
    json_t *j = json_object();
    switch (p->kind) {
    case SUB_PROBE_HTTP: {
        json_int_t port;
        _cleanup_free_ char *path = NULL;
        http_target(p->url, &port, &path);
        json_object_set_new(j, "httpGet", json_pack("{s:s,s:I}", "path", path, "port", port));
        break;
    }
    case SUB_PROBE_TCP: {
        const char *c = strrchr(p->address, ':');
        json_object_set_new(j, "tcpSocket", json_pack("{s:I}", "port", (json_int_t)strtoul(c ? c + 1 : "0", NULL, 10)));
        break;
    }
    case SUB_PROBE_EXEC: json_object_set_new(j, "exec", json_pack("{s:o}", "command", strv_json(p->exec))); break;
    case SUB_PROBE_NONE: break;
    }
    if (p->start_period_ms) json_object_set_new(j, "initialDelaySeconds", json_integer(secs(p->start_period_ms)));
    json_object_set_new(j, "periodSeconds", json_integer(secs(p->interval_ms)));
    json_object_set_new(j, "timeoutSeconds", json_integer(secs(p->timeout_ms)));
    json_object_set_new(j, "failureThreshold", json_integer(p->failure_threshold ? p->failure_threshold : 1));
    (void)readiness;
    return j;
}

static json_t *network_policy(const char *name, const sub_k8s_opts *o, json_t *lbl, json_t *ann, json_t *ingress,
                              json_t *egress) {
    json_t *np = object("networking.k8s.io/v1", "NetworkPolicy", metadata(name, o, true, lbl, ann));
    json_object_set_new(np, "spec", json_pack("{s:{s:o},s:[s,s],s:o,s:o}", "podSelector", "matchLabels",
                                              selector_labels(name), "policyTypes", "Ingress", "Egress", "ingress",
                                              ingress, "egress", egress));
    return np;
}

/* ---- manifests ---- */

static void manifest_notes(const sub_svc_manifest *m, const sub_k8s_opts *o) {
    char a[32], b[32];
    const char *n = m->name;
    if (m->escalate.enabled)
        note(o, "%s: escalate: the escalation socket has no Kubernetes equivalent (a pod cannot hand jobs to a "
                "microVM through a socket; render each job's jobspec as a Job in the Kata RuntimeClass instead); "
                "not rendered", n);
    if (m->deep_align_interval_ms)
        note(o, "%s: deep_align_interval: %s (--deep rootfs alignment) has no Kubernetes equivalent (the kubelet "
                "unpacks the image; `substrate align --k8s` compares the pods' imageID digests); not rendered",
             n, dur(a, m->deep_align_interval_ms));
    if (m->align_interval_ms != 60000)
        note(o, "%s: align_interval: %s has no Kubernetes equivalent (nothing aligns periodically inside the "
                "cluster; run `substrate align --k8s` on a schedule); not rendered",
             n, m->align_interval_ms ? dur(a, m->align_interval_ms) : "0 (off)");
    if (m->on_drift != SUB_DRIFT_FLAG)
        note(o, "%s: on_drift: halt has no Kubernetes equivalent (`substrate align --k8s` reports DRIFT and stops "
                "nothing); not rendered", n);
    if (m->verify_max_age_ms != 86400000)
        note(o, "%s: verify_max_age: %s has no Kubernetes equivalent (policy-controller verifies at admission, "
                "with its own cache); not rendered", n, dur(a, m->verify_max_age_ms));
    if (m->pids)
        note(o, "%s: pids: %u has no Kubernetes equivalent (the pod PID limit is a kubelet setting, "
                "--pod-max-pids, not a field of the pod); not rendered", n, m->pids);
    if (m->restart != SUB_RESTART_ALWAYS)
        note(o, "%s: restart: %s has no Kubernetes equivalent (a Deployment's pods always restart); not rendered",
             n, sub_svc_restart_str(m->restart));
    if (m->backoff_initial_ms != 500 || m->backoff_max_ms != 30000)
        note(o, "%s: backoff: {initial: %s, max: %s} has no Kubernetes equivalent (the kubelet's restart "
                "back-off is its own: 10s doubling to 5m); not rendered",
             n, dur(a, m->backoff_initial_ms), dur(b, m->backoff_max_ms));
    for (size_t i = 0; i < m->nports; i++)
        note(o, "%s: ports[%zu]: the host address %s:%u has no Kubernetes equivalent (the ClusterIP Service "
                "publishes port %u inside the cluster, and the NetworkPolicy admits ingress to port %u from any "
                "pod); not rendered", n, i, m->ports[i].host_addr, m->ports[i].host_port, m->ports[i].host_port,
             m->ports[i].container_port);
    if (m->policy != SUB_IDENTITY_EXACT || m->identity)
        note(o, "%s: the identity policy (identity, repo_prefix, any_repo) has no ClusterImagePolicy equivalent "
                "(policy-controller checks the signature's digest, not its docker-reference); it was checked "
                "when rendering; not rendered", n);
    if (m->capabilities && m->capabilities[0] && !(m->user && m->user[0] == '0' && (!m->user[1] || m->user[1] == ':')))
        note(o, "%s: capabilities: as ambient capabilities of a non-root user they have no Kubernetes "
                "equivalent (Kubernetes adds them to the bounding set: a non-root process gets them only "
                "through file capabilities); rendered as capabilities.add", n);
}

static json_t *service_container(const sub_svc_manifest *m) {
    json_t *c = json_object();
    json_object_set_new(c, "name", json_string(m->name));
    json_object_set_new(c, "image", json_string(m->image));
    json_object_set_new(c, "imagePullPolicy", json_string("IfNotPresent"));
    if (m->command && m->command[0]) json_object_set_new(c, "command", strv_json(m->command));
    if (m->args && m->args[0]) json_object_set_new(c, "args", strv_json(m->args));
    if (m->workdir) json_object_set_new(c, "workingDir", json_string(m->workdir));
    if (m->env && m->env[0]) json_object_set_new(c, "env", env_json(m->env));
    if (m->nports) {
        json_t *ports = json_array();
        for (size_t i = 0; i < m->nports; i++) {
            _cleanup_free_ char *pn = xasprintf("tcp-%u", m->ports[i].container_port);
            json_array_append_new(ports, json_pack("{s:s,s:i,s:s}", "name", pn, "containerPort",
                                                   (int)m->ports[i].container_port, "protocol", "TCP"));
        }
        json_object_set_new(c, "ports", ports);
    }
    if (m->health.kind != SUB_PROBE_NONE) json_object_set_new(c, "livenessProbe", probe(&m->health, false));
    if (m->readiness.kind != SUB_PROBE_NONE) json_object_set_new(c, "readinessProbe", probe(&m->readiness, true));
    _cleanup_free_ char *cpu = m->cpu_millis ? quantity_cpu(m->cpu_millis) : NULL;
    _cleanup_free_ char *mem = m->memory_bytes ? quantity_bytes(m->memory_bytes) : NULL;
    json_t *res = resources(cpu, mem);
    if (res) json_object_set_new(c, "resources", res);
    json_object_set_new(c, "securityContext", container_security(m->capabilities));
    return c;
}

int sub_k8s_render_manifest(const sub_svc_manifest *m, const sub_k8s_admitted *a, const sub_k8s_opts *o,
                            json_t *items, sub_err *e) {
    const char *doc = m->path ? m->path : m->name;
    if (m->network == SUB_NET_HOST)
        return sub_err_setr(e, SUB_R_BAD_MANIFEST, SUB_KIND_INPUT, -EINVAL,
                            "%s: network: host is refused for Kubernetes: Kubernetes has no equivalent the "
                            "renderer will grant (hostNetwork puts the pod in the node's network namespace, "
                            "which breaks the isolation and escapes every NetworkPolicy); use network: private "
                            "with ports", doc);
    for (char **c = m->capabilities; c && *c; c++)
        if (streq(*c, "CAP_SYS_ADMIN"))
            return sub_err_setr(e, SUB_R_BAD_MANIFEST, SUB_KIND_INPUT, -EINVAL,
                                "%s: capabilities: CAP_SYS_ADMIN is refused for Kubernetes: the API server refuses it "
                                "together with allowPrivilegeEscalation: false, which the renderer keeps (as the "
                                "local noNewPrivileges); drop it", doc);
    json_t *out = json_array();
    int r = cluster_image_policy(doc, m->name, false, &m->ref, a, o, out, e);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    manifest_notes(m, o);

    /* NetworkPolicy: no egress at all; ingress only on the published ports */
    json_t *ingress = json_array();
    if (m->nports) {
        json_t *ports = json_array();
        for (size_t i = 0; i < m->nports; i++)
            json_array_append_new(ports, json_pack("{s:s,s:i}", "protocol", "TCP", "port", (int)m->ports[i].container_port));
        json_array_append_new(ingress, json_pack("{s:o}", "ports", ports));
    }
    json_array_append_new(out, network_policy(m->name, o, labels(m->name, "service"), annotations(false, &m->ref, a),
                                              ingress, json_array()));

    if (m->nports) {
        json_t *ports = json_array();
        for (size_t i = 0; i < m->nports; i++) {
            _cleanup_free_ char *pn = xasprintf("tcp-%u", m->ports[i].host_port);
            json_array_append_new(ports, json_pack("{s:s,s:s,s:i,s:i}", "name", pn, "protocol", "TCP", "port",
                                                   (int)m->ports[i].host_port, "targetPort",
                                                   (int)m->ports[i].container_port));
        }
        json_t *svc = object("v1", "Service", metadata(m->name, o, true, labels(m->name, "service"),
                                                       annotations(false, &m->ref, a)));
        json_object_set_new(svc, "spec", json_pack("{s:s,s:o,s:o}", "type", "ClusterIP", "selector",
                                                   selector_labels(m->name), "ports", ports));
        json_array_append_new(out, svc);
    }

    json_t *pod = json_object();
    if (m->runtime == SUB_RUNTIME_RUNSC) json_object_set_new(pod, "runtimeClassName", json_string(gvisor_class(o)));
    json_object_set_new(pod, "automountServiceAccountToken", json_false());
    json_object_set_new(pod, "enableServiceLinks", json_false());
    json_object_set_new(pod, "securityContext", pod_security(m->user));
    json_object_set_new(pod, "terminationGracePeriodSeconds", json_integer(((json_int_t)m->stop_grace_ms + 999) / 1000));
    json_t *c = service_container(m);
    json_object_set_new(pod, "containers", json_pack("[o]", c));
    tmp_volume(c, pod);

    json_t *spec = json_object();
    json_object_set_new(spec, "replicas", json_integer(1));
    json_object_set_new(spec, "selector", json_pack("{s:o}", "matchLabels", selector_labels(m->name)));
    /* the promotion guarantee: the old pod serves until the new one is ready */
    json_object_set_new(spec, "strategy", json_pack("{s:s,s:{s:i,s:i}}", "type", "RollingUpdate", "rollingUpdate",
                                                    "maxUnavailable", 0, "maxSurge", 1));
    if (m->readiness.kind != SUB_PROBE_NONE)
        json_object_set_new(spec, "progressDeadlineSeconds", json_integer(secs(m->readiness.deadline_ms)));
    json_object_set_new(spec, "template",
                        json_pack("{s:{s:o,s:o},s:o}", "metadata", "labels", labels(m->name, "service"), "annotations",
                                  annotations(false, &m->ref, a), "spec", pod));
    json_t *dep = object("apps/v1", "Deployment", metadata(m->name, o, true, labels(m->name, "service"),
                                                           annotations(false, &m->ref, a)));
    json_object_set_new(dep, "spec", spec);
    json_array_append_new(out, dep);
    json_array_extend(items, out);
    json_decref(out);
    return 0;
}

/* ---- jobspecs ---- */

static void jobspec_notes(const sub_jobspec *j, const sub_k8s_opts *o) {
    const char *n = j->name;
    if (j->tier == 0)
        note(o, "%s: tier: 0 (a process on the host kernel) has no Kubernetes equivalent (rendered as a Job in the "
                "RuntimeClass %s, a microVM: a stronger boundary); not rendered", n, runtime_class(o));
    if (j->stdin_data)
        note(o, "%s: stdin: %zu bytes have no Kubernetes equivalent (a Job's container reads no stdin); not "
                "rendered", n, j->stdin_len);
    if (j->ninputs)
        note(o, "%s: inputs: %zu file(s) have no Kubernetes equivalent here (mount them yourself, e.g. from a "
                "ConfigMap); not rendered", n, j->ninputs);
    if (j->outputs && j->outputs[0])
        note(o, "%s: outputs: copying files back has no Kubernetes equivalent (a Job keeps only its logs); not "
                "rendered", n);
    if (j->nprobes)
        note(o, "%s: probes: %zu reachability probe(s) have no Kubernetes equivalent (nothing records them from "
                "inside the pod); not rendered", n, j->nprobes);
    if (!j->user)
        note(o, "%s: user: absent: the local rule (the image's user unless it is root, then 65534) has no "
                "Kubernetes equivalent (rendered as runAsNonRoot: an image whose user is root is refused at "
                "start; set \"user\" to choose); not rendered", n);
    if (j->policy != SUB_IDENTITY_EXACT || j->identity)
        note(o, "%s: the identity policy (identity, repo_prefix, any_repo) has no ClusterImagePolicy equivalent "
                "(policy-controller checks the signature's digest, not its docker-reference); it was checked "
                "when rendering; not rendered", n);
}

int sub_k8s_render_jobspec(const sub_jobspec *j, const sub_k8s_admitted *a, const sub_k8s_opts *o, json_t *items,
                           sub_err *e) {
    const char *doc = j->path ? j->path : j->name;
    json_t *out = json_array();
    int r = cluster_image_policy(doc, j->name, true, &j->ref, a, o, out, e);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    jobspec_notes(j, o);

    /* NetworkPolicy: no ingress; egress only to the allowlist, one /32 and port each */
    json_t *egress = json_array();
    for (size_t i = 0; i < j->negress; i++) {
        _cleanup_free_ char *cidr = xasprintf("%s/32", j->egress[i].host);
        json_array_append_new(egress, json_pack("{s:[{s:{s:s}}],s:[{s:s,s:i}]}", "to", "ipBlock", "cidr", cidr,
                                                "ports", "protocol", "TCP", "port", (int)j->egress[i].port));
    }
    json_array_append_new(out, network_policy(j->name, o, labels(j->name, "job"), annotations(true, &j->ref, a),
                                              json_array(), egress));

    json_t *c = json_object();
    json_object_set_new(c, "name", json_string(j->name));
    json_object_set_new(c, "image", json_string(j->image));
    json_object_set_new(c, "imagePullPolicy", json_string("IfNotPresent"));
    if (j->command && j->command[0]) json_object_set_new(c, "command", strv_json(j->command));
    if (j->args && j->args[0]) json_object_set_new(c, "args", strv_json(j->args));
    if (j->workdir) json_object_set_new(c, "workingDir", json_string(j->workdir));
    if (j->env && j->env[0]) json_object_set_new(c, "env", env_json(j->env));
    _cleanup_free_ char *cpu = quantity_cpu(j->vcpus * 1000);
    _cleanup_free_ char *mem = quantity_bytes((uint64_t)j->memory_mb << 20);
    json_object_set_new(c, "resources", resources(cpu, mem));
    json_object_set_new(c, "securityContext", container_security(NULL));

    json_t *pod = json_object();
    json_object_set_new(pod, "restartPolicy", json_string("Never"));
    json_object_set_new(pod, "runtimeClassName", json_string(runtime_class(o)));
    json_object_set_new(pod, "automountServiceAccountToken", json_false());
    json_object_set_new(pod, "enableServiceLinks", json_false());
    json_object_set_new(pod, "securityContext", pod_security(j->user));
    json_object_set_new(pod, "containers", json_pack("[o]", c));
    tmp_volume(c, pod);

    json_t *job = object("batch/v1", "Job", metadata(j->name, o, true, labels(j->name, "job"),
                                                     annotations(true, &j->ref, a)));
    json_object_set_new(job, "spec",
                        json_pack("{s:I,s:i,s:i,s:{s:{s:o,s:o},s:o}}", "activeDeadlineSeconds", (json_int_t)j->timeout_s,
                                  "backoffLimit", 0, "ttlSecondsAfterFinished", SUB_K8S_JOB_TTL_S, "template",
                                  "metadata", "labels", labels(j->name, "job"), "annotations",
                                  annotations(true, &j->ref, a), "spec", pod));
    json_array_append_new(out, job);
    json_array_extend(items, out);
    json_decref(out);
    return 0;
}

/* ---- after the documents ---- */

static int str_cmp(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

json_t *sub_k8s_runtime_classes(const json_t *items, const sub_k8s_opts *o) {
    char **names = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) {
        json_t *spec = json_object_get(v, "spec");
        json_t *tpl = json_object_get(spec, "template");
        const char *rc = json_string_value(json_object_get(json_object_get(tpl, "spec"), "runtimeClassName"));
        if (!rc) continue;
        bool seen = false;
        for (char **p = names; p && *p; p++) seen |= streq(*p, rc);
        if (!seen) strv_push(&names, rc);
    }
    json_t *out = json_array();
    size_t n = strv_len(names);
    if (n) qsort(names, n, sizeof *names, str_cmp);
    for (size_t k = 0; k < n; k++) {
        /* the gVisor class runs containerd's runsc handler; any other class a handler of its own name
         * (Kata installs "kata", "kata-qemu", ...) */
        const char *handler = streq(names[k], gvisor_class(o)) ? "runsc" : names[k];
        json_t *rc = object("node.k8s.io/v1", "RuntimeClass",
                            metadata(names[k], o, false,
                                     json_pack("{s:s}", "app.kubernetes.io/managed-by", "substrate"), NULL));
        json_object_set_new(rc, "handler", json_string(handler));
        json_array_append_new(out, rc);
    }
    strv_free(names);
    return out;
}

int sub_k8s_check_unique(const json_t *items, sub_err *e) {
    size_t i, k;
    json_t *a, *b;
    json_array_foreach(items, i, a) {
        json_array_foreach(items, k, b) {
            if (k <= i) continue;
            json_t *ma = json_object_get(a, "metadata"), *mb = json_object_get(b, "metadata");
            if (json_equal(json_object_get(a, "kind"), json_object_get(b, "kind")) &&
                json_equal(json_object_get(ma, "name"), json_object_get(mb, "name")))
                return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                    "two files render a %s named \"%s\": give each service and job its own name",
                                    json_string_value(json_object_get(a, "kind")),
                                    json_string_value(json_object_get(ma, "name")));
        }
    }
    return 0;
}

int sub_k8s_check_egress_names(const char *text, size_t len, const char *path, sub_err *e) {
    json_error_t je;
    _cleanup_json_ json_t *root = json_loadb(text, len, 0, &je);
    json_t *allow = json_object_get(json_object_get(root, "egress"), "allow");
    size_t i;
    json_t *v;
    json_array_foreach(allow, i, v) {
        const char *s = json_string_value(v);
        if (!s) continue;
        const char *colon = strrchr(s, ':');
        size_t hl = colon ? (size_t)(colon - s) : strlen(s);
        char host[64];
        struct in_addr ia;
        snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host - 1 ? hl : sizeof host - 1), s);
        if (hl && hl < sizeof host && inet_pton(AF_INET, host, &ia) == 1) continue;
        _cleanup_free_ char *shown = sub_str_escape(s);
        return sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, -EINVAL,
                            "%s: egress.allow[%zu]: \"%.80s\" names a host, not an address: refused for "
                            "Kubernetes, where a NetworkPolicy has no host names, only ipBlocks (CIDR); give the "
                            "numeric IPv4 address (rendered as the ipBlock ADDRESS/32)", path, i, shown);
    }
    return 0;
}
