/* PEM public keys (lib/sign/key.c, lib/sign/encoding.c): trust-directory
 * files and --key arguments. */
#include "fuzz.h"
#include "substrate/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_pubkey *k = NULL;
    sub_err e = {0};
    int r = sub_pubkey_from_pem((const char *)data, size, "fuzz.pub", &k, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(!k);
        return 0;
    }
    FUZZ_ASSERT(sub_digest_validate(sub_pubkey_id(k), &e) == 0);
    /* written out and read back: the same key, the same id */
    _cleanup_free_ char *pem = sub_pubkey_to_pem(k);
    sub_pubkey *b = NULL;
    FUZZ_ASSERT(sub_pubkey_from_pem(pem, strlen(pem), "again", &b, &e) == 0);
    FUZZ_ASSERT(!strcmp(sub_pubkey_id(b), sub_pubkey_id(k)));
    sub_pubkey_free(b);
    sub_pubkey_free(k);
    return 0;
}
