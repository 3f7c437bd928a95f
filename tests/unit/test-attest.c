#include "substrate/attest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/proc.h"
#include "substrate/registry.h"
#include "substrate/regserver.h"
#include "unit.h"

#define SHA "0123456789abcdef0123456789abcdef01234567"
#define DIG "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const sub_provenance prov = {
    .subject = "127.0.0.1:5000/hello", .digest = DIG, .source = "https://example.invalid/substrate",
    .commit = SHA, .revision = SHA, .image = "hello", .version = "1.0.0",
    .spec_path = "platform/images/hello/image.json", .spec_digest = DIG,
    .build_command = (char *const[]){"make", "-s", NULL}, .source_date_epoch = 1700000000,
    .host_inputs = "busybox-static=1:1.35.0-4", .build_inputs = "gcc-12=12.2.0-14",
    .builder_version = "substrate@test",
};

TEST(attest_pae_matches_dsse_spec_vector) {
    size_t n;
    _cleanup_free_ char *p = sub_dsse_pae("http://example.com/HelloWorld", "hello world", 11, &n);
    CHECK_STREQ(p, "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
    CHECK_INT(n, strlen(p));
}

TEST(attest_statement_names_subject_source_spec_and_inputs) {
    sub_err e = {0};
    _cleanup_free_ char *s = NULL;
    size_t len;
    CHECK_OK(sub_provenance_statement(&prov, &s, &len, &e), &e);
    if (!s) return;
    _cleanup_json_ json_t *j = NULL;
    CHECK_OK(sub_json_parse(s, len, 1 << 20, "statement", &j, &e), &e);
    if (!j) return;
    CHECK_STREQ(json_string_value(json_object_get(j, "_type")), SUB_INTOTO_STATEMENT_V1);
    CHECK_STREQ(json_string_value(json_object_get(j, "predicateType")), SUB_SLSA_PROVENANCE_V1);
    json_t *sub = json_array_get(json_object_get(j, "subject"), 0);
    CHECK_STREQ(json_string_value(json_object_get(sub, "name")), "127.0.0.1:5000/hello");
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(sub, "digest"), "sha256")),
                sub_digest_hex(DIG));
    json_t *bd = json_object_get(json_object_get(j, "predicate"), "buildDefinition");
    json_t *ext = json_object_get(bd, "externalParameters");
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(json_object_get(ext, "source"), "digest"), "gitCommit")), SHA);
    CHECK_STREQ(json_string_value(json_object_get(ext, "spec")), "platform/images/hello/image.json");
    CHECK(strstr(s, "\"buildCommand\":[\"make\",\"-s\"]") != NULL);
    CHECK(strstr(s, "pkg:deb/debian/busybox-static@1%3A1.35.0-4") != NULL);
    CHECK(strstr(s, "pkg:deb/debian/gcc-12@12.2.0-14") != NULL);
    /* deterministic: no wall-clock time, same bytes twice */
    _cleanup_free_ char *s2 = NULL;
    CHECK_OK(sub_provenance_statement(&prov, &s2, &len, &e), &e);
    CHECK_STREQ(s, s2);
}

TEST(attest_dsse_round_trip_and_refusals) {
    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *k = NULL, *other = NULL;
    _cleanup_pubkey_ sub_pubkey *pub = NULL, *opub = NULL;
    CHECK_OK(sub_privkey_generate(&k, &e), &e);
    CHECK_OK(sub_privkey_generate(&other, &e), &e);
    if (!k || !other) return;
    CHECK_OK(sub_privkey_public(k, &pub, &e), &e);
    CHECK_OK(sub_privkey_public(other, &opub, &e), &e);
    const char *msg = "{\"hello\":\"world\"}";
    _cleanup_free_ char *env = NULL;
    size_t elen;
    CHECK_OK(sub_dsse_sign(k, SUB_INTOTO_PAYLOAD_TYPE, msg, strlen(msg), &env, &elen, &e), &e);
    if (!env) return;
    const sub_pubkey *keys[] = {opub, pub};
    _cleanup_free_ char *body = NULL;
    size_t blen;
    char kid[SUB_DIGEST_MAX] = "";
    CHECK_OK(sub_dsse_verify(keys, 2, env, elen, SUB_INTOTO_PAYLOAD_TYPE, &body, &blen, kid, &e), &e);
    CHECK_STREQ(body, msg);
    CHECK_STREQ(kid, sub_pubkey_id(pub));
    /* another key only */
    const sub_pubkey *wrong[] = {opub};
    char *b2 = NULL;
    CHECK(sub_dsse_verify(wrong, 1, env, elen, SUB_INTOTO_PAYLOAD_TYPE, &b2, &blen, kid, &e) == -EKEYREJECTED);
    CHECK_REASON(&e, SUB_R_NO_TRUSTED_KEY);
    /* another payload type */
    CHECK(sub_dsse_verify(keys, 2, env, elen, "text/plain", &b2, &blen, kid, &e) == -EKEYREJECTED);
    CHECK(strstr(e.msg, "payloadType") != NULL);
    /* a payload swapped under the signature */
    _cleanup_json_ json_t *j = NULL;
    CHECK_OK(sub_json_parse(env, elen, 1 << 20, "env", &j, &e), &e);
    _cleanup_free_ char *fake = sub_b64_encode("{\"hello\":\"there\"}", 17);
    json_object_set_new(j, "payload", json_string(fake));
    size_t tlen;
    _cleanup_free_ char *tampered = sub_json_dump(j, &tlen);
    CHECK(sub_dsse_verify(keys, 2, tampered, tlen, SUB_INTOTO_PAYLOAD_TYPE, &b2, &blen, kid, &e) == -EKEYREJECTED);
    CHECK(b2 == NULL);
    /* not an envelope */
    CHECK(sub_dsse_verify(keys, 2, "[]", 2, SUB_INTOTO_PAYLOAD_TYPE, &b2, &blen, kid, &e) == -EKEYREJECTED);
}

/* ---- against a real docker-registry ---------------------------------------- */

/* Push a one-layer image to repo; its manifest digest goes to md. */
static void push_image(sub_reg *r, const char *repo, char md[SUB_DIGEST_MAX]) {
    sub_err e = {0};
    const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                      "\"diff_ids\":[]}}";
    char cd[SUB_DIGEST_MAX], ld[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(cfg, strlen(cfg), cd, &e), &e);
    CHECK_OK(sub_sha256_buf("layer", 5, ld, &e), &e);
    CHECK_OK(sub_reg_blob_put_buf(r, repo, cd, cfg, strlen(cfg), &e), &e);
    CHECK_OK(sub_reg_blob_put_buf(r, repo, ld, "layer", 5, &e), &e);
    _cleanup_free_ char *man = xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":"
        "\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":5}]}",
        SUB_MT_OCI_MANIFEST, SUB_MT_OCI_CONFIG, cd, strlen(cfg), SUB_MT_OCI_LAYER_TAR, ld);
    CHECK_OK(sub_reg_manifest_put(r, repo, "v1", SUB_MT_OCI_MANIFEST, man, strlen(man), md, &e), &e);
}

/* Layers in the .att manifest of digest in repo (-1 when it cannot be read). */
static long att_layers(sub_reg *r, const char *repo, const char *digest) {
    sub_err e = {0};
    _cleanup_free_ char *tag = NULL, *body = NULL;
    size_t len = 0;
    if (sub_attest_tag(digest, &tag, &e) < 0 ||
        sub_reg_manifest_get(r, repo, tag, &body, &len, NULL, NULL, &e) < 0)
        return -1;
    _cleanup_json_ json_t *j = NULL;
    if (sub_json_parse(body, len, 1 << 20, "att", &j, &e) < 0) return -1;
    return (long)json_array_size(json_object_get(j, "layers"));
}

/* A docker-registry of the test's own (in its temp dir, on a free loopback
 * port) and a client for it: 0 with both set, < 0 when it could not start (a
 * failure is reported) or docker-registry is missing (a SKIP). Stop it with
 * reg_fixture_stop whatever the checks in between said. */
typedef struct reg_fixture {
    char *state, *addr;
    sub_regsrv_opts so;
    sub_reg *r;
} reg_fixture;

static int reg_fixture_start(reg_fixture *f) {
    memset(f, 0, sizeof *f);
    if (!sub_have_program("docker-registry")) {
        unit_skip("docker-registry is not installed");
        return -1;
    }
    sub_err e = {0};
    f->state = sub_path_join(unit_tmpdir(), "state");
    f->addr = xasprintf("127.0.0.1:%d", sub_free_loopback_port());
    f->so = (sub_regsrv_opts){.state_dir = f->state, .addr = f->addr};
    bool already = true;
    pid_t pid = 0;
    CHECK_OK(sub_regsrv_start(&f->so, &already, &pid, &e), &e);
    if (pid <= 0) return -1;
    sub_reg_opts ro = {.host = f->addr, .timeout_s = 30};
    CHECK_OK(sub_reg_new(&ro, &f->r, &e), &e);
    return 0;
}

static void reg_fixture_stop(reg_fixture *f) {
    sub_err e = {0};
    bool was = false;
    sub_reg_free(f->r);
    if (f->state) CHECK_OK(sub_regsrv_stop(&f->so, &was, &e), &e);
    free(f->state);
    free(f->addr);
}

/* ECDSA signatures are randomised: the same statement signed twice gives two
 * different envelopes. Attesting the same build again (a second release run)
 * must not stack another copy each time, until the artifact hits its layer
 * limit and every later release fails. */
TEST(attest_registry_same_statement_is_not_added_twice) {
    reg_fixture f;
    if (reg_fixture_start(&f) < 0) {
        reg_fixture_stop(&f);
        return;
    }
    sub_err e = {0};
    sub_reg *r = f.r;
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_generate(&k, &e), &e);
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    if (k) CHECK_OK(sub_privkey_public(k, &pub, &e), &e);
    char md[SUB_DIGEST_MAX] = "";
    if (r && k && pub) {
        push_image(r, "unit/att", md);
        sub_provenance p = prov;
        p.digest = md;
        char m1[SUB_DIGEST_MAX] = "", m2[SUB_DIGEST_MAX] = "";
        CHECK_OK(sub_attest_registry(r, "unit/att", &p, k, m1, &e), &e);
        CHECK_INT(att_layers(r, "unit/att", md), 1);
        CHECK_OK(sub_attest_registry(r, "unit/att", &p, k, m2, &e), &e);
        CHECK_INT(att_layers(r, "unit/att", md), 1);
        CHECK_STREQ(m2, m1);
        /* another statement about the same image is still added */
        p.version = "1.0.1";
        CHECK_OK(sub_attest_registry(r, "unit/att", &p, k, NULL, &e), &e);
        CHECK_INT(att_layers(r, "unit/att", md), 2);
        /* and the same statement by another key too */
        _cleanup_privkey_ sub_privkey *k2 = NULL;
        CHECK_OK(sub_privkey_generate(&k2, &e), &e);
        if (k2) CHECK_OK(sub_attest_registry(r, "unit/att", &p, k2, NULL, &e), &e);
        CHECK_INT(att_layers(r, "unit/att", md), 3);
        const sub_pubkey *keys[] = {pub};
        sub_attest_result ar = {0};
        CHECK_OK(sub_attest_verify_registry(r, "unit/att", md, keys, 1, &ar, &e), &e);
        CHECK(ar.verified);
        sub_attest_result_free(&ar);
        /* an attestation manifest the registry takes but our model refuses
         * (a negative layer size) is a refusal, also with no error record */
        const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                          "\"layers\",\"diff_ids\":[]}}";
        char cd[SUB_DIGEST_MAX], ld[SUB_DIGEST_MAX];
        CHECK_OK(sub_sha256_buf(cfg, strlen(cfg), cd, &e), &e);
        CHECK_OK(sub_sha256_buf("layer", 5, ld, &e), &e);
        _cleanup_free_ char *bad = xasprintf(
            "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
            "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":"
            "\"%s\",\"size\":-1}]}",
            SUB_MT_OCI_MANIFEST, SUB_MT_OCI_CONFIG, cd, strlen(cfg), SUB_MT_DSSE_ENVELOPE, ld);
        _cleanup_free_ char *tag = NULL;
        CHECK_OK(sub_attest_tag(md, &tag, &e), &e);
        CHECK_OK(sub_reg_manifest_put(r, "unit/att", tag, SUB_MT_OCI_MANIFEST, bad, strlen(bad),
                                      NULL, &e),
                 &e);
        sub_attest_result br = {0};
        CHECK_FAILS(sub_attest_verify_registry(r, "unit/att", md, keys, 1, &br, &e), -EKEYREJECTED);
        CHECK(strstr(e.msg, "attestation manifest") && strstr(e.msg, "size"));
        CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
        sub_attest_result_free(&br);
        CHECK_FAILS(sub_attest_verify_registry(r, "unit/att", md, keys, 1, &br, NULL), -EKEYREJECTED);
        sub_attest_result_free(&br);
    }
    reg_fixture_stop(&f);
}

static sub_privkey *new_key(sub_pubkey **pub) {
    sub_err e = {0};
    sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_generate(&k, &e), &e);
    if (k) CHECK_OK(sub_privkey_public(k, pub, &e), &e);
    return k;
}

/* `substrate attest`: re-signing the existing provenance with a new key (a
 * rotation), statements from a predicate file, and the refusals. */
static void attest_image_checks(sub_reg *r, const char *addr) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *oldp = NULL, *newp = NULL, *otherp = NULL;
    _cleanup_privkey_ sub_privkey *oldk = new_key(&oldp), *newk = new_key(&newp),
                                  *otherk = new_key(&otherp);
    char md[SUB_DIGEST_MAX] = "";
    if (oldp && newp && otherp) push_image(r, "unit/rot", md);
    if (!md[0]) return;
    _cleanup_free_ char *subject = xasprintf("%s/unit/rot", addr);
    sub_provenance p = prov;
    p.digest = md;
    p.subject = subject;
    CHECK_OK(sub_attest_registry(r, "unit/rot", &p, oldk, NULL, &e), &e);
    _cleanup_free_ char *st = NULL;
    size_t stlen = 0;
    char std[SUB_DIGEST_MAX] = "";
    CHECK_OK(sub_provenance_statement(&p, &st, &stlen, &e), &e);
    CHECK_OK(sub_sha256_buf(st, stlen, std, &e), &e);

    /* before: the provenance does not verify with the new key alone */
    const sub_pubkey *only_new[] = {newp}, *only_old[] = {oldp}, *only_other[] = {otherp};
    sub_attest_result ar = {0};
    CHECK_FAILS(sub_attest_verify_registry(r, "unit/rot", md, only_new, 1, &ar, &e), -EKEYREJECTED);
    sub_attest_result_free(&ar);

    /* re-sign: the exact statement the old (trusted) key vouches for */
    sub_attest_opts o = {.repo = "unit/rot", .subject = subject, .image_digest = md, .key = newk,
                         .trusted = only_old, .ntrusted = 1};
    sub_attest_push_result res;
    CHECK_OK(sub_attest_image(r, &o, &res, &e), &e);
    CHECK(!res.already);
    CHECK_STREQ(res.resigned_from, sub_pubkey_id(oldp));
    CHECK_STREQ(res.key_id, sub_pubkey_id(newp));
    CHECK_STREQ(res.statement_digest, std);
    CHECK_STREQ(res.predicate_type, SUB_SLSA_PROVENANCE_V1);
    CHECK_INT(res.n_layers, 2);
    CHECK_INT(att_layers(r, "unit/rot", md), 2);
    CHECK_OK(sub_attest_verify_registry(r, "unit/rot", md, only_new, 1, &ar, &e), &e);
    CHECK(ar.verified);
    CHECK_STREQ(ar.key_id, sub_pubkey_id(newp));
    sub_attest_result_free(&ar);
    /* again with the same key: nothing stacked (also when the new key is now
     * the trusted one, which then finds its own envelope) */
    char before[SUB_DIGEST_MAX];
    memcpy(before, res.att_manifest, sizeof before);
    CHECK_OK(sub_attest_image(r, &o, &res, &e), &e);
    CHECK(res.already);
    CHECK_STREQ(res.att_manifest, before);
    o.trusted = only_new;
    CHECK_OK(sub_attest_image(r, &o, &res, &e), &e);
    CHECK(res.already);
    CHECK_INT(att_layers(r, "unit/rot", md), 2);

    /* nothing a trusted key vouches for: nothing to re-sign, nothing pushed */
    o.trusted = only_other;
    o.key = otherk;
    CHECK_FAILS(sub_attest_image(r, &o, &res, &e), -EKEYREJECTED);
    CHECK(strstr(e.msg, "nothing to re-sign") && strstr(e.msg, "no trusted key matched"));
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
    CHECK_INT(att_layers(r, "unit/rot", md), 2);

    /* a predicate file */
    _cleanup_free_ char *pf = sub_path_join(unit_tmpdir(), "pred.json");
    const char *pred = "{\"scanner\":{\"uri\":\"pkg:example/scan@1\"},\"ok\":true}";
    CHECK_OK(sub_write_file_atomic(pf, pred, strlen(pred), 0644, &e), &e);
    sub_attest_opts po = {.repo = "unit/rot", .subject = subject, .image_digest = md, .key = newk,
                          .predicate_path = pf, .predicate_type = "https://example.com/scan/v1"};
    CHECK_OK(sub_attest_image(r, &po, &res, &e), &e);
    CHECK(!res.already && !res.resigned_from[0]);
    CHECK_STREQ(res.predicate_type, "https://example.com/scan/v1");
    CHECK_INT(att_layers(r, "unit/rot", md), 3);
    CHECK_OK(sub_attest_image(r, &po, &res, &e), &e);
    CHECK(res.already);
    CHECK_INT(att_layers(r, "unit/rot", md), 3);
    /* verify --provenance still finds the SLSA one among them */
    CHECK_OK(sub_attest_verify_registry(r, "unit/rot", md, only_new, 1, &ar, &e), &e);
    sub_attest_result_free(&ar);
    /* cosign's names for types */
    po.predicate_type = NULL;
    CHECK_OK(sub_attest_image(r, &po, &res, &e), &e);
    CHECK_STREQ(res.predicate_type, "https://cosign.sigstore.dev/attestation/v1");

    /* refusals, before anything is pushed */
    po.predicate_type = "not a uri";
    CHECK_FAILS(sub_attest_image(r, &po, &res, &e), -EINVAL);
    CHECK(strstr(e.msg, "neither a URI"));
    po.predicate_type = "slsaprovenance1"; /* a predicate without a source commit */
    CHECK_FAILS(sub_attest_image(r, &po, &res, &e), -EBADMSG);
    CHECK(strstr(e.msg, "not SLSA provenance v1") && strstr(e.msg, "gitCommit"));
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK_OK(sub_write_file_atomic(pf, "[1]", 3, 0644, &e), &e);
    po.predicate_type = "custom";
    CHECK_FAILS(sub_attest_image(r, &po, &res, &e), -EBADMSG);
    CHECK(strstr(e.msg, "JSON object"));
    CHECK_OK(sub_write_file_atomic(pf, "{\"a\":1,\"a\":2}", 13, 0644, &e), &e);
    CHECK(sub_attest_image(r, &po, &res, &e) < 0 && sub_err_exit_code(&e) == SUB_EXIT_USAGE);
    CHECK_INT(att_layers(r, "unit/rot", md), 4);
    sub_attest_opts absent = o;
    absent.image_digest = DIG;
    CHECK_FAILS(sub_attest_image(r, &absent, &res, &e), -ENOENT);
    CHECK(strstr(e.msg, "not in the registry"));
}

TEST(attest_image_resign_and_predicate) {
    reg_fixture f;
    if (reg_fixture_start(&f) < 0) {
        reg_fixture_stop(&f);
        return;
    }
    if (f.r) attest_image_checks(f.r, f.addr);
    reg_fixture_stop(&f);
}
