/* substrate render k8s FILE...: Kubernetes objects for manifests and
 * jobspecs (the mapping is lib/k8s; this file parses flags and prints). */
#include "cli.h"
#include "substrate/k8s.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage_render(FILE *f) {
    fputs("Usage: substrate render k8s [options] FILE...\n"
          "\n"
          "Render what Substrate deploys for other platforms. One target today: k8s.\n"
          "See `substrate render k8s --help`.\n",
          f);
}

static void usage(FILE *f) {
    fputs("Usage: substrate render k8s [--namespace N] [--runtime-class NAME] [--gvisor-class NAME]\n"
          "                            [--with-runtime-class] [--key FILE.pub]... [-o yaml|json] FILE...\n"
          "\n"
          "Print Kubernetes objects that run the Tier-1 service manifests and the signed Tier-2\n"
          "jobspecs given with the same guarantees, for `kubectl apply -f -`. A FILE whose name ends\n"
          "in .json is a jobspec; any other is a service manifest.\n"
          "\n"
          "Nothing is rendered unless the check made at deploy time passes now:\n"
          "  - a manifest's image must carry a cosign signature that verifies under the manifest's\n"
          "    identity policy with the keys it names (none: the whole trust store), as reconcile\n"
          "    checks it;\n"
          "  - a jobspec's bytes must verify with its blob signature FILE.sig against the trust\n"
          "    store or --key (never a key the jobspec names), as the sandbox runner checks it; then\n"
          "    its image must verify with the same keys under the jobspec's identity policy.\n"
          "\n"
          "Objects, in this order for each FILE (names are the service's or the job's name):\n"
          "  ClusterImagePolicy substrate-[NS-]NAME (policy.sigstore.dev/v1beta1, mode enforce):\n"
          "      glob REGISTRY/REPO* (policy-controller's globs have no '@'; '*' stops at '/', so it\n"
          "      also covers repositories whose name starts with REPO at the same level: they must\n"
          "      then verify with these keys too); one authority per trusted public key, inline\n"
          "      (the manifest's keys, or the trust store / --key); no transparency log.\n"
          "  NetworkPolicy NAME: policyTypes Ingress and Egress. Service: no egress; ingress only\n"
          "      to the published container ports. Job: no ingress; egress only to each allowed\n"
          "      HOST:PORT as an ipBlock HOST/32 and TCP port.\n"
          "  Service NAME (ClusterIP; only with ports): port HOSTPORT -> targetPort CONTAINERPORT.\n"
          "  Deployment NAME: 1 replica, RollingUpdate with maxUnavailable 0 (the old pod serves\n"
          "      until the new one is ready); progressDeadlineSeconds = the readiness deadline.\n"
          "  Job NAME (no random suffix): runtimeClassName (--runtime-class), activeDeadlineSeconds =\n"
          "      timeout, backoffLimit 0, restartPolicy Never, ttlSecondsAfterFinished 3600;\n"
          "      resources vcpus and memory_mb as requests = limits.\n"
          "With --with-runtime-class the RuntimeClass objects named come first (handler runsc for\n"
          "the gVisor class, else the class's own name).\n"
          "\n"
          "The pod of both: the image exactly as pinned (REGISTRY/REPO@sha256:...), command/args\n"
          "(the same meaning: command replaces the entrypoint, args the cmd), env, workdir;\n"
          "runAsNonRoot unless the user is 0 (with no user the image's decides at run time and\n"
          "runAsNonRoot stays: a root image is refused at start); runAsUser/runAsGroup from \"uid[:gid]\";\n"
          "seccompProfile RuntimeDefault; allowPrivilegeEscalation false; readOnlyRootFilesystem\n"
          "with an emptyDir (memory) on /tmp; capabilities drop ALL, add those listed (without\n"
          "CAP_); automountServiceAccountToken false; enableServiceLinks false. Probes: http ->\n"
          "httpGet (the URL's port and path), tcp -> tcpSocket, exec -> exec; interval, timeout,\n"
          "failure_threshold, start_period -> periodSeconds, timeoutSeconds, failureThreshold,\n"
          "initialDelaySeconds (whole seconds, rounded up). resources: memory -> \"64Mi\", cpu ->\n"
          "\"500m\", as requests = limits. stop_grace -> terminationGracePeriodSeconds. runtime: runsc\n"
          "-> runtimeClassName gvisor (--gvisor-class); runc and crun -> the cluster's default.\n"
          "Labels app.kubernetes.io/{name,instance,component,managed-by=substrate}; annotations\n"
          "substrate.dev/manifest-digest (or jobspec-digest and jobspec-key-id), image-digest and\n"
          "key-id (the key the image's signature verified with).\n"
          "\n"
          "Refused (exit 2, nothing printed on stdout): network: host (hostNetwork breaks the\n"
          "isolation: Kubernetes has no equivalent the renderer will grant); an egress allowlist\n"
          "entry by host name (a NetworkPolicy has no names, only ipBlocks); capabilities:\n"
          "CAP_SYS_ADMIN (the API server refuses it with allowPrivilegeEscalation false).\n"
          "Refused with exit 1: an unsigned or wrongly signed jobspec, an image whose signature\n"
          "does not verify.\n"
          "\n"
          "No Kubernetes equivalent, reported on stderr (one line each, \"render: NAME: FIELD: ...\n"
          "not rendered\") when the input has it: escalate (the escalation socket),\n"
          "deep_align_interval (--deep rootfs alignment), align_interval, on_drift: halt,\n"
          "verify_max_age, resources.pids, restart other than always, backoff, the host address\n"
          "of published ports, the identity policy (checked here, not by policy-controller);\n"
          "jobspecs: tier 0, stdin, inputs, outputs, probes, an absent user. README \"Running on\n"
          "Kubernetes\" has the table and the reasons.\n"
          "\n"
          "The output is deterministic: the same files give the same bytes, to commit and diff.\n"
          "\n"
          "Options:\n"
          "  -n, --namespace N         metadata.namespace of the namespaced objects (default: none,\n"
          "                            kubectl's current namespace)\n"
          "      --runtime-class NAME  the Jobs' RuntimeClass (default kata)\n"
          "      --gvisor-class NAME   the RuntimeClass for runtime: runsc (default gvisor)\n"
          "      --with-runtime-class  also print the RuntimeClass objects\n"
          "      --key FILE.pub        a trusted public key for jobspecs and their images (repeat);\n"
          "                            default: the trust store. Manifests use their own keys.\n"
          "  -o, --output FORMAT       yaml (default: documents separated by ---) or json (a v1 List)\n"
          "      --ca-file FILE        PEM CA certificates for the registry\n"
          "  -h, --help                this text\n"
          "\n"
          "Environment: SUBSTRATE_STATE (the trust store), SUBSTRATE_JOB_TIMEOUT_MAX (the host cap\n"
          "on a jobspec's timeout).\n"
          "\n"
          "Exit codes: 0 rendered; 1 a signature did not verify; 2 usage or a refused input;\n"
          "3 the registry or the trust store could not be read.\n",
          f);
}

static void notice(void *ud, const char *msg) {
    (void)ud;
    cli_line(stderr, "render: %s", msg);
}

static int render_k8s(int argc, char **argv) {
    enum { OPT_RC = 256, OPT_GV, OPT_WITH, OPT_KEY };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"namespace", required_argument, NULL, 'n'},
                                         {"runtime-class", required_argument, NULL, OPT_RC},
                                         {"gvisor-class", required_argument, NULL, OPT_GV},
                                         {"with-runtime-class", no_argument, NULL, OPT_WITH},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         CLI_OUTPUT_OPTION,
                                         {NULL, 0, NULL, 0}};
    _cleanup_strv_ char **keys = NULL;
    sub_k8s_opts o = {.note = notice};
    sub_k8s_format fmt = SUB_K8S_YAML;
    int c;
    cli_json_printed(); /* -o json is the output format: errors stay on stderr */
    optind = 1;
    while ((c = getopt_long(argc, argv, "hn:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case 'n': o.namespace_ = optarg; break;
        case OPT_RC: o.runtime_class = optarg; break;
        case OPT_GV: o.gvisor_class = optarg; break;
        case OPT_WITH: o.with_runtime_class = true; break;
        case OPT_KEY: strv_push(&keys, optarg); break;
        case 'o':
            if (!strcmp(optarg, "yaml")) fmt = SUB_K8S_YAML;
            else if (!strcmp(optarg, "json")) fmt = SUB_K8S_JSON;
            else return cli_usage_error("render k8s", "unknown output format \"%s\" (yaml or json)", optarg);
            break;
        default: return cli_bad_option("render k8s", argv, opts);
        }
    }
    if (optind >= argc) return cli_usage_error("render k8s", "name at least one FILE (a service manifest or a jobspec)");
    _cleanup_strv_ char **files = NULL;
    for (int i = optind; i < argc; i++) strv_push(&files, argv[i]);
    o.key_files = keys;
    sub_err e = {0};
    _cleanup_free_ char *out = NULL;
    if (sub_k8s_render_files(files, &o, fmt, &out, &e) < 0) return cli_fail("render k8s", &e);
    fputs(out, stdout);
    if (fflush(stdout) != 0) {
        sub_err_set(&e, -EIO, "writing the output: %m");
        return cli_fail("render k8s", &e);
    }
    return SUB_EXIT_OK;
}

CMD(render) {
    if (argc >= 2 && !strcmp(argv[1], "k8s")) return render_k8s(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage_render(stdout);
        return SUB_EXIT_OK;
    }
    if (argc < 2) {
        usage_render(stderr);
        return SUB_EXIT_USAGE;
    }
    return cli_usage_error("render", "unknown target \"%s\" (k8s)", argv[1]);
}
