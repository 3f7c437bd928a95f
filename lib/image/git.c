#include "substrate/git.h"
#include "substrate/fs.h"
#include "substrate/proc.h"
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GIT_OUT_MAX (16u << 20)

/* Run git in repo; 0 when it ran (*status is its exit code). A refusal every
 * caller would otherwise misreport ("not a work tree", "unknown revision")
 * is an error here: git's safe.directory check on a repository that belongs
 * to another user. */
static int git(const char *repo, char **out, int *status, sub_err *e, ...) {
    char *argv[32];
    size_t n = 0;
    argv[n++] = "git";
    argv[n++] = "-C";
    argv[n++] = (char *)repo;
    va_list ap;
    va_start(ap, e);
    char *a;
    while ((a = va_arg(ap, char *)) && n < ARRAY_SIZE(argv) - 1) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    _cleanup_close_ int errfd = memfd_create("git-stderr", MFD_CLOEXEC);
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stderr_fd = errfd >= 0 ? errfd : SUB_FD_NULL;
    o.stdin_fd = SUB_FD_NULL;
    char *const env[] = {"GIT_TERMINAL_PROMPT=0", "LC_ALL=C", NULL};
    o.setenv = env;
    _cleanup_free_ char *buf = NULL;
    int r = sub_run_capture(argv, &o, GIT_OUT_MAX, &buf, status, e);
    if (r < 0) return r;
    if (*status != 0 && errfd >= 0) {
        char msg[4096];
        ssize_t k = pread(errfd, msg, sizeof msg - 1, 0);
        msg[k > 0 ? k : 0] = 0;
        if (strstr(msg, "dubious ownership")) {
            char abs[PATH_MAX];
            const char *where = realpath(repo, abs) ? abs : repo;
            r = sub_err_setk(e, SUB_KIND_ENV, -EPERM,
                             "git refuses to work in %s: the repository belongs to another user "
                             "(git's safe.directory check); run as its owner, or trust it with "
                             "`git config --global --add safe.directory <its top directory>`",
                             where);
            sub_err_detail(e, "%s", msg);
            return r;
        }
    }
    if (out) *out = TAKE_PTR(buf);
    return 0;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
}

int sub_git_toplevel(const char *dir, char **top, sub_err *e) {
    _cleanup_free_ char *out = NULL;
    int st;
    int r = git(dir, &out, &st, e, "rev-parse", "--show-toplevel", NULL);
    if (r < 0) return r;
    if (st != 0)
        return sub_err_set(e, -EINVAL,
                           "%s is not inside a git work tree (run from the substrate checkout or "
                           "pass --repo DIR)",
                           dir);
    chomp(out);
    *top = TAKE_PTR(out);
    return 0;
}

int sub_git_default_repo(char **top, sub_err *e) {
    sub_err ce = {0};
    int r = sub_git_toplevel(".", top, &ce);
    if (r == 0) return 0;
    if (r == -EPERM) { /* a work tree git refuses: say so, do not look elsewhere */
        if (e) *e = ce;
        return r;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        r = sub_git_toplevel(dirname(exe), top, &ce);
        if (r == 0) return 0;
        if (r == -EPERM) {
            if (e) *e = ce;
            return r;
        }
    }
    return sub_err_set(e, -EINVAL,
                       "not inside a git work tree: run from the substrate checkout or pass --repo DIR");
}

int sub_git_resolve(const char *repo, const char *rev, char sha[41], sub_err *e) {
    if (!*rev || rev[0] == '-')
        return sub_err_set(e, -EINVAL, "invalid revision \"%s\"", rev);
    _cleanup_free_ char *spec = xasprintf("%s^{commit}", rev);
    _cleanup_free_ char *out = NULL;
    int st;
    int r = git(repo, &out, &st, e, "rev-parse", "--verify", "--quiet", "--end-of-options", spec, NULL);
    if (r < 0) return r;
    chomp(out);
    if (st != 0 || strlen(out) != 40)
        return sub_err_setr(e, SUB_R_UNKNOWN_REVISION, SUB_KIND_DEFAULT, -EINVAL,
                           "unknown revision \"%s\": no such commit in %s (give a commit SHA "
                           "that exists in this repository)",
                           rev, repo);
    memcpy(sha, out, 41);
    return 0;
}

int sub_git_commit_time(const char *repo, const char *sha, int64_t *t, sub_err *e) {
    _cleanup_free_ char *out = NULL;
    int st;
    int r = git(repo, &out, &st, e, "show", "-s", "--format=%ct", sha, NULL);
    if (r < 0) return r;
    char *end;
    long long v = strtoll(out, &end, 10);
    if (st != 0 || end == out || v < 0)
        return sub_err_set(e, -EIO, "cannot read the commit time of %s", sha);
    *t = v;
    return 0;
}

/* Only tracked changes (modified, staged, deleted, renamed files) make a tree
 * dirty: a build of the commit exports the commit's bytes, which an untracked
 * file cannot change, so a scratch file lying around must not block it. */
int sub_git_is_dirty(const char *repo, bool *dirty, char **summary, sub_err *e) {
    _cleanup_free_ char *out = NULL;
    int st;
    int r = git(repo, &out, &st, e, "status", "--porcelain", "--untracked-files=no", NULL);
    if (r < 0) return r;
    if (st != 0) return sub_err_set(e, -EIO, "git status failed in %s", repo);
    *dirty = out[0] != 0;
    if (summary) {
        /* at most 10 lines */
        char *p = out;
        for (int i = 0; i < 10 && p && *p; i++) p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
        if (p && *p) strcpy(p, "...\n");
        *summary = TAKE_PTR(out);
    }
    return 0;
}

int sub_git_export(const char *repo, const char *sha, const char *dir, sub_err *e) {
    _cleanup_free_ char *tar = xasprintf("%s.tar", dir);
    int st;
    _cleanup_free_ char *out = xasprintf("--output=%s", tar);
    /* The export is the commit's bytes: no line-ending conversion from this
     * host's or this clone's configuration (core.autocrlf / core.eol would
     * turn LF into CRLF and make the image depend on where it is built).
     * Conversions the commit's own .gitattributes asks for still apply. */
    int r = git(repo, NULL, &st, e, "-c", "core.autocrlf=false", "-c", "core.eol=lf", "archive",
                "--format=tar", out, sha, NULL);
    if (r < 0) return r;
    if (st != 0) {
        bool full = sub_fs_nearly_full(dir); /* before the partial archive is removed */
        unlink(tar);
        if (full)
            return sub_err_set(e, -ENOSPC, "exporting %.12s into %s failed%s", sha, dir,
                               sub_io_hint(ENOSPC));
        return sub_err_set(e, -EIO, "git archive %s failed in %s", sha, repo);
    }
    char *argv[] = {"tar", "-x", "-f", tar, "-C", (char *)dir, "--no-same-owner", NULL};
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdin_fd = SUB_FD_NULL;
    o.stderr_fd = SUB_FD_STDOUT;
    _cleanup_free_ char *msgs = NULL;
    r = sub_run_capture(argv, &o, 1u << 20, &msgs, &st, e);
    bool full = r == 0 && st != 0 && (strstr(msgs, "No space left") || sub_fs_nearly_full(dir));
    unlink(tar);
    if (r < 0) return r;
    if (st != 0) {
        r = sub_err_set(e, full ? -ENOSPC : -EIO, "extracting the export of %.12s into %s failed%s",
                        sha, dir, full ? sub_io_hint(ENOSPC) : "");
        sub_err_detail(e, "%.900s", msgs);
        return r;
    }
    return 0;
}

static int copy_entry(const char *repo, const char *rel, const char *dir, sub_err *e) {
    _cleanup_free_ char *src = sub_path_join(repo, rel);
    _cleanup_free_ char *dst = sub_path_join(dir, rel);
    struct stat st;
    if (lstat(src, &st) < 0) return errno == ENOENT ? 0 : sub_err_set(e, -errno, "%s: %m", src);
    _cleanup_free_ char *dcopy = xstrdup(dst);
    int r = sub_mkdir_p(dirname(dcopy), 0755, e);
    if (r < 0) return r;
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n < 0) return sub_err_set(e, -errno, "readlink %s: %m", src);
        target[n] = 0;
        if (symlink(target, dst) < 0) return sub_err_set(e, -errno, "symlink %s: %m", dst);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) return 0; /* submodules and the like */
    return sub_copy_file(src, dst, (st.st_mode & 0100) ? 0755 : 0644, e);
}

int sub_git_export_worktree(const char *repo, const char *dir, sub_err *e) {
    _cleanup_free_ char *out = NULL;
    int st;
    int r = git(repo, &out, &st, e, "ls-files", "-z", "--cached", "--others", "--exclude-standard", NULL);
    if (r < 0) return r;
    if (st != 0) return sub_err_set(e, -EIO, "git ls-files failed in %s", repo);
    /* NUL-separated names; the capture buffer adds one more NUL at the end */
    for (char *p = out; *p; p += strlen(p) + 1) {
        r = copy_entry(repo, p, dir, e);
        if (r < 0) return r;
    }
    return 0;
}
