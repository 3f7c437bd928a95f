/* Escalation requests (lib/tier1/escalate.c): whatever the body a service
 * sends, it is refused with a status and a reason, or it becomes a jobspec
 * that stays inside the manifest's policy: the policy's image, and no limit
 * widened (timeout, memory, vCPUs, egress, input, output). */
#include "fuzz.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"

#define HEX64 "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01"
#define JOBIMG "127.0.0.1:5000/job@sha256:" HEX64

static sub_svc_manifest policy;

static void load_policy(void) {
    static const char y[] = "name: agent\nimage: 127.0.0.1:5000/agent@sha256:" HEX64 "\n"
                            "escalate:\n  image: " JOBIMG "\n  egress: [\"127.0.0.1:8443\", \"10.1.2.3:53\"]\n"
                            "  max_timeout: 30s\n  max_memory: 384Mi\n  max_vcpus: 2\n  max_input: 4Ki\n"
                            "  max_output: 8Ki\n";
    sub_err e = {0};
    if (sub_svc_manifest_parse(y, sizeof y - 1, "/fuzz.yaml", &policy, &e) < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!policy.name) load_policy();
    const sub_svc_escalate *x = &policy.escalate;
    sub_jobspec j = {0};
    int status = 0;
    const char *reason = NULL;
    char msg[1024] = "";
    int r = sub_t1_escalation_jobspec("agent", x, (const char *)data, size, &j, &status, &reason, msg, sizeof msg);
    if (r < 0) {
        FUZZ_ASSERT(status == 400 || status == 403 || status == 413);
        FUZZ_ASSERT(reason && *reason && msg[0]);
        FUZZ_ASSERT(!j.name && !j.image); /* nothing half-made */
        return 0;
    }
    FUZZ_ASSERT(j.image && !strcmp(j.image, JOBIMG));
    FUZZ_ASSERT(j.timeout_s >= 1 && j.timeout_s <= x->max_timeout_s);
    FUZZ_ASSERT(j.memory_mb <= x->max_memory_mb && j.vcpus <= x->max_vcpus);
    for (size_t i = 0; i < j.negress; i++) {
        char hp[32];
        snprintf(hp, sizeof hp, "%s:%u", j.egress[i].host, j.egress[i].port);
        FUZZ_ASSERT(!strcmp(hp, "127.0.0.1:8443") || !strcmp(hp, "10.1.2.3:53"));
    }
    uint64_t in = j.stdin_len;
    for (size_t i = 0; i < j.ninputs; i++) in += j.inputs[i].len;
    FUZZ_ASSERT(in <= x->max_input);
    FUZZ_ASSERT(!j.outputs || j.output_max_bytes <= x->max_output);
    sub_jobspec_done(&j);
    return 0;
}
