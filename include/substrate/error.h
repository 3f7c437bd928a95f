/* Error context. Library functions return 0 (or a positive count) on success
 * and a negative errno-style int on failure; when given a non-NULL sub_err
 * they also fill it with a human message (what went wrong and, where we know
 * it, what to do) plus optional detail from OpenSSL, curl or HTTP.
 * Only the CLI prints errors. The struct is caller-owned and fixed-size, so
 * there is nothing to free. */
#pragma once
#include "macro.h"
#include <errno.h>
#include <stdbool.h>

/* Process exit codes, identical for every command (documented in README). */
enum {
    SUB_EXIT_OK = 0,
    SUB_EXIT_CHECK = 1, /* a check said no: verification failed, DRIFT, digest mismatch */
    SUB_EXIT_USAGE = 2, /* usage or input error */
    SUB_EXIT_ENV = 3,   /* environment or operational error */
};

typedef enum {
    SUB_KIND_DEFAULT = 0, /* derive the exit class from the errno */
    SUB_KIND_CHECK,
    SUB_KIND_INPUT,
    SUB_KIND_ENV,
} sub_err_kind;

/* Why a check or an input was refused, for callers that must tell refusals
 * apart (tests, the acceptance harness, automation reading --json): the
 * errno says how bad (-EKEYREJECTED covers several refusals), the reason says
 * which. SUB_R_NONE when no specific reason was recorded. Names are stable
 * (sub_reason_to_string: "no_trusted_key"); add new ones before _SUB_R_MAX. */
typedef enum sub_reason {
    SUB_R_NONE = 0,
    /* signatures (verify, admission) */
    SUB_R_NO_SIGNATURE,        /* the image carries no signature */
    SUB_R_NO_TRUSTED_KEY,      /* no trusted key verifies the signature */
    SUB_R_MALFORMED_SIGNATURE, /* not base64 / DER, values out of range */
    SUB_R_MALFORMED_PAYLOAD,   /* signed, but not a cosign payload */
    SUB_R_DIGEST_MISMATCH,     /* a signature (or provenance) for another image */
    SUB_R_IDENTITY_MISMATCH,   /* a signature for another repository */
    SUB_R_LAYER_MISMATCH,      /* payload bytes do not hash to the layer digest */
    SUB_R_SIGNATURES_REFUSED,  /* several signatures, each refused for its own reason */
    SUB_R_TOO_MANY_SIGNATURES,
    /* provenance */
    SUB_R_NO_PROVENANCE,       /* no attestation at all */
    SUB_R_BAD_PROVENANCE,      /* attestations there, none verifies */
    /* keys and the trust store */
    SUB_R_WRONG_PASSPHRASE,
    SUB_R_NO_PASSPHRASE,       /* no source, and no terminal to ask on */
    SUB_R_NO_KEY_FILE,         /* the key file is missing or unreadable */
    SUB_R_PUBLIC_KEY_GIVEN,    /* a public key where the private key is needed */
    SUB_R_NOT_A_PRIVATE_KEY,   /* some other file where the private key is needed */
    SUB_R_KEY_NOT_TRUSTED,     /* the signing key is not in the trust store */
    SUB_R_NO_TRUST_STORE,      /* the trust store is missing or holds no key */
    /* images, builds, releases */
    SUB_R_NO_SUCH_IMAGE,       /* the image is not in the registry */
    SUB_R_UNKNOWN_IMAGE,       /* no such image spec under platform/images */
    SUB_R_UNKNOWN_REVISION,    /* no such git commit */
    SUB_R_INVALID_TAG,         /* a version or tag the OCI tag grammar refuses */
    SUB_R_DIRTY_TREE,          /* uncommitted changes where an exact commit is needed */
    SUB_R_NOT_REPRODUCIBLE,    /* two builds of one commit differ */
    /* Tier-1 services */
    SUB_R_HOSTILE_LAYER,       /* a layer entry that would escape or is not allowed */
    SUB_R_BAD_MANIFEST,        /* a service manifest that does not parse or validate */
    SUB_R_NOT_READY,           /* a new version did not pass readiness in time */
    SUB_R_NOT_RECONCILED,      /* no such service was ever reconciled */
    SUB_R_DRIFT,               /* what runs is not what the manifest says */
    SUB_R_VERIFY_STALE,        /* registry unreachable and no recent verification */
    /* Tier-2 jobs */
    SUB_R_BAD_JOBSPEC,         /* a jobspec that does not parse or validate */
    /* the golden VM */
    SUB_R_BAD_VM_SPEC,         /* a VM spec that does not parse or validate */
    /* Kubernetes */
    SUB_R_BAD_POD_LIST,        /* align --k8s: the pod list is not kubectl's pod list JSON */
    _SUB_R_MAX,
    _SUB_R_INVALID = -EINVAL,
} sub_reason;

/* "no_trusted_key", ...; "none" for SUB_R_NONE; NULL when out of range. */
const char *sub_reason_to_string(sub_reason r);
/* The reverse; _SUB_R_INVALID when unknown. */
sub_reason sub_reason_from_string(const char *s);

typedef struct sub_err {
    int code;          /* negative errno; 0 when no error was recorded */
    sub_err_kind kind; /* exit class; DEFAULT derives it from code */
    sub_reason reason; /* which refusal; SUB_R_NONE unless the site set one */
    long http_status;  /* last HTTP status involved, 0 if none */
    char msg[1024];    /* what went wrong, and what to do */
    char detail[1024]; /* OpenSSL / curl / HTTP body detail, may be empty */
} sub_err;

/* Record an error and return -|code|. `e` may be NULL. */
int sub_err_set(sub_err *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Same, with an explicit exit class. */
int sub_err_setk(sub_err *e, sub_err_kind kind, int code, const char *fmt, ...) _printf_(4, 5);
/* Same, naming the reason (sub_err_set* reset it to SUB_R_NONE). */
int sub_err_setr(sub_err *e, sub_reason reason, sub_err_kind kind, int code, const char *fmt, ...)
    _printf_(5, 6);
/* Set the reason of an error already recorded; returns e->code (or -EIO when e is NULL). */
int sub_err_reason(sub_err *e, sub_reason reason);
/* Record an error whose detail is the drained OpenSSL error queue. */
int sub_err_ssl(sub_err *e, int code, const char *fmt, ...) _printf_(3, 4);
/* Add or replace the detail text. */
void sub_err_detail(sub_err *e, const char *fmt, ...) _printf_(2, 3);
/* Prefix the message with context ("pushing hello: ..."). */
void sub_err_prefix(sub_err *e, const char *fmt, ...) _printf_(2, 3);
void sub_err_clear(sub_err *e);
/* The exit code this error maps to (1, 2 or 3). */
int sub_err_exit_code(const sub_err *e);
