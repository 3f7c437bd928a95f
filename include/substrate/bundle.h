/* OCI runtime bundles for Tier-1 services: the runtime config (config.json)
 * is the output of a pure function of the manifest, the image config and a
 * few paths, so it can be unit-tested without root and validated against the
 * OCI runtime-spec schema.
 *
 * What the config says (runtime-spec 1.0.2, Linux):
 *   - root: the cache entry's rootfs (absolute path), readonly;
 *   - process: args = command/args from the manifest, else the image's
 *     entrypoint + cmd (command replaces entrypoint, args replaces cmd, as in
 *     Kubernetes); env = the image's env overridden by the manifest's;
 *     cwd = manifest workdir, else the image's, else "/"; user = manifest,
 *     else image (numeric "uid[:gid]" only; a name is refused, input class);
 *     noNewPrivileges; every capability set empty except the manifest's
 *     `capabilities`; rlimit NOFILE 1024;
 *   - mounts: /proc, /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys
 *     (ro), /tmp (tmpfs, 1777, nosuid,nodev), /run (tmpfs); with an
 *     escalate: policy, the escalation socket's directory at /run/substrate;
 *   - linux: namespaces pid, ipc, uts, mount, and network unless network:
 *     host; cgroupsPath (given); resources from the manifest (memory limit,
 *     pids limit, cpu quota/period); maskedPaths and readonlyPaths as runc's
 *     defaults; a default seccomp profile (SCMP_ACT_ERRNO default with an
 *     allowlist, like the container engines' defaults);
 *   - annotations: dev.substrate.service, dev.substrate.manifest (path),
 *     dev.substrate.image (REGISTRY/REPO@digest), dev.substrate.image.digest,
 *     dev.substrate.generation.
 *
 * Ownership: inputs are borrowed; *out / strings returned belong to the
 * caller. */
#pragma once
#include "error.h"
#include "manifest.h"
#include "svc-manifest.h"
#include <jansson.h>

typedef struct sub_bundle_opts {
    const sub_svc_manifest *m;       /* required */
    const sub_image_config *image;   /* required: the image's config */
    const char *rootfs;              /* required: absolute path */
    const char *cgroup_path;         /* required: e.g. "/substrate/hello-3" */
    const char *hostname;            /* NULL: the service name */
    unsigned long generation;        /* for the annotation */
    const char *escalate_dir;        /* with m->escalate: the host directory holding the
                                      * escalation socket, bind-mounted (nosuid, nodev,
                                      * noexec) at SUB_ESCALATE_DIR; required then */
} sub_bundle_opts;

/* Where a service with an escalate: policy finds its escalation socket. A
 * directory is bound rather than the socket itself, so a restarted broker's
 * new socket is seen without restarting the container. */
#define SUB_ESCALATE_DIR "/run/substrate"
#define SUB_ESCALATE_SOCK SUB_ESCALATE_DIR "/escalate.sock"

/* Build config.json as JSON (new reference in *out). */
int sub_bundle_config(const sub_bundle_opts *o, json_t **out, sub_err *e);
/* Create bundle_dir (mode 0700) and write config.json into it atomically. */
int sub_bundle_write(const char *bundle_dir, const sub_bundle_opts *o, sub_err *e);
