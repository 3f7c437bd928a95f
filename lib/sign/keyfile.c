/* Cosign's encrypted private-key format (go-securesystemslib "encrypted"):
 * scrypt key derivation + nacl/secretbox (XSalsa20-Poly1305), in libsodium. */
#include "sign-internal.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/strbuf.h"
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#define SALT_LEN 32
#define KEY_LEN crypto_secretbox_KEYBYTES

/* Refuse parameters that would make a hostile key file eat the machine.
 * scrypt needs 128*N*r bytes of memory and mixes p times that much (128*N*r*p
 * bytes of work). cosign's N=32768 r=8 p=1 is 32 MiB of each; the limits are
 * 8 and 16 times that (a couple of seconds of CPU at most). */
#define SCRYPT_MAX_MEM ((uint64_t)256 << 20)
#define SCRYPT_MAX_WORK ((uint64_t)512 << 20)

static int derive(const char *pass, size_t passlen, const unsigned char *salt, size_t saltlen,
                  uint64_t N, uint32_t r, uint32_t p, unsigned char key[KEY_LEN], sub_err *e) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* The fuzz build (tests/fuzz) only: a cheap KDF keeps each run fast; all
     * the parsing before it is still exercised. */
    if ((uint64_t)128 * N * r * p > ((uint64_t)1 << 20))
        return sub_err_set(e, -EBADMSG, "fuzz build: scrypt cost over 1 MiB refused");
#endif
    if (crypto_pwhash_scryptsalsa208sha256_ll((const uint8_t *)(pass ? pass : ""), passlen, salt,
                                              saltlen, N, r, p, key, KEY_LEN) != 0)
        return sub_err_setk(e, SUB_KIND_ENV, -ENOMEM,
                            "scrypt (N=%llu, r=%u, p=%u) failed: not enough memory?",
                            (unsigned long long)N, r, p);
    return 0;
}

int sub_privkey_encrypt(const sub_privkey *k, const char *pass, size_t passlen, char **pem,
                        sub_err *e) {
    int r = sign_sodium_init(e);
    if (r < 0) return r;
    unsigned char *der = NULL;
    size_t derlen = 0;
    r = sub_privkey_pkcs8(k, &der, &derlen, e);
    if (r < 0) return r;
    unsigned char salt[SALT_LEN], nonce[crypto_secretbox_NONCEBYTES], key[KEY_LEN];
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(nonce, sizeof nonce);
    r = derive(pass, passlen, salt, sizeof salt, SUB_COSIGN_SCRYPT_N, SUB_COSIGN_SCRYPT_R,
               SUB_COSIGN_SCRYPT_P, key, e);
    if (r < 0) {
        sodium_memzero(key, sizeof key);
        sub_secret_free(der, derlen);
        return r;
    }
    size_t ctlen = derlen + crypto_secretbox_MACBYTES;
    _cleanup_free_ unsigned char *ct = xmalloc(ctlen);
    crypto_secretbox_easy(ct, der, derlen, nonce, key);
    sodium_memzero(key, sizeof key);
    sub_secret_free(der, derlen);

    _cleanup_free_ char *salt64 = sub_b64_encode(salt, sizeof salt);
    _cleanup_free_ char *nonce64 = sub_b64_encode(nonce, sizeof nonce);
    _cleanup_free_ char *ct64 = sub_b64_encode(ct, ctlen);
    /* Field order as cosign writes it (Go struct order). */
    _cleanup_free_ char *json = xasprintf(
        "{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":%d,\"r\":%d,\"p\":%d},\"salt\":\"%s\"},"
        "\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":\"%s\"},\"ciphertext\":\"%s\"}",
        SUB_COSIGN_SCRYPT_N, SUB_COSIGN_SCRYPT_R, SUB_COSIGN_SCRYPT_P, salt64, nonce64, ct64);
    *pem = sign_pem_encode(SUB_COSIGN_KEY_LABEL, json, strlen(json));
    return 0;
}

static int label_error(const char *what, const char *label, sub_err *e) {
    const char *hint;
    if (!strcmp(label, "PUBLIC KEY"))
        hint = "it is a public key; signing needs the encrypted .key file";
    else if (!strcmp(label, "PRIVATE KEY") || !strcmp(label, "EC PRIVATE KEY"))
        hint = "it is an unencrypted key; cosign-format keys are encrypted (make one with "
               "`substrate key generate`)";
    else if (!strcmp(label, "ENCRYPTED PRIVATE KEY"))
        hint = "it is an OpenSSL PKCS#8-encrypted key, not cosign's format";
    else
        hint = "expected \"" SUB_COSIGN_KEY_LABEL "\" (or the older \"" SUB_COSIGN_KEY_LABEL_OLD
               "\")";
    sub_reason why = !strcmp(label, "PUBLIC KEY") ? SUB_R_PUBLIC_KEY_GIVEN : SUB_R_NOT_A_PRIVATE_KEY;
    return sub_err_setr(e, why, SUB_KIND_INPUT, -EBADMSG, "%s is PEM \"%s\", not a cosign private key: %s",
                        what, label, hint);
}

static int get_b64(const json_t *obj, const char *what, const char *key, unsigned char **out,
                   size_t *len, sub_err *e) {
    const char *s;
    int r = sub_json_get_str(obj, what, key, true, &s, e);
    if (r < 0) return r;
    _cleanup_free_ char *w = xasprintf("%s: \"%s\"", what, key);
    return sub_b64_decode(s, strlen(s), NULL, w, out, len, e);
}

int sub_privkey_decrypt(const char *pem, size_t len, const char *pass, size_t passlen,
                        const char *source, sub_privkey **out, sub_err *e) {
    const char *what = source && *source ? source : "private key";
    int r = sign_sodium_init(e);
    if (r < 0) return r;
    _cleanup_free_ char *label = NULL;
    _cleanup_free_ unsigned char *body = NULL;
    size_t bodylen = 0;
    r = sign_pem_decode(pem, len, what, &label, &body, &bodylen, e);
    if (r < 0) return r;
    if (strcmp(label, SUB_COSIGN_KEY_LABEL) && strcmp(label, SUB_COSIGN_KEY_LABEL_OLD)) {
        sub_secret_free(TAKE_PTR(body), bodylen);
        return label_error(what, label, e);
    }

    _cleanup_json_ json_t *j = NULL;
    r = sub_json_parse((const char *)body, bodylen, SUB_SIGN_MAX_KEYFILE, what, &j, e);
    if (r < 0) return r;
    static const char *const top_keys[] = {"kdf", "cipher", "ciphertext", NULL};
    static const char *const kdf_keys[] = {"name", "params", "salt", NULL};
    static const char *const par_keys[] = {"N", "r", "p", NULL};
    static const char *const cip_keys[] = {"name", "nonce", NULL};
    json_t *kdf, *params, *cipher;
    const char *kname, *cname;
    int64_t N, rr, p;
    _cleanup_free_ char *wkdf = xasprintf("%s: kdf", what);
    _cleanup_free_ char *wpar = xasprintf("%s: kdf.params", what);
    _cleanup_free_ char *wcip = xasprintf("%s: cipher", what);
    if ((r = sub_json_check_keys(j, what, top_keys, e)) < 0 ||
        (r = sub_json_get_obj(j, what, "kdf", true, &kdf, e)) < 0 ||
        (r = sub_json_check_keys(kdf, wkdf, kdf_keys, e)) < 0 ||
        (r = sub_json_get_str(kdf, wkdf, "name", true, &kname, e)) < 0 ||
        (r = sub_json_get_obj(kdf, wkdf, "params", true, &params, e)) < 0 ||
        (r = sub_json_check_keys(params, wpar, par_keys, e)) < 0 ||
        (r = sub_json_get_int(params, wpar, "N", true, &N, e)) < 0 ||
        (r = sub_json_get_int(params, wpar, "r", true, &rr, e)) < 0 ||
        (r = sub_json_get_int(params, wpar, "p", true, &p, e)) < 0 ||
        (r = sub_json_get_obj(j, what, "cipher", true, &cipher, e)) < 0 ||
        (r = sub_json_check_keys(cipher, wcip, cip_keys, e)) < 0 ||
        (r = sub_json_get_str(cipher, wcip, "name", true, &cname, e)) < 0)
        return r;
    if (strcmp(kname, "scrypt"))
        return sub_err_set(e, -EBADMSG, "%s: key derivation \"%s\" is not supported (only scrypt)",
                           what, kname);
    if (strcmp(cname, "nacl/secretbox"))
        return sub_err_set(e, -EBADMSG, "%s: cipher \"%s\" is not supported (only nacl/secretbox)",
                           what, cname);
    if (N < 2 || N > (1 << 22) || (N & (N - 1)) || rr < 1 || rr > 64 || p < 1 || p > 16)
        return sub_err_set(e, -EBADMSG,
                           "%s: scrypt parameters N=%lld r=%lld p=%lld are out of range (N a power "
                           "of two up to 2^22, r 1 to 64, p 1 to 16; cosign uses N=32768 r=8 p=1)",
                           what, (long long)N, (long long)rr, (long long)p);
    /* in range above, so these products cannot overflow */
    uint64_t mem = (uint64_t)128 * (uint64_t)N * (uint64_t)rr, work = mem * (uint64_t)p;
    if (mem > SCRYPT_MAX_MEM || work > SCRYPT_MAX_WORK)
        return sub_err_set(e, -EBADMSG,
                           "%s: scrypt parameters N=%lld r=%lld p=%lld ask for %llu MiB of %s "
                           "(128*N*r%s), more than the %llu MiB allowed; refused before deriving "
                           "anything (cosign uses N=32768 r=8 p=1: 32 MiB); re-encrypt the key with "
                           "`cosign generate-key-pair` or `substrate key generate` parameters",
                           what, (long long)N, (long long)rr, (long long)p,
                           (unsigned long long)((mem > SCRYPT_MAX_MEM ? mem : work) >> 20),
                           mem > SCRYPT_MAX_MEM ? "memory" : "work",
                           mem > SCRYPT_MAX_MEM ? "" : "*p",
                           (unsigned long long)((mem > SCRYPT_MAX_MEM ? SCRYPT_MAX_MEM
                                                                      : SCRYPT_MAX_WORK) >> 20));
    _cleanup_free_ unsigned char *salt = NULL, *nonce = NULL, *ct = NULL;
    size_t saltlen, noncelen, ctlen;
    if ((r = get_b64(kdf, wkdf, "salt", &salt, &saltlen, e)) < 0 ||
        (r = get_b64(cipher, wcip, "nonce", &nonce, &noncelen, e)) < 0 ||
        (r = get_b64(j, what, "ciphertext", &ct, &ctlen, e)) < 0)
        return r;
    if (saltlen < 8 || saltlen > 1024)
        return sub_err_set(e, -EBADMSG, "%s: the scrypt salt is %zu bytes (expected 8 to 1024)",
                           what, saltlen);
    if (noncelen != crypto_secretbox_NONCEBYTES)
        return sub_err_set(e, -EBADMSG, "%s: the secretbox nonce is %zu bytes, not %d", what,
                           noncelen, crypto_secretbox_NONCEBYTES);
    if (ctlen <= crypto_secretbox_MACBYTES)
        return sub_err_set(e, -EBADMSG, "%s: the ciphertext is too short (%zu bytes)", what, ctlen);

    unsigned char key[KEY_LEN];
    r = derive(pass, passlen, salt, saltlen, (uint64_t)N, (uint32_t)rr, (uint32_t)p, key, e);
    if (r < 0) {
        sodium_memzero(key, sizeof key);
        return r;
    }
    size_t derlen = ctlen - crypto_secretbox_MACBYTES;
    unsigned char *der = xmalloc(derlen);
    int open_ok = crypto_secretbox_open_easy(der, ct, ctlen, nonce, key) == 0;
    sodium_memzero(key, sizeof key);
    if (!open_ok) {
        sub_secret_free(der, derlen);
        return sub_err_setr(e, SUB_R_WRONG_PASSPHRASE, SUB_KIND_INPUT, -EKEYREJECTED,
                            "cannot decrypt %s: wrong passphrase (the secretbox did not open; "
                            "or the key file was altered)",
                            what);
    }
    r = sub_privkey_from_pkcs8(der, derlen, out, e);
    sub_secret_free(der, derlen);
    if (r < 0) sub_err_prefix(e, "%s", what);
    return r;
}

int sub_privkey_load_file(const char *path, const char *pass, size_t passlen, sub_privkey **out,
                          sub_err *e) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_SIGN_MAX_KEYFILE, &data, &len, e);
    if (r < 0) return sub_sign_file_error(r, e);
    return sub_privkey_decrypt(data, len, pass, passlen, path, out, e);
}

int sub_key_files_absent(const char *prefix, sub_err *e) {
    _cleanup_free_ char *keyp = xasprintf("%s.key", prefix);
    _cleanup_free_ char *pubp = xasprintf("%s.pub", prefix);
    bool hk = sub_path_exists(keyp), hp = sub_path_exists(pubp);
    if (!hk && !hp) return 0;
    return sub_err_setk(e, SUB_KIND_INPUT, -EEXIST,
                        "%s%s%s already exist%s; refusing to overwrite (move %s away or choose "
                        "another prefix)",
                        hk ? keyp : "", hk && hp ? " and " : "", hp ? pubp : "",
                        hk && hp ? "" : "s", hk && hp ? "them" : "it");
}

int sub_key_generate_files(const char *prefix, const char *pass, size_t passlen,
                           char id_out[SUB_DIGEST_MAX], sub_err *e) {
    if (!prefix || !*prefix) return sub_err_set(e, -EINVAL, "empty key prefix");
    int r = sub_key_files_absent(prefix, e);
    if (r < 0) return r;
    _cleanup_free_ char *keyp = xasprintf("%s.key", prefix);
    _cleanup_free_ char *pubp = xasprintf("%s.pub", prefix);
    _cleanup_privkey_ sub_privkey *k = NULL;
    r = sub_privkey_generate(&k, e);
    if (r < 0) return r;
    _cleanup_free_ char *keypem = NULL;
    r = sub_privkey_encrypt(k, pass, passlen, &keypem, e);
    if (r < 0) return r;
    /* Never write a key that cannot be read back with this passphrase. */
    _cleanup_privkey_ sub_privkey *back = NULL;
    r = sub_privkey_decrypt(keypem, strlen(keypem), pass, passlen, keyp, &back, e);
    if (r < 0) return r;
    if (strcmp(sub_privkey_id(back), sub_privkey_id(k)))
        return sub_err_set(e, -EIO, "internal error: the encrypted key does not round-trip");
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    r = sub_privkey_public(k, &pub, e);
    if (r < 0) return r;
    _cleanup_free_ char *pubpem = sub_pubkey_to_pem(pub);

    r = sub_write_file_new(keyp, keypem, strlen(keypem), 0600, e);
    if (r < 0) return r;
    r = sub_write_file_new(pubp, pubpem, strlen(pubpem), 0644, e);
    if (r < 0) {
        unlink(keyp);
        return r;
    }
    if (id_out) memcpy(id_out, sub_privkey_id(k), SUB_DIGEST_MAX);
    return 0;
}
