#include "substrate/proc.h"
#include "substrate/residue.h"
#include "substrate/strbuf.h"
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int setup_fd(int want, int target) {
    if (want == SUB_FD_INHERIT) return 0;
    if (want == SUB_FD_STDOUT) return dup2(1, target) < 0 ? -1 : 0;
    int fd = want;
    if (want == SUB_FD_NULL) {
        fd = open("/dev/null", O_RDWR);
        if (fd < 0) return -1;
    }
    if (fd == target) {
        /* clear CLOEXEC */
        int fl = fcntl(fd, F_GETFD);
        return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
    if (dup2(fd, target) < 0) return -1;
    if (want == SUB_FD_NULL) close(fd);
    return 0;
}

/* Mark every descriptor from 3 up close-on-exec (in the child, after fork). */
static void cloexec_from_3(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = 3; fd < max; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
}

static char **build_env(const sub_proc_opts *o) {
    char **env = NULL;
    if (!o->clear_env)
        for (char **p = environ; p && *p; p++) {
            bool overridden = false;
            const char *eq = strchr(*p, '=');
            size_t kl = eq ? (size_t)(eq - *p) : strlen(*p);
            for (char *const *s = o->setenv; s && *s; s++)
                if (!strncmp(*s, *p, kl) && (*s)[kl] == '=') overridden = true;
            if (!overridden) strv_push(&env, *p);
        }
    for (char *const *s = o->setenv; s && *s; s++) strv_push(&env, *s);
    if (!env) env = xcalloc(1, sizeof(char *));
    return env;
}

/* PATH lookup against the child's environment, done before fork. */
static char *find_program(const char *name, char *const *env) {
    if (strchr(name, '/')) return xstrdup(name);
    const char *path = NULL;
    for (char *const *p = env; *p; p++)
        if (str_has_prefix(*p, "PATH=")) path = *p + 5;
    if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    _cleanup_free_ char *copy = xstrdup(path);
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char *cand = xasprintf("%s/%s", *d ? d : ".", name);
        if (access(cand, X_OK) == 0) return cand;
        free(cand);
    }
    return NULL;
}

bool sub_have_program(const char *name) {
    char *const noenv[] = {NULL};
    sub_proc_opts o = SUB_PROC_OPTS_INIT;
    o.setenv = noenv;
    _cleanup_strv_ char **env = build_env(&o);
    _cleanup_free_ char *p = find_program(name, env);
    return p && access(p, X_OK) == 0;
}

char *sub_argv_str(char *const argv[]) {
    sub_buf b = SUB_BUF_INIT;
    for (size_t i = 0; argv[i]; i++) sub_buf_printf(&b, "%s%s", i ? " " : "", argv[i]);
    return sub_buf_detach(&b, NULL);
}

int sub_spawn(char *const argv[], const sub_proc_opts *o, pid_t *pid, sub_err *e) {
    static const sub_proc_opts defaults = SUB_PROC_OPTS_INIT;
    if (!o) o = &defaults;
    _cleanup_strv_ char **env = build_env(o);
    _cleanup_free_ char *prog = find_program(argv[0], env);
    if (!prog)
        return sub_err_setk(e, SUB_KIND_ENV, -ENOENT,
                            "%s: program not found on PATH (run scripts/install-deps)", argv[0]);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) return sub_err_set(e, -errno, "pipe: %m");
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) {
        int err = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return sub_err_set(e, -err, "fork: %s", strerror(err));
    }
    if (p == 0) {
        int err = 0;
        const char *stage = "";
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (o->pdeathsig && (prctl(PR_SET_PDEATHSIG, o->pdeathsig) < 0 || getppid() != parent)) stage = "pdeathsig";
        else if (o->new_session && setsid() < 0) stage = "setsid";
        else if (setup_fd(o->stdin_fd, 0) < 0) stage = "stdin";
        else if (setup_fd(o->stdout_fd, 1) < 0) stage = "stdout";
        else if (setup_fd(o->stderr_fd, 2) < 0) stage = "stderr";
        else if (o->cwd && chdir(o->cwd) < 0) stage = "chdir";
        else {
            cloexec_from_3(); /* the child gets 0-2 only, never our other descriptors */
            if (o->umask >= 0) umask((mode_t)o->umask);
            execve(prog, argv, env);
            stage = "exec";
        }
        err = errno;
        char msg[256];
        int n = snprintf(msg, sizeof msg, "%d %s", err, stage);
        if (write(pipefd[1], msg, (size_t)n) < 0) { /* nothing more to do */
        }
        _exit(127);
    }
    close(pipefd[1]);
    char msg[256];
    ssize_t n;
    do n = read(pipefd[0], msg, sizeof msg - 1);
    while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n > 0) {
        msg[n] = 0;
        int err = atoi(msg);
        const char *stage = strchr(msg, ' ');
        stage = stage ? stage + 1 : "?";
        waitpid(p, NULL, 0);
        if (!strcmp(stage, "chdir"))
            return sub_err_set(e, -err, "cannot enter %s to run %s: %s", o->cwd, argv[0],
                               strerror(err));
        return sub_err_set(e, -err, "cannot run %s (%s): %s", argv[0], stage, strerror(err));
    }
    /* stopped before our temporaries are removed on SIGINT/SIGTERM (residue.h);
     * a daemon in its own session is not ours to stop */
    if (!o->new_session) sub_residue_add_child(p);
    *pid = p;
    return 0;
}

int sub_wait(pid_t pid, int *status, sub_err *e) {
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno == EINTR) continue;
        return sub_err_set(e, -errno, "waitpid %d: %m", (int)pid);
    }
    sub_residue_forget_child(pid);
    if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

int sub_run(char *const argv[], const sub_proc_opts *o, int *status, sub_err *e) {
    pid_t pid;
    int r = sub_spawn(argv, o, &pid, e);
    if (r < 0) return r;
    return sub_wait(pid, status, e);
}

int sub_run_capture(char *const argv[], const sub_proc_opts *o, size_t max, char **out,
                    int *status, sub_err *e) {
    static const sub_proc_opts defaults = SUB_PROC_OPTS_INIT;
    sub_proc_opts oo = o ? *o : defaults;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return sub_err_set(e, -errno, "pipe: %m");
    oo.stdout_fd = fds[1];
    pid_t pid;
    int r = sub_spawn(argv, &oo, &pid, e);
    close(fds[1]);
    if (r < 0) {
        close(fds[0]);
        return r;
    }
    sub_buf b = SUB_BUF_INIT;
    bool toobig = false;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (n == 0) break;
        if (b.len + (size_t)n > max) toobig = true;
        else sub_buf_append(&b, buf, (size_t)n);
    }
    close(fds[0]);
    r = sub_wait(pid, status, e);
    if (r < 0 || toobig) {
        sub_buf_free(&b);
        if (toobig)
            return sub_err_set(e, -EFBIG, "output of %s exceeds %zu bytes", argv[0], max);
        return r;
    }
    *out = sub_buf_detach(&b, NULL);
    return 0;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define ERR_KEEP (64u << 10)

int sub_run_capture_timeout(char *const argv[], const sub_proc_opts *o, size_t max, int timeout_ms,
                            char **out, size_t *len, char **err, int *status, sub_err *e) {
    static const sub_proc_opts defaults = SUB_PROC_OPTS_INIT;
    sub_proc_opts oo = o ? *o : defaults;
    *out = NULL;
    if (len) *len = 0;
    if (err) *err = NULL;
    int ofd[2], efd[2] = {-1, -1};
    if (pipe2(ofd, O_CLOEXEC | O_NONBLOCK) < 0) return sub_err_set(e, -errno, "pipe: %m");
    if (err && pipe2(efd, O_CLOEXEC | O_NONBLOCK) < 0) {
        int r = sub_err_set(e, -errno, "pipe: %m");
        close(ofd[0]);
        close(ofd[1]);
        return r;
    }
    /* the child's ends block as usual: only our read ends are non-blocking */
    fcntl(ofd[1], F_SETFL, fcntl(ofd[1], F_GETFL) & ~O_NONBLOCK);
    oo.stdout_fd = ofd[1];
    if (err) {
        fcntl(efd[1], F_SETFL, fcntl(efd[1], F_GETFL) & ~O_NONBLOCK);
        oo.stderr_fd = efd[1];
    }
    pid_t pid;
    int r = sub_spawn(argv, &oo, &pid, e);
    close(ofd[1]);
    if (err) close(efd[1]);
    if (r < 0) {
        close(ofd[0]);
        if (err) close(efd[0]);
        return r;
    }
    sub_buf ob = SUB_BUF_INIT, eb = SUB_BUF_INIT;
    struct pollfd p[2] = {{.fd = ofd[0], .events = POLLIN}, {.fd = err ? efd[0] : -1, .events = POLLIN}};
    int64_t deadline = mono_ms() + timeout_ms;
    bool timed_out = false, toobig = false;
    char buf[65536];
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int n = poll(p, 2, (int)left);
        if (n < 0) {
            if (errno == EINTR) continue;
            r = sub_err_set(e, -errno, "poll: %m");
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents) continue;
            ssize_t k = read(p[i].fd, buf, sizeof buf);
            if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (k <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                continue;
            }
            if (i == 0) {
                if (ob.len + (size_t)k > max) toobig = true;
                else sub_buf_append(&ob, buf, (size_t)k);
            } else if (eb.len < ERR_KEEP) {
                size_t keep = (size_t)k < ERR_KEEP - eb.len ? (size_t)k : ERR_KEEP - eb.len;
                sub_buf_append(&eb, buf, keep);
            }
        }
        if (toobig || r < 0) break;
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0) close(p[i].fd);
    if (timed_out || toobig || r < 0) kill(pid, SIGKILL);
    int wr = sub_wait(pid, status, r < 0 ? NULL : e);
    if (timed_out || toobig || r < 0 || wr < 0) {
        sub_buf_free(&ob);
        sub_buf_free(&eb);
        if (r < 0) return r;
        if (timed_out)
            return sub_err_setk(e, SUB_KIND_ENV, -ETIMEDOUT, "%s did not finish within %d s (stopped)", argv[0],
                                timeout_ms / 1000);
        if (toobig)
            return sub_err_setk(e, SUB_KIND_INPUT, -EFBIG, "output of %s exceeds %zu bytes (stopped)", argv[0], max);
        return wr;
    }
    *out = sub_buf_detach(&ob, len);
    if (err) *err = sub_buf_detach(&eb, NULL);
    else sub_buf_free(&eb);
    return 0;
}

/* The pid with an fd on socket:[inode], or 0 (none we may look at). */
pid_t sub_socket_owner(unsigned long inode) {
    DIR *proc = opendir("/proc");
    if (!proc) return 0;
    char want[64];
    snprintf(want, sizeof want, "socket:[%lu]", inode);
    pid_t found = 0;
    struct dirent *de;
    while (!found && (de = readdir(proc))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char fdp[64];
        snprintf(fdp, sizeof fdp, "/proc/%ld/fd", pid);
        DIR *fds = opendir(fdp);
        if (!fds) continue;
        struct dirent *fe;
        while ((fe = readdir(fds))) {
            char target[64];
            ssize_t n = readlinkat(dirfd(fds), fe->d_name, target, sizeof target - 1);
            if (n <= 0) continue;
            target[n] = 0;
            if (!strcmp(target, want)) {
                found = (pid_t)pid;
                break;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    return found;
}
