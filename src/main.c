/* substrate: multi-call binary. `substrate <command> [options]`. */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/log.h"
#include "substrate/ref.h"
#include "substrate/residue.h"
#include "version.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int not_yet(int argc, char **argv);

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
    {"build-sign-push", cmd_build_sign_push, "build (twice), push, sign and verify every platform image", NULL},
    {"reconcile", not_yet, "render and (re)start a Tier-1 service from its manifest", "a later issue"},
    {"align", not_yet, "prove a running service matches its manifest (ALIGNED/DRIFT)", "a later issue"},
    {"sandbox", not_yet, "run a Tier-2 job in an ephemeral microVM", "a later issue"},
    {"provision-vm", not_yet, "build and boot the golden VM", "a later issue"},
    {"destroy-vm", not_yet, "destroy the golden VM", "a later issue"},
    {"nested-smoke", not_yet, "check whether a hardware-backed microVM boots here", "a later issue"},
};

static const char *current;

static int not_yet(int argc, char **argv) {
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, current)) {
            fprintf(stderr,
                    "substrate %s: not available yet: this capability lands with %s.\n"
                    "See `substrate --help` for what works today.\n",
                    current, commands[i].issue);
            break;
        }
    return SUB_EXIT_USAGE;
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
               "\n"
               "Environment:\n"
               "  SUBSTRATE_STATE     state directory (default /var/lib/substrate)\n"
               "  SUBSTRATE_REGISTRY  local registry host:port (default 127.0.0.1:5000)\n"
               "  SUBSTRATE_LOG       error|warn|info|debug (default info)\n"
               "\n"
               "Exit codes: 0 success; 1 a check said no (verification failed, DRIFT, digest\n"
               "mismatch); 2 usage or input error; 3 environment or operational error.\n");
}

int cli_fail(const char *cmd, const sub_err *e) {
    fprintf(stderr, "substrate %s: error: %s\n", cmd, e->msg[0] ? e->msg : "unknown error");
    if (e->detail[0]) fprintf(stderr, "  detail: %s\n", e->detail);
    int code = sub_err_exit_code(e);
    return code ? code : SUB_EXIT_ENV;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "substrate %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry `substrate %s --help`.\n", cmd);
    va_end(ap);
    return SUB_EXIT_USAGE;
}

int cli_parse_digest_ref(const char *cmd, const char *verb, const char *arg, sub_ref *ref) {
    sub_err e = {0};
    if (sub_ref_parse(arg, sub_registry_addr(), ref, &e) < 0) return cli_fail(cmd, &e);
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
    (void)argc;
    (void)argv;
    printf("substrate %s\n", SUBSTRATE_VERSION);
    return 0;
}

int main(int argc, char **argv) {
    sub_log_init();
    sub_residue_install(); /* interrupted work leaves no temporaries behind */
    if (argc < 2) {
        usage(stderr);
        return SUB_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            char *hargv[] = {argv[2], "--help", NULL};
            for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (!strcmp(commands[i].name, argv[2])) {
                    current = commands[i].name;
                    return commands[i].run(2, hargv);
                }
        }
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "-V") || !strcmp(name, "--version")) return cmd_version(argc, argv);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, name)) {
            current = commands[i].name;
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "substrate: unknown command \"%s\"\n\n", name);
    usage(stderr);
    return SUB_EXIT_USAGE;
}
