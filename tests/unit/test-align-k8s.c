/* align --k8s: the verdict over pod lists shaped like the Kubernetes API's
 * (tests/fixtures/k8s/pods), with the signature check's outcome given (no
 * registry here: tests/integration/k8s-align.sh checks real signatures), and
 * the bounded, time-limited runner kubectl goes through. */
#include "substrate/json.h"
#include "substrate/proc.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"
#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define D "sha256:5d7e0a4c2b9f18e6a3c4d1f07b2e9a8c6d5f4e3b2a1908f7e6d5c4b3a2918f7e"
#define OLD "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define REPO "127.0.0.1:5000/hello"

static const sub_t1_check SIG_OK = {.name = "signature", .result = 1, .detail = "verifies now: signed by key k1"};
static const sub_t1_check SIG_REFUSED = {.name = "signature", .result = 0,
                                         .detail = "does not verify now: no signature for " REPO "@" D};
static const sub_t1_check SIG_UNDECIDED = {.name = "signature", .result = -1,
                                           .detail = "cannot decide: registry unreachable"};

static void manifest(sub_svc_manifest *m) {
    static const char y[] = "name: hello\nimage: " REPO "@" D "\n";
    sub_err e = {0};
    *m = (sub_svc_manifest){0};
    CHECK_OK(sub_svc_manifest_parse(y, strlen(y), "/srv/hello.yaml", m, &e), &e);
}

static json_t *fixture(const char *name) {
    _cleanup_free_ char *rel = xasprintf("k8s/pods/%s", name);
    size_t n = 0;
    _cleanup_free_ char *text = unit_read_shared(rel, &n);
    json_t *j = NULL;
    sub_err e = {0};
    CHECK_OK(sub_t1_k8s_pods_parse(text, n, rel, &j, &e), &e);
    return j ? j : json_pack("{s:s,s:[]}", "kind", "List", "items");
}

/* Evaluate a pod list with a signature outcome. */
static void eval(const json_t *pods, const char *ns, const sub_t1_check *sig, sub_t1_k8s_result *res) {
    _cleanup_svc_manifest_ sub_svc_manifest m;
    manifest(&m);
    sub_err e = {0};
    CHECK_OK(sub_t1_align_k8s_eval(&m, pods, ns, sig, sig->result > 0 ? "k1" : "", res, &e), &e);
}

static void eval_file(const char *name, const sub_t1_check *sig, sub_t1_k8s_result *res) {
    _cleanup_json_ json_t *j = fixture(name);
    eval(j, NULL, sig, res);
}

static const sub_t1_check *check(const sub_t1_k8s_result *r, const char *name) {
    for (size_t i = 0; i < r->a.nchecks; i++)
        if (!strcmp(r->a.checks[i].name, name)) return &r->a.checks[i];
    unit_fail(__FILE__, __LINE__, "no check %s", name);
    static const sub_t1_check none = {.name = "?", .result = 99};
    return &none;
}

static bool has_reason(char **v, const char *want) {
    for (char **p = v; p && *p; p++)
        if (!strcmp(*p, want)) return true;
    return false;
}

static void dump_reasons(const sub_t1_k8s_result *r) {
    for (char **p = r->a.reasons; p && *p; p++) printf("#   reason: %s\n", *p);
}

#define CHECK_REASON_LINE(r, want)                                                                 \
    do {                                                                                           \
        if (!has_reason((r)->a.reasons, (want))) {                                                 \
            unit_fail(__FILE__, __LINE__, "no reason \"%s\"", (want));                             \
            dump_reasons(r);                                                                       \
        }                                                                                          \
    } while (0)

static bool drift(const sub_t1_k8s_result *r) { return !r->a.aligned && !r->a.undecided; }

TEST(align_k8s_all_pods_on_the_digest_and_ready_aligned) {
    sub_t1_k8s_result r;
    eval_file("aligned.json", &SIG_OK, &r);
    CHECK(r.a.aligned);
    CHECK(!r.a.undecided);
    CHECK_INT(r.npods, 2);
    CHECK_INT(strv_len(r.a.reasons), 0);
    CHECK_STREQ(r.a.service, "hello");
    CHECK_STREQ(r.a.manifest_digest, D);
    CHECK_STREQ(r.a.running_digest, D);
    CHECK_STREQ(r.a.key_id, "k1");
    CHECK_INT(r.a.nchecks, 4);
    for (size_t i = 0; i < r.a.nchecks; i++) CHECK_INT(r.a.checks[i].result, 1);
    /* docker's "docker-pullable://REG/REPO@D" and containerd's "REG/REPO@D" alike */
    CHECK(str_has_prefix(r.pods[0].containers[0].image_id, "docker-pullable://"));
    CHECK(str_has_prefix(r.pods[1].containers[0].image_id, REPO "@"));
    CHECK_STREQ(r.pods[0].digest, D);
    CHECK_STREQ(r.pods[1].digest, D);
    CHECK_STREQ(r.pods[0].name, "hello-7d9c5b8f4-x2v9k");
    CHECK(r.pods[0].ready && r.pods[1].ready);
    _cleanup_json_ json_t *j = sub_t1_align_k8s_json(&r);
    CHECK_STREQ(json_string_value(json_object_get(j, "verdict")), "ALIGNED");
    CHECK_STREQ(json_string_value(json_object_get(j, "target")), "k8s");
    CHECK_STREQ(json_string_value(json_object_get(j, "running_digest")), D);
    CHECK_INT(json_array_size(json_object_get(j, "pods")), 2);
    json_t *p0 = json_array_get(json_object_get(j, "pods"), 0);
    CHECK_STREQ(json_string_value(json_object_get(p0, "phase")), "Running");
    CHECK(json_is_true(json_object_get(p0, "ready")));
    CHECK_INT(json_array_size(json_object_get(p0, "reasons")), 0);
    CHECK_INT(json_array_size(json_object_get(j, "checks")), 4);
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_one_pod_on_another_digest_drift_naming_it) {
    sub_t1_k8s_result r;
    eval_file("other-digest.json", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-5f6b7c8d9-abcde: runs " OLD " (manifest " D ")");
    CHECK_INT(strv_len(r.a.reasons), 1); /* the two pods on the digest are not named */
    CHECK_INT(check(&r, "digest")->result, 0);
    CHECK(strstr(check(&r, "digest")->detail, "1 of 3 pods differ") != NULL);
    CHECK_INT(check(&r, "running")->result, 1);
    CHECK_INT(check(&r, "ready")->result, 1);
    CHECK_STREQ(r.a.running_digest, ""); /* two digests run */
    CHECK_INT(strv_len(r.running_digests), 2);
    CHECK_STREQ(r.running_digests[0], OLD);
    CHECK_STREQ(r.running_digests[1], D);
    CHECK_STREQ(r.pods[1].digest, OLD);
    CHECK_INT(strv_len(r.pods[0].reasons), 0);
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_pod_by_tag_drift) {
    sub_t1_k8s_result r;
    eval_file("by-tag.json", &SIG_OK, &r);
    /* its imageID is the manifest's digest, but the spec names a tag that can move */
    CHECK_STREQ(r.pods[0].digest, D);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-6c4d2e1f0-tag01: image by tag " REPO ":1.0 (the manifest pins " D " by digest)");
    CHECK_INT(check(&r, "digest")->result, 0);
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_no_pods_drift_not_running) {
    sub_t1_k8s_result r;
    eval_file("empty.json", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_INT(r.npods, 0);
    CHECK_REASON_LINE(&r, "no pods: not running");
    CHECK_INT(check(&r, "running")->result, 0);
    CHECK_INT(check(&r, "digest")->result, 0);
    CHECK_STREQ(r.a.running_digest, "");
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_pod_not_ready_drift) {
    sub_t1_k8s_result r;
    eval_file("not-ready.json", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-nr7wq: not ready (condition Ready: False, ContainersNotReady)");
    CHECK_INT(check(&r, "ready")->result, 0);
    CHECK_INT(check(&r, "digest")->result, 1); /* it runs the right digest: only readiness is wrong */
    CHECK(!r.pods[1].ready);
    sub_t1_k8s_result_done(&r);

    /* the condition says True but the container is not ready: still not ready */
    _cleanup_json_ json_t *j = fixture("aligned.json");
    json_t *cs = json_array_get(json_object_get(json_object_get(json_array_get(json_object_get(j, "items"), 0), "status"),
                                                "containerStatuses"), 0);
    json_object_set_new(cs, "ready", json_false());
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-x2v9k: not ready (container hello is not ready)");
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_pending_and_failed_pods_drift) {
    sub_t1_k8s_result r;
    eval_file("pending.json", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-pnd42: not running (phase Pending)");
    CHECK_INT(check(&r, "running")->result, 0);
    CHECK_STREQ(r.pods[1].digest, ""); /* no containerStatuses yet */
    CHECK_INT(r.pods[1].containers[0].image_id[0], 0);
    sub_t1_k8s_result_done(&r);

    eval_file("failed.json", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-f0001: not running (phase Failed)");
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_signature_refused_drift_undecided_exit3) {
    sub_t1_k8s_result r;
    eval_file("aligned.json", &SIG_REFUSED, &r);
    CHECK(drift(&r));
    CHECK_INT(check(&r, "signature")->result, 0);
    CHECK_REASON_LINE(&r, "signature: does not verify now: no signature for " REPO "@" D);
    sub_t1_k8s_result_done(&r);

    /* the registry cannot be asked and no recent verification: never ALIGNED */
    eval_file("aligned.json", &SIG_UNDECIDED, &r);
    CHECK(!r.a.aligned);
    CHECK(r.a.undecided);
    _cleanup_json_ json_t *j = sub_t1_align_k8s_json(&r);
    CHECK_STREQ(json_string_value(json_object_get(j, "verdict")), "UNDECIDED");
    sub_t1_k8s_result_done(&r);

    /* undecided, but a pod differs: that is DRIFT whatever the signature */
    eval_file("other-digest.json", &SIG_UNDECIDED, &r);
    CHECK(drift(&r));
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_refuses_what_is_not_a_pod_list) {
    static const struct {
        const char *file, *text, *want;
    } cases[] = {
        {"truncated.json", NULL, "not valid JSON"},
        {"single-pod.json", NULL, "a single Pod, not a list of pods"},
        {"deployment.json", NULL, "kind Deployment"},
        {NULL, "", "not valid JSON"},
        {NULL, "[]", "the document is an array"},
        {NULL, "{\"items\": []}", "no \"kind\""},
        {NULL, "{\"kind\": \"List\"}", "no \"items\""},
        {NULL, "{\"kind\": \"List\", \"items\": {}}", "\"items\" is an object, not an array"},
        {NULL, "{\"kind\": \"List\", \"items\": [7]}", "items[0] is a number"},
        {NULL, "{\"kind\": \"List\", \"items\": [{\"kind\": \"Service\", \"metadata\": {\"name\": \"x\"}}]}",
         "items[0] is a Service"},
        {NULL, "{\"kind\": \"List\", \"items\": [{\"kind\": \"Pod\", \"metadata\": {}}]}", "items[0] has no metadata.name"},
        {NULL, "{\"kind\": \"List\", \"items\": [{\"metadata\": {\"name\": \"p\"}, \"spec\": {\"containers\": 1}}]}",
         "pod p: spec.containers is a number"},
        {NULL, "{\"kind\": \"List\", \"items\": [], \"items\": []}", "not valid JSON"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        _cleanup_free_ char *rel = cases[i].file ? xasprintf("k8s/pods/%s", cases[i].file) : NULL;
        size_t n = 0;
        _cleanup_free_ char *text = rel ? unit_read_shared(rel, &n) : xstrdup(cases[i].text);
        if (!rel) n = strlen(text);
        json_t *j = NULL;
        sub_err e = {0};
        int r = sub_t1_k8s_pods_parse(text, n, "pods.json", &j, &e);
        if (r != -EINVAL || e.kind != SUB_KIND_INPUT || e.reason != SUB_R_BAD_POD_LIST || j)
            unit_fail(__FILE__, __LINE__, "case %zu: expected a bad_pod_list refusal, got %d: %s", i, r, e.msg);
        if (!strstr(e.msg, cases[i].want) || !str_has_prefix(e.msg, "pods.json: ") ||
            !strstr(e.msg, "kubectl get pods -l app.kubernetes.io/name=NAME -o json"))
            unit_fail(__FILE__, __LINE__, "case %zu: message lacks \"%s\" (or the file, or what to do): %s", i,
                      cases[i].want, e.msg);
        CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    }
    /* the evaluation refuses the same documents (a caller that skipped the parse) */
    _cleanup_json_ json_t *bad = json_pack("{s:s}", "kind", "List");
    _cleanup_svc_manifest_ sub_svc_manifest m;
    manifest(&m);
    sub_t1_k8s_result r;
    sub_err e = {0};
    CHECK_FAILS(sub_t1_align_k8s_eval(&m, bad, NULL, &SIG_OK, "k1", &r, &e), -EINVAL);
    CHECK_REASON(&e, SUB_R_BAD_POD_LIST);
    CHECK(!r.a.aligned);
    sub_t1_k8s_result_done(&r);
    /* a PodList (the API's own answer, items without kind) is a list too */
    _cleanup_json_ json_t *pl = fixture("aligned.json");
    json_object_set_new(pl, "kind", json_string("PodList"));
    json_object_del(json_array_get(json_object_get(pl, "items"), 0), "kind");
    eval(pl, NULL, &SIG_OK, &r);
    CHECK(r.a.aligned);
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_service_container_is_chosen_by_name) {
    /* a sidecar by tag from another repository is not the service's container */
    sub_t1_k8s_result r;
    eval_file("sidecar.json", &SIG_OK, &r);
    CHECK(r.a.aligned);
    CHECK_INT(r.pods[0].ncontainers, 1);
    CHECK_STREQ(r.pods[0].containers[0].name, "hello");
    sub_t1_k8s_result_done(&r);

    /* no container named hello: each one with an image of the manifest's repository is checked */
    _cleanup_json_ json_t *j = fixture("sidecar.json");
    json_t *pod = json_array_get(json_object_get(j, "items"), 0);
    json_t *c0 = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    json_t *s0 = json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"), 0);
    json_object_set_new(c0, "name", json_string("app"));
    json_object_set_new(s0, "name", json_string("app"));
    eval(j, NULL, &SIG_OK, &r);
    CHECK(r.a.aligned);
    CHECK_INT(r.pods[0].ncontainers, 1);
    CHECK_STREQ(r.pods[0].containers[0].name, "app");
    sub_t1_k8s_result_done(&r);

    /* and none at all: DRIFT saying so */
    json_object_set_new(c0, "image", json_string("127.0.0.1:5000/other@" D));
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-sc001: no container named hello, and none of its 2 containers runs "
                          "an image of " REPO);
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_image_id_and_repository_forms) {
    sub_t1_k8s_result r;
    /* docker's config-digest form names no pulled digest */
    _cleanup_json_ json_t *j = fixture("aligned.json");
    json_t *pod = json_array_get(json_object_get(j, "items"), 0);
    json_t *s0 = json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"), 0);
    json_object_set_new(s0, "imageID", json_string("docker://" OLD));
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-x2v9k: imageID docker://" OLD " carries no digest");
    sub_t1_k8s_result_done(&r);

    /* the last '@' counts */
    json_object_set_new(s0, "imageID", json_string("docker-pullable://a@b/" REPO "@" D));
    eval(j, NULL, &SIG_OK, &r);
    CHECK(r.a.aligned);
    sub_t1_k8s_result_done(&r);

    /* the same digest from another repository is not the image the manifest names */
    json_t *c0 = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    json_object_set_new(c0, "image", json_string("127.0.0.1:5000/mirror/hello@" D));
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-x2v9k: image 127.0.0.1:5000/mirror/hello@" D
                          " is not from the manifest's repository " REPO);
    sub_t1_k8s_result_done(&r);

    /* a pod labelled for another service does not belong in this list */
    json_object_set_new(c0, "image", json_string(REPO "@" D));
    json_object_set_new(json_object_get(json_object_get(pod, "metadata"), "labels"), "app.kubernetes.io/name",
                        json_string("other"));
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-7d9c5b8f4-x2v9k: labelled app.kubernetes.io/name=other, not hello: a pod of "
                          "another service");
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_terminating_pods) {
    /* an old pod on its way out still runs: named, so not ALIGNED until it is gone */
    sub_t1_k8s_result r;
    eval_file("terminating.json", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK(r.pods[1].terminating);
    CHECK_REASON_LINE(&r, "pod hello-5f6b7c8d9-old01 (terminating): runs " OLD " (manifest " D ")");
    CHECK_INT(check(&r, "ready")->result, 1); /* its readiness does not count */
    sub_t1_k8s_result_done(&r);

    /* only terminating pods: nothing will keep running */
    _cleanup_json_ json_t *j = fixture("terminating.json");
    json_array_remove(json_object_get(j, "items"), 0);
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_INT(check(&r, "running")->result, 0);
    CHECK(strstr(check(&r, "running")->detail, "no pods: not running") != NULL);
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_namespace_leaves_other_namespaces_out) {
    _cleanup_json_ json_t *j = fixture("namespaces.json");
    sub_t1_k8s_result r;
    eval(j, "prod", &SIG_OK, &r);
    CHECK(r.a.aligned);
    CHECK_INT(r.npods, 1);
    CHECK_INT(r.ignored, 1);
    sub_t1_k8s_result_done(&r);
    eval(j, NULL, &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_REASON_LINE(&r, "pod hello-5f6b7c8d9-stg01: runs " OLD " (manifest " D ")");
    sub_t1_k8s_result_done(&r);
    eval(j, "dev", &SIG_OK, &r);
    CHECK(drift(&r));
    CHECK_INT(r.ignored, 2);
    CHECK_REASON_LINE(&r, "no pods: not running");
    sub_t1_k8s_result_done(&r);
}

TEST(align_k8s_kubectl_missing_is_an_environment_error) {
    _cleanup_svc_manifest_ sub_svc_manifest m;
    manifest(&m);
    const char *old = getenv("PATH");
    _cleanup_free_ char *saved = old ? xstrdup(old) : NULL;
    setenv("PATH", unit_tmpdir(), 1); /* an empty directory: no kubectl */
    sub_t1_align_k8s_opts o = {.m = &m};
    sub_t1_k8s_result r;
    sub_err e = {0};
    int rc = sub_t1_align_k8s(&o, &r, &e);
    if (saved) setenv("PATH", saved, 1);
    else unsetenv("PATH");
    CHECK_INT(rc, -ENOENT);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_ENV);
    CHECK(strstr(e.msg, "kubectl is not on PATH") && strstr(e.msg, "--pods FILE") && strstr(e.msg, "--pods -"));
    sub_t1_k8s_result_done(&r);

    /* a pod list file that is not there: input */
    o.pods_path = "/nonexistent/pods.json";
    sub_err_clear(&e);
    CHECK(sub_t1_align_k8s(&o, &r, &e) < 0);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK(strstr(e.msg, "/nonexistent/pods.json") != NULL);
    sub_t1_k8s_result_done(&r);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

TEST(align_k8s_capture_timeout_runner) {
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.stdin_fd = SUB_FD_NULL;
    char *out = NULL, *err = NULL;
    size_t len = 0;
    int st = -1;
    sub_err e = {0};
    char *const ok[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    CHECK_OK(sub_run_capture_timeout(ok, &po, 1024, 5000, &out, &len, &err, &st, &e), &e);
    CHECK_STREQ(out, "out\n");
    CHECK_INT(len, 4);
    CHECK_STREQ(err, "err\n");
    CHECK_INT(st, 3);
    free(out);
    free(err);

    /* a program that hangs is stopped at the deadline */
    char *const hang[] = {"sleep", "30", NULL};
    int64_t t0 = now_ms();
    sub_err_clear(&e);
    CHECK_FAILS(sub_run_capture_timeout(hang, &po, 1024, 300, &out, &len, &err, &st, &e), -ETIMEDOUT);
    CHECK(now_ms() - t0 < 5000);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_ENV);
    CHECK(out == NULL && err == NULL);

    /* more than max on stdout: stopped, refused */
    char *const big[] = {"sh", "-c", "yes | head -c 100000; exec sleep 30", NULL};
    t0 = now_ms();
    sub_err_clear(&e);
    CHECK_FAILS(sub_run_capture_timeout(big, &po, 4096, 20000, &out, &len, NULL, &st, &e), -EFBIG);
    CHECK(now_ms() - t0 < 10000);
    CHECK(out == NULL);
}
