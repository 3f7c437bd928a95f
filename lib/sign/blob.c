/* cosign's blob signatures (key-based): `cosign sign-blob --key K FILE`
 * signs the file's bytes with ECDSA P-256 / SHA-256 and writes the DER
 * signature in base64; `cosign verify-blob --key P --signature S FILE` checks
 * it. Same keys and signature encoding as the image signatures, no payload
 * wrapped around the bytes. */
#include "sign-internal.h"
#include "substrate/fs.h"
#include <string.h>

int sub_blob_sign_file(const sub_privkey *k, const char *path, char **sig_b64, sub_err *e) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_BLOB_MAX, &data, &len, e);
    if (r == -EFBIG)
        return sub_err_setk(e, SUB_KIND_INPUT, r, "%s is larger than the %u MiB blobs are signed up to", path,
                            SUB_BLOB_MAX >> 20);
    if (r < 0) return r;
    return sub_cosign_sign(k, data, len, sig_b64, e);
}

int sub_blob_verify(const sub_pubkey *const *keys, size_t nkeys, const void *data, size_t len,
                    const char *sig_b64, char key_id[SUB_DIGEST_MAX], sub_err *e) {
    if (key_id) key_id[0] = 0;
    if (!keys || !nkeys)
        return sub_err_setr(e, SUB_R_NO_TRUST_STORE, SUB_KIND_INPUT, -EINVAL,
                            "no public keys to verify with: pass --key FILE.pub or trust one "
                            "(`substrate key trust FILE.pub`)");
    _cleanup_free_ unsigned char *der = NULL;
    size_t derlen = 0;
    sub_err be = {0};
    /* cosign writes the base64 with a trailing newline at most: allow blanks */
    if (sub_b64_decode(sig_b64, strlen(sig_b64), " \t\r\n", "the signature", &der, &derlen, &be) < 0)
        return sub_err_setr(e, SUB_R_MALFORMED_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "malformed signature: %s", be.msg);
    char why[256];
    if (sign_check_sig_der(der, derlen, why, sizeof why) < 0)
        return sub_err_setr(e, SUB_R_MALFORMED_SIGNATURE, SUB_KIND_CHECK, -EKEYREJECTED,
                            "malformed signature: %s", why);
    for (size_t i = 0; i < nkeys; i++)
        if (sign_verify_der(keys[i]->pkey, der, derlen, data, len)) {
            if (key_id) snprintf(key_id, SUB_DIGEST_MAX, "%s", sub_pubkey_id(keys[i]));
            return 0;
        }
    char sha[SUB_DIGEST_MAX] = "";
    (void)sub_sha256_buf(data, len, sha, NULL);
    return sub_err_setr(e, SUB_R_NO_TRUSTED_KEY, SUB_KIND_CHECK, -EKEYREJECTED,
                        "no trusted key matched: the signature does not verify over these bytes (%s) "
                        "with %s of %zu key%s; it was made by another key, or the file or the "
                        "signature was altered",
                        sha, nkeys == 1 ? "the one" : "any", nkeys, nkeys == 1 ? "" : "s");
}
