/* SLSA provenance, stored the way `cosign attest` stores it.
 *
 * Statement: an in-toto Statement v1 whose predicate is SLSA provenance v1
 * (https://slsa.dev/provenance/v1) naming the source repository and commit,
 * the image spec (path and digest), the build command and the host and
 * toolchain packages the build used. It holds no wall-clock time, so the same
 * build gives the same statement.
 * Envelope: DSSE (payloadType application/vnd.in-toto+json), signed with
 * ECDSA P-256 over PAE("DSSEv1", type, payload).
 * Registry: tag sha256-<hex>.att in the image's repository, an OCI manifest
 * with one layer per attestation: mediaType application/vnd.dsse.envelope.v1+json,
 * annotations {"dev.cosignproject.cosign/signature": "", "predicateType": ...}.
 *
 * Ownership: strings returned through char** are the caller's to free();
 * sub_attest_result holds owned pointers released by sub_attest_result_free(). */
#pragma once
#include "cosign-registry.h"
#include "digest.h"
#include "error.h"
#include "registry.h"
#include "sign.h"
#include <stdint.h>

#define SUB_MT_DSSE_ENVELOPE "application/vnd.dsse.envelope.v1+json"
#define SUB_INTOTO_PAYLOAD_TYPE "application/vnd.in-toto+json"
#define SUB_INTOTO_STATEMENT_V1 "https://in-toto.io/Statement/v1"
#define SUB_SLSA_PROVENANCE_V1 "https://slsa.dev/provenance/v1"
/* Identifiers, not locations: this source has no public home to point at, so
 * no URL is made up for it (the source URI of an image is in build.h). */
#define SUB_SUBSTRATE_BUILD_TYPE "urn:substrate:build-type:image:v1"
#define SUB_SUBSTRATE_BUILDER_ID "urn:substrate:builder:substrate-build"
#define SUB_ATTEST_MAX_ENVELOPE (1u << 20)
#define SUB_ATTEST_MAX_PREDICATE (512u << 10) /* a predicate file (the envelope base64s it) */
#define SUB_ATTEST_TAG_MAX 160                /* "sha256-" + hex + ".att" */

typedef struct sub_provenance {
    const char *subject;       /* "registry/repository" */
    const char *digest;        /* image manifest digest */
    const char *source;        /* source repository URI, or NULL/"" when none is configured
                                  (then the statement names no URI, only the commit) */
    const char *commit;        /* full git SHA */
    const char *revision;      /* commit or commit-dirty */
    const char *image;         /* image name */
    const char *version;
    const char *spec_path;     /* platform/images/<name>/image.json */
    const char *spec_digest;   /* sha256 of that file in the export */
    char *const *build_command;/* argv, may be NULL */
    int64_t source_date_epoch;
    const char *host_inputs;   /* "pkg=version,..." (may be "") */
    const char *build_inputs;  /* "pkg=version,..." (may be "") */
    const char *builder_version;
} sub_provenance;

/* The statement's canonical JSON bytes. */
int sub_provenance_statement(const sub_provenance *p, char **out, size_t *len, sub_err *e);

/* DSSE pre-authentication encoding: "DSSEv1 <len> <type> <len> <payload>". */
char *sub_dsse_pae(const char *type, const void *payload, size_t len, size_t *out_len);
/* Sign payload into a DSSE envelope (JSON bytes). */
int sub_dsse_sign(const sub_privkey *k, const char *type, const void *payload, size_t len,
                  char **envelope, size_t *envelope_len, sub_err *e);
/* Verify an envelope: well-formed, payloadType == want_type, and some
 * signature verifies over the PAE with some key. On success *payload gets the
 * decoded payload (caller frees) and key_id the key that verified. A refusal
 * is -EKEYREJECTED with the reason. */
int sub_dsse_verify(const sub_pubkey *const *keys, size_t nkeys, const void *envelope,
                    size_t envelope_len, const char *want_type, char **payload, size_t *payload_len,
                    char key_id[SUB_DIGEST_MAX], sub_err *e);

/* "sha256-<hex>.att" (caller frees). */
int sub_attest_tag(const char *image_digest, char **tag, sub_err *e);

/* Sign the provenance of p->digest and add it to the repository's .att
 * artifact (existing layers kept; when one of them already holds this
 * statement signed by this key, nothing is pushed: ECDSA signatures are
 * randomised, so envelopes are compared by their verified payload).
 * The image must exist. att_manifest (may be NULL) gets the new manifest digest. */
int sub_attest_registry(sub_reg *r, const char *repo, const sub_provenance *p,
                        const sub_privkey *k, char att_manifest[SUB_DIGEST_MAX], sub_err *e);

/* ---- attesting an image (`substrate attest`, as `cosign attest` does) ---- */

typedef struct sub_attest_opts {
    const char *repo;           /* repository on the registry r talks to */
    const char *subject;        /* statement subject name: "registry/repository" as written */
    const char *image_digest;   /* the image (must be in the registry) */
    const sub_privkey *key;     /* signs the envelope */
    const char *predicate_path; /* a JSON object to attest; NULL: re-sign the image's provenance */
    const char *predicate_type; /* with predicate_path: a URI or a cosign name (NULL = "custom") */
    const sub_pubkey *const *trusted; /* without predicate_path: the keys the existing provenance */
    size_t ntrusted;                  /* must verify with; 0 = the trust store */
} sub_attest_opts;

typedef struct sub_attest_push_result {
    char key_id[SUB_DIGEST_MAX];           /* the signing key */
    char att_tag[SUB_ATTEST_TAG_MAX];      /* "sha256-<hex>.att" */
    char att_manifest[SUB_DIGEST_MAX];     /* the attestation manifest now tagged */
    char statement_digest[SUB_DIGEST_MAX]; /* sha256 of the statement bytes signed */
    char predicate_type[512];
    char resigned_from[SUB_DIGEST_MAX]; /* re-sign: the trusted key the statement verified with */
    size_t n_layers;                    /* layers of the attestation manifest afterwards */
    bool already; /* this key had attested these exact bytes: nothing pushed */
} sub_attest_push_result;

/* Attest image o->image_digest in o->repo with o->key, in cosign attest's
 * layout (DSSE envelope in the sha256-<hex>.att artifact; other layers kept,
 * the tag checked not to have moved before it is replaced: -EAGAIN).
 *   With a predicate: the statement is in-toto v1 {subject: o->subject @
 *     digest, predicateType, predicate: the file's JSON object}; a predicate
 *     typed SLSA provenance v1 must read as `verify --provenance` expects.
 *   Without: the image's existing SLSA provenance statement that verifies
 *     with a trusted key (sub_attest_verify_registry) is signed again, byte
 *     for byte, by o->key: what a key rotation needs. None verifying is
 *     -EKEYREJECTED (check class), "nothing to re-sign".
 * When o->key already attested the same statement bytes nothing is pushed
 * (res->already). Input problems (no such image, unreadable or malformed
 * predicate, bad type) are input class. */
int sub_attest_image(sub_reg *r, const sub_attest_opts *o, sub_attest_push_result *res,
                     sub_err *e);
/* A --type value: one of cosign's names (slsaprovenance1, slsaprovenance,
 * link, spdx, spdxjson, cyclonedx, vuln, openvex, custom; NULL or "" is
 * "custom") or a URI; *uri is static or `type` itself. */
int sub_attest_predicate_type(const char *type, const char **uri, sub_err *e);

typedef struct sub_attest_result {
    bool found;                   /* the .att tag exists */
    size_t n_layers;              /* DSSE layers examined */
    bool verified;
    char key_id[SUB_DIGEST_MAX];  /* key that verified */
    char commit[48];              /* from the verified statement */
    char source[512];
    char spec_path[256];
    char spec_digest[SUB_DIGEST_MAX];
    char *build_command;          /* owned, space-joined */
    json_t *statement;            /* owned: the verified statement */
} sub_attest_result;

/* Find a provenance attestation for image_digest that verifies with a trusted
 * key, is an in-toto v1 statement with SLSA provenance v1, and whose subject
 * names image_digest. 0 when one does; -EKEYREJECTED (check class) with the
 * reason otherwise ("no provenance" when the tag is absent). */
int sub_attest_verify_registry(sub_reg *r, const char *repo, const char *image_digest,
                               const sub_pubkey *const *keys, size_t nkeys, sub_attest_result *res,
                               sub_err *e);
void sub_attest_result_free(sub_attest_result *res);
/* Record as JSON (new reference). */
json_t *sub_attest_result_json(const sub_attest_result *res);
