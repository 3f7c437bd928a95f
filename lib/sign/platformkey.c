/* The platform signing key: <state>/keys/cosign.{key,pub,pass}, made on
 * first use with a random passphrase, its public half trusted. */
#include "sign-internal.h"
#include "substrate/cosign-registry.h"
#include "substrate/fs.h"
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

char *sub_platform_key_path(const char *state_dir) {
    return xasprintf("%s/keys/cosign.key", state_dir);
}

int sub_platform_key_ensure(const char *state_dir, bool *created, char id_out[SUB_DIGEST_MAX],
                            sub_err *e) {
    *created = false;
    _cleanup_free_ char *keys = sub_path_join(state_dir, "keys");
    _cleanup_free_ char *prefix = sub_path_join(keys, "cosign");
    _cleanup_free_ char *keyp = xasprintf("%s.key", prefix);
    _cleanup_free_ char *pubp = xasprintf("%s.pub", prefix);
    _cleanup_free_ char *passp = xasprintf("%s.pass", prefix);
    _cleanup_free_ char *trust = sub_path_join(state_dir, "trust");
    int r;
    if (sub_path_exists(keyp)) {
        if (id_out) {
            _cleanup_pubkey_ sub_pubkey *pub = NULL;
            if (sub_pubkey_load_file(pubp, &pub, NULL) == 0)
                snprintf(id_out, SUB_DIGEST_MAX, "%s", sub_pubkey_id(pub));
            else id_out[0] = 0;
        }
        return 0;
    }
    /* the state dir as everything else makes it; only keys/ is private */
    if ((r = sub_mkdir_p(state_dir, 0755, e)) < 0 || (r = sub_mkdir_p(keys, 0700, e)) < 0)
        return r;
    if (chmod(keys, 0700) < 0) return sub_err_set(e, -errno, "cannot chmod %s: %m", keys);
    if ((r = sub_key_files_absent(prefix, e)) < 0) return r;
    if ((r = sign_sodium_init(e)) < 0) return r;

    /* 32 random bytes, base64: the passphrase, kept beside the key (0600) */
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    char *pass = sub_b64_encode(raw, sizeof raw);
    size_t passlen = strlen(pass);
    sodium_memzero(raw, sizeof raw);
    r = sub_write_file_new(passp, pass, passlen, 0600, e);
    if (r == -EEXIST)
        sub_err_detail(e, "a passphrase file without a key: remove %s if it is stale", passp);
    if (r < 0) goto out;
    char id[SUB_DIGEST_MAX];
    r = sub_key_generate_files(prefix, pass, passlen, id, e);
    if (r < 0) {
        unlink(passp);
        goto out;
    }
    r = sub_trust_add(trust, pubp, NULL, NULL, e);
    if (r < 0) {
        sub_err_prefix(e, "the platform key %s was made, but trusting it failed", id);
        unlink(keyp);
        unlink(pubp);
        unlink(passp);
        goto out;
    }
    *created = true;
    if (id_out) memcpy(id_out, id, sizeof id);
    r = 0;
out:
    sub_secret_free(pass, passlen + 1);
    return r;
}
