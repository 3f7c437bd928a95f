/* substrate sign: make a cosign signature and push it in cosign's layout
 * (or, with --offline, write payload and signature files). */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/cosign-registry.h"
#include "substrate/fs.h"
#include "substrate/ref.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate sign REF@sha256:<hex> --key FILE.key [--passphrase-file FILE] [--json]\n"
          "       substrate sign --offline --key FILE.key [--passphrase-file FILE]\n"
          "                      (--identity REF --digest sha256:<hex> --output-payload FILE\n"
          "                       | --payload FILE)\n"
          "                      [--output-signature FILE] [--json]\n"
          "\n"
          "Sign an image the way cosign does with a key: build the simple-signing payload\n"
          "{\"critical\":{\"identity\":{\"docker-reference\":REF},\"image\":\n"
          "{\"docker-manifest-digest\":DIGEST},\"type\":\"cosign container image signature\"},\n"
          "\"optional\":null} and sign its bytes with ECDSA P-256 / SHA-256 (ASN.1 DER, base64).\n"
          "\n"
          "Registry mode (REF given): REF must name the image by digest (a tag can move, so a\n"
          "tag-only reference is refused: sign by digest). The image manifest must be in the\n"
          "registry. The payload names \"registry/repository\" exactly as REF writes it and the\n"
          "digest. The signature is pushed in cosign's layout: tag sha256-<hex>.sig in the\n"
          "image's repository, an OCI manifest with a cosign-style config and one layer per\n"
          "signature (mediaType application/vnd.dev.cosign.simplesigning.v1+json, digest =\n"
          "sha256 of the payload, annotation dev.cosignproject.cosign/signature = the base64\n"
          "signature). Existing signatures (by other keys) are kept and the new one is added;\n"
          "when this key has already signed the same payload nothing is pushed. cosign, and\n"
          "`substrate verify`, read the result.\n"
          "\n"
          "Offline mode (--offline): the payload and the signature go to files.\n"
          "\n"
          "The key is decrypted first: a wrong passphrase is refused before anything is signed\n"
          "or pushed.\n"
          "\n"
          "Options:\n"
          "      --key FILE.key           cosign-format encrypted private key (required)\n"
          "      --passphrase-file FILE   passphrase source (see below)\n"
          "      --json, -o json          print the result as JSON: digest_ref, digest,\n"
          "                               identity, key_id, signature_tag, signature_ref,\n"
          "                               signature_manifest, payload_digest,\n"
          "                               signature_layers, pushed (--offline: key_id,\n"
          "                               payload_digest, signature, payload_file,\n"
          "                               signature_file)\n"
          "      --offline                write files instead of pushing; then:\n"
          "      --identity REF           \"registry/repository\" the signature is for (no tag)\n"
          "      --digest sha256:<hex>    the image manifest digest to sign\n"
          "      --output-payload FILE    where to write the payload bytes\n"
          "      --payload FILE           sign this payload instead of building one\n"
          "      --output-signature FILE  write the base64 signature here (default: stdout)\n"
          "  -h, --help                   show this help\n"
          "\n"
          "The key file is checked first (it must be a cosign private key; a .pub is refused)\n"
          "before any passphrase is looked for.\n"
          "Passphrase, first source found wins: --passphrase-file FILE; $SUBSTRATE_PASSPHRASE;\n"
          "$COSIGN_PASSWORD; <key without .key>.pass (yours, mode 0600); a prompt on the\n"
          "terminal. With no terminal the command fails at once.\n"
          "\n"
          "Output (registry mode): \"Signed REF with key sha256:...\" and the signature tag\n"
          "REGISTRY/REPO:sha256-<hex>.sig with its manifest digest and number of signatures.\n"
          "\n"
          "Environment: SUBSTRATE_REGISTRY (the registry when REF names none),\n"
          "SUBSTRATE_PASSPHRASE, COSIGN_PASSWORD, SUBSTRATE_REGISTRY_USER,\n"
          "SUBSTRATE_REGISTRY_PASSWORD.\n"
          "\n"
          "Exit codes: 0 signed (or already signed by this key); 2 usage or input error (REF\n"
          "without a digest, image not in the registry, wrong passphrase, bad key or payload);\n"
          "3 environment error (registry unreachable, push refused).\n"
          "\n"
          "Examples:\n"
          "  substrate sign 127.0.0.1:5000/hello@sha256:9a119f34...44455 --key release.key\n"
          "  substrate sign hello@sha256:... --key release.key --passphrase-file pass.txt --json\n"
          "  substrate sign --offline --key release.key --identity 127.0.0.1:5000/hello \\\n"
          "      --digest sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455 \\\n"
          "      --output-payload payload.json --output-signature signature.b64\n",
          f);
}

/* The key file, then its passphrase, then decrypt: a wrong passphrase stops
 * everything before signing. */
static int load_key(const char *keyp, const char *passfile, sub_privkey **out) {
    return cli_open_signing_key("sign", keyp, passfile, "nothing was signed or pushed", out);
}

static int sign_registry(const char *refarg, const char *keyp, const char *passfile, bool json) {
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    int prc = cli_parse_digest_ref("sign", "sign", refarg, &ref);
    if (prc) return prc;
    _cleanup_privkey_ sub_privkey *k = NULL;
    int rc = load_key(keyp, passfile, &k);
    if (rc) return rc;
    _cleanup_free_ char *name = sub_ref_name(&ref);
    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("sign", &e);
    sub_cosign_sign_result res;
    if (sub_cosign_sign_registry(r, ref.repository, name, ref.digest, k, &res, &e) < 0)
        return cli_fail("sign", &e);
    _cleanup_free_ char *image = xasprintf("%s@%s", name, ref.digest);
    _cleanup_free_ char *sigref = xasprintf("%s:%s", name, res.sig_tag);
    if (json) {
        _cleanup_json_ json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "digest_ref", image, "digest",
            ref.digest, "identity", res.identity, "key_id", res.key_id, "signature_tag",
            res.sig_tag, "signature_ref", sigref, "signature_manifest", res.sig_manifest,
            "payload_digest", res.payload_digest, "signature_layers", (json_int_t)res.n_layers,
            "pushed", !res.already_signed);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("%s %s with key %s\n", res.already_signed ? "Already signed:" : "Signed", image,
               res.key_id);
        printf("  signature: %s (manifest %s, %zu signature%s%s)\n", sigref, res.sig_manifest,
               res.n_layers, res.n_layers == 1 ? "" : "s",
               res.already_signed ? "; this key's signature was there, nothing pushed" : "");
        printf("  payload:   %s (identity %s)\n", res.payload_digest, res.identity);
    }
    return SUB_EXIT_OK;
}

int cmd_sign(int argc, char **argv) {
    enum {
        OPT_OFFLINE = 256, OPT_KEY, OPT_PASSFILE, OPT_IDENTITY, OPT_DIGEST, OPT_OUT_PAYLOAD,
        OPT_PAYLOAD, OPT_OUT_SIG, OPT_JSON
    };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"offline", no_argument, NULL, OPT_OFFLINE},
        {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"identity", required_argument, NULL, OPT_IDENTITY},
        {"digest", required_argument, NULL, OPT_DIGEST},
        {"output-payload", required_argument, NULL, OPT_OUT_PAYLOAD},
        {"payload", required_argument, NULL, OPT_PAYLOAD},
        {"output-signature", required_argument, NULL, OPT_OUT_SIG},
        {"json", no_argument, NULL, OPT_JSON},
        CLI_OUTPUT_OPTION,
        {NULL, 0, NULL, 0},
    };
    bool offline = false, json = false;
    const char *keyp = NULL, *passfile = NULL, *identity = NULL, *digest = NULL;
    const char *out_payload = NULL, *in_payload = NULL, *out_sig = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case 'o':
            if (cli_output_opt("sign", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case OPT_OFFLINE: offline = true; break;
        case OPT_KEY: keyp = optarg; break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_IDENTITY: identity = optarg; break;
        case OPT_DIGEST: digest = optarg; break;
        case OPT_OUT_PAYLOAD: out_payload = optarg; break;
        case OPT_PAYLOAD: in_payload = optarg; break;
        case OPT_OUT_SIG: out_sig = optarg; break;
        case OPT_JSON: json = true; break;
        default: return cli_bad_option("sign", argv, opts);
        }
    }
    if (!offline) {
        if (identity || digest || out_payload || in_payload || out_sig)
            return cli_usage_error("sign", "--identity, --digest, --payload and the --output-* "
                                           "options belong to --offline signing");
        if (optind + 1 != argc)
            return cli_usage_error("sign", optind >= argc ? "which image? give REF@sha256:<hex>"
                                                          : "expected exactly one REF");
        if (!keyp) return cli_usage_error("sign", "--key FILE.key is required");
        return sign_registry(argv[optind], keyp, passfile, json);
    }
    if (optind < argc)
        return cli_usage_error("sign", "--offline signs files: unexpected argument \"%s\"",
                               argv[optind]);
    if (!keyp) return cli_usage_error("sign", "--key FILE.key is required");
    if (in_payload && (identity || digest || out_payload))
        return cli_usage_error("sign", "--payload signs an existing payload: do not combine it "
                                       "with --identity, --digest or --output-payload");
    if (!in_payload && (!identity || !digest || !out_payload))
        return cli_usage_error("sign", "give --identity, --digest and --output-payload (or "
                                       "--payload FILE)");

    sub_err e = {0};
    _cleanup_privkey_ sub_privkey *k = NULL;
    int rc = load_key(keyp, passfile, &k);
    if (rc) return rc;

    _cleanup_free_ char *payload = NULL;
    size_t plen = 0;
    if (in_payload) {
        if (sub_sign_file_error(sub_read_file(in_payload, SUB_SIGN_MAX_PAYLOAD, &payload, &plen, &e),
                                &e) < 0)
            return cli_fail("sign", &e);
        _cleanup_payload_ sub_cosign_payload p = {0};
        if (sub_cosign_payload_parse(payload, plen, &p, &e) < 0) {
            sub_err_prefix(&e, "refusing to sign %s", in_payload);
            return cli_fail("sign", &e);
        }
    } else if (sub_cosign_payload_build(identity, digest, &payload, &plen, &e) < 0) {
        return cli_fail("sign", &e);
    }
    _cleanup_free_ char *sig = NULL;
    if (sub_cosign_sign(k, payload, plen, &sig, &e) < 0) return cli_fail("sign", &e);
    char pdigest[SUB_DIGEST_MAX];
    if (sub_sha256_buf(payload, plen, pdigest, &e) < 0) return cli_fail("sign", &e);
    if (out_payload && sub_write_file_atomic(out_payload, payload, plen, 0644, &e) < 0)
        return cli_fail("sign", &e);
    if (out_sig && sub_write_file_atomic(out_sig, sig, strlen(sig), 0644, &e) < 0)
        return cli_fail("sign", &e);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o}", "key_id", sub_privkey_id(k),
                                             "payload_digest", pdigest, "signature", sig,
                                             "payload_file", sub_json_str(out_payload ? out_payload : in_payload),
                                             "signature_file", sub_json_str(out_sig));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        if (!out_sig) printf("%s\n", sig);
        fprintf(stderr, "Signed payload %s with key %s%s%s\n", pdigest, sub_privkey_id(k),
                out_sig ? "; signature in " : "", out_sig ? out_sig : "");
    }
    return SUB_EXIT_OK;
}
