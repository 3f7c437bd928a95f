/* Shared by the thin cmd-*.c front ends: command table, error printing. */
#pragma once
#include "substrate/error.h"
#include <stdbool.h>
#include <stdio.h>

typedef struct sub_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *issue; /* non-NULL: not available yet, lands with this issue */
} sub_cmd;

/* Print "substrate <cmd>: error: msg" (+ detail) and return the exit code.
 * With --json on the command line it also prints {"error", "detail",
 * "reason" (sub_reason_to_string, null when none), "exit_code"} on stdout,
 * unless cli_json_printed() said the command's own record is there. */
int cli_fail(const char *cmd, const sub_err *e);
void cli_json_printed(void);
/* Print a usage error and return SUB_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print one line (a newline is added) with every control character of the
 * formatted text escaped as \xNN: for output that quotes what a registry or
 * a file said (labels, reasons, identities). */
void cli_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usage error for getopt's '?' (getopt is silenced in main): names the
 * unknown option, or the option that needs an argument. */
struct option;
int cli_bad_option(const char *cmd, char **argv, const struct option *opts);
/* -o/--output FORMAT: "json" or "text" (the default). 0, or the usage-error
 * exit code. Every command with --json takes it. */
int cli_output_opt(const char *cmd, const char *format, bool *json);
#define CLI_OUTPUT_OPTION {"output", required_argument, NULL, 'o'}

struct sub_ref;
/* Parse an image reference, REF or skopeo's docker://REF. On failure prints
 * the error (naming skopeo's other transports when given one) and returns the
 * exit code (> 0); 0 with *ref filled (caller frees with sub_ref_free). */
int cli_parse_ref(const char *cmd, const char *arg, struct sub_ref *ref);
/* Split an --oci argument, DIR[:NAME] or skopeo's oci:DIR[:NAME], into the
 * layout directory and the optional name (caller frees both). 0, or the
 * usage-error exit code after printing it. */
int cli_parse_layout(const char *cmd, const char *arg, char **dir, char **name);

/* Parse a reference that must carry a digest (sign/verify work by digest: a
 * tag can move). On failure prints the error and returns the exit code (> 0);
 * 0 on success with *ref filled (caller frees with sub_ref_free). */
int cli_parse_digest_ref(const char *cmd, const char *verb, const char *arg, struct sub_ref *ref);

struct sub_privkey;
/* Open a signing key as every signer does (sub_signing_key_open: the key file
 * first, then the passphrase, then the decryption). On failure prints the
 * error, whose detail ends with nothing_done ("nothing was signed or pushed"),
 * and returns the exit code (> 0); 0 with *out set (caller frees). */
int cli_open_signing_key(const char *cmd, const char *keyp, const char *passfile,
                         const char *nothing_done, struct sub_privkey **out);

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
CMD(attest);
CMD(verify);
CMD(build_sign_push);
CMD(login);
CMD(logout);
CMD(reconcile);
CMD(align);
CMD(status);
CMD(stop);
CMD(logs);
CMD(supervise);
CMD(sign_blob);
CMD(verify_blob);
CMD(sandbox);
CMD(nested_smoke);
CMD(provision_vm);
CMD(destroy_vm);
CMD(render);
