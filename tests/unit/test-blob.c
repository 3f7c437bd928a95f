/* Blob signatures (cosign sign-blob / verify-blob, key-based). */
#include "substrate/fs.h"
#include "substrate/sign.h"
#include "unit.h"
#include <stdlib.h>
#include <string.h>

TEST(blob_sign_then_verify_and_refusals) {
    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *k = NULL, *k2 = NULL;
    CHECK_OK(sub_privkey_generate(&k, &e), &e);
    CHECK_OK(sub_privkey_generate(&k2, &e), &e);
    _cleanup_pubkey_ sub_pubkey *p = NULL, *p2 = NULL;
    CHECK_OK(sub_privkey_public(k, &p, &e), &e);
    CHECK_OK(sub_privkey_public(k2, &p2, &e), &e);
    _cleanup_free_ char *f = sub_path_join(unit_tmpdir(), "job.json");
    const char body[] = "{\"name\": \"job\"}\n";
    CHECK_OK(sub_write_file_atomic(f, body, strlen(body), 0644, &e), &e);
    _cleanup_free_ char *sig = NULL;
    CHECK_OK(sub_blob_sign_file(k, f, &sig, &e), &e);
    if (!sig) return;

    const sub_pubkey *both[] = {p2, p};
    char by[SUB_DIGEST_MAX];
    CHECK_OK(sub_blob_verify(both, 2, body, strlen(body), sig, by, &e), &e);
    CHECK_STREQ(by, sub_pubkey_id(p)); /* the key that verified, not the first tried */
    /* cosign's file ends in a newline */
    _cleanup_free_ char *nl = xasprintf("%s\n", sig);
    CHECK_OK(sub_blob_verify(both, 2, body, strlen(body), nl, NULL, &e), &e);

    /* one byte more: refused, no trusted key matched */
    sub_err r1 = {0};
    CHECK_INT(sub_blob_verify(both, 2, body, strlen(body) - 1, sig, by, &r1), -EKEYREJECTED);
    CHECK_REASON(&r1, SUB_R_NO_TRUSTED_KEY);
    CHECK_STREQ(by, "");
    /* another key only */
    const sub_pubkey *other[] = {p2};
    sub_err r2 = {0};
    CHECK_INT(sub_blob_verify(other, 1, body, strlen(body), sig, NULL, &r2), -EKEYREJECTED);
    CHECK_REASON(&r2, SUB_R_NO_TRUSTED_KEY);
    /* not base64, and base64 of something that is not DER */
    sub_err r3 = {0}, r4 = {0};
    CHECK_INT(sub_blob_verify(both, 2, body, strlen(body), "%%%", NULL, &r3), -EKEYREJECTED);
    CHECK_REASON(&r3, SUB_R_MALFORMED_SIGNATURE);
    CHECK_INT(sub_blob_verify(both, 2, body, strlen(body), "bm90IGEgc2lnbmF0dXJl", NULL, &r4), -EKEYREJECTED);
    CHECK_REASON(&r4, SUB_R_MALFORMED_SIGNATURE);
    /* no keys at all: an input error, not a verdict */
    sub_err r5 = {0};
    CHECK_INT(sub_blob_verify(NULL, 0, body, strlen(body), sig, NULL, &r5), -EINVAL);
    CHECK(sub_err_exit_code(&r5) == SUB_EXIT_USAGE);
}

TEST(blob_verifies_the_shared_vector_signature_over_its_payload) {
    /* the image-signature vector is ECDSA over the payload bytes: the same
     * primitive as a blob signature over that file */
    sub_err e = {0};
    _cleanup_free_ char *pubp = unit_src("tests/fixtures/cosign/cosign.pub");
    _cleanup_pubkey_ sub_pubkey *p = NULL;
    CHECK_OK(sub_pubkey_load_file(pubp, &p, &e), &e);
    size_t plen = 0;
    _cleanup_free_ char *payload = unit_read_shared("vectors/cosign/payload.json", &plen);
    _cleanup_free_ char *sig = unit_read_shared("vectors/cosign/signature.b64", NULL);
    if (!p) return;
    const sub_pubkey *keys[] = {p};
    CHECK_OK(sub_blob_verify(keys, 1, payload, plen, sig, NULL, &e), &e);
    sub_err r = {0};
    CHECK_INT(sub_blob_verify(keys, 1, payload, plen - 1, sig, NULL, &r), -EKEYREJECTED);
}
