/* Kubernetes: render Tier-1 service manifests and Tier-2 jobspecs as
 * Kubernetes objects with the same guarantees (`substrate render k8s`;
 * README "Running on Kubernetes" has the mapping table).
 *
 *   manifest -> ClusterImagePolicy, NetworkPolicy, Service (published ports
 *               only), Deployment
 *   jobspec  -> ClusterImagePolicy, NetworkPolicy, Job
 *   --with-runtime-class: the RuntimeClass objects the rest name, first.
 *
 * Nothing is rendered before the deploy-time check passed, as reconcile and
 * the Tier-2 runner make it: a manifest's image is admitted under its
 * identity policy with the keys it names (sub_t1_admit_manifest); a
 * jobspec's bytes verify with their blob signature first, then parse, then
 * its image is admitted (sub_job_authorize, sub_job_admit_image).
 *
 * The mapping itself (sub_k8s_render_manifest / _jobspec) is pure: it takes
 * a parsed document and the admission's outcome (sub_k8s_admitted) and
 * appends jansson objects, so it is tested without a registry. Objects are
 * built key by key in a fixed order and emitted in that order: the same
 * input gives byte-identical output.
 *
 * What has no Kubernetes equivalent is never dropped silently: each such
 * field present in the input is reported through the note callback, one
 * line each ("hello: pids: 64 has no Kubernetes equivalent (...); not
 * rendered"). What Kubernetes would grant beyond the local guarantees is
 * refused instead: `network: host` (hostNetwork breaks the isolation), an
 * egress entry by name (a NetworkPolicy has only ipBlocks).
 *
 * Errors: input problems (a bad file, a refusal above, bad options) are
 * input class (exit 2); a signature that does not verify is check class
 * (exit 1); the registry or trust store unreachable keeps its class.
 * Nothing is printed. Ownership: strings and json_t returned are the
 * caller's. */
#pragma once
#include "error.h"
#include "jobspec.h"
#include "svc-manifest.h"
#include <jansson.h>
#include <stdbool.h>

#define SUB_K8S_RUNTIME_CLASS_DEFAULT "kata"   /* Tier-2 jobs */
#define SUB_K8S_GVISOR_CLASS_DEFAULT "gvisor"  /* runtime: runsc */
#define SUB_K8S_JOB_TTL_S 3600                 /* ttlSecondsAfterFinished of a Job */

typedef void (*sub_k8s_note_fn)(void *ud, const char *msg);

typedef struct sub_k8s_opts {
    const char *namespace_;      /* metadata.namespace of namespaced objects; NULL: none */
    const char *runtime_class;   /* jobs' runtimeClassName; NULL: SUB_K8S_RUNTIME_CLASS_DEFAULT */
    const char *gvisor_class;    /* runtime: runsc; NULL: SUB_K8S_GVISOR_CLASS_DEFAULT */
    bool with_runtime_class;     /* also emit the RuntimeClass objects */
    char *const *key_files;      /* jobspecs: trusted public keys (NULL: the trust store) */
    sub_k8s_note_fn note;        /* what does not map (may be NULL) */
    void *ud;
} sub_k8s_opts;

/* Check the names in o (DNS labels / subdomains, as Kubernetes wants). */
int sub_k8s_opts_check(const sub_k8s_opts *o, sub_err *e);

/* What the deploy-time check decided, for the pure mapping. */
typedef struct sub_k8s_key {
    const char *id;              /* "sha256:<hex>" (sub_pubkey_id) */
    const char *pem;             /* PEM "PUBLIC KEY" */
} sub_k8s_key;
typedef struct sub_k8s_admitted {
    const char *doc_digest;      /* "sha256:<hex>" of the manifest's / jobspec's bytes */
    const char *doc_key_id;      /* jobspec: the key its blob signature verified with; NULL for manifests */
    const char *key_id;          /* the key the image's signature verified with */
    const sub_k8s_key *keys;     /* the keys trusted for the image (the ClusterImagePolicy's), any order */
    size_t nkeys;
} sub_k8s_admitted;

/* Append the objects for one manifest / jobspec to items (a JSON array).
 * The refusals above are made here (input class, nothing appended). */
int sub_k8s_render_manifest(const sub_svc_manifest *m, const sub_k8s_admitted *a, const sub_k8s_opts *o,
                            json_t *items, sub_err *e);
int sub_k8s_render_jobspec(const sub_jobspec *j, const sub_k8s_admitted *a, const sub_k8s_opts *o,
                           json_t *items, sub_err *e);
/* The RuntimeClass objects items name (runtimeClassName), sorted by name;
 * a new array. */
json_t *sub_k8s_runtime_classes(const json_t *items, const sub_k8s_opts *o);
/* Refuse two objects of one kind, namespace and name (two files naming the
 * same service). */
int sub_k8s_check_unique(const json_t *items, sub_err *e);
/* The first "HOST:PORT" in a jobspec's egress.allow whose host is not a
 * numeric IPv4 address: refused with the NetworkPolicy reason. path names
 * the file in the message. 0 when there is none (or the text is not JSON:
 * the parser says what is wrong then). */
int sub_k8s_check_egress_names(const char *text, size_t len, const char *path, sub_err *e);

/* Output. YAML: one block-style document per object, "---" between them,
 * keys in insertion order, a string quoted (JSON-style double quotes)
 * whenever a YAML 1.1 or 1.2 reader could take it for something else;
 * multi-line text (a PEM key) as a literal block. JSON: a v1 List holding
 * the objects, indented by 2. Both end in a newline. */
typedef enum { SUB_K8S_YAML = 0, SUB_K8S_JSON } sub_k8s_format;
char *sub_k8s_emit(const json_t *items, sub_k8s_format f);
/* One YAML document (no "---"), for tests. */
char *sub_k8s_yaml_doc(const json_t *v);

/* Everything: each file (a name ending in ".json" is a jobspec, anything
 * else a service manifest), checked and mapped in order, then emitted.
 * *out is set only when every file rendered. */
int sub_k8s_render_files(char *const *files, const sub_k8s_opts *o, sub_k8s_format f, char **out, sub_err *e);
