/* lib/image/git.c: the export of an exact commit is the commit's bytes, not
 * what this host's git configuration would check out. */
#include "substrate/fs.h"
#include "substrate/git.h"
#include "substrate/proc.h"
#include "unit.h"
#include <unistd.h>

static void git_in(const char *repo, const char *a, const char *b, const char *c, const char *d) {
    sub_err e = {0};
    char *argv[] = {"git", "-C", (char *)repo, "-c", "user.name=t", "-c", "user.email=t@t",
                    (char *)a, (char *)b, (char *)c, (char *)d, NULL};
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdout_fd = SUB_FD_NULL;
    o.stderr_fd = SUB_FD_NULL;
    int st = -1;
    CHECK_OK(sub_run(argv, &o, &st, &e), &e);
    CHECK_INT(st, 0);
}

TEST(git_export_ignores_host_line_ending_config) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *repo = sub_path_join(dir, "repo");
    _cleanup_free_ char *file = sub_path_join(repo, "f.txt");
    CHECK_OK(sub_mkdir_p(repo, 0755, &e), &e);
    git_in(repo, "init", "-q", NULL, NULL);
    CHECK_OK(sub_write_file_atomic(file, "a\nb\n", 4, 0644, &e), &e);
    git_in(repo, "add", "f.txt", NULL, NULL);
    git_in(repo, "commit", "-qm", "x", NULL);
    /* a host (or repository) set up for CRLF checkouts */
    git_in(repo, "config", "core.autocrlf", "true", NULL);
    git_in(repo, "config", "core.eol", "crlf", NULL);
    char sha[41] = "";
    CHECK_OK(sub_git_resolve(repo, "HEAD", sha, &e), &e);
    _cleanup_free_ char *out = sub_path_join(dir, "export");
    CHECK_OK(sub_mkdir_p(out, 0755, &e), &e);
    CHECK_OK(sub_git_export(repo, sha, out, &e), &e);
    _cleanup_free_ char *got_path = sub_path_join(out, "f.txt");
    _cleanup_free_ char *got = NULL;
    size_t len = 0;
    CHECK_OK(sub_read_file(got_path, 4096, &got, &len, &e), &e);
    CHECK_INT(len, 4);
    CHECK(got && memcmp(got, "a\nb\n", 4) == 0);
}

/* A checkout that belongs to another user (a CI workspace, a clone made
 * before `su`): git refuses it. The error must say so and how to fix it,
 * not claim there is no work tree or no such commit. */
TEST(git_refusal_of_another_users_repository_is_explained) {
    if (geteuid() != 0) {
        unit_skip("needs root to give the repository to another user");
        return;
    }
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *repo = sub_path_join(dir, "theirs");
    CHECK_OK(sub_mkdir_p(repo, 0755, &e), &e);
    git_in(repo, "init", "-q", NULL, NULL);
    git_in(repo, "commit", "-q", "--allow-empty", "-mx");
    char *argv[] = {"chown", "-R", "65534:65534", repo, NULL};
    int st = -1;
    CHECK_OK(sub_run(argv, NULL, &st, &e), &e);
    CHECK_INT(st, 0);
    _cleanup_free_ char *top = NULL;
    CHECK(sub_git_toplevel(repo, &top, &e) < 0);
    CHECK(strstr(e.msg, "another user") && strstr(e.msg, "safe.directory") && strstr(e.msg, repo));
    CHECK_INT(sub_err_exit_code(&e), SUB_EXIT_ENV);
    char sha[41];
    CHECK(sub_git_resolve(repo, "HEAD", sha, &e) < 0);
    CHECK(strstr(e.msg, "safe.directory") != NULL);
    /* found from the current directory, too */
    char cwd[4096];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    if (chdir(repo) == 0) {
        _cleanup_free_ char *top2 = NULL;
        CHECK(sub_git_default_repo(&top2, &e) < 0);
        CHECK(strstr(e.msg, "another user") && strstr(e.msg, repo));
        CHECK(chdir(cwd) == 0);
    }
}

/* Only tracked changes make a tree dirty: an untracked file cannot change
 * what a build of the commit exports, so it must not block one. */
TEST(git_dirty_means_tracked_changes_only) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *repo = sub_path_join(dir, "repo");
    _cleanup_free_ char *file = sub_path_join(repo, "f.txt");
    _cleanup_free_ char *scratch = sub_path_join(repo, "scratch.txt");
    CHECK_OK(sub_mkdir_p(repo, 0755, &e), &e);
    git_in(repo, "init", "-q", NULL, NULL);
    CHECK_OK(sub_write_file_atomic(file, "a\n", 2, 0644, &e), &e);
    git_in(repo, "add", "f.txt", NULL, NULL);
    git_in(repo, "commit", "-qm", "x", NULL);
    bool dirty = true;
    CHECK_OK(sub_git_is_dirty(repo, &dirty, NULL, &e), &e);
    CHECK(!dirty);

    /* an untracked file: still clean */
    CHECK_OK(sub_write_file_atomic(scratch, "tmp\n", 4, 0644, &e), &e);
    dirty = true;
    CHECK_OK(sub_git_is_dirty(repo, &dirty, NULL, &e), &e);
    CHECK(!dirty);

    /* a tracked file modified (not staged): dirty, and the summary names it */
    CHECK_OK(sub_write_file_atomic(file, "b\n", 2, 0644, &e), &e);
    _cleanup_free_ char *summary = NULL;
    dirty = false;
    CHECK_OK(sub_git_is_dirty(repo, &dirty, &summary, &e), &e);
    CHECK(dirty);
    CHECK(summary && strstr(summary, "f.txt") && !strstr(summary, "scratch.txt"));

    /* staged, then the tracked file deleted: dirty both times */
    git_in(repo, "add", "f.txt", NULL, NULL);
    dirty = false;
    CHECK_OK(sub_git_is_dirty(repo, &dirty, NULL, &e), &e);
    CHECK(dirty);
    git_in(repo, "commit", "-qm", "y", NULL);
    CHECK(unlink(file) == 0);
    dirty = false;
    CHECK_OK(sub_git_is_dirty(repo, &dirty, NULL, &e), &e);
    CHECK(dirty);
}
