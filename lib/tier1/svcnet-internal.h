/* Shared by the Tier-1 network code (netns.c, probe.c, proxy.c); not a
 * public interface. */
#pragma once
#include "substrate/error.h"
#include <netinet/in.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock. */
int64_t svcnet_mono_ms(void);
/* A TCP socket (SOCK_CLOEXEC | SOCK_NONBLOCK) created inside the network
 * namespace netns_fd (-1: the caller's), on a short-lived helper thread so
 * the caller's namespace never changes. -errno when the namespace cannot be
 * entered or the socket not made (e filled). */
int svcnet_socket_in(int netns_fd, sub_err *e);
/* Connect the non-blocking fd to sin, waiting until the monotonic deadline
 * (ms). 0, or -errno (-ETIMEDOUT when the deadline passed); e is not filled. */
int svcnet_connect_until(int fd, const struct sockaddr_in *sin, int64_t deadline);
/* "A.B.C.D:PORT" (PORT 1-65535) into sin; -EINVAL when it is not that. */
int svcnet_parse_ipv4_port(const char *s, size_t len, struct sockaddr_in *sin);
