/* Tier-2 entry points that need no VM: the escalation entry point's report
 * (authority and origin recorded, a refusal still reported), and the exit
 * codes a report stands for. */
#include "substrate/jobspec.h"
#include "substrate/tier2.h"
#include "substrate/strbuf.h"
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

/* ---- verdicts from what a session recorded (lib/tier2/verdict.c) ---- */
#include "../../lib/tier2/t2-internal.h"

static void probes_spec(sub_jobspec *j, const char *allow, const char *const *probes) {
    _cleanup_free_ char *t = NULL;
    sub_buf b = {0};
    sub_buf_printf(&b, "{\"name\": \"v\", \"image\": \"127.0.0.1:1/job@sha256:%064d\", \"timeout\": 5, "
                       "\"egress\": {\"allow\": [%s]}, \"probes\": [", 1, allow);
    for (size_t i = 0; probes[i]; i++) sub_buf_printf(&b, "%s\"%s\"", i ? ", " : "", probes[i]);
    sub_buf_puts(&b, "]}");
    t = sub_buf_detach(&b, NULL);
    sub_err e = {0};
    CHECK_OK(sub_jobspec_parse(t, strlen(t), NULL, 0, j, &e), &e);
}

static json_t *guest(const char *target, const char *result, const char *err) {
    return json_pack("{s:s,s:s,s:s,s:i}", "target", target, "result", result, "errno", err, "ms", 1);
}

TEST(tier2_egress_verdicts) {
    const char *probes[] = {"192.0.2.1:80", "10.9.9.9:443", "127.0.0.1:9", "198.18.0.1:8080", "198.18.0.2:81",
                            "203.0.113.5:22", NULL};
    _cleanup_jobspec_ sub_jobspec j = {0};
    probes_spec(&j, "\"198.18.0.1:8080\", \"198.18.0.2:81\"", probes);
    json_t *g = json_array();
    json_array_append_new(g, guest("192.0.2.1:80", "unreachable", "ENETUNREACH"));
    json_array_append_new(g, guest("10.9.9.9:443", "timeout", "ETIMEDOUT"));
    json_array_append_new(g, guest("127.0.0.1:9", "refused", "ECONNREFUSED")); /* the guest's own lo */
    json_array_append_new(g, guest("198.18.0.1:8080", "connected", "0"));
    json_array_append_new(g, guest("198.18.0.2:81", "refused", "ECONNREFUSED"));
    /* 203.0.113.5:22: no result from the guest */
    bool v = true;
    json_t *r = t2_egress_verdict(&j, g, NULL, &v);
    const char *want[] = {"blocked", "blocked", "blocked", "allowed", "allowed_unreachable", "not_run"};
    for (size_t i = 0; i < 6; i++)
        CHECK_STREQ(json_string_value(json_object_get(json_array_get(r, i), "result")), want[i]);
    CHECK(!v);
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(json_array_get(r, 0), "host"), "nic")), "none");
    json_decref(r);
    /* a blocked target that connected, and one refused from outside the VM: violations */
    json_array_clear(g);
    json_array_append_new(g, guest("192.0.2.1:80", "connected", "0"));
    r = t2_egress_verdict(&j, g, NULL, &v);
    CHECK(v);
    CHECK_STREQ(json_string_value(json_object_get(json_array_get(r, 0), "result")), "connected");
    json_decref(r);
    json_array_clear(g);
    json_array_append_new(g, guest("10.9.9.9:443", "refused", "ECONNREFUSED"));
    r = t2_egress_verdict(&j, g, NULL, &v);
    CHECK(v);
    json_decref(r);
    /* with a NIC, the host's evidence is the rule's counter */
    json_t *counters = json_pack("{s:i,s:i}", "allow 198.18.0.1:8080", 3, "probe 192.0.2.1:80", 2);
    r = t2_egress_verdict(&j, g, counters, &v);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(json_array_get(r, 0), "host"), "packets")), 2);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(json_array_get(r, 3), "host"), "packets")), 3);
    json_decref(r);
    json_decref(counters);
    json_decref(g);
}

TEST(tier2_outcomes_by_precedence) {
    session s;
    t2_session_init(&s);
    s.hello = s.done = true;
    s.exit_code = 3;
    int code = -1;
    sub_err e = {0};
    CHECK_STREQ(t2_outcome(&s, 0, false, 5, &code, &e), "completed");
    CHECK_INT(code, 3);
    CHECK_INT(e.code, 0);
    CHECK_STREQ(t2_outcome(&s, 1, false, 5, &code, &e), "residue"); /* even after a clean exit */
    CHECK_INT(code, SUB_JOB_EXIT_RUNNER);
    CHECK(strstr(e.msg, "teardown left 1"));
    CHECK_STREQ(t2_outcome(&s, 0, true, 5, &code, &e), "egress_violation");
    CHECK_INT(code, SUB_JOB_EXIT_RUNNER);
    s.timed_out = true;
    CHECK_STREQ(t2_outcome(&s, 0, false, 5, &code, &e), "timed_out");
    CHECK_INT(code, SUB_JOB_EXIT_TIMEOUT);
    CHECK_STREQ(t2_outcome(&s, 2, false, 5, &code, &e), "residue"); /* residue outranks a timeout */
    s.timed_out = false;
    s.done = false;
    s.vmm_gone = true;
    s.exit_code = -1;
    CHECK_STREQ(t2_outcome(&s, 0, false, 5, &code, &e), "failed");
    CHECK(strstr(e.msg, "VMM exited"));
    s.cancelled = true;
    s.cancel_why = "the escalating client disconnected";
    CHECK_STREQ(t2_outcome(&s, 0, false, 5, &code, &e), "cancelled");
    CHECK_INT(code, SUB_JOB_EXIT_RUNNER);
    CHECK(strstr(e.msg, "client disconnected"));
    s.timed_out = true; /* a deadline that passed outranks a cancel */
    CHECK_STREQ(t2_outcome(&s, 0, false, 5, &code, &e), "timed_out");
    s.timed_out = false;
    s.interrupted = true;
    CHECK_STREQ(t2_outcome(&s, 0, false, 5, &code, &e), "interrupted");
    t2_session_done(&s);
}

TEST(tier2_escalation_never_reaches_tier0) {
    /* Tier-0 is a process on the host: an escalated job is refused before
     * anything is fetched or started, with a report that says why */
    const char *t = "{\"name\": \"esc\", \"tier\": 0, \"image\": \"127.0.0.1:1/job@sha256:"
                    "1111111111111111111111111111111111111111111111111111111111111111\", \"timeout\": 5}";
    _cleanup_jobspec_ sub_jobspec j = {0};
    sub_err e = {0};
    CHECK_OK(sub_jobspec_parse(t, strlen(t), NULL, 0, &j, &e), &e);
    CHECK_INT(j.tier, 0);
    _cleanup_free_ char *state = xasprintf("%s/t0state", unit_tmpdir());
    setenv("SUBSTRATE_STATE", state, 1);
    sub_job_opts o = {0};
    json_t *rep = NULL;
    sub_err re = {0};
    CHECK_OK(sub_job_run_authorized(&j, "manifest-policy", NULL, &o, &rep, &re), &re);
    CHECK(rep != NULL);
    CHECK_STREQ(json_string_value(json_object_get(rep, "outcome")), "refused");
    CHECK_STREQ(json_string_value(json_object_get(rep, "reason")), "bad_jobspec");
    CHECK(strstr(json_string_value(json_object_get(rep, "error")) ?: "", "never reachable through escalation") != NULL);
    CHECK_INT(json_integer_value(json_object_get(rep, "tier")), 0);
    CHECK_STREQ(json_string_value(json_object_get(rep, "boundary")), "process");
    CHECK_INT(sub_job_exit_code(rep), SUB_JOB_EXIT_RUNNER);
    CHECK(json_object_get(rep, "process") == NULL && json_object_get(rep, "image") != NULL);
    json_decref(rep);
    unsetenv("SUBSTRATE_STATE");
}
