/* substrate verify: check an image's cosign signatures in the registry (or,
 * with --offline, a payload and signature on disk). */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/cosign-registry.h"
#include "substrate/fs.h"
#include "substrate/admit.h"
#include "substrate/attest.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate verify REF@sha256:<hex>... [--key FILE.pub]...\n"
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
          "refused); docker://REF, as skopeo writes it, is the same. Several REFs are\n"
          "verified one after the other, each as if given alone. The signature manifest is\n"
          "fetched by its tag sha256-<hex>.sig in the image's repository and every\n"
          "simple-signing layer in it is checked, its payload blob fetched by digest (and\n"
          "checked against it, at most 256 KiB). One layer that passes is enough; with\n"
          "several, each is reported. Only the layers and payloads are read: the signature\n"
          "manifest's config and its JSON key order play no part (a signature copied by\n"
          "skopeo rewrites both and still verifies).\n"
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
          "      --json, -o json         print the verification record on stdout: digest_ref,\n"
          "                              digest, verified, verified_by, reason, policy,\n"
          "                              identity, keys, signature_tag, signature_manifest,\n"
          "                              signature_layers, and per signature (signatures[])\n"
          "                              each check (layer, signature, digest, identity)\n"
          "                              with its result. With several REFs: a JSON array\n"
          "                              of these records in the order given, each with its\n"
          "                              exit_code; a REF that could not be checked at all\n"
          "                              (bad reference, registry unreachable) has only\n"
          "                              digest_ref (as given), verified, reason, exit_code\n"
          "      --provenance            also require an SLSA provenance v1 attestation (tag\n"
          "                              sha256-<hex>.att, as `cosign attest` stores it: a\n"
          "                              DSSE envelope signed by a trusted key, an in-toto\n"
          "                              statement whose subject is this digest) and print the\n"
          "                              source commit, image spec and build command it names;\n"
          "                              this is the verify-attestation check (cosign's\n"
          "                              verify-attestation); `substrate attest` writes them\n"
          "      --offline               verify local files; then:\n"
          "      --payload FILE          the simple-signing payload, exact bytes\n"
          "      --signature FILE        the signature, base64 of ASN.1 DER\n"
          "      --digest sha256:<hex>   the image (manifest) digest the payload must name\n"
          "  -h, --help                  show this help\n"
          "\n"
          "Output: \"Verified OK: REF signed by key sha256:...\" on success; other signatures\n"
          "in the same manifest that were not needed are listed below it. Otherwise the\n"
          "reason: no such image, no signature, no trusted key matched (made by another key,\n"
          "or signature or payload altered), layer digest mismatch, digest mismatch (a\n"
          "signature for another image), identity mismatch, malformed signature or malformed\n"
          "payload. With --json, \"reason\" is a stable code for it (no_such_image,\n"
          "no_signature, no_trusted_key, layer_digest_mismatch, digest_mismatch,\n"
          "identity_mismatch, malformed_signature, malformed_payload, no_provenance,\n"
          "bad_provenance) and \"message\" its text.\n"
          "\n"
          "Environment: SUBSTRATE_STATE (trust store), SUBSTRATE_REGISTRY (the registry when\n"
          "REF names none), SUBSTRATE_REGISTRY_USER, SUBSTRATE_REGISTRY_PASSWORD.\n"
          "\n"
          "Exit codes: 0 verified; 1 refused (including: no signature); 2 usage or input error\n"
          "(REF without a digest, no such image, unreadable key, empty trust store); 3\n"
          "environment error (registry unreachable, no trust store). With several REFs, the\n"
          "highest of their codes (0 only when every REF verified).\n"
          "\n"
          "Examples:\n"
          "  substrate verify 127.0.0.1:5000/hello@sha256:9a119f34...44455\n"
          "  substrate verify hello@sha256:... --key release.pub --json\n"
          "  substrate verify docker://127.0.0.1:5000/hello@sha256:... job@sha256:... -o json\n"
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
    if (!nkeys) return sub_admit_trusted_keys(NULL, out, nout, e);
    sub_pubkey **keys = xcalloc(nkeys + 1, sizeof *keys);
    for (size_t i = 0; i < nkeys; i++)
        if (sub_pubkey_load_file(keyfiles[i], &keys[i], e) < 0) {
            sub_pubkeys_free(keys);
            return e->code;
        }
    *out = keys;
    *nout = nkeys;
    return 0;
}

static void print_json(json_t *j) {
    _cleanup_free_ char *s = sub_json_dump_pretty(j);
    fputs(s, stdout);
    cli_json_printed(); /* the record carries the reason */
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
        cli_line(stdout, "Verified OK by key %s%s%s%s", rec.key_id, rec.key_source[0] ? " (" : "",
                 rec.key_source, rec.key_source[0] ? ")" : "");
        cli_line(stdout, "  image:    %s", rec.payload_digest);
        if (policy == SUB_IDENTITY_ANY_REPO)
            cli_line(stdout, "  identity: %s (not checked: --any-repo)", rec.payload_reference);
        else if (policy == SUB_IDENTITY_EXACT)
            cli_line(stdout, "  identity: %s (exact match)", rec.payload_reference);
        else
            cli_line(stdout, "  identity: %s (under %s)", rec.payload_reference,
                     rec.expected_identity);
        cli_line(stdout, "  payload:  %s", rec.payload_sha256);
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

/* Why another signature in the same manifest was not the one that verified,
 * in words (its full reason repeats digests shown on the same line). */
static const char *unused_why(const sub_verify_record *x) {
    switch (x->failure) {
    case SUB_VERIFY_NO_KEY_MATCHED: return "made by a key that is not trusted here (or altered)";
    case SUB_VERIFY_DIGEST_MISMATCH: return "signs another image digest";
    case SUB_VERIFY_IDENTITY_MISMATCH: return "signs another repository";
    case SUB_VERIFY_LAYER_MISMATCH: return "its payload does not match its layer digest";
    case SUB_VERIFY_MALFORMED_SIGNATURE: return "malformed signature";
    case SUB_VERIFY_MALFORMED_PAYLOAD: return "malformed payload";
    case SUB_VERIFY_OK: break;
    }
    return "not checked";
}

/* With several REFs, the refusal of a REF that could not be checked (for its JSON). */
static sub_err last_refusal;

static int vfail(const sub_err *e) {
    last_refusal = *e;
    return cli_fail("verify", e);
}

/* The refusal as JSON fields: "reason" (stable, snake_case) and "message". */
static void set_refusal(json_t *j, const sub_err *e) {
    json_object_set_new(j, "reason", e->reason ? sub_json_str(sub_reason_to_string(e->reason))
                                               : json_null());
    json_object_set_new(j, "message", sub_json_str(e->msg));
}

/* arr: with several REFs, the JSON record goes there instead of stdout. */
static int verify_registry(const char *refarg, char **keyfiles, const char *identity,
                           sub_identity_policy policy, bool json, bool provenance, json_t *arr) {
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    sub_err_setk(&last_refusal, SUB_KIND_INPUT, -EINVAL,
                 "invalid reference (see the error above)");
    int prc = cli_parse_digest_ref("verify", "verify", refarg, &ref);
    if (prc) return prc;
    _cleanup_pubkeys_ sub_pubkey **keyv = NULL;
    size_t nkeys = 0;
    if (keyfiles[0] && load_keys(keyfiles, &keyv, &nkeys, &e) < 0) return vfail(&e);
    /* the deployment's check: signature, then (with --provenance) provenance */
    sub_admit_opts ao = {.ref = &ref, .keys = (const sub_pubkey *const *)keyv, .nkeys = nkeys,
                         .identity = identity, .policy = policy, .provenance = provenance};
    _cleanup_admission_ sub_admission ad = {0};
    int rr = sub_admit_image(&ao, &ad, &e);
    const sub_cosign_verify_result *res = &ad.sig;
    bool verdict = ad.sig_rc == 0 || ad.sig_rc == -EKEYREJECTED ||
                   (ad.sig_rc == -ENOENT && ad.sig_err.reason == SUB_R_NO_SUCH_IMAGE);
    if (json && verdict) {
        _cleanup_json_ json_t *j =
            sub_cosign_verify_result_json(res, ad.image, ad.keys, ad.nkeys, &ad.sig_err);
        if (ad.provenance_checked) {
            json_t *pj = sub_attest_result_json(&ad.prov);
            if (ad.prov_rc < 0) set_refusal(pj, &ad.prov_err);
            json_object_set_new(j, "provenance", pj);
            if (ad.prov_rc < 0) {
                json_object_set_new(j, "verified", json_false());
                set_refusal(j, &e);
            }
        }
        if (arr) json_array_append(arr, j);
        else print_json(j);
    }
    if (rr < 0) {
        if (!json && ad.sig_rc < 0 && res->n_records > 1)
            for (size_t i = 0; i < res->n_records; i++)
                cli_line(stderr, "substrate verify: signature %zu/%zu (layer %s): %s", i + 1,
                         res->n_records, res->records[i].layer_digest, res->records[i].reason);
        return vfail(&e);
    }
    if (json) return SUB_EXIT_OK;
    _cleanup_free_ char *name = sub_ref_name(&ref);
    const char *image = ad.image;
    const sub_attest_result *ar = &ad.prov;
    const sub_verify_record *ok = &res->records[res->verified];
    cli_line(stdout, "Verified OK: %s signed by key %s%s%s%s", image, ok->key_id,
             ok->key_source[0] ? " (" : "", ok->key_source, ok->key_source[0] ? ")" : "");
    cli_line(stdout, "  identity:  %s (%s)", ok->payload_reference, identity_note(ok));
    if (res->n_records == 1)
        cli_line(stdout, "  signature: %s:%s (manifest %s, layer %s)", name, res->sig_tag,
                 res->sig_manifest, ok->layer_digest);
    else
        cli_line(stdout, "  signature: %s:%s (manifest %s), signature %ld of %zu (layer %s)", name,
                 res->sig_tag, res->sig_manifest, res->verified + 1, res->n_records,
                 ok->layer_digest);
    /* The others do not change the verdict: one trusted signature is enough.
     * Signatures of the same payload share a layer digest: name them by
     * their place, and a layer digest only when it is another one. */
    for (size_t i = 0; i < res->n_records; i++) {
        const sub_verify_record *x = &res->records[i];
        if ((long)i == res->verified) continue;
        bool same = !strcmp(x->layer_digest, ok->layer_digest);
        if (x->verified)
            cli_line(stdout, "  signature %zu of %zu%s%s%s: verifies too, by key %s", i + 1,
                     res->n_records, same ? "" : " (layer ", same ? "" : x->layer_digest,
                     same ? "" : ")", x->key_id);
        else
            cli_line(stdout, "  signature %zu of %zu%s%s%s: not needed (%s: %s)", i + 1,
                     res->n_records, same ? "" : " (layer ", same ? "" : x->layer_digest,
                     same ? "" : ")", sub_verify_failure_name(x->failure), unused_why(x));
    }
    if (provenance) {
        cli_line(stdout, "  provenance: SLSA v1, verified by key %s", ar->key_id);
        cli_line(stdout, "    source:  %s @ %s", ar->source[0] ? ar->source : "(no source URI recorded)",
                 ar->commit);
        cli_line(stdout, "    spec:    %s (%s)", ar->spec_path, ar->spec_digest);
        cli_line(stdout, "    build:   %s",
                 ar->build_command && *ar->build_command ? ar->build_command : "(none)");
    }
    return SUB_EXIT_OK;
}

/* Several REFs: each verified as if alone; the exit code is the worst (the
 * highest) of theirs; with --json, an array of their records. */
static int verify_many(char **refs, int n, char **keyfiles, const char *identity,
                       sub_identity_policy policy, bool json, bool provenance) {
    _cleanup_json_ json_t *arr = json ? json_array() : NULL;
    if (json) cli_json_printed(); /* the array carries every refusal */
    int worst = SUB_EXIT_OK;
    for (int i = 0; i < n; i++) {
        size_t before = arr ? json_array_size(arr) : 0;
        int rc = verify_registry(refs[i], keyfiles, identity, policy, json, provenance, arr);
        if (rc > worst) worst = rc;
        if (arr && json_array_size(arr) == before) {
            /* not checked at all (bad reference, unreachable registry) */
            json_t *o = json_object();
            json_object_set_new(o, "digest_ref", sub_json_str(refs[i]));
            json_object_set_new(o, "verified", json_false());
            set_refusal(o, &last_refusal);
            json_object_set_new(o, "exit_code", json_integer(rc));
            json_array_append_new(arr, o);
        } else if (arr) {
            json_object_set_new(json_array_get(arr, before), "exit_code", json_integer(rc));
        }
    }
    if (arr) print_json(arr);
    return worst;
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
        CLI_OUTPUT_OPTION,
        {NULL, 0, NULL, 0},
    };
    bool offline = false, json = false, provenance = false;
    _cleanup_strv_ char **keyfiles = xcalloc(1, sizeof(char *));
    const char *payload_path = NULL, *sig_path = NULL, *digest = NULL, *identity = NULL;
    int npolicy = 0;
    sub_identity_policy policy = SUB_IDENTITY_EXACT;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case 'o':
            if (cli_output_opt("verify", optarg, &json)) return SUB_EXIT_USAGE;
            break;
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
        default: return cli_bad_option("verify", argv, opts);
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
        if (optind >= argc)
            return cli_usage_error("verify", "which image? give REF@sha256:<hex>");
    }

    if (offline && provenance)
        return cli_usage_error("verify", "--provenance reads the attestation from the registry; "
                                         "it does not combine with --offline");
    if (!offline && optind + 1 == argc)
        return verify_registry(argv[optind], keyfiles, identity, policy, json, provenance, NULL);
    if (!offline)
        return verify_many(argv + optind, argc - optind, keyfiles, identity, policy, json,
                           provenance);
    sub_err e = {0};
    _cleanup_pubkeys_ sub_pubkey **keys = NULL;
    size_t nkeys = 0;
    if (load_keys(keyfiles, &keys, &nkeys, &e) < 0) return cli_fail("verify", &e);
    return verify_offline((const sub_pubkey *const *)keys, nkeys, payload_path, sig_path, digest,
                          identity, policy, json);
}
