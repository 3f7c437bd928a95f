/* Tier-1 service manifests (YAML, parsed with libyaml).
 *
 * A manifest names one long-running service and pins its image by digest:
 *
 *   name: hello
 *   image: 127.0.0.1:5000/substrate/hello@sha256:<64 hex>
 *   network: private            # private (default) | none | host
 *   ports: ["127.0.0.1:8080:8080"]
 *   health:    {http: "http://127.0.0.1:8080/healthz", interval: 2s, timeout: 1s,
 *               failure_threshold: 3, start_period: 1s}
 *   readiness: {http: "http://127.0.0.1:8080/readyz", deadline: 20s}
 *
 * `image` is the one place the digest lives: a tag, or a tag plus a digest,
 * is refused. The full field list, defaults and units are in the README
 * ("Service manifest") and in sub_svc_manifest below.
 *
 * Errors: every refusal (YAML syntax, unknown key, wrong type, missing or
 * invalid field) is -EINVAL, input class, with a message that starts
 * "FILE:LINE:COLUMN: " and names the field ("ports[1]: ..."). Nothing is
 * printed.
 *
 * Ownership: everything in sub_svc_manifest is owned by it; release with
 * sub_svc_manifest_done() (also after a failed parse: it is always safe). */
#pragma once
#include "digest.h"
#include "error.h"
#include "ref.h"
#include "sign.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_SVC_NAME_MAX 63 /* [a-z0-9][a-z0-9-]*, at most 63 bytes (a DNS label) */
#define SUB_SVC_MANIFEST_MAX (1u << 20)

typedef enum { SUB_NET_PRIVATE = 0, SUB_NET_NONE, SUB_NET_HOST } sub_svc_network;
typedef enum { SUB_RESTART_ALWAYS = 0, SUB_RESTART_ON_FAILURE, SUB_RESTART_NEVER } sub_svc_restart;
typedef enum { SUB_DRIFT_FLAG = 0, SUB_DRIFT_HALT } sub_svc_on_drift;
typedef enum { SUB_RUNTIME_RUNC = 0, SUB_RUNTIME_RUNSC, SUB_RUNTIME_CRUN } sub_svc_runtime;
typedef enum { SUB_PROBE_NONE = 0, SUB_PROBE_HTTP, SUB_PROBE_TCP, SUB_PROBE_EXEC } sub_probe_kind;

/* A health or readiness probe. It runs inside the service's network
 * namespace (network: private), so the address is the container's. */
typedef struct sub_probe_spec {
    sub_probe_kind kind;
    char *url;                   /* http: "http://HOST:PORT/PATH" (HOST numeric IPv4) */
    char *address;               /* tcp: "HOST:PORT" (numeric IPv4) */
    char **exec;                 /* exec: argv run in the container, NULL-terminated */
    uint32_t interval_ms;        /* default 2000 */
    uint32_t timeout_ms;         /* default 1000 */
    uint32_t failure_threshold;  /* default 3 */
    uint32_t start_period_ms;    /* default 0 */
    uint32_t deadline_ms;        /* readiness only; default start_period + threshold * interval */
} sub_probe_spec;

/* "127.0.0.1:8080:8080": published on host_addr:host_port (the host's
 * loopback by default; "8080:8080" means 127.0.0.1), forwarded to
 * container_port inside the service's network namespace. */
typedef struct sub_svc_port {
    char host_addr[64]; /* numeric IPv4 */
    uint16_t host_port;
    uint16_t container_port;
} sub_svc_port;

/* escalate: what the service may hand to a Tier-2 microVM through its
 * escalation socket (tier1.h). Absent: it cannot escalate at all. A request
 * over any of these limits is refused with the reason, never cut down. */
#define SUB_ESC_EGRESS_MAX 16
typedef struct sub_svc_escalate {
    bool enabled;                /* the block is present */
    char *image;                 /* required: the job image, REGISTRY/REPO@sha256:<hex>; its
                                  * signature must name its own repository and verify with
                                  * the manifest's keys */
    sub_ref ref;
    char **egress;               /* "IPV4:PORT" a request may ask for (NULL-terminated;
                                  * NULL = none: every job is default-deny) */
    uint32_t max_timeout_s;      /* default 30 (boot included); at most the host's cap */
    uint32_t max_memory_mb;      /* default 256; 128..16384 */
    uint32_t max_vcpus;          /* default 1; 1..16 */
    uint64_t max_input;          /* stdin + input files, bytes; default 1 MiB, at most 4 MiB */
    uint64_t max_output;         /* outputs copied back, bytes; default 1 MiB, at most 64 MiB */
    uint32_t concurrency;        /* jobs at once; default 1; 1..64 */
    uint32_t queue;              /* requests that may wait for a slot; default 4; 0..1024 */
    uint32_t queue_wait_ms;      /* how long one may wait; default 60 s */
    uint32_t per_minute;         /* requests admitted in any 60 s; default 60; 1..100000 */
} sub_svc_escalate;

typedef struct sub_svc_manifest {
    char *path;             /* the file as given */
    char *dir;              /* its directory: relative key paths resolve here */
    char *name;             /* required */
    char *image;            /* required: "REGISTRY/REPO@sha256:<hex>" as written */
    sub_ref ref;            /* image, parsed (ref.digest set, ref.tag NULL) */
    /* identity policy, as `substrate verify` has it */
    sub_identity_policy policy; /* default SUB_IDENTITY_EXACT */
    char *identity;         /* NULL: "registry/repository" of image */
    char **keys;            /* key ids (trust store) or paths (relative to dir);
                             * NULL-terminated; NULL = the whole trust store */
    size_t nkeys;
    /* process; NULL = from the image config */
    char **command;         /* replaces the image's entrypoint (NULL-terminated) */
    char **args;            /* replaces the image's cmd (NULL-terminated) */
    char **env;             /* "KEY=VALUE", added to / overriding the image's env */
    char *workdir;
    char *user;             /* "uid[:gid]" numeric */
    /* network */
    sub_svc_network network;
    sub_svc_port *ports;
    size_t nports;          /* refused with network: none */
    sub_probe_spec health;  /* kind SUB_PROBE_NONE when absent */
    sub_probe_spec readiness;
    /* lifecycle */
    sub_svc_restart restart;     /* default always */
    uint32_t backoff_initial_ms; /* default 500 */
    uint32_t backoff_max_ms;     /* default 30000 */
    uint32_t stop_grace_ms;      /* default 10000 */
    sub_svc_on_drift on_drift;   /* default flag */
    uint32_t align_interval_ms;  /* default 60000; 0 = off */
    uint32_t deep_align_interval_ms; /* default 0 = off */
    uint32_t verify_max_age_ms;  /* how old a cached verification align may use
                                  * when the registry is unreachable; default 86400000 */
    /* resources; 0 = no limit */
    uint64_t memory_bytes;       /* "256Mi", "1G", bytes */
    uint32_t pids;
    uint32_t cpu_millis;         /* "0.5" or "500m" -> 500 */
    sub_svc_runtime runtime;     /* default runc */
    char **capabilities;         /* added capabilities ("CAP_NET_BIND_SERVICE"),
                                  * NULL-terminated; default none */
    sub_svc_escalate escalate;   /* escalate: (enabled false when absent) */
    char source_digest[SUB_DIGEST_MAX];     /* sha256 of the manifest's bytes as parsed ("" from JSON) */
} sub_svc_manifest;

/* Read and parse a manifest file (at most SUB_SVC_MANIFEST_MAX bytes). */
int sub_svc_manifest_load(const char *path, sub_svc_manifest *out, sub_err *e);
/* Parse manifest text; path is used for messages and to resolve key paths. */
int sub_svc_manifest_parse(const char *text, size_t len, const char *path, sub_svc_manifest *out,
                           sub_err *e);
void sub_svc_manifest_done(sub_svc_manifest *m);
static inline void sub_svc_manifest_donep(sub_svc_manifest *m) { sub_svc_manifest_done(m); }
#define _cleanup_svc_manifest_ _cleanup_(sub_svc_manifest_donep)

/* The manifest's canonical JSON form (every field, defaults filled in, keys
 * sorted): what reconcile compares to decide "unchanged", and what the
 * supervisor reads. Caller frees. */
char *sub_svc_manifest_to_json(const sub_svc_manifest *m);
/* The reverse, for the supervisor reading what reconcile wrote. */
int sub_svc_manifest_from_json(const char *json, size_t len, sub_svc_manifest *out, sub_err *e);

const char *sub_svc_network_str(sub_svc_network n);   /* "private" */
const char *sub_svc_runtime_str(sub_svc_runtime r);   /* "runc" */
const char *sub_svc_restart_str(sub_svc_restart r);   /* "always" */
