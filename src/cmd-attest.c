/* substrate attest: sign an in-toto statement about an image into a DSSE
 * envelope and push it in cosign attest's layout; without --predicate, sign
 * the image's existing (trusted) provenance again with another key. */
#include "cli.h"
#include "substrate/attest.h"
#include "substrate/json.h"
#include "substrate/ref.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate attest REF@sha256:<hex> --key FILE.key [--passphrase-file FILE]\n"
          "                        [--predicate FILE [--type URI]] [--json]\n"
          "\n"
          "Attest an image the way `cosign attest --key` does: an in-toto Statement v1 whose\n"
          "subject is REF's \"registry/repository\" and digest, signed with ECDSA P-256 as a DSSE\n"
          "envelope (payloadType application/vnd.in-toto+json) and pushed under the tag\n"
          "sha256-<hex>.att in the image's repository: an OCI manifest with one layer per\n"
          "attestation (mediaType application/vnd.dsse.envelope.v1+json, annotated with its\n"
          "predicateType). Existing attestations are kept; when this key has already attested\n"
          "the same statement bytes nothing is pushed. The image must be in the registry.\n"
          "\n"
          "Without --predicate: re-sign the image's SLSA provenance. The provenance statement\n"
          "already attached (by build-sign-push) must verify with a key in the trust store;\n"
          "its exact bytes are then signed with --key. This is the key-rotation step: after it\n"
          "the provenance verifies with the new key alone (see README, \"Rotating a signing\n"
          "key\"). With no provenance that verifies, nothing is pushed (exit 1).\n"
          "\n"
          "With --predicate FILE: attest that JSON object as the statement's predicate, of type\n"
          "--type: a URI, or one of cosign's names (slsaprovenance1, slsaprovenance, link,\n"
          "spdx, spdxjson, cyclonedx, vuln, openvex, custom; default custom). A predicate of\n"
          "type https://slsa.dev/provenance/v1 must name its source commit as\n"
          "`verify --provenance` reads it.\n"
          "\n"
          "To verify an attestation (what `cosign verify-attestation` does for provenance), run\n"
          "`substrate verify REF@sha256:<hex> --provenance`: the signature, then an SLSA v1\n"
          "provenance attestation signed by a trusted key whose subject is the digest.\n"
          "\n"
          "The key is decrypted first: a wrong passphrase is refused before anything is read\n"
          "or pushed.\n"
          "\n"
          "Options:\n"
          "      --key FILE.key           cosign-format encrypted private key (required)\n"
          "      --passphrase-file FILE   passphrase source (see below)\n"
          "      --predicate FILE         a JSON object to attest (default: re-sign provenance)\n"
          "      --type URI               its predicateType (with --predicate)\n"
          "      --json, -o json          print the result as JSON: digest_ref, digest, key_id,\n"
          "                               attestation_tag, attestation_ref, attestation_manifest,\n"
          "                               statement_digest, predicate_type, resigned_from,\n"
          "                               attestations, pushed\n"
          "  -h, --help                   show this help\n"
          "\n"
          "The key file is checked first (a missing file or a .pub is refused before any\n"
          "passphrase is asked for). Passphrase, first source found wins: --passphrase-file\n"
          "FILE; $SUBSTRATE_PASSPHRASE; $COSIGN_PASSWORD;\n"
          "<key without .key>.pass (yours, mode 0600); a prompt on the terminal. With no\n"
          "terminal the command fails at once.\n"
          "\n"
          "Output: \"Attested REF with key sha256:...\" (\"Already attested:\" when nothing was\n"
          "pushed), the attestation tag with its manifest digest and number of attestations,\n"
          "and the statement's digest and predicateType; when re-signing, the trusted key the\n"
          "statement verified with.\n"
          "\n"
          "Environment: SUBSTRATE_STATE (trust store), SUBSTRATE_REGISTRY (the registry when\n"
          "REF names none), SUBSTRATE_PASSPHRASE, SUBSTRATE_REGISTRY_USER,\n"
          "SUBSTRATE_REGISTRY_PASSWORD.\n"
          "\n"
          "Exit codes: 0 attested (or already attested by this key); 1 no provenance to re-sign\n"
          "verifies with a trusted key; 2 usage or input error (REF without a digest, image not\n"
          "in the registry, wrong passphrase, bad key, predicate or type, empty trust store);\n"
          "3 environment error (registry unreachable, push refused, the attestation tag moved\n"
          "meanwhile).\n"
          "\n"
          "Examples:\n"
          "  substrate attest 127.0.0.1:5000/hello@sha256:9a119f34...44455 --key new.key\n"
          "  substrate attest hello@sha256:... --key release.key --predicate sbom.json \\\n"
          "      --type https://spdx.dev/Document --json\n",
          f);
}

/* The key file first (a missing one, or a .pub, before any passphrase), then
 * the passphrase and the decryption: a wrong one stops everything before any I/O. */
static int load_key(const char *keyp, const char *passfile, sub_privkey **out) {
    return cli_open_signing_key("attest", keyp, passfile, "nothing was attested or pushed", out);
}

static void print_result(const char *name, const char *digest, const sub_attest_push_result *res,
                         bool json) {
    _cleanup_free_ char *image = xasprintf("%s@%s", name, digest);
    _cleanup_free_ char *attref = xasprintf("%s:%s", name, res->att_tag);
    if (json) {
        _cleanup_json_ json_t *j = json_object();
        json_object_set_new(j, "digest_ref", sub_json_str(image));
        json_object_set_new(j, "digest", sub_json_str(digest));
        json_object_set_new(j, "key_id", sub_json_str(res->key_id));
        json_object_set_new(j, "attestation_tag", sub_json_str(res->att_tag));
        json_object_set_new(j, "attestation_ref", sub_json_str(attref));
        json_object_set_new(j, "attestation_manifest", sub_json_str(res->att_manifest));
        json_object_set_new(j, "statement_digest", sub_json_str(res->statement_digest));
        json_object_set_new(j, "predicate_type", sub_json_str(res->predicate_type));
        json_object_set_new(j, "resigned_from",
                            res->resigned_from[0] ? sub_json_str(res->resigned_from) : json_null());
        json_object_set_new(j, "attestations", json_integer((json_int_t)res->n_layers));
        json_object_set_new(j, "pushed", json_boolean(!res->already));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
        cli_json_printed();
        return;
    }
    cli_line(stdout, "%s %s with key %s", res->already ? "Already attested:" : "Attested", image,
           res->key_id);
    cli_line(stdout, "  attestation: %s (manifest %s, %zu attestation%s%s)", attref, res->att_manifest,
           res->n_layers, res->n_layers == 1 ? "" : "s",
           res->already ? "; this key's attestation of the statement was there, nothing pushed"
                        : "");
    cli_line(stdout, "  statement:   %s (predicateType %s)", res->statement_digest, res->predicate_type);
    if (res->resigned_from[0])
        cli_line(stdout, "  re-signed:   the provenance verified with trusted key %s",
                 res->resigned_from);
}

int cmd_attest(int argc, char **argv) {
    enum { OPT_KEY = 256, OPT_PASSFILE, OPT_PREDICATE, OPT_TYPE, OPT_JSON };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"predicate", required_argument, NULL, OPT_PREDICATE},
        {"type", required_argument, NULL, OPT_TYPE},
        {"json", no_argument, NULL, OPT_JSON},
        CLI_OUTPUT_OPTION,
        {NULL, 0, NULL, 0},
    };
    const char *keyp = NULL, *passfile = NULL, *predicate = NULL, *type = NULL;
    bool json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case 'o':
            if (cli_output_opt("attest", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case OPT_KEY: keyp = optarg; break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_PREDICATE: predicate = optarg; break;
        case OPT_TYPE: type = optarg; break;
        case OPT_JSON: json = true; break;
        default: return cli_bad_option("attest", argv, opts);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("attest", optind >= argc ? "which image? give REF@sha256:<hex>"
                                                        : "expected exactly one REF");
    if (!keyp) return cli_usage_error("attest", "--key FILE.key is required");
    if (type && !predicate)
        return cli_usage_error("attest", "--type names the type of a --predicate FILE; without "
                                         "--predicate the image's SLSA provenance is re-signed");
    sub_err e = {0};
    const char *uri;
    if (type && sub_attest_predicate_type(type, &uri, &e) < 0) return cli_fail("attest", &e);

    _cleanup_ref_ sub_ref ref = {0};
    int rc = cli_parse_digest_ref("attest", "attest", argv[optind], &ref);
    if (rc) return rc;
    _cleanup_privkey_ sub_privkey *k = NULL;
    if ((rc = load_key(keyp, passfile, &k))) return rc;
    _cleanup_free_ char *name = sub_ref_name(&ref);
    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("attest", &e);
    sub_attest_opts ao = {.repo = ref.repository, .subject = name, .image_digest = ref.digest,
                          .key = k, .predicate_path = predicate, .predicate_type = type};
    sub_attest_push_result res;
    if (sub_attest_image(r, &ao, &res, &e) < 0) return cli_fail("attest", &e);
    print_result(name, ref.digest, &res, json);
    return SUB_EXIT_OK;
}
