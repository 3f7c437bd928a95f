/* substrate pull REF --oci DIR[:NAME] [--json] */
#include "cli.h"
#include "progress.h"
#include "substrate/config.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/ref.h"
#include "substrate/transfer.h"
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f) {
    fputs(
        "Usage: substrate pull REF --oci DIR[:NAME] [--json] [--quiet] [--timeout DUR]\n"
        "                          [--trust-layout]\n"
        "\n"
        "Fetch the image REF from the registry into the OCI image layout DIR (created when\n"
        "missing) and print its digest reference, REGISTRY/REPO@sha256:....\n"
        "\n"
        "Every byte is verified while it streams: the manifest against the digest asked for\n"
        "(or, for a tag, the digest the registry announces), each blob against its digest and\n"
        "size. Nothing unverified is kept: a blob is renamed into DIR only once it matched,\n"
        "and the index.json entry is written last. If the pull fails, the blobs it added are\n"
        "removed again. An image index (multi-platform) is pulled with all its manifests.\n"
        "\n"
        "Blobs already in DIR are not fetched again, and by default they are read and hashed\n"
        "again first (an integrity choice: a layout on disk may have been altered since it\n"
        "was written; a corrupt blob is fetched anew). --trust-layout skips that re-hash and\n"
        "only checks their size: much faster for large layouts you alone write to.\n"
        "\n"
        "Limits, so that a hostile registry cannot keep a pull going for ever: every manifest\n"
        "and blob is fetched once however often an index names it; a pull follows at most\n"
        "4096 descriptors and 1024 distinct blobs (past that it is refused, nothing is kept);\n"
        "it stops when it has run for --timeout (default 1h), and a transfer slower than\n"
        "1 KiB/s for 30 s (SUBSTRATE_STALL_SECONDS) is stopped as stalled.\n"
        "\n"
        "Progress goes to stderr: on a terminal a line per blob with bytes and rate; otherwise\n"
        "one line per blob when it is done, `fetched` or `present` (already in DIR), with its\n"
        "size. SUBSTRATE_LOG=debug adds every request.\n"
        "\n"
        "Interrupted (Ctrl-C, SIGTERM, SIGHUP), a pull removes the partial download\n"
        "(blobs/sha256/<hex>.part-<pid>-...) before it exits; blobs already verified stay\n"
        "(the next pull reuses them; `umoci gc` drops them if nothing refers to them).\n"
        "The leftovers of a pull that was killed (SIGKILL, a crash) are removed by the\n"
        "next pull into DIR, once their pid is gone.\n"
        "\n"
        "REF is [REGISTRY/]REPO:TAG or [REGISTRY/]REPO@sha256:... (with both, the digest wins),\n"
        "optionally written as skopeo does, docker://REF. Without a registry,\n"
        "$SUBSTRATE_REGISTRY is used; a remote registry is reached over https (README: Remote\n"
        "registries; credentials: `substrate login`).\n"
        "\n"
        "Options:\n"
        "  --oci DIR[:NAME]  the destination layout; NAME becomes the image's\n"
        "                    org.opencontainers.image.ref.name (an existing entry of that name\n"
        "                    is replaced); without NAME the entry is unnamed; skopeo's\n"
        "                    oci:DIR[:NAME] is the same\n"
        "  --json, -o json   print {digest_ref, digest, media_type, size, layout,\n"
        "                    layout_name}\n"
        "  -q, --quiet       no progress on stderr\n"
        "  --timeout DUR     stop the pull after DUR: seconds, or 90s, 10m, 2h (default 1h)\n"
        "  --trust-layout    take blobs already in DIR by their size, without re-hashing them\n"
        "  -h, --help        show this help\n"
        "\n"
        "Environment:\n"
        "  SUBSTRATE_REGISTRY           default registry host:port (default 127.0.0.1:5000)\n"
        "  SUBSTRATE_REGISTRY_USER      user, when the registry asks (else `substrate login`)\n"
        "  SUBSTRATE_REGISTRY_PASSWORD  its password\n"
        "  SUBSTRATE_STALL_SECONDS      stop a transfer slower than 1 KiB/s for this long (30)\n"
        "  SUBSTRATE_LOG                error|warn|info|debug (debug: every request)\n"
        "  SUBSTRATE_CA_FILE            CA certificates (PEM) trusted besides the system's\n"
        "\n"
        "Exit codes:\n"
        "  0  pulled and verified\n"
        "  1  verification failed: a digest or size did not match (nothing was kept)\n"
        "  2  usage error, bad reference, no such image, malformed manifest\n"
        "  3  the registry is unreachable or refused, the disk is full, a transfer broke or\n"
        "     stalled, the pull ran past --timeout or past its limits\n"
        "\n"
        "Examples:\n"
        "  substrate pull hello@sha256:4f1c... --oci ./img:hello\n"
        "  substrate pull 127.0.0.1:5000/tools/busybox:1.36 --oci /tmp/bb --json\n",
        f);
}

/* "90", "90s", "10m", "2h" -> seconds; -1 when invalid. */
static long parse_duration(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v <= 0) return -1;
    long mul = 1;
    if (!strcmp(end, "h")) mul = 3600;
    else if (!strcmp(end, "m")) mul = 60;
    else if (*end && strcmp(end, "s") != 0) return -1;
    if (v > LONG_MAX / mul || v * mul > 7L * 24 * 3600) return -1;
    return v * mul;
}

int cmd_pull(int argc, char **argv) {
    static const struct option opts[] = {
        {"oci", required_argument, NULL, 'O'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"timeout", required_argument, NULL, 't'},
        {"trust-layout", no_argument, NULL, 'T'},
        CLI_OUTPUT_OPTION,
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *oci = NULL;
    bool json = false, quiet = false, trust = false;
    long timeout = 0;
    int c;
    optind = 0;
    /* options may follow REF: no '+' here */
    while ((c = getopt_long(argc, argv, "qho:", opts, NULL)) != -1) {
        switch (c) {
        case 'O': oci = optarg; break;
        case 'o':
            if (cli_output_opt("pull", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case 'j': json = true; break;
        case 'q': quiet = true; break;
        case 'T': trust = true; break;
        case 't':
            if ((timeout = parse_duration(optarg)) < 0)
                return cli_usage_error("pull",
                                       "--timeout %s: give a duration such as 600, 90s, 10m or 2h "
                                       "(at most 7 days)",
                                       optarg);
            break;
        case 'h': help(stdout); return 0;
        default: return cli_bad_option("pull", argv, opts);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("pull", "expected exactly one REF (what to pull)");
    if (!oci) return cli_usage_error("pull", "missing --oci DIR[:NAME] (where to put it)");
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    int rc = cli_parse_ref("pull", argv[optind], &ref);
    if (rc) return rc;
    if (!ref.tag && !ref.digest)
        return cli_usage_error("pull", "%s: name a tag (REPO:TAG) or a digest (REPO@sha256:...)",
                               argv[optind]);
    _cleanup_free_ char *dir = NULL, *name = NULL;
    if ((rc = cli_parse_layout("pull", oci, &dir, &name))) return rc;
    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("pull", &e);
    char digest[SUB_DIGEST_MAX];
    cli_progress pr;
    cli_progress_init(&pr, "", quiet);
    sub_pull_opts po = {.repo = ref.repository,
                        .ref = ref.digest ? ref.digest : ref.tag,
                        .layout_dir = dir,
                        .ref_name = name,
                        .timeout_s = timeout,
                        .trust_layout = trust,
                        .cb = cli_progress_cb,
                        .ud = &pr};
    if (sub_pull(r, &po, digest, &e) < 0) {
        cli_progress_end(&pr);
        return cli_fail("pull", &e);
    }
    _cleanup_free_ char *nm = sub_ref_name(&ref);
    _cleanup_free_ char *dref = xasprintf("%s@%s", nm, digest);
    if (json) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        if (sub_layout_read_blob(dir, digest, SUB_REG_MAX_MANIFEST, &body, &len, &e) < 0)
            return cli_fail("pull", &e);
        _cleanup_manifest_ sub_manifest m = {0};
        if (sub_manifest_parse(body, len, NULL, &m, &e) < 0) return cli_fail("pull", &e);
        _cleanup_json_ json_t *j = json_object();
        json_object_set_new(j, "digest_ref", sub_json_str(dref));
        json_object_set_new(j, "digest", sub_json_str(digest));
        json_object_set_new(j, "media_type", sub_json_str(m.media_type));
        json_object_set_new(j, "size", json_integer((json_int_t)len));
        json_object_set_new(j, "layout", sub_json_str(dir));
        json_object_set_new(j, "layout_name", sub_json_str(name));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("%s\n", dref);
    }
    return 0;
}
