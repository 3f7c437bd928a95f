/* The trust store: every *.pub in $SUBSTRATE_STATE/trust/. */
#include "sign-internal.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *sub_trust_dir(void) { return sub_state_path("trust"); }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Only we (or root) may be able to change what the store trusts: an entry
 * or a store owned by another user can be rewritten by that user whatever
 * its mode, and one writable by group or others by anyone. */
static int check_not_writable_by_others(const char *path, const struct stat *st, sub_err *e) {
    if (st->st_uid != 0 && st->st_uid != geteuid())
        return sub_err_setk(e, SUB_KIND_ENV, -EPERM,
                            "refusing trust store entry %s: it belongs to uid %u, who could "
                            "rewrite it and plant a key; run `chown %u %s` if you trust it",
                            path, (unsigned)st->st_uid, (unsigned)geteuid(), path);
    if (st->st_mode & 022)
        return sub_err_setk(e, SUB_KIND_ENV, -EPERM,
                            "refusing trust store entry %s: mode %04o lets group or others write "
                            "it (anyone could plant a key); run `chmod go-w %s`",
                            path, (unsigned)(st->st_mode & 07777), path);
    return 0;
}

int sub_trust_load(const char *dir, sub_pubkey ***keys, size_t *n, sub_err *e) {
    DIR *d = opendir(dir);
    if (!d) {
        int err = errno;
        if (err == ENOENT)
            return sub_err_setr(e, SUB_R_NO_TRUST_STORE, SUB_KIND_ENV, -ENOENT,
                                "the trust store %s does not exist: create it and copy the "
                                "public keys (.pub) you trust into it, or pass --key",
                                dir);
        return sub_err_set(e, -err, "cannot open the trust store %s: %s", dir, strerror(err));
    }
    struct stat st;
    int r = 0;
    if (fstat(dirfd(d), &st) < 0) r = sub_err_set(e, -errno, "cannot stat %s: %m", dir);
    if (r == 0) r = check_not_writable_by_others(dir, &st, e);
    _cleanup_strv_ char **names = xcalloc(1, sizeof(char *));
    struct dirent *de;
    while (r == 0 && (errno = 0, de = readdir(d))) {
        if (de->d_name[0] == '.' || !str_has_suffix(de->d_name, ".pub")) continue;
        strv_push(&names, de->d_name);
    }
    if (r == 0 && errno) r = sub_err_set(e, -errno, "cannot read the trust store %s: %m", dir);
    closedir(d);
    if (r < 0) return r;
    size_t cnt = strv_len(names);
    qsort(names, cnt, sizeof(char *), cmp_str);

    sub_pubkey **v = xcalloc(cnt + 1, sizeof *v);
    for (size_t i = 0; i < cnt; i++) {
        _cleanup_free_ char *path = sub_path_join(dir, names[i]);
        if (stat(path, &st) < 0) r = sub_err_set(e, -errno, "cannot stat %s: %m", path);
        else if (!S_ISREG(st.st_mode))
            r = sub_err_setk(e, SUB_KIND_ENV, -EINVAL, "trust store entry %s is not a regular file",
                             path);
        else r = check_not_writable_by_others(path, &st, e);
        if (r == 0) r = sub_pubkey_load_file(path, &v[i], e);
        if (r < 0) {
            sub_pubkeys_free(v);
            return r;
        }
    }
    *keys = v;
    *n = cnt;
    return 0;
}

int sub_trust_add(const char *dir, const char *pub_path, char id_out[SUB_DIGEST_MAX], char **dest,
                  sub_err *e) {
    _cleanup_pubkey_ sub_pubkey *k = NULL;
    int r = sub_pubkey_load_file(pub_path, &k, e);
    if (r < 0) return r;
    const char *id = sub_pubkey_id(k);
    if (id_out) memcpy(id_out, id, strlen(id) + 1);
    if ((r = sub_mkdir_p(dir, 0755, e)) < 0) return r;
    _cleanup_free_ char *name = xasprintf("%s.pub", sub_digest_hex(id));
    _cleanup_free_ char *path = sub_path_join(dir, name);
    _cleanup_pubkey_ sub_pubkey *have = NULL;
    int added = 1;
    if (sub_pubkey_load_file(path, &have, NULL) == 0 && streq(sub_pubkey_id(have), id)) {
        added = 0;
    } else {
        _cleanup_free_ char *pem = sub_pubkey_to_pem(k);
        if ((r = sub_write_file_atomic(path, pem, strlen(pem), 0644, e)) < 0) return r;
    }
    if (dest) *dest = TAKE_PTR(path);
    return added;
}

int sub_trust_remove(const char *dir, const char *id, sub_err *e) {
    _cleanup_free_ char *want = str_has_prefix(id, "sha256:") ? xstrdup(id)
                                                              : xasprintf("sha256:%s", id);
    sub_err ve = {0};
    if (sub_digest_validate(want, &ve) < 0 || !str_has_prefix(want, "sha256:"))
        return sub_err_setk(e, SUB_KIND_INPUT, -EINVAL,
                            "\"%s\" is not a key id (sha256:<64 hex>, as `substrate key list` "
                            "shows)",
                            id);
    DIR *d = opendir(dir);
    if (!d) {
        int err = errno;
        if (err == ENOENT)
            return sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                                "key %s is not trusted: the trust store %s does not exist", want,
                                dir);
        return sub_err_set(e, -err, "cannot open the trust store %s: %s", dir, strerror(err));
    }
    _cleanup_strv_ char **names = xcalloc(1, sizeof(char *));
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && str_has_suffix(de->d_name, ".pub")) strv_push(&names, de->d_name);
    closedir(d);
    int n = 0;
    for (char **p = names; *p; p++) {
        _cleanup_free_ char *path = sub_path_join(dir, *p);
        _cleanup_pubkey_ sub_pubkey *k = NULL;
        if (sub_pubkey_load_file(path, &k, NULL) < 0 || !streq(sub_pubkey_id(k), want)) continue;
        if (unlink(path) < 0) return sub_err_set(e, -errno, "cannot remove %s: %m", path);
        n++;
    }
    if (n == 0)
        return sub_err_setk(e, SUB_KIND_INPUT, -ENOENT,
                            "key %s is not trusted: no entry of %s holds it (see `substrate key "
                            "list`)",
                            want, dir);
    sub_fsync_dir(dir);
    return n;
}
