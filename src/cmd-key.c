/* substrate key: cosign-format signing keys. */
#include "cli.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/sign.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("Usage: substrate key generate <prefix> [--passphrase-file FILE] [--json]\n"
          "       substrate key id <public-key.pub> [--json]\n"
          "       substrate key trust <public-key.pub> [--json]\n"
          "       substrate key untrust <key-id>\n"
          "       substrate key list [--json]\n"
          "\n"
          "Cosign-compatible ECDSA P-256 signing keys, and the trust store of public keys\n"
          "that `substrate verify` (and every deployment) accepts signatures from.\n"
          "\n"
          "  generate <prefix>  Create <prefix>.key, the private key encrypted in cosign's\n"
          "                     format (PEM \"ENCRYPTED SIGSTORE PRIVATE KEY\": scrypt N=32768\n"
          "                     r=8 p=1 + nacl/secretbox over the PKCS#8 key; mode 0600), and\n"
          "                     <prefix>.pub, the public key (PEM \"PUBLIC KEY\"). cosign can\n"
          "                     use both. Existing files are never overwritten.\n"
          "  id <file.pub>      Print the key id: \"sha256:\" + hex SHA-256 of the key's\n"
          "                     SubjectPublicKeyInfo DER. Every message naming a key shows it.\n"
          "  trust <file.pub>   Add the public key to the trust store $SUBSTRATE_STATE/trust/ as\n"
          "                     <hex of its key id>.pub (mode 0644). Adding it again is a no-op.\n"
          "  untrust <key-id>   Remove every trust store entry holding that key\n"
          "                     (sha256:<hex> or <hex>).\n"
          "  list               Show the trusted keys: key id and file.\n"
          "\n"
          "Rotation: `key trust new.pub`; re-sign the images with the new key (`substrate\n"
          "sign REF@DIGEST --key new.key` adds a signature, the old one stays); then\n"
          "`key untrust <old-id>`. Meanwhile any trusted key verifies.\n"
          "\n"
          "Options:\n"
          "      --passphrase-file FILE  read the passphrase from FILE (one trailing newline\n"
          "                              is dropped)\n"
          "      --json, -o json         machine-readable output (key_id, file; generate:\n"
          "                              key_id, private_key, public_key, algorithm,\n"
          "                              passphrase_source)\n"
          "  -h, --help                  show this help\n"
          "\n"
          "Passphrase, first source found wins:\n"
          "  1. --passphrase-file FILE\n"
          "  2. $SUBSTRATE_PASSPHRASE (used even when set to the empty string), else\n"
          "     $COSIGN_PASSWORD (cosign's variable)\n"
          "  3. <prefix>.pass beside the key: a plain file, yours, mode 0600; one that group\n"
          "     or others can read is refused\n"
          "  4. a prompt on the terminal, without echo, asked twice for a new key. With no\n"
          "     terminal (a script, a service) the command fails at once instead of waiting.\n"
          "\n"
          "Exit codes: 0 done; 2 usage or input error (files exist, no passphrase source,\n"
          "not a public key, key not trusted); 3 environment error (cannot write, no\n"
          "randomness, unreadable trust store).\n"
          "\n"
          "Examples:\n"
          "  substrate key generate platform/keys/release\n"
          "  SUBSTRATE_PASSPHRASE=... substrate key generate /tmp/ci --json\n"
          "  substrate key id platform/keys/release.pub\n"
          "  substrate key trust platform/keys/release.pub\n"
          "  substrate key untrust sha256:17400879cad617312f3bb1331ca3d88490b32e586a9295fe19e269e7bdcb015c\n",
          f);
}

static const char *source_name(sub_pass_source s) {
    switch (s) {
    case SUB_PASS_FILE: return "file";
    case SUB_PASS_ENV: return "environment";
    case SUB_PASS_BESIDE_KEY: return "pass-file";
    case SUB_PASS_PROMPT: return "prompt";
    }
    return "?";
}

static int key_generate(const char *prefix, const char *passfile, bool json) {
    sub_err e = {0};
    _cleanup_free_ char *keyp = xasprintf("%s.key", prefix);
    _cleanup_free_ char *pubp = xasprintf("%s.pub", prefix);
    /* Refuse before asking for a passphrase. */
    if (sub_key_files_absent(prefix, &e) < 0) return cli_fail("key generate", &e);
    _cleanup_free_ char *what = xasprintf("new key %s", keyp);
    sub_pass_opts po = {.file = passfile, .key_prefix = prefix, .what = what, .confirm = true};
    _cleanup_passphrase_ sub_passphrase pass = {0};
    if (sub_passphrase_get(&po, &pass, &e) < 0) return cli_fail("key generate", &e);
    char id[SUB_DIGEST_MAX];
    if (sub_key_generate_files(prefix, pass.data, pass.len, id, &e) < 0)
        return cli_fail("key generate", &e);
    if (json) {
        _cleanup_json_ json_t *j =
            json_pack("{s:s, s:o, s:o, s:s, s:s}", "key_id", id, "private_key", sub_json_str(keyp),
                      "public_key", sub_json_str(pubp), "algorithm", "ecdsa-p256-sha256",
                      "passphrase_source", source_name(pass.source));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("Generated ECDSA P-256 key %s\n"
               "  private key: %s (cosign-encrypted, mode 0600; passphrase from %s)\n"
               "  public key:  %s\n",
               id, keyp, pass.origin, pubp);
    }
    return SUB_EXIT_OK;
}

static int key_id(const char *path, bool json) {
    sub_err e = {0};
    _cleanup_pubkey_ sub_pubkey *k = NULL;
    if (sub_pubkey_load_file(path, &k, &e) < 0) return cli_fail("key id", &e);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s, s:o}", "key_id", sub_pubkey_id(k), "file", sub_json_str(path));
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("%s\n", sub_pubkey_id(k));
    }
    return SUB_EXIT_OK;
}

static int key_trust(const char *path, bool json) {
    sub_err e = {0};
    _cleanup_free_ char *dir = sub_trust_dir();
    char id[SUB_DIGEST_MAX];
    _cleanup_free_ char *dest = NULL;
    int r = sub_trust_add(dir, path, id, &dest, &e);
    if (r < 0) return cli_fail("key trust", &e);
    if (json) {
        _cleanup_json_ json_t *j = json_pack("{s:s, s:o, s:b}", "key_id", id, "file", sub_json_str(dest),
                                             "added", r == 1);
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
    } else {
        printf("%s key %s: %s\n", r == 1 ? "Trusted" : "Already trusted:", id, dest);
    }
    return SUB_EXIT_OK;
}

static int key_untrust(const char *id) {
    sub_err e = {0};
    _cleanup_free_ char *dir = sub_trust_dir();
    int r = sub_trust_remove(dir, id, &e);
    if (r < 0) return cli_fail("key untrust", &e);
    printf("No longer trusted: key %s%s (%d entr%s removed from %s)\n",
           str_has_prefix(id, "sha256:") ? "" : "sha256:", id, r, r == 1 ? "y" : "ies", dir);
    return SUB_EXIT_OK;
}

static int key_list(bool json) {
    sub_err e = {0};
    _cleanup_free_ char *dir = sub_trust_dir();
    _cleanup_pubkeys_ sub_pubkey **keys = NULL;
    size_t n = 0;
    if (!sub_path_exists(dir)) {
        keys = xcalloc(1, sizeof *keys);
    } else if (sub_trust_load(dir, &keys, &n, &e) < 0) {
        return cli_fail("key list", &e);
    }
    if (json) {
        _cleanup_json_ json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, json_pack("{s:s, s:o}", "key_id", sub_pubkey_id(keys[i]),
                                               "file", sub_json_str(sub_pubkey_source(keys[i]))));
        _cleanup_free_ char *s = sub_json_dump_pretty(a);
        fputs(s, stdout);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s %s\n", sub_pubkey_id(keys[i]), sub_pubkey_source(keys[i]));
        if (n == 0) fprintf(stderr, "no trusted keys in %s\n", dir);
    }
    return SUB_EXIT_OK;
}

int cmd_key(int argc, char **argv) {
    enum { OPT_PASSFILE = 256, OPT_JSON };
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"passphrase-file", required_argument, NULL, OPT_PASSFILE},
        {"json", no_argument, NULL, OPT_JSON},
        CLI_OUTPUT_OPTION,
        {NULL, 0, NULL, 0},
    };
    const char *passfile = NULL;
    bool json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return SUB_EXIT_OK;
        case 'o':
            if (cli_output_opt("key", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case OPT_PASSFILE: passfile = optarg; break;
        case OPT_JSON: json = true; break;
        default: return cli_bad_option("key", argv, opts);
        }
    }
    if (optind >= argc)
        return cli_usage_error("key", "which action: generate, id, trust, untrust or list?");
    const char *action = argv[optind++];
    int nargs = argc - optind;
    if (!strcmp(action, "generate")) {
        if (nargs != 1)
            return cli_usage_error("key", "generate takes one <prefix> (writes <prefix>.key and "
                                          "<prefix>.pub)");
        if (!*argv[optind]) return cli_usage_error("key", "empty prefix");
        return key_generate(argv[optind], passfile, json);
    }
    if (!strcmp(action, "id")) {
        if (nargs != 1) return cli_usage_error("key", "id takes one public key file");
        if (passfile) return cli_usage_error("key", "id needs no passphrase (it reads a .pub file)");
        return key_id(argv[optind], json);
    }
    if (passfile && strcmp(action, "generate"))
        return cli_usage_error("key", "%s needs no passphrase", action);
    if (!strcmp(action, "trust")) {
        if (nargs != 1) return cli_usage_error("key", "trust takes one public key file");
        return key_trust(argv[optind], json);
    }
    if (!strcmp(action, "untrust")) {
        if (nargs != 1) return cli_usage_error("key", "untrust takes one key id (see `key list`)");
        return key_untrust(argv[optind]);
    }
    if (!strcmp(action, "list")) {
        if (nargs != 0) return cli_usage_error("key", "list takes no arguments");
        return key_list(json);
    }
    return cli_usage_error("key", "unknown action \"%s\" (generate, id, trust, untrust or list)",
                           action);
}
