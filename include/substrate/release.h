/* The release pipeline: every image under platform/images/ built (twice,
 * compared) from an exact commit, pushed, signed, its signature verified
 * back from the registry, and its SLSA provenance attached and verified
 * back. `substrate build-sign-push` is a front end to sub_release_run(); the
 * acceptance harness and the supervisor call the same steps.
 *
 * Order (nothing is pushed before every image has built, and built alike):
 *   1. HEAD of the work tree resolved to its commit; a dirty tree is refused
 *      (reason SUB_R_DIRTY_TREE);
 *   2. the signing key: the platform key (made on first use) or key_path,
 *      opened (sub_signing_key_open) and required to be in the trust store
 *      (SUB_R_KEY_NOT_TRUSTED), before anything is built; the registry pinged;
 *   3. each image built in two export directories at different depths and
 *      the manifest digests compared (SUB_R_NOT_REPRODUCIBLE, check class);
 *   4. per image: push as NAME:version, sign (cosign layout), verify the
 *      signature back (exact identity REGISTRY/NAME, trusted keys), attest
 *      the provenance and verify it back.
 *
 * Progress goes through the callbacks (the library prints nothing).
 * Ownership: sub_release holds owned pointers, released by sub_release_done. */
#pragma once
#include "attest.h"
#include "build.h"
#include "cosign-registry.h"
#include "digest.h"
#include "error.h"
#include "registry.h"
#include "sign.h"
#include "transfer.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct sub_release_image {
    char *name;
    char digest[SUB_DIGEST_MAX];       /* the first build's manifest digest */
    char second[SUB_DIGEST_MAX];       /* the second build's ("" with single_build) */
    sub_build_result first;            /* the first build: what the provenance describes */
    char *identity;                    /* "REGISTRY/NAME" */
    sub_cosign_sign_result signed_by;  /* after the push and signing */
    char verified_by[SUB_DIGEST_MAX];  /* the key the signature verified back with */
    char provenance_by[SUB_DIGEST_MAX];/* the key the provenance verified back with */
    char provenance_commit[48];
} sub_release_image;

typedef struct sub_release_opts {
    const char *repo;            /* git work tree, its top level (required) */
    const char *version;         /* a valid tag (required) */
    const char *state_dir;       /* required */
    const char *registry;        /* "host:port" (required) */
    const char *key_path;        /* NULL: the platform key <state>/keys/cosign.key */
    const char *passphrase_file; /* NULL: the usual sources */
    bool single_build;           /* build each image once (no reproducibility check) */
    const char *builder_version; /* the provenance's builder id; NULL: substrate's */
    /* progress: image is NULL for the release as a whole */
    void (*note)(void *ud, const char *image, const char *msg);
    /* the push's progress events (sub_push_layout's, see transfer.h) */
    void (*progress)(void *ud, const char *image, const sub_xfer_event *ev);
    /* one image is pushed, signed and attested, and both verified back */
    void (*released)(void *ud, const sub_release_image *img);
    void *ud;
} sub_release_opts;

typedef struct sub_release {
    char commit[41];
    char key_id[SUB_DIGEST_MAX];
    bool key_created;            /* the platform key was made by this run */
    size_t n;
    sub_release_image *images;   /* n entries (owned) */
} sub_release;

int sub_release_run(const sub_release_opts *o, sub_release *res, sub_err *e);
void sub_release_done(sub_release *res);

/* ---- the steps, for callers that run them one by one ---------------------- */

/* Step 2: make the platform key on first use (*created), open the signing
 * key, and load the trust store, which must hold it. */
int sub_release_signing_key(const sub_release_opts *o, bool *created, sub_privkey **k,
                            sub_pubkey ***trusted, size_t *ntrusted, sub_err *e);

/* Step 3 for one image: build it in work_a (and, unless single_build, again
 * in work_b) from commit, and compare. img->name must be set. */
int sub_release_build(const sub_release_opts *o, const char *commit, const char *work_a,
                      const char *work_b, sub_release_image *img, sub_err *e);

/* Step 4 for one built image. */
int sub_release_publish(const sub_release_opts *o, sub_reg *r, const sub_privkey *k,
                        const sub_pubkey *const *trusted, size_t ntrusted, sub_release_image *img,
                        sub_err *e);

/* The provenance of a build pushed as subject@digest (strings borrowed from
 * b and the arguments; builder_version NULL: substrate's). */
void sub_release_provenance(sub_provenance *p, const sub_build_result *b, const char *subject,
                            const char *digest, const char *image, const char *version,
                            const char *builder_version);
