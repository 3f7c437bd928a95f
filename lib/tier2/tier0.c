/* Tier-0: the runner's process backend (tier2.h, "Tier-0"). The job's image
 * tree comes from the same verified, digest-pinned fetch step as Tier-2's
 * disk; the job runs under the same jail as a VMM would (jail.h, rootfs
 * mode), with the guest agent as PID 1 of its PID namespace speaking the
 * same protocol over a socket pair, so the session, the deadline, the
 * teardown audit and the report are the runner's own. */
#include "t2-internal.h"
#include "substrate/config.h"
#include "substrate/fs.h"
#include "substrate/jail.h"
#include "substrate/json.h"
#include "substrate/rootfs.h"
#include <fcntl.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define T0_PIDS_MAX 512

int t0_prepare(const sub_jobspec *j, sub_reg *reg, sub_job_note_fn fn, void *ud, t0_prep *out, sub_err *e) {
    *out = (t0_prep){0};
    _cleanup_free_ char *layout = t2_path("images");
    _cleanup_free_ char *cache = t2_path("rootfs");
    if (fn) {
        _cleanup_free_ char *m = xasprintf("pulling %s by digest (tier 0: the unpacked tree is the job's root)",
                                           j->ref.digest);
        fn(ud, m);
    }
    int r = sub_rootfs_fetch(reg, j->ref.repository, j->ref.digest, layout, cache, &out->ri, &out->config, e);
    if (r < 0) return r;
    /* the private working dir: the jobspec's workdir, else /work */
    out->workdir = xstrdup(j->workdir ? j->workdir : T0_WORKDIR);
    if (streq(out->workdir, "/"))
        return sub_err_setr(e, SUB_R_BAD_JOBSPEC, SUB_KIND_INPUT, -EINVAL,
                            "%s: workdir: a tier-0 job's working dir is a fresh private tmpfs: / cannot be one "
                            "(name a directory, or leave workdir out for %s)", j->path ? j->path : j->name,
                            T0_WORKDIR);
    return 0;
}

void t0_prep_done(t0_prep *p) {
    sub_rootfs_info_done(&p->ri);
    sub_image_config_free(&p->config);
    free(p->workdir);
    *p = (t0_prep){0};
}

/* $SUBSTRATE_STATE/logs/<id>.<stream>, new, 0600. */
static int open_log(const char *id, const char *which, char **path, sub_err *e) {
    _cleanup_free_ char *dir = sub_state_path("logs");
    int r = sub_mkdir_p(dir, 0700, e);
    if (r < 0) return r;
    _cleanup_free_ char *name = xasprintf("%s.%s", id, which);
    *path = sub_path_join(dir, name);
    int fd = open(*path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return sub_err_setk(e, SUB_KIND_ENV, -errno, "the job's log %s: %s", *path, strerror(errno));
    return fd;
}

int t0_start(t2_job *jb, session *s, const t0_prep *tp, uint32_t memory_mb, const char *root, const sigset_t *block,
             json_t *rep, sub_err *e) {
    int ctl[2] = {-1, -1}, con[2] = {-1, -1};
    _cleanup_free_ char *agent = t2_agent_path();
    _cleanup_free_ char *out_log = NULL, *err_log = NULL;
    int r = 0;
    if (access(agent, X_OK) < 0)
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT, "the agent %s is missing (build it with `make`, or set "
                            "SUBSTRATE_AGENT)", agent);
    if ((r = open_log(jb->id, "stdout", &out_log, e)) < 0) return r;
    s->so.log_fd = r;
    if ((r = open_log(jb->id, "stderr", &err_log, e)) < 0) return r;
    s->se.log_fd = r;
    json_object_set_new(rep, "logs", json_pack("{s:s,s:s,s:s}", "stdout", out_log, "stderr", err_log, "note",
                                               "local files only: stdout and stderr of the job, never sent "
                                               "anywhere"));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0) {
        r = sub_err_setk(e, SUB_KIND_ENV, -errno, "socketpair: %s", strerror(errno));
        goto out;
    }
    struct stat st;
    jb->sock_ino[0] = fstat(ctl[0], &st) == 0 ? (unsigned long)st.st_ino : 0;
    jb->sock_ino[1] = fstat(con[0], &st) == 0 ? (unsigned long)st.st_ino : 0;
    char fdnum[16];
    snprintf(fdnum, sizeof fdnum, "%d", ctl[1]); /* the jail keeps passed fds at their numbers */
    char *argv[] = {agent, "--process", fdnum, NULL};
    int pass[] = {ctl[1]};
    sub_jail_opts jo = {.id = jb->id, .root_dir = root, .uid = jb->uid, .gid = jb->uid, .argv = argv,
                        .fds = pass, .nfds = 1, .stdout_fd = -1, .stderr_fd = con[1],
                        .memory_bytes = (uint64_t)memory_mb << 20, .pids_max = T0_PIDS_MAX, .netns_fd = -1,
                        .rootfs = tp->ri.rootfs, .workdir = tp->workdir, .tmpfs_mb = memory_mb};
    r = t2_spawn_session(jb, s, &jo, ctl, con, block, e);
out:;
    int fds[] = {ctl[0], ctl[1], con[0], con[1]}; /* the agent has its ends now, or never will */
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0) close(fds[i]);
    return r;
}

void t0_egress_evidence(json_t *verdicts) {
    size_t i;
    json_t *v;
    json_array_foreach(verdicts, i, v)
        json_object_set_new(v, "host", json_pack("{s:s,s:s}", "nic", "none", "evidence",
                                                 "the job's own network namespace holds only its loopback: no "
                                                 "device, no route; a probe to 127.0.0.1 reaches the job's own lo, "
                                                 "never the host's"));
}
