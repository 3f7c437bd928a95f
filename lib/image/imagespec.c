#include "substrate/imagespec.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include <string.h>

#define SPEC_MAX (256u << 10)

void sub_imagespec_free(sub_imagespec *s) {
    if (!s) return;
    free(s->name);
    free(s->description);
    free(s->source);
    strv_free(s->build);
    strv_free(s->build_packages);
    for (size_t i = 0; i < s->n_files; i++) {
        free(s->files[i].from);
        free(s->files[i].package);
        free(s->files[i].to);
    }
    free(s->files);
    for (size_t i = 0; i < s->n_dirs; i++) free(s->dirs[i].path);
    free(s->dirs);
    for (size_t i = 0; i < s->n_links; i++) {
        free(s->links[i].path);
        free(s->links[i].target);
    }
    free(s->links);
    strv_free(s->entrypoint);
    strv_free(s->cmd);
    strv_free(s->env);
    strv_free(s->ports);
    free(s->workdir);
    free(s->user);
    strv_free(s->label_keys);
    strv_free(s->label_values);
    memset(s, 0, sizeof *s);
}

int sub_image_name_validate(const char *name, sub_err *e) {
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return sub_err_set(e, -EINVAL, "image name \"%s\" must be 1-64 characters", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0 && i < n - 1);
        if (!ok)
            return sub_err_set(e, -EINVAL,
                               "image name \"%s\" may only use [a-z0-9] and inner '-' characters",
                               name);
    }
    return 0;
}

/* An absolute image path: no empty, "." or ".." components, printable ASCII. */
static int check_image_path(const char *what, const char *p, sub_err *e) {
    if (p[0] != '/')
        return sub_err_set(e, -EBADMSG, "%s: path \"%s\" must be absolute (start with '/')", what, p);
    if (strlen(p) > 1024) return sub_err_set(e, -EBADMSG, "%s: path is too long", what);
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e)
            return sub_err_set(e, -EBADMSG, "%s: path \"%s\" contains a space or control character",
                               what, p);
    const char *c = p + 1;
    for (;;) {
        const char *s = strchr(c, '/');
        size_t n = s ? (size_t)(s - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return sub_err_set(e, -EBADMSG,
                               "%s: path \"%s\" has an empty, \".\" or \"..\" component", what, p);
        if (!s) break;
        c = s + 1;
    }
    return 0;
}

/* A path inside the export / $OUT: relative, no "..". */
static int check_rel_path(const char *what, const char *p, sub_err *e) {
    if (!*p || p[0] == '/')
        return sub_err_set(e, -EBADMSG, "%s: \"%s\" must be a relative path", what, p);
    _cleanup_free_ char *abs = xasprintf("/%s", p);
    return check_image_path(what, abs, e);
}

static int parse_mode(const char *what, const char *s, unsigned *out, sub_err *e) {
    size_t n = strlen(s);
    if (n < 3 || n > 4)
        return sub_err_set(e, -EBADMSG, "%s: mode \"%s\" must be 3-4 octal digits, e.g. \"0755\"",
                           what, s);
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return sub_err_set(e, -EBADMSG, "%s: mode \"%s\" is not octal", what, s);
        v = v * 8 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+. The name goes into
 * dpkg-query's argv, where anything starting with '-' would be an option
 * (--admindir=... reads another database and records made-up versions). */
static int check_package(const char *what, const char *p, sub_err *e) {
    size_t n = strlen(p);
    bool ok = n >= 2 && n <= 128 && ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= '0' && p[0] <= '9'));
    for (size_t i = 1; ok && i < n; i++)
        ok = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || strchr("+.-", p[i]);
    if (!ok)
        return sub_err_set(e, -EBADMSG,
                           "%s: \"%s\" is not a Debian package name ([a-z0-9][a-z0-9+.-]+, as "
                           "`dpkg-query -W` lists them)",
                           what, p);
    return 0;
}

static int get_opt_strv(json_t *o, const char *what, const char *key, char ***out, sub_err *e) {
    int r = sub_json_get_strv(o, what, key, false, out, e);
    return r == -ENOENT ? 0 : r;
}

static int get_opt_str(json_t *o, const char *what, const char *key, char **out, sub_err *e) {
    const char *s;
    int r = sub_json_get_str(o, what, key, false, &s, e);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    *out = xstrdup(s);
    return 0;
}

static int parse_files(json_t *root, sub_imagespec *s, sub_err *e) {
    json_t *a;
    int r = sub_json_get_arr(root, "image spec", "files", false, &a, e);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    s->files = xcalloc(json_array_size(a) + 1, sizeof *s->files);
    size_t i;
    json_t *it;
    json_array_foreach(a, i, it) {
        char what[64];
        snprintf(what, sizeof what, "image spec files[%zu]", i);
        static const char *const keys[] = {"from", "to", "mode", "package", NULL};
        if (!json_is_object(it)) return sub_err_set(e, -EBADMSG, "%s must be an object", what);
        if ((r = sub_json_check_keys(it, what, keys, e)) < 0) return r;
        sub_spec_file *f = &s->files[s->n_files++];
        const char *from, *to, *mode;
        if ((r = sub_json_get_str(it, what, "from", true, &from, e)) < 0) return r;
        if ((r = sub_json_get_str(it, what, "to", true, &to, e)) < 0) return r;
        if ((r = sub_json_get_str(it, what, "mode", true, &mode, e)) < 0) return r;
        if ((r = get_opt_str(it, what, "package", &f->package, e)) < 0) return r;
        if ((r = parse_mode(what, mode, &f->mode, e)) < 0) return r;
        if ((r = check_image_path(what, to, e)) < 0) return r;
        f->to = xstrdup(to);
        if (str_has_prefix(from, "out:")) {
            f->kind = SUB_FROM_OUT;
            if ((r = check_rel_path(what, from + 4, e)) < 0) return r;
            f->from = xstrdup(from + 4);
        } else if (str_has_prefix(from, "src:")) {
            f->kind = SUB_FROM_SRC;
            if ((r = check_rel_path(what, from + 4, e)) < 0) return r;
            f->from = xstrdup(from + 4);
        } else if (str_has_prefix(from, "host:")) {
            f->kind = SUB_FROM_HOST;
            if ((r = check_image_path(what, from + 5, e)) < 0) return r;
            f->from = xstrdup(from + 5);
            if (!f->package)
                return sub_err_set(e, -EBADMSG,
                                   "%s: a host: file needs \"package\" (the Debian package that "
                                   "owns it, so its version is recorded)",
                                   what);
        } else {
            return sub_err_set(e, -EBADMSG,
                               "%s: \"from\" must start with out:, src: or host: (got \"%s\")", what,
                               from);
        }
        if (f->package && f->kind != SUB_FROM_HOST)
            return sub_err_set(e, -EBADMSG, "%s: \"package\" only applies to host: files", what);
        if (f->package && (r = check_package(what, f->package, e)) < 0) return r;
    }
    return 0;
}

static int parse_dirs_links(json_t *root, sub_imagespec *s, sub_err *e) {
    json_t *a;
    size_t i;
    json_t *it;
    int r = sub_json_get_arr(root, "image spec", "dirs", false, &a, e);
    if (r < 0 && r != -ENOENT) return r;
    if (r == 0) {
        s->dirs = xcalloc(json_array_size(a) + 1, sizeof *s->dirs);
        json_array_foreach(a, i, it) {
            char what[64];
            snprintf(what, sizeof what, "image spec dirs[%zu]", i);
            static const char *const keys[] = {"path", "mode", NULL};
            if (!json_is_object(it)) return sub_err_set(e, -EBADMSG, "%s must be an object", what);
            if ((r = sub_json_check_keys(it, what, keys, e)) < 0) return r;
            const char *p, *m;
            if ((r = sub_json_get_str(it, what, "path", true, &p, e)) < 0) return r;
            if ((r = sub_json_get_str(it, what, "mode", true, &m, e)) < 0) return r;
            if ((r = check_image_path(what, p, e)) < 0) return r;
            sub_spec_dir *d = &s->dirs[s->n_dirs++];
            d->path = xstrdup(p);
            if ((r = parse_mode(what, m, &d->mode, e)) < 0) return r;
        }
    }
    r = sub_json_get_arr(root, "image spec", "symlinks", false, &a, e);
    if (r < 0 && r != -ENOENT) return r;
    if (r == 0) {
        s->links = xcalloc(json_array_size(a) + 1, sizeof *s->links);
        json_array_foreach(a, i, it) {
            char what[64];
            snprintf(what, sizeof what, "image spec symlinks[%zu]", i);
            static const char *const keys[] = {"path", "target", NULL};
            if (!json_is_object(it)) return sub_err_set(e, -EBADMSG, "%s must be an object", what);
            if ((r = sub_json_check_keys(it, what, keys, e)) < 0) return r;
            const char *p, *t;
            if ((r = sub_json_get_str(it, what, "path", true, &p, e)) < 0) return r;
            if ((r = sub_json_get_str(it, what, "target", true, &t, e)) < 0) return r;
            if ((r = check_image_path(what, p, e)) < 0) return r;
            if (!*t || strlen(t) > 1024)
                return sub_err_set(e, -EBADMSG, "%s: target must be 1-1024 characters", what);
            sub_spec_link *l = &s->links[s->n_links++];
            l->path = xstrdup(p);
            l->target = xstrdup(t);
        }
    }
    return 0;
}

static int parse_config(json_t *root, sub_imagespec *s, sub_err *e) {
    json_t *c;
    const char *what = "image spec config";
    int r = sub_json_get_obj(root, "image spec", "config", false, &c, e);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    static const char *const keys[] = {"entrypoint", "cmd", "env", "workdir", "user", "ports", "labels", NULL};
    if ((r = sub_json_check_keys(c, what, keys, e)) < 0) return r;
    if ((r = get_opt_strv(c, what, "entrypoint", &s->entrypoint, e)) < 0) return r;
    if ((r = get_opt_strv(c, what, "cmd", &s->cmd, e)) < 0) return r;
    if ((r = get_opt_strv(c, what, "env", &s->env, e)) < 0) return r;
    if ((r = get_opt_strv(c, what, "ports", &s->ports, e)) < 0) return r;
    if ((r = get_opt_str(c, what, "workdir", &s->workdir, e)) < 0) return r;
    if ((r = get_opt_str(c, what, "user", &s->user, e)) < 0) return r;
    for (char **p = s->env; p && *p; p++)
        if (!strchr(*p, '=') || **p == '=')
            return sub_err_set(e, -EBADMSG, "%s: env entry \"%s\" must be KEY=VALUE", what, *p);
    for (char **p = s->ports; p && *p; p++) {
        char *end;
        long v = strtol(*p, &end, 10);
        if (end == *p || v < 1 || v > 65535 || (*end && strcmp(end, "/tcp") && strcmp(end, "/udp")))
            return sub_err_set(e, -EBADMSG, "%s: port \"%s\" must be N, N/tcp or N/udp", what, *p);
    }
    if (s->workdir && s->workdir[0] != '/')
        return sub_err_set(e, -EBADMSG, "%s: workdir must be absolute", what);
    json_t *labels;
    r = sub_json_get_obj(c, what, "labels", false, &labels, e);
    if (r < 0 && r != -ENOENT) return r;
    s->label_keys = xcalloc(1, sizeof(char *));
    s->label_values = xcalloc(1, sizeof(char *));
    if (r == 0) {
        /* jansson iterates in insertion order; we want sorted keys */
        const char *k;
        json_t *v;
        _cleanup_strv_ char **keysv = xcalloc(1, sizeof(char *));
        json_object_foreach(labels, k, v) {
            if (!json_is_string(v))
                return sub_err_set(e, -EBADMSG, "%s: label \"%s\" must be a string", what, k);
            strv_push(&keysv, k);
        }
        size_t n = strv_len(keysv);
        qsort(keysv, n, sizeof(char *), strcmp_ptr);
        for (size_t i = 0; i < n; i++) {
            strv_push(&s->label_keys, keysv[i]);
            strv_push(&s->label_values, json_string_value(json_object_get(labels, keysv[i])));
        }
    }
    return 0;
}

int sub_imagespec_load(const char *path, const char *expect_name, sub_imagespec *out, sub_err *e) {
    memset(out, 0, sizeof *out);
    _cleanup_json_ json_t *root = NULL;
    int r = sub_json_load_file(path, SPEC_MAX, &root, e);
    if (r < 0) return r;
    if (!json_is_object(root)) return sub_err_set(e, -EBADMSG, "%s: must be a JSON object", path);
    static const char *const keys[] = {"name", "description", "source", "build", "build_packages", "files", "dirs", "symlinks", "config", NULL};
    sub_imagespec s = {0};
    const char *name;
    if ((r = sub_json_check_keys(root, "image spec", keys, e)) < 0) goto fail;
    if ((r = sub_json_get_str(root, "image spec", "name", true, &name, e)) < 0) goto fail;
    if ((r = sub_image_name_validate(name, e)) < 0) goto fail;
    if (expect_name && strcmp(name, expect_name) != 0) {
        r = sub_err_set(e, -EBADMSG, "image spec name \"%s\" does not match its directory \"%s\"",
                        name, expect_name);
        goto fail;
    }
    s.name = xstrdup(name);
    if ((r = get_opt_str(root, "image spec", "description", &s.description, e)) < 0) goto fail;
    if ((r = get_opt_str(root, "image spec", "source", &s.source, e)) < 0) goto fail;
    if ((r = get_opt_strv(root, "image spec", "build", &s.build, e)) < 0) goto fail;
    if (s.build && !s.build[0]) {
        r = sub_err_set(e, -EBADMSG, "image spec: \"build\" must not be an empty list (omit it)");
        goto fail;
    }
    if ((r = get_opt_strv(root, "image spec", "build_packages", &s.build_packages, e)) < 0) goto fail;
    for (char **p = s.build_packages; p && *p; p++)
        if ((r = check_package("image spec build_packages", *p, e)) < 0) goto fail;
    if ((r = parse_files(root, &s, e)) < 0) goto fail;
    if ((r = parse_dirs_links(root, &s, e)) < 0) goto fail;
    if ((r = parse_config(root, &s, e)) < 0) goto fail;
    if (!s.label_keys) { /* no "config": still an empty, never NULL, label list */
        s.label_keys = xcalloc(1, sizeof(char *));
        s.label_values = xcalloc(1, sizeof(char *));
    }
    if (s.n_files == 0 && s.n_dirs == 0 && s.n_links == 0) {
        r = sub_err_set(e, -EBADMSG, "image spec: no files, dirs or symlinks: the image would be empty");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    sub_err_prefix(e, "%s", path);
    sub_imagespec_free(&s);
    return r;
}
