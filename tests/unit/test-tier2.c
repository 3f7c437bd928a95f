/* Tier-2 entry points that need no VM: the escalation entry point's report
 * (authority and origin recorded, a refusal still reported), and the exit
 * codes a report stands for. */
#include "substrate/jobspec.h"
#include "substrate/tier2.h"
#include "unit.h"
#include <stdlib.h>
#include <string.h>

TEST(tier2_authorized_entry_records_authority_and_origin) {
    /* a registry nobody answers on: the run stops at the image check, and
     * the report says who authorised the job and for whom */
    const char *t = "{\"name\": \"esc\", \"image\": \"127.0.0.1:1/job@sha256:"
                    "1111111111111111111111111111111111111111111111111111111111111111\", \"timeout\": 5}";
    _cleanup_jobspec_ sub_jobspec j = {0};
    sub_err e = {0};
    CHECK_OK(sub_jobspec_parse(t, strlen(t), NULL, 0, &j, &e), &e);
    _cleanup_free_ char *key = unit_shared("vectors/cosign/cosign.pub");
    char *keys[] = {key, NULL};
    _cleanup_free_ char *state = xasprintf("%s/t2state", unit_tmpdir());
    setenv("SUBSTRATE_STATE", state, 1);
    sub_job_opts o = {.key_files = keys};
    json_t *origin = json_pack("{s:s,s:s}", "service", "agent", "image_digest", "sha256:abc");
    json_t *rep = NULL;
    CHECK_OK(sub_job_run_authorized(&j, "manifest-policy", origin, &o, &rep, &e), &e);
    CHECK(rep != NULL);
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(rep, "jobspec"), "authorization")), "manifest-policy");
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(rep, "origin"), "service")), "agent");
    const char *outcome = json_string_value(json_object_get(rep, "outcome"));
    CHECK(outcome && (!strcmp(outcome, "failed") || !strcmp(outcome, "refused")));
    CHECK_INT(sub_job_exit_code(rep), SUB_JOB_EXIT_RUNNER);
    CHECK(json_object_get(rep, "vmm") == NULL); /* nothing started */
    json_decref(rep);
    json_decref(origin);
    unsetenv("SUBSTRATE_STATE");
}

TEST(tier2_exit_code_of_a_report) {
    json_t *r = json_pack("{s:i}", "runner_exit_code", 7);
    CHECK_INT(sub_job_exit_code(r), 7);
    json_object_set_new(r, "runner_exit_code", json_string("x"));
    CHECK_INT(sub_job_exit_code(r), SUB_JOB_EXIT_RUNNER); /* not a number: the runner's failure */
    json_decref(r);
    CHECK_INT(sub_job_exit_code(NULL), SUB_JOB_EXIT_RUNNER);
}
