/* Tier-2 jobspecs: the reference parses; every refusal names its field. */
#include "substrate/jobspec.h"
#include "unit.h"
#include <stdlib.h>
#include <string.h>

#define IMG "\"image\": \"127.0.0.1:5000/job@sha256:1111111111111111111111111111111111111111111111111111111111111111\""

TEST(jobspec_reference_parses) {
    _cleanup_free_ char *p = unit_src("platform/sandbox/jobspec.example.json");
    _cleanup_jobspec_ sub_jobspec j = {0};
    sub_err e = {0};
    CHECK_OK(sub_jobspec_load(p, 0, &j, &e), &e);
    CHECK_STREQ(j.name, "probe-demo");
    CHECK_STREQ(j.ref.repository, "job");
    CHECK(j.ref.digest && !j.ref.tag);
    CHECK_INT(j.timeout_s, 60);
    CHECK_INT(j.memory_mb, 128);
    CHECK_INT(j.negress, 0);  /* deny all */
    CHECK(j.nprobes >= 1);    /* the reference records at least one probe */
    CHECK_STREQ(j.env ? j.env[0] : NULL, "GREETING=hello from the guest");
    CHECK_INT(j.ninputs, 1);
    CHECK_STREQ(j.outputs ? j.outputs[0] : NULL, "/out/result.txt");
    CHECK_INT(j.output_max_bytes, 65536);
}

TEST(jobspec_defaults_and_fields) {
    const char *t = "{\"name\": \"a\", " IMG ", \"timeout\": 5, \"repo_prefix\": \"127.0.0.1:5000\","
                    " \"env\": [\"B=2\", \"A=1\"], \"user\": \"1000:1000\", \"stdin\": \"in\","
                    " \"egress\": {\"allow\": [\"127.0.0.1:8080\"]}, \"probes\": [\"10.1.2.3:443\"]}";
    _cleanup_jobspec_ sub_jobspec j = {0};
    sub_err e = {0};
    CHECK_OK(sub_jobspec_parse(t, strlen(t), "j.json", 0, &j, &e), &e);
    CHECK_INT(j.vcpus, 1);
    CHECK_INT(j.memory_mb, 256);
    CHECK(j.policy == SUB_IDENTITY_REPO_PREFIX);
    CHECK_STREQ(j.identity, "127.0.0.1:5000");
    CHECK_STREQ(j.env ? j.env[0] : NULL, "A=1"); /* sorted */
    CHECK_STREQ(j.user, "1000:1000");
    CHECK_INT(j.stdin_len, 2);
    CHECK_INT(j.negress, 1);
    CHECK_STREQ(j.egress ? j.egress[0].host : NULL, "127.0.0.1");
    CHECK_INT(j.egress ? j.egress[0].port : 0, 8080);
    CHECK_INT(j.nprobes, 1);
    CHECK(j.command == NULL && j.user != NULL && j.workdir == NULL);
    CHECK_INT(j.output_max_bytes, 1u << 20);
}

TEST(jobspec_refusals_name_the_field) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"bogus\": 1}", "bogus"},
        {"{\"name\": \"a\", " IMG "}", "timeout: missing"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 0}", "timeout: 0 is out of range"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 7200}", "past this host's cap of 3600 s"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": \"5\"}", "timeout: must be a whole number"},
        {"{\"name\": \"a\", \"image\": \"127.0.0.1:5000/job:1.0\", \"timeout\": 5}", "names a tag"},
        {"{\"name\": \"a\", \"timeout\": 5}", "image: missing"},
        {"{\"name\": \"A\", " IMG ", \"timeout\": 5}", "name:"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"egress\": {\"allow\": [\"example.com:80\"]}}",
         "egress.allow[0]: \"example.com:80\": the host must be a numeric IPv4"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"egress\": {\"deny\": []}}", "deny"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"probes\": [\"1.2.3.4:0\"]}", "probes[0]"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"user\": \"nobody\"}", "user:"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"env\": [\"A=1\", \"A=2\"]}", "A is given twice"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"workdir\": \"rel\"}", "workdir:"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"inputs\": [{\"path\": \"/a/../b\", \"content\": \"x\"}]}",
         "inputs[0]: path"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"outputs\": {\"paths\": [\"out\"]}}", "outputs.paths"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"identity\": \"x\", \"any_repo\": true}", "at most one"},
        {"{\"name\": \"a\", \"name\": \"b\", " IMG ", \"timeout\": 5}", "duplicate"},
        {"[1]", "a jobspec is a JSON object"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"memory_mb\": 8}", "memory_mb: 8 is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        _cleanup_jobspec_ sub_jobspec j = {0};
        sub_err e = {0};
        int r = sub_jobspec_parse(cases[i].text, strlen(cases[i].text), "j.json", 0, &j, &e);
        CHECK_INT(r, -EINVAL);
        CHECK_REASON(&e, SUB_R_BAD_JOBSPEC);
        CHECK(sub_err_exit_code(&e) == SUB_EXIT_USAGE);
        if (!strstr(e.msg, cases[i].want)) unit_fail(__FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
    }
}

TEST(jobspec_timeout_cap_from_the_environment) {
    setenv("SUBSTRATE_JOB_TIMEOUT_MAX", "30", 1);
    CHECK_INT(sub_job_timeout_max(), 30);
    setenv("SUBSTRATE_JOB_TIMEOUT_MAX", "junk", 1);
    CHECK_INT(sub_job_timeout_max(), SUB_JOB_TIMEOUT_MAX_DEFAULT);
    unsetenv("SUBSTRATE_JOB_TIMEOUT_MAX");
    const char *t = "{\"name\": \"a\", " IMG ", \"timeout\": 31}";
    _cleanup_jobspec_ sub_jobspec j = {0};
    sub_err e = {0};
    CHECK_INT(sub_jobspec_parse(t, strlen(t), "j.json", 30, &j, &e), -EINVAL);
}

TEST(jobspec_tier_default_and_zero) {
    const char *t2 = "{\"name\": \"a\", " IMG ", \"timeout\": 5, \"egress\": {\"allow\": [\"127.0.0.1:80\"]}}";
    _cleanup_jobspec_ sub_jobspec a = {0};
    sub_err e = {0};
    CHECK_OK(sub_jobspec_parse(t2, strlen(t2), "j.json", 0, &a, &e), &e);
    CHECK_INT(a.tier, 2);
    const char *t0 = "{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": 0, \"env\": {\"GREETING\": \"hi\","
                     " \"KEYBOARD\": \"us\", \"MONKEY\": \"x\"}, \"probes\": [\"127.0.0.1:9\"]}";
    _cleanup_jobspec_ sub_jobspec b = {0};
    CHECK_OK(sub_jobspec_parse(t0, strlen(t0), "j.json", 0, &b, &e), &e);
    CHECK_INT(b.tier, 0);
    CHECK_INT(b.nprobes, 1);
}

TEST(jobspec_secret_rule) {
    static const struct {
        const char *kv, *want;
    } cases[] = {
        {"DB_PASSWORD=x", "PASSWORD"}, {"password=x", "PASSWORD"},   {"MY_SECRET_THING=1", "SECRET"},
        {"GITHUB_TOKEN=t", "TOKEN"},   {"api_key=k", "_KEY"},        {"AWS_SECRET_ACCESS_KEY=k", "SECRET"},
        {"CERT=-----BEGIN RSA PRIVATE KEY-----\nabc", "PRIVATE KEY"},
        {"GREETING=hello", NULL},      {"KEYBOARD=us", NULL},        {"MONKEY=1", NULL},
        {"PUBKEY=-----BEGIN PUBLIC KEY-----", NULL},                 {"KEY_ID=1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = sub_jobspec_secret_like(cases[i].kv);
        if (cases[i].want ? !streq(got, cases[i].want) : got != NULL)
            unit_fail(__FILE__, __LINE__, "case %zu (%s): got %s, want %s", i, cases[i].kv, got ? got : "NULL",
                      cases[i].want ? cases[i].want : "NULL");
    }
}

TEST(jobspec_tier0_refusals) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": 1}", "tier: must be 0"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": \"0\"}", "tier: must be 0"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": 0, \"egress\": {\"allow\": [\"127.0.0.1:80\"]}}",
         "egress.allow: tier 0 has no egress: loopback only; use tier 2 for allowed egress"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": 0, \"user\": \"1000\"}", "user: tier 0 runs"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": 0, \"env\": {\"API_TOKEN\": \"x\"}}",
         "env: API_TOKEN looks like a secret (TOKEN)"},
        {"{\"name\": \"a\", " IMG ", \"timeout\": 5, \"tier\": 0, \"env\": [\"K=-----BEGIN EC PRIVATE KEY-----\"]}",
         "env: K looks like a secret (its value holds a PEM private key)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        _cleanup_jobspec_ sub_jobspec j = {0};
        sub_err e = {0};
        int r = sub_jobspec_parse(cases[i].text, strlen(cases[i].text), "j.json", 0, &j, &e);
        CHECK_INT(r, -EINVAL);
        CHECK_REASON(&e, SUB_R_BAD_JOBSPEC);
        if (!strstr(e.msg, cases[i].want)) unit_fail(__FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
    }
    /* the same env is fine for tier 2 (a VM; the rule is Tier-0's) */
    const char *t = "{\"name\": \"a\", " IMG ", \"timeout\": 5, \"env\": {\"API_TOKEN\": \"x\"}}";
    _cleanup_jobspec_ sub_jobspec j = {0};
    sub_err e = {0};
    CHECK_OK(sub_jobspec_parse(t, strlen(t), "j.json", 0, &j, &e), &e);
}
