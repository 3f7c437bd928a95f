/* OCI / Docker v2 manifest, index and image-config model (see manifest.h). */
#include "substrate/manifest.h"
#include "substrate/json.h"
#include "substrate/strbuf.h"
#include <ctype.h>
#include <string.h>

/* ---- media types ---------------------------------------------------------------------- */

char *sub_mt_normalize(const char *mt) {
    if (!mt) return NULL;
    while (*mt == ' ' || *mt == '\t') mt++;
    size_t n = strcspn(mt, ";");
    while (n > 0 &&
           (mt[n - 1] == ' ' || mt[n - 1] == '\t' || mt[n - 1] == '\r' || mt[n - 1] == '\n'))
        n--;
    char *s = xstrndup(mt, n);
    for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    return s;
}

static bool mt_eq(const char *mt, const char *want) {
    if (!mt) return false;
    _cleanup_free_ char *n = sub_mt_normalize(mt);
    return streq(n, want);
}

bool sub_mt_is_image_manifest(const char *mt) {
    return mt_eq(mt, SUB_MT_OCI_MANIFEST) || mt_eq(mt, SUB_MT_DOCKER_MANIFEST);
}
bool sub_mt_is_index(const char *mt) {
    return mt_eq(mt, SUB_MT_OCI_INDEX) || mt_eq(mt, SUB_MT_DOCKER_LIST);
}
bool sub_mt_is_manifest(const char *mt) {
    return sub_mt_is_image_manifest(mt) || sub_mt_is_index(mt);
}
bool sub_mt_is_config(const char *mt) {
    return mt_eq(mt, SUB_MT_OCI_CONFIG) || mt_eq(mt, SUB_MT_DOCKER_CONFIG);
}

/* RFC 6838 as the image spec's schema writes it:
 * ^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$ */
static bool mt_part_ok(const char *s, size_t n) {
    if (n < 1 || n > 127 || !isalnum((unsigned char)s[0])) return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("!#$&^_.+-", s[i])) return false;
    return true;
}

static bool mt_syntax_ok(const char *mt) {
    const char *slash = strchr(mt, '/');
    if (!slash) return false;
    return mt_part_ok(mt, (size_t)(slash - mt)) && mt_part_ok(slash + 1, strlen(slash + 1));
}

/* ---- small helpers ---------------------------------------------------------------------- */

static int kv_cmp(const void *a, const void *b) {
    return strcmp(((const sub_kv *)a)->key, ((const sub_kv *)b)->key);
}

static void kv_free(sub_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static const char *kv_get(const sub_kv *kv, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++)
        if (streq(kv[i].key, key)) return kv[i].value;
    return NULL;
}

/* An optional object of string values (annotations, labels). JSON null counts
 * as absent when allow_null (Docker writes "Labels": null). */
static int parse_string_map(const json_t *obj, const char *what, const char *key, bool allow_null,
                            sub_kv **out, size_t *n_out, sub_err *e) {
    *out = NULL;
    *n_out = 0;
    json_t *m = json_object_get(obj, key);
    if (!m || (allow_null && json_is_null(m))) return 0;
    if (!json_is_object(m))
        return sub_err_set(e, -EBADMSG, "%s: field \"%s\" must be an object of strings", what, key);
    size_t n = json_object_size(m), i = 0;
    sub_kv *kv = xcalloc(n ? n : 1, sizeof *kv);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v)) {
            kv_free(kv, i);
            return sub_err_set(e, -EBADMSG, "%s: \"%s\".\"%s\" must be a string", what, key, k);
        }
        kv[i].key = xstrdup(k);
        kv[i].value = xstrdup(json_string_value(v));
        i++;
    }
    qsort(kv, n, sizeof *kv, kv_cmp);
    *out = kv;
    *n_out = n;
    return 0;
}

/* Optional string; JSON null counts as absent when allow_null. */
static int opt_str(const json_t *obj, const char *what, const char *key, bool allow_null,
                   char **out, sub_err *e) {
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || (allow_null && json_is_null(v))) return 0;
    const char *s;
    int r = sub_json_get_str(obj, what, key, false, &s, e);
    if (r < 0) return r;
    *out = xstrdup(s);
    return 0;
}

static int opt_strv(const json_t *obj, const char *what, const char *key, char ***out, sub_err *e) {
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    return sub_json_get_strv(obj, what, key, false, out, e);
}

/* ---- descriptors ------------------------------------------------------------------------ */

void sub_desc_free(sub_desc *d) {
    if (!d) return;
    free(d->media_type);
    free(d->artifact_type);
    kv_free(d->annotations, d->n_annotations);
    if (d->platform) {
        free(d->platform->architecture);
        free(d->platform->os);
        free(d->platform->variant);
        free(d->platform->os_version);
        free(d->platform);
    }
    memset(d, 0, sizeof *d);
}

static int parse_platform(const json_t *p, const char *what, sub_platform **out, sub_err *e) {
    _cleanup_free_ char *pw = xasprintf("%s.platform", what);
    const char *arch, *os;
    int r;
    if ((r = sub_json_get_str(p, pw, "architecture", true, &arch, e)) < 0) return r;
    if ((r = sub_json_get_str(p, pw, "os", true, &os, e)) < 0) return r;
    sub_platform *pl = xcalloc(1, sizeof *pl);
    pl->architecture = xstrdup(arch);
    pl->os = xstrdup(os);
    if ((r = opt_str(p, pw, "variant", false, &pl->variant, e)) < 0 ||
        (r = opt_str(p, pw, "os.version", false, &pl->os_version, e)) < 0) {
        free(pl->architecture);
        free(pl->os);
        free(pl->variant);
        free(pl);
        return r;
    }
    *out = pl;
    return 0;
}

int sub_desc_parse(const json_t *j, const char *what, sub_desc *out, sub_err *e) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(j))
        return sub_err_set(e, -EBADMSG, "%s must be a JSON object (a descriptor)", what);
    const char *mt, *dg;
    int64_t size;
    int r;
    if ((r = sub_json_get_str(j, what, "mediaType", true, &mt, e)) < 0) return r;
    if (!mt_syntax_ok(mt))
        return sub_err_set(
            e, -EBADMSG, "%s: mediaType \"%s\" is not a valid media type (type/subtype)", what, mt);
    if ((r = sub_json_get_str(j, what, "digest", true, &dg, e)) < 0) return r;
    sub_err de = {0};
    if (sub_digest_validate(dg, &de) < 0) return sub_err_set(e, -EBADMSG, "%s: %s", what, de.msg);
    if ((r = sub_json_get_int(j, what, "size", true, &size, e)) < 0) return r;
    if (size < 0)
        return sub_err_set(e, -EBADMSG, "%s: size must be >= 0, not %lld", what, (long long)size);
    json_t *urls = json_object_get(j, "urls");
    if (urls) {
        _cleanup_strv_ char **u = NULL;
        if ((r = sub_json_get_strv(j, what, "urls", false, &u, e)) < 0) return r;
    }
    sub_desc d = {0};
    d.media_type = xstrdup(mt);
    snprintf(d.digest, sizeof d.digest, "%s", dg);
    d.size = (uint64_t)size;
    if ((r = opt_str(j, what, "artifactType", false, &d.artifact_type, e)) < 0) goto fail;
    if ((r = parse_string_map(j, what, "annotations", false, &d.annotations, &d.n_annotations, e)) <
        0)
        goto fail;
    json_t *p = json_object_get(j, "platform");
    if (p) {
        if (!json_is_object(p)) {
            r = sub_err_set(e, -EBADMSG, "%s: field \"platform\" must be an object", what);
            goto fail;
        }
        if ((r = parse_platform(p, what, &d.platform, e)) < 0) goto fail;
    }
    *out = d;
    return 0;
fail:
    sub_desc_free(&d);
    return r;
}

const char *sub_desc_annotation(const sub_desc *d, const char *key) {
    return kv_get(d->annotations, d->n_annotations, key);
}

json_t *sub_desc_to_json(const sub_desc *d) {
    json_t *j = json_object();
    json_object_set_new(j, "mediaType", json_string(d->media_type));
    json_object_set_new(j, "digest", json_string(d->digest));
    json_object_set_new(j, "size", json_integer((json_int_t)d->size));
    if (d->artifact_type) json_object_set_new(j, "artifactType", json_string(d->artifact_type));
    if (d->n_annotations) {
        json_t *a = json_object();
        for (size_t i = 0; i < d->n_annotations; i++)
            json_object_set_new(a, d->annotations[i].key, json_string(d->annotations[i].value));
        json_object_set_new(j, "annotations", a);
    }
    if (d->platform) {
        json_t *p = json_object();
        json_object_set_new(p, "architecture", json_string(d->platform->architecture));
        json_object_set_new(p, "os", json_string(d->platform->os));
        if (d->platform->variant)
            json_object_set_new(p, "variant", json_string(d->platform->variant));
        if (d->platform->os_version)
            json_object_set_new(p, "os.version", json_string(d->platform->os_version));
        json_object_set_new(j, "platform", p);
    }
    return j;
}

static int parse_desc_array(const json_t *doc, const char *what, const char *key, sub_desc **out,
                            size_t *n_out, sub_err *e) {
    json_t *a;
    int r = sub_json_get_arr(doc, what, key, true, &a, e);
    if (r < 0) return r;
    size_t n = json_array_size(a);
    sub_desc *v = xcalloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *w = xasprintf("%s: %s[%zu]", what, key, i);
        r = sub_desc_parse(json_array_get(a, i), w, &v[i], e);
        if (r < 0) {
            for (size_t k = 0; k < i; k++) sub_desc_free(&v[k]);
            free(v);
            return r;
        }
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* ---- manifests -------------------------------------------------------------------------- */

void sub_manifest_free(sub_manifest *m) {
    if (!m) return;
    free(m->media_type);
    sub_desc_free(&m->config);
    for (size_t i = 0; i < m->n_layers; i++) sub_desc_free(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++) sub_desc_free(&m->manifests[i]);
    free(m->manifests);
    if (m->subject) {
        sub_desc_free(m->subject);
        free(m->subject);
    }
    free(m->artifact_type);
    kv_free(m->annotations, m->n_annotations);
    memset(m, 0, sizeof *m);
}

const char *sub_manifest_annotation(const sub_manifest *m, const char *key) {
    return kv_get(m->annotations, m->n_annotations, key);
}

#define KNOWN_TYPES "one of " SUB_MT_ACCEPT_MANIFESTS

int sub_manifest_parse(const void *data, size_t len, const char *content_type, sub_manifest *out,
                       sub_err *e) {
    memset(out, 0, sizeof *out);
    if (len > SUB_REG_MAX_MANIFEST)
        return sub_err_set(e, -E2BIG, "manifest is too large (%zu bytes; the limit is %u bytes)",
                           len, SUB_REG_MAX_MANIFEST);
    _cleanup_json_ json_t *j = NULL;
    int r = sub_json_parse(data, len, SUB_REG_MAX_MANIFEST, "manifest", &j, e);
    if (r < 0) return r;
    if (!json_is_object(j)) return sub_err_set(e, -EBADMSG, "manifest must be a JSON object");
    int64_t sv;
    if ((r = sub_json_get_int(j, "manifest", "schemaVersion", true, &sv, e)) < 0) return r;
    if (sv != 2)
        return sub_err_set(e, -EBADMSG,
                           "manifest: schemaVersion is %lld; only schema version 2 (OCI, Docker v2 "
                           "schema 2) is supported",
                           (long long)sv);
    const char *doc_mt = NULL;
    r = sub_json_get_str(j, "manifest", "mediaType", false, &doc_mt, e);
    if (r < 0 && r != -ENOENT) return r;
    if (doc_mt && !sub_mt_is_manifest(doc_mt))
        return sub_err_set(e, -EBADMSG, "manifest: unknown mediaType \"%s\" (expected %s)", doc_mt,
                           KNOWN_TYPES);
    _cleanup_free_ char *ct = NULL;
    if (content_type && *content_type) {
        ct = sub_mt_normalize(content_type);
        if (!sub_mt_is_manifest(ct))
            return sub_err_set(e, -EBADMSG,
                               "manifest arrived as Content-Type \"%s\", which is not a manifest "
                               "type (expected %s)",
                               ct, KNOWN_TYPES);
        if (doc_mt && !mt_eq(doc_mt, ct))
            return sub_err_set(e, -EBADMSG,
                               "manifest: its mediaType \"%s\" does not match the Content-Type "
                               "\"%s\" it was served with",
                               doc_mt, ct);
    }
    bool has_manifests = json_object_get(j, "manifests") != NULL;
    bool has_image = json_object_get(j, "config") || json_object_get(j, "layers");
    _cleanup_free_ char *mt = NULL;
    if (doc_mt) mt = sub_mt_normalize(doc_mt);
    else if (ct) mt = xstrdup(ct);
    else if (has_manifests && !has_image) mt = xstrdup(SUB_MT_OCI_INDEX);
    else if (has_image && !has_manifests) mt = xstrdup(SUB_MT_OCI_MANIFEST);
    else
        return sub_err_set(e, -EBADMSG,
                           "manifest has no mediaType and is neither clearly an image manifest "
                           "(config, layers) nor an index (manifests)");
    if (!doc_mt && (streq(mt, SUB_MT_DOCKER_MANIFEST) || streq(mt, SUB_MT_DOCKER_LIST)))
        return sub_err_set(e, -EBADMSG,
                           "manifest: a Docker v2 manifest must state its mediaType (\"%s\")", mt);

    sub_manifest m = {0};
    m.media_type = TAKE_PTR(mt);
    if (sub_mt_is_image_manifest(m.media_type)) {
        m.kind = SUB_MANIFEST_IMAGE;
        if (has_manifests) {
            r = sub_err_set(e, -EBADMSG,
                            "manifest: an image manifest (%s) must not have a \"manifests\" field",
                            m.media_type);
            goto fail;
        }
        json_t *cfg;
        if ((r = sub_json_get_obj(j, "manifest", "config", true, &cfg, e)) < 0) goto fail;
        if ((r = sub_desc_parse(cfg, "manifest: config", &m.config, e)) < 0) goto fail;
        if ((r = parse_desc_array(j, "manifest", "layers", &m.layers, &m.n_layers, e)) < 0)
            goto fail;
    } else {
        m.kind = SUB_MANIFEST_INDEX;
        if (has_image) {
            r = sub_err_set(e, -EBADMSG,
                            "manifest: an index (%s) must not have \"config\" or \"layers\" fields",
                            m.media_type);
            goto fail;
        }
        if ((r = parse_desc_array(j, "index", "manifests", &m.manifests, &m.n_manifests, e)) < 0)
            goto fail;
    }
    json_t *subj = json_object_get(j, "subject");
    if (subj) {
        m.subject = xcalloc(1, sizeof *m.subject);
        if ((r = sub_desc_parse(subj, "manifest: subject", m.subject, e)) < 0) goto fail;
    }
    if ((r = opt_str(j, "manifest", "artifactType", false, &m.artifact_type, e)) < 0) goto fail;
    if ((r = parse_string_map(j, "manifest", "annotations", false, &m.annotations, &m.n_annotations,
                              e)) < 0)
        goto fail;
    *out = m;
    return 0;
fail:
    sub_manifest_free(&m);
    return r;
}

/* ---- image config ----------------------------------------------------------------------- */

void sub_image_config_free(sub_image_config *c) {
    if (!c) return;
    free(c->architecture);
    free(c->os);
    free(c->variant);
    free(c->created);
    free(c->author);
    strv_free(c->diff_ids);
    free(c->user);
    free(c->working_dir);
    strv_free(c->env);
    strv_free(c->entrypoint);
    strv_free(c->cmd);
    kv_free(c->labels, c->n_labels);
    memset(c, 0, sizeof *c);
}

const char *sub_image_config_label(const sub_image_config *c, const char *key) {
    return kv_get(c->labels, c->n_labels, key);
}

int sub_image_config_parse(const void *data, size_t len, sub_image_config *out, sub_err *e) {
    memset(out, 0, sizeof *out);
    if (len > SUB_CONFIG_MAX)
        return sub_err_set(e, -E2BIG,
                           "image config is too large (%zu bytes; the limit is %u bytes)", len,
                           SUB_CONFIG_MAX);
    _cleanup_json_ json_t *j = NULL;
    int r = sub_json_parse(data, len, SUB_CONFIG_MAX, "image config", &j, e);
    if (r < 0) return r;
    if (!json_is_object(j)) return sub_err_set(e, -EBADMSG, "image config must be a JSON object");
    const char *w = "image config";
    const char *arch, *os;
    if ((r = sub_json_get_str(j, w, "architecture", true, &arch, e)) < 0) return r;
    if ((r = sub_json_get_str(j, w, "os", true, &os, e)) < 0) return r;
    json_t *rootfs;
    if ((r = sub_json_get_obj(j, w, "rootfs", true, &rootfs, e)) < 0) return r;
    const char *rtype;
    if ((r = sub_json_get_str(rootfs, "image config: rootfs", "type", true, &rtype, e)) < 0)
        return r;
    if (!streq(rtype, "layers"))
        return sub_err_set(e, -EBADMSG, "image config: rootfs.type must be \"layers\", not \"%s\"",
                           rtype);
    sub_image_config c = {0};
    if ((r = sub_json_get_strv(rootfs, "image config: rootfs", "diff_ids", true, &c.diff_ids, e)) <
        0)
        goto fail;
    c.n_diff_ids = strv_len(c.diff_ids);
    for (size_t i = 0; i < c.n_diff_ids; i++) {
        sub_err de = {0};
        if (sub_digest_validate(c.diff_ids[i], &de) < 0) {
            r = sub_err_set(e, -EBADMSG, "image config: rootfs.diff_ids[%zu]: %s", i, de.msg);
            goto fail;
        }
    }
    c.architecture = xstrdup(arch);
    c.os = xstrdup(os);
    if ((r = opt_str(j, w, "variant", false, &c.variant, e)) < 0) goto fail;
    if ((r = opt_str(j, w, "created", false, &c.created, e)) < 0) goto fail;
    if ((r = opt_str(j, w, "author", false, &c.author, e)) < 0) goto fail;
    json_t *cfg = json_object_get(j, "config");
    if (cfg && !json_is_null(cfg)) {
        if (!json_is_object(cfg)) {
            r = sub_err_set(e, -EBADMSG, "image config: field \"config\" must be an object");
            goto fail;
        }
        const char *cw = "image config: config";
        if ((r = opt_str(cfg, cw, "User", true, &c.user, e)) < 0) goto fail;
        if ((r = opt_str(cfg, cw, "WorkingDir", true, &c.working_dir, e)) < 0) goto fail;
        if ((r = opt_strv(cfg, cw, "Env", &c.env, e)) < 0) goto fail;
        if ((r = opt_strv(cfg, cw, "Entrypoint", &c.entrypoint, e)) < 0) goto fail;
        if ((r = opt_strv(cfg, cw, "Cmd", &c.cmd, e)) < 0) goto fail;
        if ((r = parse_string_map(cfg, cw, "Labels", true, &c.labels, &c.n_labels, e)) < 0)
            goto fail;
    }
    *out = c;
    return 0;
fail:
    sub_image_config_free(&c);
    return r;
}
