/* Tier-2: one jobspec, one ephemeral microVM, one report.
 *
 * The steps, in order (each a named library step, so the CLI, the
 * acceptance harness, the benchmarks and — through sub_job_run_authorized —
 * a Tier-1 escalation socket run the same code):
 *   1. authorise: the jobspec's bytes verify against the trust store (or the
 *      given keys) with its cosign blob signature (<jobspec>.sig); the keys a
 *      jobspec might name are never consulted. Then it is parsed — the same
 *      bytes that were verified.
 *   2. admit the image: its cosign signature verifies under the jobspec's
 *      identity policy with the same keys (admit.h).
 *   3. the disk: pull by digest, unpack (hostile layers refused, unpack.h),
 *      and make a read-only erofs image of the tree, cached per image digest
 *      ($SUBSTRATE_STATE/tier2/disks/<hex>.erofs), built atomically.
 *   4. the VM: the host kernel extracted once, our agent in a cached
 *      initramfs (vmimage.h); the accelerator: KVM when a probe boot works
 *      (cached verdict), else TCG.
 *   5. run: the VMM in a jail (jail.h) — its own uid, namespaces, cgroup,
 *      seccomp sandbox, a read-only root — with no NIC unless the jobspec
 *      allows egress; the job goes to the agent over virtio-serial; one
 *      wall-clock deadline, boot included, enforced here.
 *   6. teardown, then an audit that nothing of the job remains, and the
 *      report (kept under $SUBSTRATE_STATE/tier2/reports/<job id>.json).
 *
 * Tier-0 ("tier": 0 in the jobspec; README "Tier-0 jobs"): steps 1, 2 and
 * 6 are the same; instead of 3-5 the image's tree comes from the same fetch
 * step (rootfs.h, cached under $SUBSTRATE_STATE/tier2/rootfs) and the job
 * runs as a process: the same jail in its rootfs mode (jail.h: an overlay
 * root, pivot_root, new mount/PID/net/IPC/UTS namespaces with lo only, its
 * cgroup, a job uid, no capabilities, a fresh private working dir), the
 * agent as its PID 1 over the same protocol, stdout/stderr also kept in
 * $SUBSTRATE_STATE/logs/<job id>.stdout|.stderr. The report says "tier": 0,
 * "boundary": "process" (Tier-2: 2, "microvm"). sub_job_run_authorized
 * refuses tier 0: escalation never reaches it.
 *
 * Exit codes (sub_job_exit_code), as timeout(1) users expect: the job's own
 * when it completed and the teardown is clean; 124 when it timed out; 125
 * when the runner refused the job, failed itself, found residue or saw an
 * egress violation (the report's "outcome" says which).
 *
 * Ownership: the report is a new JSON reference (caller decrefs). */
#pragma once
#include "digest.h"
#include "error.h"
#include "jobspec.h"
#include <jansson.h>
#include <stdbool.h>

#define SUB_JOB_EXIT_TIMEOUT 124
#define SUB_JOB_EXIT_RUNNER 125
#define SUB_JOB_STREAM_MAX (1u << 20)    /* stdout and stderr each, in the report */
#define SUB_JOB_MEM_OVERHEAD_MB 192      /* qemu + the kernel image's page cache, charged too */
#define SUB_JOB_TEARDOWN_GRACE_S 5       /* the runner returns within the deadline + this */

typedef void (*sub_job_note_fn)(void *ud, const char *msg);

/* A reason to end a job early, polled with it: any of events (or POLLHUP,
 * POLLERR) on fd ends the job as outcome "cancelled" (125), why saying by
 * whom; the teardown and its audit run as usual. The escalation broker
 * passes its client's connection (POLLRDHUP: it hung up) and its own
 * shutdown pipe. */
typedef struct sub_job_cancel {
    int fd;
    short events;
    const char *why;             /* "the escalating client disconnected" */
} sub_job_cancel;

typedef struct sub_job_opts {
    char *const *key_files;      /* trusted public keys (NULL: the trust store) for the
                                  * jobspec's signature and the image's */
    const char *signature_path;  /* NULL: <jobspec>.sig */
    sub_job_note_fn note;        /* progress lines (may be NULL) */
    void *ud;
    const sub_job_cancel *cancel; /* may be NULL */
    size_t ncancel;              /* at most SUB_JOB_CANCEL_MAX */
    bool caller_handles_signals; /* a multi-threaded caller: SIGINT/SIGTERM/SIGHUP are
                                  * not read here (a signalfd in one job's thread would
                                  * steal the process's signal); cancel instead */
} sub_job_opts;
#define SUB_JOB_CANCEL_MAX 4

/* Steps 1 and 2 on their own, for callers that do not run the job (`substrate
 * render k8s`) and for the runner itself.
 *
 * sub_job_authorize: read the jobspec at path (at most SUB_JOBSPEC_MAX
 * bytes), verify its cosign blob signature (signature_path, NULL:
 * <path>.sig) with key_files (NULL or empty: the trust store; never a key
 * the jobspec names), then parse exactly the bytes that verified. The
 * fields are filled as far as the steps got, also on failure: sha256 once
 * the file was read, key_id once the signature verified (data and len hold
 * the verified bytes from then on), spec once it parsed. Refusals: no
 * signature file, or one no trusted key verifies: -EKEYREJECTED (check
 * class); an unreadable jobspec or one that does not parse: input class,
 * reason SUB_R_BAD_JOBSPEC. Release with sub_job_signed_done (always safe).
 *
 * sub_job_admit_image: step 2, the image's cosign signature under the
 * jobspec's identity policy with keys (as sub_admit_image; the message is
 * prefixed "refused the job's image"). */
struct sub_pubkey;
struct sub_admission;
struct sub_reg;
typedef struct sub_job_signed {
    char sha256[SUB_DIGEST_MAX];           /* "sha256:<hex>" of the bytes read; "" before */
    char *signature_path;        /* the signature file used (owned) */
    char key_id[SUB_DIGEST_MAX];           /* the key the signature verified with; "" before */
    struct sub_pubkey **keys;    /* the trusted keys (key_files or the trust store; owned) */
    size_t nkeys;
    char *data;                  /* the bytes read (owned) */
    size_t len;
    bool parsed;                 /* spec holds the parsed jobspec */
    sub_jobspec spec;
} sub_job_signed;
int sub_job_authorize(const char *path, char *const *key_files, const char *signature_path, sub_job_signed *out,
                      sub_err *e);
void sub_job_signed_done(sub_job_signed *s);
static inline void sub_job_signed_donep(sub_job_signed *s) { sub_job_signed_done(s); }
#define _cleanup_job_signed_ _cleanup_(sub_job_signed_donep)
int sub_job_admit_image(const sub_jobspec *j, const struct sub_pubkey *const *keys, size_t nkeys, struct sub_reg *reg,
                        struct sub_admission *ad, sub_err *e);

/* Run the signed jobspec at path. Returns 0 when a report was made (whatever
 * the job did: read sub_job_exit_code), < 0 when not even that was possible.
 * A refused jobspec or image still yields a report with outcome "refused"
 * (and e filled): *report is set whenever a job id was given out or the
 * refusal is known. */
int sub_job_run_signed(const char *path, const sub_job_opts *o, json_t **report, sub_err *e);

/* The entry point for jobspecs authorised otherwise than by a signature: a
 * Tier-1 service's escalation under its manifest's policy (issue 7). Not
 * reachable from the CLI. A tier-0 jobspec is refused (outcome "refused",
 * reason bad_jobspec): escalation always leads to a microVM. authorization names the authority
 * ("manifest-policy"); origin (borrowed, may be NULL) goes into the report. */
int sub_job_run_authorized(const sub_jobspec *j, const char *authorization, const json_t *origin,
                           const sub_job_opts *o, json_t **report, sub_err *e);

/* The process exit code the report stands for (above). */
int sub_job_exit_code(const json_t *report);

/* Remove what dead runners left (job dirs whose lock no runner holds, their
 * cgroups, netns, taps) and audit it. Returns how many jobs were swept;
 * *swept (may be NULL) gets [{job_id, teardown}] (new reference). */
int sub_job_sweep(json_t **swept, sub_err *e);

/* nested-smoke: does a hardware-backed microVM boot here? One boot of the
 * host kernel and our agent with -accel kvm (no disk, no NIC), jailed as a
 * job's VMM, under deadline_ms: PASS only when the guest agent answered.
 * TCG never counts. device: NULL for /dev/kvm (another path only to test the
 * "missing" and "no permission" answers). Returns 0 with a verdict in res,
 * < 0 when it could not even try (qemu or the kernel missing). */
typedef struct sub_kvm_smoke {
    bool pass;
    const char *cause;      /* booted, no_device, no_permission, device_error, qemu_failed,
                             * no_sign_of_life, setup (static) */
    char reason[700];       /* what happened, in words */
    int64_t ms;             /* to the verdict (the boot time on PASS) */
    char qemu_version[64], kernel_version[64];
} sub_kvm_smoke;
int sub_vm_kvm_smoke(uint32_t deadline_ms, const char *device, sub_kvm_smoke *res, sub_err *e);
