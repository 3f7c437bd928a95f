/* substrate nested-smoke: does a hardware-backed microVM boot here? (The
 * boot is lib/tier2's sub_vm_kvm_smoke; this file parses flags and prints.) */
#include "cli.h"
#include "substrate/json.h"
#include "substrate/tier2.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMOKE_DEADLINE_S 20

static void smoke_usage(FILE *f) {
    fputs("Usage: substrate nested-smoke [--json] [--deadline SECONDS]\n"
          "       (also: platform/validate/nested-smoke)\n"
          "\n"
          "Boot one minimal microVM with hardware acceleration (KVM) and say whether it came up:\n"
          "the host's kernel and Substrate's guest agent, -accel kvm, no disk, no network, the VMM\n"
          "jailed as a job's is. PASS only when the guest agent answered before the deadline; TCG\n"
          "(software emulation) never counts. Otherwise FAIL, with the precise reason:\n"
          "  no_device        there is no /dev/kvm (no kvm module, or no hardware or nested\n"
          "                   virtualisation exposed to this machine)\n"
          "  no_permission    /dev/kvm cannot be opened by this user\n"
          "  qemu_failed      /dev/kvm is there, but qemu or the guest ended early: qemu's own\n"
          "                   error or the guest's last console words are quoted\n"
          "  no_sign_of_life  /dev/kvm is there, but the guest did not answer within the deadline\n"
          "It never hangs: the deadline ends the boot, and the VMM is killed and its jail removed.\n"
          "Tier-2 jobs make the same decision on their own (a cached probe boot) and fall back to\n"
          "TCG; this command is the gate that says so out loud.\n"
          "\n"
          "Options:\n"
          "      --deadline S   how long the boot may take (1-600 s, default 20)\n"
          "      --json, -o json  {verdict, cause, reason, ms, accelerator, qemu, kernel,\n"
          "                     deadline_ms} on stdout\n"
          "      --device PATH  open PATH instead of /dev/kvm (to see the no_device and\n"
          "                     no_permission answers on a host that has KVM)\n"
          "\n"
          "Exit codes: 0 PASS; 1 FAIL (the reason says why); 2 usage; 3 it could not try (qemu or\n"
          "the kernel missing: scripts/install-deps).\n",
          f);
}

CMD(nested_smoke) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},      {"json", no_argument, NULL, 'j'},
                                         {"deadline", required_argument, NULL, 'd'}, {"device", required_argument, NULL, 'D'},
                                         CLI_OUTPUT_OPTION,                        {NULL, 0, NULL, 0}};
    bool json = false;
    long deadline = SMOKE_DEADLINE_S;
    const char *device = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': smoke_usage(stdout); return SUB_EXIT_OK;
        case 'j': json = true; break;
        case 'D': device = optarg; break;
        case 'd': {
            char *end;
            deadline = strtol(optarg, &end, 10);
            if (end == optarg || *end || deadline < 1 || deadline > 600)
                return cli_usage_error("nested-smoke", "--deadline takes whole seconds from 1 to 600, not \"%s\"", optarg);
            break;
        }
        case 'o':
            if (cli_output_opt("nested-smoke", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        default: return cli_bad_option("nested-smoke", argv, opts);
        }
    }
    if (optind != argc) return cli_usage_error("nested-smoke", "unexpected argument \"%s\"", argv[optind]);
    sub_kvm_smoke res;
    sub_err e = {0};
    if (sub_vm_kvm_smoke((uint32_t)deadline * 1000, device, &res, &e) < 0) return cli_fail("nested-smoke", &e);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:I}", "verdict", res.pass ? "PASS" : "FAIL",
                                             "cause", res.cause, "reason", res.reason, "ms", (json_int_t)res.ms,
                                             "accelerator", "kvm", "qemu", res.qemu_version, "kernel",
                                             res.kernel_version, "deadline_ms", (json_int_t)deadline * 1000);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        printf("%s\n", s);
    } else {
        cli_line(stdout, "nested-smoke: %s (%s): %s", res.pass ? "PASS" : "FAIL", res.cause, res.reason);
        printf("  qemu %s, kernel %s, %lld ms (deadline %ld s)\n", res.qemu_version,
               res.kernel_version[0] ? res.kernel_version : "unknown",
               (long long)res.ms, deadline);
    }
    return res.pass ? SUB_EXIT_OK : SUB_EXIT_CHECK;
}
