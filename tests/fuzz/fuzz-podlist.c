/* align --k8s's pod list (lib/tier1/align-k8s.c): kubectl's JSON, read from a
 * file, stdin or kubectl itself. Refused with bad_pod_list (input class,
 * naming the input and what to give instead), or evaluated under a fixed
 * manifest with a passing signature keeping the verdict's promises: ALIGNED
 * only with at least one pod, no reason and every pod on the manifest's
 * digest and ready; DRIFT always with a reason; the running digests sorted,
 * once each; the JSON record stable. */
#include "fuzz.h"
#include "substrate/json.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"

#define DIGEST "sha256:5d7e0a4c2b9f18e6a3c4d1f07b2e9a8c6d5f4e3b2a1908f7e6d5c4b3a2918f7e"
#define WHAT "pods.json"

static void check_verdict(const sub_svc_manifest *m, const sub_t1_k8s_result *r, const char *ns) {
    const sub_t1_align_result *a = &r->a;
    FUZZ_ASSERT(a->nchecks == 4);
    FUZZ_ASSERT(!(a->aligned && a->undecided)); /* the signature passed: never undecided */
    FUZZ_ASSERT(!a->undecided);
    if (a->aligned) {
        FUZZ_ASSERT(r->npods >= 1 && a->reasons && !a->reasons[0]);
        FUZZ_ASSERT(strcmp(a->running_digest, DIGEST) == 0);
        for (size_t i = 0; i < r->npods; i++) {
            FUZZ_ASSERT(r->pods[i].reasons && !r->pods[i].reasons[0]);
            FUZZ_ASSERT(r->pods[i].terminating || r->pods[i].ready);
            FUZZ_ASSERT(strcmp(r->pods[i].digest, DIGEST) == 0);
            for (size_t k = 0; k < r->pods[i].ncontainers; k++)
                FUZZ_ASSERT(strcmp(r->pods[i].containers[k].digest, DIGEST) == 0);
        }
    } else {
        FUZZ_ASSERT(a->reasons && a->reasons[0]);
    }
    for (size_t i = 0; r->running_digests[i]; i++)
        if (i) FUZZ_ASSERT(strcmp(r->running_digests[i - 1], r->running_digests[i]) < 0);
    for (size_t i = 0; i < r->npods; i++)
        if (ns && *r->pods[i].namespace_) FUZZ_ASSERT(strcmp(r->pods[i].namespace_, ns) == 0);
    json_t *j1 = sub_t1_align_k8s_json(r), *j2 = sub_t1_align_k8s_json(r);
    FUZZ_ASSERT(j1 && j2);
    char *s1 = sub_json_dump(j1, NULL), *s2 = sub_json_dump(j2, NULL);
    FUZZ_ASSERT(strcmp(s1, s2) == 0);
    free(s1);
    free(s2);
    json_decref(j1);
    json_decref(j2);
    (void)m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char y[] = "name: hello\nimage: 127.0.0.1:5000/hello@" DIGEST "\n";
    sub_svc_manifest m = {0};
    sub_err e = {0};
    FUZZ_ASSERT(sub_svc_manifest_parse(y, strlen(y), "/fuzz/hello.yaml", &m, &e) == 0);
    json_t *pods = NULL;
    int r = sub_t1_k8s_pods_parse((const char *)data, size, WHAT, &pods, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(pods == NULL && r == -EINVAL);
        FUZZ_ASSERT(e.reason == SUB_R_BAD_POD_LIST && e.kind == SUB_KIND_INPUT);
        FUZZ_ASSERT(strncmp(e.msg, WHAT ": ", strlen(WHAT ": ")) == 0);
    } else {
        static const sub_t1_check sig = {.name = "signature", .result = 1, .detail = "verifies now"};
        const char *nss[] = {NULL, "default"};
        for (size_t i = 0; i < ARRAY_SIZE(nss); i++) {
            sub_t1_k8s_result res;
            FUZZ_ASSERT(sub_t1_align_k8s_eval(&m, pods, nss[i], &sig, "k1", &res, &e) == 0);
            check_verdict(&m, &res, nss[i]);
            sub_t1_k8s_result_done(&res);
        }
        json_decref(pods);
    }
    sub_svc_manifest_done(&m);
    return 0;
}
