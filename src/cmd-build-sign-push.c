/* substrate build-sign-push: build every platform image twice from HEAD's
 * exact commit, refuse if the builds differ, then push, sign with the
 * platform key, and verify the signature back from the registry. */
#include "cli.h"
#include "substrate/attest.h"
#include "version.h"
#include "substrate/build.h"
#include "substrate/config.h"
#include "substrate/cosign-registry.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include "substrate/registry.h"
#include "substrate/residue.h"
#include "substrate/transfer.h"
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
        "  --passphrase-file F    its passphrase (otherwise: $SUBSTRATE_PASSPHRASE, FILE.pass\n"
        "                         beside the key, a terminal prompt)\n"
        "  --repo DIR             git work tree (default: the one containing the current\n"
        "                         directory, else the one containing this binary)\n"
        "  --json                 print a JSON array, one object per image\n"
        "  -q, --quiet            no progress on stderr\n"
        "  -h, --help             show this help\n"
        "\n"
        "Output (stdout), one line per image:\n"
        "  REGISTRY/NAME:VERSION REGISTRY/NAME@sha256:<hex>\n"
        "Progress goes to stderr.\n"
        "\n"
        "Environment: SUBSTRATE_STATE, SUBSTRATE_REGISTRY, SUBSTRATE_PASSPHRASE,\n"
        "SUBSTRATE_REGISTRY_USER, SUBSTRATE_REGISTRY_PASSWORD.\n"
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
    bool quiet;
    const char *image; /* current image, for progress */
} bsp;

static void note(void *ud, const char *msg) {
    bsp *b = ud;
    if (!b->quiet) fprintf(stderr, "substrate %s: %s: %s\n", CMD_NAME, b->image, msg);
}

static void progress(void *ud, const char *what, uint64_t done, uint64_t total) {
    bsp *b = ud;
    if (!b->quiet && done == total)
        fprintf(stderr, "substrate %s: %s: pushed %s (%llu bytes)\n", CMD_NAME, b->image, what,
                (unsigned long long)total);
}

static void say(const bsp *b, const char *fmt, ...) _printf_(2, 3);
static void say(const bsp *b, const char *fmt, ...) {
    if (b->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "substrate %s: ", CMD_NAME);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Decrypt the signing key (a wrong passphrase stops here, before any build). */
static int load_signing_key(const char *keyp, const char *passfile, bool platform,
                            sub_privkey **out, sub_err *e) {
    _cleanup_free_ char *prefix = sub_key_prefix(keyp);
    _cleanup_free_ char *what = xasprintf("key %s", keyp);
    sub_pass_opts po = {.file = passfile, .key_prefix = prefix, .what = what,
                        .beside_first = platform};
    _cleanup_passphrase_ sub_passphrase pass = {0};
    int r = sub_passphrase_get(&po, &pass, e);
    if (r < 0) return r;
    r = sub_privkey_load_file(keyp, pass.data, pass.len, out, e);
    if (r == -EKEYREJECTED)
        sub_err_detail(e, "passphrase taken from %s; nothing was built, pushed or signed",
                       pass.origin);
    return r;
}

/* The signing key must be in the trust store: a deployment only accepts
 * signatures by trusted keys, so signing with another key releases nothing. */
static int check_trusted(const sub_privkey *k, const char *keyp, sub_pubkey ***trusted,
                         size_t *ntrusted, sub_err *e) {
    _cleanup_free_ char *dir = sub_trust_dir();
    int r = sub_trust_load(dir, trusted, ntrusted, e);
    if (r < 0) {
        if (r == -ENOENT) e->kind = SUB_KIND_INPUT;
        sub_err_prefix(e, "the signing key %s must be trusted", sub_privkey_id(k));
        return r;
    }
    for (size_t i = 0; i < *ntrusted; i++)
        if (streq(sub_pubkey_id((*trusted)[i]), sub_privkey_id(k))) return 0;
    _cleanup_free_ char *prefix = sub_key_prefix(keyp);
    return sub_err_setk(e, SUB_KIND_INPUT, -ENOKEY,
                        "the signing key %s (%s) is not in the trust store %s, so deployments "
                        "would refuse what it signs: run `substrate key trust %s.pub` first",
                        sub_privkey_id(k), keyp, dir, prefix);
}

typedef struct built {
    char *name;
    char *layout_dir;
    char digest[SUB_DIGEST_MAX];
    char second[SUB_DIGEST_MAX]; /* "" with --single-build */
    sub_build_result first;      /* the first build: what the provenance describes */
} built;

int cmd_build_sign_push(int argc, char **argv) {
    enum { OPT_SINGLE = 256, OPT_KEY, OPT_PASSFILE, OPT_REPO, OPT_JSON };
    static const struct option opts[] = {
        {"single-build", no_argument, NULL, OPT_SINGLE},
        {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"repo", required_argument, NULL, OPT_REPO},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool single = false, json = false;
    const char *keyarg = NULL, *passfile = NULL, *repo = NULL;
    bsp b = {0};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SINGLE: single = true; break;
        case OPT_KEY: keyarg = optarg; break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_REPO: repo = optarg; break;
        case OPT_JSON: json = true; break;
        case 'q': b.quiet = true; break;
        case 'h': help(); return SUB_EXIT_OK;
        default: return cli_usage_error(CMD_NAME, "unknown or incomplete option");
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error(CMD_NAME, "expected exactly one <version> (e.g. 1.0.0)");
    const char *version = argv[optind];
    sub_err e = {0};
    if (sub_tag_validate(version, &e) < 0) {
        sub_err_prefix(&e, "version");
        return cli_fail(CMD_NAME, &e);
    }
    const char *state = sub_state_dir();
    const char *reg = sub_registry_addr();

    /* 1. the exact commit, and a clean tree */
    _cleanup_free_ char *top = NULL;
    if (repo) {
        if (sub_git_toplevel(repo, &top, &e) < 0) return cli_fail(CMD_NAME, &e);
    } else if (sub_git_default_repo(&top, &e) < 0)
        return cli_fail(CMD_NAME, &e);
    char sha[41];
    if (sub_git_resolve(top, "HEAD", sha, &e) < 0) return cli_fail(CMD_NAME, &e);
    bool dirty = false;
    _cleanup_free_ char *summary = NULL;
    if (sub_git_is_dirty(top, &dirty, &summary, &e) < 0) return cli_fail(CMD_NAME, &e);
    if (dirty) {
        sub_err_setk(&e, SUB_KIND_INPUT, -EINVAL,
                     "the working tree has uncommitted changes; a release is built from an "
                     "exact commit: commit (or stash) them first:\n%s",
                     summary);
        return cli_fail(CMD_NAME, &e);
    }
    _cleanup_strv_ char **images = sub_build_list_images(top);
    if (!images || !images[0]) {
        sub_err_setk(&e, SUB_KIND_INPUT, -ENOENT, "no images under %s/platform/images", top);
        return cli_fail(CMD_NAME, &e);
    }

    /* 2. the signing key: made on first use, opened and checked trusted now */
    bool platform = keyarg == NULL;
    _cleanup_free_ char *keyp = platform ? sub_platform_key_path(state) : xstrdup(keyarg);
    if (platform) {
        bool created = false;
        char id[SUB_DIGEST_MAX];
        if (sub_platform_key_ensure(state, &created, id, &e) < 0) return cli_fail(CMD_NAME, &e);
        if (created)
            say(&b, "generated the platform key %s: %s (passphrase in cosign.pass beside it), "
                    "public key trusted",
                id, keyp);
    }
    _cleanup_privkey_ sub_privkey *k = NULL;
    if (load_signing_key(keyp, passfile, platform, &k, &e) < 0) return cli_fail(CMD_NAME, &e);
    _cleanup_pubkeys_ sub_pubkey **trusted = NULL;
    size_t ntrusted = 0;
    if (check_trusted(k, keyp, &trusted, &ntrusted, &e) < 0) return cli_fail(CMD_NAME, &e);
    say(&b, "commit %.12s, version %s, signing key %s, registry %s", sha, version,
        sub_privkey_id(k), reg);

    _cleanup_reg_ sub_reg *r = NULL;
    sub_reg_opts ro = {.host = reg};
    if (sub_reg_new(&ro, &r, &e) < 0 || sub_reg_ping(r, &e) < 0) return cli_fail(CMD_NAME, &e);

    /* 3. build everything (twice) before pushing anything */
    size_t n = strv_len(images);
    built *out = xcalloc(n, sizeof *out);
    int rc = SUB_EXIT_OK;
    _cleanup_free_ char *tmp = sub_path_join(state, "tmp");
    _cleanup_free_ char *work = NULL, *wa = NULL, *wb = NULL;
    json_t *arr = NULL;
    /* release-<pid>-XXXXXX: removed on SIGINT/SIGTERM, swept once its pid is gone */
    sub_residue_sweep(tmp, "release-", NULL);
    if (sub_residue_mkdtemp(tmp, "release-", &work, &e) < 0) {
        rc = cli_fail(CMD_NAME, &e);
        goto done;
    }
    /* two export parents at different depths: paths must not leak into the image */
    wa = sub_path_join(work, "first");
    wb = sub_path_join(work, "second/at/another/depth");
    for (size_t i = 0; i < n && rc == 0; i++) {
        b.image = images[i];
        out[i].name = xstrdup(images[i]);
        for (int pass = 0; pass < (single ? 1 : 2); pass++) {
            sub_build_opts o = {.repo = top, .image = images[i], .version = version, .rev = sha,
                                .state_dir = state, .work_parent = pass ? wb : wa,
                                .note = note, .ud = &b};
            say(&b, "%s: build %d of %d", images[i], pass + 1, single ? 1 : 2);
            sub_build_result res;
            if (sub_build_image(&o, &res, &e) < 0) {
                sub_err_prefix(&e, "building %s", images[i]);
                rc = cli_fail(CMD_NAME, &e);
                break;
            }
            if (pass == 0) {
                memcpy(out[i].digest, res.manifest_digest, SUB_DIGEST_MAX);
                out[i].layout_dir = xstrdup(res.layout_dir);
                out[i].first = res; /* kept for the provenance */
            } else {
                memcpy(out[i].second, res.manifest_digest, SUB_DIGEST_MAX);
                sub_build_result_free(&res);
            }
        }
        if (rc == 0 && !single && strcmp(out[i].digest, out[i].second)) {
            sub_err_setk(&e, SUB_KIND_CHECK, -EILSEQ,
                         "%s is not reproducible: two builds of commit %.12s gave %s and %s; "
                         "nothing was pushed (compare them with `substrate build %s --version "
                         "%s --no-push --keep-work`)",
                         images[i], sha, out[i].digest, out[i].second, images[i], version);
            rc = cli_fail(CMD_NAME, &e);
        } else if (rc == 0) {
            say(&b, "%s: %s%s", images[i], out[i].digest,
                single ? " (single build)" : " (two builds agree)");
        }
    }

    /* 4. push, sign, verify back */
    if (json) arr = json_array();
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name = out[i].name;
        b.image = name;
        _cleanup_free_ char *identity = xasprintf("%s/%s", reg, name);
        if (sub_push_layout(r, out[i].layout_dir, out[i].digest, name, version, progress, &b,
                            &e) < 0) {
            sub_err_prefix(&e, "pushing %s:%s to %s", name, version, reg);
            rc = cli_fail(CMD_NAME, &e);
            break;
        }
        sub_cosign_sign_result sr;
        if (sub_cosign_sign_registry(r, name, identity, out[i].digest, k, &sr, &e) < 0) {
            sub_err_prefix(&e, "signing %s@%s", identity, out[i].digest);
            rc = cli_fail(CMD_NAME, &e);
            break;
        }
        say(&b, "%s: %s by key %s: %s:%s (%zu signature%s)", name,
            sr.already_signed ? "already signed" : "signed", sr.key_id, identity, sr.sig_tag,
            sr.n_layers, sr.n_layers == 1 ? "" : "s");
        _cleanup_verify_result_ sub_cosign_verify_result vr = {0};
        if (sub_cosign_verify_registry(r, name, out[i].digest,
                                       (const sub_pubkey *const *)trusted, ntrusted, identity,
                                       SUB_IDENTITY_EXACT, &vr, &e) < 0) {
            sub_err_prefix(&e, "the signature of %s@%s does not verify back from the registry",
                           identity, out[i].digest);
            rc = cli_fail(CMD_NAME, &e);
            break;
        }
        const char *by = vr.records[vr.verified].key_id;
        say(&b, "%s: verified from the registry: signed by key %s", name, by);
        /* SLSA provenance, stored as `cosign attest` stores it, and checked back */
        const sub_build_result *fb = &out[i].first;
        _cleanup_free_ char *builder = xasprintf("%s@%s", SUB_SUBSTRATE_BUILDER_ID, SUBSTRATE_VERSION);
        sub_provenance pv = {.subject = identity, .digest = out[i].digest, .source = fb->source,
                             .commit = fb->sha, .revision = fb->revision, .image = name,
                             .version = version, .spec_path = fb->spec_path,
                             .spec_digest = fb->spec_digest, .build_command = fb->build_command,
                             .source_date_epoch = fb->commit_time, .host_inputs = fb->host_inputs,
                             .build_inputs = fb->build_inputs, .builder_version = builder};
        sub_attest_result ar = {0};
        if (sub_attest_registry(r, name, &pv, k, NULL, &e) < 0 ||
            sub_attest_verify_registry(r, name, out[i].digest, (const sub_pubkey *const *)trusted,
                                       ntrusted, &ar, &e) < 0) {
            sub_attest_result_free(&ar);
            sub_err_prefix(&e, "attaching the provenance of %s@%s", identity, out[i].digest);
            rc = cli_fail(CMD_NAME, &e);
            break;
        }
        say(&b, "%s: provenance (SLSA v1, commit %.12s) attached and verified by key %s", name,
            ar.commit, ar.key_id);
        sub_attest_result_free(&ar);
        if (json) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "image", name,
                                  "version", version, "revision", sha, "digest", out[i].digest,
                                  "signature_tag", sr.sig_tag, "key_id", sr.key_id,
                                  "verified_by", by, "reproducible", !single);
            if (!o) abort();
            json_object_set_new(o, "tag_ref", json_sprintf("%s:%s", identity, version));
            json_object_set_new(o, "digest_ref", json_sprintf("%s@%s", identity, out[i].digest));
            json_object_set_new(o, "second_build",
                                single ? json_null() : json_string(out[i].second));
            json_array_append_new(arr, o);
        } else {
            printf("%s:%s %s@%s\n", identity, version, identity, out[i].digest);
            fflush(stdout);
        }
    }
    if (json && rc == 0) {
        _cleanup_free_ char *s = sub_json_dump_pretty(arr);
        fputs(s, stdout);
    }

done:
    if (arr) json_decref(arr);
    if (work) sub_residue_remove(work);
    for (size_t i = 0; i < n; i++) {
        free(out[i].name);
        free(out[i].layout_dir);
        sub_build_result_free(&out[i].first);
    }
    free(out);
    return rc;
}
