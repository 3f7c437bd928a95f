/* Deterministic image builds from an exact git commit.
 *
 * The commit is exported with `git archive` into a fresh directory (the
 * working tree with --allow-dirty), the image spec is read from that export
 * (platform/images/<name>/image.json), the spec's build command runs there
 * with SOURCE_DATE_EPOCH = commit time, TZ=UTC, LC_ALL=C, umask 022 and a
 * minimal environment, and the result is one layer (lib/image/layer.c), an
 * image config and an OCI manifest written into the OCI image layout
 * <state>/images/<name>/ under the ref name <version>.
 * Same commit + spec + version + host package versions -> same manifest digest.
 *
 * The export lives in <work_parent>/build-<pid>-XXXXXX (default parent
 * <state>/tmp); it is removed when the build ends, on SIGINT/SIGTERM (with the
 * build's children stopped first), and, if the build was killed, by the next
 * build (see residue.h). */
#pragma once
#include "digest.h"
#include "error.h"
#include <stdbool.h>
#include <stdint.h>

#define SUB_BUILD_TMP_PREFIX "build-"
/* Where the source URI of the images comes from, in the commit being built:
 * the image spec's "source", else {"source": "https://..."} in this file, else
 * none (no org.opencontainers.image.source label, no URI in the provenance).
 * It is never made up, and never read from outside the commit (a git remote
 * differs between clones, and the digest depends on the label). */
#define SUB_BUILD_SOURCE_FILE "platform/source.json"

typedef void (*sub_note_fn)(void *ud, const char *msg);

typedef struct sub_build_opts {
    const char *repo;       /* git work tree (required) */
    const char *image;      /* image name: platform/images/<image>/image.json */
    const char *version;    /* tag-grammar version label and layout ref name */
    const char *rev;        /* commit to build; NULL = HEAD */
    bool allow_dirty;       /* build the working tree as it is (only without rev) */
    const char *state_dir;  /* required */
    const char *work_parent;/* where the export goes; NULL = <state>/tmp */
    bool keep_work;         /* keep the export for debugging */
    sub_note_fn note;       /* progress messages, may be NULL */
    void *ud;
} sub_build_opts;

typedef struct sub_build_result {
    char sha[41];
    char revision[48];      /* sha, or sha-dirty */
    int64_t commit_time;
    char manifest_digest[SUB_DIGEST_MAX];
    uint64_t manifest_size;
    char config_digest[SUB_DIGEST_MAX];
    char layer_digest[SUB_DIGEST_MAX];
    char *layout_dir;       /* owned */
    char *host_inputs;      /* owned: "pkg=version,..." or "" */
    char *build_inputs;     /* owned: toolchain "pkg=version,..." or "" */
    char *source;           /* owned: the source URI (SUB_BUILD_SOURCE_FILE), or "" when none */
    char *spec_path;        /* owned: platform/images/<name>/image.json */
    char spec_digest[SUB_DIGEST_MAX]; /* sha256 of that file in the export */
    char **build_command;   /* owned argv (NULL-terminated), NULL when the spec has none */
} sub_build_result;

int sub_build_image(const sub_build_opts *o, sub_build_result *res, sub_err *e);
void sub_build_result_free(sub_build_result *r);
/* Names of the images under <repo>/platform/images (NULL-terminated, sorted; caller frees). */
char **sub_build_list_images(const char *repo);
