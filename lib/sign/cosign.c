/* Cosign signatures: sign payload bytes, verify them against trusted keys
 * plus the payload's image digest and identity, and record every check. */
#include "sign-internal.h"
#include "substrate/json.h"
#include "substrate/strbuf.h"
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <string.h>

/* Order n of the P-256 group: r and s must lie in [1, n-1]. */
#define P256_ORDER_HEX "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"
#define P256_SIG_MAX 72 /* SEQUENCE of two INTEGERs of at most 33 bytes */

bool sign_verify_der(EVP_PKEY *pkey, const unsigned char *sig, size_t siglen, const void *data,
                     size_t len) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestVerify(c, sig, siglen, data, len) == 1;
    EVP_MD_CTX_free(c);
    ERR_clear_error();
    return ok;
}

int sub_cosign_sign(const sub_privkey *k, const void *payload, size_t len, char **sig_b64,
                    sub_err *e) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char sig[P256_SIG_MAX + 8];
    size_t siglen = sizeof sig;
    int ok = c && EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestSign(c, sig, &siglen, payload, len) == 1;
    EVP_MD_CTX_free(c);
    if (!ok) return sub_err_ssl(e, -EIO, "signing with key %s failed", k->id);
    /* A fault while signing must not leave with a bad signature. */
    if (!sign_verify_der(k->pkey, sig, siglen, payload, len))
        return sub_err_set(e, -EIO, "internal error: the new signature by key %s does not verify",
                           k->id);
    *sig_b64 = sub_b64_encode(sig, siglen);
    return 0;
}

int sub_cosign_sign_image(const sub_privkey *k, const char *reference, const char *digest,
                          char **payload, size_t *payload_len, char **sig_b64, sub_err *e) {
    _cleanup_free_ char *p = NULL;
    size_t plen = 0;
    int r = sub_cosign_payload_build(reference, digest, &p, &plen, e);
    if (r < 0) return r;
    r = sub_cosign_sign(k, p, plen, sig_b64, e);
    if (r < 0) return r;
    *payload = TAKE_PTR(p);
    if (payload_len) *payload_len = plen;
    return 0;
}

int sub_cosign_sig_tag(const char *image_digest, char **tag, sub_err *e) {
    int r = sub_digest_validate(image_digest, e);
    if (r < 0) return r;
    const char *colon = strchr(image_digest, ':');
    *tag = xasprintf("%.*s-%s.sig", (int)(colon - image_digest), image_digest, colon + 1);
    return 0;
}

/* Strict DER ECDSA-Sig-Value with r, s in range. Returns 0, or -EBADMSG
 * with `why` filled. */
int sign_check_sig_der(const unsigned char *der, size_t len, char *why, size_t whylen) {
    if (len < 8 || len > P256_SIG_MAX) {
        snprintf(why, whylen, "%zu bytes is not the size of a P-256 DER signature (8 to %d)", len,
                 P256_SIG_MAX);
        return -EBADMSG;
    }
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    ERR_clear_error();
    if (!s) {
        snprintf(why, whylen, "not an ASN.1 DER ECDSA signature (SEQUENCE of two INTEGERs)");
        return -EBADMSG;
    }
    int r = 0;
    unsigned char *re = NULL;
    int relen = i2d_ECDSA_SIG(s, &re);
    if (p != der + len) {
        snprintf(why, whylen, "%zu unexpected bytes after the DER signature",
                 (size_t)(der + len - p));
        r = -EBADMSG;
    } else if (relen != (int)len || memcmp(re, der, len)) {
        snprintf(why, whylen, "the signature is BER, not canonical DER");
        r = -EBADMSG;
    } else {
        const BIGNUM *br, *bs;
        ECDSA_SIG_get0(s, &br, &bs);
        BIGNUM *n = NULL;
        if (!BN_hex2bn(&n, P256_ORDER_HEX)) abort();
        if (BN_is_zero(br) || BN_is_negative(br) || BN_cmp(br, n) >= 0 || BN_is_zero(bs) ||
            BN_is_negative(bs) || BN_cmp(bs, n) >= 0) {
            snprintf(why, whylen, "r or s is outside [1, n-1] for P-256");
            r = -EBADMSG;
        }
        BN_free(n);
    }
    OPENSSL_free(re);
    ECDSA_SIG_free(s);
    return r;
}

const char *sub_identity_policy_name(sub_identity_policy p) {
    switch (p) {
    case SUB_IDENTITY_EXACT: return "exact";
    case SUB_IDENTITY_REPO_PREFIX: return "repo-prefix";
    case SUB_IDENTITY_ANY_REPO: return "any-repo";
    }
    return "?";
}

const char *sub_check_result_name(sub_check_result c) {
    switch (c) {
    case SUB_CHECK_NOT_RUN: return "not-run";
    case SUB_CHECK_PASS: return "pass";
    case SUB_CHECK_FAIL: return "fail";
    case SUB_CHECK_SKIPPED: return "skipped";
    }
    return "?";
}

const char *sub_verify_failure_name(sub_verify_failure f) {
    switch (f) {
    case SUB_VERIFY_OK: return "none";
    case SUB_VERIFY_MALFORMED_SIGNATURE: return "malformed-signature";
    case SUB_VERIFY_NO_KEY_MATCHED: return "no-key-matched";
    case SUB_VERIFY_MALFORMED_PAYLOAD: return "malformed-payload";
    case SUB_VERIFY_DIGEST_MISMATCH: return "digest-mismatch";
    case SUB_VERIFY_IDENTITY_MISMATCH: return "identity-mismatch";
    case SUB_VERIFY_LAYER_MISMATCH: return "layer-digest-mismatch";
    }
    return "?";
}

sub_reason sub_verify_failure_reason(sub_verify_failure f) {
    switch (f) {
    case SUB_VERIFY_OK: return SUB_R_NONE;
    case SUB_VERIFY_MALFORMED_SIGNATURE: return SUB_R_MALFORMED_SIGNATURE;
    case SUB_VERIFY_NO_KEY_MATCHED: return SUB_R_NO_TRUSTED_KEY;
    case SUB_VERIFY_MALFORMED_PAYLOAD: return SUB_R_MALFORMED_PAYLOAD;
    case SUB_VERIFY_DIGEST_MISMATCH: return SUB_R_DIGEST_MISMATCH;
    case SUB_VERIFY_IDENTITY_MISMATCH: return SUB_R_IDENTITY_MISMATCH;
    case SUB_VERIFY_LAYER_MISMATCH: return SUB_R_LAYER_MISMATCH;
    }
    return SUB_R_NONE;
}

static int refuse(sub_verify_record *rec, sub_err *e, sub_verify_failure f, const char *fmt, ...)
    _printf_(4, 5);
static int refuse(sub_verify_record *rec, sub_err *e, sub_verify_failure f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rec->reason, sizeof rec->reason, fmt, ap);
    va_end(ap);
    rec->failure = f;
    rec->verified = false;
    return sub_err_setr(e, sub_verify_failure_reason(f), SUB_KIND_CHECK, -EKEYREJECTED, "%s",
                        rec->reason);
}

static void record_init(sub_verify_record *rec, sub_identity_policy policy,
                        const char *expected_digest, const char *identity) {
    sub_check_result layer = rec->layer;
    char layer_digest[SUB_DIGEST_MAX];
    memcpy(layer_digest, rec->layer_digest, sizeof layer_digest);
    memset(rec, 0, sizeof *rec);
    rec->layer = layer;
    memcpy(rec->layer_digest, layer_digest, sizeof layer_digest);
    rec->policy = policy;
    snprintf(rec->expected_digest, sizeof rec->expected_digest, "%s",
             expected_digest ? expected_digest : "");
    snprintf(rec->expected_identity, sizeof rec->expected_identity, "%s", identity ? identity : "");
}

static char *key_list(const sub_pubkey *const *keys, size_t nkeys) {
    sub_buf b = SUB_BUF_INIT;
    for (size_t i = 0; i < nkeys && i < 4; i++) sub_buf_printf(&b, "%s%s", i ? ", " : "", keys[i]->id);
    if (nkeys > 4) sub_buf_printf(&b, " and %zu more", nkeys - 4);
    return sub_buf_detach(&b, NULL);
}

static bool identity_matches(const char *have, const char *want, sub_identity_policy policy) {
    if (policy == SUB_IDENTITY_EXACT) return strcmp(have, want) == 0;
    size_t n = strlen(want);
    while (n && want[n - 1] == '/') n--;
    return strncmp(have, want, n) == 0 && (have[n] == 0 || have[n] == '/');
}

static int verify(const sub_pubkey *const *keys, size_t nkeys, const void *payload, size_t len,
                  const char *sig_b64, const char *expected_digest, const char *identity,
                  sub_identity_policy policy, sub_verify_record *rec, sub_err *e) {
    record_init(rec, policy, expected_digest, identity);
    if (!keys || nkeys == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "no trusted public keys to verify with: pass --key FILE.pub or put "
                            ".pub files in the trust directory");
    if (!payload || !sig_b64)
        return sub_err_set(e, -EINVAL, "verify: the payload and the signature are required");
    int r = sub_digest_validate(expected_digest, e);
    if (r < 0) {
        sub_err_prefix(e, "the image digest to verify against");
        return r;
    }
    if (policy != SUB_IDENTITY_ANY_REPO && (!identity || !*identity))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "an identity (the repository the image comes from) is required with "
                            "the %s policy",
                            sub_identity_policy_name(policy));
    r = sub_sha256_buf(payload, len, rec->payload_sha256, e);
    if (r < 0) return r;

    /* 1. the signature itself */
    _cleanup_free_ unsigned char *der = NULL;
    size_t derlen = 0;
    sub_err be = {0};
    if (sub_b64_decode(sig_b64, strlen(sig_b64), NULL, "the signature", &der, &derlen, &be) < 0) {
        rec->signature = SUB_CHECK_FAIL;
        return refuse(rec, e, SUB_VERIFY_MALFORMED_SIGNATURE, "malformed signature: %s", be.msg);
    }
    char why[256];
    if (sign_check_sig_der(der, derlen, why, sizeof why) < 0) {
        rec->signature = SUB_CHECK_FAIL;
        return refuse(rec, e, SUB_VERIFY_MALFORMED_SIGNATURE, "malformed signature: %s", why);
    }
    const sub_pubkey *by = NULL;
    for (size_t i = 0; i < nkeys && !by; i++) {
        rec->keys_tried++;
        if (sign_verify_der(keys[i]->pkey, der, derlen, payload, len)) by = keys[i];
    }
    if (!by) {
        rec->signature = SUB_CHECK_FAIL;
        _cleanup_free_ char *ids = key_list(keys, nkeys);
        return refuse(rec, e, SUB_VERIFY_NO_KEY_MATCHED,
                      "no trusted key matched: the signature does not verify over these payload "
                      "bytes (%s) with %s %s; it was made by another key, or the signature or the "
                      "payload was altered",
                      rec->payload_sha256, nkeys == 1 ? "key" : "any of the keys", ids);
    }
    rec->signature = SUB_CHECK_PASS;
    snprintf(rec->key_id, sizeof rec->key_id, "%s", by->id);
    snprintf(rec->key_source, sizeof rec->key_source, "%s", by->source);

    /* 2. what it signs: only now is the payload trusted enough to read */
    _cleanup_payload_ sub_cosign_payload pl = {0};
    sub_err pe = {0};
    if (sub_cosign_payload_parse(payload, len, &pl, &pe) < 0)
        return refuse(rec, e, SUB_VERIFY_MALFORMED_PAYLOAD,
                      "malformed payload: the signature by key %s is valid, but the payload is "
                      "not a cosign simple-signing payload: %s",
                      by->id, pe.msg);
    snprintf(rec->payload_digest, sizeof rec->payload_digest, "%s", pl.manifest_digest);
    snprintf(rec->payload_reference, sizeof rec->payload_reference, "%s", pl.docker_reference);
    if (strcmp(pl.manifest_digest, expected_digest)) {
        rec->digest = SUB_CHECK_FAIL;
        return refuse(rec, e, SUB_VERIFY_DIGEST_MISMATCH,
                      "digest mismatch: the signature by key %s is valid, but its payload names "
                      "image %s and the image is %s: this signature is for another image",
                      by->id, pl.manifest_digest, expected_digest);
    }
    rec->digest = SUB_CHECK_PASS;

    /* 3. for which repository */
    if (policy == SUB_IDENTITY_ANY_REPO) {
        rec->identity = SUB_CHECK_SKIPPED;
    } else if (!identity_matches(pl.docker_reference, identity, policy)) {
        rec->identity = SUB_CHECK_FAIL;
        return refuse(rec, e, SUB_VERIFY_IDENTITY_MISMATCH,
                      "identity mismatch: the signature by key %s is valid for image %s, but it "
                      "was made for repository \"%s\", not %s\"%s\" (compared as written; for a "
                      "signature copied to a mirror use the any-repo policy)",
                      by->id, pl.manifest_digest, pl.docker_reference,
                      policy == SUB_IDENTITY_REPO_PREFIX ? "under " : "", identity);
    } else {
        rec->identity = SUB_CHECK_PASS;
    }
    rec->verified = true;
    rec->failure = SUB_VERIFY_OK;
    return 0;
}

int sub_cosign_verify(const sub_pubkey *const *keys, size_t nkeys, const void *payload,
                      size_t len, const char *sig_b64, const char *expected_digest,
                      const char *identity, sub_identity_policy policy, sub_verify_record *rec,
                      sub_err *e) {
    sub_verify_record local;
    if (!rec) rec = &local;
    rec->layer = SUB_CHECK_SKIPPED;
    rec->layer_digest[0] = 0;
    return verify(keys, nkeys, payload, len, sig_b64, expected_digest, identity, policy, rec, e);
}

int sub_cosign_check_layer(const void *payload, size_t len, const char *layer_digest, sub_err *e) {
    int r = sub_digest_validate(layer_digest, e);
    if (r < 0) {
        sub_err_prefix(e, "the signature layer digest");
        return r;
    }
    char have[SUB_DIGEST_MAX];
    r = sub_sha256_buf(payload, len, have, e);
    if (r < 0) return r;
    if (strcmp(have, layer_digest))
        return sub_err_setr(e, SUB_R_LAYER_MISMATCH, SUB_KIND_CHECK, -EKEYREJECTED,
                            "layer digest mismatch: the signature layer is %s but the payload "
                            "bytes hash to %s",
                            layer_digest, have);
    return 0;
}

int sub_cosign_verify_layer(const sub_pubkey *const *keys, size_t nkeys, const char *layer_digest,
                            const void *payload, size_t len, const char *sig_b64,
                            const char *expected_digest, const char *identity,
                            sub_identity_policy policy, sub_verify_record *rec, sub_err *e) {
    sub_verify_record local;
    if (!rec) rec = &local;
    rec->layer = SUB_CHECK_NOT_RUN;
    snprintf(rec->layer_digest, sizeof rec->layer_digest, "%s", layer_digest ? layer_digest : "");
    sub_err le = {0};
    int r = sub_cosign_check_layer(payload, len, layer_digest, &le);
    if (r == -EKEYREJECTED) {
        record_init(rec, policy, expected_digest, identity);
        rec->layer = SUB_CHECK_FAIL;
        sub_sha256_buf(payload, len, rec->payload_sha256, NULL);
        return refuse(rec, e, SUB_VERIFY_LAYER_MISMATCH, "%s", le.msg);
    }
    if (r < 0) {
        if (e) *e = le;
        return r;
    }
    rec->layer = SUB_CHECK_PASS;
    return verify(keys, nkeys, payload, len, sig_b64, expected_digest, identity, policy, rec, e);
}

static json_t *str_or_null(const char *s) { return s && *s ? sub_json_str(s) : json_null(); }

static json_t *check(const char *name, sub_check_result result) {
    json_t *c = json_object();
    json_object_set_new(c, "check", json_string(name));
    json_object_set_new(c, "result", json_string(sub_check_result_name(result)));
    return c;
}

/* Output only: every string goes through sub_json_str (a reason can quote a
 * registry's bytes), so building the document cannot fail. */
json_t *sub_verify_record_json(const sub_verify_record *rec) {
    json_t *checks = json_array(), *c;
    if (rec->layer != SUB_CHECK_SKIPPED) {
        c = check("layer", rec->layer);
        json_object_set_new(c, "expected", str_or_null(rec->layer_digest));
        json_object_set_new(c, "payload", str_or_null(rec->payload_sha256));
        json_array_append_new(checks, c);
    }
    c = check("signature", rec->signature);
    json_object_set_new(c, "key", str_or_null(rec->key_id));
    json_object_set_new(c, "keys_tried", json_integer((json_int_t)rec->keys_tried));
    json_array_append_new(checks, c);
    c = check("digest", rec->digest);
    json_object_set_new(c, "expected", str_or_null(rec->expected_digest));
    json_object_set_new(c, "payload", str_or_null(rec->payload_digest));
    json_array_append_new(checks, c);
    c = check("identity", rec->identity);
    json_object_set_new(c, "policy", json_string(sub_identity_policy_name(rec->policy)));
    json_object_set_new(c, "expected", str_or_null(rec->expected_identity));
    json_object_set_new(c, "payload", str_or_null(rec->payload_reference));
    json_array_append_new(checks, c);
    json_t *key = json_null();
    if (rec->key_id[0]) {
        key = json_object();
        json_object_set_new(key, "id", sub_json_str(rec->key_id));
        json_object_set_new(key, "source", str_or_null(rec->key_source));
    }
    /* the payload's critical.image.docker-manifest-digest and
     * critical.identity.docker-reference, named as elsewhere in our output */
    json_t *payload = json_object();
    json_object_set_new(payload, "sha256", str_or_null(rec->payload_sha256));
    json_object_set_new(payload, "digest", str_or_null(rec->payload_digest));
    json_object_set_new(payload, "identity", str_or_null(rec->payload_reference));
    json_t *j = json_object();
    json_object_set_new(j, "verified", json_boolean(rec->verified));
    json_object_set_new(j, "failure", rec->verified ? json_null()
                                                    : json_string(sub_verify_failure_name(rec->failure)));
    json_object_set_new(
        j, "reason",
        rec->verified ? json_null()
                      : json_string(sub_reason_to_string(sub_verify_failure_reason(rec->failure))));
    json_object_set_new(j, "message", str_or_null(rec->reason));
    json_object_set_new(j, "layer", str_or_null(rec->layer_digest));
    json_object_set_new(j, "key", key);
    json_object_set_new(j, "checks", checks);
    json_object_set_new(j, "payload", payload);
    return j;
}
