/* An existing signature (or attestation) artifact manifest read back from a
 * registry before a new layer is added to it (lib/sign/artifact.c). */
#include "fuzz.h"
#include "substrate/cosign-registry.h"
#include "substrate/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    _cleanup_free_ char *man = NULL, *cfg = NULL;
    size_t mlen = 0, clen = 0;
    sub_err e = {0};
    int r = sub_cosign_artifact_add((const char *)data, size, FUZZ_IMAGE_DIGEST, 236,
                                    "MEUCIQCcv4Yp4qqtE2JQGL8LO2ju93mye58rujMzo/PVcCZ7+gIgIjxcvZHGX5ka6e6SD0JRwrYAzV4c1fHv5zmdqXZD7V0=",
                                    &man, &mlen, &cfg, &clen, &e);
    fuzz_check_err(&e);
    if (r < 0) return 0;
    /* what we would push is a manifest we ourselves accept */
    sub_manifest m = {0};
    FUZZ_ASSERT(sub_manifest_parse(man, mlen, SUB_MT_OCI_MANIFEST, &m, &e) == 0);
    FUZZ_ASSERT(m.kind == SUB_MANIFEST_IMAGE && m.n_layers >= 1);
    FUZZ_ASSERT(!strcmp(m.layers[m.n_layers - 1].digest, FUZZ_IMAGE_DIGEST));
    char cd[SUB_DIGEST_MAX];
    FUZZ_ASSERT(sub_sha256_buf(cfg, clen, cd, &e) == 0 && !strcmp(cd, m.config.digest));
    sub_manifest_free(&m);
    return 0;
}
