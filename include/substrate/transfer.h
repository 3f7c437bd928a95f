/* Moving images between an OCI image layout and a registry.
 *
 * Push: the config and layers (and, for an index, every child manifest with
 * its blobs) go first, each skipped when the registry already has it; the
 * manifest goes last, by tag or by digest, so a failed push never leaves a
 * tag pointing at missing content. The digest the registry reports for the
 * manifest must equal the one asked for.
 *
 * Pull: the manifest is digest-checked (against the digest asked for, or the
 * registry's Docker-Content-Digest for a tag), every blob is digest- and
 * size-checked while it streams, and the index.json entry is written last.
 * On failure the blobs this pull added are removed again, so the layout is
 * as it was before.
 *
 * Within one push or pull every digest is handled once: an index that names
 * the same child many times (or children that share blobs) costs one request
 * per distinct manifest and blob.
 *
 * Progress: cb (may be NULL) gets events: START when a blob or manifest
 * begins, BYTES while a blob body moves (as often as curl reports; the
 * caller throttles), DONE with the outcome (pushed, already in the registry,
 * fetched, already in the layout). Strings are only valid during the call. */
#pragma once
#include "digest.h"
#include "error.h"
#include "registry.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum { SUB_XFER_START, SUB_XFER_BYTES, SUB_XFER_DONE } sub_xfer_phase;
typedef enum {
    SUB_XFER_PUSHED,  /* push: uploaded */
    SUB_XFER_EXISTS,  /* push: the registry already had it, nothing sent */
    SUB_XFER_FETCHED, /* pull: downloaded and verified */
    SUB_XFER_PRESENT, /* pull: already in the layout (verified there), nothing fetched */
} sub_xfer_outcome;

typedef struct sub_xfer_event {
    sub_xfer_phase phase;
    const char *role;         /* "config", "layer", "blob" or "manifest" */
    const char *digest;       /* "sha256:..." */
    uint64_t done, total;     /* bytes; total 0 when not known yet */
    sub_xfer_outcome outcome; /* DONE only */
} sub_xfer_event;

typedef void (*sub_xfer_fn)(void *ud, const sub_xfer_event *ev);

/* Push the manifest (image or index) manifest_digest from layout_dir to
 * repo, under tag (NULL: by digest only). */
int sub_push_layout(sub_reg *r, const char *layout_dir, const char *manifest_digest,
                    const char *repo, const char *tag, sub_xfer_fn cb, void *ud, sub_err *e);

/* Limits of one pull (a hostile index must not make a pull run for ever):
 * descriptors followed (repeats included), distinct blobs, and the time the
 * whole pull may take. Past a count limit the pull is refused (-EFBIG) before
 * fetching what lies beyond it; past the deadline it stops (-ETIMEDOUT). */
#define SUB_PULL_MAX_DESCRIPTORS 4096
#define SUB_PULL_MAX_BLOBS 1024
#define SUB_PULL_TIMEOUT_S 3600

typedef struct sub_pull_opts {
    const char *repo;
    const char *ref;        /* tag or digest */
    const char *layout_dir; /* created when needed */
    const char *ref_name;   /* NULL: an unnamed index.json entry */
    long timeout_s;         /* overall deadline; 0 = SUB_PULL_TIMEOUT_S */
    bool trust_layout;      /* blobs already in the layout: size checked, content not re-read
                             * (default false: every present blob is hashed again) */
    sub_xfer_fn cb;
    void *ud;
} sub_pull_opts;

/* Pull o->repo:o->ref into o->layout_dir and name it o->ref_name there.
 * digest_out gets the manifest digest. The layout is created only once the
 * manifest has arrived and checked out: a pull refused before that (bad
 * reference, unknown tag, unreachable registry) leaves nothing behind. */
int sub_pull(sub_reg *r, const sub_pull_opts *o, char digest_out[SUB_DIGEST_MAX], sub_err *e);

/* sub_pull() with the default limits. */
int sub_pull_to_layout(sub_reg *r, const char *repo, const char *ref, const char *layout_dir,
                       const char *ref_name, char digest_out[SUB_DIGEST_MAX], sub_xfer_fn cb,
                       void *ud, sub_err *e);
