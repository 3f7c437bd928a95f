/* OCI image layout: init, blobs, tags, resolve, verify. */
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/layout.h"
#include "substrate/manifest.h"
#include "substrate/strbuf.h"
#include "unit.h"
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Number of entries in a directory other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static json_t *load_index(const char *dir) {
    _cleanup_free_ char *p = sub_path_join(dir, "index.json");
    json_t *j = NULL;
    sub_err e = {0};
    if (sub_json_load_file(p, 1 << 20, &j, &e) < 0) unit_fail(__FILE__, __LINE__, "%s", e.msg);
    return j;
}

/* A small image in the layout: config, one layer, manifest. */
static void make_image(const char *dir, const char *layer_text, char mdigest[SUB_DIGEST_MAX],
                       size_t *msize) {
    sub_err e = {0};
    char cd[SUB_DIGEST_MAX], ld[SUB_DIGEST_MAX];
    const char *cfg =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]}}";
    CHECK_OK(sub_layout_put_blob_buf(dir, cfg, strlen(cfg), cd, &e), &e);
    CHECK_OK(sub_layout_put_blob_buf(dir, layer_text, strlen(layer_text), ld, &e), &e);
    _cleanup_json_ json_t *m =
        json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:[{s:s,s:s,s:I}]}", "schemaVersion", 2, "mediaType",
                  SUB_MT_OCI_MANIFEST, "config", "mediaType", SUB_MT_OCI_CONFIG, "digest", cd,
                  "size", (json_int_t)strlen(cfg), "layers", "mediaType", SUB_MT_OCI_LAYER_TAR,
                  "digest", ld, "size", (json_int_t)strlen(layer_text));
    size_t len;
    _cleanup_free_ char *s = sub_json_dump(m, &len);
    CHECK_OK(sub_layout_put_blob_buf(dir, s, len, mdigest, &e), &e);
    *msize = len;
}

TEST(layout_init_is_idempotent_and_well_formed) {
    sub_err e = {0};
    _cleanup_free_ char *dir = sub_path_join(unit_tmpdir(), "a/b/lay");
    CHECK_OK(sub_layout_init(dir, &e), &e);
    _cleanup_free_ char *lay = sub_path_join(dir, "oci-layout");
    _cleanup_free_ char *s = NULL;
    size_t len;
    CHECK_OK(sub_read_file(lay, 4096, &s, &len, &e), &e);
    CHECK_STREQ(s, "{\"imageLayoutVersion\":\"1.0.0\"}");
    _cleanup_json_ json_t *idx = load_index(dir);
    CHECK(json_integer_value(json_object_get(idx, "schemaVersion")) == 2);
    CHECK(json_array_size(json_object_get(idx, "manifests")) == 0);
    _cleanup_free_ char *blobs = sub_path_join(dir, "blobs/sha256");
    CHECK_INT(count_entries(blobs), 0);
    /* a second init keeps existing entries */
    char md[SUB_DIGEST_MAX];
    size_t ms;
    make_image(dir, "layer", md, &ms);
    CHECK_OK(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, md, ms, &e), &e);
    CHECK_OK(sub_layout_init(dir, &e), &e);
    _cleanup_json_ json_t *idx2 = load_index(dir);
    CHECK(json_array_size(json_object_get(idx2, "manifests")) == 1);
    /* a directory with a bogus oci-layout is refused */
    CHECK_OK(sub_write_file_atomic(lay, "{\"imageLayoutVersion\":\"9\"}", 26, 0644, &e), &e);
    CHECK(sub_layout_init(dir, &e) < 0);
    CHECK(strstr(e.msg, "imageLayoutVersion") != NULL);
}

TEST(layout_blob_path_refuses_bad_digests) {
    _cleanup_free_ char *p = sub_layout_blob_path(
        "/l", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_STREQ(p,
                "/l/blobs/sha256/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sub_layout_blob_path("/l", "sha256:../../etc/passwd") == NULL);
    CHECK(sub_layout_blob_path("/l", "../x:y") == NULL);
    CHECK(sub_layout_blob_path("/l", NULL) == NULL);
}

TEST(layout_put_blob_buf_and_file) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    char d[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_buf(dir, "abc", 3, d, &e), &e);
    CHECK_STREQ(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_INT(sub_layout_check_blob(dir, d, 3, &e), 1);
    CHECK_OK(sub_layout_put_blob_buf(dir, "abc", 3, d, &e), &e); /* again: fine */
    _cleanup_free_ char *src = sub_path_join(dir, "src");
    CHECK_OK(sub_write_file_atomic(src, "hello", 5, 0600, &e), &e);
    char fd_[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_file(dir, src, NULL, fd_, &e), &e);
    char want[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf("hello", 5, want, &e), &e);
    CHECK_STREQ(fd_, want);
    _cleanup_free_ char *bp = sub_layout_blob_path(dir, want);
    struct stat st;
    CHECK(stat(bp, &st) == 0 && (st.st_mode & 0777) == 0644 && st.st_size == 5);
    CHECK_OK(sub_layout_put_blob_file(dir, src, want, NULL, &e), &e);
    _cleanup_free_ char *blobs = sub_path_join(dir, "blobs/sha256");
    CHECK_INT(count_entries(blobs), 2);
}

TEST(layout_put_blob_file_refuses_mismatch_and_keeps_nothing) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    _cleanup_free_ char *src = sub_path_join(dir, "src");
    CHECK_OK(sub_write_file_atomic(src, "hello", 5, 0600, &e), &e);
    const char *wrong = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    CHECK_INT(sub_layout_put_blob_file(dir, src, wrong, NULL, &e), -EILSEQ);
    CHECK(strstr(e.msg, "expected sha256:ba78") != NULL);
    CHECK(strstr(e.msg, "sha256:2cf24dba") != NULL); /* the actual digest of "hello" */
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
    _cleanup_free_ char *blobs = sub_path_join(dir, "blobs/sha256");
    CHECK_INT(count_entries(blobs), 0); /* no blob, no temp file */
    CHECK(sub_layout_put_blob_file(dir, "/nonexistent/x", NULL, NULL, &e) == -ENOENT);
}

TEST(layout_check_and_read_blob_detect_corruption) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    char d[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_buf(dir, "content", 7, d, &e), &e);
    _cleanup_free_ char *bp = sub_layout_blob_path(dir, d);
    CHECK_OK(sub_write_file_atomic(bp, "CONTENT", 7, 0644, &e), &e);
    CHECK_INT(sub_layout_check_blob(dir, d, 7, &e), -EILSEQ);
    CHECK(strstr(e.msg, "corrupt") != NULL);
    CHECK_INT(sub_layout_check_blob(dir, d, 8, &e), -EILSEQ); /* size */
    _cleanup_free_ char *out = NULL;
    size_t len;
    CHECK_INT(sub_layout_read_blob(dir, d, 100, &out, &len, &e), -EILSEQ);
    CHECK(out == NULL);
    CHECK_INT(
        sub_layout_check_blob(
            dir, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 0, &e),
        0);
}

TEST(layout_tag_adds_replaces_and_refuses_missing_blobs) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    char m1[SUB_DIGEST_MAX], m2[SUB_DIGEST_MAX];
    size_t s1, s2;
    make_image(dir, "one", m1, &s1);
    make_image(dir, "two", m2, &s2);
    /* refused: blob absent, wrong size, bad name */
    const char *absent = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    CHECK_INT(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, absent, 0, &e), -ENOENT);
    CHECK(strstr(e.msg, "not in the layout") != NULL);
    CHECK_INT(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, m1, s1 + 1, &e), -EILSEQ);
    CHECK_INT(sub_layout_tag(dir, "bad name", SUB_MT_OCI_MANIFEST, m1, s1, &e), -EINVAL);
    _cleanup_json_ json_t *i0 = load_index(dir);
    CHECK(json_array_size(json_object_get(i0, "manifests")) == 0);

    CHECK_OK(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    CHECK_OK(sub_layout_tag(dir, "latest", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    CHECK_OK(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, m2, s2, &e), &e); /* replace */
    CHECK_OK(sub_layout_tag(dir, NULL, SUB_MT_OCI_MANIFEST, m2, s2, &e), &e);
    CHECK_OK(sub_layout_tag(dir, NULL, SUB_MT_OCI_MANIFEST, m2, s2, &e), &e); /* once */
    _cleanup_json_ json_t *idx = load_index(dir);
    json_t *arr = json_object_get(idx, "manifests");
    CHECK_INT(json_array_size(arr), 3);
    char d[SUB_DIGEST_MAX];
    _cleanup_free_ char *mt = NULL;
    uint64_t size = 0;
    CHECK_OK(sub_layout_resolve(dir, "v1", d, &mt, &size, &e), &e);
    CHECK_STREQ(d, m2);
    CHECK_STREQ(mt, SUB_MT_OCI_MANIFEST);
    CHECK_INT(size, s2);
    CHECK_OK(sub_layout_resolve(dir, "latest", d, NULL, NULL, &e), &e);
    CHECK_STREQ(d, m1);
    /* index.json is canonical JSON: equal to its own canonical dump */
    _cleanup_free_ char *ip = sub_path_join(dir, "index.json");
    _cleanup_free_ char *raw = NULL;
    size_t rl;
    CHECK_OK(sub_read_file(ip, 1 << 20, &raw, &rl, &e), &e);
    _cleanup_free_ char *canon = sub_json_dump(idx, NULL);
    CHECK_STREQ(raw, canon);
    /* no temp files left beside it */
    CHECK_INT(count_entries(dir), 3); /* blobs, index.json, oci-layout */
}

TEST(layout_resolve_errors) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    char d[SUB_DIGEST_MAX];
    CHECK_INT(sub_layout_resolve(dir, "x", d, NULL, NULL, &e), -ENOENT);
    CHECK(strstr(e.msg, "not an OCI image layout") != NULL);
    CHECK_OK(sub_layout_init(dir, &e), &e);
    char m1[SUB_DIGEST_MAX];
    size_t s1;
    make_image(dir, "one", m1, &s1);
    CHECK_OK(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    CHECK_INT(sub_layout_resolve(dir, "v2", d, NULL, NULL, &e), -ENOENT);
    CHECK(strstr(e.msg, "names there: v1") != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
    CHECK_OK(sub_layout_resolve(dir, m1, d, NULL, NULL, &e), &e); /* by digest */
    CHECK_STREQ(d, m1);
    /* two entries with one name (hand-made) are ambiguous */
    char m2[SUB_DIGEST_MAX];
    size_t s2;
    make_image(dir, "two", m2, &s2);
    _cleanup_json_ json_t *idx = load_index(dir);
    json_array_append_new(json_object_get(idx, "manifests"),
                          json_pack("{s:s,s:s,s:I,s:{s:s}}", "mediaType", SUB_MT_OCI_MANIFEST,
                                    "digest", m2, "size", (json_int_t)s2, "annotations",
                                    SUB_ANNOT_REF_NAME, "v1"));
    _cleanup_free_ char *s = sub_json_dump(idx, NULL);
    _cleanup_free_ char *ip = sub_path_join(dir, "index.json");
    CHECK_OK(sub_write_file_atomic(ip, s, strlen(s), 0644, &e), &e);
    CHECK_INT(sub_layout_resolve(dir, "v1", d, NULL, NULL, &e), -EINVAL);
    CHECK(strstr(e.msg, "ambiguous") != NULL);
}

TEST(layout_verify_walks_index_manifest_config_layers) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    CHECK_INT(sub_layout_verify(dir, &e), 0);
    char m1[SUB_DIGEST_MAX], m2[SUB_DIGEST_MAX];
    size_t s1, s2;
    make_image(dir, "one", m1, &s1);
    make_image(dir, "two", m2, &s2); /* shares the config with m1 */
    /* an index over both images */
    _cleanup_json_ json_t *ix = json_pack(
        "{s:i,s:s,s:[{s:s,s:s,s:I},{s:s,s:s,s:I}]}", "schemaVersion", 2, "mediaType",
        SUB_MT_OCI_INDEX, "manifests", "mediaType", SUB_MT_OCI_MANIFEST, "digest", m1, "size",
        (json_int_t)s1, "mediaType", SUB_MT_OCI_MANIFEST, "digest", m2, "size", (json_int_t)s2);
    size_t il;
    _cleanup_free_ char *is = sub_json_dump(ix, &il);
    char xd[SUB_DIGEST_MAX];
    CHECK_OK(sub_layout_put_blob_buf(dir, is, il, xd, &e), &e);
    CHECK_OK(sub_layout_tag(dir, "multi", SUB_MT_OCI_INDEX, xd, il, &e), &e);
    CHECK_OK(sub_layout_tag(dir, "one", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    /* index + 2 manifests + 1 shared config + 2 layers, each once */
    CHECK_INT(sub_layout_verify(dir, &e), 6);

    /* corrupt a layer: verify says which and exits "check" */
    char ld[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf("two", 3, ld, &e), &e);
    _cleanup_free_ char *lp = sub_layout_blob_path(dir, ld);
    CHECK_OK(sub_write_file_atomic(lp, "twO", 3, 0644, &e), &e);
    CHECK_INT(sub_layout_verify(dir, &e), -EILSEQ);
    CHECK(strstr(e.msg, ld) != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
    /* remove it: missing */
    CHECK(unlink(lp) == 0);
    CHECK_INT(sub_layout_verify(dir, &e), -ENOENT);
    CHECK(strstr(e.msg, "missing") != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
}

TEST(layout_refname_validate_table) {
    static const struct {
        const char *n;
        bool ok;
    } t[] = {
        {"v1", true},    {"latest", true}, {"1.0.2", true},  {"a/b-c_d.e", true}, {"x:y@z+w", true},
        {"a--b", true},  {"", false},      {"-a", false},    {"a-", false},       {"a b", false},
        {"a//b", false}, {"a..b", false},  {"a---b", false}, {"ümlaut", false},   {"/a", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_err e = {0};
        int r = sub_layout_refname_validate(t[i].n, &e);
        if ((r == 0) != t[i].ok)
            unit_fail(__FILE__, __LINE__, "name \"%s\": got %d (%s)", t[i].n, r, e.msg);
    }
}

TEST(layout_parse_arg_splits_dir_and_name) {
    static const struct {
        const char *arg, *dir, *name;
    } t[] = {
        {"/tmp/l:v1", "/tmp/l", "v1"},
        {"/tmp/l", "/tmp/l", NULL},
        {"rel:latest", "rel", "latest"},
        {"/tmp/a:b/c", "/tmp/a:b/c", NULL},
        {"/tmp/l:", "/tmp/l", NULL},
        {"/tmp/l:x:y", "/tmp/l:x", "y"},
        {"/tmp/l:sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "/tmp/l",
         "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        _cleanup_free_ char *d = NULL, *n = NULL;
        sub_layout_parse_arg(t[i].arg, &d, &n);
        CHECK_STREQ(d, t[i].dir);
        if (t[i].name) CHECK_STREQ(n, t[i].name);
        else CHECK(n == NULL);
    }
}

TEST(layout_verify_checks_every_descriptor_of_a_shared_blob) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    char m1[SUB_DIGEST_MAX];
    size_t s1;
    make_image(dir, "one", m1, &s1);
    CHECK_OK(sub_layout_tag(dir, "one", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    CHECK_INT(sub_layout_verify(dir, &e), 3);
    /* a second image whose manifest lies about the (shared) config's size */
    const char *cfg =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]}}";
    char cd[SUB_DIGEST_MAX], ld[SUB_DIGEST_MAX], m2[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(cfg, strlen(cfg), cd, &e), &e);
    CHECK_OK(sub_layout_put_blob_buf(dir, "two", 3, ld, &e), &e);
    _cleanup_json_ json_t *m =
        json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:[{s:s,s:s,s:I}]}", "schemaVersion", 2, "mediaType",
                  SUB_MT_OCI_MANIFEST, "config", "mediaType", SUB_MT_OCI_CONFIG, "digest", cd,
                  "size", (json_int_t)strlen(cfg) + 1, "layers", "mediaType",
                  SUB_MT_OCI_LAYER_TAR, "digest", ld, "size", (json_int_t)3);
    size_t len;
    _cleanup_free_ char *s = sub_json_dump(m, &len);
    CHECK_OK(sub_layout_put_blob_buf(dir, s, len, m2, &e), &e);
    CHECK_OK(sub_layout_tag(dir, "two", SUB_MT_OCI_MANIFEST, m2, len, &e), &e);
    CHECK_INT(sub_layout_verify(dir, &e), -EILSEQ);
    CHECK(strstr(e.msg, cd) != NULL && strstr(e.msg, m2) != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_CHECK);
    /* the same for a second index.json entry naming a manifest with the wrong size */
    CHECK_OK(sub_layout_tag(dir, "two", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    CHECK_INT(sub_layout_verify(dir, &e), 3);
    _cleanup_json_ json_t *idx = load_index(dir);
    json_array_append_new(json_object_get(idx, "manifests"),
                          json_pack("{s:s,s:s,s:I}", "mediaType", SUB_MT_OCI_MANIFEST, "digest",
                                    m1, "size", (json_int_t)s1 - 1));
    _cleanup_free_ char *is = sub_json_dump(idx, NULL);
    _cleanup_free_ char *ip = sub_path_join(dir, "index.json");
    CHECK_OK(sub_write_file_atomic(ip, is, strlen(is), 0644, &e), &e);
    CHECK_INT(sub_layout_verify(dir, &e), -EILSEQ);
    CHECK(strstr(e.msg, m1) != NULL);
}

/* Concurrent writers (pulls into one new layout) must not lose each other's
 * entries: one process creating the empty index.json must never replace an
 * index another process has already tagged into. A race, so many rounds. */
TEST(layout_concurrent_init_and_tag_keep_every_entry) {
    enum { ROUNDS = 20, PROCS = 8 };
    const char *m = "{\"schemaVersion\":2,\"mediaType\":\"" SUB_MT_OCI_INDEX "\",\"manifests\":[]}";
    int lost = 0, failed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        _cleanup_free_ char *dir = xasprintf("%s/l%d", unit_tmpdir(), round);
        sub_err pe = {0};
        char d[SUB_DIGEST_MAX];
        CHECK_OK(sub_layout_put_blob_buf(dir, m, strlen(m), d, &pe), &pe); /* no index.json yet */
        pid_t pids[PROCS];
        int n = 0;
        for (int i = 0; i < PROCS; i++) {
            pid_t pid = fork();
            if (pid < 0) {
                unit_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
                break;
            }
            if (pid > 0) pids[n++] = pid;
            if (pid == 0) {
                sub_err e = {0};
                char name[16];
                snprintf(name, sizeof name, "n%d", i);
                int r = sub_layout_init(dir, &e);
                if (r == 0) r = sub_layout_tag(dir, name, SUB_MT_OCI_INDEX, d, strlen(m), &e);
                _exit(r == 0 ? 0 : 1);
            }
        }
        for (int i = 0; i < n; i++) { /* only ours: the harness may have other children */
            int st;
            if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                failed++;
        }
        _cleanup_json_ json_t *idx = load_index(dir);
        if (json_array_size(json_object_get(idx, "manifests")) != PROCS) lost++;
    }
    CHECK_INT(failed, 0);
    CHECK_INT(lost, 0);
}

/* Found with tests/fuzz (layout): an entry *named* "sha256:<A>" but holding
 * image B answered a request for digest A with B. A digest selects by digest. */
TEST(layout_resolve_by_digest_ignores_names_that_look_like_digests) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    CHECK_OK(sub_layout_init(dir, &e), &e);
    char m1[SUB_DIGEST_MAX], m2[SUB_DIGEST_MAX], d[SUB_DIGEST_MAX];
    size_t s1, s2;
    make_image(dir, "one", m1, &s1);
    make_image(dir, "two", m2, &s2);
    CHECK_OK(sub_layout_tag(dir, m1, SUB_MT_OCI_MANIFEST, m2, s2, &e), &e); /* B named "A" */
    CHECK_INT(sub_layout_resolve(dir, m1, d, NULL, NULL, &e), -ENOENT);
    CHECK_OK(sub_layout_tag(dir, "v1", SUB_MT_OCI_MANIFEST, m1, s1, &e), &e);
    CHECK_OK(sub_layout_resolve(dir, m1, d, NULL, NULL, &e), &e);
    CHECK_STREQ(d, m1);
}
