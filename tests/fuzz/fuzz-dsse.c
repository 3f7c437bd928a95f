/* DSSE envelopes as fetched from an attestation layer (lib/sign/attest.c
 * sub_dsse_verify), with the tests/fixtures/cosign key trusted. */
#include "fuzz.h"
#include "substrate/attest.h"

static sub_pubkey *key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!key && sub_pubkey_from_pem(FUZZ_TEST_PUB, strlen(FUZZ_TEST_PUB), "fuzz", &key, NULL) < 0)
        abort();
    const sub_pubkey *keys[] = {key};
    char *payload = NULL;
    size_t plen = 0;
    char kid[SUB_DIGEST_MAX] = "";
    sub_err e = {0};
    int r = sub_dsse_verify(keys, 1, data, size, SUB_INTOTO_PAYLOAD_TYPE, &payload, &plen, kid, &e);
    fuzz_check_err(&e);
    FUZZ_ASSERT(r == 0 || r == -EKEYREJECTED);
    if (r == 0) {
        FUZZ_ASSERT(payload && payload[plen] == 0);
        FUZZ_ASSERT(!strcmp(kid, sub_pubkey_id(key)));
        free(payload);
    } else {
        FUZZ_ASSERT(!payload);
    }
    return 0;
}
