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

/* A digest already handled in this push or pull, with what its first
 * descriptor said (later descriptors of the same digest must agree). */
typedef struct seen {
    char digest[SUB_DIGEST_MAX];
    char *media_type; /* manifests only */
    uint64_t size;
} seen;

typedef struct tctx {
    sub_reg *r;
    const char *repo;
    const char *dir;
    sub_xfer_fn cb;
    void *ud;
    char **created; /* pull: blob paths this pull added (removed on failure) */
    bool layout_ready; /* pull: sub_layout_init done (only once there is something to keep) */
    bool trust_layout; /* pull: present blobs are checked by size only */
    bool fetched;      /* pull: a blob was renamed into blobs/sha256 (its dir needs an fsync) */
    seen *seen;
    size_t n_seen, cap_seen;
    size_t n_desc;  /* descriptors followed, repeats included */
    size_t n_blobs; /* distinct blobs */
    /* the blob whose bytes are moving, for the transport's progress hook */
    const char *cur_role, *cur_digest;
} tctx;

static void emit(tctx *t, sub_xfer_phase ph, const char *role, const char *digest, uint64_t done,
                 uint64_t total, sub_xfer_outcome oc) {
    if (!t->cb) return;
    sub_xfer_event ev = {.phase = ph, .role = role, .digest = digest, .done = done,
                         .total = total, .outcome = oc};
    t->cb(t->ud, &ev);
}

static void on_bytes(void *ud, uint64_t done, uint64_t total) {
    tctx *t = ud;
    if (t->cur_digest)
        emit(t, SUB_XFER_BYTES, t->cur_role, t->cur_digest, done, total, SUB_XFER_PUSHED);
}

static seen *seen_find(tctx *t, const char *digest) {
    for (size_t i = 0; i < t->n_seen; i++)
        if (!strcmp(t->seen[i].digest, digest)) return &t->seen[i];
    return NULL;
}

static void seen_add(tctx *t, const char *digest, const char *media_type, uint64_t size) {
    if (t->n_seen == t->cap_seen) {
        t->cap_seen = t->cap_seen ? 2 * t->cap_seen : 64;
        t->seen = xrealloc(t->seen, t->cap_seen * sizeof *t->seen);
    }
    seen *s = &t->seen[t->n_seen++];
    snprintf(s->digest, sizeof s->digest, "%s", digest);
    s->media_type = media_type ? xstrdup(media_type) : NULL;
    s->size = size;
}

static void tctx_done(tctx *t) {
    for (size_t i = 0; i < t->n_seen; i++) free(t->seen[i].media_type);
    free(t->seen);
    strv_free(t->created);
    sub_reg_set_progress(t->r, NULL, NULL);
}

/* Count n more descriptors of manifest `parent` against the pull's limit. */
static int count_descriptors(tctx *t, size_t n, const char *parent, sub_err *e) {
    if (n > SUB_PULL_MAX_DESCRIPTORS - t->n_desc)
        return sub_err_set(e, -EFBIG,
                           "manifest %s: following its %zu descriptors would take this pull past "
                           "%d descriptors (%zu so far), the limit of one pull; refused, nothing "
                           "was kept",
                           parent, n, SUB_PULL_MAX_DESCRIPTORS, t->n_desc);
    t->n_desc += n;
    return 0;
}

/* A digest met again: its descriptor must say what the first one said. */
static int check_again(const seen *s, const sub_desc *d, const char *parent, sub_err *e) {
    if (s->size != d->size)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "%s has %llu bytes, but a descriptor in %s says %llu", d->digest,
                            (unsigned long long)s->size, parent, (unsigned long long)d->size);
    if (s->media_type && d->media_type && strcmp(s->media_type, d->media_type) != 0)
        return sub_err_set(e, -EBADMSG,
                           "manifest %s is a %s, but the index %s that refers to it says %s",
                           d->digest, s->media_type, parent, d->media_type);
    return 0;
}

/* ---- push ------------------------------------------------------------------------------- */

static int push_blob(tctx *t, const sub_desc *d, const char *role, const char *parent, sub_err *e) {
    const seen *s = seen_find(t, d->digest);
    if (s) return check_again(s, d, parent, e); /* pushed (or found) already in this push */
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
    emit(t, SUB_XFER_START, role, d->digest, 0, d->size, SUB_XFER_PUSHED);
    t->cur_role = role;
    t->cur_digest = d->digest;
    int r = sub_reg_blob_put_file(t->r, t->repo, d->digest, p, e);
    t->cur_digest = NULL;
    if (r < 0) {
        sub_err_prefix(e, "pushing %s %s", role, d->digest);
        return r;
    }
    seen_add(t, d->digest, NULL, d->size);
    emit(t, SUB_XFER_DONE, role, d->digest, d->size, d->size,
         r == 1 ? SUB_XFER_EXISTS : SUB_XFER_PUSHED);
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
            const seen *s = seen_find(t, c->digest);
            if (s) {
                if ((r = check_again(s, c, digest, e)) < 0) return r;
                continue;
            }
            if ((r = push_manifest(t, c->digest, c->media_type, NULL, digest, c->size, depth + 1,
                                   e)) < 0)
                return r;
        }
    }
    emit(t, SUB_XFER_START, "manifest", digest, 0, len, SUB_XFER_PUSHED);
    char got[SUB_DIGEST_MAX];
    if ((r = sub_reg_manifest_put(t->r, t->repo, tag ? tag : digest, m.media_type, body, len, got,
                                  e)) < 0)
        return r;
    if (strcmp(got, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "digest mismatch after pushing manifest: expected %s, the registry "
                            "stored %s",
                            digest, got);
    seen_add(t, digest, m.media_type, len);
    emit(t, SUB_XFER_DONE, "manifest", digest, len, len, SUB_XFER_PUSHED);
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
                    const char *repo, const char *tag, sub_xfer_fn cb, void *ud, sub_err *e) {
    int rr;
    if ((rr = sub_repo_validate(repo, e)) < 0) return rr;
    if (tag && (rr = sub_tag_validate(tag, e)) < 0) return rr;
    if ((rr = sub_digest_validate(manifest_digest, e)) < 0) return rr;
    tctx t = {.r = r, .repo = repo, .dir = layout_dir, .cb = cb, .ud = ud};
    sub_reg_set_progress(r, on_bytes, &t);
    _cleanup_free_ char *hint = index_media_type(layout_dir, manifest_digest);
    rr = push_manifest(&t, manifest_digest, hint, tag, NULL, 0, 0, e);
    tctx_done(&t);
    return rr;
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
    const seen *s = seen_find(t, d->digest);
    if (s) return check_again(s, d, parent, e); /* fetched already in this pull */
    if (++t->n_blobs > SUB_PULL_MAX_BLOBS)
        return sub_err_set(e, -EFBIG,
                           "manifest %s: this pull would take more than %d distinct blobs, the "
                           "limit of one pull; refused, nothing was kept",
                           parent, SUB_PULL_MAX_BLOBS);
    sub_err ce = {0};
    int r = t->trust_layout ? sub_layout_has_blob(t->dir, d->digest, d->size, &ce)
                            : sub_layout_check_blob(t->dir, d->digest, d->size, &ce);
    if (r == 1) {
        seen_add(t, d->digest, NULL, d->size);
        emit(t, SUB_XFER_DONE, role, d->digest, d->size, d->size, SUB_XFER_PRESENT);
        return 0;
    }
    _cleanup_free_ char *p = sub_layout_blob_path(t->dir, d->digest);
    if (!p) return sub_err_set(e, -EINVAL, "invalid digest %s", d->digest);
    bool existed = sub_path_exists(p); /* present but corrupt: replaced below */
    emit(t, SUB_XFER_START, role, d->digest, 0, d->size, SUB_XFER_FETCHED);
    t->cur_role = role;
    t->cur_digest = d->digest;
    /* the directory is synced once for the whole pull, before index.json names it */
    r = sub_reg_blob_fetch(t->r, t->repo, d->digest, d->size, p, SUB_REG_FETCH_NO_DIR_SYNC, e);
    if (r == 0) t->fetched = true;
    t->cur_digest = NULL;
    if (r < 0) {
        sub_err_prefix(e, "pulling %s of %s", role, parent);
        return r;
    }
    if (!existed) strv_push(&t->created, p);
    seen_add(t, d->digest, NULL, d->size);
    emit(t, SUB_XFER_DONE, role, d->digest, d->size, d->size, SUB_XFER_FETCHED);
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
    if ((r = count_descriptors(t, m.kind == SUB_MANIFEST_IMAGE ? 1 + m.n_layers : m.n_manifests,
                               digest, e)) < 0)
        return r;
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
            const seen *s = seen_find(t, c->digest);
            if (s) { /* this child was pulled already: once is enough */
                if ((r = check_again(s, c, digest, e)) < 0) return r;
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
    seen_add(t, digest, m.media_type, len);
    emit(t, SUB_XFER_DONE, "manifest", digest, len, len, SUB_XFER_FETCHED);
    memcpy(digest_out, digest, strlen(digest) + 1);
    if (mt_out) *mt_out = xstrdup(m.media_type);
    if (size_out) *size_out = len;
    return 0;
}

int sub_pull(sub_reg *r, const sub_pull_opts *o, char digest_out[SUB_DIGEST_MAX], sub_err *e) {
    int rr;
    if ((rr = sub_repo_validate(o->repo, e)) < 0) return rr;
    if (o->ref_name && (rr = sub_layout_refname_validate(o->ref_name, e)) < 0) return rr;
    tctx t = {.r = r, .repo = o->repo, .dir = o->layout_dir, .cb = o->cb, .ud = o->ud,
              .trust_layout = o->trust_layout};
    sub_reg_set_progress(r, on_bytes, &t);
    sub_reg_set_deadline(r, o->timeout_s > 0 ? o->timeout_s : SUB_PULL_TIMEOUT_S);
    char digest[SUB_DIGEST_MAX];
    _cleanup_free_ char *mt = NULL;
    uint64_t size = 0;
    rr = pull_manifest(&t, o->ref, NULL, 0, digest, &mt, &size, e);
    sub_reg_set_deadline(r, 0);
    if (rr == 0 && t.fetched) {
        /* every fetched blob was fsynced before its rename; one fsync of the
         * directory makes the renames durable before index.json names them */
        _cleanup_free_ char *bdir = sub_path_join(o->layout_dir, "blobs/sha256");
        rr = sub_fsync_dir(bdir);
        if (rr < 0)
            rr = sub_err_set(e, rr, "cannot sync %s: %s%s", bdir, strerror(-rr), sub_io_hint(-rr));
    }
    if (rr == 0) rr = sub_layout_tag(o->layout_dir, o->ref_name, mt, digest, size, e);
    if (rr < 0) {
        for (char **p = t.created; p && *p; p++) unlink(*p);
    } else if (digest_out) {
        memcpy(digest_out, digest, strlen(digest) + 1);
    }
    tctx_done(&t);
    return rr;
}

int sub_pull_to_layout(sub_reg *r, const char *repo, const char *ref, const char *layout_dir,
                       const char *ref_name, char digest_out[SUB_DIGEST_MAX], sub_xfer_fn cb,
                       void *ud, sub_err *e) {
    sub_pull_opts o = {.repo = repo, .ref = ref, .layout_dir = layout_dir, .ref_name = ref_name,
                       .cb = cb, .ud = ud};
    return sub_pull(r, &o, digest_out, e);
}
