/* The trust store: every *.pub in $SUBSTRATE_STATE/trust/. */
#include "sign-internal.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

char *sub_trust_dir(void) { return sub_state_path("trust"); }

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int check_not_writable_by_others(const char *path, const struct stat *st, sub_err *e) {
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
            return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
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
