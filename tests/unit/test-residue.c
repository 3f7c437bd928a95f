/* lib/core/residue.c: names with pids, the sweep of dead pids, removal on a signal. */
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "substrate/residue.h"
#include "unit.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A pid that is certainly not running: a child we forked and reaped. */
static pid_t dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
}

TEST(residue_name_pid_parses_only_marker_pid_dash) {
    CHECK_INT(sub_residue_name_pid("abc.part-123-XyZ12", ".part-"), 123);
    CHECK_INT(sub_residue_name_pid("build-42-abcdef", "build-"), 42);
    CHECK_INT(sub_residue_name_pid("build-abcdef", "build-"), -1);    /* an old name: no pid */
    CHECK_INT(sub_residue_name_pid("build-42", "build-"), -1);        /* no dash after it */
    CHECK_INT(sub_residue_name_pid("abc.part-0-x", ".part-"), -1);
    CHECK_INT(sub_residue_name_pid("abc.part-99999999999-x", ".part-"), -1);
    CHECK_INT(sub_residue_name_pid("index.json", ".part-"), -1);
}

TEST(residue_sweep_removes_dead_pids_and_keeps_live_ones) {
    const char *d = unit_tmpdir();
    pid_t dead = dead_pid();
    _cleanup_free_ char *dead_file = xasprintf("%s/abc.part-%d-AAAAAA", d, (int)dead);
    _cleanup_free_ char *dead_dir = xasprintf("%s/build-%d-BBBBBB", d, (int)dead);
    _cleanup_free_ char *dead_sub = xasprintf("%s/sub", dead_dir);
    _cleanup_free_ char *dead_subfile = xasprintf("%s/sub/f", dead_dir);
    _cleanup_free_ char *live_file = xasprintf("%s/def.part-%d-CCCCCC", d, (int)getppid());
    _cleanup_free_ char *mine = xasprintf("%s/ghi.part-%d-DDDDDD", d, (int)getpid());
    _cleanup_free_ char *other = xasprintf("%s/abc", d);
    touch(dead_file);
    CHECK_OK(sub_mkdir_p(dead_sub, 0755, NULL), &(sub_err){0});
    touch(dead_subfile);
    touch(live_file);
    touch(mine);
    touch(other);
    sub_err e = {0};
    CHECK_INT(sub_residue_sweep(d, ".part-", &e), 1);
    CHECK(!sub_path_exists(dead_file));
    CHECK(sub_path_exists(live_file)); /* our parent is alive */
    CHECK(sub_path_exists(mine));      /* ours: never swept */
    CHECK(sub_path_exists(other));
    CHECK(sub_path_exists(dead_dir)); /* another marker */
    CHECK_INT(sub_residue_sweep(d, "build-", &e), 1);
    CHECK(!sub_path_exists(dead_dir));
    _cleanup_free_ char *missing = xasprintf("%s/nope", d);
    CHECK_INT(sub_residue_sweep(missing, "build-", &e), 0);
}

TEST(residue_mkstemp_and_mkdtemp_put_the_pid_in_the_name) {
    const char *d = unit_tmpdir();
    sub_err e = {0};
    _cleanup_free_ char *base = xasprintf("%s/blob.part-", d);
    _cleanup_free_ char *f = NULL, *dir = NULL;
    int fd = sub_residue_mkstemp(base, &f, &e);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK_INT(sub_residue_name_pid(f, ".part-"), getpid());
    CHECK_OK(sub_residue_mkdtemp(d, "build-", &dir, &e), &e);
    CHECK(dir && sub_residue_name_pid(dir, "build-") == getpid());
    sub_residue_remove(f);
    sub_residue_remove(dir);
    CHECK(!sub_path_exists(f));
    CHECK(dir && !sub_path_exists(dir));
}

/* In a child: install the handler, register a file and a tree (with a
 * symlink out of it), start a sleeping grandchild, then kill ourselves with
 * sig. The handler must stop the grandchild, remove both paths without
 * following the symlink, and die of sig. */
static void interrupted_child(const char *d, int sig, const char *outside) {
    /* as a foreground process has it: a test run started in the background
     * by a shell inherits SIGINT ignored, which the handler keeps (below) */
    signal(sig, SIG_DFL);
    sub_residue_install();
    sub_err e = {0};
    _cleanup_free_ char *base = xasprintf("%s/blob.part-", d);
    _cleanup_free_ char *f = NULL, *dir = NULL;
    int fd = sub_residue_mkstemp(base, &f, &e);
    if (fd < 0 || sub_residue_mkdtemp(d, "build-", &dir, &e) < 0) _exit(90);
    if (write(fd, "partial", 7) != 7) _exit(91);
    _cleanup_free_ char *deep = xasprintf("%s/a/b/c/d", dir);
    if (sub_mkdir_p(deep, 0755, &e) < 0) _exit(92);
    for (int i = 0; i < 300; i++) { /* more entries than one getdents64 buffer */
        _cleanup_free_ char *p = xasprintf("%s/a/file-with-a-longish-name-%03d", dir, i);
        touch(p);
    }
    _cleanup_free_ char *link = xasprintf("%s/a/b/out", dir);
    if (symlink(outside, link) < 0) _exit(93);
    char *argv[] = {"sleep", "30", NULL};
    pid_t gc;
    if (sub_spawn(argv, NULL, &gc, &e) < 0) _exit(94);
    _cleanup_free_ char *gcf = xasprintf("%s/grandchild", d);
    FILE *g = fopen(gcf, "w");
    if (!g) _exit(95);
    fprintf(g, "%d\n", (int)gc);
    fclose(g);
    raise(sig);
    _exit(96); /* the handler must not return */
}

static void check_interrupt(int sig) {
    const char *d = unit_tmpdir();
    _cleanup_free_ char *outside = xasprintf("%s/outside", d);
    CHECK_OK(sub_mkdir_p(outside, 0755, NULL), &(sub_err){0});
    _cleanup_free_ char *keep = xasprintf("%s/keep", outside);
    touch(keep);
    _cleanup_free_ char *work = xasprintf("%s/work", d);
    CHECK_OK(sub_mkdir_p(work, 0755, NULL), &(sub_err){0});
    pid_t p = fork();
    if (p == 0) interrupted_child(work, sig, outside);
    int st = 0;
    waitpid(p, &st, 0);
    CHECK(WIFSIGNALED(st));
    if (WIFSIGNALED(st)) CHECK_INT(WTERMSIG(st), sig);
    else unit_fail(__FILE__, __LINE__, "child exited %d instead of dying of %d", WEXITSTATUS(st), sig);
    /* only the grandchild's pid file is left in work */
    _cleanup_free_ char *gcf = xasprintf("%s/grandchild", work);
    _cleanup_free_ char *pid_s = NULL;
    CHECK_OK(sub_read_file(gcf, 64, &pid_s, NULL, NULL), &(sub_err){0});
    pid_t gc = pid_s ? (pid_t)atoi(pid_s) : 0;
    CHECK(gc > 0 && kill(gc, 0) < 0); /* stopped (and reaped) by the handler */
    if (gc > 0 && kill(gc, 0) == 0) kill(gc, SIGKILL);
    unlink(gcf);
    CHECK(rmdir(work) == 0); /* empty: the file and the tree are gone */
    CHECK(sub_path_exists(keep)); /* the symlink was not followed */
}

TEST(residue_sigterm_removes_registered_paths_and_children) { check_interrupt(SIGTERM); }
TEST(residue_sigint_removes_registered_paths_and_children) { check_interrupt(SIGINT); }

/* An ignored signal (nohup, a background job of a shell) stays ignored:
 * the handler is not installed for it, so it neither cleans up nor dies. */
TEST(residue_an_ignored_signal_stays_ignored) {
    pid_t p = fork();
    if (p == 0) {
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        sub_residue_install();
        struct sigaction old;
        if (sigaction(SIGINT, NULL, &old) < 0 || old.sa_handler != SIG_IGN) _exit(90);
        if (sigaction(SIGTERM, NULL, &old) < 0 || old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN) _exit(91);
        raise(SIGINT);
        _exit(0);
    }
    int st = 0;
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st));
    CHECK_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
}
