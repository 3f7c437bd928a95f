/* lib/core/fsat.c: "..", absolute paths and symlinks never reach outside the
 * root: refused with SUB_RESOLVE_BENEATH, contained with SUB_RESOLVE_IN_ROOT. */
#include "substrate/fs.h"
#include "unit.h"
#include <dirent.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char *top, *root, *outside_secret;
    int rootfd;
} tree;

static void put(const char *path, const char *s) {
    sub_err e = {0};
    if (sub_write_file_atomic(path, s, strlen(s), 0644, &e) < 0) unit_fail(__FILE__, __LINE__, "%s", e.msg);
}

static char *slurp_fd(int fd) {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return xstrndup(buf, n > 0 ? (size_t)n : 0);
}

static char *slurp(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? xstrdup("<missing>") : slurp_fd(fd);
}

/* top/outside/secret = "outside"; top/root/secret = "inside"; top/root/etc/;
 * symlinks in the root: abs -> /, up -> ../outside, dotdot -> ../../..,
 * s1 -> /secret, abs_out -> <top>/outside, victim -> <top>/outside/secret */
static tree mktree(void) {
    tree t = {0};
    t.top = xstrdup(unit_tmpdir());
    t.root = xasprintf("%s/root", t.top);
    _cleanup_free_ char *out = xasprintf("%s/outside", t.top);
    _cleanup_free_ char *etc = xasprintf("%s/etc", t.root);
    sub_mkdir_p(out, 0755, NULL);
    sub_mkdir_p(etc, 0755, NULL);
    t.outside_secret = xasprintf("%s/secret", out);
    put(t.outside_secret, "outside");
    _cleanup_free_ char *in = xasprintf("%s/secret", t.root);
    put(in, "inside");
    const char *links[][2] = {{"abs", "/"}, {"up", "../outside"}, {"dotdot", "../../.."}, {"s1", "/secret"}};
    for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
        _cleanup_free_ char *l = xasprintf("%s/%s", t.root, links[i][0]);
        CHECK(symlink(links[i][1], l) == 0);
    }
    _cleanup_free_ char *l1 = xasprintf("%s/abs_out", t.root);
    _cleanup_free_ char *l2 = xasprintf("%s/victim", t.root);
    CHECK(symlink(out, l1) == 0);
    CHECK(symlink(t.outside_secret, l2) == 0);
    t.rootfd = open(t.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(t.rootfd >= 0);
    return t;
}

static void tree_done(tree *t) {
    close(t->rootfd);
    free(t->top);
    free(t->root);
    free(t->outside_secret);
}

TEST(fsat_beneath_refuses_dotdot_absolute_and_symlinks_out) {
    tree t = mktree();
    static const char *const escapes[] = {"../outside/secret", "/etc/passwd", "up/secret",
                                          "abs_out/secret", "dotdot/etc/passwd", "s1",
                                          "etc/../../outside/secret", "abs/secret"};
    for (size_t i = 0; i < ARRAY_SIZE(escapes); i++) {
        sub_err e = {0};
        int fd = sub_open_at(t.rootfd, escapes[i], O_RDONLY, 0, SUB_RESOLVE_BENEATH, &e);
        if (fd >= 0) {
            _cleanup_free_ char *got = slurp_fd(fd);
            unit_fail(__FILE__, __LINE__, "%s opened beneath the root (read \"%s\")", escapes[i], got);
            continue;
        }
        CHECK_INT(fd, -EXDEV);
        CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_USAGE);
        CHECK(strstr(e.msg, "leads outside") != NULL);
    }
    sub_err e = {0};
    int fd = sub_open_at(t.rootfd, "etc/../secret", O_RDONLY, 0, SUB_RESOLVE_BENEATH, &e);
    CHECK(fd >= 0);
    if (fd >= 0) {
        _cleanup_free_ char *got = slurp_fd(fd);
        CHECK_STREQ(got, "inside");
    }
    tree_done(&t);
}

TEST(fsat_in_root_contains_dotdot_absolute_and_symlinks) {
    tree t = mktree();
    /* every one of these names root/secret once "/" is the root */
    static const char *const contained[] = {"../secret", "/secret", "../../../secret", "s1",
                                            "abs/secret", "dotdot/secret", "etc/../../secret"};
    for (size_t i = 0; i < ARRAY_SIZE(contained); i++) {
        sub_err e = {0};
        int fd = sub_open_at(t.rootfd, contained[i], O_RDONLY, 0, SUB_RESOLVE_IN_ROOT, &e);
        if (fd < 0) {
            unit_fail(__FILE__, __LINE__, "%s: %s", contained[i], e.msg);
            continue;
        }
        _cleanup_free_ char *got = slurp_fd(fd);
        if (strcmp(got, "inside") != 0)
            unit_fail(__FILE__, __LINE__, "%s read \"%s\", not the root's secret", contained[i], got);
    }
    /* a symlink to an absolute host path is looked up inside the root: not there */
    sub_err e = {0};
    CHECK_INT(sub_open_at(t.rootfd, "abs_out/secret", O_RDONLY, 0, SUB_RESOLVE_IN_ROOT, &e), -ENOENT);
    CHECK_INT(sub_open_at(t.rootfd, "up/secret", O_RDONLY, 0, SUB_RESOLVE_IN_ROOT, &e), -ENOENT);
    tree_done(&t);
}

TEST(fsat_mkdir_p_stays_inside) {
    tree t = mktree();
    sub_err e = {0};
    /* IN_ROOT: created inside, under the root's idea of / */
    int fd = sub_mkdir_p_at(t.rootfd, "../../made/a/b", 0755, SUB_RESOLVE_IN_ROOT, &e);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    _cleanup_free_ char *in = xasprintf("%s/made/a/b", t.root);
    _cleanup_free_ char *outm = xasprintf("%s/made", t.top);
    CHECK(sub_path_exists(in));
    CHECK(!sub_path_exists(outm));
    fd = sub_mkdir_p_at(t.rootfd, "abs/tmp/x", 0755, SUB_RESOLVE_IN_ROOT, &e);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    _cleanup_free_ char *tx = xasprintf("%s/tmp/x", t.root);
    CHECK(sub_path_exists(tx));
    /* BENEATH: refused, nothing made outside */
    CHECK_INT(sub_mkdir_p_at(t.rootfd, "../escaped", 0755, SUB_RESOLVE_BENEATH, &e), -EXDEV);
    CHECK_INT(sub_mkdir_p_at(t.rootfd, "/escaped", 0755, SUB_RESOLVE_BENEATH, &e), -EXDEV);
    CHECK_INT(sub_mkdir_p_at(t.rootfd, "up/escaped/deeper", 0755, SUB_RESOLVE_BENEATH, &e), -EXDEV);
    _cleanup_free_ char *esc1 = xasprintf("%s/escaped", t.top);
    _cleanup_free_ char *esc2 = xasprintf("%s/outside/escaped", t.top);
    CHECK(!sub_path_exists(esc1));
    CHECK(!sub_path_exists(esc2));
    fd = sub_mkdir_p_at(t.rootfd, "etc/x/y", 0700, SUB_RESOLVE_BENEATH, &e);
    CHECK(fd >= 0);
    struct stat st;
    if (fd >= 0) {
        CHECK(fstat(fd, &st) == 0 && S_ISDIR(st.st_mode));
        close(fd);
    }
    tree_done(&t);
}

TEST(fsat_write_file_replaces_symlinks_and_never_writes_outside) {
    tree t = mktree();
    sub_err e = {0};
    /* the final component is a symlink to a file outside: replaced, not followed */
    CHECK_OK(sub_write_file_at(t.rootfd, "victim", "new", 3, 0640, SUB_RESOLVE_BENEATH, &e), &e);
    _cleanup_free_ char *os = slurp(t.outside_secret);
    CHECK_STREQ(os, "outside");
    _cleanup_free_ char *vp = xasprintf("%s/victim", t.root);
    struct stat st;
    CHECK(lstat(vp, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640);
    _cleanup_free_ char *v = slurp(vp);
    CHECK_STREQ(v, "new");
    /* IN_ROOT: /etc/passwd is the root's */
    CHECK_OK(sub_write_file_at(t.rootfd, "/etc/passwd", "root:x:0:0::/:/bin/sh\n", 22, 0644,
                               SUB_RESOLVE_IN_ROOT, &e), &e);
    _cleanup_free_ char *pp = xasprintf("%s/etc/passwd", t.root);
    CHECK(sub_path_exists(pp));
    CHECK_INT(sub_write_file_at(t.rootfd, "up/secret", "x", 1, 0644, SUB_RESOLVE_IN_ROOT, &e), -ENOENT);
    /* BENEATH: a parent outside is refused */
    CHECK_INT(sub_write_file_at(t.rootfd, "up/secret", "pwned", 5, 0644, SUB_RESOLVE_BENEATH, &e), -EXDEV);
    CHECK_INT(sub_write_file_at(t.rootfd, "../outside/secret", "pwned", 5, 0644, SUB_RESOLVE_BENEATH, &e), -EXDEV);
    _cleanup_free_ char *os2 = slurp(t.outside_secret);
    CHECK_STREQ(os2, "outside");
    CHECK_INT(sub_write_file_at(t.rootfd, "etc/..", "x", 1, 0644, SUB_RESOLVE_BENEATH, &e), -EINVAL);
    /* no temporaries left */
    _cleanup_free_ char *etc = xasprintf("%s/etc", t.root);
    DIR *d = opendir(etc);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.' || strstr(de->d_name, ".tmp-")) n++;
    if (d) closedir(d);
    CHECK_INT(n, 1); /* passwd only */
    tree_done(&t);
}

TEST(fsat_without_openat2_fails_clearly) {
    /* a seccomp filter makes openat2 look absent, as on a kernel before 5.6 */
    const char *d = unit_tmpdir();
    int rootfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t p = fork();
    if (p == 0) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0) < 0 ||
            seccomp_load(ctx) < 0)
            _exit(90);
        sub_err e = {0};
        int r = sub_open_at(rootfd, "x", O_RDONLY, 0, SUB_RESOLVE_IN_ROOT, &e);
        char msg[1200];
        int n = snprintf(msg, sizeof msg, "%d %d %s", r, sub_err_exit_code(&e), e.msg);
        if (write(pfd[1], msg, (size_t)n) < 0) _exit(91);
        _exit(0);
    }
    close(pfd[1]);
    char buf[1200] = {0};
    ssize_t n = read(pfd[0], buf, sizeof buf - 1);
    close(pfd[0]);
    int st;
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(n > 0);
    int r = 0, code = 0;
    sscanf(buf, "%d %d", &r, &code);
    CHECK_INT(r, -ENOSYS);
    CHECK_INT(code, SUB_EXIT_ENV);
    CHECK(strstr(buf, "no openat2") && strstr(buf, "Linux 5.6"));
    close(rootfd);
}
