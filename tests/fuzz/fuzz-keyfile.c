/* Cosign encrypted private-key files (lib/sign/keyfile.c) with the
 * passphrase "fuzz", and the PKCS#8 DER inside them (lib/sign/key.c). The
 * fuzz build refuses scrypt costs over 1 MiB (128*N*r*p) in the KDF itself,
 * so every check before it is fuzzed and a run stays fast. */
#include "fuzz.h"
#include "substrate/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_privkey *k = NULL;
    sub_err e = {0};
    int r = sub_privkey_decrypt((const char *)data, size, "fuzz", 4, "fuzz.key", &k, &e);
    fuzz_check_err(&e);
    if (r == 0) {
        FUZZ_ASSERT(k && sub_digest_validate(sub_privkey_id(k), &e) == 0);
        sub_privkey_free(k);
    } else {
        FUZZ_ASSERT(!k);
    }
    k = NULL;
    if (sub_privkey_from_pkcs8(data, size, &k, &e) == 0) {
        unsigned char *der = NULL;
        size_t dlen = 0;
        FUZZ_ASSERT(sub_privkey_pkcs8(k, &der, &dlen, &e) == 0);
        sub_privkey *b = NULL;
        FUZZ_ASSERT(sub_privkey_from_pkcs8(der, dlen, &b, &e) == 0);
        FUZZ_ASSERT(!strcmp(sub_privkey_id(b), sub_privkey_id(k)));
        sub_secret_free(der, dlen);
        sub_privkey_free(b);
        sub_privkey_free(k);
    }
    fuzz_check_err(&e);
    return 0;
}
