/* substrate build-sign-push: the release pipeline (lib/release: build every
 * platform image twice from HEAD's exact commit, refuse if the builds differ,
 * then push, sign with the platform key, verify the signature back, attest
 * the provenance). This front end parses flags and prints. */
#include "cli.h"
#include "progress.h"
#include "substrate/config.h"
#include "substrate/git.h"
#include "substrate/json.h"
#include "substrate/release.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define CMD_NAME "build-sign-push"

static void help(void) {
    printf(
        "Usage: substrate build-sign-push <version> [--single-build] [--key FILE.key]\n"
        "                                 [--passphrase-file FILE] [--repo DIR] [--json]\n"
        "                                 [--quiet]\n"
        "       platform/images/build-sign-push <version> [options]\n"
        "\n"
        "Release every image under platform/images/: build, prove the build reproducible,\n"
        "push, sign, and check the signature the way a deployment will.\n"
        "\n"
        "  1. HEAD is resolved to its exact commit; a dirty working tree is refused (commit\n"
        "     first), as `substrate build` does.\n"
        "  2. Every image is built twice from that commit, without pushing, in two different\n"
        "     export directories (see `substrate build --help` for what a build is). If the\n"
        "     two manifest digests differ the command stops before anything is pushed.\n"
        "     --single-build skips the second build.\n"
        "  3. Each image is pushed as REGISTRY/NAME:<version>, signed in cosign's format\n"
        "     (tag sha256-<hex>.sig; see `substrate sign --help`) with the signing key, and\n"
        "     its signature verified back from the registry against the trust store with\n"
        "     the exact identity REGISTRY/NAME.\n"
        "  4. An SLSA provenance v1 statement (in-toto, DSSE-signed with the same key) naming\n"
        "     the source commit, the image spec and its digest, the build command and the\n"
        "     host and toolchain packages is attached as `cosign attest` stores it (tag\n"
        "     sha256-<hex>.att) and verified back (`substrate verify --provenance`).\n"
        "\n"
        "The signing key is the platform key $SUBSTRATE_STATE/keys/cosign.key unless --key\n"
        "names another. On first use the platform key is generated: a random passphrase in\n"
        "cosign.pass beside it (mode 0600, read before $SUBSTRATE_PASSPHRASE), the key in\n"
        "cosign's encrypted format (0600), cosign.pub, and the public key added to the trust\n"
        "store $SUBSTRATE_STATE/trust/. The signing key must be trusted (`substrate key\n"
        "trust FILE.pub`); that is checked, and the passphrase too, before anything is built.\n"
        "Running the command again with the same commit and version gives the same digests\n"
        "and adds no second signature by the same key.\n"
        "\n"
        "Options:\n"
        "  --single-build         build each image once (skip the reproducibility check)\n"
        "  --key FILE.key         sign with this cosign-format key instead of the platform key\n"
        "  --passphrase-file F    its passphrase (otherwise: $SUBSTRATE_PASSPHRASE,\n"
        "                         $COSIGN_PASSWORD, FILE.pass beside the key, a terminal\n"
        "                         prompt)\n"
        "  --repo DIR             git work tree (default: the one containing the current\n"
        "                         directory, else the one containing this binary)\n"
        "  --json, -o json        print a JSON array, one object per image: image, version,\n"
        "                         commit, digest, digest_ref, tag_ref, signature_tag, key_id,\n"
        "                         verified_by, reproducible (true, or null when not checked:\n"
        "                         --single-build) and second_build (its digest, or null)\n"
        "  -q, --quiet            no progress on stderr\n"
        "  -h, --help             show this help\n"
        "\n"
        "Output (stdout), one line per image:\n"
        "  REGISTRY/NAME:VERSION REGISTRY/NAME@sha256:<hex>\n"
        "Progress goes to stderr.\n"
        "\n"
        "Environment: SUBSTRATE_STATE, SUBSTRATE_REGISTRY, SUBSTRATE_PASSPHRASE,\n"
        "COSIGN_PASSWORD, SUBSTRATE_REGISTRY_USER, SUBSTRATE_REGISTRY_PASSWORD.\n"
        "\n"
        "Exit codes: 0 all images released; 1 a check said no (two builds differ, the\n"
        "signature does not verify back); 2 usage or input error (bad version, dirty tree,\n"
        "wrong passphrase, untrusted key, failing build); 3 environment error (registry\n"
        "unreachable, disk full).\n"
        "\n"
        "Examples:\n"
        "  substrate registry start\n"
        "  platform/images/build-sign-push 1.0.0\n"
        "  substrate build-sign-push 1.0.1 --key release.key --passphrase-file release.pass\n"
        "  substrate verify 127.0.0.1:5000/hello@sha256:...      # what a deployment checks\n");
}

typedef struct bsp {
    bool quiet, json;
    json_t *arr;     /* --json: one record per released image */
    const char *version;
    cli_progress pr;       /* the current image's push progress */
    char *pr_image, *pr_prefix;
} bsp;

static void note(void *ud, const char *image, const char *msg) {
    const bsp *b = ud;
    if (b->quiet) return;
    if (image) fprintf(stderr, "substrate %s: %s: %s\n", CMD_NAME, image, msg);
    else fprintf(stderr, "substrate %s: %s\n", CMD_NAME, msg);
}

static void progress(void *ud, const char *image, const sub_xfer_event *ev) {
    bsp *b = ud;
    if (!b->pr_image || strcmp(b->pr_image, image) != 0) {
        cli_progress_end(&b->pr);
        free(b->pr_image);
        free(b->pr_prefix);
        b->pr_image = xstrdup(image);
        b->pr_prefix = xasprintf("substrate %s: %s: ", CMD_NAME, image);
        cli_progress_init(&b->pr, b->pr_prefix, b->quiet);
    }
    cli_progress_cb(&b->pr, ev);
}

/* One image is out: its line now (a later failure does not hide it). */
static void released(void *ud, const sub_release_image *img) {
    bsp *b = ud;
    const char *id = img->identity;
    if (!b->json) {
        printf("%s:%s %s@%s\n", id, b->version, id, img->digest);
        fflush(stdout);
        return;
    }
    bool single = !img->second[0];
    /* reproducible: true when two builds agreed, null when not checked */
    json_t *o = json_object();
    json_object_set_new(o, "image", sub_json_str(img->name));
    json_object_set_new(o, "version", sub_json_str(b->version));
    json_object_set_new(o, "commit", sub_json_str(img->first.sha));
    json_object_set_new(o, "digest", sub_json_str(img->digest));
    json_object_set_new(o, "signature_tag", sub_json_str(img->signed_by.sig_tag));
    json_object_set_new(o, "key_id", sub_json_str(img->signed_by.key_id));
    json_object_set_new(o, "verified_by", sub_json_str(img->verified_by));
    json_object_set_new(o, "reproducible", single ? json_null() : json_true());
    json_object_set_new(o, "tag_ref", json_sprintf("%s:%s", id, b->version));
    json_object_set_new(o, "digest_ref", json_sprintf("%s@%s", id, img->digest));
    json_object_set_new(o, "second_build", single ? json_null() : json_string(img->second));
    json_array_append_new(b->arr, o);
}

int cmd_build_sign_push(int argc, char **argv) {
    enum { OPT_SINGLE = 256, OPT_KEY, OPT_PASSFILE, OPT_REPO, OPT_JSON };
    static const struct option opts[] = {
        {"single-build", no_argument, NULL, OPT_SINGLE},
        {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"repo", required_argument, NULL, OPT_REPO},
        {"json", no_argument, NULL, OPT_JSON},
        CLI_OUTPUT_OPTION,
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool single = false;
    const char *keyarg = NULL, *passfile = NULL, *repo = NULL;
    bsp b = {0};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "qho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (cli_output_opt(CMD_NAME, optarg, &b.json)) return SUB_EXIT_USAGE;
            break;
        case OPT_SINGLE: single = true; break;
        case OPT_KEY: keyarg = optarg; break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_REPO: repo = optarg; break;
        case OPT_JSON: b.json = true; break;
        case 'q': b.quiet = true; break;
        case 'h': help(); return SUB_EXIT_OK;
        default: return cli_bad_option(CMD_NAME, argv, opts);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(CMD_NAME, "expected exactly one <version> (e.g. 1.0.0)");
    b.version = argv[optind];
    sub_err e = {0};
    _cleanup_free_ char *top = NULL;
    if (repo) {
        if (sub_git_toplevel(repo, &top, &e) < 0) return cli_fail(CMD_NAME, &e);
    } else if (sub_git_default_repo(&top, &e) < 0)
        return cli_fail(CMD_NAME, &e);

    sub_release_opts o = {.repo = top, .version = b.version, .state_dir = sub_state_dir(),
                          .registry = sub_registry_addr(), .key_path = keyarg,
                          .passphrase_file = passfile, .single_build = single, .note = note,
                          .progress = progress, .released = released, .ud = &b};
    if (b.json) b.arr = json_array();
    sub_release rel;
    int r = sub_release_run(&o, &rel, &e);
    sub_release_done(&rel);
    cli_progress_end(&b.pr);
    free(b.pr_image);
    free(b.pr_prefix);
    if (b.json && r == 0) {
        _cleanup_free_ char *s = sub_json_dump_pretty(b.arr);
        fputs(s, stdout);
        cli_json_printed();
    }
    if (b.arr) json_decref(b.arr);
    return r < 0 ? cli_fail(CMD_NAME, &e) : SUB_EXIT_OK;
}
