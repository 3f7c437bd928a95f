/* The release pipeline (see release.h): build twice, compare, push, sign,
 * verify back, attest provenance, verify back. */
#include "substrate/release.h"
#include "substrate/residue.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/ref.h"
#include "substrate/transfer.h"
#include "version.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void say(const sub_release_opts *o, const char *image, const char *fmt, ...) _printf_(3, 4);
static void say(const sub_release_opts *o, const char *image, const char *fmt, ...) {
    if (!o->note) return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    o->note(o->ud, image, msg);
}

/* The builder's and the push's progress, tagged with the image. */
typedef struct tagged {
    const sub_release_opts *o;
    const char *image;
} tagged;

static void build_note(void *ud, const char *msg) {
    const tagged *t = ud;
    if (t->o->note) t->o->note(t->o->ud, t->image, msg);
}

static void push_progress(void *ud, const sub_xfer_event *ev) {
    const tagged *t = ud;
    if (t->o->progress) t->o->progress(t->o->ud, t->image, ev);
}

void sub_release_provenance(sub_provenance *p, const sub_build_result *b, const char *subject,
                            const char *digest, const char *image, const char *version,
                            const char *builder_version) {
    *p = (sub_provenance){.subject = subject, .digest = digest, .source = b->source,
                          .commit = b->sha, .revision = b->revision, .image = image,
                          .version = version, .spec_path = b->spec_path,
                          .spec_digest = b->spec_digest, .build_command = b->build_command,
                          .source_date_epoch = b->commit_time, .host_inputs = b->host_inputs,
                          .build_inputs = b->build_inputs, .builder_version = builder_version};
}

/* The signing key must be in the trust store: a deployment only accepts
 * signatures by trusted keys, so signing with another key releases nothing. */
static int check_trusted(const sub_privkey *k, const char *keyp, sub_pubkey ***trusted,
                         size_t *ntrusted, sub_err *e) {
    _cleanup_free_ char *dir = sub_trust_dir();
    int r = sub_trust_load(dir, trusted, ntrusted, e);
    if (r < 0) {
        if (r == -ENOENT && e) e->kind = SUB_KIND_INPUT;
        sub_err_prefix(e, "the signing key %s must be trusted", sub_privkey_id(k));
        return r;
    }
    for (size_t i = 0; i < *ntrusted; i++)
        if (streq(sub_pubkey_id((*trusted)[i]), sub_privkey_id(k))) return 0;
    _cleanup_free_ char *prefix = sub_key_prefix(keyp);
    return sub_err_setr(e, SUB_R_KEY_NOT_TRUSTED, SUB_KIND_INPUT, -ENOKEY,
                        "the signing key %s (%s) is not in the trust store %s, so deployments "
                        "would refuse what it signs: run `substrate key trust %s.pub` first",
                        sub_privkey_id(k), keyp, dir, prefix);
}

int sub_release_signing_key(const sub_release_opts *o, bool *created, sub_privkey **k,
                            sub_pubkey ***trusted, size_t *ntrusted, sub_err *e) {
    bool platform = o->key_path == NULL;
    _cleanup_free_ char *keyp =
        platform ? sub_platform_key_path(o->state_dir) : xstrdup(o->key_path);
    int r;
    *created = false;
    if (platform) {
        char id[SUB_DIGEST_MAX];
        if ((r = sub_platform_key_ensure(o->state_dir, created, id, e)) < 0) return r;
        if (*created)
            say(o, NULL,
                "generated the platform key %s: %s (passphrase in cosign.pass beside it), "
                "public key trusted",
                id, keyp);
    }
    /* decrypted now: a wrong passphrase stops here, before any build */
    sub_key_open_opts ko = {.path = keyp, .passphrase_file = o->passphrase_file,
                            .beside_first = platform,
                            .nothing_done = "nothing was built, pushed or signed"};
    if ((r = sub_signing_key_open(&ko, k, e)) < 0) return r;
    return check_trusted(*k, keyp, trusted, ntrusted, e);
}

int sub_release_build(const sub_release_opts *o, const char *commit, const char *work_a,
                      const char *work_b, sub_release_image *img, sub_err *e) {
    const char *name = img->name;
    int passes = o->single_build ? 1 : 2;
    tagged t = {.o = o, .image = name};
    for (int pass = 0; pass < passes; pass++) {
        sub_build_opts bo = {.repo = o->repo, .image = name, .version = o->version, .rev = commit,
                             .state_dir = o->state_dir, .work_parent = pass ? work_b : work_a,
                             .note = build_note, .ud = &t};
        say(o, name, "build %d of %d", pass + 1, passes);
        sub_build_result res;
        int r = sub_build_image(&bo, &res, e);
        if (r < 0) {
            sub_err_prefix(e, "building %s", name);
            return r;
        }
        if (pass == 0) {
            memcpy(img->digest, res.manifest_digest, SUB_DIGEST_MAX);
            img->first = res; /* kept for the provenance */
        } else {
            memcpy(img->second, res.manifest_digest, SUB_DIGEST_MAX);
            sub_build_result_free(&res);
        }
    }
    if (!o->single_build && strcmp(img->digest, img->second))
        return sub_err_setr(e, SUB_R_NOT_REPRODUCIBLE, SUB_KIND_CHECK, -EILSEQ,
                            "%s is not reproducible: two builds of commit %.12s gave %s and %s; "
                            "nothing was pushed (compare them with `substrate build %s --version "
                            "%s --no-push --keep-work`)",
                            name, commit, img->digest, img->second, name, o->version);
    say(o, name, "%s%s", img->digest, o->single_build ? " (single build)" : " (two builds agree)");
    return 0;
}

int sub_release_publish(const sub_release_opts *o, sub_reg *r, const sub_privkey *k,
                        const sub_pubkey *const *trusted, size_t ntrusted, sub_release_image *img,
                        sub_err *e) {
    const char *name = img->name, *reg = sub_reg_host(r);
    free(img->identity);
    img->identity = xasprintf("%s/%s", reg, name);
    const char *identity = img->identity;
    tagged t = {.o = o, .image = name};
    int rc = sub_push_layout(r, img->first.layout_dir, img->digest, name, o->version,
                             push_progress, &t, e);
    if (rc < 0) {
        sub_err_prefix(e, "pushing %s:%s to %s", name, o->version, reg);
        return rc;
    }
    sub_cosign_sign_result *sr = &img->signed_by;
    if ((rc = sub_cosign_sign_registry(r, name, identity, img->digest, k, sr, e)) < 0) {
        sub_err_prefix(e, "signing %s@%s", identity, img->digest);
        return rc;
    }
    say(o, name, "%s by key %s: %s:%s (%zu signature%s)",
        sr->already_signed ? "already signed" : "signed", sr->key_id, identity, sr->sig_tag,
        sr->n_layers, sr->n_layers == 1 ? "" : "s");
    _cleanup_verify_result_ sub_cosign_verify_result vr = {0};
    if ((rc = sub_cosign_verify_registry(r, name, img->digest, trusted, ntrusted, identity,
                                         SUB_IDENTITY_EXACT, &vr, e)) < 0) {
        sub_err_prefix(e, "the signature of %s@%s does not verify back from the registry",
                       identity, img->digest);
        return rc;
    }
    snprintf(img->verified_by, sizeof img->verified_by, "%s", vr.records[vr.verified].key_id);
    say(o, name, "verified from the registry: signed by key %s", img->verified_by);

    /* SLSA provenance, stored as `cosign attest` stores it, and checked back */
    _cleanup_free_ char *builder =
        o->builder_version
            ? NULL
            : xasprintf("%s@%s", SUB_SUBSTRATE_BUILDER_ID, SUBSTRATE_VERSION);
    sub_provenance pv;
    sub_release_provenance(&pv, &img->first, identity, img->digest, name, o->version,
                           o->builder_version ? o->builder_version : builder);
    sub_attest_result ar = {0};
    if ((rc = sub_attest_registry(r, name, &pv, k, NULL, e)) < 0 ||
        (rc = sub_attest_verify_registry(r, name, img->digest, trusted, ntrusted, &ar, e)) < 0) {
        sub_attest_result_free(&ar);
        sub_err_prefix(e, "attaching the provenance of %s@%s", identity, img->digest);
        return rc;
    }
    snprintf(img->provenance_by, sizeof img->provenance_by, "%s", ar.key_id);
    snprintf(img->provenance_commit, sizeof img->provenance_commit, "%s", ar.commit);
    say(o, name, "provenance (SLSA v1, commit %.12s) attached and verified by key %s", ar.commit,
        ar.key_id);
    sub_attest_result_free(&ar);
    return 0;
}

/* Step 1: the exact commit, and a clean tree. */
static int resolve_commit(const sub_release_opts *o, char sha[41], sub_err *e) {
    int r = sub_git_resolve(o->repo, "HEAD", sha, e);
    if (r < 0) return r;
    bool dirty = false;
    _cleanup_free_ char *summary = NULL;
    if ((r = sub_git_is_dirty(o->repo, &dirty, &summary, e)) < 0) return r;
    if (dirty)
        return sub_err_setr(e, SUB_R_DIRTY_TREE, SUB_KIND_INPUT, -EINVAL,
                            "the working tree has uncommitted changes; a release is built from an "
                            "exact commit: commit (or stash) them first:\n%s",
                            summary);
    return 0;
}

void sub_release_done(sub_release *res) {
    if (!res) return;
    for (size_t i = 0; i < res->n; i++) {
        free(res->images[i].name);
        free(res->images[i].identity);
        sub_build_result_free(&res->images[i].first);
    }
    free(res->images);
    memset(res, 0, sizeof *res);
}

int sub_release_run(const sub_release_opts *o, sub_release *res, sub_err *e) {
    memset(res, 0, sizeof *res);
    int r;
    if ((r = sub_tag_validate(o->version, e)) < 0) {
        sub_err_prefix(e, "version");
        return r;
    }
    if ((r = resolve_commit(o, res->commit, e)) < 0) return r;
    _cleanup_strv_ char **names = sub_build_list_images(o->repo);
    if (!names || !names[0])
        return sub_err_setr(e, SUB_R_UNKNOWN_IMAGE, SUB_KIND_INPUT, -ENOENT,
                            "no images under %s/platform/images", o->repo);

    /* 2. the signing key: made on first use, opened and checked trusted now */
    _cleanup_privkey_ sub_privkey *k = NULL;
    _cleanup_pubkeys_ sub_pubkey **trusted = NULL;
    size_t ntrusted = 0;
    if ((r = sub_release_signing_key(o, &res->key_created, &k, &trusted, &ntrusted, e)) < 0)
        return r;
    snprintf(res->key_id, sizeof res->key_id, "%s", sub_privkey_id(k));
    say(o, NULL, "commit %.12s, version %s, signing key %s, registry %s", res->commit, o->version,
        res->key_id, o->registry);
    _cleanup_reg_ sub_reg *reg = NULL;
    sub_reg_opts ro = {.host = o->registry};
    if ((r = sub_reg_new(&ro, &reg, e)) < 0 || (r = sub_reg_ping(reg, e)) < 0) return r;

    /* 3. build everything (twice) before pushing anything */
    res->n = strv_len(names);
    res->images = xcalloc(res->n, sizeof *res->images);
    for (size_t i = 0; i < res->n; i++) res->images[i].name = xstrdup(names[i]);
    _cleanup_free_ char *tmp = sub_path_join(o->state_dir, "tmp");
    _cleanup_free_ char *work = NULL;
    /* release-<pid>-XXXXXX: removed on SIGINT/SIGTERM, swept once its pid is gone */
    sub_residue_sweep(tmp, "release-", NULL);
    if ((r = sub_residue_mkdtemp(tmp, "release-", &work, e)) < 0) return r;
    /* two export parents at different depths: paths must not leak into the image */
    _cleanup_free_ char *wa = sub_path_join(work, "first");
    _cleanup_free_ char *wb = sub_path_join(work, "second/at/another/depth");
    for (size_t i = 0; i < res->n && r == 0; i++)
        r = sub_release_build(o, res->commit, wa, wb, &res->images[i], e);

    /* 4. push, sign, verify back, attest */
    const sub_pubkey *const *tk = (const sub_pubkey *const *)trusted;
    for (size_t i = 0; i < res->n && r == 0; i++) {
        r = sub_release_publish(o, reg, k, tk, ntrusted, &res->images[i], e);
        if (r == 0 && o->released) o->released(o->ud, &res->images[i]);
    }
    sub_residue_remove(work);
    return r;
}
