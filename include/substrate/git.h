/* The few git operations the builder needs, run through `git` (no shell). */
#pragma once
#include "error.h"
#include <stdbool.h>
#include <stdint.h>

/* Top of the work tree containing dir (caller frees). */
int sub_git_toplevel(const char *dir, char **top, sub_err *e);
/* The work tree Substrate builds from by default: the one containing the
 * current directory, else the one containing the running binary (caller frees). */
int sub_git_default_repo(char **top, sub_err *e);
/* Resolve rev to a full commit SHA (41 bytes incl. NUL); an unknown rev is an
 * input error that says so. */
int sub_git_resolve(const char *repo, const char *rev, char sha[41], sub_err *e);
/* Committer time (unix seconds) of sha. */
int sub_git_commit_time(const char *repo, const char *sha, int64_t *t, sub_err *e);
/* true when tracked files differ from HEAD (modified, staged, deleted); untracked
 * files do not count, since a build of the commit cannot see them. *summary (may be NULL) gets a short listing (caller frees). */
int sub_git_is_dirty(const char *repo, bool *dirty, char **summary, sub_err *e);
/* Extract `git archive sha` into dir (must exist, empty). */
int sub_git_export(const char *repo, const char *sha, const char *dir, sub_err *e);
/* Copy the working tree as it is (tracked + untracked-not-ignored files) into dir. */
int sub_git_export_worktree(const char *repo, const char *dir, sub_err *e);
