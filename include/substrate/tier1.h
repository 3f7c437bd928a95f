/* Tier-1 services: reconcile a manifest into a supervised container, prove
 * what runs (align), and the supervisor tree that keeps it running.
 *
 * State, under $SUBSTRATE_STATE/tier1/:
 *   images/                  OCI layout: every image deployed, pulled by digest
 *   rootfs/<hex>/            unpacked root filesystems (rootfs.h)
 *   runc/                    the OCI runtime's state (--root)
 *   root.lock                held by the root supervisor while it runs
 *   supervise.log            the root supervisor's own log
 *   services/NAME/
 *     lock                   held by NAME's supervisor while it runs
 *     control.sock           its control socket (one JSON request per connection)
 *     desired.json           what reconcile asked for (written before "deploy")
 *     state.json             what runs: written by the supervisor only
 *     verified.json          the last signature verification that passed
 *     align.json             the last align result
 *     gen-G/config.json      the bundle of generation G (root: rootfs/<hex>/rootfs)
 *     logs/current, .1, .2   the service's stdout and stderr, size-capped
 *
 * The supervisor tree (s6-style): a root supervisor (`substrate supervise`),
 * detached from reconcile, keeps one supervisor per service alive (checked
 * every 250 ms by trying the service's lock; a dead one is restarted after at
 * least 1 s). A service supervisor is a child subreaper: it runs the OCI
 * runtime detached, holds a pidfd on the container's init, owns the
 * published ports (svcnet.h proxy), runs probes and periodic alignment, and
 * answers on control.sock. Killed and restarted, it adopts the running
 * container after checking it (pid start time, runtime state, process root
 * == the bundle's rootfs, digest annotation). If the root dies the service
 * supervisors keep serving; the next reconcile restarts the root.
 *
 * Errors: -errno with e filled (reason codes from error.h); nothing printed.
 * Progress goes through the note callback. */
#pragma once
#include "error.h"
#include "jobspec.h"
#include "svc-manifest.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef void (*sub_t1_note_fn)(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- paths ---- */
/* $SUBSTRATE_STATE/tier1[/rel] (caller frees). */
char *sub_t1_path(const char *rel);
/* $SUBSTRATE_STATE/tier1/services/NAME[/rel] (caller frees). */
char *sub_t1_svc_path(const char *name, const char *rel);

/* ---- reconcile ---- */
typedef enum {
    SUB_T1_STARTED = 0, /* nothing ran; now the version serves */
    SUB_T1_UNCHANGED,   /* same digest and same rendered config: nothing done */
    SUB_T1_PROMOTED,    /* a new version serves, the old one is retired */
    SUB_T1_RESTARTED,   /* same version, but it was not running: started again */
} sub_t1_outcome;
const char *sub_t1_outcome_str(sub_t1_outcome o);

typedef struct sub_t1_reconcile_result {
    sub_t1_outcome outcome;
    char digest[80];        /* what serves now */
    char previous[80];      /* what served before ("" if nothing) */
    char key_id[80];        /* the key that verified the image */
    unsigned long generation;
    bool rolled_back;       /* the new version failed and the previous one still serves */
    bool stop_then_start;   /* network: host: the port cannot be held by both */
    double seconds;
} sub_t1_reconcile_result;

typedef struct sub_t1_reconcile_opts {
    const sub_svc_manifest *m;
    sub_t1_note_fn note;  /* progress; may be NULL */
    void *ud;
    const char *self_exe; /* the substrate binary to start supervisors with; NULL = /proc/self/exe */
} sub_t1_reconcile_opts;

/* Admit (signature under the manifest's policy), pull by digest, unpack,
 * render the bundle, make sure the supervisor tree runs, and ask the
 * service's supervisor to deploy; returns once the version serves (0), or
 * the new version failed and the previous one still serves (-EKEYREJECTED is
 * kept for refusals; a readiness failure is -ETIMEDOUT, check class, reason
 * SUB_R_NOT_READY, with res->rolled_back). A refusal changes nothing. */
int sub_t1_reconcile(const sub_t1_reconcile_opts *o, sub_t1_reconcile_result *res, sub_err *e);

/* The admission check reconcile makes before a deploy, recording nothing:
 * m's image (digest: another digest of its repository; NULL: m's own) under
 * m's identity policy with the keys m names, or the trust store when it
 * names none (sub_admit_image). ad is filled as far as the check got; its
 * keys (ad->keys: the keys trusted for the image) live until
 * sub_admission_free. */
struct sub_reg;
struct sub_admission;
int sub_t1_admit_manifest(const sub_svc_manifest *m, const char *digest, struct sub_reg *reg,
                          struct sub_admission *ad, sub_err *e);

/* Make sure the root supervisor runs (start it detached when not). */
int sub_t1_ensure_root(const char *self_exe, sub_err *e);

/* ---- stop / status ---- */
/* Stop the service (idempotent): its supervisor routes new connections away,
 * stops the container (SIGTERM, SIGKILL after stop_grace), removes its
 * runtime state and cgroup, and exits; the state says "stopped" so nothing
 * restarts it. 1 when something was running, 0 when it already was stopped,
 * -ENOENT (input, SUB_R_NOT_RECONCILED) for a service never reconciled. */
int sub_t1_stop(const char *name, sub_err *e);

/* The state record of NAME (state.json, plus "supervisor": alive or not),
 * as JSON (new reference). Only reads. */
struct json_t;
int sub_t1_status(const char *name, struct json_t **out, sub_err *e);
/* Names of every service ever reconciled (NULL-terminated, sorted). */
int sub_t1_list(char ***names, sub_err *e);

/* ---- align ---- */
typedef struct sub_t1_check {
    const char *name;   /* "digest", "process", "signature", "rootfs" */
    int result;         /* 1 pass, 0 fail, -1 cannot decide */
    char detail[512];
} sub_t1_check;

typedef struct sub_t1_align_result {
    char service[SUB_SVC_NAME_MAX + 1];
    char manifest_digest[80];
    char running_digest[80];
    char key_id[80];
    sub_t1_check checks[4];
    size_t nchecks;
    bool aligned;        /* every check passed */
    bool undecided;      /* some check could not decide (and none failed) */
    char **reasons;      /* NULL-terminated, one per failed check (owned) */
    double seconds;
    bool halted;         /* on_drift: halt stopped the service */
} sub_t1_align_result;

typedef struct sub_t1_align_opts {
    const sub_svc_manifest *m;
    bool deep;
    bool act;            /* apply on_drift: halt (the CLI and the supervisor do) */
    bool in_supervisor;  /* called by the service's own supervisor (no socket call to halt) */
} sub_t1_align_opts;

/* ALIGNED: 0 with res->aligned. DRIFT: 0 with !aligned and reasons.
 * Undecided (registry unreachable and no verification recent enough):
 * 0 with undecided. -ENOENT (SUB_R_NOT_RECONCILED) when the service was never
 * reconciled. The result is also written to services/NAME/align.json. */
int sub_t1_align(const sub_t1_align_opts *o, sub_t1_align_result *res, sub_err *e);
void sub_t1_align_result_done(sub_t1_align_result *r);
struct json_t *sub_t1_align_json(const sub_t1_align_result *r);

/* ---- align against Kubernetes (align --k8s) ----
 * The same question as sub_t1_align, asked of the pods a cluster runs for the
 * service: `kubectl get pods -l app.kubernetes.io/name=NAME -o json` (a v1
 * List, or a PodList). ALIGNED only when there is at least one pod and every
 * pod is Running, runs the manifest's digest (its container status's imageID,
 * the digest after the last '@') from the manifest's repository, names its
 * image by digest (a tag is DRIFT even when the imageID matches), is ready
 * (condition Ready "True" and the container ready), and the manifest's digest
 * verifies now under the manifest's policy (sub_t1_align's rule: when the
 * registry cannot be asked, a verification by an earlier align --k8s on this
 * host, recorded in $SUBSTRATE_STATE/k8s/verified/NAME.json, stands in while
 * younger than verify_max_age; else it cannot decide, never ALIGNED).
 *
 * The service's container in a pod: the one named like the service (the
 * renderer names it so); else the only one; else every container whose image
 * is in the manifest's repository. A pod being deleted (deletionTimestamp)
 * is still checked (it still runs until it is gone) but does not count as
 * the "at least one". With a namespace given, pods of other namespaces are
 * left out (and counted in ignored).
 *
 * Nothing local changes: no service is halted, no align.json is written. */
#define SUB_T1_K8S_PODS_MAX (64u << 20) /* the pod list's size limit */
#define SUB_T1_K8S_TIMEOUT_MS 30000     /* how long kubectl may take */

typedef struct sub_t1_k8s_container {
    char *name;
    char *image;         /* spec.containers[].image */
    char *image_id;      /* status.containerStatuses[].imageID ("" when none) */
    char *digest;        /* the digest in image_id ("" when none) */
    bool ready;
} sub_t1_k8s_container;

typedef struct sub_t1_k8s_pod {
    char *name;
    char *namespace_;    /* metadata.namespace ("" when absent) */
    char *phase;         /* status.phase ("" when absent) */
    char *digest;        /* what its service container(s) run: one digest, or "" */
    bool ready;          /* condition Ready "True" and every service container ready */
    bool terminating;    /* metadata.deletionTimestamp set */
    sub_t1_k8s_container *containers; /* the service's containers in it */
    size_t ncontainers;
    char **reasons;      /* why it differs (NULL-terminated; empty when it is aligned) */
} sub_t1_k8s_pod;

typedef struct sub_t1_k8s_result {
    sub_t1_align_result a;  /* service, verdict, manifest_digest, running_digest (the one
                             * digest every pod runs, else ""), key_id, checks (running,
                             * digest, ready, signature), reasons ("pod NAME: why"), seconds */
    sub_t1_k8s_pod *pods;
    size_t npods;
    size_t ignored;         /* pods of other namespaces left out */
    char **running_digests; /* every digest the pods run, sorted, once each */
    char *namespace_;       /* the namespace asked for, NULL when none */
    char *source;           /* where the list came from: a file, "stdin", the kubectl argv */
} sub_t1_k8s_result;

/* Parse kubectl's output: a JSON object of kind List or PodList with an items
 * array of objects (kind Pod when present), each with metadata.name. -EINVAL
 * (input class, reason SUB_R_BAD_POD_LIST) naming what is wrong; what names
 * the input in messages. */
int sub_t1_k8s_pods_parse(const char *text, size_t len, const char *what, struct json_t **out, sub_err *e);

/* The verdict over a parsed pod list (pure: no registry, no cluster): sig is
 * the signature check's outcome (result 1, 0 or -1, its detail) and key_id
 * the verifying key. namespace_ NULL: every pod. res is filled (release with
 * sub_t1_k8s_result_done, also after a failure); 0, or -EINVAL for a list
 * sub_t1_k8s_pods_parse would refuse. */
int sub_t1_align_k8s_eval(const sub_svc_manifest *m, const struct json_t *pods, const char *namespace_,
                          const sub_t1_check *sig, const char *key_id, sub_t1_k8s_result *res, sub_err *e);

typedef struct sub_t1_align_k8s_opts {
    const sub_svc_manifest *m;
    const char *pods_path;   /* a file, "-" for stdin; NULL: run kubectl */
    const char *namespace_;  /* NULL: kubectl's current namespace (and every pod of a file) */
    int timeout_ms;          /* for kubectl; 0: SUB_T1_K8S_TIMEOUT_MS */
} sub_t1_align_k8s_opts;

/* Obtain the pod list (the file, stdin, or `kubectl get pods -l
 * app.kubernetes.io/name=NAME -o json [--namespace N]`), parse it, check
 * the manifest digest's signature, decide. 0 with res filled as
 * sub_t1_align (aligned / undecided / DRIFT). Errors: a bad pod list or an
 * unreadable file, input class; kubectl not on PATH (-ENOENT), failing or
 * timing out, environment class. */
int sub_t1_align_k8s(const sub_t1_align_k8s_opts *o, sub_t1_k8s_result *res, sub_err *e);
void sub_t1_k8s_result_done(sub_t1_k8s_result *r);
/* sub_t1_align_json's record plus "target": "k8s", "namespace", "source",
 * "running_digests", "ignored" and "pods": [{name, namespace, phase, digest,
 * ready, terminating, reasons, containers: [{name, image, image_id, digest,
 * ready}]}]. */
struct json_t *sub_t1_align_k8s_json(const sub_t1_k8s_result *r);

/* ---- supervisors (what `substrate supervise` runs) ---- */
/* The root supervisor, in the foreground until SIGTERM/SIGINT. With boot,
 * every service whose state is not "stopped" is brought back (after a host
 * reboot). Returns 0 when another root already runs (and says so via e->msg
 * with code 0). */
int sub_t1_root_run(bool boot, const char *self_exe, sub_err *e);
/* The supervisor of one service, in the foreground. 0 when another one
 * already holds the service's lock. */
int sub_t1_service_run(const char *name, sub_err *e);
/* SIGTERM the root supervisor (by the pid it recorded, while it holds its
 * lock) and wait for it to go. Services keep running. 1 when one was
 * stopped, 0 when none ran. */
int sub_t1_root_stop(sub_err *e);

/* One request to a service supervisor's control socket: {"op": ...} ->
 * the reply (new reference). timeout_ms bounds the whole exchange. */
int sub_t1_control(const char *name, const char *op, int timeout_ms, struct json_t **reply,
                   sub_err *e);

/* ---- escalation (a service's jobs in Tier-2 microVMs) ---- */
/* The broker of NAME's escalation socket, in the foreground until SIGTERM
 * (what `substrate supervise --escalation NAME` runs; the service's
 * supervisor starts it for a generation with an escalate: policy). Listens
 * on services/NAME/escalate/escalate.sock (the container's
 * /run/substrate/escalate.sock), owned by the container's user, mode 0600;
 * SIGHUP re-reads the running generation (its user, its limits). Each
 * request and its decision and report go to services/NAME/escalations/<id>.json.
 * On SIGTERM it refuses queued requests, cancels running jobs (their
 * teardown audited), waits for them and exits. 0 when another broker
 * already serves NAME. */
int sub_t1_escalation_run(const char *name, sub_err *e);

/* A request body (a jobspec without image) as a jobspec under the policy x:
 * the policy's image, its max_timeout as the default timeout, then every
 * limit checked; over a limit is refused (403, reason "policy"), never cut
 * down. On refusal: -1 with the HTTP status, a reason and a message. */
int sub_t1_escalation_jobspec(const char *service, const sub_svc_escalate *x, const char *body, size_t len,
                              sub_jobspec *j, int *http_status, const char **reason, char *msg, size_t msgn);

/* NAME's escalations, newest first: counts by state (queued, running, done,
 * refused, failed, interrupted) and the last `last` records in brief
 * (new reference). */
struct json_t *sub_t1_escalations(const char *name, size_t last);

/* One request to NAME's escalation socket from the host (root): method,
 * path, a JSON body (may be NULL) -> the HTTP status and the JSON answer
 * (new reference). Nothing is checked here: the broker decides. */
int sub_t1_escalate_call(const char *name, const char *method, const char *path, const char *body,
                         int timeout_ms, int *status, struct json_t **reply, sub_err *e);

/* ---- systemd ---- */
/* A unit that runs the root supervisor in the foreground with --boot
 * (Delegate=yes, the state dir in Environment=). Caller frees. */
char *sub_t1_render_systemd(const char *bin, const char *state_dir);
