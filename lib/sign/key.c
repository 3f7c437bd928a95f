/* ECDSA P-256 keys: generation, PKCS#8 / SPKI encoding, key ids. */
#include "sign-internal.h"
#include "substrate/fs.h"
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/x509.h>
#include <string.h>

int sign_check_p256(EVP_PKEY *pkey, const char *what, sub_err *e) {
    if (!EVP_PKEY_is_a(pkey, "EC"))
        return sub_err_set(e, -EBADMSG,
                           "%s is a %s key; cosign-format signing here uses ECDSA P-256 keys only "
                           "(make one with `substrate key generate`)",
                           what, EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "non-EC");
    char group[64] = "";
    size_t n = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &n) != 1)
        return sub_err_ssl(e, -EBADMSG, "%s: cannot read the key's elliptic curve", what);
    if (strcmp(group, "prime256v1") && strcmp(group, "P-256"))
        return sub_err_set(e, -EBADMSG,
                           "%s is an EC key on curve %s; only P-256 (prime256v1) is supported", what,
                           group);
    /* The curve must be named, not spelled out: the SPKI DER (hence the key
     * id) of the same key with explicit parameters differs, so one key would
     * have two ids and `key untrust <id>` could leave it trusted. cosign (Go's
     * x509) refuses explicit parameters too. */
    char enc[32] = "";
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof enc, &n) != 1)
        return sub_err_ssl(e, -EBADMSG, "%s: cannot read how the key's curve is encoded", what);
    if (strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP))
        return sub_err_set(e, -EBADMSG,
                           "%s is a P-256 key with explicit curve parameters (encoding \"%s\"), not "
                           "the named curve; such keys are refused (cosign refuses them, and the "
                           "same key would get another key id); re-encode it with the curve named, "
                           "e.g. `openssl ec -pubin -in FILE.pub -param_enc named_curve -pubout -out "
                           "NEW.pub`",
                           what, enc);
    return 0;
}

static int spki_der(EVP_PKEY *pkey, unsigned char **der, size_t *len, sub_err *e) {
    unsigned char *buf = NULL;
    int n = i2d_PUBKEY(pkey, &buf);
    if (n <= 0) return sub_err_ssl(e, -EIO, "cannot encode the public key (SPKI DER)");
    *der = buf;
    *len = (size_t)n;
    return 0;
}

int sign_key_id(EVP_PKEY *pkey, char out[SUB_DIGEST_MAX], sub_err *e) {
    unsigned char *der = NULL;
    size_t len = 0;
    int r = spki_der(pkey, &der, &len, e);
    if (r < 0) return r;
    r = sub_sha256_buf(der, len, out, e);
    OPENSSL_free(der);
    return r;
}

int sign_pubkey_wrap(EVP_PKEY *pkey, const char *source, sub_pubkey **out, sub_err *e) {
    sub_pubkey *k = xcalloc(1, sizeof *k);
    k->pkey = pkey;
    k->source = xstrdup(source ? source : "");
    int r = sign_key_id(pkey, k->id, e);
    if (r < 0) {
        sub_pubkey_free(k);
        return r;
    }
    *out = k;
    return 0;
}

/* SPKI DER -> validated P-256 public key. */
static int pubkey_from_spki(const unsigned char *der, size_t len, const char *what,
                            EVP_PKEY **out, sub_err *e) {
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (!pkey)
        return sub_err_ssl(e, -EBADMSG, "%s: not a valid SubjectPublicKeyInfo public key", what);
    int r = 0;
    if (p != der + len)
        r = sub_err_set(e, -EBADMSG, "%s: %zu unexpected bytes after the public key", what,
                        (size_t)(der + len - p));
    if (r == 0) r = sign_check_p256(pkey, what, e);
    if (r == 0) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!c || EVP_PKEY_public_check(c) != 1)
            r = sub_err_ssl(e, -EBADMSG, "%s: the public key is not a valid P-256 point", what);
        EVP_PKEY_CTX_free(c);
    }
    if (r < 0) {
        EVP_PKEY_free(pkey);
        return r;
    }
    *out = pkey;
    return 0;
}

int sub_pubkey_from_pem(const char *pem, size_t len, const char *source, sub_pubkey **out,
                        sub_err *e) {
    const char *what = source && *source ? source : "public key";
    _cleanup_free_ char *label = NULL;
    _cleanup_free_ unsigned char *der = NULL;
    size_t derlen = 0;
    int r = sign_pem_decode(pem, len, what, &label, &der, &derlen, e);
    if (r < 0) return r;
    if (strcmp(label, "PUBLIC KEY")) {
        if (strstr(label, "PRIVATE KEY")) {
            sub_secret_free(TAKE_PTR(der), derlen);
            return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                                "%s holds a private key (PEM \"%s\"), not a public key: pass the "
                                ".pub file",
                                what, label);
        }
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                            "%s is PEM \"%s\", not a public key (\"PUBLIC KEY\")", what, label);
    }
    EVP_PKEY *pkey = NULL;
    r = pubkey_from_spki(der, derlen, what, &pkey, e);
    if (r < 0) return r;
    return sign_pubkey_wrap(pkey, source, out, e);
}

int sub_pubkey_load_file(const char *path, sub_pubkey **out, sub_err *e) {
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_SIGN_MAX_KEYFILE, &data, &len, e);
    if (r < 0) return sub_sign_file_error(r, e);
    return sub_pubkey_from_pem(data, len, path, out, e);
}

void sub_pubkey_free(sub_pubkey *k) {
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    free(k->source);
    free(k);
}

void sub_pubkeys_free(sub_pubkey **v) {
    if (!v) return;
    for (sub_pubkey **p = v; *p; p++) sub_pubkey_free(*p);
    free(v);
}

const char *sub_pubkey_id(const sub_pubkey *k) { return k->id; }
const char *sub_pubkey_source(const sub_pubkey *k) { return k->source; }

char *sub_pubkey_to_pem(const sub_pubkey *k) {
    unsigned char *der = NULL;
    size_t len = 0;
    if (spki_der(k->pkey, &der, &len, NULL) < 0) abort(); /* a loaded key always encodes */
    char *pem = sign_pem_encode("PUBLIC KEY", der, len);
    OPENSSL_free(der);
    return pem;
}

static int privkey_wrap(EVP_PKEY *pkey, sub_privkey **out, sub_err *e) {
    sub_privkey *k = xcalloc(1, sizeof *k);
    k->pkey = pkey;
    int r = sign_key_id(pkey, k->id, e);
    if (r < 0) {
        sub_privkey_free(k);
        return r;
    }
    *out = k;
    return 0;
}

int sub_privkey_generate(sub_privkey **out, sub_err *e) {
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pkey) return sub_err_ssl(e, -EIO, "cannot generate an ECDSA P-256 key");
    return privkey_wrap(pkey, out, e);
}

void sub_privkey_free(sub_privkey *k) {
    if (!k) return;
    EVP_PKEY_free(k->pkey); /* OpenSSL clears the private scalar */
    free(k);
}

const char *sub_privkey_id(const sub_privkey *k) { return k->id; }

int sub_privkey_public(const sub_privkey *k, sub_pubkey **out, sub_err *e) {
    unsigned char *der = NULL;
    size_t len = 0;
    int r = spki_der(k->pkey, &der, &len, e);
    if (r < 0) return r;
    EVP_PKEY *pub = NULL;
    r = pubkey_from_spki(der, len, "public half of the private key", &pub, e);
    OPENSSL_free(der);
    if (r < 0) return r;
    return sign_pubkey_wrap(pub, NULL, out, e);
}

int sub_privkey_pkcs8(const sub_privkey *k, unsigned char **der, size_t *len, sub_err *e) {
    OSSL_ENCODER_CTX *c =
        OSSL_ENCODER_CTX_new_for_pkey(k->pkey, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", NULL);
    unsigned char *buf = NULL;
    size_t n = 0;
    int ok = c && OSSL_ENCODER_CTX_get_num_encoders(c) > 0 && OSSL_ENCODER_to_data(c, &buf, &n);
    OSSL_ENCODER_CTX_free(c);
    if (!ok) return sub_err_ssl(e, -EIO, "cannot encode the private key as PKCS#8");
    unsigned char *copy = xmalloc(n);
    memcpy(copy, buf, n);
    OPENSSL_clear_free(buf, n);
    *der = copy;
    *len = n;
    return 0;
}

int sub_privkey_from_pkcs8(const unsigned char *der, size_t len, sub_privkey **out, sub_err *e) {
    EVP_PKEY *pkey = NULL;
    OSSL_DECODER_CTX *c = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", "PrivateKeyInfo", NULL,
                                                        EVP_PKEY_KEYPAIR, NULL, NULL);
    const unsigned char *p = der;
    size_t left = len;
    int ok = c && OSSL_DECODER_from_data(c, &p, &left) == 1;
    OSSL_DECODER_CTX_free(c);
    if (!ok || !pkey) {
        EVP_PKEY_free(pkey);
        return sub_err_ssl(e, -EBADMSG, "the decrypted private key is not valid PKCS#8");
    }
    int r = 0;
    if (left != 0)
        r = sub_err_set(e, -EBADMSG, "%zu unexpected bytes after the PKCS#8 private key", left);
    if (r == 0) r = sign_check_p256(pkey, "the private key", e);
    if (r == 0) {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!pc || EVP_PKEY_pairwise_check(pc) != 1)
            r = sub_err_ssl(e, -EBADMSG,
                            "the private key is inconsistent (its public part does not match)");
        EVP_PKEY_CTX_free(pc);
    }
    if (r < 0) {
        EVP_PKEY_free(pkey);
        return r;
    }
    return privkey_wrap(pkey, out, e);
}
