/* A cosign signature as it comes from a signature layer: the base64
 * annotation, then the payload blob (lib/sign/cosign.c): base64, strict DER,
 * ECDSA, the payload, digest and identity checks, and the verdict record.
 * Input: the annotation value, '\n', the payload bytes (no '\n': all of it is
 * the annotation and the payload is the fixture's). The raw input is also
 * checked as a DER ECDSA-Sig-Value. The key is tests/fixtures/cosign's, so
 * the seed built from the fixtures verifies. */
#include "fuzz.h"
#include "../../lib/sign/sign-internal.h"
#include "substrate/strbuf.h"

static sub_pubkey *key;

static const char fixture_payload[] =
    "{\"critical\":{\"identity\":{\"docker-reference\":\"127.0.0.1:5000/hello\"},\"image\":{"
    "\"docker-manifest-digest\":\"" FUZZ_IMAGE_DIGEST "\"},\"type\":\"cosign container image "
    "signature\"},\"optional\":null}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!key && sub_pubkey_from_pem(FUZZ_TEST_PUB, strlen(FUZZ_TEST_PUB), "fuzz", &key, NULL) < 0)
        abort();
    char why[256];
    (void)sign_check_sig_der(data, size, why, sizeof why);

    const uint8_t *nl = memchr(data, '\n', size);
    size_t slen = nl ? (size_t)(nl - data) : size;
    _cleanup_free_ char *sig = fuzz_str(data, slen);
    const void *payload = nl ? (const void *)(nl + 1) : fixture_payload;
    size_t plen = nl ? size - slen - 1 : strlen(fixture_payload);
    char layer[SUB_DIGEST_MAX];
    if (sub_sha256_buf(payload, plen, layer, NULL) < 0) abort();

    const sub_pubkey *keys[] = {key};
    static const sub_identity_policy pol[] = {SUB_IDENTITY_EXACT, SUB_IDENTITY_REPO_PREFIX,
                                              SUB_IDENTITY_ANY_REPO};
    sub_verify_record rec;
    sub_err e = {0};
    int r = sub_cosign_verify_layer(keys, 1, layer, payload, plen, sig, FUZZ_IMAGE_DIGEST,
                                    "127.0.0.1:5000/hello", pol[size % 3], &rec, &e);
    fuzz_check_err(&e);
    FUZZ_ASSERT(r == 0 || r == -EKEYREJECTED);
    FUZZ_ASSERT(rec.verified == (r == 0));
    FUZZ_ASSERT(memchr(rec.reason, 0, sizeof rec.reason));
    if (r == 0) FUZZ_ASSERT(!strcmp(rec.payload_digest, FUZZ_IMAGE_DIGEST));
    json_t *j = sub_verify_record_json(&rec);
    FUZZ_ASSERT(j);
    json_decref(j);
    return 0;
}
