/* lib/sign keys: the cosign-encrypted vector key, generation round trip,
 * an independent decryption of what we write, passphrase sources, trust store. */
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include "substrate/strbuf.h"
#include "unit.h"
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define V "vectors/cosign/"

/* DER of the first PEM block, decoded by OpenSSL (independent of lib/sign). */
static unsigned char *openssl_pem_der(const char *pem, long *len) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    if (!PEM_read_bio(b, &name, &header, &data, len)) unit_fail(__FILE__, __LINE__, "PEM_read_bio");
    OPENSSL_free(name);
    OPENSSL_free(header);
    BIO_free(b);
    return data;
}

TEST(sign_key_cosign_vector_decrypts_to_pkcs8) {
    sub_err e = {0};
    size_t plen, klen;
    _cleanup_free_ char *pass = unit_read_shared(V "passphrase.txt", &plen);
    _cleanup_free_ char *key = unit_read_shared(V "cosign.key", &klen);
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_decrypt(key, klen, pass, plen, "cosign.key", &k, &e), &e);
    if (!k) return;
    /* key material: our PKCS#8 equals the expected decryption result */
    _cleanup_free_ char *pem = unit_read_shared(V "private-key.pkcs8.pem", NULL);
    long wlen = 0;
    unsigned char *want = openssl_pem_der(pem, &wlen);
    unsigned char *der = NULL;
    size_t dlen = 0;
    CHECK_OK(sub_privkey_pkcs8(k, &der, &dlen, &e), &e);
    CHECK(want && der && (long)dlen == wlen && memcmp(der, want, dlen) == 0);
    OPENSSL_free(want);
    sub_secret_free(der, dlen);
    /* its public half is cosign.pub */
    _cleanup_free_ char *pp = unit_shared(V "cosign.pub");
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    CHECK_OK(sub_pubkey_load_file(pp, &pub, &e), &e);
    if (pub) CHECK_STREQ(sub_privkey_id(k), sub_pubkey_id(pub));
    /* signing with it verifies with cosign.pub */
    _cleanup_free_ char *payload = NULL, *sig = NULL;
    size_t len;
    CHECK_OK(sub_cosign_sign_image(k, "127.0.0.1:5000/hello",
                                   "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455",
                                   &payload, &len, &sig, &e),
             &e);
    const sub_pubkey *keys[] = {pub};
    CHECK_OK(sub_cosign_verify(keys, 1, payload, len, sig,
                               "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455",
                               "127.0.0.1:5000/hello", SUB_IDENTITY_EXACT, NULL, &e),
             &e);
}

TEST(sign_key_old_cosign_label_loads) {
    sub_err e = {0};
    size_t plen;
    _cleanup_free_ char *pass = unit_read_shared(V "passphrase.txt", &plen);
    _cleanup_free_ char *key = unit_read_shared(V "cosign.key", NULL);
    /* same body under "ENCRYPTED COSIGN PRIVATE KEY" */
    char *body = strchr(key, '\n') + 1;
    *strstr(body, "-----END") = 0;
    _cleanup_free_ char *old = xasprintf("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n%s"
                                         "-----END ENCRYPTED COSIGN PRIVATE KEY-----\n",
                                         body);
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_decrypt(old, strlen(old), pass, plen, "old.key", &k, &e), &e);
    /* mismatched END label, other labels: refused with a reason */
    _cleanup_free_ char *mixed = xasprintf("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n%s"
                                           "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
                                           body);
    _cleanup_privkey_ sub_privkey *k2 = NULL;
    CHECK_FAILS(sub_privkey_decrypt(mixed, strlen(mixed), pass, plen, "mixed.key", &k2, &e),
                -EBADMSG);
    _cleanup_free_ char *pkcs8 = unit_read_shared(V "private-key.pkcs8.pem", NULL);
    CHECK_FAILS(sub_privkey_decrypt(pkcs8, strlen(pkcs8), pass, plen, "p.pem", &k2, &e), -EBADMSG);
    CHECK_REASON(&e, SUB_R_NOT_A_PRIVATE_KEY);
    CHECK(strstr(e.msg, "unencrypted") != NULL); /* says what it is */
    _cleanup_free_ char *pub = unit_read_shared(V "cosign.pub", NULL);
    CHECK_FAILS(sub_privkey_decrypt(pub, strlen(pub), pass, plen, "c.pub", &k2, &e), -EBADMSG);
    CHECK_REASON(&e, SUB_R_PUBLIC_KEY_GIVEN);
}

TEST(sign_key_wrong_passphrase_refused) {
    sub_err e = {0};
    size_t klen;
    _cleanup_free_ char *key = unit_read_shared(V "cosign.key", &klen);
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_FAILS(sub_privkey_decrypt(key, klen, "lab-ctr-test-passphrasE", 23, "cosign.key", &k, &e),
                -EKEYREJECTED);
    CHECK(k == NULL);
    CHECK_REASON(&e, SUB_R_WRONG_PASSPHRASE);
    CHECK(strstr(e.msg, "cosign.key") != NULL); /* names the file */
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
}

TEST(sign_key_tampered_or_hostile_files_refused) {
    size_t plen;
    _cleanup_free_ char *pass = unit_read_shared(V "passphrase.txt", &plen);
    static const struct {
        const char *json, *why;
    } t[] = {
        {"{\"kdf\":{\"name\":\"pbkdf2\",\"params\":{\"N\":32768,\"r\":8,\"p\":1},\"salt\":\"AAAAAAAAAAA=\"},"
         "\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
         "\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "pbkdf2"},
        {"{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":1073741824,\"r\":8,\"p\":1},\"salt\":\"AAAAAAAAAAA=\"},"
         "\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
         "\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "out of range"},
        {"{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":1024,\"r\":8,\"p\":1},\"salt\":\"AAAAAAAAAAA=\"},"
         "\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":\"AAAA\"},"
         "\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "nonce"},
        {"{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":1024,\"r\":8,\"p\":1},\"salt\":\"AAAAAAAAAAA=\"},"
         "\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
         "\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"ciphertext\":\"\"}",
         "duplicate"},
        {"{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":1024,\"r\":8,\"p\":1},\"salt\":\"AAAAAAAAAAA=\"},"
         "\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
         "\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         "wrong passphrase"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        _cleanup_free_ char *b64 = sub_b64_encode(t[i].json, strlen(t[i].json));
        _cleanup_free_ char *pem =
            xasprintf("-----BEGIN " SUB_COSIGN_KEY_LABEL "-----\n%s\n-----END " SUB_COSIGN_KEY_LABEL
                      "-----\n",
                      b64);
        sub_err e = {0};
        sub_privkey *k = NULL;
        int r = sub_privkey_decrypt(pem, strlen(pem), pass, plen, "t.key", &k, &e);
        if (r >= 0 || !strstr(e.msg, t[i].why))
            unit_fail(__FILE__, __LINE__, "case %zu: r=%d \"%s\" (wanted \"%s\")", i, r, e.msg,
                      t[i].why);
        sub_privkey_free(k);
    }
    /* one flipped ciphertext bit in the real vector: the box does not open */
    size_t klen;
    _cleanup_free_ char *key = unit_read_shared(V "cosign.key", &klen);
    char *body = strchr(key, '\n') + 1;
    *strstr(body, "-----END") = 0;
    sub_err e = {0};
    _cleanup_free_ unsigned char *json = NULL;
    size_t jlen;
    CHECK_OK(sub_b64_decode(body, strlen(body), "\n", "body", &json, &jlen, &e), &e);
    if (!json) return;
    char *ct = strstr((char *)json, "\"ciphertext\":\"");
    if (!ct) return;
    ct += 14;
    ct[5] = ct[5] == 'A' ? 'B' : 'A';
    _cleanup_free_ char *b64 = sub_b64_encode(json, jlen);
    _cleanup_free_ char *pem = xasprintf("-----BEGIN " SUB_COSIGN_KEY_LABEL "-----\n%s\n-----END "
                                         SUB_COSIGN_KEY_LABEL "-----\n",
                                         b64);
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_FAILS(sub_privkey_decrypt(pem, strlen(pem), pass, plen, "t.key", &k, &e), -EKEYREJECTED);
}

TEST(sign_key_generate_files_round_trip) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *prefix = sub_path_join(dir, "k1");
    _cleanup_free_ char *keyp = xasprintf("%s.key", prefix), *pubp = xasprintf("%s.pub", prefix);
    char id[SUB_DIGEST_MAX] = "";
    CHECK_OK(sub_key_generate_files(prefix, "s3cret", 6, id, &e), &e);
    struct stat st;
    CHECK(stat(keyp, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK(stat(pubp, &st) == 0 && (st.st_mode & 07777) == 0644);
    _cleanup_free_ char *keytext = NULL;
    size_t klen = 0;
    CHECK_OK(sub_read_file(keyp, 65536, &keytext, &klen, &e), &e);
    CHECK(keytext && str_has_prefix(keytext, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    _cleanup_pubkey_ sub_pubkey *pub = NULL;
    CHECK_OK(sub_pubkey_load_file(pubp, &pub, &e), &e);
    if (!pub) return;
    CHECK_STREQ(sub_pubkey_id(pub), id);
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_load_file(keyp, "s3cret", 6, &k, &e), &e);
    if (!k) return;
    CHECK_STREQ(sub_privkey_id(k), id);
    _cleanup_free_ char *payload = NULL, *sig = NULL;
    size_t len;
    const char *dg = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";
    CHECK_OK(sub_cosign_sign_image(k, "127.0.0.1:5000/app", dg, &payload, &len, &sig, &e), &e);
    const sub_pubkey *keys[] = {pub};
    sub_verify_record rec;
    CHECK_OK(sub_cosign_verify(keys, 1, payload, len, sig, dg, "127.0.0.1:5000/app",
                               SUB_IDENTITY_EXACT, &rec, &e),
             &e);
    CHECK_STREQ(rec.key_id, id);
    /* the signature verifies with OpenSSL's own PEM + EVP path */
    _cleanup_free_ char *pubtext = NULL;
    size_t publen;
    CHECK_OK(sub_read_file(pubp, 65536, &pubtext, &publen, &e), &e);
    BIO *b = BIO_new_mem_buf(pubtext, (int)publen);
    EVP_PKEY *opk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    _cleanup_free_ unsigned char *der = NULL;
    size_t dlen;
    CHECK_OK(sub_b64_decode(sig, strlen(sig), NULL, "sig", &der, &dlen, &e), &e);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    CHECK(opk && c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, opk) == 1 &&
          EVP_DigestVerify(c, der, dlen, (const unsigned char *)payload, len) == 1);
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(opk);
    /* wrong passphrase for our own file */
    _cleanup_privkey_ sub_privkey *k2 = NULL;
    CHECK_FAILS(sub_privkey_load_file(keyp, "s3cre", 5, &k2, &e), -EKEYREJECTED);
    /* never overwrite: both, or either, existing */
    char id2[SUB_DIGEST_MAX] = "";
    CHECK_FAILS(sub_key_generate_files(prefix, "x", 1, id2, &e), -EEXIST);
    CHECK(strstr(e.msg, keyp) && strstr(e.msg, pubp));
    _cleanup_free_ char *again = NULL;
    size_t alen;
    CHECK_OK(sub_read_file(keyp, 65536, &again, &alen, &e), &e);
    CHECK(again && alen == klen && memcmp(again, keytext, klen) == 0);
    CHECK(unlink(keyp) == 0);
    CHECK_FAILS(sub_key_generate_files(prefix, "x", 1, id2, &e), -EEXIST);
    CHECK(strstr(e.msg, pubp) && !strstr(e.msg, keyp));
    CHECK(!sub_path_exists(keyp));
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
}

/* Decrypt what we wrote without lib/sign: OpenSSL's scrypt (maxmem raised:
 * its 32 MiB default refuses N=32768, r=8) and libsodium's secretbox. */
TEST(sign_key_written_format_decrypts_independently) {
    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_generate(&k, &e), &e);
    if (!k) return;
    _cleanup_free_ char *pem = NULL;
    CHECK_OK(sub_privkey_encrypt(k, "pw", 2, &pem, &e), &e);
    if (!pem) return;
    CHECK(str_has_prefix(pem, "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    long jlen = 0;
    unsigned char *json = openssl_pem_der(pem, &jlen);
    if (!json) return;
    /* field order as cosign writes it */
    static const char head[] =
        "{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":32768,\"r\":8,\"p\":1},\"salt\":\"";
    CHECK(jlen > (long)sizeof head && memcmp(json, head, sizeof head - 1) == 0);
    _cleanup_json_ json_t *j = NULL;
    CHECK_OK(sub_json_parse((char *)json, (size_t)jlen, 65536, "key", &j, &e), &e);
    OPENSSL_free(json);
    const char *salt64 = json_string_value(json_object_get(json_object_get(j, "kdf"), "salt"));
    const char *nonce64 = json_string_value(json_object_get(json_object_get(j, "cipher"), "nonce"));
    const char *ct64 = json_string_value(json_object_get(j, "ciphertext"));
    CHECK_STREQ(json_string_value(json_object_get(json_object_get(j, "cipher"), "name")),
                "nacl/secretbox");
    if (!salt64 || !nonce64 || !ct64) return;
    unsigned char salt[64], nonce[64], ct[512];
    int sl = EVP_DecodeBlock(salt, (const unsigned char *)salt64, (int)strlen(salt64));
    int nl = EVP_DecodeBlock(nonce, (const unsigned char *)nonce64, (int)strlen(nonce64));
    int cl = EVP_DecodeBlock(ct, (const unsigned char *)ct64, (int)strlen(ct64));
    /* EVP_DecodeBlock counts '=' padding as zero bytes */
    sl -= (int)(strchr(salt64, '=') ? strlen(strchr(salt64, '=')) : 0);
    nl -= (int)(strchr(nonce64, '=') ? strlen(strchr(nonce64, '=')) : 0);
    cl -= (int)(strchr(ct64, '=') ? strlen(strchr(ct64, '=')) : 0);
    CHECK_INT(sl, 32);
    CHECK_INT(nl, 24);
    unsigned char key[32];
    CHECK(EVP_PBE_scrypt("pw", 2, salt, (size_t)sl, 32768, 8, 1, 64u << 20, key, sizeof key) == 1);
    unsigned char plain[512];
    CHECK(cl > 16 && crypto_secretbox_open_easy(plain, ct, (unsigned long long)cl, nonce, key) == 0);
    unsigned char *der = NULL;
    size_t dlen = 0;
    CHECK_OK(sub_privkey_pkcs8(k, &der, &dlen, &e), &e);
    CHECK(der && (int)dlen == cl - 16 && memcmp(plain, der, dlen) == 0);
    sub_secret_free(der, dlen);
    /* and OpenSSL reads that plaintext as the same PKCS#8 EC key */
    const unsigned char *p = plain;
    EVP_PKEY *pk = d2i_AutoPrivateKey(NULL, &p, cl - 16);
    CHECK(pk && EVP_PKEY_is_a(pk, "EC"));
    EVP_PKEY_free(pk);
}

TEST(sign_pubkey_load_errors) {
    sub_err e = {0};
    sub_pubkey *k = NULL;
    _cleanup_free_ char *priv = unit_read_shared(V "private-key.pkcs8.pem", NULL);
    CHECK_FAILS(sub_pubkey_from_pem(priv, strlen(priv), "x.pem", &k, &e), -EBADMSG);
    CHECK(strstr(e.msg, "private key") != NULL);
    CHECK_FAILS(sub_pubkey_from_pem("hello", 5, "x.pub", &k, &e), -EBADMSG);
    CHECK(strstr(e.msg, "not a PEM") != NULL);
    /* an RSA key is refused by type */
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, rsa);
    char *txt;
    long n = BIO_get_mem_data(b, &txt);
    CHECK_FAILS(sub_pubkey_from_pem(txt, (size_t)n, "rsa.pub", &k, &e), -EBADMSG);
    CHECK(strstr(e.msg, "RSA") != NULL);
    BIO_free(b);
    EVP_PKEY_free(rsa);
    /* two keys in one file */
    _cleanup_free_ char *pub = unit_read_shared(V "cosign.pub", NULL);
    _cleanup_free_ char *two = xasprintf("%s%s", pub, pub);
    CHECK_FAILS(sub_pubkey_from_pem(two, strlen(two), "two.pub", &k, &e), -EBADMSG);
    /* a comment before the block is fine, and the PEM round-trips */
    _cleanup_free_ char *c = xasprintf("# test key\n%s", pub);
    CHECK_OK(sub_pubkey_from_pem(c, strlen(c), "c.pub", &k, &e), &e);
    if (k) {
        _cleanup_free_ char *out = sub_pubkey_to_pem(k);
        CHECK_STREQ(out, pub);
        CHECK_STREQ(sub_pubkey_source(k), "c.pub");
        sub_pubkey_free(k);
    }
}

static void write_mode(const char *path, const char *s, mode_t mode) {
    sub_err e = {0};
    CHECK_OK(sub_write_file_atomic(path, s, strlen(s), mode, &e), &e);
}

/* Save, clear and restore SUBSTRATE_PASSPHRASE around a test. */
static char *saved_env;
static void env_save(void) {
    const char *v = getenv("SUBSTRATE_PASSPHRASE");
    saved_env = v ? xstrdup(v) : NULL;
    unsetenv("SUBSTRATE_PASSPHRASE");
}
static void env_restore(void) {
    if (saved_env) setenv("SUBSTRATE_PASSPHRASE", saved_env, 1);
    else unsetenv("SUBSTRATE_PASSPHRASE");
    free(saved_env);
    saved_env = NULL;
}

TEST(sign_passphrase_sources_in_order) {
    env_save();
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *prefix = sub_path_join(dir, "k");
    _cleanup_free_ char *passf = xasprintf("%s.pass", prefix);
    _cleanup_free_ char *explicitf = sub_path_join(dir, "explicit.txt");
    write_mode(passf, "beside\n", 0600);
    write_mode(explicitf, "from-file\r\n", 0644);
    sub_passphrase p = {0};

    sub_pass_opts o = {.file = explicitf, .key_prefix = prefix, .what = "k.key"};
    setenv("SUBSTRATE_PASSPHRASE", "from-env", 1);
    CHECK_OK(sub_passphrase_get(&o, &p, &e), &e);
    CHECK_STREQ(p.data, "from-file");
    CHECK_INT(p.source, SUB_PASS_FILE);
    sub_passphrase_free(&p);

    o.file = NULL;
    CHECK_OK(sub_passphrase_get(&o, &p, &e), &e);
    CHECK_STREQ(p.data, "from-env");
    CHECK_INT(p.source, SUB_PASS_ENV);
    sub_passphrase_free(&p);

    setenv("SUBSTRATE_PASSPHRASE", "", 1); /* set but empty: an empty passphrase */
    CHECK_OK(sub_passphrase_get(&o, &p, &e), &e);
    CHECK(p.data && p.len == 0 && p.source == SUB_PASS_ENV);
    sub_passphrase_free(&p);

    unsetenv("SUBSTRATE_PASSPHRASE");
    CHECK_OK(sub_passphrase_get(&o, &p, &e), &e);
    CHECK_STREQ(p.data, "beside");
    CHECK_INT(p.source, SUB_PASS_BESIDE_KEY);
    CHECK_STREQ(p.origin, passf);
    sub_passphrase_free(&p);

    /* group/world access to the .pass file is refused, with the fix */
    CHECK(chmod(passf, 0640) == 0);
    CHECK_FAILS(sub_passphrase_get(&o, &p, &e), -EPERM);
    CHECK(strstr(e.msg, passf) && strstr(e.msg, "chmod 600"));
    CHECK(p.data == NULL);
    CHECK(chmod(passf, 0604) == 0);
    CHECK_FAILS(sub_passphrase_get(&o, &p, &e), -EPERM);
    /* a symlink is refused too */
    CHECK(unlink(passf) == 0);
    CHECK(symlink(explicitf, passf) == 0);
    CHECK_FAILS(sub_passphrase_get(&o, &p, &e), -ELOOP);
    CHECK(unlink(passf) == 0);

    /* a file longer than a passphrase may be is refused, never cut short:
     * the longest passphrase plus CRLF, then more */
    sub_buf big = SUB_BUF_INIT;
    for (int i = 0; i < SUB_SIGN_MAX_PASSPHRASE; i++) sub_buf_putc(&big, 'A');
    sub_buf_puts(&big, "\r\n");
    write_mode(explicitf, sub_buf_str(&big), 0600);
    o.file = explicitf;
    CHECK_OK(sub_passphrase_get(&o, &p, &e), &e);
    CHECK_INT(p.len, SUB_SIGN_MAX_PASSPHRASE);
    sub_passphrase_free(&p);
    sub_buf_puts(&big, "second line");
    write_mode(explicitf, sub_buf_str(&big), 0600);
    CHECK_FAILS(sub_passphrase_get(&o, &p, &e), -E2BIG);
    CHECK(p.data == NULL);
    sub_buf_free(&big);

    /* a missing --passphrase-file is an error, not a fall-through */
    o.file = "/nonexistent/pass";
    setenv("SUBSTRATE_PASSPHRASE", "from-env", 1);
    CHECK_FAILS(sub_passphrase_get(&o, &p, &e), -ENOENT);
    CHECK(strstr(e.msg, "/nonexistent/pass") != NULL);
    env_restore();
}

/* $SUBSTRATE_PASSPHRASE has the same cap as a file: the longest passphrase
 * is taken, one byte more refused. */
TEST(sign_passphrase_env_capped) {
    env_save();
    sub_err e = {0};
    sub_passphrase p = {0};
    _cleanup_free_ char *prefix = sub_path_join(unit_tmpdir(), "none");
    sub_pass_opts o = {.key_prefix = prefix, .what = "k.key"};
    char big[SUB_SIGN_MAX_PASSPHRASE + 2];
    memset(big, 'A', SUB_SIGN_MAX_PASSPHRASE);
    big[SUB_SIGN_MAX_PASSPHRASE] = 0;
    setenv("SUBSTRATE_PASSPHRASE", big, 1);
    CHECK_OK(sub_passphrase_get(&o, &p, &e), &e);
    CHECK_INT(p.len, SUB_SIGN_MAX_PASSPHRASE);
    sub_passphrase_free(&p);
    big[SUB_SIGN_MAX_PASSPHRASE] = 'A';
    big[SUB_SIGN_MAX_PASSPHRASE + 1] = 0;
    setenv("SUBSTRATE_PASSPHRASE", big, 1);
    CHECK_FAILS(sub_passphrase_get(&o, &p, &e), -E2BIG);
    CHECK(p.data == NULL);
    env_restore();
}

TEST(sign_key_prefix) {
    _cleanup_free_ char *a = sub_key_prefix("dir/x.key");
    _cleanup_free_ char *b = sub_key_prefix("dir/x.pem");
    _cleanup_free_ char *c = sub_key_prefix(".key");
    CHECK_STREQ(a, "dir/x");
    CHECK_STREQ(b, "dir/x.pem");
    CHECK_STREQ(c, ".key");
}

TEST(sign_trust_store_loads_every_pub) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *t = sub_path_join(dir, "trust");
    CHECK(mkdir(t, 0755) == 0);
    _cleanup_free_ char *a = unit_read_shared(V "cosign.pub", NULL);
    _cleanup_free_ char *b = unit_read_shared(V "upstream-containers-image/cosign.pub", NULL);
    _cleanup_free_ char *pa = sub_path_join(t, "b-vector.pub"), *pb = sub_path_join(t, "a-upstream.pub");
    _cleanup_free_ char *px = sub_path_join(t, "notes.txt"), *ph = sub_path_join(t, ".hidden.pub");
    write_mode(pa, a, 0644);
    write_mode(pb, b, 0644);
    write_mode(px, "not a key", 0644);
    write_mode(ph, "not a key either", 0644);
    sub_pubkey **keys = NULL;
    size_t n = 0;
    CHECK_OK(sub_trust_load(t, &keys, &n, &e), &e);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STREQ(sub_pubkey_source(keys[0]), pb); /* sorted by name */
        CHECK_STREQ(sub_pubkey_source(keys[1]), pa);
        CHECK(keys[2] == NULL);
        /* and they verify the vector through the array */
        size_t len;
        _cleanup_free_ char *payload = unit_read_shared(V "payload.json", &len);
        _cleanup_free_ char *sig = unit_read_shared(V "signature.b64", NULL);
        sig[strcspn(sig, "\n")] = 0;
        sub_verify_record rec;
        CHECK_OK(sub_cosign_verify((const sub_pubkey *const *)keys, n, payload, len, sig,
                                   "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455",
                                   "127.0.0.1:5000/hello", SUB_IDENTITY_EXACT, &rec, &e),
                 &e);
        CHECK_STREQ(rec.key_source, pa);
    }
    sub_pubkeys_free(keys);
    keys = NULL;
    /* a group-writable key file could be swapped: refused */
    CHECK(chmod(pa, 0664) == 0);
    CHECK_FAILS(sub_trust_load(t, &keys, &n, &e), -EPERM);
    CHECK(strstr(e.msg, pa) != NULL);
    CHECK(chmod(pa, 0644) == 0);
    /* an entry, or the store, owned by another (non-root) user: that user
     * could rewrite it and plant a key, whatever its mode */
    if (geteuid() != 0) unit_skip_part("entries owned by another user", "needs root to chown");
    else {
        CHECK(chown(pa, 65534, 65534) == 0);
        CHECK_FAILS(sub_trust_load(t, &keys, &n, &e), -EPERM);
        CHECK(strstr(e.msg, pa) && strstr(e.msg, "65534") && strstr(e.msg, "chown"));
        CHECK(chown(pa, 0, 0) == 0);
        /* the same through a symlink to a file that user owns */
        _cleanup_free_ char *theirs = sub_path_join(dir, "theirs.pub");
        _cleanup_free_ char *link = sub_path_join(t, "link.pub");
        write_mode(theirs, a, 0644);
        CHECK(chown(theirs, 65534, 65534) == 0);
        CHECK(symlink(theirs, link) == 0);
        CHECK_FAILS(sub_trust_load(t, &keys, &n, &e), -EPERM);
        CHECK(strstr(e.msg, link) != NULL);
        CHECK(unlink(link) == 0);
        CHECK(chown(t, 65534, 65534) == 0);
        CHECK_FAILS(sub_trust_load(t, &keys, &n, &e), -EPERM);
        CHECK(strstr(e.msg, t) != NULL);
        CHECK(chown(t, 0, 0) == 0);
        CHECK_OK(sub_trust_load(t, &keys, &n, &e), &e);
        sub_pubkeys_free(keys);
        keys = NULL;
    }
    /* a .pub that is not a key: error naming it */
    _cleanup_free_ char *pbad = sub_path_join(t, "c-bad.pub");
    write_mode(pbad, "garbage", 0644);
    CHECK_FAILS(sub_trust_load(t, &keys, &n, &e), -EBADMSG);
    CHECK(strstr(e.msg, pbad) != NULL);
    /* missing directory */
    _cleanup_free_ char *none = sub_path_join(dir, "none");
    CHECK_FAILS(sub_trust_load(none, &keys, &n, &e), -ENOENT);
    CHECK(strstr(e.msg, "--key") != NULL);
    /* default location follows $SUBSTRATE_STATE */
    const char *old = getenv("SUBSTRATE_STATE");
    _cleanup_free_ char *keep = old ? xstrdup(old) : NULL;
    setenv("SUBSTRATE_STATE", "/x/state", 1);
    _cleanup_free_ char *td = sub_trust_dir();
    CHECK_STREQ(td, "/x/state/trust");
    if (keep) setenv("SUBSTRATE_STATE", keep, 1);
    else unsetenv("SUBSTRATE_STATE");
}

/* A cosign key file whose scrypt parameters are N, r, p (the ciphertext is
 * junk: only the cost limits and the passphrase check are reached). */
static char *scrypt_key_pem(long long N, long long r, long long p) {
    _cleanup_free_ char *json = xasprintf(
        "{\"kdf\":{\"name\":\"scrypt\",\"params\":{\"N\":%lld,\"r\":%lld,\"p\":%lld},\"salt\":"
        "\"AAAAAAAAAAA=\"},\"cipher\":{\"name\":\"nacl/secretbox\",\"nonce\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},\"ciphertext\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
        N, r, p);
    _cleanup_free_ char *b64 = sub_b64_encode(json, strlen(json));
    return xasprintf("-----BEGIN " SUB_COSIGN_KEY_LABEL "-----\n%s\n-----END " SUB_COSIGN_KEY_LABEL
                     "-----\n",
                     b64);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* scrypt costs 128*N*r bytes of memory and p times that of work: a hostile
 * key file must not make us burn either before "wrong passphrase". Each case
 * is caught by one bound alone, so each bound has a case of its own. */
TEST(sign_key_scrypt_cost_bounded) {
    static const struct {
        long long N, r, p;
        const char *why; /* NULL: within the limits (wrong passphrase) */
    } t[] = {
        {1LL << 21, 1, 16, "4096 MiB of work (128*N*r*p)"}, /* memory 256 MiB: only p makes it costly */
        {1LL << 21, 1, 3, "768 MiB of work"},
        {1LL << 22, 64, 1, "32768 MiB of memory"}, /* N and r each within range */
        {1LL << 19, 8, 1, "512 MiB of memory"},    /* work 512 MiB is allowed: the memory cap alone */
        {1LL << 23, 1, 1, "out of range"},
        {1024, 8, 17, "out of range"},
        {1024, 8, 16, NULL}, /* 16 MiB of work: p up to 16 is fine when cheap */
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        _cleanup_free_ char *pem = scrypt_key_pem(t[i].N, t[i].r, t[i].p);
        sub_err e = {0};
        sub_privkey *k = NULL;
        double t0 = now_s();
        int r = sub_privkey_decrypt(pem, strlen(pem), "pw", 2, "t.key", &k, &e);
        double dt = now_s() - t0;
        sub_privkey_free(k);
        const char *want = t[i].why ? t[i].why : "wrong passphrase";
        if (r >= 0 || !strstr(e.msg, want) || (t[i].why && r != -EBADMSG))
            unit_fail(__FILE__, __LINE__, "case %zu (N=%lld r=%lld p=%lld): r=%d \"%s\" (wanted \"%s\")",
                      i, t[i].N, t[i].r, t[i].p, r, e.msg, want);
        if (t[i].why && (dt > 1.0 || sub_err_exit_code(&e) != SUB_EXIT_USAGE))
            unit_fail(__FILE__, __LINE__, "case %zu: refused after %.2f s with exit class %d", i, dt,
                      sub_err_exit_code(&e));
    }
}

/* PEM "PUBLIC KEY" of pkey, encoded by OpenSSL. */
static char *openssl_pub_pem(EVP_PKEY *pkey) {
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, pkey);
    char *txt;
    long n = BIO_get_mem_data(b, &txt);
    char *s = xstrndup(txt, (size_t)n);
    BIO_free(b);
    return s;
}

/* One P-256 key written with explicit curve parameters has another SPKI DER,
 * hence would have another key id than the same key with the curve named:
 * refused (as cosign does), naming the fix, for public and private keys. */
TEST(sign_key_explicit_curve_parameters_refused) {
    sub_err e = {0};
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pk) {
        unit_fail(__FILE__, __LINE__, "EC keygen");
        return;
    }
    _cleanup_free_ char *named = openssl_pub_pem(pk);
    CHECK(EVP_PKEY_set_utf8_string_param(pk, "encoding", "explicit") == 1);
    _cleanup_free_ char *expl = openssl_pub_pem(pk);
    CHECK(strcmp(named, expl) != 0); /* else the test proves nothing */
    sub_pubkey *k = NULL;
    CHECK_OK(sub_pubkey_from_pem(named, strlen(named), "named.pub", &k, &e), &e);
    sub_pubkey_free(k);
    k = NULL;
    CHECK_FAILS(sub_pubkey_from_pem(expl, strlen(expl), "explicit.pub", &k, &e), -EBADMSG);
    CHECK(k == NULL);
    CHECK(strstr(e.msg, "explicit.pub") && strstr(e.msg, "explicit curve parameters") &&
          strstr(e.msg, "-param_enc named_curve"));
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    /* the private half in PKCS#8 with explicit parameters: refused too */
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(pk, &der);
    CHECK(n > 0);
    sub_privkey *sk = NULL;
    if (n > 0)
        CHECK_FAILS(sub_privkey_from_pkcs8(der, (size_t)n, &sk, &e), -EBADMSG);
    CHECK(sk == NULL && strstr(e.msg, "explicit curve parameters"));
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
}

/* Only RSA was tested: an EC key on another curve is refused by its curve. */
TEST(sign_key_other_curve_refused_naming_p256) {
    sub_err e = {0};
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (!pk) {
        unit_fail(__FILE__, __LINE__, "EC keygen");
        return;
    }
    _cleanup_free_ char *pem = openssl_pub_pem(pk);
    sub_pubkey *k = NULL;
    CHECK_FAILS(sub_pubkey_from_pem(pem, strlen(pem), "p384.pub", &k, &e), -EBADMSG);
    CHECK(k == NULL && strstr(e.msg, "p384.pub") && strstr(e.msg, "secp384r1") &&
          strstr(e.msg, "only P-256"));
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(pk, &der);
    sub_privkey *sk = NULL;
    if (n > 0) CHECK_FAILS(sub_privkey_from_pkcs8(der, (size_t)n, &sk, &e), -EBADMSG);
    CHECK(sk == NULL && strstr(e.msg, "only P-256"));
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
}
