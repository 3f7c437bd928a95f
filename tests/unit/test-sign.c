/* lib/sign: payloads, cosign vectors (ours and real cosign's), negatives,
 * signature parsing, identity policies, the layer check, sig tags. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include "unit.h"

/* Read a vector file; trailing newline kept (callers strip where needed). */
static sub_pubkey *pub(const char *rel) {
    _cleanup_free_ char *p = unit_shared(rel);
    sub_pubkey *k = NULL;
    sub_err e = {0};
    CHECK_OK(sub_pubkey_load_file(p, &k, &e), &e);
    return k;
}

#define V "vectors/cosign/"

TEST(sign_payload_bytes_equal_vector) {
    sub_err e = {0};
    size_t vlen = 0;
    _cleanup_free_ char *want = unit_read_shared(V "payload.json", &vlen);
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    _cleanup_free_ char *got = NULL;
    size_t len = 0;
    CHECK_OK(sub_cosign_payload_build("127.0.0.1:5000/hello", digest, &got, &len, &e), &e);
    CHECK_INT(len, vlen);
    CHECK(got && len == vlen && memcmp(got, want, len) == 0);
    /* and it hashes to the layer digest the vector's signature manifest uses */
    _cleanup_free_ char *layer = unit_read_shared_line(V "payload.digest");
    char d[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(got, len, d, &e), &e);
    CHECK_STREQ(d, layer);
}

TEST(sign_payload_build_rejects_bad_identity_or_digest) {
    const char *dg = "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455";
    static const char *bad_refs[] = {"127.0.0.1:5000/hello:1", "hello",
                                     "127.0.0.1:5000/hello@sha256:"
                                     "9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455",
                                     "127.0.0.1:5000/He\"llo", ""};
    for (size_t i = 0; i < ARRAY_SIZE(bad_refs); i++) {
        sub_err e = {0};
        char *out = NULL;
        if (sub_cosign_payload_build(bad_refs[i], dg, &out, NULL, &e) != -EINVAL || !e.msg[0])
            unit_fail(__FILE__, __LINE__, "reference \"%s\" was accepted", bad_refs[i]);
        free(out);
    }
    sub_err e = {0};
    char *out = NULL;
    CHECK_FAILS(sub_cosign_payload_build("127.0.0.1:5000/hello", "sha256:abc", &out, NULL, &e),
                -EINVAL);
    free(out);
}

TEST(sign_payload_parse_strict) {
    sub_err e = {0};
    size_t len;
    _cleanup_free_ char *v = unit_read_shared(V "payload.json", &len);
    _cleanup_payload_ sub_cosign_payload p = {0};
    CHECK_OK(sub_cosign_payload_parse(v, len, &p, &e), &e);
    CHECK_STREQ(p.docker_reference, "127.0.0.1:5000/hello");
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    CHECK_STREQ(p.manifest_digest, digest);

    const char *D = "\"sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455\"";
    static const char *good[] = {
        /* key order is free, "optional" may be an object with anything, or absent */
        "{\"optional\":{\"creator\":\"x\",\"a\":[1,{}]},\"critical\":{\"type\":\"cosign container "
        "image signature\",\"image\":{\"docker-manifest-digest\":%s},\"identity\":{\"docker-"
        "reference\":\"r.example/x\"}}}",
        "{\"critical\":{\"identity\":{\"docker-reference\":\"r.example/x\"},\"image\":{\"docker-"
        "manifest-digest\":%s},\"type\":\"cosign container image signature\"}}",
    };
    static const struct {
        const char *doc, *why;
    } bad[] = {
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"},\"image\":{\"docker-manifest-"
         "digest\":%s},\"type\":\"cosign container image signature\",\"type\":\"x\"},\"optional\":null}",
         "duplicate"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"},\"image\":{\"docker-manifest-"
         "digest\":%s},\"type\":\"atomic container signature\"},\"optional\":null}",
         "critical.type"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"},\"image\":{\"docker-manifest-"
         "digest\":%s},\"type\":\"cosign container image signature\",\"extra\":1}}",
         "unknown field \"extra\""},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\",\"tag\":\"1\"},\"image\":{"
         "\"docker-manifest-digest\":%s},\"type\":\"cosign container image signature\"}}",
         "unknown field \"tag\""},
        {"{\"critical\":{\"identity\":{\"docker-reference\":7},\"image\":{\"docker-manifest-digest\""
         ":%s},\"type\":\"cosign container image signature\"}}",
         "must be a string"},
        {"{\"critical\":{\"identity\":{},\"image\":{\"docker-manifest-digest\":%s},\"type\":"
         "\"cosign container image signature\"}}",
         "docker-reference\" is missing"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"},\"image\":{\"docker-manifest-"
         "digest\":\"sha256:XYZ\"},\"type\":\"cosign container image signature\"}}%.0s",
         "docker-manifest-digest"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"},\"image\":{\"docker-manifest-"
         "digest\":%s},\"type\":\"cosign container image signature\"},\"optional\":\"x\"}",
         "optional"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"},\"image\":{\"docker-manifest-"
         "digest\":%s},\"type\":\"cosign container image signature\"},\"other\":{}}",
         "unknown field \"other\""},
        {"[%s]", "object"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\\u001b[2J\"},\"image\":{"
         "\"docker-manifest-digest\":%s},\"type\":\"cosign container image signature\"}}",
         "control"},
        {"{\"critical\":{\"identity\":{\"docker-reference\":\"r/x\"}}}%.0s", "missing"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        _cleanup_free_ char *doc = xasprintf(good[i], D);
        _cleanup_payload_ sub_cosign_payload q = {0};
        sub_err ge = {0};
        if (sub_cosign_payload_parse(doc, strlen(doc), &q, &ge) < 0)
            unit_fail(__FILE__, __LINE__, "good[%zu] refused: %s", i, ge.msg);
        else CHECK_STREQ(q.docker_reference, "r.example/x");
    }
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_free_ char *doc = xasprintf(bad[i].doc, D);
        _cleanup_payload_ sub_cosign_payload q = {0};
        sub_err be = {0};
        int r = sub_cosign_payload_parse(doc, strlen(doc), &q, &be);
        if (r != -EBADMSG || !strstr(be.msg, bad[i].why))
            unit_fail(__FILE__, __LINE__, "bad[%zu]: got %d \"%s\", wanted -EBADMSG mentioning \"%s\"",
                      i, r, be.msg, bad[i].why);
    }
}

TEST(sign_verify_vector_signature) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    if (!k) return;
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(V "payload.json", &len);
    _cleanup_free_ char *sig = unit_read_shared_line(V "signature.b64");
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    const sub_pubkey *keys[] = {k};
    sub_verify_record rec;
    CHECK_OK(sub_cosign_verify(keys, 1, payload, len, sig, digest, "127.0.0.1:5000/hello",
                               SUB_IDENTITY_EXACT, &rec, &e),
             &e);
    CHECK(rec.verified);
    CHECK_INT(rec.signature, SUB_CHECK_PASS);
    CHECK_INT(rec.digest, SUB_CHECK_PASS);
    CHECK_INT(rec.identity, SUB_CHECK_PASS);
    CHECK_INT(rec.layer, SUB_CHECK_SKIPPED);
    CHECK_STREQ(rec.key_id, sub_pubkey_id(k));
    CHECK(str_has_suffix(rec.key_source, "cosign.pub"));
    CHECK_STREQ(rec.payload_digest, digest);
    CHECK_STREQ(rec.payload_reference, "127.0.0.1:5000/hello");
    /* the key id is sha256 over the SPKI DER, i.e. over the PEM body */
    _cleanup_free_ char *pem = unit_read_shared(V "cosign.pub", NULL);
    char *b = strchr(pem, '\n') + 1;
    *strstr(b, "-----END") = 0;
    _cleanup_free_ unsigned char *der = NULL;
    size_t derlen;
    CHECK_OK(sub_b64_decode(b, strlen(b), "\n", "pem", &der, &derlen, &e), &e);
    char id[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(der, derlen, id, &e), &e);
    CHECK_STREQ(sub_pubkey_id(k), id);
    /* the DER file is the same signature */
    size_t dlen;
    _cleanup_free_ char *sigder = unit_read_shared(V "signature.der", &dlen);
    _cleanup_free_ char *b64 = sub_b64_encode(sigder, dlen);
    CHECK_STREQ(b64, sig);
}

TEST(sign_verify_real_cosign_signature) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = pub(V "upstream-containers-image/cosign.pub");
    if (!k) return;
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(V "upstream-containers-image/payload.json", &len);
    _cleanup_free_ char *sig = unit_read_shared_line(V "upstream-containers-image/signature.b64");
    /* the image digest is that of the manifest in the folder, computed here */
    _cleanup_free_ char *mp = unit_shared(V "upstream-containers-image/manifest.json");
    char digest[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_file(mp, digest, NULL, &e), &e);
    _cleanup_payload_ sub_cosign_payload p = {0};
    CHECK_OK(sub_cosign_payload_parse(payload, len, &p, &e), &e);
    if (!p.docker_reference) return;
    const sub_pubkey *keys[] = {k};
    sub_verify_record rec;
    CHECK_OK(sub_cosign_verify(keys, 1, payload, len, sig, digest, p.docker_reference,
                               SUB_IDENTITY_EXACT, &rec, &e),
             &e);
    CHECK(rec.verified);
    CHECK_STREQ(rec.key_id, sub_pubkey_id(k));
    /* the same bytes, from c/image's on-disk form ("\0sigstore-json\n" + JSON) */
    size_t slen;
    _cleanup_free_ char *s1 = unit_read_shared(V "upstream-containers-image/signature-1", &slen);
    const char magic[] = "\0sigstore-json\n";
    CHECK(slen > sizeof magic - 1 && memcmp(s1, magic, sizeof magic - 1) == 0);
    _cleanup_json_ json_t *j = NULL;
    CHECK_OK(sub_json_parse(s1 + sizeof magic - 1, slen - (sizeof magic - 1), 1 << 20, "sig-1", &j,
                            &e),
             &e);
    const char *pb64 = NULL, *ann = NULL;
    json_t *anns = NULL;
    CHECK_OK(sub_json_get_str(j, "sig-1", "payload", true, &pb64, &e), &e);
    CHECK_OK(sub_json_get_obj(j, "sig-1", "annotations", true, &anns, &e), &e);
    if (!pb64 || !anns) return;
    CHECK_OK(sub_json_get_str(anns, "ann", SUB_COSIGN_SIG_ANNOTATION, true, &ann, &e), &e);
    CHECK_STREQ(ann, sig);
    _cleanup_free_ unsigned char *pbytes = NULL;
    size_t plen;
    CHECK_OK(sub_b64_decode(pb64, strlen(pb64), NULL, "payload", &pbytes, &plen, &e), &e);
    CHECK(plen == len && memcmp(pbytes, payload, len) == 0);
    /* another repository, or another address for the same host, is refused */
    CHECK_FAILS(sub_cosign_verify(keys, 1, payload, len, sig, digest,
                                  "127.0.0.1:5000/cosign-signed-single-sample", SUB_IDENTITY_EXACT,
                                  &rec, &e),
                -EKEYREJECTED);
    CHECK_INT(rec.failure, SUB_VERIFY_IDENTITY_MISMATCH);
    CHECK_REASON(&e, SUB_R_IDENTITY_MISMATCH);
    /* our vector key did not sign it */
    _cleanup_pubkey_ sub_pubkey *ours = pub(V "cosign.pub");
    const sub_pubkey *wrong[] = {ours};
    CHECK_FAILS(sub_cosign_verify(wrong, 1, payload, len, sig, digest, p.docker_reference,
                                  SUB_IDENTITY_EXACT, &rec, &e),
                -EKEYREJECTED);
    CHECK_INT(rec.failure, SUB_VERIFY_NO_KEY_MATCHED);
    CHECK_REASON(&e, SUB_R_NO_TRUSTED_KEY);
}

/* Each failure class is its own reason code (what --json and the acceptance
 * harness tell refusals apart by). */
TEST(sign_verify_failures_have_reasons) {
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_OK), SUB_R_NONE);
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_MALFORMED_SIGNATURE), SUB_R_MALFORMED_SIGNATURE);
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_NO_KEY_MATCHED), SUB_R_NO_TRUSTED_KEY);
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_MALFORMED_PAYLOAD), SUB_R_MALFORMED_PAYLOAD);
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_DIGEST_MISMATCH), SUB_R_DIGEST_MISMATCH);
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_IDENTITY_MISMATCH), SUB_R_IDENTITY_MISMATCH);
    CHECK_INT(sub_verify_failure_reason(SUB_VERIFY_LAYER_MISMATCH), SUB_R_LAYER_MISMATCH);
}

/* Run one negative vector; check the failure class and which checks ran. */
static void negative(const char *payload_rel, const char *sig_rel, sub_verify_failure want,
                     sub_check_result sig_res, sub_check_result digest_res, const char *needle) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    if (!k) return;
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(payload_rel, &len);
    _cleanup_free_ char *sig = unit_read_shared_line(sig_rel);
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    const sub_pubkey *keys[] = {k};
    sub_verify_record rec;
    int r = sub_cosign_verify(keys, 1, payload, len, sig, digest, "127.0.0.1:5000/hello",
                              SUB_IDENTITY_EXACT, &rec, &e);
    if (r != -EKEYREJECTED || rec.verified || rec.failure != want || rec.signature != sig_res ||
        rec.digest != digest_res || rec.identity != SUB_CHECK_NOT_RUN)
        unit_fail(__FILE__, __LINE__,
                  "%s + %s: r=%d failure=%s signature=%s digest=%s identity=%s (%s)", payload_rel,
                  sig_rel, r, sub_verify_failure_name(rec.failure),
                  sub_check_result_name(rec.signature), sub_check_result_name(rec.digest),
                  sub_check_result_name(rec.identity), e.msg);
    CHECK_REASON(&e, sub_verify_failure_reason(want));
    if (!strstr(e.msg, needle) || strcmp(e.msg, rec.reason))
        unit_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", sig_rel, e.msg, needle);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
}

TEST(sign_negative_otherkey_refused_no_key_matched) {
    negative(V "payload.json", V "negative/otherkey.signature.b64", SUB_VERIFY_NO_KEY_MATCHED,
             SUB_CHECK_FAIL, SUB_CHECK_NOT_RUN, "no trusted key matched");
}

TEST(sign_negative_bitflip_refused_signature_does_not_verify) {
    negative(V "payload.json", V "negative/bitflip.signature.b64", SUB_VERIFY_NO_KEY_MATCHED,
             SUB_CHECK_FAIL, SUB_CHECK_NOT_RUN, "does not verify over these payload bytes");
}

TEST(sign_negative_altered_payload_refused_signature_does_not_verify) {
    negative(V "negative/altered.payload.json", V "signature.b64", SUB_VERIFY_NO_KEY_MATCHED,
             SUB_CHECK_FAIL, SUB_CHECK_NOT_RUN, "does not verify over these payload bytes");
}

TEST(sign_negative_wrongdigest_signature_ok_digest_mismatch) {
    negative(V "negative/wrongdigest.payload.json", V "negative/wrongdigest.signature.b64",
             SUB_VERIFY_DIGEST_MISMATCH, SUB_CHECK_PASS, SUB_CHECK_FAIL,
             "names image sha256:d29b674e82aa46f8f907ceff641f98472649721932ae9e6eb59bc642a98e1f7e "
             "and the image is sha256:9a119f34");
}

TEST(sign_malformed_signatures) {
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    if (!k) return;
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(V "payload.json", &len);
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    _cleanup_free_ char *good = unit_read_shared_line(V "signature.b64");
    size_t dlen;
    _cleanup_free_ char *der = unit_read_shared(V "signature.der", &dlen);
    /* truncated DER, DER + junk, BER long-form length, s = 0 */
    _cleanup_free_ char *trunc = sub_b64_encode(der, dlen - 1);
    _cleanup_free_ char *junkb = xmalloc(dlen + 1);
    memcpy(junkb, der, dlen);
    junkb[dlen] = 0;
    _cleanup_free_ char *junk = sub_b64_encode(junkb, dlen + 1);
    _cleanup_free_ char *berb = xmalloc(dlen + 1);
    berb[0] = 0x30;
    berb[1] = (char)0x81; /* long-form length where short form is required */
    memcpy(berb + 2, der + 1, dlen - 1);
    _cleanup_free_ char *ber = sub_b64_encode(berb, dlen + 1);
    static const unsigned char szero[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00};
    _cleanup_free_ char *s0 = sub_b64_encode(szero, sizeof szero);
    _cleanup_free_ char *nl = xasprintf("%s\n", good);
    const char *cases[] = {"not base64!", "", trunc, junk, ber, s0, nl, "QUJD"};
    const sub_pubkey *keys[] = {k};
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        sub_err e = {0};
        sub_verify_record rec;
        int r = sub_cosign_verify(keys, 1, payload, len, cases[i], digest, "127.0.0.1:5000/hello",
                                  SUB_IDENTITY_EXACT, &rec, &e);
        if (r != -EKEYREJECTED || rec.failure != SUB_VERIFY_MALFORMED_SIGNATURE ||
            rec.signature != SUB_CHECK_FAIL || e.reason != SUB_R_MALFORMED_SIGNATURE)
            unit_fail(__FILE__, __LINE__, "case %zu: r=%d failure=%s: %s", i, r,
                      sub_verify_failure_name(rec.failure), e.msg);
    }
}

TEST(sign_verify_argument_errors) {
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    const sub_pubkey *keys[] = {k};
    sub_err e = {0};
    const char *dg = "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455";
    CHECK_FAILS(sub_cosign_verify(keys, 0, "{}", 2, "QUJD", dg, "r/x", SUB_IDENTITY_EXACT, NULL, &e),
                -EINVAL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK_FAILS(sub_cosign_verify(keys, 1, "{}", 2, "QUJD", "sha256:12", "r/x", SUB_IDENTITY_EXACT,
                                  NULL, &e),
                -EINVAL);
    CHECK_FAILS(sub_cosign_verify(keys, 1, "{}", 2, "QUJD", dg, NULL, SUB_IDENTITY_EXACT, NULL, &e),
                -EINVAL);
    CHECK(strstr(e.msg, "identity") != NULL);
}

TEST(sign_identity_policies_and_multiple_keys) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    _cleanup_pubkey_ sub_pubkey *up = pub(V "upstream-containers-image/cosign.pub");
    if (!k || !up) return;
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(V "payload.json", &len);
    _cleanup_free_ char *sig = unit_read_shared_line(V "signature.b64");
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    const sub_pubkey *keys[] = {up, k};
    static const struct {
        const char *identity;
        sub_identity_policy policy;
        bool ok;
        sub_check_result res;
    } t[] = {
        {"127.0.0.1:5000/hello", SUB_IDENTITY_EXACT, true, SUB_CHECK_PASS},
        {"localhost:5000/hello", SUB_IDENTITY_EXACT, false, SUB_CHECK_FAIL},
        {"127.0.0.1:5000/mirror/hello", SUB_IDENTITY_EXACT, false, SUB_CHECK_FAIL},
        {"127.0.0.1:5000/hello/x", SUB_IDENTITY_EXACT, false, SUB_CHECK_FAIL},
        {"127.0.0.1:5000/mirror/hello", SUB_IDENTITY_ANY_REPO, true, SUB_CHECK_SKIPPED},
        {NULL, SUB_IDENTITY_ANY_REPO, true, SUB_CHECK_SKIPPED},
        {"127.0.0.1:5000", SUB_IDENTITY_REPO_PREFIX, true, SUB_CHECK_PASS},
        {"127.0.0.1:5000/", SUB_IDENTITY_REPO_PREFIX, true, SUB_CHECK_PASS},
        {"127.0.0.1:5000/hello", SUB_IDENTITY_REPO_PREFIX, true, SUB_CHECK_PASS},
        {"127.0.0.1:5000/hel", SUB_IDENTITY_REPO_PREFIX, false, SUB_CHECK_FAIL},
        {"127.0.0.1:500", SUB_IDENTITY_REPO_PREFIX, false, SUB_CHECK_FAIL},
        {"localhost:5000", SUB_IDENTITY_REPO_PREFIX, false, SUB_CHECK_FAIL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_verify_record rec;
        sub_err ie = {0};
        int r = sub_cosign_verify(keys, 2, payload, len, sig, digest, t[i].identity, t[i].policy,
                                  &rec, &ie);
        if ((r == 0) != t[i].ok || rec.identity != t[i].res || rec.keys_tried != 2 ||
            strcmp(rec.key_id, sub_pubkey_id(k)))
            unit_fail(__FILE__, __LINE__, "case %zu (%s, %s): r=%d identity=%s tried=%zu: %s", i,
                      t[i].identity ? t[i].identity : "(null)",
                      sub_identity_policy_name(t[i].policy), r,
                      sub_check_result_name(rec.identity), rec.keys_tried, ie.msg);
        if (!t[i].ok && (rec.failure != SUB_VERIFY_IDENTITY_MISMATCH ||
                         ie.reason != SUB_R_IDENTITY_MISMATCH ||
                         !strstr(ie.msg, "127.0.0.1:5000/hello")))
            unit_fail(__FILE__, __LINE__, "case %zu: %s", i, ie.msg);
    }
    (void)e;
}

TEST(sign_valid_signature_over_malformed_payload) {
    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_generate(&k, &e), &e);
    if (!k) return;
    _cleanup_pubkey_ sub_pubkey *p = NULL;
    CHECK_OK(sub_privkey_public(k, &p, &e), &e);
    const char *bad = "{\"critical\":{\"type\":\"cosign container image signature\"}}";
    _cleanup_free_ char *sig = NULL;
    CHECK_OK(sub_cosign_sign(k, bad, strlen(bad), &sig, &e), &e);
    const sub_pubkey *keys[] = {p};
    sub_verify_record rec;
    CHECK_FAILS(sub_cosign_verify(keys, 1, bad, strlen(bad), sig,
                                  "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455",
                                  NULL, SUB_IDENTITY_ANY_REPO, &rec, &e),
                -EKEYREJECTED);
    CHECK_INT(rec.failure, SUB_VERIFY_MALFORMED_PAYLOAD);
    CHECK_INT(rec.signature, SUB_CHECK_PASS);
    CHECK_INT(rec.digest, SUB_CHECK_NOT_RUN);
    CHECK_REASON(&e, SUB_R_MALFORMED_PAYLOAD);
    CHECK(strstr(e.msg, "identity") != NULL); /* says what the payload lacks */
}

TEST(sign_layer_check_and_signature_manifests) {
    /* The registry-side flow on the vector manifests: layer digest and
     * annotation from the manifest, payload bytes from the blob. Our own
     * manifest and skopeo's copy (other config bytes, other key order) must
     * both verify; the copy under its mirror identity only with any-repo. */
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    if (!k) return;
    const sub_pubkey *keys[] = {k};
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(V "payload.json", &len);
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    static const char *manifests[] = {V "sig-manifest.json", V "skopeo-copied-sig-manifest.json"};
    for (size_t i = 0; i < ARRAY_SIZE(manifests); i++) {
        size_t mlen;
        _cleanup_free_ char *m = unit_read_shared(manifests[i], &mlen);
        _cleanup_json_ json_t *j = NULL;
        CHECK_OK(sub_json_parse(m, mlen, 1 << 20, manifests[i], &j, &e), &e);
        json_t *layers = json_object_get(j, "layers");
        json_t *l0 = json_array_get(layers, 0);
        const char *ld = json_string_value(json_object_get(l0, "digest"));
        const char *mt = json_string_value(json_object_get(l0, "mediaType"));
        const char *sig = json_string_value(
            json_object_get(json_object_get(l0, "annotations"), SUB_COSIGN_SIG_ANNOTATION));
        CHECK_STREQ(mt, SUB_MT_COSIGN_SIMPLESIGNING);
        if (!ld || !sig) continue;
        sub_verify_record rec;
        CHECK_OK(sub_cosign_verify_layer(keys, 1, ld, payload, len, sig, digest, NULL,
                                         SUB_IDENTITY_ANY_REPO, &rec, &e),
                 &e);
        CHECK_INT(rec.layer, SUB_CHECK_PASS);
        CHECK(rec.verified);
        CHECK_FAILS(sub_cosign_verify_layer(keys, 1, ld, payload, len, sig, digest,
                                            "127.0.0.1:5000/mirror/hello", SUB_IDENTITY_EXACT,
                                            &rec, &e),
                    -EKEYREJECTED);
        CHECK_INT(rec.failure, SUB_VERIFY_IDENTITY_MISMATCH);
        /* a different blob under the same layer descriptor */
        _cleanup_free_ char *other = unit_read_shared(V "negative/wrongdigest.payload.json", NULL);
        CHECK_FAILS(sub_cosign_verify_layer(keys, 1, ld, other, strlen(other), sig, digest, NULL,
                                            SUB_IDENTITY_ANY_REPO, &rec, &e),
                    -EKEYREJECTED);
        CHECK_INT(rec.failure, SUB_VERIFY_LAYER_MISMATCH);
        CHECK_REASON(&e, SUB_R_LAYER_MISMATCH);
        CHECK_INT(rec.layer, SUB_CHECK_FAIL);
        CHECK_INT(rec.signature, SUB_CHECK_NOT_RUN);
        CHECK(strstr(e.msg, ld) != NULL);
    }
    CHECK_FAILS(sub_cosign_check_layer(payload, len,
                                       "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                       &e),
                -EKEYREJECTED);
}

TEST(sign_sig_tag_matches_vector) {
    sub_err e = {0};
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    _cleanup_free_ char *want = unit_read_shared_line(V "sig-tag.txt");
    _cleanup_free_ char *tag = NULL;
    CHECK_OK(sub_cosign_sig_tag(digest, &tag, &e), &e);
    CHECK_STREQ(tag, want);
    char *t2 = NULL;
    CHECK_FAILS(sub_cosign_sig_tag("sha256:xyz", &t2, &e), -EINVAL);
}

TEST(sign_record_json) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = pub(V "cosign.pub");
    if (!k) return;
    size_t len;
    _cleanup_free_ char *payload = unit_read_shared(V "negative/wrongdigest.payload.json", &len);
    _cleanup_free_ char *sig = unit_read_shared_line(V "negative/wrongdigest.signature.b64");
    _cleanup_free_ char *digest = unit_read_shared_line(V "image-manifest.digest");
    const sub_pubkey *keys[] = {k};
    sub_verify_record rec;
    CHECK_FAILS(sub_cosign_verify(keys, 1, payload, len, sig, digest, "127.0.0.1:5000/hello",
                                  SUB_IDENTITY_EXACT, &rec, &e),
                -EKEYREJECTED);
    _cleanup_json_ json_t *j = sub_verify_record_json(&rec);
    CHECK(json_is_false(json_object_get(j, "verified")));
    CHECK_STREQ(json_string_value(json_object_get(j, "failure")), "digest-mismatch");
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(j, "key"), "id")),
                sub_pubkey_id(k));
    json_t *checks = json_object_get(j, "checks");
    CHECK_INT(json_array_size(checks), 3);
    static const char *names[] = {"signature", "digest", "identity"};
    static const char *results[] = {"pass", "fail", "not-run"};
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(checks, i);
        CHECK_STREQ(json_string_value(json_object_get(c, "check")), names[i]);
        CHECK_STREQ(json_string_value(json_object_get(c, "result")), results[i]);
    }
    CHECK_STREQ(json_string_value(json_object_get(json_array_get(checks, 1), "payload")),
                "sha256:d29b674e82aa46f8f907ceff641f98472649721932ae9e6eb59bc642a98e1f7e");
}

TEST(sign_b64_strict) {
    sub_err e = {0};
    unsigned char *o = NULL;
    size_t n;
    CHECK_OK(sub_b64_decode("QUJD", 4, NULL, "x", &o, &n, &e), &e);
    CHECK(n == 3 && o && memcmp(o, "ABC", 3) == 0);
    free(o);
    static const char *bad[] = {"QUJ", "QU=D", "QUJD=", "QUI=\n", "Q!JD", "QUI=QUI="};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        o = NULL;
        if (sub_b64_decode(bad[i], strlen(bad[i]), NULL, "x", &o, &n, &e) != -EBADMSG)
            unit_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
        free(o);
    }
    _cleanup_free_ char *enc = sub_b64_encode("\xff\x00\x01", 3);
    CHECK_STREQ(enc, "/wAB");
}

/* Identities are compared whole, never as prefixes: a signature for REG/hello
 * does not verify REG/hel nor REG/hello-dev, one for REG/hello-dev does not
 * verify REG/hello, and --repo-prefix stops at a '/'. */
TEST(sign_identity_exact_is_not_a_prefix) {
    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *sk = NULL;
    CHECK_OK(sub_privkey_generate(&sk, &e), &e);
    _cleanup_pubkey_ sub_pubkey *pk = NULL;
    if (sk) CHECK_OK(sub_privkey_public(sk, &pk, &e), &e);
    if (!pk) return;
    const sub_pubkey *keys[] = {pk};
    const char *dg = "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455";
    static const struct {
        const char *signed_for, *verify_as;
        sub_identity_policy policy;
        bool ok;
    } t[] = {
        {"127.0.0.1:5000/hello", "127.0.0.1:5000/hello", SUB_IDENTITY_EXACT, true},
        {"127.0.0.1:5000/hello", "127.0.0.1:5000/hel", SUB_IDENTITY_EXACT, false},
        {"127.0.0.1:5000/hello", "127.0.0.1:5000/hello-dev", SUB_IDENTITY_EXACT, false},
        {"127.0.0.1:5000/hello-dev", "127.0.0.1:5000/hello", SUB_IDENTITY_EXACT, false},
        {"127.0.0.1:5000/hello/x", "127.0.0.1:5000/hello", SUB_IDENTITY_EXACT, false},
        {"127.0.0.1:5000/hello-dev", "127.0.0.1:5000/hello", SUB_IDENTITY_REPO_PREFIX, false},
        {"127.0.0.1:5000/hello/x", "127.0.0.1:5000/hello", SUB_IDENTITY_REPO_PREFIX, true},
        {"127.0.0.1:5000/hello", "127.0.0.1:5000/hello/x", SUB_IDENTITY_REPO_PREFIX, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        _cleanup_free_ char *payload = NULL, *sig = NULL;
        size_t len = 0;
        CHECK_OK(sub_cosign_sign_image(sk, t[i].signed_for, dg, &payload, &len, &sig, &e), &e);
        if (!sig) continue;
        sub_verify_record rec;
        sub_err ve = {0};
        int r = sub_cosign_verify(keys, 1, payload, len, sig, dg, t[i].verify_as, t[i].policy,
                                  &rec, &ve);
        bool mismatch = r == -EKEYREJECTED && rec.failure == SUB_VERIFY_IDENTITY_MISMATCH &&
                        rec.identity == SUB_CHECK_FAIL && strstr(ve.msg, t[i].signed_for);
        if (t[i].ok ? r != 0 || rec.identity != SUB_CHECK_PASS : !mismatch)
            unit_fail(__FILE__, __LINE__, "case %zu: signed for %s, verified as %s (%s): r=%d %s", i,
                      t[i].signed_for, t[i].verify_as, sub_identity_policy_name(t[i].policy), r,
                      ve.msg);
    }
}

/* Found by tests/fuzz (base64): libsodium 1.0.18 decodes every byte >= 0x80
 * as '/', so "\x81\x9e\x9e\x9e" was accepted as "////" (ff ff ff). */
TEST(sign_b64_refuses_bytes_outside_the_alphabet) {
    unsigned char *out = NULL;
    size_t n = 0;
    sub_err e = {0};
    CHECK_FAILS(sub_b64_decode("\x81\x9e\x9e\x9e", 4, NULL, "sig", &out, &n, &e), -EBADMSG);
    CHECK(strstr(e.msg, "sig is not valid base64") != NULL);
    CHECK(strstr(e.msg, "byte 0 of 4") != NULL);
    CHECK_FAILS(sub_b64_decode("YWJj\xff\xff\xff\xff", 8, " \n", "sig", &out, &n, &e), -EBADMSG);
    CHECK(strstr(e.msg, "byte 4 of 8") != NULL);
    CHECK_FAILS(sub_b64_decode("YW\xe2\x80\x8bJj", 7, " \n", "sig", &out, &n, &e), -EBADMSG);
    /* the real thing still decodes, with and without ignored blanks */
    CHECK_OK(sub_b64_decode("////", 4, NULL, "sig", &out, &n, &e), &e);
    CHECK_INT(n, 3);
    CHECK(out[0] == 0xff && out[1] == 0xff && out[2] == 0xff);
    free(out);
    CHECK_OK(sub_b64_decode("YW\nJj\n", 6, " \n", "sig", &out, &n, &e), &e);
    CHECK_INT(n, 3);
    CHECK(!memcmp(out, "abc", 3));
    free(out);
}
