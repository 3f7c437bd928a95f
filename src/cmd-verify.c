/* substrate verify: check an image's cosign signatures in the registry (or,
 * with --offline, a payload and signature on disk). */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/cosign-registry.h"
#include "substrate/fs.h"
#include "substrate/attest.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate verify REF@sha256:<hex> [--key FILE.pub]...\n"
          "                        [--identity REF | --repo-prefix PREFIX | --any-repo] [--json]\n"
          "                        [--provenance]\n"
          "       substrate verify --offline [--key FILE.pub]... --payload FILE\n"
          "                        --signature FILE --digest sha256:<hex>\n"
          "                        (--identity REF | --repo-prefix PREFIX | --any-repo)\n"
          "                        [--json]\n"
          "\n"
          "Verify cosign key-based signatures. A signature is accepted when ALL of these hold:\n"
          "  layer      the payload bytes hash to the signature layer's digest (registry mode)\n"
          "  signature  it verifies over the exact payload bytes with one of the trusted keys\n"
          "  digest     the payload names the image's manifest digest\n"
          "  identity   the payload's docker-reference matches the identity policy\n"
          "The checks run in that order and the first failure is the reason reported; the\n"
          "payload is only parsed once its signature has verified.\n"
          "\n"
          "Registry mode (REF given): REF must carry a digest (a tag-only reference is\n"
          "refused). The signature manifest is fetched by its tag sha256-<hex>.sig in the\n"
          "image's repository and every simple-signing layer in it is checked, its payload\n"
          "blob fetched by digest (and checked against it, at most 256 KiB). One layer that\n"
          "passes is enough; with several, each is reported. Only the layers and payloads\n"
          "are read: the signature manifest's config and its JSON key order play no part (a\n"
          "signature copied by skopeo rewrites both and still verifies).\n"
          "\n"
          "Identity policy (which repository the signature must be for):\n"
          "  (default)            exact: the payload names \"registry/repository\" of REF,\n"
          "                       compared as written, byte for byte. No host equivalence:\n"
          "                       \"localhost:5000/x\" is not \"127.0.0.1:5000/x\".\n"
          "  --identity REF       exact, but for this \"registry/repository\" instead\n"
          "  --repo-prefix P      the payload's repository is P or lies under P/\n"
          "                       (--identity-prefix is the same option)\n"
          "  --any-repo           not checked: for a signature copied to a mirror, which still\n"
          "                       names the original repository. Key, layer and digest checks\n"
          "                       still apply.\n"
          "\n"
          "Keys: every --key FILE.pub (PEM \"PUBLIC KEY\", ECDSA P-256); without --key, every\n"
          "*.pub in the trust store $SUBSTRATE_STATE/trust/ (see `substrate key trust`). Keys\n"
          "are named by key id (sha256 of the public key's SPKI DER) in every message.\n"
          "\n"
          "Offline mode (--offline): the payload and signature come from files (for example\n"
          "the layer blob and the dev.cosignproject.cosign/signature annotation), and the\n"
          "identity option is required.\n"
          "\n"
          "Options:\n"
          "      --key FILE.pub          a trusted public key; repeat for several\n"
          "      --identity REF          see above\n"
          "      --repo-prefix P         see above\n"
          "      --any-repo              see above\n"
          "      --json                  print the verification record on stdout: the image,\n"
          "                              the result, and per signature each check (layer,\n"
          "                              signature, digest, identity) with its result\n"
          "      --provenance            also require an SLSA provenance v1 attestation (tag\n"
          "                              sha256-<hex>.att, as `cosign attest` stores it: a\n"
          "                              DSSE envelope signed by a trusted key, an in-toto\n"
          "                              statement whose subject is this digest) and print the\n"
          "                              source commit, image spec and build command it names\n"
          "      --offline               verify local files; then:\n"
          "      --payload FILE          the simple-signing payload, exact bytes\n"
          "      --signature FILE        the signature, base64 of ASN.1 DER\n"
          "      --digest sha256:<hex>   the image (manifest) digest the payload must name\n"
          "  -h, --help                  show this help\n"
          "\n"
          "Output: \"Verified OK: REF signed by key sha256:...\" on success. Otherwise the\n"
          "reason: no signature, no trusted key matched (made by another key, or signature or\n"
          "payload altered), layer digest mismatch, digest mismatch (a signature for another\n"
          "image), identity mismatch, malformed signature or malformed payload.\n"
          "\n"
          "Environment: SUBSTRATE_STATE (trust store), SUBSTRATE_REGISTRY (the registry when\n"
          "REF names none), SUBSTRATE_REGISTRY_USER, SUBSTRATE_REGISTRY_PASSWORD.\n"
          "\n"
          "Exit codes: 0 verified; 1 refused (including: no signature); 2 usage or input error\n"
          "(REF without a digest, unreadable key, empty trust store); 3 environment error\n"
          "(registry unreachable, no trust store).\n"
          "\n"
          "Examples:\n"
          "  substrate verify 127.0.0.1:5000/hello@sha256:9a119f34...44455\n"
          "  substrate verify hello@sha256:... --key release.pub --json\n"
          "  substrate verify 127.0.0.1:5000/mirror/hello@sha256:... --any-repo\n"
          "  substrate verify --offline --key release.pub --payload payload.json \\\n"
          "      --signature signature.b64 --identity 127.0.0.1:5000/hello \\\n"
          "      --digest sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455\n",
          f);
}

static int read_signature(const char *path, char **out, sub_err *e) {
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_SIGN_MAX_SIG_B64, &s, &len, e);
    if (r < 0) return sub_sign_file_error(r, e);
    size_t a = 0;
    while (a < len && strchr(" \t\r\n", s[a])) a++;
    while (len > a && strchr(" \t\r\n", s[len - 1])) len--;
    if (memchr(s + a, 0, len - a))
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG, "%s contains NUL bytes: not a base64 signature",
                            path);
    *out = xstrndup(s + a, len - a);
    return 0;
}

/* Keys from --key files, else the trust store. */
static int load_keys(char **keyfiles, sub_pubkey ***out, size_t *nout, sub_err *e) {
    size_t nkeys = strv_len(keyfiles);
    sub_pubkey **keys = NULL;
    if (nkeys) {
        keys = xcalloc(nkeys + 1, sizeof *keys);
        for (size_t i = 0; i < nkeys; i++)
            if (sub_pubkey_load_file(keyfiles[i], &keys[i], e) < 0) {
                sub_pubkeys_free(keys);
                return e->code;
            }
    } else {
        _cleanup_free_ char *dir = sub_trust_dir();
        if (sub_trust_load(dir, &keys, &nkeys, e) < 0) return e->code;
        if (nkeys == 0) {
            sub_pubkeys_free(keys);
            return sub_err_setk(e, SUB_KIND_INPUT, -ENOKEY,
                                "the trust store %s holds no keys (*.pub): pass --key FILE.pub or "
                                "add the public keys you trust with `substrate key trust FILE.pub`",
                                dir);
        }
    }
    *out = keys;
    *nout = nkeys;
    return 0;
}

static void print_json(json_t *j) {
    _cleanup_free_ char *s = sub_json_dump_pretty(j);
    fputs(s, stdout);
}

static int verify_offline(const sub_pubkey *const *keys, size_t nkeys, const char *payload_path,
                          const char *sig_path, const char *digest, const char *identity,
                          sub_identity_policy policy, bool json) {
    sub_err e = {0};
    _cleanup_free_ char *payload = NULL, *sig = NULL;
    size_t plen = 0;
    if (sub_sign_file_error(sub_read_file(payload_path, SUB_SIGN_MAX_PAYLOAD, &payload, &plen, &e),
                            &e) < 0 ||
        read_signature(sig_path, &sig, &e) < 0)
        return cli_fail("verify", &e);

    sub_verify_record rec;
    int r = sub_cosign_verify(keys, nkeys, payload, plen, sig, digest, identity, policy, &rec, &e);
    if (r == -EINVAL) return cli_fail("verify", &e);
    if (json) {
        _cleanup_json_ json_t *j = sub_verify_record_json(&rec);
        print_json(j);
    }
    if (r < 0) return cli_fail("verify", &e);
    if (!json) {
        printf("Verified OK by key %s%s%s%s\n", rec.key_id, rec.key_source[0] ? " (" : "",
               rec.key_source, rec.key_source[0] ? ")" : "");
        printf("  image:    %s\n", rec.payload_digest);
        if (policy == SUB_IDENTITY_ANY_REPO)
            printf("  identity: %s (not checked: --any-repo)\n", rec.payload_reference);
        else if (policy == SUB_IDENTITY_EXACT)
            printf("  identity: %s (exact match)\n", rec.payload_reference);
        else
            printf("  identity: %s (under %s)\n", rec.payload_reference, rec.expected_identity);
        printf("  payload:  %s\n", rec.payload_sha256);
    }
    return SUB_EXIT_OK;
}

static const char *identity_note(const sub_verify_record *rec) {
    switch (rec->policy) {
    case SUB_IDENTITY_ANY_REPO: return "not checked: --any-repo";
    case SUB_IDENTITY_REPO_PREFIX: return "under the prefix";
    case SUB_IDENTITY_EXACT: break;
    }
    return "exact match";
}

static int verify_registry(const char *refarg, char **keyfiles, const char *identity,
                           sub_identity_policy policy, bool json, bool provenance) {
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    int prc = cli_parse_digest_ref("verify", "verify", refarg, &ref);
    if (prc) return prc;
    _cleanup_pubkeys_ sub_pubkey **keyv = NULL;
    size_t nkeys = 0;
    if (load_keys(keyfiles, &keyv, &nkeys, &e) < 0) return cli_fail("verify", &e);
    const sub_pubkey *const *keys = (const sub_pubkey *const *)keyv;
    _cleanup_free_ char *name = sub_ref_name(&ref);
    if (policy == SUB_IDENTITY_EXACT && !identity) identity = name;
    _cleanup_free_ char *image = xasprintf("%s@%s", name, ref.digest);

    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("verify", &e);
    _cleanup_verify_result_ sub_cosign_verify_result res = {0};
    int rr = sub_cosign_verify_registry(r, ref.repository, ref.digest, keys, nkeys, identity,
                                        policy, &res, &e);
    bool verdict = rr == 0 || rr == -EKEYREJECTED;
    /* --provenance: only once the signature holds */
    sub_attest_result ar = {0};
    sub_err pe = {0};
    int pr = 0;
    if (provenance && rr == 0)
        pr = sub_attest_verify_registry(r, ref.repository, ref.digest, keys, nkeys, &ar, &pe);
    if (json && verdict) {
        _cleanup_json_ json_t *j = sub_cosign_verify_result_json(&res, image, keys, nkeys, &e);
        if (provenance && rr == 0) {
            json_t *pj = sub_attest_result_json(&ar);
            if (pr < 0) json_object_set_new(pj, "reason", json_string(pe.msg));
            json_object_set_new(j, "provenance", pj);
            if (pr < 0) json_object_set_new(j, "verified", json_false());
        }
        print_json(j);
    }
    if (provenance && rr == 0 && pr < 0) {
        sub_attest_result_free(&ar);
        sub_err_prefix(&pe, "%s: the signature verifies, but the provenance does not", image);
        return cli_fail("verify", &pe);
    }
    if (rr < 0) {
        if (!json && res.n_records > 1)
            for (size_t i = 0; i < res.n_records; i++)
                fprintf(stderr, "substrate verify: signature %zu/%zu (layer %s): %s\n", i + 1,
                        res.n_records, res.records[i].layer_digest, res.records[i].reason);
        return cli_fail("verify", &e);
    }
    if (json) {
        sub_attest_result_free(&ar);
        return SUB_EXIT_OK;
    }
    const sub_verify_record *ok = &res.records[res.verified];
    printf("Verified OK: %s signed by key %s%s%s%s\n", image, ok->key_id,
           ok->key_source[0] ? " (" : "", ok->key_source, ok->key_source[0] ? ")" : "");
    printf("  identity:  %s (%s)\n", ok->payload_reference, identity_note(ok));
    printf("  signature: %s:%s (manifest %s, layer %s)\n", name, res.sig_tag, res.sig_manifest,
           ok->layer_digest);
    if (res.n_records > 1)
        for (size_t i = 0; i < res.n_records; i++) {
            const sub_verify_record *x = &res.records[i];
            if (x->verified)
                printf("  signature %zu/%zu (layer %s): verified by key %s\n", i + 1,
                       res.n_records, x->layer_digest, x->key_id);
            else
                printf("  signature %zu/%zu (layer %s): refused: %s\n", i + 1, res.n_records,
                       x->layer_digest, x->reason);
        }
    if (provenance) {
        printf("  provenance: SLSA v1, verified by key %s\n", ar.key_id);
        printf("    source:  %s @ %s\n", ar.source[0] ? ar.source : "(no source URI recorded)",
               ar.commit);
        printf("    spec:    %s (%s)\n", ar.spec_path, ar.spec_digest);
        printf("    build:   %s\n", ar.build_command && *ar.build_command ? ar.build_command : "(none)");
    }
    sub_attest_result_free(&ar);
    return SUB_EXIT_OK;
}

int cmd_verify(int argc, char **argv) {
    enum {
        OPT_OFFLINE = 256, OPT_KEY, OPT_PAYLOAD, OPT_SIGNATURE, OPT_DIGEST, OPT_IDENTITY,
        OPT_PREFIX, OPT_ANY, OPT_JSON, OPT_PROVENANCE
    };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"offline", no_argument, NULL, OPT_OFFLINE},
        {"key", required_argument, NULL, OPT_KEY},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"signature", required_argument, NULL, OPT_SIGNATURE},
        {"digest", required_argument, NULL, OPT_DIGEST},
        {"identity", required_argument, NULL, OPT_IDENTITY},
        {"identity-prefix", required_argument, NULL, OPT_PREFIX},
        {"repo-prefix", required_argument, NULL, OPT_PREFIX},
        {"any-repo", no_argument, NULL, OPT_ANY},
        {"json", no_argument, NULL, OPT_JSON},
        {"provenance", no_argument, NULL, OPT_PROVENANCE},
        {NULL, 0, NULL, 0},
    };
    bool offline = false, json = false, provenance = false;
    _cleanup_strv_ char **keyfiles = xcalloc(1, sizeof(char *));
    const char *payload_path = NULL, *sig_path = NULL, *digest = NULL, *identity = NULL;
    int npolicy = 0;
    sub_identity_policy policy = SUB_IDENTITY_EXACT;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case OPT_OFFLINE: offline = true; break;
        case OPT_KEY: strv_push(&keyfiles, optarg); break;
        case OPT_PAYLOAD: payload_path = optarg; break;
        case OPT_SIGNATURE: sig_path = optarg; break;
        case OPT_DIGEST: digest = optarg; break;
        case OPT_IDENTITY: identity = optarg; policy = SUB_IDENTITY_EXACT; npolicy++; break;
        case OPT_PREFIX: identity = optarg; policy = SUB_IDENTITY_REPO_PREFIX; npolicy++; break;
        case OPT_ANY: identity = NULL; policy = SUB_IDENTITY_ANY_REPO; npolicy++; break;
        case OPT_JSON: json = true; break;
        case OPT_PROVENANCE: provenance = true; break;
        default: return cli_usage_error("verify", "unknown or incomplete option");
        }
    }
    if (npolicy > 1)
        return cli_usage_error("verify", "give at most one of --identity REF, --repo-prefix "
                                         "PREFIX or --any-repo");
    if (identity && !*identity) return cli_usage_error("verify", "empty identity");
    if (offline) {
        if (optind < argc)
            return cli_usage_error("verify", "--offline verifies files: unexpected argument \"%s\"",
                                   argv[optind]);
        if (!payload_path || !sig_path || !digest)
            return cli_usage_error("verify", "--payload, --signature and --digest are required "
                                             "with --offline");
        if (npolicy != 1)
            return cli_usage_error("verify",
                                   "give exactly one of --identity REF, --repo-prefix PREFIX or "
                                   "--any-repo (which repository the signature must be for)");
    } else {
        if (payload_path || sig_path || digest)
            return cli_usage_error("verify", "--payload, --signature and --digest belong to "
                                             "--offline verification");
        if (optind + 1 != argc)
            return cli_usage_error("verify", optind >= argc ? "which image? give REF@sha256:<hex>"
                                                            : "expected exactly one REF");
    }

    if (offline && provenance)
        return cli_usage_error("verify", "--provenance reads the attestation from the registry; "
                                         "it does not combine with --offline");
    if (!offline) return verify_registry(argv[optind], keyfiles, identity, policy, json, provenance);
    sub_err e = {0};
    _cleanup_pubkeys_ sub_pubkey **keys = NULL;
    size_t nkeys = 0;
    if (load_keys(keyfiles, &keys, &nkeys, &e) < 0) return cli_fail("verify", &e);
    return verify_offline((const sub_pubkey *const *)keys, nkeys, payload_path, sig_path, digest,
                          identity, policy, json);
}
