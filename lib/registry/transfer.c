/* Push from / pull into an OCI image layout (see transfer.h). */
#include "substrate/transfer.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/manifest.h"
#include "substrate/ref.h"
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 4

typedef struct tctx {
    sub_reg *r;
    const char *repo;
    const char *dir;
    sub_progress_fn cb;
    void *ud;
    char **created; /* pull: blob paths this pull added (removed on failure) */
    bool layout_ready; /* pull: sub_layout_init done (only once there is something to keep) */
} tctx;

static void progress(tctx *t, uint64_t done, uint64_t total, const char *fmt, ...) _printf_(4, 5);
static void progress(tctx *t, uint64_t done, uint64_t total, const char *fmt, ...) {
    if (!t->cb) return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *w = xvasprintf(fmt, ap);
    va_end(ap);
    t->cb(t->ud, w, done, total);
}

/* ---- push ------------------------------------------------------------------------------- */

static int push_blob(tctx *t, const sub_desc *d, const char *role, const char *parent, sub_err *e) {
    _cleanup_free_ char *p = sub_layout_blob_path(t->dir, d->digest);
    struct stat st;
    if (!p || stat(p, &st) < 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                            "layout %s is incomplete: %s %s of manifest %s is missing", t->dir,
                            role, d->digest, parent);
    if ((uint64_t)st.st_size != d->size)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "layout %s: %s %s has %lld bytes, but manifest %s says %llu", t->dir,
                            role, d->digest, (long long)st.st_size, parent,
                            (unsigned long long)d->size);
    progress(t, 0, d->size, "%s %s", role, d->digest);
    int r = sub_reg_blob_put_file(t->r, t->repo, d->digest, p, e);
    if (r < 0) {
        sub_err_prefix(e, "pushing %s %s", role, d->digest);
        return r;
    }
    progress(t, d->size, d->size, "%s %s", role, d->digest);
    return 0;
}

/* parent (NULL for the manifest asked for) is the index whose descriptor
 * says this manifest has parent_size bytes. */
static int push_manifest(tctx *t, const char *digest, const char *mt_hint, const char *tag,
                         const char *parent, uint64_t parent_size, int depth, sub_err *e) {
    if (depth > MAX_DEPTH)
        return sub_err_set(e, -ELOOP, "manifest %s: indexes nest deeper than %d levels", digest,
                           MAX_DEPTH);
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    int r = sub_layout_read_blob(t->dir, digest, SUB_REG_MAX_MANIFEST, &body, &len, e);
    if (r < 0) return r;
    if (parent && len != parent_size)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "layout %s: manifest %s has %zu bytes, but index %s says %llu; "
                            "refused, nothing of that index was tagged",
                            t->dir, digest, len, parent, (unsigned long long)parent_size);
    _cleanup_manifest_ sub_manifest m = {0};
    if ((r = sub_manifest_parse(body, len, mt_hint, &m, e)) < 0) {
        sub_err_prefix(e, "layout %s: manifest %s", t->dir, digest);
        return r;
    }
    if (m.kind == SUB_MANIFEST_IMAGE) {
        if ((r = push_blob(t, &m.config, "config", digest, e)) < 0) return r;
        for (size_t i = 0; i < m.n_layers; i++)
            if ((r = push_blob(t, &m.layers[i], "layer", digest, e)) < 0) return r;
    } else {
        for (size_t i = 0; i < m.n_manifests; i++) {
            const sub_desc *c = &m.manifests[i];
            if (!sub_mt_is_manifest(c->media_type)) {
                /* an artifact blob referenced from an index */
                if ((r = push_blob(t, c, "blob", digest, e)) < 0) return r;
                continue;
            }
            if ((r = push_manifest(t, c->digest, c->media_type, NULL, digest, c->size, depth + 1,
                                   e)) < 0)
                return r;
        }
    }
    progress(t, 0, len, "manifest %s", digest);
    char got[SUB_DIGEST_MAX];
    if ((r = sub_reg_manifest_put(t->r, t->repo, tag ? tag : digest, m.media_type, body, len, got,
                                  e)) < 0)
        return r;
    if (strcmp(got, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "digest mismatch after pushing manifest: expected %s, the registry "
                            "stored %s",
                            digest, got);
    progress(t, len, len, "manifest %s", digest);
    return 0;
}

/* The media type index.json records for digest, if any (caller frees). */
static char *index_media_type(const char *dir, const char *digest) {
    _cleanup_free_ char *p = sub_path_join(dir, "index.json");
    _cleanup_json_ json_t *j = NULL;
    if (sub_json_load_file(p, SUB_LAYOUT_MAX_INDEX, &j, NULL) < 0) return NULL;
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, "manifests"), i, it) {
        if (streq(json_string_value(json_object_get(it, "digest")), digest)) {
            const char *mt = json_string_value(json_object_get(it, "mediaType"));
            return mt ? xstrdup(mt) : NULL;
        }
    }
    return NULL;
}

int sub_push_layout(sub_reg *r, const char *layout_dir, const char *manifest_digest,
                    const char *repo, const char *tag, sub_progress_fn cb, void *ud, sub_err *e) {
    int rr;
    if ((rr = sub_repo_validate(repo, e)) < 0) return rr;
    if (tag && (rr = sub_tag_validate(tag, e)) < 0) return rr;
    if ((rr = sub_digest_validate(manifest_digest, e)) < 0) return rr;
    tctx t = {.r = r, .repo = repo, .dir = layout_dir, .cb = cb, .ud = ud};
    _cleanup_free_ char *hint = index_media_type(layout_dir, manifest_digest);
    return push_manifest(&t, manifest_digest, hint, tag, NULL, 0, 0, e);
}

/* ---- pull ------------------------------------------------------------------------------- */

#define SHA256_EMPTY "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int fetch_blob(tctx *t, const sub_desc *d, const char *role, const char *parent,
                      sub_err *e) {
    /* Size 0 means "unknown" to the blob calls below (no size check at all),
     * but in a descriptor it is a claim: only the empty blob has it. */
    if (d->size == 0 && strcmp(d->digest, SHA256_EMPTY) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "%s %s of manifest %s: its descriptor says 0 bytes, which no content "
                            "with that digest has (only %s is empty); the manifest is wrong, "
                            "refused before fetching anything",
                            role, d->digest, parent, SHA256_EMPTY);
    sub_err ce = {0};
    int r = sub_layout_check_blob(t->dir, d->digest, d->size, &ce);
    if (r == 1) {
        progress(t, d->size, d->size, "%s %s (already present)", role, d->digest);
        return 0;
    }
    _cleanup_free_ char *p = sub_layout_blob_path(t->dir, d->digest);
    if (!p) return sub_err_set(e, -EINVAL, "invalid digest %s", d->digest);
    bool existed = sub_path_exists(p); /* present but corrupt: replaced below */
    progress(t, 0, d->size, "%s %s", role, d->digest);
    r = sub_reg_blob_get_file(t->r, t->repo, d->digest, d->size, p, e);
    if (r < 0) {
        sub_err_prefix(e, "pulling %s of %s", role, parent);
        return r;
    }
    if (!existed) strv_push(&t->created, p);
    progress(t, d->size, d->size, "%s %s", role, d->digest);
    return 0;
}

static int check_config(tctx *t, const sub_desc *d, sub_err *e) {
    if (!sub_mt_is_config(d->media_type)) return 0; /* artifacts carry other configs */
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = sub_layout_read_blob(t->dir, d->digest, SUB_CONFIG_MAX, &data, &len, e);
    if (r < 0) return r;
    _cleanup_image_config_ sub_image_config c = {0};
    if ((r = sub_image_config_parse(data, len, &c, e)) < 0) {
        sub_err_prefix(e, "config %s", d->digest);
        return r;
    }
    return 0;
}

static int pull_manifest(tctx *t, const char *ref, const char *expect_mt, int depth,
                         char digest_out[SUB_DIGEST_MAX], char **mt_out, uint64_t *size_out,
                         sub_err *e) {
    if (depth > MAX_DEPTH)
        return sub_err_set(e, -ELOOP, "manifest %s: indexes nest deeper than %d levels", ref,
                           MAX_DEPTH);
    _cleanup_free_ char *body = NULL, *ct = NULL;
    size_t len = 0;
    char digest[SUB_DIGEST_MAX];
    progress(t, 0, 0, "manifest %s", ref);
    int r = sub_reg_manifest_get(t->r, t->repo, ref, &body, &len, &ct, digest, e);
    if (r < 0) return r;
    _cleanup_manifest_ sub_manifest m = {0};
    if ((r = sub_manifest_parse(body, len, ct, &m, e)) < 0) {
        sub_err_prefix(e, "manifest %s/%s@%s", sub_reg_host(t->r), t->repo, digest);
        return r;
    }
    if (expect_mt && !sub_mt_is_manifest(expect_mt))
        return sub_err_set(e, -EBADMSG,
                           "manifest %s: its descriptor's mediaType \"%s\" is not a manifest type",
                           digest, expect_mt);
    if (expect_mt && strcmp(expect_mt, m.media_type) != 0)
        return sub_err_set(e, -EBADMSG,
                           "manifest %s is a %s, but the index that refers to it says %s", digest,
                           m.media_type, expect_mt);
    /* The layout is created only now: a pull refused before anything could
     * be kept (bad reference, unknown tag, unreachable registry) leaves no
     * trace at the destination. */
    if (!t->layout_ready) {
        if ((r = sub_layout_init(t->dir, e)) < 0) return r;
        t->layout_ready = true;
    }
    if (m.kind == SUB_MANIFEST_IMAGE) {
        if ((r = fetch_blob(t, &m.config, "config", digest, e)) < 0) return r;
        if ((r = check_config(t, &m.config, e)) < 0) return r;
        for (size_t i = 0; i < m.n_layers; i++)
            if ((r = fetch_blob(t, &m.layers[i], "layer", digest, e)) < 0) return r;
    } else {
        for (size_t i = 0; i < m.n_manifests; i++) {
            const sub_desc *c = &m.manifests[i];
            if (!sub_mt_is_manifest(c->media_type)) {
                if ((r = fetch_blob(t, c, "blob", digest, e)) < 0) return r;
                continue;
            }
            char cd[SUB_DIGEST_MAX];
            uint64_t csize = 0;
            if ((r = pull_manifest(t, c->digest, c->media_type, depth + 1, cd, NULL, &csize, e)) <
                0)
                return r;
            if (csize != c->size)
                return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                                    "manifest %s has %llu bytes, but index %s says %llu", c->digest,
                                    (unsigned long long)csize, digest, (unsigned long long)c->size);
        }
    }
    _cleanup_free_ char *p = sub_layout_blob_path(t->dir, digest);
    bool existed = sub_path_exists(p);
    char stored[SUB_DIGEST_MAX];
    if ((r = sub_layout_put_blob_buf(t->dir, body, len, stored, e)) < 0) return r;
    if (!existed) strv_push(&t->created, p);
    progress(t, len, len, "manifest %s", digest);
    memcpy(digest_out, digest, strlen(digest) + 1);
    if (mt_out) *mt_out = xstrdup(m.media_type);
    if (size_out) *size_out = len;
    return 0;
}

int sub_pull_to_layout(sub_reg *r, const char *repo, const char *ref, const char *layout_dir,
                       const char *ref_name, char digest_out[SUB_DIGEST_MAX], sub_progress_fn cb,
                       void *ud, sub_err *e) {
    int rr;
    if ((rr = sub_repo_validate(repo, e)) < 0) return rr;
    if (ref_name && (rr = sub_layout_refname_validate(ref_name, e)) < 0) return rr;
    tctx t = {.r = r, .repo = repo, .dir = layout_dir, .cb = cb, .ud = ud};
    char digest[SUB_DIGEST_MAX];
    _cleanup_free_ char *mt = NULL;
    uint64_t size = 0;
    rr = pull_manifest(&t, ref, NULL, 0, digest, &mt, &size, e);
    if (rr == 0) rr = sub_layout_tag(layout_dir, ref_name, mt, digest, size, e);
    if (rr < 0) {
        for (char **p = t.created; p && *p; p++) unlink(*p);
    } else if (digest_out) {
        memcpy(digest_out, digest, strlen(digest) + 1);
    }
    strv_free(t.created);
    return rr;
}
