/* Tier-2 jobspecs (JSON): what one ephemeral microVM job runs, with which
 * image (by digest), under which limits, and where it may connect.
 *
 *   {"name": "probe-demo",
 *    "image": "127.0.0.1:5000/job@sha256:<hex>",
 *    "command": ["/bin/sh", "-c"], "args": ["probe connect 127.0.0.1:9"],
 *    "timeout": 60, "vcpus": 1, "memory_mb": 128,
 *    "egress": {"allow": []}, "probes": ["10.0.2.2:80"]}
 *
 * A jobspec is trusted only through its signature (`substrate sign-blob`,
 * checked against the trust store or --key, never a key the jobspec names);
 * this parser only decides whether the text is a well-formed jobspec.
 * Fields (the README's "Jobspec" has the table):
 *   name        required, [a-z0-9][a-z0-9-]*, at most 63 bytes
 *   image       required, REGISTRY/REPO@sha256:<hex>; a tag is refused
 *   identity | repo_prefix | any_repo   the signature policy, as `verify`
 *   command, args, env (["K=V"] or {"K": "V"}), workdir (absolute), user
 *               ("uid[:gid]" numeric; NULL = the image's if it is not root,
 *               else 65534; "0" only when written), stdin (a string, at most
 *               SUB_JOB_STDIN_MAX bytes)
 *   timeout     required, whole seconds >= 1, boot included, at most the
 *               host's cap (the caller's timeout_max_s)
 *   vcpus       1..16 (default 1); memory_mb 128..16384 (default 256; the
 *               kernel image alone takes 66 MB of guest RAM: 64 MiB hangs at boot)
 *   egress      {"allow": ["HOST:PORT", ...]} numeric IPv4; absent or empty =
 *               deny all
 *   probes      ["HOST:PORT", ...] reachability tested from inside the guest
 *               and recorded (at most 16)
 *   inputs      [{"path": "/abs/path", "content": "text", "mode": "0644"}]
 *               at most 64 files, SUB_JOB_INPUTS_MAX bytes in all
 *   outputs     {"paths": ["/abs/path", ...], "max_bytes": N} copied back
 *               (default max 1 MiB in all, at most 64 MiB)
 *   tier        2 (default): a microVM; 0: a plain process in namespaces on
 *               the host kernel (tier2.h, "Tier-0"). A tier-0 jobspec is
 *               refused when it has a non-empty egress.allow (loopback only),
 *               a "user" (it always runs as its per-job uid), or a
 *               secret-like env entry: the secret rule
 *               (sub_jobspec_secret_like) is a NAME that contains PASSWORD,
 *               SECRET or TOKEN, or ends in _KEY (any case), or a VALUE that
 *               contains both "-----BEGIN" and "PRIVATE KEY".
 * Errors: unknown keys (at any level), wrong types, duplicate keys, bad
 * values: -EINVAL, input class, reason SUB_R_BAD_JOBSPEC, message
 * "FILE: FIELD: what is wrong (what would be right)". Nothing printed.
 * Ownership: sub_jobspec owns all it points to; sub_jobspec_done frees it
 * (safe after a failed parse). */
#pragma once
#include "error.h"
#include "ref.h"
#include "sign.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_JOBSPEC_MAX (1u << 20)
#define SUB_JOB_STDIN_MAX (1u << 20)
#define SUB_JOB_INPUTS_MAX (4u << 20)
#define SUB_JOB_TIMEOUT_MAX_DEFAULT 3600 /* $SUBSTRATE_JOB_TIMEOUT_MAX overrides */

typedef struct sub_hostport {
    char host[16]; /* dotted IPv4 */
    uint16_t port;
} sub_hostport;

typedef struct sub_job_input {
    char *path;
    char *content;
    size_t len;
    unsigned mode;
} sub_job_input;

typedef struct sub_jobspec {
    char *path;                  /* as given, for messages */
    char *name;
    char *image;
    sub_ref ref;                 /* digest set, tag NULL */
    sub_identity_policy policy;
    char *identity;              /* NULL: registry/repository of image */
    char **command, **args;      /* NULL = the image's */
    char **env;                  /* "K=V", sorted by name; NULL when none */
    char *workdir, *user;        /* NULL = the image's / the rule above */
    char *stdin_data;            /* NULL when none */
    size_t stdin_len;
    uint32_t timeout_s, vcpus, memory_mb;
    sub_hostport *egress;        /* allowed destinations */
    size_t negress;
    sub_hostport *probes;
    size_t nprobes;
    sub_job_input *inputs;
    size_t ninputs;
    char **outputs;              /* NULL-terminated; NULL when none */
    uint64_t output_max_bytes;
    uint8_t tier;                /* 0 or 2 (default) */
} sub_jobspec;

/* The host's cap on timeouts: $SUBSTRATE_JOB_TIMEOUT_MAX (seconds) or the default. */
uint32_t sub_job_timeout_max(void);
int sub_jobspec_parse(const char *text, size_t len, const char *path, uint32_t timeout_max_s,
                      sub_jobspec *out, sub_err *e);
int sub_jobspec_load(const char *path, uint32_t timeout_max_s, sub_jobspec *out, sub_err *e);
void sub_jobspec_done(sub_jobspec *j);
/* The secret rule above for one "K=V" entry: NULL when it is not
 * secret-like, else what matched ("PASSWORD", "SECRET", "TOKEN", "_KEY",
 * "PRIVATE KEY"; static). */
const char *sub_jobspec_secret_like(const char *kv);
static inline void sub_jobspec_donep(sub_jobspec *j) { sub_jobspec_done(j); }
#define _cleanup_jobspec_ _cleanup_(sub_jobspec_donep)
