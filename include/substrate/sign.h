/* Cosign-compatible signing: keys, simple-signing payloads, signatures and
 * offline verification (ECDSA P-256 over SHA-256, OpenSSL 3 EVP; libsodium
 * for scrypt + nacl/secretbox of the encrypted private key).
 *
 * Formats (interoperable with cosign and containers/image):
 *   public key   PEM "PUBLIC KEY" (SPKI DER of an ECDSA P-256 key)
 *   private key  PEM "ENCRYPTED SIGSTORE PRIVATE KEY" (older cosign:
 *                "ENCRYPTED COSIGN PRIVATE KEY"), body = base64 of
 *                {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":<b64>},
 *                 "cipher":{"name":"nacl/secretbox","nonce":<b64>},"ciphertext":<b64>}
 *                with key = scrypt(passphrase, salt, N, r, p, 32) and
 *                ciphertext = secretbox(PKCS#8 DER of the private key).
 *   payload      {"critical":{"identity":{"docker-reference":R},"image":
 *                 {"docker-manifest-digest":D},"type":"cosign container image signature"},
 *                 "optional":null}
 *   signature    base64 of the ASN.1 DER ECDSA signature over the payload
 *                bytes; the value of annotation dev.cosignproject.cosign/signature.
 *
 * Key id: "sha256:<hex>" of the SPKI DER of the public key; every message
 * that names a key shows it.
 *
 * Ownership: sub_pubkey / sub_privkey are opaque and freed with their _free
 * functions (private key material is wiped by OpenSSL on free). Strings
 * returned through char ** are the caller's to free(); buffers documented as
 * secret must be released with sub_secret_free(). Secrets held here
 * (passphrases, derived keys, decrypted DER) are wiped after use. */
#pragma once
#include "digest.h"
#include "error.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SUB_COSIGN_PAYLOAD_TYPE "cosign container image signature"
#define SUB_MT_COSIGN_SIMPLESIGNING "application/vnd.dev.cosign.simplesigning.v1+json"
#define SUB_COSIGN_SIG_ANNOTATION "dev.cosignproject.cosign/signature"
#define SUB_COSIGN_KEY_LABEL "ENCRYPTED SIGSTORE PRIVATE KEY"
#define SUB_COSIGN_KEY_LABEL_OLD "ENCRYPTED COSIGN PRIVATE KEY"
/* scrypt parameters cosign (go-securesystemslib) writes. */
#define SUB_COSIGN_SCRYPT_N 32768
#define SUB_COSIGN_SCRYPT_R 8
#define SUB_COSIGN_SCRYPT_P 1

#define SUB_SIGN_MAX_KEYFILE (64u << 10)  /* key files */
#define SUB_SIGN_MAX_PAYLOAD (256u << 10) /* a simple-signing payload */
#define SUB_SIGN_MAX_SIG_B64 (16u << 10)  /* a base64 signature */
#define SUB_SIGN_MAX_PASSPHRASE 1024

typedef struct sub_pubkey sub_pubkey;
typedef struct sub_privkey sub_privkey;

/* ---- base64 (standard alphabet, padded) -------------------------------- */

/* Encode; caller frees. */
char *sub_b64_encode(const void *data, size_t len);
/* Strict decode (bad characters, bad padding, trailing junk are errors).
 * Characters in `ignore` (may be NULL) are skipped, e.g. "\r\n" for PEM.
 * `what` names the input in errors (-EBADMSG). *out is the caller's to free. */
int sub_b64_decode(const char *b64, size_t len, const char *ignore, const char *what,
                   unsigned char **out, size_t *outlen, sub_err *e);

/* Reading a file the user named (a key, a payload, a signature) failed with
 * r: a path that is not there, not a regular file, not readable or too
 * large is an input error (exit 2), not an environment one; e's class is set
 * accordingly. Returns r. */
int sub_sign_file_error(int r, sub_err *e);

/* Wipe and free a secret buffer (NULL is fine). */
void sub_secret_free(void *p, size_t len);

/* ---- public keys -------------------------------------------------------- */

/* Parse a PEM "PUBLIC KEY" holding an ECDSA P-256 key. `source` (may be NULL)
 * is remembered for messages (e.g. the file it came from). */
int sub_pubkey_from_pem(const char *pem, size_t len, const char *source, sub_pubkey **out,
                        sub_err *e);
int sub_pubkey_load_file(const char *path, sub_pubkey **out, sub_err *e);
void sub_pubkey_free(sub_pubkey *k);
static inline void sub_pubkey_freep(sub_pubkey **k) {
    if (*k) sub_pubkey_free(*k);
}
#define _cleanup_pubkey_ _cleanup_(sub_pubkey_freep)
/* "sha256:<hex of SPKI DER>" (borrowed; valid while k lives). */
const char *sub_pubkey_id(const sub_pubkey *k);
/* Where it came from, or "" (borrowed). */
const char *sub_pubkey_source(const sub_pubkey *k);
/* PEM text (caller frees). */
char *sub_pubkey_to_pem(const sub_pubkey *k);

/* A NULL-terminated array of keys (e.g. from the trust store). */
void sub_pubkeys_free(sub_pubkey **v);
static inline void sub_pubkeys_freep(sub_pubkey ***v) { sub_pubkeys_free(*v); }
#define _cleanup_pubkeys_ _cleanup_(sub_pubkeys_freep)

/* ---- private keys ------------------------------------------------------- */

/* A fresh ECDSA P-256 key. */
int sub_privkey_generate(sub_privkey **out, sub_err *e);
void sub_privkey_free(sub_privkey *k);
static inline void sub_privkey_freep(sub_privkey **k) {
    if (*k) sub_privkey_free(*k);
}
#define _cleanup_privkey_ _cleanup_(sub_privkey_freep)
/* Key id of the public half (borrowed). */
const char *sub_privkey_id(const sub_privkey *k);
/* The public half (new object; source "" unless set by the caller's file). */
int sub_privkey_public(const sub_privkey *k, sub_pubkey **out, sub_err *e);
/* PKCS#8 DER of the private key: SECRET, release with sub_secret_free(). */
int sub_privkey_pkcs8(const sub_privkey *k, unsigned char **der, size_t *len, sub_err *e);
/* Parse PKCS#8 DER (must be ECDSA P-256; the whole input must be consumed). */
int sub_privkey_from_pkcs8(const unsigned char *der, size_t len, sub_privkey **out, sub_err *e);

/* Encrypt into cosign's PEM format (label SUB_COSIGN_KEY_LABEL), with fresh
 * random salt and nonce and the SUB_COSIGN_SCRYPT_* parameters. *pem is not
 * secret (caller frees). */
int sub_privkey_encrypt(const sub_privkey *k, const char *pass, size_t passlen, char **pem,
                        sub_err *e);
/* Decrypt a cosign-format PEM (either label). A wrong passphrase fails with
 * -EKEYREJECTED and says so; other problems name `source` (may be NULL). */
int sub_privkey_decrypt(const char *pem, size_t len, const char *pass, size_t passlen,
                        const char *source, sub_privkey **out, sub_err *e);

/* ---- passphrases ---------------------------------------------------------
 * Sources, first found wins:
 *   1. opts->file (--passphrase-file): the file's bytes, one trailing "\n"
 *      (or "\r\n") removed;
 *   2. $SUBSTRATE_PASSPHRASE (set, even if empty), else $COSIGN_PASSWORD
 *      (cosign's variable, so a cosign user's environment works as it is);
 *   3. <prefix>.pass beside the key: must be a regular file owned by us and
 *      not readable/writable by group or others (else refused, with the fix);
 *   4. a prompt on the controlling terminal (/dev/tty) with echo off, twice
 *      when opts->confirm. With no terminal this fails at once (-ENXIO).
 * With opts->beside_first, 3 is tried before 2. */
typedef enum {
    SUB_PASS_FILE = 1,
    SUB_PASS_ENV,
    SUB_PASS_BESIDE_KEY,
    SUB_PASS_PROMPT,
} sub_pass_source;

typedef struct sub_pass_opts {
    const char *file;       /* --passphrase-file, or NULL */
    const char *key_prefix; /* look for <key_prefix>.pass; NULL skips that source */
    const char *what;       /* for the prompt: "new key x.key", "key x.key" */
    bool confirm;           /* prompt twice and require the same answer */
    bool beside_first;      /* <key_prefix>.pass, when present, wins over
                             * $SUBSTRATE_PASSPHRASE (the platform key, whose
                             * generated passphrase lives beside it) */
} sub_pass_opts;

typedef struct sub_passphrase {
    char *data; /* NUL-terminated; SECRET (wiped by sub_passphrase_free) */
    size_t len;
    sub_pass_source source;
    char origin[512]; /* file path, variable name or "terminal" */
} sub_passphrase;

int sub_passphrase_get(const sub_pass_opts *o, sub_passphrase *out, sub_err *e);
void sub_passphrase_free(sub_passphrase *p);
static inline void sub_passphrase_freep(sub_passphrase *p) { sub_passphrase_free(p); }
#define _cleanup_passphrase_ _cleanup_(sub_passphrase_freep)
/* "x.key" -> "x"; other names unchanged (caller frees). */
char *sub_key_prefix(const char *key_path);

/* ---- key files ---------------------------------------------------------- */

/* Generate a key pair and write <prefix>.key (cosign-encrypted, mode 0600)
 * and <prefix>.pub (mode 0644). Never overwrites: if either exists, fails
 * with -EEXIST naming them, and writes nothing. On failure nothing is left
 * behind. The key id is copied to id_out when non-NULL. */
int sub_key_generate_files(const char *prefix, const char *pass, size_t passlen,
                           char id_out[SUB_DIGEST_MAX], sub_err *e);
/* 0 when neither <prefix>.key nor <prefix>.pub exists, else -EEXIST naming
 * them (callers check before asking for a passphrase). */
int sub_key_files_absent(const char *prefix, sub_err *e);
/* Read and decrypt a cosign key file with the given passphrase. */
int sub_privkey_load_file(const char *path, const char *pass, size_t passlen, sub_privkey **out,
                          sub_err *e);

/* Open a signing key as every signer does (sign, build-sign-push, the
 * acceptance harness): first the file, which must exist, be readable and hold
 * a cosign-encrypted private key (reasons SUB_R_NO_KEY_FILE,
 * SUB_R_PUBLIC_KEY_GIVEN for a .pub, SUB_R_NOT_A_PRIVATE_KEY; input class),
 * checked before any passphrase is looked for or prompted; then the
 * passphrase (sub_passphrase_get's order, <prefix>.pass first with
 * beside_first); then the decryption. A wrong passphrase is -EKEYREJECTED,
 * reason SUB_R_WRONG_PASSPHRASE, its detail naming where the passphrase came
 * from, the key id when <prefix>.pub sits beside the key, and nothing_done. */
typedef struct sub_key_open_opts {
    const char *path;            /* the .key file (required) */
    const char *passphrase_file; /* --passphrase-file, or NULL */
    bool beside_first;           /* the platform key: its .pass wins over the environment */
    const char *nothing_done;    /* e.g. "nothing was signed or pushed" (may be NULL) */
} sub_key_open_opts;
int sub_signing_key_open(const sub_key_open_opts *o, sub_privkey **out, sub_err *e);

/* ---- trust store -------------------------------------------------------- */

/* $SUBSTRATE_STATE/trust (caller frees). */
char *sub_trust_dir(void);
/* Load every *.pub in dir (sorted by name; dot-files ignored) into a
 * NULL-terminated array; *n gets the count. A file that does not parse, or a
 * directory/key file (a symlink's target) writable by group or others or
 * owned by a user other than us and root, is an error naming it. A
 * missing dir is -ENOENT with a hint; an empty one gives n = 0. */
int sub_trust_load(const char *dir, sub_pubkey ***keys, size_t *n, sub_err *e);
/* Trust the public key in pub_path: write it (PEM, as parsed) to
 * dir/<hex of its key id>.pub, mode 0644, creating dir (0755) if needed.
 * Returns 1 when added, 0 when that entry already holds this key. id_out
 * (may be NULL) gets the key id; *dest (may be NULL) the entry's path
 * (caller frees). */
int sub_trust_add(const char *dir, const char *pub_path, char id_out[SUB_DIGEST_MAX], char **dest,
                  sub_err *e);
/* Remove every *.pub in dir holding the key `id` ("sha256:<hex>" or "<hex>").
 * Returns how many entries were removed (> 0), or -ENOENT (input class)
 * when the key is not trusted there. Entries that do not parse are left
 * alone. */
int sub_trust_remove(const char *dir, const char *id, sub_err *e);

/* ---- payloads ------------------------------------------------------------ */

typedef struct sub_cosign_payload {
    char *docker_reference; /* critical.identity.docker-reference */
    char *manifest_digest;  /* critical.image.docker-manifest-digest (validated) */
} sub_cosign_payload;

/* Build the exact bytes cosign signs for `reference` ("registry/repository",
 * no tag or digest) and `digest`. *out is NUL-terminated; *len excludes it. */
int sub_cosign_payload_build(const char *reference, const char *digest, char **out, size_t *len,
                             sub_err *e);
/* Strict parse: duplicate keys, unknown keys in "critical" and its members,
 * wrong types, a bad digest or a wrong critical.type are -EBADMSG. Key order
 * and the content of "optional" (null or an object) are free. */
int sub_cosign_payload_parse(const void *data, size_t len, sub_cosign_payload *out, sub_err *e);
void sub_cosign_payload_free(sub_cosign_payload *p);
static inline void sub_cosign_payload_freep(sub_cosign_payload *p) { sub_cosign_payload_free(p); }
#define _cleanup_payload_ _cleanup_(sub_cosign_payload_freep)

/* ---- sign ---------------------------------------------------------------- */

/* ECDSA P-256 / SHA-256 over the payload bytes; *sig_b64 = base64(DER)
 * (caller frees). The new signature is verified with the public half before
 * it is returned. */
int sub_cosign_sign(const sub_privkey *k, const void *payload, size_t len, char **sig_b64,
                    sub_err *e);
/* Build the payload for reference + digest and sign it (both outputs caller-freed). */
int sub_cosign_sign_image(const sub_privkey *k, const char *reference, const char *digest,
                          char **payload, size_t *payload_len, char **sig_b64, sub_err *e);
/* The tag cosign stores signatures under: "sha256-<hex>.sig" (caller frees). */
int sub_cosign_sig_tag(const char *image_digest, char **tag, sub_err *e);

/* ---- verify -------------------------------------------------------------- */

typedef enum {
    SUB_IDENTITY_EXACT = 0,  /* docker-reference == identity, byte for byte */
    SUB_IDENTITY_REPO_PREFIX, /* == identity, or starts with identity + "/" */
    SUB_IDENTITY_ANY_REPO,   /* not checked (e.g. a signature copied to a mirror) */
} sub_identity_policy;

typedef enum {
    SUB_CHECK_NOT_RUN = 0, /* an earlier check failed */
    SUB_CHECK_PASS,
    SUB_CHECK_FAIL,
    SUB_CHECK_SKIPPED, /* the policy says not to check */
} sub_check_result;

typedef enum {
    SUB_VERIFY_OK = 0,
    SUB_VERIFY_MALFORMED_SIGNATURE, /* not base64, not DER, or values out of range */
    SUB_VERIFY_NO_KEY_MATCHED,      /* no trusted key verifies it over these bytes */
    SUB_VERIFY_MALFORMED_PAYLOAD,   /* signed, but not a valid cosign payload */
    SUB_VERIFY_DIGEST_MISMATCH,     /* payload names another image */
    SUB_VERIFY_IDENTITY_MISMATCH,   /* payload names another repository */
    SUB_VERIFY_LAYER_MISMATCH,      /* payload bytes do not hash to the layer digest */
} sub_verify_failure;

/* Fixed-size, caller-owned: nothing to free. Strings are "" when unknown. */
typedef struct sub_verify_record {
    bool verified;
    sub_verify_failure failure;
    sub_check_result layer; /* SKIPPED unless the layer variant was used */
    sub_check_result signature;
    sub_check_result digest;
    sub_check_result identity;
    sub_identity_policy policy;
    size_t keys_tried;
    char key_id[SUB_DIGEST_MAX];      /* the key that verified */
    char key_source[512];             /* its file, if known */
    char payload_sha256[SUB_DIGEST_MAX]; /* sha256 of the payload bytes */
    char layer_digest[SUB_DIGEST_MAX];   /* digest the payload bytes must have */
    char payload_digest[SUB_DIGEST_MAX]; /* image digest the payload names */
    char payload_reference[512];         /* docker-reference the payload names */
    char expected_digest[SUB_DIGEST_MAX];
    char expected_identity[512];
    char reason[1024]; /* "" when verified */
} sub_verify_record;

/* Success (0) only when some key's signature verifies over the payload bytes
 * AND the payload names expected_digest AND the identity matches under the
 * policy (identity may be NULL only with SUB_IDENTITY_ANY_REPO). Checks run in
 * that order and stop at the first failure; the payload is parsed only once
 * its signature has verified. A refusal returns -EKEYREJECTED with the reason
 * in e and rec (rec may be NULL); bad arguments return -EINVAL. */
int sub_cosign_verify(const sub_pubkey *const *keys, size_t nkeys, const void *payload,
                      size_t len, const char *sig_b64, const char *expected_digest,
                      const char *identity, sub_identity_policy policy, sub_verify_record *rec,
                      sub_err *e);
/* The registry-side form: first checks sha256(payload bytes) == layer_digest
 * (the layer descriptor in the signature manifest), then sub_cosign_verify(). */
int sub_cosign_verify_layer(const sub_pubkey *const *keys, size_t nkeys, const char *layer_digest,
                            const void *payload, size_t len, const char *sig_b64,
                            const char *expected_digest, const char *identity,
                            sub_identity_policy policy, sub_verify_record *rec, sub_err *e);
/* Only the layer check: -EKEYREJECTED (with both digests in the message) on a mismatch. */
int sub_cosign_check_layer(const void *payload, size_t len, const char *layer_digest, sub_err *e);

const char *sub_identity_policy_name(sub_identity_policy p); /* "exact", "repo-prefix", "any-repo" */
const char *sub_check_result_name(sub_check_result c);       /* "pass", "fail", ... */
const char *sub_verify_failure_name(sub_verify_failure f);   /* "no-key-matched", ... */
sub_reason sub_verify_failure_reason(sub_verify_failure f);   /* SUB_R_NO_TRUSTED_KEY, ... */
/* The record as JSON (new reference, caller decrefs; never NULL):
 * {verified, failure, reason (the stable reason code, "no_trusted_key"; null
 *  when verified), message (rec->reason's text), layer, key: {id, source} | null,
 *  checks: [{check, result, ...}], payload: {sha256, digest, identity}}. */
json_t *sub_verify_record_json(const sub_verify_record *rec);

/* ---- blobs (cosign sign-blob / verify-blob, key-based) ------------------- */

#define SUB_BLOB_MAX (64u << 20) /* files are signed up to this size */
/* Sign the bytes of the file at path: *sig_b64 = base64(DER ECDSA P-256
 * SHA-256), what `cosign sign-blob --key` writes (caller frees). */
int sub_blob_sign_file(const sub_privkey *k, const char *path, char **sig_b64, sub_err *e);
/* 0 when one of keys verifies sig_b64 (blanks and newlines around the base64
 * are ignored) over data; key_id (may be NULL) names it. A refusal is
 * -EKEYREJECTED, check class, reason SUB_R_MALFORMED_SIGNATURE or
 * SUB_R_NO_TRUSTED_KEY; no keys at all is an input error. */
int sub_blob_verify(const sub_pubkey *const *keys, size_t nkeys, const void *data, size_t len,
                    const char *sig_b64, char key_id[SUB_DIGEST_MAX], sub_err *e);
