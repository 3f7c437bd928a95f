#include "substrate/ref.h"
#include "unit.h"

#define D64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

TEST(ref_valid_table) {
    static const struct {
        const char *in, *reg, *repo, *tag, *digest;
    } t[] = {
        {"127.0.0.1:5000/hello:1.0.0", "127.0.0.1:5000", "hello", "1.0.0", NULL},
        {"127.0.0.1:5000/hello@sha256:" D64, "127.0.0.1:5000", "hello", NULL, "sha256:" D64},
        {"127.0.0.1:5000/a/b/c:t@sha256:" D64, "127.0.0.1:5000", "a/b/c", "t", "sha256:" D64},
        {"localhost/hello", "localhost", "hello", NULL, NULL},
        {"localhost:5000/my_app.x-y__z:latest", "localhost:5000", "my_app.x-y__z", "latest", NULL},
        {"registry.example.com/team/app:v1_2", "registry.example.com", "team/app", "v1_2", NULL},
        {"Example.COM/app", "Example.COM", "app", NULL, NULL},
        {"[::1]:5000/hello:1", "[::1]:5000", "hello", "1", NULL},
        {"hello", "DEF:1", "hello", NULL, NULL},
        {"team/hello:_x", "DEF:1", "team/hello", "_x", NULL},
        {"a--b/c:1", "DEF:1", "a--b/c", "1", NULL},
        {"my-registry:5000/x", "my-registry:5000", "x", NULL, NULL},
        /* per the grammar, a lone "host:port" is repository "127.0.0.1" with tag "5000" */
        {"127.0.0.1:5000", "DEF:1", "127.0.0.1", "5000", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_err e = {0};
        _cleanup_ref_ sub_ref r = {0};
        if (sub_ref_parse(t[i].in, "DEF:1", &r, &e) < 0) {
            unit_fail(__FILE__, __LINE__, "\"%s\" refused: %s", t[i].in, e.msg);
            continue;
        }
        CHECK_STREQ(r.registry, t[i].reg);
        CHECK_STREQ(r.repository, t[i].repo);
        if (t[i].tag) CHECK_STREQ(r.tag, t[i].tag);
        else CHECK(r.tag == NULL);
        if (t[i].digest) CHECK_STREQ(r.digest, t[i].digest);
        else CHECK(r.digest == NULL);
    }
}

TEST(ref_invalid_table_says_why) {
    static const struct {
        const char *in, *why;
    } t[] = {
        {"", "empty"},
        {"127.0.0.1:5000/Hello", "uppercase"},
        {"127.0.0.1:5000/hello:1.0.0+build", "'+'"},
        {"127.0.0.1:5000/hello:", "empty tag"},
        {"127.0.0.1:5000/hello:.x", "must start"},
        {"127.0.0.1:5000/hello@sha256:abc", "hex digits"},
        {"127.0.0.1:5000/hello@md5:" D64, "unsupported algorithm"},
        {"127.0.0.1:5000/hello@sha256:" D64 "@sha256:" D64, "more than one"},
        {"127.0.0.1:5000//hello", "empty path component"},
        {"127.0.0.1:5000/hello/", "empty path component"},
        {"127.0.0.1:5000/-hello", "start and end"},
        {"127.0.0.1:5000/hel...lo", "separator"},
        {"127.0.0.1:5000/hel___lo", "separator"},
        {"127.0.0.1:/hello", "empty port"},
        {"127.0.0.1:99999/hello", "1-65535"},
        {"127.0.0.1:50a/hello", "number"},
        {"exa_mple.com/hello", "not allowed in a host"},
        {"-bad.com/hello", "start or end with '-'"},
        {"127.0.0.1:5000/hel lo", "whitespace"},
        {"@sha256:" D64, "no repository"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_err e = {0};
        _cleanup_ref_ sub_ref r = {0};
        int rc = sub_ref_parse(t[i].in, "DEF:1", &r, &e);
        if (rc != -EINVAL) {
            unit_fail(__FILE__, __LINE__, "\"%s\" accepted (rc %d)", t[i].in, rc);
            continue;
        }
        if (!strstr(e.msg, t[i].why))
            unit_fail(__FILE__, __LINE__, "\"%s\": message \"%s\" lacks \"%s\"", t[i].in, e.msg,
                      t[i].why);
    }
}

TEST(ref_requires_registry_without_default) {
    sub_err e = {0};
    sub_ref r = {0};
    CHECK(sub_ref_parse("hello:1", NULL, &r, &e) == -EINVAL);
    CHECK(strstr(e.msg, "names no registry") != NULL);
}

TEST(ref_name_length_capped) {
    char buf[400];
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "127.0.0.1:5000/", 15);
    buf[sizeof buf - 1] = 0;
    sub_err e = {0};
    sub_ref r = {0};
    CHECK(sub_ref_parse(buf, NULL, &r, &e) == -EINVAL);
    CHECK(strstr(e.msg, "limit is 255") != NULL);
}

/* The limit is exact: a name (registry/repository) of 255 characters is
 * accepted, one of 256 refused. */
TEST(ref_name_length_boundary) {
    char buf[300];
    memcpy(buf, "127.0.0.1:5000/", 15);
    memset(buf + 15, 'a', 240);
    buf[255] = 0;
    CHECK_INT(strlen(buf), 255);
    sub_err e = {0};
    _cleanup_ref_ sub_ref ok = {0};
    CHECK_OK(sub_ref_parse(buf, NULL, &ok, &e), &e);
    CHECK(ok.repository && strlen(ok.repository) == 240);
    /* with a tag the name is still 255 */
    memcpy(buf + 255, ":v1", 4);
    _cleanup_ref_ sub_ref tagged = {0};
    CHECK_OK(sub_ref_parse(buf, NULL, &tagged, &e), &e);
    buf[255] = 'a';
    buf[256] = 0;
    sub_ref r = {0};
    CHECK_FAILS(sub_ref_parse(buf, NULL, &r, &e), -EINVAL);
    CHECK(strstr(e.msg, "256 characters") && strstr(e.msg, "limit is 255"));
    /* the same with a default registry: counted with it */
    _cleanup_ref_ sub_ref viadef = {0};
    CHECK_OK(sub_ref_parse(buf + 15 + 1, "127.0.0.1:5000", &viadef, &e), &e);
    CHECK_FAILS(sub_ref_parse(buf + 15, "127.0.0.1:5000", &r, &e), -EINVAL);
}

TEST(ref_roundtrip_string) {
    sub_err e = {0};
    _cleanup_ref_ sub_ref r = {0};
    const char *in = "127.0.0.1:5000/a/b:t@sha256:" D64;
    CHECK_OK(sub_ref_parse(in, NULL, &r, &e), &e);
    _cleanup_free_ char *s = sub_ref_str(&r);
    CHECK_STREQ(s, in);
    _cleanup_free_ char *n = sub_ref_name(&r);
    CHECK_STREQ(n, "127.0.0.1:5000/a/b");
}

TEST(tag_validate_table) {
    sub_err e = {0};
    CHECK_OK(sub_tag_validate("1.0.0", &e), &e);
    CHECK_OK(sub_tag_validate("_x-Y.z", &e), &e);
    char long_tag[130];
    memset(long_tag, 'a', 128);
    long_tag[128] = 0;
    CHECK_OK(sub_tag_validate(long_tag, &e), &e);
    long_tag[128] = 'a';
    long_tag[129] = 0;
    CHECK(sub_tag_validate(long_tag, &e) == -EINVAL);
    CHECK(sub_tag_validate("1.0.0+meta", &e) == -EINVAL);
    CHECK_REASON(&e, SUB_R_INVALID_TAG);
    CHECK(strstr(e.msg, "semver") != NULL); /* says why '+' is refused */
    CHECK(sub_tag_validate("-x", &e) == -EINVAL);
    CHECK(sub_tag_validate("a/b", &e) == -EINVAL);
}
