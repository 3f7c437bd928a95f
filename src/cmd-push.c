/* substrate push --oci DIR:NAME REF */
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
        "Usage: substrate push --oci DIR:NAME REF [--json]\n"
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
        "REF is [REGISTRY/]REPO[:TAG][@DIGEST]. Without a registry, $SUBSTRATE_REGISTRY is used;\n"
        "a remote one is reached over https (README: Remote registries; credentials: `substrate\n"
        "login`). With @DIGEST it must be the layout's digest.\n"
        "\n"
        "Options:\n"
        "  --oci DIR:NAME  the source: OCI image layout DIR, image NAME (its\n"
        "                  org.opencontainers.image.ref.name); NAME may also be a digest\n"
        "  --json          print {reference, digestReference, digest, mediaType, size}\n"
        "  -h, --help      show this help\n"
        "\n"
        "Environment:\n"
        "  SUBSTRATE_REGISTRY           default registry host:port (default 127.0.0.1:5000)\n"
        "  SUBSTRATE_REGISTRY_USER      user, when the registry asks (else `substrate login`)\n"
        "  SUBSTRATE_REGISTRY_PASSWORD  its password\n"
        "  SUBSTRATE_CA_FILE            CA certificates (PEM) trusted besides the system's\n"
        "\n"
        "Exit codes:\n"
        "  0  pushed\n"
        "  1  a digest did not match (corrupt layout, or the registry stored something else)\n"
        "  2  usage error, bad reference, no such name in the layout\n"
        "  3  the registry is unreachable, refused the push, or the connection broke\n"
        "\n"
        "Examples:\n"
        "  substrate push --oci ./layout:v1 hello:v1\n"
        "  substrate push --oci /tmp/img:latest 127.0.0.1:5000/tools/busybox:1.36\n",
        f);
}

static void progress(void *ud, const char *what, uint64_t done, uint64_t total) {
    (void)ud;
    if (done == total && total)
        fprintf(stderr, "  pushed %s (%llu bytes)\n", what, (unsigned long long)total);
}

int cmd_push(int argc, char **argv) {
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
    /* options may follow REF (the synopsis puts --json last): no '+' here */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': oci = optarg; break;
        case 'j': json = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("push", "unknown option");
        }
    }
    if (!oci) return cli_usage_error("push", "missing --oci DIR:NAME (the image to push)");
    if (optind + 1 != argc)
        return cli_usage_error("push", "expected exactly one REF (where to push)");
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    if (sub_ref_parse(argv[optind], sub_registry_addr(), &ref, &e) < 0) return cli_fail("push", &e);
    _cleanup_free_ char *dir = NULL, *name = NULL;
    sub_layout_parse_arg(oci, &dir, &name);
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
    if (sub_push_layout(r, dir, digest, ref.repository, ref.tag, isatty(2) ? progress : NULL, NULL,
                        &e) < 0)
        return cli_fail("push", &e);
    _cleanup_free_ char *nm = sub_ref_name(&ref);
    _cleanup_free_ char *dref = xasprintf("%s@%s", nm, digest);
    _cleanup_free_ char *tref = ref.tag ? xasprintf("%s:%s", nm, ref.tag) : NULL;
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s,s:s,s:s,s:I}", "digestReference", dref, "digest",
                                             digest, "mediaType", mt, "size", (json_int_t)size);
        json_object_set_new(j, "reference", tref ? json_string(tref) : json_null());
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else if (tref) {
        printf("%s %s\n", tref, dref);
    } else {
        printf("%s\n", dref);
    }
    return 0;
}
