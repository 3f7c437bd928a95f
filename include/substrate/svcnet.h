/* The network side of a Tier-1 service: probes that run inside the
 * service's network namespace, and the port publisher (a small L4 proxy)
 * that owns the published listening sockets across versions.
 *
 * Why a proxy: the supervisor binds each published port once in the host's
 * network namespace and keeps it for as long as it runs. A version gets
 * traffic only once the supervisor points the proxy at it (after its
 * readiness probe passed), and an old version stops getting new connections
 * before it is sent SIGTERM, while its open connections finish. Connections
 * to the target are made from a socket created inside the target's network
 * namespace (setns on a helper thread), to 127.0.0.1:container_port or the
 * address given, so the container needs no interface but loopback.
 *
 * Errors: -errno with e filled; nothing is printed. */
#pragma once
#include "error.h"
#include "svc-manifest.h"
#include <stdbool.h>
#include <stddef.h>

/* ---- probes ---- */
typedef struct sub_probe_result {
    bool ok;
    char detail[256];  /* "HTTP 200", "connection refused", "timed out after 1000 ms",
                        * "exit status 1" */
} sub_probe_result;

/* One attempt of the probe, with p->timeout_ms as its deadline. netns_fd is
 * an fd of /proc/PID/ns/net for the namespace to probe in (-1: the
 * caller's). HTTP: GET path with "Host: HOST:PORT" and "Connection: close";
 * ok when the status is 2xx or 3xx. TCP: ok when connect succeeds. EXEC: runs
 * `RUNTIME exec CONTAINER argv...` (runtime_argv, NULL-terminated, e.g.
 * {"runc","--root","/run/substrate-runc",NULL}); ok on exit status 0.
 * Returns 0 when the attempt was made (ok or not: see res), < 0 when it
 * could not be made at all (bad spec, setns refused). */
int sub_probe_run(const sub_probe_spec *p, int netns_fd, char *const *runtime_argv,
                  const char *container_id, sub_probe_result *res, sub_err *e);

/* Make a TCP socket inside the network namespace netns_fd (-1: the
 * caller's) and connect it (blocking, with timeout_ms) to addr:port. Returns
 * the connected fd (O_CLOEXEC) or -errno. Thread-safe: the setns happens on a
 * short-lived helper thread, so the caller's own namespace never changes. */
int sub_netns_connect(int netns_fd, const char *addr, uint16_t port, int timeout_ms, sub_err *e);

/* ---- port publisher ---- */
typedef struct sub_proxy sub_proxy;

/* Bind and listen on every port's host_addr:host_port (SO_REUSEADDR, in the
 * caller's network namespace) and start the proxy thread. Until a target is
 * set, connections wait in the listen backlog: they are not accepted, so
 * they are not refused either. -EADDRINUSE (environment class) names the
 * port and, when known, who holds it. */
int sub_proxy_start(const sub_svc_port *ports, size_t n, sub_proxy **out, sub_err *e);
/* New connections from now on go to the namespace netns_fd (dup'd here; the
 * caller keeps its own), to 127.0.0.1:container_port. Connections already
 * open keep their old target. netns_fd -1 = no target (stop accepting).
 * Returns the new target's generation (> 0; 1, 2, ... in call order), or
 * -errno. */
int sub_proxy_set_target(sub_proxy *p, int netns_fd, sub_err *e);
/* Connections still open to a target whose generation is gen (the value
 * sub_proxy_set_target returned for it; 0 = all). */
size_t sub_proxy_open_connections(sub_proxy *p, unsigned gen);
/* Connections accepted in total, and those that failed to reach the target
 * (the client saw a close without a reply). For status and tests. */
void sub_proxy_counters(sub_proxy *p, unsigned long long *accepted, unsigned long long *failed);
/* Close the listeners and every connection, join the thread, free. NULL ok. */
void sub_proxy_stop(sub_proxy *p);
