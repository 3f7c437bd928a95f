/* Tier-1 service manifests (lib/tier1/svc-manifest.c): the YAML reader, and
 * the canonical JSON reader on the same bytes. A manifest that parses must
 * keep the parser's promises: a valid name, an image pinned by sha256 digest
 * without a tag, resolved key paths, a refusal that names the file and
 * position, and a JSON form that reads back to the same JSON. */
#include "fuzz.h"
#include "substrate/svc-manifest.h"

#define PATH "/fuzz/svc/m.yaml"

static void check_round_trip(const sub_svc_manifest *m) {
    sub_err e = {0};
    char *j1 = sub_svc_manifest_to_json(m);
    sub_svc_manifest back;
    int r = sub_svc_manifest_from_json(j1, strlen(j1), &back, &e);
    if (r < 0) fprintf(stderr, "from_json refused to_json's output: %s\n%s\n", e.msg, j1);
    FUZZ_ASSERT(r == 0);
    char *j2 = sub_svc_manifest_to_json(&back);
    FUZZ_ASSERT(strcmp(j1, j2) == 0);
    free(j1);
    free(j2);
    sub_svc_manifest_done(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_svc_manifest m;
    sub_err e = {0};
    int r = sub_svc_manifest_parse((const char *)data, size, PATH, &m, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(m.name == NULL && m.image == NULL);
        if (r == -EINVAL) {
            FUZZ_ASSERT(e.reason == SUB_R_BAD_MANIFEST && e.kind == SUB_KIND_INPUT);
            FUZZ_ASSERT(strncmp(e.msg, PATH ":", strlen(PATH ":")) == 0);
        }
    } else {
        FUZZ_ASSERT(m.name && m.name[0] && strlen(m.name) <= SUB_SVC_NAME_MAX);
        FUZZ_ASSERT(m.ref.registry && m.ref.repository && !m.ref.tag);
        FUZZ_ASSERT(m.ref.digest && strlen(m.ref.digest) == 71);
        FUZZ_ASSERT(strcmp(m.dir, "/fuzz/svc") == 0);
        FUZZ_ASSERT(m.nkeys == strv_len(m.keys));
        for (size_t i = 0; i < m.nkeys; i++)
            FUZZ_ASSERT(m.keys[i][0] == '/' || strncmp(m.keys[i], "sha256:", 7) == 0 ||
                        strlen(m.keys[i]) == 64);
        for (size_t i = 0; i < m.nports; i++)
            FUZZ_ASSERT(m.ports[i].host_port && m.ports[i].container_port);
        FUZZ_ASSERT(m.nports == 0 || m.network != SUB_NET_NONE);
        FUZZ_ASSERT(m.readiness.deadline_ms > 0 && m.health.interval_ms > 0);
        FUZZ_ASSERT(m.backoff_initial_ms > 0 && m.backoff_initial_ms <= m.backoff_max_ms);
        check_round_trip(&m);
    }
    sub_svc_manifest_done(&m);

    /* the same bytes as the JSON form */
    sub_err_clear(&e);
    r = sub_svc_manifest_from_json((const char *)data, size, &m, &e);
    fuzz_check_err(&e);
    if (r == 0) check_round_trip(&m);
    sub_svc_manifest_done(&m);
    return 0;
}
