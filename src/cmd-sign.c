/* substrate sign: make a cosign signature (offline mode: files on disk). */
#include "cli.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate sign --offline --key FILE.key [--passphrase-file FILE]\n"
          "                      (--identity REF --digest sha256:<hex> --output-payload FILE\n"
          "                       | --payload FILE)\n"
          "                      [--output-signature FILE] [--json]\n"
          "\n"
          "Sign an image digest the way cosign does with a key: build the simple-signing\n"
          "payload {\"critical\":{\"identity\":{\"docker-reference\":REF},\"image\":\n"
          "{\"docker-manifest-digest\":DIGEST},\"type\":\"cosign container image signature\"},\n"
          "\"optional\":null} and sign its bytes with ECDSA P-256 / SHA-256. The signature is\n"
          "printed (or written) as base64 of the ASN.1 DER signature: the value of the\n"
          "dev.cosignproject.cosign/signature annotation. With --payload an existing payload\n"
          "is signed as it is (it must be a valid cosign payload).\n"
          "\n"
          "With --offline the result goes to files; pushing the signature artifact to the\n"
          "registry is not available yet. The key is decrypted (and a wrong passphrase\n"
          "refused) before anything is signed.\n"
          "\n"
          "Options:\n"
          "      --offline                write files only (required for now)\n"
          "      --key FILE.key           cosign-format encrypted private key\n"
          "      --passphrase-file FILE   passphrase source (see below)\n"
          "      --identity REF           \"registry/repository\" the signature is for (no tag)\n"
          "      --digest sha256:<hex>    the image manifest digest to sign\n"
          "      --output-payload FILE    where to write the payload bytes\n"
          "      --payload FILE           sign this payload instead of building one\n"
          "      --output-signature FILE  write the base64 signature here (default: stdout)\n"
          "      --json                   print key id, payload digest and signature as JSON\n"
          "  -h, --help                   show this help\n"
          "\n"
          "Passphrase, first source found wins: --passphrase-file FILE; $SUBSTRATE_PASSPHRASE;\n"
          "<key without .key>.pass (yours, mode 0600); a prompt on the terminal. With no\n"
          "terminal the command fails at once.\n"
          "\n"
          "Exit codes: 0 signed; 2 usage or input error (wrong passphrase, bad payload, bad\n"
          "key); 3 environment error.\n"
          "\n"
          "Examples:\n"
          "  substrate sign --offline --key release.key --identity 127.0.0.1:5000/hello \\\n"
          "      --digest sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455 \\\n"
          "      --output-payload payload.json --output-signature signature.b64\n"
          "  substrate sign --offline --key release.key --payload payload.json\n",
          f);
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
        {NULL, 0, NULL, 0},
    };
    bool offline = false, json = false;
    const char *keyp = NULL, *passfile = NULL, *identity = NULL, *digest = NULL;
    const char *out_payload = NULL, *in_payload = NULL, *out_sig = NULL;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case OPT_OFFLINE: offline = true; break;
        case OPT_KEY: keyp = optarg; break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_IDENTITY: identity = optarg; break;
        case OPT_DIGEST: digest = optarg; break;
        case OPT_OUT_PAYLOAD: out_payload = optarg; break;
        case OPT_PAYLOAD: in_payload = optarg; break;
        case OPT_OUT_SIG: out_sig = optarg; break;
        case OPT_JSON: json = true; break;
        default: return cli_usage_error("sign", "unknown or incomplete option");
        }
    }
    if (optind < argc || !offline)
        return cli_usage_error("sign",
                               "only --offline signing (payload and signature files) is available "
                               "yet; pushing the signature to the registry comes later");
    if (!keyp) return cli_usage_error("sign", "--key FILE.key is required");
    if (in_payload && (identity || digest || out_payload))
        return cli_usage_error("sign", "--payload signs an existing payload: do not combine it "
                                       "with --identity, --digest or --output-payload");
    if (!in_payload && (!identity || !digest || !out_payload))
        return cli_usage_error("sign", "give --identity, --digest and --output-payload (or "
                                       "--payload FILE)");

    sub_err e = {0};
    /* The key first: a wrong passphrase stops everything before signing. */
    _cleanup_free_ char *prefix = sub_key_prefix(keyp);
    _cleanup_free_ char *what = xasprintf("key %s", keyp);
    sub_pass_opts po = {.file = passfile, .key_prefix = prefix, .what = what};
    _cleanup_passphrase_ sub_passphrase pass = {0};
    if (sub_passphrase_get(&po, &pass, &e) < 0) return cli_fail("sign", &e);
    _cleanup_privkey_ sub_privkey *k = NULL;
    if (sub_privkey_load_file(keyp, pass.data, pass.len, &k, &e) < 0) {
        if (e.code == -EKEYREJECTED) {
            /* name the key by id when its public half sits beside it */
            _cleanup_free_ char *pubp = xasprintf("%s.pub", prefix);
            _cleanup_pubkey_ sub_pubkey *pub = NULL;
            if (sub_pubkey_load_file(pubp, &pub, NULL) == 0)
                sub_err_detail(&e, "passphrase taken from %s; %s is key %s", pass.origin, pubp,
                               sub_pubkey_id(pub));
            else sub_err_detail(&e, "passphrase taken from %s", pass.origin);
        }
        return cli_fail("sign", &e);
    }
    sub_passphrase_free(&pass);

    _cleanup_free_ char *payload = NULL;
    size_t plen = 0;
    if (in_payload) {
        if (sub_read_file(in_payload, SUB_SIGN_MAX_PAYLOAD, &payload, &plen, &e) < 0)
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
                                             "payload_file", json_string(out_payload ? out_payload : in_payload),
                                             "signature_file", out_sig ? json_string(out_sig) : json_null());
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        if (!out_sig) printf("%s\n", sig);
        fprintf(stderr, "Signed payload %s with key %s%s%s\n", pdigest, sub_privkey_id(k),
                out_sig ? "; signature in " : "", out_sig ? out_sig : "");
    }
    return SUB_EXIT_OK;
}
