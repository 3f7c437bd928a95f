/* substrate nested-smoke: does a hardware-backed microVM boot here? (The
 * boot is lib/tier2's sub_vm_kvm_smoke; this file parses flags and prints.) */
#include "cli.h"
#include "substrate/json.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/tier2.h"
#include "substrate/vm.h"
#include "substrate/vmspec.h"
#include <getopt.h>
#include <inttypes.h>
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

/* ---- provision-vm / destroy-vm ---------------------------------------------------------- */

static void provision_usage(FILE *f) {
    fputs("Usage: substrate provision-vm [SPEC] [--json] [--quiet] [--deadline SECONDS]\n"
          "       (also: platform/vm/provision-vm [SPEC])\n"
          "\n"
          "Build and boot the golden VM described by SPEC (default platform/vm/golden.yaml of the\n"
          "checkout; the format is in README.md, \"Golden VM\"). Idempotent:\n"
          "  - the disk image is cached by its image key: a hash of suite, disk size, every\n"
          "    package, users, services, the mirror's Release file (MIRROR/dists/SUITE/InRelease)\n"
          "    and Substrate's commit (HEAD; a dirty working tree is refused). A key not in the\n"
          "    cache is built: mmdebstrap from the Debian mirror this host's apt uses (the\n"
          "    downloaded packages are kept for the next build), platform/vm/customize inside\n"
          "    the root (Substrate cloned at the commit and built, its registry, the platform key's\n"
          "    public half trusted, every platform image built, signed with the platform key and\n"
          "    pushed into the VM's registry, the services' manifests pinned to those digests,\n"
          "    systemd units), then mke2fs -d (no loop mount). A failed build leaves nothing.\n"
          "  - it boots by direct kernel boot (the image's own vmlinuz and initrd) on an overlay\n"
          "    (qcow2) of the cached image: KVM when a probe boot works, else TCG; user-mode\n"
          "    networking with restrict=on: the only way in is 127.0.0.1:ssh_port -> the guest's\n"
          "    22, and the guest has no way out.\n"
          "  - the platform SSH key ($SUBSTRATE_STATE/vm/ssh/id_ed25519, 0600) is made on the host\n"
          "    and handed to the guest at each boot with fw_cfg; the guest prints its host key\n"
          "    on the serial console, which is pinned in known_hosts (no trust on first use).\n"
          "  - it waits until `ssh ... true` works, then until the services' unit has reconciled\n"
          "    them, and runs `substrate align` on each inside.\n"
          "Run again with the VM up and nothing changed: a no-op that says so. cpus, memory or\n"
          "ssh_port changed: the VM restarts on the cached image. Anything else changed: a new\n"
          "image is built (or taken from the cache) and replaces the VM.\n"
          "\n"
          "Options:\n"
          "      --deadline S     how long boot, SSH and the services may take (default 900)\n"
          "      --json, -o json  {name, action, why, built, image_key, boot_key, commit,\n"
          "                       accelerator, pid, ssh_port, ssh, run_dir, image_bytes,\n"
          "                       services, seconds} on stdout\n"
          "  -q, --quiet          no progress on stderr\n"
          "\n"
          "Files: image cache $SUBSTRATE_VM_CACHE (default " SUB_VM_DEFAULT_CACHE "), packages\n"
          "$SUBSTRATE_VM_DEBS (default " SUB_VM_DEFAULT_DEBS "), the running VM under\n"
          "$SUBSTRATE_STATE/vm/NAME/ (vm.json, qemu.pid, qmp.sock, serial.log, qemu.log,\n"
          "disk.qcow2, known_hosts). When provisioning fails, the end of the serial console is\n"
          "printed and the VM is left up to look at: platform/vm/destroy-vm removes it.\n"
          "\n"
          "Exit codes: 0 the VM answers on SSH and its services are ALIGNED; 1 a service inside\n"
          "is not aligned; 2 usage or a bad spec; 3 environment (a tool missing, the mirror,\n"
          "qemu, a timeout).\n",
          f);
}

typedef struct vm_progress {
    bool quiet;
} vm_progress;

static void vm_progress_cb(void *ud, const char *stage, const char *detail, bool done, int64_t ms) {
    const vm_progress *p = ud;
    if (p->quiet) return;
    if (done)
        fprintf(stderr, "provision-vm: [%6.1fs] %s: done%s%s\n", (double)ms / 1000, stage, detail ? ", " : "",
                detail ? detail : "");
    else
        fprintf(stderr, "provision-vm: [%6.1fs] %s%s%s\n", (double)ms / 1000, stage, detail ? ": " : "",
                detail ? detail : "");
}

static int parse_deadline(const char *cmd, const char *arg, long *out) {
    char *end;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || v < 1 || v > 86400)
        return cli_usage_error(cmd, "--deadline takes whole seconds from 1 to 86400, not \"%s\"", arg);
    *out = v;
    return 0;
}

CMD(provision_vm) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},          {"json", no_argument, NULL, 'j'},
                                         {"quiet", no_argument, NULL, 'q'},         {"deadline", required_argument, NULL, 'd'},
                                         CLI_OUTPUT_OPTION,                         {NULL, 0, NULL, 0}};
    bool json = false;
    long deadline = 0;
    vm_progress pr = {0};
    int c;
    while ((c = getopt_long(argc, argv, "hqo:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': provision_usage(stdout); return SUB_EXIT_OK;
        case 'j': json = true; break;
        case 'q': pr.quiet = true; break;
        case 'd':
            if (parse_deadline("provision-vm", optarg, &deadline)) return SUB_EXIT_USAGE;
            break;
        case 'o':
            if (cli_output_opt("provision-vm", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        default: return cli_bad_option("provision-vm", argv, opts);
        }
    }
    if (argc - optind > 1) return cli_usage_error("provision-vm", "unexpected argument \"%s\"", argv[optind + 1]);
    sub_vm_provision_opts o = {.spec_path = optind < argc ? argv[optind] : NULL, .deadline_s = (uint32_t)deadline,
                               .progress = vm_progress_cb, .ud = &pr};
    sub_vm_provision_result res;
    sub_err e = {0};
    int r = sub_vm_provision(&o, &res, &e);
    if (r < 0) {
        sub_vm_provision_result_done(&res);
        return cli_fail("provision-vm", &e);
    }
    if (json) {
        _cleanup_json_ json_t *svc = json_array();
        for (char **v = res.services; v && *v; v++) json_array_append_new(svc, json_string(*v));
        _cleanup_json_ json_t *j = json_pack(
            "{s:s,s:s,s:s,s:b,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:I,s:O,s:f}", "name", res.name, "action", res.action,
            "why", res.why ? res.why : "", "built", res.built, "image_key", res.image_key, "boot_key", res.boot_key,
            "commit", res.commit, "accelerator", res.accel, "pid", (int)res.pid, "ssh_port", (int)res.ssh_port, "ssh",
            res.ssh_command, "run_dir", res.run_dir, "image_bytes", (json_int_t)res.image_bytes, "services", svc,
            "seconds", (double)res.ms / 1000);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        printf("%s\n", s);
    } else {
        printf("%s: %s (%s), %s, pid %d, in %.1f s\n", res.name, res.action, res.why ? res.why : "",
               res.accel, (int)res.pid, (double)res.ms / 1000);
        for (char **v = res.services; v && *v; v++) printf("  %s\n", *v);
        printf("connect: %s\n", res.ssh_command);
    }
    sub_vm_provision_result_done(&res);
    return SUB_EXIT_OK;
}

static void destroy_usage(FILE *f) {
    fputs("Usage: substrate destroy-vm [SPEC | --name NAME] [--purge] [--json] [--deadline SECONDS]\n"
          "       (also: platform/vm/destroy-vm)\n"
          "\n"
          "Stop and remove the golden VM named in SPEC (default platform/vm/golden.yaml; or\n"
          "--name): an ACPI power-down over its QMP socket, then SIGKILL of the recorded qemu\n"
          "pid after the deadline; then its runtime files under $SUBSTRATE_STATE/vm/NAME/\n"
          "(vm.json, qemu.pid, qmp.sock, serial.log, qemu.log, disk.qcow2, known_hosts).\n"
          "Idempotent: with no VM it does nothing and succeeds; a VM killed by someone else\n"
          "has its files removed. The platform SSH key and the image cache stay.\n"
          "\n"
          "Options:\n"
          "      --name NAME      the VM's name instead of reading it from a spec\n"
          "      --purge          also remove the VM's cached disk image\n"
          "      --deadline S     how long the power-down may take before SIGKILL (default 120)\n"
          "      --json, -o json  {name, was_running, graceful, killed, purged, removed, seconds}\n"
          "\n"
          "Exit codes: 0 removed (or nothing to remove); 2 usage or a bad spec; 3 environment.\n",
          f);
}

CMD(destroy_vm) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},          {"json", no_argument, NULL, 'j'},
                                         {"purge", no_argument, NULL, 'p'},         {"name", required_argument, NULL, 'n'},
                                         {"deadline", required_argument, NULL, 'd'}, CLI_OUTPUT_OPTION,
                                         {NULL, 0, NULL, 0}};
    bool json = false, purge = false;
    long deadline = 0;
    const char *name = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': destroy_usage(stdout); return SUB_EXIT_OK;
        case 'j': json = true; break;
        case 'p': purge = true; break;
        case 'n': name = optarg; break;
        case 'd':
            if (parse_deadline("destroy-vm", optarg, &deadline)) return SUB_EXIT_USAGE;
            break;
        case 'o':
            if (cli_output_opt("destroy-vm", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        default: return cli_bad_option("destroy-vm", argv, opts);
        }
    }
    if (argc - optind > 1 || (name && optind < argc))
        return cli_usage_error("destroy-vm", "give a SPEC or --name, once");
    sub_err e = {0};
    _cleanup_vm_spec_ sub_vm_spec s = {0};
    if (!name) {
        _cleanup_free_ char *repo = NULL, *path = NULL;
        if (optind < argc)
            path = xstrdup(argv[optind]);
        else if (sub_git_default_repo(&repo, &e) < 0)
            return cli_fail("destroy-vm", &e);
        else
            path = sub_path_join(repo, SUB_VM_DEFAULT_SPEC);
        if (sub_vm_spec_load(path, NULL, &s, &e) < 0) return cli_fail("destroy-vm", &e);
        name = s.name;
    }
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') || strlen(name) > SUB_VM_NAME_MAX)
            return cli_usage_error("destroy-vm", "--name takes [a-z0-9-], at most %d characters, not \"%s\"",
                                   SUB_VM_NAME_MAX, name);
    sub_vm_destroy_result r;
    if (sub_vm_destroy(name, purge, (uint32_t)deadline, &r, &e) < 0) return cli_fail("destroy-vm", &e);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s,s:b,s:b,s:b,s:b,s:i,s:f}", "name", r.name, "was_running",
                                             r.was_running, "graceful", r.graceful, "killed", r.killed, "purged",
                                             r.purged, "removed", r.removed, "seconds", (double)r.ms / 1000);
        _cleanup_free_ char *s2 = sub_json_dump_pretty(j);
        printf("%s\n", s2);
    } else if (!r.was_running && !r.removed && !r.purged) {
        printf("%s: nothing to destroy (no VM of that name under %s)\n", r.name, sub_state_dir());
    } else {
        printf("%s: %s; %d runtime file%s removed%s (%.1f s)\n", r.name,
               !r.was_running ? "was not running" : r.graceful ? "powered off" : "killed after the deadline",
               r.removed, r.removed == 1 ? "" : "s", r.purged ? ", cached image purged" : "", (double)r.ms / 1000);
    }
    return SUB_EXIT_OK;
}
