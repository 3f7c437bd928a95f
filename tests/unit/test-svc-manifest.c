#include "substrate/fs.h"
#include "substrate/svc-manifest.h"
#include "unit.h"
#include <stdio.h>

#define HEX64 "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01"
#define IMG "127.0.0.1:5000/substrate/hello@sha256:" HEX64
#define HEAD "name: hello\nimage: " IMG "\n"
#define MPATH "/srv/svc/m.yaml"

static int parse(const char *yaml, sub_svc_manifest *m, sub_err *e) {
    sub_err_clear(e);
    return sub_svc_manifest_parse(yaml, strlen(yaml), MPATH, m, e);
}

/* A refusal: -EINVAL, input class, SUB_R_BAD_MANIFEST, the message holding want (and starting
 * "m.yaml:LINE:COL: " when line is not 0). */
static void refused(const char *file, int ln, const char *yaml, size_t len, const char *want,
                    int line, int col) {
    sub_svc_manifest m;
    sub_err e = {0};
    int r = sub_svc_manifest_parse(yaml, len, MPATH, &m, &e);
    if (r != -EINVAL || e.kind != SUB_KIND_INPUT || e.reason != SUB_R_BAD_MANIFEST)
        unit_fail(file, ln, "expected a bad_manifest refusal (%s), got %d kind %d reason %s: %s",
                  want, r, e.kind, sub_reason_to_string(e.reason), e.msg);
    if (!strstr(e.msg, want)) unit_fail(file, ln, "message lacks \"%s\": %s", want, e.msg);
    if (line) {
        char pre[64];
        snprintf(pre, sizeof pre, MPATH ":%d:%d: ", line, col);
        if (!str_has_prefix(e.msg, pre))
            unit_fail(file, ln, "message does not start \"%s\": %s", pre, e.msg);
    } else if (!str_has_prefix(e.msg, MPATH ":")) {
        unit_fail(file, ln, "message does not name the file: %s", e.msg);
    }
    /* done() is safe after a failure, and the failure left nothing behind */
    CHECK(m.name == NULL && m.image == NULL && m.ports == NULL);
    sub_svc_manifest_done(&m);
}
#define REFUSED(yaml, want, line, col)                                                             \
    refused(__FILE__, __LINE__, yaml, strlen(yaml), want, line, col)

TEST(svc_manifest_reference_parses) {
    _cleanup_free_ char *p = unit_src("platform/manifests/hello.service.yaml");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_OK(sub_svc_manifest_load(p, &m, &e), &e);
    if (e.code) return;
    CHECK_STREQ(m.path, p);
    CHECK(m.dir && m.dir[0] == '/' && str_has_suffix(m.dir, "/platform/manifests"));
    CHECK_STREQ(m.name, "hello");
    CHECK(str_has_prefix(m.image, "127.0.0.1:5000/hello@sha256:"));
    CHECK_STREQ(m.ref.registry, "127.0.0.1:5000");
    CHECK_STREQ(m.ref.repository, "hello");
    CHECK(m.ref.tag == NULL);
    CHECK(m.ref.digest && strlen(m.ref.digest) == 71);
    CHECK_INT(m.policy, SUB_IDENTITY_EXACT);
    CHECK(m.identity == NULL && m.keys == NULL && m.command == NULL && m.args == NULL);
    CHECK(m.env == NULL && m.workdir == NULL && m.user == NULL);
    CHECK_INT(m.network, SUB_NET_PRIVATE);
    CHECK_INT(m.nports, 1);
    if (m.nports == 1) {
        CHECK_STREQ(m.ports[0].host_addr, "127.0.0.1");
        CHECK_INT(m.ports[0].host_port, 8080);
        CHECK_INT(m.ports[0].container_port, 8080);
    }
    CHECK_INT(m.health.kind, SUB_PROBE_HTTP);
    CHECK_STREQ(m.health.url, "http://127.0.0.1:8080/healthz");
    CHECK_INT(m.health.interval_ms, 2000);
    CHECK_INT(m.health.timeout_ms, 1000);
    CHECK_INT(m.health.failure_threshold, 3);
    CHECK_INT(m.health.start_period_ms, 1000);
    CHECK_INT(m.readiness.kind, SUB_PROBE_HTTP);
    CHECK_STREQ(m.readiness.url, "http://127.0.0.1:8080/readyz");
    CHECK_INT(m.readiness.deadline_ms, 20000);
    CHECK_INT(m.restart, SUB_RESTART_ALWAYS);
    CHECK_INT(m.stop_grace_ms, 5000);
    CHECK_INT(m.on_drift, SUB_DRIFT_FLAG);
    CHECK_INT(m.memory_bytes, 64ull << 20);
    CHECK_INT(m.pids, 64);
    CHECK_INT(m.cpu_millis, 500);
    CHECK_INT(m.runtime, SUB_RUNTIME_RUNC);
    CHECK(m.capabilities == NULL);
    CHECK_STREQ(sub_svc_network_str(m.network), "private");
    CHECK_STREQ(sub_svc_restart_str(m.restart), "always");
    CHECK_STREQ(sub_svc_runtime_str(m.runtime), "runc");
}

TEST(svc_manifest_defaults) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_OK(parse(HEAD, &m, &e), &e);
    if (e.code) return;
    CHECK_STREQ(m.path, MPATH);
    CHECK_STREQ(m.dir, "/srv/svc");
    CHECK_INT(m.policy, SUB_IDENTITY_EXACT);
    CHECK(m.identity == NULL && m.keys == NULL && m.nkeys == 0);
    CHECK(m.command == NULL && m.args == NULL && m.env == NULL && m.workdir == NULL);
    CHECK_INT(m.network, SUB_NET_PRIVATE);
    CHECK_INT(m.nports, 0);
    CHECK_INT(m.health.kind, SUB_PROBE_NONE);
    CHECK_INT(m.readiness.kind, SUB_PROBE_NONE);
    CHECK_INT(m.readiness.interval_ms, 2000);
    CHECK_INT(m.readiness.timeout_ms, 1000);
    CHECK_INT(m.readiness.failure_threshold, 3);
    CHECK_INT(m.readiness.start_period_ms, 0);
    CHECK_INT(m.readiness.deadline_ms, 6000);
    CHECK_INT(m.restart, SUB_RESTART_ALWAYS);
    CHECK_INT(m.backoff_initial_ms, 500);
    CHECK_INT(m.backoff_max_ms, 30000);
    CHECK_INT(m.stop_grace_ms, 10000);
    CHECK_INT(m.on_drift, SUB_DRIFT_FLAG);
    CHECK_INT(m.align_interval_ms, 60000);
    CHECK_INT(m.deep_align_interval_ms, 0);
    CHECK_INT(m.verify_max_age_ms, 86400000);
    CHECK_INT(m.memory_bytes, 0);
    CHECK_INT(m.pids, 0);
    CHECK_INT(m.cpu_millis, 0);
    CHECK_INT(m.runtime, SUB_RUNTIME_RUNC);
    CHECK(m.capabilities == NULL);

    /* health without readiness: readiness stays NONE */
    sub_svc_manifest_done(&m);
    CHECK_OK(parse(HEAD "health: {tcp: \"127.0.0.1:80\"}\n", &m, &e), &e);
    CHECK_INT(m.health.kind, SUB_PROBE_TCP);
    CHECK_STREQ(m.health.address, "127.0.0.1:80");
    CHECK_INT(m.readiness.kind, SUB_PROBE_NONE);

    /* the readiness deadline defaults to start_period + failure_threshold * interval */
    sub_svc_manifest_done(&m);
    CHECK_OK(parse(HEAD "readiness:\n  exec: [/bin/check, -q]\n  interval: 1s\n"
                        "  failure_threshold: 5\n  start_period: 2500ms\n",
                   &m, &e),
             &e);
    CHECK_INT(m.readiness.kind, SUB_PROBE_EXEC);
    CHECK(m.readiness.exec && streq(m.readiness.exec[0], "/bin/check") &&
          streq(m.readiness.exec[1], "-q") && !m.readiness.exec[2]);
    CHECK_INT(m.readiness.deadline_ms, 7500);
}

TEST(svc_manifest_every_field) {
    const char *y = HEAD "repo_prefix: 127.0.0.1:5000/substrate\n"
                         "keys: [release.pub, ../keys/a.pub, ./sub/b, /etc/k.pub, sha256:" HEX64
                         ", " HEX64 "]\n"
                         "command: [/usr/bin/hello]\nargs: []\n"
                         "env: {ZED: last, A_1: \"x=y\", PORT: 8080}\n"
                         "workdir: /srv\nuser: \"65534:65534\"\nnetwork: host\n"
                         "ports: [\"8080:8080\", \"0.0.0.0:9090:9090\"]\n"
                         "health: {exec: [/bin/true], interval: 1m, timeout: 500ms}\n"
                         "readiness: {tcp: \"127.0.0.1:8080\", deadline: 1h}\n"
                         "restart: on-failure\nbackoff: {initial: 1s, max: 1m}\n"
                         "stop_grace: 0\non_drift: halt\nalign_interval: 0\n"
                         "deep_align_interval: 1d\nverify_max_age: 3600\n"
                         "resources: {memory: 1G, pids: 100, cpu: 250m}\nruntime: runsc\n"
                         "capabilities: [CAP_NET_BIND_SERVICE, CAP_CHECKPOINT_RESTORE]\n";
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_OK(parse(y, &m, &e), &e);
    if (e.code) return;
    CHECK_INT(m.policy, SUB_IDENTITY_REPO_PREFIX);
    CHECK_STREQ(m.identity, "127.0.0.1:5000/substrate");
    CHECK_INT(m.nkeys, 6);
    CHECK_STREQ(m.keys[0], "/srv/svc/release.pub");
    CHECK_STREQ(m.keys[1], "/srv/svc/../keys/a.pub");
    CHECK_STREQ(m.keys[2], "/srv/svc/sub/b");
    CHECK_STREQ(m.keys[3], "/etc/k.pub");
    CHECK_STREQ(m.keys[4], "sha256:" HEX64);
    CHECK_STREQ(m.keys[5], HEX64);
    CHECK_STREQ(m.command[0], "/usr/bin/hello");
    CHECK(m.args && m.args[0] == NULL);
    /* sorted by name */
    CHECK_STREQ(m.env[0], "A_1=x=y");
    CHECK_STREQ(m.env[1], "PORT=8080");
    CHECK_STREQ(m.env[2], "ZED=last");
    CHECK(m.env[3] == NULL);
    CHECK_STREQ(m.workdir, "/srv");
    CHECK_STREQ(m.user, "65534:65534");
    CHECK_INT(m.network, SUB_NET_HOST);
    CHECK_INT(m.nports, 2);
    CHECK_STREQ(m.ports[0].host_addr, "127.0.0.1");
    CHECK_STREQ(m.ports[1].host_addr, "0.0.0.0");
    CHECK_INT(m.ports[1].host_port, 9090);
    CHECK_INT(m.health.kind, SUB_PROBE_EXEC);
    CHECK_INT(m.health.interval_ms, 60000);
    CHECK_INT(m.health.timeout_ms, 500);
    CHECK_INT(m.readiness.kind, SUB_PROBE_TCP);
    CHECK_INT(m.readiness.deadline_ms, 3600000);
    CHECK_INT(m.restart, SUB_RESTART_ON_FAILURE);
    CHECK_INT(m.backoff_initial_ms, 1000);
    CHECK_INT(m.backoff_max_ms, 60000);
    CHECK_INT(m.stop_grace_ms, 0);
    CHECK_INT(m.on_drift, SUB_DRIFT_HALT);
    CHECK_INT(m.align_interval_ms, 0);
    CHECK_INT(m.deep_align_interval_ms, 86400000);
    CHECK_INT(m.verify_max_age_ms, 3600000);
    CHECK_INT(m.memory_bytes, 1000000000);
    CHECK_INT(m.pids, 100);
    CHECK_INT(m.cpu_millis, 250);
    CHECK_INT(m.runtime, SUB_RUNTIME_RUNSC);
    CHECK_STREQ(m.capabilities[0], "CAP_NET_BIND_SERVICE");
    CHECK_STREQ(m.capabilities[1], "CAP_CHECKPOINT_RESTORE");

    /* env as a list; identity and any_repo */
    sub_svc_manifest_done(&m);
    CHECK_OK(parse(HEAD "env: [\"B=2\", \"A=\"]\nidentity: 127.0.0.1:5000/mirror/hello\n"
                        "any_repo: false\n",
                   &m, &e),
             &e);
    CHECK_STREQ(m.env[0], "A=");
    CHECK_STREQ(m.env[1], "B=2");
    CHECK_INT(m.policy, SUB_IDENTITY_EXACT);
    CHECK_STREQ(m.identity, "127.0.0.1:5000/mirror/hello");
    sub_svc_manifest_done(&m);
    CHECK_OK(parse(HEAD "any_repo: true\n", &m, &e), &e);
    CHECK_INT(m.policy, SUB_IDENTITY_ANY_REPO);
    CHECK(m.identity == NULL);

    /* a relative path: dir is absolute, from the cwd */
    sub_svc_manifest_done(&m);
    const char *rel = HEAD "keys: [k.pub]\n";
    CHECK_OK(sub_svc_manifest_parse(rel, strlen(rel), "m.yaml", &m, &e), &e);
    _cleanup_free_ char *cwd = getcwd(NULL, 0);
    CHECK_STREQ(m.dir, cwd);
    _cleanup_free_ char *want = sub_path_join(cwd, "k.pub");
    CHECK_STREQ(m.keys[0], want);
}

TEST(svc_manifest_refuses_with_position) {
    /* structure, with line:col */
    REFUSED(HEAD "bogus: 1\n", "bogus: unknown key (known keys: name, image,", 3, 1);
    REFUSED("name: a\nname: b\nimage: " IMG "\n", "name: given twice (first at line 1)", 2, 1);
    REFUSED("\n\n  name: a\n", "image: missing", 3, 3);
    REFUSED("image: " IMG "\n", "name: missing", 1, 1);
    REFUSED("name: [a]\nimage: " IMG "\n", "name: expected a string, found a list", 1, 7);
    REFUSED("name:\nimage: " IMG "\n", "name: expected a string, found no value", 1, 6);
    REFUSED(HEAD "health:\n  http: http://127.0.0.1:1/\n  intervall: 2s\n",
            "health.intervall: unknown key; did you mean interval?", 5, 3);
    REFUSED(HEAD "health:\n  http: http://127.0.0.1:1/\n  every: 2s\n",
            "health.every: unknown key (known here: http, tcp, exec, interval, timeout, "
            "start_period, failure_threshold)",
            5, 3);
    REFUSED(HEAD "helth: {}\n", "helth: unknown key; did you mean health?", 3, 1);
    REFUSED(HEAD "health:\n  interval: 2s\n", "health: give one of http, tcp or exec", 4, 3);
    REFUSED(HEAD "resources:\n  memory: 1G\n  memory: 2G\n", "resources.memory: given twice", 5, 3);
    REFUSED(HEAD "ports:\n  - 127.0.0.1:80:80\n  - 127.0.0.2:80:81\n",
            "ports[1]: host port 80 is published twice", 5, 5);
    REFUSED(HEAD "network: none\nports: [\"80:80\"]\n", "ports: a service with network: none", 4,
            8);
    REFUSED(HEAD "network: host\nports: [\"80:81\"]\n", "ports[0]: with network: host", 4, 9);
    /* YAML features refused */
    REFUSED("name: &a hello\nimage: " IMG "\n", "YAML anchors (&a) are not allowed", 1, 7);
    REFUSED("name: hello\nimage: *a\n", "YAML aliases (*a) are not allowed", 2, 8);
    REFUSED("a: &x [1]\nb: *x\n", "YAML anchors", 1, 4);
    REFUSED("name: a\x01b\nimage: " IMG "\n", "not valid YAML text: control characters", 1, 8);
    REFUSED("name: !!str hello\nimage: " IMG "\n", "YAML tags", 1, 7);
    REFUSED(HEAD "---\nname: other\n", "a second YAML document", 3, 1);
    REFUSED("? [a]\n: b\n", "a mapping key must be a plain string", 1, 3);
    REFUSED("name: h\xffllo\nimage: " IMG "\n", "not valid UTF-8", 1, 8);
    REFUSED("name: [a\n", "YAML syntax error", 0, 0);
    REFUSED("name: \"a\\0b\"\nimage: " IMG "\n", "NUL", 1, 7);
    REFUSED("- a\n", "a manifest is a mapping of fields", 1, 1);
    REFUSED("", "the manifest is empty", 1, 1);
    REFUSED("# nothing\n", "the manifest is empty", 1, 1);
    REFUSED("name: [[[[[[[[[[[[[[[[[[[[a]]]]]]]]]]]]]]]]]]]\n", "nested more than", 1, 22);
    REFUSED(HEAD "<<: {pids: 1}\n", "<<: unknown key", 3, 1);
    refused(__FILE__, __LINE__, HEAD "\0x: 1\n", strlen(HEAD) + 6, "a NUL byte", 3, 1);
}

TEST(svc_manifest_refuses_bad_values) {
    static const struct {
        const char *yaml, *want;
    } t[] = {
        /* image */
        {"name: a\nimage: 127.0.0.1:5000/substrate/hello:v1\n",
         "image: \"127.0.0.1:5000/substrate/hello:v1\" names a tag, but the manifest must pin "
         "the image by digest"},
        {"name: a\nimage: 127.0.0.1:5000/substrate/hello:v1\n",
         "`substrate inspect 127.0.0.1:5000/substrate/hello:v1`"},
        {"name: a\nimage: 127.0.0.1:5000/substrate/hello:v1@sha256:" HEX64 "\n",
         "tag plus digest is ambiguous; give only REGISTRY/REPO@sha256:..."},
        {"name: a\nimage: 127.0.0.1:5000/substrate/hello\n", "has no digest"},
        {"name: a\nimage: substrate/hello@sha256:" HEX64 "\n", "names no registry"},
        {"name: a\nimage: "
         "127.0.0.1:5000/"
         "h@sha256:AB01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01\n",
         "image: "},
        {"name: a\nimage: 127.0.0.1:5000/h@sha512:" HEX64 HEX64 "\n", "must be sha256"},
        /* name */
        {"name: Hello\nimage: " IMG "\n", "name: \"Hello\" must start with a lowercase"},
        {"name: -a\nimage: " IMG "\n", "must start with"},
        {"name: a_b\nimage: " IMG "\n", "only lowercase letters, digits and '-'"},
        {"name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nimage: " IMG "\n",
         "longer than 63"},
        {"name: \"\"\nimage: " IMG "\n", "name: \"\" is empty"},
        /* identity */
        {HEAD "identity: 127.0.0.1:5000/a\nrepo_prefix: 127.0.0.1:5000/x\n",
         "repo_prefix: give at most one of identity"},
        {HEAD "repo_prefix: 127.0.0.1:5000/x\nany_repo: true\n", "give at most one of identity"},
        {HEAD "identity: 127.0.0.1:5000/x:v1\n", "without a tag or digest"},
        {HEAD "any_repo: yes\n", "any_repo: \"yes\" is not a boolean: write true or false"},
        {HEAD "any_repo: \"true\"\n", "not a boolean"},
        {HEAD "repo_prefix: 127.0.0.1:5000/\n", "must not end in '/'"},
        /* keys */
        {HEAD "keys: []\n", "keys: an empty list trusts no key"},
        {HEAD "keys: [release]\n", "keys[0]: \"release\" is neither a key id"},
        {HEAD "keys: release.pub\n", "keys: expected a list, found a string"},
        /* process */
        {HEAD "command: /bin/sh\n", "command: expected a list"},
        {HEAD "args: [a, [b]]\n", "args[1]: expected a string, found a list"},
        {HEAD "env: {1A: x}\n", "env.1A: \"1A\" is not a variable name"},
        {HEAD "env: {A: }\n", "env.A: expected a string, found no value (write \"\""},
        {HEAD "env: {A: [x]}\n", "env.A: expected a string, found a list"},
        {HEAD "env: [\"A=1\", \"B=2\", \"A=3\"]\n", "env: A is set twice (first at line 3)"},
        {HEAD "env: [\"A\"]\n", "env[0]: \"A\" is not KEY=VALUE"},
        {HEAD "env: [\"A-B=1\"]\n", "variable name that is not"},
        {HEAD "env: x\n", "env: expected a mapping (KEY: VALUE) or a list"},
        {HEAD "workdir: srv\n", "workdir: \"srv\" must be an absolute path"},
        {HEAD "workdir: /srv/../etc\n", "must not contain \"..\""},
        {HEAD "user: nobody\n", "user: \"nobody\" must be numeric"},
        {HEAD "user: \"1:\"\n", "must be numeric"},
        {HEAD "user: 4294967295\n", "must be numeric"},
        /* network and ports */
        {HEAD "network: bridge\n", "network: \"bridge\" is not one of private, none, host"},
        {HEAD "ports: [\"8080\"]\n", "ports[0]: \"8080\" is not HOSTADDR:HOSTPORT:CONTAINERPORT"},
        {HEAD "ports: [\"0:80\"]\n", "ports[0]"},
        {HEAD "ports: [\"80:65536\"]\n", "ports[0]"},
        {HEAD "ports: [\"1.2.3:80:80\"]\n", "ports[0]"},
        {HEAD "ports: [\"localhost:80:80\"]\n", "ports[0]"},
        {HEAD "ports: [\"::1:80:80\"]\n", "ports[0]"},
        {HEAD "ports: [\"80:80:\"]\n", "ports[0]"},
        {HEAD "ports: [\"80:+80\"]\n", "ports[0]"},
        {HEAD "ports: \"80:80\"\n", "ports: expected a list"},
        /* probes */
        {HEAD "health: {http: \"http://127.0.0.1:1/\", tcp: \"127.0.0.1:1\"}\n",
         "health.tcp: give only one of http, tcp or exec"},
        {HEAD "health: {http: \"https://127.0.0.1:1/\"}\n", "must be plain http://"},
        {HEAD "health: {http: \"http://localhost:1/\"}\n", "is not http://IPV4:PORT/PATH"},
        {HEAD "health: {http: \"http://127.0.0.1/x\"}\n", "is not http://IPV4:PORT/PATH"},
        {HEAD "health: {http: \"http://127.0.0.1:80\"}\n", "is not http://IPV4:PORT/PATH"},
        {HEAD "health: {http: \"http://127.0.0.1:80/a b\"}\n", "percent-encode"},
        {HEAD "health: {tcp: \"127.0.0.1\"}\n", "health.tcp: \"127.0.0.1\" is not IPV4:PORT"},
        {HEAD "health: {exec: []}\n", "health.exec: needs a program"},
        {HEAD "health: {exec: /bin/true}\n", "health.exec: expected a list"},
        {HEAD "health: {tcp: \"127.0.0.1:1\", deadline: 1s}\n", "health.deadline: unknown key"},
        {HEAD "health: {tcp: \"127.0.0.1:1\", failure_threshold: 0}\n",
         "health.failure_threshold: \"0\" is too small"},
        {HEAD "health: {tcp: \"127.0.0.1:1\", failure_threshold: 1.5}\n", "not a whole number"},
        {HEAD "health: {tcp: \"127.0.0.1:1\", interval: 0}\n",
         "health.interval: must be more than 0"},
        {HEAD "health: {tcp: \"127.0.0.1:1\", timeout: 0s}\n",
         "health.timeout: must be more than 0"},
        {HEAD "readiness: {tcp: \"127.0.0.1:1\", deadline: 0}\n",
         "readiness.deadline: must be more"},
        {HEAD "readiness: {tcp: \"127.0.0.1:1\", interval: 20d, failure_threshold: 2}\n",
         "give a deadline"},
        {HEAD "health: http://127.0.0.1:1/\n", "health: expected a mapping"},
        /* lifecycle */
        {HEAD "restart: sometimes\n",
         "restart: \"sometimes\" is not one of always, on-failure, never"},
        {HEAD "on_drift: ignore\n", "on_drift: \"ignore\" is not one of flag, halt"},
        {HEAD "runtime: kata\n", "runtime: \"kata\" is not one of runc, runsc, crun"},
        {HEAD "backoff: {initial: 1m}\n",
         "backoff: initial (60000ms) is larger than max (30000ms)"},
        {HEAD "backoff: {initial: 0}\n", "backoff.initial: must be more than 0"},
        {HEAD "backoff: {min: 1s}\n", "backoff.min: unknown key (known here: initial, max)"},
        {HEAD "stop_grace: 10 s\n", "stop_grace: \"10 s\" is not a duration"},
        {HEAD "align_interval: -1s\n", "align_interval: \"-1s\" must not be negative"},
        {HEAD "verify_max_age: 25d\n", "verify_max_age: \"25d\" is too long (at most 24 days)"},
        /* resources */
        {HEAD "resources: {memory: 1.5Gi}\n", "resources.memory: \"1.5Gi\" is not a size"},
        {HEAD "resources: {pids: -1}\n", "resources.pids: \"-1\" must not be negative"},
        {HEAD "resources: {cpu: lots}\n", "resources.cpu: \"lots\" is not a CPU amount"},
        {HEAD "resources: {swap: 1G}\n", "resources.swap: unknown key"},
        {HEAD "resources: 1G\n", "resources: expected a mapping, found a string"},
        /* capabilities */
        {HEAD "capabilities: [cap_net_raw]\n",
         "capabilities[0]: \"cap_net_raw\" is not a capability name as the kernel spells it; "
         "write CAP_NET_RAW"},
        {HEAD "capabilities: [NET_ADMIN]\n", "write CAP_NET_ADMIN"},
        {HEAD "capabilities: [CAP_FLY]\n", "\"CAP_FLY\" is not a Linux capability"},
        {HEAD "capabilities: [CAP_KILL, CAP_CHOWN, CAP_KILL]\n",
         "capabilities[2]: CAP_KILL is listed twice"},
        {HEAD "capabilities: [ALL]\n", "is not a Linux capability"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        refused(__FILE__, __LINE__, t[i].yaml, strlen(t[i].yaml), t[i].want, 0, 0);
    }
}

/* One value of one field through the parser: 0 and *m filled, or the refusal. */
static int field(const char *yaml_tail, sub_svc_manifest *m) {
    _cleanup_free_ char *y = xasprintf(HEAD "%s\n", yaml_tail);
    sub_err e = {0};
    return sub_svc_manifest_parse(y, strlen(y), MPATH, m, &e);
}

TEST(svc_manifest_durations) {
    static const struct {
        const char *v;
        long long ms; /* -1: refused */
    } t[] = {
        {"500ms", 500}, {"2s", 2000}, {"1m", 60000}, {"1h", 3600000}, {"1d", 86400000}, {"0", 0},
        {"7", 7000}, {"007s", 7000}, {"\"3s\"", 3000}, {"0ms", 0}, {"24d", 2073600000},
        {"2073600", 2073600000}, {"2073600000ms", 2073600000}, {"576h", 2073600000},
        {"2073600001ms", -1}, {"2073601", -1}, {"25d", -1}, {"577h", -1},
        {"99999999999999999999999s", -1}, {"-1s", -1}, {"-0", -1}, {"1.5s", -1}, {"2 s", -1},
        {"2S", -1}, {"s", -1}, {"ms", -1}, {"\"\"", -1}, {"1m30s", -1}, {"+2s", -1}, {"0x10", -1},
        {"2sec", -1}, {"[2s]", -1}, {"~", -1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        _cleanup_free_ char *y = xasprintf("stop_grace: %s", t[i].v);
        _cleanup_svc_manifest_ sub_svc_manifest m = {0};
        int r = field(y, &m);
        if (t[i].ms < 0) {
            if (r != -EINVAL) unit_fail(__FILE__, __LINE__, "stop_grace %s accepted", t[i].v);
        } else if (r < 0 || m.stop_grace_ms != (uint32_t)t[i].ms) {
            unit_fail(__FILE__, __LINE__, "stop_grace %s: r %d, %u ms, want %lld", t[i].v, r,
                      m.stop_grace_ms, t[i].ms);
        }
    }
}

TEST(svc_manifest_memory_and_cpu) {
    static const struct {
        const char *v;
        long long bytes; /* -1: refused */
    } mem[] = {
        {"256Mi", 256ll << 20}, {"1G", 1000000000}, {"512M", 512000000}, {"1048576", 1048576},
        {"1Ki", 1024}, {"2k", 2000}, {"3K", 3000}, {"1Ti", 1ll << 40}, {"2T", 2000000000000},
        {"1Gi", 1ll << 30}, {"0", 0}, {"9223372036854775807", 9223372036854775807ll},
        {"9223372036854775808", -1}, {"8388608Ti", -1}, {"8388607Ti", 8388607ll << 40},
        {"1.5Gi", -1}, {"-1", -1}, {"10X", -1}, {"1gi", -1}, {"Mi", -1}, {"1 Mi", -1}, {"1MB", -1},
        {"\"\"", -1}, {"123456789012345678901234", -1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(mem); i++) {
        _cleanup_free_ char *y = xasprintf("resources: {memory: %s}", mem[i].v);
        _cleanup_svc_manifest_ sub_svc_manifest m = {0};
        int r = field(y, &m);
        if (mem[i].bytes < 0) {
            if (r != -EINVAL) unit_fail(__FILE__, __LINE__, "memory %s accepted", mem[i].v);
        } else if (r < 0 || m.memory_bytes != (uint64_t)mem[i].bytes) {
            unit_fail(__FILE__, __LINE__, "memory %s: r %d, %llu, want %lld", mem[i].v, r,
                      (unsigned long long)m.memory_bytes, mem[i].bytes);
        }
    }
    static const struct {
        const char *v;
        long long millis;
    } cpu[] = {
        {"0.5", 500}, {"\"0.5\"", 500}, {"500m", 500}, {"2", 2000}, {"1.25", 1250}, {"0.001", 1},
        {"1.10", 1100}, {"0", 0}, {"0m", 0}, {"4294967295m", 4294967295ll},
        {"4294967", 4294967000ll}, {"4294967.295", 4294967295ll}, {"4294967.296", -1},
        {"4294968", -1}, {"4294967296m", -1}, {"0.0001", -1}, {"0.5000", -1}, {".5", -1},
        {"1.", -1}, {"-1", -1}, {"abc", -1}, {"1.5m", -1}, {"2 cpus", -1}, {"1e3", -1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cpu); i++) {
        _cleanup_free_ char *y = xasprintf("resources: {cpu: %s}", cpu[i].v);
        _cleanup_svc_manifest_ sub_svc_manifest m = {0};
        int r = field(y, &m);
        if (cpu[i].millis < 0) {
            if (r != -EINVAL) unit_fail(__FILE__, __LINE__, "cpu %s accepted", cpu[i].v);
        } else if (r < 0 || m.cpu_millis != (uint32_t)cpu[i].millis) {
            unit_fail(__FILE__, __LINE__, "cpu %s: r %d, %u, want %lld", cpu[i].v, r, m.cpu_millis,
                      cpu[i].millis);
        }
    }
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    CHECK_INT(field("resources: {pids: 4294967295}", &m), 0);
    CHECK_INT(m.pids, 4294967295u);
    sub_svc_manifest_done(&m);
    CHECK_INT(field("resources: {pids: 4294967296}", &m), -EINVAL);
}

static void round_trip(const char *yaml) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0}, back = {0};
    sub_err e = {0};
    CHECK_OK(parse(yaml, &m, &e), &e);
    if (e.code) return;
    _cleanup_free_ char *j1 = sub_svc_manifest_to_json(&m);
    CHECK_OK(sub_svc_manifest_from_json(j1, strlen(j1), &back, &e), &e);
    if (e.code) return;
    _cleanup_free_ char *j2 = sub_svc_manifest_to_json(&back);
    CHECK_STREQ(j1, j2);
    CHECK_STREQ(back.ref.digest, m.ref.digest);
    CHECK_INT(back.nkeys, m.nkeys);
    CHECK_INT(back.nports, m.nports);
}

TEST(svc_manifest_json_round_trip) {
    round_trip(HEAD);
    round_trip(HEAD "repo_prefix: 127.0.0.1:5000\nkeys: [k.pub, sha256:" HEX64 "]\n"
                    "command: [a, \"b c\"]\nargs: []\nenv: {B: \"ü\", A: \"\"}\nworkdir: /w\n"
                    "user: \"0\"\nports: [\"1:2\", \"10.0.0.1:3:4\"]\n"
                    "health: {exec: [x]}\nreadiness: {http: \"http://10.1.2.3:9/r?a=b\"}\n"
                    "restart: never\nbackoff: {initial: 1ms, max: 1ms}\nstop_grace: 1h\n"
                    "on_drift: halt\nalign_interval: 0\ndeep_align_interval: 3m\n"
                    "verify_max_age: 24d\nresources: {memory: 9223372036854775807, pids: 1, "
                    "cpu: 4294967295m}\nruntime: crun\ncapabilities: []\n");
    round_trip(HEAD "any_repo: true\nnetwork: none\nhealth: {tcp: \"127.0.0.1:1\"}\n");

    _cleanup_free_ char *p = unit_src("platform/manifests/hello.service.yaml");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_OK(sub_svc_manifest_load(p, &m, &e), &e);
    if (e.code) return;
    _cleanup_free_ char *j = sub_svc_manifest_to_json(&m);
    /* canonical: sorted, compact, every field, durations in ms */
    CHECK(str_has_prefix(j,
                         "{\"align_interval_ms\":60000,\"args\":null,\"backoff_initial_ms\":500,"));
    CHECK(strstr(j, "\"stop_grace_ms\":5000,") != NULL);
    CHECK(strstr(j, "\"ports\":[{\"container_port\":8080,\"host_addr\":\"127.0.0.1\","
                    "\"host_port\":8080}]") != NULL);
    CHECK(strstr(j, "\"readiness\":{\"address\":null,\"deadline_ms\":20000,\"exec\":null,"
                    "\"failure_threshold\":3,\"interval_ms\":2000,\"kind\":\"http\",") != NULL);
    CHECK(strstr(j, "\"memory_bytes\":67108864,") != NULL);
    CHECK(strstr(j, "\"identity\":null,\"identity_policy\":\"exact\",") != NULL);
    CHECK(strstr(j, "\"dir\":\"/") != NULL && strstr(j, "\"path\":\"") != NULL);
    CHECK(!strchr(j, ' ') && !strchr(j, '\n'));
    _cleanup_svc_manifest_ sub_svc_manifest back = {0};
    CHECK_OK(sub_svc_manifest_from_json(j, strlen(j), &back, &e), &e);
    _cleanup_free_ char *j2 = sub_svc_manifest_to_json(&back);
    CHECK_STREQ(j, j2);
}

/* Replace the first "from" in s with "to" (caller frees). */
static char *replace(const char *s, const char *from, const char *to) {
    const char *at = strstr(s, from);
    if (!at) return xstrdup(s);
    return xasprintf("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
}

TEST(svc_manifest_from_json_refuses) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_OK(parse(HEAD "ports: [\"80:80\"]\nreadiness: {tcp: \"127.0.0.1:1\"}\n", &m, &e), &e);
    _cleanup_free_ char *j = sub_svc_manifest_to_json(&m);
    static const struct {
        const char *from, *to, *want;
    } t[] = {
        {"{\"align", "{\"extra\":1,\"align", "extra: unknown key"},
        {"\"args\":null,", "", "args: missing"},
        {"\"name\":\"hello\"", "\"name\":\"Hello\"", "name: \"Hello\""},
        {"@sha256:", ":v1@sha256:", "tag plus digest"},
        {"\"network\":\"private\"", "\"network\":\"none\"", "ports: a service with network: none"},
        {"\"host_port\":80", "\"host_port\":0", "ports[0]"},
        {"\"pids\":0", "\"pids\":-1", "pids: must be a whole number"},
        {"\"pids\":0", "\"pids\":\"1\"", "pids: must be a whole number"},
        {"\"stop_grace_ms\":10000", "\"stop_grace_ms\":2073600001", "stop_grace_ms"},
        {"\"kind\":\"tcp\"", "\"kind\":\"http\"", "readiness: kind does not match"},
        {"\"restart\":\"always\"", "\"restart\":\"sometimes\"", "restart: is not a known value"},
        {"\"identity_policy\":\"exact\"", "\"identity_policy\":\"repo-prefix\"",
         "identity: does not match"},
        {"\"capabilities\":null", "\"capabilities\":[\"CAP_FLY\"]", "not a Linux capability"},
        {"\"env\":null", "\"env\":[\"1=2\"]", "env: \"1=2\""},
        {"\"dir\":\"/srv/svc\"", "\"dir\":\"srv\"", "dir: must be an absolute path"},
        {"\"keys\":null", "\"keys\":[\"rel.pub\"]", "keys: \"rel.pub\" is neither"},
        {"{", "[", "service manifest JSON"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        _cleanup_free_ char *bad = replace(j, t[i].from, t[i].to);
        if (streq(bad, j))
            unit_fail(__FILE__, __LINE__, "case %zu: \"%s\" not in %s", i, t[i].from, j);
        _cleanup_svc_manifest_ sub_svc_manifest back = {0};
        sub_err_clear(&e);
        int r = sub_svc_manifest_from_json(bad, strlen(bad), &back, &e);
        if (r != -EINVAL || e.reason != SUB_R_BAD_MANIFEST || e.kind != SUB_KIND_INPUT ||
            !strstr(e.msg, t[i].want))
            unit_fail(__FILE__, __LINE__, "case %zu (%s): r %d reason %s: %s", i, t[i].want, r,
                      sub_reason_to_string(e.reason), e.msg);
        CHECK(back.name == NULL);
    }
}

TEST(svc_manifest_load_errors) {
    const char *d = unit_tmpdir();
    _cleanup_free_ char *missing = sub_path_join(d, "none.yaml");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_FAILS(sub_svc_manifest_load(missing, &m, &e), -ENOENT);
    CHECK_INT(e.kind, SUB_KIND_INPUT);
    CHECK(strstr(e.msg, missing) != NULL);

    /* one byte over the limit */
    _cleanup_free_ char *big = sub_path_join(d, "big.yaml");
    size_t n = SUB_SVC_MANIFEST_MAX + 1;
    _cleanup_free_ char *text = xmalloc(n);
    memset(text, '#', n);
    CHECK_OK(sub_write_file_atomic(big, text, n, 0644, &e), &e);
    CHECK_FAILS(sub_svc_manifest_load(big, &m, &e), -EINVAL);
    CHECK_REASON(&e, SUB_R_BAD_MANIFEST);
    CHECK(strstr(e.msg, "larger than") != NULL);
    sub_err_clear(&e);
    CHECK_FAILS(sub_svc_manifest_parse(text, n, "big.yaml", &m, &e), -EINVAL);
    CHECK_REASON(&e, SUB_R_BAD_MANIFEST);

    /* a file: messages carry its path and line */
    _cleanup_free_ char *f = sub_path_join(d, "svc.yaml");
    const char *y = HEAD "ports: [\"80:80\", \"80:80\"]\n";
    CHECK_OK(sub_write_file_atomic(f, y, strlen(y), 0644, &e), &e);
    sub_err_clear(&e);
    CHECK_FAILS(sub_svc_manifest_load(f, &m, &e), -EINVAL);
    _cleanup_free_ char *want = xasprintf("%s:3:18: ports[1]: host port 80 is published twice", f);
    if (!str_has_prefix(e.msg, want)) unit_fail(__FILE__, __LINE__, "%s", e.msg);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);

    /* a directory */
    CHECK(sub_svc_manifest_load(d, &m, &e) < 0);
    sub_svc_manifest_done(&m);
    sub_svc_manifest_done(&m); /* twice is fine */
}

TEST(svc_manifest_messages_are_escaped) {
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_err e = {0};
    CHECK_FAILS(parse(HEAD "\"\\e[31mred\": 1\n", &m, &e), -EINVAL);
    CHECK(strstr(e.msg, "\\x1b[31mred: unknown key") != NULL);
    CHECK(!strchr(e.msg, 0x1b));
    CHECK_FAILS(parse(HEAD "env: {\"\\e\": x}\n", &m, &e), -EINVAL);
    CHECK(strstr(e.msg, "env.\\x1b: \"\\x1b\" is not a variable name") != NULL);
    CHECK(!strchr(e.msg, 0x1b));
    /* a long key is cut */
#define A15 "aaaaaaaaaaaaaaa"
    CHECK_FAILS(parse(HEAD A15 A15 A15 A15 ": 1\n", &m, &e), -EINVAL);
    CHECK(strstr(e.msg, ":3:1: " A15 A15 A15 "...: unknown key") != NULL);
}

TEST(svc_manifest_accepts_yaml_forms) {
    static const char *const ok[] = {
        "\xEF\xBB\xBF" HEAD,                                 /* a UTF-8 byte order mark */
        "name: hello\r\nimage: " IMG "\r\n",                 /* CRLF */
        "%YAML 1.1\n---\n" HEAD "...\n",                     /* directive, explicit document */
        "{name: hello, image: \"" IMG "\"}",                 /* flow mapping, no newline */
        "# comment\nname: 'hello'   # trailing\nimage: >-\n  " IMG "\n", /* quoting, folding */
        HEAD "command:\n  - /bin/sh\n  - -c\n  - \"echo ü\"\n",          /* block list, UTF-8 */
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        _cleanup_svc_manifest_ sub_svc_manifest m = {0};
        sub_err e = {0};
        if (parse(ok[i], &m, &e) < 0) unit_fail(__FILE__, __LINE__, "form %zu: %s", i, e.msg);
        CHECK_STREQ(m.name, "hello");
        CHECK_STREQ(m.image, IMG);
    }
    /* UTF-16 is not UTF-8 */
    refused(__FILE__, __LINE__, "\xFF\xFEn\0a\0", 6, "not valid UTF-8", 1, 1);
}

#define JOBIMG "127.0.0.1:5000/job@sha256:" HEX64

TEST(svc_manifest_escalate) {
    _cleanup_svc_manifest_ sub_svc_manifest none = {0};
    sub_err e = {0};
    CHECK_OK(parse(HEAD, &none, &e), &e);
    CHECK(!none.escalate.enabled); /* no block: the service cannot escalate */
    CHECK(strlen(none.source_digest) == 71 && str_has_prefix(none.source_digest, "sha256:"));

    _cleanup_svc_manifest_ sub_svc_manifest d = {0};
    CHECK_OK(parse(HEAD "escalate:\n  image: " JOBIMG "\n", &d, &e), &e);
    CHECK(d.escalate.enabled);
    CHECK_STREQ(d.escalate.ref.repository, "job");
    CHECK(d.escalate.egress == NULL);
    CHECK_INT(d.escalate.max_timeout_s, 30);
    CHECK_INT(d.escalate.max_memory_mb, 256);
    CHECK_INT(d.escalate.max_vcpus, 1);
    CHECK_INT(d.escalate.concurrency, 1);
    CHECK_INT(d.escalate.queue, 4);
    CHECK_INT(d.escalate.queue_wait_ms, 60000);
    CHECK_INT(d.escalate.per_minute, 60);
    CHECK(d.escalate.max_input == 1u << 20 && d.escalate.max_output == 1u << 20);

    _cleanup_svc_manifest_ sub_svc_manifest f = {0};
    CHECK_OK(parse(HEAD "escalate:\n  image: " JOBIMG "\n  egress: [\"127.0.0.1:9\", \"10.1.2.3:443\"]\n"
                        "  max_timeout: 1m\n  max_memory: 512Mi\n  max_vcpus: 2\n  max_input: 64Ki\n"
                        "  max_output: 2Mi\n  concurrency: 3\n  queue: 0\n  queue_wait: 500ms\n  per_minute: 7\n",
                   &f, &e),
             &e);
    CHECK_INT(strv_len(f.escalate.egress), 2);
    CHECK_INT(f.escalate.max_timeout_s, 60);
    CHECK_INT(f.escalate.max_memory_mb, 512);
    CHECK_INT(f.escalate.max_vcpus, 2);
    CHECK(f.escalate.max_input == 65536 && f.escalate.max_output == 2u << 20);
    CHECK_INT(f.escalate.concurrency, 3);
    CHECK_INT(f.escalate.queue, 0);
    CHECK_INT(f.escalate.queue_wait_ms, 500);
    CHECK_INT(f.escalate.per_minute, 7);
    /* what the supervisor reads back is the same policy */
    _cleanup_free_ char *j = sub_svc_manifest_to_json(&f);
    CHECK(strstr(j, "\"escalate\":{\"concurrency\":3,\"egress\":[\"127.0.0.1:9\",\"10.1.2.3:443\"],") != NULL);
    round_trip(HEAD "escalate:\n  image: " JOBIMG "\n  egress: [\"127.0.0.1:9\"]\n  queue: 0\n");
    round_trip(HEAD "escalate: null\n");

    REFUSED(HEAD "escalate:\n  egress: []\n", "escalate.image: missing", 4, 3);
    REFUSED(HEAD "escalate:\n  image: 127.0.0.1:5000/job:1\n", "escalate.image: ", 4, 10);
    REFUSED(HEAD "escalate:\n  image: 127.0.0.1:5000/job:1\n", "names a tag", 4, 10);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  tier: 0\n", "escalate.tier", 5, 3);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  egress: [\"example.com:443\"]\n", "escalate.egress[0]", 5, 12);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  egress: [\"1.2.3.4:5\", \"1.2.3.4:5\"]\n", "listed twice", 5, 25);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  max_timeout: 1500ms\n", "whole seconds", 5, 16);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  max_timeout: 2d\n", "the host's cap", 5, 16);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  max_memory: 64Mi\n", "128Mi..16Gi", 5, 15);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  max_memory: 1000000\n", "whole MiB", 5, 15);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  max_vcpus: 0\n", "escalate.max_vcpus", 5, 14);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  max_input: 5Mi\n", "more than 4Mi", 5, 14);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  concurrency: 0\n", "1..64", 5, 16);
    REFUSED(HEAD "escalate:\n  image: " JOBIMG "\n  per_minute: 0\n", "escalate.per_minute", 5, 15);
    REFUSED(HEAD "escalate: [a]\n", "escalate", 3, 11);

    /* the JSON form checks the same limits */
    _cleanup_free_ char *bad = replace(j, "\"concurrency\":3", "\"concurrency\":0");
    _cleanup_svc_manifest_ sub_svc_manifest b = {0};
    CHECK_INT(sub_svc_manifest_from_json(bad, strlen(bad), &b, &e), -EINVAL);
    CHECK(strstr(e.msg, "escalate.concurrency") != NULL);
    _cleanup_free_ char *bad2 = replace(j, "\"queue\":0", "\"queue\":0,\"tier\":0");
    _cleanup_svc_manifest_ sub_svc_manifest b2 = {0};
    CHECK_INT(sub_svc_manifest_from_json(bad2, strlen(bad2), &b2, &e), -EINVAL);
    CHECK(strstr(e.msg, "tier") != NULL);
}
