/* substrate verify: check a cosign signature (offline mode: files on disk). */
#include "cli.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate verify --offline [--key FILE.pub]... --payload FILE\n"
          "                        --signature FILE --digest sha256:<hex>\n"
          "                        (--identity REF | --identity-prefix PREFIX | --any-repo)\n"
          "                        [--json]\n"
          "\n"
          "Verify a cosign key-based signature: the signature must verify over the exact\n"
          "payload bytes with one of the trusted keys, the payload must name the image digest\n"
          "given with --digest, and its identity (critical.identity.docker-reference) must\n"
          "match the identity policy. The checks run in that order; the first failure is the\n"
          "reason reported. The payload is only read once its signature has verified.\n"
          "\n"
          "With --offline the payload and signature come from files (for example the layer\n"
          "blob and the dev.cosignproject.cosign/signature annotation of a sha256-<hex>.sig\n"
          "artifact). Fetching them from the registry is not available yet.\n"
          "\n"
          "Options:\n"
          "      --offline               verify local files (required for now)\n"
          "      --key FILE.pub          a trusted public key (PEM \"PUBLIC KEY\", ECDSA P-256);\n"
          "                              repeat for several. Default: every *.pub in\n"
          "                              $SUBSTRATE_STATE/trust/\n"
          "      --payload FILE          the simple-signing payload, exact bytes\n"
          "      --signature FILE        the signature, base64 of ASN.1 DER (surrounding\n"
          "                              whitespace ignored)\n"
          "      --digest sha256:<hex>   the image (manifest) digest the payload must name\n"
          "      --identity REF          the payload must name exactly this repository,\n"
          "                              \"registry/repository\", compared as written\n"
          "                              (\"localhost:5000/x\" is not \"127.0.0.1:5000/x\")\n"
          "      --identity-prefix P     the payload's repository must be P or lie under P/\n"
          "      --any-repo              do not check the identity (a signature copied to a\n"
          "                              mirror names the original repository)\n"
          "      --json                  print the verification record (every check, its\n"
          "                              result and the key that verified) on stdout\n"
          "  -h, --help                  show this help\n"
          "\n"
          "Output: \"Verified OK by key sha256:...\" on success; otherwise the reason: malformed\n"
          "signature, no trusted key matched (made by another key, or signature or payload\n"
          "altered), malformed payload, digest mismatch, or identity mismatch.\n"
          "\n"
          "Exit codes: 0 verified; 1 verification refused; 2 usage or input error (missing\n"
          "option, unreadable key); 3 environment error.\n"
          "\n"
          "Examples:\n"
          "  substrate verify --offline --key release.pub --payload payload.json \\\n"
          "      --signature signature.b64 --identity 127.0.0.1:5000/hello \\\n"
          "      --digest sha256:9a119f34ac7d13e731bc3301479a2346da3b2f0427a9459c5a561e47b2844455\n"
          "  substrate verify --offline --payload p.json --signature s.b64 --any-repo \\\n"
          "      --digest sha256:... --json        # keys from $SUBSTRATE_STATE/trust/\n",
          f);
}

static int read_signature(const char *path, char **out, sub_err *e) {
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    int r = sub_read_file(path, SUB_SIGN_MAX_SIG_B64, &s, &len, e);
    if (r < 0) return r;
    size_t a = 0;
    while (a < len && strchr(" \t\r\n", s[a])) a++;
    while (len > a && strchr(" \t\r\n", s[len - 1])) len--;
    if (memchr(s + a, 0, len - a))
        return sub_err_setk(e, SUB_KIND_INPUT, -EBADMSG, "%s contains NUL bytes: not a base64 signature",
                            path);
    *out = xstrndup(s + a, len - a);
    return 0;
}

int cmd_verify(int argc, char **argv) {
    enum {
        OPT_OFFLINE = 256, OPT_KEY, OPT_PAYLOAD, OPT_SIGNATURE, OPT_DIGEST, OPT_IDENTITY,
        OPT_PREFIX, OPT_ANY, OPT_JSON
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
        {"any-repo", no_argument, NULL, OPT_ANY},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    bool offline = false, json = false;
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
        default: return cli_usage_error("verify", "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return cli_usage_error("verify", "unexpected argument \"%s\"%s", argv[optind],
                               offline ? "" : " (verifying an image in the registry is not "
                                              "available yet; use --offline with files)");
    if (!offline)
        return cli_usage_error("verify",
                               "only --offline verification (payload and signature files) is "
                               "available yet; fetching them from the registry comes later");
    if (!payload_path || !sig_path || !digest)
        return cli_usage_error("verify", "--payload, --signature and --digest are required");
    if (npolicy != 1)
        return cli_usage_error("verify",
                               "give exactly one of --identity REF, --identity-prefix PREFIX or "
                               "--any-repo (which repository the signature must be for)");
    if (identity && !*identity) return cli_usage_error("verify", "empty identity");

    sub_err e = {0};
    sub_pubkey **keys = NULL;
    size_t nkeys = strv_len(keyfiles);
    if (nkeys) {
        keys = xcalloc(nkeys + 1, sizeof *keys);
        for (size_t i = 0; i < nkeys; i++)
            if (sub_pubkey_load_file(keyfiles[i], &keys[i], &e) < 0) {
                sub_pubkeys_free(keys);
                return cli_fail("verify", &e);
            }
    } else {
        _cleanup_free_ char *dir = sub_trust_dir();
        if (sub_trust_load(dir, &keys, &nkeys, &e) < 0) return cli_fail("verify", &e);
        if (nkeys == 0) {
            sub_pubkeys_free(keys);
            sub_err_setk(&e, SUB_KIND_INPUT, -ENOKEY,
                         "the trust store %s holds no keys (*.pub): pass --key FILE.pub or copy "
                         "the public keys you trust there",
                         dir);
            return cli_fail("verify", &e);
        }
    }
    _cleanup_pubkeys_ sub_pubkey **keys_owned = keys;

    _cleanup_free_ char *payload = NULL, *sig = NULL;
    size_t plen = 0;
    if (sub_read_file(payload_path, SUB_SIGN_MAX_PAYLOAD, &payload, &plen, &e) < 0 ||
        read_signature(sig_path, &sig, &e) < 0)
        return cli_fail("verify", &e);

    sub_verify_record rec;
    int r = sub_cosign_verify((const sub_pubkey *const *)keys, nkeys, payload, plen, sig, digest,
                              identity, policy, &rec, &e);
    if (r == -EINVAL) return cli_fail("verify", &e);
    if (json) {
        _cleanup_json_ json_t *j = sub_verify_record_json(&rec);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
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
