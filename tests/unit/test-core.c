#include "substrate/digest.h"
#include "substrate/fs.h"
#include "substrate/json.h"
#include "substrate/proc.h"
#include "substrate/strbuf.h"
#include "unit.h"
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

TEST(digest_sha256_known_vectors) {
    sub_err e = {0};
    char d[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_buf("", 0, d, &e), &e);
    CHECK_STREQ(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_OK(sub_sha256_buf("abc", 3, d, &e), &e);
    CHECK_STREQ(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* streaming in pieces gives the same result as one shot */
    sub_sha256 h = {0};
    CHECK_OK(sub_sha256_init(&h, &e), &e);
    sub_sha256_update(&h, "a", 1);
    sub_sha256_update(&h, "bc", 2);
    char d2[SUB_DIGEST_MAX];
    sub_sha256_final(&h, d2);
    CHECK_STREQ(d2, d);
}

TEST(digest_file_matches_shared_vector) {
    sub_err e = {0};
    _cleanup_free_ char *p = unit_shared("vectors/cosign/image-manifest.json");
    _cleanup_free_ char *want = NULL;
    _cleanup_free_ char *wp = unit_shared("vectors/cosign/image-manifest.digest");
    size_t len, size = 0;
    CHECK_OK(sub_read_file(wp, 4096, &want, &len, &e), &e);
    if (!want) return;
    want[strcspn(want, "\n")] = 0;
    char d[SUB_DIGEST_MAX];
    CHECK_OK(sub_sha256_file(p, d, &size, &e), &e);
    CHECK_STREQ(d, want);
    CHECK(size > 0);
}

TEST(digest_validate_table) {
    static const struct {
        const char *d;
        bool ok;
    } t[] = {
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", true},
        {"sha512:" "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
         "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e", true},
        {"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", false},
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", false},
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", false},
        {"sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false},
        {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", false},
        {"md5:d41d8cd98f00b204e9800998ecf8427e", false},
        {"sha256:", false},
        {"", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        sub_err e = {0};
        int r = sub_digest_validate(t[i].d, &e);
        if ((r == 0) != t[i].ok) unit_fail(__FILE__, __LINE__, "digest \"%s\": got %d", t[i].d, r);
        if (r < 0 && !e.msg[0]) unit_fail(__FILE__, __LINE__, "no message for \"%s\"", t[i].d);
    }
}

TEST(json_rejects_duplicate_keys_and_oversize) {
    sub_err e = {0};
    json_t *j = NULL;
    const char *dup = "{\"a\":1,\"a\":2}";
    CHECK(sub_json_parse(dup, strlen(dup), 1024, "doc", &j, &e) < 0);
    CHECK(strstr(e.msg, "duplicate") != NULL);
    const char *ok = "{\"b\":1,\"a\":[true,\"x\"]}";
    CHECK(sub_json_parse(ok, strlen(ok), 8, "doc", &j, &e) == -E2BIG);
    CHECK_OK(sub_json_parse(ok, strlen(ok), 1024, "doc", &j, &e), &e);
    _cleanup_free_ char *s = sub_json_dump(j, NULL);
    CHECK_STREQ(s, "{\"a\":[true,\"x\"],\"b\":1}");
    const char *str;
    CHECK(sub_json_get_str(j, "doc", "b", true, &str, &e) == -EBADMSG);
    CHECK(strstr(e.msg, "must be a string") != NULL);
    CHECK(sub_json_get_str(j, "doc", "zz", false, &str, &e) == -ENOENT);
    static const char *const allowed[] = {"a", NULL};
    CHECK(sub_json_check_keys(j, "doc", allowed, &e) == -EBADMSG);
    CHECK(strstr(e.msg, "\"b\"") != NULL);
    json_decref(j);
}

TEST(fs_atomic_write_replaces_whole_file) {
    sub_err e = {0};
    _cleanup_free_ char *p = sub_path_join(unit_tmpdir(), "f");
    CHECK_OK(sub_write_file_atomic(p, "one", 3, 0640, &e), &e);
    CHECK_OK(sub_write_file_atomic(p, "second", 6, 0600, &e), &e);
    _cleanup_free_ char *data = NULL;
    size_t len;
    CHECK_OK(sub_read_file(p, 100, &data, &len, &e), &e);
    CHECK_STREQ(data, "second");
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(sub_read_file(p, 3, &data, &len, &e) == -EFBIG);
    /* a write into a missing directory fails and leaves nothing */
    _cleanup_free_ char *bad = sub_path_join(unit_tmpdir(), "nodir/f");
    CHECK(sub_write_file_atomic(bad, "x", 1, 0644, &e) < 0);
    CHECK(!sub_path_exists(bad));
}

TEST(fs_rm_rf_does_not_follow_symlinks) {
    sub_err e = {0};
    const char *t = unit_tmpdir();
    _cleanup_free_ char *keep = sub_path_join(t, "keep");
    _cleanup_free_ char *keepf = sub_path_join(t, "keep/file");
    _cleanup_free_ char *victim = sub_path_join(t, "victim/a/b");
    _cleanup_free_ char *link = sub_path_join(t, "victim/a/link");
    _cleanup_free_ char *vroot = sub_path_join(t, "victim");
    CHECK_OK(sub_mkdir_p(keep, 0755, &e), &e);
    CHECK_OK(sub_write_file_atomic(keepf, "x", 1, 0644, &e), &e);
    CHECK_OK(sub_mkdir_p(victim, 0755, &e), &e);
    CHECK(symlink(keep, link) == 0);
    CHECK_OK(sub_rm_rf(vroot, &e), &e);
    CHECK(!sub_path_exists(vroot));
    CHECK(sub_path_exists(keepf));
    CHECK(sub_rm_rf("/", &e) == -EINVAL);
}

TEST(proc_spawn_capture_and_errors) {
    sub_err e = {0};
    char *argv[] = {"sh", "-c", "printf \"$FOO\"; exit 3", NULL};
    char *env[] = {"FOO=hello", NULL};
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.setenv = env;
    _cleanup_free_ char *out = NULL;
    int st = -1;
    CHECK_OK(sub_run_capture(argv, &o, 1024, &out, &st, &e), &e);
    CHECK_STREQ(out, "hello");
    CHECK_INT(st, 3);
    char *missing[] = {"substrate-no-such-program", NULL};
    CHECK(sub_run(missing, NULL, &st, &e) == -ENOENT);
    CHECK(strstr(e.msg, "not found") != NULL);
    o.cwd = "/nonexistent-dir";
    CHECK(sub_run(argv, &o, &st, &e) == -ENOENT);
    CHECK(strstr(e.msg, "/nonexistent-dir") != NULL);
}

TEST(strbuf_appends_and_detaches) {
    sub_buf b = SUB_BUF_INIT;
    CHECK_STREQ(sub_buf_str(&b), "");
    for (int i = 0; i < 1000; i++) sub_buf_printf(&b, "%d,", i);
    CHECK(b.len > 1000);
    CHECK(str_has_suffix(b.data, "999,"));
    size_t len;
    char *s = sub_buf_detach(&b, &len);
    CHECK(len == strlen(s));
    CHECK(b.data == NULL && b.len == 0);
    free(s);
}

TEST(fs_read_file_refuses_fifos_and_devices_without_hanging) {
    sub_err e = {0};
    _cleanup_free_ char *p = sub_path_join(unit_tmpdir(), "fifo");
    CHECK(mkfifo(p, 0600) == 0);
    char *data = NULL;
    size_t len;
    CHECK(sub_read_file(p, 100, &data, &len, &e) == -EINVAL);
    CHECK(strstr(e.msg, "not a regular file") != NULL);
    CHECK(sub_read_file("/dev/zero", 100, &data, &len, &e) == -EINVAL);
    CHECK(data == NULL);
}

TEST(proc_children_inherit_no_descriptors_but_0_to_2) {
    int p[2], fds[2];
    CHECK(pipe(p) == 0);
    /* deliberately without O_CLOEXEC, at numbers ls itself will not use */
    fds[0] = dup2(p[0], 40);
    fds[1] = dup2(p[1], 41);
    close(p[0]);
    close(p[1]);
    CHECK(fds[0] == 40 && fds[1] == 41);
    char *argv[] = {"sh", "-c", "ls /proc/self/fd", NULL};
    _cleanup_free_ char *out = NULL;
    int st = -1;
    sub_err e = {0};
    CHECK_OK(sub_run_capture(argv, NULL, 4096, &out, &st, &e), &e);
    char a[16], b[16];
    snprintf(a, sizeof a, "\n%d\n", fds[0]);
    snprintf(b, sizeof b, "\n%d\n", fds[1]);
    _cleanup_free_ char *wrapped = xasprintf("\n%s", out ? out : "");
    CHECK(strstr(wrapped, a) == NULL);
    CHECK(strstr(wrapped, b) == NULL);
    /* ... while ours stay open and inheritable in this process */
    CHECK(fcntl(fds[0], F_GETFD) == 0);
    close(fds[0]);
    close(fds[1]);
}

/* issue 6 item 10: a message cut at its 1024-byte limit must stay valid UTF-8 */
TEST(error_message_is_cut_at_a_character_boundary) {
    sub_buf b = SUB_BUF_INIT;
    for (int i = 0; i < 700; i++) sub_buf_puts(&b, "\xC3\xA9"); /* é, 2 bytes */
    for (size_t pre = 0; pre < 4; pre++) { /* every alignment of the cut */
        sub_err e = {0};
        sub_err_set(&e, -EBADMSG, "%.*sunknown media type \"%s\"", (int)pre, "xxx", sub_buf_str(&b));
        size_t n = strlen(e.msg);
        CHECK(n >= sizeof e.msg - 4 && n < sizeof e.msg);
        CHECK(sub_utf8_cut(e.msg, n) == n);
        json_t *j = json_string(e.msg);
        CHECK(j != NULL);
        json_decref(j);
        sub_err_detail(&e, "%.*s%s", (int)pre, "xxx", sub_buf_str(&b));
        CHECK(sub_utf8_cut(e.detail, strlen(e.detail)) == strlen(e.detail));
        sub_err_prefix(&e, "%.*s\xE2\x82\xAC", (int)pre, "xxx"); /* € */
        CHECK(sub_utf8_cut(e.msg, strlen(e.msg)) == strlen(e.msg));
        j = json_string(e.msg);
        CHECK(j != NULL);
        json_decref(j);
    }
    sub_buf_free(&b);
    CHECK_INT(sub_utf8_cut("ab\xE2\x82", 4), 2);
    CHECK_INT(sub_utf8_cut("ab\xE2\x82\xAC", 5), 5);
    CHECK_INT(sub_utf8_cut("ab\xF0\x9F\x98", 5), 2);
    CHECK_INT(sub_utf8_cut("ab", 2), 2);
}

TEST(utf8_char_rejects_ill_formed_sequences) {
    uint32_t cp;
    CHECK_INT(sub_utf8_char("\xC3\xA9", 2, &cp), 2);
    CHECK_INT(cp, 0xE9);
    CHECK_INT(sub_utf8_char("\xF0\x9F\x98\x80", 4, &cp), 4);
    CHECK_INT(cp, 0x1F600);
    CHECK_INT(sub_utf8_char("\xC0\xAF", 2, &cp), 0);         /* overlong */
    CHECK_INT(sub_utf8_char("\xE0\x80\xAF", 3, &cp), 0);     /* overlong */
    CHECK_INT(sub_utf8_char("\xED\xA0\x80", 3, &cp), 0);     /* surrogate */
    CHECK_INT(sub_utf8_char("\xF4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
    CHECK_INT(sub_utf8_char("\xC3", 1, &cp), 0);             /* cut */
    CHECK_INT(sub_utf8_char("\xFF", 1, &cp), 0);
}

/* issue 6 item 10: any bytes become a JSON string (never NULL, never abort) */
TEST(json_str_makes_any_bytes_valid) {
    json_t *j = sub_json_str("dir\xff" "x\xC3");
    CHECK(j && json_is_string(j));
    CHECK_STREQ(json_string_value(j), "dir\xEF\xBF\xBDx\xEF\xBF\xBD");
    json_decref(j);
    j = sub_json_str("caf\xC3\xA9");
    CHECK_STREQ(json_string_value(j), "caf\xC3\xA9");
    json_decref(j);
    j = sub_json_str(NULL);
    CHECK(json_is_null(j));
    _cleanup_free_ char *s = sub_json_dump_pretty(NULL);
    CHECK_STREQ(s, "null\n");
    _cleanup_free_ char *c = sub_json_dump(NULL, NULL);
    CHECK_STREQ(c, "null");
}

/* issue 6 item 14: nothing from outside may drive the terminal */
TEST(str_escape_renders_control_characters) {
    _cleanup_free_ char *a = sub_str_escape("ok\x1b[2J\x1b]0;t\x07 \x7f|\xC2\x9B|\x9b|\n\t|caf\xC3\xA9");
    CHECK_STREQ(a, "ok\\x1b[2J\\x1b]0;t\\x07 \\x7f|\\xc2\\x9b|\\x9b|\\x0a\\x09|caf\xC3\xA9");
    _cleanup_free_ char *b = sub_str_escape("plain: text/1.0 @sha256");
    CHECK_STREQ(b, "plain: text/1.0 @sha256");
    _cleanup_free_ char *c = sub_str_escape(NULL);
    CHECK_STREQ(c, "");
}

/* sub_umount_under: every mount at or under a directory, the deepest first,
 * a blank in a path included (mountinfo escapes it); a sibling whose name
 * only starts the same is left alone. */
TEST(fs_umount_under_detaches_nested_mounts_only_there) {
    if (geteuid() != 0) {
        unit_skip("needs root (mount)");
        return;
    }
    const char *t = unit_tmpdir();
    _cleanup_free_ char *d = xasprintf("%s/build", t), *x = xasprintf("%s/build/x", t),
                       *y = xasprintf("%s/build/x/y", t), *b = xasprintf("%s/build/a b", t),
                       *sib = xasprintf("%s/build2", t);
    CHECK_OK(sub_mkdir_p(x, 0755, NULL), &(sub_err){0});
    CHECK_OK(sub_mkdir_p(b, 0755, NULL), &(sub_err){0});
    CHECK_OK(sub_mkdir_p(sib, 0755, NULL), &(sub_err){0});
    CHECK(mount("t", x, "tmpfs", 0, "size=1m") == 0);
    CHECK_OK(sub_mkdir_p(y, 0755, NULL), &(sub_err){0});
    CHECK(mount("t", y, "tmpfs", 0, "size=1m") == 0);
    CHECK(mount("t", b, "tmpfs", 0, "size=1m") == 0);
    CHECK(mount("t", sib, "tmpfs", 0, "size=1m") == 0);
    CHECK_INT(sub_umount_under(d), 3);
    struct stat sd, sx, sb, ss, st0;
    CHECK(stat(d, &sd) == 0 && stat(x, &sx) == 0 && stat(b, &sb) == 0 && stat(sib, &ss) == 0 && stat(t, &st0) == 0);
    CHECK(sx.st_dev == sd.st_dev && sb.st_dev == sd.st_dev); /* no longer mount points */
    CHECK(ss.st_dev != st0.st_dev);                          /* the sibling still is */
    CHECK_INT(sub_umount_under(d), 0);
    CHECK(umount2(sib, MNT_DETACH) == 0);
}
