/* The process to run, from a document over an image config (imgproc.h). */
#include "substrate/imgproc.h"
#include "substrate/strbuf.h"
#include <errno.h>
#include <string.h>

#define bad(e, in, fmt, ...)                                                                       \
    sub_err_setr(e, (in)->reason, SUB_KIND_INPUT, -EINVAL, "%s: " fmt, (in)->what, ##__VA_ARGS__)

static bool strv_set(char *const *v) { return v && v[0]; }

static void push_all(char ***out, char *const *v) {
    for (; v && *v; v++) strv_push(out, *v);
}

static int build_argv(const sub_proc_spec_in *in, const sub_image_config *img, char ***out, sub_err *e) {
    if (strv_set(in->command)) {
        push_all(out, in->command);
        push_all(out, in->args);
    } else {
        push_all(out, img->entrypoint);
        push_all(out, strv_set(in->args) ? in->args : img->cmd);
    }
    if (!strv_set(*out))
        return bad(e, in, "the image has no entrypoint or cmd and the %s gives no command; set `command` in the %s",
                   in->doc, in->doc);
    if (!(*out)[0][0]) return bad(e, in, "the program to run (args[0]) is an empty string");
    return 0;
}

/* Set KEY=VALUE: replace an entry with the same key in place, else append. */
static int env_set(const sub_proc_spec_in *in, char ***env, const char *kv, const char *from, sub_err *e) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return bad(e, in, "%s environment entry \"%s\" is not KEY=VALUE", from, kv);
    size_t klen = (size_t)(eq - kv) + 1; /* with the '=' */
    for (char **p = *env; p && *p; p++)
        if (!strncmp(*p, kv, klen)) {
            free(*p);
            *p = xstrdup(kv);
            return 0;
        }
    strv_push(env, kv);
    return 0;
}

static int build_env(const sub_proc_spec_in *in, const sub_image_config *img, char ***out, sub_err *e) {
    int r;
    _cleanup_free_ char *from = xasprintf("the %s's", in->doc);
    for (char **p = img->env; p && *p; p++)
        if ((r = env_set(in, out, *p, "the image's", e)) < 0) return r;
    for (char *const *p = in->env; p && *p; p++)
        if ((r = env_set(in, out, *p, from, e)) < 0) return r;
    for (char **p = *out; p && *p; p++)
        if (str_has_prefix(*p, "PATH=")) return 0;
    /* PATH first, as the engines put it */
    size_t n = strv_len(*out);
    char **v = xcalloc(n + 2, sizeof *v);
    v[0] = xstrdup(SUB_DEFAULT_PATH);
    if (n) memcpy(v + 1, *out, n * sizeof *v);
    free(*out);
    *out = v;
    return 0;
}

/* A decimal id 0..4294967294 ((uid_t)-1 means "unchanged" to the kernel). */
static bool parse_id(const char *s, size_t n, uint32_t *out) {
    if (n == 0 || n > 10) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v >= UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

static int build_user(const sub_proc_spec_in *in, const sub_image_config *img, sub_proc_spec *out, sub_err *e) {
    const char *u = in->user ? in->user : img->user;
    out->user_from_doc = in->user != NULL;
    if (!u || !*u) return 0;
    const char *colon = strchr(u, ':');
    size_t ulen = colon ? (size_t)(colon - u) : strlen(u);
    bool ok = parse_id(u, ulen, &out->uid);
    if (ok) out->gid = out->uid;
    if (ok && colon) ok = parse_id(colon + 1, strlen(colon + 1), &out->gid);
    if (!ok)
        return bad(e, in,
                   "%s%s%s \"%s\" is not a numeric uid[:gid]; names are not looked up in the image: use "
                   "numbers, e.g. `user: \"65534:65534\"` in the %s",
                   in->user ? "the " : "the image's User", in->user ? in->doc : "", in->user ? "'s user" : "", u,
                   in->doc);
    out->user_given = true;
    return 0;
}

int sub_proc_spec_resolve(const sub_proc_spec_in *in, const sub_image_config *img, sub_proc_spec *out,
                          sub_err *e) {
    *out = (sub_proc_spec){0};
    int r;
    if ((r = build_argv(in, img, &out->argv, e)) < 0 || (r = build_env(in, img, &out->env, e)) < 0 ||
        (r = build_user(in, img, out, e)) < 0) {
        sub_proc_spec_done(out);
        return r;
    }
    const char *w = in->workdir && *in->workdir           ? in->workdir
                    : img->working_dir && *img->working_dir ? img->working_dir
                                                            : "/";
    if (w[0] != '/') {
        r = bad(e, in, "the working directory \"%s\" (from the %s) must be an absolute path", w,
                w == in->workdir ? in->doc : "image");
        sub_proc_spec_done(out);
        return r;
    }
    out->cwd = xstrdup(w);
    return 0;
}

void sub_proc_spec_done(sub_proc_spec *p) {
    if (!p) return;
    strv_free(p->argv);
    strv_free(p->env);
    free(p->cwd);
    *p = (sub_proc_spec){0};
}
