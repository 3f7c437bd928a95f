#include "substrate/build.h"
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/imagespec.h"
#include "substrate/json.h"
#include "substrate/layer.h"
#include "substrate/layout.h"
#include "substrate/manifest.h"
#include "substrate/proc.h"
#include "substrate/ref.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define SUB_BUILD_OUT_MAX (1u << 20)

void sub_build_result_free(sub_build_result *r) {
    if (!r) return;
    free(r->layout_dir);
    free(r->host_inputs);
    free(r->build_inputs);
    free(r->source);
    free(r->spec_path);
    strv_free(r->build_command);
    r->layout_dir = r->host_inputs = r->build_inputs = r->source = r->spec_path = NULL;
    r->build_command = NULL;
}

static void note(const sub_build_opts *o, const char *fmt, ...) _printf_(2, 3);
static void note(const sub_build_opts *o, const char *fmt, ...) {
    if (!o->note) return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *m = xvasprintf(fmt, ap);
    va_end(ap);
    o->note(o->ud, m);
}

static char **list_images_in(const char *root) {
    _cleanup_free_ char *dir = sub_path_join(root, "platform/images");
    char **v = xcalloc(1, sizeof(char *));
    DIR *d = opendir(dir);
    if (!d) return v;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        _cleanup_free_ char *spec = xasprintf("%s/%s/image.json", dir, de->d_name);
        if (access(spec, R_OK) == 0) strv_push(&v, de->d_name);
    }
    closedir(d);
    qsort(v, strv_len(v), sizeof(char *), strcmp_ptr);
    return v;
}

char **sub_build_list_images(const char *repo) { return list_images_in(repo); }

static const char *oci_arch(void) {
    struct utsname u;
    if (uname(&u) < 0) return "amd64";
    if (!strcmp(u.machine, "x86_64")) return "amd64";
    if (!strcmp(u.machine, "aarch64")) return "arm64";
    if (!strcmp(u.machine, "i686") || !strcmp(u.machine, "i386")) return "386";
    return "amd64";
}

static void rfc3339(int64_t t, char out[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Debian package versions of pkgs[0..n) with one dpkg-query call (each call
 * reads the whole status database): versions[i] is set for every package, or
 * the first one that is not installed is named in the error. */
static int deb_versions(char **pkgs, size_t n, char **versions, sub_err *e) {
    if (n == 0) return 0;
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stderr_fd = SUB_FD_NULL;
    o.stdin_fd = SUB_FD_NULL;
    _cleanup_strv_ char **argv = xcalloc(1, sizeof(char *));
    strv_push(&argv, "dpkg-query");
    strv_push(&argv, "-W");
    strv_push(&argv, "-f=${Package} ${db:Status-Status} ${Version}\n");
    strv_push(&argv, "--");
    for (size_t i = 0; i < n; i++) strv_push(&argv, pkgs[i]);
    int st;
    _cleanup_free_ char *out = NULL;
    int r = sub_run_capture(argv, &o, 1 << 20, &out, &st, e);
    if (r < 0) return r;
    /* lines "pkg installed version"; exit 1 when some package is unknown */
    for (char *line = out; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *sp = strchr(line, ' ');
        if (sp && str_has_prefix(sp + 1, "installed ")) {
            *sp = 0;
            for (size_t i = 0; i < n; i++)
                if (!versions[i] && !strcmp(pkgs[i], line))
                    versions[i] = xstrdup(sp + 1 + strlen("installed "));
        }
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!versions[i])
            return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                                "Debian package %s is not installed (run scripts/install-deps)",
                                pkgs[i]);
    return 0;
}

/* Proof that the installed package pkg owns path: path is in the package's
 * file list (`dpkg-query -L` reads that one list; `-S` would scan them all). */
static int deb_owns(const char *pkg, const char *path, sub_err *e) {
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stderr_fd = SUB_FD_NULL;
    o.stdin_fd = SUB_FD_NULL;
    char *argv[] = {"dpkg-query", "-L", "--", (char *)pkg, NULL};
    int st;
    _cleanup_free_ char *list = NULL;
    int r = sub_run_capture(argv, &o, 16 << 20, &list, &st, e);
    if (r < 0) return r;
    bool owned = false;
    for (char *line = list; st == 0 && line && *line && !owned;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (!strcmp(line, path)) owned = true;
        line = nl ? nl + 1 : NULL;
    }
    if (!owned)
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                            "host file %s does not belong to Debian package %s (dpkg-query -L "
                            "%s does not list it); fix \"package\" in the image spec",
                            path, pkg, pkg);
    return 0;
}

/* realpath(p) must lie inside root (no symlink escapes from the export). */
static int resolve_inside(const char *root, const char *rel, const char *what, char **out,
                          sub_err *e) {
    _cleanup_free_ char *p = sub_path_join(root, rel);
    char rp[PATH_MAX], rroot[PATH_MAX];
    if (!realpath(root, rroot)) return sub_err_set(e, -errno, "%s: %m", root);
    if (!realpath(p, rp)) {
        int err = errno;
        return sub_err_setk(e, SUB_KIND_INPUT, -err, "%s: %s does not exist after the build (%s)",
                            what, rel, strerror(err));
    }
    size_t n = strlen(rroot);
    if (strncmp(rp, rroot, n) != 0 || (rp[n] != '/' && rp[n] != 0))
        return sub_err_setk(e, SUB_KIND_INPUT, -EPERM,
                            "%s: %s resolves to %s, outside the build tree; refusing it", what, rel,
                            rp);
    *out = xstrdup(rp);
    return 0;
}

/* A source URI as a label and provenance may carry it: scheme://rest, printable
 * ASCII, no credentials. */
static int check_source_uri(const char *where, const char *v, sub_err *e) {
    const char *p = v;
    while (*p && (isalnum((unsigned char)*p) || strchr("+.-", *p))) p++;
    if (p == v || !isalpha((unsigned char)*v) || strncmp(p, "://", 3) != 0 || !p[3])
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "%s: \"%s\" is not a URI of the form scheme://host/path", where, v);
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "%s: the source URI contains a space or a control or non-ASCII "
                                "character",
                                where);
    const char *host = p + 3;
    size_t hl = strcspn(host, "/?#");
    if (memchr(host, '@', hl))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "%s: the source URI carries user information (credentials?); name "
                            "the repository without it",
                            where);
    return 0;
}

/* The image's source URI (*out, or NULL when none is configured): the spec's
 * "source", else "source" in the commit's platform/source.json; never made up,
 * never taken from outside the commit (the digest depends on it). */
static int resolve_source(const char *src, const sub_imagespec *spec, char **out, sub_err *e) {
    int r;
    *out = NULL;
    for (size_t i = 0; spec->label_keys && spec->label_keys[i]; i++)
        if (!strcmp(spec->label_keys[i], "org.opencontainers.image.source"))
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "image %s: config.labels sets org.opencontainers.image.source; the "
                                "builder sets it from \"source\" (in the image spec, or in "
                                "%s for every image): move it there",
                                spec->name, SUB_BUILD_SOURCE_FILE);
    if (spec->source) {
        _cleanup_free_ char *where = xasprintf("image %s: \"source\"", spec->name);
        if ((r = check_source_uri(where, spec->source, e)) < 0) return r;
        *out = xstrdup(spec->source);
        return 0;
    }
    _cleanup_free_ char *p = sub_path_join(src, SUB_BUILD_SOURCE_FILE);
    struct stat st;
    if (lstat(p, &st) < 0) return 0; /* not configured: left out */
    _cleanup_free_ char *real = NULL;
    if ((r = resolve_inside(src, SUB_BUILD_SOURCE_FILE, SUB_BUILD_SOURCE_FILE, &real, e)) < 0)
        return r;
    _cleanup_json_ json_t *j = NULL;
    if ((r = sub_json_load_file(real, 65536, &j, e)) < 0) return r;
    static const char *const keys[] = {"source", NULL};
    const char *v = NULL;
    if ((r = sub_json_check_keys(j, SUB_BUILD_SOURCE_FILE, keys, e)) < 0 ||
        (r = sub_json_get_str(j, SUB_BUILD_SOURCE_FILE, "source", true, &v, e)) < 0)
        return r;
    if ((r = check_source_uri(SUB_BUILD_SOURCE_FILE, v, e)) < 0) return r;
    *out = xstrdup(v);
    return 0;
}

static json_t *strv_json(char **v) {
    json_t *a = json_array();
    for (char **p = v; p && *p; p++) json_array_append_new(a, json_string(*p));
    return a;
}

static int run_build(const sub_build_opts *o, const sub_imagespec *s, const char *src,
                     const char *out, const char *revision, int64_t t, sub_err *e) {
    if (!s->build) return 0;
    _cleanup_free_ char *build_cmd = sub_argv_str(s->build);
    note(o, "running %s", build_cmd);
    _cleanup_free_ char *v_out = xasprintf("OUT=%s", out);
    _cleanup_free_ char *v_sde = xasprintf("SOURCE_DATE_EPOCH=%lld", (long long)t);
    _cleanup_free_ char *v_ver = xasprintf("SUBSTRATE_VERSION=%s", o->version);
    _cleanup_free_ char *v_rev = xasprintf("SUBSTRATE_REVISION=%s", revision);
    _cleanup_free_ char *v_home = xasprintf("HOME=%s", out);
    char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "TZ=UTC", "LC_ALL=C", "LANG=C", v_home, v_out, v_sde, v_ver, v_rev, NULL};
    sub_proc_opts po = SUB_PROC_OPTS_INIT;
    po.cwd = src;
    po.clear_env = true;
    po.setenv = env;
    po.umask = 022;
    po.stdin_fd = SUB_FD_NULL;
    po.stdout_fd = 2; /* build chatter goes to stderr; stdout is for results */
    int st;
    int r = sub_run(s->build, &po, &st, e);
    if (r < 0) return r;
    if (st != 0 && sub_fs_nearly_full(out))
        return sub_err_set(e, -ENOSPC, "image %s: build command `%s` failed%s", s->name,
                           build_cmd, sub_io_hint(ENOSPC));
    if (st != 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -EIO,
                            "image %s: build command `%s` failed with exit status %d (its output is "
                            "above)",
                            s->name, build_cmd, st);
    return 0;
}

/* Put the layer, the config and the manifest into the layout, then tag it. */
static int write_image(const sub_build_opts *o, const sub_imagespec *spec, const char *spec_rel,
                       const char *source, const char *layer_path, const sub_layer_result *lr, const char *host_inputs,
                       const char *build_inputs, sub_build_result *res, sub_err *e) {
    int r;
    res->layout_dir = xasprintf("%s/images/%s", o->state_dir, spec->name);
    if ((r = sub_layout_init(res->layout_dir, e)) < 0) return r;
    char got[SUB_DIGEST_MAX];
    if ((r = sub_layout_put_blob_file(res->layout_dir, layer_path, lr->digest, got, e)) < 0) return r;
    memcpy(res->layer_digest, lr->digest, sizeof res->layer_digest);

    char created[32];
    rfc3339(res->commit_time, created);
    json_t *labels = json_object();
    for (size_t i = 0; spec->label_keys[i]; i++)
        json_object_set_new(labels, spec->label_keys[i], json_string(spec->label_values[i]));
    json_object_set_new(labels, "org.opencontainers.image.revision", json_string(res->revision));
    json_object_set_new(labels, "org.opencontainers.image.version", json_string(o->version));
    json_object_set_new(labels, "org.opencontainers.image.created", json_string(created));
    if (source) json_object_set_new(labels, "org.opencontainers.image.source", json_string(source));
    if (spec->description)
        json_object_set_new(labels, "org.opencontainers.image.description", json_string(spec->description));
    json_object_set_new(labels, "dev.substrate.image", json_string(spec->name));
    if (*host_inputs) json_object_set_new(labels, "dev.substrate.host-inputs", json_string(host_inputs));
    if (*build_inputs) json_object_set_new(labels, "dev.substrate.build-inputs", json_string(build_inputs));
    json_object_set_new(labels, "dev.substrate.layer-compression", json_string(sub_layer_compression()));

    json_t *cfg = json_object();
    if (spec->entrypoint) json_object_set_new(cfg, "Entrypoint", strv_json(spec->entrypoint));
    if (spec->cmd) json_object_set_new(cfg, "Cmd", strv_json(spec->cmd));
    if (spec->env) json_object_set_new(cfg, "Env", strv_json(spec->env));
    if (spec->workdir) json_object_set_new(cfg, "WorkingDir", json_string(spec->workdir));
    if (spec->user) json_object_set_new(cfg, "User", json_string(spec->user));
    if (spec->ports) {
        json_t *ports = json_object();
        for (char **p = spec->ports; *p; p++) {
            _cleanup_free_ char *k = strchr(*p, '/') ? xstrdup(*p) : xasprintf("%s/tcp", *p);
            json_object_set_new(ports, k, json_object());
        }
        json_object_set_new(cfg, "ExposedPorts", ports);
    }
    json_object_set_new(cfg, "Labels", labels);
    _cleanup_free_ char *created_by = xasprintf("substrate build %s --version %s (commit %s, %s)",
                                                spec->name, o->version, res->revision, spec_rel);
    _cleanup_json_ json_t *config = json_pack(
        "{s:s, s:s, s:s, s:o, s:{s:s, s:[s]}, s:[{s:s, s:s}]}", "architecture", oci_arch(), "os",
        "linux", "created", created, "config", cfg, "rootfs", "type", "layers", "diff_ids",
        lr->diff_id, "history", "created", created, "created_by", created_by);
    if (!config) abort();
    size_t clen;
    _cleanup_free_ char *cbytes = sub_json_dump(config, &clen);
    if ((r = sub_layout_put_blob_buf(res->layout_dir, cbytes, clen, res->config_digest, e)) < 0) return r;

    _cleanup_json_ json_t *manifest = json_pack(
        "{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}], s:{s:s, s:s, s:s}}", "schemaVersion", 2,
        "mediaType", SUB_MT_OCI_MANIFEST, "config", "mediaType", SUB_MT_OCI_CONFIG, "digest",
        res->config_digest, "size", (json_int_t)clen, "layers", "mediaType", SUB_MT_OCI_LAYER_GZIP,
        "digest", lr->digest, "size", (json_int_t)lr->size, "annotations",
        "org.opencontainers.image.created", created, "org.opencontainers.image.revision",
        res->revision, "org.opencontainers.image.version", o->version);
    if (!manifest) abort();
    size_t mlen;
    _cleanup_free_ char *mbytes = sub_json_dump(manifest, &mlen);
    if ((r = sub_layout_put_blob_buf(res->layout_dir, mbytes, mlen, res->manifest_digest, e)) < 0) return r;
    res->manifest_size = mlen;
    /* the index entry last: a crash before this leaves no ref to a partial image */
    return sub_layout_tag(res->layout_dir, o->version, SUB_MT_OCI_MANIFEST, res->manifest_digest, mlen, e);
}

int sub_build_image(const sub_build_opts *o, sub_build_result *res, sub_err *e) {
    memset(res, 0, sizeof *res);
    int r;
    if ((r = sub_image_name_validate(o->image, e)) < 0) return r;
    sub_err te = {0};
    if (sub_tag_validate(o->version, &te) < 0)
        return sub_err_setr(e, te.reason, SUB_KIND_DEFAULT, -EINVAL, "--version: %s", te.msg);
    if (o->rev && o->allow_dirty)
        return sub_err_set(e, -EINVAL,
                           "--allow-dirty builds the working tree as it is; it cannot be combined "
                           "with --rev");
    if ((r = sub_git_resolve(o->repo, o->rev ? o->rev : "HEAD", res->sha, e)) < 0) return r;
    bool dirty = false;
    if (!o->rev) {
        _cleanup_free_ char *summary = NULL;
        if ((r = sub_git_is_dirty(o->repo, &dirty, &summary, e)) < 0) return r;
        if (dirty && !o->allow_dirty)
            return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                                "the working tree has uncommitted changes; commit them, build an "
                                "exact commit with --rev SHA, or pass --allow-dirty to build the "
                                "tree as it is (labelled %.12s-dirty):\n%s",
                                res->sha, summary);
    }
    snprintf(res->revision, sizeof res->revision, "%s%s", res->sha, dirty ? "-dirty" : "");
    if ((r = sub_git_commit_time(o->repo, res->sha, &res->commit_time, e)) < 0) return r;

    _cleanup_free_ char *tmp_parent = o->work_parent ? xstrdup(o->work_parent)
                                                     : sub_path_join(o->state_dir, "tmp");
    _cleanup_free_ char *work = NULL;
    /* <tmp>/build-<pid>-XXXXXX: removed on SIGINT/SIGTERM; those of builds
     * that were killed are swept here (residue.h) */
    _cleanup_free_ char *state_tmp = sub_path_join(o->state_dir, "tmp");
    sub_residue_sweep(state_tmp, SUB_BUILD_TMP_PREFIX, NULL);
    if (o->work_parent) sub_residue_sweep(tmp_parent, SUB_BUILD_TMP_PREFIX, NULL);
    if ((r = sub_residue_mkdtemp(tmp_parent, SUB_BUILD_TMP_PREFIX, &work, e)) < 0) return r;
    _cleanup_free_ char *src = sub_path_join(work, "src");
    _cleanup_free_ char *out = sub_path_join(work, "out");
    _cleanup_free_ char *layer_path = sub_path_join(work, "layer.tar.gz");
    sub_imagespec spec = {0};
    sub_buf host_inputs = SUB_BUF_INIT, build_inputs = SUB_BUF_INIT;
    _cleanup_strv_ char **host_versions = NULL; /* dpkg versions, build packages first */
    size_t next_version = 0;
    sub_layer_entry *entries = NULL;
    char **entry_src = NULL;
    size_t n_entries = 0;
    _cleanup_free_ char *spec_rel = xasprintf("platform/images/%s/image.json", o->image);
    _cleanup_free_ char *spec_path = sub_path_join(src, spec_rel);
    _cleanup_free_ char *spec_real = NULL;
    _cleanup_free_ char *source = NULL;

    if ((r = sub_mkdir_p(src, 0755, e)) < 0 || (r = sub_mkdir_p(out, 0755, e)) < 0) goto out;
    if (dirty) {
        note(o, "exporting the working tree (dirty) of %.12s", res->sha);
        r = sub_git_export_worktree(o->repo, src, e);
    } else {
        note(o, "exporting commit %.12s", res->sha);
        r = sub_git_export(o->repo, res->sha, src, e);
    }
    if (r < 0) goto out;

    if (!sub_path_exists(spec_path)) {
        _cleanup_strv_ char **names = list_images_in(src);
        _cleanup_free_ char *list = NULL;
        sub_buf b = SUB_BUF_INIT;
        for (char **p = names; *p; p++) sub_buf_printf(&b, "%s%s", p == names ? "" : ", ", *p);
        list = sub_buf_detach(&b, NULL);
        r = sub_err_setr(e, SUB_R_UNKNOWN_IMAGE, SUB_KIND_DEFAULT, -EINVAL,
                         "unknown image \"%s\": commit %.12s has no %s (images there: %s)",
                        o->image, res->sha, spec_rel, *list ? list : "none");
        goto out;
    }
    /* a committed symlink must not pull the spec in from the build host */
    if ((r = resolve_inside(src, spec_rel, "image spec", &spec_real, e)) < 0) goto out;
    if ((r = sub_imagespec_load(spec_real, o->image, &spec, e)) < 0) goto out;
    if ((r = sub_sha256_file(spec_real, res->spec_digest, NULL, e)) < 0) goto out;
    /* before the build command runs: it must not choose the source */
    if ((r = resolve_source(src, &spec, &source, e)) < 0) goto out;
    if ((r = run_build(o, &spec, src, out, res->revision, res->commit_time, e)) < 0) goto out;

    /* host inputs: files taken from the host and the build toolchain */
    {
        /* every package version with one dpkg-query: build packages first, then
         * the packages of host files, in spec order */
        size_t nb = 0, np = 0;
        for (char **p = spec.build_packages; p && *p; p++) nb++;
        char **pkgs = xcalloc(nb + spec.n_files + 1, sizeof *pkgs);
        for (size_t i = 0; i < nb; i++) pkgs[np++] = spec.build_packages[i];
        for (size_t i = 0; i < spec.n_files; i++)
            if (spec.files[i].kind != SUB_FROM_OUT && spec.files[i].kind != SUB_FROM_SRC)
                pkgs[np++] = spec.files[i].package;
        host_versions = xcalloc(np + 1, sizeof *host_versions);
        r = deb_versions(pkgs, np, host_versions, e);
        free(pkgs);
        if (r < 0) goto out;
        for (size_t i = 0; i < nb; i++)
            sub_buf_printf(&build_inputs, "%s%s=%s", build_inputs.len ? "," : "",
                           spec.build_packages[i], host_versions[i]);
        next_version = nb;
    }
    size_t cap = spec.n_files + spec.n_dirs + spec.n_links;
    entries = xcalloc(cap + 1, sizeof *entries);
    entry_src = xcalloc(cap + 1, sizeof *entry_src);
    for (size_t i = 0; i < spec.n_files; i++) {
        sub_spec_file *f = &spec.files[i];
        char what[64];
        snprintf(what, sizeof what, "image %s files[%zu]", spec.name, i);
        char *path = NULL;
        if (f->kind == SUB_FROM_OUT) r = resolve_inside(out, f->from, what, &path, e);
        else if (f->kind == SUB_FROM_SRC) r = resolve_inside(src, f->from, what, &path, e);
        else {
            if ((r = deb_owns(f->package, f->from, e)) < 0) goto out;
            sub_buf_printf(&host_inputs, "%s%s=%s", host_inputs.len ? "," : "", f->package,
                           host_versions[next_version++]);
            path = xstrdup(f->from);
        }
        if (r < 0) goto out;
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            r = sub_err_setk(e, SUB_KIND_INPUT, -EINVAL, "%s: %s is not a regular file", what, path);
            free(path);
            goto out;
        }
        entry_src[n_entries] = path;
        entries[n_entries++] = (sub_layer_entry){.path = f->to, .type = SUB_LAYER_FILE, .src = path, .mode = f->mode};
    }
    for (size_t i = 0; i < spec.n_dirs; i++)
        entries[n_entries++] = (sub_layer_entry){.path = spec.dirs[i].path, .type = SUB_LAYER_DIR, .mode = spec.dirs[i].mode};
    for (size_t i = 0; i < spec.n_links; i++)
        entries[n_entries++] = (sub_layer_entry){.path = spec.links[i].path, .type = SUB_LAYER_SYMLINK, .target = spec.links[i].target, .mode = 0777};

    note(o, "writing the layer (%zu entries)", n_entries);
    sub_layer_result lr;
    if ((r = sub_layer_write(entries, n_entries, res->commit_time, layer_path, &lr, e)) < 0) goto out;

    if ((r = write_image(o, &spec, spec_rel, source, layer_path, &lr, sub_buf_str(&host_inputs),
                         sub_buf_str(&build_inputs), res, e)) < 0)
        goto out;
    res->host_inputs = sub_buf_detach(&host_inputs, NULL);
    res->build_inputs = sub_buf_detach(&build_inputs, NULL);
    res->source = xstrdup(source ? source : "");
    res->spec_path = xstrdup(spec_rel);
    for (char **p = spec.build; p && *p; p++) strv_push(&res->build_command, *p);
    note(o, "built %s:%s %s", spec.name, o->version, res->manifest_digest);
    r = 0;

out:
    for (size_t i = 0; i < n_entries; i++) free(entry_src[i]);
    free(entry_src);
    free(entries);
    sub_buf_free(&host_inputs);
    sub_buf_free(&build_inputs);
    sub_imagespec_free(&spec);
    if (o->keep_work) {
        sub_residue_forget(work);
        note(o, "kept the build tree at %s", work);
    } else {
        sub_residue_remove(work);
    }
    if (r < 0) sub_build_result_free(res);
    return r;
}
