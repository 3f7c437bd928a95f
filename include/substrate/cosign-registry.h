/* Cosign signatures in the registry: the signature artifact, registry-side
 * signing and verification, and the platform signing key.
 *
 * Layout (what cosign writes for a key-based signature of image D in
 * repository R):
 *   tag       R:sha256-<hex of D>.sig
 *   manifest  OCI image manifest; config = a cosign-style image config
 *             {"architecture":"","config":{},"created":"0001-01-01T00:00:00Z",
 *              "history":[{"created":"0001-01-01T00:00:00Z"} per layer],"os":"",
 *              "rootfs":{"type":"layers","diff_ids":[<layer digests>]}}
 *             and one layer per signature:
 *             {"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json",
 *              "size":<payload bytes>,"digest":sha256(payload),
 *              "annotations":{"dev.cosignproject.cosign/signature":<base64 DER>}}
 *   blobs     the payloads (simple-signing JSON) and the config.
 * Field order as cosign (Go structs) writes it, so a single-signature artifact
 * is byte-identical to cosign's.
 *
 * Verification reads only the layers (their digests, sizes and signature
 * annotations) and the payload blobs, by digest. It never reads the config
 * nor depends on JSON key order: a signature copied by skopeo rewrites both.
 *
 * Ownership: results are caller-owned structs; those with pointers are
 * released by their _free function. Strings returned through char** are the
 * caller's to free(). */
#pragma once
#include "digest.h"
#include "error.h"
#include "registry.h"
#include "sign.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How many simple-signing layers of one signature manifest are examined;
 * beyond that the artifact is refused (a hostile registry cannot make us
 * fetch without bound). */
#define SUB_COSIGN_MAX_SIGNATURES 64
#define SUB_COSIGN_SIG_TAG_MAX 160 /* "sha256-" + hex + ".sig" */

/* ---- the artifact (pure: no I/O) ---------------------------------------- */

/* Build the signature manifest and its config after adding one signature
 * layer (payload digest + size + base64 signature) to `existing` (the bytes
 * of the current signature manifest, or NULL when there is none). Existing
 * layers are kept as they are, in order, the new one goes last. `existing`
 * must parse as an image manifest (else -EBADMSG, nothing is built). Outputs
 * are caller-freed; lengths exclude the NUL. */
int sub_cosign_artifact_add(const char *existing, size_t existing_len, const char *payload_digest,
                            uint64_t payload_size, const char *sig_b64, char **manifest,
                            size_t *manifest_len, char **config, size_t *config_len, sub_err *e);

/* ---- signing into the registry ------------------------------------------- */

typedef struct sub_cosign_sign_result {
    char key_id[SUB_DIGEST_MAX];
    char sig_tag[SUB_COSIGN_SIG_TAG_MAX];   /* "sha256-<hex>.sig" */
    char sig_manifest[SUB_DIGEST_MAX];      /* digest of the signature manifest now tagged */
    char payload_digest[SUB_DIGEST_MAX];    /* = the new (or existing) layer's digest */
    char identity[512];                     /* the payload's docker-reference */
    size_t n_layers;                        /* layers in the signature manifest afterwards */
    bool already_signed; /* an identical payload signed by this key was there: nothing pushed */
} sub_cosign_sign_result;

/* Sign image `image_digest` in `repo` (on the registry r talks to) with k,
 * for identity (the docker-reference, "registry/repository" as written), and
 * push the cosign artifact. The image manifest must exist (HEAD by digest,
 * else -ENOENT, input class). The existing signature manifest, if any, is
 * read first and its layers kept; when it already holds a layer with the same
 * payload whose signature verifies with k, nothing is pushed. Blobs go first,
 * the manifest (by tag) last. Before the tag is written it is checked not to
 * have moved since it was read (another signer): -EAGAIN if it did. */
int sub_cosign_sign_registry(sub_reg *r, const char *repo, const char *identity,
                             const char *image_digest, const sub_privkey *k,
                             sub_cosign_sign_result *res, sub_err *e);

/* ---- verifying from the registry ------------------------------------------ */

typedef struct sub_cosign_verify_result {
    char image_digest[SUB_DIGEST_MAX];
    char sig_tag[SUB_COSIGN_SIG_TAG_MAX];
    bool found;                        /* the signature tag exists */
    char sig_manifest[SUB_DIGEST_MAX]; /* its digest ("" when not found) */
    size_t n_layers;                   /* layers in the signature manifest */
    size_t n_records;                  /* simple-signing layers checked */
    sub_verify_record *records;        /* n_records entries (owned) */
    long verified;                     /* index of the first record that verified, or -1 */
    sub_identity_policy policy;
    char identity[512]; /* expected identity ("" with any-repo) */
} sub_cosign_verify_result;

/* Fetch the signature manifest of image_digest in repo (by its tag), and for
 * each simple-signing layer fetch the payload blob (digest-checked, at most
 * SUB_SIGN_MAX_PAYLOAD bytes) and run sub_cosign_verify_layer(): some key
 * verifies the signature, sha256(payload) is the layer digest, the payload
 * names image_digest, and its identity matches the policy. Every layer is
 * checked and recorded (res->records). Returns 0 when some layer verified.
 * A refusal is -EKEYREJECTED (check class) with the reason in e: "no
 * signature" when the tag is absent or holds no simple-signing layer,
 * otherwise the one layer's reason, or a summary naming each layer's failure.
 * Registry or I/O trouble is a negative error of its own class. res is
 * filled in every case where it was reached (free it with
 * sub_cosign_verify_result_free, also on failure). */
int sub_cosign_verify_registry(sub_reg *r, const char *repo, const char *image_digest,
                               const sub_pubkey *const *keys, size_t nkeys, const char *identity,
                               sub_identity_policy policy, sub_cosign_verify_result *res,
                               sub_err *e);
void sub_cosign_verify_result_free(sub_cosign_verify_result *res);
static inline void sub_cosign_verify_result_freep(sub_cosign_verify_result *r) {
    sub_cosign_verify_result_free(r);
}
#define _cleanup_verify_result_ _cleanup_(sub_cosign_verify_result_freep)
/* {"digest_ref", "digest", "verified", "verified_by", "reason", "message",
 *  "signature_tag", "signature_manifest", "signature_layers", "policy", "identity",
 *  "keys", "signatures":[record...]} (new reference; never NULL, whatever bytes the
 * strings hold). image (digest_ref) names the image as the user wrote it. keys lists
 * the key ids tried. On a refusal, reason is refusal->reason as a stable
 * string ("no_signature", "no_trusted_key": sub_reason_to_string) and
 * message its text; both null when verified. */
json_t *sub_cosign_verify_result_json(const sub_cosign_verify_result *res, const char *image,
                                      const sub_pubkey *const *keys, size_t nkeys,
                                      const sub_err *refusal);

/* ---- the platform key ------------------------------------------------------ */

/* <state>/keys/cosign.key (caller frees). */
char *sub_platform_key_path(const char *state_dir);
/* Make sure the platform key exists: when <state>/keys/cosign.key is absent,
 * create <state>/keys (0700), a random passphrase in cosign.pass (0600),
 * cosign.key (0600, cosign-encrypted) and cosign.pub, and put the public key
 * in <state>/trust/ (sub_trust_add). *created tells whether it was made now.
 * id_out (may be NULL) gets its key id when created (or when cosign.pub
 * exists). On failure nothing new is left behind. */
int sub_platform_key_ensure(const char *state_dir, bool *created, char id_out[SUB_DIGEST_MAX],
                            sub_err *e);
