/* OCI / Docker v2 manifest model: descriptors, image manifests, indexes
 * (and Docker manifest lists), image configs.
 *
 * Parsing is strict about what we rely on and lenient about what we do not:
 *   - input larger than the cap (SUB_REG_MAX_MANIFEST for manifests,
 *     SUB_CONFIG_MAX for configs) is refused before it is parsed;
 *   - duplicate JSON keys are refused (sub_json_parse);
 *   - schemaVersion must be the integer 2;
 *   - required fields must be present with the right JSON type; descriptor
 *     digests must validate (sub_digest_validate) and sizes be integers >= 0;
 *   - the document's mediaType, when present, and the Content-Type it came
 *     with, when given, must both be known manifest types and must agree;
 *   - unknown fields are ignored (the specs say so).
 *
 * Ownership: every string and array in these structs is owned by the struct
 * and released by the matching *_free(), which also zeroes the struct (so a
 * double free is harmless). Nothing borrows from the input bytes. */
#pragma once
#include "digest.h"
#include "error.h"
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define SUB_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define SUB_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define SUB_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define SUB_MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define SUB_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define SUB_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define SUB_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define SUB_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* The Accept header value naming every manifest type we understand. */
#define SUB_MT_ACCEPT_MANIFESTS                                                                    \
    SUB_MT_OCI_MANIFEST ", " SUB_MT_OCI_INDEX ", " SUB_MT_DOCKER_MANIFEST ", " SUB_MT_DOCKER_LIST

#define SUB_ANNOT_REF_NAME "org.opencontainers.image.ref.name"

#define SUB_REG_MAX_MANIFEST (4u << 20) /* 4 MiB, as distribution */
#define SUB_CONFIG_MAX (8u << 20)       /* image config documents */

typedef struct sub_kv {
    char *key;
    char *value;
} sub_kv;

typedef struct sub_platform {
    char *architecture; /* required when a platform is present */
    char *os;           /* required when a platform is present */
    char *variant;      /* NULL when absent */
    char *os_version;   /* NULL when absent */
} sub_platform;

typedef struct sub_desc {
    char *media_type; /* never NULL after a successful parse */
    char digest[SUB_DIGEST_MAX];
    uint64_t size;
    char *artifact_type; /* NULL when absent */
    sub_kv *annotations; /* n_annotations entries, sorted by key */
    size_t n_annotations;
    sub_platform *platform; /* NULL when absent */
} sub_desc;

typedef enum {
    SUB_MANIFEST_IMAGE = 1, /* OCI image manifest or Docker v2 schema 2 manifest */
    SUB_MANIFEST_INDEX = 2, /* OCI image index or Docker manifest list */
} sub_manifest_kind;

typedef struct sub_manifest {
    sub_manifest_kind kind;
    char *media_type; /* the effective media type (document, header or inferred) */
    sub_desc config;  /* image only */
    sub_desc *layers; /* image only; may be empty */
    size_t n_layers;
    sub_desc *manifests; /* index only; may be empty */
    size_t n_manifests;
    sub_desc *subject;   /* NULL when absent */
    char *artifact_type; /* NULL when absent */
    sub_kv *annotations;
    size_t n_annotations;
} sub_manifest;

typedef struct sub_image_config {
    char *architecture; /* required */
    char *os;           /* required */
    char *variant;      /* optional, NULL when absent */
    char *created;      /* optional */
    char *author;       /* optional */
    char **diff_ids;    /* rootfs.diff_ids (NULL-terminated, validated digests) */
    size_t n_diff_ids;
    char *user;        /* config.User */
    char *working_dir; /* config.WorkingDir */
    char **env;        /* config.Env, NULL when absent */
    char **entrypoint; /* config.Entrypoint, NULL when absent */
    char **cmd;        /* config.Cmd, NULL when absent */
    sub_kv *labels;    /* config.Labels (sorted by key) */
    size_t n_labels;
} sub_image_config;

/* Media-type helpers. `mt` may carry parameters ("; charset=utf-8") and
 * surrounding blanks; they are ignored. */
bool sub_mt_is_image_manifest(const char *mt);
bool sub_mt_is_index(const char *mt);
bool sub_mt_is_manifest(const char *mt); /* either of the above */
bool sub_mt_is_config(const char *mt);   /* OCI or Docker image config */
/* Copy of mt without parameters or blanks, lowercased (caller frees). */
char *sub_mt_normalize(const char *mt);

/* Parse a manifest or index. content_type is the Content-Type it arrived with
 * (NULL when unknown, e.g. read from a layout). Errors are -EBADMSG (input
 * class) or -E2BIG (too large), with a message saying what is wrong. */
int sub_manifest_parse(const void *data, size_t len, const char *content_type, sub_manifest *out,
                       sub_err *e);
void sub_manifest_free(sub_manifest *m);

/* Parse one descriptor object; `what` names it in messages. */
int sub_desc_parse(const json_t *j, const char *what, sub_desc *out, sub_err *e);
void sub_desc_free(sub_desc *d);
/* The value of an annotation, or NULL (borrowed). */
const char *sub_desc_annotation(const sub_desc *d, const char *key);
const char *sub_manifest_annotation(const sub_manifest *m, const char *key);
/* Descriptor as a JSON object (new reference): mediaType, digest, size and,
 * when present, annotations, platform and artifactType. */
json_t *sub_desc_to_json(const sub_desc *d);

int sub_image_config_parse(const void *data, size_t len, sub_image_config *out, sub_err *e);
void sub_image_config_free(sub_image_config *c);
const char *sub_image_config_label(const sub_image_config *c, const char *key);

static inline void sub_manifest_freep(sub_manifest *m) { sub_manifest_free(m); }
static inline void sub_image_config_freep(sub_image_config *c) { sub_image_config_free(c); }
#define _cleanup_manifest_ _cleanup_(sub_manifest_freep)
#define _cleanup_image_config_ _cleanup_(sub_image_config_freep)
