/* Admission: may this image run? The deploy-time check, in one place, so
 * `substrate verify`, the acceptance harness, reconcile (Tier 1) and the
 * sandbox runner (Tier 2) decide alike.
 *
 * An image is admitted when, in this order:
 *   1. its cosign signature (tag sha256-<hex>.sig in its repository) verifies
 *      with a trusted key for the identity policy (sub_cosign_verify_registry);
 *   2. with provenance required, an SLSA provenance v1 attestation (tag
 *      sha256-<hex>.att) verifies with a trusted key and names the image
 *      (sub_attest_verify_registry). It is only looked at once 1 holds.
 * The image is named by digest: a tag can move.
 *
 * Errors: a refusal is -EKEYREJECTED (check class) with e->reason saying
 * which (SUB_R_NO_SIGNATURE, SUB_R_NO_TRUSTED_KEY, SUB_R_IDENTITY_MISMATCH,
 * SUB_R_NO_PROVENANCE, ...); an image that is not in the registry at all is
 * -ENOENT (input class, SUB_R_NO_SUCH_IMAGE), not "no signature"; trouble
 * reaching the registry or reading the trust store keeps its own class.
 * Nothing is printed.
 *
 * Ownership: sub_admission holds owned pointers; release it with
 * sub_admission_free (also after a failure). */
#pragma once
#include "attest.h"
#include "cosign-registry.h"
#include "error.h"
#include "ref.h"
#include "registry.h"
#include "sign.h"
#include <stdbool.h>

typedef struct sub_admit_opts {
    const sub_ref *ref;            /* the image; must carry a digest (required) */
    sub_reg *reg;                  /* client for ref->registry; NULL: one is made */
    const sub_pubkey *const *keys; /* the trusted keys; NULL: load the trust store */
    size_t nkeys;
    const char *trust_dir;         /* the trust store when keys is NULL; NULL: sub_trust_dir() */
    const char *identity;          /* NULL: "registry/repository" of ref (the exact policy) */
    sub_identity_policy policy;
    bool provenance;               /* also require verified SLSA provenance */
} sub_admit_opts;

typedef struct sub_admission {
    char *image;                   /* "registry/repository@digest" (owned) */
    const sub_pubkey *const *keys; /* the keys tried (borrowed from opts, or owned_keys) */
    size_t nkeys;
    sub_pubkey **owned_keys;       /* loaded from the trust store, or NULL */
    int sig_rc;                    /* 0 verified, -EKEYREJECTED refused, -ENOENT no such
                                    * image (reason SUB_R_NO_SUCH_IMAGE), else not decided */
    sub_cosign_verify_result sig;  /* every signature layer checked (owned) */
    sub_err sig_err;               /* the signature's refusal (code 0 when it verified) */
    bool provenance_checked;       /* the signature held and provenance was required */
    int prov_rc;                   /* as sig_rc, for the provenance */
    sub_attest_result prov;        /* (owned) */
    sub_err prov_err;
} sub_admission;

/* 0 when the image is admitted (res says by which key, and the provenance).
 * res is filled as far as the check got, in every case. */
int sub_admit_image(const sub_admit_opts *o, sub_admission *res, sub_err *e);
void sub_admission_free(sub_admission *a);
static inline void sub_admission_freep(sub_admission *a) { sub_admission_free(a); }
#define _cleanup_admission_ _cleanup_(sub_admission_freep)

/* The trust store's keys (dir NULL: sub_trust_dir()), refusing an empty
 * store (input class, reason SUB_R_NO_TRUST_STORE): with no key nothing can
 * be admitted, and that is a setup mistake, not a verdict. */
int sub_admit_trusted_keys(const char *dir, sub_pubkey ***keys, size_t *n, sub_err *e);
