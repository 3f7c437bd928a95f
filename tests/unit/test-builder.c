/* lib/image/builder.c on a scratch repository: what the build reads comes
 * from the commit. */
#include "substrate/build.h"
#include "substrate/fs.h"
#include "substrate/proc.h"
#include "unit.h"

static void git_in(const char *repo, char *const *args) {
    sub_err e = {0};
    char *argv[16] = {"git", "-C", (char *)repo, "-c", "user.name=t", "-c", "user.email=t@t"};
    size_t n = 7;
    for (; *args && n < 15; args++) argv[n++] = *args;
    argv[n] = NULL;
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.stdout_fd = SUB_FD_NULL;
    o.stderr_fd = SUB_FD_NULL;
    int st = -1;
    CHECK_OK(sub_run(argv, &o, &st, &e), &e);
    CHECK_INT(st, 0);
}

/* A committed image.json that is a symlink to a file on the build host:
 * the build would follow it out of the export and build from host state. */
TEST(builder_refuses_a_spec_outside_the_export) {
    sub_err e = {0};
    const char *dir = unit_tmpdir();
    _cleanup_free_ char *repo = sub_path_join(dir, "repo");
    _cleanup_free_ char *imgdir = sub_path_join(repo, "platform/images/tiny");
    _cleanup_free_ char *host = sub_path_join(dir, "host-spec.json");
    _cleanup_free_ char *link = sub_path_join(imgdir, "image.json");
    CHECK_OK(sub_mkdir_p(imgdir, 0755, &e), &e);
    const char *spec = "{\"name\":\"tiny\",\"dirs\":[{\"path\":\"/data\",\"mode\":\"0755\"}]}";
    CHECK_OK(sub_write_file_atomic(host, spec, strlen(spec), 0644, &e), &e);
    CHECK(symlink(host, link) == 0);
    git_in(repo, (char *[]){"init", "-q", NULL});
    git_in(repo, (char *[]){"add", "-A", NULL});
    git_in(repo, (char *[]){"commit", "-qm", "tiny", NULL});
    _cleanup_free_ char *state = sub_path_join(dir, "state");
    sub_build_opts o = {.repo = repo, .image = "tiny", .version = "1", .rev = "HEAD",
                        .state_dir = state};
    sub_build_result res;
    CHECK_FAILS(sub_build_image(&o, &res, &e), -EPERM);
    CHECK(strstr(e.msg, "image.json") && strstr(e.msg, "outside"));
    /* the same spec as a plain committed file builds */
    CHECK(unlink(link) == 0);
    CHECK_OK(sub_write_file_atomic(link, spec, strlen(spec), 0644, &e), &e);
    git_in(repo, (char *[]){"add", "-A", NULL});
    git_in(repo, (char *[]){"commit", "-qm", "plain", NULL});
    CHECK_OK(sub_build_image(&o, &res, &e), &e);
    sub_build_result_free(&res);
}
