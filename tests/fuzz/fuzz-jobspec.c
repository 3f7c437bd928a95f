/* Tier-2 jobspecs (lib/tier2/jobspec.c): whatever the bytes, a parse either
 * refuses with a bad_jobspec reason or yields a jobspec that keeps the
 * parser's promises. */
#include "fuzz.h"
#include "substrate/jobspec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_jobspec j;
    sub_err e = {0};
    int r = sub_jobspec_parse((const char *)data, size, "fuzz.json", 0, &j, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(e.reason == SUB_R_BAD_JOBSPEC);
        sub_jobspec_done(&j);
        return 0;
    }
    FUZZ_ASSERT(j.name && j.image && j.ref.digest && !j.ref.tag);
    FUZZ_ASSERT(j.timeout_s >= 1 && j.timeout_s <= SUB_JOB_TIMEOUT_MAX_DEFAULT);
    FUZZ_ASSERT(j.vcpus >= 1 && j.vcpus <= 16 && j.memory_mb >= 128 && j.memory_mb <= 16384);
    for (size_t i = 0; i < j.negress; i++) FUZZ_ASSERT(j.egress[i].port >= 1);
    for (size_t i = 0; i < j.nprobes; i++) FUZZ_ASSERT(j.probes[i].port >= 1);
    for (size_t i = 0; i < j.ninputs; i++) FUZZ_ASSERT(j.inputs[i].path[0] == '/');
    for (char **p = j.outputs; p && *p; p++) FUZZ_ASSERT((*p)[0] == '/');
    FUZZ_ASSERT(!j.workdir || j.workdir[0] == '/');
    FUZZ_ASSERT(j.stdin_len <= SUB_JOB_STDIN_MAX);
    sub_jobspec_done(&j);
    return 0;
}
