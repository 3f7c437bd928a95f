/* substrate sandbox [run] JOBSPEC / substrate sandbox sweep: Tier-2 jobs
 * (the runner is lib/tier2; this file parses flags and prints). */
#include "cli.h"
#include "substrate/json.h"
#include "substrate/strbuf.h"
#include "substrate/tier2.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate sandbox [run] [--json] [--key FILE.pub]... [--signature SIG] JOBSPEC\n"
          "       substrate sandbox sweep [--json]\n"
          "       (also: platform/sandbox/sandbox-runner [--json] JOBSPEC)\n"
          "\n"
          "Run one job (Tier-2: an ephemeral microVM; Tier-0: a plain process) and print its report.\n"
          "\n"
          "JOBSPEC is a signed JSON jobspec (README \"Tier-2 jobspec\"). Before anything runs:\n"
          "  - its signature, JOBSPEC.sig (`substrate sign-blob JOBSPEC --key KEY`), must verify\n"
          "    with a key of the trust store, or with --key; a key the jobspec names is never used;\n"
          "  - the image it names by digest must carry a cosign signature that verifies with the\n"
          "    same keys under the jobspec's identity policy.\n"
          "The job then runs in a qemu microVM (KVM when a probe boot works here, else TCG) whose\n"
          "VMM is jailed: its own uid, namespaces and cgroup, qemu's seccomp sandbox, a read-only\n"
          "root. It has no network device unless the jobspec allows egress; each probe the jobspec\n"
          "lists is dialled from inside and recorded with the host's evidence. One wall-clock\n"
          "deadline (the jobspec's timeout, boot included) is enforced by the host. Afterwards\n"
          "everything of the job is removed and audited (teardown.residual must be 0).\n"
          "\n"
          "A jobspec with \"tier\": 0 runs the same way (the same checks, deadline, audit and\n"
          "report) as a plain process on the host kernel instead: the image's tree as an overlay\n"
          "root, new mount, PID, network (loopback only), IPC and UTS namespaces, its own cgroup\n"
          "and job uid, no capabilities, a fresh private /work, only the jobspec's env (none of\n"
          "ours). It has no egress (an egress.allow is refused), no \"user\", and no secret-like\n"
          "env (a name with PASSWORD, SECRET or TOKEN or ending in _KEY, any case; a value with\n"
          "a PEM private key). Its stdout and stderr are also kept in local files,\n"
          "$SUBSTRATE_STATE/logs/<job id>.stdout and .stderr. The report says \"tier\": 0,\n"
          "\"boundary\": \"process\": it is a process boundary, not a VM. Escalation never\n"
          "reaches tier 0.\n"
          "\n"
          "The job's stdout and stderr are copied to ours; a summary goes to stderr. With --json\n"
          "only the report is printed, on stdout. Reports are kept in\n"
          "$SUBSTRATE_STATE/tier2/reports/<job id>.json, output files beside them.\n"
          "\n"
          "sweep removes what runners killed with SIGKILL left behind (each run does it first).\n"
          "\n"
          "Options:\n"
          "      --key FILE.pub      a trusted public key (repeat); default: the trust store\n"
          "      --signature SIG     the jobspec's signature file (default JOBSPEC.sig)\n"
          "      --json, -o json     print the report as JSON on stdout\n"
          "  -q, --quiet             no progress lines\n"
          "  -h, --help              this text\n"
          "\n"
          "Environment: SUBSTRATE_STATE (state dir), SUBSTRATE_JOB_TIMEOUT_MAX (host cap on\n"
          "timeouts, seconds, default 3600), SUBSTRATE_JOB_UID_BASE (first uid of the range jobs\n"
          "run under, default 1000000000, 1024 uids), SUBSTRATE_AGENT (the guest agent binary),\n"
          "SUBSTRATE_VM_KERNEL (a vmlinuz to boot instead of the newest in /boot),\n"
          "SUBSTRATE_TSC_KHZ (the host TSC rate, normally measured once).\n"
          "Test hook: SUBSTRATE_TEST_GUEST_HANG=boot makes a guest that never boots.\n"
          "\n"
          "Exit codes (as timeout(1)): the job's own exit code when it completed and the\n"
          "teardown was clean; 124 when it ran past its deadline; 125 when the runner refused\n"
          "the job (bad arguments, a bad or unsigned jobspec, an image that does not verify),\n"
          "failed itself, found residue, or saw an egress violation: the report's \"outcome\"\n"
          "says which.\n",
          f);
}

static void progress(void *ud, const char *msg) {
    (void)ud;
    cli_line(stderr, "sandbox: %s", msg);
}

static void summary(const json_t *r) {
    const char *outcome = json_string_value(json_object_get(r, "outcome"));
    const char *id = json_string_value(json_object_get(r, "job_id"));
    json_t *ec = json_object_get(r, "exit_code");
    char code[32] = "";
    if (json_is_integer(ec)) snprintf(code, sizeof code, ", exit %lld", (long long)json_integer_value(ec));
    if (json_object_get(r, "duration_ms") && json_integer_value(json_object_get(r, "tier")) == 0)
        cli_line(stderr, "job %s: %s%s (%.1f s, start %.3f s, tier 0: a process, not a VM)", id ? id : "-",
                 outcome ? outcome : "?", code, (double)json_integer_value(json_object_get(r, "duration_ms")) / 1000.0,
                 (double)json_integer_value(json_object_get(r, "start_ms")) / 1000.0);
    else if (json_object_get(r, "duration_ms"))
        cli_line(stderr, "job %s: %s%s (%.1f s, boot %.1f s, %s)", id ? id : "-", outcome ? outcome : "?", code,
                 (double)json_integer_value(json_object_get(r, "duration_ms")) / 1000.0,
                 (double)json_integer_value(json_object_get(r, "boot_ms")) / 1000.0,
                 json_string_value(json_object_get(r, "accelerator")) ?: "-");
    else
        cli_line(stderr, "job %s: %s before the %s started", id ? id : "-", outcome ? outcome : "?",
                 json_integer_value(json_object_get(r, "tier")) == 0 && json_object_get(r, "tier") ? "process" : "VM");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "egress"), i, p) {
        json_t *g = json_object_get(p, "guest");
        cli_line(stderr, "  egress %s: %s (guest: %s %s; host: %s)", json_string_value(json_object_get(p, "target")),
                 json_string_value(json_object_get(p, "result")),
                 g ? json_string_value(json_object_get(g, "result")) : "no result",
                 g ? json_string_value(json_object_get(g, "errno")) : "",
                 json_string_value(json_object_get(json_object_get(p, "host"), "nic")));
    }
    json_t *td = json_object_get(r, "teardown");
    if (td)
        cli_line(stderr, "  teardown: %zu checks, residual %d (%lld ms)", json_array_size(json_object_get(td, "checks")),
                 (int)json_integer_value(json_object_get(td, "residual")),
                 (long long)json_integer_value(json_object_get(td, "ms")));
    const char *rf = json_string_value(json_object_get(r, "report_file"));
    if (rf) cli_line(stderr, "  report: %s", rf);
}

static int do_run(int argc, char **argv) {
    enum { OPT_KEY = 256, OPT_SIG, OPT_JSON };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         {"signature", required_argument, NULL, OPT_SIG},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"quiet", no_argument, NULL, 'q'},
                                         CLI_OUTPUT_OPTION,
                                         {NULL, 0, NULL, 0}};
    _cleanup_strv_ char **keys = NULL;
    const char *sig = NULL;
    bool json = false, quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "hqo:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case OPT_KEY: strv_push(&keys, optarg); break;
        case OPT_SIG: sig = optarg; break;
        case OPT_JSON: json = true; break;
        case 'q': quiet = true; break;
        case 'o':
            if (cli_output_opt("sandbox", optarg, &json)) return SUB_JOB_EXIT_RUNNER;
            break;
        default: cli_bad_option("sandbox", argv, opts); return SUB_JOB_EXIT_RUNNER;
        }
    }
    if (optind + 1 != argc) {
        cli_usage_error("sandbox", "give exactly one JOBSPEC (see --help)");
        return SUB_JOB_EXIT_RUNNER;
    }
    sub_job_opts o = {.key_files = keys, .signature_path = sig, .note = quiet || json ? NULL : progress};
    sub_err e = {0};
    _cleanup_json_ json_t *rep = NULL;
    int r = sub_job_run_signed(argv[optind], &o, &rep, &e);
    if (json && rep) {
        _cleanup_free_ char *s = sub_json_dump_pretty(rep);
        fputs(s, stdout);
        cli_json_printed();
    }
    if (r < 0 || !rep) {
        cli_fail("sandbox", &e);
        return SUB_JOB_EXIT_RUNNER;
    }
    const char *outcome = json_string_value(json_object_get(rep, "outcome"));
    if (!json) {
        json_t *so = json_object_get(json_object_get(rep, "stdout"), "text");
        json_t *se = json_object_get(json_object_get(rep, "stderr"), "text");
        if (so) fputs(json_string_value(so), stdout);
        fflush(stdout);
        if (se) fputs(json_string_value(se), stderr);
        summary(rep);
    }
    if (e.code && outcome && strcmp(outcome, "completed")) cli_fail("sandbox", &e);
    else if (outcome && strcmp(outcome, "completed") && !json)
        cli_line(stderr, "substrate sandbox: %s", json_string_value(json_object_get(rep, "error")) ?: outcome);
    return sub_job_exit_code(rep);
}

static int do_sweep(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return SUB_EXIT_OK;
        } else
            return cli_usage_error("sandbox sweep", "unknown argument %s", argv[i]);
    }
    sub_err e = {0};
    _cleanup_json_ json_t *sw = NULL;
    int n = sub_job_sweep(&sw, &e);
    if (n < 0) return cli_fail("sandbox sweep", &e);
    if (json) {
        _cleanup_free_ char *s = sub_json_dump_pretty(sw);
        fputs(s, stdout);
    } else {
        cli_line(stdout, "swept %d job(s) left by dead runners", n);
    }
    size_t i;
    json_t *it;
    int residual = 0;
    json_array_foreach(sw, i, it) residual += (int)json_integer_value(
        json_object_get(json_object_get(it, "teardown"), "residual"));
    return residual ? SUB_EXIT_ENV : SUB_EXIT_OK;
}

CMD(sandbox) {
    if (argc >= 2 && !strcmp(argv[1], "sweep")) return do_sweep(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "run")) return do_run(argc - 1, argv + 1);
    return do_run(argc, argv);
}
