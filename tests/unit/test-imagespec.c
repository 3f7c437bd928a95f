#include "substrate/fs.h"
#include "substrate/imagespec.h"
#include "unit.h"

static int load_str(const char *json, const char *expect, sub_imagespec *s, sub_err *e) {
    _cleanup_free_ char *p = sub_path_join(unit_tmpdir(), "image.json");
    if (sub_write_file_atomic(p, json, strlen(json), 0644, e) < 0) return -EIO;
    return sub_imagespec_load(p, expect, s, e);
}

TEST(imagespec_parses_full_spec) {
    const char *j = "{\"name\":\"hello\",\"description\":\"d\",\"source\":\"https://x\","
                    "\"build\":[\"make\",\"-s\"],\"build_packages\":[\"gcc-12\"],"
                    "\"files\":[{\"from\":\"out:hello\",\"to\":\"/usr/bin/hello\",\"mode\":\"0755\"},"
                    "{\"from\":\"host:/bin/busybox\",\"package\":\"busybox-static\",\"to\":\"/bin/busybox\",\"mode\":\"755\"}],"
                    "\"dirs\":[{\"path\":\"/tmp\",\"mode\":\"1777\"}],"
                    "\"symlinks\":[{\"path\":\"/bin/sh\",\"target\":\"busybox\"}],"
                    "\"config\":{\"entrypoint\":[\"/usr/bin/hello\"],\"env\":[\"A=b\"],\"ports\":[\"8080/tcp\",\"53\"],"
                    "\"labels\":{\"z\":\"1\",\"a\":\"2\"},\"workdir\":\"/\",\"user\":\"65534\"}}";
    sub_imagespec s;
    sub_err e = {0};
    CHECK_OK(load_str(j, "hello", &s, &e), &e);
    if (e.code) return;
    CHECK_STREQ(s.name, "hello");
    CHECK_STREQ(s.build[0], "make");
    CHECK_STREQ(s.build_packages[0], "gcc-12");
    CHECK_INT(s.n_files, 2);
    CHECK_INT(s.files[0].kind, SUB_FROM_OUT);
    CHECK_STREQ(s.files[0].from, "hello");
    CHECK_INT(s.files[0].mode, 0755);
    CHECK_INT(s.files[1].kind, SUB_FROM_HOST);
    CHECK_STREQ(s.files[1].package, "busybox-static");
    CHECK_INT(s.dirs[0].mode, 01777);
    CHECK_STREQ(s.links[0].target, "busybox");
    CHECK_STREQ(s.label_keys[0], "a"); /* sorted */
    CHECK_STREQ(s.label_values[0], "2");
    CHECK_STREQ(s.ports[1], "53");
    sub_imagespec_free(&s);
}

TEST(imagespec_refuses_bad_specs_by_name) {
    static const struct {
        const char *json, *why;
    } t[] = {
        {"[]", "must be a JSON object"},
        {"{\"name\":\"hello\",\"name\":\"x\"}", "duplicate"},
        {"{\"name\":\"other\",\"dirs\":[{\"path\":\"/x\",\"mode\":\"0755\"}]}", "does not match"},
        {"{\"name\":\"hello\"}", "image would be empty"},
        {"{\"name\":\"hello\",\"extra\":1}", "unknown field \"extra\""},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"x\",\"mode\":\"0755\"}]}", "must be absolute"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a/../b\",\"mode\":\"0755\"}]}", "component"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a//b\",\"mode\":\"0755\"}]}", "component"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"0855\"}]}", "not octal"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"07\"}]}", "3-4 octal"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":493}]}", "must be a string"},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"out:../x\",\"to\":\"/x\",\"mode\":\"0644\"}]}", "component"},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"src:/etc/passwd\",\"to\":\"/x\",\"mode\":\"0644\"}]}", "relative"},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"web:x\",\"to\":\"/x\",\"mode\":\"0644\"}]}", "out:, src: or host:"},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"host:/bin/sh\",\"to\":\"/x\",\"mode\":\"0644\"}]}", "needs \"package\""},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"out:x\",\"package\":\"p\",\"to\":\"/x\",\"mode\":\"0644\"}]}", "only applies"},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"out:x\",\"to\":\"/x\"}]}", "\"mode\" is missing"},
        {"{\"name\":\"hello\",\"build\":[],\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}]}", "empty list"},
        {"{\"name\":\"hello\",\"build\":[\"make\",1],\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}]}", "must be a string"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}],\"config\":{\"env\":[\"NOEQUALS\"]}}", "KEY=VALUE"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}],\"config\":{\"ports\":[\"99999\"]}}", "port"},
        {"{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}],\"config\":{\"labels\":{\"a\":1}}}", "label \"a\""},
        {"{\"name\":\"Hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}]}", "image name"},
        /* package names reach dpkg-query's argv: an option there would make it
         * read another package database and record made-up versions */
        {"{\"name\":\"hello\",\"build_packages\":[\"--admindir=/tmp/fake\"],\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}]}", "not a Debian package name"},
        {"{\"name\":\"hello\",\"build_packages\":[\"gcc 12\"],\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}]}", "not a Debian package name"},
        {"{\"name\":\"hello\",\"files\":[{\"from\":\"host:/bin/sh\",\"package\":\"-Sdash\",\"to\":\"/x\",\"mode\":\"0644\"}]}", "not a Debian package name"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_imagespec s;
        sub_err e = {0};
        int r = load_str(t[i].json, "hello", &s, &e);
        if (r >= 0) {
            unit_fail(__FILE__, __LINE__, "spec %zu accepted: %s", i, t[i].json);
            sub_imagespec_free(&s);
        } else if (!strstr(e.msg, t[i].why))
            unit_fail(__FILE__, __LINE__, "spec %zu: \"%s\" lacks \"%s\"", i, e.msg, t[i].why);
    }
}

TEST(imagespec_oversize_refused) {
    size_t n = 300 * 1024;
    char *big = xmalloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"name\":\"hello\"", 15);
    big[n - 1] = '}';
    big[n] = 0;
    sub_imagespec s;
    sub_err e = {0};
    CHECK(load_str(big, "hello", &s, &e) == -EFBIG);
    free(big);
}

TEST(imagespec_without_config_has_empty_labels) {
    sub_imagespec s;
    sub_err e = {0};
    CHECK_OK(load_str("{\"name\":\"hello\",\"dirs\":[{\"path\":\"/a\",\"mode\":\"0755\"}]}", "hello", &s, &e), &e);
    if (e.code) return;
    CHECK(s.label_keys != NULL && s.label_keys[0] == NULL);
    CHECK(s.label_values != NULL && s.label_values[0] == NULL);
    CHECK(s.entrypoint == NULL);
    sub_imagespec_free(&s);
}
