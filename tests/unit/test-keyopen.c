/* sub_signing_key_open: the key file before the passphrase, each refusal with
 * its reason; $SUBSTRATE_PASSPHRASE before $COSIGN_PASSWORD; lib/admit without keys. */
#include "substrate/admit.h"
#include "substrate/fs.h"
#include "substrate/sign.h"
#include "unit.h"
#include <stdlib.h>

static char *saved[2];
static const char *const vars[2] = {"SUBSTRATE_PASSPHRASE", "COSIGN_PASSWORD"};
static void env_save(void) {
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(vars[i]);
        saved[i] = v ? xstrdup(v) : NULL;
        unsetenv(vars[i]);
    }
}
static void env_restore(void) {
    for (int i = 0; i < 2; i++) {
        if (saved[i]) setenv(vars[i], saved[i], 1);
        else unsetenv(vars[i]);
        free(saved[i]);
        saved[i] = NULL;
    }
}

TEST(keyopen_key_file_checked_before_passphrase) {
    env_save(); /* no passphrase anywhere: any passphrase error would show */
    const char *dir = unit_tmpdir();
    sub_err e = {0};
    sub_privkey *k = NULL;
    _cleanup_free_ char *missing = sub_path_join(dir, "none.key");
    sub_key_open_opts o = {.path = missing};
    CHECK_FAILS(sub_signing_key_open(&o, &k, &e), -ENOENT);
    CHECK_REASON(&e, SUB_R_NO_KEY_FILE);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);

    _cleanup_free_ char *pub = unit_shared("vectors/cosign/cosign.pub");
    o.path = pub;
    CHECK_FAILS(sub_signing_key_open(&o, &k, &e), -EBADMSG);
    CHECK_REASON(&e, SUB_R_PUBLIC_KEY_GIVEN);
    _cleanup_free_ char *want = xasprintf("%.*s.key", (int)(strlen(pub) - 4), pub);
    CHECK(strstr(e.msg, want) != NULL); /* names the private key to use */

    _cleanup_free_ char *pkcs8 = unit_shared("vectors/cosign/private-key.pkcs8.pem");
    o.path = pkcs8;
    CHECK_FAILS(sub_signing_key_open(&o, &k, &e), -EBADMSG);
    CHECK_REASON(&e, SUB_R_NOT_A_PRIVATE_KEY);
    CHECK(k == NULL);
    /* (a good file with no passphrase would prompt at a terminal: that case
     * is tested without one, in tests/integration/sign-keyopen.sh) */
    env_restore();
}

TEST(keyopen_passphrase_order_and_wrong_passphrase) {
    env_save();
    sub_err e = {0};
    _cleanup_free_ char *key = unit_shared("vectors/cosign/cosign.key");
    _cleanup_free_ char *pass = unit_read_shared_line("vectors/cosign/passphrase.txt");
    _cleanup_privkey_ sub_privkey *k = NULL;
    sub_key_open_opts o = {.path = key, .nothing_done = "nothing was signed"};

    setenv("COSIGN_PASSWORD", pass, 1);
    CHECK_OK(sub_signing_key_open(&o, &k, &e), &e);
    CHECK(k != NULL);
    sub_privkey_free(TAKE_PTR(k));

    setenv("SUBSTRATE_PASSPHRASE", "not-it", 1); /* ours wins over cosign's */
    CHECK_FAILS(sub_signing_key_open(&o, &k, &e), -EKEYREJECTED);
    CHECK_REASON(&e, SUB_R_WRONG_PASSPHRASE);
    CHECK(strstr(e.detail, "$SUBSTRATE_PASSPHRASE") && strstr(e.detail, "nothing was signed"));

    setenv("SUBSTRATE_PASSPHRASE", pass, 1);
    setenv("COSIGN_PASSWORD", "not-it", 1);
    CHECK_OK(sub_signing_key_open(&o, &k, &e), &e);
    sub_privkey_free(TAKE_PTR(k));

    unsetenv("SUBSTRATE_PASSPHRASE");
    CHECK_FAILS(sub_signing_key_open(&o, &k, &e), -EKEYREJECTED);
    CHECK(strstr(e.detail, "$COSIGN_PASSWORD") != NULL);
    env_restore();
}

/* lib/admit: without keys nothing can be admitted, and that is a setup
 * mistake with its own reason, not a verdict on the image. */
TEST(admit_refuses_missing_or_empty_trust_store) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *none = sub_path_join(dir, "none");
    sub_pubkey **keys = NULL;
    size_t n = 0;
    CHECK_FAILS(sub_admit_trusted_keys(none, &keys, &n, &e), -ENOENT);
    CHECK_REASON(&e, SUB_R_NO_TRUST_STORE);
    _cleanup_free_ char *empty = sub_path_join(dir, "empty");
    CHECK_OK(sub_mkdir_p(empty, 0755, &e), &e);
    CHECK_FAILS(sub_admit_trusted_keys(empty, &keys, &n, &e), -ENOKEY);
    CHECK_REASON(&e, SUB_R_NO_TRUST_STORE);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK(keys == NULL);
    /* and sub_admit_image stops there, before any registry is contacted */
    sub_ref ref = {.registry = "127.0.0.1:1", .repository = "hello",
                   .digest = "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455"};
    sub_admit_opts o = {.ref = &ref, .trust_dir = empty};
    _cleanup_admission_ sub_admission ad = {0};
    CHECK_FAILS(sub_admit_image(&o, &ad, &e), -ENOKEY);
    CHECK_REASON(&e, SUB_R_NO_TRUST_STORE);
    CHECK(ad.sig_rc != 0);
    /* an image without a digest is refused */
    ref.digest = NULL;
    sub_admission ad2 = {0};
    CHECK_FAILS(sub_admit_image(&o, &ad2, &e), -EINVAL);
    sub_admission_free(&ad2);
}
