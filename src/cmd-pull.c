/* substrate pull REF --oci DIR[:NAME] [--json] */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/ref.h"
#include "substrate/transfer.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f) {
    fputs(
        "Usage: substrate pull REF --oci DIR[:NAME] [--json]\n"
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
        "Interrupted (Ctrl-C, SIGTERM, SIGHUP), a pull removes the partial download\n"
        "(blobs/sha256/<hex>.part-<pid>-...) before it exits; blobs already verified stay\n"
        "(the next pull reuses them; `umoci gc` drops them if nothing refers to them).\n"
        "The leftovers of a pull that was killed (SIGKILL, a crash) are removed by the\n"
        "next pull into DIR, once their pid is gone.\n"
        "\n"
        "REF is [REGISTRY/]REPO:TAG or [REGISTRY/]REPO@sha256:... (with both, the digest wins).\n"
        "Without a registry, $SUBSTRATE_REGISTRY is used; only loopback registries are accepted.\n"
        "\n"
        "Options:\n"
        "  --oci DIR[:NAME]  the destination layout; NAME becomes the image's\n"
        "                    org.opencontainers.image.ref.name (an existing entry of that name\n"
        "                    is replaced); without NAME the entry is unnamed\n"
        "  --json            print {reference, digest, mediaType, size, layout, name}\n"
        "  -h, --help        show this help\n"
        "\n"
        "Environment:\n"
        "  SUBSTRATE_REGISTRY           default registry host:port (default 127.0.0.1:5000)\n"
        "  SUBSTRATE_REGISTRY_USER      user for HTTP basic auth (when the registry asks)\n"
        "  SUBSTRATE_REGISTRY_PASSWORD  its password\n"
        "\n"
        "Exit codes:\n"
        "  0  pulled and verified\n"
        "  1  verification failed: a digest or size did not match (nothing was kept)\n"
        "  2  usage error, bad reference, no such image, malformed manifest\n"
        "  3  the registry is unreachable or refused, the disk is full, a transfer broke\n"
        "\n"
        "Examples:\n"
        "  substrate pull hello@sha256:4f1c... --oci ./img:hello\n"
        "  substrate pull 127.0.0.1:5000/tools/busybox:1.36 --oci /tmp/bb --json\n",
        f);
}

static void progress(void *ud, const char *what, uint64_t done, uint64_t total) {
    (void)ud;
    if (done == total && total)
        fprintf(stderr, "  %s (%llu bytes)\n", what, (unsigned long long)total);
}

int cmd_pull(int argc, char **argv) {
    static const struct option opts[] = {
        {"oci", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *oci = NULL;
    bool json = false;
    int c;
    optind = 0;
    /* options may follow REF: no '+' here */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': oci = optarg; break;
        case 'j': json = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("pull", "unknown option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("pull", "expected exactly one REF (what to pull)");
    if (!oci) return cli_usage_error("pull", "missing --oci DIR[:NAME] (where to put it)");
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    if (sub_ref_parse(argv[optind], sub_registry_addr(), &ref, &e) < 0) return cli_fail("pull", &e);
    if (!ref.tag && !ref.digest)
        return cli_usage_error("pull", "%s: name a tag (REPO:TAG) or a digest (REPO@sha256:...)",
                               argv[optind]);
    _cleanup_free_ char *dir = NULL, *name = NULL;
    sub_layout_parse_arg(oci, &dir, &name);
    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("pull", &e);
    char digest[SUB_DIGEST_MAX];
    if (sub_pull_to_layout(r, ref.repository, ref.digest ? ref.digest : ref.tag, dir, name, digest,
                           isatty(2) ? progress : NULL, NULL, &e) < 0)
        return cli_fail("pull", &e);
    _cleanup_free_ char *nm = sub_ref_name(&ref);
    _cleanup_free_ char *dref = xasprintf("%s@%s", nm, digest);
    if (json) {
        _cleanup_free_ char *body = NULL;
        size_t len = 0;
        if (sub_layout_read_blob(dir, digest, SUB_REG_MAX_MANIFEST, &body, &len, &e) < 0)
            return cli_fail("pull", &e);
        _cleanup_manifest_ sub_manifest m = {0};
        if (sub_manifest_parse(body, len, NULL, &m, &e) < 0) return cli_fail("pull", &e);
        _cleanup_json_ json_t *j =
            json_pack("{s:s,s:s,s:s,s:I,s:s}", "reference", dref, "digest", digest, "mediaType",
                      m.media_type, "size", (json_int_t)len, "layout", dir);
        json_object_set_new(j, "name", name ? json_string(name) : json_null());
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("%s\n", dref);
    }
    return 0;
}
