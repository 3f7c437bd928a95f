/* Unpacked root filesystems, content-addressed by manifest digest, and their
 * content lists (see rootfs.h). */
#include "substrate/rootfs.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/manifest.h"
#include "substrate/registry.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include "substrate/transfer.h"
#include "substrate/unpack.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONTENT_JSON "content.json"
#define UNPACK_JSON "unpack.json"
#define ROOTFS_DIR "rootfs"
#define CONTENT_MAX (1024u << 20) /* content.json size cap */
#define UNPACK_MAX (64u << 20)    /* unpack.json size cap */
#define WALK_MAX_DEPTH (SUB_UNPACK_MAX_DEPTH + 16)

/* ---- the content list ---------------------------------------------------------------------- */

static const char *const types[] = {"file", "dir", "symlink", "fifo", "socket",
                                    "char", "block", "mountpoint", "unknown"};

typedef struct centry {
    char *path;       /* relative to the rootfs, raw bytes */
    const char *type; /* one of types[] */
    bool has_mode;    /* not for symlinks */
    unsigned mode;    /* permission bits */
    int64_t uid, gid;
    uint64_t size;    /* files */
    char sha256[65];  /* files: hex */
    char *target;     /* symlinks */
} centry;

typedef struct clist {
    centry *v;
    size_t n, cap;
} clist;

static void clist_done(clist *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].target);
    }
    free(l->v);
    *l = (clist){0};
}

static centry *clist_add(clist *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    centry *x = &l->v[l->n++];
    *x = (centry){0};
    return x;
}

static int centry_cmp(const void *a, const void *b) {
    return strcmp(((const centry *)a)->path, ((const centry *)b)->path);
}

static bool utf8_ok(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = sub_utf8_char(s + i, n - i, &cp);
        if (!k) return false;
        i += k;
    }
    return true;
}

/* A name as "key" when it is UTF-8 (JSON can hold it as it is), else as
 * "key_hex": the content list must tell every byte string apart. */
static void set_bytes(json_t *o, const char *key, const char *s) {
    if (utf8_ok(s)) {
        json_object_set_new(o, key, json_string(s));
        return;
    }
    sub_buf b = SUB_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) sub_buf_printf(&b, "%02x", *p);
    _cleanup_free_ char *k = xasprintf("%s_hex", key);
    json_object_set_new(o, k, json_string(sub_buf_str(&b)));
    sub_buf_free(&b);
}

static json_t *centry_json(const centry *x) {
    json_t *o = json_object();
    set_bytes(o, "path", x->path);
    json_object_set_new(o, "type", json_string(x->type));
    if (x->has_mode) {
        char m[16];
        snprintf(m, sizeof m, "%04o", x->mode);
        json_object_set_new(o, "mode", json_string(m));
    }
    json_object_set_new(o, "uid", json_integer(x->uid));
    json_object_set_new(o, "gid", json_integer(x->gid));
    if (streq(x->type, "file")) {
        json_object_set_new(o, "size", json_integer((json_int_t)x->size));
        json_object_set_new(o, "sha256", json_string(x->sha256));
    }
    if (x->target) set_bytes(o, "target", x->target);
    return o;
}

/* The list as the JSON text of content.json: one entry per line. */
static char *clist_dump(const clist *l, size_t *len) {
    sub_buf b = SUB_BUF_INIT;
    sub_buf_puts(&b, "[");
    for (size_t i = 0; i < l->n; i++) {
        _cleanup_json_ json_t *o = centry_json(&l->v[i]);
        _cleanup_free_ char *s = sub_json_dump(o, NULL);
        sub_buf_puts(&b, i ? ",\n" : "\n");
        sub_buf_puts(&b, s);
    }
    sub_buf_puts(&b, "\n]\n");
    return sub_buf_detach(&b, len);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* "key" or "key_hex" of o as a string (caller frees); NULL when neither or malformed. */
static char *get_bytes(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    if (s) return *s ? xstrdup(s) : NULL;
    _cleanup_free_ char *k = xasprintf("%s_hex", key);
    s = json_string_value(json_object_get(o, k));
    size_t n = s ? strlen(s) : 0;
    if (!n || n % 2) return NULL;
    char *out = xmalloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[i] = (char)(hi * 16 + lo);
    }
    out[n / 2] = 0;
    return out;
}

static int centry_parse(const json_t *o, const char *what, size_t i, centry *x, sub_err *e) {
#define BAD(...)                                                                                   \
    sub_err_setk(e, SUB_KIND_CHECK, -EBADMSG, "content list %s: entry %zu: " __VA_ARGS__)
    if (!json_is_object(o)) return BAD("not an object", what, i);
    if (!(x->path = get_bytes(o, "path"))) return BAD("no valid path", what, i);
    const char *t = json_string_value(json_object_get(o, "type"));
    for (size_t k = 0; t && k < ARRAY_SIZE(types); k++)
        if (streq(t, types[k])) x->type = types[k];
    if (!x->type) return BAD("no valid type", what, i);
    const char *m = json_string_value(json_object_get(o, "mode"));
    if (m) {
        char *end;
        unsigned long v = strtoul(m, &end, 8);
        if (!*m || *end || v > 07777) return BAD("mode \"%s\" is not valid", what, i, m);
        x->has_mode = true;
        x->mode = (unsigned)v;
    }
    json_t *u = json_object_get(o, "uid"), *g = json_object_get(o, "gid");
    if (!json_is_integer(u) || !json_is_integer(g)) return BAD("no uid/gid", what, i);
    x->uid = json_integer_value(u);
    x->gid = json_integer_value(g);
    if (streq(x->type, "file")) {
        json_t *sz = json_object_get(o, "size");
        const char *h = json_string_value(json_object_get(o, "sha256"));
        if (!json_is_integer(sz) || json_integer_value(sz) < 0 || !h || strlen(h) != 64)
            return BAD("a file without a valid size and sha256", what, i);
        x->size = (uint64_t)json_integer_value(sz);
        memcpy(x->sha256, h, 65);
    }
    if (streq(x->type, "symlink") && !(x->target = get_bytes(o, "target")))
        return BAD("a symlink without a valid target", what, i);
    return 0;
#undef BAD
}

static int clist_load(const char *path, clist *l, sub_err *e) {
    _cleanup_json_ json_t *j = NULL;
    int r = sub_json_load_file(path, CONTENT_MAX, &j, e);
    if (r < 0) return r;
    if (!json_is_array(j))
        return sub_err_setk(e, SUB_KIND_CHECK, -EBADMSG, "content list %s is not an array", path);
    for (size_t i = 0; i < json_array_size(j); i++)
        if ((r = centry_parse(json_array_get(j, i), path, i, clist_add(l), e)) < 0) return r;
    qsort(l->v, l->n, sizeof *l->v, centry_cmp);
    for (size_t i = 1; i < l->n; i++)
        if (!strcmp(l->v[i - 1].path, l->v[i].path))
            return sub_err_setk(e, SUB_KIND_CHECK, -EBADMSG, "content list %s names %s twice",
                                path, l->v[i].path);
    return 0;
}

/* ---- walking a tree -------------------------------------------------------------------------- */

static const char *type_of(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
    }
}

static int walk_one(int dfd, const char *name, const char *path, dev_t dev, int depth, clist *l,
                    sub_err *e);

/* Every entry below directory dfd (named prefix, "" for the root) into l,
 * without following symlinks or leaving device dev. */
static int walk_dir(int dfd, const char *prefix, dev_t dev, int depth, clist *l, sub_err *e) {
    if (depth > WALK_MAX_DEPTH)
        return sub_err_setk(e, SUB_KIND_CHECK, -ELOOP, "%s: directories nested more than %d deep",
                            prefix, WALK_MAX_DEPTH);
    _cleanup_strv_ char **names = NULL;
    int r = sub_dir_names_at(dfd, &names);
    if (r < 0) return sub_err_set(e, r, "cannot list %s/: %s", *prefix ? prefix : ".", strerror(-r));
    for (char **n = names; n && *n; n++) {
        _cleanup_free_ char *path = *prefix ? xasprintf("%s/%s", prefix, *n) : xstrdup(*n);
        if ((r = walk_one(dfd, *n, path, dev, depth, l, e)) < 0) return r;
    }
    return 0;
}

static int walk_one(int dfd, const char *name, const char *path, dev_t dev, int depth, clist *l,
                    sub_err *e) {
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return 0; /* gone while we looked */
        return sub_err_set(e, -errno, "cannot stat %s: %m", path);
    }
    centry *x = clist_add(l);
    x->path = xstrdup(path);
    x->type = type_of(st.st_mode);
    x->uid = st.st_uid;
    x->gid = st.st_gid;
    x->has_mode = !S_ISLNK(st.st_mode);
    x->mode = st.st_mode & 07777;
    if (S_ISLNK(st.st_mode)) {
        char buf[PATH_MAX];
        ssize_t n = readlinkat(dfd, name, buf, sizeof buf - 1);
        if (n < 0) return sub_err_set(e, -errno, "cannot read the symlink %s: %m", path);
        buf[n] = 0;
        x->target = xstrdup(buf);
        return 0;
    }
    if (S_ISREG(st.st_mode)) {
        _cleanup_close_ int fd =
            openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        struct stat fst;
        if (fd < 0 || fstat(fd, &fst) < 0) return sub_err_set(e, -errno, "cannot open %s: %m", path);
        if (fst.st_ino != st.st_ino || fst.st_dev != st.st_dev || !S_ISREG(fst.st_mode))
            return sub_err_setk(e, SUB_KIND_CHECK, -EAGAIN, "%s changed while it was read", path);
        char dg[SUB_DIGEST_MAX];
        uint64_t size;
        int r = sub_sha256_fd(fd, path, dg, &size, e);
        if (r < 0) return r;
        /* l->v may move while we recurse, but not here: x is still valid */
        memcpy(x->sha256, sub_digest_hex(dg), 65);
        x->size = size;
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return 0;
    if (st.st_dev != dev) {
        x->type = "mountpoint"; /* not ours to read */
        return 0;
    }
    _cleanup_close_ int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cfd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", path);
    return walk_dir(cfd, path, dev, depth + 1, l, e);
}

/* The content list of the tree at rootfd, sorted by path. */
static int walk_tree(int rootfd, clist *l, sub_err *e) {
    struct stat st;
    if (fstat(rootfd, &st) < 0) return sub_err_set(e, -errno, "cannot stat the rootfs: %m");
    int r = walk_dir(rootfd, "", st.st_dev, 0, l, e);
    if (r < 0) return r;
    qsort(l->v, l->n, sizeof *l->v, centry_cmp);
    return 0;
}

/* ---- comparing ----------------------------------------------------------------------------- */

static void diff_add(sub_rootfs_diff *d, sub_rootfs_change c, const char *path, const char *what) {
    d->items = xrealloc(d->items, (d->n + 1) * sizeof *d->items);
    d->items[d->n++] = (sub_rootfs_diff_item){
        .change = c, .path = xstrdup(path), .what = what ? xstrdup(what) : NULL};
}

static void compare_entry(const centry *want, const centry *got, sub_rootfs_diff *d) {
    if (!streq(want->type, got->type)) {
        diff_add(d, SUB_ROOTFS_CHANGED, want->path, "type");
        return;
    }
    if (streq(want->type, "file")) {
        if (want->size != got->size) diff_add(d, SUB_ROOTFS_CHANGED, want->path, "size");
        else if (strcmp(want->sha256, got->sha256))
            diff_add(d, SUB_ROOTFS_CHANGED, want->path, "content");
    }
    if (want->target && !streq(want->target, got->target))
        diff_add(d, SUB_ROOTFS_CHANGED, want->path, "target");
    if (want->has_mode != got->has_mode || (want->has_mode && want->mode != got->mode))
        diff_add(d, SUB_ROOTFS_CHANGED, want->path, "mode");
    if (want->uid != got->uid || want->gid != got->gid)
        diff_add(d, SUB_ROOTFS_CHANGED, want->path, "owner");
}

static void compare(const clist *want, const clist *got, sub_rootfs_diff *d) {
    size_t i = 0, j = 0;
    while (i < want->n || j < got->n) {
        int c = i == want->n ? 1 : j == got->n ? -1 : strcmp(want->v[i].path, got->v[j].path);
        if (c < 0) diff_add(d, SUB_ROOTFS_REMOVED, want->v[i++].path, NULL);
        else if (c > 0) diff_add(d, SUB_ROOTFS_ADDED, got->v[j++].path, NULL);
        else compare_entry(&want->v[i++], &got->v[j++], d);
    }
}

/* sub_rootfs_check, also giving the size of the content list. */
static int check_entry_dir(const char *entry_dir, sub_rootfs_diff *diff, size_t *count,
                           sub_err *e) {
    *diff = (sub_rootfs_diff){0};
    _cleanup_free_ char *cpath = sub_path_join(entry_dir, CONTENT_JSON);
    struct stat st;
    if (lstat(cpath, &st) < 0) {
        if (errno == ENOENT)
            return sub_err_set(e, -ENOENT, "%s has no content list (%s): not a complete rootfs "
                                           "cache entry",
                               entry_dir, CONTENT_JSON);
        return sub_err_set(e, -errno, "cannot stat %s: %m", cpath);
    }
    _cleanup_(clist_done) clist want = {0}, got = {0};
    int r = clist_load(cpath, &want, e);
    if (r < 0) return r;
    _cleanup_free_ char *rpath = sub_path_join(entry_dir, ROOTFS_DIR);
    _cleanup_close_ int rootfd = open(rpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", rpath);
    if ((r = walk_tree(rootfd, &got, e)) < 0) {
        sub_err_prefix(e, "checking %s", rpath);
        return r;
    }
    compare(&want, &got, diff);
    if (count) *count = want.n;
    return 0;
}

int sub_rootfs_check(const char *entry_dir, sub_rootfs_diff *diff, sub_err *e) {
    return check_entry_dir(entry_dir, diff, NULL, e);
}

void sub_rootfs_diff_done(sub_rootfs_diff *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].path);
        free(d->items[i].what);
    }
    free(d->items);
    *d = (sub_rootfs_diff){0};
}

const char *sub_rootfs_change_str(sub_rootfs_change c) {
    switch (c) {
    case SUB_ROOTFS_CHANGED: return "changed";
    case SUB_ROOTFS_ADDED: return "added";
    case SUB_ROOTFS_REMOVED: return "removed";
    }
    return "unknown";
}

/* ---- the cache ------------------------------------------------------------------------------ */

void sub_rootfs_info_done(sub_rootfs_info *i) {
    if (!i) return;
    free(i->entry_dir);
    free(i->rootfs);
    strv_free(i->setuid_cleared);
    *i = (sub_rootfs_info){0};
}

static int lock_cache(int cachefd, const char *cache_dir, sub_err *e) {
    while (flock(cachefd, LOCK_EX) < 0)
        if (errno != EINTR) return sub_err_set(e, -errno, "cannot lock %s: %m", cache_dir);
    return 0;
}

static void unlock_cache(int cachefd) { flock(cachefd, LOCK_UN); }

/* The setuid list of unpack.json (an existing entry). */
static char **read_setuid(const json_t *u) {
    char **v = xcalloc(1, sizeof *v);
    json_t *a = json_object_get(u, "setuid_cleared"), *x;
    size_t i;
    json_array_foreach(a, i, x) if (json_is_string(x)) strv_push(&v, json_string_value(x));
    return v;
}

/* Is the existing entry <cache>/<name> a complete, untouched unpack of
 * digest? 1 (and *out filled), 0 when absent; when it differs (or cannot be
 * read) it is removed: 2. */
static int try_reuse(int cachefd, const char *cache_dir, const char *name, const char *digest,
                     sub_rootfs_info *out, sub_err *e) {
    struct stat st;
    if (fstatat(cachefd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) return 0;
        return sub_err_set(e, -errno, "cannot stat %s/%s: %m", cache_dir, name);
    }
    _cleanup_free_ char *entry = sub_path_join(cache_dir, name);
    bool ok = false;
    size_t count = 0;
    _cleanup_json_ json_t *u = NULL;
    if (S_ISDIR(st.st_mode)) {
        _cleanup_free_ char *up = sub_path_join(entry, UNPACK_JSON);
        const char *md = NULL;
        sub_err ce = {0};
        _cleanup_(sub_rootfs_diff_done) sub_rootfs_diff d = {0};
        ok = sub_json_load_file(up, UNPACK_MAX, &u, &ce) == 0 &&
             sub_json_get_str(u, up, "manifest_digest", true, &md, &ce) == 0 &&
             streq(md, digest) && check_entry_dir(entry, &d, &count, &ce) == 0 && d.n == 0;
    }
    if (!ok) {
        int r = sub_rm_rf_at(cachefd, name, e);
        if (r < 0) {
            sub_err_prefix(e, "removing the altered rootfs cache entry %s", entry);
            return r;
        }
        fsync(cachefd);
        return 2;
    }
    out->entry_dir = TAKE_PTR(entry);
    out->rootfs = sub_path_join(out->entry_dir, ROOTFS_DIR);
    out->setuid_cleared = read_setuid(u);
    out->entries = count;
    return 1;
}

/* The manifest and config of the image, checked before anything is written. */
static int read_image(const char *layout_dir, const char *digest, sub_manifest *m,
                      sub_image_config *cfg, sub_err *e) {
    _cleanup_free_ char *data = NULL;
    size_t len;
    int r = sub_layout_read_blob(layout_dir, digest, SUB_REG_MAX_MANIFEST, &data, &len, e);
    if (r < 0) return r;
    if ((r = sub_manifest_parse(data, len, NULL, m, e)) < 0) {
        sub_err_prefix(e, "manifest %s", digest);
        return r;
    }
    if (m->kind != SUB_MANIFEST_IMAGE)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "%s is an index, not an image manifest: give the digest of the "
                            "manifest for this platform",
                            digest);
    if (!sub_mt_is_config(m->config.media_type))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "manifest %s: its config has media type %s, not an image config",
                            digest, m->config.media_type);
    free(data);
    data = NULL;
    if ((r = sub_layout_read_blob(layout_dir, m->config.digest, SUB_CONFIG_MAX, &data, &len, e)) < 0)
        return r;
    if ((r = sub_image_config_parse(data, len, cfg, e)) < 0) {
        sub_err_prefix(e, "config %s", m->config.digest);
        return r;
    }
    if (cfg->n_diff_ids != m->n_layers)
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "manifest %s has %zu layers but its config lists %zu diff_ids",
                            digest, m->n_layers, cfg->n_diff_ids);
    for (size_t i = 0; i < m->n_layers; i++)
        if ((r = sub_unpack_media_type(m->layers[i].media_type, NULL, e)) < 0) {
            sub_err_prefix(e, "manifest %s, layer %s", digest, m->layers[i].digest);
            return r;
        }
    return 0;
}

static char **sorted_unique(char **v) {
    size_t n = strv_len(v);
    char **out = xcalloc(n + 1, sizeof *out);
    if (!n) return out;
    qsort(v, n, sizeof *v, strcmp_ptr);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || strcmp(out[k - 1], v[i])) out[k++] = xstrdup(v[i]);
    return out;
}

/* Unpack into the fresh temp dir tmpfd: rootfs/, unpack.json, content.json. */
static int unpack_into(int tmpfd, const char *layout_dir, const char *digest, const sub_manifest *m,
                       const sub_image_config *cfg, char ***setuid, size_t *count, sub_err *e) {
    if (mkdirat(tmpfd, ROOTFS_DIR, 0755) < 0)
        return sub_err_set(e, -errno, "cannot create the rootfs directory: %m");
    _cleanup_close_ int rootfd =
        openat(tmpfd, ROOTFS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rootfd < 0 || fchmod(rootfd, 0755) < 0)
        return sub_err_set(e, -errno, "cannot open the rootfs directory: %m");
    _cleanup_(sub_unpack_report_done) sub_unpack_report rep = {0};
    int r;
    for (size_t i = 0; i < m->n_layers; i++) {
        const sub_desc *l = &m->layers[i];
        _cleanup_free_ char *blob = sub_layout_blob_path(layout_dir, l->digest);
        if (!blob) return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "bad layer digest");
        if ((r = sub_unpack_layer(rootfd, blob, l->media_type, l->digest, l->size,
                                  cfg->diff_ids[i], &rep, e)) < 0) {
            sub_err_prefix(e, "unpacking image %s", digest);
            return r;
        }
    }
    /* The runtime mounts /proc, /dev, /sys, /tmp and /run; a mount point it
     * does not find it creates in the rootfs, which would change the cache
     * entry after its content list was taken. So they are made here, and
     * listed. */
    static const struct {
        const char *name;
        mode_t mode;
    } mounts[] = {{"proc", 0555}, {"dev", 0755}, {"sys", 0555}, {"tmp", 01777}, {"run", 0755}};
    for (size_t i = 0; i < ARRAY_SIZE(mounts); i++) {
        if (mkdirat(rootfd, mounts[i].name, 0700) < 0) {
            if (errno == EEXIST) continue;
            return sub_err_set(e, -errno, "cannot create the mount point /%s: %m", mounts[i].name);
        }
        if (fchmodat(rootfd, mounts[i].name, mounts[i].mode, 0) < 0)
            return sub_err_set(e, -errno, "cannot set the mode of /%s: %m", mounts[i].name);
    }
    if (syncfs(rootfd) < 0) return sub_err_set(e, -errno, "cannot sync the rootfs: %m");

    _cleanup_(clist_done) clist l = {0};
    if ((r = walk_tree(rootfd, &l, e)) < 0) return r;
    char **su = sorted_unique(rep.setuid_cleared);
    *setuid = su;
    *count = l.n;

    _cleanup_json_ json_t *u = json_object();
    json_object_set_new(u, "manifest_digest", json_string(digest));
    json_t *layers = json_array(), *sa = json_array();
    for (size_t i = 0; i < m->n_layers; i++)
        json_array_append_new(layers, json_string(m->layers[i].digest));
    for (char **p = su; *p; p++) json_array_append_new(sa, sub_json_str(*p));
    json_object_set_new(u, "layers", layers);
    json_object_set_new(u, "setuid_cleared", sa);
    json_object_set_new(u, "entries", json_integer((json_int_t)l.n));
    _cleanup_free_ char *us = sub_json_dump_pretty(u);
    if ((r = sub_write_file_at(tmpfd, UNPACK_JSON, us, strlen(us), 0644, SUB_RESOLVE_BENEATH, e)) <
        0)
        return r;
    size_t clen;
    _cleanup_free_ char *cs = clist_dump(&l, &clen);
    /* written last: an entry without it is never used */
    if ((r = sub_write_file_at(tmpfd, CONTENT_JSON, cs, clen, 0644, SUB_RESOLVE_BENEATH, e)) < 0)
        return r;
    if (fsync(tmpfd) < 0) return sub_err_set(e, -errno, "cannot sync the cache entry: %m");
    return 0;
}

/* Put the finished temp dir tmpname in place as name (under the cache lock).
 * A concurrent writer may have got there first: its entry is kept when it
 * checks out (1: *out filled from it, ours removed). */
static int install(int cachefd, const char *cache_dir, const char *tmpname, const char *name,
                   const char *digest, sub_rootfs_info *out, sub_err *e) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (renameat2(cachefd, tmpname, cachefd, name, RENAME_NOREPLACE) == 0) {
            fsync(cachefd);
            return 0;
        }
        if (errno != EEXIST && errno != ENOTEMPTY)
            return sub_err_set(e, -errno, "cannot move the new rootfs into place as %s/%s: %m",
                               cache_dir, name);
        int r = try_reuse(cachefd, cache_dir, name, digest, out, e);
        if (r < 0) return r;
        if (r == 1) {
            sub_rm_rf_at(cachefd, tmpname, NULL);
            return 1;
        }
    }
    return sub_err_set(e, -EEXIST, "cannot move the new rootfs into place as %s/%s", cache_dir,
                       name);
}

int sub_rootfs_prepare(const char *layout_dir, const char *manifest_digest, const char *cache_dir,
                       sub_rootfs_info *out, sub_err *e) {
    *out = (sub_rootfs_info){0};
    int r = sub_digest_validate(manifest_digest, e);
    if (r < 0) {
        if (e) e->kind = SUB_KIND_INPUT;
        return r;
    }
    if ((r = sub_mkdir_p(cache_dir, 0755, e)) < 0) return r;
    /* the temp dirs of writers that died (residue.h) */
    sub_residue_sweep(cache_dir, SUB_FS_TMP, NULL);
    const char *name = sub_digest_hex(manifest_digest);
    _cleanup_close_ int cachefd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cachefd < 0) return sub_err_set(e, -errno, "cannot open %s: %m", cache_dir);

    if ((r = lock_cache(cachefd, cache_dir, e)) < 0) return r;
    r = try_reuse(cachefd, cache_dir, name, manifest_digest, out, e);
    unlock_cache(cachefd);
    if (r < 0) return r;
    if (r == 1) {
        out->reused = true;
        return 0;
    }
    bool replaced = r == 2;

    _cleanup_manifest_ sub_manifest m = {0};
    _cleanup_image_config_ sub_image_config cfg = {0};
    if ((r = read_image(layout_dir, manifest_digest, &m, &cfg, e)) < 0) return r;

    _cleanup_free_ char *tmp = NULL;
    if ((r = sub_residue_mkdtemp(cache_dir, SUB_FS_TMP, &tmp, e)) < 0) return r;
    const char *tmpname = strrchr(tmp, '/') + 1;
    _cleanup_strv_ char **setuid = NULL;
    size_t count = 0;
    _cleanup_close_ int tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (tmpfd < 0) r = sub_err_set(e, -errno, "cannot open %s: %m", tmp);
    else r = unpack_into(tmpfd, layout_dir, manifest_digest, &m, &cfg, &setuid, &count, e);
    if (r == 0 && (r = lock_cache(cachefd, cache_dir, e)) == 0) {
        r = install(cachefd, cache_dir, tmpname, name, manifest_digest, out, e);
        unlock_cache(cachefd);
    }
    if (r < 0) {
        sub_rm_rf_at(cachefd, tmpname, NULL);
        sub_residue_forget(tmp);
        return r;
    }
    sub_residue_forget(tmp);
    if (r == 1) {
        out->reused = true; /* a concurrent writer's entry, checked */
        out->replaced = replaced;
        return 0;
    }
    out->entry_dir = sub_path_join(cache_dir, name);
    out->rootfs = sub_path_join(out->entry_dir, ROOTFS_DIR);
    out->setuid_cleared = TAKE_PTR(setuid);
    out->entries = count;
    out->replaced = replaced;
    return 0;
}

int sub_rootfs_fetch(sub_reg *reg, const char *repo, const char *digest, const char *layout_dir,
                     const char *cache_dir, sub_rootfs_info *info, sub_image_config *cfg, sub_err *e) {
    *info = (sub_rootfs_info){0};
    *cfg = (sub_image_config){0};
    int r = sub_layout_init(layout_dir, e);
    if (r < 0) return r;
    char got[SUB_DIGEST_MAX];
    r = sub_pull_to_layout(reg, repo, digest, layout_dir, NULL, got, NULL, NULL, e);
    if (r < 0) {
        sub_err_prefix(e, "pulling %s", digest);
        return r;
    }
    r = sub_rootfs_prepare(layout_dir, digest, cache_dir, info, e);
    if (r < 0) {
        sub_err_prefix(e, "unpacking %s", digest);
        sub_rootfs_info_done(info);
        return r;
    }
    r = sub_layout_image_config(layout_dir, digest, cfg, e);
    if (r < 0) {
        sub_rootfs_info_done(info);
        sub_image_config_free(cfg);
        *cfg = (sub_image_config){0};
    }
    return r;
}
