/* substrate build: build an image from an exact commit, push it, print its digest. */
#include "cli.h"
#include "progress.h"
#include "substrate/build.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/json.h"
#include "substrate/registry.h"
#include "substrate/transfer.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void help(void) {
    printf(
        "Usage: substrate build <image> --version V [--rev SHA] [--no-push] [--allow-dirty]\n"
        "                       [--repo DIR] [--keep-work] [--json] [--quiet]\n"
        "\n"
        "Build the image platform/images/<image>/ from an exact git commit, push it to the\n"
        "local registry and print its reference by digest.\n"
        "\n"
        "The commit is exported with `git archive` into a fresh directory under\n"
        "$SUBSTRATE_STATE/tmp; the image spec (image.json) is read from that export, its build\n"
        "command runs there with SOURCE_DATE_EPOCH set to the commit time, TZ=UTC, LC_ALL=C,\n"
        "umask 022 and a minimal environment. The layer is written deterministically (sorted\n"
        "entries, uid/gid 0, every mtime = commit time, no xattrs, fixed gzip header), so the\n"
        "same commit, spec, version and host package versions give the same digest wherever\n"
        "and whenever it is built. Files taken from the host and the build toolchain are\n"
        "recorded with their Debian package versions in the labels dev.substrate.host-inputs\n"
        "and dev.substrate.build-inputs. The image lands in the OCI layout\n"
        "$SUBSTRATE_STATE/images/<image>/ under the ref name V, then is pushed (blobs first,\n"
        "manifest last) as REGISTRY/<image>:V.\n"
        "\n"
        "Options:\n"
        "  --version V     version label and tag; [A-Za-z0-9_][A-Za-z0-9._-]{0,127}\n"
        "                  (a semver '+' is refused: tags cannot carry it)\n"
        "  --rev SHA       commit to build (default HEAD); an unknown commit is refused\n"
        "  --allow-dirty   build the working tree as it is (tracked and untracked, not\n"
        "                  ignored files), labelled <sha>-dirty; without it a dirty tree\n"
        "                  (tracked files changed; untracked ones do not count) is\n"
        "                  refused when building HEAD\n"
        "  --no-push       only write the OCI layout; print `LAYOUT:V DIGEST`\n"
        "  --repo DIR      git work tree to build from (default: the one containing the\n"
        "                  current directory, else the one containing this binary)\n"
        "  --keep-work     keep the export directory (for debugging)\n"
        "  --json, -o json print a JSON record instead of the text line: image, version,\n"
        "                  commit, revision (the label: commit or commit-dirty), digest,\n"
        "                  commit_time, config_digest, layer_digest, layout, host_inputs,\n"
        "                  pushed, and once pushed tag_ref and digest_ref\n"
        "  -q, --quiet     no progress messages on stderr\n"
        "  -h, --help      show this help\n"
        "\n"
        "Output (stdout): `REGISTRY/NAME:V REGISTRY/NAME@sha256:<hex>` (digest reference last).\n"
        "\n"
        "Environment: SUBSTRATE_STATE, SUBSTRATE_REGISTRY, SUBSTRATE_REGISTRY_USER,\n"
        "SUBSTRATE_REGISTRY_PASSWORD.\n"
        "\n"
        "Exit status: 0 built (and pushed); 2 bad input (unknown image or commit, bad version,\n"
        "dirty tree, malformed spec, failing build command); 3 environment (registry\n"
        "unreachable, disk full, missing package).\n"
        "\n"
        "Examples:\n"
        "  substrate registry start\n"
        "  substrate build hello --version 1.0.0\n"
        "  substrate build job --version 1.0.0 --rev 3f2c1a9 --no-push\n");
}

static void note(void *ud, const char *msg) {
    if (*(bool *)ud) return;
    fprintf(stderr, "substrate build: %s\n", msg);
}

int cmd_build(int argc, char **argv) {
    static const struct option opts[] = {
        {"version", required_argument, NULL, 'v'}, {"rev", required_argument, NULL, 'r'},
        {"no-push", no_argument, NULL, 'n'},       {"allow-dirty", no_argument, NULL, 'd'},
        {"repo", required_argument, NULL, 'R'},    {"keep-work", no_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},          {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          CLI_OUTPUT_OPTION,
        {0},
    };
    sub_build_opts o = {0};
    bool no_push = false, json = false, quiet = false;
    const char *repo = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "qho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (cli_output_opt("build", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case 'v': o.version = optarg; break;
        case 'r': o.rev = optarg; break;
        case 'n': no_push = true; break;
        case 'd': o.allow_dirty = true; break;
        case 'R': repo = optarg; break;
        case 'k': o.keep_work = true; break;
        case 'j': json = true; break;
        case 'q': quiet = true; break;
        case 'h': help(); return 0;
        default: return cli_bad_option("build", argv, opts);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("build", "expected exactly one image name");
    if (!o.version) return cli_usage_error("build", "--version V is required");
    o.image = argv[optind];
    o.state_dir = sub_state_dir();
    o.note = note;
    o.ud = &quiet;

    sub_err e = {0};
    _cleanup_free_ char *top = NULL;
    if (repo) {
        if (sub_git_toplevel(repo, &top, &e) < 0) return cli_fail("build", &e);
    } else if (sub_git_default_repo(&top, &e) < 0)
        return cli_fail("build", &e);
    o.repo = top;

    sub_build_result res;
    if (sub_build_image(&o, &res, &e) < 0) return cli_fail("build", &e);
    const char *reg = sub_registry_addr();
    int rc = 0;
    if (!no_push) {
        _cleanup_reg_ sub_reg *r = NULL;
        sub_reg_opts ro = {.host = reg};
        cli_progress pr;
        cli_progress_init(&pr, "substrate build: ", quiet);
        if (sub_reg_new(&ro, &r, &e) < 0 ||
            sub_push_layout(r, res.layout_dir, res.manifest_digest, o.image, o.version,
                            cli_progress_cb, &pr, &e) < 0) {
            cli_progress_end(&pr);
            sub_err_prefix(&e, "pushing %s:%s to %s (the image is built in %s)", o.image,
                           o.version, reg, res.layout_dir);
            rc = cli_fail("build", &e);
            sub_build_result_free(&res);
            return rc;
        }
    }
    if (json) {
        _cleanup_json_ json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:s, s:b}", "image", o.image, "version",
            o.version, "commit", res.sha, "revision", res.revision, "digest", res.manifest_digest,
            "commit_time", (json_int_t)res.commit_time, "config_digest", res.config_digest,
            "layer_digest", res.layer_digest, "layout", sub_json_str(res.layout_dir),
            "host_inputs", res.host_inputs, "pushed", !no_push);
        if (!no_push) {
            json_object_set_new(j, "tag_ref", json_sprintf("%s/%s:%s", reg, o.image, o.version));
            json_object_set_new(j, "digest_ref", json_sprintf("%s/%s@%s", reg, o.image, res.manifest_digest));
        }
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else if (no_push) {
        printf("%s:%s %s\n", res.layout_dir, o.version, res.manifest_digest);
    } else {
        printf("%s/%s:%s %s/%s@%s\n", reg, o.image, o.version, reg, o.image, res.manifest_digest);
    }
    sub_build_result_free(&res);
    return rc;
}
