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
 * address, is left alone) and waits until /v2/ answers. stop ends exactly the
 * process it started: the recorded pid is checked to still be a
 * docker-registry run with our config before it is signalled. */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <sys/types.h>

typedef struct sub_regsrv_opts {
    const char *state_dir; /* required */
    const char *addr;      /* "127.0.0.1:5000"; required */
    const char *htpasswd;  /* optional: enable basic auth with this htpasswd file */
    int wait_s;            /* readiness wait for start, 0 = 15 */
} sub_regsrv_opts;

typedef struct sub_regsrv_status {
    bool running;   /* the recorded pid is our live docker-registry */
    bool answering; /* /v2/ answered on addr */
    pid_t pid;
    char addr[128]; /* address from the recorded config */
} sub_regsrv_status;

/* *already = true when it was already running (nothing started). */
int sub_regsrv_start(const sub_regsrv_opts *o, bool *already, pid_t *pid, sub_err *e);
/* *was_running = false when there was nothing to stop (success). */
int sub_regsrv_stop(const sub_regsrv_opts *o, bool *was_running, sub_err *e);
int sub_regsrv_status_get(const sub_regsrv_opts *o, sub_regsrv_status *st, sub_err *e);
