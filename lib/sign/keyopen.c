/* Opening a signing key for use: the file, then the passphrase, then the
 * decryption. One function for every signer (sign, build-sign-push, the
 * acceptance harness), so they check in the same order and say the same. */
#include "sign-internal.h"
#include "substrate/fs.h"
#include <string.h>

/* The file must be there and hold a cosign-encrypted private key; checked
 * before any passphrase is asked for (a prompt for a file that does not
 * exist helps no one). *data gets the file's bytes. */
static int read_key_file(const char *path, char **data, size_t *len, sub_err *e) {
    int r = sub_read_file(path, SUB_SIGN_MAX_KEYFILE, data, len, NULL);
    if (r < 0) {
        _cleanup_free_ char *prefix = sub_key_prefix(path);
        return sub_err_setr(e, SUB_R_NO_KEY_FILE, SUB_KIND_INPUT, r,
                            "cannot open the signing key %s: %s%s%s%s", path, strerror(-r),
                            r == -ENOENT ? " (make a key pair with `substrate key generate " : "",
                            r == -ENOENT ? prefix : "", r == -ENOENT ? "`)" : "");
    }
    _cleanup_free_ char *label = NULL;
    unsigned char *body = NULL;
    size_t bodylen = 0;
    sub_err pe = {0};
    r = sign_pem_decode(*data, *len, path, &label, &body, &bodylen, &pe);
    sub_secret_free(body, bodylen); /* an unencrypted key's body is secret */
    if (r < 0)
        return sub_err_setr(e, SUB_R_NOT_A_PRIVATE_KEY, SUB_KIND_INPUT, r,
                            "%s; the signing key must be a cosign private key (ENCRYPTED SIGSTORE "
                            "PRIVATE KEY), made by `substrate key generate` or `cosign "
                            "generate-key-pair`",
                            pe.msg);
    if (!strcmp(label, SUB_COSIGN_KEY_LABEL) || !strcmp(label, SUB_COSIGN_KEY_LABEL_OLD)) return 0;
    if (!strcmp(label, "PUBLIC KEY")) {
        size_t n = strlen(path);
        _cleanup_free_ char *prefix =
            n > 4 && str_has_suffix(path, ".pub") ? xstrndup(path, n - 4) : xstrdup(path);
        return sub_err_setr(e, SUB_R_PUBLIC_KEY_GIVEN, SUB_KIND_INPUT, -EBADMSG,
                            "%s is a public key; signing needs the private key %s.key", path,
                            prefix);
    }
    /* another PEM: the decryption names it (and fails before any scrypt) */
    sub_privkey *k = NULL;
    r = sub_privkey_decrypt(*data, *len, NULL, 0, path, &k, e);
    if (k) sub_privkey_free(k);
    if (r == 0) return sub_err_set(e, -EIO, "internal error: %s opened without a passphrase", path);
    return sub_err_reason(e, SUB_R_NOT_A_PRIVATE_KEY);
}

int sub_signing_key_open(const sub_key_open_opts *o, sub_privkey **out, sub_err *e) {
    *out = NULL;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_key_file(o->path, &data, &len, e);
    if (r < 0) return r;
    _cleanup_free_ char *prefix = sub_key_prefix(o->path);
    _cleanup_free_ char *what = xasprintf("key %s", o->path);
    sub_pass_opts po = {.file = o->passphrase_file, .key_prefix = prefix, .what = what,
                        .beside_first = o->beside_first};
    _cleanup_passphrase_ sub_passphrase pass = {0};
    r = sub_passphrase_get(&po, &pass, e);
    if (r < 0) return r;
    r = sub_privkey_decrypt(data, len, pass.data, pass.len, o->path, out, e);
    if (r != -EKEYREJECTED) return r;
    /* name the key by id when its public half sits beside it */
    const char *nothing = o->nothing_done ? o->nothing_done : "";
    _cleanup_free_ char *pubp = xasprintf("%s.pub", prefix);
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    if (sub_pubkey_load_file(pubp, &pub, NULL) == 0)
        sub_err_detail(e, "passphrase taken from %s; %s is key %s%s%s", pass.origin, pubp,
                       sub_pubkey_id(pub), *nothing ? "; " : "", nothing);
    else
        sub_err_detail(e, "passphrase taken from %s%s%s", pass.origin, *nothing ? "; " : "",
                       nothing);
    return r;
}
