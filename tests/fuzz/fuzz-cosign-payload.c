/* Cosign simple-signing payloads (lib/sign/payload.c). */
#include "fuzz.h"
#include "substrate/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_cosign_payload p = {0};
    sub_err e = {0};
    int r = sub_cosign_payload_parse(data, size, &p, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(!p.docker_reference && !p.manifest_digest);
        return 0;
    }
    FUZZ_ASSERT(p.docker_reference && *p.docker_reference);
    FUZZ_ASSERT(sub_digest_validate(p.manifest_digest, &e) == 0);
    for (const char *q = p.docker_reference; *q; q++)
        FUZZ_ASSERT((unsigned char)*q > ' ' && (unsigned char)*q < 0x7f);
    /* when the identity is one we would sign for, the bytes we would write
     * parse back to the same payload */
    _cleanup_free_ char *out = NULL;
    size_t len = 0;
    if (sub_cosign_payload_build(p.docker_reference, p.manifest_digest, &out, &len, &e) == 0) {
        sub_cosign_payload b = {0};
        FUZZ_ASSERT(sub_cosign_payload_parse(out, len, &b, &e) == 0);
        FUZZ_ASSERT(!strcmp(b.docker_reference, p.docker_reference));
        FUZZ_ASSERT(!strcmp(b.manifest_digest, p.manifest_digest));
        sub_cosign_payload_free(&b);
    }
    sub_cosign_payload_free(&p);
    return 0;
}
