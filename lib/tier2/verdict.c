/* What a job's run amounts to (t2-internal.h): the egress verdict from both
 * sides' evidence, and the outcome with the exit code it stands for. Pure
 * functions of what the session recorded, so they are tested without a VM. */
#include "t2-internal.h"
#include "substrate/json.h"
#include <string.h>

/* ---- egress evidence: the guest's word and the host's ---- */
static bool is_loopback(const char *target) { return !strncmp(target, "127.", 4); }

static bool allowed(const sub_jobspec *j, const char *target) {
    for (size_t i = 0; i < j->negress; i++) {
        char t[32];
        snprintf(t, sizeof t, "%s:%u", j->egress[i].host, j->egress[i].port);
        if (!strcmp(t, target)) return true;
    }
    return false;
}

/* Each probe: result blocked / connected / allowed / allowed_unreachable, and
 * whether it is a violation (a blocked probe that connected, or a refusal
 * from a non-loopback target: a packet reached something). */
json_t *t2_egress_verdict(const sub_jobspec *j, const json_t *guest_probes, const json_t *counters, bool *violation) {
    bool nic = counters != NULL;
    json_t *arr = json_array();
    *violation = false;
    for (size_t i = 0; i < j->nprobes; i++) {
        char target[32];
        snprintf(target, sizeof target, "%s:%u", j->probes[i].host, j->probes[i].port);
        json_t *g = NULL;
        size_t k;
        json_t *it;
        json_array_foreach(guest_probes, k, it) {
            if (streq(json_string_value(json_object_get(it, "target")), target)) {
                g = it;
                break;
            }
        }
        bool allow = allowed(j, target);
        const char *gres = g ? json_string_value(json_object_get(g, "result")) : NULL;
        const char *result;
        bool bad = false;
        if (!gres) {
            result = "not_run";
        } else if (!strcmp(gres, "connected")) {
            result = allow ? "allowed" : "connected";
            bad = !allow;
        } else if (!strcmp(gres, "refused") && !is_loopback(target)) {
            result = allow ? "allowed_unreachable" : "connected";
            bad = !allow; /* a refusal came back from somewhere outside the VM */
        } else {
            result = allow ? "allowed_unreachable" : "blocked";
        }
        *violation |= bad;
        _cleanup_free_ char *rule = xasprintf("%s %s", allow ? "allow" : "probe", target);
        json_t *cnt = nic ? json_object_get(counters, rule) : NULL;
        json_t *host = nic ? json_pack("{s:s,s:s,s:o,s:s}", "nic", "tap", "nft_rule", rule, "packets",
                                       json_is_integer(cnt) ? json_integer(json_integer_value(cnt)) : json_null(),
                                       "evidence", allow ? "packets the allow rule accepted"
                                                         : "packets the job's nftables dropped for this target")
                           : json_pack("{s:s,s:s}", "nic", "none",
                                       "evidence", "no network device was attached to the VM (-nic none): its "
                                       "only interface is its own loopback, so nothing it sends leaves it");
        json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:o,s:o}", "target", target, "result", result,
                                             "allowed_by_jobspec", allow, "guest", g ? json_deep_copy(g) : json_null(),
                                             "host", host));
    }
    return arr;
}

const char *t2_outcome(const session *s, int residual, bool violation, uint32_t timeout_s, int *exit_code,
                       sub_err *e) {
    *exit_code = SUB_JOB_EXIT_RUNNER;
    if (residual) {
        sub_err_setk(e, SUB_KIND_ENV, -EBUSY, "teardown left %d item(s) behind (see teardown.checks)", residual);
        return "residue";
    }
    if (violation) {
        sub_err_setk(e, SUB_KIND_CHECK, -EPERM, "egress_violation: a probe that must be blocked got through (see egress)");
        return "egress_violation";
    }
    if (s->timed_out) {
        sub_err_setk(e, SUB_KIND_CHECK, -ETIMEDOUT, "the job ran past its %us deadline (%s) and was killed", timeout_s,
                     s->hello ? "after boot" : "the guest never finished booting");
        *exit_code = SUB_JOB_EXIT_TIMEOUT;
        return "timed_out";
    }
    if (s->interrupted) {
        sub_err_setk(e, SUB_KIND_ENV, -EINTR, "the runner was interrupted by signal %d; the job was killed", s->signal);
        return "interrupted";
    }
    if (s->cancelled) {
        sub_err_setk(e, SUB_KIND_ENV, -ECANCELED, "the job was cancelled (%s); the job was killed", s->cancel_why);
        return "cancelled";
    }
    if (s->protocol_error) {
        sub_err_setk(e, SUB_KIND_ENV, -EPROTO, "the guest broke the agent protocol; the job was killed");
        return "failed";
    }
    if (s->exit_code < 0 || !s->done) {
        const char *why = json_array_size(s->errors) ? json_string_value(json_array_get(s->errors, 0))
                          : !s->hello ? "the guest stopped before its agent answered (kernel panic? see console_tail)"
                          : s->vmm_gone ? "the VMM exited before the job finished (killed from outside, or the guest crashed)"
                                        : "the job did not finish";
        sub_err_setk(e, SUB_KIND_ENV, -EIO, "%s", why);
        return "failed";
    }
    *exit_code = s->exit_code;
    return "completed";
}
