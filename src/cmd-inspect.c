/* substrate inspect REF [--json] */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/ref.h"
#include "substrate/registry.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void help(FILE *f) {
    fputs(
        "Usage: substrate inspect REF [--json]\n"
        "\n"
        "Show an image in the registry without pulling its layers: the manifest digest (verified\n"
        "against the bytes received), media type and size, the layers, and from the image config\n"
        "its platform, creation time and labels. For an index (multi-platform image) the child\n"
        "manifests and their platforms are listed.\n"
        "\n"
        "REF is [REGISTRY/]REPO:TAG or [REGISTRY/]REPO@sha256:... Without a registry,\n"
        "$SUBSTRATE_REGISTRY is used; a remote registry is reached over https (README: Remote registries).\n"
        "\n"
        "Options:\n"
        "  --json      print {name, reference, digest, mediaType, size, config, layers, "
        "manifests}\n"
        "  -h, --help  show this help\n"
        "\n"
        "Environment:\n"
        "  SUBSTRATE_REGISTRY           default registry host:port (default 127.0.0.1:5000)\n"
        "  SUBSTRATE_REGISTRY_USER      user, when the registry asks (else `substrate login`)\n"
        "  SUBSTRATE_REGISTRY_PASSWORD  its password\n"
        "  SUBSTRATE_CA_FILE            CA certificates (PEM) trusted besides the system's\n"
        "\n"
        "Exit codes:\n"
        "  0  shown\n"
        "  1  a digest did not match what the registry sent\n"
        "  2  usage error, bad reference, no such image, malformed manifest or config\n"
        "  3  the registry is unreachable or refused the request\n"
        "\n"
        "Examples:\n"
        "  substrate inspect hello:v1\n"
        "  substrate inspect 127.0.0.1:5000/hello@sha256:4f1c... --json\n",
        f);
}

static json_t *desc_list(const sub_desc *d, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, sub_desc_to_json(&d[i]));
    return a;
}

int cmd_inspect(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_usage_error("inspect", "unknown option");
        }
    }
    if (optind + 1 != argc) return cli_usage_error("inspect", "expected exactly one REF");
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    if (sub_ref_parse(argv[optind], sub_registry_addr(), &ref, &e) < 0)
        return cli_fail("inspect", &e);
    if (!ref.tag && !ref.digest)
        return cli_usage_error("inspect", "%s: name a tag (REPO:TAG) or a digest (REPO@sha256:...)",
                               argv[optind]);
    sub_reg_opts ro = {.host = ref.registry};
    _cleanup_reg_ sub_reg *r = NULL;
    if (sub_reg_new(&ro, &r, &e) < 0) return cli_fail("inspect", &e);
    _cleanup_free_ char *body = NULL, *ct = NULL;
    size_t len = 0;
    char digest[SUB_DIGEST_MAX];
    if (sub_reg_manifest_get(r, ref.repository, ref.digest ? ref.digest : ref.tag, &body, &len, &ct,
                             digest, &e) < 0)
        return cli_fail("inspect", &e);
    _cleanup_manifest_ sub_manifest m = {0};
    if (sub_manifest_parse(body, len, ct, &m, &e) < 0) return cli_fail("inspect", &e);
    _cleanup_image_config_ sub_image_config cfg = {0};
    bool have_cfg = false;
    if (m.kind == SUB_MANIFEST_IMAGE && sub_mt_is_config(m.config.media_type)) {
        _cleanup_free_ char *cb = NULL;
        size_t cl = 0;
        if (sub_reg_blob_get_buf(r, ref.repository, m.config.digest, SUB_CONFIG_MAX, &cb, &cl, &e) <
            0)
            return cli_fail("inspect", &e);
        if (sub_image_config_parse(cb, cl, &cfg, &e) < 0) return cli_fail("inspect", &e);
        have_cfg = true;
    }
    _cleanup_free_ char *nm = sub_ref_name(&ref);
    _cleanup_free_ char *dref = xasprintf("%s@%s", nm, digest);

    if (json) {
        _cleanup_json_ json_t *j =
            json_pack("{s:s,s:s,s:s,s:s,s:I}", "name", nm, "reference", dref, "digest", digest,
                      "mediaType", m.media_type, "size", (json_int_t)len);
        if (ref.tag) json_object_set_new(j, "tag", json_string(ref.tag));
        if (m.kind == SUB_MANIFEST_IMAGE) {
            json_t *cj = sub_desc_to_json(&m.config);
            if (have_cfg) {
                json_object_set_new(cj, "architecture", json_string(cfg.architecture));
                json_object_set_new(cj, "os", json_string(cfg.os));
                if (cfg.variant) json_object_set_new(cj, "variant", json_string(cfg.variant));
                if (cfg.created) json_object_set_new(cj, "created", json_string(cfg.created));
                json_t *labels = json_object();
                for (size_t i = 0; i < cfg.n_labels; i++)
                    json_object_set_new(labels, cfg.labels[i].key,
                                        json_string(cfg.labels[i].value));
                json_object_set_new(cj, "labels", labels);
            }
            json_object_set_new(j, "config", cj);
            json_object_set_new(j, "layers", desc_list(m.layers, m.n_layers));
        } else {
            json_object_set_new(j, "manifests", desc_list(m.manifests, m.n_manifests));
        }
        _cleanup_free_ char *s = sub_json_dump_pretty(j);
        fputs(s, stdout);
        return 0;
    }

    printf("Name:       %s\n", nm);
    if (ref.tag) printf("Tag:        %s\n", ref.tag);
    printf("Digest:     %s\n", digest);
    printf("Reference:  %s\n", dref);
    printf("MediaType:  %s\n", m.media_type);
    printf("Size:       %zu\n", len);
    if (m.kind == SUB_MANIFEST_IMAGE) {
        printf("Config:     %s (%llu bytes, %s)\n", m.config.digest,
               (unsigned long long)m.config.size, m.config.media_type);
        if (have_cfg) {
            printf("Platform:   %s/%s%s%s\n", cfg.os, cfg.architecture, cfg.variant ? "/" : "",
                   cfg.variant ? cfg.variant : "");
            if (cfg.created) printf("Created:    %s\n", cfg.created);
        }
        printf("Layers:     %zu\n", m.n_layers);
        for (size_t i = 0; i < m.n_layers; i++)
            printf("  %s  %llu  %s\n", m.layers[i].digest, (unsigned long long)m.layers[i].size,
                   m.layers[i].media_type);
        if (have_cfg) {
            printf("Labels:     %zu\n", cfg.n_labels);
            for (size_t i = 0; i < cfg.n_labels; i++)
                printf("  %s=%s\n", cfg.labels[i].key, cfg.labels[i].value);
        }
    } else {
        printf("Manifests:  %zu\n", m.n_manifests);
        for (size_t i = 0; i < m.n_manifests; i++) {
            const sub_desc *d = &m.manifests[i];
            printf("  %s  %llu  %s%s%s%s%s\n", d->digest, (unsigned long long)d->size,
                   d->platform ? d->platform->os : "", d->platform ? "/" : "",
                   d->platform ? d->platform->architecture : "",
                   d->platform && d->platform->variant ? "/" : "",
                   d->platform && d->platform->variant ? d->platform->variant : "");
        }
    }
    return 0;
}
