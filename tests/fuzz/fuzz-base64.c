/* Base64 as signatures, PEM bodies and DSSE payloads carry it
 * (lib/sign/encoding.c sub_b64_decode). */
#include "fuzz.h"
#include "substrate/sign.h"

static void one(const char *s, size_t n, const char *ignore) {
    unsigned char *out = NULL;
    size_t olen = 0;
    sub_err e = {0};
    int r = sub_b64_decode(s, n, ignore, "fuzz", &out, &olen, &e);
    fuzz_check_err(&e);
    if (r < 0) {
        FUZZ_ASSERT(r == -EBADMSG);
        return;
    }
    FUZZ_ASSERT(olen <= n / 4 * 3 + 3);
    /* decode(encode(x)) == x */
    _cleanup_free_ char *enc = sub_b64_encode(out, olen);
    unsigned char *back = NULL;
    size_t blen = 0;
    FUZZ_ASSERT(sub_b64_decode(enc, strlen(enc), NULL, "again", &back, &blen, &e) == 0);
    FUZZ_ASSERT(blen == olen && (olen == 0 || !memcmp(back, out, olen)));
    /* without ignored characters, the canonical encoding is the input */
    if (!ignore && n == strlen(enc)) FUZZ_ASSERT(!memcmp(enc, s, n));
    free(back);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one((const char *)data, size, NULL);
    one((const char *)data, size, " \t\r\n");
    return 0;
}
