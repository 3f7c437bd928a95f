/* substrate inspect REF [--json | --raw | --config] */
#include "cli.h"
#include "substrate/config.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/ref.h"
#include "substrate/registry.h"
#include "substrate/strbuf.h"
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void help(FILE *f) {
    fputs(
        "Usage: substrate inspect REF [--json | --raw | --config]\n"
        "\n"
        "Show an image in the registry without pulling its layers: the manifest digest (verified\n"
        "against the bytes received), media type and size, the layers, and from the image config\n"
        "its platform, creation time, entrypoint, command, environment, user, working directory,\n"
        "exposed ports and labels. For an index (multi-platform image) the child manifests and\n"
        "their platforms are listed. Text that comes from the registry is printed with control\n"
        "characters escaped (\\xNN), so it cannot drive the terminal.\n"
        "\n"
        "REF is [REGISTRY/]REPO:TAG or [REGISTRY/]REPO@sha256:..., or skopeo's docker://REF.\n"
        "Without a registry, $SUBSTRATE_REGISTRY is used; a remote registry is reached over https\n"
        "(README: Remote registries).\n"
        "\n"
        "Options:\n"
        "  --json, -o json  print {name, tag, digest, digest_ref, media_type, size, config:\n"
        "                   {media_type, digest, size, architecture, os, variant, created,\n"
        "                   entrypoint, cmd, env, user, workdir, exposed_ports, labels},\n"
        "                   layers: [{media_type, digest, size}], manifests (an index)}\n"
        "  --raw            print the manifest bytes exactly as the registry sent them (after\n"
        "                   checking their digest), like `skopeo inspect --raw`\n"
        "  --config         print the image config bytes exactly (digest-checked), like\n"
        "                   `skopeo inspect --config --raw`\n"
        "  -h, --help       show this help\n"
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
        "  2  usage error, bad reference, no such image, malformed manifest or config,\n"
        "     --config of an index\n"
        "  3  the registry is unreachable or refused the request\n"
        "\n"
        "Examples:\n"
        "  substrate inspect hello:v1\n"
        "  substrate inspect 127.0.0.1:5000/hello@sha256:4f1c... --json\n"
        "  substrate inspect docker://127.0.0.1:5000/hello:v1 --config | jq .config\n",
        f);
}

static json_t *platform_json(const sub_platform *p) {
    json_t *j = json_object();
    json_object_set_new(j, "os", sub_json_str(p->os));
    json_object_set_new(j, "architecture", sub_json_str(p->architecture));
    if (p->variant) json_object_set_new(j, "variant", sub_json_str(p->variant));
    if (p->os_version) json_object_set_new(j, "os_version", sub_json_str(p->os_version));
    return j;
}

/* A descriptor, in our output's naming (not the OCI document's). */
static json_t *desc_json(const sub_desc *d) {
    json_t *j = json_object();
    json_object_set_new(j, "media_type", sub_json_str(d->media_type));
    json_object_set_new(j, "digest", sub_json_str(d->digest));
    json_object_set_new(j, "size", json_integer((json_int_t)d->size));
    if (d->artifact_type) json_object_set_new(j, "artifact_type", sub_json_str(d->artifact_type));
    if (d->platform) json_object_set_new(j, "platform", platform_json(d->platform));
    if (d->n_annotations) {
        json_t *a = json_object();
        for (size_t i = 0; i < d->n_annotations; i++) {
            _cleanup_free_ char *k = sub_utf8_sanitize(d->annotations[i].key);
            json_object_set_new(a, k, sub_json_str(d->annotations[i].value));
        }
        json_object_set_new(j, "annotations", a);
    }
    return j;
}

static json_t *desc_list(const sub_desc *d, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, desc_json(&d[i]));
    return a;
}

static json_t *strv_json(char **v) {
    if (!v) return json_null();
    json_t *a = json_array();
    for (char **p = v; *p; p++) json_array_append_new(a, sub_json_str(*p));
    return a;
}

/* config.ExposedPorts keys ("8080/tcp"), sorted; NULL-terminated (caller
 * frees). The config already parsed, so only its shape is trusted here. */
static char **exposed_ports(const char *cfg, size_t len) {
    _cleanup_strv_ char **v = xcalloc(1, sizeof(char *));
    json_t *j = NULL;
    if (sub_json_parse(cfg, len, SUB_CONFIG_MAX, "config", &j, NULL) < 0) return TAKE_PTR(v);
    json_t *ports = json_object_get(json_object_get(j, "config"), "ExposedPorts");
    const char *k;
    json_t *it;
    json_object_foreach(ports, k, it) strv_push(&v, k);
    json_decref(j);
    size_t n = strv_len(v);
    for (size_t i = 1; i < n; i++) /* few entries: insertion sort */
        for (size_t k2 = i; k2 > 0 && strcmp(v[k2 - 1], v[k2]) > 0; k2--) {
            char *t = v[k2];
            v[k2] = v[k2 - 1];
            v[k2 - 1] = t;
        }
    return TAKE_PTR(v);
}

/* "a b c" for the text output, each element quoted when it holds a blank. */
static char *strv_text(char **v) {
    sub_buf b = SUB_BUF_INIT;
    for (char **p = v; p && *p; p++) {
        bool q = !**p || strpbrk(*p, " \t\"'");
        sub_buf_printf(&b, "%s%s%s%s", p == v ? "" : " ", q ? "\"" : "", *p, q ? "\"" : "");
    }
    return sub_buf_detach(&b, NULL);
}

int cmd_inspect(int argc, char **argv) {
    enum { OPT_RAW = 256, OPT_CONFIG };
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"raw", no_argument, NULL, OPT_RAW},
        {"config", no_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, 'h'},
        CLI_OUTPUT_OPTION,
        {0},
    };
    bool json = false, raw = false, config = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = true; break;
        case 'o':
            if (cli_output_opt("inspect", optarg, &json)) return SUB_EXIT_USAGE;
            break;
        case OPT_RAW: raw = true; break;
        case OPT_CONFIG: config = true; break;
        case 'h': help(stdout); return 0;
        default: return cli_bad_option("inspect", argv, opts);
        }
    }
    if (json + raw + config > 1)
        return cli_usage_error("inspect", "give one of --json, --raw or --config");
    if (optind + 1 != argc) return cli_usage_error("inspect", "expected exactly one REF");
    sub_err e = {0};
    _cleanup_ref_ sub_ref ref = {0};
    int rc = cli_parse_ref("inspect", argv[optind], &ref);
    if (rc) return rc;
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
    if (raw) {
        fwrite(body, 1, len, stdout);
        return fflush(stdout) == 0 ? 0 : SUB_EXIT_ENV;
    }
    _cleanup_manifest_ sub_manifest m = {0};
    if (sub_manifest_parse(body, len, ct, &m, &e) < 0) return cli_fail("inspect", &e);
    _cleanup_free_ char *nm = sub_ref_name(&ref);
    if (config && m.kind != SUB_MANIFEST_IMAGE)
        return cli_usage_error("inspect",
                               "%s@%s is an index (%zu manifests): it has no config; inspect one "
                               "of its manifests by digest (see `substrate inspect %s`)",
                               nm, digest, m.n_manifests, argv[optind]);
    _cleanup_image_config_ sub_image_config cfg = {0};
    _cleanup_free_ char *cb = NULL;
    size_t cl = 0;
    bool have_cfg = false;
    if (m.kind == SUB_MANIFEST_IMAGE && (config || sub_mt_is_config(m.config.media_type))) {
        if (sub_reg_blob_get_buf(r, ref.repository, m.config.digest, SUB_CONFIG_MAX, &cb, &cl, &e) <
            0)
            return cli_fail("inspect", &e);
        if (config) {
            fwrite(cb, 1, cl, stdout);
            return fflush(stdout) == 0 ? 0 : SUB_EXIT_ENV;
        }
        if (sub_image_config_parse(cb, cl, &cfg, &e) < 0) return cli_fail("inspect", &e);
        have_cfg = true;
    }
    _cleanup_strv_ char **ports = have_cfg ? exposed_ports(cb, cl) : NULL;
    _cleanup_free_ char *dref = xasprintf("%s@%s", nm, digest);

    if (json) {
        _cleanup_json_ json_t *j = json_object();
        json_object_set_new(j, "name", sub_json_str(nm));
        json_object_set_new(j, "tag", sub_json_str(ref.tag));
        json_object_set_new(j, "digest", sub_json_str(digest));
        json_object_set_new(j, "digest_ref", sub_json_str(dref));
        json_object_set_new(j, "media_type", sub_json_str(m.media_type));
        json_object_set_new(j, "size", json_integer((json_int_t)len));
        if (m.kind == SUB_MANIFEST_IMAGE) {
            json_t *cj = desc_json(&m.config);
            if (have_cfg) {
                json_object_set_new(cj, "architecture", sub_json_str(cfg.architecture));
                json_object_set_new(cj, "os", sub_json_str(cfg.os));
                if (cfg.variant) json_object_set_new(cj, "variant", sub_json_str(cfg.variant));
                if (cfg.created) json_object_set_new(cj, "created", sub_json_str(cfg.created));
                json_object_set_new(cj, "entrypoint", strv_json(cfg.entrypoint));
                json_object_set_new(cj, "cmd", strv_json(cfg.cmd));
                json_object_set_new(cj, "env", strv_json(cfg.env));
                json_object_set_new(cj, "user", sub_json_str(cfg.user));
                json_object_set_new(cj, "workdir", sub_json_str(cfg.working_dir));
                json_object_set_new(cj, "exposed_ports", strv_json(ports));
                json_t *labels = json_object();
                for (size_t i = 0; i < cfg.n_labels; i++) {
                    _cleanup_free_ char *k = sub_utf8_sanitize(cfg.labels[i].key);
                    json_object_set_new(labels, k, sub_json_str(cfg.labels[i].value));
                }
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

    /* cli_line: every string here may come from the registry */
    cli_line(stdout, "Name:       %s", nm);
    if (ref.tag) cli_line(stdout, "Tag:        %s", ref.tag);
    cli_line(stdout, "Digest:     %s", digest);
    cli_line(stdout, "Reference:  %s", dref);
    cli_line(stdout, "MediaType:  %s", m.media_type);
    cli_line(stdout, "Size:       %zu", len);
    if (m.kind == SUB_MANIFEST_IMAGE) {
        cli_line(stdout, "Config:     %s (%llu bytes, %s)", m.config.digest,
                 (unsigned long long)m.config.size, m.config.media_type);
        if (have_cfg) {
            cli_line(stdout, "Platform:   %s/%s%s%s", cfg.os, cfg.architecture,
                     cfg.variant ? "/" : "", cfg.variant ? cfg.variant : "");
            if (cfg.created) cli_line(stdout, "Created:    %s", cfg.created);
            _cleanup_free_ char *ep = strv_text(cfg.entrypoint), *cmd = strv_text(cfg.cmd);
            _cleanup_free_ char *pv = strv_text(ports);
            cli_line(stdout, "Entrypoint: %s", cfg.entrypoint ? ep : "(none)");
            cli_line(stdout, "Cmd:        %s", cfg.cmd ? cmd : "(none)");
            cli_line(stdout, "User:       %s", cfg.user && *cfg.user ? cfg.user : "(none: root)");
            cli_line(stdout, "WorkingDir: %s",
                     cfg.working_dir && *cfg.working_dir ? cfg.working_dir : "(none: /)");
            cli_line(stdout, "Ports:      %s", ports && *ports ? pv : "(none)");
            cli_line(stdout, "Env:        %zu", strv_len(cfg.env));
            for (char **p = cfg.env; p && *p; p++) cli_line(stdout, "  %s", *p);
        }
        cli_line(stdout, "Layers:     %zu", m.n_layers);
        for (size_t i = 0; i < m.n_layers; i++)
            cli_line(stdout, "  %s  %llu  %s", m.layers[i].digest,
                     (unsigned long long)m.layers[i].size, m.layers[i].media_type);
        if (have_cfg) {
            cli_line(stdout, "Labels:     %zu", cfg.n_labels);
            for (size_t i = 0; i < cfg.n_labels; i++)
                cli_line(stdout, "  %s=%s", cfg.labels[i].key, cfg.labels[i].value);
        }
    } else {
        cli_line(stdout, "Manifests:  %zu", m.n_manifests);
        for (size_t i = 0; i < m.n_manifests; i++) {
            const sub_desc *d = &m.manifests[i];
            cli_line(stdout, "  %s  %llu  %s%s%s%s%s", d->digest, (unsigned long long)d->size,
                     d->platform ? d->platform->os : "", d->platform ? "/" : "",
                     d->platform ? d->platform->architecture : "",
                     d->platform && d->platform->variant ? "/" : "",
                     d->platform && d->platform->variant ? d->platform->variant : "");
        }
    }
    return 0;
}
