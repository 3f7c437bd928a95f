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
 * Progress: cb (may be NULL) is called with done = 0 when an item starts and
 * done = total when it is complete (or already present). `what` names the
 * item ("layer sha256:...", "manifest sha256:...") and is only valid during
 * the call. */
#pragma once
#include "digest.h"
#include "error.h"
#include "registry.h"
#include <stdint.h>

typedef void (*sub_progress_fn)(void *ud, const char *what, uint64_t done, uint64_t total);

/* Push the manifest (image or index) manifest_digest from layout_dir to
 * repo, under tag (NULL: by digest only). */
int sub_push_layout(sub_reg *r, const char *layout_dir, const char *manifest_digest,
                    const char *repo, const char *tag, sub_progress_fn cb, void *ud, sub_err *e);

/* Pull repo:ref (tag or digest) into layout_dir and name it ref_name there
 * (NULL: an unnamed index.json entry). digest_out gets the manifest digest.
 * layout_dir is created when needed, but only once the manifest has arrived
 * and checked out: a pull refused before that (bad reference, unknown tag,
 * unreachable registry) leaves nothing behind. */
int sub_pull_to_layout(sub_reg *r, const char *repo, const char *ref, const char *layout_dir,
                       const char *ref_name, char digest_out[SUB_DIGEST_MAX], sub_progress_fn cb,
                       void *ud, sub_err *e);
