/* The escalation policy: a request body becomes a jobspec under the
 * manifest's escalate: limits, or is refused with the status and reason a
 * client gets; the request head the broker reads before it. (The broker, the
 * socket and real jobs: tests/integration/escalate.sh.) */
#include "../../lib/tier1/escalate-internal.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"
#include "unit.h"

#define HEX64 "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01"
#define JOBIMG "127.0.0.1:5000/job@sha256:" HEX64

static void policy(sub_svc_manifest *m, const char *extra) {
    _cleanup_free_ char *y = xasprintf("name: agent\nimage: 127.0.0.1:5000/agent@sha256:" HEX64 "\n"
                                       "escalate:\n  image: " JOBIMG "\n%s",
                                       extra);
    sub_err e = {0};
    CHECK_OK(sub_svc_manifest_parse(y, strlen(y), "/m.yaml", m, &e), &e);
}

typedef struct outcome {
    int r, status;
    const char *reason;
    char msg[1024];
} outcome;

static outcome try_req(const sub_svc_manifest *m, const char *body, sub_jobspec *j) {
    outcome o = {0};
    o.r = sub_t1_escalation_jobspec("agent", &m->escalate, body, strlen(body), j, &o.status, &o.reason, o.msg,
                                    sizeof o.msg);
    return o;
}

#define REFUSED(m, body, want_status, want_reason, want_text)                                      \
    do {                                                                                           \
        sub_jobspec _j = {0};                                                                      \
        outcome _o = try_req(m, body, &_j);                                                        \
        CHECK_INT(_o.r, -1);                                                                       \
        CHECK_INT(_o.status, want_status);                                                         \
        CHECK_STREQ(_o.reason, want_reason);                                                       \
        if (!strstr(_o.msg, want_text)) unit_fail(__FILE__, __LINE__, "message lacks \"%s\": %s", want_text, _o.msg); \
        CHECK(_j.name == NULL && _j.image == NULL); /* nothing half-made */                     \
    } while (0)

TEST(escalate_request_defaults_from_policy) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    policy(&m, "  max_timeout: 30s\n  max_memory: 192Mi\n  max_output: 4Ki\n");
    _cleanup_jobspec_ sub_jobspec j = {0};
    outcome o = try_req(&m, "{\"command\": [\"/bin/sh\", \"-c\"], \"args\": [\"echo hi\"], "
                            "\"outputs\": {\"paths\": [\"/out/x\"]}}", &j);
    CHECK_INT(o.r, 0);
    CHECK_STREQ(j.image, JOBIMG);       /* the policy's image, always */
    CHECK_STREQ(j.ref.repository, "job");
    CHECK_STREQ(j.name, "esc-agent");
    CHECK_INT(j.timeout_s, 30);         /* the policy's max, boot included */
    CHECK_INT(j.memory_mb, 192);        /* the jobspec default (256), cut to the policy's max */
    CHECK_INT(j.vcpus, 1);
    CHECK_INT(j.negress, 0);            /* default-deny */
    CHECK(j.output_max_bytes == 4096);  /* outputs default to the policy's cap when smaller */
    CHECK_STREQ(j.args[0], "echo hi");
}

TEST(escalate_request_within_policy) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    policy(&m, "  egress: [\"127.0.0.1:8443\", \"10.9.8.7:53\"]\n  max_timeout: 60s\n  max_memory: 512Mi\n"
               "  max_vcpus: 2\n  max_input: 16\n");
    _cleanup_jobspec_ sub_jobspec j = {0};
    outcome o = try_req(&m, "{\"name\": \"mine\", \"timeout\": 60, \"memory_mb\": 512, \"vcpus\": 2, "
                            "\"egress\": {\"allow\": [\"10.9.8.7:53\"]}, \"stdin\": \"0123456789abcdef\"}", &j);
    CHECK_INT(o.r, 0);
    CHECK_STREQ(j.name, "mine");
    CHECK_INT(j.timeout_s, 60);
    CHECK_INT(j.negress, 1);
    CHECK_STREQ(j.egress[0].host, "10.9.8.7");
    CHECK_INT(j.stdin_len, 16);
}

TEST(escalate_request_over_policy_refused) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    policy(&m, "  egress: [\"127.0.0.1:8443\"]\n  max_timeout: 30s\n  max_input: 8\n  max_output: 1Ki\n");
    REFUSED(&m, "{\"timeout\": 31}", 403, "policy", "timeout 31s is over the policy's max_timeout (30s");
    REFUSED(&m, "{\"memory_mb\": 512}", 403, "policy", "over the policy's max_memory (256 MiB)");
    REFUSED(&m, "{\"vcpus\": 2}", 403, "policy", "over the policy's max_vcpus (1)");
    REFUSED(&m, "{\"egress\": {\"allow\": [\"127.0.0.1:8443\", \"127.0.0.1:22\"]}}", 403, "policy",
            "egress to 127.0.0.1:22 is not in the policy's egress allowlist (127.0.0.1:8443)");
    REFUSED(&m, "{\"stdin\": \"123456789\"}", 403, "policy", "9 bytes, over the policy's max_input (8)");
    REFUSED(&m, "{\"stdin\": \"1234\", \"inputs\": [{\"path\": \"/in/a\", \"content\": \"12345\"}]}", 403, "policy",
            "over the policy's max_input");
    REFUSED(&m, "{\"outputs\": {\"paths\": [\"/o\"], \"max_bytes\": 2048}}", 403, "policy",
            "outputs.max_bytes 2048 is over the policy's max_output (1024)");
    REFUSED(&m, "{\"image\": \"127.0.0.1:5000/other@sha256:" HEX64 "\"}", 403, "policy", "a request cannot name them");
    REFUSED(&m, "{\"any_repo\": true}", 403, "policy", "any_repo:");
    REFUSED(&m, "{\"tier\": 0}", 403, "policy", "Tier-0 is never reachable through escalation");
    REFUSED(&m, "{\"tier\": 2}", 403, "policy", "tier:");

    _cleanup_svc_manifest_ sub_svc_manifest none = {0};
    policy(&none, "");
    REFUSED(&none, "{\"egress\": {\"allow\": [\"127.0.0.1:8443\"]}}", 403, "policy", "allowlist (none)");
}

TEST(escalate_request_malformed) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    policy(&m, "");
    REFUSED(&m, "{", 400, "bad_request", "");
    REFUSED(&m, "[1]", 400, "bad_request", "must be a JSON object");
    REFUSED(&m, "{\"command\": \"sh\"}", 400, "bad_request", "command");
    REFUSED(&m, "{\"nope\": 1}", 400, "bad_request", "nope");
    REFUSED(&m, "{\"timeout\": 0}", 400, "bad_request", "timeout");
    REFUSED(&m, "{\"a\": 1, \"a\": 2}", 400, "bad_request", "");
    REFUSED(&m, "{\"name\": \"Bad Name\"}", 400, "bad_request", "name");
    _cleanup_svc_manifest_ sub_svc_manifest small = {0};
    policy(&small, "  max_input: 16\n");
    _cleanup_free_ char *big = xasprintf("{\"stdin\": \"%0*d\"}", 70000, 0);
    REFUSED(&small, big, 413, "too_large", "this policy takes at most 65552");
}

/* ---- the request head ---------------------------------------------------------------------- */

typedef struct head_outcome {
    int r, status;
    const char *reason;
    char msg[1024];
    esc_http_head h;
} head_outcome;

static head_outcome parse_head(const char *s, size_t len, size_t body_max) {
    head_outcome o = {.status = 0};
    o.r = esc_http_parse_head(s, len, body_max, &o.h, &o.status, &o.reason, o.msg, sizeof o.msg);
    return o;
}

#define HEAD_REFUSED(s, body_max, want_status, want_reason, want_msg)                              \
    do {                                                                                           \
        head_outcome _o = parse_head(s, strlen(s), body_max);                                      \
        CHECK_INT(_o.r, -1);                                                                       \
        CHECK_INT(_o.status, want_status);                                                         \
        CHECK_STREQ(_o.reason, want_reason);                                                       \
        CHECK_STREQ(_o.msg, want_msg);                                                             \
    } while (0)

TEST(escalate_http_head_parsed) {
    static const char req[] = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\ncontent-length:  2\r\n"
                              "Expect: 100-continue\r\n\r\n{}trailing";
    head_outcome o = parse_head(req, sizeof req - 1, 1000);
    CHECK_INT(o.r, 1);
    CHECK_INT(o.status, 0); /* no refusal reported */
    CHECK_STREQ(o.h.method, "POST");
    CHECK_STREQ(o.h.target, "/v1/jobs");
    CHECK(o.h.length == 2);
    CHECK(o.h.expect_continue);
    CHECK_INT(o.h.body_off, strstr(req, "{}") - req);

    o = parse_head("GET /v1/policy HTTP/1.0\r\n\r\n", 27, 0);
    CHECK_INT(o.r, 1);
    CHECK_STREQ(o.h.method, "GET");
    CHECK_STREQ(o.h.target, "/v1/policy");
    CHECK(o.h.length == -1);
    CHECK(!o.h.expect_continue);
    CHECK_INT(o.h.body_off, 27);

    /* the same Content-Length twice is one; a body up to the limit is taken */
    o = parse_head("POST /v1/jobs HTTP/1.1\r\nContent-Length: 10\r\nContent-Length: 10\r\n\r\n", 66, 10);
    CHECK_INT(o.r, 1);
    CHECK(o.h.length == 10);
}

TEST(escalate_http_head_needs_more) {
    static const char req[] = "POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
    for (size_t n = 0; n < sizeof req - 1; n++) {
        head_outcome o = parse_head(req, n, 100);
        CHECK_INT(o.r, 0);
        CHECK_INT(o.status, 0);
    }
    CHECK_INT(parse_head(req, sizeof req - 1, 100).r, 1);
    /* bare LF never ends the head */
    CHECK_INT(parse_head("GET /v1/policy HTTP/1.1\n\n", 25, 100).r, 0);
    /* up to the limit without the blank line: still waiting */
    _cleanup_free_ char *big = xmalloc(ESC_HTTP_HEAD_MAX + 2);
    memset(big, 'a', ESC_HTTP_HEAD_MAX + 1);
    big[ESC_HTTP_HEAD_MAX + 1] = 0;
    CHECK_INT(parse_head(big, ESC_HTTP_HEAD_MAX, 100).r, 0);
    HEAD_REFUSED(big, 100, 413, "too_large", "the request head is over 16384 bytes");
}

TEST(escalate_http_head_refused) {
    /* the head limit does not depend on where the reads split: a whole head over it is refused too */
    {
        size_t n = ESC_HTTP_HEAD_MAX + 64;
        _cleanup_free_ char *h = xmalloc(n + 1);
        memset(h, 'a', n);
        static const char start[] = "GET /v1/policy HTTP/1.1\r\nX: ";
        memcpy(h, start, sizeof start - 1);
        memcpy(h + n - 4, "\r\n\r\n", 4);
        h[n] = 0;
        HEAD_REFUSED(h, 100, 413, "too_large", "the request head is over 16384 bytes");
    }
    /* a NUL in the head would hide what follows it (a Transfer-Encoding, say) */
    {
        static const char nul[] = "POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\nX: a\0b\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n{}";
        head_outcome o = parse_head(nul, sizeof nul - 1, 100);
        CHECK_INT(o.r, -1);
        CHECK_INT(o.status, 400);
        CHECK_STREQ(o.msg, "a NUL byte in the request head");
    }
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 100, 411, "length_required",
                 "a chunked body is not accepted: send Content-Length");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\ntransfer-encoding: identity\r\n\r\n{}", 100, 411,
                 "length_required", "a chunked body is not accepted: send Content-Length");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n{}", 100, 411, "length_required",
                 "a POST needs Content-Length");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 100, 413, "too_large",
                 "the body is 101 bytes; this service's policy takes at most 100 (max_input plus 65536 for the JSON)");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 100, 400, "bad_request",
                 "Content-Length \"12abc\" is not one whole number");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 100, 400, "bad_request",
                 "Content-Length \"-1\" is not one whole number");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 100, 400, "bad_request",
                 "Content-Length \"99999999999999999999\" is not one whole number");
    HEAD_REFUSED("POST /v1/jobs HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 100, 400,
                 "bad_request", "Content-Length \"3\" is not one whole number");
    HEAD_REFUSED("POST /v1/jobs\r\nContent-Length: 2\r\n\r\n{}", 100, 400, "bad_request",
                 "not an HTTP/1.x request line (POST /v1/jobs HTTP/1.1)");
    HEAD_REFUSED("GET /v1/policy HTTP/2.0\r\n\r\n", 100, 400, "bad_request",
                 "not an HTTP/1.x request line (POST /v1/jobs HTTP/1.1)");
    HEAD_REFUSED("\r\n\r\n", 100, 400, "bad_request", "not an HTTP/1.x request line (POST /v1/jobs HTTP/1.1)");
}
