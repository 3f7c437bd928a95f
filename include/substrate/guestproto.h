/* The wire protocol between the Tier-2 runner (host) and the guest agent
 * (guest/agent.c, PID 1 in the microVM), over one virtio-serial port named
 * SUB_GUEST_PORT (the guest finds it under /sys/class/virtio-ports/ by name).
 * Header-only: the agent is a static program that links nothing of ours.
 *
 * A frame is a 5-byte header then the payload:
 *   u32 length (little-endian, of the payload only, <= SUB_GP_MAX_PAYLOAD)
 *   u8  type   (below)
 * Strings are sent without a terminating NUL; the length says where they end.
 *
 * Host -> guest, in this order: any number of ARG, ENV, INPUT, PROBE, OUTPUT,
 * then at most one each of CWD, USER, OUTMAX, any STDIN chunks, then RUN.
 * The agent refuses (ERROR, then DONE) anything out of order or malformed.
 * Guest -> host: HELLO once the port is open, then PROBE_RESULT per probe,
 * STDOUT/STDERR chunks while the job runs, EXIT, OUTPUT_FILE per output,
 * and DONE last (then it powers the VM off). ERROR carries an agent-side
 * failure (a module that would not load, a rootfs that would not mount, an
 * exec that failed) and is followed by DONE.
 *
 * The guest is untrusted once the job runs: the host parses every frame it
 * reads with the same bounds (a frame over the maximum ends the job). */
#pragma once
#include <stdint.h>
#include <string.h>

#define SUB_GUEST_PORT "substrate.ctl"
#define SUB_GP_MAX_PAYLOAD (1u << 20)
#define SUB_GP_HDR 5u

enum {
    /* host -> guest */
    SUB_GP_ARG = 1,   /* one argv element (argv[0] is the program) */
    SUB_GP_ENV,       /* "KEY=VALUE" */
    SUB_GP_CWD,       /* absolute working directory */
    SUB_GP_USER,      /* "uid:gid", numeric */
    SUB_GP_INPUT,     /* u32 mode, u32 path length, path, content */
    SUB_GP_PROBE,     /* "a.b.c.d:port" to dial before the job starts */
    SUB_GP_OUTPUT,    /* absolute path to copy back after the job */
    SUB_GP_OUTMAX,    /* u64 total bytes of outputs */
    SUB_GP_STDIN,     /* a chunk of the job's stdin (all of it precedes RUN) */
    SUB_GP_RUN,       /* empty: start */
    SUB_GP_NET,       /* "addr/prefix gateway": configure eth0 (egress allowed) */
    /* guest -> host */
    SUB_GP_HELLO = 64, /* u32 guest uptime at open, ms; then the agent version string */
    SUB_GP_PROBE_RESULT, /* "target result errno-name ms" (result: connected refused
                          * unreachable timeout error) */
    SUB_GP_STDOUT,
    SUB_GP_STDERR,
    SUB_GP_EXIT,      /* i32 exit code (128+signal when killed) */
    SUB_GP_OUTPUT_FILE, /* u32 status (0 ok, else errno), u32 path length, path, content */
    SUB_GP_ERROR,     /* text */
    SUB_GP_DONE,      /* empty */
};

static inline void sub_gp_put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t sub_gp_get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void sub_gp_put64(unsigned char *p, uint64_t v) {
    sub_gp_put32(p, (uint32_t)v);
    sub_gp_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t sub_gp_get64(const unsigned char *p) {
    return (uint64_t)sub_gp_get32(p) | (uint64_t)sub_gp_get32(p + 4) << 32;
}

/* Write a frame header for a payload of len bytes into hdr. */
static inline void sub_gp_header(unsigned char hdr[SUB_GP_HDR], uint8_t type, uint32_t len) {
    sub_gp_put32(hdr, len);
    hdr[4] = type;
}
