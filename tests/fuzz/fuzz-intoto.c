/* In-toto statements with SLSA provenance, once their envelope verified
 * (lib/sign/attest.c sign_check_statement): what verify reads out of them. */
#include "fuzz.h"
#include "../../lib/sign/sign-internal.h"
#include "substrate/attest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sub_attest_result res;
    memset(&res, 0, sizeof res);
    sub_err e = {0};
    int r = sign_check_statement((const char *)data, size, FUZZ_IMAGE_DIGEST, &res, &e);
    fuzz_check_err(&e);
    FUZZ_ASSERT(r == 0 || r == -EKEYREJECTED);
    if (r == 0) {
        FUZZ_ASSERT(res.statement && res.build_command);
        FUZZ_ASSERT(memchr(res.commit, 0, sizeof res.commit));
        FUZZ_ASSERT(memchr(res.source, 0, sizeof res.source));
        FUZZ_ASSERT(memchr(res.spec_path, 0, sizeof res.spec_path));
        FUZZ_ASSERT(memchr(res.spec_digest, 0, sizeof res.spec_digest));
        res.verified = true;
        json_t *j = sub_attest_result_json(&res);
        FUZZ_ASSERT(j);
        json_decref(j);
    }
    sub_attest_result_free(&res);
    return 0;
}
