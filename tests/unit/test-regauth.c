/* Registry authentication parts that need no server: WWW-Authenticate
 * parsing, token responses, auth.json / docker config.json credentials and
 * the login/logout file edits. */
#include "../../lib/registry/client-internal.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "unit.h"
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

TEST(regauth_challenge_parsing) {
    challenge c;
    reg_parse_challenge("Bearer realm=\"https://auth.example.com/token\",service=\"registry."
                        "example.com\",scope=\"repository:a/b:pull,push\"",
                        &c);
    CHECK_STREQ(c.scheme, "Bearer");
    CHECK_STREQ(c.realm, "https://auth.example.com/token");
    CHECK_STREQ(c.service, "registry.example.com");
    CHECK_STREQ(c.scope, "repository:a/b:pull,push"); /* the comma inside quotes stays */
    CHECK_STREQ(c.error, "");
    /* unquoted values, spaces after commas, an error parameter, case-insensitive keys */
    reg_parse_challenge("bearer Realm=http://127.0.0.1:1/t, Service=svc, error=\"insufficient_"
                        "scope\", scope=\"repository:x:pull\"",
                        &c);
    CHECK_STREQ(c.scheme, "bearer");
    CHECK_STREQ(c.realm, "http://127.0.0.1:1/t");
    CHECK_STREQ(c.service, "svc");
    CHECK_STREQ(c.error, "insufficient_scope");
    CHECK_STREQ(c.scope, "repository:x:pull");
    /* escapes inside quotes; unknown parameters ignored */
    reg_parse_challenge("Basic realm=\"a \\\"quoted\\\" realm\", charset=\"UTF-8\"", &c);
    CHECK_STREQ(c.scheme, "Basic");
    CHECK_STREQ(c.realm, "a \"quoted\" realm");
    /* hostile input: overlong values are cut, never overflow; junk is survivable */
    char big[4096];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = 0;
    _cleanup_free_ char *h = xasprintf("Bearer realm=\"%s\",scope=%s,error=%s", big, big, big);
    reg_parse_challenge(h, &c);
    CHECK_INT(strlen(c.realm), sizeof c.realm - 1);
    CHECK_INT(strlen(c.scope), sizeof c.scope - 1);
    CHECK_INT(strlen(c.error), sizeof c.error - 1);
    reg_parse_challenge("Bearer realm=\"unterminated", &c);
    CHECK_STREQ(c.realm, "unterminated");
    reg_parse_challenge(",,,=,=\"", &c);
    reg_parse_challenge(NULL, &c);
    CHECK_STREQ(c.scheme, "");
}

TEST(regauth_scope_canonical) {
    /* docker-registry lists actions in map order: both orders must give one cache key */
    _cleanup_free_ char *a = reg_scope_canonical("repository:t/x:push,pull");
    _cleanup_free_ char *b = reg_scope_canonical("repository:t/x:pull,push");
    CHECK_STREQ(a, "repository:t/x:pull,push");
    CHECK_STREQ(b, a);
    _cleanup_free_ char *c =
        reg_scope_canonical("repository:z:pull repository:a:push,pull,pull registry:catalog:*");
    CHECK_STREQ(c, "registry:catalog:* repository:a:pull,push repository:z:pull");
    _cleanup_free_ char *d = reg_scope_canonical("repository:host:5000/x:pull"); /* ':' in name */
    CHECK_STREQ(d, "repository:host:5000/x:pull");
    _cleanup_free_ char *e = reg_scope_canonical("");
    CHECK_STREQ(e, "");
    _cleanup_free_ char *f = reg_scope_canonical(NULL);
    CHECK_STREQ(f, "");
}

TEST(regauth_token_response) {
    sub_err e = {0};
    char *tok = NULL;
    long ttl = 0;
    const char *a = "{\"token\":\"abc.def.ghi\",\"expires_in\":300,"
                    "\"issued_at\":\"2026-01-01T00:00:00Z\"}";
    CHECK_OK(reg_parse_token_response(a, strlen(a), &tok, &ttl, &e), &e);
    CHECK_STREQ(tok, "abc.def.ghi");
    CHECK_INT(ttl, 300);
    free(tok);
    const char *b = "{\"access_token\":\"xyz\"}"; /* OAuth2 field, default lifetime */
    CHECK_OK(reg_parse_token_response(b, strlen(b), &tok, &ttl, &e), &e);
    CHECK_STREQ(tok, "xyz");
    CHECK_INT(ttl, 60);
    free(tok);
    const char *both = "{\"token\":\"t1\",\"access_token\":\"t2\",\"expires_in\":0}";
    CHECK_OK(reg_parse_token_response(both, strlen(both), &tok, &ttl, &e), &e);
    CHECK_STREQ(tok, "t1");
    CHECK_INT(ttl, 60);
    free(tok);
    const char *none = "{\"expires_in\":5}";
    CHECK_INT(reg_parse_token_response(none, strlen(none), &tok, &ttl, &e), -EPROTO);
    CHECK(tok == NULL);
    const char *inject = "{\"token\":\"abc\\r\\nX-Evil: 1\"}"; /* no header injection */
    CHECK_INT(reg_parse_token_response(inject, strlen(inject), &tok, &ttl, &e), -EPROTO);
    CHECK(tok == NULL);
    CHECK(reg_parse_token_response("not json", 8, &tok, &ttl, &e) < 0);
}

TEST(regauth_auth_file_parsing) {
    sub_err e = {0};
    char *u = NULL, *p = NULL;
    /* base64("alice:s3cr:et") -- a password may contain ':' */
    const char *j = "{\"auths\":{\"reg.example.com:5000\":{\"auth\":\"YWxpY2U6czNjcjpldA==\"},"
                    "\"https://other.example.com/v1/\":{\"auth\":\"Ym9iOnB3\"},"
                    "\"helper.example.com\":{},"
                    "\"plain.example.com\":{\"username\":\"carol\",\"password\":\"pw\"}},"
                    "\"credsStore\":\"desktop\"}";
    CHECK_INT(sub_reg_auth_parse(j, strlen(j), "t.json", "reg.example.com:5000", &u, &p, &e), 1);
    CHECK_STREQ(u, "alice");
    CHECK_STREQ(p, "s3cr:et");
    free(u);
    free(p);
    CHECK_INT(sub_reg_auth_parse(j, strlen(j), "t.json", "other.example.com", &u, &p, &e), 1);
    CHECK_STREQ(u, "bob");
    CHECK_STREQ(p, "pw");
    free(u);
    free(p);
    CHECK_INT(sub_reg_auth_parse(j, strlen(j), "t.json", "plain.example.com", &u, &p, &e), 1);
    CHECK_STREQ(u, "carol");
    free(u);
    free(p);
    CHECK_INT(sub_reg_auth_parse(j, strlen(j), "t.json", "helper.example.com", &u, &p, &e), 0);
    CHECK_INT(sub_reg_auth_parse(j, strlen(j), "t.json", "reg.example.com", &u, &p, &e), 0);
    CHECK_INT(sub_reg_auth_parse(j, strlen(j), "t.json", "nowhere:1", &u, &p, &e), 0);
    CHECK(u == NULL && p == NULL);
    const char *bad = "{\"auths\":{\"h:1\":{\"auth\":\"!!notbase64\"}}}";
    CHECK_INT(sub_reg_auth_parse(bad, strlen(bad), "t.json", "h:1", &u, &p, &e), -EBADMSG);
    CHECK(strstr(e.msg, "t.json") != NULL);
    const char *nocolon = "{\"auths\":{\"h:1\":{\"auth\":\"bm9jb2xvbg==\"}}}"; /* "nocolon" */
    CHECK_INT(sub_reg_auth_parse(nocolon, strlen(nocolon), "t.json", "h:1", &u, &p, &e), -EBADMSG);
    const char *arr = "{\"auths\":[]}";
    CHECK_INT(sub_reg_auth_parse(arr, strlen(arr), "t.json", "h:1", &u, &p, &e), -EBADMSG);
    CHECK_INT(sub_err_exit_code(&e), 2);
    CHECK(sub_reg_auth_parse("{", 1, "t.json", "h:1", &u, &p, &e) < 0);
    const char *empty = "{}";
    CHECK_INT(sub_reg_auth_parse(empty, 2, "t.json", "h:1", &u, &p, &e), 0);
}

TEST(regauth_store_and_remove) {
    sub_err e = {0};
    _cleanup_free_ char *f = sub_path_join(unit_tmpdir(), "sub/auth.json");
    /* another tool's keys are kept */
    _cleanup_free_ char *d = sub_path_join(unit_tmpdir(), "sub");
    CHECK_OK(sub_mkdir_p(d, 0700, &e), &e);
    const char *pre = "{\"auths\":{\"keep.example.com\":{\"auth\":\"Ym9iOnB3\"}},\"credsStore\":"
                      "\"x\"}";
    CHECK_OK(sub_write_file_atomic(f, pre, strlen(pre), 0644, &e), &e);
    setenv("REGISTRY_AUTH_FILE", f, 1);
    _cleanup_free_ char *got = sub_reg_auth_file();
    CHECK_STREQ(got, f);
    _cleanup_free_ char *path = NULL;
    CHECK_OK(sub_reg_auth_store("127.0.0.1:5000", "alice", "pw:1", &path, &e), &e);
    CHECK_STREQ(path, f);
    struct stat st;
    CHECK(stat(f, &st) == 0 && (st.st_mode & 0777) == 0600);
    _cleanup_free_ char *s = NULL;
    size_t len = 0;
    CHECK_OK(sub_read_file(f, 65536, &s, &len, &e), &e);
    char *u = NULL, *p = NULL;
    CHECK_INT(sub_reg_auth_parse(s, len, f, "127.0.0.1:5000", &u, &p, &e), 1);
    CHECK_STREQ(u, "alice");
    CHECK_STREQ(p, "pw:1");
    free(u);
    free(p);
    CHECK(strstr(s, "credsStore") != NULL && strstr(s, "keep.example.com") != NULL);
    /* the environment wins over the file; the file is read when it is unset */
    char *src = NULL;
    setenv("SUBSTRATE_REGISTRY_USER", "envuser", 1);
    setenv("SUBSTRATE_REGISTRY_PASSWORD", "envpw", 1);
    CHECK_OK(reg_creds_find("127.0.0.1:5000", &u, &p, &src, &e), &e);
    CHECK_STREQ(u, "envuser");
    free(u), free(p), free(src);
    unsetenv("SUBSTRATE_REGISTRY_USER");
    unsetenv("SUBSTRATE_REGISTRY_PASSWORD");
    CHECK_OK(reg_creds_find("127.0.0.1:5000", &u, &p, &src, &e), &e);
    CHECK_STREQ(u, "alice");
    CHECK_STREQ(src, f);
    free(u), free(p), free(src);
    CHECK_OK(reg_creds_find("127.0.0.1:5001", &u, &p, &src, &e), &e);
    CHECK(u == NULL && src == NULL);
    /* remove */
    CHECK_INT(sub_reg_auth_remove("127.0.0.1:5000", NULL, &e), 1);
    CHECK_INT(sub_reg_auth_remove("127.0.0.1:5000", NULL, &e), 0);
    free(s);
    s = NULL;
    CHECK_OK(sub_read_file(f, 65536, &s, &len, &e), &e);
    CHECK(strstr(s, "127.0.0.1:5000") == NULL && strstr(s, "keep.example.com") != NULL);
    /* a malformed file is reported, not overwritten */
    CHECK_OK(sub_write_file_atomic(f, "[1]", 3, 0600, &e), &e);
    CHECK_INT(sub_reg_auth_store("h:1", "u", "p", NULL, &e), -EBADMSG);
    CHECK(strstr(e.msg, f) != NULL);
    CHECK(reg_creds_find("h:1", &u, &p, &src, &e) < 0);
    CHECK(u == NULL && p == NULL && src == NULL);
    CHECK_INT(sub_reg_auth_store("h:1", "a:b", "p", NULL, &e), -EINVAL);
    unsetenv("REGISTRY_AUTH_FILE");
}

TEST(regauth_token_cache_per_scope_and_expiry) {
    sub_err e = {0};
    sub_reg *r = NULL;
    unsetenv("SUBSTRATE_REGISTRY_USER");
    sub_reg_opts o = {.host = "127.0.0.1:5000"};
    setenv("REGISTRY_AUTH_FILE", "/nonexistent/auth.json", 1);
    CHECK_OK(sub_reg_new(&o, &r, &e), &e);
    unsetenv("REGISTRY_AUTH_FILE");
    if (!r) return;
    reg_token *a = reg_token_put(r, "realm svc repository:a:pull", xstrdup("tok-a"), 300);
    reg_token *b = reg_token_put(r, "realm svc repository:b:pull", xstrdup("tok-b"), 2);
    CHECK(a && b && a != b);
    reg_token *t = reg_token_find(r, "realm svc repository:a:pull");
    CHECK(t && !strcmp(t->token, "tok-a"));
    t = reg_token_find(r, "realm svc repository:b:pull");
    CHECK(t && !strcmp(t->token, "tok-b"));
    CHECK(reg_token_find(r, "realm svc repository:c:pull") == NULL);
    CHECK(reg_token_find(r, "realm svc repository:a:pull,push") == NULL);
    /* a new token for the same scope replaces the old one in place */
    reg_token *a2 = reg_token_put(r, "realm svc repository:a:pull", xstrdup("tok-a2"), 300);
    CHECK(a2 == a);
    t = reg_token_find(r, "realm svc repository:a:pull");
    CHECK(t && !strcmp(t->token, "tok-a2"));
    /* expiry: the 2 s token is gone after 2 s (the 300 s one would still be live) */
    struct timespec ts = {2, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(reg_token_find(r, "realm svc repository:b:pull") == NULL);
    t = reg_token_find(r, "realm svc repository:a:pull");
    CHECK(t && !strcmp(t->token, "tok-a2"));
    /* a full cache drops the entry that expires first, never a fresh one */
    for (int i = 0; i < REG_TOKEN_CACHE + 4; i++) {
        _cleanup_free_ char *k = xasprintf("realm svc repository:n%d:pull", i);
        reg_token_put(r, k, xasprintf("tok-n%d", i), 600);
    }
    t = reg_token_find(r, "realm svc repository:n19:pull");
    CHECK(t && !strcmp(t->token, "tok-n19"));
    sub_reg_free(r);
}
