/* Manifest / index / image-config model: accepts what registries serve,
 * rejects what it must (each rejection is its own check). */
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/manifest.h"
#include "substrate/strbuf.h"
#include "unit.h"

#define D1 "sha256:26736d7e5b365746f4adba60aeaab47e0f4ddf73d8d7f5cda7978673cf4b5efc"
#define D2 "sha256:d235bd857711235f6e30beb7f9edb1e4cc02df2288512a95366b20496ab775f1"

static int parse(const char *s, const char *ct, sub_manifest *m, sub_err *e) {
    return sub_manifest_parse(s, strlen(s), ct, m, e);
}

/* Expect a rejection whose message mentions `needle`. */
static void rejects(const char *file, int line, const char *doc, const char *ct, int code,
                    const char *needle) {
    sub_err e = {0};
    sub_manifest m = {0};
    int r = parse(doc, ct, &m, &e);
    if (r != code) unit_fail(file, line, "expected %d, got %d for %s", code, r, doc);
    if (r < 0 && needle && !strstr(e.msg, needle))
        unit_fail(file, line, "message \"%s\" does not mention \"%s\"", e.msg, needle);
    if (r < 0 && (m.media_type || m.layers || m.manifests))
        unit_fail(file, line, "a failed parse left allocations in the output");
    sub_manifest_free(&m);
}
#define REJECTS(doc, ct, code, needle) rejects(__FILE__, __LINE__, doc, ct, code, needle)

TEST(manifest_parses_fixture_oci_image) {
    sub_err e = {0};
    _cleanup_free_ char *p = unit_shared("vectors/cosign/image-manifest.json");
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    CHECK_OK(sub_read_file(p, 1 << 20, &data, &len, &e), &e);
    _cleanup_manifest_ sub_manifest m = {0};
    /* no mediaType in the document: inferred from its fields, or from the header */
    CHECK_OK(sub_manifest_parse(data, len, NULL, &m, &e), &e);
    CHECK_INT(m.kind, SUB_MANIFEST_IMAGE);
    CHECK_STREQ(m.media_type, SUB_MT_OCI_MANIFEST);
    CHECK_STREQ(m.config.media_type, SUB_MT_OCI_CONFIG);
    CHECK_STREQ(m.config.digest, D1);
    CHECK_INT(m.config.size, 488);
    CHECK_INT(m.n_layers, 1);
    CHECK_STREQ(m.layers[0].digest, D2);
    CHECK_INT(m.layers[0].size, 1084237);
    sub_manifest_free(&m);
    CHECK_OK(sub_manifest_parse(data, len, SUB_MT_OCI_MANIFEST "; charset=utf-8", &m, &e), &e);
    CHECK_STREQ(m.media_type, SUB_MT_OCI_MANIFEST);
}

TEST(manifest_parses_signature_manifest_annotations) {
    sub_err e = {0};
    _cleanup_free_ char *p = unit_shared("vectors/cosign/sig-manifest.json");
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    CHECK_OK(sub_read_file(p, 1 << 20, &data, &len, &e), &e);
    _cleanup_manifest_ sub_manifest m = {0};
    CHECK_OK(sub_manifest_parse(data, len, SUB_MT_OCI_MANIFEST, &m, &e), &e);
    CHECK_INT(m.n_layers, 1);
    CHECK_STREQ(m.layers[0].media_type, "application/vnd.dev.cosign.simplesigning.v1+json");
    const char *sig = sub_desc_annotation(&m.layers[0], "dev.cosignproject.cosign/signature");
    CHECK(sig && str_has_prefix(sig, "MEUCIQ"));
    CHECK(sub_desc_annotation(&m.layers[0], "nope") == NULL);
}

TEST(manifest_parses_docker_v2_and_index_and_list) {
    sub_err e = {0};
    _cleanup_manifest_ sub_manifest m = {0};
    const char *docker =
        "{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_DOCKER_MANIFEST "\","
        "\"config\":{\"mediaType\":\"" SUB_MT_DOCKER_CONFIG "\",\"digest\":\"" D1 "\",\"size\":7},"
        "\"layers\":[{\"mediaType\":\"" SUB_MT_DOCKER_LAYER_GZIP "\",\"digest\":\"" D2
        "\",\"size\":9,"
        "\"urls\":[\"http://127.0.0.1/x\"]}]}";
    CHECK_OK(parse(docker, SUB_MT_DOCKER_MANIFEST, &m, &e), &e);
    CHECK_INT(m.kind, SUB_MANIFEST_IMAGE);
    CHECK_STREQ(m.media_type, SUB_MT_DOCKER_MANIFEST);
    CHECK(sub_mt_is_config(m.config.media_type));
    sub_manifest_free(&m);

    const char *index =
        "{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_INDEX "\",\"manifests\":["
        "{\"mediaType\":\"" SUB_MT_OCI_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":100,"
        "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
        "{\"mediaType\":\"" SUB_MT_OCI_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":0}],"
        "\"annotations\":{\"b\":\"2\",\"a\":\"1\"}}";
    CHECK_OK(parse(index, NULL, &m, &e), &e);
    CHECK_INT(m.kind, SUB_MANIFEST_INDEX);
    CHECK_INT(m.n_manifests, 2);
    CHECK(m.manifests[0].platform != NULL);
    if (m.manifests[0].platform) {
        CHECK_STREQ(m.manifests[0].platform->architecture, "arm64");
        CHECK_STREQ(m.manifests[0].platform->variant, "v8");
    }
    CHECK(m.manifests[1].platform == NULL);
    CHECK_INT(m.manifests[1].size, 0);
    CHECK_INT(m.n_annotations, 2);
    CHECK_STREQ(m.annotations[0].key, "a"); /* sorted */
    CHECK_STREQ(sub_manifest_annotation(&m, "b"), "2");
    sub_manifest_free(&m);
    sub_manifest_free(&m); /* idempotent */

    const char *list =
        "{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_DOCKER_LIST "\",\"manifests\":["
        "{\"mediaType\":\"" SUB_MT_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":5,"
        "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}";
    CHECK_OK(parse(list, SUB_MT_DOCKER_LIST, &m, &e), &e);
    CHECK_INT(m.kind, SUB_MANIFEST_INDEX);
    CHECK(sub_mt_is_index(m.media_type));
    /* an index without mediaType is inferred from "manifests" */
    sub_manifest_free(&m);
    CHECK_OK(parse("{\"schemaVersion\":2,\"manifests\":[]}", NULL, &m, &e), &e);
    CHECK_STREQ(m.media_type, SUB_MT_OCI_INDEX);
}

TEST(manifest_rejects_duplicate_keys) {
    REJECTS("{\"schemaVersion\":2,\"schemaVersion\":2,\"manifests\":[]}", NULL, -EBADMSG,
            "duplicate");
    /* the classic attack: two "digest" keys inside a descriptor */
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"digest\":\"" D2 "\",\"size\":1},\"layers\":[]}",
            NULL, -EBADMSG, "duplicate");
}

TEST(manifest_rejects_wrong_types) {
    REJECTS("[]", NULL, -EBADMSG, "object");
    REJECTS("{\"schemaVersion\":\"2\",\"manifests\":[]}", NULL, -EBADMSG, "schemaVersion");
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1},\"layers\":{}}",
            NULL, -EBADMSG, "layers");
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":\"1\"},\"layers\":[]}",
            NULL, -EBADMSG, "size");
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1.5},\"layers\":[]}",
            NULL, -EBADMSG, "size");
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":-1},\"layers\":[]}",
            NULL, -EBADMSG, ">= 0");
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1},\"layers\":[\"x\"]}",
            NULL, -EBADMSG, "layers[0]");
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1,\"annotations\":{\"k\":1}},\"layers\":[]}",
            NULL, -EBADMSG, "annotations");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1,\"platform\":\"linux\"}]}",
            NULL, -EBADMSG, "platform");
    /* digests must validate: uppercase hex, missing algorithm, path tricks */
    REJECTS(
        "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":"
        "\"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\",\"size\":1}]}",
        NULL, -EBADMSG, "lowercase");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":\"../../etc/"
            "passwd\","
            "\"size\":1}]}",
            NULL, -EBADMSG, "digest");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"no-slash\",\"digest\":\"" D1
            "\",\"size\":1}]}",
            NULL, -EBADMSG, "media type");
}

TEST(manifest_rejects_missing_required_fields) {
    REJECTS("{\"manifests\":[]}", NULL, -EBADMSG, "schemaVersion");
    REJECTS("{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_MANIFEST "\",\"layers\":[]}", NULL,
            -EBADMSG, "config");
    REJECTS("{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_MANIFEST
            "\",\"config\":{\"mediaType\":"
            "\"a/b\",\"digest\":\"" D1 "\",\"size\":1}}",
            NULL, -EBADMSG, "layers");
    REJECTS("{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_INDEX "\"}", NULL, -EBADMSG,
            "manifests");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"" D1 "\",\"size\":1}]}", NULL,
            -EBADMSG, "mediaType");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"size\":1}]}", NULL,
            -EBADMSG, "digest");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\"}]}",
            NULL, -EBADMSG, "size");
    REJECTS("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1,\"platform\":{\"os\":\"linux\"}}]}",
            NULL, -EBADMSG, "architecture");
    /* neither image nor index, no mediaType to say which */
    REJECTS("{\"schemaVersion\":2}", NULL, -EBADMSG, "neither");
}

TEST(manifest_rejects_schema_version_not_2) {
    REJECTS("{\"schemaVersion\":1,\"manifests\":[]}", NULL, -EBADMSG, "schemaVersion is 1");
    REJECTS("{\"schemaVersion\":3,\"manifests\":[]}", NULL, -EBADMSG, "schemaVersion is 3");
}

TEST(manifest_rejects_oversize_input) {
    /* a valid document padded past 4 MiB with whitespace */
    sub_buf b = SUB_BUF_INIT;
    sub_buf_puts(&b, "{\"schemaVersion\":2,\"manifests\":[]}");
    while (b.len <= SUB_REG_MAX_MANIFEST) sub_buf_append(&b, "                ", 16);
    sub_err e = {0};
    sub_manifest m = {0};
    CHECK_INT(sub_manifest_parse(b.data, b.len, NULL, &m, &e), -E2BIG);
    CHECK(strstr(e.msg, "too large") != NULL);
    /* exactly at the limit is still parsed */
    CHECK_OK(sub_manifest_parse(b.data, SUB_REG_MAX_MANIFEST, NULL, &m, &e), &e);
    sub_manifest_free(&m);
    sub_buf_free(&b);
}

TEST(manifest_rejects_unknown_or_mismatched_media_types) {
    const char *img = "{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_MANIFEST "\",\"config\":{"
                      "\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}";
    REJECTS("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\",\"manifests\":[]}",
            NULL, -EBADMSG, "unknown mediaType");
    REJECTS(img, SUB_MT_OCI_INDEX, -EBADMSG, "does not match");
    REJECTS(img, SUB_MT_DOCKER_MANIFEST, -EBADMSG, "does not match");
    REJECTS(img, "application/json", -EBADMSG, "not a manifest type");
    REJECTS(img, "text/html", -EBADMSG, "not a manifest type");
    /* an image manifest must not carry "manifests", nor an index "config"/"layers" */
    REJECTS("{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_MANIFEST
            "\",\"manifests\":[],\"config\":{"
            "\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}",
            NULL, -EBADMSG, "must not");
    REJECTS("{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_INDEX
            "\",\"manifests\":[],\"layers\":[]}",
            NULL, -EBADMSG, "must not");
    /* a Docker manifest must say what it is */
    REJECTS("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D1
            "\",\"size\":1},\"layers\":[]}",
            SUB_MT_DOCKER_MANIFEST, -EBADMSG, "must state");
    /* header case and parameters do not matter */
    sub_err e = {0};
    sub_manifest m = {0};
    CHECK_OK(parse(img, " Application/VND.oci.image.manifest.v1+json ; charset=utf-8", &m, &e), &e);
    sub_manifest_free(&m);
}

TEST(media_type_helpers) {
    _cleanup_free_ char *n = sub_mt_normalize("  Application/JSON; charset=utf-8");
    CHECK_STREQ(n, "application/json");
    CHECK(sub_mt_is_manifest(SUB_MT_DOCKER_LIST));
    CHECK(sub_mt_is_image_manifest(SUB_MT_DOCKER_MANIFEST));
    CHECK(!sub_mt_is_index(SUB_MT_OCI_MANIFEST));
    CHECK(!sub_mt_is_manifest(SUB_MT_OCI_CONFIG));
    CHECK(sub_mt_is_config(SUB_MT_DOCKER_CONFIG));
    CHECK(!sub_mt_is_manifest(NULL));
}

TEST(descriptor_to_json_round_trips) {
    sub_err e = {0};
    const char *s =
        "{\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"},\"digest\":\"" D1
        "\",\"mediaType\":\"" SUB_MT_OCI_MANIFEST "\",\"platform\":{\"architecture\":"
        "\"amd64\",\"os\":\"linux\"},\"size\":42}";
    _cleanup_json_ json_t *j = NULL;
    CHECK_OK(sub_json_parse(s, strlen(s), 4096, "desc", &j, &e), &e);
    sub_desc d;
    CHECK_OK(sub_desc_parse(j, "desc", &d, &e), &e);
    CHECK_STREQ(sub_desc_annotation(&d, SUB_ANNOT_REF_NAME), "v1");
    _cleanup_json_ json_t *back = sub_desc_to_json(&d);
    _cleanup_free_ char *out = sub_json_dump(back, NULL);
    CHECK_STREQ(out, s);
    sub_desc_free(&d);
}

TEST(image_config_parses_fixture_and_labels) {
    sub_err e = {0};
    _cleanup_free_ char *p = unit_shared("vectors/cosign/image-config.json");
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    CHECK_OK(sub_read_file(p, 1 << 20, &data, &len, &e), &e);
    _cleanup_image_config_ sub_image_config c = {0};
    CHECK_OK(sub_image_config_parse(data, len, &c, &e), &e);
    CHECK_STREQ(c.architecture, "amd64");
    CHECK_STREQ(c.os, "linux");
    CHECK_INT(c.n_diff_ids, 1);
    CHECK_STREQ(c.diff_ids[0],
                "sha256:30b8dd3ba40782924df02cd6f8261501a343b5fad798c399017a7364ae1b8097");
    CHECK(c.entrypoint && streq(c.entrypoint[0], "/bin/sh"));
    CHECK_STREQ(c.working_dir, "/");
    CHECK_INT(c.n_labels, 0);
    sub_image_config_free(&c);

    const char *docker =
        "{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\","
        "\"config\":{\"Entrypoint\":null,\"Labels\":{\"z\":\"last\",\"org.x\":\"1\"}},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    CHECK_OK(sub_image_config_parse(docker, strlen(docker), &c, &e), &e);
    CHECK(c.entrypoint == NULL);
    CHECK_INT(c.n_labels, 2);
    CHECK_STREQ(c.labels[0].key, "org.x");
    CHECK_STREQ(sub_image_config_label(&c, "z"), "last");
    CHECK_STREQ(c.variant, "v8");
}

TEST(image_config_rejects_bad_documents) {
    static const struct {
        const char *doc, *needle;
    } t[] = {
        {"{\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "architecture"},
        {"{\"architecture\":\"amd64\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "os"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\"}", "rootfs"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"tar\",\"diff_ids\":[]"
         "}}",
         "layers"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\"}}",
         "diff_ids"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_"
         "ids\":[\"x\"]}}",
         "diff_ids[0]"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_"
         "ids\":[]},"
         "\"config\":{\"Labels\":{\"a\":1}}}",
         "Labels"},
        {"{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_"
         "ids\":[]},"
         "\"config\":{\"Env\":\"PATH=/bin\"}}",
         "Env"},
        {"{\"architecture\":\"amd64\",\"architecture\":\"arm64\",\"os\":\"linux\",\"rootfs\":{"
         "\"type\":"
         "\"layers\",\"diff_ids\":[]}}",
         "duplicate"},
        {"{\"architecture\":7,\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
         "must be a string"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_err e = {0};
        sub_image_config c = {0};
        int r = sub_image_config_parse(t[i].doc, strlen(t[i].doc), &c, &e);
        if (r != -EBADMSG) unit_fail(__FILE__, __LINE__, "case %zu: got %d", i, r);
        else if (!strstr(e.msg, t[i].needle))
            unit_fail(__FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, e.msg, t[i].needle);
        sub_image_config_free(&c);
    }
    sub_buf b = SUB_BUF_INIT;
    while (b.len <= SUB_CONFIG_MAX) sub_buf_append(&b, "                ", 16);
    sub_err e = {0};
    sub_image_config c = {0};
    CHECK_INT(sub_image_config_parse(b.data, b.len, &c, &e), -E2BIG);
    sub_buf_free(&b);
}
