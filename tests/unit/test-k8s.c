/* render k8s: the pure mapping (a parsed manifest or jobspec plus an
 * admission outcome, no registry) and the YAML emitter. */
#include "substrate/json.h"
#include "substrate/k8s.h"
#include "substrate/strbuf.h"
#include "substrate/yamltree.h"
#include "unit.h"
#include "../yaml-back.h"
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define HEX64 "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01"
#define IMG "127.0.0.1:5000/substrate/hello@sha256:" HEX64
#define JIMG "127.0.0.1:5000/job@sha256:" HEX64
#define PEM_A "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
#define PEM_B "-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n"
#define KID_A "sha256:aaaa000000000000000000000000000000000000000000000000000000000000"
#define KID_B "sha256:bbbb000000000000000000000000000000000000000000000000000000000000"
#define DOC_DIGEST "sha256:dddd000000000000000000000000000000000000000000000000000000000000"

static const sub_k8s_key two_keys[] = {{KID_B, PEM_B}, {KID_A, PEM_A}}; /* out of order on purpose */
static const sub_k8s_admitted adm = {.doc_digest = DOC_DIGEST, .key_id = KID_A, .keys = two_keys, .nkeys = 2};

typedef struct notes {
    char **v;
} notes;
static void collect(void *ud, const char *msg) { strv_push(&((notes *)ud)->v, msg); }
static bool noted(const notes *n, const char *part) {
    for (char **p = n->v; p && *p; p++)
        if (strstr(*p, part)) return true;
    return false;
}

static int manifest(const char *yaml, sub_svc_manifest *m) {
    sub_err e = {0};
    int r = sub_svc_manifest_parse(yaml, strlen(yaml), "/srv/m.yaml", m, &e);
    if (r < 0) unit_fail(__FILE__, __LINE__, "manifest does not parse: %s", e.msg);
    return r;
}

static int jobspec(const char *text, sub_jobspec *j) {
    sub_err e = {0};
    int r = sub_jobspec_parse(text, strlen(text), "/srv/j.json", 3600, j, &e);
    if (r < 0) unit_fail(__FILE__, __LINE__, "jobspec does not parse: %s", e.msg);
    return r;
}

/* The item of this kind (the first). */
static json_t *item(json_t *items, const char *kind) {
    size_t i;
    json_t *v;
    json_array_foreach(items, i, v) if (streq(json_string_value(json_object_get(v, "kind")), kind)) return v;
    return NULL;
}

/* A value by path "a.b.0.c" (numbers index arrays). */
static json_t *at(json_t *v, const char *path) {
    _cleanup_free_ char *p = xstrdup(path);
    char *save = NULL;
    for (char *t = strtok_r(p, ".", &save); t && v; t = strtok_r(NULL, ".", &save)) {
        if (json_is_array(v)) v = json_array_get(v, strtoul(t, NULL, 10));
        else v = json_object_get(v, t);
    }
    return v;
}
static const char *str_at(json_t *v, const char *path) { return json_string_value(at(v, path)); }
static long long int_at(json_t *v, const char *path) {
    json_t *x = at(v, path);
    return json_is_integer(x) ? (long long)json_integer_value(x) : -999;
}

#define HELLO                                                                                      \
    "name: hello\nimage: " IMG "\n"                                                                \
    "ports: [\"127.0.0.1:8081:8080\"]\n"                                                           \
    "health: {http: \"http://127.0.0.1:8080/healthz\", interval: 2s, timeout: 1500ms, "            \
    "failure_threshold: 3, start_period: 1s}\n"                                                    \
    "readiness: {http: \"http://127.0.0.1:8080/readyz\", deadline: 20s}\n"                         \
    "stop_grace: 5s\nresources: {memory: 64Mi, pids: 64, cpu: \"0.5\"}\n"

TEST(k8s_manifest_deployment_mapping) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    if (manifest(HELLO "user: \"1000:2000\"\ncommand: [/bin/hello]\nargs: [--listen, \"0.0.0.0:8080\"]\n"
                       "env: {GREETING: \"yes\"}\ncapabilities: [CAP_NET_BIND_SERVICE]\nruntime: runsc\n",
                 &m) < 0)
        return;
    notes n = {0};
    sub_k8s_opts o = {.namespace_ = "prod", .note = collect, .ud = &n};
    _cleanup_json_ json_t *items = json_array();
    sub_err e = {0};
    CHECK_OK(sub_k8s_render_manifest(&m, &adm, &o, items, &e), &e);
    CHECK_INT(json_array_size(items), 4);
    const char *kinds[] = {"ClusterImagePolicy", "NetworkPolicy", "Service", "Deployment"};
    for (size_t i = 0; i < 4; i++) CHECK_STREQ(str_at(json_array_get(items, i), "kind"), kinds[i]);
    json_t *d = item(items, "Deployment");
    CHECK_STREQ(str_at(d, "apiVersion"), "apps/v1");
    CHECK_STREQ(str_at(d, "metadata.name"), "hello");
    CHECK_STREQ(str_at(d, "metadata.namespace"), "prod");
    json_t *lbl = at(d, "metadata.labels");
    CHECK_STREQ(json_string_value(json_object_get(lbl, "app.kubernetes.io/name")), "hello");
    CHECK_STREQ(json_string_value(json_object_get(lbl, "app.kubernetes.io/managed-by")), "substrate");
    json_t *ann = at(d, "metadata.annotations");
    CHECK_STREQ(json_string_value(json_object_get(ann, "substrate.dev/manifest-digest")), DOC_DIGEST);
    CHECK_STREQ(json_string_value(json_object_get(ann, "substrate.dev/image-digest")), "sha256:" HEX64);
    CHECK_STREQ(json_string_value(json_object_get(ann, "substrate.dev/key-id")), KID_A);
    CHECK_INT(int_at(d, "spec.replicas"), 1);
    CHECK_INT(int_at(d, "spec.strategy.rollingUpdate.maxUnavailable"), 0);
    CHECK_INT(int_at(d, "spec.progressDeadlineSeconds"), 20);
    json_t *pod = at(d, "spec.template.spec");
    CHECK(json_is_false(at(pod, "automountServiceAccountToken")));
    CHECK_STREQ(str_at(pod, "runtimeClassName"), "gvisor");
    CHECK(json_is_true(at(pod, "securityContext.runAsNonRoot")));
    CHECK_INT(int_at(pod, "securityContext.runAsUser"), 1000);
    CHECK_INT(int_at(pod, "securityContext.runAsGroup"), 2000);
    CHECK_STREQ(str_at(pod, "securityContext.seccompProfile.type"), "RuntimeDefault");
    CHECK_INT(int_at(pod, "terminationGracePeriodSeconds"), 5);
    json_t *c = at(pod, "containers.0");
    CHECK_STREQ(str_at(c, "image"), IMG);
    CHECK_STREQ(str_at(c, "command.0"), "/bin/hello");
    CHECK_STREQ(str_at(c, "args.1"), "0.0.0.0:8080");
    CHECK_STREQ(str_at(c, "env.0.name"), "GREETING");
    CHECK_STREQ(str_at(c, "env.0.value"), "yes");
    CHECK_INT(int_at(c, "ports.0.containerPort"), 8080);
    CHECK_STREQ(str_at(c, "livenessProbe.httpGet.path"), "/healthz");
    CHECK_INT(int_at(c, "livenessProbe.httpGet.port"), 8080);
    CHECK_INT(int_at(c, "livenessProbe.periodSeconds"), 2);
    CHECK_INT(int_at(c, "livenessProbe.timeoutSeconds"), 2); /* 1500 ms rounds up */
    CHECK_INT(int_at(c, "livenessProbe.failureThreshold"), 3);
    CHECK_INT(int_at(c, "livenessProbe.initialDelaySeconds"), 1);
    CHECK_STREQ(str_at(c, "readinessProbe.httpGet.path"), "/readyz");
    CHECK_STREQ(str_at(c, "resources.limits.memory"), "64Mi");
    CHECK_STREQ(str_at(c, "resources.requests.memory"), "64Mi");
    CHECK_STREQ(str_at(c, "resources.limits.cpu"), "500m");
    CHECK(json_is_false(at(c, "securityContext.allowPrivilegeEscalation")));
    CHECK(json_is_true(at(c, "securityContext.readOnlyRootFilesystem")));
    CHECK_STREQ(str_at(c, "securityContext.capabilities.drop.0"), "ALL");
    CHECK_STREQ(str_at(c, "securityContext.capabilities.add.0"), "NET_BIND_SERVICE");
    CHECK_STREQ(str_at(c, "volumeMounts.0.mountPath"), "/tmp");
    CHECK(at(pod, "volumes.0.emptyDir") != NULL);

    json_t *s = item(items, "Service");
    CHECK_STREQ(str_at(s, "spec.type"), "ClusterIP");
    CHECK_INT(int_at(s, "spec.ports.0.port"), 8081);
    CHECK_INT(int_at(s, "spec.ports.0.targetPort"), 8080);
    json_t *np = item(items, "NetworkPolicy");
    CHECK_STREQ(str_at(np, "spec.policyTypes.1"), "Egress");
    CHECK(json_is_array(at(np, "spec.egress")) && json_array_size(at(np, "spec.egress")) == 0);
    CHECK_INT(int_at(np, "spec.ingress.0.ports.0.port"), 8080);
    CHECK_INT(json_array_size(at(np, "spec.ingress")), 1);

    json_t *cip = item(items, "ClusterImagePolicy");
    CHECK_STREQ(str_at(cip, "apiVersion"), "policy.sigstore.dev/v1beta1");
    CHECK_STREQ(str_at(cip, "metadata.name"), "substrate-prod-hello");
    CHECK(at(cip, "metadata.namespace") == NULL); /* cluster-scoped */
    CHECK_STREQ(str_at(cip, "spec.images.0.glob"), "127.0.0.1:5000/substrate/hello*");
    CHECK_STREQ(str_at(cip, "spec.mode"), "enforce");
    CHECK_INT(json_array_size(at(cip, "spec.authorities")), 2);
    CHECK_STREQ(str_at(cip, "spec.authorities.0.key.data"), PEM_A); /* sorted by key id */
    CHECK_STREQ(str_at(cip, "spec.authorities.1.key.data"), PEM_B);
    CHECK_STREQ(str_at(cip, "spec.authorities.0.name"), "key-aaaa000000000000");

    CHECK(noted(&n, "hello: pids: 64 has no Kubernetes equivalent ("));
    CHECK(noted(&n, "hello: ports[0]: the host address 127.0.0.1:8081"));
    CHECK(!noted(&n, "escalate"));
    CHECK(!noted(&n, "restart"));
    strv_free(n.v);
}

TEST(k8s_manifest_root_none_and_runc) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    if (manifest("name: svc\nimage: " IMG "\nnetwork: none\nuser: \"0\"\nrestart: never\n"
                 "deep_align_interval: 1h\non_drift: halt\nbackoff: {initial: 1s, max: 10s}\n",
                 &m) < 0)
        return;
    notes n = {0};
    sub_k8s_opts o = {.note = collect, .ud = &n};
    _cleanup_json_ json_t *items = json_array();
    sub_err e = {0};
    CHECK_OK(sub_k8s_render_manifest(&m, &adm, &o, items, &e), &e);
    CHECK_INT(json_array_size(items), 3); /* no ports: no Service */
    CHECK(item(items, "Service") == NULL);
    json_t *d = item(items, "Deployment");
    CHECK(at(d, "metadata.namespace") == NULL);
    json_t *pod = at(d, "spec.template.spec");
    CHECK(at(pod, "runtimeClassName") == NULL);
    CHECK(json_is_false(at(pod, "securityContext.runAsNonRoot")));
    CHECK_INT(int_at(pod, "securityContext.runAsUser"), 0);
    CHECK(at(d, "spec.progressDeadlineSeconds") == NULL); /* no readiness probe */
    CHECK(at(pod, "containers.0.resources") == NULL);
    CHECK(at(pod, "containers.0.securityContext.capabilities.add") == NULL);
    json_t *np = item(items, "NetworkPolicy");
    CHECK_INT(json_array_size(at(np, "spec.ingress")), 0);
    CHECK_INT(json_array_size(at(np, "spec.egress")), 0);
    CHECK_STREQ(str_at(item(items, "ClusterImagePolicy"), "metadata.name"), "substrate-svc");
    CHECK(noted(&n, "svc: restart: never has no Kubernetes equivalent"));
    CHECK(noted(&n, "svc: deep_align_interval: 3600s"));
    CHECK(noted(&n, "svc: on_drift: halt"));
    CHECK(noted(&n, "svc: backoff: {initial: 1s, max: 10s}"));
    CHECK(!noted(&n, "pids"));
    strv_free(n.v);
}

TEST(k8s_manifest_refusals) {
    static const char *const bad[][2] = {
        {"name: h\nimage: " IMG "\nnetwork: host\n", "network: host is refused for Kubernetes"},
        {"name: h\nimage: " IMG "\ncapabilities: [CAP_SYS_ADMIN]\n", "CAP_SYS_ADMIN is refused"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_svc_manifest_ sub_svc_manifest m = {0};
        if (manifest(bad[i][0], &m) < 0) continue;
        _cleanup_json_ json_t *items = json_array();
        sub_err e = {0};
        CHECK_FAILS(sub_k8s_render_manifest(&m, &adm, &(sub_k8s_opts){0}, items, &e), -EINVAL);
        CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
        CHECK(strstr(e.msg, bad[i][1]) != NULL);
        CHECK(strstr(e.msg, "/srv/m.yaml") != NULL);
        CHECK_INT(json_array_size(items), 0); /* nothing appended */
    }
    /* hostNetwork's reason is given */
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    if (manifest("name: h\nimage: " IMG "\nnetwork: host\n", &m) < 0) return;
    sub_err e = {0};
    _cleanup_json_ json_t *items = json_array();
    (void)sub_k8s_render_manifest(&m, &adm, &(sub_k8s_opts){0}, items, &e);
    CHECK(strstr(e.msg, "isolation") != NULL);
}

#define JOB                                                                                        \
    "{\"name\": \"probe-demo\", \"image\": \"" JIMG "\", \"command\": [\"/bin/sh\", \"-c\"], "     \
    "\"args\": [\"echo hi\"], \"env\": {\"B\": \"2\", \"A\": \"1\"}, \"timeout\": 60, "            \
    "\"vcpus\": 2, \"memory_mb\": 256, \"egress\": {\"allow\": [\"192.0.2.7:443\", "               \
    "\"198.51.100.1:80\"]}, \"probes\": [\"192.0.2.1:80\"], \"user\": \"1000\"}"

TEST(k8s_jobspec_job_mapping) {
    _cleanup_jobspec_ sub_jobspec j = {0};
    if (jobspec(JOB, &j) < 0) return;
    notes n = {0};
    sub_k8s_admitted a = adm;
    a.doc_key_id = KID_B;
    sub_k8s_opts o = {.note = collect, .ud = &n};
    _cleanup_json_ json_t *items = json_array();
    sub_err e = {0};
    CHECK_OK(sub_k8s_render_jobspec(&j, &a, &o, items, &e), &e);
    CHECK_INT(json_array_size(items), 3);
    json_t *job = item(items, "Job");
    CHECK_STREQ(str_at(job, "apiVersion"), "batch/v1");
    CHECK_STREQ(str_at(job, "metadata.name"), "probe-demo");
    json_t *ann = at(job, "metadata.annotations");
    CHECK_STREQ(json_string_value(json_object_get(ann, "substrate.dev/jobspec-digest")), DOC_DIGEST);
    CHECK_STREQ(json_string_value(json_object_get(ann, "substrate.dev/jobspec-key-id")), KID_B);
    CHECK_STREQ(json_string_value(json_object_get(ann, "substrate.dev/key-id")), KID_A);
    CHECK_INT(int_at(job, "spec.activeDeadlineSeconds"), 60);
    CHECK_INT(int_at(job, "spec.backoffLimit"), 0);
    CHECK_INT(int_at(job, "spec.ttlSecondsAfterFinished"), SUB_K8S_JOB_TTL_S);
    json_t *pod = at(job, "spec.template.spec");
    CHECK_STREQ(str_at(pod, "restartPolicy"), "Never");
    CHECK_STREQ(str_at(pod, "runtimeClassName"), "kata");
    CHECK(json_is_false(at(pod, "automountServiceAccountToken")));
    CHECK_INT(int_at(pod, "securityContext.runAsUser"), 1000);
    CHECK_INT(int_at(pod, "securityContext.runAsGroup"), 1000); /* gid defaults to uid, as locally */
    json_t *c = at(pod, "containers.0");
    CHECK_STREQ(str_at(c, "resources.limits.cpu"), "2");
    CHECK_STREQ(str_at(c, "resources.requests.memory"), "256Mi");
    CHECK_STREQ(str_at(c, "env.0.name"), "A"); /* sorted, as the jobspec parser keeps them */
    CHECK_STREQ(str_at(c, "args.0"), "echo hi");
    json_t *np = item(items, "NetworkPolicy");
    CHECK_INT(json_array_size(at(np, "spec.ingress")), 0);
    CHECK_INT(json_array_size(at(np, "spec.egress")), 2);
    CHECK_STREQ(str_at(np, "spec.egress.0.to.0.ipBlock.cidr"), "192.0.2.7/32");
    CHECK_INT(int_at(np, "spec.egress.0.ports.0.port"), 443);
    CHECK_STREQ(str_at(np, "spec.egress.0.ports.0.protocol"), "TCP");
    CHECK_STREQ(str_at(np, "spec.egress.1.to.0.ipBlock.cidr"), "198.51.100.1/32");
    CHECK_STREQ(str_at(item(items, "ClusterImagePolicy"), "spec.images.0.glob"), "127.0.0.1:5000/job*");
    CHECK(noted(&n, "probe-demo: probes: 1 reachability probe(s) have no Kubernetes equivalent"));
    CHECK(!noted(&n, "user"));
    strv_free(n.v);

    /* --runtime-class, and the RuntimeClass objects */
    o = (sub_k8s_opts){.runtime_class = "kata-qemu"};
    _cleanup_json_ json_t *items2 = json_array();
    CHECK_OK(sub_k8s_render_jobspec(&j, &a, &o, items2, &e), &e);
    CHECK_STREQ(str_at(item(items2, "Job"), "spec.template.spec.runtimeClassName"), "kata-qemu");
    _cleanup_json_ json_t *rcs = sub_k8s_runtime_classes(items2, &o);
    CHECK_INT(json_array_size(rcs), 1);
    CHECK_STREQ(str_at(rcs, "0.metadata.name"), "kata-qemu");
    CHECK_STREQ(str_at(rcs, "0.handler"), "kata-qemu");
    CHECK_STREQ(str_at(rcs, "0.apiVersion"), "node.k8s.io/v1");
    /* the same job twice: refused (two Jobs of one name) */
    json_array_extend(items2, items);
    CHECK_FAILS(sub_k8s_check_unique(items2, &e), -EINVAL);
    CHECK(strstr(e.msg, "probe-demo") != NULL);
}

TEST(k8s_jobspec_unmapped_notes) {
    _cleanup_jobspec_ sub_jobspec j = {0};
    if (jobspec("{\"name\": \"t0\", \"image\": \"" JIMG "\", \"timeout\": 5, \"tier\": 0, \"stdin\": \"x\", "
                "\"inputs\": [{\"path\": \"/in/a\", \"content\": \"a\"}], \"outputs\": {\"paths\": [\"/out/r\"]}}",
                &j) < 0)
        return;
    notes n = {0};
    _cleanup_json_ json_t *items = json_array();
    sub_err e = {0};
    CHECK_OK(sub_k8s_render_jobspec(&j, &adm, &(sub_k8s_opts){.note = collect, .ud = &n}, items, &e), &e);
    CHECK(noted(&n, "t0: tier: 0"));
    CHECK(noted(&n, "t0: stdin: 1 bytes"));
    CHECK(noted(&n, "t0: inputs: 1 file(s)"));
    CHECK(noted(&n, "t0: outputs:"));
    CHECK(noted(&n, "t0: user: absent"));
    for (char **p = n.v; p && *p; p++) CHECK(str_has_suffix(*p, "; not rendered"));
    json_t *pod = at(item(items, "Job"), "spec.template.spec");
    CHECK(json_is_true(at(pod, "securityContext.runAsNonRoot")));
    CHECK(at(pod, "securityContext.runAsUser") == NULL);
    strv_free(n.v);
}

TEST(k8s_egress_names_refused) {
    sub_err e = {0};
    const char *ok = "{\"egress\": {\"allow\": [\"10.0.0.1:443\"]}}";
    CHECK_OK(sub_k8s_check_egress_names(ok, strlen(ok), "j.json", &e), &e);
    const char *bad = "{\"egress\": {\"allow\": [\"10.0.0.1:443\", \"example.com:443\"]}}";
    CHECK_FAILS(sub_k8s_check_egress_names(bad, strlen(bad), "j.json", &e), -EINVAL);
    CHECK_REASON(&e, SUB_R_BAD_JOBSPEC);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK(strstr(e.msg, "j.json: egress.allow[1]") != NULL);
    CHECK(strstr(e.msg, "NetworkPolicy has no host names, only ipBlocks") != NULL);
    const char *none = "not json";
    CHECK_OK(sub_k8s_check_egress_names(none, strlen(none), "j.json", &e), &e);
}

TEST(k8s_opts_checked) {
    sub_err e = {0};
    CHECK_OK(sub_k8s_opts_check(&(sub_k8s_opts){.namespace_ = "prod-1", .runtime_class = "kata.qemu"}, &e), &e);
    CHECK_FAILS(sub_k8s_opts_check(&(sub_k8s_opts){.namespace_ = "Prod"}, &e), -EINVAL);
    CHECK(strstr(e.msg, "--namespace") != NULL);
    CHECK_FAILS(sub_k8s_opts_check(&(sub_k8s_opts){.runtime_class = "-kata"}, &e), -EINVAL);
    CHECK_FAILS(sub_k8s_opts_check(&(sub_k8s_opts){.gvisor_class = "a..b"}, &e), -EINVAL);
}

/* ---- the YAML emitter: what libyaml reads back is the json_t ---- */

static json_t *yaml_back(const char *text) {
    sub_err e = {0};
    sub_yctx c = {.file = "emitted", .doc = "YAML", .e = &e};
    _cleanup_ynode_ sub_ynode *root = NULL;
    if (sub_yaml_load(&c, text, strlen(text), &root) < 0) {
        unit_fail(__FILE__, __LINE__, "libyaml does not read it back: %s\n%s", e.msg, text);
        return NULL;
    }
    return tree_json(root);
}

TEST(k8s_yaml_round_trip_quoting) {
    static const char *const strs[] = {
        "true", "True", "no", "NO", "y", "n", "on", "off", "null", "Null", "~", "", "1.0", "0644", "0x1F", "1e3",
        "1_000", ".inf", ".NaN", "-1", "+1", "12:30", "2024-01-01", " lead", "trail ", "a: b", "a:b", "#x", "a #b",
        "-", "- x", "--", "---", "...", "?", "? x", "@at", "%p", "*star", "&amp", "!bang", "|pipe", ">gt", "[x]",
        "{y}", "a,b", "quote\"s", "back\\slash", "'single'", "tab\there", "line\nbreak", "ends\n", "two\n\n",
        "\nlead newline", "nel\xc2\x85x", "bom\xef\xbb\xbfx", "uml\xc3\xa4ut", "emoji\xf0\x9f\x98\x80", "ctl\x01x",
        "del\x7fx", "plain", "app.kubernetes.io/name", "/healthz", "Egress", PEM_A,
        "-----BEGIN PUBLIC KEY-----\n MFk\n", "a\r\nb", "trailing space \nx\n", "x\n\n\n"};
    _cleanup_json_ json_t *doc = json_object();
    json_t *list = json_array();
    json_t *map = json_object();
    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        json_array_append_new(list, json_string(strs[i]));
        char k[16];
        snprintf(k, sizeof k, "k%zu", i);
        json_object_set_new(map, strs[i][0] ? strs[i] : k, json_string(strs[i])); /* as keys too */
    }
    json_object_set_new(doc, "list", list);
    json_object_set_new(doc, "map", map);
    json_object_set_new(doc, "numbers", json_pack("[i,i,I]", 0, -5, (json_int_t)1 << 40));
    json_object_set_new(doc, "bools", json_pack("[b,b,n]", 1, 0));
    json_object_set_new(doc, "empty", json_pack("{s:[],s:{},s:[[],{}]}", "a", "o", "both"));
    json_object_set_new(doc, "nested", json_pack("[[s,[s]],{s:[{s:s}]}]", "a", "b", "k", "x", "y"));
    _cleanup_free_ char *y = sub_k8s_yaml_doc(doc);
    _cleanup_json_ json_t *back = yaml_back(y);
    CHECK(back && json_equal(back, doc));
    if (back && !json_equal(back, doc)) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(back, "list"), i, v) {
            json_t *want = json_array_get(list, i);
            if (!json_equal(v, want)) unit_fail(__FILE__, __LINE__, "list[%zu]: \"%s\" came back changed", i, strs[i]);
        }
    }
    /* the output is plain ASCII, and a PEM is a literal block */
    for (const char *p = y; *p; p++) CHECK((unsigned char)*p < 0x80 && (*p == '\n' || (unsigned char)*p >= 0x20));
    CHECK(strstr(y, "- |\n  -----BEGIN PUBLIC KEY-----\n  AAAA\n") != NULL);
    CHECK(strstr(y, "- \"true\"\n") != NULL);
    CHECK(strstr(y, "- \"0644\"\n") != NULL);
    CHECK(strstr(y, "- plain\n") != NULL);
}

TEST(k8s_output_deterministic_and_formats_agree) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    if (manifest(HELLO, &m) < 0) return;
    _cleanup_jobspec_ sub_jobspec j = {0};
    if (jobspec(JOB, &j) < 0) return;
    /* the same input, keys given in either order: the same bytes */
    sub_k8s_key rev[] = {two_keys[1], two_keys[0]};
    sub_k8s_admitted a2 = adm;
    a2.keys = rev;
    char *out[2][2];
    for (int round = 0; round < 2; round++) {
        _cleanup_json_ json_t *items = json_array();
        sub_err e = {0};
        sub_k8s_opts o = {.with_runtime_class = true};
        CHECK_OK(sub_k8s_render_manifest(&m, round ? &a2 : &adm, &o, items, &e), &e);
        CHECK_OK(sub_k8s_render_jobspec(&j, round ? &a2 : &adm, &o, items, &e), &e);
        out[round][0] = sub_k8s_emit(items, SUB_K8S_YAML);
        out[round][1] = sub_k8s_emit(items, SUB_K8S_JSON);
    }
    CHECK_STREQ(out[0][0], out[1][0]);
    CHECK_STREQ(out[0][1], out[1][1]);
    /* JSON: a v1 List; YAML: the same objects, one document each */
    json_error_t je;
    _cleanup_json_ json_t *list = json_loads(out[0][1], 0, &je);
    CHECK(list != NULL);
    CHECK_STREQ(json_string_value(json_object_get(list, "kind")), "List");
    CHECK_STREQ(json_string_value(json_object_get(list, "apiVersion")), "v1");
    json_t *items = json_object_get(list, "items");
    CHECK_INT(json_array_size(items), 7);
    _cleanup_free_ char *y = xstrdup(out[0][0]);
    size_t i = 0;
    for (char *doc = y; doc; i++) {
        char *sep = strstr(doc, "\n---\n");
        if (sep) sep[1] = 0;
        _cleanup_json_ json_t *back = yaml_back(doc);
        CHECK(back && json_equal(back, json_array_get(items, i)));
        doc = sep ? sep + 5 : NULL;
    }
    CHECK_INT(i, 7);
    for (int r = 0; r < 2; r++) free(out[r][0]), free(out[r][1]);
}

/* YAML limits an implicit key to 1024 characters: a longer key is written
 * explicitly ("? KEY" then ": VALUE"), and reads back, with any value */
TEST(k8s_yaml_long_key) {
    char key[1201];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    _cleanup_json_ json_t *doc = json_pack("{s:s,s:[s,s],s:{s:i},s:s}", key, "v", "list", "a", "b", "m", key, 1, "z", "1.0");
    json_object_set_new(json_object_get(doc, "m"), "short", json_pack("[s]", key));
    _cleanup_free_ char *y = sub_k8s_yaml_doc(doc);
    CHECK(strstr(y, "? kkkk") != NULL);
    _cleanup_json_ json_t *back = yaml_back(y);
    CHECK(back && json_equal(back, doc));
    json_object_set_new(doc, key, json_pack("[s,{s:s}]", "x", key, "y")); /* a sequence as its value */
    _cleanup_free_ char *y2 = sub_k8s_yaml_doc(doc);
    _cleanup_json_ json_t *back2 = yaml_back(y2);
    CHECK(back2 && json_equal(back2, doc));
}
