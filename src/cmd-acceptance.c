/* substrate acceptance: the end-to-end contract. Each check exercises the real
 * parts (docker-registry, git, the builder, the registry client) in a private
 * state dir with a registry on a free loopback port, and records evidence. */
#include "cli.h"
#include "substrate/admit.h"
#include "substrate/attest.h"
#include "substrate/build.h"
#include "substrate/config.h"
#include "substrate/cosign-registry.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/registry.h"
#include "substrate/regserver.h"
#include "substrate/release.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"
#include "substrate/tier2.h"
#include <fcntl.h>
#include "substrate/transfer.h"
#include "substrate/vm.h"
#include "substrate/vmspec.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct actx {
    char *repo;
    char *state;    /* private state dir */
    char addr[64];  /* private registry */
    char head[41];
    bool tap;
    int n, passed, failed;
    json_t *checks;
    /* facts carried between checks */
    char hello_digest[SUB_DIGEST_MAX];
    char job_digest[SUB_DIGEST_MAX];
    sub_build_result hello_build; /* what hello's provenance describes */
    bool registry_up;
    /* tier 1 */
    int t1_port;
    bool t1_started, esc_started;
    char t1_manifest[4096];
    int job_timeout; /* seconds a Tier-2 job (boot included) may take */
} actx;

static void record(actx *a, const char *name, bool ok, const char *fmt, ...) _printf_(4, 5);
static void record(actx *a, const char *name, bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *detail = xvasprintf(fmt, ap);
    va_end(ap);
    a->n++;
    if (ok) a->passed++;
    else a->failed++;
    if (a->tap) {
        printf("%s %d - %s\n", ok ? "ok" : "not ok", a->n, name);
        if (*detail) cli_line(stdout, "# %s", detail); /* may quote a registry */
    } else {
        cli_line(stdout, "%-4s %s%s%s", ok ? "PASS" : "FAIL", name, *detail ? ": " : "", detail);
    }
    fflush(stdout);
    json_array_append_new(a->checks, json_pack("{s:s, s:b, s:o}", "name", name, "passed", ok,
                                               "evidence", sub_json_str(detail)));
}

static int build(actx *a, const char *image, const char *version, const char *work_parent,
                 sub_build_result *res, sub_err *e) {
    sub_build_opts o = {.repo = a->repo, .image = image, .version = version, .rev = a->head,
                        .state_dir = a->state, .work_parent = work_parent};
    return sub_build_image(&o, res, e);
}

static sub_reg *client(actx *a) {
    sub_reg *r = NULL;
    sub_reg_opts ro = {.host = a->addr};
    return sub_reg_new(&ro, &r, NULL) < 0 ? NULL : r;
}

/* ---- supply chain (issue 2) ---- */

static void check_registry(actx *a) {
    sub_err e = {0};
    sub_regsrv_opts so = {.state_dir = a->state, .addr = a->addr};
    bool already;
    pid_t pid;
    int r = sub_regsrv_start(&so, &already, &pid, &e);
    a->registry_up = r == 0;
    if (r < 0) {
        record(a, "registry starts on a private loopback port", false, "%s", e.msg);
        return;
    }
    _cleanup_reg_ sub_reg *c = client(a);
    r = c ? sub_reg_ping(c, &e) : -EIO;
    record(a, "registry starts on a private loopback port", r == 0, "docker-registry pid %d on %s%s%s",
           (int)pid, a->addr, r ? ": " : "", r ? e.msg : "");
}

/* The release's build step: two builds in export dirs at different depths. */
static void check_reproducible(actx *a) {
    sub_err e = {0};
    _cleanup_free_ char *w1 = sub_path_join(a->state, "work-a");
    _cleanup_free_ char *w2 = sub_path_join(a->state, "work-b/deeper/path");
    sub_release_opts o = {.repo = a->repo, .version = "acceptance", .state_dir = a->state};
    sub_release_image img = {.name = "hello"};
    int r = sub_release_build(&o, a->head, w1, w2, &img, &e);
    if (r < 0 && e.reason != SUB_R_NOT_REPRODUCIBLE)
        record(a, "hello builds reproducibly from one commit", false, "%s", e.msg);
    else
        record(a, "hello builds reproducibly from one commit", r == 0,
               "commit %.12s: %s (export under %s) and %s (export under %s)", a->head, img.digest,
               w1, img.second, w2);
    sub_build_result_free(&img.first);
}

static void check_push(actx *a, const char *image) {
    _cleanup_free_ char *name = xasprintf("%s builds, pushes, and the registry serves it by digest", image);
    if (!a->registry_up) {
        record(a, name, false, "no registry");
        return;
    }
    sub_err e = {0};
    sub_build_result res = {0};
    _cleanup_reg_ sub_reg *c = client(a);
    char served[SUB_DIGEST_MAX] = "";
    int r = build(a, image, "1.0.0", NULL, &res, &e);
    if (r == 0) r = sub_push_layout(c, res.layout_dir, res.manifest_digest, image, "1.0.0", NULL, NULL, &e);
    if (r == 0) {
        r = sub_reg_manifest_head(c, image, "1.0.0", served, NULL, NULL, &e);
        if (r == 0) r = sub_err_set(&e, -ENOENT, "tag 1.0.0 not found after push");
        else if (r > 0) r = 0;
    }
    if (r < 0) record(a, name, false, "%s", e.msg);
    else {
        record(a, name, !strcmp(served, res.manifest_digest), "%s/%s:1.0.0 -> %s (built %s)",
               a->addr, image, served, res.manifest_digest);
        if (!strcmp(image, "job")) memcpy(a->job_digest, res.manifest_digest, SUB_DIGEST_MAX);
        if (!strcmp(image, "hello")) {
            memcpy(a->hello_digest, res.manifest_digest, SUB_DIGEST_MAX);
            a->hello_build = res;
            return;
        }
    }
    sub_build_result_free(&res);
}

static void check_pull(actx *a) {
    const char *name = "hello pulls back by digest with every blob verified";
    if (!a->hello_digest[0]) {
        record(a, name, false, "hello was not pushed");
        return;
    }
    sub_err e = {0};
    _cleanup_reg_ sub_reg *c = client(a);
    _cleanup_free_ char *dir = sub_path_join(a->state, "pulled");
    char got[SUB_DIGEST_MAX] = "";
    int r = sub_pull_to_layout(c, "hello", a->hello_digest, dir, "pulled", got, NULL, NULL, &e);
    if (r == 0) r = sub_layout_verify(dir, &e);
    if (r < 0) record(a, name, false, "%s", e.msg);
    else record(a, name, !strcmp(got, a->hello_digest), "pulled %s into %s", got, dir);
}

static void check_refusals(actx *a) {
    sub_err e = {0};
    sub_build_result res = {0};
    sub_build_opts o = {.repo = a->repo, .image = "hello", .version = "1.0.0+build", .rev = a->head,
                        .state_dir = a->state};
    int r = sub_build_image(&o, &res, &e);
    record(a, "a semver '+' version is refused", r < 0 && e.reason == SUB_R_INVALID_TAG, "%s",
           e.msg);
    o.version = "1.0.0";
    o.image = "no-such-image";
    r = sub_build_image(&o, &res, &e);
    record(a, "an unknown image is refused", r < 0 && e.reason == SUB_R_UNKNOWN_IMAGE, "%s", e.msg);
    o.image = "hello";
    o.rev = "0000000000000000000000000000000000000bad";
    r = sub_build_image(&o, &res, &e);
    record(a, "an unknown commit is refused", r < 0 && e.reason == SUB_R_UNKNOWN_REVISION, "%s",
           e.msg);
    sub_build_result_free(&res);
}

/* ---- signatures (issue 3) ---- */

/* Admit image@digest from the private registry as a deployment does (the
 * private trust store, exact identity; with provenance, that too). Returns
 * the library's result; e gets the reason. */
static int admit(actx *a, const char *image, const char *digest, bool provenance,
                 sub_admission *ad, sub_err *e) {
    _cleanup_free_ char *dir = sub_path_join(a->state, "trust");
    _cleanup_reg_ sub_reg *c = client(a);
    if (!c) return sub_err_set(e, -EIO, "no registry client for %s", a->addr);
    sub_ref ref = {.registry = a->addr, .repository = (char *)image, .digest = (char *)digest};
    sub_admit_opts o = {.ref = &ref, .reg = c, .trust_dir = dir, .provenance = provenance};
    return sub_admit_image(&o, ad, e);
}

static int verify_image(actx *a, const char *image, const char *digest, char by[SUB_DIGEST_MAX],
                        sub_err *e) {
    _cleanup_admission_ sub_admission ad = {0};
    int r = admit(a, image, digest, false, &ad, e);
    if (r == 0 && by) snprintf(by, SUB_DIGEST_MAX, "%s", ad.sig.records[ad.sig.verified].key_id);
    return r;
}

/* The private state's platform key (made on first use, its .pub trusted), opened. */
static int platform_key(actx *a, bool *created, char id[SUB_DIGEST_MAX], sub_privkey **k,
                        sub_err *e) {
    _cleanup_free_ char *keyp = sub_platform_key_path(a->state);
    int r = sub_platform_key_ensure(a->state, created, id, e);
    if (r < 0) return r;
    sub_key_open_opts ko = {.path = keyp, .beside_first = true};
    return sub_signing_key_open(&ko, k, e);
}

static void check_signed_verifies(actx *a) {
    const char *name = "an image signed with the platform key verifies from the registry";
    if (!a->hello_digest[0]) {
        record(a, name, false, "hello was not pushed");
        return;
    }
    sub_err e = {0};
    bool created = false;
    char id[SUB_DIGEST_MAX] = "";
    _cleanup_free_ char *keyp = sub_platform_key_path(a->state);
    _cleanup_privkey_ sub_privkey *k = NULL;
    int r = platform_key(a, &created, id, &k, &e);
    sub_cosign_sign_result sr = {0};
    if (r == 0) {
        _cleanup_reg_ sub_reg *c = client(a);
        _cleanup_free_ char *identity = xasprintf("%s/hello", a->addr);
        r = c ? sub_cosign_sign_registry(c, "hello", identity, a->hello_digest, k, &sr, &e) : -EIO;
    }
    char by[SUB_DIGEST_MAX] = "";
    if (r == 0) r = verify_image(a, "hello", a->hello_digest, by, &e);
    if (r < 0) record(a, name, false, "%s", e.msg);
    else
        record(a, name, created && streq(by, id),
               "platform key %s made in %s (created now: %s); %s/hello@%s signed under %s and "
               "verified by key %s from the trust store",
               id, keyp, created ? "yes" : "no", a->addr, a->hello_digest, sr.sig_tag, by);
}

static void check_unsigned_refused(actx *a) {
    const char *name = "an unsigned image is refused";
    if (!a->job_digest[0]) {
        record(a, name, false, "job was not pushed");
        return;
    }
    sub_err e = {0};
    int r = verify_image(a, "job", a->job_digest, NULL, &e);
    record(a, name, r == -EKEYREJECTED && e.reason == SUB_R_NO_SIGNATURE, "%s/job@%s: %s",
           a->addr, a->job_digest, r == 0 ? "verified (wrongly)" : e.msg);
}

static void check_other_key_refused(actx *a) {
    const char *name = "an image signed by another key is refused";
    if (!a->job_digest[0]) {
        record(a, name, false, "job was not pushed");
        return;
    }
    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *k = NULL;
    sub_cosign_sign_result sr = {0};
    int r = sub_privkey_generate(&k, &e);
    if (r == 0) {
        _cleanup_reg_ sub_reg *c = client(a);
        _cleanup_free_ char *identity = xasprintf("%s/job", a->addr);
        r = c ? sub_cosign_sign_registry(c, "job", identity, a->job_digest, k, &sr, &e) : -EIO;
    }
    if (r < 0) {
        record(a, name, false, "signing job with a fresh key failed: %s", e.msg);
        return;
    }
    r = verify_image(a, "job", a->job_digest, NULL, &e);
    record(a, name, r == -EKEYREJECTED && e.reason == SUB_R_NO_TRUSTED_KEY,
           "job signed by key %s (not trusted), signature %s: %s", sr.key_id, sr.sig_tag,
           r == 0 ? "verified (wrongly)" : e.msg);
}

static void check_provenance(actx *a) {
    const char *name = "hello's SLSA provenance attaches and verifies, naming its commit";
    const sub_build_result *b = &a->hello_build;
    if (!a->hello_digest[0] || !b->spec_path) {
        record(a, name, false, "hello was not built and pushed");
        return;
    }
    sub_err e = {0};
    bool created;
    char id[SUB_DIGEST_MAX];
    _cleanup_privkey_ sub_privkey *k = NULL;
    _cleanup_free_ char *identity = xasprintf("%s/hello", a->addr);
    sub_provenance p;
    sub_release_provenance(&p, b, identity, a->hello_digest, "hello", "1.0.0",
                           "substrate-acceptance");
    _cleanup_reg_ sub_reg *c = client(a);
    /* then admitted as a deployment requiring provenance admits it */
    _cleanup_admission_ sub_admission ad = {0};
    const sub_attest_result *ar = &ad.prov;
    int r = platform_key(a, &created, id, &k, &e);
    if (r == 0) r = c ? sub_attest_registry(c, "hello", &p, k, NULL, &e) : -EIO;
    if (r == 0) r = admit(a, "hello", a->hello_digest, true, &ad, &e);
    if (r < 0) record(a, name, false, "%s", e.msg);
    else
        record(a, name, streq(ar->commit, a->head),
               "%s@%s: in-toto v1 / SLSA provenance v1 under %s, key %s, commit %s, spec %s (%s)",
               identity, a->hello_digest, "sha256-<hex>.att", ar->key_id, ar->commit,
               ar->spec_path, ar->spec_digest);
}

/* The real-cosign signature from containers/image's fixtures (see
 * tests/fixtures/cosign/README.txt, item 6). */
#define UPSTREAM_DIR "tests/fixtures/cosign/upstream-containers-image"
#define UPSTREAM_IDENTITY "192.168.64.2:5000/cosign-signed-single-sample"

static void check_real_cosign(actx *a) {
    const char *name = "a signature made by real cosign verifies offline";
    sub_err e = {0};
    _cleanup_free_ char *dir = sub_path_join(a->repo, UPSTREAM_DIR);
    _cleanup_free_ char *pubp = sub_path_join(dir, "cosign.pub");
    _cleanup_free_ char *payp = sub_path_join(dir, "payload.json");
    _cleanup_free_ char *sigp = sub_path_join(dir, "signature.b64");
    _cleanup_free_ char *manp = sub_path_join(dir, "manifest.json");
    _cleanup_pubkey_ sub_pubkey *k = NULL;
    _cleanup_free_ char *payload = NULL, *sig = NULL;
    size_t plen = 0, slen = 0;
    char digest[SUB_DIGEST_MAX] = "";
    int r = sub_pubkey_load_file(pubp, &k, &e);
    if (r == 0) r = sub_read_file(payp, SUB_SIGN_MAX_PAYLOAD, &payload, &plen, &e);
    if (r == 0) r = sub_read_file(sigp, SUB_SIGN_MAX_SIG_B64, &sig, &slen, &e);
    if (r == 0) r = sub_sha256_file(manp, digest, NULL, &e);
    sub_verify_record rec = {0};
    if (r == 0) {
        sig[strcspn(sig, "\r\n")] = 0;
        const sub_pubkey *keys[] = {k};
        r = sub_cosign_verify(keys, 1, payload, plen, sig, digest, UPSTREAM_IDENTITY,
                              SUB_IDENTITY_EXACT, &rec, &e);
    }
    if (r < 0) record(a, name, false, "%s: %s", UPSTREAM_DIR, e.msg);
    else
        record(a, name, rec.verified, "%s: image %s, identity %s, verified by key %s", UPSTREAM_DIR,
               rec.payload_digest, rec.payload_reference, rec.key_id);
}

/* ---- Tier-1 services (issue 7) ---- */

/* GET path on 127.0.0.1:port, a new connection: the HTTP status, or -errno. */
static int http_get(int port, const char *path, char *body, size_t n) {
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return -errno;
    _cleanup_free_ char *req = xasprintf("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    if (sub_write_all(fd, req, strlen(req)) < 0) return -EIO;
    char buf[4096];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof buf - 1 && (k = read(fd, buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
    buf[got] = 0;
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -EPROTO;
    const char *b = strstr(buf, "\r\n\r\n");
    if (body) snprintf(body, n, "%s", b ? b + 4 : "");
    return status;
}

/* Reconcile the acceptance service at digest (extra: more manifest lines). */
static int t1_reconcile(actx *a, const char *digest, sub_t1_reconcile_result *res, sub_err *e) {
    snprintf(a->t1_manifest, sizeof a->t1_manifest,
             "name: acceptance-hello\n"
             "image: %s/hello@%s\n"
             "ports: [\"127.0.0.1:%d:8080\"]\n"
             "readiness: {http: \"http://127.0.0.1:8080/readyz\", interval: 100ms, deadline: 15s}\n"
             "health: {http: \"http://127.0.0.1:8080/healthz\", interval: 1s}\n"
             "stop_grace: 3s\n",
             a->addr, digest, a->t1_port);
    _cleanup_free_ char *path = sub_path_join(a->state, "acceptance-hello.yaml");
    int r = sub_write_file_atomic(path, a->t1_manifest, strlen(a->t1_manifest), 0644, e);
    if (r < 0) return r;
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    r = sub_svc_manifest_load(path, &m, e);
    if (r < 0) return r;
    sub_t1_reconcile_opts o = {.m = &m};
    a->t1_started = true;
    return sub_t1_reconcile(&o, res, e);
}

static int t1_align(actx *a, bool deep, sub_t1_align_result *res, sub_err *e) {
    _cleanup_free_ char *path = sub_path_join(a->state, "acceptance-hello.yaml");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    int r = sub_svc_manifest_load(path, &m, e);
    if (r < 0) return r;
    sub_t1_align_opts o = {.m = &m, .deep = deep, .act = true};
    return sub_t1_align(&o, res, e);
}

static void check_tier1(actx *a) {
    const char *health = "tier-1: hello reconciles and /healthz answers on its published port";
    if (!a->hello_digest[0]) {
        record(a, health, false, "hello was not pushed and signed");
        return;
    }
    /* Tier-1 state (trust store included) is the private state */
    setenv("SUBSTRATE_STATE", a->state, 1);
    a->t1_port = sub_free_loopback_port();
    sub_err e = {0};
    sub_t1_reconcile_result rr = {0};
    int r = t1_reconcile(a, a->hello_digest, &rr, &e);
    char body[256] = "";
    int st = r == 0 ? http_get(a->t1_port, "/healthz", body, sizeof body) : 0;
    if (r < 0) record(a, health, false, "%s", e.msg);
    else record(a, health, st == 200, "%s served %s in %.2f s; GET 127.0.0.1:%d/healthz -> %d", "acceptance-hello",
                rr.digest, rr.seconds, a->t1_port, st);
    if (r < 0) return;

    sub_t1_align_result ar = {0};
    r = t1_align(a, false, &ar, &e);
    record(a, "tier-1: align says ALIGNED", r == 0 && ar.aligned, "%s: %s %s, key %s",
           r < 0 ? e.msg : ar.aligned ? "ALIGNED" : "not aligned", ar.running_digest,
           ar.nchecks > 2 ? ar.checks[2].detail : "", ar.key_id);
    sub_t1_align_result_done(&ar);

    /* tamper with the unpacked image: deep alignment names the file */
    _cleanup_json_ json_t *stj = NULL;
    const char *rootfs = NULL;
    if (sub_t1_status("acceptance-hello", &stj, &e) == 0)
        rootfs = json_string_value(json_object_get(json_object_get(stj, "current"), "rootfs"));
    /* only ever inside the private state */
    _cleanup_free_ char *victim = rootfs && str_has_prefix(rootfs, a->state) ? sub_path_join(rootfs, "usr/bin/hello") : NULL;
    /* its mode: the content of a running executable cannot change (ETXTBSY) */
    bool f = victim && chmod(victim, 04755) == 0;
    r = t1_align(a, true, &ar, &e);
    bool named = false;
    for (char **p = ar.reasons; p && *p; p++)
        if (strstr(*p, "usr/bin/hello")) named = true;
    record(a, "tier-1: a tampered root filesystem is DRIFT, naming the file", f && r == 0 && !ar.aligned && named,
           "align --deep: %s%s%s", r < 0 ? e.msg : ar.aligned ? "ALIGNED (wrongly)" : "DRIFT: ",
           ar.reasons && ar.reasons[0] ? ar.reasons[0] : "", f ? "" : " (could not tamper)");
    sub_t1_align_result_done(&ar);
    /* repair: the same digest again re-unpacks the entry */
    (void)t1_reconcile(a, a->hello_digest, &rr, &e);

    /* a second version, unsigned: refused at deploy, the first keeps serving */
    sub_build_result v2 = {0};
    _cleanup_reg_ sub_reg *c = client(a);
    r = build(a, "hello", "2.0.0", NULL, &v2, &e);
    if (r == 0) r = sub_push_layout(c, v2.layout_dir, v2.manifest_digest, "hello", "2.0.0", NULL, NULL, &e);
    if (r < 0) {
        record(a, "tier-1: an unsigned image is refused at deploy, the running version keeps serving", false,
               "building hello 2.0.0: %s", e.msg);
        sub_build_result_free(&v2);
        return;
    }
    sub_err re = {0};
    r = t1_reconcile(a, v2.manifest_digest, &rr, &re);
    st = http_get(a->t1_port, "/", body, sizeof body);
    record(a, "tier-1: an unsigned image is refused at deploy, the running version keeps serving",
           r == -EKEYREJECTED && re.reason == SUB_R_NO_SIGNATURE && st == 200 && strstr(body, "substrate 1.0.0"),
           "%s@%s: %s; GET / -> %d %.40s", "hello", v2.manifest_digest, r == 0 ? "deployed (wrongly)" : re.msg, st,
           body);

    /* promotion (v2 signed) and rollback (v1 again) */
    _cleanup_privkey_ sub_privkey *k = NULL;
    bool created = false;
    char id[SUB_DIGEST_MAX] = "";
    sub_cosign_sign_result sr = {0};
    r = platform_key(a, &created, id, &k, &e);
    _cleanup_free_ char *identity = xasprintf("%s/hello", a->addr);
    if (r == 0) r = sub_cosign_sign_registry(c, "hello", identity, v2.manifest_digest, k, &sr, &e);
    char b2[256] = "", b1[256] = "";
    bool al2 = false, al1 = false;
    if (r == 0) r = t1_reconcile(a, v2.manifest_digest, &rr, &e);
    if (r == 0) {
        http_get(a->t1_port, "/", b2, sizeof b2);
        al2 = t1_align(a, false, &ar, &e) == 0 && ar.aligned;
        sub_t1_align_result_done(&ar);
        r = t1_reconcile(a, a->hello_digest, &rr, &e);
    }
    if (r == 0) {
        http_get(a->t1_port, "/", b1, sizeof b1);
        al1 = t1_align(a, false, &ar, &e) == 0 && ar.aligned;
        sub_t1_align_result_done(&ar);
    }
    record(a, "tier-1: promotion to a new digest and rollback to the old one, ALIGNED after each",
           r == 0 && strstr(b2, "substrate 2.0.0") && strstr(b1, "substrate 1.0.0") && al2 && al1,
           "%s; after promotion GET / -> %.30s (aligned: %s); after rollback -> %.30s (aligned: %s)",
           r < 0 ? e.msg : "promoted and rolled back", b2, al2 ? "yes" : "no", b1, al1 ? "yes" : "no");
    sub_build_result_free(&v2);
}

/* ---- tier 2 (issue 8) ---- */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A jobspec for the job image, signed with the platform key, in the private state. */
static int t2_jobspec(actx *a, const char *name, const char *body, char **path, sub_err *e) {
    *path = xasprintf("%s/%s.json", a->state, name);
    _cleanup_free_ char *text = xasprintf("{\"name\": \"%s\", \"image\": \"%s/job@%s\", %s}\n", name, a->addr,
                                          a->job_digest, body);
    int r = sub_write_file_atomic(*path, text, strlen(text), 0644, e);
    _cleanup_privkey_ sub_privkey *k = NULL;
    bool created = false;
    char id[SUB_DIGEST_MAX] = "";
    if (r == 0) r = platform_key(a, &created, id, &k, e);
    _cleanup_free_ char *sig = NULL;
    if (r == 0) r = sub_blob_sign_file(k, *path, &sig, e);
    _cleanup_free_ char *sigp = xasprintf("%s.sig", *path), *line = xasprintf("%s\n", sig ? sig : "");
    if (r == 0) r = sub_write_file_atomic(sigp, line, strlen(line), 0644, e);
    return r;
}

static int t2_run(actx *a, const char *name, const char *body, json_t **rep, sub_err *e) {
    _cleanup_free_ char *path = NULL;
    int r = t2_jobspec(a, name, body, &path, e);
    if (r < 0) return r;
    sub_job_opts o = {0};
    return sub_job_run_signed(path, &o, rep, e);
}

static int t2_residual(const json_t *rep) {
    json_t *td = json_object_get(rep, "teardown");
    return td ? (int)json_integer_value(json_object_get(td, "residual")) : -1;
}

static void check_tier2(actx *a) {
    const char *boot = "tier-2: a signed job boots in a jailed microVM and its output comes back";
    if (!a->job_digest[0]) {
        record(a, boot, false, "job was not pushed");
        return;
    }
    setenv("SUBSTRATE_STATE", a->state, 1);
    sub_err e = {0};
    /* the job image, signed with the platform key (the trust store's) */
    _cleanup_privkey_ sub_privkey *k = NULL;
    bool created = false;
    char id[SUB_DIGEST_MAX] = "";
    sub_cosign_sign_result sr = {0};
    int r = platform_key(a, &created, id, &k, &e);
    _cleanup_reg_ sub_reg *c = client(a);
    _cleanup_free_ char *identity = xasprintf("%s/job", a->addr);
    if (r == 0) r = c ? sub_cosign_sign_registry(c, "job", identity, a->job_digest, k, &sr, &e) : -EIO;
    if (r < 0) {
        record(a, boot, false, "signing the job image: %s", e.msg);
        return;
    }
    _cleanup_json_ json_t *r1 = NULL, *r2 = NULL;
    _cleanup_free_ char *echo = xasprintf("\"command\": [\"/bin/echo\", \"tier2-ok\"], \"timeout\": %d, "
                                          "\"probes\": [\"192.0.2.1:80\"]",
                                          a->job_timeout);
    r = t2_run(a, "acceptance-echo", echo, &r1, &e);
    const char *out = json_string_value(json_object_get(json_object_get(r1, "stdout"), "text"));
    const char *outcome = json_string_value(json_object_get(r1, "outcome"));
    record(a, boot, r == 0 && out && streq(out, "tier2-ok\n") && sub_job_exit_code(r1) == 0,
           "job %s: %s, exit %d, stdout %.40s, %s %s, boot %lld ms%s%s",
           json_string_value(json_object_get(r1, "job_id")) ?: "-", outcome ?: "-", sub_job_exit_code(r1), out ?: "",
           json_string_value(json_object_get(r1, "backend")) ?: "-",
           json_string_value(json_object_get(r1, "accelerator")) ?: "-",
           (long long)json_integer_value(json_object_get(r1, "boot_ms")), e.code ? ": " : "", e.code ? e.msg : "");
    json_t *p = json_array_get(json_object_get(r1, "egress"), 0);
    json_t *g = json_object_get(p, "guest");
    record(a, "tier-2: a probe with no allow rule is blocked, with the guest's and the host's evidence",
           streq(json_string_value(json_object_get(p, "result")) ?: "", "blocked") && g &&
               streq(json_string_value(json_object_get(json_object_get(p, "host"), "nic")) ?: "", "none"),
           "192.0.2.1:80 -> %s (guest: %s %s; host: %s)", json_string_value(json_object_get(p, "result")) ?: "no result",
           json_string_value(json_object_get(g, "result")) ?: "-", json_string_value(json_object_get(g, "errno")) ?: "-",
           json_string_value(json_object_get(json_object_get(p, "host"), "evidence")) ?: "-");
    sub_err e2 = {0};
    int64_t t0 = mono_ms();
    r = t2_run(a, "acceptance-sleep", "\"command\": [\"/bin/sleep\", \"600\"], \"timeout\": 5", &r2, &e2);
    int64_t ms = mono_ms() - t0;
    record(a, "tier-2: a job past its deadline is killed: 124, timed_out",
           r == 0 && sub_job_exit_code(r2) == SUB_JOB_EXIT_TIMEOUT && json_is_true(json_object_get(r2, "timed_out")),
           "sleep 600 with timeout 5: exit %d, outcome %s, the runner returned after %lld ms%s%s", sub_job_exit_code(r2),
           json_string_value(json_object_get(r2, "outcome")) ?: "-", (long long)ms, e2.code ? ": " : "",
           e2.code ? e2.msg : "");
    _cleanup_free_ char *jobs = sub_path_join(a->state, "tier2/jobs");
    _cleanup_strv_ char **left = NULL;
    _cleanup_close_ int jfd = open(jobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (jfd >= 0) (void)sub_dir_names_at(jfd, &left);
    record(a, "tier-2: teardown leaves zero residue (audited after each job)",
           t2_residual(r1) == 0 && t2_residual(r2) == 0 && strv_len(left) == 0,
           "echo job: residual %d over %zu checks; timed-out job: residual %d; job dirs left: %zu", t2_residual(r1),
           json_array_size(json_object_get(json_object_get(r1, "teardown"), "checks")), t2_residual(r2),
           strv_len(left));
}

/* ---- escalation (issue 9) ---- */
static void check_escalation(actx *a) {
    const char *run = "escalation: a service's policy runs its request in a microVM; the report names the "
                      "service, its digest and the manifest's digest";
    if (!a->job_digest[0] || !a->hello_digest[0]) {
        record(a, run, false, "hello or job was not pushed");
        return;
    }
    setenv("SUBSTRATE_STATE", a->state, 1);
    sub_err e = {0};
    _cleanup_free_ char *text = xasprintf("name: acceptance-esc\n"
                                          "image: %s/hello@%s\n"
                                          "readiness: {http: \"http://127.0.0.1:8080/readyz\", interval: 100ms, deadline: 15s}\n"
                                          "stop_grace: 2s\n"
                                          "escalate:\n  image: %s/job@%s\n  egress: []\n  max_timeout: %ds\n  concurrency: 1\n",
                                          a->addr, a->hello_digest, a->addr, a->job_digest, a->job_timeout);
    _cleanup_free_ char *path = sub_path_join(a->state, "acceptance-esc.yaml");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    sub_t1_reconcile_result rr = {0};
    int r = sub_write_file_atomic(path, text, strlen(text), 0644, &e);
    if (r == 0) r = sub_svc_manifest_load(path, &m, &e);
    if (r == 0) {
        sub_t1_reconcile_opts o = {.m = &m};
        a->t1_started = a->esc_started = true;
        r = sub_t1_reconcile(&o, &rr, &e);
    }
    int st = 0;
    _cleanup_json_ json_t *rep = NULL, *ref = NULL;
    /* the broker is up once the service is ready: wait briefly for its socket */
    for (int i = 0; r == 0 && i < 50; i++) {
        sub_err ce = {0};
        json_decref(rep);
        rep = NULL;
        if (sub_t1_escalate_call("acceptance-esc", "GET", "/v1/policy", NULL, 5000, &st, &rep, &ce) == 0) break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    json_decref(rep);
    rep = NULL;
    if (r == 0)
        r = sub_t1_escalate_call("acceptance-esc", "POST", "/v1/jobs",
                                 "{\"command\": [\"/bin/sh\", \"-c\"], \"args\": [\"echo escalated-ok\"]}",
                                 (a->job_timeout + 60) * 1000, &st,
                                 &rep, &e);
    json_t *o = json_object_get(rep, "origin");
    const char *out = json_string_value(json_object_get(json_object_get(rep, "stdout"), "text"));
    bool ok = r == 0 && st == 200 && out && streq(out, "escalated-ok\n") && sub_job_exit_code(rep) == 0 &&
              streq(json_string_value(json_object_get(rep, "authorization")) ?: "", "manifest-policy") &&
              streq(json_string_value(json_object_get(o, "service")) ?: "", "acceptance-esc") &&
              streq(json_string_value(json_object_get(o, "image_digest")) ?: "", a->hello_digest) &&
              streq(json_string_value(json_object_get(o, "manifest_digest")) ?: "", m.source_digest) &&
              t2_residual(rep) == 0;
    record(a, run, ok, "%s: HTTP %d, outcome %s, exit %d, stdout %.30s, origin %s@%.19s (manifest %.19s), residual %d",
           r < 0 ? e.msg : "POST /v1/jobs", st, json_string_value(json_object_get(rep, "outcome")) ?: "-",
           sub_job_exit_code(rep), out ?: "", json_string_value(json_object_get(o, "service")) ?: "-",
           json_string_value(json_object_get(o, "image_digest")) ?: "-",
           json_string_value(json_object_get(o, "manifest_digest")) ?: "-", t2_residual(rep));
    int st2 = 0;
    sub_err e2 = {0};
    int r2 = r < 0 ? r
                   : sub_t1_escalate_call("acceptance-esc", "POST", "/v1/jobs",
                                          "{\"command\": [\"/bin/true\"], \"egress\": {\"allow\": [\"127.0.0.1:9\"]}}", 10000,
                                          &st2, &ref, &e2);
    const char *why = json_string_value(json_object_get(ref, "error"));
    record(a, "escalation: a request beyond the policy (egress) is refused with the reason, nothing boots",
           r2 == 0 && st2 == 403 && streq(json_string_value(json_object_get(ref, "reason")) ?: "", "policy") && why &&
               strstr(why, "not in the policy's egress allowlist") && !json_object_get(ref, "job_id"),
           "HTTP %d: %s", st2, r2 < 0 ? e2.msg : why ?: "-");
    (void)sub_t1_stop("acceptance-esc", NULL);
}

static void stop_tier1(actx *a) {
    if (!a->t1_started) return;
    if (a->esc_started) (void)sub_t1_stop("acceptance-esc", NULL);
    (void)sub_t1_stop("acceptance-hello", NULL);
    (void)sub_t1_root_stop(NULL);
}

static void check_push_hello(actx *a) { check_push(a, "hello"); }
static void check_push_job(actx *a) { check_push(a, "job"); }

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

static void help(void) {
    printf("Usage: substrate acceptance [--report FILE] [--tap] [--keep] [--job-timeout S]\n"
           "       substrate acceptance --target vm [SPEC options as above]\n"
           "\n"
           "Run the end-to-end acceptance checks: a green run means Substrate's guarantees hold\n"
           "on this machine. Every check uses the real parts (docker-registry, git, the builder\n"
           "and the registry client) in a private state directory with a registry on a free\n"
           "loopback port; nothing outside them is touched, and all of it is removed afterwards.\n"
           "\n"
           "Checks today (supply chain): the registry starts; hello builds reproducibly from one\n"
           "commit in different export directories; hello and job build, push and are served by\n"
           "digest; hello pulls back by digest with every blob verified; a semver '+' version,\n"
           "an unknown image and an unknown commit are refused. Signatures: hello signed with\n"
           "the platform key (made in the private state, its public key trusted) verifies from\n"
           "the registry; the unsigned job image is refused (no signature), and so is job once\n"
           "signed by another key (no trusted key matched); the signature made by real cosign\n"
           "(tests/fixtures/cosign/upstream-containers-image) verifies offline; hello's SLSA\n"
           "provenance (in-toto, DSSE, as `cosign attest` stores it) attaches and verifies.\n"
           "Tier-1 (needs root and runc): hello reconciles from a manifest and /healthz answers\n"
           "on its published loopback port; align says ALIGNED; a file changed in its unpacked\n"
           "image is DRIFT under align --deep, naming the file; an unsigned version is refused\n"
           "at deploy while the running one keeps serving; promotion to a signed version and\n"
           "rollback to the first, each ALIGNED. The service and its supervisors are stopped.\n"
           "\n"
           "Output: one line per check, then `N passed, N failed`. A JSON report (each check with\n"
           "its evidence) goes to $SUBSTRATE_STATE/acceptance/report.json or --report FILE.\n"
           "\n"
           "Options:\n"
           "  --report FILE  where to write the JSON report\n"
           "  --tap          print TAP (for tests/run)\n"
           "  --keep         keep the private state directory (for debugging)\n"
           "  --job-timeout S  the Tier-2 jobs' timeout, boot included (default 120)\n"
           "  --target vm    run the checks inside the golden VM instead: provision it (or reuse\n"
           "                 it: platform/vm/provision-vm), run `substrate acceptance` in it over\n"
           "                 SSH (Tier-2 jobs nested on TCG there, --job-timeout 300), and report\n"
           "                 its results as this run's, with the target and the time it took.\n"
           "                 Tens of minutes on TCG (a first build of the image included)\n"
           "  --spec FILE    (--target vm) the VM's spec (default platform/vm/golden.yaml)\n"
           "  -h, --help     show this help\n"
           "\n"
           "Exit status: 0 all checks passed; 1 some check failed; 3 could not run.\n");
}

/* ---- --target vm ---- */
static void vm_stage(void *ud, const char *stage, const char *detail, bool done, int64_t ms) {
    (void)ud;
    fprintf(stderr, "acceptance: vm [%6.1fs] %s%s%s%s\n", (double)ms / 1000, stage, done ? ": done" : "",
            detail ? (done ? ", " : ": ") : "", detail ? detail : "");
}

static int acceptance_in_vm(const char *spec, const char *report, bool tap) {
    int64_t t0 = mono_ms();
    time_t started = time(NULL);
    sub_err e = {0};
    sub_vm_provision_opts o = {.spec_path = spec, .progress = vm_stage};
    sub_vm_provision_result pr;
    if (sub_vm_provision(&o, &pr, &e) < 0) {
        sub_vm_provision_result_done(&pr);
        return cli_fail("acceptance", &e);
    }
    char name[64];
    snprintf(name, sizeof name, "%s", pr.name);
    fprintf(stderr, "acceptance: vm %s %s (%s), commit %.12s; running the checks inside over SSH\n", name, pr.action,
            pr.accel, pr.commit);
    static const char inner[] = "/tmp/substrate-acceptance-vm.json";
    _cleanup_free_ char *cmd = xasprintf("cd /opt/substrate/src && sudo build/substrate acceptance --job-timeout 300 "
                                         "--report %s%s",
                                         inner, tap ? " --tap" : "");
    int st = 0;
    if (sub_vm_ssh(name, cmd, NULL, &st, &e) < 0) {
        sub_vm_provision_result_done(&pr);
        return cli_fail("acceptance", &e);
    }
    _cleanup_free_ char *catcmd = xasprintf("sudo cat %s", inner), *txt = NULL;
    int st2 = 0;
    _cleanup_json_ json_t *rep = NULL;
    if (sub_vm_ssh(name, catcmd, &txt, &st2, &e) < 0 || st2 != 0 ||
        sub_json_parse(txt, strlen(txt), 16u << 20, "the VM's acceptance report", &rep, &e) < 0) {
        if (!e.code) sub_err_setk(&e, SUB_KIND_ENV, -EIO, "could not read the report inside the VM (ssh exit %d)", st2);
        sub_vm_provision_result_done(&pr);
        return cli_fail("acceptance", &e);
    }
    json_object_set_new(rep, "target", json_string("vm"));
    json_object_set_new(rep, "vm", json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", name, "image_key", pr.image_key,
                                             "commit", pr.commit, "accelerator", pr.accel, "provision", pr.action));
    json_object_set_new(rep, "started", json_integer((json_int_t)started));
    json_object_set_new(rep, "finished", json_integer((json_int_t)time(NULL)));
    json_object_set_new(rep, "seconds", json_real((double)(mono_ms() - t0) / 1000));
    sub_vm_provision_result_done(&pr);
    _cleanup_free_ char *default_report = NULL;
    if (!report) {
        _cleanup_free_ char *dir = sub_state_path("acceptance");
        default_report = sub_path_join(dir, "report-vm.json");
        (void)sub_mkdir_p(dir, 0755, NULL);
        report = default_report;
    }
    _cleanup_free_ char *out = sub_json_dump_pretty(rep);
    if (sub_write_file_atomic(report, out, strlen(out), 0644, &e) < 0) return cli_fail("acceptance", &e);
    json_int_t failed = json_integer_value(json_object_get(rep, "failed"));
    if (!tap)
        printf("acceptance --target vm (%s): %lld passed, %lld failed in %.0f s; report: %s\n", name,
               (long long)json_integer_value(json_object_get(rep, "passed")), (long long)failed,
               (double)(mono_ms() - t0) / 1000, report);
    if (st != 0 && !failed) return SUB_EXIT_ENV;
    return failed ? SUB_EXIT_CHECK : 0;
}

int cmd_acceptance(int argc, char **argv) {
    static const struct option opts[] = {{"report", required_argument, NULL, 'r'},
                                         {"tap", no_argument, NULL, 't'},
                                         {"keep", no_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"target", required_argument, NULL, 'T'},
                                         {"spec", required_argument, NULL, 'S'},
                                         {"job-timeout", required_argument, NULL, 'J'},
                                         {0}};
    const char *report = NULL, *spec = NULL;
    bool keep = false, vm = false;
    actx a = {.job_timeout = 120};
    int c;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': report = optarg; break;
        case 't': a.tap = true; break;
        case 'k': keep = true; break;
        case 'h': help(); return 0;
        case 'T':
            if (!streq(optarg, "vm") && !streq(optarg, "host"))
                return cli_usage_error("acceptance", "--target takes host or vm, not \"%s\"", optarg);
            vm = streq(optarg, "vm");
            break;
        case 'S': spec = optarg; break;
        case 'J': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 10 || v > 3600)
                return cli_usage_error("acceptance", "--job-timeout takes seconds from 10 to 3600, not \"%s\"", optarg);
            a.job_timeout = (int)v;
            break;
        }
        default: return cli_bad_option("acceptance", argv, opts);
        }
    }
    if (optind != argc) return cli_usage_error("acceptance", "unexpected argument \"%s\"", argv[optind]);
    if (spec && !vm) return cli_usage_error("acceptance", "--spec goes with --target vm");
    if (vm) return acceptance_in_vm(spec, report, a.tap);
    sub_err e = {0};
    if (sub_git_default_repo(&a.repo, &e) < 0) return cli_fail("acceptance", &e);
    if (sub_git_resolve(a.repo, "HEAD", a.head, &e) < 0) return cli_fail("acceptance", &e);
    if (sub_mkdtemp("/tmp", "substrate-acceptance.", &a.state, &e) < 0) return cli_fail("acceptance", &e);
    int port = sub_free_loopback_port();
    snprintf(a.addr, sizeof a.addr, "127.0.0.1:%d", port);
    a.checks = json_array();
    _cleanup_free_ char *user_state = xstrdup(sub_state_dir()); /* the Tier-1 checks switch to the private one */
    time_t started = time(NULL);
    if (!a.tap) printf("acceptance: commit %.12s, private state %s, registry %s\n", a.head, a.state, a.addr);

    /* Ctrl-C / SIGTERM: finish the check under way, then clean up (stop the
     * private registry, remove the private state) instead of leaving them. */
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    static void (*const checks[])(actx *) = {
        check_registry,        check_reproducible,   check_push_hello,       check_push_job,
        check_pull,            check_refusals,       check_signed_verifies,  check_provenance,
        check_unsigned_refused, check_other_key_refused, check_real_cosign, check_tier1,
        check_tier2,           check_escalation,
    };
    for (size_t i = 0; i < ARRAY_SIZE(checks) && !interrupted; i++) checks[i](&a);
    if (interrupted) fprintf(stderr, "substrate acceptance: interrupted; cleaning up\n");

    stop_tier1(&a);
    if (a.registry_up) {
        sub_regsrv_opts so = {.state_dir = a.state, .addr = a.addr};
        bool was;
        sub_regsrv_stop(&so, &was, NULL);
    }
    if (!keep) sub_rm_rf(a.state, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    _cleanup_free_ char *default_report = NULL;
    if (!report) {
        _cleanup_free_ char *dir = sub_path_join(user_state, "acceptance");
        default_report = sub_path_join(dir, "report.json");
        if (sub_mkdir_p(dir, 0755, &e) < 0) fprintf(stderr, "substrate acceptance: %s\n", e.msg);
        report = default_report;
    }
    _cleanup_json_ json_t *rep = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:o}", "commit", a.head,
                                           "registry", a.addr, "started", (json_int_t)started,
                                           "finished", (json_int_t)time(NULL), "passed", a.passed,
                                           "failed", a.failed, "checks", a.checks);
    json_object_set_new(rep, "interrupted", json_boolean(interrupted));
    _cleanup_free_ char *txt = sub_json_dump_pretty(rep);
    if (sub_write_file_atomic(report, txt, strlen(txt), 0644, &e) < 0)
        fprintf(stderr, "substrate acceptance: cannot write the report: %s\n", e.msg);
    else if (!a.tap)
        printf("report: %s\n", report);
    if (a.tap) printf("1..%d\n", a.n);
    printf("%d passed, %d failed%s\n", a.passed, a.failed, interrupted ? " (interrupted)" : "");
    sub_build_result_free(&a.hello_build);
    free(a.repo);
    free(a.state);
    if (interrupted) return SUB_EXIT_ENV;
    return a.failed ? SUB_EXIT_CHECK : 0;
}
