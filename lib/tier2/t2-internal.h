/* Tier-2 internals shared by the files of lib/tier2 (not a public interface). */
#pragma once
#include "substrate/error.h"
#include "substrate/jail.h"
#include "substrate/jobspec.h"
#include "substrate/rootfs.h"
#include "substrate/manifest.h"
#include "substrate/registry.h"
#include "substrate/strbuf.h"
#include "substrate/tier2.h"
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* $SUBSTRATE_STATE/tier2/<rel> (rel NULL: the dir itself); caller frees. */
char *t2_path(const char *rel);
int64_t t2_now_ms(void);
/* The trusted keys: the files given (none: the trust store); never a jobspec's (authorize.c). */
int t2_load_keys(char *const *key_files, sub_pubkey ***keys, size_t *n, sub_err *e);

/* ---- the job's disk (disk.c) ---- */
typedef struct t2_disk {
    char *path;               /* <state>/tier2/disks/<hex>.erofs, 0644 */
    bool reused;              /* the cached image was used (its hash checked) */
    sub_image_config config;  /* the image's config (owned) */
} t2_disk;
/* Pull ref (with digest) through reg, unpack it, make (or reuse, after
 * checking its recorded sha256) the erofs image. */
int t2_disk_prepare(const sub_ref *ref, sub_reg *reg, sub_job_note_fn note, void *ud, t2_disk *out,
                    sub_err *e);
void t2_disk_done(t2_disk *d);

/* ---- the VMM backend (qemu.c): how to start one microVM ---- */
typedef struct t2_vm_config {
    const char *kernel, *initramfs, *disk;
    const char *cmdline;
    uint32_t vcpus, memory_mb;
    bool kvm;
    int ctl_fd, console_fd;   /* socket ends handed to the VMM (same numbers in the jail) */
    int tap_fd;               /* -1: no NIC at all */
    const char *mac;          /* with tap_fd */
} t2_vm_config;
typedef struct t2_backend {
    const char *name;         /* "qemu-microvm" */
    const char *binary;       /* absolute path */
    /* argv of the VMM for c (NULL-terminated, caller strv_frees) */
    int (*argv)(const struct t2_backend *b, const t2_vm_config *c, char ***out, sub_err *e);
} t2_backend;
/* The qemu microvm backend; -ENOENT (env) when qemu is not installed. */
int t2_backend_qemu(const t2_backend **out, sub_err *e);

/* ---- egress (egress.c): only when the jobspec allows destinations ---- */
typedef struct t2_egress {
    char netns[80];     /* substrate-<tag>, in /run/netns */
    char veth[16];      /* sj-<tag>: the uplink end */
    char table[64];     /* substrate_<tag>, in the job's namespace */
    char uplink[64];    /* "" = the host's namespace */
    char mac[18];
    char guest_net[48]; /* "addr/prefix gateway" for the agent */
    int tap_fd;         /* for the VMM */
    bool made;          /* the namespace exists (teardown has work) */
} t2_egress;
/* tag: [a-z0-9]{8} unique per job; slot: the job's uid slot (its /30). */
int t2_egress_setup(const char *tag, unsigned slot, const sub_jobspec *j, t2_egress *eg, sub_err *e);
json_t *t2_egress_counters(const t2_egress *eg);
void t2_egress_teardown(t2_egress *eg);
/* What of it is still there (namespace, uplink veth). */
int t2_egress_residue(const t2_egress *eg);
/* A dead runner's egress namespace for tag (the job id's last 8 chars):
 * deleted when present; returns 1 when it is still there. */
int t2_egress_sweep(const char *tag);

/* ---- the session with one VM's agent (session.c) ---- */
#define T2_CONSOLE_TAIL (16u << 10)
typedef struct stream {
    sub_buf data;
    uint64_t total;
    int log_fd;        /* -1, or a local log file every byte also goes to (Tier-0), up to T2_LOG_MAX */
    uint64_t logged;
} stream;
#define T2_LOG_MAX (64ull << 20)

typedef struct session {
    int ctl, con, pidfd, tfd, sfd;
    sub_buf out;       /* frames still to send */
    size_t out_off;
    sub_buf in;        /* bytes read, not yet parsed */
    char console[T2_CONSOLE_TAIL];
    size_t con_len, con_total;
    stream so, se;
    int64_t t0, hello_ms, guest_uptime_ms;
    bool hello, done, exited, timed_out, vmm_gone, interrupted, protocol_error, cancelled;
    int signal;
    const sub_job_cancel *cancel; /* the caller's (borrowed) */
    size_t ncancel;
    const char *cancel_why;       /* which one fired */
    int exit_code;     /* -1 until EXIT */
    json_t *probes;    /* guest evidence, in order */
    json_t *outputs;
    json_t *errors;    /* agent ERROR texts */
    char *outputs_dir;
    bool stop_at_hello; /* the KVM probe */
} session;

/* A session with no fds yet (-1) and its JSON arrays made. */
void t2_session_init(session *s);
void t2_session_done(session *s);   /* frees memory; closes nothing */
/* Append one frame (header + payload) to b. */
void t2_frame(sub_buf *b, uint8_t type, const void *p, size_t n);
void t2_frame_str(sub_buf *b, uint8_t type, const char *s);
/* Bytes read from the guest's channel: complete frames are parsed (bounded:
 * a frame over the maximum, or one the protocol does not allow, sets
 * protocol_error); the rest waits for more. */
void t2_session_feed(session *s, const void *p, size_t n);
/* stdout/stderr as report JSON: {text (valid UTF-8), bytes, truncated} */
json_t *t2_stream_json(const stream *st);
/* Until the VMM is gone, the deadline passes, a signal arrives on s->sfd,
 * a cancel fd fires, the guest breaks the protocol, or (stop_at_hello) the
 * agent said HELLO. */
void t2_session_loop(session *s, int64_t deadline_ms);
void t2_session_drain(session *s);   /* read what is left on ctl and console */

/* ---- verdicts (verdict.c) ---- */
/* Per probe of j: target, result (blocked, connected, allowed,
 * allowed_unreachable, not_run), allowed_by_jobspec, the guest's evidence
 * (from guest_probes, the session's), the host's (counters from
 * t2_egress_counters, or NULL: no NIC). *violation: a probe that must be
 * blocked connected, or was refused by a non-loopback address. */
json_t *t2_egress_verdict(const sub_jobspec *j, const json_t *guest_probes, const json_t *counters, bool *violation);
/* The outcome of a job whose VM ran, by precedence: residue, egress_violation,
 * timed_out (124), interrupted, cancelled, failed, completed (the job's exit code); the
 * others 125. e says why (left empty for completed). */
const char *t2_outcome(const session *s, int residual, bool violation, uint32_t timeout_s, int *exit_code, sub_err *e);

/* ---- one job's host-side state (runner.c) ---- */
typedef struct t2_job {
    char id[96];
    char *dir;
    int lock_fd;
    uid_t uid;
    int uid_lock;
    sub_jail jail;
    bool jailed;
    unsigned long netns_ino;
    unsigned long sock_ino[2];
    t2_egress eg;
} t2_job;
/* The agent binary: $SUBSTRATE_AGENT, else substrate-agent beside our own binary (caller frees). */
char *t2_agent_path(void);

/* ---- Tier-0: the process backend (tier0.c) ---- */
#define T0_WORKDIR "/work"  /* the private working dir when the jobspec names none */
typedef struct t0_prep {
    sub_rootfs_info ri;      /* the image's unpacked tree (the overlay's lower layer) */
    sub_image_config config; /* its config (owned) */
    char *workdir;           /* where the fresh private working dir is mounted */
} t0_prep;
/* The fetch step (rootfs.h: pulled by digest, every byte checked, unpacked
 * into the cache under $SUBSTRATE_STATE/tier2/rootfs) and the working dir. */
int t0_prepare(const sub_jobspec *j, sub_reg *reg, sub_job_note_fn note, void *ud, t0_prep *out, sub_err *e);
void t0_prep_done(t0_prep *p);
/* The job's log files ($SUBSTRATE_STATE/logs/<id>.stdout|.stderr, named in
 * rep "logs", their fds in s->so/se.log_fd), the channel and console socket
 * pairs, and the agent as PID 1 in the jail (rootfs mode). Like vm_start:
 * on success s holds our ends, the pidfd, a timerfd and a signalfd; on
 * failure nothing runs (the log fds, when open, are s's to close). block
 * NULL: no signalfd (a caller that handles its signals itself). */
/* Start jo's program in its jail and take the session's ends: our ends of
 * the channel (ctl[0]) and console (con[0]), non-blocking; the pidfd, a
 * timerfd, and a signalfd for block (NULL: none). s->t0 is the start. On
 * failure nothing runs and ctl/con are left to the caller to close. */
int t2_spawn_session(t2_job *jb, session *s, const sub_jail_opts *jo, int ctl[2], int con[2], const sigset_t *block,
                     sub_err *e);
int t0_start(t2_job *jb, session *s, const t0_prep *tp, uint32_t memory_mb, const char *root, const sigset_t *block,
             json_t *rep, sub_err *e);
/* Tier-0's host-side evidence for each probe verdict (no NIC: its own lo). */
void t0_egress_evidence(json_t *verdicts);
