/* The registry client API against a real docker-registry on a free loopback
 * port (started and stopped through the regserver API): the calls the CLI
 * does not reach directly (tags, HEADs, in-memory blobs) and its argument
 * checks. Skipped when docker-registry is not installed. */
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/proc.h"
#include "substrate/registry.h"
#include "substrate/regserver.h"
#include "unit.h"
#include "../../lib/registry/client-internal.h"
#include <sys/stat.h>

TEST(regclient_addresses_and_loopback_policy) {
    CHECK(sub_reg_addr_is_loopback("127.0.0.1:5000"));
    CHECK(sub_reg_addr_is_loopback("127.8.9.10:1"));
    CHECK(sub_reg_addr_is_loopback("localhost:5000"));
    CHECK(sub_reg_addr_is_loopback("LOCALHOST"));
    CHECK(sub_reg_addr_is_loopback("[::1]:5000"));
    CHECK(!sub_reg_addr_is_loopback("128.0.0.1:5000"));
    CHECK(!sub_reg_addr_is_loopback("0.0.0.0:5000"));
    CHECK(!sub_reg_addr_is_loopback("10.0.0.1:5000"));
    CHECK(!sub_reg_addr_is_loopback("[::]:5000"));
    CHECK(!sub_reg_addr_is_loopback("registry.example.com:443"));
    CHECK(!sub_reg_addr_is_loopback("localhost.example.com"));
    sub_err e = {0};
    _cleanup_free_ char *h = NULL;
    int port = -1;
    CHECK_OK(sub_reg_addr_split("[::1]:5000", &h, &port, &e), &e);
    CHECK_STREQ(h, "::1");
    CHECK_INT(port, 5000);
    CHECK(sub_reg_addr_split("127.0.0.1:70000", NULL, NULL, &e) == -EINVAL);
    CHECK(sub_reg_addr_split("::1:5000", NULL, NULL, &e) == -EINVAL);
    CHECK(strstr(e.msg, "brackets") != NULL);
    /* remote registries are accepted (issue 6): https unless listed as insecure;
     * nothing is sent by sub_reg_new */
    sub_reg *r = NULL;
    unsetenv("SUBSTRATE_REGISTRY_TLS");
    unsetenv("SUBSTRATE_INSECURE_REGISTRIES");
    unsetenv("SUBSTRATE_CA_FILE");
    unsetenv("SUBSTRATE_REGISTRY_USER");
    setenv("REGISTRY_AUTH_FILE", "/nonexistent/auth.json", 1);
    sub_reg_opts o = {.host = "192.168.1.10:5000"};
    CHECK_OK(sub_reg_new(&o, &r, &e), &e);
    CHECK(r && !strcmp(sub_reg_scheme(r), "https"));
    sub_reg_free(r);
    r = NULL;
    setenv("SUBSTRATE_INSECURE_REGISTRIES", "10.1.1.1:80, 192.168.1.10:5000", 1);
    CHECK_OK(sub_reg_new(&o, &r, &e), &e);
    CHECK(r && !strcmp(sub_reg_scheme(r), "http"));
    sub_reg_free(r);
    r = NULL;
    setenv("SUBSTRATE_INSECURE_REGISTRIES", "192.168.1.10", 1); /* a bare host: every port */
    CHECK_OK(sub_reg_new(&o, &r, &e), &e);
    CHECK(r && !strcmp(sub_reg_scheme(r), "http"));
    sub_reg_free(r);
    r = NULL;
    setenv("SUBSTRATE_INSECURE_REGISTRIES", "192.168.1.100:5000,192.168.1.1", 1);
    CHECK_OK(sub_reg_new(&o, &r, &e), &e);
    CHECK(r && !strcmp(sub_reg_scheme(r), "https"));
    sub_reg_free(r);
    r = NULL;
    unsetenv("SUBSTRATE_INSECURE_REGISTRIES");
    sub_reg_opts lo = {.host = "127.0.0.1:5000"};
    CHECK_OK(sub_reg_new(&lo, &r, &e), &e);
    CHECK(r && !strcmp(sub_reg_scheme(r), "http"));
    sub_reg_free(r);
    r = NULL;
    setenv("SUBSTRATE_REGISTRY_TLS", "1", 1);
    CHECK_OK(sub_reg_new(&lo, &r, &e), &e);
    CHECK(r && !strcmp(sub_reg_scheme(r), "https"));
    sub_reg_free(r);
    r = NULL;
    setenv("SUBSTRATE_REGISTRY_TLS", "yes", 1);
    CHECK_INT(sub_reg_new(&lo, &r, &e), -EINVAL);
    CHECK(strstr(e.msg, "SUBSTRATE_REGISTRY_TLS") != NULL);
    unsetenv("SUBSTRATE_REGISTRY_TLS");
    setenv("SUBSTRATE_CA_FILE", "/nonexistent/ca.pem", 1);
    CHECK_INT(sub_reg_new(&lo, &r, &e), -EINVAL);
    CHECK(strstr(e.msg, "/nonexistent/ca.pem") != NULL);
    CHECK_INT(sub_err_exit_code(&e), 2);
    unsetenv("SUBSTRATE_CA_FILE");
    CHECK(r == NULL);
    unsetenv("REGISTRY_AUTH_FILE");
    sub_reg_opts o2 = {.host = "127.0.0.1:5000", .username = "u"};
    unsetenv("SUBSTRATE_REGISTRY_PASSWORD");
    CHECK_INT(sub_reg_new(&o2, &r, &e), -EINVAL);
    CHECK(strstr(e.msg, "no password") != NULL);
}

static void exercise(sub_reg *r, const char *addr) {
    sub_err e = {0};
    CHECK_STREQ(sub_reg_host(r), addr);
    CHECK_OK(sub_reg_ping(r, &e), &e);

    /* blobs in memory */
    const char *cfg =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]}}";
    char cd[SUB_DIGEST_MAX], ld[SUB_DIGEST_MAX] = "not-a-digest";
    CHECK_OK(sub_sha256_buf(cfg, strlen(cfg), cd, &e), &e);
    CHECK_INT(sub_reg_blob_exists(r, "unit/img", cd, NULL, &e), 0);
    CHECK_INT(sub_reg_blob_put_buf(r, "unit/img", ld, cfg, strlen(cfg), &e),
              -EINVAL); /* not a digest */
    CHECK_OK(sub_sha256_buf("layer", 5, ld, &e), &e);
    CHECK_INT(sub_reg_blob_put_buf(r, "unit/img", ld, cfg, strlen(cfg), &e), -EILSEQ);
    CHECK_INT(sub_reg_blob_exists(r, "unit/img", ld, NULL, &e), 0); /* nothing was sent */
    CHECK_OK(sub_reg_blob_put_buf(r, "unit/img", cd, cfg, strlen(cfg), &e), &e);
    CHECK_OK(sub_reg_blob_put_buf(r, "unit/img", cd, cfg, strlen(cfg), &e),
             &e); /* exists: skipped */
    uint64_t size = 0;
    CHECK_INT(sub_reg_blob_exists(r, "unit/img", cd, &size, &e), 1);
    CHECK_INT(size, strlen(cfg));
    _cleanup_free_ char *src = sub_path_join(unit_tmpdir(), "layer");
    CHECK_OK(sub_write_file_atomic(src, "layer", 5, 0644, &e), &e);
    CHECK_OK(sub_reg_blob_put_file(r, "unit/img", ld, src, &e), &e);
    _cleanup_free_ char *back = NULL;
    size_t blen = 0;
    CHECK_OK(sub_reg_blob_get_buf(r, "unit/img", cd, 4096, &back, &blen, &e), &e);
    CHECK(back && blen == strlen(cfg) && !memcmp(back, cfg, blen));
    char *small = NULL;
    CHECK_INT(sub_reg_blob_get_buf(r, "unit/img", cd, 10, &small, &blen, &e), -EFBIG);
    CHECK(small == NULL);

    /* blob into a file: a wrong expected size is refused and leaves nothing */
    _cleanup_free_ char *dst = sub_path_join(unit_tmpdir(), "got-layer");
    CHECK_INT(sub_reg_blob_get_file(r, "unit/img", ld, 4, dst, &e), -EILSEQ);
    CHECK(!sub_path_exists(dst));
    CHECK_OK(sub_reg_blob_get_file(r, "unit/img", ld, 5, dst, &e), &e);
    struct stat st5;
    CHECK(stat(dst, &st5) == 0 && st5.st_size == 5);
    const char *absent = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    _cleanup_free_ char *dst2 = sub_path_join(unit_tmpdir(), "absent");
    CHECK_INT(sub_reg_blob_get_file(r, "unit/img", absent, 0, dst2, &e), -ENOENT);
    CHECK_INT(e.http_status, 404);
    CHECK(strstr(e.detail, "BLOB_UNKNOWN") != NULL);
    CHECK(!sub_path_exists(dst2));

    /* manifests: PUT by tag and by digest, HEAD, GET */
    _cleanup_free_ char *man = xasprintf(
        "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":\"%"
        "s\","
        "\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":5}]}",
        SUB_MT_OCI_MANIFEST, SUB_MT_OCI_CONFIG, cd, strlen(cfg), SUB_MT_OCI_LAYER_TAR, ld);
    char md[SUB_DIGEST_MAX], got[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf(man, strlen(man), md, &e), &e);
    CHECK_OK(
        sub_reg_manifest_put(r, "unit/img", "v1", SUB_MT_OCI_MANIFEST, man, strlen(man), got, &e),
        &e);
    CHECK_STREQ(got, md);
    CHECK_OK(
        sub_reg_manifest_put(r, "unit/img", "v2", SUB_MT_OCI_MANIFEST, man, strlen(man), NULL, &e),
        &e);
    CHECK_OK(
        sub_reg_manifest_put(r, "unit/img", md, SUB_MT_OCI_MANIFEST, man, strlen(man), NULL, &e),
        &e);
    CHECK_INT(
        sub_reg_manifest_put(r, "unit/img", cd, SUB_MT_OCI_MANIFEST, man, strlen(man), NULL, &e),
        -EILSEQ);
    CHECK_INT(sub_reg_manifest_put(r, "unit/img", "v3", "text/plain", man, strlen(man), NULL, &e),
              -EINVAL);
    _cleanup_free_ char *mt = NULL;
    size = 0;
    char hd[SUB_DIGEST_MAX] = "";
    CHECK_INT(sub_reg_manifest_head(r, "unit/img", "v1", hd, &mt, &size, &e), 1);
    CHECK_STREQ(hd, md);
    CHECK_STREQ(mt, SUB_MT_OCI_MANIFEST);
    CHECK_INT(size, strlen(man));
    CHECK_INT(sub_reg_manifest_head(r, "unit/img", "nope", NULL, NULL, NULL, &e), 0);
    _cleanup_free_ char *body = NULL, *gmt = NULL;
    size_t glen = 0;
    CHECK_OK(sub_reg_manifest_get(r, "unit/img", md, &body, &glen, &gmt, got, &e), &e);
    CHECK(body && glen == strlen(man) && !memcmp(body, man, glen));
    CHECK_STREQ(got, md);
    char *nob = NULL;
    CHECK_INT(sub_reg_manifest_get(r, "unit/img", "nope", &nob, &glen, NULL, NULL, &e), -ENOENT);
    CHECK_INT(e.http_status, 404);
    CHECK(strstr(e.detail, "MANIFEST_UNKNOWN") != NULL);
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);

    /* tags */
    _cleanup_strv_ char **tags = NULL;
    CHECK_OK(sub_reg_tags(r, "unit/img", &tags, &e), &e);
    CHECK_INT(strv_len(tags), 2);
    if (strv_len(tags) == 2) {
        CHECK(streq(tags[0], "v1") || streq(tags[1], "v1"));
        CHECK(streq(tags[0], "v2") || streq(tags[1], "v2"));
    }
    char **none = NULL;
    CHECK_INT(sub_reg_tags(r, "unit/none", &none, &e), -ENOENT);
    CHECK(none == NULL);

    /* argument checks happen before any request */
    CHECK_INT(sub_reg_manifest_get(r, "Bad/Repo", "v1", &nob, &glen, NULL, NULL, &e), -EINVAL);
    CHECK_INT(sub_reg_manifest_get(r, "unit/img", "bad tag", &nob, &glen, NULL, NULL, &e), -EINVAL);
    CHECK_INT(sub_reg_blob_exists(r, "unit/img", "sha256:xyz", NULL, &e), -EINVAL);
}

TEST(regclient_api_against_docker_registry) {
    if (!sub_have_program("docker-registry")) {
        unit_skip("docker-registry is not installed");
        return;
    }
    sub_err e = {0};
    _cleanup_free_ char *state = sub_path_join(unit_tmpdir(), "state");
    _cleanup_free_ char *addr = xasprintf("127.0.0.1:%d", sub_free_loopback_port());
    sub_regsrv_opts so = {.state_dir = state, .addr = addr};
    bool already = true;
    pid_t pid = 0;
    CHECK_OK(sub_regsrv_start(&so, &already, &pid, &e), &e);
    CHECK(!already && pid > 0);
    sub_regsrv_status st;
    CHECK_OK(sub_regsrv_status_get(&so, &st, &e), &e);
    CHECK(st.running && st.answering && st.pid == pid);
    CHECK_STREQ(st.addr, addr);

    _cleanup_reg_ sub_reg *r = NULL;
    sub_reg_opts ro = {.host = addr, .timeout_s = 30};
    CHECK_OK(sub_reg_new(&ro, &r, &e), &e);
    if (r) exercise(r, addr);
    bool was = false;
    CHECK_OK(sub_regsrv_stop(&so, &was, &e), &e);
    CHECK(was);
    CHECK_OK(sub_regsrv_status_get(&so, &st, &e), &e);
    CHECK(!st.running);
    /* the client now gets a clear "not reachable" */
    if (r) {
        CHECK_INT(sub_reg_ping(r, &e), -ECONNREFUSED);
        CHECK(strstr(e.msg, "substrate registry start") != NULL);
    }
}

/* Found by tests/fuzz (http-headers): the status line was parsed with
 * strtol, which reads past the end of the header line curl hands over (its
 * buffer is not NUL-terminated). */
TEST(regclient_status_line_is_read_within_its_bounds) {
    xfer x;
    memset(&x, 0, sizeof x);
    x.method = "GET";
    x.clen = -1;
    x.in_fd = x.out_fd = -1;
    /* curl's buffer goes on after the line; only the first 11 bytes are it */
    char buf[] = "HTTP/1.1 204";
    CHECK_INT(reg_on_header(buf, 1, 11, &x), 11);
    CHECK_INT(x.status, 20);
    char *exact = xmalloc(15);
    memcpy(exact, "HTTP/1.1 404 X\r", 15); /* no NUL: ASan catches a read past it */
    CHECK_INT(reg_on_header(exact, 1, 15, &x), 15);
    CHECK_INT(x.status, 404);
    free(exact);
    char *one = xmalloc(1);
    one[0] = '\n';
    CHECK_INT(reg_on_header(one, 1, 1, &x), 1);
    free(one);
    free(x.ctype);
}
