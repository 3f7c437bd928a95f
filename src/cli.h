/* Shared by the thin cmd-*.c front ends: command table, error printing. */
#pragma once
#include "substrate/error.h"
#include <stdbool.h>

typedef struct sub_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *issue; /* non-NULL: not available yet, lands with this issue */
} sub_cmd;

/* Print "substrate <cmd>: error: msg" (+ detail) and return the exit code. */
int cli_fail(const char *cmd, const sub_err *e);
/* Print a usage error and return SUB_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a reference that must carry a digest (sign/verify work by digest: a
 * tag can move). On failure prints the error and returns the exit code (> 0);
 * 0 on success with *ref filled (caller frees with sub_ref_free). */
struct sub_ref;
int cli_parse_digest_ref(const char *cmd, const char *verb, const char *arg, struct sub_ref *ref);

#define CMD(n) int cmd_##n(int argc, char **argv)
CMD(build);
CMD(registry);
CMD(push);
CMD(pull);
CMD(inspect);
CMD(acceptance);
CMD(version);
CMD(key);
CMD(sign);
CMD(verify);
CMD(build_sign_push);
CMD(login);
CMD(logout);
