/* Image specs: platform/images/<name>/image.json, read from the clean export
 * of the commit being built. Strict: unknown keys, wrong types, bad modes,
 * relative or escaping paths are errors naming the field.
 *
 *   {
 *     "name": "hello",                         must equal the directory name
 *     "description": "one line",
 *     "source": "https://...",                 org.opencontainers.image.source (else
 *                                              platform/source.json; see build.h)
 *     "build": ["make", "-s", "-f", "..."],    argv run in the export root (optional)
 *     "build_packages": ["gcc-12", "libc6-dev"], Debian packages the build uses
 *                                              (names as Debian policy spells them);
 *                                              their versions are recorded in a label
 *     "files": [{"from": "out:hello" | "src:path/in/repo" | "host:/abs/path",
 *                "package": "deb-package (required for host:)",
 *                "to": "/abs/path/in/image", "mode": "0755"}],
 *     "dirs": [{"path": "/tmp", "mode": "1777"}],
 *     "symlinks": [{"path": "/bin/sh", "target": "busybox"}],
 *     "config": {"entrypoint": [], "cmd": [], "env": ["K=V"], "workdir": "/",
 *                "user": "65534:65534", "ports": ["8080/tcp"], "labels": {"k": "v"}}
 *   }
 * Ownership: sub_imagespec owns every string; free with sub_imagespec_free(). */
#pragma once
#include "error.h"

typedef enum { SUB_FROM_OUT, SUB_FROM_SRC, SUB_FROM_HOST } sub_from_kind;

typedef struct sub_spec_file {
    sub_from_kind kind;
    char *from;    /* path relative to $OUT / the export, or absolute host path */
    char *package; /* host: the Debian package that owns it */
    char *to;      /* absolute path in the image */
    unsigned mode;
} sub_spec_file;

typedef struct sub_spec_dir {
    char *path;
    unsigned mode;
} sub_spec_dir;

typedef struct sub_spec_link {
    char *path;
    char *target;
} sub_spec_link;

typedef struct sub_imagespec {
    char *name;
    char *description;
    char *source;
    char **build; /* NULL-terminated argv, or NULL */
    char **build_packages; /* NULL-terminated, may be NULL */
    sub_spec_file *files;
    size_t n_files;
    sub_spec_dir *dirs;
    size_t n_dirs;
    sub_spec_link *links;
    size_t n_links;
    char **entrypoint, **cmd, **env, **ports; /* NULL-terminated, may be NULL */
    char *workdir, *user;
    char **label_keys, **label_values; /* parallel, NULL-terminated, sorted by key; never NULL */
} sub_imagespec;

/* Parse the spec file at path; `expect_name` (may be NULL) must match "name". */
int sub_imagespec_load(const char *path, const char *expect_name, sub_imagespec *out, sub_err *e);
void sub_imagespec_free(sub_imagespec *s);
/* Image names: [a-z0-9][a-z0-9-]* (also the repository name pushed to). */
int sub_image_name_validate(const char *name, sub_err *e);
