/* The VMM jail: what Firecracker's jailer does, for qemu. One program (the
 * VMM) per job starts
 *   - as PID 1 of a new PID namespace, in new mount, IPC, UTS (hostname
 *     "job") and network namespaces (or the network namespace given);
 *   - in a cgroup of its own, "substrate-job-<id>", with memory and pids
 *     limits: cgroup v1 (each of the memory and pids hierarchies, found in
 *     /proc/self/mountinfo, gets <mount>/substrate-job-<id>: no shared
 *     parent group, so nothing is left to prune) or cgroup v2 when
 *     /sys/fs/cgroup is cgroup2 (/sys/fs/cgroup/substrate-job-<id> with
 *     memory.max, memory.swap.max = 0, pids.max). The runner writes the
 *     child's pid into cgroup.procs before the child does anything else;
 *   - with a root of its own: a small tmpfs on root_dir holding only the
 *     program, its ELF dependencies (DT_NEEDED + PT_INTERP, read from the
 *     files, resolved in /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu,
 *     /lib64, /usr/lib64, /lib, /usr/lib; RPATH/RUNPATH are not followed),
 *     the program's extra files (for qemu-system-*: its module directory
 *     /usr/lib/x86_64-linux-gnu/qemu and the dependencies of
 *     accel-tcg-x86_64.so, and its firmware directory /usr/share/qemu; each
 *     skipped when absent on the host), the caller's ro_paths and /dev/{null,
 *     zero,random,urandom} (+ /dev/kvm when asked), each a read-only,
 *     nosuid bind mount (ro_paths and /dev also noexec); the tmpfs is then
 *     made read-only, pivot_root'ed into and the old root detached. No /proc,
 *     /sys or /etc: qemu 7.2 boots without them. Every mount lives only in
 *     the jail's mount namespace and vanishes with it;
 *   - as the job's uid/gid with no supplementary groups (with kvm: only
 *     the group of /dev/kvm, so the VMM can open it), no capabilities
 *     (bounding, ambient, inheritable, permitted, effective all empty),
 *     no_new_privs, umask 077, PATH as its only environment, stdin
 *     /dev/null, only the fds asked for;
 *   - with PR_SET_PDEATHSIG = SIGKILL, set after the uid change (which
 *     clears it), then a check that the runner is still there (a pipe the
 *     runner holds open until the exec; getppid() says 0 across the PID
 *     namespace boundary). The signal follows the *thread* that called
 *     sub_jail_spawn: spawn from a thread that lives as long as the job.
 *
 * Why the program is PID 1 itself and there is no init: the VMM does not
 * fork (qemu runs with -sandbox spawn=deny), so there is nothing to reap,
 * its pid is the one the runner waits on and holds a pidfd for, and the
 * kernel kills everything in the PID namespace when it dies. PID 1 ignores
 * signals it has no handler for only when they come from inside its
 * namespace: SIGKILL from the runner (and the parent-death SIGKILL) always
 * works, and qemu installs handlers for SIGTERM/SIGINT/SIGHUP.
 *
 * Tier-0 (rootfs set): the same jail runs a job's process instead of a VMM.
 * Its root is then not a tmpfs of binds but the job's image: an overlay
 * whose read-only lower layer is rootfs (the verified, digest-pinned cache)
 * and whose upper layer lives on a tmpfs of tmpfs_mb MiB mounted on
 * root_dir; it is pivot_root'ed into first, and only then, inside it (so no
 * symlink of the image can point a mount or a mkdir at the host), get
 * mounted: /proc (of the new PID namespace), a minimal /dev (a tmpfs with
 * null, zero, full, random, urandom, tty made by mknod, and the fd, stdin,
 * stdout, stderr links), /tmp (tmpfs, 1777) and workdir (a fresh, empty
 * tmpfs owned by uid:gid, mode 0700: the job's private working dir). lo is
 * brought up in the new network namespace (nothing else exists there).
 * argv[0] is a static program on the host (the agent), opened before the
 * pivot and run from that descriptor (execveat), so it is not in the job's
 * tree. ro_paths and kvm are not allowed with rootfs; the ELF closure is
 * not bound.
 *
 * Failures of the child's setup come back through a close-on-exec pipe as
 * errno + step + path and are reported as "jail: bind-mount /x: ENOENT (No
 * such file or directory)", never as a bare exit status. Needs root (it
 * makes namespaces, mounts and cgroups); nothing is printed. */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Per-job uids: [base, base + SUB_JOB_UID_COUNT), base from
 * $SUBSTRATE_JOB_UID_BASE or SUB_JOB_UID_BASE; gid = uid. */
#define SUB_JOB_UID_BASE 1000000000u
#define SUB_JOB_UID_COUNT 1024u
#define SUB_JAIL_CGROUP_PREFIX "substrate-job-"

typedef struct sub_jail_opts {
    const char *id;              /* job id, [a-z0-9-], 1..64 bytes, used in cgroup name "substrate-job-<id>" */
    const char *root_dir;        /* an empty dir owned by the caller (inside the job dir) used as the mount point of the jail's root */
    uid_t uid; gid_t gid;        /* the job's uid/gid (from sub_jail_uid_acquire); never 0 */
    char *const *argv;           /* argv[0] absolute path of the program (qemu) */
    const char *const *ro_paths; /* extra host files or dirs made visible read-only at the same path (kernel, initramfs, rootfs image); NULL-terminated or NULL */
    const int *fds; size_t nfds; /* fds (>= 3) passed to the child at the SAME numbers (socketpair ends; a tap fd); all others closed */
    int stdout_fd, stderr_fd;    /* where the program's stdout/stderr go (-1: /dev/null); stdin is /dev/null */
    uint64_t memory_bytes;       /* cgroup memory limit (0 = none) */
    uint32_t pids_max;           /* cgroup pids limit (0 = none); threads count: qemu under TCG uses ~5 */
    int netns_fd;                /* -1: a new empty network namespace (lo only, down); else setns() into this one (the runner made it for a tap) */
    bool kvm;                    /* make /dev/kvm visible */
    const char *rootfs;          /* NULL: the VMM's jail; else Tier-0 (above): the job's image tree */
    const char *workdir;         /* with rootfs: the private working dir's path inside (absolute) */
    uint32_t tmpfs_mb;           /* with rootfs: the size of each tmpfs (upper layer, /tmp, workdir) */
} sub_jail_opts;

typedef struct sub_jail {
    pid_t pid;                   /* the program, as seen from the runner's pid namespace; 0 once reaped by destroy */
    int pidfd;                   /* pidfd_open of pid (poll it for exit), or -1 */
    char **cgroup_dirs;          /* NULL-terminated, owned: every cgroup dir created (absolute paths) */
} sub_jail;

/* Start the program in a jail. On success *out holds the pid, a pidfd and
 * the cgroup dirs (the caller calls sub_jail_destroy then sub_jail_done).
 * On failure nothing is left: the child is killed and reaped, the cgroup
 * dirs removed, *out zeroed (pidfd -1), e says which step failed.
 * The pid is our child until destroy reaps it (or the caller waitpid()s it
 * itself: destroy then reports no status). */
int sub_jail_spawn(const sub_jail_opts *o, sub_jail *out, sub_err *e);
/* Kill the program (SIGKILL to the whole cgroup: every process in it, not only pid), reap it,
 * remove the cgroup dirs. Idempotent. Returns the program's wait status in *status if reaped here
 * (raw waitpid status; -1 when it was not reaped here). Bounded: gives up after ~5 s of a group
 * that does not empty or a dir that stays busy, with -EBUSY naming it (the dir stays listed in
 * j->cgroup_dirs, so calling again retries). */
int sub_jail_destroy(sub_jail *j, int *status, sub_err *e);
/* After a runner died: SIGKILL what is left in the cgroups of the jail with
 * this id and remove them. *killed gets how many processes were found;
 * *dirs (may be NULL; caller frees) every cgroup dir path looked at. */
int sub_jail_cleanup_id(const char *id, int *killed, char ***dirs, sub_err *e);
/* Frees memory and closes the pidfd; never kills or removes anything. NULL is fine. */
void sub_jail_done(sub_jail *j);

/* Per-job uid allocation from a documented range: base $SUBSTRATE_JOB_UID_BASE or 1000000000
 * (SUB_JOB_UID_BASE), SUB_JOB_UID_COUNT = 1024 slots. A slot is held by an flock on
 * <state_dir>/uids/<uid>.lock (so a dead runner's slot frees itself); a slot whose uid still owns a
 * process (scan /proc/<pid>/status Uid:) is skipped. gid = uid. Returns the lock fd in *lock_fd (close it to release).
 * Two acquisitions in one process get different slots (flock is per open file).
 * -EAGAIN (environment class) when every slot is taken. */
int sub_jail_uid_acquire(const char *state_dir, uid_t *uid, int *lock_fd, sub_err *e);
/* Processes whose real or effective uid is uid (scan /proc): count, for the teardown audit.
 * *first (may be NULL) gets one of them (0 when none). */
int sub_jail_uid_processes(uid_t uid, pid_t *first, sub_err *e);
