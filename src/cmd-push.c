/* substrate push --oci DIR:NAME REF */
#include "cli.h"
#include "progress.h"
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
        "Usage: substrate push --oci DIR:NAME REF [--json] [--quiet]\n"
        "\n"
        "Push the image named NAME in the OCI image layout DIR to the registry as REF, and\n"
        "print where it went: `REGISTRY/REPO:TAG REGISTRY/REPO@sha256:...` (the digest\n"
        "reference last; without a tag only the digest reference).\n"
        "\n"
        "The config and layers go first (each skipped when the registry already has it, each\n"
        "hashed while it is sent), the manifest last, so a push that fails part-way never\n"
        "leaves a tag behind. For an index, every child manifest and its blobs are pushed.\n"
        "The digest the registry reports must equal the layout's manifest digest.\n"
        "\n"
        "Progress goes to stderr: on a terminal a line per blob with bytes and rate; otherwise\n"
        "one line per blob when it is done, `pushed` (uploaded) or `exists` (the registry had\n"
        "it, nothing sent), with its size. SUBSTRATE_LOG=debug adds every request.\n"
        "\n"
        "REF is [REGISTRY/]REPO[:TAG][@DIGEST] (or skopeo's docker://REF). Without a registry,\n"
        "$SUBSTRATE_REGISTRY is used; a remote one is reached over https (README: Remote\n"
        "registries; credentials: `substrate login`). With @DIGEST it must be the layout's digest.\n"
        "\n"
        "Options:\n"
        "  --oci DIR:NAME  the source: OCI image layout DIR, image NAME (its\n"
        "                  org.opencontainers.image.ref.name); NAME may also be a digest;\n"
        "                  skopeo's oci:DIR:NAME is the same\n"
        "  --json, -o json print {digest_ref, tag_ref, digest, media_type, size}\n"
        "  -q, --quiet     no progress on stderr\n"
        "  -h, --help      show this help\n"
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
        "  0  pushed\n"
        "  1  a digest did not match: a layout file does not hash to its digest, or the\n"
        "     registry stored something else\n"
        "  2  usage error, bad reference, no such name in the layout\n"
        "  3  the registry is unreachable, refused the push (HTTP 5xx: full disk, ...), the\n"
        "     connection broke or stalled\n"
        "\n"
        "Examples:\n"
        "  substrate push --oci ./layout:v1 hello:v1\n"
        "  substrate push --oci /tmp/img:latest 127.0.0.1:5000/tools/busybox:1.36\n",
        f);
}

int cmd_push(int argc, char **argv) {
    static const struct option opts[] = {
        {"oci", required_argument, NULL, 'O'},
        {"json", no_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        CLI_OUTPUT_OPTION,
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *oci = NULL;
    bool json = false, quiet = false;
    int c;
    optind = 0;
    /* options may follow REF (the synopsis puts --json last): no '+' here */
    while ((c = getopt_long(argc, argv, "qho:", opts, NULL)) != -1) {
        switch (c) {
        case 'O': oci = optarg; break;
        case 'o':
            if (cli_output_opt("push", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case 'j': json = true; break;
        case 'q': quiet = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_bad_option("push", argv, opts);
        }
    }
    if (!oci) return cli_usage_error("push", "missing --oci DIR:NAME (the image to push)");
    if (optind + 1 != argc)
        return cli_usage_error("push", "expected exactly one REF (where to push)");
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    int rc = cli_parse_ref("push", argv[optind], &ref);
    if (rc) return rc;
    _cleanup_free_ char *dir = NULL, *name = NULL;
    if ((rc = cli_parse_layout("push", oci, &dir, &name))) return rc;
    if (!name) return cli_usage_error("push", "--oci %s: name the image as DIR:NAME", oci);
    char digest[SUB_DIGEST_MAX];
    _cleanup_free_ char *mt = NULL;
    uint64_t size = 0;
    if (sub_layout_resolve(dir, name, digest, &mt, &size, &e) < 0) return cli_fail("push", &e);
    if (ref.digest && strcmp(ref.digest, digest) != 0) {
        sub_err_setk(&e, SUB_KIND_INPUT, -EINVAL, "%s names digest %s, but %s:%s is %s",
                     argv[optind], ref.digest, dir, name, digest);
        return cli_fail("push", &e);
    }
    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("push", &e);
    cli_progress pr;
    cli_progress_init(&pr, "", quiet);
    if (sub_push_layout(r, dir, digest, ref.repository, ref.tag, cli_progress_cb, &pr, &e) < 0) {
        cli_progress_end(&pr);
        return cli_fail("push", &e);
    }
    _cleanup_free_ char *nm = sub_ref_name(&ref);
    _cleanup_free_ char *dref = xasprintf("%s@%s", nm, digest);
    _cleanup_free_ char *tref = ref.tag ? xasprintf("%s:%s", nm, ref.tag) : NULL;
    if (json) {
        _cleanup_json_ json_t *j = json_object();
        json_object_set_new(j, "digest_ref", sub_json_str(dref));
        json_object_set_new(j, "tag_ref", sub_json_str(tref));
        json_object_set_new(j, "digest", sub_json_str(digest));
        json_object_set_new(j, "media_type", sub_json_str(mt));
        json_object_set_new(j, "size", json_integer((json_int_t)size));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else if (tref) {
        printf("%s %s\n", tref, dref);
    } else {
        printf("%s\n", dref);
    }
    return 0;
}
