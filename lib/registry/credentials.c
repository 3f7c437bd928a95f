/* Registry credentials (see registry.h): the environment, then auth files in
 * the format of ~/.docker/config.json and containers' auth.json
 * ({"auths": {"host:port": {"auth": base64(user:password)}}}); and the
 * store/remove behind `substrate login` / `substrate logout`. */
#include "client-internal.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include <libgen.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTH_FILE_MAX (4u << 20)

char *sub_reg_auth_file(void) {
    const char *f = getenv("REGISTRY_AUTH_FILE");
    if (f && *f) return xstrdup(f);
    return sub_state_path("auth.json");
}

/* "https://host:port/v1/" -> "host:port" (in place). */
static void key_host(char *k) {
    char *p = strstr(k, "://");
    if (p) memmove(k, p + 3, strlen(p + 3) + 1);
    k[strcspn(k, "/")] = 0;
}

static void secret_free(char *s) {
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static int entry_creds(json_t *ent, const char *what, const char *key, char **user, char **pass,
                       sub_err *e) {
    const char *auth = json_string_value(json_object_get(ent, "auth"));
    if (auth && *auth) {
        size_t al = strlen(auth), cap = al / 4 * 3 + 3, n = 0;
        unsigned char *buf = xmalloc(cap + 1);
        const char *end = NULL;
        if (sodium_base642bin(buf, cap, auth, al, "\n\r ", &n, &end,
                              sodium_base64_VARIANT_ORIGINAL) < 0 ||
            end != auth + al) {
            free(buf);
            return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                                "%s: the \"auth\" of %s is not valid base64; run `substrate login "
                                "%s` again",
                                what, key, key);
        }
        buf[n] = 0;
        char *colon = memchr(buf, ':', n);
        if (!colon || colon == (char *)buf || memchr(buf, 0, n)) {
            explicit_bzero(buf, n);
            free(buf);
            return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                                "%s: the \"auth\" of %s is not base64 of USER:PASSWORD; run "
                                "`substrate login %s` again",
                                what, key, key);
        }
        *user = xstrndup((char *)buf, (size_t)(colon - (char *)buf));
        *pass = xstrdup(colon + 1);
        explicit_bzero(buf, n);
        free(buf);
        return 1;
    }
    const char *u = json_string_value(json_object_get(ent, "username"));
    const char *p = json_string_value(json_object_get(ent, "password"));
    if (u && *u && p) {
        *user = xstrdup(u);
        *pass = xstrdup(p);
        return 1;
    }
    return 0; /* e.g. only an identitytoken, or a credential helper's empty entry */
}

int sub_reg_auth_parse(const char *json, size_t len, const char *what, const char *host,
                       char **user, char **pass, sub_err *e) {
    *user = *pass = NULL;
    json_t *j = NULL;
    int rr = sub_json_parse(json, len, AUTH_FILE_MAX, what, &j, e);
    if (rr < 0) {
        if (e) e->kind = SUB_KIND_INPUT;
        return rr;
    }
    json_t *auths = json_object_get(j, "auths");
    rr = 0;
    if (!json_is_object(j) || (auths && !json_is_object(auths))) {
        rr = sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                          "%s: expected {\"auths\": {\"host:port\": {\"auth\": ...}}}", what);
        goto out;
    }
    /* an exact key first, then one with a scheme or path around the same host:port */
    json_t *ent = json_object_get(auths, host);
    if (json_is_object(ent)) {
        rr = entry_creds(ent, what, host, user, pass, e);
        if (rr != 0) goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(auths, k, v) {
        if (!json_is_object(v)) continue;
        _cleanup_free_ char *kh = xstrdup(k);
        key_host(kh);
        if (strcasecmp(kh, host) != 0 || !strcmp(k, host)) continue;
        rr = entry_creds(v, what, k, user, pass, e);
        if (rr != 0) goto out;
    }
out:
    json_decref(j);
    return rr;
}

/* One auth file: 1 found, 0 absent or no entry, < 0 unreadable or malformed. */
static int creds_from_file(const char *path, const char *host, char **user, char **pass,
                           sub_err *e) {
    if (!path || access(path, F_OK) < 0) return 0;
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    int rr = sub_read_file(path, AUTH_FILE_MAX, &s, &len, e);
    if (rr < 0) {
        if (e) e->kind = SUB_KIND_INPUT;
        return rr;
    }
    rr = sub_reg_auth_parse(s, len, path, host, user, pass, e);
    explicit_bzero(s, len);
    return rr;
}

int reg_creds_env(char **user, char **pass, char **source, sub_err *e) {
    *user = *pass = *source = NULL;
    const char *eu = getenv("SUBSTRATE_REGISTRY_USER");
    if (eu && *eu) {
        const char *ep = getenv("SUBSTRATE_REGISTRY_PASSWORD");
        if (!ep)
            return sub_err_setk(
                e, SUB_KIND_INPUT, -EINVAL,
                "a registry user is set (SUBSTRATE_REGISTRY_USER=%s) but no password: set "
                "SUBSTRATE_REGISTRY_PASSWORD too",
                eu);
        *user = xstrdup(eu);
        *pass = xstrdup(ep);
        *source = xstrdup("SUBSTRATE_REGISTRY_USER/PASSWORD");
    }
    return 0;
}

int reg_creds_files(const char *host, char **user, char **pass, char **source, sub_err *e) {
    *user = *pass = *source = NULL;
    char *files[3] = {sub_reg_auth_file(), NULL, NULL};
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && *xdg) files[1] = xasprintf("%s/containers/auth.json", xdg);
    const char *home = getenv("HOME");
    if (home && *home) files[2] = xasprintf("%s/.docker/config.json", home);
    int rr = 0;
    for (size_t i = 0; i < 3 && rr == 0; i++) {
        rr = creds_from_file(files[i], host, user, pass, e);
        if (rr > 0) *source = xstrdup(files[i]);
    }
    for (size_t i = 0; i < 3; i++) free(files[i]);
    if (rr < 0) {
        secret_free(*user);
        secret_free(*pass);
        *user = *pass = NULL;
        return rr;
    }
    return 0;
}

int reg_creds_find(const char *host, char **user, char **pass, char **source, sub_err *e) {
    int rr = reg_creds_env(user, pass, source, e);
    if (rr < 0 || *user) return rr;
    return reg_creds_files(host, user, pass, source, e);
}

/* Read the auth file to edit (an empty object when it does not exist). */
static int load_for_edit(const char *path, json_t **out, sub_err *e) {
    *out = NULL;
    if (access(path, F_OK) < 0) {
        *out = json_object();
        return 0;
    }
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    int rr = sub_read_file(path, AUTH_FILE_MAX, &s, &len, e);
    if (rr < 0) return rr;
    rr = sub_json_parse(s, len, AUTH_FILE_MAX, path, out, e);
    explicit_bzero(s, len);
    if (rr < 0) {
        if (e) e->kind = SUB_KIND_INPUT;
        return rr;
    }
    if (!json_is_object(*out) ||
        (json_object_get(*out, "auths") && !json_is_object(json_object_get(*out, "auths")))) {
        json_decref(*out);
        *out = NULL;
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG,
                            "%s: expected {\"auths\": {...}}; fix or remove it", path);
    }
    return 0;
}

static int save(const char *path, json_t *j, sub_err *e) {
    _cleanup_free_ char *d = xstrdup(path);
    int rr = sub_mkdir_p(dirname(d), 0700, e);
    if (rr < 0) return rr;
    size_t len = 0;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s) return sub_err_set(e, -ENOMEM, "cannot serialise %s", path);
    len = strlen(s);
    char *withnl = xasprintf("%s\n", s);
    explicit_bzero(s, len);
    free(s);
    rr = sub_write_file_atomic(path, withnl, len + 1, 0600, e);
    explicit_bzero(withnl, len + 1);
    free(withnl);
    return rr;
}

int sub_reg_auth_store(const char *host, const char *user, const char *pass, char **path_out,
                       sub_err *e) {
    if (!user || !*user || strchr(user, ':'))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "a registry user name must be non-empty and contain no ':'");
    _cleanup_free_ char *path = sub_reg_auth_file();
    json_t *j = NULL;
    int rr = load_for_edit(path, &j, e);
    if (rr < 0) return rr;
    json_t *auths = json_object_get(j, "auths");
    if (!auths) {
        auths = json_object();
        json_object_set_new(j, "auths", auths);
    }
    size_t pl = strlen(user) + 1 + strlen(pass);
    char *plain = xasprintf("%s:%s", user, pass);
    size_t bl = sodium_base64_ENCODED_LEN(pl, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = xmalloc(bl);
    sodium_bin2base64(b64, bl, (const unsigned char *)plain, pl, sodium_base64_VARIANT_ORIGINAL);
    secret_free(plain);
    json_t *ent = json_object_get(auths, host);
    if (!json_is_object(ent)) {
        ent = json_object();
        json_object_set_new(auths, host, ent);
    }
    json_object_set_new(ent, "auth", json_string(b64));
    json_object_del(ent, "username");
    json_object_del(ent, "password");
    secret_free(b64);
    rr = save(path, j, e);
    json_decref(j);
    if (rr == 0 && path_out) *path_out = TAKE_PTR(path);
    return rr;
}

int sub_reg_auth_remove(const char *host, char **path_out, sub_err *e) {
    _cleanup_free_ char *path = sub_reg_auth_file();
    if (path_out) *path_out = xstrdup(path);
    if (access(path, F_OK) < 0) return 0;
    json_t *j = NULL;
    int rr = load_for_edit(path, &j, e);
    if (rr < 0) return rr;
    json_t *auths = json_object_get(j, "auths");
    int removed = 0;
    if (auths && json_object_get(auths, host)) {
        json_object_del(auths, host);
        removed = 1;
    }
    /* keys written by other tools with a scheme or path around the same host:port */
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(auths, tmp, k, v) {
        _cleanup_free_ char *kh = xstrdup(k);
        key_host(kh);
        if (!strcasecmp(kh, host)) {
            json_object_del(auths, k);
            removed = 1;
        }
    }
    if (removed) rr = save(path, j, e);
    json_decref(j);
    return rr < 0 ? rr : removed;
}
