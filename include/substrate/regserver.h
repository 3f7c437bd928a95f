/* The local registry daemon: Debian's docker-registry (CNCF distribution 2.8)
 * run on loopback with a generated config and storage under
 * <state>/registry/. One registry per state dir.
 *
 *   <state>/registry/config.yml    generated config (atomically written)
 *   <state>/registry/data/         storage root
 *   <state>/registry/registry.pid  pid of the daemon we started
 *   <state>/registry/registry.log  its stdout+stderr
 *
 * start is idempotent (a live registry we started, answering on the same
 * address with the same authentication - none, or the same htpasswd file - is
 * left alone; other settings are refused with -EBUSY) and waits until /v2/ answers (200, or 401 when
 * htpasswd auth is on); if the daemon dies first, the error carries the tail
 * of registry.log. The address must be loopback (127.0.0.0/8, localhost,
 * [::1]); a port some other program holds is reported (-EADDRINUSE) before
 * anything is started. The daemon gets a clean environment (no REGISTRY_*
 * overrides), a new session, and none of the caller's descriptors.
 *
 * stop ends exactly the process it started: the recorded pid is checked to
 * still be a docker-registry run with our config (/proc/<pid>/cmdline; a
 * zombie counts as gone) before it is signalled, SIGTERM then SIGKILL after
 * 10 s. A stale pid file (process gone, or the pid reused by another program)
 * is removed and nothing is signalled.
 *
 * Another state dir's registry (or any other program) may hold the port.
 * status and stop then say what answers there and whose it is: the listening
 * socket is found in /proc/net/tcp{,6} (LISTEN on the port, on the address or
 * the wildcard), its inode in /proc/<pid>/fd, and the process described from
 * /proc/<pid>/cmdline (for docker-registry: its config, and the Substrate
 * state dir when that config is <state>/registry/config.yml). Another user's
 * process is seen as "held, owner unknown" when its fds are not readable.
 * stop never reports success while the port is held by something it did not
 * stop: -EADDRINUSE (environment class) saying what to run instead. */
#pragma once
#include "error.h"
#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct sub_regsrv_opts {
    const char *state_dir; /* required */
    const char *addr;      /* "127.0.0.1:5000"; required */
    const char *htpasswd;  /* optional: enable basic auth with this htpasswd file */
    int wait_s;            /* readiness wait for start, 0 = 15 */
} sub_regsrv_opts;

/* Who listens on a loopback TCP address. */
typedef struct sub_port_holder {
    bool held;            /* something listens there (or the port cannot be bound) */
    bool answering;       /* GET /v2/ answered 200 or 401 */
    pid_t pid;            /* 0 when it could not be found (another user's process) */
    char program[64];     /* /proc/<pid>/comm */
    char cmdline[512];    /* printable, truncated */
    char config[PATH_MAX];    /* docker-registry's config file, or "" */
    char state_dir[PATH_MAX]; /* the Substrate state dir of that config, or "" */
} sub_port_holder;

typedef struct sub_regsrv_status {
    bool running;   /* the recorded pid is our live docker-registry */
    bool answering; /* /v2/ answered on addr */
    pid_t pid;
    char addr[128]; /* address from the recorded config */
    /* when ours is not running: who holds the address clients use (o->addr) */
    sub_port_holder other;
} sub_regsrv_status;

/* *already = true when it was already running (nothing started). */
int sub_regsrv_start(const sub_regsrv_opts *o, bool *already, pid_t *pid, sub_err *e);
/* *was_running = false when there was nothing to stop (success). */
int sub_regsrv_stop(const sub_regsrv_opts *o, bool *was_running, sub_err *e);
int sub_regsrv_status_get(const sub_regsrv_opts *o, sub_regsrv_status *st, sub_err *e);

/* Fill *h for addr (host:port); 0, or -errno for a bad address. */
int sub_regsrv_port_holder(const char *addr, sub_port_holder *h, sub_err *e);
/* One line saying who holds the port and what to do (caller frees). */
char *sub_regsrv_holder_text(const char *addr, const sub_port_holder *h);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0), or -1.
 * For private registries of tests and the acceptance harness. */
int sub_free_loopback_port(void);
