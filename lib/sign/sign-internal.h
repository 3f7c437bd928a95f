/* Private to lib/sign: the key structs and shared helpers. */
#pragma once
#include "substrate/sign.h"
#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>

struct sub_pubkey {
    EVP_PKEY *pkey; /* public only */
    char id[SUB_DIGEST_MAX];
    char *source; /* never NULL ("" when unknown) */
};

struct sub_privkey {
    EVP_PKEY *pkey; /* key pair */
    char id[SUB_DIGEST_MAX];
};

/* sodium_init() once; -EIO (error set) when libsodium cannot start. */
int sign_sodium_init(sub_err *e);

/* The first PEM block in text: its label (caller frees) and decoded body
 * (caller frees; sub_secret_free it when secret). Text before the block is
 * ignored; anything but whitespace after it is an error. PEM headers
 * ("Proc-Type: ...") are refused. `what` names the input. */
int sign_pem_decode(const char *text, size_t len, const char *what, char **label,
                    unsigned char **der, size_t *derlen, sub_err *e);
/* "-----BEGIN label-----\n" + base64 in 64-column lines + END line. */
char *sign_pem_encode(const char *label, const void *der, size_t len);

/* The key must be EC on P-256; error names `what`. */
int sign_check_p256(EVP_PKEY *pkey, const char *what, sub_err *e);
/* "sha256:<hex>" of the SPKI DER of pkey's public half. */
int sign_key_id(EVP_PKEY *pkey, char out[SUB_DIGEST_MAX], sub_err *e);
/* Wrap an EVP_PKEY (takes ownership, also on failure). */
int sign_pubkey_wrap(EVP_PKEY *pkey, const char *source, sub_pubkey **out, sub_err *e);


/* ECDSA P-256 / SHA-256: does sig (DER) verify over data with pkey? */
bool sign_verify_der(EVP_PKEY *pkey, const unsigned char *sig, size_t siglen, const void *data,
                     size_t len);
/* Strict DER ECDSA-Sig-Value with r, s in [1, n-1]: 0, or -EBADMSG with `why`. */
int sign_check_sig_der(const unsigned char *der, size_t len, char *why, size_t whylen);

/* Add one layer (a descriptor object; stolen) to the cosign-style artifact
 * manifest `existing` (or a new one when NULL), keeping existing layers, and
 * build the matching cosign config. See sub_cosign_artifact_add(). */
int sign_artifact_add_layer(const char *existing, size_t existing_len, json_t *layer,
                            char **manifest, size_t *manifest_len, char **config,
                            size_t *config_len, sub_err *e);

/* Before replacing an artifact tag read as old_digest ("" = absent): 0 when it
 * still is, else -EAGAIN (env class) naming `what` ("signatures"). */
struct sub_reg;
int sign_tag_unchanged(struct sub_reg *r, const char *repo, const char *tag,
                       const char *old_digest, const char *what, const char *image_digest,
                       sub_err *e);

/* A verified in-toto statement (body, len): in-toto v1, SLSA provenance v1,
 * a subject naming image_digest; fills res (commit, source, spec, command,
 * statement). -EKEYREJECTED (check class) with the reason otherwise. */
struct sub_attest_result;
int sign_check_statement(const char *body, size_t len, const char *image_digest,
                         struct sub_attest_result *res, sub_err *e);
