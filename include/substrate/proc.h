/* Process spawning without a shell: argv is exec'd directly (PATH search).
 * A child inherits descriptors 0-2 only (as mapped by the options); every
 * other descriptor of ours is closed on exec in the child. */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <sys/types.h>

#define SUB_FD_INHERIT (-1)
#define SUB_FD_NULL (-2)
#define SUB_FD_STDOUT (-3) /* stderr only: send it where stdout goes */

typedef struct sub_proc_opts {
    const char *cwd;          /* NULL = inherit */
    char *const *setenv;      /* extra "KEY=VALUE" entries (NULL-terminated), or NULL */
    bool clear_env;           /* start from an empty environment (+ setenv) */
    int stdin_fd;             /* SUB_FD_INHERIT, SUB_FD_NULL, or an fd to dup */
    int stdout_fd;
    int stderr_fd;
    int umask;                /* -1 = inherit */
    bool new_session;         /* setsid() in the child (daemons) */
    int pdeathsig;            /* 0, or the signal the child gets when the thread that
                               * spawned it ends (PR_SET_PDEATHSIG; a child whose parent
                               * is already gone does not start) */
} sub_proc_opts;

#define SUB_PROC_OPTS_INIT                                                                         \
    {.cwd = NULL, .setenv = NULL, .clear_env = false, .stdin_fd = SUB_FD_INHERIT,                  \
     .stdout_fd = SUB_FD_INHERIT, .stderr_fd = SUB_FD_INHERIT, .umask = -1, .new_session = false}

/* Start argv[0] (PATH lookup). An exec failure is reported as an error here,
 * not as a mysterious child exit (via a CLOEXEC pipe). */
int sub_spawn(char *const argv[], const sub_proc_opts *o, pid_t *pid, sub_err *e);
/* Wait for a child; *status is the exit code, or 128+signal. */
int sub_wait(pid_t pid, int *status, sub_err *e);
/* Spawn and wait. Returns 0 when it ran (whatever its exit status). */
int sub_run(char *const argv[], const sub_proc_opts *o, int *status, sub_err *e);
/* Spawn and capture stdout (at most max bytes) into *out (caller frees).
 * stderr follows o->stderr_fd. */
int sub_run_capture(char *const argv[], const sub_proc_opts *o, size_t max, char **out,
                    int *status, sub_err *e);
/* sub_run_capture with a deadline, for programs that may hang (a CLI talking
 * to a remote service): stdout (at most max bytes) into *out (NUL-terminated,
 * caller frees) and its length into *len; with err non-NULL, stderr too (at
 * most 64 KiB kept, the rest read and dropped) into *err, else stderr follows
 * o->stderr_fd. Past timeout_ms the child is killed (SIGKILL): -ETIMEDOUT,
 * environment class; more than max bytes on stdout: killed, -EFBIG. Returns
 * 0 when it ran to its end (whatever its exit status). */
int sub_run_capture_timeout(char *const argv[], const sub_proc_opts *o, size_t max, int timeout_ms,
                            char **out, size_t *len, char **err, int *status, sub_err *e);
/* Is there an executable `name` on PATH (or at the absolute path)? */
bool sub_have_program(const char *name);
/* Human-readable argv for messages (caller frees). */
char *sub_argv_str(char *const argv[]);
/* The pid of a process with an fd on socket:[inode] (from /proc), or 0 when
 * none we may look at holds it. */
pid_t sub_socket_owner(unsigned long inode);
