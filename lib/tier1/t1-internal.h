/* Shared by lib/tier1/: the container record, the OCI runtime calls, state
 * files. Not a public interface. */
#pragma once
#include "substrate/error.h"
#include "substrate/json.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define T1_STATE_MAX (4u << 20)
#define T1_LOG_MAX_DEFAULT (1u << 20) /* bytes per log file; $SUBSTRATE_SERVICE_LOG_MAX */
#define T1_LOG_KEEP 3                 /* current + .1 + .2 */
#define T1_RESTART_MIN_MS 1000        /* the root restarts a dead supervisor at most this often */

/* One generation of a service, running (or about to) under the OCI runtime. */
typedef struct t1_ctr {
    json_t *rec;            /* its desired record (owned): generation, digest, bundle, ... */
    unsigned long gen;
    const char *id;         /* borrowed from rec */
    const char *bundle;
    const char *digest;
    const char *rootfs;
    pid_t pid;
    int pidfd;              /* -1 when not running */
    unsigned long long start_time; /* /proc/PID/stat field 22 */
    int netns_fd;           /* /proc/PID/ns/net, -1 with network: host */
    int64_t started_ms;     /* CLOCK_REALTIME ms */
    unsigned proxy_gen;     /* the proxy's target generation for it, 0 if never the target */
} t1_ctr;

int64_t t1_now_ms(void);      /* CLOCK_MONOTONIC */
int64_t t1_wall_ms(void);     /* CLOCK_REALTIME */
char *t1_iso_time(int64_t wall_ms); /* "2026-11-29T20:00:00Z" (caller frees) */

/* runtime argv prefix, NULL-terminated (static storage + the runc root). */
char **t1_runtime_argv(sub_svc_runtime rt);
const char *t1_runtime_bin(sub_svc_runtime rt);
/* Whether this host can run rt; when not, -ENOTSUP with the reason. */
int t1_runtime_usable(sub_svc_runtime rt, sub_err *e);

/* `RUNTIME state ID` as JSON (new reference); -ESRCH when it knows none. */
int t1_runtime_state(sub_svc_runtime rt, const char *id, json_t **out, sub_err *e);

/* /proc/PID/stat start time; 0 when the process is gone. */
unsigned long long t1_proc_start_time(pid_t pid);
/* Does /proc/PID/root point at the directory rootfs (same dev and inode)? */
bool t1_proc_root_is(pid_t pid, const char *rootfs);
/* The pids-controller (v1) or unified (v2) cgroup of pid ("" if unknown). */
int t1_proc_cgroup(pid_t pid, char *out, size_t n);

/* Start the generation described by c->rec (fields filled on success).
 * stdout and stderr of the container go to logfd. */
int t1_ctr_start(t1_ctr *c, sub_svc_runtime rt, int logfd, sub_err *e);
/* Check that c (pid, start_time from state) is still that container; open
 * its pidfd and netns. 0 when adopted, -ESRCH when it is not. */
int t1_ctr_adopt(t1_ctr *c, sub_svc_runtime rt, bool host_net, sub_err *e);
/* SIGTERM, wait grace_ms, SIGKILL, wait, delete the runtime state (and the
 * cgroup with it). Idempotent; never fails (best effort, continues past
 * errors). */
void t1_ctr_stop(t1_ctr *c, sub_svc_runtime rt, uint32_t grace_ms);
/* Has the container's init exited? (polls the pidfd) */
bool t1_ctr_exited(const t1_ctr *c);
void t1_ctr_done(t1_ctr *c);
/* Fill c from a desired record (takes a new reference). */
void t1_ctr_init(t1_ctr *c, json_t *rec);
/* {"pid","pid_start","started",...rec} as JSON (new reference). */
json_t *t1_ctr_json(const t1_ctr *c);

/* Read services/NAME/FILE as JSON (NULL and -ENOENT when absent). */
int t1_read_json(const char *name, const char *file, json_t **out, sub_err *e);
int t1_write_json(const char *name, const char *file, const json_t *j, sub_err *e);

/* Try the exclusive lock at path without blocking: the fd when taken,
 * -EWOULDBLOCK when someone holds it, else -errno. */
int t1_trylock(const char *path, sub_err *e);
/* Start NAME's supervisor (detached) unless one holds its lock. */
int t1_ensure_service_supervisor(const char *name, const char *self_exe, sub_err *e);

/* A supervisor's setup: SIGCHLD, SIGTERM, SIGINT and SIGHUP blocked and read
 * from the returned signalfd, SIGPIPE ignored, and the caller a child
 * subreaper (orphaned descendants are reparented to it). */
int t1_signalfd(sub_err *e);
/* Is the lock at path held by a live process? */
bool t1_lock_held(const char *path);

/* Control socket server side: create services/NAME/control.sock. */
int t1_control_listen(const char *name, sub_err *e);
/* Read one request from an accepted connection (bounded by timeout_ms). */
int t1_control_read(int fd, int timeout_ms, json_t **req, sub_err *e);
void t1_control_reply(int fd, const json_t *reply);

/* Remove the shared parent cgroup "substrate" in every hierarchy where it is
 * empty (after a service stopped). */
void t1_cgroup_prune(void);

/* sleep for ms (EINTR-safe) */
void t1_sleep_ms(int ms);

/* The keys a manifest names (key ids from the trust store, or absolute
 * paths); none = *keys NULL (the trust store). */
struct sub_reg;
/* The public key files the manifest's keys name (key ids resolved in the
 * trust store, paths as written); NULL when it names none (the trust store). */
char **t1_key_files(const sub_svc_manifest *m);
int t1_load_keys(const sub_svc_manifest *m, sub_pubkey ***keys, size_t *n, sub_err *e);
/* The admission check of digest under m's policy, recording nothing
 * (align --k8s: nothing local runs the image). */
int t1_admit_check(const sub_svc_manifest *m, const char *digest, struct sub_reg *reg, char key_id[80], sub_err *e);
/* The same check; a pass is recorded in services/NAME/verified.json. */
int t1_admit(const sub_svc_manifest *m, const char *digest, struct sub_reg *reg, char key_id[80], sub_err *e);
/* align's signature check of digest under m's policy, into c (1 verifies
 * now, 0 refused, -1 cannot decide) and key_id: the admission check; when
 * the registry cannot be asked, the verification recorded in the JSON file
 * cache stands in if it is for digest and younger than verify_max_age.
 * record_cache false: t1_admit (the service's verified.json is the cache and
 * t1_admit records it); true: t1_admit_check, and a pass is recorded in
 * cache itself. */
void t1_signature_now(const sub_svc_manifest *m, const char *digest, const char *cache, bool record_cache,
                      sub_t1_check *c, char key_id[80]);
