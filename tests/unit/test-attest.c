#include "substrate/attest.h"
#include "substrate/json.h"
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
    CHECK(strstr(e.msg, "no trusted key") != NULL);
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
