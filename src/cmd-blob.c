/* substrate sign-blob / verify-blob: cosign's key-based blob signatures
 * (a jobspec, a manifest, any file): base64 DER ECDSA over the file's bytes. */
#include "cli.h"
#include "substrate/admit.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void sign_usage(FILE *f) {
    fputs("Usage: substrate sign-blob FILE --key FILE.key [--passphrase-file F]\n"
          "                             [--output-signature SIG] [--json]\n"
          "\n"
          "Sign the bytes of FILE as `cosign sign-blob --key` does: ECDSA P-256 over SHA-256,\n"
          "the DER signature written in base64 (one line) to SIG, by default FILE.sig. The\n"
          "key is a cosign-format encrypted private key (`substrate key generate`), opened\n"
          "as `substrate sign` opens it: the file first, then the passphrase\n"
          "(--passphrase-file, $SUBSTRATE_PASSPHRASE, $COSIGN_PASSWORD, or the terminal).\n"
          "SIG is replaced atomically. Files up to 64 MiB.\n"
          "\n"
          "Options:\n"
          "      --key FILE.key            the signing key (required)\n"
          "      --passphrase-file F       read the passphrase from F\n"
          "      --output-signature SIG    where the signature goes (default FILE.sig)\n"
          "      --json, -o json           print {file, signature_file, key_id, sha256}\n"
          "\n"
          "Exit codes: 0 signed; 2 usage or input error (no such file, wrong passphrase);\n"
          "3 environment error.\n",
          f);
}

static void verify_usage(FILE *f) {
    fputs("Usage: substrate verify-blob FILE [--key FILE.pub]... [--signature SIG] [--json]\n"
          "\n"
          "Check a signature over the bytes of FILE as `cosign verify-blob --key` does: SIG (by\n"
          "default FILE.sig) holds base64 DER ECDSA P-256 over SHA-256 of the bytes. Keys: every\n"
          "--key, or without one every key of the trust store ($SUBSTRATE_STATE/trust/, see\n"
          "`substrate key trust`). Nothing in FILE chooses the key.\n"
          "\n"
          "Options:\n"
          "      --key FILE.pub        a trusted public key; repeat for several\n"
          "      --signature SIG       the signature file (default FILE.sig)\n"
          "      --json, -o json       print {file, signature_file, verified, key_id, reason,\n"
          "                            message}\n"
          "\n"
          "Exit codes: 0 verified; 1 refused (no trusted key matched, malformed signature);\n"
          "2 usage or input error (no such file, no keys); 3 environment error.\n",
          f);
}

enum { OPT_KEY = 256, OPT_PASSFILE, OPT_OUTSIG, OPT_SIG, OPT_JSON };

CMD(sign_blob) {
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},           {"key", required_argument, NULL, OPT_KEY},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"output-signature", required_argument, NULL, OPT_OUTSIG},
        {"json", no_argument, NULL, OPT_JSON},      CLI_OUTPUT_OPTION,
        {NULL, 0, NULL, 0}};
    const char *keyp = NULL, *passfile = NULL, *outsig = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': sign_usage(stdout); return SUB_EXIT_OK;
        case OPT_KEY: keyp = optarg; break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_OUTSIG: outsig = optarg; break;
        case OPT_JSON: json = true; break;
        case 'o':
            if (cli_output_opt("sign-blob", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        default: return cli_bad_option("sign-blob", argv, opts);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("sign-blob", "give exactly one FILE to sign");
    if (!keyp) return cli_usage_error("sign-blob", "--key FILE.key is required");
    const char *file = argv[optind];
    _cleanup_free_ char *sigpath = outsig ? xstrdup(outsig) : xasprintf("%s.sig", file);
    sub_err e = {0};
    if (!sub_path_exists(file)) {
        sub_err_setk(&e, SUB_KIND_INPUT, -ENOENT, "no such file: %s", file);
        return cli_fail("sign-blob", &e);
    }
    _cleanup_privkey_ sub_privkey *k = NULL;
    int rc = cli_open_signing_key("sign-blob", keyp, passfile, "nothing was signed", &k);
    if (rc) return rc;
    _cleanup_free_ char *sig = NULL;
    if (sub_blob_sign_file(k, file, &sig, &e) < 0) return cli_fail("sign-blob", &e);
    _cleanup_free_ char *line = xasprintf("%s\n", sig);
    if (sub_write_file_atomic(sigpath, line, strlen(line), 0644, &e) < 0) return cli_fail("sign-blob", &e);
    char sha[SUB_DIGEST_MAX] = "";
    size_t len = 0;
    (void)sub_sha256_file(file, sha, &len, NULL);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:o,s:o,s:s,s:s}", "file", sub_json_str(file), "signature_file",
                                             sub_json_str(sigpath), "key_id", sub_privkey_id(k), "sha256", sha);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        cli_line(stdout, "Signed %s (%s) with key %s: %s", file, sha, sub_privkey_id(k), sigpath);
    }
    return SUB_EXIT_OK;
}

CMD(verify_blob) {
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         {"signature", required_argument, NULL, OPT_SIG},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         CLI_OUTPUT_OPTION,
                                         {NULL, 0, NULL, 0}};
    _cleanup_strv_ char **keyfiles = NULL;
    const char *sigarg = NULL;
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': verify_usage(stdout); return SUB_EXIT_OK;
        case OPT_KEY: strv_push(&keyfiles, optarg); break;
        case OPT_SIG: sigarg = optarg; break;
        case OPT_JSON: json = true; break;
        case 'o':
            if (cli_output_opt("verify-blob", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        default: return cli_bad_option("verify-blob", argv, opts);
        }
    }
    if (optind + 1 != argc) return cli_usage_error("verify-blob", "give exactly one FILE to verify");
    const char *file = argv[optind];
    _cleanup_free_ char *sigpath = sigarg ? xstrdup(sigarg) : xasprintf("%s.sig", file);
    sub_err e = {0};
    _cleanup_free_ char *data = NULL, *sig = NULL;
    size_t len = 0, slen = 0;
    if (sub_sign_file_error(sub_read_file(file, SUB_BLOB_MAX, &data, &len, &e), &e) < 0 ||
        sub_sign_file_error(sub_read_file(sigpath, 4096, &sig, &slen, &e), &e) < 0)
        return cli_fail("verify-blob", &e);
    sub_pubkey **keys = NULL;
    size_t nkeys = strv_len(keyfiles);
    if (!nkeys) {
        if (sub_admit_trusted_keys(NULL, &keys, &nkeys, &e) < 0) return cli_fail("verify-blob", &e);
    } else {
        keys = xcalloc(nkeys + 1, sizeof *keys);
        for (size_t i = 0; i < nkeys; i++)
            if (sub_pubkey_load_file(keyfiles[i], &keys[i], &e) < 0) {
                sub_pubkeys_free(keys);
                return cli_fail("verify-blob", &e);
            }
    }
    _cleanup_pubkeys_ sub_pubkey **kv = keys;
    char by[SUB_DIGEST_MAX] = "";
    int r = sub_blob_verify((const sub_pubkey *const *)kv, nkeys, data, len, sig, by, &e);
    if (json) {
        const char *reason = r < 0 ? sub_reason_to_string(e.reason) : NULL;
        _cleanup_json_ json_t *j = json_pack("{s:o,s:o,s:b,s:o,s:o,s:o}", "file", sub_json_str(file),
                                             "signature_file", sub_json_str(sigpath), "verified", r == 0,
                                             "key_id", r == 0 ? json_string(by) : json_null(), "reason",
                                             reason ? json_string(reason) : json_null(), "message",
                                             r < 0 ? sub_json_str(e.msg) : json_null());
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
        cli_json_printed();
    }
    if (r < 0) return cli_fail("verify-blob", &e);
    if (!json) cli_line(stdout, "Verified OK: %s signed by key %s (%s)", file, by, sigpath);
    return SUB_EXIT_OK;
}
