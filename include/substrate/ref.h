/* Image references, per the OCI distribution / docker reference grammar:
 *   [registry[:port]/]path[:tag][@algorithm:hex]
 * A first path component is a registry when it contains '.' or ':' or is
 * "localhost"; without one the caller's default registry is used (Substrate
 * passes $SUBSTRATE_REGISTRY: it only ever talks to its local registry, never
 * to docker.io). Repository names are compared as written: "localhost:5000"
 * and "127.0.0.1:5000" are different registries. */
#pragma once
#include "error.h"

typedef struct sub_ref {
    char *registry;   /* "host[:port]", never NULL after a successful parse */
    char *repository; /* "path/components" */
    char *tag;        /* NULL when absent */
    char *digest;     /* "sha256:hex" or NULL when absent */
} sub_ref;

/* Parse s. default_registry may be NULL (then a registry is required).
 * All strings in *out are owned by it: release with sub_ref_free(). */
int sub_ref_parse(const char *s, const char *default_registry, sub_ref *out, sub_err *e);
void sub_ref_free(sub_ref *r);
static inline void sub_ref_freep(sub_ref *r) { sub_ref_free(r); }
#define _cleanup_ref_ _cleanup_(sub_ref_freep)

/* "registry/repository" (caller frees). */
char *sub_ref_name(const sub_ref *r);
/* Full form: name[:tag][@digest] (caller frees). */
char *sub_ref_str(const sub_ref *r);
/* tag := [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; errors explain (e.g. semver '+'). */
int sub_tag_validate(const char *tag, sub_err *e);
/* A single repository path ("a/b-c/d"), no registry. */
int sub_repo_validate(const char *repo, sub_err *e);
