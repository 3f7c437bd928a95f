/* The golden VM spec (platform/vm/golden.yaml; YAML, parsed with libyaml).
 *
 * The golden VM is a complete Substrate host, provisioned from this one
 * declarative file:
 *
 *   name: golden                 # [a-z0-9-], the VM's name (default golden)
 *   suite: bookworm              # bookworm | trixie
 *   cpus: 2                      # 1..64
 *   memory: 4Gi                  # 512Mi..256Gi
 *   disk: 16Gi                   # 4Gi..2Ti
 *   packages: [htop]             # beyond the base set (scripts/debian-packages)
 *   users:
 *     - {name: substrate, sudo: true, ssh_keys: ["ssh-ed25519 AAAA... me@host"]}
 *   services: [hello]            # platform/manifests/<name>.service.yaml
 *   ssh_port: 2222               # host loopback port forwarded to the guest's 22
 *
 * Every key is optional; unknown and repeated keys are refused at any level.
 *
 * Two hashes split the fields by what a change costs (sub_vm_spec_diff):
 * the image key covers what is baked into the disk image (suite, disk size,
 * every package, users and their keys, services, the mirror's Release file
 * and Substrate's commit): a change means a rebuild. The boot key covers what
 * is only given to qemu (cpus, memory, ssh_port): a change means a restart
 * of the cached image. The name is in neither: it names the VM's runtime
 * files, not its contents.
 *
 * Errors: every refusal is -EINVAL, input class, reason SUB_R_BAD_VM_SPEC,
 * message "FILE:LINE:COL: FIELD: what is wrong (what would be right)".
 * Nothing is printed.
 *
 * Ownership: everything in sub_vm_spec is owned by it; release with
 * sub_vm_spec_done() (also after a failed parse: it is always safe). */
#pragma once
#include "digest.h"
#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_VM_SPEC_MAX (1u << 20)
#define SUB_VM_NAME_MAX 63
#define SUB_VM_PACKAGE_LIST "scripts/debian-packages" /* the base set, relative to the repo */
#define SUB_VM_MANIFEST_DIR "platform/manifests"      /* <name>.service.yaml */

typedef struct sub_vm_user {
    char *name;      /* [a-z_][a-z0-9_-]*, at most 32 bytes, not root */
    char **ssh_keys; /* "TYPE BASE64 [comment]" lines, NULL-terminated (never NULL) */
    bool sudo;       /* default false */
} sub_vm_user;

typedef struct sub_vm_spec {
    char *path;            /* the file as given (NULL for text without one) */
    char *name;            /* default "golden" */
    char *suite;           /* "bookworm" (default) or "trixie" */
    uint32_t cpus;         /* default 2 */
    uint64_t memory_bytes; /* default 4Gi */
    uint64_t disk_bytes;   /* default 16Gi */
    char **base_packages;  /* scripts/debian-packages of the repo given to the parser, sorted,
                            * deduplicated; empty without a repo (never NULL) */
    char **packages;       /* the spec's own packages, sorted, deduplicated (never NULL) */
    sub_vm_user *users;
    size_t nusers;
    char **services;       /* as written (order kept; a name twice is refused) (never NULL) */
    uint16_t ssh_port;     /* default 2222 */
} sub_vm_spec;

/* Parse spec text. path names the file in messages. repo_dir, when not NULL,
 * is the Substrate checkout the VM is made from: each service must have
 * REPO/platform/manifests/<name>.service.yaml, and base_packages is read from
 * REPO/scripts/debian-packages (an unreadable list is an env error). Without
 * repo_dir, service names are only checked for their form and base_packages
 * stays empty. */
int sub_vm_spec_parse(const char *text, size_t len, const char *path, const char *repo_dir,
                      sub_vm_spec *out, sub_err *e);
/* Read (at most SUB_VM_SPEC_MAX bytes) and parse a spec file. */
int sub_vm_spec_load(const char *path, const char *repo_dir, sub_vm_spec *out, sub_err *e);
void sub_vm_spec_done(sub_vm_spec *s);
static inline void sub_vm_spec_donep(sub_vm_spec *s) { sub_vm_spec_done(s); }
#define _cleanup_vm_spec_ _cleanup_(sub_vm_spec_donep)

/* Every package the image gets: base_packages and packages, sorted and
 * deduplicated. NULL-terminated; caller frees (strv_free). */
char **sub_vm_spec_all_packages(const sub_vm_spec *s);

/* The canonical JSON form: every field (defaults filled in), keys sorted,
 * compact; path is left out. Caller frees. */
char *sub_vm_spec_to_json(const sub_vm_spec *s);

/* The cache key of the disk image: "sha256:<hex>" over the canonical JSON of
 * the image fields (suite, disk_bytes, all packages, users, services), the
 * digest of the mirror's Release file and Substrate's commit (both required,
 * non-empty). -EINVAL without them. */
int sub_vm_spec_image_key(const sub_vm_spec *s, const char *mirror_release_digest,
                          const char *commit, char out[SUB_DIGEST_MAX], sub_err *e);
/* The key of how the image is booted: "sha256:<hex>" over cpus, memory_bytes, ssh_port. */
void sub_vm_spec_boot_key(const sub_vm_spec *s, char out[SUB_DIGEST_MAX]);

typedef enum {
    SUB_VM_SAME = 0,   /* nothing that matters changed (the name may have) */
    SUB_VM_RESTART,    /* only boot fields changed: restart the cached image */
    SUB_VM_REBUILD,    /* an image field changed: build a new image */
} sub_vm_change;

/* What the image is made from besides the spec (provision-vm records both). */
typedef struct sub_vm_inputs {
    const char *release_digest; /* the mirror's Release file, "sha256:<hex>" */
    const char *commit;         /* Substrate's commit */
} sub_vm_inputs;

/* What going from old to new needs. old_in and new_in may both be NULL (then
 * only the specs are compared). why (may be NULL) gets a sentence naming
 * every field that changed, e.g. "cpus 2 -> 4, memory 4Gi -> 8Gi: restart
 * without rebuild" or "packages changed, suite bookworm -> trixie: rebuild";
 * "no change" for SUB_VM_SAME. Caller frees *why. It agrees with the keys: a
 * rebuild exactly when the image key changes, else a restart exactly when the
 * boot key does. */
sub_vm_change sub_vm_spec_diff(const sub_vm_spec *old, const sub_vm_inputs *old_in,
                               const sub_vm_spec *new_, const sub_vm_inputs *new_in, char **why);
const char *sub_vm_change_str(sub_vm_change c); /* "same", "restart", "rebuild" */
