/* lib/sign/artifact.c, trust.c, platformkey.c: the cosign signature artifact
 * (byte-identical to the vector), adding signatures, the trust store add and
 * remove, the platform key and the beside-first passphrase order. */
#include "substrate/cosign-registry.h"
#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/sign.h"
#include "unit.h"
#include <stdlib.h>
#include <sys/stat.h>

#define V "vectors/cosign/"

static mode_t mode_of(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

TEST(sign_artifact_first_signature_is_byte_identical_to_vector) {
    /* payload.json signed (signature.b64): the manifest and config we build
     * must be exactly the bytes of sig-manifest.json / sig-config.json */
    sub_err e = {0};
    size_t plen, mlen_want, clen_want;
    _cleanup_free_ char *payload = unit_read_shared(V "payload.json", &plen);
    _cleanup_free_ char *sig = unit_read_shared_line(V "signature.b64");
    _cleanup_free_ char *want_m = unit_read_shared(V "sig-manifest.json", &mlen_want);
    _cleanup_free_ char *want_c = unit_read_shared(V "sig-config.json", &clen_want);
    while (mlen_want && want_m[mlen_want - 1] == '\n') want_m[--mlen_want] = 0;
    while (clen_want && want_c[clen_want - 1] == '\n') want_c[--clen_want] = 0;
    char pd[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(payload, plen, pd, &e), &e);
    _cleanup_free_ char *m = NULL, *c = NULL;
    size_t mlen = 0, clen = 0;
    CHECK_OK(sub_cosign_artifact_add(NULL, 0, pd, plen, sig, &m, &mlen, &c, &clen, &e), &e);
    CHECK_STREQ(m, want_m);
    CHECK_STREQ(c, want_c);
    CHECK_INT(mlen, mlen_want);
    /* and its digest is the vector's */
    _cleanup_free_ char *want_md = unit_read_shared_line(V "sig-manifest.digest");
    char md[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(m, mlen, md, &e), &e);
    CHECK_STREQ(md, want_md);
}

TEST(sign_artifact_adding_keeps_existing_layers) {
    /* skopeo's copy (other key order, other config) gets a second layer: the
     * first is kept as it was, the config lists both diff_ids and two history
     * entries */
    sub_err e = {0};
    size_t olen;
    _cleanup_free_ char *old = unit_read_shared(V "skopeo-copied-sig-manifest.json", &olen);
    const char *nd = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    _cleanup_free_ char *m = NULL, *c = NULL;
    size_t mlen = 0, clen = 0;
    CHECK_OK(sub_cosign_artifact_add(old, olen, nd, 42, "TUVVQ0lRQ2N2NFlw", &m, &mlen, &c, &clen, &e),
             &e);
    if (!m) return;
    _cleanup_manifest_ sub_manifest pm = {0};
    CHECK_OK(sub_manifest_parse(m, mlen, NULL, &pm, &e), &e);
    CHECK_INT(pm.n_layers, 2);
    if (pm.n_layers != 2) return;
    CHECK_STREQ(pm.layers[0].digest,
                "sha256:7870c54de2030dac900c5b097129417725ce294598bba348ec8594437fcd073d");
    CHECK_STREQ(sub_desc_annotation(&pm.layers[0], SUB_COSIGN_SIG_ANNOTATION),
                "MEUCIQCcv4Yp4qqtE2JQGL8LO2ju93mye58rujMzo/PVcCZ7+gIgIjxcvZHGX5ka6e6SD0JRwrYAzV4c1fHv5zmdqXZD7V0=");
    CHECK_STREQ(pm.layers[1].digest, nd);
    CHECK_INT(pm.layers[1].size, 42);
    CHECK_STREQ(pm.layers[1].media_type, SUB_MT_COSIGN_SIMPLESIGNING);
    CHECK_STREQ(sub_desc_annotation(&pm.layers[1], SUB_COSIGN_SIG_ANNOTATION), "TUVVQ0lRQ2N2NFlw");
    /* the kept layer's JSON is the original's, in its key order */
    CHECK(strstr(m, "{\"mediaType\":\"application/vnd.dev.cosign.simplesigning.v1+json\",\"digest\":"
                    "\"sha256:7870c54de2030dac900c5b097129417725ce294598bba348ec8594437fcd073d\","
                    "\"size\":236") != NULL);
    char cd[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(c, clen, cd, &e), &e);
    CHECK_STREQ(pm.config.digest, cd);
    CHECK_INT(pm.config.size, clen);
    _cleanup_json_ json_t *cj = NULL;
    CHECK_OK(sub_json_parse(c, clen, 1 << 20, "config", &cj, &e), &e);
    json_t *ids = json_object_get(json_object_get(cj, "rootfs"), "diff_ids");
    CHECK_INT(json_array_size(ids), 2);
    CHECK_STREQ(json_string_value(json_array_get(ids, 1)), nd);
    CHECK_INT(json_array_size(json_object_get(cj, "history")), 2);
}

TEST(sign_artifact_refuses_bad_input) {
    sub_err e = {0};
    _cleanup_free_ char *m = NULL, *c = NULL;
    size_t mlen = 0, clen = 0;
    const char *nd = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const char *junk = "{\"schemaVersion\":2,\"layers\":[]}"; /* no config */
    CHECK_FAILS(sub_cosign_artifact_add(junk, strlen(junk), nd, 1, "AA==", &m, &mlen, &c, &clen, &e),
                -EBADMSG);
    CHECK(strstr(e.msg, "existing signature manifest") != NULL);
    CHECK(m == NULL && c == NULL);
    CHECK_FAILS(sub_cosign_artifact_add(NULL, 0, "sha256:xyz", 1, "AA==", &m, &mlen, &c, &clen, &e),
                -EINVAL);
    CHECK_FAILS(sub_cosign_artifact_add(NULL, 0, nd, 1, "", &m, &mlen, &c, &clen, &e), -EINVAL);
    const char *idx = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                      "\"manifests\":[]}";
    CHECK_FAILS(sub_cosign_artifact_add(idx, strlen(idx), nd, 1, "AA==", &m, &mlen, &c, &clen, &e),
                -EBADMSG);
}

TEST(sign_trust_add_and_remove) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *t = sub_path_join(dir, "state/trust");
    _cleanup_free_ char *src = unit_shared(V "cosign.pub");
    char id[SUB_DIGEST_MAX] = "";
    _cleanup_free_ char *dest = NULL;
    CHECK_INT(sub_trust_add(t, src, id, &dest, &e), 1);
    _cleanup_pubkey_ sub_pubkey *k = NULL;
    CHECK_OK(sub_pubkey_load_file(src, &k, &e), &e);
    if (!k || !dest) return;
    CHECK_STREQ(id, sub_pubkey_id(k));
    _cleanup_free_ char *want = xasprintf("%s/%s.pub", t, sub_digest_hex(id));
    CHECK_STREQ(dest, want);
    CHECK_INT(mode_of(dest), 0644);
    CHECK_INT(sub_trust_add(t, src, NULL, NULL, &e), 0); /* already there */
    /* the entry loads back to the same key */
    sub_pubkey **keys = NULL;
    size_t n = 0;
    CHECK_OK(sub_trust_load(t, &keys, &n, &e), &e);
    CHECK_INT(n, 1);
    if (n == 1) CHECK_STREQ(sub_pubkey_id(keys[0]), id);
    sub_pubkeys_free(keys);
    /* a copy under another name is removed too; a non-key is refused as input */
    _cleanup_free_ char *copy = sub_path_join(t, "release.pub");
    CHECK_OK(sub_copy_file(src, copy, 0644, &e), &e);
    CHECK_FAILS(sub_trust_add(t, "/etc/hostname", NULL, NULL, &e), -EBADMSG);
    CHECK_INT(sub_trust_remove(t, sub_digest_hex(id), &e), 2);
    CHECK(!sub_path_exists(dest) && !sub_path_exists(copy));
    CHECK_FAILS(sub_trust_remove(t, id, &e), -ENOENT);
    CHECK(strstr(e.msg, id) != NULL);
    CHECK_FAILS(sub_trust_remove(t, "nope", &e), -EINVAL);
}

TEST(sign_platform_key_made_once_and_trusted) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *state = sub_path_join(dir, "state");
    bool created = false;
    char id[SUB_DIGEST_MAX] = "";
    CHECK_OK(sub_platform_key_ensure(state, &created, id, &e), &e);
    CHECK(created);
    _cleanup_free_ char *keyp = sub_platform_key_path(state);
    _cleanup_free_ char *keys = sub_path_join(state, "keys");
    _cleanup_free_ char *passp = sub_path_join(state, "keys/cosign.pass");
    _cleanup_free_ char *pubp = sub_path_join(state, "keys/cosign.pub");
    CHECK_INT(mode_of(keys), 0700);
    CHECK_INT(mode_of(keyp), 0600);
    CHECK_INT(mode_of(passp), 0600);
    CHECK_INT(mode_of(pubp), 0644);
    _cleanup_free_ char *trusted = xasprintf("%s/trust/%s.pub", state, sub_digest_hex(id));
    CHECK(sub_path_exists(trusted));
    /* the passphrase beside it opens the key, and wins over the environment
     * when beside_first is set */
    const char *old_env = getenv("SUBSTRATE_PASSPHRASE");
    _cleanup_free_ char *saved = old_env ? xstrdup(old_env) : NULL;
    setenv("SUBSTRATE_PASSPHRASE", "not-it", 1);
    _cleanup_free_ char *prefix = sub_key_prefix(keyp);
    sub_pass_opts po = {.key_prefix = prefix, .beside_first = true};
    sub_passphrase p = {0};
    CHECK_OK(sub_passphrase_get(&po, &p, &e), &e);
    CHECK_INT(p.source, SUB_PASS_BESIDE_KEY);
    CHECK(p.len >= 40);
    sub_privkey *k = NULL;
    CHECK_OK(sub_privkey_load_file(keyp, p.data, p.len, &k, &e), &e);
    if (k) CHECK_STREQ(sub_privkey_id(k), id);
    sub_privkey_free(k);
    sub_passphrase_free(&p);
    po.beside_first = false;
    CHECK_OK(sub_passphrase_get(&po, &p, &e), &e);
    CHECK_INT(p.source, SUB_PASS_ENV);
    sub_passphrase_free(&p);
    if (saved) setenv("SUBSTRATE_PASSPHRASE", saved, 1);
    else unsetenv("SUBSTRATE_PASSPHRASE");
    /* second call: nothing new */
    _cleanup_free_ char *before = NULL;
    size_t blen;
    CHECK_OK(sub_read_file(keyp, 1 << 16, &before, &blen, &e), &e);
    char id2[SUB_DIGEST_MAX] = "";
    CHECK_OK(sub_platform_key_ensure(state, &created, id2, &e), &e);
    CHECK(!created);
    CHECK_STREQ(id2, id);
    _cleanup_free_ char *after = NULL;
    size_t alen;
    CHECK_OK(sub_read_file(keyp, 1 << 16, &after, &alen, &e), &e);
    CHECK(before && after && blen == alen && memcmp(before, after, blen) == 0);
    /* a stale passphrase file without a key is refused, nothing written */
    _cleanup_free_ char *s2 = sub_path_join(dir, "state2");
    _cleanup_free_ char *k2 = sub_path_join(s2, "keys");
    CHECK_OK(sub_mkdir_p(k2, 0700, &e), &e);
    _cleanup_free_ char *p2 = sub_path_join(k2, "cosign.pass");
    CHECK_OK(sub_write_file_atomic(p2, "x", 1, 0600, &e), &e);
    CHECK_FAILS(sub_platform_key_ensure(s2, &created, NULL, &e), -EEXIST);
    _cleanup_free_ char *kp2 = sub_path_join(k2, "cosign.key");
    CHECK(!sub_path_exists(kp2));
}

/* The expected identity is compared as given: one too long for the result
 * record was cut short and the cut string compared, so a signature for
 * another (prefix) repository matched while one for the given name did not.
 * It is refused before the registry is asked anything. */
TEST(sign_verify_registry_refuses_an_identity_it_cannot_hold) {
    sub_err e = {0};
    _cleanup_free_ char *pp = unit_shared(V "cosign.pub");
    _cleanup_pubkey_ sub_pubkey *k = NULL;
    CHECK_OK(sub_pubkey_load_file(pp, &k, &e), &e);
    if (!k) return;
    const sub_pubkey *keys[] = {k};
    sub_reg_opts ro = {.host = "127.0.0.1:1", .timeout_s = 5};
    _cleanup_reg_ sub_reg *r = NULL;
    CHECK_OK(sub_reg_new(&ro, &r, &e), &e);
    if (!r) return;
    sub_cosign_verify_result res;
    char id[700];
    memset(id, 'a', sizeof id - 1);
    memcpy(id, "127.0.0.1:5000/", 15);
    id[sizeof id - 1] = 0;
    CHECK_FAILS(sub_cosign_verify_registry(r, "hello",
                                           "sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455",
                                           keys, 1, id, SUB_IDENTITY_EXACT, &res, &e),
                -ENAMETOOLONG);
    CHECK(strstr(e.msg, "identity") != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    sub_cosign_verify_result_free(&res);
}
