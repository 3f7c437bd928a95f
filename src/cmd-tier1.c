/* Tier-1 verbs: reconcile, align, status, stop, logs, supervise. Each parses
 * its flags, calls lib/tier1 and prints. */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/svc-manifest.h"
#include "substrate/tier1.h"
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char env_exit[] =
    "Environment:\n"
    "  SUBSTRATE_STATE     state directory (default /var/lib/substrate); Tier-1 state is\n"
    "                      under $SUBSTRATE_STATE/tier1/\n"
    "\n"
    "Exit codes: 0 success; 1 a check said no; 2 usage or input error; 3 environment or\n"
    "operational error.\n";

static void print_json(const json_t *j) {
    _cleanup_free_ char *s = sub_json_dump_pretty(j);
    fputs(s, stdout);
    cli_json_printed();
}

static void note(void *ud, const char *fmt, ...) {
    if (!ud) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("  ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int load_manifest(const char *cmd, const char *path, sub_svc_manifest *m) {
    sub_err e = {0};
    if (sub_svc_manifest_load(path, m, &e) < 0) return cli_fail(cmd, &e);
    return 0;
}

static char *self_exe(void) {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = 0;
    return xstrdup(buf);
}

/* ---- reconcile ---- */
static void reconcile_usage(FILE *f) {
    fputs("Usage: substrate reconcile MANIFEST [--json] [--quiet]\n"
          "       substrate reconcile --render systemd [--bin PATH]\n"
          "\n"
          "Make the service a manifest describes run, at exactly the image digest it pins.\n"
          "Steps, each of which must pass before the next:\n"
          "  verify   the image's cosign signature, under the manifest's identity policy and\n"
          "           keys (the trust store by default); refused -> nothing changes, and the\n"
          "           running version keeps serving\n"
          "  pull     by digest into $SUBSTRATE_STATE/tier1/images, every byte checked\n"
          "  unpack   into a content-addressed root filesystem cache (hostile layer entries\n"
          "           refused, setuid bits cleared, a content list recorded); a cached entry\n"
          "           is checked against its content list before it is reused\n"
          "  render   the OCI bundle (read-only root, no capabilities, seccomp, cgroup limits)\n"
          "  deploy   the service's supervisor starts the version, waits until its readiness\n"
          "           probe passes, moves the published ports to it, then retires the old one\n"
          "           (SIGTERM, SIGKILL after stop_grace). With network: host both cannot\n"
          "           hold the port: the old one stops first.\n"
          "\n"
          "Idempotent: the same digest and the same manifest is a no-op (\"unchanged\").\n"
          "Promotion and rollback are a digest change in the manifest, reconciled again.\n"
          "A new version that is not ready within its readiness deadline is stopped and\n"
          "the previous one keeps serving (exit 1).\n"
          "\n"
          "The supervisor tree starts on the first reconcile: a root supervisor (detached)\n"
          "keeps one supervisor per service alive; `substrate supervise --help` tells more.\n"
          "\n"
          "Options:\n"
          "      --json, -o json   print {service, outcome, digest, previous, generation,\n"
          "                        key_id, seconds} on stdout\n"
          "  -q, --quiet           no progress on stderr\n"
          "      --render systemd  print a systemd unit that runs the supervisor tree in the\n"
          "                        foreground (`substrate supervise --boot`), for hosts with\n"
          "                        systemd; nothing is started\n"
          "      --bin PATH        the substrate binary the unit runs (default: this one)\n"
          "\n"
          "Exit: 0 serving (started, promoted, restarted or unchanged); 1 refused (signature)\n"
          "or not ready (rolled back); 2 bad manifest; 3 environment (registry, runtime).\n\n",
          f);
    fputs(env_exit, f);
}

CMD(reconcile) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'},
                                         CLI_OUTPUT_OPTION, {"quiet", no_argument, NULL, 'q'},
                                         {"render", required_argument, NULL, 'r'}, {"bin", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    bool json = false, quiet = false;
    const char *render = NULL, *bin = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "hqo:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': reconcile_usage(stdout); return SUB_EXIT_OK;
        case 'j': json = true; break;
        case 'o':
            if (cli_output_opt("reconcile", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case 'q': quiet = true; break;
        case 'r': render = optarg; break;
        case 'b': bin = optarg; break;
        default: return cli_bad_option("reconcile", argv, opts);
        }
    }
    if (render) {
        if (strcmp(render, "systemd"))
            return cli_usage_error("reconcile", "--render knows only \"systemd\", not \"%s\"", render);
        _cleanup_free_ char *self = bin ? xstrdup(bin) : self_exe();
        if (!self || self[0] != '/') return cli_usage_error("reconcile", "--bin needs an absolute path");
        _cleanup_free_ char *unit = sub_t1_render_systemd(self, sub_state_dir());
        fputs(unit, stdout);
        return SUB_EXIT_OK;
    }
    if (optind + 1 != argc) return cli_usage_error("reconcile", "give exactly one MANIFEST (see --help)");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    int r = load_manifest("reconcile", argv[optind], &m);
    if (r) return r;
    if (!quiet) fprintf(stderr, "reconcile %s (%s)\n", m.name, argv[optind]);
    sub_t1_reconcile_opts o = {.m = &m, .note = note, .ud = quiet ? NULL : (void *)1};
    sub_t1_reconcile_result res;
    sub_err e = {0};
    r = sub_t1_reconcile(&o, &res, &e);
    if (r < 0) {
        if (res.rolled_back && !json)
            fprintf(stderr, "substrate reconcile: rolled back: %s still serves %s\n", m.name, res.digest);
        return cli_fail("reconcile", &e);
    }
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:f,s:b}", "service", m.name, "outcome",
                                             sub_t1_outcome_str(res.outcome), "digest", res.digest, "previous",
                                             res.previous, "generation", (json_int_t)res.generation, "key_id",
                                             res.key_id, "seconds", res.seconds, "stop_then_start", res.stop_then_start);
        print_json(j);
        return SUB_EXIT_OK;
    }
    switch (res.outcome) {
    case SUB_T1_UNCHANGED: printf("%s: unchanged: %s already serves\n", m.name, res.digest); break;
    case SUB_T1_STARTED: printf("%s: started %s (generation %lu), ready in %.2f s\n", m.name, res.digest, res.generation, res.seconds); break;
    case SUB_T1_RESTARTED: printf("%s: restarted %s (generation %lu)\n", m.name, res.digest, res.generation); break;
    case SUB_T1_PROMOTED:
        printf("%s: promoted %s -> %s (generation %lu) in %.2f s%s\n", m.name, res.previous, res.digest,
               res.generation, res.seconds,
               res.stop_then_start ? " (network: host: the old version stopped first)" : "");
        break;
    }
    return SUB_EXIT_OK;
}

/* ---- align ---- */
static void align_usage(FILE *f) {
    fputs("Usage: substrate align MANIFEST [--deep] [--json]\n"
          "       substrate align --k8s MANIFEST [--pods FILE|-] [--namespace N] [--json]\n"
          "\n"
          "Prove that what runs is what the manifest says. Checks, each printed with its\n"
          "evidence:\n"
          "  digest     the manifest's digest == the digest of the running container\n"
          "  process    the container's init is alive (same pid and start time as recorded),\n"
          "             its root is the bundle's root filesystem, its cgroup the service's\n"
          "  signature  the running digest's signature verifies now, under the manifest's\n"
          "             policy. If the registry cannot be reached, the last verification on\n"
          "             record stands in when it is younger than verify_max_age (its age is\n"
          "             printed); otherwise align cannot decide (exit 3), never ALIGNED\n"
          "  rootfs     (--deep) every file of the root filesystem equals the content list\n"
          "             recorded at unpack time: a changed, added or removed file is named\n"
          "\n"
          "Prints ALIGNED (exit 0) or DRIFT (exit 1) with each reason. A service that was\n"
          "reconciled but is stopped or halted is DRIFT (not running). With on_drift: halt\n"
          "in the manifest, DRIFT also stops the service (its supervisor stays, status\n"
          "\"halted\"; reconcile starts it again).\n"
          "\n"
          "Kubernetes (--k8s): the same question asked of the pods a cluster runs for the\n"
          "service, read from `kubectl get pods -l app.kubernetes.io/name=NAME -o json`\n"
          "(NAME is the manifest's name; `substrate render k8s` labels the pods so). Without\n"
          "--pods, kubectl is run (it must be on PATH, configured for the cluster; it gets\n"
          "30 s). ALIGNED only when every check passes:\n"
          "  running    at least one pod, and every pod in phase Running (Pending, Failed,\n"
          "             Succeeded: DRIFT \"not running (phase X)\"; no pods: \"no pods: not\n"
          "             running\")\n"
          "  digest     every pod's service container (the one named like the service, else\n"
          "             the only one, else each one with an image of the manifest's\n"
          "             repository) runs the manifest's digest: its status's imageID (the\n"
          "             digest after the last '@') equals it; the pod spec names the image by\n"
          "             digest (a tag is DRIFT \"image by tag\" even when the imageID matches)\n"
          "             from the manifest's repository\n"
          "  ready      every pod's condition Ready is \"True\" and its container ready\n"
          "  signature  the manifest's digest verifies now under the manifest's policy, as\n"
          "             above; when the registry cannot be reached, a verification by an\n"
          "             earlier align --k8s on this host (recorded in\n"
          "             $SUBSTRATE_STATE/k8s/verified/NAME.json) stands in while younger\n"
          "             than verify_max_age, else exit 3\n"
          "DRIFT names each pod that differs and why (\"pod hello-7d9c-x2v: runs sha256:...\n"
          "(manifest sha256:...)\", \"pod ...: not ready ...\", \"pod ...: image by tag ...\").\n"
          "A pod being deleted (deletionTimestamp) is still checked for what it runs, not for\n"
          "readiness, and does not count as a running pod. --k8s only reads: nothing local\n"
          "is stopped (on_drift does not apply) and no align record is written.\n"
          "\n"
          "Options:\n"
          "      --deep            also compare the root filesystem with its content list\n"
          "                        (local only: a cluster's root filesystems are not here)\n"
          "      --k8s             align against Kubernetes pods instead of the local service\n"
          "      --pods FILE|-     (--k8s) the pod list: kubectl's JSON output in FILE, or on\n"
          "                        stdin with -, at most 64 MiB; default: run kubectl\n"
          "  -n, --namespace N     (--k8s) the namespace: passed to kubectl; with --pods, pods\n"
          "                        of other namespaces are left out\n"
          "      --json, -o json   {service, verdict, manifest_digest, running_digest, key_id,\n"
          "                        checks: [{check, result, detail}], reasons, seconds, halted};\n"
          "                        with --k8s also target: \"k8s\", namespace, source,\n"
          "                        running_digests, ignored and pods: [{name, namespace, phase,\n"
          "                        digest, ready, terminating, reasons, containers}]\n"
          "\n"
          "Exit: 0 ALIGNED; 1 DRIFT; 2 usage, bad manifest, a service never reconciled, or\n"
          "(--k8s) a pod list that is not kubectl's pod list JSON; 3 cannot decide (registry\n"
          "unreachable, no recent verification) or (--k8s) kubectl missing, failing or\n"
          "timing out.\n\n",
          f);
    fputs(env_exit, f);
}

static void print_check(const sub_t1_check *c) {
    cli_line(stdout, "  %-9s %-9s %s", c->name, c->result > 0 ? "pass" : c->result == 0 ? "FAIL" : "undecided",
             c->detail);
}

static int align_k8s(const sub_svc_manifest *m, const char *pods, const char *ns, bool json) {
    sub_t1_align_k8s_opts o = {.m = m, .pods_path = pods, .namespace_ = ns};
    sub_t1_k8s_result res;
    sub_err e = {0};
    int r = sub_t1_align_k8s(&o, &res, &e);
    if (r < 0) {
        sub_t1_k8s_result_done(&res);
        return cli_fail("align", &e);
    }
    const sub_t1_align_result *a = &res.a;
    int code = a->aligned ? SUB_EXIT_OK : a->undecided ? SUB_EXIT_ENV : SUB_EXIT_CHECK;
    if (json) {
        _cleanup_json_ json_t *j = sub_t1_align_k8s_json(&res);
        json_object_set_new(j, "exit_code", json_integer(code));
        print_json(j);
    } else {
        printf("%s %s\n", a->aligned ? "ALIGNED" : a->undecided ? "UNDECIDED" : "DRIFT", m->name);
        for (size_t i = 0; i < a->nchecks; i++) print_check(&a->checks[i]);
        for (size_t i = 0; i < res.npods; i++) {
            const sub_t1_k8s_pod *p = &res.pods[i];
            cli_line(stdout, "  pod %s%s%s: %s, %s, %s%s", *p->namespace_ ? p->namespace_ : "",
                     *p->namespace_ ? "/" : "", p->name, *p->phase ? p->phase : "no phase",
                     p->ready ? "ready" : "not ready", *p->digest ? p->digest : "no digest",
                     p->terminating ? " (terminating)" : "");
            for (char **s = p->reasons; s && *s; s++) cli_line(stdout, "    - %s", *s);
        }
        if (res.ignored) printf("  %zu pod%s of other namespaces left out\n", res.ignored, res.ignored == 1 ? "" : "s");
        cli_line(stdout, "  pods from: %s", res.source ? res.source : "?");
        printf("  (%.3f s)\n", a->seconds);
    }
    sub_t1_k8s_result_done(&res);
    return code;
}

CMD(align) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'},
                                         CLI_OUTPUT_OPTION, {"deep", no_argument, NULL, 'd'},
                                         {"k8s", no_argument, NULL, 'k'}, {"pods", required_argument, NULL, 'p'},
                                         {"namespace", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    bool json = false, deep = false, k8s = false;
    const char *pods = NULL, *ns = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "ho:n:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': align_usage(stdout); return SUB_EXIT_OK;
        case 'j': json = true; break;
        case 'o':
            if (cli_output_opt("align", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case 'd': deep = true; break;
        case 'k': k8s = true; break;
        case 'p': pods = optarg; break;
        case 'n': ns = optarg; break;
        default: return cli_bad_option("align", argv, opts);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("align", "give exactly one MANIFEST (see --help)");
    if (!k8s && (pods || ns))
        return cli_usage_error("align", "%s is for --k8s (align against Kubernetes pods); add --k8s",
                               pods ? "--pods" : "--namespace");
    if (k8s && deep)
        return cli_usage_error("align", "--deep does not apply with --k8s: it compares a local root filesystem "
                                        "with its content list, and a cluster's root filesystems are not on "
                                        "this host (the pods' image digests and signature are checked)");
    if (pods && !*pods) return cli_usage_error("align", "--pods needs a FILE, or - for stdin");
    if (ns && !*ns) return cli_usage_error("align", "--namespace needs a namespace name");
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    int r = load_manifest("align", argv[optind], &m);
    if (r) return r;
    if (k8s) return align_k8s(&m, pods, ns, json);
    sub_t1_align_opts o = {.m = &m, .deep = deep, .act = true};
    sub_t1_align_result res;
    sub_err e = {0};
    r = sub_t1_align(&o, &res, &e);
    if (r < 0) return cli_fail("align", &e);
    int code = res.aligned ? SUB_EXIT_OK : res.undecided ? SUB_EXIT_ENV : SUB_EXIT_CHECK;
    if (json) {
        _cleanup_json_ json_t *j = sub_t1_align_json(&res);
        json_object_set_new(j, "exit_code", json_integer(code));
        print_json(j);
    } else {
        printf("%s %s\n", res.aligned ? "ALIGNED" : res.undecided ? "UNDECIDED" : "DRIFT", m.name);
        for (size_t i = 0; i < res.nchecks; i++) print_check(&res.checks[i]);
        for (char **p = res.reasons; p && *p; p++)
            if (str_has_prefix(*p, "rootfs: ")) cli_line(stdout, "  %s", *p);
        if (res.halted) printf("  on_drift: halt: %s stopped (status \"halted\")\n", m.name);
        printf("  (%.3f s)\n", res.seconds);
    }
    sub_t1_align_result_done(&res);
    return code;
}

/* ---- status ---- */
static void status_usage(FILE *f) {
    fputs("Usage: substrate status [NAME] [--json]\n"
          "\n"
          "Show what the supervisor of each reconciled service recorded: status (running,\n"
          "starting, backoff, exited, halted, stopped), the running generation, digest, pid,\n"
          "start time, restarts, health, the last alignment, whether the supervisors are\n"
          "alive, and for a service with an escalate: policy its escalated jobs (running,\n"
          "queued, done, refused) with the last five. Only reads: `substrate reconcile` repairs.\n"
          "\n"
          "Options:\n"
          "      --json, -o json   the state record(s) as JSON (an array without NAME)\n\n",
          f);
    fputs(env_exit, f);
}

static void print_status(const json_t *st) {
    json_t *cur = json_object_get(st, "current");
    const char *name = json_string_value(json_object_get(st, "name"));
    printf("%s: %s", name ? name : "?", json_string_value(json_object_get(st, "status")) ?: "?");
    if (json_is_object(cur)) {
        printf(", generation %lld, %s\n", (long long)json_integer_value(json_object_get(cur, "generation")),
               json_string_value(json_object_get(cur, "image")) ?: "");
        printf("  pid %lld%s, started %s, restarts %lld, health %s\n",
               (long long)json_integer_value(json_object_get(cur, "pid")),
               json_is_true(json_object_get(st, "container_alive")) ? "" : " (gone)",
               json_string_value(json_object_get(cur, "started")) ?: "?",
               (long long)json_integer_value(json_object_get(st, "restarts")),
               json_string_value(json_object_get(st, "health")) ?: "unknown");
    } else {
        printf("\n");
    }
    json_t *la = json_object_get(st, "last_align");
    if (json_is_object(la))
        printf("  last align: %s at %s\n", json_string_value(json_object_get(la, "result")) ?: "?",
               json_string_value(json_object_get(la, "at")) ?: "?");
    const char *le = json_string_value(json_object_get(st, "last_error"));
    if (le && *le) cli_line(stdout, "  last error: %s", le);
    printf("  supervisor: %s, root supervisor: %s\n",
           json_is_true(json_object_get(st, "supervisor")) ? "running" : "NOT running",
           json_is_true(json_object_get(st, "root_supervisor")) ? "running" : "NOT running");
    json_t *esc = json_object_get(st, "escalations");
    if (json_is_object(esc)) {
        json_t *c = json_object_get(esc, "counts");
#define N(k) (long long)json_integer_value(json_object_get(c, k))
        printf("  escalation: broker %s; jobs: %lld running, %lld queued, %lld done, %lld refused, %lld failed, "
               "%lld interrupted\n",
               json_is_true(json_object_get(esc, "broker")) ? "running" : "NOT running", N("running"), N("queued"),
               N("done"), N("refused"), N("failed"), N("interrupted"));
#undef N
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(esc, "last"), i, r) {
            const char *state = json_string_value(json_object_get(r, "state")) ?: "?";
            if (streq(state, "done"))
                cli_line(stdout, "    %s  done: %s, exit %lld, job %s", json_string_value(json_object_get(r, "id")) ?: "?",
                         json_string_value(json_object_get(r, "outcome")) ?: "?",
                         (long long)json_integer_value(json_object_get(r, "exit_code")),
                         json_string_value(json_object_get(r, "job_id")) ?: "?");
            else if (streq(state, "refused"))
                cli_line(stdout, "    %s  refused (%lld %s): %s", json_string_value(json_object_get(r, "id")) ?: "?",
                         (long long)json_integer_value(json_object_get(r, "http_status")),
                         json_string_value(json_object_get(r, "reason")) ?: "?",
                         json_string_value(json_object_get(r, "message")) ?: "");
            else
                cli_line(stdout, "    %s  %s", json_string_value(json_object_get(r, "id")) ?: "?", state);
        }
    }
}

CMD(status) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'},
                                         CLI_OUTPUT_OPTION, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': status_usage(stdout); return SUB_EXIT_OK;
        case 'j': json = true; break;
        case 'o':
            if (cli_output_opt("status", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        default: return cli_bad_option("status", argv, opts);
        }
    }
    if (optind + 1 < argc) return cli_usage_error("status", "give at most one NAME");
    sub_err e = {0};
    _cleanup_strv_ char **names = NULL;
    if (optind < argc) {
        strv_push(&names, argv[optind]);
    } else if (sub_t1_list(&names, &e) < 0) {
        return cli_fail("status", &e);
    }
    _cleanup_json_ json_t *all = json_array();
    for (char **p = names; p && *p; p++) {
        _cleanup_json_ json_t *st = NULL;
        if (sub_t1_status(*p, &st, &e) < 0) return cli_fail("status", &e);
        if (json) json_array_append(all, st);
        else print_status(st);
    }
    if (json) print_json(optind < argc ? json_array_get(all, 0) : all);
    else if (!names || !names[0]) printf("no service reconciled under %s\n", sub_state_dir());
    return SUB_EXIT_OK;
}

/* ---- stop ---- */
static void stop_usage(FILE *f) {
    fputs("Usage: substrate stop MANIFEST|NAME\n"
          "\n"
          "Stop a service (idempotent): its published ports close, the container gets SIGTERM\n"
          "and, after the manifest's stop_grace, SIGKILL; its runtime state, cgroup and network\n"
          "namespace go with it, and its supervisor exits. Nothing restarts it until the next\n"
          "`substrate reconcile`.\n\n",
          f);
    fputs(env_exit, f);
}

CMD(stop) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': stop_usage(stdout); return SUB_EXIT_OK;
        default: return cli_bad_option("stop", argv, opts);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("stop", "give exactly one MANIFEST or NAME");
    const char *arg = argv[optind];
    _cleanup_svc_manifest_ sub_svc_manifest m = {0};
    _cleanup_free_ char *name = NULL;
    if (strchr(arg, '/') || str_has_suffix(arg, ".yaml") || str_has_suffix(arg, ".yml")) {
        int r = load_manifest("stop", arg, &m);
        if (r) return r;
        name = xstrdup(m.name);
    } else {
        name = xstrdup(arg);
    }
    sub_err e = {0};
    int r = sub_t1_stop(name, &e);
    if (r < 0) return cli_fail("stop", &e);
    printf("%s: %s\n", name, r ? "stopped" : "already stopped");
    return SUB_EXIT_OK;
}

/* ---- logs ---- */
static void logs_usage(FILE *f) {
    fputs("Usage: substrate logs NAME [--follow]\n"
          "\n"
          "Print a service's stdout and stderr, oldest first. They are kept under\n"
          "$SUBSTRATE_STATE/tier1/services/NAME/logs/: `current` and at most two older files\n"
          "(current.1, current.2), each capped at $SUBSTRATE_SERVICE_LOG_MAX bytes (1 MiB).\n"
          "\n"
          "Options:\n"
          "  -f, --follow   keep printing what the service writes, until interrupted\n\n",
          f);
    fputs(env_exit, f);
}

static off_t cat_file(const char *path, off_t from) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return from;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < from) from = 0; /* truncated by the rotation */
    lseek(fd, from, SEEK_SET);
    char buf[65536];
    ssize_t n;
    off_t pos = from;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        pos += n;
    }
    fflush(stdout);
    close(fd);
    return pos;
}

CMD(logs) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {"follow", no_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    bool follow = false;
    int c;
    while ((c = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
        switch (c) {
        case 'h': logs_usage(stdout); return SUB_EXIT_OK;
        case 'f': follow = true; break;
        default: return cli_bad_option("logs", argv, opts);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("logs", "give exactly one service NAME");
    const char *name = argv[optind];
    _cleanup_free_ char *dir = sub_t1_svc_path(name, NULL);
    if (!sub_path_exists(dir)) {
        sub_err e = {0};
        sub_err_setr(&e, SUB_R_NOT_RECONCILED, SUB_KIND_INPUT, -ENOENT, "no service %s was ever reconciled here", name);
        return cli_fail("logs", &e);
    }
    _cleanup_free_ char *cur = sub_t1_svc_path(name, "logs/current");
    for (int i = 2; i >= 1; i--) {
        _cleanup_free_ char *old = xasprintf("%s.%d", cur, i);
        (void)cat_file(old, 0);
    }
    off_t pos = cat_file(cur, 0);
    while (follow) {
        usleep(200000);
        pos = cat_file(cur, pos);
    }
    return SUB_EXIT_OK;
}

/* ---- supervise ---- */
static void supervise_usage(FILE *f) {
    fputs("Usage: substrate supervise [--boot]\n"
          "       substrate supervise --service NAME\n"
          "       substrate supervise --stop\n"
          "       substrate supervise --escalation NAME\n"
          "\n"
          "The Tier-1 supervisor tree, in the foreground. `reconcile` starts it detached on\n"
          "its own; run it yourself from an init script or a systemd unit (`substrate\n"
          "reconcile --render systemd`).\n"
          "\n"
          "  (no option)      the root supervisor: keeps one supervisor per reconciled service\n"
          "                   alive (a dead one is restarted within about a second). Exits at\n"
          "                   once when another root supervisor runs for this state dir.\n"
          "  --boot           the same, after a host reboot: every service that was not\n"
          "                   stopped is brought back (its supervisor starts its container)\n"
          "  --service NAME   the supervisor of one service (the root starts these): runs the\n"
          "                   OCI runtime for each version, owns the published ports, probes,\n"
          "                   restarts with exponential backoff, aligns every align_interval;\n"
          "                   killed and restarted, it adopts the running container\n"
          "  --stop           stop the root supervisor (services keep running)\n"
          "  --escalation NAME\n"
          "                   the escalation broker of a service with an escalate: policy (its\n"
          "                   supervisor starts it): serves /run/substrate/escalate.sock in the\n"
          "                   container and runs each admitted request in a Tier-2 microVM under\n"
          "                   the manifest's policy (README.md, \"Escalation\")\n"
          "\n"
          "Killing a supervisor never stops a service: its container keeps running, and\n"
          "`substrate stop NAME` is the way to stop one.\n\n",
          f);
    fputs(env_exit, f);
}

CMD(supervise) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {"boot", no_argument, NULL, 'b'},
                                         {"service", required_argument, NULL, 's'}, {"stop", no_argument, NULL, 'x'},
                                         {"escalation", required_argument, NULL, 'E'}, {NULL, 0, NULL, 0}};
    bool boot = false, stop = false;
    const char *service = NULL, *escalation = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': supervise_usage(stdout); return SUB_EXIT_OK;
        case 'E': escalation = optarg; break;
        case 'b': boot = true; break;
        case 's': service = optarg; break;
        case 'x': stop = true; break;
        default: return cli_bad_option("supervise", argv, opts);
        }
    }
    if (optind != argc) return cli_usage_error("supervise", "unexpected argument \"%s\"", argv[optind]);
    sub_err e = {0};
    if (stop) {
        int r = sub_t1_root_stop(&e);
        if (r < 0) return cli_fail("supervise", &e);
        printf("%s\n", r ? "root supervisor stopped" : "no root supervisor was running");
        return SUB_EXIT_OK;
    }
    int r = escalation ? sub_t1_escalation_run(escalation, &e)
            : service  ? sub_t1_service_run(service, &e)
                       : sub_t1_root_run(boot, NULL, &e);
    if (r < 0) return cli_fail("supervise", &e);
    if (e.msg[0]) fprintf(stderr, "substrate supervise: %s\n", e.msg);
    return SUB_EXIT_OK;
}
