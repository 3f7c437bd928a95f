/* substrate: multi-call binary. `substrate <command> [options]`. */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/log.h"
#include "substrate/ref.h"
#include "substrate/strbuf.h"
#include "substrate/residue.h"
#include "substrate/sign.h"
#include "version.h"
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const sub_cmd commands[] = {
    {"registry", cmd_registry, "run the local OCI registry (start|stop|status)", NULL},
    {"build", cmd_build, "build an image from an exact git commit, push it, print its digest", NULL},
    {"push", cmd_push, "push an image from an OCI layout to the registry, print its digest", NULL},
    {"pull", cmd_pull, "fetch an image by digest into an OCI layout, verifying every byte", NULL},
    {"inspect", cmd_inspect, "show an image's manifest digest and config from the registry", NULL},
    {"acceptance", cmd_acceptance, "run the end-to-end acceptance checks", NULL},
    {"version", cmd_version, "print the version", NULL},
    {"key", cmd_key, "signing keys (cosign format) and the trust store", NULL},
    {"sign", cmd_sign, "sign an image by digest, push the signature in cosign's layout", NULL},
    {"verify", cmd_verify, "verify an image's cosign signatures against trusted keys", NULL},
    {"sign-blob", cmd_sign_blob, "sign a file's bytes (cosign sign-blob's format): FILE.sig", NULL},
    {"verify-blob", cmd_verify_blob, "verify a file's blob signature against trusted keys", NULL},
    {"attest", cmd_attest, "attest an image (cosign attest's layout); re-sign its provenance", NULL},
    {"build-sign-push", cmd_build_sign_push, "build (twice), push, sign and verify every platform image", NULL},
    {"login", cmd_login, "check and store credentials for a registry", NULL},
    {"logout", cmd_logout, "remove stored credentials for a registry", NULL},
    {"reconcile", cmd_reconcile, "verify, deploy and supervise a Tier-1 service from its manifest", NULL},
    {"align", cmd_align, "prove a running service matches its manifest (ALIGNED/DRIFT)", NULL},
    {"status", cmd_status, "what the Tier-1 supervisors recorded (only reads)", NULL},
    {"stop", cmd_stop, "stop a Tier-1 service (idempotent)", NULL},
    {"logs", cmd_logs, "a Tier-1 service's stdout and stderr", NULL},
    {"supervise", cmd_supervise, "the Tier-1 supervisor tree (reconcile starts it)", NULL},
    {"sandbox", cmd_sandbox, "run a signed Tier-2 jobspec in a jailed, ephemeral microVM", NULL},
    {"render", cmd_render, "print Kubernetes objects for manifests and signed jobspecs (render k8s)", NULL},
    {"provision-vm", cmd_provision_vm, "build (cached by content) and boot the golden VM; idempotent", NULL},
    {"destroy-vm", cmd_destroy_vm, "stop and remove the golden VM; idempotent", NULL},
    {"nested-smoke", cmd_nested_smoke, "check whether a hardware-backed microVM boots here (KVM; TCG never counts)", NULL},
};

static const char *current;

static const sub_cmd *find_cmd(const char *name) {
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f,
            "Usage: substrate <command> [options]\n"
            "\n"
            "Substrate runs AI-agent workloads isolated: Tier-1 services as digest-pinned,\n"
            "signature-checked containers, Tier-2 jobs in ephemeral microVMs.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-16s %s%s\n", commands[i].name, commands[i].summary,
                commands[i].issue ? " (not yet)" : "");
    fprintf(f, "\n"
               "Options:\n"
               "  -h, --help       show this help (also: substrate <command> --help)\n"
               "  -V, --version    print the version\n"
               "  --ca-file FILE   (commands that talk to a registry, among their options) PEM CA\n"
               "                   certificates trusted besides the system's; as SUBSTRATE_CA_FILE\n"
               "\n"
               "Environment:\n"
               "  SUBSTRATE_STATE     state directory (default /var/lib/substrate)\n"
               "  SUBSTRATE_REGISTRY  local registry host:port (default 127.0.0.1:5000)\n"
               "  SUBSTRATE_LOG       error|warn|info|debug (default info)\n"
               "\n"
               "Exit codes: 0 success; 1 a check said no (verification failed, DRIFT, digest\n"
               "mismatch); 2 usage or input error; 3 environment or operational error.\n");
}

/* Commands that talk to a registry take --ca-file FILE anywhere among their
 * options (before a "--"): a CA bundle trusted besides the system's, the same
 * as $SUBSTRATE_CA_FILE, which it sets. Taken out of argv before the command
 * parses it, so each command need not repeat it. */
static const char *const registry_cmds[] = {"build", "push", "pull", "inspect", "sign", "verify",
                                            "attest", "build-sign-push", "login", "logout",
                                            "reconcile", "align", "render"};

static int take_ca_file(const char *cmd, int *argc, char **argv) {
    bool takes = false;
    for (size_t i = 0; i < ARRAY_SIZE(registry_cmds); i++)
        if (!strcmp(cmd, registry_cmds[i])) takes = true;
    const char *file = NULL;
    for (int i = 1; i < *argc && strcmp(argv[i], "--") != 0;) {
        int n = 0;
        if (!strcmp(argv[i], "--ca-file")) {
            if (i + 1 >= *argc)
                return cli_usage_error(cmd, "--ca-file needs a file (PEM CA certificates)");
            file = argv[i + 1];
            n = 2;
        } else if (!strncmp(argv[i], "--ca-file=", 10)) {
            file = argv[i] + 10;
            n = 1;
        }
        if (!n) {
            i++;
            continue;
        }
        if (!takes)
            return cli_usage_error(cmd, "--ca-file is for the commands that talk to a registry "
                                        "(pull, push, inspect, sign, verify, attest, build, "
                                        "build-sign-push, login, logout, reconcile, align, render)");
        memmove(&argv[i], &argv[i + n], (size_t)(*argc - i - n + 1) * sizeof *argv);
        *argc -= n;
    }
    if (!file) return 0;
    if (!*file) return cli_usage_error(cmd, "--ca-file needs a file (PEM CA certificates)");
    if (setenv("SUBSTRATE_CA_FILE", file, 1) < 0) return SUB_EXIT_ENV;
    return 0;
}

/* --json (or -o json) on the command line: errors also go to stdout as JSON,
 * unless the command already printed its own record there. */
static bool json_errors;

void cli_json_printed(void) { json_errors = false; }

static bool wants_json(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-ojson") ||
            (!strcmp(argv[i], "-o") && i + 1 < argc && !strcmp(argv[i + 1], "json")))
            return true;
    return false;
}

/* Every message may quote what a registry or a file said: escape control
 * characters (ESC, C1, newlines) so it cannot drive the terminal. */
int cli_fail(const char *cmd, const sub_err *e) {
    _cleanup_free_ char *msg = sub_str_escape(e->msg[0] ? e->msg : "unknown error");
    fprintf(stderr, "substrate %s: error: %s\n", cmd, msg);
    if (e->detail[0]) {
        size_t n = strlen(e->detail);
        while (n && e->detail[n - 1] == '\n') n--; /* captured output ends in one */
        sub_buf d = SUB_BUF_INIT;
        sub_buf_put_escaped(&d, e->detail, n);
        fprintf(stderr, "  detail: %s\n", sub_buf_str(&d));
        sub_buf_free(&d);
    }
    int code = sub_err_exit_code(e);
    code = code ? code : SUB_EXIT_ENV;
    if (json_errors) {
        _cleanup_json_ json_t *j = json_object();
        json_object_set_new(j, "error", sub_json_str(e->msg[0] ? e->msg : "unknown error"));
        json_object_set_new(j, "detail", e->detail[0] ? sub_json_str(e->detail) : json_null());
        const char *reason = sub_reason_to_string(e->reason);
        json_object_set_new(j, "reason", e->reason ? json_string(reason) : json_null());
        json_object_set_new(j, "exit_code", json_integer(code));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        if (s) fputs(s, stdout);
        json_errors = false;
    }
    return code;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *msg = sub_str_escape(raw);
    fprintf(stderr, "substrate %s: error: %s\nTry `substrate %s --help`.\n", cmd, msg, cmd);
    return SUB_EXIT_USAGE;
}

void cli_line(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    _cleanup_free_ char *safe = sub_str_escape(raw);
    fprintf(f, "%s\n", safe);
}

int cli_bad_option(const char *cmd, char **argv, const struct option *opts) {
    /* getopt is silent (opterr = 0): this is the one message */
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    char shortopt[3] = {'-', (char)optopt, 0};
    bool is_short = optopt > 0 && optopt < 128 && (arg[0] != '-' || arg[1] != '-');
    if (is_short) arg = shortopt;
    if (optopt)
        for (const struct option *o = opts; o && o->name; o++)
            if (o->val == optopt && o->has_arg == required_argument)
                return cli_usage_error(cmd, "option %s needs an argument", arg);
    return cli_usage_error(cmd, "unknown option \"%s\"", arg);
}

int cli_output_opt(const char *cmd, const char *format, bool *json) {
    if (!strcmp(format, "json")) *json = true;
    else if (!strcmp(format, "text")) *json = false;
    else return cli_usage_error(cmd, "unknown output format \"%s\" (json or text)", format);
    return 0;
}

/* skopeo's transports. Only docker:// names a registry image; the others
 * name local storage, which the commands take in other options. */
static const char *const other_transports[] = {"oci:", "oci-archive:", "docker-archive:",
                                               "docker-daemon:", "containers-storage:", "dir:",
                                               NULL};

int cli_parse_ref(const char *cmd, const char *arg, sub_ref *ref) {
    const char *s = arg;
    if (!strncmp(s, "docker://", 9)) s += 9;
    sub_err e = {0};
    if (sub_ref_parse(s, sub_registry_addr(), ref, &e) < 0) {
        for (const char *const *t = other_transports; *t; t++)
            if (!strncmp(arg, *t, strlen(*t))) {
                sub_err_prefix(&e, "%s names %.*s storage, not a registry image (give "
                                   "docker://REF or REF here; an OCI layout goes to --oci)",
                               arg, (int)strlen(*t) - 1, *t);
                break;
            }
        return cli_fail(cmd, &e);
    }
    return 0;
}

int cli_parse_layout(const char *cmd, const char *arg, char **dir, char **name) {
    const char *s = arg;
    if (!strncmp(s, "oci:", 4)) s += 4;
    else if (!strncmp(s, "docker://", 9))
        return cli_usage_error(cmd, "--oci %s: that is a registry image; --oci takes an OCI layout, "
                                    "DIR[:NAME] or oci:DIR[:NAME]", arg);
    if (!*s) return cli_usage_error(cmd, "--oci %s: name a directory", arg);
    sub_layout_parse_arg(s, dir, name);
    return 0;
}

int cli_open_signing_key(const char *cmd, const char *keyp, const char *passfile,
                         const char *nothing_done, sub_privkey **out) {
    sub_err e = {0};
    sub_key_open_opts ko = {.path = keyp, .passphrase_file = passfile,
                            .nothing_done = nothing_done};
    if (sub_signing_key_open(&ko, out, &e) < 0) return cli_fail(cmd, &e);
    return SUB_EXIT_OK;
}

int cli_parse_digest_ref(const char *cmd, const char *verb, const char *arg, sub_ref *ref) {
    int rc = cli_parse_ref(cmd, arg, ref);
    if (rc) return rc;
    if (!ref->digest) {
        sub_ref_free(ref);
        return cli_usage_error(cmd,
                               "%s names no digest: %s by digest (REF@sha256:<hex>), since a tag "
                               "can move; `substrate inspect %s` shows the digest",
                               arg, verb, arg);
    }
    return 0;
}

int cmd_version(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("Usage: substrate version\n\nPrint the version of substrate.\n");
            return SUB_EXIT_OK;
        }
    printf("substrate %s\n", SUBSTRATE_VERSION);
    return 0;
}

static void log_to_stderr(sub_log_level l, const char *msg) {
    static const char *const names[] = {"error", "warning", "info", "debug"};
    _cleanup_free_ char *safe = sub_str_escape(msg); /* log lines may quote a registry */
    if (l == SUB_LOG_INFO) fprintf(stderr, "substrate: %s\n", safe);
    else fprintf(stderr, "substrate: %s: %s\n", names[l], safe);
}

/* The closest command, if it is close enough to be a typo (or a prefix). */
static const char *nearest_command(const char *name) {
    const char *best = NULL;
    size_t bd = SIZE_MAX;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        size_t d = sub_edit_distance(name, commands[i].name);
        if (d < bd) bd = d, best = commands[i].name;
    }
    size_t n = strlen(name);
    if (best && bd <= (n < 6 ? 1u : n < 10 ? 2u : 3u)) return best;
    size_t hits = 0;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (n >= 3 && !strncmp(commands[i].name, name, n)) hits++, best = commands[i].name;
    return hits == 1 ? best : NULL;
}

static int unknown_command(const char *name) {
    _cleanup_free_ char *safe = sub_str_escape(name);
    const char *near = nearest_command(name);
    if (near)
        fprintf(stderr, "substrate: error: unknown command \"%s\"; did you mean \"%s\"?\n", safe,
                near);
    else
        fprintf(stderr, "substrate: error: unknown command \"%s\"\n", safe);
    fprintf(stderr, "Try `substrate --help` for the list of commands.\n");
    return SUB_EXIT_USAGE;
}

int main(int argc, char **argv) {
    if (sub_log_init() < 0) {
        _cleanup_free_ char *bad = sub_str_escape(getenv("SUBSTRATE_LOG"));
        fprintf(stderr, "substrate: error: SUBSTRATE_LOG=%s is not a log level: use %s\n", bad,
                SUB_LOG_LEVELS);
        return SUB_EXIT_USAGE;
    }
    sub_log_set_sink(log_to_stderr);
    opterr = 0; /* unknown options are reported once, by cli_bad_option */
    sub_residue_install(); /* interrupted work leaves no temporaries behind */
    if (argc < 2) {
        usage(stderr);
        return SUB_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") && argc > 2) { /* substrate help CMD = substrate CMD --help */
        const sub_cmd *c = find_cmd(argv[2]);
        if (!c) return unknown_command(argv[2]);
        char *hargv[] = {argv[2], "--help", NULL};
        current = c->name;
        return c->run(2, hargv);
    }
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "-V") || !strcmp(name, "--version")) return cmd_version(argc, argv);
    const sub_cmd *c = find_cmd(name);
    if (!c) return unknown_command(name);
    current = c->name;
    int cargc = argc - 1;
    int rc = take_ca_file(c->name, &cargc, argv + 1);
    if (rc) return rc;
    json_errors = wants_json(cargc, argv + 1);
    return c->run(cargc, argv + 1);
}
