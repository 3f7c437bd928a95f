/* OCI image layout read/write (see layout.h). */
#include "substrate/layout.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include <ctype.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 8

char *sub_layout_blob_path(const char *dir, const char *digest) {
    if (!digest || sub_digest_validate(digest, NULL) < 0) return NULL;
    const char *colon = strchr(digest, ':');
    return xasprintf("%s/blobs/%.*s/%s", dir, (int)(colon - digest), digest, colon + 1);
}

static int lock_dir(const char *dir, sub_err *e);

static int io_err(sub_err *e, int err, const char *what, const char *path) {
    return sub_err_set(e, -err, "cannot %s %s: %s%s", what, path, strerror(err), sub_io_hint(err));
}

/* ---- oci-layout and index.json ---------------------------------------------------------- */

static int check_oci_layout_file(const char *dir, sub_err *e) {
    _cleanup_free_ char *p = sub_path_join(dir, "oci-layout");
    _cleanup_json_ json_t *j = NULL;
    int r = sub_json_load_file(p, 65536, &j, e);
    if (r < 0) {
        sub_err_prefix(e, "%s is not a usable OCI image layout", dir);
        return r;
    }
    const char *v;
    if ((r = sub_json_get_str(j, p, "imageLayoutVersion", true, &v, e)) < 0) return r;
    if (!streq(v, SUB_LAYOUT_VERSION))
        return sub_err_set(e, -EBADMSG,
                           "%s: imageLayoutVersion is \"%s\"; only \"%s\" is supported", p, v,
                           SUB_LAYOUT_VERSION);
    return 0;
}

int sub_layout_sweep(const char *dir) {
    _cleanup_free_ char *blobs = sub_path_join(dir, "blobs/sha256");
    int n = 0, r;
    static const char *const markers[] = {SUB_LAYOUT_TMP_PART, SUB_LAYOUT_TMP_BLOB, SUB_FS_TMP};
    for (size_t i = 0; i < ARRAY_SIZE(markers); i++)
        if ((r = sub_residue_sweep(blobs, markers[i], NULL)) > 0) n += r;
    /* in the layout's own directory only our two files' temporaries: it may
     * hold files of the user's */
    static const char *const own[] = {"index.json" SUB_FS_TMP, "oci-layout" SUB_FS_TMP};
    for (size_t i = 0; i < ARRAY_SIZE(own); i++)
        if ((r = sub_residue_sweep(dir, own[i], NULL)) > 0) n += r;
    return n;
}

int sub_layout_init(const char *dir, sub_err *e) {
    _cleanup_free_ char *blobs = sub_path_join(dir, "blobs/sha256");
    int r = sub_mkdir_p(blobs, 0755, e);
    if (r < 0) return r;
    sub_layout_sweep(dir); /* leftovers of killed pulls and builds (residue.h) */
    _cleanup_free_ char *lay = sub_path_join(dir, "oci-layout");
    if (sub_path_exists(lay)) {
        if ((r = check_oci_layout_file(dir, e)) < 0) return r;
    } else {
        _cleanup_json_ json_t *j = json_pack("{s:s}", "imageLayoutVersion", SUB_LAYOUT_VERSION);
        size_t len;
        _cleanup_free_ char *s = sub_json_dump(j, &len);
        if ((r = sub_write_file_atomic(lay, s, len, 0644, e)) < 0) return r;
    }
    _cleanup_free_ char *idx = sub_path_join(dir, "index.json");
    if (!sub_path_exists(idx)) {
        /* Checked again under the lock sub_layout_tag holds: without it a
         * concurrent writer's freshly tagged index could be replaced by this
         * empty one. */
        _cleanup_close_ int lk = lock_dir(dir, e);
        if (lk < 0) return lk;
        if (sub_path_exists(idx)) return 0;
        _cleanup_json_ json_t *j = json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2, "mediaType",
                                             SUB_MT_OCI_INDEX, "manifests");
        size_t len;
        _cleanup_free_ char *s = sub_json_dump(j, &len);
        if ((r = sub_write_file_atomic(idx, s, len, 0644, e)) < 0) return r;
    }
    return 0;
}

/* Load index.json, checking the parts we rewrite. */
static int load_index(const char *dir, json_t **out, sub_err *e) {
    _cleanup_free_ char *p = sub_path_join(dir, "index.json");
    if (!sub_path_exists(p))
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                            "%s is not an OCI image layout (no index.json); create one with "
                            "`umoci init --layout %s` or pull into it",
                            dir, dir);
    _cleanup_json_ json_t *j = NULL;
    int r = sub_json_load_file(p, SUB_LAYOUT_MAX_INDEX, &j, e);
    if (r < 0) return r;
    int64_t sv;
    if ((r = sub_json_get_int(j, p, "schemaVersion", true, &sv, e)) < 0) return r;
    if (sv != 2) return sub_err_set(e, -EBADMSG, "%s: schemaVersion must be 2", p);
    json_t *m;
    if ((r = sub_json_get_arr(j, p, "manifests", true, &m, e)) < 0) return r;
    size_t i;
    json_t *it;
    json_array_foreach(m, i, it) {
        _cleanup_free_ char *w = xasprintf("%s: manifests[%zu]", p, i);
        sub_desc d;
        if ((r = sub_desc_parse(it, w, &d, e)) < 0) return r;
        sub_desc_free(&d);
    }
    *out = TAKE_PTR(j);
    return 0;
}

static const char *entry_name(const json_t *entry) {
    json_t *a = json_object_get(entry, "annotations");
    json_t *n = a ? json_object_get(a, SUB_ANNOT_REF_NAME) : NULL;
    return n ? json_string_value(n) : NULL;
}

static int lock_dir(const char *dir, sub_err *e) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sub_err_set(e, -errno, "cannot open layout %s: %m", dir);
    while (flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR) continue;
        int r = sub_err_set(e, -errno, "cannot lock layout %s: %m", dir);
        close(fd);
        return r;
    }
    return fd;
}

void sub_layout_parse_arg(const char *arg, char **dir, char **name) {
    /* DIR:sha256:<hex> names the image by digest */
    for (const char *p = strchr(arg, ':'); p; p = strchr(p + 1, ':'))
        if (p != arg && sub_digest_validate(p + 1, NULL) == 0) {
            *dir = xstrndup(arg, (size_t)(p - arg));
            *name = xstrdup(p + 1);
            return;
        }
    const char *c = strrchr(arg, ':');
    if (c && c != arg && !strchr(c, '/')) {
        *dir = xstrndup(arg, (size_t)(c - arg));
        *name = c[1] ? xstrdup(c + 1) : NULL;
    } else {
        *dir = xstrdup(arg);
        *name = NULL;
    }
}

/* ---- ref names -------------------------------------------------------------------------- */

int sub_layout_refname_validate(const char *name, sub_err *e) {
    if (!name || !*name)
        return sub_err_set(e, -EINVAL, "empty image name (ref.name) for the layout");
    size_t n = strlen(name);
    if (n > 255)
        return sub_err_set(e, -EINVAL, "layout name \"%.40s...\" is longer than 255 characters",
                           name);
    bool need_alnum = true; /* at the start of a component or after a separator */
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (isalnum((unsigned char)c)) {
            need_alnum = false;
            continue;
        }
        bool sep = c == '/' || strchr("-._:@+", c) != NULL;
        if (sep && c == '-' && i + 1 < n && name[i + 1] == '-' && !need_alnum) {
            i++; /* "--" */
            need_alnum = true;
            continue;
        }
        if (!sep || need_alnum)
            return sub_err_set(
                e, -EINVAL,
                "layout name \"%s\": '%c' at position %zu is not allowed there (names "
                "are letters and digits, separated by one of - . _ : @ + / or \"--\")",
                name, c, i + 1);
        need_alnum = true;
    }
    if (need_alnum)
        return sub_err_set(e, -EINVAL, "layout name \"%s\" must end with a letter or digit", name);
    return 0;
}

/* ---- blobs ------------------------------------------------------------------------------ */

static int only_sha256(const char *digest, sub_err *e) {
    int r = sub_digest_validate(digest, e);
    if (r < 0) return r;
    if (!str_has_prefix(digest, "sha256:"))
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOTSUP,
                            "digest %s: only sha256 content is supported; use sha256 digests",
                            digest);
    return 0;
}

/* Open a layout blob (O_NOFOLLOW) and check it is a regular file of this size
 * (0 = unknown): 1 with *fd_out set (caller closes), 0 when absent, < 0 when
 * present but wrong (check class) or unreadable. */
static int open_blob_checked(const char *dir, const char *digest, uint64_t size, const char *p,
                             int *fd_out, sub_err *e) {
    _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return sub_err_set(e, -errno, "cannot open blob %s: %m", p);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", p);
    if (!S_ISREG(st.st_mode))
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "blob %s in layout %s is not a regular file", digest, dir);
    if (size && (uint64_t)st.st_size != size)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "blob %s in layout %s has %lld bytes, but its descriptor says %llu",
                            digest, dir, (long long)st.st_size, (unsigned long long)size);
    *fd_out = TAKE_FD(fd);
    return 1;
}

int sub_layout_check_blob(const char *dir, const char *digest, uint64_t size, sub_err *e) {
    int r = only_sha256(digest, e);
    if (r < 0) return r;
    _cleanup_free_ char *p = sub_layout_blob_path(dir, digest);
    _cleanup_close_ int fd = -1;
    if ((r = open_blob_checked(dir, digest, size, p, &fd, e)) <= 0) return r;
    char got[SUB_DIGEST_MAX];
    uint64_t n;
    if ((r = sub_sha256_fd(fd, p, got, &n, e)) < 0) return r;
    if (strcmp(got, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "blob %s in layout %s is corrupt: its content hashes to %s", digest,
                            dir, got);
    return 1;
}

int sub_layout_has_blob(const char *dir, const char *digest, uint64_t size, sub_err *e) {
    int r = only_sha256(digest, e);
    if (r < 0) return r;
    _cleanup_free_ char *p = sub_layout_blob_path(dir, digest);
    _cleanup_close_ int fd = -1;
    return open_blob_checked(dir, digest, size, p, &fd, e);
}

int sub_layout_read_blob(const char *dir, const char *digest, size_t max, char **out, size_t *len,
                         sub_err *e) {
    int r = only_sha256(digest, e);
    if (r < 0) return r;
    _cleanup_free_ char *p = sub_layout_blob_path(dir, digest);
    _cleanup_free_ char *data = NULL;
    size_t n = 0;
    if (!sub_path_exists(p))
        return sub_err_setk(e, SUB_KIND_CHECK, -ENOENT, "blob %s is missing from layout %s", digest,
                            dir);
    if ((r = sub_read_file(p, max, &data, &n, e)) < 0) return r;
    char got[SUB_DIGEST_MAX];
    if ((r = sub_sha256_buf(data, n, got, e)) < 0) return r;
    if (strcmp(got, digest) != 0)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "blob %s in layout %s is corrupt: its content hashes to %s", digest,
                            dir, got);
    *out = TAKE_PTR(data);
    if (len) *len = n;
    return 0;
}

int sub_layout_put_blob_buf(const char *dir, const void *data, size_t len,
                            char digest_out[SUB_DIGEST_MAX], sub_err *e) {
    char d[SUB_DIGEST_MAX];
    int r = sub_sha256_buf(data, len, d, e);
    if (r < 0) return r;
    _cleanup_free_ char *bdir = sub_path_join(dir, "blobs/sha256");
    if ((r = sub_mkdir_p(bdir, 0755, e)) < 0) return r;
    _cleanup_free_ char *p = sub_layout_blob_path(dir, d);
    sub_err ce = {0};
    if (sub_layout_check_blob(dir, d, len, &ce) != 1) {
        if ((r = sub_write_file_atomic(p, data, len, 0644, e)) < 0) return r;
    }
    if (digest_out) memcpy(digest_out, d, strlen(d) + 1);
    return 0;
}

int sub_layout_put_blob_file(const char *dir, const char *src, const char *expect_digest,
                             char digest_out[SUB_DIGEST_MAX], sub_err *e) {
    int r;
    if (expect_digest && (r = only_sha256(expect_digest, e)) < 0) return r;
    _cleanup_free_ char *bdir = sub_path_join(dir, "blobs/sha256");
    if ((r = sub_mkdir_p(bdir, 0755, e)) < 0) return r;
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return sub_err_set(e, -errno, "cannot open %s: %m", src);
    _cleanup_free_ char *base = sub_path_join(bdir, SUB_LAYOUT_TMP_BLOB);
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *p = NULL;
    _cleanup_close_ int fd = sub_residue_mkstemp(base, &tmp, e);
    if (fd < 0) return fd;
    sub_sha256 h = {0};
    if ((r = sub_sha256_init(&h, e)) < 0) goto fail;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            r = sub_err_set(e, -errno, "cannot read %s: %m", src);
            goto fail;
        }
        if (n == 0) break;
        sub_sha256_update(&h, buf, (size_t)n);
        if ((r = sub_write_all(fd, buf, (size_t)n)) < 0) {
            r = io_err(e, -r, "write to", tmp);
            goto fail;
        }
    }
    if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || close(TAKE_FD(fd)) < 0) {
        r = io_err(e, errno, "write to", tmp);
        goto fail;
    }
    char d[SUB_DIGEST_MAX];
    sub_sha256_final(&h, d);
    if (expect_digest && strcmp(d, expect_digest) != 0) {
        r = sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                         "digest mismatch for %s: expected %s, but its content hashes to %s", src,
                         expect_digest, d);
        goto fail;
    }
    p = sub_layout_blob_path(dir, d);
    if (rename(tmp, p) < 0) {
        r = io_err(e, errno, "rename a blob into", p);
        goto fail;
    }
    sub_residue_forget(tmp);
    sub_fsync_dir(bdir);
    if (digest_out) memcpy(digest_out, d, strlen(d) + 1);
    return 0;
fail:
    sub_sha256_free(&h);
    unlink(tmp);
    sub_residue_forget(tmp);
    return r;
}

/* ---- tag / resolve ---------------------------------------------------------------------- */

int sub_layout_tag(const char *dir, const char *ref_name, const char *media_type,
                   const char *digest, uint64_t size, sub_err *e) {
    int r;
    if (ref_name && (r = sub_layout_refname_validate(ref_name, e)) < 0) return r;
    if ((r = only_sha256(digest, e)) < 0) return r;
    if (!media_type || !*media_type)
        return sub_err_set(e, -EINVAL, "a layout entry needs a media type");
    /* The blob must already be there: index.json is always written last. */
    _cleanup_free_ char *bp = sub_layout_blob_path(dir, digest);
    struct stat st;
    if (lstat(bp, &st) < 0 || !S_ISREG(st.st_mode))
        return sub_err_setk(e, SUB_KIND_CHECK, -ENOENT,
                            "cannot name %s in layout %s: the blob is not in the layout", digest,
                            dir);
    if ((uint64_t)st.st_size != size)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "cannot name %s in layout %s: the blob has %lld bytes, not %llu",
                            digest, dir, (long long)st.st_size, (unsigned long long)size);
    if (sub_mt_is_manifest(media_type) && size <= SUB_REG_MAX_MANIFEST) {
        if ((r = sub_layout_check_blob(dir, digest, size, e)) < 0) return r;
    }
    _cleanup_close_ int lk = lock_dir(dir, e);
    if (lk < 0) return lk;
    _cleanup_json_ json_t *idx = NULL;
    if ((r = load_index(dir, &idx, e)) < 0) return r;
    json_t *old = json_object_get(idx, "manifests");
    json_t *neu = json_array();
    size_t i;
    json_t *it;
    bool present = false;
    json_array_foreach(old, i, it) {
        const char *n = entry_name(it);
        if (ref_name && streq(n, ref_name)) continue; /* replaced */
        if (!ref_name && !n && streq(json_string_value(json_object_get(it, "digest")), digest))
            present = true;
        json_array_append(neu, it);
    }
    if (!present) {
        json_t *d = json_pack("{s:s,s:s,s:I}", "mediaType", media_type, "digest", digest, "size",
                              (json_int_t)size);
        if (ref_name)
            json_object_set_new(d, "annotations", json_pack("{s:s}", SUB_ANNOT_REF_NAME, ref_name));
        json_array_append_new(neu, d);
    }
    json_object_set_new(idx, "manifests", neu);
    size_t len;
    _cleanup_free_ char *s = sub_json_dump(idx, &len);
    _cleanup_free_ char *ip = sub_path_join(dir, "index.json");
    return sub_write_file_atomic(ip, s, len, 0644, e);
}

int sub_layout_resolve(const char *dir, const char *ref_name, char digest_out[SUB_DIGEST_MAX],
                       char **media_type, uint64_t *size, sub_err *e) {
    if (!ref_name || !*ref_name)
        return sub_err_set(e, -EINVAL, "which image in layout %s? give a name (DIR:NAME)", dir);
    _cleanup_json_ json_t *idx = NULL;
    int r = load_index(dir, &idx, e);
    if (r < 0) return r;
    json_t *m = json_object_get(idx, "manifests");
    bool by_digest = sub_digest_validate(ref_name, NULL) == 0;
    json_t *hit = NULL;
    size_t nhits = 0, i;
    json_t *it;
    sub_buf names = SUB_BUF_INIT;
    json_array_foreach(m, i, it) {
        const char *n = entry_name(it);
        const char *d = json_string_value(json_object_get(it, "digest"));
        if (n) sub_buf_printf(&names, "%s%s", names.len ? ", " : "", n);
        /* a digest selects by digest only: an entry *named* "sha256:<A>"
         * that holds another image must not answer for A */
        if (by_digest ? streq(d, ref_name) : streq(n, ref_name)) {
            if (!hit || !streq(d, json_string_value(json_object_get(hit, "digest")))) nhits++;
            if (!hit) hit = it;
        }
    }
    if (!hit) {
        r = sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                         "no image named \"%s\" in layout %s (names there: %s)", ref_name, dir,
                         names.len ? sub_buf_str(&names) : "none");
        sub_buf_free(&names);
        return r;
    }
    sub_buf_free(&names);
    if (nhits > 1)
        return sub_err_setk(
            e, SUB_KIND_INPUT, -EINVAL,
            "the name \"%s\" is ambiguous in layout %s: it names %zu different images", ref_name,
            dir, nhits);
    sub_desc d;
    if ((r = sub_desc_parse(hit, "index.json entry", &d, e)) < 0) return r;
    memcpy(digest_out, d.digest, strlen(d.digest) + 1);
    if (media_type) *media_type = xstrdup(d.media_type);
    if (size) *size = d.size;
    sub_desc_free(&d);
    return 0;
}

/* ---- verify ----------------------------------------------------------------------------- */

static bool seen(char ***visited, const char *digest) {
    for (char **p = *visited; p && *p; p++)
        if (streq(*p, digest)) return true;
    strv_push(visited, digest);
    return false;
}

static int verify_desc(const char *dir, const sub_desc *d, const char *parent, int depth,
                       char ***visited, int *count, sub_err *e) {
    if (depth > MAX_DEPTH)
        return sub_err_setk(e, SUB_KIND_CHECK, -ELOOP,
                            "layout %s: manifests nest deeper than %d levels", dir, MAX_DEPTH);
    /* A blob met again is not hashed again, but every descriptor's size is checked. */
    bool again = seen(visited, d->digest);
    int r;
    if (!again) {
        r = sub_layout_check_blob(dir, d->digest, 0, e);
        if (r < 0) return r;
        if (r == 0)
            return sub_err_setk(e, SUB_KIND_CHECK, -ENOENT,
                                "layout %s: blob %s (referenced by %s) is missing", dir, d->digest,
                                parent);
    }
    _cleanup_free_ char *p = sub_layout_blob_path(dir, d->digest);
    struct stat st;
    if (stat(p, &st) < 0) return sub_err_set(e, -errno, "cannot stat %s: %m", p);
    if ((uint64_t)st.st_size != d->size)
        return sub_err_setk(e, SUB_KIND_CHECK, -EILSEQ,
                            "layout %s: blob %s has %lld bytes, but %s says %llu", dir, d->digest,
                            (long long)st.st_size, parent, (unsigned long long)d->size);
    if (again) return 0;
    (*count)++;
    if (!sub_mt_is_manifest(d->media_type)) return 0;
    _cleanup_free_ char *data = NULL;
    size_t len;
    if ((r = sub_layout_read_blob(dir, d->digest, SUB_REG_MAX_MANIFEST, &data, &len, e)) < 0)
        return r;
    _cleanup_manifest_ sub_manifest m = {0};
    if ((r = sub_manifest_parse(data, len, d->media_type, &m, e)) < 0) {
        sub_err_prefix(e, "layout %s: manifest %s", dir, d->digest);
        return r;
    }
    if (m.kind == SUB_MANIFEST_IMAGE) {
        if ((r = verify_desc(dir, &m.config, d->digest, depth + 1, visited, count, e)) < 0)
            return r;
        for (size_t i = 0; i < m.n_layers; i++)
            if ((r = verify_desc(dir, &m.layers[i], d->digest, depth + 1, visited, count, e)) < 0)
                return r;
    } else {
        for (size_t i = 0; i < m.n_manifests; i++)
            if ((r = verify_desc(dir, &m.manifests[i], d->digest, depth + 1, visited, count, e)) <
                0)
                return r;
    }
    return 0;
}

int sub_layout_verify(const char *dir, sub_err *e) {
    int r = check_oci_layout_file(dir, e);
    if (r < 0) return r;
    _cleanup_free_ char *ip = sub_path_join(dir, "index.json");
    _cleanup_free_ char *data = NULL;
    size_t len;
    if ((r = sub_read_file(ip, SUB_LAYOUT_MAX_INDEX, &data, &len, e)) < 0) return r;
    /* index.json is an index; its mediaType is optional. */
    _cleanup_json_ json_t *j = NULL;
    if ((r = sub_json_parse(data, len, SUB_LAYOUT_MAX_INDEX, ip, &j, e)) < 0) return r;
    int64_t sv;
    if ((r = sub_json_get_int(j, ip, "schemaVersion", true, &sv, e)) < 0) return r;
    if (sv != 2) return sub_err_set(e, -EBADMSG, "%s: schemaVersion must be 2", ip);
    json_t *arr;
    if ((r = sub_json_get_arr(j, ip, "manifests", true, &arr, e)) < 0) return r;
    _cleanup_strv_ char **visited = NULL;
    int count = 0;
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        _cleanup_free_ char *w = xasprintf("index.json manifests[%zu]", i);
        sub_desc d;
        if ((r = sub_desc_parse(it, w, &d, e)) < 0) return r;
        r = verify_desc(dir, &d, "index.json", 0, &visited, &count, e);
        sub_desc_free(&d);
        if (r < 0) return r;
    }
    return count;
}

int sub_layout_image_config(const char *dir, const char *digest, sub_image_config *cfg, sub_err *e) {
    _cleanup_free_ char *mb = NULL, *cb = NULL;
    size_t ml = 0, cl = 0;
    int r = sub_layout_read_blob(dir, digest, SUB_REG_MAX_MANIFEST, &mb, &ml, e);
    if (r < 0) return r;
    _cleanup_manifest_ sub_manifest man = {0};
    r = sub_manifest_parse(mb, ml, NULL, &man, e);
    if (r < 0) return r;
    if (man.kind != SUB_MANIFEST_IMAGE)
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG, "%s is not an image manifest (an index?): pin the "
                            "digest of an image manifest, as build-sign-push prints it", digest);
    r = sub_layout_read_blob(dir, man.config.digest, 4u << 20, &cb, &cl, e);
    if (r < 0) return r;
    return sub_image_config_parse(cb, cl, cfg, e);
}
