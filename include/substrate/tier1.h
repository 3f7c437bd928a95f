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
