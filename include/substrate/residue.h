/* Interrupted work leaves no residue.
 *
 * A long operation makes temporary files and directories: a blob being
 * downloaded next to its final name, a build's export tree, a release's work
 * directory. Each is named with the pid of the process that made it
 * (PREFIX<pid>-XXXXXX) and, while it exists, registered here. Then:
 *
 *  - Ctrl-C, SIGTERM or SIGHUP: the handler that the CLI installs with
 *    sub_residue_install() stops the children we wait for (sub_spawn registers
 *    them; daemons started with new_session are not ours to stop), removes
 *    every registered path (a directory with everything below it, without
 *    following symlinks or crossing mount points), and dies of the same
 *    signal (default action re-raised), so the exit status still says what
 *    killed us. The handler uses only async-signal-safe calls (kill, waitpid,
 *    nanosleep, openat, getdents64, fstat, unlinkat, close, sigaction,
 *    sigprocmask, raise) on a fixed-size table; nothing is allocated.
 *
 *  - SIGKILL, a crash, a power cut: nothing runs. The next run that uses the
 *    same directory calls sub_residue_sweep(), which removes the entries whose
 *    creating pid no longer exists and keeps the ones of live processes (a
 *    concurrent pull or build). A pid that was reused by an unrelated process
 *    keeps its leftover until that process is gone: the safe direction. Pids
 *    are only meaningful in one pid namespace: directories shared between pid
 *    namespaces should not be swept by both sides.
 *
 * The table is process-wide, has SUB_RESIDUE_SLOTS entries and is written by
 * the calling thread with an atomic publish (path first, then the "in use"
 * flag), so a handler running on any thread sees either nothing or a whole
 * path. A path that does not fit is simply not registered (the sweep still
 * catches it later). The library registers paths whether or not a handler is
 * installed; without one (unit tests, other programs) the table is unused.
 */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <sys/types.h>

#define SUB_RESIDUE_SLOTS 64
#define SUB_RESIDUE_CHILDREN 16

/* Install the SIGINT/SIGTERM/SIGHUP handler (the CLI does this once, early).
 * Idempotent. */
void sub_residue_install(void);

/* Register / forget a path to remove if we are interrupted. forget after the
 * path was renamed into place or removed. Both are no-ops for NULL. */
bool sub_residue_add(const char *path);
void sub_residue_forget(const char *path);

/* Children to stop before removing anything (sub_spawn/sub_wait use these). */
void sub_residue_add_child(pid_t pid);
void sub_residue_forget_child(pid_t pid);

/* Create and register a temporary file "<base><pid>-XXXXXX" (base is a path
 * prefix such as "/x/blobs/sha256/abc.part-"), mode 0600, O_CLOEXEC. Returns
 * the fd; *out (to free) gets the name. */
int sub_residue_mkstemp(const char *base, char **out, sub_err *e);
/* Create and register a private directory parent/<prefix><pid>-XXXXXX
 * (parent is created when missing). *out (to free) gets the path. */
int sub_residue_mkdtemp(const char *parent, const char *prefix, char **out, sub_err *e);

/* Remove a path made by the two calls above and forget it (missing is fine). */
void sub_residue_remove(const char *path);

/* In directory dir, remove the entries whose name contains marker directly
 * followed by "<pid>-" where that pid is not a live process (and not ours).
 * Returns how many were removed (>= 0), or -errno; a missing dir is 0. */
int sub_residue_sweep(const char *dir, const char *marker, sub_err *e);

/* The pid encoded in name after marker ("…<marker><pid>-…"), or -1. */
pid_t sub_residue_name_pid(const char *name, const char *marker);
